//! The edges of findings: in a JSON record only string contents are redacted (so the record
//! still parses), logveil's own markers are never redacted again, and no finding splits a
//! backslash escape.

use super::*;

/// In a record that is a JSON document, only string contents can hold a secret: a finding
/// is cut to the string content it starts in (or, starting outside any, the last one it
/// covers), and dropped when it covers none (a number, `null`, the structure). So every JSON
/// record still parses after redaction, with its non-string values unchanged. Findings are
/// sorted and disjoint; string spans come sorted too.
pub(super) fn keep_json_valid(hay: &[u8], findings: &mut Vec<Finding>) {
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
pub(super) fn json_strings(rec: &[u8], at: usize, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    if !matches!(rec.trim_ascii().first(), Some(b'{' | b'[')) {
        return false;
    }
    let map: Vec<usize> = (at..at + rec.len()).collect();
    json_strings_in(rec, &map, at + rec.len(), out, 0)
}

/// Levels of JSON escaped in JSON strings that [`json_strings`] looks into below the record
/// itself (container runtimes and shippers wrap two or three times).
pub(super) const MAX_JSON_DEPTH: usize = 5;

/// `doc` (unescaped bytes), `map[i]` the raw position of `doc[i]`, `end` the raw end.
pub(super) fn json_strings_in(
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
pub(super) fn unescape(content: &[u8], map: &[usize]) -> Option<(Vec<u8>, Vec<usize>)> {
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
pub(super) fn cut_markers(hay: &[u8], findings: &mut Vec<Finding>, re: &meta::Regex, max: usize) {
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
pub(super) fn backslashes_before(hay: &[u8], pos: usize) -> usize {
    hay[..pos].iter().rev().take_while(|&&b| b == b'\\').count()
}

/// Moves a finding's edges so that it never splits a backslash escape (`\"`, `\\`, `\n`,
/// `\uXXXX`): a replacement that left half an escape behind would end a JSON string early or
/// make it invalid. An escape cut at the start is taken in whole; a backslash dangling at the
/// end is left out.
pub(super) fn align_to_escapes(hay: &[u8], f: &mut Finding) {
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
