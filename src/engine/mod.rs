//! The redaction engine: prefilter → confirm → validate → replace, per batch of records.
//!
//! A batch is a buffer of whole records (lines). One prefilter pass over the whole batch finds
//! the records that contain a rule's keyword (or a long digit run); only there, and only for
//! the rules that hit, does a regex run. Records without findings are never copied: the
//! output of a batch is a list of [`Bytes`] slices of the input with the replacement texts in
//! between.

pub mod multiline;
pub mod prefilter;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use regex_automata::{meta, util::captures::Captures, Input};

use crate::fingerprint::{Fingerprint, Keyring, Template};
use crate::framer::Batch;
use crate::rules::Rule;
use multiline::Carry;
use prefilter::Prefilter;

/// The rule that names private-key bodies found across records.
pub const MULTILINE_KEY_RULE: &str = "pem-private-key";

/// One secret found: a byte span of the batch (or record) and the rule that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub rule: u16,
}

/// Rules plus their prefilter: finds secrets, knows nothing about keys.
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<Rule>,
    prefilter: Prefilter,
    /// Index of [`MULTILINE_KEY_RULE`] when it is enabled: private keys spread over records
    /// are followed only then.
    key_rule: Option<u16>,
    /// The shape of logveil's own markers (from the template) and their longest length:
    /// a marker already in the input is never part of a finding, so that redacting
    /// redacted logs (a replayed archive, a second stage) changes nothing.
    markers: Option<Arc<(meta::Regex, usize)>>,
}

/// Per-thread mutable state: regex caches and reusable buffers. Made by
/// [`Matcher::scratch`]; never shared between threads.
pub struct Scratch {
    caches: Vec<(meta::Cache, Captures)>,
    /// Rule indices to run, per candidate record, as (record start, record end, rule).
    cands: Vec<(usize, usize, u16)>,
    /// Per rule: start of the last record queued for it (dedup without sorting).
    stamps: Vec<usize>,
    /// Lowercased copy of the batch for the keyword pass.
    lower: Vec<u8>,
    findings: Vec<Finding>,
    /// The scan window of a piece of an over-long record (context + piece + context).
    window: Vec<u8>,
}

impl Matcher {
    pub fn new(rules: Vec<Rule>) -> Matcher {
        assert!(rules.len() < u16::MAX as usize, "too many rules");
        let prefilter = Prefilter::new(&rules);
        let key_rule = rules
            .iter()
            .position(|r| r.id == MULTILINE_KEY_RULE)
            .map(|i| i as u16);
        Matcher {
            rules,
            prefilter,
            key_rule,
            markers: None,
        }
    }

    /// Recognises markers rendered by `template` in the input and keeps them out of every
    /// finding (see [`Template::marker_pattern`]).
    pub fn set_marker_shape(&mut self, template: &Template) {
        // A template too large for a regex (a huge literal) is not recognised as a marker.
        self.markers = template.marker_pattern().and_then(|(pattern, max)| {
            let re = meta::Regex::builder()
                .syntax(
                    regex_automata::util::syntax::Config::new()
                        .unicode(false)
                        .utf8(false),
                )
                .build(&pattern)
                .ok()?;
            Some(Arc::new((re, max)))
        });
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True when records carry state into the next ones (private keys one line per record):
    /// the pipeline then computes each batch's starting [`Carry`] in input order.
    pub fn tracks_multiline(&self) -> bool {
        self.key_rule.is_some()
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            caches: self
                .rules
                .iter()
                .map(|r| (r.regex.create_cache(), r.regex.create_captures()))
                .collect(),
            cands: Vec::new(),
            stamps: Vec::new(),
            lower: Vec::new(),
            findings: Vec::new(),
            window: Vec::new(),
        }
    }

    /// Finds the secrets of one record (or any buffer) with a fresh scratch. For checks and
    /// tests; the pipeline uses [`Matcher::scan`] with a reused scratch.
    pub fn find(&self, hay: &[u8]) -> Vec<Finding> {
        let mut scratch = self.scratch();
        self.scan(hay, &mut scratch);
        scratch.findings
    }

