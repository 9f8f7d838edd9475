//! The local builder: CodeBuild's stand-in for `slipway dev`.
//!
//! One build: download the source zip and unpack it safely into a fresh scratch directory
//! (or check a git commit out there), run the buildspec's phases, pack `base-directory`
//! (less its `exclude-paths`) into a zip and upload it as the artifact.
//!
//! Commands run the way CodeBuild's buildspec 0.2 runs them: all of them in one shell
//! session, so `cd`, shell variables and `export`s carry over between commands and phases.
//! The builder renders the phases into one `sh` script. Every command is `eval`ed in that
//! shell and its exit status checked; a failed command ends its phase. A failure in INSTALL
//! or PRE_BUILD ends the build; a failure in BUILD still runs POST_BUILD with
//! `CODEBUILD_BUILD_SUCCEEDING=0`, as CodeBuild does. Nothing is uploaded after a failure:
//! the pipeline discards a failed build's artifact anyway.
//!
//! The script prints CodeBuild-style banners into the build's output, so they interleave
//! exactly with the commands' output (stdout and stderr are merged, as in CodeBuild's log).
//! It reports progress to the builder on a separate descriptor that commands never see, so
//! no output can be mistaken for a status report. The shell leads its own process group;
//! the group is killed when the build ends, times out or is cancelled, like CodeBuild
//! tearing its container down.
//!
//! This module holds the builder and the order of a build; `source` fetches the source,
//! `phases` renders the buildspec into the script and runs it, `log` carries the output
//! into the deployment's log, and `output` packs and uploads the artifact.

mod log;
mod output;
mod phases;
mod source;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_core::names::DeploymentId;
use slipway_core::ports::{
    BuildError, BuildReport, BuildRequest, BuildSource, Builder, ObjectStore, StateStore,
};
use slipway_core::site::build_plan::parse_buildspec;
use slipway_core::site::zipsafe::ZipLimits;
use tracing::Instrument;

use log::LogSink;
use output::exclude_globs;
use phases::render_script;
use source::fetch_commit;

/// CodeBuild's default build timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Failures of the builder itself, as opposed to the build; reported as
/// [`BuildError::Unavailable`].
#[derive(Debug, thiserror::Error)]
enum InfraError {
    #[error("the build request carries no valid SLIPWAY_DEPLOYMENT_ID (got {0:?})")]
    DeploymentId(Option<String>),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("a build task stopped unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the build shell exited with {status} outside of any command")]
    Shell { status: String },
    #[error("the build shell started without {0}")]
    Spawn(&'static str),
}

impl From<InfraError> for BuildError {
    fn from(e: InfraError) -> Self {
        BuildError::Unavailable(Box::new(e))
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| InfraError::Io { context, source }.into()
}

pub struct LocalBuilder {
    objects: Arc<dyn ObjectStore>,
    state: Arc<dyn StateStore>,
    scratch_root: PathBuf,
    limits: ZipLimits,
    timeout: Duration,
    /// `CODEBUILD_BUILD_NUMBER`: counts this builder's builds.
    builds: AtomicU64,
}

impl LocalBuilder {
    /// Builds run in fresh directories under `scratch_root` (created when needed).
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        state: Arc<dyn StateStore>,
        scratch_root: PathBuf,
    ) -> Self {
        Self {
            objects,
            state,
            scratch_root,
            limits: ZipLimits::default(),
            timeout: DEFAULT_TIMEOUT,
            builds: AtomicU64::new(0),
        }
    }

    /// The whole-build timeout for the phases' commands (default 30 minutes).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Limits for unpacking the source zip.
    pub fn with_limits(mut self, limits: ZipLimits) -> Self {
        self.limits = limits;
        self
    }
}

#[async_trait]
impl Builder for LocalBuilder {
    async fn run(&self, request: BuildRequest) -> Result<BuildReport, BuildError> {
        let raw_id = env_value(&request.env, "SLIPWAY_DEPLOYMENT_ID");
        let deployment = raw_id
            .and_then(|raw| DeploymentId::parse(raw).ok())
            .ok_or_else(|| InfraError::DeploymentId(raw_id.map(str::to_owned)))?;
        let site = env_value(&request.env, "SLIPWAY_SITE").unwrap_or_default();
        let number = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        let build = BuildIdentity {
            id: format!("slipway-local:{deployment}-{number}"),
            number,
        };
        let span = tracing::info_span!(
            "local_build",
            site = %site,
            deployment_id = %deployment,
            build_id = %build.id,
        );
        async {
            let (log, writer) = LogSink::start(Arc::clone(&self.state), deployment);
            let result = self.build_in_scratch(&request, &build, &log).await;
            match &result {
                Ok(report) => {
                    log.line(format!(
                        "[Container] Build {} succeeded: {} files, {} bytes",
                        build.id, report.file_count, report.bytes
                    ))
                    .await;
                    tracing::info!(
                        files = report.file_count,
                        bytes = report.bytes,
                        "build succeeded"
                    );
                }
                Err(e) => {
                    log.line(format!("[Container] Build {} failed: {e}", build.id))
                        .await;
                    tracing::warn!(error = %e, phase = e.phase(), "build failed");
                }
            }
            drop(log);
            if let Err(e) = writer.await {
                tracing::warn!(error = %e, "the build log writer stopped");
            }
            result
        }
        .instrument(span)
        .await
    }
}

