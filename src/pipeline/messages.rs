//! Messages (Kafka records: value, key, headers, timestamp) in batches, for the worker pool.
//!
//! A message source (the Kafka consumer loop) gathers the messages of one partition into a [`MessageBatch`]: their
//! values laid end to end in one buffer (each ended by a newline, added where the value has
//! none), so that a redaction thread scans the whole batch in one engine call, as it does a
//! read of a file. The output is then cut back into one value per message along the message
//! boundaries. Keys and header values are redacted the same way, in one call per batch.
//!
//! Exactness: a message is redacted as if on its own (the state that crosses records, an
//! open private key, is the partition's, walked in offset order). Where a replacement would
//! cross a message boundary, or a key or header would open a private key (state that must
//! not leak into the next message's key), the batch falls back to one engine call per item,
//! which is what logveil did before batching. A panic in a batch is retried message by
//! message, so that only the message that caused it is withheld (fail closed).

use std::ops::Range;

use bytes::Bytes;

use super::framer::Batch;
use super::Origin;
use crate::engine::multiline::{self, Carry};
use crate::engine::{Engine, Redacted, Scratch};

/// One message as read, its value a span of the batch buffer.
#[derive(Debug)]
pub(crate) struct InMessage {
    pub origin: Origin,
    /// The value in [`MessageBatch::data`], without the newline added after it.
    pub span: Range<usize>,
    /// A newline was added after the value in the buffer.
    pub added: bool,
    /// A null value (a tombstone) stays null.
    pub tombstone: bool,
    pub key: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Set when the message cannot be redacted (oversized): it is never produced.
    pub withheld: Option<String>,
}

/// The messages of one partition, in offset order.
#[derive(Debug, Default)]
pub(crate) struct MessageBatch {
    pub data: Vec<u8>,
    pub messages: Vec<InMessage>,
    /// The partition's private-key state before the first message.
    pub carry: Carry,
}

impl MessageBatch {
    /// Appends a message; `value` is `None` for a tombstone or a withheld message.
    pub(crate) fn push(
        &mut self,
        origin: Origin,
        value: Option<&[u8]>,
        tombstone: bool,
        key: Option<Bytes>,
        headers: Vec<(String, Option<Bytes>)>,
        withheld: Option<String>,
    ) {
        let start = self.data.len();
        let v = value.unwrap_or(&[]);
        self.data.extend_from_slice(v);
        let added = !v.ends_with(b"\n");
        let span = start..self.data.len();
        if added {
            self.data.push(b'\n');
        }
        self.messages.push(InMessage {
            origin,
            span,
            added,
            tombstone,
            key,
            headers,
            withheld,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}

/// One message after redaction.
#[derive(Debug)]
pub struct OutMessage {
    /// Where it came from.
    pub origin: Origin,
    /// The redacted value (without the newline the batch added).
    pub value: Bytes,
    /// The value was null and stays null.
    pub tombstone: bool,
    /// The key, redacted unless `redact_keys` is off.
    pub key: Option<Bytes>,
    /// Header names and values, values redacted unless `redact_headers` is off.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Set when the message could not be redacted (why): it is never delivered as is.
    pub withheld: Option<String>,
}

/// A redacted batch: the messages, and the engine results for the statistics.
#[derive(Debug, Default)]
pub(crate) struct RedactedBatch {
    pub messages: Vec<OutMessage>,
    pub results: Vec<Redacted>,
}

/// Redacts a batch on a redaction thread. Never panics out: a failure in one message
/// withholds that message alone.
pub(crate) fn redact(
    engine: &Engine,
    scratch: &mut Scratch,
    mut batch: MessageBatch,
    keys: bool,
    headers: bool,
) -> RedactedBatch {
    // The buffer becomes the batch's `Bytes` once (no copy): unchanged values go out as
    // slices of it.
    let data = Bytes::from(std::mem::take(&mut batch.data));
    let whole = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        redact_batch(engine, scratch, &data, &batch, keys, headers)
    }));
    if let Ok(r) = whole {
        return r;
    }
    *scratch = engine.scratch();
    // One message at a time, each in the state its predecessors left.
    let mut out = RedactedBatch::default();
    let mut carry = batch.carry;
    for m in batch.messages {
        let line = data.slice(m.span.start..m.span.end + usize::from(m.added));
        let next = walk(engine, carry, &line);
        let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut results = Vec::new();
            let value = redact_one(engine, scratch, &line, m.added, carry, &mut results);
            let (key, hs) = redact_meta(engine, scratch, &m, keys, headers, &mut results);
            (value, key, hs, results)
        }));
        carry = next;
        match one {
            Ok((value, key, hs, results)) => {
                out.results.extend(results);
                out.messages.push(OutMessage {
                    origin: m.origin,
                    value,
                    tombstone: m.tombstone,
                    key,
                    headers: hs,
                    withheld: m.withheld,
                });
            }
            Err(_) => {
                *scratch = engine.scratch();
                out.messages.push(OutMessage {
                    origin: m.origin,
                    value: Bytes::new(),
                    tombstone: m.tombstone,
                    key: None,
                    headers: Vec::new(),
                    withheld: Some("redaction failure".into()),
                });
            }
        }
    }
    out
}

