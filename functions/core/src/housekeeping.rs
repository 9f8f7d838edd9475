//! Work no deploy triggers: deployments created for an upload that never came, and
//! deployments left in flight by a deploy execution that ended without recording why.
//! `slipway dev` sweeps on start and every minute; on AWS the housekeeping Lambda function
//! sweeps on a schedule and handles the state machine's ended executions.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::model::{Deployment, DeploymentStatus};
use crate::names::{DeploymentId, SiteName};
use crate::ports::StateError;
use crate::steps::{mark_failed, CaughtError, MarkFailedDeps, MarkFailedInput, StepError};

/// How long an upload URL is good for (S3 presigned PUTs are signed for 15 minutes).
pub const UPLOAD_WINDOW: Duration = Duration::minutes(15);

/// Fails `queued` deployments created before `now - older_than`: their upload never
/// arrived (the client gave up, or the URL expired). Returns the ids it failed.
pub async fn expire_abandoned_uploads(
    p: &MarkFailedDeps,
    older_than: Duration,
    now: OffsetDateTime,
) -> Result<Vec<DeploymentId>, StepError> {
    let mut expired = Vec::new();
    for site in p.state.list_sites().await? {
        for deployment in p.state.list_deployments(&site.name).await? {
            if deployment.status != DeploymentStatus::Queued
                || deployment.created_at > now - older_than
            {
                continue;
            }
            // A deployment from git has nothing to upload: only its start can have been lost.
            let arrived = match deployment.source.archive() {
                Some(source) => p.objects.head(source.bucket, &source.key).await?.is_some(),
                None => true,
            };
            let cause = if arrived {
                "the source arrived but its deploy never started; deploy again"
            } else {
                "the source zip never arrived; deploy again"
            };
            let input = MarkFailedInput {
                site: deployment.site.clone(),
                deployment_id: deployment.id,
                error: CaughtError {
                    error: "UploadExpired".into(),
                    cause: cause.into(),
                },
            };
            if mark_failed(p, input).await?.recorded {
                expired.push(deployment.id);
            }
        }
    }
    if !expired.is_empty() {
        tracing::info!(
            count = expired.len(),
            "failed deployments whose upload never arrived"
        );
    }
    Ok(expired)
}

/// The error a deployment records when its run ended and nothing recorded why.
pub const INTERRUPTED: &str = "Interrupted";

/// How long after its creation a deployment may still be building or publishing before a
/// sweep records it as [`INTERRUPTED`]. A deploy on AWS cannot take that long: the upload
/// window, then Prepare, the longest build CodeBuild allows with its queue, Publish, Activate
/// and MarkFailed, each with its retries, add up to under 12 hours (tests/tests/definition.rs
/// sums them from the stack). So a deployment this old has no execution left to finish it.
pub const IN_FLIGHT_LIMIT: Duration = Duration::hours(24);

/// What one [`sweep`] failed, by rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Queued past [`UPLOAD_WINDOW`]: `UploadExpired`.
    pub expired: Vec<DeploymentId>,
    /// Building or publishing past [`IN_FLIGHT_LIMIT`]: [`INTERRUPTED`].
    pub interrupted: Vec<DeploymentId>,
}

/// One housekeeping pass: what `slipway dev` runs every minute and the housekeeping Lambda
/// function on its schedule. Each rule runs even when the other fails; the first failure is
/// returned after both.
pub async fn sweep(p: &MarkFailedDeps, now: OffsetDateTime) -> Result<Swept, StepError> {
    let expired = expire_abandoned_uploads(p, UPLOAD_WINDOW, now).await;
    let interrupted = fail_stalled_deployments(p, IN_FLIGHT_LIMIT, now).await;
    Ok(Swept {
        expired: expired?,
        interrupted: interrupted?,
    })
}

/// The deployment is still building or publishing `older_than` after it was created.
pub fn is_stalled(deployment: &Deployment, older_than: Duration, now: OffsetDateTime) -> bool {
    matches!(
        deployment.status,
        DeploymentStatus::Building | DeploymentStatus::Publishing
    ) && deployment.created_at <= now - older_than
}

