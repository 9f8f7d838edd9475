//! The end-to-end harness: a real `slipway dev` process on loopback ports, the real
//! `slipway` binary as the client, and an HTTP client that reaches sites through the edge.
//!
//! It drives the binaries from outside, as a user would, and links none of slipway's crates:
//! only the tests under `tests/tests/` do (as dev-dependencies), to run the AWS adapters and
//! to hold the code, `infra/` and `statemachines/` together.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The `slipway` binary of this workspace (built by `cargo build --bins` before the tests).
pub fn slipway_bin() -> PathBuf {
    let bin = workspace_target().join("debug").join("slipway");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first (tests/run-all.sh does)",
        bin.display()
    );
    bin
}

/// A running `slipway dev`, stopped (SIGTERM, then kill) when dropped.
pub struct Dev {
    child: Child,
    pub state_dir: PathBuf,
    pub api_url: String,
    pub edge_addr: SocketAddr,
    _temp: Option<tempfile::TempDir>,
}

impl Dev {
    /// Starts `slipway dev` on free loopback ports with a fresh state directory.
    pub fn start() -> Dev {
        Dev::start_with_env(&[])
    }

    /// Starts `slipway dev` with a fresh state directory and these environment variables.
    pub fn start_with_env(env: &[(&str, &str)]) -> Dev {
        let temp = tempfile::tempdir().unwrap();
        let state_dir = temp.path().join("state");
        let mut dev = Dev::spawn(&state_dir, &[], env);
        dev._temp = Some(temp);
        dev
    }

    /// Starts `slipway dev` on an existing state directory (to check persistence).
    pub fn start_in(state_dir: &Path, extra: &[&str]) -> Dev {
        Dev::spawn(state_dir, extra, &[])
    }

    fn spawn(state_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut child = Command::new(slipway_bin())
            .args(["dev", "--json", "--state-dir"])
            .arg(state_dir)
            .args(["--api-addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("SLIPWAY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start slipway dev");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read slipway dev's first line");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("slipway dev printed {line:?}, not JSON: {e}"));
        let api_url = ready["api_url"].as_str().unwrap().to_owned();
        let edge_url = ready["edge_url"].as_str().unwrap();
        let port: u16 = edge_url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Dev {
            child,
            state_dir: state_dir.to_path_buf(),
            api_url,
            edge_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _temp: None,
        }
    }

    /// Runs `slipway ARGS` against this server.
    pub fn slipway(&self, args: &[&str]) -> Output {
        Command::new(slipway_bin())
            .args(args)
            .env("SLIPWAY_ENDPOINT", &self.api_url)
            .env_remove("SLIPWAY_TOKEN")
            .output()
            .expect("run slipway")
    }

    /// Runs `slipway ARGS --json`, asserts success and parses stdout.
    pub fn slipway_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.slipway(&all);
        assert!(
            out.status.success(),
            "slipway {args:?} failed: {}",
            describe(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "slipway {args:?} printed non-JSON ({e}): {}",
                describe(&out)
            )
        })
    }

    /// The record of deployment `id` in `slipway deployments SITE --json`.
    pub fn deployment(&self, site: &str, id: &str) -> Value {
        let listed = self.slipway_json(&["deployments", site]);
        listed
            .as_array()
            .expect("deployments --json prints an array")
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("deployment {id} is not listed: {listed}"))
            .clone()
    }

    /// The build log's lines for deployment `id` (`slipway logs ID --json`).
    pub fn log_lines(&self, id: &str) -> Vec<String> {
        let logs = self.slipway_json(&["logs", id]);
        logs["lines"]
            .as_array()
            .unwrap_or_else(|| panic!("logs --json has no lines: {logs}"))
            .iter()
            .map(|l| {
                l["line"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a log line without text: {l}"))
                    .to_owned()
            })
            .collect()
    }

    /// GET `path` on `site` through the edge, as a browser at `http://{site}.localhost:{port}` would.
    pub fn get(&self, site: &str, path: &str) -> Fetched {
        let host = format!("{site}.localhost");
        let client = reqwest::blocking::Client::builder()
            .resolve(&host, self.edge_addr)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let url = format!("http://{host}:{}{path}", self.edge_addr.port());
        let response = client
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let cache_control = header("cache-control");
        let body = response
            .bytes()
            .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"))
            .to_vec();
        Fetched {
            status,
            content_type,
            cache_control,
            body,
        }
    }

    /// Polls the edge until `site`'s `path` body contains `needle`, within `limit`.
    pub fn wait_for_content(
        &self,
        site: &str,
        path: &str,
        needle: &str,
        limit: Duration,
    ) -> Fetched {
        let start = Instant::now();
        loop {
            let fetched = self.get(site, path);
            if fetched.text().contains(needle) || start.elapsed() > limit {
                return fetched;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Deterministic, incompressible bytes (xorshift64), for files zip bomb guards must not trip on.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `files` under a new temporary directory.
pub fn site_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    dir
}

/// A zip of `files`, entries in the given order and named as given (unchecked, so tests can
/// build hostile archives).
pub fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A zip of `files` (see [`zip_bytes`]), written to `path`.
pub fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
    std::fs::write(path, zip_bytes(files)).unwrap();
}

/// Every file under `dir`, recursively, as `/`-separated paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                let parts: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_str().unwrap().to_owned())
                    .collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    found
}
