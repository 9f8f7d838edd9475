//! Activate: the atomic switch. The state store decides in one transaction (never moving a
//! target backwards); then the site's host key is pointed at whatever is live now.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::report_commit_status;
use super::{Pipeline, StepError};
use crate::decisions::ActivateOutcome;
use crate::model::DeploymentStatus;
use crate::names::{DeploymentId, SiteName, TargetName};
use crate::ports::{CommitState, Lifecycle, Serving};

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

pub async fn activate(p: &Pipeline, input: ActivateInput) -> Result<ActivateOutput, StepError> {
    let deployment = p
        .state
        .get_deployment(&input.site, &input.deployment_id)
        .await?;
    // Every published deployment keeps a URL of its own until Prune deletes it.
    p.switch.expose(&deployment).await?;
    let own_host = p.config.hosts.deployment(&deployment.id, &deployment.site);

    let outcome = p
        .state
        .activate(&input.site, &input.deployment_id, OffsetDateTime::now_utc())
        .await?;
    let output = match outcome {
        ActivateOutcome::Activated { previous } => {
            sync_target(p, &input.site, &deployment.target).await?;
            ActivateOutput {
                status: DeploymentStatus::Live,
                previous,
                superseded_by: None,
            }
        }
        // A re-run after a crash between the transaction and the key-value write.
        ActivateOutcome::AlreadyLive => {
            sync_target(p, &input.site, &deployment.target).await?;
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
            p.config
                .urls
                .url(&p.config.hosts.target(&deployment.target, &deployment.site)),
            format!("Deployed to {}", deployment.target),
        ),
        _ => (
            p.config.urls.url(&own_host),
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
        p,
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

/// Points the site's production address at what the state store says production serves.
/// Reading the traffic after the transaction (rather than writing "our" id) makes a late
/// writer converge on the newest decision.
pub async fn sync_route(p: &Pipeline, site: &SiteName) -> Result<(), StepError> {
    sync_target(p, site, &TargetName::production()).await
}

/// Points `target`'s address at what the state store says it serves, or takes it down when
/// it serves nothing (a removed preview).
pub async fn sync_target(
    p: &Pipeline,
    site: &SiteName,
    target: &TargetName,
) -> Result<(), StepError> {
    let traffic = if target.is_production() {
        p.state.get_site(site).await?.production
    } else {
        p.state
            .list_previews(site)
            .await?
            .into_iter()
            .find(|preview| &preview.target == target && preview.removed_at.is_none())
            .and_then(|preview| preview.traffic)
    };
    let serving = match traffic {
        Some(traffic) => {
            let stable = p.state.get_deployment(site, &traffic.stable).await?;
            let canary = match traffic.canary {
                Some(canary) => Some((
                    p.state.get_deployment(site, &canary.deployment).await?,
                    canary.weight,
                )),
                None => None,
            };
            Some(Serving { stable, canary })
        }
        None => None,
    };
    p.switch.switch(site, target, serving.as_ref()).await?;
    Ok(())
}
