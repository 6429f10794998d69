//! Generated-input (property) tests: invariants that must hold for every input, checked on
//! realistic but hostile log records made up by the generators below.
//!
//! Engine level (one engine, built once, all enabled built-in rules, a fixed test key):
//!
//! - (a) `engine_keeps_the_record_count`: as many records (lines) come out as went in.
//! - (b) `engine_only_replaces_spans_with_markers`: every output record is its input record
//!   with some non-empty spans replaced by markers; markers already in the input survive.
//! - (c) `engine_keeps_json_records_valid`: a JSON record (object, array or string; a bare
//!   number on a line is text) stays JSON, with the same tree except for string values and
//!   keys that now hold a marker (JSON escaped inside a string is compared the same way, level
//!   by level); null, booleans and numbers never change.
//! - (d) `engine_is_idempotent`: redacting redacted output changes nothing.
//! - (e) `engine_never_nests_markers`: no marker inside a marker's text.
//! - (f) `engine_redacts_every_private_key_body_line`: a private key printed one line per
//!   record (bare, indented, behind a syslog/logger prefix, in Docker JSON; complete or
//!   truncated) has every base64 body line redacted.
//!
//! CLI level (spawns the built binary):
//!
//! - `cli_stdin_in_pieces_equals_one_write_and_file_run`: stdin written in random pieces with
//!   small pauses, stdin written at once, and `logveil run FILE` give the same bytes, exit 0.
//! - `cli_file_run_equals_the_engine`: the CLI's output is the engine's output for the same
//!   bytes (batching never changes a result).
//!
//! Case counts: [`DEFAULT_ENGINE_CASES`] per engine property and [`DEFAULT_CLI_CASES`] per
//! CLI property; `LOGVEIL_PROPTEST_CASES=N` runs N engine cases and N/8 CLI cases. The seed
//! is fixed per property (reproducible runs); `LOGVEIL_PROPTEST_SEED=<u64>` picks another one,
//! `LOGVEIL_PROPTEST_SEED=random` a fresh one per run (proptest's `PROPTEST_RNG_SEED` is
//! honoured when `LOGVEIL_PROPTEST_SEED` is unset). Failures are never persisted to files.
//!
//! Security: generated inputs carry fake but realistic secrets. Nothing here prints one:
//! inputs are wrapped in [`Doc`], whose `Debug` masks every run of 8+ token characters to its
//! first 4 characters and its length (words of the generators' own vocabulary and
//! logveil's markers stay readable), and every failure message goes through [`masked`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use logveil::engine::{Engine, Matcher};
use logveil::fingerprint::{Key, Keyring, Template};
use logveil::rules::RuleSet;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use regex_automata::meta::Regex;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

/// The README's test-vector key (32 bytes 00..1f), for the engine and the CLI alike.
const KEY_TEXT: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_ID: &str = "k1";

const DEFAULT_ENGINE_CASES: u32 = 512;
const DEFAULT_CLI_CASES: u32 = 24;
const DEFAULT_SEED: u64 = 0x6c6f_6776_6569_6c00;
/// A CLI run that takes longer than this is killed and counts as a failure.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

fn env_cases() -> Option<u32> {
    let v = std::env::var("LOGVEIL_PROPTEST_CASES").ok()?;
    Some(
        v.trim()
            .parse()
            .expect("LOGVEIL_PROPTEST_CASES must be a number"),
    )
}

fn engine_cases() -> u32 {
    env_cases().unwrap_or(DEFAULT_ENGINE_CASES).max(1)
}

fn cli_cases() -> u32 {
    env_cases().map_or(DEFAULT_CLI_CASES, |n| (n / 8).max(1))
}

/// The proptest configuration of one property; `salt` gives each property its own inputs.
fn config(cases: u32, salt: u64, max_shrink_time_ms: u32) -> Config {
    let base = Config::default();
    let rng_seed = match std::env::var("LOGVEIL_PROPTEST_SEED") {
        Ok(s) if s.trim() == "random" => RngSeed::Random,
        Ok(s) => RngSeed::Fixed(
            s.trim()
                .parse::<u64>()
                .expect("LOGVEIL_PROPTEST_SEED must be a u64 or 'random'")
                ^ salt,
        ),
        Err(_) if std::env::var_os("PROPTEST_RNG_SEED").is_some() => base.rng_seed,
        Err(_) => RngSeed::Fixed(DEFAULT_SEED ^ salt),
    };
    Config {
        cases,
        failure_persistence: None,
        max_shrink_time: max_shrink_time_ms,
        rng_seed,
        ..base
    }
}

// ------------------------------------------------------------------------------------------
// The engine under test
// ------------------------------------------------------------------------------------------

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let rules = RuleSet::builtin()
            .expect("the built-in rules load")
            .enabled();
        let key = Key::parse(KEY_ID, KEY_TEXT, "test key").expect("the test key parses");
        Engine::new(
            Matcher::new(rules),
            Keyring::single(key),
            Template::default(),
        )
    })
}

fn redact(input: &[u8]) -> Vec<u8> {
    engine().redact_to_vec(input)
}

/// The shape of a marker of the default template, under any rule and key id.
fn marker_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\[REDACTED:[a-z0-9-]+:[A-Za-z0-9._-]+:[0-9a-f]{16}\]")
            .expect("marker regex compiles")
    })
}

fn has_marker(b: &[u8]) -> bool {
    marker_re().is_match(b)
}

/// Records: the pieces between `\n`s; a final piece without `\n` is a record, an empty one
/// after the last `\n` is not.
fn records(b: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    if v.last().is_some_and(|r| r.is_empty()) {
        v.pop();
    }
    v
}

// ------------------------------------------------------------------------------------------
// Masking: what failure messages and counterexamples may show
// ------------------------------------------------------------------------------------------

/// Bytes that make up a "token run" (a candidate secret): masked when 8 or longer.
fn is_run_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-.!#$%*@~^".contains(&b)
}

/// Words the generators use for structure (field names, log words, paths). A run made only
/// of these (joined by `/ . _ - @ +`) is shown as it is. No generated secret is made of them.
fn vocabulary() -> &'static HashSet<String> {
    static V: OnceLock<HashSet<String>> = OnceLock::new();
    V.get_or_init(|| {
        let lists: &[&[&str]] = &[
            WORDS,
            SECRET_KEYS,
            ORDINARY_KEYS,
            HOSTS,
            PROGS,
            USERS,
            PATHS,
            DIRS,
            LEVELS,
            SERVICES,
            ENV_PLAIN,
            AGENTS,
            METHODS,
            MONTHS,
            VOCAB_EXTRA,
        ];
        let mut set = HashSet::new();
        for list in lists {
            for item in *list {
                for part in item.split(|c: char| !c.is_ascii_alphanumeric()) {
                    if part.len() >= 2 {
                        set.insert(part.to_ascii_lowercase());
                    }
                }
            }
        }
        set
    })
}

fn is_vocabulary(run: &[u8]) -> bool {
    let v = vocabulary();
    let body: &[u8] = {
        let end = run.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        &run[..end]
    };
    let mut any = false;
    for part in body.split(|b| b"/._-@+".contains(b)) {
        if part.is_empty() {
            continue;
        }
        let Ok(s) = std::str::from_utf8(part) else {
            return false;
        };
        let digit = part.len() == 1 && part[0].is_ascii_digit();
        if !digit && !v.contains(&s.to_ascii_lowercase()) {
            return false;
        }
        any = true;
    }
    any
}

/// `2026-11-02`, `2026-11-02T10` or `02/Nov/2026` (the date part of a timestamp).
fn is_timestamp(run: &[u8]) -> bool {
    [&b"dddd-dd-ddTdd"[..], b"dddd-dd-dd", b"dd/WWW/dddd"]
        .iter()
        .any(|shape| {
            run.len() == shape.len()
                && run.iter().zip(*shape).all(|(&c, &s)| match s {
                    b'd' => c.is_ascii_digit(),
                    b'W' => c.is_ascii_alphabetic(),
                    _ => c == s,
                })
        })
}

/// `b` as printable text with every secret-like run cut: a run of 8 or more bytes of
/// `[A-Za-z0-9+/_.!#$%*@~^-]` (with its trailing `=` padding) becomes its first 4 characters,
/// `…` and its length, unless it is vocabulary or a date. Markers stay readable. Control
/// bytes and invalid UTF-8 are shown as `<CR>`, `<LF>`, `<TAB>`, `<xNN>`.
fn masked(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 16);
    let mut pos = 0;
    for m in marker_re().find_iter(b) {
        mask_plain(&b[pos..m.start()], &mut out);
        out.push_str(&String::from_utf8_lossy(&b[m.range()]));
        pos = m.end();
    }
    mask_plain(&b[pos..], &mut out);
    out
}

fn mask_plain(b: &[u8], out: &mut String) {
    let mut i = 0;
    while i < b.len() {
        // A JSON/C escape is shown whole, so that `\nMIIE…` masks the run after it.
        if b[i] == b'\\' && i + 1 < b.len() && b"nrtbf\"\\/".contains(&b[i + 1]) {
            out.push('\\');
            out.push(b[i + 1] as char);
            i += 2;
            continue;
        }
        if is_run_byte(b[i]) {
            let start = i;
            while i < b.len() && is_run_byte(b[i]) {
                i += 1;
            }
            while i < b.len() && b[i] == b'=' {
                i += 1;
            }
            let run = &b[start..i];
            if run.len() >= 8 && !is_vocabulary(run) && !is_timestamp(run) {
                out.push_str(&String::from_utf8_lossy(&run[..4]));
                out.push_str(&format!("…({})", run.len()));
            } else {
                out.push_str(&String::from_utf8_lossy(run));
            }
            continue;
        }
        match b[i] {
            b'\n' => out.push_str("<LF>"),
            b'\r' => out.push_str("<CR>"),
            b'\t' => out.push_str("<TAB>"),
            c @ 0x20..=0x7e => out.push(c as char),
            c if c < 0x80 => out.push_str(&format!("<x{c:02x}>")),
            _ => {
                // A valid UTF-8 character is shown, anything else escaped byte by byte.
                let len = match b[i] {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => 1,
                };
                match b.get(i..i + len).and_then(|s| std::str::from_utf8(s).ok()) {
                    Some(s) if len > 1 => {
                        out.push_str(s);
                        i += len;
                        continue;
                    }
                    _ => out.push_str(&format!("<x{:02x}>", b[i])),
                }
            }
        }
        i += 1;
    }
}

/// [`masked`], cut in the middle when longer than `limit` characters.
fn shown(b: &[u8], limit: usize) -> String {
    let m = masked(b);
    let n = m.chars().count();
    if n <= limit {
        return m;
    }
    let head: String = m.chars().take(limit * 2 / 3).collect();
    let tail: String = m.chars().skip(n - limit / 3).collect();
    format!(
        "{head} …[{} masked chars omitted]… {tail}",
        n - head.chars().count() - limit / 3
    )
}

