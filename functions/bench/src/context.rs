//! What every scenario runs against: the mode, the run count, the workspace's binaries, a
//! scratch directory, and the S3 endpoint the bench script started.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::sites::SiteKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The small site, one run: the suite keeps working.
    Quick,
    /// The sites the targets are stated for.
    Full,
}

/// The S3 endpoint (s3s-fs) and the credentials it checks signatures with.
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

pub struct Bench {
    pub mode: Mode,
    pub runs: usize,
    /// The workspace root: `infra/edge/router.js`, `.tools/`, `target/`.
    pub root: PathBuf,
    /// Scratch space for generated sites and state directories, removed at exit.
    pub scratch: tempfile::TempDir,
    pub s3: S3Endpoint,
}

impl Bench {
    pub fn from_env(mode: Mode, runs: usize) -> anyhow::Result<Self> {
        let root = std::env::var_os("SLIPWAY_BENCH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
        let root = root
            .canonicalize()
            .with_context(|| format!("the workspace root {}", root.display()))?;
        let url = std::env::var("SLIPWAY_TEST_S3S_URL").context(
            "SLIPWAY_TEST_S3S_URL is not set: run the suite through tests/tools/bench.sh, \
             which starts s3s-fs",
        )?;
        let scratch = tempfile::Builder::new()
            .prefix("slipway-bench-")
            .tempdir_in(std::env::temp_dir())?;
        Ok(Self {
            mode,
            runs,
            root,
            scratch,
            s3: S3Endpoint {
                url,
                access_key: "slipwaytest".to_owned(),
                secret_key: "slipwaytestsecret".to_owned(),
            },
        })
    }

    /// The site the mode measures: main in full runs, small in quick ones.
    pub fn site(&self) -> SiteKind {
        match self.mode {
            Mode::Quick => SiteKind::Small,
            Mode::Full => SiteKind::Main,
        }
    }

    /// A binary of this workspace, from the profile the bench script built
    /// (`SLIPWAY_BENCH_PROFILE`: `release` for figures, `debug` in quick runs).
    pub fn release_bin(&self, name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"));
        let profile = std::env::var("SLIPWAY_BENCH_PROFILE").unwrap_or_else(|_| "release".into());
        target.join(profile).join(name)
    }

    /// A tool the test command installed under `.tools/` (e.g. `venv/bin/aws`).
    pub fn tool(&self, relative: &str) -> PathBuf {
        self.root.join(".tools").join(relative)
    }

    /// A fresh directory under the scratch space.
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// The machine the figures came from, for the report.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let memory_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "cpu": cpu,
        "memory_gib": memory_kb / (1024 * 1024),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}
