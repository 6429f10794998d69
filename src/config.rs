//! The TOML config model (`--config FILE`, see `config.example.toml`), its validation, and
//! how command-line options override it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::fingerprint::{
    Key, KeySpec, Keyring, Template, DEFAULT_KEY_ID, DEFAULT_TEMPLATE, KEY_ENV, KEY_ID_ENV,
};
use crate::rules::{RuleSet, Selection};
use crate::text::{toml_error, within};

/// The config file (`--config`): every section optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys by id; one is `active = true`. Each names a `file` or an `env` variable.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Replacement template with `{rule}`, `{key_id}`, `{fp}`.
    pub template: Option<String>,
    /// Redaction worker threads (default: the number of CPUs).
    pub threads: Option<usize>,
    /// `[rules]`: rule directories and the selection.
    #[serde(default)]
    pub rules: RulesConfig,
    /// `[pipeline]`: read sizes and batches in flight.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// `[fields]`: the field names the `fields` pack redacts.
    #[serde(default)]
    pub fields: FieldsConfig,
    /// `[source.kafka]`: defaults for `kafka://` inputs.
    #[serde(default)]
    pub source: crate::sources::kafka::config::SourceSection,
    /// `[sink.kafka]`: defaults for a `kafka://` output.
    #[serde(default)]
    pub sink: crate::sinks::kafka::config::SinkSection,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `HOST:PORT` to serve `/metrics` on (`--metrics` overrides it).
    pub listen: Option<String>,
}

/// `[fields]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// Field names whose values are secrets whatever their shape (replaces the default list).
    pub names: Option<Vec<String>>,
}

/// `[rules]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Extra rule-pack directories (relative paths are relative to the config file).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Pack ids or rule ids to disable.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Pack ids or rule ids to enable (applied after `disable`).
    #[serde(default)]
    pub enable: Vec<String>,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Bytes read per read call; a batch holds the whole lines of one read.
    pub read_buffer_bytes: usize,
    /// A record longer than this is passed to the engine in pieces of this size.
    pub max_record_bytes: usize,
    /// Batches in flight between reader and writer, per worker thread.
    pub batches_per_thread: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            read_buffer_bytes: 512 * 1024,
            max_record_bytes: 1024 * 1024,
            batches_per_thread: 4,
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| toml_error(&e, &text, &format!("config file {}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for d in cfg.rules.dirs.iter_mut() {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        for k in cfg.keys.iter_mut() {
            if let Some(f) = k.file.as_mut() {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
        cfg.validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if let Some(t) = self.threads {
            check_threads(t, "threads")?;
        }
        let p = &self.pipeline;
        within(
            "pipeline.read_buffer_bytes",
            p.read_buffer_bytes as u64,
            4096,
            MAX_READ_BUFFER as u64,
        )?;
        within(
            "pipeline.max_record_bytes",
            p.max_record_bytes as u64,
            65536,
            MAX_RECORD_PIECE as u64,
        )?;
        within(
            "pipeline.batches_per_thread",
            p.batches_per_thread as u64,
            1,
            MAX_BATCHES_PER_THREAD as u64,
        )?;
        if let Some(t) = &self.template {
            Template::parse(t)?;
        }
        Ok(())
    }
}

/// Most redaction threads: beyond this, threads only cost memory (each holds its regex
/// caches and its share of the batches in flight).
pub const MAX_THREADS: usize = 256;
/// Largest read (and batch) size.
pub const MAX_READ_BUFFER: usize = 64 << 20;
/// Largest piece of an over-long record handed to the engine at once.
pub const MAX_RECORD_PIECE: usize = 256 << 20;
/// Most batches in flight per thread.
pub const MAX_BATCHES_PER_THREAD: usize = 64;
/// Most bytes of input in flight between the reader and the writer (threads × batches per
/// thread × read size).
pub const MAX_IN_FLIGHT_BYTES: u64 = 2 << 30;

fn check_threads(t: usize, name: &str) -> Result<()> {
    within(name, t as u64, 1, MAX_THREADS as u64)
}

/// Options given on the command line that override the config.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--key-file`.
    pub key_file: Option<PathBuf>,
    /// `--rules-dir`, after the config's.
    pub rules_dirs: Vec<PathBuf>,
    /// `--disable`.
    pub disable: Vec<String>,
    /// `--enable`.
    pub enable: Vec<String>,
    /// `--template`.
    pub template: Option<String>,
    /// `--threads`.
    pub threads: Option<usize>,
}

