//! The subcommands. Each returns the process exit code; errors are reported by `main` as one
//! line on stderr with exit code 2.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::check::check_rule;
use crate::cli::{
    Cli, CommonArgs, CompletionsArgs, CorpusArgs, FingerprintArgs, RulesArgs, RulesCommand,
    RunArgs, ScanArgs,
};
use crate::config::{self, Overrides, Settings};
use crate::engine::{Engine, Matcher};
use crate::metrics::Stage;
use crate::metrics::{self, Listener, Registry};
use crate::pipeline::{Flow, InputFailed, Pipeline, Sink};
use crate::progress::{self, Progress};
use crate::rules::Prefilter;
use crate::sinks::findings::FindingsLog;
use crate::sinks::{Output, OutputSpec};
use crate::sources::file::{self as source, InputSpec};
use crate::sources::kafka::config::KafkaSourceConfig;
use crate::text::preview;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn overrides(common: &CommonArgs, threads: Option<usize>, template: Option<String>) -> Overrides {
    Overrides {
        key_file: common.key_file.clone(),
        rules_dirs: common.rules_dirs.clone(),
        disable: common.disable.clone(),
        enable: common.enable.clone(),
        template,
        threads,
    }
}

fn settings(
    common: &CommonArgs,
    threads: Option<usize>,
    template: Option<String>,
) -> Result<(Settings, Overrides)> {
    let ov = overrides(common, threads, template);
    Ok((Settings::resolve(common.config.as_deref(), &ov)?, ov))
}

fn build_engine(s: &Settings, ov: &Overrides) -> Result<Engine> {
    let keyring = config::keyring(&s.config, ov.key_file.as_deref())?;
    if keyring.is_ephemeral() {
        crate::notice::warn(format_args!(
            "no key configured ({}, --key-file or [[keys]]); using a random key for this run: fingerprints will not match other runs",
            crate::fingerprint::KEY_ENV
        ));
    }
    let matcher = Matcher::new(s.rules.enabled());
    matcher.compile_in_background();
    Ok(Engine::new(matcher, keyring, s.template.clone()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The inputs: stdin when none is named; directories and globs expanded into their files.
/// What cannot be walked (a symlink loop, an unreadable directory, a FIFO in a tree) is one
/// error line each, and counted: the run goes on with everything else and fails at its end.
fn input_specs(args: &[String]) -> Result<(Vec<InputSpec>, usize)> {
    if args.is_empty() {
        return Ok((vec![InputSpec::Stdin], 0));
    }
    let (specs, problems) = crate::sources::tree::expand(args)?;
    for p in &problems {
        eprintln!("logveil: error: {p}");
    }
    for s in &specs {
        if matches!(s, InputSpec::File(_) | InputSpec::Stdin) {
            s.check()?;
        }
    }
    if specs.is_empty() {
        anyhow::bail!("no input could be read ({} problems above)", problems.len());
    }
    Ok((specs, problems.len()))
}

/// Refuses an output directory inside a directory named as input: its outputs would be
/// found as inputs by the next walk (or, being written, by this one).
fn check_tree_output(args: &[String], output: &OutputSpec) -> Result<()> {
    let OutputSpec::Dir(out) = output else {
        return Ok(());
    };
    let out_abs = absolute(out);
    for a in args.iter().filter(|a| std::path::Path::new(a).is_dir()) {
        if let Ok(dir) = std::fs::canonicalize(a) {
            if out_abs.starts_with(&dir) {
                anyhow::bail!(
                    "output directory {} is inside input directory {a}: its outputs would be read as inputs; write it elsewhere",
                    out.display()
                );
            }
        }
    }
    Ok(())
}

/// `p` made absolute through its nearest existing ancestor (the output directory may not
/// exist yet), with symlinks resolved there.
fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&cur) {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = if parent.as_os_str().is_empty() {
                    ".".into()
                } else {
                    parent.to_path_buf()
                };
            }
            _ => return p.to_path_buf(),
        }
    }
}