    /// Scans a batch of records that starts outside any private-key block.
    pub fn scan<'s>(&self, batch: &[u8], scratch: &'s mut Scratch) -> &'s [Finding] {
        self.scan_from(batch, Carry::default(), scratch)
    }

    /// Scans a batch of records, starting in state `carry` (from the input's earlier
    /// batches); leaves the merged findings, sorted by position, in `scratch.findings`.
    pub fn scan_from<'s>(
        &self,
        batch: &[u8],
        carry: Carry,
        scratch: &'s mut Scratch,
    ) -> &'s [Finding] {
        scratch.findings.clear();
        self.walk_keys(batch, 0, carry, &mut scratch.findings);
        self.confirm(batch, scratch);
        self.finish(batch, &mut scratch.findings);
        &scratch.findings
    }

    /// Scans `batch` in the window `before + batch + after` (the pieces of an over-long
    /// record, see [`crate::framer::Batch`]). Leaves in `scratch.findings` the merged findings
    /// that touch `batch`, in window coordinates, and the window in `scratch.window`; returns
    /// where `batch` starts in it. Without context it is [`Matcher::scan_from`] on the batch
    /// itself, and returns 0.
    pub fn scan_window(
        &self,
        before: &[u8],
        batch: &[u8],
        after: &[u8],
        carry: Carry,
        scratch: &mut Scratch,
    ) -> usize {
        scratch.window.clear();
        if before.is_empty() && after.is_empty() {
            self.scan_from(batch, carry, scratch);
            return 0;
        }
        let mut hay = std::mem::take(&mut scratch.window);
        hay.extend_from_slice(before);
        hay.extend_from_slice(batch);
        hay.extend_from_slice(after);
        let (lo, hi) = (before.len(), before.len() + batch.len());
        scratch.findings.clear();
        self.walk_keys(batch, lo, carry, &mut scratch.findings);
        self.confirm(&hay, scratch);
        self.finish(&hay, &mut scratch.findings);
        // What lies wholly in the context belongs to the neighbouring batch.
        scratch.findings.retain(|f| f.end > lo && f.start < hi);
        scratch.window = hay;
        lo
    }

    /// Private-key bodies spread over records (offset by `at`).
    fn walk_keys(&self, batch: &[u8], at: usize, carry: Carry, findings: &mut Vec<Finding>) {
        if let Some(rule) = self.key_rule {
            multiline::walk(carry, batch, |span| {
                findings.push(Finding {
                    start: at + span.start,
                    end: at + span.end,
                    rule,
                })
            });
        }
    }

    /// Prefilter, then regex and validators on the candidate records of `batch`; pushes the
    /// raw findings to `scratch.findings`.
    fn confirm(&self, batch: &[u8], scratch: &mut Scratch) {
        scratch.cands.clear();
        // 1. Prefilter: which records, which rules. A (record, rule) pair is queued once:
        // `stamps[rule]` holds the start of the last record queued for that rule (records come
        // in order within each pass, and a rule belongs to one pass only).
        let cands = &mut scratch.cands;
        let stamps = &mut scratch.stamps;
        stamps.clear();
        stamps.resize(self.rules.len(), usize::MAX);
        let (mut rec_start, mut rec_end) = (usize::MAX, 0usize);
        let rules = &self.rules;
        self.prefilter
            .scan(batch, &mut scratch.lower, |start, end, hit_rules| {
                if !(rec_start <= start && start < rec_end) {
                    rec_start = memchr::memrchr(b'\n', &batch[..start]).map_or(0, |i| i + 1);
                    rec_end =
                        memchr::memchr(b'\n', &batch[start..]).map_or(batch.len(), |i| start + i);
                }
                for &r in hit_rules {
                    if stamps[r as usize] == rec_start {
                        continue;
                    }
                    let rule = &rules[r as usize];
                    if !rule.followed_by.is_empty()
                        && !followed(
                            &batch[end..rec_end.min(end + rule.followed_within)],
                            &rule.followed_by,
                        )
                    {
                        continue;
                    }
                    stamps[r as usize] = rec_start;
                    cands.push((rec_start, rec_end, r));
                }
            });
        // 2.+3. Confirm with the rule's regex on the record, validate the secret.
        for &(s, e, r) in scratch.cands.iter() {
            let rule = &self.rules[r as usize];
            let (cache, caps) = &mut scratch.caches[r as usize];
            let hay = &batch[s..e];
            let mut input = Input::new(hay);
            loop {
                rule.regex.search_captures_with(cache, &input, caps);
                let Some(m) = caps.get_match() else { break };
                if let Some(span) = caps.get_group(rule.secret_group) {
                    if !span.is_empty() && rule.accepts(hay, span.range()) {
                        scratch.findings.push(Finding {
                            start: s + span.start,
                            end: s + span.end,
                            rule: r,
                        });
                    }
                }
                let next = if m.is_empty() { m.end() + 1 } else { m.end() };
                if next > hay.len() {
                    break;
                }
                input.set_start(next);
            }
        }
    }
}

/// True if one of `lits` occurs in `window`.
fn followed(window: &[u8], lits: &[Vec<u8>]) -> bool {
    lits.iter().any(|l| match l.as_slice() {
        [b] => memchr::memchr(*b, window).is_some(),
        l => memchr::memmem::find(window, l).is_some(),
    })
}

impl Matcher {
    /// Aligns every finding to escape sequences, merges overlaps, and cuts markers out.
    fn finish(&self, batch: &[u8], findings: &mut Vec<Finding>) {
        for f in findings.iter_mut() {
            align_to_escapes(batch, f);
        }
        findings.retain(|f| f.start < f.end);
        merge(findings, &self.rules);
        if let Some(m) = &self.markers {
            if !findings.is_empty() {
                cut_markers(batch, findings, &m.0, m.1);
            }
        }
        if !findings.is_empty() {
            keep_json_valid(batch, findings);
        }
    }
}

/// In a record that is a JSON document, only string contents can hold a secret: a finding
/// is cut to the string content it starts in (or, starting outside any, the last one it
/// covers), and dropped when it covers none (a number, `null`, the structure). So every JSON
/// record still parses after redaction, with its non-string values unchanged. Findings are
/// sorted and disjoint; string spans come sorted too.
fn keep_json_valid(hay: &[u8], findings: &mut Vec<Finding>) {
    let mut strings: Vec<(usize, usize)> = Vec::new();
    // The record the last finding was in, and whether it is JSON.
    let mut rec: Option<(usize, usize, bool)> = None;
    findings.retain_mut(|f| {
        let json = match rec {
            Some(r) if r.0 <= f.start && f.start < r.1 => r.2,
            _ => {
                let rs = memchr::memrchr(b'\n', &hay[..f.start]).map_or(0, |i| i + 1);
                let re = memchr::memchr(b'\n', &hay[f.start..]).map_or(hay.len(), |i| f.start + i);
                let json = json_strings(&hay[rs..re], rs, &mut strings);
                rec = Some((rs, re, json));
                json
            }
        };
        if !json {
            return true;
        }
        // Strings that end after the finding starts, up to those that start before it ends.
        let from = strings.partition_point(|&(_, e)| e <= f.start);
        let to = strings.partition_point(|&(s, _)| s < f.end);
        let covered = &strings[from..to.max(from)];
        let pick = match covered.first() {
            Some(&(s, e)) if s <= f.start && f.start < e => Some((s, e)),
            _ => covered.last().copied(),
        };
        match pick {
            Some((s, e)) => {
                f.start = f.start.max(s);
                f.end = f.end.min(e);
                align_to_escapes(hay, f);
                f.start < f.end
            }
            None => false,
        }
    });
}

