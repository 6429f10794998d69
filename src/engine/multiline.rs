//! State that crosses records: a private key printed one line per record.
//!
//! A record whose `-----BEGIN … PRIVATE KEY-----` line ends it (no `END` in the same record)
//! opens a block. Each following record is part of the key body while it carries base64 (a
//! run of 16 or more base64 characters, or a shorter one ending in `=`), a PEM header
//! (`Proc-Type:`, `DEK-Info:`, `Comment:`) or nothing; its base64 runs are redacted, and the
//! record stays a record. The block ends at the `-----END` record, or, for a truncated key, at
//! the first record that cannot be part of a key body (that record is scanned as usual).
//!
//! The state at the start of a batch comes from the batches before it in the same input: the
//! reader computes it with [`walk`] (a memchr pass when no block is open) and hands it to the
//! worker with the batch, so batches still run in parallel, and one input's state never
//! reaches another input.

use std::ops::Range;

/// Whether a private-key block is open at this point of an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carry {
    pub in_key: bool,
}

const MARKER: &[u8] = b"PRIVATE KEY";

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Does this record open a block: a private-key BEGIN line with no END and no body after it.
fn opens(rec: &[u8]) -> bool {
    let Some(b) = memchr::memmem::find(rec, b"-----BEGIN ") else {
        return false;
    };
    let after = &rec[b + 11..];
    let Some(close) = memchr::memmem::find(after, b"-----") else {
        return false;
    };
    let label = &after[..close];
    if memchr::memmem::find(label, MARKER).is_none() {
        return false;
    }
    let rest = &after[close + 5..];
    // The body goes on in the next records: no END here, and no body in this record (that
    // case is the single-record rule's), only the rest of the record's wrapping.
    let mut spans = Vec::new();
    memchr::memmem::find(rest, b"-----END").is_none()
        && body_runs(rest, &mut spans).is_none_or(|()| spans.is_empty())
}

/// Classifies a record inside an open block: `Some(spans)` (possibly empty) if it is part of
/// the key body, `None` if it ends the block without being part of it.
fn body_runs(rec: &[u8], spans: &mut Vec<Range<usize>>) -> Option<()> {
    let start_len = spans.len();
    let mut i = 0;
    while i < rec.len() {
        if !is_b64(rec[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < rec.len() && is_b64(rec[i]) {
            i += 1;
        }
        let run = &rec[s..i];
        if run.len() >= 16 || (run.len() >= 4 && run.ends_with(b"=")) {
            spans.push(s..i);
        }
    }
    if spans.len() > start_len {
        return Some(());
    }
    let trimmed = rec.trim_ascii();
    let header = [&b"Proc-Type:"[..], b"DEK-Info:", b"Comment:"]
        .iter()
        .any(|h| memchr::memmem::find(trimmed, h).is_some());
    (trimmed.is_empty() || header).then_some(())
}

/// Walks a batch from state `carry`; calls `body(span)` for every base64 run of a key body
/// (batch offsets) and returns the state at the end of the batch.
pub fn walk(carry: Carry, batch: &[u8], mut body: impl FnMut(Range<usize>)) -> Carry {
    let mut in_key = carry.in_key;
    let mut pos = 0;
    let mut spans = Vec::new();
    while pos < batch.len() {
        if !in_key {
            // Jump to the next record that mentions a private key.
            let Some(m) = memchr::memmem::find(&batch[pos..], MARKER) else {
                break;
            };
            let at = pos + m;
            let rec_start = memchr::memrchr(b'\n', &batch[..at])
                .map_or(0, |i| i + 1)
                .max(pos);
            let rec_end = memchr::memchr(b'\n', &batch[at..]).map_or(batch.len(), |i| at + i);
            in_key = opens(&batch[rec_start..rec_end]);
            pos = rec_end + 1;
            continue;
        }
        let rec_end = memchr::memchr(b'\n', &batch[pos..]).map_or(batch.len(), |i| pos + i);
        let rec = &batch[pos..rec_end];
        if memchr::memmem::find(rec, b"-----END ").is_some() {
            in_key = false;
            pos = rec_end + 1;
            continue;
        }
        spans.clear();
        match body_runs(rec, &mut spans) {
            Some(()) => {
                for s in spans.drain(..) {
                    body(pos + s.start..pos + s.end);
                }
                pos = rec_end + 1;
            }
            // Truncated key: this record is not part of it; look at it afresh.
            None => in_key = false,
        }
    }
    Carry { in_key }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(carry: Carry, batch: &str) -> (Vec<String>, Carry) {
        let mut out = Vec::new();
        let end = walk(carry, batch.as_bytes(), |r| out.push(batch[r].to_string()));
        (out, end)
    }

    const KEY: &str = "Nov  2 10:00:01 app[1]: -----BEGIN RSA PRIVATE KEY-----\n\
Nov  2 10:00:01 app[1]: MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n\
Nov  2 10:00:01 app[1]: VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n\
Nov  2 10:00:01 app[1]: Vw==\n\
Nov  2 10:00:01 app[1]: -----END RSA PRIVATE KEY-----\n\
Nov  2 10:00:02 app[1]: next record MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2\n";

    #[test]
    fn body_records_between_begin_and_end() {
        let (s, end) = spans(Carry::default(), KEY);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].starts_with("MIIEpAIB") && s[2] == "Vw==");
        assert_eq!(end, Carry { in_key: false });
    }

    #[test]
    fn state_crosses_batches_at_any_split() {
        let whole = spans(Carry::default(), KEY).0;
        let lines: Vec<&str> = KEY.split_inclusive('\n').collect();
        for cut in 1..lines.len() {
            let (a, b) = (lines[..cut].concat(), lines[cut..].concat());
            let (mut s, mid) = spans(Carry::default(), &a);
            s.extend(spans(mid, &b).0);
            assert_eq!(s, whole, "split after line {cut}");
        }
    }

    #[test]
    fn truncated_block_ends_at_first_non_body_record() {
        let text =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n\
2026-11-02 INFO restarting worker pool\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0t\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(!end.in_key);
    }

    #[test]
    fn certificates_public_keys_and_one_record_keys_do_not_open() {
        for text in [
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0123456789abcdef\n",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n",
            "k=\"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\\n-----END EC PRIVATE KEY-----\"\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO\n",
        ] {
            let (s, end) = spans(Carry::default(), text);
            assert!(s.is_empty() && !end.in_key, "{text}");
        }
    }

    #[test]
    fn json_wrapped_body_lines() {
        let text = "{\"log\":\"-----BEGIN PRIVATE KEY-----\\n\",\"stream\":\"stderr\"}\n\
{\"log\":\"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n\",\"stream\":\"stderr\"}\n\
{\"log\":\"-----END PRIVATE KEY-----\\n\",\"stream\":\"stderr\"}\n";
        let (s, end) = spans(Carry::default(), text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].starts_with("MIIEvQIB") && !s[0].contains('\\'));
        assert!(!end.in_key);
    }
}
