//! The control-plane API client. Every command that talks to slipway, `demo` included,
//! goes through these calls, so the demo exercises exactly what `deploy` does.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_aws::signing::{ApiSigner, SigningError};
use slipway_core::api_types::{
    ApiErrorBody, CreateDeploymentRequest, CreateDeploymentResponse, CreateServiceRequest,
    CreateSiteRequest, DeploymentOutcome, DeploymentView, LogsResponse, PreviewView,
    PromoteRequest, RollbackRequest, ServiceView, SiteView,
};
use slipway_core::names::{DeploymentId, ServiceName, SiteName};
use slipway_core::ports::UploadTarget;
use tokio_util::io::ReaderStream;

type UrlError = <Url as FromStr>::Err;

/// The API's base URL. Paths append to it without a doubled slash, and an API Gateway stage
/// such as `/prod` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    url: Url,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {raw:?} is not a URL: {source}")]
    NotAUrl {
        raw: String,
        #[source]
        source: UrlError,
    },
    #[error("endpoint {0} is not an http:// or https:// URL")]
    Scheme(String),
    #[error("endpoint {0} must not carry a query, fragment or credentials")]
    Extras(String),
}

impl Endpoint {
    pub fn parse(raw: &str) -> Result<Self, EndpointError> {
        let url = Url::parse(raw).map_err(|source| EndpointError::NotAUrl {
            raw: raw.to_owned(),
            source,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EndpointError::Scheme(raw.to_owned()));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(EndpointError::Extras(raw.to_owned()));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { base, url })
    }

    /// The host name or address, without the port.
    pub fn host(&self) -> Option<&str> {
        self.url.host_str()
    }

    /// On this machine, where `slipway dev` listens.
    fn is_loopback(&self) -> bool {
        let host = self.url.host_str().unwrap_or_default();
        // IPv6 hosts come bracketed: `[::1]`.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Same scheme, host and port: a URL the API's credentials belong to.
    fn same_origin(&self, other: &Url) -> bool {
        self.url.scheme() == other.scheme()
            && self.url.host_str() == other.host_str()
            && self.url.port_or_known_default() == other.port_or_known_default()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with its error body.
    #[error("{} ({})", body.error.message, body.error.code)]
    Api {
        status: StatusCode,
        body: ApiErrorBody,
    },
    #[error("no slipway API at {endpoint}{}", if endpoint.is_loopback() { "; is `slipway dev` running?" } else { "" })]
    Unreachable {
        endpoint: Endpoint,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} failed")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {excerpt}")]
    UnexpectedStatus {
        method: Method,
        url: String,
        status: StatusCode,
        excerpt: String,
    },
    #[error("{method} {url} answered with a body slipway does not understand")]
    Decode {
        method: Method,
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the API's upload target is unusable: {0}")]
    UploadTarget(&'static str),
    #[error("cannot read {path}")]
    ReadUpload {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("the API token is not a valid HTTP header value")]
    Token,
    /// AWS's IAM authorizer turned the signed request away (API Gateway's 403 body is
    /// `{"message": ...}`, its error type in `x-amzn-ErrorType`).
    #[error("AWS rejected the signed request to {url}: {message}{}", aws_hint(kind.as_deref(), message))]
    AwsRejected {
        url: String,
        kind: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// What to do about an IAM rejection, by API Gateway's error type or, failing that, message.
fn aws_hint(kind: Option<&str>, message: &str) -> &'static str {
    match kind.unwrap_or_default() {
        _ if message.contains("not authorized to perform") => {
            " (the caller needs execute-api:Invoke on this API's ARN)"
        }
        "ExpiredTokenException" => {
            " (the credentials have expired: run `aws sso login` or refresh them)"
        }
        "UnrecognizedClientException" => {
            " (AWS does not know this access key or session token: check the profile or AWS_ACCESS_KEY_ID)"
        }
        "InvalidSignatureException" if message.contains("expired") => {
            " (the signature is too old: check this machine's clock)"
        }
        "InvalidSignatureException" => " (check the secret access key)",
        "IncompleteSignatureException" => " (sign for the API's own region: --region)",
        _ => "",
    }
}

impl ClientError {
    /// A stable code for `--json` error output: the API's own code, or a local one.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { body, .. } => &body.error.code,
            ClientError::Unreachable { .. } => "api_unreachable",
            ClientError::UnexpectedStatus { .. } | ClientError::Decode { .. } => "bad_response",
            ClientError::UploadTarget(_) => "bad_upload_target",
            ClientError::Token => "bad_token",
            ClientError::AwsRejected { .. } => "aws_rejected",
            ClientError::Signing(_) => "aws_signing",
            ClientError::Transport { .. }
            | ClientError::ReadUpload { .. }
            | ClientError::Build(_) => "transport",
        }
    }

    /// Worth trying again: the API was unreachable, the connection failed or timed out, or
    /// a gateway in front of it answered 502, 503 or 504. Only idempotent calls are retried,
    /// so a request that failed midway is safe to repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } | ClientError::UnexpectedStatus { status, .. } => {
                matches!(
                    *status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                )
            }
            ClientError::Decode { .. }
            | ClientError::UploadTarget(_)
            | ClientError::ReadUpload { .. }
            | ClientError::Build(_)
            | ClientError::Token
            | ClientError::AwsRejected { .. }
            | ClientError::Signing(_) => false,
        }
    }
}

