//! Zipping files and folders: deterministic output, compressed formats stored as they are.

use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use super::entry_path::check_layout;
use super::error::{shown, with_path};
use super::{EntryPath, UnsafeReason, ZipError};

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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

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
}
