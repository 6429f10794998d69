//! Offline validators: checks on a candidate secret that a regex cannot express (checksums,
//! decodable structure, entropy) and the placeholder stop-list. They keep false positives rare:
//! a redactor that mangles order numbers and trace ids gets switched off.

use base64::Engine as _;

/// A named check that a candidate secret must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// Text after the last `_`: N base62 chars, then 6 chars of base62(CRC32(those N chars)).
    /// GitHub classic tokens (`ghp_` ...) and npm tokens.
    Crc32Base62,
    /// Luhn check over the digits (spaces and dashes ignored), 13-19 digits.
    Luhn,
    /// Three base64url parts; header and payload decode to JSON objects; header has `alg`.
    Jwt,
    /// Base64 that decodes to printable `user:password`.
    BasicAuth,
    /// ISO 13616 IBAN: country letters, check digits, mod-97 == 1.
    Iban,
    /// US social security number in the issued ranges.
    UsSsn,
    /// PyPI API token: `pypi-` + base64url macaroon that names `pypi.org`.
    PypiMacaroon,
    /// Bech32 (BIP-173) checksum, as in age secret keys.
    AgeBech32,
    /// GitLab routable token: `<prefix><base64url payload>.<len:2 base36><crc32:7 base36>`.
    GitlabRoutable,
    /// PEM armour: a `BEGIN … PRIVATE KEY` line, a matching `END` line if any, and a body of
    /// base64 (with optional `Name: value` header lines).
    PemArmour,
}

impl Validator {
    /// All validators with their names and what they check (for `rules list` and the README).
    pub const ALL: &'static [(&'static str, Validator, &'static str)] = &[
        (
            "crc32-base62",
            Validator::Crc32Base62,
            "last 6 chars are base62(CRC32) of the random part (GitHub classic, npm)",
        ),
        (
            "luhn",
            Validator::Luhn,
            "13-19 digits that pass the Luhn checksum (payment cards)",
        ),
        (
            "jwt",
            Validator::Jwt,
            "header and payload are base64url JSON objects, header has \"alg\"",
        ),
        (
            "basic-auth",
            Validator::BasicAuth,
            "base64 that decodes to printable user:password",
        ),
        (
            "iban",
            Validator::Iban,
            "15-34 chars, country + check digits, ISO 13616 mod-97 == 1",
        ),
        (
            "us-ssn",
            Validator::UsSsn,
            "9 digits; area not 000/666/900-999, group not 00, serial not 0000",
        ),
        (
            "pypi-macaroon",
            Validator::PypiMacaroon,
            "pypi- + base64url macaroon whose bytes name pypi.org",
        ),
        (
            "age-bech32",
            Validator::AgeBech32,
            "valid Bech32 (BIP-173) checksum over the whole key",
        ),
        (
            "gitlab-routable",
            Validator::GitlabRoutable,
            "base36 payload length and CRC32 of a GitLab routable token agree",
        ),
        (
            "pem-armour",
            Validator::PemArmour,
            "BEGIN/END labels agree and the body is base64 (PEM private keys)",
        ),
    ];

    pub fn from_name(name: &str) -> Option<Validator> {
        Self::ALL
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == self)
            .map(|(n, _, _)| *n)
            .expect("every validator is listed in ALL")
    }

    pub fn check(self, secret: &[u8]) -> bool {
        match self {
            Validator::Crc32Base62 => crc32_base62(secret),
            Validator::Luhn => luhn(secret),
            Validator::Jwt => jwt(secret),
            Validator::BasicAuth => basic_auth(secret),
            Validator::Iban => iban(secret),
            Validator::UsSsn => us_ssn(secret),
            Validator::PypiMacaroon => pypi_macaroon(secret),
            Validator::AgeBech32 => bech32(secret),
            Validator::GitlabRoutable => gitlab_routable(secret),
            Validator::PemArmour => pem_armour(secret),
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `n` in base62 (alphabet `0-9A-Za-z`), left-padded with `0` to 6 chars.
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn crc32_base62(secret: &[u8]) -> bool {
    let body = match memchr::memrchr(b'_', secret) {
        Some(i) => &secret[i + 1..],
        None => secret,
    };
    if body.len() < 7 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32fast::hash(random)) == check
}

/// Luhn check over the digits of `s` (other bytes ignored), 13 to 19 digits.
pub fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for &b in s.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = (b - b'0') as u32;
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    (13..=19).contains(&n) && sum % 10 == 0
}

fn b64url_json_object(part: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    let trimmed = part
        .strip_suffix(b"==")
        .or(part.strip_suffix(b"="))
        .unwrap_or(part);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()?;
    match serde_json::from_slice(&raw).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

fn jwt(secret: &[u8]) -> bool {
    let mut parts = secret.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(b64url_json_object(h), Some(m) if m.contains_key("alg"))
        && b64url_json_object(p).is_some()
}

fn basic_auth(secret: &[u8]) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(secret) else {
        return false;
    };
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && colon + 1 < raw.len()
        && raw
            .iter()
            .all(|&b| b.is_ascii_graphic() || b == b' ' || b >= 0x80)
}

fn iban(secret: &[u8]) -> bool {
    let chars: Vec<u8> = secret
        .iter()
        .filter(|&&b| b != b' ')
        .map(u8::to_ascii_uppercase)
        .collect();
    if !(15..=34).contains(&chars.len())
        || !chars[..2].iter().all(u8::is_ascii_uppercase)
        || !chars[2..4].iter().all(u8::is_ascii_digit)
        || !chars[4..].iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + (c - b'0') as u32) % 97;
        } else {
            rem = (rem * 100 + (c - b'A' + 10) as u32) % 97;
        }
    }
    rem == 1
}

