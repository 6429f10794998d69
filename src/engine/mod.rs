//! The redaction engine: prefilter → confirm → validate → replace, per batch of records.
//!
//! A batch is a buffer of whole records (lines). One prefilter pass over the whole batch finds
//! the records that contain a rule's keyword (or a long digit run); only there, and only for
//! the rules that hit, does a regex run. Records without findings are never copied: the
//! output of a batch is a list of [`Bytes`] slices of the input with the replacement texts in
//! between.

mod batch;
pub mod multiline;
pub mod prefilter;

pub use batch::{Batch, OVERLAP};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use regex_automata::{meta, util::captures::Captures, Input};

use crate::fingerprint::{Fingerprint, Keyring, Template};
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
    /// record, see [`Batch`]). Leaves in `scratch.findings` the merged findings
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
mod tests;
