//! Offline validators: checks on a candidate secret that a regex cannot express (checksums,
//! decodable structure, entropy) and the placeholder stop-list. They keep false positives rare:
//! a redactor that mangles order numbers and trace ids gets switched off.

use base64::Engine as _;

mod context;
mod placeholders;
mod values;

pub use context::*;
pub use placeholders::*;
pub use values::*;

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
    /// Upper- and lowercase letters and digits, all three (a generated key, not a word, a
    /// path, a hex digest or a UUID): for values known only by a `*_key` name.
    MixedAlnum,
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
        (
            "mixed-alnum",
            Validator::MixedAlnum,
            "has uppercase, lowercase and digits (generated keys; not hex, UUIDs or words)",
        ),
    ];

    /// The validator with this name in rule files.
    pub fn from_name(name: &str) -> Option<Validator> {
        Self::ALL
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
    }

    /// Its name in rule files.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == self)
            .map(|(n, _, _)| *n)
            .expect("every validator is listed in ALL")
    }

    /// True if `secret` passes.
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
            Validator::MixedAlnum => mixed_alnum(secret),
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

/// True if `s` has at least one uppercase letter, one lowercase letter and one digit.
pub fn mixed_alnum(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_uppercase)
        && s.iter().any(u8::is_ascii_lowercase)
        && s.iter().any(u8::is_ascii_digit)
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

#[cfg(test)]
mod tests;
