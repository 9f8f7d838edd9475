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
//! | site | `SITE#{site}` | `META` | `SITES` | `{site}` | the [`Site`] fields |
//! | deployment | `SITE#{site}` | `DEP#{id}` | `DEP#{id}` | `SITE#{site}` | the [`Deployment`] fields |
//! | preview | `SITE#{site}` | `PREVIEW#{target}` | | | the [`Preview`] fields |
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
//! current status being one the lifecycle allows a move from. Activate, production routing,
//! preview removal and delete read, decide and write one transaction conditioned on
//! everything they read (each deployment's `status` and `updated_at`, the site's
//! `live_deployment`, the preview's `live_deployment`, `removed_at` and `updated_at`, or its
//! absence); a cancelled transaction means something changed, so they read and decide again,
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
use slipway_core::model::{Deployment, DeploymentStatus, Preview, Site};
use slipway_core::names::{DeploymentId, SiteName, TargetName};
use slipway_core::ports::{
    ActivateOutcome, BoxError, DeploymentPatch, Displaced, LogLine, StateError, StateStore,
};
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
    let mut item = to_item(site)?;
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
    let mut item = to_item(preview)?;
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
    fn unchanged(&mut self, current: &Current) -> String {
        let status = self.name(STATUS);
        let status_value = self.value(s(current.deployment.status.as_str()));
        let updated = self.name(UPDATED_AT);
        let updated_value = self.value(current.stamp.clone());
        format!("{status} = {status_value} AND {updated} = {updated_value}")
    }

    fn live_is(&mut self, live: Option<&DeploymentId>) -> String {
        let name = self.name(LIVE_DEPLOYMENT);
        match live {
            Some(id) => format!("{name} = {}", self.value(s(id.to_string()))),
            None => format!("attribute_not_exists({name})"),
        }
    }

    /// The preview item is exactly as it was read, or still missing when it was.
    fn preview_is(&mut self, read: Option<&CurrentPreview>) -> String {
        let Some(read) = read else {
            return self.not_exists();
        };
        let mut conditions = vec![self.exists()];
        for attribute in PREVIEW_STAMPS {
            let name = self.name(attribute);
            conditions.push(match read.stamps.get(attribute) {
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

/// Where a target records what it serves, as Activate read it: the site's `live_deployment`
/// for production, the preview's record (or its absence) for a preview.
enum Pointer {
    Site(Option<DeploymentId>),
    Preview(Box<PreviewPointer>),
}

struct PreviewPointer {
    /// None when the record is missing.
    read: Option<CurrentPreview>,
    /// The record as read, or the one Activate creates.
    record: Preview,
}

impl Pointer {
    fn live(&self) -> Option<DeploymentId> {
        match self {
            Pointer::Site(live) => *live,
            Pointer::Preview(preview) => preview.record.live_deployment,
        }
    }

    fn accepts(&self, id: &DeploymentId) -> bool {
        match self {
            Pointer::Site(_) => true,
            Pointer::Preview(preview) => preview.record.accepts(id),
        }
    }
}

/// A preview as read, with its [`PREVIEW_STAMPS`] as stored.
struct CurrentPreview {
    preview: Preview,
    stamps: Item,
}

fn check_move(deployment: &Deployment, to: DeploymentStatus) -> Result<(), StateError> {
    if deployment.status.can_move_to(to) {
        return Ok(());
    }
    Err(StateError::InvalidTransition {
        id: deployment.id,
        from: deployment.status,
        to,
    })
}

/// Whether a move stamps `activated_at`: only becoming production's live deployment does,
/// since that is what rollback goes back to.
fn stamps_activation(target: &TargetName, to: DeploymentStatus) -> bool {
    to == DeploymentStatus::Live && target.is_production()
}

/// The lifecycle's move, exactly as the embedded store makes it.
fn apply_move(
    deployment: &mut Deployment,
    to: DeploymentStatus,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    check_move(deployment, to)?;
    deployment.status = to;
    deployment.updated_at = now;
    if stamps_activation(&deployment.target, to) {
        deployment.activated_at = Some(now);
    }
    Ok(())
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
        match self.get_item(site_key(name)).await? {
            Some(item) => from_item(item),
            None => Err(StateError::SiteNotFound(name.clone())),
        }
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
            preview: from_item(item)?,
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

    /// An update of `current`'s item to `to`, conditioned on it being unchanged since read.
    fn move_item(
        &self,
        current: &Current,
        to: DeploymentStatus,
        now: OffsetDateTime,
    ) -> Result<TransactWriteItem, StateError> {
        let d = &current.deployment;
        let mut p = Placeholders::default();
        let update = p.set(move_fields(to, now, stamps_activation(&d.target, to))?);
        let condition = p.unchanged(current);
        self.update_item(deployment_key(&d.site, &d.id), &p, update, condition)
    }

    /// Stamps `current`'s item as production's newest route without moving its status (a
    /// promoted preview deployment), conditioned on it being unchanged since read.
    fn promote_item(
        &self,
        current: &Current,
        now: OffsetDateTime,
    ) -> Result<TransactWriteItem, StateError> {
        let d = &current.deployment;
        let mut p = Placeholders::default();
        let update = p.set(vec![
            (ACTIVATED_AT.to_owned(), timestamp(now)?),
            (UPDATED_AT.to_owned(), timestamp(now)?),
        ]);
        let condition = p.unchanged(current);
        self.update_item(deployment_key(&d.site, &d.id), &p, update, condition)
    }

    /// Writes the whole preview record, conditioned on it being as `read` (or still missing).
    fn save_preview_item(
        &self,
        preview: &Preview,
        read: Option<&CurrentPreview>,
    ) -> Result<TransactWriteItem, StateError> {
        let mut p = Placeholders::default();
        let condition = p.preview_is(read);
        self.put_item(preview_item(preview)?, &p, condition)
    }

    /// A check that `current`'s item is unchanged since read.
    fn unchanged_item(&self, current: &Current) -> Result<TransactWriteItem, StateError> {
        let mut p = Placeholders::default();
        let condition = p.unchanged(current);
        let d = &current.deployment;
        self.check_item(deployment_key(&d.site, &d.id), &p, condition)
    }

    /// Points the site at `to`, conditioned on it still pointing where it did when read.
    fn set_live_item(
        &self,
        site: &SiteName,
        read: Option<&DeploymentId>,
        to: &DeploymentId,
    ) -> Result<TransactWriteItem, StateError> {
        let mut p = Placeholders::default();
        let update = p.set(vec![(LIVE_DEPLOYMENT.to_owned(), s(to.to_string()))]);
        let condition = format!("{} AND {}", p.exists(), p.live_is(read));
        self.update_item(site_key(site), &p, update, condition)
    }

    /// A check that the target's pointer is as read.
    fn pointer_check_item(
        &self,
        site: &SiteName,
        target: &TargetName,
        pointer: &Pointer,
    ) -> Result<TransactWriteItem, StateError> {
        let mut p = Placeholders::default();
        match pointer {
            Pointer::Site(live) => {
                let condition = format!("{} AND {}", p.exists(), p.live_is(live.as_ref()));
                self.check_item(site_key(site), &p, condition)
            }
            Pointer::Preview(preview) => {
                let condition = p.preview_is(preview.read.as_ref());
                self.check_item(preview_key(site, target), &p, condition)
            }
        }
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
        .map(from_item)
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
            return Err(StateError::InvalidTransition {
                id: *id,
                from: current.status,
                to,
            });
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
            check_move(&self.load_deployment(site, id).await?.deployment, to)?;
            tracing::debug!(site = %site, deployment_id = %id, %to, attempt, "transition raced; trying again");
        }
        Err(Self::contended("transition"))
    }

    async fn activate(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        now: OffsetDateTime,
    ) -> Result<ActivateOutcome, StateError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let current = self.load_deployment(site, id).await?;
            if current.deployment.status == DeploymentStatus::Live {
                return Ok(ActivateOutcome::AlreadyLive);
            }
            let target = &current.deployment.target;
            let pointer = if target.is_production() {
                Pointer::Site(self.load_site(site).await?.live_deployment)
            } else {
                let read = self.load_preview(site, target).await?;
                let record = match &read {
                    Some(read) => read.preview.clone(),
                    None => Preview::empty(site.clone(), target.clone(), now),
                };
                Pointer::Preview(Box::new(PreviewPointer { read, record }))
            };
            let (items, outcome) = if !pointer.accepts(id) {
                check_move(&current.deployment, DeploymentStatus::Superseded)?;
                let items = vec![
                    self.move_item(&current, DeploymentStatus::Superseded, now)?,
                    self.pointer_check_item(site, target, &pointer)?,
                ];
                (items, ActivateOutcome::TargetRemoved)
            } else if let Some(newer) = pointer.live().filter(|live| live > id) {
                // A newer deployment serves the target already: never move backwards.
                check_move(&current.deployment, DeploymentStatus::Superseded)?;
                let items = vec![
                    self.move_item(&current, DeploymentStatus::Superseded, now)?,
                    self.pointer_check_item(site, target, &pointer)?,
                ];
                (items, ActivateOutcome::Superseded { newer })
            } else {
                check_move(&current.deployment, DeploymentStatus::Live)?;
                let mut items = vec![self.move_item(&current, DeploymentStatus::Live, now)?];
                let mut superseded = None;
                if let Some(previous) = pointer.live().filter(|live| live != id) {
                    let previous = self.load_deployment(site, &previous).await?;
                    // Only a deployment of this target leaves `live`: a promoted preview
                    // deployment displaced from production stays live on its preview.
                    if &previous.deployment.target == target {
                        if previous.deployment.status == DeploymentStatus::Live {
                            items.push(self.move_item(
                                &previous,
                                DeploymentStatus::Superseded,
                                now,
                            )?);
                            superseded = Some(previous.deployment.id);
                        } else {
                            items.push(self.unchanged_item(&previous)?);
                        }
                    }
                }
                match pointer {
                    Pointer::Site(live) => {
                        items.push(self.set_live_item(site, live.as_ref(), id)?)
                    }
                    Pointer::Preview(preview) => {
                        let PreviewPointer { read, mut record } = *preview;
                        record.serve(&current.deployment, now);
                        items.push(self.save_preview_item(&record, read.as_ref())?);
                    }
                }
                (
                    items,
                    ActivateOutcome::Activated {
                        previous: superseded,
                    },
                )
            };
            if self.transact(items).await? {
                return Ok(outcome);
            }
            tracing::debug!(site = %site, deployment_id = %id, %target, attempt, "activate raced a concurrent change; reading again");
        }
        Err(Self::contended("activate"))
    }

    async fn route_production(
        &self,
        site: &SiteName,
        to: &DeploymentId,
        displaced: Displaced,
        now: OffsetDateTime,
    ) -> Result<Deployment, StateError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let site_record = self.load_site(site).await?;
            let target = self.load_deployment(site, to).await?;
            if !target.deployment.status.is_servable() {
                return Err(StateError::InvalidTransition {
                    id: *to,
                    from: target.deployment.status,
                    to: DeploymentStatus::Live,
                });
            }
            let mut items = Vec::new();
            if let Some(live_id) = site_record.live_deployment.filter(|live| live != to) {
                let live = self.load_deployment(site, &live_id).await?;
                // A promoted preview deployment stays live on its preview.
                if live.deployment.target.is_production() {
                    if live.deployment.status == DeploymentStatus::Live {
                        items.push(self.move_item(&live, displaced.status(), now)?);
                    } else {
                        items.push(self.unchanged_item(&live)?);
                    }
                }
            }
            let mut routed = target.deployment.clone();
            if !routed.target.is_production() {
                routed.activated_at = Some(now);
                routed.updated_at = now;
                items.push(self.promote_item(&target, now)?);
            } else if routed.status == DeploymentStatus::Live {
                items.push(self.unchanged_item(&target)?);
            } else {
                apply_move(&mut routed, DeploymentStatus::Live, now)?;
                items.push(self.move_item(&target, DeploymentStatus::Live, now)?);
            }
            items.push(self.set_live_item(site, site_record.live_deployment.as_ref(), to)?);
            if self.transact(items).await? {
                return Ok(routed);
            }
            tracing::debug!(site = %site, deployment_id = %to, ?displaced, attempt, "production routing raced a concurrent change; reading again");
        }
        Err(Self::contended("route_production"))
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
        .map(from_item)
        .collect()
    }

    async fn remove_preview(
        &self,
        site: &SiteName,
        target: &TargetName,
        now: OffsetDateTime,
    ) -> Result<Option<Preview>, StateError> {
        for attempt in 1..=MAX_ATTEMPTS {
            self.load_site(site).await?;
            let read = self.load_preview(site, target).await?;
            let existing = read.as_ref().map(|read| read.preview.clone());
            let mut tombstone = existing
                .clone()
                .unwrap_or_else(|| Preview::empty(site.clone(), target.clone(), now));
            let mut items = Vec::new();
            if let Some(live_id) = tombstone.live_deployment.take() {
                let live = self.load_deployment(site, &live_id).await?;
                if live.deployment.status == DeploymentStatus::Live {
                    items.push(self.move_item(&live, DeploymentStatus::Superseded, now)?);
                } else {
                    items.push(self.unchanged_item(&live)?);
                }
            }
            tombstone.removed_at = Some(now);
            tombstone.updated_at = now;
            items.push(self.save_preview_item(&tombstone, read.as_ref())?);
            if self.transact(items).await? {
                return Ok(existing);
            }
            tracing::debug!(site = %site, %target, attempt, "preview removal raced a concurrent change; reading again");
        }
        Err(Self::contended("remove_preview"))
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

    async fn delete_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<(), StateError> {
        let mut log_deleted = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let site_record = self.load_site(site).await?;
            let current = self.load_deployment(site, id).await?;
            let status = current.deployment.status;
            let routed = site_record.live_deployment == Some(*id);
            if routed || !status.is_terminal() || status == DeploymentStatus::Live {
                return Err(StateError::InUse { id: *id, status });
            }
            // The log goes first: if anything below fails, a retry finds the record and
            // finishes; the other order could leave log items nothing refers to.
            if !log_deleted {
                self.delete_log(id).await?;
                log_deleted = true;
            }
            let mut p = Placeholders::default();
            let condition = p.unchanged(&current);
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(deployment_key(site, id)))
                .condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .build()
                .map_err(build_failed)?;
            let mut p = Placeholders::default();
            let live = p.name(LIVE_DEPLOYMENT);
            let condition = format!(
                "attribute_not_exists({live}) OR {live} <> {}",
                p.value(s(id.to_string()))
            );
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.check_item(site_key(site), &p, condition)?,
            ];
            if self.transact(items).await? {
                return Ok(());
            }
            tracing::debug!(site = %site, deployment_id = %id, attempt, "delete raced a concurrent change; reading again");
        }
        Err(Self::contended("delete_deployment"))
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