fn us_ssn(secret: &[u8]) -> bool {
    let d: Vec<u8> = secret
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect();
    if d.len() != 9
        || secret
            .iter()
            .any(|b| !b.is_ascii_digit() && *b != b'-' && *b != b' ')
    {
        return false;
    }
    let area = d[0] as u32 * 100 + d[1] as u32 * 10 + d[2] as u32;
    let group = d[3] * 10 + d[4];
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + x as u32);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn pypi_macaroon(secret: &[u8]) -> bool {
    let Some(body) = secret.strip_prefix(b"pypi-") else {
        return false;
    };
    let body = body
        .strip_suffix(b"==")
        .or(body.strip_suffix(b"="))
        .unwrap_or(body);
    let usable = body.len() / 4 * 4;
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&body[..usable]) {
        Ok(raw) => memchr::memmem::find(&raw, b"pypi.org").is_some(),
        Err(_) => false,
    }
}

/// `n` in lowercase base36, left-padded with `0` to `width` digits.
pub fn base36(mut n: u32, width: usize) -> Vec<u8> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(width);
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    out
}

/// GitLab routable tokens end in `.` + the payload length (2 base36 digits) + CRC32 of
/// everything before the CRC (7 base36 digits).
fn gitlab_routable(secret: &[u8]) -> bool {
    let n = secret.len();
    if n < 11 || secret[n - 10] != b'.' {
        return false;
    }
    let Ok(len_text) = std::str::from_utf8(&secret[n - 9..n - 7]) else {
        return false;
    };
    let Ok(payload_len) = usize::from_str_radix(len_text, 36) else {
        return false;
    };
    if payload_len == 0 || payload_len > n - 10 {
        return false;
    }
    let payload = &secret[n - 10 - payload_len..n - 10];
    if !payload
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return false;
    }
    base36(crc32fast::hash(&secret[..n - 7]), 7) == secret[n - 7..]
}

/// PEM armour of a private key, with real newlines or `\n` escapes.
fn pem_armour(secret: &[u8]) -> bool {
    let text = String::from_utf8_lossy(secret);
    let Some(begin) = text.find("-----BEGIN ") else {
        return false;
    };
    let after = &text[begin + 11..];
    let Some(end_of_label) = after.find("-----") else {
        return false;
    };
    let label = &after[..end_of_label];
    if !label.contains("PRIVATE KEY") {
        return false;
    }
    let mut body = &after[end_of_label + 5..];
    if let Some(end) = body.find("-----END ") {
        let rest = &body[end + 9..];
        if !rest.starts_with(label) {
            return false;
        }
        body = &body[..end];
    }
    // Split into lines on real newlines and on escaped ones (`\n`, `\\n`, `\r`).
    let normalized = body
        .replace("\\r", "\n")
        .replace("\\n", "\n")
        .replace('\\', "");
    // A BEGIN line that ends its record: the body follows in the next records.
    if normalized.trim().is_empty() {
        return true;
    }
    let mut longest = 0;
    for line in normalized.split(['\n', '\r']) {
        let line = line.trim();
        let header = line.split_once(": ").is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if line.is_empty() || header {
            continue; // header line such as `Proc-Type: 4,ENCRYPTED`
        }
        for word in line.split_ascii_whitespace() {
            if !word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            {
                return false;
            }
            longest = longest.max(word.len());
        }
    }
    // Key bodies come in long base64 runs (64 per line); prose does not.
    longest >= 16
}

/// The Bech32 alphabet (value = index).
pub const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// BIP-173 checksum polynomial over 5-bit values.
pub fn bech32_polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ v as u32;
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// The human-readable part expanded for the checksum: high bits, 0, low bits.
pub fn bech32_hrp_expand(hrp: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = hrp.iter().map(|c| c >> 5).collect();
    v.push(0);
    v.extend(hrp.iter().map(|c| c & 31));
    v
}

/// Bech32 (BIP-173) checksum check, case-insensitive, any length.
pub fn bech32(secret: &[u8]) -> bool {
    let s: Vec<u8> = secret.iter().map(u8::to_ascii_lowercase).collect();
    let Some(sep) = memchr::memrchr(b'1', &s) else {
        return false;
    };
    if sep == 0 || s.len() - sep - 1 < 6 {
        return false;
    }
    let (hrp, data) = (&s[..sep], &s[sep + 1..]);
    let mut values = bech32_hrp_expand(hrp);
    for c in data {
        match BECH32_CHARSET.iter().position(|x| x == c) {
            Some(v) => values.push(v as u8),
            None => return false,
        }
    }
    bech32_polymod(values) == 1
}

