//! Fail and Succeed states, substitutions end to end, and the execution-wide limits.

use serde_json::{json, Value};
use slipway_asl::{execute, ExecutionOptions, NoopObserver, StateMachine};
use std::collections::BTreeMap;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn fail_reports_its_error_and_cause() {
    let input =
        json!({"error": {"Error": "DeployFailed", "Cause": "upload failed"}, "code": 7, "n": 3});
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"Type": "Fail", "Error": "Fixed", "Cause": "fixed cause"}),
            "Fixed",
            "fixed cause",
        ),
        (
            json!({"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}),
            "DeployFailed",
            "upload failed",
        ),
        (
            json!({"Type": "Fail", "Error": "E", "CausePath": "States.Format('{} after {} tries', $.error.Cause, $.n)"}),
            "E",
            "upload failed after 3 tries",
        ),
        (
            json!({"Type": "Fail", "ErrorPath": "$$.StateMachine.Name"}),
            "deploy-site",
            "",
        ),
        (json!({"Type": "Fail"}), "", ""),
    ];
    for (state, error, cause) in cases {
        let recorder = Recorder::default();
        let failure = run_observed(
            &single(state.clone()),
            input.clone(),
            &Scripted::new([]),
            &recorder,
        )
        .await
        .unwrap_err();
        assert_eq!(
            (failure.error.as_str(), failure.cause.as_str()),
            (*error, *cause),
            "{state}"
        );
        assert_eq!(
            recorder.events(),
            vec![Event::Entered("S".into(), input.clone())]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn fail_paths_that_do_not_resolve_to_strings_are_runtime_errors() {
    let input = json!({"code": 7});
    for state in [
        json!({"Type": "Fail", "ErrorPath": "$.missing"}),
        json!({"Type": "Fail", "ErrorPath": "$.code"}),
        json!({"Type": "Fail", "Error": "E", "CausePath": "States.ArrayLength($.code)"}),
        json!({"Type": "Fail", "Error": "E", "CausePath": "States.Array($.code)"}),
    ] {
        assert_runtime(
            run(&single(state), input.clone(), &Scripted::new([])).await,
            "'S'",
        );
    }
}

#[tokio::test(start_paused = true)]
async fn succeed_ends_the_execution_with_its_input() {
    let definition = json!({
        "StartAt": "Done",
        "States": {"Done": {"Type": "Succeed"}}
    });
    assert_eq!(
        run(&definition, json!({"a": [1]}), &Scripted::new([])).await,
        Ok(json!({"a": [1]}))
    );
}

#[tokio::test(start_paused = true)]
async fn substituted_resources_reach_the_invoker() {
    let definition = r#"{
        "StartAt": "Build",
        "States": {
            "Build": {"Type": "Task", "Resource": "arn:aws:states:::codebuild:startBuild.sync",
                      "Parameters": {"ProjectName": "${BuildProject}"}, "Next": "Publish"},
            "Publish": {"Type": "Task", "Resource": "${PublishFunctionArn}", "End": true}
        }
    }"#;
    let substitutions = BTreeMap::from([
        ("BuildProject".to_owned(), "slipway-build".to_owned()),
        (
            "PublishFunctionArn".to_owned(),
            "arn:aws:lambda:us-east-1:1:function:publish".to_owned(),
        ),
    ]);
    let machine = StateMachine::parse_with_substitutions(definition, &substitutions).unwrap();
    let invoker = Scripted::new([Reply::Return(json!({"Build": {"Id": "b-1"}}))]);
    let output = execute(&machine, meta(), json!({}), &invoker, &NoopObserver)
        .await
        .unwrap();
    assert_eq!(output, json!({"Build": {"Id": "b-1"}}));
    let calls = invoker.calls();
    assert_eq!(
        calls[0].resource,
        "arn:aws:states:::codebuild:startBuild.sync"
    );
    assert_eq!(calls[0].input, json!({"ProjectName": "slipway-build"}));
    assert_eq!(
        calls[1].resource,
        "arn:aws:lambda:us-east-1:1:function:publish"
    );
    assert_eq!(calls[1].input, json!({"Build": {"Id": "b-1"}}));
}

#[tokio::test(start_paused = true)]
async fn an_endless_loop_stops_at_the_transition_limit() {
    let definition = json!({
        "StartAt": "Ping",
        "States": {
            "Ping": {"Type": "Pass", "Next": "Pong"},
            "Pong": {"Type": "Pass", "Next": "Ping"}
        }
    });
    let result = run_with(
        &definition,
        json!({}),
        &Scripted::new([]),
        ExecutionOptions {
            max_transitions: 100,
        },
    )
    .await;
    assert_runtime(result, "100 state transitions");
    // The default limit applies too.
    assert_runtime(
        run(&definition, json!({}), &Scripted::new([])).await,
        "25000 state transitions",
    );
}

#[tokio::test(start_paused = true)]
async fn retries_count_towards_the_transition_limit() {
    let definition = single(json!({
        "Type": "Task", "Resource": "arn:r", "End": true,
        "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 50, "BackoffRate": 1.0}]
    }));
    let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 100));
    let result = run_with(
        &definition,
        json!({}),
        &invoker,
        ExecutionOptions { max_transitions: 5 },
    )
    .await;
    assert_runtime(result, "5 state transitions");
    assert_eq!(invoker.calls().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_state_machine_timeout_fails_the_execution() {
    let definition = json!({
        "TimeoutSeconds": 60,
        "StartAt": "Slow",
        "States": {"Slow": {"Type": "Wait", "Seconds": 3600, "End": true}}
    });
    let started = tokio::time::Instant::now();
    let failure = run(&definition, json!({}), &Scripted::new([]))
        .await
        .unwrap_err();
    assert_eq!(failure.error, "States.Timeout");
    assert_gaps(&[started.elapsed()], &[60.0]);
    let quick = json!({
        "TimeoutSeconds": 60,
        "StartAt": "Quick",
        "States": {"Quick": {"Type": "Wait", "Seconds": 59, "End": true}}
    });
    assert_eq!(
        run(&quick, json!(1), &Scripted::new([])).await,
        Ok(json!(1))
    );
}

#[tokio::test]
async fn executions_can_be_spawned_onto_the_runtime() {
    let machine = machine(&single(json!({"Type": "Succeed"})));
    // `tokio::spawn` requires the execution future to be `Send + 'static`.
    let handle = tokio::spawn(async move {
        let invoker = Scripted::new([]);
        execute(&machine, meta(), json!({"a": 1}), &invoker, &NoopObserver).await
    });
    assert_eq!(handle.await.unwrap(), Ok(json!({"a": 1})));
}
