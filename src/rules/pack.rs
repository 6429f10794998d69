//! The pack file format (TOML) and its compilation into [`Rule`]s: regexes made tolerant
//! of JSON escapes around secrets, keywords, validators, the `fields` pack.

use anyhow::{bail, Result};
use regex_automata::meta;
use regex_automata::util::syntax;
use serde::Deserialize;

use super::lazy::Group;
use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PackFile {
    pack: PackMeta,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PackMeta {
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

pub(super) fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum GroupRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSpec {
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
pub(super) const ESCAPE_BOUNDARY: &str = r"(?:\b|\\[nrt]|\\u[0-9A-Fa-f]{4})";

/// What the opening of a leading-boundary group `(?:^|[^A-Za-z0-9]...)` becomes: the same,
/// after a JSON escape too.
pub(super) const LEAD_ESCAPES: &str = r"(?:^|\\[nrt]|\\u[0-9A-Fa-f]{4}|";

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
pub(super) fn regex_error(e: &meta::BuildError) -> String {
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

pub(super) fn compile(mut spec: RuleSpec, meta: &PackMeta, origin: &str) -> Result<Rule> {
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
    // Built-in regexes compile on first use (see `lazy`); custom ones now, so that their
    // errors come at load.
    let eager = !origin.starts_with("builtin:");
    let regex = LazyRegex::new(
        std::mem::take(&mut spec.regex),
        Group::Rule(spec.secret_group.take()),
    );
    if eager {
        regex.force().map_err(|e| ctx(e.to_string()))?;
    }
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
    let side = |wrapped: Option<String>, what: &'static str| {
        wrapped
            .map(|w| {
                let re = LazyRegex::new(w, Group::Whole(what));
                if eager {
                    re.force().map_err(|e| ctx(e.to_string()))?;
                }
                Ok::<_, anyhow::Error>(re)
            })
            .transpose()
    };
    let reject_before = side(
        spec.reject_before.as_ref().map(|r| format!("(?:{r})$")),
        "reject_before",
    )?;
    let reject_after = side(
        spec.reject_after.as_ref().map(|r| format!("^(?:{r})")),
        "reject_after",
    )?;
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
        regex,
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
    build_pack(file, origin)
}

/// A built-in pack: its TOML converted to JSON at build time (see `build.rs`), same fields,
/// same checks, without the TOML parse at start-up.
pub fn parse_builtin_pack(json: &str, origin: &str) -> Result<(String, String, Vec<Rule>)> {
    let file: PackFile =
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    build_pack(file, origin)
}

fn build_pack(file: PackFile, origin: &str) -> Result<(String, String, Vec<Rule>)> {
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
