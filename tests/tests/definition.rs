//! `statemachines/deploy-site.asl.json`, `infra/template.yaml` and the code agree, so a
//! rename cannot silently break the flow:
//! - every `${...}` in the definition is a DefinitionSubstitution of the stack;
//! - every task `Resource` resolves through the stack to a Lambda function whose crate exists
//!   under `functions/` and whose handler calls the step of the same name;
//! - every error name in a Retry or Catch is one the code raises (`StepError::NAMES`) or one
//!   Step Functions and the integrated services raise;
//! - every Lambda crate under `functions/` is exactly one function of the stack, with its own
//!   log group;
//! - the control-plane API requires IAM on every route but the GitHub webhook's, which is the
//!   path `slipway dev` serves too;
//! - every `SLIPWAY_*` variable the stack sets is one the code reads, and each function gets
//!   the ones its configuration requires;
//! - the housekeeping function runs on a schedule and on every deploy-site execution that ends
//!   without succeeding, may do what MarkFailed may, and waits longer than any deploy can run
//!   before it calls a deployment interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_yaml::Value as Yaml;
use slipway_core::housekeeping::{ExecutionEnd, IN_FLIGHT_LIMIT, UPLOAD_WINDOW};
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

/// The value of a short-form intrinsic such as `!Ref X` or `!Sub "..."`, when it is a string.
fn intrinsic<'a>(value: &'a Yaml, tag: &str) -> Option<&'a str> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == tag => tagged.value.as_str(),
        _ => None,
    }
}

/// The stack's Lambda functions by the binary (crate) each one runs.
fn stack_functions(template: &Yaml) -> BTreeMap<String, &Yaml> {
    let mut functions = BTreeMap::new();
    for (logical, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let logical = logical.as_str().unwrap();
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{logical}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical} names no Binary"));
        assert!(
            functions.insert(binary.to_owned(), resource).is_none(),
            "two functions run {binary}"
        );
    }
    functions
}

/// Crates under `functions/` that are Lambda functions: a binary built on slipway-lambda.
fn lambda_crates() -> BTreeSet<String> {
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if dir.join("src/main.rs").is_file() && manifest.contains("slipway-lambda") {
            crates.insert(dir.file_name().unwrap().to_str().unwrap().to_owned());
        }
    }
    crates
}

