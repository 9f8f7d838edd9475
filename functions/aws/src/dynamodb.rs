//! The state store on DynamoDB: sites, deployments, previews, build logs and webhook
//! deliveries in one table, with the same semantics as the embedded SQLite store
//! (`slipway_local::sqlite`).
//!
//! # Table
//!
//! Partition key [`PARTITION_KEY`] (`PK`, S), sort key [`SORT_KEY`] (`SK`, S); one global
//! secondary index [`GSI1`] (`GSI1`) on [`GSI1_PARTITION_KEY`] (`GSI1PK`, S) and
//! [`GSI1_SORT_KEY`] (`GSI1SK`, S), projecting ALL; TTL on [`TTL_ATTRIBUTE`] (`expires_at`,
//! epoch seconds: only webhook deliveries set it).
//! [`create_table`] creates exactly this; `infra/template.yaml` mirrors it.
//!
//! | item | PK | SK | GSI1PK | GSI1SK | other attributes |
//! | --- | --- | --- | --- | --- | --- |
//! | site | `SITE#{site}` | `META` | `SITES` | `{site}` | the [`SiteRecord`] fields |
//! | deployment | `SITE#{site}` | `DEP#{id}` | `DEP#{id}` | `SITE#{site}` | the [`Deployment`] fields |
//! | preview | `SITE#{site}` | `PREVIEW#{target}` | | | the [`PreviewRecord`] fields |
//! | log counter | `LOG#{id}` | `SEQ` | | | `last_seq` (N) |
//! | log line | `LOG#{id}` | `LINE#{seq:020}` | | | the [`LogLine`] fields: `seq` (N), `at` (S), `line` (S) |
//! | webhook delivery | `HOOK#{delivery}` | `DELIVERY` | | | `expires_at` (N, epoch seconds) |
//!
//! Records are typed attributes, one per serde field of the core type: strings S (timestamps
//! RFC 3339, statuses kebab-case), numbers N, booleans BOOL, nested structs M (`source`,
//! `error`); an absent `Option` is no attribute at all. So conditions read `status` and
//! `live_deployment` directly, and a transition updates only the fields it changes.
//!
//! Access patterns: a site's deployments newest first are a Query on `PK = SITE#{site}` and
//! `begins_with(SK, "DEP#")` backwards (ids sort by creation time); its previews, by target,
//! the same with `begins_with(SK, "PREVIEW#")`; a deployment by id alone is a Query on
//! `GSI1PK = DEP#{id}` (eventually consistent, like every GSI read); the sites are the
//! `GSI1PK = SITES` partition of the index, in name order. Nothing scans the table.
//!
//! # Concurrency
//!
//! Every write is conditional. [`StateStore::transition`] writes first, conditioned on the
//! current status being one the lifecycle allows a move from. The lifecycle's decisions
//! (activate, production routing, preview removal, delete: [`slipway_core::decisions`]) are
//! made by core from the records [`StateStore::commit`] reads, and written as one transaction
//! conditioned on everything read (each deployment's `status` and `updated_at`, the site's
//! traffic attributes, the preview's `live_deployment`, `removed_at` and `updated_at`, or its
//! absence); a cancelled transaction means something changed, so it reads and decides again,
//! up to [`MAX_ATTEMPTS`] times. Log lines go in with the counter in one conditional
//! transaction (not a counter bump and a BatchWriteItem, which lands items in any order), so
//! a reader following with `read_log(after)` never skips a line that lands late. Deleting a
//! deployment deletes its log items first (BatchWriteItem, unprocessed items retried), then
//! the record. A webhook delivery is one conditional put that also takes over an expired
//! record, since TTL deletes expired items only eventually (typically within days).
//! The SDK's own retries of a transaction are safe: it sends a `ClientRequestToken`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::operation::BuildError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use slipway_core::decisions::{decide, Decision, Need, Outcome, Plan, Snapshot, Step};
use slipway_core::model::{Deployment, DeploymentStatus, LifecycleError, Preview, Site};
use slipway_core::names::{DeploymentId, SiteName, TargetName};
use slipway_core::ports::{BoxError, DeploymentPatch, LogLine, StateError, StateStore};
use slipway_core::records::{PreviewRecord, SiteRecord, TrafficRecord};
use time::OffsetDateTime;

use crate::config;

pub const PARTITION_KEY: &str = "PK";
pub const SORT_KEY: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1_PARTITION_KEY: &str = "GSI1PK";
pub const GSI1_SORT_KEY: &str = "GSI1SK";
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Read-decide-write rounds before a write that keeps losing races gives up.
pub const MAX_ATTEMPTS: u32 = 5;

