//! A fake GitHub REST API for tests (the `testing` feature): a real HTTP server on 127.0.0.1,
//! so a `slipway dev` child process can use it too (`SLIPWAY_GITHUB_API_URL`).
//!
//! It serves what slipway calls, as GitHub answers it:
//! - `POST /repos/{owner}/{repo}/statuses/{sha}`: recorded in order; 401 without an
//!   `Authorization` header, 422 for a body that is not a commit status, else 201 unless told
//!   to fail ([`FakeGithub::fail_next_statuses`], [`FakeGithub::rate_limit_next_statuses`]).
//! - `GET /repos/{owner}/{repo}/git/trees/{sha}[?recursive=1]` and
//!   `GET /repos/{owner}/{repo}/contents/{path}?ref={sha}` (raw media type only) over the
//!   commits given to [`FakeGithub::add_commit`].
//!
//! The same routes answer under `/api/v3` too, GitHub Enterprise Server's prefix.
//! The server runs on its own thread and runtime, so a test that blocks its own thread (on a
//! child process, say) does not stall it. It stops when the [`FakeGithub`] is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use slipway_core::names::{CommitSha, RepoName};
use slipway_core::ports::CommitStatus;
use tokio::sync::oneshot;

/// One `POST .../statuses/{sha}`, whatever the fake answered. The status fields are read
/// from the body as sent: empty (or None) where it lacked them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStatus {
    /// `owner/name`, as the request path spelled it.
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub target_url: Option<String>,
    pub description: String,
    pub context: String,
    /// The whole JSON body; `Null` when it was not JSON.
    pub body: Value,
    pub authorization: Option<String>,
    /// The HTTP status the fake answered with (201 when the status was accepted).
    pub answered: u16,
}

/// Any request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// The path and query as sent, percent-encoding included.
    pub uri: String,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Status(StatusCode),
    /// A spent primary rate limit: 403 with `x-ratelimit-remaining: 0`.
    RateLimit,
}

#[derive(Debug, Default)]
struct Fake {
    statuses: Vec<RecordedStatus>,
    requests: Vec<RecordedRequest>,
    failures: VecDeque<Failure>,
    /// Files by path, per (lowercase `owner/name`, sha).
    commits: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
    max_tree_entries: Option<usize>,
    stream_contents: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Fake> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn commit_key(repo: &str, sha: &str) -> (String, String) {
    (repo.to_ascii_lowercase(), sha.to_owned())
}

/// A running fake GitHub API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeGithub {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeGithub {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    ///
    /// # Panics
    /// When no loopback port or thread can be had: the test cannot run.
    pub fn start() -> FakeGithub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("the fake GitHub needs a loopback port");
        listener
            .set_nonblocking(true)
            .expect("the fake GitHub's socket must be non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the fake GitHub needs a runtime");
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .expect("the fake GitHub's socket registers with its runtime")
        };
        let shared = Shared::default();
        let app = router(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("fake-github".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let stopped = async {
                        // A dropped sender stops the server as well.
                        let _ = stop.await;
                    };
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                    {
                        tracing::error!(%error, "the fake GitHub stopped");
                    }
                });
            })
            .expect("the fake GitHub needs a thread");
        FakeGithub {
            addr,
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// The API URL, as `GithubConfig::api_url` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same API under GitHub Enterprise Server's `/api/v3` prefix.
    pub fn enterprise_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    /// Every status POST so far, oldest first, failed ones included (see `answered`).
    pub fn statuses(&self) -> Vec<RecordedStatus> {
        lock(&self.shared).statuses.clone()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// The next `count` status POSTs answer `status` with a GitHub-style error body.
    pub fn fail_next_statuses(&self, count: usize, status: StatusCode) {
        let mut fake = lock(&self.shared);
        fake.failures
            .extend(std::iter::repeat_n(Failure::Status(status), count));
    }

    /// The next `count` status POSTs answer 403 with `x-ratelimit-remaining: 0`, as GitHub
    /// does when the primary rate limit is spent.
    pub fn rate_limit_next_statuses(&self, count: usize) {
        let mut fake = lock(&self.shared);
        fake.failures
            .extend(std::iter::repeat_n(Failure::RateLimit, count));
    }

    /// Serves a commit whose tree holds exactly these files (`/`-separated paths).
    pub fn add_commit<P, B>(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        files: impl IntoIterator<Item = (P, B)>,
    ) where
        P: Into<String>,
        B: Into<Vec<u8>>,
    {
        let files = files
            .into_iter()
            .map(|(path, bytes)| (path.into(), bytes.into()))
            .collect();
        lock(&self.shared)
            .commits
            .insert(commit_key(repo.as_str(), sha.as_str()), files);
    }

    /// Trees with more entries than this are cut to it and marked `truncated`, as GitHub
    /// does past 100,000 entries.
    pub fn truncate_trees_over(&self, max_entries: usize) {
        lock(&self.shared).max_tree_entries = Some(max_entries);
    }

    /// Serves file contents chunked, without a Content-Length.
    pub fn stream_contents(&self) {
        lock(&self.shared).stream_contents = true;
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn router(shared: Shared) -> Router {
    let api = Router::new()
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
        .route("/repos/{owner}/{repo}/git/trees/{sha}", get(get_tree))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(get_contents));
    Router::new()
        .merge(api.clone())
        .nest("/api/v3", api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

async fn record(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    lock(&shared).requests.push(RecordedRequest {
        method: request.method().clone(),
        uri: request.uri().to_string(),
        headers: request.headers().clone(),
    });
    next.run(request).await
}

/// GitHub's error body.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.as_str(),
    });
    (status, Json(body)).into_response()
}

impl Failure {
    fn response(self) -> Response {
        match self {
            Failure::Status(status) => error(
                status,
                &format!(
                    "{} (the fake GitHub was told to fail this call)",
                    status.canonical_reason().unwrap_or("failure")
                ),
            ),
            Failure::RateLimit => {
                let mut response = error(
                    StatusCode::FORBIDDEN,
                    "API rate limit exceeded for user ID 1.",
                );
                let headers = response.headers_mut();
                headers.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
                headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
                response
            }
        }
    }
}

async fn create_status(
    State(shared): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_status = serde_json::from_value::<CommitStatus>(body.clone()).is_ok();
    let mut fake = lock(&shared);
    let response = match fake.failures.pop_front() {
        Some(failure) => failure.response(),
        None if authorization.is_none() => {
            error(StatusCode::UNAUTHORIZED, "Requires authentication")
        }
        None if CommitSha::parse(&sha).is_err() => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("No commit found for SHA: {sha}"),
        ),
        None if !is_status => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request. The body is not a commit status.",
        ),
        None => (StatusCode::CREATED, Json(body.clone())).into_response(),
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    fake.statuses.push(RecordedStatus {
        repo: format!("{owner}/{repo}"),
        sha,
        state: field("state").unwrap_or_default(),
        target_url: field("target_url"),
        description: field("description").unwrap_or_default(),
        context: field("context").unwrap_or_default(),
        body,
        authorization,
        answered: response.status().as_u16(),
    });
    response
}

