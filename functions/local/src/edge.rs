//! The local edge: an HTTP server that runs the very `infra/edge/router.js` CloudFront runs,
//! in an embedded QuickJS engine, against the local key-value store, and serves what it routes
//! to from the hosting bucket of the local object store.
//!
//! Loading contract (shared with `tests/edge/load-router.mjs`): the line
//! `import cf from 'cloudfront';` becomes `const cf = globalThis.__slipwayCloudfront;`, the
//! file runs as a classic script, and the global `handler` is called once per request.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use rquickjs::promise::MaybePromise;
use rquickjs::{Context, Ctx, Exception, Function, Runtime, Value};
use serde::{Deserialize, Serialize};
use slipway_core::ports::{
    Bucket, KeyValueStore, KvsError, ObjectBody, ObjectStore, ObjectStoreError,
};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

const ROUTER_JS: &str = include_str!("../../../infra/edge/router.js");
const IMPORT_LINE: &str = "import cf from 'cloudfront';";
const SHIM_LINE: &str = "const cf = globalThis.__slipwayCloudfront;";

/// The `cloudfront` module's KVS helper over the native lookup. Like CloudFront's, `get`
/// returns a promise that rejects when the key is missing; formats `string` and `json`.
const CLOUDFRONT_SHIM: &str = r#"
globalThis.__slipwayCloudfront = {
  kvs: () => ({
    get: async (key, options) => {
      const format = options && options.format ? options.format : 'string';
      const value = __slipwayKvsGet(String(key));
      if (format === 'json') return JSON.parse(value);
      if (format === 'string') return value;
      throw new Error(`kvs format ${format} is not supported by the local edge`);
    },
  }),
};
"#;

/// The router source compiled into this binary.
pub fn router_source() -> &'static str {
    ROUTER_JS
}

/// Applies the loading contract: swaps the `cloudfront` import line for the shim global.
pub fn shim_source(source: &str) -> Result<String, EdgeError> {
    let mut found = false;
    let lines: Vec<&str> = source
        .split('\n')
        .map(|line| {
            if !found && line.trim_end() == IMPORT_LINE {
                found = true;
                SHIM_LINE
            } else {
                line
            }
        })
        .collect();
    if found {
        Ok(lines.join("\n"))
    } else {
        Err(EdgeError::MissingImport)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("router.js has no line `{IMPORT_LINE}` to replace")]
    MissingImport,
    #[error("the JS engine failed: {0}")]
    Engine(#[source] rquickjs::Error),
    #[error("router.js threw: {0}")]
    Script(String),
    #[error("router.js ran longer than {0:?}")]
    Timeout(Duration),
    #[error("router.js returned neither a request nor a response: {0}")]
    Output(#[source] serde_json::Error),
    #[error("router.js returned an unusable response: {0}")]
    BadResponse(String),
    #[error("the key-value store failed during routing: {0}")]
    Kvs(#[source] KvsError),
    #[error("could not start a router worker: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the router workers have stopped")]
    WorkersGone,
}

/// How the router's engines are sized.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// JS worker threads, each with its own runtime and context.
    pub workers: usize,
    /// Longest a single `handler` call may run, KVS lookup included.
    pub timeout: Duration,
    /// Heap limit per runtime. CloudFront allows a function 2 MB; QuickJS itself takes about
    /// 0.1 MB, and 4 MB leaves room for engine differences while a runaway router still
    /// fails fast rather than passing locally.
    pub memory_limit: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            workers: 2,
            timeout: Duration::from_secs(1),
            memory_limit: 4 * 1024 * 1024,
        }
    }
}

/// A query string parameter, header or cookie, as CloudFront Functions represent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub value: String,
    /// Set-Cookie attributes, in responses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// Every value, when the name repeats.
    #[serde(
        default,
        rename = "multiValue",
        skip_serializing_if = "Option::is_none"
    )]
    pub multi_value: Option<Vec<FieldValue>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

impl Field {
    /// Every (value, attributes) pair: `multiValue` wins over `value` when present, as in
    /// CloudFront.
    fn all(&self) -> Vec<(&str, Option<&str>)> {
        match &self.multi_value {
            Some(all) if !all.is_empty() => all
                .iter()
                .map(|v| (v.value.as_str(), v.attributes.as_deref()))
                .collect(),
            _ => vec![(self.value.as_str(), self.attributes.as_deref())],
        }
    }
}

pub type Fields = BTreeMap<String, Field>;

fn push_field(fields: &mut Fields, name: &str, value: &str) {
    let value = value.to_owned();
    match fields.get_mut(name) {
        Some(field) => {
            let first = FieldValue {
                value: field.value.clone(),
                attributes: None,
            };
            field
                .multi_value
                .get_or_insert_with(|| vec![first])
                .push(FieldValue {
                    value,
                    attributes: None,
                });
        }
        None => {
            let field = Field {
                value,
                attributes: None,
                multi_value: None,
            };
            fields.insert(name.to_owned(), field);
        }
    }
}

