//! Splits a byte stream into batches of whole records without copying.
//!
//! [`LineBatchDecoder`] is a tokio-util [`Decoder`]: each time the reader has read, it hands
//! out everything up to the last newline in the buffer as one frozen [`Bytes`] (a slice of
//! the read buffer, no copy). Under load reads are large, so batches are large; when input
//! trickles in, each read becomes a batch at once, so latency stays low. A record longer than
//! `max_record` is handed out in pieces of `max_record` bytes so memory stays bounded.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

#[derive(Debug, Clone)]
pub struct LineBatchDecoder {
    max_record: usize,
    read_chunk: usize,
}

impl LineBatchDecoder {
    pub fn new(read_chunk: usize, max_record: usize) -> LineBatchDecoder {
        LineBatchDecoder {
            max_record: max_record.max(1),
            read_chunk: read_chunk.max(64),
        }
    }
}

/// How far back from the end of an over-long record's window a cut looks for a separator.
pub const CUT_LOOKBACK: usize = 8 * 1024;

/// Where to cut a window of an over-long record: just after the last separator (space, tab,
/// quote, comma, `&`, `;`) in its last [`CUT_LOOKBACK`] bytes, so that a token (and a secret)
/// shorter than that is not split between two pieces; the whole window if there is none.
fn piece_end(window: &[u8]) -> usize {
    let from = window.len().saturating_sub(CUT_LOOKBACK);
    let tail = &window[from..];
    let a = memchr::memrchr3(b' ', b'\t', b'"', tail);
    let b = memchr::memrchr3(b',', b'&', b';', tail);
    match a.max(b) {
        Some(i) => from + i + 1,
        None => window.len(),
    }
}

impl Decoder for LineBatchDecoder {
    type Item = Bytes;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Bytes>> {
        // Look at most `max_record` bytes ahead, so no piece handed out is longer than that.
        let window = &buf[..buf.len().min(self.max_record)];
        let out = if let Some(i) = memchr::memrchr(b'\n', window) {
            Some(buf.split_to(i + 1).freeze())
        } else if buf.len() >= self.max_record {
            Some(buf.split_to(piece_end(window)).freeze())
        } else {
            None
        };
        // Keep room for one large read, so the next read fills a whole batch.
        if buf.capacity() - buf.len() < self.read_chunk / 2 {
            buf.reserve(self.read_chunk);
        }
        Ok(out)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Bytes>> {
        match self.decode(buf)? {
            Some(b) => Ok(Some(b)),
            None if buf.is_empty() => Ok(None),
            // The last record has no newline: it leaves as it came.
            None => Ok(Some(buf.split().freeze())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;

    async fn batches(input: &'static [u8], max_record: usize) -> Vec<Bytes> {
        let framed = FramedRead::new(input, LineBatchDecoder::new(4096, max_record));
        framed.map(|b| b.unwrap()).collect().await
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
}
