//! The subcommands. Each returns the process exit code; errors are reported by `main` as one
//! line on stderr with exit code 2.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;

use crate::cli::{
    CommonArgs, CorpusArgs, FingerprintArgs, RulesArgs, RulesCommand, RunArgs, ScanArgs,
};
use crate::config::{self, Overrides, Settings};
use crate::engine::{Engine, Matcher};
use crate::kafka;
use crate::pipeline::{Flow, Pipeline};
use crate::rules::{check_rule, preview, Prefilter};
use crate::sink::{self, OutputSpec};
use crate::source::{self, InputSpec};

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
        eprintln!(
            "logveil: warning: no key configured ({}, --key-file or [[keys]]); using a random key for this run: fingerprints will not match other runs",
            config::KEY_ENV
        );
    }
    Ok(Engine::new(
        Matcher::new(s.rules.enabled()),
        keyring,
        s.template.clone(),
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn input_specs(args: &[String]) -> Result<Vec<InputSpec>> {
    let specs: Vec<InputSpec> = if args.is_empty() {
        vec![InputSpec::Stdin]
    } else {
        args.iter().map(|a| InputSpec::parse(a)).collect()
    };
    for s in &specs {
        s.check()?;
    }
    Ok(specs)
}

fn rule_ids(p: &Pipeline) -> Vec<&str> {
    p.engine()
        .matcher()
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .collect()
}

/// `logveil run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let (s, ov) = settings(&args.common, args.threads, args.template.clone())?;
    if args.inputs.iter().any(|a| kafka::settings::is_kafka_url(a)) {
        return run_kafka(&args, &s, &ov);
    }
    let kafka_out = kafka_sink(args.output.as_deref(), &s)?;
    let inputs = input_specs(&args.inputs)?;
    let output = match kafka_out {
        Some(_) => OutputSpec::Stdout,
        None => OutputSpec::parse(args.output.as_deref()),
    };
    if kafka_out.is_none() {
        output.check(&inputs)?;
    }
    let engine = build_engine(&s, &ov)?;
    let mut pipeline = Pipeline::new(engine, s.threads, s.config.pipeline.clone());
    let rt = runtime()?;
    let result = rt.block_on(async {
        pipeline.stop_on(crate::signals::install()?);
        let buffer = s.config.pipeline.read_buffer_bytes;
        let mut shared: Option<sink::Writer> = match (&output, &kafka_out) {
            (_, Some(cfg)) => {
                let cfg = cfg.clone();
                let lines =
                    tokio::task::spawn_blocking(move || kafka::lines::KafkaLines::open(&cfg))
                        .await??;
                Some(Box::new(lines))
            }
            (OutputSpec::Stdout, None) => Some(sink::stdout()),
            (OutputSpec::File(p), None) => {
                Some(sink::create_file(p, sink::compression_for_name(p)).await?)
            }
            (OutputSpec::Dir(_), None) => None,
        };
        let mut outcome: Result<Flow> = Ok(Flow::Done);
        for input in &inputs {
            // A stop that came between two inputs: the next one is not opened (nor its
            // output created).
            if pipeline.stop_requested() {
                outcome = Ok(Flow::Stopped);
                break;
            }
            let opened = match source::open(input, buffer, pipeline.stop_signal()).await {
                Ok(o) => o,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            let step = match (&output, shared.as_mut()) {
                (OutputSpec::Dir(dir), _) => {
                    let InputSpec::File(path) = input else {
                        unreachable!("checked: no stdin with -o DIR")
                    };
                    let out_path = sink::path_in_dir(dir, path)?;
                    let mut w = sink::create_file(&out_path, opened.compression).await?;
                    let r = pipeline.process(opened, &input.name(), Some(&mut w)).await;
                    finish(&mut w, r, &out_path.display().to_string()).await
                }
                (_, Some(w)) => pipeline.process(opened, &input.name(), Some(w)).await,
                (_, None) => unreachable!("stdout or file output is open"),
            };
            match step {
                Ok(Flow::Done) => {}
                other => {
                    outcome = other;
                    break;
                }
            }
        }
        if let Some(mut w) = shared {
            let label = match (&output, &args.output) {
                (_, Some(o)) if kafka::settings::is_kafka_url(o) => kafka::settings::redact_url(o),
                (OutputSpec::File(p), _) => p.display().to_string(),
                _ => "<stdout>".into(),
            };
            outcome = finish(&mut w, outcome, &label).await;
        }
        outcome
    });
    if args.stats {
        eprint!("{}", pipeline.stats.report(&rule_ids(&pipeline)));
    }
    // A blocking read of a quiet stdin must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // A closed output (`| head`) is a normal end, like the end of the input.
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The Kafka sink settings when `-o` is a `kafka://` URL.
fn kafka_sink(
    output: Option<&str>,
    s: &Settings,
) -> Result<Option<kafka::settings::KafkaSinkConfig>> {
    match output {
        Some(o) if kafka::settings::is_kafka_url(o) => Ok(Some(kafka::settings::sink_from(
            o,
            s.config.sink.kafka.as_ref(),
        )?)),
        _ => Ok(None),
    }
}

/// `logveil run kafka://...`: one Kafka input (several topics or a regex go in its URL), to a
/// Kafka topic, stdout or a file; runs until SIGTERM/SIGINT.
fn run_kafka(args: &RunArgs, s: &Settings, ov: &Overrides) -> Result<ExitCode> {
    let [input] = args.inputs.as_slice() else {
        anyhow::bail!(
            "a kafka:// input must be the only input (name several topics in its URL: kafka://HOST:PORT/a,b or a regex ^logs-.*)"
        );
    };
    let src = kafka::settings::source_from(input, s.config.source.kafka.as_ref())?;
    let output = args.output.as_deref();
    let sink_cfg = kafka_sink(output, s)?;
    let spec = OutputSpec::parse(output);
    if sink_cfg.is_none() {
        if let OutputSpec::Dir(d) = &spec {
            anyhow::bail!(
                "-o {}: a kafka:// input goes to a kafka:// topic, stdout or a file, not a directory",
                d.display()
            );
        }
    }
    let engine = build_engine(s, ov)?;
    // The same worker pool as files and stdin: `--threads` redaction threads.
    let mut pipeline = Pipeline::new(engine, s.threads, s.config.pipeline.clone());
    let rt = runtime()?;
    let result = rt.block_on(async {
        match sink_cfg {
            Some(cfg) => kafka::run(src, kafka::KafkaOutput::Kafka(cfg), &mut pipeline, None).await,
            None => {
                let mut w = match &spec {
                    OutputSpec::File(p) => {
                        sink::create_file(p, sink::compression_for_name(p)).await?
                    }
                    _ => sink::stdout(),
                };
                let r =
                    kafka::run(src, kafka::KafkaOutput::Writer(&mut w), &mut pipeline, None).await;
                let closed = w.shutdown().await;
                let r = r?;
                closed.context("output")?;
                Ok(r)
            }
        }
    });
    if args.stats {
        eprint!("{}", pipeline.stats.report(&rule_ids(&pipeline)));
        if let Ok(k) = &result {
            eprint!("{k}");
        }
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Shuts an output down (flush, compression trailer) whatever happened before, so that
/// everything already redacted reaches the file; keeps the first error.
async fn finish(w: &mut sink::Writer, outcome: Result<Flow>, label: &str) -> Result<Flow> {
    if outcome.as_ref().ok() == Some(&Flow::OutputClosed) {
        return outcome;
    }
    let closed = match w.shutdown().await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return outcome.map(|_| Flow::OutputClosed)
        }
        Err(e) => Err(anyhow::anyhow!("output {label}: {e}")),
    };
    match (outcome, closed) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(f), Ok(())) => Ok(f),
    }
}

/// `logveil scan`: exit 1 if anything was found, 0 if clean.
pub fn scan(args: ScanArgs) -> Result<ExitCode> {
    let (s, ov) = settings(&args.common, args.threads, None)?;
    let inputs = input_specs(&args.inputs)?;
    let engine = build_engine(&s, &ov)?;
    let mut pipeline = Pipeline::new(engine, s.threads, s.config.pipeline.clone());
    let rt = runtime()?;
    rt.block_on(async {
        pipeline.stop_on(crate::signals::install()?);
        for input in &inputs {
            if pipeline.stop_requested() {
                break;
            }
            let opened = source::open(
                input,
                s.config.pipeline.read_buffer_bytes,
                pipeline.stop_signal(),
            )
            .await?;
            let flow = pipeline
                .process::<sink::Writer>(opened, &input.name(), None)
                .await?;
            if flow == Flow::Stopped {
                break;
            }
        }
        anyhow::Ok(())
    })?;
    // A blocking read of a quiet stdin must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let ids = rule_ids(&pipeline);
    let st = &pipeline.stats;
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
        eprintln!("logveil: scan stopped by a signal before the end of its input: the summary covers only what was read");
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
