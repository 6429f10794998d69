//! Command-line interface (clap). `logveil` alone is `logveil run`: stdin to stdout.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "logveil",
    version,
    long_version = long_version(),
    about = "Streaming log redactor: replaces credentials and PII with keyed HMAC fingerprints",
    long_about = "Streaming log redactor: reads log records, finds API tokens, keys, passwords and \
selected PII, and replaces each with [REDACTED:<rule>:<key-id>:<fingerprint>], where the \
fingerprint is a truncated HMAC-SHA256 of the secret under your key: equal secrets stay equal, \
nothing can be reversed without the key.\n\n\
With no subcommand, logveil runs `logveil run`: stdin to stdout.\n\n\
Keys: LOGVEIL_KEY (hex:…, base64:… or raw, at least 32 bytes), --key-file FILE (mode 600), or \
[[keys]] in the config. Without a key, a random per-run key is used.",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
  kubectl logs app | logveil > clean.log\n  \
  logveil run /var/log/app/*.log.gz -o /srv/clean/ --stats\n  \
  logveil scan build.log || echo 'secrets leaked into the build log'\n  \
  echo \"$LEAKED_TOKEN\" | logveil fingerprint"
)]
/// The command line.
pub struct Cli {
    /// The subcommand; none is `run`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `run` options, when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Redact inputs (files or `-` for stdin; default stdin) to stdout, a file or a directory.
    Run(RunArgs),
    /// Detect only: print a summary per rule; exit 1 if anything was found, 0 if clean, 2 on
    /// error. Usable as a CI gate.
    Scan(ScanArgs),
    /// Print the fingerprint of known secrets (arguments, or one per line on stdin) under
    /// every configured key, to search redacted logs for a leaked token.
    Fingerprint(FingerprintArgs),
    /// List or check the rules.
    Rules(RulesArgs),
    /// Generate a synthetic mixed log corpus with planted fake secrets (for benchmarks and
    /// tests).
    Corpus(CorpusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `logveil completions bash > /etc/bash_completion.d/logveil`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, e.g. `logveil man > logveil.1`.
    Man,
}

impl Cli {
    /// `--quiet`, wherever it was given.
    pub fn quiet(&self) -> bool {
        match &self.command {
            None => self.run.common.quiet,
            Some(Command::Run(a)) => a.common.quiet,
            Some(Command::Scan(a)) => a.common.quiet,
            Some(Command::Fingerprint(a)) => a.common.quiet,
            Some(Command::Rules(a)) => match &a.command {
                RulesCommand::List(c) | RulesCommand::Check(c) => c.quiet,
            },
            Some(Command::Corpus(_) | Command::Completions(_) | Command::Man) => false,
        }
    }
}

/// `logveil completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--version`: the program's version and the rule library's (how many rules in how many
/// packs, and a digest of the packs as built in, so two binaries with the same library say
/// the same thing).
pub fn long_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let library = match crate::rules::RuleSet::builtin() {
            Ok(set) => format!(
                "{} rules in {} packs, {} enabled by default",
                set.rules.len(),
                set.packs.len(),
                set.enabled().len()
            ),
            Err(e) => format!("built-in packs failed to load: {e}"),
        };
        format!(
            "{}\nrules: library {}, {library}",
            env!("CARGO_PKG_VERSION"),
            crate::rules::LIBRARY_DIGEST
        )
    })
}

/// Options shared by every command that loads rules and keys.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Config file (TOML); see config.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Extra rule-pack directory (repeatable); its packs add to or replace built-in ones.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules_dirs: Vec<PathBuf>,
    /// Key file (mode 600): `hex:…`, `base64:…` or raw bytes, at least 32 bytes.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Disable a pack or rule by id (repeatable).
    #[arg(long, value_name = "ID")]
    pub disable: Vec<String>,
    /// Enable a pack or rule by id (repeatable; applied after --disable).
    #[arg(long, value_name = "ID")]
    pub enable: Vec<String>,
    /// No warnings or notices on stderr (errors, Kafka client errors and --stats still print).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `logveil run`.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Input files (plain, gzip or zstd, by content) or `-` for stdin. Default: stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Output: a file (`.gz`/`.zst` names compress), `-` for stdout, or a directory (existing,
    /// or ending in `/`) where each input gets an output of the same name and compression.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<String>,
    /// Redaction worker threads (default: number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print statistics to stderr at exit: records, bytes, findings per rule, MB/s, latency
    /// percentiles.
    #[arg(long)]
    pub stats: bool,
    /// Replacement template with {rule}, {key_id} and {fp}.
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Audit trail: append one JSON object per finding (time, input, record, offset, rule,
    /// key_id, fingerprint, length; never the secret) to FILE, or `-` for stdout when the
    /// redacted output goes elsewhere.
    #[arg(long, value_name = "FILE")]
    pub findings: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs (e.g.
    /// 127.0.0.1:9898; port 0 picks a free one, printed on stderr). Also `[metrics] listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// No progress bar (it is shown on stderr when that is a terminal and the inputs are
    /// files; `--quiet` turns it off too).
    #[arg(long)]
    pub no_progress: bool,
    /// Options shared by every command.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `logveil scan`.
#[derive(Debug, Args, Clone)]
pub struct ScanArgs {
    /// Input files or `-` for stdin. Default: stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Redaction worker threads (default: number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Also print throughput and latency statistics to stderr.
    #[arg(long)]
    pub stats: bool,
    /// Print JSON: one object per finding (as --findings writes them), then the summary
    /// object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Audit trail: append one JSON object per finding to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub findings: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs (e.g.
    /// 127.0.0.1:9898; port 0 picks a free one, printed on stderr). Also `[metrics] listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// No progress bar (it is shown on stderr when that is a terminal and the inputs are
    /// files; `--quiet` turns it off too).
    #[arg(long)]
    pub no_progress: bool,
    /// Options shared by every command.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `logveil fingerprint`.
#[derive(Debug, Args, Clone)]
pub struct FingerprintArgs {
    /// Secrets to fingerprint. Prefer stdin: arguments are visible in the process list.
    #[arg(value_name = "SECRET")]
    pub secrets: Vec<String>,
    /// Options shared by every command.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `logveil rules`.
#[derive(Debug, Args, Clone)]
pub struct RulesArgs {
    /// `list` or `check`.
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// `logveil rules list|check`.
#[derive(Debug, Subcommand, Clone)]
pub enum RulesCommand {
    /// List packs and rules with their validators and whether they are enabled.
    List(CommonArgs),
    /// Run every rule's examples and negative examples; exit 1 on any failure.
    Check(CommonArgs),
}

/// `logveil corpus`.
#[derive(Debug, Args, Clone)]
pub struct CorpusArgs {
    /// Approximate size in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mb: u64,
    /// PRNG seed: same seed and size, same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of lines that carry a fake secret (0 for none).
    #[arg(long, default_value_t = 0.01)]
    pub secret_rate: f64,
    /// Output file (default stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write ground truth as TSV (line, kind, secret) to this file.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
}
