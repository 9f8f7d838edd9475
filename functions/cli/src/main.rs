//! The `slipway` command line.

mod archive;
mod cli;
mod client;
mod commands;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use slipway_core::api_types::{ApiErrorBody, ApiErrorDetail};
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::client::ClientError;
use crate::commands::DeployError;
use crate::output::Output;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit 2 here, with clap's message.
    let cli = Cli::parse();
    init_tracing(&cli);
    let output = Output::new(cli.json);
    let verbose = cli.verbose > 0;
    match commands::run(cli.command, output).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err, output, verbose);
            ExitCode::FAILURE
        }
    }
}

/// RUST_LOG wins; otherwise the command's default level, raised for slipway's own crates
/// by each `-v`.
fn init_tracing(cli: &Cli) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let ours = match cli.verbose {
            0 => cli.command.default_log_level(),
            1 => "debug",
            _ => "trace",
        };
        let others = if cli.verbose >= 2 { "debug" } else { "warn" };
        let crates = ["slipway", "slipway_core", "slipway_local", "slipway_asl"];
        let directives: Vec<String> = std::iter::once(others.to_owned())
            .chain(crates.iter().map(|c| format!("{c}={ours}")))
            .collect();
        EnvFilter::new(directives.join(","))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `error: …` on stderr, with its root cause (every cause with `-v`). With `--json`, stdout
/// also gets an error document shaped like the API's own (`{"error":{"code","message"}}`),
/// unless a failed deploy's outcome was printed there already.
fn report(err: &anyhow::Error, output: Output, verbose: bool) {
    let client_error = err.chain().find_map(|e| e.downcast_ref::<ClientError>());
    let outcome_printed = err
        .downcast_ref::<DeployError>()
        .is_some_and(DeployError::outcome_printed);
    if output.is_json() && !outcome_printed {
        let body = match client_error {
            Some(ClientError::Api { body, .. }) => body.clone(),
            other => ApiErrorBody {
                error: ApiErrorDetail {
                    code: other.map_or("cli_error", ClientError::code).to_owned(),
                    message: format!("{err:#}"),
                },
            },
        };
        output.result(&body, String::new);
    }
    eprintln!("error: {err}");
    let causes: Vec<_> = err.chain().skip(1).collect();
    let shown = if verbose {
        &causes[..]
    } else {
        &causes[causes.len().saturating_sub(1)..]
    };
    for cause in shown {
        eprintln!("  caused by: {cause}");
    }
}
