//! `slipway sites create|list|show`.

use slipway_core::api_types::{CreateSiteRequest, SiteView};

use crate::cli::SitesCommand;
use crate::client::ApiClient;
use crate::output::{table, Output};

pub async fn run(command: SitesCommand, client: &ApiClient, output: Output) -> anyhow::Result<()> {
    match command {
        SitesCommand::Create(args) => {
            let request = CreateSiteRequest {
                name: args.name.to_string(),
                spa: args.spa,
                clean_urls: args.clean_urls,
                retain: args.retain,
                repo: args.repo.map(|repo| repo.to_string()),
                branch: args.branch.map(|branch| branch.to_string()),
                root: args.root.map(|root| root.to_string()),
            };
            let site = client.create_site(&request).await?;
            output.result(&site, || format!("created {}: {}", site.name, site.url));
        }
        SitesCommand::List(_) => {
            let sites = client.list_sites().await?;
            output.result(&sites, || {
                if sites.is_empty() {
                    return "no sites yet; create one with `slipway sites create NAME`".to_owned();
                }
                let rows: Vec<Vec<String>> = sites
                    .iter()
                    .map(|view| {
                        vec![
                            view.name.to_string(),
                            live(view),
                            flags(view),
                            view.url.clone(),
                        ]
                    })
                    .collect();
                table(&["NAME", "LIVE", "ROUTING", "URL"], &rows)
            });
        }
        SitesCommand::Show(args) => {
            let view = client.get_site(&args.name).await?;
            output.result(&view, || {
                let created = super::deployments::timestamp(view.created_at);
                format!(
                    "name     {}\nurl      {}\nlive     {}\nrouting  {}\nretain   {}\nrepo     {}\ncreated  {created}",
                    view.name,
                    view.url,
                    live(&view),
                    flags(&view),
                    view.retain,
                    repo(&view),
                )
            });
        }
    }
    Ok(())
}

fn live(view: &SiteView) -> String {
    view.live_deployment
        .map_or_else(|| "-".to_owned(), |id| id.to_string())
}

/// `owner/repo (production: main, root: apps/web)`, or `-` for a site without one.
fn repo(view: &SiteView) -> String {
    let Some(link) = &view.repo else {
        return "-".to_owned();
    };
    match &link.root {
        Some(root) => format!(
            "{} (production: {}, root: {root})",
            link.repo, link.production_branch
        ),
        None => format!("{} (production: {})", link.repo, link.production_branch),
    }
}

fn flags(view: &SiteView) -> String {
    let routing = view.routing();
    let names: Vec<&str> = [(routing.spa, "spa"), (routing.clean_urls, "clean-urls")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}
