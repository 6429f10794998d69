//! The redaction engine: prefilter → confirm → validate → replace, per batch of records.
//!
//! A batch is a buffer of whole records (lines). One prefilter pass over the whole batch finds
//! the records that contain a rule's keyword (or a long digit run); only there, and only for
//! the rules that hit, does a regex run. Records without findings are never copied: the
//! output of a batch is a list of [`Bytes`] slices of the input with the replacement texts in
//! between.

mod batch;
mod edges;
pub mod keywords;
pub mod multiline;
pub mod prefilter;

pub use batch::{Batch, OVERLAP};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use regex_automata::{meta, util::captures::Captures, Input};

use crate::fingerprint::{Fingerprint, Keyring, Template};
use crate::rules::Rule;
use edges::*;
use multiline::Carry;
use prefilter::Prefilter;

/// The rule that names private-key bodies found across records.
pub const MULTILINE_KEY_RULE: &str = "pem-private-key";
/// The rule that names `.netrc` passwords on the lines after their `machine` line.
pub const MULTILINE_NETRC_RULE: &str = "netrc-password";
/// The rule that names `curl -u USER:PASSWORD` on the continuation lines of a curl command.
pub const MULTILINE_CURL_RULE: &str = "curl-user-password";

/// One secret found: a byte span of the batch (or record) and the rule that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Start of the secret (byte offset).
    pub start: usize,
    /// End of the secret (exclusive).
    pub end: usize,
    /// Index of the rule in the matcher.
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
    /// Indices of [`MULTILINE_NETRC_RULE`] and [`MULTILINE_CURL_RULE`] when enabled: they
    /// also name the `.netrc` entries and `curl` commands spread over records.
    netrc_rule: Option<u16>,
    curl_rule: Option<u16>,
    /// The shape of logveil's own markers (from the template) and their longest length:
    /// a marker already in the input is never part of a finding, so that redacting
    /// redacted logs (a replayed archive, a second stage) changes nothing.
    markers: Option<Arc<(meta::Regex, usize)>>,
}

/// Per-thread mutable state: regex caches and reusable buffers. Made by
/// [`Matcher::scratch`]; never shared between threads.
pub struct Scratch {
    /// Per rule, made when the rule first gets a candidate: a cache for every rule of the
    /// library is ~30 allocations each, and most rules stay idle in a given stream.
    caches: Vec<Option<(meta::Cache, Captures)>>,
    /// Rule indices to run, per candidate record, as (record start, record end, rule).
    cands: Vec<(usize, usize, u16)>,
    /// Per rule: start of the last record queued for it (dedup without sorting).
    stamps: Vec<usize>,
    findings: Vec<Finding>,
    /// The scan window of a piece of an over-long record (context + piece + context).
    window: Vec<u8>,
}

