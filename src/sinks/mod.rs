//! Sinks: where redacted records go. stdout, a file or a directory ([`file`]), a Kafka
//! topic ([`kafka`]), or nothing (`scan`). Each implements [`crate::pipeline::Sink`]; every
//! source works with every sink. [`Output`] is the one the command line chose.

pub mod file;
pub mod findings;
pub mod kafka;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use bytes::Bytes;

use crate::pipeline::messages::OutMessage;
use crate::pipeline::{Ack, Drain, InputInfo, Sink};
use crate::sources::file::InputSpec;
use file::{DirSink, Discard, FileId, WriterSink};

/// An output as named on the command line (`-o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// Standard output (`-`, or no `-o`).
    Stdout,
    /// One file for every input.
    File(PathBuf),
    /// A directory: one output per input file (and per message stream).
    Dir(PathBuf),
    /// A Kafka topic, by its `kafka://` URL.
    Kafka(String),
}

impl OutputSpec {
    /// `-o` argument: `-` is stdout; a `kafka://` URL a topic; an existing directory, or a
    /// path ending in `/`, is a directory; anything else a file.
    pub fn parse(arg: Option<&str>) -> OutputSpec {
        match arg {
            None | Some("-") => OutputSpec::Stdout,
            Some(a) if crate::kafka::is_kafka_url(a) => OutputSpec::Kafka(a.into()),
            Some(a) if a.ends_with('/') || Path::new(a).is_dir() => OutputSpec::Dir(a.into()),
            Some(a) => OutputSpec::File(a.into()),
        }
    }

    /// Refuses, before anything is written, combinations that would lose data: an output
    /// that is an input (same device and inode: the same path, a hard link, a symlink, or
    /// stdout/stdin redirected to the file), stdin into a directory, and two inputs that
    /// would write the same file in the output directory. (Kafka inputs have no file to
    /// clash with.)
    pub fn check(&self, inputs: &[InputSpec]) -> Result<()> {
        // Maps, not lists: a directory tree may bring a hundred thousand inputs.
        let mut ids: HashMap<FileId, String> = HashMap::new();
        for input in inputs {
            let id = match input.path() {
                Some(p) => FileId::of_path(p),
                None => FileId::of_stdin(),
            };
            if let Some(id) = id {
                ids.entry(id).or_insert_with(|| input.name());
            }
        }
        let clash = |out: Option<FileId>, label: &str| -> Result<()> {
            if let Some(out) = out {
                if let Some(name) = ids.get(&out) {
                    bail!(
                        "output {label} is the same file as input {name} (same inode: a hard link, a symlink or a redirection); writing it would destroy the input"
                    );
                }
            }
            Ok(())
        };
        match self {
            OutputSpec::Kafka(_) => {}
            OutputSpec::Stdout => clash(FileId::of_stdout(), "<stdout>")?,
            OutputSpec::File(o) => clash(FileId::of_path(o), &o.display().to_string())?,
            OutputSpec::Dir(d) => {
                let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
                for input in inputs {
                    let Some(i) = input.path() else {
                        bail!("-o names a directory, so every input must be a file, not stdin")
                    };
                    let out = file::path_in_dir(d, i, input.rel().as_deref())?;
                    if let Some(first) = seen.get(&out) {
                        bail!(
                            "inputs {} and {} would both be written to {}: in an output directory each input keeps its file name (or, found in a directory named as input, its path in that directory), so these must differ (run them separately or rename one)",
                            first.display(),
                            i.display(),
                            out.display()
                        );
                    }
                    clash(FileId::of_path(&out), &out.display().to_string())?;
                    seen.insert(out, i);
                }
            }
        }
        Ok(())
    }
}

/// The sink a command writes to.
pub enum Output {
    /// stdout or one file.
    Writer(WriterSink),
    /// A directory.
    Dir(DirSink),
    /// A Kafka topic.
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaSink),
    /// Nothing (`scan`).
    Discard(Discard),
}

impl Output {
    /// Opens the output `spec` names; a Kafka sink takes its settings from `kafka_base`
    /// (`[sink.kafka]`), overridden by the URL, and checks that the brokers answer and the
    /// topic exists.
    pub async fn open(
        spec: &OutputSpec,
        kafka_base: Option<&kafka::config::KafkaSinkConfig>,
    ) -> Result<Output> {
        Ok(match spec {
            OutputSpec::Stdout => Output::Writer(WriterSink::stdout()),
            OutputSpec::File(p) => Output::Writer(WriterSink::create(p).await?),
            OutputSpec::Dir(d) => Output::Dir(DirSink::new(d.clone())),
            OutputSpec::Kafka(url) => {
                let cfg = kafka::config::sink_from(url, kafka_base)?;
                open_kafka(cfg).await?
            }
        })
    }

