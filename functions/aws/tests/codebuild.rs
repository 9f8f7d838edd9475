//! The CodeBuild adapter against moto's control plane. moto runs no builds: StartBuild
//! answers IN_PROGRESS, the first BatchGetBuilds reports SUCCEEDED with every phase
//! succeeded, and of the overrides it keeps only `artifactsOverride`. So the overrides
//! StartBuild sends are checked on the wire, and failure mapping is unit-tested in the crate.

mod support;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_codebuild::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_codebuild::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment,
    ProjectSource, SourceType,
};
use bytes::Bytes;
use serde_json::Value;
use slipway_aws::codebuild::{BuildStatus, CodeBuildBuilder, CodeBuildBuilds, CodeBuildError};
use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::names::CommitSha;
use slipway_core::ports::{
    BuildError, BuildRequest, BuildSource, Builder, ObjectBody, ObjectInfo, ObjectMeta,
    ObjectStore, ObjectStoreError,
};
use slipway_core::steps::BucketNames;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/slipway-build";
const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - npm ci\n      - npm run build\nartifacts:\n  base-directory: dist\n  files:\n    - '**/*'\n";

/// Keeps the JSON body of every StartBuild request the client sends.
#[derive(Debug, Clone, Default)]
struct StartBuildBodies(Arc<Mutex<Vec<Value>>>);

impl Intercept for StartBuildBodies {
    fn name(&self) -> &'static str {
        "StartBuildBodies"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_codebuild::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with(".StartBuild") {
            let body = request.body().bytes().unwrap_or_default();
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

struct Harness {
    builds: CodeBuildBuilds,
    buckets: BucketNames,
    sent: StartBuildBodies,
    raw: aws_sdk_codebuild::Client,
}

async fn harness() -> Harness {
    let config = support::sdk_config(&support::moto_url());
    let sent = StartBuildBodies::default();
    let client = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(&config)
            .interceptor(sent.clone())
            .build(),
    );
    let buckets = BucketNames {
        source: support::unique("src"),
        artifacts: support::unique("art"),
        hosting: support::unique("host"),
    };
    let project = support::unique("slipway-build");
    client
        .create_project()
        .name(&project)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::S3)
                .location(format!("{}/placeholder.zip", buckets.source))
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::S3)
                .location(&buckets.artifacts)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::ArmContainer)
                .image("aws/codebuild/amazonlinux-aarch64-standard:3.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role(ROLE_ARN)
        .send()
        .await
        .expect("create the CodeBuild project in moto");
    Harness {
        builds: CodeBuildBuilds::from_client(client.clone(), project, buckets.clone()),
        buckets,
        sent,
        raw: client,
    }
}

fn request(buildspec: &str) -> BuildRequest {
    BuildRequest {
        source: BuildSource::Archive(ObjectLocation {
            bucket: Bucket::Source,
            key: "uploads/docs/01jd.zip".into(),
        }),
        buildspec: buildspec.into(),
        artifact: ObjectLocation {
            bucket: Bucket::Artifacts,
            key: "builds/docs/01jd/output.zip".into(),
        },
        env: vec![
            ("SLIPWAY_SITE".into(), "docs".into()),
            ("SLIPWAY_DEPLOYMENT_ID".into(), "01jd".into()),
        ],
    }
}

#[tokio::test]
async fn start_sends_every_override_and_the_build_is_recorded() {
    let h = harness().await;

    let started = h
        .builds
        .start(&request(BUILDSPEC), "deploy-01jd")
        .await
        .unwrap();

    assert!(started.id.starts_with(&format!("{}:", h.builds.project())));
    assert_eq!(started.status, BuildStatus::InProgress);
    assert_eq!(started.current_phase.as_deref(), Some("QUEUED"));
    // moto records the artifacts override as sent.
    assert_eq!(
        started.artifact_location.as_deref(),
        Some(h.buckets.artifacts.as_str())
    );

    let sent = h.sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["projectName"], h.builds.project());
    assert_eq!(body["idempotencyToken"], "deploy-01jd");
    assert_eq!(body["buildspecOverride"], BUILDSPEC);
    assert_eq!(body["sourceTypeOverride"], "S3");
    assert_eq!(
        body["sourceLocationOverride"],
        format!("{}/uploads/docs/01jd.zip", h.buckets.source)
    );
    assert_eq!(
        body["artifactsOverride"],
        serde_json::json!({
            "type": "S3",
            "location": h.buckets.artifacts,
            "path": "builds/docs/01jd",
            "name": "output.zip",
            "packaging": "ZIP",
            "namespaceType": "NONE"
        })
    );
    assert_eq!(
        body["environmentVariablesOverride"],
        serde_json::json!([
            {"name": "SLIPWAY_SITE", "value": "docs", "type": "PLAINTEXT"},
            {"name": "SLIPWAY_DEPLOYMENT_ID", "value": "01jd", "type": "PLAINTEXT"}
        ])
    );
}

