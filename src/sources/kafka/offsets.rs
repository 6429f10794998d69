//! Offsets of a Kafka input: what is in flight per partition, what may be committed, the
//! commits themselves (periodic, on stop, before a rebalance gives partitions up) and the
//! Kafka statistics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::multiline::Carry;
use crate::kafka::{logging_context, Log};
use crate::metrics::{Probe, Sample, Stage};
use crate::pipeline::{Acker, Drain, Origin};

/// A topic and partition.
pub(crate) type Tp = (String, i32);

/// Progress of one input partition.
#[derive(Debug, Default)]
pub(crate) struct Part {
    /// Offsets read and not yet delivered (or written).
    pub(crate) in_flight: BTreeSet<i64>,
    /// The offset after the last one read.
    pub(crate) next: i64,
    /// The last offset committed.
    pub(crate) committed: i64,
    /// Private-key state at the end of the last record read.
    pub(crate) carry: Carry,
    /// While a private key printed one line per record is open: the offset of the record
    /// that opened it. Commits stop there, so whoever reads the partition next (after a
    /// restart or a rebalance) starts at the BEGIN line and knows the body lines for what
    /// they are.
    pub(crate) key_from: Option<i64>,
}

impl Part {
    /// The offset that may be committed: everything before it is delivered.
    fn committable(&self) -> i64 {
        let done = self.in_flight.first().copied().unwrap_or(self.next);
        self.key_from.map_or(done, |k| done.min(k))
    }
}

/// State shared with the sink's acknowledgements (which may come on another thread) and
/// the rebalance callback.
pub(crate) struct Shared {
    pub(crate) parts: HashMap<Tp, Part>,
    /// The first fatal error (a delivery that failed for good).
    pub(crate) failure: Option<String>,
    delivered: u64,
    dead_lettered: u64,
    /// Message timestamp → delivery ack, in milliseconds.
    e2e_ms: Histogram<u64>,
    /// High watermark per partition, from the client's statistics (for the lag metric).
    high: HashMap<Tp, i64>,
    /// Errors the source went on from, by stage and type.
    errors: BTreeMap<(Stage, &'static str), u64>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            parts: HashMap::new(),
            failure: None,
            delivered: 0,
            dead_lettered: 0,
            e2e_ms: Histogram::new_with_bounds(1, 30 * 86_400_000, 3).expect("histogram bounds"),
            high: HashMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Counts an error the source goes on from.
    pub(crate) fn error(&mut self, stage: Stage, kind: &'static str) {
        *self.errors.entry((stage, kind)).or_insert(0) += 1;
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

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

pub(crate) fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The source's end of acknowledgements: a delivered record leaves its partition's
/// in-flight set (so its offset may be committed); a failed one stops the run and stays in
/// flight (never committed).
pub(crate) struct Offsets(pub(crate) SharedRef);

impl Acker for Offsets {
    fn delivered(&self, o: &Origin) {
        lock(&self.0).done(&(o.topic.clone(), o.partition), o.offset, o.ts_ms);
    }

    fn diverted(&self, o: &Origin) {
        let mut s = lock(&self.0);
        s.done(&(o.topic.clone(), o.partition), o.offset, o.ts_ms);
        s.dead_lettered += 1;
    }

    fn failed(&self, o: &Origin, error: &str) {
        let mut s = lock(&self.0);
        s.error(Stage::Sending, "delivery_failed");
        if s.failure.is_none() {
            s.failure = Some(format!(
                "delivery of the record from {o} failed: {error}; it and every later offset of \
                 that partition stay uncommitted"
            ));
        }
    }
}

/// Registers a message read: in flight until its delivery. Returns whether the partition is
/// new to this run (first seen, or assigned again after a revoke) and its private-key state.
pub(crate) fn track(shared: &SharedRef, tp: &Tp, offset: i64) -> (bool, Carry) {
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

pub(crate) struct ConsCtx {
    pub(crate) shared: SharedRef,
    /// Lets the sink deliver what it holds before partitions are given up (set once the
    /// sink is known; the source never knows which sink it is).
    pub(crate) drain: Mutex<Option<Drain>>,
    pub(crate) log: Log,
}

logging_context!(ConsCtx, stats);

impl ConsCtx {
    /// The client's statistics: the high watermark of every partition it fetches, for the
    /// lag metric (lag = high watermark - committed offset, the `--stats` definition), and
    /// the offsets the coordinator confirmed. The commit callback does not come through the
    /// stream consumer for asynchronous commits (librdkafka serves that event on a queue
    /// the stream does not poll), so the client's own record of what was committed is
    /// taken from here.
    fn statistics(&self, st: rdkafka::Statistics) {
        let mut s = lock(&self.shared);
        for (name, t) in st.topics {
            for (id, p) in t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue.
                if id < 0 {
                    continue;
                }
                let tp = (name.clone(), id);
                if p.hi_offset >= 0 {
                    s.high.insert(tp.clone(), p.hi_offset);
                }
                if let Some(part) = s.parts.get_mut(&tp) {
                    if p.committed_offset >= 0 {
                        part.committed = part.committed.max(p.committed_offset);
                    }
                }
            }
        }
    }
}

/// What the Kafka source adds to `/metrics`: deliveries, dead letters, its errors, lag per
/// assigned partition and the end-to-end latency.
pub(crate) struct KafkaProbe {
    pub(crate) shared: SharedRef,
    /// The client's error count (broker outages and the like, retried by librdkafka).
    pub(crate) client_errors: Arc<AtomicU64>,
}

impl Probe for KafkaProbe {
    fn sample(&self, sample: &mut Sample) {
        let s = lock(&self.shared);
        sample.kafka = true;
        sample.sent_events = Some(s.delivered);
        sample.dead_lettered += s.dead_lettered;
        sample
            .errors
            .extend(s.errors.iter().map(|(&(st, k), &n)| (st, k, n)));
        let client = self.client_errors.load(Ordering::Relaxed);
        if client > 0 {
            sample
                .errors
                .push((Stage::Receiving, "client_error", client));
        }
        for (tp, p) in &s.parts {
            if let Some(high) = s.high.get(tp) {
                sample
                    .lag
                    .push((tp.0.clone(), tp.1, (high - p.committed).max(0)));
            }
        }
        sample.end_to_end_ms = Some(s.e2e_ms.clone());
    }
}

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
        let drain = self.drain.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(drain) = drain {
            drain();
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
        crate::notice::notice(format_args!(
            "kafka source: rebalance: giving up {} partition(s), delivered offsets committed",
            tpl.count()
        ));
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let names: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            crate::notice::notice(format_args!("kafka source: assigned {}", names.join(" ")));
        }
    }
}

/// Commits, per partition, the offset before which everything is delivered.
pub(crate) fn commit(
    consumer: &StreamConsumer<ConsCtx>,
    shared: &SharedRef,
    mode: CommitMode,
    log: &Log,
) {
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
        Err(e) => {
            lock(shared).error(Stage::Receiving, "commit_failed");
            log.say("commit", &format!("offset commit failed: {e}; will retry"))
        }
    }
}

/// The Kafka part of `--stats`: throughput, end-to-end latency, per-partition lag.
pub(crate) fn report(
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
