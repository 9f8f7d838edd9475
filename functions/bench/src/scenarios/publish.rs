//! Scenario 1, Publish throughput: slipway's Publish step, from the site's zip in the artifacts
//! bucket to a fresh deployment prefix in the hosting bucket through the S3 adapter, against
//! two programs uploading the same files unzipped, `aws s3 cp --recursive` and
//! `rclone copy --transfers 64`, and against a raw concurrent-PUT loop of the same files from
//! memory (the endpoint's ceiling: the best of a few concurrencies). Each run does them all in
//! turn; every upload is checked for its object count and removed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use slipway_core::model::Bucket;
use slipway_core::ports::ObjectStore;
use slipway_core::site::edge::deployment_prefix;

use super::hosting::{Hosting, LoadedFiles, REGION};
use crate::context::Bench;
use crate::report::{median, Baseline, Row};
use crate::sites::{self, SiteKind};

/// The raw-PUT loop's concurrencies; the best median is the ceiling.
const RAW_LEVELS: [usize; 4] = [8, 16, 32, 64];
/// No upload of the sites here takes this long; a hung program is stopped.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// rclone's parallel uploads: the `--transfers` S3 power users pass instead of the default 4.
const RCLONE_TRANSFERS: usize = 64;
/// The rclone remote the bench configures through the environment (`RCLONE_CONFIG_<NAME>_…`).
const RCLONE_REMOTE: &str = "SLIPWAYBENCH";

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let uploads = [
        ExternalUpload::aws_cli(bench)?,
        ExternalUpload::rclone(bench)?,
    ];
    let kind = bench.site();
    let site_dir = bench.dir("publish-site")?;
    let (files, total) = sites::generate(kind, &site_dir)?;
    let zip_path = bench.scratch.path().join("publish-site.zip");
    sites::zip_dir(&site_dir, &files, &zip_path)?;
    let hosting = Hosting::create(bench, "publish").await?;
    let (site, artifact) = hosting.site_with_artifact("bench", &zip_path).await?;
    let loaded = LoadedFiles::read(&site_dir, &files)?;
    let megabytes = total as f64 / 1e6;
    let expected = files.len();

    let mut slipway = Vec::new();
    let mut external: Vec<Vec<f64>> = vec![Vec::new(); uploads.len()];
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

        tracing::info!(run, slipway = slipway[run], "publish run");

        for (upload, samples) in uploads.iter().zip(&mut external) {
            let prefix = format!("{}/{run}/", upload.slug);
            let elapsed = upload
                .copy(&site_dir, &hosting.buckets.hosting, &prefix)
                .await?;
            check_and_clear(&hosting, &prefix, expected).await?;
            samples.push(megabytes / elapsed.as_secs_f64());
            tracing::info!(
                run,
                baseline = upload.key,
                throughput = samples[run],
                "publish run"
            );
        }

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
    }
    hosting.clear(artifact.bucket, &artifact.key).await?;

    let measured = median(&slipway);
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
    let row = |metric: String, baseline: Baseline| {
        Row::figure(1, name, metric, "MB/s", measured, bench.runs).versus(baseline)
    };
    let mut rows: Vec<Row> = uploads
        .iter()
        .zip(&external)
        .map(|(upload, samples)| {
            let baseline = median(samples);
            let ratio = measured / baseline;
            let row = row(
                format!("throughput vs {}", upload.key),
                Baseline {
                    name: upload.name.clone(),
                    measured: baseline,
                    ratio,
                },
            );
            match upload.target {
                Some(target) => {
                    row.against(&format!("≥ {target}× {}", upload.key), ratio >= target)
                }
                None => row,
            }
        })
        .collect();
    let versus_raw = measured / ceiling;
    rows.push(
        row(
            format!(
                "throughput vs raw PUT (MB/s by concurrency: {})",
                levels.join(", ")
            ),
            Baseline {
                name: format!("raw PUT loop, {ceiling_level} concurrent"),
                measured: ceiling,
                ratio: versus_raw,
            },
        )
        .against("≥ 80% of raw PUT", versus_raw >= 0.8),
    );
    Ok(rows)
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

/// A baseline that is another program uploading the unzipped site with its own S3 client:
/// started without any of the user's `AWS_*` or `RCLONE_*` settings or config files (only what
/// its constructor sets), timed from start to exit, stopped if it hangs, failed unless it
/// exits 0.
struct ExternalUpload {
    /// The short name in the report's metric and target.
    key: &'static str,
    /// The prefix it uploads under (with the run's number).
    slug: &'static str,
    /// The command as the report names it.
    name: String,
    program: PathBuf,
    /// Its options; the directory and the destination follow.
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    /// The destination for a bucket and a prefix, as the program spells it.
    destination: fn(&str, &str) -> String,
    /// The ratio Publish is held to, if any (the other baselines only inform).
    target: Option<f64>,
}

