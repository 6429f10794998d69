//! The placeholder stop-list: values that stand for a secret without being one
//! (`[FILTERED]`, `<token>`, `${VAR}`, `xxxx`), format directives and operator tails.

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
pub(super) fn is_format_directive(s: &[u8]) -> bool {
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
