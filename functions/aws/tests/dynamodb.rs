//! The DynamoDB state store against moto, on a table made by `create_table` (one per test):
//! the shared `StateStore` contract (`slipway-testkit`), and what is DynamoDB's own (the
//! table's shape, the items' attributes, paging, a missing table).
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
use slipway_core::model::Deployment;
use slipway_core::ports::{Lifecycle, StateError, StateStore};
use slipway_testkit::state_contract::{
    create_published, deployment, name, preview_deployment, site,
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

// Small pages, so the cases that list many items (log lines) read across pages.
slipway_testkit::state_store_contract!(async { (harness().await.store.with_page_limit(40), ()) });

#[tokio::test]
async fn items_hold_the_documented_attributes_and_deletes_leave_none_behind() {
    let h = harness().await;
    let store = &h.store;
    store.create_site(&site("docs")).await.unwrap();
    let get = |pk: String, sk: String| {
        let raw = h.raw.clone();
        let table = h.table.clone();
        async move {
            raw.get_item()
                .table_name(table)
                .key("PK", AttributeValue::S(pk))
                .key("SK", AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
        }
    };

    // A preview is an item of the site's partition, its traffic flat attributes.
    let pull = preview_deployment("docs", "fix-typo", Some(7));
    create_published(store, &pull).await;
    store
        .activate(&pull.site, &pull.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let item = get("SITE#docs".into(), "PREVIEW#pr-7".into())
        .await
        .expect("the preview item");
    assert_eq!(
        item["live_deployment"],
        AttributeValue::S(pull.id.to_string())
    );
    assert_eq!(item["pull_request"], AttributeValue::N("7".into()));
    assert!(!item.contains_key("removed_at"), "None is no attribute");
    assert!(
        !item.contains_key("canary_deployment"),
        "no canary, no attribute"
    );

    // Production's traffic is the site item's `live_deployment`.
    let production: Deployment = deployment("docs");
    create_published(store, &production).await;
    store
        .activate(&production.site, &production.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let item = get("SITE#docs".into(), "META".into())
        .await
        .expect("the site item");
    assert_eq!(
        item["live_deployment"],
        AttributeValue::S(production.id.to_string())
    );

    // A deleted deployment takes its log lines and counter with it.
    let old = deployment("docs");
    create_published(store, &old).await;
    store
        .activate(&old.site, &old.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let newer = deployment("docs");
    create_published(store, &newer).await;
    store
        .activate(&newer.site, &newer.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    store
        .append_log(&old.id, &["npm ci".into(), "done".into()])
        .await
        .unwrap();
    store.delete_deployment(&old.site, &old.id).await.unwrap();
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

    // A webhook delivery expires through the table's TTL attribute.
    let delivery = support::unique("delivery");
    let hour = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(store.record_delivery(&delivery, hour).await.unwrap());
    let item = get(format!("HOOK#{delivery}"), "DELIVERY".into())
        .await
        .expect("the delivery item");
    assert_eq!(
        item[TTL_ATTRIBUTE],
        AttributeValue::N(hour.unix_timestamp().to_string())
    );
}

#[tokio::test]
async fn a_second_create_of_a_deployment_is_named_as_such() {
    let h = harness().await;
    h.store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    h.store.create_deployment(&d).await.unwrap();
    match h.store.create_deployment(&d).await {
        Err(StateError::Unavailable(e)) => assert!(matches!(
            e.downcast_ref::<DynamoError>(),
            Some(DynamoError::DeploymentExists(id)) if *id == d.id
        )),
        other => panic!("a second create must be refused, got {other:?}"),
    }
}
