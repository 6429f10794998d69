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

pub mod lines;
pub mod settings;
pub mod tansu;

use std::borrow::Cow;
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
use crate::engine::{Engine, Redacted, Scratch};
use crate::framer::Batch;
use crate::metrics::Stats;
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

/// Where a delivery belongs: the input record it came from.
struct Origin {
    topic: String,
    partition: i32,
    offset: i64,
    ts_ms: Option<i64>,
}

struct ProdCtx {
    shared: SharedRef,
    log: Log,
}

logging_context!(ProdCtx);

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = Box<Origin>;

    fn delivery(&self, result: &DeliveryResult<'_>, origin: Box<Origin>) {
        let mut s = lock(&self.shared);
        match result {
            Ok(_) => {
                let Origin {
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

/// Runs a Kafka input until SIGTERM/SIGINT, `stop` (for embedding: benchmarks), or a fatal
/// error. Statistics go to `stats`; the Kafka-specific ones are returned as text for
/// `--stats`.
pub async fn run(
    src: KafkaSourceConfig,
    output: KafkaOutput<'_>,
    engine: &Engine,
    stats: &mut Stats,
    stop_on: Option<Arc<tokio::sync::Notify>>,
) -> Result<String> {
    let shared: SharedRef = Arc::new(Mutex::new(Shared::new()));
    let brokers = src.brokers.clone().unwrap_or_default();
    let (sink, mut writer) = match output {
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
    let mut commit_tick = tokio::time::interval(Duration::from_millis(src.commit_interval_ms));
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let every = Duration::from_secs(src.stats_interval_secs.max(1));
    let mut stats_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scratch = engine.scratch();
    let started = Instant::now();
    let mut messages = 0u64;
    let mut backoff = Duration::from_millis(100);
    let mut stop: Option<String> = None;
    let log = Log::new("input");

    loop {
        if let Some(f) = lock(&shared).failure.clone() {
            stop = Some(f);
            break;
        }
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = notified(&stop_on) => break,
            _ = commit_tick.tick() => {
                commit(&consumer, &shared, CommitMode::Async, &log);
            }
            _ = stats_tick.tick(), if src.stats_interval_secs > 0 => {
                eprint!("{}", report(&consumer, &shared, messages, started.elapsed()));
            }
            m = consumer.recv() => match m {
                Ok(msg) => {
                    backoff = Duration::from_millis(100);
                    messages += 1;
                    let step = handle(
                        &msg, &src, sink.as_ref(), writer.as_deref_mut(), engine, &mut scratch,
                        &shared, stats,
                    ).await;
                    if let Err(e) = step {
                        stop = Some(format!("{e:#}"));
                        break;
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
    if let Some(w) = writer {
        let _ = w.flush().await;
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

/// Redacts one record's value (as one record, whatever newlines it holds), starting in the
/// partition's private-key state. Returns the output (the value itself when nothing was
/// found) and the state after it.
fn redact_value<'a>(
    engine: &Engine,
    value: &'a [u8],
    carry: Carry,
    scratch: &mut Scratch,
) -> (Cow<'a, [u8]>, Carry, Redacted) {
    // The engine works on newline-ended records; the added newline is taken off again.
    let mut buf = Vec::with_capacity(value.len() + 1);
    buf.extend_from_slice(value);
    let added = !value.ends_with(b"\n");
    if added {
        buf.push(b'\n');
    }
    let batch = Bytes::from(buf);
    let after = if engine.matcher().tracks_multiline() {
        multiline::walk(carry, &batch, |_| {})
    } else {
        carry
    };
    let r = engine.redact_from(&Batch::whole(batch), carry, scratch, true);
    if r.findings.is_empty() {
        return (Cow::Borrowed(value), after, r);
    }
    let mut out = r.chunks.concat();
    if added {
        out.pop();
    }
    (Cow::Owned(out), after, r)
}

/// Redacts a key or header value (no cross-record state).
fn redact_small<'a>(
    engine: &Engine,
    v: &'a [u8],
    scratch: &mut Scratch,
    stats: &mut Stats,
) -> Cow<'a, [u8]> {
    let (out, _, r) = redact_value(engine, v, Carry::default(), scratch);
    stats.add_batch(&r, false);
    out
}

/// Redacts a header value seen as `name: value`, so that the field-name rules apply to the
/// header's name (`authorization`, `x-api-key`, `cookie`, ...).
fn redact_header<'a>(
    engine: &Engine,
    name: &str,
    v: &'a [u8],
    scratch: &mut Scratch,
    stats: &mut Stats,
) -> Cow<'a, [u8]> {
    let mut line = Vec::with_capacity(name.len() + 2 + v.len());
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(v);
    let prefix = name.len() + 2;
    match redact_small(engine, &line, scratch, stats) {
        Cow::Borrowed(_) => Cow::Borrowed(v),
        Cow::Owned(out) if out.starts_with(&line[..prefix]) => Cow::Owned(out[prefix..].to_vec()),
        // A finding reached into the name: redact the value alone.
        Cow::Owned(_) => redact_small(engine, v, scratch, stats),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    msg: &BorrowedMessage<'_>,
    src: &KafkaSourceConfig,
    sink: Option<&Sink>,
    writer: Option<&mut sink::Writer>,
    engine: &Engine,
    scratch: &mut Scratch,
    shared: &SharedRef,
    stats: &mut Stats,
) -> Result<()> {
    let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
    let ts_ms = msg.timestamp().to_millis();
    // A null value (a tombstone) stays null.
    let tombstone = msg.payload().is_none();
    let value = msg.payload().unwrap_or(&[]);
    // One key per record, reused for every lookup and moved into the delivery's origin.
    let tp: Tp = (topic.to_string(), partition);
    let carry = {
        let mut s = lock(shared);
        if !s.parts.contains_key(&tp) {
            let part = Part {
                committed: offset,
                ..Part::default()
            };
            s.parts.insert(tp.clone(), part);
        }
        let p = s.parts.get_mut(&tp).expect("inserted above");
        p.in_flight.insert(offset);
        p.next = offset + 1;
        p.carry
    };
    let where_ = &At(topic, partition, offset);
    if value.len() > src.max_message_bytes {
        let reason = format!(
            "oversized: {} bytes > max_message_bytes {}",
            value.len(),
            src.max_message_bytes
        );
        return unredactable(msg, &reason, where_, sink, shared).await;
    }
    // Value, key and headers: a panic anywhere in here (the engine, or rdkafka on a header
    // name that is not UTF-8) fails this record closed instead of the process.
    let redacted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (out, after, r) = redact_value(engine, value, carry, scratch);
        stats.add_batch(&r, false);
        let key = match msg.key() {
            Some(k) if src.redact_keys && !k.is_empty() => {
                Some(redact_small(engine, k, scratch, stats))
            }
            Some(k) => Some(Cow::Borrowed(k)),
            None => None,
        };
        let headers = msg.headers().map(|hs| {
            let mut owned = OwnedHeaders::new_with_capacity(hs.count());
            for h in hs.iter() {
                let v = match h.value {
                    Some(v) if src.redact_headers && !v.is_empty() => {
                        Some(redact_header(engine, h.key, v, scratch, stats))
                    }
                    Some(v) => Some(Cow::Borrowed(v)),
                    None => None,
                };
                owned = owned.insert(Header {
                    key: h.key,
                    value: v.as_deref(),
                });
            }
            owned
        });
        (out, after, key, headers)
    }));
    let (out, after, key, headers) = match redacted {
        Ok(x) => x,
        Err(_) => {
            *scratch = engine.scratch();
            return unredactable(msg, "redaction failure", where_, sink, shared).await;
        }
    };
    if let Some(p) = lock(shared).parts.get_mut(&tp) {
        p.key_from = match (p.carry.in_key, after.in_key) {
            (_, false) => None,
            (false, true) => Some(offset),
            (true, true) => p.key_from,
        };
        p.carry = after;
    }
    let origin = Origin {
        topic: tp.0,
        partition,
        offset,
        ts_ms,
    };
    if let Some(sink) = sink {
        let mut rec = BaseRecord::with_opaque_to(&sink.topic, Box::new(origin));
        if !tombstone {
            rec = rec.payload(&out[..]);
        }
        if let Some(k) = &key {
            rec = rec.key(&k[..]);
        }
        if let Some(ts) = ts_ms {
            rec = rec.timestamp(ts);
        }
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        if sink.cfg.partitioning == Partitioning::Input {
            rec = rec.partition(partition % sink.partitions.max(1));
        }
        send(&sink.producer, rec, where_, shared).await?;
    } else if let Some(w) = writer {
        w.write_all(&out).await?;
        if !out.ends_with(b"\n") {
            w.write_all(b"\n").await?;
        }
        w.flush().await?;
        lock(shared).done(&(origin.topic, partition), offset, ts_ms);
    }
    Ok(())
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
    mut rec: BaseRecord<'_, [u8], [u8], Box<Origin>>,
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
    msg: &BorrowedMessage<'_>,
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
    let offset = msg.offset().to_string();
    let partition = msg.partition().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: REASON_HEADER,
            value: Some(reason),
        })
        .insert(Header {
            key: "logveil-source-topic",
            value: Some(msg.topic()),
        })
        .insert(Header {
            key: "logveil-source-partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "logveil-source-offset",
            value: Some(&offset),
        });
    let origin = Origin {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        ts_ms: msg.timestamp().to_millis(),
    };
    let mut rec = BaseRecord::<[u8], [u8], _>::with_opaque_to(dlq, Box::new(origin))
        .payload(placeholder.as_bytes())
        .headers(headers);
    if let Some(ts) = msg.timestamp().to_millis() {
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
