//! Kafka throughput: `cargo bench --bench kafka`.
//!
//! Records are lines of the project's generated log corpus (1% carry a planted secret). For
//! each cluster, measured in the same run:
//! - **copy**: logveil's Kafka pipeline with no rules (consume, produce, track, commit): the
//!   baseline, which is what the broker and librdkafka cost;
//! - **redact**: the same with the full rule library.
//!
//! Clusters: librdkafka's in-process mock cluster (`rdkafka::mocking`), which isolates
//! logveil's own overhead, and a real tansu broker (sqlite storage) on loopback.
//! Environment: `LOGVEIL_BENCH_RECORDS` (default 50000: the mock cluster keeps only about
//! 13 MB per partition set, and drops older records beyond that), `LOGVEIL_BENCH_ROUNDS`
//! (default 5: each figure is the median of that many interleaved passes).

#[path = "../tests/support/tansu.rs"]
mod tansu;

use std::sync::Arc;
use std::time::{Duration, Instant};

use logveil::config::PipelineConfig;
use logveil::engine::{Engine, Matcher};
use logveil::fingerprint::{Key, Keyring, Template};
use logveil::pipeline::Pipeline;
use logveil::rules::RuleSet;
use logveil::sinks::kafka::config::KafkaSinkConfig;
use logveil::sinks::kafka::KafkaSink;
use logveil::sources::kafka::config::KafkaSourceConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PARTITIONS: i32 = 3;

fn engine(full: bool) -> Engine {
    let rules = if full {
        RuleSet::builtin().expect("rules").enabled()
    } else {
        Vec::new()
    };
    let key = Key::parse("bench", "logveil-bench-key-thirty-two-byte", "bench").expect("key");
    Engine::new(
        Matcher::new(rules),
        Keyring::single(key),
        Template::default(),
    )
}

/// Counts failed deliveries of the loader.
#[derive(Default)]
struct Failures(std::sync::Mutex<(u64, String)>);

impl rdkafka::ClientContext for Failures {}

impl rdkafka::producer::ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            let mut f = self.0.lock().unwrap();
            f.0 += 1;
            f.1 = e.to_string();
        }
    }
}

fn produce(brokers: &str, topic: &str, lines: &[&[u8]]) {
    let p: BaseProducer<Failures> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create_with_context(Failures::default())
        .expect("producer");
    for (i, line) in lines.iter().enumerate() {
        let key = format!("k{}", i % 64);
        let mut rec = BaseRecord::to(topic).key(&key).payload(*line);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let f = p.context().0.lock().unwrap();
    assert_eq!(f.0, 0, "{} records not delivered to {topic}: {}", f.0, f.1);
}

fn topic_size(c: &BaseConsumer, topic: &str) -> i64 {
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |w| w.1)
        })
        .sum()
}

/// Runs logveil's Kafka pipeline in-process from `raw` to `out` until `n` records are there;
/// returns records per second (steady state) and the time to the first record out.
fn pass(
    brokers: &str,
    group: &str,
    out: &str,
    n: usize,
    full: bool,
    threads: usize,
) -> (f64, Duration) {
    let src = KafkaSourceConfig {
        brokers: Some(brokers.to_string()),
        topics: vec!["raw".into()],
        group: group.into(),
        ..KafkaSourceConfig::default()
    };
    let sink = KafkaSinkConfig {
        brokers: Some(brokers.to_string()),
        topic: Some(out.into()),
        ..KafkaSinkConfig::default()
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = Arc::clone(&stop);
    let engine = engine(full);
    let t0 = Instant::now();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut pipeline = Pipeline::new(engine, threads, PipelineConfig::default());
        let report = rt
            .block_on(async {
                let mut sink = tokio::task::spawn_blocking(move || KafkaSink::open(sink))
                    .await
                    .expect("open")?;
                logveil::sources::kafka::run(src, &mut sink, &mut pipeline, Some(stop2)).await
            })
            .expect("kafka pipeline");
        eprint!("{report}");
    });
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("consumer");
    // Steady state: from the first record out (after the group join) to the last.
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let size = topic_size(&c, out);
        if size > 0 && first.is_none() {
            first = Some((Instant::now(), size));
        }
        if size >= n as i64 {
            break;
        }
        assert!(!worker.is_finished(), "the pipeline stopped early");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (t1, at1) = first.expect("output seen");
    let join = t1 - t0;
    let rate = (n as i64 - at1) as f64 / t1.elapsed().as_secs_f64().max(1e-6);
    stop.notify_one();
    worker.join().expect("pipeline thread");
    (rate, join)
}

