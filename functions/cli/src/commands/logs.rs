//! `slipway logs ID [--follow]`.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use slipway_core::api_types::LogsResponse;
use slipway_core::model::{DeploymentStatus, RecordedError};
use slipway_core::names::DeploymentId;

use crate::cli::LogsArgs;
use crate::client::{ApiClient, Backoff, ClientError};
use crate::output::Output;

const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// What `logs --json` prints: the API's logs response, plus the recorded error of a failed
/// deployment (most failures outside a build log nothing).
#[derive(Debug, Serialize)]
struct LogsReport {
    #[serde(flatten)]
    logs: LogsResponse,
    error: Option<RecordedError>,
}

pub async fn run(args: LogsArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let report = gather(client, output, &args.id, args.follow).await?;
    if output.is_json() {
        output.result(&report, String::new);
    } else {
        let logs = &report.logs;
        let mut message = format!("deployment {} is {}", logs.deployment_id, logs.status);
        if let Some(error) = &report.error {
            message.push_str(&format!(": {}: {}", error.name, error.cause));
        }
        output.note(message);
    }
    Ok(())
}

/// Reads the log (to the end of the deployment with `follow`), printing lines as they
/// arrive, then the error of a failed deployment. Once the first read has shown the API is
/// there, a follower rides out transient failures instead of giving up.
async fn gather(
    client: &ApiClient,
    output: Output,
    id: &DeploymentId,
    follow: bool,
) -> Result<LogsReport, ClientError> {
    let mut logs = client.logs(id, 0).await?;
    print_lines(output, &logs.lines);
    if follow && !logs.status.is_terminal() {
        loop {
            // The status is terminal: read once more, for lines written just before it moved.
            let ended = logs.status.is_terminal();
            if !ended {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            let after = logs.lines.last().map_or(0, |line| line.seq);
            let next = Backoff::POLLING
                .retry("get logs", || client.logs(id, after))
                .await?;
            print_lines(output, &next.lines);
            logs.lines.extend(next.lines);
            logs.status = next.status;
            if ended {
                break;
            }
        }
    }
    let error = if logs.status == DeploymentStatus::Failed {
        let view = retrying(follow, || client.find_deployment(id)).await?;
        view.error
    } else {
        None
    };
    Ok(LogsReport { logs, error })
}

async fn retrying<T, F, Fut>(retry: bool, mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    if retry {
        Backoff::POLLING.retry("get deployment", call).await
    } else {
        call().await
    }
}

/// Lines go out as they arrive; in JSON mode they are printed once, in the final document.
fn print_lines(output: Output, lines: &[slipway_core::ports::LogLine]) {
    if !output.is_json() {
        for line in lines {
            println!("{}", line.line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use slipway_core::ports::LogLine;

    use super::*;
    use crate::client::Endpoint;
    use slipway_testkit::fake_api::{self, FakeApi};

    fn logs_body(id: DeploymentId, status: DeploymentStatus, seqs: &[u64]) -> String {
        let lines = seqs
            .iter()
            .map(|&seq| LogLine {
                seq,
                at: time::OffsetDateTime::UNIX_EPOCH,
                line: format!("line {seq}"),
            })
            .collect();
        serde_json::to_string(&LogsResponse {
            deployment_id: id,
            status,
            lines,
        })
        .unwrap()
    }

    fn failed_view(id: DeploymentId) -> String {
        let mut view = fake_api::view(id, DeploymentStatus::Failed);
        view.error = Some(RecordedError {
            name: "SourceInvalid".to_owned(),
            cause: "the upload is not a zip".to_owned(),
        });
        serde_json::to_string(&view).unwrap()
    }

    #[tokio::test]
    async fn a_failed_deployment_comes_with_its_recorded_error() {
        let id = DeploymentId::generate();
        let api = FakeApi::start(move |req| {
            if req.path.starts_with(&format!("/deployments/{id}/logs")) {
                ("200 OK", logs_body(id, DeploymentStatus::Failed, &[]))
            } else if req.path == format!("/deployments/{id}") {
                ("200 OK", failed_view(id))
            } else {
                (
                    "404 Not Found",
                    r#"{"error":{"code":"not_found","message":"x"}}"#.into(),
                )
            }
        })
        .await;
        let client = ApiClient::new(Endpoint::parse(&api.base).unwrap(), None).unwrap();
        let report = gather(&client, Output::new(true), &id, false)
            .await
            .unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["deployment_id"], id.to_string());
        assert_eq!(json["status"], "failed");
        assert_eq!(json["lines"], serde_json::json!([]));
        assert_eq!(
            json["error"],
            serde_json::json!({"name": "SourceInvalid", "cause": "the upload is not a zip"})
        );
    }

    #[tokio::test]
    async fn a_live_deployment_has_no_error_and_no_extra_request() {
        let id = DeploymentId::generate();
        let api =
            FakeApi::start(move |_| ("200 OK", logs_body(id, DeploymentStatus::Live, &[1, 2])))
                .await;
        let client = ApiClient::new(Endpoint::parse(&api.base).unwrap(), None).unwrap();
        let report = gather(&client, Output::new(true), &id, false)
            .await
            .unwrap();
        assert_eq!(report.logs.lines.len(), 2);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["error"], serde_json::Value::Null);
        assert_eq!(
            api.requests(),
            [format!("GET /deployments/{id}/logs?after=0")]
        );
    }

    #[tokio::test]
    async fn following_rides_out_a_gateway_error() {
        let id = DeploymentId::generate();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let api = FakeApi::start(move |req| {
            if req.path == format!("/deployments/{id}") {
                return ("200 OK", failed_view(id));
            }
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => ("200 OK", logs_body(id, DeploymentStatus::Building, &[1])),
                1 => ("503 Service Unavailable", String::new()),
                2 => ("200 OK", logs_body(id, DeploymentStatus::Failed, &[2])),
                _ => ("200 OK", logs_body(id, DeploymentStatus::Failed, &[])),
            }
        })
        .await;
        let client = ApiClient::new(Endpoint::parse(&api.base).unwrap(), None).unwrap();
        let report = gather(&client, Output::new(true), &id, true).await.unwrap();
        let seqs: Vec<u64> = report.logs.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(report.logs.status, DeploymentStatus::Failed);
        assert_eq!(report.error.unwrap().name, "SourceInvalid");
        assert!(api
            .requests()
            .contains(&format!("GET /deployments/{id}/logs?after=1")));
    }

    #[tokio::test]
    async fn without_follow_a_gateway_error_fails_at_once() {
        let id = DeploymentId::generate();
        let api = FakeApi::start(|_| ("502 Bad Gateway", String::new())).await;
        let client = ApiClient::new(Endpoint::parse(&api.base).unwrap(), None).unwrap();
        let err = gather(&client, Output::new(true), &id, false)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert_eq!(api.requests().len(), 1);
    }
}
