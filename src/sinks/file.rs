//! The file sinks: stdout or one file ([`WriterSink`]), and a directory ([`DirSink`]) where
//! each input file gets an output of the same name (and the same compression) and each
//! message stream (a Kafka partition) a file `TOPIC-PARTITION.log` that grows across runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use crate::compression::Compression;
use crate::pipeline::messages::OutMessage;
use crate::pipeline::{Ack, InputInfo, Sink};

/// Size of the write buffer in front of every output.
pub const WRITE_BUFFER: usize = 1 << 20;

/// A file's identity: device and inode. Two paths (or descriptors) with the same identity
/// are the same file, whatever their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of_meta(m: &std::fs::Metadata) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        // Pipes, terminals and /dev/null are not files that writing could destroy.
        m.file_type().is_file().then(|| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    #[cfg(not(unix))]
    fn of_meta(_: &std::fs::Metadata) -> Option<FileId> {
        None
    }

    /// The file a path names (following symlinks), if it exists.
    pub(crate) fn of_path(p: &Path) -> Option<FileId> {
        std::fs::metadata(p).ok().and_then(|m| FileId::of_meta(&m))
    }

    #[cfg(unix)]
    fn of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Option<FileId> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        FileId::of_meta(&file.metadata().ok()?)
    }

    #[cfg(unix)]
    pub(crate) fn of_stdin() -> Option<FileId> {
        use std::os::fd::AsFd;
        FileId::of_fd(std::io::stdin().as_fd())
    }

    #[cfg(unix)]
    pub(crate) fn of_stdout() -> Option<FileId> {
        use std::os::fd::AsFd;
        FileId::of_fd(std::io::stdout().as_fd())
    }

    #[cfg(not(unix))]
    pub(crate) fn of_stdin() -> Option<FileId> {
        None
    }

    #[cfg(not(unix))]
    pub(crate) fn of_stdout() -> Option<FileId> {
        None
    }
}

/// A buffered (and maybe compressing) output stream.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Standard output, buffered.
pub fn stdout() -> Writer {
    Box::new(BufWriter::with_capacity(WRITE_BUFFER, tokio::io::stdout()))
}

/// Creates (truncates) an output file, compressed as asked.
pub async fn create_file(path: &Path, compression: Compression) -> Result<Writer> {
    open_file(path, compression, false).await
}

/// Opens an output file, truncating it or (`append`) adding to its end.
async fn open_file(path: &Path, compression: Compression, append: bool) -> Result<Writer> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("output {}: cannot create directory", path.display()))?;
        }
    }
    let file = if append {
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
    } else {
        tokio::fs::File::create(path).await
    }
    .with_context(|| format!("output {}: cannot create", path.display()))?;
    let inner = BufWriter::with_capacity(WRITE_BUFFER, file);
    Ok(match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(BufWriter::with_capacity(
            WRITE_BUFFER,
            GzipEncoder::new(inner),
        )),
        Compression::Zstd => Box::new(BufWriter::with_capacity(
            WRITE_BUFFER,
            ZstdEncoder::new(inner),
        )),
    })
}

/// Output path in a directory for an input file: the same file name, or for an input found
/// in a directory tree the same path relative to the tree (never outside `dir`: a relative
/// path with `..` or a root is refused).
pub fn path_in_dir(dir: &Path, input: &Path, rel: Option<&Path>) -> Result<PathBuf> {
    let rel = match rel {
        Some(r) => r,
        None => Path::new(
            input
                .file_name()
                .with_context(|| format!("input {} has no file name", input.display()))?,
        ),
    };
    if rel.as_os_str().is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        bail!(
            "input {}: its place in the output directory ({}) would leave the directory",
            input.display(),
            rel.display()
        );
    }
    Ok(dir.join(rel))
}

