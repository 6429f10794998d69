//! Nothing lost, nothing broken: the `logveil` binary against hostile but ordinary uses
//! (issue #9). Same-name inputs, outputs that are inputs under another name, stop signals
//! while a writer keeps writing, key-like values in settings, sizes out of range, outputs
//! that cannot be written, rule packs without a secret group.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "logveil-test-key-thirty-two-byte";

fn keyed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logveil"));
    c.env_remove("LOGVEIL_KEY_ID").env("LOGVEIL_KEY", KEY);
    c
}

/// Runs logveil with `args` and no stdin; asserts exit 2 and one stderr line holding every
/// needle; returns stderr.
fn fails_with(mut cmd: Command, args: &[&str], needles: &[&str]) -> String {
    let o = cmd.args(args).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    // Failure messages show stderr with long runs cut: it may hold a leaked key.
    let shown = masked(&err);
    assert_eq!(o.status.code(), Some(2), "{shown}");
    assert_eq!(err.lines().count(), 1, "{shown}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {shown}");
    }
    err
}

/// `text` with every run of 8 or more letters and digits cut to its first 4.
fn masked(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            run.push(c);
            continue;
        }
        if run.len() >= 8 {
            out.push_str(&logveil::text::preview(&run));
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn same_name_inputs_into_an_output_directory_are_refused_before_writing() {
    let d = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
        std::fs::write(d.path().join(sub).join("app.log"), format!("from {sub}\n")).unwrap();
    }
    let out = d.path().join("clean");
    let (a, b) = (d.path().join("a/app.log"), d.path().join("b/app.log"));
    let o = format!("{}/", out.display());
    fails_with(
        keyed(),
        &["run", s(&a), s(&b), "-o", &o],
        &["would both be written", "app.log"],
    );
    // The same input twice is the same clash.
    fails_with(keyed(), &["run", s(&a), s(&a), "-o", &o], &["would both"]);
    assert!(!out.join("app.log").exists(), "something was written");
    // Different names are fine.
    std::fs::rename(&b, d.path().join("b/other.log")).unwrap();
    let st = keyed()
        .args(["run", s(&a), s(&d.path().join("b/other.log")), "-o", &o])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(out.join("app.log")).unwrap(), b"from a\n");
    assert_eq!(std::fs::read(out.join("other.log")).unwrap(), b"from b\n");
}

#[test]
fn an_output_that_is_an_input_under_another_name_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("audit.log");
    let content = b"2026-11-02 login ok user=alice\npassword=hunter2x\n";
    std::fs::write(&f, content).unwrap();
    let hard = d.path().join("hard.log");
    std::fs::hard_link(&f, &hard).unwrap();
    let soft = d.path().join("soft.log");
    std::os::unix::fs::symlink(&f, &soft).unwrap();
    for out in [&hard, &soft, &f] {
        fails_with(
            keyed(),
            &["run", s(&f), "-o", s(out)],
            &["same file as input", "audit.log"],
        );
    }
    // A hard link in the output directory, under the input's name.
    let dir = d.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::hard_link(&f, dir.join("audit.log")).unwrap();
    fails_with(
        keyed(),
        &["run", s(&f), "-o", s(&dir)],
        &["same file as input"],
    );
    // stdout appended to the input (`logveil f >> f`), and stdin read from the output
    // (`logveil -o f < f`).
    let append = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
    let o = keyed()
        .args(["run", s(&f)])
        .stdout(append)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("<stdout> is the same file"));
    let o = keyed()
        .args(["run", "-o", s(&hard)])
        .stdin(std::fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("input <stdin>"));
    assert_eq!(std::fs::read(&f).unwrap(), content, "the input was changed");
}

/// The lines a test writer sends: no secrets, so that output = input; every 7th line is a
/// long JSON record, so that a read rarely ends on a newline.
fn line(i: u64) -> String {
    if i % 7 == 3 {
        let pad = "x".repeat(500 + (i % 13) as usize * 300);
        return format!(
            "{{\"ts\":\"2026-11-02T10:00:{:02}Z\",\"level\":\"info\",\"msg\":\"{pad}\",\"n\":{i}}}\n",
            i % 60
        );
    }
    format!(
        "2026-11-02T10:00:{:02}.{:06}Z INFO worker-{} handled request path=/api/v1/items/{i} status=200\n",
        i % 60,
        i % 1_000_000,
        i % 7
    )
}

fn kill(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// A writer thread that keeps writing lines into `w` (non-blocking, so it never hangs on a
/// full pipe) until `stop`; returns what it wrote.
fn keep_writing(mut w: UnixStream, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u8>> {
    w.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut written = Vec::new();
        let (mut i, mut pending) = (0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            // Like stdio's block buffering: 4 KiB writes that end anywhere in a line.
            while pending.len() < 4096 {
                pending.extend_from_slice(line(i).as_bytes());
                i += 1;
            }
            let block = 4096.min(pending.len());
            match w.write(&pending[..block]) {
                Ok(n) => {
                    written.extend_from_slice(&pending[..n]);
                    pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) => panic!("writer: {e}"),
            }
        }
        written
    })
}

