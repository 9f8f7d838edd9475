//! `slipway deploy`: pack the source, create a deployment, upload, and follow it to the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_core::api_types::{CreateDeploymentRequest, DeploymentOutcome, DeploymentView};
use slipway_core::model::{DeploymentStatus, RecordedError};
use slipway_core::names::{DeploymentId, SiteName};
use tempfile::NamedTempFile;
use tokio::time::Instant;

use crate::archive::{self, Contents};
use crate::cli::{DeployArgs, WaitTimeout};
use crate::client::{ApiClient, Backoff};
use crate::output::Output;

/// The first polls come quickly, since a prebuilt deploy is often live within a second;
/// the interval then grows by half each time up to `POLL_MAX`, so a long build is polled
/// no more often than before.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0} is neither a directory nor a .zip file")]
    Source(PathBuf),
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
    #[error("deployment {id} is still {status} after {after}; follow it with: slipway logs {id} --follow")]
    StillRunning {
        id: DeploymentId,
        status: DeploymentStatus,
        after: WaitTimeout,
    },
}

impl DeployError {
    /// The outcome is already on stdout, so `--json` must not print a second document.
    pub fn outcome_printed(&self) -> bool {
        matches!(
            self,
            DeployError::Failed { .. }
                | DeployError::NotLive { .. }
                | DeployError::StillRunning { .. }
        )
    }
}

/// Whether `deploy` follows the deployment once the source is uploaded.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Return with the deployment queued.
    No,
    /// Follow it until it finishes or this long has passed.
    Until(WaitTimeout),
}

pub async fn run(args: DeployArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let contents = if args.prebuilt {
        Contents::Prebuilt
    } else {
        Contents::Source
    };
    let wait = if args.no_wait {
        Wait::No
    } else {
        Wait::Until(args.timeout)
    };
    let view = deploy(client, output, &args.site, &args.path, contents, wait).await?;
    report(output, &view, wait)
}

/// Prints the outcome (the URL, or one JSON document), then fails unless the deployment is
/// live, or queued as asked with `--no-wait`.
fn report(output: Output, view: &DeploymentView, wait: Wait) -> anyhow::Result<()> {
    let verdict = verdict(view, wait);
    output.result(&outcome(view), || match (&verdict, view.status) {
        (Ok(()), DeploymentStatus::Live) => view.url.clone(),
        (Ok(()), status) => format!("deployment {} {status} for {}", view.id, view.url),
        (Err(_), _) => String::new(),
    });
    if verdict.is_ok() && view.status != DeploymentStatus::Live {
        output.note(format!("follow it with: slipway logs {} --follow", view.id));
    }
    Ok(verdict?)
}

pub fn outcome(view: &DeploymentView) -> DeploymentOutcome {
    DeploymentOutcome {
        deployment_id: view.id,
        status: view.status,
        url: view.url.clone(),
    }
}

