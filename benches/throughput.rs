//! Throughput benchmark: `cargo bench --bench throughput`.
//!
//! Generates a realistic mixed log corpus (the project's own generator, 1% of lines with a
//! planted secret), then measures in one run, median of several repetitions:
//! - `cat` file to file (the I/O ceiling of this machine, right now),
//! - the keyword pass alone, one thread: the sieve (`engine::keywords`) against an
//!   Aho-Corasick DFA over a lowercased copy (the first stage it replaced), same keywords,
//!   and both must report the same number of hits; also the sieve's portable path (no
//!   SIMD first stage) against its AVX2 one, and the CLI with `LOGVEIL_NO_SIMD=1`,
//! - the engine alone, one thread, in memory (prefilter + confirm + replace), with the 40
//!   core rules, the full library, and the full library plus as many synthetic vendor-token
//!   rules (how the speed holds as the library grows),
//! - the whole CLI, file to `/dev/null` with 1 thread and with the default thread count,
//!   and file to file,
//! - Vectorscan (Hyperscan's maintained fork) scanning the same corpus with the library's
//!   own rule regexes, detecting only, when `libvectorscan-dev` is installed
//!   (`bash benches/peers/install.sh`): the anchor of a fast multi-regex scanner
//!   (`benches/peers/vectorscan.c`, built here with `cc`).
//!
//! Absolute MiB/s move between runs on shared machines; the ratios against `cat` and between
//! rows of the same run are the figures to compare.
//! Environment: `LOGVEIL_BENCH_MB` (default 256), `LOGVEIL_BENCH_REPS` (default 3),
//! `LOGVEIL_BENCH_CORPUS` (a log file to use instead of the generated corpus).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use logveil::engine::keywords::Keywords;
use logveil::engine::{Engine, Matcher};
use logveil::fingerprint::{Key, Keyring, Template};
use logveil::rules::{Prefilter, Rule, RuleSet};

/// The first release's core set: the baseline that the full library is compared with.
const CORE_40: &[&str] = &[
    "github-classic-token",
    "github-fine-grained-pat",
    "gitlab-pat",
    "gitlab-token",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
    "google-api-key",
    "google-oauth-client-secret",
    "azure-storage-account-key",
    "slack-token",
    "slack-webhook-url",
    "discord-webhook-url",
    "telegram-bot-token",
    "stripe-live-secret-key",
    "stripe-test-secret-key",
    "openai-api-key",
    "anthropic-api-key",
    "huggingface-token",
    "npm-token",
    "pypi-upload-token",
    "dockerhub-token",
    "sendgrid-api-key",
    "mailgun-api-key",
    "twilio-api-key",
    "jwt",
    "pem-private-key",
    "bearer-token",
    "basic-auth-header",
    "url-userinfo-password",
    "database-uri-password",
    "jdbc-odbc-connection-password",
    "generic-password-assignment",
    "generic-password-quoted",
    "generic-secret-assignment",
    "generic-token-assignment",
    "generic-api-key-assignment",
    "generic-cli-secret-flag",
    "curl-user-password",
    "payment-card-number",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn time_cmd(reps: u64, mut make: impl FnMut() -> Command) -> Duration {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                let st = make().status().expect("run command");
                assert!(st.success(), "benchmark command failed");
                t.elapsed()
            })
            .collect(),
    )
}

/// What Vectorscan did: median scan time, regexes it took, regexes offered, matches.
struct Peer {
    time: Duration,
    compiled: usize,
    total: usize,
    matches: u64,
}