    /// No output (`scan`).
    pub fn discard() -> Output {
        Output::Discard(Discard)
    }
}

#[cfg(feature = "kafka")]
async fn open_kafka(cfg: kafka::config::KafkaSinkConfig) -> Result<Output> {
    let sink = tokio::task::spawn_blocking(move || kafka::KafkaSink::open(cfg)).await??;
    Ok(Output::Kafka(sink))
}

#[cfg(not(feature = "kafka"))]
async fn open_kafka(_: kafka::config::KafkaSinkConfig) -> Result<Output> {
    bail!("{}", crate::kafka::NOT_BUILT)
}

/// Calls the method of whichever sink this is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Output::Writer($s) => $e,
            Output::Dir($s) => $e,
            #[cfg(feature = "kafka")]
            Output::Kafka($s) => $e,
            Output::Discard($s) => $e,
        }
    };
}

impl Sink for Output {
    async fn begin(&mut self, input: &InputInfo) -> Result<bool> {
        each!(self, s => s.begin(input).await)
    }
    async fn write_lines(&mut self, chunks: &[Bytes]) -> Result<bool> {
        each!(self, s => s.write_lines(chunks).await)
    }
    async fn write_message(&mut self, message: OutMessage, ack: Ack) -> Result<bool> {
        each!(self, s => s.write_message(message, ack).await)
    }
    async fn withhold(&mut self, reason: &str, ack: Ack) -> Result<()> {
        each!(self, s => s.withhold(reason, ack).await)
    }
    async fn flush(&mut self) -> Result<bool> {
        each!(self, s => s.flush().await)
    }
    async fn end(&mut self) -> Result<bool> {
        each!(self, s => s.end().await)
    }
    async fn close(&mut self) -> Result<()> {
        each!(self, s => s.close().await)
    }
    fn emits(&self) -> bool {
        each!(self, s => s.emits())
    }
    fn drain(&self) -> Option<Drain> {
        each!(self, s => s.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_kinds() {
        assert_eq!(OutputSpec::parse(None), OutputSpec::Stdout);
        assert_eq!(OutputSpec::parse(Some("-")), OutputSpec::Stdout);
        assert_eq!(
            OutputSpec::parse(Some("out/")),
            OutputSpec::Dir("out/".into())
        );
        let d = tempfile::tempdir().unwrap();
        let ds = d.path().to_str().unwrap();
        assert_eq!(OutputSpec::parse(Some(ds)), OutputSpec::Dir(ds.into()));
        assert_eq!(
            OutputSpec::parse(Some("x.log")),
            OutputSpec::File("x.log".into())
        );
    }

    #[test]
    fn refuses_output_that_overwrites_input() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.log");
        std::fs::write(&f, "x").unwrap();
        let inputs = [InputSpec::File(f.clone())];
        assert!(OutputSpec::File(f.clone()).check(&inputs).is_err());
        assert!(OutputSpec::Dir(d.path().into()).check(&inputs).is_err());
        assert!(OutputSpec::Dir(d.path().join("out")).check(&inputs).is_ok());
        assert!(OutputSpec::Dir("o".into())
            .check(&[InputSpec::Stdin])
            .is_err());
        // A hard link and a symlink to the input are the input.
        let hard = d.path().join("hard.log");
        std::fs::hard_link(&f, &hard).unwrap();
        let e = OutputSpec::File(hard.clone()).check(&inputs).unwrap_err();
        assert!(format!("{e}").contains("same file as input"), "{e}");
        let soft = d.path().join("soft.log");
        std::os::unix::fs::symlink(&f, &soft).unwrap();
        assert!(OutputSpec::File(soft).check(&inputs).is_err());
        // In an output directory: a hard link of an input under the input's name.
        let out = d.path().join("o2");
        std::fs::create_dir(&out).unwrap();
        std::fs::hard_link(&f, out.join("a.log")).unwrap();
        assert!(OutputSpec::Dir(out.clone()).check(&inputs).is_err());
        // Two inputs with one name.
        let sub = d.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a.log"), "y").unwrap();
        let two = [
            InputSpec::File(f.clone()),
            InputSpec::File(sub.join("a.log")),
        ];
        let e = OutputSpec::Dir(d.path().join("o3"))
            .check(&two)
            .unwrap_err();
        assert!(format!("{e}").contains("would both be written"), "{e}");
        // A new file is fine.
        assert!(OutputSpec::File(d.path().join("new.log"))
            .check(&inputs)
            .is_ok());
    }
}
