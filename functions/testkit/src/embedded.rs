//! Test support for the function crates (a dev-dependency only): the `deploy-site` tasks
//! ([`DeploySiteTasks`]) on `slipway dev`'s embedded stores in a temporary directory, so each Lambda
//! handler is tested against the same store semantics the AWS adapters implement.

use std::io::{Cursor, Write};
use std::sync::Arc;

use bytes::Bytes;
use lambda_runtime::{Context, LambdaEvent};
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, ObjectLocation, Site};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{ObjectBody, ObjectMeta, ObjectStore, StateStore};
use slipway_core::site::edge::{Addresses, Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{
    self, ActivateInput, BucketNames, DeploySiteTasks, PrepareInput, PrepareOutput, PublishInput,
    SitePorts,
};
use slipway_github::{GithubApi, GithubConfig};
use slipway_local::git::GitRepos;
use slipway_local::objects::FsObjectStore;
use slipway_local::sqlite::SqliteState;
use time::OffsetDateTime;

/// The domain sites answer under in these tests.
pub const SITE_DOMAIN: &str = "sites.test";

pub struct Embedded {
    pub state: SqliteState,
    pub objects: Arc<FsObjectStore>,
    pub tasks: DeploySiteTasks,
    /// Held so the stores outlive the test.
    pub dir: tempfile::TempDir,
}

pub fn buckets() -> BucketNames {
    BucketNames {
        source: "acme-source".into(),
        artifacts: "acme-artifacts".into(),
        hosting: "acme-hosting".into(),
    }
}

impl Embedded {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let state = SqliteState::open(&dir.path().join("state.db")).expect("a SQLite database");
        let objects =
            Arc::new(FsObjectStore::new(dir.path().join("objects")).expect("an object store"));
        let github = GithubApi::new(GithubConfig::default()).expect("the default GitHub API URL");
        let tasks = DeploySiteTasks::new(SitePorts {
            objects: objects.clone(),
            state: Arc::new(state.clone()),
            switch: Arc::new(KvsSwitch::new(
                Arc::new(state.clone()),
                Hosts::single(SITE_DOMAIN),
            )),
            repos: Arc::new(GitRepos::new(dir.path().join("git"))),
            statuses: Arc::new(github),
            addresses: Addresses {
                hosts: Hosts::single(SITE_DOMAIN),
                urls: UrlTemplate::parse("https://{host}/").expect("a URL template"),
            },
            buckets: buckets(),
            zip_limits: ZipLimits::default(),
            publish_concurrency: 4,
        });
        Self {
            state,
            objects,
            tasks,
            dir,
        }
    }

    pub async fn create_site(&self, name: &str) -> SiteName {
        self.create_site_retaining(name, Site::DEFAULT_RETAIN).await
    }

    /// A site that keeps `retain` finished deployments.
    pub async fn create_site_retaining(&self, name: &str, retain: u32) -> SiteName {
        let site = Site {
            name: SiteName::parse(name).expect("a valid site name"),
            routing: Default::default(),
            retain,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo: None,
        };
        self.state.create_site(&site).await.expect("a new site");
        site.name
    }

    pub async fn put_source(&self, key: &str, bytes: Vec<u8>) {
        let meta = ObjectMeta {
            content_type: "application/zip".into(),
            cache_control: None,
        };
        self.objects
            .put(
                Bucket::Source,
                key,
                ObjectBody::Bytes(Bytes::from(bytes)),
                &meta,
            )
            .await
            .expect("a stored source object");
    }

    /// A queued deployment whose uploaded source (`uploads/{site}/{id}.zip`) holds `bytes`.
    pub async fn upload(&self, site: &SiteName, bytes: Vec<u8>, prebuilt: bool) -> Deployment {
        let id = DeploymentId::generate();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        };
        self.put_source(&source.key, bytes).await;
        let deployment = Deployment::queued(
            id,
            site.clone(),
            source,
            prebuilt,
            OffsetDateTime::now_utc(),
        );
        self.state
            .create_deployment(&deployment)
            .await
            .expect("a new deployment");
        deployment
    }

    /// A prebuilt upload of `files`, through core's Prepare as the state machine runs it first.
    pub async fn prepared(
        &self,
        site: &SiteName,
        files: &[(&str, &[u8])],
    ) -> (Deployment, PrepareOutput) {
        let deployment = self.upload(site, zip_of(files), true).await;
        let input = PrepareInput {
            site: site.clone(),
            deployment_id: deployment.id,
            source: deployment.source.clone(),
            prebuilt: true,
        };
        let prepared = steps::prepare(&self.tasks.prepare, input)
            .await
            .expect("a prepared deployment");
        (deployment, prepared)
    }

    /// A prebuilt upload of `files` through Prepare and Publish: ready to activate.
    pub async fn published(&self, site: &SiteName, files: &[(&str, &[u8])]) -> Deployment {
        let (deployment, prepared) = self.prepared(site, files).await;
        let input = PublishInput {
            site: site.clone(),
            deployment_id: deployment.id,
            artifact: prepared.artifact,
            framework: prepared.framework,
        };
        steps::publish(&self.tasks.publish, input)
            .await
            .expect("a published deployment");
        deployment
    }

    /// A prebuilt upload of `files` through Prepare, Publish and Activate: live.
    pub async fn deployed(&self, site: &SiteName, files: &[(&str, &[u8])]) -> Deployment {
        let deployment = self.published(site, files).await;
        let input = ActivateInput {
            site: site.clone(),
            deployment_id: deployment.id,
        };
        steps::activate(&self.tasks.activate, input)
            .await
            .expect("an activated deployment");
        deployment
    }

    /// The hosting bucket's keys under `prefix`, in order.
    pub async fn hosted_keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .list(Bucket::Hosting, prefix)
            .await
            .expect("a hosting listing")
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}

impl Default for Embedded {
    fn default() -> Self {
        Self::new()
    }
}

/// A zip holding `files` (path, content), as a user would upload it.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("a zip entry");
        writer.write_all(content).expect("zip entry bytes");
    }
    writer.finish().expect("a finished zip").into_inner()
}

/// An invocation as the runtime hands it to a handler.
pub fn invocation<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, Context::default())
}
