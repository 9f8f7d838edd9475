//! Input and output processing: InputPath → Parameters → task → ResultSelector →
//! ResultPath → OutputPath, the context object, and run-time path failures.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn task_processing_applies_every_field_in_spec_order() {
    let definition = single(json!({
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:1:function:publish",
        "InputPath": "$.job",
        "Parameters": {"site.$": "$.site", "exec.$": "$$.Execution.Name", "fixed": 1},
        "ResultSelector": {"version.$": "$.Payload.version"},
        "ResultPath": "$.job.published",
        "OutputPath": "$.job",
        "End": true
    }));
    let invoker = Scripted::new([Reply::Return(
        json!({"Payload": {"version": 7, "noise": true}}),
    )]);
    let output = run(
        &definition,
        json!({"job": {"site": "blog", "extra": "kept"}, "other": "dropped by OutputPath"}),
        &invoker,
    )
    .await
    .unwrap();
    let calls = invoker.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].resource,
        "arn:aws:lambda:us-east-1:1:function:publish"
    );
    assert_eq!(
        calls[0].input,
        json!({"site": "blog", "exec": "run-1", "fixed": 1})
    );
    // ResultPath writes into the raw input (not the Parameters output); OutputPath then selects.
    assert_eq!(
        output,
        json!({"site": "blog", "extra": "kept", "published": {"version": 7}})
    );
}

#[tokio::test(start_paused = true)]
async fn result_path_variants() {
    let input = json!({"a": {"keep": true}, "b": 1});
    let cases: &[(Value, Value)] = &[
        (Value::String("$".into()), json!({"r": 1})),
        (Value::Null, json!({"a": {"keep": true}, "b": 1})),
        (json!("$.b"), json!({"a": {"keep": true}, "b": {"r": 1}})),
        (
            json!("$.a.r"),
            json!({"a": {"keep": true, "r": {"r": 1}}, "b": 1}),
        ),
        (
            json!("$.new.deeper.r"),
            json!({"a": {"keep": true}, "b": 1, "new": {"deeper": {"r": {"r": 1}}}}),
        ),
        (
            json!("$['quoted key']"),
            json!({"a": {"keep": true}, "b": 1, "quoted key": {"r": 1}}),
        ),
    ];
    for (result_path, expected) in cases {
        for state_type in ["Task", "Pass"] {
            let mut state = json!({"Type": state_type, "ResultPath": result_path, "End": true});
            if state_type == "Task" {
                state["Resource"] = json!("arn:r");
            } else {
                state["Result"] = json!({"r": 1});
            }
            let invoker = Scripted::new([Reply::Return(json!({"r": 1}))]);
            let output = run(&single(state), input.clone(), &invoker).await.unwrap();
            assert_eq!(
                &output, expected,
                "{state_type} with ResultPath {result_path}"
            );
        }
    }
    // Default ResultPath is "$": the result replaces the input.
    let invoker = Scripted::new([Reply::Return(json!("result"))]);
    let output = run(
        &single(json!({"Type": "Task", "Resource": "arn:r", "End": true})),
        input,
        &invoker,
    )
    .await
    .unwrap();
    assert_eq!(output, json!("result"));
}

#[tokio::test(start_paused = true)]
async fn null_input_and_output_paths_yield_empty_objects() {
    let definition = json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:r", "InputPath": null, "ResultPath": "$.r", "Next": "Out"},
            "Out": {"Type": "Pass", "OutputPath": null, "End": true}
        }
    });
    let invoker = Scripted::new([Reply::Return(json!(5))]);
    let recorder = Recorder::default();
    let output = run_observed(&definition, json!({"a": 1}), &invoker, &recorder)
        .await
        .unwrap();
    assert_eq!(invoker.calls()[0].input, json!({}));
    assert_eq!(output, json!({}));
    assert!(recorder
        .events()
        .contains(&Event::Exited("T".into(), json!({"a": 1, "r": 5}))));
}

