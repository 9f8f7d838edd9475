//! Opening and reading an untrusted archive.
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
use std::io::{self, Read, Seek, SeekFrom};

use zip::CompressionMethod;

use super::entry_path::check_layout;
use super::error::shown;
use super::{EntryPath, UnsafeReason, ZipError};

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

pub(super) const IO_CHUNK: usize = 64 * 1024;
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::site::zipsafe::test_support::{open, written};

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
    fn open_err(bytes: Vec<u8>) -> ZipError {
        match open(bytes) {
            Ok((_, manifest)) => panic!("expected rejection, got {manifest:?}"),
            Err(e) => e,
        }
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
}
