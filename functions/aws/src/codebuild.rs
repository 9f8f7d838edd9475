//! CodeBuild: one build per deployment, started with per-build overrides (buildspec, source
//! (a zip on S3 or a GitHub commit), artifact location, environment), watched with BatchGetBuilds and stopped when a
//! newer deployment supersedes it.
//!
//! In production the state machine drives builds itself (`codebuild:startBuild.sync` in
//! `deploy-site.asl.json`, with the same overrides), so no Lambda waits on a build.
//! [`CodeBuildBuilder`] implements the core [`Builder`] port on top of the same calls, by
//! starting a build and polling it until it ends, for callers outside the state machine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsError;
use aws_sdk_codebuild::operation::start_build::StartBuildError;
use aws_sdk_codebuild::operation::stop_build::StopBuildError;
use aws_sdk_codebuild::types::{
    ArtifactNamespace, ArtifactPackaging, ArtifactsType, EnvironmentVariable,
    EnvironmentVariableType, ProjectArtifacts, SourceType, StatusType,
};
use aws_smithy_types::error::operation::BuildError as RequestBuildError;
use serde::{Deserialize, Serialize};
use slipway_core::model::ObjectLocation;
use slipway_core::ports::{
    BoxError, BuildError, BuildReport, BuildRequest, BuildSource, Builder, ObjectStore,
    ObjectStoreError,
};
use slipway_core::site::build_plan::parse_buildspec;
use slipway_core::site::ranged::RangedReader;
use slipway_core::site::zipsafe::{self, ZipError, ZipLimits};
use slipway_core::steps::BucketNames;

/// BatchGetBuilds takes at most this many ids a call.
const BATCH_LIMIT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum CodeBuildError {
    #[error("no CodeBuild project named {0:?}")]
    ProjectNotFound(String),
    #[error("no build {0:?}")]
    BuildNotFound(String),
    #[error("the account's concurrent build limit is reached")]
    AccountLimitExceeded,
    #[error("CodeBuild refused the request: {0}")]
    InvalidRequest(String),
    #[error("the artifact key {0:?} has no file name")]
    ArtifactKey(String),
    #[error("cannot build the request: {0}")]
    Request(#[from] RequestBuildError),
    #[error("CodeBuild reported an unknown build status {0:?}")]
    UnknownStatus(String),
    #[error("CodeBuild answered without {0}")]
    IncompleteResponse(&'static str),
    #[error("CodeBuild unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// A build's overall status (CodeBuild's `buildStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    InProgress,
    Succeeded,
    /// A command or the buildspec failed.
    Failed,
    /// CodeBuild itself failed.
    Fault,
    TimedOut,
    Stopped,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::InProgress => "IN_PROGRESS",
            BuildStatus::Succeeded => "SUCCEEDED",
            BuildStatus::Failed => "FAILED",
            BuildStatus::Fault => "FAULT",
            BuildStatus::TimedOut => "TIMED_OUT",
            BuildStatus::Stopped => "STOPPED",
        }
    }

    fn from_sdk(status: &StatusType) -> Result<Self, CodeBuildError> {
        Ok(match status {
            StatusType::InProgress => BuildStatus::InProgress,
            StatusType::Succeeded => BuildStatus::Succeeded,
            StatusType::Failed => BuildStatus::Failed,
            StatusType::Fault => BuildStatus::Fault,
            StatusType::TimedOut => BuildStatus::TimedOut,
            StatusType::Stopped => BuildStatus::Stopped,
            other => return Err(CodeBuildError::UnknownStatus(other.as_str().to_owned())),
        })
    }
}

/// The first phase of a build that did not succeed, with CodeBuild's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseFailure {
    /// `DOWNLOAD_SOURCE`, `BUILD`, `UPLOAD_ARTIFACTS`, ...
    pub phase: String,
    /// `FAILED`, `FAULT`, `TIMED_OUT` or `STOPPED`.
    pub status: String,
    /// e.g. `COMMAND_EXECUTION_ERROR`, `CLIENT_ERROR`.
    pub code: Option<String>,
    /// e.g. `Error while executing command: npm run build. Reason: exit status 1`.
    pub message: Option<String>,
}

