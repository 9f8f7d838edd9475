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

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use slipway_core::build_plan::{parse_buildspec, Phase, PlanError};
use slipway_core::model::ObjectLocation;
use slipway_core::names::{CommitSha, DeploymentId};
use slipway_core::ports::{
    BuildError, BuildReport, BuildRequest, BuildSource, Builder, ObjectBody, ObjectMeta,
    ObjectStore, StateStore,
};
use slipway_core::zipsafe::{self, EntryPath, UnsafeReason, ZipError, ZipLimits};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// CodeBuild's default build timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Log lines are written at least this often while a build runs, so `slipway logs` is live.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(200);
/// And at most this many lines go into one write.
const LOG_BATCH: usize = 500;
/// Longer output lines are cut: one runaway line must not fill memory or the log.
const MAX_LINE: usize = 16 * 1024;
/// How long output may keep arriving after the shell exited (from a process that left the
/// build's process group) before the builder stops reading.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
const UPLOAD_CHUNK: usize = 1024 * 1024;
/// The script starts each banner with this byte (ASCII record separator, `\036`), so a
/// banner gets its own log line even after output without a trailing newline.
const LINE_START: u8 = 0x1e;

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
        let spec = parse_buildspec(&request.buildspec).map_err(BuildError::Buildspec)?;
        let exclude = exclude_globs(&spec.exclude_paths).map_err(BuildError::Buildspec)?;

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

    /// Streams the source zip to disk and unpacks it into `{scratch}/src`.
    async fn fetch_archive(
        &self,
        scratch: &Path,
        location: &ObjectLocation,
        log: &LogSink,
    ) -> Result<Source, BuildError> {
        let (info, body) = self
            .objects
            .get(location.bucket, &location.key)
            .await
            .map_err(|e| BuildError::Unavailable(Box::new(e)))?
            .ok_or_else(|| BuildError::SourceMissing {
                bucket: location.bucket,
                key: location.key.clone(),
            })?;
        let zip_path = scratch.join("source.zip");
        write_body(&zip_path, body).await?;

        let dest = scratch.join("src");
        let limits = self.limits;
        let unpack_to = dest.clone();
        let (files, bytes, top) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&zip_path)
                .map_err(io_error(format!("opening {}", zip_path.display())))?;
            let (mut archive, manifest) =
                zipsafe::open_archive(io::BufReader::new(file), &limits).map_err(source_error)?;
            std::fs::create_dir(&unpack_to)
                .map_err(io_error(format!("creating {}", unpack_to.display())))?;
            zipsafe::extract_all(&mut archive, &manifest, &unpack_to).map_err(source_error)?;
            Ok::<_, BuildError>((
                manifest.entries.len(),
                manifest.total_bytes,
                manifest.common_root().map(str::to_owned),
            ))
        })
        .await
        .map_err(InfraError::from)??;

        // A zipped folder: build inside the folder, as if its contents were zipped.
        let root = match top {
            Some(folder) => dest.join(folder),
            None => dest,
        };
        log.line(format!(
            "[Container] Unpacked {files} files ({bytes} bytes) from {}/{}",
            location.bucket.as_str(),
            location.key
        ))
        .await;
        Ok(Source {
            root,
            version: info.etag.trim_matches('"').to_owned(),
            repo_url: None,
        })
    }

    async fn run_phases(
        &self,
        scratch: &Path,
        root: &Path,
        script: &str,
        phases: &[Phase],
        env: &[(String, String)],
        log: &LogSink,
    ) -> Result<(), BuildError> {
        let script_path = scratch.join("buildspec.sh");
        tokio::fs::write(&script_path, script)
            .await
            .map_err(io_error("writing the build script"))?;
        let mut child = Command::new("sh")
            .arg(&script_path)
            .current_dir(root)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_error("starting sh"))?;
        let group = child
            .id()
            .map(ProcessGroup)
            .ok_or(InfraError::Spawn("a process id"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(InfraError::Spawn("its output pipes").into());
        };
        let output_log = log.clone();
        // The script's fd 3 (its original stderr) carries progress reports only.
        let (report_tx, mut reports) = mpsc::channel(64);
        let mut readers = Readers {
            output: tokio::spawn(async move {
                read_lines(stdout, |line| output_log.line(line)).await;
            }),
            reports: tokio::spawn(async move {
                read_lines(stderr, |line| {
                    let tx = report_tx.clone();
                    async move {
                        let _ = tx.send(line).await;
                    }
                })
                .await;
            }),
        };

        let mut tracker = Tracker::new(phases);
        let drive = async {
            loop {
                tokio::select! {
                    report = reports.recv() => match report {
                        Some(line) => tracker.apply(&line),
                        None => break child.wait().await,
                    },
                    exit = child.wait() => break exit,
                }
            }
        };
        let outcome = tokio::time::timeout(self.timeout, drive).await;
        // Processes the build left running die with it, as with CodeBuild's container.
        drop(group);
        let _ = child.start_kill();
        let _ = tokio::time::timeout(DRAIN_GRACE, async {
            while let Some(line) = reports.recv().await {
                tracker.apply(&line);
            }
        })
        .await;
        // Output that is still in the pipe belongs before the verdict in the log.
        if tokio::time::timeout(DRAIN_GRACE, &mut readers.output)
            .await
            .is_err()
        {
            tracing::warn!("build output kept arriving after the build ended; stopped reading");
        }
        // Aborting the output reader also releases its log sink, so the log writer can finish.
        drop(readers);

        match outcome {
            Err(_) => {
                let seconds = self.timeout.as_secs();
                log.line(format!(
                    "[Container] Build timed out after {seconds}s; its processes were stopped"
                ))
                .await;
                let (phase, command) = tracker.position();
                Err(BuildError::TimedOut {
                    phase,
                    command,
                    seconds,
                })
            }
            Ok(Err(e)) => Err(io_error("waiting for sh")(e)),
            Ok(Ok(status)) => tracker.verdict(status, log).await,
        }
    }

    /// Zips the output directory, less the excluded paths, into a temp file and uploads it
    /// in chunks.
    async fn pack_and_upload(
        &self,
        scratch: &Path,
        root: &Path,
        base_directory: &str,
        exclude: GlobSet,
        artifact: &ObjectLocation,
    ) -> Result<(u64, u64), BuildError> {
        let output = output_dir(root, base_directory)
            .ok_or_else(|| BuildError::NoOutput(base_directory.to_owned()))?;
        let zip_path = scratch.join("output.zip");
        let target = zip_path.clone();
        let base = base_directory.to_owned();
        let (files, bytes) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&target)
                .map_err(io_error(format!("creating {}", target.display())))?;
            output_files(&output, &exclude)
                .and_then(|files| zipsafe::write_zip(io::BufWriter::new(file), files))
                .map_err(|e| {
                    if e.is_input_error() {
                        // What the build wrote cannot be packed (say, a file name that is not UTF-8).
                        BuildError::CommandFailed {
                            phase: "UPLOAD_ARTIFACTS".to_owned(),
                            command: format!("pack {base}"),
                            status: e.to_string(),
                        }
                    } else {
                        BuildError::Unavailable(Box::new(e))
                    }
                })
        })
        .await
        .map_err(InfraError::from)??;
        if files == 0 {
            return Err(BuildError::NoOutput(base_directory.to_owned()));
        }

        let file = tokio::fs::File::open(&zip_path)
            .await
            .map_err(io_error("opening the packed output"))?;
        let len = file
            .metadata()
            .await
            .map_err(io_error("reading the packed output's size"))?
            .len();
        let chunks = crate::objects::file_chunks(file, UPLOAD_CHUNK);
        let meta = ObjectMeta {
            content_type: "application/zip".to_owned(),
            cache_control: None,
        };
        self.objects
            .put(
                artifact.bucket,
                &artifact.key,
                ObjectBody::Stream { len, chunks },
                &meta,
            )
            .await
            .map_err(|e| BuildError::Unavailable(Box::new(e)))?;
        Ok((files, bytes))
    }
}

