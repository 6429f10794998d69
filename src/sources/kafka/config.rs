//! `[source.kafka]` and the query keys of a `kafka://` input.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::kafka::{parse_bool, parse_num, parse_url, redact_url};
use crate::text::within;

/// `[source.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`: `host:port,host:port`.
    pub brokers: Option<String>,
    /// Topics to consume; an entry starting with `^` is a regex.
    pub topics: Vec<String>,
    /// Consumer group: start more instances with the same group to scale out.
    pub group: String,
    /// Redact message keys too.
    pub redact_keys: bool,
    /// Redact header values too.
    pub redact_headers: bool,
    /// A message value larger than this cannot be redacted: it goes to the dead-letter topic
    /// or stops the pipeline (`[sink.kafka] on_unredactable`).
    pub max_message_bytes: usize,
    /// How often delivered offsets are committed, in milliseconds.
    pub commit_interval_ms: u64,
    /// Startup (brokers reachable, topics exist) must succeed within this many seconds.
    pub startup_timeout_secs: u64,
    /// Print the Kafka statistics (records/s, latency, lag per partition) to stderr this often;
    /// 0: only at exit, with `--stats`.
    pub stats_interval_secs: u64,
    /// Messages are redacted in batches of one partition's messages, on the worker pool
    /// (`--threads`): a batch is handed over when it holds this many messages...
    pub batch_records: usize,
    /// ... or this many bytes of values...
    pub batch_bytes: usize,
    /// ... or its first message has waited this long, in milliseconds (the latency a quiet
    /// topic pays for batching).
    pub batch_linger_ms: u64,
    /// Any librdkafka consumer property (`security.protocol`, `ssl.*`, `sasl.*`, ...).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: None,
            topics: Vec::new(),
            group: "logveil".into(),
            redact_keys: true,
            redact_headers: true,
            max_message_bytes: 8 * 1024 * 1024,
            commit_interval_ms: 1000,
            startup_timeout_secs: 30,
            stats_interval_secs: 0,
            batch_records: 1000,
            batch_bytes: 1 << 20,
            batch_linger_ms: 5,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[source]` table of the config file.
pub struct SourceSection {
    /// `[source.kafka]`.
    pub kafka: Option<KafkaSourceConfig>,
}

/// The source settings for one `kafka://` input: the config section, overridden by the URL.
pub fn source_from(arg: &str, base: Option<&KafkaSourceConfig>) -> Result<KafkaSourceConfig> {
    let url = parse_url(arg)?;
    let mut c = base.cloned().unwrap_or_default();
    if url.brokers.is_some() {
        c.brokers = url.brokers;
    }
    if !url.topics.is_empty() {
        c.topics = url.topics;
    }
    for (k, v) in url.query {
        match k.as_str() {
            "group" => c.group = v,
            "redact_keys" => c.redact_keys = parse_bool(&k, &v)?,
            "redact_headers" => c.redact_headers = parse_bool(&k, &v)?,
            "max_message_bytes" => c.max_message_bytes = parse_num(&k, &v)?,
            "commit_interval_ms" => c.commit_interval_ms = parse_num(&k, &v)?,
            "startup_timeout_secs" => c.startup_timeout_secs = parse_num(&k, &v)?,
            "stats_interval_secs" => c.stats_interval_secs = parse_num(&k, &v)?,
            "batch_records" => c.batch_records = parse_num(&k, &v)?,
            "batch_bytes" => c.batch_bytes = parse_num(&k, &v)?,
            "batch_linger_ms" => c.batch_linger_ms = parse_num(&k, &v)?,
            _ => {
                c.properties.insert(k, v);
            }
        }
    }
    if c.brokers.as_deref().unwrap_or("").is_empty() {
        bail!(
            "kafka input {}: no brokers (kafka://HOST:PORT/... or [source.kafka] brokers)",
            redact_url(arg)
        );
    }
    if c.topics.is_empty() {
        bail!(
            "kafka input {}: no topic (kafka://HOST:PORT/TOPIC or [source.kafka] topics)",
            redact_url(arg)
        );
    }
    if c.group.is_empty() {
        bail!("kafka input: group must not be empty");
    }
    within(
        "kafka input: max_message_bytes",
        c.max_message_bytes as u64,
        1,
        1_000_000_000,
    )?;
    within(
        "kafka input: commit_interval_ms",
        c.commit_interval_ms,
        1,
        3_600_000,
    )?;
    within(
        "kafka input: startup_timeout_secs",
        c.startup_timeout_secs,
        1,
        3600,
    )?;
    within(
        "kafka input: stats_interval_secs",
        c.stats_interval_secs,
        0,
        86_400,
    )?;
    within(
        "kafka input: batch_records",
        c.batch_records as u64,
        1,
        100_000,
    )?;
    within(
        "kafka input: batch_bytes",
        c.batch_bytes as u64,
        1,
        256 << 20,
    )?;
    within("kafka input: batch_linger_ms", c.batch_linger_ms, 0, 10_000)?;
    Ok(c)
}

impl KafkaSourceConfig {
    /// [`KafkaSourceConfig::startup_timeout_secs`] as a duration.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }
}
