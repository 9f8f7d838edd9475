//! Publish: streams the artifact's files into `{site}/{deployment}/` in the hosting bucket,
//! each with its Content-Type and Cache-Control. One blocking reader decompresses entries
//! in order, fetching the zip's next chunk while it inflates the current one; a queue feeds a
//! bounded number of concurrent writes. The queue is deep in files (small files never leave
//! the writers idle) and bounded in bytes (whole files queued or being written stay under
//! [`BUFFERED_BYTES`]), so memory stays flat whatever the artifact's size and the sizes of its
//! files. Re-running it writes the same keys again, so a retry after a crash is safe.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{blocking_failed, ArtifactRef, StepError};
use crate::model::Bucket;
use crate::model::DeploymentStatus;
use crate::names::{DeploymentId, SiteName};
use crate::ports::{DeploymentPatch, ObjectBody, ObjectMeta, ObjectStore, StateStore};
use crate::site::build_plan::{Framework, CONFIG_FILE};
use crate::site::edge::deployment_prefix;
use crate::site::headers::{cache_control_for_build, content_type_for};
use crate::site::ranged::RangedReader;
use crate::site::zipsafe::{open_archive, read_entry, stream_entry, ZipError, ZipLimits};

/// Files up to this size travel whole; larger ones stream in chunks of this size.
const INLINE_MAX: u64 = 4 * 1024 * 1024;
const STREAM_CHUNK: usize = 1024 * 1024;
/// The artifact is read in ranges this large, with this many more requested ahead of the
/// reader (S3 serves ranges best side by side: 16 MiB in flight, about 20 MiB at most held).
/// The first [`PREFETCH`] are requested with the zip's directory, so the first files are
/// ready to write as soon as the directory is checked, one round trip sooner.
const READ_CHUNK: u64 = 1024 * 1024;
const READ_AHEAD: usize = 16;
const PREFETCH: usize = 2;
/// The bytes of whole files read but not yet written, at most (≥ [`INLINE_MAX`]).
const BUFFERED_BYTES: u32 = 64 * 1024 * 1024;
/// Files queued ahead of the writes: a 1 MiB chunk of a zip holds hundreds of small files.
const QUEUED_FILES: usize = 1024;
/// Why the reader stopped early: a write failed and the queue was dropped.
#[derive(Debug, thiserror::Error)]
#[error("publishing stopped after a failed write")]
struct PublishStopped;

fn is_stop(e: &ZipError) -> bool {
    matches!(e, ZipError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<PublishStopped>()))
}

/// Files of an unbuilt upload that configure it rather than belong to the site: its
/// `slipway.toml`, and `.env` files, which would hand their secrets to anyone who asks.
fn is_configuration(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    relative == CONFIG_FILE || name == ".env" || name.starts_with(".env.")
}

