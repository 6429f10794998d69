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
//! Two more kinds of block are followed the same way, because credentials in them are split
//! over records as the files and shells that print them split them:
//!
//! - a `.netrc` entry one token pair per line: a record that is `machine HOST` (with `login`,
//!   `account` or `port` pairs, no `password`) opens it; each following record whose text,
//!   after the machine record's wrapping prefix, is only `login`/`password`/`account`/`port`
//!   pairs (or blank, or another `machine` line) is part of it, and the values of its
//!   `password` pairs are secrets. Any other record ends it, as do [`MAX_NETRC_LINES`]
//!   records.
//! - a `curl` command continued with `\` at the end of its record (as `set -x` and CI logs
//!   print multi-line shell commands): the records that follow, up to the first one that does
//!   not end in `\` (which is the command's last) or [`MAX_CURL_LINES`], are its arguments,
//!   and the password of a `-u`/`--user`/`-U`/`--proxy-user USER:PASSWORD` among them is a
//!   secret. The record that opens the block is the single-record rules' as usual.
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

/// Records a `.netrc` entry can span after its `machine` record (`login`, `password`,
/// `account`, `port`, blank lines; another `machine` record starts the count again).
pub const MAX_NETRC_LINES: u16 = 16;

/// Continuation records a `curl … \\` command can span.
pub const MAX_CURL_LINES: u16 = 64;

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

/// What a span found by [`walk`] is: a private-key body token, the password of a `.netrc`
/// entry, or the password of a continued `curl` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// A base64 token of a private-key body.
    Key,
    /// The value of a `password` pair in a `.netrc` entry.
    Netrc,
    /// The password of `-u USER:PASSWORD` in a continued `curl` command.
    Curl,
}

/// A block other than a private key that is open (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Follow {
    #[default]
    None,
    Netrc,
    Curl,
}

/// Whether a block (private key, `.netrc` entry, continued `curl` command) is open at this
/// point of an input, and the wrapping of the record that opened it.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Carry {
    /// Inside a private-key block.
    pub in_key: bool,
    /// Inside a `.netrc` entry or a continued `curl` command.
    follow: Follow,
    /// Records of the block seen since the record that opened it.
    lines: u16,
    prefix: Wrap,
    suffix: Wrap,
}

impl fmt::Debug for Carry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Carry")
            .field("in_key", &self.in_key)
            .field("follow", &self.follow)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl Carry {
    /// True inside any block: the next records may belong to one opened earlier.
    pub fn in_block(&self) -> bool {
        self.in_key || self.follow != Follow::None
    }
}

const MARKER: &[u8] = b"PRIVATE KEY";
const NETRC_MARKER: &[u8] = b"machine";
const CURL_MARKER: &[u8] = b"curl";

/// `rec[i..]` starts the word `w`: not preceded by a letter, digit, `_`, `-`, `.` or `/`, and
/// followed by a blank.
fn word_at(rec: &[u8], i: usize, w: &[u8]) -> bool {
    rec[i..].starts_with(w)
        && (i == 0
            || !matches!(rec[i - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'/'))
        && matches!(rec.get(i + w.len()), Some(b' ' | b'\t'))
}

/// Splits `text` into blank-separated tokens (at most `max`); `None` if there are more.
fn tokens(text: &[u8], max: usize) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b' ' || text[i] == b'\t' {
            i += 1;
            continue;
        }
        let s = i;
        while i < text.len() && text[i] != b' ' && text[i] != b'\t' {
            i += 1;
        }
        if out.len() == max {
            return None;
        }
        out.push(s..i);
    }
    Some(out)
}

const NETRC_KEYS: [&[u8]; 4] = [b"login", b"password", b"account", b"port"];