fn cluster(name: &str, brokers: &str, create: &dyn Fn(&str), lines: &[&[u8]], rounds: usize) {
    create("raw");
    let t = Instant::now();
    produce(brokers, "raw", lines);
    let n = lines.len();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("consumer");
    assert_eq!(
        topic_size(&c, "raw"),
        n as i64,
        "the input topic did not get every record"
    );
    let low: i64 = (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks("raw", p, Duration::from_secs(10))
                .map_or(0, |w| w.0)
        })
        .sum();
    assert_eq!(
        low, 0,
        "{name} dropped old records (retention): use fewer records"
    );
    let produced = n as f64 / t.elapsed().as_secs_f64();
    // The baseline and the target both with 2 redaction threads (the CLI's default on this
    // 2-core machine); 1 thread shows what the pool adds. A steady-state window of 50,000
    // records lasts a fraction of a second on the mock cluster, so one pass is noise: each
    // variant runs `rounds` times, interleaved (the order rotates every round, so none always
    // runs first), and the median counts.
    let variants: [(&str, bool, usize); 3] = [
        ("copy", false, 2),
        ("redact1", true, 1),
        ("redact2", true, 2),
    ];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut join = Duration::ZERO;
    for round in 0..rounds {
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            let (label, full, threads) = variants[v];
            let out = format!("{label}-{round}");
            create(&out);
            let (rate, j) = pass(brokers, &format!("bench-{out}"), &out, n, full, threads);
            rates[v].push(rate);
            join = join.max(j);
        }
    }
    // Per round, each redact pass against the copy pass of the same round: the spread says
    // how much one pass can be trusted.
    let spread = |r: &[f64]| {
        let ratios: Vec<f64> = r.iter().zip(&rates[0]).map(|(a, c)| a / c).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        format!("{lo:.2}-{hi:.2}")
    };
    let (s1, s2) = (spread(&rates[1]), spread(&rates[2]));
    let [copy, redact1, redact2] = rates.map(median);
    println!(
        "{name:<36} produce {produced:>8.0} rec/s  copy {copy:>8.0} rec/s  redact(1 thread) {redact1:>8.0} rec/s = {:.2}x (rounds {s1})  redact(2 threads) {redact2:>8.0} rec/s = {:.2}x (rounds {s2}) of copy  (median of {rounds}; first record out after {:.1} s at most)",
        redact1 / copy,
        redact2 / copy,
        join.as_secs_f64()
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no such flag: be quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = if quick {
        2_000
    } else {
        std::env::var("LOGVEIL_BENCH_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000)
    };
    let (data, _) = logveil::corpus::generate_vec((n as u64) * 400, 7, 0.01);
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(n)
        .collect();
    let rounds: usize = if quick {
        1
    } else {
        std::env::var("LOGVEIL_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
    };
    let avg = lines.iter().map(|l| l.len()).sum::<usize>() / lines.len().max(1);
    println!(
        "{} records (corpus lines, avg {avg} bytes, 1% with a planted secret), {PARTITIONS} partitions",
        lines.len()
    );

    let mock = MockCluster::new(1).expect("mock cluster");
    let mock_brokers = mock.bootstrap_servers();
    cluster(
        "librdkafka mock cluster (in-process)",
        &mock_brokers,
        &|t| mock.create_topic(t, PARTITIONS, 1).expect("mock topic"),
        &lines,
        rounds,
    );

    let broker = tansu::Broker::start().expect("tansu broker (bash tests/install-tansu.sh)");
    cluster(
        "tansu broker (sqlite, loopback)",
        &broker.addr(),
        &|t| broker.create_topic(t, PARTITIONS).expect("tansu topic"),
        &lines,
        rounds,
    );
}
