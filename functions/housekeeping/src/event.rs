//! The events this function receives, both through EventBridge: the stack's schedule
//! ("Scheduled Event", no detail), and Step Functions' "Execution Status Change" for the
//! deploy-site state machine's executions that failed, timed out or were aborted (the stack's
//! rule filters them). aws_lambda_events has the envelope but neither detail; the execution's
//! is typed here after
//! <https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html>.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

/// Either event; the detail is read once the `detail-type` says which it is.
pub type HousekeepingEvent = EventBridgeEvent<Value>;

/// `detail-type` of the schedule's events.
pub const SCHEDULED: &str = "Scheduled Event";
/// `detail-type` of Step Functions' execution events.
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    pub execution_arn: String,
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// `deploy-{deployment id}` for executions slipway starts.
    pub name: String,
    /// `FAILED`, `TIMED_OUT`, `ABORTED`, or a status with nothing to do.
    pub status: String,
    /// The execution's input as a JSON string; absent when it was too large to include.
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_examples_deserialise() {
        let scheduled: HousekeepingEvent =
            serde_json::from_str(include_str!("fixtures/aws-docs-scheduled-event.json")).unwrap();
        assert_eq!(scheduled.detail_type, SCHEDULED);
        assert_eq!(scheduled.source, "aws.events");

        let ended: HousekeepingEvent =
            serde_json::from_str(include_str!("fixtures/aws-docs-execution-timed-out.json"))
                .unwrap();
        assert_eq!(ended.detail_type, EXECUTION_STATUS_CHANGE);
        assert_eq!(ended.source, "aws.states");
        let detail: ExecutionStatusChange = serde_json::from_value(ended.detail).unwrap();
        assert_eq!(detail.name, "execution-name");
        assert_eq!(detail.status, "TIMED_OUT");
        assert_eq!(detail.input.as_deref(), Some("{}"));
        assert_eq!(detail.error.as_deref(), Some("States.Timeout"));
        assert_eq!(detail.cause, None);
    }
}
