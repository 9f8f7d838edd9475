//! The Step Functions adapter against moto. moto does not run the definition by default
//! (executions stay RUNNING with a canned history), which is all these tests need; the
//! shared moto instance is never switched to executing state machines.

mod support;

use slipway_aws::sfn::{ExecutionState, SfnError, SfnWorkflow, StateMachineArn};
use slipway_core::model::Bucket;
use slipway_core::model::{DeploymentSource, GitSource, ObjectLocation};
use slipway_core::names::{BranchName, CommitSha, DeploymentId, RepoName, SiteName};
use slipway_core::ports::{DeployRequest, StartOutcome, WorkflowError, WorkflowStarter};
use slipway_core::trigger::execution_name;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/slipway-deploy-site";
const DEFINITION: &str = r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#;

struct Harness {
    workflow: SfnWorkflow,
    raw: aws_sdk_sfn::Client,
    arn: String,
}

async fn harness() -> Harness {
    let config = support::sdk_config(&support::moto_url());
    let raw = aws_sdk_sfn::Client::new(&config);
    let created = raw
        .create_state_machine()
        .name(support::unique("deploy-site"))
        .definition(DEFINITION)
        .role_arn(ROLE_ARN)
        .send()
        .await
        .expect("create the state machine in moto");
    let arn = created.state_machine_arn().to_owned();
    let workflow = SfnWorkflow::new(&config, StateMachineArn::parse(&arn).unwrap());
    Harness { workflow, raw, arn }
}

impl Harness {
    async fn execution_count(&self) -> usize {
        self.raw
            .list_executions()
            .state_machine_arn(&self.arn)
            .send()
            .await
            .unwrap()
            .executions()
            .len()
    }

    async fn raw_input(&self, name: &str) -> String {
        let arn = self
            .workflow
            .state_machine_arn()
            .execution_arn(&slipway_aws::sfn::ExecutionName::parse(name).unwrap());
        self.raw
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap()
            .input()
            .unwrap()
            .to_owned()
    }
}

fn request(key: &str) -> DeployRequest {
    DeployRequest {
        site: SiteName::parse("docs").unwrap(),
        deployment_id: DeploymentId::generate(),
        source: DeploymentSource::Archive(ObjectLocation {
            bucket: Bucket::Source,
            key: key.to_owned(),
        }),
        prebuilt: false,
    }
}

#[tokio::test]
async fn a_start_runs_the_state_machine_with_the_deploy_request_as_input() {
    let h = harness().await;
    let req = request("sites/docs/site.zip");
    let name = execution_name(&req.deployment_id);

    let outcome = h.workflow.start(&name, &req).await.unwrap();

    assert_eq!(outcome, StartOutcome::Started);
    assert_eq!(h.execution_count().await, 1);
    let input: DeployRequest = serde_json::from_str(&h.raw_input(&name).await).unwrap();
    assert_eq!(input, req);
    let status = h.workflow.describe(&name).await.unwrap();
    assert_eq!(status.name, name);
    assert_eq!(status.state, ExecutionState::Running);
    assert!(status.stopped_at.is_none());
    assert!(status.arn.ends_with(&format!(
        ":execution:{}:{name}",
        h.arn.rsplit(':').next().unwrap()
    )));
}

#[tokio::test]
async fn a_git_source_reaches_the_state_machine_intact() {
    let h = harness().await;
    let req = DeployRequest {
        source: DeploymentSource::Git(GitSource {
            repo: RepoName::parse("acme/docs").unwrap(),
            clone_url: "https://github.com/acme/docs.git".into(),
            sha: CommitSha::parse("4b825dc642cb6eb9a060e54bf8d69288fbee4904").unwrap(),
            branch: BranchName::parse("feature/login").unwrap(),
            pull_request: Some(7),
            root: None,
        }),
        ..request("unused")
    };
    let name = execution_name(&req.deployment_id);

    h.workflow.start(&name, &req).await.unwrap();

    let input: DeployRequest = serde_json::from_str(&h.raw_input(&name).await).unwrap();
    assert_eq!(input, req);
}

#[tokio::test]
async fn the_same_name_and_input_again_is_already_started() {
    let h = harness().await;
    let req = request("sites/docs/site.zip");
    let name = execution_name(&req.deployment_id);
    assert_eq!(
        h.workflow.start(&name, &req).await.unwrap(),
        StartOutcome::Started
    );

    let again = h.workflow.start(&name, &req).await.unwrap();

    assert_eq!(again, StartOutcome::AlreadyStarted);
    assert_eq!(h.execution_count().await, 1);
}

