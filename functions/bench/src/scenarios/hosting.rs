//! What the S3 scenarios (1, 2 and 7) share: slipway's `deploy-site` tasks on the S3 adapter against
//! the bench's s3s-fs, with deployment records and routes in SQLite, and buckets of its own.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use slipway_aws::s3::{self, S3Objects};
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation, Site};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{DeploymentPatch, ObjectBody, ObjectMeta, ObjectStore, StateStore};
use slipway_core::site::edge::{Addresses, Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::headers::content_type_for;
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{
    self, ArtifactRef, BucketNames, DeploySiteTasks, PublishInput, PublishOutput, SitePorts,
};
use slipway_github::{GithubApi, GithubConfig};
use slipway_local::git::GitRepos;
use slipway_local::sqlite::SqliteState;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::context::{Bench, S3Endpoint};

/// The region the bench signs for (s3s-fs takes any).
pub const REGION: &str = "us-east-1";
/// Publish's concurrent writes, as the stack deploys the function
/// (`SLIPWAY_PUBLISH_CONCURRENCY` in infra/template.yaml).
pub const PUBLISH_CONCURRENCY: usize = 32;
const DOMAIN: &str = "bench.test";
/// Chunks of a file streamed to the object store.
const FILE_CHUNK: usize = 1024 * 1024;

/// The tasks and their stores.
pub struct Hosting {
    pub objects: Arc<S3Objects>,
    pub state: SqliteState,
    pub tasks: DeploySiteTasks,
    pub buckets: BucketNames,
    /// The SQLite file the records live in (a child process can open it too).
    pub state_path: PathBuf,
}

impl Hosting {
    /// New buckets named after `name` on the bench's endpoint, and a fresh SQLite file.
    pub async fn create(bench: &Bench, name: &str) -> anyhow::Result<Self> {
        let unique = format!(
            "{name}-{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
        );
        let buckets = BucketNames {
            source: format!("bench-src-{unique}"),
            artifacts: format!("bench-art-{unique}"),
            hosting: format!("bench-host-{unique}"),
        };
        let client = s3::client(&slipway_aws::config::for_endpoint(
            &bench.s3.url,
            REGION,
            &bench.s3.access_key,
            &bench.s3.secret_key,
        ));
        for bucket in [&buckets.source, &buckets.artifacts, &buckets.hosting] {
            s3::create_bucket(&client, bucket)
                .await
                .with_context(|| format!("creating bucket {bucket} on {}", bench.s3.url))?;
        }
        let dir = bench.dir(&format!("state-{name}"))?;
        Self::open(&bench.s3, buckets, &dir.join("state.db"), &dir)
    }

    /// The tasks on existing buckets and an existing (or new) SQLite file.
    pub fn open(
        s3: &S3Endpoint,
        buckets: BucketNames,
        state_path: &Path,
        scratch: &Path,
    ) -> anyhow::Result<Self> {
        let sdk =
            slipway_aws::config::for_endpoint(&s3.url, REGION, &s3.access_key, &s3.secret_key);
        let objects = Arc::new(S3Objects::new(s3::client(&sdk), buckets.clone()));
        let state = SqliteState::open(state_path)?;
        let tasks = DeploySiteTasks::new(SitePorts {
            objects: objects.clone(),
            state: Arc::new(state.clone()),
            switch: Arc::new(KvsSwitch::new(
                Arc::new(state.clone()),
                Hosts::single(DOMAIN),
            )),
            repos: Arc::new(GitRepos::new(scratch.join("git"))),
            statuses: Arc::new(GithubApi::new(GithubConfig::default())?),
            addresses: Addresses {
                hosts: Hosts::single(DOMAIN),
                urls: UrlTemplate::parse("https://{host}/")?,
            },
            buckets: buckets.clone(),
            zip_limits: ZipLimits::default(),
            publish_concurrency: PUBLISH_CONCURRENCY,
        });
        Ok(Self {
            objects,
            state,
            tasks,
            buckets,
            state_path: state_path.to_owned(),
        })
    }

    pub async fn create_site(&self, name: &str, retain: u32) -> anyhow::Result<SiteName> {
        let site = Site {
            name: SiteName::parse(name)?,
            routing: Default::default(),
            retain,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo: None,
        };
        self.state.create_site(&site).await?;
        Ok(site.name)
    }

    /// Streams the file at `path` to `key` (multipart when large, as any big upload).
    /// A new site `name` and its build's artifact: the zip at `zip`, uploaded where a build
    /// leaves it.
    pub async fn site_with_artifact(
        &self,
        name: &str,
        zip: &Path,
    ) -> anyhow::Result<(SiteName, ObjectLocation)> {
        let site = self.create_site(name, Site::DEFAULT_RETAIN).await?;
        let artifact = ObjectLocation {
            bucket: Bucket::Artifacts,
            key: format!("builds/{site}/bench/output.zip"),
        };
        self.upload_file(artifact.bucket, &artifact.key, zip)
            .await?;
        Ok((site, artifact))
    }

    pub async fn upload_file(&self, bucket: Bucket, key: &str, path: &Path) -> anyhow::Result<()> {
        let len = std::fs::metadata(path)?.len();
        let (tx, chunks) = mpsc::channel(4);
        let path = path.to_owned();
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::File::open(path)?;
            loop {
                let mut buf = vec![0u8; FILE_CHUNK];
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return Ok(());
                }
            }
        });
        let meta = ObjectMeta {
            content_type: "application/zip".to_owned(),
            cache_control: None,
        };
        self.objects
            .put(bucket, key, ObjectBody::Stream { len, chunks }, &meta)
            .await?;
        reader.await??;
        Ok(())
    }

    /// A prebuilt deployment record from `source`, moved to `building` as Prepare leaves it,
    /// so Publish may run.
    pub async fn building(
        &self,
        site: &SiteName,
        source: ObjectLocation,
    ) -> anyhow::Result<Deployment> {
        self.building_as(site, DeploymentId::generate(), source)
            .await
    }

    /// [`Self::building`] with the id chosen by the caller (to name its upload after it).
    pub async fn building_as(
        &self,
        site: &SiteName,
        id: DeploymentId,
        source: ObjectLocation,
    ) -> anyhow::Result<Deployment> {
        let deployment =
            Deployment::queued(id, site.clone(), source, true, OffsetDateTime::now_utc());
        self.state.create_deployment(&deployment).await?;
        Ok(self
            .state
            .transition(
                site,
                &deployment.id,
                DeploymentStatus::Building,
                DeploymentPatch::default(),
            )
            .await?)
    }

    /// Records `deployment` as published (its files written by the caller), ready to activate.
    pub async fn published(&self, deployment: &Deployment) -> anyhow::Result<Deployment> {
        Ok(self
            .state
            .transition(
                &deployment.site,
                &deployment.id,
                DeploymentStatus::Publishing,
                DeploymentPatch::default(),
            )
            .await?)
    }

    /// slipway's Publish step of `deployment` from the zip at `artifact`.
    pub async fn publish(
        &self,
        deployment: &Deployment,
        artifact: &ObjectLocation,
    ) -> anyhow::Result<PublishOutput> {
        let input = PublishInput {
            site: deployment.site.clone(),
            deployment_id: deployment.id,
            artifact: ArtifactRef {
                location: artifact.clone(),
                root: None,
            },
            framework: None,
        };
        Ok(steps::publish(&self.tasks.publish, input).await?)
    }

    /// Deletes everything under `prefix` (keeps the emulator's disk from filling up between runs).
    pub async fn clear(&self, bucket: Bucket, prefix: &str) -> anyhow::Result<()> {
        let keys: Vec<String> = self
            .objects
            .list(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        if !keys.is_empty() {
            self.objects.delete_many(bucket, &keys).await?;
        }
        Ok(())
    }
}

