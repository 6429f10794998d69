//! A deterministic generator of realistic mixed log corpora, with planted secrets and ground
//! truth, for tests and benchmarks (`logveil corpus`).
//!
//! The mix is nginx access logs, JSON application logs, logfmt, syslog, Kubernetes container
//! JSON (escaped quotes), Java/log4j with multi-line stack traces and Apache error logs. About
//! `secret_rate` of the lines carry one fake secret of a known shape, in the places secrets
//! leak in practice (query strings, headers, DSNs, env dumps, JSON fields). Benign
//! look-alikes (UUIDs, hex trace ids, base64 blobs, non-Luhn order ids, "token expired") are
//! everywhere, so that false positives show. All secrets are made up here from a seeded PRNG.

use std::io::{self, Write};

use base64::Engine as _;

use crate::rules::validators::{base62_6, luhn};

/// One planted secret: line number (1-based), kind, and the secret text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// 1-based line number.
    pub line: u64,
    /// What kind of secret.
    pub kind: &'static str,
    /// The secret text.
    pub secret: String,
}

/// What `logveil corpus` makes.
#[derive(Debug, Clone)]
pub struct CorpusConfig {
    /// Approximate size in bytes.
    pub size_bytes: u64,
    /// Seed: the same seed makes the same corpus.
    pub seed: u64,
    /// Share of lines that carry a secret (0 gives a corpus with no secrets at all).
    pub secret_rate: f64,
}

/// SplitMix64: small, fast, and the same on every platform. Shared with the quality harness
/// (`tests/support/quality.rs`).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// One byte of `set`.
    pub fn byte_from(&mut self, set: &[u8]) -> u8 {
        set[self.below(set.len() as u64) as usize]
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// One element of `xs`.
    pub fn pick<'a, T: ?Sized>(&mut self, xs: &[&'a T]) -> &'a T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// `len` characters of `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| self.byte_from(alphabet) as char).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Lower-case hex digits.
pub const HEX: &[u8] = b"0123456789abcdef";
/// The standard base64 alphabet.
pub const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PASS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*-_.";
const URIPASS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.";

const HOSTS: &[&str] = &[
    "web-01",
    "web-02",
    "api-7f9c",
    "worker-3",
    "db-primary",
    "edge-fra1",
    "ingest-2",
    "auth-svc-0",
];
const SERVICES: &[&str] = &[
    "checkout",
    "payments",
    "auth",
    "inventory",
    "search",
    "gateway",
    "billing",
    "orders",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v2/users/me",
    "/healthz",
    "/static/app.js",
    "/api/v1/search",
    "/login",
    "/metrics",
    "/api/v1/cart/items",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "kube-probe/1.30",
    "Go-http-client/2.0",
    "python-requests/2.32.3",
];
const MESSAGES: &[&str] = &[
    "request completed",
    "cache miss for key user:profile",
    "token expired, refreshing session",
    "password reset requested for user",
    "retrying upstream call",
    "payment authorised",
    "connection pool exhausted, waiting",
    "tokenizer loaded 32000 entries",
    "secret rotation scheduled",
    "user logged in",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"];

/// A random version-4-shaped UUID.
pub fn uuid(r: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        r.string(HEX, 8),
        r.string(HEX, 4),
        r.string(HEX, 3),
        r.string(HEX, 3),
        r.string(HEX, 12)
    )
}

fn ip(r: &mut Rng) -> String {
    format!("10.{}.{}.{}", r.below(255), r.below(255), r.range(1, 255))
}

fn ts(r: &mut Rng, line: u64) -> String {
    let s = line / 7;
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        2 + (s / 86400) % 27,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        r.below(1000)
    )
}

/// Escapes text for a JSON string: quotes, backslashes, newlines and tabs.
pub fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c => o.push(c),
        }
    }
    o
}

