//! Small text helpers shared by every layer (rules, config, fingerprints, messages), kept
//! here so that no layer imports another one just for them.

use anyhow::{bail, Result};

/// First 4 characters of a text, for messages that must not quote secrets.
pub fn preview(s: &str) -> String {
    let p: String = s.chars().take(4).collect();
    if s.chars().count() > 4 {
        format!("{p}…")
    } else {
        p
    }
}

/// Fails with `NAME must be between LO and HI (got V)` unless `lo <= v <= hi`.
pub fn within(name: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if v < lo || v > hi {
        bail!("{name} must be between {lo} and {hi} (got {v})");
    }
    Ok(())
}

/// A TOML error as one line, `origin: line L, column C: message`, without the quoted source
/// line that `toml` prints (a misplaced key would be echoed to stderr) and with quoted values
/// in the message cut to their first 4 characters.
pub(crate) fn toml_error(e: &toml::de::Error, text: &str, origin: &str) -> anyhow::Error {
    let mut msg = String::new();
    let raw = e.message().replace('\n', " ");
    let mut parts = raw.split('"');
    if let Some(first) = parts.next() {
        msg.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        msg.push('"');
        // Odd pieces are inside quotes.
        if i % 2 == 0 {
            msg.push_str(&preview(part));
        } else {
            msg.push_str(part);
        }
    }
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            anyhow::anyhow!("{origin}: line {line}, column {col}: {}", msg.trim_end())
        }
        None => anyhow::anyhow!("{origin}: {}", msg.trim_end()),
    }
}