/// One build, as BatchGetBuilds (or StartBuild/StopBuild) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub id: String,
    pub status: BuildStatus,
    pub current_phase: Option<String>,
    pub failure: Option<PhaseFailure>,
    /// Where the artifact goes (CodeBuild reports `arn:aws:s3:::{bucket}/{path}/{name}`).
    pub artifact_location: Option<String>,
    pub timeout_minutes: Option<u32>,
}

impl BuildInfo {
    fn from_sdk(build: &aws_sdk_codebuild::types::Build) -> Result<Self, CodeBuildError> {
        let id = build
            .id()
            .ok_or(CodeBuildError::IncompleteResponse("a build id"))?;
        let status = build
            .build_status()
            .ok_or(CodeBuildError::IncompleteResponse("a build status"))?;
        let failure = build
            .phases()
            .iter()
            .find(|phase| {
                phase
                    .phase_status()
                    .is_some_and(|s| !matches!(s, StatusType::Succeeded | StatusType::InProgress))
            })
            .map(|phase| {
                // The last context holds CodeBuild's final word on the phase.
                let context = phase.contexts().last();
                PhaseFailure {
                    phase: phase
                        .phase_type()
                        .map_or("UNKNOWN", |p| p.as_str())
                        .to_owned(),
                    status: phase
                        .phase_status()
                        .map_or("UNKNOWN", |s| s.as_str())
                        .to_owned(),
                    code: context.and_then(|c| c.status_code()).map(str::to_owned),
                    message: context.and_then(|c| c.message()).map(str::to_owned),
                }
            });
        Ok(Self {
            id: id.to_owned(),
            status: BuildStatus::from_sdk(status)?,
            current_phase: build.current_phase().map(str::to_owned),
            failure,
            artifact_location: build
                .artifacts()
                .and_then(|a| a.location())
                .map(str::to_owned),
            timeout_minutes: build
                .timeout_in_minutes()
                .and_then(|m| u32::try_from(m).ok()),
        })
    }
}

/// Starts, reads and stops builds of one CodeBuild project.
#[derive(Debug, Clone)]
pub struct CodeBuildBuilds {
    client: aws_sdk_codebuild::Client,
    project: String,
    buckets: BucketNames,
}

impl CodeBuildBuilds {
    /// `buckets` turns the request's [`ObjectLocation`]s into bucket names.
    pub fn new(config: &SdkConfig, project: impl Into<String>, buckets: BucketNames) -> Self {
        Self::from_client(aws_sdk_codebuild::Client::new(config), project, buckets)
    }

