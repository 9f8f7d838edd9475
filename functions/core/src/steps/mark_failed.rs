//! MarkFailed: the Catch target of every step. It records the error name and a cause a
//! person can act on, and removes the partial prefix. It never touches a deployment that
//! already finished (the live version stays exactly as it was).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{prune::delete_files, report_commit_status, StepError};
use crate::model::{DeploymentStatus, RecordedError};
use crate::names::{DeploymentId, SiteName};
use crate::ports::{
    CommitState, CommitStatuses, DeploymentPatch, ObjectStore, StateError, StateStore,
};

/// What MarkFailed uses: the record, the partial files, and the commit's status.
#[derive(Clone)]
pub struct MarkFailedDeps {
    pub state: Arc<dyn StateStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub statuses: Arc<dyn CommitStatuses>,
}

/// Causes longer than this are cut, so a deployment record stays small.
const MAX_CAUSE_CHARS: usize = 4000;

/// What a Catch with `ResultPath: $.error` hands over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkFailedInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub error: CaughtError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkFailedOutput {
    /// The deployment's status afterwards.
    pub status: Option<DeploymentStatus>,
    /// False when there was nothing to mark (unknown, or already finished).
    pub recorded: bool,
}

pub async fn mark_failed(
    p: &MarkFailedDeps,
    input: MarkFailedInput,
) -> Result<MarkFailedOutput, StepError> {
    let deployment = match p
        .state
        .get_deployment(&input.site, &input.deployment_id)
        .await
    {
        Ok(d) => d,
        Err(StateError::SiteNotFound(_) | StateError::DeploymentNotFound(_)) => {
            tracing::warn!(site = %input.site, deployment_id = %input.deployment_id, error = %input.error.error, "nothing to mark failed");
            return Ok(MarkFailedOutput {
                status: None,
                recorded: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if !deployment.status.is_in_flight() {
        tracing::warn!(
            site = %input.site,
            deployment_id = %input.deployment_id,
            status = %deployment.status,
            error = %input.error.error,
            cause = %input.error.cause,
            "a step failed after the deployment finished; its status stays"
        );
        return Ok(MarkFailedOutput {
            status: Some(deployment.status),
            recorded: false,
        });
    }
    // Nothing in flight was ever routed to, so its files can go.
    delete_files(p.objects.as_ref(), &deployment).await?;
    let recorded = recorded_error(&input.error);
    tracing::warn!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        error = %recorded.name,
        cause = %recorded.cause,
        "deployment failed"
    );
    let description = format!("{}: {}", recorded.name, recorded.cause);
    let patch = DeploymentPatch {
        error: Some(recorded),
        ..Default::default()
    };
    let failed = p
        .state
        .transition(
            &input.site,
            &input.deployment_id,
            DeploymentStatus::Failed,
            patch,
        )
        .await?;
    report_commit_status(
        p.statuses.as_ref(),
        &failed,
        CommitState::Failure,
        &description,
        None,
    )
    .await;
    Ok(MarkFailedOutput {
        status: Some(failed.status),
        recorded: true,
    })
}

/// A failed CodeBuild build reaches the Catch as `States.TaskFailed` with the build document
/// as its cause; it is recorded as `BuildFailed` so the name says what happened.
pub fn recorded_error(caught: &CaughtError) -> RecordedError {
    let is_build = serde_json::from_str::<Value>(&caught.cause)
        .ok()
        .and_then(|doc| build_failure(&doc))
        .is_some();
    let name = if is_build {
        "BuildFailed"
    } else {
        caught.error.as_str()
    };
    RecordedError {
        name: name.to_owned(),
        cause: human_cause(&caught.error, &caught.cause),
    }
}

/// Turns a Catch's cause into a sentence: the failing build phase's message from a
/// CodeBuild build document, the message from a Lambda error document, or the text as is.
pub fn human_cause(error: &str, cause: &str) -> String {
    let text = match serde_json::from_str::<Value>(cause) {
        Ok(doc) => build_failure(&doc)
            .or_else(|| field(&doc, "errorMessage").map(str::to_owned))
            .unwrap_or_else(|| cause.to_owned()),
        Err(_) if cause.trim().is_empty() => error.to_owned(),
        Err(_) => cause.to_owned(),
    };
    text.chars().take(MAX_CAUSE_CHARS).collect()
}

/// Reads a field whatever its case convention (Step Functions passes SDK shapes on).
fn field<'a>(doc: &'a Value, camel: &str) -> Option<&'a str> {
    let mut pascal = camel.to_owned();
    pascal[..1].make_ascii_uppercase();
    doc.get(camel)
        .or_else(|| doc.get(&pascal))
        .and_then(Value::as_str)
}

fn build_failure(doc: &Value) -> Option<String> {
    let build = doc.get("Build").or_else(|| doc.get("build")).unwrap_or(doc);
    let phases = build
        .get("phases")
        .or_else(|| build.get("Phases"))?
        .as_array()?;
    let failed = phases
        .iter()
        .find(|phase| field(phase, "phaseStatus").is_some_and(|s| s != "SUCCEEDED"))?;
    let phase = field(failed, "phaseType").unwrap_or("BUILD");
    let contexts = failed.get("contexts").or_else(|| failed.get("Contexts"));
    let message = contexts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| field(c, "message"))
        .find(|m| !m.is_empty())
        .unwrap_or("no message");
    Some(format!("build failed in phase {phase}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_documents_become_the_failing_phase_and_message() {
        let cause = r#"{"Build":{"Id":"p:1","BuildStatus":"FAILED","Phases":[
            {"PhaseType":"INSTALL","PhaseStatus":"SUCCEEDED"},
            {"PhaseType":"BUILD","PhaseStatus":"FAILED","Contexts":[{"StatusCode":"COMMAND_EXECUTION_ERROR","Message":"Error while executing command: npm run build. Reason: exit status 1"}]}]}}"#;
        assert_eq!(
            human_cause("States.TaskFailed", cause),
            "build failed in phase BUILD: Error while executing command: npm run build. Reason: exit status 1"
        );
        let camel = r#"{"phases":[{"phaseType":"UPLOAD_ARTIFACTS","phaseStatus":"FAILED","contexts":[{"message":"no output"}]}]}"#;
        assert_eq!(
            human_cause("States.TaskFailed", camel),
            "build failed in phase UPLOAD_ARTIFACTS: no output"
        );
    }

    #[test]
    fn failed_builds_are_recorded_as_build_failed() {
        let caught = CaughtError {
            error: "States.TaskFailed".into(),
            cause: r#"{"Phases":[{"PhaseType":"BUILD","PhaseStatus":"FAILED","Contexts":[{"Message":"exit 1"}]}]}"#.into(),
        };
        assert_eq!(recorded_error(&caught).name, "BuildFailed");
        let other = CaughtError {
            error: "SourceInvalid".into(),
            cause: "bad zip".into(),
        };
        assert_eq!(
            recorded_error(&other),
            RecordedError {
                name: "SourceInvalid".into(),
                cause: "bad zip".into()
            }
        );
    }

    #[test]
    fn lambda_errors_and_plain_text_pass_through() {
        let lambda = r#"{"errorType":"SourceInvalid","errorMessage":"zip entry `../x` escapes the archive root"}"#;
        assert_eq!(
            human_cause("SourceInvalid", lambda),
            "zip entry `../x` escapes the archive root"
        );
        assert_eq!(human_cause("SourceInvalid", "plain words"), "plain words");
        assert_eq!(human_cause("States.Timeout", ""), "States.Timeout");
        assert_eq!(human_cause("X", &"y".repeat(10_000)).len(), MAX_CAUSE_CHARS);
    }
}
