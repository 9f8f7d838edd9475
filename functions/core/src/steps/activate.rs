//! Activate: the atomic switch. The state store decides in one transaction (never moving a
//! target backwards); then the site's host key is pointed at whatever is live now.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Pipeline, StepError};
use crate::model::DeploymentStatus;
use crate::names::{DeploymentId, SiteName};
use crate::ports::ActivateOutcome;
use crate::routing::{production_host, route_value};

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
    let outcome = p
        .state
        .activate(&input.site, &input.deployment_id, OffsetDateTime::now_utc())
        .await?;
    let output = match outcome {
        ActivateOutcome::Activated { previous } => {
            sync_route(p, &input.site).await?;
            ActivateOutput {
                status: DeploymentStatus::Live,
                previous,
                superseded_by: None,
            }
        }
        // A re-run after a crash between the transaction and the key-value write.
        ActivateOutcome::AlreadyLive => {
            sync_route(p, &input.site).await?;
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
    };
    tracing::info!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        status = %output.status,
        "activated"
    );
    Ok(output)
}

/// Points the site's host key at the deployment the state store says is live, with that
/// deployment's routing flags. Reading the live deployment after the transaction (rather
/// than writing "our" id) makes a late writer converge on the newest decision.
pub async fn sync_route(p: &Pipeline, site: &SiteName) -> Result<(), StepError> {
    let site = p.state.get_site(site).await?;
    let host = production_host(&site.name, &p.config.edge_domain);
    match site.live_deployment {
        Some(live) => {
            let deployment = p.state.get_deployment(&site.name, &live).await?;
            let value = route_value(&site.name, &live, deployment.routing);
            p.kvs.put(&host, &value).await?;
        }
        None => p.kvs.delete(&host).await?,
    }
    Ok(())
}
