//! The embedded state store: SQLite in WAL mode under the state directory.
//! It stands in for DynamoDB (sites, deployments, build logs), the KeyValueStore data plane
//! (the edge's routing table) and Step Functions' execution records.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use slipway_core::decisions::{decide, Decision, Need, Outcome, Plan, Snapshot, Step};
use slipway_core::model::{Deployment, DeploymentStatus, Preview, Site};
use slipway_core::names::{DeploymentId, SiteName, TargetName};
use slipway_core::ports::{
    DeploymentPatch, KeyValueStore, KvsError, LogLine, StateError, StateStore, MAX_KVS_VALUE,
};
use slipway_core::records::{PreviewRecord, SiteRecord};
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

/// An execution as the local workflow records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub name: String,
    pub input: String,
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

fn load_site(conn: &Connection, name: &SiteName) -> Result<Site, StateError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM sites WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name.as_str()], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    let record: SiteRecord = decode(&body.ok_or_else(|| StateError::SiteNotFound(name.clone()))?)?;
    Ok(record.into())
}

fn save_site(conn: &Connection, site: &Site) -> Result<(), StateError> {
    conn.execute(
        "UPDATE sites SET body = ?2 WHERE name = ?1",
        params![site.name.as_str(), encode(&SiteRecord::from(site))?],
    )
    .map_err(unavailable)?;
    Ok(())
}

fn load_deployment(conn: &Connection, id: &DeploymentId) -> Result<Deployment, StateError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM deployments WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    decode(&body.ok_or(StateError::DeploymentNotFound(*id))?)
}

/// A site and one of its deployments; a deployment of another site is not found.
fn load_site_deployment(
    conn: &Connection,
    site: &SiteName,
    id: &DeploymentId,
) -> Result<(Site, Deployment), StateError> {
    let record = load_site(conn, site)?;
    let deployment = load_deployment(conn, id)?;
    if &deployment.site != site {
        return Err(StateError::DeploymentNotFound(*id));
    }
    Ok((record, deployment))
}

