//! Housekeeping: what no deploy triggers, with the very `slipway_core::housekeeping` code
//! `slipway dev` runs.
//! - The schedule's events sweep every site ([`housekeeping::sweep`]): a deployment still
//!   queued past the upload window fails as `UploadExpired`, one still building or publishing
//!   past any deploy's length as `Interrupted`.
//! - An execution of deploy-site that failed, timed out or was aborted fails the deployment it
//!   left in flight ([`housekeeping::fail_if_in_flight`]), with the execution's own error when
//!   it names one. Usually the execution's MarkFailed ran already; then nothing changes.
//!
//! Events this function cannot act on are logged and answered with success: an error would
//! only make Lambda retry them. Store failures are errors, which Lambda's asynchronous
//! invocation retries; the next sweep covers whatever still failed.

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::housekeeping::{self, ExecutionEnd, Swept};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::steps::MarkFailedDeps;
use slipway_lambda::{run_step, step_span, StepFailure};
use time::OffsetDateTime;

use crate::event::{ExecutionStatusChange, HousekeepingEvent, EXECUTION_STATUS_CHANGE, SCHEDULED};

/// What became of an event; the function's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HousekeepingReport {
    /// A scheduled sweep, with the deployments it failed.
    Swept(Swept),
    /// An execution ended; `recorded` is false when its deployment had finished already.
    ExecutionEnded {
        deployment_id: DeploymentId,
        execution: String,
        recorded: bool,
    },
    Ignored {
        reason: String,
    },
}

/// The fields of a deploy-site execution's input this function needs.
#[derive(Deserialize)]
struct ExecutionInput {
    site: SiteName,
    deployment_id: DeploymentId,
}

pub async fn function_handler(
    deps: &MarkFailedDeps,
    event: LambdaEvent<HousekeepingEvent>,
) -> Result<HousekeepingReport, StepFailure> {
    let event = event.payload;
    match event.detail_type.as_str() {
        SCHEDULED => {
            let span = tracing::info_span!("step", step = "housekeeping");
            let now = OffsetDateTime::now_utc();
            let swept = run_step(span, housekeeping::sweep(deps, now)).await?;
            Ok(HousekeepingReport::Swept(swept))
        }
        EXECUTION_STATUS_CHANGE => execution_ended(deps, event.detail).await,
        other => Ok(ignored(format!(
            "a {other:?} event from {:?} is neither the schedule's nor an execution's",
            event.source
        ))),
    }
}

async fn execution_ended(
    deps: &MarkFailedDeps,
    detail: Value,
) -> Result<HousekeepingReport, StepFailure> {
    let change: ExecutionStatusChange = match serde_json::from_value(detail) {
        Ok(change) => change,
        Err(e) => return Ok(ignored(format!("the execution event is malformed: {e}"))),
    };
    let Some(end) = ExecutionEnd::parse(&change.status) else {
        return Ok(ignored(format!(
            "execution {} is {}: nothing to record",
            change.name, change.status
        )));
    };
    let input = change
        .input
        .as_deref()
        .and_then(|raw| serde_json::from_str::<ExecutionInput>(raw).ok());
    let Some(input) = input else {
        return Ok(ignored(format!(
            "execution {}'s input names no deployment",
            change.name
        )));
    };
    let error = end.error(
        &change.name,
        change.error.as_deref(),
        change.cause.as_deref(),
    );
    let span = step_span("housekeeping", &input.site, &input.deployment_id);
    let failing = housekeeping::fail_if_in_flight(deps, &input.site, &input.deployment_id, error);
    let recorded = run_step(span, failing).await?;
    tracing::info!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        execution = %change.name,
        status = end.as_str(),
        recorded,
        "execution ended"
    );
    Ok(HousekeepingReport::ExecutionEnded {
        deployment_id: input.deployment_id,
        execution: change.name,
        recorded,
    })
}

