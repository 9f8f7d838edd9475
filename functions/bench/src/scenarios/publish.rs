//! Scenario 1, Publish throughput: slipway's Publish step, from the site's zip in the artifacts
//! bucket to a fresh deployment prefix in the hosting bucket through the S3 adapter, against
//! `aws s3 cp --recursive` of the same files unzipped, and against a raw concurrent-PUT loop
//! of the same files from memory (the endpoint's ceiling: the best of a few concurrencies).
//! Each run does all three in turn; every upload is checked for its object count and removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use slipway_core::ports::{Bucket, ObjectStore};
use slipway_core::routing::deployment_prefix;

use super::hosting::{Hosting, LoadedFiles, REGION};
use crate::context::Bench;
use crate::report::{median, Baseline, Row};
use crate::sites::{self, SiteKind};

/// The raw-PUT loop's concurrencies; the best median is the ceiling.
const RAW_LEVELS: [usize; 4] = [8, 16, 32, 64];
/// No upload of the sites here takes this long; a hung CLI is stopped.
const CLI_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let kind = bench.site();
    let site_dir = bench.dir("publish-site")?;
    let (files, total) = sites::generate(kind, &site_dir)?;
    let zip_path = bench.scratch.path().join("publish-site.zip");
    sites::zip_dir(&site_dir, &files, &zip_path)?;
    let hosting = Hosting::create(bench, "publish").await?;
    let (site, artifact) = hosting.site_with_artifact("bench", &zip_path).await?;
    let loaded = LoadedFiles::read(&site_dir, &files)?;
    let cli = AwsCli::new(bench)?;
    let megabytes = total as f64 / 1e6;
    let expected = files.len();

    let mut slipway = Vec::new();
    let mut aws = Vec::new();
    let mut raw: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for run in 0..bench.runs {
        let deployment = hosting.building(&site, artifact.clone()).await?;
        let started = Instant::now();
        let published = hosting.publish(&deployment, &artifact).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            published.file_count == expected as u64 && published.bytes == total,
            "Publish wrote {} files, {} bytes; the site has {expected}, {total}",
            published.file_count,
            published.bytes
        );
        let prefix = deployment_prefix(&site, &deployment.id);
        check_and_clear(&hosting, &prefix, expected).await?;
        slipway.push(megabytes / elapsed.as_secs_f64());

        let prefix = format!("cli/{run}/");
        let elapsed = cli
            .copy(&site_dir, &hosting.buckets.hosting, &prefix)
            .await?;
        check_and_clear(&hosting, &prefix, expected).await?;
        aws.push(megabytes / elapsed.as_secs_f64());

        for level in RAW_LEVELS {
            let prefix = format!("raw/{level}/{run}/");
            let elapsed = loaded
                .put_all(&hosting.objects, Bucket::Hosting, &prefix, level)
                .await?;
            check_and_clear(&hosting, &prefix, expected).await?;
            raw.entry(level)
                .or_default()
                .push(megabytes / elapsed.as_secs_f64());
        }
        tracing::info!(run, slipway = slipway[run], aws = aws[run], "publish run");
    }
    hosting.clear(artifact.bucket, &artifact.key).await?;

    let measured = median(&slipway);
    let cli_median = median(&aws);
    let (ceiling_level, ceiling) = raw
        .iter()
        .map(|(level, samples)| (*level, median(samples)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no raw-PUT runs")?;
    let name = match kind {
        SiteKind::Small => "Publish (small site: 200 files)",
        _ => "Publish (main site: 2,000 files, 21.4 MB)",
    };
    let levels: Vec<String> = raw
        .iter()
        .map(|(level, samples)| format!("{level}: {:.1}", median(samples)))
        .collect();
    tracing::info!(levels = %levels.join(", "), "raw-PUT MB/s by concurrency");
    let versus_cli = measured / cli_median;
    let versus_raw = measured / ceiling;
    Ok(vec![
        Row {
            scenario: 1,
            name: name.to_owned(),
            metric: "throughput vs aws s3 cp".to_owned(),
            unit: "MB/s".to_owned(),
            measured,
            baseline: Some(Baseline {
                name: "aws s3 cp --recursive".to_owned(),
                measured: cli_median,
                ratio: versus_cli,
            }),
            target: "≥ 4× aws s3 cp".to_owned(),
            met: Some(versus_cli >= 4.0),
            runs: bench.runs,
        },
        Row {
            scenario: 1,
            name: name.to_owned(),
            metric: format!(
                "throughput vs raw PUT (MB/s by concurrency: {})",
                levels.join(", ")
            ),
            unit: "MB/s".to_owned(),
            measured,
            baseline: Some(Baseline {
                name: format!("raw PUT loop, {ceiling_level} concurrent"),
                measured: ceiling,
                ratio: versus_raw,
            }),
            target: "≥ 80% of raw PUT".to_owned(),
            met: Some(versus_raw >= 0.8),
            runs: bench.runs,
        },
    ])
}

/// Every upload must have landed whole before its time counts; then it is removed, so the
/// next run writes to an emulator in the same state.
async fn check_and_clear(hosting: &Hosting, prefix: &str, expected: usize) -> anyhow::Result<()> {
    let listed = hosting.objects.list(Bucket::Hosting, prefix).await?.len();
    anyhow::ensure!(
        listed == expected,
        "{listed} objects under {prefix}; expected {expected}"
    );
    hosting.clear(Bucket::Hosting, prefix).await
}

/// The AWS CLI from the test tools, run with its default transfer settings, the bench's
/// credentials in the environment and no config files of the user's.
struct AwsCli {
    program: PathBuf,
    url: String,
    access_key: String,
    secret_key: String,
    no_config: PathBuf,
}

impl AwsCli {
    fn new(bench: &Bench) -> anyhow::Result<Self> {
        let program = bench.tool("venv/bin/aws");
        anyhow::ensure!(
            program.exists(),
            "{} is missing: the test command installs the AWS CLI there",
            program.display()
        );
        Ok(Self {
            program,
            url: bench.s3.url.clone(),
            access_key: bench.s3.access_key.clone(),
            secret_key: bench.s3.secret_key.clone(),
            no_config: bench.scratch.path().join("no-aws-config"),
        })
    }

    /// `aws s3 cp --recursive DIR s3://BUCKET/PREFIX`: the time from start to exit.
    async fn copy(&self, dir: &Path, bucket: &str, prefix: &str) -> anyhow::Result<Duration> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("s3")
            .arg("cp")
            .arg("--recursive")
            .arg("--only-show-errors")
            .arg(dir)
            .arg(format!("s3://{bucket}/{prefix}"))
            .arg("--endpoint-url")
            .arg(&self.url)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", &self.no_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.no_config)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .context("aws s3 cp did not finish in time")??;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            output.status.success(),
            "aws s3 cp failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(elapsed)
    }
}
