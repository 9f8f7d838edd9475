//! Prepare: records that the deployment started and decides between build and prebuilt.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;
use std::sync::Arc;

use super::{blocking_failed, report_commit_status, ArtifactRef, BucketNames, StepError};
use crate::model::Bucket;
use crate::model::{DeploymentSource, DeploymentStatus, GitSource, ObjectLocation, RoutingFlags};
use crate::names::{DeploymentId, SiteName};
use crate::ports::{
    CommitState, CommitStatuses, DeploymentPatch, ObjectStore, RepoReader, StateStore,
};
use crate::site::build_plan::{decide, BuildDecision, BuildPlan, Framework, DETECTION_FILES};
use crate::site::ranged::RangedReader;
use crate::site::zipsafe::{open_archive, read_entry, ZipLimits};

/// Config files larger than this are not read for detection.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub source: DeploymentSource,
    #[serde(default)]
    pub prebuilt: bool,
}

/// CodeBuild's source type for an archive in S3.
pub const SOURCE_TYPE_S3: &str = "S3";
/// CodeBuild's source type for a commit on GitHub.
pub const SOURCE_TYPE_GITHUB: &str = "GITHUB";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOutput {
    pub needs_build: bool,
    /// The buildspec handed to CodeBuild (or the local builder) when `needs_build`.
    pub buildspec: Option<String>,
    /// CodeBuild's source type: [`SOURCE_TYPE_S3`] or [`SOURCE_TYPE_GITHUB`].
    pub source_type: String,
    /// CodeBuild's source location: `{bucket}/{key}`, or the repository's clone URL.
    pub source_location: String,
    /// The commit to check out, for a git source.
    pub source_version: Option<String>,
    /// What Publish reads.
    pub artifact: ArtifactRef,
    pub routing: RoutingFlags,
    /// The detected framework; Publish uses it to recognise its hashed assets.
    pub framework: Option<Framework>,
}

/// What Prepare uses: the records, the source (an archive or a commit), the commit's status,
/// and the bucket names CodeBuild's overrides spell out.
#[derive(Clone)]
pub struct PrepareDeps {
    pub state: Arc<dyn StateStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub repos: Arc<dyn RepoReader>,
    pub statuses: Arc<dyn CommitStatuses>,
    pub buckets: BucketNames,
    pub zip_limits: ZipLimits,
}

