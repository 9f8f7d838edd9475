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
mod services;
mod sites;

pub use deploy::DeployError;

use slipway_aws::signing::ApiSigner;

use crate::cli::{ApiAuth, ClientArgs, Command};
use crate::client::{ApiClient, ClientError};
use crate::output::Output;

/// Runs `command`. Client commands reach the API as `connection` says; `slipway dev` and
/// `slipway demo` take only its token (the one they require).
pub async fn run(command: Command, connection: ClientArgs, output: Output) -> anyhow::Result<()> {
    let client_command = match command {
        Command::Dev(args) => return dev::run(args, connection.token, output).await,
        Command::Demo(args) => return demo::run(args, connection.token, output).await,
        client_command => client_command,
    };
    let client = client(connection).await?;
    match client_command {
        Command::Sites(command) => sites::run(command, &client, output).await,
        Command::Services(command) => services::run(command, &client, output).await,
        Command::Deploy(args) => deploy::run(args, &client, output).await,
        Command::Deployments(args) => deployments::run(args, &client, output).await,
        Command::Rollback(args) => rollback::run(args, &client, output).await,
        Command::Promote(args) => promote::run(args, &client, output).await,
        Command::Previews(args) => previews::run(args, &client, output).await,
        Command::Logs(args) => logs::run(args, &client, output).await,
        Command::Dev(_) | Command::Demo(_) => unreachable!("handled above"),
    }
}

/// The client the flags ask for. With SigV4, AWS credentials are loaded here, so a missing
/// login fails before any work is done.
async fn client(args: ClientArgs) -> anyhow::Result<ApiClient> {
    let endpoint = args.endpoint.clone();
    let client = match args.auth()? {
        ApiAuth::Bearer(token) => ApiClient::new(endpoint, token.map(str::to_owned))?,
        ApiAuth::SigV4 { profile, region } => {
            let host = endpoint.host().unwrap_or_default();
            let signer = ApiSigner::from_environment(profile, region, host)
                .await
                .map_err(ClientError::Signing)?;
            tracing::debug!(%endpoint, region = signer.region(), "signing API requests with SigV4");
            ApiClient::signed(endpoint, signer)?
        }
    };
    Ok(client)
}