/// With clean URLs the router serves `/guide` from `guide.html`; a build that wrote only
/// `guide/index.html` gets that copy too, so both layouts work.
fn clean_url_alias(relative: &str) -> Option<String> {
    let folder = relative.strip_suffix("/index.html")?;
    (!folder.is_empty()).then(|| format!("{folder}.html"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub artifact: ArtifactRef,
    /// The framework that built the artifact, when there was a build.
    #[serde(default)]
    pub framework: Option<Framework>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutput {
    pub file_count: u64,
    pub bytes: u64,
}

struct Upload {
    key: String,
    meta: ObjectMeta,
    body: ObjectBody,
    /// A whole file's share of [`BUFFERED_BYTES`], given back when its writes are done
    /// (shared by a file and its clean-URL alias).
    _buffered: Option<Arc<OwnedSemaphorePermit>>,
}

/// What Publish uses: the record, the objects, and how hard to read and write them.
#[derive(Clone)]
pub struct PublishDeps {
    pub state: Arc<dyn StateStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub zip_limits: ZipLimits,
    /// Concurrent object writes.
    pub concurrency: usize,
}

pub async fn publish(p: &PublishDeps, input: PublishInput) -> Result<PublishOutput, StepError> {
    let deployment = p
        .state
        .transition(
            &input.site,
            &input.deployment_id,
            DeploymentStatus::Publishing,
            DeploymentPatch::default(),
        )
        .await?;
    let invalid = if deployment.built {
        StepError::ArtifactInvalid
    } else {
        StepError::SourceInvalid
    };

    let location = &input.artifact.location;
    let reader = RangedReader::open(
        p.objects.clone(),
        location.bucket,
        &location.key,
        READ_CHUNK,
    )
    .await?
    .with_read_ahead(READ_AHEAD)
    .prefetching(0, PREFETCH);
    let prefix = deployment_prefix(&input.site, &input.deployment_id);
    let root = input.artifact.root.clone().unwrap_or_default();
    let built = deployment.built;
    let framework = input.framework;
    let clean_urls = deployment.routing.clean_urls;
    let limits = p.zip_limits;
    let concurrency = p.concurrency.max(1);
    let (queue, mut uploads) = mpsc::channel::<Upload>(QUEUED_FILES.max(concurrency));
    let budget = Arc::new(Semaphore::new(BUFFERED_BYTES as usize));
    let runtime = tokio::runtime::Handle::current();

    let reader_task = tokio::task::spawn_blocking(move || -> Result<(u64, u64), ZipError> {
        let (mut archive, manifest) = open_archive(reader, &limits)?;
        // Looked up once per folder page: a set keeps a site of many pages linear.
        let paths: HashSet<&str> = if clean_urls {
            manifest.entries.iter().map(|e| e.path.as_str()).collect()
        } else {
            HashSet::new()
        };
        let mut totals = (0u64, 0u64);
        for entry in &manifest.entries {
            let Some(relative) = entry.path.as_str().strip_prefix(root.as_str()) else {
                continue;
            };
            if !built && is_configuration(relative) {
                continue;
            }
            let key = format!("{prefix}{relative}");
            let meta = ObjectMeta {
                content_type: content_type_for(relative),
                cache_control: Some(cache_control_for_build(relative, framework).to_owned()),
            };
            let stopped = || ZipError::Io(io::Error::other(PublishStopped));
            if entry.size <= INLINE_MAX {
                // Reserved before inflating, so the bound holds for what is in memory.
                let share = u32::try_from(entry.size).unwrap_or(BUFFERED_BYTES);
                let buffered = runtime
                    .block_on(budget.clone().acquire_many_owned(share))
                    .map_err(|_| stopped())?;
                let buffered = Some(Arc::new(buffered));
                let bytes = Bytes::from(read_entry(&mut archive, entry)?);
                let alias = clean_urls
                    .then(|| clean_url_alias(relative))
                    .flatten()
                    .filter(|alias| !paths.contains(format!("{root}{alias}").as_str()));
                if let Some(alias) = alias {
                    let upload = Upload {
                        key: format!("{prefix}{alias}"),
                        meta: meta.clone(),
                        body: ObjectBody::Bytes(bytes.clone()),
                        _buffered: buffered.clone(),
                    };
                    queue.blocking_send(upload).map_err(|_| stopped())?;
                }
                let body = ObjectBody::Bytes(bytes);
                let upload = Upload {
                    key,
                    meta,
                    body,
                    _buffered: buffered,
                };
                queue.blocking_send(upload).map_err(|_| stopped())?;
            } else {
                let (chunks_tx, chunks) = mpsc::channel(2);
                let body = ObjectBody::Stream {
                    len: entry.size,
                    chunks,
                };
                let upload = Upload {
                    key,
                    meta,
                    body,
                    _buffered: None,
                };
                queue.blocking_send(upload).map_err(|_| stopped())?;
                stream_entry(&mut archive, entry, STREAM_CHUNK, |chunk| {
                    chunks_tx
                        .blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                        .map_err(|_| stopped())
                })?;
            }
            totals.0 += 1;
            totals.1 += entry.size;
        }
        Ok(totals)
    });

    let objects = p.objects.clone();
    let writes = futures::stream::poll_fn(|cx| uploads.poll_recv(cx))
        .map(|upload| {
            let objects = objects.clone();
            async move {
                objects
                    .put(Bucket::Hosting, &upload.key, upload.body, &upload.meta)
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await;
    // If a write failed, dropping the queue stops the reader at its next send.
    drop(uploads);
    let read = reader_task.await.map_err(blocking_failed)?;
    // A genuine reader error explains a failed write (a short stream) better than the write does.
    let (file_count, bytes) = match (read, writes) {
        (Err(zip), _) if !is_stop(&zip) => return Err(invalid(zip)),
        (_, Err(write)) => return Err(write.into()),
        (Err(zip), Ok(())) => return Err(invalid(zip)),
        (Ok(totals), Ok(())) => totals,
    };

    let patch = DeploymentPatch {
        file_count: Some(file_count),
        bytes: Some(bytes),
        ..Default::default()
    };
    p.state
        .transition(
            &input.site,
            &input.deployment_id,
            DeploymentStatus::Publishing,
            patch,
        )
        .await?;
    tracing::info!(site = %input.site, deployment_id = %input.deployment_id, file_count, bytes, "published");
    Ok(PublishOutput { file_count, bytes })
}
