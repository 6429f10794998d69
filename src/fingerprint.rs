//! Keyring and keyed fingerprints.
//!
//! A fingerprint is the first 8 bytes of `HMAC-SHA256(key, secret bytes)`, written as 16
//! lowercase hex digits. It depends on the key and the secret only: never on the rule that
//! found the secret, nor on where it was found. Equal secrets stay equal (incidents still
//! correlate), and without the key a fingerprint cannot be brute-forced back to a short
//! password.
//!
//! Keys come from `LOGVEIL_KEY`, a key file or the `[[keys]]` list of the config, never from
//! code. They are zeroized on drop and never printed: `Debug` shows the id only.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Minimum key length in bytes.
/// Environment variable holding the key (`hex:…`, `base64:…` or raw, at least 32 bytes).
pub const KEY_ENV: &str = "LOGVEIL_KEY";
/// Environment variable naming the id of the `LOGVEIL_KEY` / `--key-file` key.
pub const KEY_ID_ENV: &str = "LOGVEIL_KEY_ID";

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Number of HMAC bytes kept in a fingerprint.
pub const FINGERPRINT_BYTES: usize = 8;
/// Default replacement template.
pub const DEFAULT_TEMPLATE: &str = "[REDACTED:{rule}:{key_id}:{fp}]";
/// Key id used for `LOGVEIL_KEY` and `--key-file` unless `LOGVEIL_KEY_ID` says otherwise.
pub const DEFAULT_KEY_ID: &str = "k1";
/// Longest rule id a marker is recognised with (rule ids are kebab-case, see `rules`).
pub const MAX_RULE_ID_LEN: usize = 64;
/// Key id of the random per-run key used when no key is configured.
pub const EPHEMERAL_KEY_ID: &str = "ephemeral";

type HmacSha256 = Hmac<Sha256>;

/// A fingerprint: the truncated HMAC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; FINGERPRINT_BYTES]);

impl Fingerprint {
    /// Writes the 16 lowercase hex digits into `out`.
    pub fn write_hex(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in self.0 {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// One key: an id (printed in every fingerprint) and the secret bytes (never printed).
pub struct Key {
    id: String,
    /// The key bytes, wiped when the key is dropped. The HMAC is keyed afresh for each
    /// secret (two extra SHA-256 blocks): findings are rare, so this costs nothing
    /// measurable, and no long-lived key-derived state stays in memory.
    bytes: Zeroizing<Vec<u8>>,
}

impl Key {
    /// Builds a key from raw bytes. Fails if shorter than [`MIN_KEY_LEN`].
    pub fn new(id: &str, bytes: Zeroizing<Vec<u8>>) -> Result<Key> {
        validate_key_id(id)?;
        if bytes.len() < MIN_KEY_LEN {
            bail!(
                "key '{id}' is {} bytes long; at least {MIN_KEY_LEN} bytes are required",
                bytes.len()
            );
        }
        Ok(Key {
            id: id.to_string(),
            bytes,
        })
    }

    /// Parses a key given as `hex:…`, `base64:…` or raw text (the env-variable format).
    pub fn parse(id: &str, text: &str, origin: &str) -> Result<Key> {
        let text = text.trim_end_matches(['\n', '\r']);
        let bytes = if let Some(h) = text.strip_prefix("hex:") {
            Zeroizing::new(
                hex::decode(h.trim())
                    .map_err(|_| anyhow::anyhow!("{origin}: the 'hex:' key is not valid hex"))?,
            )
        } else if let Some(b) = text.strip_prefix("base64:") {
            Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|_| {
                        anyhow::anyhow!("{origin}: the 'base64:' key is not valid base64")
                    })?,
            )
        } else {
            Zeroizing::new(text.as_bytes().to_vec())
        };
        Key::new(id, bytes).with_context(|| origin.to_string())
    }

    /// Makes a random key (for runs with no key configured).
    pub fn random(id: &str) -> Result<Key> {
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        getrandom::getrandom(&mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read random bytes for a per-run key: {e}"))?;
        Key::new(id, bytes)
    }

    /// Reads a key file: refused if group or others may read it (on Unix).
    pub fn from_file(id: &str, path: &Path) -> Result<Key> {
        if std::fs::metadata(path).is_err() {
            // A key pasted where its path belongs must not reach stderr.
            bail!(
                "cannot read key file {}: no such file (a key file holds the key; the key itself goes in {} or a file, never in the setting)",
                shown_setting(&path.to_string_lossy()),
                KEY_ENV
            );
        }
        check_key_file_permissions(path)?;
        let text = Zeroizing::new(
            std::fs::read(path)
                .with_context(|| format!("cannot read key file {}", path.display()))?,
        );
        let text = std::str::from_utf8(&text).map_err(|_| {
            anyhow::anyhow!(
                "key file {}: not UTF-8; write the key as 'hex:…' or 'base64:…'",
                path.display()
            )
        })?;
        Key::parse(id, text, &format!("key file {}", path.display()))
    }

    /// The key id that fingerprints name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fingerprint of `secret` under this key.
    pub fn fingerprint(&self, secret: &[u8]) -> Fingerprint {
        let mut mac =
            HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes keys of any length");
        mac.update(secret);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; FINGERPRINT_BYTES];
        out.copy_from_slice(&full[..FINGERPRINT_BYTES]);
        Fingerprint(out)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A setting value (a path, a variable name) as shown in a message: in full when it is
/// shorter than the shortest key ([`MIN_KEY_LEN`] bytes, so it cannot be one), else its first
/// 4 characters and its length: a key pasted in the wrong place must not reach stderr.
pub fn shown_setting(value: &str) -> String {
    if value.len() < MIN_KEY_LEN {
        value.to_string()
    } else {
        format!(
            "'{}' ({} characters, not shown in case it is a key)",
            crate::text::preview(value),
            value.chars().count()
        )
    }
}

/// Bytes a damaged marker may hold between its opening and its fingerprint: anything but a
/// blank, a newline or a bracket. Escapes and quotes (a marker inside JSON), control bytes,
/// NUL and invalid UTF-8 (a corrupted transport, a lossy decoder's `\xc3(`) keep it a
/// marker, so nothing inside it is taken for a `token:` key (found by generated inputs).
/// Still bounded: the opening, at most the template's length, 16 hex digits, the close.
const DAMAGED: &str = r#"[^ \n\[\]]"#;

fn validate_key_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        bail!(
            "invalid key id {}: use 1-32 characters of [A-Za-z0-9._-]",
            shown_setting(id)
        );
    }
    Ok(())
}

#[cfg(unix)]
fn check_key_file_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} is readable or writable by group or others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_file_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