/// The `request` of a viewer-request event, and what the router returns to forward it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRequest {
    pub method: String,
    /// The path as received, still percent-encoded.
    pub uri: String,
    #[serde(default)]
    pub querystring: Fields,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Fields,
}

impl EdgeRequest {
    /// The request as CloudFront hands it to a function: lowercase header names, cookies
    /// split out of the headers, raw query string pairs.
    pub fn from_http(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let mut querystring = Fields::new();
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            push_field(&mut querystring, name, value);
        }
        let mut fields = Fields::new();
        let mut cookies = Fields::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            if name == COOKIE {
                for cookie in value.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
                    push_field(&mut cookies, name, value);
                }
            } else {
                push_field(&mut fields, name.as_str(), &value);
            }
        }
        EdgeRequest {
            method: method.as_str().to_owned(),
            uri: uri.path().to_owned(),
            querystring,
            headers: fields,
            cookies,
        }
    }
}

/// A response the router generated itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EdgeResponse {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(default, rename = "statusDescription")]
    pub status_description: Option<String>,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Fields,
    #[serde(default)]
    pub body: Option<ResponseBody>,
}

/// cloudfront-js-2.0 takes the body as `{encoding, data}` or, as a shortcut, a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ResponseBody {
    Text(String),
    Encoded { encoding: String, data: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RouterOutcome {
    /// Checked first: only a response has `statusCode`.
    Respond(EdgeResponse),
    Forward(EdgeRequest),
}

#[derive(Serialize)]
struct ViewerRequestEvent<'a> {
    version: &'static str,
    context: EventContext,
    viewer: Viewer,
    request: &'a EdgeRequest,
}

#[derive(Serialize)]
struct EventContext {
    #[serde(rename = "eventType")]
    event_type: &'static str,
    #[serde(rename = "requestId")]
    request_id: String,
}

#[derive(Serialize)]
struct Viewer {
    ip: String,
}

struct Job {
    event: String,
    reply: oneshot::Sender<Result<RouterOutcome, EdgeError>>,
}

/// A pool of JS worker threads running router.js. QuickJS runtimes are not `Send`, so each
/// worker owns one runtime and context for its whole life and takes jobs from a channel.
pub struct EdgeRouter {
    jobs: mpsc::Sender<Job>,
}

impl EdgeRouter {
    /// Starts `config.workers` engines on `source` and waits until each has loaded it.
    /// KVS lookups run on the current tokio runtime.
    pub async fn start(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        config: &EdgeConfig,
    ) -> Result<Self, EdgeError> {
        let source = shim_source(source)?;
        let runtime = Handle::current();
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut ready = Vec::new();
        for n in 0..config.workers.max(1) {
            let (loaded, ready_rx) = oneshot::channel();
            ready.push(ready_rx);
            let (source, kvs, runtime, queue) =
                (source.clone(), kvs.clone(), runtime.clone(), queue.clone());
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("edge-js-{n}"))
                .spawn(move || match Engine::new(&source, kvs, runtime, &config) {
                    Ok(engine) => {
                        let _ = loaded.send(Ok(()));
                        engine.serve(&queue);
                    }
                    Err(error) => {
                        let _ = loaded.send(Err(error));
                    }
                })
                .map_err(EdgeError::Spawn)?;
        }
        for loaded in ready {
            loaded.await.map_err(|_| EdgeError::WorkersGone)??;
        }
        Ok(EdgeRouter { jobs })
    }

    /// Runs `handler` on a viewer-request event for `request`.
    pub async fn route(
        &self,
        request: &EdgeRequest,
        viewer: SocketAddr,
    ) -> Result<RouterOutcome, EdgeError> {
        let event = ViewerRequestEvent {
            version: "1.0",
            context: EventContext {
                event_type: "viewer-request",
                request_id: format!("{:032x}", rand::random::<u128>()),
            },
            viewer: Viewer {
                ip: viewer.ip().to_string(),
            },
            request,
        };
        let event = serde_json::to_string(&event).map_err(EdgeError::Output)?;
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { event, reply })
            .map_err(|_| EdgeError::WorkersGone)?;
        outcome.await.map_err(|_| EdgeError::WorkersGone)?
    }
}

/// One QuickJS runtime with router.js loaded. Lives on its worker thread.
struct Engine {
    runtime: Runtime,
    context: Context,
    timeout: Duration,
    deadline: Rc<Cell<Option<Instant>>>,
    timed_out: Rc<Cell<bool>>,
    kvs_failure: Rc<RefCell<Option<KvsError>>>,
}