/// Runs the Vectorscan peer over `corpus` with the rules' regexes, or says why it cannot.
fn vectorscan(dir: &Path, corpus: &Path, rules: &[Rule], reps: u64) -> Result<Peer, String> {
    let flags = |what: &str| -> Result<Vec<String>, String> {
        let out = Command::new("pkg-config")
            .args([what, "libhs"])
            .output()
            .map_err(|e| format!("pkg-config: {e}"))?;
        if !out.status.success() {
            return Err("libvectorscan-dev is not installed".into());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect())
    };
    let (cflags, libs) = (flags("--cflags")?, flags("--libs")?);
    let exe = dir.join("vectorscan");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/vectorscan.c");
    let st = Command::new("cc")
        .arg("-O2")
        .args(&cflags)
        .arg(src)
        .arg("-o")
        .arg(&exe)
        .args(&libs)
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if !st.success() {
        return Err(format!("cc failed to build {src}"));
    }
    // The rules' regexes as Vectorscan reads them: a named group becomes a plain one (it
    // reports no groups anyway). One per line; a regex never holds a raw newline.
    let named = regex_automata::meta::Regex::new(r"\(\?P?<[A-Za-z_][A-Za-z0-9_]*>").unwrap();
    let mut text = String::new();
    for r in rules {
        let p = r.regex.pattern();
        let mut last = 0;
        for m in named.find_iter(p) {
            text.push_str(&p[last..m.start()]);
            text.push('(');
            last = m.end();
        }
        text.push_str(&p[last..]);
        text.push('\n');
    }
    let pats = dir.join("vectorscan-patterns.txt");
    std::fs::write(&pats, text).map_err(|e| format!("write patterns: {e}"))?;
    let out = Command::new(&exe)
        .arg(&pats)
        .arg(corpus)
        .arg(reps.to_string())
        .output()
        .map_err(|e| format!("run vectorscan: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "vectorscan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| -> Result<String, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(String::from))
            .ok_or_else(|| format!("vectorscan printed no {name}: {line}"))
    };
    let compiled = field("compiled")?;
    let (u, t) = compiled
        .split_once('/')
        .ok_or_else(|| format!("bad compiled= in {line}"))?;
    let int = |s: &str| s.parse::<u64>().map_err(|e| format!("{e} in {line}"));
    let secs = field("seconds")?
        .parse::<f64>()
        .map_err(|e| format!("{e} in {line}"))?;
    Ok(Peer {
        time: Duration::from_secs_f64(secs),
        compiled: int(u)? as usize,
        total: int(t)? as usize,
        matches: int(&field("matches")?)?,
    })
}

/// Splits the corpus into batches of about `size` bytes ending at newlines, as the framer does.
fn batches(data: &Bytes, size: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = (start + size).min(data.len());
        let end = if end == data.len() {
            end
        } else {
            memchr::memrchr(b'\n', &data[start..end]).map_or(end, |i| start + i + 1)
        };
        out.push(data.slice(start..end));
        start = end;
    }
    out
}

/// `n` rules in the shape of vendor tokens (a short prefix, then 32-40 alphanumerics), with
/// prefixes drawn at random: a library twice the size, for the growth curve.
fn synthetic_rules(n: usize) -> Vec<Rule> {
    let mut rng = logveil::corpus::Rng(99);
    let mut seen = std::collections::HashSet::new();
    let mut pack =
        String::from("[pack]\nid = \"synthetic\"\ndescription = \"synthetic vendor tokens\"\n");
    while seen.len() < n {
        let len = 2 + rng.below(4) as usize;
        let mut prefix: String = (0..len)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        prefix.push(if rng.below(2) == 0 { '_' } else { '-' });
        if !seen.insert(prefix.clone()) {
            continue;
        }
        let body: String = (0..36)
            .map(|_| logveil::corpus::B64[rng.below(62) as usize] as char)
            .collect();
        let i = seen.len();
        pack.push_str(&format!(
            "\n[[rules]]\nid = \"synthetic-{i}\"\ndescription = \"synthetic\"\n\
             regex = '''(?:^|[^0-9A-Za-z_])(?P<secret>{prefix}[A-Za-z0-9]{{32,40}})\\b'''\n\
             keywords = [\"{prefix}\"]\n\
             examples = ['''token {prefix}{body}''', '''k={prefix}{body}x''']\n\
             negative_examples = ['''{prefix} alone''']\n"
        ));
    }
    let (_, _, rules) = logveil::rules::parse_pack(&pack, "synthetic").expect("synthetic pack");
    rules
}