/// Where two outputs first differ, masked, with some context.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let rec = a[..at].iter().filter(|&&c| c == b'\n').count() + 1;
    let lo = at.saturating_sub(120);
    let hi = |v: &[u8]| (at + 120).min(v.len());
    format!(
        "lengths {} and {}; first difference at byte {at} (record {rec}):\n    first:  {}\n    second: {}",
        a.len(),
        b.len(),
        shown(&a[lo..hi(a)], 400),
        shown(&b[lo..hi(b)], 400)
    )
}

/// A generated input. Its `Debug` (what proptest prints as the counterexample) is masked.
#[derive(Clone)]
struct Doc(Vec<u8>);

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recs = records(&self.0);
        writeln!(
            f,
            "Doc({} bytes, {} records, {}) [masked]",
            self.0.len(),
            recs.len(),
            if self.0.is_empty() || self.0.ends_with(b"\n") {
                "final newline"
            } else {
                "no final newline"
            }
        )?;
        for (i, r) in recs.iter().enumerate() {
            writeln!(f, "  {:>3}| {}", i + 1, shown(r, 1500))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// The invariants, as checks that return a masked explanation
// ------------------------------------------------------------------------------------------

/// (a) Same number of records.
fn check_record_count(input: &[u8], output: &[u8]) -> Result<(), String> {
    let (i, o) = (records(input).len(), records(output).len());
    if i == o {
        return Ok(());
    }
    Err(format!(
        "{i} records in, {o} out\n{}",
        first_difference(input, output)
    ))
}

/// Output pieces: literal text and markers, alternating, starting and ending with literal.
fn split_markers(out: &[u8]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    let (mut lits, mut marks) = (Vec::new(), Vec::new());
    let mut pos = 0;
    for m in marker_re().find_iter(out) {
        lits.push(&out[pos..m.start()]);
        marks.push(&out[m.range()]);
        pos = m.end();
    }
    lits.push(&out[pos..]);
    (lits, marks)
}

/// True when `input` is `L0 S1 L1 … Sk Lk` (the literal pieces of `output` with a non-empty
/// span `Si` in place of each marker). A marker that was already in the input matches itself,
/// as a span equal to its own text. Greedy leftmost placement decides this exactly.
/// On failure returns the index of the literal piece that could not be placed.
fn align(input: &[u8], output: &[u8]) -> Result<(), usize> {
    let (lits, _) = split_markers(output);
    let k = lits.len() - 1;
    if k == 0 {
        return if input == lits[0] { Ok(()) } else { Err(0) };
    }
    if !input.starts_with(lits[0]) {
        return Err(0);
    }
    let mut pos = lits[0].len();
    for (i, lit) in lits.iter().enumerate().skip(1) {
        // At least one byte of secret first.
        let from = pos + 1;
        if i == k {
            return if input.len() >= from + lit.len() && input.ends_with(lit) {
                Ok(())
            } else {
                Err(i)
            };
        }
        if from > input.len() {
            return Err(i);
        }
        match memchr::memmem::find(&input[from..], lit) {
            Some(at) => pos = from + at + lit.len(),
            None => return Err(i),
        }
    }
    unreachable!("the last piece returns")
}

/// Markers of the input that are missing from the output (counted with multiplicity).
fn lost_markers(input: &[u8], output: &[u8]) -> Vec<String> {
    let mut count: HashMap<&[u8], isize> = HashMap::new();
    for m in marker_re().find_iter(input) {
        *count.entry(&input[m.range()]).or_default() += 1;
    }
    for m in marker_re().find_iter(output) {
        if let Some(c) = count.get_mut(&output[m.range()]) {
            *c -= 1;
        }
    }
    count
        .into_iter()
        .filter(|&(_, c)| c > 0)
        .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// (b) Each output record is its input record with spans replaced by markers, and the
/// input's own markers survive. When the record counts differ (that is (a)'s failure) the
/// whole outputs are aligned instead.
fn check_only_spans_replaced(input: &[u8], output: &[u8]) -> Result<(), String> {
    let (ri, ro) = (records(input), records(output));
    let pairs: Vec<(usize, &[u8], &[u8])> = if ri.len() == ro.len() {
        ri.iter()
            .zip(&ro)
            .enumerate()
            .map(|(n, (a, b))| (n + 1, *a, *b))
            .collect()
    } else {
        vec![(0, input, output)]
    };
    for (n, i, o) in pairs {
        let what = if n == 0 {
            "the whole input (record counts differ)".to_string()
        } else {
            format!("record {n}")
        };
        if let Err(piece) = align(i, o) {
            let (lits, _) = split_markers(o);
            return Err(format!(
                "{what}: the output is not the input with spans replaced by markers \
                 (literal piece {piece} of {}, {}, not found in place)\n    in:  {}\n    out: {}",
                lits.len(),
                shown(lits[piece], 200),
                shown(i, 2000),
                shown(o, 2000)
            ));
        }
        let lost = lost_markers(i, o);
        if !lost.is_empty() {
            return Err(format!(
                "{what}: markers of the input were changed: {lost:?}\n    in:  {}\n    out: {}",
                shown(i, 2000),
                shown(o, 2000)
            ));
        }
    }
    Ok(())
}

/// A JSON value as parsed, with object members in order (duplicates kept).
enum J {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    S(String),
    A(Vec<J>),
    O(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<J, E> {
        Ok(J::I(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<J, E> {
        Ok(J::U(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<J, E> {
        Ok(J::F(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<J, E> {
        Ok(J::S(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<J, E> {
        Ok(J::S(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(J::A(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<J, A::Error> {
        let mut v = Vec::new();
        while let Some((k, x)) = m.next_entry::<String, J>()? {
            v.push((k, x));
        }
        Ok(J::O(v))
    }
}

impl J {
    fn kind(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "boolean",
            J::I(_) | J::U(_) | J::F(_) => "number",
            J::S(_) => "string",
            J::A(_) => "array",
            J::O(_) => "object",
        }
    }
    fn scalar_text(&self) -> String {
        match self {
            J::Null => "null".into(),
            J::Bool(b) => b.to_string(),
            J::I(n) => n.to_string(),
            J::U(n) => n.to_string(),
            J::F(x) => format!("{x:?}"),
            J::S(s) => masked(s.as_bytes()),
            J::A(_) => "[…]".into(),
            J::O(_) => "{…}".into(),
        }
    }
}

/// True when `s` is exactly one marker (maybe with blanks or a line end around it).
fn is_one_marker(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("[REDACTED:") && t.ends_with(']') && t.matches("[REDACTED:").count() == 1
}

/// An object or array escaped inside a JSON string (container logs), if `s` is one.
fn inner_json(s: &str) -> Option<J> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<J>(s).ok()
}

/// Compares the input tree `a` with the output tree `b`: equal, except strings that hold a
/// marker in `b` (which must be strings in `a`). JSON escaped in a string is compared the same
/// way, one level deeper.
fn compare_json(a: &J, b: &J, path: &mut String, depth: usize) -> Result<(), String> {
    match (a, b) {
        (J::S(x), J::S(y)) => {
            if x == y {
                return Ok(());
            }
            // A string replaced whole (the value of a secret-named field) holds nothing
            // to compare any more, whatever it held.
            if is_one_marker(y) {
                return Ok(());
            }
            if let Some(inner_a) = inner_json(x) {
                let Ok(inner_b) = serde_json::from_str::<J>(y) else {
                    return Err(format!(
                        "at {path}: the JSON escaped {} level(s) deep in this string no longer \
                         parses\n    in:  {}\n    out: {}",
                        depth + 1,
                        shown(x.as_bytes(), 1500),
                        shown(y.as_bytes(), 1500)
                    ));
                };
                let mut p = format!("{path}<json>");
                return compare_json(&inner_a, &inner_b, &mut p, depth + 1);
            }
            if has_marker(y.as_bytes()) {
                Ok(())
            } else {
                Err(format!(
                    "at {path} (depth {depth}): a string changed without a marker: {} -> {}",
                    shown(x.as_bytes(), 300),
                    shown(y.as_bytes(), 300)
                ))
            }
        }
        (J::A(xs), J::A(ys)) => {
            if xs.len() != ys.len() {
                return Err(format!(
                    "at {path} (depth {depth}): array of {} elements became {}",
                    xs.len(),
                    ys.len()
                ));
            }
            for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                compare_json(x, y, path, depth)?;
                path.truncate(len);
            }
            Ok(())
        }
        (J::O(xs), J::O(ys)) => {
            if xs.len() != ys.len() {
                return Err(format!(
                    "at {path} (depth {depth}): object of {} members became {}",
                    xs.len(),
                    ys.len()
                ));
            }
            for ((kx, x), (ky, y)) in xs.iter().zip(ys) {
                if kx != ky && !has_marker(ky.as_bytes()) {
                    return Err(format!(
                        "at {path} (depth {depth}): key {} became {} without a marker",
                        masked(kx.as_bytes()),
                        masked(ky.as_bytes())
                    ));
                }
                let len = path.len();
                path.push('.');
                path.push_str(&masked(kx.as_bytes()));
                compare_json(x, y, path, depth)?;
                path.truncate(len);
            }
            Ok(())
        }
        (J::Null, J::Null) => Ok(()),
        (J::Bool(x), J::Bool(y)) if x == y => Ok(()),
        (J::I(x), J::I(y)) if x == y => Ok(()),
        (J::U(x), J::U(y)) if x == y => Ok(()),
        (J::F(x), J::F(y)) if x.to_bits() == y.to_bits() => Ok(()),
        _ => Err(format!(
            "at {path} (depth {depth}): {} {} became {} {}",
            a.kind(),
            a.scalar_text(),
            b.kind(),
            b.scalar_text()
        )),
    }
}

/// (c) JSON records (objects, arrays, strings) stay JSON, with equal trees outside redacted
/// strings.
fn check_json(input: &[u8], output: &[u8]) -> Result<(), String> {
    let (ri, ro) = (records(input), records(output));
    if ri.len() != ro.len() {
        return Ok(()); // (a)'s failure; records cannot be paired
    }
    for (n, (i, o)) in ri.iter().zip(&ro).enumerate() {
        let Ok(a) = serde_json::from_slice::<J>(i) else {
            continue;
        };
        // A record that is a bare number, boolean or null is a line of text that happens to
        // parse as JSON (a card number alone on a line must still be redacted).
        if !matches!(a, J::O(_) | J::A(_) | J::S(_)) {
            continue;
        }
        let b = match serde_json::from_slice::<J>(o) {
            Ok(b) => b,
            Err(e) => {
                return Err(format!(
                    "record {}: JSON in, not JSON out ({e})\n    in:  {}\n    out: {}",
                    n + 1,
                    shown(i, 2000),
                    shown(o, 2000)
                ))
            }
        };
        let mut path = "$".to_string();
        if let Err(e) = compare_json(&a, &b, &mut path, 0) {
            return Err(format!(
                "record {}: {e}\n    in:  {}\n    out: {}",
                n + 1,
                shown(i, 2000),
                shown(o, 2000)
            ));
        }
    }
    Ok(())
}

/// Occurrences of a marker inside the text of another (broken) marker.
fn nested_markers(b: &[u8]) -> Vec<usize> {
    const OPEN: &[u8] = b"[REDACTED:";
    let mut found = Vec::new();
    for s in memchr::memmem::find_iter(b, OPEN) {
        let whole = marker_re().find(
            regex_automata::Input::new(b)
                .range(s..)
                .anchored(regex_automata::Anchored::Yes),
        );
        if whole.is_some() {
            continue;
        }
        let rest = &b[s + OPEN.len()..(s + OPEN.len() + 200).min(b.len())];
        let end = rest
            .iter()
            .position(|&c| c == b']' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        if memchr::memmem::find(&rest[..end], OPEN).is_some() {
            found.push(s);
        }
    }
    found
}

/// (e) No nested marker in the output (unless the input had one already).
fn check_no_nested(input: &[u8], output: &[u8]) -> Result<(), String> {
    if !nested_markers(input).is_empty() {
        return Ok(());
    }
    let found = nested_markers(output);
    let Some(&at) = found.first() else {
        return Ok(());
    };
    let rec = output[..at].iter().filter(|&&c| c == b'\n').count();
    let r = records(output)[rec];
    let ri = records(input).get(rec).copied().unwrap_or_default();
    Err(format!(
        "{} nested marker(s), the first in output record {}\n    in:  {}\n    out: {}",
        found.len(),
        rec + 1,
        shown(ri, 2000),
        shown(r, 2000)
    ))
}

// ------------------------------------------------------------------------------------------
// Vocabulary of the generators
// ------------------------------------------------------------------------------------------

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const HOSTS: &[&str] = &[
    "web-01",
    "web-02",
    "api-7f9c",
    "worker-3",
    "db-primary",
    "edge-fra1",
    "bastion",
    "ip-10-0-3-17",
];
const PROGS: &[&str] = &[
    "app",
    "nginx",
    "kubelet",
    "dockerd",
    "CRON",
    "systemd",
    "postfix/smtpd",
    "api-server",
];
const USERS: &[&str] = &[
    "alice", "bob", "deploy", "root", "admin", "ubuntu", "ci", "www-data", "postgres",
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
    "/",
    "/login",
    "/api/v1/orders",
    "/api/v2/users/me",
    "/oauth/token",
    "/healthz",
    "/static/app.js",
    "/api/v1/search",
    "/callback",
    "/webhooks/stripe",
    "/graphql",
    "/wp-login.php",
];
const DIRS: &[&str] = &[
    "/home/alice",
    "/app",
    "/var/www/html",
    "/root",
    "/opt/app/releases/current",
    "/srv/data",
    "/tmp",
    "/",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
const STATUS: &[&str] = &[
    "200", "201", "204", "301", "302", "304", "400", "401", "403", "404", "500", "502", "503",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "kube-probe/1.30",
    "Go-http-client/2.0",
    "python-requests/2.32.3",
    "-",
];
const LEVELS: &[&str] = &[
    "DEBUG", "INFO", "WARN", "ERROR", "TRACE", "FATAL", "info", "error",
];
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "client_secret",
    "private_key",
    "access_token",
    "refresh_token",
    "db_password",
    "clientSecret",
    "X-Api-Key",
    "credentials",
    "cookie",
    "Password",
    "SECRET",
    "auth_token",
];
const ORDINARY_KEYS: &[&str] = &[
    "user",
    "user_id",
    "id",
    "msg",
    "message",
    "level",
    "ts",
    "duration_ms",
    "status",
    "path",
    "method",
    "host",
    "count",
    "ratio",
    "trace_id",
    "span_id",
    "tokenizer",
    "password_reset",
    "tokens_used",
    "order_id",
    "amount",
    "lat",
    "lon",
    "pid",
    "version",
    "items",
    "error",
    "retry",
    "enabled",
    "tags",
    "meta",
    "card_last4",
];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "logged",
    "in",
    "cache",
    "miss",
    "for",
    "key",
    "retrying",
    "upstream",
    "call",
    "connection",
    "refused",
    "timeout",
    "after",
    "payment",
    "authorised",
    "session",
    "expired",
    "token",
    "password",
    "reset",
    "requested",
    "tokenizer",
    "loaded",
    "entries",
    "secret",
    "rotation",
    "scheduled",
    "failed",
    "to",
    "connect",
    "database",
    "starting",
    "worker",
    "shutting",
    "down",
    "health",
    "check",
    "ok",
    "error",
    "invalid",
    "value",
    "at",
    "line",
    "the",
    "of",
    "new",
    "order",
    "created",
    "refreshing",
    "with",
    "from",
    "is",
    "not",
    "allowed",
    "queue",
    "depth",
    "bytes",
    "sent",
    "received",
    "handshake",
    "certificate",
    "verify",
    "denied",
    "accepted",
    "closing",
    "opened",
    "processing",
    "batch",
    "done",
    "config",
    "reloaded",
    "deprecated",
    "header",
];
const ENV_PLAIN: &[&str] = &[
    "LANG=en_US.UTF-8",
    "TERM=xterm-256color",
    "HOSTNAME=api-7f9c",
    "SHLVL=1",
    "JAVA_OPTS=-Xmx512m",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SHELL=/bin/bash",
    "NODE_ENV=production",
];
/// Other structural words of the generators (so that masked counterexamples stay readable).
const VOCAB_EXTRA: &[&str] = &[
    "redacted begin end private key rsa ec openssh encrypted dsa certificate public proc type",
    "dek info aes cbc http https www com org net example acme java python py util lang",
    "illegal state exception caused by postgresql psql fatal authentication handler service",
    "internal server main exec nio thread traceback most recent last file module connect",
    "psycopg2 keyerror value error stdout stderr log stream time kubernetes namespace prod pod",
    "export declare github gitlab bearer basic api v1 v2 users me oauth login healthz static",
    "app js search callback webhooks stripe graphql wp php home var html opt releases current",
    "srv data tmp root usr local bin sbin xterm 256color utf en us production node env xmx512m",
    "bash shell hostname shlvl term lang path db postgres mysql redis cache jdbc sslmode",
    "require mongodb amqp rabbitmq smtp mail service account project type iam gserviceaccount",
    "sudo tty pts pwd command systemctl restart nginx apt get update curl env migrate cat etc",
    "shadow sshd accepted publickey port ssh2 sha256 failed invalid pam unix session opened",
    "uid dfs datanode packetresponder receiving block src dest namesystem addstoredblock",
    "blockmap updated added size served terminating chrome safari mozilla x11 linux x86 64",
    "applewebkit khtml like gecko kube probe go client python requests get post put delete",
    "patch head options proxy fcgi pid tid client ah01071 got message warning retry",
    "authorization cookie csrftoken sessionid x-api-key api-key x-auth-token set-cookie",
    "samples payload localhost internal svc cluster txt json yaml yml toml ini conf",
    "k1 k2 key-2026q1 fields field jwt token aws access github-classic-token bearer-token",
    "pem-private-key field-value-json generic-token-assignment",
    "npm slack bot stripe aws gh mysql redis database url api base access id http x86 64",
    "github_token gh_token db_password postgres_password mysql_root_password redis_password",
    "aws_access_key_id aws_secret_access_key slack_bot_token stripe_secret_key npm_token",
    "database_url redis_url api_token secret_key_base",
];

// ------------------------------------------------------------------------------------------
// Small helpers for the generators
// ------------------------------------------------------------------------------------------

type Lines = Vec<Vec<u8>>;

fn one(s: impl Into<Vec<u8>>) -> Lines {
    vec![s.into()]
}

fn pick(xs: &'static [&'static str]) -> BoxedStrategy<&'static str> {
    prop::sample::select(xs).boxed()
}

/// A string matching `pattern` (built once per strategy, shrinks character by character).
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .unwrap_or_else(|e| panic!("bad generator regex {pattern}: {e}"))
        .boxed()
}

/// SplitMix64, to expand a (shrinkable) seed into long filler.
struct Mix(u64);

impl Mix {
    fn step(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.step() % n
    }
    fn byte_of(&mut self, set: &[u8]) -> u8 {
        set[self.below(set.len() as u64) as usize]
    }
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A logfmt value: bare when it can be, else quoted with `\"`, `\\` and `\n` escapes.
fn logfmt_value(v: &str, force_quotes: bool) -> String {
    let bare = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\');
    if bare && !force_quotes {
        return v.to_string();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends the Luhn check digit to `prefix` (digits only).
fn luhn_complete(prefix: &str) -> String {
    let mut sum = 0;
    for (i, b) in prefix.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

// ------------------------------------------------------------------------------------------
// Secrets (fake, of the real shapes) and ordinary values
// ------------------------------------------------------------------------------------------

fn github_token() -> BoxedStrategy<String> {
    (
        pick(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
        re("[A-Za-z0-9]{30}"),
    )
        .prop_map(|(p, body)| {
            let check = logveil::rules::validators::base62_6(crc32fast::hash(body.as_bytes()));
            format!("{p}{body}{}", String::from_utf8_lossy(&check))
        })
        .boxed()
}

fn aws_key_id() -> BoxedStrategy<String> {
    re("(AKIA|ASIA)[A-Z2-7]{16}")
}

fn aws_secret() -> BoxedStrategy<String> {
    re("[A-Za-z0-9/+]{40}")
}

fn jwt() -> BoxedStrategy<String> {
    (
        pick(&["HS256", "RS256", "ES256"]),
        re("[a-z0-9]{3,12}"),
        1_600_000_000u64..1_900_000_000,
        re("[A-Za-z0-9_-]{43}"),
    )
        .prop_map(|(alg, sub, iat, sig)| {
            let e = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let h = e.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let p = e.encode(format!(
                r#"{{"sub":"{sub}","iat":{iat},"exp":{}}}"#,
                iat + 3600
            ));
            format!("{h}.{p}.{sig}")
        })
        .boxed()
}

fn password() -> BoxedStrategy<String> {
    prop_oneof![
        4 => re("[A-Za-z0-9!#$%*@._+-]{8,24}"),
        1 => re("[A-Za-z0-9]{8,10}[\"\\\\ ][A-Za-z0-9]{8,10}"),
    ]
    .boxed()
}

fn card() -> BoxedStrategy<String> {
    (
        prop_oneof![re("4[0-9]{14}"), re("5[1-5][0-9]{13}")],
        pick(&["", "", " ", "-"]),
    )
        .prop_map(|(prefix, sep)| {
            let n = luhn_complete(&prefix);
            let groups: Vec<&str> = (0..4).map(|i| &n[i * 4..i * 4 + 4]).collect();
            groups.join(sep)
        })
        .boxed()
}

fn basic_credentials() -> BoxedStrategy<String> {
    (pick(USERS), password())
        .prop_map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        .boxed()
}

fn dsn() -> BoxedStrategy<String> {
    (
        pick(&[
            "postgres",
            "postgresql",
            "mysql",
            "mongodb",
            "redis",
            "amqp",
        ]),
        pick(USERS),
        password(),
        pick(&[
            "db",
            "db-primary.internal",
            "10.0.3.17",
            "cache",
            "rabbitmq",
        ]),
        1024u16..65535,
    )
        .prop_map(|(scheme, u, p, host, port)| {
            format!("{scheme}://{u}:{}@{host}:{port}/app", url_encode(&p))
        })
        .boxed()
}

fn secret() -> BoxedStrategy<String> {
    prop_oneof![
        3 => github_token(),
        1 => re("github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
        2 => aws_key_id(),
        1 => aws_secret(),
        3 => jwt(),
        1 => re("xox[bpa]-[0-9]{11}-[0-9]{12}-[A-Za-z0-9]{24}"),
        2 => re("(sk|rk)_live_[A-Za-z0-9]{24}"),
        1 => re("AIza[A-Za-z0-9_-]{35}"),
        1 => re("sk-proj-[A-Za-z0-9_-]{48}"),
        1 => re("glpat-[A-Za-z0-9_-]{20}"),
        1 => re("npm_[A-Za-z0-9]{36}"),
        4 => password(),
        1 => card(),
        1 => basic_credentials(),
        1 => re("[0-9a-f]{32}"),
    ]
    .boxed()
}

fn uuid() -> BoxedStrategy<String> {
    re("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
}

fn ip() -> BoxedStrategy<String> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}"))
        .boxed()
}

fn iso_ts() -> BoxedStrategy<String> {
    (1u32..=28, 0u32..24, 0u32..60, 0u32..60, 0u32..1000)
        .prop_map(|(d, h, m, s, ms)| format!("2026-11-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"))
        .boxed()
}

fn syslog_ts() -> BoxedStrategy<String> {
    (pick(MONTHS), 1u32..=28, 0u32..24, 0u32..60, 0u32..60)
        .prop_map(|(mo, d, h, m, s)| format!("{mo} {d:>2} {h:02}:{m:02}:{s:02}"))
        .boxed()
}

/// Things that look a bit like secrets but are not: ids, digests, numbers.
fn ordinary() -> BoxedStrategy<String> {
    prop_oneof![
        6 => pick(WORDS).prop_map(str::to_owned),
        2 => (0u64..100_000).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        2 => uuid(),
        1 => re("[0-9a-f]{32}"),
        1 => re("[0-9a-f]{40}"),
        1 => re("sha256:[0-9a-f]{64}"),
        1 => pick(DIRS).prop_map(str::to_owned),
        1 => ip(),
        1 => (0u32..5000).prop_map(|n| format!("{n}ms")),
        1 => any::<i64>().prop_map(|n| format!("blk_{n}")),
        1 => pick(&["0.4221165755827173", "1e-7", "3.14", "-0.0", "6.02214076e23"])
            .prop_map(str::to_owned),
        1 => (0.0f64..1.0).prop_map(|f| f.to_string()),
        1 => re("[A-Za-z0-9+/]{22}=="),
        1 => re("4[0-9]{15}"),
        1 => iso_ts(),
        1 => pick(&["true", "false", "null", "-", ""]).prop_map(str::to_owned),
        1 => pick(USERS).prop_map(|u| format!("{u}@example.com")),
    ]
    .boxed()
}

fn placeholder() -> BoxedStrategy<String> {
    pick(&[
        "${DB_PASSWORD}",
        "$API_TOKEN",
        "{{ .Values.password }}",
        "<your-token>",
        "********",
        "xxxxxxxx",
        "null",
        "none",
        "",
        "changeme",
        "REDACTED",
        "%(password)s",
        "[redacted]",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

/// A marker as an earlier run of logveil (or another key) would have written it.
fn marker() -> BoxedStrategy<String> {
    (
        prop_oneof![
            4 => pick(&[
                "github-classic-token",
                "bearer-token",
                "jwt",
                "aws-access-key-id",
                "fields",
                "field-value-json",
                "pem-private-key",
                "generic-token-assignment",
                "credit-card",
            ])
            .prop_map(str::to_owned),
            1 => re("[a-z0-9-]{1,24}"),
        ],
        pick(&["k1", "k1", "k2", "key-2026q1", "old.key_v2"]),
        re("[0-9a-f]{16}"),
    )
        .prop_map(|(rule, kid, fp)| format!("[REDACTED:{rule}:{kid}:{fp}]"))
        .boxed()
}

/// The value of a `key=value` pair.
fn value() -> BoxedStrategy<String> {
    prop_oneof![
        5 => ordinary(),
        4 => secret(),
        1 => placeholder(),
        1 => marker(),
        1 => dsn(),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<&'static str> {
    prop_oneof![3 => pick(SECRET_KEYS), 4 => pick(ORDINARY_KEYS)].boxed()
}

/// Free text of a log message, with quotes, backslashes, newlines, non-ASCII and now and then
/// an assignment or a marker.
fn text() -> BoxedStrategy<String> {
    vec(
        prop_oneof![
            12 => pick(WORDS).prop_map(str::to_owned),
            2 => (0u32..100_000).prop_map(|n| n.to_string()),
            2 => pick(&[
                "\"quoted\"",
                "back\\slash",
                "two\nlines",
                "tab\there",
                "caf\u{e9}",
                "na\u{ef}ve \u{1F600}",
                "a/b/c",
                "\u{1}ctl",
                "C:\\Users\\app",
                "'single'",
                "{braces}",
                "[brackets]",
                "50%",
                "a=b",
                "key: value",
            ])
            .prop_map(str::to_owned),
            2 => (key(), value()).prop_map(|(k, v)| format!("{k}={v}")),
            1 => (key(), value()).prop_map(|(k, v)| format!("{k}: {v}")),
            1 => marker(),
            1 => pick(&[
                "token expired, refreshing session",
                "password reset requested for user",
                "tokenizer loaded 32000 entries",
                "secret rotation scheduled",
                "order_id=4111111111111112",
            ])
            .prop_map(str::to_owned),
            1 => secret(),
        ],
        1..10,
    )
    .prop_map(|v| v.join(" "))
    .boxed()
}

// ------------------------------------------------------------------------------------------
// JSON trees, written with serde_json's escaping and number formatting
// ------------------------------------------------------------------------------------------

#[derive(Clone)]
enum G {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<G>),
    Obj(Vec<(String, G)>),
}

impl fmt::Debug for G {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = Style {
            spaced: false,
            ascii: false,
            slash: false,
        };
        write!(f, "G({})", masked(emitted(self, plain).as_bytes()))
    }
}

/// How a logger writes JSON: `{"a":1}` or `{"a": 1}` (Python), `\/` (PHP), `\u00e9`
/// (ensure_ascii).
#[derive(Clone, Copy, Debug)]
struct Style {
    spaced: bool,
    ascii: bool,
    slash: bool,
}

fn style() -> BoxedStrategy<Style> {
    (
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(spaced, ascii, slash)| Style {
            spaced,
            ascii,
            slash,
        })
        .boxed()
}

fn emit_str(s: &str, st: Style, out: &mut String) {
    let mut e = serde_json::to_string(s).expect("strings serialize");
    if st.slash {
        e = e.replace('/', "\\/");
    }
    if st.ascii {
        let mut a = String::with_capacity(e.len());
        for c in e.chars() {
            if c.is_ascii() {
                a.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    a.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        e = a;
    }
    out.push_str(&e);
}

fn emit(g: &G, st: Style, out: &mut String) {
    let (comma, colon) = if st.spaced { (", ", ": ") } else { (",", ":") };
    match g {
        G::Null => out.push_str("null"),
        G::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        G::Num(n) => out.push_str(&n.to_string()),
        G::Str(s) => emit_str(s, st, out),
        G::Arr(xs) => {
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push_str(comma);
                }
                emit(x, st, out);
            }
            out.push(']');
        }
        G::Obj(ms) => {
            out.push('{');
            for (i, (k, v)) in ms.iter().enumerate() {
                if i > 0 {
                    out.push_str(comma);
                }
                emit_str(k, st, out);
                out.push_str(colon);
                emit(v, st, out);
            }
            out.push('}');
        }
    }
}

fn emitted(g: &G, st: Style) -> String {
    let mut s = String::new();
    emit(g, st, &mut s);
    s
}

fn num_i(n: i64) -> G {
    G::Num(n.into())
}

fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        3 => prop::sample::select(&[
            0.4221165755827173,
            1e-7,
            1.5e-10,
            -0.0,
            0.1,
            std::f64::consts::PI,
            1e21,
            6.02214076e23,
            4111111111111111.0,
            0.30000000000000004,
            2.5,
            -17.25,
            123456789.12345679,
        ][..]),
        3 => 0.0f64..1.0,
        1 => -1e6f64..1e6,
        1 => prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
    ]
    .boxed()
}

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => pick(SECRET_KEYS).prop_map(str::to_owned),
        8 => pick(ORDINARY_KEYS).prop_map(str::to_owned),
        1 => re("[a-z][a-zA-Z0-9_]{0,12}"),
        1 => pick(&["caf\u{e9}", "a\"b", "k/1", "", "with space", "x-api-key"]).prop_map(str::to_owned),
    ]
    .boxed()
}

fn json_string_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => text(),
        3 => secret(),
        3 => ordinary(),
        1 => marker(),
        1 => placeholder(),
        1 => pem_string(),
        1 => dsn(),
        1 => (key(), value()).prop_map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}")),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<G> {
    prop_oneof![
        2 => Just(G::Null),
        1 => any::<bool>().prop_map(G::Bool),
        1 => (-1000i64..1000).prop_map(num_i),
        1 => any::<i64>().prop_map(num_i),
        1 => prop_oneof![
            1_000_000_000_000_000i64..=i64::MAX,
            i64::MIN..=-1_000_000_000_000_000i64,
        ]
        .prop_map(num_i),
        1 => (i64::MAX as u64 + 1..=u64::MAX).prop_map(|n| G::Num(n.into())),
        1 => re("4[0-9]{14}").prop_map(|p| G::Num(luhn_complete(&p).parse::<u64>().unwrap().into())),
        3 => float().prop_map(|f| serde_json::Number::from_f64(f).map_or(G::Null, G::Num)),
        6 => json_string_value().prop_map(G::Str),
    ]
    .boxed()
}

fn json_tree() -> BoxedStrategy<G> {
    json_leaf()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(G::Arr),
                vec((json_key(), inner), 0..6).prop_map(G::Obj),
            ]
        })
        .boxed()
}

/// A JSON application log record (one line).
fn json_app_log() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (
            style(),
            iso_ts(),
            pick(LEVELS),
            pick(SERVICES),
            text(),
            vec((json_key(), json_tree()), 0..6),
        )
            .prop_map(|(st, ts, level, svc, msg, extra)| {
                let mut m = vec![
                    ("ts".to_string(), G::Str(ts)),
                    ("level".to_string(), G::Str(level.to_string())),
                    ("service".to_string(), G::Str(svc.to_string())),
                    ("msg".to_string(), G::Str(msg)),
                ];
                m.extend(extra);
                emitted(&G::Obj(m), st)
            }),
        2 => (style(), vec((json_key(), json_leaf()), 1..4))
            .prop_map(|(st, ms)| emitted(&G::Obj(ms), st)),
        1 => (style(), json_tree()).prop_map(|(st, g)| emitted(&g, st)),
    ]
    .boxed()
}

// ------------------------------------------------------------------------------------------
// Log formats
// ------------------------------------------------------------------------------------------

fn sudo_command() -> BoxedStrategy<String> {
    prop_oneof![
        3 => pick(&[
            "/usr/bin/systemctl restart nginx",
            "/bin/cat /etc/shadow",
            "/usr/bin/apt-get update",
            "/usr/bin/journalctl -u api-server -n 200",
        ])
        .prop_map(str::to_owned),
        1 => password().prop_map(|p| format!("/usr/bin/mysql -u root -p{p} app")),
        1 => secret().prop_map(|t| format!(
            "/usr/bin/curl -H Authorization: Bearer {t} https://api.example.com/v1/deploy"
        )),
        1 => password().prop_map(|p| format!("/usr/bin/env DB_PASSWORD={p} /app/migrate")),
    ]
    .boxed()
}

/// syslog / auth.log.
fn auth_log() -> BoxedStrategy<Lines> {
    prop_oneof![
        1 => (syslog_ts(), pick(HOSTS), pick(USERS), 0u32..9, pick(DIRS), sudo_command()).prop_map(
            |(ts, h, u, tty, pwd, cmd)| one(format!(
                "{ts} {h} sudo: {u:>8} : TTY=pts/{tty} ; PWD={pwd} ; USER=root ; COMMAND={cmd}"
            ))
        ),
        1 => (
            syslog_ts(),
            pick(HOSTS),
            1000u32..65000,
            pick(USERS),
            ip(),
            1024u32..65535,
            re("[A-Za-z0-9+/]{43}"),
        )
            .prop_map(|(ts, h, pid, u, ip, port, fp)| one(format!(
                "{ts} {h} sshd[{pid}]: Accepted publickey for {u} from {ip} port {port} ssh2: RSA SHA256:{fp}"
            ))),
        1 => (syslog_ts(), pick(HOSTS), 1000u32..65000, pick(USERS), ip(), 1024u32..65535).prop_map(
            |(ts, h, pid, u, ip, port)| one(format!(
                "{ts} {h} sshd[{pid}]: Failed password for invalid user {u} from {ip} port {port} ssh2"
            ))
        ),
        1 => (syslog_ts(), pick(HOSTS), 1000u32..65000, pick(USERS)).prop_map(|(ts, h, pid, u)| one(
            format!(
                "{ts} {h} sshd[{pid}]: pam_unix(sshd:session): session opened for user {u}(uid=1000) by (uid=0)"
            )
        )),
        3 => (syslog_ts(), pick(HOSTS), pick(PROGS), 100u32..65000, text()).prop_map(
            |(ts, h, p, pid, msg)| one(format!("{ts} {h} {p}[{pid}]: {msg}"))
        ),
    ]
    .boxed()
}

fn query_string() -> BoxedStrategy<String> {
    vec((key(), value()), 0..5)
        .prop_map(|kv| {
            if kv.is_empty() {
                return String::new();
            }
            let pairs: Vec<String> = kv
                .iter()
                .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
                .collect();
            format!("?{}", pairs.join("&"))
        })
        .boxed()
}

/// nginx / Apache access and error logs.
fn access_log() -> BoxedStrategy<Lines> {
    prop_oneof![
        4 => (
            ip(),
            pick(&["-", "-", "alice", "deploy"]),
            (1u32..=28, 0u32..24, 0u32..60, 0u32..60),
            pick(METHODS),
            pick(PATHS),
            query_string(),
            pick(STATUS),
            0u32..100_000,
            prop_oneof![Just("-".to_string()), query_string().prop_map(|q| format!("https://shop.example.com/{q}"))],
            pick(AGENTS),
            prop::option::of(0.0f64..2.0),
        )
            .prop_map(|(ip, user, (d, h, m, s), method, path, q, status, bytes, referer, agent, rt)| {
                let mut l = format!(
                    "{ip} - {user} [{d:02}/Nov/2026:{h:02}:{m:02}:{s:02} +0000] \"{method} {path}{q} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{agent}\""
                );
                if let Some(rt) = rt {
                    l.push_str(&format!(" rt={rt:.3}"));
                }
                one(l)
            }),
        1 => (0u32..60, 0u32..1_000_000, 100u32..65000, ip(), 1024u32..65535, text()).prop_map(
            |(s, us, pid, ip, port, msg)| one(format!(
                "[Mon Nov 02 10:00:{s:02}.{us:06} 2026] [proxy_fcgi:error] [pid {pid}:tid 140234] [client {ip}:{port}] AH01071: Got error 'PHP message: {msg}'"
            ))
        ),
    ]
    .boxed()
}

/// Docker json-file and CRI container logs: a log line escaped inside JSON (sometimes twice).
fn container_log() -> BoxedStrategy<Lines> {
    let inner = prop_oneof![
        4 => json_app_log(),
        2 => logfmt().prop_map(|l| String::from_utf8_lossy(&l[0]).into_owned()),
        2 => text(),
        1 => (key(), value()).prop_map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}")),
    ];
    let docker = |line: String, stream: &str, ts: String, st: Style| {
        emitted(
            &G::Obj(vec![
                ("log".into(), G::Str(format!("{line}\n"))),
                ("stream".into(), G::Str(stream.into())),
                ("time".into(), G::Str(ts)),
            ]),
            st,
        )
    };
    (
        inner,
        pick(&["stdout", "stderr"]),
        iso_ts(),
        style(),
        0u8..6,
    )
        .prop_map(move |(line, stream, ts, st, how)| {
            one(match how {
                0..=2 => docker(line, stream, ts, st),
                3 => format!("{ts} {stream} F {line}"),
                4 => {
                    let once = docker(line, stream, ts.clone(), st);
                    docker(once, stream, ts, st)
                }
                _ => emitted(
                    &G::Obj(vec![
                        ("log".into(), G::Str(format!("{line}\n"))),
                        ("stream".into(), G::Str(stream.into())),
                        (
                            "kubernetes".into(),
                            G::Obj(vec![
                                ("namespace".into(), G::Str("prod".into())),
                                ("pod".into(), G::Str("api-7f9c-x2x9q".into())),
                            ]),
                        ),
                    ]),
                    st,
                ),
            })
        })
        .boxed()
}

fn logfmt() -> BoxedStrategy<Lines> {
    (
        iso_ts(),
        pick(LEVELS),
        text(),
        vec((key(), value(), prop::bool::weighted(0.3)), 0..6),
    )
        .prop_map(|(ts, level, msg, kv)| {
            let mut l = format!(
                "ts={ts} level={} msg={}",
                level.to_ascii_lowercase(),
                logfmt_value(&msg, true)
            );
            for (k, v, q) in kv {
                l.push_str(&format!(" {k}={}", logfmt_value(&v, q)));
            }
            one(l)
        })
        .boxed()
}

fn env_line() -> BoxedStrategy<String> {
    let assignment = prop_oneof![
        2 => (pick(&["PWD", "OLDPWD", "HOME"]), pick(DIRS)).prop_map(|(k, v)| (k, v.to_string())),
        2 => pick(ENV_PLAIN).prop_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, v.to_string())
        }),
        2 => (pick(&["DB_PASSWORD", "POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "REDIS_PASSWORD"]), password()),
        1 => aws_key_id().prop_map(|v| ("AWS_ACCESS_KEY_ID", v)),
        1 => aws_secret().prop_map(|v| ("AWS_SECRET_ACCESS_KEY", v)),
        1 => (pick(&["GITHUB_TOKEN", "GH_TOKEN"]), github_token()),
        1 => re("xoxb-[0-9]{11}-[0-9]{12}-[A-Za-z0-9]{24}").prop_map(|v| ("SLACK_BOT_TOKEN", v)),
        1 => re("sk_live_[A-Za-z0-9]{24}").prop_map(|v| ("STRIPE_SECRET_KEY", v)),
        1 => (pick(&["DATABASE_URL", "REDIS_URL"]), dsn()),
        1 => (pick(&["API_TOKEN", "SECRET_KEY_BASE"]), placeholder()),
        1 => marker().prop_map(|v| ("NPM_TOKEN", v)),
    ];
    (
        pick(&["export ", "export ", "declare -x ", ""]),
        assignment,
        any::<bool>(),
    )
        .prop_map(|(prefix, (k, v), quoted)| {
            if quoted || prefix == "declare -x " {
                format!("{prefix}{k}=\"{v}\"")
            } else {
                format!("{prefix}{k}={v}")
            }
        })
        .boxed()
}

fn env_dump() -> BoxedStrategy<Lines> {
    vec(env_line(), 1..8)
        .prop_map(|v| v.into_iter().map(String::into_bytes).collect())
        .boxed()
}

/// Hadoop HDFS DataNode/NameNode lines (block ids are long signed numbers).
fn hdfs() -> BoxedStrategy<Lines> {
    (0u32..4, 203500u32..203600, 1u32..300, any::<i64>(), ip(), 1024u32..65535)
        .prop_map(|(kind, t, th, blk, ip, port)| {
            one(match kind {
                0 => format!(
                    "081109 {t} {th} INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_{blk} terminating"
                ),
                1 => format!(
                    "081109 {t} {th} INFO dfs.DataNode$DataXceiver: Receiving block blk_{blk} src: /{ip}:{port} dest: /{ip}:50010"
                ),
                2 => format!(
                    "081109 {t} {th} INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:50010 is added to blk_{blk} size 67108864"
                ),
                _ => format!(
                    "081109 {t} {th} INFO dfs.DataNode$DataXceiver: {ip}:50010 Served block blk_{blk} to /{ip}"
                ),
            })
        })
        .boxed()
}

fn stack_trace() -> BoxedStrategy<Lines> {
    prop_oneof![
        (
            iso_ts(),
            pick(SERVICES),
            text(),
            vec((pick(&["Handler", "Service", "Repository", "Client"]), 10u32..900), 1..8),
            prop::option::of(password()),
            0u32..40,
        )
            .prop_map(|(ts, svc, msg, frames, caused, more)| {
                let mut v = vec![
                    format!(
                        "{} ERROR [http-nio-8080-exec-3] c.a.{svc}.Service - Request failed: {msg}",
                        ts.replace('T', " ").trim_end_matches('Z')
                    ),
                    "java.lang.IllegalStateException: upstream returned 503".to_string(),
                ];
                for (i, (class, line)) in frames.iter().enumerate() {
                    v.push(format!("\tat com.acme.{svc}.{class}.step{i}({class}.java:{line})"));
                }
                if let Some(pw) = caused {
                    v.push(format!(
                        "Caused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"app\" (password={pw})"
                    ));
                    v.push(format!("\t... {more} more"));
                }
                v.into_iter().map(String::into_bytes).collect()
            }),
        (vec((pick(&["main", "handler", "connect", "load"]), 1u32..400), 1..5), password(), pick(&["KeyError: 'api_key'", "ValueError: invalid token", "psycopg2.OperationalError: FATAL:  password authentication failed"]))
            .prop_map(|(frames, pw, last)| {
                let mut v = vec!["Traceback (most recent call last):".to_string()];
                for (f, line) in &frames {
                    v.push(format!("  File \"/app/{f}.py\", line {line}, in {f}"));
                }
                v.push(format!("    conn = psycopg2.connect(host=\"db\", user=\"app\", password=\"{pw}\")"));
                v.push(last.to_string());
                v.into_iter().map(String::into_bytes).collect()
            }),
    ]
    .boxed()
}

/// How the lines of a private key printed one per record are wrapped.
#[derive(Clone, Debug)]
enum Wrap {
    Bare,
    Indent,
    Syslog {
        host: &'static str,
        pid: u32,
        first_only: bool,
    },
    Docker {
        stream: &'static str,
    },
    Logger {
        first_only: bool,
    },
}

fn wrap() -> BoxedStrategy<Wrap> {
    prop_oneof![
        2 => Just(Wrap::Bare),
        1 => Just(Wrap::Indent),
        2 => (pick(HOSTS), 100u32..65000, prop::bool::weighted(0.2))
            .prop_map(|(host, pid, first_only)| Wrap::Syslog { host, pid, first_only }),
        2 => pick(&["stdout", "stderr"]).prop_map(|stream| Wrap::Docker { stream }),
        1 => prop::bool::weighted(0.3).prop_map(|first_only| Wrap::Logger { first_only }),
    ]
    .boxed()
}

impl Wrap {
    fn line(&self, i: usize, text: &str) -> String {
        let s = (i / 3) % 60;
        match self {
            Wrap::Bare => text.to_string(),
            Wrap::Indent => format!("    {text}"),
            Wrap::Syslog {
                first_only: true, ..
            }
            | Wrap::Logger { first_only: true }
                if i > 0 =>
            {
                text.to_string()
            }
            Wrap::Syslog { host, pid, .. } => {
                format!(
                    "Nov  2 10:00:{s:02} {host} app[{}]: {text}",
                    pid + (i % 2) as u32
                )
            }
            Wrap::Docker { stream } => emitted(
                &G::Obj(vec![
                    ("log".into(), G::Str(format!("{text}\n"))),
                    ("stream".into(), G::Str(stream.to_string())),
                    (
                        "time".into(),
                        G::Str(format!("2026-11-02T10:00:{s:02}.{:09}Z", i * 1013)),
                    ),
                ]),
                Style {
                    spaced: false,
                    ascii: false,
                    slash: false,
                },
            ),
            Wrap::Logger { .. } => {
                format!(
                    "2026-11-02 10:00:{s:02}.{:03} DEBUG [main] c.a.KeyLoader - {text}",
                    i % 1000
                )
            }
        }
    }
}

const PEM_LABELS: &[&str] = &[
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "DSA PRIVATE KEY",
    "CERTIFICATE",
    "PUBLIC KEY",
];

/// The usual start of the base64 body for a label (DER sequence headers, the OpenSSH magic).
fn pem_body_start(label: &str) -> &'static str {
    match label {
        "RSA PRIVATE KEY" => "MIIEpAIBAAKCAQEA",
        "EC PRIVATE KEY" => "MHcCAQEEI",
        "OPENSSH PRIVATE KEY" => "b3BlbnNzaC1rZXktdjEAAAAA",
        "PRIVATE KEY" => "MIIEvgIBADANBgkqhkiG9w0BAQEFAASC",
        "ENCRYPTED PRIVATE KEY" => "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq",
        "CERTIFICATE" => "MIIDdzCCAl+gAwIBAgIE",
        _ => "MIIB",
    }
}

/// Body lines of a PEM block: full 64-character lines, then a last, shorter one.
fn pem_body() -> BoxedStrategy<Vec<String>> {
    (
        vec(re("[A-Za-z0-9+/]{64}"), 1..10),
        prop_oneof![
            2 => re("[A-Za-z0-9+/]{16,63}"),
            1 => re("[A-Za-z0-9+/]{1,12}"),
            1 => Just(String::new()),
        ],
        pick(&["", "", "=", "=="]),
    )
        .prop_map(|(mut lines, last, pad)| {
            if !last.is_empty() {
                lines.push(format!("{last}{pad}"));
            }
            lines
        })
        .boxed()
}

/// A PEM block as one string with newlines (a JSON or config value).
fn pem_string() -> BoxedStrategy<String> {
    (
        prop_oneof![4 => Just("PRIVATE KEY"), 1 => pick(PEM_LABELS)],
        pem_body(),
    )
        .prop_map(|(label, mut body)| {
            let start = pem_body_start(label);
            let n = start.len().min(body[0].len());
            body[0].replace_range(..n, start);
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                body.join("\n")
            )
        })
        .boxed()
}

/// A PEM block printed one line per record, and where its base64 body lines are.
#[derive(Clone)]
struct PemEvent {
    lines: Lines,
    /// (index in `lines`, the body token as printed, before wrapping).
    body: Vec<(usize, String)>,
}

impl fmt::Debug for PemEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at: Vec<usize> = self.body.iter().map(|(i, _)| i).copied().collect();
        writeln!(f, "PemEvent(body lines {at:?}) [masked]")?;
        for l in &self.lines {
            writeln!(f, "    {}", shown(l, 300))?;
        }
        Ok(())
    }
}

/// A PEM block printed one line per record, maybe wrapped in a log prefix, maybe truncated.
fn pem_event(labels: BoxedStrategy<&'static str>) -> BoxedStrategy<PemEvent> {
    (
        labels,
        pem_body(),
        prop::bool::weighted(0.15),
        re("[0-9A-F]{32}"),
        prop_oneof![5 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        wrap(),
        prop::option::of(text()),
    )
        .prop_map(|(label, mut body, headers, iv, ending, wrap, after)| {
            let start = pem_body_start(label);
            let n = start.len().min(body[0].len());
            body[0].replace_range(..n, start);
            let mut lines = vec![format!("-----BEGIN {label}-----")];
            if headers {
                lines.push("Proc-Type: 4,ENCRYPTED".into());
                lines.push(format!("DEK-Info: AES-128-CBC,{iv}"));
                lines.push(String::new());
            }
            let keep = match ending {
                // Complete, or truncated (no END line).
                0 | 1 => body.len(),
                // Cut in the middle of the body.
                _ => body.len().div_ceil(2),
            };
            let mut tokens = Vec::new();
            for b in body.into_iter().take(keep) {
                tokens.push((lines.len(), b.clone()));
                lines.push(b);
            }
            if ending == 0 {
                lines.push(format!("-----END {label}-----"));
            }
            if let Some(after) = after {
                lines.push(after);
            }
            PemEvent {
                lines: lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| wrap.line(i, l).into_bytes())
                    .collect(),
                body: tokens,
            }
        })
        .boxed()
}

fn pem_block() -> BoxedStrategy<Lines> {
    pem_event(prop_oneof![6 => pick(&PEM_LABELS[..6]), 1 => pick(&PEM_LABELS[6..])].boxed())
        .prop_map(|p| p.lines)
        .boxed()
}

/// A GCP service-account key file logged as one JSON record, or a key in a logfmt value.
fn key_in_one_record() -> BoxedStrategy<Lines> {
    (
        style(),
        re("[0-9a-f]{40}"),
        pem_string(),
        re("[0-9]{21}"),
        any::<bool>(),
    )
        .prop_map(|(st, key_id, pem, client_id, json)| {
            if json {
                one(emitted(
                    &G::Obj(vec![
                        ("type".into(), G::Str("service_account".into())),
                        ("project_id".into(), G::Str("acme-prod".into())),
                        ("private_key_id".into(), G::Str(key_id)),
                        ("private_key".into(), G::Str(pem)),
                        (
                            "client_email".into(),
                            G::Str("ci@acme-prod.iam.gserviceaccount.com".into()),
                        ),
                        ("client_id".into(), G::Str(client_id)),
                    ]),
                    st,
                ))
            } else {
                one(format!(
                    "level=debug msg=\"loaded key\" private_key={}",
                    logfmt_value(&pem, true)
                ))
            }
        })
        .boxed()
}

/// Credentials where they leak: headers, command lines, connection strings, clone URLs.
fn credential_line() -> BoxedStrategy<Lines> {
    let bearer =
        prop_oneof![2 => jwt(), 1 => re("[A-Za-z0-9._~+/-]{20,60}"), 1 => github_token()].boxed();
    prop_oneof![
        (
            pick(&["> ", "< ", "", "  "]),
            pick(&["Authorization", "authorization", "AUTHORIZATION"]),
            bearer.clone()
        )
            .prop_map(|(p, h, t)| one(format!("{p}{h}: Bearer {t}"))),
        basic_credentials().prop_map(|b| one(format!("> Authorization: Basic {b}"))),
        github_token().prop_map(|t| one(format!("authorization: token {t}"))),
        (pick(&["X-Api-Key", "x-api-key", "X-Auth-Token"]), secret())
            .prop_map(|(h, t)| one(format!("{h}: {t}"))),
        (re("[A-Za-z0-9]{32}"), re("[A-Za-z0-9]{32}"))
            .prop_map(|(s, c)| one(format!("Cookie: sessionid={s}; csrftoken={c}; theme=dark"))),
        (bearer, pick(PATHS)).prop_map(|(t, p)| one(format!(
            "+ curl -s -H \"Authorization: Bearer {t}\" https://api.example.com{p}"
        ))),
        (iso_ts(), dsn()).prop_map(|(ts, d)| one(format!(
            "{ts} WARN could not connect to {d}: connection refused"
        ))),
        password().prop_map(|p| one(format!(
            "jdbc:postgresql://db:5432/app?user=app&password={}&sslmode=require",
            url_encode(&p)
        ))),
        (pick(USERS), github_token()).prop_map(|(u, t)| one(format!(
            "Cloning into 'app'... https://{u}:{t}@github.com/acme/app.git"
        ))),
        (aws_key_id(), aws_secret()).prop_map(|(id, s)| one(format!(
            "aws_access_key_id = {id}\naws_secret_access_key = {s}"
        ))),
        card().prop_map(|c| one(format!("charge ok card={c} amount=12.50 currency=EUR"))),
    ]
    .boxed()
}

/// Records that were redacted before: markers after `token=`, in JSON strings, after `:`,
/// next to each other, next to a secret.
fn marker_line() -> BoxedStrategy<Lines> {
    prop_oneof![
        (text(), key(), marker(), text()).prop_map(|(a, k, m, b)| one(format!("{a} {k}={m} {b}"))),
        (style(), key(), marker(), json_key(), json_leaf()).prop_map(|(st, k, m, k2, v)| one(
            emitted(&G::Obj(vec![(k.to_string(), G::Str(m)), (k2, v)]), st)
        )),
        marker().prop_map(|m| one(format!("Authorization: Bearer {m}"))),
        (marker(), marker()).prop_map(|(a, b)| one(format!("{a}:{b}"))),
        (key(), marker()).prop_map(|(k, m)| one(format!("{k}:{m}"))),
        (marker(), marker()).prop_map(|(a, b)| one(format!("{a}{b}"))),
        marker().prop_map(one),
        marker().prop_map(|m| one(format!("\"{m}\""))),
        (marker(), secret()).prop_map(|(m, s)| one(format!("token={m}{s}"))),
        (secret(), marker()).prop_map(|(s, m)| one(format!("token={s}:{m}"))),
        (iso_ts(), marker()).prop_map(|(ts, m)| one(format!(
            "ts={ts} level=debug msg=\"cloning repo\" GITHUB_TOKEN={m} user=ci"
        ))),
    ]
    .boxed()
}

/// Bytes that are not text: invalid UTF-8, NUL, lone CR, structural soup.
fn hostile() -> BoxedStrategy<Lines> {
    prop_oneof![
        vec(any::<u8>(), 0..200).prop_map(|b| vec![b]),
        vec(
            prop_oneof![
                Just(b'"'),
                Just(b'\\'),
                Just(b'{'),
                Just(b'}'),
                Just(b'['),
                Just(b']'),
                Just(b'='),
                Just(b':'),
                Just(b'\r'),
                Just(b'\t'),
                Just(0u8),
                Just(0xff),
                Just(b' '),
                Just(b'a'),
                Just(b'-'),
            ],
            0..120
        )
        .prop_map(|b| vec![b]),
        Just(vec![b"\r".to_vec()]),
        Just(vec![b"\t\t".to_vec()]),
        Just(vec![Vec::new(), Vec::new()]),
    ]
    .boxed()
}

const INJECTIONS: &[&[u8]] = &[
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf0\x28\x8c\x28",
    b"\x80",
    b"\x00",
    b"\r",
    b"\t",
    b"\"",
    b"\\",
    b"\\u00",
    b"\xe2\x80\xa8",
];

/// A byte sequence to inject into an ordinary record.
fn injection() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::sample::select(INJECTIONS).prop_map(<[u8]>::to_vec),
        vec(any::<u8>(), 1..4),
    ]
    .boxed()
}

/// A very long record (up to a few hundred KiB) with maybe one secret in it.
fn long_line() -> BoxedStrategy<Lines> {
    (
        0u8..5,
        prop_oneof![4 => 1_000usize..20_000, 1 => 50_000usize..300_000],
        any::<u64>(),
        prop::option::of((pick(SECRET_KEYS), secret())),
        0.0f64..1.0,
    )
        .prop_map(|(kind, len, seed, plant, at)| {
            let mut r = Mix(seed);
            let mut line = match kind {
                0 => "x".repeat(len),
                1 => {
                    let mut s = String::from("payload=");
                    s.extend((0..len).map(|_| r.byte_of(B64) as char));
                    s.push_str("==");
                    s
                }
                2 => {
                    let mut s = String::from("{\"samples\":[");
                    while s.len() < len {
                        if r.below(2) == 0 {
                            s.push_str(
                                &((r.step() >> 11) as f64 / (1u64 << 53) as f64).to_string(),
                            );
                        } else {
                            s.push_str(&((r.step() as i64) >> r.below(40)).to_string());
                        }
                        s.push(',');
                    }
                    s.push_str("0]");
                    if let Some((k, v)) = &plant {
                        s.push_str(&format!(",\"{k}\":\"{v}\""));
                    }
                    s.push('}');
                    return one(s);
                }
                3 => {
                    let mut s = String::new();
                    let mut i = 0;
                    while s.len() < len {
                        s.push_str(&format!("k{i}="));
                        s.extend((0..8).map(|_| r.byte_of(HEX) as char));
                        s.push(' ');
                        i += 1;
                    }
                    s
                }
                _ => {
                    let mut s = String::new();
                    while s.len() < len {
                        s.push_str(WORDS[r.below(WORDS.len() as u64) as usize]);
                        s.push(' ');
                    }
                    s
                }
            };
            if let Some((k, v)) = plant {
                let pos = ((line.len() as f64 * at) as usize).min(line.len());
                line.insert_str(pos, &format!(" {k}={v} "));
            }
            one(line)
        })
        .boxed()
}

/// Lines of logveil's own corpus generator (seeded by proptest).
fn corpus_lines() -> BoxedStrategy<Lines> {
    (
        300u64..4000,
        any::<u64>(),
        prop_oneof![Just(0.0), 0.0f64..0.3],
    )
        .prop_map(|(size, seed, rate)| {
            let (v, _) = logveil::corpus::generate_vec(size, seed, rate);
            records(&v).into_iter().map(<[u8]>::to_vec).collect()
        })
        .boxed()
}

fn base_event() -> BoxedStrategy<Lines> {
    prop_oneof![
        3 => auth_log(),
        3 => access_log(),
        5 => json_app_log().prop_map(one),
        3 => container_log(),
        3 => logfmt(),
        2 => env_dump(),
        1 => hdfs(),
        2 => stack_trace(),
        3 => pem_block(),
        1 => key_in_one_record(),
        3 => credential_line(),
        2 => marker_line(),
        1 => Just(vec![Vec::new()]),
        1 => hostile(),
        1 => corpus_lines(),
    ]
    .boxed()
}

/// One event: one or more records of some format.
fn event() -> BoxedStrategy<Lines> {
    prop_oneof![
        24 => base_event(),
        1 => long_line(),
        // Hostile bytes injected into an ordinary event.
        2 => (base_event(), vec((any::<prop::sample::Index>(), injection()), 1..4)).prop_map(
            |(lines, inj)| {
                let mut b = lines.join(&b"\n"[..]);
                for (at, bytes) in inj {
                    let pos = at.index(b.len() + 1);
                    b.splice(pos..pos, bytes);
                }
                vec![b]
            }
        ),
        // What an earlier run of logveil wrote.
        2 => base_event().prop_map(|lines| {
            let out = redact(&lines.join(&b"\n"[..]));
            records(&out).into_iter().map(<[u8]>::to_vec).collect()
        }),
    ]
    .boxed()
}

/// A document: events, each line ended by `\n` (sometimes `\r\n`), maybe no final newline.
fn docs(events: std::ops::Range<usize>) -> BoxedStrategy<Doc> {
    (
        vec((event(), prop::bool::weighted(0.1)), events),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(evs, final_newline)| {
            let mut out = Vec::new();
            let mut last_eol = 0;
            for (lines, crlf) in evs {
                for l in lines {
                    out.extend_from_slice(&l);
                    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                    out.extend_from_slice(eol);
                    last_eol = eol.len();
                }
            }
            if !final_newline {
                out.truncate(out.len() - last_eol);
            }
            Doc(out)
        })
        .boxed()
}

/// A document with one private key printed one line per record somewhere in it.
#[derive(Clone)]
struct KeyDoc {
    doc: Doc,
    /// (record index, body token) of every base64 body line of the key.
    body: Vec<(usize, String)>,
}

impl fmt::Debug for KeyDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at: Vec<usize> = self.body.iter().map(|(r, _)| r + 1).collect();
        write!(f, "KeyDoc(key body in records {at:?}) {:?}", self.doc)
    }
}

fn key_docs() -> BoxedStrategy<KeyDoc> {
    (
        docs(0..4),
        pem_event(pick(&PEM_LABELS[..6])),
        docs(0..3),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(before, key, after, crlf)| {
            let mut b = before.0;
            if !b.is_empty() && !b.ends_with(b"\n") {
                b.push(b'\n');
            }
            let first = records(&b).len();
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            for l in &key.lines {
                b.extend_from_slice(l);
                b.extend_from_slice(eol);
            }
            b.extend_from_slice(&after.0);
            KeyDoc {
                doc: Doc(b),
                body: key.body.into_iter().map(|(i, t)| (first + i, t)).collect(),
            }
        })
        .boxed()
}

/// (f) Every base64 body line of a private key printed one line per record is redacted.
fn check_key_body(input: &[u8], output: &[u8], body: &[(usize, String)]) -> Result<(), String> {
    let (ri, ro) = (records(input), records(output));
    if ri.len() != ro.len() {
        return Ok(()); // (a)'s failure; records cannot be paired
    }
    for (n, (r, token)) in body.iter().enumerate() {
        let (i, o) = (ri[*r], ro[*r]);
        let kept = i == o;
        let survives = token.len() >= 8 && memchr::memmem::find(o, token.as_bytes()).is_some();
        if kept || survives {
            return Err(format!(
                "body line {} of {} of the key (record {}, {} base64 characters) {}\n    in:  {}\n    out: {}",
                n + 1,
                body.len(),
                r + 1,
                token.len(),
                if kept { "passed unredacted" } else { "survives in the output" },
                shown(i, 600),
                shown(o, 600)
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The CLI
// ------------------------------------------------------------------------------------------

/// Pieces for writing stdin: (size, pause in ms after the write), used in turn.
#[derive(Clone, Debug)]
struct Pieces(Vec<(usize, u8)>);

fn pieces() -> BoxedStrategy<Pieces> {
    vec(
        (
            prop_oneof![3 => 1usize..=64, 2 => 65usize..=4096],
            prop_oneof![6 => Just(0u8), 1 => 1u8..=2],
        ),
        1..32,
    )
    .prop_map(Pieces)
    .boxed()
}

struct CliOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the logveil binary with `args`, feeding `stdin` (if any) in `pieces`; kills it after
/// [`CLI_TIMEOUT`].
fn run_cli(
    args: &[&str],
    stdin: Option<&[u8]>,
    pieces: &[(usize, u8)],
) -> Result<CliOutput, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logveil"));
    cmd.args(args)
        .env("LOGVEIL_KEY", KEY_TEXT)
        .env_remove("LOGVEIL_KEY_ID")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start logveil: {e}"))?;
    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default().to_vec();
        let pieces = pieces.to_vec();
        std::thread::spawn(move || {
            let mut pos = 0;
            for &(size, pause) in pieces.iter().cycle() {
                if pos >= data.len() {
                    break;
                }
                let end = pos.saturating_add(size).min(data.len());
                if pipe
                    .write_all(&data[pos..end])
                    .and_then(|_| pipe.flush())
                    .is_err()
                {
                    break;
                }
                pos = end;
                if pause > 0 {
                    std::thread::sleep(Duration::from_millis(u64::from(pause)));
                }
            }
        })
    });
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > CLI_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "logveil {args:?} did not finish within {CLI_TIMEOUT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for logveil: {e}")),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(CliOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn exited_ok(what: &str, o: &CliOutput) -> Result<(), String> {
    if o.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what}: {} (stderr: {})",
        o.status,
        shown(&o.stderr, 1000)
    ))
}