/// A hostile or broken upload is the source's fault; a disk error is the builder's.
fn source_error(e: zipsafe::ZipError) -> BuildError {
    if e.is_input_error() {
        BuildError::Source(e)
    } else {
        BuildError::Unavailable(Box::new(e))
    }
}

struct Source {
    root: PathBuf,
    /// `CODEBUILD_RESOLVED_SOURCE_VERSION`: the zip's ETag, or the commit.
    version: String,
    /// The clone URL of a git source.
    repo_url: Option<String>,
}

/// Checks the commit out into `{scratch}/src`, `.git` included, as CodeBuild does.
async fn fetch_commit(
    scratch: &Path,
    url: &str,
    commit: &CommitSha,
    log: &LogSink,
) -> Result<Source, BuildError> {
    let root = scratch.join("src");
    let shown = crate::git::redacted(url);
    if let Err(e) = crate::git::checkout(url, commit, &root).await {
        return Err(match e.reason() {
            Some(reason) => BuildError::Checkout {
                url: shown,
                commit: commit.clone(),
                reason,
            },
            None => BuildError::Unavailable(Box::new(e)),
        });
    }
    log.line(format!("[Container] Checked out {shown} at {commit}"))
        .await;
    Ok(Source {
        root,
        version: commit.to_string(),
        repo_url: Some(url.to_owned()),
    })
}