fn rule_ids(p: &Pipeline) -> Vec<&str> {
    p.engine()
        .matcher()
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .collect()
}

/// Binds the metrics address (`--metrics`, else `[metrics] listen`) before anything is read,
/// so that a busy or wrong address fails the command at once.
fn metrics_listener(arg: Option<&str>, s: &Settings) -> Result<Option<Listener>> {
    match arg.or(s.config.metrics.listen.as_deref()) {
        Some(addr) => Ok(Some(Listener::bind(addr)?)),
        None => Ok(None),
    }
}

/// Serves `/metrics` for `pipeline` on `listener` (inside the runtime).
fn serve_metrics(
    listener: Option<Listener>,
    pipeline: &mut Pipeline,
    source_type: &'static str,
    sink_type: &'static str,
) -> Result<()> {
    let Some(listener) = listener else {
        return Ok(());
    };
    let addr = listener.local_addr();
    let registry = Registry::new(
        pipeline.stats.clone(),
        pipeline.probes.clone(),
        rule_ids(pipeline).into_iter().map(String::from).collect(),
        source_type,
        sink_type,
    );
    pipeline.observed = true;
    metrics::serve(listener, std::sync::Arc::new(registry))?;
    crate::notice::notice(format_args!("metrics at http://{addr}/metrics"));
    Ok(())
}

/// The `component_type` of a run's source, for the metrics.
fn source_type(source: &Source) -> &'static str {
    match source {
        Source::Kafka(_) => "kafka",
        Source::Files(f, _) if f.iter().all(|i| matches!(i, InputSpec::Stdin)) => "stdin",
        Source::Files(..) => "file",
    }
}

/// `logveil run`: every source (files and stdin, or one Kafka input) into every sink
/// (stdout, a file, a directory, a Kafka topic), through one pipeline.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let (s, ov) = settings(&args.common, args.threads, args.template.clone())?;
    let output = OutputSpec::parse(args.output.as_deref());
    check_tree_output(&args.inputs, &output)?;
    let source = source_of(&args.inputs, &s)?;
    if let Source::Files(inputs, _) = &source {
        output.check(inputs)?;
    }
    let listener = metrics_listener(args.metrics.as_deref(), &s)?;
    let engine = build_engine(&s, &ov)?;
    if let Some(path) = &args.findings {
        if matches!(source, Source::Kafka(_)) {
            anyhow::bail!(
                "--findings is not yet available for kafka:// inputs (files and stdin only)"
            );
        }
        if path == "-" && output == OutputSpec::Stdout {
            anyhow::bail!("--findings -: stdout carries the redacted records; give -o OUT, or --findings FILE");
        }
    }
    let findings = match &args.findings {
        Some(path) => vec![FindingsLog::create(path, &engine)?],
        None => Vec::new(),
    };
    let mut pipeline = Pipeline::new(engine, s.threads, s.config.pipeline.clone());
    pipeline.findings = findings;
    let rt = runtime()?;
    let mut kafka_report: Option<String> = None;
    let sink_type = match &output {
        OutputSpec::Stdout => "stdout",
        OutputSpec::File(_) => "file",
        OutputSpec::Dir(_) => "directory",
        OutputSpec::Kafka(_) => "kafka",
    };
    let source_type = source_type(&source);
    let result = rt.block_on(async {
        serve_metrics(listener, &mut pipeline, source_type, sink_type)?;
        match source {
            Source::Kafka(src) => {
                let mut sink = Output::open(&output, s.config.sink.kafka.as_ref()).await?;
                kafka_report = Some(run_kafka(*src, &mut sink, &mut pipeline).await?);
                Ok(())
            }
            Source::Files(inputs, problems) => {
                pipeline.stop_on(crate::signals::install()?);
                let mut sink = Output::open(&output, s.config.sink.kafka.as_ref()).await?;
                let bar = progress::wanted(args.no_progress);
                let r = run_files(&inputs, &mut pipeline, &mut sink, bar).await;
                // Closed whatever happened, so that everything redacted reaches the output;
                // the first error is the one reported.
                let closed = sink.close().await;
                let failed = r.and_then(|failed| closed.map(|_| failed))?;
                unreadable(problems + failed, inputs.len() + problems)
            }
        }
    });
    if args.stats {
        eprint!("{}", pipeline.stats.lock().report(&rule_ids(&pipeline)));
        if let Some(k) = &kafka_report {
            eprint!("{k}");
        }
    }
    // A blocking read of a quiet stdin must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // What was found is in the audit trail even when the run failed part way.
    let audit = pipeline.findings.iter_mut().try_for_each(|l| l.flush());
    // A closed output (`| head`) is a normal end, like the end of the input.
    result?;
    audit?;
    Ok(ExitCode::SUCCESS)
}

