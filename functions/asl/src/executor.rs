//! Runs a [`StateMachine`]: state transitions, input/output processing, Retry and Catch.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::definition::{
    Catcher, ChoiceState, FailField, FailState, Jitter, OptionalPath, PassState, Retrier, State,
    StateMachine, SucceedState, TaskState, TaskTimeout, Transition, WaitFor, WaitState,
};
use crate::error::{names, EvalError, ExecutionFailure, TaskFailure};
use crate::path::Scope;
use crate::template::Template;
use crate::timestamp;

/// Identifies an execution; exposed to the definition through the context object (`$$`).
#[derive(Debug, Clone)]
pub struct ExecutionMeta {
    /// `$$.Execution.Id`, an execution ARN on AWS.
    pub id: String,
    /// `$$.Execution.Name`.
    pub name: String,
    /// `$$.Execution.StartTime`; also the base of the interpreter's clock, which then
    /// advances with `tokio::time` (so paused-clock tests are deterministic).
    pub start_time: OffsetDateTime,
    /// `$$.Execution.RoleArn`, absent from the context object when `None`.
    pub role_arn: Option<String>,
    /// `$$.StateMachine.Id`.
    pub state_machine_id: String,
    /// `$$.StateMachine.Name`.
    pub state_machine_name: String,
}

/// Limits for one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionOptions {
    /// State entries plus retries allowed before the execution fails with `States.Runtime`;
    /// guards against definitions that loop forever.
    pub max_transitions: u32,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        // Step Functions caps an execution's history at 25,000 events.
        Self {
            max_transitions: 25_000,
        }
    }
}

/// What a task invocation is told about where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContext {
    pub execution_id: String,
    pub execution_name: String,
    pub state_name: String,
    pub entered_time: OffsetDateTime,
    /// How many times this state has been retried so far (`$$.State.RetryCount`).
    pub retry_count: u32,
}

/// Runs Task states' `Resource`s.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    /// `resource` is the state's `Resource` after substitution; `input` is the effective
    /// input (after `InputPath` and `Parameters`).
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskFailure>;
}

/// Hears about an execution's progress, e.g. to record its history.
pub trait ExecutionObserver: Send + Sync {
    /// A state was entered with this (raw) input.
    fn state_entered(&self, _state: &str, _input: &Value) {}
    /// A state finished, normally or through a Catcher, with this output.
    fn state_exited(&self, _state: &str, _output: &Value) {}
    /// A task attempt failed; `will_retry` says whether a Retrier will run it again.
    fn task_failed(&self, _state: &str, _failure: &TaskFailure, _will_retry: bool) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl ExecutionObserver for NoopObserver {}

/// Runs `machine` on `input` until it succeeds or fails, with default [`ExecutionOptions`].
pub async fn execute(
    machine: &StateMachine,
    execution: ExecutionMeta,
    input: Value,
    invoker: &dyn TaskInvoker,
    observer: &dyn ExecutionObserver,
) -> Result<Value, ExecutionFailure> {
    execute_with_options(
        machine,
        execution,
        input,
        invoker,
        observer,
        ExecutionOptions::default(),
    )
    .await
}

/// Runs `machine` on `input` until it succeeds or fails.
pub async fn execute_with_options(
    machine: &StateMachine,
    execution: ExecutionMeta,
    input: Value,
    invoker: &dyn TaskInvoker,
    observer: &dyn ExecutionObserver,
    options: ExecutionOptions,
) -> Result<Value, ExecutionFailure> {
    let mut run = Run {
        machine,
        clock: Clock {
            start_wall: execution.start_time,
            start_instant: Instant::now(),
        },
        execution_input: input.clone(),
        meta: execution,
        invoker,
        observer,
        options,
        transitions: 0,
    };
    tracing::info!(execution = %run.meta.name, start_at = %machine.start_at(), "execution started");
    let outcome = match machine.timeout() {
        Some(limit) => match tokio::time::timeout(limit, run.run(input)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ExecutionFailure::new(
                names::TIMEOUT,
                format!(
                    "The execution ran longer than the state machine's TimeoutSeconds ({}s)",
                    limit.as_secs()
                ),
            )),
        },
        None => run.run(input).await,
    };
    match &outcome {
        Ok(_) => tracing::info!(execution = %run.meta.name, "execution succeeded"),
        Err(failure) => tracing::warn!(
            execution = %run.meta.name,
            error = %failure.error,
            cause = %failure.cause,
            "execution failed"
        ),
    }
    outcome
}

