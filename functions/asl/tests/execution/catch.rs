//! Catchers, error-name matching, TimeoutSeconds and unhandled task errors.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// A Task with these catchers, plus a Pass state for each handler they name that reports
/// which handler ran and what input it got.
fn task_with_catch(catch: Value) -> Value {
    let mut definition = json!({
        "StartAt": "Build",
        "States": {
            "Build": {"Type": "Task", "Resource": "arn:r", "Catch": catch, "Next": "Ok"},
            "Ok": {"Type": "Pass", "Result": "ok", "End": true}
        }
    });
    for catcher in catch.as_array().unwrap() {
        let handler = catcher["Next"].as_str().unwrap();
        definition["States"][handler] = json!({"Type": "Pass", "Parameters": {"handler": handler, "input.$": "$"}, "End": true});
    }
    definition
}

#[tokio::test(start_paused = true)]
async fn catcher_result_path_places_the_error_output() {
    let input = json!({"site": "blog"});
    let error_output = json!({"Error": "BuildFailed", "Cause": "it broke"});
    let cases: &[(Option<Value>, Value)] = &[
        // Default "$": the error output replaces the input.
        (None, error_output.clone()),
        (Some(json!("$")), error_output.clone()),
        (
            Some(json!("$.error")),
            json!({"site": "blog", "error": error_output.clone()}),
        ),
        (
            Some(json!("$.errors.build")),
            json!({"site": "blog", "errors": {"build": error_output.clone()}}),
        ),
        (Some(Value::Null), input.clone()),
    ];
    for (result_path, expected_input) in cases {
        let mut catcher = json!({"ErrorEquals": ["BuildFailed"], "Next": "A"});
        if let Some(result_path) = result_path {
            catcher["ResultPath"] = result_path.clone();
        }
        let recorder = Recorder::default();
        let output = run_observed(
            &task_with_catch(json!([catcher])),
            input.clone(),
            &Scripted::new([fail("BuildFailed")]),
            &recorder,
        )
        .await
        .unwrap();
        assert_eq!(
            output,
            json!({"handler": "A", "input": expected_input}),
            "ResultPath {result_path:?}"
        );
        assert_eq!(recorder.entered(), ["Build", "A"]);
        assert!(recorder
            .events()
            .contains(&Event::Exited("Build".into(), expected_input.clone())));
    }
}

