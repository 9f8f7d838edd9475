//! Scenario 6, the Lambda footprint of every function crate:
//! - release zip: `target/lambda/<function>/bootstrap` as `cargo lambda build --release`
//!   leaves it (arm64 with cargo-lambda.toml), deflated into a zip the way cargo-lambda and
//!   SAM package it;
//! - cold init: the function's host build (the bench profile's, `release` for figures) started
//!   as Lambda starts it, with the stack's environment and static credentials, against a Runtime
//!   API on 127.0.0.1 here; timed from spawn to its first `GET .../invocation/next`, which is
//!   when Lambda's Init phase ends. Nothing leaves loopback: the functions only build clients
//!   at init, and instance metadata is disabled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::context::{Bench, Mode};
use crate::report::{median, Row};

/// Every Lambda function crate (tests/tools/build-lambdas.sh builds the same list).
pub const FUNCTIONS: [&str; 9] = [
    "source-trigger",
    "prepare",
    "publish",
    "activate",
    "prune",
    "mark-failed",
    "api",
    "github-webhook",
    "housekeeping",
];

const MAX_ZIP_BYTES: u64 = 4_000_000;
const MAX_INIT_MS: f64 = 30.0;
/// Cold starts measured per function and run of the suite: one start is a few milliseconds.
const STARTS_PER_RUN: usize = 4;
/// A function that has not asked for an invocation by then is reported as failing.
const INIT_LIMIT: Duration = Duration::from_secs(10);
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next ";

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for function in FUNCTIONS {
        rows.push(zip_row(bench, function)?);
    }
    rows.extend(cold_init_rows(bench).await?);
    Ok(rows)
}

fn row(bench: &Bench, metric: String, unit: &str, measured: f64, target: &str, met: bool) -> Row {
    Row::figure(6, "Lambda footprint", metric, unit, measured, bench.runs).against(target, met)
}

/// The target directory the bench's binaries come from (`<target>/<profile>/<name>`).
fn target_dir(bench: &Bench) -> PathBuf {
    let binary = bench.release_bin("bootstrap");
    binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| bench.root.join("target"))
}

fn zip_row(bench: &Bench, function: &str) -> anyhow::Result<Row> {
    let bootstrap = target_dir(bench)
        .join("lambda")
        .join(function)
        .join("bootstrap");
    let binary = std::fs::read(&bootstrap).with_context(|| {
        format!(
            "{} (build the functions first: bash tests/tools/build-lambdas.sh)",
            bootstrap.display()
        )
    })?;
    let zipped = zip_bootstrap(&binary)?;
    Ok(row(
        bench,
        format!(
            "release zip, {function} ({}, bootstrap {:.2} MB)",
            elf_machine(&binary),
            binary.len() as f64 / 1e6
        ),
        "MB",
        zipped as f64 / 1e6,
        "≤ 4 MB",
        zipped <= MAX_ZIP_BYTES,
    ))
}

/// The size of a zip holding `binary` as an executable `bootstrap`, deflated at the default
/// level, as `cargo lambda build --output-format zip` and `sam build` write it.
fn zip_bootstrap(binary: &[u8]) -> anyhow::Result<u64> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    writer.start_file("bootstrap", options)?;
    writer.write_all(binary)?;
    Ok(writer.finish()?.into_inner().len() as u64)
}

/// The architecture in an ELF header (e_machine).
fn elf_machine(binary: &[u8]) -> &'static str {
    match binary.get(18..20) {
        Some([0xb7, 0x00]) => "arm64",
        Some([0x3e, 0x00]) => "x86_64",
        _ => "unknown architecture",
    }
}

