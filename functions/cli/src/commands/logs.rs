//! `slipway logs ID [--follow]`.

use std::time::Duration;

use crate::cli::LogsArgs;
use crate::output::Output;

const FOLLOW_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: LogsArgs, output: Output) -> anyhow::Result<()> {
    let client = super::client(args.client)?;
    let mut logs = client.logs(&args.id, 0).await?;
    print_lines(output, &logs.lines);
    if args.follow && !logs.status.is_terminal() {
        loop {
            // The status is terminal: read once more, for lines written just before it moved.
            let ended = logs.status.is_terminal();
            if !ended {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            let after = logs.lines.last().map_or(0, |line| line.seq);
            let next = client.logs(&args.id, after).await?;
            print_lines(output, &next.lines);
            logs.lines.extend(next.lines);
            logs.status = next.status;
            if ended {
                break;
            }
        }
    }
    if output.is_json() {
        output.result(&logs, String::new);
    } else {
        output.note(format!(
            "deployment {} is {}",
            logs.deployment_id, logs.status
        ));
    }
    Ok(())
}

/// Lines go out as they arrive; in JSON mode they are printed once, in the final document.
fn print_lines(output: Output, lines: &[slipway_core::ports::LogLine]) {
    if !output.is_json() {
        for line in lines {
            println!("{}", line.line);
        }
    }
}
