//! Kafka addressing: `kafka://` URLs and the `[source.kafka]` / `[sink.kafka]` config sections.
//!
//! `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[,TOPIC...]?key=value&...`
//!
//! - The host list is `bootstrap.servers`; empty (`kafka:///topic`) takes the config's.
//! - Input topics are names, or a regex when they start with `^` (librdkafka's convention).
//!   The output has exactly one topic.
//! - Query keys that logveil knows (`group`, `partitioning`, `dead_letter_topic`, ...) set
//!   that option; any other key is passed to librdkafka as a client property
//!   (`security.protocol=SASL_SSL`, `compression.type=zstd`, ...).
//! - The URL overrides the config section, which supplies defaults and secrets that should not
//!   sit in a command line (`sasl.password` belongs in the config file).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub const SCHEME: &str = "kafka://";

/// True if a command-line input or output names Kafka.
pub fn is_kafka_url(arg: &str) -> bool {
    arg.starts_with(SCHEME)
}

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
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub partitioning: Partitioning,
    pub on_unredactable: OnUnredactable,
    pub dead_letter_topic: Option<String>,
    /// How long a graceful stop waits for outstanding deliveries, in seconds.
    pub drain_timeout_secs: u64,
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
pub struct SourceSection {
    pub kafka: Option<KafkaSourceConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSection {
    pub kafka: Option<KafkaSinkConfig>,
}

/// A parsed `kafka://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Url {
    brokers: Option<String>,
    topics: Vec<String>,
    query: Vec<(String, String)>,
}

fn parse_url(arg: &str) -> Result<Url> {
    let rest = arg
        .strip_prefix(SCHEME)
        .with_context(|| format!("not a kafka:// URL: {arg}"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let (hosts, path) = match before_query.split_once('/') {
        Some((h, p)) => (h, p),
        None => (before_query, ""),
    };
    let brokers = (!hosts.is_empty()).then(|| hosts.to_string());
    let topics = path
        .split(',')
        .filter(|t| !t.is_empty())
        .map(percent_decode)
        .collect::<Result<Vec<_>>>()?;
    let mut q = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            // Not echoed: a typo like `sasl.password:...` would print the password.
            bail!("kafka URL: a query parameter has no '=' (key=value&key=value)");
        };
        q.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(Url {
        brokers,
        topics,
        query: q,
    })
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                bail!("kafka URL: bad percent escape");
            };
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("kafka URL: not UTF-8 after percent decoding")
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => bail!("kafka URL: {key} must be true or false"),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("kafka URL: {key} must be a number"))
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
    use crate::config::within;
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
    crate::config::within(
        "kafka output: startup_timeout_secs",
        c.startup_timeout_secs,
        1,
        3600,
    )?;
    crate::config::within(
        "kafka output: drain_timeout_secs",
        c.drain_timeout_secs,
        0,
        3600,
    )?;
    Ok(c)
}

impl KafkaSourceConfig {
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }
}

impl KafkaSinkConfig {
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }
}

/// A URL as it may be shown: the query (which may carry `sasl.password`) is cut.
pub fn redact_url(arg: &str) -> String {
    match arg.split_once('?') {
        Some((a, _)) => format!("{a}?…"),
        None => arg.to_string(),
    }
}

/// A client-creation error in words, naming the setting and never showing its value whole.
pub fn client_error(e: &rdkafka::error::KafkaError, props: &BTreeMap<String, String>) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) => {
            let desc = if value.is_empty() {
                desc.clone()
            } else {
                desc.replace(value.as_str(), &cut(value))
            };
            format!("invalid setting '{key}': {}", scrub(&desc, props))
        }
        other => scrub(&other.to_string(), props),
    }
}

/// A value as it may be shown: its first 4 characters.
fn cut(v: &str) -> String {
    match v.char_indices().nth(4) {
        Some((i, _)) => format!("{}…", &v[..i]),
        None => "…".into(),
    }
}

/// A librdkafka error message with every configured property value cut to its first 4
/// characters, so that an invalid `sasl.password` is never echoed.
pub fn scrub(msg: &str, props: &BTreeMap<String, String>) -> String {
    let mut out = msg.to_string();
    for v in props.values() {
        if v.len() >= 4 && out.contains(v.as_str()) {
            out = out.replace(v.as_str(), &cut(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_set_brokers_topics_options_and_properties() {
        let c = source_from(
            "kafka://a:9092,b:9092/raw-logs,^app-.*?group=g1&redact_keys=false&security.protocol=SSL",
            None,
        )
        .unwrap();
        assert_eq!(c.brokers.as_deref(), Some("a:9092,b:9092"));
        assert_eq!(c.topics, vec!["raw-logs", "^app-.*"]);
        assert_eq!(c.group, "g1");
        assert!(!c.redact_keys && c.redact_headers);
        assert_eq!(c.properties["security.protocol"], "SSL");

        let s = sink_from(
            "kafka://a:9092/clean?partitioning=input&on_unredactable=dead-letter&dead_letter_topic=dlq",
            None,
        )
        .unwrap();
        assert_eq!(s.topic.as_deref(), Some("clean"));
        assert_eq!(s.partitioning, Partitioning::Input);
        assert_eq!(s.dead_letter_topic.as_deref(), Some("dlq"));
    }

    #[test]
    fn config_supplies_defaults_that_the_url_overrides() {
        let base = KafkaSourceConfig {
            brokers: Some("cfg:9092".into()),
            topics: vec!["t1".into()],
            properties: [("sasl.password".to_string(), "hunter2hunter2".to_string())].into(),
            ..KafkaSourceConfig::default()
        };
        let c = source_from("kafka:///?group=x", Some(&base)).unwrap();
        assert_eq!(c.brokers.as_deref(), Some("cfg:9092"));
        assert_eq!(c.topics, vec!["t1"]);
        assert_eq!(c.group, "x");
        let c = source_from("kafka://url:1/t2", Some(&base)).unwrap();
        assert_eq!(c.brokers.as_deref(), Some("url:1"));
        assert_eq!(c.topics, vec!["t2"]);
        assert_eq!(c.properties["sasl.password"], "hunter2hunter2");
    }

    #[test]
    fn bad_urls_are_clear_errors_without_the_query() {
        let e = source_from("kafka://h:1/?sasl.password=hunter2", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no topic") && !e.contains("hunter2"), "{e}");
        assert!(sink_from("kafka://h:1/a,b", None).is_err());
        assert!(sink_from("kafka://h:1/^re", None).is_err());
        assert!(sink_from("kafka://h:1/t?on_unredactable=dead-letter", None).is_err());
        assert!(source_from("kafka://h:1/t?redact_keys=maybe", None).is_err());
        assert!(source_from("kafka://h:1/t?novalue", None).is_err());
    }

    #[test]
    fn scrub_cuts_property_values() {
        let props = [("sasl.password".to_string(), "hunter2hunter2".to_string())].into();
        assert_eq!(
            scrub("Invalid value \"hunter2hunter2\" for x", &props),
            "Invalid value \"hunt…\" for x"
        );
    }
}
