//! Publish: streams the artifact's files into the deployment's immutable prefix in the hosting
//! bucket, each with its Content-Type and Cache-Control. It is the very
//! `slipway_core::steps::publish` that `slipway dev` runs in process; a failure reaches Step
//! Functions under its stable error name.

use lambda_runtime::LambdaEvent;
use slipway_core::steps::{self, PublishDeps, PublishInput, PublishOutput};
use slipway_lambda::{run_step, step_span, StepFailure};

pub async fn function_handler(
    deps: &PublishDeps,
    event: LambdaEvent<PublishInput>,
) -> Result<PublishOutput, StepFailure> {
    let input = event.payload;
    let span = step_span("publish", &input.site, &input.deployment_id);
    run_step(span, steps::publish(deps, input)).await
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Diagnostic;
    use serde_json::json;
    use slipway_core::model::Bucket;
    use slipway_core::model::{Deployment, DeploymentStatus};
    use slipway_core::ports::{ObjectStore, StateStore};
    use slipway_core::steps::ArtifactRef;
    use slipway_testkit::embedded::{invocation, Embedded};

    use super::*;

    /// The payload the state machine's `Parameters` build from Prepare's output.
    fn event(deployment: &Deployment, artifact: &ArtifactRef) -> LambdaEvent<PublishInput> {
        let payload = json!({
            "site": deployment.site.as_str(),
            "deployment_id": deployment.id.to_string(),
            "artifact": artifact,
            "framework": null,
        });
        invocation(serde_json::from_value(payload).unwrap())
    }

    #[tokio::test]
    async fn the_artifacts_files_land_under_the_deployments_prefix_with_their_headers() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let (deployment, prepared) = stores
            .prepared(
                &site,
                &[
                    ("index.html", b"<h1>docs</h1>"),
                    ("css/site.css", b"body{margin:0}"),
                ],
            )
            .await;

        let output = function_handler(
            &stores.tasks.publish,
            event(&deployment, &prepared.artifact),
        )
        .await
        .unwrap();

        assert_eq!(output.file_count, 2);
        assert_eq!(output.bytes, 13 + 14);
        let prefix = format!("docs/{}/", deployment.id);
        assert_eq!(
            stores.hosted_keys(&prefix).await,
            [
                format!("{prefix}css/site.css"),
                format!("{prefix}index.html")
            ]
        );
        let index = stores
            .objects
            .head(Bucket::Hosting, &format!("{prefix}index.html"))
            .await
            .unwrap()
            .unwrap();
        assert!(index.meta.content_type.starts_with("text/html"));
        assert!(index.meta.cache_control.is_some());
        let stored = stores
            .state
            .get_deployment(&site, &deployment.id)
            .await
            .unwrap();
        assert_eq!(stored.status, DeploymentStatus::Publishing);
        assert_eq!(stored.file_count, Some(2));
    }

    #[tokio::test]
    async fn a_missing_artifact_fails_as_object_not_found() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let (deployment, mut prepared) = stores.prepared(&site, &[("a.html", b"a")]).await;
        prepared.artifact.location.key = format!("builds/docs/{}/output.zip", deployment.id);
        prepared.artifact.location.bucket = Bucket::Artifacts;

        let failure = function_handler(
            &stores.tasks.publish,
            event(&deployment, &prepared.artifact),
        )
        .await
        .unwrap_err();

        let diagnostic = Diagnostic::from(failure);
        assert_eq!(diagnostic.error_type, "ObjectNotFound");
        assert!(diagnostic.error_message.contains("output.zip"));
    }
}