    /// With a client configured by the caller (interceptors, say).
    pub fn from_client(
        client: aws_sdk_codebuild::Client,
        project: impl Into<String>,
        buckets: BucketNames,
    ) -> Self {
        Self {
            client,
            project: project.into(),
            buckets,
        }
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// StartBuild with the request's buildspec, source, artifact and environment as
    /// overrides. A git source is CodeBuild's `GITHUB` source at the commit, which the
    /// project's GitHub credentials (imported source credentials) must be able to read. A repeat with the same `idempotency_token` within five minutes returns the
    /// same build (CodeBuild's rule).
    pub async fn start(
        &self,
        request: &BuildRequest,
        idempotency_token: &str,
    ) -> Result<BuildInfo, CodeBuildError> {
        let (path, name) = request
            .artifact
            .key
            .rsplit_once('/')
            .unwrap_or(("", request.artifact.key.as_str()));
        if name.is_empty() {
            return Err(CodeBuildError::ArtifactKey(request.artifact.key.clone()));
        }
        let artifacts = ProjectArtifacts::builder()
            .r#type(ArtifactsType::S3)
            .location(self.buckets.name_of(request.artifact.bucket))
            .path(path)
            .name(name)
            .packaging(ArtifactPackaging::Zip)
            .namespace_type(ArtifactNamespace::None)
            .build()?;
        let env = request
            .env
            .iter()
            .map(|(name, value)| {
                EnvironmentVariable::builder()
                    .name(name)
                    .value(value)
                    .r#type(EnvironmentVariableType::Plaintext)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let start = self
            .client
            .start_build()
            .project_name(&self.project)
            .idempotency_token(idempotency_token)
            .buildspec_override(&request.buildspec);
        let start = match &request.source {
            BuildSource::Archive(location) => start
                .source_type_override(SourceType::S3)
                .source_location_override(self.location(location)),
            BuildSource::Git { url, commit } => start
                .source_type_override(SourceType::Github)
                .source_location_override(url)
                .source_version(commit.as_str()),
        };
        let out = start
            .artifacts_override(artifacts)
            .set_environment_variables_override(Some(env))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(StartBuildError::ResourceNotFoundException(_)) => {
                    CodeBuildError::ProjectNotFound(self.project.clone())
                }
                Some(StartBuildError::AccountLimitExceededException(_)) => {
                    CodeBuildError::AccountLimitExceeded
                }
                Some(StartBuildError::InvalidInputException(e)) => {
                    CodeBuildError::InvalidRequest(e.message().unwrap_or_default().to_owned())
                }
                _ => CodeBuildError::Unavailable(Box::new(e)),
            })?;
        let build = out
            .build_value()
            .ok_or(CodeBuildError::IncompleteResponse("the started build"))?;
        let info = BuildInfo::from_sdk(build)?;
        tracing::info!(project = %self.project, build_id = %info.id, source = %source_label(&request.source), "build started");
        Ok(info)
    }

    /// BatchGetBuilds, in the order of `build_ids`. A build CodeBuild does not know is
    /// [`CodeBuildError::BuildNotFound`].
    pub async fn status(&self, build_ids: &[String]) -> Result<Vec<BuildInfo>, CodeBuildError> {
        let mut found = Vec::with_capacity(build_ids.len());
        for chunk in build_ids.chunks(BATCH_LIMIT) {
            let out = self
                .client
                .batch_get_builds()
                .set_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(BatchGetBuildsError::InvalidInputException(e)) => {
                        CodeBuildError::InvalidRequest(e.message().unwrap_or_default().to_owned())
                    }
                    _ => CodeBuildError::Unavailable(Box::new(e)),
                })?;
            for build in out.builds() {
                found.push(BuildInfo::from_sdk(build)?);
            }
        }
        build_ids
            .iter()
            .map(|id| {
                found
                    .iter()
                    .find(|info| &info.id == id)
                    .cloned()
                    .ok_or_else(|| CodeBuildError::BuildNotFound(id.clone()))
            })
            .collect()
    }

    /// StopBuild: for a build whose deployment was superseded.
    pub async fn stop(&self, build_id: &str) -> Result<BuildInfo, CodeBuildError> {
        let out = self
            .client
            .stop_build()
            .id(build_id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(StopBuildError::ResourceNotFoundException(_)) => {
                    CodeBuildError::BuildNotFound(build_id.to_owned())
                }
                Some(StopBuildError::InvalidInputException(e)) => {
                    CodeBuildError::InvalidRequest(e.message().unwrap_or_default().to_owned())
                }
                _ => CodeBuildError::Unavailable(Box::new(e)),
            })?;
        let build = out
            .build_value()
            .ok_or(CodeBuildError::IncompleteResponse("the stopped build"))?;
        let info = BuildInfo::from_sdk(build)?;
        tracing::info!(project = %self.project, build_id = %info.id, status = info.status.as_str(), "build stopped");
        Ok(info)
    }

    /// CodeBuild's S3 source location: `{bucket}/{key}`.
    fn location(&self, location: &ObjectLocation) -> String {
        format!("{}/{}", self.buckets.name_of(location.bucket), location.key)
    }
}

/// The source as a log line names it: the zip's key, or `{url}@{commit}`.
fn source_label(source: &BuildSource) -> String {
    match source {
        BuildSource::Archive(location) => location.key.clone(),
        BuildSource::Git { url, commit } => format!("{url}@{commit}"),
    }
}

