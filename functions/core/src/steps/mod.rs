//! The deploy pipeline's task handlers: the code behind each Task state of
//! `statemachines/deploy-site.asl.json`. `slipway dev` calls them in process; the Lambda
//! crates wrap the very same functions. Their errors carry the stable names that the
//! state machine's Retry and Catch match.

mod activate;
mod commit_status;
mod mark_failed;
mod prepare;
mod prune;
mod publish;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::ObjectLocation;
use crate::names::{DeploymentId, SiteName};
use crate::ports::{
    CommitStatuses, ObjectStore, ObjectStoreError, RepoError, RepoReader, StateError, StateStore,
    SwitchError, TrafficSwitch,
};
use crate::site::build_plan::PlanError;
use crate::site::edge::Addresses;
use crate::site::zipsafe::{ZipError, ZipLimits};

pub use activate::{activate, ActivateDeps, ActivateInput, ActivateOutput, TrafficSync};
pub use commit_status::report_commit_status;
pub use mark_failed::{
    human_cause, mark_failed, recorded_error, CaughtError, MarkFailedDeps, MarkFailedInput,
    MarkFailedOutput,
};
pub use prepare::{
    artifact_path, prepare, PrepareDeps, PrepareInput, PrepareOutput, SOURCE_TYPE_GITHUB,
    SOURCE_TYPE_S3,
};
pub use prune::{prunable, prune, PruneDeps, PruneInput, PruneOutput};
pub use publish::{publish, PublishDeps, PublishInput, PublishOutput};

/// The real bucket names behind [`crate::model::Bucket`], as CodeBuild's overrides need them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketNames {
    pub source: String,
    pub artifacts: String,
    pub hosting: String,
}

impl BucketNames {
    pub fn name_of(&self, bucket: crate::model::Bucket) -> &str {
        match bucket {
            crate::model::Bucket::Source => &self.source,
            crate::model::Bucket::Artifacts => &self.artifacts,
            crate::model::Bucket::Hosting => &self.hosting,
        }
    }

    pub fn bucket_named(&self, name: &str) -> Option<crate::model::Bucket> {
        crate::model::Bucket::ALL
            .into_iter()
            .find(|b| self.name_of(*b) == name)
    }
}

/// Every port and setting the `deploy-site` tasks use. Only composition roots (`slipway dev`,
/// the test kit) hold it whole; [`DeploySiteTasks::new`] hands each task its own share.
#[derive(Clone)]
pub struct SitePorts {
    pub objects: Arc<dyn ObjectStore>,
    pub state: Arc<dyn StateStore>,
    /// Points a target's address at what it serves.
    pub switch: Arc<dyn TrafficSwitch>,
    /// Reads a commit's files for Prepare's build detection.
    pub repos: Arc<dyn RepoReader>,
    /// Where deployments from git report on their commits.
    pub statuses: Arc<dyn CommitStatuses>,
    pub addresses: Addresses,
    pub buckets: BucketNames,
    pub zip_limits: ZipLimits,
    /// Concurrent object writes during Publish.
    pub publish_concurrency: usize,
}

/// The task handlers of `deploy-site`, each with what it uses and nothing else.
#[derive(Clone)]
pub struct DeploySiteTasks {
    pub prepare: PrepareDeps,
    pub publish: PublishDeps,
    pub activate: ActivateDeps,
    pub prune: PruneDeps,
    pub mark_failed: MarkFailedDeps,
}

impl DeploySiteTasks {
    pub fn new(ports: SitePorts) -> Self {
        let traffic = TrafficSync {
            state: ports.state.clone(),
            switch: ports.switch.clone(),
        };
        Self {
            prepare: PrepareDeps {
                state: ports.state.clone(),
                objects: ports.objects.clone(),
                repos: ports.repos,
                statuses: ports.statuses.clone(),
                buckets: ports.buckets,
                zip_limits: ports.zip_limits,
            },
            publish: PublishDeps {
                state: ports.state.clone(),
                objects: ports.objects.clone(),
                zip_limits: ports.zip_limits,
                concurrency: ports.publish_concurrency,
            },
            activate: ActivateDeps {
                traffic: traffic.clone(),
                statuses: ports.statuses.clone(),
                addresses: ports.addresses,
            },
            prune: PruneDeps {
                state: ports.state.clone(),
                objects: ports.objects.clone(),
                switch: ports.switch,
            },
            mark_failed: MarkFailedDeps {
                state: ports.state,
                objects: ports.objects,
                statuses: ports.statuses,
            },
        }
    }

    /// The share the API's rollback and promote and the webhook's preview removal use.
    pub fn traffic(&self) -> &TrafficSync {
        &self.activate.traffic
    }
}