/// Parses `text` as `.netrc` pairs (`KEY VALUE ...`, keys from `keys`); returns the ranges of
/// the `password` values, or `None` when it is not only such pairs.
fn netrc_pairs(text: &[u8], keys: &[&[u8]]) -> Option<Vec<Range<usize>>> {
    let toks = tokens(text, 16)?;
    if toks.len() % 2 != 0 {
        return None;
    }
    let mut pw = Vec::new();
    for pair in toks.chunks(2) {
        let key = &text[pair[0].clone()];
        if !keys.contains(&key) {
            return None;
        }
        if key == b"password" {
            pw.push(pair[1].clone());
        }
    }
    Some(pw)
}

/// Does this record open a `.netrc` entry: `machine HOST` with `login`/`account`/`port` pairs
/// after it and nothing else (no `password`: that record is the single-record rule's).
fn opens_netrc(rec: &[u8]) -> Option<Carry> {
    let rec = rec.strip_suffix(b"\r").unwrap_or(rec);
    let mut from = 0;
    while let Some(m) = memchr::memmem::find(&rec[from..], NETRC_MARKER) {
        let at = from + m;
        from = at + 1;
        if !word_at(rec, at, NETRC_MARKER) {
            continue;
        }
        let rest = &rec[at + NETRC_MARKER.len()..];
        let toks = tokens(rest, 9)?;
        let host = toks.first()?;
        if rest[host.clone()]
            .iter()
            .any(|&b| matches!(b, b'"' | b'\'' | b'\\' | b'=' | b','))
        {
            return None;
        }
        let pairs = netrc_pairs(&rest[host.end..], &[b"login", b"account", b"port"])?;
        debug_assert!(pairs.is_empty());
        return Some(Carry {
            follow: Follow::Netrc,
            prefix: Wrap::of(&rec[..at]),
            ..Carry::default()
        });
    }
    None
}

/// A record inside an open `.netrc` entry: `Some(passwords)` when it is part of the entry
/// (pairs, a blank line or another `machine` line), `None` when it ends it.
fn netrc_body(carry: &Carry, rec: &[u8]) -> Option<Vec<Range<usize>>> {
    let rec = rec.strip_suffix(b"\r").unwrap_or(rec);
    let blank = |t: &[u8]| t.iter().all(|&b| b == b' ' || b == b'\t');
    let prefix_ok = |p: &[u8]| blank(p) || carry.prefix.accepts(p, true);
    // The first netrc word of the record starts its pairs; what is before it is wrapping.
    let first = (0..rec.len().min(MAX_TOKEN_START))
        .find(|&i| NETRC_KEYS.iter().any(|w| word_at(rec, i, w)) || word_at(rec, i, NETRC_MARKER));
    let Some(at) = first else {
        return (blank(rec) || prefix_ok(rec)).then(Vec::new);
    };
    if !prefix_ok(&rec[..at]) {
        return None;
    }
    if rec[at..].starts_with(NETRC_MARKER) {
        return opens_netrc(rec).map(|_| Vec::new());
    }
    let pairs = netrc_pairs(&rec[at..], &NETRC_KEYS)?;
    Some(
        pairs
            .into_iter()
            .map(|r| at + r.start..at + r.end)
            .collect(),
    )
}

/// The record's text ends in a shell line continuation: `\` after a blank.
fn continues(rec: &[u8]) -> bool {
    let t = rec.trim_ascii_end();
    t.ends_with(b" \\") || t.ends_with(b"\t\\")
}

/// Does this record open a continued `curl` command: the word `curl` (not `curl/8.5.0`, a
/// user agent) and a `\` continuation at its end.
fn opens_curl(rec: &[u8]) -> Option<Carry> {
    if !continues(rec) {
        return None;
    }
    let mut from = 0;
    while let Some(m) = memchr::memmem::find(&rec[from..], CURL_MARKER) {
        let at = from + m;
        from = at + 1;
        if word_at(rec, at, CURL_MARKER) {
            return Some(Carry {
                follow: Follow::Curl,
                ..Carry::default()
            });
        }
    }
    None
}

