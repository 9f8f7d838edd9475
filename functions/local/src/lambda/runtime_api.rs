//! The Lambda Runtime API (2018-06-01) for one instance, as AWS's own server answers it:
//! `/next` long-polls until an invocation is handed over; `/response` and `/error` complete
//! the invocation in flight (202 `{"status":"OK"}`), an unknown id gets 400
//! `InvalidRequestID`, a second answer 403 `InvalidStateTransition`, a response over
//! 6,291,556 bytes 413 (and the invocation fails with `Function.ResponseSizeTooLarge`);
//! `/init/error` records why the instance could not start.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;

use super::instance::{Event, Slots};
use super::Outcome;

/// Lambda's buffered response limit (6 MiB + 100 bytes, as its Runtime API server checks).
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;
const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

pub(super) fn router(slots: Arc<Slots>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // Large enough to see an oversized response and fail its invocation by name.
        .layer(DefaultBodyLimit::max(2 * MAX_RESPONSE_BYTES))
        .with_state(slots)
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    json(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
}

fn refused(status: StatusCode, error_type: &str, message: &str) -> Response {
    json(
        status,
        serde_json::json!({"errorType": error_type, "errorMessage": message}),
    )
}

async fn next(State(slots): State<Arc<Slots>>) -> Response {
    let (park, event) = oneshot::channel::<Event>();
    if let Err(message) = slots.park(park) {
        return refused(StatusCode::FORBIDDEN, "InvalidStateTransition", message);
    }
    // Dropped by the pool when the instance stops: the runtime is told to exit.
    let Ok(event) = event.await else {
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal Server Error",
        );
    };
    let mut response = Response::new(Body::from(event.payload));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &event.request_id);
    set("lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &event.invoked_arn);
    set("lambda-runtime-trace-id", &event.trace_id);
    set("content-type", "application/json");
    response
}

async fn response(
    State(slots): State<Arc<Slots>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        let outcome = Outcome::failure("Function.ResponseSizeTooLarge", &request_id, &message);
        // The invocation fails either way; the runtime hears why.
        let _ = slots.complete(&request_id, outcome);
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        );
    }
    answer(&slots, &request_id, Outcome::Response(body))
}

async fn error(
    State(slots): State<Arc<Slots>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = reported_error(&headers, body);
    answer(&slots, &request_id, outcome)
}

async fn init_error(State(slots): State<Arc<Slots>>, headers: HeaderMap, body: Bytes) -> Response {
    match slots.fail_init(reported_error(&headers, body)) {
        Ok(()) => accepted(),
        Err(message) => refused(StatusCode::FORBIDDEN, "InvalidStateTransition", message),
    }
}

fn answer(slots: &Slots, request_id: &str, outcome: Outcome) -> Response {
    match slots.complete(request_id, outcome) {
        Ok(()) => accepted(),
        Err(Unanswerable::UnknownRequest) => refused(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        ),
        Err(Unanswerable::AlreadyAnswered) => refused(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition from RuntimeResponseSent to InvocationResponse failed for runtime.",
        ),
    }
}

/// Why `/response` or `/error` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unanswerable {
    UnknownRequest,
    AlreadyAnswered,
}

/// The error document a runtime posted: its body as sent (Lambda passes it through), named by
/// the error-type header, else the body's `errorType`, else `Unhandled`.
fn reported_error(headers: &HeaderMap, body: Bytes) -> Outcome {
    let from_body = || {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|doc| doc.get("errorType")?.as_str().map(str::to_owned))
    };
    let error_type = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(from_body)
        .unwrap_or_else(|| "Unhandled".to_owned());
    let body = if body.is_empty() {
        Bytes::from(serde_json::json!({"errorType": error_type, "errorMessage": ""}).to_string())
    } else {
        body
    };
    Outcome::FunctionError { error_type, body }
}