async fn cold_init_rows(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let profile = bench
        .release_bin("bootstrap")
        .parent()
        .and_then(Path::file_name)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let starts = match bench.mode {
        Mode::Quick => 1,
        Mode::Full => bench.runs * STARTS_PER_RUN,
    };
    let home = bench.dir("lambda-home")?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); FUNCTIONS.len()];
    // One untimed start each first: the binaries come from the page cache in every timed one.
    for start in 0..=starts {
        for (function, samples) in FUNCTIONS.iter().zip(samples.iter_mut()) {
            let binary = bench.release_bin(function);
            let init = cold_init(&binary, function, &home)
                .await
                .with_context(|| format!("cold start of {}", binary.display()))?;
            if start > 0 {
                samples.push(init.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(FUNCTIONS
        .iter()
        .zip(samples)
        .map(|(function, samples)| {
            let ms = median(&samples);
            let mut row = row(
                bench,
                format!(
                    "cold init, {function}: spawn → first Runtime API next ({} {profile} build)",
                    std::env::consts::ARCH
                ),
                "ms",
                ms,
                "≤ 30 ms",
                ms <= MAX_INIT_MS,
            );
            row.runs = samples.len();
            row
        })
        .collect())
}

/// The environment Lambda gives the function (infra/template.yaml's variables included),
/// with static credentials and a home without AWS profiles.
fn lambda_env(function: &str, home: &Path) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/slipway-bench"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef",
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "bench-session-token"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("_HANDLER", "bootstrap"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("RUST_LOG", "info"),
        ("SLIPWAY_SOURCE_BUCKET", "acme-source"),
        ("SLIPWAY_ARTIFACTS_BUCKET", "acme-artifacts"),
        ("SLIPWAY_HOSTING_BUCKET", "acme-hosting"),
        ("SLIPWAY_TABLE", "acme-slipway"),
        (
            "SLIPWAY_KVS_ARN",
            "arn:aws:cloudfront::111122223333:key-value-store/0a1b2c3d-1111-2222-3333-444455556666",
        ),
        ("SLIPWAY_SITE_DOMAIN", "sites.example.com"),
        ("SLIPWAY_PREVIEW_DOMAIN", "preview.example.com"),
        ("SLIPWAY_GITHUB_API_URL", "https://api.github.com"),
    ]
    .into_iter()
    .map(|(name, value)| (name, value.to_owned()))
    .collect();
    env.push(("HOME", home.display().to_string()));
    if matches!(function, "source-trigger" | "github-webhook") {
        env.push((
            "SLIPWAY_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site".to_owned(),
        ));
    }
    if function == "github-webhook" {
        env.push(("SLIPWAY_GITHUB_WEBHOOK_SECRET", "bench-secret".to_owned()));
    }
    if function != "source-trigger" {
        env.push((
            "SLIPWAY_GITHUB_TOKEN",
            "ghp_bench0000000000000000000000000000".to_owned(),
        ));
    }
    env
}

/// Starts `binary` against a fresh Runtime API and returns the time to its first `next`.
async fn cold_init(binary: &Path, function: &str, home: &Path) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let log = home.join(format!("{function}.log"));
    let output = std::fs::File::create(&log)?;
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(lambda_env(function, home))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = command.spawn()?;
    let outcome = tokio::time::timeout(INIT_LIMIT, async {
        tokio::select! {
            next = first_next(&listener) => next,
            status = child.wait() => Err(anyhow::anyhow!(
                "it exited ({}) before asking for an invocation",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
            )),
        }
    })
    .await;
    // The function stays blocked in `next` until killed: the init is all that is measured.
    child.kill().await.ok();
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    match outcome {
        Ok(Ok(at)) => Ok(at - spawned),
        Ok(Err(e)) => Err(e).with_context(|| format!("its output: {}", output())),
        Err(_) => anyhow::bail!("no `next` within {INIT_LIMIT:?}; its output: {}", output()),
    }
}

/// Accepts the function's first connection and returns when its `next` request's head arrived.
/// Anything else first (an init error report: the function refusing its configuration) fails.
async fn first_next(listener: &TcpListener) -> anyhow::Result<Instant> {
    let (mut stream, _) = listener.accept().await?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let arrived = Instant::now();
    let head = String::from_utf8_lossy(&head);
    anyhow::ensure!(
        head.starts_with(NEXT),
        "the function called the Runtime API with {:?} before `next`",
        head.lines().next().unwrap_or_default()
    );
    Ok(arrived)
}
