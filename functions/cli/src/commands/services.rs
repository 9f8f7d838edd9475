//! `slipway services create|list|show|delete`.

use slipway_core::api_types::{CreateServiceRequest, ServiceView};

use crate::cli::ServicesCommand;
use crate::client::ApiClient;
use crate::output::{table, Output};

pub async fn run(
    command: ServicesCommand,
    client: &ApiClient,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        ServicesCommand::Create(args) => {
            let request = CreateServiceRequest {
                name: args.name.to_string(),
                runtime: args.runtime,
                handler: args.handler,
                route: args.route,
                memory: args.memory,
                timeout: args.timeout,
                concurrency: args.concurrency,
            };
            let service = client.create_service(&args.site, &request).await?;
            output.result(&service, || {
                format!(
                    "created service {} of {}: {}",
                    service.name,
                    service.site,
                    url(&service)
                )
            });
        }
        ServicesCommand::List(args) => {
            let services = client.list_services(&args.site).await?;
            output.result(&services, || {
                if services.is_empty() {
                    return format!(
                        "{} has no services yet; add one with `slipway services create NAME --site {}`",
                        args.site, args.site
                    );
                }
                let rows: Vec<Vec<String>> = services
                    .iter()
                    .map(|service| {
                        vec![
                            service.name.to_string(),
                            or_dash(service.runtime.as_deref()),
                            or_dash(service.route.as_deref()),
                            traffic(service),
                            url(service),
                        ]
                    })
                    .collect();
                table(&["NAME", "RUNTIME", "ROUTE", "TRAFFIC", "URL"], &rows)
            });
        }
        ServicesCommand::Show(args) => {
            let service = client.get_service(&args.site, &args.name).await?;
            output.result(&service, || {
                format!(
                    "name         {}\nsite         {}\nruntime      {}\nhandler      {}\nmemory       {} MB\ntimeout      {} s\nconcurrency  {}\nroute        {}\nurl          {}\ntraffic      {}\ncreated      {}",
                    service.name,
                    service.site,
                    or_dash(service.runtime.as_deref()),
                    or_dash(service.handler.as_deref()),
                    service.memory,
                    service.timeout,
                    service.concurrency,
                    or_dash(service.route.as_deref()),
                    url(&service),
                    traffic(&service),
                    super::deployments::timestamp(service.created_at),
                )
            });
        }
        ServicesCommand::Delete(args) => {
            let service = client.delete_service(&args.site, &args.name).await?;
            output.result(&service, || {
                format!("deleted service {} of {}", service.name, service.site)
            });
        }
    }
    Ok(())
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn url(service: &ServiceView) -> String {
    or_dash(service.url.as_deref())
}

/// `01j… 100%`, or during a canary `01j… 90% / 01k… 10%`; `-` before the first deploy.
fn traffic(service: &ServiceView) -> String {
    match service.traffic {
        None => "-".to_owned(),
        Some(traffic) => match traffic.canary {
            None => format!("{} 100%", traffic.stable),
            Some(canary) => format!(
                "{} {}% / {} {}%",
                traffic.stable,
                100 - canary.weight.percent(),
                canary.deployment_id,
                canary.weight.percent()
            ),
        },
    }
}