/// When `rec` is one JSON object or array, fills `out` with the spans (offset by `at`) of the
/// contents of its strings and returns true. A string that holds JSON itself (container
/// logs: `{"log":"{\"password\":…}"}`, up to 6 levels) gives the spans of its inner strings
/// instead, so that the inner document stays valid too.
fn json_strings(rec: &[u8], at: usize, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    if !matches!(rec.trim_ascii().first(), Some(b'{' | b'[')) {
        return false;
    }
    let map: Vec<usize> = (at..at + rec.len()).collect();
    json_strings_in(rec, &map, at + rec.len(), out, 0)
}

/// Levels of JSON escaped in JSON strings that [`json_strings`] looks into below the record
/// itself (container runtimes and shippers wrap two or three times).
const MAX_JSON_DEPTH: usize = 5;

/// `doc` (unescaped bytes), `map[i]` the raw position of `doc[i]`, `end` the raw end.
fn json_strings_in(
    doc: &[u8],
    map: &[usize],
    end: usize,
    out: &mut Vec<(usize, usize)>,
    depth: usize,
) -> bool {
    let body = doc.trim_ascii();
    if !matches!(body.first(), Some(b'{' | b'[')) {
        return false;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        return false;
    }
    let raw = |i: usize| map.get(i).copied().unwrap_or(end);
    let mut i = 0;
    while i < doc.len() {
        if doc[i] != b'"' {
            i += 1;
            continue;
        }
        let s = i + 1;
        let mut j = s;
        while j < doc.len() && doc[j] != b'"' {
            j += if doc[j] == b'\\' { 2 } else { 1 };
        }
        let j = j.min(doc.len());
        let content = &doc[s..j];
        let mut inner_done = false;
        if depth < MAX_JSON_DEPTH && matches!(content.trim_ascii_start().first(), Some(b'{' | b'['))
        {
            if let Some((inner, inner_map)) = unescape(content, &map[s..j]) {
                let mark = out.len();
                if json_strings_in(&inner, &inner_map, raw(j), out, depth + 1) {
                    inner_done = true;
                } else {
                    out.truncate(mark);
                }
            }
        }
        if !inner_done {
            out.push((raw(s), raw(j)));
        }
        i = j + 1;
    }
    true
}

/// The text of a JSON string's content, with the position (from `map`) each byte came from.
fn unescape(content: &[u8], map: &[usize]) -> Option<(Vec<u8>, Vec<usize>)> {
    let (mut text, mut pos) = (Vec::with_capacity(content.len()), Vec::new());
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        if b != b'\\' {
            text.push(b);
            pos.push(map[i]);
            i += 1;
            continue;
        }
        let e = *content.get(i + 1)?;
        let at = map[i];
        let c = match e {
            b'"' | b'\\' | b'/' => e,
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 8,
            b'f' => 12,
            b'u' => {
                let hex = std::str::from_utf8(content.get(i + 2..i + 6)?).ok()?;
                let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                for &x in ch.encode_utf8(&mut buf).as_bytes() {
                    text.push(x);
                    pos.push(at);
                }
                i += 6;
                continue;
            }
            _ => return None,
        };
        text.push(c);
        pos.push(at);
        i += 2;
    }
    Some((text, pos))
}

/// Keeps logveil's own markers out of the (sorted, disjoint) findings: `token=[REDACTED:…]`,
/// or the `token:` inside `[REDACTED:bearer-token:…]`, are not secrets. A finding that starts
/// inside a marker is dropped (the rule read the marker as text: what follows the marker is
/// only there because of it); one that runs into a marker ends where the marker begins.
fn cut_markers(hay: &[u8], findings: &mut Vec<Finding>, re: &meta::Regex, max: usize) {
    findings.retain_mut(|f| {
        let (lo, hi) = (f.start.saturating_sub(max), (f.end + max).min(hay.len()));
        let first = re
            .find_iter(Input::new(&hay[..hi]).range(lo..hi))
            .find(|m| m.start() < f.end && m.end() > f.start);
        match first {
            None => true,
            Some(m) if m.start() <= f.start => false,
            Some(m) => {
                f.end = m.start();
                align_to_escapes(hay, f);
                f.start < f.end
            }
        }
    });
}

/// Number of backslashes right before `pos`.
fn backslashes_before(hay: &[u8], pos: usize) -> usize {
    hay[..pos].iter().rev().take_while(|&&b| b == b'\\').count()
}

/// Moves a finding's edges so that it never splits a backslash escape (`\"`, `\\`, `\n`,
/// `\uXXXX`): a replacement that left half an escape behind would end a JSON string early or
/// make it invalid. An escape cut at the start is taken in whole; a backslash dangling at the
/// end is left out.
fn align_to_escapes(hay: &[u8], f: &mut Finding) {
    if backslashes_before(hay, f.start) % 2 == 1 {
        f.start -= 1;
    } else {
        // Inside the hex digits of `\uXXXX`?
        for k in 1..=3 {
            let s = f.start;
            if s > k + 1
                && hay[s - k - 1] == b'u'
                && hay[s - k..s].iter().all(u8::is_ascii_hexdigit)
                && backslashes_before(hay, s - k - 1) % 2 == 1
            {
                f.start = s - k - 2;
                break;
            }
        }
    }
    if f.end > f.start && backslashes_before(hay, f.end) % 2 == 1 {
        f.end -= 1;
    }
}

fn merge(findings: &mut Vec<Finding>, rules: &[Rule]) {
    if findings.len() < 2 {
        return;
    }
    // The rule index breaks ties, so the naming never depends on how records were batched.
    findings.sort_unstable_by_key(|f| (f.start, std::cmp::Reverse(f.end), f.rule));
    let mut out = 0;
    for i in 1..findings.len() {
        let f = findings[i];
        let cur = &mut findings[out];
        if f.start < cur.end {
            let (pf, pc) = (
                rules[f.rule as usize].priority,
                rules[cur.rule as usize].priority,
            );
            if pf > pc || (pf == pc && f.end - f.start > cur.end - cur.start) {
                cur.rule = f.rule;
            }
            cur.end = cur.end.max(f.end);
        } else {
            out += 1;
            findings[out] = f;
        }
    }
    findings.truncate(out + 1);
}