/// The interpreter's notion of "now": the execution's start time plus elapsed `tokio` time.
struct Clock {
    start_wall: OffsetDateTime,
    start_instant: Instant,
}

impl Clock {
    fn now(&self) -> OffsetDateTime {
        let elapsed =
            time::Duration::try_from(self.start_instant.elapsed()).unwrap_or(time::Duration::MAX);
        self.start_wall.saturating_add(elapsed)
    }
}

enum Step {
    Next(String, Value),
    End(Value),
}

struct Run<'a> {
    machine: &'a StateMachine,
    meta: ExecutionMeta,
    execution_input: Value,
    clock: Clock,
    invoker: &'a dyn TaskInvoker,
    observer: &'a dyn ExecutionObserver,
    options: ExecutionOptions,
    transitions: u32,
}

/// The state being run: its name and when it was entered.
#[derive(Clone, Copy)]
struct Entered<'a> {
    name: &'a str,
    at: OffsetDateTime,
}

impl Run<'_> {
    async fn run(&mut self, mut input: Value) -> Result<Value, ExecutionFailure> {
        let machine = self.machine;
        let mut name = machine.start_at().to_owned();
        loop {
            self.count_transition()?;
            let state = machine.state(&name).ok_or_else(|| {
                // Parsing checked every transition target, so this is unreachable in practice.
                ExecutionFailure::new(names::RUNTIME, format!("There is no state named '{name}'"))
            })?;
            tracing::info!(execution = %self.meta.name, state = %name, "state entered");
            self.observer.state_entered(&name, &input);
            let entered = Entered {
                name: &name,
                at: self.clock.now(),
            };
            let step = match state {
                State::Task(task) => self.task(entered, task, input).await?,
                State::Pass(pass) => self.pass(entered, pass, input)?,
                State::Choice(choice) => self.choice(entered, choice, input)?,
                State::Wait(wait) => self.wait(entered, wait, input).await?,
                State::Succeed(succeed) => self.succeed(entered, succeed, input)?,
                State::Fail(fail) => return Err(self.fail(entered, fail, input)),
            };
            match step {
                Step::Next(next, output) => {
                    self.observer.state_exited(&name, &output);
                    tracing::info!(execution = %self.meta.name, state = %name, next = %next, "state exited");
                    name = next;
                    input = output;
                }
                Step::End(output) => {
                    self.observer.state_exited(&name, &output);
                    tracing::info!(execution = %self.meta.name, state = %name, "state exited; execution ends");
                    return Ok(output);
                }
            }
        }
    }

    fn count_transition(&mut self) -> Result<(), ExecutionFailure> {
        self.transitions += 1;
        if self.transitions > self.options.max_transitions {
            return Err(ExecutionFailure::new(
                names::RUNTIME,
                format!(
                    "The execution exceeded the limit of {} state transitions",
                    self.options.max_transitions
                ),
            ));
        }
        Ok(())
    }

    fn context(&self, entered: Entered<'_>, retry_count: u32) -> Value {
        let mut execution = Map::new();
        execution.insert("Id".into(), json!(self.meta.id));
        execution.insert("Input".into(), self.execution_input.clone());
        execution.insert("Name".into(), json!(self.meta.name));
        execution.insert(
            "StartTime".into(),
            json!(timestamp::format(self.meta.start_time)),
        );
        execution.insert("RedriveCount".into(), json!(0));
        if let Some(role_arn) = &self.meta.role_arn {
            execution.insert("RoleArn".into(), json!(role_arn));
        }
        json!({
            "Execution": execution,
            "State": {
                "Name": entered.name,
                "EnteredTime": timestamp::format(entered.at),
                "RetryCount": retry_count,
            },
            "StateMachine": {
                "Id": self.meta.state_machine_id,
                "Name": self.meta.state_machine_name,
            },
        })
    }

    fn runtime_error(&self, entered: Entered<'_>, error: EvalError) -> ExecutionFailure {
        tracing::warn!(execution = %self.meta.name, state = %entered.name, cause = %error, "runtime error");
        ExecutionFailure::new(
            names::RUNTIME,
            format!(
                "An error occurred while executing the state '{}'. {error}",
                entered.name
            ),
        )
    }

    /// Builds the context object and applies the state's `InputPath`, as every state but
    /// Fail does on entry; returns `(context, selected input)`.
    fn enter(
        &self,
        entered: Entered<'_>,
        retry_count: u32,
        input_path: &OptionalPath,
        raw_input: &Value,
    ) -> Result<(Value, Value), ExecutionFailure> {
        let context = self.context(entered, retry_count);
        let selected = self.apply_path(entered, input_path, raw_input, &context)?;
        Ok((context, selected))
    }

    /// [`select`], failing the execution with `States.Runtime` when the path finds nothing.
    fn apply_path(
        &self,
        entered: Entered<'_>,
        path: &OptionalPath,
        input: &Value,
        context: &Value,
    ) -> Result<Value, ExecutionFailure> {
        select(path, input, context).map_err(|e| self.runtime_error(entered, e))
    }

    async fn task(
        &mut self,
        entered: Entered<'_>,
        task: &TaskState,
        raw_input: Value,
    ) -> Result<Step, ExecutionFailure> {
        let mut attempts = vec![0u64; task.retriers.len()];
        let mut retry_count = 0u32;
        loop {
            let (context, selected) =
                self.enter(entered, retry_count, &task.input_path, &raw_input)?;
            let selected_scope = Scope {
                input: &selected,
                context: &context,
            };
            let timeout = match &task.timeout {
                None => None,
                Some(TaskTimeout::Seconds(seconds)) => Some(*seconds),
                Some(TaskTimeout::Path(path)) => Some(
                    path.select(selected_scope)
                        .and_then(Value::as_u64)
                        .filter(|seconds| *seconds > 0)
                        .ok_or_else(|| {
                            EvalError::new(format!(
                                "The TimeoutSecondsPath '{path}' does not select a positive integer"
                            ))
                        })
                        .map_err(|e| self.runtime_error(entered, e))?,
                ),
            };
            let effective = render(&task.parameters, &selected, &context)
                .map_err(|e| self.runtime_error(entered, e))?;
            let task_context = TaskContext {
                execution_id: self.meta.id.clone(),
                execution_name: self.meta.name.clone(),
                state_name: entered.name.to_owned(),
                entered_time: entered.at,
                retry_count,
            };
            tracing::debug!(
                execution = %self.meta.name,
                state = %entered.name,
                resource = %task.resource,
                retry_count,
                "invoking task"
            );
            let invocation = self
                .invoker
                .invoke(&task.resource, effective, &task_context);
            let outcome = match timeout {
                None => invocation.await,
                Some(seconds) => tokio::time::timeout(Duration::from_secs(seconds), invocation)
                    .await
                    .unwrap_or_else(|_| {
                        Err(TaskFailure::new(
                            names::TIMEOUT,
                            format!(
                                "The task did not finish within its TimeoutSeconds ({seconds}s)"
                            ),
                        ))
                    }),
            };
            let failure = match outcome {
                Ok(result) => {
                    let output = render(&task.result_selector, &result, &context)
                        .and_then(|result| {
                            place_result(&task.result_path, raw_input.clone(), result)
                        })
                        .and_then(|combined| select(&task.output_path, &combined, &context))
                        .map_err(|e| self.runtime_error(entered, e))?;
                    return Ok(step(&task.transition, output));
                }
                Err(failure) => failure,
            };
            if let Some(delay) = next_retry(&task.retriers, &mut attempts, &failure.error) {
                self.observer.task_failed(entered.name, &failure, true);
                tracing::warn!(
                    execution = %self.meta.name,
                    state = %entered.name,
                    error = %failure.error,
                    cause = %failure.cause,
                    delay_ms = delay.as_millis() as u64,
                    "task failed; retrying"
                );
                self.count_transition()?;
                tokio::time::sleep(delay).await;
                retry_count += 1;
                continue;
            }
            self.observer.task_failed(entered.name, &failure, false);
            let Some(catcher) = find_catcher(&task.catchers, &failure.error) else {
                tracing::warn!(
                    execution = %self.meta.name,
                    state = %entered.name,
                    error = %failure.error,
                    cause = %failure.cause,
                    "task failed; no Catcher matches"
                );
                return Err(failure.into());
            };
            tracing::info!(
                execution = %self.meta.name,
                state = %entered.name,
                error = %failure.error,
                next = %catcher.next,
                "task failed; caught"
            );
            let error_output = json!({"Error": failure.error, "Cause": failure.cause});
            let output = place_result(&catcher.result_path, raw_input, error_output)
                .map_err(|e| self.runtime_error(entered, e))?;
            return Ok(Step::Next(catcher.next.clone(), output));
        }
    }

    fn pass(
        &self,
        entered: Entered<'_>,
        pass: &PassState,
        raw_input: Value,
    ) -> Result<Step, ExecutionFailure> {
        let (context, selected) = self.enter(entered, 0, &pass.input_path, &raw_input)?;
        let output = render(&pass.parameters, &selected, &context)
            .and_then(|effective| {
                let result = pass.result.clone().unwrap_or(effective);
                place_result(&pass.result_path, raw_input, result)
            })
            .and_then(|combined| select(&pass.output_path, &combined, &context))
            .map_err(|e| self.runtime_error(entered, e))?;
        Ok(step(&pass.transition, output))
    }

    fn choice(
        &self,
        entered: Entered<'_>,
        choice: &ChoiceState,
        raw_input: Value,
    ) -> Result<Step, ExecutionFailure> {
        let (context, selected) = self.enter(entered, 0, &choice.input_path, &raw_input)?;
        let scope = Scope {
            input: &selected,
            context: &context,
        };
        let mut next = None;
        for branch in &choice.branches {
            if branch
                .rule
                .evaluate(scope)
                .map_err(|e| self.runtime_error(entered, e))?
            {
                next = Some(&branch.next);
                break;
            }
        }
        let next = next.or(choice.default.as_ref()).ok_or_else(|| {
            ExecutionFailure::new(
                names::NO_CHOICE_MATCHED,
                format!(
                    "No Choice Rule of state '{}' matched and it has no Default",
                    entered.name
                ),
            )
        })?;
        let output = self.apply_path(entered, &choice.output_path, &selected, &context)?;
        Ok(Step::Next(next.clone(), output))
    }

    async fn wait(
        &self,
        entered: Entered<'_>,
        wait: &WaitState,
        raw_input: Value,
    ) -> Result<Step, ExecutionFailure> {
        let (context, selected) = self.enter(entered, 0, &wait.input_path, &raw_input)?;
        let scope = Scope {
            input: &selected,
            context: &context,
        };
        let until_seconds = |at: OffsetDateTime| {
            let remaining = at - self.clock.now();
            Duration::try_from(remaining).unwrap_or(Duration::ZERO)
        };
        let delay = match &wait.wait {
            WaitFor::Seconds(seconds) => Duration::from_secs(*seconds),
            WaitFor::Timestamp(at) => until_seconds(*at),
            WaitFor::SecondsPath(path) => path
                .select(scope)
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "The SecondsPath '{path}' does not select a non-negative integer"
                    ))
                })
                .map_err(|e| self.runtime_error(entered, e))?,
            WaitFor::TimestampPath(path) => path
                .select(scope)
                .and_then(Value::as_str)
                .and_then(timestamp::parse)
                .map(until_seconds)
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "The TimestampPath '{path}' does not select an RFC 3339 timestamp"
                    ))
                })
                .map_err(|e| self.runtime_error(entered, e))?,
        };
        tracing::debug!(
            execution = %self.meta.name,
            state = %entered.name,
            delay_ms = delay.as_millis() as u64,
            "waiting"
        );
        tokio::time::sleep(delay).await;
        let output = self.apply_path(entered, &wait.output_path, &selected, &context)?;
        Ok(step(&wait.transition, output))
    }

    fn succeed(
        &self,
        entered: Entered<'_>,
        succeed: &SucceedState,
        raw_input: Value,
    ) -> Result<Step, ExecutionFailure> {
        let (context, selected) = self.enter(entered, 0, &succeed.input_path, &raw_input)?;
        let output = self.apply_path(entered, &succeed.output_path, &selected, &context)?;
        Ok(Step::End(output))
    }

    fn fail(&self, entered: Entered<'_>, fail: &FailState, raw_input: Value) -> ExecutionFailure {
        let context = self.context(entered, 0);
        let scope = Scope {
            input: &raw_input,
            context: &context,
        };
        let resolve = |field: &Option<FailField>, name: &str| -> Result<String, EvalError> {
            let value = match field {
                None => return Ok(String::new()),
                Some(FailField::Literal(text)) => return Ok(text.clone()),
                Some(FailField::Path(path)) => path.select(scope).cloned().ok_or_else(|| {
                    EvalError::new(format!(
                        "The {name}Path '{path}' could not be found in the input"
                    ))
                })?,
                Some(FailField::Intrinsic(call)) => call.evaluate(scope)?,
            };
            match value {
                Value::String(text) => Ok(text),
                other => Err(EvalError::new(format!(
                    "The {name}Path must resolve to a string, not {other}"
                ))),
            }
        };
        match (resolve(&fail.error, "Error"), resolve(&fail.cause, "Cause")) {
            (Ok(error), Ok(cause)) => {
                tracing::info!(execution = %self.meta.name, state = %entered.name, error = %error, "Fail state reached");
                ExecutionFailure { error, cause }
            }
            (Err(problem), _) | (_, Err(problem)) => self.runtime_error(entered, problem),
        }
    }
}