/// Why a finished build gave no report, beyond what [`BuildError`] names.
#[derive(Debug, thiserror::Error)]
pub enum BuildOutcomeError {
    #[error("build {build_id} ended {status}{}", .failure.as_ref().map(|f| format!(" in phase {} ({})", f.phase, f.message.as_deref().unwrap_or(&f.status))).unwrap_or_default())]
    Ended {
        build_id: String,
        status: &'static str,
        failure: Option<PhaseFailure>,
    },
    #[error("the build artifact cannot be read: {0}")]
    Artifact(#[source] ZipError),
}

/// The default time between two BatchGetBuilds while a build runs.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The [`Builder`] port on CodeBuild: start a build, poll it until it ends, and read the
/// artifact's central directory for the report.
pub struct CodeBuildBuilder {
    builds: CodeBuildBuilds,
    objects: Arc<dyn ObjectStore>,
    poll_interval: Duration,
    limits: ZipLimits,
}

impl CodeBuildBuilder {
    /// `objects` reads the artifact the build uploaded.
    pub fn new(builds: CodeBuildBuilds, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            builds,
            objects,
            poll_interval: DEFAULT_POLL_INTERVAL,
            limits: ZipLimits::default(),
        }
    }

    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Limits for reading the artifact's central directory.
    pub fn with_limits(mut self, limits: ZipLimits) -> Self {
        self.limits = limits;
        self
    }

    async fn wait(&self, mut build: BuildInfo) -> Result<BuildInfo, BuildError> {
        while build.status == BuildStatus::InProgress {
            tokio::time::sleep(self.poll_interval).await;
            let mut latest = self
                .builds
                .status(std::slice::from_ref(&build.id))
                .await
                .map_err(unavailable)?;
            build = latest
                .pop()
                .ok_or_else(|| unavailable(CodeBuildError::BuildNotFound(build.id.clone())))?;
            tracing::debug!(build_id = %build.id, phase = build.current_phase.as_deref().unwrap_or(""), "build running");
        }
        Ok(build)
    }

    async fn report(
        &self,
        build: &BuildInfo,
        artifact: &ObjectLocation,
        base_directory: &str,
    ) -> Result<BuildReport, BuildError> {
        let reader = match RangedReader::open(
            Arc::clone(&self.objects),
            artifact.bucket,
            &artifact.key,
            RangedReader::DEFAULT_CHUNK,
        )
        .await
        {
            Ok(reader) => reader,
            Err(ObjectStoreError::NotFound { .. }) => {
                return Err(BuildError::NoOutput(base_directory.to_owned()))
            }
            Err(e) => return Err(BuildError::Unavailable(Box::new(e))),
        };
        let limits = self.limits;
        let manifest = tokio::task::spawn_blocking(move || zipsafe::open_archive(reader, &limits))
            .await
            .map_err(|e| BuildError::Unavailable(Box::new(e)))?
            .map_err(|e| BuildError::Unavailable(Box::new(BuildOutcomeError::Artifact(e))))?
            .1;
        if manifest.entries.is_empty() {
            return Err(BuildError::NoOutput(base_directory.to_owned()));
        }
        Ok(BuildReport {
            build_id: build.id.clone(),
            file_count: manifest.entries.len() as u64,
            bytes: manifest.total_bytes,
        })
    }
}

#[async_trait]
impl Builder for CodeBuildBuilder {
    async fn run(&self, request: BuildRequest) -> Result<BuildReport, BuildError> {
        // Refused here as the local builder refuses it, before a build is paid for.
        let spec = parse_buildspec(&request.buildspec).map_err(BuildError::from)?;
        // One artifact per deployment: a retried run within CodeBuild's five-minute window
        // gets the build already started.
        let token = request.artifact.key.clone();
        let started = self
            .builds
            .start(&request, &token)
            .await
            .map_err(unavailable)?;
        let build = self.wait(started).await?;
        let result = if build.status == BuildStatus::Succeeded {
            self.report(&build, &request.artifact, &spec.base_directory)
                .await
        } else {
            Err(build_error(&build, &request, &spec.base_directory))
        };
        match &result {
            Ok(report) => tracing::info!(
                build_id = %build.id,
                files = report.file_count,
                bytes = report.bytes,
                "build succeeded"
            ),
            Err(e) => {
                tracing::warn!(build_id = %build.id, error = %e, phase = e.phase(), "build failed")
            }
        }
        result
    }
}

