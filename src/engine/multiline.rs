//! State that crosses records: a private key printed one line per record.
//!
//! A record whose `-----BEGIN … PRIVATE KEY-----` line ends it (no `END` in the same record)
//! opens a block. What comes before the BEGIN marker in that record is its *wrapping prefix*
//! (`Nov  2 10:00:01 app[1]: `, `{"log":"`), what comes after the closing dashes its
//! *wrapping suffix* (`\n","stream":"stderr"}`). Each following record is part of the key
//! body when it is, once the wrapping is taken off, one base64 token (`=` padding only at its
//! end; `\/` counts as `/`), an armour header (`Proc-Type:`, `DEK-Info:`, `Comment:`,
//! `Version:`, ...) or nothing:
//!
//! - the text before the token, with digit runs and blank runs made equal (timestamps and
//!   pids change from line to line), is the BEGIN record's prefix, a beginning of it (a
//!   multi-line message whose continuation lines carry no prefix, or less of it), or blank
//!   (indentation);
//! - the text after it is the BEGIN record's suffix (compared the same way) or blank.
//!
//! Body tokens are redacted whatever their length, and the record stays a record. The block
//! ends at the `-----END` record, at the first record that cannot be key body (words with
//! spaces between them, `=` inside a token, another log line's shape: that record is scanned
//! as usual), or after [`MAX_KEY_LINES`] records (a real key is at most ~100 lines), so a
//! BEGIN without END never redacts unrelated lines for long.
//!
//! The state at the start of a batch comes from the batches before it in the same input: the
//! reader computes it with [`walk`] (a memchr pass when no block is open) and hands it to the
//! worker with the batch, so batches still run in parallel, and one input's state never
//! reaches another input.

use std::fmt;
use std::ops::Range;

/// Records a block can span after its BEGIN record: an RSA-8192 key in PEM is ~100 lines of
/// 64 characters; twice that leaves room for wider wrapping and encrypted PKCS#8 headers.
pub const MAX_KEY_LINES: u16 = 200;

/// Longest normalised wrapping prefix or suffix that is compared in full; longer ones are
/// compared on their first [`WRAP_CAP`] bytes.
const WRAP_CAP: usize = 160;

/// Where a candidate body token may start at the latest: the wrapping prefix is a log
/// prefix, not a paragraph (and the search stays linear on hostile records).
const MAX_TOKEN_START: usize = 8192;

/// A normalised wrapping prefix or suffix (digit runs → `0`, blank runs → one space).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Wrap {
    len: u8,
    truncated: bool,
    bytes: [u8; WRAP_CAP],
}

impl Default for Wrap {
    fn default() -> Self {
        Wrap {
            len: 0,
            truncated: false,
            bytes: [0; WRAP_CAP],
        }
    }
}

impl Wrap {
    fn of(text: &[u8]) -> Wrap {
        let mut w = Wrap::default();
        let mut n = 0;
        normalise(text, |b| {
            if n < WRAP_CAP {
                w.bytes[n] = b;
                n += 1;
                true
            } else {
                w.truncated = true;
                false
            }
        });
        w.len = n as u8;
        w
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Is the normalised `text` this wrapping, or (with `allow_shorter`) a beginning of it?
    /// Longer than a truncated wrapping counts as equal when the kept bytes agree.
    fn accepts(&self, text: &[u8], allow_shorter: bool) -> bool {
        let mine = self.as_slice();
        let (mut i, mut longer, mut mismatch) = (0, false, false);
        normalise(text, |b| {
            if i == mine.len() {
                longer = true;
            } else if mine[i] != b {
                mismatch = true;
            } else {
                i += 1;
                return true;
            }
            false
        });
        if mismatch {
            return false;
        }
        if longer {
            return self.truncated;
        }
        i == mine.len() || allow_shorter
    }
}

/// Feeds the normalised form of `text` to `push` until it returns false.
fn normalise(text: &[u8], mut push: impl FnMut(u8) -> bool) {
    let mut last = 0u8;
    for &b in text {
        let n = match b {
            b'0'..=b'9' => b'0',
            b' ' | b'\t' => b' ',
            b => b,
        };
        if (n == b'0' || n == b' ') && n == last {
            continue;
        }
        last = n;
        if !push(n) {
            return;
        }
    }
}

/// Whether a private-key block is open at this point of an input, and the wrapping of its
/// BEGIN record.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Carry {
    /// Inside a private-key block.
    pub in_key: bool,
    /// Records of the block seen since its BEGIN record.
    lines: u16,
    prefix: Wrap,
    suffix: Wrap,
}

