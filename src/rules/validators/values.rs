//! Value-shape checks for `free` rules: a value known only by where it stands must also
//! look like a value, not a reference, an expression, a type name or a state word.

use super::*;

/// Words that, standing alone as a field's value, say something about the credential instead
/// of being it: states (`password: YES` in MySQL's "using password: YES", `token: expired`),
/// type names of schemas and code (`password: string`), the names of authorization schemes
/// with nothing after them (`Authorization: Bearer`), and keywords of code.
pub(super) const NOT_A_VALUE_WORDS: &[&str] = &[
    // states
    "yes",
    "no",
    "on",
    "off",
    "ok",
    "set",
    "unset",
    "enabled",
    "disabled",
    "required",
    "optional",
    "missing",
    "invalid",
    "expired",
    "incorrect",
    "wrong",
    "valid",
    "provided",
    "supplied",
    "present",
    "absent",
    "given",
    "changed",
    "updated",
    "reset",
    "sent",
    "accepted",
    "rejected",
    "denied",
    "failed",
    "success",
    "revoked",
    "default",
    "unknown",
    "unavailable",
    "configured",
    "omitted",
    "protected",
    "sensitive",
    "encrypted",
    "generated",
    "rotated",
    "redact",
    "mask",
    "filtered",
    "censored",
    "suppressed",
    "elided",
    "truncated",
    "nonempty",
    "notset",
    "not_set",
    "none_provided",
    "read",
    "write",
    // verbs of commands (`rails credentials:edit`, `vault token:lookup`)
    "edit",
    "show",
    "list",
    "get",
    "create",
    "delete",
    "add",
    "remove",
    "rotate",
    "renew",
    "revoke",
    "refresh",
    "lookup",
    "fetch",
    "clear",
    "dump",
    // names of the other half of a credential (`secretKey: username`)
    "username",
    "user",
    "login",
    "email",
    // types
    "string",
    "str",
    "bytes",
    "bytearray",
    "text",
    "int",
    "integer",
    "bool",
    "boolean",
    "number",
    "object",
    "any",
    "char",
    "varchar",
    "secretstr",
    "secretbytes",
    "password",
    "securestring",
    // authorization schemes, bare
    "bearer",
    "basic",
    "digest",
    "negotiate",
    "ntlm",
    "token",
    "hoba",
    "mutual",
    // keywords of code
    "new",
    "function",
    "func",
    "lambda",
    "await",
    "self",
    "this",
    "void",
    "const",
    // name-service sources: `passwd:         files systemd` in /etc/nsswitch.conf
    "files",
    "compat",
    "nisplus",
    "systemd",
    "winbind",
    "extrausers",
    "altfiles",
];

/// Roots of dotted references that name where a value comes from rather than the value:
/// `env.GITHUB_TOKEN`, `settings.DB_PASSWORD`, `var.db_password` (Terraform),
/// `secrets.NPM_TOKEN` (Actions), `process.env.API_KEY`.
pub(super) const REFERENCE_ROOTS: &[&str] = &[
    "env",
    "process",
    "os",
    "sys",
    "system",
    "request",
    "req",
    "self",
    "this",
    "config",
    "cfg",
    "conf",
    "settings",
    "secrets",
    "vars",
    "var",
    "local",
    "locals",
    "module",
    "data",
    "params",
    "options",
    "opts",
    "args",
    "props",
    "context",
    "ctx",
    "form",
    "input",
    "inputs",
    "values",
    "app",
    "user",
    "creds",
    "credentials",
    "auth",
    "window",
    "steps",
    "needs",
    "github",
    "matrix",
    "runner",
    "job",
    "item",
    "record",
    "row",
    "obj",
    "cls",
    "opt",
];