/// Fails deployments still building or publishing `older_than` after they were created
/// ([`is_stalled`]) as [`INTERRUPTED`]: the execution that held them ended without its
/// MarkFailed running (it timed out, was stopped, or failed where no Catch applies), and the
/// event that reports such an end was lost or could not be handled. Returns the ids it failed.
pub async fn fail_stalled_deployments(
    p: &MarkFailedDeps,
    older_than: Duration,
    now: OffsetDateTime,
) -> Result<Vec<DeploymentId>, StepError> {
    let mut failed = Vec::new();
    for site in p.state.list_sites().await? {
        for deployment in p.state.list_deployments(&site.name).await? {
            if !is_stalled(&deployment, older_than, now) {
                continue;
            }
            let cause = format!(
                "still {} {} after it was created, longer than a deploy can run: its run ended \
                 without recording why (timed out, stopped, or its failure was lost); deploy again",
                deployment.status,
                age(now - deployment.created_at)
            );
            let input = MarkFailedInput {
                site: deployment.site.clone(),
                deployment_id: deployment.id,
                error: CaughtError {
                    error: INTERRUPTED.into(),
                    cause,
                },
            };
            if mark_failed(p, input).await?.recorded {
                failed.push(deployment.id);
            }
        }
    }
    if !failed.is_empty() {
        tracing::warn!(
            count = failed.len(),
            "failed deployments left in flight by a run that ended"
        );
    }
    Ok(failed)
}

/// An age as a person reads it: whole hours from two hours on, else whole minutes.
fn age(age: Duration) -> String {
    match age.whole_hours() {
        hours if hours >= 2 => format!("{hours} hours"),
        _ => match age.whole_minutes() {
            1 => "1 minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        },
    }
}

/// How a deploy-site execution ended without succeeding, in Step Functions' words (the
/// `status` of its "Execution Status Change" event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionEnd {
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionEnd {
    pub const ALL: [ExecutionEnd; 3] = [Self::Failed, Self::TimedOut, Self::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Aborted => "ABORTED",
        }
    }

    /// `None` for the other statuses (`RUNNING`, `SUCCEEDED`, ...): nothing to record.
    pub fn parse(status: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|end| end.as_str() == status)
    }

    /// What the deployment records: the execution's own error and cause when it names them
    /// (`States.Timeout`, the error a failure carried, or what StopExecution was given), else a
    /// name and a sentence for how it ended.
    pub fn error(self, execution: &str, error: Option<&str>, cause: Option<&str>) -> CaughtError {
        let (default_error, how) = match self {
            Self::Failed => (INTERRUPTED, "failed"),
            Self::TimedOut => ("States.Timeout", "timed out"),
            Self::Aborted => (INTERRUPTED, "was stopped"),
        };
        CaughtError {
            error: given(error).unwrap_or(default_error).to_owned(),
            cause: given(cause).map(str::to_owned).unwrap_or_else(|| {
                format!("its deploy execution {execution} {how} before the deployment finished; deploy again")
            }),
        }
    }
}

