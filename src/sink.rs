//! Outputs: stdout, a file, or a directory where each input gets an output of the same name
//! (and the same compression).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use tokio::io::{AsyncWrite, BufWriter};

use crate::source::{Compression, InputSpec};

/// Size of the write buffer in front of every output.
pub const WRITE_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Stdout,
    File(PathBuf),
    Dir(PathBuf),
}

impl OutputSpec {
    /// `-o` argument: `-` is stdout; an existing directory, or a path ending in `/`, is a
    /// directory; anything else a file.
    pub fn parse(arg: Option<&str>) -> OutputSpec {
        match arg {
            None | Some("-") => OutputSpec::Stdout,
            Some(a) if a.ends_with('/') || Path::new(a).is_dir() => OutputSpec::Dir(a.into()),
            Some(a) => OutputSpec::File(a.into()),
        }
    }

    /// Refuses combinations that would lose data: an output that is also an input, stdin
    /// into a directory.
    pub fn check(&self, inputs: &[InputSpec]) -> Result<()> {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        };
        for input in inputs {
            match (self, input) {
                (OutputSpec::Dir(_), InputSpec::Stdin) => {
                    bail!("-o names a directory, so every input must be a file, not stdin")
                }
                (OutputSpec::File(o), InputSpec::File(i)) if same(o, i) => {
                    bail!("output {} is also an input", o.display())
                }
                (OutputSpec::Dir(d), InputSpec::File(i)) => {
                    if let Some(parent) = i.parent() {
                        let parent = if parent.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            parent
                        };
                        if same(d, parent) {
                            bail!(
                                "output directory {} holds input {}: the output would overwrite it",
                                d.display(),
                                i.display()
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Compression of an output file chosen by its name (`.gz`, `.zst`).
pub fn compression_for_name(path: &Path) -> Compression {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Compression::Gzip,
        Some("zst") | Some("zstd") => Compression::Zstd,
        _ => Compression::None,
    }
}

pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

pub fn stdout() -> Writer {
    Box::new(BufWriter::with_capacity(WRITE_BUFFER, tokio::io::stdout()))
}

/// Creates (truncates) an output file, compressed as asked.
pub async fn create_file(path: &Path, compression: Compression) -> Result<Writer> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("output {}: cannot create directory", path.display()))?;
        }
    }
    let file = tokio::fs::File::create(path)
        .await
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

/// Output path in a directory for an input file: same file name.
pub fn path_in_dir(dir: &Path, input: &Path) -> Result<PathBuf> {
    let name = input
        .file_name()
        .with_context(|| format!("input {} has no file name", input.display()))?;
    Ok(dir.join(name))
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
        assert_eq!(
            compression_for_name(Path::new("a.log.gz")),
            Compression::Gzip
        );
        assert_eq!(compression_for_name(Path::new("a.zst")), Compression::Zstd);
        assert_eq!(compression_for_name(Path::new("a.log")), Compression::None);
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
    }
}