/// The keywords of these rules, lowercase, each once.
fn keywords_of(rules: &[Rule]) -> Vec<String> {
    let mut kws: Vec<String> = rules
        .iter()
        .flat_map(|r| match &r.prefilter {
            Prefilter::Keywords(k) => k.clone(),
            Prefilter::DigitRun => Vec::new(),
        })
        .collect();
    kws.sort();
    kws.dedup();
    kws
}

/// The keyword pass alone over `bs`: (sieve time, its portable path's time, DFA time,
/// hits), checked to agree.
fn keyword_pass(kws: &[String], bs: &[Bytes], reps: u64) -> (Duration, Duration, Duration, usize) {
    let sieve = Keywords::new(kws);
    let dfa = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::Standard)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(kws)
        .expect("keyword DFA");
    // Median time and hit count of one pass over `bs`, for the sieve's two entry points.
    let timed = |pass: &dyn Fn(&[u8], &mut usize)| -> (Duration, usize) {
        let mut hits = 0;
        let t = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    hits = 0;
                    for b in bs {
                        pass(b, &mut hits);
                    }
                    t.elapsed()
                })
                .collect(),
        );
        (t, hits)
    };
    let (t_sieve, hits_sieve) = timed(&|b, n| sieve.for_each(b, |_, _, _| *n += 1));
    // The same sieve without the SIMD first stage (what a CPU without AVX2 runs).
    let (t_portable, hits_portable) = timed(&|b, n| sieve.for_each_scalar(b, |_, _, _| *n += 1));
    assert_eq!(
        hits_sieve, hits_portable,
        "the sieve's SIMD and portable paths disagree"
    );
    let mut hits_dfa = 0;
    let mut lower = Vec::new();
    let t_dfa = median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                hits_dfa = 0;
                for b in bs {
                    lower.clear();
                    lower.extend(b.iter().map(u8::to_ascii_lowercase));
                    let mut state = aho_corasick::automaton::OverlappingState::start();
                    let input = aho_corasick::Input::new(&lower[..]);
                    loop {
                        dfa.find_overlapping(input.clone(), &mut state);
                        if state.get_match().is_none() {
                            break;
                        }
                        hits_dfa += 1;
                    }
                }
                t.elapsed()
            })
            .collect(),
    );
    assert_eq!(
        hits_sieve, hits_dfa,
        "the sieve and the DFA disagree on the keyword hits"
    );
    (t_sieve, t_portable, t_dfa, hits_sieve)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no such flag: be quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let mb = if quick {
        4
    } else {
        env_u64("LOGVEIL_BENCH_MB", 256)
    };
    let reps = if quick {
        1
    } else {
        env_u64("LOGVEIL_BENCH_REPS", 3)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = dir.path().join("corpus.log");
    // A corpus written by someone else (`LOGVEIL_BENCH_CORPUS=FILE`, e.g. real logs or
    // another generator) checks that the figures do not hold only on our own generator.
    let external = std::env::var_os("LOGVEIL_BENCH_CORPUS").filter(|_| !quick);
    let (data, what) = match &external {
        Some(f) => (
            std::fs::read(f).expect("read LOGVEIL_BENCH_CORPUS"),
            format!("{}", Path::new(f).display()),
        ),
        None => {
            let (data, labels) = logveil::corpus::generate_vec(mb << 20, 7, 0.01);
            (data, format!("{} planted secrets (seed 7)", labels.len()))
        }
    };
    std::fs::write(&corpus, &data).expect("write corpus");
    let len = data.len();
    let lines = memchr::memchr_iter(b'\n', &data).count();
    println!(
        "corpus: {:.1} MiB, {lines} lines, {what}; median of {reps}",
        len as f64 / 1048576.0,
    );
    // cat, file to file.
    let out = dir.path().join("out.log");
    let cat = time_cmd(reps, || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("cat '{}' > '{}'", corpus.display(), out.display()));
        c
    });

    // Start-up: the process on empty input (rules loaded, regexes compiled on first use),
    // and what compiling every regex up front costs (what start-up paid before).
    let bin = env!("CARGO_BIN_EXE_logveil");
    let startup = time_cmd(if quick { 1 } else { 11 }, || {
        let mut c = Command::new(bin);
        c.env("LOGVEIL_KEY", "logveil-bench-key-0123456789abcdef")
            .arg("run")
            .stdin(std::process::Stdio::null());
        c
    });
    let compile_all = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let rules = RuleSet::builtin().expect("built-in rules").enabled();
                for r in &rules {
                    std::hint::black_box(r.regex.get());
                }
                std::hint::black_box(Matcher::new(rules));
                t.elapsed()
            })
            .collect(),
    );

    // Engine alone, one thread: the full library, and the 40 core rules of the first release
    // (the token formats, headers, assignments, URIs and cards everyone needs).
    let rules = RuleSet::builtin().expect("built-in rules").enabled();
    let nrules = rules.len();
    let subset: Vec<_> = rules
        .iter()
        .filter(|r| CORE_40.contains(&r.id.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        subset.len(),
        CORE_40.len(),
        "a core rule id is missing from the library"
    );
    let data = Bytes::from(data);
    let bs = batches(&data, 512 * 1024);
    let run_engine = |rules: Vec<logveil::rules::Rule>| {
        let key = Key::parse("bench", "logveil-bench-key-0123456789abcdef", "bench").unwrap();
        let engine = Engine::new(
            Matcher::new(rules),
            Keyring::single(key),
            Template::default(),
        );
        let mut scratch = engine.scratch();
        let mut findings = 0;
        let t = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    findings = 0;
                    let mut out_bytes = 0;
                    for b in &bs {
                        let r = engine.redact(b, &mut scratch, true);
                        findings += r.findings.len();
                        out_bytes += r.chunks.iter().map(|c| c.len()).sum::<usize>();
                    }
                    std::hint::black_box(out_bytes);
                    t.elapsed()
                })
                .collect(),
        );
        (t, findings)
    };
    let kws = keywords_of(&rules);
    let (sieve_t, portable_t, dfa_t, kw_hits) = keyword_pass(&kws, &bs, reps);
    let mut doubled = rules.clone();
    doubled.extend(synthetic_rules(nrules));
    let ndoubled = doubled.len();
    let kws2 = keywords_of(&doubled);
    let (sieve2_t, portable2_t, dfa2_t, _) = keyword_pass(&kws2, &bs, reps);
    let (engine40, _) = run_engine(subset);
    let rules_for_peer = rules.clone();
    let (engine_t, findings) = run_engine(rules);
    let (engine2_t, findings2) = run_engine(doubled);
    assert_eq!(
        findings, findings2,
        "synthetic rules found something in the corpus (their prefixes are random)"
    );

    // The whole CLI, file to file.
    // To /dev/null: what the redactor costs. To a file: plus the page cache and, once the
    // dirty-page limit is reached, the disk's writeback (on the development VM that made
    // 2 threads no faster than 1).
    let null = Path::new("/dev/null");
    let cli_env = |threads: Option<usize>, to: &Path, portable: bool| {
        time_cmd(reps, || {
            let mut c = Command::new(bin);
            if portable {
                c.env("LOGVEIL_NO_SIMD", "1");
            }
            c.env("LOGVEIL_KEY", "logveil-bench-key-0123456789abcdef")
                .arg("run")
                .arg(&corpus)
                .arg("-o")
                .arg(to);
            if let Some(t) = threads {
                c.arg("--threads").arg(t.to_string());
            }
            c
        })
    };
    let cli = |threads: Option<usize>, to: &Path| cli_env(threads, to, false);
    let cli1 = cli(Some(1), null);
    let cli1_portable = cli_env(Some(1), null, true);
    let cli_n = cli(None, null);
    let cli_file = cli(None, &out);
    let peer = vectorscan(dir.path(), &corpus, &rules_for_peer, reps);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!("{:<44} {:>10} {:>12}", "what", "MiB/s", "vs cat");
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<44} {:>10.0} {:>11.2}x",
            mib_s(len, d),
            cat.as_secs_f64() / d.as_secs_f64()
        );
    };
    row("cat file > file", cat);
    for (n, sieve, portable, dfa) in [
        (kws.len(), sieve_t, portable_t, dfa_t),
        (kws2.len(), sieve2_t, portable2_t, dfa2_t),
    ] {
        row(&format!("keyword pass, sieve, {n} keywords"), sieve);
        row(&format!("keyword pass, sieve portable, {n} kw"), portable);
        row(&format!("keyword pass, AC DFA, {n} keywords"), dfa);
    }
    row("engine alone, 1 thread, 40 rules", engine40);
    row(&format!("engine alone, 1 thread, {nrules} rules"), engine_t);
    row(
        &format!("engine alone, 1 thread, {ndoubled} rules (x2)"),
        engine2_t,
    );
    row("logveil run file -o /dev/null, --threads 1", cli1);
    row("same, LOGVEIL_NO_SIMD=1 (portable sieve)", cli1_portable);
    row(
        &format!("logveil run file -o /dev/null, {cpus} threads"),
        cli_n,
    );
    row(
        &format!("logveil run file -o file, {cpus} threads"),
        cli_file,
    );
    match &peer {
        Ok(p) => row(
            &format!("Vectorscan, scan only, {}/{} regexes", p.compiled, p.total),
            p.time,
        ),
        Err(why) => println!("Vectorscan row left out: {why} (bash benches/peers/install.sh)"),
    }
    println!("engine findings: {findings}; keyword hits: {kw_hits}");
    println!(
        "keyword pass: the sieve at {:.2}x the speed of the DFA ({} keywords), {:.2}x ({} keywords)",
        dfa_t.as_secs_f64() / sieve_t.as_secs_f64(),
        kws.len(),
        dfa2_t.as_secs_f64() / sieve2_t.as_secs_f64(),
        kws2.len()
    );
    println!(
        "keyword pass: SIMD first stage at {:.2}x the portable sieve; CLI --threads 1: {:.2}x",
        portable_t.as_secs_f64() / sieve_t.as_secs_f64(),
        cli1_portable.as_secs_f64() / cli1.as_secs_f64()
    );
    println!(
        "library x2 ({ndoubled} rules) vs full: {:.2}x the time",
        engine2_t.as_secs_f64() / engine_t.as_secs_f64()
    );
    println!(
        "full library vs 40 rules: {:.2}x the time",
        engine_t.as_secs_f64() / engine40.as_secs_f64()
    );
    if let Ok(p) = &peer {
        println!(
            "logveil --threads 1 vs Vectorscan scan-only: {:.2}x the speed; {cpus} threads: {:.2}x (Vectorscan: {} matches)",
            p.time.as_secs_f64() / cli1.as_secs_f64(),
            p.time.as_secs_f64() / cli_n.as_secs_f64(),
            p.matches
        );
    }
    println!(
        "{cpus} threads vs 1: {:.2}x",
        cli1.as_secs_f64() / cli_n.as_secs_f64()
    );
    println!(
        "start-up, empty input: {:.1} ms; compiling every rule regex up front: {:.1} ms",
        startup.as_secs_f64() * 1000.0,
        compile_all.as_secs_f64() * 1000.0
    );
}