/// `artifacts.exclude-paths` as CodeBuild matches them: relative to the base directory,
/// `*` within one path segment, `**` across any number of them.
fn exclude_globs(patterns: &[String]) -> Result<GlobSet, PlanError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| PlanError::InvalidBuildspec {
                reason: format!("exclude-paths entry {pattern:?}: {e}"),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| PlanError::InvalidBuildspec {
        reason: format!("exclude-paths: {e}"),
    })
}

/// Every regular file under `dir` that no exclude glob matches, as archive entries.
/// Symlinks are skipped, never followed, so a link cannot pull outside files into the output.
fn output_files(dir: &Path, exclude: &GlobSet) -> Result<Vec<(EntryPath, PathBuf)>, ZipError> {
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1) {
        let item = item.map_err(|e| ZipError::Io(e.into()))?;
        let full = item.path();
        let relative = full.strip_prefix(dir).unwrap_or(full);
        if !item.file_type().is_file() {
            if !item.file_type().is_dir() {
                tracing::warn!(path = %full.display(), "not a regular file; left out of the output");
            }
            continue;
        }
        if exclude.is_match(relative) {
            continue;
        }
        let Some(name) = relative.to_str() else {
            return Err(ZipError::UnsafePath {
                path: relative.to_string_lossy().into_owned(),
                reason: UnsafeReason::NotUtf8,
            });
        };
        files.push((EntryPath::parse(name)?, full.to_owned()));
    }
    Ok(files)
}

async fn write_body(path: &Path, body: ObjectBody) -> Result<(), BuildError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(io_error("creating the source download"))?;
    match body {
        ObjectBody::Bytes(bytes) => file
            .write_all(&bytes)
            .await
            .map_err(io_error("writing the source download"))?,
        ObjectBody::Stream { mut chunks, .. } => {
            while let Some(chunk) = chunks.recv().await {
                let chunk = chunk.map_err(io_error("downloading the source"))?;
                file.write_all(&chunk)
                    .await
                    .map_err(io_error("writing the source download"))?;
            }
        }
    }
    file.flush()
        .await
        .map_err(io_error("writing the source download"))
}

/// `{root}/{base}` when it is a directory inside the source root (symlinks resolved).
fn output_dir(root: &Path, base: &str) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let dir = std::fs::canonicalize(root.join(base)).ok()?;
    (dir.starts_with(&root) && dir.is_dir()).then_some(dir)
}