/// True when a free value (the value of a field that names a credential, see
/// [`crate::rules::ValueKind::Free`]) is not a value but code, a reference, a note or a word
/// about the credential: `request.form["pw"]`, `getPassword()`, `env.GITHUB_TOKEN`,
/// `(char*)malloc(64)`, `AppWindowToken{4a3b2c1 …}`, `YES`, `(sensitive value)`, … Each
/// check is one small function below; the README lists them with the formats they came
/// from. Runs only on candidates of free rules, never per record.
pub fn is_not_a_value(record: &[u8], span: std::ops::Range<usize>) -> bool {
    let c = FreeValue::new(record, span);
    FREE_VALUE_CHECKS.iter().any(|check| check(&c))
}

/// A free value and what the checks look at around it.
pub(super) struct FreeValue<'a> {
    record: &'a [u8],
    span: std::ops::Range<usize>,
    /// Where the value's text starts in `record` (after blanks).
    start: usize,
    /// The value, trimmed, without closing brackets of its surroundings (`password=null}` in
    /// a toString dump, `(token=none)`).
    core: &'a [u8],
    /// `core` before those brackets were cut.
    trimmed: &'a [u8],
    /// Up to 64 bytes of the record after the value.
    after: &'a [u8],
}

impl<'a> FreeValue<'a> {
    fn new(record: &'a [u8], span: std::ops::Range<usize>) -> FreeValue<'a> {
        let v = &record[span.clone()];
        let trimmed = v.trim_ascii();
        let mut core = trimmed;
        while let Some((&last, head)) = core.split_last() {
            let opener = match last {
                b')' => b'(',
                b']' => b'[',
                b'}' => b'{',
                _ => break,
            };
            if head.contains(&opener) {
                break;
            }
            core = head;
        }
        FreeValue {
            record,
            start: span.start + (v.len() - v.trim_ascii_start().len()),
            after: &record[span.end..record.len().min(span.end + 64)],
            span,
            core,
            trimmed,
        }
    }

    /// The word without the punctuation of its sentence or type (`credentials:edit\``,
    /// GraphQL's `String!`).
    fn word(&self) -> &'a [u8] {
        let mut w = self.core;
        while let Some((&last, head)) = w.split_last() {
            if !matches!(
                last,
                b'`' | b'.' | b'!' | b'?' | b')' | b']' | b'}' | b':' | b','
            ) {
                break;
            }
            w = head;
        }
        w
    }
}

/// The checks of [`is_not_a_value`], cheapest first.
pub(super) const FREE_VALUE_CHECKS: &[fn(&FreeValue) -> bool] = &[
    // `null}`: a placeholder once the surrounding brackets are cut.
    |c| c.core.len() < c.trimmed.len() && is_placeholder(c.core),
    // One to three characters of punctuation (`Token: {`).
    |c| c.core.len() <= 3 && !c.core.iter().any(u8::is_ascii_alphanumeric),
    is_quoted_placeholder,
    is_listed_word,
    is_field_dump,
    is_cast,
    // A relative path (`--from-file=password=./db-password.txt`).
    |c| c.core.starts_with(b"./") || c.core.starts_with(b"../") || c.core.starts_with(b"~/"),
    is_nested_assignment,
    is_error_label,
    is_size,
    is_bracket_note,
    is_progress_word,
    |c| is_resource_path(c.core),
    |c| is_gitlab_runner_token_prefix(c.record, c.span.clone()),
    |c| is_in_id_member(c.record, c.span.start),
    |c| is_prose(c.record, c.span.clone()),
    is_contraction,
    is_auth_scheme,
    |c| is_non_secret_key(c.record, c.span.start),
    |c| is_path_tail_key(c.record, c.span.start),
    |c| is_powershell_cmdlet(c.core),
    |c| is_code_reference(&c.record[c.start..c.span.end + c.after.len()], c.core.len()),
];

