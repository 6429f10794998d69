//! Kafka source and sink: a consumer group in, an idempotent producer out, offsets committed
//! only after delivery.
//!
//! Each message is one record (it may hold newlines). Its value is redacted (and its key and
//! header values, by default); timestamp, key and headers are kept. Private keys printed one
//! line per message are followed per input partition.
//!
//! **Delivery guarantee: at-least-once.** For every input partition the offsets handed to the
//! producer and not yet acknowledged are tracked; the offset committed is the lowest one still
//! in flight (or the next one to read when none is), so an offset is committed only when its
//! record and every record before it in that partition has been acknowledged by the brokers
//! (`acks=all`, idempotent producer), whatever order the acks come in. Commits run every
//! `commit_interval_ms`, on a graceful stop (SIGTERM/SIGINT: stop reading, wait for the
//! deliveries, commit, exit 0) and when partitions are revoked in a rebalance (deliveries are
//! awaited, then what is done is committed before the partitions are given up). After a crash
//! the records after the last commit are read and produced again: duplicates, never losses.
//!
//! **Fail closed.** A record that cannot be redacted (larger than `max_message_bytes`, or an
//! engine failure) is never produced: either the pipeline stops before it (its offset is never
//! committed), or a placeholder with the reason in a header goes to the dead-letter topic.

mod batch;
pub mod lines;
pub mod settings;
pub mod tansu;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::io::AsyncWriteExt;

use crate::engine::multiline::{self, Carry};
use crate::engine::{Engine, Scratch};
use crate::metrics::Stats;
use crate::pipeline::Pipeline;
use crate::sink;
use settings::{KafkaSinkConfig, KafkaSourceConfig, OnUnredactable, Partitioning};

/// Header that carries the reason on a dead-lettered placeholder.
pub const REASON_HEADER: &str = "logveil-reason";

type Tp = (String, i32);

/// Progress of one input partition.
#[derive(Debug, Default)]
struct Part {
    /// Offsets read and not yet delivered (or written).
    in_flight: BTreeSet<i64>,
    /// The offset after the last one read.
    next: i64,
    /// The last offset committed.
    committed: i64,
    /// Private-key state at the end of the last record read.
    carry: Carry,
    /// While a private key printed one line per record is open: the offset of the record
    /// that opened it. Commits stop there, so whoever reads the partition next (after a
    /// restart or a rebalance) starts at the BEGIN line and knows the body lines for what
    /// they are.
    key_from: Option<i64>,
}

impl Part {
    /// The offset that may be committed: everything before it is delivered.
    fn committable(&self) -> i64 {
        let done = self.in_flight.first().copied().unwrap_or(self.next);
        self.key_from.map_or(done, |k| done.min(k))
    }
}

/// State shared with the producer's delivery callback and the rebalance callback.
struct Shared {
    parts: HashMap<Tp, Part>,
    /// The first fatal error (a delivery that failed for good).
    failure: Option<String>,
    delivered: u64,
    dead_lettered: u64,
    /// Message timestamp → delivery ack, in milliseconds.
    e2e_ms: Histogram<u64>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            parts: HashMap::new(),
            failure: None,
            delivered: 0,
            dead_lettered: 0,
            e2e_ms: Histogram::new_with_bounds(1, 30 * 86_400_000, 3).expect("histogram bounds"),
        }
    }

    fn done(&mut self, tp: &Tp, offset: i64, ts_ms: Option<i64>) {
        if let Some(p) = self.parts.get_mut(tp) {
            p.in_flight.remove(&offset);
        }
        self.delivered += 1;
        if let Some(ts) = ts_ms {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            // Records older than the histogram's range (replays of old data) count at its top.
            self.e2e_ms.saturating_record((now - ts).max(1) as u64);
        }
    }
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// librdkafka's errors and warnings, on stderr, at most one line per second per kind: a broker
/// outage is logged clearly without flooding.
struct Log {
    role: &'static str,
    last: Mutex<HashMap<String, Instant>>,
}

impl Log {
    fn new(role: &'static str) -> Log {
        Log {
            role,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn say(&self, kind: &str, msg: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last
            .get(kind)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        last.insert(kind.to_string(), now);
        eprintln!("logveil: kafka {}: {msg}", self.role);
    }
}

/// librdkafka's own log lines (warnings and worse) and client errors go to a context's `log`
/// field ([`Log`]): one line per kind per second on stderr.
macro_rules! logging_context {
    ($t:ty) => {
        impl rdkafka::ClientContext for $t {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
                if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Warning as i32) {
                    self.log.say(fac, msg);
                }
            }
            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                self.log.say(
                    &format!("{error:?}"),
                    &format!("{error} ({reason}); retrying"),
                );
            }
        }
    };
}
pub(crate) use logging_context;