fn walk(engine: &Engine, carry: Carry, line: &[u8]) -> Carry {
    if engine.matcher().tracks_multiline() {
        multiline::walk(carry, line, |_, _| {})
    } else {
        carry
    }
}

fn redact_batch(
    engine: &Engine,
    scratch: &mut Scratch,
    data: &Bytes,
    batch: &MessageBatch,
    keys: bool,
    headers: bool,
) -> RedactedBatch {
    let r = engine.redact_from(&Batch::whole(data.clone()), batch.carry, scratch, true);
    let spans: Vec<Range<usize>> = batch.messages.iter().map(|m| m.span.clone()).collect();
    let mut results = Vec::new();
    let values = match cut(data, &r, &spans) {
        Some(v) => {
            results.push(r);
            v
        }
        None => {
            // A replacement crosses a message boundary: one call per message.
            let mut carry = batch.carry;
            let mut v = Vec::with_capacity(batch.messages.len());
            for m in &batch.messages {
                let line = data.slice(m.span.start..m.span.end + usize::from(m.added));
                v.push(redact_one(
                    engine,
                    scratch,
                    &line,
                    m.added,
                    carry,
                    &mut results,
                ));
                carry = walk(engine, carry, &line);
            }
            v
        }
    };
    let mut out_keys = redact_keys(engine, scratch, batch, keys, &mut results);
    let mut out_headers = redact_headers(engine, scratch, batch, headers, &mut results);
    let messages = batch
        .messages
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (m, value))| OutMessage {
            origin: m.origin.clone(),
            value,
            tombstone: m.tombstone,
            key: out_keys[i].take(),
            headers: std::mem::take(&mut out_headers[i]),
            withheld: m.withheld.clone(),
        })
        .collect();
    RedactedBatch { messages, results }
}

/// Redacts one message's value (`line` is the value and its added newline, if any).
fn redact_one(
    engine: &Engine,
    scratch: &mut Scratch,
    line: &Bytes,
    added: bool,
    carry: Carry,
    results: &mut Vec<Redacted>,
) -> Bytes {
    let r = engine.redact_from(&Batch::whole(line.clone()), carry, scratch, true);
    let value = if r.edits.is_empty() {
        line.slice(..line.len() - usize::from(added))
    } else {
        let mut out = r.chunks.concat();
        if added && out.last() == Some(&b'\n') {
            out.pop();
        }
        Bytes::from(out)
    };
    results.push(r);
    value
}