#[tokio::test]
async fn a_git_source_builds_the_commit_from_github() {
    let h = harness().await;
    let commit = CommitSha::parse("4b825dc642cb6eb9a060e54bf8d69288fbee4904").unwrap();
    let req = BuildRequest {
        source: BuildSource::Git {
            url: "https://github.com/acme/docs.git".into(),
            commit: commit.clone(),
        },
        ..request(BUILDSPEC)
    };

    h.builds.start(&req, "deploy-git").await.unwrap();

    let sent = h.sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["sourceTypeOverride"], "GITHUB");
    assert_eq!(
        body["sourceLocationOverride"],
        "https://github.com/acme/docs.git"
    );
    assert_eq!(body["sourceVersion"], commit.as_str());
    assert_eq!(body["buildspecOverride"], BUILDSPEC);
    assert_eq!(body["artifactsOverride"]["path"], "builds/docs/01jd");
}

#[tokio::test]
async fn status_reports_builds_in_the_order_asked() {
    let h = harness().await;
    let first = h.builds.start(&request(BUILDSPEC), "a").await.unwrap();
    let second = h.builds.start(&request(BUILDSPEC), "b").await.unwrap();

    let ids = vec![second.id.clone(), first.id.clone()];
    let status = h.builds.status(&ids).await.unwrap();

    let got: Vec<&str> = status.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(got, [second.id.as_str(), first.id.as_str()]);
    for build in &status {
        // moto "finishes" every build on the first BatchGetBuilds.
        assert_eq!(build.status, BuildStatus::Succeeded);
        assert_eq!(build.current_phase.as_deref(), Some("COMPLETED"));
        assert_eq!(build.failure, None);
    }
}

#[tokio::test]
async fn an_unknown_build_is_not_found() {
    let h = harness().await;
    let missing = format!(
        "{}:00000000-0000-0000-0000-000000000000",
        h.builds.project()
    );

    let result = h.builds.status(std::slice::from_ref(&missing)).await;

    assert!(matches!(result, Err(CodeBuildError::BuildNotFound(id)) if id == missing));
}

#[tokio::test]
async fn stop_ends_a_running_build() {
    let h = harness().await;
    let started = h.builds.start(&request(BUILDSPEC), "s").await.unwrap();

    let stopped = h.builds.stop(&started.id).await.unwrap();

    assert_eq!(stopped.id, started.id);
    assert_eq!(stopped.status, BuildStatus::Stopped);
    assert!(matches!(
        h.builds.stop(&format!("{}:nope", h.builds.project())).await,
        Err(CodeBuildError::BuildNotFound(_))
    ));
}

#[tokio::test]
async fn a_missing_project_is_named() {
    let config = support::sdk_config(&support::moto_url());
    let h = harness().await;
    let builds = CodeBuildBuilds::new(&config, support::unique("no-such-project"), h.buckets);

    let result = builds.start(&request(BUILDSPEC), "x").await;

    assert!(matches!(result, Err(CodeBuildError::ProjectNotFound(p)) if p == builds.project()));
}

