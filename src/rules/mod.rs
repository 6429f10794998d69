//! Rules as data: the pack file format, loading (built-in packs plus `--rules DIR`), and
//! compilation into [`Rule`]s that the engine runs.
//!
//! A pack is one TOML file with a `[pack]` header and `[[rules]]`. Every rule carries examples
//! (log lines where it must find a secret) and negative examples (where it must not); the
//! examples are checked at load for custom packs and by `logveil rules check` for all.

pub mod validators;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex_automata::meta;
use regex_automata::util::syntax;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    pack: PackMeta,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackMeta {
    id: String,
    #[serde(default)]
    description: String,
    /// A pack can ship disabled (PII packs that need an opt-in).
    #[serde(default = "yes")]
    enabled: bool,
    /// Default [`ValueKind`] of the pack's rules.
    #[serde(default)]
    value: ValueKind,
}

/// What identifies a rule's secret. A `shaped` secret is recognised by its own form (a
/// prefix, a checksum, an alphabet and length); a `free` one only by where it stands (the
/// value of a `password` field, the argument of `-p`), so the value itself must also look
/// like a value: not a reference, an expression, a type name or a state word (see
/// [`validators::is_not_a_value`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    #[default]
    Shaped,
    Free,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GroupRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    description: String,
    regex: String,
    secret_group: Option<GroupRef>,
    #[serde(default)]
    keywords: Vec<String>,
    prefilter: Option<String>,
    #[serde(default)]
    followed_by: Vec<String>,
    followed_within: Option<usize>,
    reject_before: Option<String>,
    reject_after: Option<String>,
    /// Overrides the pack's `value`.
    value: Option<ValueKind>,
    #[serde(default)]
    validators: Vec<String>,
    min_entropy: Option<f64>,
    priority: Option<u8>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
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
    pub id: String,
    pub pack: String,
    pub description: String,
    pub regex_text: String,
    pub regex: meta::Regex,
    /// Capture group index of the secret (0 = whole match).
    pub secret_group: usize,
    pub prefilter: Prefilter,
    /// A keyword hit counts only if one of these literals follows it within
    /// `followed_within` bytes (in the same record). Empty: every hit counts.
    pub followed_by: Vec<Vec<u8>>,
    pub followed_within: usize,
    /// A candidate is dropped when the text right before its secret (up to
    /// [`REJECT_BEFORE_WINDOW`] bytes of the record) ends with a match of this regex, e.g. a
    /// card-like number that is the value of `order_id=`. Runs only on validated candidates.
    pub reject_before: Option<meta::Regex>,
    /// A candidate is dropped when the text right after its secret (up to
    /// [`REJECT_BEFORE_WINDOW`] bytes of the record) starts with a match of this regex, e.g.
    /// `.5` after the digits of a float.
    pub reject_after: Option<meta::Regex>,
    /// How the secret is recognised; `Free` values get the value-shape checks.
    pub value: ValueKind,
    pub validators: Vec<Validator>,
    pub min_entropy: Option<f64>,
    pub priority: u8,
    pub enabled: bool,
    pub examples: Vec<String>,
    pub negative_examples: Vec<String>,
    /// Where the rule was loaded from (`builtin:cloud.toml` or a path).
    pub origin: String,
}

impl Rule {
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
            if re.is_match(before) {
                return false;
            }
        }
        if let Some(re) = &self.reject_after {
            let after = &record[span.end..record.len().min(span.end + REJECT_BEFORE_WINDOW)];
            if re.is_match(after) {
                return false;
            }
        }
        true
    }
}

/// Compiles a rule regex the way every rule is compiled: bytes, no Unicode (`\w`, `\b`, `\d`
/// are ASCII), so invalid UTF-8 is scanned like any other byte; and tolerant of JSON string
/// escapes (see [`escape_tolerant`]).
pub fn compile_regex(pattern: &str) -> Result<meta::Regex, Box<meta::BuildError>> {
    meta::Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(meta::Config::new().utf8_empty(false))
        .build(&escape_tolerant(pattern))
        .map_err(Box::new)
}

