//! The producer behind [`KafkaSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::config::{KafkaSinkConfig, OnUnredactable, Partitioning};
use crate::kafka::{check_topics, client_config, client_error, logging_context, Log};
use crate::pipeline::messages::OutMessage;
use crate::pipeline::{Ack, Drain, InputInfo, Sink};

/// Header that carries the reason on a dead-lettered placeholder.
pub const REASON_HEADER: &str = "logveil-reason";

/// What a delivery report is about.
enum Delivery {
    /// A line of a file or stdin: nothing to acknowledge, a failure fails the run.
    Line,
    /// A message: its source is told.
    Message(Ack),
    /// A placeholder on the dead-letter topic for a message that could not be redacted.
    DeadLetter(Ack),
}

struct ProdCtx {
    /// The first delivery that failed for good, in words.
    failure: Mutex<Option<String>>,
    failed: AtomicU64,
    log: Log,
}

logging_context!(ProdCtx);

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, what: Box<Delivery>) {
        match (result, *what) {
            (Ok(_), Delivery::Line) => {}
            (Ok(_), Delivery::Message(ack)) => ack.delivered(),
            (Ok(_), Delivery::DeadLetter(ack)) => ack.diverted(),
            (Err((e, _)), what) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let text = match &what {
                    Delivery::Line => format!("kafka output: a record was not delivered: {e}"),
                    Delivery::Message(ack) | Delivery::DeadLetter(ack) => format!(
                        "delivery of the record from {} failed: {e}; it and every later offset \
                         of that partition stay uncommitted",
                        ack.origin()
                    ),
                };
                if let Delivery::Message(ack) | Delivery::DeadLetter(ack) = what {
                    ack.failed(&e.to_string());
                }
                let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(text);
            }
        }
    }
}

type KafkaProducer = ThreadedProducer<ProdCtx>;

/// A Kafka topic as a sink.
pub struct KafkaSink {
    producer: Arc<KafkaProducer>,
    cfg: KafkaSinkConfig,
    topic: String,
    partitions: i32,
    /// The start of a line whose end has not been written yet (lines from byte streams).
    partial: Vec<u8>,
}

impl KafkaSink {
    /// Creates the producer and checks, within the startup timeout, that the brokers answer
    /// and the topics (output and dead-letter) exist. Blocks: call it off the runtime.
    pub fn open(cfg: KafkaSinkConfig) -> Result<KafkaSink> {
        let brokers = cfg.brokers.clone().unwrap_or_default();
        let mut cc = client_config(&brokers, &cfg.properties);
        // The guarantee rests on these two: not overridable.
        cc.set("enable.idempotence", "true");
        cc.set("acks", "all");
        let ctx = ProdCtx {
            failure: Mutex::new(None),
            failed: AtomicU64::new(0),
            log: Log::new("output"),
        };
        let producer: KafkaProducer = cc
            .create_with_context(ctx)
            .map_err(|e| anyhow!("kafka output: {}", client_error(&e, &cfg.properties)))?;
        let topic = cfg.topic.clone().unwrap_or_default();
        let mut topics = vec![topic.clone()];
        topics.extend(cfg.dead_letter_topic.clone());
        let counts = check_topics(
            producer.client(),
            "output",
            &brokers,
            &topics,
            cfg.startup_timeout(),
            "[sink.kafka]",
        )?;
        Ok(KafkaSink {
            producer: Arc::new(producer),
            partitions: counts[0] as i32,
            topic,
            cfg,
            partial: Vec::new(),
        })
    }

    fn failure(&self) -> Option<String> {
        self.producer
            .context()
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Hands a record to the producer, waiting while its queue is full.
    async fn send(&self, mut rec: BaseRecord<'_, [u8], [u8], Box<Delivery>>) -> Result<()> {
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // A full queue while deliveries fail: stop rather than wait forever.
                    if let Some(f) = self.failure() {
                        bail!("{f}");
                    }
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, r)) => {
                    let what = match *r.delivery_opaque {
                        Delivery::Line => "a line".to_string(),
                        Delivery::Message(a) | Delivery::DeadLetter(a) => {
                            format!("the record from {}", a.origin())
                        }
                    };
                    bail!("kafka output: cannot produce {what}: {e}")
                }
            }
        }
    }

    async fn send_line(&self, line: &[u8]) -> Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let rec = BaseRecord::with_opaque_to(&self.topic, Box::new(Delivery::Line)).payload(line);
        self.send(rec).await
    }
}

