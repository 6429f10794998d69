//! The findings audit trail (`--findings FILE`): one JSON object per finding, with when,
//! where (input, record number, byte offset in the record) and which credential (rule, key
//! id, fingerprint, length), never the secret or the text around it. Compliance asks "when,
//! where, which credential"; a SIEM can alert on a leaked token by its fingerprint.
//!
//! Written beside the redacted output, from the delivery side, in input order: a line is
//! written once the batch that holds the finding has been redacted, before that batch's
//! output is flushed.

use std::io::Write;

use anyhow::{Context, Result};

use crate::engine::{Engine, Redacted};

/// Where findings lines go, and the position in the current input.
pub struct FindingsLog {
    out: Box<dyn Write + Send>,
    name: String,
    rules: Vec<String>,
    key_id: String,
    input: String,
    /// Records of the current input before the current batch.
    records_before: u64,
    /// Bytes of the current input's unfinished record before the current batch.
    carry: u64,
    written: u64,
}

impl FindingsLog {
    /// Opens `path` (`-` is stdout) for the findings of `engine`.
    pub fn create(path: &str, engine: &Engine) -> Result<FindingsLog> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("findings log {path}: cannot open for writing"))?;
            Box::new(f)
        };
        Ok(Self::to_writer(out, path, engine))
    }

    /// Findings of `engine` to `out` (named `name` in errors).
    pub fn to_writer(out: Box<dyn Write + Send>, name: &str, engine: &Engine) -> FindingsLog {
        FindingsLog {
            out: Box::new(std::io::BufWriter::new(out)),
            name: name.to_string(),
            rules: engine
                .matcher()
                .rules()
                .iter()
                .map(|r| r.id.clone())
                .collect(),
            key_id: engine.keyring().active().id().to_string(),
            input: String::new(),
            records_before: 0,
            carry: 0,
            written: 0,
        }
    }

    /// A new input starts: its records are numbered from 1.
    pub fn begin_input(&mut self, input: &str) {
        self.input = input.to_string();
        self.records_before = 0;
        self.carry = 0;
    }

    /// Writes the findings of the next batch of the current input.
    pub fn batch(&mut self, r: &Redacted) -> Result<()> {
        if !r.findings.is_empty() {
            let time = rfc3339_now();
            for f in &r.findings {
                // The first record of a batch may have begun in the batch before.
                let carry = if f.record == 0 { self.carry } else { 0 };
                // Members in a fixed order (when, where, which), strings JSON-escaped.
                let q = |t: &str| serde_json::Value::from(t).to_string();
                writeln!(
                    self.out,
                    "{{\"time\":\"{time}\",\"input\":{},\"record\":{},\"offset\":{},\"rule\":{},\"key_id\":{},\"fingerprint\":\"{}\",\"length\":{}}}",
                    q(&self.input),
                    self.records_before + f.record as u64 + 1,
                    carry + f.in_record as u64,
                    q(&self.rules[f.rule as usize]),
                    q(&self.key_id),
                    f.fingerprint,
                    f.len
                )
                    .with_context(|| format!("findings log {}: write failed", self.name))?;
                self.written += 1;
            }
        }
        self.records_before += r.records;
        self.carry = if r.tail_len == r.input_len {
            self.carry + r.tail_len as u64
        } else {
            r.tail_len as u64
        };
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("findings log {}: write failed", self.name))
    }

    /// Findings written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// The current UTC time as `2026-12-04T21:40:00.123Z`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

/// Seconds since the epoch (and milliseconds) as RFC 3339 UTC.
pub fn rfc3339(secs: i64, millis: u32) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_796_420_400, 123), "2026-12-04T21:40:00.123Z");
        assert_eq!(rfc3339(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }
}
