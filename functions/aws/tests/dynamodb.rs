//! The DynamoDB state store against moto, on a table made by `create_table` (one per test),
//! with the semantics the embedded SQLite store's tests pin down.
//!
//! moto 5.1 runs TransactWriteItems without isolation from concurrent requests (its server
//! is threaded): it checks and applies the items one by one with no lock, so two transactions
//! both pass `attribute_not_exists(live_deployment)`, and on cancellation it restores a copy of
//! the whole table taken when it started, wiping writes other requests committed meanwhile.
//! DynamoDB isolates transactions from every other write. So the harness hands moto one
//! request at a time ([`OneAtATime`]): concurrent callers still interleave request by request,
//! which is the race the store's conditions must win. (moto also ignores the
//! `ClientRequestToken` the SDK puts on every transaction, so a retried transaction that had
//! committed would apply twice there; DynamoDB answers the retry without applying it again.)

mod support;

use std::sync::Arc;

use aws_sdk_dynamodb::config::StalledStreamProtectionConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use futures::StreamExt;
use slipway_aws::dynamodb::{create_table, DynamoError, DynamoState, GSI1, TTL_ATTRIBUTE};
use slipway_core::model::{
    rollback_candidate, Deployment, DeploymentSource, DeploymentStatus, GitSource, ObjectLocation,
    Preview, RecordedError, RoutingFlags, Site,
};
use slipway_core::names::{BranchName, CommitSha, DeploymentId, RepoName, SiteName, TargetName};
use slipway_core::ports::{
    ActivateOutcome, Bucket, DeploymentPatch, Displaced, StateError, StateStore,
};
use time::OffsetDateTime;

/// An HTTP client that sends one request at a time (see the module documentation).
#[derive(Debug, Clone, Default)]
struct OneAtATime {
    http: reqwest::Client,
    turn: Arc<tokio::sync::Mutex<()>>,
}

fn connector_error(e: impl std::error::Error + Send + Sync + 'static) -> ConnectorError {
    ConnectorError::io(Box::new(e))
}

impl OneAtATime {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let _turn = self.turn.lock().await;
        let method =
            reqwest::Method::from_bytes(request.method().as_bytes()).map_err(connector_error)?;
        let mut outgoing = self.http.request(method, request.uri());
        for (name, value) in request.headers() {
            // reqwest sets these from the URL and the body.
            if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
                outgoing = outgoing.header(name, value);
            }
        }
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let answer = outgoing.body(body).send().await.map_err(connector_error)?;
        let status = StatusCode::try_from(answer.status().as_u16()).map_err(connector_error)?;
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.map_err(connector_error)?;
        let mut response = HttpResponse::new(status, SdkBody::from(bytes));
        for (name, value) in &headers {
            if let Ok(value) = value.to_str() {
                response
                    .headers_mut()
                    .insert(name.as_str().to_owned(), value.to_owned());
            }
        }
        Ok(response)
    }
}

impl HttpConnector for OneAtATime {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.send(request).await })
    }
}

impl HttpClient for OneAtATime {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

struct Harness {
    store: DynamoState,
    raw: aws_sdk_dynamodb::Client,
    table: String,
}

async fn harness() -> Harness {
    let config = support::sdk_config(&support::moto_url());
    let raw = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .http_client(OneAtATime::default())
            // The connector never streams the request body, and a request waiting for its
            // turn would look like a stalled upload and be retried.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .build(),
    );
    let table = support::unique("slipway-state");
    create_table(&raw, &table)
        .await
        .expect("create the table in moto");
    Harness {
        store: DynamoState::new(raw.clone(), &table),
        raw,
        table,
    }
}

fn name(raw: &str) -> SiteName {
    SiteName::parse(raw).unwrap()
}

fn site(raw: &str) -> Site {
    Site {
        name: name(raw),
        routing: RoutingFlags {
            spa: true,
            clean_urls: false,
        },
        retain: 10,
        created_at: OffsetDateTime::now_utc(),
        live_deployment: None,
        repo: None,
    }
}

fn deployment(site: &str) -> Deployment {
    let id = DeploymentId::generate();
    let source = ObjectLocation {
        bucket: Bucket::Source,
        key: format!("uploads/{site}/{id}.zip"),
    };
    Deployment::queued(id, name(site), source, false, OffsetDateTime::now_utc())
}