/// A write result as the pipeline sees it: `Ok(false)` when the output was closed by its
/// reader (a broken pipe: a normal end), `output LABEL: write error: …` otherwise.
fn written(r: std::io::Result<()>, label: &str) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::anyhow!("output {label}: write error: {e}")),
    }
}

/// Writes every chunk to `w`.
async fn write_all(w: &mut Writer, chunks: &[Bytes], label: &str) -> Result<bool> {
    for c in chunks {
        if !written(w.write_all(c).await, label)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes a message value as one line (a newline added where it has none).
async fn write_value(w: &mut Writer, m: &OutMessage, label: &str) -> Result<bool> {
    if !written(w.write_all(&m.value).await, label)? {
        return Ok(false);
    }
    if !m.value.ends_with(b"\n") {
        return written(w.write_all(b"\n").await, label);
    }
    Ok(true)
}

/// Shuts an output down (flush, compression trailer); a closed pipe is a normal end.
async fn shut(w: &mut Writer, label: &str) -> Result<bool> {
    match w.shutdown().await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::anyhow!("output {label}: {e}")),
    }
}

/// A message that cannot be redacted, at a sink without a dead-letter destination: the run
/// stops before it.
fn refuse(reason: &str, ack: &Ack) -> anyhow::Error {
    anyhow::anyhow!(
        "the record at {} cannot be redacted ({reason}); stopping before it (its offset is not \
         committed). Set [sink.kafka] on_unredactable = \"dead-letter\" and dead_letter_topic \
         to divert such records",
        ack.origin()
    )
}

/// Every input into one output: stdout or a file. Messages are written one per line and
/// acknowledged once a flush has pushed them out.
pub struct WriterSink {
    w: Writer,
    label: String,
    unflushed: Vec<Ack>,
}

impl WriterSink {
    /// Standard output.
    pub fn stdout() -> WriterSink {
        WriterSink::new(stdout(), "<stdout>".into())
    }

    /// A file, created (truncated) and compressed as its name says (`.gz`, `.zst`).
    pub async fn create(path: &Path) -> Result<WriterSink> {
        let w = create_file(path, Compression::for_name(path)).await?;
        Ok(WriterSink::new(w, path.display().to_string()))
    }

    /// Any writer, named `label` in messages.
    pub fn new(w: Writer, label: String) -> WriterSink {
        WriterSink {
            w,
            label,
            unflushed: Vec::new(),
        }
    }
}

impl Sink for WriterSink {
    async fn begin(&mut self, _: &InputInfo) -> Result<bool> {
        Ok(true)
    }

    async fn write_lines(&mut self, chunks: &[Bytes]) -> Result<bool> {
        write_all(&mut self.w, chunks, &self.label).await
    }

    async fn write_message(&mut self, m: OutMessage, ack: Ack) -> Result<bool> {
        let open = write_value(&mut self.w, &m, &self.label).await?;
        self.unflushed.push(ack);
        Ok(open)
    }

    async fn withhold(&mut self, reason: &str, ack: Ack) -> Result<()> {
        Err(refuse(reason, &ack))
    }

    async fn flush(&mut self) -> Result<bool> {
        if !written(self.w.flush().await, &self.label)? {
            return Ok(false);
        }
        for ack in self.unflushed.drain(..) {
            ack.delivered();
        }
        Ok(true)
    }

    async fn end(&mut self) -> Result<bool> {
        Ok(true)
    }

    async fn close(&mut self) -> Result<()> {
        shut(&mut self.w, &self.label).await?;
        for ack in self.unflushed.drain(..) {
            ack.delivered();
        }
        Ok(())
    }
}

/// A directory: each input file goes to `DIR/NAME` (its own name and compression); each
/// message stream (a Kafka partition) to `DIR/TOPIC-PARTITION.log`, appended to, so that a
/// restart (which re-reads from the last commit) adds to it and loses nothing. Messages are
/// acknowledged once flushed.
pub struct DirSink {
    dir: PathBuf,
    current: Option<(Writer, String)>,
    streams: HashMap<(String, i32), (Writer, String)>,
    unflushed: Vec<Ack>,
}

