//! Shared wiring for slipway's Lambda functions: JSON tracing, typed configuration read once
//! at cold start, each function's dependencies on the AWS adapters, and step errors reported to the runtime
//! under the stable names the state machine's Retry and Catch match.
//!
//! No domain logic lives here or in the function crates: each function's handler calls one
//! `slipway_core` entry point (a step, the API, the webhook, the source trigger or
//! housekeeping), the very code `slipway dev` runs in process.

pub mod aws;
pub mod config;
pub mod failure;
pub mod http_api;
pub mod logging;
pub mod runtime;

pub use aws::{cold_start, serve_step};
pub use failure::{run_step, step_span, StepFailure};
pub use runtime::run;
