//! Scenario 5, the edge router: `infra/edge/router.js` under Node, timed per request over a
//! fixed-seed mix of 10,000 viewer requests (assets, pages, deep SPA routes, trailing slashes,
//! clean URLs, percent-encoded and malicious paths, unknown hosts) by `tests/edge/bench.mjs`,
//! which also counts the KVS lookups each request makes through the tests' `cloudfront` shim.
//!
//! "Exactly 1 KVS lookup per request" is checked for every request that reaches the lookup:
//! routed ones and unknown hosts (whose lookup misses). Paths the router refuses (400) are
//! answered before any lookup, so they must make 0, and are reported on their own row.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::context::{Bench, Mode};
use crate::report::{median, Row};

const SCRIPT: &str = "tests/edge/bench.mjs";
const ROUTER: &str = "infra/edge/router.js";
const URIS: usize = 10_000;
/// Passes over the 10,000 requests per timed run (full mode): 100,000 requests a run.
const PASSES: usize = 10;
/// Node stops timing after this long, whatever is left.
const NODE_SECONDS: u64 = 60;
const MAX_BYTES: u64 = 3 * 1024;
const MAX_MICROS: f64 = 2.0;

#[derive(Debug, Deserialize)]
struct Report {
    node: String,
    requests: usize,
    lookups: Lookups,
    ns_per_request: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct Lookups {
    routed: Outcome,
    rejected: Outcome,
    #[serde(rename = "unknown host")]
    unknown_host: Outcome,
}

/// The requests that ended one way and the lookups they made: total, fewest and most per request.
#[derive(Debug, Deserialize)]
struct Outcome {
    requests: u64,
    lookups: u64,
    min: u64,
    max: u64,
}

impl Outcome {
    fn per_request(&self) -> f64 {
        if self.requests == 0 {
            return f64::NAN;
        }
        self.lookups as f64 / self.requests as f64
    }
}

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let size = std::fs::metadata(bench.root.join(ROUTER))
        .with_context(|| format!("{ROUTER} in {}", bench.root.display()))?
        .len();
    let passes = match bench.mode {
        Mode::Quick => 1,
        Mode::Full => PASSES,
    };
    let report = node(bench, passes).await?;
    anyhow::ensure!(
        report.requests == URIS && report.ns_per_request.len() == bench.runs,
        "{SCRIPT} timed {} runs over {} requests, not {} over {URIS}: it hit its {NODE_SECONDS} s bound",
        report.ns_per_request.len(),
        report.requests,
        bench.runs,
    );
    let micros = median(&report.ns_per_request) / 1_000.0;
    let Lookups {
        routed,
        rejected,
        unknown_host,
    } = &report.lookups;
    let one_each = [routed, unknown_host]
        .iter()
        .all(|o| o.requests > 0 && o.min == 1 && o.max == 1);
    let row = |metric: String, unit: &str, measured: f64, target: &str, met: bool| {
        Row::figure(5, "Edge router", metric, unit, measured, bench.runs).against(target, met)
    };
    Ok(vec![
        row(
            format!(
                "time per request, {URIS} mixed URIs × {passes} passes (Node {})",
                report.node
            ),
            "µs",
            micros,
            "≤ 2 µs",
            micros <= MAX_MICROS,
        ),
        row(
            "router.js size".to_owned(),
            "bytes",
            size as f64,
            "≤ 3 KB (3,072 bytes)",
            size <= MAX_BYTES,
        ),
        row(
            format!(
                "KVS lookups per request reaching the lookup ({} routed, {} unknown hosts; min {}, max {})",
                routed.requests,
                unknown_host.requests,
                routed.min.min(unknown_host.min),
                routed.max.max(unknown_host.max),
            ),
            "lookups",
            (routed.lookups + unknown_host.lookups) as f64
                / (routed.requests + unknown_host.requests) as f64,
            "exactly 1",
            one_each,
        ),
        row(
            format!(
                "KVS lookups per refused path (400 before any lookup; {} requests)",
                rejected.requests
            ),
            "lookups",
            rejected.per_request(),
            "0",
            rejected.requests > 0 && rejected.lookups == 0,
        ),
    ])
}

/// Runs the Node script, bounded in time, and reads its JSON report.
async fn node(bench: &Bench, passes: usize) -> anyhow::Result<Report> {
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(&bench.root)
        .arg(SCRIPT)
        .args(["--uris", &URIS.to_string()])
        .args(["--passes", &passes.to_string()])
        .args(["--runs", &bench.runs.to_string()])
        .args(["--max-seconds", &NODE_SECONDS.to_string()])
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(NODE_SECONDS + 60), command.output())
        .await
        .with_context(|| format!("node {SCRIPT} ran longer than {NODE_SECONDS} s + 60 s"))?
        .with_context(|| format!("running node {SCRIPT} (is Node on the PATH?)"))?;
    anyhow::ensure!(
        output.status.success(),
        "node {SCRIPT} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).with_context(|| format!("the report of node {SCRIPT}"))
}
