//! What keeps the web pages open in a developer's browser from acting on `slipway dev`.
//!
//! `slipway dev` listens on a local port without TLS and, by default, without a token. Any page
//! the browser shows can send requests there: a "simple" cross-site request (a form, or a
//! `fetch` with a `text/plain` body) goes out without a CORS preflight, and a page whose host
//! name is re-pointed at 127.0.0.1 (DNS rebinding) even talks to it as its own origin. The guard
//! refuses both, with three rules over the request's head (and, for the last one, its body):
//!
//! 1. **Host** ([`Guard::check_host`]): the request must be addressed to this server, as
//!    `localhost:{port}`, `{anything}.localhost:{port}` or an IP address with its port: a
//!    loopback address when the API listens on loopback (`127.0.0.1:7070`, `[::1]:7070`), any
//!    IP address when it listens on another address or on all of them (`0.0.0.0`, `::`), so
//!    the machine's own addresses keep working. Any other name is refused: a DNS-rebound page
//!    carries its own name in `Host`. An IP literal cannot be rebound (the browser connects to
//!    exactly that address), and browsers resolve `*.localhost` to loopback themselves.
//! 2. **Origin** ([`Guard::check_origin`]): a state-changing request (any method but GET, HEAD
//!    and OPTIONS) that carries an `Origin` must come from this server's own origin,
//!    `http://{Host}`. Browsers send `Origin` with every POST, PUT, PATCH and DELETE, from
//!    forms and scripts alike; the CLI and other tools send none. Reads keep working from
//!    anywhere: without CORS headers a foreign page cannot see their answers.
//! 3. **Content type** ([`check_json_content_type`] before the body is read,
//!    [`check_json_body`] after): a state-changing request to a JSON route must declare
//!    `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed) when it
//!    declares a content type at all, and when it has a body. No browser sends that
//!    cross-site without a preflight, which `slipway dev` never grants. A state-changing
//!    request without a body and without a content type (`POST /sites/docs/rollback`) passes.
//!
//! Refusals are the API's errors: `403 forbidden_host`, `403 forbidden_origin`, `415
//! unsupported_media_type`, each message saying what to do instead. The rules depend on the
//! request and the bound address only, not on a route list, so anything `slipway dev` serves to
//! browsers later (a dashboard) runs the same [`Guard::check`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use slipway_core::api::ApiError;

/// How much of a refused header value an error message quotes.
const SHOWN_CHARS: usize = 100;

/// The checks for one server: built from the address its listener is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    bound: SocketAddr,
}

impl Guard {
    /// A guard for a server listening on `bound` (the listener's local address, so a `:0`
    /// bind has its real port).
    pub fn new(bound: SocketAddr) -> Guard {
        Guard { bound }
    }