/// What `run` and `scan` read.
enum Source {
    /// Files and stdin, in order, and how many named inputs could not be walked.
    Files(Vec<InputSpec>, usize),
    /// One Kafka input (several topics or a regex go in its URL).
    Kafka(Box<KafkaSourceConfig>),
}

fn source_of(args: &[String], s: &Settings) -> Result<Source> {
    if !args.iter().any(|a| crate::kafka::is_kafka_url(a)) {
        let (inputs, problems) = input_specs(args)?;
        return Ok(Source::Files(inputs, problems));
    }
    let [input] = args else {
        anyhow::bail!(
            "a kafka:// input must be the only input (name several topics in its URL: kafka://HOST:PORT/a,b or a regex ^logs-.*)"
        );
    };
    let src = crate::sources::kafka::config::source_from(input, s.config.source.kafka.as_ref())?;
    Ok(Source::Kafka(Box::new(src)))
}

/// The end of a run in which `failed` inputs (of `total`) could not be read, each already
/// reported on its own line.
fn unreadable(failed: usize, total: usize) -> Result<()> {
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {total} inputs could not be read or were cut short (each named above); every other input was redacted in full"
        );
    }
    Ok(())
}

/// Files and stdin, one after the other, into one sink. An input found in a directory or
/// by a glob that cannot be opened or read to its end is reported on its own line, and the
/// run goes on with the next (what it held up to the failure was redacted and written);
/// returns how many failed so. Any other error (a named file, the output, redaction) stops
/// the run.
async fn run_files(
    inputs: &[InputSpec],
    pipeline: &mut Pipeline,
    sink: &mut Output,
    progress: bool,
) -> Result<usize> {
    let buffer = pipeline.read_buffer_bytes();
    let mut failed = 0;
    // The bar's total: the inputs' sizes on disk (only when all are regular files).
    let sizes: Option<u64> = inputs
        .iter()
        .map(|i| {
            let m = std::fs::metadata(i.path()?).ok()?;
            m.is_file().then_some(m.len())
        })
        .sum();
    let read = Arc::new(AtomicU64::new(0));
    let bar = match sizes {
        Some(total) if progress => Some(Progress::start(
            total,
            Arc::clone(&read),
            pipeline.stats.clone(),
        )),
        _ => None,
    };
    let counter = bar.as_ref().map(|_| Arc::clone(&read));
    let r = files_into(inputs, pipeline, sink, buffer, counter, &mut failed).await;
    if let Some(bar) = bar {
        bar.finish();
    }
    r.map(|()| failed)
}