impl Engine {
    fn new(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        tokio: Handle,
        config: &EdgeConfig,
    ) -> Result<Self, EdgeError> {
        let runtime = Runtime::new().map_err(EdgeError::Engine)?;
        runtime.set_memory_limit(config.memory_limit);
        runtime.set_max_stack_size(256 * 1024);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let timed_out: Rc<Cell<bool>> = Rc::default();
        let (until, flag) = (deadline.clone(), timed_out.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let over = until.get().is_some_and(|t| Instant::now() >= t);
            if over {
                flag.set(true);
            }
            over
        })));
        let context = Context::full(&runtime).map_err(EdgeError::Engine)?;
        let kvs_failure: Rc<RefCell<Option<KvsError>>> = Rc::default();
        let failure = kvs_failure.clone();
        let timeout = config.timeout;
        context.with(|ctx| {
            let lookup = move |ctx: Ctx<'_>, key: String| -> rquickjs::Result<String> {
                let found =
                    tokio.block_on(async { tokio::time::timeout(timeout, kvs.get(&key)).await });
                let error = match found {
                    Ok(Ok(Some(value))) => return Ok(value),
                    Ok(Ok(None)) => {
                        return Err(Exception::throw_message(
                            &ctx,
                            &format!("The key {key} does not exist"),
                        ))
                    }
                    Ok(Err(error)) => error,
                    Err(elapsed) => KvsError::Unavailable(Box::new(elapsed)),
                };
                let message = error.to_string();
                failure.replace(Some(error));
                Err(Exception::throw_message(&ctx, &message))
            };
            let lookup = Function::new(ctx.clone(), lookup).map_err(EdgeError::Engine)?;
            ctx.globals()
                .set("__slipwayKvsGet", lookup)
                .map_err(EdgeError::Engine)?;
            ctx.eval::<(), _>(CLOUDFRONT_SHIM)
                .map_err(|e| script_error(&ctx, e))?;
            ctx.eval::<(), _>(source)
                .map_err(|e| script_error(&ctx, e))?;
            ctx.globals()
                .get::<_, Function>("handler")
                .map_err(|_| EdgeError::Script("router.js defines no global `handler`".into()))?;
            Ok::<_, EdgeError>(())
        })?;
        Ok(Engine {
            runtime,
            context,
            timeout,
            deadline,
            timed_out,
            kvs_failure,
        })
    }

    fn serve(&self, queue: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
            // Every sender is gone: the edge has shut down.
            let Ok(job) = job else { return };
            let outcome = self.run(&job.event);
            // The requester may have hung up; nothing is owed to it then.
            let _ = job.reply.send(outcome);
        }
    }

    fn run(&self, event: &str) -> Result<RouterOutcome, EdgeError> {
        self.timed_out.set(false);
        self.deadline.set(Some(Instant::now() + self.timeout));
        let output = self.context.with(|ctx| {
            let fail = |e| script_error(&ctx, e);
            let handler: Function = ctx.globals().get("handler").map_err(fail)?;
            let event = ctx.json_parse(event).map_err(fail)?;
            let result: MaybePromise = handler.call((event,)).map_err(fail)?;
            let value: Value = result.finish().map_err(|e| match e {
                rquickjs::Error::WouldBlock => {
                    EdgeError::Script("handler's promise never settled".into())
                }
                e => script_error(&ctx, e),
            })?;
            let json = ctx.json_stringify(value).map_err(fail)?;
            let json = json.ok_or_else(|| EdgeError::Script("handler returned undefined".into()));
            json?.to_string().map_err(fail)
        });
        // Settle what the run left queued (promises nobody awaited), still under the
        // deadline; a job that throws is consumed all the same.
        while !self.timed_out.get() && self.runtime.is_job_pending() {
            let _ = self.runtime.execute_pending_job();
        }
        self.deadline.set(None);
        if let Some(error) = self.kvs_failure.take() {
            return Err(EdgeError::Kvs(error));
        }
        if self.timed_out.get() {
            return Err(EdgeError::Timeout(self.timeout));
        }
        serde_json::from_str(&output?).map_err(EdgeError::Output)
    }
}

fn script_error(ctx: &Ctx<'_>, error: rquickjs::Error) -> EdgeError {
    if !matches!(error, rquickjs::Error::Exception) {
        return EdgeError::Engine(error);
    }
    let thrown = ctx.catch();
    let message = if let Some(exception) = thrown.as_exception() {
        let message = exception.message().unwrap_or_default();
        match exception.stack() {
            Some(stack) if !stack.is_empty() => format!("{message}\n{stack}"),
            _ => message,
        }
    } else if let Some(text) = thrown.as_string() {
        text.to_string().unwrap_or_default()
    } else {
        format!("{thrown:?}")
    };
    EdgeError::Script(message)
}

struct EdgeState {
    router: EdgeRouter,
    objects: Arc<dyn ObjectStore>,
}

