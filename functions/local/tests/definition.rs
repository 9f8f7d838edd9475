//! `statemachines/deploy-site.asl.json` runs locally: every task resource has an in-process
//! implementation, every Lambda task retries the retryable step errors, and every step is
//! caught into MarkFailed. (`tests/tests/definition.rs` checks the definition against the
//! stack and the error names against the code.)

use std::collections::BTreeSet;

use serde_json::Value;
use slipway_asl::StateMachine;
use slipway_core::steps::StepError;
use slipway_local::dev::local_buckets;
use slipway_local::workflow::{
    is_local_resource, local_substitutions, DEPLOY_SITE_ASL, SITE_FUNCTIONS,
};

fn definition() -> Value {
    serde_json::from_str(DEPLOY_SITE_ASL).unwrap()
}

#[test]
fn every_task_resource_has_a_local_implementation() {
    let machine = StateMachine::parse_with_substitutions(
        DEPLOY_SITE_ASL,
        &local_substitutions(SITE_FUNCTIONS, &local_buckets().artifacts),
    )
    .unwrap();
    let resources = machine.task_resources();
    assert_eq!(resources.len(), 6, "{resources:?}");
    for resource in resources {
        assert!(
            is_local_resource(SITE_FUNCTIONS, resource),
            "{resource} has no local implementation"
        );
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
