//! The embedded Step Functions: runs each registered workflow's definition
//! (`statemachines/{workflow}.asl.json`) with the ASL interpreter, mapping each Lambda task
//! resource to the same in-process handler its Lambda crate wraps, and
//! `codebuild:startBuild.sync` to the local builder. A workflow is a [`LocalDefinition`]:
//! its definition and its [`LocalFunctions`]; adding one touches no other.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use slipway_asl::{
    ExecutionMeta, NoopObserver, StateMachine, TaskContext, TaskFailure, TaskInvoker,
};
use slipway_core::housekeeping::fail_if_in_flight;
use slipway_core::model::ObjectLocation;
use slipway_core::names::CommitSha;
use slipway_core::ports::{
    BuildError, BuildRequest, BuildSource, Builder, DeployRequest, StartOutcome, Workflow,
    WorkflowError, WorkflowStarter,
};
use slipway_core::steps::{
    self, BucketNames, CaughtError, DeploySiteTasks, StepError, SOURCE_TYPE_GITHUB, SOURCE_TYPE_S3,
};
use time::OffsetDateTime;

use crate::sqlite::SqliteState;

/// The deploy-site flow's definition, compiled into the binary: the very file the stack deploys.
pub const DEPLOY_SITE_ASL: &str = include_str!("../../../statemachines/deploy-site.asl.json");

const ACCOUNT: &str = "000000000000";
const BUILD_PROJECT: &str = "slipway-local";
const CODEBUILD_SYNC: &str = "arn:aws:states:::codebuild:startBuild.sync";

/// deploy-site's Lambda functions, by substitution variable.
pub const SITE_FUNCTIONS: &[(&str, &str)] = &[
    ("PrepareFunctionArn", "prepare"),
    ("PublishFunctionArn", "publish"),
    ("ActivateFunctionArn", "activate"),
    ("PruneFunctionArn", "prune"),
    ("MarkFailedFunctionArn", "mark-failed"),
];

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:local:{ACCOUNT}:function:slipway-{name}")
}

/// The function of `functions` a task resource names (the inverse of [`function_arn`]).
fn local_function<'a>(functions: &[(&str, &'a str)], resource: &str) -> Option<&'a str> {
    let name = resource
        .strip_prefix("arn:aws:lambda:local:")?
        .strip_prefix(ACCOUNT)?
        .strip_prefix(":function:slipway-")?;
    functions.iter().map(|(_, n)| *n).find(|n| *n == name)
}

/// The DefinitionSubstitutions `slipway dev` gives a definition whose Lambda functions are
/// `functions` (the SAM stack passes real ARNs).
pub fn local_substitutions(
    functions: &[(&str, &str)],
    artifacts_bucket: &str,
) -> BTreeMap<String, String> {
    let mut subs: BTreeMap<String, String> = functions
        .iter()
        .map(|(var, name)| ((*var).to_owned(), function_arn(name)))
        .collect();
    subs.insert("BuildProjectName".into(), BUILD_PROJECT.into());
    subs.insert("ArtifactsBucketName".into(), artifacts_bucket.into());
    subs
}

/// In-process stand-ins for the Lambda functions one workflow's task resources name.
#[async_trait]
pub trait LocalFunctions: Send + Sync {
    /// (DefinitionSubstitutions variable, function name) of each function.
    fn names(&self) -> &'static [(&'static str, &'static str)];

    /// Runs function `name` on `input`, as its Lambda would.
    async fn call(&self, name: &str, input: Value) -> Result<Value, TaskFailure>;

    /// Records a failure the execution did not catch on a deployment still in flight.
    async fn fail_in_flight(&self, request: DeployRequest, error: &str, cause: &str);
}

/// One workflow `slipway dev` runs.
pub struct LocalDefinition {
    pub workflow: Workflow,
    /// The ASL, the same text the stack deploys.
    pub asl: &'static str,
    pub functions: Arc<dyn LocalFunctions>,
}

