//! The consumer loop of the Kafka source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::config::KafkaSourceConfig;
use super::offsets::{
    commit, lock, report, track, ConsCtx, KafkaProbe, Offsets, Shared, SharedRef, Tp,
};
use crate::engine::multiline::{self, Carry};
use crate::engine::{Engine, Scratch};
use crate::kafka::{check_topics, client_config, client_error, Log};
use crate::metrics::Stage;
use crate::pipeline::deliver::{deliver, Pending};
use crate::pipeline::messages::{self, MessageBatch};
use crate::pipeline::{Acker, Origin, Pipeline, Sink};

/// Runs a Kafka input until SIGTERM/SIGINT, `stop` (for embedding), or a fatal error.
///
/// Two halves run side by side: the consumer loop reads messages, gathers them per partition
/// into batches and hands each to the pipeline's worker pool (`--threads`); the delivery
/// loop takes the results in reading order and hands every message to the sink, whose
/// acknowledgement (a delivery report, or a flush of stdout or a file) is what lets an
/// offset be committed. The bounded channel between them is the backpressure: at most
/// `threads × batches_per_thread` batches are in flight. At the end the sink is closed
/// (its outstanding deliveries awaited) and what was delivered is committed. Statistics go
/// to the pipeline's; the Kafka-specific ones are returned as text for `--stats`.
pub async fn run<S: Sink>(
    src: KafkaSourceConfig,
    sink: &mut S,
    pipeline: &mut Pipeline,
    stop_on: Option<Arc<tokio::sync::Notify>>,
) -> Result<String> {
    let shared: SharedRef = Arc::new(Mutex::new(Shared::new()));
    let brokers = src.brokers.clone().unwrap_or_default();
    let mut cc = client_config(&brokers, &src.properties);
    cc.set("group.id", &src.group);
    cc.set("enable.auto.commit", "false");
    cc.set("enable.auto.offset.store", "false");
    if !src.properties.contains_key("auto.offset.reset") {
        cc.set("auto.offset.reset", "earliest");
    }
    // The lag metric comes from the client's statistics: once a second while /metrics is
    // served (a scrape every 15 s or so sees lag at most a second old).
    if pipeline.observed && !src.properties.contains_key("statistics.interval.ms") {
        cc.set("statistics.interval.ms", "1000");
    }
    let ctx = ConsCtx {
        shared: Arc::clone(&shared),
        drain: Mutex::new(sink.drain()),
        log: Log::new("input"),
    };
    let client_errors = ctx.log.error_count();
    let consumer: StreamConsumer<ConsCtx> = cc
        .create_with_context(ctx)
        .map_err(|e| anyhow!("kafka input: {}", client_error(&e, &src.properties)))?;
    pipeline.probes.add(Arc::new(KafkaProbe {
        shared: Arc::clone(&shared),
        client_errors,
    }));
    check_topics(
        consumer.client(),
        "input",
        &brokers,
        &src.topics,
        src.startup_timeout(),
        "[source.kafka]",
    )?;
    let topics: Vec<&str> = src.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| {
        anyhow!(
            "kafka input: cannot subscribe to {}: {e}",
            src.topics.join(",")
        )
    })?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let started = Instant::now();
    let log = Log::new("input");
    let engine = pipeline.engine().clone();
    let pool = pipeline.submitter();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(pipeline.in_flight());
    let acker: Arc<dyn Acker> = Arc::new(Offsets(Arc::clone(&shared)));
    // The delivery loop stops the consumer loop when it fails.
    let halt = Arc::new(tokio::sync::Notify::new());
    let stats = pipeline.stats.clone();
    let mut messages = 0u64;

    let reader = async {
        let mut commit_tick = tokio::time::interval(Duration::from_millis(src.commit_interval_ms));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = Duration::from_secs(src.stats_interval_secs.max(1));
        let mut stats_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let linger = Duration::from_millis(src.batch_linger_ms);
        let mut backoff = Duration::from_millis(100);
        let mut building: HashMap<Tp, (MessageBatch, tokio::time::Instant)> = HashMap::new();
        let (keys, headers) = (src.redact_keys, src.redact_headers);
        let hand_over = |b: MessageBatch| {
            let (reply, result) = tokio::sync::oneshot::channel();
            pool.submit(Box::new(move |e: &Engine, s: &mut Scratch| {
                let _ = reply.send(messages::redact(e, s, b, keys, headers));
            }));
            result
        };
        let mut stop: Option<String> = None;
        'read: loop {
            if let Some(f) = lock(&shared).failure.clone() {
                stop = Some(f);
                break;
            }
            let due = building.values().map(|(_, t)| *t).min();
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = notified(&stop_on) => break,
                _ = halt.notified() => break,
                _ = commit_tick.tick() => {
                    commit(&consumer, &shared, CommitMode::Async, &log);
                }
                _ = stats_tick.tick(), if src.stats_interval_secs > 0 => {
                    eprint!("{}", report(&consumer, &shared, messages, started.elapsed()));
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    let now = tokio::time::Instant::now();
                    let ready: Vec<Tp> = building
                        .iter()
                        .filter(|(_, (_, t))| *t <= now)
                        .map(|(tp, _)| tp.clone())
                        .collect();
                    for tp in ready {
                        let (b, _) = building.remove(&tp).expect("listed above");
                        if tx.send(hand_over(b)).await.is_err() {
                            break 'read;
                        }
                    }
                }
                m = consumer.recv() => match m {
                    Ok(msg) => {
                        backoff = Duration::from_millis(100);
                        messages += 1;
                        let tp: Tp = (msg.topic().to_string(), msg.partition());
                        let (fresh, carry) = track(&shared, &tp, msg.offset());
                        if fresh {
                            // The partition is new to us (first assignment, or back after a
                            // revoke): what was gathered for it before belongs to the old
                            // assignment and goes out first.
                            if let Some((b, _)) = building.remove(&tp) {
                                if tx.send(hand_over(b)).await.is_err() {
                                    break 'read;
                                }
                            }
                        }
                        let (b, _) = building.entry(tp.clone()).or_insert_with(|| {
                            let b = MessageBatch { carry, ..Default::default() };
                            (b, tokio::time::Instant::now() + linger)
                        });
                        let after = gather(&msg, &src, &engine, b, carry);
                        if let Some(p) = lock(&shared).parts.get_mut(&tp) {
                            p.key_from = match (p.carry.in_block(), after.in_block()) {
                                (_, false) => None,
                                (false, true) => Some(msg.offset()),
                                (true, true) => p.key_from,
                            };
                            p.carry = after;
                        }
                        if b.len() >= src.batch_records || b.data.len() >= src.batch_bytes {
                            let (b, _) = building.remove(&tp).expect("gathered above");
                            if tx.send(hand_over(b)).await.is_err() {
                                break 'read;
                            }
                        }
                    }
                    Err(e) => {
                        lock(&shared).error(Stage::Receiving, "consumer_failed");
                        log.say("recv", &format!("{e}; retrying in {} ms", backoff.as_millis()));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        // Stop reading; what was gathered is still redacted and delivered.
        for (_, (b, _)) in building.drain() {
            if tx.send(hand_over(b)).await.is_err() {
                break;
            }
        }
        drop(tx);
        stop
    };

    let deliver = async {
        let r = deliver(&mut rx, &mut *sink, &stats, &acker).await;
        if r.is_err() {
            halt.notify_one();
            // Nothing more is taken: a reader waiting to hand over a batch sees the channel
            // closed and stops.
            rx.close();
        }
        r
    };
    let (read_stop, delivered) = tokio::join!(reader, deliver);
    let mut stop = match delivered {
        Err(e) => Some(format!("{e:#}")),
        Ok(()) => read_stop,
    };

    // Stop: no more reads; wait for what is in flight, commit what was delivered.
    let closed = sink.close().await;
    if let (None, Err(e)) = (&stop, closed) {
        stop = Some(format!("{e:#}"));
    }
    if stop.is_none() {
        stop = lock(&shared).failure.clone();
    }
    commit(&consumer, &shared, CommitMode::Sync, &log);
    let report = report(&consumer, &shared, messages, started.elapsed());
    drop(consumer);
    match stop {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(report),
    }
}

/// Adds a message to its partition's batch; returns the private-key state after it.
fn gather(
    msg: &BorrowedMessage<'_>,
    src: &KafkaSourceConfig,
    engine: &Engine,
    b: &mut MessageBatch,
    carry: Carry,
) -> Carry {
    let origin = Origin {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        ts_ms: msg.timestamp().to_millis(),
    };
    let tombstone = msg.payload().is_none();
    let value = msg.payload().unwrap_or(&[]);
    let key = msg.key().map(Bytes::copy_from_slice);
    // rdkafka panics on a header name that is not UTF-8: such a record fails closed.
    let headers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        msg.headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    }));
    let withheld = if value.len() > src.max_message_bytes {
        Some(format!(
            "oversized: {} bytes > max_message_bytes {}",
            value.len(),
            src.max_message_bytes
        ))
    } else if headers.is_err() {
        Some("redaction failure".to_string())
    } else {
        None
    };
    let headers = headers.unwrap_or_default();
    if withheld.is_some() {
        b.push(origin, None, tombstone, key, headers, withheld);
        return carry;
    }
    let start = b.data.len();
    b.push(origin, Some(value), tombstone, key, headers, None);
    if engine.matcher().tracks_multiline() {
        multiline::walk(carry, &b.data[start..], |_, _| {})
    } else {
        carry
    }
}

async fn notified(n: &Option<Arc<tokio::sync::Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}
