//! The delivery side for message sources: redacted batches in reading order, every message
//! to the sink with its acknowledgement.

use std::sync::Arc;

use anyhow::{bail, Result};
use tokio::sync::{mpsc, oneshot};

use super::messages::RedactedBatch;
use super::{Ack, Acker, Sink};
use crate::metrics::{SharedStats, Stage};

/// A batch handed to the worker pool: its result, in the order the batches were read.
pub(crate) type Pending = oneshot::Receiver<RedactedBatch>;

/// Takes results in reading order and hands every message to `sink`, each with an ack to
/// `acker`; a message that could not be redacted goes to [`Sink::withhold`]. Flushes
/// whenever nothing else is ready (so a trickle is not held back, and so that stdout and
/// files acknowledge what they wrote). Returns on the end of the channel, or with the first
/// error (a failed worker, a sink error, a closed output), after which nothing more is
/// delivered and nothing undelivered is acknowledged.
pub(crate) async fn deliver<S: Sink>(
    rx: &mut mpsc::Receiver<Pending>,
    sink: &mut S,
    stats: &SharedStats,
    acker: &Arc<dyn Acker>,
) -> Result<()> {
    while let Some(pending) = rx.recv().await {
        let Ok(b) = pending.await else {
            stats.lock().error(Stage::Processing, "redaction_failed");
            bail!("a redaction worker failed; its batch was not forwarded and its records stay unacknowledged (uncommitted)");
        };
        stats
            .lock()
            .add_messages(&b.results, b.messages.len() as u64, !sink.emits());
        for mut m in b.messages {
            let ack = Ack::new(m.origin.clone(), Arc::clone(acker));
            if let Some(reason) = m.withheld.take() {
                sink.withhold(&reason, ack).await?;
                continue;
            }
            if !sink.write_message(m, ack).await? {
                bail!("output closed by its reader; the records not written stay unacknowledged (uncommitted)");
            }
        }
        if rx.is_empty() && !sink.flush().await? {
            bail!("output closed by its reader; the records not written stay unacknowledged (uncommitted)");
        }
    }
    if !sink.flush().await? {
        bail!("output closed by its reader; the records not written stay unacknowledged (uncommitted)");
    }
    Ok(())
}
