//! logveil: a streaming log redactor that replaces credentials and PII with keyed HMAC
//! fingerprints. See the README for the architecture; the modules follow the data flow:
//! [`source`] → [`framer`] → [`engine`] (with [`rules`] and [`fingerprint`]) → [`sink`], wired
//! by [`pipeline`] and measured by [`metrics`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod corpus;
pub mod engine;
pub mod fingerprint;
pub mod framer;
pub mod kafka;
pub mod metrics;
pub mod pipe_reader;
pub mod pipeline;
pub mod quality;
pub mod rules;
pub mod signals;
pub mod sink;
pub mod source;