    /// Rules 1 and 2: what every request to `slipway dev` passes, whatever it asks for.
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        self.check_host(request)?;
        self.check_origin(request)
    }

    /// Rule 1: the request is addressed to this server. The `Host` header, and the request
    /// target's authority when it is in absolute form, must both name it.
    pub fn check_host<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        let host = single_host(request.headers()).map_err(|_| self.foreign_host(None))?;
        if !self.accepts(host) {
            return Err(self.foreign_host(Some(host)));
        }
        if let Some(authority) = request.uri().authority() {
            if !self.accepts(authority.as_str()) {
                return Err(self.foreign_host(Some(authority.as_str())));
            }
        }
        Ok(())
    }

    /// Rule 2: a state-changing request that names an origin comes from this server's own,
    /// `http://{Host}`. Reads (GET, HEAD, OPTIONS) are not checked.
    pub fn check_origin<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        if is_read(request.method()) {
            return Ok(());
        }
        let mut origins = request.headers().get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("(not text)");
        let host = single_host(request.headers()).ok();
        let own = host.and_then(Authority::parse);
        let same =
            origins.next().is_none() && own.is_some_and(|own| parse_origin(origin) == Some(own));
        if same {
            return Ok(());
        }
        let own = match host {
            Some(host) if own.is_some() => format!("http://{host}"),
            _ => format!("http://localhost:{}", self.bound.port()),
        };
        tracing::warn!(
            origin = %shown(origin),
            method = %request.method(),
            path = %request.uri().path(),
            "refused a request from a foreign origin"
        );
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            format!(
                "a {method} from the web page at {origin:?} was refused: slipway dev takes \
                 state-changing requests only from its own origin ({own}), so other web pages \
                 cannot act on your control plane. Send it from the slipway CLI, or from a \
                 client that sends no Origin header",
                method = request.method(),
                origin = shown(origin),
            ),
        ))
    }

    /// Whether `raw` (a `Host` header's value) names this server.
    pub fn accepts(&self, raw: &str) -> bool {
        let Some(authority) = Authority::parse(raw) else {
            return false;
        };
        if authority.port != self.bound.port() {
            return false;
        }
        match authority.host {
            Host::Name(name) => is_localhost_name(name),
            Host::Ip(ip) if self.bound.ip().to_canonical().is_loopback() => {
                ip.to_canonical().is_loopback()
            }
            // Bound to all addresses or to one that is not loopback: reached as any of the
            // machine's addresses, or through an address translation that keeps the port.
            Host::Ip(_) => true,
        }
    }

    /// The addresses [`Guard::accepts`] takes, for people.
    fn accepted(&self) -> String {
        let port = self.bound.port();
        let addresses = if self.bound.ip().to_canonical().is_loopback() {
            format!("a loopback address such as {}", self.bound)
        } else {
            format!("an IP address of this machine with port {port}")
        };
        format!("localhost:{port}, a *.localhost:{port} name or {addresses}")
    }

    fn foreign_host(&self, host: Option<&str>) -> ApiError {
        let what = match host {
            Some(host) => format!("Host {:?} is not this server", shown(host)),
            None => "the request needs exactly one Host header".to_owned(),
        };
        tracing::warn!(host = %host.map(shown).unwrap_or_default(), "refused a request for a foreign host");
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "{what}: slipway dev answers only requests addressed to {} (this protects it \
                 from DNS rebinding). Use http://localhost:{}/, or listen on another address \
                 with --api-addr",
                self.accepted(),
                self.bound.port(),
            ),
        )
    }
}

/// Rule 3, on the head: a state-changing request declaring a content type must declare JSON.
/// Runs before the body is read, so a refused body is never buffered.
pub fn check_json_content_type<B>(request: &Request<B>) -> Result<(), ApiError> {
    if is_read(request.method()) {
        return Ok(());
    }
    for value in request.headers().get_all(header::CONTENT_TYPE) {
        let declared = value.to_str().unwrap_or("(not text)");
        if !is_json(declared) {
            return Err(unsupported(format!(
                "this route takes a JSON body with Content-Type: application/json, not {:?}; \
                 send the body as JSON with that content type",
                shown(declared)
            )));
        }
    }
    Ok(())
}

/// Rule 3, on the whole request: a state-changing request with a body declares it JSON
/// (with [`check_json_content_type`] passed, a declared type is JSON already).
pub fn check_json_body(request: &Request<Bytes>) -> Result<(), ApiError> {
    check_json_content_type(request)?;
    if is_read(request.method())
        || request.body().is_empty()
        || request.headers().contains_key(header::CONTENT_TYPE)
    {
        return Ok(());
    }
    Err(unsupported(
        "the request has a body but no Content-Type; send it as JSON with Content-Type: \
         application/json"
            .to_owned(),
    ))
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// The methods that never change state, which browsers may send anywhere.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `application/json`, in any case, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// The request's one `Host` value (`Err` when there is none, several, or it is not text).
fn single_host(headers: &HeaderMap) -> Result<&str, ()> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().map_err(|_| ()),
        _ => Err(()),
    }
}

/// At most [`SHOWN_CHARS`] of a value from the request, for a message.
fn shown(value: &str) -> &str {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// `localhost`, or a name under it (`docs.localhost`, `a.b.localhost`), in any case.
fn is_localhost_name(name: &str) -> bool {
    const SUFFIX: &str = ".localhost";
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if !name.is_ascii() || name.len() <= SUFFIX.len() {
        return false;
    }
    let (labels, suffix) = name.split_at(name.len() - SUFFIX.len());
    suffix.eq_ignore_ascii_case(SUFFIX)
        && labels.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A URL's `Origin`: `http://` and an authority, nothing else. `null`, other schemes and
/// anything malformed are `None`.
fn parse_origin(origin: &str) -> Option<Authority<'_>> {
    let (scheme, authority) = origin.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    Authority::parse(authority)
}

#[derive(Debug, Clone, Copy)]
enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// A `Host` header's value (RFC 9110 §7.2): a host, and its port (80 when left out).
#[derive(Debug, Clone, Copy)]
struct Authority<'a> {
    host: Host<'a>,
    port: u16,
}

