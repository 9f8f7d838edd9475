//! A CloudFront KeyValueStore data-plane server for tests; no emulator has one. It speaks the
//! service's REST-JSON protocol for DescribeKeyValueStore, GetKey, PutKey and DeleteKey on one
//! store whose ETag changes on every write. Like the service, it enforces `If-Match` (a stale
//! ETag gets `ConflictException`) and the 1 KB value limit, and it verifies every request's
//! SigV4A signature against the credentials it was started with.
//!
//! Connect with [`crate::kvs::client_for_endpoint`] and the same credentials.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4a;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::kvs::{KvsArn, MAX_VALUE_BYTES};

/// The account in the server's store ARN (the SDK would put it in front of a real host).
pub const ACCOUNT_ID: &str = "123456789012";
const SIGNING_NAME: &str = "cloudfront-keyvaluestore";
const SIGV4A: &str = "AWS4-ECDSA-P256-SHA256";
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
            access_key: access_key.to_owned(),
            identity: Credentials::new(access_key, secret_key, None, None, "kvs-test-server")
                .into(),
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
    access_key: String,
    identity: Identity,
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
                if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "ValidationException",
                        format!(
                            "key is {} bytes and value {} bytes; the limits are {MAX_KEY_BYTES} and {MAX_VALUE_BYTES}",
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

    /// Recomputes the request's SigV4A signature from the headers it says it signed and
    /// compares; the signature is deterministic (RFC 6979), so equal means valid.
    fn verify_sigv4a(&self, parts: &Parts, body: &[u8]) -> Result<(), Rejection> {
        let headers = &parts.headers;
        let authorization =
            header_str(headers, AUTHORIZATION.as_str()).ok_or(Rejection::Unsigned)?;
        let (algorithm, fields) = authorization
            .split_once(' ')
            .ok_or(Rejection::Malformed("no fields after the algorithm"))?;
        if algorithm != SIGV4A {
            return Err(Rejection::WrongAlgorithm(algorithm.to_owned()));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(Rejection::Malformed("unknown field")),
            }
        }
        let credential = credential.ok_or(Rejection::Malformed("no Credential"))?;
        let signed_headers = signed_headers.ok_or(Rejection::Malformed("no SignedHeaders"))?;
        let signature = signature.ok_or(Rejection::Malformed("no Signature"))?;

        // SigV4A's scope has no region: {access key}/{date}/{service}/aws4_request.
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, service, "aws4_request"] = scope[..] else {
            return Err(Rejection::WrongScope(credential.to_owned()));
        };
        if access_key != self.access_key {
            return Err(Rejection::UnknownAccessKey(access_key.to_owned()));
        }
        if service != SIGNING_NAME {
            return Err(Rejection::WrongScope(credential.to_owned()));
        }
        let region_set = header_str(headers, "x-amz-region-set").ok_or(Rejection::NoRegionSet)?;
        let amz_date =
            header_str(headers, "x-amz-date").ok_or(Rejection::Malformed("no X-Amz-Date"))?;
        if !amz_date.starts_with(date) {
            return Err(Rejection::WrongScope(credential.to_owned()));
        }
        let time = parse_amz_date(amz_date).ok_or(Rejection::Malformed("bad X-Amz-Date"))?;

        let mut signed = Vec::new();
        for name in signed_headers.split(';') {
            let values = headers.get_all(name);
            if values.iter().next().is_none() {
                return Err(Rejection::Malformed("a signed header is missing"));
            }
            for value in values {
                let value = value
                    .to_str()
                    .map_err(|_| Rejection::Malformed("a signed header is not ASCII"))?;
                signed.push((name, value));
            }
        }
        let uri = parts.uri.to_string();
        let request = SignableRequest::new(
            parts.method.as_str(),
            uri.as_str(),
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Rejection::Signing(e.into()))?;
        let params = v4a::SigningParams::builder()
            .identity(&self.identity)
            .region_set(region_set)
            .name(SIGNING_NAME)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Rejection::Signing(e.into()))?
            .into();
        let expected = sign(request, &params).map_err(|e| Rejection::Signing(e.into()))?;
        if expected.signature() != signature {
            return Err(Rejection::Mismatch);
        }
        Ok(())
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

#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("the request is not signed")]
    Unsigned,
    #[error("the request is signed with {0}, not SigV4A ({SIGV4A})")]
    WrongAlgorithm(String),
    #[error("malformed Authorization: {0}")]
    Malformed(&'static str),
    #[error("a SigV4A request carries X-Amz-Region-Set")]
    NoRegionSet,
    #[error("unknown access key {0:?}")]
    UnknownAccessKey(String),
    #[error("credential {0:?} is not {{key}}/{{date}}/{SIGNING_NAME}/aws4_request")]
    WrongScope(String),
    #[error("the signature does not match the request")]
    Mismatch,
    #[error("cannot recompute the signature: {0}")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Rejection {
    /// The error codes the service's front door uses.
    fn code(&self) -> &'static str {
        match self {
            Rejection::Unsigned => "MissingAuthenticationTokenException",
            Rejection::UnknownAccessKey(_) => "UnrecognizedClientException",
            Rejection::Mismatch | Rejection::Signing(_) => "InvalidSignatureException",
            Rejection::WrongAlgorithm(_)
            | Rejection::Malformed(_)
            | Rejection::NoRegionSet
            | Rejection::WrongScope(_) => "IncompleteSignatureException",
        }
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
        Ok(body) => match shared.verify_sigv4a(&parts, &body) {
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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn decode(label: &str) -> String {
    percent_decode_str(label).decode_utf8_lossy().into_owned()
}

fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc().into())
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