fn step(transition: &Transition, output: Value) -> Step {
    match transition {
        Transition::Next(next) => Step::Next(next.clone(), output),
        Transition::End => Step::End(output),
    }
}

/// Applies an `InputPath` or `OutputPath`; `null` yields `{}`.
fn select(path: &OptionalPath, input: &Value, context: &Value) -> Result<Value, EvalError> {
    match path {
        None => Ok(Value::Object(Map::new())),
        Some(path) => path
            .select(Scope { input, context })
            .cloned()
            .ok_or_else(|| {
                EvalError::new(format!(
                    "Invalid path '{path}': No results for path '{path}' in the input '{input}'"
                ))
            }),
    }
}

/// Applies `Parameters` or `ResultSelector`, when present, to `input`.
fn render(template: &Option<Template>, input: &Value, context: &Value) -> Result<Value, EvalError> {
    match template {
        None => Ok(input.clone()),
        Some(template) => template.render(Scope { input, context }),
    }
}

/// Applies a `ResultPath`: `null` keeps the raw input and discards the result.
fn place_result(path: &OptionalPath, raw_input: Value, result: Value) -> Result<Value, EvalError> {
    match path {
        None => Ok(raw_input),
        Some(path) => {
            let shown = raw_input.to_string();
            path.write(raw_input, result).ok_or_else(|| {
                EvalError::new(format!(
                    "Unable to apply ResultPath '{path}' to the input '{shown}'"
                ))
            })
        }
    }
}

/// The delay before the next attempt, if the first Retrier matching `error` has attempts left.
fn next_retry(retriers: &[Retrier], attempts: &mut [u64], error: &str) -> Option<Duration> {
    let (index, retrier) = retriers
        .iter()
        .enumerate()
        .find(|(_, retrier)| names::matches(&retrier.error_equals, error))?;
    let made = attempts.get_mut(index)?;
    if *made >= retrier.max_attempts {
        return None;
    }
    let exponent = i32::try_from(*made).unwrap_or(i32::MAX);
    *made += 1;
    let mut seconds = retrier.interval_seconds as f64 * retrier.backoff_rate.powi(exponent);
    if let Some(cap) = retrier.max_delay_seconds {
        seconds = seconds.min(cap as f64);
    }
    if !seconds.is_finite() {
        // Unbounded backoff overflowed: the retry will never come.
        return Some(Duration::MAX);
    }
    if retrier.jitter == Jitter::Full {
        seconds = rand::rng().random_range(0.0..=seconds);
    }
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

fn find_catcher<'a>(catchers: &'a [Catcher], error: &str) -> Option<&'a Catcher> {
    catchers
        .iter()
        .find(|catcher| names::matches(&catcher.error_equals, error))
}
