//! End-to-end tests of logveil between Kafka topics, against a real Kafka-protocol broker:
//! tansu (installed by `tests/install-tansu.sh`, which `tests/run.sh` runs first), started
//! here as a separate process per test on a free loopback port with sqlite storage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "support/tansu.rs"]
mod tansu;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const KEY: &str = "logveil-test-key-thirty-two-byte";

/// The tests share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tansu broker for one test; panics with the reason when it cannot start.
struct Broker(tansu::Broker);

impl Broker {
    fn start() -> Broker {
        Broker(tansu::Broker::start().expect("start the tansu broker"))
    }
    fn addr(&self) -> String {
        self.0.addr()
    }
    fn create_topic(&self, name: &str, partitions: i32) {
        self.0.create_topic(name, partitions).expect("create topic");
    }
    fn restart(&mut self, down_for: Duration) {
        self.0.restart(down_for).expect("restart the tansu broker");
    }
}

fn consumer(b: &Broker, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b.addr())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap()
}

/// One produced or consumed record, owned.
#[derive(Debug, Clone, Default)]
struct Rec {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    ts: Option<i64>,
    /// A null value (tombstone), not an empty one.
    null: bool,
}

impl Rec {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
    fn header(&self, k: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|h| h.0 == k)
            .map(|h| String::from_utf8_lossy(&h.1).into_owned())
    }
}

fn produce(b: &Broker, topic: &str, recs: &[Rec]) {
    produce_to(&b.addr(), topic, recs)
}

fn produce_to(addr: &str, topic: &str, recs: &[Rec]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for r in recs {
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic);
        if !r.null {
            rec = rec.payload(&r.value[..]);
        }
        if let Some(k) = &r.key {
            rec = rec.key(&k[..]);
        }
        if r.partition >= 0 {
            rec = rec.partition(r.partition);
        }
        if let Some(ts) = r.ts {
            rec = rec.timestamp(ts);
        }
        if !r.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in &r.headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(&v[..]),
                });
            }
            rec = rec.headers(h);
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(20));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .expect("test producer flush");
}

/// Reads a whole topic from the beginning until `want` records arrived (or `wait` passed).
fn read_topic(b: &Broker, topic: &str, want: usize, wait: Duration) -> Vec<Rec> {
    let c = consumer(b, &format!("verify-{topic}-{}", std::process::id()));
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(Rec {
                partition: m.partition(),
                key: m.key().map(|k| k.to_vec()),
                value: m.payload().unwrap_or(&[]).to_vec(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                ts: m.timestamp().to_millis(),
                null: m.payload().is_none(),
            });
        }
    }
    out
}

