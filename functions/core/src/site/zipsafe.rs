//! Safe zip reading and writing: the pipeline's defence against hostile uploads.
//!
//! Every upload is untrusted. [`open_archive`] checks the whole central directory before a single
//! byte is inflated: entry count, declared sizes, compression ratio, encryption, compression
//! method, symlinks, and every path (see [`EntryPath`]). Reading then holds each entry to its
//! declared size, so a header that lies about its size cannot inflate past the limits.
//!
//! Rules worth knowing:
//! - Directory entries are checked but dropped from the manifest; only files are kept.
//! - `__MACOSX/` entries (Finder's resource-fork metadata) are dropped: they are never site content
//!   and would otherwise hide the common root of a zipped folder.
//! - Paths compare case-sensitively, as S3 keys do: `A.html` and `a.html` are two files.
//! - The compression ratio limit applies only to entries larger than [`RATIO_FLOOR`] uncompressed,
//!   so small, highly compressible files (a 200 KiB JSON file of spaces) are fine.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Entries at most this large (uncompressed) are exempt from the compression ratio limit.
pub const RATIO_FLOOR: u64 = 1 << 20;

const EOCD_SIGNATURE: [u8; 4] = *b"PK\x05\x06";
const LOCAL_HEADER_SIGNATURE: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_HEADER_SIGNATURE: [u8; 4] = *b"PK\x01\x02";
/// Fixed part of the end-of-central-directory record.
const EOCD_LEN: u64 = 22;
/// The archive comment that may follow the record is at most this long.
const MAX_COMMENT_LEN: u64 = u16::MAX as u64;

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;

const IO_CHUNK: usize = 64 * 1024;
/// A declared size is not trusted for preallocation beyond this.
const MAX_PREALLOC: u64 = 8 << 20;

/// What an archive may contain before it is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Central directory records, directories included.
    pub max_entries: u64,
    /// Sum of the declared uncompressed sizes of all files.
    pub max_total_bytes: u64,
    /// Declared uncompressed size of any one file.
    pub max_entry_bytes: u64,
    /// Uncompressed / compressed size, for entries over [`RATIO_FLOOR`].
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self {
            max_entries: 20_000,
            max_total_bytes: 2 << 30,
            max_entry_bytes: 1 << 30,
            max_ratio: 200,
        }
    }
}

