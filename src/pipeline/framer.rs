//! Splits a byte stream into batches of whole records without copying.
//!
//! [`LineBatchDecoder`] is a tokio-util [`Decoder`]: each time the reader has read, it hands
//! out everything up to the last newline in the buffer as one frozen [`Bytes`] (a slice of
//! the read buffer, no copy). Under load reads are large, so batches are large; when input
//! trickles in, each read becomes a batch at once, so latency stays low.
//!
//! A record longer than `max_record` (a 500 MiB line with no newline) is handed out in pieces
//! of at most `max_record` bytes, so memory stays bounded. Each piece is written once, in
//! order, but scanned in an overlapping window: it carries up to [`OVERLAP`] bytes of the
//! record before it ([`Batch::before`], a slice of the previous piece) and after it
//! ([`Batch::after`], a small copy of what follows), so a secret (and its keyword) that
//! crosses a cut is still seen whole from both sides.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

pub use crate::engine::{Batch, OVERLAP};

/// How far back from the end of an over-long record's window a cut looks for a separator.
pub const CUT_LOOKBACK: usize = 8 * 1024;

/// Cuts a byte stream into [`Batch`]es of whole records.
#[derive(Debug, Clone)]
pub struct LineBatchDecoder {
    max_record: usize,
    read_chunk: usize,
    /// The end of the last batch when its last record is not finished: the next batch's
    /// `before`.
    tail: Bytes,
}

impl LineBatchDecoder {
    /// Batches of about `read_chunk` bytes; records longer than `max_record` go in pieces.
    pub fn new(read_chunk: usize, max_record: usize) -> LineBatchDecoder {
        LineBatchDecoder {
            max_record: max_record.max(1),
            read_chunk: read_chunk.max(64),
            tail: Bytes::new(),
        }
    }

    /// The next batch, if one is ready; at `eof` everything left is handed out.
    fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Batch> {
        // Look at most `max_record` bytes ahead, so no batch handed out is longer than that.
        let window = &buf[..buf.len().min(self.max_record)];
        if let Some(i) = memchr::memrchr(b'\n', window) {
            let data = buf.split_to(i + 1).freeze();
            return Some(self.batch(data, Bytes::new()));
        }
        // An over-long record: cut a piece once the context after the cut has been read.
        if buf.len() > self.max_record && (eof || buf.len() >= self.max_record + OVERLAP) {
            let cut = piece_end(window);
            let rest = &buf[cut..buf.len().min(cut + OVERLAP)];
            let after = match memchr::memchr(b'\n', rest) {
                Some(i) => &rest[..i],
                None => rest,
            };
            let after = Bytes::copy_from_slice(after);
            let data = buf.split_to(cut).freeze();
            let mut b = self.batch(data, after);
            b.continues = true;
            return Some(b);
        }
        if eof && !buf.is_empty() {
            // The last record has no newline: it leaves as it came.
            let data = buf.split().freeze();
            return Some(self.batch(data, Bytes::new()));
        }
        None
    }

    fn batch(&mut self, data: Bytes, after: Bytes) -> Batch {
        let before = std::mem::take(&mut self.tail);
        if !data.ends_with(b"\n") {
            // No newline at all in this batch (a piece), or the end of the input.
            self.tail = data.slice(data.len().saturating_sub(OVERLAP)..);
        }
        Batch {
            data,
            before,
            after,
            continues: false,
        }
    }

    /// True while the last batch handed out ended inside a record (a piece of an over-long
    /// record): the record goes on in what is read next.
    pub fn in_record(&self) -> bool {
        !self.tail.is_empty()
    }

    /// Everything left in `buf` after a read error, in batches (redacted and written before
    /// the error is reported).
    pub fn drain(&mut self, buf: &mut BytesMut) -> Vec<Batch> {
        std::iter::from_fn(|| self.next(buf, true)).collect()
    }
}

/// Where to cut a window of an over-long record: just after the last separator (space, tab,
/// quote, comma, `&`, `;`) in its last [`CUT_LOOKBACK`] bytes, so that a token (and a secret)
/// shorter than that is usually not split between two pieces; else at the end of the window,
/// but never inside a backslash escape.
fn piece_end(window: &[u8]) -> usize {
    let from = window.len().saturating_sub(CUT_LOOKBACK);
    let tail = &window[from..];
    let a = memchr::memrchr3(b' ', b'\t', b'"', tail);
    let b = memchr::memrchr3(b',', b'&', b';', tail);
    match a.max(b) {
        Some(i) => from + i + 1,
        None => outside_escape(window, window.len()),
    }
}

/// `end`, or the start of the backslash escape (`\"`, `\uXXXX`) that `end` would split.
fn outside_escape(hay: &[u8], end: usize) -> usize {
    for k in 1..=5.min(end) {
        let i = end - k;
        if hay[i] != b'\\' {
            continue;
        }
        let run = hay[..=i].iter().rev().take_while(|&&b| b == b'\\').count();
        if run % 2 == 0 {
            // An escaped backslash, which `end` does not split.
            return end;
        }
        let len = if hay.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        return if k < len && i > 0 { i } else { end };
    }
    end
}

