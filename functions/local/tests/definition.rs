//! `statemachines/deploy-site.asl.json` and the code agree: every task resource runs, every
//! error name its Retry/Catch lists resolves to an error the code raises (or AWS's own), and
//! the retryable step errors are retried by every Lambda task. A rename cannot break the flow
//! silently.

use std::collections::BTreeSet;

use serde_json::Value;
use slipway_asl::StateMachine;
use slipway_core::steps::StepError;
use slipway_local::dev::local_buckets;
use slipway_local::workflow::{is_local_resource, local_substitutions, DEPLOY_SITE_ASL};

fn definition() -> Value {
    serde_json::from_str(DEPLOY_SITE_ASL).unwrap()
}

/// Names Step Functions itself raises, and the AWS service errors of the integrated tasks
/// (`Service.ExceptionClass`, as the Step Functions docs name them).
fn is_aws_error(name: &str) -> bool {
    const KNOWN: [&str; 11] = [
        "States.ALL",
        "States.TaskFailed",
        "States.Timeout",
        "States.Permissions",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "CodeBuild.AWSCodeBuildException",
        "CodeBuild.AccountLimitExceededException",
        "CodeBuild.ResourceNotFoundException",
    ];
    KNOWN.contains(&name)
}

#[test]
fn every_task_resource_has_a_local_implementation() {
    let machine = StateMachine::parse_with_substitutions(
        DEPLOY_SITE_ASL,
        &local_substitutions(&local_buckets().artifacts),
    )
    .unwrap();
    let resources = machine.task_resources();
    assert_eq!(resources.len(), 6, "{resources:?}");
    for resource in resources {
        assert!(
            is_local_resource(resource),
            "{resource} has no local implementation"
        );
    }
}

#[test]
fn every_error_name_in_retry_and_catch_exists() {
    let def = definition();
    let mut seen = BTreeSet::new();
    for (state_name, state) in def["States"].as_object().unwrap() {
        for list in ["Retry", "Catch"] {
            for rule in state[list].as_array().into_iter().flatten() {
                for name in rule["ErrorEquals"].as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    assert!(
                        StepError::NAMES.contains(&name) || is_aws_error(name),
                        "{state_name}.{list} names {name}, which no code raises"
                    );
                    seen.insert(name.to_owned());
                }
            }
        }
    }
    for retryable in StepError::RETRYABLE {
        assert!(seen.contains(*retryable), "{retryable} is never retried");
    }
}

#[test]
fn every_step_retries_transient_errors_and_is_caught() {
    let def = definition();
    for (name, state) in def["States"].as_object().unwrap() {
        if state["Type"] != "Task" {
            continue;
        }
        let retried: BTreeSet<&str> = state["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| {
                r["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
            })
            .collect();
        let is_lambda = state["Resource"].as_str().unwrap().starts_with("${");
        if is_lambda {
            for retryable in StepError::RETRYABLE {
                assert!(
                    retried.contains(retryable),
                    "{name} does not retry {retryable}"
                );
            }
        }
        if name == "MarkFailed" {
            assert!(
                state.get("Catch").is_none(),
                "MarkFailed must not catch into itself"
            );
            assert_eq!(
                def["States"][state["Next"].as_str().unwrap()]["Type"],
                "Fail"
            );
            continue;
        }
        let catch = state["Catch"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            catch
                .iter()
                .any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"])
                    && c["Next"] == "MarkFailed"),
            "{name} must catch States.ALL into MarkFailed"
        );
    }
}
