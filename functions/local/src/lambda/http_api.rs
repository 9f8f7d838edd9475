//! API Gateway HTTP API's Lambda proxy integration, payload format 2.0, as `slipway dev`'s
//! edge applies it: an HTTP request becomes the event API Gateway sends (lower-cased,
//! comma-joined headers; cookies apart; decoded query parameters; base64 bodies unless the
//! content type is text; a full `requestContext` for the `$default` route and stage), and the
//! function's result becomes the HTTP response API Gateway returns (`statusCode`, `headers`,
//! one `Set-Cookie` per `cookies` entry, base64 bodies decoded; any other JSON is a 200
//! `application/json` body). A function error is a 500, an integration that outlives
//! [`INTEGRATION_TIMEOUT`] a 503, as HTTP APIs answer.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::Outcome;

/// How long API Gateway waits for an integration (HTTP APIs: at most 30 s).
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request API Gateway accepts (HTTP APIs: 10 MB).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// The account id `slipway dev` reports wherever AWS would put one.
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// One request as it reached the edge.
pub struct IncomingRequest<'a> {
    pub method: &'a Method,
    /// The path as sent, percent-encoding and all.
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub source_ip: IpAddr,
    /// The `Host` the client asked for, without its port.
    pub domain_name: &'a str,
    /// The API's id, as in `{api-id}.execute-api...` (a service's own id locally).
    pub api_id: &'a str,
    /// `apigw-requestid`, the id API Gateway gives the request.
    pub request_id: &'a str,
}

/// The payload format 2.0 event for `request`.
pub fn event(request: &IncomingRequest<'_>, now: OffsetDateTime) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    headers.insert("x-forwarded-for".into(), request.source_ip.to_string());
    headers.insert("x-forwarded-proto".into(), "http".into());
    let user_agent = headers
        .get(USER_AGENT.as_str())
        .cloned()
        .unwrap_or_default();

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!("$default"));
    event.insert("rawPath".into(), json!(request.raw_path));
    event.insert("rawQueryString".into(), json!(request.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    let query = query_parameters(request.raw_query);
    let content_type = request
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    let domain_prefix = request
        .domain_name
        .split('.')
        .next()
        .unwrap_or(request.domain_name);
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": LOCAL_ACCOUNT,
            "apiId": request.api_id,
            "domainName": request.domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": request.method.as_str(),
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip.to_string(),
                "userAgent": user_agent,
            },
            "requestId": request.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": request_time(now),
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        }),
    );
    let is_text = content_type.is_some_and(is_text_type);
    if !request.body.is_empty() {
        let body = if is_text {
            String::from_utf8_lossy(request.body).into_owned()
        } else {
            base64::engine::general_purpose::STANDARD.encode(request.body)
        };
        event.insert("body".into(), json!(body));
    }
    event.insert(
        "isBase64Encoded".into(),
        json!(!request.body.is_empty() && !is_text),
    );
    Value::Object(event)
}

/// API Gateway's request time: `12/Mar/2020:19:03:58 +0000`.
fn request_time(now: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        now.day(),
        MONTHS[usize::from(u8::from(now.month())) - 1],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Bodies API Gateway passes as text; every other type (and none) arrives base64-encoded.
fn is_text_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
}

/// Decoded query parameters, a repeated name's values joined with commas.
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        parameters
            .entry(decode(name))
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&decode(value));
            })
            .or_insert_with(|| decode(value));
    }
    parameters
}

/// The response API Gateway returns for an invocation's outcome.
pub fn response(outcome: &Outcome) -> Response<Bytes> {
    match outcome {
        Outcome::Response(payload) => proxy_response(payload).unwrap_or_else(internal_error),
        Outcome::FunctionError { .. } => internal_error(),
    }
}