pub async fn prepare(p: &PrepareDeps, input: PrepareInput) -> Result<PrepareOutput, StepError> {
    let site = p.state.get_site(&input.site).await?;
    // Fails early with DeploymentNotFound before touching the source.
    let deployment = p
        .state
        .get_deployment(&input.site, &input.deployment_id)
        .await?;
    report_commit_status(
        p.statuses.as_ref(),
        &deployment,
        CommitState::Pending,
        &format!("Building {}", deployment.target),
        None,
    )
    .await;

    let build_output = || ArtifactRef {
        location: ObjectLocation {
            bucket: Bucket::Artifacts,
            key: format!(
                "{}/output.zip",
                artifact_path(&input.site, &input.deployment_id)
            ),
        },
        root: None,
    };
    let (decision, artifact, source_type, source_location, source_version) = match &input.source {
        DeploymentSource::Archive(location) => {
            let (decision, root) = decide_archive(p, location, input.prebuilt).await?;
            let artifact = match decision {
                BuildDecision::Prebuilt { .. } => ArtifactRef {
                    location: location.clone(),
                    root,
                },
                BuildDecision::Build(_) => build_output(),
            };
            let source_location =
                format!("{}/{}", p.buckets.name_of(location.bucket), location.key);
            (decision, artifact, SOURCE_TYPE_S3, source_location, None)
        }
        // A commit is always checked out by a build, even when it holds plain files.
        DeploymentSource::Git(git) => {
            let mut plan = match decide_git(p, git).await? {
                BuildDecision::Build(plan) => plan,
                BuildDecision::Prebuilt { spa, clean_urls } => {
                    BuildPlan::checkout_only(spa, clean_urls)
                }
            };
            plan.root = git.root.clone();
            (
                BuildDecision::Build(plan),
                build_output(),
                SOURCE_TYPE_GITHUB,
                git.clone_url.clone(),
                Some(git.sha.to_string()),
            )
        }
    };

    let resolve = |spa: Option<bool>, clean_urls: Option<bool>| RoutingFlags {
        spa: spa.unwrap_or(site.routing.spa),
        clean_urls: clean_urls.unwrap_or(site.routing.clean_urls),
    };
    let output = match decision {
        BuildDecision::Prebuilt { spa, clean_urls } => PrepareOutput {
            needs_build: false,
            buildspec: None,
            source_type: source_type.to_owned(),
            source_location,
            source_version,
            artifact,
            routing: resolve(spa, clean_urls),
            framework: None,
        },
        BuildDecision::Build(plan) => PrepareOutput {
            needs_build: true,
            buildspec: Some(plan.buildspec_yaml()),
            source_type: source_type.to_owned(),
            source_location,
            source_version,
            artifact,
            routing: resolve(plan.spa, plan.clean_urls),
            framework: Some(plan.framework),
        },
    };
    let patch = DeploymentPatch {
        built: Some(output.needs_build),
        routing: Some(output.routing),
        ..Default::default()
    };
    p.state
        .transition(
            &input.site,
            &input.deployment_id,
            DeploymentStatus::Building,
            patch,
        )
        .await?;
    tracing::info!(
        site = %input.site,
        deployment_id = %input.deployment_id,
        needs_build = output.needs_build,
        source = output.source_type,
        framework = output.framework.map_or("static", |f| f.as_str()),
        "prepared"
    );
    Ok(output)
}

/// Detection over a source zip; also returns the folder the zip wraps the site in, if any.
async fn decide_archive(
    p: &PrepareDeps,
    location: &ObjectLocation,
    prebuilt: bool,
) -> Result<(BuildDecision, Option<String>), StepError> {
    let reader = RangedReader::open(
        p.objects.clone(),
        location.bucket,
        &location.key,
        RangedReader::DEFAULT_CHUNK,
    )
    .await?;
    let limits = p.zip_limits;
    tokio::task::spawn_blocking(move || {
        let (mut archive, manifest) =
            open_archive(reader, &limits).map_err(StepError::SourceInvalid)?;
        let root = manifest.common_root().map(str::to_owned);
        let strip = root.as_deref().unwrap_or("");
        let files: Vec<&str> = manifest
            .entries
            .iter()
            .map(|e| &e.path.as_str()[strip.len()..])
            .collect();
        let read = |path: &str| {
            let entry = manifest.get(&format!("{strip}{path}"))?;
            if entry.size > MAX_CONFIG_BYTES {
                return None;
            }
            read_entry(&mut archive, entry).ok()
        };
        let decision = decide(&files, read, prebuilt).map_err(StepError::BuildConfigInvalid)?;
        Ok::<_, StepError>((decision, root))
    })
    .await
    .map_err(blocking_failed)?
}

/// Detection over a commit, reading only the files detection looks at.
async fn decide_git(p: &PrepareDeps, git: &GitSource) -> Result<BuildDecision, StepError> {
    let files = p.repos.list_files(git).await?;
    let mut contents = HashMap::new();
    for name in DETECTION_FILES {
        if files.iter().any(|f| f == name) {
            if let Some(bytes) = p.repos.read_file(git, name, MAX_CONFIG_BYTES).await? {
                contents.insert(name, bytes);
            }
        }
    }
    let paths: Vec<&str> = files.iter().map(String::as_str).collect();
    decide(&paths, |path| contents.get(path).cloned(), false).map_err(StepError::BuildConfigInvalid)
}

/// The artifacts-bucket folder of a deployment's build output (CodeBuild's artifact `Path`).
pub fn artifact_path(site: &SiteName, deployment: &DeploymentId) -> String {
    format!("builds/{site}/{deployment}")
}