/// How an idempotent call is repeated after transient failures: waits start at `first` and
/// double up to `max_delay`, and the call fails once `budget` has gone by since the first
/// failure.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max_delay: Duration,
    pub budget: Duration,
}

impl Backoff {
    /// For polling a deployment or its log: rides out an API restart or a gateway blip.
    pub const POLLING: Backoff = Backoff {
        first: Duration::from_millis(250),
        max_delay: Duration::from_secs(5),
        budget: Duration::from_secs(60),
    };

    /// Runs `call` until it succeeds, fails for good, or the budget is spent.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut failing_since = None;
        let mut delay = self.first;
        loop {
            let err = match call().await {
                Ok(value) => return Ok(value),
                Err(err) if !err.is_transient() => return Err(err),
                Err(err) => err,
            };
            let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() + delay > self.budget {
                return Err(err);
            }
            tracing::warn!(call = what, error = %err, retry_in_ms = delay.as_millis() as u64, "API call failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.max_delay);
        }
    }
}

/// How long an API call (not an upload) may take before the CLI gives up on it.
const API_TIMEOUT: Duration = Duration::from_secs(60);

/// How requests to the API prove who sends them.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// `slipway dev --token`: `Bearer {token}`, checked once rather than on every request.
    Bearer(HeaderValue),
    /// API Gateway's IAM authorizer: every API request is SigV4-signed, never given a token.
    SigV4(ApiSigner),
}

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    auth: Auth,
}

