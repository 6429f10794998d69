//! Compression of inputs (recognised by their magic bytes, not by their names) and of
//! outputs (chosen by the output file's name, or mirrored from the input).

use std::path::Path;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// A stream's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
}

impl Compression {
    /// The compression that a stream starting with `head` is in.
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
    pub(crate) fn undecided(head: &[u8]) -> bool {
        Compression::detect(head) == Compression::None
            && (GZIP_MAGIC.starts_with(head) || ZSTD_MAGIC.starts_with(head))
    }

    /// Compression of an output file chosen by its name (`.gz`, `.zst`).
    pub fn for_name(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") | Some("zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }
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

    #[test]
    fn output_compression_follows_the_name() {
        assert_eq!(
            Compression::for_name(Path::new("a.log.gz")),
            Compression::Gzip
        );
        assert_eq!(Compression::for_name(Path::new("a.zst")), Compression::Zstd);
        assert_eq!(Compression::for_name(Path::new("a.log")), Compression::None);
    }
}
