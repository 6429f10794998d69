//! End-to-end tests of the `logveil` binary: real files, real gzip/zstd archives, real pipes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use logveil::fingerprint::Key;

const KEY: &str = "logveil-test-key-thirty-two-byte";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logveil"));
    c.env_remove("LOGVEIL_KEY").env_remove("LOGVEIL_KEY_ID");
    c
}

fn keyed() -> Command {
    let mut c = bin();
    c.env("LOGVEIL_KEY", KEY);
    c
}

/// `logveil` (keyed) with stdin and stdout as pipes, for tests that feed it over time.
fn keyed_piped() -> std::process::Child {
    keyed()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn logveil");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn fp(secret: &str) -> String {
    Key::parse("k1", KEY, "test")
        .unwrap()
        .fingerprint(secret.as_bytes())
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `text` with each of `secrets` cut to its first 4 characters, for failure messages: a test
/// that fails because a secret leaked must not print that secret.
fn masked(text: &str, secrets: &[&str]) -> String {
    secrets.iter().fold(text.to_string(), |t, s| {
        t.replace(s, &logveil::text::preview(s))
    })
}

/// Runs logveil (keyed, no stdin) with `args`; asserts exit code 2 and one stderr line that
/// contains every needle. Returns stderr.
fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let o = keyed().args(args).stdin(Stdio::null()).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    err
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a config file `c.toml` into `dir`; returns its path.
fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, toml).unwrap();
    cfg
}

/// `logveil run --config CFG` (keyed) on `input` from stdin.
fn run_config(cfg: &Path, input: &[u8]) -> Output {
    let mut c = keyed();
    c.args(["run", "--config", cfg.to_str().unwrap()]);
    run_with_stdin(c, input)
}

/// Small pieces for over-long records, so tests need only a few hundred KiB.
const SMALL_PIECES: &str = "[pipeline]\nmax_record_bytes = 65536\nread_buffer_bytes = 16384\n";

/// A GitHub classic token with a valid checksum, made here.
fn github_token(random: &str) -> String {
    let check = logveil::rules::validators::base62_6(crc32fast::hash(random.as_bytes()));
    format!("ghp_{random}{}", std::str::from_utf8(&check).unwrap())
}

