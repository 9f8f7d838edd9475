//! A prebuilt deploy through the real step handlers on the AWS adapters — S3 on s3s-fs (which
//! checks SigV4), state on moto's DynamoDB, routes on the KVS test server (which checks
//! SigV4A) — driven by the same ASL interpreter as `slipway dev`. It must end exactly where
//! `slipway dev` ends for the same zip: the same objects with the same headers, the same
//! record, the same route, and the same rewritten path at the edge.
//!
//! The emulators are started by `tests/run-all.sh`, which exports their URLs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use slipway_aws::kvs::{self, CloudFrontKvs};
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation, RoutingFlags, Site};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{KeyValueStore, ObjectBody, ObjectMeta, ObjectStore, StateStore};
use slipway_core::site::edge::{Addresses, Hosts, KvsSwitch, UrlTemplate};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{BucketNames, DeploySiteTasks, SitePorts};
use slipway_core::trigger::{on_source_object, SourceEvent, TriggerOutcome};
use slipway_github::{GithubApi, GithubConfig};
use slipway_local::builder::LocalBuilder;
use slipway_local::edge::{router_source, EdgeConfig, EdgeRequest, EdgeRouter, RouterOutcome};
use slipway_local::git::GitRepos;
use slipway_local::objects::FsObjectStore;
use slipway_local::sqlite::SqliteState;
use slipway_local::workflow::{LocalDefinition, LocalWorkflow};
use slipway_testkit::aws::kvs_server::KvsTestServer;
use slipway_tests::{noise, zip_bytes};
use time::OffsetDateTime;

// The adapter tests' emulator set-up (URLs, test credentials, unique names), shared as is.
#[path = "../../functions/aws/tests/support/mod.rs"]
mod support;
use support::{fresh_stores, moto_url, sdk_config, ACCESS_KEY, SECRET_KEY};

const SITE: &str = "docs";
const DOMAIN: &str = "example.test";

/// The zip both runtimes deploy: pages, a fingerprinted asset, a binary file, a file large
/// enough to stream, a nested folder page, and SPA routing from slipway.toml.
fn site_zip() -> Vec<u8> {
    let big = noise(6 * 1024 * 1024, 7);
    let png = noise(3000, 11);
    zip_bytes(&[
        ("slipway.toml", b"spa = true\n"),
        ("index.html", b"<!doctype html><h1>docs</h1>"),
        ("guide/index.html", b"<h1>guide</h1>"),
        ("assets/app.3f9a1c2b.js", b"console.log('app')"),
        ("styles.css", b"body{margin:0}"),
        ("logo.png", &png),
        ("video/intro.bin", &big),
    ])
}

/// What a deploy left behind, with the deployment id taken out so two runs compare.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Path under the deployment prefix → (content type, cache control, bytes).
    objects: BTreeMap<String, (String, Option<String>, Vec<u8>)>,
    record: (
        DeploymentStatus,
        bool,
        bool,
        RoutingFlags,
        Option<u64>,
        Option<u64>,
        String,
    ),
    route: Option<String>,
    /// Request path → the path the router sends to the bucket.
    rewrites: BTreeMap<&'static str, String>,
}