/// The `SLIPWAY_*` names a function's environment sets: the stack's Globals and its own.
fn variables(template: &Yaml, function: &Yaml) -> BTreeSet<String> {
    [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ]
    .into_iter()
    .filter_map(Yaml::as_mapping)
    .flat_map(|variables| variables.keys())
    .map(|name| name.as_str().unwrap().to_owned())
    .filter(|name| name.starts_with("SLIPWAY_"))
    .collect()
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

#[test]
fn every_lambda_crate_is_one_function_of_the_stack_with_its_own_logs() {
    let template = template();
    let functions = stack_functions(&template);
    let crates = lambda_crates();
    assert!(crates.contains("github-webhook"), "{crates:?}");
    assert_eq!(
        functions.keys().cloned().collect::<BTreeSet<_>>(),
        crates,
        "stack functions vs Lambda crates under functions/"
    );
    for (binary, function) in &functions {
        // cargo-lambda builds the crate from the workspace root.
        assert_eq!(function["Properties"]["CodeUri"], "..", "{binary}");
        let logs = intrinsic(&function["Properties"]["LoggingConfig"]["LogGroup"], "Ref")
            .unwrap_or_else(|| panic!("{binary} must log to !Ref <its LogGroup>"));
        let group = &template["Resources"][logs];
        assert_eq!(group["Type"], "AWS::Logs::LogGroup", "{binary}");
        assert_eq!(
            intrinsic(&group["Properties"]["LogGroupName"], "Sub"),
            Some(format!("/slipway/${{AWS::StackName}}/{binary}").as_str()),
            "{binary}"
        );
        assert_eq!(group["Condition"], function["Condition"], "{binary}'s logs");
    }
}

#[test]
fn only_the_github_webhook_route_skips_iam() {
    const WEBHOOK_PATH: &str = "/webhooks/github";
    let template = template();
    let apis: Vec<&Yaml> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::HttpApi")
        .collect();
    assert_eq!(apis.len(), 1, "one control-plane API");
    let auth = &apis[0]["Properties"]["Auth"];
    assert_eq!(auth["EnableIamAuthorizer"], true);
    assert_eq!(auth["DefaultAuthorizer"], "AWS_IAM");

    let mut public = Vec::new();
    for (binary, function) in stack_functions(&template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values().filter(|e| e["Type"] == "HttpApi") {
            let properties = &event["Properties"];
            match properties["Auth"]["Authorizer"].as_str() {
                None | Some("AWS_IAM") => {}
                Some("NONE") => public.push((
                    binary.clone(),
                    properties["Method"].as_str().unwrap().to_owned(),
                    properties["Path"].as_str().unwrap().to_owned(),
                )),
                Some(other) => panic!("{binary}: unknown authorizer {other}"),
            }
        }
    }
    assert_eq!(
        public,
        [(
            "github-webhook".to_owned(),
            "POST".to_owned(),
            WEBHOOK_PATH.to_owned()
        )],
        "routes without IAM"
    );
    // `slipway dev` serves GitHub deliveries at the same path, so one webhook setup fits both.
    let dev = std::fs::read_to_string(repo().join("functions/local/src/dev.rs")).unwrap();
    assert!(dev.contains(&format!("\"{WEBHOOK_PATH}\"")));
}

#[test]
fn every_variable_the_stack_sets_is_one_the_code_reads() {
    let config = std::fs::read_to_string(repo().join("functions/lambda/src/config.rs")).unwrap();
    let reads = |name: &str| config.contains(&format!("\"{name}\""));
    let template = template();
    let functions = stack_functions(&template);
    for (binary, function) in &functions {
        let set = variables(&template, function);
        for name in &set {
            assert!(
                reads(name),
                "{binary} sets {name}, which functions/lambda/src/config.rs does not read"
            );
        }
        // What each function's settings require and have no default for.
        let mut required = vec!["SLIPWAY_TABLE"];
        match binary.as_str() {
            "source-trigger" => {
                required.extend(["SLIPWAY_SOURCE_BUCKET", "SLIPWAY_STATE_MACHINE_ARN"])
            }
            _ => {
                required.extend([
                    "SLIPWAY_SOURCE_BUCKET",
                    "SLIPWAY_ARTIFACTS_BUCKET",
                    "SLIPWAY_HOSTING_BUCKET",
                    "SLIPWAY_KVS_ARN",
                    "SLIPWAY_SITE_DOMAIN",
                ]);
                if binary == "github-webhook" {
                    required.extend(["SLIPWAY_STATE_MACHINE_ARN", "SLIPWAY_GITHUB_WEBHOOK_SECRET"]);
                }
            }
        }
        for name in required {
            assert!(reads(name), "config.rs no longer reads {name}");
            assert!(set.contains(name), "{binary} needs {name}");
        }
    }
    // The GitHub token reaches exactly the functions that send commit statuses or read commits.
    let with_token: BTreeSet<&str> = functions
        .iter()
        .filter(|(_, f)| variables(&template, f).contains("SLIPWAY_GITHUB_TOKEN"))
        .map(|(binary, _)| binary.as_str())
        .collect();
    assert_eq!(
        with_token,
        BTreeSet::from(["activate", "housekeeping", "mark-failed", "prepare"])
    );
}

/// The stack's function that runs `binary`.
fn function_running<'a>(template: &'a Yaml, binary: &str) -> &'a Yaml {
    stack_functions(template)
        .remove(binary)
        .unwrap_or_else(|| panic!("no function runs {binary}"))
}

/// A function's events of one SAM event type.
fn events_of<'a>(function: &'a Yaml, kind: &str) -> Vec<&'a Yaml> {
    function["Properties"]["Events"]
        .as_mapping()
        .into_iter()
        .flat_map(|events| events.values())
        .filter(|event| event["Type"] == kind)
        .collect()
}

/// `rate(5 minutes)`, `rate(1 hour)` → seconds.
fn rate_seconds(expression: &str) -> u64 {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{expression} is not a rate expression"));
    let (count, unit) = inner.split_once(' ').unwrap();
    let count: u64 = count.parse().unwrap();
    count
        * match unit.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => panic!("unit {other}"),
        }
}