/// Why a path inside an archive was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeReason {
    Empty,
    TooLong,
    Absolute,
    DriveLetter,
    ParentSegment,
    Backslash,
    ControlCharacter,
    EmptySegment,
    DotSegment,
    NotUtf8,
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "has an empty name",
            Self::TooLong => "has a path longer than 1024 bytes",
            Self::Absolute => "is an absolute path",
            Self::DriveLetter => "starts with a Windows drive letter",
            Self::ParentSegment => "escapes the archive root",
            Self::Backslash => "uses a backslash; paths in a zip must use `/`",
            Self::ControlCharacter => "contains a control character",
            Self::EmptySegment => "contains an empty path segment (`//`)",
            Self::DotSegment => "contains a `.` path segment",
            Self::NotUtf8 => "is not valid UTF-8",
        })
    }
}

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
fn shown(raw: &str) -> String {
    const MAX_SHOWN: usize = 200;
    let escaped: String = raw.escape_debug().collect();
    match escaped.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

/// A relative, normalised path inside an archive: non-empty `/`-separated segments, none `.`, `..`
/// or empty, no backslash, no control character (NUL included), no drive letter, no leading `/`,
/// valid UTF-8, at most [`EntryPath::MAX_LEN`] bytes. Joining it under a directory can never
/// leave that directory, and it is usable as-is as the tail of an S3 key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(String);

impl EntryPath {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, ZipError> {
        let reject = |reason| ZipError::UnsafePath {
            path: shown(raw),
            reason,
        };
        if raw.is_empty() {
            return Err(reject(UnsafeReason::Empty));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(reject(UnsafeReason::TooLong));
        }
        if raw.starts_with('/') || raw.starts_with('\\') {
            return Err(reject(UnsafeReason::Absolute));
        }
        let bytes = raw.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(reject(UnsafeReason::DriveLetter));
        }
        // Checked across both separators so `..\x` reads as the escape it is meant to be.
        if raw.split(['/', '\\']).any(|segment| segment == "..") {
            return Err(reject(UnsafeReason::ParentSegment));
        }
        if raw.contains('\\') {
            return Err(reject(UnsafeReason::Backslash));
        }
        if raw.chars().any(char::is_control) {
            return Err(reject(UnsafeReason::ControlCharacter));
        }
        for segment in raw.split('/') {
            match segment {
                "" => return Err(reject(UnsafeReason::EmptySegment)),
                "." => return Err(reject(UnsafeReason::DotSegment)),
                _ => {}
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The path below `root` (a folder prefix such as [`ZipManifest::common_root`] returns, with
    /// its trailing `/`), or `None` when the path is not under it.
    pub fn strip_root(&self, root: &str) -> Option<EntryPath> {
        let rest = self.0.strip_prefix(root)?;
        if !root.ends_with('/') || rest.is_empty() {
            return None;
        }
        Some(Self(rest.to_owned()))
    }

    /// Every folder the path sits in, outermost first: `a/b/c` gives `a`, `a/b`.
    fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(move |(slash, _)| &self.0[..slash])
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EntryPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One file in an archive, as its central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Position in the archive, for [`read_entry`].
    pub index: usize,
    pub path: EntryPath,
    /// Declared uncompressed size; reading holds the entry to it.
    pub size: u64,
    pub compressed_size: u64,
    /// The unix mode has an execute bit (a build script, say); extraction keeps it.
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipManifest {
    /// Files only, in archive order; directories dropped.
    pub entries: Vec<ZipEntry>,
    /// Sum of the entries' declared sizes.
    pub total_bytes: u64,
}

impl ZipManifest {
    /// When every file sits under one top-level folder (a zipped folder, a GitHub archive), that
    /// folder's name with a trailing `/`; else `None`.
    pub fn common_root(&self) -> Option<&str> {
        let first = self.entries.first()?.path.as_str();
        let root = &first[..=first.find('/')?];
        self.entries
            .iter()
            .all(|entry| entry.path.as_str().starts_with(root))
            .then_some(root)
    }

    pub fn get(&self, path: &str) -> Option<&ZipEntry> {
        self.entries
            .iter()
            .find(|entry| entry.path.as_str() == path)
    }
}

/// Files that would collide once extracted: the same path twice, or a file where another entry
/// needs a folder (`a` and `a/b`).
fn check_layout<'a>(
    files: impl IntoIterator<Item = &'a EntryPath>,
    explicit_dirs: impl IntoIterator<Item = &'a EntryPath>,
) -> Result<(), ZipError> {
    let mut file_set: HashSet<&str> = HashSet::new();
    let mut dir_set: HashSet<&str> = explicit_dirs.into_iter().map(EntryPath::as_str).collect();
    for path in files {
        if !file_set.insert(path.as_str()) {
            return Err(ZipError::DuplicateEntry {
                path: shown(path.as_str()),
            });
        }
        dir_set.extend(path.ancestors());
    }
    match file_set.iter().find(|file| dir_set.contains(*file)) {
        Some(file) => Err(ZipError::DuplicateEntry { path: shown(file) }),
        None => Ok(()),
    }
}

/// Finds the end-of-central-directory record, telling "not a zip" from "a zip cut short".
/// Returns the record's offset and its fixed 22 bytes.
fn locate_eocd<R: Read + Seek>(reader: &mut R) -> Result<(u64, [u8; EOCD_LEN as usize]), ZipError> {
    let len = reader.seek(SeekFrom::End(0))?;
    let window = len.min(EOCD_LEN + MAX_COMMENT_LEN);
    let start = len - window;
    reader.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity(window as usize);
    reader.by_ref().take(window).read_to_end(&mut tail)?;
    let found = tail
        .windows(EOCD_LEN as usize)
        .rposition(|record| record[..4] == EOCD_SIGNATURE);
    if let Some(at) = found {
        let mut record = [0u8; EOCD_LEN as usize];
        record.copy_from_slice(&tail[at..at + EOCD_LEN as usize]);
        return Ok((start + at as u64, record));
    }
    reader.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 4];
    let starts_like_zip = reader.read_exact(&mut head).is_ok() && head == LOCAL_HEADER_SIGNATURE;
    Err(if starts_like_zip {
        ZipError::Truncated
    } else {
        ZipError::NotAZip
    })
}

/// Maps the zip crate's refusal to open an archive whose end record we did find.
fn open_error(err: zip::result::ZipError, eocd_at: u64, eocd: &[u8; 22]) -> ZipError {
    let cd_size = u64::from(u32::from_le_bytes([eocd[12], eocd[13], eocd[14], eocd[15]]));
    let cd_offset = u64::from(u32::from_le_bytes([eocd[16], eocd[17], eocd[18], eocd[19]]));
    // 0xFFFFFFFF means the real offset is in the zip64 record; don't judge by it.
    let points_past_end = cd_offset != u64::from(u32::MAX) && cd_offset + cd_size > eocd_at;
    match err {
        zip::result::ZipError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            ZipError::Truncated
        }
        zip::result::ZipError::Io(e) => ZipError::Io(e),
        _ if points_past_end => ZipError::Truncated,
        other => ZipError::Corrupt {
            reason: other.to_string(),
        },
    }
}

/// The name the central directory gives more than once, found by walking the raw records
/// (the zip crate keeps only one of them).
fn duplicate_name<R: Read + Seek>(reader: &mut R, cd_start: u64) -> Option<String> {
    reader.seek(SeekFrom::Start(cd_start)).ok()?;
    let mut seen = HashSet::new();
    loop {
        let mut fixed = [0u8; 46];
        reader.read_exact(&mut fixed).ok()?;
        if fixed[..4] != CENTRAL_HEADER_SIGNATURE {
            return None;
        }
        let field = |at: usize| u64::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
        let mut name = vec![0u8; field(28) as usize];
        reader.read_exact(&mut name).ok()?;
        let skip = field(30) + field(32);
        if !seen.insert(name.clone()) {
            return Some(shown(&String::from_utf8_lossy(&name)));
        }
        reader.seek(SeekFrom::Current(skip as i64)).ok()?;
    }
}

/// Reads and checks the central directory. Returns the open archive and the manifest.
pub fn open_archive<R: Read + Seek>(
    mut reader: R,
    limits: &ZipLimits,
) -> Result<(zip::ZipArchive<R>, ZipManifest), ZipError> {
    let (eocd_at, eocd) = locate_eocd(&mut reader)?;
    let archive = zip::ZipArchive::new(reader).map_err(|e| open_error(e, eocd_at, &eocd))?;
    if archive.has_duplicate_names() {
        let cd_start = archive.central_directory_start();
        let path = duplicate_name(&mut archive.into_inner(), cd_start)
            .unwrap_or_else(|| "(unknown)".to_owned());
        return Err(ZipError::DuplicateEntry { path });
    }
    let count = archive.len() as u64;
    if count > limits.max_entries {
        return Err(ZipError::TooManyEntries {
            count,
            limit: limits.max_entries,
        });
    }

    let mut entries = Vec::new();
    let mut dirs = Vec::new();
    let mut total_bytes: u64 = 0;
    let mut skipped = 0usize;
    for index in 0..archive.len() {
        let data = archive
            .by_index_data(index)
            .map_err(|e| ZipError::Corrupt {
                reason: e.to_string(),
            })?;
        let name: Cow<'_, str> = match std::str::from_utf8(data.name_raw()) {
            Ok(name) => Cow::Borrowed(name),
            // Not UTF-8: the format says CP437 unless the UTF-8 flag is set.
            Err(_) => data.name().map_err(|_| ZipError::UnsafePath {
                path: shown(&String::from_utf8_lossy(data.name_raw())),
                reason: UnsafeReason::NotUtf8,
            })?,
        };
        let mode = data.unix_mode().unwrap_or(0);
        let is_dir = name.ends_with('/') || mode & S_IFMT == S_IFDIR;
        let path = EntryPath::parse(name.strip_suffix('/').unwrap_or(&name))?;
        if mode & S_IFMT == S_IFLNK {
            return Err(ZipError::Symlink {
                path: shown(path.as_str()),
            });
        }
        if path.as_str() == "__MACOSX" || path.as_str().starts_with("__MACOSX/") {
            skipped += 1;
            continue;
        }
        if is_dir {
            dirs.push(path);
            continue;
        }
        if data.encrypted() {
            return Err(ZipError::Encrypted {
                path: shown(path.as_str()),
            });
        }
        let method = data.compression();
        if method != CompressionMethod::Stored && method != CompressionMethod::Deflated {
            return Err(ZipError::UnsupportedCompression {
                path: shown(path.as_str()),
                method: method.to_string(),
            });
        }
        let size = data.size();
        let compressed_size = data.compressed_size();
        if size > limits.max_entry_bytes {
            return Err(ZipError::EntryTooLarge {
                path: shown(path.as_str()),
                size,
                limit: limits.max_entry_bytes,
            });
        }
        if size > RATIO_FLOOR {
            let ratio = size / compressed_size.max(1);
            if ratio > limits.max_ratio {
                return Err(ZipError::CompressionRatio {
                    path: shown(path.as_str()),
                    ratio,
                    limit: limits.max_ratio,
                });
            }
        }
        total_bytes = total_bytes.saturating_add(size);
        if total_bytes > limits.max_total_bytes {
            return Err(ZipError::TooLarge {
                bytes: total_bytes,
                limit: limits.max_total_bytes,
            });
        }
        entries.push(ZipEntry {
            index,
            path,
            size,
            compressed_size,
            executable: mode & 0o111 != 0,
        });
    }
    check_layout(entries.iter().map(|e| &e.path), &dirs)?;
    if entries.is_empty() {
        return Err(ZipError::Empty);
    }
    tracing::debug!(
        files = entries.len(),
        total_bytes,
        skipped_macos_metadata = skipped,
        "zip archive checked"
    );
    Ok((
        archive,
        ZipManifest {
            entries,
            total_bytes,
        },
    ))
}

/// An error from inflating an entry, named for the user.
fn entry_read_error(err: io::Error, path: &EntryPath) -> ZipError {
    let message = err.to_string();
    match err.kind() {
        // The zip crate's own guard against output beyond the declared size.
        io::ErrorKind::InvalidData if message.contains("declared uncompressed size") => {
            ZipError::SizeMismatch {
                path: shown(path.as_str()),
            }
        }
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            ZipError::CorruptEntry {
                path: shown(path.as_str()),
                reason: message,
            }
        }
        _ => ZipError::Io(err),
    }
}