/// Runs one prebuilt deploy of `zip` on `ports` through the source trigger and the
/// deploy-site definition, and reads back everything it produced.
async fn deploy(
    ports: SitePorts,
    routes: Arc<dyn KeyValueStore>,
    scratch: &Path,
    zip: Vec<u8>,
) -> Outcome {
    let site = SiteName::parse(SITE).unwrap();
    ports
        .state
        .create_site(&Site {
            name: site.clone(),
            routing: RoutingFlags::default(),
            retain: Site::DEFAULT_RETAIN,
            created_at: OffsetDateTime::now_utc(),
            production: None,
            repo: None,
        })
        .await
        .unwrap();
    let id = DeploymentId::generate();
    let key = format!("uploads/{site}/{id}.zip");
    let meta = ObjectMeta {
        content_type: "application/zip".into(),
        cache_control: None,
    };
    let stored = ports
        .objects
        .put(
            Bucket::Source,
            &key,
            ObjectBody::Bytes(Bytes::from(zip)),
            &meta,
        )
        .await
        .unwrap();
    let source = ObjectLocation {
        bucket: Bucket::Source,
        key: key.clone(),
    };
    let deployment = Deployment::queued(id, site.clone(), source, true, OffsetDateTime::now_utc());
    ports.state.create_deployment(&deployment).await.unwrap();

    let executions = SqliteState::open(&scratch.join("executions.db")).unwrap();
    let builder = Arc::new(LocalBuilder::new(
        ports.objects.clone(),
        ports.state.clone(),
        scratch.join("builds"),
    ));
    let workflow = LocalWorkflow::new(
        vec![LocalDefinition::deploy_site(DeploySiteTasks::new(
            ports.clone(),
        ))],
        builder,
        ports.buckets.clone(),
        executions,
    )
    .unwrap();
    let event = SourceEvent {
        key,
        version: stored.etag,
        event_time: OffsetDateTime::now_utc(),
    };
    let started = on_source_object(&*ports.state, &workflow, &event)
        .await
        .unwrap();
    assert!(
        matches!(started, TriggerOutcome::Started { .. }),
        "{started:?}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let record = loop {
        let record = ports.state.get_deployment(&site, &id).await.unwrap();
        if record.status.is_terminal() || tokio::time::Instant::now() > deadline {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.status, DeploymentStatus::Live, "{record:?}");

    let id_text = id.to_string();
    let prefix = format!("{site}/{id}/");
    let mut objects = BTreeMap::new();
    for info in ports.objects.list(Bucket::Hosting, &prefix).await.unwrap() {
        let head = ports
            .objects
            .head(Bucket::Hosting, &info.key)
            .await
            .unwrap()
            .unwrap();
        let bytes = ports
            .objects
            .get_range(Bucket::Hosting, &info.key, 0..head.size)
            .await
            .unwrap();
        let path = info.key.strip_prefix(&prefix).unwrap().to_owned();
        objects.insert(
            path,
            (
                head.meta.content_type,
                head.meta.cache_control,
                bytes.to_vec(),
            ),
        );
    }
    let host = Hosts::single(DOMAIN).production(&site);
    let route = routes
        .get(&host)
        .await
        .unwrap()
        .map(|v| v.replace(&id_text, "{id}"));

    let router = EdgeRouter::start(router_source(), routes, &EdgeConfig::default())
        .await
        .unwrap();
    let mut rewrites = BTreeMap::new();
    for path in [
        "/",
        "/guide/",
        "/app/deep/link",
        "/assets/app.3f9a1c2b.js",
        "/%2e%2e/secret",
    ] {
        let uri: http::Uri = path.parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        let request = EdgeRequest::from_http(&http::Method::GET, &uri, &headers);
        let viewer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let rewritten = match router.route(&request, viewer).await.unwrap() {
            RouterOutcome::Forward(forwarded) => forwarded.uri.replace(&id_text, "{id}"),
            RouterOutcome::Respond(response) => format!("response {}", response.status_code),
        };
        rewrites.insert(path, rewritten);
    }
    Outcome {
        objects,
        record: (
            record.status,
            record.prebuilt,
            record.built,
            record.routing,
            record.file_count,
            record.bytes,
            record.target.to_string(),
        ),
        route,
        rewrites,
    }
}

/// The deploy-site ports on `objects`, `state` and `routes`, as the stack configures them.
fn site_ports(
    objects: Arc<dyn ObjectStore>,
    state: Arc<dyn StateStore>,
    routes: Arc<dyn KeyValueStore>,
    scratch: &Path,
    buckets: BucketNames,
) -> SitePorts {
    SitePorts {
        objects,
        state,
        switch: Arc::new(KvsSwitch::new(routes, Hosts::single(DOMAIN))),
        repos: Arc::new(GitRepos::new(scratch.join("git"))),
        statuses: Arc::new(GithubApi::new(GithubConfig::default()).unwrap()),
        addresses: Addresses {
            hosts: Hosts::single(DOMAIN),
            urls: UrlTemplate::parse("https://{host}/").unwrap(),
        },
        buckets,
        zip_limits: ZipLimits::default(),
        publish_concurrency: 16,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prebuilt_deploy_on_the_aws_adapters_ends_where_slipway_dev_ends() {
    let zip = site_zip();
    let scratch = tempfile::tempdir().unwrap();

    // slipway dev's embedded stores.
    let local_state = SqliteState::open(&scratch.path().join("state.db")).unwrap();
    let local_objects = Arc::new(FsObjectStore::new(scratch.path().join("objects")).unwrap());
    let local_routes: Arc<dyn KeyValueStore> = Arc::new(local_state.clone());
    let local = site_ports(
        local_objects,
        Arc::new(local_state),
        local_routes.clone(),
        scratch.path(),
        slipway_local::dev::local_buckets(),
    );
    std::fs::create_dir_all(scratch.path().join("local")).unwrap();
    let expected = deploy(
        local,
        local_routes,
        &scratch.path().join("local"),
        zip.clone(),
    )
    .await;

    // The AWS adapters against the emulators.
    let moto = sdk_config(&moto_url());
    let kvs_server = KvsTestServer::start(ACCESS_KEY, SECRET_KEY).await.unwrap();
    let (objects, state, buckets) = fresh_stores().await;
    let kvs_client = kvs::client_for_endpoint(&moto, kvs_server.url());
    let aws_routes: Arc<dyn KeyValueStore> =
        Arc::new(CloudFrontKvs::new(kvs_client, kvs_server.kvs_arn().clone()));
    let aws = site_ports(
        Arc::new(objects),
        Arc::new(state),
        aws_routes.clone(),
        scratch.path(),
        buckets,
    );
    std::fs::create_dir_all(scratch.path().join("aws")).unwrap();
    let actual = deploy(aws, aws_routes, &scratch.path().join("aws"), zip).await;

    assert_eq!(
        actual.objects.keys().collect::<Vec<_>>(),
        expected.objects.keys().collect::<Vec<_>>()
    );
    for (path, (content_type, cache_control, bytes)) in &expected.objects {
        let (aws_type, aws_cache, aws_bytes) = &actual.objects[path];
        assert_eq!(
            (aws_type, aws_cache),
            (content_type, cache_control),
            "{path}"
        );
        assert!(
            aws_bytes == bytes,
            "{path}: {} vs {} bytes",
            aws_bytes.len(),
            bytes.len()
        );
    }
    assert_eq!(actual.record, expected.record);
    assert_eq!(actual.route, expected.route);
    assert_eq!(actual.route.as_deref(), Some("docs/{id};s"));
    assert_eq!(actual.rewrites, expected.rewrites);
    assert_eq!(actual.rewrites["/app/deep/link"], "/docs/{id}/index.html");
    assert_eq!(actual.rewrites["/%2e%2e/secret"], "response 400");
    assert!(!expected.objects.contains_key("slipway.toml"));
}
