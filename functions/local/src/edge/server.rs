//! The local edge's HTTP server: axum on a TCP listener, every GET and HEAD routed by
//! router.js and then answered either with the router's generated response or with the
//! routed object from the hosting bucket (ETags, `If-None-Match`, stored headers).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use slipway_core::model::Bucket;
use slipway_core::ports::{KeyValueStore, ObjectBody, ObjectStore, ObjectStoreError};

use super::engine::{router_source, EdgeConfig, EdgeError, EdgeRouter};
use super::event::{EdgeRequest, EdgeResponse, ResponseBody, RouterOutcome};

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
    use slipway_core::model::RoutingFlags;
    use slipway_core::names::{DeploymentId, SiteName};
    use slipway_core::ports::ObjectMeta;
    use slipway_core::site::edge::{kvs_value, Hosts};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

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
                .put(&host, &kvs_value(&site, &id, flags))
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
