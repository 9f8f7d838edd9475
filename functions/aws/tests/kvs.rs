//! The KVS adapter against the KVS data-plane test server (SigV4A-checking, `If-Match`
//! enforcing), reached through the endpoint hook.

mod support;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_cloudfrontkeyvaluestore::error::SdkError;
use aws_sdk_cloudfrontkeyvaluestore::operation::describe_key_value_store::DescribeKeyValueStoreError;
use aws_sdk_cloudfrontkeyvaluestore::operation::get_key::GetKeyError;
use aws_sdk_cloudfrontkeyvaluestore::operation::put_key::PutKeyError;
use aws_sdk_cloudfrontkeyvaluestore::Client;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::{v4, v4a};
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use slipway_aws::kvs::{client_for_endpoint, CloudFrontKvs};
use slipway_core::ports::{KeyValueStore, KvsError, MAX_KVS_VALUE};
use slipway_testkit::aws::kvs_server::{Handled, KvsTestServer, Operation};

const HOST: &str = "docs.example.com";

async fn start() -> (KvsTestServer, Client, CloudFrontKvs) {
    let server = KvsTestServer::start(support::ACCESS_KEY, support::SECRET_KEY)
        .await
        .expect("the KVS test server starts");
    let client = client_for_endpoint(&support::sdk_config(server.url()), server.url());
    let routes = CloudFrontKvs::new(client.clone(), server.kvs_arn().clone());
    (server, client, routes)
}

fn statuses(server: &KvsTestServer, operation: Operation) -> Vec<u16> {
    server
        .handled()
        .into_iter()
        .filter(|h| h.operation == operation)
        .map(|h| h.status)
        .collect()
}

#[tokio::test]
async fn put_get_overwrite_and_delete_round_trip() {
    let (server, _, routes) = start().await;
    assert_eq!(routes.get(HOST).await.unwrap(), None);

    let before = server.etag();
    routes
        .put(HOST, "docs/01jd0000000000000000000000|s")
        .await
        .unwrap();
    assert_ne!(server.etag(), before, "a write moves the ETag");
    assert_eq!(
        routes.get(HOST).await.unwrap().as_deref(),
        Some("docs/01jd0000000000000000000000|s")
    );

    routes
        .put(HOST, "docs/01je0000000000000000000000|")
        .await
        .unwrap();
    routes
        .put("blog.example.com", "blog/01jf0000000000000000000000|")
        .await
        .unwrap();
    assert_eq!(
        server.entries().into_iter().collect::<Vec<_>>(),
        [
            (
                "blog.example.com".to_owned(),
                "blog/01jf0000000000000000000000|".to_owned()
            ),
            (
                HOST.to_owned(),
                "docs/01je0000000000000000000000|".to_owned()
            ),
        ]
    );

    routes.delete(HOST).await.unwrap();
    assert_eq!(routes.get(HOST).await.unwrap(), None);
    assert_eq!(
        routes.get("blog.example.com").await.unwrap().as_deref(),
        Some("blog/01jf0000000000000000000000|")
    );
    // Every request got through the SigV4A check.
    assert!(
        server.handled().iter().all(|h| h.status != 403),
        "{:?}",
        server.handled()
    );
}

#[tokio::test]
async fn deleting_a_missing_key_is_fine_and_writes_nothing() {
    let (server, _, routes) = start().await;
    let before = server.etag();
    routes.delete("gone.example.com").await.unwrap();
    assert_eq!(server.etag(), before);
    assert_eq!(statuses(&server, Operation::DeleteKey), [404]);
}

#[tokio::test]
async fn a_stale_etag_is_re_read_and_the_put_retried() {
    let (server, _, routes) = start().await;
    let routes = routes.with_max_conflict_retries(3);
    server.inject_conflicts(3);

    routes
        .put(HOST, "docs/01jd0000000000000000000000|")
        .await
        .unwrap();

    assert_eq!(
        server.entries().get(HOST).map(String::as_str),
        Some("docs/01jd0000000000000000000000|")
    );
    assert_eq!(statuses(&server, Operation::PutKey), [409, 409, 409, 200]);
    assert_eq!(
        statuses(&server, Operation::DescribeKeyValueStore),
        [200, 200, 200, 200],
        "each retry re-reads the ETag"
    );
}