#[test]
fn stdin_to_stdout_replaces_only_secrets() {
    let tok = github_token("Zq3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1");
    let input = format!(
        "2026-11-02T10:00:00Z INFO boot ok\nGITHUB_TOKEN={tok} user=ci\nlevel=info msg=\"password=hunter2x\"\n"
    );
    let out = run_with_stdin(keyed(), input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2026-11-02T10:00:00Z INFO boot ok");
    assert!(
        lines[1].starts_with("GITHUB_TOKEN=[REDACTED:")
            && lines[1].contains(&format!(":k1:{}]", fp(&tok))),
        "line 2 not redacted as expected: {}",
        lines[1].replace(&tok, "<TOKEN>")
    );
    assert!(lines[1].ends_with(" user=ci"));
    assert!(lines[2].contains("password=[REDACTED:") && lines[2].contains(&fp("hunter2x")));
    assert!(!text.contains(&tok) && !text.contains("hunter2x"));
    assert!(
        stderr(&out).is_empty(),
        "unexpected stderr: {}",
        stderr(&out)
    );
}

#[test]
fn bytes_pass_through_exactly() {
    // CRLF, empty lines, invalid UTF-8, NUL bytes, no final newline.
    let mut input = b"first\r\n\r\n\n\xff\xfe\xfd bin \x00 nul\n".to_vec();
    input.extend_from_slice(b"password=s3cr3tpw \xc3\x28 tail\r\nlast line no newline");
    let out = run_with_stdin(keyed(), &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = [
        &b"first\r\n\r\n\n\xff\xfe\xfd bin \x00 nul\npassword="[..],
        format!(
            "[REDACTED:generic-password-assignment:k1:{}]",
            fp("s3cr3tpw")
        )
        .as_bytes(),
        b" \xc3\x28 tail\r\nlast line no newline",
    ]
    .concat();
    if out.stdout != want {
        // Show the structure without the secret.
        let got = String::from_utf8_lossy(&out.stdout).replace("s3cr3tpw", "<SECRET>");
        panic!("output differs: {got:?}");
    }
}

#[test]
fn no_key_warns_once_and_uses_ephemeral_key() {
    let out = run_with_stdin(bin(), b"password=hunter2x\npassword=hunter3y\n");
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(err.contains("random key"), "{err}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(":ephemeral:") && !text.contains("hunter2x"));
}

fn write_gzip(path: &Path, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap();
}

fn read_gzip(path: &Path) -> Vec<u8> {
    let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap());
    let mut v = Vec::new();
    d.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn files_gzip_zstd_and_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tok = github_token("Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC2");
    let plain = format!("a password=plainpw1\nb {tok}\n");
    let gz = "c password=gzippw22\n".repeat(1000);
    let zst = "d password=zstdpw33\n".repeat(1000);
    // Names that lie about the format: detection is by content.
    let p_plain = dir.path().join("app.log");
    let p_gz = dir.path().join("old.log.1");
    let p_zst = dir.path().join("older.log.2");
    std::fs::write(&p_plain, &plain).unwrap();
    write_gzip(&p_gz, gz.as_bytes());
    std::fs::write(&p_zst, zstd::encode_all(zst.as_bytes(), 3).unwrap()).unwrap();
    let out_dir = dir.path().join("clean");
    let o = keyed()
        .args([
            p_plain.to_str().unwrap(),
            p_gz.to_str().unwrap(),
            p_zst.to_str().unwrap(),
        ])
        .arg("-o")
        .arg(format!("{}/", out_dir.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got_plain = std::fs::read_to_string(out_dir.join("app.log")).unwrap();
    assert_eq!(got_plain.lines().count(), 2);
    assert!(!got_plain.contains("plainpw1") && !got_plain.contains(&tok));
    // Same name, same compression.
    let got_gz = String::from_utf8(read_gzip(&out_dir.join("old.log.1"))).unwrap();
    assert_eq!(got_gz.lines().count(), 1000);
    assert!(got_gz.lines().all(|l| l
        == format!(
            "c password=[REDACTED:generic-password-assignment:k1:{}]",
            fp("gzippw22")
        )));
    let got_zst = String::from_utf8(
        zstd::decode_all(std::fs::File::open(out_dir.join("older.log.2")).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(got_zst.lines().count(), 1000);
    assert!(!got_zst.contains("zstdpw33"));

    // Several inputs into one file, in order; `.gz` output name compresses.
    let joined = dir.path().join("all.log.gz");
    let o = keyed()
        .args([
            "run",
            p_plain.to_str().unwrap(),
            p_gz.to_str().unwrap(),
            "-o",
            joined.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let all = String::from_utf8(read_gzip(&joined)).unwrap();
    assert_eq!(all.lines().count(), 1002);
    assert!(all.starts_with("a password=[REDACTED"));
}

#[test]
fn truncated_gzip_flushes_what_was_read_and_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = String::new();
    for i in 0..200_000 {
        data.push_str(&format!("line {i} password=trunc{i:06}x ok\n"));
    }
    let full = dir.path().join("full.gz");
    write_gzip(&full, data.as_bytes());
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out_file = dir.path().join("out.log");
    let o = keyed()
        .args([cut.to_str().unwrap(), "-o", out_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cut.gz") && err.contains("truncated"), "{err}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    let n = written.lines().count();
    assert!(n > 1000, "only {n} lines flushed before the error");
    assert!(
        !written.contains("password=trunc"),
        "a record was forwarded unredacted"
    );
}

#[test]
fn missing_input_and_bad_key_file_are_clear_errors() {
    let o = keyed()
        .args(["run", "/nonexistent/app.log"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/app.log"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["--key-file", dir.path().join("nokey").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nokey"), "{}", stderr(&o));

    let loose = dir.path().join("loose.key");
    std::fs::write(&loose, KEY).unwrap();
    #[cfg(unix)]
    {
        chmod(&loose, 0o644);
        let o = run_with_stdin(
            {
                let mut c = bin();
                c.args(["run", "--key-file", loose.to_str().unwrap()]);
                c
            },
            b"x\n",
        );
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(err.contains("chmod 600") && !err.contains(KEY), "{err}");
        chmod(&loose, 0o600);
        let o = run_with_stdin(
            {
                let mut c = bin();
                c.args(["run", "--key-file", loose.to_str().unwrap()]);
                c
            },
            b"password=keyfilepw\n",
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&fp("keyfilepw")));
    }

    let o = run_with_stdin(
        {
            let mut c = bin();
            c.env("LOGVEIL_KEY", "short");
            c
        },
        b"x\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at least 32 bytes"), "{}", stderr(&o));
}

#[test]
fn scan_exit_codes_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.log");
    std::fs::write(&clean, "all good\nnothing to see\n").unwrap();
    let dirty = dir.path().join("dirty.log");
    std::fs::write(
        &dirty,
        "password=aaaa1111\npassword=aaaa1111\npassword=bbbb2222\n",
    )
    .unwrap();

    let o = keyed()
        .args(["scan", clean.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clean"));

    let o = keyed()
        .args(["scan", dirty.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let s = String::from_utf8(o.stdout).unwrap();
    let row = s
        .lines()
        .find(|l| l.starts_with("generic-password-assignment"))
        .expect("rule row");
    let nums: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &nums[1..],
        ["3", "2"],
        "{}",
        masked(&s, &["aaaa1111", "bbbb2222"])
    );
    assert!(!s.contains("aaaa1111"));

    let o = keyed()
        .args(["scan", "--json", dirty.to_str().unwrap()])
        .output()
        .unwrap();
    // One object per finding, then the summary as the last line.
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let v = lines.last().unwrap();
    assert_eq!(v["findings"], 3);
    assert_eq!(v["rules"]["generic-password-assignment"]["distinct"], 2);
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[..3]
        .iter()
        .all(|f| f["rule"].is_string() && f["fingerprint"].is_string()));

    let o = keyed()
        .args(["scan", dir.path().join("missing.log").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn fingerprint_command_under_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.key");
    std::fs::write(
        &old,
        "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )
    .unwrap();
    #[cfg(unix)]
    chmod(&old, 0o600);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[keys]]\nid = \"old\"\nfile = \"{}\"\n[[keys]]\nid = \"new\"\nenv = \"TEST_NEW_KEY\"\nactive = true\n",
            old.display()
        ),
    );
    let mut c = bin();
    c.env("TEST_NEW_KEY", KEY)
        .args(["fingerprint", "--config", cfg.to_str().unwrap()]);
    let o = run_with_stdin(c, b"hunter2\nAKIAIOSFODNN7EXAMPLE\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "{}",
        masked(&s, &["hunter2", "AKIAIOSFODNN7EXAMPLE"])
    );
    let old_key = Key::parse(
        "old",
        "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "t",
    )
    .unwrap();
    assert_eq!(
        lines[0],
        format!("hunt…\told\t{}", old_key.fingerprint(b"hunter2"))
    );
    assert_eq!(lines[1], format!("hunt…\tnew\t{} (active)", fp("hunter2")));
    assert!(!s.contains("hunter2\t") && !s.contains("AKIAIOSFODNN7EXAMPLE"));

    // Redaction under that config uses the active key, and the fingerprints agree.
    let mut c = bin();
    c.env("TEST_NEW_KEY", KEY)
        .args(["run", "--config", cfg.to_str().unwrap()]);
    let o = run_with_stdin(c, b"password=hunter2\n");
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(&format!(":new:{}]", fp("hunter2"))),
        "{}",
        masked(&out, &["hunter2"])
    );
}

#[test]
fn fingerprint_without_a_key_is_refused() {
    let o = run_with_stdin(
        {
            let mut c = bin();
            c.arg("fingerprint");
            c
        },
        b"hunter2\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no key configured"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn gigantic_lines_pass_through_in_bounded_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SMALL_PIECES);
    // One 3 MiB line with secrets well inside pieces, then a normal line.
    let mut line = String::new();
    line.push_str("start password=giantpw01 ");
    while line.len() < 3 << 20 {
        line.push_str("abcdefghij0123456789 ");
    }
    line.push_str(" password=giantpw02 end\nnext password=giantpw03\n");
    let o = run_config(&cfg, line.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let want = line
        .replace(
            "giantpw01",
            &format!(
                "[REDACTED:generic-password-assignment:k1:{}]",
                fp("giantpw01")
            ),
        )
        .replace(
            "giantpw02",
            &format!(
                "[REDACTED:generic-password-assignment:k1:{}]",
                fp("giantpw02")
            ),
        )
        .replace(
            "giantpw03",
            &format!(
                "[REDACTED:generic-password-assignment:k1:{}]",
                fp("giantpw03")
            ),
        );
    assert!(
        out == want,
        "gigantic line output differs (len {} vs {})",
        out.len(),
        want.len()
    );
}

#[test]
fn rules_check_and_list() {
    let o = bin().args(["rules", "check"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "rules check failed:\n{s}");
    assert!(s.contains("all pass"));
    let o = bin().args(["rules", "list"]).output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("github") && s.contains("luhn") && s.contains("enabled"),
        "{s}"
    );
}

#[test]
fn rules_and_packs_switch_on_and_off_from_cli_and_config() {
    let line = b"signup ok user=jane.doe@example.com card=4111 1111 1111 1111\n";
    // Email is off by default; cards are on.
    let o = run_with_stdin(keyed(), line);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("jane.doe@example.com") && !out.contains("4111 1111"),
        "{}",
        masked(&out, &["jane.doe@example.com", "4111 1111 1111 1111"])
    );
    // On from the command line.
    let mut c = keyed();
    c.args(["run", "--enable", "email-address"]);
    let out = String::from_utf8(run_with_stdin(c, line).stdout).unwrap();
    assert!(
        out.contains("[REDACTED:email-address:k1:") && !out.contains("jane.doe@"),
        "{}",
        masked(&out, &["jane.doe@example.com", "4111 1111 1111 1111"])
    );
    // From the config: the whole pii pack off, then email back on.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[rules]\ndisable = [\"pii\"]\nenable = [\"email-address\"]\n",
    );
    let out = String::from_utf8(run_config(&cfg, line).stdout).unwrap();
    assert!(
        out.contains("[REDACTED:email-address:") && out.contains("4111 1111 1111 1111"),
        "{}",
        masked(&out, &["jane.doe@example.com", "4111 1111 1111 1111"])
    );
    // `rules list` shows the state.
    let o = bin()
        .args(["rules", "list", "--disable", "pii"])
        .output()
        .unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    let row = s
        .lines()
        .find(|l| l.contains(" payment-card-number "))
        .unwrap();
    assert!(row.trim_start().starts_with("disabled"), "{row}");
    // Unknown ids are errors, not silently ignored.
    fails_with(&["run", "--disable", "no-such-rule"], &["no-such-rule"]);
}

#[test]
fn invalid_custom_rule_is_rejected_naming_file_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom.toml"),
        "[pack]\nid = \"custom\"\n[[rules]]\nid = \"broken-rule\"\ndescription = \"x\"\nregex = '''acme_([a-z'''\nkeywords = [\"acme_\"]\nexamples = [\"acme_x\", \"acme_y\"]\nnegative_examples = [\"z\"]\n",
    )
    .unwrap();
    fails_with(
        &["run", "--rules", dir.path().to_str().unwrap()],
        &["custom.toml", "broken-rule", "regex"],
    );

    // A valid custom rule is used.
    std::fs::write(
        dir.path().join("custom.toml"),
        "[pack]\nid = \"custom\"\n[[rules]]\nid = \"acme-token\"\ndescription = \"x\"\nregex = '''\\bacme_(?P<secret>[a-z0-9]{12})\\b'''\nkeywords = [\"acme_\"]\nexamples = [\"t=acme_abcdefabcdef\", \"acme_123456789012 x\"]\nnegative_examples = [\"acme_short\"]\n",
    )
    .unwrap();
    let o = run_with_stdin(
        {
            let mut c = keyed();
            c.args(["run", "--rules", dir.path().to_str().unwrap()]);
            c
        },
        b"deploy acme_q1w2e3r4t5y6 done\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[REDACTED:acme-token:k1:"));
}

#[test]
fn bad_config_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "threads = \"many\"\n").unwrap();
    fails_with(
        &["run", "--config", cfg.to_str().unwrap()],
        &["bad.toml", "line 1"],
    );
    fails_with(
        &["run", "--config", "/nonexistent/logveil.toml"],
        &["/nonexistent/logveil.toml"],
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    let (corpus, _) = logveil::corpus::generate_vec(8 << 20, 11, 0.01);
    let mut child = keyed()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&corpus);
    });
    // Read one line, then close our end, like `| head -1`.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn stats_report_counts_and_latency() {
    let mut c = keyed();
    c.args(["run", "--stats"]);
    let o = run_with_stdin(c, b"password=statspw1\nok\npassword=statspw2\n");
    assert!(o.status.success());
    let err = stderr(&o);
    for want in [
        "records 3",
        "findings 2",
        "generic-password-assignment",
        "MB/s",
        "p50",
        "p99.9",
        "latency per record",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

fn corpus_file(
    dir: &Path,
    mb: u64,
    seed: u64,
    rate: f64,
) -> (PathBuf, Vec<logveil::corpus::Label>) {
    let (data, labels) = logveil::corpus::generate_vec(mb << 20, seed, rate);
    let p = dir.join(format!("corpus-{seed}.log"));
    std::fs::write(&p, data).unwrap();
    (p, labels)
}

/// Generates a corpus file, runs `logveil [extra] FILE -o OUT` on it, and returns the input
/// bytes, the output bytes and the labels of the planted secrets.
fn redact_corpus(
    dir: &Path,
    mb: u64,
    seed: u64,
    rate: f64,
    extra: &[&str],
) -> (Vec<u8>, Vec<u8>, Vec<logveil::corpus::Label>) {
    let (input, labels) = corpus_file(dir, mb, seed, rate);
    let out = dir.join("out.log");
    let o = keyed()
        .args(extra)
        .args([input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (
        std::fs::read(&input).unwrap(),
        std::fs::read(&out).unwrap(),
        labels,
    )
}

#[test]
fn large_clean_corpus_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, labels) = redact_corpus(dir.path(), 48, 5, 0.0, &[]);
    assert!(labels.is_empty());
    if a != b {
        let pos = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        let line = a[..pos].iter().filter(|&&c| c == b'\n').count() + 1;
        panic!(
            "output differs from a secret-free input at byte {pos} (line {line}): a false positive"
        );
    }
}

#[test]
fn every_planted_secret_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (original, redacted, labels) = redact_corpus(dir.path(), 32, 9, 0.02, &["--threads", "2"]);
    assert!(labels.len() > 1000, "only {} planted", labels.len());
    let orig_lines: Vec<&[u8]> = original.split(|&b| b == b'\n').collect();
    let red_lines: Vec<&[u8]> = redacted.split(|&b| b == b'\n').collect();
    assert_eq!(orig_lines.len(), red_lines.len(), "record count changed");
    let mut missed: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in &labels {
        let line = red_lines[(l.line - 1) as usize];
        if memchr::memmem::find(line, l.secret.as_bytes()).is_some() {
            *missed.entry(l.kind).or_default() += 1;
        }
    }
    assert!(
        missed.is_empty(),
        "planted secrets left in the output, per kind: {missed:?}"
    );
    // Lines without a planted secret are unchanged.
    let planted: std::collections::HashSet<u64> = labels.iter().map(|l| l.line).collect();
    let mut changed = 0;
    for (i, (a, b)) in orig_lines.iter().zip(&red_lines).enumerate() {
        if a != b && !planted.contains(&(i as u64 + 1)) {
            changed += 1;
        }
    }
    assert_eq!(
        changed, 0,
        "{changed} lines without a planted secret were changed"
    );
}