/// The value is the first half of an English contraction, cut at its apostrophe: `secret:
/// don't enable`, `password: can't be empty`, `token: isn't valid` (prose in changelogs and
/// messages).
pub(super) fn is_contraction(c: &FreeValue) -> bool {
    if c.core.is_empty() || !c.core.iter().all(u8::is_ascii_alphabetic) || c.core.len() > 6 {
        return false;
    }
    let Some(rest) = c.after.strip_prefix(b"'") else {
        return false;
    };
    let tail = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    matches!(
        &rest[..tail],
        b"t" | b"s" | b"re" | b"ll" | b"ve" | b"d" | b"m"
    ) && rest.get(tail).is_none_or(|b| !b.is_ascii_alphanumeric())
}

/// The value is the scheme word of an `Authorization` header followed by its credential
/// (`Authorization: sso-key K:S`, `Authorization: ApiKey essu_…`, `Proxy-Authorization: Foo
/// x`): the credential after it is the secret (found by the header and provider rules), the
/// scheme names the kind of authentication and stays.
pub(super) fn is_auth_scheme(c: &FreeValue) -> bool {
    let key = key_before(c.record, c.span.start);
    let named = [&b"authorization"[..], b"proxy-authorization"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k));
    let word = !c.core.is_empty()
        && c.core.len() <= 24
        && c.core
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    // What follows is a credential, not the next field of a logfmt line (`user=bob`): a
    // token whose `=` are only base64 padding at its end.
    let next: &[u8] = c.after.strip_prefix(b" ").map_or(&[], |t| {
        let end = t
            .iter()
            .position(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b','))
            .unwrap_or(t.len());
        &t[..end]
    });
    let body = next
        .strip_suffix(b"==")
        .or(next.strip_suffix(b"="))
        .unwrap_or(next);
    let then_credential = !next.is_empty() && !body.contains(&b'=');
    named && word && then_credential
}

/// The whole quoted string the value opens, where the rule stopped at a blank inside it, is
/// a placeholder: `"db_password": "VARIABLE IS NOT DEFINED!"`.
pub(super) fn is_quoted_placeholder(c: &FreeValue) -> bool {
    let Some(&q) = c.span.start.checked_sub(1).map(|i| &c.record[i]) else {
        return false;
    };
    if !matches!(q, b'"' | b'\'') {
        return false;
    }
    let rest = &c.record[c.span.start..];
    // Only a phrase (words, blanks, `!.?-_`): a string that holds a marker or an assignment
    // is not a placeholder as a whole, and the call must not change when a value further on
    // in it is replaced (idempotence).
    rest.iter()
        .take(96)
        .position(|&b| b == q)
        .is_some_and(|end| {
            let phrase = &rest[..end];
            end > c.span.len()
                && phrase.iter().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b' ' | b'!' | b'.' | b'?' | b'-' | b'_')
                })
                && is_placeholder(phrase)
        })
}

/// A state, type, scheme, permission, verb or keyword from [`NOT_A_VALUE_WORDS`]; `new` only
/// when a name follows (`= new Foo(`).
pub(super) fn is_listed_word(c: &FreeValue) -> bool {
    let word = c.word();
    NOT_A_VALUE_WORDS
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        && (!c.core.eq_ignore_ascii_case(b"new")
            || (c.after.first() == Some(&b' ')
                && c.after.get(1).is_some_and(u8::is_ascii_alphabetic)))
}

/// A dump of fields opening with a bracket: Hadoop's `[Kind: HDFS_DELEGATION_TOKEN,
/// Service: …]`, `{name=…}`, `(user=etl)`.
pub(super) fn is_field_dump(c: &FreeValue) -> bool {
    if !matches!(c.core.first(), Some(b'[' | b'{' | b'(')) {
        return false;
    }
    // The first name, possibly quoted (`{"action":`) or quoted and escaped (`{\"action\":`).
    let quote = |at: usize| {
        let r = c.record.get(at..).unwrap_or(&[]);
        if r.starts_with(b"\\\"") {
            2
        } else {
            usize::from(r.first() == Some(&b'"'))
        }
    };
    let name = c.start + 1 + quote(c.start + 1);
    let word = c
        .record
        .get(name..)
        .unwrap_or(&[])
        .iter()
        .take_while(|b| b.is_ascii_alphabetic() || **b == b'_')
        .count();
    let end = name + word;
    word >= 3 && matches!(c.record.get(end + quote(end)), Some(b':' | b'='))
}

