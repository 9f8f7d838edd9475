//! The `api` Lambda function: the control-plane routes behind API Gateway's HTTP API. This
//! file only wires (logging, configuration and SDK clients, once per cold start);
//! `handler.rs` does the work.

mod handler;

use lambda_http::{service_fn, Error};
use slipway_core::api::ControlPlane;
use slipway_lambda::aws::AwsAdapters;
use slipway_lambda::config::PipelineSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (settings, sdk) = slipway_lambda::cold_start(PipelineSettings::from_env).await?;
    let aws = AwsAdapters::new(&sdk, &settings);
    let api = ControlPlane::new(aws.traffic(), aws.addresses(), aws.objects());
    let api = &api;
    lambda_http::run(service_fn(move |request| {
        handler::function_handler(api, request)
    }))
    .await
}