/// Serves sites at `http://{host}/` on `listener` until `shutdown` completes, routing with
/// the compiled-in router.js and [`EdgeConfig::default`].
pub async fn serve_edge(
    listener: tokio::net::TcpListener,
    kvs: Arc<dyn KeyValueStore>,
    objects: Arc<dyn ObjectStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = EdgeRouter::start(router_source(), kvs, &EdgeConfig::default())
        .await
        .map_err(std::io::Error::other)?;
    serve_edge_with(listener, router, objects, shutdown).await
}

/// [`serve_edge`] with a router of your own (another source or config).
pub async fn serve_edge_with(
    listener: tokio::net::TcpListener,
    router: EdgeRouter,
    objects: Arc<dyn ObjectStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(EdgeState { router, objects });
    let app = axum::Router::new().fallback(edge).with_state(state);
    axum::serve(
        no_delay(listener),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Sets TCP_NODELAY on every accepted connection. Without it a response written in two
/// parts (head, then a streamed body) waits for the client's delayed ACK, about 40 ms, on
/// every request of a keep-alive connection but the first.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn set(stream: &mut tokio::net::TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY on a connection");
        }
    }
    listener.tap_io(set)
}

async fn edge(
    State(state): State<Arc<EdgeState>>,
    ConnectInfo(viewer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut response = if method == Method::GET || method == Method::HEAD {
        let head = method == Method::HEAD;
        let request = EdgeRequest::from_http(&method, &uri, &headers);
        match state.router.route(&request, viewer).await {
            Ok(RouterOutcome::Forward(routed)) => {
                serve_object(&*state.objects, &routed.uri, &headers, head).await
            }
            Ok(RouterOutcome::Respond(generated)) => {
                generated_response(generated, head).unwrap_or_else(|error| failed(&uri, &error))
            }
            Err(error) => failed(&uri, &error),
        }
    } else {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET and HEAD are served.",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    };
    response
        .headers_mut()
        .insert("x-slipway-edge", HeaderValue::from_static("local"));
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "edge request");
    response
}

fn failed(uri: &Uri, error: &EdgeError) -> Response {
    tracing::error!(%uri, %error, "edge function failed");
    let mut response = (
        StatusCode::BAD_GATEWAY,
        format!("502 Bad Gateway: the edge function failed: {error}\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, detail: &str) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let html = format!("<!doctype html><title>{title}</title><h1>{title}</h1><p>{detail}</p>");
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reads the routed key from the hosting bucket, as the S3 origin would: the URI is
/// percent-decoded once and loses its leading slash.
async fn serve_object(
    objects: &dyn ObjectStore,
    uri: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(key) = percent_decode(uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "The path is not valid percent-encoding.",
        );
    };
    let key = key.strip_prefix('/').unwrap_or(&key);
    let (info, body) = match objects.get(Bucket::Hosting, key).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(ObjectStoreError::NotFound { .. }) => {
            return page(
                StatusCode::NOT_FOUND,
                "There is no such file in this deployment.",
            )
        }
        Err(ObjectStoreError::InvalidKey(_)) => {
            return page(StatusCode::BAD_REQUEST, "The path is not allowed.")
        }
        Err(error) => {
            tracing::error!(key, %error, "edge could not read the hosting bucket");
            return page(StatusCode::BAD_GATEWAY, "The object store failed.");
        }
    };
    let etag = quoted_etag(&info.etag);
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| etag_matches(tags, &etag));
    let mut response = Response::builder();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response = response.header(ETAG, value);
    }
    if let Some(cache) = info.meta.cache_control.as_deref() {
        if let Ok(value) = HeaderValue::from_str(cache) {
            response = response.header(CACHE_CONTROL, value);
        }
    }
    if not_modified {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| page(StatusCode::BAD_GATEWAY, "Invalid stored headers."));
    }
    if let Ok(value) = HeaderValue::from_str(&info.meta.content_type) {
        response = response.header(CONTENT_TYPE, value);
    }
    response = response.header(CONTENT_LENGTH, body.len());
    let body = match body {
        _ if head => Body::empty(),
        ObjectBody::Bytes(bytes) => Body::from(bytes),
        ObjectBody::Stream { chunks, .. } => {
            Body::from_stream(futures::stream::unfold(chunks, |mut chunks| async move {
                chunks.recv().await.map(|chunk| (chunk, chunks))
            }))
        }
    };
    response
        .status(StatusCode::OK)
        .body(body)
        .unwrap_or_else(|_| page(StatusCode::BAD_GATEWAY, "Invalid stored headers."))
}