const SITE_SK: &str = "META";
const SITES_GSI1PK: &str = "SITES";
const DEPLOYMENT_SK_PREFIX: &str = "DEP#";
const PREVIEW_SK_PREFIX: &str = "PREVIEW#";
const DELIVERY_SK: &str = "DELIVERY";
const LOG_COUNTER_SK: &str = "SEQ";
const LAST_SEQ: &str = "last_seq";

// Attribute names of the serde fields that conditions and updates name.
const STATUS: &str = "status";
const UPDATED_AT: &str = "updated_at";
const ACTIVATED_AT: &str = "activated_at";
const LIVE_DEPLOYMENT: &str = "live_deployment";
const REMOVED_AT: &str = "removed_at";
const BUILT: &str = "built";
const ERROR: &str = "error";
const FILE_COUNT: &str = "file_count";
const BYTES: &str = "bytes";

/// TransactWriteItems takes 100 items (one is the log counter) and 4 MB in total.
const LOG_LINES_PER_TRANSACTION: usize = 99;
const LOG_BYTES_PER_TRANSACTION: usize = 3 * 1024 * 1024;
/// BatchWriteItem takes 25 requests.
const BATCH_WRITE_MAX: usize = 25;
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(300);

type Item = HashMap<String, AttributeValue>;

/// Failures behind [`StateError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    #[error("DynamoDB {operation} failed")]
    Request {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("deployment {0} already exists")]
    DeploymentExists(DeploymentId),
    #[error("{operation} gave up after {attempts} attempts: the items kept changing concurrently")]
    Contended {
        operation: &'static str,
        attempts: u32,
    },
    #[error("{count} log item(s) still unprocessed after {attempts} BatchWriteItem attempts")]
    Unprocessed { count: usize, attempts: u32 },
    #[error("a stored item does not decode: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("attribute {name:?} holds a {kind} value, which slipway never writes")]
    UnexpectedAttribute { name: String, kind: &'static str },
    #[error("invalid request: {0}")]
    Build(#[from] BuildError),
}

impl From<DynamoError> for StateError {
    fn from(e: DynamoError) -> Self {
        StateError::Unavailable(Box::new(e))
    }
}

fn request_failed<E>(
    operation: &'static str,
    e: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> StateError
where
    E: std::error::Error + Send + Sync + 'static,
{
    tracing::error!(operation, error = %DisplayErrorContext(&e), "DynamoDB request failed");
    DynamoError::Request {
        operation,
        source: Box::new(e),
    }
    .into()
}

fn malformed(e: serde_json::Error) -> StateError {
    DynamoError::Malformed(e).into()
}

fn build_failed(e: BuildError) -> StateError {
    DynamoError::Build(e).into()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn site_pk(site: &SiteName) -> String {
    format!("SITE#{site}")
}

fn deployment_sk(id: &DeploymentId) -> String {
    format!("{DEPLOYMENT_SK_PREFIX}{id}")
}

fn preview_sk(target: &TargetName) -> String {
    format!("{PREVIEW_SK_PREFIX}{target}")
}

fn log_pk(id: &DeploymentId) -> String {
    format!("LOG#{id}")
}

/// Zero-padded to u64's width, so the sort key orders lines numerically.
fn log_sk(seq: u64) -> String {
    format!("LINE#{seq:020}")
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(pk)),
        (SORT_KEY.to_owned(), s(sk)),
    ])
}

fn site_key(site: &SiteName) -> Item {
    key(site_pk(site), SITE_SK.to_owned())
}

fn deployment_key(site: &SiteName, id: &DeploymentId) -> Item {
    key(site_pk(site), deployment_sk(id))
}

fn preview_key(site: &SiteName, target: &TargetName) -> Item {
    key(site_pk(site), preview_sk(target))
}

fn log_counter_key(id: &DeploymentId) -> Item {
    key(log_pk(id), LOG_COUNTER_SK.to_owned())
}

fn delivery_key(delivery: &str) -> Item {
    key(format!("HOOK#{delivery}"), DELIVERY_SK.to_owned())
}

// --- records <-> items -------------------------------------------------------------------

fn to_attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(text) => AttributeValue::S(text),
        Value::Array(values) => AttributeValue::L(values.into_iter().map(to_attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_attribute(v)))
                .collect(),
        ),
    }
}

fn from_attribute(name: &str, value: AttributeValue) -> Result<Value, DynamoError> {
    let unexpected = |kind| DynamoError::UnexpectedAttribute {
        name: name.to_owned(),
        kind,
    };
    Ok(match value {
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::N(n) => {
            Value::Number(parse_number(&n).ok_or_else(|| unexpected("non-numeric N"))?)
        }
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(values) => Value::Array(
            values
                .into_iter()
                .map(|v| from_attribute(name, v))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k.clone(), from_attribute(&k, v)?)))
                .collect::<Result<_, DynamoError>>()?,
        ),
        AttributeValue::B(_) => return Err(unexpected("binary")),
        AttributeValue::Bs(_) => return Err(unexpected("binary set")),
        AttributeValue::Ns(_) => return Err(unexpected("number set")),
        AttributeValue::Ss(_) => return Err(unexpected("string set")),
        _ => return Err(unexpected("unknown")),
    })
}

