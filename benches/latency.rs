//! Streaming latency, measured from outside the process: `cargo bench --bench latency`.
//!
//! A paced writer sends corpus lines to the command's stdin, one `write(2)` per line, each
//! prefixed with a sequence number; a reader thread takes the command's stdout and notes
//! when each numbered line comes out. Per-line latency is write → read. Measured in the same
//! run for `cat` (the floor of this machine: two pipes and the scheduler) and for
//! `logveil run` (stdin → stdout, full library, default threads), at each rate.
//!
//! Two figures per rate: *cold*, the stream starts as the process is spawned (the first
//! lines wait for start-up: what a shipper that restarts its filter sees), and *warm*, the
//! timed stream starts once a first line has come back through (steady state).
//! Nothing may be lost or reordered; the bench fails otherwise.
//! Environment: `LOGVEIL_BENCH_SECONDS` (default 10), `LOGVEIL_BENCH_RATES` (default
//! `2000,20000` lines/s).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Run {
    sent: usize,
    latencies_us: Vec<f64>,
}

/// Streams `lines` into `cmd` at `rate` lines/s and returns the per-line latencies.
fn stream(cmd: &mut Command, lines: &[Vec<u8>], rate: f64, warm: bool) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the command under test");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let n = lines.len();
    let recv: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let recv2 = Arc::clone(&recv);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut partial: Vec<u8> = Vec::new();
        let mut order_ok = true;
        let mut last: Option<usize> = None;
        loop {
            let got = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => k,
            };
            let now = Instant::now();
            partial.extend_from_slice(&buf[..got]);
            let mut start = 0;
            while let Some(i) = memchr::memchr(b'\n', &partial[start..]) {
                let line = &partial[start..start + i];
                start += i + 1;
                if line.starts_with(b"warmup ") {
                    let _ = ready_tx.send(());
                    continue;
                }
                if let Some(seq) = line
                    .strip_prefix(b"seq=")
                    .and_then(|r| std::str::from_utf8(&r[..8.min(r.len())]).ok())
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    if last.is_some_and(|l| seq <= l) {
                        order_ok = false;
                    }
                    last = Some(seq);
                    if let Some(slot) = recv2.lock().expect("lock").get_mut(seq) {
                        *slot = Some(now);
                    }
                }
            }
            partial.drain(..start);
        }
        order_ok
    });
    if warm {
        stdin
            .write_all(b"warmup line through the filter\n")
            .expect("write warm-up line");
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the warm-up line came back");
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut sent = vec![Instant::now(); n];
    let t0 = Instant::now();
    for (i, l) in lines.iter().enumerate() {
        let target = t0 + interval * i as u32;
        let now = Instant::now();
        if target > now {
            std::thread::sleep(target - now);
        }
        sent[i] = Instant::now();
        stdin.write_all(l).expect("write to the command");
    }
    drop(stdin);
    let order_ok = reader.join().expect("reader thread");
    let status = child.wait().expect("wait for the command");
    assert!(status.success(), "the command failed: {status}");
    assert!(
        order_ok,
        "lines came out in another order than they went in"
    );
    let recv = recv.lock().expect("lock");
    let mut lat: Vec<f64> = recv
        .iter()
        .zip(&sent)
        .filter_map(|(r, s)| r.map(|r| (r - *s).as_secs_f64() * 1e6))
        .collect();
    lat.sort_by(f64::total_cmp);
    Run {
        sent: n,
        latencies_us: lat,
    }
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[((q * v.len() as f64) as usize).min(v.len() - 1)]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if quick {
        0.5
    } else {
        std::env::var("LOGVEIL_BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10.0)
    };
    let rates: Vec<f64> = std::env::var("LOGVEIL_BENCH_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2000.0, 20000.0]);
    let max_lines = rates
        .iter()
        .map(|r| (r * seconds) as usize)
        .max()
        .unwrap_or(0);
    let (data, _) = logveil::corpus::generate_vec((max_lines as u64 + 1000) * 300, 7, 0.01);
    let src: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bin = env!("CARGO_BIN_EXE_logveil");
    println!(
        "{:<10} {:<28} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "rate/s", "command", "lines", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us"
    );
    for &rate in &rates {
        let n = (rate * seconds) as usize;
        let lines: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut l = format!("seq={i:08} ").into_bytes();
                l.extend_from_slice(src[i % src.len()]);
                l.push(b'\n');
                l
            })
            .collect();
        let variants: [(&str, bool); 4] = [
            ("cat", true),
            ("logveil run (warm)", true),
            ("logveil run (cold start)", false),
            ("cat (cold start)", false),
        ];
        for (name, warm) in variants {
            let mut cmd = if name.starts_with("cat") {
                Command::new("cat")
            } else {
                let mut c = Command::new(bin);
                c.env("LOGVEIL_KEY", "logveil-bench-key-0123456789abcdef")
                    .arg("run");
                c
            };
            let r = stream(&mut cmd, &lines, rate, warm);
            let lat = &r.latencies_us;
            assert_eq!(
                lat.len(),
                r.sent,
                "{name}: {} of {} lines did not come out",
                r.sent - lat.len(),
                r.sent
            );
            println!(
                "{rate:<10} {name:<28} {:>8} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>9.0}",
                r.sent,
                pct(lat, 0.5),
                pct(lat, 0.9),
                pct(lat, 0.99),
                pct(lat, 0.999),
                lat[lat.len() - 1]
            );
        }
    }
}