/// CodeBuild's name for a buildspec phase: `pre_build` → `PRE_BUILD`.
fn phase_name(phase: &Phase) -> String {
    phase.name.to_ascii_uppercase()
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The build as one `sh` script (see the module docs). Reports on fd 3:
/// `phase P`, `start P C`, `end P C STATUS`, `done P OK` (P, C: indices).
fn render_script(phases: &[Phase]) -> String {
    let mut s = String::from(
        "exec 3>&2 2>&1\n\
         CODEBUILD_BUILD_SUCCEEDING=1\n\
         export CODEBUILD_BUILD_SUCCEEDING\n\
         __slipway_go=1\n",
    );
    for (p, phase) in phases.iter().enumerate() {
        let name = phase_name(phase);
        let _ = writeln!(s, "if [ \"$__slipway_go\" = 1 ]; then");
        let _ = writeln!(s, "  echo phase {p} >&3");
        let _ = writeln!(
            s,
            "  printf '\\036%s\\n' {}",
            sh_quote(&format!("[Container] Entering phase {name}"))
        );
        s.push_str("  __slipway_ok=1\n");
        for (c, command) in phase.commands.iter().enumerate() {
            s.push_str("  if [ \"$__slipway_ok\" = 1 ]; then\n");
            let _ = writeln!(
                s,
                "    printf '\\036%s\\n' {}",
                sh_quote(&format!("[Container] Running command {command}"))
            );
            let _ = writeln!(s, "    echo start {p} {c} >&3");
            let _ = writeln!(s, "    eval {} 3>&-", sh_quote(command));
            s.push_str("    __slipway_status=$?\n");
            let _ = writeln!(s, "    echo end {p} {c} \"$__slipway_status\" >&3");
            s.push_str("    if [ \"$__slipway_status\" != 0 ]; then\n");
            let _ = writeln!(
                s,
                "      printf '\\036%s%s\\n' {} \"$__slipway_status\"",
                sh_quote(&format!(
                    "[Container] Command did not exit successfully {command} exit status "
                ))
            );
            s.push_str("      __slipway_ok=0\n      CODEBUILD_BUILD_SUCCEEDING=0\n    fi\n  fi\n");
        }
        s.push_str(
            "  if [ \"$__slipway_ok\" = 1 ]; then __slipway_state=SUCCEEDED; else __slipway_state=FAILED; fi\n",
        );
        let _ = writeln!(
            s,
            "  printf '\\036%s%s\\n' {} \"$__slipway_state\"",
            sh_quote(&format!("[Container] Phase complete: {name} State: "))
        );
        let _ = writeln!(s, "  echo done {p} \"$__slipway_ok\" >&3");
        // Only a BUILD failure lets the next phase (POST_BUILD) run.
        if name != "BUILD" {
            s.push_str("  [ \"$__slipway_ok\" = 1 ] || __slipway_go=0\n");
        }
        s.push_str("fi\n");
    }
    s
}

/// Follows the script's reports: where the build is, and its first failure.
struct Tracker<'a> {
    phases: &'a [Phase],
    phase: Option<usize>,
    command: Option<(usize, usize)>,
    failure: Option<BuildError>,
}

impl<'a> Tracker<'a> {
    fn new(phases: &'a [Phase]) -> Self {
        Self {
            phases,
            phase: None,
            command: None,
            failure: None,
        }
    }

    fn command_text(&self, p: usize, c: usize) -> Option<&'a str> {
        self.phases.get(p)?.commands.get(c).map(String::as_str)
    }

    fn apply(&mut self, report: &str) {
        let fields: Vec<&str> = report.split_ascii_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<usize>().ok());
        match (fields.first().copied(), number(1), number(2)) {
            (Some("phase"), Some(p), _) if p < self.phases.len() => self.phase = Some(p),
            (Some("start"), Some(p), Some(c)) if self.command_text(p, c).is_some() => {
                self.phase = Some(p);
                self.command = Some((p, c));
            }
            (Some("end"), Some(p), Some(c)) => {
                self.command = None;
                let status = fields.get(3).copied().unwrap_or("?");
                if let (Some(command), true) = (self.command_text(p, c), status != "0") {
                    self.fail(p, command, format!("exit status {status}"));
                }
            }
            (Some("done"), Some(_), _) => self.phase = None,
            _ => tracing::warn!(report, "unexpected report from the build shell"),
        }
    }

    fn fail(&mut self, p: usize, command: &str, status: String) {
        if self.failure.is_none() {
            self.failure = Some(BuildError::CommandFailed {
                phase: phase_name(&self.phases[p]),
                command: command.to_owned(),
                status,
            });
        }
    }

    /// The phase and command running now, for a timeout.
    fn position(&self) -> (String, String) {
        let phase = self
            .phase
            .and_then(|p| self.phases.get(p))
            .map(phase_name)
            .unwrap_or_else(|| "BUILD".to_owned());
        let command = self
            .command
            .and_then(|(p, c)| self.command_text(p, c))
            .unwrap_or_default()
            .to_owned();
        (phase, command)
    }

    async fn verdict(mut self, status: ExitStatus, log: &LogSink) -> Result<(), BuildError> {
        // The shell itself ended inside a command: `exit`, `set -e`, a syntax error, a signal.
        if let Some((p, c)) = self.command.take() {
            let command = self.command_text(p, c).unwrap_or_default();
            let status = describe(status);
            let name = phase_name(&self.phases[p]);
            log.line(format!(
                "[Container] Command did not exit successfully {command} {status}"
            ))
            .await;
            log.line(format!("[Container] Phase complete: {name} State: FAILED"))
                .await;
            self.fail(p, command, status);
        }
        match self.failure {
            Some(failure) => Err(failure),
            None if status.success() => Ok(()),
            None => Err(InfraError::Shell {
                status: describe(status),
            }
            .into()),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Kills a process group when dropped.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // `sh`'s kill builtin reaches a whole group without unsafe code or another dependency.
        let result = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s KILL -- -{} 2>/dev/null", self.0))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = result {
            tracing::warn!(error = %e, pgid = self.0, "could not stop the build's processes");
        }
    }
}

