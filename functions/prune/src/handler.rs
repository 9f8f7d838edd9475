//! Prune: deletes finished deployments beyond the site's retention, oldest first, never the
//! live one or the one a rollback would go to. It is the very `slipway_core::steps::prune`
//! that `slipway dev` runs in process; a failure reaches Step Functions under its stable
//! error name.

use lambda_runtime::LambdaEvent;
use slipway_core::steps::{self, PruneDeps, PruneInput, PruneOutput};
use slipway_lambda::{run_step, step_span, StepFailure};

pub async fn function_handler(
    deps: &PruneDeps,
    event: LambdaEvent<PruneInput>,
) -> Result<PruneOutput, StepFailure> {
    let input = event.payload;
    let span = step_span("prune", &input.site, &input.deployment_id);
    run_step(span, steps::prune(deps, input)).await
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Diagnostic;
    use serde_json::json;
    use slipway_core::model::Deployment;
    use slipway_core::names::SiteName;
    use slipway_core::ports::{StateError, StateStore};
    use slipway_testkit::embedded::{invocation, Embedded};

    use super::*;

    fn event(site: &SiteName, deployment: &Deployment) -> LambdaEvent<PruneInput> {
        invocation(
            serde_json::from_value(json!({
                "site": site.as_str(),
                "deployment_id": deployment.id.to_string(),
            }))
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn deployments_beyond_retention_lose_their_record_and_files() {
        let stores = Embedded::new();
        let site = stores.create_site_retaining("docs", 1).await;
        let oldest = stores.deployed(&site, &[("index.html", b"1")]).await;
        let previous = stores.deployed(&site, &[("index.html", b"2")]).await;
        let live = stores.deployed(&site, &[("index.html", b"3")]).await;

        let output = function_handler(&stores.tasks.prune, event(&site, &live))
            .await
            .unwrap();

        // The live one is kept, and so is the rollback target.
        assert_eq!(output.deleted, [oldest.id]);
        assert!(output.objects_deleted >= 1);
        assert!(output.requests >= 1);
        assert!(stores
            .hosted_keys(&format!("docs/{}/", oldest.id))
            .await
            .is_empty());
        assert!(matches!(
            stores.state.get_deployment(&site, &oldest.id).await,
            Err(StateError::DeploymentNotFound(_))
        ));
        for kept in [&previous, &live] {
            assert_eq!(
                stores.hosted_keys(&format!("docs/{}/", kept.id)).await,
                [format!("docs/{}/index.html", kept.id)]
            );
        }
    }

    #[tokio::test]
    async fn a_site_that_no_longer_exists_fails_as_site_not_found() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let live = stores.deployed(&site, &[("index.html", b"1")]).await;
        let gone = SiteName::parse("gone").unwrap();

        let failure = function_handler(&stores.tasks.prune, event(&gone, &live))
            .await
            .unwrap_err();

        assert_eq!(Diagnostic::from(failure).error_type, "SiteNotFound");
    }
}