/// One finding as reported outside the engine: rule and fingerprint, never the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub rule: u16,
    pub fingerprint: Fingerprint,
    /// Byte offset of the secret in the batch.
    pub offset: usize,
}

/// The result of redacting one batch.
#[derive(Debug, Default)]
pub struct Redacted {
    /// Output bytes, in order: slices of the input with replacement texts in between.
    pub chunks: Vec<Bytes>,
    pub findings: Vec<Reported>,
    /// Number of records (lines) in the batch.
    pub records: u64,
    pub input_len: usize,
    /// Time spent in the engine.
    pub elapsed: Duration,
    /// Where each replacement went, when emitting: `(start, end, chunk)`, the input range
    /// replaced and the index of its text in `chunks`. Lets a batch of several messages be
    /// cut back into one output per message (`kafka::batch`).
    pub edits: Vec<(usize, usize, usize)>,
}

/// Matcher plus keyring and template: turns batches into redacted output.
#[derive(Debug, Clone)]
pub struct Engine {
    matcher: Arc<Matcher>,
    keyring: Arc<Keyring>,
    template: Template,
}

impl Engine {
    pub fn new(mut matcher: Matcher, keyring: Keyring, template: Template) -> Engine {
        matcher.set_marker_shape(&template);
        Engine {
            matcher: Arc::new(matcher),
            keyring: Arc::new(keyring),
            template,
        }
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn scratch(&self) -> Scratch {
        self.matcher.scratch()
    }

    /// Redacts one batch of whole records. With `emit == false` (scan mode) only the
    /// findings are computed and `chunks` stays empty.
    pub fn redact(&self, batch: &Bytes, scratch: &mut Scratch, emit: bool) -> Redacted {
        self.redact_from(
            &Batch::whole(batch.clone()),
            Carry::default(),
            scratch,
            emit,
        )
    }

    /// Redacts one batch that starts in state `carry`. A piece of an over-long record is
    /// scanned with its context; a secret that crosses the piece's edge is fingerprinted
    /// whole, and the part of it inside the piece is replaced (so a secret across a cut shows
    /// the same fingerprint on both sides of it), and counted once, where it starts.
    pub fn redact_from(
        &self,
        batch: &Batch,
        carry: Carry,
        scratch: &mut Scratch,
        emit: bool,
    ) -> Redacted {
        let t0 = Instant::now();
        let data = &batch.data;
        let lo = self
            .matcher
            .scan_window(&batch.before, data, &batch.after, carry, scratch);
        let hay: &[u8] = if batch.windowed() {
            &scratch.window
        } else {
            data
        };
        let findings = &scratch.findings;
        let key = self.keyring.active();
        let mut records = count_records(data);
        if batch.continues && !data.ends_with(b"\n") && !data.is_empty() {
            records -= 1;
        }
        let mut out = Redacted {
            records,
            input_len: data.len(),
            ..Redacted::default()
        };
        if findings.is_empty() {
            if emit && !data.is_empty() {
                out.chunks.push(data.clone());
            }
            out.elapsed = t0.elapsed();
            return out;
        }
        let mut text = Vec::with_capacity(64);
        let mut owned = BytesMut::with_capacity(findings.len() * 48);
        let mut pos = 0;
        for f in findings {
            let rule = &self.matcher.rules[f.rule as usize];
            let fp = key.fingerprint(&hay[f.start..f.end]);
            // The part of the finding inside this batch.
            let (start, end) = (f.start.max(lo) - lo, f.end.min(lo + data.len()) - lo);
            if f.start >= lo {
                out.findings.push(Reported {
                    rule: f.rule,
                    fingerprint: fp,
                    offset: start,
                });
            }
            if emit {
                if start > pos {
                    out.chunks.push(data.slice(pos..start));
                }
                text.clear();
                self.template.render(&mut text, &rule.id, key.id(), &fp);
                owned.put_slice(&text);
                out.edits.push((start, end, out.chunks.len()));
                out.chunks.push(owned.split().freeze());
                pos = end;
            }
        }
        if emit && pos < data.len() {
            out.chunks.push(data.slice(pos..));
        }
        out.elapsed = t0.elapsed();
        out
    }

    /// Convenience for tests and small inputs: redacts a buffer and returns the output.
    pub fn redact_to_vec(&self, input: &[u8]) -> Vec<u8> {
        let mut scratch = self.scratch();
        let r = self.redact(&Bytes::copy_from_slice(input), &mut scratch, true);
        r.chunks.concat()
    }
}

/// Number of records in a batch: newlines, plus one for a final record without newline.
pub fn count_records(batch: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', batch).count() as u64;
    n + u64::from(batch.last().is_some_and(|&b| b != b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Key;
    use crate::rules::parse_pack;

    const PACK: &str = r#"
[pack]
id = "t"
[[rules]]
id = "pw"
description = "password assignment"
regex = '''(?i)\bpassword=(?P<secret>[^\s&"]{3,})'''
keywords = ["password"]
priority = 10
[[rules]]
id = "ghp"
description = "github"
regex = '''\b(?P<secret>ghp_[A-Za-z0-9]{8})\b'''
keywords = ["ghp_"]
[[rules]]
id = "card"
description = "card"
regex = '''\b(?P<secret>\d{4}(?:[ -]?\d{4}){3})\b'''
prefilter = "digit-run"
validators = ["luhn"]
"#;

    fn engine() -> Engine {
        let (_, _, rules) = parse_pack(PACK, "t").unwrap();
        let key = Key::parse("k1", "logveil-test-key-thirty-two-byte", "test").unwrap();
        Engine::new(
            Matcher::new(rules),
            Keyring::single(key),
            Template::default(),
        )
    }

    /// Failure messages show secrets cut to their first 4 characters.
    fn masked(text: &str, secrets: &[&str]) -> String {
        secrets
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s, &s[..4]))
    }

    fn fp(e: &Engine, s: &str) -> String {
        e.keyring().active().fingerprint(s.as_bytes()).to_string()
    }

    #[test]
    fn replaces_only_the_secret_part() {
        let e = engine();
        let out = e.redact_to_vec(b"login ok password=hunter2 user=bob\n");
        let want = format!(
            "login ok password=[REDACTED:pw:k1:{}] user=bob\n",
            fp(&e, "hunter2")
        );
        let out = String::from_utf8(out).unwrap();
        assert!(out == want, "{}", masked(&out, &["hunter2"]));
    }

    #[test]
    fn clean_batches_are_passed_through_as_one_slice() {
        let e = engine();
        let input = Bytes::from_static(b"nothing here\nnor here\r\nlast without newline");
        let r = e.redact(&input, &mut e.scratch(), true);
        assert_eq!(r.chunks.len(), 1);
        assert_eq!(
            r.chunks[0].as_ptr(),
            input.as_ptr(),
            "clean batch was copied"
        );
        assert_eq!(r.records, 3);
    }

    #[test]
    fn overlapping_findings_merge_and_specific_rule_wins() {
        let e = engine();
        let out = e.redact_to_vec(b"password=ghp_abcdEFGH\n");
        let s = String::from_utf8(out).unwrap();
        let shown = masked(&s, &["ghp_abcdEFGH"]);
        assert!(s.starts_with("password=[REDACTED:ghp:k1:"), "{shown}");
        assert_eq!(s.matches("REDACTED").count(), 1, "{shown}");
    }

    #[test]
    fn several_findings_per_record_and_many_records() {
        let e = engine();
        let input = b"a password=one1 b password=two2\nclean\nc ghp_12345678 d\n";
        let out = String::from_utf8(e.redact_to_vec(input)).unwrap();
        assert_eq!(
            out.matches("[REDACTED:").count(),
            3,
            "{}",
            masked(&out, &["one1", "two2", "12345678"])
        );
        assert!(out.contains("\nclean\n"));
        assert!(!out.contains("one1") && !out.contains("two2") && !out.contains("12345678"));
    }

    #[test]
    fn keyword_case_insensitive_and_invalid_utf8_passes_through() {
        let e = engine();
        let mut input = b"\xff\xfe PASSWORD=s3cret \x00 tail\r\n".to_vec();
        input.extend_from_slice(b"\xc3\x28 bin\n");
        let out = e.redact_to_vec(&input);
        let want_mid = format!(
            "PASSWORD=[REDACTED:pw:k1:{}] \x00 tail\r\n",
            fp(&e, "s3cret")
        );
        assert!(out.starts_with(b"\xff\xfe "));
        assert!(out.ends_with(b"\xc3\x28 bin\n"));
        assert!(memchr::memmem::find(&out, want_mid.as_bytes()).is_some());
    }

    #[test]
    fn cards_need_luhn_and_digit_runs() {
        let e = engine();
        let out = String::from_utf8(
            e.redact_to_vec(b"pay 4111 1111 1111 1111 ok\norder 4111111111111112 ok\n"),
        )
        .unwrap();
        let shown = masked(&out, &["4111 1111 1111 1111"]);
        assert!(out.starts_with("pay [REDACTED:card:k1:"), "{shown}");
        assert!(out.contains("order 4111111111111112 ok"), "{shown}");
    }

    #[test]
    fn placeholders_are_not_findings() {
        let e = engine();
        for line in [
            "password=${DB_PASS}\n",
            "password=****\n",
            "password=null\n",
        ] {
            assert_eq!(e.redact_to_vec(line.as_bytes()), line.as_bytes());
        }
        // Redacting redacted output changes nothing.
        let once = e.redact_to_vec(b"password=hunter2\n");
        assert_eq!(e.redact_to_vec(&once), once);
    }

    #[test]
    fn followed_by_and_reject_before_narrow_candidates() {
        let pack = r#"
[pack]
id = "t"
[[rules]]
id = "tok"
description = "token assignment"
regex = '''(?i)token[ \t]*[:=][ \t]*(?P<secret>[a-z0-9]{6,})'''
keywords = ["token"]
followed_by = ["=", ":"]
followed_within = 4
[[rules]]
id = "card"
description = "card"
regex = '''\b(?P<secret>\d{16})\b'''
prefilter = "digit-run"
validators = ["luhn"]
reject_before = '''order_id='''
"#;
        let (_, _, rules) = parse_pack(pack, "t").unwrap();
        let m = Matcher::new(rules);
        assert_eq!(m.find(b"x token=abc123def y").len(), 1);
        assert_eq!(m.find(b"x token  :  abc123def y").len(), 1);
        // The keyword is not followed by an assignment: the regex never runs.
        assert!(m.find(b"token expired, refreshing session").is_empty());
        // A later hit in the same record still counts.
        assert_eq!(m.find(b"token expired; token=zz9988xx").len(), 1);
        assert_eq!(m.find(b"card 4111111111111111 ok").len(), 1);
        assert!(m.find(b"order_id=4111111111111111 ok").is_empty());
    }

    #[test]
    fn findings_never_split_an_escape() {
        let hay: &[u8] = br#"{"a":"x\"secret\u0041b\\c\n"}"#;
        let at = |needle: &[u8]| memchr::memmem::find(hay, needle).unwrap();
        let span = |start: usize, end: usize| {
            let mut f = Finding {
                start,
                end,
                rule: 0,
            };
            align_to_escapes(hay, &mut f);
            &hay[f.start..f.end]
        };
        // The span starts on an escaped quote: the backslash goes with it.
        assert_eq!(
            span(at(br#"\"secret"#) + 1, at(b"secret") + 6),
            br#"\"secret"#
        );
        // The span ends on the backslash of `\u0041`: it stays out.
        assert_eq!(span(at(b"secret"), at(br#"\u0041"#) + 1), b"secret");
        // The span starts inside the hex digits of `\u0041`: the escape is taken in whole.
        assert_eq!(span(at(b"0041") + 1, at(b"0041") + 4), br#"\u0041"#);
        // `\\` before `c` is an escaped backslash, not an escape of `c`.
        assert_eq!(span(at(br#"c\n"#), at(br#"c\n"#) + 1), b"c");
    }

    /// Redacts one record (its newline added when missing) and returns the output as text.
    fn redact_line(e: &Engine, line: &str) -> String {
        let rec = if line.ends_with('\n') {
            line.to_string()
        } else {
            format!("{line}\n")
        };
        String::from_utf8_lossy(&e.redact_to_vec(rec.as_bytes())).into_owned()
    }

    /// The record comes out byte for byte (the records here hold no secret to mask).
    fn assert_unchanged(e: &Engine, line: &str) {
        let out = redact_line(e, line);
        let expected = if line.ends_with('\n') {
            line.to_string()
        } else {
            format!("{line}\n")
        };
        assert_eq!(out, expected);
    }

    /// `secret` is gone from the output; a failure shows the output with it masked. Returns
    /// the output.
    fn assert_hidden(e: &Engine, line: &str, secret: &str) -> String {
        let out = redact_line(e, line);
        assert!(!out.contains(secret), "{}", masked(&out, &[secret]));
        out
    }

    fn builtin_engine() -> Engine {
        let rules = crate::rules::RuleSet::builtin().unwrap().enabled();
        let key = Key::parse("k1", "logveil-test-key-thirty-two-byte", "test").unwrap();
        Engine::new(
            Matcher::new(rules),
            Keyring::single(key),
            Template::default(),
        )
    }

    /// Every example of the precision issue (#10): real-log text that is not a secret stays
    /// byte for byte, and where an operator precedes a real value, the value (never the
    /// operator) is what gets replaced.
    #[test]
    fn real_log_references_placeholders_and_identifiers_stay() {
        let e = builtin_engine();
        for line in [
            "Nov  2 10:01:22 web-03 sudo:    alice : TTY=pts/2 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
            "export PWD=/app",
            "declare -x PWD=\"/app\"",
            "declare -x OLDPWD=\"/srv/www\"",
            "OLDPWD=/tmp",
            "secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            "password=[MASKED] token=[FILTERED] secret=*** api_key=**** password=<redacted>",
            "password=(hidden) password=(null) password=? password=%s password=%-8v password=${VAR}",
            "password=$VAR password=$db_pass password={{ .Values.x }} password=<password> password=xxxxxxxx",
            "password=\"{{ .Values.db.password }}\"",
            "password = request.form[\"pw\"]",
            "    password = request.form[\"password\"]",
            "password = new PasswordEncoder()",
            "token=env.GITHUB_TOKEN",
            "password = getPassword()",
            "char *password = (char*)malloc(64);",
            "token = os.environ[\"GITHUB_TOKEN\"]",
            "password = settings.DB_PASSWORD",
            "api_key = config.get(\"api_key\")",
            "db_password = var.db_password",
            "password: ~",
            "\"password\": null",
            "Authorization: Bearer",
            "\"Authorization\": \"Bearer \"",
            "WindowManager: token=AppWindowToken{4a3b2c1 token=Token{9f8e7d6 ActivityRecord{1c2d3e4 u0 com.example/.MainActivity t12}}}",
            "  Token: {",
            "creds=com.acme.auth.Credentials@1b6d3586",
            "User{id=42, name='alice', password=null}",
            "Access denied for user 'app'@'10.0.0.5' (using password: YES)",
            "INFO BlockStateChange: BLOCK* addStoredBlock: blockMap updated: 10.0.0.5:50010 is added to blk_1073741825_1001 size 134217728",
            "INFO datanode.DataNode: Receiving BP-1234567890-10.0.0.1-1600000000000:blk_-1608999687919862906_1001 src: /10.0.0.2:50010",
            // Found on the realistic corpus (tests/realistic): one line per class.
            "Nov  2 10:01:22 web-03 passwd[5696]: pam_unix(passwd:chauthtok): password changed for bob",
            "Nov  2 10:01:22 web-03 gdm-password][8920]: pam_unix(gdm-password:session): session opened for user alice",
            "{\"masterUsername\":\"admin\",\"masterUserPassword\":\"HIDDEN_DUE_TO_SECURITY_REASONS\"}",
            "msg=\"fetching secret\" secret=\"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::\"",
            "{\"secret\":\"projects/acme-prod-42/secrets/db-password/versions/latest\"}",
            "{\"subjectFromWebIdentityToken\":\"repo:acme/infra:ref:refs/heads/main\"}",
            "{\"clientRequestToken\":\"3f2b8c1e-9a4d-4e7f-b2c1-5d6e7f8a9b0c\",\"clientToken\":\"terraform-20261102100122118400000001\",\"nextToken\":\"AAEAAWx0c2Vzc2lvbjEyMw\"}",
            "E1102 reflector.go:535] failed to list *v1.Secret: secrets is forbidden: User cannot list",
            "DEBUG:botocore.credentials:Looking for credentials via: env",
            "err=\"open /etc/prometheus/secrets/scrape-token/token: open /etc/prometheus/secrets/scrape-token/token: no such file\"",
            "POST https://sso.acme.example/realms/acme/protocol/openid-connect/token: 401 Unauthorized",
            "    conn = psycopg2.connect(host=settings.DB_HOST, password=settings.DB_PASSWORD)",
            "[2026-11-02 10:01:22,118: INFO] Connected to amqp://celery:**@rabbitmq:5672//",
            "D OkHttp  : Authorization: \u{2588}\u{2588}",
            "V AccountManagerService: getAuthToken: Account {name=alice@acme.example, type=com.google}",
            "INFO DelegationTokenRenewer: Renewed delegation-token= [Kind: HDFS_DELEGATION_TOKEN, Service: ha-hdfs:prod, Ident: (token for etl)]",
            "{\"instance_id\":\"4035123456789012349\",\"targetId\":\"4035123456789012349\",\"id\":\"4035123456789012349\"}",
            "GET /compute/v1/projects/acme/zones/eu/operations/4035123456789012349 200",
            "{\"client_token\":\"hmac-sha256:8f14e45fceea167a5a36dedd4bea2543bd7c7f1e9a4b1f2c3d4e5f60718293a4\"}",
            "{\"createUser\":\"reporting\",\"pwd\":\"xxx\"}",
            "{\"name\": \"deploy\", \"password\": \"NOT_LOGGING_PASSWORD\"}",
            "    \"db_password\": \"VARIABLE IS NOT DEFINED!\"",
            "      + password = (sensitive value)",
            "      + master_user_secret = (known after apply)",
            "kubernetes_secret.db_credentials: Creating...",
            "export POSTGRES_PASSWORD=$(kubectl get secret db -o jsonpath=\"{.data.password}\" | base64 -d)",
            "password:  16 bytes",
            "kubectl create secret generic db --from-file=password=./db-password.txt",
            "[INFO] provider: Retrieved credentials: tf_aws.credentials_source=SharedConfigCredentials: /home/runner/.aws/credentials",
            "helm upgrade app ./chart --set db.existingSecret=db-credentials",
            "{\"extra\":{\"authentication.kubernetes.io/credential-id\":[\"BootstrapToken=07401b\"]}}",
            "Uploading artifacts as \"archive\" to coordinator... 201 Created  id=4711 responseStatus=201 Created token=WsNRx8Qa",
            "verifying certificate SN=4035123456789012349, SKID=, AKID=AB:CD",
            "{\"ElevatedToken\":\"%%1842\",\"VirtualAccount\":\"%%1843\"}",
            "$securePassword = Read-Host -AsSecureString -Prompt 'Enter password'",
            "$token = (Get-AzAccessToken -ResourceUrl 'https://vault.azure.net').Token",
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
            "  Parameters: {\"query\"=>\"mutation Login($email: String!, $password: String!) { login }\"}",
            "To edit, run `bin/rails credentials:edit`.",
            "-  password: '*** (before)'",
            // From the held-out formats (written after the checks above, measured before
            // these lines were fixed).
            "2026-11-02T10:01:22Z [ERROR] nomad.rpc: failed to resolve token: error=\"ACL token not found\" accessor_id=3f2b8c1e",
            "agent: Updated agent's ACL token: token=agent",
            "level=error msg=\"failed to get token: oauth2: \\\"bad_verification_code\\\"\"",
            "error=\"failed to load auth credentials: secret monitoring/dashboard-basic-auth not found\"",
            "{\"Authorization\":\"{\\\"action\\\":\\\"Microsoft.KeyVault/vaults/secrets/write\\\",\\\"scope\\\":\\\"/subscriptions/x\\\"}\"}",
            "      token: '[Security Artifact of type 'Microsoft.IdentityModel.JsonWebTokens.JsonWebToken' is hidden. For more details, see https://aka.ms/x.]'.",
            "{\"hierarchy\":\"22251234-5678-9012-a86d-781828b258a4\",\"templateHash\":\"4292371883483759178\"}",
            "1,2026/11/02 00:56:11,0,any,0,4057123456789012349,0x8000000000000000,US",
        ] {
            assert_unchanged(&e, line);
        }
        // After `:=`, `=>`, `==`, `!=`, `===` the literal is the value; the operator stays.
        for (line, op) in [
            ("password := \"hunter2x\"", ":="),
            ("password => \"hunter2x\"", "=>"),
            ("\"password\" => \"hunter2x\"", "=>"),
            ("if (password == \"hunter2x\") {", "=="),
            ("if password != \"hunter2x\":", "!="),
            ("password === 'hunter2x'", "==="),
            ("token := \"Zq8WmX2pL7vR4tNk\"", ":="),
        ] {
            let secret = if line.contains("hunter2x") {
                "hunter2x"
            } else {
                "Zq8WmX2pL7vR4tNk"
            };
            let out = assert_hidden(&e, line, secret);
            assert!(
                out.contains(&format!("{op} \"[REDACTED:"))
                    || out.contains(&format!("{op} '[REDACTED:")),
                "operator {op} not kept: {}",
                masked(&out, &[secret])
            );
        }
        // The value-shape checks leave real values alone.
        for (line, secret) in [
            ("password: hunter user: bob", "hunter"),
            (
                "{\"url\":\"https:\\/\\/admin:S3cr3tPw@db.example.com\\/x\"}",
                "S3cr3tPw",
            ),
            ("see https://admin:S3cr3tPw@db.example.com/x", "S3cr3tPw"),
            ("{\"msg\":\"cfg:\\npassword=hunter2x\\nend\"}", "hunter2x"),
            ("{\"token\":\"Zq8WmX2pL7vR4tNk\"}", "Zq8WmX2pL7vR4tNk"),
            ("client_token=Zq8WmX2pL7vR4tNk", "Zq8WmX2pL7vR4tNk"),
            ("password=Ab/Cd/Ef9x", "Ab/Cd/Ef9x"),
            ("card=4111-1111-1111-1111", "4111-1111-1111-1111"),
        ] {
            assert_hidden(&e, line, secret);
        }
        // A marker damaged by a corrupted transport (invalid UTF-8 inside it) is still one:
        // nothing inside it is taken for a `token:` key (found by the generated-input
        // property: no nested markers).
        let damaged =
            b"{\"password\":\"[REDACTED:github-classic-token:\xff\xfek1:0123456789abcdef]\"}\n";
        assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
        let damaged = b"request [REDACTED:\xc3(github-classic-token:k1:0123456789abcdef]\n";
        assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
        let damaged = b"msg=\"[REDACTED:github-classic-token:k\t1:0123456789abcdef]\"\n";
        assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
        let damaged = b"msg=\"x [REDACTED:\x01github-classic-token:k1:0123456789abcdef] y\"\n";
        assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
        let damaged = b"[REDACTED:github-classic-token:k1:0\xff\xfe123456789abcde]\n";
        assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
        // Idempotent where a quoted string holds a marker and an assignment after the value.
        let once = redact_line(
            &e,
            "{\"client_secret\":\"request [REDACTED:github-classic-token:k1:0123456789abcdef] password=hunter2x\"}",
        );
        assert_eq!(
            redact_line(&e, &once),
            once,
            "{}",
            masked(&once, &["hunter2x"])
        );
        // `changeme` is a judgment call: a documented default password is still a password.
        let out = e.redact_to_vec(b"password=changeme\n");
        assert!(out.starts_with(b"password=[REDACTED:"));
    }

    #[test]
    fn json_scalars_on_secret_names_stay_byte_for_byte() {
        let e = builtin_engine();
        for line in [
            "{\"password\": null}\n",
            "{\"secret\": true}\n",
            "{\"token\": 12345}\n",
            "{\"a\":{\"passwd\":null}}}\n",
            "{\"api_key\":false,\"client_secret\":-1.5e-7,\"pwd\":0}\n",
            "{\"log\":\"{\\\"password\\\":null}\\n\"}\n",
        ] {
            assert_unchanged(&e, line);
        }
        // Things that only start like JSON scalars, or numbers outside JSON, are still found.
        for (line, secret) in [
            (
                "\"pan\": 4111 1111 1111 1111 reason=x\n",
                "4111 1111 1111 1111",
            ),
            ("cardNumber=[4111111111111111]\n", "4111111111111111"),
            ("{\"password\": {noop}hunter2}\n", "{noop}hunter2"),
        ] {
            assert_hidden(&e, line, secret);
        }
        // A string value on the same names is still a secret.
        let out = e.redact_to_vec(b"{\"password\": \"hunter2\"}\n");
        assert!(
            out.starts_with(b"{\"password\": \"[REDACTED:"),
            "{}",
            masked(&String::from_utf8_lossy(&out), &["hunter2"])
        );
        assert!(out.ends_with(b"]\"}\n"));
    }

    #[test]
    fn ordinary_lines_with_identifiers_and_placeholders_stay() {
        let e = builtin_engine();
        for line in [
            "Nov  2 10:00:01 web-01 sudo:    alice : TTY=pts/2 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx\n",
            "export PWD=/app\n",
            "declare -x OLDPWD=\"/srv/app\"\n",
            "{\"resources\":[{\"ARN\":\"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf\"}]}\n",
            "password=[FILTERED] token=*** secret=<redacted> passwd=${DB_PASS} api_key=[MASKED]\n",
            "{\"password\": \"[FILTERED]\"}\n",
        ] {
            assert_unchanged(&e, line);
        }
    }

    #[test]
    fn digits_inside_longer_numbers_are_not_cards() {
        let e = builtin_engine();
        for line in [
            "{\"latency\":0.4221165755827173}\n",
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_-4980916519894289629 terminating\n",
            "ratio=4111111111111111.25 weight=-4111111111111111 v=1.4111111111111111\n",
        ] {
            assert_unchanged(&e, line);
        }
        let out = e.redact_to_vec(b"card=4111111111111111. ok\n");
        assert!(out.starts_with(b"card=[REDACTED:payment-card-number:"));
    }

    #[test]
    fn markers_in_the_input_are_never_findings() {
        let e = builtin_engine();
        for line in [
            "\"authorization\":\"[REDACTED:bearer-token:k1:ac3445079eda25fc]\" (span=90a340abf866248d)\n",
            "using token [REDACTED:github-classic-token:k1:88f5bd56747f4c91] for api.github.com\n",
            "connecting to postgres://app_user:[REDACTED:database-uri-password:k1:a39149109c3ce5f2]@db.internal:5432/app\n",
            "token=[REDACTED:github-classic-token:old-key:0123456789abcdef] password: [REDACTED:x:k1:0123456789abcdef]\n",
            // Damaged on the way (a quote, a CR inside): still a marker.
            "\"[REDACTED:github-classic-token:k\r1:0000000000000000]\" [REDACTED:\"bearer-token:k1:0123456789abcdef]\n",
        ] {
            assert_unchanged(&e, line);
        }
        // What a rule finds before a marker is still a finding, up to the marker; a finding
        // that starts in a marker is dropped.
        let hay = b"k=abc[REDACTED:x:k1:0123456789abcdef]def z";
        let m = e.matcher().markers.clone().unwrap();
        let mut f = vec![
            Finding {
                start: 2,
                end: 40,
                rule: 0,
            },
            Finding {
                start: 10,
                end: 42,
                rule: 0,
            },
        ];
        cut_markers(hay, &mut f, &m.0, m.1);
        assert_eq!(
            f,
            vec![Finding {
                start: 2,
                end: 5,
                rule: 0
            }]
        );
        // Redacting twice is redacting once.
        let (corpus, _) = crate::corpus::generate_vec(2 << 20, 3, 0.05);
        let once = e.redact_to_vec(&corpus);
        assert!(once != corpus);
        assert!(
            e.redact_to_vec(&once) == once,
            "second pass changed the output"
        );
    }

    #[test]
    fn merge_keeps_disjoint_and_unions_overlaps() {
        let (_, _, rules) = parse_pack(PACK, "t").unwrap();
        let mut f = vec![
            Finding {
                start: 10,
                end: 20,
                rule: 0,
            },
            Finding {
                start: 0,
                end: 5,
                rule: 0,
            },
            Finding {
                start: 15,
                end: 25,
                rule: 1,
            },
            Finding {
                start: 25,
                end: 30,
                rule: 0,
            },
        ];
        merge(&mut f, &rules);
        assert_eq!(
            f,
            vec![
                Finding {
                    start: 0,
                    end: 5,
                    rule: 0
                },
                Finding {
                    start: 10,
                    end: 25,
                    rule: 1
                },
                Finding {
                    start: 25,
                    end: 30,
                    rule: 0
                },
            ]
        );
    }
}
