//! The Prometheus text exposition format (version 0.0.4) of a run's statistics.
//!
//! Names follow what users know from Vector's internal metrics (`component_received_events_total`,
//! `component_errors_total{stage, error_type}`, `kafka_consumer_lag`), prefixed `logveil_`;
//! units are base units (seconds, bytes), counters end in `_total`. Labels carry rule ids,
//! component kinds and Kafka topic-partitions only: never a secret, a fingerprint or a key.
//!
//! The latency histograms are hdrhistograms (3 significant digits); they are turned into
//! cumulative Prometheus buckets at every scrape, so a bucket boundary is exact to 0.1 %, and
//! `_sum` is computed from the recorded values at the same precision.

use std::fmt::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::{Probes, SharedStats, Stage};

/// Bucket bounds of the record-latency and batch-time histograms, in microseconds.
const LATENCY_BOUNDS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Bucket bounds of the Kafka end-to-end latency (message timestamp to delivery), in
/// milliseconds: replays of old records are minutes to days behind.
const END_TO_END_BOUNDS_MS: &[u64] = &[
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000,
    86_400_000,
];

/// What sources and sinks add to a scrape (see [`super::Probe`]).
#[derive(Default)]
pub struct Sample {
    /// Records the sink has delivered, when it knows better than "written" (Kafka: the
    /// records acknowledged by the broker or flushed by the output).
    pub sent_events: Option<u64>,
    /// Records that could not be redacted and went to the dead-letter topic as placeholders.
    pub dead_lettered: u64,
    /// Errors the source or sink counted and went on from: (stage, error type, count).
    pub errors: Vec<(Stage, &'static str, u64)>,
    /// True when a Kafka input runs (its families are then shown, also while still empty).
    pub kafka: bool,
    /// Consumer lag per assigned partition: (topic, partition, high watermark - committed).
    pub lag: Vec<(String, i32, i64)>,
    /// Message timestamp to delivery, in milliseconds (Kafka inputs).
    pub end_to_end_ms: Option<Histogram<u64>>,
}

/// Everything a scrape shows: the run's statistics, its probes, and what the run is.
pub struct Registry {
    stats: SharedStats,
    probes: Probes,
    rule_ids: Vec<String>,
    source_type: &'static str,
    sink_type: &'static str,
    started: Instant,
}

impl Registry {
    /// A registry over `stats` and `probes`, for a library of `rule_ids` (in the engine's
    /// order) read from a `source_type` (`file`, `stdin`, `kafka`) into a `sink_type`
    /// (`stdout`, `file`, `directory`, `kafka`, `none` for `scan`).
    pub fn new(
        stats: SharedStats,
        probes: Probes,
        rule_ids: Vec<String>,
        source_type: &'static str,
        sink_type: &'static str,
    ) -> Registry {
        Registry {
            stats,
            probes,
            rule_ids,
            source_type,
            sink_type,
            started: Instant::now(),
        }
    }

    /// The `/metrics` page.
    pub fn render(&self) -> String {
        let mut sample = Sample::default();
        // The probes first: they take their own locks, never while the statistics' is held.
        self.probes.sample(&mut sample);
        let mut m = Page::default();
        m.family(
            "logveil_build_info",
            "gauge",
            "The program and rule-library version (always 1).",
        );
        m.sample(
            "logveil_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("rules_digest", crate::rules::LIBRARY_DIGEST),
            ],
            1,
        );
        m.family(
            "logveil_uptime_seconds",
            "gauge",
            "Seconds since the run started.",
        );
        m.sample_f64(
            "logveil_uptime_seconds",
            &[],
            self.started.elapsed().as_secs_f64(),
        );
        m.family(
            "logveil_rules_enabled",
            "gauge",
            "Rules enabled in this run.",
        );
        m.sample("logveil_rules_enabled", &[], self.rule_ids.len() as u64);