struct ProdCtx {
    shared: SharedRef,
    log: Log,
}

logging_context!(ProdCtx);

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = Box<batch::Origin>;

    fn delivery(&self, result: &DeliveryResult<'_>, origin: Box<batch::Origin>) {
        let mut s = lock(&self.shared);
        match result {
            Ok(_) => {
                let batch::Origin {
                    topic,
                    partition,
                    offset,
                    ts_ms,
                } = *origin;
                s.done(&(topic, partition), offset, ts_ms)
            }
            Err((e, _)) => {
                if s.failure.is_none() {
                    s.failure = Some(format!(
                        "delivery of the record from {}/{} offset {} failed: {e}; it and every \
                         later offset of that partition stay uncommitted",
                        origin.topic, origin.partition, origin.offset
                    ));
                }
            }
        }
    }
}

type KafkaProducer = ThreadedProducer<ProdCtx>;

struct ConsCtx {
    shared: SharedRef,
    producer: Option<Arc<KafkaProducer>>,
    /// How long a revoke waits for outstanding deliveries.
    drain: Duration,
    log: Log,
}

logging_context!(ConsCtx);

impl ConsumerContext for ConsCtx {
    /// An offset counts as committed only once the group coordinator confirmed it: a failed
    /// asynchronous commit is simply made again at the next tick.
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if result.is_err() {
            return;
        }
        let mut s = lock(&self.shared);
        for e in offsets.elements() {
            if let (Offset::Offset(o), Some(p)) = (
                e.offset(),
                s.parts.get_mut(&(e.topic().to_string(), e.partition())),
            ) {
                p.committed = p.committed.max(o);
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let tpl = match rebalance {
            Rebalance::Revoke(tpl) => tpl,
            Rebalance::Assign(_) => return,
            Rebalance::Error(e) => {
                // librdkafka drops the whole assignment: so do we (the next owner re-reads
                // what was not committed).
                lock(&self.shared).parts.clear();
                self.log.say(
                    "rebalance",
                    &format!("rebalance error: {e}; assignment dropped"),
                );
                return;
            }
        };
        // Let what is in flight be delivered, then commit it before giving the partitions up.
        if let Some(p) = &self.producer {
            let _ = p.flush(self.drain);
        }
        let mut commit = TopicPartitionList::new();
        {
            let mut s = lock(&self.shared);
            for e in tpl.elements() {
                let tp = (e.topic().to_string(), e.partition());
                if let Some(part) = s.parts.remove(&tp) {
                    let c = part.committable();
                    if c > part.committed {
                        let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(c));
                    }
                }
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                self.log.say(
                    "revoke",
                    &format!("commit before giving up partitions failed: {e}"),
                );
            }
        }
        eprintln!(
            "logveil: kafka source: rebalance: giving up {} partition(s), delivered offsets committed",
            tpl.count()
        );
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let names: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            eprintln!("logveil: kafka source: assigned {}", names.join(" "));
        }
    }
}

/// Where the records of a Kafka input go.
pub enum KafkaOutput<'a> {
    Kafka(KafkaSinkConfig),
    /// stdout or a file: each record is written with a newline, and counts as delivered once
    /// flushed.
    Writer(&'a mut sink::Writer),
}

fn client_config(
    brokers: &str,
    props: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set("client.id", "logveil");
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

/// Checks that the brokers answer and the topics exist, within the startup timeout. Returns
/// the partition count of each named topic.
fn check_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    role: &str,
    brokers: &str,
    topics: &[String],
    timeout: Duration,
    setting: &str,
) -> Result<Vec<usize>> {
    let md = client.fetch_metadata(None, timeout).map_err(|e| {
        anyhow!(
            "kafka {role}: cannot reach brokers {brokers} within {} s ({e}); check the address, \
             the network, security.protocol and the credentials ({setting} startup_timeout_secs)",
            timeout.as_secs()
        )
    })?;
    let mut counts = Vec::new();
    for t in topics {
        if t.starts_with('^') {
            counts.push(0);
            continue;
        }
        match md.topics().iter().find(|m| m.name() == t) {
            Some(m) if m.error().is_none() && !m.partitions().is_empty() => {
                counts.push(m.partitions().len())
            }
            _ => bail!(
                "kafka {role}: topic '{t}' does not exist on {brokers} (create it first; logveil \
                 does not create topics)"
            ),
        }
    }
    Ok(counts)
}

