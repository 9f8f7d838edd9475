//! Commit statuses for deployments from git: `pending` when the pipeline takes one up,
//! `success` with its URL, `failure` with the recorded reason. GitHub being down never fails
//! a deployment: a bounded number of attempts, then a logged warning.

use std::time::Duration;

use crate::model::Deployment;
use crate::ports::{CommitState, CommitStatus, CommitStatuses, StatusError};

/// Attempts per status, and the pause before the second one (doubled after each).
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// GitHub keeps at most this many characters of a description.
const MAX_DESCRIPTION_CHARS: usize = 140;

/// Reports `state` on the deployment's commit, when it came from git. Never fails.
pub async fn report_commit_status(
    statuses: &dyn CommitStatuses,
    deployment: &Deployment,
    state: CommitState,
    description: &str,
    target_url: Option<String>,
) {
    let Some(git) = deployment.source.git() else {
        return;
    };
    let status = CommitStatus {
        state,
        target_url,
        description: description.chars().take(MAX_DESCRIPTION_CHARS).collect(),
        context: format!("slipway/{}", deployment.site),
    };
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        match statuses.report(&git.repo, &git.sha, &status).await {
            Ok(()) => {
                tracing::info!(site = %deployment.site, deployment_id = %deployment.id, sha = %git.sha, state = ?state, "commit status sent");
                return;
            }
            Err(StatusError::Transient(e)) if attempt < ATTEMPTS => {
                tracing::debug!(site = %deployment.site, deployment_id = %deployment.id, attempt, error = %e, "commit status failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::warn!(site = %deployment.site, deployment_id = %deployment.id, sha = %git.sha, state = ?state, attempt, error = %e, "commit status not sent; the deployment goes on");
                return;
            }
        }
    }
}