/// `logveil run -o OUT` (keyed) reading stdin from one end of a socket pair.
fn run_from_socket(stdin: UnixStream, out: &Path) -> Child {
    keyed()
        .args(["run", "-o", s(out)])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` has at least `n` bytes (or fails after 60 s).
fn wait_for_output(path: &Path, n: u64) {
    let t0 = Instant::now();
    while std::fs::metadata(path).map_or(0, |m| m.len()) < n {
        assert!(t0.elapsed() < Duration::from_secs(60), "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_on_a_busy_stdin_lose_nothing_and_exit_0() {
    for sig in ["-TERM", "-INT"] {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.log");
        // stdin is one end of a socket pair; the test keeps a second handle on logveil's
        // end, so that after logveil exits it can read what logveil left unread.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let leftover = theirs.try_clone().unwrap();
        let child = run_from_socket(theirs, &out);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = keep_writing(ours.try_clone().unwrap(), Arc::clone(&stop));
        wait_for_output(&out, 1 << 20);
        kill(&child, sig);
        // The writer goes on while the signal arrives.
        std::thread::sleep(Duration::from_millis(300));
        let o = child.wait_with_output().unwrap();
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        ours.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let mut leftover = leftover;
        leftover.read_to_end(&mut rest).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{sig}: {err}");
        let got = std::fs::read(&out).unwrap();
        assert!(got.ends_with(b"\n"), "{sig}: output ends inside a record");
        assert!(got.len() > 1 << 20);
        // Everything written is either in the output or still unread: nothing lost.
        assert_eq!(got.len() + rest.len(), written.len(), "{sig}: bytes lost");
        assert!(
            got == written[..got.len()],
            "{sig}: output is not the input"
        );
    }
}

#[test]
fn sigterm_on_a_file_run_ends_on_a_record_boundary_and_a_second_signal_aborts() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for i in 0..300_000 {
        f.write_all(line(i).as_bytes()).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let whole = std::fs::read(&input).unwrap();
    let out = d.path().join("out.log");
    let child = keyed()
        .args(["run", "--threads", "1", s(&input), "-o", s(&out)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_output(&out, 1 << 20);
    kill(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = std::fs::read(&out).unwrap();
    assert!(got.len() < whole.len(), "the run ended before the signal");
    assert!(got.ends_with(b"\n") && got == whole[..got.len()]);

    // Two signals: the second stops at once with 143.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = run_from_socket(theirs, &out);
    let mut w = ours;
    // Half a record, never finished: the first signal waits for its end.
    w.write_all(b"2026-11-02 a record without its end").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(100));
    kill(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{:?}", o.status);
}

#[test]
fn a_stop_signal_on_a_quiet_pipe_or_a_fifo_without_writer_ends_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (_ours, theirs) = UnixStream::pair().unwrap();
    for (args, stdin) in [
        (vec!["run"], Some(theirs)),
        (vec!["run", s(&fifo)], None),
        (vec!["scan"], None),
    ] {
        let mut c = keyed();
        c.args(&args).stderr(Stdio::piped()).stdout(Stdio::null());
        match stdin {
            Some(t) => c.stdin(Stdio::from(std::os::fd::OwnedFd::from(t))),
            None if args[0] == "scan" => {
                let (o, t) = UnixStream::pair().unwrap();
                std::mem::forget(o);
                c.stdin(Stdio::from(std::os::fd::OwnedFd::from(t)))
            }
            None => c.stdin(Stdio::null()),
        };
        let child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        kill(&child, "-TERM");
        let o = child.wait_with_output().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            t0.elapsed()
        );
        // `scan` cut short by a signal never passes as clean.
        let want = if args[0] == "scan" { 2 } else { 0 };
        assert_eq!(
            o.status.code(),
            Some(want),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_key_pasted_where_a_path_or_name_belongs_is_never_printed() {
    let d = tempfile::tempdir().unwrap();
    let hexkey = "hex:6c6f677665696c2d746573742d6b65792d7468697274792d74776f2d62797465";
    let cfg = d.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[[keys]]\nid = \"k1\"\nfile = \"{hexkey}\"\n"),
    )
    .unwrap();
    let mut cmd = keyed();
    cmd.env_remove("LOGVEIL_KEY");
    let err = fails_with(cmd, &["run", "--config", s(&cfg)], &["k1", "no such file"]);
    assert!(!err.contains(&hexkey[4..12]), "key printed");
    let mut cmd = keyed();
    cmd.env_remove("LOGVEIL_KEY");
    let err = fails_with(cmd, &["run", "--key-file", hexkey], &["hex:…"]);
    assert!(!err.contains(&hexkey[4..12]), "key printed");
    // A raw key pasted as the variable's name.
    let raw = "Zx9Qw7Er5Ty3Ui1Op0As2Df4Gh6Jk8LzMn7Bv5Cx";
    std::fs::write(&cfg, format!("[[keys]]\nid = \"k1\"\nenv = \"{raw}\"\n")).unwrap();
    let mut cmd = keyed();
    cmd.env_remove("LOGVEIL_KEY");
    let err = fails_with(cmd, &["run", "--config", s(&cfg)], &["not set"]);
    assert!(!err.contains(&raw[4..]), "key printed");
    // And as the key id.
    let err = fails_with(
        {
            let mut c = keyed();
            c.env("LOGVEIL_KEY_ID", raw);
            c
        },
        &["run"],
        &["invalid key id"],
    );
    assert!(!err.contains(&raw[4..]), "key printed");
}

#[test]
fn sizes_out_of_range_are_one_clear_error() {
    fails_with(
        keyed(),
        &["run", "--threads", "5000"],
        &["--threads", "256"],
    );
    fails_with(keyed(), &["run", "--threads", "0"], &["--threads"]);
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    for (toml, needle) in [
        (
            "[pipeline]\nread_buffer_bytes = 99999999999999\n",
            "pipeline.read_buffer_bytes",
        ),
        (
            "[pipeline]\nmax_record_bytes = 99999999999999\n",
            "pipeline.max_record_bytes",
        ),
        (
            "[pipeline]\nbatches_per_thread = 100000\n",
            "pipeline.batches_per_thread",
        ),
        ("threads = 100000\n", "threads must be"),
        (
            "threads = 256\n[pipeline]\nbatches_per_thread = 64\nread_buffer_bytes = 67108864\n",
            "in flight",
        ),
    ] {
        std::fs::write(&cfg, toml).unwrap();
        fails_with(keyed(), &["run", "--config", s(&cfg)], &[needle]);
    }
    for url in [
        "kafka://127.0.0.1:9/t?commit_interval_ms=99999999999999",
        "kafka://127.0.0.1:9/t?max_message_bytes=0",
        "kafka://127.0.0.1:9/t?startup_timeout_secs=18446744073709551615",
    ] {
        fails_with(keyed(), &["run", url], &["must be between"]);
    }
}

#[test]
fn every_command_fails_when_its_output_cannot_be_written() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.log");
    std::fs::write(&input, "password=hunter2x\nok\n").unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", s(&input)],
        vec!["scan", s(&input)],
        vec!["fingerprint", "hunter2x"],
        vec!["rules", "list"],
        vec!["rules", "check"],
        vec!["corpus", "--size-mb", "1"],
    ];
    for args in cases {
        let o = keyed()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("write error"), "{args:?}: {err}");
    }
}

#[test]
fn a_rule_pack_without_a_secret_group_or_with_a_bad_regex_names_the_rule() {
    let d = tempfile::tempdir().unwrap();
    let pack = |regex: &str| {
        format!(
            "[pack]\nid = \"mine\"\n[[rules]]\nid = \"demo-token\"\ndescription = \"demo\"\nregex = '''{regex}'''\nkeywords = [\"demo_\"]\nexamples = [\"x demo_abcd1234 y\", \"t=demo_zzzz9999\"]\nnegative_examples = [\"demo_short\"]\n"
        )
    };
    std::fs::write(d.path().join("mine.toml"), pack(r"\bdemo_[a-z0-9]{8}\b")).unwrap();
    fails_with(
        keyed(),
        &["rules", "check", "--rules", s(d.path())],
        &["mine.toml", "demo-token", "(?P<secret>"],
    );
    std::fs::write(
        d.path().join("mine.toml"),
        pack(r"\bdemo_(?P<secret>[a-z0-9{8})\b"),
    )
    .unwrap();
    fails_with(
        keyed(),
        &["rules", "check", "--rules", s(d.path())],
        &["demo-token", "unclosed character class", "at character 19"],
    );
}

/// `logveil` (keyed) with `input` on stdin.
fn redact_stdin(input: &str) -> std::process::Output {
    let mut child = keyed()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn json_values_floats_markers_and_keys_survive_the_cli() {
    let input = "{\"password\": null}\n{\"secret\": true}\n{\"token\": 12345}\n{\"a\":{\"passwd\":null}}}\n\
{\"latency\":0.4221165755827173}\n\
081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_-4980916519894289629 terminating\n\
using token [REDACTED:github-classic-token:k1:88f5bd56747f4c91] for api.github.com\n\
\"authorization\":\"[REDACTED:bearer-token:k1:ac3445079eda25fc]\"\n\
Nov  2 10:00:02 app[1]: GET path=/api/v1/items\n";
    let o = redact_stdin(input);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), input);
    // A BEGIN line without END: the next ordinary line ends the block and stays.
    let input = "Nov  2 10:00:01 app[1]: -----BEGIN RSA PRIVATE KEY-----\n\
Nov  2 10:00:02 app[1]: GET path=/api/v1/items\n";
    let o = redact_stdin(input);
    assert!(String::from_utf8_lossy(&o.stdout)
        .ends_with("\nNov  2 10:00:02 app[1]: GET path=/api/v1/items\n"));
}
