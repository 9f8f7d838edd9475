//! Scenario 7, Memory: the peak RSS of the Publish handler over the large artifact (1 GiB: 8
//! files of 128 MiB; quick runs 4 of 16 MiB). Each run publishes in a child process, this
//! binary's hidden `publish-once` subcommand, so the peak is Publish's own and not the bench's:
//! the child reads its VmHWM from /proc/self/status when it is done and prints it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::StateStore;
use slipway_core::site::edge::deployment_prefix;
use slipway_core::steps::BucketNames;

use super::hosting::Hosting;
use crate::context::{Bench, Mode, S3Endpoint};
use crate::report::{median, Row};
use crate::sites::{self, SiteKind};

/// The quick mode's artifact: 4 × 16 MiB.
const QUICK_FILES: usize = 4;
const QUICK_FILE_BYTES: usize = 16 * 1024 * 1024;
const TARGET_MB: f64 = 256.0;
/// Publishing the 1 GiB artifact takes seconds; a hung child is stopped.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

/// What `publish-once` is told: where the stores are and what to publish. The S3 keys come
/// in the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), not on the command line.
#[derive(Debug, clap::Args)]
pub struct PublishOnce {
    /// The S3 endpoint.
    #[arg(long)]
    endpoint: String,
    /// The source, artifacts and hosting buckets.
    #[arg(long, value_delimiter = ',')]
    buckets: Vec<String>,
    /// The SQLite file holding the deployment's record.
    #[arg(long)]
    state: PathBuf,
    #[arg(long)]
    site: String,
    #[arg(long)]
    deployment: String,
    /// The artifact's key in the artifacts bucket.
    #[arg(long)]
    artifact: String,
}

/// What `publish-once` prints (one JSON line on stdout).
#[derive(Debug, Serialize, Deserialize)]
struct Published {
    file_count: u64,
    bytes: u64,
    seconds: f64,
    /// Peak resident set size, from /proc/self/status.
    vm_hwm_kib: u64,
}

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let site_dir = bench.dir("memory-site")?;
    let (files, total) = match bench.mode {
        Mode::Full => sites::generate(SiteKind::Large, &site_dir)?,
        Mode::Quick => sites::generate_media(&site_dir, QUICK_FILES, QUICK_FILE_BYTES)?,
    };
    let zip_path = bench.scratch.path().join("memory-site.zip");
    sites::zip_dir(&site_dir, &files, &zip_path)?;
    // Only the zip is needed from here on; the unzipped gigabyte goes.
    std::fs::remove_dir_all(&site_dir)?;
    let hosting = Hosting::create(bench, "memory").await?;
    let (site, artifact) = hosting.site_with_artifact("large", &zip_path).await?;
    std::fs::remove_file(&zip_path)?;

    let mut peaks = Vec::new();
    let mut throughput = Vec::new();
    for run in 0..bench.runs {
        let deployment = hosting.building(&site, artifact.clone()).await?;
        let published =
            publish_in_child(bench, &hosting, &site, &deployment.id, &artifact.key).await?;
        anyhow::ensure!(
            published.file_count == files.len() as u64 && published.bytes == total,
            "the child published {} files, {} bytes; the artifact has {}, {total}",
            published.file_count,
            published.bytes,
            files.len()
        );
        let record = hosting.state.get_deployment(&site, &deployment.id).await?;
        anyhow::ensure!(
            record.bytes == Some(total),
            "the record says {:?} bytes were published",
            record.bytes
        );
        hosting
            .clear(Bucket::Hosting, &deployment_prefix(&site, &deployment.id))
            .await?;
        let peak_mb = published.vm_hwm_kib as f64 * 1024.0 / 1e6;
        tracing::info!(run, peak_mb, seconds = published.seconds, "memory run");
        peaks.push(peak_mb);
        throughput.push(total as f64 / 1e6 / published.seconds);
    }
    hosting.clear(artifact.bucket, &artifact.key).await?;

    let artifact_name = match bench.mode {
        Mode::Full => "1 GiB artifact (8 × 128 MiB)",
        Mode::Quick => "64 MiB artifact (4 × 16 MiB, quick)",
    };
    let peak = median(&peaks);
    Ok(vec![Row {
        scenario: 7,
        name: format!("Publish handler, {artifact_name}"),
        metric: format!(
            "peak RSS (max of runs {:.0} MB; publish {:.0} MB/s)",
            peaks.iter().copied().fold(0.0, f64::max),
            median(&throughput)
        ),
        unit: "MB".to_owned(),
        measured: peak,
        baseline: None,
        target: format!("≤ {TARGET_MB:.0} MB"),
        met: Some(peaks.iter().all(|p| *p <= TARGET_MB)),
        runs: bench.runs,
    }])
}

async fn publish_in_child(
    bench: &Bench,
    hosting: &Hosting,
    site: &SiteName,
    deployment: &DeploymentId,
    artifact_key: &str,
) -> anyhow::Result<Published> {
    let exe = std::env::current_exe().context("the bench's own executable")?;
    let buckets = &hosting.buckets;
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("publish-once")
        .arg("--endpoint")
        .arg(&bench.s3.url)
        .arg("--buckets")
        .arg(format!(
            "{},{},{}",
            buckets.source, buckets.artifacts, buckets.hosting
        ))
        .arg("--state")
        .arg(&hosting.state_path)
        .arg("--site")
        .arg(site.to_string())
        .arg("--deployment")
        .arg(deployment.to_string())
        .arg("--artifact")
        .arg(artifact_key)
        .env("AWS_ACCESS_KEY_ID", &bench.s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &bench.s3.secret_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CHILD_TIMEOUT, command.output())
        .await
        .context("publish-once did not finish in time")??;
    anyhow::ensure!(
        output.status.success(),
        "publish-once failed: {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).context("publish-once's report")
}

/// The child: publishes one deployment on the S3 adapter and prints what it published and
/// its peak RSS.
pub async fn publish_once(job: PublishOnce) -> anyhow::Result<()> {
    let [source, artifacts, hosting] = <[String; 3]>::try_from(job.buckets)
        .map_err(|given| anyhow::anyhow!("--buckets takes three names, got {given:?}"))?;
    let endpoint = S3Endpoint {
        url: job.endpoint,
        access_key: std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID")?,
        secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY")?,
    };
    let buckets = BucketNames {
        source,
        artifacts,
        hosting,
    };
    let scratch = job
        .state
        .parent()
        .context("the state file's folder")?
        .to_owned();
    let hosting = Hosting::open(&endpoint, buckets, &job.state, &scratch)?;
    let site = SiteName::parse(&job.site)?;
    let id = DeploymentId::parse(&job.deployment)?;
    let deployment = hosting.state.get_deployment(&site, &id).await?;
    let artifact = ObjectLocation {
        bucket: Bucket::Artifacts,
        key: job.artifact,
    };
    let started = Instant::now();
    let published = hosting.publish(&deployment, &artifact).await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = Published {
        file_count: published.file_count,
        bytes: published.bytes,
        seconds,
        vm_hwm_kib: peak_rss_kib()?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// This process's peak resident set size so far (`VmHWM`, in kB as the kernel counts them).
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
