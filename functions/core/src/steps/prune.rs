//! Prune: deletes finished deployments beyond the site's retention, oldest first, counted per
//! target, and every finished deployment of a removed preview. It never deletes what
//! production or a preview serves, the one a rollback would go to, or one still in flight.

use serde::{Deserialize, Serialize};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::StepError;

use crate::model::Bucket;
use crate::model::{rollback_candidate, Deployment, LifecycleError, Preview, Traffic};
use crate::names::{DeploymentId, SiteName, TargetName};
use crate::ports::{Lifecycle, ObjectStore, StateError, StateStore, TrafficSwitch};
use crate::site::edge::deployment_prefix;

use super::prepare::artifact_path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneOutput {
    pub deleted: Vec<DeploymentId>,
    pub objects_deleted: u64,
    /// Delete requests sent to the object store (batches of up to 1,000 keys).
    pub requests: u64,
}

/// The deployments Prune may delete, given the site's deployments newest first, what
/// production serves, and the site's previews.
pub fn prunable<'a>(
    deployments: &'a [Deployment],
    retain: u32,
    production: Option<Traffic>,
    previews: &[Preview],
) -> Vec<&'a Deployment> {
    let mut protected: HashSet<DeploymentId> = previews
        .iter()
        .filter_map(|preview| preview.traffic)
        .chain(production)
        .flat_map(|traffic| traffic.deployments().collect::<Vec<_>>())
        .collect();
    let live = production.map(|traffic| traffic.stable);
    protected.extend(rollback_candidate(deployments, live).map(|d| d.id));
    let removed: HashSet<&TargetName> = previews
        .iter()
        .filter(|preview| preview.removed_at.is_some())
        .map(|preview| &preview.target)
        .collect();
    let mut kept: HashMap<&TargetName, u32> = HashMap::new();
    deployments
        .iter()
        .filter(|d| d.status.is_terminal())
        .filter(|d| {
            if removed.contains(&d.target) {
                return true;
            }
            let count = kept.entry(&d.target).or_default();
            *count += 1;
            *count > retain
        })
        .filter(|d| !d.status.is_serving() && !protected.contains(&d.id))
        .collect()
}

/// What Prune uses: the records, the files, and the switch that forgets a deployment's URL.
#[derive(Clone)]
pub struct PruneDeps {
    pub state: Arc<dyn StateStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub switch: Arc<dyn TrafficSwitch>,
}

pub async fn prune(p: &PruneDeps, input: PruneInput) -> Result<PruneOutput, StepError> {
    let site = p.state.get_site(&input.site).await?;
    let deployments = p.state.list_deployments(&input.site).await?;
    let previews = p.state.list_previews(&input.site).await?;
    let mut output = PruneOutput {
        deleted: Vec::new(),
        objects_deleted: 0,
        requests: 0,
    };
    for deployment in prunable(&deployments, site.retain, site.production, &previews) {
        // The record goes first, conditionally: once it is gone nothing can route to the
        // files, and if a rollback made it live meanwhile, it and its files stay.
        match p
            .state
            .delete_deployment(&deployment.site, &deployment.id)
            .await
        {
            Ok(()) => {}
            Err(StateError::Lifecycle(LifecycleError::InUse { .. })) => continue,
            Err(e) => return Err(e.into()),
        }
        p.switch.retire(deployment).await?;
        let (objects, requests) = delete_files(p.objects.as_ref(), deployment).await?;
        output.deleted.push(deployment.id);
        output.objects_deleted += objects;
        output.requests += requests;
    }
    tracing::info!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        deleted = output.deleted.len(),
        objects = output.objects_deleted,
        requests = output.requests,
        "pruned"
    );
    Ok(output)
}

/// Removes a deployment's hosted files, its build artifact and its uploaded source.
/// Returns (objects deleted, requests sent).
pub(super) async fn delete_files(
    store: &dyn ObjectStore,
    deployment: &Deployment,
) -> Result<(u64, u64), StepError> {
    let mut objects = 0;
    let mut requests = 0;
    let prefixes = [
        (
            Bucket::Hosting,
            deployment_prefix(&deployment.site, &deployment.id),
        ),
        (
            Bucket::Artifacts,
            format!("{}/", artifact_path(&deployment.site, &deployment.id)),
        ),
    ];
    for (bucket, prefix) in prefixes {
        let keys: Vec<String> = store
            .list(bucket, &prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        if !keys.is_empty() {
            requests += store.delete_many(bucket, &keys).await?;
            objects += keys.len() as u64;
        }
    }
    // Uploads made through the API belong to the deployment; user drops under `sites/` do not.
    let upload = deployment
        .source
        .archive()
        .filter(|source| source.bucket == Bucket::Source && source.key.starts_with("uploads/"));
    if let Some(source) = upload {
        requests += store
            .delete_many(Bucket::Source, std::slice::from_ref(&source.key))
            .await?;
        objects += 1;
    }
    Ok((objects, requests))
}
