//! Scenario 2, Prune: slipway's Prune step deleting 10 old deployments of the site (their
//! hosted files and uploaded source zips), against one DeleteObject request per object of the
//! same set. Each run lays out the same twelve deployments twice (ten old ones, the one a
//! rollback would go to, and the live one), records and objects written directly, and times
//! Prune on one copy and the per-object deletes on the other.

use std::path::Path;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::names::SiteName;
use slipway_core::ports::ObjectStore;
use slipway_core::site::edge::deployment_prefix;
use slipway_core::steps::{self, ActivateInput, PruneInput};

use super::hosting::{Hosting, LoadedFiles};
use crate::context::Bench;
use crate::report::{median, Baseline, Row};
use crate::sites::{self, SiteKind};

/// The deployments each run deletes.
const OLD: usize = 10;
/// Prune keeps the newest finished deployment per target; with it live, the ten older ones
/// (less the rollback target) go.
const RETAIN: u32 = 1;
/// Concurrent requests when laying out objects and in the per-object baseline, which gets
/// the same parallelism Publish has, so its time is not its concurrency's fault.
const CONCURRENCY: usize = 32;

/// The deployments of one layout: what is deleted, and the objects that go with it.
struct Layout {
    site: SiteName,
    /// Every hosted key and uploaded zip of the old deployments.
    doomed: Vec<(Bucket, String)>,
    /// The live deployment's id (Prune's input).
    live: slipway_core::names::DeploymentId,
}

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let kind = bench.site();
    let site_dir = bench.dir("prune-site")?;
    let (files, _) = sites::generate(kind, &site_dir)?;
    let zip_path = bench.scratch.path().join("prune-site.zip");
    sites::zip_dir(&site_dir, &files, &zip_path)?;
    let loaded = LoadedFiles::read(&site_dir, &files)?;
    let hosting = Hosting::create(bench, "prune").await?;

    let mut slipway_requests = Vec::new();
    let mut slipway_seconds = Vec::new();
    let mut baseline_requests = Vec::new();
    let mut baseline_seconds = Vec::new();
    let mut objects_per_run = 0usize;
    for run in 0..bench.runs {
        let layout = lay_out(&hosting, &loaded, &zip_path, &format!("prune-{run}")).await?;
        objects_per_run = layout.doomed.len();
        let started = Instant::now();
        let pruned = steps::prune(
            &hosting.tasks.prune,
            PruneInput {
                site: layout.site.clone(),
                deployment_id: layout.live,
            },
        )
        .await?;
        slipway_seconds.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(
            pruned.deleted.len() == OLD && pruned.objects_deleted == layout.doomed.len() as u64,
            "Prune deleted {} deployments, {} objects; expected {OLD}, {}",
            pruned.deleted.len(),
            pruned.objects_deleted,
            layout.doomed.len()
        );
        ensure_gone(&hosting, &layout).await?;
        slipway_requests.push(pruned.requests as f64);

        let layout = lay_out(&hosting, &loaded, &zip_path, &format!("delete-{run}")).await?;
        let started = Instant::now();
        let sent = futures::stream::iter(&layout.doomed)
            .map(|(bucket, key)| hosting.objects.delete_one(*bucket, key))
            .buffer_unordered(CONCURRENCY)
            .try_fold(0u64, |sent, ()| async move { Ok(sent + 1) })
            .await?;
        baseline_seconds.push(started.elapsed().as_secs_f64());
        ensure_gone(&hosting, &layout).await?;
        baseline_requests.push(sent as f64);
        tracing::info!(run, prune = pruned.requests, baseline = sent, "prune run");
    }

    let label = match kind {
        SiteKind::Small => "Prune 10 deployments (small site)",
        _ => "Prune 10 deployments (main site)",
    };
    let name = format!("{label}, {objects_per_run} objects");
    let requests = median(&slipway_requests);
    let baseline = median(&baseline_requests);
    let seconds = median(&slipway_seconds);
    let baseline_time = median(&baseline_seconds);
    Ok(vec![
        Row {
            scenario: 2,
            name: name.clone(),
            metric: "delete requests".to_owned(),
            unit: "requests".to_owned(),
            measured: requests,
            baseline: Some(Baseline {
                name: "one DeleteObject per object".to_owned(),
                measured: baseline,
                ratio: baseline / requests,
            }),
            target: "≥ 50× fewer requests".to_owned(),
            met: Some(baseline / requests >= 50.0),
            runs: bench.runs,
        },
        Row {
            scenario: 2,
            name,
            metric: format!("time (baseline {CONCURRENCY} deletes in flight)"),
            unit: "ms".to_owned(),
            measured: seconds * 1000.0,
            baseline: Some(Baseline {
                name: "one DeleteObject per object".to_owned(),
                measured: baseline_time * 1000.0,
                ratio: baseline_time / seconds,
            }),
            target: "-".to_owned(),
            met: None,
            runs: bench.runs,
        },
    ])
}

/// A site `name` with twelve published production deployments, activated in turn: ten old
/// ones with their hosted files and uploaded zips, then the rollback target, then the live
/// one (neither of which Prune may touch, so they get records only).
async fn lay_out(
    hosting: &Hosting,
    loaded: &LoadedFiles,
    zip_path: &Path,
    name: &str,
) -> anyhow::Result<Layout> {
    let site = hosting.create_site(name, RETAIN).await?;
    let mut doomed = Vec::new();
    let mut live = None;
    for n in 0..OLD + 2 {
        let id = slipway_core::names::DeploymentId::generate();
        let upload = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        };
        let deployment = hosting.building_as(&site, id, upload.clone()).await?;
        if n < OLD {
            hosting
                .upload_file(upload.bucket, &upload.key, zip_path)
                .await?;
            let prefix = deployment_prefix(&site, &deployment.id);
            loaded
                .put_all(&hosting.objects, Bucket::Hosting, &prefix, CONCURRENCY)
                .await?;
            doomed.extend(
                loaded
                    .files
                    .iter()
                    .map(|(path, _, _)| (Bucket::Hosting, format!("{prefix}{path}"))),
            );
            doomed.push((upload.bucket, upload.key));
        }
        hosting.published(&deployment).await?;
        steps::activate(
            &hosting.tasks.activate,
            ActivateInput {
                site: site.clone(),
                deployment_id: deployment.id,
            },
        )
        .await?;
        live = Some(deployment.id);
    }
    let live = live.ok_or_else(|| anyhow::anyhow!("no deployment was laid out"))?;
    Ok(Layout { site, doomed, live })
}

/// Both ways must leave nothing of the old deployments behind.
async fn ensure_gone(hosting: &Hosting, layout: &Layout) -> anyhow::Result<()> {
    for (bucket, prefix) in [
        (Bucket::Hosting, format!("{}/", layout.site)),
        (Bucket::Source, format!("uploads/{}/", layout.site)),
    ] {
        let left = hosting.objects.list(bucket, &prefix).await?.len();
        anyhow::ensure!(left == 0, "{left} objects left under {prefix}");
    }
    Ok(())
}