/// Records in a topic now (sum of high watermarks).
fn topic_size(b: &Broker, topic: &str) -> i64 {
    let c = consumer(b, "size");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

/// Offsets committed by `group` per partition of `topic`.
fn committed(b: &Broker, group: &str, topic: &str, parts: i32) -> Vec<i64> {
    let c = consumer(b, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..parts)
        .map(|p| match got.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

fn logveil(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logveil"));
    c.env("LOGVEIL_KEY", KEY).args(args);
    c
}

/// A logveil process that is killed if a failing test leaves it running.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(mut c: Command) -> Proc {
    Proc(
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logveil"),
    )
}

fn sigterm(child: &Proc) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits for exit; returns the status and stderr.
fn wait_exit(mut child: Proc, within: Duration) -> (ExitStatus, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).unwrap();
            }
            return (st, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("logveil did not exit within {within:?}; stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The record id planted in a value as `id=N `.
fn id_of(text: &str) -> Option<u64> {
    let at = text.find("id=")? + 3;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A fake secret unique to record `i`, which only logveil's password rule can see.
fn planted(i: u64) -> String {
    format!("Zq{i:07}Xw")
}

fn contains_planted(text: &str) -> bool {
    text.match_indices("Zq").any(|(at, _)| {
        text[at + 2..].chars().take(7).all(|c| c.is_ascii_digit()) && text.len() >= at + 11
    })
}

/// Mixed records with ids, keys, headers and planted secrets, spread over partitions by key.
fn records(n: u64) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition: -1,
            key: Some(format!("user-{}", i % 17).into_bytes()),
            value: format!(
                "2026-11-02T10:00:00Z INFO id={i} login ok user=u{} password={}",
                i % 17,
                planted(i)
            )
            .into_bytes(),
            headers: vec![("trace".into(), format!("t{i}").into_bytes())],
            ts: Some(1_790_000_000_000 + i as i64),
            null: false,
        })
        .collect()
}

#[test]
fn kafka_to_kafka_redacts_values_keys_headers_and_keeps_metadata() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 3);
    b.create_topic("clean", 3);
    let mut input = records(300);
    // Secrets in a key and in a header.
    input[5].key = Some(b"password=Hk7rT2mQ9x".to_vec());
    input[6].headers.push((
        "authorization".into(),
        b"Bearer Mz8Qp3Lr7Tk2Vw9Xy4".to_vec(),
    ));
    // A private key printed one line per record, in one partition, and a record after it.
    let pem = [
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA7qZbW9mX2k4Lr8Tq1vYc3pN6sH0dJfE5uG2aB7cD9eF1gH3i",
        "J5kL7mN9oP1qR3sT5uV7wX9yZ1aB3cD5eF7gH9iJ1kL3mN5oP7qR9sT1uV3wX5y",
        "-----END RSA PRIVATE KEY-----",
        "id=9999 after the key",
    ];
    for (j, line) in pem.iter().enumerate() {
        input.push(Rec {
            partition: 1,
            key: None,
            value: line.as_bytes().to_vec(),
            headers: vec![("pem".into(), j.to_string().into_bytes())],
            ts: Some(1_790_000_100_000 + j as i64),
            null: false,
        });
    }
    produce(&b, "raw", &input);

    let src = format!("kafka://{}/raw?group=g1&stats_interval_secs=1", b.addr());
    let dst = format!("kafka://{}/clean", b.addr());
    let child = spawn(logveil(&["run", &src, "-o", &dst, "--stats"]));
    let out = read_topic(&b, "clean", input.len(), Duration::from_secs(90));
    // The periodic statistics are asserted below: keep the stage running for more than two
    // of its 1-second intervals after the last record (a fast run used to end within one, so
    // the test depended on the machine's speed).
    std::thread::sleep(Duration::from_millis(2500));
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "logveil failed: {err}");
    assert_eq!(out.len(), input.len(), "records missing; stderr: {err}");
    assert!(
        err.contains("records/s") && err.contains("end-to-end latency"),
        "{err}"
    );
    // Every second while running, and once more at exit.
    assert!(
        err.matches("consumer lag per partition").count() >= 2,
        "{err}"
    );

    let by_id: HashMap<u64, &Rec> = out
        .iter()
        .filter_map(|r| id_of(&r.text()).map(|i| (i, r)))
        .collect();
    for (i, r) in input.iter().enumerate().take(300) {
        let o = by_id
            .get(&(i as u64))
            .unwrap_or_else(|| panic!("record {i} missing"));
        let text = o.text();
        assert!(!contains_planted(&text), "record {i} leaked its password");
        assert!(
            text.contains("password=[REDACTED:"),
            "record {i} not redacted"
        );
        assert_eq!(o.ts, r.ts, "record {i}: timestamp not kept");
        assert_eq!(
            o.header("trace"),
            r.header("trace"),
            "record {i}: header not kept"
        );
        if i != 5 {
            assert_eq!(o.key, r.key, "record {i}: key not kept");
        }
    }
    // Key and header secrets.
    let k5 = String::from_utf8(by_id[&5].key.clone().unwrap()).unwrap();
    assert!(
        k5.starts_with("password=[REDACTED:") && !k5.contains("Hk7r"),
        "key not redacted"
    );
    let a6 = by_id[&6].header("authorization").unwrap();
    assert!(
        a6.starts_with("Bearer [REDACTED:") && !a6.contains("Mz8Q"),
        "header not redacted"
    );
    // Same key, same output partition.
    let mut part_of_key: HashMap<Vec<u8>, i32> = HashMap::new();
    for r in out.iter().filter(|r| r.key.is_some()) {
        let p = *part_of_key
            .entry(r.key.clone().unwrap())
            .or_insert(r.partition);
        assert_eq!(p, r.partition, "one key in two partitions");
    }
    // The private key: the BEGIN line and every body record redacted (as in files), the END
    // line and the next record kept.
    let mut pem_out: Vec<&Rec> = out.iter().filter(|r| r.header("pem").is_some()).collect();
    pem_out.sort_by_key(|r| r.header("pem"));
    assert_eq!(pem_out.len(), 5);
    for r in &pem_out[0..3] {
        assert!(
            r.text().starts_with("[REDACTED:pem-private-key:"),
            "{}",
            logveil::text::preview(&r.text())
        );
    }
    assert_eq!(pem_out[3].text(), pem[3]);
    assert_eq!(pem_out[4].text(), pem[4]);
    // Everything read was committed after delivery.
    let c = committed(&b, "g1", "raw", 3);
    let total: i64 = c.iter().sum();
    assert_eq!(total, input.len() as i64, "committed offsets {c:?}");
}