impl LocalDefinition {
    /// deploy-site: the site steps, each on its own dependencies.
    pub fn deploy_site(tasks: DeploySiteTasks) -> Self {
        Self {
            workflow: Workflow::DeploySite,
            asl: DEPLOY_SITE_ASL,
            functions: Arc::new(SiteFunctions { tasks }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowSetupError {
    #[error("the {workflow} definition is invalid: {source}")]
    Definition {
        workflow: Workflow,
        #[source]
        source: slipway_asl::DefinitionError,
    },
    #[error("the {workflow} definition names a task resource slipway dev cannot run: {resource}")]
    UnknownResource {
        workflow: Workflow,
        resource: String,
    },
}

/// Whether `resource` (after substitution) is one a workflow whose Lambda functions are
/// `functions` runs in process.
pub fn is_local_resource(functions: &[(&str, &str)], resource: &str) -> bool {
    resource == CODEBUILD_SYNC || local_function(functions, resource).is_some()
}

/// StartBuild parameters the definition passed that the local builder cannot act on.
#[derive(Debug, thiserror::Error)]
enum BuildParametersError {
    #[error("StartBuild parameter {0} is missing")]
    Missing(&'static str),
    #[error("SourceLocationOverride must be bucket/key, not {0:?}")]
    SourceLocation(String),
    #[error("no local bucket is named {0:?}")]
    UnknownBucket(String),
    #[error("SourceTypeOverride {0:?} is not supported; use S3 or GITHUB")]
    SourceType(String),
    #[error("SourceVersion must be a full commit sha, not {0:?}")]
    SourceVersion(String),
}

/// Runs the registered workflows, each execution once per name.
#[derive(Clone)]
pub struct LocalWorkflow {
    inner: Arc<Inner>,
}

struct Inner {
    machines: BTreeMap<Workflow, Machine>,
    executions: SqliteState,
}

/// A registered workflow: its compiled definition and what runs its tasks.
struct Machine {
    definition: StateMachine,
    tasks: LocalTasks,
}

struct LocalTasks {
    functions: Arc<dyn LocalFunctions>,
    builder: Arc<dyn Builder>,
    buckets: BucketNames,
}

impl LocalWorkflow {
    /// Compiles each definition with the local substitutions; a task resource no local
    /// function stands in for is refused here, not in the middle of a deploy.
    pub fn new(
        definitions: Vec<LocalDefinition>,
        builder: Arc<dyn Builder>,
        buckets: BucketNames,
        executions: SqliteState,
    ) -> Result<Self, WorkflowSetupError> {
        let mut machines = BTreeMap::new();
        for LocalDefinition {
            workflow,
            asl,
            functions,
        } in definitions
        {
            let subs = local_substitutions(functions.names(), &buckets.artifacts);
            let definition = StateMachine::parse_with_substitutions(asl, &subs)
                .map_err(|source| WorkflowSetupError::Definition { workflow, source })?;
            if let Some(unknown) = definition
                .task_resources()
                .into_iter()
                .find(|r| !is_local_resource(functions.names(), r))
            {
                return Err(WorkflowSetupError::UnknownResource {
                    workflow,
                    resource: unknown.to_owned(),
                });
            }
            let tasks = LocalTasks {
                functions,
                builder: Arc::clone(&builder),
                buckets: buckets.clone(),
            };
            machines.insert(workflow, Machine { definition, tasks });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                machines,
                executions,
            }),
        })
    }

    /// Runs one execution to its end and records how it ended.
    async fn run(inner: Arc<Inner>, workflow: Workflow, name: String, input: Value) {
        let Some(machine) = inner.machines.get(&workflow) else {
            return;
        };
        let state_machine = workflow.name();
        let meta = ExecutionMeta {
            name: name.clone(),
            id: format!("arn:aws:states:local:{ACCOUNT}:execution:{state_machine}:{name}"),
            start_time: OffsetDateTime::now_utc(),
            role_arn: None,
            state_machine_id: format!(
                "arn:aws:states:local:{ACCOUNT}:stateMachine:{state_machine}"
            ),
            state_machine_name: state_machine.to_owned(),
        };
        let input_copy = input.clone();
        let result = slipway_asl::execute(
            &machine.definition,
            meta,
            input,
            &machine.tasks,
            &NoopObserver,
        )
        .await;
        let (status, error) = match &result {
            Ok(_) => ("SUCCEEDED", None),
            Err(failure) => (
                "FAILED",
                Some((failure.error.clone(), failure.cause.clone())),
            ),
        };
        tracing::info!(execution = %name, status, "execution finished");
        // MarkFailed normally ran already; a failure nothing may catch (States.Runtime, or
        // MarkFailed itself giving up) must still not leave the deployment in flight.
        if let (Err(failure), Ok(request)) =
            (&result, serde_json::from_value::<DeployRequest>(input_copy))
        {
            machine
                .tasks
                .functions
                .fail_in_flight(request, &failure.error, &failure.cause)
                .await;
        }
        if let Err(e) = inner
            .executions
            .finish_execution(&name, status, error)
            .await
        {
            tracing::error!(execution = %name, error = %e, "cannot record the execution's end");
        }
    }

    /// Deployments whose execution was cut off by a restart cannot be resumed mid-step:
    /// they are marked failed through the same MarkFailed handler, with a clear reason.
    pub async fn fail_interrupted(&self) -> Result<usize, slipway_core::ports::StateError> {
        let running = self.inner.executions.running_executions().await?;
        for execution in &running {
            let machine = execution
                .workflow
                .and_then(|workflow| self.inner.machines.get(&workflow));
            let request = serde_json::from_str::<DeployRequest>(&execution.input);
            if let (Some(machine), Ok(request)) = (machine, request) {
                let cause =
                    "slipway dev stopped while this deployment was in flight; deploy it again";
                machine
                    .tasks
                    .functions
                    .fail_in_flight(request, "Interrupted", cause)
                    .await;
            }
            let error = Some(("Interrupted".to_owned(), "the process stopped".to_owned()));
            self.inner
                .executions
                .finish_execution(&execution.name, "ABORTED", error)
                .await?;
        }
        Ok(running.len())
    }
}

#[async_trait]
impl WorkflowStarter for LocalWorkflow {
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        request: &DeployRequest,
    ) -> Result<StartOutcome, WorkflowError> {
        if !self.inner.machines.contains_key(&workflow) {
            return Err(WorkflowError::NotRegistered(workflow));
        }
        let input =
            serde_json::to_value(request).map_err(|e| WorkflowError::Unavailable(Box::new(e)))?;
        let fresh = self
            .inner
            .executions
            .insert_execution(execution_name, workflow, &input.to_string())
            .await
            .map_err(|e| WorkflowError::Unavailable(Box::new(e)))?;
        if !fresh {
            return Ok(StartOutcome::AlreadyStarted);
        }
        tokio::spawn(Self::run(
            Arc::clone(&self.inner),
            workflow,
            execution_name.to_owned(),
            input,
        ));
        Ok(StartOutcome::Started)
    }
}

fn step_failure(e: StepError) -> TaskFailure {
    TaskFailure {
        error: e.name().to_owned(),
        cause: e.to_string(),
    }
}

/// Decodes a task's input like the Lambda runtime does, runs the handler, encodes its output.
async fn call<I, O, F, Fut>(input: Value, handler: F) -> Result<Value, TaskFailure>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I) -> Fut,
    Fut: std::future::Future<Output = Result<O, StepError>>,
{
    let typed: I =
        serde_json::from_value(input).map_err(|e| step_failure(StepError::InvalidInput(e)))?;
    let output = handler(typed).await.map_err(step_failure)?;
    serde_json::to_value(output).map_err(|e| step_failure(StepError::InvalidInput(e)))
}