// ------------------------------------------------------------------------------------------
// The properties
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(engine_cases(), 0xa, 60_000))]
    /// (a) As many records out as in.
    #[test]
    fn engine_keeps_the_record_count(doc in docs(0..12)) {
        let out = redact(&doc.0);
        let res = check_record_count(&doc.0, &out);
        prop_assert!(res.is_ok(), "(a) record count changed: {}", res.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(engine_cases(), 0xb, 60_000))]
    /// (b) Only spans are replaced, by markers; the input's markers stay.
    #[test]
    fn engine_only_replaces_spans_with_markers(doc in docs(0..12)) {
        let out = redact(&doc.0);
        let res = check_only_spans_replaced(&doc.0, &out);
        prop_assert!(res.is_ok(), "(b) {}", res.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(engine_cases(), 0xc, 60_000))]
    /// (c) JSON stays JSON with the same tree outside redacted strings.
    #[test]
    fn engine_keeps_json_records_valid(doc in docs(0..12)) {
        let out = redact(&doc.0);
        let res = check_json(&doc.0, &out);
        prop_assert!(res.is_ok(), "(c) {}", res.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(engine_cases(), 0xd, 60_000))]
    /// (d) redact(redact(x)) == redact(x).
    #[test]
    fn engine_is_idempotent(doc in docs(0..12)) {
        let once = redact(&doc.0);
        let twice = redact(&once);
        prop_assert!(
            once == twice,
            "(d) redacting the output again changed it: {}",
            first_difference(&once, &twice)
        );
    }
}