fn parse_number(n: &str) -> Option<Number> {
    n.parse::<u64>()
        .map(Number::from)
        .or_else(|_| n.parse::<i64>().map(Number::from))
        .ok()
        .or_else(|| n.parse::<f64>().ok().and_then(Number::from_f64))
}

/// A record's serde fields as attributes; `None`s are left out.
fn to_item<T: Serialize>(record: &T) -> Result<Item, StateError> {
    match serde_json::to_value(record).map_err(malformed)? {
        Value::Object(fields) => Ok(fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, to_attribute(v)))
            .collect()),
        _ => Err(malformed(serde::ser::Error::custom(
            "a record must serialize to an object",
        ))),
    }
}

fn from_item<T: DeserializeOwned>(mut item: Item) -> Result<T, StateError> {
    for key in [PARTITION_KEY, SORT_KEY, GSI1_PARTITION_KEY, GSI1_SORT_KEY] {
        item.remove(key);
    }
    let fields = item
        .into_iter()
        .map(|(k, v)| Ok((k.clone(), from_attribute(&k, v)?)))
        .collect::<Result<Map<String, Value>, DynamoError>>()?;
    serde_json::from_value(Value::Object(fields)).map_err(malformed)
}

fn site_item(site: &Site) -> Result<Item, StateError> {
    let mut item = to_item(&SiteRecord::from(site))?;
    item.extend(site_key(&site.name));
    item.insert(GSI1_PARTITION_KEY.to_owned(), s(SITES_GSI1PK));
    item.insert(GSI1_SORT_KEY.to_owned(), s(site.name.as_str()));
    Ok(item)
}

fn deployment_item(deployment: &Deployment) -> Result<Item, StateError> {
    let mut item = to_item(deployment)?;
    item.extend(deployment_key(&deployment.site, &deployment.id));
    item.insert(
        GSI1_PARTITION_KEY.to_owned(),
        s(deployment_sk(&deployment.id)),
    );
    item.insert(GSI1_SORT_KEY.to_owned(), s(site_pk(&deployment.site)));
    Ok(item)
}

fn preview_item(preview: &Preview) -> Result<Item, StateError> {
    let mut item = to_item(&PreviewRecord::from(preview))?;
    item.extend(preview_key(&preview.site, &preview.target));
    Ok(item)
}

/// One attribute of a value as serde encodes it (the same text a whole-record write stores).
fn encoded<T: Serialize>(value: &T) -> Result<AttributeValue, StateError> {
    Ok(to_attribute(
        serde_json::to_value(value).map_err(malformed)?,
    ))
}

fn timestamp(at: OffsetDateTime) -> Result<AttributeValue, StateError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map(AttributeValue::S)
        .map_err(|e| malformed(serde::ser::Error::custom(e)))
}

// --- expressions -------------------------------------------------------------------------

/// The placeholders of one expression set. Every attribute name goes through one, since
/// some of ours (`status`, `bytes`, ...) are DynamoDB reserved words.
#[derive(Default)]
struct Placeholders {
    names: HashMap<String, String>,
    values: Item,
}

impl Placeholders {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// DynamoDB refuses an empty value map, so none at all when there are no values.
    fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    fn status_in(&mut self, statuses: &[DeploymentStatus]) -> String {
        let values: Vec<String> = statuses
            .iter()
            .map(|st| self.value(s(st.as_str())))
            .collect();
        format!("{} IN ({})", self.name(STATUS), values.join(", "))
    }

    /// The deployment is exactly as it was read: same status, no write since.
    fn unchanged(&mut self, deployment: &Deployment, stamp: &AttributeValue) -> String {
        let status = self.name(STATUS);
        let status_value = self.value(s(deployment.status.as_str()));
        let updated = self.name(UPDATED_AT);
        let updated_value = self.value(stamp.clone());
        format!("{status} = {status_value} AND {updated} = {updated_value}")
    }

    /// The item exists and each of `names` is as stored in `stamps` (or still absent); a
    /// missing item when `stamps` is None.
    fn stamps_are(&mut self, names: &[&str], stamps: Option<&Item>) -> String {
        let Some(stamps) = stamps else {
            return self.not_exists();
        };
        let mut conditions = vec![self.exists()];
        for attribute in names {
            let name = self.name(attribute);
            conditions.push(match stamps.get(*attribute) {
                Some(value) => format!("{name} = {}", self.value(value.clone())),
                None => format!("attribute_not_exists({name})"),
            });
        }
        conditions.join(" AND ")
    }

    fn exists(&mut self) -> String {
        format!("attribute_exists({})", self.name(PARTITION_KEY))
    }