struct BuildIdentity {
    id: String,
    number: u64,
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

impl LocalBuilder {
    /// Runs the build in a fresh scratch directory and removes it afterwards, whatever
    /// happened (a cancelled build removes it when the `TempDir` drops).
    async fn build_in_scratch(
        &self,
        request: &BuildRequest,
        build: &BuildIdentity,
        log: &LogSink,
    ) -> Result<BuildReport, BuildError> {
        tokio::fs::create_dir_all(&self.scratch_root)
            .await
            .map_err(io_error(format!(
                "creating the scratch root {}",
                self.scratch_root.display()
            )))?;
        let root = self.scratch_root.clone();
        let prefix = build.id.replace(':', "-");
        let scratch = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(&format!("{prefix}."))
                .tempdir_in(root)
        })
        .await
        .map_err(InfraError::from)?
        .map_err(io_error("creating the scratch directory"))?;

        let result = self.build_in(scratch.path(), request, build, log).await;

        let path = scratch.path().to_owned();
        match tokio::task::spawn_blocking(move || scratch.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, path = %path.display(), "could not remove the scratch directory");
            }
            Err(e) => tracing::warn!(error = %e, "removing the scratch directory stopped"),
        }
        result
    }

    async fn build_in(
        &self,
        scratch: &Path,
        request: &BuildRequest,
        build: &BuildIdentity,
        log: &LogSink,
    ) -> Result<BuildReport, BuildError> {
        let spec = parse_buildspec(&request.buildspec).map_err(BuildError::from)?;
        let exclude = exclude_globs(&spec.exclude_paths).map_err(BuildError::from)?;

        log.line("[Container] Entering phase DOWNLOAD_SOURCE").await;
        let source = match &request.source {
            BuildSource::Archive(location) => self.fetch_archive(scratch, location, log).await,
            BuildSource::Git { url, commit } => fetch_commit(scratch, url, commit, log).await,
        };
        let state = if source.is_ok() {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        log.line(format!(
            "[Container] Phase complete: DOWNLOAD_SOURCE State: {state}"
        ))
        .await;
        let source = source?;
        for (runtime, version) in &spec.runtime_versions {
            // CodeBuild installs the runtime; locally the one on PATH runs the build.
            log.line(format!(
                "[Container] runtime-versions: {runtime} {version} requested; slipway dev builds with the tools on PATH"
            ))
            .await;
        }

        let mut env: Vec<(String, String)> = spec.env.clone().into_iter().collect();
        env.extend(request.env.iter().cloned());
        // CodeBuild's own variables come last: a buildspec cannot fake them.
        env.extend([
            ("CI".to_owned(), "true".to_owned()),
            ("CODEBUILD_BUILD_ID".to_owned(), build.id.clone()),
            (
                "CODEBUILD_BUILD_NUMBER".to_owned(),
                build.number.to_string(),
            ),
            ("CODEBUILD_INITIATOR".to_owned(), "slipway-local".to_owned()),
            (
                "CODEBUILD_RESOLVED_SOURCE_VERSION".to_owned(),
                source.version.clone(),
            ),
            (
                "CODEBUILD_SRC_DIR".to_owned(),
                source.root.to_string_lossy().into_owned(),
            ),
        ]);
        // What CodeBuild adds for a GitHub source.
        if let Some(url) = source.repo_url {
            env.extend([
                ("CODEBUILD_SOURCE_REPO_URL".to_owned(), url),
                ("CODEBUILD_SOURCE_VERSION".to_owned(), source.version),
            ]);
        }
        let script = render_script(&spec.phases);
        self.run_phases(scratch, &source.root, &script, &spec.phases, &env, log)
            .await?;

        log.line("[Container] Entering phase UPLOAD_ARTIFACTS")
            .await;
        let uploaded = self
            .pack_and_upload(
                scratch,
                &source.root,
                &spec.base_directory,
                exclude,
                &request.artifact,
            )
            .await;
        let state = if uploaded.is_ok() {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        log.line(format!(
            "[Container] Phase complete: UPLOAD_ARTIFACTS State: {state}"
        ))
        .await;
        let (file_count, bytes) = uploaded?;
        Ok(BuildReport {
            build_id: build.id.clone(),
            file_count,
            bytes,
        })
    }
}
