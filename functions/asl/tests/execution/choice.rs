//! Choice states: rule order, Default, States.NoChoiceMatched and run-time failures.

use serde_json::json;

use crate::support::*;

fn router() -> serde_json::Value {
    json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
                    {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
                    {"And": [
                        {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                        {"Variable": "$.value", "NumericLessThan": 30}
                    ], "Next": "ValueInTwenties"}
                ],
                "Default": "DefaultState"
            },
            "Public": {"Type": "Pass", "Result": "Public", "End": true},
            "ValueIsZero": {"Type": "Pass", "Result": "ValueIsZero", "End": true},
            "ValueInTwenties": {"Type": "Pass", "Result": "ValueInTwenties", "End": true},
            "DefaultState": {"Type": "Pass", "Result": "DefaultState", "End": true}
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_first_matching_rule_wins_and_default_catches_the_rest() {
    let cases = [
        (json!({"type": "Public", "value": 22}), "Public"),
        (json!({"type": "Private", "value": 0}), "ValueIsZero"),
        (json!({"type": "Private", "value": 22}), "ValueInTwenties"),
        (json!({"type": "Private", "value": 30}), "DefaultState"),
    ];
    for (input, expected) in cases {
        let recorder = Recorder::default();
        let output = run_observed(&router(), input.clone(), &Scripted::new([]), &recorder)
            .await
            .unwrap();
        assert_eq!(output, json!(expected), "{input}");
        assert_eq!(recorder.entered(), ["Route", expected]);
        // A Choice state passes its input through.
        assert!(recorder
            .events()
            .contains(&Event::Exited("Route".into(), input)));
    }
}

#[tokio::test(start_paused = true)]
async fn no_match_without_default_fails_with_no_choice_matched() {
    let definition = json!({
        "StartAt": "Route",
        "States": {
            "Route": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}]},
            "Big": {"Type": "Succeed"}
        }
    });
    let failure = run(&definition, json!({"n": 3}), &Scripted::new([]))
        .await
        .unwrap_err();
    assert_eq!(failure.error, "States.NoChoiceMatched");
    assert!(failure.cause.contains("Route"), "{}", failure.cause);
    assert_eq!(
        run(&definition, json!({"n": 11}), &Scripted::new([])).await,
        Ok(json!({"n": 11}))
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_variable_fails_the_execution_with_a_runtime_error() {
    let result = run(&router(), json!({"value": 22}), &Scripted::new([])).await;
    assert_runtime(result, "Invalid path '$.type'");
}

#[tokio::test(start_paused = true)]
async fn choice_can_loop_back_until_a_counter_is_reached() {
    let definition = json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": {"n": 0}, "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Increment"}], "Default": "Done"},
            "Increment": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Check"},
            "Done": {"Type": "Succeed"}
        }
    });
    let recorder = Recorder::default();
    let output = run_observed(&definition, json!({}), &Scripted::new([]), &recorder)
        .await
        .unwrap();
    assert_eq!(output, json!({"n": 3}));
    assert_eq!(
        recorder.entered(),
        [
            "Init",
            "Check",
            "Increment",
            "Check",
            "Increment",
            "Check",
            "Increment",
            "Check",
            "Done"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rules_may_read_the_context_object_and_compare_paths() {
    let definition = json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$$.Execution.Name", "StringMatches": "run-*", "Next": "Matched"},
                ],
                "Default": "Other"
            },
            "Matched": {"Type": "Choice", "Choices": [
                {"Variable": "$.current", "TimestampLessThanPath": "$.deadline", "Next": "InTime"}
            ], "Default": "Other"},
            "InTime": {"Type": "Pass", "Result": "in time", "End": true},
            "Other": {"Type": "Pass", "Result": "other", "End": true}
        }
    });
    let input = json!({"current": "2024-05-01T12:00:00Z", "deadline": "2024-05-01T13:00:00+00:30"});
    assert_eq!(
        run(&definition, input, &Scripted::new([])).await,
        Ok(json!("in time"))
    );
}
