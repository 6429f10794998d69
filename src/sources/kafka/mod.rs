//! The Kafka source: a consumer group in, offsets committed only after the sink confirmed
//! delivery.
//!
//! Each message is one record (it may hold newlines). Its value is redacted (and its key and
//! header values, by default); timestamp, key and headers are kept. Private keys printed one
//! line per message are followed per input partition.
//!
//! Messages are gathered per partition into batches (`batch_records`, `batch_bytes`,
//! `batch_linger_ms`) and redacted on the pipeline's worker pool; every message goes to the
//! sink with an [`Ack`](crate::pipeline::Ack), and the sink confirms it once delivered (a
//! Kafka sink on its delivery report, stdout and files once flushed).
//!
//! **Delivery guarantee: at-least-once.** For every input partition the offsets handed to the
//! sink and not yet acknowledged are tracked; the offset committed is the lowest one still
//! in flight (or the next one to read when none is), so an offset is committed only when its
//! record and every record before it in that partition has been acknowledged by the sink
//! (for Kafka: by the brokers, `acks=all`, idempotent producer), whatever order the acks
//! come in. Commits run every
//! `commit_interval_ms`, on a graceful stop (SIGTERM/SIGINT: stop reading, wait for the
//! deliveries, commit, exit 0) and when partitions are revoked in a rebalance (deliveries are
//! awaited, then what is done is committed before the partitions are given up). After a crash
//! the records after the last commit are read and produced again: duplicates, never losses.
//!
//! **Fail closed.** A record that cannot be redacted (larger than `max_message_bytes`, or an
//! engine failure) is never produced: either the pipeline stops before it (its offset is never
//! committed), or a placeholder with the reason in a header goes to the dead-letter topic.

pub mod config;
#[cfg(feature = "kafka")]
mod consumer;
#[cfg(feature = "kafka")]
mod offsets;

#[cfg(feature = "kafka")]
pub use consumer::run;
