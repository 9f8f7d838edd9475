//! The buildspec's phases as one `sh` script, and running it: the shell in its own process
//! group, its progress reports followed to the first failing command, its processes killed
//! when the build ends, times out or is cancelled.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use slipway_core::ports::BuildError;
use slipway_core::site::build_plan::Phase;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::log::{read_lines, LogSink};
use super::{io_error, InfraError, LocalBuilder};

/// How long output may keep arriving after the shell exited (from a process that left the
/// build's process group) before the builder stops reading.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

impl LocalBuilder {
    pub(super) async fn run_phases(
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
}

/// CodeBuild's name for a buildspec phase: `pre_build` → `PRE_BUILD`.
fn phase_name(phase: &Phase) -> String {
    phase.name.to_ascii_uppercase()
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The build as one `sh` script (see the `builder` module docs). Reports on fd 3:
/// `phase P`, `start P C`, `end P C STATUS`, `done P OK` (P, C: indices).
pub(super) fn render_script(phases: &[Phase]) -> String {
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
