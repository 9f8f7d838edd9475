//! The ports: what the pipeline needs from the outside world. `slipway-local` implements them
//! on SQLite and the filesystem; `slipway-aws` implements them on S3, DynamoDB, CloudFront
//! KeyValueStore, Step Functions and CodeBuild.

use std::collections::BTreeMap;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::decisions::{ActivateOutcome, Decision, Displaced, Outcome};
use crate::model::{
    Bucket, CanaryWeight, Deployment, DeploymentSource, DeploymentStatus, GitSource,
    LifecycleError, Preview, RecordedError, Site,
};
use crate::names::{CommitSha, DeploymentId, RepoName, ServiceName, SiteName, TargetName};
use crate::service::Service;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Headers stored with an object and served with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub content_type: String,
    pub cache_control: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub meta: ObjectMeta,
}

/// An object's bytes: whole, for small files, or as a bounded stream of chunks of known
/// total length, so large files never sit in memory (multipart uploads on S3).
pub enum ObjectBody {
    Bytes(Bytes),
    Stream {
        len: u64,
        chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    },
}

impl ObjectBody {
    pub fn len(&self) -> u64 {
        match self {
            ObjectBody::Bytes(b) => b.len() as u64,
            ObjectBody::Stream { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("no object {key:?} in the {bucket:?} bucket")]
    NotFound { bucket: Bucket, key: String },
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("the body ended after {actual} of {expected} bytes")]
    ShortBody { expected: u64, actual: u64 },
    #[error("object store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// S3's key length limit, which every store keeps.
pub const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// The key rules every [`ObjectStore`] enforces, so a key refused in `slipway dev` is refused on
/// S3 too: non-empty, at most [`MAX_OBJECT_KEY_BYTES`], `/`-separated segments none of them
/// empty, `.` or `..`, and no backslash or NUL (S3 would take `a//b` or `..`; the edge would
/// refuse to serve them, and the disk store would escape its root).
pub fn check_object_key(key: &str) -> Result<&str, ObjectStoreError> {
    let bad_segment = key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if key.is_empty()
        || key.len() > MAX_OBJECT_KEY_BYTES
        || bad_segment
        || key.contains(['\\', '\0'])
    {
        return Err(ObjectStoreError::InvalidKey(key.to_owned()));
    }
    Ok(key)
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(
        &self,
        bucket: Bucket,
        key: &str,
        body: ObjectBody,
        meta: &ObjectMeta,
    ) -> Result<ObjectInfo, ObjectStoreError>;

    async fn head(&self, bucket: Bucket, key: &str)
        -> Result<Option<ObjectInfo>, ObjectStoreError>;

    /// The bytes in `range` (end exclusive, clamped to the object's size).
    async fn get_range(
        &self,
        bucket: Bucket,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ObjectStoreError>;

    /// The whole object as a stream, or None when it does not exist.
    async fn get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, ObjectStoreError>;

    /// Every object under `prefix`, in key order.
    async fn list(&self, bucket: Bucket, prefix: &str)
        -> Result<Vec<ObjectInfo>, ObjectStoreError>;

    /// Deletes these keys (missing ones are fine) and returns how many requests it took.
    async fn delete_many(&self, bucket: Bucket, keys: &[String]) -> Result<u64, ObjectStoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("site {0} already exists")]
    SiteExists(SiteName),
    #[error("no site named {0}")]
    SiteNotFound(SiteName),
    #[error("no deployment {0}")]
    DeploymentNotFound(DeploymentId),
    #[error("site {site} already has a service named {service}")]
    ServiceExists {
        site: SiteName,
        service: ServiceName,
    },
    #[error("site {site} has no service named {service}")]
    ServiceNotFound {
        site: SiteName,
        service: ServiceName,
    },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("state store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

impl StateError {
    /// The stable name a Lambda reports this error with (see `StepError::NAMES`).
    pub fn name(&self) -> &'static str {
        match self {
            StateError::SiteNotFound(_) => "SiteNotFound",
            StateError::DeploymentNotFound(_) => "DeploymentNotFound",
            StateError::ServiceNotFound { .. } => "ServiceNotFound",
            StateError::Lifecycle(_)
            | StateError::SiteExists(_)
            | StateError::ServiceExists { .. } => "InvalidTransition",
            StateError::Unavailable(_) => "StoreUnavailable",
        }
    }
}

/// Fields a status transition may set alongside the new status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentPatch {
    pub built: Option<bool>,
    pub routing: Option<crate::model::RoutingFlags>,
    pub error: Option<RecordedError>,
    pub file_count: Option<u64>,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub line: String,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn create_site(&self, site: &Site) -> Result<(), StateError>;
    async fn get_site(&self, name: &SiteName) -> Result<Site, StateError>;
    async fn list_sites(&self) -> Result<Vec<Site>, StateError>;

    /// Adds a service to an existing site; `ServiceExists` if the name is taken.
    async fn create_service(&self, service: &Service) -> Result<(), StateError>;
    async fn get_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<Service, StateError>;
    /// A site's services by name; `SiteNotFound` for an unknown site.
    async fn list_services(&self, site: &SiteName) -> Result<Vec<Service>, StateError>;
    async fn delete_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<(), StateError>;

    async fn create_deployment(&self, deployment: &Deployment) -> Result<(), StateError>;
    async fn get_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<Deployment, StateError>;
    /// Looks a deployment up by its id alone.
    async fn find_deployment(&self, id: &DeploymentId) -> Result<Deployment, StateError>;
    /// Newest first.
    async fn list_deployments(&self, site: &SiteName) -> Result<Vec<Deployment>, StateError>;

    /// Moves a deployment to `to`, only if [`DeploymentStatus::can_move_to`] allows it from
    /// its current status (a conditional write).
    async fn transition(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        to: DeploymentStatus,
        patch: DeploymentPatch,
    ) -> Result<Deployment, StateError>;

    /// Runs `decision` (see [`crate::decisions`]): reads the site and every record
    /// [`crate::decisions::decide`] asks for, and applies its plan atomically, conditional on those
    /// records being unchanged; when they changed meanwhile, reads and decides again.
    async fn commit(&self, site: &SiteName, decision: Decision) -> Result<Outcome, StateError>;

    /// Every preview record of the site, removed ones included, by target name.
    async fn list_previews(&self, site: &SiteName) -> Result<Vec<Preview>, StateError>;

    /// Records a webhook delivery id until `expires_at`; false when it was already recorded
    /// (a redelivery). Expired records may be reused.
    async fn record_delivery(
        &self,
        delivery: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StateError>;

    /// Forgets a delivery whose handling failed, so its redelivery is handled.
    async fn forget_delivery(&self, delivery: &str) -> Result<(), StateError>;

    async fn append_log(&self, id: &DeploymentId, lines: &[String]) -> Result<(), StateError>;
    /// Log lines with `seq > after`, oldest first.
    async fn read_log(&self, id: &DeploymentId, after: u64) -> Result<Vec<LogLine>, StateError>;
}

/// The lifecycle's decisions on any [`StateStore`], each with its own outcome.
#[async_trait]
pub trait Lifecycle: StateStore {
    /// Makes `id` live on its target, or supersedes it (see [`Decision::Activate`]).
    async fn activate(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        now: OffsetDateTime,
    ) -> Result<ActivateOutcome, StateError> {
        let decision = Decision::Activate { id: *id, now };
        match self.commit(site, decision).await? {
            Outcome::Activated(outcome) => Ok(outcome),
            other => Err(mismatch(other)),
        }
    }

    /// Production serves `to` (see [`Decision::MoveProduction`]); returns it as written.
    async fn move_production(
        &self,
        site: &SiteName,
        to: &DeploymentId,
        displaced: Displaced,
        now: OffsetDateTime,
    ) -> Result<Deployment, StateError> {
        let decision = Decision::MoveProduction {
            to: *to,
            displaced,
            now,
        };
        match self.commit(site, decision).await? {
            Outcome::Routed(deployment) => Ok(deployment),
            other => Err(mismatch(other)),
        }
    }

    /// Removes a preview (see [`Decision::RemovePreview`]); returns it as it was, if it existed.
    async fn remove_preview(
        &self,
        site: &SiteName,
        target: &TargetName,
        now: OffsetDateTime,
    ) -> Result<Option<Preview>, StateError> {
        let decision = Decision::RemovePreview {
            target: target.clone(),
            now,
        };
        match self.commit(site, decision).await? {
            Outcome::PreviewRemoved(previous) => Ok(previous),
            other => Err(mismatch(other)),
        }
    }

    /// Deletes a finished deployment's record and build log, unless it serves or is routed
    /// to (see [`Decision::DeleteDeployment`]).
    async fn delete_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<(), StateError> {
        match self
            .commit(site, Decision::DeleteDeployment { id: *id })
            .await?
        {
            Outcome::Deleted => Ok(()),
            other => Err(mismatch(other)),
        }
    }
}

/// A store answered a decision with another decision's outcome.
#[derive(Debug, thiserror::Error)]
#[error("the state store answered a decision with {0:?}")]
pub struct OutcomeMismatch(Box<Outcome>);

fn mismatch(outcome: Outcome) -> StateError {
    StateError::Unavailable(Box::new(OutcomeMismatch(Box::new(outcome))))
}

impl<T: StateStore + ?Sized> Lifecycle for T {}

#[derive(Debug, thiserror::Error)]
pub enum KvsError {
    #[error("value for {key:?} is {len} bytes; the limit is {MAX_KVS_VALUE}")]
    ValueTooLarge { key: String, len: usize },
    /// Another writer changed the store between each read of its version and our write.
    #[error("the key-value store changed under every write of {key:?} ({attempts} attempts)")]
    Conflict { key: String, attempts: u32 },
    #[error("key-value store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// The largest value CloudFront KeyValueStore takes; every [`KeyValueStore`] refuses more.
pub const MAX_KVS_VALUE: usize = 1024;

/// The edge's routing table: host name → `{site}/{deployment}` plus flags.
#[async_trait]
pub trait KeyValueStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>, KvsError>;
    async fn put(&self, key: &str, value: &str) -> Result<(), KvsError>;
    async fn delete(&self, key: &str) -> Result<(), KvsError>;
}

/// What a target serves, with the records a switch needs (a site's routing flags, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub stable: Deployment,
    pub canary: Option<(Deployment, CanaryWeight)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// The edge's routing table refused or failed a write.
    #[error(transparent)]
    Routes(#[from] KvsError),
}

/// Makes a target's public address send its requests where the state store says it should:
/// going live, rollback, promote and preview removal all end here. Sites switch the edge's
/// key-value store (`site::edge::KvsSwitch`); each kind of deployable brings its own.
#[async_trait]
pub trait TrafficSwitch: Send + Sync {
    /// Gives a published deployment an address of its own, until it is pruned.
    async fn expose(&self, deployment: &Deployment) -> Result<(), SwitchError>;

    /// Sends `target`'s requests as `serving` says, or takes its address down (`None`).
    async fn switch(
        &self,
        site: &SiteName,
        target: &TargetName,
        serving: Option<&Serving>,
    ) -> Result<(), SwitchError>;

    /// Takes a pruned deployment's own address down.
    async fn retire(&self, deployment: &Deployment) -> Result<(), SwitchError>;
}

/// What starts a deploy: the execution input of its workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub source: DeploymentSource,
    pub prebuilt: bool,
}

impl DeployRequest {
    pub fn for_deployment(deployment: &Deployment) -> Self {
        Self {
            site: deployment.site.clone(),
            deployment_id: deployment.id,
            source: deployment.source.clone(),
            prebuilt: deployment.prebuilt,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// An execution with this name exists: a repeated event, not an error.
    AlreadyStarted,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The starter was set up without this workflow (a stack without it, say).
    #[error("workflow {0} is not set up here")]
    NotRegistered(Workflow),
    #[error("workflow unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot create an upload URL: {0}")]
    Unavailable(#[source] BoxError),
}

/// Where to send the source zip: a presigned S3 PUT on AWS, the local API in `slipway dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// The largest body the target accepts.
    pub max_bytes: u64,
}

/// Hands out the URL a client sends a source zip to: a presigned PUT on S3, the local API in dev.
#[async_trait]
pub trait UploadTargets: Send + Sync {
    /// The largest source zip an upload target accepts.
    fn max_bytes(&self) -> u64;

    async fn upload_target(
        &self,
        location: &crate::model::ObjectLocation,
    ) -> Result<UploadTarget, UploadError>;
}

/// A state machine of `statemachines/`, by the name its file and the stack give it. Each
/// workflow starter holds a registry of the ones it can start: a new flow (deploy-service)
/// is a new variant, its definition file and its task functions, and touches no other flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workflow {
    /// `statemachines/deploy-site.asl.json`: prepare, build, publish, activate, prune.
    DeploySite,
}

impl Workflow {
    pub const ALL: [Workflow; 1] = [Workflow::DeploySite];

    /// The definition's file stem and the state machine's name.
    pub fn name(self) -> &'static str {
        match self {
            Workflow::DeploySite => "deploy-site",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
}

impl std::fmt::Display for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[async_trait]
pub trait WorkflowStarter: Send + Sync {
    /// Starts `workflow` under a deterministic name derived from the source.
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        request: &DeployRequest,
    ) -> Result<StartOutcome, WorkflowError>;
}

/// What a build checks out: CodeBuild's `S3` or `GITHUB` source type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuildSource {
    Archive(crate::model::ObjectLocation),
    Git { url: String, commit: CommitSha },
}

/// One build, in the shape CodeBuild's StartBuild overrides take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    pub source: BuildSource,
    /// The buildspec YAML (see `site::build_plan::BuildPlan::buildspec_yaml`).
    pub buildspec: String,
    /// Where the packed output directory goes.
    pub artifact: crate::model::ObjectLocation,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReport {
    pub build_id: String,
    pub file_count: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source zip is unusable (hostile or broken); the builder says why.
    #[error("the source could not be unpacked: {0}")]
    Source(#[source] BoxError),
    #[error("the source {key:?} is not in the {} bucket", bucket.as_str())]
    SourceMissing { bucket: Bucket, key: String },
    /// A git source whose commit could not be fetched (unknown commit, unreachable repository).
    #[error("commit {commit} of {url} could not be checked out: {reason}")]
    Checkout {
        url: String,
        commit: CommitSha,
        reason: String,
    },
    #[error("invalid buildspec: {0}")]
    Buildspec(#[source] BoxError),
    #[error("phase {phase} failed: command `{command}` ended with {status}")]
    CommandFailed {
        phase: String,
        command: String,
        status: String,
    },
    #[error("the build timed out after {seconds}s in phase {phase}, running `{command}`")]
    TimedOut {
        phase: String,
        command: String,
        seconds: u64,
    },
    #[error("the build produced no output directory {0:?}")]
    NoOutput(String),
    #[error("build infrastructure failed: {0}")]
    Unavailable(#[source] BoxError),
}

impl BuildError {
    /// The CodeBuild phase the failure belongs to, as `BatchGetBuilds` reports it.
    pub fn phase(&self) -> &str {
        match self {
            BuildError::Source(_)
            | BuildError::SourceMissing { .. }
            | BuildError::Checkout { .. } => "DOWNLOAD_SOURCE",
            BuildError::Buildspec(_) => "INSTALL",
            BuildError::CommandFailed { phase, .. } | BuildError::TimedOut { phase, .. } => phase,
            BuildError::NoOutput(_) => "UPLOAD_ARTIFACTS",
            BuildError::Unavailable(_) => "PROVISIONING",
        }
    }
}

/// Runs a buildspec against a source zip and packs the output: CodeBuild, or the local builder.
#[async_trait]
pub trait Builder: Send + Sync {
    async fn run(&self, request: BuildRequest) -> Result<BuildReport, BuildError>;
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("commit {sha} of {repo} could not be found: {reason}")]
    NotFound {
        repo: RepoName,
        sha: CommitSha,
        reason: String,
    },
    /// Retrying will not help: the commit has more files than the reader can list.
    #[error(
        "commit {sha} of {repo} has too many files to list; set --root to the app's directory"
    )]
    TooLarge { repo: RepoName, sha: CommitSha },
    #[error("the repository could not be read: {0}")]
    Unavailable(#[source] BoxError),
}

/// Reads a commit's files without a full checkout, so Prepare can detect the build:
/// the GitHub API on AWS, a local clone in `slipway dev`.
#[async_trait]
pub trait RepoReader: Send + Sync {
    /// Every file path in the commit under the source's root, relative to that root.
    async fn list_files(&self, source: &GitSource) -> Result<Vec<String>, RepoError>;

    /// One file under the root, or None when it is missing or larger than `max_bytes`.
    async fn read_file(
        &self,
        source: &GitSource,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, RepoError>;
}

/// A commit status's state, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Error,
}

/// One commit status: `POST /repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub state: CommitState,
    pub target_url: Option<String>,
    /// GitHub keeps at most 140 characters.
    pub description: String,
    /// One status line per context: `slipway/{site}`.
    pub context: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Worth another attempt: a network error, 5xx or rate limit.
    #[error("the commit status could not be sent: {0}")]
    Transient(#[source] BoxError),
    /// Retrying will not help: bad credentials, no access, unknown commit.
    #[error("the commit status was refused: {0}")]
    Rejected(String),
}

/// Reports deployments on their commits: the GitHub REST API.
#[async_trait]
pub trait CommitStatuses: Send + Sync {
    async fn report(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), StatusError>;
}
