//! One execution environment: a process of the function's runtime, its Runtime API server,
//! and the slots through which the pool hands it invocations. The process runs in its own
//! process group, so stopping an instance stops whatever it started too.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use slipway_core::service::Runtime;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::runtime_api::{self, Unanswerable};
use super::{FunctionLogs, FunctionSpec, Interpreters, InvokeError, LogLine, Outcome};

/// An invocation as `/next` hands it to the runtime.
pub(super) struct Event {
    pub request_id: String,
    /// When the invocation times out, in Unix epoch milliseconds.
    pub deadline_ms: i128,
    pub invoked_arn: String,
    pub trace_id: String,
    pub payload: Bytes,
}

struct InFlight {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct SlotState {
    /// A `/next` waiting for an invocation: the instance is warm and idle.
    parked: Option<oneshot::Sender<Event>>,
    in_flight: Option<InFlight>,
    last_answered: Option<String>,
    /// The instance reached `/next` once: its init is over.
    initialised: bool,
    /// What `/init/error` reported.
    init_failure: Option<Outcome>,
    /// How the process ended.
    exit: Option<String>,
    idle_since: Option<Instant>,
}

/// The state the Runtime API handlers and the pool share.
#[derive(Default)]
pub(super) struct Slots {
    state: Mutex<SlotState>,
    changed: Notify,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `/next`: the runtime waits for work.
    pub fn park(&self, park: oneshot::Sender<Event>) -> Result<(), &'static str> {
        let mut state = self.lock();
        if state.in_flight.is_some() {
            return Err("State transition from Invoke to Ready failed for runtime: the invocation in flight has no response yet.");
        }
        if state.exit.is_some() || state.init_failure.is_some() {
            return Err(
                "State transition to Ready failed for runtime: the environment has failed.",
            );
        }
        state.parked = Some(park);
        state.initialised = true;
        state.idle_since = Some(Instant::now());
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }

    /// `/response` or `/error` for `request_id`.
    pub fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), Unanswerable> {
        let mut state = self.lock();
        match state.in_flight.take() {
            Some(in_flight) if in_flight.request_id == request_id => {
                // The invoker may have given up (a timeout); the answer is then dropped.
                let _ = in_flight.reply.send(outcome);
                state.last_answered = Some(in_flight.request_id);
                Ok(())
            }
            other => {
                state.in_flight = other;
                if state.last_answered.as_deref() == Some(request_id) {
                    Err(Unanswerable::AlreadyAnswered)
                } else {
                    Err(Unanswerable::UnknownRequest)
                }
            }
        }
    }

    /// `/init/error`: the runtime cannot start; it exits next.
    pub fn fail_init(&self, outcome: Outcome) -> Result<(), &'static str> {
        let mut state = self.lock();
        if state.initialised {
            return Err("State transition from Ready to InitError failed for runtime.");
        }
        state.init_failure = Some(outcome);
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Hands `event` to a parked `/next`; `None` when the instance is not idle.
    fn claim(&self, event: Event) -> Option<oneshot::Receiver<Outcome>> {
        let mut state = self.lock();
        if state.in_flight.is_some() || state.exit.is_some() {
            return None;
        }
        let parked = state.parked.take()?;
        let (reply, outcome) = oneshot::channel();
        let request_id = event.request_id.clone();
        if parked.send(event).is_err() {
            // The runtime hung up while parked; it is not usable.
            return None;
        }
        state.in_flight = Some(InFlight { request_id, reply });
        state.idle_since = None;
        Some(outcome)
    }

    fn exited(&self, how: String) {
        let mut state = self.lock();
        if let Some(in_flight) = state.in_flight.take() {
            let message = format!("Runtime exited with error: {how}");
            let _ = in_flight.reply.send(Outcome::failure(
                "Runtime.ExitError",
                &in_flight.request_id,
                &message,
            ));
        }
        state.parked = None;
        state.exit = Some(how);
        drop(state);
        self.changed.notify_waiters();
    }

    fn request_in_flight(&self) -> Option<String> {
        self.lock().in_flight.as_ref().map(|f| f.request_id.clone())
    }
}

/// How a new instance's start ended.
pub(super) enum Started {
    Ready,
    /// It never reached `/next`: the error the first invocation reports.
    Failed(Outcome),
}

pub(super) struct Instance {
    pub id: u64,
    slots: Arc<Slots>,
    pid: Option<u32>,
    tasks: Vec<JoinHandle<()>>,
}

