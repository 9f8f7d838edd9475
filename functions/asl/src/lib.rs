//! An interpreter for the Amazon States Language (JSONPath flavour), faithful to the
//! specification for the states slipway uses: Task, Choice, Pass, Wait, Succeed and Fail
//! (Parallel and Map are rejected when parsing).
//!
//! It knows nothing of slipway (it depends on no slipway crate) and nothing of AWS: what a
//! Task does is up to the caller's [`TaskInvoker`]. `slipway-local` runs
//! `statemachines/deploy-site.asl.json` with it, mapping each resource to a step handler.
//!
//! ```no_run
//! # async fn run(invoker: &dyn slipway_asl::TaskInvoker) -> Result<(), Box<dyn std::error::Error>> {
//! use slipway_asl::{execute, ExecutionMeta, NoopObserver, StateMachine};
//! let machine = StateMachine::parse(r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#)?;
//! let meta = ExecutionMeta {
//!     id: "arn:aws:states:us-east-1:123456789012:execution:sm:run-1".into(),
//!     name: "run-1".into(),
//!     start_time: time::OffsetDateTime::now_utc(),
//!     role_arn: None,
//!     state_machine_id: "arn:aws:states:us-east-1:123456789012:stateMachine:sm".into(),
//!     state_machine_name: "sm".into(),
//! };
//! let output = execute(&machine, meta, serde_json::json!({}), invoker, &NoopObserver).await?;
//! # Ok(()) }
//! ```

mod choice;
mod definition;
mod error;
mod executor;
mod fields;
mod intrinsics;
mod path;
mod substitution;
mod template;
mod timestamp;

pub use definition::StateMachine;
pub use error::{names as error_names, DefinitionError, ExecutionFailure, TaskFailure};
pub use executor::{
    execute, execute_with_options, ExecutionMeta, ExecutionObserver, ExecutionOptions,
    NoopObserver, TaskContext, TaskInvoker,
};
