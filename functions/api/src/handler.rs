//! The control-plane API behind API Gateway's HTTP API: the very
//! `slipway_core::api::ControlPlane` that `slipway dev` serves, with lambda_http's request
//! (payload format 2.0, bodies already base64-decoded) turned into `http::Request<Bytes>` and
//! the response turned back. IAM authorization happens in API Gateway, before this runs.

use std::convert::Infallible;

use http::Response;
use lambda_http::Body;
use slipway_core::api::{ControlPlane, MAX_JSON_BODY};
use slipway_lambda::http_api::{into_core_request, into_lambda_response, route_path};
use tracing::field::Empty;
use tracing::Instrument;

pub async fn function_handler(
    api: &ControlPlane,
    request: lambda_http::Request,
) -> Result<Response<Body>, Infallible> {
    let path = route_path(&request);
    let span = tracing::info_span!(
        "api",
        method = %request.method(),
        path = %path,
        site = Empty,
        deployment_id = Empty,
    );
    record_ids(&span, &path);
    let response = async move {
        let response = match into_core_request(request, &path, MAX_JSON_BODY) {
            Ok(request) => api.handle(request).await,
            Err(refused) => refused.into_response(),
        };
        tracing::info!(status = response.status().as_u16(), "api request");
        response
    }
    .instrument(span)
    .await;
    Ok(into_lambda_response(response))
}

/// Puts the site and deployment a path names on the request's span.
fn record_ids(span: &tracing::Span, path: &str) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["sites", site, "deployments", id, ..] => {
            span.record("site", *site);
            span.record("deployment_id", *id);
        }
        ["sites", site, ..] => {
            span.record("site", *site);
        }
        ["deployments", id, ..] => {
            span.record("deployment_id", *id);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::{json, Value};
    use slipway_core::model::{DeploymentStatus, ObjectLocation};
    use slipway_core::names::{DeploymentId, SiteName};
    use slipway_core::ports::UploadTarget;
    use slipway_core::ports::{StateStore, UploadError, UploadTargets};
    use slipway_testkit::embedded::Embedded;

    use http::StatusCode;

    use super::*;

    /// Presigned PUTs as the tests see them: a URL naming the key, no signature.
    struct FakePresigner;

    #[async_trait]
    impl UploadTargets for FakePresigner {
        fn max_bytes(&self) -> u64 {
            1024 * 1024
        }

        async fn upload_target(
            &self,
            location: &ObjectLocation,
        ) -> Result<UploadTarget, UploadError> {
            Ok(UploadTarget {
                method: "PUT".into(),
                url: format!(
                    "https://acme-source.s3.test/{}?X-Amz-Expires=900",
                    location.key
                ),
                headers: [("content-type".to_owned(), "application/zip".to_owned())].into(),
                max_bytes: self.max_bytes(),
            })
        }
    }

    fn control_plane(stores: &Embedded) -> ControlPlane {
        ControlPlane::new(
            stores.tasks.traffic().clone(),
            stores.tasks.activate.addresses.clone(),
            Arc::new(FakePresigner),
        )
    }

    fn request(method: &str, path: &str, body: Body) -> lambda_http::Request {
        http::Request::builder()
            .method(method)
            .uri(format!("https://api.slipway.example.com{path}"))
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    }

    async fn call(api: &ControlPlane, request: lambda_http::Request) -> (StatusCode, Value) {
        let response = function_handler(api, request).await.unwrap();
        let status = response.status();
        assert_eq!(response.headers()["content-type"], "application/json");
        let json = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("not a text body: {other:?}"),
        };
        (status, json)
    }

    #[tokio::test]
    async fn sites_are_created_and_shown_with_their_public_url() {
        let stores = Embedded::new();
        let api = control_plane(&stores);

        let body = Body::Text(json!({ "name": "docs", "clean_urls": true }).to_string());
        let (status, created) = call(&api, request("POST", "/sites", body)).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["url"], "https://docs.sites.test/");

        let (status, shown) = call(&api, request("GET", "/sites/docs", Body::Empty)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown["name"], "docs");
        assert_eq!(shown["clean_urls"], true);
        let site = SiteName::parse("docs").unwrap();
        assert!(
            stores
                .state
                .get_site(&site)
                .await
                .unwrap()
                .routing
                .clean_urls
        );
    }

    #[tokio::test]
    async fn a_new_deployment_awaits_its_upload_at_a_presigned_url() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let api = control_plane(&stores);

        let body = Body::Binary(br#"{"prebuilt":true,"size":2048}"#.to_vec());
        let (status, created) = call(&api, request("POST", "/sites/docs/deployments", body)).await;

        assert_eq!(status, StatusCode::CREATED);
        let id = DeploymentId::parse(created["deployment"]["id"].as_str().unwrap()).unwrap();
        assert_eq!(
            created["upload"]["url"],
            format!("https://acme-source.s3.test/uploads/docs/{id}.zip?X-Amz-Expires=900")
        );
        assert_eq!(created["upload"]["method"], "PUT");
        let deployment = stores.state.get_deployment(&site, &id).await.unwrap();
        assert_eq!(deployment.status, DeploymentStatus::Queued);
        assert!(deployment.prebuilt);
        assert_eq!(
            deployment.source.archive().map(|a| a.key.as_str()),
            Some(format!("uploads/docs/{id}.zip").as_str())
        );

        let (status, by_id) = call(
            &api,
            request("GET", &format!("/deployments/{id}"), Body::Empty),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(by_id["status"], "queued");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_like_slipway_dev_refuses_it() {
        let stores = Embedded::new();
        let api = control_plane(&stores);
        let name = "a".repeat(MAX_JSON_BODY);
        let body = Body::Text(json!({ "name": name }).to_string());

        let (status, refused) = call(&api, request("POST", "/sites", body)).await;

        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused["error"]["code"], "payload_too_large");
        assert!(stores.state.list_sites().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn errors_keep_the_control_planes_status_and_code() {
        let stores = Embedded::new();
        let api = control_plane(&stores);

        let (status, missing) = call(&api, request("GET", "/sites/nosuch", Body::Empty)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(missing["error"]["code"], "site_not_found");

        let (status, unrouted) = call(&api, request("GET", "/nowhere", Body::Empty)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(unrouted["error"]["code"], "not_found");

        let (status, wrong) = call(&api, request("DELETE", "/sites", Body::Empty)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong["error"]["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn http_api_events_route_with_or_without_a_named_stage() {
        let stores = Embedded::new();
        let api = control_plane(&stores);

        // A named stage puts `/prod` in front of the path, and the body arrives base64-encoded.
        let named =
            lambda_http::request::from_str(include_str!("fixtures/http-api-named-stage.json"))
                .unwrap();
        let (status, created) = call(&api, named).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["name"], "blog");
        assert_eq!(created["spa"], true);

        let default =
            lambda_http::request::from_str(include_str!("fixtures/http-api-default-stage.json"))
                .unwrap();
        let (status, listed) = call(&api, default).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed, json!([]));
    }

    #[test]
    fn only_a_leading_stage_segment_is_dropped() {
        let with_stage = |path: &str| {
            let mut event: Value =
                serde_json::from_str(include_str!("fixtures/http-api-named-stage.json")).unwrap();
            event["rawPath"] = json!(path);
            route_path(&lambda_http::request::from_str(&event.to_string()).unwrap())
        };
        assert_eq!(with_stage("/prod/sites/docs"), "/sites/docs");
        assert_eq!(with_stage("/production/sites"), "/production/sites");
    }
}
