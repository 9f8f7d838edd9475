//! A CloudFront KeyValueStore data-plane server for tests; no emulator has one. It speaks the
//! service's REST-JSON protocol for DescribeKeyValueStore, GetKey, PutKey and DeleteKey on one
//! store whose ETag changes on every write. Like the service, it enforces `If-Match` (a stale
//! ETag gets `ConflictException`) and the 1 KB value limit, and it verifies every request's
//! SigV4A signature against the credentials it was started with.
//!
//! Connect with [`slipway_aws::kvs::client_for_endpoint`] and the same credentials.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::signature_check::{Scheme, SignatureCheck};
use slipway_aws::kvs::KvsArn;
use slipway_core::ports::MAX_KVS_VALUE;

/// The account in the server's store ARN (the SDK would put it in front of a real host).
pub const ACCOUNT_ID: &str = "123456789012";
const SIGNING_NAME: &str = "cloudfront-keyvaluestore";
const MAX_KEY_BYTES: usize = 1024;
/// Far above any request this API takes (a 1 KB key and a 1 KB value).
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    DescribeKeyValueStore,
    GetKey,
    PutKey,
    DeleteKey,
    Unknown,
}

/// One request the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub operation: Operation,
    pub status: u16,
}

/// A running server on 127.0.0.1; it stops when dropped.
pub struct KvsTestServer {
    url: String,
    shared: Arc<Shared>,
    // Dropping the sender is the shutdown signal.
    _shutdown: oneshot::Sender<()>,
}

impl KvsTestServer {
    /// Starts a server with one empty store, accepting requests signed with these credentials.
    pub async fn start(access_key: &str, secret_key: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let id = format!("slipway-test-{}-{:x}", addr.port(), now_nanos());
        let arn = KvsArn::parse(&format!(
            "arn:aws:cloudfront::{ACCOUNT_ID}:key-value-store/{id}"
        ))
        .map_err(std::io::Error::other)?;
        let created = now_secs();
        let shared = Arc::new(Shared {
            arn,
            signatures: SignatureCheck::new(
                access_key,
                secret_key,
                None,
                SIGNING_NAME,
                Scheme::V4a,
            ),
            store: Mutex::new(Store {
                items: BTreeMap::new(),
                version: 1,
                created,
                last_modified: created,
                injected_conflicts: 0,
                handled: Vec::new(),
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "kvs test server failed");
            }
        });
        tracing::debug!(%addr, "kvs test server listening");
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            _shutdown: shutdown,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The ARN of the one store this server holds.
    pub fn kvs_arn(&self) -> &KvsArn {
        &self.shared.arn
    }

    /// The store's current ETag.
    pub fn etag(&self) -> String {
        self.shared.store().etag()
    }

    /// Makes the next `n` conditional writes lose a race: just before each, another writer's
    /// write lands, so the ETag the client read is stale and it gets `ConflictException`.
    pub fn inject_conflicts(&self, n: u32) {
        self.shared.store().injected_conflicts += n;
    }

    /// Every key and value in the store.
    pub fn entries(&self) -> BTreeMap<String, String> {
        self.shared.store().items.clone()
    }

    /// Every request answered so far, oldest first.
    pub fn handled(&self) -> Vec<Handled> {
        self.shared.store().handled.clone()
    }
}

struct Shared {
    arn: KvsArn,
    signatures: SignatureCheck,
    store: Mutex<Store>,
}

struct Store {
    items: BTreeMap<String, String>,
    version: u64,
    created: u64,
    last_modified: u64,
    injected_conflicts: u32,
    handled: Vec<Handled>,
}

impl Store {
    fn etag(&self) -> String {
        format!("KV{:012X}", self.version)
    }

    fn record_write(&mut self) {
        self.version += 1;
        self.last_modified = now_secs();
    }

    fn totals(&self) -> (usize, usize) {
        let bytes = self.items.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.items.len(), bytes)
    }