fn unavailable(e: CodeBuildError) -> BuildError {
    BuildError::Unavailable(Box::new(e))
}

/// What a build that ended without success means for the pipeline, read from its failed
/// phase the way CodeBuild words it.
fn build_error(build: &BuildInfo, request: &BuildRequest, base_directory: &str) -> BuildError {
    let ended = || {
        BuildError::Unavailable(Box::new(BuildOutcomeError::Ended {
            build_id: build.id.clone(),
            status: build.status.as_str(),
            failure: build.failure.clone(),
        }))
    };
    let Some(failure) = &build.failure else {
        return ended();
    };
    let message = failure.message.as_deref().unwrap_or_default();
    let (command, reason) = command_and_reason(message);
    match (build.status, failure.phase.as_str()) {
        (BuildStatus::TimedOut, phase) => BuildError::TimedOut {
            phase: phase.to_owned(),
            command: command.unwrap_or(message).to_owned(),
            seconds: u64::from(build.timeout_minutes.unwrap_or(60)) * 60,
        },
        // A commit CodeBuild cannot fetch has no variant of its own: it stays `ended()`.
        (BuildStatus::Failed, "DOWNLOAD_SOURCE")
            if message.contains("NoSuchKey") || message.contains("does not exist") =>
        {
            match &request.source {
                BuildSource::Archive(location) => BuildError::SourceMissing {
                    bucket: location.bucket,
                    key: location.key.clone(),
                },
                BuildSource::Git { .. } => ended(),
            }
        }
        (BuildStatus::Failed, "UPLOAD_ARTIFACTS") if message.contains("no matching") => {
            BuildError::NoOutput(base_directory.to_owned())
        }
        (BuildStatus::Failed, phase @ ("INSTALL" | "PRE_BUILD" | "BUILD" | "POST_BUILD")) => {
            BuildError::CommandFailed {
                phase: phase.to_owned(),
                command: command.unwrap_or(message).to_owned(),
                status: reason
                    .or(failure.code.as_deref())
                    .unwrap_or(&failure.status)
                    .to_owned(),
            }
        }
        _ => ended(),
    }
}

