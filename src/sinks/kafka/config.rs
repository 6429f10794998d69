//! `[sink.kafka]` and the query keys of a `kafka://` output.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::kafka::{parse_num, parse_url, redact_url};
use crate::text::within;

/// Which partition an output record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// The producer's partitioner: same key, same partition.
    Key,
    /// The input record's partition number (modulo the output topic's partition count).
    Input,
}

/// What happens to a record that cannot be redacted (too large, engine failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnredactable {
    /// Stop the pipeline: drain, commit what was delivered before it, exit with an error.
    Stop,
    /// Send a placeholder (never the record) with the reason in a header to
    /// `dead_letter_topic`, and go on.
    DeadLetter,
}

/// `[sink.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`: `host:port,host:port`.
    pub brokers: Option<String>,
    /// The output topic.
    pub topic: Option<String>,
    /// Which partition a record goes to.
    pub partitioning: Partitioning,
    /// What happens to a record that cannot be redacted.
    pub on_unredactable: OnUnredactable,
    /// Where placeholders of withheld records go.
    pub dead_letter_topic: Option<String>,
    /// How long a graceful stop waits for outstanding deliveries, in seconds.
    pub drain_timeout_secs: u64,
    /// Startup (brokers reachable, topics exist) must succeed within this many seconds.
    pub startup_timeout_secs: u64,
    /// Any librdkafka producer property. `enable.idempotence` and `acks` are set by logveil.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: None,
            topic: None,
            partitioning: Partitioning::Key,
            on_unredactable: OnUnredactable::Stop,
            dead_letter_topic: None,
            drain_timeout_secs: 60,
            startup_timeout_secs: 30,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[sink]` table of the config file.
pub struct SinkSection {
    /// `[sink.kafka]`.
    pub kafka: Option<KafkaSinkConfig>,
}

/// The sink settings for a `kafka://` output: the config section, overridden by the URL.
pub fn sink_from(arg: &str, base: Option<&KafkaSinkConfig>) -> Result<KafkaSinkConfig> {
    let url = parse_url(arg)?;
    let mut c = base.cloned().unwrap_or_default();
    if url.brokers.is_some() {
        c.brokers = url.brokers;
    }
    match url.topics.len() {
        0 => {}
        1 => c.topic = url.topics.into_iter().next(),
        _ => bail!("kafka output {}: exactly one topic", redact_url(arg)),
    }
    for (k, v) in url.query {
        match k.as_str() {
            "partitioning" => {
                c.partitioning = match v.as_str() {
                    "key" => Partitioning::Key,
                    "input" => Partitioning::Input,
                    _ => bail!("kafka URL: partitioning must be key or input"),
                }
            }
            "on_unredactable" => {
                c.on_unredactable = match v.as_str() {
                    "stop" => OnUnredactable::Stop,
                    "dead-letter" => OnUnredactable::DeadLetter,
                    _ => bail!("kafka URL: on_unredactable must be stop or dead-letter"),
                }
            }
            "dead_letter_topic" => c.dead_letter_topic = Some(v),
            "drain_timeout_secs" => c.drain_timeout_secs = parse_num(&k, &v)?,
            "startup_timeout_secs" => c.startup_timeout_secs = parse_num(&k, &v)?,
            _ => {
                c.properties.insert(k, v);
            }
        }
    }
    if c.brokers.as_deref().unwrap_or("").is_empty() {
        bail!(
            "kafka output {}: no brokers (kafka://HOST:PORT/... or [sink.kafka] brokers)",
            redact_url(arg)
        );
    }
    match c.topic.as_deref() {
        None | Some("") => bail!(
            "kafka output {}: no topic (kafka://HOST:PORT/TOPIC or [sink.kafka] topic)",
            redact_url(arg)
        ),
        Some(t) if t.starts_with('^') => bail!("kafka output: the topic cannot be a regex"),
        _ => {}
    }
    if c.on_unredactable == OnUnredactable::DeadLetter && c.dead_letter_topic.is_none() {
        bail!("kafka output: on_unredactable = \"dead-letter\" needs dead_letter_topic");
    }
    within(
        "kafka output: startup_timeout_secs",
        c.startup_timeout_secs,
        1,
        3600,
    )?;
    within(
        "kafka output: drain_timeout_secs",
        c.drain_timeout_secs,
        0,
        3600,
    )?;
    Ok(c)
}

impl KafkaSinkConfig {
    /// [`KafkaSinkConfig::startup_timeout_secs`] as a duration.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }
}