impl Instance {
    /// Starts the runtime's process with Lambda's environment and its own Runtime API server.
    /// A code package the runtime cannot start is an `Err` outcome, not a process.
    pub async fn start(
        id: u64,
        spec: &FunctionSpec,
        interpreters: &Interpreters,
        logs: Arc<dyn FunctionLogs>,
    ) -> Result<Result<Instance, Outcome>, InvokeError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(InvokeError::Server)?;
        let addr = listener.local_addr().map_err(InvokeError::Server)?;
        let slots = Arc::new(Slots::default());
        let app = runtime_api::router(slots.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "Runtime API server stopped");
            }
        });
        let mut command = match launch_command(spec, interpreters) {
            Ok(command) => command,
            Err(outcome) => {
                server.abort();
                return Ok(Err(outcome));
            }
        };
        command
            .env_clear()
            .envs(&spec.environment)
            .envs(reserved_environment(spec, id, &addr.to_string()))
            .current_dir(&spec.code_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                let message = format!("the runtime could not be started: {e}");
                return Ok(Err(Outcome::failure(
                    "Runtime.InvalidEntrypoint",
                    "init",
                    &message,
                )));
            }
        };
        let pid = child.id();
        let mut tasks = vec![server];
        let name = || (spec.function_name.clone(), spec.version.clone());
        if let Some(stdout) = child.stdout.take() {
            tasks.push(tokio::spawn(forward_lines(
                stdout,
                slots.clone(),
                logs.clone(),
                name(),
                id,
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            tasks.push(tokio::spawn(forward_lines(
                stderr,
                slots.clone(),
                logs,
                name(),
                id,
            )));
        }
        let watched = slots.clone();
        tasks.push(tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe(status),
                Err(e) => format!("lost track of the process: {e}"),
            };
            watched.exited(how);
        }));
        Ok(Ok(Instance {
            id,
            slots,
            pid,
            tasks,
        }))
    }

    /// Waits until the runtime reaches its first `/next`, fails its init, exits, or takes
    /// longer than `limit`.
    pub async fn started(&self, limit: Duration) -> Started {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.slots.changed.notified();
            {
                let state = self.slots.lock();
                if let Some(failure) = &state.init_failure {
                    return Started::Failed(failure.clone());
                }
                if state.initialised {
                    return Started::Ready;
                }
                if let Some(how) = &state.exit {
                    return Started::Failed(Outcome::failure(
                        "Runtime.ExitError",
                        "init",
                        &format!("Runtime exited with error: {how}"),
                    ));
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Started::Failed(Outcome::failure(
                    "Runtime.InitError",
                    "init",
                    &format!(
                        "the runtime did not ask for an invocation within {} seconds of starting",
                        limit.as_secs()
                    ),
                ));
            }
        }
    }

    pub fn claim(&self, event: Event) -> Option<oneshot::Receiver<Outcome>> {
        self.slots.claim(event)
    }

    /// Answered its last invocation but not yet back on `/next`.
    pub fn is_returning(&self) -> bool {
        let state = self.slots.lock();
        state.initialised
            && state.in_flight.is_none()
            && state.parked.is_none()
            && state.exit.is_none()
    }

    /// Waits up to `limit` for the instance to park on `/next` (or end); whether it did.
    pub async fn parked_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.slots.changed.notified();
            {
                let state = self.slots.lock();
                if state.parked.is_some() || state.exit.is_some() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    pub fn has_exited(&self) -> bool {
        self.slots.lock().exit.is_some()
    }

    /// How long it has waited on `/next` without work, if it is idle.
    pub fn idle_for(&self) -> Option<Duration> {
        self.slots.lock().idle_since.map(|since| since.elapsed())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // The whole group: a runtime's own children go with it.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The program a runtime starts with: the package's `bootstrap`, or an interpreter running
/// the handler. A `bootstrap` that is missing or not executable fails as Lambda reports it.
fn launch_command(
    spec: &FunctionSpec,
    interpreters: &Interpreters,
) -> Result<tokio::process::Command, Outcome> {
    let handler = spec.config.handler.as_str();
    match spec.config.runtime {
        Runtime::ProvidedAl2023 => {
            let bootstrap = spec.code_dir.join("bootstrap");
            check_executable(&bootstrap)?;
            Ok(tokio::process::Command::new(bootstrap))
        }
        Runtime::Python { .. } => {
            let mut command = tokio::process::Command::new(&interpreters.python);
            // The working directory (the code) comes first on the import path.
            command.args(["-m", "awslambdaric", handler]);
            Ok(command)
        }
        Runtime::Nodejs20 | Runtime::Nodejs22 => {
            let mut command = tokio::process::Command::new(&interpreters.node);
            command.arg(&interpreters.node_runtime).arg(handler);
            Ok(command)
        }
    }
}

fn check_executable(bootstrap: &Path) -> Result<(), Outcome> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |message: String| Outcome::failure("Runtime.InvalidEntrypoint", "init", &message);
    match std::fs::metadata(bootstrap) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(meta) if meta.is_file() => Err(refuse(format!(
            "fork/exec {}: permission denied (bootstrap must be executable: chmod +x bootstrap)",
            bootstrap.display()
        ))),
        _ => Err(refuse(format!(
            "Couldn't find valid bootstrap(s): [{}]",
            bootstrap.display()
        ))),
    }
}

/// What Lambda sets in every execution environment (the function cannot override these).
fn reserved_environment(spec: &FunctionSpec, instance: u64, api: &str) -> Vec<(String, String)> {
    let today = OffsetDateTime::now_utc().date();
    let stream = format!(
        "{:04}/{:02}/{:02}/[{}]{instance:032x}",
        today.year(),
        u8::from(today.month()),
        today.day(),
        spec.version
    );
    let mut vars = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.config.memory.get().to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("_HANDLER", spec.config.handler.as_str().to_owned()),
        ("LAMBDA_TASK_ROOT", spec.code_dir.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", spec.code_dir.display().to_string()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        // The host's, so interpreters and tools resolve as they do for the developer.
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ];
    if let Some(env) = spec.config.runtime.execution_env() {
        vars.push(("AWS_EXECUTION_ENV", env));
    }
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn forward_lines(
    stream: impl AsyncRead + Unpin,
    slots: Arc<Slots>,
    logs: Arc<dyn FunctionLogs>,
    (function_name, version): (String, String),
    instance: u64,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.write(LogLine {
            function_name: function_name.clone(),
            version: version.clone(),
            instance,
            request_id: slots.request_in_flight(),
            at: OffsetDateTime::now_utc(),
            line,
        });
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => status.to_string(),
    }
}
