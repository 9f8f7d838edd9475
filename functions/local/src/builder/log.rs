//! The build's output on its way to the deployment's log: the shell's pipes split into
//! lines, and the sink that writes them in batches while the build runs.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::names::DeploymentId;
use slipway_core::ports::StateStore;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Log lines are written at least this often while a build runs, so `slipway logs` is live.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(200);
/// And at most this many lines go into one write.
const LOG_BATCH: usize = 500;
/// Longer output lines are cut: one runaway line must not fill memory or the log.
const MAX_LINE: usize = 16 * 1024;
/// The script starts each banner with this byte (ASCII record separator, `\036`), so a
/// banner gets its own log line even after output without a trailing newline.
const LINE_START: u8 = 0x1e;

/// Splits a stream into lines (lossy UTF-8, `\r\n` trimmed, cut at [`MAX_LINE`]).
/// [`LINE_START`] also ends a line that has text, and is dropped.
pub(super) async fn read_lines<R, F, Fut>(reader: R, mut emit: F)
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
pub(super) struct LogSink(mpsc::Sender<String>);

impl LogSink {
    pub(super) fn start(
        state: Arc<dyn StateStore>,
        deployment: DeploymentId,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * LOG_BATCH);
        (Self(tx), tokio::spawn(write_log(state, deployment, rx)))
    }

    pub(super) async fn line(&self, line: impl Into<String>) {
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