/// Reads one entry's bytes, holding it to its declared size: output beyond it, or short of it,
/// is [`ZipError::SizeMismatch`].
pub fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    entry: &ZipEntry,
) -> Result<Vec<u8>, ZipError> {
    let mut bytes = Vec::with_capacity(entry.size.min(MAX_PREALLOC) as usize);
    stream_entry(archive, entry, IO_CHUNK, |chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(bytes)
}

/// Same as [`read_entry`], handing the bytes to `sink` in chunks of at most `chunk` bytes.
pub fn stream_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    entry: &ZipEntry,
    chunk: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), ZipError>,
) -> Result<(), ZipError> {
    let mut file = archive.by_index(entry.index).map_err(|e| match e {
        zip::result::ZipError::Io(io) => entry_read_error(io, &entry.path),
        other => ZipError::CorruptEntry {
            path: shown(entry.path.as_str()),
            reason: other.to_string(),
        },
    })?;
    let mut buf = vec![0u8; chunk.max(1)];
    let mut seen: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(entry_read_error(e, &entry.path)),
        };
        seen += n as u64;
        if seen > entry.size {
            return Err(ZipError::SizeMismatch {
                path: shown(entry.path.as_str()),
            });
        }
        sink(&buf[..n])?;
    }
    if seen != entry.size {
        return Err(ZipError::SizeMismatch {
            path: shown(entry.path.as_str()),
        });
    }
    Ok(())
}