/// A cast: `(char*)malloc(64)`, `(String) x`, `(const char *)`.
pub(super) fn is_cast(c: &FreeValue) -> bool {
    let v = &c.record[c.start..c.span.end];
    let Some(inner) = v.strip_prefix(b"(") else {
        return false;
    };
    let Some(close) = inner.iter().position(|&b| b == b')') else {
        return false;
    };
    let ty = &inner[..close];
    !ty.is_empty()
        && ty[0].is_ascii_alphabetic()
        && ty
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*' | b' ' | b'.'))
        && (ty.contains(&b'*') || ty[0].is_ascii_uppercase() || ty.starts_with(b"const"))
}

/// Another assignment: the first "key:" was a message's prefix (`Retrieved credentials:
/// tf_aws.credentials_source=Shared…`). Base64 has `=` only at its end.
pub(super) fn is_nested_assignment(c: &FreeValue) -> bool {
    let Some(eq) = c.core.iter().position(|&b| b == b'=') else {
        return false;
    };
    let (k, rest) = (&c.core[..eq], &c.core[eq + 1..]);
    k.len() >= 3
        && (k[0].is_ascii_alphabetic() || k[0] == b'_')
        && k.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        // dotted or snake (`tf_aws.credentials_source=`), or a lower-case word (`token=agent`,
        // `error="ACL token not found"`)
        && (k.iter().any(|b| matches!(b, b'_' | b'.')) || k.iter().all(u8::is_ascii_lowercase))
        && (rest.first().is_some_and(|&b| b != b'=')
            || (rest.is_empty() && matches!(c.after.first(), Some(b'"' | b'\''))))
}

/// A label of a chained error: `failed to get token: oauth2: "bad_verification_code"` (Go's
/// `%w` wrapping writes `a: b: c`): a name ending in `:` before a blank.
pub(super) fn is_error_label(c: &FreeValue) -> bool {
    c.core.strip_suffix(b":").is_some_and(|w| {
        w.len() >= 2
            && w.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    }) && c.after.first() == Some(&b' ')
}

/// A size, as `kubectl describe secret` prints it: `password:  16 bytes`.
pub(super) fn is_size(c: &FreeValue) -> bool {
    c.core.iter().all(u8::is_ascii_digit)
        && [&b" bytes"[..], b" chars", b" characters"]
            .iter()
            .any(|unit| c.after.starts_with(unit))
}

/// A note in brackets standing for the value: Terraform's `(sensitive value)` and
/// `(known after apply)`, `(from file …)`, `[not shown]`, `<not set>`.
pub(super) fn is_bracket_note(c: &FreeValue) -> bool {
    let close = match c.core.first() {
        Some(b'(') => b')',
        Some(b'[') => b']',
        Some(b'<') => b'>',
        _ => return false,
    };
    let from = &c.record[c.start + 1..];
    let Some(end) = from.iter().take(256).position(|&b| b == close) else {
        return false;
    };
    let note = &from[..end];
    if !note.first().is_some_and(u8::is_ascii_alphabetic) || !note.contains(&b' ') {
        return false;
    }
    // Short notes of plain words; or longer ones that say the value is hidden (.NET's
    // `[Security Artifact of type '…JsonWebToken' is hidden. For more details, see …]`).
    (end <= 48
        && note
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'_' | b'/' | b'.')))
        || [&b" is hidden"[..], b" redacted", b" removed", b" masked"]
            .iter()
            .any(|w| memchr::memmem::find(note, w).is_some())
}

