//! The source trigger: an object landed in the source bucket; start its deploy.
//! `uploads/{site}/{deployment}.zip` belongs to a deployment the API created;
//! `sites/{site}/{anything}.zip` is a drop that creates its own deployment.
//! Execution names and drop deployment ids derive from the event, so a repeated
//! event starts nothing new.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::model::Bucket;
use crate::model::{Deployment, DeploymentStatus, ObjectLocation};
use crate::names::{DeploymentId, SiteName};
use crate::ports::{
    DeployRequest, StartOutcome, StateError, StateStore, Workflow, WorkflowError, WorkflowStarter,
};

/// A source object as the trigger sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    pub key: String,
    /// The object's ETag or version id: a re-upload of the same key is a new deploy.
    pub version: String,
    pub event_time: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKey {
    Upload {
        site: SiteName,
        deployment_id: DeploymentId,
    },
    Drop {
        site: SiteName,
    },
}

/// Why an event started nothing. Logged, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("key {0:?} is outside sites/{{site}}/*.zip and uploads/{{site}}/{{id}}.zip")]
    OutsideLayout(String),
    #[error("no site named {0}")]
    UnknownSite(SiteName),
    #[error("no deployment {0} awaits an upload")]
    UnknownDeployment(DeploymentId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    Started {
        deployment_id: DeploymentId,
        execution_name: String,
    },
    AlreadyStarted {
        deployment_id: DeploymentId,
        execution_name: String,
    },
    Ignored(Ignored),
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

pub fn parse_source_key(key: &str) -> Result<SourceKey, Ignored> {
    let outside = || Ignored::OutsideLayout(key.to_owned());
    let stem = key.strip_suffix(".zip").ok_or_else(outside)?;
    let (area, rest) = stem.split_once('/').ok_or_else(outside)?;
    let (site, name) = rest.split_once('/').ok_or_else(outside)?;
    let site = SiteName::parse(site).map_err(|_| outside())?;
    match area {
        "uploads" => {
            let deployment_id = DeploymentId::parse(name).map_err(|_| outside())?;
            Ok(SourceKey::Upload {
                site,
                deployment_id,
            })
        }
        "sites" if !name.is_empty() => Ok(SourceKey::Drop { site }),
        _ => Err(outside()),
    }
}

/// Step Functions execution names are at most 80 characters; ids are 26.
pub fn execution_name(deployment_id: &DeploymentId) -> String {
    format!("deploy-{deployment_id}")
}

pub async fn on_source_object(
    state: &dyn StateStore,
    workflow: &dyn WorkflowStarter,
    event: &SourceEvent,
) -> Result<TriggerOutcome, TriggerError> {
    let parsed = match parse_source_key(&event.key) {
        Ok(parsed) => parsed,
        Err(ignored) => return Ok(TriggerOutcome::Ignored(ignored)),
    };
    let site_name = match &parsed {
        SourceKey::Upload { site, .. } | SourceKey::Drop { site } => site.clone(),
    };
    match state.get_site(&site_name).await {
        Ok(_) => {}
        Err(StateError::SiteNotFound(site)) => {
            return Ok(TriggerOutcome::Ignored(Ignored::UnknownSite(site)))
        }
        Err(e) => return Err(e.into()),
    }
    let deployment = match parsed {
        SourceKey::Upload {
            site,
            deployment_id,
        } => match state.get_deployment(&site, &deployment_id).await {
            Ok(d) => d,
            Err(StateError::DeploymentNotFound(id)) => {
                return Ok(TriggerOutcome::Ignored(Ignored::UnknownDeployment(id)))
            }
            Err(e) => return Err(e.into()),
        },
        SourceKey::Drop { site } => {
            let id = drop_deployment_id(event);
            let deployment = Deployment::queued(
                id,
                site,
                ObjectLocation {
                    bucket: Bucket::Source,
                    key: event.key.clone(),
                },
                false,
                event.event_time,
            );
            match state.create_deployment(&deployment).await {
                Ok(()) => deployment,
                // The same event again: the deployment exists; the workflow start below is a no-op.
                Err(_) if state.get_deployment(&deployment.site, &id).await.is_ok() => deployment,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let execution_name = execution_name(&deployment.id);
    let request = DeployRequest {
        site: deployment.site.clone(),
        deployment_id: deployment.id,
        source: deployment.source.clone(),
        prebuilt: deployment.prebuilt,
    };
    let outcome = if deployment.status == DeploymentStatus::Queued {
        workflow
            .start(Workflow::DeploySite, &execution_name, &request)
            .await?
    } else {
        StartOutcome::AlreadyStarted
    };
    tracing::info!(site = %deployment.site, deployment_id = %deployment.id, execution = %execution_name, ?outcome, "source object");
    Ok(match outcome {
        StartOutcome::Started => TriggerOutcome::Started {
            deployment_id: deployment.id,
            execution_name,
        },
        StartOutcome::AlreadyStarted => TriggerOutcome::AlreadyStarted {
            deployment_id: deployment.id,
            execution_name,
        },
    })
}

fn drop_deployment_id(event: &SourceEvent) -> DeploymentId {
    let digest = Sha256::digest(format!("{}\n{}", event.key, event.version));
    let mut entropy = [0u8; 16];
    entropy.copy_from_slice(&digest[..16]);
    let millis = (event.event_time.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    DeploymentId::from_event(millis, u128::from_be_bytes(entropy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_keys_map_to_sites_and_deployments() {
        let id = DeploymentId::generate();
        assert_eq!(
            parse_source_key(&format!("uploads/docs/{id}.zip")),
            Ok(SourceKey::Upload {
                site: SiteName::parse("docs").unwrap(),
                deployment_id: id
            })
        );
        assert_eq!(
            parse_source_key("sites/docs/release-1.2.zip"),
            Ok(SourceKey::Drop {
                site: SiteName::parse("docs").unwrap()
            })
        );
        assert_eq!(
            parse_source_key("sites/docs/nested/build.zip"),
            Ok(SourceKey::Drop {
                site: SiteName::parse("docs").unwrap()
            })
        );
        for outside in [
            "sites/docs/site.tar.gz",
            "sites/docs.zip",
            "sites/Bad_Site/x.zip",
            "uploads/docs/not-an-id.zip",
            "other/docs/x.zip",
            "sites/docs/.zip",
        ] {
            assert!(
                matches!(parse_source_key(outside), Err(Ignored::OutsideLayout(_))),
                "{outside}"
            );
        }
    }

    #[test]
    fn drop_ids_are_stable_per_event_and_differ_per_version() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let event = |version: &str| SourceEvent {
            key: "sites/docs/a.zip".into(),
            version: version.into(),
            event_time: at,
        };
        assert_eq!(
            drop_deployment_id(&event("e1")),
            drop_deployment_id(&event("e1"))
        );
        assert_ne!(
            drop_deployment_id(&event("e1")),
            drop_deployment_id(&event("e2"))
        );
        assert_eq!(
            drop_deployment_id(&event("e1")).timestamp_ms(),
            1_700_000_000_000
        );
        assert!(execution_name(&drop_deployment_id(&event("e1"))).len() <= 80);
    }
}