    fn not_exists(&mut self) -> String {
        format!("attribute_not_exists({})", self.name(PARTITION_KEY))
    }

    /// `SET a = :x, b = :y`.
    fn set(&mut self, fields: Vec<(String, AttributeValue)>) -> String {
        let assignments: Vec<String> = fields
            .into_iter()
            .map(|(name, value)| format!("{} = {}", self.name(&name), self.value(value)))
            .collect();
        format!("SET {}", assignments.join(", "))
    }

    /// `SET a = :x REMOVE b`: `names` take the values `fields` has for them, the rest go.
    fn set_or_remove(&mut self, names: &[&str], mut fields: Item) -> String {
        let (set, removed): (Vec<&str>, Vec<&str>) =
            names.iter().partition(|name| fields.contains_key(**name));
        let set: Vec<(String, AttributeValue)> = set
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), fields.remove(name)?)))
            .collect();
        let removed: Vec<String> = removed.into_iter().map(|name| self.name(name)).collect();
        match (set.is_empty(), removed.is_empty()) {
            (false, true) => self.set(set),
            (true, _) => format!("REMOVE {}", removed.join(", ")),
            (false, false) => format!("{} REMOVE {}", self.set(set), removed.join(", ")),
        }
    }
}

/// A deployment as read, with the stored `updated_at` every later write of it is
/// conditioned on: each write sets it, so it stands for "nothing changed since".
struct Current {
    deployment: Deployment,
    stamp: AttributeValue,
}

/// The preview attributes its writes are conditioned on, as stored: what Activate decides
/// from, and `updated_at`, which every write sets.
const PREVIEW_STAMPS: [&str; 3] = [LIVE_DEPLOYMENT, REMOVED_AT, UPDATED_AT];

/// A preview as read, with its [`PREVIEW_STAMPS`] as stored.
struct CurrentPreview {
    preview: Preview,
    stamps: Item,
}

/// The stored values a decision's writes are conditioned on, one per record it read.
struct Stamps {
    /// The site's traffic attributes ([`TrafficRecord::ATTRIBUTES`]) as stored.
    site: Item,
    deployments: HashMap<DeploymentId, AttributeValue>,
    /// None for a preview that was missing.
    previews: HashMap<TargetName, Option<Item>>,
}

/// The attributes a status move writes; `activated_at` too when `activation` says so.
fn move_fields(
    to: DeploymentStatus,
    now: OffsetDateTime,
    activation: bool,
) -> Result<Vec<(String, AttributeValue)>, StateError> {
    let mut fields = vec![
        (STATUS.to_owned(), encoded(&to)?),
        (UPDATED_AT.to_owned(), timestamp(now)?),
    ];
    if activation {
        fields.push((ACTIVATED_AT.to_owned(), timestamp(now)?));
    }
    Ok(fields)
}

/// The attributes a patch writes: only what it sets (an unset field keeps its value).
fn patch_fields(patch: DeploymentPatch) -> Result<Vec<(String, AttributeValue)>, StateError> {
    let DeploymentPatch {
        built,
        routing,
        error,
        file_count,
        bytes,
    } = patch;
    let mut fields = Vec::new();
    if let Some(built) = built {
        fields.push((BUILT.to_owned(), AttributeValue::Bool(built)));
    }
    if let Some(routing) = routing {
        // Flattened into the deployment: one attribute per flag.
        if let AttributeValue::M(flags) = encoded(&routing)? {
            fields.extend(flags);
        }
    }
    if let Some(error) = error {
        fields.push((ERROR.to_owned(), encoded(&error)?));
    }
    if let Some(file_count) = file_count {
        fields.push((FILE_COUNT.to_owned(), encoded(&file_count)?));
    }
    if let Some(bytes) = bytes {
        fields.push((BYTES.to_owned(), encoded(&bytes)?));
    }
    Ok(fields)
}