        let st = self.stats.lock();
        let source = [
            ("component_kind", "source"),
            ("component_type", self.source_type),
        ];
        let sink = [
            ("component_kind", "sink"),
            ("component_type", self.sink_type),
        ];
        for (name, help, labels, v) in [
            (
                "logveil_component_received_events_total",
                "Records read (counted as their batch leaves the redactor).",
                &source,
                st.records,
            ),
            (
                "logveil_component_received_event_bytes_total",
                "Bytes of the records read.",
                &source,
                st.bytes_in,
            ),
            (
                "logveil_component_sent_events_total",
                "Records written (Kafka inputs: delivered and acknowledged).",
                &sink,
                sample.sent_events.unwrap_or(if self.sink_type == "none" {
                    0
                } else {
                    st.records
                }),
            ),
            (
                "logveil_component_sent_event_bytes_total",
                "Bytes of the redacted records written.",
                &sink,
                if self.sink_type == "none" {
                    0
                } else {
                    st.bytes_out
                },
            ),
        ] {
            m.family(name, "counter", help);
            m.sample(name, labels, v);
        }

        m.family(
            "logveil_component_errors_total",
            "counter",
            "Errors by stage (receiving, processing, sending) and type.",
        );
        let mut errors: Vec<(Stage, &str, u64)> =
            st.errors.iter().map(|(&(s, k), &n)| (s, k, n)).collect();
        errors.extend(sample.errors.iter().copied());
        errors.sort();
        for (stage, kind, n) in errors {
            let component = match stage {
                Stage::Receiving => "source",
                Stage::Processing => "transform",
                Stage::Sending => "sink",
            };
            m.sample(
                "logveil_component_errors_total",
                &[
                    ("component_kind", component),
                    ("stage", stage.as_str()),
                    ("error_type", kind),
                ],
                n,
            );
        }
        m.family(
            "logveil_dead_lettered_events_total",
            "counter",
            "Records that could not be redacted, sent to the dead-letter topic as placeholders.",
        );
        m.sample(
            "logveil_dead_lettered_events_total",
            &[],
            sample.dead_lettered,
        );

        m.family(
            "logveil_findings_total",
            "counter",
            "Secrets replaced, per rule.",
        );
        for (id, n) in self.rule_ids.iter().zip(&st.findings) {
            m.sample("logveil_findings_total", &[("rule", id)], *n);
        }
        m.family("logveil_batches_total", "counter", "Batches redacted.");
        m.sample("logveil_batches_total", &[], st.batches);
        m.histogram(
            "logveil_batch_engine_seconds",
            "Engine time per batch.",
            &st.engine_us,
            LATENCY_BOUNDS_US,
            1e6,
        );
        m.histogram(
            "logveil_record_latency_seconds",
            "Per record, from read to written (files and stdin).",
            &st.latency_us,
            LATENCY_BOUNDS_US,
            1e6,
        );
        drop(st);

        if sample.kafka {
            m.family(
                "logveil_kafka_consumer_lag",
                "gauge",
                "Per assigned partition: high watermark minus committed offset.",
            );
            sample.lag.sort();
            for (topic, partition, lag) in &sample.lag {
                m.sample(
                    "logveil_kafka_consumer_lag",
                    &[("topic", topic), ("partition", &partition.to_string())],
                    (*lag).max(0) as u64,
                );
            }
            let empty = Histogram::new(3).expect("histogram");
            m.histogram(
                "logveil_kafka_end_to_end_latency_seconds",
                "Per record, from its Kafka timestamp to its delivery.",
                sample.end_to_end_ms.as_ref().unwrap_or(&empty),
                END_TO_END_BOUNDS_MS,
                1e3,
            );
        }
        m.0
    }
}

