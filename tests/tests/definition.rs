//! `statemachines/deploy-site.asl.json`, `infra/template.yaml` and the code agree, so a
//! rename cannot silently break the flow:
//! - every `${...}` in the definition is a DefinitionSubstitution of the stack;
//! - every task `Resource` resolves through the stack to a Lambda function whose crate exists
//!   under `functions/` and whose handler calls the step of the same name;
//! - every error name in a Retry or Catch is one the code raises (`StepError::NAMES`) or one
//!   Step Functions and the integrated services raise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_yaml::Value as Yaml;
use slipway_core::steps::StepError;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn definition() -> (String, Value) {
    let text = std::fs::read_to_string(repo().join("statemachines/deploy-site.asl.json")).unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

fn template() -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap())
        .unwrap()
}

/// The stack's state machine resource that loads the definition.
fn state_machine(template: &Yaml) -> &Yaml {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::Serverless::StateMachine")
        .expect("the stack has a state machine")
}

/// `!GetAtt Logical.Arn` → `Logical`.
fn get_att_target(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "GetAtt" => {
            let target = tagged.value.as_str()?;
            target.strip_suffix(".Arn").map(str::to_owned)
        }
        _ => None,
    }
}

/// Step Functions' own error names and the integrated services' exceptions the definition may
/// retry (`Service.ExceptionClass`, as the Step Functions docs name them).
const AWS_ERRORS: [&str; 11] = [
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

#[test]
fn every_placeholder_is_a_substitution_of_the_stack() {
    let (text, _) = definition();
    let template = template();
    let machine = state_machine(&template);
    assert_eq!(
        machine["Properties"]["DefinitionUri"],
        "../statemachines/deploy-site.asl.json"
    );
    let substitutions: BTreeSet<String> = machine["Properties"]["DefinitionSubstitutions"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let placeholders: BTreeSet<String> = text
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap().to_owned())
        .collect();
    assert_eq!(placeholders, substitutions);
}

#[test]
fn every_task_resource_is_a_function_whose_crate_runs_that_step() {
    let (_, def) = definition();
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let substitutions = &state_machine(&template)["Properties"]["DefinitionSubstitutions"];
    let mut functions = BTreeMap::new();
    for (state, body) in def["States"].as_object().unwrap() {
        let Some(resource) = body["Resource"].as_str() else {
            continue;
        };
        if resource.starts_with("arn:aws:states:::") {
            assert_eq!(
                resource, "arn:aws:states:::codebuild:startBuild.sync",
                "{state}"
            );
            continue;
        }
        let variable = resource
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .unwrap();
        let logical = get_att_target(&substitutions[variable])
            .unwrap_or_else(|| panic!("{variable} must be !GetAtt <Function>.Arn"));
        let function = resources
            .get(Yaml::from(logical.as_str()))
            .unwrap_or_else(|| panic!("{logical} is not in the stack"));
        assert_eq!(function["Type"], "AWS::Serverless::Function", "{logical}");
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{logical}"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        functions.insert(state.clone(), binary);
    }
    let expected: BTreeMap<String, String> = [
        ("Prepare", "prepare"),
        ("Publish", "publish"),
        ("Activate", "activate"),
        ("Prune", "prune"),
        ("MarkFailed", "mark-failed"),
    ]
    .into_iter()
    .map(|(s, b)| (s.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(functions, expected);
    for binary in functions.values() {
        let manifest =
            std::fs::read_to_string(repo().join("functions").join(binary).join("Cargo.toml"))
                .unwrap_or_else(|_| panic!("functions/{binary} has no crate"));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "functions/{binary}/Cargo.toml"
        );
        let handler =
            std::fs::read_to_string(repo().join("functions").join(binary).join("src/handler.rs"))
                .unwrap();
        let step = binary.replace('-', "_");
        assert!(
            handler.contains(&format!("steps::{step}(")),
            "functions/{binary} must run steps::{step}"
        );
    }
}

#[test]
fn every_retry_and_catch_name_is_raised_somewhere() {
    let (_, def) = definition();
    let mut retried = BTreeSet::new();
    for (state, body) in def["States"].as_object().unwrap() {
        for list in ["Retry", "Catch"] {
            for rule in body[list].as_array().into_iter().flatten() {
                for name in rule["ErrorEquals"].as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    assert!(
                        StepError::NAMES.contains(&name) || AWS_ERRORS.contains(&name),
                        "{state}.{list} names {name}, which nothing raises"
                    );
                    if list == "Retry" {
                        retried.insert(name.to_owned());
                    }
                }
            }
        }
    }
    for name in StepError::RETRYABLE {
        assert!(
            retried.contains(*name),
            "{name} is retryable but never retried"
        );
    }
}
