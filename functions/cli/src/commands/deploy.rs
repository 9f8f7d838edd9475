//! `slipway deploy`: pack the source, create a deployment, upload, and follow it to the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_core::api_types::{CreateDeploymentRequest, DeploymentOutcome, DeploymentView};
use slipway_core::model::{DeploymentStatus, RecordedError};
use slipway_core::names::{DeploymentId, SiteName};
use tempfile::NamedTempFile;

use crate::archive::{self, Contents};
use crate::cli::DeployArgs;
use crate::client::ApiClient;
use crate::output::Output;

const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0} is neither a directory nor a .zip file")]
    Source(PathBuf),
    #[error("the source zip is {bytes} bytes; the upload target takes at most {max}")]
    TooLarge {
        id: DeploymentId,
        bytes: u64,
        max: u64,
    },
    #[error("deployment {id} failed: {}: {}", error.name, error.cause)]
    Failed {
        id: DeploymentId,
        error: RecordedError,
    },
    #[error("deployment {id} ended {status}, not live")]
    NotLive {
        id: DeploymentId,
        status: DeploymentStatus,
    },
}

impl DeployError {
    /// The outcome is already on stdout, so `--json` must not print a second document.
    pub fn outcome_printed(&self) -> bool {
        matches!(
            self,
            DeployError::Failed { .. } | DeployError::NotLive { .. }
        )
    }
}

pub async fn run(args: DeployArgs, output: Output) -> anyhow::Result<()> {
    let client = super::client(args.client)?;
    let contents = if args.prebuilt {
        Contents::Prebuilt
    } else {
        Contents::Source
    };
    let view = deploy(&client, output, &args.site, &args.path, contents).await?;
    report(output, &view)
}

/// Prints the outcome (the URL, or one JSON document), then fails unless it is live.
fn report(output: Output, view: &DeploymentView) -> anyhow::Result<()> {
    let live = view.deployment.status == DeploymentStatus::Live;
    output.result(&outcome(view), || {
        if live {
            view.url.clone()
        } else {
            String::new()
        }
    });
    Ok(ensure_live(view)?)
}

pub fn outcome(view: &DeploymentView) -> DeploymentOutcome {
    DeploymentOutcome {
        deployment_id: view.deployment.id,
        status: view.deployment.status,
        url: view.url.clone(),
    }
}

/// The recorded error, or the status it ended in, unless the deployment is live.
pub fn ensure_live(view: &DeploymentView) -> Result<(), DeployError> {
    let deployment = &view.deployment;
    match (&deployment.error, deployment.status) {
        (_, DeploymentStatus::Live) => Ok(()),
        (Some(error), _) => Err(DeployError::Failed {
            id: deployment.id,
            error: error.clone(),
        }),
        (None, status) => Err(DeployError::NotLive {
            id: deployment.id,
            status,
        }),
    }
}

/// The source as a zip on disk: the user's own .zip, or a temporary one packed from a
/// directory (kept alive by the returned handle).
struct PackedSource {
    path: PathBuf,
    bytes: u64,
    _temp: Option<NamedTempFile>,
}

async fn pack(path: &Path, contents: Contents, output: Output) -> anyhow::Result<PackedSource> {
    if path.is_dir() {
        let dir = path.to_owned();
        let zipped =
            tokio::task::spawn_blocking(move || archive::zip_dir(&dir, contents)).await??;
        output.note(format!(
            "packed {} file{} from {} ({}, {} zipped)",
            zipped.entries,
            if zipped.entries == 1 { "" } else { "s" },
            path.display(),
            human_bytes(zipped.content_bytes),
            human_bytes(zipped.zip_bytes)
        ));
        return Ok(PackedSource {
            path: zipped.file.path().to_owned(),
            bytes: zipped.zip_bytes,
            _temp: Some(zipped.file),
        });
    }
    let is_zip = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zip"));
    if !is_zip || !path.is_file() {
        return Err(DeployError::Source(path.to_owned()).into());
    }
    let bytes = tokio::fs::metadata(path).await?.len();
    Ok(PackedSource {
        path: path.to_owned(),
        bytes,
        _temp: None,
    })
}

/// Everything up to the deployment's final status; shared with `slipway demo`.
pub async fn deploy(
    client: &ApiClient,
    output: Output,
    site: &SiteName,
    path: &Path,
    contents: Contents,
) -> anyhow::Result<DeploymentView> {
    let source = pack(path, contents, output).await?;
    let prebuilt = contents == Contents::Prebuilt;
    let created = client
        .create_deployment(
            site,
            &CreateDeploymentRequest {
                prebuilt,
                size: Some(source.bytes),
            },
        )
        .await?;
    let id = created.deployment.deployment.id;
    tracing::info!(%site, deployment = %id, prebuilt, bytes = source.bytes, "deployment created");
    output.note(format!("deployment {id} created for {site}"));

    if source.bytes > created.upload.max_bytes {
        return Err(DeployError::TooLarge {
            id,
            bytes: source.bytes,
            max: created.upload.max_bytes,
        }
        .into());
    }
    let bar = output.bytes_bar(source.bytes, "uploading");
    let progress = bar.clone();
    client
        .upload(&created.upload, &source.path, source.bytes, move |n| {
            progress.inc(n)
        })
        .await?;
    bar.finish_and_clear();
    output.note(format!("uploaded {}", human_bytes(source.bytes)));

    follow(client, output, site, id, !prebuilt).await
}

/// Polls the deployment until the pipeline is done with it, showing each step and, for
/// builds, the build log as it grows.
async fn follow(
    client: &ApiClient,
    output: Output,
    site: &SiteName,
    id: DeploymentId,
    tail_logs: bool,
) -> anyhow::Result<DeploymentView> {
    let steps = output.spinner("checking the deployment");
    let mut shown: Option<DeploymentStatus> = None;
    let mut after = 0;
    let result = loop {
        let view = match client.get_deployment(site, &id).await {
            Ok(view) => view,
            Err(err) => break Err(err.into()),
        };
        let status = view.deployment.status;
        if shown != Some(status) {
            tracing::debug!(deployment = %id, %status, "deployment moved");
            shown = Some(status);
            // A terminal status is announced below, after the log lines that came before it.
            if !status.is_terminal() {
                steps.step(step_message(status));
            }
        }
        // Read after the status, so a terminal status comes with every line logged before it.
        if tail_logs && status != DeploymentStatus::Queued {
            match client.logs(&id, after).await {
                Ok(logs) => {
                    for line in &logs.lines {
                        steps.line(&line.line);
                        after = after.max(line.seq);
                    }
                }
                Err(err) => break Err(err.into()),
            }
        }
        if status.is_terminal() {
            steps.step(step_message(status));
            break Ok(view);
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    steps.finish();
    result
}

fn step_message(status: DeploymentStatus) -> String {
    match status {
        DeploymentStatus::Queued => "queued: waiting for the pipeline".to_owned(),
        DeploymentStatus::Building => "building".to_owned(),
        DeploymentStatus::Publishing => "publishing".to_owned(),
        other => other.to_string(),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
    }

    #[tokio::test]
    async fn a_path_that_is_neither_directory_nor_zip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("site.tar");
        std::fs::write(&text, b"not a zip").unwrap();
        let missing = dir.path().join("missing.zip");
        for path in [text, missing] {
            let err = pack(&path, Contents::Source, Output::new(true))
                .await
                .err()
                .unwrap();
            assert!(
                matches!(err.downcast_ref(), Some(DeployError::Source(p)) if *p == path),
                "{err:#}"
            );
        }
    }
}