#[tokio::test(start_paused = true)]
async fn pass_state_result_and_parameters() {
    let input = json!({"x": {"v": 1}, "y": 2});
    let cases: &[(Value, Value)] = &[
        // No Result: the effective input (after InputPath and Parameters) is the result.
        (json!({"Type": "Pass", "End": true}), input.clone()),
        (
            json!({"Type": "Pass", "InputPath": "$.x", "End": true}),
            json!({"v": 1}),
        ),
        (
            json!({"Type": "Pass", "InputPath": "$.x", "Parameters": {"w.$": "$.v", "s": "lit"}, "End": true}),
            json!({"w": 1, "s": "lit"}),
        ),
        (
            json!({"Type": "Pass", "Parameters": {"w.$": "$.y"}, "ResultPath": "$.p", "End": true}),
            json!({"x": {"v": 1}, "y": 2, "p": {"w": 2}}),
        ),
        // Result wins over the effective input.
        (
            json!({"Type": "Pass", "Result": [1, 2], "Parameters": {"w.$": "$.y"}, "End": true}),
            json!([1, 2]),
        ),
        (
            json!({"Type": "Pass", "Result": "r", "ResultPath": "$.x.r", "OutputPath": "$.x", "End": true}),
            json!({"v": 1, "r": "r"}),
        ),
        (
            json!({"Type": "Pass", "Result": null, "End": true}),
            Value::Null,
        ),
    ];
    for (state, expected) in cases {
        let output = run(&single(state.clone()), input.clone(), &Scripted::new([]))
            .await
            .unwrap();
        assert_eq!(&output, expected, "{state}");
    }
}

#[tokio::test(start_paused = true)]
async fn succeed_wait_and_choice_apply_input_and_output_paths() {
    let input = json!({"outer": {"inner": {"v": 1}, "go": true}});
    let cases = [
        json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "InputPath": "$.outer", "OutputPath": "$.inner"}}}),
        json!({"StartAt": "S", "States": {"S": {"Type": "Wait", "Seconds": 1, "InputPath": "$.outer", "OutputPath": "$.inner", "End": true}}}),
        json!({"StartAt": "S", "States": {
            "S": {"Type": "Choice", "InputPath": "$.outer", "OutputPath": "$.inner",
                  "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "Done"}]},
            "Done": {"Type": "Succeed"}
        }}),
    ];
    for definition in cases {
        let output = run(&definition, input.clone(), &Scripted::new([]))
            .await
            .unwrap();
        assert_eq!(output, json!({"v": 1}), "{definition}");
    }
}

#[tokio::test(start_paused = true)]
async fn context_object_fields() {
    let definition = single(json!({
        "Type": "Task",
        "Resource": "arn:r",
        "Parameters": {"ctx.$": "$$"},
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2}],
        "End": true
    }));
    let invoker = Scripted::new([fail("Flaky")]);
    run(&definition, json!({"site": "blog"}), &invoker)
        .await
        .unwrap();
    let calls = invoker.calls();
    assert_eq!(calls.len(), 2);
    let expected = |retry_count: u32| {
        json!({
            "Execution": {
                "Id": "arn:aws:states:us-east-1:123456789012:execution:deploy-site:run-1",
                "Input": {"site": "blog"},
                "Name": "run-1",
                "RoleArn": "arn:aws:iam::123456789012:role/sfn",
                "StartTime": "2024-05-01T12:00:00.000Z",
                "RedriveCount": 0
            },
            "State": {"Name": "S", "EnteredTime": "2024-05-01T12:00:00.000Z", "RetryCount": retry_count},
            "StateMachine": {
                "Id": "arn:aws:states:us-east-1:123456789012:stateMachine:deploy-site",
                "Name": "deploy-site"
            }
        })
    };
    assert_eq!(calls[0].input["ctx"], expected(0));
    // A retry keeps the state's EnteredTime and counts up RetryCount.
    assert_eq!(calls[1].input["ctx"], expected(1));
    assert_eq!(calls[1].ctx.retry_count, 1);
    assert_eq!(calls[1].ctx.state_name, "S");
    assert_eq!(calls[1].ctx.execution_name, "run-1");
    assert!(calls[0].input["ctx"].get("Task").is_none());
}

#[tokio::test(start_paused = true)]
async fn entered_time_follows_the_virtual_clock() {
    let definition = json!({
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 90, "Next": "P"},
            "P": {"Type": "Pass", "Parameters": {"at.$": "$$.State.EnteredTime", "start.$": "$$.Execution.StartTime"}, "End": true}
        }
    });
    let output = run(&definition, json!({}), &Scripted::new([]))
        .await
        .unwrap();
    assert_eq!(
        output,
        json!({"at": "2024-05-01T12:01:30.000Z", "start": "2024-05-01T12:00:00.000Z"})
    );
}

