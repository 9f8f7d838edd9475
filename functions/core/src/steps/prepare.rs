//! Prepare: records that the deployment started and decides between build and prebuilt.

use serde::{Deserialize, Serialize};

use super::{blocking_failed, ArtifactRef, Pipeline, StepError};
use crate::build_plan::{decide, BuildDecision, Framework};
use crate::model::{DeploymentStatus, ObjectLocation, RoutingFlags};
use crate::names::{DeploymentId, SiteName};
use crate::ports::{Bucket, DeploymentPatch};
use crate::ranged::RangedReader;
use crate::zipsafe::{open_archive, read_entry};

/// Config files larger than this are not read for detection.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareInput {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub source: ObjectLocation,
    #[serde(default)]
    pub prebuilt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOutput {
    pub needs_build: bool,
    /// The buildspec handed to CodeBuild (or the local builder) when `needs_build`.
    pub buildspec: Option<String>,
    /// CodeBuild's S3 source location: `{bucket}/{key}`.
    pub source_location: String,
    /// What Publish reads.
    pub artifact: ArtifactRef,
    pub routing: RoutingFlags,
    /// The detected framework; Publish uses it to recognise its hashed assets.
    pub framework: Option<Framework>,
}

pub async fn prepare(p: &Pipeline, input: PrepareInput) -> Result<PrepareOutput, StepError> {
    let site = p.state.get_site(&input.site).await?;
    // Fails early with DeploymentNotFound before touching the source.
    p.state
        .get_deployment(&input.site, &input.deployment_id)
        .await?;

    let reader = RangedReader::open(
        p.objects.clone(),
        input.source.bucket,
        &input.source.key,
        RangedReader::DEFAULT_CHUNK,
    )
    .await?;
    let limits = p.config.zip_limits;
    let prebuilt = input.prebuilt;
    let (decision, root) = tokio::task::spawn_blocking(move || {
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
    .map_err(blocking_failed)??;

    let resolve = |spa: Option<bool>, clean_urls: Option<bool>| RoutingFlags {
        spa: spa.unwrap_or(site.routing.spa),
        clean_urls: clean_urls.unwrap_or(site.routing.clean_urls),
    };
    let source_location = format!(
        "{}/{}",
        p.config.buckets.name_of(input.source.bucket),
        input.source.key
    );
    let output = match decision {
        BuildDecision::Prebuilt { spa, clean_urls } => PrepareOutput {
            needs_build: false,
            buildspec: None,
            source_location,
            artifact: ArtifactRef {
                location: input.source.clone(),
                root,
            },
            routing: resolve(spa, clean_urls),
            framework: None,
        },
        BuildDecision::Build(plan) => PrepareOutput {
            needs_build: true,
            buildspec: Some(plan.buildspec_yaml()),
            source_location,
            artifact: ArtifactRef {
                location: ObjectLocation {
                    bucket: Bucket::Artifacts,
                    key: format!(
                        "{}/output.zip",
                        artifact_path(&input.site, &input.deployment_id)
                    ),
                },
                root: None,
            },
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
        framework = output.framework.map_or("static", |f| f.as_str()),
        "prepared"
    );
    Ok(output)
}

/// The artifacts-bucket folder of a deployment's build output (CodeBuild's artifact `Path`).
pub fn artifact_path(site: &SiteName, deployment: &DeploymentId) -> String {
    format!("builds/{site}/{deployment}")
}
