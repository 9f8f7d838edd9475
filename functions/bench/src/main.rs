//! `slipway-bench`: every scenario of the performance suite against its baseline, side by
//! side in the same run (alternating), reporting medians. It prints a Markdown table and writes
//! a JSON document; nothing in it passes or fails. All traffic stays on 127.0.0.1.
//!
//! Run it through `tests/tools/bench.sh`, which builds the release binaries and starts the
//! S3 endpoint (s3s-fs); `--quick` (small site, one run each) is what the test command runs.

mod context;
mod report;
mod scenarios;
mod sites;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::context::{Bench, Mode};
use crate::report::{markdown, Row};

#[derive(Debug, Parser)]
#[command(name = "slipway-bench", version, about)]
struct Args {
    /// The small site and one run of each scenario: checks the suite works, measures little.
    #[arg(long)]
    quick: bool,
    /// Runs per scenario (each alternating with its baseline); medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only these scenarios (numbers from the README's table), e.g. `--only 1,5`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Where the JSON document goes (the Markdown table always goes to stdout).
    #[arg(long, default_value = "target/bench/report.json")]
    json: PathBuf,
    #[command(subcommand)]
    child: Option<Child>,
}

/// What scenarios run in child processes of the bench.
#[derive(Debug, clap::Subcommand)]
enum Child {
    /// Publishes one deployment and prints its peak RSS (scenario 7).
    #[command(hide = true)]
    PublishOnce(scenarios::memory::PublishOnce),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Child::PublishOnce(job)) = args.child {
        return scenarios::memory::publish_once(job).await;
    }
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    let runs = if args.quick { 1 } else { args.runs.max(1) };
    let bench = Bench::from_env(mode, runs)?;
    let mut rows: Vec<Row> = Vec::new();
    for (number, name) in scenarios::ALL {
        if !args.only.is_empty() && !args.only.contains(number) {
            continue;
        }
        eprintln!("scenario {number}: {name}");
        let measured = scenarios::run(*number, &bench).await?;
        rows.extend(measured);
    }
    let document = serde_json::json!({
        "mode": mode,
        "runs": runs,
        "machine": context::machine(),
        "rows": rows,
    });
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&document)?)?;
    println!("{}", markdown(&rows));
    eprintln!("JSON: {}", args.json.display());
    Ok(())
}
