//! Where the pipeline's output goes, and how a delivery is confirmed to the source.
//!
//! The pipeline hands results to a [`Sink`] (stdout, a file, a directory, a Kafka topic, or
//! nothing for `scan`): byte streams (files, stdin) as runs of whole lines, message sources
//! (Kafka) message by message, each with an [`Ack`]. The sink confirms an ack once what it
//! carries is delivered (a flush of a file, a delivery report from the brokers), and only
//! then does the source count the record as done (for Kafka: may commit its offset). The
//! source never knows which sink it feeds, and the sink never knows where a record came
//! from beyond its [`Origin`].

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;

use super::messages::OutMessage;
use crate::compression::Compression;

/// Where a message came from: a position in a partitioned log (Kafka's topic, partition and
/// offset), with its timestamp. Travels with the message to its delivery.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The stream: a Kafka topic.
    pub topic: String,
    /// The partition of the stream.
    pub partition: i32,
    /// The record's position in the partition.
    pub offset: i64,
    /// The record's timestamp, in milliseconds since the epoch, if it has one.
    pub ts_ms: Option<i64>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// The source's side of acknowledgements: told when a record it produced has been
/// delivered (or has failed for good). Called from the sink's threads (a Kafka delivery
/// report comes on librdkafka's thread).
pub trait Acker: Send + Sync {
    /// The record is delivered: the source may count it as done.
    fn delivered(&self, origin: &Origin);
    /// The record could not be redacted, and a placeholder for it was delivered to a
    /// dead-letter destination instead: done, as far as the source is concerned.
    fn diverted(&self, origin: &Origin) {
        self.delivered(origin)
    }
    /// The record could not be delivered: it must stay not done (never committed).
    fn failed(&self, origin: &Origin, error: &str);
}

/// One record's acknowledgement token: confirmed exactly once by the sink that delivers it.
pub struct Ack {
    origin: Origin,
    to: Arc<dyn Acker>,
}

impl Ack {
    /// A token for the record at `origin`, confirmed to `to`.
    pub fn new(origin: Origin, to: Arc<dyn Acker>) -> Ack {
        Ack { origin, to }
    }

    /// Where the record came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The record is delivered.
    pub fn delivered(self) {
        self.to.delivered(&self.origin);
    }

    /// A placeholder for the record was delivered to a dead-letter destination.
    pub fn diverted(self) {
        self.to.diverted(&self.origin);
    }

    /// The record could not be delivered.
    pub fn failed(self, error: &str) {
        self.to.failed(&self.origin, error);
    }
}

/// What a sink lets a source do while deliveries are outstanding: wait (up to the sink's
/// own drain timeout) until what the sink holds is delivered. A Kafka source calls it before it gives up
/// partitions in a rebalance, so that what is delivered can be committed first.
pub type Drain = Arc<dyn Fn() + Send + Sync>;

/// An input of a byte stream, as a sink that mirrors inputs (a directory) sees it.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// The input's name in messages (`<stdin>` or the path).
    pub name: String,
    /// The input's path, for a file.
    pub path: Option<std::path::PathBuf>,
    /// Where a mirroring output directory puts it: the file name, or the path relative to
    /// the directory tree the input was found in.
    pub rel: Option<std::path::PathBuf>,
    /// The input's compression: a mirrored output keeps it.
    pub compression: Compression,
}

/// The end of the pipeline. Every method returns `Ok(false)` when the sink's reader went
/// away (a closed pipe, `| head`): a normal end, the run stops quietly.
///
/// The pipeline drives one sink from one task, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Sink {
    /// A byte-stream input begins (a directory opens the file that mirrors it).
    async fn begin(&mut self, input: &InputInfo) -> Result<bool>;
    /// Redacted bytes of whole records (lines) of the current input, in order.
    async fn write_lines(&mut self, chunks: &[Bytes]) -> Result<bool>;
    /// One redacted message; `ack` is confirmed once it is delivered.
    async fn write_message(&mut self, message: OutMessage, ack: Ack) -> Result<bool>;
    /// A message that cannot be redacted (`reason` says why): a sink with a dead-letter
    /// destination sends a placeholder there (never the message) and confirms `ack` once
    /// delivered; any other sink fails, and the run stops before the message.
    async fn withhold(&mut self, reason: &str, ack: Ack) -> Result<()>;
    /// Pushes buffered output out and confirms the acks of what that delivered. Called
    /// whenever the pipeline has nothing else ready, so that a trickle is not held back.
    async fn flush(&mut self) -> Result<bool>;
    /// The current byte-stream input is done (a directory closes its file).
    async fn end(&mut self) -> Result<bool>;
    /// The run is over: waits for outstanding deliveries and reports any that failed.
    async fn close(&mut self) -> Result<()>;
    /// False for a sink that takes nothing (`scan`): the engine then only counts.
    fn emits(&self) -> bool {
        true
    }
    /// How a source may wait for this sink's outstanding deliveries (see [`Drain`]).
    fn drain(&self) -> Option<Drain> {
        None
    }
}