#[test]
fn housekeeping_runs_on_a_schedule_and_on_every_execution_that_ends_badly() {
    let template = template();
    let function = function_running(&template, "housekeeping");

    let schedules = events_of(function, "Schedule");
    assert_eq!(schedules.len(), 1, "one schedule");
    let period = rate_seconds(schedules[0]["Properties"]["Schedule"].as_str().unwrap());
    // An abandoned upload is failed within a period of its window.
    assert!(period <= UPLOAD_WINDOW.whole_seconds() as u64, "{period}s");

    let rules = events_of(function, "EventBridgeRule");
    assert_eq!(rules.len(), 1, "one rule for ended executions");
    let pattern = &rules[0]["Properties"]["Pattern"];
    assert_eq!(pattern["source"], Yaml::from(vec!["aws.states"]));
    let handler =
        std::fs::read_to_string(repo().join("functions/housekeeping/src/event.rs")).unwrap();
    let detail_type = pattern["detail-type"][0].as_str().unwrap();
    assert_eq!(pattern["detail-type"].as_sequence().unwrap().len(), 1);
    assert!(
        handler.contains(&format!("{detail_type:?}")),
        "the handler must know {detail_type:?}"
    );
    // Only the stack's own state machine, and every status that leaves a run unfinished.
    let machines = pattern["detail"]["stateMachineArn"].as_sequence().unwrap();
    let logical = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::Serverless::StateMachine")
        .map(|(name, _)| name.as_str().unwrap())
        .unwrap();
    assert_eq!(machines.len(), 1);
    assert_eq!(intrinsic(&machines[0], "Ref"), Some(logical));
    let statuses: BTreeSet<&str> = pattern["detail"]["status"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let ends: BTreeSet<&str> = ExecutionEnd::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(statuses, ends);
}

/// A role's statements other than its log group's, as (action, resource) pairs.
fn grants(role: &Yaml) -> Vec<(String, Yaml)> {
    let mut grants = Vec::new();
    for policy in role["Properties"]["Policies"].as_sequence().unwrap() {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            if statement["Sid"] == "Logs" {
                continue;
            }
            assert_eq!(statement["Effect"], "Allow");
            let one_or_many = |value: &Yaml| match value.as_sequence() {
                Some(list) => list.clone(),
                None => vec![value.clone()],
            };
            for action in one_or_many(&statement["Action"]) {
                for resource in one_or_many(&statement["Resource"]) {
                    grants.push((action.as_str().unwrap().to_owned(), resource));
                }
            }
        }
    }
    grants
}

/// The logical id of the role `binary`'s function runs with.
fn role_of<'a>(template: &'a Yaml, binary: &str) -> &'a Yaml {
    let function = function_running(template, binary);
    let role = get_att_target(&function["Properties"]["Role"])
        .unwrap_or_else(|| panic!("{binary}'s Role must be !GetAtt <Role>.Arn"));
    &template["Resources"][role.as_str()]
}

#[test]
fn housekeeping_may_do_what_markfailed_may_and_look_for_uploads() {
    // Both fail deployments with the very mark_failed; housekeeping also heads sources.
    let template = template();
    let housekeeping = grants(role_of(&template, "housekeeping"));
    for grant in grants(role_of(&template, "mark-failed")) {
        assert!(
            housekeeping.contains(&grant),
            "housekeeping lacks {grant:?}, which MarkFailed has"
        );
    }
    let heads = |prefix: &str| {
        housekeeping.iter().any(|(action, resource)| {
            action == "s3:GetObject"
                && intrinsic(resource, "Sub")
                    == Some(format!("${{SourceBucket.Arn}}/{prefix}/*").as_str())
        })
    };
    assert!(heads("uploads") && heads("sites"));
    assert!(housekeeping
        .iter()
        .any(|(action, resource)| action == "s3:ListBucket"
            && get_att_target(resource).as_deref() == Some("SourceBucket")));
    // It starts, stops and describes nothing: the events carry what it needs.
    assert!(
        housekeeping
            .iter()
            .all(|(action, _)| !action.starts_with("states:")),
        "{housekeeping:?}"
    );
}