fn ignored(reason: String) -> HousekeepingReport {
    tracing::warn!(%reason, "event ignored");
    HousekeepingReport::Ignored { reason }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use slipway_core::housekeeping::INTERRUPTED;
    use slipway_core::model::Bucket;
    use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation, RecordedError};
    use slipway_core::ports::{DeployRequest, StateStore};
    use slipway_core::steps::{self, CaughtError, MarkFailedInput, PrepareInput};
    use slipway_core::trigger::execution_name;
    use slipway_testkit::embedded::{invocation, zip_of, Embedded};
    use time::Duration;

    use super::*;

    fn scheduled() -> LambdaEvent<HousekeepingEvent> {
        invocation(
            serde_json::from_str(include_str!("fixtures/aws-docs-scheduled-event.json")).unwrap(),
        )
    }

    /// Step Functions' event for `deployment`'s execution, which ended with `status`.
    fn ended(
        deployment: &Deployment,
        status: &str,
        error: Option<&str>,
    ) -> LambdaEvent<HousekeepingEvent> {
        let input = serde_json::to_string(&DeployRequest::for_deployment(deployment)).unwrap();
        let name = execution_name(&deployment.id);
        invocation(event_with(json!({
            "executionArn": format!("arn:aws:states:us-east-1:111122223333:execution:deploy-site:{name}"),
            "stateMachineArn": "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site",
            "name": name,
            "status": status,
            "startDate": 1_700_000_000_000_u64,
            "stopDate": 1_700_000_600_000_u64,
            "input": input,
            "inputDetails": { "included": true },
            "output": null,
            "error": error,
            "cause": null,
        })))
    }

    fn event_with(detail: Value) -> HousekeepingEvent {
        serde_json::from_value(json!({
            "version": "0",
            "id": "315c1398-40ff-a850-213b-158f73e60175",
            "detail-type": EXECUTION_STATUS_CHANGE,
            "source": "aws.states",
            "account": "111122223333",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }))
        .unwrap()
    }

    /// A queued deployment of an upload, created `age` ago; its zip is stored when `arrived`.
    async fn created_ago(
        stores: &Embedded,
        site: &SiteName,
        age: Duration,
        arrived: bool,
    ) -> Deployment {
        let id = DeploymentId::generate();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        };
        if arrived {
            stores
                .put_source(&source.key, zip_of(&[("index.html", b"hi")]))
                .await;
        }
        let created = OffsetDateTime::now_utc() - age;
        let deployment = Deployment::queued(id, site.clone(), source, true, created);
        stores.state.create_deployment(&deployment).await.unwrap();
        deployment
    }

    /// A deployment created `age` ago that Prepare moved to building.
    async fn building_since(stores: &Embedded, site: &SiteName, age: Duration) -> Deployment {
        let deployment = created_ago(stores, site, age, true).await;
        let input = PrepareInput {
            site: site.clone(),
            deployment_id: deployment.id,
            source: deployment.source.clone(),
            prebuilt: true,
        };
        steps::prepare(&stores.tasks.prepare, input).await.unwrap();
        deployment
    }

    async fn stored(stores: &Embedded, deployment: &Deployment) -> Deployment {
        stores
            .state
            .get_deployment(&deployment.site, &deployment.id)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_sweep_fails_what_no_execution_will_finish_and_nothing_else() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let abandoned = created_ago(&stores, &site, Duration::minutes(20), false).await;
        let awaited = created_ago(&stores, &site, Duration::minutes(2), false).await;
        let stalled = building_since(&stores, &site, Duration::hours(25)).await;
        let building = building_since(&stores, &site, Duration::hours(2)).await;
        let live = stores.deployed(&site, &[("index.html", b"live")]).await;

        let report = function_handler(&stores.tasks.mark_failed, scheduled())
            .await
            .unwrap();

        assert_eq!(
            report,
            HousekeepingReport::Swept(Swept {
                expired: vec![abandoned.id],
                interrupted: vec![stalled.id],
            })
        );
        let expired = stored(&stores, &abandoned).await;
        assert_eq!(expired.status, DeploymentStatus::Failed);
        assert_eq!(expired.error.unwrap().name, "UploadExpired");
        let interrupted = stored(&stores, &stalled).await;
        assert_eq!(interrupted.status, DeploymentStatus::Failed);
        let error = interrupted.error.unwrap();
        assert_eq!(error.name, INTERRUPTED);
        assert!(
            error
                .cause
                .starts_with("still building 25 hours after it was created"),
            "{}",
            error.cause
        );
        assert_eq!(
            stored(&stores, &awaited).await.status,
            DeploymentStatus::Queued
        );
        assert_eq!(
            stored(&stores, &building).await.status,
            DeploymentStatus::Building
        );
        assert_eq!(stored(&stores, &live).await.status, DeploymentStatus::Live);

        // A second sweep finds nothing left to do.
        let again = function_handler(&stores.tasks.mark_failed, scheduled())
            .await
            .unwrap();
        assert_eq!(again, HousekeepingReport::Swept(Swept::default()));
    }

    #[tokio::test]
    async fn an_execution_that_timed_out_fails_the_deployment_it_left_building() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let deployment = building_since(&stores, &site, Duration::minutes(3)).await;

        let report = function_handler(
            &stores.tasks.mark_failed,
            ended(&deployment, "TIMED_OUT", Some("States.Timeout")),
        )
        .await
        .unwrap();

        assert_eq!(
            report,
            HousekeepingReport::ExecutionEnded {
                deployment_id: deployment.id,
                execution: execution_name(&deployment.id),
                recorded: true,
            }
        );
        let failed = stored(&stores, &deployment).await;
        assert_eq!(failed.status, DeploymentStatus::Failed);
        let error = failed.error.unwrap();
        assert_eq!(error.name, "States.Timeout");
        assert!(error.cause.contains("timed out"), "{}", error.cause);
    }

    #[tokio::test]
    async fn an_aborted_execution_fails_its_deployment_and_removes_the_partial_files() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let deployment = stores.published(&site, &[("index.html", b"half")]).await;
        let prefix = format!("docs/{}/", deployment.id);
        assert!(!stores.hosted_keys(&prefix).await.is_empty());

        let report = function_handler(
            &stores.tasks.mark_failed,
            ended(&deployment, "ABORTED", None),
        )
        .await
        .unwrap();

        assert!(matches!(
            report,
            HousekeepingReport::ExecutionEnded { recorded: true, .. }
        ));
        assert!(stores.hosted_keys(&prefix).await.is_empty());
        let failed = stored(&stores, &deployment).await;
        assert_eq!(failed.status, DeploymentStatus::Failed);
        assert_eq!(failed.error.unwrap().name, INTERRUPTED);
    }

    #[tokio::test]
    async fn what_markfailed_recorded_and_finished_deployments_stay_as_they_were() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        // The usual failure: the Catch ran MarkFailed, then the execution failed.
        let caught = building_since(&stores, &site, Duration::minutes(3)).await;
        let input = MarkFailedInput {
            site: site.clone(),
            deployment_id: caught.id,
            error: CaughtError {
                error: "BuildConfigInvalid".into(),
                cause: "no build command".into(),
            },
        };
        steps::mark_failed(&stores.tasks.mark_failed, input)
            .await
            .unwrap();
        let live = stores.deployed(&site, &[("index.html", b"live")]).await;

        for deployment in [&caught, &live] {
            let before = stored(&stores, deployment).await;
            let report = function_handler(
                &stores.tasks.mark_failed,
                ended(deployment, "FAILED", Some("States.Runtime")),
            )
            .await
            .unwrap();
            assert!(
                matches!(
                    report,
                    HousekeepingReport::ExecutionEnded {
                        recorded: false,
                        ..
                    }
                ),
                "{report:?}"
            );
            assert_eq!(stored(&stores, deployment).await, before);
        }
        assert_eq!(
            stored(&stores, &caught).await.error,
            Some(RecordedError {
                name: "BuildConfigInvalid".into(),
                cause: "no build command".into(),
            })
        );
        assert_eq!(
            stores.hosted_keys(&format!("docs/{}/", live.id)).await,
            [format!("docs/{}/index.html", live.id)]
        );
    }

    #[tokio::test]
    async fn events_with_nothing_to_do_are_ignored() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let deployment = building_since(&stores, &site, Duration::minutes(3)).await;
        let gone = {
            let mut other = deployment.clone();
            other.id = DeploymentId::generate();
            other
        };
        let mut no_input = ended(&deployment, "ABORTED", None);
        no_input.payload.detail["input"] = Value::Null;
        let mut foreign_input = ended(&deployment, "ABORTED", None);
        foreign_input.payload.detail["input"] = json!("{\"hello\":\"world\"}");
        let mut malformed = ended(&deployment, "ABORTED", None);
        malformed.payload.detail = json!({ "status": "ABORTED" });
        let mut other_source: HousekeepingEvent =
            serde_json::from_str(include_str!("fixtures/aws-docs-scheduled-event.json")).unwrap();
        other_source.detail_type = "Object Created".into();

        for event in [
            ended(&deployment, "SUCCEEDED", None),
            ended(&deployment, "RUNNING", None),
            no_input,
            foreign_input,
            malformed,
            invocation(other_source),
        ] {
            let report = function_handler(&stores.tasks.mark_failed, event)
                .await
                .unwrap();
            assert!(
                matches!(report, HousekeepingReport::Ignored { .. }),
                "{report:?}"
            );
        }
        // An unknown deployment has nothing to record.
        let report = function_handler(&stores.tasks.mark_failed, ended(&gone, "ABORTED", None))
            .await
            .unwrap();
        assert!(
            matches!(
                report,
                HousekeepingReport::ExecutionEnded {
                    recorded: false,
                    ..
                }
            ),
            "{report:?}"
        );
        assert_eq!(
            stored(&stores, &deployment).await.status,
            DeploymentStatus::Building
        );
    }

    #[test]
    fn the_report_says_what_happened() {
        let id = DeploymentId::generate();
        let report = HousekeepingReport::Swept(Swept {
            expired: vec![id],
            interrupted: vec![],
        });
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({ "outcome": "swept", "expired": [id.to_string()], "interrupted": [] })
        );
    }
}
