//! Inputs: stdin and files, plain, gzip or zstd, recognised by their magic bytes (not by the
//! file name).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::pipe_reader::PipeReader;
use crate::signals::StopSignal;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// An input as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    Stdin,
    File(PathBuf),
}

impl InputSpec {
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
            InputSpec::File(p) => p.display().to_string(),
        }
    }

    /// Fails early (before any output) when a file does not exist or is not a file.
    pub fn check(&self) -> Result<()> {
        if let InputSpec::File(p) = self {
            let meta = std::fs::metadata(p)
                .with_context(|| format!("input {}: cannot open", p.display()))?;
            if meta.is_dir() {
                bail!("input {}: is a directory", p.display());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// True while `head` could still grow into a magic number.
    fn undecided(head: &[u8]) -> bool {
        Compression::detect(head) == Compression::None
            && (GZIP_MAGIC.starts_with(head) || ZSTD_MAGIC.starts_with(head))
    }
}

/// An opened input: a decompressed byte stream.
pub struct Opened {
    pub compression: Compression,
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// After a stop signal the stream itself ends at the next newline (a plain pipe, FIFO or
    /// terminal read by [`PipeReader`]): the pipeline reads on to its end. Otherwise (regular
    /// files, where stopping early takes nothing away, and compressed streams) the pipeline
    /// stops at the next record boundary itself.
    pub ends_on_stop: bool,
}

/// Opens an input and wraps it in the decompressor its first bytes call for. Regular files
/// are read by tokio; pipes, FIFOs and terminals (stdin, mostly) by a [`PipeReader`] that
/// never takes bytes out of the pipe that a stop signal would then lose.
pub async fn open(spec: &InputSpec, buffer: usize, stop: Option<StopSignal>) -> Result<Opened> {
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
                return sniff(raw, buffer, &name).await;
            }
            PipeReader::spawn(move || Ok(file), name.clone(), stop.clone())
        }
        InputSpec::File(p) => {
            // `stat` does not wait for a FIFO's writer; `open` would.
            let meta = std::fs::metadata(p)
                .with_context(|| format!("input {}: cannot open", p.display()))?;
            if meta.file_type().is_file() {
                let file = tokio::fs::File::open(p)
                    .await
                    .with_context(|| format!("input {}: cannot open", p.display()))?;
                let raw: Box<dyn AsyncRead + Send + Unpin> = Box::new(file);
                return sniff(raw, buffer, &name).await;
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
        opened = sniff(Box::new(reader), buffer, &name) => opened?,
        _ = crate::signals::stopped(&mut waiting) => Opened {
            compression: Compression::None,
            reader: Box::new(tokio::io::empty()),
            ends_on_stop: false,
        },
    };
    let plain = opened.compression == Compression::None;
    split.store(plain, std::sync::atomic::Ordering::Release);
    opened.ends_on_stop = plain;
    Ok(opened)
}

/// Reads just enough to tell the format (stopping as soon as the bytes cannot be a magic
/// number, so a slow pipe is not held up), then chains those bytes back in front.
async fn sniff(
    mut raw: Box<dyn AsyncRead + Send + Unpin>,
    buffer: usize,
    name: &str,
) -> Result<Opened> {
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
    Ok(Opened {
        compression,
        reader,
        ends_on_stop: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_magic_bytes() {
        assert_eq!(Compression::detect(b"\x1f\x8b\x08\x00"), Compression::Gzip);
        assert_eq!(Compression::detect(b"\x28\xb5\x2f\xfd"), Compression::Zstd);
        assert_eq!(Compression::detect(b"2026"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
        assert!(Compression::undecided(b""));
        assert!(Compression::undecided(b"\x1f"));
        assert!(!Compression::undecided(b"\x1f\x8b"));
        assert!(Compression::undecided(b"\x28\xb5"));
        assert!(!Compression::undecided(b"a"));
        assert!(!Compression::undecided(b"\x28x"));
    }

    #[tokio::test]
    async fn sniffing_keeps_every_byte() {
        for input in [&b""[..], b"a", b"\x1fxyz plain", b"hello world\n"] {
            let raw: Box<dyn AsyncRead + Send + Unpin> = Box::new(input);
            let mut o = sniff(raw, 4096, "t").await.unwrap();
            let mut out = Vec::new();
            o.reader.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, input);
            assert_eq!(o.compression, Compression::None);
        }
    }
}