/// A progress word: Terraform's `kubernetes_secret.db_credentials: Creating...`.
pub(super) fn is_progress_word(c: &FreeValue) -> bool {
    c.core
        .strip_suffix(b"...")
        .is_some_and(|w| !w.is_empty() && w.iter().all(u8::is_ascii_alphabetic))
}

/// PowerShell's approved verbs (the common ones): a value `Verb-Noun` is a cmdlet call,
/// `$securePassword = Read-Host -AsSecureString`, `$token = (Get-AzAccessToken …)`.
pub(super) const POWERSHELL_VERBS: &[&str] = &[
    "Get",
    "Set",
    "New",
    "Read",
    "Write",
    "Invoke",
    "ConvertTo",
    "ConvertFrom",
    "Import",
    "Export",
    "Add",
    "Remove",
    "Start",
    "Stop",
    "Test",
    "Select",
    "Out",
    "Format",
    "Join",
    "Split",
    "Resolve",
    "Connect",
    "Disconnect",
    "Send",
    "Receive",
    "Update",
    "Install",
    "Enable",
    "Disable",
    "Register",
    "Grant",
    "Revoke",
    "Protect",
    "Unprotect",
    "Copy",
    "Move",
    "Clear",
    "Find",
    "Search",
    "Request",
    "Unblock",
];

pub(super) fn is_powershell_cmdlet(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"(").unwrap_or(v);
    let Some(dash) = v.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (verb, noun) = (&v[..dash], &v[dash + 1..]);
    let noun_len = noun
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    POWERSHELL_VERBS.iter().any(|w| verb == w.as_bytes())
        && noun_len >= 2
        && noun[0].is_ascii_uppercase()
        && noun[1..noun_len].iter().any(u8::is_ascii_lowercase)
        && noun[noun_len..].iter().all(|b| matches!(b, b')' | b'.'))
}

/// Names that end like a credential's but are not one: pagination and idempotency tokens of
/// cloud APIs (`nextToken`, `pageToken`, `clientRequestToken`, EC2's `clientToken`), where a
/// token is a cursor, not a key.
pub(super) const NON_SECRET_KEY_SUFFIXES: &[&str] = &[
    "nexttoken",
    "pagetoken",
    "continuationtoken",
    "paginationtoken",
    "clientrequesttoken",
    "idempotencytoken",
    "synctoken",
    "cancellationtoken",
    "resumptiontoken",
    "changetoken",
    "cursortoken",
    // The name of a Kubernetes Secret, not its content (Helm values, pod specs).
    "existingsecret",
    "secretname",
    "secretref",
    "secretkeyref",
];

/// The key a value is assigned to: back over quotes, escapes, blanks and the operator, then
/// the name (`"clientRequestToken":"…"` gives `clientRequestToken`).
pub(super) fn key_before(record: &[u8], start: usize) -> &[u8] {
    let mut i = start;
    while i > 0 && matches!(record[i - 1], b'"' | b'\'' | b'\\' | b' ' | b'\t') {
        i -= 1;
    }
    let op_end = i;
    while i > 0 && op_end - i < 3 && matches!(record[i - 1], b':' | b'=' | b'>' | b'!') {
        i -= 1;
    }
    if i == op_end {
        return &[];
    }
    while i > 0 && matches!(record[i - 1], b'"' | b'\'' | b'\\' | b' ' | b'\t') {
        i -= 1;
    }
    let end = i;
    while i > 0
        && (record[i - 1].is_ascii_alphanumeric() || matches!(record[i - 1], b'_' | b'-' | b'.'))
    {
        i -= 1;
    }
    &record[i..end]
}