proptest! {
    #![proptest_config(config(engine_cases(), 0xe, 60_000))]
    /// (e) No marker inside a marker.
    #[test]
    fn engine_never_nests_markers(doc in docs(0..12)) {
        let out = redact(&doc.0);
        let res = check_no_nested(&doc.0, &out);
        prop_assert!(res.is_ok(), "(e) {}", res.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(engine_cases(), 0x1f, 60_000))]
    /// (f) A private key printed one line per record has every body line redacted.
    #[test]
    fn engine_redacts_every_private_key_body_line(kd in key_docs()) {
        let out = redact(&kd.doc.0);
        let res = check_key_body(&kd.doc.0, &out, &kd.body);
        prop_assert!(res.is_ok(), "(f) {}", res.unwrap_err());
    }
}

proptest! {
    #![proptest_config(Config { max_shrink_iters: 200, ..config(cli_cases(), 0xf, 180_000) })]
    /// Streaming equals batch: stdin in pieces, stdin at once and the file give the same bytes.
    #[test]
    fn cli_stdin_in_pieces_equals_one_write_and_file_run(doc in docs(1..40), pieces in pieces()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("input.log");
        std::fs::write(&path, &doc.0).expect("write input file");
        let path = path.to_str().expect("UTF-8 temp path");

        let piecewise = run_cli(&[], Some(&doc.0), &pieces.0);
        prop_assert!(piecewise.is_ok(), "{}", piecewise.as_ref().err().unwrap());
        let piecewise = piecewise.unwrap();
        let whole = run_cli(&[], Some(&doc.0), &[(usize::MAX, 0)]);
        prop_assert!(whole.is_ok(), "{}", whole.as_ref().err().unwrap());
        let whole = whole.unwrap();
        let file = run_cli(&["run", path], None, &[]);
        prop_assert!(file.is_ok(), "{}", file.as_ref().err().unwrap());
        let file = file.unwrap();

        for (what, o) in [("stdin in pieces", &piecewise), ("stdin at once", &whole), ("run FILE", &file)] {
            let res = exited_ok(what, o);
            prop_assert!(res.is_ok(), "{}", res.unwrap_err());
        }
        prop_assert!(
            piecewise.stdout == whole.stdout,
            "stdin in pieces vs stdin at once: {}",
            first_difference(&piecewise.stdout, &whole.stdout)
        );
        prop_assert!(
            whole.stdout == file.stdout,
            "stdin at once vs run FILE: {}",
            first_difference(&whole.stdout, &file.stdout)
        );
    }
}