/// `logveil run` from raw to clean as one instance of consumer group `group`.
fn instance_cmd(b: &Broker, group: &str) -> Command {
    let src = format!(
        "kafka://{}/raw?group={group}&commit_interval_ms=500&session.timeout.ms=6000",
        b.addr()
    );
    let dst = format!("kafka://{}/clean", b.addr());
    logveil(&["run", &src, "-o", &dst])
}

fn instance(b: &Broker, group: &str) -> Proc {
    spawn(instance_cmd(b, group))
}

/// The partitions an instance holds now, from its log.
fn assignment(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut now = Vec::new();
    for line in text.lines() {
        if let Some(parts) = line.strip_prefix("logveil: kafka source: assigned") {
            now = parts.split_whitespace().map(String::from).collect();
        } else if line.contains("rebalance: giving up") {
            now.clear();
        }
    }
    now
}

/// [`instance`] with its stderr in a file, to see its partition assignments while it runs.
fn instance_logged(b: &Broker, group: &str, log: &std::path::Path) -> Proc {
    Proc(
        instance_cmd(b, group)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn logveil"),
    )
}

/// Produces `records(n)` to raw in chunks with pauses, from a thread.
fn feed_paced(b: &Broker, n: u64, chunk: usize) -> std::thread::JoinHandle<()> {
    let addr = b.addr();
    std::thread::spawn(move || {
        for c in records(n).chunks(chunk) {
            produce_to(&addr, "raw", c);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Waits until a third of `n` records reached clean; returns how many did.
fn wait_for_a_third(b: &Broker, n: u64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let size = topic_size(b, "clean");
        if size >= n as i64 / 3 {
            return size;
        }
        assert!(
            Instant::now() < deadline,
            "less than a third through within 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads clean until every id below `n` is there (duplicates make it longer), or 600 s.
fn read_all_ids(b: &Broker, n: u64) -> Vec<Rec> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        // Reading the whole topic is slow on this broker: only once it holds enough records.
        let size = topic_size(b, "clean");
        if size >= n as i64 || Instant::now() > deadline {
            let got = read_topic(b, "clean", size as usize, Duration::from_secs(120));
            let ids: HashSet<u64> = got.iter().filter_map(|r| id_of(&r.text())).collect();
            if ids.len() as u64 == n || Instant::now() > deadline {
                return got;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks that every id in 0..n arrived, none leaked; returns the number of duplicates.
fn check_all_arrived(out: &[Rec], n: u64) -> usize {
    let mut seen = HashSet::new();
    let mut dups = 0;
    for r in out {
        let text = r.text();
        assert!(
            !contains_planted(&text),
            "a planted secret reached the clean topic"
        );
        let id = id_of(&text).expect("record without id");
        if !seen.insert(id) {
            dups += 1;
        }
    }
    let missing: Vec<u64> = (0..n).filter(|i| !seen.contains(i)).take(10).collect();
    assert!(missing.is_empty(), "records lost, e.g. {missing:?}");
    dups
}

#[test]
fn kafka_scale_out_two_instances_one_killed_and_restarted_loses_nothing() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 6);
    b.create_topic("clean", 6);
    // 20,000 records in 50 paced chunks: the kill lands mid-stream (asserted below) and the
    // group rebalances while records still arrive; more records only make the sqlite broker
    // the long pole of the suite (100,000 took minutes).
    let n = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (alog, klog) = (dir.path().join("a.log"), dir.path().join("killed.log"));
    let a = instance_logged(&b, "scale", &alog);
    let mut k = instance_logged(&b, "scale", &klog);
    // The group has settled over both instances: each owns some of the 6 partitions ...
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (pa, pk) = (assignment(&alog), assignment(&klog));
        if !pa.is_empty() && !pk.is_empty() && pa.len() + pk.len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle over two instances"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then the records arrive at a steady pace, and mid-stream one instance dies.
    let feeder = feed_paced(&b, n, 400);
    wait_for_a_third(&b, n);
    k.kill().unwrap();
    k.wait().unwrap();
    let at = topic_size(&b, "clean");
    assert!(
        at < n as i64 * 2 / 3,
        "the kill came too late to be mid-stream"
    );
    let k2 = instance(&b, "scale");
    feeder.join().unwrap();
    read_all_ids(&b, n);
    // Let the survivors commit, then count.
    std::thread::sleep(Duration::from_secs(2));
    let total = topic_size(&b, "clean");
    let all = read_topic(&b, "clean", total as usize, Duration::from_secs(120));
    let dups = check_all_arrived(&all, n);
    eprintln!(
        "scale-out: {n} records in, {} out, {dups} duplicates after one SIGKILL at {at} records out",
        all.len()
    );
    for c in [a, k2] {
        sigterm(&c);
        let (st, err) = wait_exit(c, Duration::from_secs(60));
        assert!(st.success(), "{err}");
    }
    let c = committed(&b, "scale", "raw", 6);
    assert_eq!(c.iter().sum::<i64>(), n as i64, "committed {c:?}");
}

#[test]
fn kafka_broker_restart_mid_stream_loses_nothing() {
    let _g = serial();
    let mut b = Broker::start();
    b.create_topic("raw", 3);
    b.create_topic("clean", 3);
    let n = 30_000;
    let child = instance(&b, "restart");
    let feeder = feed_paced(&b, n, 1000);
    let at = wait_for_a_third(&b, n);
    b.restart(Duration::from_secs(3));
    feeder.join().unwrap();
    let out = read_all_ids(&b, n);
    let dups = check_all_arrived(&out, n);
    eprintln!(
        "broker restart: {n} records in, {} out, {dups} duplicates; broker killed at {at} out",
        out.len()
    );
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert!(
        err.contains("retrying") || err.contains("rebalance"),
        "outage not logged: {err}"
    );
}

#[test]
fn kafka_unredactable_records_are_dead_lettered_or_stop_the_pipeline() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 1);
    b.create_topic("clean", 1);
    b.create_topic("dlq", 1);
    let mut input = records(10);
    input[4].value = format!("id=4 password={} {}", planted(4), "x".repeat(5000)).into_bytes();
    produce(&b, "raw", &input);

    // Stop: exit 2, nothing from offset 4 on is committed, the record is never produced.
    let src = format!("kafka://{}/raw?group=stop&max_message_bytes=2000", b.addr());
    let dst = format!("kafka://{}/clean", b.addr());
    let (st, err) = wait_exit(
        spawn(logveil(&["run", &src, "-o", &dst])),
        Duration::from_secs(60),
    );
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot be redacted") && err.contains("oversized"),
        "{err}"
    );
    assert!(!err.contains("Zq00"), "stderr shows the secret");
    let c = committed(&b, "stop", "raw", 1);
    assert!(
        c[0] <= 4,
        "offset of the unredactable record committed: {c:?}"
    );
    let out = read_topic(&b, "clean", 10, Duration::from_secs(5));
    assert!(out.iter().all(|r| id_of(&r.text()) != Some(4)));

    // Dead letter: a placeholder with the reason; the rest goes on.
    let src = format!("kafka://{}/raw?group=dl&max_message_bytes=2000", b.addr());
    let dst = format!(
        "kafka://{}/clean?on_unredactable=dead-letter&dead_letter_topic=dlq",
        b.addr()
    );
    let child = spawn(logveil(&["run", &src, "-o", &dst]));
    let dlq = read_topic(&b, "dlq", 1, Duration::from_secs(60));
    let out = read_topic(&b, "clean", 13, Duration::from_secs(10));
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0]
        .text()
        .starts_with("[logveil: record withheld: oversized"));
    assert!(!contains_planted(&dlq[0].text()));
    assert_eq!(
        dlq[0].header("logveil-reason").unwrap().split(':').next(),
        Some("oversized")
    );
    assert_eq!(dlq[0].header("logveil-source-offset").as_deref(), Some("4"));
    let ids: HashSet<u64> = out.iter().filter_map(|r| id_of(&r.text())).collect();
    assert!(ids.contains(&9) && !ids.contains(&4), "{ids:?}");
    assert_eq!(committed(&b, "dl", "raw", 1), vec![10]);
}

#[test]
fn kafka_startup_errors_are_clear_and_fail_within_the_timeout() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 1);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            format!("kafka://127.0.0.1:{dead}/raw?startup_timeout_secs=3"),
            format!("kafka://{}/raw", b.addr()),
            vec!["cannot reach brokers", "startup_timeout_secs"],
        ),
        (
            format!("kafka://{}/nope?startup_timeout_secs=5", b.addr()),
            format!("kafka://{}/raw", b.addr()),
            vec!["topic 'nope' does not exist"],
        ),
        (
            format!("kafka://{}/raw", b.addr()),
            format!("kafka://{}/missing-out?startup_timeout_secs=5", b.addr()),
            vec!["kafka output", "topic 'missing-out' does not exist"],
        ),
        (
            // Bad credentials: this broker speaks no SASL, so the handshake never completes.
            format!(
                "kafka://{}/raw?security.protocol=SASL_PLAINTEXT&sasl.mechanisms=PLAIN&sasl.username=u&sasl.password=Sup3rS3cretPw&startup_timeout_secs=5",
                b.addr()
            ),
            format!("kafka://{}/raw", b.addr()),
            vec!["cannot reach brokers", "credentials"],
        ),
        (
            format!("kafka://{}/raw?no.such.property=1", b.addr()),
            format!("kafka://{}/raw", b.addr()),
            vec!["no.such.property"],
        ),
        (
            format!(
                "kafka://{}/raw?sasl.password=Sup3rS3cretPw&security.protocol=bogus",
                b.addr()
            ),
            format!("kafka://{}/raw", b.addr()),
            vec!["security.protocol"],
        ),
    ];
    // All cases at once (each waits out its own timeout; one after another they took ~30 s).
    let t0 = Instant::now();
    let running: Vec<_> = cases
        .into_iter()
        .map(|(src, dst, needles)| (spawn(logveil(&["run", &src, "-o", &dst])), needles))
        .collect();
    for (child, needles) in running {
        let (st, err) = wait_exit(child, Duration::from_secs(40));
        assert_eq!(st.code(), Some(2), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "took {:?}",
            t0.elapsed()
        );
        for n in needles {
            assert!(err.contains(n), "missing {n:?} in {err}");
        }
        assert!(
            !err.contains("Sup3rS3cretPw"),
            "a property value was echoed"
        );
    }
}