fn with_path(err: io::Error, path: &Path) -> ZipError {
    ZipError::Io(io::Error::new(
        err.kind(),
        format!("{}: {err}", path.display()),
    ))
}

/// Extracts every entry of `manifest` under `dest`, which must be an existing directory.
/// Creates folders as needed, never follows or creates symlinks, never overwrites (files are
/// created exclusively, which also refuses a symlink planted at the target), and never writes
/// outside `dest`. On error, what was written so far stays; extract into a scratch directory.
pub fn extract_all<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    manifest: &ZipManifest,
    dest: &Path,
) -> Result<(), ZipError> {
    if !fs::symlink_metadata(dest)
        .map_err(|e| with_path(e, dest))?
        .is_dir()
    {
        return Err(with_path(
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            dest,
        ));
    }
    let mut made: HashSet<PathBuf> = HashSet::new();
    for entry in &manifest.entries {
        let mut target = dest.to_path_buf();
        let mut segments = entry.path.as_str().split('/').peekable();
        while let Some(segment) = segments.next() {
            target.push(segment);
            if segments.peek().is_none() || made.contains(&target) {
                continue;
            }
            match fs::create_dir(&target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let existing =
                        fs::symlink_metadata(&target).map_err(|e| with_path(e, &target))?;
                    if existing.file_type().is_symlink() {
                        return Err(ZipError::Symlink {
                            path: shown(&target.to_string_lossy()),
                        });
                    }
                    if !existing.is_dir() {
                        return Err(with_path(e, &target));
                    }
                }
                Err(e) => return Err(with_path(e, &target)),
            }
            made.insert(target.clone());
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| with_path(e, &target))?;
        let mut out = BufWriter::with_capacity(IO_CHUNK, file);
        stream_entry(archive, entry, IO_CHUNK, |chunk| {
            out.write_all(chunk).map_err(|e| with_path(e, &target))
        })?;
        let file = out
            .into_inner()
            .map_err(|e| with_path(e.into_error(), &target))?;
        if entry.executable {
            set_executable(&file).map_err(|e| with_path(e, &target))?;
        }
    }
    tracing::debug!(
        files = manifest.entries.len(),
        dest = %dest.display(),
        "zip archive extracted"
    );
    Ok(())
}

#[cfg(unix)]
fn set_executable(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// Extensions of formats that are compressed already: deflating them again costs the CLI
/// about half its zipping time on a typical site and saves nothing.
const PRECOMPRESSED: [&str; 18] = [
    "png", "jpg", "jpeg", "gif", "webp", "avif", "woff", "woff2", "gz", "br", "zst", "zip", "mp3",
    "mp4", "m4a", "webm", "ogg", "ogv",
];

/// Stored for an already compressed format, deflated otherwise.
fn compression_for(path: &EntryPath) -> CompressionMethod {
    let extension = path
        .as_str()
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    if extension.is_some_and(|e| PRECOMPRESSED.contains(&e.as_str())) {
        CompressionMethod::Stored
    } else {
        CompressionMethod::Deflated
    }
}

/// Zips `files` (archive path, file on disk) into `out`, deflated (stored when the format is
/// compressed already), in sorted path order, with a fixed timestamp so the same input gives
/// the same bytes. Returns (file count, total uncompressed bytes).
pub fn write_zip<W: Write + Seek>(
    out: W,
    files: impl IntoIterator<Item = (EntryPath, PathBuf)>,
) -> Result<(u64, u64), ZipError> {
    let mut files: Vec<(EntryPath, PathBuf)> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    check_layout(files.iter().map(|(path, _)| path), [])?;

    // Above this a file may not fit the 32-bit size fields once deflate's overhead is added.
    const LARGE: u64 = zip::ZIP64_BYTES_THR - (64 << 20);
    let mut writer = zip::ZipWriter::new(out);
    let mut total: u64 = 0;
    for (path, source) in &files {
        let mut file = File::open(source).map_err(|e| with_path(e, source))?;
        let meta = file.metadata().map_err(|e| with_path(e, source))?;
        let options = SimpleFileOptions::default()
            .compression_method(compression_for(path))
            .unix_permissions(if is_executable(&meta) { 0o755 } else { 0o644 })
            .large_file(meta.len() >= LARGE);
        writer
            .start_file(path.as_str(), options)
            .map_err(io::Error::from)?;
        total += io::copy(&mut file, &mut writer).map_err(|e| with_path(e, source))?;
    }
    writer.finish().map_err(io::Error::from)?;
    let count = files.len() as u64;
    tracing::debug!(files = count, bytes = total, "zip written");
    Ok((count, total))
}

/// Zips every regular file under `dir` (see [`write_zip`]). Symlinks are skipped, never
/// followed, so a link cannot pull files from outside `dir` into the archive.
pub fn zip_directory<W: Write + Seek>(dir: &Path, out: W) -> Result<(u64, u64), ZipError> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((on_disk, prefix)) = pending.pop() {
        for item in fs::read_dir(&on_disk).map_err(|e| with_path(e, &on_disk))? {
            let item = item.map_err(|e| with_path(e, &on_disk))?;
            let full = item.path();
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                return Err(ZipError::UnsafePath {
                    path: shown(&full.to_string_lossy()),
                    reason: UnsafeReason::NotUtf8,
                });
            };
            let relative = format!("{prefix}{name}");
            let kind = item.file_type().map_err(|e| with_path(e, &full))?;
            if kind.is_dir() {
                pending.push((full, format!("{relative}/")));
            } else if kind.is_file() {
                files.push((EntryPath::parse(&relative)?, full));
            } else {
                tracing::warn!(path = %full.display(), "not a regular file; left out of the zip");
            }
        }
    }
    write_zip(out, files)
}

