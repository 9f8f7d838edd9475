//! The `housekeeping` Lambda function: a schedule sweeps for deployments whose upload never
//! arrived or that stayed in flight, and the deploy-site state machine's ended executions fail
//! the deployment one left in flight. This file only wires (`slipway_lambda::serve_step`:
//! logging, configuration and SDK clients, once per cold start); `handler.rs` does the work.

mod event;
mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    slipway_lambda::serve_step(handler::function_handler).await
}
