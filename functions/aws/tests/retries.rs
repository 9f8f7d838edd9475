//! Throttling and 5xx answers from S3 and DynamoDB are retried with backoff by the retry
//! policy every slipway client uses (`slipway_aws::config::retry_config`), and give up after
//! its bound with `Unavailable`. No emulator answers "throttled, then fine" on demand, so a
//! small local server plays that fault sequence.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use slipway_aws::config::MAX_ATTEMPTS;
use slipway_aws::dynamodb::{self, DynamoState};
use slipway_aws::s3::{self, S3Objects};
use slipway_core::model::Bucket;
use slipway_core::names::SiteName;
use slipway_core::ports::{ObjectStore, ObjectStoreError, StateError, StateStore};
use slipway_core::steps::BucketNames;

/// A canned answer: status, headers, body.
type Answer = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

/// Answers the first `failures` requests with `failure`, the rest with `success`, and counts.
async fn fault_server(
    failures: usize,
    failure: Answer,
    success: Answer,
) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let (status, headers, body) = if n < failures {
            failure.clone()
        } else {
            success.clone()
        };
        async move {
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn s3_objects(url: &str) -> S3Objects {
    let buckets = BucketNames {
        source: "src".into(),
        artifacts: "art".into(),
        hosting: "host".into(),
    };
    S3Objects::new(s3::client(&support::sdk_config(url)), buckets)
}

fn slow_down() -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        vec![("content-type", "application/xml")],
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    )
}

fn found_object() -> Answer {
    (
        StatusCode::OK,
        vec![
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "public, max-age=0, must-revalidate"),
            ("content-length", "5"),
            ("etag", "\"0123456789abcdef\""),
        ],
        "",
    )
}

#[tokio::test]
async fn s3_throttling_and_server_errors_are_retried_with_backoff() {
    let (url, seen) = fault_server(2, slow_down(), found_object()).await;
    let info = s3_objects(&url)
        .head(Bucket::Hosting, "docs/x/index.html")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two throttled answers, then the real one"
    );
    assert_eq!(info.size, 5);
    assert_eq!(info.meta.content_type, "text/html; charset=utf-8");

    let internal = (
        StatusCode::INTERNAL_SERVER_ERROR,
        vec![("content-type", "application/xml")],
        "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
    );
    let (url, seen) = fault_server(1, internal, found_object()).await;
    assert!(s3_objects(&url)
        .head(Bucket::Hosting, "k")
        .await
        .unwrap()
        .is_some());
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn s3_gives_up_after_the_bound_with_unavailable() {
    let (url, seen) = fault_server(usize::MAX, slow_down(), found_object()).await;
    let err = s3_objects(&url)
        .head(Bucket::Hosting, "k")
        .await
        .unwrap_err();
    assert!(matches!(err, ObjectStoreError::Unavailable(_)), "{err:?}");
    assert_eq!(seen.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
}

fn throttled() -> Answer {
    (
        StatusCode::BAD_REQUEST,
        vec![("content-type", "application/x-amz-json-1.0")],
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
    )
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_then_answers() {
    // No item: after the retries, the store's own answer for a missing site.
    let empty = (
        StatusCode::OK,
        vec![("content-type", "application/x-amz-json-1.0")],
        "{}",
    );
    let (url, seen) = fault_server(2, throttled(), empty).await;
    let state = DynamoState::new(dynamodb::client(&support::sdk_config(&url)), "slipway");
    let err = state
        .get_site(&SiteName::parse("docs").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::SiteNotFound(_)), "{err:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (url, seen) = fault_server(usize::MAX, throttled(), (StatusCode::OK, vec![], "{}")).await;
    let state = DynamoState::new(dynamodb::client(&support::sdk_config(&url)), "slipway");
    let err = state
        .get_site(&SiteName::parse("docs").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Unavailable(_)), "{err:?}");
    assert_eq!(seen.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
}
