//! logveil: a streaming log redactor that replaces credentials and PII with keyed HMAC
//! fingerprints. See the README for the architecture; the modules follow the data flow:
//! [`sources`] → [`pipeline`] (framing, the worker pool running the [`engine`] with its
//! [`rules`] and [`fingerprint`]s, reordering) → [`sinks`], measured by [`metrics`].
//!
//! Layers, each importing only those below it: `commands`/`cli` (wiring) → `sources`,
//! `sinks` → `pipeline` → `engine` → `rules` → `fingerprint`, `text`. [`check`] (rules run
//! over their own examples) sits above both `rules` and `engine`; [`config`] reads the
//! config file, with each component's section defined beside the component.

#![warn(missing_docs)]

pub(crate) mod check;
pub mod cli;
pub mod commands;
pub mod compression;
pub mod config;
pub mod corpus;
pub mod engine;
pub mod fingerprint;
pub(crate) mod kafka;
pub mod metrics;
pub mod notice;
pub mod pipeline;
pub mod progress;
pub mod rules;
pub(crate) mod signals;
pub mod sinks;
pub mod sources;
pub mod text;
