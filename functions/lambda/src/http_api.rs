//! API Gateway HTTP API requests (payload format 2.0, through lambda_http) turned into the
//! `http::Request<Bytes>` the core handlers take, and their responses turned back: the `api`
//! and `github-webhook` functions share this.

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use slipway_core::api::ApiError;

/// The path the core handlers route on. With a named stage (not `$default`) API Gateway
/// puts `/{stage}` in front of it, which the routes do not know about.
pub fn route_path(request: &lambda_http::Request) -> String {
    let path = request.uri().path();
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    match stage.filter(|stage| *stage != "$default") {
        Some(stage) => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path)
            .to_owned(),
        None => path.to_owned(),
    }
}

/// The request as the core handlers take it, routed on `path`, refused with 413 like
/// `slipway dev` does when the body is over `limit`.
pub fn into_core_request(
    request: lambda_http::Request,
    path: &str,
    limit: usize,
) -> Result<Request<Bytes>, ApiError> {
    let (mut parts, body) = request.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(binary) => Bytes::from(binary),
        // Empty, and whatever variant a later lambda_http adds, by the bytes it derefs to.
        other => Bytes::copy_from_slice(&other),
    };
    if bytes.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        ));
    }
    let target = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    parts.uri = target.parse::<Uri>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{target:?} is not a valid request path"),
        )
    })?;
    Ok(Request::from_parts(parts, bytes))
}

/// JSON goes back as text; anything that is not UTF-8 as binary (API Gateway base64-encodes it).
pub fn into_lambda_response(response: Response<Bytes>) -> Response<Body> {
    response.map(|bytes| match String::from_utf8(Vec::from(bytes)) {
        Ok(text) => Body::Text(text),
        Err(not_text) => Body::Binary(not_text.into_bytes()),
    })
}