/// Shannon entropy of the byte distribution, in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// True for values that stand in for a secret rather than being one: template variables,
/// masks, our own replacement marker, and null-like words. `changeme` is not a placeholder:
/// it is a password.
pub fn is_placeholder(secret: &[u8]) -> bool {
    let s = secret.trim_ascii();
    if s.is_empty() {
        return true;
    }
    const EXACT: &[&[u8]] = &[
        b"null",
        // MongoDB's log redaction of `pwd`.
        b"xxx",
        b"~",
        b"?",
        b"none",
        b"nil",
        b"undefined",
        b"true",
        b"false",
        b"empty",
        b"redacted",
        b"hidden",
        b"masked",
        b"removed",
        b"n/a",
        b"-",
        b"\"\"",
        b"''",
    ];
    if EXACT.iter().any(|e| s.eq_ignore_ascii_case(e)) {
        return true;
    }
    // Template variables and references: ${VAR}, $ENV_VAR, $password, $1 (a bind
    // parameter), {{ x }}, %(x)s, %s, <your-token>.
    if s.starts_with(b"${")
        || s.starts_with(b"$(")
        || s.starts_with(b"`")
        || s.starts_with(b"***")
        || s.starts_with(b"{{")
        || s.starts_with(b"%(")
        || s.starts_with(b"#{")
        || (s.starts_with(b"<") && s.ends_with(b">"))
        || (s.len() > 1
            && s[0] == b'$'
            && (s[1..]
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                // `$password`, `$db_pass`; mixed case (`$ecretPa55`) is a password.
                || s[1..]
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')))
        || is_format_directive(s)
    {
        return true;
    }
    // Masks: case-sensitive, so that a random secret containing `xXx0` stays a secret.
    const CONTAINS: &[&[u8]] = &[
        b"****",
        b"xxxx",
        b"XXXX",
        b"${",
        b"{{",
        b"\xe2\x80\xa2\xe2\x80\xa2",
        // U+2588 FULL BLOCK: OkHttp's logging interceptor prints hidden headers as `██`.
        b"\xe2\x96\x88",
    ];
    if CONTAINS
        .iter()
        .any(|c| memchr::memmem::find(s, c).is_some())
    {
        return true;
    }
    const CONTAINS_NOCASE: &[&[u8]] = &[b"[redacted", b"<redacted"];
    if s.windows(9)
        .any(|w| CONTAINS_NOCASE.iter().any(|c| w.eq_ignore_ascii_case(c)))
    {
        return true;
    }
    // `***`, and a word in brackets that says the value is hidden: `[FILTERED]` (Rails),
    // `[MASKED]` (GitLab), `(hidden)`, `(null)`, `<redacted>`.
    if s.len() >= 2 && s.iter().all(|&b| b == b'*') {
        return true;
    }
    if let [open, inner @ .., close] = s {
        let pair = matches!((open, close), (b'[', b']') | (b'(', b')') | (b'<', b'>'));
        if pair
            && (1..=32).contains(&inner.len())
            && inner
                .iter()
                .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-' | b' '))
        {
            return true;
        }
    }
    // Upper-case words that say the value was withheld: CloudTrail's
    // `HIDDEN_DUE_TO_SECURITY_REASONS`, `REDACTED_BY_POLICY`, `SENSITIVE-VALUE`; Ansible's
    // `NOT_LOGGING_PASSWORD`, `VALUE_SPECIFIED_IN_NO_LOG_PARAMETER`, `VARIABLE IS NOT DEFINED!`.
    if s.len() >= 6
        && s.iter()
            .all(|&b| b.is_ascii_uppercase() || matches!(b, b'_' | b'-' | b' ' | b'!' | b'.'))
        && [
            &b"HIDDEN"[..],
            b"REDACTED",
            b"MASKED",
            b"FILTERED",
            b"SENSITIVE",
            b"OMITTED",
            b"REMOVED",
            b"WITHHELD",
            b"NOT_LOGGING",
            b"NO_LOG",
            b"NOT DEFINED",
            b"NOT_DEFINED",
            b"UNDEFINED",
            b"NOT SET",
            b"NOT_SET",
        ]
        .iter()
        .any(|w| memchr::memmem::find(s, w).is_some())
    {
        return true;
    }
    // Vault's audit log shows secrets as `hmac-sha256:<64 hex>`: a keyed hash, like ours.
    if let Some(h) = s.strip_prefix(b"hmac-sha256:") {
        if h.len() >= 64 && h[..64].iter().all(u8::is_ascii_hexdigit) {
            return true;
        }
    }
    // A value made of one repeated character (`aaaaaaaa`, `00000000`) is a mask.
    s.len() >= 4 && s.iter().all(|&b| b == s[0])
}

/// A printf-style directive standing alone: `%s`, `%v`, `%d`, `%-8s`, `%.*s`, `%q`.
fn is_format_directive(s: &[u8]) -> bool {
    let Some(rest) = s.strip_prefix(b"%") else {
        return false;
    };
    // Windows event messages: `%%1842` names a string of the message table ("Yes"), `%1` an
    // insertion parameter.
    let digits = rest.strip_prefix(b"%").unwrap_or(rest);
    if !digits.is_empty() && digits.len() <= 6 && digits.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let Some((&conv, spec)) = rest.split_last() else {
        return false;
    };
    conv.is_ascii_alphabetic()
        && spec.len() <= 6
        && spec
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b' ' | b'#' | b'.' | b'*'))
        && matches!(
            conv,
            b's' | b'v' | b'd' | b'q' | b'x' | b'X' | b'i' | b'u' | b'f' | b'p' | b'r' | b'@'
        )
}

/// True when the candidate begins with the second half of an assignment or comparison
/// operator (`=` of `:=`, `==`, `!=`, `>` of `=>`, `:` of `::`): the regex took the operator
/// for the value. The rules take the value after the whole operator; an operator is never
/// a secret.
pub fn is_operator_tail(record: &[u8], span: std::ops::Range<usize>) -> bool {
    span.start > 0
        && matches!(record[span.start - 1], b'=' | b':' | b'!' | b'<' | b'>')
        && matches!(record.get(span.start), Some(b'=' | b'>' | b':'))
}

