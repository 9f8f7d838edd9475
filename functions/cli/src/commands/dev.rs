//! `slipway dev`: the whole control plane in this process until SIGINT or SIGTERM.

use std::path::{Path, PathBuf};

use serde::Serialize;
use slipway_core::webhook::WebhookSecret;
use slipway_github::{GithubConfig, GithubToken};
use slipway_local::dev::{DevConfig, DevGithub, DevServer};

use crate::cli::{DevArgs, GithubArgs, ServerArgs};
use crate::output::Output;

/// What `slipway dev --json` prints once both listeners are up.
#[derive(Debug, Serialize)]
struct DevInfo {
    api_url: String,
    edge_url: String,
    state_dir: PathBuf,
}

pub async fn run(args: DevArgs, token: Option<String>, output: Output) -> anyhow::Result<()> {
    let server = start(&args.server, token, github(args.github)?).await?;
    let info = DevInfo {
        api_url: server.api_url(),
        edge_url: server.edge_url(),
        state_dir: absolute(&args.server.state_dir),
    };
    output.result(&info, || {
        format!(
            "slipway dev is running\n  API    {}\n  edge   {} (sites at {})\n  state  {}\nPress Ctrl-C to stop.",
            info.api_url,
            info.edge_url,
            site_url_pattern(&info.edge_url),
            info.state_dir.display(),
        )
    });
    let signal = shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(signal?)
}

pub async fn start(
    args: &ServerArgs,
    token: Option<String>,
    github: DevGithub,
) -> anyhow::Result<DevServer> {
    let config = DevConfig {
        state_dir: args.state_dir.clone(),
        api_addr: args.api_addr,
        edge_addr: args.edge_addr,
        token,
        limits: args.limits(),
        github,
    };
    Ok(DevServer::start(config).await?)
}

/// The GitHub settings `slipway dev` was started with.
pub fn github(args: GithubArgs) -> anyhow::Result<DevGithub> {
    let webhook_secret = args
        .github_webhook_secret
        .map(WebhookSecret::new)
        .transpose()?;
    Ok(DevGithub {
        webhook_secret,
        api: GithubConfig {
            api_url: args.github_api_url,
            token: args.github_token.map(GithubToken::new),
        },
    })
}

/// `http://localhost:7080` → `http://{site}.localhost:7080/`.
fn site_url_pattern(edge_url: &str) -> String {
    format!("{}/", edge_url.replacen("://", "://{site}.", 1))
}

/// Scripts get a path that still means something after they change directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn site_urls_are_subdomains_of_the_edge() {
        assert_eq!(
            super::site_url_pattern("http://localhost:7080"),
            "http://{site}.localhost:7080/"
        );
    }
}
