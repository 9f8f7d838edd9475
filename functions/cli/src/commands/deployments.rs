//! `slipway deployments NAME`: a site's deployments as a table, or the API's views as JSON.

use slipway_core::api_types::DeploymentView;
use slipway_core::model::DeploymentSource;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::cli::DeploymentsArgs;
use crate::client::ApiClient;
use crate::output::{table, Output};

pub async fn run(args: DeploymentsArgs, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    let deployments = client.list_deployments(&args.site).await?;
    output.result(&deployments, || render(&deployments));
    Ok(())
}

fn render(deployments: &[DeploymentView]) -> String {
    if deployments.is_empty() {
        return "no deployments yet".to_owned();
    }
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let source = match &d.source {
                DeploymentSource::Git(git) => format!("{}@{}", git.branch, git.sha.short()),
                DeploymentSource::Archive(_) if d.prebuilt => "upload (prebuilt)".to_owned(),
                DeploymentSource::Archive(_) => "upload".to_owned(),
            };
            vec![
                d.id.to_string(),
                d.target.to_string(),
                d.status.to_string(),
                source,
                timestamp(d.created_at),
                d.error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.name, e.cause))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "TARGET", "STATUS", "SOURCE", "CREATED", "ERROR"],
        &rows,
    )
}

/// UTC, to the second: deployments are minutes apart, not milliseconds.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_shown_in_utc_to_the_second() {
        assert_eq!(
            timestamp(datetime!(2025-03-04 05:06:07.891 +02:00)),
            "2025-03-04 03:06:07Z"
        );
    }
}
