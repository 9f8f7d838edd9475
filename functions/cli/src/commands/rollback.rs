//! `slipway rollback NAME [--to ID]`.

use slipway_core::api_types::RollbackRequest;

use crate::cli::RollbackArgs;
use crate::client::ApiClient;
use crate::output::Output;

pub async fn run(args: RollbackArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let outcome = client
        .rollback(&args.site, &RollbackRequest { to: args.to })
        .await?;
    output.note(format!(
        "{} now serves deployment {} ({})",
        args.site, outcome.deployment_id, outcome.status
    ));
    output.result(&outcome, || outcome.url.clone());
    Ok(())
}
