//! Housekeeping on the AWS adapters, as the housekeeping Lambda function runs it: S3 on s3s-fs
//! (which checks SigV4), state on moto's DynamoDB. One sweep fails the upload that never
//! arrived (HeadObject's 404), the upload that arrived but never started, and the deployment
//! left building past any deploy's length (its partial files deleted), and nothing else; an
//! aborted execution fails the deployment it left in flight, once.
//!
//! The emulators are started by `tests/run-all.sh`, which exports their URLs.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use slipway_aws::kvs::{self, CloudFrontKvs, KvsArn};
use slipway_aws::s3::S3Objects;
use slipway_core::api::ControlPlane;
use slipway_core::housekeeping::{fail_if_in_flight, sweep, ExecutionEnd, INTERRUPTED};
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{ObjectBody, ObjectMeta};
use slipway_core::site::edge::{Addresses, Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{self, DeploySiteTasks, PrepareInput, SitePorts};
use slipway_github::{GithubApi, GithubConfig};
use slipway_tests::zip_bytes;
use time::{Duration, OffsetDateTime};

// The adapter tests' emulator set-up (URLs, test credentials, unique names), shared as is.
#[path = "../../functions/aws/tests/support/mod.rs"]
mod support;
use support::{fresh_stores, moto_url, sdk_config};

async fn aws_ports() -> (SitePorts, Arc<S3Objects>) {
    let moto = sdk_config(&moto_url());
    let (objects, state, buckets) = fresh_stores().await;
    let objects = Arc::new(objects);
    let github = Arc::new(GithubApi::new(GithubConfig::default()).unwrap());
    // Failing a deployment never touches the routes: a store nobody answers for will do.
    let kvs_arn = KvsArn::parse(
        "arn:aws:cloudfront::111122223333:key-value-store/0a1b2c3d-1111-2222-3333-444455556666",
    )
    .unwrap();
    let ports = SitePorts {
        objects: objects.clone(),
        state: Arc::new(state),
        switch: Arc::new(KvsSwitch::new(
            Arc::new(CloudFrontKvs::new(kvs::client(&moto), kvs_arn)),
            Hosts::single("example.test"),
        )),
        repos: github.clone(),
        statuses: github,
        addresses: Addresses {
            hosts: Hosts::single("example.test"),
            urls: UrlTemplate::parse("https://{host}/").unwrap(),
        },
        buckets,
        zip_limits: ZipLimits::default(),
        publish_concurrency: 4,
    };
    (ports, objects)
}

/// The site, created through the API as a user creates it.
async fn create_site(ports: &SitePorts, objects: Arc<S3Objects>) -> SiteName {
    let tasks = DeploySiteTasks::new(ports.clone());
    let api = ControlPlane::new(
        tasks.traffic().clone(),
        tasks.activate.addresses.clone(),
        objects,
    );
    let request = http::Request::post("/sites")
        .header("content-type", "application/json")
        .body(Bytes::from_static(br#"{"name":"docs"}"#))
        .unwrap();
    let response = api.handle(request).await;
    assert!(response.status().is_success(), "{response:?}");
    SiteName::parse("docs").unwrap()
}

async fn put(ports: &SitePorts, bucket: Bucket, key: &str, bytes: Vec<u8>) {
    let meta = ObjectMeta {
        content_type: "application/octet-stream".into(),
        cache_control: None,
    };
    let body = ObjectBody::Bytes(Bytes::from(bytes));
    ports.objects.put(bucket, key, body, &meta).await.unwrap();
}

/// A queued deployment of an upload created at `at`; its zip is stored when `arrived`.
async fn queued(
    ports: &SitePorts,
    site: &SiteName,
    at: OffsetDateTime,
    arrived: bool,
) -> Deployment {
    let id = DeploymentId::generate();
    let source = ObjectLocation {
        bucket: Bucket::Source,
        key: format!("uploads/{site}/{id}.zip"),
    };
    if arrived {
        let zip = zip_bytes(&[("index.html", b"<h1>hi</h1>".as_slice())]);
        put(ports, Bucket::Source, &source.key, zip).await;
    }
    let deployment = Deployment::queued(id, site.clone(), source, true, at);
    ports.state.create_deployment(&deployment).await.unwrap();
    deployment
}

/// A deployment created at `at` that Prepare moved to building, with a partly published file.
async fn building(ports: &SitePorts, site: &SiteName, at: OffsetDateTime) -> Deployment {
    let deployment = queued(ports, site, at, true).await;
    let input = PrepareInput {
        site: site.clone(),
        deployment_id: deployment.id,
        source: deployment.source.clone(),
        prebuilt: true,
    };
    steps::prepare(&DeploySiteTasks::new(ports.clone()).prepare, input)
        .await
        .unwrap();
    let partial = format!("{site}/{}/index.html", deployment.id);
    put(ports, Bucket::Hosting, &partial, b"half".to_vec()).await;
    deployment
}

async fn status_and_error(ports: &SitePorts, d: &Deployment) -> (DeploymentStatus, Option<String>) {
    let stored = ports.state.get_deployment(&d.site, &d.id).await.unwrap();
    (stored.status, stored.error.map(|e| e.name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_on_the_aws_adapters_fails_only_what_no_execution_will_finish() {
    let (ports, objects) = aws_ports().await;
    let tasks = DeploySiteTasks::new(ports.clone());
    let site = create_site(&ports, objects).await;
    // The sweep runs a day and an hour from now: what was created now is old by then.
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::hours(25);
    let abandoned = queued(&ports, &site, now, false).await;
    let never_started = queued(&ports, &site, now, true).await;
    let awaited = queued(&ports, &site, later - Duration::minutes(2), false).await;
    let stalled = building(&ports, &site, now).await;
    let recent = building(&ports, &site, later - Duration::hours(2)).await;

    let swept = sweep(&tasks.mark_failed, later).await.unwrap();

    assert_eq!(
        swept.expired.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&abandoned.id, &never_started.id])
    );
    assert_eq!(swept.interrupted, [stalled.id]);
    for expired in [&abandoned, &never_started] {
        assert_eq!(
            status_and_error(&ports, expired).await,
            (DeploymentStatus::Failed, Some("UploadExpired".to_owned()))
        );
    }
    assert_eq!(
        status_and_error(&ports, &stalled).await,
        (DeploymentStatus::Failed, Some(INTERRUPTED.to_owned()))
    );
    let partial = |d: &Deployment| format!("{site}/{}/", d.id);
    let hosted = ports
        .objects
        .list(Bucket::Hosting, &partial(&stalled))
        .await
        .unwrap();
    assert!(hosted.is_empty(), "{hosted:?}");
    // The failed deployment's own upload goes with it.
    let upload = stalled.source.archive().unwrap();
    assert!(ports
        .objects
        .head(Bucket::Source, &upload.key)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        status_and_error(&ports, &awaited).await,
        (DeploymentStatus::Queued, None)
    );
    assert_eq!(
        status_and_error(&ports, &recent).await,
        (DeploymentStatus::Building, None)
    );
    assert_eq!(
        sweep(&tasks.mark_failed, later).await.unwrap(),
        Default::default()
    );

    // Step Functions says the execution that held `recent` was aborted.
    let execution = slipway_core::trigger::execution_name(&recent.id);
    let error = ExecutionEnd::Aborted.error(&execution, None, None);
    assert!(
        fail_if_in_flight(&tasks.mark_failed, &site, &recent.id, error.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        status_and_error(&ports, &recent).await,
        (DeploymentStatus::Failed, Some(INTERRUPTED.to_owned()))
    );
    assert!(ports
        .objects
        .list(Bucket::Hosting, &partial(&recent))
        .await
        .unwrap()
        .is_empty());
    // A repeated event finds it failed already.
    assert!(
        !fail_if_in_flight(&tasks.mark_failed, &site, &recent.id, error)
            .await
            .unwrap()
    );
}
