//! One module per command. Each takes its parsed arguments and the output mode, and
//! returns an error for `main` to report; results go through [`Output`].

mod demo;
mod deploy;
mod deployments;
mod dev;
mod logs;
mod previews;
mod promote;
mod rollback;
mod sites;

pub use deploy::DeployError;

use crate::cli::{ClientArgs, Command};
use crate::client::ApiClient;
use crate::output::Output;

pub async fn run(command: Command, output: Output) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => dev::run(args, output).await,
        Command::Demo(args) => demo::run(args, output).await,
        Command::Sites(command) => sites::run(command, output).await,
        Command::Deploy(args) => deploy::run(args, output).await,
        Command::Deployments(args) => deployments::run(args, output).await,
        Command::Rollback(args) => rollback::run(args, output).await,
        Command::Promote(args) => promote::run(args, output).await,
        Command::Previews(args) => previews::run(args, output).await,
        Command::Logs(args) => logs::run(args, output).await,
    }
}

fn client(args: ClientArgs) -> anyhow::Result<ApiClient> {
    Ok(ApiClient::new(args.endpoint, args.token)?)
}