impl DirSink {
    /// Outputs in `dir` (created when missing).
    pub fn new(dir: PathBuf) -> DirSink {
        DirSink {
            dir,
            current: None,
            streams: HashMap::new(),
            unflushed: Vec::new(),
        }
    }

    /// The file of a message stream: its topic name with any character that cannot be in
    /// a file name replaced, and its partition.
    fn stream_path(&self, topic: &str, partition: i32) -> PathBuf {
        let safe: String = topic
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}-{partition}.log"))
    }
}

impl Sink for DirSink {
    async fn begin(&mut self, input: &InputInfo) -> Result<bool> {
        let Some(path) = &input.path else {
            bail!("-o names a directory, so every input must be a file, not stdin")
        };
        let out = path_in_dir(&self.dir, path, input.rel.as_deref())?;
        let w = create_file(&out, input.compression).await?;
        self.current = Some((w, out.display().to_string()));
        Ok(true)
    }

    async fn write_lines(&mut self, chunks: &[Bytes]) -> Result<bool> {
        let (w, label) = self.current.as_mut().context("no input open")?;
        write_all(w, chunks, label).await
    }

    async fn write_message(&mut self, m: OutMessage, ack: Ack) -> Result<bool> {
        let key = (m.origin.topic.clone(), m.origin.partition);
        if !self.streams.contains_key(&key) {
            let path = self.stream_path(&key.0, key.1);
            let w = open_file(&path, Compression::None, true).await?;
            self.streams
                .insert(key.clone(), (w, path.display().to_string()));
        }
        let (w, label) = self.streams.get_mut(&key).expect("opened above");
        let open = write_value(w, &m, label).await?;
        self.unflushed.push(ack);
        Ok(open)
    }

    async fn withhold(&mut self, reason: &str, ack: Ack) -> Result<()> {
        Err(refuse(reason, &ack))
    }

    async fn flush(&mut self) -> Result<bool> {
        if let Some((w, label)) = self.current.as_mut() {
            if !written(w.flush().await, label)? {
                return Ok(false);
            }
        }
        for (w, label) in self.streams.values_mut() {
            if !written(w.flush().await, label)? {
                return Ok(false);
            }
        }
        for ack in self.unflushed.drain(..) {
            ack.delivered();
        }
        Ok(true)
    }

    async fn end(&mut self) -> Result<bool> {
        match self.current.take() {
            Some((mut w, label)) => shut(&mut w, &label).await,
            None => Ok(true),
        }
    }

    async fn close(&mut self) -> Result<()> {
        self.end().await?;
        for (_, (mut w, label)) in self.streams.drain() {
            shut(&mut w, &label).await?;
        }
        for ack in self.unflushed.drain(..) {
            ack.delivered();
        }
        Ok(())
    }
}

/// No output (`scan`): the engine only counts.
pub struct Discard;