/// Where a configured key comes from (config `[[keys]]`): never the key itself.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Key id.
    pub id: String,
    /// Path of a key file (mode 600).
    pub file: Option<PathBuf>,
    /// Name of an environment variable holding the key.
    pub env: Option<String>,
    /// The key that fingerprints new findings. Exactly one key is active.
    #[serde(default)]
    pub active: bool,
}

/// All keys of a run: the active one fingerprints findings; the others are kept so that
/// `logveil fingerprint` can answer for data written under older keys (rotation).
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<Key>,
    active: usize,
    ephemeral: bool,
}

impl Keyring {
    /// A keyring of one key.
    pub fn single(key: Key) -> Keyring {
        Keyring {
            keys: vec![key],
            active: 0,
            ephemeral: false,
        }
    }

    /// A keyring with one random key: fingerprints will not match other runs.
    pub fn ephemeral() -> Result<Keyring> {
        Ok(Keyring {
            keys: vec![Key::random(EPHEMERAL_KEY_ID)?],
            active: 0,
            ephemeral: true,
        })
    }

    /// Builds a keyring from config specs, reading env variables and files.
    pub fn from_specs(specs: &[KeySpec]) -> Result<Keyring> {
        let mut keys = Vec::new();
        let mut active = None;
        for spec in specs {
            // First, so that every message below may name the id: a valid id is too short to
            // be a key pasted into `id =`.
            validate_key_id(&spec.id)?;
            let key = match (&spec.file, &spec.env) {
                (Some(file), None) => Key::from_file(&spec.id, file)
                    .with_context(|| format!("[[keys]] id '{}'", spec.id))?,
                (None, Some(var)) => {
                    // Refuse what is not a variable name without echoing it: a key pasted
                    // into `env =` by mistake must not reach stderr.
                    if var.is_empty()
                        || var.as_bytes()[0].is_ascii_digit()
                        || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        bail!(
                            "key '{}': 'env' must name an environment variable (letters, digits, _)",
                            spec.id
                        );
                    }
                    let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                        anyhow::anyhow!(
                            "key '{}': environment variable {} is not set or not UTF-8",
                            spec.id,
                            shown_setting(var)
                        )
                    })?);
                    Key::parse(
                        &spec.id,
                        &value,
                        &format!("key '{}' (${})", spec.id, shown_setting(var)),
                    )?
                }
                _ => bail!(
                    "key '{}': give exactly one of 'file' or 'env' (keys never go in the config itself)",
                    spec.id
                ),
            };
            if keys.iter().any(|k: &Key| k.id == spec.id) {
                bail!("key id '{}' appears twice in [[keys]]", spec.id);
            }
            if spec.active {
                if active.is_some() {
                    bail!("more than one key in [[keys]] is marked active = true");
                }
                active = Some(keys.len());
            }
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("[[keys]] is empty");
        }
        let active = match active {
            Some(a) => a,
            None if keys.len() == 1 => 0,
            None => bail!("[[keys]] lists several keys but none is marked active = true"),
        };
        Ok(Keyring {
            keys,
            active,
            ephemeral: false,
        })
    }

    /// The key that fingerprints are made with.
    pub fn active(&self) -> &Key {
        &self.keys[self.active]
    }

    /// Every key, the active one included.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// True when the key was made up for this run.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }
}

