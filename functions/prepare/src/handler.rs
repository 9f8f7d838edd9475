//! Prepare: records that the deployment started and decides between a build and a prebuilt
//! publish. It is the very `slipway_core::steps::prepare` that `slipway dev` runs in process;
//! a failure reaches Step Functions under its stable error name.

use lambda_runtime::LambdaEvent;
use slipway_core::steps::{self, PrepareDeps, PrepareInput, PrepareOutput};
use slipway_lambda::{run_step, step_span, StepFailure};

pub async fn function_handler(
    deps: &PrepareDeps,
    event: LambdaEvent<PrepareInput>,
) -> Result<PrepareOutput, StepFailure> {
    let input = event.payload;
    let span = step_span("prepare", &input.site, &input.deployment_id);
    run_step(span, steps::prepare(deps, input)).await
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Diagnostic;
    use serde_json::{json, Value};
    use slipway_core::model::Bucket;
    use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation};
    use slipway_core::ports::StateStore;
    use slipway_testkit::embedded::{invocation, zip_of, Embedded};

    use super::*;

    /// The payload the state machine's `Parameters` build, through serde as the runtime reads it.
    fn event(deployment: &Deployment) -> LambdaEvent<PrepareInput> {
        let payload = json!({
            "site": deployment.site.as_str(),
            "deployment_id": deployment.id.to_string(),
            "source": { "bucket": "source", "key": archive(deployment).key },
            "prebuilt": deployment.prebuilt,
        });
        invocation(serde_json::from_value(payload).unwrap())
    }

    fn archive(deployment: &Deployment) -> &ObjectLocation {
        deployment.source.archive().expect("an uploaded source")
    }

    async fn status(stores: &Embedded, deployment: &Deployment) -> DeploymentStatus {
        stores
            .state
            .get_deployment(&deployment.site, &deployment.id)
            .await
            .unwrap()
            .status
    }

    #[tokio::test]
    async fn a_prebuilt_upload_goes_straight_to_publish() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let zip = zip_of(&[("index.html", b"<h1>docs</h1>")]);
        let deployment = stores.upload(&site, zip, true).await;

        let output = function_handler(&stores.tasks.prepare, event(&deployment))
            .await
            .unwrap();

        assert!(!output.needs_build);
        assert_eq!(&output.artifact.location, archive(&deployment));
        assert_eq!(output.source_type, "S3");
        assert_eq!(
            output.source_location,
            format!("acme-source/{}", archive(&deployment).key)
        );
        // The state machine's Choice reads `$.prepared.needs_build`.
        let wire = serde_json::to_value(&output).unwrap();
        assert_eq!(wire["needs_build"], Value::Bool(false));
        assert_eq!(
            status(&stores, &deployment).await,
            DeploymentStatus::Building
        );
    }

    #[tokio::test]
    async fn a_source_with_a_build_script_gets_a_buildspec_and_an_artifact_location() {
        let stores = Embedded::new();
        let site = stores.create_site("app").await;
        let package = br#"{"scripts":{"build":"vite build"},"devDependencies":{"vite":"^5.0.0"}}"#;
        let zip = zip_of(&[("package.json", package), ("index.html", b"<div id=app>")]);
        let deployment = stores.upload(&site, zip, false).await;

        let output = function_handler(&stores.tasks.prepare, event(&deployment))
            .await
            .unwrap();

        assert!(output.needs_build);
        assert!(output
            .buildspec
            .is_some_and(|spec| spec.contains("npm run build")));
        assert_eq!(output.artifact.location.bucket, Bucket::Artifacts);
        assert_eq!(
            output.artifact.location.key,
            format!("builds/app/{}/output.zip", deployment.id)
        );
    }

    #[tokio::test]
    async fn a_source_that_is_not_a_zip_fails_as_source_invalid() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let deployment = stores
            .upload(&site, b"<html>not a zip</html>".to_vec(), true)
            .await;

        let failure = function_handler(&stores.tasks.prepare, event(&deployment))
            .await
            .unwrap_err();

        let diagnostic = Diagnostic::from(failure);
        assert_eq!(diagnostic.error_type, "SourceInvalid");
        assert!(diagnostic.error_message.contains("archive"));
        // Nothing moved: MarkFailed, reached through the Catch, records the failure.
        assert_eq!(status(&stores, &deployment).await, DeploymentStatus::Queued);
    }

    #[tokio::test]
    async fn an_unusable_build_configuration_fails_as_build_config_invalid() {
        let stores = Embedded::new();
        let site = stores.create_site("app").await;
        let zip = zip_of(&[("package.json", br#"{"scripts":{"test":"jest"}}"#)]);
        let deployment = stores.upload(&site, zip, false).await;

        let failure = function_handler(&stores.tasks.prepare, event(&deployment))
            .await
            .unwrap_err();

        assert_eq!(Diagnostic::from(failure).error_type, "BuildConfigInvalid");
    }

    #[tokio::test]
    async fn a_deployment_of_an_unknown_site_fails_as_site_not_found() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let mut deployment = stores
            .upload(&site, zip_of(&[("a.html", b"a")]), true)
            .await;
        deployment.site = slipway_core::names::SiteName::parse("gone").unwrap();

        let failure = function_handler(&stores.tasks.prepare, event(&deployment))
            .await
            .unwrap_err();

        assert_eq!(Diagnostic::from(failure).error_type, "SiteNotFound");
    }
}