/// deploy-site's functions: the site steps.
struct SiteFunctions {
    tasks: DeploySiteTasks,
}

#[async_trait]
impl LocalFunctions for SiteFunctions {
    fn names(&self) -> &'static [(&'static str, &'static str)] {
        SITE_FUNCTIONS
    }

    async fn call(&self, name: &str, input: Value) -> Result<Value, TaskFailure> {
        let t = &self.tasks;
        match name {
            "prepare" => call(input, |i| steps::prepare(&t.prepare, i)).await,
            "publish" => call(input, |i| steps::publish(&t.publish, i)).await,
            "activate" => call(input, |i| steps::activate(&t.activate, i)).await,
            "prune" => call(input, |i| steps::prune(&t.prune, i)).await,
            "mark-failed" => call(input, |i| steps::mark_failed(&t.mark_failed, i)).await,
            _ => Err(TaskFailure {
                error: "States.Runtime".into(),
                cause: format!("deploy-site has no function {name}"),
            }),
        }
    }

    /// Records a failure on a deployment still in flight (MarkFailed leaves finished ones be).
    async fn fail_in_flight(&self, request: DeployRequest, error: &str, cause: &str) {
        let error = CaughtError {
            error: error.to_owned(),
            cause: cause.to_owned(),
        };
        let failed = fail_if_in_flight(
            &self.tasks.mark_failed,
            &request.site,
            &request.deployment_id,
            error,
        )
        .await;
        if let Err(e) = failed {
            tracing::error!(deployment_id = %request.deployment_id, error = %e, "cannot mark the deployment failed");
        }
    }
}