#[test]
fn json_lines_stay_valid_json() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, labels) = redact_corpus(dir.path(), 16, 21, 0.05, &[]);
    assert!(!labels.is_empty());
    let (mut json, mut redacted_json, mut broken) = (0, 0, 0);
    for (x, y) in a.split(|&c| c == b'\n').zip(b.split(|&c| c == b'\n')) {
        if serde_json::from_slice::<serde_json::Value>(x).is_ok() {
            json += 1;
            redacted_json += (x != y) as usize;
            if serde_json::from_slice::<serde_json::Value>(y).is_err() {
                broken += 1;
            }
        }
    }
    assert!(
        json > 10_000 && redacted_json > 500,
        "json {json}, redacted {redacted_json}"
    );
    assert_eq!(
        broken, 0,
        "{broken} of {redacted_json} redacted JSON lines no longer parse"
    );
}

#[test]
fn stdin_in_small_pieces_equals_the_file_run() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = corpus_file(dir.path(), 1, 33, 0.05);
    let data = std::fs::read(&input).unwrap();
    let whole = keyed().arg(input.to_str().unwrap()).output().unwrap();
    assert!(whole.status.success());
    let mut child = keyed_piped();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // 1-100 byte pieces, with a pause now and then so that reads see partial lines.
        let mut pos = 0;
        let mut n: u64 = 7;
        while pos < data.len() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 1 + (n >> 33) as usize % 100;
            let end = (pos + len).min(data.len());
            stdin.write_all(&data[pos..end]).unwrap();
            stdin.flush().unwrap();
            if (n >> 20) % 64 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            pos = end;
        }
    });
    let piecewise = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(piecewise.status.success());
    assert!(
        piecewise.stdout == whole.stdout,
        "stdin in pieces gave different output from the file"
    );
}

