//! A labeled corpus for measuring recall and false positives of the rule library.
//!
//! Positives: for every rule and every one of its examples, new secrets of the same shape are
//! made by re-drawing the example secret's random characters (letters stay letters of the same
//! case, digits stay digits), keeping the structure that all of the rule's examples share
//! (prefixes like `ghp_`, markers like `T3BlbkFJ`, suffixes like `AA`) and then repairing the
//! checksum the rule validates (CRC32/base62, Luhn, IBAN mod-97, Bech32, Basic auth). Each one
//! is planted back into the example's line and into other log formats (syslog, logfmt,
//! Kubernetes JSON with escaped quotes).
//!
//! Negatives: look-alikes that a redactor must leave alone (UUIDs, git SHAs, sha256 digests,
//! trace ids, base64 blobs, non-Luhn order numbers, wrong-length key ids, placeholders,
//! words like `tokenizer`) in the same formats, plus every rule's own negative examples.

use base64::Engine as _;

use logveil::corpus::{json_escape, uuid, Rng, B64, HEX};
use logveil::engine::Matcher;
use logveil::rules::validators::{
    base36, base62_6, bech32_hrp_expand, bech32_polymod, luhn, Validator, BECH32_CHARSET,
};
use logveil::rules::Rule;

/// One labeled line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub line: Vec<u8>,
    /// Pack of the rule whose shape was planted (positives), or "negative".
    pub family: String,
    pub rule: String,
    /// The planted secret as it appears in the line (empty for negatives).
    pub secret: Vec<u8>,
    /// How the line was wrapped: "example", "syslog", "logfmt", "k8s-json", or the kind of
    /// negative.
    pub wrapper: &'static str,
}

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGIT: &[u8] = b"0123456789";

/// The secret of each example, as the rule itself finds it (first finding).
fn example_secrets(rule: &Rule, m: &Matcher) -> Vec<(String, std::ops::Range<usize>)> {
    rule.examples
        .iter()
        .filter_map(|ex| {
            m.find(ex.as_bytes())
                .first()
                .map(|f| (ex.clone(), f.start..f.end))
        })
        .collect()
}

/// Positions of `secret` that every other example secret shares, aligned from the start or
/// from the end: the structure of the format.
fn fixed_positions(secret: &[u8], others: &[&[u8]]) -> Vec<bool> {
    (0..secret.len())
        .map(|i| {
            if others.is_empty() {
                return false;
            }
            let from_start = others.iter().all(|o| o.get(i) == Some(&secret[i]));
            let back = secret.len() - i;
            let from_end = others
                .iter()
                .all(|o| o.len() >= back && o[o.len() - back] == secret[i]);
            from_start || from_end
        })
        .collect()
}

/// Positions of `secret` inside a run of 2 or more characters that occurs verbatim in the
/// regex source (backslash escapes removed).
fn literal_positions(secret: &[u8], regex: &str) -> Vec<bool> {
    let mut src = Vec::with_capacity(regex.len());
    let mut esc = false;
    for &b in regex.as_bytes() {
        if esc || b != b'\\' {
            src.push(b);
            esc = false;
        } else {
            esc = true;
        }
    }
    let mut out = vec![false; secret.len()];
    let n = secret.len();
    for i in 0..n {
        // Longest run starting at i that the regex contains.
        // Literal runs in a regex are short; 64 bounds the work on long PEM secrets.
        let best = (i + 2..=n.min(i + 64))
            .rev()
            .find(|&j| memchr::memmem::find(&src, &secret[i..j]).is_some())
            .map_or(0, |j| j - i);
        for o in out.iter_mut().skip(i).take(best) {
            *o = true;
        }
    }
    out
}