/// A number of minutes a template value allows: a number, the largest branch of an `!If`, or
/// `unset` where a branch is `!Ref AWS::NoValue` (the service's default applies).
fn minutes(value: &Yaml, unset: u64) -> u64 {
    match value {
        Yaml::Number(n) => n.as_u64().unwrap(),
        Yaml::Tagged(tagged) if tagged.tag == "If" => {
            let branches = tagged.value.as_sequence().unwrap();
            branches[1..]
                .iter()
                .map(|b| minutes(b, unset))
                .max()
                .unwrap()
        }
        Yaml::Tagged(tagged) if tagged.tag == "Ref" && tagged.value == "AWS::NoValue" => unset,
        Yaml::Null => unset,
        other => panic!("not a number of minutes: {other:?}"),
    }
}

/// The longest a task state can hold a deployment, in seconds: every attempt its retriers
/// allow, each up to `attempt` seconds, and the longest wait before each retry.
fn task_bound(state: &Value, attempt: u64, retried_after_full_attempt: bool) -> u64 {
    let attempt = state["TimeoutSeconds"]
        .as_u64()
        .map_or(attempt, |t| t.min(attempt));
    let mut total = attempt;
    for retrier in state["Retry"].as_array().into_iter().flatten() {
        let retries = retrier["MaxAttempts"].as_u64().unwrap_or(3);
        let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
        let rate = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
        for k in 0..retries {
            let backoff = (interval * rate.powi(k as i32)).ceil() as u64;
            let delay = retrier["MaxDelaySeconds"]
                .as_u64()
                .map_or(backoff, |max| max.min(backoff));
            total += delay
                + if retried_after_full_attempt {
                    attempt
                } else {
                    0
                };
        }
    }
    total
}

#[test]
fn housekeeping_waits_longer_than_any_deploy_can_run() {
    let (_, def) = definition();
    let template = template();
    let resources = &template["Resources"];
    let substitutions = &state_machine(&template)["Properties"]["DefinitionSubstitutions"];
    let states = def["States"].as_object().unwrap();
    // Once Activate succeeded the deployment is finished: what follows holds nothing in flight.
    let mut after_activate = BTreeSet::new();
    let mut next = states["Activate"]["Next"].as_str();
    while let Some(name) = next {
        after_activate.insert(name);
        next = states[name]["Next"].as_str();
    }
    assert!(after_activate.contains("Prune"), "{after_activate:?}");

    let default_timeout = template["Globals"]["Function"]["Timeout"].as_u64().unwrap();
    let mut steps = 0;
    let mut longest_build = 0;
    for (name, state) in states {
        if state["Type"] != "Task" || after_activate.contains(name.as_str()) {
            continue;
        }
        let resource = state["Resource"].as_str().unwrap();
        if resource == "arn:aws:states:::codebuild:startBuild.sync" {
            // The build's own limit plus its queue's: where the project sets none (Lambda
            // compute), CodeBuild's defaults, 60 minutes and 8 hours, are taken. The retried
            // CodeBuild errors are StartBuild's, raised before a build runs.
            let project = &resources["BuildProject"]["Properties"];
            let limit = 60
                * (minutes(&project["TimeoutInMinutes"], 60)
                    + minutes(&project["QueuedTimeoutInMinutes"], 480));
            longest_build = longest_build.max(task_bound(state, limit, false));
        } else {
            let variable = resource
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .unwrap();
            let logical = get_att_target(&substitutions[variable]).unwrap();
            let timeout = resources[logical.as_str()]["Properties"]["Timeout"]
                .as_u64()
                .unwrap_or(default_timeout);
            // A retried error may come at the very end of an attempt.
            steps += task_bound(state, timeout, true);
        }
    }
    let schedules = events_of(function_running(&template, "housekeeping"), "Schedule");
    let period = rate_seconds(schedules[0]["Properties"]["Schedule"].as_str().unwrap());
    // A deployment leaves queued within the upload window (and a sweep's period), or is failed.
    let longest = UPLOAD_WINDOW.whole_seconds() as u64 + period + steps + longest_build;
    assert!(
        longest < IN_FLIGHT_LIMIT.whole_seconds() as u64,
        "a deploy may stay in flight {longest}s, past housekeeping's {IN_FLIGHT_LIMIT}"
    );
    // Sanity: the sum counts the build and the Lambda steps (about 11.6 hours today).
    assert!(longest > 8 * 3600, "{longest}s");
}