#[tokio::test(start_paused = true)]
async fn catchers_apply_the_input_before_input_path() {
    let definition = json!({
        "StartAt": "Build",
        "States": {
            "Build": {"Type": "Task", "Resource": "arn:r", "InputPath": "$.job", "Next": "Ok",
                      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "A"}]},
            "Ok": {"Type": "Succeed"},
            "A": {"Type": "Succeed"}
        }
    });
    let output = run(
        &definition,
        json!({"job": {"id": 1}, "other": 2}),
        &Scripted::new([fail("E")]),
    )
    .await
    .unwrap();
    assert_eq!(
        output,
        json!({"job": {"id": 1}, "other": 2, "error": {"Error": "E", "Cause": "it broke"}})
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_matching_catcher_wins() {
    // (catchers, error raised, handler expected or None for an unhandled failure)
    let cases: Vec<(Value, &'static str, Option<&str>)> = vec![
        (
            json!([{"ErrorEquals": ["E1"], "Next": "A"}, {"ErrorEquals": ["States.ALL"], "Next": "B"}]),
            "E1",
            Some("A"),
        ),
        (
            json!([{"ErrorEquals": ["E1"], "Next": "A"}, {"ErrorEquals": ["States.ALL"], "Next": "B"}]),
            "E2",
            Some("B"),
        ),
        (
            json!([{"ErrorEquals": ["E2", "E1"], "Next": "A"}, {"ErrorEquals": ["E1"], "Next": "B"}]),
            "E1",
            Some("A"),
        ),
        (
            json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "A"}, {"ErrorEquals": ["E1"], "Next": "B"}]),
            "E1",
            Some("A"),
        ),
        (json!([{"ErrorEquals": ["E1"], "Next": "A"}]), "e1", None),
        (json!([{"ErrorEquals": ["E1"], "Next": "A"}]), "E2", None),
    ];
    for (catchers, error, expected) in cases {
        let result = run(
            &task_with_catch(catchers.clone()),
            json!({}),
            &Scripted::new([fail(error)]),
        )
        .await;
        match expected {
            Some(handler) => assert_eq!(
                result.unwrap()["handler"],
                json!(handler),
                "{catchers} / {error}"
            ),
            None => {
                let failure = result.unwrap_err();
                assert_eq!(
                    (failure.error.as_str(), failure.cause.as_str()),
                    (error, "it broke")
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_caught_by_name_or_all_but_not_by_task_failed() {
    let hang = || {
        Reply::After(
            Duration::from_secs(600),
            Box::new(Reply::Return(json!("late"))),
        )
    };
    let with_timeout = |catchers: Value| {
        let mut definition = task_with_catch(catchers);
        definition["States"]["Build"]["TimeoutSeconds"] = json!(30);
        definition
    };
    let cases: Vec<(Value, Option<&str>)> = vec![
        (
            json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "A"}]),
            None,
        ),
        (
            json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "A"}, {"ErrorEquals": ["States.Timeout"], "Next": "B"}]),
            Some("B"),
        ),
        (
            json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "A"}, {"ErrorEquals": ["States.ALL"], "Next": "B"}]),
            Some("B"),
        ),
    ];
    for (catchers, expected) in cases {
        let started = tokio::time::Instant::now();
        let result = run(
            &with_timeout(catchers.clone()),
            json!({}),
            &Scripted::new([hang()]),
        )
        .await;
        assert_gaps(&[started.elapsed()], &[30.0]);
        match expected {
            Some(handler) => {
                let output = result.unwrap();
                assert_eq!(output["handler"], json!(handler), "{catchers}");
                assert_eq!(output["input"]["Error"], json!("States.Timeout"));
            }
            None => assert_eq!(result.unwrap_err().error, "States.Timeout", "{catchers}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_finishing_within_its_timeout_succeeds() {
    let mut definition = task_with_catch(json!([]));
    definition["States"]["Build"]["TimeoutSeconds"] = json!(30);
    let invoker = Scripted::new([Reply::After(
        Duration::from_secs(29),
        Box::new(Reply::Return(json!(1))),
    )]);
    assert_eq!(run(&definition, json!({}), &invoker).await, Ok(json!("ok")));
}

#[tokio::test(start_paused = true)]
async fn retries_run_before_catchers() {
    let definition = json!({
        "StartAt": "Build",
        "States": {
            "Build": {"Type": "Task", "Resource": "arn:r", "Next": "Ok",
                      "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 2}],
                      "Catch": [{"ErrorEquals": ["E"], "Next": "Handler"}]},
            "Ok": {"Type": "Succeed"},
            "Handler": {"Type": "Succeed"}
        }
    });
    let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 5));
    let recorder = Recorder::default();
    let output = run_observed(&definition, json!({}), &invoker, &recorder)
        .await
        .unwrap();
    assert_eq!(output, json!({"Error": "E", "Cause": "it broke"}));
    assert_eq!(invoker.calls().len(), 3);
    assert_eq!(
        recorder.events(),
        vec![
            Event::Entered("Build".into(), json!({})),
            Event::TaskFailed("Build".into(), "E".into(), true),
            Event::TaskFailed("Build".into(), "E".into(), true),
            Event::TaskFailed("Build".into(), "E".into(), false),
            Event::Exited("Build".into(), json!({"Error": "E", "Cause": "it broke"})),
            Event::Entered("Handler".into(), json!({"Error": "E", "Cause": "it broke"})),
            Event::Exited("Handler".into(), json!({"Error": "E", "Cause": "it broke"})),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_runtime_error_reported_by_a_task_is_never_caught() {
    let definition = task_with_catch(json!([{"ErrorEquals": ["States.ALL"], "Next": "A"}]));
    let failure = run(
        &definition,
        json!({}),
        &Scripted::new([fail("States.Runtime")]),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.error, "States.Runtime");
}