/// Alnum segments of a secret (split at `_ - . / : + = ~` and other punctuation).
fn segments(s: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in s.iter().enumerate() {
        match (b.is_ascii_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                out.push(a..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push(a..s.len());
    }
    out
}

/// Redraws the characters of `secret` that are not `fixed`. Segment by segment, a character
/// is drawn from what the rule's examples show there: in long (random) segments from the
/// characters of the same class seen in that segment (base32 key ids have no 0, 1, 8, 9; hex
/// segments no g-z), in short (structural) segments from the characters seen at that very
/// position (`xox[bp]`, `T…`/`B…` ids). A segment that all examples begin alike keeps that
/// beginning.
fn redraw(secret: &[u8], fixed: &[bool], examples: &[(&[u8], Vec<bool>)], r: &mut Rng) -> Vec<u8> {
    let mut out = secret.to_vec();
    let ex_segs: Vec<Vec<std::ops::Range<usize>>> =
        examples.iter().map(|(e, _)| segments(e)).collect();
    for (k, seg) in segments(secret).into_iter().enumerate() {
        // The peers' characters in segment k; literal structure (like the `1` of a Bech32
        // separator) is blanked out so that it does not join the random alphabet.
        let long = seg.len() >= 8;
        // Long segments learn only from peers of the same length (a 32-hex alternative and
        // a 20-char alphanumeric one do not share an alphabet).
        let peer_segs = |same_len: bool| -> Vec<Vec<u8>> {
            examples
                .iter()
                .zip(&ex_segs)
                .filter_map(|((e, lit), segs)| {
                    segs.get(k)
                        .filter(|g| !same_len || g.len() == seg.len())
                        .map(|g| g.clone().map(|i| if lit[i] { 0 } else { e[i] }).collect())
                })
                .collect()
        };
        let all_peers = peer_segs(false);
        let peers = peer_segs(long);
        for (p, i) in seg.clone().enumerate() {
            let b = secret[i];
            // Escape sequences (`\n` in a JSON-escaped PEM block) are structure too.
            if fixed[i] || !b.is_ascii_alphanumeric() || (i > 0 && secret[i - 1] == b'\\') {
                continue;
            }
            if all_peers.len() > 1 && all_peers.iter().all(|q| q.get(p) == Some(&b)) {
                continue; // every example begins this segment alike: structure
            }
            let class = |c: u8| {
                if c.is_ascii_digit() {
                    0
                } else if c.is_ascii_uppercase() {
                    1
                } else {
                    2
                }
            };
            let mut pool: Vec<u8> = if long {
                peers
                    .iter()
                    .flat_map(|q| q.iter().copied())
                    .filter(|&c| c != 0 && class(c) == class(b))
                    .collect()
            } else {
                peers
                    .iter()
                    .filter_map(|q| q.get(p).copied())
                    .filter(|&c| c != 0 && class(c) == class(b))
                    .collect()
            };
            pool.sort_unstable();
            pool.dedup();
            if pool.is_empty() {
                pool.push(b);
            }
            out[i] = r.byte_from(&pool);
        }
    }
    out
}

/// Makes the redrawn secret pass the rule's validators again.
fn repair(rule: &Rule, original: &[u8], s: &mut Vec<u8>, r: &mut Rng) {
    for v in &rule.validators {
        match v {
            Validator::Crc32Base62 => {
                let start = memchr::memrchr(b'_', s).map_or(0, |i| i + 1);
                if s.len() >= start + 7 {
                    let n = s.len();
                    let check = base62_6(crc32fast::hash(&s[start..n - 6]));
                    s[n - 6..].copy_from_slice(&check);
                }
            }
            Validator::Luhn => {
                let Some(last) = s.iter().rposition(u8::is_ascii_digit) else {
                    continue;
                };
                for d in b'0'..=b'9' {
                    s[last] = d;
                    if luhn(s) {
                        break;
                    }
                }
            }
            Validator::Iban => {
                let compact: Vec<u8> = s.iter().copied().filter(|&b| b != b' ').collect();
                if compact.len() < 5 {
                    continue;
                }
                let mut rem: u32 = 0;
                for &c in compact[4..].iter().chain(&compact[..2]).chain(b"00") {
                    let c = c.to_ascii_uppercase();
                    rem = if c.is_ascii_digit() {
                        (rem * 10 + (c - b'0') as u32) % 97
                    } else {
                        (rem * 100 + (c - b'A' + 10) as u32) % 97
                    };
                }
                let check = 98 - rem;
                // The check digits are the 3rd and 4th non-space characters.
                let mut seen = 0;
                for b in s.iter_mut() {
                    if *b == b' ' {
                        continue;
                    }
                    if seen == 2 {
                        *b = b'0' + (check / 10) as u8;
                    } else if seen == 3 {
                        *b = b'0' + (check % 10) as u8;
                        break;
                    }
                    seen += 1;
                }
            }
            Validator::AgeBech32 => bech32_repair(s),
            Validator::BasicAuth => {
                // Redraw the password of the decoded user:password instead.
                if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(original) {
                    if let Some(c) = raw.iter().position(|&b| b == b':') {
                        let mut plain = raw[..=c].to_vec();
                        plain.extend(
                            r.string(
                                b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
                                raw.len() - c - 1,
                            )
                            .bytes(),
                        );
                        *s = base64::engine::general_purpose::STANDARD
                            .encode(plain)
                            .into_bytes();
                    }
                }
            }
            Validator::GitlabRoutable => {
                let n = s.len();
                if n > 7 {
                    let crc = base36(crc32fast::hash(&s[..n - 7]), 7);
                    s[n - 7..].copy_from_slice(&crc);
                }
            }
            Validator::UsSsn
            | Validator::PypiMacaroon
            | Validator::Jwt
            | Validator::PemArmour
            | Validator::MixedAlnum => {}
        }
    }
}

/// Recomputes the Bech32 checksum (last 6 data characters) of `s`, keeping its case.
fn bech32_repair(s: &mut [u8]) {
    let upper = s.iter().any(u8::is_ascii_uppercase);
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    let Some(sep) = memchr::memrchr(b'1', &lower) else {
        return;
    };
    if lower.len() < sep + 7 {
        return;
    }
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..lower.len() - 6]);
    // Redrawn characters may fall outside the Bech32 alphabet: map them into it.
    let data_vals: Vec<u8> = data
        .iter()
        .map(|c| {
            BECH32_CHARSET
                .iter()
                .position(|x| x == c)
                .unwrap_or(*c as usize % 32) as u8
        })
        .collect();
    let mut values = bech32_hrp_expand(hrp);
    values.extend(&data_vals);
    values.extend([0u8; 6]);
    let chk = bech32_polymod(values) ^ 1;
    let n = s.len();
    let case = |b: u8| if upper { b.to_ascii_uppercase() } else { b };
    for (i, v) in data_vals.iter().enumerate() {
        s[sep + 1 + i] = case(BECH32_CHARSET[*v as usize]);
    }
    for i in 0..6 {
        s[n - 6 + i] = case(BECH32_CHARSET[((chk >> (5 * (5 - i))) & 31) as usize]);
    }
}