/// A source zip a builder cannot unpack.
impl From<ZipError> for crate::ports::BuildError {
    fn from(e: ZipError) -> Self {
        Self::Source(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A zip written by hand, for the shapes the zip crate's writer refuses to produce:
    /// duplicate names, lying sizes, hostile modes, encryption flags, odd methods.
    #[derive(Default)]
    struct RawZip {
        entries: Vec<RawEntry>,
    }

    struct RawEntry {
        name: Vec<u8>,
        data: Vec<u8>,
        method: u16,
        flags: u16,
        declared_size: Option<u32>,
        external: u32,
    }

    impl RawEntry {
        fn stored(name: &str, data: &[u8]) -> Self {
            Self {
                name: name.as_bytes().to_vec(),
                data: data.to_vec(),
                method: 0,
                flags: 0,
                declared_size: None,
                external: 0o100_644 << 16,
            }
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    impl RawZip {
        fn with(mut self, entry: RawEntry) -> Self {
            self.entries.push(entry);
            self
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            let mut central = Vec::new();
            for e in &self.entries {
                let offset = out.len() as u32;
                let crc = crc32(&e.data);
                let size = e.declared_size.unwrap_or(e.data.len() as u32);
                let mut common = Vec::new();
                common.extend_from_slice(&20u16.to_le_bytes()); // version needed
                common.extend_from_slice(&e.flags.to_le_bytes());
                common.extend_from_slice(&e.method.to_le_bytes());
                common.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
                common.extend_from_slice(&crc.to_le_bytes());
                common.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
                common.extend_from_slice(&size.to_le_bytes());
                common.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
                common.extend_from_slice(&0u16.to_le_bytes()); // extra length

                out.extend_from_slice(&LOCAL_HEADER_SIGNATURE);
                out.extend_from_slice(&common);
                out.extend_from_slice(&e.name);
                out.extend_from_slice(&e.data);

                central.extend_from_slice(&CENTRAL_HEADER_SIGNATURE);
                central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by unix
                central.extend_from_slice(&common);
                central.extend_from_slice(&0u16.to_le_bytes()); // comment length
                central.extend_from_slice(&0u16.to_le_bytes()); // disk number
                central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                central.extend_from_slice(&e.external.to_le_bytes());
                central.extend_from_slice(&offset.to_le_bytes());
                central.extend_from_slice(&e.name);
            }
            let cd_offset = out.len() as u32;
            out.extend_from_slice(&central);
            let count = self.entries.len() as u16;
            out.extend_from_slice(&EOCD_SIGNATURE);
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&(central.len() as u32).to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out
        }
    }

    fn written(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    type Opened = (zip::ZipArchive<Cursor<Vec<u8>>>, ZipManifest);

    fn open(bytes: Vec<u8>) -> Result<Opened, ZipError> {
        open_archive(Cursor::new(bytes), &ZipLimits::default())
    }

    fn open_err(bytes: Vec<u8>) -> ZipError {
        match open(bytes) {
            Ok((_, manifest)) => panic!("expected rejection, got {manifest:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn entry_paths_accept_normal_names_and_refuse_escapes() {
        for good in [
            "index.html",
            "assets/index-BdK3x9Qz.js",
            "a/b/c/d.txt",
            "é/ü.html",
            "..foo",
            "a..b/c",
        ] {
            assert_eq!(EntryPath::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(1025);
        for (bad, reason) in [
            ("", UnsafeReason::Empty),
            (long.as_str(), UnsafeReason::TooLong),
            ("/etc/passwd", UnsafeReason::Absolute),
            ("C:\\x", UnsafeReason::DriveLetter),
            ("c:/x", UnsafeReason::DriveLetter),
            ("../x", UnsafeReason::ParentSegment),
            ("a/../../x", UnsafeReason::ParentSegment),
            ("..\\x", UnsafeReason::ParentSegment),
            ("a\\b", UnsafeReason::Backslash),
            ("a\0b", UnsafeReason::ControlCharacter),
            ("a\nb", UnsafeReason::ControlCharacter),
            ("a//b", UnsafeReason::EmptySegment),
            ("a/", UnsafeReason::EmptySegment),
            ("./a", UnsafeReason::DotSegment),
        ] {
            match EntryPath::parse(bad) {
                Err(ZipError::UnsafePath { reason: got, .. }) => {
                    assert_eq!(got, reason, "{bad:?}")
                }
                other => panic!("{bad:?} should be unsafe, got {other:?}"),
            }
        }
    }

    #[test]
    fn entry_path_helpers() {
        let path = EntryPath::parse("site/assets/app.js").unwrap();
        assert_eq!(path.file_name(), "app.js");
        assert_eq!(
            path.ancestors().collect::<Vec<_>>(),
            ["site", "site/assets"]
        );
        assert_eq!(path.strip_root("site/").unwrap().as_str(), "assets/app.js");
        assert_eq!(path.strip_root("sit"), None);
        assert_eq!(path.strip_root("other/"), None);
        assert_eq!(EntryPath::parse("one").unwrap().file_name(), "one");
    }

    #[test]
    fn random_bytes_are_not_a_zip() {
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(matches!(open_err(noise), ZipError::NotAZip));
        assert!(matches!(open_err(Vec::new()), ZipError::NotAZip));
        assert!(matches!(
            open_err(b"<html>not a zip</html>".to_vec()),
            ZipError::NotAZip
        ));
    }

    #[test]
    fn a_zip_cut_in_half_is_truncated() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let full = written(&[("index.html", b"<h1>hi</h1>"), ("data.bin", &big)]);
        let half = full[..full.len() / 2].to_vec();
        let err = open_err(half);
        assert!(matches!(err, ZipError::Truncated), "{err:?}");
        assert!(err.to_string().contains("truncated"));
    }

    #[test]
    fn an_end_record_pointing_past_the_data_is_truncated() {
        let mut bytes = RawZip::default()
            .with(RawEntry::stored("a.txt", b"hello"))
            .build();
        let eocd = bytes.len() - 22;
        // Central directory claimed to start far beyond where it does.
        bytes[eocd + 16..eocd + 20].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(matches!(open_err(bytes), ZipError::Truncated));
    }

    fn unsafe_reason(name: &str) -> (String, UnsafeReason) {
        let bytes = RawZip::default()
            .with(RawEntry::stored("ok.txt", b"fine"))
            .with(RawEntry::stored(name, b"evil"))
            .build();
        match open_err(bytes) {
            ZipError::UnsafePath { path, reason } => (path, reason),
            other => panic!("{name:?}: expected UnsafePath, got {other:?}"),
        }
    }

    #[test]
    fn zip_slip_is_refused_with_a_clear_message() {
        let (path, reason) = unsafe_reason("../../etc/passwd");
        assert_eq!(reason, UnsafeReason::ParentSegment);
        let err = ZipError::UnsafePath { path, reason };
        assert_eq!(
            err.to_string(),
            "zip entry `../../etc/passwd` escapes the archive root"
        );
        assert!(err.is_input_error());
    }

    #[test]
    fn absolute_backslash_and_drive_paths_are_refused() {
        assert_eq!(unsafe_reason("/etc/cron.d/x").1, UnsafeReason::Absolute);
        assert_eq!(unsafe_reason("assets\\app.js").1, UnsafeReason::Backslash);
        assert_eq!(unsafe_reason("..\\..\\x").1, UnsafeReason::ParentSegment);
        assert_eq!(unsafe_reason("C:\\Windows\\x").1, UnsafeReason::DriveLetter);
        let (shown, reason) = unsafe_reason("a\0b");
        assert_eq!(reason, UnsafeReason::ControlCharacter);
        assert_eq!(shown, "a\\0b", "control characters are escaped in messages");
    }

    #[test]
    fn symlink_entries_are_refused() {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .start_file("index.html", SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"hi").unwrap();
        writer
            .add_symlink("passwd", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let err = open_err(bytes);
        assert!(
            matches!(&err, ZipError::Symlink { path } if path == "passwd"),
            "{err:?}"
        );

        // Also when only the mode bits say so.
        let mut link = RawEntry::stored("link", b"/etc/shadow");
        link.external = 0o120_777 << 16;
        assert!(matches!(
            open_err(RawZip::default().with(link).build()),
            ZipError::Symlink { .. }
        ));
    }

    #[test]
    fn duplicate_names_are_refused_and_named() {
        let bytes = RawZip::default()
            .with(RawEntry::stored("index.html", b"one"))
            .with(RawEntry::stored("about.html", b"about"))
            .with(RawEntry::stored("index.html", b"two"))
            .build();
        match open_err(bytes) {
            ZipError::DuplicateEntry { path } => assert_eq!(path, "index.html"),
            other => panic!("{other:?}"),
        }
        // Paths differing only in case are distinct, as S3 keys are.
        let (_, manifest) = open(
            RawZip::default()
                .with(RawEntry::stored("A.html", b"1"))
                .with(RawEntry::stored("a.html", b"2"))
                .build(),
        )
        .unwrap();
        assert_eq!(manifest.entries.len(), 2);
    }

    #[test]
    fn a_file_colliding_with_a_folder_is_refused() {
        let bytes = written(&[("docs", b"file"), ("docs/index.html", b"page")]);
        assert!(matches!(
            open_err(bytes),
            ZipError::DuplicateEntry { path } if path == "docs"
        ));
        let mut dir = RawEntry::stored("assets/", b"");
        dir.external = 0o040_755 << 16;
        let bytes = RawZip::default()
            .with(dir)
            .with(RawEntry::stored("assets", b"file"))
            .build();
        assert!(matches!(open_err(bytes), ZipError::DuplicateEntry { .. }));
    }

    #[test]
    fn an_archive_without_files_is_empty() {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .add_directory("only-a-folder/", SimpleFileOptions::default())
            .unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        assert!(matches!(open_err(bytes), ZipError::Empty));
        let nothing = zip::ZipWriter::new(Cursor::new(Vec::new()))
            .finish()
            .unwrap()
            .into_inner();
        assert!(matches!(open_err(nothing), ZipError::Empty));
    }

    #[test]
    fn entry_count_and_total_size_limits_hold() {
        let names: Vec<String> = (0..5).map(|i| format!("f{i}.txt")).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), b"0123456789".as_slice()))
            .collect();
        let bytes = written(&files);

        let few = ZipLimits {
            max_entries: 4,
            ..ZipLimits::default()
        };
        let err = open_archive(Cursor::new(bytes.clone()), &few).unwrap_err();
        assert!(
            matches!(err, ZipError::TooManyEntries { count: 5, limit: 4 }),
            "{err:?}"
        );

        let small = ZipLimits {
            max_total_bytes: 45,
            ..ZipLimits::default()
        };
        let err = open_archive(Cursor::new(bytes.clone()), &small).unwrap_err();
        assert!(
            matches!(
                err,
                ZipError::TooLarge {
                    bytes: 50,
                    limit: 45
                }
            ),
            "{err:?}"
        );

        let per_file = ZipLimits {
            max_entry_bytes: 9,
            ..ZipLimits::default()
        };
        let err = open_archive(Cursor::new(bytes.clone()), &per_file).unwrap_err();
        assert!(matches!(
            err,
            ZipError::EntryTooLarge {
                size: 10,
                limit: 9,
                ..
            }
        ));

        let (_, manifest) = open_archive(Cursor::new(bytes), &ZipLimits::default()).unwrap();
        assert_eq!(manifest.total_bytes, 50);
        assert_eq!(manifest.entries.len(), 5);
    }

    #[test]
    fn a_deflated_bomb_is_refused_but_small_compressible_files_pass() {
        let zeros = vec![0u8; 16 << 20];
        let bytes = written(&[("index.html", b"<p>hi</p>"), ("zeros.bin", &zeros)]);
        let err = open_err(bytes);
        match &err {
            ZipError::CompressionRatio { path, ratio, limit } => {
                assert_eq!(path, "zeros.bin");
                assert!(*ratio > 200, "{ratio}");
                assert_eq!(*limit, 200);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("zip bomb"));

        let spaces = vec![b' '; 512 << 10];
        let (mut archive, manifest) = open(written(&[("spaces.json", &spaces)])).unwrap();
        let entry = &manifest.entries[0];
        assert!(entry.size / entry.compressed_size.max(1) > 200);
        assert_eq!(read_entry(&mut archive, entry).unwrap(), spaces);
    }

    #[test]
    fn a_header_that_understates_its_size_cannot_inflate_past_it() {
        let mut liar = RawEntry::stored("small.txt", &[b'x'; 4096]);
        liar.declared_size = Some(10);
        let (mut archive, manifest) = open(RawZip::default().with(liar).build()).unwrap();
        let entry = manifest.get("small.txt").unwrap();
        assert_eq!(entry.size, 10);
        let err = read_entry(&mut archive, entry).unwrap_err();
        assert!(matches!(err, ZipError::SizeMismatch { .. }), "{err:?}");

        let mut streamed = 0usize;
        let err = stream_entry(&mut archive, entry, 3, |chunk| {
            streamed += chunk.len();
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, ZipError::SizeMismatch { .. }), "{err:?}");
        assert!(
            streamed <= 10,
            "no more than the declared size reaches the sink"
        );
    }

    #[test]
    fn a_header_that_overstates_its_size_is_a_mismatch() {
        let mut liar = RawEntry::stored("short.txt", b"tiny");
        liar.declared_size = Some(1000);
        let (mut archive, manifest) = open(RawZip::default().with(liar).build()).unwrap();
        let err = read_entry(&mut archive, &manifest.entries[0]).unwrap_err();
        assert!(matches!(err, ZipError::SizeMismatch { .. }), "{err:?}");
    }

    #[test]
    fn encrypted_and_exotic_entries_are_refused() {
        let mut secret = RawEntry::stored("secret.txt", b"xxxx");
        secret.flags = 1;
        assert!(matches!(
            open_err(RawZip::default().with(secret).build()),
            ZipError::Encrypted { path } if path == "secret.txt"
        ));
        let mut lzma = RawEntry::stored("data.bin", b"xxxx");
        lzma.method = 14;
        let err = open_err(RawZip::default().with(lzma).build());
        assert!(
            matches!(&err, ZipError::UnsupportedCompression { method, .. } if method == "Lzma"),
            "{err:?}"
        );
    }

    #[test]
    fn a_corrupted_entry_is_reported_as_damaged() {
        let mut bytes = written(&[("index.html", &[b'a'; 2000])]);
        // Flip bytes inside the deflate stream (just after the 30-byte header and the name).
        for byte in &mut bytes[40..46] {
            *byte ^= 0xFF;
        }
        let (mut archive, manifest) = open(bytes).unwrap();
        let err = read_entry(&mut archive, &manifest.entries[0]).unwrap_err();
        assert!(
            matches!(
                err,
                ZipError::CorruptEntry { .. } | ZipError::SizeMismatch { .. }
            ),
            "{err:?}"
        );
        assert!(err.is_input_error());
    }

    #[test]
    fn common_root_detects_a_zipped_folder() {
        let (_, zipped_folder) = open(written(&[
            ("my-site/index.html", b"a"),
            ("my-site/assets/app.js", b"b"),
            ("__MACOSX/my-site/._index.html", b"junk"),
        ]))
        .unwrap();
        assert_eq!(zipped_folder.common_root(), Some("my-site/"));
        assert_eq!(
            zipped_folder.entries.len(),
            2,
            "__MACOSX entries are dropped"
        );
        assert!(zipped_folder.get("my-site/assets/app.js").is_some());
        assert!(zipped_folder.get("assets/app.js").is_none());

        let (_, flat) = open(written(&[("index.html", b"a"), ("assets/app.js", b"b")])).unwrap();
        assert_eq!(flat.common_root(), None);

        let (_, two_roots) =
            open(written(&[("a/index.html", b"a"), ("b/index.html", b"b")])).unwrap();
        assert_eq!(two_roots.common_root(), None);

        let (_, prefix_only) = open(written(&[
            ("site/index.html", b"a"),
            ("site2/x.html", b"b"),
        ]))
        .unwrap();
        assert_eq!(prefix_only.common_root(), None);
    }

    #[test]
    fn a_nested_site_round_trips_through_write_open_and_extract() {
        let src = tempfile::tempdir().unwrap();
        let site: Vec<(&str, Vec<u8>)> = vec![
            ("index.html", b"<h1>home</h1>".to_vec()),
            ("about/index.html", b"<h1>about</h1>".to_vec()),
            ("assets/js/app-BdK3x9Qz.js", b"console.log(1)".to_vec()),
            (
                "assets/img/logo.png",
                (0..=255u8).cycle().take(300_000).collect(),
            ),
            ("empty.txt", Vec::new()),
            ("d\u{e9}j\u{e0}-vu.html", b"unicode".to_vec()),
        ];
        for (path, data) in &site {
            let full = src.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, data).unwrap();
        }
        fs::create_dir(src.path().join("empty-dir")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("leak")).unwrap();

        let mut zipped = Cursor::new(Vec::new());
        let (count, bytes) = zip_directory(src.path(), &mut zipped).unwrap();
        assert_eq!(count, site.len() as u64);
        assert_eq!(bytes, site.iter().map(|(_, d)| d.len() as u64).sum::<u64>());

        let (mut archive, manifest) =
            open_archive(Cursor::new(zipped.into_inner()), &ZipLimits::default()).unwrap();
        let mut names: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "written in sorted order");
        names.sort();
        let mut expected: Vec<&str> = site.iter().map(|(p, _)| *p).collect();
        expected.sort();
        assert_eq!(names, expected, "the symlink is left out");

        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        for (path, data) in &site {
            assert_eq!(&fs::read(dest.path().join(path)).unwrap(), data, "{path}");
        }
        assert!(!dest.path().join("leak").exists());

        // Extracting again over the same files refuses to overwrite.
        let err = extract_all(&mut archive, &manifest, dest.path()).unwrap_err();
        assert!(matches!(err, ZipError::Io(ref e) if e.kind() == io::ErrorKind::AlreadyExists));
    }

    #[cfg(unix)]
    #[test]
    fn extraction_never_follows_a_planted_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("assets")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("owned.html"),
            dest.path().join("index.html"),
        )
        .unwrap();

        let (mut archive, manifest) = open(written(&[("assets/app.js", b"x")])).unwrap();
        let err = extract_all(&mut archive, &manifest, dest.path()).unwrap_err();
        assert!(matches!(err, ZipError::Symlink { .. }), "{err:?}");

        let (mut archive, manifest) = open(written(&[("index.html", b"x")])).unwrap();
        assert!(extract_all(&mut archive, &manifest, dest.path()).is_err());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_execute_bit_survives_a_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let script = src.path().join("build.sh");
        fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.path().join("index.html"), "x").unwrap();

        let mut zipped = Cursor::new(Vec::new());
        zip_directory(src.path(), &mut zipped).unwrap();
        let (mut archive, manifest) = open(zipped.into_inner()).unwrap();
        assert!(manifest.get("build.sh").unwrap().executable);
        assert!(!manifest.get("index.html").unwrap().executable);
        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        let mode = fs::metadata(dest.path().join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }

    #[test]
    fn compressed_formats_are_stored_and_everything_round_trips() {
        let src = tempfile::tempdir().unwrap();
        let files = [
            ("index.html", b"<p>hello hello hello hello</p>".to_vec()),
            ("img/Logo.PNG", vec![0x89, b'P', b'N', b'G', 1, 2, 3]),
            ("fonts/a.woff2", vec![7; 64]),
            ("data.v2/readme", b"text text text text".to_vec()),
        ];
        for (name, body) in &files {
            let path = src.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, body).unwrap();
        }
        let mut zipped = Cursor::new(Vec::new());
        zip_directory(src.path(), &mut zipped).unwrap();
        let bytes = zipped.into_inner();
        let mut raw = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
        for (name, expected) in [
            ("index.html", CompressionMethod::Deflated),
            ("img/Logo.PNG", CompressionMethod::Stored),
            ("fonts/a.woff2", CompressionMethod::Stored),
            ("data.v2/readme", CompressionMethod::Deflated),
        ] {
            assert_eq!(raw.by_name(name).unwrap().compression(), expected, "{name}");
        }
        let (mut archive, manifest) = open(bytes).unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        for (name, body) in &files {
            assert_eq!(&fs::read(dest.path().join(name)).unwrap(), body, "{name}");
        }
    }

    #[test]
    fn write_zip_refuses_colliding_paths_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let p = |s: &str| EntryPath::parse(s).unwrap();
        let err = write_zip(
            Cursor::new(Vec::new()),
            [(p("a"), file.clone()), (p("a/b"), file.clone())],
        )
        .unwrap_err();
        assert!(matches!(err, ZipError::DuplicateEntry { path } if path == "a"));

        let zip_once = |order: &[&str]| {
            let mut out = Cursor::new(Vec::new());
            write_zip(&mut out, order.iter().map(|n| (p(n), file.clone()))).unwrap();
            out.into_inner()
        };
        assert_eq!(zip_once(&["b", "a", "c/d"]), zip_once(&["c/d", "a", "b"]));
    }

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
