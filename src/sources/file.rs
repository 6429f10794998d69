//! The file source: files and stdin, plain, gzip or zstd, recognised by their magic bytes
//! (not by the file name). Regular files are read by tokio; pipes, FIFOs and terminals
//! (stdin, mostly) by a [`PipeReader`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::pipe::PipeReader;
use crate::compression::Compression;
use crate::pipeline::{Input, InputInfo};
use crate::signals::StopSignal;

/// An input as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// Standard input (`-`, or no input named).
    Stdin,
    /// A file (or a FIFO) by path.
    File(PathBuf),
    /// A file found under a directory or by a glob ([`super::tree`]): its path, and its
    /// path relative to the directory named, where a mirrored output directory puts it.
    /// A tree input that cannot be read is reported and the run goes on with the next.
    Tree {
        /// The path to read.
        path: PathBuf,
        /// Relative to the directory (or the glob's literal prefix).
        rel: PathBuf,
    },
}

impl InputSpec {
    /// An input argument: `-` is stdin, anything else a path.
    pub fn parse(arg: &str) -> InputSpec {
        if arg == "-" {
            InputSpec::Stdin
        } else {
            InputSpec::File(PathBuf::from(arg))
        }
    }

    /// Name used in messages.
    pub fn name(&self) -> String {
        match self {
            InputSpec::Stdin => "<stdin>".into(),
            InputSpec::File(p) | InputSpec::Tree { path: p, .. } => p.display().to_string(),
        }
    }

    /// The path of a file input.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InputSpec::Stdin => None,
            InputSpec::File(p) | InputSpec::Tree { path: p, .. } => Some(p),
        }
    }

    /// Where the input goes in an output directory: its file name, or for a tree input
    /// its path relative to the tree.
    pub fn rel(&self) -> Option<PathBuf> {
        match self {
            InputSpec::Stdin => None,
            InputSpec::File(p) => p.file_name().map(PathBuf::from),
            InputSpec::Tree { rel, .. } => Some(rel.clone()),
        }
    }

    /// What a sink is told of this input once opened.
    pub fn info(&self, compression: Compression) -> InputInfo {
        InputInfo {
            name: self.name(),
            path: self.path().map(Path::to_path_buf),
            rel: self.rel(),
            compression,
        }
    }

    /// Fails early (before any output) when a file does not exist or is not a file.
    pub fn check(&self) -> Result<()> {
        if let Some(p) = self.path() {
            let meta = std::fs::metadata(p)
                .with_context(|| format!("input {}: cannot open", p.display()))?;
            if meta.is_dir() {
                bail!("input {}: is a directory", p.display());
            }
        }
        Ok(())
    }
}

/// Opens an input and wraps it in the decompressor its first bytes call for. Regular files
/// are read by tokio; pipes, FIFOs and terminals (stdin, mostly) by a [`PipeReader`] that
/// never takes bytes out of the pipe that a stop signal would then lose.
/// `read` counts the bytes read from a regular file, as they are on disk (for the progress
/// bar).
pub async fn open(
    spec: &InputSpec,
    buffer: usize,
    stop: Option<StopSignal>,
    read: Option<Arc<AtomicU64>>,
) -> Result<Input> {
    let name = spec.name();
    let (reader, split) = match spec {
        InputSpec::Stdin => {
            use std::os::fd::AsFd;
            let file = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map(std::fs::File::from)
                .with_context(|| format!("input {name}: cannot open"))?;
            if file.metadata().is_ok_and(|m| m.file_type().is_file()) {
                let raw: Box<dyn AsyncRead + Send + Unpin> =
                    Box::new(tokio::fs::File::from_std(file));
                return sniff(raw, buffer, spec).await;
            }
            PipeReader::spawn(move || Ok(file), name.clone(), stop.clone())
        }
        InputSpec::File(p) | InputSpec::Tree { path: p, .. } => {
            // `stat` does not wait for a FIFO's writer; `open` would.
            let meta = std::fs::metadata(p)
                .with_context(|| format!("input {}: cannot open", p.display()))?;
            if meta.file_type().is_file() {
                let file = tokio::fs::File::open(p)
                    .await
                    .with_context(|| format!("input {}: cannot open", p.display()))?;
                let raw: Box<dyn AsyncRead + Send + Unpin> = match read {
                    Some(read) => Box::new(Counted { inner: file, read }),
                    None => Box::new(file),
                };
                return sniff(raw, buffer, spec).await;
            }
            let path = p.clone();
            PipeReader::spawn(
                move || std::fs::File::open(path),
                name.clone(),
                stop.clone(),
            )
        }
    };
    // Opening a FIFO waits for its writer, and the first bytes may be long in coming: a stop
    // signal meanwhile ends the input empty (nothing has been read, so nothing is lost).
    let mut waiting = stop;
    let mut opened = tokio::select! {
        biased;
        opened = sniff(Box::new(reader), buffer, spec) => opened?,
        _ = crate::signals::stopped(&mut waiting) => Input {
            info: spec.info(Compression::None),
            reader: Box::new(tokio::io::empty()),
            ends_on_stop: false,
        },
    };
    let plain = opened.info.compression == Compression::None;
    split.store(plain, std::sync::atomic::Ordering::Release);
    opened.ends_on_stop = plain;
    Ok(opened)
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

/// Reads just enough to tell the format (stopping as soon as the bytes cannot be a magic
/// number, so a slow pipe is not held up), then chains those bytes back in front.
async fn sniff(
    mut raw: Box<dyn AsyncRead + Send + Unpin>,
    buffer: usize,
    spec: &InputSpec,
) -> Result<Input> {
    let name = spec.name();
    let mut head = Vec::with_capacity(4);
    while Compression::undecided(&head) {
        let mut b = [0u8; 4];
        let want = 4 - head.len();
        let n = raw
            .read(&mut b[..want])
            .await
            .with_context(|| format!("input {name}: read error"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&b[..n]);
    }
    let compression = Compression::detect(&head);
    let stream = std::io::Cursor::new(head).chain(raw);
    let reader: Box<dyn AsyncRead + Send + Unpin> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => {
            let mut d = GzipDecoder::new(BufReader::with_capacity(buffer, stream));
            d.multiple_members(true);
            Box::new(d)
        }
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(BufReader::with_capacity(buffer, stream));
            d.multiple_members(true);
            Box::new(d)
        }
    };
    Ok(Input {
        info: spec.info(compression),
        reader,
        ends_on_stop: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sniffing_keeps_every_byte() {
        for input in [&b""[..], b"a", b"\x1fxyz plain", b"hello world\n"] {
            let raw: Box<dyn AsyncRead + Send + Unpin> = Box::new(input);
            let mut o = sniff(raw, 4096, &InputSpec::Stdin).await.unwrap();
            let mut out = Vec::new();
            o.reader.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, input);
            assert_eq!(o.info.compression, Compression::None);
        }
    }
}
