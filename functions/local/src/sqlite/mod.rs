//! The embedded state store: SQLite in WAL mode under the state directory.
//! It stands in for DynamoDB (sites, deployments, build logs), the KeyValueStore data plane
//! (the edge's routing table) and Step Functions' execution records.
//!
//! This module holds the connection, the pool of read connections and the helpers the
//! rest share; `state` implements the `StateStore`, `routes` the `KeyValueStore`, and
//! `executions` the local workflow's execution records.

mod executions;
mod routes;
mod state;

pub use executions::ExecutionRecord;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use slipway_core::ports::StateError;
use time::OffsetDateTime;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL REFERENCES sites(name),
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_by_site ON deployments(site, id);
CREATE TABLE IF NOT EXISTS deployment_logs (
    deployment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
CREATE TABLE IF NOT EXISTS previews (
    site TEXT NOT NULL REFERENCES sites(name),
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (site, target)
);
CREATE TABLE IF NOT EXISTS services (
    site TEXT NOT NULL REFERENCES sites(name),
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (site, name)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kvs (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    name TEXT PRIMARY KEY,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    cause TEXT,
    started_at TEXT NOT NULL,
    stopped_at TEXT
);
";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the state database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

#[derive(Clone)]
pub struct SqliteState {
    /// Every write, and reads that may return much, go through this one connection.
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
}

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept open; more are opened while more threads read at once.
const MAX_IDLE_READERS: usize = 8;

/// Read-only connections for the small, hot reads: the edge's host lookups and the API's
/// gets and lists. In WAL mode they read the last commit beside the writer without waiting
/// for it, and they run on the calling thread: a read of a few rows takes microseconds,
/// less than handing it to the blocking pool and back (which also grew that pool to one
/// thread per concurrent request, all queued on the writer's lock).
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn open(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => Self::open(&self.path).map_err(unavailable)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StateError {
    StateError::Unavailable(Box::new(e))
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StateError> {
    serde_json::from_str(body).map_err(unavailable)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(unavailable)
}

impl SqliteState {
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let wrap = |source| OpenError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        executions::migrate(&conn).map_err(wrap)?;
        // One reader now, so a database that cannot be read this way fails here.
        let reader = Readers::open(path).map_err(wrap)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(vec![reader]),
            }),
        })
    }

    /// Runs a small read on a read connection, on this thread.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.readers.read(f)
    }

    /// Runs `f` on the connection off the async runtime's workers.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::TransactionBehavior;
    use slipway_core::names::SiteName;
    use slipway_core::ports::{KeyValueStore, StateStore};
    use slipway_testkit::state_contract::site;

    // The writer's lock is held across the reads on purpose: a write in progress.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn reads_see_the_last_commit_without_waiting_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.put("docs.localhost", "docs/v1").await.unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let name = SiteName::parse("docs").unwrap();
        assert_eq!(store.get_site(&name).await.unwrap().name, name);

        // A write holds the database's write lock, uncommitted, while the reads run.
        let writer = store.conn.clone();
        let mut conn = writer.lock().unwrap();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("UPDATE kvs SET value = 'docs/v2'", []).unwrap();
        let reads = async {
            let seen = store.get("docs.localhost").await.unwrap();
            (seen, store.list_deployments(&name).await.unwrap())
        };
        let (seen, listed) = tokio::time::timeout(BUSY_TIMEOUT / 2, reads)
            .await
            .expect("reads do not wait for the writer");
        assert_eq!(seen.as_deref(), Some("docs/v1"));
        assert!(listed.is_empty());
        tx.commit().unwrap();
        drop(conn);
        assert_eq!(
            store.get("docs.localhost").await.unwrap().as_deref(),
            Some("docs/v2")
        );
    }
}