#[test]
fn files_to_kafka_and_kafka_to_stdout() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("lines", 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.log");
    let text: String = (0..50)
        .map(|i| format!("id={i} password={}\n", planted(i)))
        .collect();
    std::fs::write(&file, &text).unwrap();
    let dst = format!("kafka://{}/lines", b.addr());
    let o = logveil(&["run", file.to_str().unwrap(), "-o", &dst])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = read_topic(&b, "lines", 50, Duration::from_secs(30));
    assert_eq!(out.len(), 50);
    let ids: BTreeMap<u64, String> = out
        .iter()
        .map(|r| (id_of(&r.text()).unwrap(), r.text()))
        .collect();
    assert_eq!(ids.len(), 50);
    assert!(ids
        .values()
        .all(|t| t.contains("password=[REDACTED:") && !t.ends_with('\n')));

    // Back out to stdout, one line per record.
    let src = format!("kafka://{}/lines?group=out", b.addr());
    let child = spawn(logveil(&["run", &src]));
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    // -1: nothing committed (a partition that got no records).
    while committed(&b, "out", "lines", 2)
        .iter()
        .map(|&o| o.max(0))
        .sum::<i64>()
        < 50
    {
        if Instant::now() > deadline {
            let c = committed(&b, "out", "lines", 2);
            sigterm(&child);
            let (_, err) = wait_exit(child, Duration::from_secs(30));
            panic!("stdout run did not commit (committed {c:?}); stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let mut child = child;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (st, err) = wait_exit(child, Duration::from_secs(30));
    assert!(st.success(), "{err}");
    assert_eq!(stdout.lines().count(), 50);
    assert!(!contains_planted(&stdout));
}

#[test]
fn kafka_partitioning_by_input_partition() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 3);
    b.create_topic("clean", 3);
    // One key for all, spread by hand: the key partitioner would put them all together.
    let input: Vec<Rec> = records(60)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.partition = (i % 3) as i32;
            r.key = Some(b"same-key".to_vec());
            r
        })
        .collect();
    produce(&b, "raw", &input);
    let src = format!("kafka://{}/raw?group=p", b.addr());
    let dst = format!("kafka://{}/clean?partitioning=input", b.addr());
    let child = spawn(logveil(&["run", &src, "-o", &dst]));
    let out = read_topic(&b, "clean", 60, Duration::from_secs(60));
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert_eq!(out.len(), 60);
    for r in &out {
        let id = id_of(&r.text()).unwrap();
        assert_eq!(
            r.partition as u64,
            id % 3,
            "record {id} left its partition number"
        );
    }
}