/// The artifacts a "build" left behind, for the Builder port's report.
#[derive(Default)]
struct MemoryObjects(Mutex<BTreeMap<(&'static str, String), Bytes>>);

impl MemoryObjects {
    fn info(key: &str, body: &Bytes) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size: body.len() as u64,
            etag: format!("\"{}\"", body.len()),
            meta: ObjectMeta {
                content_type: "application/zip".into(),
                cache_control: None,
            },
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn put(
        &self,
        bucket: Bucket,
        key: &str,
        body: ObjectBody,
        _meta: &ObjectMeta,
    ) -> Result<ObjectInfo, ObjectStoreError> {
        let bytes = match body {
            ObjectBody::Bytes(b) => b,
            ObjectBody::Stream { mut chunks, .. } => {
                let mut all = Vec::new();
                while let Some(chunk) = chunks.recv().await {
                    all.extend_from_slice(
                        &chunk.map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?,
                    );
                }
                Bytes::from(all)
            }
        };
        let info = Self::info(key, &bytes);
        self.0
            .lock()
            .unwrap()
            .insert((bucket.as_str(), key.to_owned()), bytes);
        Ok(info)
    }

    async fn head(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ObjectStoreError> {
        let objects = self.0.lock().unwrap();
        Ok(objects
            .get(&(bucket.as_str(), key.to_owned()))
            .map(|b| Self::info(key, b)))
    }

    async fn get_range(
        &self,
        bucket: Bucket,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        let objects = self.0.lock().unwrap();
        let body = objects
            .get(&(bucket.as_str(), key.to_owned()))
            .ok_or_else(|| ObjectStoreError::NotFound {
                bucket,
                key: key.to_owned(),
            })?;
        let end = (range.end as usize).min(body.len());
        let start = (range.start as usize).min(end);
        Ok(body.slice(start..end))
    }

    async fn get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, ObjectStoreError> {
        let objects = self.0.lock().unwrap();
        Ok(objects
            .get(&(bucket.as_str(), key.to_owned()))
            .map(|b| (Self::info(key, b), ObjectBody::Bytes(b.clone()))))
    }

    async fn list(
        &self,
        bucket: Bucket,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, ObjectStoreError> {
        let objects = self.0.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|((b, k), _)| *b == bucket.as_str() && k.starts_with(prefix))
            .map(|((_, k), body)| Self::info(k, body))
            .collect())
    }

    async fn delete_many(&self, bucket: Bucket, keys: &[String]) -> Result<u64, ObjectStoreError> {
        let mut objects = self.0.lock().unwrap();
        for key in keys {
            objects.remove(&(bucket.as_str(), key.clone()));
        }
        Ok(keys.len().div_ceil(1000) as u64)
    }
}

/// A zip of `files`, as CodeBuild would pack the base directory.
fn zip_of(files: &[(&str, &str)]) -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let mut out = std::io::Cursor::new(Vec::new());
    slipway_core::site::zipsafe::zip_directory(dir.path(), &mut out).unwrap();
    Bytes::from(out.into_inner())
}

async fn build_count(h: &Harness) -> usize {
    h.raw
        .list_builds_for_project()
        .project_name(h.builds.project())
        .send()
        .await
        .unwrap()
        .ids()
        .len()
}

#[tokio::test]
async fn the_builder_port_reports_the_artifact_of_a_finished_build() {
    let h = harness().await;
    let objects = Arc::new(MemoryObjects::default());
    let req = request(BUILDSPEC);
    let artifact = zip_of(&[
        ("index.html", "<h1>docs</h1>"),
        ("assets/app.js", "console.log(1)"),
    ]);
    objects
        .put(
            Bucket::Artifacts,
            &req.artifact.key,
            ObjectBody::Bytes(artifact),
            &ObjectMeta {
                content_type: "application/zip".into(),
                cache_control: None,
            },
        )
        .await
        .unwrap();
    let builder = CodeBuildBuilder::new(h.builds.clone(), objects)
        .with_poll_interval(Duration::from_millis(10));

    let report = builder.run(req).await.unwrap();

    assert!(report
        .build_id
        .starts_with(&format!("{}:", h.builds.project())));
    assert_eq!(report.file_count, 2);
    assert_eq!(
        report.bytes,
        ("<h1>docs</h1>".len() + "console.log(1)".len()) as u64
    );
    let status = h
        .builds
        .status(std::slice::from_ref(&report.build_id))
        .await
        .unwrap();
    assert_eq!(status[0].status, BuildStatus::Succeeded);
    // The port's idempotency token is the artifact key: one build per deployment.
    let sent = h.sent.0.lock().unwrap().clone();
    assert_eq!(sent[0]["idempotencyToken"], "builds/docs/01jd/output.zip");
}

#[tokio::test]
async fn the_builder_port_reports_no_output_when_the_artifact_is_missing() {
    let h = harness().await;
    let builder = CodeBuildBuilder::new(h.builds.clone(), Arc::new(MemoryObjects::default()))
        .with_poll_interval(Duration::from_millis(10));

    let result = builder.run(request(BUILDSPEC)).await;

    assert!(
        matches!(result, Err(BuildError::NoOutput(ref dir)) if dir == "dist"),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_builder_port_refuses_an_invalid_buildspec_before_starting_a_build() {
    let h = harness().await;
    let builder = CodeBuildBuilder::new(h.builds.clone(), Arc::new(MemoryObjects::default()))
        .with_poll_interval(Duration::from_millis(10));

    let result = builder.run(request("version: 0.1\nphases: {}\n")).await;

    assert!(
        matches!(result, Err(BuildError::Buildspec(_))),
        "{result:?}"
    );
    assert_eq!(build_count(&h).await, 0);
    assert!(h.sent.0.lock().unwrap().is_empty());
}
