//! Rule regexes compiled on first use.
//!
//! Compiling the ~300 regexes of the built-in library (meta regex: parse, NFA, literal
//! prefilters) was most of logveil's start-up (about 55 of 70 ms), and most rules never see
//! a candidate in a given stream. So a built-in rule's regex is compiled the first time the
//! prefilter sends it a record (tens of microseconds, once per process: the compiled regex
//! is shared by every worker through an `Arc`). The built-in packs are part of the binary
//! and every one of their regexes is compiled by the test suite and `logveil rules check`,
//! so a lazy compile of a built-in cannot fail at run time. Custom packs are compiled eagerly
//! at load, so their errors name the file and rule before any input is read.

use std::sync::{Arc, OnceLock};

use regex_automata::{meta, util::syntax, PatternID};

use super::pack::{regex_error, GroupRef};

/// A compiled regex and the capture group of its secret.
#[derive(Debug)]
pub struct Compiled {
    /// The escape-tolerant regex.
    pub regex: meta::Regex,
    /// Capture group index of the secret (0 = whole match).
    pub secret_group: usize,
}

/// Which group holds the secret.
#[derive(Debug)]
pub(super) enum Group {
    /// The whole match: a `reject_before`/`reject_after` regex (named so in errors).
    Whole(&'static str),
    /// As the rule says (`secret_group`), or the group named `secret`.
    Rule(Option<GroupRef>),
}

#[derive(Debug)]
struct Inner {
    /// The pattern as written (errors are reported against it, not against the rewrite).
    pattern: String,
    group: Group,
    cell: OnceLock<Result<Compiled, String>>,
}

/// A regex compiled at most once, on first use, shared by all clones.
#[derive(Debug, Clone)]
pub struct LazyRegex(Arc<Inner>);

impl LazyRegex {
    pub(super) fn new(pattern: String, group: Group) -> LazyRegex {
        LazyRegex(Arc::new(Inner {
            pattern,
            group,
            cell: OnceLock::new(),
        }))
    }

    /// Compiles now if not yet done; the error says what is wrong with the regex (and
    /// never contains input text: the pattern is the rule author's).
    pub fn force(&self) -> Result<&Compiled, &str> {
        self.0
            .cell
            .get_or_init(|| build(&self.0.pattern, &self.0.group))
            .as_ref()
            .map_err(|e| e.as_str())
    }

    /// The compiled regex.
    ///
    /// # Panics
    /// If it does not compile: only possible for a built-in rule broken in the source tree,
    /// which the test suite rejects (custom rules are forced at load).
    #[inline]
    pub fn get(&self) -> &Compiled {
        match self.force() {
            Ok(c) => c,
            Err(e) => panic!("a built-in rule regex does not compile: {e}"),
        }
    }

    /// The pattern as written (for a `reject_*` regex, with its anchoring wrapper).
    pub fn pattern(&self) -> &str {
        &self.0.pattern
    }

    /// True once compiled (the background compile skips those).
    pub fn is_compiled(&self) -> bool {
        self.0.cell.get().is_some()
    }
}

fn build(pattern: &str, group: &Group) -> Result<Compiled, String> {
    let regex = super::compile_regex(pattern).map_err(|e| {
        // Report the error against the rule's own text, not the escape-tolerant rewrite.
        let plain = meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build(pattern)
            .err()
            .map_or_else(|| regex_error(&e), |p| regex_error(&p));
        match group {
            Group::Whole(what) => format!("invalid {what} regex: {plain}"),
            Group::Rule(_) => format!("invalid regex: {plain}"),
        }
    })?;
    let info = regex.group_info();
    let secret_group = match group {
        Group::Whole(_) => 0,
        Group::Rule(Some(GroupRef::Index(i))) => {
            if *i >= info.group_len(PatternID::ZERO) {
                return Err(format!("secret_group {i} does not exist in the regex"));
            }
            *i
        }
        Group::Rule(Some(GroupRef::Name(name))) => info
            .to_index(PatternID::ZERO, name)
            .ok_or_else(|| format!("secret_group '{name}' does not exist in the regex"))?,
        Group::Rule(None) => info.to_index(PatternID::ZERO, "secret").ok_or_else(|| {
            "the regex has no (?P<secret>...) group; name the secret's group, or set \
             secret_group = 0 to take the whole match"
                .to_string()
        })?,
    };
    Ok(Compiled {
        regex,
        secret_group,
    })
}