/// The "key" is the last segment of a path or URL (`…/secrets/scrape-token/token: open …`,
/// `…/openid-connect/token: 401 Unauthorized`): an error message names a file, not a field.
pub(super) fn is_path_tail_key(record: &[u8], start: usize) -> bool {
    let key = key_before(record, start);
    if key.is_empty() {
        return false;
    }
    let key_start = key.as_ptr() as usize - record.as_ptr() as usize;
    // One slash: a path (`…/token: …`); `//` (JSON-escaped `\/\/`) starts a URL's
    // userinfo (`https://user:pw@`).
    let before = &record[..key_start];
    // (Not `\`: in JSON text `\npassword=` is an escape before the key, not a path.)
    before.last() == Some(&b'/') && !before.ends_with(b"//") && !before.ends_with(b"\\/\\/")
}

pub(super) fn is_non_secret_key(record: &[u8], start: usize) -> bool {
    let key = key_before(record, start);
    if key == b"clientToken" || key == b"ClientToken" {
        return true;
    }
    // The key's letters and digits, lower-cased, from its end (`client_request_token` and
    // `clientRequestToken` alike), compared without allocating.
    let norm = || {
        key.iter()
            .rev()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_lowercase)
    };
    NON_SECRET_KEY_SUFFIXES.iter().any(|k| {
        let mut n = norm();
        k.bytes().rev().all(|b| n.next() == Some(b))
    })
}

/// A resource name or path made of lower-case words: `projects/acme-42/secrets/db/versions/3`
/// (GCP), `repo:acme/infra:ref:refs/heads/main` (an OIDC subject), `secret/data/ci` (a Vault
/// path): three or more segments between `/` or `:`, no upper case, no segment longer than
/// 40. A secret has upper case, or is one long segment.
pub(super) fn is_resource_path(v: &[u8]) -> bool {
    let segments = v.split(|&b| b == b'/' || b == b':');
    let mut n = 0;
    for seg in segments {
        n += 1;
        if seg.len() > 40
            || !seg.iter().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.' | b'@')
            })
        {
            return false;
        }
    }
    // Two segments when they read as `namespace/name` (`kube-system/bootstrap-token-07401b`).
    (n >= 3 || (n == 2 && v.len() >= 10 && v.contains(&b'-'))) && !v.starts_with(b"/")
}

/// GitLab Runner prints the first 8 characters of a job token as `token=xxxxxxxx` in its own
/// lines (`Uploading artifacts … to coordinator… 201 Created … token=…`, `Checking for jobs…
/// received job=… token=…`): a prefix meant for correlation, not the token.
pub(super) fn is_gitlab_runner_token_prefix(record: &[u8], span: std::ops::Range<usize>) -> bool {
    span.len() == 8
        && record[..span.start].ends_with(b" token=")
        && (memchr::memmem::find(record, b"coordinator").is_some()
            || memchr::memmem::find(record, b"Checking for jobs").is_some())
}

/// The value is inside a JSON string that is the value (or an array element) of a member
/// named like an id: `"authentication.kubernetes.io/credential-id":["BootstrapToken=07401b"]`.
pub(super) fn is_in_id_member(record: &[u8], start: usize) -> bool {
    // Bounded: a candidate never costs a walk over a long record.
    let lo = start.saturating_sub(512);
    let Some(open) = record[lo..start]
        .iter()
        .rposition(|&b| b == b'"')
        .map(|i| lo + i)
    else {
        return false;
    };
    let mut i = open;
    while i > 0 && matches!(record[i - 1], b'[' | b' ' | b'\t') {
        i -= 1;
    }
    if i == 0 || record[i - 1] != b':' {
        return false;
    }
    i -= 1;
    while i > 0 && matches!(record[i - 1], b' ' | b'\t') {
        i -= 1;
    }
    if i == 0 || record[i - 1] != b'"' {
        return false;
    }
    let name_end = i - 1;
    let lo = name_end.saturating_sub(256);
    let Some(name_start) = record[lo..name_end]
        .iter()
        .rposition(|&b| b == b'"')
        .map(|i| lo + i)
    else {
        return false;
    };
    let name = &record[name_start + 1..name_end];
    name.ends_with(b"-id")
        || name.ends_with(b"_id")
        || name.ends_with(b"Id")
        || name.ends_with(b"ID")
}
