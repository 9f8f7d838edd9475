//! The `prepare` Lambda function: the Prepare task of `deploy-site`. This file only wires
//! (logging, configuration and SDK clients, once per cold start); `handler.rs` does the work.

mod handler;

use lambda_runtime::{service_fn, Error};
use slipway_lambda::aws::AwsPipeline;
use slipway_lambda::config::PipelineSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    slipway_lambda::logging::init();
    let settings = PipelineSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let sdk = slipway_aws::config::load(None).await;
    let AwsPipeline { pipeline, .. } = AwsPipeline::new(&sdk, &settings);
    let pipeline = &pipeline;
    slipway_lambda::run(service_fn(move |event| {
        handler::function_handler(pipeline, event)
    }))
    .await
}
