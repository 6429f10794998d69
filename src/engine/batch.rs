//! The engine's unit of work: a batch of records, with the scan context of an over-long
//! record cut at its edges (see [`crate::pipeline::framer`], which cuts them).

use bytes::Bytes;

/// How much context a piece of an over-long record is scanned with, on each side. A secret
/// of up to 8 KiB that crosses a cut, with a keyword up to 8 KiB before it, is seen whole
/// from both pieces.
pub const OVERLAP: usize = 16 * 1024;

/// A batch of records as read, with the scan context of an over-long record cut at its
/// edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The bytes to redact and write: whole records, except that the first may continue an
    /// over-long record and the last may be continued by the next batch.
    pub data: Bytes,
    /// When the first record continues one begun in the previous batch: the last bytes (up to
    /// [`OVERLAP`]) of that record before this batch. Scanned, never written.
    pub before: Bytes,
    /// When the last record continues in the next batch: the bytes (up to [`OVERLAP`], up to
    /// the record's end) that follow. Scanned, never written.
    pub after: Bytes,
    /// The last record continues in the next batch (it is counted there).
    pub continues: bool,
}

impl Batch {
    /// A batch of whole records.
    pub fn whole(data: Bytes) -> Batch {
        Batch {
            data,
            ..Batch::default()
        }
    }

    /// True when the batch is scanned with context from the batches next to it.
    pub fn windowed(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty()
    }
}
