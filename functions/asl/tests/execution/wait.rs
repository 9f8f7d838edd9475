//! Wait states on the paused clock: each form waits exactly as long as it says.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::*;

async fn elapsed(state: Value, input: Value) -> Result<Duration, slipway_asl::ExecutionFailure> {
    let started = Instant::now();
    run(&single(state), input, &Scripted::new([])).await?;
    Ok(started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn each_wait_form_sleeps_for_the_right_virtual_time() {
    let cases: &[(Value, Value, f64)] = &[
        (
            json!({"Type": "Wait", "Seconds": 10, "End": true}),
            json!({}),
            10.0,
        ),
        (
            json!({"Type": "Wait", "Seconds": 0, "End": true}),
            json!({}),
            0.0,
        ),
        (
            json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}),
            json!({"delay": 42}),
            42.0,
        ),
        (
            json!({"Type": "Wait", "SecondsPath": "$$.Execution.Input.delay", "End": true}),
            json!({"delay": 3}),
            3.0,
        ),
        // Absolute times count from the execution's StartTime (12:00:00).
        (
            json!({"Type": "Wait", "Timestamp": "2024-05-01T12:01:30Z", "End": true}),
            json!({}),
            90.0,
        ),
        (
            json!({"Type": "Wait", "Timestamp": "2024-05-01T14:00:05+02:00", "End": true}),
            json!({}),
            5.0,
        ),
        (
            json!({"Type": "Wait", "TimestampPath": "$.at", "End": true}),
            json!({"at": "2024-05-01T12:00:07.5Z"}),
            7.5,
        ),
        // A time in the past does not wait.
        (
            json!({"Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z", "End": true}),
            json!({}),
            0.0,
        ),
    ];
    for (state, input, expected) in cases {
        let waited = elapsed(state.clone(), input.clone()).await.unwrap();
        assert_gaps(&[waited], &[*expected]);
    }
}

#[tokio::test(start_paused = true)]
async fn waits_add_up_across_states() {
    let definition = json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Wait", "Seconds": 30, "Next": "B"},
            "B": {"Type": "Wait", "Timestamp": "2024-05-01T12:01:00Z", "Next": "C"},
            "C": {"Type": "Pass", "End": true}
        }
    });
    let started = Instant::now();
    let output = run(&definition, json!({"kept": true}), &Scripted::new([]))
        .await
        .unwrap();
    assert_eq!(output, json!({"kept": true}));
    // B waits until one minute after the start, i.e. 30 more seconds.
    assert_gaps(&[started.elapsed()], &[60.0]);
}

#[tokio::test(start_paused = true)]
async fn bad_wait_inputs_are_runtime_errors() {
    let cases = [
        (
            json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}),
            json!({}),
            "SecondsPath",
        ),
        (
            json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}),
            json!({"delay": -1}),
            "SecondsPath",
        ),
        (
            json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}),
            json!({"delay": "10"}),
            "SecondsPath",
        ),
        (
            json!({"Type": "Wait", "TimestampPath": "$.at", "End": true}),
            json!({"at": "tomorrow"}),
            "TimestampPath",
        ),
        (
            json!({"Type": "Wait", "TimestampPath": "$.at", "End": true}),
            json!({}),
            "TimestampPath",
        ),
    ];
    for (state, input, cause) in cases {
        assert_runtime(run(&single(state), input, &Scripted::new([])).await, cause);
    }
}