impl Decoder for LineBatchDecoder {
    type Item = Batch;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Batch>> {
        let out = self.next(buf, false);
        // Keep room for one large read, so the next read fills a whole batch.
        if buf.capacity() - buf.len() < self.read_chunk / 2 {
            buf.reserve(self.read_chunk);
        }
        Ok(out)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Batch>> {
        Ok(self.next(buf, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;

    async fn pieces(input: &'static [u8], max_record: usize) -> Vec<Batch> {
        let framed = FramedRead::new(input, LineBatchDecoder::new(4096, max_record));
        framed.map(|b| b.unwrap()).collect().await
    }

    async fn batches(input: &'static [u8], max_record: usize) -> Vec<Bytes> {
        let b = pieces(input, max_record).await;
        b.into_iter().map(|b| b.data).collect()
    }

    #[tokio::test]
    async fn batches_end_on_newlines_and_keep_every_byte() {
        let input: &[u8] = b"one\r\ntwo\n\nthree without newline";
        let b = batches(input, 1 << 20).await;
        assert_eq!(b.concat(), input);
        assert!(b[..b.len() - 1].iter().all(|x| x.ends_with(b"\n")));
        assert_eq!(b.last().unwrap().as_ref(), b"three without newline");
    }

    #[test]
    fn over_long_records_are_cut_after_a_separator() {
        let mut w = vec![b'a'; 20_000];
        w[15_000] = b' ';
        assert_eq!(piece_end(&w), 15_001);
        w[19_999] = b'&';
        assert_eq!(piece_end(&w), 20_000, "right after the last separator");
        let w = vec![b'x'; 20_000];
        assert_eq!(piece_end(&w), 20_000, "no separator: hard cut");
        let mut w = vec![b'a'; 20_000];
        w[100] = b' '; // too far back
        assert_eq!(piece_end(&w), 20_000);
    }

    #[tokio::test]
    async fn long_records_come_in_bounded_pieces() {
        let mut v = vec![b'a'; 10_000];
        v.push(b'\n');
        let input: &'static [u8] = Box::leak(v.into_boxed_slice());
        let b = batches(input, 1000).await;
        assert_eq!(b.concat(), input);
        assert!(b.iter().all(|x| x.len() <= 1000), "piece over max_record");
    }

    #[tokio::test]
    async fn pieces_of_an_over_long_record_carry_context_from_both_sides() {
        // 200 KB record of numbered words (no newline in it), then a short record.
        let mut v = Vec::new();
        let mut n = 0;
        while v.len() < 200_000 {
            v.extend_from_slice(format!("w{n} ").as_bytes());
            n += 1;
        }
        let long_len = v.len();
        v.extend_from_slice(b"\nshort\n");
        let input: &'static [u8] = Box::leak(v.clone().into_boxed_slice());
        let b = pieces(input, 40_000).await;
        assert_eq!(
            b.iter().map(|x| &x.data[..]).collect::<Vec<_>>().concat(),
            input
        );
        assert!(b.len() >= 5);
        let mut at = 0;
        for (k, x) in b.iter().enumerate() {
            assert!(x.data.len() <= 40_000, "piece over max_record");
            let end = at + x.data.len();
            if k == 0 {
                assert!(x.before.is_empty());
            } else {
                // `before` is exactly the bytes before this piece, within the record.
                let want = &input[at.saturating_sub(OVERLAP)..at];
                assert_eq!(&x.before[..], want, "piece {k}");
            }
            if end < long_len {
                assert!(x.continues);
                let want = &input[end..(end + OVERLAP).min(long_len)];
                assert_eq!(&x.after[..], want, "piece {k}");
                // Cut after a separator, so no word is split.
                assert_eq!(input[end - 1], b' ');
            } else {
                assert!(x.after.is_empty() && !x.continues);
            }
            at = end;
        }
        // The batch after the long record's end carries no context for the next one.
        assert!(b.last().unwrap().data.ends_with(b"short\n"));
    }

    #[test]
    fn hard_cuts_never_split_an_escape() {
        let mut w = vec![b'x'; 100];
        w[98] = b'\\';
        assert_eq!(piece_end(&w), 100, "a complete escape at the end");
        w[99] = b'\\';
        assert_eq!(piece_end(&w), 100, "an escaped backslash");
        let mut w = vec![b'x'; 100];
        w[99] = b'\\';
        assert_eq!(
            piece_end(&w),
            99,
            "a dangling backslash stays with the next piece"
        );
        let mut w = vec![b'x'; 100];
        w[96..98].copy_from_slice(b"\\u");
        assert_eq!(piece_end(&w), 96, "\\uXXXX is not split");
        let mut w = vec![b'x'; 100];
        w[93..99].copy_from_slice(b"\\u0041");
        assert_eq!(piece_end(&w), 100);
    }

    #[test]
    fn drain_hands_out_everything_left() {
        let mut d = LineBatchDecoder::new(4096, 1000);
        let mut buf = BytesMut::from(&[b'a'; 2500][..]);
        let b = d.drain(&mut buf);
        assert!(buf.is_empty());
        assert_eq!(b.iter().map(|x| x.data.len()).sum::<usize>(), 2500);
        assert!(b.iter().all(|x| x.data.len() <= 1000));
        assert!(!b.last().unwrap().continues);
    }
}