/// What a word boundary becomes: a boundary, or right after a `\n`, `\r`, `\t` or `\uXXXX`
/// escape, whose last character is a letter or digit (`line\nghp_...`, `\u0022AKIA...`).
const ESCAPE_BOUNDARY: &str = r"(?:\b|\\[nrt]|\\u[0-9A-Fa-f]{4})";

/// What the opening of a leading-boundary group `(?:^|[^A-Za-z0-9]...)` becomes: the same,
/// after a JSON escape too.
const LEAD_ESCAPES: &str = r"(?:^|\\[nrt]|\\u[0-9A-Fa-f]{4}|";

/// Rewrites a rule regex so that it matches the same secrets inside JSON strings, where they
/// sit next to escapes: every `\b` outside a character class becomes [`ESCAPE_BOUNDARY`], a
/// leading-boundary group `(?:^|...)` also accepts a JSON escape before the secret
/// ([`LEAD_ESCAPES`]), and every literal `://` also matches `:\/\/`. Rule authors write
/// plain-text regexes.
pub fn escape_tolerant(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut class = 0usize;
    let mut chars = pattern.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let Some((_, n)) = chars.next() else {
                    out.push(c);
                    break;
                };
                if n == 'b' && class == 0 {
                    out.push_str(ESCAPE_BOUNDARY);
                } else {
                    out.push(c);
                    out.push(n);
                }
            }
            '[' => {
                class += 1;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek().is_some_and(|&(_, n)| n == '^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek().is_some_and(|&(_, n)| n == ']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if class > 0 => {
                class -= 1;
                out.push(c);
            }
            '(' if class == 0 && pattern[i..].starts_with("(?:^|") => {
                out.push_str(LEAD_ESCAPES);
                for _ in 0..4 {
                    chars.next();
                }
            }
            ':' if class == 0 && pattern[i..].starts_with("://") => {
                out.push_str(r":(?:\\?/){2}");
                chars.next();
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// A regex build error in one line: what is wrong and where, not only "error parsing
/// pattern 0" (the rule's own text is no secret, so the caret excerpt may be shown).
fn regex_error(e: &meta::BuildError) -> String {
    match e.syntax_error() {
        Some(se) => {
            // regex-syntax prints the pattern, a caret line and `error: message`: keep the
            // message and the position.
            let text = se.to_string();
            let msg = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.lines().last().unwrap_or(""));
            // The pattern is printed indented, with the caret line under it.
            let lines: Vec<&str> = text.lines().collect();
            let caret = lines.iter().position(|l| l.trim_start().starts_with('^'));
            match caret.filter(|&c| c > 0) {
                Some(c) => {
                    let indent = lines[c - 1].len() - lines[c - 1].trim_start().len();
                    let col = lines[c].find('^').unwrap_or(0).saturating_sub(indent);
                    format!("{msg} (at character {} of the regex)", col + 1)
                }
                None => msg.to_string(),
            }
        }
        None => e.to_string(),
    }
}

fn compile(spec: RuleSpec, meta: &PackMeta, origin: &str) -> Result<Rule> {
    let (pack, pack_enabled) = (meta.id.as_str(), meta.enabled);
    let ctx = |msg: String| anyhow::anyhow!("{origin}: rule '{}': {msg}", spec.id);
    if spec.id.is_empty()
        || !spec
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ctx("rule ids are kebab-case: [a-z0-9-]+".into()));
    }
    if spec.id.len() > crate::fingerprint::MAX_RULE_ID_LEN {
        return Err(ctx(format!(
            "rule ids are at most {} characters",
            crate::fingerprint::MAX_RULE_ID_LEN
        )));
    }
    let regex = compile_regex(&spec.regex).map_err(|e| {
        // Report the error against the rule's own text, not the escape-tolerant rewrite.
        let plain = meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build(&spec.regex)
            .err()
            .map_or_else(|| regex_error(&e), |p| regex_error(&p));
        ctx(format!("invalid regex: {plain}"))
    })?;
    let secret_group = match &spec.secret_group {
        Some(GroupRef::Index(i)) => {
            if *i
                >= regex
                    .group_info()
                    .group_len(regex_automata::PatternID::ZERO)
            {
                return Err(ctx(format!("secret_group {i} does not exist in the regex")));
            }
            *i
        }
        Some(GroupRef::Name(name)) => regex
            .group_info()
            .to_index(regex_automata::PatternID::ZERO, name)
            .ok_or_else(|| ctx(format!("secret_group '{name}' does not exist in the regex")))?,
        None => regex
            .group_info()
            .to_index(regex_automata::PatternID::ZERO, "secret")
            .ok_or_else(|| {
                ctx("the regex has no (?P<secret>...) group; name the secret's group, or set secret_group = 0 to take the whole match".into())
            })?,
    };
    let prefilter = match spec.prefilter.as_deref() {
        Some("digit-run") => {
            if !spec.keywords.is_empty() {
                return Err(ctx(
                    "give either keywords or prefilter = \"digit-run\"".into()
                ));
            }
            Prefilter::DigitRun
        }
        Some(other) => {
            return Err(ctx(format!(
                "unknown prefilter '{other}' (the only one is \"digit-run\")"
            )))
        }
        None => {
            if spec.keywords.is_empty() {
                return Err(ctx(
                    "needs at least one keyword (or prefilter = \"digit-run\")".into(),
                ));
            }
            let mut kws = Vec::new();
            for k in &spec.keywords {
                if k.len() < MIN_KEYWORD_LEN {
                    return Err(ctx(format!(
                        "keyword '{k}' is shorter than {MIN_KEYWORD_LEN} bytes"
                    )));
                }
                if k.contains('\n') {
                    return Err(ctx("keywords cannot contain a newline".into()));
                }
                kws.push(k.to_ascii_lowercase());
                // In JSON strings `/` may be escaped as `\/` (`https:\/\/`).
                if k.contains('/') {
                    kws.push(k.to_ascii_lowercase().replace('/', "\\/"));
                }
            }
            Prefilter::Keywords(kws)
        }
    };
    if !spec.followed_by.is_empty() && prefilter == Prefilter::DigitRun {
        return Err(ctx("followed_by needs keywords".into()));
    }
    if spec
        .followed_by
        .iter()
        .any(|f| f.is_empty() || f.contains('\n'))
    {
        return Err(ctx(
            "followed_by literals must be non-empty and without newlines".into(),
        ));
    }
    if spec.followed_within.is_some() && spec.followed_by.is_empty() {
        return Err(ctx("followed_within without followed_by".into()));
    }
    let reject_before = match &spec.reject_before {
        Some(r) => Some(
            compile_regex(&format!("(?:{r})$"))
                .map_err(|e| ctx(format!("invalid reject_before regex: {}", regex_error(&e))))?,
        ),
        None => None,
    };
    let reject_after = match &spec.reject_after {
        Some(r) => Some(
            compile_regex(&format!("^(?:{r})"))
                .map_err(|e| ctx(format!("invalid reject_after regex: {}", regex_error(&e))))?,
        ),
        None => None,
    };
    let mut vals = Vec::new();
    for name in &spec.validators {
        let v = Validator::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Validator::ALL.iter().map(|(n, _, _)| *n).collect();
            ctx(format!(
                "unknown validator '{name}' (known: {})",
                known.join(", ")
            ))
        })?;
        vals.push(v);
    }
    if let Some(e) = spec.min_entropy {
        if !(0.0..=8.0).contains(&e) {
            return Err(ctx(format!(
                "min_entropy {e} is outside 0..8 bits per byte"
            )));
        }
    }
    Ok(Rule {
        id: spec.id,
        pack: pack.to_string(),
        description: spec.description,
        regex_text: spec.regex,
        regex,
        secret_group,
        prefilter,
        followed_by: spec
            .followed_by
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect(),
        followed_within: spec.followed_within.unwrap_or(DEFAULT_FOLLOWED_WITHIN),
        reject_before,
        reject_after,
        value: spec.value.unwrap_or(meta.value),
        validators: vals,
        min_entropy: spec.min_entropy,
        priority: spec.priority.unwrap_or(DEFAULT_PRIORITY),
        enabled: spec.enabled && pack_enabled,
        examples: spec.examples,
        negative_examples: spec.negative_examples,
        origin: origin.to_string(),
    })
}