proptest! {
    #![proptest_config(Config { max_shrink_iters: 400, ..config(cli_cases(), 0x10, 120_000) })]
    /// The CLI (framing, batches, threads, carried private-key state) gives the engine's bytes.
    #[test]
    fn cli_file_run_equals_the_engine(doc in docs(1..40)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("input.log");
        std::fs::write(&path, &doc.0).expect("write input file");
        let file = run_cli(&["run", path.to_str().expect("UTF-8 temp path")], None, &[]);
        prop_assert!(file.is_ok(), "{}", file.as_ref().err().unwrap());
        let file = file.unwrap();
        let res = exited_ok("run FILE", &file);
        prop_assert!(res.is_ok(), "{}", res.unwrap_err());
        let want = redact(&doc.0);
        prop_assert!(
            file.stdout == want,
            "run FILE vs the engine on the same bytes: {}",
            first_difference(&file.stdout, &want)
        );
    }
}

// ------------------------------------------------------------------------------------------
// The checkers themselves (so that a failure above is about logveil, not about the test)
// ------------------------------------------------------------------------------------------

const M1: &str = "[REDACTED:github-classic-token:k1:0123456789abcdef]";
const M2: &str = "[REDACTED:fields:k1:fedcba9876543210]";

#[test]
fn checker_alignment_accepts_replacements_and_rejects_edits() {
    let ok = |i: &str, o: &str| check_only_spans_replaced(i.as_bytes(), o.as_bytes());
    assert!(ok("a b c\n", "a b c\n").is_ok());
    assert!(ok("pw=XXXXYYYY user=x\n", &format!("pw={M2} user=x\n")).is_ok());
    assert!(ok("XXXXYYYY", M2).is_ok());
    assert!(ok(&format!("t={M1} x=XXXXYYYY"), &format!("t={M1} x={M2}")).is_ok());
    assert!(ok(&format!("{M1}{M1}"), &format!("{M1}{M1}")).is_ok());
    // A replacement of nothing, a changed byte, a lost or re-redacted input marker.
    assert!(ok("pw= user", &format!("pw={M2} user")).is_err());
    assert!(ok("pw=XXXX user", &format!("pw={M2} usr")).is_err());
    assert!(ok(&format!("t={M1}"), &format!("t={M2}")).is_err());
    // Record counts.
    assert!(check_record_count(b"a\nb", b"a\nb").is_ok());
    assert!(check_record_count(b"a\nb\n", b"a\nb").is_ok());
    assert!(check_record_count(b"a\nb\n", b"ab\n").is_err());
    assert_eq!(records(b"").len(), 0);
    assert_eq!(records(b"\n\n").len(), 2);
}