#[test]
fn a_trickle_of_lines_is_forwarded_without_waiting_for_more() {
    use std::io::BufRead;
    let mut child = keyed_piped();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for i in 0..3 {
        // One line, then wait for it to come out while stdin stays open, as from a shipper.
        writeln!(stdin, "event {i} password=trickle{i}pw").unwrap();
        stdin.flush().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut line = String::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                stdout.read_line(&mut line).unwrap();
                let _ = tx.send(());
            });
            let got = rx.recv_timeout(std::time::Duration::from_secs(20));
            if got.is_err() {
                let _ = child.kill();
            }
        });
        assert!(
            line.starts_with(&format!("event {i} password=[REDACTED:")),
            "line {i} was held back"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn private_key_one_line_per_record_across_batches_but_not_across_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[pipeline]\nread_buffer_bytes = 4096\n");
    // Filler so that the key straddles several small batches.
    let mut a = String::new();
    for i in 0..300 {
        a.push_str(&format!("2026-11-02T10:00:00Z INFO filler line {i}\n"));
    }
    let body: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "MIIEpAIBAAKCAQEA{:0>48}",
                format!("{i}x9Qz7Kw2Lm4Np6Rt8Vb0Yc3Ef5Hj1")
            )
        })
        .collect();
    a.push_str("Nov  2 10:00:01 app[1]: -----BEGIN RSA PRIVATE KEY-----\n");
    for line in &body {
        a.push_str(&format!("Nov  2 10:00:01 app[1]: {line}\n"));
    }
    a.push_str("Nov  2 10:00:01 app[1]: -----END RSA PRIVATE KEY-----\nafter the key\n");
    // The first input ends inside a (truncated) block; the second must not inherit it.
    a.push_str("-----BEGIN EC PRIVATE KEY-----\n");
    let b = "MIIBszCCAVmgAwIBAgIUQ0123456789abcdefABCDEF\nsecond input line\n";
    let pa = dir.path().join("a.log");
    let pb = dir.path().join("b.log");
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, b).unwrap();
    let o = keyed()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            pa.to_str().unwrap(),
            pb.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        out.lines().count(),
        a.lines().count() + b.lines().count(),
        "records were merged or split"
    );
    for (i, line) in body.iter().enumerate() {
        assert!(!out.contains(line.as_str()), "key body line {i} leaked");
    }
    assert!(out.contains("-----END RSA PRIVATE KEY-----\nafter the key\n"));
    assert!(
        out.ends_with(b),
        "state leaked from the first input into the second"
    );
}

#[test]
fn netrc_entries_and_continued_curl_commands_across_records_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[pipeline]\nread_buffer_bytes = 4096\n");
    let secrets = [
        "Zq8rT2wXk9Lm4Vb7",
        "Hn3pQ7wZk2Rt5Yx8",
        "Jk8mQ2wZp7Rt",
        "Tr0ub4dor9xQ",
    ];
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!("2026-11-02T10:00:00Z INFO filler line {i}\n"));
    }
    // `cat ~/.netrc` in a CI log, the entry over three records, then a second entry.
    text.push_str("Nov  2 10:00:01 ci-04 job[7]: machine api.github.com\n");
    text.push_str("Nov  2 10:00:01 ci-04 job[7]:   login octocat\n");
    text.push_str(&format!(
        "Nov  2 10:00:01 ci-04 job[7]:   password {}\n",
        secrets[0]
    ));
    text.push_str("Nov  2 10:00:01 ci-04 job[7]: machine nexus.acme.internal login deploy\n");
    text.push_str(&format!(
        "Nov  2 10:00:01 ci-04 job[7]: password {}\n",
        secrets[1]
    ));
    for i in 0..150 {
        text.push_str(&format!("2026-11-02T10:00:02Z INFO filler line {i}\n"));
    }
    // `set -x` output of a multi-line curl command.
    text.push_str("+ curl -X POST https://nexus.acme.internal/upload \\\n");
    text.push_str("    -H 'Content-Type: application/json' \\\n");
    text.push_str(&format!("    -u 'deploy:{}' \\\n", secrets[2]));
    text.push_str(&format!("    --proxy-user=proxy:{} \\\n", secrets[3]));
    text.push_str("    --user \"$CI_USER:$CI_PASS\" \\\n");
    text.push_str("    -d @payload.json\n");
    // Not part of any block: left as they are.
    let kept = [
        "2026-11-02T10:00:03Z INFO machine learning job started",
        "    -u admin:\"$ADMIN_PASS\"",
        "login page rendered in 12 ms",
    ];
    for k in kept {
        text.push_str(k);
        text.push('\n');
    }
    let path = dir.path().join("ci.log");
    std::fs::write(&path, &text).unwrap();
    let o = keyed()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        out.lines().count(),
        text.lines().count(),
        "records merged or split"
    );
    for (s, rule) in secrets.iter().zip([
        "netrc-password",
        "netrc-password",
        "curl-user-password",
        "curl-user-password",
    ]) {
        assert!(!out.contains(s), "{} leaked", logveil::text::preview(s));
        assert!(
            out.contains(&format!("[REDACTED:{rule}:k1:")),
            "no {rule} marker in {}",
            masked(&out[out.len().saturating_sub(900)..], &secrets)
        );
    }
    assert!(
        out.contains("    -u 'deploy:[REDACTED:curl-user-password:"),
        "quotes and user kept"
    );
    for k in kept {
        assert!(out.contains(k), "{k:?} was changed");
    }
    // With the rules off, the blocks are not followed.
    let o = keyed()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--disable",
            "netrc-password",
            "--disable",
            "curl-user-password",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(secrets[0]) && out.contains(secrets[2]),
        "disabled rules still found"
    );
}