/// JSON-escapes a line (lines here are UTF-8: examples come from TOML, secrets are ASCII).
fn json_escape_bytes(s: &[u8]) -> Vec<u8> {
    json_escape(&String::from_utf8_lossy(s)).into_bytes()
}

/// Wraps a line in another log format. Returns the wrapped line and how the secret appears.
fn wrap(kind: &'static str, line: &[u8], secret: &[u8], n: u64) -> (Vec<u8>, Vec<u8>) {
    match kind {
        "syslog" => {
            let mut o = format!(
                "Nov  2 10:{:02}:{:02} web-0{} app[{}]: ",
                n % 60,
                (n / 60) % 60,
                n % 7,
                1000 + n % 9000
            )
            .into_bytes();
            o.extend_from_slice(line);
            (o, secret.to_vec())
        }
        "k8s-json" => {
            let mut o = b"{\"log\":\"".to_vec();
            o.extend(json_escape_bytes(line));
            o.extend_from_slice(
                format!(
                    "\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-02T10:{:02}:{:02}.{:06}Z\"}}",
                    n % 60,
                    (n / 7) % 60,
                    n % 999_999
                )
                .as_bytes(),
            );
            (o, json_escape_bytes(secret))
        }
        _ => (line.to_vec(), secret.to_vec()),
    }
}

