//! `slipway dev`: the whole control plane on one machine. The API (plus the upload endpoint
//! that stands in for presigned S3 PUTs), the deploy workflow, the builder, the stores and
//! the edge, all on loopback, with everything persisted under the state directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use slipway_core::api::{json_response, ApiError, ControlPlane, MAX_JSON_BODY};
use slipway_core::housekeeping::{expire_abandoned_uploads, sweep};
use slipway_core::model::Bucket;
use slipway_core::model::{DeploymentStatus, ObjectLocation};
use slipway_core::ports::UploadTarget;
use slipway_core::ports::{
    ObjectBody, ObjectMeta, ObjectStore, StateStore, UploadError, UploadTargets,
};
use slipway_core::site::edge::{Addresses, Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{BucketNames, DeploySiteTasks, MarkFailedDeps, SitePorts};
use slipway_core::trigger::{
    on_source_object, parse_source_key, SourceEvent, SourceKey, TriggerOutcome,
};
use slipway_core::webhook::{GithubWebhook, WebhookSecret, MAX_WEBHOOK_BODY};
use slipway_github::{GithubApi, GithubConfig};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::builder::LocalBuilder;
use crate::git::GitRepos;
use crate::guard::{check_json_body, check_json_content_type, Guard};
use crate::objects::FsObjectStore;
use crate::sqlite::SqliteState;
use crate::workflow::{LocalDefinition, LocalWorkflow, WorkflowSetupError};

/// The largest source zip the local upload endpoint accepts.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct DevConfig {
    pub state_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub edge_addr: SocketAddr,
    /// When set, every API request must carry `Authorization: Bearer {token}`.
    pub token: Option<String>,
    pub limits: DevLimits,
    pub github: DevGithub,
}

/// `slipway dev`'s GitHub settings (`SLIPWAY_GITHUB_*` in the CLI).
#[derive(Debug, Clone)]
pub struct DevGithub {
    /// Without it, `POST /webhooks/github` refuses every delivery.
    pub webhook_secret: Option<WebhookSecret>,
    /// Where commit statuses go, and with which token.
    pub api: GithubConfig,
}

/// What `slipway dev` accepts before it refuses an upload or fails a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevLimits {
    /// Source and artifact zips: entries, uncompressed bytes, compression ratio.
    pub zip: ZipLimits,
    /// The largest source zip the upload endpoint takes.
    pub max_upload_bytes: u64,
}