#[test]
fn completions_load_in_bash_and_complete_subcommands() {
    let out = bin().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let script = dir_file("logveil.bash", &out.stdout);
    // The real shell: the script loads, registers a completion for logveil, and completes
    // `logveil ru` to the two subcommands and `logveil completions ` to the shells.
    let sh = format!(
        "source {s} && complete -p logveil && \
         COMP_WORDS=(logveil ru); COMP_CWORD=1; _logveil logveil ru logveil; echo \"[${{COMPREPLY[*]}}]\" && \
         COMP_WORDS=(logveil completions ''); COMP_CWORD=2; _logveil logveil '' completions; echo \"[${{COMPREPLY[*]}}]\"",
        s = script.display()
    );
    let o = Command::new("bash").args(["-c", &sh]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text} {}", stderr(&o));
    assert!(text.contains("-F _logveil logveil"), "{text}");
    assert!(text.contains("[run rules]"), "{text}");
    assert!(
        text.contains("bash") && text.contains("zsh") && text.contains("fish"),
        "{text}"
    );
    for (shell, marker) in [("zsh", "#compdef logveil"), ("fish", "complete -c logveil")] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(marker) && text.contains("fingerprint"),
            "{shell}"
        );
    }
    let o = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("tcsh"), "{}", stderr(&o));
}

/// Writes `data` to a file in a fresh temporary directory (kept for the test's life by
/// leaking the guard: the process ends with the test binary).
fn dir_file(name: &str, data: &[u8]) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn man_page_renders_without_warnings_and_covers_every_subcommand() {
    let out = bin().arg("man").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_ascii(), "roff must be ASCII");
    let page = dir_file("logveil.1", &out.stdout);
    // man(1) itself, with its warnings on: a page it cannot render cleanly fails here.
    let o = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    for section in [
        "NAME",
        "SYNOPSIS",
        "RUN",
        "SCAN",
        "FINGERPRINT",
        "RULES",
        "COMPLETIONS",
    ] {
        assert!(text.contains(section), "no {section} section");
    }
    assert!(
        text.contains("--key-file") && text.contains("--quiet"),
        "options missing"
    );
}

#[test]
fn version_names_the_rule_library_and_quiet_silences_warnings() {
    let o = bin().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        v.starts_with(&format!("logveil {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    // The count is the library's, as `rules list` shows it.
    let list = bin().args(["rules", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let rules = list.lines().filter(|l| l.starts_with("  ")).count();
    let packs = list.lines().filter(|l| l.starts_with("pack ")).count();
    assert!(
        v.contains(&format!("{rules} rules in {packs} packs")),
        "{v} vs {rules} rules, {packs} packs"
    );
    let digest = v
        .split("library ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap();
    assert!(
        digest.len() == 12 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    // Without a key: a warning, unless --quiet / -q; the output is the same either way.
    let mut plain = bin();
    plain.env_remove("LOGVEIL_KEY");
    let loud = run_with_stdin(plain, b"x=1\n");
    assert!(
        stderr(&loud).contains("warning: no key configured"),
        "{}",
        stderr(&loud)
    );
    for args in [&["--quiet"][..], &["run", "-q"], &["scan", "--quiet"]] {
        let mut c = bin();
        c.env_remove("LOGVEIL_KEY").args(args);
        let quiet = run_with_stdin(c, b"x=1\n");
        assert!(quiet.stderr.is_empty(), "{args:?}: {}", stderr(&quiet));
        if args[0] != "scan" {
            assert_eq!(quiet.stdout, loud.stdout, "{args:?}");
        }
    }
    // Errors still print under --quiet.
    fails_with(
        &["run", "--quiet", "/nonexistent/input.log"],
        &["logveil: error:"],
    );
}

#[test]
fn findings_audit_trail_says_when_where_and_which_but_never_what() {
    let dir = tempfile::tempdir().unwrap();
    // Small reads, so that records straddle batches, and a cap that cuts the long record
    // into pieces.
    let cfg = write_config(
        dir.path(),
        "[pipeline]\nread_buffer_bytes = 4096\nmax_record_bytes = 65536\n",
    );
    let secrets = ["Zq8rT2wXk9Lm4Vb7", "Hn3pQ7wZk2Rt5Yx8", "Jk8mQ2wZp7RtWc4"];
    let mut text = String::new();
    let mut planted = Vec::new(); // (record number, secret)
    for i in 0..400 {
        match i {
            37 => text.push_str(&format!(
                "2026-11-02T10:00:00Z INFO login user=bob password={}\n",
                secrets[0]
            )),
            211 => {
                // A 150 KB record, cut into pieces, with the secret at byte 140,000.
                let mut long = "x".repeat(140_000 - "password=".len() - 1);
                long.push(' ');
                long.push_str(&format!("password={} ", secrets[1]));
                long.push_str(&"y".repeat(10_000));
                text.push_str(&long);
                text.push('\n');
            }
            399 => text.push_str(&format!(
                "{{\"level\":\"debug\",\"secret\":\"{}\"}}\n",
                secrets[2]
            )),
            _ => text.push_str(&format!("2026-11-02T10:00:00Z INFO filler line {i}\n")),
        }
        if [37, 211, 399].contains(&i) {
            planted.push((i + 1, secrets[planted.len()]));
        }
    }
    let input = dir.path().join("app.log");
    std::fs::write(&input, &text).unwrap();
    let audit = dir.path().join("findings.jsonl");
    let o = keyed()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
        .args(["-o", dir.path().join("out.log").to_str().unwrap()])
        .args(["--findings", audit.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(&audit).unwrap();
    for s in secrets {
        assert!(
            !log.contains(s),
            "the audit trail holds {}",
            logveil::text::preview(s)
        );
    }
    let records: Vec<&str> = text.lines().collect();
    let found: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), planted.len(), "{}", masked(&log, &secrets));
    for (f, (record, secret)) in found.iter().zip(&planted) {
        assert_eq!(f["input"], input.to_str().unwrap());
        assert_eq!(f["record"], *record as u64);
        assert_eq!(f["key_id"], "k1");
        assert_eq!(f["length"], secret.len() as u64);
        assert_eq!(
            f["fingerprint"].as_str().unwrap(),
            fp(secret).split(':').next_back().unwrap()
        );
        // The offset and length point at the secret in its record of the input.
        let (at, len) = (f["offset"].as_u64().unwrap() as usize, secret.len());
        let rec = records[record - 1];
        assert!(
            rec.get(at..at + len) == Some(*secret),
            "record {record}: offset {at} is not the secret"
        );
        assert!(f["time"].as_str().unwrap().ends_with('Z') && f["rule"].is_string());
    }
    assert_eq!(found[1]["offset"], 140_000);
    // `-` is stdout, which `run` uses for the records unless -o says otherwise.
    fails_with(
        &["run", input.to_str().unwrap(), "--findings", "-"],
        &["--findings -"],
    );
}

#[test]
fn field_names_from_the_config_redact_whole_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[fields]\nnames = [\"sessionkey\", \"password\"]\n",
    );
    let input = b"{\"user\":\"bob\",\"app_sessionkey\":\"two words here\",\"retries\":3}\n{\"sessionkey\":null,\"sessionkey_len\":12}\n";
    let o = run_config(&cfg, input);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("\"app_sessionkey\":\"[REDACTED:field-value-json:k1:"),
        "{}",
        masked(&out, &["two words here"])
    );
    assert!(!out.contains("two words here"));
    assert_eq!(lines[1], "{\"sessionkey\":null,\"sessionkey_len\":12}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["retries"], 3);
    // Without the config the default list does not know `sessionkey`.
    let o = run_with_stdin(keyed(), input);
    assert!(String::from_utf8(o.stdout)
        .unwrap()
        .contains("two words here"));
    // A bad name is a clear error.
    std::fs::write(&cfg, "[fields]\nnames = [\"a b\"]\n").unwrap();
    fails_with(&["run", "--config", cfg.to_str().unwrap()], &["[fields]"]);
}

#[test]
fn a_secret_across_the_cut_of_an_over_long_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SMALL_PIECES);
    // One 200 KiB record without newlines; the 64 KiB mark falls inside the secret.
    let mut line = String::new();
    while line.len() < 65536 - 12 {
        line.push_str("lorem ");
    }
    line.truncate(65536 - 12);
    line.push_str(" password=Zq9Xw7Lm2Pn4Tk6 ");
    while line.len() < 200 * 1024 {
        line.push_str("ipsum ");
    }
    line.push('\n');
    let o = run_config(&cfg, line.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let want = line.replace(
        "Zq9Xw7Lm2Pn4Tk6",
        &format!(
            "[REDACTED:generic-password-assignment:k1:{}]",
            fp("Zq9Xw7Lm2Pn4Tk6")
        ),
    );
    assert!(
        out == want,
        "the secret across the 64 KiB cut was not redacted whole"
    );
}

/// One JSON record of about 200 KiB whose `blob` string has no separator (no space, quote,
/// comma ...) and escapes all along, with `/secret/` starting `at` bytes into the record.
fn long_blob_record(at: usize, secret: &str) -> String {
    let unit = "ab\\u0041cd:ef/";
    let mut s = String::from("{\"blob\":\"");
    while s.len() + unit.len() < at {
        s.push_str(unit);
    }
    while s.len() + 1 < at {
        s.push('x');
    }
    s.push('/');
    s.push_str(secret);
    s.push('/');
    while s.len() < 200 * 1024 {
        s.push_str(unit);
    }
    s.push_str("\"}\n");
    s
}

#[test]
fn over_long_records_are_scanned_in_overlapping_windows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SMALL_PIECES);
    let tok = github_token("Wq3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1");
    // Hard cuts (no separator in the last 8 KiB of the 64 KiB window) at every position
    // around and inside the token.
    for at in [
        65536 - 60,
        65536 - 41,
        65536 - 30,
        65536 - 8,
        65536 - 2,
        65536,
    ] {
        let line = long_blob_record(at, &tok);
        let reference = run_with_stdin(keyed(), line.as_bytes());
        let o = run_config(&cfg, line.as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        let want = String::from_utf8(reference.stdout).unwrap();
        assert!(!out.contains(&tok[4..]), "token at {at} was not redacted");
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("token at {at}: output is not JSON: {e}"));
        assert!(v["blob"].is_string());
        // Written once, in order: equal to the one-window run, except that a token across
        // the cut shows its (same) fingerprint on both sides.
        let mark = &want[want.find("[REDACTED:").unwrap()..];
        let mark = &mark[..=mark.find(']').unwrap()];
        assert!(mark.ends_with(&format!("{}]", fp(&tok))));
        let out = out.replace(&format!("{mark}{mark}"), mark);
        assert!(
            out == want,
            "token at {at}: output differs from the one-window run"
        );
    }
}

#[test]
fn a_keyword_in_the_piece_before_the_secret_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SMALL_PIECES);
    let secret = "Zq9Xw7Lm2Pn4Tk6Rv8";
    // The 64 KiB mark falls inside the value: the cut goes after the quote that opens it,
    // so the field name `password` is in one piece and its value in the next.
    let mut line = String::from("{\"msg\":\"");
    while line.len() < 65536 - 30 {
        line.push_str("lorem ");
    }
    line.truncate(65536 - 30);
    line.push_str("\",\"password\":\"");
    line.push_str(secret);
    line.push_str("\",\"more\":\"");
    while line.len() < 150 * 1024 {
        line.push_str("ipsum ");
    }
    line.push_str("\"}\n");
    let value_at = line.find(secret).unwrap();
    assert!(value_at < 65536 && value_at + secret.len() > 65536);
    let o = run_config(&cfg, line.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(&format!(":k1:{}]\",\"more\"", fp(secret))),
        "{}",
        masked(&out[60_000..70_000], &[secret])
    );
    // The same bytes as the run that sees the whole record at once.
    let want = String::from_utf8(run_with_stdin(keyed(), line.as_bytes()).stdout).unwrap();
    assert!(out == want, "{}", masked(&out[60_000..70_000], &[secret]));
}

