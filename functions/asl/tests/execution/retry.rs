//! Retriers: attempt counts, backoff intervals (checked on the paused clock), MaxDelaySeconds,
//! jitter, and which Retrier applies.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn task_with_retry(retry: Value) -> Value {
    json!({
        "StartAt": "Deploy",
        "States": {
            "Deploy": {"Type": "Task", "Resource": "arn:r", "Retry": retry, "End": true}
        }
    })
}

#[tokio::test(start_paused = true)]
async fn defaults_retry_three_times_after_1_2_and_4_seconds() {
    let invoker = Scripted::new(std::iter::repeat_n(fail("StoreUnavailable"), 10));
    let recorder = Recorder::default();
    let definition = task_with_retry(json!([{"ErrorEquals": ["StoreUnavailable"]}]));
    let failure = run_observed(&definition, json!({}), &invoker, &recorder)
        .await
        .unwrap_err();
    assert_eq!(failure.error, "StoreUnavailable");
    assert_eq!(failure.cause, "it broke");
    assert_eq!(invoker.calls().len(), 4);
    assert_gaps(&invoker.gaps(), &[1.0, 2.0, 4.0]);
    let retry_counts: Vec<u32> = invoker
        .calls()
        .iter()
        .map(|call| call.ctx.retry_count)
        .collect();
    assert_eq!(retry_counts, [0, 1, 2, 3]);
    let will_retry: Vec<bool> = recorder
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::TaskFailed(state, error, will_retry) => {
                assert_eq!(
                    (state.as_str(), error.as_str()),
                    ("Deploy", "StoreUnavailable")
                );
                Some(will_retry)
            }
            _ => None,
        })
        .collect();
    assert_eq!(will_retry, [true, true, true, false]);
}

#[tokio::test(start_paused = true)]
async fn backoff_intervals_follow_interval_times_rate_to_the_attempt() {
    // (retrier, expected gaps between attempts)
    let cases: Vec<(Value, Vec<f64>)> = vec![
        // The specification's example: waits of 3, 4.5, 6.75 and 10.125 seconds.
        (
            json!({"ErrorEquals": ["E"], "IntervalSeconds": 3, "MaxAttempts": 4, "BackoffRate": 1.5}),
            vec![3.0, 4.5, 6.75, 10.125],
        ),
        (
            json!({"ErrorEquals": ["E"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 1.0}),
            vec![5.0, 5.0],
        ),
        (json!({"ErrorEquals": ["E"], "MaxAttempts": 1}), vec![1.0]),
        // MaxDelaySeconds caps the growth.
        (
            json!({"ErrorEquals": ["E"], "IntervalSeconds": 1, "MaxAttempts": 5, "BackoffRate": 10, "MaxDelaySeconds": 15}),
            vec![1.0, 10.0, 15.0, 15.0, 15.0],
        ),
        (
            json!({"ErrorEquals": ["E"], "IntervalSeconds": 30, "MaxAttempts": 2, "MaxDelaySeconds": 20}),
            vec![20.0, 20.0],
        ),
        (json!({"ErrorEquals": ["E"], "MaxAttempts": 0}), vec![]),
    ];
    for (retrier, expected) in cases {
        let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 10));
        let failure = run(
            &task_with_retry(json!([retrier.clone()])),
            json!({}),
            &invoker,
        )
        .await
        .unwrap_err();
        assert_eq!(failure.error, "E");
        assert_eq!(invoker.calls().len(), expected.len() + 1, "{retrier}");
        assert_gaps(&invoker.gaps(), &expected);
    }
}