#[tokio::test]
async fn a_stale_etag_is_re_read_and_the_delete_retried() {
    let (server, _, routes) = start().await;
    routes
        .put(HOST, "docs/01jd0000000000000000000000|")
        .await
        .unwrap();
    server.inject_conflicts(1);

    routes.delete(HOST).await.unwrap();

    assert!(server.entries().is_empty());
    assert_eq!(statuses(&server, Operation::DeleteKey), [409, 200]);
}

#[tokio::test]
async fn more_conflicts_than_the_bound_give_a_named_error() {
    let (server, _, routes) = start().await;
    routes.put(HOST, "docs/old|").await.unwrap();
    let routes = routes.with_max_conflict_retries(2);
    server.inject_conflicts(10);

    let err = routes.put(HOST, "docs/new|").await.unwrap_err();

    assert!(
        matches!(&err, KvsError::Conflict { key, attempts: 3 } if key == HOST),
        "{err:?}"
    );
    assert_eq!(statuses(&server, Operation::PutKey), [200, 409, 409, 409]);
    assert_eq!(
        server.entries().get(HOST).map(String::as_str),
        Some("docs/old|"),
        "the old route stays"
    );

    let err = routes.delete(HOST).await.unwrap_err();
    assert!(
        matches!(err, KvsError::Conflict { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(server.entries().contains_key(HOST));
}

#[tokio::test]
async fn a_value_over_1_kb_is_rejected_before_any_call() {
    let (server, _, routes) = start().await;
    let too_long = "x".repeat(MAX_KVS_VALUE + 1);

    let err = routes.put(HOST, &too_long).await.unwrap_err();

    assert!(
        matches!(&err, KvsError::ValueTooLarge { key, len } if key == HOST && *len == MAX_KVS_VALUE + 1),
        "{err:?}"
    );
    assert_eq!(server.handled(), Vec::<Handled>::new());

    let longest = "x".repeat(MAX_KVS_VALUE);
    routes.put(HOST, &longest).await.unwrap();
    assert_eq!(routes.get(HOST).await.unwrap(), Some(longest));
}

/// Asserts that a call failed with the service error `is` recognises.
fn assert_service_error<E: std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
    is: impl FnOnce(&E) -> bool,
) {
    assert!(err.as_service_error().is_some_and(is), "{err:?}");
}

/// The server side of the protocol, through the SDK's own error mapping.
#[tokio::test]
async fn the_server_speaks_the_services_errors() {
    let (server, client, _) = start().await;
    let arn = server.kvs_arn().as_str();

    let described = client
        .describe_key_value_store()
        .kvs_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(described.e_tag(), server.etag());
    assert_eq!(described.kvs_arn(), arn);
    assert_eq!(described.status(), Some("READY"));

    let put = client
        .put_key()
        .kvs_arn(arn)
        .key(HOST)
        .value("docs/a|")
        .if_match(described.e_tag())
        .send()
        .await
        .unwrap();
    assert_eq!(put.e_tag(), server.etag());
    assert_eq!(
        (put.item_count(), put.total_size_in_bytes()),
        (1, (HOST.len() + 7) as i64)
    );

    let stale = client
        .put_key()
        .kvs_arn(arn)
        .key(HOST)
        .value("docs/b|")
        .if_match(described.e_tag())
        .send()
        .await
        .unwrap_err();
    assert_service_error(&stale, PutKeyError::is_conflict_exception);

    let missing = client
        .get_key()
        .kvs_arn(arn)
        .key("nope.example.com")
        .send()
        .await
        .unwrap_err();
    assert_service_error(&missing, GetKeyError::is_resource_not_found_exception);

    let too_long = client
        .put_key()
        .kvs_arn(arn)
        .key(HOST)
        .value("x".repeat(MAX_KVS_VALUE + 1))
        .if_match(server.etag())
        .send()
        .await
        .unwrap_err();
    assert_service_error(&too_long, PutKeyError::is_validation_exception);

    let other_store = client
        .describe_key_value_store()
        .kvs_arn("arn:aws:cloudfront::123456789012:key-value-store/some-other-store")
        .send()
        .await
        .unwrap_err();
    assert_service_error(
        &other_store,
        DescribeKeyValueStoreError::is_resource_not_found_exception,
    );
    assert_eq!(
        server.entries().get(HOST).map(String::as_str),
        Some("docs/a|")
    );
}

const VALID: Signing = Signing::SigV4A {
    secret: support::SECRET_KEY,
};

enum Signing {
    None,
    SigV4,
    SigV4A { secret: &'static str },
}

/// Sends a PutKey for `value` by hand, signed as `signing` says over `signed_value`.
async fn raw_put(
    server: &KvsTestServer,
    signing: Signing,
    signed_value: &str,
    value: &str,
) -> reqwest::Response {
    let path = format!(
        "/key-value-stores/{}/keys/{HOST}",
        utf8_percent_encode(server.kvs_arn().as_str(), NON_ALPHANUMERIC)
    );
    let url = format!("{}{path}", server.url());
    let host = server.url().trim_start_matches("http://").to_owned();
    let etag = server.etag();
    let body = |v: &str| serde_json::json!({ "Value": v }).to_string();
    let signed_body = body(signed_value);
    let base_headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
        ("if-match", etag.as_str()),
    ];

    let secret = match signing {
        Signing::SigV4A { secret } => secret,
        _ => support::SECRET_KEY,
    };
    let identity: Identity =
        Credentials::new(support::ACCESS_KEY, secret, None, None, "test").into();
    let params = match signing {
        Signing::None => None,
        Signing::SigV4 => Some(
            v4::SigningParams::builder()
                .identity(&identity)
                .region(support::REGION)
                .name("cloudfront-keyvaluestore")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into(),
        ),
        Signing::SigV4A { .. } => Some(
            v4a::SigningParams::builder()
                .identity(&identity)
                .region_set("*")
                .name("cloudfront-keyvaluestore")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into(),
        ),
    };

    let mut request = reqwest::Client::new().put(&url).body(body(value));
    for (name, value) in &base_headers[1..] {
        request = request.header(*name, *value);
    }
    if let Some(params) = params {
        let signable = SignableRequest::new(
            "PUT",
            url.as_str(),
            base_headers.into_iter(),
            SignableBody::Bytes(signed_body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
    }
    request.send().await.unwrap()
}

fn error_type(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_server_accepts_only_valid_sigv4a_signatures() {
    let (server, _, _) = start().await;

    let unsigned = raw_put(&server, Signing::None, "docs/a|", "docs/a|").await;
    assert_eq!(unsigned.status(), 403);
    assert_eq!(error_type(&unsigned), "MissingAuthenticationTokenException");

    let sigv4 = raw_put(&server, Signing::SigV4, "docs/a|", "docs/a|").await;
    assert_eq!(sigv4.status(), 403);
    assert_eq!(error_type(&sigv4), "IncompleteSignatureException");

    let wrong_secret = Signing::SigV4A {
        secret: "not-the-secret",
    };
    let forged = raw_put(&server, wrong_secret, "docs/a|", "docs/a|").await;
    assert_eq!(forged.status(), 403);
    assert_eq!(error_type(&forged), "InvalidSignatureException");

    let tampered = raw_put(&server, VALID, "docs/a|", "docs/evil|").await;
    assert_eq!(tampered.status(), 403);
    assert_eq!(error_type(&tampered), "InvalidSignatureException");
    assert!(server.entries().is_empty(), "no rejected request wrote");

    // The control: the same request, correctly signed, goes through.
    let valid = raw_put(&server, VALID, "docs/a|", "docs/a|").await;
    assert_eq!(valid.status(), 200, "{:?}", valid.text().await);
    assert_eq!(
        server.entries().get(HOST).map(String::as_str),
        Some("docs/a|")
    );
}
