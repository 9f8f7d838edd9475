//! [`ZipError`], how paths and sizes read in its messages, and what a builder makes of it.

use std::io;
use std::path::Path;

use super::UnsafeReason;

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("the upload is not a zip file")]
    NotAZip,
    #[error("the zip file is truncated (was the upload interrupted?)")]
    Truncated,
    #[error("the zip file is damaged: {reason}")]
    Corrupt { reason: String },
    #[error("zip entry `{path}` {reason}")]
    UnsafePath { path: String, reason: UnsafeReason },
    #[error("zip entry `{path}` is a symbolic link; links are not allowed in uploads")]
    Symlink { path: String },
    #[error("the zip file has {count} entries; the limit is {limit}")]
    TooManyEntries { count: u64, limit: u64 },
    #[error("the zip file expands to more than {} (limit {})", human_bytes(*bytes), human_bytes(*limit))]
    TooLarge { bytes: u64, limit: u64 },
    #[error("zip entry `{path}` is {}; the limit for one file is {}", human_bytes(*size), human_bytes(*limit))]
    EntryTooLarge { path: String, size: u64, limit: u64 },
    #[error(
        "zip entry `{path}` expands {ratio} times (limit {limit}); this looks like a zip bomb"
    )]
    CompressionRatio {
        path: String,
        ratio: u64,
        limit: u64,
    },
    #[error("zip entry `{path}` appears more than once, or is both a file and a folder")]
    DuplicateEntry { path: String },
    #[error("the zip file contains no files")]
    Empty,
    #[error("zip entry `{path}` uses the {method} compression method; only Stored and Deflate are supported")]
    UnsupportedCompression { path: String, method: String },
    #[error("zip entry `{path}` is encrypted; upload an unencrypted zip")]
    Encrypted { path: String },
    #[error("zip entry `{path}` does not hold the number of bytes its header declares (corrupt or tampered zip)")]
    SizeMismatch { path: String },
    #[error("zip entry `{path}` is damaged: {reason}")]
    CorruptEntry { path: String, reason: String },
    #[error("i/o error while handling the zip: {0}")]
    Io(#[from] io::Error),
}

impl ZipError {
    /// The archive itself is at fault (as opposed to the disk or the network): retrying cannot help.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Self::Io(_))
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A path as it may appear in an error message: escaped, and cut short if huge.
pub(super) fn shown(raw: &str) -> String {
    const MAX_SHOWN: usize = 200;
    let escaped: String = raw.escape_debug().collect();
    match escaped.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

/// An i/o error that names the file it happened to.
pub(super) fn with_path(err: io::Error, path: &Path) -> ZipError {
    ZipError::Io(io::Error::new(
        err.kind(),
        format!("{}: {err}", path.display()),
    ))
}

/// A source zip a builder cannot unpack.
impl From<ZipError> for crate::ports::BuildError {
    fn from(e: ZipError) -> Self {
        Self::Source(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well_in_messages() {
        let err = ZipError::TooLarge {
            bytes: (2 << 30) + 1,
            limit: 2 << 30,
        };
        assert_eq!(
            err.to_string(),
            "the zip file expands to more than 2.0 GiB (limit 2.0 GiB)"
        );
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
