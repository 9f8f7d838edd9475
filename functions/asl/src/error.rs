//! Error types and the predefined `States.*` error names.

use serde::{Deserialize, Serialize};

/// The error names the Amazon States Language predefines.
pub mod names {
    /// Wildcard in `ErrorEquals`: matches every error except [`RUNTIME`] and [`DATA_LIMIT_EXCEEDED`].
    pub const ALL: &str = "States.ALL";
    /// A task ran longer than its `TimeoutSeconds`, or an execution longer than the machine's.
    pub const TIMEOUT: &str = "States.Timeout";
    /// In `ErrorEquals`: matches every error except [`TIMEOUT`] (and the uncatchable ones).
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A Choice state had no matching rule and no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// A path, payload template or intrinsic failed at run time. Never retried, never caught.
    pub const RUNTIME: &str = "States.Runtime";
    /// A payload was too large. Not matched by `States.ALL`.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";

    /// Every `States.*` name that may appear in an `ErrorEquals` list.
    pub(crate) const KNOWN: &[&str] = &[
        ALL,
        TIMEOUT,
        TASK_FAILED,
        NO_CHOICE_MATCHED,
        RUNTIME,
        DATA_LIMIT_EXCEEDED,
        "States.HeartbeatTimeout",
        "States.Permissions",
        "States.ResultPathMatchFailure",
        "States.ParameterPathFailure",
        "States.BranchFailed",
        "States.IntrinsicFailure",
        "States.ExceedToleratedFailureThreshold",
        "States.ItemReaderFailed",
        "States.ResultWriterFailed",
        "States.QueryEvaluationError",
    ];

    /// Whether an `ErrorEquals` list matches `error`, following the spec's wildcard rules.
    pub(crate) fn matches(error_equals: &[String], error: &str) -> bool {
        if error == RUNTIME {
            return false;
        }
        error_equals.iter().any(|candidate| {
            candidate == error
                || (error != DATA_LIMIT_EXCEEDED
                    && (candidate == ALL || (candidate == TASK_FAILED && error != TIMEOUT)))
        })
    }
}

/// Why a state machine definition was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("the state machine definition is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("definition substitution: no value for placeholder ${{{0}}}")]
    UnknownPlaceholder(String),
    #[error("definition substitution: placeholder starting at byte {0} has no closing '}}'")]
    UnterminatedPlaceholder(usize),
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    #[error("{location}: {feature} is not supported by this interpreter")]
    Unsupported { location: String, feature: String },
    #[error("{location}: there is no state named '{target}'")]
    UnknownState { location: String, target: String },
}

/// A task's failure, as reported by a [`crate::TaskInvoker`]. `error` is the name that
/// `Retry`/`Catch` `ErrorEquals` lists match exactly (e.g. `StoreUnavailable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// How an execution failed: a Fail state, an unhandled task error or a `States.*` error.
/// `error` is empty when a Fail state names no error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("execution failed with {error}: {cause}")]
pub struct ExecutionFailure {
    pub error: String,
    pub cause: String,
}

impl ExecutionFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

impl From<TaskFailure> for ExecutionFailure {
    fn from(failure: TaskFailure) -> Self {
        Self {
            error: failure.error,
            cause: failure.cause,
        }
    }
}

/// A run-time failure of a path, payload template or intrinsic; becomes `States.Runtime`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct EvalError(pub(crate) String);

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::names::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn error_name_matching_follows_the_spec() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["StoreUnavailable"], "StoreUnavailable", true),
            (&["StoreUnavailable"], "storeunavailable", false),
            (&["Other", "StoreUnavailable"], "StoreUnavailable", true),
            (&[ALL], "Anything", true),
            (&[ALL], TIMEOUT, true),
            (&[ALL], RUNTIME, false),
            (&[RUNTIME], RUNTIME, false),
            (&[ALL], DATA_LIMIT_EXCEEDED, false),
            (&[DATA_LIMIT_EXCEEDED], DATA_LIMIT_EXCEEDED, true),
            (&[TASK_FAILED], "Anything", true),
            (&[TASK_FAILED], TIMEOUT, false),
            (&[TASK_FAILED], RUNTIME, false),
            (&[TIMEOUT], TIMEOUT, true),
            (&[TIMEOUT], "Anything", false),
        ];
        for (equals, error, expected) in cases {
            assert_eq!(
                matches(&list(equals), error),
                *expected,
                "{equals:?} vs {error}"
            );
        }
    }
}
