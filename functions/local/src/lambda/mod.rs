//! The Lambda service for `slipway dev`: every function version runs as real processes that
//! speak the Lambda Runtime API (`/2018-06-01/runtime/...`) to a server of ours on 127.0.0.1,
//! with the headers and reserved environment Lambda gives them, so the artefact that runs
//! here is the one that ships: a `bootstrap`, Python under `awslambdaric`, Node under the
//! small runtime loop in `node-runtime.mjs`.
//!
//! - [`runtime_api`]: one Runtime API server per instance (`AWS_LAMBDA_RUNTIME_API` is a bare
//!   `host:port`, so the port is what tells instances apart).
//! - [`instance`]: one process and its lifecycle: started on demand, parked on `/next`
//!   while warm, killed at its timeout, and gone when it exits.
//! - [`pool`]: one function version's instances, up to its concurrency; `invoke` is
//!   Lambda's synchronous `Invoke`.
//! - [`http_api`]: API Gateway HTTP API's payload format 2.0, both ways.

pub mod http_api;
mod instance;
mod pool;
mod runtime_api;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use slipway_core::service::FunctionConfig;
use time::OffsetDateTime;

pub use pool::FunctionPool;

/// The largest request or response payload of a synchronous invocation (6 MB, as Lambda).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// How long a new instance may take to reach its first `/next` (Lambda's init limit).
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

/// One function version as `slipway dev` runs it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`: a published version's number.
    pub version: String,
    /// The ARN the runtime is told it was invoked as (the alias's, as API Gateway calls it).
    pub invoked_arn: String,
    /// `LAMBDA_TASK_ROOT`: the unpacked code.
    pub code_dir: PathBuf,
    pub config: FunctionConfig,
    /// The function's own variables (the user's and slipway's), never a reserved name.
    pub environment: BTreeMap<String, String>,
    pub region: String,
}

/// How the managed runtimes start: the interpreters and the Node runtime loop.
#[derive(Debug, Clone)]
pub struct Interpreters {
    /// A Python with `awslambdaric` installed.
    pub python: PathBuf,
    pub node: PathBuf,
    /// `node-runtime.mjs`, written where Node can load it.
    pub node_runtime: PathBuf,
}

/// The Node runtime loop slipway ships (npm's `aws-lambda-ric` needs a C toolchain).
pub const NODE_RUNTIME_JS: &str = include_str!("node-runtime.mjs");

/// What one invocation gave back.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// The version that ran (Lambda's `X-Amz-Executed-Version`).
    pub executed_version: String,
    pub outcome: Outcome,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response payload.
    Response(Bytes),
    /// The function failed: it reported an error, or it crashed, timed out or never started
    /// (Lambda's `X-Amz-Function-Error: Unhandled`). `body` is the error document.
    FunctionError { error_type: String, body: Bytes },
}

impl Outcome {
    /// A failure slipway observed itself (not one the function reported), in Lambda's shape.
    fn failure(error_type: &str, request_id: &str, message: &str) -> Self {
        let body = serde_json::json!({
            "errorType": error_type,
            "errorMessage": format!("RequestId: {request_id} Error: {message}"),
        });
        Outcome::FunctionError {
            error_type: error_type.to_owned(),
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Why an invocation did not reach the function (Lambda's `Invoke` API errors).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the request payload is {len} bytes; Lambda takes at most {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge { len: usize },
    #[error("all {limit} instances of {function} are busy (its concurrency limit)")]
    Throttled { function: String, limit: u32 },
    #[error("could not start the function's Runtime API server: {0}")]
    Server(#[source] std::io::Error),
}

/// A line a function wrote, as CloudWatch Logs keeps it: with the request it served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub function_name: String,
    pub version: String,
    pub instance: u64,
    pub request_id: Option<String>,
    pub at: OffsetDateTime,
    pub line: String,
}

/// Where functions' output goes.
pub trait FunctionLogs: Send + Sync {
    fn write(&self, line: LogLine);
}
