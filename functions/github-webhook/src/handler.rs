//! One GitHub delivery: API Gateway's request turned into the `http::Request<Bytes>` that
//! `slipway_core::webhook::GithubWebhook` (the very handler `slipway dev` serves) takes.

use std::convert::Infallible;

use http::Response;
use lambda_http::Body;
use slipway_core::webhook::{GithubWebhook, MAX_WEBHOOK_BODY};
use slipway_lambda::http_api::{into_core_request, into_lambda_response, route_path};

pub async fn function_handler(
    webhook: &GithubWebhook,
    request: lambda_http::Request,
) -> Result<Response<Body>, Infallible> {
    let path = route_path(&request);
    let response = match into_core_request(request, &path, MAX_WEBHOOK_BODY) {
        Ok(request) => webhook.handle(request).await,
        Err(refused) => refused.into_response(),
    };
    Ok(into_lambda_response(response))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use serde_json::{json, Value};
    use slipway_core::model::{DeploymentSource, RepoLink, Site};
    use slipway_core::names::{BranchName, RepoName, SiteName, TargetName};
    use slipway_core::ports::{
        DeployRequest, StartOutcome, StateStore, Workflow, WorkflowError, WorkflowStarter,
    };
    use slipway_core::webhook::WebhookSecret;
    use slipway_testkit::embedded::Embedded;
    use time::OffsetDateTime;

    use super::*;

    const SECRET: &str = "webhook-secret";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Records the executions it is asked to start, as Step Functions would run them, after
    /// refusing the first `outages` starts as an unavailable Step Functions would.
    #[derive(Default)]
    struct Starts(Mutex<Vec<(String, DeployRequest)>>, Mutex<u32>);

    #[derive(Debug, thiserror::Error)]
    #[error("Step Functions is unavailable")]
    struct Outage;

    #[async_trait]
    impl WorkflowStarter for Starts {
        async fn start(
            &self,
            _: Workflow,
            execution_name: &str,
            request: &DeployRequest,
        ) -> Result<StartOutcome, WorkflowError> {
            let mut outages = self.1.lock().unwrap();
            if *outages > 0 {
                *outages -= 1;
                return Err(WorkflowError::Unavailable(Box::new(Outage)));
            }
            self.0
                .lock()
                .unwrap()
                .push((execution_name.to_owned(), request.clone()));
            Ok(StartOutcome::Started)
        }
    }

    async fn linked_site(stores: &Embedded) -> SiteName {
        let site = Site {
            name: SiteName::parse("docs").unwrap(),
            routing: Default::default(),
            retain: Site::DEFAULT_RETAIN,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo: Some(RepoLink {
                repo: RepoName::parse("acme/docs").unwrap(),
                production_branch: BranchName::parse("main").unwrap(),
                root: None,
            }),
        };
        stores.state.create_site(&site).await.unwrap();
        site.name
    }

    fn webhook(stores: &Embedded, starts: &Arc<Starts>) -> GithubWebhook {
        GithubWebhook::new(
            stores.tasks.traffic().clone(),
            starts.clone(),
            WebhookSecret::new(SECRET).unwrap(),
        )
    }

    fn delivery(event: &str, delivery: &str, body: &Value, secret: &str) -> lambda_http::Request {
        let body = serde_json::to_vec(body).unwrap();
        let signature = WebhookSecret::new(secret).unwrap().sign(&body);
        http::Request::builder()
            .method("POST")
            .uri("https://api.slipway.example.com/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(Body::Binary(body))
            .unwrap()
    }

    fn push(branch: &str) -> Value {
        json!({
            "ref": format!("refs/heads/{branch}"),
            "after": SHA,
            "deleted": false,
            "repository": {"full_name": "acme/docs", "clone_url": "https://github.com/acme/docs.git"}
        })
    }

    async fn call(webhook: &GithubWebhook, request: lambda_http::Request) -> (u16, Value) {
        let response = function_handler(webhook, request).await.unwrap();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        (status, body)
    }

    #[tokio::test]
    async fn a_signed_branch_push_starts_a_preview_deploy_once() {
        let stores = Embedded::new();
        let site = linked_site(&stores).await;
        let starts = Arc::new(Starts::default());
        let webhook = webhook(&stores, &starts);

        let (status, body) = call(
            &webhook,
            delivery("push", "d-1", &push("feature/x"), SECRET),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["action"], "deploying");
        assert_eq!(body["deployments"][0]["target"], "feature-x");
        let started = starts.0.lock().unwrap().clone();
        assert_eq!(started.len(), 1);
        let deployment = stores
            .state
            .get_deployment(&site, &started[0].1.deployment_id)
            .await
            .unwrap();
        assert_eq!(deployment.target, TargetName::parse("feature-x").unwrap());
        let DeploymentSource::Git(git) = deployment.source else {
            panic!("a git source, got {:?}", deployment.source);
        };
        assert_eq!(git.sha.as_str(), SHA);
        assert_eq!(git.clone_url, "https://github.com/acme/docs.git");

        // GitHub's redelivery of the same delivery id starts nothing.
        let (status, body) = call(
            &webhook,
            delivery("push", "d-1", &push("feature/x"), SECRET),
        )
        .await;
        assert_eq!((status, body["action"].as_str()), (200, Some("duplicate")));
        assert_eq!(starts.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_delivery_that_failed_is_handled_when_redelivered() {
        let stores = Embedded::new();
        linked_site(&stores).await;
        let starts = Arc::new(Starts::default());
        *starts.1.lock().unwrap() = 1;
        let webhook = webhook(&stores, &starts);

        let (status, body) = call(&webhook, delivery("push", "d-9", &push("main"), SECRET)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable"))
        );
        let (status, body) = call(&webhook, delivery("push", "d-9", &push("main"), SECRET)).await;
        assert_eq!(
            (status, body["action"].as_str()),
            (202, Some("deploying")),
            "{body}"
        );
        assert_eq!(starts.0.lock().unwrap().len(), 1);
        assert_eq!(body["deployments"][0]["target"], "production");
    }

    #[tokio::test]
    async fn bad_signatures_bodies_and_repositories_are_4xx() {
        let stores = Embedded::new();
        linked_site(&stores).await;
        let starts = Arc::new(Starts::default());
        let webhook = webhook(&stores, &starts);

        let (status, body) = call(&webhook, delivery("push", "d-2", &push("main"), "wrong")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("bad_signature"))
        );

        let mut unsigned = delivery("push", "d-3", &push("main"), SECRET);
        unsigned.headers_mut().remove("x-hub-signature-256");
        assert_eq!(call(&webhook, unsigned).await.0, 401);

        let mut other = push("main");
        other["repository"]["full_name"] = json!("acme/other");
        let (status, body) = call(&webhook, delivery("push", "d-4", &other, SECRET)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("unknown_repository"))
        );

        let (status, body) = call(
            &webhook,
            delivery("push", "d-5", &json!({"ref": 1}), SECRET),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_body"))
        );

        let huge = json!({"padding": "x".repeat(MAX_WEBHOOK_BODY)});
        let (status, _) = call(&webhook, delivery("push", "d-6", &huge, SECRET)).await;
        assert_eq!(status, 413);

        assert!(starts.0.lock().unwrap().is_empty());
    }
}