/// What a transaction's cancellation says: false when a condition failed or a concurrent
/// transaction touched the same items, so reading again and deciding anew is right.
fn is_conflict(
    e: &SdkError<TransactWriteItemsError, aws_smithy_runtime_api::http::Response>,
) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().iter().all(|reason| {
                matches!(
                    reason.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

// --- the store ---------------------------------------------------------------------------

/// A DynamoDB client from the shared SDK configuration (its retry policy and endpoint), so
/// the Lambda crates need not import `aws-sdk-dynamodb`.
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

#[derive(Debug, Clone)]
pub struct DynamoState {
    client: Client,
    table: String,
    page_limit: Option<i32>,
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_limit: None,
        }
    }

    /// Caps the items per Query page (DynamoDB's own cap is 1 MB of items), so lists take
    /// several pages; tests use it to exercise pagination.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }

    async fn get_item(&self, key: Item) -> Result<Option<Item>, StateError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| request_failed("GetItem", e))
    }

    async fn load_site(&self, name: &SiteName) -> Result<Site, StateError> {
        Ok(self.load_site_stamped(name).await?.0)
    }

    /// The site, with its traffic attributes as stored.
    async fn load_site_stamped(&self, name: &SiteName) -> Result<(Site, Item), StateError> {
        let Some(item) = self.get_item(site_key(name)).await? else {
            return Err(StateError::SiteNotFound(name.clone()));
        };
        let stamps = TrafficRecord::ATTRIBUTES
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), item.get(*name)?.clone())))
            .collect();
        Ok((from_item::<SiteRecord>(item)?.into(), stamps))
    }

    /// A deployment of `site`; a missing one is SiteNotFound when the site is missing too.
    async fn load_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<Current, StateError> {
        let Some(item) = self.get_item(deployment_key(site, id)).await? else {
            self.load_site(site).await?;
            return Err(StateError::DeploymentNotFound(*id));
        };
        let stamp = item
            .get(UPDATED_AT)
            .cloned()
            .ok_or_else(|| malformed(serde::de::Error::missing_field(UPDATED_AT)))?;
        Ok(Current {
            deployment: from_item(item)?,
            stamp,
        })
    }

    async fn load_preview(
        &self,
        site: &SiteName,
        target: &TargetName,
    ) -> Result<Option<CurrentPreview>, StateError> {
        let Some(item) = self.get_item(preview_key(site, target)).await? else {
            return Ok(None);
        };
        let stamps = PREVIEW_STAMPS
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), item.get(*name)?.clone())))
            .collect();
        Ok(Some(CurrentPreview {
            preview: from_item::<PreviewRecord>(item)?.into(),
            stamps,
        }))
    }

    /// Every item a Query matches, page after page.
    async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StateError> {
        query
            .table_name(&self.table)
            .set_limit(self.page_limit)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| request_failed("Query", e))
    }

    /// Commits a transaction; false when it lost a race (see [`is_conflict`]).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StateError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(request_failed("TransactWriteItems", e)),
        }
    }

    /// A conditional update of one item, as a transaction member.
    fn update_item(
        &self,
        key: Item,
        p: &Placeholders,
        update: String,
        condition: String,
    ) -> Result<TransactWriteItem, StateError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .build()
            .map_err(build_failed)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A conditional put of a whole item, as a transaction member.
    fn put_item(
        &self,
        item: Item,
        p: &Placeholders,
        condition: String,
    ) -> Result<TransactWriteItem, StateError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .build()
            .map_err(build_failed)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A condition on one item that the transaction writes nothing to.
    fn check_item(
        &self,
        key: Item,
        p: &Placeholders,
        condition: String,
    ) -> Result<TransactWriteItem, StateError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .build()
            .map_err(build_failed)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The transaction that applies `plan`: each record of the snapshot is written, deleted
    /// or checked, conditional on being as read.
    fn plan_items(
        &self,
        snapshot: &Snapshot,
        stamps: &Stamps,
        plan: &Plan,
    ) -> Result<Vec<TransactWriteItem>, StateError> {
        let site = &snapshot.site.name;
        let mut items = Vec::new();
        let mut p = Placeholders::default();
        let condition = p.stamps_are(&TrafficRecord::ATTRIBUTES, Some(&stamps.site));
        items.push(match &plan.site {
            Some(written) => {
                let traffic = to_item(&TrafficRecord::from(written.production))?;
                let update = p.set_or_remove(&TrafficRecord::ATTRIBUTES, traffic);
                self.update_item(site_key(site), &p, update, condition)?
            }
            None => self.check_item(site_key(site), &p, condition)?,
        });
        for (id, read) in &snapshot.deployments {
            let stamp = stamps
                .deployments
                .get(id)
                .ok_or(StateError::DeploymentNotFound(*id))?;
            let mut p = Placeholders::default();
            let condition = p.unchanged(read, stamp);
            let written = plan.deployments.iter().find(|d| d.id == *id);
            items.push(if plan.deletes.contains(id) {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(deployment_key(site, id)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(p.names())
                    .set_expression_attribute_values(p.values())
                    .build()
                    .map_err(build_failed)?;
                TransactWriteItem::builder().delete(delete).build()
            } else if let Some(written) = written {
                self.put_item(deployment_item(written)?, &p, condition)?
            } else {
                self.check_item(deployment_key(site, id), &p, condition)?
            });
        }
        for target in snapshot.previews.keys() {
            let read = stamps.previews.get(target).and_then(Option::as_ref);
            let mut p = Placeholders::default();
            let condition = p.stamps_are(&PREVIEW_STAMPS, read);
            items.push(match plan.previews.iter().find(|w| &w.target == target) {
                Some(written) => self.put_item(preview_item(written)?, &p, condition)?,
                None => self.check_item(preview_key(site, target), &p, condition)?,
            });
        }
        Ok(items)
    }

    fn contended(operation: &'static str) -> StateError {
        DynamoError::Contended {
            operation,
            attempts: MAX_ATTEMPTS,
        }
        .into()
    }

    /// Writes one chunk of log lines and the counter in one transaction.
    async fn append_log_chunk(
        &self,
        id: &DeploymentId,
        lines: &[String],
    ) -> Result<(), StateError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let last = match self.get_item(log_counter_key(id)).await? {
                Some(item) => Some(
                    item.get(LAST_SEQ)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| malformed(serde::de::Error::missing_field(LAST_SEQ)))?,
                ),
                None => None,
            };
            let first = last.unwrap_or(0) + 1;
            let next_last = last.unwrap_or(0) + lines.len() as u64;
            let mut p = Placeholders::default();
            let update = p.set(vec![(LAST_SEQ.to_owned(), s_number(next_last))]);
            let condition = match last {
                Some(last) => format!("{} = {}", p.name(LAST_SEQ), p.value(s_number(last))),
                None => p.not_exists(),
            };
            let mut items = vec![self.update_item(log_counter_key(id), &p, update, condition)?];
            let at = OffsetDateTime::now_utc();
            for (seq, line) in (first..).zip(lines) {
                let mut item = to_item(&LogLine {
                    seq,
                    at,
                    line: line.clone(),
                })?;
                item.extend(key(log_pk(id), log_sk(seq)));
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(build_failed)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            if self.transact(items).await? {
                return Ok(());
            }
            tracing::debug!(deployment_id = %id, attempt, "log counter moved; reading it again");
        }
        Err(Self::contended("append_log"))
    }

    /// Deletes every log item of a deployment, lines and counter.
    async fn delete_log(&self, id: &DeploymentId) -> Result<(), StateError> {
        let mut p = Placeholders::default();
        let condition = format!("{} = {}", p.name(PARTITION_KEY), p.value(s(log_pk(id))));
        let projection = format!("{}, {}", p.name(PARTITION_KEY), p.name(SORT_KEY));
        let keys = self
            .query_all(
                self.client
                    .query()
                    .key_condition_expression(condition)
                    .projection_expression(projection)
                    .set_expression_attribute_names(p.names())
                    .set_expression_attribute_values(p.values())
                    .consistent_read(true),
            )
            .await?;
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(build_failed)?;
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                if attempt > config::MAX_ATTEMPTS {
                    return Err(DynamoError::Unprocessed {
                        count: pending.len(),
                        attempts: config::MAX_ATTEMPTS,
                    }
                    .into());
                }
                if attempt > 1 {
                    tokio::time::sleep(unprocessed_backoff(attempt)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| request_failed("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}

fn s_number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// Exponential backoff for BatchWriteItem's unprocessed items, within the SDK's bounds.
fn unprocessed_backoff(attempt: u32) -> Duration {
    config::INITIAL_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(2).min(16))
        .min(config::MAX_BACKOFF)
}

/// Consecutive runs of lines that fit one transaction each.
fn log_chunks(lines: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let full = i - start == LOG_LINES_PER_TRANSACTION
            || bytes + line.len() > LOG_BYTES_PER_TRANSACTION;
        if i > start && full {
            chunks.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += line.len();
    }
    if start < lines.len() {
        chunks.push(&lines[start..]);
    }
    chunks
}

#[async_trait]
impl StateStore for DynamoState {
    async fn create_site(&self, site: &Site) -> Result<(), StateError> {
        let mut p = Placeholders::default();
        let condition = p.not_exists();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(site_item(site)?))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StateError::SiteExists(site.name.clone()))
            }
            Err(e) => Err(request_failed("PutItem", e)),
        }
    }

    async fn get_site(&self, name: &SiteName) -> Result<Site, StateError> {
        self.load_site(name).await
    }

    async fn list_sites(&self) -> Result<Vec<Site>, StateError> {
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {}",
            p.name(GSI1_PARTITION_KEY),
            p.value(s(SITES_GSI1PK))
        );
        self.query_all(
            self.client
                .query()
                .index_name(GSI1)
                .key_condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values()),
        )
        .await?
        .into_iter()
        .map(|item| from_item::<SiteRecord>(item).map(Site::from))
        .collect()
    }

    async fn create_deployment(&self, deployment: &Deployment) -> Result<(), StateError> {
        let mut site_check = Placeholders::default();
        let site_condition = site_check.exists();
        let check = self.check_item(site_key(&deployment.site), &site_check, site_condition)?;
        let mut fresh = Placeholders::default();
        let fresh_condition = fresh.not_exists();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(deployment_item(deployment)?))
            .condition_expression(fresh_condition)
            .set_expression_attribute_names(fresh.names())
            .build()
            .map_err(build_failed)?;
        let items = vec![check, TransactWriteItem::builder().put(put).build()];
        for attempt in 1..=MAX_ATTEMPTS {
            if self.transact(items.clone()).await? {
                return Ok(());
            }
            // Name what failed from what is stored now.
            match self.load_deployment(&deployment.site, &deployment.id).await {
                Ok(_) => return Err(DynamoError::DeploymentExists(deployment.id).into()),
                Err(StateError::DeploymentNotFound(_)) => {}
                Err(e) => return Err(e),
            }
            tracing::debug!(site = %deployment.site, deployment_id = %deployment.id, attempt, "create_deployment raced; trying again");
        }
        Err(Self::contended("create_deployment"))
    }

    async fn get_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<Deployment, StateError> {
        Ok(self.load_deployment(site, id).await?.deployment)
    }

    async fn find_deployment(&self, id: &DeploymentId) -> Result<Deployment, StateError> {
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {}",
            p.name(GSI1_PARTITION_KEY),
            p.value(s(deployment_sk(id)))
        );
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .send()
            .await
            .map_err(|e| request_failed("Query", e))?;
        match found.items.and_then(|items| items.into_iter().next()) {
            Some(item) => from_item(item),
            None => Err(StateError::DeploymentNotFound(*id)),
        }
    }

    async fn list_deployments(&self, site: &SiteName) -> Result<Vec<Deployment>, StateError> {
        self.load_site(site).await?;
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            p.name(PARTITION_KEY),
            p.value(s(site_pk(site))),
            p.name(SORT_KEY),
            p.value(s(DEPLOYMENT_SK_PREFIX))
        );
        self.query_all(
            self.client
                .query()
                .key_condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .scan_index_forward(false)
                .consistent_read(true),
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    async fn transition(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        to: DeploymentStatus,
        patch: DeploymentPatch,
    ) -> Result<Deployment, StateError> {
        let sources = DeploymentStatus::sources_of(to);
        if sources.is_empty() {
            // Nothing moves to this status: name the refusal from the stored status.
            let current = self.load_deployment(site, id).await?.deployment;
            return Err(LifecycleError::InvalidTransition {
                id: *id,
                from: current.status,
                to,
            }
            .into());
        }
        let patch = patch_fields(patch)?;
        // Only a move to live depends on the target, which never changes: only it reads first.
        let activation = to == DeploymentStatus::Live
            && self
                .load_deployment(site, id)
                .await?
                .deployment
                .target
                .is_production();
        for attempt in 1..=MAX_ATTEMPTS {
            let mut p = Placeholders::default();
            let mut fields = move_fields(to, OffsetDateTime::now_utc(), activation)?;
            fields.extend(patch.iter().cloned());
            let update = p.set(fields);
            let condition = format!("{} AND {}", p.exists(), p.status_in(&sources));
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(deployment_key(site, id)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            let failed = match result {
                Ok(out) => return from_item(out.attributes.unwrap_or_default()),
                Err(e) => e,
            };
            let refused = failed.as_service_error().is_some_and(|e| {
                e.is_conditional_check_failed_exception() || e.is_transaction_conflict_exception()
            });
            if !refused {
                return Err(request_failed("UpdateItem", failed));
            }
            // Name the refusal from what is stored now.
            let mut stored = self.load_deployment(site, id).await?.deployment;
            stored.move_to(to, OffsetDateTime::now_utc())?;
            tracing::debug!(site = %site, deployment_id = %id, %to, attempt, "transition raced; trying again");
        }
        Err(Self::contended("transition"))
    }

    async fn commit(&self, site: &SiteName, decision: Decision) -> Result<Outcome, StateError> {
        let mut logs_deleted = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let (record, site_stamps) = self.load_site_stamped(site).await?;
            let mut snapshot = Snapshot::new(record);
            let mut stamps = Stamps {
                site: site_stamps,
                deployments: HashMap::new(),
                previews: HashMap::new(),
            };
            let plan = loop {
                match decide(&decision, &snapshot)? {
                    Step::Read(Need::Deployment(id)) => {
                        let current = self.load_deployment(site, &id).await?;
                        stamps.deployments.insert(id, current.stamp);
                        snapshot.insert_deployment(current.deployment);
                    }
                    Step::Read(Need::Preview(target)) => {
                        let read = self.load_preview(site, &target).await?;
                        let (preview, read_stamps) = read.map(|r| (r.preview, r.stamps)).unzip();
                        stamps.previews.insert(target.clone(), read_stamps);
                        snapshot.insert_preview(target, preview);
                    }
                    Step::Apply(plan) => break *plan,
                }
            };
            if plan.is_empty() {
                return Ok(plan.outcome);
            }
            // Logs go first: if anything below fails, a retry finds the record and finishes;
            // the other order could leave log items nothing refers to.
            if !logs_deleted {
                for id in &plan.deletes {
                    self.delete_log(id).await?;
                }
                logs_deleted = true;
            }
            if self
                .transact(self.plan_items(&snapshot, &stamps, &plan)?)
                .await?
            {
                return Ok(plan.outcome);
            }
            tracing::debug!(site = %site, ?decision, attempt, "decision raced a concurrent change; reading again");
        }
        Err(Self::contended("commit"))
    }

    async fn list_previews(&self, site: &SiteName) -> Result<Vec<Preview>, StateError> {
        self.load_site(site).await?;
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            p.name(PARTITION_KEY),
            p.value(s(site_pk(site))),
            p.name(SORT_KEY),
            p.value(s(PREVIEW_SK_PREFIX))
        );
        self.query_all(
            self.client
                .query()
                .key_condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .consistent_read(true),
        )
        .await?
        .into_iter()
        .map(|item| from_item::<PreviewRecord>(item).map(Preview::from))
        .collect()
    }

    async fn record_delivery(
        &self,
        delivery: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StateError> {
        let mut item = delivery_key(delivery);
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            AttributeValue::N(expires_at.unix_timestamp().to_string()),
        );
        let mut p = Placeholders::default();
        let expires = p.name(TTL_ATTRIBUTE);
        let now = AttributeValue::N(OffsetDateTime::now_utc().unix_timestamp().to_string());
        // TTL deletes expired items only eventually: an expired record is free to take over.
        let condition = format!("{} OR {expires} <= {}", p.not_exists(), p.value(now));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::debug!(delivery, "webhook delivery seen before");
                Ok(false)
            }
            Err(e) => Err(request_failed("PutItem", e)),
        }
    }

    async fn forget_delivery(&self, delivery: &str) -> Result<(), StateError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(delivery_key(delivery)))
            .send()
            .await
            .map_err(|e| request_failed("DeleteItem", e))?;
        Ok(())
    }

    async fn append_log(&self, id: &DeploymentId, lines: &[String]) -> Result<(), StateError> {
        for chunk in log_chunks(lines) {
            self.append_log_chunk(id, chunk).await?;
        }
        Ok(())
    }

    async fn read_log(&self, id: &DeploymentId, after: u64) -> Result<Vec<LogLine>, StateError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND {} BETWEEN {} AND {}",
            p.name(PARTITION_KEY),
            p.value(s(log_pk(id))),
            p.name(SORT_KEY),
            p.value(s(log_sk(first))),
            p.value(s(log_sk(u64::MAX)))
        );
        self.query_all(
            self.client
                .query()
                .key_condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .consistent_read(true),
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }
}

