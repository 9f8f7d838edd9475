//! The `slipway` command line.

mod archive;
mod cli;
mod client;
mod commands;
mod output;

use std::ffi::OsString;
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
    let cli = match Cli::try_parse().and_then(Cli::checked) {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err, std::env::args_os()),
    };
    init_tracing(&cli);
    let output = Output::new(cli.json);
    let verbose = cli.verbose > 0;
    match commands::run(cli.command, cli.connection, output).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err, output, verbose);
            ExitCode::FAILURE
        }
    }
}

/// clap's message on stderr (help and version on stdout) and clap's exit code: 2 for usage
/// errors, 0 for `--help` and `--version`. A usage error under `--json` also puts an error
/// document on stdout, so scripts that parse it see what went wrong.
fn usage_error(err: &clap::Error, args: impl IntoIterator<Item = OsString>) -> ExitCode {
    if err.use_stderr() && json_requested(args) {
        Output::new(true).result(&usage_error_body(err), String::new);
    }
    if let Err(print) = err.print() {
        eprintln!("error: cannot print the usage error: {print}");
    }
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

/// `--json` among the options, before any `--`.
fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

fn usage_error_body(err: &clap::Error) -> ApiErrorBody {
    // `StyledStr`'s Display drops colours.
    let rendered = err.render().to_string();
    let message = rendered.trim();
    ApiErrorBody {
        error: ApiErrorDetail {
            code: "usage".to_owned(),
            message: message
                .strip_prefix("error: ")
                .unwrap_or(message)
                .to_owned(),
        },
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
        // The credential chain warns about every provider it skips; the error says what failed.
        let aws_config = if cli.verbose >= 2 { "debug" } else { "error" };
        let crates = [
            "slipway",
            "slipway_core",
            "slipway_local",
            "slipway_asl",
            "slipway_aws",
        ];
        let directives: Vec<String> = [others.to_owned(), format!("aws_config={aws_config}")]
            .into_iter()
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("slipway")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn json_is_requested_by_the_flag_before_any_double_dash() {
        assert!(json_requested(args(&["deploy", "--json", "--site"])));
        assert!(json_requested(args(&["--json"])));
        assert!(!json_requested(args(&["deploy", ".", "--site", "docs"])));
        assert!(!json_requested(args(&["deploy", "--", "--json"])));
        // The program name is not an option.
        assert!(!json_requested(
            ["--json"].iter().map(OsString::from).collect::<Vec<_>>()
        ));
    }

    #[test]
    fn usage_errors_become_an_uncoloured_error_document() {
        let err = Cli::command()
            .color(clap::ColorChoice::Always)
            .try_get_matches_from(args(&["deploy", "--json", "--site", "Bad_Name", "."]))
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.render().ansi().to_string().contains('\x1b'));
        let body = usage_error_body(&err);
        assert_eq!(body.error.code, "usage");
        assert!(
            body.error
                .message
                .starts_with("invalid value 'Bad_Name' for '--site <SITE>'"),
            "{}",
            body.error.message
        );
        assert!(
            !body.error.message.contains('\x1b'),
            "{:?}",
            body.error.message
        );
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for flag in ["--help", "--version"] {
            let err = Cli::try_parse_from(args(&["--json", flag])).unwrap_err();
            assert!(!err.use_stderr(), "{flag}");
            assert_eq!(err.exit_code(), 0, "{flag}");
        }
    }
}
