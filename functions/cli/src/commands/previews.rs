//! `slipway previews NAME`.

use crate::cli::PreviewsArgs;
use crate::client::ApiClient;
use crate::output::{table, Output};

pub async fn run(args: PreviewsArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let previews = client.list_previews(&args.site).await?;
    output.result(&previews, || {
        if previews.is_empty() {
            return format!(
                "{} has no previews; push a branch or open a pull request",
                args.site
            );
        }
        let rows: Vec<Vec<String>> = previews
            .iter()
            .map(|p| {
                let source = match (p.pull_request, &p.branch) {
                    (Some(number), _) => format!("#{number}"),
                    (None, Some(branch)) => branch.to_string(),
                    (None, None) => "-".to_owned(),
                };
                vec![
                    p.target.to_string(),
                    source,
                    p.live_deployment.to_string(),
                    super::deployments::timestamp(p.updated_at),
                    p.url.clone(),
                ]
            })
            .collect();
        table(&["TARGET", "FROM", "DEPLOYMENT", "UPDATED", "URL"], &rows)
    });
    Ok(())
}
