//! MarkFailed: the Catch target of every step. It records the caught error's name and a cause
//! a person can act on, and removes the partial prefix; a finished deployment (the live one
//! above all) stays exactly as it was. It is the very `slipway_core::steps::mark_failed` that
//! `slipway dev` runs in process.

use lambda_runtime::LambdaEvent;
use slipway_core::steps::{self, MarkFailedDeps, MarkFailedInput, MarkFailedOutput};
use slipway_lambda::{run_step, step_span, StepFailure};

pub async fn function_handler(
    deps: &MarkFailedDeps,
    event: LambdaEvent<MarkFailedInput>,
) -> Result<MarkFailedOutput, StepFailure> {
    let input = event.payload;
    let span = step_span("mark_failed", &input.site, &input.deployment_id);
    run_step(span, steps::mark_failed(deps, input)).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use slipway_core::model::{Deployment, DeploymentStatus, RecordedError};
    use slipway_core::ports::StateStore;
    use slipway_testkit::embedded::{invocation, Embedded};

    use super::*;

    /// What the Catch (`ResultPath: $.error`) hands over after a Lambda task failed: Step
    /// Functions puts the function's errorType in `Error` and its whole error document in `Cause`.
    fn caught(deployment: &Deployment, error: &str, message: &str) -> LambdaEvent<MarkFailedInput> {
        let cause = json!({ "errorType": error, "errorMessage": message }).to_string();
        let payload = json!({
            "site": deployment.site.as_str(),
            "deployment_id": deployment.id.to_string(),
            "error": { "Error": error, "Cause": cause },
        });
        invocation(serde_json::from_value(payload).unwrap())
    }

    #[tokio::test]
    async fn a_failed_publish_is_recorded_and_its_partial_files_removed() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let deployment = stores.published(&site, &[("index.html", b"half")]).await;
        let prefix = format!("docs/{}/", deployment.id);
        assert!(!stores.hosted_keys(&prefix).await.is_empty());

        let output = function_handler(
            &stores.tasks.mark_failed,
            caught(
                &deployment,
                "StoreUnavailable",
                "object store unavailable: timeout",
            ),
        )
        .await
        .unwrap();

        assert!(output.recorded);
        assert_eq!(output.status, Some(DeploymentStatus::Failed));
        assert!(stores.hosted_keys(&prefix).await.is_empty());
        let stored = stores
            .state
            .get_deployment(&site, &deployment.id)
            .await
            .unwrap();
        assert_eq!(stored.status, DeploymentStatus::Failed);
        assert_eq!(
            stored.error,
            Some(RecordedError {
                name: "StoreUnavailable".into(),
                cause: "object store unavailable: timeout".into(),
            })
        );
    }

    #[tokio::test]
    async fn a_live_deployment_is_left_exactly_as_it_was() {
        let stores = Embedded::new();
        let site = stores.create_site("docs").await;
        let live = stores.deployed(&site, &[("index.html", b"live")]).await;

        let output = function_handler(
            &stores.tasks.mark_failed,
            caught(&live, "States.Timeout", "Prune timed out"),
        )
        .await
        .unwrap();

        assert!(!output.recorded);
        assert_eq!(output.status, Some(DeploymentStatus::Live));
        assert_eq!(
            stores.hosted_keys(&format!("docs/{}/", live.id)).await,
            [format!("docs/{}/index.html", live.id)]
        );
        let stored = stores.state.get_deployment(&site, &live.id).await.unwrap();
        assert_eq!(stored.error, None);
    }
}