fn generated_response(generated: EdgeResponse, head: bool) -> Result<Response, EdgeError> {
    let bad = |what: &str| EdgeError::BadResponse(what.to_owned());
    let status = StatusCode::from_u16(generated.status_code)
        .map_err(|_| bad(&format!("status code {}", generated.status_code)))?;
    let body = match generated.body {
        None => Bytes::new(),
        Some(ResponseBody::Text(text)) => Bytes::from(text),
        Some(ResponseBody::Encoded { encoding, data }) if encoding == "text" => Bytes::from(data),
        Some(ResponseBody::Encoded { encoding, .. }) => {
            return Err(bad(&format!(
                "body encoding {encoding:?} (only text is supported locally)"
            )))
        }
    };
    let mut response = Response::builder().status(status);
    for (name, field) in &generated.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(&format!("header name {name:?}")))?;
        for (value, _) in field.all() {
            let value = HeaderValue::from_str(value)
                .map_err(|_| bad(&format!("header {name} value {value:?}")))?;
            response = response.header(&name, value);
        }
    }
    for (name, cookie) in &generated.cookies {
        for (value, attributes) in cookie.all() {
            let line = match attributes {
                Some(attributes) => format!("{name}={value}; {attributes}"),
                None => format!("{name}={value}"),
            };
            let value = HeaderValue::from_str(&line).map_err(|_| bad(&format!("cookie {name}")))?;
            response = response.header(SET_COOKIE, value);
        }
    }
    response = response.header(CONTENT_LENGTH, body.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    response.body(body).map_err(|e| bad(&e.to_string()))
}

/// S3 ETags are quoted; stores that keep the bare digest get quotes added.
fn quoted_etag(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/\"") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2).
fn etag_matches(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = opaque(etag);
    header
        .split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == etag)
}