#[tokio::test]
async fn the_same_name_with_another_input_is_already_started() {
    let h = harness().await;
    let req = request("sites/docs/site.zip");
    let name = execution_name(&req.deployment_id);
    assert_eq!(
        h.workflow.start(&name, &req).await.unwrap(),
        StartOutcome::Started
    );

    let other = DeployRequest {
        prebuilt: true,
        ..req.clone()
    };
    let again = h.workflow.start(&name, &other).await.unwrap();

    assert_eq!(again, StartOutcome::AlreadyStarted);
    assert_eq!(h.execution_count().await, 1);
    // The first start's input stands.
    let input: DeployRequest = serde_json::from_str(&h.raw_input(&name).await).unwrap();
    assert_eq!(input, req);
}

#[tokio::test]
async fn a_finished_execution_is_not_started_again() {
    let h = harness().await;
    let req = request("sites/docs/site.zip");
    let name = execution_name(&req.deployment_id);
    h.workflow.start(&name, &req).await.unwrap();
    let status = h.workflow.describe(&name).await.unwrap();
    h.raw
        .stop_execution()
        .execution_arn(&status.arn)
        .error("Superseded")
        .cause("a newer upload")
        .send()
        .await
        .unwrap();

    let again = h.workflow.start(&name, &req).await.unwrap();

    assert_eq!(again, StartOutcome::AlreadyStarted);
    assert_eq!(h.execution_count().await, 1);
    let stopped = h.workflow.describe(&name).await.unwrap();
    assert_eq!(stopped.state, ExecutionState::Aborted);
    assert!(stopped.state.is_finished());
    assert!(stopped.stopped_at.is_some());
}

#[tokio::test]
async fn history_lists_the_execution_events_oldest_first() {
    let h = harness().await;
    let req = request("uploads/docs/01jd.zip");
    let name = execution_name(&req.deployment_id);
    h.workflow.start(&name, &req).await.unwrap();

    let history = h.workflow.history(&name).await.unwrap();

    assert!(!history.is_empty());
    assert_eq!(history[0].kind, "ExecutionStarted");
    let ids: Vec<i64> = history.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    // moto's canned history enters and exits a state.
    assert!(history.iter().any(|e| e.state.is_some()));
}

#[tokio::test]
async fn unknown_executions_are_not_found() {
    let h = harness().await;
    let name = execution_name(&DeploymentId::generate());

    assert!(matches!(
        h.workflow.describe(&name).await,
        Err(SfnError::ExecutionNotFound(n)) if n == name
    ));
    assert!(matches!(
        h.workflow.history(&name).await,
        Err(SfnError::ExecutionNotFound(_))
    ));
}

#[tokio::test]
async fn an_invalid_name_starts_nothing() {
    let h = harness().await;
    let req = request("sites/docs/site.zip");

    let result = h.workflow.start("deploy docs/now", &req).await;

    assert!(matches!(result, Err(WorkflowError::Unavailable(_))));
    assert_eq!(h.execution_count().await, 0);
    assert!(matches!(
        h.workflow.describe("deploy docs/now").await,
        Err(SfnError::InvalidName(_))
    ));
}

#[tokio::test]
async fn a_missing_state_machine_is_unavailable_not_started() {
    let config = support::sdk_config(&support::moto_url());
    let missing = format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}",
        support::unique("missing")
    );
    let workflow = SfnWorkflow::new(&config, StateMachineArn::parse(&missing).unwrap());
    let req = request("sites/docs/site.zip");

    let result = workflow
        .start(&execution_name(&req.deployment_id), &req)
        .await;

    assert!(matches!(result, Err(WorkflowError::Unavailable(_))));
}

#[tokio::test]
async fn a_workflow_the_registry_was_not_given_is_refused_by_name() {
    let h = harness().await;
    let registry = slipway_aws::sfn::SfnWorkflows::new();
    let req = request("uploads/docs/unregistered.zip");
    let refused = registry
        .start(
            slipway_core::ports::Workflow::DeploySite,
            &execution_name(&req.deployment_id),
            &req,
        )
        .await;
    assert!(matches!(
        refused,
        Err(WorkflowError::NotRegistered(
            slipway_core::ports::Workflow::DeploySite
        ))
    ));
    assert_eq!(h.execution_count().await, 0, "nothing started");
}