impl ApiClient {
    /// A client for `slipway dev`, sending `token` as a bearer token when there is one.
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Result<Self, ClientError> {
        let auth = match token {
            None => Auth::None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ClientError::Token)?;
                value.set_sensitive(true);
                Auth::Bearer(value)
            }
        };
        Self::with_auth(endpoint, auth)
    }

    /// A client for the API on AWS, signing every API request with `signer`.
    pub fn signed(endpoint: Endpoint, signer: ApiSigner) -> Result<Self, ClientError> {
        Self::with_auth(endpoint, Auth::SigV4(signer))
    }

    fn with_auth(endpoint: Endpoint, auth: Auth) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            endpoint,
            auth,
        })
    }

    pub async fn create_site(&self, req: &CreateSiteRequest) -> Result<SiteView, ClientError> {
        self.call(Method::POST, "/sites", Some(req)).await
    }

    pub async fn list_sites(&self) -> Result<Vec<SiteView>, ClientError> {
        self.get("/sites").await
    }

    pub async fn get_site(&self, site: &SiteName) -> Result<SiteView, ClientError> {
        self.get(&format!("/sites/{site}")).await
    }

    pub async fn create_deployment(
        &self,
        site: &SiteName,
        req: &CreateDeploymentRequest,
    ) -> Result<CreateDeploymentResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/sites/{site}/deployments"),
            Some(req),
        )
        .await
    }

    pub async fn get_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<DeploymentView, ClientError> {
        self.get(&format!("/sites/{site}/deployments/{id}")).await
    }

    /// A deployment by id alone, whatever its site.
    pub async fn find_deployment(&self, id: &DeploymentId) -> Result<DeploymentView, ClientError> {
        self.get(&format!("/deployments/{id}")).await
    }

    pub async fn list_deployments(
        &self,
        site: &SiteName,
    ) -> Result<Vec<DeploymentView>, ClientError> {
        self.get(&format!("/sites/{site}/deployments")).await
    }

    pub async fn rollback(
        &self,
        site: &SiteName,
        req: &RollbackRequest,
    ) -> Result<DeploymentOutcome, ClientError> {
        self.call(Method::POST, &format!("/sites/{site}/rollback"), Some(req))
            .await
    }

    /// Log lines with a sequence number greater than `after`.
    pub async fn promote(
        &self,
        site: &SiteName,
        req: &PromoteRequest,
    ) -> Result<DeploymentOutcome, ClientError> {
        self.call(Method::POST, &format!("/sites/{site}/promote"), Some(req))
            .await
    }

    pub async fn list_previews(&self, site: &SiteName) -> Result<Vec<PreviewView>, ClientError> {
        self.get(&format!("/sites/{site}/previews")).await
    }

    pub async fn create_service(
        &self,
        site: &SiteName,
        req: &CreateServiceRequest,
    ) -> Result<ServiceView, ClientError> {
        self.call(Method::POST, &format!("/sites/{site}/services"), Some(req))
            .await
    }

    pub async fn list_services(&self, site: &SiteName) -> Result<Vec<ServiceView>, ClientError> {
        self.get(&format!("/sites/{site}/services")).await
    }

    pub async fn get_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<ServiceView, ClientError> {
        self.get(&format!("/sites/{site}/services/{service}")).await
    }

    /// Deletes the service; the answer is the service as it was.
    pub async fn delete_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<ServiceView, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/sites/{site}/services/{service}"),
            None::<&()>,
        )
        .await
    }

    pub async fn logs(&self, id: &DeploymentId, after: u64) -> Result<LogsResponse, ClientError> {
        self.get(&format!("/deployments/{id}/logs?after={after}"))
            .await
    }

    /// Streams the file at `path` (`len` bytes) to the upload target, calling `sent` with the
    /// size of each chunk as it goes out. The bearer token goes along only when the target is
    /// the API itself (`slipway dev`'s upload endpoint): a presigned S3 URL authorises itself,
    /// and S3 rejects a request that carries a second kind of authentication. For the same
    /// reason uploads are never SigV4-signed: on AWS the target is always presigned S3.
    pub async fn upload(
        &self,
        target: &UploadTarget,
        path: &Path,
        len: u64,
        sent: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let method = Method::from_bytes(target.method.as_bytes())
            .map_err(|_| ClientError::UploadTarget("its method is not an HTTP method"))?;
        let url = Url::parse(&target.url)
            .map_err(|_| ClientError::UploadTarget("its URL does not parse"))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &target.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ClientError::UploadTarget("a header name is invalid"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| ClientError::UploadTarget("a header value is invalid"))?;
            headers.insert(name, value);
        }
        if let Auth::Bearer(bearer) = &self.auth {
            if self.endpoint.same_origin(&url) && !headers.contains_key(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, bearer.clone());
            }
        }
        // An explicit length keeps hyper from chunking the body; presigned S3 PUTs need it.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));

        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| ClientError::ReadUpload {
                path: path.display().to_string(),
                source,
            })?;
        let body = ReaderStream::new(file).inspect_ok(move |chunk| sent(chunk.len() as u64));

        let url_text = url.to_string();
        tracing::debug!(%method, url = %url_text, bytes = len, "uploading source");
        let transport = |source| ClientError::Transport {
            method: method.clone(),
            url: url_text.clone(),
            source,
        };
        let response = self
            .http
            .request(method.clone(), url)
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(transport)?;
        Err(error_from_body(method, url_text, status, &bytes))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = self.endpoint.join(path);
        let mut request = self.http.request(method.clone(), &url).timeout(API_TIMEOUT);
        if let Auth::Bearer(bearer) = &self.auth {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        tracing::debug!(%method, %url, "calling the API");
        let transport = |source: reqwest::Error| {
            if source.is_connect() {
                ClientError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    source,
                }
            } else {
                ClientError::Transport {
                    method: method.clone(),
                    url: url.clone(),
                    source,
                }
            }
        };
        let mut request = request.build().map_err(transport)?;
        if let Auth::SigV4(signer) = &self.auth {
            // API bodies are small JSON documents, so the payload hash is always computed.
            let body = request
                .body()
                .and_then(reqwest::Body::as_bytes)
                .unwrap_or_default();
            let signature = signer
                .sign(
                    request.method(),
                    request.url().as_str(),
                    request.headers(),
                    body,
                )
                .await?;
            request.headers_mut().extend(signature);
        }
        let response = self.http.execute(request).await.map_err(transport)?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(transport)?;
        tracing::debug!(%method, %url, status = status.as_u16(), bytes = bytes.len(), "API answered");
        if !status.is_success() {
            if matches!(self.auth, Auth::SigV4(_)) && status == StatusCode::FORBIDDEN {
                if let Some(rejected) = aws_rejection(&url, error_type, &bytes) {
                    return Err(rejected);
                }
            }
            return Err(error_from_body(method, url, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            method,
            url,
            source,
        })
    }
}

