//! The control-plane API's request and response bodies, shared by the server and the CLI.

use serde::{Deserialize, Serialize};

use time::OffsetDateTime;

use crate::model::{
    CanaryWeight, Deployment, DeploymentSource, DeploymentStatus, RecordedError, RepoLink,
    RoutingFlags, Site, Traffic,
};
use crate::names::{BranchName, DeploymentId, ServiceName, SiteName, TargetName};
use crate::ports::{LogLine, UploadTarget};
use crate::service::Service;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSiteRequest {
    pub name: String,
    #[serde(default)]
    pub spa: bool,
    #[serde(default)]
    pub clean_urls: bool,
    pub retain: Option<u32>,
    /// `owner/repo` on GitHub: pushes and pull requests deploy this site.
    pub repo: Option<String>,
    /// The production branch (default `main`); other branches deploy previews.
    pub branch: Option<String>,
    /// The app's directory inside the repository (a monorepo).
    pub root: Option<String>,
}

/// A site as the API shows it. Its fields are spelled out, not the domain record flattened,
/// so renaming a domain field never changes the API (`infra/api/openapi.yaml` pins it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteView {
    pub name: SiteName,
    pub spa: bool,
    pub clean_urls: bool,
    /// How many finished deployments Prune keeps per target.
    pub retain: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// What production serves.
    pub live_deployment: Option<DeploymentId>,
    pub repo: Option<RepoLink>,
    /// The site's production URL.
    pub url: String,
}

impl SiteView {
    pub fn new(site: Site, url: String) -> Self {
        Self {
            live_deployment: site.live_deployment(),
            name: site.name,
            spa: site.routing.spa,
            clean_urls: site.routing.clean_urls,
            retain: site.retain,
            created_at: site.created_at,
            repo: site.repo,
            url,
        }
    }

    pub fn routing(&self) -> RoutingFlags {
        RoutingFlags {
            spa: self.spa,
            clean_urls: self.clean_urls,
        }
    }
}

/// A deployment as the API shows it, its fields spelled out like [`SiteView`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub id: DeploymentId,
    pub site: SiteName,
    pub status: DeploymentStatus,
    /// `production` or a preview target.
    pub target: TargetName,
    pub source: DeploymentSource,
    /// The caller said the source is already built output.
    pub prebuilt: bool,
    /// The pipeline built the source.
    pub built: bool,
    pub spa: bool,
    pub clean_urls: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it last became production's live deployment.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub activated_at: Option<OffsetDateTime>,
    pub error: Option<RecordedError>,
    pub file_count: Option<u64>,
    pub bytes: Option<u64>,
    /// The URL that serves this deployment's target (the site's URL for production).
    pub url: String,
    /// This deployment's own URL, valid until it is pruned.
    pub deployment_url: String,
}

impl DeploymentView {
    pub fn new(deployment: Deployment, url: String, deployment_url: String) -> Self {
        Self {
            id: deployment.id,
            site: deployment.site,
            status: deployment.status,
            target: deployment.target,
            source: deployment.source,
            prebuilt: deployment.prebuilt,
            built: deployment.built,
            spa: deployment.routing.spa,
            clean_urls: deployment.routing.clean_urls,
            created_at: deployment.created_at,
            updated_at: deployment.updated_at,
            activated_at: deployment.activated_at,
            error: deployment.error,
            file_count: deployment.file_count,
            bytes: deployment.bytes,
            url,
            deployment_url,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    /// The upload is already built output: publish it as it is.
    #[serde(default)]
    pub prebuilt: bool,
    /// The zip's size, when known: an upload over the limit is refused before anything is created.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDeploymentResponse {
    pub deployment: DeploymentView,
    pub upload: UploadTarget,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Defaults to the previously live deployment.
    pub to: Option<DeploymentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// A preview target (`pr-12`, `feature-x`) whose live deployment, or a deployment id.
    pub from: String,
}

/// A preview target as `slipway previews` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewView {
    pub target: TargetName,
    pub branch: Option<BranchName>,
    pub pull_request: Option<u64>,
    pub live_deployment: DeploymentId,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What `deploy --json`, `rollback --json` and `promote --json` print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentOutcome {
    pub deployment_id: DeploymentId,
    pub status: DeploymentStatus,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsResponse {
    pub deployment_id: DeploymentId,
    pub status: DeploymentStatus,
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    /// Stable, machine-readable: `site_not_found`, `invalid_name`, `payload_too_large`, ...
    pub code: String,
    pub message: String,
}

/// `POST /sites/{site}/services`: a new service. Unset runtime and handler are detected from
/// the first deploy's source; sizes default to Lambda's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    pub name: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    /// Its path on the site's hosts: `/api` or under it.
    pub route: Option<String>,
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub concurrency: Option<u32>,
}

/// What a target serves: the stable deployment and, during a canary, the new one's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficView {
    pub stable: DeploymentId,
    pub canary: Option<CanaryView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryView {
    pub deployment_id: DeploymentId,
    /// Percent of requests, 1 to 99.
    pub weight: CanaryWeight,
}

impl From<Traffic> for TrafficView {
    fn from(traffic: Traffic) -> Self {
        Self {
            stable: traffic.stable,
            canary: traffic.canary.map(|canary| CanaryView {
                deployment_id: canary.deployment,
                weight: canary.weight,
            }),
        }
    }
}

/// A service as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub name: ServiceName,
    pub site: SiteName,
    /// Lambda's spelling (`python3.12`); null until given or detected.
    pub runtime: Option<String>,
    pub handler: Option<String>,
    /// MB.
    pub memory: u32,
    /// Seconds.
    pub timeout: u32,
    pub concurrency: u32,
    pub route: Option<String>,
    /// Its own address; null where the platform has not given it one yet.
    pub url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// What production serves; null before the first deploy.
    pub traffic: Option<TrafficView>,
}

impl ServiceView {
    pub fn new(service: Service, url: Option<String>) -> Self {
        let settings = service.settings;
        Self {
            name: service.name,
            site: service.site,
            runtime: settings.runtime.map(|r| r.to_string()),
            handler: settings.handler.map(|h| h.as_str().to_owned()),
            memory: settings.memory.get(),
            timeout: settings.timeout.get(),
            concurrency: settings.concurrency.get(),
            route: service.route.map(String::from),
            url,
            created_at: service.created_at,
            traffic: service.production.map(TrafficView::from),
        }
    }
}