/// Positive samples: `variants` redrawn secrets per example of every rule, each in the
/// example's own line and wrapped in syslog and k8s JSON.
pub fn positives(rules: &[Rule], variants: usize, seed: u64) -> Vec<Sample> {
    let mut r = Rng(seed ^ 0x7175_616c_6974_7900);
    let mut out = Vec::new();
    let mut n = 0u64;
    for rule in rules {
        let m = Matcher::new(vec![rule.clone()]);
        let exs = example_secrets(rule, &m);
        for (k, (line, span)) in exs.iter().enumerate() {
            let secret = &line.as_bytes()[span.clone()];
            let others: Vec<&[u8]> = exs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, (l, sp))| &l.as_bytes()[sp.clone()])
                .collect();
            let mut fixed = fixed_positions(secret, &others);
            // Literal structure: runs of 2+ characters that the regex spells out (`AKIA`,
            // `api03`, `-us`, `0x`, `AGE-SECRET-KEY-1`) stay as they are.
            let literal = literal_positions(secret, rule.regex.pattern());
            for (f, l) in fixed.iter_mut().zip(&literal) {
                *f |= *l;
            }
            let all: Vec<(&[u8], Vec<bool>)> = exs
                .iter()
                .map(|(l, sp)| {
                    let s = &l.as_bytes()[sp.clone()];
                    (s, literal_positions(s, rule.regex.pattern()))
                })
                .collect();
            // Card numbers keep their issuer prefix (the first 6 digits): the rule knows brands.
            if rule.validators.contains(&Validator::Luhn) {
                let mut digits = 0;
                for (i, &b) in secret.iter().enumerate() {
                    if digits < 6 {
                        fixed[i] = true;
                    }
                    digits += b.is_ascii_digit() as usize;
                }
            }
            // Multi-line blocks (PEM): keep the armour lines, redraw the body.
            if let (Some(a), Some(b)) = (
                memchr::memmem::find(secret, b"-----"),
                memchr::memmem::rfind(secret, b"-----"),
            ) {
                let body_start =
                    memchr::memmem::find(&secret[a + 5..], b"-----").map_or(a, |i| a + 5 + i + 5);
                let body_end = memchr::memmem::rfind(&secret[..b], b"-----").unwrap_or(b);
                for (i, f) in fixed.iter_mut().enumerate() {
                    if i < body_start || i >= body_end {
                        *f = true;
                    }
                }
            }
            // Base64 with padding: the character before `=` carries only some bits; keep it.
            if let Some(last) = secret.iter().rposition(|&b| b != b'=') {
                if last + 1 < secret.len() {
                    fixed[last] = true;
                }
            }
            for _ in 0..variants {
                let mut new = redraw(secret, &fixed, &all, &mut r);
                repair(rule, secret, &mut new, &mut r);
                let mut planted = line.as_bytes()[..span.start].to_vec();
                planted.extend_from_slice(&new);
                planted.extend_from_slice(&line.as_bytes()[span.end..]);
                for wrapper in ["example", "syslog", "k8s-json"] {
                    n += 1;
                    let (l, s) = wrap(wrapper, &planted, &new, n);
                    out.push(Sample {
                        line: l,
                        family: rule.pack.clone(),
                        rule: rule.id.clone(),
                        secret: s,
                        wrapper,
                    });
                }
            }
        }
    }
    out
}

fn non_luhn(r: &mut Rng, len: usize) -> String {
    loop {
        let s = format!("{}{}", 1 + r.below(9), r.string(DIGIT, len - 1));
        if !luhn(s.as_bytes()) {
            return s;
        }
    }
}

