//! The `api` Lambda function: the control-plane routes behind API Gateway's HTTP API. This
//! file only wires (logging, configuration and SDK clients, once per cold start);
//! `handler.rs` does the work.

mod handler;

use lambda_http::{service_fn, Error};
use slipway_core::api::{ApiConfig, ControlPlane};
use slipway_lambda::aws::AwsPipeline;
use slipway_lambda::config::ApiSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (settings, sdk) = slipway_lambda::cold_start(ApiSettings::from_env).await?;
    let AwsPipeline { pipeline, objects } = AwsPipeline::new(&sdk, &settings.pipeline);
    let api = ControlPlane::new(
        pipeline,
        objects,
        ApiConfig {
            site_url_template: settings.site_url_template,
        },
    );
    let api = &api;
    lambda_http::run(service_fn(move |request| {
        handler::function_handler(api, request)
    }))
    .await
}