const USER_EQ: [&[u8]; 2] = [b"--user=", b"--proxy-user="];

/// The password of a `-u`/`--user`/`-U`/`--proxy-user USER:PASSWORD` in a curl argument
/// record (quotes around the pair are not part of it).
fn curl_user_password(rec: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // Every token: a continuation record with many arguments keeps its `-u`.
    let toks = tokens(rec, usize::MAX).unwrap_or_default();
    for (k, t) in toks.iter().enumerate() {
        let tok = &rec[t.clone()];
        let pair = match tok {
            b"-u" | b"-U" | b"--user" | b"--proxy-user" => match toks.get(k + 1) {
                Some(n) => n.clone(),
                None => continue,
            },
            _ => {
                let Some(eq) = USER_EQ.iter().find(|p| tok.starts_with(p)) else {
                    continue;
                };
                t.start + eq.len()..t.end
            }
        };
        let (mut s, mut e) = (pair.start, pair.end);
        if s < e && matches!(rec[s], b'\'' | b'"') {
            let q = rec[s];
            s += 1;
            if e > s && rec[e - 1] == q {
                e -= 1;
            }
        }
        let Some(colon) = rec[s..e].iter().position(|&b| b == b':') else {
            continue;
        };
        if colon > 0 && s + colon + 1 < e {
            out.push(s + colon + 1..e);
        }
    }
    out
}

/// Finds the next record at or after `pos` that mentions an opener's marker; returns its
/// start and end. `next` caches, per marker, its next position (`usize::MAX`: none left).
fn next_opener(batch: &[u8], pos: usize, next: &mut [usize; 3]) -> Option<(usize, usize)> {
    for (k, m) in [MARKER, NETRC_MARKER, CURL_MARKER].iter().enumerate() {
        if next[k] != usize::MAX && next[k] < pos {
            next[k] = memchr::memmem::find(&batch[pos..], m).map_or(usize::MAX, |i| pos + i);
        }
    }
    let at = *next.iter().min()?;
    if at == usize::MAX {
        return None;
    }
    let rec_start = memchr::memrchr(b'\n', &batch[..at])
        .map_or(0, |i| i + 1)
        .max(pos);
    let rec_end = memchr::memchr(b'\n', &batch[at..]).map_or(batch.len(), |i| at + i);
    Some((rec_start, rec_end))
}

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
        follow: Follow::None,
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

