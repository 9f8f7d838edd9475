//! A real `slipway dev` for the end-to-end scenarios: the release binary on loopback ports
//! with a fresh state directory, the `slipway` CLI pointed at it, and the edge reached the
//! way a browser reaches `http://{site}.localhost:{port}/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::context::Bench;

/// How long `slipway dev` may take to print its first line, and to stop.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// What `slipway dev --json` prints once both listeners are up.
#[derive(Debug, Deserialize)]
struct Ready {
    api_url: String,
    edge_url: String,
}

/// A running `slipway dev`, stopped with SIGTERM by [`Dev::stop`] (and killed if dropped).
pub struct Dev {
    child: Child,
    bin: PathBuf,
    api: reqwest::Client,
    pub api_url: String,
    pub edge_addr: SocketAddr,
    pub state_dir: PathBuf,
}

impl Dev {
    /// Starts `slipway dev` on free loopback ports, with its state and log under a fresh
    /// scratch directory called `name`.
    pub async fn start(bench: &Bench, name: &str) -> anyhow::Result<Dev> {
        let bin = bench.release_bin("slipway");
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: build it with `cargo build --release -p slipway`",
            bin.display()
        );
        let dir = bench.dir(name)?;
        let state_dir = dir.join("state");
        let log = std::fs::File::create(dir.join("dev.log"))?;
        let mut child = Command::new(&bin)
            .args(["dev", "--json", "--state-dir"])
            .arg(&state_dir)
            .args(["--api-addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .env_remove("SLIPWAY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} dev", bin.display()))?;
        let stdout = child.stdout.take().context("slipway dev's stdout")?;
        let mut line = String::new();
        tokio::time::timeout(START_LIMIT, BufReader::new(stdout).read_line(&mut line))
            .await
            .context("slipway dev did not start in time")??;
        let ready: Ready = serde_json::from_str(&line).with_context(|| {
            format!(
                "slipway dev printed {line:?}, not its JSON line (log: {})",
                dir.join("dev.log").display()
            )
        })?;
        let port: u16 = ready
            .edge_url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .with_context(|| format!("no port in the edge URL {}", ready.edge_url))?;
        Ok(Dev {
            child,
            bin,
            api: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            api_url: ready.api_url,
            edge_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state_dir,
        })
    }

    /// The server's process id, for reading its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `slipway ARGS` against this server, stdout piped, stderr discarded.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("SLIPWAY_ENDPOINT", &self.api_url)
            .env("RUST_LOG", "warn")
            .env_remove("SLIPWAY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `slipway ARGS --json` to completion and parses what it printed.
    pub async fn cli_json<T: DeserializeOwned>(&self, args: &[&str]) -> anyhow::Result<T> {
        let output = self.cli(args).arg("--json").output().await?;
        parse_output(args, &output)
    }

    /// GET `path` on the API, expecting a 200 with JSON.
    pub async fn api_get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.api_url);
        let response = self.api.get(&url).send().await?;
        anyhow::ensure!(
            response.status() == reqwest::StatusCode::OK,
            "GET {url}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    pub async fn create_site(&self, site: &str) -> anyhow::Result<()> {
        let _: serde_json::Value = self.cli_json(&["sites", "create", site]).await?;
        Ok(())
    }

    /// A client for `site` through the edge.
    pub fn edge(&self, site: &str) -> anyhow::Result<Edge> {
        let host = format!("{site}.localhost");
        let client = reqwest::Client::builder()
            .resolve(&host, self.edge_addr)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Edge {
            client,
            base: format!("http://{host}:{}", self.edge_addr.port()),
        })
    }

    /// Where the local object store keeps `key`'s stored headers: written last, so its
    /// modification time is when the object was complete.
    pub fn object_meta_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.state_dir
            .join("objects")
            .join(bucket)
            .join("meta")
            .join(key)
    }

    /// SIGTERM, then SIGKILL if it has not stopped within [`STOP_LIMIT`].
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("slipway dev did not stop within {STOP_LIMIT:?} of SIGTERM");
            }
        }
        Ok(())
    }
}

/// Parses a finished `slipway … --json`'s stdout, or says why it failed.
pub fn parse_output<T: DeserializeOwned>(
    args: &[&str],
    output: &std::process::Output,
) -> anyhow::Result<T> {
    anyhow::ensure!(
        output.status.success(),
        "slipway {} failed ({}): {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "slipway {} printed {:?}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// One site through the edge.
pub struct Edge {
    client: reqwest::Client,
    base: String,
}

impl Edge {
    /// GET `path`: status and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }

    /// Polls `path` every `every` until a 200 body contains `needle`; the instant the
    /// response that had it arrived, or an error after `limit`.
    pub async fn wait_for(
        &self,
        path: &str,
        needle: &str,
        every: Duration,
        limit: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        let needle = needle.as_bytes();
        loop {
            // A refused or failed request is just "not yet", like a 404 before the first deploy.
            if let Ok((200, body)) = self.get(path).await {
                if body.windows(needle.len()).any(|w| w == needle) {
                    return Ok(Instant::now());
                }
            }
            let next = Instant::now() + every;
            anyhow::ensure!(
                next < deadline,
                "{}{path} did not serve {:?} within {limit:?}",
                self.base,
                String::from_utf8_lossy(needle)
            );
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Writes `index.html` of `dir` with `marker` in it, keeping the generated content after it.
pub fn mark_index(dir: &Path, original: &[u8], marker: &str) -> std::io::Result<()> {
    let mut page = format!("<!-- {marker} -->\n").into_bytes();
    page.extend_from_slice(original);
    std::fs::write(dir.join("index.html"), page)
}