impl Matcher {
    /// Compiles the rules' prefilter.
    pub fn new(rules: Vec<Rule>) -> Matcher {
        assert!(rules.len() < u16::MAX as usize, "too many rules");
        let prefilter = Prefilter::new(&rules);
        let index = |id: &str| rules.iter().position(|r| r.id == id).map(|i| i as u16);
        let key_rule = index(MULTILINE_KEY_RULE);
        let netrc_rule = index(MULTILINE_NETRC_RULE);
        let curl_rule = index(MULTILINE_CURL_RULE);
        Matcher {
            rules,
            prefilter,
            key_rule,
            netrc_rule,
            curl_rule,
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

    /// Compiles, on a background thread, the rule regexes no record has needed yet.
    ///
    /// Built-in regexes compile on first use, so that start-up is fast (see
    /// `rules::LazyRegex`); without this, the first record that wakes a rule would wait for
    /// its compile (~0.1 ms each, several at once early in a stream). A long-running stream
    /// calls this once: within ~50 ms of CPU every regex is ready, and a worker that needs
    /// one sooner compiles it (or waits for the one compile in flight) itself.
    pub fn compile_in_background(&self) {
        let pending: Vec<_> = self
            .rules
            .iter()
            .flat_map(|r| {
                [
                    Some(&r.regex),
                    r.reject_before.as_ref(),
                    r.reject_after.as_ref(),
                ]
            })
            .flatten()
            .filter(|re| !re.is_compiled())
            .cloned()
            .collect();
        if pending.is_empty() {
            return;
        }
        // If no thread can be started, compiling on first use still works.
        let _ = std::thread::Builder::new()
            .name("logveil-compile".into())
            .spawn(move || {
                for re in pending {
                    // An error is reported where the regex is used; built-ins have none.
                    let _ = re.force();
                }
            });
    }

    /// The rules, in index order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True when records carry state into the next ones (private keys one line per record,
    /// `.netrc` entries, continued `curl` commands): the pipeline then computes each batch's
    /// starting [`Carry`] in input order.
    pub fn tracks_multiline(&self) -> bool {
        self.key_rule.is_some() || self.netrc_rule.is_some() || self.curl_rule.is_some()
    }

    /// Per-thread scratch space for matching.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            caches: (0..self.rules.len()).map(|_| None).collect(),
            cands: Vec::new(),
            stamps: Vec::new(),
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

    /// Private-key bodies, `.netrc` and `curl` passwords spread over records (offset by
    /// `at`). Passwords go through their rule's checks (placeholders, value shape), as a
    /// single-record finding of the rule would; key body tokens are base64 by construction.
    fn walk_keys(&self, batch: &[u8], at: usize, carry: Carry, findings: &mut Vec<Finding>) {
        if !self.tracks_multiline() {
            return;
        }
        multiline::walk(carry, batch, |kind, span| {
            let rule = match kind {
                multiline::Block::Key => self.key_rule,
                multiline::Block::Netrc => self.netrc_rule,
                multiline::Block::Curl => self.curl_rule,
            };
            let Some(rule) = rule else { return };
            if kind != multiline::Block::Key
                && !self.rules[rule as usize].accepts(batch, span.clone())
            {
                return;
            }
            findings.push(Finding {
                start: at + span.start,
                end: at + span.end,
                rule,
            })
        });
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
        self.prefilter.scan(batch, |start, end, hit_rules| {
            // The hit's record is found only once a rule survives `followed_by`: most hits
            // of common keywords (`token`, `kafka`, `pat`) end there, and finding the
            // record's bounds is two scans over it.
            let mut mapped = rec_start <= start && start < rec_end;
            for &r in hit_rules {
                if mapped && stamps[r as usize] == rec_start {
                    continue;
                }
                let rule = &rules[r as usize];
                if !rule.followed_by.is_empty() {
                    let limit = if mapped { rec_end } else { batch.len() };
                    let mut window = &batch[end..limit.min(end + rule.followed_within)];
                    if !mapped {
                        // The window stops at the record's end, as the regex does.
                        if let Some(nl) = memchr::memchr(b'\n', window) {
                            window = &window[..nl];
                        }
                    }
                    if !followed(window, &rule.followed_by) {
                        continue;
                    }
                }
                if !mapped {
                    rec_start = memchr::memrchr(b'\n', &batch[..start]).map_or(0, |i| i + 1);
                    rec_end =
                        memchr::memchr(b'\n', &batch[start..]).map_or(batch.len(), |i| start + i);
                    mapped = true;
                    if stamps[r as usize] == rec_start {
                        continue;
                    }
                }
                stamps[r as usize] = rec_start;
                cands.push((rec_start, rec_end, r));
            }
        });
        // 2.+3. Confirm with the rule's regex on the record, validate the secret.
        for &(s, e, r) in scratch.cands.iter() {
            let rule = &self.rules[r as usize];
            let compiled = rule.regex.get();
            let (cache, caps) = scratch.caches[r as usize].get_or_insert_with(|| {
                (
                    compiled.regex.create_cache(),
                    compiled.regex.create_captures(),
                )
            });
            let hay = &batch[s..e];
            let mut input = Input::new(hay);
            loop {
                compiled.regex.search_captures_with(cache, &input, caps);
                let Some(m) = caps.get_match() else { break };
                if let Some(span) = caps.get_group(compiled.secret_group) {
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
    /// Index of the rule in the matcher.
    pub rule: u16,
    /// The secret's fingerprint under the active key.
    pub fingerprint: Fingerprint,
    /// Byte offset of the secret in the batch.
    pub offset: usize,
    /// Index of the secret's record in the batch (0 = the first, which continues the last
    /// record of the previous batch when that one was cut).
    pub record: u32,
    /// Byte offset of the secret in its record, counted from the record's start in this
    /// batch.
    pub in_record: u32,
    /// Length of the secret in bytes (in the record as written, escapes included).
    pub len: u32,
}

/// The result of redacting one batch.
#[derive(Debug, Default)]
pub struct Redacted {
    /// Output bytes, in order: slices of the input with replacement texts in between.
    pub chunks: Vec<Bytes>,
    /// The findings, in order.
    pub findings: Vec<Reported>,
    /// Number of records (lines) in the batch.
    pub records: u64,
    /// Bytes of input.
    pub input_len: usize,
    /// Time spent in the engine.
    pub elapsed: Duration,
    /// Bytes after the batch's last newline (the start of a record that goes on in the
    /// next batch), 0 when the batch ends with a newline.
    pub tail_len: usize,
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
    /// An engine over these rules, keys and template.
    pub fn new(mut matcher: Matcher, keyring: Keyring, template: Template) -> Engine {
        matcher.set_marker_shape(&template);
        Engine {
            matcher: Arc::new(matcher),
            keyring: Arc::new(keyring),
            template,
        }
    }

    /// The rules.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Per-thread scratch space.
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
            tail_len: memchr::memrchr(b'\n', data).map_or(data.len(), |i| data.len() - i - 1),
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
        // Record index and start of the record at `counted` (findings come in order).
        let (mut record, mut record_start, mut counted) = (0u32, 0usize, 0usize);
        for f in findings {
            let rule = &self.matcher.rules[f.rule as usize];
            let fp = key.fingerprint(&hay[f.start..f.end]);
            // The part of the finding inside this batch.
            let (start, end) = (f.start.max(lo) - lo, f.end.min(lo + data.len()) - lo);
            if f.start >= lo {
                for nl in memchr::memchr_iter(b'\n', &data[counted..start]) {
                    record += 1;
                    record_start = counted + nl + 1;
                }
                counted = start;
                out.findings.push(Reported {
                    rule: f.rule,
                    fingerprint: fp,
                    offset: start,
                    record,
                    in_record: (start - record_start) as u32,
                    len: (f.end - f.start) as u32,
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