/// Parses one pack file. Returns the pack id, its description and its rules.
pub fn parse_pack(text: &str, origin: &str) -> Result<(String, String, Vec<Rule>)> {
    let file: PackFile =
        toml::from_str(text).map_err(|e| crate::text::toml_error(&e, text, origin))?;
    let pack = file.pack.id.clone();
    let mut rules = Vec::with_capacity(file.rules.len());
    for spec in file.rules {
        rules.push(compile(spec, &file.pack, origin)?);
    }
    Ok((pack, file.pack.description, rules))
}

/// Field names whose values are secrets whatever their shape (the `fields` pack), matched
/// case-insensitively as the end of a key: `db_password`, `clientSecret`, `X-Api-Key`.
pub const DEFAULT_FIELD_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "x-api-key",
    "authorization",
    "cookie",
    "private_key",
    "credentials",
];

/// Builds the `fields` pack: the whole string value of a JSON member, or the value of a
/// `key=value` / `key: value` pair (logfmt, query strings, env, YAML, headers), whose key ends
/// in one of `names`. Numbers, booleans and null are left alone; placeholders and empty values
/// are not findings. Lowest priority: a specific rule names an overlapping finding.
pub fn fields_pack(names: &[String]) -> Result<String> {
    if names.is_empty() {
        bail!("[fields] names is empty (disable the pack with disable = [\"fields\"] instead)");
    }
    for n in names {
        if n.len() < MIN_KEYWORD_LEN
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            bail!("[fields] name '{n}': use 3 or more characters of [A-Za-z0-9_.-]");
        }
    }
    let alt = names
        .iter()
        .map(|n| n.to_ascii_lowercase().replace('.', r"\."))
        .collect::<Vec<_>>()
        .join("|");
    let kws = names
        .iter()
        .map(|n| format!("{:?}", n.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(", ");
    let n0 = names[0].to_ascii_lowercase();
    let key = format!(r"(?i:[a-z0-9_.-]*(?:{alt}))");
    // Every field rule runs only where a name is followed closely by `:` (JSON) or `=`/`:`.
    let gate = |ops: &str| {
        format!("keywords = [{kws}]\nfollowed_by = [{ops}]\nfollowed_within = 8\npriority = 5")
    };
    let (json_gate, assign_gate) = (gate(r#"":""#), gate(r#""=", ":""#));
    Ok(format!(
        r####"[pack]
id = "fields"
description = "Values of secret-like fields, whatever their shape (names from [fields] in the config)"
value = "free"

[[rules]]
id = "field-value-json"
description = "JSON string value of a member whose name ends in a secret-like field name"
regex = '''"{key}"[ \t]*:[ \t]*"(?P<secret>(?:[^"\\\r\n]|\\[^\r\n])+)"'''
{json_gate}
examples = [
  '''{{"level":"info","msg":"login","{n0}":"two words & symbols!","user":"alice"}}''',
  '''{{"cfg":{{"db":{{"prod_{n0}" : "p@ss w\"rd"}}}}}}''',
]
negative_examples = [
  '''{{"{n0}":null,"{n0}_count":3,"{n0}s_enabled":true}}''',
  '''{{"{n0}":"","msg":"empty {n0}"}}''',
]

[[rules]]
id = "field-value-json-escaped"
description = "Secret-like field in JSON escaped once inside another JSON string (container logs); escapes inside the value are part of it"
regex = '''(?:^|[^\\])\\"{key}\\"[ \t]*:[ \t]*\\"(?P<secret>(?:[^"\\\r\n]|\\+[^"\\\r\n]|(?:\\\\\\\\)*\\\\\\")+)(?:\\\\\\\\)*\\"'''
{json_gate}
examples = [
  '''{{"log":"{{\"{n0}\":\"two words here\"}}\n","stream":"stdout"}}''',
  '''{{"log":"{{\"user\":\"bob\",\"app_{n0}\":\"Zx9 q\"}}\n"}}''',
  '''{{"log":"{{\"{n0}\":\"p\\\"ss\\\\w0rd\\u0021\",\"user\":\"bob\"}}"}}''',
]
negative_examples = [
  '''{{"log":"{{\"{n0}\":null}}\n"}}''',
]

[[rules]]
id = "field-value-json-escaped-deep"
description = "Secret-like field in JSON escaped twice or more (JSON in JSON in JSON); the value up to its first escape"
regex = '''\\\\\\+"{key}\\\\\\+"[ \t]*:[ \t]*\\\\\\+"(?P<secret>[^"\\\r\n]+)\\+"'''
{json_gate}
examples = [
  '''{{"log":"{{\"msg\":\"{{\\\"{n0}\\\":\\\"Zx9 q\\\"}}\"}}"}}''',
  '''{{"a":"{{\"b\":\"{{\\\"user\\\":1,\\\"db_{n0}\\\":\\\"k8Qz-77\\\"}}\"}}"}}''',
]
negative_examples = [
  '''{{"log":"{{\"msg\":\"{{\\\"{n0}\\\":null}}\"}}"}}''',
]

[[rules]]
id = "field-value-assignment"
description = "Unquoted value of a key=value or key: value pair (logfmt, query string, env, YAML, header) whose key ends in a secret-like field name"
regex = '''(?:^|[^A-Za-z0-9_.-]){key}[ \t]*(?:[:=!]={{1,2}}|=>|[:=])[ \t]*(?:(?i:bearer|basic|token|digest|negotiate)[ \t]+)?(?P<secret>[^\s"'\\&;,]+)'''
{assign_gate}
examples = [
  '''ts=2026-11-02T10:00:00Z level=info {n0}=Zx9q7w user=bob''',
  '''GET /cb?state=ok&{n0}=AbC123xyz HTTP/1.1''',
]
negative_examples = [
  '''ts=2026-11-02T10:00:00Z msg="{n0} reset requested" {n0}_len=12''',
  '''{{"{n0}": 12345, "{n0}s": true}}''',
]

[[rules]]
id = "field-value-assignment-quoted"
description = "Quoted value of a key=\"value\" or key: \"value\" pair whose key ends in a secret-like field name"
regex = '''(?:^|[^A-Za-z0-9_.-]){key}[ \t]*(?:[:=!]={{1,2}}|=>|[:=])[ \t]*"(?P<secret>[^"\r\n]+)"'''
{assign_gate}
examples = [
  '''ts=2026-11-02T10:00:00Z level=info {n0}="two words" user=bob''',
  '''export APP_{upper}="quoted value with spaces"''',
]
negative_examples = [
  '''ts=2026-11-02T10:00:00Z msg="{n0} reset requested" {n0}_len=12''',
]
"####,
        upper = n0.to_ascii_uppercase(),
    ))
}

/// The loaded rule library with the pack of each rule.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
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
    pub disable: Vec<String>,
    pub enable: Vec<String>,
}

impl RuleSet {
    /// The built-in packs only.
    pub fn builtin() -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for (name, text) in BUILTIN_PACKS {
            set.add_pack(text, &format!("builtin:{name}"))?;
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
        let (pack, description, rules) = parse_pack(text, origin)?;
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
mod tests {
    use super::*;

    #[test]
    fn rule_regexes_tolerate_json_escapes_around_secrets() {
        assert_eq!(
            escape_tolerant(r"\bAKIA[A-Z]{4}\b"),
            format!("{ESCAPE_BOUNDARY}AKIA[A-Z]{{4}}{ESCAPE_BOUNDARY}")
        );
        // Not inside a class, not an escaped backslash followed by `b`, not `[]\b]`.
        assert_eq!(escape_tolerant(r"[\b]x\\b[]\b]"), r"[\b]x\\b[]\b]");
        assert_eq!(
            escape_tolerant(r"(?:^|[^a-z])k"),
            format!("{LEAD_ESCAPES}[^a-z])k")
        );
        assert_eq!(escape_tolerant(r"[:/]x://y"), r"[:/]x:(?:\\?/){2}y");
        let re = compile_regex(r"(?:^|[^0-9A-Za-z_])(?P<s>AKIA[A-Z2-7]{16})\b").unwrap();
        for hay in [
            r#"{"m":"k \u0022AKIA2QWERTYUZXCVBNMQ\u0022 x"}"#,
            r#"{"m":"keys:\nAKIA2QWERTYUZXCVBNMQ\nend"}"#,
            "AKIA2QWERTYUZXCVBNMQ",
        ] {
            assert!(re.is_match(hay.as_bytes()), "{}", &hay[..8]);
        }
        assert!(!re.is_match(b"xAKIA2QWERTYUZXCVBNMQ"));
        let url = compile_regex(r"\bhttps://u:(?P<p>[a-z]+)@").unwrap();
        assert!(url.is_match(br#""https:\/\/u:pw@h""#));
    }

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
    fn builtin_packs_load_and_have_rules() {
        let set = RuleSet::builtin().unwrap();
        assert!(set.rules.len() >= 40, "only {} rules", set.rules.len());
        let mut ids: Vec<_> = set.rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate rule ids");
    }

    #[test]
    fn readme_documents_every_builtin_rule_id() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let set = RuleSet::builtin().unwrap();
        let missing: Vec<_> = set
            .rules
            .iter()
            .filter(|r| !readme.contains(&format!("`{}`", r.id)))
            .map(|r| r.id.as_str())
            .collect();
        assert!(missing.is_empty(), "README lacks rule ids: {missing:?}");
    }

    #[test]
    fn pack_parses_and_secret_group_resolves() {
        let (pack, _, rules) = parse_pack(PACK, "t.toml").unwrap();
        assert_eq!(pack, "test");
        assert_eq!(rules[0].secret_group, 1);
    }

    fn err_of(text: &str) -> String {
        format!("{:#}", parse_pack(text, "bad.toml").unwrap_err())
    }

    #[test]
    fn bad_rules_are_rejected_with_file_and_id() {
        let e = err_of(&PACK.replace(r"[a-z0-9]{8}", r"[a-z0-9{8}"));
        assert!(
            e.contains("bad.toml")
                && e.contains("demo-token")
                && e.contains("invalid regex: unclosed character class (at character 19"),
            "{e}"
        );
        // No group for the secret: rejected, unless secret_group says so.
        let e = err_of(&PACK.replace("(?P<secret>", "("));
        assert!(
            e.contains("demo-token") && e.contains("no (?P<secret>"),
            "{e}"
        );
        let (_, _, r) = parse_pack(
            &PACK.replace("(?P<secret>", "(").replace(
                "keywords = [\"demo_\"]",
                "secret_group = 0\nkeywords = [\"demo_\"]",
            ),
            "ok.toml",
        )
        .unwrap();
        assert_eq!(r[0].secret_group, 0);
        let e = err_of(&PACK.replace(
            "examples = [\"x",
            "validators = [\"nope\"]\nexamples = [\"x",
        ));
        assert!(e.contains("unknown validator 'nope'"), "{e}");
        let e = err_of(&PACK.replace("keywords = [\"demo_\"]", "keywords = [\"de\"]"));
        assert!(e.contains("shorter than"), "{e}");
        let e = err_of(&PACK.replace(
            "keywords = [\"demo_\"]",
            "secret_group = \"nope\"\nkeywords = [\"demo_\"]",
        ));
        assert!(e.contains("secret_group 'nope'"), "{e}");
        let e = err_of(
            &PACK
                .replace("(?P<secret>", "(?<secret>")
                .replace("{8}", "{8}(?=x)"),
        );
        assert!(e.contains("invalid regex"), "{e}");
        let e = err_of(
            "[pack]\nid='x'\n[[rules]]\nid='Bad Id'\ndescription=''\nregex='a'\nkeywords=['abc']\n",
        );
        assert!(e.contains("kebab-case"), "{e}");
    }

    #[test]
    fn selection_disables_packs_and_rules() {
        let mut set = RuleSet::builtin().unwrap();
        let pack = set.rules[0].pack.clone();
        set.apply(&Selection {
            disable: vec![pack.clone()],
            enable: vec![],
        })
        .unwrap();
        assert!(set.enabled().iter().all(|r| r.pack != pack));
        let one = set.rules[0].id.clone();
        set.apply(&Selection {
            disable: vec![],
            enable: vec![one.clone()],
        })
        .unwrap();
        assert!(set.enabled().iter().any(|r| r.id == one));
        assert!(set
            .apply(&Selection {
                disable: vec!["no-such".into()],
                enable: vec![]
            })
            .is_err());
    }
}
