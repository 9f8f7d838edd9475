//! Activate: the atomic switch. The deployment goes live in one state transaction (never
//! moving a target backwards) and the site's host key points at it. It is the very
//! `slipway_core::steps::activate` that `slipway dev` runs in process; a failure reaches Step
//! Functions under its stable error name.

use lambda_runtime::LambdaEvent;
use slipway_core::steps::{self, ActivateDeps, ActivateInput, ActivateOutput};
use slipway_lambda::{run_step, step_span, StepFailure};

pub async fn function_handler(
    deps: &ActivateDeps,
    event: LambdaEvent<ActivateInput>,
) -> Result<ActivateOutput, StepFailure> {
    let input = event.payload;
    let span = step_span("activate", &input.site, &input.deployment_id);
    run_step(span, steps::activate(deps, input)).await
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Diagnostic;
    use serde_json::json;
    use slipway_core::model::{Deployment, DeploymentStatus};
    use slipway_core::names::DeploymentId;
    use slipway_core::ports::{KeyValueStore, StateStore};
    use slipway_testkit::embedded::{invocation, Embedded};

    use super::*;

    fn event(deployment: &Deployment) -> LambdaEvent<ActivateInput> {
        invocation(
            serde_json::from_value(json!({
                "site": deployment.site.as_str(),
                "deployment_id": deployment.id.to_string(),
            }))
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_published_deployment_goes_live_and_its_host_routes_to_it() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let first = stores.deployed(&site, &[("index.html", b"v1")]).await;
        let second = stores.published(&site, &[("index.html", b"v2")]).await;

        let output = function_handler(&stores.tasks.activate, event(&second))
            .await
            .unwrap();

        assert_eq!(output.status, DeploymentStatus::Live);
        assert_eq!(output.previous, Some(first.id));
        assert_eq!(
            KeyValueStore::get(&stores.state, "docs.sites.test")
                .await
                .unwrap(),
            Some(format!("docs/{}", second.id))
        );
        let site_now = stores.state.get_site(&site).await.unwrap();
        assert_eq!(site_now.live_deployment(), Some(second.id));
        let first_now = stores.state.get_deployment(&site, &first.id).await.unwrap();
        assert_eq!(first_now.status, DeploymentStatus::Superseded);
    }

    #[tokio::test]
    async fn an_older_deployment_finishing_late_is_superseded_and_never_served() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let older = stores.published(&site, &[("index.html", b"old")]).await;
        let newer = stores.deployed(&site, &[("index.html", b"new")]).await;

        let output = function_handler(&stores.tasks.activate, event(&older))
            .await
            .unwrap();

        assert_eq!(output.status, DeploymentStatus::Superseded);
        assert_eq!(output.superseded_by, Some(newer.id));
        assert_eq!(
            KeyValueStore::get(&stores.state, "docs.sites.test")
                .await
                .unwrap(),
            Some(format!("docs/{}", newer.id))
        );
    }

    #[tokio::test]
    async fn an_unknown_deployment_fails_with_its_stable_name() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let mut ghost = stores.published(&site, &[("index.html", b"x")]).await;
        ghost.id = DeploymentId::generate();

        let failure = function_handler(&stores.tasks.activate, event(&ghost))
            .await
            .unwrap_err();

        assert_eq!(Diagnostic::from(failure).error_type, "DeploymentNotFound");
        assert_eq!(
            KeyValueStore::get(&stores.state, "docs.sites.test")
                .await
                .unwrap(),
            None
        );
    }
}
