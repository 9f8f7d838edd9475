//! Step Functions: starting `deploy-site` under a deterministic execution name, and reading an
//! execution's status and history for the API and the CLI.
//!
//! A repeated start must be a no-op. Step Functions itself answers a repeated StartExecution
//! in two ways: the same name and input while the execution runs returns the running
//! execution as if it had just started; anything else (different input, or the execution has
//! finished) fails with `ExecutionAlreadyExists`. To tell the first case from a fresh start,
//! [`SfnWorkflow::start`] looks the execution up with DescribeExecution before starting it, and
//! also treats an answer whose `startDate` is clearly older than that lookup as a replay
//! (DescribeExecution is eventually consistent). Two starts racing within about a second can
//! both report `Started`; Step Functions still runs only one execution. So a caller needs
//! `states:DescribeExecution` on the state machine's executions besides `states:StartExecution`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::error::{DisplayErrorContext, SdkError};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use serde::{Deserialize, Serialize};
use slipway_core::ports::{
    BoxError, DeployRequest, StartOutcome, Workflow, WorkflowError, WorkflowStarter,
};
use time::{Duration, OffsetDateTime};

/// How much older than our lookup a returned `startDate` must be to count as a replay:
/// more than any clock skew between this host and Step Functions.
const REPLAY_MARGIN: Duration = Duration::seconds(1);

/// An unqualified state machine ARN: `arn:{partition}:states:{region}:{account}:stateMachine:{name}`.
/// Execution ARNs derive from it, so version or alias ARNs are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachineArn {
    arn: String,
    /// `arn:{partition}:states:{region}:{account}:execution:{name}:`
    execution_prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an unqualified state machine ARN (arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME)")]
pub struct InvalidStateMachineArn(String);