/// What a step reports when it fails. `name()` is what the state machine's Retry/Catch see.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the uploaded source is not a usable site archive: {0}")]
    SourceInvalid(#[source] ZipError),
    #[error("the source's build configuration is invalid: {0}")]
    BuildConfigInvalid(#[source] PlanError),
    #[error("the build output is not a usable archive: {0}")]
    ArtifactInvalid(#[source] ZipError),
    #[error("the step's input is malformed: {0}")]
    InvalidInput(#[source] serde_json::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Objects(#[from] ObjectStoreError),
    #[error(transparent)]
    Switch(#[from] SwitchError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl StepError {
    /// Every name a step can fail with; the ASL's Retry/Catch may only use these.
    pub const NAMES: &'static [&'static str] = &[
        "SourceInvalid",
        "BuildConfigInvalid",
        "ArtifactInvalid",
        "InvalidInput",
        "SiteNotFound",
        "DeploymentNotFound",
        "ServiceNotFound",
        "InvalidTransition",
        "ObjectNotFound",
        "SourceNotFound",
        "SourceTooLarge",
        "StoreUnavailable",
    ];

    /// The names worth retrying: the store may answer next time.
    pub const RETRYABLE: &'static [&'static str] = &["StoreUnavailable"];

    pub fn name(&self) -> &'static str {
        match self {
            StepError::SourceInvalid(_) => "SourceInvalid",
            StepError::BuildConfigInvalid(_) => "BuildConfigInvalid",
            StepError::ArtifactInvalid(_) => "ArtifactInvalid",
            StepError::InvalidInput(_) => "InvalidInput",
            StepError::State(state) => state.name(),
            StepError::Objects(ObjectStoreError::NotFound { .. }) => "ObjectNotFound",
            StepError::Objects(ObjectStoreError::InvalidKey(_)) => "ArtifactInvalid",
            StepError::Repo(RepoError::NotFound { .. }) => "SourceNotFound",
            StepError::Repo(RepoError::TooLarge { .. }) => "SourceTooLarge",
            StepError::Objects(_) | StepError::Switch(_) | StepError::Repo(_) => "StoreUnavailable",
        }
    }
}

/// The fields every step's input carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRef {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
}

/// The artifact Publish reads: the source zip itself, or the build's output zip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub location: ObjectLocation,
    /// A folder inside the zip that holds the site (a zipped folder), with trailing `/`.
    pub root: Option<String>,
}

fn blocking_failed(e: tokio::task::JoinError) -> StepError {
    StepError::Objects(ObjectStoreError::Unavailable(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bucket, DeploymentStatus, LifecycleError};
    use crate::names::{CommitSha, RepoName, ServiceName};
    use crate::ports::KvsError;

    /// The error names a step reports, one per case `name()` distinguishes.
    fn one_of_each() -> Vec<StepError> {
        let site = SiteName::parse("docs").unwrap();
        let id = DeploymentId::generate();
        let repo = RepoName::parse("acme/docs").unwrap();
        let sha = CommitSha::parse(&"a".repeat(40)).unwrap();
        let key = "k".to_owned();
        let down = || "down".into();
        vec![
            StepError::SourceInvalid(ZipError::NotAZip),
            StepError::BuildConfigInvalid(PlanError::NoBuildScript),
            StepError::ArtifactInvalid(ZipError::Truncated),
            StepError::InvalidInput(serde_json::from_str::<u8>("x").unwrap_err()),
            StepError::State(StateError::SiteExists(site.clone())),
            StepError::State(StateError::SiteNotFound(site.clone())),
            StepError::State(StateError::DeploymentNotFound(id)),
            StepError::State(StateError::ServiceExists {
                site: site.clone(),
                service: ServiceName::parse("api").unwrap(),
            }),
            StepError::State(StateError::ServiceNotFound {
                site: site.clone(),
                service: ServiceName::parse("api").unwrap(),
            }),
            StepError::State(StateError::Lifecycle(LifecycleError::InUse {
                id,
                status: DeploymentStatus::Live,
            })),
            StepError::State(StateError::Unavailable(down())),
            StepError::Objects(ObjectStoreError::NotFound {
                bucket: Bucket::Source,
                key: key.clone(),
            }),
            StepError::Objects(ObjectStoreError::InvalidKey(key.clone())),
            StepError::Objects(ObjectStoreError::ShortBody {
                expected: 2,
                actual: 1,
            }),
            StepError::Objects(ObjectStoreError::Unavailable(down())),
            StepError::Switch(SwitchError::Routes(KvsError::Conflict { key, attempts: 3 })),
            StepError::Repo(RepoError::NotFound {
                repo: repo.clone(),
                sha: sha.clone(),
                reason: "gone".into(),
            }),
            StepError::Repo(RepoError::TooLarge { repo, sha }),
            StepError::Repo(RepoError::Unavailable(down())),
        ]
    }

    /// No wildcard: a new error variant does not compile until [`one_of_each`] covers it.
    fn covered(error: &StepError) {
        match error {
            StepError::SourceInvalid(_)
            | StepError::BuildConfigInvalid(_)
            | StepError::ArtifactInvalid(_)
            | StepError::InvalidInput(_)
            | StepError::State(
                StateError::SiteExists(_)
                | StateError::SiteNotFound(_)
                | StateError::DeploymentNotFound(_)
                | StateError::ServiceExists { .. }
                | StateError::ServiceNotFound { .. }
                | StateError::Lifecycle(_)
                | StateError::Unavailable(_),
            )
            | StepError::Objects(
                ObjectStoreError::NotFound { .. }
                | ObjectStoreError::InvalidKey(_)
                | ObjectStoreError::ShortBody { .. }
                | ObjectStoreError::Unavailable(_),
            )
            | StepError::Switch(SwitchError::Routes(_))
            | StepError::Repo(
                RepoError::NotFound { .. } | RepoError::TooLarge { .. } | RepoError::Unavailable(_),
            ) => {}
        }
    }

    #[test]
    fn every_name_a_step_reports_is_listed_and_every_listed_name_is_reported() {
        let errors = one_of_each();
        errors.iter().for_each(covered);
        let reported: std::collections::BTreeSet<&str> =
            errors.iter().map(StepError::name).collect();
        let listed: std::collections::BTreeSet<&str> = StepError::NAMES.iter().copied().collect();
        assert_eq!(reported, listed);
        for name in StepError::RETRYABLE {
            assert!(
                listed.contains(name),
                "{name} is retryable but never reported"
            );
        }
    }
}