/// The Kafka sink, ready: producer, topic and its partition count.
struct Sink {
    producer: Arc<KafkaProducer>,
    cfg: KafkaSinkConfig,
    topic: String,
    partitions: i32,
}

fn open_sink(cfg: KafkaSinkConfig, shared: &SharedRef) -> Result<Sink> {
    let brokers = cfg.brokers.clone().unwrap_or_default();
    let mut cc = client_config(&brokers, &cfg.properties);
    // The guarantee rests on these two: not overridable.
    cc.set("enable.idempotence", "true");
    cc.set("acks", "all");
    let ctx = ProdCtx {
        shared: Arc::clone(shared),
        log: Log::new("output"),
    };
    let producer: KafkaProducer = cc.create_with_context(ctx).map_err(|e| {
        anyhow!(
            "kafka output: {}",
            settings::client_error(&e, &cfg.properties)
        )
    })?;
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
    Ok(Sink {
        producer: Arc::new(producer),
        partitions: counts[0] as i32,
        topic,
        cfg,
    })
}

/// A batch handed to the worker pool: its result, in the order the batches were read.
type Pending = tokio::sync::oneshot::Receiver<batch::RedactedBatch>;

/// Runs a Kafka input until SIGTERM/SIGINT, `stop` (for embedding), or a fatal error.
///
/// Two halves run side by side: the consumer loop reads messages, gathers them per partition
/// into batches and hands each to the pipeline's worker pool (`--threads`); the delivery
/// loop takes the results in reading order and hands every message to the sink, whose
/// acknowledgement (a delivery report, or a flush of stdout/a file) is what lets an offset
/// be committed. The bounded channel between them is the backpressure: at most
/// `threads × batches_per_thread` batches are in flight. Statistics go to the pipeline's;
/// the Kafka-specific ones are returned as text for `--stats`.
pub async fn run(
    src: KafkaSourceConfig,
    output: KafkaOutput<'_>,
    pipeline: &mut Pipeline,
    stop_on: Option<Arc<tokio::sync::Notify>>,
) -> Result<String> {
    let shared: SharedRef = Arc::new(Mutex::new(Shared::new()));
    let brokers = src.brokers.clone().unwrap_or_default();
    let (sink, writer) = match output {
        KafkaOutput::Kafka(cfg) => (Some(open_sink(cfg, &shared)?), None),
        KafkaOutput::Writer(w) => (None, Some(w)),
    };
    let mut cc = client_config(&brokers, &src.properties);
    cc.set("group.id", &src.group);
    cc.set("enable.auto.commit", "false");
    cc.set("enable.auto.offset.store", "false");
    if !src.properties.contains_key("auto.offset.reset") {
        cc.set("auto.offset.reset", "earliest");
    }
    let ctx = ConsCtx {
        shared: Arc::clone(&shared),
        producer: sink.as_ref().map(|s| Arc::clone(&s.producer)),
        drain: Duration::from_secs(sink.as_ref().map_or(10, |s| s.cfg.drain_timeout_secs)),
        log: Log::new("input"),
    };
    let consumer: StreamConsumer<ConsCtx> = cc.create_with_context(ctx).map_err(|e| {
        anyhow!(
            "kafka input: {}",
            settings::client_error(&e, &src.properties)
        )
    })?;
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
    // The delivery loop stops the consumer loop when it fails.
    let halt = Arc::new(tokio::sync::Notify::new());
    let stats = &mut pipeline.stats;
    let mut messages = 0u64;

    let reader = async {
        let mut commit_tick = tokio::time::interval(Duration::from_millis(src.commit_interval_ms));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = Duration::from_secs(src.stats_interval_secs.max(1));
        let mut stats_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let linger = Duration::from_millis(src.batch_linger_ms);
        let mut backoff = Duration::from_millis(100);
        let mut building: HashMap<Tp, (batch::MessageBatch, tokio::time::Instant)> = HashMap::new();
        let (keys, headers) = (src.redact_keys, src.redact_headers);
        let hand_over = |b: batch::MessageBatch| {
            let (reply, result) = tokio::sync::oneshot::channel();
            pool.submit(Box::new(move |e: &Engine, s: &mut Scratch| {
                let _ = reply.send(batch::redact(e, s, b, keys, headers));
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
                            let b = batch::MessageBatch { carry, ..Default::default() };
                            (b, tokio::time::Instant::now() + linger)
                        });
                        let after = gather(&msg, &src, &engine, b, carry);
                        if let Some(p) = lock(&shared).parts.get_mut(&tp) {
                            p.key_from = match (p.carry.in_key, after.in_key) {
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
        let r = deliver(&mut rx, sink.as_ref(), writer, &shared, stats).await;
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
    if let Some(s) = &sink {
        let p = Arc::clone(&s.producer);
        let t = Duration::from_secs(s.cfg.drain_timeout_secs);
        let flushed = tokio::task::spawn_blocking(move || p.flush(t)).await?;
        if let Err(e) = flushed {
            if stop.is_none() {
                stop = Some(format!(
                    "kafka output: outstanding deliveries not confirmed within {} s ({e}); their \
                     offsets stay uncommitted",
                    t.as_secs()
                ));
            }
        }
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

/// Registers a message read: in flight until its delivery. Returns whether the partition is
/// new to this run (first seen, or assigned again after a revoke) and its private-key state.
fn track(shared: &SharedRef, tp: &Tp, offset: i64) -> (bool, Carry) {
    let mut s = lock(shared);
    let fresh = !s.parts.contains_key(tp);
    let p = s.parts.entry(tp.clone()).or_insert_with(|| Part {
        committed: offset,
        ..Part::default()
    });
    p.in_flight.insert(offset);
    p.next = offset + 1;
    (fresh, p.carry)
}

/// Adds a message to its partition's batch; returns the private-key state after it.
fn gather(
    msg: &BorrowedMessage<'_>,
    src: &KafkaSourceConfig,
    engine: &Engine,
    b: &mut batch::MessageBatch,
    carry: Carry,
) -> Carry {
    let origin = batch::Origin {
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
        multiline::walk(carry, &b.data[start..], |_| {})
    } else {
        carry
    }
}

/// The delivery loop: results in reading order, every message to the sink. Deliveries to
/// stdout or a file are acknowledged once flushed; to Kafka, by the producer's delivery
/// report.
async fn deliver(
    rx: &mut tokio::sync::mpsc::Receiver<Pending>,
    sink: Option<&Sink>,
    mut writer: Option<&mut sink::Writer>,
    shared: &SharedRef,
    stats: &mut Stats,
) -> Result<()> {
    let mut unflushed: Vec<batch::Origin> = Vec::new();
    while let Some(pending) = rx.recv().await {
        let Ok(b) = pending.await else {
            bail!("kafka: a redaction worker failed; its batch was not forwarded and its offsets stay uncommitted");
        };
        for r in &b.results {
            stats.add_batch(r, false);
        }
        for m in b.messages {
            let where_ = At(&m.origin.topic, m.origin.partition, m.origin.offset);
            if let Some(reason) = &m.withheld {
                unredactable(&m.origin, reason, &where_, sink, shared).await?;
                continue;
            }
            if let Some(sink) = sink {
                let mut rec = BaseRecord::with_opaque_to(&sink.topic, Box::new(m.origin.clone()));
                if !m.tombstone {
                    rec = rec.payload(&m.value[..]);
                }
                if let Some(k) = &m.key {
                    rec = rec.key(&k[..]);
                }
                if let Some(ts) = m.origin.ts_ms {
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
                if sink.cfg.partitioning == Partitioning::Input {
                    rec = rec.partition(m.origin.partition % sink.partitions.max(1));
                }
                send(&sink.producer, rec, &where_, shared).await?;
            } else if let Some(w) = writer.as_deref_mut() {
                w.write_all(&m.value).await?;
                if !m.value.ends_with(b"\n") {
                    w.write_all(b"\n").await?;
                }
                unflushed.push(m.origin);
            }
        }
        // Nothing else is ready: flush now, so that a trickle of records is not held back,
        // and acknowledge what the flush delivered.
        if rx.is_empty() {
            flush_acks(writer.as_deref_mut(), &mut unflushed, shared).await?;
        }
    }
    flush_acks(writer, &mut unflushed, shared).await
}

async fn flush_acks(
    writer: Option<&mut sink::Writer>,
    unflushed: &mut Vec<batch::Origin>,
    shared: &SharedRef,
) -> Result<()> {
    if let Some(w) = writer {
        if !unflushed.is_empty() {
            w.flush().await?;
            let mut s = lock(shared);
            for o in unflushed.drain(..) {
                s.done(&(o.topic, o.partition), o.offset, o.ts_ms);
            }
        }
    }
    Ok(())
}

async fn notified(n: &Option<Arc<tokio::sync::Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// Commits, per partition, the offset before which everything is delivered.
fn commit(consumer: &StreamConsumer<ConsCtx>, shared: &SharedRef, mode: CommitMode, log: &Log) {
    let mut tpl = TopicPartitionList::new();
    let mut planned = Vec::new();
    {
        let s = lock(shared);
        for (tp, p) in &s.parts {
            let c = p.committable();
            if c > p.committed {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(c));
                planned.push((tp.clone(), c));
            }
        }
    }
    if planned.is_empty() {
        return;
    }
    match consumer.commit(&tpl, mode) {
        // An asynchronous commit is confirmed in `commit_callback`.
        Ok(()) if matches!(mode, CommitMode::Sync) => {
            let mut s = lock(shared);
            for (tp, c) in planned {
                if let Some(p) = s.parts.get_mut(&tp) {
                    p.committed = p.committed.max(c);
                }
            }
        }
        Ok(()) => {}
        Err(e) => log.say("commit", &format!("offset commit failed: {e}; will retry")),
    }
}

/// Where a record came from, for messages: `topic/partition offset N` (formatted only when
/// shown).
struct At<'a>(&'a str, i32, i64);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} offset {}", self.0, self.1, self.2)
    }
}

/// Hands a record to the producer, waiting while its queue is full.
async fn send(
    producer: &KafkaProducer,
    mut rec: BaseRecord<'_, [u8], [u8], Box<batch::Origin>>,
    where_: &At<'_>,
    shared: &SharedRef,
) -> Result<()> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                // A full queue while deliveries fail: stop rather than wait forever.
                if let Some(f) = lock(shared).failure.clone() {
                    bail!("{f}");
                }
                rec = r;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => bail!("kafka output: cannot produce the record from {where_}: {e}"),
        }
    }
}

/// A record that cannot be redacted: a placeholder to the dead-letter topic, or stop.
async fn unredactable(
    origin: &batch::Origin,
    reason: &str,
    where_: &At<'_>,
    sink: Option<&Sink>,
    shared: &SharedRef,
) -> Result<()> {
    let dlq = sink.and_then(|s| {
        (s.cfg.on_unredactable == OnUnredactable::DeadLetter)
            .then_some(s.cfg.dead_letter_topic.as_deref())
            .flatten()
            .map(|t| (s, t))
    });
    let Some((sink, dlq)) = dlq else {
        bail!(
            "the record at {where_} cannot be redacted ({reason}); stopping before it (its offset \
             is not committed). Set [sink.kafka] on_unredactable = \"dead-letter\" and \
             dead_letter_topic to divert such records"
        );
    };
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
    let mut rec = BaseRecord::<[u8], [u8], _>::with_opaque_to(dlq, Box::new(origin.clone()))
        .payload(placeholder.as_bytes())
        .headers(headers);
    if let Some(ts) = origin.ts_ms {
        rec = rec.timestamp(ts);
    }
    send(&sink.producer, rec, where_, shared).await?;
    lock(shared).dead_lettered += 1;
    eprintln!("logveil: kafka: record at {where_} dead-lettered to {dlq}: {reason}");
    Ok(())
}

/// The Kafka part of `--stats`: throughput, end-to-end latency, per-partition lag.
fn report(
    consumer: &StreamConsumer<ConsCtx>,
    shared: &SharedRef,
    messages: u64,
    elapsed: Duration,
) -> String {
    // Copy what is needed: the broker queries below must not hold the lock that the
    // delivery callback takes.
    let (delivered, dead_lettered, h, mut parts) = {
        let s = lock(shared);
        let parts: Vec<(Tp, i64)> = s
            .parts
            .iter()
            .map(|(tp, p)| (tp.clone(), p.committed))
            .collect();
        (s.delivered, s.dead_lettered, s.e2e_ms.clone(), parts)
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut out = format!(
        "kafka: {messages} records read, {} delivered, {} dead-lettered, {:.0} records/s over {:.1} s\n",
        delivered,
        dead_lettered,
        messages as f64 / secs,
        secs
    );
    if !h.is_empty() {
        out.push_str(&format!(
            "  end-to-end latency (message timestamp to delivery ack, ms): p50 {}  p90 {}  p99 {}  max {}\n",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.max()
        ));
    }
    parts.sort();
    if !parts.is_empty() {
        out.push_str("  consumer lag per partition (high watermark - committed offset):\n");
    }
    for ((t, p), committed) in parts {
        match consumer.fetch_watermarks(&t, p, Duration::from_secs(5)) {
            Ok((_, high)) => out.push_str(&format!("    {t}/{p}: {}\n", (high - committed).max(0))),
            Err(e) => out.push_str(&format!("    {t}/{p}: unknown ({e})\n")),
        }
    }
    out
}
