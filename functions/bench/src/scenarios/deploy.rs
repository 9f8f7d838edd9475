//! Scenarios 3 and 4, end to end through a real `slipway dev`: the time from starting the
//! `slipway` CLI to the edge serving the new version (a prebuilt deploy) or the previous one
//! (a rollback). The edge is polled every few milliseconds for a marker in `index.html`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use slipway_core::api_types::{DeploymentOutcome, DeploymentView};
use slipway_core::model::DeploymentStatus;
use slipway_core::names::DeploymentId;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::dev::{mark_index, parse_output, Dev, Edge};
use crate::context::{Bench, Mode};
use crate::report::{median, Row};
use crate::sites::{self, SiteKind};

/// How often the edge is asked whether it serves the new version yet.
const DEPLOY_POLL: Duration = Duration::from_millis(5);
const ROLLBACK_POLL: Duration = Duration::from_millis(2);
/// No single deploy or rollback may take longer than these.
const DEPLOY_LIMIT: Duration = Duration::from_secs(120);
const ROLLBACK_LIMIT: Duration = Duration::from_secs(30);

const DEPLOY_TARGET_S: f64 = 1.5;
const ROLLBACK_TARGET_MS: f64 = 150.0;

/// When each part of one deploy ended, in seconds after the CLI was started.
struct DeployTimes {
    /// The edge served the new index.html.
    edge: f64,
    /// The CLI exited, having seen the deployment live.
    cli: f64,
    /// The API created the deployment: the CLI had walked and zipped the directory.
    created: f64,
    /// The upload was stored.
    uploaded: f64,
    /// Activate made it production's live deployment.
    activated: f64,
}

fn since(start: OffsetDateTime, at: OffsetDateTime) -> f64 {
    (at - start).as_seconds_f64()
}

