//! The `activate` Lambda function: the Activate task of `deploy-site`. This file only wires
//! (`slipway_lambda::serve_step`: logging, configuration and SDK clients, once per cold start);
//! `handler.rs` does the work.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    slipway_lambda::serve_step(handler::function_handler).await
}