impl Sink for Discard {
    async fn begin(&mut self, _: &InputInfo) -> Result<bool> {
        Ok(true)
    }
    async fn write_lines(&mut self, _: &[Bytes]) -> Result<bool> {
        Ok(true)
    }
    async fn write_message(&mut self, _: OutMessage, ack: Ack) -> Result<bool> {
        ack.delivered();
        Ok(true)
    }
    async fn withhold(&mut self, _: &str, ack: Ack) -> Result<()> {
        ack.delivered();
        Ok(())
    }
    async fn flush(&mut self) -> Result<bool> {
        Ok(true)
    }
    async fn end(&mut self) -> Result<bool> {
        Ok(true)
    }
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
    fn emits(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::pipeline::{Acker, Origin};

    /// Records the offsets acknowledged.
    #[derive(Default)]
    struct Acks(Mutex<Vec<i64>>);

    impl Acker for Acks {
        fn delivered(&self, o: &Origin) {
            self.0.lock().unwrap().push(o.offset);
        }
        fn failed(&self, o: &Origin, _: &str) {
            panic!("record at {o} failed");
        }
    }

    fn message(topic: &str, partition: i32, offset: i64, value: &str) -> (OutMessage, Origin) {
        let origin = Origin {
            topic: topic.into(),
            partition,
            offset,
            ts_ms: None,
        };
        let m = OutMessage {
            origin: origin.clone(),
            value: Bytes::copy_from_slice(value.as_bytes()),
            tombstone: false,
            key: None,
            headers: Vec::new(),
            withheld: None,
        };
        (m, origin)
    }

    #[tokio::test]
    async fn a_writer_acknowledges_messages_only_once_flushed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("out.log");
        let acks = Arc::new(Acks::default());
        let to: Arc<dyn Acker> = acks.clone();
        let mut sink = WriterSink::create(&path).await.unwrap();
        for (i, v) in ["a=1", "b=2\n"].iter().enumerate() {
            let (m, o) = message("t", 0, i as i64, v);
            assert!(sink
                .write_message(m, Ack::new(o, to.clone()))
                .await
                .unwrap());
        }
        assert!(
            acks.0.lock().unwrap().is_empty(),
            "acknowledged before a flush"
        );
        assert!(sink.flush().await.unwrap());
        assert_eq!(*acks.0.lock().unwrap(), vec![0, 1]);
        sink.close().await.unwrap();
        // One line per message: a newline added where the value has none.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a=1\nb=2\n");
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_redacted_stops_a_file_sink_unacknowledged() {
        let d = tempfile::tempdir().unwrap();
        let acks = Arc::new(Acks::default());
        let (_, o) = message("t", 1, 7, "");
        let mut sink = DirSink::new(d.path().to_path_buf());
        let e = sink
            .withhold("oversized", Ack::new(o, acks.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t/1 offset 7") && e.contains("cannot be redacted"),
            "{e}"
        );
        sink.flush().await.unwrap();
        assert!(acks.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_directory_mirrors_inputs_and_appends_one_file_per_partition() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let acks = Arc::new(Acks::default());
        let to: Arc<dyn Acker> = acks.clone();
        // An input file keeps its name and its compression.
        let mut sink = DirSink::new(out.clone());
        let info = InputInfo {
            name: "in/app.log.gz".into(),
            path: Some("in/app.log.gz".into()),
            rel: None,
            compression: Compression::Gzip,
        };
        assert!(sink.begin(&info).await.unwrap());
        let lines = [Bytes::from_static(b"one\n"), Bytes::from_static(b"two\n")];
        assert!(sink.write_lines(&lines).await.unwrap());
        assert!(sink.end().await.unwrap());
        let gz = std::fs::read(out.join("app.log.gz")).unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
        // Messages: one file per topic and partition, names made safe, appended to.
        for round in 0..2 {
            let mut sink = DirSink::new(out.clone());
            for (p, off) in [(0, 10), (3, 11), (0, 12)] {
                let (m, o) = message("app/logs", p, off + round * 10, &format!("r{round} {off}"));
                assert!(sink
                    .write_message(m, Ack::new(o, to.clone()))
                    .await
                    .unwrap());
            }
            assert!(sink.flush().await.unwrap());
            sink.close().await.unwrap();
        }
        assert_eq!(*acks.0.lock().unwrap(), vec![10, 11, 12, 20, 21, 22]);
        assert_eq!(
            std::fs::read_to_string(out.join("app_logs-0.log")).unwrap(),
            "r0 10\nr0 12\nr1 10\nr1 12\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("app_logs-3.log")).unwrap(),
            "r0 11\nr1 11\n"
        );
        // stdin cannot be mirrored.
        let stdin = InputInfo {
            name: "<stdin>".into(),
            path: None,
            rel: None,
            compression: Compression::None,
        };
        assert!(DirSink::new(out).begin(&stdin).await.is_err());
    }
}
