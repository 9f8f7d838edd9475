//! Sites and deployments as the state store keeps them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::names::{BranchName, CommitSha, DeploymentId, RepoName, RootDir, SiteName, TargetName};

/// Where a deployment's lifecycle stands. Each move is a conditional write in the state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    Queued,
    Building,
    Publishing,
    /// Serves a share of its target's requests beside the stable deployment.
    Canary,
    Live,
    Superseded,
    Failed,
    RolledBack,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 8] = [
        Self::Queued,
        Self::Building,
        Self::Publishing,
        Self::Canary,
        Self::Live,
        Self::Superseded,
        Self::Failed,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Publishing => "publishing",
            Self::Canary => "canary",
            Self::Live => "live",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The pipeline has finished with this deployment (it may still move by rollback).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Live | Self::Superseded | Self::Failed | Self::RolledBack
        )
    }

    /// Still inside the pipeline, before any traffic reaches it: it may still fail. A canary
    /// is neither in flight nor finished: it serves, and ends live or rolled back.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Queued | Self::Building | Self::Publishing)
    }

    /// It is published and complete, so traffic may be routed to it.
    pub fn is_servable(self) -> bool {
        matches!(
            self,
            Self::Canary | Self::Live | Self::Superseded | Self::RolledBack
        )
    }

    /// Its target routes requests to it: all of them, or a canary's share.
    pub fn is_serving(self) -> bool {
        matches!(self, Self::Canary | Self::Live)
    }

    /// Every status from which the lifecycle allows a move to `to`: the condition of a
    /// conditional write in a store that cannot run [`Self::can_move_to`] itself.
    pub fn sources_of(to: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_move_to(to))
            .collect()
    }

    /// The moves the lifecycle allows. Publishing may be re-entered because Publish is retried.
    pub fn can_move_to(self, next: Self) -> bool {
        use DeploymentStatus::*;
        match (self, next) {
            (Queued, Building) | (Building, Publishing) => true,
            // Re-entry: a step retried after a crash records its progress again.
            (Building, Building) | (Publishing, Publishing) => true,
            // Activate: the new live one, or a slower deploy that lost to a newer one.
            (Publishing, Live) | (Publishing, Superseded) => true,
            // A canary: it takes a share of requests, then all of them or none.
            (Publishing, Canary) | (Canary, Live) | (Canary, RolledBack) => true,
            (Canary, Superseded) => true,
            // Activate of a newer deployment, or a rollback away from this one.
            (Live, Superseded) | (Live, RolledBack) => true,
            // Rollback (or roll forward) to an already published deployment.
            (Superseded, Live) | (RolledBack, Live) => true,
            (from, Failed) => from.is_in_flight(),
            _ => false,
        }
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the lifecycle refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("deployment {id} is {from}; it cannot become {to}")]
    InvalidTransition {
        id: DeploymentId,
        from: DeploymentStatus,
        to: DeploymentStatus,
    },
    #[error("deployment {id} is {status} or routed to, so it cannot be deleted")]
    InUse {
        id: DeploymentId,
        status: DeploymentStatus,
    },
}

/// The error a failed deployment records: the stable error name the state machine saw,
/// and a cause a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    pub name: String,
    pub cause: String,
}

/// The three buckets of the storage layout. Adapters map each to a real bucket name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// `sites/{site}/*.zip` and `uploads/{site}/{id}.zip`.
    Source,
    /// `builds/{site}/{deployment}/output.zip`.
    Artifacts,
    /// `{site}/{deployment}/{path}`: what the edge serves.
    Hosting,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Source, Bucket::Artifacts, Bucket::Hosting];

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Source => "source",
            Bucket::Artifacts => "artifacts",
            Bucket::Hosting => "hosting",
        }
    }
}

/// Where a deployment's source zip lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLocation {
    pub bucket: Bucket,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub site: SiteName,
    pub status: DeploymentStatus,
    /// What it was deployed for: `production` or a preview. Its status is relative to that
    /// target (`live` = what the target serves); promote can also route production to it.
    pub target: TargetName,
    pub source: DeploymentSource,
    /// The caller said the source is already built output.
    pub prebuilt: bool,
    /// Prepare decided the source needs a build.
    pub built: bool,
    /// How the edge routes this version; rollback restores them with it.
    #[serde(flatten)]
    pub routing: RoutingFlags,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it last became production's live deployment; rollback goes to the most recent.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub activated_at: Option<OffsetDateTime>,
    pub error: Option<RecordedError>,
    pub file_count: Option<u64>,
    pub bytes: Option<u64>,
}