fn save_deployment(conn: &Connection, deployment: &Deployment) -> Result<(), StateError> {
    conn.execute(
        "UPDATE deployments SET status = ?2, body = ?3 WHERE id = ?1",
        params![
            deployment.id.to_string(),
            deployment.status.as_str(),
            encode(deployment)?
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// The records `query` (with the site as `?1`) selects, or SiteNotFound.
fn site_records<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    site: &SiteName,
    query: &str,
) -> Result<Vec<T>, StateError> {
    load_site(conn, site)?;
    let mut statement = conn.prepare_cached(query).map_err(unavailable)?;
    let bodies = statement
        .query_map([site.as_str()], |r| r.get::<_, String>(0))
        .map_err(unavailable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    bodies.iter().map(|body| decode(body)).collect()
}

fn load_preview(
    conn: &Connection,
    site: &SiteName,
    target: &TargetName,
) -> Result<Option<Preview>, StateError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM previews WHERE site = ?1 AND target = ?2",
            [site.as_str(), target.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    let record: Option<PreviewRecord> = body.as_deref().map(decode).transpose()?;
    Ok(record.map(Preview::from))
}

fn save_preview(conn: &Connection, preview: &Preview) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO previews (site, target, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (site, target) DO UPDATE SET body = excluded.body",
        params![
            preview.site.as_str(),
            preview.target.as_str(),
            encode(&PreviewRecord::from(preview))?
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Runs a decision inside the caller's transaction: loads what it asks for, then writes its plan.
fn commit_decision(
    conn: &Connection,
    site: &SiteName,
    decision: &Decision,
) -> Result<Outcome, StateError> {
    let mut snapshot = Snapshot::new(load_site(conn, site)?);
    loop {
        match decide(decision, &snapshot)? {
            Step::Read(Need::Deployment(id)) => {
                snapshot.insert_deployment(load_site_deployment(conn, site, &id)?.1)
            }
            Step::Read(Need::Preview(target)) => {
                let preview = load_preview(conn, site, &target)?;
                snapshot.insert_preview(target, preview);
            }
            Step::Apply(plan) => return apply_plan(conn, *plan),
        }
    }
}

fn apply_plan(conn: &Connection, plan: Plan) -> Result<Outcome, StateError> {
    if let Some(site) = &plan.site {
        save_site(conn, site)?;
    }
    for deployment in &plan.deployments {
        save_deployment(conn, deployment)?;
    }
    for preview in &plan.previews {
        save_preview(conn, preview)?;
    }
    for id in &plan.deletes {
        conn.execute(
            "DELETE FROM deployment_logs WHERE deployment_id = ?1",
            [id.to_string()],
        )
        .map_err(unavailable)?;
        conn.execute("DELETE FROM deployments WHERE id = ?1", [id.to_string()])
            .map_err(unavailable)?;
    }
    Ok(plan.outcome)
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

    /// Records a new execution; false when one with this name exists already.
    pub async fn insert_execution(&self, name: &str, input: &str) -> Result<bool, StateError> {
        let (name, input) = (name.to_owned(), input.to_owned());
        self.with_conn(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO executions (name, input, status, started_at) VALUES (?1, ?2, 'RUNNING', ?3)",
                    params![name, input, now_text()],
                )
                .map_err(unavailable)?;
            Ok(inserted == 1)
        })
        .await
    }

    pub async fn finish_execution(
        &self,
        name: &str,
        status: &str,
        error: Option<(String, String)>,
    ) -> Result<(), StateError> {
        let (name, status) = (name.to_owned(), status.to_owned());
        self.with_conn(move |conn| {
            let (error, cause) = error.unzip();
            conn.execute(
                "UPDATE executions SET status = ?2, error = ?3, cause = ?4, stopped_at = ?5 WHERE name = ?1",
                params![name, status, error, cause, now_text()],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Executions that were running when the process stopped.
    pub async fn running_executions(&self) -> Result<Vec<ExecutionRecord>, StateError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT name, input FROM executions WHERE status = 'RUNNING' ORDER BY started_at")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ExecutionRecord { name: r.get(0)?, input: r.get(1)? })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl StateStore for SqliteState {
    async fn create_site(&self, site: &Site) -> Result<(), StateError> {
        let site = site.clone();
        self.with_conn(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO sites (name, body) VALUES (?1, ?2)",
                    params![site.name.as_str(), encode(&SiteRecord::from(&site))?],
                )
                .map_err(unavailable)?;
            if inserted == 0 {
                return Err(StateError::SiteExists(site.name));
            }
            Ok(())
        })
        .await
    }

    async fn get_site(&self, name: &SiteName) -> Result<Site, StateError> {
        self.read(|conn| load_site(conn, name))
    }

    async fn list_sites(&self) -> Result<Vec<Site>, StateError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM sites ORDER BY name")
                .map_err(unavailable)?;
            let bodies = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            bodies
                .iter()
                .map(|b| decode::<SiteRecord>(b).map(Site::from))
                .collect()
        })
    }

    async fn create_deployment(&self, deployment: &Deployment) -> Result<(), StateError> {
        let deployment = deployment.clone();
        self.with_conn(move |conn| {
            load_site(conn, &deployment.site)?;
            conn.execute(
                "INSERT INTO deployments (id, site, status, body) VALUES (?1, ?2, ?3, ?4)",
                params![
                    deployment.id.to_string(),
                    deployment.site.as_str(),
                    deployment.status.as_str(),
                    encode(&deployment)?
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<Deployment, StateError> {
        self.read(|conn| Ok(load_site_deployment(conn, site, id)?.1))
    }

    async fn find_deployment(&self, id: &DeploymentId) -> Result<Deployment, StateError> {
        self.read(|conn| load_deployment(conn, id))
    }

    async fn list_deployments(&self, site: &SiteName) -> Result<Vec<Deployment>, StateError> {
        self.read(|conn| {
            site_records(
                conn,
                site,
                "SELECT body FROM deployments WHERE site = ?1 ORDER BY id DESC",
            )
        })
    }

    async fn transition(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        to: DeploymentStatus,
        patch: DeploymentPatch,
    ) -> Result<Deployment, StateError> {
        let (site, id) = (site.clone(), *id);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let (_, mut deployment) = load_site_deployment(&tx, &site, &id)?;
            deployment.move_to(to, OffsetDateTime::now_utc())?;
            let DeploymentPatch {
                built,
                routing,
                error,
                file_count,
                bytes,
            } = patch;
            if let Some(built) = built {
                deployment.built = built;
            }
            if let Some(routing) = routing {
                deployment.routing = routing;
            }
            if error.is_some() {
                deployment.error = error;
            }
            if file_count.is_some() {
                deployment.file_count = file_count;
            }
            if bytes.is_some() {
                deployment.bytes = bytes;
            }
            save_deployment(&tx, &deployment)?;
            tx.commit().map_err(unavailable)?;
            Ok(deployment)
        })
        .await
    }

    async fn commit(&self, site: &SiteName, decision: Decision) -> Result<Outcome, StateError> {
        let site = site.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let outcome = commit_decision(&tx, &site, &decision)?;
            tx.commit().map_err(unavailable)?;
            Ok(outcome)
        })
        .await
    }

    async fn list_previews(&self, site: &SiteName) -> Result<Vec<Preview>, StateError> {
        let records: Vec<PreviewRecord> = self.read(|conn| {
            site_records(
                conn,
                site,
                "SELECT body FROM previews WHERE site = ?1 ORDER BY target",
            )
        })?;
        Ok(records.into_iter().map(Preview::from).collect())
    }

    async fn record_delivery(
        &self,
        delivery: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StateError> {
        let delivery = delivery.to_owned();
        self.with_conn(move |conn| {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE expires_at <= ?1",
                [now],
            )
            .map_err(unavailable)?;
            let inserted = conn
                .execute(
                    "INSERT INTO webhook_deliveries (id, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    params![delivery, expires_at.unix_timestamp()],
                )
                .map_err(unavailable)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn forget_delivery(&self, delivery: &str) -> Result<(), StateError> {
        let delivery = delivery.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM webhook_deliveries WHERE id = ?1", [delivery])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn append_log(&self, id: &DeploymentId, lines: &[String]) -> Result<(), StateError> {
        if lines.is_empty() {
            return Ok(());
        }
        let (id, lines) = (id.to_string(), lines.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let last: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let at = now_text();
            for (offset, line) in lines.iter().enumerate() {
                tx.execute(
                    "INSERT INTO deployment_logs (deployment_id, seq, at, line) VALUES (?1, ?2, ?3, ?4)",
                    params![id, last + 1 + offset as i64, at, line],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn read_log(&self, id: &DeploymentId, after: u64) -> Result<Vec<LogLine>, StateError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare("SELECT seq, at, line FROM deployment_logs WHERE deployment_id = ?1 AND seq > ?2 ORDER BY seq")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![id, i64::try_from(after).unwrap_or(i64::MAX)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(seq, at, line)| {
                    let at = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                        .map_err(unavailable)?;
                    Ok(LogLine { seq: seq.unsigned_abs(), at, line })
                })
                .collect()
        })
        .await
    }
}

fn kvs_unavailable(e: StateError) -> KvsError {
    KvsError::Unavailable(Box::new(e))
}

#[async_trait]
impl KeyValueStore for SqliteState {
    async fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        self.read(|conn| {
            // Every edge request looks its host up: keep the statement compiled.
            conn.prepare_cached("SELECT value FROM kvs WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
                .map_err(unavailable)
        })
        .map_err(kvs_unavailable)
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), KvsError> {
        if value.len() > MAX_KVS_VALUE {
            return Err(KvsError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
            });
        }
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO kvs (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
        .map_err(kvs_unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), KvsError> {
        let key = key.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM kvs WHERE key = ?1", [key])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
        .map_err(kvs_unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_testkit::state_contract::site;

    #[tokio::test]
    async fn sites_are_unique_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteState::open(&path).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        assert!(matches!(
            store.create_site(&site("docs")).await,
            Err(StateError::SiteExists(_))
        ));
        drop(store);
        let reopened = SqliteState::open(&path).unwrap();
        assert_eq!(reopened.list_sites().await.unwrap().len(), 1);
        let missing = SiteName::parse("nope").unwrap();
        assert!(matches!(
            reopened.get_site(&missing).await,
            Err(StateError::SiteNotFound(_))
        ));
    }

    #[tokio::test]
    async fn kvs_values_are_limited_to_one_kilobyte() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        KeyValueStore::put(&store, "docs.localhost", "docs/x")
            .await
            .unwrap();
        assert_eq!(
            KeyValueStore::get(&store, "docs.localhost")
                .await
                .unwrap()
                .as_deref(),
            Some("docs/x")
        );
        assert!(matches!(
            KeyValueStore::put(&store, "k", &"v".repeat(1025)).await,
            Err(KvsError::ValueTooLarge { .. })
        ));
        KeyValueStore::delete(&store, "docs.localhost")
            .await
            .unwrap();
        assert_eq!(
            KeyValueStore::get(&store, "docs.localhost").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn executions_are_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        assert!(store.insert_execution("e1", "{}").await.unwrap());
        assert!(!store.insert_execution("e1", "{}").await.unwrap());
        assert_eq!(store.running_executions().await.unwrap().len(), 1);
        store
            .finish_execution("e1", "SUCCEEDED", None)
            .await
            .unwrap();
        assert!(store.running_executions().await.unwrap().is_empty());
    }

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
