//! Sources: where records come from. Files and stdin ([`file`], with [`pipe`] for pipes,
//! FIFOs and terminals) are byte streams framed into lines by the pipeline; Kafka
//! ([`kafka`]) is a stream of messages per partition, with acknowledgements that drive its
//! offset commits.

pub mod file;
pub mod kafka;
pub(crate) mod pipe;
pub mod tree;
