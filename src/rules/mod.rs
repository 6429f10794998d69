//! Rules as data: the pack file format, loading (built-in packs plus `--rules DIR`), and
//! compilation into [`Rule`]s that the engine runs.
//!
//! A pack is one TOML file with a `[pack]` header and `[[rules]]`. Every rule carries examples
//! (log lines where it must find a secret) and negative examples (where it must not); the
//! examples are checked at load for custom packs and by `logveil rules check` for all.

mod lazy;
mod pack;
pub mod validators;

pub use lazy::{Compiled, LazyRegex};
pub use pack::{
    compile_regex, escape_tolerant, fields_pack, parse_builtin_pack, parse_pack,
    DEFAULT_FIELD_NAMES,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub use validators::Validator;

include!(concat!(env!("OUT_DIR"), "/builtin_packs.rs"));

/// Default priority of a rule; generic rules use less so that a specific rule names an
/// overlapping finding.
pub const DEFAULT_PRIORITY: u8 = 50;
/// Default distance, in bytes after a keyword hit, within which `followed_by` must occur.
pub const DEFAULT_FOLLOWED_WITHIN: usize = 64;
/// Bytes before a secret that `reject_before` looks at.
pub const REJECT_BEFORE_WINDOW: usize = 128;
/// Shortest keyword allowed: shorter ones would send most records to the regex stage.
pub const MIN_KEYWORD_LEN: usize = 3;

/// What identifies a rule's secret. A `shaped` secret is recognised by its own form (a
/// prefix, a checksum, an alphabet and length); a `free` one only by where it stands (the
/// value of a `password` field, the argument of `-p`), so the value itself must also look
/// like a value: not a reference, an expression, a type name or a state word (see
/// [`validators::is_not_a_value`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// The secret has a recognisable shape (prefix, alphabet, checksum).
    #[default]
    Shaped,
    /// The secret is known by where it stands (`password=…`): value-shape checks apply.
    Free,
}

/// How the engine finds the records a rule's regex must look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefilter {
    /// Records that contain one of these keywords (ASCII case-insensitive, lowercase here).
    Keywords(Vec<String>),
    /// Records that contain a run of at least 12 digits (single spaces or dashes between).
    DigitRun,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id (kebab-case): named in fingerprints.
    pub id: String,
    /// The pack it belongs to.
    pub pack: String,
    /// What it finds.
    pub description: String,
    /// The regex as written ([`LazyRegex::pattern`]), compiled escape-tolerant with the
    /// group of its secret on first use for built-in rules (see [`LazyRegex`]).
    pub regex: LazyRegex,
    /// How the prefilter wakes the rule.
    pub prefilter: Prefilter,
    /// A keyword hit counts only if one of these literals follows it within
    /// `followed_within` bytes (in the same record). Empty: every hit counts.
    pub followed_by: Vec<Vec<u8>>,
    /// See `followed_by`.
    pub followed_within: usize,
    /// A candidate is dropped when the text right before its secret (up to
    /// [`REJECT_BEFORE_WINDOW`] bytes of the record) ends with a match of this regex, e.g. a
    /// card-like number that is the value of `order_id=`. Runs only on validated candidates.
    pub reject_before: Option<LazyRegex>,
    /// A candidate is dropped when the text right after its secret (up to
    /// [`REJECT_BEFORE_WINDOW`] bytes of the record) starts with a match of this regex, e.g.
    /// `.5` after the digits of a float.
    pub reject_after: Option<LazyRegex>,
    /// How the secret is recognised; `Free` values get the value-shape checks.
    pub value: ValueKind,
    /// Checks a candidate secret must pass.
    pub validators: Vec<Validator>,
    /// Shannon entropy floor, bits per byte.
    pub min_entropy: Option<f64>,
    /// Higher names an overlapping finding.
    pub priority: u8,
    /// Selected for use.
    pub enabled: bool,
    /// Lines the rule must find a secret in.
    pub examples: Vec<String>,
    /// Lines the rule must find nothing in.
    pub negative_examples: Vec<String>,
    /// Where the rule was loaded from (`builtin:cloud.toml` or a path).
    pub origin: String,
}

impl Rule {
    /// Capture group index of the secret (0 = whole match). Compiles the regex if needed.
    pub fn secret_group(&self) -> usize {
        self.regex.get().secret_group
    }

    /// Runs the validators, entropy floor, placeholder list, the JSON value check and
    /// `reject_before`/`reject_after` on one candidate secret `record[span]`.
    pub fn accepts(&self, record: &[u8], span: std::ops::Range<usize>) -> bool {
        let secret = &record[span.clone()];
        if validators::is_placeholder(secret)
            || validators::is_operator_tail(record, span.clone())
            || validators::is_json_scalar(record, span.clone())
            || validators::is_identifier_context(record, span.clone())
            || (self.value == ValueKind::Free && validators::is_not_a_value(record, span.clone()))
        {
            return false;
        }
        if let Some(min) = self.min_entropy {
            if validators::shannon_entropy(secret) < min {
                return false;
            }
        }
        if !self.validators.iter().all(|v| v.check(secret)) {
            return false;
        }
        if let Some(re) = &self.reject_before {
            let before = &record[span.start.saturating_sub(REJECT_BEFORE_WINDOW)..span.start];
            if re.get().regex.is_match(before) {
                return false;
            }
        }
        if let Some(re) = &self.reject_after {
            let after = &record[span.end..record.len().min(span.end + REJECT_BEFORE_WINDOW)];
            if re.get().regex.is_match(after) {
                return false;
            }
        }
        true
    }
}

