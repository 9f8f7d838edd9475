//! Unpacking a checked archive onto disk, never outside the destination.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::error::{shown, with_path};
use super::read::IO_CHUNK;
use super::{stream_entry, ZipError, ZipManifest};

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

// Unix only: its one test plants symlinks.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::site::zipsafe::test_support::{open, written};

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
}