impl Default for DevLimits {
    fn default() -> Self {
        Self {
            zip: ZipLimits::default(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] crate::sqlite::OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Workflow(#[from] WorkflowSetupError),
    #[error("cannot resume: {0}")]
    Resume(#[from] slipway_core::ports::StateError),
    #[error("cannot expire abandoned uploads: {0}")]
    Housekeeping(#[source] slipway_core::steps::StepError),
    #[error("another slipway dev is using the state directory {path}; stop it or pass a different --state-dir")]
    StateDirBusy { path: String },
    #[error(transparent)]
    Github(#[from] slipway_github::GithubConfigError),
}

/// The local bucket names: what CodeBuild overrides and execution inputs say.
pub fn local_buckets() -> BucketNames {
    BucketNames {
        source: "slipway-source".into(),
        artifacts: "slipway-artifacts".into(),
        hosting: "slipway-hosting".into(),
    }
}

pub struct DevServer {
    api_url: String,
    edge_url: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Held for the server's life: the state directory's exclusive lock.
    _lock: std::fs::File,
}

/// How often housekeeping sweeps for abandoned uploads and deployments left in flight.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

async fn housekeeping(deps: MarkFailedDeps, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = OffsetDateTime::now_utc();
                if let Err(e) = sweep(&deps, now).await {
                    tracing::warn!(error = %e, "housekeeping failed; will retry");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

struct LocalUploads {
    api_url: String,
    max_bytes: u64,
}

#[async_trait]
impl UploadTargets for LocalUploads {
    fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    async fn upload_target(&self, location: &ObjectLocation) -> Result<UploadTarget, UploadError> {
        let headers = [("content-type".to_owned(), "application/zip".to_owned())].into();
        Ok(UploadTarget {
            method: "PUT".into(),
            url: format!("{}/{}", self.api_url, location.key),
            headers,
            max_bytes: self.max_bytes,
        })
    }
}

#[derive(Clone)]
struct ApiState {
    control_plane: Arc<ControlPlane>,
    webhook: Option<Arc<GithubWebhook>>,
    objects: Arc<FsObjectStore>,
    state: SqliteState,
    workflow: LocalWorkflow,
    token: Option<String>,
    max_upload: u64,
    /// The Host, Origin and content-type rules (see [`crate::guard`]).
    guard: Guard,
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

impl DevServer {
    pub async fn start(config: DevConfig) -> Result<DevServer, DevError> {
        let state_dir = &config.state_dir;
        let dir_error = |source| DevError::StateDir {
            path: state_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(dir_error)?;
        // Two processes on one state directory would fail each other's in-flight deploys.
        let lock = std::fs::File::create(state_dir.join("lock")).map_err(dir_error)?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => DevError::StateDirBusy {
                path: state_dir.display().to_string(),
            },
            std::fs::TryLockError::Error(source) => DevError::StateDir {
                path: state_dir.display().to_string(),
                source,
            },
        })?;
        let state = SqliteState::open(&state_dir.join("state.db"))?;
        let objects = Arc::new(FsObjectStore::new(state_dir.join("objects")).map_err(dir_error)?);
        let scratch = state_dir.join("builds");
        std::fs::create_dir_all(&scratch).map_err(dir_error)?;

        let api_listener =
            TcpListener::bind(config.api_addr)
                .await
                .map_err(|source| DevError::Bind {
                    addr: config.api_addr,
                    source,
                })?;
        let edge_listener = TcpListener::bind(config.edge_addr)
            .await
            .map_err(|source| DevError::Bind {
                addr: config.edge_addr,
                source,
            })?;
        let api_addr = api_listener.local_addr().map_err(|source| DevError::Bind {
            addr: config.api_addr,
            source,
        })?;
        let edge_addr = edge_listener
            .local_addr()
            .map_err(|source| DevError::Bind {
                addr: config.edge_addr,
                source,
            })?;
        let api_url = format!("http://{api_addr}");
        if !api_addr.ip().to_canonical().is_loopback() && config.token.is_none() {
            tracing::warn!(
                %api_addr,
                "the API listens beyond loopback without --token: anyone who can reach {api_addr} can deploy and roll back"
            );
        }
        let edge_url = format!("http://localhost:{}", edge_addr.port());

        let github = Arc::new(GithubApi::new(config.github.api.clone())?);
        let hosts = Hosts::single("localhost");
        let tasks = DeploySiteTasks::new(SitePorts {
            objects: objects.clone(),
            state: Arc::new(state.clone()),
            switch: Arc::new(KvsSwitch::new(Arc::new(state.clone()), hosts.clone())),
            repos: Arc::new(GitRepos::new(state_dir.join("git"))),
            statuses: github,
            addresses: Addresses {
                hosts,
                urls: local_urls(edge_addr.port()),
            },
            buckets: local_buckets(),
            zip_limits: config.limits.zip,
            publish_concurrency: 16,
        });
        let builder = Arc::new(
            LocalBuilder::new(objects.clone(), Arc::new(state.clone()), scratch)
                .with_limits(config.limits.zip),
        );
        let workflow = LocalWorkflow::new(
            vec![LocalDefinition::deploy_site(tasks.clone())],
            builder,
            local_buckets(),
            state.clone(),
        )?;
        let interrupted = workflow.fail_interrupted().await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "marked deployments cut off by the last shutdown as failed"
            );
        }
        // Uploads go through this process, so any still awaited from the last run never come.
        expire_abandoned_uploads(
            &tasks.mark_failed,
            time::Duration::ZERO,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(DevError::Housekeeping)?;
        let uploads = Arc::new(LocalUploads {
            api_url: api_url.clone(),
            max_bytes: config.limits.max_upload_bytes,
        });
        let control_plane = Arc::new(ControlPlane::new(
            tasks.traffic().clone(),
            tasks.activate.addresses.clone(),
            uploads,
        ));
        let webhook = config.github.webhook_secret.clone().map(|secret| {
            Arc::new(GithubWebhook::new(
                tasks.traffic().clone(),
                Arc::new(workflow.clone()),
                secret,
            ))
        });

        let (shutdown, shutdown_rx) = watch::channel(false);
        let api_state = ApiState {
            control_plane,
            webhook,
            objects: objects.clone(),
            state: state.clone(),
            workflow,
            token: config.token.clone(),
            max_upload: config.limits.max_upload_bytes,
            guard: Guard::new(api_addr),
        };
        let app = axum::Router::new()
            .fallback(serve_api)
            .with_state(api_state);
        let api_shutdown = wait_for(shutdown_rx.clone());
        let api_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(crate::edge::no_delay(api_listener), app)
                .with_graceful_shutdown(api_shutdown)
                .await
            {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        let housekeeping_task =
            tokio::spawn(housekeeping(tasks.mark_failed.clone(), shutdown_rx.clone()));
        let edge_shutdown = wait_for(shutdown_rx);
        let edge_task = tokio::spawn(async move {
            if let Err(e) = crate::edge::serve_edge(
                edge_listener,
                Arc::new(state.clone()),
                objects.clone(),
                edge_shutdown,
            )
            .await
            {
                tracing::error!(error = %e, "edge server stopped");
            }
        });
        tracing::info!(%api_url, %edge_url, state_dir = %state_dir.display(), "slipway dev is up");
        Ok(DevServer {
            api_url,
            edge_url,
            shutdown,
            tasks: vec![api_task, edge_task, housekeeping_task],
            _lock: lock,
        })
    }

    pub fn api_url(&self) -> String {
        self.api_url.clone()
    }

    /// Sites answer at `http://{site}.localhost:{port}/`.
    pub fn edge_url(&self) -> String {
        self.edge_url.clone()
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn authorized(token: &Option<String>, request: &Request) -> bool {
    let Some(expected) = token else { return true };
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is a secret.
    presented.is_some_and(|p| {
        p.len() == expected.len()
            && p.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

fn to_axum(response: http::Response<Bytes>) -> Response {
    response.map(Body::from)
}

/// Sites, previews and deployments answer on the edge's port under `localhost`.
fn local_urls(edge_port: u16) -> UrlTemplate {
    // The template is well formed by construction.
    UrlTemplate::parse(&format!("http://{{host}}:{edge_port}/"))
        .unwrap_or_else(|_| unreachable!("an http:// template with {{host}}"))
}

/// Reads a request body up to `limit` bytes, or answers 413.
async fn read_body(
    request: Request,
    limit: usize,
) -> Result<http::Request<Bytes>, http::Response<Bytes>> {
    let (parts, body) = request.into_parts();
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(http::Request::from_parts(parts, collected.to_bytes())),
        Err(_) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
        .into_response()),
    }
}

/// A 405 that names the one method the route takes (RFC 9110 asks for `Allow`).
fn method_not_allowed(allow: &'static str, message: &str) -> http::Response<Bytes> {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
    .into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// GitHub signs its deliveries; no bearer token applies to them.
async fn serve_webhook(app: &ApiState, request: Request) -> http::Response<Bytes> {
    if request.method() != Method::POST {
        return method_not_allowed("POST", "webhooks take POST");
    }
    let Some(webhook) = &app.webhook else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_disabled",
            "GitHub webhooks are off: start slipway dev with SLIPWAY_GITHUB_WEBHOOK_SECRET set",
        )
        .into_response();
    };
    match read_body(request, MAX_WEBHOOK_BODY).await {
        Ok(request) => webhook.handle(request).await,
        Err(response) => response,
    }
}

/// A guard's refusal. The body may be unread: the client should not reuse the connection.
fn refused(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    to_axum(response)
}

async fn serve_api(State(app): State<ApiState>, request: Request) -> Response {
    if request.uri().path() == "/webhooks/github" {
        // GitHub signs each delivery, and deliveries come through tunnels that keep their own
        // Host: only the Origin rule applies (a browser's request is never a delivery).
        if let Err(error) = app.guard.check_origin(&request) {
            return refused(error);
        }
        return to_axum(serve_webhook(&app, request).await);
    }
    if let Err(error) = app.guard.check(&request) {
        return refused(error);
    }
    if !authorized(&app.token, &request) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
        .into_response();
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return to_axum(response);
    }
    if request.uri().path().starts_with("/uploads/") {
        if request.method() != Method::PUT {
            return to_axum(method_not_allowed("PUT", "uploads take PUT"));
        }
        return to_axum(upload(&app, request).await.unwrap_or_else(|error| {
            // The body may be unread: tell the client not to reuse this connection.
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            response
        }));
    }
    // Every other route's body is JSON (uploads and the webhook have rules of their own).
    if let Err(error) = check_json_content_type(&request) {
        return refused(error);
    }
    match read_body(request, MAX_JSON_BODY).await {
        Ok(request) => match check_json_body(&request) {
            Ok(()) => to_axum(app.control_plane.handle(request).await),
            Err(error) => to_axum(error.into_response()),
        },
        Err(response) => to_axum(response),
    }
}

/// The local stand-in for a presigned S3 PUT: stores the zip in the source bucket, then
/// hands the object-created event to the same source trigger the `source-trigger` Lambda runs.
async fn upload(app: &ApiState, request: Request) -> Result<http::Response<Bytes>, ApiError> {
    let key = request.uri().path().trim_start_matches('/').to_owned();
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "upload_not_found",
            format!("no upload is expected at /{key}"),
        )
    };
    let Ok(SourceKey::Upload {
        site,
        deployment_id,
    }) = parse_source_key(&key)
    else {
        return Err(not_found());
    };
    let deployment = app
        .state
        .get_deployment(&site, &deployment_id)
        .await
        .map_err(|_| not_found())?;
    if deployment.status != DeploymentStatus::Queued
        || app
            .objects
            .head(Bucket::Source, &key)
            .await
            .ok()
            .flatten()
            .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_uploaded",
            format!("deployment {deployment_id} already has its source"),
        ));
    }
    let length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "uploads need a Content-Length",
            )
        })?;
    if length > app.max_upload {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the upload is {length} bytes; the limit is {} bytes",
                app.max_upload
            ),
        ));
    }
    let (chunks_tx, chunks) = mpsc::channel(8);
    let mut frames = request.into_body().into_data_stream();
    let feeder = tokio::spawn(async move {
        while let Some(frame) = frames.next().await {
            let chunk = frame.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if chunks_tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let meta = ObjectMeta {
        content_type: "application/zip".into(),
        cache_control: None,
    };
    let stored = app
        .objects
        .put(
            Bucket::Source,
            &key,
            ObjectBody::Stream {
                len: length,
                chunks,
            },
            &meta,
        )
        .await;
    feeder.abort();
    let info = stored.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "upload_failed",
            format!("the upload did not complete: {e}"),
        )
    })?;
    let event = SourceEvent {
        key: key.clone(),
        version: info.etag,
        event_time: OffsetDateTime::now_utc(),
    };
    let outcome = on_source_object(&app.state, &app.workflow, &event)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "source trigger failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the deploy could not be started; try again",
            )
        })?;
    let started = matches!(
        outcome,
        TriggerOutcome::Started { .. } | TriggerOutcome::AlreadyStarted { .. }
    );
    let status = if started {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok(json_response(
        status,
        &serde_json::json!({ "deployment_id": deployment_id, "started": started }),
    ))
}
