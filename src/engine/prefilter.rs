//! First stage of the engine: find the records that may hold a secret, and which rules must
//! look at them, in one pass over the batch.
//!
//! Keyword rules share one keyword set (ASCII case-insensitive, see [`super::keywords`]).
//! Rules with no literal anchor (card numbers) use a strided digit-run scan that looks at one
//! byte in twelve until it meets a digit. Records with no hit are never seen by a regex.

use super::keywords::Keywords;
use crate::rules::{Prefilter as RulePrefilter, Rule};

/// Minimum digits in a run for the digit-run prefilter (shortest card number is 13; a
/// little slack for separators that the regex may skip).
pub const MIN_DIGIT_RUN: usize = 12;

// The sieve hashes a keyword's first three bytes: every keyword a rule pack may declare
// must be at least that long (the pack loader enforces `MIN_KEYWORD_LEN`).
const _: () = assert!(crate::rules::MIN_KEYWORD_LEN >= super::keywords::MIN_LEN);

/// The keyword set and the rule lists it triggers.
#[derive(Debug, Clone)]
pub struct Prefilter {
    keywords: Option<Keywords>,
    /// For each keyword, the rules to run when it hits.
    pattern_rules: Vec<Vec<u16>>,
    /// Rules that run on records with a long digit run.
    digit_rules: Vec<u16>,
}

impl Prefilter {
    /// Builds the keyword automaton and digit-run scan for these rules.
    pub fn new(rules: &[Rule]) -> Prefilter {
        // One pattern per distinct keyword, each with the rules that listed it.
        let mut keywords: Vec<(String, Vec<u16>)> = Vec::new();
        // Keyword → its place in `keywords` (a library of thousands of keywords builds fast).
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut digit_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = u16::try_from(i).expect("fewer than 65536 rules");
            match &rule.prefilter {
                RulePrefilter::Keywords(kws) => {
                    for k in kws {
                        match index.get(k) {
                            Some(&at) => keywords[at].1.push(i),
                            None => {
                                index.insert(k.clone(), keywords.len());
                                keywords.push((k.clone(), vec![i]));
                            }
                        }
                    }
                }
                RulePrefilter::DigitRun => digit_rules.push(i),
            }
        }
        // Every occurrence of every keyword is reported (overlapping ones too), so a hit
        // triggers exactly the rules that listed that keyword: `token` in `token expired`
        // does not wake the rules keyed on `x-auth-token`.
        let pattern_rules: Vec<Vec<u16>> = keywords
            .iter()
            .map(|(_, rules)| {
                let mut list = rules.clone();
                list.sort_unstable();
                list.dedup();
                list
            })
            .collect();
        let words: Vec<&[u8]> = keywords.iter().map(|(k, _)| k.as_bytes()).collect();
        let keywords = (!words.is_empty()).then(|| Keywords::new(&words));
        Prefilter {
            keywords,
            pattern_rules,
            digit_rules,
        }
    }

    /// Calls `hit(start, end, rules)` for every keyword hit (in order of start) and every
    /// long digit run (in order, after the keyword hits; `end == start` there), with the
    /// rules that must look at the record around it.
    pub fn scan(&self, hay: &[u8], mut hit: impl FnMut(usize, usize, &[u16])) {
        if let Some(k) = &self.keywords {
            k.for_each(hay, |start, end, p| hit(start, end, &self.pattern_rules[p]));
        }
        if !self.digit_rules.is_empty() {
            for_each_digit_run(hay, MIN_DIGIT_RUN, |pos| hit(pos, pos, &self.digit_rules));
        }
    }
}

#[inline]
fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// Calls `f(start)` for each maximal run of at least `min` digits where digits may be
/// separated by single spaces or dashes. Runs of `min` digits span at least `min` bytes, so
/// probing one byte in `min` finds every run without touching most bytes.
pub fn for_each_digit_run(hay: &[u8], min: usize, mut f: impl FnMut(usize)) {
    let n = hay.len();
    let digit = |i: usize| i < n && hay[i].is_ascii_digit();
    let mut i = min.saturating_sub(1);
    let mut covered = 0; // bytes before this were already part of an examined run
    while i < n {
        let b = hay[i];
        let probe = if b.is_ascii_digit() {
            Some(i)
        } else if is_sep(b) && digit(i + 1) && i > 0 && digit(i - 1) {
            Some(i + 1)
        } else {
            None
        };
        let Some(p) = probe.filter(|&p| p >= covered) else {
            i += min;
            continue;
        };
        // Expand left.
        let mut s = p;
        while s > 0 {
            if hay[s - 1].is_ascii_digit() {
                s -= 1;
            } else if s >= 2 && is_sep(hay[s - 1]) && hay[s - 2].is_ascii_digit() {
                s -= 2;
            } else {
                break;
            }
        }
        // Expand right, counting digits.
        let mut e = s;
        let mut count = 0;
        while e < n {
            if hay[e].is_ascii_digit() {
                count += 1;
                e += 1;
            } else if is_sep(hay[e]) && digit(e + 1) {
                e += 1;
            } else {
                break;
            }
        }
        if count >= min {
            f(s);
        }
        covered = e;
        i = e.max(i) + min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(s: &str) -> Vec<usize> {
        let mut v = Vec::new();
        for_each_digit_run(s.as_bytes(), 12, |p| v.push(p));
        v
    }

    #[test]
    fn digit_runs_found_at_any_alignment() {
        for pad in 0..30 {
            let s = format!("{}card 4111 1111 1111 1111 end", "x".repeat(pad));
            assert_eq!(runs(&s), vec![pad + 5], "pad {pad}");
            let s = format!("{}n=411111111111 end", "y".repeat(pad));
            assert_eq!(runs(&s), vec![pad + 2], "pad {pad}");
        }
    }

    #[test]
    fn short_runs_and_timestamps_are_ignored() {
        assert!(runs("2026-11-02T10:01:22Z id=12345678901 port 8080").is_empty());
        assert!(runs("").is_empty());
        assert!(runs("12345678901").is_empty());
        // Double separators break a run.
        assert!(runs("411111  111111 x").is_empty());
        assert_eq!(runs("a 1234-5678-9012-3456 b 999999999999").len(), 2);
    }
}