/// A parsed replacement template: literal text around `{rule}`, `{key_id}` and `{fp}`.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Lit(Vec<u8>),
    Rule,
    KeyId,
    Fp,
}

impl Template {
    /// Parses a template: literal text with `{rule}`, `{key_id}`, `{fp}`.
    pub fn parse(text: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut has_fp = false;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Lit(rest.as_bytes()[..open].to_vec()));
            }
            let after = &rest[open..];
            let close = after
                .find('}')
                .ok_or_else(|| anyhow::anyhow!("template '{text}': '{{' without '}}'"))?;
            match &after[1..close] {
                "rule" => parts.push(TemplatePart::Rule),
                "key_id" => parts.push(TemplatePart::KeyId),
                "fp" => {
                    has_fp = true;
                    parts.push(TemplatePart::Fp)
                }
                other => bail!(
                    "template '{text}': unknown placeholder '{{{other}}}' (use {{rule}}, {{key_id}}, {{fp}})"
                ),
            }
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Lit(rest.as_bytes().to_vec()));
        }
        if !has_fp {
            bail!("template '{text}' must contain {{fp}}");
        }
        Ok(Template { parts })
    }

    /// A regex (bytes, no Unicode) for the text this template renders, under any rule and
    /// any key id: the shape of logveil's own markers, so that redacting redacted output
    /// leaves the markers alone. `None` when the template has no literal part of at least 2
    /// bytes (`{fp}` alone): then any 16 hex digits would look like a marker, and markers are
    /// not recognised. The second value is the longest text the regex can match.
    ///
    /// A template that begins and ends with literals (the default `[REDACTED:` … `]`) also
    /// matches a damaged marker: its opening, then from 16 up to the longest marker's inside
    /// (plus 8) bytes that are not blanks, newlines or brackets ([`DAMAGED`]), then the
    /// closing literal. So a marker with a quote, a CR, a control byte or invalid UTF-8
    /// anywhere in it, its fingerprint included, stays a marker, not a `token:` to find;
    /// text with a blank inside, or longer than any marker, does not.
    pub fn marker_pattern(&self) -> Option<(String, usize)> {
        let (strict, max) = self.strict_marker_pattern()?;
        let escape = |l: &[u8]| {
            l.iter()
                .map(|&b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("\\x{b:02x}")
                    }
                })
                .collect::<String>()
        };
        match (self.parts.first(), self.parts.last()) {
            (Some(TemplatePart::Lit(open)), Some(TemplatePart::Lit(close)))
                if self.parts.len() > 1 && open.len() >= 2 =>
            {
                // Damage may land anywhere, the fingerprint included: between the literals,
                // at least a fingerprint's length and at most the longest marker's inside
                // plus a few mangled bytes.
                let inner = max - open.len() - close.len() + 8;
                Some((
                    format!(
                        "{strict}|{}{DAMAGED}{{{},{inner}}}{}",
                        escape(open),
                        2 * FINGERPRINT_BYTES,
                        escape(close)
                    ),
                    max + 8,
                ))
            }
            _ => Some((strict, max)),
        }
    }

    fn strict_marker_pattern(&self) -> Option<(String, usize)> {
        let has_literal = self
            .parts
            .iter()
            .any(|p| matches!(p, TemplatePart::Lit(l) if l.len() >= 2));
        if !has_literal {
            return None;
        }
        let (mut re, mut max) = (String::new(), 0);
        for part in &self.parts {
            match part {
                TemplatePart::Lit(l) => {
                    for &b in l {
                        if b.is_ascii_alphanumeric() {
                            re.push(b as char);
                        } else {
                            re.push_str(&format!("\\x{b:02x}"));
                        }
                    }
                    max += l.len();
                }
                TemplatePart::Rule => {
                    re.push_str(&format!("[a-z0-9-]{{1,{MAX_RULE_ID_LEN}}}"));
                    max += MAX_RULE_ID_LEN;
                }
                TemplatePart::KeyId => {
                    re.push_str("[A-Za-z0-9._-]{1,32}");
                    max += 32;
                }
                TemplatePart::Fp => {
                    re.push_str(&format!("[0-9a-f]{{{}}}", 2 * FINGERPRINT_BYTES));
                    max += 2 * FINGERPRINT_BYTES;
                }
            }
        }
        Some((re, max))
    }

    /// Appends the replacement text for one finding to `out`.
    pub fn render(&self, out: &mut Vec<u8>, rule: &str, key_id: &str, fp: &Fingerprint) {
        for part in &self.parts {
            match part {
                TemplatePart::Lit(l) => out.extend_from_slice(l),
                TemplatePart::Rule => out.extend_from_slice(rule.as_bytes()),
                TemplatePart::KeyId => out.extend_from_slice(key_id.as_bytes()),
                TemplatePart::Fp => fp.write_hex(out),
            }
        }
    }
}

