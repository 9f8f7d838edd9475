//! `slipway promote NAME --from TARGET|ID`.

use slipway_core::api_types::PromoteRequest;

use crate::cli::PromoteArgs;
use crate::client::ApiClient;
use crate::output::Output;

pub async fn run(args: PromoteArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let outcome = client
        .promote(&args.site, &PromoteRequest { from: args.from })
        .await?;
    output.note(format!(
        "{} production now serves deployment {}",
        args.site, outcome.deployment_id
    ));
    output.result(&outcome, || outcome.url.clone());
    Ok(())
}
