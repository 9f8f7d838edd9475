//! Activate: the atomic switch. The state store decides in one transaction (never moving a
//! target backwards); then the site's host key is pointed at whatever is live now.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::report_commit_status;
use super::StepError;
use crate::decisions::ActivateOutcome;
use crate::model::DeploymentStatus;
use crate::names::{DeploymentId, SiteName, TargetName};
use crate::ports::{CommitState, CommitStatuses, Lifecycle, Serving, StateStore, TrafficSwitch};
use crate::site::edge::Addresses;

/// What Activate uses: the decision and the switch, commit statuses, and the URLs they link.
#[derive(Clone)]
pub struct ActivateDeps {
    pub traffic: TrafficSync,
    pub statuses: Arc<dyn CommitStatuses>,
    pub addresses: Addresses,
}

/// Points targets' addresses at what the state store says they serve. Activate, the API's
/// rollback and promote, and the webhook's preview removal all end here. Reading the traffic
/// after the decision (rather than writing "our" id) makes a late writer converge on the
/// newest decision.
#[derive(Clone)]
pub struct TrafficSync {
    pub state: Arc<dyn StateStore>,
    pub switch: Arc<dyn TrafficSwitch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateOutput {
    pub status: DeploymentStatus,
    pub previous: Option<DeploymentId>,
    /// Set when a newer deployment was already live.
    pub superseded_by: Option<DeploymentId>,
}

pub async fn activate(p: &ActivateDeps, input: ActivateInput) -> Result<ActivateOutput, StepError> {
    let TrafficSync { state, switch } = &p.traffic;
    let deployment = state
        .get_deployment(&input.site, &input.deployment_id)
        .await?;
    // Every published deployment keeps a URL of its own until Prune deletes it.
    switch.expose(&deployment).await?;

    let outcome = state
        .activate(&input.site, &input.deployment_id, OffsetDateTime::now_utc())
        .await?;
    let output = match outcome {
        ActivateOutcome::Activated { previous } => {
            p.traffic.target(&input.site, &deployment.target).await?;
            ActivateOutput {
                status: DeploymentStatus::Live,
                previous,
                superseded_by: None,
            }
        }
        // A re-run after a crash between the transaction and the key-value write.
        ActivateOutcome::AlreadyLive => {
            p.traffic.target(&input.site, &deployment.target).await?;
            ActivateOutput {
                status: DeploymentStatus::Live,
                previous: None,
                superseded_by: None,
            }
        }
        ActivateOutcome::Superseded { newer } => ActivateOutput {
            status: DeploymentStatus::Superseded,
            previous: None,
            superseded_by: Some(newer),
        },
        ActivateOutcome::TargetRemoved => ActivateOutput {
            status: DeploymentStatus::Superseded,
            previous: None,
            superseded_by: None,
        },
    };
    let (url, description) = match output.status {
        DeploymentStatus::Live => (
            p.addresses.target_url(&deployment.target, &deployment.site),
            format!("Deployed to {}", deployment.target),
        ),
        _ => (
            p.addresses.deployment_url(&deployment.id, &deployment.site),
            match output.superseded_by {
                Some(newer) => format!(
                    "Deployed; {newer} is newer and serves {}",
                    deployment.target
                ),
                None => format!("Deployed; preview {} was removed", deployment.target),
            },
        ),
    };
    report_commit_status(
        p.statuses.as_ref(),
        &deployment,
        CommitState::Success,
        &description,
        Some(url),
    )
    .await;
    tracing::info!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        target = %deployment.target,
        status = %output.status,
        "activated"
    );
    Ok(output)
}

impl TrafficSync {
    /// Points the site's production address at what production serves.
    pub async fn production(&self, site: &SiteName) -> Result<(), StepError> {
        self.target(site, &TargetName::production()).await
    }

    /// Points `target`'s address at what it serves, or takes it down when it serves nothing
    /// (a removed preview).
    pub async fn target(&self, site: &SiteName, target: &TargetName) -> Result<(), StepError> {
        let traffic = if target.is_production() {
            self.state.get_site(site).await?.production
        } else {
            self.state
                .list_previews(site)
                .await?
                .into_iter()
                .find(|preview| &preview.target == target && preview.removed_at.is_none())
                .and_then(|preview| preview.traffic)
        };
        let serving = match traffic {
            Some(traffic) => {
                let stable = self.state.get_deployment(site, &traffic.stable).await?;
                let canary = match traffic.canary {
                    Some(canary) => Some((
                        self.state.get_deployment(site, &canary.deployment).await?,
                        canary.weight,
                    )),
                    None => None,
                };
                Some(Serving { stable, canary })
            }
            None => None,
        };
        self.switch.switch(site, target, serving.as_ref()).await?;
        Ok(())
    }
}