impl LocalTasks {
    async fn start_build_sync(&self, parameters: Value) -> Result<Value, TaskFailure> {
        let request = build_request(&self.buckets, &parameters).map_err(|e| TaskFailure {
            error: "States.Runtime".into(),
            cause: e.to_string(),
        })?;
        match self.builder.run(request).await {
            Ok(report) => Ok(json!({
                "Build": {
                    "Id": report.build_id,
                    "Arn": format!("arn:aws:codebuild:local:{ACCOUNT}:build/{}", report.build_id),
                    "BuildStatus": "SUCCEEDED",
                    "ProjectName": BUILD_PROJECT,
                }
            })),
            // The same shape Step Functions gives for a failed startBuild.sync: the build document.
            Err(e) => Err(TaskFailure {
                error: "States.TaskFailed".into(),
                cause: failed_build_document(&e).to_string(),
            }),
        }
    }
}

/// Reads StartBuild's override parameters back into a build request.
fn build_request(
    buckets: &BucketNames,
    parameters: &Value,
) -> Result<BuildRequest, BuildParametersError> {
    let text = |pointer: &'static str| {
        parameters
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or(BuildParametersError::Missing(pointer))
    };
    let bucket = |name: &str| {
        buckets
            .bucket_named(name)
            .ok_or_else(|| BuildParametersError::UnknownBucket(name.to_owned()))
    };
    let location = text("/SourceLocationOverride")?;
    let source = match text("/SourceTypeOverride")? {
        SOURCE_TYPE_S3 => {
            let (source_bucket, source_key) = location
                .split_once('/')
                .ok_or_else(|| BuildParametersError::SourceLocation(location.to_owned()))?;
            BuildSource::Archive(ObjectLocation {
                bucket: bucket(source_bucket)?,
                key: source_key.to_owned(),
            })
        }
        SOURCE_TYPE_GITHUB => {
            let version = text("/SourceVersion")?;
            let commit = CommitSha::parse(version)
                .map_err(|_| BuildParametersError::SourceVersion(version.to_owned()))?;
            BuildSource::Git {
                url: location.to_owned(),
                commit,
            }
        }
        other => return Err(BuildParametersError::SourceType(other.to_owned())),
    };
    let artifact_bucket = bucket(text("/ArtifactsOverride/Location")?)?;
    let artifact_key = format!(
        "{}/{}",
        text("/ArtifactsOverride/Path")?,
        text("/ArtifactsOverride/Name")?
    );
    let env = parameters
        .get("EnvironmentVariablesOverride")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|var| {
            Some((
                var.get("Name")?.as_str()?.to_owned(),
                var.get("Value")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok(BuildRequest {
        source,
        buildspec: text("/BuildspecOverride")?.to_owned(),
        artifact: ObjectLocation {
            bucket: artifact_bucket,
            key: artifact_key,
        },
        env,
    })
}

fn failed_build_document(error: &BuildError) -> Value {
    // CodeBuild's own wording for a failed command, so both builders read the same.
    let message = match error {
        BuildError::CommandFailed {
            command, status, ..
        } => {
            format!("Error while executing command: {command}. Reason: {status}")
        }
        other => other.to_string(),
    };
    json!({
        "BuildStatus": "FAILED",
        "ProjectName": BUILD_PROJECT,
        "Phases": [{
            "PhaseType": error.phase(),
            "PhaseStatus": "FAILED",
            "Contexts": [{ "StatusCode": "COMMAND_EXECUTION_ERROR", "Message": message }]
        }]
    })
}

#[async_trait]
impl TaskInvoker for LocalTasks {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        _ctx: &TaskContext,
    ) -> Result<Value, TaskFailure> {
        if resource == CODEBUILD_SYNC {
            return self.start_build_sync(input).await;
        }
        match local_function(self.functions.names(), resource) {
            Some(name) => self.functions.call(name, input).await,
            None => Err(TaskFailure {
                error: "States.Runtime".into(),
                cause: format!("no local implementation of resource {resource}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use slipway_core::model::Bucket;

    use super::*;
    use crate::dev::local_buckets;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn parameters(source: Value) -> Value {
        let mut p = json!({
            "ProjectName": BUILD_PROJECT,
            "BuildspecOverride": "version: 0.2",
            "ArtifactsOverride": {
                "Type": "S3",
                "Location": "slipway-artifacts",
                "Path": "builds/docs/01jd",
                "Name": "output.zip",
            },
            "EnvironmentVariablesOverride": [
                { "Name": "SLIPWAY_SITE", "Value": "docs", "Type": "PLAINTEXT" },
            ],
        });
        if let (Some(p), Some(source)) = (p.as_object_mut(), source.as_object()) {
            p.extend(source.clone());
        }
        p
    }

    #[test]
    fn an_s3_source_becomes_an_archive() {
        let request = build_request(
            &local_buckets(),
            &parameters(json!({
                "SourceTypeOverride": "S3",
                "SourceLocationOverride": "slipway-source/uploads/docs/a.zip",
            })),
        )
        .unwrap();
        assert_eq!(
            request.source,
            BuildSource::Archive(ObjectLocation {
                bucket: Bucket::Source,
                key: "uploads/docs/a.zip".into(),
            })
        );
        assert_eq!(request.artifact.bucket, Bucket::Artifacts);
        assert_eq!(request.artifact.key, "builds/docs/01jd/output.zip");
        assert_eq!(
            request.env,
            vec![("SLIPWAY_SITE".to_owned(), "docs".to_owned())]
        );
    }

    #[test]
    fn a_github_source_becomes_a_commit_to_check_out() {
        let request = build_request(
            &local_buckets(),
            &parameters(json!({
                "SourceTypeOverride": "GITHUB",
                "SourceLocationOverride": "file:///tmp/repo.git",
                "SourceVersion": SHA,
            })),
        )
        .unwrap();
        assert_eq!(
            request.source,
            BuildSource::Git {
                url: "file:///tmp/repo.git".into(),
                commit: CommitSha::parse(SHA).unwrap(),
            }
        );
    }

    #[test]
    fn unusable_source_parameters_are_refused() {
        let cases = [
            (
                json!({ "SourceTypeOverride": "GITHUB", "SourceLocationOverride": "file:///r" }),
                "SourceVersion",
            ),
            (
                json!({
                    "SourceTypeOverride": "GITHUB",
                    "SourceLocationOverride": "file:///r",
                    "SourceVersion": "main",
                }),
                "full commit sha",
            ),
            (
                json!({ "SourceTypeOverride": "CODECOMMIT", "SourceLocationOverride": "x" }),
                "not supported",
            ),
            (
                json!({ "SourceTypeOverride": "S3", "SourceLocationOverride": "nowhere/a.zip" }),
                "no local bucket",
            ),
            (
                json!({ "SourceLocationOverride": "slipway-source/a.zip" }),
                "SourceTypeOverride",
            ),
        ];
        for (source, expected) in cases {
            let err = build_request(&local_buckets(), &parameters(source.clone())).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{source}: {err} should mention {expected}"
            );
        }
    }
}
