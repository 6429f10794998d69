//! librdkafka clients: settings, logging, the startup check, errors in words.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::ClientContext;

use super::{cut, scrub};

/// librdkafka's errors and warnings, on stderr, at most one line per second per kind: a broker
/// outage is logged clearly without flooding.
pub(crate) struct Log {
    role: &'static str,
    last: Mutex<HashMap<String, Instant>>,
    /// Client errors reported (all of them, also those not printed), for the metrics.
    errors: Arc<AtomicU64>,
}

impl Log {
    pub(crate) fn new(role: &'static str) -> Log {
        Log {
            role,
            last: Mutex::new(HashMap::new()),
            errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client error: counted, and said (at most once per second per kind).
    pub(crate) fn error(&self, kind: &str, msg: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.say(kind, msg);
    }

    /// The count of client errors, shared (it goes on counting).
    pub(crate) fn error_count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.errors)
    }

    pub(crate) fn say(&self, kind: &str, msg: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last
            .get(kind)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        last.insert(kind.to_string(), now);
        eprintln!("logveil: kafka {}: {msg}", self.role);
    }
}

/// librdkafka's own log lines (warnings and worse) and client errors go to a context's `log`
/// field ([`Log`]): one line per kind per second on stderr. With `, stats`, the client's
/// statistics (`statistics.interval.ms`) go to the context's `statistics` method.
macro_rules! logging_context {
    ($t:ty) => {
        impl rdkafka::ClientContext for $t {
            $crate::kafka::logging_context!(@log);
        }
    };
    ($t:ty, stats) => {
        impl rdkafka::ClientContext for $t {
            $crate::kafka::logging_context!(@log);
            fn stats(&self, statistics: rdkafka::Statistics) {
                self.statistics(statistics);
            }
        }
    };
    (@log) => {
        fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
            if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Warning as i32) {
                self.log.say(fac, msg);
            }
        }
        fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
            self.log.error(
                &format!("{error:?}"),
                &format!("{error} ({reason}); retrying"),
            );
        }
    };
}
pub(crate) use logging_context;

pub(crate) fn client_config(
    brokers: &str,
    props: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set("client.id", "logveil");
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

/// Checks that the brokers answer and the topics exist, within the startup timeout. Returns
/// the partition count of each named topic.
pub(crate) fn check_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    role: &str,
    brokers: &str,
    topics: &[String],
    timeout: Duration,
    setting: &str,
) -> Result<Vec<usize>> {
    let md = client.fetch_metadata(None, timeout).map_err(|e| {
        anyhow!(
            "kafka {role}: cannot reach brokers {brokers} within {} s ({e}); check the address, \
             the network, security.protocol and the credentials ({setting} startup_timeout_secs)",
            timeout.as_secs()
        )
    })?;
    let mut counts = Vec::new();
    for t in topics {
        if t.starts_with('^') {
            counts.push(0);
            continue;
        }
        match md.topics().iter().find(|m| m.name() == t) {
            Some(m) if m.error().is_none() && !m.partitions().is_empty() => {
                counts.push(m.partitions().len())
            }
            _ => bail!(
                "kafka {role}: topic '{t}' does not exist on {brokers} (create it first; logveil \
                 does not create topics)"
            ),
        }
    }
    Ok(counts)
}

/// A client-creation error in words, naming the setting and never showing its value whole.
pub(crate) fn client_error(
    e: &rdkafka::error::KafkaError,
    props: &BTreeMap<String, String>,
) -> String {
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
