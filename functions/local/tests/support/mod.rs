//! Shared set-up for slipway-local's integration tests: real SQLite and on-disk stores in a
//! temporary state directory, and zips built in memory.
#![allow(dead_code)]

use std::io::{Cursor, Write};
use std::sync::Arc;

use bytes::Bytes;
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, ObjectLocation};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{ObjectBody, ObjectMeta, ObjectStore, StateStore};
use slipway_core::site::edge::{Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{Pipeline, PipelineConfig};
use slipway_github::{GithubApi, GithubConfig};
use slipway_local::dev::local_buckets;
use slipway_local::git::GitRepos;
use slipway_local::objects::FsObjectStore;
use slipway_local::sqlite::SqliteState;
use time::OffsetDateTime;
use zip::write::SimpleFileOptions;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub state: SqliteState,
    pub objects: Arc<FsObjectStore>,
    pub pipeline: Pipeline,
}

pub fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state = SqliteState::open(&dir.path().join("state.db")).unwrap();
    let objects = Arc::new(FsObjectStore::new(dir.path().join("objects")).unwrap());
    let github = GithubApi::new(GithubConfig::default()).unwrap();
    let pipeline = Pipeline {
        objects: objects.clone(),
        state: Arc::new(state.clone()),
        switch: Arc::new(KvsSwitch::new(
            Arc::new(state.clone()),
            Hosts::single("localhost"),
        )),
        repos: Arc::new(GitRepos::new(dir.path().join("git"))),
        statuses: Arc::new(github),
        config: PipelineConfig {
            hosts: Hosts::single("localhost"),
            urls: UrlTemplate::parse("http://{host}:7080/").unwrap(),
            buckets: local_buckets(),
            zip_limits: ZipLimits::default(),
            publish_concurrency: 4,
        },
    };
    Harness {
        dir,
        state,
        objects,
        pipeline,
    }
}

pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

pub fn site_name(name: &str) -> SiteName {
    SiteName::parse(name).unwrap()
}

impl Harness {
    pub async fn create_site(&self, name: &str, retain: u32) -> SiteName {
        let site = slipway_core::model::Site {
            name: site_name(name),
            routing: Default::default(),
            retain,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo: None,
        };
        self.state.create_site(&site).await.unwrap();
        site.name
    }

    /// A queued deployment whose uploaded source is `zip`.
    pub async fn upload(&self, site: &SiteName, zip: Vec<u8>, prebuilt: bool) -> DeploymentId {
        let id = DeploymentId::generate();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        };
        let meta = ObjectMeta {
            content_type: "application/zip".into(),
            cache_control: None,
        };
        self.objects
            .put(
                Bucket::Source,
                &source.key,
                ObjectBody::Bytes(Bytes::from(zip)),
                &meta,
            )
            .await
            .unwrap();
        let deployment = Deployment::queued(
            id,
            site.clone(),
            source,
            prebuilt,
            OffsetDateTime::now_utc(),
        );
        self.state.create_deployment(&deployment).await.unwrap();
        id
    }

    pub async fn hosted_keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .list(Bucket::Hosting, prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}