/// A deployment of `branch` (or of pull request `pr` from it) for its preview target.
fn preview_deployment(site: &str, branch: &str, pr: Option<u64>) -> Deployment {
    let mut d = deployment(site);
    let branch = BranchName::parse(branch).unwrap();
    d.target = match pr {
        Some(number) => TargetName::pull_request(number),
        None => TargetName::for_branch(&branch, &d.site),
    };
    d.source = DeploymentSource::Git(GitSource {
        repo: RepoName::parse("acme/docs").unwrap(),
        clone_url: "https://github.com/acme/docs.git".into(),
        sha: CommitSha::parse("4b825dc642cb6eb9a060e54bf8d69288fbee4904").unwrap(),
        branch,
        pull_request: pr,
        root: None,
    });
    d
}

/// Creates `d` and moves it on to publishing.
async fn create_published(store: &DynamoState, d: &Deployment) {
    store.create_deployment(d).await.unwrap();
    publish(store, d).await;
}

async fn publish(store: &DynamoState, d: &Deployment) {
    for to in [DeploymentStatus::Building, DeploymentStatus::Publishing] {
        store
            .transition(&d.site, &d.id, to, DeploymentPatch::default())
            .await
            .unwrap();
    }
}

/// Creates the site and `N` deployments of it, oldest first, the first `published` of them
/// moved on to publishing.
async fn site_with<const N: usize>(
    store: &DynamoState,
    site_name: &str,
    published: usize,
) -> [Deployment; N] {
    store.create_site(&site(site_name)).await.unwrap();
    let created: [Deployment; N] = std::array::from_fn(|_| deployment(site_name));
    for (i, d) in created.iter().enumerate() {
        store.create_deployment(d).await.unwrap();
        if i < published {
            publish(store, d).await;
        }
    }
    created
}

async fn status(store: &DynamoState, d: &Deployment) -> DeploymentStatus {
    store.get_deployment(&d.site, &d.id).await.unwrap().status
}

#[tokio::test]
async fn the_table_has_the_documented_shape_and_ttl() {
    let h = harness().await;
    let described = h
        .raw
        .describe_table()
        .table_name(&h.table)
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("PK", "HASH"), ("SK", "RANGE")]);
    let gsi = &table.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some(GSI1));
    let ttl = h
        .raw
        .describe_time_to_live()
        .table_name(&h.table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));

    // The items carry the documented keys and typed attributes.
    h.store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    h.store.create_deployment(&d).await.unwrap();
    let item = h
        .raw
        .get_item()
        .table_name(&h.table)
        .key("PK", AttributeValue::S("SITE#docs".into()))
        .key("SK", AttributeValue::S(format!("DEP#{}", d.id)))
        .send()
        .await
        .unwrap()
        .item
        .expect("the deployment item");
    assert_eq!(item["GSI1PK"], AttributeValue::S(format!("DEP#{}", d.id)));
    assert_eq!(item["status"], AttributeValue::S("queued".into()));
    assert_eq!(item["prebuilt"], AttributeValue::Bool(false));
    assert!(
        matches!(&item["source"], AttributeValue::M(m) if m["bucket"] == AttributeValue::S("source".into()))
    );
    assert!(!item.contains_key("activated_at"), "None is no attribute");
}

#[tokio::test]
async fn sites_are_unique_and_listed_by_name() {
    let h = harness().await;
    let docs = site("docs");
    h.store.create_site(&docs).await.unwrap();
    assert!(matches!(
        h.store.create_site(&site("docs")).await,
        Err(StateError::SiteExists(n)) if n == docs.name
    ));
    h.store.create_site(&site("api")).await.unwrap();
    let listed = h.store.list_sites().await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "docs"]);
    assert_eq!(h.store.get_site(&docs.name).await.unwrap(), docs);
    assert!(matches!(
        h.store.get_site(&name("nope")).await,
        Err(StateError::SiteNotFound(_))
    ));
}

#[tokio::test]
async fn deployments_need_their_site_and_round_trip_exactly() {
    let h = harness().await;
    let orphan = deployment("nosite");
    assert!(matches!(
        h.store.create_deployment(&orphan).await,
        Err(StateError::SiteNotFound(_))
    ));
    h.store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    h.store.create_deployment(&d).await.unwrap();
    assert_eq!(h.store.get_deployment(&d.site, &d.id).await.unwrap(), d);
    assert_eq!(h.store.find_deployment(&d.id).await.unwrap(), d);
    match h.store.create_deployment(&d).await {
        Err(StateError::Unavailable(e)) => assert!(matches!(
            e.downcast_ref::<DynamoError>(),
            Some(DynamoError::DeploymentExists(id)) if *id == d.id
        )),
        other => panic!("a second create must be refused, got {other:?}"),
    }
    let unknown = DeploymentId::generate();
    assert!(matches!(
        h.store.find_deployment(&unknown).await,
        Err(StateError::DeploymentNotFound(id)) if id == unknown
    ));
    assert!(matches!(
        h.store.get_deployment(&d.site, &unknown).await,
        Err(StateError::DeploymentNotFound(_))
    ));
}

