//! The control-plane API: plain JSON over HTTP, written against `http` types so that
//! `slipway dev` (axum) and the `api` Lambda (lambda_http) serve the very same routes.

mod services;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

use crate::api_types::{
    ApiErrorBody, ApiErrorDetail, CreateDeploymentRequest, CreateDeploymentResponse,
    CreateSiteRequest, DeploymentOutcome, DeploymentView, LogsResponse, PreviewView,
    PromoteRequest, RollbackRequest, SiteView,
};
use crate::decisions::Displaced;
use crate::model::Bucket;
use crate::model::{rollback_candidate, Deployment, ObjectLocation, RepoLink, RoutingFlags, Site};
use crate::names::{
    BranchName, DeploymentId, NameError, RepoName, RootDir, ServiceName, SiteName, TargetName,
};
use crate::ports::{Lifecycle, StateError, UploadTargets};
use crate::site::edge::Addresses;
use crate::steps::{StepError, TrafficSync};

/// JSON bodies above this size are refused with 413.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The control-plane API: the records, the switch its rollback and promote end at, the
/// addresses its answers link, and where uploads go.
pub struct ControlPlane {
    traffic: TrafficSync,
    addresses: Addresses,
    uploads: Arc<dyn UploadTargets>,
}

/// The production branch of a site linked to a repository without `--branch`.
pub const DEFAULT_PRODUCTION_BRANCH: &str = "main";

/// A failed request: its status, a stable code and a message for people.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response<Bytes> {
        let body = ApiErrorBody {
            error: ApiErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        json_response(self.status, &body)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::SiteExists(_) => {
                Self::new(StatusCode::CONFLICT, "site_exists", e.to_string())
            }
            StateError::SiteNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "site_not_found", e.to_string())
            }
            StateError::DeploymentNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "deployment_not_found", e.to_string())
            }
            StateError::ServiceExists { .. } => {
                Self::new(StatusCode::CONFLICT, "service_exists", e.to_string())
            }
            StateError::ServiceNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "service_not_found", e.to_string())
            }
            StateError::Lifecycle(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StateError::Unavailable(_) => {
                tracing::error!(error = %e, "state store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the state store is unavailable; try again",
                )
            }
        }
    }
}

impl From<StepError> for ApiError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::State(state) => state.into(),
            other => {
                tracing::error!(error = %other, "route update failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the routing store is unavailable; try again",
                )
            }
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string())
    }
}

/// Every route the control plane serves, as method and path template (OpenAPI's spelling).
/// `infra/api/openapi.yaml` documents exactly these; a test holds the two together.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/sites"),
    ("POST", "/sites"),
    ("GET", "/sites/{site}"),
    ("GET", "/sites/{site}/deployments"),
    ("POST", "/sites/{site}/deployments"),
    ("GET", "/sites/{site}/deployments/{deployment_id}"),
    ("POST", "/sites/{site}/rollback"),
    ("POST", "/sites/{site}/promote"),
    ("GET", "/sites/{site}/previews"),
    ("GET", "/sites/{site}/services"),
    ("POST", "/sites/{site}/services"),
    ("GET", "/sites/{site}/services/{service}"),
    ("DELETE", "/sites/{site}/services/{service}"),
    ("GET", "/deployments/{deployment_id}"),
    ("GET", "/deployments/{deployment_id}/logs"),
];

/// The methods [`ROUTES`] serve on `path`, as an `Allow` header lists them.
fn allowed_methods(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let matches = |template: &str| {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| part.starts_with('{') || part == segment)
    };
    ROUTES
        .iter()
        .filter(|(_, template)| matches(template))
        .map(|(method, _)| *method)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Like [`parse_required_json`], but an empty body means the defaults.
fn parse_json<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() <= MAX_JSON_BODY && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_required_json(body)
}

fn parse_required_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_JSON_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {MAX_JSON_BODY} bytes"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid JSON body: {e}"),
        )
    })
}