#[test]
fn secrets_next_to_and_inside_json_escapes_are_replaced_whole() {
    // (record, secret as it appears in the record)
    let cases: &[(&str, &str)] = &[
        (
            r#"{"password":"p\"ss\\w0rd\/x","n":1}"#,
            r#"p\"ss\\w0rd\/x"#,
        ),
        (
            r#"{"log":"{\"password\":\"p\\\"ss\\\\w0rd\\u0021\",\"user\":\"bob\"}"}"#,
            r#"p\\\"ss\\\\w0rd\\u0021"#,
        ),
        (
            r#"{"url":"https:\/\/admin:S3cr3tPassw0rd@db.example.com\/x"}"#,
            "S3cr3tPassw0rd",
        ),
        (
            r#"{"msg":"aws key \u0022AKIA2QWERTYUZXCVBNMQ\u0022 used"}"#,
            "AKIA2QWERTYUZXCVBNMQ",
        ),
        (
            r#"{"msg":"keys:\nAKIA2QWERTYUZXCVBNMQ\nend"}"#,
            "AKIA2QWERTYUZXCVBNMQ",
        ),
        (r#"{"msg":"cfg:\npassword=hunter2x\nend"}"#, "hunter2x"),
        (
            r#"{"msg":"GET /cb?client_secret=Ab%2Bcd%2F9xYz%3D&x=1"}"#,
            "Ab%2Bcd%2F9xYz%3D",
        ),
        (
            r#"{"u":"https://a.blob.core.windows.net/c/b?sig=Zk3QpX9%2BaB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV%3D&sv=2021-08-06"}"#,
            "Zk3QpX9%2BaB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV%3D",
        ),
    ];
    let input: String = cases.iter().map(|(r, _)| format!("{r}\n")).collect();
    let o = run_with_stdin(keyed(), input.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let secrets: Vec<&str> = cases.iter().map(|c| c.1).collect();
    for ((record, secret), line) in cases.iter().zip(out.lines()) {
        // Replaced whole: the line is the record with exactly the secret swapped.
        let at = record.find(secret).unwrap();
        let (head, tail) = (&record[..at], &record[at + secret.len()..]);
        let shown = masked(line, &secrets);
        assert!(
            line.starts_with(head) && line.ends_with(tail) && line.contains(&fp(secret)),
            "{shown}"
        );
        assert!(
            line[head.len()..line.len() - tail.len()].starts_with("[REDACTED:"),
            "{shown}"
        );
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON after redaction ({e}): {shown}"));
    }
}

/// Hashes made by real tools (chpasswd, useradd, openssl passwd, libxcrypt: see the data
/// file), planted in the shapes logs carry them in: an /etc/shadow line, a JSON member, a
/// `usermod -p` command, a docker compose label with `$` doubled. Each must be replaced
/// whole by its rule: nothing of the hash may remain.
#[test]
fn password_hashes_from_real_tools_are_replaced_whole() {
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/password-hashes.tsv"),
    )
    .unwrap();
    let mut checked = 0;
    for line in data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut f = line.split('\t');
        let (tool, rule, hash) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let mut shapes = vec![format!("ops:{hash}:20394:0:99999:7:::")];
        if rule != "des-crypt-shadow-hash" {
            shapes.push(format!(
                "{{\"level\":\"debug\",\"msg\":\"user loaded\",\"hash\":\"{hash}\",\"uid\":1001}}"
            ));
            shapes.push(format!(
                "2026-11-02T10:01:22Z audit: type=EXECVE argc=4 a0=\"usermod\" a1=\"-p\" a2=\"{hash}\" a3=\"ops\""
            ));
            shapes.push(format!(
                "dockerd: label traefik.http.middlewares.a.basicauth.users=ops:{}",
                hash.replace('$', "$$")
            ));
        } else {
            shapes.push(format!("toor:{hash}:0:0:root:/root:/bin/bash"));
        }
        for shape in &shapes {
            let out = run_with_stdin(keyed(), format!("{shape}\n").as_bytes());
            assert!(out.status.success(), "{tool}: {}", stderr(&out));
            let text = String::from_utf8(out.stdout).unwrap();
            let tail = &hash[hash.len() - 10..];
            // The message names the tool, the rule and the shape's length, never the text:
            // a partly replaced hash would leave some of it there.
            let (marked, left) = (
                text.contains(&format!("[REDACTED:{rule}:")),
                text.contains(tail),
            );
            assert!(
                marked && !left,
                "{tool}: {rule} marker present: {marked}, end of the hash left: {left} ({} bytes in)",
                shape.len()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 40,
        "only {checked} hash samples in the data file"
    );
}

/// `GET path` on `addr`; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of one series (name with its labels, exactly as printed) in a scrape.
fn series(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` (Prometheus's own linter) on a scrape: no problems.
fn promtool_accepts(page: &str) {
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
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Reads stdout of `child` until `n` lines came; returns them.
fn read_lines(out: &mut impl std::io::BufRead, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l
        })
        .collect()
}

/// Scrapes `/metrics` until `series` has the value `want` (the latency of a record is
/// accounted just after its write is flushed, so a scrape may come a moment before); returns
/// the page, or fails after 10 s showing the last one.
fn scrape_until(addr: &str, series_name: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, page) = http_get(addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        if series(&page, series_name) == Some(want) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series_name} never reached {want}:\n{page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn metrics_endpoint_during_a_stream() {
    use std::io::BufRead;
    let mut child = keyed()
        .args(["run", "--metrics", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut notice = String::new();
    err.read_line(&mut notice).unwrap();
    let addr = notice
        .trim()
        .strip_prefix("logveil: metrics at http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics notice: {notice}"))
        .to_string();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let secrets: Vec<String> = (0..30).map(|i| format!("Tr0ub4dor{i:03}x")).collect();
    let send = |stdin: &mut std::process::ChildStdin, from: usize, to: usize| {
        for (i, s) in secrets.iter().enumerate().take(to).skip(from) {
            writeln!(stdin, "ts=1 user=u{i} password={s} action=login").unwrap();
            writeln!(stdin, "ts=1 clean line {i}").unwrap();
        }
        stdin.flush().unwrap();
    };
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let received = "logveil_component_received_events_total{component_kind=\"source\",component_type=\"stdin\"}";
    let sent =
        "logveil_component_sent_events_total{component_kind=\"sink\",component_type=\"stdout\"}";
    let found = "logveil_findings_total{rule=\"generic-password-assignment\"}";

    // First part of the stream: once its lines are out, the scrape counts them.
    send(&mut stdin, 0, 10);
    let lines = read_lines(&mut out, 20);
    assert!(
        lines.iter().all(|l| !refs.iter().any(|s| l.contains(s))),
        "{}",
        masked(&lines.concat(), &refs)
    );
    let page = scrape_until(&addr, "logveil_record_latency_seconds_count", 20.0);
    assert_eq!(series(&page, received), Some(20.0), "{page}");
    assert_eq!(series(&page, sent), Some(20.0), "{page}");
    assert_eq!(series(&page, found), Some(10.0), "{page}");
    assert_eq!(
        series(&page, "logveil_record_latency_seconds_count"),
        Some(20.0),
        "{page}"
    );
    assert_eq!(
        series(&page, "logveil_record_latency_seconds_bucket{le=\"+Inf\"}"),
        Some(20.0)
    );
    // Every enabled rule has its series, also at 0, so that rate() works from the start.
    let rules = series(&page, "logveil_rules_enabled").unwrap() as usize;
    assert_eq!(
        page.lines()
            .filter(|l| l.starts_with("logveil_findings_total{"))
            .count(),
        rules
    );
    assert!(
        !refs.iter().any(|s| page.contains(s)),
        "a secret in the scrape"
    );
    assert!(
        !page.contains(&fp(&secrets[0])),
        "a fingerprint in the scrape"
    );
    promtool_accepts(&page);

    // The stream goes on: the next scrape has moved on.
    send(&mut stdin, 10, 30);
    read_lines(&mut out, 40);
    let page = scrape_until(&addr, "logveil_record_latency_seconds_count", 60.0);
    assert_eq!(series(&page, received), Some(60.0), "{page}");
    assert_eq!(series(&page, found), Some(30.0), "{page}");
    promtool_accepts(&page);
    assert_eq!(
        http_get(&addr, "/health"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    assert_eq!(http_get(&addr, "/other").0, "HTTP/1.1 404 Not Found");

    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty(), "{}", masked(&rest, &refs));
}

#[test]
fn metrics_address_errors_and_config() {
    // A busy port fails at once, before any input is read.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    fails_with(
        &["run", "--metrics", &addr],
        &["metrics: cannot listen on", &addr],
    );
    fails_with(
        &["scan", "--metrics", "not-an-address"],
        &["metrics: cannot listen on not-an-address"],
    );
    // `[metrics] listen` in the config does the same as --metrics; `scan` serves too.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let mut c = keyed();
    c.args(["scan", "--config", cfg.to_str().unwrap()]);
    let o = run_with_stdin(c, b"password=Zq8vN2kLmwX\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("logveil: metrics at http://127.0.0.1:"),
        "{}",
        stderr(&o)
    );
    let cfg = write_config(dir.path(), "[metrics]\nport = 9898\n");
    let mut c = keyed();
    c.args(["run", "--config", cfg.to_str().unwrap()]);
    let o = run_with_stdin(c, b"x\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("port"), "{}", stderr(&o));
}

#[test]
fn directory_trees_mirror_into_an_output_directory_and_report_each_problem() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("archive");
    std::fs::create_dir_all(root.join("2024/01")).unwrap();
    std::fs::create_dir_all(root.join("2025/02")).unwrap();
    let secrets: Vec<String> = (0..4).map(|i| format!("Vault{i}Pass9q")).collect();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let line = |i: usize| format!("ts={i} user=u{i} password={} ok\n", secrets[i]);
    write_gzip(
        &root.join("2024/01/app.log.gz"),
        line(0).repeat(500).as_bytes(),
    );
    std::fs::write(root.join("2025/02/api.log"), line(1)).unwrap();
    let zst = zstd::encode_all(line(2).as_bytes(), 3).unwrap();
    std::fs::write(root.join("2025/web.log.zst"), zst).unwrap();
    // A truncated archive in the middle of the tree: what it holds up to the cut is
    // redacted, the run goes on with the next file, and fails at its end naming it.
    let mut cut = Vec::new();
    {
        let mut e = flate2::write::GzEncoder::new(&mut cut, flate2::Compression::default());
        for i in 0..20_000 {
            writeln!(e, "n={i} password={} x", secrets[3]).unwrap();
        }
        e.finish().unwrap();
    }
    cut.truncate(cut.len() / 2);
    std::fs::write(root.join("2024/cut.log.gz"), &cut).unwrap();
    std::os::unix::fs::symlink("..", root.join("2025/02/up")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/logveil", root.join("gone.log")).unwrap();

    let out = d.path().join("mirror");
    let o = keyed()
        .args(["run", &format!("{}/", root.display()), "-o"])
        .arg(format!("{}/", out.display()))
        .output()
        .unwrap();
    let err = masked(&stderr(&o), &refs);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2025/02/up -> ..: symlink loop")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("gone.log: symlink to /nonexistent/logveil cannot be followed")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2024/cut.log.gz: truncated compressed stream")),
        "{err}"
    );
    assert!(
        lines[3].contains("3 of 6 inputs could not be read"),
        "{err}"
    );
    // The mirrored tree: same relative paths, same compression, every record, no secret.
    let app = read_gzip(&out.join("2024/01/app.log.gz"));
    assert_eq!(app.iter().filter(|&&b| b == b'\n').count(), 500);
    let api = std::fs::read(out.join("2025/02/api.log")).unwrap();
    let web = zstd::decode_all(&std::fs::read(out.join("2025/web.log.zst")).unwrap()[..]).unwrap();
    let partial = read_gzip(&out.join("2024/cut.log.gz"));
    assert!(partial.len() > 1000, "the part before the cut is there");
    for (name, text) in [
        ("app", &app),
        ("api", &api),
        ("web", &web),
        ("cut", &partial),
    ] {
        let t = String::from_utf8_lossy(text);
        assert!(
            t.contains("password=[REDACTED:"),
            "{name}: {}",
            masked(&t, &refs)
        );
        assert!(
            !refs.iter().any(|s| t.contains(s)),
            "{name}: {}",
            masked(&t, &refs)
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&api),
        format!(
            "ts=1 user=u1 password=[REDACTED:generic-password-assignment:k1:{}] ok\n",
            fp(&secrets[1])
        )
    );

    // An output directory inside the tree is refused before anything is written.
    let inside = root.join("clean");
    fails_with(
        &[
            "run",
            root.to_str().unwrap(),
            "-o",
            &format!("{}/", inside.display()),
        ],
        &["is inside input directory"],
    );
    assert!(!inside.exists());

    // A glob (quoted: too many files for the shell) walks the same way; `scan` too.
    let o = keyed()
        .args(["scan", &format!("{}/**/*.log", root.display())])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", masked(&stderr(&o), &refs));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 findings in 1 records"));
    fails_with(
        &["scan", &format!("{}/*.nothing", root.display())],
        &["no file matches"],
    );
}

/// Runs `logveil ARGS` (keyed) under `script`, with a pseudo-terminal as its stdin, stdout
/// and stderr; checks its exit code; returns what the terminal showed.
fn on_a_terminal(args: &[&str], dir: &Path, code: i32) -> String {
    let ts = dir.join("typescript");
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_logveil"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let st = Command::new("script")
        .args(["-q", "-e", "-c", &cmd])
        .arg(&ts)
        .env("LOGVEIL_KEY", KEY)
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&std::fs::read(&ts).unwrap()).into_owned();
    assert_eq!(st.code(), Some(code), "{}", text);
    // `script` frames the transcript with a header and a footer line.
    text.lines()
        .filter(|l| !l.starts_with("Script started") && !l.starts_with("Script done"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.log.gz");
    let text: String = (0..20_000)
        .map(|i| format!("ts={i} user=u{} password=Pw{i:07}xq action=login\n", i % 7))
        .collect();
    write_gzip(&input, text.as_bytes());
    let size = std::fs::metadata(&input).unwrap().len();
    let out = d.path().join("out.log");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let shown = on_a_terminal(&["run", i, "-o", o], d.path(), 0);
    // The final state: all bytes of the file as on disk (compressed), every finding.
    assert!(shown.contains("20000 findings"), "{shown}");
    let total = if size < 1024 * 1024 {
        format!(
            "{:.2} KiB/{:.2} KiB",
            size as f64 / 1024.0,
            size as f64 / 1024.0
        )
    } else {
        format!("{:.2} MiB", size as f64 / 1048576.0)
    };
    assert!(shown.contains(&total), "{total} in {shown}");
    // Never in the output.
    let redacted = std::fs::read_to_string(&out).unwrap();
    assert_eq!(redacted.lines().count(), 20_000);
    assert!(!redacted.contains("findings") && !redacted.contains('\x1b'));
    // Off with --quiet and --no-progress; `scan` shows one too.
    for off in ["--quiet", "--no-progress"] {
        let shown = on_a_terminal(&["run", i, "-o", o, off], d.path(), 0);
        assert!(!shown.contains("findings"), "{off}: {shown}");
    }
    let shown = on_a_terminal(&["scan", i], d.path(), 1);
    assert!(
        shown.contains("20000 findings") && shown.contains("ETA"),
        "{shown}"
    );
    // Not a terminal: nothing on stderr.
    let o2 = keyed().args(["run", i, "-o", o]).output().unwrap();
    assert!(o2.status.success());
    assert!(o2.stderr.is_empty(), "{}", stderr(&o2));
}