/// Cuts a batch's output back into one output per span; `None` when a replacement crosses a
/// span's edge.
fn cut(data: &Bytes, r: &Redacted, spans: &[Range<usize>]) -> Option<Vec<Bytes>> {
    let mut out = Vec::with_capacity(spans.len());
    let mut e = 0; // next edit
    for s in spans {
        // Edits before this span lie between spans (on an added newline): not allowed.
        if r.edits.get(e).is_some_and(|&(start, _, _)| start < s.start) {
            return None;
        }
        let first = e;
        while r.edits.get(e).is_some_and(|&(start, _, _)| start < s.end) {
            if r.edits[e].1 > s.end {
                return None;
            }
            e += 1;
        }
        if first == e {
            out.push(data.slice(s.clone()));
            continue;
        }
        let mut v = Vec::with_capacity(s.len() + 64);
        let mut pos = s.start;
        for &(start, end, chunk) in &r.edits[first..e] {
            v.extend_from_slice(&data[pos..start]);
            v.extend_from_slice(&r.chunks[chunk]);
            pos = end;
        }
        v.extend_from_slice(&data[pos..s.end]);
        out.push(Bytes::from(v));
    }
    if e < r.edits.len() {
        return None;
    }
    Some(out)
}

/// Redacts small items (keys, `name: value` header lines), each on its own: laid end to end
/// in one call when none of them opens a private key, one call per item otherwise.
fn redact_items(
    engine: &Engine,
    scratch: &mut Scratch,
    items: &[&[u8]],
    results: &mut Vec<Redacted>,
) -> Vec<Bytes> {
    let mut data = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum());
    let mut spans = Vec::with_capacity(items.len());
    let mut alone = false;
    for item in items {
        let start = data.len();
        data.extend_from_slice(item);
        spans.push(start..data.len());
        data.push(b'\n');
        // A newline inside an item, or an item that opens a key, would change how the next
        // one is read.
        alone |= memchr::memchr(b'\n', item).is_some()
            || walk(engine, Carry::default(), &data[start..]) != Carry::default();
    }
    if !alone {
        let data = Bytes::from(data);
        let r = engine.redact_from(&Batch::whole(data.clone()), Carry::default(), scratch, true);
        if let Some(v) = cut(&data, &r, &spans) {
            results.push(r);
            return v;
        }
    }
    items
        .iter()
        .map(|item| {
            let mut line = Vec::with_capacity(item.len() + 1);
            line.extend_from_slice(item);
            let added = !item.ends_with(b"\n");
            if added {
                line.push(b'\n');
            }
            redact_one(
                engine,
                scratch,
                &Bytes::from(line),
                added,
                Carry::default(),
                results,
            )
        })
        .collect()
}

fn redact_keys(
    engine: &Engine,
    scratch: &mut Scratch,
    batch: &MessageBatch,
    on: bool,
    results: &mut Vec<Redacted>,
) -> Vec<Option<Bytes>> {
    let mut out: Vec<Option<Bytes>> = batch.messages.iter().map(|m| m.key.clone()).collect();
    if !on {
        return out;
    }
    let idx: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].as_ref().is_some_and(|k| !k.is_empty()))
        .collect();
    let items: Vec<&[u8]> = idx
        .iter()
        .map(|&i| batch.messages[i].key.as_deref().unwrap_or_default())
        .collect();
    let red = redact_items(engine, scratch, &items, results);
    for (i, k) in idx.into_iter().zip(red) {
        out[i] = Some(k);
    }
    out
}

