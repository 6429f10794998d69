//! Rule soundness: every rule run over its own examples and negative examples.
//!
//! This sits above both the rules (data) and the engine (their compiled form), so that
//! neither imports the other: `rules` parses and selects, `engine` compiles and matches, and
//! this module (used by `logveil rules check` and by the config when custom rule directories
//! are loaded) checks the one against the other.

use anyhow::{bail, Result};

use crate::engine::Matcher;
use crate::rules::{Rule, RuleSet};
use crate::text::preview;

/// Runs one rule over its examples and negative examples. Returns the failures (empty when
/// the rule is sound). Failure messages never quote a matched secret in full: only the
/// first 4 characters.
pub fn check_rule(rule: &Rule) -> Vec<String> {
    let mut failures = Vec::new();
    if rule.examples.len() < 2 {
        failures.push(format!(
            "has {} example(s); at least 2 are required",
            rule.examples.len()
        ));
    }
    if rule.negative_examples.is_empty() {
        failures.push("has no negative example".into());
    }
    let engine = Matcher::new(vec![rule.clone()]);
    for (i, ex) in rule.examples.iter().enumerate() {
        if engine.find(ex.as_bytes()).is_empty() {
            failures.push(format!(
                "example {} is not found (starts '{}')",
                i + 1,
                preview(ex)
            ));
        }
    }
    for (i, ex) in rule.negative_examples.iter().enumerate() {
        let found = engine.find(ex.as_bytes());
        if let Some(f) = found.first() {
            failures.push(format!(
                "negative example {} matches at bytes {}..{} (secret starts '{}')",
                i + 1,
                f.start,
                f.end,
                preview(&String::from_utf8_lossy(&ex.as_bytes()[f.start..f.end]))
            ));
        }
    }
    failures
}

/// Checks every custom rule (loaded from a rule directory) against its own examples: a
/// custom rule that does not find its own example would silently let secrets through, so
/// loading stops at the first failure, `ORIGIN: rule 'ID': FAILURE`.
pub fn check_custom(set: &RuleSet) -> Result<()> {
    for id in &set.custom {
        let Some(rule) = set.rules.iter().find(|r| &r.id == id) else {
            continue;
        };
        if let Some(first) = check_rule(rule).first() {
            bail!("{}: rule '{}': {first}", rule.origin, rule.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{parse_pack, Selection};

    const PACK: &str = r#"
[pack]
id = "test"
description = "test pack"

[[rules]]
id = "demo-token"
description = "demo"
regex = '''\bdemo_(?P<secret>[a-z0-9]{8})\b'''
keywords = ["demo_"]
examples = ["x demo_abcd1234 y", "token=demo_zzzz9999"]
negative_examples = ["demo_short"]
"#;

    #[test]
    fn sound_rule_passes() {
        let (_, _, rules) = parse_pack(PACK, "t.toml").unwrap();
        assert!(
            check_rule(&rules[0]).is_empty(),
            "{:?}",
            check_rule(&rules[0])
        );
    }

    fn load(dir: &std::path::Path) -> Result<RuleSet> {
        let set = RuleSet::load(&[dir.to_path_buf()], &Selection::default(), None)?;
        check_custom(&set)?;
        Ok(set)
    }

    #[test]
    fn check_rule_reports_failing_examples_without_secrets() {
        let text = PACK
            .replace("\"token=demo_zzzz9999\"", "\"token=demo_NOPE\"")
            .replace(
                "negative_examples = [\"demo_short\"]",
                "negative_examples = [\"leak demo_qwer5678\"]",
            );
        let (_, _, rules) = parse_pack(&text, "t.toml").unwrap();
        let f = check_rule(&rules[0]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("example 2 is not found"));
        assert!(f[1].contains("negative example 1 matches"));
        assert!(
            !f[1].contains("qwer5678"),
            "failure message leaks the secret: {}",
            f[1]
        );
    }

    #[test]
    fn custom_dir_overrides_and_rejects_bad_examples() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.toml"), PACK).unwrap();
        let set = load(dir.path()).unwrap();
        assert!(set.rules.iter().any(|r| r.id == "demo-token"));
        let base = RuleSet::builtin().unwrap().rules.len();
        assert_eq!(set.rules.len(), base + 1);

        let bad = PACK.replace("\"token=demo_zzzz9999\"", "\"no secret here\"");
        std::fs::write(dir.path().join("test.toml"), bad).unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(
            e.contains("test.toml") && e.contains("demo-token") && e.contains("example 2"),
            "{e}"
        );
    }
}