impl StateMachineArn {
    pub fn parse(raw: &str) -> Result<Self, InvalidStateMachineArn> {
        let invalid = || InvalidStateMachineArn(raw.to_owned());
        let parts: Vec<&str> = raw.split(':').collect();
        let [arn, partition, service, region, account, kind, name] = parts[..] else {
            return Err(invalid());
        };
        let filled = [partition, region, account, name]
            .iter()
            .all(|part| !part.is_empty());
        if arn != "arn" || service != "states" || kind != "stateMachine" || !filled {
            return Err(invalid());
        }
        Ok(Self {
            arn: raw.to_owned(),
            execution_prefix: format!(
                "arn:{partition}:states:{region}:{account}:execution:{name}:"
            ),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The ARN an execution of this state machine named `name` has.
    pub fn execution_arn(&self, name: &ExecutionName) -> String {
        format!("{}{}", self.execution_prefix, name.as_str())
    }
}

/// A Step Functions execution name: 1 to 80 characters, none of them whitespace, control
/// characters or `< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionName(String);

impl ExecutionName {
    pub fn parse(raw: &str) -> Result<Self, SfnError> {
        const FORBIDDEN: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";
        let valid = (1..=80).contains(&raw.chars().count())
            && !raw
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(SfnError::InvalidName(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SfnError {
    #[error("{0:?} is not a valid execution name")]
    InvalidName(String),
    #[error("no execution named {0:?}")]
    ExecutionNotFound(String),
    #[error("Step Functions reported an unknown execution status {0:?}")]
    UnknownStatus(String),
    #[error("Step Functions unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// Where an execution is, as DescribeExecution reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    /// Failed, and a redrive of it has been requested.
    PendingRedrive,
}

impl ExecutionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Running => "RUNNING",
            ExecutionState::Succeeded => "SUCCEEDED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::TimedOut => "TIMED_OUT",
            ExecutionState::Aborted => "ABORTED",
            ExecutionState::PendingRedrive => "PENDING_REDRIVE",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            ExecutionState::Running | ExecutionState::PendingRedrive
        )
    }

    fn from_sdk(status: &aws_sdk_sfn::types::ExecutionStatus) -> Result<Self, SfnError> {
        use aws_sdk_sfn::types::ExecutionStatus as S;
        Ok(match status {
            S::Running => ExecutionState::Running,
            S::Succeeded => ExecutionState::Succeeded,
            S::Failed => ExecutionState::Failed,
            S::TimedOut => ExecutionState::TimedOut,
            S::Aborted => ExecutionState::Aborted,
            S::PendingRedrive => ExecutionState::PendingRedrive,
            other => return Err(SfnError::UnknownStatus(other.as_str().to_owned())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionStatus {
    pub name: String,
    pub arn: String,
    pub state: ExecutionState,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
    /// The error name a failed execution ended with (for deploy-site, a step's error name).
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One event of an execution's history, with what a person reading a deploy's progress needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: i64,
    pub previous_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Step Functions' event type, e.g. `TaskStateEntered` or `ExecutionFailed`.
    pub kind: String,
    /// The state entered or exited, for state events.
    pub state: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Starts `deploy-site` and reads its executions.
#[derive(Debug, Clone)]
pub struct SfnWorkflow {
    client: aws_sdk_sfn::Client,
    state_machine_arn: StateMachineArn,
}

impl SfnWorkflow {
    pub fn new(config: &SdkConfig, state_machine_arn: StateMachineArn) -> Self {
        Self {
            client: aws_sdk_sfn::Client::new(config),
            state_machine_arn,
        }
    }

    pub fn state_machine_arn(&self) -> &StateMachineArn {
        &self.state_machine_arn
    }

    pub async fn describe(&self, execution_name: &str) -> Result<ExecutionStatus, SfnError> {
        let name = ExecutionName::parse(execution_name)?;
        let out = self
            .client
            .describe_execution()
            .execution_arn(self.state_machine_arn.execution_arn(&name))
            .send()
            .await
            .map_err(|e| describe_error(e, &name))?;
        Ok(ExecutionStatus {
            name: name.0,
            arn: out.execution_arn().to_owned(),
            state: ExecutionState::from_sdk(out.status())?,
            started_at: to_time(out.start_date()),
            stopped_at: out.stop_date().map(to_time),
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
        })
    }

    /// Every event of the execution, oldest first (all pages).
    pub async fn history(&self, execution_name: &str) -> Result<Vec<HistoryEvent>, SfnError> {
        let name = ExecutionName::parse(execution_name)?;
        let events = self
            .client
            .get_execution_history()
            .execution_arn(self.state_machine_arn.execution_arn(&name))
            .include_execution_data(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| history_error(e, &name))?;
        Ok(events.iter().map(history_event).collect())
    }

    /// Whether an execution of this name exists (it may have finished).
    async fn exists(&self, name: &ExecutionName) -> Result<bool, SfnError> {
        match self.describe(name.as_str()).await {
            Ok(_) => Ok(true),
            Err(SfnError::ExecutionNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The state machines a function may start, by workflow: the stack passes each one's ARN.
#[derive(Debug, Clone, Default)]
pub struct SfnWorkflows {
    machines: BTreeMap<Workflow, SfnWorkflow>,
}

impl SfnWorkflows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `workflow` on `machine` from now on.
    pub fn with(mut self, workflow: Workflow, machine: SfnWorkflow) -> Self {
        self.machines.insert(workflow, machine);
        self
    }
}

#[async_trait]
impl WorkflowStarter for SfnWorkflows {
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        request: &DeployRequest,
    ) -> Result<StartOutcome, WorkflowError> {
        let machine = self
            .machines
            .get(&workflow)
            .ok_or(WorkflowError::NotRegistered(workflow))?;
        machine.start(execution_name, request).await
    }
}

impl SfnWorkflow {
    /// Starts an execution of this state machine, once per name: a name that exists already
    /// (a repeated event) is [`StartOutcome::AlreadyStarted`].
    pub async fn start(
        &self,
        execution_name: &str,
        request: &DeployRequest,
    ) -> Result<StartOutcome, WorkflowError> {
        let unavailable = |e: SfnError| WorkflowError::Unavailable(Box::new(e));
        let name = ExecutionName::parse(execution_name).map_err(unavailable)?;
        let input =
            serde_json::to_string(request).map_err(|e| WorkflowError::Unavailable(Box::new(e)))?;
        let looked_at = OffsetDateTime::now_utc();
        let outcome = if self.exists(&name).await.map_err(unavailable)? {
            StartOutcome::AlreadyStarted
        } else {
            let started = self
                .client
                .start_execution()
                .state_machine_arn(self.state_machine_arn.as_str())
                .name(name.as_str())
                .input(input)
                .send()
                .await;
            match started {
                Ok(out) => classify_start(to_time(out.start_date()), looked_at),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(StartExecutionError::ExecutionAlreadyExists(_))
                    ) =>
                {
                    StartOutcome::AlreadyStarted
                }
                Err(e) => {
                    tracing::warn!(execution = %name.as_str(), error = %DisplayErrorContext(&e), "StartExecution failed");
                    return Err(WorkflowError::Unavailable(Box::new(e)));
                }
            }
        };
        tracing::info!(
            site = %request.site,
            deployment_id = %request.deployment_id,
            execution = %name.as_str(),
            state_machine = %self.state_machine_arn.as_str(),
            ?outcome,
            "execution start"
        );
        Ok(outcome)
    }
}

/// A successful StartExecution is a replay of a running execution when that execution began
/// clearly before we looked for it.
fn classify_start(start_date: OffsetDateTime, looked_at: OffsetDateTime) -> StartOutcome {
    if start_date < looked_at - REPLAY_MARGIN {
        StartOutcome::AlreadyStarted
    } else {
        StartOutcome::Started
    }
}

fn to_time(at: &aws_smithy_types::DateTime) -> OffsetDateTime {
    // Step Functions' dates are well inside OffsetDateTime's range; clamp rather than fail.
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn describe_error(
    e: SdkError<DescribeExecutionError, aws_smithy_runtime_api::http::Response>,
    name: &ExecutionName,
) -> SfnError {
    match e.as_service_error() {
        Some(DescribeExecutionError::ExecutionDoesNotExist(_)) => {
            SfnError::ExecutionNotFound(name.0.clone())
        }
        _ => SfnError::Unavailable(Box::new(e)),
    }
}

fn history_error(
    e: SdkError<GetExecutionHistoryError, aws_smithy_runtime_api::http::Response>,
    name: &ExecutionName,
) -> SfnError {
    match e.as_service_error() {
        Some(GetExecutionHistoryError::ExecutionDoesNotExist(_)) => {
            SfnError::ExecutionNotFound(name.0.clone())
        }
        _ => SfnError::Unavailable(Box::new(e)),
    }
}

fn history_event(event: &aws_sdk_sfn::types::HistoryEvent) -> HistoryEvent {
    let state = event
        .state_entered_event_details()
        .map(|d| d.name())
        .or_else(|| event.state_exited_event_details().map(|d| d.name()))
        .map(str::to_owned);
    let (error, cause) = failure(event);
    HistoryEvent {
        id: event.id(),
        previous_id: event.previous_event_id(),
        at: to_time(event.timestamp()),
        kind: event.r#type().as_str().to_owned(),
        state,
        error: error.map(str::to_owned),
        cause: cause.map(str::to_owned),
    }
}

/// The error and cause of whichever failure details the event carries.
fn failure(event: &aws_sdk_sfn::types::HistoryEvent) -> (Option<&str>, Option<&str>) {
    macro_rules! first_of {
        ($($details:ident),+ $(,)?) => {
            $(
                if let Some(d) = event.$details() {
                    return (d.error(), d.cause());
                }
            )+
        };
    }
    first_of!(
        execution_failed_event_details,
        execution_aborted_event_details,
        execution_timed_out_event_details,
        task_failed_event_details,
        task_start_failed_event_details,
        task_submit_failed_event_details,
        task_timed_out_event_details,
        lambda_function_failed_event_details,
        lambda_function_start_failed_event_details,
        lambda_function_schedule_failed_event_details,
        lambda_function_timed_out_event_details,
        activity_failed_event_details,
        activity_schedule_failed_event_details,
        activity_timed_out_event_details,
        map_run_failed_event_details,
        evaluation_failed_event_details,
    );
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_arns_give_execution_arns() {
        let arn = StateMachineArn::parse(
            "arn:aws:states:eu-west-1:123456789012:stateMachine:deploy-site",
        )
        .unwrap();
        let name = ExecutionName::parse("01jd0000000000000000000000").unwrap();
        assert_eq!(
            arn.execution_arn(&name),
            "arn:aws:states:eu-west-1:123456789012:execution:deploy-site:01jd0000000000000000000000"
        );
    }

    #[test]
    fn qualified_or_foreign_arns_are_refused() {
        for raw in [
            "arn:aws:states:eu-west-1:123456789012:stateMachine:deploy-site:3",
            "arn:aws:states:eu-west-1:123456789012:execution:deploy-site:x",
            "arn:aws:lambda:eu-west-1:123456789012:stateMachine:deploy-site",
            "arn:aws:states:eu-west-1::stateMachine:deploy-site",
            "deploy-site",
        ] {
            assert!(StateMachineArn::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn execution_names_follow_step_functions_rules() {
        assert!(ExecutionName::parse("deploy-docs-01jd").is_ok());
        assert!(ExecutionName::parse(&"a".repeat(80)).is_ok());
        for bad in ["", "has space", "a:b", "a/b", "tab\there", &"a".repeat(81)] {
            assert!(
                matches!(ExecutionName::parse(bad), Err(SfnError::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_old_start_date_is_a_replay_and_a_current_one_a_start() {
        let looked = OffsetDateTime::now_utc();
        assert_eq!(
            classify_start(looked - Duration::minutes(3), looked),
            StartOutcome::AlreadyStarted
        );
        assert_eq!(classify_start(looked, looked), StartOutcome::Started);
        // This host's clock running a little ahead of Step Functions' is not a replay.
        assert_eq!(
            classify_start(looked - Duration::milliseconds(300), looked),
            StartOutcome::Started
        );
    }

    #[test]
    fn history_events_carry_state_names_and_failures() {
        use aws_sdk_sfn::types::{
            ExecutionFailedEventDetails, HistoryEventType, StateEnteredEventDetails,
        };
        let at = aws_smithy_types::DateTime::from_secs(1_700_000_000);
        let entered = aws_sdk_sfn::types::HistoryEvent::builder()
            .id(2)
            .previous_event_id(1)
            .timestamp(at)
            .r#type(HistoryEventType::TaskStateEntered)
            .state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name("Publish")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let failed = aws_sdk_sfn::types::HistoryEvent::builder()
            .id(9)
            .previous_event_id(8)
            .timestamp(at)
            .r#type(HistoryEventType::ExecutionFailed)
            .execution_failed_event_details(
                ExecutionFailedEventDetails::builder()
                    .error("SourceInvalid")
                    .cause("not a zip")
                    .build(),
            )
            .build()
            .unwrap();

        let entered = history_event(&entered);
        assert_eq!(entered.kind, "TaskStateEntered");
        assert_eq!(entered.state.as_deref(), Some("Publish"));
        assert_eq!(entered.error, None);
        assert_eq!(entered.at.unix_timestamp(), 1_700_000_000);

        let failed = history_event(&failed);
        assert_eq!(failed.kind, "ExecutionFailed");
        assert_eq!(failed.state, None);
        assert_eq!(failed.error.as_deref(), Some("SourceInvalid"));
        assert_eq!(failed.cause.as_deref(), Some("not a zip"));
    }
}