/// Creates the table as the module documentation describes it (on-demand, TTL on
/// [`TTL_ATTRIBUTE`]) and waits until it is active. The SAM template creates the real one.
pub async fn create_table(client: &Client, table: &str) -> Result<(), DynamoError> {
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let by_id = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(GSI1_SORT_KEY, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string(PARTITION_KEY)?)
        .attribute_definitions(string(SORT_KEY)?)
        .attribute_definitions(string(GSI1_PARTITION_KEY)?)
        .attribute_definitions(string(GSI1_SORT_KEY)?)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(by_id)
        .send()
        .await
        .map_err(|e| DynamoError::Request {
            operation: "CreateTable",
            source: Box::new(e),
        })?;
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(TABLE_ACTIVE_WAIT)
        .await
        .map_err(|e| DynamoError::Request {
            operation: "DescribeTable",
            source: Box::new(e),
        })?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| DynamoError::Request {
            operation: "UpdateTimeToLive",
            source: Box::new(e),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_split_into_transactions_by_count_and_size() {
        let lines: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
        let sizes: Vec<usize> = log_chunks(&lines).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [99, 99, 52]);
        let big = vec!["x".repeat(LOG_BYTES_PER_TRANSACTION / 2 + 1); 3];
        let sizes: Vec<usize> = log_chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(log_chunks(&[]).is_empty());
    }

    #[test]
    fn log_sort_keys_order_numerically() {
        assert!(log_sk(9) < log_sk(10));
        assert!(log_sk(10) < log_sk(u64::MAX));
        // The counter shares the partition but sorts outside every line's range.
        assert!(LOG_COUNTER_SK > log_sk(u64::MAX).as_str());
    }

    #[test]
    fn numbers_round_trip_through_attributes() {
        for n in ["0", "18446744073709551615", "-3", "1.5"] {
            let back = from_attribute("n", AttributeValue::N(n.to_owned())).unwrap();
            assert_eq!(back.to_string(), n);
        }
        assert!(from_attribute("n", AttributeValue::N("x".into())).is_err());
        assert!(from_attribute("b", AttributeValue::Ss(vec![])).is_err());
    }
}