#[tokio::test(start_paused = true)]
async fn the_execution_id_and_input_are_available_to_intrinsics() {
    let definition = single(json!({
        "Type": "Pass",
        "Parameters": {
            "label.$": "States.Format('{} deploys {}', $$.Execution.Name, $$.Execution.Input.site)",
            "parts.$": "States.StringSplit($$.StateMachine.Name, '-')"
        },
        "End": true
    }));
    let output = run(&definition, json!({"site": "blog"}), &Scripted::new([]))
        .await
        .unwrap();
    assert_eq!(
        output,
        json!({"label": "run-1 deploys blog", "parts": ["deploy", "site"]})
    );
}

/// Run-time path failures fail the execution with States.Runtime even when a Retrier and a
/// Catcher match States.ALL.
#[tokio::test(start_paused = true)]
async fn path_failures_are_runtime_errors_that_are_neither_retried_nor_caught() {
    let with_handlers = |overrides: Value| {
        let mut state = json!({
            "Type": "Task",
            "Resource": "arn:r",
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}],
            "End": true
        });
        for (key, value) in overrides.as_object().unwrap() {
            state[key] = value.clone();
        }
        json!({"StartAt": "S", "States": {"S": state, "Handler": {"Type": "Succeed"}}})
    };
    // (state overrides, task reply, expected calls, cause fragment)
    let cases: Vec<(Value, Reply, usize, &str)> = vec![
        (
            json!({"InputPath": "$.missing"}),
            Reply::EchoInput,
            0,
            "Invalid path '$.missing'",
        ),
        (
            json!({"Parameters": {"name.$": "$.missing"}}),
            Reply::EchoInput,
            0,
            "The JSONPath '$.missing' specified for the field 'name.$' could not be found",
        ),
        (
            json!({"Parameters": {"n.$": "States.ArrayLength($.site)"}}),
            Reply::EchoInput,
            0,
            "States.ArrayLength",
        ),
        (
            json!({"ResultSelector": {"v.$": "$.missing"}}),
            Reply::Return(json!({})),
            1,
            "'v.$'",
        ),
        (
            json!({"ResultPath": "$.site.deeper"}),
            Reply::Return(json!(1)),
            1,
            "Unable to apply ResultPath '$.site.deeper'",
        ),
        (
            json!({"OutputPath": "$.missing"}),
            Reply::Return(json!({})),
            1,
            "Invalid path '$.missing'",
        ),
        (
            json!({"TimeoutSecondsPath": "$.site"}),
            Reply::EchoInput,
            0,
            "TimeoutSecondsPath",
        ),
    ];
    for (overrides, reply, expected_calls, cause) in cases {
        let invoker = Scripted::new([reply]);
        let result = run(
            &with_handlers(overrides.clone()),
            json!({"site": "blog"}),
            &invoker,
        )
        .await;
        assert_eq!(invoker.calls().len(), expected_calls, "{overrides}");
        assert_runtime(result, cause);
    }
}

#[tokio::test(start_paused = true)]
async fn a_catcher_result_path_that_cannot_be_applied_is_a_runtime_error() {
    let definition = json!({
        "StartAt": "S",
        "States": {
            "S": {"Type": "Task", "Resource": "arn:r", "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "H"}]},
            "H": {"Type": "Succeed"}
        }
    });
    let result = run(
        &definition,
        json!("a string input"),
        &Scripted::new([fail("Boom")]),
    )
    .await;
    assert_runtime(result, "Unable to apply ResultPath '$.error'");
}

#[tokio::test(start_paused = true)]
async fn task_timeout_from_a_path() {
    let definition = single(json!({
        "Type": "Task", "Resource": "arn:r", "TimeoutSecondsPath": "$.limit", "End": true
    }));
    let invoker = Scripted::new([Reply::After(
        std::time::Duration::from_secs(60),
        Box::new(Reply::EchoInput),
    )]);
    let started = tokio::time::Instant::now();
    let failure = run(&definition, json!({"limit": 5}), &invoker)
        .await
        .unwrap_err();
    assert_eq!(failure.error, "States.Timeout");
    assert_gaps(&[started.elapsed()], &[5.0]);
}