/// Negative samples: `count` look-alike lines in several formats, then every rule's own
/// negative examples.
pub fn negatives(rules: &[Rule], count: usize, seed: u64) -> Vec<Sample> {
    let mut r = Rng(seed ^ 0x6e65_6761_7469_7665);
    let mut out = Vec::with_capacity(count + rules.len() * 3);
    for i in 0..count {
        let (kind, text): (&'static str, String) = match r.below(16) {
            0 => (
                "uuid",
                format!("request_id={} user_id={}", uuid(&mut r), uuid(&mut r)),
            ),
            1 => (
                "git-sha",
                format!(
                    "deployed commit {} (parent {})",
                    r.string(HEX, 40),
                    r.string(HEX, 40)
                ),
            ),
            2 => (
                "sha256",
                format!(
                    "pulled image sha256:{} digest={}",
                    r.string(HEX, 64),
                    r.string(HEX, 64)
                ),
            ),
            3 => (
                "trace-id",
                format!(
                    "trace_id={} span_id={} parent_id={}",
                    r.string(HEX, 32),
                    r.string(HEX, 16),
                    r.string(HEX, 16)
                ),
            ),
            4 => {
                let n = 44 + 4 * r.below(20) as usize;
                (
                    "base64-blob",
                    format!(
                        "payload={} etag=\"{}\"",
                        r.string(B64, n),
                        r.string(B64, 24)
                    ),
                )
            }
            5 => (
                "order-number",
                format!(
                    "order_id={} invoice {} shipped",
                    non_luhn(&mut r, 16),
                    non_luhn(&mut r, 16)
                ),
            ),
            6 => (
                "short-key-id",
                format!(
                    "key id AKIA{} is malformed",
                    r.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 12)
                ),
            ),
            7 => (
                "bad-checksum",
                format!(
                    "token prefix ghp_{} rejected",
                    r.string(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                        20
                    )
                ),
            ),
            8 => (
                "words",
                r.pick(&[
                    "tokenizer loaded 32000 entries",
                    "token expired, refreshing session",
                    "password reset requested for user",
                    "secret rotation scheduled for 02:00",
                    "authorization failed: missing bearer token",
                    "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"",
                    "passwordless login enabled",
                    "max_tokens=4096 temperature=0.2",
                    "token_count=812 prompt_tokens=512",
                ])
                .to_string(),
            ),
            9 => (
                "placeholder",
                r.pick(&[
                    "password=${DB_PASSWORD}",
                    "api_key=<redacted>",
                    "token=******** user=ci",
                    "secret={{ vault_secret }}",
                    "stripe_key=sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
                    "client_secret=null",
                    "password: \"\"",
                    "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY",
                ])
                .to_string(),
            ),
            10 => (
                "url",
                format!(
                    "GET https://cdn.example.com/assets/{}.js?v={} 200",
                    r.string(HEX, 20),
                    r.below(1000)
                ),
            ),
            11 => (
                "timestamp",
                format!(
                    "batch {} finished at {} after {} ms",
                    20261102100000u64 + r.below(99999),
                    1_700_000_000_000u64 + r.below(1 << 30),
                    r.below(90000)
                ),
            ),
            12 => (
                "ipv6-mac",
                format!(
                    "peer fe80::{}:{}:{}:{} mac 02:42:{}:{}:{}:{}",
                    r.string(HEX, 4),
                    r.string(HEX, 4),
                    r.string(HEX, 4),
                    r.string(HEX, 4),
                    r.string(HEX, 2),
                    r.string(HEX, 2),
                    r.string(HEX, 2),
                    r.string(HEX, 2)
                ),
            ),
            13 => (
                "java",
                format!(
                    "at com.acme.payments.TokenService.refresh(TokenService.java:{})",
                    r.below(900)
                ),
            ),
            14 => (
                "k8s-object",
                format!(
                    "secret/{}-tls configured; serviceaccount/{} created",
                    r.string(LOWER, 8),
                    r.string(LOWER, 6)
                ),
            ),
            _ => (
                "jwt-like",
                format!("header=eyJ{} no payload", r.string(B64, 20)),
            ),
        };
        let (line, _) = match i % 3 {
            0 => (
                format!(
                    "2026-11-02T10:01:{:02}.{:03}Z INFO app {text}",
                    i % 60,
                    i % 1000
                )
                .into_bytes(),
                (),
            ),
            1 => (
                format!(
                    "ts=2026-11-02T10:01:{:02}Z level=info msg=\"{}\"",
                    i % 60,
                    text.replace('"', "'")
                )
                .into_bytes(),
                (),
            ),
            _ => {
                let mut o = b"{\"level\":\"info\",\"msg\":\"".to_vec();
                o.extend_from_slice(json_escape(&text).as_bytes());
                o.extend_from_slice(b"\"}");
                (o, ())
            }
        };
        out.push(Sample {
            line,
            family: "negative".into(),
            rule: String::new(),
            secret: Vec::new(),
            wrapper: kind,
        });
    }
    for rule in rules {
        for ex in &rule.negative_examples {
            out.push(Sample {
                line: ex.as_bytes().to_vec(),
                family: "negative".into(),
                rule: rule.id.clone(),
                secret: Vec::new(),
                wrapper: "rule-negative-example",
            });
        }
    }
    out
}