/// Header values are seen as `name: value`, so that the field-name rules apply to the
/// header's name (`authorization`, `x-api-key`, `cookie`, ...); where a finding reaches into
/// the name, the value is redacted alone.
fn redact_headers(
    engine: &Engine,
    scratch: &mut Scratch,
    batch: &MessageBatch,
    on: bool,
    results: &mut Vec<Redacted>,
) -> Vec<Vec<(String, Option<Bytes>)>> {
    let mut out: Vec<Vec<(String, Option<Bytes>)>> =
        batch.messages.iter().map(|m| m.headers.clone()).collect();
    if !on {
        return out;
    }
    let mut at = Vec::new();
    let mut lines = Vec::new();
    for (i, hs) in out.iter().enumerate() {
        for (j, (name, v)) in hs.iter().enumerate() {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                let mut line = Vec::with_capacity(name.len() + 2 + v.len());
                line.extend_from_slice(name.as_bytes());
                line.extend_from_slice(b": ");
                line.extend_from_slice(v);
                at.push((i, j));
                lines.push(line);
            }
        }
    }
    let items: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
    let red = redact_items(engine, scratch, &items, results);
    for ((i, j), (line, r)) in at.into_iter().zip(lines.iter().zip(red)) {
        let (name, v) = &mut out[i][j];
        let prefix = name.len() + 2;
        let value = if r[..] == line[..] {
            continue; // unchanged: keep the original
        } else if r.starts_with(&line[..prefix]) {
            r.slice(prefix..)
        } else {
            // A finding reached into the name: redact the value alone.
            let value = v.clone().unwrap_or_default();
            redact_items(engine, scratch, &[&value[..]], results).remove(0)
        };
        *v = Some(value);
    }
    out
}

