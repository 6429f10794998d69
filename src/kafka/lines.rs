//! A Kafka topic as the output of file or stdin inputs: every line written becomes one message
//! (without its newline). Closing the writer waits for every delivery and fails if any failed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::io::AsyncWrite;

use super::settings::{client_error, KafkaSinkConfig};
use super::{check_topics, client_config, logging_context, Log};

struct LineCtx {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    log: Log,
}

logging_context!(LineCtx);

impl ProducerContext for LineCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// `AsyncWrite` that produces one message per line.
pub struct KafkaLines {
    producer: Arc<ThreadedProducer<LineCtx>>,
    topic: String,
    pending: Vec<u8>,
    drain: Duration,
    closed: bool,
}

impl KafkaLines {
    pub fn open(cfg: &KafkaSinkConfig) -> Result<KafkaLines> {
        let brokers = cfg.brokers.clone().unwrap_or_default();
        let mut cc = client_config(&brokers, &cfg.properties);
        cc.set("enable.idempotence", "true");
        cc.set("acks", "all");
        let ctx = LineCtx {
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            log: Log::new("output"),
        };
        let producer: ThreadedProducer<LineCtx> = cc
            .create_with_context(ctx)
            .map_err(|e| anyhow!("kafka output: {}", client_error(&e, &cfg.properties)))?;
        let topic = cfg.topic.clone().unwrap_or_default();
        check_topics(
            producer.client(),
            "output",
            &brokers,
            std::slice::from_ref(&topic),
            cfg.startup_timeout(),
            "[sink.kafka]",
        )?;
        Ok(KafkaLines {
            producer: Arc::new(producer),
            topic,
            pending: Vec::new(),
            drain: Duration::from_secs(cfg.drain_timeout_secs),
            closed: false,
        })
    }

    fn produce(&self, line: &[u8]) -> io::Result<()> {
        let mut rec = BaseRecord::<(), [u8]>::to(&self.topic).payload(line);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(io::Error::other(format!("kafka output: {e}"))),
            }
        }
    }

    fn take_lines(&mut self) -> io::Result<()> {
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &self.pending[start..]) {
            let end = start + i;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.produce(line)?;
            start = end + 1;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

impl AsyncWrite for KafkaLines {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.pending.extend_from_slice(buf);
        Poll::Ready(this.take_lines().map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        this.closed = true;
        if !this.pending.is_empty() {
            let last = std::mem::take(&mut this.pending);
            this.produce(&last)?;
        }
        // Waits for every delivery: this runs once, at the end of the run.
        if let Err(e) = this.producer.flush(this.drain) {
            return Poll::Ready(Err(io::Error::other(format!(
                "kafka output: deliveries not confirmed within {} s: {e}",
                this.drain.as_secs()
            ))));
        }
        let ctx = this.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Poll::Ready(Err(io::Error::other(format!(
                "kafka output: {failed} record(s) not delivered (first: {first})"
            ))));
        }
        Poll::Ready(Ok(()))
    }
}