/// A site's files read into memory, with the headers Publish would give them: what the
/// raw-PUT loops send.
pub struct LoadedFiles {
    pub files: Vec<(String, Bytes, ObjectMeta)>,
}

impl LoadedFiles {
    pub fn read(dir: &Path, files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut loaded = Vec::with_capacity(files.len());
        for relative in files {
            let body = std::fs::read(dir.join(relative))?;
            let name = relative.to_string_lossy().replace('\\', "/");
            let meta = ObjectMeta {
                content_type: content_type_for(&name),
                cache_control: None,
            };
            loaded.push((name, Bytes::from(body), meta));
        }
        Ok(Self { files: loaded })
    }

    /// One PutObject per file under `prefix`, `concurrency` at a time; the elapsed time.
    pub async fn put_all(
        &self,
        objects: &S3Objects,
        bucket: Bucket,
        prefix: &str,
        concurrency: usize,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        futures::stream::iter(&self.files)
            .map(|(name, body, meta)| async move {
                let key = format!("{prefix}{name}");
                objects
                    .put(bucket, &key, ObjectBody::Bytes(body.clone()), meta)
                    .await
            })
            .buffer_unordered(concurrency.max(1))
            .try_for_each(|_| async { Ok(()) })
            .await?;
        Ok(started.elapsed())
    }
}
