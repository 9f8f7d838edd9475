//! The build's artifact: `base-directory`, less its `exclude-paths`, packed into a zip and
//! uploaded in chunks.

use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use slipway_core::model::ObjectLocation;
use slipway_core::ports::{BuildError, ObjectBody, ObjectMeta};
use slipway_core::site::build_plan::PlanError;
use slipway_core::site::zipsafe::{self, EntryPath, UnsafeReason, ZipError};

use super::{io_error, InfraError, LocalBuilder};

const UPLOAD_CHUNK: usize = 1024 * 1024;

impl LocalBuilder {
    /// Zips the output directory, less the excluded paths, into a temp file and uploads it
    /// in chunks.
    pub(super) async fn pack_and_upload(
        &self,
        scratch: &Path,
        root: &Path,
        base_directory: &str,
        exclude: GlobSet,
        artifact: &ObjectLocation,
    ) -> Result<(u64, u64), BuildError> {
        let output = output_dir(root, base_directory)
            .ok_or_else(|| BuildError::NoOutput(base_directory.to_owned()))?;
        let zip_path = scratch.join("output.zip");
        let target = zip_path.clone();
        let base = base_directory.to_owned();
        let (files, bytes) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&target)
                .map_err(io_error(format!("creating {}", target.display())))?;
            output_files(&output, &exclude)
                .and_then(|files| zipsafe::write_zip(io::BufWriter::new(file), files))
                .map_err(|e| {
                    if e.is_input_error() {
                        // What the build wrote cannot be packed (say, a file name that is not UTF-8).
                        BuildError::CommandFailed {
                            phase: "UPLOAD_ARTIFACTS".to_owned(),
                            command: format!("pack {base}"),
                            status: e.to_string(),
                        }
                    } else {
                        BuildError::Unavailable(Box::new(e))
                    }
                })
        })
        .await
        .map_err(InfraError::from)??;
        if files == 0 {
            return Err(BuildError::NoOutput(base_directory.to_owned()));
        }

        let file = tokio::fs::File::open(&zip_path)
            .await
            .map_err(io_error("opening the packed output"))?;
        let len = file
            .metadata()
            .await
            .map_err(io_error("reading the packed output's size"))?
            .len();
        let chunks = crate::objects::file_chunks(file, UPLOAD_CHUNK);
        let meta = ObjectMeta {
            content_type: "application/zip".to_owned(),
            cache_control: None,
        };
        self.objects
            .put(
                artifact.bucket,
                &artifact.key,
                ObjectBody::Stream { len, chunks },
                &meta,
            )
            .await
            .map_err(|e| BuildError::Unavailable(Box::new(e)))?;
        Ok((files, bytes))
    }
}

/// `artifacts.exclude-paths` as CodeBuild matches them: relative to the base directory,
/// `*` within one path segment, `**` across any number of them.
pub(super) fn exclude_globs(patterns: &[String]) -> Result<GlobSet, PlanError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| PlanError::InvalidBuildspec {
                reason: format!("exclude-paths entry {pattern:?}: {e}"),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| PlanError::InvalidBuildspec {
        reason: format!("exclude-paths: {e}"),
    })
}

/// Every regular file under `dir` that no exclude glob matches, as archive entries.
/// Symlinks are skipped, never followed, so a link cannot pull outside files into the output.
fn output_files(dir: &Path, exclude: &GlobSet) -> Result<Vec<(EntryPath, PathBuf)>, ZipError> {
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1) {
        let item = item.map_err(|e| ZipError::Io(e.into()))?;
        let full = item.path();
        let relative = full.strip_prefix(dir).unwrap_or(full);
        if !item.file_type().is_file() {
            if !item.file_type().is_dir() {
                tracing::warn!(path = %full.display(), "not a regular file; left out of the output");
            }
            continue;
        }
        if exclude.is_match(relative) {
            continue;
        }
        let Some(name) = relative.to_str() else {
            return Err(ZipError::UnsafePath {
                path: relative.to_string_lossy().into_owned(),
                reason: UnsafeReason::NotUtf8,
            });
        };
        files.push((EntryPath::parse(name)?, full.to_owned()));
    }
    Ok(files)
}

/// `{root}/{base}` when it is a directory inside the source root (symlinks resolved).
fn output_dir(root: &Path, base: &str) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let dir = std::fs::canonicalize(root.join(base)).ok()?;
    (dir.starts_with(&root) && dir.is_dir()).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_paths_match_like_codebuild() {
        let set = exclude_globs(&[
            ".git/**/*".to_owned(),
            "**/.env*".to_owned(),
            "slipway.toml".to_owned(),
            "*.map".to_owned(),
        ])
        .unwrap();
        for excluded in [
            ".git/HEAD",
            ".git/refs/heads/main",
            ".env",
            "a/b/.env.production",
            "slipway.toml",
            "app.js.map",
        ] {
            assert!(set.is_match(excluded), "{excluded}");
        }
        for kept in [
            "index.html",
            "docs/slipway.toml",
            "assets/app.js.map",
            "a.git/HEAD",
            "environment.html",
        ] {
            assert!(!set.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn an_invalid_exclude_path_is_a_buildspec_error() {
        let err = exclude_globs(&["a/[b".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("a/[b"), "{err}");
    }
}