/// Walks a batch from state `carry`; calls `body(kind, span)` for every base64 token of a key
/// body and every password of a `.netrc` entry or continued `curl` command (batch offsets),
/// and returns the state at the end of the batch.
pub fn walk(carry: Carry, batch: &[u8], mut body: impl FnMut(Block, Range<usize>)) -> Carry {
    let mut state = carry;
    let mut pos = 0;
    // The next position of each opener's marker, searched again once `pos` passes it.
    let mut next = [0usize; 3];
    for (k, m) in [MARKER, NETRC_MARKER, CURL_MARKER].iter().enumerate() {
        next[k] = memchr::memmem::find(batch, m).unwrap_or(usize::MAX);
    }
    while pos < batch.len() {
        if !state.in_block() {
            // Jump to the next record that mentions a private key, `machine` or `curl`.
            let Some((rec_start, rec_end)) = next_opener(batch, pos, &mut next) else {
                break;
            };
            let rec = &batch[rec_start..rec_end];
            if let Some(open) = opens(rec)
                .or_else(|| opens_netrc(rec))
                .or_else(|| opens_curl(rec))
            {
                state = open;
            }
            pos = rec_end + 1;
            continue;
        }
        let rec_end = memchr::memchr(b'\n', &batch[pos..]).map_or(batch.len(), |i| pos + i);
        let rec = &batch[pos..rec_end];
        match state.follow {
            Follow::Netrc => {
                match (state.lines < MAX_NETRC_LINES)
                    .then(|| netrc_body(&state, rec))
                    .flatten()
                {
                    Some(pws) => {
                        for r in pws {
                            body(Block::Netrc, pos + r.start..pos + r.end);
                        }
                        // Another `machine` record starts a new entry.
                        state = match opens_netrc(rec) {
                            Some(open) => open,
                            None => Carry {
                                lines: state.lines + 1,
                                ..state
                            },
                        };
                        pos = rec_end + 1;
                    }
                    // Not part of the entry: look at this record afresh.
                    None => {
                        state = Carry::default();
                    }
                }
                continue;
            }
            Follow::Curl => {
                for r in curl_user_password(rec) {
                    body(Block::Curl, pos + r.start..pos + r.end);
                }
                state = if continues(rec) && state.lines + 1 < MAX_CURL_LINES {
                    Carry {
                        lines: state.lines + 1,
                        ..state
                    }
                } else {
                    Carry::default()
                };
                pos = rec_end + 1;
                continue;
            }
            Follow::None => {}
        }
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
                    body(Block::Key, pos + span.start..pos + span.end);
                }
                state.lines += 1;
                pos = rec_end + 1;
            }
            // Truncated key: this record is not part of it; look at it afresh.
            None => {
                state = Carry::default();
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(carry: Carry, batch: &str) -> (Vec<String>, Carry) {
        spans_of(Block::Key, carry, batch)
    }

    /// The spans of `kind` in `text` are the same when the text is split into two batches
    /// after any of its records (the state carried between them).
    fn same_at_every_split(kind: Block, text: &str) {
        let whole = spans_of(kind, Carry::default(), text).0;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for cut in 1..lines.len() {
            let (a, b) = (lines[..cut].concat(), lines[cut..].concat());
            let (mut s, mid) = spans_of(kind, Carry::default(), &a);
            s.extend(spans_of(kind, mid, &b).0);
            assert!(
                s == whole,
                "{kind:?}: split after line {cut} gives {} spans, whole text {}",
                s.len(),
                whole.len()
            );
        }
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
        same_at_every_split(Block::Key, KEY);
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

    /// Spans for a failure message: their first 4 characters only.
    fn shown(s: &[String]) -> Vec<String> {
        s.iter().map(|x| crate::text::preview(x)).collect()
    }

    /// Spans of one kind, as text.
    fn spans_of(kind: Block, carry: Carry, batch: &str) -> (Vec<String>, Carry) {
        let mut out = Vec::new();
        let end = walk(carry, batch.as_bytes(), |k, r| {
            if k == kind {
                out.push(batch[r].to_string())
            }
        });
        (out, end)
    }

    const NETRC: &str = "Nov  2 10:00:01 ci-04 job[7]: machine api.github.com\n\
Nov  2 10:00:01 ci-04 job[7]:   login octocat\n\
Nov  2 10:00:01 ci-04 job[7]:   password Zq8rT2wXk9Lm4Vb7\n\
Nov  2 10:00:01 ci-04 job[7]: \n\
Nov  2 10:00:01 ci-04 job[7]: machine nexus.acme.internal login deploy\n\
Nov  2 10:00:01 ci-04 job[7]: password Hn3pQ7wZk2Rt5Yx8 account ops\n\
Nov  2 10:00:02 ci-04 job[7]: password Pw4NotInAnEntry9 was printed by mistake\n\
Nov  2 10:00:02 ci-04 job[7]: password Lq2Another0ne7Xz\n";

    #[test]
    fn netrc_entries_over_records() {
        let (s, end) = spans_of(Block::Netrc, Carry::default(), NETRC);
        assert!(
            s == ["Zq8rT2wXk9Lm4Vb7", "Hn3pQ7wZk2Rt5Yx8"],
            "{:?}",
            shown(&s)
        );
        assert!(!end.in_block(), "the prose record ends the entry");
        // Plain file text, no wrapping, and a split at every record.
        let plain = "machine a.example\nlogin u\npassword Wx7Lq2Mp9Zk4\n";
        let found = spans_of(Block::Netrc, Carry::default(), plain).0;
        assert!(found == ["Wx7Lq2Mp9Zk4"], "{:?}", shown(&found));
        same_at_every_split(Block::Netrc, NETRC);
    }

    #[test]
    fn machine_in_prose_opens_nothing_that_matters() {
        // `machine` in ordinary records: nothing opens, or what opens ends at the next
        // ordinary record; a password line from another process is not taken.
        let text = "2026-11-02 INFO machine learning job started\n\
2026-11-02 INFO virtual machine vm-42\n\
2026-11-02 INFO password Zq8rT2wXk9Lm4Vb7 from another logger\n\
2026-11-02 INFO virtual machine vm-43\n\
Nov  2 10:00:03 other[9]: password Hn3pQ7wZk2Rt5Yx8\n";
        let (s, _) = spans_of(Block::Netrc, Carry::default(), text);
        assert!(s.is_empty(), "{:?}", shown(&s));
    }

    #[test]
    fn netrc_entry_is_bounded() {
        let mut text = String::from("machine h.example\n");
        for _ in 0..MAX_NETRC_LINES {
            text.push_str("login u\n");
        }
        text.push_str("password Zq8rT2wXk9Lm\n");
        assert!(spans_of(Block::Netrc, Carry::default(), &text).0.is_empty());
    }

    const CURL: &str =
        "2026-11-02T10:00:01Z ci[41]: + curl -X POST https://nexus.acme.internal/upload \\\n\
2026-11-02T10:00:01Z ci[41]:     -H 'Content-Type: application/json' \\\n\
2026-11-02T10:00:01Z ci[41]:     -u 'deploy:Jk8mQ2wZp7Rt' \\\n\
2026-11-02T10:00:01Z ci[41]:     --proxy-user=proxy:Tr0ub4dor9x \\\n\
2026-11-02T10:00:01Z ci[41]:     -d @payload.json\n\
2026-11-02T10:00:02Z ci[41]:     -u admin:NotPartOfTheCommand1\n";

    #[test]
    fn curl_continuation_records() {
        let (s, end) = spans_of(Block::Curl, Carry::default(), CURL);
        assert!(s == ["Jk8mQ2wZp7Rt", "Tr0ub4dor9x"], "{:?}", shown(&s));
        assert!(!end.in_block());
        same_at_every_split(Block::Curl, CURL);
    }

    #[test]
    fn user_agents_and_unfinished_commands_are_not_curl_blocks() {
        let text = "10.0.4.7 - - [02/Nov/2026:10:01:27 +0000] \"GET / HTTP/1.1\" 200 2 \"-\" \"curl/8.5.0\" \\\n\
    -u admin:Zq8rT2wXk9Lm\n\
+ curl https://a.example\n\
    -u admin:Hn3pQ7wZk2Rt\n";
        assert!(spans_of(Block::Curl, Carry::default(), text).0.is_empty());
        let mut long = String::from("curl https://a.example \\\n");
        for _ in 0..MAX_CURL_LINES {
            long.push_str("  -H 'X-A: b' \\\n");
        }
        long.push_str("  -u admin:Zq8rT2wXk9Lm\n");
        assert!(spans_of(Block::Curl, Carry::default(), &long).0.is_empty());
    }

    #[test]
    fn a_key_inside_a_curl_block_is_not_lost() {
        // Blocks are one at a time; a key that starts after a curl command is followed.
        let text = format!("+ curl https://a.example \\\n  -u a:Zq8rT2wXk9Lm\n{KEY}");
        let (keys, _) = spans_of(Block::Key, Carry::default(), &text);
        assert_eq!(keys.len(), 3, "{:?}", shown(&keys));
        let curl = spans_of(Block::Curl, Carry::default(), &text).0;
        assert!(curl == ["Zq8rT2wXk9Lm"], "{:?}", shown(&curl));
    }
}