impl fmt::Debug for Carry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Carry")
            .field("in_key", &self.in_key)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

const MARKER: &[u8] = b"PRIVATE KEY";

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// A base64 run of 16 or more characters, or a shorter one ending in `=`: body text in a
/// record that also holds the BEGIN line.
fn has_body_run(rec: &[u8]) -> bool {
    let mut i = 0;
    while i < rec.len() {
        if !is_b64(rec[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < rec.len() && (is_b64(rec[i]) || rec[i] == b'=') {
            i += 1;
        }
        let run = &rec[s..i];
        if run.len() >= 16 || (run.len() >= 4 && run.ends_with(b"=")) {
            return true;
        }
    }
    false
}

/// Does this record open a block: a private-key BEGIN line with no END and no body after it.
/// Returns the block's state.
fn opens(rec: &[u8]) -> Option<Carry> {
    let b = memchr::memmem::find(rec, b"-----BEGIN ")?;
    let after = &rec[b + 11..];
    let close = memchr::memmem::find(after, b"-----")?;
    let label = &after[..close];
    memchr::memmem::find(label, MARKER)?;
    let rest = &after[close + 5..];
    // The body goes on in the next records: no END here, and no body in this record (that
    // case is the single-record rule's), only the rest of the record's wrapping.
    if memchr::memmem::find(rest, b"-----END").is_some() || has_body_run(rest) {
        return None;
    }
    Some(Carry {
        in_key: true,
        lines: 0,
        prefix: Wrap::of(&rec[..b]),
        suffix: Wrap::of(rest.trim_ascii_end()),
    })
}

/// Classifies a record inside an open block: `Some(span)` when it is part of the key body
/// (the span of its base64 token, empty for a header or blank record), `None` when it ends
/// the block without being part of it.
fn body_token(carry: &Carry, rec: &[u8]) -> Option<Range<usize>> {
    let rec = rec.strip_suffix(b"\r").unwrap_or(rec);
    let blank = |t: &[u8]| t.iter().all(|&b| b == b' ' || b == b'\t');
    let prefix_ok = |p: &[u8]| blank(p) || carry.prefix.accepts(p, true);
    let suffix_ok = |s: &[u8]| blank(s) || carry.suffix.accepts(s.trim_ascii_end(), false);
    let mut i = 0;
    while i < rec.len().min(MAX_TOKEN_START) {
        if !is_b64(rec[i]) {
            i += 1;
            continue;
        }
        let s = i;
        // `\/` is a `/` in JSON written by encoders that escape slashes (PHP's default).
        while i < rec.len() && (is_b64(rec[i]) || rec[i] == b'\\' && rec.get(i + 1) == Some(&b'/'))
        {
            i += if rec[i] == b'\\' { 2 } else { 1 };
        }
        let mut e = i;
        while e < rec.len() && e - i < 2 && rec[e] == b'=' {
            e += 1;
        }
        if !prefix_ok(&rec[..s]) {
            // A longer text before a later token cannot be a prefix either.
            break;
        }
        if suffix_ok(&rec[e..]) {
            return Some(s..e);
        }
        i = e;
    }
    // No token: the wrapping alone (an empty body line) or an armour header (PEM's
    // `Proc-Type:`/`DEK-Info:`, PGP's `Version:`/`Comment:`/`Hash:`/`Charset:`).
    let header = [
        &b"Proc-Type:"[..],
        b"DEK-Info:",
        b"Version:",
        b"Comment:",
        b"Hash:",
        b"Charset:",
    ]
    .iter()
    .any(|h| memchr::memmem::find(rec, h).is_some());
    let wrapping_only = (0..=rec.len().min(MAX_TOKEN_START))
        .take_while(|&cut| prefix_ok(&rec[..cut]))
        .any(|cut| suffix_ok(&rec[cut..]));
    (header || blank(rec) || wrapping_only).then_some(0..0)
}

/// Walks a batch from state `carry`; calls `body(span)` for every base64 token of a key body
/// (batch offsets) and returns the state at the end of the batch.
pub fn walk(carry: Carry, batch: &[u8], mut body: impl FnMut(Range<usize>)) -> Carry {
    let mut state = carry;
    let mut pos = 0;
    while pos < batch.len() {
        if !state.in_key {
            // Jump to the next record that mentions a private key.
            let Some(m) = memchr::memmem::find(&batch[pos..], MARKER) else {
                break;
            };
            let at = pos + m;
            let rec_start = memchr::memrchr(b'\n', &batch[..at])
                .map_or(0, |i| i + 1)
                .max(pos);
            let rec_end = memchr::memchr(b'\n', &batch[at..]).map_or(batch.len(), |i| at + i);
            if let Some(open) = opens(&batch[rec_start..rec_end]) {
                state = open;
            }
            pos = rec_end + 1;
            continue;
        }
        let rec_end = memchr::memchr(b'\n', &batch[pos..]).map_or(batch.len(), |i| pos + i);
        let rec = &batch[pos..rec_end];
        if memchr::memmem::find(rec, b"-----END ").is_some() {
            state = Carry::default();
            pos = rec_end + 1;
            continue;
        }
        let token = if state.lines < MAX_KEY_LINES {
            body_token(&state, rec)
        } else {
            None
        };
        match token {
            Some(span) => {
                if !span.is_empty() {
                    body(pos + span.start..pos + span.end);
                }
                state.lines += 1;
                pos = rec_end + 1;
            }
            // Truncated key: this record is not part of it; look at it afresh.
            None => state = Carry::default(),
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(carry: Carry, batch: &str) -> (Vec<String>, Carry) {
        let mut out = Vec::new();
        let end = walk(carry, batch.as_bytes(), |r| out.push(batch[r].to_string()));
        (out, end)
    }

    const KEY: &str = "Nov  2 10:00:01 app[1]: -----BEGIN RSA PRIVATE KEY-----\n\
Nov  2 10:00:01 app[1]: MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n\
Nov  2 10:00:01 app[1]: VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n\
Nov  2 10:00:01 app[1]: Vw==\n\
Nov  2 10:00:01 app[1]: -----END RSA PRIVATE KEY-----\n\
Nov  2 10:00:02 app[1]: next record MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2\n";

    #[test]
    fn body_records_between_begin_and_end() {
        let (s, end) = spans(Carry::default(), KEY);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].starts_with("MIIEpAIB") && s[2] == "Vw==");
        assert!(!end.in_key);
    }

    #[test]
    fn state_crosses_batches_at_any_split() {
        let whole = spans(Carry::default(), KEY).0;
        let lines: Vec<&str> = KEY.split_inclusive('\n').collect();
        for cut in 1..lines.len() {
            let (a, b) = (lines[..cut].concat(), lines[cut..].concat());
            let (mut s, mid) = spans(Carry::default(), &a);
            s.extend(spans(mid, &b).0);
            assert_eq!(s, whole, "split after line {cut}");
        }
    }

    #[test]
    fn truncated_block_ends_at_first_non_body_record() {
        let text =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n\
2026-11-02 INFO restarting worker pool\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0t\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(!end.in_key);
    }

    #[test]
    fn short_body_lines_and_timestamps_that_change() {
        // A short line in the middle, digits that differ from the BEGIN line's, a
        // continuation without prefix: all body.
        let text = "2026-11-02T10:00:01.123Z app[77] key: -----BEGIN PRIVATE KEY-----\n\
2026-11-02T10:00:01.124Z app[77] MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n\
2026-11-02T10:00:01.125Z app[77] q5wT\n\
2026-11-02T10:00:01.126Z app[77] Xk3mP9sL2vQ8rT1wYz0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456\n\
  Zm9vYmFyYmF6cXV4\n\
2026-11-02T10:00:01.127Z app[77] -----END PRIVATE KEY-----\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s[1], "q5wT");
        assert!(!end.in_key);
    }

    #[test]
    fn begin_without_end_stops_at_ordinary_lines() {
        for line in [
            "Nov  2 10:00:03 app[1]: GET path=/api/v1/items",
            "Nov  2 10:00:03 app[1]: path=/api/v1/items",
            "Nov  2 10:00:03 app[1]: restarting worker pool",
            "Nov  2 10:00:03 other[9]: MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO",
            "10.0.0.1 - - [02/Nov/2026:10:00:03 +0000] \"GET /a HTTP/1.1\" 200 5",
        ] {
            let text = format!("Nov  2 10:00:01 app[1]: -----BEGIN EC PRIVATE KEY-----\n{line}\n");
            let (s, end) = spans(Carry::default(), &text);
            assert!(s.is_empty() && !end.in_key, "{line}: {s:?}");
        }
    }

    #[test]
    fn a_block_ends_after_max_lines() {
        let mut text = String::from("-----BEGIN PRIVATE KEY-----\n");
        for _ in 0..MAX_KEY_LINES + 5 {
            text.push_str("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo\n");
        }
        let (s, end) = spans(Carry::default(), &text);
        assert_eq!(s.len(), MAX_KEY_LINES as usize);
        assert!(!end.in_key);
    }

    #[test]
    fn certificates_public_keys_and_one_record_keys_do_not_open() {
        for text in [
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0123456789abcdef\n",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n",
            "k=\"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\\n-----END EC PRIVATE KEY-----\"\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO\n",
        ] {
            let (s, end) = spans(Carry::default(), text);
            assert!(s.is_empty() && !end.in_key, "{text}");
        }
    }

    #[test]
    fn json_wrapped_body_lines() {
        let text = "{\"log\":\"-----BEGIN PRIVATE KEY-----\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-02T10:00:01.1Z\"}\n\
{\"log\":\"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-02T10:00:01.22Z\"}\n\
{\"log\":\"ab+/\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-02T10:00:01.3Z\"}\n\
{\"log\":\"-----END PRIVATE KEY-----\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-02T10:00:01.4Z\"}\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("MIIEvQIB") && !s[0].contains('\\'));
        assert_eq!(s[1], "ab+/");
        assert!(!end.in_key);
    }

    #[test]
    fn armour_headers_and_escaped_slashes_stay_in_the_block() {
        let text = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\
Version: GnuPG v2\n\
Comment: https://gpgtools.org\n\
\n\
lQOYBF8nZ3ABCAC8r1L0wz9\\/yq2Xk3mP9sL2vQ8rT1wYz0aBcDeFgHiJkLmNoPq\n\
-----END PGP PRIVATE KEY BLOCK-----\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].starts_with("lQOY") && s[0].ends_with("NoPq"), "{s:?}");
        assert!(!end.in_key);
    }

    #[test]
    fn redacted_body_lines_are_not_body() {
        let text = "Nov  2 10:00:01 app[1]: -----BEGIN RSA PRIVATE KEY-----\n\
Nov  2 10:00:01 app[1]: [REDACTED:pem-private-key:k1:0123456789abcdef]\n";
        let (s, end) = spans(Carry::default(), text);
        assert!(s.is_empty() && !end.in_key, "{s:?}");
    }
}