impl ExternalUpload {
    /// The AWS CLI from the test tools, with its default transfer settings (10 requests in
    /// flight).
    fn aws_cli(bench: &Bench) -> anyhow::Result<Self> {
        let program = bench.tool("venv/bin/aws");
        anyhow::ensure!(
            program.exists(),
            "{} is missing: the test command installs the AWS CLI there",
            program.display()
        );
        let no_config = bench.scratch.path().join("no-aws-config").into_os_string();
        Ok(Self {
            key: "aws s3 cp",
            slug: "aws",
            name: "aws s3 cp --recursive".to_owned(),
            program,
            args: os_args(&[
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                "--endpoint-url",
                &bench.s3.url,
            ]),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), (&bench.s3.access_key).into()),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    (&bench.s3.secret_key).into(),
                ),
                ("AWS_DEFAULT_REGION".into(), REGION.into()),
                ("AWS_CONFIG_FILE".into(), no_config.clone()),
                ("AWS_SHARED_CREDENTIALS_FILE".into(), no_config),
            ],
            destination: |bucket, prefix| format!("s3://{bucket}/{prefix}"),
            target: Some(4.0),
        })
    }

    /// rclone from the system (tests/tools/install.sh installs Debian's), as a power user runs
    /// it for a one-shot upload to a fresh prefix: 64 transfers, and no requests beyond one PUT
    /// a file, like the AWS CLI and Publish (`--s3-no-check-bucket`: the bucket exists;
    /// `--no-check-dest`: nothing to compare with, so no listing; `--s3-no-head`: no HEAD after
    /// each PUT, whose ETag rclone still checks against the file's MD5). Every file is below
    /// the multipart cutoff (200 MiB), so each goes in one PUT with its Content-MD5. Its remote
    /// is configured through the environment, with no config file (`--config ""`).
    fn rclone(bench: &Bench) -> anyhow::Result<Self> {
        let program = on_path("rclone").context(
            "rclone is not on PATH: the benchmarks compare Publish with it; \
             tests/tools/install.sh installs it (apt-get install rclone)",
        )?;
        let transfers = RCLONE_TRANSFERS.to_string();
        let setting = |name: &str, value: &str| {
            (
                format!("RCLONE_CONFIG_{RCLONE_REMOTE}_{name}"),
                value.into(),
            )
        };
        Ok(Self {
            key: "rclone",
            slug: "rclone",
            name: format!("rclone copy --transfers {RCLONE_TRANSFERS}"),
            program,
            args: os_args(&[
                "--config",
                "",
                "copy",
                "--transfers",
                &transfers,
                "--s3-no-check-bucket",
                "--no-check-dest",
                "--s3-no-head",
            ]),
            env: vec![
                setting("TYPE", "s3"),
                setting("PROVIDER", "Other"),
                setting("ENDPOINT", &bench.s3.url),
                setting("ACCESS_KEY_ID", &bench.s3.access_key),
                setting("SECRET_ACCESS_KEY", &bench.s3.secret_key),
                setting("REGION", REGION),
                setting("FORCE_PATH_STYLE", "true"),
            ],
            destination: |bucket, prefix| {
                format!("{}:{bucket}/{prefix}", RCLONE_REMOTE.to_lowercase())
            },
            target: None,
        })
    }

    /// Uploads every file under `dir` to `s3://BUCKET/PREFIX`: the time from start to exit.
    async fn copy(&self, dir: &Path, bucket: &str, prefix: &str) -> anyhow::Result<Duration> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .arg(dir)
            .arg((self.destination)(bucket, prefix));
        // Neither the user's settings (a profile, an endpoint, AWS_CA_BUNDLE, RCLONE_TRANSFERS)
        // nor another baseline's reach the program.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("AWS_") || key_text.starts_with("RCLONE_") {
                command.env_remove(&key);
            }
        }
        command
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let output = tokio::time::timeout(UPLOAD_TIMEOUT, command.output())
            .await
            .with_context(|| format!("{} did not finish in time", self.name))?
            .with_context(|| format!("starting {}", self.program.display()))?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            output.status.success(),
            "{} failed ({}): {}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(elapsed)
    }
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `program` in a directory of PATH, as a shell would find it.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