#[test]
fn checker_json_allows_only_marked_strings_to_change() {
    let ok = |i: &str, o: &str| check_json(i.as_bytes(), o.as_bytes());
    assert!(ok(
        r#"{"password":"XXXXYYYY","n":1}"#,
        &format!(r#"{{"password":"{M2}","n":1}}"#)
    )
    .is_ok());
    assert!(ok(r#"{"password":null}"#, r#"{"password":null"#).is_err());
    assert!(ok(r#"{"password":null}"#, &format!(r#"{{"password":"{M2}"}}"#)).is_err());
    assert!(ok(r#"{"r":0.4221165755827173}"#, &format!(r#"{{"r":0.{M2}}}"#)).is_err());
    assert!(ok(r#"{"a":"x"}"#, r#"{"a":"y"}"#).is_err());
    let inner_in = r#"{"log":"{\"password\":\"XXXXYYYY\"}\n"}"#;
    let inner_ok = format!(r#"{{"log":"{{\"password\":\"{M2}\"}}\n"}}"#);
    let inner_bad = format!(r#"{{"log":"{{\"password\":{M2}}}\n"}}"#);
    assert!(ok(inner_in, &inner_ok).is_ok());
    assert!(ok(inner_in, &inner_bad).is_err());
    // Not JSON in: nothing to check.
    assert!(ok("{not json", "whatever").is_ok());
}

#[test]
fn checker_finds_nested_markers() {
    assert!(nested_markers(format!("a {M1} b {M2}").as_bytes()).is_empty());
    let nested = format!("Bearer [REDACTED:bearer-token:{M1}");
    assert_eq!(nested_markers(nested.as_bytes()).len(), 1);
    let inside = format!("[REDACTED:jwt:k1:{M2}]");
    assert_eq!(nested_markers(inside.as_bytes()).len(), 1);
    assert!(check_no_nested(b"x", nested.as_bytes()).is_err());
}

#[test]
fn masking_hides_secret_runs_but_keeps_structure() {
    let fake = "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij";
    let m =
        masked(format!("password=Xy7Qw9Zr2Lp GITHUB_TOKEN={fake} {M1}\n\u{0}\u{ff}").as_bytes());
    assert!(!m.contains("Xy7Qw9Zr2Lp") && !m.contains("EFGHIJ"), "{m}");
    assert!(m.contains("password=Xy7Q…(11)"), "{m}");
    assert!(m.contains("ghp_…(40)"), "{m}");
    assert!(m.contains(M1), "{m}");
    assert!(m.contains("<LF><x00>"), "{m}");
    let m =
        masked(br#"{"k":"-----BEGIN KEY-----\nMIIEpAIBAAKCAQEAxq7Lm2Pz9Rt4\n-----END KEY-----"}"#);
    assert!(m.contains(r"\nMIIE…(28)\n-----END"), "{m}");
    let m =
        masked(b"\xff\xfe card=4111111111111111 /api/v1/orders 2026-11-02T10:00 [02/Nov/2026:10");
    assert!(
        m.starts_with("<xff><xfe> card=4111…(16) /api/v1/orders 2026-11-02T10:00 [02/Nov/2026:10"),
        "{m}"
    );
}