fn path_arg(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn describe(kind: SiteKind, files: usize, bytes: u64) -> String {
    let kind = match kind {
        SiteKind::Small => "small",
        SiteKind::Main => "main",
        SiteKind::Large => "large",
    };
    format!(
        "{kind} site: {files} files, {:.1} MB",
        bytes as f64 / 1_000_000.0
    )
}

/// Starts `slipway ARGS` and polls the edge until `/` serves `marker`: how long until the
/// edge served it and until the CLI exited, and what the CLI printed. A CLI that fails
/// before the edge serves the marker ends the wait at once.
async fn until_served(
    dev: &Dev,
    edge: &Edge,
    args: &[&str],
    marker: &str,
    every: Duration,
    limit: Duration,
) -> anyhow::Result<(Duration, Duration, std::process::Output)> {
    let started = Instant::now();
    let child = dev.cli(args).spawn()?;
    let mut cli = tokio::spawn(async move {
        let output = child.wait_with_output().await;
        (output, started.elapsed())
    });
    let served = edge.wait_for("/", marker, every, limit);
    tokio::pin!(served);
    let mut finished = None;
    let seen = loop {
        tokio::select! {
            seen = &mut served => break seen?,
            done = &mut cli, if finished.is_none() => {
                let (output, exited) = done?;
                let output = output?;
                anyhow::ensure!(
                    output.status.success(),
                    "slipway {} failed ({}): {}",
                    args.join(" "),
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                finished = Some((output, exited));
            }
        }
    };
    let (output, exited) = match finished {
        Some(finished) => finished,
        None => {
            let (output, exited) = cli.await?;
            (output?, exited)
        }
    };
    Ok((seen.duration_since(started), exited, output))
}

/// Deploys `dir` once, marked with `marker`, timing it from the CLI's start.
async fn timed_deploy(
    dev: &Dev,
    edge: &Edge,
    site: &str,
    dir: &Path,
    marker: &str,
) -> anyhow::Result<DeployTimes> {
    let args = [
        "deploy",
        path_arg(dir)?,
        "--site",
        site,
        "--prebuilt",
        "--json",
    ];
    let wall = OffsetDateTime::now_utc();
    let (seen, exited, output) =
        until_served(dev, edge, &args, marker, DEPLOY_POLL, DEPLOY_LIMIT).await?;
    let outcome: DeploymentOutcome = parse_output(&args, &output)?;
    anyhow::ensure!(
        outcome.status == DeploymentStatus::Live,
        "deployment {} ended {}",
        outcome.deployment_id,
        outcome.status
    );
    let id = outcome.deployment_id;
    let view: DeploymentView = dev
        .api_get(&format!("/sites/{site}/deployments/{id}"))
        .await?;
    let activated = view
        .activated_at
        .context("a live production deployment has an activation time")?;
    // The local object store writes an object's headers last: their file's mtime is when
    // the upload was complete.
    let upload_meta = dev.object_meta_path("source", &format!("uploads/{site}/{id}.zip"));
    let uploaded = std::fs::metadata(&upload_meta)
        .and_then(|m| m.modified())
        .map(|t| since(wall, OffsetDateTime::from(t)))
        .unwrap_or(f64::NAN);
    Ok(DeployTimes {
        edge: seen.as_secs_f64(),
        cli: exited.as_secs_f64(),
        created: since(wall, view.created_at),
        uploaded,
        activated: since(wall, activated),
    })
}

/// Scenario 3: `slipway deploy DIR --prebuilt` of the main site, start to edge.
pub async fn run_deploy(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let kind = bench.site();
    let dir = bench.dir("deploy-site")?;
    let (files, bytes) = sites::generate(kind, &dir)?;
    let original = std::fs::read(dir.join("index.html"))?;
    let dev = Dev::start(bench, "deploy-dev").await?;
    let site = "bench";
    dev.create_site(site).await?;
    let edge = dev.edge(site)?;

    // One deploy first, unmeasured: each measured one then replaces a live version.
    mark_index(&dir, &original, "slipway-bench warm-up")?;
    timed_deploy(&dev, &edge, site, &dir, "slipway-bench warm-up").await?;

    let mut runs = Vec::with_capacity(bench.runs);
    for run in 0..bench.runs {
        let marker = format!("slipway-bench deploy {run} {}", DeploymentId::generate());
        mark_index(&dir, &original, &marker)?;
        let times = timed_deploy(&dev, &edge, site, &dir, &marker).await?;
        eprintln!(
            "  deploy {run}: edge {:.3} s, CLI {:.3} s (created {:.3}, uploaded {:.3}, live {:.3})",
            times.edge, times.cli, times.created, times.uploaded, times.activated
        );
        runs.push(times);
    }
    dev.stop().await?;

    let of = |f: fn(&DeployTimes) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let edge_s = of(|t| t.edge);
    let site_name = describe(kind, files.len(), bytes);
    let row = |name: String, metric: &str, measured: f64, target: &str, met: Option<bool>| Row {
        scenario: 3,
        name,
        metric: metric.to_owned(),
        unit: "s".to_owned(),
        measured,
        baseline: None,
        target: target.to_owned(),
        met,
        runs: runs.len(),
    };
    let part = |label: &str, measured: f64, metric: &str| {
        row(
            format!("Prebuilt deploy, where the time goes: {label}"),
            metric,
            measured,
            "-",
            None,
        )
    };
    Ok(vec![
        row(
            format!("Prebuilt deploy, end to end ({site_name})"),
            "`slipway deploy DIR --prebuilt` started → the edge serves the new index.html",
            edge_s,
            &format!("≤ {DEPLOY_TARGET_S} s"),
            Some(edge_s <= DEPLOY_TARGET_S),
        ),
        row(
            format!("Prebuilt deploy, CLI returns ({site_name})"),
            "`slipway deploy` started → it exits, having seen the deployment live",
            of(|t| t.cli),
            "-",
            None,
        ),
        part(
            "pack",
            of(|t| t.created),
            "CLI start, walk and zip → the API creates the deployment",
        ),
        part(
            "upload",
            of(|t| t.uploaded - t.created),
            "deployment created → the zip is stored",
        ),
        part(
            "pipeline",
            of(|t| t.activated - t.uploaded),
            "zip stored → Activate made it live (prepare, publish, activate)",
        ),
        part(
            "edge",
            of(|t| t.edge - t.activated),
            "live → the edge's poll sees it (polled every 5 ms)",
        ),
    ])
}

/// Runs `slipway ARGS` (a rollback or a promote) and times it until the edge serves
/// `marker`, checking that `expect` is what production serves now; in milliseconds, until
/// the edge served it and until the CLI exited.
async fn timed_switch(
    dev: &Dev,
    edge: &Edge,
    args: &[&str],
    expect: DeploymentId,
    marker: &str,
) -> anyhow::Result<(f64, f64)> {
    let mut args = args.to_vec();
    args.push("--json");
    let (seen, exited, output) =
        until_served(dev, edge, &args, marker, ROLLBACK_POLL, ROLLBACK_LIMIT).await?;
    let outcome: DeploymentOutcome = parse_output(&args, &output)?;
    anyhow::ensure!(
        outcome.deployment_id == expect,
        "slipway {} made {} live, not {expect}",
        args.join(" "),
        outcome.deployment_id
    );
    Ok((seen.as_secs_f64() * 1e3, exited.as_secs_f64() * 1e3))
}

/// Deploys `dir` with a fresh marker named after `name` and waits until it is live.
async fn deploy_marked(
    dev: &Dev,
    site: &str,
    dir: &Path,
    original: &[u8],
    name: &str,
) -> anyhow::Result<(DeploymentId, String)> {
    let marker = format!("slipway-bench {name} {}", DeploymentId::generate());
    mark_index(dir, original, &marker)?;
    let args = ["deploy", path_arg(dir)?, "--site", site, "--prebuilt"];
    let outcome: DeploymentOutcome = dev.cli_json(&args).await?;
    anyhow::ensure!(
        outcome.status == DeploymentStatus::Live,
        "deployment {} ended {}",
        outcome.deployment_id,
        outcome.status
    );
    Ok((outcome.deployment_id, marker))
}

/// Scenario 4: `slipway rollback` to the edge serving the previous version, alternating
/// with a roll forward so every run switches versions.
pub async fn run_rollback(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let kind = bench.site();
    let dir = bench.dir("rollback-site")?;
    let (files, bytes) = sites::generate(kind, &dir)?;
    let original = std::fs::read(dir.join("index.html"))?;
    let dev = Dev::start(bench, "rollback-dev").await?;
    let site = "bench";
    dev.create_site(site).await?;
    let edge = dev.edge(site)?;

    let (previous, previous_marker) =
        deploy_marked(&dev, site, &dir, &original, "previous").await?;
    let (current, current_marker) = deploy_marked(&dev, site, &dir, &original, "current").await?;
    edge.wait_for("/", &current_marker, ROLLBACK_POLL, ROLLBACK_LIMIT)
        .await?;

    // Back with a plain `slipway rollback`; forward with a promote of the newer deployment,
    // which leaves the older one superseded (`rollback --to` would mark it rolled back, and
    // a rolled-back deployment is no target for a plain rollback).
    let current_id = current.to_string();
    let forward_args = ["promote", site, "--from", current_id.as_str()];
    let (mut back, mut forward, mut back_cli) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..bench.runs {
        let (edge_ms, cli_ms) =
            timed_switch(&dev, &edge, &["rollback", site], previous, &previous_marker).await?;
        back.push(edge_ms);
        back_cli.push(cli_ms);
        let (again_ms, _) =
            timed_switch(&dev, &edge, &forward_args, current, &current_marker).await?;
        forward.push(again_ms);
        eprintln!(
            "  rollback {run}: back {edge_ms:.1} ms (CLI {cli_ms:.1} ms), forward {again_ms:.1} ms"
        );
    }
    dev.stop().await?;

    let site_name = describe(kind, files.len(), bytes);
    let quick = if bench.mode == Mode::Quick {
        ", quick"
    } else {
        ""
    };
    let measured = median(&back);
    let row = |name: String, metric: &str, samples: &[f64], met: Option<bool>| Row {
        scenario: 4,
        name,
        metric: metric.to_owned(),
        unit: "ms".to_owned(),
        measured: median(samples),
        baseline: None,
        target: if met.is_some() {
            format!("≤ {ROLLBACK_TARGET_MS} ms")
        } else {
            "-".to_owned()
        },
        met,
        runs: samples.len(),
    };
    Ok(vec![
        row(
            format!("Rollback, end to end ({site_name}{quick})"),
            "`slipway rollback` started → the edge serves the previous version",
            &back,
            Some(measured <= ROLLBACK_TARGET_MS),
        ),
        row(
            "Roll forward, end to end".to_owned(),
            "`slipway promote --from ID` started → the edge serves the newer version",
            &forward,
            None,
        ),
        row(
            "Rollback, CLI returns".to_owned(),
            "`slipway rollback` started → it exits",
            &back_cli,
            None,
        ),
    ])
}
