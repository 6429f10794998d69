//! What the Kafka source and sink share: `kafka://` URLs, client settings, librdkafka
//! logging and the startup check. The source is in [`crate::sources::kafka`], the sink in
//! [`crate::sinks::kafka`]; their settings (`[source.kafka]`, `[sink.kafka]`) sit beside them.
//!
//! URL syntax:
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

use anyhow::{bail, Context, Result};

/// The URL scheme that names Kafka as an input or output.
pub const SCHEME: &str = "kafka://";

/// The error for a `kafka://` input or output in a build without the `kafka` feature.
#[cfg_attr(feature = "kafka", allow(dead_code))]
pub const NOT_BUILT: &str = "this logveil was built without Kafka support (cargo feature \"kafka\", on by default: build without --no-default-features)";

/// True if a command-line input or output names Kafka.
pub fn is_kafka_url(arg: &str) -> bool {
    arg.starts_with(SCHEME)
}

/// A parsed `kafka://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) brokers: Option<String>,
    pub(crate) topics: Vec<String>,
    pub(crate) query: Vec<(String, String)>,
}

pub(crate) fn parse_url(arg: &str) -> Result<Url> {
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

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => bail!("kafka URL: {key} must be true or false"),
    }
}

pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("kafka URL: {key} must be a number"))
}

/// A URL as it may be shown: the query (which may carry `sasl.password`) is cut.
pub fn redact_url(arg: &str) -> String {
    match arg.split_once('?') {
        Some((a, _)) => format!("{a}?…"),
        None => arg.to_string(),
    }
}

/// A value as it may be shown: its first 4 characters.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) fn cut(v: &str) -> String {
    match v.char_indices().nth(4) {
        Some((i, _)) => format!("{}…", &v[..i]),
        None => "…".into(),
    }
}

/// A librdkafka error message with every configured property value cut to its first 4
/// characters, so that an invalid `sasl.password` is never echoed.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn scrub(msg: &str, props: &BTreeMap<String, String>) -> String {
    let mut out = msg.to_string();
    for v in props.values() {
        if v.len() >= 4 && out.contains(v.as_str()) {
            out = out.replace(v.as_str(), &cut(v));
        }
    }
    out
}

#[cfg(feature = "kafka")]
mod client;
#[cfg(feature = "kafka")]
pub(crate) use client::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::kafka::config::{sink_from, Partitioning};
    use crate::sources::kafka::config::{source_from, KafkaSourceConfig};

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