/// Success when the deployment is live, or still on its way when nobody waited for it;
/// otherwise the recorded error, the status it ended in, or how long it was waited for.
pub fn verdict(view: &DeploymentView, wait: Wait) -> Result<(), DeployError> {
    let id = view.id;
    match (view.status, &view.error, wait) {
        (DeploymentStatus::Live, _, _) => Ok(()),
        (status, _, Wait::No) if !status.is_terminal() => Ok(()),
        (status, _, Wait::Until(after)) if !status.is_terminal() => {
            Err(DeployError::StillRunning { id, status, after })
        }
        (_, Some(error), _) => Err(DeployError::Failed {
            id,
            error: error.clone(),
        }),
        (status, None, _) => Err(DeployError::NotLive { id, status }),
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

/// Everything up to the deployment's final status, or as far as `wait` allows; shared
/// with `slipway demo`.
pub async fn deploy(
    client: &ApiClient,
    output: Output,
    site: &SiteName,
    path: &Path,
    contents: Contents,
    wait: Wait,
) -> anyhow::Result<DeploymentView> {
    let source = pack(path, contents, output).await?;
    let prebuilt = contents == Contents::Prebuilt;
    // The API refuses a `size` over the upload limit before creating anything.
    let created = client
        .create_deployment(
            site,
            &CreateDeploymentRequest {
                prebuilt,
                size: Some(source.bytes),
            },
        )
        .await?;
    let id = created.deployment.id;
    tracing::info!(%site, deployment = %id, prebuilt, bytes = source.bytes, "deployment created");
    output.note(format!("deployment {id} created for {site}"));

    let bar = output.bytes_bar(source.bytes, "uploading");
    let progress = bar.clone();
    client
        .upload(&created.upload, &source.path, source.bytes, move |n| {
            progress.inc(n)
        })
        .await?;
    bar.finish_and_clear();
    output.note(format!("uploaded {}", human_bytes(source.bytes)));

    match wait {
        Wait::No => Ok(created.deployment),
        Wait::Until(limit) => {
            follow(client, output, site, created.deployment, !prebuilt, limit).await
        }
    }
}

/// Polls the deployment until the pipeline is done with it or `limit` has passed, showing
/// each step and, for builds, the build log as it grows. Returns the last view seen, which
/// is still in flight if time ran out.
async fn follow(
    client: &ApiClient,
    output: Output,
    site: &SiteName,
    created: DeploymentView,
    tail_logs: bool,
    limit: WaitTimeout,
) -> anyhow::Result<DeploymentView> {
    let id = created.id;
    let deadline = Instant::now() + limit.duration();
    let steps = output.spinner("checking the deployment");
    let mut last = created;
    let mut shown: Option<DeploymentStatus> = None;
    let mut after = 0;
    let mut every = POLL_FIRST;
    let result = loop {
        let polled = Backoff::POLLING.retry("get deployment", || client.get_deployment(site, &id));
        let view = match tokio::time::timeout_at(deadline, polled).await {
            Err(_elapsed) => break Ok(last),
            Ok(Err(err)) => break Err(err.into()),
            Ok(Ok(view)) => view,
        };
        let status = view.status;
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
            let read = Backoff::POLLING.retry("get logs", || client.logs(&id, after));
            match tokio::time::timeout_at(deadline, read).await {
                Err(_elapsed) => break Ok(view),
                Ok(Err(err)) => break Err(err.into()),
                Ok(Ok(logs)) => {
                    for line in &logs.lines {
                        steps.line(&line.line);
                        after = after.max(line.seq);
                    }
                }
            }
        }
        if status.is_terminal() {
            steps.step(step_message(status));
            break Ok(view);
        }
        last = view;
        let next = Instant::now() + every;
        if next > deadline {
            break Ok(last);
        }
        every = next_poll(every);
        tokio::time::sleep_until(next).await;
    };
    steps.finish();
    result
}

fn next_poll(every: Duration) -> Duration {
    (every * 3 / 2).min(POLL_MAX)
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
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use slipway_core::api_types::CreateDeploymentResponse;
    use slipway_core::ports::UploadTarget;

    use super::*;
    use crate::client::Endpoint;
    use slipway_testkit::fake_api::{self, FakeApi, Request};

    /// An API that creates deployment `id` and accepts its upload, answering polls with
    /// `poll(n)` for the n-th poll.
    async fn api(
        id: DeploymentId,
        poll: impl Fn(u32) -> (&'static str, String) + Send + 'static,
    ) -> FakeApi {
        let polls = Arc::new(AtomicU32::new(0));
        FakeApi::start(
            move |req: &Request| match (req.method.as_str(), req.path.as_str()) {
                ("POST", "/sites/docs/deployments") => {
                    let created = CreateDeploymentResponse {
                        deployment: fake_api::view(id, DeploymentStatus::Queued),
                        upload: UploadTarget {
                            method: "PUT".to_owned(),
                            url: format!("{}/upload", req.origin),
                            headers: BTreeMap::new(),
                            max_bytes: 1 << 20,
                        },
                    };
                    ("201 Created", serde_json::to_string(&created).unwrap())
                }
                ("PUT", "/upload") => ("200 OK", "{}".to_owned()),
                ("GET", path) if path == format!("/sites/docs/deployments/{id}") => {
                    poll(polls.fetch_add(1, Ordering::SeqCst))
                }
                _ => (
                    "404 Not Found",
                    r#"{"error":{"code":"not_found","message":"no route"}}"#.to_owned(),
                ),
            },
        )
        .await
    }

    fn site_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>").unwrap();
        dir
    }

    fn polled(view: DeploymentView) -> (&'static str, String) {
        ("200 OK", serde_json::to_string(&view).unwrap())
    }

    async fn run_deploy(api: &FakeApi, dir: &Path, wait: Wait) -> anyhow::Result<DeploymentView> {
        let client = ApiClient::new(Endpoint::parse(&api.base).unwrap(), None).unwrap();
        let site = SiteName::parse("docs").unwrap();
        deploy(
            &client,
            Output::new(true),
            &site,
            dir,
            Contents::Prebuilt,
            wait,
        )
        .await
    }

    #[tokio::test]
    async fn a_deployment_stuck_in_flight_times_out_with_a_way_to_follow_it() {
        let id = DeploymentId::generate();
        let api = api(id, move |_| {
            polled(fake_api::view(id, DeploymentStatus::Publishing))
        })
        .await;
        let dir = site_dir();
        let limit: WaitTimeout = "1s".parse().unwrap();
        let started = std::time::Instant::now();
        let view = run_deploy(&api, dir.path(), Wait::Until(limit))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(view.status, DeploymentStatus::Publishing);
        let err = verdict(&view, Wait::Until(limit)).unwrap_err();
        assert!(err.outcome_printed());
        assert_eq!(
            err.to_string(),
            format!("deployment {id} is still publishing after 1s; follow it with: slipway logs {id} --follow")
        );
        assert!(api.requests().len() > 2, "{:?}", api.requests());
    }

    #[tokio::test]
    async fn no_wait_returns_the_queued_deployment_without_polling() {
        let id = DeploymentId::generate();
        let api = api(id, move |_| {
            polled(fake_api::view(id, DeploymentStatus::Live))
        })
        .await;
        let dir = site_dir();
        let view = run_deploy(&api, dir.path(), Wait::No).await.unwrap();
        assert_eq!(view.status, DeploymentStatus::Queued);
        verdict(&view, Wait::No).unwrap();
        assert_eq!(
            serde_json::to_value(outcome(&view)).unwrap()["status"],
            "queued"
        );
        assert_eq!(
            api.requests(),
            ["POST /sites/docs/deployments", "PUT /upload"]
        );
    }

    #[tokio::test]
    async fn polling_rides_out_a_gateway_error() {
        let id = DeploymentId::generate();
        let api = api(id, move |n| match n {
            0 => (
                "503 Service Unavailable",
                "<html>restarting</html>".to_owned(),
            ),
            1 => ("504 Gateway Timeout", String::new()),
            _ => polled(fake_api::view(id, DeploymentStatus::Live)),
        })
        .await;
        let dir = site_dir();
        let limit = WaitTimeout::DEFAULT;
        let view = run_deploy(&api, dir.path(), Wait::Until(limit))
            .await
            .unwrap();
        assert_eq!(view.status, DeploymentStatus::Live);
        verdict(&view, Wait::Until(limit)).unwrap();
    }

    #[tokio::test]
    async fn a_client_error_while_polling_fails_at_once() {
        let id = DeploymentId::generate();
        let api = api(id, |_| {
            (
                "403 Forbidden",
                r#"{"error":{"code":"forbidden","message":"bad token"}}"#.to_owned(),
            )
        })
        .await;
        let dir = site_dir();
        let err = run_deploy(&api, dir.path(), Wait::Until(WaitTimeout::DEFAULT))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bad token"), "{err:#}");
        assert_eq!(api.requests().len(), 3, "{:?}", api.requests());
    }

    #[test]
    fn finished_deployments_are_judged_by_status_and_error() {
        let id = DeploymentId::generate();
        let wait = Wait::Until(WaitTimeout::DEFAULT);
        verdict(&fake_api::view(id, DeploymentStatus::Live), wait).unwrap();
        let mut failed = fake_api::view(id, DeploymentStatus::Failed);
        failed.error = Some(RecordedError {
            name: "BuildFailed".to_owned(),
            cause: "exit 1".to_owned(),
        });
        for wait in [wait, Wait::No] {
            assert_eq!(
                verdict(&failed, wait).unwrap_err().to_string(),
                format!("deployment {id} failed: BuildFailed: exit 1")
            );
        }
        assert!(matches!(
            verdict(&fake_api::view(id, DeploymentStatus::Superseded), wait),
            Err(DeployError::NotLive {
                status: DeploymentStatus::Superseded,
                ..
            })
        ));
    }

    #[test]
    fn polls_start_quick_and_slow_down_to_the_cap() {
        let intervals: Vec<Duration> =
            std::iter::successors(Some(POLL_FIRST), |every| Some(next_poll(*every)))
                .take(20)
                .collect();
        // Five polls within the first half second: a quick deploy is reported promptly.
        let first_five: Duration = intervals[..5].iter().sum();
        assert!(first_five < Duration::from_millis(500), "{intervals:?}");
        assert!(intervals.windows(2).all(|w| w[0] <= w[1]), "{intervals:?}");
        assert_eq!(intervals[19], POLL_MAX);
    }

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
