//! Shared wiring for slipway's Lambda functions: JSON tracing, typed configuration read once
//! at cold start, the pipeline on the AWS adapters, and step errors reported to the runtime
//! under the stable names the state machine's Retry and Catch match.

pub mod aws;
pub mod config;
pub mod failure;
pub mod http_api;
pub mod logging;
pub mod runtime;
#[cfg(feature = "testing")]
pub mod testing;

pub use aws::{cold_start, serve_step};
pub use failure::{run_step, step_span, StepFailure};
pub use runtime::run;