/// The shell's pipe readers, aborted when dropped: a process that left the build's
/// process group may hold a pipe open forever.
struct Readers {
    output: JoinHandle<()>,
    reports: JoinHandle<()>,
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.output.abort();
        self.reports.abort();
    }
}

/// Splits a stream into lines (lossy UTF-8, `\r\n` trimmed, cut at [`MAX_LINE`]).
/// [`LINE_START`] also ends a line that has text, and is dropped.
async fn read_lines<R, F, Fut>(reader: R, mut emit: F)
where
    R: AsyncRead + Unpin,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                tracing::warn!(error = %e, "reading build output failed");
                break;
            }
        };
        if buf.is_empty() {
            break;
        }
        let (chunk, used, end) = match buf.iter().position(|&b| b == b'\n' || b == LINE_START) {
            Some(i) => (&buf[..i], i + 1, Some(buf[i])),
            None => (buf, buf.len(), None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        match end {
            Some(b'\n') => emit(finish_line(&mut line, &mut cut)).await,
            // A banner starts a new line even when the output before it did not end one.
            Some(_) if !line.is_empty() => emit(finish_line(&mut line, &mut cut)).await,
            _ => {}
        }
    }
    if !line.is_empty() {
        emit(finish_line(&mut line, &mut cut)).await;
    }
}

fn finish_line(line: &mut Vec<u8>, cut: &mut bool) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *cut {
        text.push_str(" [line cut]");
    }
    line.clear();
    *cut = false;
    text
}

/// Sends lines to the deployment's log in batches, at least every [`LOG_FLUSH_EVERY`].
#[derive(Clone)]
struct LogSink(mpsc::Sender<String>);

impl LogSink {
    fn start(state: Arc<dyn StateStore>, deployment: DeploymentId) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * LOG_BATCH);
        (Self(tx), tokio::spawn(write_log(state, deployment, rx)))
    }

    async fn line(&self, line: impl Into<String>) {
        // The writer only stops once every sink is dropped.
        let _ = self.0.send(line.into()).await;
    }
}

async fn write_log(
    state: Arc<dyn StateStore>,
    deployment: DeploymentId,
    mut lines: mpsc::Receiver<String>,
) {
    let mut batch = Vec::new();
    let mut tick = tokio::time::interval(LOG_FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    batch.push(line);
                    if batch.len() >= LOG_BATCH {
                        flush(&*state, &deployment, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => flush(&*state, &deployment, &mut batch).await,
        }
    }
    flush(&*state, &deployment, &mut batch).await;
}

async fn flush(state: &dyn StateStore, deployment: &DeploymentId, batch: &mut Vec<String>) {
    if batch.is_empty() {
        return;
    }
    // The build goes on without its log rather than failing over it.
    if let Err(e) = state.append_log(deployment, batch).await {
        tracing::warn!(error = %e, lines = batch.len(), "could not append to the build log");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_paths_match_like_codebuild() {
        let set = exclude_globs(&[
            ".git/**/*".to_owned(),
            "**/.env*".to_owned(),
            "slipway.toml".to_owned(),
            "*.map".to_owned(),
        ])
        .unwrap();
        for excluded in [
            ".git/HEAD",
            ".git/refs/heads/main",
            ".env",
            "a/b/.env.production",
            "slipway.toml",
            "app.js.map",
        ] {
            assert!(set.is_match(excluded), "{excluded}");
        }
        for kept in [
            "index.html",
            "docs/slipway.toml",
            "assets/app.js.map",
            "a.git/HEAD",
            "environment.html",
        ] {
            assert!(!set.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn an_invalid_exclude_path_is_a_buildspec_error() {
        let err = exclude_globs(&["a/[b".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("a/[b"), "{err}");
    }
}
