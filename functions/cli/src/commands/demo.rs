//! `slipway demo`: the README's first command. It starts `slipway dev` in this process and
//! deploys the bundled example site through the real API and the build path, exactly as
//! `slipway deploy` would, then checks that the edge serves the new version.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use include_dir::{include_dir, Dir};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use slipway_core::api_types::{CreateSiteRequest, DeploymentOutcome};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_local::dev::DevServer;

use super::deploy::{self, Wait};
use crate::archive::Contents;
use crate::cli::{DemoArgs, GithubArgs, WaitTimeout, DEFAULT_ENDPOINT};
use crate::client::{ApiClient, ClientError, Endpoint};
use crate::output::Output;

static EXAMPLE_SITE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/example-site");
const EXAMPLE: &str = "example";

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("interrupted before the example site went live")]
    Interrupted,
    #[error("cannot write the example site to a temporary directory")]
    Extract(#[source] std::io::Error),
    #[error("the site URL {0:?} from the API has no host")]
    SiteUrl(String),
    #[error("cannot fetch {url} from the local edge")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the edge answered {status} for {url}")]
    EdgeStatus { url: String, status: StatusCode },
    #[error("{url} does not show deployment {id}: the edge serves some other version")]
    WrongVersion { url: String, id: DeploymentId },
}

/// What `slipway demo --json` prints.
#[derive(Debug, Serialize)]
struct DemoSummary {
    api_url: String,
    edge_url: String,
    state_dir: PathBuf,
    #[serde(flatten)]
    outcome: DeploymentOutcome,
}

/// With `token`, the server requires it and the demo's own requests send it.
pub async fn run(args: DemoArgs, token: Option<String>, output: Output) -> anyhow::Result<()> {
    let github = super::dev::github(GithubArgs::off())?;
    let server = super::dev::start(&args.server, token.clone(), github).await?;
    output.note(format!(
        "slipway dev is running: API {}, edge {}",
        server.api_url(),
        server.edge_url()
    ));
    // Ctrl-C during the deploy still shuts the server down cleanly.
    let mut result = tokio::select! {
        result = deploy_example(&server, &args, token, output) => result,
        signal = super::dev::shutdown_signal() => match signal {
            Ok(()) => Err(DemoError::Interrupted.into()),
            Err(err) => Err(err.into()),
        },
    };
    if result.is_ok() && !args.exit {
        output.note("Serving until Ctrl-C.");
        result = super::dev::shutdown_signal().await.map_err(Into::into);
    }
    server.shutdown().await;
    result
}

async fn deploy_example(
    server: &DevServer,
    args: &DemoArgs,
    token: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&server.api_url())?;
    let client = ApiClient::new(endpoint.clone(), token)?;
    let site = SiteName::parse(EXAMPLE)?;
    ensure_site(&client, &site, output).await?;

    let source = tempfile::tempdir().map_err(DemoError::Extract)?;
    EXAMPLE_SITE
        .extract(source.path())
        .map_err(DemoError::Extract)?;
    output.note(format!("deploying the bundled example site to {site}"));
    let wait = Wait::Until(WaitTimeout::DEFAULT);
    let view = deploy::deploy(
        &client,
        output,
        &site,
        source.path(),
        Contents::Source,
        wait,
    )
    .await?;

    let summary = DemoSummary {
        api_url: server.api_url(),
        edge_url: server.edge_url(),
        state_dir: super::dev::absolute(&args.server.state_dir),
        outcome: deploy::outcome(&view),
    };
    if let Err(failed) = deploy::verdict(&view, wait) {
        output.result(&summary, String::new);
        return Err(failed.into());
    }
    check_edge(&view.url, view.id, args.server.edge_addr).await?;
    output.result(&summary, || hints(&view.url, &endpoint));
    Ok(())
}

async fn ensure_site(client: &ApiClient, site: &SiteName, output: Output) -> anyhow::Result<()> {
    match client.get_site(site).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => {
            let request = CreateSiteRequest {
                name: site.to_string(),
                spa: false,
                clean_urls: true,
                retain: None,
                repo: None,
                branch: None,
                root: None,
            };
            let created = client.create_site(&request).await?;
            output.note(format!("created site {site} ({})", created.url));
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Fetches the site from the local edge and checks the page shows the new deployment's id.
/// Site host names (`example.localhost`) are sent to the edge's address directly, since the
/// system resolver need not know `*.localhost`.
async fn check_edge(url: &str, id: DeploymentId, edge_addr: SocketAddr) -> anyhow::Result<()> {
    let parsed = Url::parse(url).map_err(|_| DemoError::SiteUrl(url.to_owned()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| DemoError::SiteUrl(url.to_owned()))?;
    let ip = match edge_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let fetch_error = |source| DemoError::Fetch {
        url: url.to_owned(),
        source,
    };
    // Port 0: the URL's own port is used.
    let http = reqwest::Client::builder()
        .resolve(host, SocketAddr::new(ip, 0))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(fetch_error)?;
    let response = http.get(parsed).send().await.map_err(fetch_error)?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(DemoError::EdgeStatus {
            url: url.to_owned(),
            status,
        }
        .into());
    }
    let page = response.text().await.map_err(fetch_error)?;
    if !page.contains(&id.to_string()) {
        return Err(DemoError::WrongVersion {
            url: url.to_owned(),
            id,
        }
        .into());
    }
    tracing::debug!(%url, deployment = %id, "the edge serves the new deployment");
    Ok(())
}

fn hints(url: &str, endpoint: &Endpoint) -> String {
    let endpoint_flag = if endpoint.to_string() == DEFAULT_ENDPOINT {
        String::new()
    } else {
        format!(" --endpoint {endpoint}")
    };
    format!(
        "The example site is live: {url}\n\ntry:\n  curl {url}\n  slipway deployments {EXAMPLE}{endpoint_flag}\n  slipway rollback {EXAMPLE}{endpoint_flag}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded_files(dir: &Dir<'_>, out: &mut Vec<String>) {
        for file in dir.files() {
            out.push(file.path().to_string_lossy().replace('\\', "/"));
        }
        for sub in dir.dirs() {
            embedded_files(sub, out);
        }
    }

    #[test]
    fn the_embedded_example_site_takes_the_build_path() {
        use slipway_core::site::build_plan::{decide, BuildDecision};

        let mut files = Vec::new();
        embedded_files(&EXAMPLE_SITE, &mut files);
        assert!(files.iter().any(|f| f == "pages/docs/getting-started.html"));
        assert!(!files.iter().any(|f| f.starts_with("dist/")), "{files:?}");
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        let read = |path: &str| EXAMPLE_SITE.get_file(path).map(|f| f.contents().to_vec());
        let Ok(BuildDecision::Build(plan)) = decide(&names, read, false) else {
            panic!("the example site must need a build");
        };
        assert_eq!(plan.build, ["node build.mjs"]);
        assert_eq!(plan.output_dir, "dist");
        assert!(
            plan.install.is_empty(),
            "the build must not need the network"
        );
    }

    #[test]
    fn hints_name_the_endpoint_only_when_it_is_not_the_default() {
        let default = Endpoint::parse(DEFAULT_ENDPOINT).unwrap();
        let text = hints("http://example.localhost:7080/", &default);
        assert!(
            text.contains("  slipway rollback example\n")
                || text.ends_with("slipway rollback example")
        );
        assert!(!text.contains("--endpoint"));

        let other = Endpoint::parse("http://127.0.0.1:9999").unwrap();
        let text = hints("http://example.localhost:7080/", &other);
        assert!(text.contains("slipway deployments example --endpoint http://127.0.0.1:9999"));
    }
}