/// Splits `Error while executing command: {command}. Reason: {reason}`.
fn command_and_reason(message: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = message
        .split_once("Error while executing command: ")
        .map(|(_, r)| r)
    else {
        return (None, None);
    };
    match rest.rsplit_once(". Reason: ") {
        Some((command, reason)) => (Some(command), Some(reason)),
        None => (Some(rest), None),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codebuild::types::{Build, BuildPhase, BuildPhaseType, PhaseContext};
    use slipway_core::model::Bucket;

    use super::*;

    fn phase(kind: BuildPhaseType, status: StatusType, message: Option<&str>) -> BuildPhase {
        let mut phase = BuildPhase::builder().phase_type(kind).phase_status(status);
        if let Some(message) = message {
            phase = phase.contexts(
                PhaseContext::builder()
                    .status_code("COMMAND_EXECUTION_ERROR")
                    .message(message)
                    .build(),
            );
        }
        phase.build()
    }

    fn build(status: StatusType, phases: Vec<BuildPhase>) -> BuildInfo {
        let build = Build::builder()
            .id("slipway-build:1")
            .build_status(status)
            .current_phase("COMPLETED")
            .timeout_in_minutes(15)
            .set_phases(Some(phases))
            .build();
        BuildInfo::from_sdk(&build).unwrap()
    }

    fn request() -> BuildRequest {
        BuildRequest {
            source: BuildSource::Archive(ObjectLocation {
                bucket: Bucket::Source,
                key: "uploads/docs/01jd.zip".into(),
            }),
            buildspec: String::new(),
            artifact: ObjectLocation {
                bucket: Bucket::Artifacts,
                key: "builds/docs/01jd/output.zip".into(),
            },
            env: vec![],
        }
    }

    fn ok(kind: BuildPhaseType) -> BuildPhase {
        phase(kind, StatusType::Succeeded, None)
    }

    #[test]
    fn a_failed_command_is_named_with_its_phase_and_exit_status() {
        let info = build(
            StatusType::Failed,
            vec![
                ok(BuildPhaseType::DownloadSource),
                ok(BuildPhaseType::Install),
                phase(
                    BuildPhaseType::Build,
                    StatusType::Failed,
                    Some("Error while executing command: npm run build. Reason: exit status 1"),
                ),
                ok(BuildPhaseType::PostBuild),
            ],
        );

        assert_eq!(info.failure.as_ref().unwrap().phase, "BUILD");
        match build_error(&info, &request(), "dist") {
            BuildError::CommandFailed {
                phase,
                command,
                status,
            } => {
                assert_eq!(phase, "BUILD");
                assert_eq!(command, "npm run build");
                assert_eq!(status, "exit status 1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_missing_base_directory_is_no_output() {
        let info = build(
            StatusType::Failed,
            vec![
                ok(BuildPhaseType::Build),
                phase(
                    BuildPhaseType::UploadArtifacts,
                    StatusType::Failed,
                    Some("CLIENT_ERROR: no matching base directory path found for dist"),
                ),
            ],
        );
        assert!(matches!(
            build_error(&info, &request(), "dist"),
            BuildError::NoOutput(dir) if dir == "dist"
        ));
    }

    #[test]
    fn a_missing_source_object_is_source_missing() {
        let info = build(
            StatusType::Failed,
            vec![phase(
                BuildPhaseType::DownloadSource,
                StatusType::Failed,
                Some(
                    "CLIENT_ERROR: NoSuchKey: The specified key does not exist. for primary source",
                ),
            )],
        );
        assert!(matches!(
            build_error(&info, &request(), "dist"),
            BuildError::SourceMissing { bucket: Bucket::Source, key } if key == "uploads/docs/01jd.zip"
        ));
    }

    #[test]
    fn a_commit_that_cannot_be_fetched_is_not_named_as_a_missing_zip() {
        let info = build(
            StatusType::Failed,
            vec![phase(
                BuildPhaseType::DownloadSource,
                StatusType::Failed,
                Some("CLIENT_ERROR: commit 4b825dc does not exist for primary source"),
            )],
        );
        let git = BuildRequest {
            source: BuildSource::Git {
                url: "https://github.com/acme/docs.git".into(),
                commit: slipway_core::names::CommitSha::parse(
                    "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                )
                .unwrap(),
            },
            ..request()
        };
        let error = build_error(&info, &git, "dist");
        assert!(matches!(error, BuildError::Unavailable(_)), "{error:?}");
        assert!(error.to_string().contains("DOWNLOAD_SOURCE"), "{error}");
    }

    #[test]
    fn a_timed_out_build_reports_its_phase_and_limit() {
        let info = build(
            StatusType::TimedOut,
            vec![
                ok(BuildPhaseType::Install),
                phase(
                    BuildPhaseType::Build,
                    StatusType::TimedOut,
                    Some("Build has timed out. "),
                ),
            ],
        );
        match build_error(&info, &request(), "dist") {
            BuildError::TimedOut { phase, seconds, .. } => {
                assert_eq!(phase, "BUILD");
                assert_eq!(seconds, 15 * 60);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn faults_and_stops_are_infrastructure_not_the_site() {
        for status in [StatusType::Fault, StatusType::Stopped] {
            let info = build(
                status.clone(),
                vec![phase(BuildPhaseType::Provisioning, status, Some("gone"))],
            );
            let error = build_error(&info, &request(), "dist");
            assert!(matches!(error, BuildError::Unavailable(_)), "{error:?}");
            assert!(error.to_string().contains("PROVISIONING"), "{error}");
        }
    }

    #[test]
    fn builds_without_an_id_or_status_are_incomplete_not_a_panic() {
        let no_id = Build::builder().build_status(StatusType::Succeeded).build();
        assert!(matches!(
            BuildInfo::from_sdk(&no_id),
            Err(CodeBuildError::IncompleteResponse(_))
        ));
        let no_status = Build::builder().id("p:1").build();
        assert!(matches!(
            BuildInfo::from_sdk(&no_status),
            Err(CodeBuildError::IncompleteResponse(_))
        ));
    }
}