#[derive(Default)]
struct Page(String);

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{k}=\"{}\"", escape(v));
        }
        self.0.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {v}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {v}");
    }

    /// A Prometheus histogram from an hdrhistogram of values in units of `1/scale` seconds.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        h: &Histogram<u64>,
        bounds: &[u64],
        scale: f64,
    ) {
        self.family(name, "histogram", help);
        let mut counts = vec![0u64; bounds.len()];
        let mut sum = 0f64;
        for v in h.iter_recorded() {
            let value = h.median_equivalent(v.value_iterated_to());
            let n = v.count_at_value();
            sum += value as f64 * n as f64;
            // The first bucket whose bound is at least the value.
            let i = bounds.partition_point(|&b| b < value);
            if let Some(c) = counts.get_mut(i) {
                *c += n;
            }
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (b, n) in bounds.iter().zip(counts) {
            cumulative += n;
            let le = (*b as f64 / scale).to_string();
            self.sample(&bucket, &[("le", &le)], cumulative);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.len());
        self.sample_f64(&format!("{name}_sum"), &[], sum / scale);
        self.sample(&format!("{name}_count"), &[], h.len());
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Probe;
    use std::sync::Arc;
    use std::time::Duration;

    struct KafkaLike;

    impl Probe for KafkaLike {
        fn sample(&self, s: &mut Sample) {
            s.kafka = true;
            s.sent_events = Some(7);
            s.dead_lettered = 2;
            s.errors.push((Stage::Receiving, "consumer_failed", 3));
            s.lag.push(("lo\"gs".into(), 1, 42));
            let mut h = Histogram::new(3).unwrap();
            h.record(30).unwrap();
            s.end_to_end_ms = Some(h);
        }
    }

    fn value(page: &str, series: &str) -> f64 {
        let line = page
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no series {series} in:\n{page}"));
        line[series.len() + 1..].parse().unwrap()
    }

    #[test]
    fn renders_counters_histograms_and_probes() {
        let stats = SharedStats::new(2);
        {
            let mut st = stats.lock();
            st.records = 10;
            st.bytes_in = 100;
            st.bytes_out = 120;
            st.findings = vec![0, 3];
            st.error(Stage::Sending, "writer_failed");
            for us in [40, 120, 120, 3_000, 40_000_000] {
                st.add_latency(Duration::from_micros(us), 1);
            }
        }
        let probes = Probes::default();
        probes.add(Arc::new(KafkaLike));
        let r = Registry::new(
            stats,
            probes,
            vec!["a-rule".into(), "b-rule".into()],
            "kafka",
            "file",
        );
        let page = r.render();
        let src = "{component_kind=\"source\",component_type=\"kafka\"}";
        assert_eq!(
            value(
                &page,
                &format!("logveil_component_received_events_total{src}")
            ),
            10.0
        );
        // The probe's delivered count wins over "records written".
        assert_eq!(
            value(
                &page,
                "logveil_component_sent_events_total{component_kind=\"sink\",component_type=\"file\"}"
            ),
            7.0
        );
        assert_eq!(value(&page, "logveil_findings_total{rule=\"a-rule\"}"), 0.0);
        assert_eq!(value(&page, "logveil_findings_total{rule=\"b-rule\"}"), 3.0);
        assert_eq!(value(&page, "logveil_dead_lettered_events_total"), 2.0);
        assert_eq!(
            value(&page, "logveil_component_errors_total{component_kind=\"sink\",stage=\"sending\",error_type=\"writer_failed\"}"),
            1.0
        );
        assert_eq!(
            value(&page, "logveil_component_errors_total{component_kind=\"source\",stage=\"receiving\",error_type=\"consumer_failed\"}"),
            3.0
        );
        // Cumulative buckets: 40 µs ≤ 50 µs; 120 µs twice ≤ 250 µs; 3 ms ≤ 5 ms; 40 s only in +Inf.
        let b = |le: &str| {
            value(
                &page,
                &format!("logveil_record_latency_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(b("0.00005"), 1.0);
        assert_eq!(b("0.0001"), 1.0);
        assert_eq!(b("0.00025"), 3.0);
        assert_eq!(b("0.005"), 4.0);
        assert_eq!(b("30"), 4.0);
        assert_eq!(b("+Inf"), 5.0);
        assert_eq!(value(&page, "logveil_record_latency_seconds_count"), 5.0);
        let sum = value(&page, "logveil_record_latency_seconds_sum");
        assert!((sum - 40.00328).abs() < 0.05, "{sum}");
        // Label values are escaped.
        assert_eq!(
            value(
                &page,
                "logveil_kafka_consumer_lag{topic=\"lo\\\"gs\",partition=\"1\"}"
            ),
            42.0
        );
        assert_eq!(
            value(
                &page,
                "logveil_kafka_end_to_end_latency_seconds_bucket{le=\"0.05\"}"
            ),
            1.0
        );
        // Every family is declared once, before its samples.
        let mut seen = std::collections::HashSet::new();
        for l in page.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(l.split(' ').nth(2).unwrap().to_string()), "{l}");
        }
    }

    #[test]
    fn no_kafka_families_without_a_kafka_input() {
        let r = Registry::new(
            SharedStats::new(1),
            Probes::default(),
            vec!["x".into()],
            "file",
            "none",
        );
        let page = r.render();
        assert!(!page.contains("kafka"), "{page}");
        assert!(page.contains("logveil_record_latency_seconds_bucket{le=\"+Inf\"} 0"));
    }
}