#[test]
fn kafka_stop_inside_a_private_key_resumes_at_its_begin_line_and_tombstones_stay_null() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("raw", 1);
    b.create_topic("clean", 1);
    let line = |v: &str| Rec {
        partition: 0,
        value: v.as_bytes().to_vec(),
        ..Rec::default()
    };
    let body1 = "MIIEowIBAAKCAQEA7qZbW9mX2k4Lr8Tq1vYc3pN6sH0dJfE5uG2aB7cD9eF1gH3i";
    let body2 = "J5kL7mN9oP1qR3sT5uV7wX9yZ1aB3cD5eF7gH9iJ1kL3mN5oP7qR9sT1uV3wX5y";
    // A tombstone, then a key whose END has not been logged yet.
    let mut first = vec![Rec {
        partition: 0,
        key: Some(b"gone".to_vec()),
        null: true,
        ..Rec::default()
    }];
    first.push(line("id=1 before"));
    first.push(line("-----BEGIN OPENSSH PRIVATE KEY-----"));
    first.push(line(body1));
    produce(&b, "raw", &first);
    let src = format!("kafka://{}/raw?group=pk&commit_interval_ms=200", b.addr());
    let dst = format!("kafka://{}/clean", b.addr());
    let child = spawn(logveil(&["run", &src, "-o", &dst]));
    let out = read_topic(&b, "clean", 4, Duration::from_secs(60));
    assert_eq!(out.len(), 4);
    std::thread::sleep(Duration::from_millis(600));
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert!(
        out[0].null && out[0].key.as_deref() == Some(&b"gone"[..]),
        "tombstone not kept"
    );
    // Stopped inside the key: the commit stops at its BEGIN record (offset 2).
    assert_eq!(committed(&b, "pk", "raw", 1), vec![2]);

    // The rest of the key arrives; the next run starts at BEGIN and still knows the body.
    produce(
        &b,
        "raw",
        &[
            line(body2),
            line("-----END OPENSSH PRIVATE KEY-----"),
            line("id=2 after"),
        ],
    );
    let child = spawn(logveil(&["run", &src, "-o", &dst]));
    let out = read_topic(&b, "clean", 9, Duration::from_secs(60));
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert_eq!(
        out.len(),
        9,
        "BEGIN and the first body line come again, then the rest"
    );
    for r in &out {
        let t = r.text();
        assert!(
            !t.contains("MIIEow") && !t.contains("J5kL7m"),
            "key body leaked: {}",
            logveil::text::preview(&t)
        );
    }
    assert_eq!(out[8].text(), "id=2 after");
    assert_eq!(committed(&b, "pk", "raw", 1), vec![7]);
}

