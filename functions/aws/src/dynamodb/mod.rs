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
//! | deployment | `SITE#{site}` | `DEP#{id}` | `DEP#{id}` | `SITE#{site}` | the [`DeploymentRecord`] fields |
//! | preview | `SITE#{site}` | `PREVIEW#{target}` | | | the [`PreviewRecord`] fields |
//! | log counter | `LOG#{id}` | `SEQ` | | | `last_seq` (N) |
//! | log line | `LOG#{id}` | `LINE#{seq:020}` | | | the [`LogLine`] fields: `seq` (N), `at` (S), `line` (S) |
//! | webhook delivery | `HOOK#{delivery}` | `DELIVERY` | | | `expires_at` (N, epoch seconds) |
//!
//! Records are typed attributes, one per serde field of the record: strings S (timestamps
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
//!
//! # Layout
//!
//! `items` maps records to items and back and builds the keys; `expressions` holds the
//! placeholders and the conditions and updates written with them; `requests` the DynamoDB
//! calls the store is made of; `store` the `StateStore` itself (its reads, `commit` and the
//! transaction it writes); `logs` the build log's items; `table` [`create_table`].
//!
//! [`SiteRecord`]: slipway_core::records::SiteRecord
//! [`DeploymentRecord`]: slipway_core::records::DeploymentRecord
//! [`PreviewRecord`]: slipway_core::records::PreviewRecord
//! [`LogLine`]: slipway_core::ports::LogLine
//! [`StateStore::transition`]: slipway_core::ports::StateStore::transition
//! [`StateStore::commit`]: slipway_core::ports::StateStore::commit

mod expressions;
mod items;
mod logs;
mod requests;
mod services;
mod store;
mod table;

pub use table::create_table;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::operation::BuildError;
use slipway_core::names::DeploymentId;
use slipway_core::ports::{BoxError, StateError};

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

// Attribute names of the records' serde fields that conditions and updates name.
const STATUS: &str = "status";
const UPDATED_AT: &str = "updated_at";
const ACTIVATED_AT: &str = "activated_at";
const LIVE_DEPLOYMENT: &str = "live_deployment";
const REMOVED_AT: &str = "removed_at";
const BUILT: &str = "built";
const SPA: &str = "spa";
const CLEAN_URLS: &str = "clean_urls";
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

    fn contended(operation: &'static str) -> StateError {
        DynamoError::Contended {
            operation,
            attempts: MAX_ATTEMPTS,
        }
        .into()
    }
}
