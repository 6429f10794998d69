//! Checks on the record around a candidate: prose, identifiers by context (ARNs,
//! `PWD=/path`, code references), JSON scalars after a member name.

use super::*;

/// The value is a word of a sentence, not a value: after `name:`, one word (lower case, the
/// first letter may be a capital) followed by a lower-case word that is not itself a key:
/// `*v1.Secret: secrets is forbidden`, `botocore.credentials:Looking for credentials`
/// (Python's default log format). `password: hunter user: bob` keeps `hunter`.
pub(super) fn is_prose(record: &[u8], span: std::ops::Range<usize>) -> bool {
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
pub(super) fn ident_path(v: &[u8]) -> (usize, usize) {
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
pub(super) fn is_code_reference(ext: &[u8], vlen: usize) -> bool {
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

pub(super) fn ends_value(b: u8) -> bool {
    matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'\\')
}

/// Length of the JSON literal or number at the start of `v` (0 if none).
pub(super) fn json_scalar_len(v: &[u8]) -> usize {
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
