//! Run statistics: counters per rule, distinct fingerprints, and hdrhistogram latencies of the
//! engine per batch and of each record from read to written. Only rule ids and fingerprints
//! are kept, never secrets.
//!
//! The statistics are shared ([`SharedStats`]): the pipeline adds to them batch by batch, and
//! the Prometheus endpoint ([`serve`], `--metrics ADDR`) renders them while the run goes on,
//! together with what sources and sinks report through a [`Probe`] (Kafka lag, deliveries,
//! dead letters): the metrics layer never knows which source or sink is running.

mod prometheus;
mod server;

pub use prometheus::{Registry, Sample};
pub use server::{serve, Listener};

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engine::Redacted;
use crate::fingerprint::Fingerprint;

/// The statistics of a run, shared between the pipeline (which adds to them) and the
/// metrics endpoint (which reads them). The lock is taken once per batch.
#[derive(Clone)]
pub struct SharedStats(Arc<Mutex<Stats>>);

impl SharedStats {
    /// Statistics for a library of `rules` rules.
    pub fn new(rules: usize) -> SharedStats {
        SharedStats(Arc::new(Mutex::new(Stats::new(rules))))
    }

    /// The statistics. A panic elsewhere while holding the lock leaves counters that are
    /// still counters: they are read on.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a source or sink adds to a scrape of `/metrics` (registered with
/// [`Probes::add`]): called at every scrape, it fills in the parts of a [`Sample`] it knows.
pub trait Probe: Send + Sync {
    /// Adds this component's figures to `sample`.
    fn sample(&self, sample: &mut Sample);
}

/// The probes of a run's sources and sinks.
#[derive(Clone, Default)]
pub struct Probes(Arc<Mutex<Vec<Arc<dyn Probe>>>>);

impl Probes {
    /// Adds a probe (for the rest of the run).
    pub fn add(&self, p: Arc<dyn Probe>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(p);
    }

    /// Lets every probe fill in `sample`.
    pub fn sample(&self, sample: &mut Sample) {
        let probes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for p in probes {
            p.sample(sample);
        }
    }
}

/// Where an error happened, in the stages users know from Vector's `component_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Reading an input.
    Receiving,
    /// Redacting.
    Processing,
    /// Writing or delivering the output.
    Sending,
}

impl Stage {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Receiving => "receiving",
            Stage::Processing => "processing",
            Stage::Sending => "sending",
        }
    }
}

/// Statistics of one run.
pub struct Stats {
    /// When the run started.
    pub started: Instant,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Batches redacted.
    pub batches: u64,
    /// Findings per rule index.
    pub findings: Vec<u64>,
    /// Distinct fingerprints per rule index.
    pub distinct: Vec<HashSet<Fingerprint>>,
    /// Engine time per batch, in microseconds.
    pub engine_us: Histogram<u64>,
    /// Read-to-written latency per record, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Errors by stage and type (`reader_failed`, `writer_failed`, ...).
    pub errors: BTreeMap<(Stage, &'static str), u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

impl Stats {
    /// Statistics for a library of `rules` rules.
    pub fn new(rules: usize) -> Stats {
        Stats {
            started: Instant::now(),
            records: 0,
            bytes_in: 0,
            bytes_out: 0,
            batches: 0,
            findings: vec![0; rules],
            distinct: vec![HashSet::new(); rules],
            engine_us: histogram(),
            latency_us: histogram(),
            errors: BTreeMap::new(),
        }
    }

    /// Counts an error.
    pub fn error(&mut self, stage: Stage, kind: &'static str) {
        *self.errors.entry((stage, kind)).or_insert(0) += 1;
    }

    /// Accounts one processed batch.
    pub fn add_batch(&mut self, r: &Redacted, keep_distinct: bool) {
        self.batches += 1;
        self.records += r.records;
        self.bytes_in += r.input_len as u64;
        self.bytes_out += r.chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        self.engine_us.saturating_record(micros(r.elapsed));
        for f in &r.findings {
            self.findings[f.rule as usize] += 1;
            if keep_distinct {
                self.distinct[f.rule as usize].insert(f.fingerprint);
            }
        }
    }

    /// Accounts the engine results of one batch of messages (values, keys and headers are
    /// redacted in separate calls): `messages` records, whatever the calls counted.
    pub fn add_messages(&mut self, results: &[Redacted], messages: u64, keep_distinct: bool) {
        for r in results {
            self.add_batch(r, keep_distinct);
            self.records -= r.records;
        }
        self.records += messages;
    }

    /// Accounts `records` records written `latency` after they were read.
    pub fn add_latency(&mut self, latency: Duration, records: u64) {
        if records > 0 {
            let _ = self.latency_us.record_n(micros(latency), records);
        }
    }

    /// Accounts records written now, read at the given instants (`(read_at, records)`), and
    /// empties the list.
    pub fn add_latencies(&mut self, pending: &mut Vec<(Instant, u64)>) {
        let now = Instant::now();
        for (read_at, n) in pending.drain(..) {
            self.add_latency(now - read_at, n);
        }
    }

    /// Findings over all rules.
    pub fn total_findings(&self) -> u64 {
        self.findings.iter().sum()
    }

    /// The `--stats` report (stderr).
    pub fn report(&self, rule_ids: &[&str]) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut s = String::new();
        let _ = writeln!(s, "logveil stats:");
        let _ = writeln!(
            s,
            "  records {}  bytes in {}  bytes out {}  batches {}  elapsed {:.3} s  throughput {:.1} MB/s ({:.1} MiB/s)",
            self.records,
            self.bytes_in,
            self.bytes_out,
            self.batches,
            secs,
            self.bytes_in as f64 / secs / 1e6,
            self.bytes_in as f64 / secs / (1024.0 * 1024.0)
        );
        let _ = writeln!(s, "  findings {}", self.total_findings());
        let mut rows: Vec<(usize, u64)> = self
            .findings
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (i, n) in rows {
            let _ = writeln!(s, "    {:<36} {n}", rule_ids[i]);
        }
        for (name, h) in [
            ("engine time per batch", &self.engine_us),
            ("latency per record (read to written)", &self.latency_us),
        ] {
            if h.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "  {name} (µs): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Reported;

    #[test]
    fn counts_findings_and_distinct_fingerprints() {
        let mut st = Stats::new(2);
        let fp = |b| Fingerprint([b; 8]);
        let r = Redacted {
            chunks: vec![bytes::Bytes::from_static(b"abc\n")],
            findings: vec![
                Reported {
                    rule: 1,
                    fingerprint: fp(1),
                    offset: 0,
                    record: 0,
                    in_record: 0,
                    len: 4,
                },
                Reported {
                    rule: 1,
                    fingerprint: fp(1),
                    offset: 5,
                    record: 0,
                    in_record: 0,
                    len: 4,
                },
                Reported {
                    rule: 1,
                    fingerprint: fp(2),
                    offset: 9,
                    record: 0,
                    in_record: 0,
                    len: 4,
                },
            ],
            records: 3,
            input_len: 10,
            tail_len: 0,
            elapsed: Duration::from_micros(250),
            edits: Vec::new(),
        };
        st.add_batch(&r, true);
        st.add_latency(Duration::from_millis(2), 3);
        assert_eq!(st.findings, vec![0, 3]);
        assert_eq!(st.distinct[1].len(), 2);
        assert_eq!(st.records, 3);
        assert_eq!(st.bytes_out, 4);
        assert_eq!(st.latency_us.len(), 3);
        let rep = st.report(&["a", "b"]);
        assert!(
            rep.contains("records 3") && rep.contains("b ") && rep.contains("p99.9"),
            "{rep}"
        );
    }
}