/// A deploy execution ended without succeeding: records `error` on its deployment if that is
/// still queued, building or publishing. Usually the execution's MarkFailed ran already and the
/// deployment is left as it is; so is an unknown one. Returns whether it recorded the failure.
pub async fn fail_if_in_flight(
    p: &MarkFailedDeps,
    site: &SiteName,
    deployment_id: &DeploymentId,
    error: CaughtError,
) -> Result<bool, StepError> {
    let deployment = match p.state.get_deployment(site, deployment_id).await {
        Ok(deployment) => deployment,
        Err(StateError::SiteNotFound(_) | StateError::DeploymentNotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    // Only what an execution holds before traffic reaches it; nothing else is failed here.
    if !deployment.status.is_in_flight() {
        return Ok(false);
    }
    let input = MarkFailedInput {
        site: site.clone(),
        deployment_id: *deployment_id,
        error,
    };
    Ok(mark_failed(p, input).await?.recorded)
}

/// A text an event gave, unless it is missing or blank.
fn given(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::model::Bucket;
    use crate::model::ObjectLocation;

    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn deployment(status: DeploymentStatus, created_at: OffsetDateTime) -> Deployment {
        let id = DeploymentId::generate();
        let site = SiteName::parse("docs").unwrap();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/docs/{id}.zip"),
        };
        let mut deployment = Deployment::queued(id, site, source, false, created_at);
        deployment.status = status;
        deployment
    }

    #[test]
    fn only_building_and_publishing_deployments_past_the_limit_are_stalled() {
        let created = at(1_700_000_000);
        let limit = Duration::hours(24);
        let due = created + limit;
        for status in [DeploymentStatus::Building, DeploymentStatus::Publishing] {
            let d = deployment(status, created);
            assert!(is_stalled(&d, limit, due), "{status}");
            assert!(is_stalled(&d, limit, due + Duration::days(3)), "{status}");
            assert!(
                !is_stalled(&d, limit, due - Duration::seconds(1)),
                "{status}"
            );
        }
        // Queued is the upload window's business; finished ones are never touched.
        for status in DeploymentStatus::ALL {
            if matches!(
                status,
                DeploymentStatus::Building | DeploymentStatus::Publishing
            ) {
                continue;
            }
            let d = deployment(status, created);
            assert!(!is_stalled(&d, limit, due + Duration::days(30)), "{status}");
        }
    }

    #[test]
    fn the_limits_leave_a_deploy_all_the_time_it_can_take() {
        assert!(IN_FLIGHT_LIMIT >= Duration::hours(12));
        assert!(UPLOAD_WINDOW < IN_FLIGHT_LIMIT);
    }

    #[test]
    fn execution_statuses_that_end_a_run_parse_and_the_rest_do_not() {
        for end in ExecutionEnd::ALL {
            assert_eq!(ExecutionEnd::parse(end.as_str()), Some(end));
        }
        for other in ["RUNNING", "SUCCEEDED", "PENDING_REDRIVE", "failed", ""] {
            assert_eq!(ExecutionEnd::parse(other), None, "{other}");
        }
    }

    #[test]
    fn an_ended_execution_records_its_own_error_or_says_how_it_ended() {
        let execution = "deploy-01hwv6ckq3m8d5x2r7t9y4z0ab";
        let timed_out = ExecutionEnd::TimedOut.error(execution, Some("States.Timeout"), None);
        assert_eq!(timed_out.error, "States.Timeout");
        assert_eq!(
            timed_out.cause,
            format!("its deploy execution {execution} timed out before the deployment finished; deploy again")
        );

        let stopped = ExecutionEnd::Aborted.error(execution, None, Some(" "));
        assert_eq!(stopped.error, INTERRUPTED);
        assert!(stopped.cause.contains("was stopped"), "{}", stopped.cause);

        // StopExecution may be given an error and a cause; a failure carries its own.
        let told = ExecutionEnd::Aborted.error(execution, Some("Cancelled"), Some("by ops"));
        assert_eq!(
            (told.error.as_str(), told.cause.as_str()),
            ("Cancelled", "by ops")
        );
        let failed =
            ExecutionEnd::Failed.error(execution, Some("States.Runtime"), Some("bad path"));
        assert_eq!(failed.error, "States.Runtime");
        assert_eq!(failed.cause, "bad path");
        let bare = ExecutionEnd::Failed.error(execution, Some(""), None);
        assert_eq!(bare.error, INTERRUPTED);
        assert!(bare.cause.contains("failed before"), "{}", bare.cause);
    }

    #[test]
    fn ages_read_in_minutes_then_hours() {
        assert_eq!(age(Duration::seconds(59)), "0 minutes");
        assert_eq!(age(Duration::seconds(61)), "1 minute");
        assert_eq!(age(Duration::minutes(119)), "119 minutes");
        assert_eq!(age(Duration::hours(2)), "2 hours");
        assert_eq!(age(Duration::hours(30) + Duration::minutes(59)), "30 hours");
    }
}