#[tokio::test(start_paused = true)]
async fn full_jitter_waits_a_random_time_up_to_the_backoff_delay() {
    let retrier = json!({"ErrorEquals": ["E"], "IntervalSeconds": 10, "MaxAttempts": 20, "BackoffRate": 1.0, "JitterStrategy": "FULL"});
    let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 30));
    run(&task_with_retry(json!([retrier])), json!({}), &invoker)
        .await
        .unwrap_err();
    let gaps = invoker.gaps();
    assert_eq!(gaps.len(), 20);
    assert!(
        gaps.iter().all(|gap| *gap <= Duration::from_millis(10_002)),
        "{gaps:?}"
    );
    // Twenty uniform draws from [0, 10s] are all identical with probability zero.
    assert!(gaps.iter().any(|gap| *gap != gaps[0]), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn success_after_retries_continues_normally() {
    let invoker = Scripted::new([fail("E"), fail("E"), Reply::Return(json!({"ok": true}))]);
    let definition = json!({
        "StartAt": "Deploy",
        "States": {
            "Deploy": {"Type": "Task", "Resource": "arn:r", "ResultPath": "$.result",
                       "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 5}], "Next": "Done"},
            "Done": {"Type": "Succeed"}
        }
    });
    let output = run(&definition, json!({"site": "blog"}), &invoker)
        .await
        .unwrap();
    assert_eq!(output, json!({"site": "blog", "result": {"ok": true}}));
    assert_gaps(&invoker.gaps(), &[1.0, 2.0]);
    // Every attempt received the same effective input.
    assert!(invoker
        .calls()
        .iter()
        .all(|call| call.input == json!({"site": "blog"})));
}

/// The specification's "complex retry scenario": ErrorA, ErrorB, ErrorC, ErrorB.
#[tokio::test(start_paused = true)]
async fn each_retrier_counts_its_own_attempts_across_the_state() {
    let definition = json!({
        "StartAt": "X",
        "States": {
            "X": {
                "Type": "Task",
                "Resource": "arn:r",
                "Next": "Y",
                "Retry": [
                    {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2},
                    {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5}
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}]
            },
            "Y": {"Type": "Pass", "Result": "Y", "End": true},
            "Z": {"Type": "Pass", "End": true}
        }
    });
    let invoker = Scripted::new([
        fail("ErrorA"),
        fail("ErrorB"),
        fail("ErrorC"),
        fail("ErrorB"),
    ]);
    let recorder = Recorder::default();
    let output = run_observed(&definition, json!({}), &invoker, &recorder)
        .await
        .unwrap();
    assert_eq!(output, json!({"Error": "ErrorB", "Cause": "it broke"}));
    assert_gaps(&invoker.gaps(), &[1.0, 2.0, 5.0]);
    assert_eq!(recorder.entered(), ["X", "Z"]);
}

#[tokio::test(start_paused = true)]
async fn only_the_first_matching_retrier_applies() {
    // The docs' "retry everything except timeouts" idiom.
    let definition = json!({
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task", "Resource": "arn:r", "TimeoutSeconds": 2, "End": true,
                "Retry": [
                    {"ErrorEquals": ["States.Timeout"], "MaxAttempts": 0},
                    {"ErrorEquals": ["States.ALL"]}
                ]
            }
        }
    });
    let hang = || Reply::After(Duration::from_secs(60), Box::new(Reply::EchoInput));
    let invoker = Scripted::new([hang(), hang()]);
    let failure = run(&definition, json!({}), &invoker).await.unwrap_err();
    assert_eq!(failure.error, "States.Timeout");
    assert_eq!(invoker.calls().len(), 1);

    let invoker = Scripted::new([fail("Other"), fail("Other"), fail("Other"), fail("Other")]);
    let failure = run(&definition, json!({}), &invoker).await.unwrap_err();
    assert_eq!(failure.error, "Other");
    assert_eq!(invoker.calls().len(), 4);

    // An exhausted specific retrier does not fall through to a later States.ALL one.
    let definition = task_with_retry(json!([
        {"ErrorEquals": ["E"], "MaxAttempts": 1},
        {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}
    ]));
    let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 10));
    run(&definition, json!({}), &invoker).await.unwrap_err();
    assert_eq!(invoker.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn task_failed_retries_everything_but_timeouts() {
    let definition = json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:r", "TimeoutSeconds": 1, "End": true,
                  "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}]}
        }
    });
    let invoker = Scripted::new([fail("Anything"), Reply::Return(json!("ok"))]);
    assert_eq!(run(&definition, json!({}), &invoker).await, Ok(json!("ok")));
    assert_eq!(invoker.calls().len(), 2);

    let invoker = Scripted::new([Reply::After(
        Duration::from_secs(5),
        Box::new(Reply::Return(json!("late"))),
    )]);
    let failure = run(&definition, json!({}), &invoker).await.unwrap_err();
    assert_eq!(failure.error, "States.Timeout");
    assert_eq!(invoker.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_budgets_reset_when_the_state_is_entered_again() {
    let definition = json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:r", "ResultPath": "$.last", "Next": "Again",
                  "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 1}]},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.last", "StringEquals": "first", "Next": "T"}], "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    });
    // Each visit uses its one retry.
    let invoker = Scripted::new([
        fail("E"),
        Reply::Return(json!("first")),
        fail("E"),
        Reply::Return(json!("second")),
    ]);
    let output = run(&definition, json!({}), &invoker).await.unwrap();
    assert_eq!(output, json!({"last": "second"}));
    let retry_counts: Vec<u32> = invoker
        .calls()
        .iter()
        .map(|call| call.ctx.retry_count)
        .collect();
    assert_eq!(retry_counts, [0, 1, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_overflowing_backoff_waits_forever_instead_of_panicking() {
    let definition = json!({
        "TimeoutSeconds": 86400,
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "arn:r", "End": true,
            "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 5, "BackoffRate": 1e300, "JitterStrategy": "FULL"}]}}
    });
    let invoker = Scripted::new(std::iter::repeat_n(fail("E"), 10));
    let failure = run(&definition, json!({}), &invoker).await.unwrap_err();
    // The second retry's delay (1e300 s) overflows; the execution timeout ends the wait.
    assert_eq!(failure.error, "States.Timeout");
    assert_eq!(invoker.calls().len(), 2);
}