/// Everything a command needs, resolved from config + overrides + environment.
pub struct Settings {
    /// The config file (or the defaults).
    pub config: Config,
    /// The rule library, loaded and selected.
    pub rules: RuleSet,
    /// The replacement template.
    pub template: Template,
    /// Redaction threads.
    pub threads: usize,
}

impl Settings {
    /// Loads the config file (if any), the rules (checking custom ones against their examples), the template and the thread count.
    pub fn resolve(config_path: Option<&Path>, ov: &Overrides) -> Result<Settings> {
        let mut config = match config_path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let mut dirs = config.rules.dirs.clone();
        dirs.extend(ov.rules_dirs.iter().cloned());
        let mut selection = Selection {
            disable: config.rules.disable.clone(),
            enable: config.rules.enable.clone(),
        };
        selection.disable.extend(ov.disable.iter().cloned());
        selection.enable.extend(ov.enable.iter().cloned());
        let rules = RuleSet::load(&dirs, &selection, config.fields.names.as_deref())?;
        crate::check::check_custom(&rules)?;
        let template = Template::parse(
            ov.template
                .as_deref()
                .or(config.template.as_deref())
                .unwrap_or(DEFAULT_TEMPLATE),
        )?;
        let threads = ov
            .threads
            .or(config.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if ov.threads.is_some() {
            check_threads(threads, "--threads")?;
        }
        let threads = threads.min(MAX_THREADS);
        let p = &config.pipeline;
        // A batch is one read, or a piece of an over-long record with its context.
        let batch = p
            .read_buffer_bytes
            .max(p.max_record_bytes + 2 * crate::engine::OVERLAP);
        let in_flight = threads as u64 * p.batches_per_thread as u64 * batch as u64;
        if in_flight > MAX_IN_FLIGHT_BYTES {
            bail!(
                "threads × pipeline.batches_per_thread × the largest batch (pipeline.read_buffer_bytes, or pipeline.max_record_bytes plus context) = {in_flight} bytes in flight; at most {MAX_IN_FLIGHT_BYTES} are allowed (lower one of them)"
            );
        }
        config.rules.dirs = dirs;
        Ok(Settings {
            config,
            rules,
            template,
            threads,
        })
    }
}

/// Builds the keyring: `--key-file`, else `LOGVEIL_KEY`, else the config's `[[keys]]`, else a
/// random key for this run (the caller warns: see [`Keyring::is_ephemeral`]).
pub fn keyring(config: &Config, key_file: Option<&Path>) -> Result<Keyring> {
    let key_id = std::env::var(KEY_ID_ENV).unwrap_or_else(|_| DEFAULT_KEY_ID.to_string());
    if let Some(path) = key_file {
        return Ok(Keyring::single(Key::from_file(&key_id, path)?));
    }
    if let Some(value) = std::env::var_os(KEY_ENV) {
        let value = Zeroizing::new(value.into_string().map_err(|_| {
            anyhow::anyhow!("{KEY_ENV} is not valid UTF-8; use 'hex:…' or 'base64:…'")
        })?);
        return Ok(Keyring::single(Key::parse(&key_id, &value, KEY_ENV)?));
    }
    if !config.keys.is_empty() {
        return Keyring::from_specs(&config.keys);
    }
    Keyring::ephemeral()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let cfg = Config::load(&path).unwrap();
        assert!(cfg.template.is_some());
        assert_eq!(cfg.keys.len(), 2);
        assert_eq!(cfg.metrics.listen.as_deref(), Some("127.0.0.1:9898"));
    }

    #[test]
    fn config_errors_do_not_echo_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[[keys]]\nid = \"k\"\nkey = \"hex:SECRETKEYMATERIAL\"\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("line 3") && e.contains("key"), "{e}");
        assert!(
            !e.contains("SECRETKEYMATERIAL"),
            "config error echoes a value"
        );
        std::fs::write(&p, "threads = \"hex:SECRETKEYMATERIAL\"\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(
            e.contains("line 1") && !e.contains("SECRETKEYMATERIAL"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "thraeds = 4\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("c.toml") && e.contains("thraeds"), "{e}");
        std::fs::write(&p, "template = \"[{rule}]\"\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("c.toml") && e.contains("{fp}"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&dir.path().join("missing.toml")).unwrap_err()
        );
        assert!(e.contains("missing.toml"), "{e}");
    }
}