/// The loaded rule library with the pack of each rule.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Every rule, built-in then custom.
    pub rules: Vec<Rule>,
    /// Pack id → description.
    pub packs: Vec<(String, String)>,
    /// Ids of the rules loaded from rule directories (not built in), in load order.
    pub custom: Vec<String>,
}

/// Enable/disable choices from the config and the command line, applied in order: a name
/// is a pack id or a rule id.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Pack or rule ids to disable.
    pub disable: Vec<String>,
    /// Pack or rule ids to enable (after the disables).
    pub enable: Vec<String>,
}

impl RuleSet {
    /// The built-in packs only.
    pub fn builtin() -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for (name, json) in BUILTIN_PACKS {
            let origin = format!("builtin:{name}");
            set.add_parsed(parse_builtin_pack(json, &origin)?, &origin)?;
        }
        let names: Vec<String> = DEFAULT_FIELD_NAMES.iter().map(|n| n.to_string()).collect();
        set.add_pack(&fields_pack(&names)?, "builtin:fields")?;
        Ok(set)
    }

    /// Replaces the `fields` pack with one for these field names.
    pub fn set_field_names(&mut self, names: &[String]) -> Result<()> {
        self.add_pack(&fields_pack(names)?, "config:[fields]")?;
        Ok(())
    }

    /// Built-in packs, then the packs of each directory (a pack with a built-in pack's id
    /// replaces it; a rule with a known rule id replaces that rule), then the selection.
    pub fn load(
        dirs: &[PathBuf],
        selection: &Selection,
        field_names: Option<&[String]>,
    ) -> Result<RuleSet> {
        let mut set = RuleSet::builtin()?;
        if let Some(names) = field_names {
            set.set_field_names(names)?;
        }
        for dir in dirs {
            set.add_dir(dir)?;
        }
        set.apply(selection)?;
        Ok(set)
    }

    fn add_dir(&mut self, dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read rules directory {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("rules directory {} holds no *.toml pack", dir.display());
        }
        for f in files {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read rule pack {}", f.display()))?;
            let origin = f.display().to_string();
            let added = self.add_pack(&text, &origin)?;
            // Custom rules are checked against their own examples before use (see
            // `check::check_custom`): a rule that does not find its own example would
            // silently let secrets through.
            for i in added {
                let id = self.rules[i].id.clone();
                if !self.custom.contains(&id) {
                    self.custom.push(id);
                }
            }
        }
        Ok(())
    }

    /// Adds a pack; returns the indices of its rules.
    fn add_pack(&mut self, text: &str, origin: &str) -> Result<Vec<usize>> {
        self.add_parsed(parse_pack(text, origin)?, origin)
    }

    /// Adds a parsed pack; returns the indices of its rules.
    fn add_parsed(
        &mut self,
        (pack, description, rules): (String, String, Vec<Rule>),
        origin: &str,
    ) -> Result<Vec<usize>> {
        if let Some(p) = self.packs.iter_mut().find(|(id, _)| *id == pack) {
            // Same pack id: the new pack replaces the old one.
            p.1 = description;
            self.rules.retain(|r| r.pack != pack);
        } else {
            self.packs.push((pack.clone(), description));
        }
        let mut seen = HashSet::new();
        let mut added = Vec::new();
        for rule in rules {
            if !seen.insert(rule.id.clone()) {
                bail!("{origin}: rule id '{}' appears twice in the pack", rule.id);
            }
            if let Some(i) = self.rules.iter().position(|r| r.id == rule.id) {
                self.rules[i] = rule;
                added.push(i);
            } else {
                self.rules.push(rule);
                added.push(self.rules.len() - 1);
            }
        }
        Ok(added)
    }

    /// Applies enable/disable names (pack ids or rule ids); unknown names are errors.
    pub fn apply(&mut self, sel: &Selection) -> Result<()> {
        for (names, on) in [(&sel.disable, false), (&sel.enable, true)] {
            for name in names {
                let mut hit = false;
                for r in self.rules.iter_mut() {
                    if r.pack == *name || r.id == *name {
                        r.enabled = on;
                        hit = true;
                    }
                }
                if !hit {
                    bail!("unknown pack or rule '{name}' (see: logveil rules list)");
                }
            }
        }
        Ok(())
    }

    /// The enabled rules.
    pub fn enabled(&self) -> Vec<Rule> {
        self.rules.iter().filter(|r| r.enabled).cloned().collect()
    }
}

#[cfg(test)]
mod tests;
