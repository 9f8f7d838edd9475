//! The control-plane API's request and response bodies, shared by the server and the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Deployment, DeploymentStatus, Site};
use crate::names::DeploymentId;
use crate::ports::LogLine;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSiteRequest {
    pub name: String,
    #[serde(default)]
    pub spa: bool,
    #[serde(default)]
    pub clean_urls: bool,
    pub retain: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteView {
    #[serde(flatten)]
    pub site: Site,
    /// The site's production URL.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    /// The URL that serves this deployment's target (the site's URL for production).
    pub url: String,
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

/// Where to send the source zip: a presigned S3 PUT on AWS, the local API in `slipway dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// The largest body the target accepts.
    pub max_bytes: u64,
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

/// What `deploy --json` and `rollback --json` print.
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