fn deployment_id(raw: &str) -> Result<DeploymentId, ApiError> {
    DeploymentId::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))
}

fn query_u64(query: Option<&str>, name: &str) -> Result<u64, ApiError> {
    let Some(query) = query else { return Ok(0) };
    for pair in query.split('&') {
        if let Some(value) = pair
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return value.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("{name} must be a non-negative integer"),
                )
            });
        }
    }
    Ok(0)
}

impl ControlPlane {
    pub fn new(
        traffic: TrafficSync,
        addresses: Addresses,
        uploads: Arc<dyn UploadTargets>,
    ) -> Self {
        Self {
            traffic,
            addresses,
            uploads,
        }
    }

    pub fn site_url(&self, site: &SiteName) -> String {
        self.addresses.production_url(site)
    }

    fn site_view(&self, site: Site) -> SiteView {
        let url = self.site_url(&site.name);
        SiteView::new(site, url)
    }

    fn deployment_view(&self, deployment: Deployment) -> DeploymentView {
        let url = self
            .addresses
            .target_url(&deployment.target, &deployment.site);
        let deployment_url = self
            .addresses
            .deployment_url(&deployment.id, &deployment.site);
        DeploymentView::new(deployment, url, deployment_url)
    }

    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(str::to_owned);
        let result = self
            .route(&method, &path, query.as_deref(), request.body())
            .await;
        let mut response = result.unwrap_or_else(ApiError::into_response);
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            // RFC 9110: a 405 lists the methods the resource does serve.
            if let Ok(allow) = http::HeaderValue::from_str(&allowed_methods(&path)) {
                response.headers_mut().insert(http::header::ALLOW, allow);
            }
        }
        tracing::debug!(%method, %path, status = response.status().as_u16(), "api request");
        response
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &Bytes,
    ) -> Result<Response<Bytes>, ApiError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["sites"]) => self.list_sites().await,
            (&Method::POST, ["sites"]) => self.create_site(parse_required_json(body)?).await,
            (&Method::GET, ["sites", site]) => self.show_site(&SiteName::parse(site)?).await,
            (&Method::GET, ["sites", site, "deployments"]) => {
                self.list_deployments(&SiteName::parse(site)?).await
            }
            (&Method::POST, ["sites", site, "deployments"]) => {
                self.create_deployment(&SiteName::parse(site)?, parse_json(body)?)
                    .await
            }
            (&Method::GET, ["sites", site, "deployments", id]) => {
                let deployment = self
                    .traffic
                    .state
                    .get_deployment(&SiteName::parse(site)?, &deployment_id(id)?)
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    &self.deployment_view(deployment),
                ))
            }
            (&Method::POST, ["sites", site, "rollback"]) => {
                self.roll_back(&SiteName::parse(site)?, parse_json(body)?)
                    .await
            }
            (&Method::POST, ["sites", site, "promote"]) => {
                self.promote(&SiteName::parse(site)?, parse_required_json(body)?)
                    .await
            }
            (&Method::GET, ["sites", site, "previews"]) => {
                self.list_previews(&SiteName::parse(site)?).await
            }
            (&Method::GET, ["sites", site, "services"]) => {
                self.list_services(&SiteName::parse(site)?).await
            }
            (&Method::POST, ["sites", site, "services"]) => {
                self.create_service(&SiteName::parse(site)?, parse_required_json(body)?)
                    .await
            }
            (&Method::GET, ["sites", site, "services", service]) => {
                self.show_service(&SiteName::parse(site)?, &ServiceName::parse(service)?)
                    .await
            }
            (&Method::DELETE, ["sites", site, "services", service]) => {
                self.delete_service(&SiteName::parse(site)?, &ServiceName::parse(service)?)
                    .await
            }
            (&Method::GET, ["deployments", id]) => {
                let deployment = self
                    .traffic
                    .state
                    .find_deployment(&deployment_id(id)?)
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    &self.deployment_view(deployment),
                ))
            }
            (&Method::GET, ["deployments", id, "logs"]) => {
                self.logs(&deployment_id(id)?, query_u64(query, "after")?)
                    .await
            }
            (
                _,
                ["sites"]
                | ["sites", _]
                | ["sites", _, "deployments"]
                | ["sites", _, "deployments", _]
                | ["sites", _, "rollback"]
                | ["sites", _, "promote"]
                | ["sites", _, "previews"]
                | ["sites", _, "services"]
                | ["sites", _, "services", _]
                | ["deployments", _]
                | ["deployments", _, "logs"],
            ) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not supported on {path}"),
            )),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {path}"),
            )),
        }
    }

    async fn list_sites(&self) -> Result<Response<Bytes>, ApiError> {
        let sites: Vec<SiteView> = self
            .traffic
            .state
            .list_sites()
            .await?
            .into_iter()
            .map(|s| self.site_view(s))
            .collect();
        Ok(json_response(StatusCode::OK, &sites))
    }

    async fn create_site(&self, request: CreateSiteRequest) -> Result<Response<Bytes>, ApiError> {
        let name = SiteName::parse(&request.name)?;
        let retain = request.retain.unwrap_or(Site::DEFAULT_RETAIN);
        if !(1..=1000).contains(&retain) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_retain",
                "retain must be between 1 and 1000",
            ));
        }
        let repo = match (&request.repo, &request.branch, &request.root) {
            (Some(repo), branch, root) => Some(RepoLink {
                repo: RepoName::parse(repo)?,
                production_branch: BranchName::parse(
                    branch.as_deref().unwrap_or(DEFAULT_PRODUCTION_BRANCH),
                )?,
                root: root.as_deref().map(RootDir::parse).transpose()?,
            }),
            (None, None, None) => None,
            (None, _, _) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_repo",
                    "branch and root only apply to a site linked to a repository",
                ))
            }
        };
        let site = Site {
            name,
            routing: RoutingFlags {
                spa: request.spa,
                clean_urls: request.clean_urls,
            },
            retain,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo,
        };
        self.traffic.state.create_site(&site).await?;
        tracing::info!(site = %site.name, "site created");
        Ok(json_response(StatusCode::CREATED, &self.site_view(site)))
    }

    async fn show_site(&self, name: &SiteName) -> Result<Response<Bytes>, ApiError> {
        let site = self.traffic.state.get_site(name).await?;
        Ok(json_response(StatusCode::OK, &self.site_view(site)))
    }

    async fn list_deployments(&self, site: &SiteName) -> Result<Response<Bytes>, ApiError> {
        let views: Vec<DeploymentView> = self
            .traffic
            .state
            .list_deployments(site)
            .await?
            .into_iter()
            .map(|d| self.deployment_view(d))
            .collect();
        Ok(json_response(StatusCode::OK, &views))
    }

    async fn create_deployment(
        &self,
        site: &SiteName,
        request: CreateDeploymentRequest,
    ) -> Result<Response<Bytes>, ApiError> {
        self.traffic.state.get_site(site).await?;
        let max = self.uploads.max_bytes();
        if let Some(size) = request.size.filter(|size| *size > max) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the upload is {size} bytes; the limit is {max} bytes"),
            ));
        }
        let id = DeploymentId::generate();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        };
        let upload = self.uploads.upload_target(&source).await.map_err(|e| {
            tracing::error!(error = %e, "upload target");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
        let deployment = Deployment::queued(
            id,
            site.clone(),
            source,
            request.prebuilt,
            OffsetDateTime::now_utc(),
        );
        self.traffic.state.create_deployment(&deployment).await?;
        tracing::info!(site = %site, deployment_id = %id, prebuilt = request.prebuilt, "deployment created, awaiting upload");
        let response = CreateDeploymentResponse {
            deployment: self.deployment_view(deployment),
            upload,
        };
        Ok(json_response(StatusCode::CREATED, &response))
    }

    async fn roll_back(
        &self,
        site: &SiteName,
        request: RollbackRequest,
    ) -> Result<Response<Bytes>, ApiError> {
        let current = self.traffic.state.get_site(site).await?;
        let deployments = self.traffic.state.list_deployments(site).await?;
        let target = match request.to {
            Some(id) => deployments
                .iter()
                .find(|d| d.id == id)
                .ok_or(StateError::DeploymentNotFound(id))?,
            None => {
                rollback_candidate(&deployments, current.live_deployment()).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "no_rollback_target",
                        format!("site {site} has no previously live deployment to roll back to"),
                    )
                })?
            }
        };
        let live = self
            .serve_in_production(&current, target, Displaced::RolledBack)
            .await?;
        tracing::info!(site = %site, deployment_id = %live.id, "rolled back");
        Ok(json_response(StatusCode::OK, &self.outcome(live)))
    }

    /// Production serves a preview's deployment (or any published one): one state
    /// transaction and one key-value write. Nothing is rebuilt or copied.
    async fn promote(
        &self,
        site: &SiteName,
        request: PromoteRequest,
    ) -> Result<Response<Bytes>, ApiError> {
        let current = self.traffic.state.get_site(site).await?;
        let id = match DeploymentId::parse(&request.from) {
            Ok(id) => id,
            Err(_) => {
                let target = TargetName::parse(&request.from).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_promote_source",
                        format!(
                            "{:?} is neither a preview target nor a deployment id",
                            request.from
                        ),
                    )
                })?;
                self.traffic
                    .state
                    .list_previews(site)
                    .await?
                    .into_iter()
                    .find(|p| p.target == target && p.removed_at.is_none())
                    .and_then(|p| p.live_deployment())
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "preview_not_found",
                            format!("site {site} has no live preview {target}"),
                        )
                    })?
            }
        };
        let deployment = self.traffic.state.get_deployment(site, &id).await?;
        let live = self
            .serve_in_production(&current, &deployment, Displaced::Superseded)
            .await?;
        tracing::info!(site = %site, deployment_id = %live.id, from = %request.from, "promoted");
        Ok(json_response(StatusCode::OK, &self.outcome(live)))
    }

    async fn serve_in_production(
        &self,
        site: &Site,
        deployment: &Deployment,
        displaced: Displaced,
    ) -> Result<Deployment, ApiError> {
        if !deployment.status.is_servable() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_servable",
                format!(
                    "deployment {} is {}; only published deployments can go live",
                    deployment.id, deployment.status
                ),
            ));
        }
        let live = if site.live_deployment() == Some(deployment.id) {
            deployment.clone()
        } else {
            self.traffic
                .state
                .move_production(
                    &site.name,
                    &deployment.id,
                    displaced,
                    OffsetDateTime::now_utc(),
                )
                .await?
        };
        self.traffic.production(&site.name).await?;
        Ok(live)
    }

    fn outcome(&self, live: Deployment) -> DeploymentOutcome {
        DeploymentOutcome {
            url: self.site_url(&live.site),
            deployment_id: live.id,
            status: live.status,
        }
    }

    async fn list_previews(&self, site: &SiteName) -> Result<Response<Bytes>, ApiError> {
        self.traffic.state.get_site(site).await?;
        let views: Vec<PreviewView> = self
            .traffic
            .state
            .list_previews(site)
            .await?
            .into_iter()
            .filter(|p| p.removed_at.is_none())
            .filter_map(|p| {
                Some(PreviewView {
                    url: self.addresses.preview_url(&p.target, site),
                    live_deployment: p.live_deployment()?,
                    target: p.target,
                    branch: p.branch,
                    pull_request: p.pull_request,
                    updated_at: p.updated_at,
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, &views))
    }

    async fn logs(&self, id: &DeploymentId, after: u64) -> Result<Response<Bytes>, ApiError> {
        let deployment = self.traffic.state.find_deployment(id).await?;
        let lines = self.traffic.state.read_log(id, after).await?;
        let response = LogsResponse {
            deployment_id: *id,
            status: deployment.status,
            lines,
        };
        Ok(json_response(StatusCode::OK, &response))
    }
}