async fn files_into(
    inputs: &[InputSpec],
    pipeline: &mut Pipeline,
    sink: &mut Output,
    buffer: usize,
    counter: Option<Arc<AtomicU64>>,
    failed: &mut usize,
) -> Result<()> {
    for input in inputs {
        // A stop that came between two inputs: the next one is not opened (nor its output
        // created).
        if pipeline.stop_requested() {
            break;
        }
        let in_tree = matches!(input, InputSpec::Tree { .. });
        let opened =
            match source::open(input, buffer, pipeline.stop_signal(), counter.clone()).await {
                Ok(o) => o,
                Err(e) if in_tree => {
                    pipeline.stats.lock().error(Stage::Receiving, "open_failed");
                    progress::eprint_line(format_args!("logveil: error: {e:#}; skipped"));
                    *failed += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
        match pipeline.process(opened, sink).await {
            Ok(Flow::Done) => {}
            Ok(Flow::OutputClosed | Flow::Stopped) => break,
            Err(e) if in_tree && e.is::<InputFailed>() => {
                progress::eprint_line(format_args!("logveil: error: {e:#}"));
                *failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A Kafka input until SIGTERM/SIGINT (its own handling: drain, commit, exit 0).
#[cfg(feature = "kafka")]
async fn run_kafka(
    src: KafkaSourceConfig,
    sink: &mut Output,
    pipeline: &mut Pipeline,
) -> Result<String> {
    crate::sources::kafka::run(src, sink, pipeline, None).await
}

#[cfg(not(feature = "kafka"))]
async fn run_kafka(_: KafkaSourceConfig, _: &mut Output, _: &mut Pipeline) -> Result<String> {
    anyhow::bail!("{}", crate::kafka::NOT_BUILT)
}

/// `logveil scan`: exit 1 if anything was found, 0 if clean.
pub fn scan(args: ScanArgs) -> Result<ExitCode> {
    let (s, ov) = settings(&args.common, args.threads, None)?;
    let (inputs, problems) = input_specs(&args.inputs)?;
    let listener = metrics_listener(args.metrics.as_deref(), &s)?;
    let engine = build_engine(&s, &ov)?;
    // `--json` prints the per-finding objects on stdout before the summary; `--findings`
    // writes them where it says (both may be given; stdout only once).
    let mut paths: Vec<&str> = args.findings.iter().map(String::as_str).collect();
    if args.json && !paths.contains(&"-") {
        paths.push("-");
    }
    let findings = paths
        .into_iter()
        .map(|p| FindingsLog::create(p, &engine))
        .collect::<Result<Vec<_>>>()?;
    let mut pipeline = Pipeline::new(engine, s.threads, s.config.pipeline.clone());
    pipeline.findings = findings;
    let rt = runtime()?;
    let source_type = source_type(&Source::Files(inputs.clone(), 0));
    let failed = rt.block_on(async {
        serve_metrics(listener, &mut pipeline, source_type, "none")?;
        pipeline.stop_on(crate::signals::install()?);
        let bar = progress::wanted(args.no_progress);
        run_files(&inputs, &mut pipeline, &mut Output::discard(), bar).await
    })? + problems;
    for log in &mut pipeline.findings {
        log.flush()?;
    }
    // A blocking read of a quiet stdin must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let ids = rule_ids(&pipeline);
    let st = pipeline.stats.lock();
    let mut rows: Vec<(usize, u64, usize)> = st
        .findings
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (i, n, st.distinct[i].len()))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<u8> = Vec::new();
    if args.json {
        let per_rule: BTreeMap<&str, serde_json::Value> = rows
            .iter()
            .map(|&(i, n, d)| (ids[i], serde_json::json!({"findings": n, "distinct": d})))
            .collect();
        let doc = serde_json::json!({
            "records": st.records,
            "bytes": st.bytes_in,
            "findings": st.total_findings(),
            "rules": per_rule,
        });
        let _ = writeln!(out, "{doc}");
    } else if rows.is_empty() {
        let _ = writeln!(
            out,
            "clean: {} records, {} bytes, no findings",
            st.records, st.bytes_in
        );
    } else {
        let _ = writeln!(out, "{:<36} {:>10} {:>10}", "RULE", "FINDINGS", "DISTINCT");
        for &(i, n, d) in &rows {
            let _ = writeln!(out, "{:<36} {n:>10} {d:>10}", ids[i]);
        }
        let _ = writeln!(
            out,
            "{} findings in {} records ({} bytes)",
            st.total_findings(),
            st.records,
            st.bytes_in
        );
    }
    emit(&out)?;
    if args.stats {
        eprint!("{}", st.report(&ids));
    }
    // Stopped by a signal before the end: "clean" would be a claim about what was not read,
    // so a gate must not pass on it.
    let incomplete = pipeline.stop_requested();
    if incomplete {
        crate::notice::warn("scan stopped by a signal before the end of its input: the summary covers only what was read");
    }
    // Inputs that could not be read: "clean" would not be true either. Findings still say 1
    // (a leak is the stronger news), with the error line beside it.
    if let Err(e) = unreadable(failed, inputs.len() + problems) {
        if st.total_findings() == 0 {
            return Err(e);
        }
        eprintln!("logveil: error: {e:#}");
    }
    Ok(if st.total_findings() > 0 {
        ExitCode::from(1)
    } else if incomplete {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `logveil fingerprint`.
pub fn fingerprint(args: FingerprintArgs) -> Result<ExitCode> {
    let (s, ov) = settings(&args.common, None, None)?;
    let keyring = config::keyring(&s.config, ov.key_file.as_deref())?;
    if keyring.is_ephemeral() {
        anyhow::bail!(
            "no key configured: a fingerprint under a random key matches nothing; set LOGVEIL_KEY, --key-file or [[keys]]"
        );
    }
    let mut secrets: Vec<zeroize::Zeroizing<String>> = args
        .secrets
        .into_iter()
        .map(zeroize::Zeroizing::new)
        .collect();
    if secrets.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line =
                line.context("stdin: cannot read (secrets must be UTF-8 text, one per line)")?;
            let line = line.trim_end_matches('\r').to_string();
            if !line.is_empty() {
                secrets.push(zeroize::Zeroizing::new(line));
            }
        }
    }
    let mut out: Vec<u8> = Vec::new();
    for secret in &secrets {
        for key in keyring.keys() {
            let active = if std::ptr::eq(key, keyring.active()) {
                " (active)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{}\t{}\t{}{active}",
                preview(secret),
                key.id(),
                key.fingerprint(secret.as_bytes())
            );
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `logveil rules list|check`.
pub fn rules(args: RulesArgs) -> Result<ExitCode> {
    let common = match &args.command {
        RulesCommand::List(c) | RulesCommand::Check(c) => c,
    };
    let (s, _) = settings(common, None, None)?;
    let mut out: Vec<u8> = Vec::new();
    match args.command {
        RulesCommand::List(_) => {
            for (pack, desc) in &s.rules.packs {
                let _ = writeln!(out, "pack {pack}: {desc}");
                for r in s.rules.rules.iter().filter(|r| &r.pack == pack) {
                    let mut checks: Vec<String> =
                        r.validators.iter().map(|v| v.name().to_string()).collect();
                    if let Some(e) = r.min_entropy {
                        checks.push(format!("entropy>={e}"));
                    }
                    if r.prefilter == Prefilter::DigitRun {
                        checks.push("digit-run".into());
                    }
                    let _ = writeln!(
                        out,
                        "  {:<8} {:<36} {:<28} {}",
                        if r.enabled { "enabled" } else { "disabled" },
                        r.id,
                        if checks.is_empty() {
                            "-".to_string()
                        } else {
                            checks.join(",")
                        },
                        r.description
                    );
                }
            }
            let enabled = s.rules.rules.iter().filter(|r| r.enabled).count();
            let _ = writeln!(
                out,
                "{} rules in {} packs, {enabled} enabled",
                s.rules.rules.len(),
                s.rules.packs.len()
            );
            emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Check(_) => {
            let mut failed = 0;
            let (mut examples, mut negatives) = (0, 0);
            for r in &s.rules.rules {
                examples += r.examples.len();
                negatives += r.negative_examples.len();
                for f in check_rule(r) {
                    failed += 1;
                    let _ = writeln!(out, "FAIL {} ({}): {f}", r.id, r.origin);
                }
            }
            let _ = writeln!(
                out,
                "{} rules, {examples} examples, {negatives} negative examples: {}",
                s.rules.rules.len(),
                if failed == 0 {
                    "all pass".to_string()
                } else {
                    format!("{failed} failures")
                }
            );
            emit(&out)?;
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Writes a command's whole output to stdout and flushes it. A closed pipe (`| head`) is a
/// normal end, as for `run`; any other write error (`> /dev/full`) is an error, so that a
/// command never exits 0 with its output lost.
fn emit(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_result(out.write_all(bytes).and_then(|()| out.flush()), "<stdout>")
}

/// A write result as a command reports it: a closed pipe is a normal end, any other error
/// is `output LABEL: write error: …`.
fn write_result(r: std::io::Result<()>, label: &str) -> Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("output {label}: write error: {e}"))
        }
        _ => Ok(()),
    }
}

/// `logveil corpus`.
pub fn corpus(args: CorpusArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.secret_rate) {
        anyhow::bail!("--secret-rate must be between 0 and 1");
    }
    let cfg = crate::corpus::CorpusConfig {
        size_bytes: args.size_mb * 1024 * 1024,
        seed: args.seed,
        secret_rate: args.secret_rate,
    };
    let labels = match &args.out {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("output {}: cannot create", p.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let mut labels = Vec::new();
            let r = crate::corpus::generate(&cfg, &mut w)
                .map(|l| labels = l)
                .and_then(|()| w.flush());
            write_result(r, &p.display().to_string())?;
            labels
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let mut labels = Vec::new();
            let r = crate::corpus::generate(&cfg, &mut w)
                .map(|l| labels = l)
                .and_then(|()| w.flush());
            write_result(r, "<stdout>")?;
            labels
        }
    };
    if let Some(p) = &args.labels {
        let f = std::fs::File::create(p)
            .with_context(|| format!("labels {}: cannot create", p.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let r = crate::corpus::write_labels(&labels, &mut w).and_then(|()| w.flush());
        write_result(r, &p.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `logveil completions SHELL`: the completion script, generated from the clap definitions.
pub fn completions(a: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "logveil", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// `logveil man`: the man page (roff), generated from the clap definitions, with a section per
/// subcommand.
pub fn man() -> Result<ExitCode> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("rendering the man page")?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("logveil {}", sub.get_name());
        let sub = sub.clone().bin_name(name);
        page.extend_from_slice(format!(".SH \"{}\"\n", sub.get_name().to_uppercase()).as_bytes());
        let mut synopsis = Vec::new();
        clap_mangen::Man::new(sub.clone())
            .render_synopsis_section(&mut synopsis)
            .context("rendering the man page")?;
        let mut about = Vec::new();
        clap_mangen::Man::new(sub.clone())
            .render_description_section(&mut about)
            .context("rendering the man page")?;
        let mut options = Vec::new();
        clap_mangen::Man::new(sub.clone())
            .render_options_section(&mut options)
            .context("rendering the man page")?;
        // Each part renders with its own .SH header: keep their bodies under this one.
        for part in [about, synopsis, options] {
            let text = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
            page.extend_from_slice(text.as_bytes());
        }
    }
    // roff is ASCII: other characters of the help texts (`…`, `—`, `≥`) as `\[uXXXX]`.
    let page: String = String::from_utf8_lossy(&page)
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\[u{:04X}]", c as u32)
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    out.write_all(page.as_bytes())
        .context("writing the man page")?;
    out.flush().context("writing the man page")?;
    Ok(ExitCode::SUCCESS)
}
