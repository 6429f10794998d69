//! The Kafka sink: an idempotent producer (`acks=all`) to one topic. Messages (from a Kafka
//! source) keep their key, headers and timestamp and are acknowledged by their delivery
//! reports; lines (from files and stdin) become one message each. Records that cannot be
//! redacted go, as a placeholder, to the dead-letter topic when one is configured.

pub mod config;
#[cfg(feature = "kafka")]
mod producer;

#[cfg(feature = "kafka")]
pub use producer::{KafkaSink, REASON_HEADER};