impl Default for Template {
    fn default() -> Self {
        Template::parse(DEFAULT_TEMPLATE).expect("default template is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::parse("k1", text, "test").unwrap()
    }

    // The README's test vectors. Changing these means changing the published format.
    const VECTOR_KEY: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn readme_test_vectors() {
        let k = key(VECTOR_KEY);
        assert_eq!(k.fingerprint(b"hunter2").to_string(), "8629d712da366318");
        assert_eq!(
            k.fingerprint(b"AKIAIOSFODNN7EXAMPLE").to_string(),
            "65fbd4cdc580ad37"
        );
        assert_eq!(k.fingerprint(b"").to_string(), "d38b42096d80f45f");
    }

    #[test]
    fn key_formats_agree() {
        let hex = key("hex:6c6f677665696c2d746573742d6b65792d7468697274792d74776f2d62797465");
        let b64 = key("base64:bG9ndmVpbC10ZXN0LWtleS10aGlydHktdHdvLWJ5dGU=");
        let raw = key("logveil-test-key-thirty-two-byte");
        let fp = raw.fingerprint(b"s3cr3t");
        assert_eq!(hex.fingerprint(b"s3cr3t"), fp);
        assert_eq!(b64.fingerprint(b"s3cr3t"), fp);
    }

    #[test]
    fn short_and_malformed_keys_are_refused() {
        let err = Key::parse("k1", "too-short", "LOGVEIL_KEY").unwrap_err();
        assert!(format!("{err:#}").contains("at least 32 bytes"), "{err:#}");
        let err = Key::parse("k1", "hex:zz", "LOGVEIL_KEY").unwrap_err();
        assert!(format!("{err:#}").contains("not valid hex"), "{err:#}");
        // The error never echoes the key material.
        let err = Key::parse("k1", "hex:abcdef-SECRETMATERIAL", "LOGVEIL_KEY").unwrap_err();
        assert!(!format!("{err:#}").contains("SECRETMATERIAL"));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = key("logveil-test-key-thirty-two-byte");
        let dbg = format!("{k:?}");
        assert!(dbg.contains("k1"));
        assert!(!dbg.contains("logveil-test"));
    }

    #[test]
    fn fingerprint_depends_on_key_and_secret_only() {
        let a = key("logveil-test-key-thirty-two-byte");
        let b = key("logveil-test-key-thirty-two-bytf");
        assert_eq!(a.fingerprint(b"x"), a.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), a.fingerprint(b"y"));
        assert_ne!(a.fingerprint(b"x"), b.fingerprint(b"x"));
    }

    #[test]
    fn template_renders_and_validates() {
        let t = Template::default();
        let mut out = Vec::new();
        t.render(&mut out, "aws-key", "k1", &Fingerprint([0xab; 8]));
        assert_eq!(out, b"[REDACTED:aws-key:k1:abababababababab]");
        let t = Template::parse("<{fp}>").unwrap();
        out.clear();
        t.render(&mut out, "r", "k", &Fingerprint([1; 8]));
        assert_eq!(out, b"<0101010101010101>");
        assert!(Template::parse("[{rule}]").is_err());
        assert!(Template::parse("[{fp}{bogus}]").is_err());
        assert!(Template::parse("[{fp}").is_ok());
        assert!(Template::parse("{fp").is_err());
    }

    #[test]
    fn keyring_from_specs_needs_one_active() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "logveil-test-key-thirty-two-byte\n").unwrap();
        let loose = dir.path().join("loose");
        std::fs::write(&loose, "logveil-test-key-thirty-two-byte").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = Key::from_file("k1", &loose).unwrap_err();
            assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        }
        let spec = |id: &str, active| KeySpec {
            id: id.into(),
            file: Some(p.clone()),
            env: None,
            active,
        };
        let ring = Keyring::from_specs(&[spec("old", false), spec("new", true)]).unwrap();
        assert_eq!(ring.active().id(), "new");
        assert_eq!(ring.keys().len(), 2);
        assert!(Keyring::from_specs(&[spec("a", false), spec("b", false)]).is_err());
        assert!(Keyring::from_specs(&[spec("a", true), spec("a", false)]).is_err());
        // The trailing newline of a key file is not part of the key.
        let raw = key("logveil-test-key-thirty-two-byte");
        assert_eq!(
            ring.active().fingerprint(b"z"),
            raw.fingerprint(b"z"),
            "key file with newline differs from raw key"
        );
    }
}