/// Runs `logveil run SRC -o OUT` until the group has committed `want` records over
/// `parts` partitions, then stops it with SIGTERM and asserts a clean exit.
fn run_until_committed(b: &Broker, src: &str, out: &str, group: &str, parts: i32, want: i64) {
    let child = spawn(logveil(&["run", src, "-o", out]));
    let deadline = Instant::now() + Duration::from_secs(60);
    // -1: nothing committed (a partition that got no records).
    while committed(b, group, "multi", parts)
        .iter()
        .map(|&o| o.max(0))
        .sum::<i64>()
        < want
    {
        if Instant::now() > deadline {
            let c = committed(b, group, "multi", parts);
            sigterm(&child);
            let (_, err) = wait_exit(child, Duration::from_secs(30));
            panic!("run to {out} did not commit {want} (committed {c:?}); stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let (st, err) = wait_exit(child, Duration::from_secs(30));
    assert!(st.success(), "{err}");
}

/// Kafka into a directory: one file per partition, a line per record, acknowledged (and so
/// committed) once flushed; a second run on the same group appends what is new.
#[test]
fn kafka_to_directory_one_file_per_partition_appended() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("multi", 2);
    let recs = |from: u64, to: u64| -> Vec<Rec> {
        (from..to)
            .map(|i| Rec {
                partition: (i % 2) as i32,
                value: format!("id={i} password={}", planted(i)).into_bytes(),
                ..Rec::default()
            })
            .collect()
    };
    produce(&b, "multi", &recs(0, 40));
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{}/", dir.path().join("out").display());
    let src = format!("kafka://{}/multi?group=dir", b.addr());
    run_until_committed(&b, &src, &out, "dir", 2, 40);
    let read = |p: i32| -> String {
        std::fs::read_to_string(dir.path().join("out").join(format!("multi-{p}.log")))
            .unwrap_or_default()
    };
    let (p0, p1) = (read(0), read(1));
    assert_eq!(p0.lines().count() + p1.lines().count(), 40, "{p0}\n{p1}");
    assert!(!contains_planted(&p0) && !contains_planted(&p1));
    // Each partition's file holds that partition's records, in offset order.
    let ids = |t: &str| -> Vec<u64> { t.lines().filter_map(id_of).collect() };
    assert_eq!(ids(&p0), (0..40).step_by(2).collect::<Vec<u64>>());
    assert_eq!(ids(&p1), (1..40).step_by(2).collect::<Vec<u64>>());

    // Restart on the same group: only the new records are read, and they are appended.
    produce(&b, "multi", &recs(40, 60));
    run_until_committed(&b, &src, &out, "dir", 2, 60);
    let (q0, q1) = (read(0), read(1));
    assert!(
        q0.starts_with(&p0) && q1.starts_with(&p1),
        "earlier output lost"
    );
    let mut all: Vec<u64> = ids(&q0).into_iter().chain(ids(&q1)).collect();
    all.sort();
    all.dedup();
    assert_eq!(all, (0..60).collect::<Vec<u64>>());
    assert!(q0.lines().all(|l| l.contains("password=[REDACTED:")));
}

/// `GET /metrics` on `addr`.
fn scrape(addr: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    resp.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn series(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn kafka_metrics_show_deliveries_lag_and_pass_promtool() {
    let _g = serial();
    let b = Broker::start();
    b.create_topic("metered", 2);
    let n = 40;
    produce(&b, "metered", &records(n));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let src = format!("kafka://{}/metered?group=metrics", b.addr());
    let mut child = spawn(logveil(&[
        "run",
        &src,
        "-o",
        out.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ]));
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut notice = String::new();
    std::io::BufRead::read_line(&mut err, &mut notice).unwrap();
    let addr = notice
        .trim()
        .strip_prefix("logveil: metrics at http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics notice: {notice}"))
        .to_string();
    // Drain stderr so that the child never blocks on it.
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let lag = |p: i32| format!("logveil_kafka_consumer_lag{{topic=\"metered\",partition=\"{p}\"}}");
    let sent =
        "logveil_component_sent_events_total{component_kind=\"sink\",component_type=\"file\"}";
    // Everything delivered, committed, and the client's statistics caught up: lag 0 on both
    // partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = scrape(&addr);
        if series(&page, sent) == Some(n as f64)
            && series(&page, &lag(0)) == Some(0.0)
            && series(&page, &lag(1)) == Some(0.0)
        {
            break page;
        }
        if Instant::now() > deadline {
            sigterm(&child);
            let _ = child.wait();
            let err = err_text.join().unwrap();
            panic!("metrics never showed {n} delivered and lag 0:\n{page}\nstderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        series(
            &page,
            "logveil_component_received_events_total{component_kind=\"source\",component_type=\"kafka\"}"
        ),
        Some(n as f64),
        "{page}"
    );
    assert_eq!(
        series(
            &page,
            "logveil_findings_total{rule=\"generic-password-assignment\"}"
        ),
        Some(n as f64),
        "{page}"
    );
    assert_eq!(
        series(&page, "logveil_kafka_end_to_end_latency_seconds_count"),
        Some(n as f64),
        "{page}"
    );
    assert_eq!(
        series(&page, "logveil_dead_lettered_events_total"),
        Some(0.0)
    );
    assert!(!contains_planted(&page), "a planted secret in the scrape");
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (installed by tests/install-tools.sh)");
    p.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "logveil did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = err_text.join().unwrap();
    assert!(st.success(), "{err}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        n as usize
    );
}