impl Sink for KafkaSink {
    async fn begin(&mut self, _: &InputInfo) -> Result<bool> {
        Ok(true)
    }

    /// One message per line, without its newline (nor a `\r` before it).
    async fn write_lines(&mut self, chunks: &[Bytes]) -> Result<bool> {
        for c in chunks {
            let mut rest = &c[..];
            while let Some(i) = memchr::memchr(b'\n', rest) {
                if self.partial.is_empty() {
                    self.send_line(&rest[..i]).await?;
                } else {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&rest[..i]);
                    self.send_line(&line).await?;
                }
                rest = &rest[i + 1..];
            }
            self.partial.extend_from_slice(rest);
        }
        Ok(true)
    }

    async fn write_message(&mut self, m: OutMessage, ack: Ack) -> Result<bool> {
        let partition = m.origin.partition;
        let ts = m.origin.ts_ms;
        let mut rec = BaseRecord::with_opaque_to(&self.topic, Box::new(Delivery::Message(ack)));
        if !m.tombstone {
            rec = rec.payload(&m.value[..]);
        }
        if let Some(k) = &m.key {
            rec = rec.key(&k[..]);
        }
        if let Some(ts) = ts {
            rec = rec.timestamp(ts);
        }
        if !m.headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(m.headers.len());
            for (name, v) in &m.headers {
                owned = owned.insert(Header {
                    key: name,
                    value: v.as_deref(),
                });
            }
            rec = rec.headers(owned);
        }
        if self.cfg.partitioning == Partitioning::Input {
            rec = rec.partition(partition % self.partitions.max(1));
        }
        self.send(rec).await?;
        Ok(true)
    }

    async fn withhold(&mut self, reason: &str, ack: Ack) -> Result<()> {
        let dlq = (self.cfg.on_unredactable == OnUnredactable::DeadLetter)
            .then_some(self.cfg.dead_letter_topic.clone())
            .flatten();
        let Some(dlq) = dlq else {
            bail!(
                "the record at {} cannot be redacted ({reason}); stopping before it (its offset \
                 is not committed). Set [sink.kafka] on_unredactable = \"dead-letter\" and \
                 dead_letter_topic to divert such records",
                ack.origin()
            );
        };
        let origin = ack.origin().clone();
        let placeholder = format!("[logveil: record withheld: {reason}]");
        let offset = origin.offset.to_string();
        let partition = origin.partition.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: REASON_HEADER,
                value: Some(reason),
            })
            .insert(Header {
                key: "logveil-source-topic",
                value: Some(&origin.topic),
            })
            .insert(Header {
                key: "logveil-source-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "logveil-source-offset",
                value: Some(&offset),
            });
        let mut rec =
            BaseRecord::<[u8], [u8], _>::with_opaque_to(&dlq, Box::new(Delivery::DeadLetter(ack)))
                .payload(placeholder.as_bytes())
                .headers(headers);
        if let Some(ts) = origin.ts_ms {
            rec = rec.timestamp(ts);
        }
        self.send(rec).await?;
        eprintln!("logveil: kafka: record at {origin} dead-lettered to {dlq}: {reason}");
        Ok(())
    }

    /// Deliveries are confirmed by the brokers on the producer's thread; a flush only
    /// reports a delivery that failed.
    async fn flush(&mut self) -> Result<bool> {
        match self.failure() {
            Some(f) => Err(anyhow!("{f}")),
            None => Ok(true),
        }
    }

    async fn end(&mut self) -> Result<bool> {
        Ok(true)
    }

    /// Sends the last line (one without a newline), then waits for every delivery.
    async fn close(&mut self) -> Result<()> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.send_line(&last).await?;
        }
        let p = Arc::clone(&self.producer);
        let t = Duration::from_secs(self.cfg.drain_timeout_secs);
        let flushed = tokio::task::spawn_blocking(move || p.flush(t)).await?;
        if let Some(f) = self.failure() {
            let n = self.producer.context().failed.load(Ordering::Relaxed);
            if n > 1 {
                bail!("{f} ({n} records not delivered in all)");
            }
            bail!("{f}");
        }
        if let Err(e) = flushed {
            bail!(
                "kafka output: outstanding deliveries not confirmed within {} s ({e}); their \
                 offsets stay uncommitted",
                t.as_secs()
            );
        }
        Ok(())
    }

    fn drain(&self) -> Option<Drain> {
        let p = Arc::clone(&self.producer);
        let t = Duration::from_secs(self.cfg.drain_timeout_secs);
        Some(Arc::new(move || {
            let _ = p.flush(t);
        }))
    }
}