/// Decodes `%XX` escapes once; None when an escape is malformed or the result is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
            let (high, low) = (digit(i + 1)?, digit(i + 2)?);
            out.push(u8::try_from(high * 16 + low).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::FsObjectStore;
    use crate::sqlite::SqliteState;
    use async_trait::async_trait;
    use slipway_core::model::RoutingFlags;
    use slipway_core::names::{DeploymentId, SiteName};
    use slipway_core::ports::ObjectMeta;
    use slipway_core::routing::{route_value, Hosts};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const V1: &str = "01jd0000000000000000000000";
    const V2: &str = "01je0000000000000000000000";
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";

    struct TestEdge {
        addr: SocketAddr,
        kvs: Arc<SqliteState>,
        objects: Arc<FsObjectStore>,
        client: reqwest::Client,
        _stop: oneshot::Sender<()>,
        _dir: tempfile::TempDir,
    }

    impl TestEdge {
        async fn start() -> Self {
            Self::start_with(None).await
        }

        /// The real local stores in a temp dir, and the edge on an ephemeral port; a custom
        /// router source when given.
        async fn start_with(source: Option<&str>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let kvs = Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap());
            let objects = Arc::new(FsObjectStore::new(dir.path().join("objects")).unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let shutdown = async move {
                let _ = stopped.await;
            };
            let router = EdgeRouter::start(
                source.unwrap_or(router_source()),
                kvs.clone(),
                &EdgeConfig::default(),
            )
            .await
            .unwrap();
            tokio::spawn(serve_edge_with(listener, router, objects.clone(), shutdown));
            TestEdge {
                addr,
                kvs,
                objects,
                client: reqwest::Client::new(),
                _stop: stop,
                _dir: dir,
            }
        }

        async fn publish(&self, site: &str, id: &str, files: &[(&str, &str, &str, Option<&str>)]) {
            for (path, body, content_type, cache) in files {
                let meta = ObjectMeta {
                    content_type: (*content_type).to_owned(),
                    cache_control: cache.map(str::to_owned),
                };
                let body = ObjectBody::Bytes(Bytes::from(body.to_string()));
                let key = format!("{site}/{id}/{path}");
                self.objects
                    .put(Bucket::Hosting, &key, body, &meta)
                    .await
                    .unwrap();
            }
        }

        async fn activate(&self, site: &str, id: &str, flags: RoutingFlags) {
            let site = SiteName::parse(site).unwrap();
            let id = DeploymentId::parse(id).unwrap();
            let host = Hosts::single("localhost").production(&site);
            self.kvs
                .put(&host, &route_value(&site, &id, flags))
                .await
                .unwrap();
        }

        fn request(
            &self,
            method: reqwest::Method,
            host: &str,
            path: &str,
        ) -> reqwest::RequestBuilder {
            let url = format!("http://{}{path}", self.addr);
            self.client
                .request(method, url)
                .header(http::header::HOST, format!("{host}:{}", self.addr.port()))
        }

        async fn get(&self, host: &str, path: &str) -> reqwest::Response {
            self.request(reqwest::Method::GET, host, path)
                .send()
                .await
                .unwrap()
        }

        /// Sends `target` byte for byte: HTTP clients normalise `..` and `%2e` away.
        async fn raw_get(&self, host: &str, target: &str) -> (u16, String) {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let request =
                format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            let response = String::from_utf8_lossy(&response).into_owned();
            let status = response.split(' ').nth(1).and_then(|s| s.parse().ok());
            (status.unwrap_or(0), response)
        }
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    async fn docs_v1() -> TestEdge {
        let edge = TestEdge::start().await;
        edge.publish(
            "docs",
            V1,
            &[
                ("index.html", "<h1>docs v1</h1>", HTML, Some("no-cache")),
                (
                    "guide/index.html",
                    "<h1>guide v1</h1>",
                    HTML,
                    Some("no-cache"),
                ),
                ("assets/app.js", "console.log('v1')", JS, Some(IMMUTABLE)),
            ],
        )
        .await;
        edge.activate("docs", V1, RoutingFlags::default()).await;
        edge
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_live_version_with_its_stored_headers() {
        let edge = docs_v1().await;

        let index = edge.get("docs.localhost", "/").await;
        assert_eq!(index.status(), 200);
        assert_eq!(header(&index, "content-type"), HTML);
        assert_eq!(header(&index, "cache-control"), "no-cache");
        assert_eq!(header(&index, "x-slipway-edge"), "local");
        assert!(header(&index, "etag").starts_with('"'));
        assert_eq!(header(&index, "content-length"), "16");
        assert_eq!(index.text().await.unwrap(), "<h1>docs v1</h1>");

        let asset = edge.get("Docs.LOCALHOST", "/assets/app.js").await;
        assert_eq!(header(&asset, "content-type"), JS);
        assert_eq!(header(&asset, "cache-control"), IMMUTABLE);
        assert_eq!(asset.text().await.unwrap(), "console.log('v1')");

        let guide = edge.get("docs.localhost", "/guide").await;
        assert_eq!(guide.text().await.unwrap(), "<h1>guide v1</h1>");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_large_files_whole() {
        let edge = TestEdge::start().await;
        let big: String = (0..200_000).map(|i| format!("{i:07}\n")).collect();
        let meta = ObjectMeta {
            content_type: "text/plain".into(),
            cache_control: None,
        };
        let key = format!("docs/{V1}/big.txt");
        let body = ObjectBody::Bytes(Bytes::from(big.clone()));
        edge.objects
            .put(Bucket::Hosting, &key, body, &meta)
            .await
            .unwrap();
        edge.activate("docs", V1, RoutingFlags::default()).await;

        let response = edge.get("docs.localhost", "/big.txt").await;
        assert_eq!(header(&response, "content-length"), big.len().to_string());
        assert_eq!(header(&response, "cache-control"), "");
        assert_eq!(response.text().await.unwrap(), big);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spa_deep_links_get_index_html_and_assets_keep_their_path() {
        let edge = TestEdge::start().await;
        edge.publish(
            "app",
            V1,
            &[
                ("index.html", "<div id=root></div>", HTML, Some("no-cache")),
                ("assets/main.js", "render()", JS, Some(IMMUTABLE)),
            ],
        )
        .await;
        edge.activate(
            "app",
            V1,
            RoutingFlags {
                spa: true,
                clean_urls: false,
            },
        )
        .await;

        let deep = edge.get("app.localhost", "/settings/profile?tab=2").await;
        assert_eq!(deep.status(), 200);
        assert_eq!(header(&deep, "content-type"), HTML);
        assert_eq!(deep.text().await.unwrap(), "<div id=root></div>");

        let asset = edge.get("app.localhost", "/assets/main.js").await;
        assert_eq!(asset.text().await.unwrap(), "render()");

        let missing = edge.get("app.localhost", "/assets/gone.js").await;
        assert_eq!(missing.status(), 404);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_hosts_get_the_routers_404_page() {
        let edge = docs_v1().await;
        let response = edge.get("nobody.localhost", "/").await;
        assert_eq!(response.status(), 404);
        assert_eq!(header(&response, "cache-control"), "no-store");
        assert_eq!(header(&response, "content-type"), HTML);
        assert_eq!(header(&response, "x-slipway-edge"), "local");
        assert!(response.text().await.unwrap().contains("404 Not Found"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn traversal_and_encoding_tricks_get_400() {
        let edge = docs_v1().await;
        edge.publish(
            "secret",
            V1,
            &[("key.txt", "top secret", "text/plain", None)],
        )
        .await;
        let tricks = [
            format!("/../../secret/{V1}/key.txt"),
            format!("/%2e%2e/%2E%2E/secret/{V1}/key.txt"),
            format!("/.%2e/%2e./secret/{V1}/key.txt"),
            format!("/a%2f..%2f..%2fsecret/{V1}/key.txt"),
            "/%252e%252e/x".to_owned(),
            "/a%5c..%5cb".to_owned(),
            "/a\\b".to_owned(),
            "/index.html%00.js".to_owned(),
            "//index.html".to_owned(),
            "/a/%2f/b".to_owned(),
            "/%c0%ae%c0%ae/x".to_owned(),
            "/%zz".to_owned(),
        ];
        for target in &tricks {
            let (status, response) = edge.raw_get("docs.localhost", target).await;
            assert_eq!(status, 400, "{target}: {response}");
            assert!(!response.contains("top secret"), "{target}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn head_sends_the_headers_without_the_body() {
        let edge = docs_v1().await;
        let response = edge.request(reqwest::Method::HEAD, "docs.localhost", "/assets/app.js");
        let response = response.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-length"), "17");
        assert_eq!(header(&response, "content-type"), JS);
        assert!(response.bytes().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_matching_if_none_match_gets_304() {
        let edge = docs_v1().await;
        let first = edge.get("docs.localhost", "/assets/app.js").await;
        let etag = header(&first, "etag").to_owned();

        for tag in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".into(),
        ] {
            let again = edge.request(reqwest::Method::GET, "docs.localhost", "/assets/app.js");
            let again = again.header("if-none-match", &tag).send().await.unwrap();
            assert_eq!(again.status(), 304, "{tag}");
            assert_eq!(header(&again, "etag"), etag);
            assert_eq!(header(&again, "cache-control"), IMMUTABLE);
            assert!(again.bytes().await.unwrap().is_empty());
        }

        let stale = edge.request(reqwest::Method::GET, "docs.localhost", "/assets/app.js");
        let stale = stale
            .header("if-none-match", "\"stale\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_object_is_a_404() {
        let edge = docs_v1().await;
        let response = edge.get("docs.localhost", "/nope.png").await;
        assert_eq!(response.status(), 404);
        assert_eq!(header(&response, "cache-control"), "no-store");
        // No flags: an extensionless path is a directory whose index does not exist.
        assert_eq!(edge.get("docs.localhost", "/nope").await.status(), 404);
    }

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acks() {
        use axum::serve::Listener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = no_delay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changing_the_kvs_value_switches_the_served_version_at_once() {
        let edge = docs_v1().await;
        edge.publish(
            "docs",
            V2,
            &[("index.html", "<h1>docs v2</h1>", HTML, None)],
        )
        .await;
        assert_eq!(
            edge.get("docs.localhost", "/").await.text().await.unwrap(),
            "<h1>docs v1</h1>"
        );

        edge.activate("docs", V2, RoutingFlags::default()).await;
        assert_eq!(
            edge.get("docs.localhost", "/").await.text().await.unwrap(),
            "<h1>docs v2</h1>"
        );

        // A rollback is the same switch, back.
        edge.activate("docs", V1, RoutingFlags::default()).await;
        assert_eq!(
            edge.get("docs.localhost", "/").await.text().await.unwrap(),
            "<h1>docs v1</h1>"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_get_and_head_are_served() {
        let edge = docs_v1().await;
        let response = edge
            .request(reqwest::Method::POST, "docs.localhost", "/")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(header(&response, "allow"), "GET, HEAD");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_throwing_router_is_a_502() {
        let source = "import cf from 'cloudfront';\nasync function handler(event) { throw new Error('boom'); }\n";
        let edge = TestEdge::start_with(Some(source)).await;
        let response = edge.get("docs.localhost", "/").await;
        assert_eq!(response.status(), 502);
        assert!(response.text().await.unwrap().contains("boom"));
    }

    fn request(host: &str, uri: &str) -> EdgeRequest {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        EdgeRequest::from_http(&Method::GET, &uri.parse().unwrap(), &headers)
    }

    fn viewer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 50000))
    }

    async fn one_worker(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        timeout: Duration,
    ) -> EdgeRouter {
        let config = EdgeConfig {
            workers: 1,
            timeout,
            ..EdgeConfig::default()
        };
        EdgeRouter::start(source, kvs, &config).await.unwrap()
    }

    fn memory_kvs() -> (Arc<SqliteState>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap()),
            dir,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runaway_router_is_interrupted_and_the_worker_keeps_serving() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              if (event.request.uri === '/spin') { for (;;) {} }\n\
              return event.request;\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_millis(100)).await;
        let started = Instant::now();
        let spun = router
            .route(&request("a.localhost", "/spin"), viewer())
            .await;
        assert!(matches!(spun, Err(EdgeError::Timeout(_))), "{spun:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let next = router.route(&request("a.localhost", "/ok"), viewer()).await;
        assert!(
            matches!(next, Ok(RouterOutcome::Forward(ref r)) if r.uri == "/ok"),
            "{next:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_limit_stops_a_greedy_router() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              if (event.request.uri === '/greedy') {\n\
                const hoard = [];\n\
                for (;;) { hoard.push(`${hoard.length}`.repeat(1000)); }\n\
              }\n\
              return event.request;\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_secs(10)).await;
        let greedy = router
            .route(&request("a.localhost", "/greedy"), viewer())
            .await;
        assert!(
            matches!(greedy, Err(EdgeError::Script(ref m)) if m.contains("out of memory")),
            "{greedy:?}"
        );
        let next = router.route(&request("a.localhost", "/ok"), viewer()).await;
        assert!(matches!(next, Ok(RouterOutcome::Forward(_))), "{next:?}");
    }

    struct BrokenKvs;

    #[async_trait]
    impl KeyValueStore for BrokenKvs {
        async fn get(&self, _key: &str) -> Result<Option<String>, KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
        async fn put(&self, _key: &str, _value: &str) -> Result<(), KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
        async fn delete(&self, _key: &str) -> Result<(), KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_kvs_is_an_error_not_an_unknown_host() {
        let router = one_worker(router_source(), Arc::new(BrokenKvs), Duration::from_secs(1)).await;
        let outcome = router
            .route(&request("docs.localhost", "/"), viewer())
            .await;
        assert!(matches!(outcome, Err(EdgeError::Kvs(_))), "{outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_router_sees_a_cloudfront_shaped_event() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              return { statusCode: 200, body: JSON.stringify(event) };\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_secs(1)).await;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_static("Docs.localhost:8080"),
        );
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; sid=42"));
        let uri: Uri = "/a%20b/c?q=1&q=2&flag".parse().unwrap();
        let request = EdgeRequest::from_http(&Method::GET, &uri, &headers);
        let Ok(RouterOutcome::Respond(response)) = router.route(&request, viewer()).await else {
            panic!("expected a generated response");
        };
        let Some(ResponseBody::Text(body)) = response.body else {
            panic!("no text body")
        };
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(event["context"]["eventType"], "viewer-request");
        assert_eq!(event["viewer"]["ip"], "127.0.0.1");
        let seen = &event["request"];
        assert_eq!(seen["method"], "GET");
        assert_eq!(seen["uri"], "/a%20b/c");
        assert_eq!(seen["headers"]["host"]["value"], "Docs.localhost:8080");
        assert_eq!(seen["headers"]["x-multi"]["multiValue"][1]["value"], "b");
        assert!(seen["headers"].get("cookie").is_none());
        assert_eq!(seen["cookies"]["sid"]["value"], "42");
        assert_eq!(seen["querystring"]["q"]["multiValue"][1]["value"], "2");
        assert_eq!(seen["querystring"]["flag"]["value"], "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_router_without_the_import_line_is_refused() {
        let (kvs, _dir) = memory_kvs();
        let config = EdgeConfig::default();
        let refused = EdgeRouter::start(
            "async function handler(e) { return e.request; }",
            kvs,
            &config,
        )
        .await;
        assert!(matches!(refused, Err(EdgeError::MissingImport)));
        let shimmed = shim_source(router_source()).unwrap();
        assert!(shimmed.contains(SHIM_LINE) && !shimmed.contains(IMPORT_LINE));
    }

    #[test]
    fn generated_responses_keep_headers_cookies_and_both_body_shapes() {
        let generated: EdgeResponse = serde_json::from_str(
            r#"{"statusCode": 302, "headers": {"location": {"value": "/next"},
                "vary": {"value": "a", "multiValue": [{"value": "a"}, {"value": "b"}]}},
                "cookies": {"sid": {"value": "1", "attributes": "Path=/; HttpOnly"}},
                "body": "moved"}"#,
        )
        .unwrap();
        let response = generated_response(generated, false).unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/next");
        let vary: Vec<_> = response.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["a", "b"]);
        assert_eq!(response.headers()[SET_COOKIE], "sid=1; Path=/; HttpOnly");
        assert_eq!(response.headers()[CONTENT_LENGTH], "5");

        let encoded: EdgeResponse = serde_json::from_str(
            r#"{"statusCode": 200, "body": {"encoding": "base64", "data": "aGk="}}"#,
        )
        .unwrap();
        assert!(matches!(
            generated_response(encoded, false),
            Err(EdgeError::BadResponse(_))
        ));
    }

    #[test]
    fn percent_decoding_matches_what_s3_does_with_keys() {
        assert_eq!(
            percent_decode("/a%20b/%C3%A9.html").as_deref(),
            Some("/a b/é.html")
        );
        assert_eq!(percent_decode("/a%2Fb").as_deref(), Some("/a/b"));
        for bad in ["/%", "/%2", "/%zz", "/%+f", "/%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn etags_compare_weakly() {
        assert_eq!(quoted_etag("abc"), "\"abc\"");
        assert_eq!(quoted_etag("\"abc\""), "\"abc\"");
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