    /// The rejection of a write whose `If-Match` is missing or stale, if it is.
    fn reject_if_match(&mut self, headers: &HeaderMap) -> Option<Response> {
        let Some(if_match) = headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) else {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                "If-Match is required",
            ));
        };
        if self.injected_conflicts > 0 && if_match == self.etag() {
            self.injected_conflicts -= 1;
            self.record_write();
        }
        if if_match != self.etag() {
            return Some(error(
                StatusCode::CONFLICT,
                "ConflictException",
                format!(
                    "Pre-condition failed: If-Match {if_match} is not the current ETag {}",
                    self.etag()
                ),
            ));
        }
        None
    }

    /// The body PutKey and DeleteKey answer with, and their new ETag.
    fn written(&self) -> Response {
        let (count, bytes) = self.totals();
        ok(
            Some(self.etag()),
            json!({ "ItemCount": count, "TotalSizeInBytes": bytes }),
        )
    }
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self, route: Option<Route>, headers: &HeaderMap, body: &[u8]) -> Response {
        let Some(Route { arn, call }) = route else {
            return error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "no such operation",
            );
        };
        if arn != self.arn.as_str() {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Key value store {arn} not found"),
            );
        }
        let mut store = self.store();
        match call {
            Call::Describe => {
                let (count, bytes) = store.totals();
                ok(
                    Some(store.etag()),
                    json!({
                        "KvsARN": arn,
                        "Created": store.created,
                        "LastModified": store.last_modified,
                        "Status": "READY",
                        "ItemCount": count,
                        "TotalSizeInBytes": bytes,
                    }),
                )
            }
            Call::GetKey(key) => match store.items.get(&key) {
                Some(value) => {
                    let (count, bytes) = store.totals();
                    ok(
                        None,
                        json!({
                            "Key": key,
                            "Value": value,
                            "ItemCount": count,
                            "TotalSizeInBytes": bytes,
                        }),
                    )
                }
                None => not_found(&key),
            },
            Call::PutKey(key) => {
                let value = match serde_json::from_slice::<PutKeyBody>(body) {
                    Ok(parsed) => parsed.value,
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "ValidationException",
                            format!("the body is not {{\"Value\": string}}: {e}"),
                        )
                    }
                };
                if key.len() > MAX_KEY_BYTES || value.len() > MAX_KVS_VALUE {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "ValidationException",
                        format!(
                            "key is {} bytes and value {} bytes; the limits are {MAX_KEY_BYTES} and {MAX_KVS_VALUE}",
                            key.len(),
                            value.len()
                        ),
                    );
                }
                if let Some(rejected) = store.reject_if_match(headers) {
                    return rejected;
                }
                store.items.insert(key, value);
                store.record_write();
                store.written()
            }
            Call::DeleteKey(key) => {
                if let Some(rejected) = store.reject_if_match(headers) {
                    return rejected;
                }
                if store.items.remove(&key).is_none() {
                    return not_found(&key);
                }
                store.record_write();
                store.written()
            }
        }
    }
}

#[derive(Deserialize)]
struct PutKeyBody {
    #[serde(rename = "Value")]
    value: String,
}

struct Route {
    arn: String,
    call: Call,
}

enum Call {
    Describe,
    GetKey(String),
    PutKey(String),
    DeleteKey(String),
}

impl Route {
    /// The service's paths: `/key-value-stores/{KvsARN}` and `.../keys/{Key}`, each label
    /// percent-encoded (the ARN's `:` and `/` included).
    fn parse(method: &Method, path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/key-value-stores/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let (arn, call) = match segments[..] {
            [arn] if method == Method::GET => (arn, Call::Describe),
            [arn, "keys", key] if !key.is_empty() => {
                let key = decode(key);
                let call = match *method {
                    Method::GET => Call::GetKey(key),
                    Method::PUT => Call::PutKey(key),
                    Method::DELETE => Call::DeleteKey(key),
                    _ => return None,
                };
                (arn, call)
            }
            _ => return None,
        };
        Some(Route {
            arn: decode(arn),
            call,
        })
    }
}

fn operation(route: Option<&Route>) -> Operation {
    match route.map(|r| &r.call) {
        Some(Call::Describe) => Operation::DescribeKeyValueStore,
        Some(Call::GetKey(_)) => Operation::GetKey,
        Some(Call::PutKey(_)) => Operation::PutKey,
        Some(Call::DeleteKey(_)) => Operation::DeleteKey,
        None => Operation::Unknown,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let route = Route::parse(&parts.method, parts.uri.path());
    let operation = operation(route.as_ref());
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("unreadable body: {e}"),
        ),
        Ok(body) => match shared.signatures.verify(&parts, &body) {
            Err(rejection) => {
                tracing::warn!(?operation, %rejection, "kvs test server rejected a request");
                error(
                    StatusCode::FORBIDDEN,
                    rejection.code(),
                    rejection.to_string(),
                )
            }
            Ok(()) => shared.serve(route, &parts.headers, &body),
        },
    };
    let status = response.status().as_u16();
    tracing::debug!(?operation, status, "kvs test server answered");
    shared.store().handled.push(Handled { operation, status });
    response
}

fn ok(etag: Option<String>, body: serde_json::Value) -> Response {
    let mut response = json_response(StatusCode::OK, &body);
    if let Some(etag) = etag.and_then(|e| HeaderValue::try_from(e).ok()) {
        response.headers_mut().insert(ETAG, etag);
    }
    response
}

fn not_found(key: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Key {key} not found"),
    )
}

/// A REST-JSON error: the code in `x-amzn-ErrorType`, the message in the body.
fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let mut response = json_response(status, &json!({ "message": message.into() }));
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(code));
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn decode(label: &str) -> String {
    percent_decode_str(label).decode_utf8_lossy().into_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