async fn get_tree(
    State(shared): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fake = lock(&shared);
    let Some(files) = fake
        .commits
        .get(&commit_key(&format!("{owner}/{repo}"), &sha))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    // GitHub lists everything below the tree for any value of `recursive`.
    let recursive = query.contains_key("recursive");
    let mut entries = BTreeMap::new();
    for (path, bytes) in files {
        let segments: Vec<&str> = path.split('/').collect();
        for depth in 1..segments.len() {
            let dir = segments[..depth].join("/");
            entries
                .entry(dir.clone())
                .or_insert_with(|| json!({ "path": dir, "mode": "040000", "type": "tree" }));
        }
        entries.insert(
            path.clone(),
            json!({ "path": path, "mode": "100644", "type": "blob", "size": bytes.len() }),
        );
    }
    let mut tree: Vec<Value> = entries
        .into_iter()
        .filter(|(path, _)| recursive || !path.contains('/'))
        .map(|(_, entry)| entry)
        .collect();
    let truncated = fake.max_tree_entries.is_some_and(|max| tree.len() > max);
    if let Some(max) = fake.max_tree_entries {
        tree.truncate(max);
    }
    Json(json!({ "sha": sha, "tree": tree, "truncated": truncated })).into_response()
}

async fn get_contents(
    State(shared): State<Shared>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let raw = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/vnd.github.raw"));
    if !raw {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "the fake GitHub serves contents with the raw media type only",
        );
    }
    let Some(reference) = query.get("ref") else {
        return error(
            StatusCode::NOT_FOUND,
            "the fake GitHub has no default branch; send ?ref=",
        );
    };
    let fake = lock(&shared);
    let Some(files) = fake
        .commits
        .get(&commit_key(&format!("{owner}/{repo}"), reference))
    else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("No commit found for the ref {reference}"),
        );
    };
    let Some(bytes) = files.get(&path) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let body = if fake.stream_contents {
        let chunks: Vec<Result<Bytes, Infallible>> = bytes
            .chunks(1024)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    } else {
        Body::from(bytes.clone())
    };
    ([(CONTENT_TYPE, "application/vnd.github.raw")], body).into_response()
}