/// A key and headers of one message, redacted one by one (the fallback after a panic).
fn redact_meta(
    engine: &Engine,
    scratch: &mut Scratch,
    m: &InMessage,
    keys: bool,
    headers: bool,
    results: &mut Vec<Redacted>,
) -> (Option<Bytes>, Vec<(String, Option<Bytes>)>) {
    let one = MessageBatch {
        data: Vec::new(),
        messages: vec![InMessage {
            origin: m.origin.clone(),
            span: 0..0,
            added: false,
            tombstone: m.tombstone,
            key: m.key.clone(),
            headers: m.headers.clone(),
            withheld: None,
        }],
        carry: Carry::default(),
    };
    let key = redact_keys(engine, scratch, &one, keys, results).remove(0);
    let hs = redact_headers(engine, scratch, &one, headers, results).remove(0);
    (key, hs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Matcher;
    use crate::fingerprint::{Key, Keyring, Template};
    use crate::rules::RuleSet;

    fn engine() -> Engine {
        let key = Key::parse("t", "logveil-test-key-thirty-two-bytes", "t").unwrap();
        Engine::new(
            Matcher::new(RuleSet::builtin().unwrap().enabled()),
            Keyring::single(key),
            Template::default(),
        )
    }

    fn origin(offset: i64) -> Origin {
        Origin {
            topic: "t".into(),
            partition: 0,
            offset,
            ts_ms: None,
        }
    }

    /// Batched output equals one call per message, for values, keys and headers.
    #[test]
    fn a_batch_redacts_each_message_as_if_alone() {
        let e = engine();
        let values: Vec<&[u8]> = vec![
            b"id=1 password=Hk7rT2mQ9xZa ok",
            b"plain line\n",
            b"",
            b"two\nlines token=ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 end",
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"MIIEowIBAAKCAQEA7qZbW9mX2k4Lr8Tq1vYc3pN6sH0dJfE5uG2aB7cD9eF1gH3i",
            b"-----END RSA PRIVATE KEY-----",
            b"after the key",
        ];
        let mut b = MessageBatch::default();
        for (i, v) in values.iter().enumerate() {
            b.push(
                origin(i as i64),
                Some(v),
                false,
                Some(Bytes::from(format!("password=Qw{i}rT5yU8iO2pLk"))),
                vec![
                    (
                        "authorization".into(),
                        Some(Bytes::from("Bearer Mz8Qp3Lr7Tk2Vw9Xy4")),
                    ),
                    ("trace".into(), Some(Bytes::from(format!("t{i}")))),
                ],
                None,
            );
        }
        let mut s = e.scratch();
        let out = redact(&e, &mut s, b, true, true);
        assert_eq!(out.messages.len(), values.len());
        // One engine call each for values, keys and headers: the batch was not taken apart.
        assert_eq!(out.results.len(), 3);
        let mut carry = Carry::default();
        for (i, (v, m)) in values.iter().zip(&out.messages).enumerate() {
            let mut line = v.to_vec();
            let added = !v.ends_with(b"\n");
            if added {
                line.push(b'\n');
            }
            let line = Bytes::from(line);
            let mut rs = Vec::new();
            let want = redact_one(&e, &mut s, &line, added, carry, &mut rs);
            carry = walk(&e, carry, &line);
            assert_eq!(
                m.value,
                want,
                "message {i}: {}",
                crate::text::preview(&String::from_utf8_lossy(&m.value))
            );
            let k = m.key.as_ref().unwrap();
            assert!(k.starts_with(b"password=[REDACTED:"), "key {i}");
            let auth = m.headers[0].1.as_ref().unwrap();
            assert!(auth.starts_with(b"Bearer [REDACTED:"), "header {i}");
            assert_eq!(m.headers[1].1.as_deref(), Some(format!("t{i}").as_bytes()));
        }
        assert!(out.messages[0]
            .value
            .starts_with(b"id=1 password=[REDACTED:"));
        assert!(out.messages[5]
            .value
            .starts_with(b"[REDACTED:pem-private-key:"));
        assert_eq!(&out.messages[7].value[..], b"after the key");
        assert_eq!(&out.messages[1].value[..], b"plain line\n");
    }

    /// The same on inputs not written for this test: corpus lines, and hostile bytes
    /// (newlines, NUL, invalid UTF-8, marker fragments) cut at random places.
    #[test]
    fn batches_of_corpus_and_hostile_values_match_one_call_per_message() {
        let e = engine();
        let (corpus, _) = crate::corpus::generate_vec(256 << 10, 5, 0.2);
        let lines: Vec<&[u8]> = corpus.split(|&b| b == b'\n').collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let alphabet: &[&[u8]] = &[
            b"\n",
            b"\0",
            b"\xff",
            b"=",
            b"password=",
            b"[REDACTED:",
            b"]",
            b" ",
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
            b"\"",
            b"{",
            b"Hk7rT2mQ9xZa",
        ];
        let mut s = e.scratch();
        for round in 0..150 {
            let mut values: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(1 + next() % 12) {
                let v = if next() % 3 == 0 {
                    (0..next() % 10)
                        .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize].to_vec())
                        .collect()
                } else {
                    lines[(next() % lines.len() as u64) as usize].to_vec()
                };
                values.push(v);
            }
            let mut b = MessageBatch::default();
            for (i, v) in values.iter().enumerate() {
                b.push(origin(i as i64), Some(v), false, None, Vec::new(), None);
            }
            let out = redact(&e, &mut s, b, true, true);
            let mut carry = Carry::default();
            for (i, (v, m)) in values.iter().zip(&out.messages).enumerate() {
                let mut line = v.clone();
                let added = !v.ends_with(b"\n");
                if added {
                    line.push(b'\n');
                }
                let line = Bytes::from(line);
                let want = redact_one(&e, &mut s, &line, added, carry, &mut Vec::new());
                carry = walk(&e, carry, &line);
                // A failure shows the first 4 characters of the expected output, never a value.
                assert!(
                    m.value == want,
                    "round {round} message {i}: batched output differs (expected starts '{}')",
                    crate::text::preview(&String::from_utf8_lossy(&want))
                );
            }
        }
    }

    #[test]
    fn cut_refuses_a_replacement_across_a_boundary() {
        let data = Bytes::from_static(b"aaaa\nbbbb\n");
        let r = Redacted {
            chunks: vec![Bytes::from_static(b"X")],
            edits: vec![(2, 7, 0)],
            ..Redacted::default()
        };
        assert!(cut(&data, &r, &[0..4, 5..9]).is_none());
        let r = Redacted {
            chunks: vec![Bytes::from_static(b"X")],
            edits: vec![(6, 8, 0)],
            ..Redacted::default()
        };
        let v = cut(&data, &r, &[0..4, 5..9]).unwrap();
        assert_eq!(&v[0][..], b"aaaa");
        assert_eq!(&v[1][..], b"bXb");
    }
}