/// `{"message":"Internal Server Error"}` with 500: a function error, a malformed response,
/// or an invocation Lambda refused.
pub fn internal_error() -> Response<Bytes> {
    gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// `{"message":"Service Unavailable"}` with 503: the integration outlived its timeout.
pub fn integration_timeout() -> Response<Bytes> {
    gateway_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}

fn gateway_message(status: StatusCode, message: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn proxy_response(payload: &Bytes) -> Option<Response<Bytes>> {
    let document: Value = serde_json::from_slice(payload).ok()?;
    let structured = document
        .as_object()
        .filter(|fields| fields.contains_key("statusCode"));
    let Some(fields) = structured else {
        // Any other JSON is the body of a 200.
        let mut response = Response::new(payload.clone());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Some(response);
    };
    let status = fields
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())?;
    let body = match fields.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) => {
            if fields.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .ok()?,
                )
            } else {
                Bytes::from(text.clone())
            }
        }
        Some(other) => Bytes::from(other.to_string()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(Value::Object(given)) = fields.get("headers") {
        for (name, value) in given {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            headers.insert(name, HeaderValue::from_str(&value).ok()?);
        }
    }
    if let Some(Value::Array(cookies)) = fields.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            headers.append(SET_COOKIE, HeaderValue::from_str(cookie).ok()?);
        }
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_event(
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Value {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let body = Bytes::copy_from_slice(body);
        let request = IncomingRequest {
            method: &method,
            raw_path: path,
            raw_query: query,
            headers: &map,
            body: &body,
            source_ip: "127.0.0.1".parse().unwrap(),
            domain_name: "api--docs.svc.localhost",
            api_id: "api--docs",
            request_id: "Zx8c2jzGoAMEYqQ=",
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_583_348_638_390_000_000).unwrap();
        event(&request, at)
    }

    #[test]
    fn requests_become_payload_format_2_events() {
        let event = request_event(
            Method::POST,
            "/api/users/jane%20doe",
            "tag=a&tag=b%20c&empty=",
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Accept", "text/html"),
                ("Accept", "application/json"),
                ("Cookie", "session=1; theme=dark"),
                ("User-Agent", "curl/8"),
            ],
            br#"{"name":"jane"}"#,
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["rawPath"], "/api/users/jane%20doe");
        assert_eq!(event["rawQueryString"], "tag=a&tag=b%20c&empty=");
        assert_eq!(event["cookies"], json!(["session=1", "theme=dark"]));
        assert_eq!(event["headers"]["accept"], "text/html,application/json");
        assert_eq!(event["headers"].get("cookie"), None);
        assert_eq!(event["headers"]["user-agent"], "curl/8");
        assert_eq!(
            event["queryStringParameters"],
            json!({"tag": "a,b c", "empty": ""})
        );
        assert_eq!(event["body"], r#"{"name":"jane"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let context = &event["requestContext"];
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["http"]["userAgent"], "curl/8");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["domainPrefix"], "api--docs");
        assert_eq!(context["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(context["timeEpoch"], 1_583_348_638_390i64);
        assert_eq!(event.get("pathParameters"), None);
    }

    #[test]
    fn binary_and_untyped_bodies_arrive_base64_encoded() {
        for content_type in [
            None,
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|t| ("content-type", t))
                .into_iter()
                .collect();
            let event = request_event(Method::PUT, "/", "", &headers, b"a=1");
            assert_eq!(event["isBase64Encoded"], true, "{content_type:?}");
            assert_eq!(event["body"], "YT0x");
        }
        let empty = request_event(Method::GET, "/", "", &[], b"");
        assert_eq!(empty.get("body"), None);
        assert_eq!(empty.get("queryStringParameters"), None);
        assert_eq!(empty.get("cookies"), None);
        assert_eq!(empty["isBase64Encoded"], false);
    }

    fn answered(payload: Value) -> Response<Bytes> {
        response(&Outcome::Response(Bytes::from(payload.to_string())))
    }

    #[test]
    fn structured_results_become_responses() {
        let response = answered(json!({
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "x-count": 3},
            "cookies": ["a=1; Path=/", "b=2"],
            "multiValueHeaders": {},
            "body": "aGVsbG8=",
            "isBase64Encoded": true,
        }));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["x-count"], "3");
        let cookies: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(response.body(), "hello");
    }

    #[test]
    fn other_json_is_a_200_json_body_and_garbage_is_a_500() {
        let plain = answered(json!({"message": "hi"}));
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()["content-type"], "application/json");
        assert_eq!(plain.body(), r#"{"message":"hi"}"#);

        for bad in [
            &b"not json"[..],
            br#"{"statusCode": "two hundred"}"#,
            br#"{"statusCode": 99}"#,
        ] {
            let response = response(&Outcome::Response(Bytes::copy_from_slice(bad)));
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(response.body(), r#"{"message":"Internal Server Error"}"#);
        }
        let failed = response(&Outcome::FunctionError {
            error_type: "Sandbox.Timedout".into(),
            body: Bytes::new(),
        });
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            integration_timeout().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