impl Deployment {
    /// A new production deployment of an uploaded zip that waits for the pipeline.
    pub fn queued(
        id: DeploymentId,
        site: SiteName,
        source: ObjectLocation,
        prebuilt: bool,
        now: OffsetDateTime,
    ) -> Self {
        Self::queued_for(
            id,
            site,
            TargetName::production(),
            DeploymentSource::Archive(source),
            prebuilt,
            now,
        )
    }

    /// A new deployment of `target` that waits for the pipeline.
    pub fn queued_for(
        id: DeploymentId,
        site: SiteName,
        target: TargetName,
        source: DeploymentSource,
        prebuilt: bool,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            site,
            status: DeploymentStatus::Queued,
            target,
            source,
            prebuilt,
            built: false,
            routing: RoutingFlags::default(),
            created_at: now,
            updated_at: now,
            activated_at: None,
            error: None,
            file_count: None,
            bytes: None,
        }
    }
}

impl Deployment {
    /// The lifecycle's move to `to`, if [`DeploymentStatus::can_move_to`] allows it. Becoming
    /// production's live deployment stamps `activated_at`, which rollback goes back to.
    pub fn move_to(
        &mut self,
        to: DeploymentStatus,
        now: OffsetDateTime,
    ) -> Result<(), LifecycleError> {
        if !self.status.can_move_to(to) {
            return Err(LifecycleError::InvalidTransition {
                id: self.id,
                from: self.status,
                to,
            });
        }
        self.status = to;
        self.updated_at = now;
        if Self::activates(&self.target, to) {
            self.activated_at = Some(now);
        }
        Ok(())
    }

    /// Whether a move to `to` makes a deployment of `target` production's live one, which
    /// stamps `activated_at`: what rollback goes back to.
    pub fn activates(target: &TargetName, to: DeploymentStatus) -> bool {
        to == DeploymentStatus::Live && target.is_production()
    }
}

/// Where a rollback without an explicit target goes: the published deployment that served
/// production most recently before the current one. Prune never deletes it.
pub fn rollback_candidate(
    deployments: &[Deployment],
    production: Option<DeploymentId>,
) -> Option<&Deployment> {
    deployments
        .iter()
        .filter(|d| {
            d.activated_at.is_some()
                && Some(d.id) != production
                && matches!(
                    d.status,
                    DeploymentStatus::Superseded | DeploymentStatus::Live
                )
        })
        .max_by_key(|d| d.activated_at)
}

/// What a deployment is built from: a zip in the source bucket, or a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeploymentSource {
    Archive(ObjectLocation),
    Git(GitSource),
}

impl DeploymentSource {
    pub fn archive(&self) -> Option<&ObjectLocation> {
        match self {
            Self::Archive(location) => Some(location),
            Self::Git(_) => None,
        }
    }

    pub fn git(&self) -> Option<&GitSource> {
        match self {
            Self::Archive(_) => None,
            Self::Git(git) => Some(git),
        }
    }
}

/// The commit a deployment from git builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    pub repo: RepoName,
    /// What the builder clones (a `file://` URL works in `slipway dev`).
    pub clone_url: String,
    pub sha: CommitSha,
    pub branch: BranchName,
    pub pull_request: Option<u64>,
    /// The app's directory inside the repository.
    pub root: Option<RootDir>,
}

/// A site's link to a GitHub repository: pushes to `production_branch` deploy production,
/// other branches and pull requests deploy previews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoLink {
    pub repo: RepoName,
    pub production_branch: BranchName,
    pub root: Option<RootDir>,
}

/// A preview target: what `{target}--{site}` serves. Removing it (branch deleted, pull
/// request closed) keeps a tombstone, so a build still in flight never brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub site: SiteName,
    pub target: TargetName,
    pub branch: Option<BranchName>,
    pub pull_request: Option<u64>,
    /// What it serves; `None` until its first deployment goes live, and once removed.
    pub traffic: Option<Traffic>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it was removed; deployments created before then never go live on it.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub removed_at: Option<OffsetDateTime>,
}

impl Preview {
    /// A preview that serves nothing yet.
    pub fn empty(site: SiteName, target: TargetName, now: OffsetDateTime) -> Self {
        Self {
            site,
            target,
            branch: None,
            pull_request: None,
            traffic: None,
            updated_at: now,
            removed_at: None,
        }
    }

    /// Serves `deployment` from now on (and is no longer removed).
    pub fn serve(&mut self, deployment: &Deployment, now: OffsetDateTime) {
        self.traffic = Some(Traffic::all(deployment.id));
        self.removed_at = None;
        self.updated_at = now;
        if let Some(git) = deployment.source.git() {
            self.branch = Some(git.branch.clone());
            self.pull_request = git.pull_request;
        }
    }