fn github_classic(r: &mut Rng, prefix: &str) -> String {
    let body = r.string(ALNUM, 30);
    let check = base62_6(crc32fast::hash(body.as_bytes()));
    format!("{prefix}{body}{}", std::str::from_utf8(&check).unwrap())
}

fn luhn_card(r: &mut Rng) -> String {
    let prefix = r.pick(&["4", "51", "55", "2221", "6011"]);
    loop {
        let mut s = prefix.to_string();
        s.push_str(&r.string(b"0123456789", 15 - prefix.len()));
        for d in 0..10u8 {
            let c = format!("{s}{d}");
            if luhn(c.as_bytes()) {
                return c;
            }
        }
    }
}

fn non_luhn_16(r: &mut Rng) -> String {
    loop {
        let s = format!("9{}", r.string(b"0123456789", 15));
        if !luhn(s.as_bytes()) {
            return s;
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns (kind, secret, snippet that carries it).
fn secret_snippet(r: &mut Rng) -> (&'static str, String, String) {
    match r.below(22) {
        0 => {
            let s = format!("{}{}", r.pick(&["AKIA", "ASIA"]), r.string(UPPER32, 16));
            let ctx = r.pick(&[
                "aws_access_key_id={}",
                "using AWS access key {} for s3 upload",
                "\"accessKeyId\":\"{}\"",
            ]);
            ("aws-key-id", s.clone(), ctx.replace("{}", &s))
        }
        1 => {
            let s = r.string(B64, 40);
            let ctx = r.pick(&[
                "aws_secret_access_key={}",
                "AWS_SECRET_ACCESS_KEY={}",
                "\"SecretAccessKey\":\"{}\"",
            ]);
            ("aws-secret", s.clone(), ctx.replace("{}", &s))
        }
        2 => {
            let prefix = r.pick(&["ghp_", "gho_", "ghs_", "ghu_"]);
            let s = github_classic(r, prefix);
            let ctx = r.pick(&[
                "git clone https://x-access-token:{}@github.com/acme/infra.git",
                "GITHUB_TOKEN={}",
                "using token {} for api.github.com",
            ]);
            ("github", s.clone(), ctx.replace("{}", &s))
        }
        3 => {
            let s = format!("github_pat_{}_{}", r.string(ALNUM, 22), r.string(ALNUM, 59));
            ("github-pat", s.clone(), format!("GH_PAT={s}"))
        }
        4 => {
            let s = format!("glpat-{}", r.string(ALNUM, 20));
            (
                "gitlab",
                s.clone(),
                format!("gitlab api call with PRIVATE-TOKEN: {s}"),
            )
        }
        5 => {
            let s = format!(
                "{}-{}-{}-{}",
                r.pick(&["xoxb", "xoxp"]),
                r.range(10_000_000_000, 9_999_999_999_999),
                r.range(10_000_000_000, 9_999_999_999_999),
                r.string(ALNUM, 24)
            );
            ("slack", s.clone(), format!("SLACK_BOT_TOKEN={s}"))
        }
        6 => {
            let tok = r.string(ALNUM, 24);
            let url = format!(
                "https://hooks.slack.com/services/T{}/B{}/{tok}",
                r.string(UPPER32, 8),
                r.string(UPPER32, 10)
            );
            ("slack-webhook", tok, format!("posting alert to {url}"))
        }
        7 => {
            let s = format!(
                "{}{}",
                r.pick(&["sk_live_", "rk_live_"]),
                r.string(ALNUM, 24)
            );
            (
                "stripe",
                s.clone(),
                format!("stripe client configured key={s}"),
            )
        }
        8 => {
            let s = format!("AIza{}", r.string(B64URL, 35));
            (
                "google-api-key",
                s.clone(),
                format!(
                    "GET https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={s}"
                ),
            )
        }
        9 => {
            let s = format!("SG.{}.{}", r.string(B64URL, 22), r.string(B64URL, 43));
            ("sendgrid", s.clone(), format!("SENDGRID_API_KEY={s}"))
        }
        10 => {
            let s = github_classic(r, "npm_");
            (
                "npm",
                s.clone(),
                format!("//registry.npmjs.org/:_authToken={s}"),
            )
        }
        11 => {
            let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = b64url(
                format!(
                    r#"{{"sub":"{}","iat":{},"role":"user"}}"#,
                    r.range(1000, 99999),
                    r.range(1_700_000_000, 1_800_000_000)
                )
                .as_bytes(),
            );
            let s = format!("{header}.{payload}.{}", r.string(B64URL, 43));
            ("jwt", s.clone(), format!("session cookie jwt={s}"))
        }
        12 => {
            let s = r.string(ALNUM, 40);
            let ctx = r.pick(&[
                "Authorization: Bearer {}",
                "\"authorization\":\"Bearer {}\"",
                "curl -H 'Authorization: Bearer {}' https://api.internal/v1/jobs",
            ]);
            ("bearer", s.clone(), ctx.replace("{}", &s))
        }
        13 => {
            let user = r.pick(&["admin", "deploy", "svc-backup"]);
            let s = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", r.string(URIPASS, 14)));
            ("basic", s.clone(), format!("Authorization: Basic {s}"))
        }
        14 | 15 => {
            let len = r.range(10, 18) as usize;
            let s = r.string(PASS, len);
            let ctx = r.pick(&[
                "password={}",
                "\"password\":\"{}\"",
                "PGPASSWORD={}",
                "db_password=\"{}\"",
                "client_secret={}",
                "--password {}",
            ]);
            ("password", s.clone(), ctx.replace("{}", &s))
        }
        16 => {
            let s = r.string(URIPASS, 16);
            let scheme = r.pick(&["postgres", "mysql", "mongodb+srv", "redis", "amqp"]);
            (
                "db-uri",
                s.clone(),
                format!("connecting to {scheme}://app_user:{s}@db.internal:5432/app"),
            )
        }
        17 => {
            let s = luhn_card(r);
            let shown = match r.below(3) {
                0 => s.clone(),
                1 => format!("{} {} {} {}", &s[..4], &s[4..8], &s[8..12], &s[12..]),
                _ => format!("{}-{}-{}-{}", &s[..4], &s[4..8], &s[8..12], &s[12..]),
            };
            (
                "card",
                shown.clone(),
                format!("charge failed card={shown} amount=42.00"),
            )
        }
        18 => {
            let body = r.string(B64, 64);
            let block = format!("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA{body}\n-----END RSA PRIVATE KEY-----");
            ("private-key", body, format!("loaded signing key {block}"))
        }
        19 => {
            let s = format!("{}==", r.string(B64, 86));
            ("azure-storage", s.clone(), format!("DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey={s};EndpointSuffix=core.windows.net"))
        }
        20 => {
            let s = format!("sk-proj-{}", r.string(B64URL, 64));
            ("openai", s.clone(), format!("OPENAI_API_KEY={s}"))
        }
        _ => {
            let s = format!("sk-ant-api03-{}AA", r.string(B64URL, 93));
            ("anthropic", s.clone(), format!("x-api-key: {s}"))
        }
    }
}

/// One benign fragment with look-alikes.
fn benign_extra(r: &mut Rng) -> String {
    match r.below(8) {
        0 => format!("trace_id={}", r.string(HEX, 32)),
        1 => format!("commit={}", r.string(HEX, 40)),
        2 => format!("order_id={}", non_luhn_16(r)),
        3 => format!("digest=sha256:{}", r.string(HEX, 64)),
        4 => format!("blob={}", r.string(B64, 44)),
        5 => "stripe_key=sk_test_xxxxxxxxxxxxxxxxxxxx".to_string(),
        6 => format!("request_id={}", uuid(r)),
        _ => format!("span={}", r.string(HEX, 16)),
    }
}

struct Gen {
    r: Rng,
    line: u64,
}

impl Gen {
    /// Writes one event (one or more lines). Returns the label if a secret was planted.
    fn event(&mut self, out: &mut Vec<u8>, secret: bool) -> Option<Label> {
        let first_line = self.line + 1;
        let planted = if secret {
            Some(secret_snippet(&mut self.r))
        } else {
            None
        };
        let r = &mut self.r;
        let t = ts(r, self.line);
        let extra = benign_extra(r);
        let snippet = planted.as_ref().map(|(_, _, s)| s.clone());
        let msg = snippet
            .clone()
            .unwrap_or_else(|| r.pick(MESSAGES).to_string());
        // Outside JSON, a logged multi-line value shows its newlines as `\n`.
        let flat = msg.replace('\n', "\\n");
        let mut format = r.below(100);
        if format <= 25 && snippet.as_deref().is_some_and(|s| s.contains([' ', '\n'])) {
            format = 70; // a query string cannot carry this snippet as-is: use syslog
        }
        let service = r.pick(SERVICES);
        let level = r.pick(LEVELS);
        let mut lines = 1;
        match format {
            0..=25 => {
                let query = match &snippet {
                    Some(s) => format!("?q={}", s.replace('"', "%22")),
                    None => format!("?page={}&{}", r.below(20), extra),
                };
                let _ = writeln!(
                    out,
                    "{} - - [02/Nov/2026:{}:{:02}:{:02} +0000] \"GET {}{} HTTP/1.1\" {} {} \"https://shop.example.com/\" \"{}\"",
                    ip(r),
                    10 + r.below(10),
                    r.below(60),
                    r.below(60),
                    r.pick(PATHS),
                    query,
                    r.pick(&["200", "200", "200", "304", "404", "500"]),
                    r.range(200, 90_000),
                    r.pick(AGENTS)
                );
            }
            26..=45 => {
                let _ = writeln!(
                    out,
                    "{{\"ts\":\"{t}\",\"level\":\"{}\",\"service\":\"{service}\",\"msg\":\"{}\",\"user_id\":{},\"duration_ms\":{},\"extra\":\"{}\"}}",
                    level.to_ascii_lowercase(),
                    json_escape(&msg),
                    r.range(1, 1_000_000),
                    r.below(2000),
                    json_escape(&extra)
                );
            }
            46..=60 => {
                let _ = writeln!(
                    out,
                    "ts={t} level={} service={service} host={} msg=\"{}\" {} duration={}ms",
                    level.to_ascii_lowercase(),
                    r.pick(HOSTS),
                    flat.replace('"', "'"),
                    extra,
                    r.below(900)
                );
            }
            61..=74 => {
                let _ = writeln!(
                    out,
                    "Nov  2 {:02}:{:02}:{:02} {} {service}[{}]: {} {}",
                    r.below(24),
                    r.below(60),
                    r.below(60),
                    r.pick(HOSTS),
                    r.range(100, 65000),
                    flat,
                    extra
                );
            }
            75..=86 => {
                let inner = format!(
                    "{{\"level\":\"{}\",\"msg\":\"{}\",\"{}\":\"{}\"}}",
                    level.to_ascii_lowercase(),
                    json_escape(&msg),
                    "request_id",
                    uuid(r)
                );
                let _ = writeln!(
                    out,
                    "{{\"log\":\"{}\\n\",\"stream\":\"stdout\",\"time\":\"{t}\",\"kubernetes\":{{\"namespace\":\"prod\",\"pod\":\"{service}-{}\"}}}}",
                    json_escape(&inner),
                    r.string(HEX, 5)
                );
            }
            87..=97 => {
                let _ = writeln!(
                    out,
                    "{} {level:<5} [http-nio-8080-exec-{}] c.a.{service}.Service - {} ({})",
                    t.replace('T', " ").trim_end_matches('Z'),
                    r.below(20),
                    flat,
                    extra
                );
                if level == "ERROR" || r.chance(0.3) {
                    let _ = writeln!(
                        out,
                        "java.lang.IllegalStateException: upstream returned 503"
                    );
                    let n = r.range(3, 9);
                    for i in 0..n {
                        let _ = writeln!(
                            out,
                            "\tat com.acme.{service}.Handler.step{i}(Handler.java:{})",
                            r.range(20, 900)
                        );
                    }
                    lines += 1 + n;
                }
            }
            _ => {
                let _ = writeln!(
                    out,
                    "[Mon Nov 02 10:{:02}:{:02}.{:06} 2026] [proxy:error] [pid {}] (111)Connection refused: AH00957: {} {}",
                    r.below(60),
                    r.below(60),
                    r.below(1_000_000),
                    r.range(100, 65000),
                    flat,
                    extra
                );
            }
        }
        self.line += lines;
        planted.map(|(kind, secret, _)| Label {
            line: first_line,
            kind,
            secret,
        })
    }
}

/// Writes a corpus of about `size_bytes` (whole lines) to `out`; returns the labels.
pub fn generate(cfg: &CorpusConfig, out: &mut dyn Write) -> io::Result<Vec<Label>> {
    let mut g = Gen {
        r: Rng(cfg.seed ^ 0x6c6f_6776_6569_6c00),
        line: 0,
    };
    let mut labels = Vec::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut written = 0u64;
    // About 1.2 lines per event: scale the per-event chance to hit the per-line rate.
    let p = (cfg.secret_rate * 1.2).min(1.0);
    while written < cfg.size_bytes {
        let secret = cfg.secret_rate > 0.0 && g.r.chance(p);
        if let Some(l) = g.event(&mut buf, secret) {
            labels.push(l);
        }
        if buf.len() >= (1 << 20) - 4096 || written + buf.len() as u64 >= cfg.size_bytes {
            out.write_all(&buf)?;
            written += buf.len() as u64;
            buf.clear();
        }
    }
    Ok(labels)
}

/// Convenience: the corpus in memory.
pub fn generate_vec(size_bytes: u64, seed: u64, secret_rate: f64) -> (Vec<u8>, Vec<Label>) {
    let mut v = Vec::with_capacity(size_bytes as usize + 4096);
    let labels = generate(
        &CorpusConfig {
            size_bytes,
            seed,
            secret_rate,
        },
        &mut v,
    )
    .expect("writing to memory cannot fail");
    (v, labels)
}

/// Writes labels as TSV: `line<TAB>kind<TAB>secret`.
pub fn write_labels(labels: &[Label], out: &mut dyn Write) -> io::Result<()> {
    for l in labels {
        writeln!(out, "{}\t{}\t{}", l.line, l.kind, l.secret)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let (a, la) = generate_vec(200_000, 7, 0.01);
        let (b, lb) = generate_vec(200_000, 7, 0.01);
        assert_eq!(a, b);
        assert_eq!(la, lb);
        assert!(a.len() >= 200_000 && a.len() < 200_000 + (1 << 20));
        assert!(a.ends_with(b"\n"));
        assert!(!la.is_empty());
        let (c, _) = generate_vec(200_000, 8, 0.01);
        assert_ne!(a, c);
    }

    #[test]
    fn labels_point_at_lines_that_hold_the_secret() {
        let (v, labels) = generate_vec(300_000, 3, 0.02);
        let lines: Vec<&[u8]> = v.split(|&b| b == b'\n').collect();
        for l in &labels {
            let line = lines[(l.line - 1) as usize];
            let s = String::from_utf8_lossy(line);
            assert!(
                s.contains(&l.secret),
                "label {} ({}) not on its line",
                l.line,
                l.kind
            );
        }
    }

    #[test]
    fn zero_rate_plants_nothing() {
        let (_, labels) = generate_vec(100_000, 1, 0.0);
        assert!(labels.is_empty());
    }
}