#[tokio::test]
async fn transitions_are_conditional_on_the_lifecycle() {
    let h = harness().await;
    h.store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    h.store.create_deployment(&d).await.unwrap();
    let err = h
        .store
        .transition(
            &d.site,
            &d.id,
            DeploymentStatus::Live,
            DeploymentPatch::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StateError::InvalidTransition {
            from: DeploymentStatus::Queued,
            to: DeploymentStatus::Live,
            ..
        }
    ));
    let moved = h
        .store
        .transition(
            &d.site,
            &d.id,
            DeploymentStatus::Building,
            DeploymentPatch {
                built: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(moved.built);
    assert_eq!(moved.status, DeploymentStatus::Building);
    assert!(moved.updated_at > d.updated_at);

    // Every patch field lands, and what transition returns is what is stored.
    let patch = DeploymentPatch {
        built: None,
        routing: Some(RoutingFlags {
            spa: true,
            clean_urls: true,
        }),
        error: Some(RecordedError {
            name: "BuildFailed".into(),
            cause: "npm ci exited 1".into(),
        }),
        file_count: Some(42),
        bytes: Some(u64::MAX),
    };
    let failed = h
        .store
        .transition(&d.site, &d.id, DeploymentStatus::Failed, patch)
        .await
        .unwrap();
    assert!(failed.built, "an unset patch field keeps its value");
    assert!(failed.routing.spa && failed.routing.clean_urls);
    assert_eq!(failed.error.as_ref().unwrap().name, "BuildFailed");
    assert_eq!(
        (failed.file_count, failed.bytes),
        (Some(42), Some(u64::MAX))
    );
    assert_eq!(failed.activated_at, None);
    assert_eq!(
        h.store.get_deployment(&d.site, &d.id).await.unwrap(),
        failed
    );

    // A failed deployment cannot fail again, and nothing moves back to queued: both are
    // named with the stored status.
    for to in [DeploymentStatus::Failed, DeploymentStatus::Queued] {
        assert!(matches!(
            h.store.transition(&d.site, &d.id, to, DeploymentPatch::default()).await,
            Err(StateError::InvalidTransition { id, from: DeploymentStatus::Failed, to: t }) if id == d.id && t == to
        ));
    }
    assert!(matches!(
        h.store.get_deployment(&name("other"), &d.id).await,
        Err(StateError::SiteNotFound(_))
    ));
    let unknown = DeploymentId::generate();
    assert!(matches!(
        h.store
            .transition(&d.site, &unknown, DeploymentStatus::Building, DeploymentPatch::default())
            .await,
        Err(StateError::DeploymentNotFound(id)) if id == unknown
    ));
}

#[tokio::test]
async fn activate_supersedes_the_previous_and_never_moves_backwards() {
    let h = harness().await;
    let store = &h.store;
    let [older, newer, newest] = site_with(store, "docs", 3).await;
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store.activate(&newer.site, &newer.id, now).await.unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    // The slower, older deploy finishes later: it must not replace the newer one.
    assert_eq!(
        store.activate(&older.site, &older.id, now).await.unwrap(),
        ActivateOutcome::Superseded { newer: newer.id }
    );
    assert_eq!(
        store.activate(&newer.site, &newer.id, now).await.unwrap(),
        ActivateOutcome::AlreadyLive
    );
    // Superseded without ever being live: activating it again is refused, not a panic.
    assert!(matches!(
        store.activate(&older.site, &older.id, now).await,
        Err(StateError::InvalidTransition {
            from: DeploymentStatus::Superseded,
            to: DeploymentStatus::Superseded,
            ..
        })
    ));
    assert_eq!(
        store.activate(&newest.site, &newest.id, now).await.unwrap(),
        ActivateOutcome::Activated {
            previous: Some(newer.id)
        }
    );
    let listed = store.list_deployments(&older.site).await.unwrap();
    let statuses: Vec<_> = listed.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Live,
            DeploymentStatus::Superseded,
            DeploymentStatus::Superseded
        ]
    );
    assert_eq!(listed[0].activated_at, Some(now));
    assert_eq!(listed[2].activated_at, None, "older was never live");
    assert_eq!(
        store.get_site(&newer.site).await.unwrap().live_deployment,
        Some(newest.id)
    );

    let later = now + time::Duration::seconds(1);
    let back = store
        .route_production(&newer.site, &newer.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(back.status, DeploymentStatus::Live);
    assert_eq!(back.activated_at, Some(later));
    assert_eq!(
        store.get_deployment(&newer.site, &newer.id).await.unwrap(),
        back
    );
    assert_eq!(status(store, &newest).await, DeploymentStatus::RolledBack);
    assert_eq!(
        store.get_site(&newer.site).await.unwrap().live_deployment,
        Some(newer.id)
    );
    // Routing production to what it serves already changes nothing.
    let same = store
        .route_production(&newer.site, &newer.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(same, back);
    assert_eq!(status(store, &newest).await, DeploymentStatus::RolledBack);
    // Roll forward again to the rolled-back one.
    store
        .route_production(&newest.site, &newest.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(status(store, &newer).await, DeploymentStatus::RolledBack);
    assert_eq!(status(store, &newest).await, DeploymentStatus::Live);
}

#[tokio::test]
async fn concurrent_activations_leave_exactly_the_newest_live() {
    let h = harness().await;
    let store = &h.store;
    for round in 0..8 {
        let [older, newer] = site_with(store, &format!("race{round}"), 2).await;
        let now = OffsetDateTime::now_utc();
        // Alternate who asks first.
        let (older_outcome, newer_outcome) = if round % 2 == 0 {
            tokio::join!(
                store.activate(&older.site, &older.id, now),
                store.activate(&newer.site, &newer.id, now)
            )
        } else {
            let (n, o) = tokio::join!(
                store.activate(&newer.site, &newer.id, now),
                store.activate(&older.site, &older.id, now)
            );
            (o, n)
        };
        let (o, n) = (older_outcome.unwrap(), newer_outcome.unwrap());
        // Either order of commits is fine; both end with the newer one live.
        match (&o, &n) {
            (
                ActivateOutcome::Superseded { newer: id },
                ActivateOutcome::Activated { previous: None },
            ) => {
                assert_eq!(*id, newer.id)
            }
            (
                ActivateOutcome::Activated { previous: None },
                ActivateOutcome::Activated { previous: Some(id) },
            ) => {
                assert_eq!(*id, older.id)
            }
            _ => panic!("round {round}: older {o:?}, newer {n:?}"),
        }
        assert_eq!(
            status(store, &newer).await,
            DeploymentStatus::Live,
            "round {round}"
        );
        assert_eq!(
            status(store, &older).await,
            DeploymentStatus::Superseded,
            "round {round}"
        );
        assert_eq!(
            store.get_site(&newer.site).await.unwrap().live_deployment,
            Some(newer.id)
        );
        let live = store
            .list_deployments(&newer.site)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Live)
            .count();
        assert_eq!(live, 1);
    }
}

#[tokio::test]
async fn live_and_in_flight_deployments_cannot_be_deleted() {
    let h = harness().await;
    let store = &h.store;
    let [old, live, queued] = site_with(store, "docs", 2).await;
    for d in [&old, &live] {
        store
            .activate(&d.site, &d.id, OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    for d in [&live, &queued] {
        assert!(matches!(
            store.delete_deployment(&d.site, &d.id).await,
            Err(StateError::InUse { id, .. }) if id == d.id
        ));
        assert!(store.get_deployment(&d.site, &d.id).await.is_ok());
    }

    // A superseded one goes, with its build log.
    store
        .append_log(&old.id, &["npm ci".into(), "done".into()])
        .await
        .unwrap();
    store.delete_deployment(&old.site, &old.id).await.unwrap();
    assert!(matches!(
        store.get_deployment(&old.site, &old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert!(matches!(
        store.find_deployment(&old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert!(store.read_log(&old.id, 0).await.unwrap().is_empty());
    let leftover = h
        .raw
        .query()
        .table_name(&h.table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("LOG#{}", old.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(leftover.count(), 0, "the log counter goes too");
    assert!(matches!(
        store.delete_deployment(&old.site, &old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert_eq!(store.list_deployments(&live.site).await.unwrap().len(), 2);
}

#[tokio::test]
async fn logs_append_in_order_and_read_incrementally() {
    let h = harness().await;
    let store = h.store.clone().with_page_limit(40);
    let id = DeploymentId::generate();
    store
        .append_log(&id, &["one".into(), "two".into()])
        .await
        .unwrap();
    store.append_log(&id, &["three".into()]).await.unwrap();
    let all = store.read_log(&id, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let rest = store.read_log(&id, all[1].seq).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].line, "three");
    assert!(store.read_log(&id, u64::MAX).await.unwrap().is_empty());

    // A batch larger than one transaction keeps numbering without gaps, across pages.
    let batch: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    store.append_log(&id, &batch).await.unwrap();
    let all = store.read_log(&id, 0).await.unwrap();
    assert_eq!(all.len(), 253);
    assert!(all.iter().zip(1..).all(|(l, seq)| l.seq == seq));
    assert_eq!(all[252].line, "line 249");
    let tail = store.read_log(&id, 250).await.unwrap();
    assert_eq!(
        tail.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["line 247", "line 248", "line 249"]
    );

    // Two writers at once: every line lands exactly once.
    let other = DeploymentId::generate();
    let writers = (0..4).map(|w| {
        let store = store.clone();
        async move {
            let lines: Vec<String> = (0..30).map(|i| format!("w{w} {i}")).collect();
            store.append_log(&other, &lines).await
        }
    });
    for result in futures::future::join_all(writers).await {
        result.unwrap();
    }
    let lines = store.read_log(&other, 0).await.unwrap();
    assert_eq!(lines.len(), 120);
    assert!(lines.iter().zip(1..).all(|(l, seq)| l.seq == seq));
    let mut texts: Vec<_> = lines.iter().map(|l| l.line.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 120);
}

#[tokio::test]
async fn deployments_list_newest_first_across_pages() {
    let h = harness().await;
    let store = h.store.clone().with_page_limit(25);
    store.create_site(&site("docs")).await.unwrap();
    store.create_site(&site("other")).await.unwrap();
    let created: Vec<Deployment> = (0..120).map(|_| deployment("docs")).collect();
    let stranger = deployment("other");
    store.create_deployment(&stranger).await.unwrap();
    futures::stream::iter(created.iter())
        .map(|d| store.create_deployment(d))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let listed = store.list_deployments(&name("docs")).await.unwrap();
    let expected: Vec<_> = created.iter().rev().map(|d| d.id).collect();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), expected);
    assert_eq!(listed[0], created[119]);
    assert_eq!(
        store.list_deployments(&name("other")).await.unwrap(),
        [stranger]
    );
    assert!(matches!(
        store.list_deployments(&name("nope")).await,
        Err(StateError::SiteNotFound(_))
    ));
    // Sites list through the index with the same small pages.
    for i in 0..30 {
        store.create_site(&site(&format!("s{i:02}"))).await.unwrap();
    }
    assert_eq!(store.list_sites().await.unwrap().len(), 32);
}

#[tokio::test]
async fn a_missing_table_is_unavailable_not_a_panic() {
    let config = support::sdk_config(&support::moto_url());
    let store = DynamoState::new(
        aws_sdk_dynamodb::Client::new(&config),
        support::unique("no-such-table"),
    );
    assert!(matches!(
        store.get_site(&name("docs")).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(matches!(
        store.list_sites().await,
        Err(StateError::Unavailable(_))
    ));
}

async fn activate(store: &DynamoState, d: &Deployment, now: OffsetDateTime) -> ActivateOutcome {
    store.activate(&d.site, &d.id, now).await.unwrap()
}

async fn previews(store: &DynamoState, site: &str) -> Vec<Preview> {
    store.list_previews(&name(site)).await.unwrap()
}

#[tokio::test]
async fn activating_a_preview_deployment_creates_its_preview_and_leaves_production_alone() {
    let h = harness().await;
    let store = &h.store;
    let [production] = site_with(store, "docs", 1).await;
    let now = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, now)
        .await
        .unwrap();
    let branch = preview_deployment("docs", "feature/Login", None);
    let pull = preview_deployment("docs", "fix-typo", Some(7));
    for d in [&branch, &pull] {
        create_published(store, d).await;
        assert_eq!(
            store.activate(&d.site, &d.id, now).await.unwrap(),
            ActivateOutcome::Activated { previous: None }
        );
    }

    let listed = previews(store, "docs").await;
    let expected = [
        Preview {
            site: name("docs"),
            target: TargetName::parse("feature-login").unwrap(),
            branch: Some(BranchName::parse("feature/Login").unwrap()),
            pull_request: None,
            live_deployment: Some(branch.id),
            updated_at: now,
            removed_at: None,
        },
        Preview {
            site: name("docs"),
            target: TargetName::parse("pr-7").unwrap(),
            branch: Some(BranchName::parse("fix-typo").unwrap()),
            pull_request: Some(7),
            live_deployment: Some(pull.id),
            updated_at: now,
            removed_at: None,
        },
    ];
    assert_eq!(listed, expected);
    // A preview going live is no production activation: rollback never picks it.
    let live = store
        .get_deployment(&branch.site, &branch.id)
        .await
        .unwrap();
    assert_eq!(live.status, DeploymentStatus::Live);
    assert_eq!(live.activated_at, None);
    let mut expected = branch.clone();
    expected.status = DeploymentStatus::Live;
    expected.updated_at = now;
    assert_eq!(live, expected);
    assert_eq!(
        store.find_deployment(&branch.id).await.unwrap().source,
        branch.source,
        "a git source round-trips"
    );
    assert_eq!(status(store, &production).await, DeploymentStatus::Live);
    assert_eq!(
        store.get_site(&name("docs")).await.unwrap().live_deployment,
        Some(production.id)
    );
    // Previews are items of the site's partition, not deployments.
    assert_eq!(
        store.list_deployments(&name("docs")).await.unwrap().len(),
        3
    );
    let item = h
        .raw
        .get_item()
        .table_name(&h.table)
        .key("PK", AttributeValue::S("SITE#docs".into()))
        .key("SK", AttributeValue::S("PREVIEW#pr-7".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the preview item");
    assert_eq!(
        item["live_deployment"],
        AttributeValue::S(pull.id.to_string())
    );
    assert_eq!(item["pull_request"], AttributeValue::N("7".into()));
    assert!(!item.contains_key("removed_at"), "None is no attribute");
    assert!(matches!(
        store.list_previews(&name("nope")).await,
        Err(StateError::SiteNotFound(_))
    ));
}

#[tokio::test]
async fn the_newest_deployment_wins_per_target_independently_of_production() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    // Created in this order: ids ascend.
    let older_preview = preview_deployment("docs", "feature", None);
    let production = deployment("docs");
    let newer_preview = preview_deployment("docs", "feature", None);
    let other_preview = preview_deployment("docs", "other", Some(3));
    let newer_production = deployment("docs");
    for d in [
        &older_preview,
        &production,
        &newer_preview,
        &other_preview,
        &newer_production,
    ] {
        create_published(store, d).await;
    }
    let now = OffsetDateTime::now_utc();

    assert_eq!(
        activate(store, &newer_preview, now).await,
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(
        activate(store, &older_preview, now).await,
        ActivateOutcome::Superseded {
            newer: newer_preview.id
        }
    );
    // A newer preview deployment does not hold production back, nor the other way round.
    assert_eq!(
        activate(store, &production, now).await,
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(
        activate(store, &newer_production, now).await,
        ActivateOutcome::Activated {
            previous: Some(production.id)
        }
    );
    assert_eq!(
        activate(store, &other_preview, now).await,
        ActivateOutcome::Activated { previous: None }
    );

    assert_eq!(
        status(store, &older_preview).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(status(store, &newer_preview).await, DeploymentStatus::Live);
    assert_eq!(
        status(store, &production).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(
        status(store, &newer_production).await,
        DeploymentStatus::Live
    );
    assert_eq!(status(store, &other_preview).await, DeploymentStatus::Live);
    assert_eq!(
        store.get_site(&name("docs")).await.unwrap().live_deployment,
        Some(newer_production.id)
    );
    let live: Vec<_> = previews(store, "docs")
        .await
        .into_iter()
        .map(|p| (p.target.to_string(), p.live_deployment))
        .collect();
    assert_eq!(
        live,
        [
            ("feature".to_owned(), Some(newer_preview.id)),
            ("pr-3".to_owned(), Some(other_preview.id)),
        ]
    );
}

#[tokio::test]
async fn promote_keeps_the_preview_deployment_live_and_supersedes_production() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    let production = deployment("docs");
    let slower_production = deployment("docs");
    let preview = preview_deployment("docs", "redesign", None);
    let later_production = deployment("docs");
    for d in [&production, &slower_production, &preview, &later_production] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, t0)
        .await
        .unwrap();
    store
        .activate(&preview.site, &preview.id, t0)
        .await
        .unwrap();

    // Promote: production serves the preview's deployment.
    let t1 = t0 + time::Duration::seconds(1);
    let promoted = store
        .route_production(&preview.site, &preview.id, Displaced::Superseded, t1)
        .await
        .unwrap();
    assert_eq!(
        promoted.status,
        DeploymentStatus::Live,
        "it stays live on its preview"
    );
    assert_eq!(promoted.activated_at, Some(t1));
    assert_eq!(
        store
            .get_deployment(&preview.site, &preview.id)
            .await
            .unwrap(),
        promoted
    );
    assert_eq!(
        status(store, &production).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(
        store.get_site(&name("docs")).await.unwrap().live_deployment,
        Some(preview.id)
    );
    assert_eq!(
        previews(store, "docs").await[0].live_deployment,
        Some(preview.id)
    );

    // A production deploy older than the promoted deployment loses to it; a newer one
    // takes production back and leaves the preview as it is.
    assert_eq!(
        store
            .activate(&slower_production.site, &slower_production.id, t1)
            .await
            .unwrap(),
        ActivateOutcome::Superseded { newer: preview.id }
    );
    let t2 = t1 + time::Duration::seconds(1);
    assert_eq!(
        store
            .activate(&later_production.site, &later_production.id, t2)
            .await
            .unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(status(store, &preview).await, DeploymentStatus::Live);
    assert_eq!(
        store.get_site(&name("docs")).await.unwrap().live_deployment,
        Some(later_production.id)
    );
}

#[tokio::test]
async fn rollback_after_a_promote_returns_to_the_production_deployment_before_it() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    let production = deployment("docs");
    let preview = preview_deployment("docs", "redesign", Some(12));
    for d in [&production, &preview] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, t0)
        .await
        .unwrap();
    store
        .activate(&preview.site, &preview.id, t0)
        .await
        .unwrap();
    let t1 = t0 + time::Duration::seconds(1);
    store
        .route_production(&preview.site, &preview.id, Displaced::Superseded, t1)
        .await
        .unwrap();

    let deployments = store.list_deployments(&name("docs")).await.unwrap();
    let candidate = rollback_candidate(&deployments, Some(preview.id)).unwrap();
    assert_eq!(candidate.id, production.id);
    let t2 = t1 + time::Duration::seconds(1);
    let back = store
        .route_production(&production.site, &production.id, Displaced::RolledBack, t2)
        .await
        .unwrap();

    assert_eq!(back.status, DeploymentStatus::Live);
    assert_eq!(back.activated_at, Some(t2));
    // The promoted deployment is not production's: it stays live on its preview.
    assert_eq!(status(store, &preview).await, DeploymentStatus::Live);
    assert_eq!(
        store.get_site(&name("docs")).await.unwrap().live_deployment,
        Some(production.id)
    );
    assert_eq!(
        previews(store, "docs").await[0].live_deployment,
        Some(preview.id)
    );
    // Routing production to a deployment that never published is refused, changing nothing.
    let unpublished = deployment("docs");
    store.create_deployment(&unpublished).await.unwrap();
    assert!(matches!(
        store
            .route_production(
                &unpublished.site,
                &unpublished.id,
                Displaced::RolledBack,
                t2
            )
            .await,
        Err(StateError::InvalidTransition {
            from: DeploymentStatus::Queued,
            to: DeploymentStatus::Live,
            ..
        })
    ));
    assert_eq!(status(store, &production).await, DeploymentStatus::Live);
}

#[tokio::test]
async fn a_removed_preview_refuses_deployments_made_before_its_removal() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    let live = preview_deployment("docs", "feature", None);
    let late = preview_deployment("docs", "feature", None);
    for d in [&live, &late] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store.activate(&live.site, &live.id, t0).await.unwrap();
    let target = live.target.clone();

    let removed_at = OffsetDateTime::now_utc();
    let before = store
        .remove_preview(&name("docs"), &target, removed_at)
        .await
        .unwrap()
        .expect("the preview existed");
    assert_eq!(before.live_deployment, Some(live.id));
    assert_eq!(before.removed_at, None);
    assert_eq!(status(store, &live).await, DeploymentStatus::Superseded);
    let tombstone = &previews(store, "docs").await[0];
    assert_eq!(tombstone.live_deployment, None);
    assert_eq!(tombstone.removed_at, Some(removed_at));
    assert_eq!(tombstone.updated_at, removed_at);

    // A build that was still running when the branch went away finishes: it never goes live.
    assert_eq!(
        store
            .activate(&late.site, &late.id, removed_at)
            .await
            .unwrap(),
        ActivateOutcome::TargetRemoved
    );
    assert_eq!(status(store, &late).await, DeploymentStatus::Superseded);
    assert_eq!(previews(store, "docs").await[0], *tombstone);

    // The branch is pushed again: a deployment made after the removal brings it back.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = preview_deployment("docs", "feature", None);
    create_published(store, &again).await;
    let t1 = removed_at + time::Duration::seconds(1);
    assert_eq!(
        store.activate(&again.site, &again.id, t1).await.unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    let revived = &previews(store, "docs").await[0];
    assert_eq!(revived.live_deployment, Some(again.id));
    assert_eq!(revived.removed_at, None);
    assert_eq!(revived.updated_at, t1);

    // Removing a preview that never went live leaves a tombstone too.
    let closed = TargetName::pull_request(99);
    assert_eq!(
        store
            .remove_preview(&name("docs"), &closed, t1)
            .await
            .unwrap(),
        None
    );
    let listed = previews(store, "docs").await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].target, closed);
    assert_eq!(listed[1].removed_at, Some(t1));
    assert!(matches!(
        store.remove_preview(&name("nope"), &closed, t1).await,
        Err(StateError::SiteNotFound(_))
    ));
}

#[tokio::test]
async fn concurrent_activations_of_a_new_preview_leave_exactly_the_newest_live() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    for round in 0..6 {
        // A fresh target each round, so both race to create its record.
        let branch = format!("race-{round}");
        let older = preview_deployment("docs", &branch, None);
        let newer = preview_deployment("docs", &branch, None);
        for d in [&older, &newer] {
            create_published(store, d).await;
        }
        let now = OffsetDateTime::now_utc();
        let (o, n) = if round % 2 == 0 {
            tokio::join!(
                store.activate(&older.site, &older.id, now),
                store.activate(&newer.site, &newer.id, now)
            )
        } else {
            let (n, o) = tokio::join!(
                store.activate(&newer.site, &newer.id, now),
                store.activate(&older.site, &older.id, now)
            );
            (o, n)
        };
        // Either order of commits is fine; both end with the newer one live.
        match (o.unwrap(), n.unwrap()) {
            (
                ActivateOutcome::Superseded { newer: id },
                ActivateOutcome::Activated { previous: None },
            ) => assert_eq!(id, newer.id, "round {round}"),
            (
                ActivateOutcome::Activated { previous: None },
                ActivateOutcome::Activated { previous: Some(id) },
            ) => assert_eq!(id, older.id, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(
            status(store, &newer).await,
            DeploymentStatus::Live,
            "round {round}"
        );
        assert_eq!(
            status(store, &older).await,
            DeploymentStatus::Superseded,
            "round {round}"
        );
        let preview = previews(store, "docs")
            .await
            .into_iter()
            .find(|p| p.target == newer.target)
            .unwrap();
        assert_eq!(preview.live_deployment, Some(newer.id), "round {round}");
    }
}

#[tokio::test]
async fn webhook_deliveries_are_recorded_once_until_they_expire() {
    let h = harness().await;
    let store = &h.store;
    let delivery = support::unique("delivery");
    let hour = OffsetDateTime::now_utc() + time::Duration::hours(1);

    assert!(store.record_delivery(&delivery, hour).await.unwrap());
    assert!(
        !store.record_delivery(&delivery, hour).await.unwrap(),
        "a redelivery"
    );
    let other = support::unique("delivery");
    assert!(store.record_delivery(&other, hour).await.unwrap());

    let item = h
        .raw
        .get_item()
        .table_name(&h.table)
        .key("PK", AttributeValue::S(format!("HOOK#{delivery}")))
        .key("SK", AttributeValue::S("DELIVERY".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the delivery item");
    assert_eq!(
        item[TTL_ATTRIBUTE],
        AttributeValue::N(hour.unix_timestamp().to_string())
    );

    // An expired record that TTL has not deleted yet is taken over.
    let expired = support::unique("delivery");
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    assert!(store.record_delivery(&expired, past).await.unwrap());
    assert!(store.record_delivery(&expired, hour).await.unwrap());
    assert!(!store.record_delivery(&expired, hour).await.unwrap());

    // A delivery whose handling failed is forgotten, so its redelivery is handled.
    store.forget_delivery(&expired).await.unwrap();
    assert!(store.record_delivery(&expired, hour).await.unwrap());
}