    /// Whether `deployment` was created after the preview was last removed.
    pub fn accepts(&self, deployment: &DeploymentId) -> bool {
        self.removed_at.is_none_or(|removed| {
            i128::from(deployment.timestamp_ms()) > removed.unix_timestamp_nanos() / 1_000_000
        })
    }
}

/// How the edge treats a site's paths. Stored with the site and copied next to the
/// version in the key-value store at each activation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingFlags {
    /// Extensionless paths that match no file fall back to `/index.html`.
    pub spa: bool,
    /// `/about` serves `/about.html` (or `/about/index.html`).
    pub clean_urls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub name: SiteName,
    #[serde(flatten)]
    pub routing: RoutingFlags,
    /// How many finished deployments Prune keeps.
    pub retain: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// What production serves: a production deployment, or a promoted preview deployment.
    pub production: Option<Traffic>,
    /// The GitHub repository pushes come from, if any.
    #[serde(default)]
    pub repo: Option<RepoLink>,
}

impl Site {
    pub const DEFAULT_RETAIN: u32 = 10;

    /// The deployment production serves all requests not sent to a canary.
    pub fn live_deployment(&self) -> Option<DeploymentId> {
        self.production.map(|traffic| traffic.stable)
    }
}

impl Preview {
    /// The deployment the preview serves, if it serves one.
    pub fn live_deployment(&self) -> Option<DeploymentId> {
        self.traffic.map(|traffic| traffic.stable)
    }
}

/// What a target serves: a stable deployment, and optionally a canary that takes a share of
/// the requests. Sites switch whole (no canary); services shift weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub stable: DeploymentId,
    pub canary: Option<Canary>,
}

/// A deployment that takes `weight` of its target's requests beside the stable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub deployment: DeploymentId,
    pub weight: CanaryWeight,
}

/// A canary's share of requests in percent: 1 to 99 (0 and 100 are no canary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct CanaryWeight(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a canary weight is a percentage from 1 to 99, not {0}")]
pub struct InvalidWeight(pub u8);

impl CanaryWeight {
    pub fn percent(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for CanaryWeight {
    type Error = InvalidWeight;

    fn try_from(percent: u8) -> Result<Self, Self::Error> {
        if (1..=99).contains(&percent) {
            Ok(Self(percent))
        } else {
            Err(InvalidWeight(percent))
        }
    }
}

impl From<CanaryWeight> for u8 {
    fn from(weight: CanaryWeight) -> u8 {
        weight.0
    }
}

impl Traffic {
    /// Every request goes to `stable`.
    pub fn all(stable: DeploymentId) -> Self {
        Self {
            stable,
            canary: None,
        }
    }

    /// The deployments that take requests: the stable one, then the canary.
    pub fn deployments(&self) -> impl Iterator<Item = DeploymentId> {
        std::iter::once(self.stable).chain(self.canary.map(|canary| canary.deployment))
    }

    pub fn serves(&self, id: DeploymentId) -> bool {
        self.deployments().any(|served| served == id)
    }

    /// The newest deployment taking requests: a deploy older than it never goes live.
    pub fn newest(&self) -> DeploymentId {
        self.canary
            .map_or(self.stable, |canary| canary.deployment.max(self.stable))
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentStatus::*;
    use super::*;

    #[test]
    fn pipeline_moves_forward_only() {
        assert!(Queued.can_move_to(Building));
        assert!(Building.can_move_to(Publishing));
        assert!(Publishing.can_move_to(Live));
        assert!(!Queued.can_move_to(Live));
        assert!(!Live.can_move_to(Building));
        assert!(!Failed.can_move_to(Live));
        assert!(!Superseded.can_move_to(Publishing));
    }

    #[test]
    fn only_in_flight_deployments_can_fail() {
        for s in [Queued, Building, Publishing] {
            assert!(s.can_move_to(Failed));
        }
        for s in [Canary, Live, Superseded, Failed, RolledBack] {
            assert!(!s.can_move_to(Failed), "{s} must not fail");
        }
    }

    #[test]
    fn rollback_moves_between_published_deployments() {
        assert!(Live.can_move_to(RolledBack));
        assert!(Superseded.can_move_to(Live));
        assert!(RolledBack.can_move_to(Live));
    }

    #[test]
    fn sources_of_lists_exactly_the_allowed_moves() {
        assert_eq!(
            DeploymentStatus::sources_of(Failed),
            [Queued, Building, Publishing]
        );
        assert_eq!(
            DeploymentStatus::sources_of(Live),
            [Publishing, Canary, Superseded, RolledBack]
        );
        assert_eq!(DeploymentStatus::sources_of(Queued), []);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in DeploymentStatus::ALL {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