/// API Gateway's own 403 (`{"message": ...}`, unlike the API's `{"error": ...}`), with the
/// message's first paragraph: a signature mismatch goes on with the canonical request.
fn aws_rejection(url: &str, kind: Option<String>, bytes: &[u8]) -> Option<ClientError> {
    #[derive(serde::Deserialize)]
    struct GatewayError {
        message: String,
    }
    let body: GatewayError = serde_json::from_slice(bytes).ok()?;
    let message = body.message.split("\n\n").next().unwrap_or_default().trim();
    Some(ClientError::AwsRejected {
        url: url.to_owned(),
        kind: kind.map(|k| k.split(':').next().unwrap_or_default().to_owned()),
        message: message.to_owned(),
    })
}

/// The API's error body when there is one; otherwise the start of whatever came back
/// (S3's XML, a proxy's HTML page).
fn error_from_body(method: Method, url: String, status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(body) => ClientError::Api { status, body },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let excerpt: String = text.trim().chars().take(300).collect();
            ClientError::UnexpectedStatus {
                method,
                url,
                status,
                excerpt,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers one request with `response` and hands back what it received:
    /// the request head (lowercased) and the body.
    async fn one_request(response: String) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 8192];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                received.extend_from_slice(&buf[..n]);
                if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            while received.len() < head_end + length {
                let n = socket.read(&mut buf).await.unwrap();
                received.extend_from_slice(&buf[..n]);
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            (head, received[head_end..].to_vec())
        });
        (base, task)
    }

    /// A server that answers each connection with the next scripted response (`None`: close
    /// without answering), repeating the last one, and counts the requests it saw.
    async fn scripted(script: Vec<Option<String>>) -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut received = Vec::new();
                let mut buf = [0u8; 4096];
                while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                    let read = socket.read(&mut buf).await.unwrap();
                    if read == 0 {
                        break;
                    }
                    received.extend_from_slice(&buf[..read]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(response) = &script[n.min(script.len() - 1)] {
                    socket.write_all(response.as_bytes()).await.unwrap();
                }
                let _ = socket.shutdown().await;
            }
        });
        (base, seen)
    }

    fn http(status: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    const QUICK: Backoff = Backoff {
        first: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        budget: Duration::from_millis(300),
    };

    #[tokio::test]
    async fn polling_rides_out_gateway_errors_and_dropped_connections() {
        let (base, seen) = scripted(vec![
            http("503 Service Unavailable", "<html>busy</html>"),
            None,
            http("502 Bad Gateway", ""),
            http("200 OK", "[]"),
        ])
        .await;
        let client = ApiClient::new(Endpoint::parse(&base).unwrap(), None).unwrap();
        let sites = QUICK.retry("list", || client.list_sites()).await.unwrap();
        assert!(sites.is_empty());
        assert_eq!(seen.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let body = r#"{"error":{"code":"deployment_not_found","message":"no such deployment"}}"#;
        let (base, seen) = scripted(vec![http("404 Not Found", body), http("200 OK", "[]")]).await;
        let client = ApiClient::new(Endpoint::parse(&base).unwrap(), None).unwrap();
        let err = QUICK
            .retry("list", || client.list_sites())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "deployment_not_found");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_stop_when_the_budget_is_spent() {
        let (base, seen) = scripted(vec![http("504 Gateway Timeout", "")]).await;
        let client = ApiClient::new(Endpoint::parse(&base).unwrap(), None).unwrap();
        let started = std::time::Instant::now();
        let err = QUICK
            .retry("list", || client.list_sites())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::UnexpectedStatus { status, .. } if status == StatusCode::GATEWAY_TIMEOUT),
            "{err:?}"
        );
        assert!(started.elapsed() <= QUICK.budget + Duration::from_secs(2));
        assert!(seen.load(Ordering::SeqCst) > 3);
    }

    #[tokio::test]
    async fn api_calls_carry_the_bearer_token_and_map_error_bodies() {
        let body = r#"{"error":{"code":"site_not_found","message":"no site named docs"}}"#;
        let response = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (base, server) = one_request(response).await;
        let client =
            ApiClient::new(Endpoint::parse(&base).unwrap(), Some("s3cret".to_owned())).unwrap();
        let err = client
            .get_site(&SiteName::parse("docs").unwrap())
            .await
            .unwrap_err();
        let (head, _) = server.await.unwrap();
        assert!(head.starts_with("get /sites/docs http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer s3cret"), "{head}");
        match err {
            ClientError::Api { status, body } => {
                assert_eq!(status, StatusCode::NOT_FOUND);
                assert_eq!(body.error.code, "site_not_found");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn uploads_stream_the_file_with_the_targets_headers_and_no_token() {
        let (base, server) = one_request(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.zip");
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &payload).unwrap();
        let target = UploadTarget {
            method: "PUT".to_owned(),
            url: format!("{base}/uploads/docs/abc.zip?sig=xyz"),
            headers: BTreeMap::from([("x-upload-token".to_owned(), "t1".to_owned())]),
            max_bytes: 1 << 20,
        };
        let client = ApiClient::new(
            Endpoint::parse("http://127.0.0.1:1").unwrap(),
            Some("api-token".to_owned()),
        )
        .unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        client
            .upload(&target, &path, payload.len() as u64, move |n| {
                counter.fetch_add(n, Ordering::Relaxed);
            })
            .await
            .unwrap();
        let (head, body) = server.await.unwrap();
        assert!(
            head.starts_with("put /uploads/docs/abc.zip?sig=xyz http/1.1"),
            "{head}"
        );
        assert!(head.contains("x-upload-token: t1"), "{head}");
        assert!(head.contains("content-length: 200000"), "{head}");
        assert!(!head.contains("authorization"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert_eq!(body, payload);
        assert_eq!(sent.load(Ordering::Relaxed), payload.len() as u64);
    }

    #[tokio::test]
    async fn uploads_to_the_api_itself_carry_the_token() {
        let (base, server) = one_request(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.zip");
        std::fs::write(&path, b"PK\x05\x06").unwrap();
        let target = UploadTarget {
            method: "PUT".to_owned(),
            url: format!("{base}/uploads/docs/abc.zip"),
            headers: BTreeMap::new(),
            max_bytes: 1 << 20,
        };
        let client = ApiClient::new(
            Endpoint::parse(&base).unwrap(),
            Some("dev-token".to_owned()),
        )
        .unwrap();
        client.upload(&target, &path, 4, |_| {}).await.unwrap();
        let (head, body) = server.await.unwrap();
        assert!(head.contains("authorization: bearer dev-token"), "{head}");
        assert_eq!(body, b"PK\x05\x06");
    }

    #[tokio::test]
    async fn a_rejected_upload_reports_what_the_target_said() {
        let xml = "<Error><Code>AccessDenied</Code></Error>";
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
            xml.len()
        );
        let (base, server) = one_request(response).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.zip");
        std::fs::write(&path, b"PK").unwrap();
        let target = UploadTarget {
            method: "PUT".to_owned(),
            url: format!("{base}/put"),
            headers: BTreeMap::new(),
            max_bytes: 10,
        };
        let client = ApiClient::new(Endpoint::parse(&base).unwrap(), None).unwrap();
        let err = client.upload(&target, &path, 2, |_| {}).await.unwrap_err();
        server.await.unwrap();
        assert!(
            matches!(&err, ClientError::UnexpectedStatus { status, .. } if *status == StatusCode::FORBIDDEN),
            "{err:?}"
        );
        assert!(err.to_string().contains("AccessDenied"));
    }

    #[test]
    fn a_token_that_cannot_be_sent_is_refused_before_any_request() {
        let endpoint = Endpoint::parse("http://127.0.0.1:1").unwrap();
        let err = ApiClient::new(endpoint, Some("two\nlines".to_owned())).unwrap_err();
        assert!(matches!(err, ClientError::Token), "{err:?}");
        assert_eq!(err.code(), "bad_token");
        assert!(!err.is_transient());
    }

    #[test]
    fn endpoints_drop_trailing_slashes_and_keep_stage_paths() {
        let plain = Endpoint::parse("http://127.0.0.1:7070/").unwrap();
        assert_eq!(plain.join("/sites"), "http://127.0.0.1:7070/sites");
        let staged = Endpoint::parse("http://api.internal:8080/prod/").unwrap();
        assert_eq!(
            staged.join("/sites/docs"),
            "http://api.internal:8080/prod/sites/docs"
        );
    }

    #[test]
    fn https_endpoints_parse_with_their_host_and_stage() {
        let aws =
            Endpoint::parse("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/").unwrap();
        assert_eq!(
            aws.host(),
            Some("a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            aws.join("/sites"),
            "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/sites"
        );
        let custom = Endpoint::parse("https://api.example.com:8443/prod").unwrap();
        assert_eq!(custom.host(), Some("api.example.com"));
        assert_eq!(
            custom.join("/sites/docs"),
            "https://api.example.com:8443/prod/sites/docs"
        );
        // An explicit :443 is still the API's origin; plain http on the same host is not.
        let on_api =
            Url::parse("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com:443/u").unwrap();
        assert!(aws.same_origin(&on_api));
        let downgraded =
            Url::parse("http://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/u").unwrap();
        assert!(!aws.same_origin(&downgraded));
        let s3 = Url::parse("https://bucket.s3.eu-west-1.amazonaws.com/uploads/x.zip").unwrap();
        assert!(!aws.same_origin(&s3));
    }

    #[test]
    fn only_a_local_endpoint_suggests_starting_slipway_dev() {
        for (raw, local) in [
            ("http://127.0.0.1:7070", true),
            ("http://localhost:7070", true),
            ("http://[::1]:7070", true),
            ("http://10.0.0.5:7070", false),
            (
                "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
                false,
            ),
        ] {
            assert_eq!(Endpoint::parse(raw).unwrap().is_loopback(), local, "{raw}");
        }
    }

    #[test]
    fn endpoints_reject_what_the_client_cannot_honour() {
        assert!(matches!(
            Endpoint::parse("127.0.0.1:7070"),
            Err(EndpointError::NotAUrl { .. }) | Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("ftp://example.com"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("file:///tmp/api"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://example.com/?x=1"),
            Err(EndpointError::Extras(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://user:pw@example.com"),
            Err(EndpointError::Extras(_))
        ));
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(EndpointError::NotAUrl { .. })
        ));
    }

    #[test]
    fn error_bodies_become_api_errors_and_anything_else_is_quoted() {
        let api = br#"{"error":{"code":"site_not_found","message":"no site named docs"}}"#;
        let err = error_from_body(Method::GET, "u".into(), StatusCode::NOT_FOUND, api);
        assert_eq!(err.to_string(), "no site named docs (site_not_found)");
        assert_eq!(err.code(), "site_not_found");

        let xml = b"<Error><Code>SignatureDoesNotMatch</Code></Error>";
        let err = error_from_body(Method::PUT, "u".into(), StatusCode::FORBIDDEN, xml);
        assert!(matches!(err, ClientError::UnexpectedStatus { .. }));
        assert!(err.to_string().contains("SignatureDoesNotMatch"));
        assert_eq!(err.code(), "bad_response");
    }

    #[test]
    fn api_gateway_rejections_keep_the_first_paragraph_and_say_what_to_do() {
        let url = "https://a1b2.execute-api.us-east-1.amazonaws.com/sites";
        let mismatch = br#"{"message":"The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'GET\n/sites'"}"#;
        let err = aws_rejection(
            url,
            Some("InvalidSignatureException:http://internal.amazon.com/coral/".to_owned()),
            mismatch,
        )
        .expect("API Gateway's body");
        assert_eq!(
            err.to_string(),
            format!("AWS rejected the signed request to {url}: The request signature we calculated does not match the signature you provided. (check the secret access key)")
        );
        assert_eq!(err.code(), "aws_rejected");
        assert!(!err.is_transient());

        let denied = br#"{"message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:a1b2/$default/GET/sites"}"#;
        let err = aws_rejection(url, Some("AccessDeniedException".to_owned()), denied).unwrap();
        assert!(
            err.to_string()
                .ends_with("(the caller needs execute-api:Invoke on this API's ARN)"),
            "{err}"
        );

        let expired = br#"{"message":"The security token included in the request is expired"}"#;
        let err = aws_rejection(url, Some("ExpiredTokenException".to_owned()), expired).unwrap();
        assert!(err.to_string().contains("run `aws sso login`"), "{err}");

        // The API's own error body is not API Gateway's.
        let ours = br#"{"error":{"code":"forbidden","message":"no"}}"#;
        assert!(aws_rejection(url, None, ours).is_none());
    }

    #[tokio::test]
    async fn a_closed_port_reads_as_no_api_running() {
        // Bind then drop, so the port is (almost certainly) closed when the client connects.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let client = ApiClient::new(endpoint, None).unwrap();
        let err = client.list_sites().await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("no slipway API at http://127.0.0.1:{port}; is `slipway dev` running?")
        );
    }
}