impl PartialEq for Authority<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port
            && match (self.host, other.host) {
                (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
                (Host::Ip(a), Host::Ip(b)) => a == b,
                _ => false,
            }
    }
}

impl Authority<'_> {
    fn parse(raw: &str) -> Option<Authority<'_>> {
        let port = |raw: &str| -> Option<u16> {
            if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            raw.parse().ok()
        };
        if let Some(rest) = raw.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = inside.parse().ok()?;
            let port = match after {
                "" => 80,
                after => port(after.strip_prefix(':')?)?,
            };
            return Some(Authority {
                host: Host::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        let (name, port) = match raw.rsplit_once(':') {
            Some((name, raw_port)) => (name, port(raw_port)?),
            None => (raw, 80),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if name.is_empty() || !name.bytes().all(valid) {
            return None;
        }
        let host = match name.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Name(name),
        };
        Some(Authority { host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Request<Bytes> {
        let mut builder = Request::builder().method(method).uri("/sites");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Bytes::new()).unwrap()
    }

    fn guard(bound: &str) -> Guard {
        Guard::new(bound.parse().unwrap())
    }

    #[test]
    fn a_loopback_server_answers_to_localhost_names_and_loopback_addresses() {
        let guard = guard("127.0.0.1:7070");
        for host in [
            "127.0.0.1:7070",
            "localhost:7070",
            "LocalHost:7070",
            "docs.localhost:7070",
            "a.b-c.localhost:7070",
            "127.0.0.2:7070",
            "[::1]:7070",
            "[::ffff:127.0.0.1]:7070",
        ] {
            assert!(guard.accepts(host), "{host}");
        }
        for host in [
            "evil.example:7070",
            "evil.example",
            "localhost",
            "localhost:7080",
            "127.0.0.1",
            "127.0.0.1:70700",
            "127.0.0.1:+7070",
            "127.0.0.1:",
            "192.168.1.5:7070",
            "[::2]:7070",
            "localhost.:7070",
            "localhost.evil.example:7070",
            "evillocalhost:7070",
            ".localhost:7070",
            "a..localhost:7070",
            "ev il.localhost:7070",
            "127.1:7070",
            "::1:7070",
            "[::1]7070",
            "user@localhost:7070",
            "",
        ] {
            assert!(!guard.accepts(host), "{host}");
        }
        let v6 = self::guard("[::1]:7070");
        assert!(v6.accepts("[::1]:7070") && v6.accepts("localhost:7070"));
        assert!(!v6.accepts("[::2]:7070"));
        let port80 = self::guard("127.0.0.1:80");
        assert!(port80.accepts("localhost") && port80.accepts("127.0.0.1:80"));
    }

    #[test]
    fn a_server_on_other_addresses_answers_to_ip_addresses_and_localhost_names() {
        for bound in ["0.0.0.0:7070", "[::]:7070", "192.168.1.5:7070"] {
            let guard = guard(bound);
            for host in [
                "192.168.1.5:7070",
                "10.0.0.7:7070",
                "0.0.0.0:7070",
                "[fe80::1]:7070",
                "localhost:7070",
                "docs.localhost:7070",
                "127.0.0.1:7070",
            ] {
                assert!(guard.accepts(host), "{bound}: {host}");
            }
            for host in ["devbox.lan:7070", "192.168.1.5:7071", "evil.example:7070"] {
                assert!(!guard.accepts(host), "{bound}: {host}");
            }
        }
    }

    #[test]
    fn the_host_rule_refuses_foreign_missing_and_repeated_hosts() {
        let guard = guard("127.0.0.1:7070");
        assert!(guard
            .check(&request("GET", &[("host", "localhost:7070")]))
            .is_ok());
        let refused = |headers: &[(&str, &str)]| {
            let error = guard.check(&request("GET", headers)).unwrap_err();
            assert_eq!(
                (error.status, error.code),
                (StatusCode::FORBIDDEN, "forbidden_host"),
                "{headers:?}"
            );
            error.message
        };
        let message = refused(&[("host", "evil.example:7070")]);
        assert!(
            message.contains("\"evil.example:7070\"") && message.contains("localhost:7070"),
            "{message}"
        );
        refused(&[]);
        refused(&[("host", "localhost:7070"), ("host", "evil.example:7070")]);
        // An absolute-form target names the host too.
        let absolute = Request::get("http://evil.example:7070/sites")
            .header("host", "localhost:7070")
            .body(())
            .unwrap();
        assert_eq!(guard.check(&absolute).unwrap_err().code, "forbidden_host");
    }

    #[test]
    fn state_changing_requests_come_from_the_own_origin_or_none() {
        let guard = guard("127.0.0.1:7070");
        let check = |method: &str, host: &str, origin: Option<&str>| {
            let mut headers = vec![("host", host)];
            headers.extend(origin.map(|o| ("origin", o)));
            guard.check(&request(method, &headers)).map_err(|e| e.code)
        };
        assert_eq!(check("POST", "localhost:7070", None), Ok(()));
        for (host, origin) in [
            ("localhost:7070", "http://localhost:7070"),
            ("localhost:7070", "HTTP://LOCALHOST:7070"),
            ("127.0.0.1:7070", "http://127.0.0.1:7070"),
            ("[::1]:7070", "http://[::1]:7070"),
            ("docs.localhost:7070", "http://docs.localhost:7070"),
        ] {
            assert_eq!(check("POST", host, Some(origin)), Ok(()), "{origin}");
            assert_eq!(check("DELETE", host, Some(origin)), Ok(()), "{origin}");
        }
        for origin in [
            "http://evil.example",
            "http://evil.example:7070",
            "https://localhost:7070",
            "http://localhost:7080",
            "http://docs.localhost:7080",
            "http://127.0.0.1:7070",
            "http://localhost:7070/",
            "null",
            "",
        ] {
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                assert_eq!(
                    check(method, "localhost:7070", Some(origin)),
                    Err("forbidden_origin"),
                    "{method} {origin}"
                );
            }
            // Reads are answered: without CORS headers, the page cannot see the answer.
            for method in ["GET", "HEAD", "OPTIONS"] {
                assert_eq!(check(method, "localhost:7070", Some(origin)), Ok(()));
            }
        }
        let two = request(
            "POST",
            &[
                ("host", "localhost:7070"),
                ("origin", "http://localhost:7070"),
                ("origin", "http://evil.example"),
            ],
        );
        assert_eq!(guard.check(&two).unwrap_err().code, "forbidden_origin");
        // The webhook's route checks the origin alone (no Host rule).
        let tunnelled = request(
            "POST",
            &[
                ("host", "abc.ngrok.example"),
                ("origin", "http://evil.example"),
            ],
        );
        assert_eq!(
            guard.check_origin(&tunnelled).unwrap_err().code,
            "forbidden_origin"
        );
        let delivery = request("POST", &[("host", "abc.ngrok.example")]);
        assert!(guard.check_origin(&delivery).is_ok());
    }

    #[test]
    fn json_routes_take_json_or_nothing() {
        let with = |method: &str, content_type: Option<&str>, body: &'static [u8]| {
            let mut builder = Request::builder().method(method).uri("/sites");
            if let Some(content_type) = content_type {
                builder = builder.header("content-type", content_type);
            }
            let request = builder.body(Bytes::from_static(body)).unwrap();
            check_json_content_type(&request)
                .and_then(|()| check_json_body(&request))
                .map_err(|e| (e.status, e.code))
        };
        let refused = Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert_eq!(with("POST", Some(content_type), b"{}"), Ok(()));
            assert_eq!(with("POST", Some(content_type), b""), Ok(()));
        }
        assert_eq!(with("POST", None, b""), Ok(()));
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-seq",
            "",
        ] {
            assert_eq!(with("POST", Some(content_type), b"{}"), refused);
            // An empty form still declares itself a form.
            assert_eq!(with("POST", Some(content_type), b""), refused);
            assert_eq!(with("PUT", Some(content_type), b"{}"), refused);
            assert_eq!(with("GET", Some(content_type), b"{}"), Ok(()));
        }
        assert_eq!(with("POST", None, b"{\"name\":\"x\"}"), refused);
        assert_eq!(with("GET", None, b"{\"name\":\"x\"}"), Ok(()));
    }

    #[test]
    fn messages_quote_a_bounded_part_of_what_was_sent() {
        let guard = guard("127.0.0.1:7070");
        let long = format!("{}:7070", "a".repeat(10_000));
        let error = guard
            .check(&request("GET", &[("host", long.as_str())]))
            .unwrap_err();
        assert!(error.message.len() < 600, "{}", error.message);
        assert_eq!(shown("é".repeat(200).as_str()).chars().count(), SHOWN_CHARS);
    }
}
