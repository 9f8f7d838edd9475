//! The `github-webhook` Lambda function: `POST /webhooks/github` behind API Gateway's HTTP
//! API, with no IAM authorization (GitHub signs each delivery instead). This file only wires
//! (logging, configuration and SDK clients, once per cold start); `handler.rs` does the work.

mod handler;

use std::sync::Arc;

use lambda_http::{service_fn, Error};
use slipway_aws::sfn::{SfnWorkflow, SfnWorkflows};
use slipway_core::ports::Workflow;
use slipway_core::webhook::GithubWebhook;
use slipway_lambda::aws::AwsAdapters;
use slipway_lambda::config::WebhookSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (settings, sdk) = slipway_lambda::cold_start(WebhookSettings::from_env).await?;
    let traffic = AwsAdapters::new(&sdk, &settings.pipeline).traffic();
    let workflow = Arc::new(SfnWorkflows::new().with(
        Workflow::DeploySite,
        SfnWorkflow::new(&sdk, settings.state_machine_arn),
    ));
    let webhook = GithubWebhook::new(traffic, workflow, settings.secret);
    let webhook = &webhook;
    lambda_http::run(service_fn(move |request| {
        handler::function_handler(webhook, request)
    }))
    .await
}
