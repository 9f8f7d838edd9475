//! A scripted task invoker, a recording observer and helpers shared by the execution tests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use slipway_asl::{
    execute, execute_with_options, ExecutionFailure, ExecutionMeta, ExecutionObserver,
    ExecutionOptions, StateMachine, TaskContext, TaskFailure, TaskInvoker,
};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::time::Instant;

pub const START: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

/// What the invoker does on one call.
#[derive(Debug, Clone)]
pub enum Reply {
    Return(Value),
    EchoInput,
    Fail(&'static str, &'static str),
    /// Sleep (in virtual time) and then reply.
    After(Duration, Box<Reply>),
}

pub fn fail(error: &'static str) -> Reply {
    Reply::Fail(error, "it broke")
}

#[derive(Debug, Clone)]
pub struct Call {
    pub resource: String,
    pub input: Value,
    pub ctx: TaskContext,
    pub at: Instant,
}

/// Replies in order; once the script runs out it echoes its input.
pub struct Scripted {
    replies: Mutex<VecDeque<Reply>>,
    calls: Mutex<Vec<Call>>,
}

impl Scripted {
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            replies: Mutex::new(replies.into_iter().collect()),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The virtual time between consecutive calls.
    pub fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls();
        calls
            .windows(2)
            .map(|pair| pair[1].at - pair[0].at)
            .collect()
    }
}

#[async_trait]
impl TaskInvoker for Scripted {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskFailure> {
        self.calls.lock().unwrap().push(Call {
            resource: resource.to_owned(),
            input: input.clone(),
            ctx: ctx.clone(),
            at: Instant::now(),
        });
        let mut reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::EchoInput);
        loop {
            match reply {
                Reply::Return(value) => return Ok(value),
                Reply::EchoInput => return Ok(input),
                Reply::Fail(error, cause) => return Err(TaskFailure::new(error, cause)),
                Reply::After(delay, then) => {
                    tokio::time::sleep(delay).await;
                    reply = *then;
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Entered(String, Value),
    Exited(String, Value),
    TaskFailed(String, String, bool),
}

#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn entered(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Entered(name, _) => Some(name),
                _ => None,
            })
            .collect()
    }
}

impl ExecutionObserver for Recorder {
    fn state_entered(&self, state: &str, input: &Value) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Entered(state.to_owned(), input.clone()));
    }
    fn state_exited(&self, state: &str, output: &Value) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Exited(state.to_owned(), output.clone()));
    }
    fn task_failed(&self, state: &str, failure: &TaskFailure, will_retry: bool) {
        self.events.lock().unwrap().push(Event::TaskFailed(
            state.to_owned(),
            failure.error.clone(),
            will_retry,
        ));
    }
}

pub fn meta() -> ExecutionMeta {
    ExecutionMeta {
        id: "arn:aws:states:us-east-1:123456789012:execution:deploy-site:run-1".to_owned(),
        name: "run-1".to_owned(),
        start_time: START,
        role_arn: Some("arn:aws:iam::123456789012:role/sfn".to_owned()),
        state_machine_id: "arn:aws:states:us-east-1:123456789012:stateMachine:deploy-site"
            .to_owned(),
        state_machine_name: "deploy-site".to_owned(),
    }
}

pub fn machine(definition: &Value) -> StateMachine {
    StateMachine::parse(&definition.to_string()).expect("test definition is valid")
}

pub async fn run(
    definition: &Value,
    input: Value,
    invoker: &Scripted,
) -> Result<Value, ExecutionFailure> {
    execute(
        &machine(definition),
        meta(),
        input,
        invoker,
        &Recorder::default(),
    )
    .await
}

pub async fn run_observed(
    definition: &Value,
    input: Value,
    invoker: &Scripted,
    recorder: &Recorder,
) -> Result<Value, ExecutionFailure> {
    execute(&machine(definition), meta(), input, invoker, recorder).await
}

pub async fn run_with(
    definition: &Value,
    input: Value,
    invoker: &Scripted,
    options: ExecutionOptions,
) -> Result<Value, ExecutionFailure> {
    execute_with_options(
        &machine(definition),
        meta(),
        input,
        invoker,
        &Recorder::default(),
        options,
    )
    .await
}

/// A one-state machine around `state`, which should end the execution.
pub fn single(state: Value) -> Value {
    serde_json::json!({"StartAt": "S", "States": {"S": state}})
}

/// Asserts virtual durations equal within the timer wheel's millisecond rounding.
pub fn assert_gaps(actual: &[Duration], expected_secs: &[f64]) {
    assert_eq!(
        actual.len(),
        expected_secs.len(),
        "gaps {actual:?} vs {expected_secs:?}"
    );
    for (gap, expected) in actual.iter().zip(expected_secs) {
        let diff = (gap.as_secs_f64() - expected).abs();
        assert!(
            diff < 0.005,
            "gaps {actual:?} vs expected {expected_secs:?}"
        );
    }
}

pub fn assert_runtime(result: Result<Value, ExecutionFailure>, cause_contains: &str) {
    match result {
        Err(failure) => {
            assert_eq!(failure.error, "States.Runtime", "{failure:?}");
            assert!(
                failure.cause.contains(cause_contains),
                "cause {:?} lacks {cause_contains:?}",
                failure.cause
            );
        }
        Ok(output) => panic!("expected States.Runtime, got output {output}"),
    }
}
