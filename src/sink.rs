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

    /// Refuses, before anything is written, combinations that would lose data: an output
    /// that is an input (same device and inode: the same path, a hard link, a symlink, or
    /// stdout/stdin redirected to the file), stdin into a directory, and two inputs that
    /// would write the same file in the output directory.
    pub fn check(&self, inputs: &[InputSpec]) -> Result<()> {
        let mut ids: Vec<(FileId, String)> = Vec::new();
        for input in inputs {
            let id = match input {
                InputSpec::File(p) => FileId::of_path(p),
                InputSpec::Stdin => FileId::of_stdin(),
            };
            if let Some(id) = id {
                ids.push((id, input.name()));
            }
        }
        let clash = |out: Option<FileId>, label: &str| -> Result<()> {
            if let Some(out) = out {
                if let Some((_, name)) = ids.iter().find(|(id, _)| *id == out) {
                    bail!(
                        "output {label} is the same file as input {name} (same inode: a hard link, a symlink or a redirection); writing it would destroy the input"
                    );
                }
            }
            Ok(())
        };
        match self {
            OutputSpec::Stdout => clash(FileId::of_stdout(), "<stdout>")?,
            OutputSpec::File(o) => clash(FileId::of_path(o), &o.display().to_string())?,
            OutputSpec::Dir(d) => {
                let mut seen: Vec<(PathBuf, &Path)> = Vec::new();
                for input in inputs {
                    let InputSpec::File(i) = input else {
                        bail!("-o names a directory, so every input must be a file, not stdin")
                    };
                    let out = path_in_dir(d, i)?;
                    if let Some((_, first)) = seen.iter().find(|(o, _)| *o == out) {
                        bail!(
                            "inputs {} and {} would both be written to {}: in an output directory each input keeps its file name, so the names must differ (run them separately or rename one)",
                            first.display(),
                            i.display(),
                            out.display()
                        );
                    }
                    clash(FileId::of_path(&out), &out.display().to_string())?;
                    seen.push((out, i));
                }
            }
        }
        Ok(())
    }
}

/// A file's identity: device and inode. Two paths (or descriptors) with the same identity
/// are the same file, whatever their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
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
    fn of_path(p: &Path) -> Option<FileId> {
        std::fs::metadata(p).ok().and_then(|m| FileId::of_meta(&m))
    }

    #[cfg(unix)]
    fn of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Option<FileId> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        FileId::of_meta(&file.metadata().ok()?)
    }

    #[cfg(unix)]
    fn of_stdin() -> Option<FileId> {
        use std::os::fd::AsFd;
        FileId::of_fd(std::io::stdin().as_fd())
    }

    #[cfg(unix)]
    fn of_stdout() -> Option<FileId> {
        use std::os::fd::AsFd;
        FileId::of_fd(std::io::stdout().as_fd())
    }

    #[cfg(not(unix))]
    fn of_stdin() -> Option<FileId> {
        None
    }

    #[cfg(not(unix))]
    fn of_stdout() -> Option<FileId> {
        None
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
