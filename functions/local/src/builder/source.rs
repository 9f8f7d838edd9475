//! The build's source, fetched into `{scratch}/src`: a source zip downloaded from the
//! object store and unpacked safely, or a git commit checked out.

use std::io;
use std::path::{Path, PathBuf};

use slipway_core::model::ObjectLocation;
use slipway_core::names::CommitSha;
use slipway_core::ports::{BuildError, ObjectBody};
use slipway_core::site::zipsafe;
use tokio::io::AsyncWriteExt;

use super::log::LogSink;
use super::{io_error, InfraError, LocalBuilder};

impl LocalBuilder {
    /// Streams the source zip to disk and unpacks it into `{scratch}/src`.
    pub(super) async fn fetch_archive(
        &self,
        scratch: &Path,
        location: &ObjectLocation,
        log: &LogSink,
    ) -> Result<Source, BuildError> {
        let (info, body) = self
            .objects
            .get(location.bucket, &location.key)
            .await
            .map_err(|e| BuildError::Unavailable(Box::new(e)))?
            .ok_or_else(|| BuildError::SourceMissing {
                bucket: location.bucket,
                key: location.key.clone(),
            })?;
        let zip_path = scratch.join("source.zip");
        write_body(&zip_path, body).await?;

        let dest = scratch.join("src");
        let limits = self.limits;
        let unpack_to = dest.clone();
        let (files, bytes, top) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&zip_path)
                .map_err(io_error(format!("opening {}", zip_path.display())))?;
            let (mut archive, manifest) =
                zipsafe::open_archive(io::BufReader::new(file), &limits).map_err(source_error)?;
            std::fs::create_dir(&unpack_to)
                .map_err(io_error(format!("creating {}", unpack_to.display())))?;
            zipsafe::extract_all(&mut archive, &manifest, &unpack_to).map_err(source_error)?;
            Ok::<_, BuildError>((
                manifest.entries.len(),
                manifest.total_bytes,
                manifest.common_root().map(str::to_owned),
            ))
        })
        .await
        .map_err(InfraError::from)??;

        // A zipped folder: build inside the folder, as if its contents were zipped.
        let root = match top {
            Some(folder) => dest.join(folder),
            None => dest,
        };
        log.line(format!(
            "[Container] Unpacked {files} files ({bytes} bytes) from {}/{}",
            location.bucket.as_str(),
            location.key
        ))
        .await;
        Ok(Source {
            root,
            version: info.etag.trim_matches('"').to_owned(),
            repo_url: None,
        })
    }
}

/// A hostile or broken upload is the source's fault; a disk error is the builder's.
fn source_error(e: zipsafe::ZipError) -> BuildError {
    if e.is_input_error() {
        BuildError::from(e)
    } else {
        BuildError::Unavailable(Box::new(e))
    }
}

pub(super) struct Source {
    pub(super) root: PathBuf,
    /// `CODEBUILD_RESOLVED_SOURCE_VERSION`: the zip's ETag, or the commit.
    pub(super) version: String,
    /// The clone URL of a git source.
    pub(super) repo_url: Option<String>,
}

/// Checks the commit out into `{scratch}/src`, `.git` included, as CodeBuild does.
pub(super) async fn fetch_commit(
    scratch: &Path,
    url: &str,
    commit: &CommitSha,
    log: &LogSink,
) -> Result<Source, BuildError> {
    let root = scratch.join("src");
    let shown = crate::git::redacted(url);
    if let Err(e) = crate::git::checkout(url, commit, &root).await {
        return Err(match e.reason() {
            Some(reason) => BuildError::Checkout {
                url: shown,
                commit: commit.clone(),
                reason,
            },
            None => BuildError::Unavailable(Box::new(e)),
        });
    }
    log.line(format!("[Container] Checked out {shown} at {commit}"))
        .await;
    Ok(Source {
        root,
        version: commit.to_string(),
        repo_url: Some(url.to_owned()),
    })
}

async fn write_body(path: &Path, body: ObjectBody) -> Result<(), BuildError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(io_error("creating the source download"))?;
    match body {
        ObjectBody::Bytes(bytes) => file
            .write_all(&bytes)
            .await
            .map_err(io_error("writing the source download"))?,
        ObjectBody::Stream { mut chunks, .. } => {
            while let Some(chunk) = chunks.recv().await {
                let chunk = chunk.map_err(io_error("downloading the source"))?;
                file.write_all(&chunk)
                    .await
                    .map_err(io_error("writing the source download"))?;
            }
        }
    }
    file.flush()
        .await
        .map_err(io_error("writing the source download"))
}
