//! The `source-trigger` Lambda function: S3 "Object Created" events for the source bucket,
//! delivered by EventBridge, start deploys. This file only wires (logging, configuration and
//! SDK clients, once per cold start); `handler.rs` does the work.

mod event;
mod handler;

use std::sync::Arc;

use lambda_runtime::{service_fn, Error};
use slipway_aws::dynamodb::{self, DynamoState};
use slipway_aws::sfn::{SfnWorkflow, SfnWorkflows};
use slipway_core::ports::Workflow;
use slipway_lambda::config::TriggerSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (settings, sdk) = slipway_lambda::cold_start(TriggerSettings::from_env).await?;
    let deps = handler::TriggerDeps {
        source_bucket: settings.source_bucket,
        state: Arc::new(DynamoState::new(dynamodb::client(&sdk), settings.table)),
        workflow: Arc::new(SfnWorkflows::new().with(
            Workflow::DeploySite,
            SfnWorkflow::new(&sdk, settings.state_machine_arn),
        )),
    };
    let deps = &deps;
    slipway_lambda::run(service_fn(move |event| {
        handler::function_handler(deps, event)
    }))
    .await
}