/// Words that, standing alone as a field's value, say something about the credential instead
/// of being it: states (`password: YES` in MySQL's "using password: YES", `token: expired`),
/// type names of schemas and code (`password: string`), the names of authorization schemes
/// with nothing after them (`Authorization: Bearer`), and keywords of code.
const NOT_A_VALUE_WORDS: &[&str] = &[
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
];

/// Roots of dotted references that name where a value comes from rather than the value:
/// `env.GITHUB_TOKEN`, `settings.DB_PASSWORD`, `var.db_password` (Terraform),
/// `secrets.NPM_TOKEN` (Actions), `process.env.API_KEY`.
const REFERENCE_ROOTS: &[&str] = &[
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
struct FreeValue<'a> {
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
const FREE_VALUE_CHECKS: &[fn(&FreeValue) -> bool] = &[
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
    |c| is_non_secret_key(c.record, c.span.start),
    |c| is_path_tail_key(c.record, c.span.start),
    |c| is_powershell_cmdlet(c.core),
    |c| is_code_reference(&c.record[c.start..c.span.end + c.after.len()], c.core.len()),
];

/// The whole quoted string the value opens, where the rule stopped at a blank inside it, is
/// a placeholder: `"db_password": "VARIABLE IS NOT DEFINED!"`.
fn is_quoted_placeholder(c: &FreeValue) -> bool {
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
fn is_listed_word(c: &FreeValue) -> bool {
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
fn is_field_dump(c: &FreeValue) -> bool {
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
fn is_cast(c: &FreeValue) -> bool {
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
fn is_nested_assignment(c: &FreeValue) -> bool {
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
fn is_error_label(c: &FreeValue) -> bool {
    c.core.strip_suffix(b":").is_some_and(|w| {
        w.len() >= 2
            && w.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    }) && c.after.first() == Some(&b' ')
}

/// A size, as `kubectl describe secret` prints it: `password:  16 bytes`.
fn is_size(c: &FreeValue) -> bool {
    c.core.iter().all(u8::is_ascii_digit)
        && [&b" bytes"[..], b" chars", b" characters"]
            .iter()
            .any(|unit| c.after.starts_with(unit))
}

/// A note in brackets standing for the value: Terraform's `(sensitive value)` and
/// `(known after apply)`, `(from file …)`, `[not shown]`, `<not set>`.
fn is_bracket_note(c: &FreeValue) -> bool {
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
fn is_progress_word(c: &FreeValue) -> bool {
    c.core
        .strip_suffix(b"...")
        .is_some_and(|w| !w.is_empty() && w.iter().all(u8::is_ascii_alphabetic))
}

/// PowerShell's approved verbs (the common ones): a value `Verb-Noun` is a cmdlet call,
/// `$securePassword = Read-Host -AsSecureString`, `$token = (Get-AzAccessToken …)`.
const POWERSHELL_VERBS: &[&str] = &[
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

fn is_powershell_cmdlet(v: &[u8]) -> bool {
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
const NON_SECRET_KEY_SUFFIXES: &[&str] = &[
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
fn key_before(record: &[u8], start: usize) -> &[u8] {
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
fn is_path_tail_key(record: &[u8], start: usize) -> bool {
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

fn is_non_secret_key(record: &[u8], start: usize) -> bool {
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
fn is_resource_path(v: &[u8]) -> bool {
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
fn is_gitlab_runner_token_prefix(record: &[u8], span: std::ops::Range<usize>) -> bool {
    span.len() == 8
        && record[..span.start].ends_with(b" token=")
        && (memchr::memmem::find(record, b"coordinator").is_some()
            || memchr::memmem::find(record, b"Checking for jobs").is_some())
}

/// The value is inside a JSON string that is the value (or an array element) of a member
/// named like an id: `"authentication.kubernetes.io/credential-id":["BootstrapToken=07401b"]`.
fn is_in_id_member(record: &[u8], start: usize) -> bool {
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

/// The value is a word of a sentence, not a value: after `name:`, one word (lower case, the
/// first letter may be a capital) followed by a lower-case word that is not itself a key:
/// `*v1.Secret: secrets is forbidden`, `botocore.credentials:Looking for credentials`
/// (Python's default log format). `password: hunter user: bob` keeps `hunter`.
fn is_prose(record: &[u8], span: std::ops::Range<usize>) -> bool {
    let v = &record[span.clone()];
    let v = v.strip_suffix(b":").unwrap_or(v);
    if v.is_empty()
        || v.len() > 16
        || !v[0].is_ascii_alphabetic()
        || !v[1..].iter().all(u8::is_ascii_lowercase)
    {
        return false;
    }
    let raw_before = &record[..span.start];
    let before = raw_before.trim_ascii_end();
    // After `name:`, or after a flag and a blank (`Using --password via the CLI`).
    let flag = before.len() < raw_before.len() && {
        let word = before.len()
            - before
                .iter()
                .rev()
                .take_while(|b| !b.is_ascii_whitespace())
                .count();
        before[word..].starts_with(b"-")
    };
    if !(before.ends_with(b":") || flag) {
        return false;
    }
    let after = &record[span.end..];
    let Some(rest) = after.strip_prefix(b" ") else {
        return false;
    };
    // The next word; a lower-case path counts as one (`secret monitoring/dashboard-auth not
    // found`).
    let word = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
        .count();
    let next = &rest[..word];
    word > 0
        && rest[0].is_ascii_lowercase()
        && next
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'-' | b'_'))
        && (next.iter().all(u8::is_ascii_alphanumeric) || next.contains(&b'/'))
        // A whole word: it ends at a blank, the sentence's punctuation or the record, so the
        // call does not change when a token after it is replaced (`password: logged sk-…`
        // keeps nothing: `sk-…` is no word).
        && rest
            .get(word)
            .is_none_or(|b| b.is_ascii_whitespace() || matches!(b, b'.' | b',' | b';' | b')' | b'"' | b'\''))
}

/// A path of identifiers (`a.b`, `a->b`, `A::b`) at the start of `v`: its length and number
/// of segments.
fn ident_path(v: &[u8]) -> (usize, usize) {
    let ident = |from: usize| -> usize {
        match v.get(from) {
            Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                from + v[from..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count()
            }
            _ => from,
        }
    };
    let mut end = ident(0);
    if end == 0 {
        return (0, 0);
    }
    let mut segments = 1;
    loop {
        let sep = if v[end..].starts_with(b"->") || v[end..].starts_with(b"::") {
            2
        } else if v[end..].starts_with(b".") {
            1
        } else {
            break;
        };
        let next = ident(end + sep);
        if next == end + sep {
            break;
        }
        end = next;
        segments += 1;
    }
    (end, segments)
}

/// `ext` is the value followed by up to 64 bytes of the record; `vlen` the value's length.
fn is_code_reference(ext: &[u8], vlen: usize) -> bool {
    let (len, segments) = ident_path(&ext[..vlen]);
    if len < 2 {
        return false;
    }
    let path = &ext[..len];
    // What follows the path, in the value or, where the value ends at the path (the rule
    // stopped at a quote or blank), in the record after it.
    // `Account {name=…}` (Android) puts a blank before the brace.
    let brace_at = if ext.get(len) == Some(&b' ') && ext.get(len + 1) == Some(&b'{') {
        len + 1
    } else {
        len
    };
    let next = ext.get(brace_at).copied();
    let tail = ext.get(brace_at + 1..).unwrap_or(&[]);
    let ends_at_path = len == vlen;
    let root = &path[..path
        .iter()
        .position(|b| matches!(b, b'.' | b'-' | b':'))
        .unwrap_or(len)];
    let known_root = REFERENCE_ROOTS
        .iter()
        .any(|r| root.eq_ignore_ascii_case(r.as_bytes()));
    // An argument list or index that reads as code: empty, quoted, a name, a symbol.
    let code_args = |t: &[u8]| {
        t.is_empty()
            || matches!(t[0], b')' | b']' | b'"' | b'\'' | b':' | b'\\')
            || (t[0].is_ascii_alphabetic() || t[0] == b'_')
                && t.iter()
                    .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.')))
                    .is_none_or(|b| matches!(b, b')' | b']' | b',' | b' '))
    };
    match next {
        // A call or an index: `getPassword()`, `config.get("k")`, `os.environ["X"]`,
        // `params[:password]`, `ENV['X']`.
        Some(b'(') | Some(b'[') => (segments >= 2 || known_root || len >= 3) && code_args(tail),
        // A Java/Kotlin toString: `AppWindowToken{4a3b2c1 token=…}`, `User{id=42, …}`.
        Some(b'{') if path[0].is_ascii_uppercase() && path.iter().any(u8::is_ascii_lowercase) => {
            let hex = tail.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let (field, _) = ident_path(tail);
            ((6..=8).contains(&hex) && matches!(tail.get(hex), Some(b' ' | b'}')))
                || (field > 0 && tail.get(field) == Some(&b'='))
        }
        // Java's default toString: `com.acme.Credentials@1b6d3586`.
        Some(b'@') if segments >= 2 => {
            let hex = tail
                .iter()
                .take_while(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f'))
                .count();
            (6..=8).contains(&hex) && tail.get(hex).is_none_or(|b| !b.is_ascii_alphanumeric())
        }
        // A bare reference: `env.GITHUB_TOKEN`, `settings.DB_PASSWORD`, `var.db_password`.
        _ => ends_at_path && segments >= 2 && known_root,
    }
}

/// True when `record[span]` is, by where it stands, an identifier rather than a secret:
/// part of an AWS ARN (`arn:aws:secretsmanager:…:secret:prod/db-AbCdEf`: the `secret:` is a
/// resource type, not a key/value pair), or the shell's working directory (`PWD=/home/alice`
/// in every sudo line, `OLDPWD=`, `declare -x PWD="/app"`): `pwd` names a password only when
/// the value is not a path.
pub fn is_identifier_context(record: &[u8], span: std::ops::Range<usize>) -> bool {
    let before = &record[span.start.saturating_sub(256)..span.start];
    // The token the candidate sits in: back to a blank, quote, `=` or comma.
    let token_start = before
        .iter()
        .rposition(|b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'=' | b',' | b'(' | b'['))
        .map_or(0, |i| i + 1);
    let secret = &record[span.clone()];
    if before[token_start..].starts_with(b"arn:aws") || secret.starts_with(b"arn:aws") {
        return true;
    }
    // A PAM module's `(service:type)`: `pam_unix(passwd:chauthtok)`,
    // `pam_unix(gdm-password:session)`: the service is named like a password field.
    if [
        &b"auth"[..],
        b"account",
        b"session",
        b"password",
        b"chauthtok",
    ]
    .iter()
    .any(|w| record[span.start..].starts_with(w) && record.get(span.start + w.len()) == Some(&b')'))
        && before.ends_with(b":")
        && memchr::memmem::rfind(before, b"pam_").is_some_and(|i| before[i..].contains(&b'('))
    {
        return true;
    }
    if matches!(secret.first(), Some(b'/' | b'~')) {
        let key = before
            .strip_suffix(b"\"")
            .or_else(|| before.strip_suffix(b"'"))
            .unwrap_or(before);
        if let Some(key) = key.strip_suffix(b"=") {
            let word = key.len()
                - key
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
            let name = &key[word..];
            if name.eq_ignore_ascii_case(b"pwd") || name.eq_ignore_ascii_case(b"oldpwd") {
                return true;
            }
        }
    }
    false
}

/// True when `record[span]` starts with a JSON value that is not a string (`null`, `true`,
/// `false`, a number, an array or object) and stands where a JSON member's value stands (after `"name":`, the
/// name possibly escaped). Such a value is never a secret, and replacing it (or, worse, the
/// value and the `}` after it) would change the document: `{"password": null}` stays as it
/// is. Card numbers written as bare JSON numbers are left alone too: a marker there would
/// turn the number into invalid JSON.
pub fn is_json_scalar(record: &[u8], span: std::ops::Range<usize>) -> bool {
    let mut i = span.start;
    let skip_back = |mut i: usize| {
        while i > 0 && matches!(record[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        i
    };
    i = skip_back(i);
    if i == 0 || record[i - 1] != b':' {
        return false;
    }
    i = skip_back(i - 1);
    if i == 0 || record[i - 1] != b'"' {
        return false;
    }
    let value = &record[span.start..];
    let len = if matches!(value.first(), Some(b'[' | b'{')) {
        // An array or object only if it is one (`{noop}hunter2` is a password).
        let mut it =
            serde_json::Deserializer::from_slice(value).into_iter::<serde::de::IgnoredAny>();
        match it.next() {
            Some(Ok(_)) => it.byte_offset(),
            _ => return false,
        }
    } else {
        json_scalar_len(value)
    };
    // The value must end where JSON lets a value end, and the candidate must be that value
    // and nothing more than the structure after it (`null}`): `"pan": 4111 1111 1111 1111`
    // starts with the number 4111 but is a card.
    len > 0
        && len <= span.len()
        && value.get(len).is_none_or(|&b| ends_value(b))
        && record[span.start + len..span.end]
            .iter()
            .all(|b| matches!(b, b'}' | b']' | b',' | b' ' | b'\t'))
}

fn ends_value(b: u8) -> bool {
    matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'\\')
}

/// Length of the JSON literal or number at the start of `v` (0 if none).
fn json_scalar_len(v: &[u8]) -> usize {
    for lit in [&b"null"[..], b"true", b"false"] {
        if v.starts_with(lit) {
            return lit.len();
        }
    }
    let digits = |from: usize| from + v[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(v.first() == Some(&b'-'));
    let int_end = digits(i);
    if int_end == i {
        return 0;
    }
    i = int_end;
    if v.get(i) == Some(&b'.') {
        let frac_end = digits(i + 1);
        if frac_end == i + 1 {
            return 0;
        }
        i = frac_end;
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(v.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end == j {
            return 0;
        }
        i = exp_end;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_not_a_value` on the value after `key=` in `record`.
    fn not_value(record: &str, value: &str) -> bool {
        let start = record.find(value).expect("value in record");
        is_not_a_value(record.as_bytes(), start..start + value.len())
    }

    #[test]
    fn code_references_state_words_and_dumps_are_not_values() {
        for (rec, v) in [
            ("password = request.form[\"pw\"]", "request.form["),
            ("password = getPassword()", "getPassword()"),
            ("token = os.environ[\"X\"]", "os.environ["),
            ("api_key = config.get(\"k\")", "config.get("),
            ("token=env.GITHUB_TOKEN", "env.GITHUB_TOKEN"),
            ("token=process.env.API_TOKEN", "process.env.API_TOKEN"),
            ("password = settings.DB_PASSWORD;", "settings.DB_PASSWORD"),
            ("password: params[:password]", "params[:password]"),
            ("password = ENV['DB']", "ENV["),
            ("char *password = (char*)malloc(64);", "(char*)malloc(64)"),
            ("password = new PasswordEncoder()", "new"),
            (
                "token=AppWindowToken{4a3b2c1 token=x}",
                "AppWindowToken{4a3b2c1",
            ),
            ("user=User{id=42, password=null}", "User{id=42"),
            (
                "creds=com.acme.Creds@1b6d3586 ok",
                "com.acme.Creds@1b6d3586",
            ),
            ("(using password: YES)", "YES"),
            ("password: string;", "string"),
            ("Authorization: Bearer", "Bearer"),
            ("Token: {", "{"),
            ("password=--", "--"),
        ] {
            assert!(not_value(rec, v), "{rec:?}: {v:?} taken for a value");
        }
        // Values that only resemble code stay secrets.
        for (rec, v) in [
            ("password=Summer(2024)", "Summer(2024)"),
            ("password=hunter2", "hunter2"),
            ("password=Welcome@123456", "Welcome@123456"),
            ("password=my.dog.rex", "my.dog.rex"),
            ("password=Pass{123}", "Pass{123}"),
            ("password=newpass1", "newpass1"),
            ("password=new", "new"),
            ("password=!@#$%^&*", "!@#$%^&*"),
            ("password=Zx9q7w.Lp2", "Zx9q7w.Lp2"),
        ] {
            assert!(
                !not_value(rec, v),
                "{rec:?}: value {} dropped",
                &v[..4.min(v.len())]
            );
        }
    }

    #[test]
    fn prose_needs_a_whole_word_after_it() {
        let prose = |rec: &str, v: &str| {
            let start = rec.find(v).unwrap();
            is_prose(rec.as_bytes(), start..start + v.len())
        };
        assert!(prose("Secret: illegal base64 data at byte 12", "illegal"));
        assert!(prose("*v1.Secret: secrets is forbidden", "secrets"));
        // Found by the generated-input property (idempotence): what follows is a token, not
        // a word, and replacing it must not change the call.
        assert!(!prose("password: logged sk-proj-abc", "logged"));
        assert!(!prose(
            "password: logged [REDACTED:x:k1:0123456789abcdef]",
            "logged"
        ));
        assert!(!prose("password: hunter user: bob", "hunter"));
    }

    #[test]
    fn operator_tails_and_format_directives() {
        let tail = |rec: &str, at: usize| is_operator_tail(rec.as_bytes(), at..rec.len());
        assert!(tail("password:=x", 9));
        assert!(tail("password==x", 9));
        assert!(tail("password!=x", 9));
        assert!(tail("password=>x", 9));
        assert!(tail("Token::new", 6));
        assert!(!tail("password=x", 9));
        assert!(!tail("password:x", 9));
        for p in [
            "%s",
            "%v",
            "%-8s",
            "%.*s",
            "%d",
            "%q",
            "$1",
            "$password",
            "?",
            "~",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        for s in ["%sx9Lq", "%zz", "$2b$12$abc", "?x"] {
            assert!(!is_placeholder(s.as_bytes()), "{}", &s[..2]);
        }
    }

    #[test]
    fn arns_working_directories_and_hidden_markers_are_not_secrets() {
        let ctx = |rec: &str, needle: &str| {
            let s = rec.find(needle).unwrap();
            is_identifier_context(rec.as_bytes(), s..s + needle.len())
        };
        assert!(ctx(
            r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}"#,
            "prod/db-AbCdEf"
        ));
        assert!(ctx(
            "sudo: alice : TTY=pts/2 ; PWD=/home/alice ; USER=root",
            "/home/alice"
        ));
        assert!(ctx("declare -x OLDPWD=\"/app\"", "/app"));
        assert!(!ctx("DB_PWD=hunter2x", "hunter2x"));
        assert!(!ctx("PWD=Tr0ub4dor", "Tr0ub4dor"));
        assert!(!ctx("db_pwd=/x9!Qz", "/x9!Qz"));
        for p in [
            "[FILTERED]",
            "[MASKED]",
            "***",
            "(hidden)",
            "(null)",
            "<redacted>",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        assert!(!is_placeholder(b"[a1b2c3]"));
        assert!(!is_placeholder(b"[") && !is_placeholder(b"[]x"));
    }

    #[test]
    fn json_scalars_after_member_names() {
        let at = |rec: &str, needle: &str| {
            let s = rec.find(needle).unwrap();
            is_json_scalar(rec.as_bytes(), s..s + needle.len())
        };
        assert!(at(r#"{"password": null}"#, "null"));
        assert!(at(r#"{"secret":true,"a":1}"#, "true"));
        assert!(at(r#"{"token": 12345}"#, "12345"));
        assert!(at(r#"{"a":{"passwd":null}}}"#, "null"));
        assert!(at(r#"{"password": null}"#, "null}"));
        assert!(at(r#"{"k":-1.5e-7]"#, "-1.5e-7]"));
        assert!(at(r#"{\"password\":false}"#, "false"));
        assert!(at(r#"{"card": 4111111111111111}"#, "4111111111111111}"));
        assert!(at(r#"{"password":[]}"#, "[]"));
        assert!(at(r#"{"password": {}}"#, "{}"));
        assert!(!at(r#"{"password": {noop}hunter2}"#, "{noop}"));
        assert!(!at(
            r#""pan": 4111 1111 1111 1111 reason=x"#,
            "4111 1111 1111 1111"
        ));
        // Strings, unquoted words and things that only start like a literal are not.
        assert!(!at(r#"{"password": "null"}"#, "null\""));
        assert!(!at(r#"{"password": nullpointer}"#, "nullp"));
        assert!(!at(r#"{"password": 123abc}"#, "123abc"));
        assert!(!at("password: null", "null"));
        assert!(!at("password=12345", "12345"));
    }

    fn github_token(prefix: &str, random: &str) -> String {
        let check = base62_6(crc32fast::hash(random.as_bytes()));
        format!("{prefix}{random}{}", std::str::from_utf8(&check).unwrap())
    }

    #[test]
    fn crc32_base62_accepts_valid_and_rejects_tampered() {
        let t = github_token("ghp_", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1");
        assert_eq!(t.len(), 40);
        assert!(Validator::Crc32Base62.check(t.as_bytes()));
        let mut bad = t.clone().into_bytes();
        bad[10] = if bad[10] == b'x' { b'y' } else { b'x' };
        assert!(!Validator::Crc32Base62.check(&bad));
        assert!(!Validator::Crc32Base62.check(b"ghp_short"));
    }

    #[test]
    fn base62_encoding_is_digits_upper_lower() {
        assert_eq!(&base62_6(0), b"000000");
        assert_eq!(&base62_6(61), b"00000z");
        assert_eq!(&base62_6(62), b"000010");
        assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn luhn_cards() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"3782-822463-10005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"411111111111")); // too short
    }

    #[test]
    fn jwt_structure() {
        let ok = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(Validator::Jwt.check(ok));
        // Header without "alg".
        assert!(!Validator::Jwt.check(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"));
        assert!(!Validator::Jwt.check(b"eyJhbGciOi.notjson.sig"));
        assert!(!Validator::Jwt.check(b"a.b"));
    }

    #[test]
    fn basic_auth_decodes_user_colon_pass() {
        assert!(Validator::BasicAuth.check(b"YWxhZGRpbjpvcGVuc2VzYW1l")); // aladdin:opensesame
        assert!(!Validator::BasicAuth.check(b"aGVsbG8gd29ybGQ=")); // no colon
        assert!(!Validator::BasicAuth.check(b"not base64!"));
    }

    #[test]
    fn iban_mod97() {
        assert!(Validator::Iban.check(b"DE89370400440532013000"));
        assert!(Validator::Iban.check(b"GB82 WEST 1234 5698 7654 32"));
        assert!(!Validator::Iban.check(b"DE89370400440532013001"));
        assert!(!Validator::Iban.check(b"XX00"));
    }

    #[test]
    fn ssn_ranges() {
        assert!(Validator::UsSsn.check(b"123-45-6789"));
        assert!(Validator::UsSsn.check(b"123456789"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "12-345-678",
        ] {
            assert!(!Validator::UsSsn.check(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn pypi_tokens_name_pypi_org() {
        // "AgEIcHlwaS5vcmc" is base64url of 02 01 08 "pypi.org".
        assert!(Validator::PypiMacaroon.check(b"pypi-AgEIcHlwaS5vcmcCJGFiY2RlZg"));
        assert!(!Validator::PypiMacaroon.check(b"pypi-AgEIdGVzdC5vcmcCJGFiY2RlZg"));
        assert!(!Validator::PypiMacaroon.check(b"npm_AgEIcHlwaS5vcmc"));
    }

    #[test]
    fn bech32_checksums() {
        // BIP-173 test vectors.
        assert!(bech32(b"A12UEL5L"));
        assert!(bech32(b"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"));
        assert!(!bech32(b"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx"));
        assert!(!bech32(b"nosep"));
    }

    #[test]
    fn gitlab_routable_tokens() {
        // Made here with the published construction (CRC32 over prefix, payload and length).
        for t in [
            "glpat-YzoxCm86MnMKdTo5emvn7udhXvNfMOSbSC4VyudQEA.160uhi63i",
            "glrt-t1_YzoxCm86NQpwOmFiByAeEmF7D-2n4WR3lv8CKxA.130pw0zus",
            "glpat-bzoxYgp1OjNm6o7QKoKhdZMPIzfNN5TFIhA.0z179c8h9",
        ] {
            assert!(Validator::GitlabRoutable.check(t.as_bytes()), "{t}");
            let mut bad = t.as_bytes().to_vec();
            bad[8] ^= 1;
            assert!(!Validator::GitlabRoutable.check(&bad));
        }
        assert!(!Validator::GitlabRoutable.check(b"glpat-abcdefghijklmnopqrst"));
    }

    #[test]
    fn pem_armour_checks_labels_and_body() {
        let ok = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
        assert!(Validator::PemArmour.check(ok.as_bytes()));
        assert!(Validator::PemArmour.check(ok.replace("\n", "\\n").as_bytes()));
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO\n-----END RSA PRIVATE KEY-----";
        assert!(Validator::PemArmour.check(enc.as_bytes()));
        assert!(!Validator::PemArmour.check(ok.replace("END RSA", "END EC").as_bytes()));
        assert!(!Validator::PemArmour
            .check(b"-----BEGIN PRIVATE KEY----- paste your key here -----END PRIVATE KEY-----"));
        assert!(!Validator::PemArmour.check(
            b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----"
        ));
        assert!(Validator::PemArmour.check(b"-----BEGIN EC PRIVATE KEY-----"));
        // A truncated block (no END) still counts.
        assert!(Validator::PemArmour.check(
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
        ));
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn placeholders() {
        for p in [
            "${DB_PASSWORD}",
            "$DB_PASSWORD",
            "{{ vault.secret }}",
            "<redacted>",
            "<your-token>",
            "****",
            "xxxxxxxx",
            "sk_test_xxxx",
            "null",
            "None",
            "[REDACTED:generic-password:k1:0011223344556677]",
            "0000000",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p} should be a placeholder");
        }
        for s in [
            "changeme",
            "hunter2",
            "s3cr3t!",
            "$ecretPa55",
            "wJalrXUtnFEMI/xXx0bPxRfiCY",
        ] {
            assert!(!is_placeholder(s.as_bytes()), "{s} is a secret");
        }
    }

    #[test]
    fn names_round_trip() {
        for (name, v, _) in Validator::ALL {
            assert_eq!(Validator::from_name(name), Some(*v));
            assert_eq!(v.name(), *name);
        }
        assert_eq!(Validator::from_name("nope"), None);
    }
}
