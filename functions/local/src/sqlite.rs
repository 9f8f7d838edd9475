//! The embedded state store: SQLite in WAL mode under the state directory.
//! It stands in for DynamoDB (sites, deployments, build logs), the KeyValueStore data plane
//! (the edge's routing table) and Step Functions' execution records.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use slipway_core::model::{Deployment, DeploymentStatus, Preview, Site};
use slipway_core::names::{DeploymentId, SiteName, TargetName};
use slipway_core::ports::{
    ActivateOutcome, DeploymentPatch, Displaced, KeyValueStore, KvsError, LogLine, StateError,
    StateStore,
};
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

/// The KVS value limit CloudFront enforces.
const MAX_KVS_VALUE: usize = 1024;

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
    decode(&body.ok_or_else(|| StateError::SiteNotFound(name.clone()))?)
}

fn save_site(conn: &Connection, site: &Site) -> Result<(), StateError> {
    conn.execute(
        "UPDATE sites SET body = ?2 WHERE name = ?1",
        params![site.name.as_str(), encode(site)?],
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

/// Applies a status move if the lifecycle allows it from the current status.
fn move_status(
    deployment: &mut Deployment,
    to: DeploymentStatus,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    if !deployment.status.can_move_to(to) {
        return Err(StateError::InvalidTransition {
            id: deployment.id,
            from: deployment.status,
            to,
        });
    }
    deployment.status = to;
    deployment.updated_at = now;
    if to == DeploymentStatus::Live && deployment.target.is_production() {
        deployment.activated_at = Some(now);
    }
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
    body.as_deref().map(decode).transpose()
}

fn save_preview(conn: &Connection, preview: &Preview) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO previews (site, target, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (site, target) DO UPDATE SET body = excluded.body",
        params![
            preview.site.as_str(),
            preview.target.as_str(),
            encode(preview)?
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Moves the deployment a target served before to `to`, if it is still live there.
fn displace(
    conn: &Connection,
    previous: Option<DeploymentId>,
    to: DeploymentStatus,
    now: OffsetDateTime,
) -> Result<Option<DeploymentId>, StateError> {
    let Some(previous) = previous else {
        return Ok(None);
    };
    let mut deployment = load_deployment(conn, &previous)?;
    if deployment.status != DeploymentStatus::Live {
        return Ok(None);
    }
    move_status(&mut deployment, to, now)?;
    save_deployment(conn, &deployment)?;
    Ok(Some(previous))
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
                    params![site.name.as_str(), encode(&site)?],
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
            bodies.iter().map(|b| decode(b)).collect()
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
            move_status(&mut deployment, to, OffsetDateTime::now_utc())?;
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

    async fn activate(
        &self,
        site: &SiteName,
        id: &DeploymentId,
        now: OffsetDateTime,
    ) -> Result<ActivateOutcome, StateError> {
        let (site_name, id) = (site.clone(), *id);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let (mut site, mut deployment) = load_site_deployment(&tx, &site_name, &id)?;
            if deployment.status == DeploymentStatus::Live {
                return Ok(ActivateOutcome::AlreadyLive);
            }
            let target = deployment.target.clone();
            let mut preview = if target.is_production() {
                None
            } else {
                Some(
                    load_preview(&tx, &site_name, &target)?.unwrap_or_else(|| Preview {
                        site: site_name.clone(),
                        target: target.clone(),
                        branch: deployment.source.git().map(|git| git.branch.clone()),
                        pull_request: deployment.source.git().and_then(|git| git.pull_request),
                        live_deployment: None,
                        updated_at: now,
                        removed_at: None,
                    }),
                )
            };
            if preview.as_ref().is_some_and(|p| !p.accepts(&id)) {
                move_status(&mut deployment, DeploymentStatus::Superseded, now)?;
                save_deployment(&tx, &deployment)?;
                tx.commit().map_err(unavailable)?;
                return Ok(ActivateOutcome::TargetRemoved);
            }
            let current = match &preview {
                Some(preview) => preview.live_deployment,
                None => site.live_deployment,
            };
            // A newer deployment serves the target already: never move backwards.
            if let Some(newer) = current.filter(|live| *live > id) {
                move_status(&mut deployment, DeploymentStatus::Superseded, now)?;
                save_deployment(&tx, &deployment)?;
                tx.commit().map_err(unavailable)?;
                return Ok(ActivateOutcome::Superseded { newer });
            }
            move_status(&mut deployment, DeploymentStatus::Live, now)?;
            save_deployment(&tx, &deployment)?;
            // Only a deployment of this target leaves `live`: a promoted preview
            // deployment displaced from production stays live on its preview.
            let previous = current.filter(|live| *live != id);
            let previous = match previous {
                Some(previous) if load_deployment(&tx, &previous)?.target == target => {
                    displace(&tx, Some(previous), DeploymentStatus::Superseded, now)?
                }
                _ => None,
            };
            match preview.as_mut() {
                Some(preview) => {
                    preview.serve(&deployment, now);
                    save_preview(&tx, preview)?;
                }
                None => {
                    site.live_deployment = Some(id);
                    save_site(&tx, &site)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(ActivateOutcome::Activated { previous })
        })
        .await
    }

    async fn route_production(
        &self,
        site: &SiteName,
        to: &DeploymentId,
        displaced: Displaced,
        now: OffsetDateTime,
    ) -> Result<Deployment, StateError> {
        let (site_name, to) = (site.clone(), *to);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let (mut site, mut target) = load_site_deployment(&tx, &site_name, &to)?;
            if !target.status.is_servable() {
                return Err(StateError::InvalidTransition {
                    id: to,
                    from: target.status,
                    to: DeploymentStatus::Live,
                });
            }
            if let Some(live_id) = site.live_deployment.filter(|live| live != &to) {
                if load_deployment(&tx, &live_id)?.target.is_production() {
                    displace(&tx, Some(live_id), displaced.status(), now)?;
                }
            }
            if target.target.is_production() {
                if target.status != DeploymentStatus::Live {
                    move_status(&mut target, DeploymentStatus::Live, now)?;
                }
            } else {
                target.activated_at = Some(now);
                target.updated_at = now;
            }
            save_deployment(&tx, &target)?;
            site.live_deployment = Some(to);
            save_site(&tx, &site)?;
            tx.commit().map_err(unavailable)?;
            Ok(target)
        })
        .await
    }

    async fn list_previews(&self, site: &SiteName) -> Result<Vec<Preview>, StateError> {
        self.read(|conn| {
            site_records(
                conn,
                site,
                "SELECT body FROM previews WHERE site = ?1 ORDER BY target",
            )
        })
    }

    async fn remove_preview(
        &self,
        site: &SiteName,
        target: &TargetName,
        now: OffsetDateTime,
    ) -> Result<Option<Preview>, StateError> {
        let (site, target) = (site.clone(), target.clone());
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            load_site(&tx, &site)?;
            let existing = load_preview(&tx, &site, &target)?;
            let mut tombstone = existing
                .clone()
                .unwrap_or_else(|| Preview::empty(site.clone(), target.clone(), now));
            displace(
                &tx,
                tombstone.live_deployment.take(),
                DeploymentStatus::Superseded,
                now,
            )?;
            tombstone.removed_at = Some(now);
            tombstone.updated_at = now;
            save_preview(&tx, &tombstone)?;
            tx.commit().map_err(unavailable)?;
            Ok(existing)
        })
        .await
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

    async fn delete_deployment(
        &self,
        site: &SiteName,
        id: &DeploymentId,
    ) -> Result<(), StateError> {
        let (site, id) = (site.clone(), *id);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let (record, deployment) = load_site_deployment(&tx, &site, &id)?;
            let routed = record.live_deployment == Some(id);
            if routed
                || !deployment.status.is_terminal()
                || deployment.status == DeploymentStatus::Live
            {
                return Err(StateError::InUse {
                    id,
                    status: deployment.status,
                });
            }
            tx.execute(
                "DELETE FROM deployment_logs WHERE deployment_id = ?1",
                [id.to_string()],
            )
            .map_err(unavailable)?;
            tx.execute("DELETE FROM deployments WHERE id = ?1", [id.to_string()])
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
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
    use slipway_core::model::{rollback_candidate, ObjectLocation, RoutingFlags};
    use slipway_core::ports::Bucket;

    fn site(name: &str) -> Site {
        Site {
            name: SiteName::parse(name).unwrap(),
            routing: RoutingFlags::default(),
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
        Deployment::queued(
            id,
            SiteName::parse(site).unwrap(),
            source,
            false,
            OffsetDateTime::now_utc(),
        )
    }

    async fn publish(store: &SqliteState, d: &Deployment) {
        for to in [DeploymentStatus::Building, DeploymentStatus::Publishing] {
            store
                .transition(&d.site, &d.id, to, DeploymentPatch::default())
                .await
                .unwrap();
        }
    }

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
    async fn transitions_are_conditional_on_the_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let d = deployment("docs");
        store.create_deployment(&d).await.unwrap();
        let err = store
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
                ..
            }
        ));
        let patch = DeploymentPatch {
            built: Some(true),
            ..Default::default()
        };
        let moved = store
            .transition(&d.site, &d.id, DeploymentStatus::Building, patch)
            .await
            .unwrap();
        assert!(moved.built);
        let other_site = SiteName::parse("other").unwrap();
        assert!(matches!(
            store.get_deployment(&other_site, &d.id).await,
            Err(StateError::SiteNotFound(_))
        ));
    }

    #[tokio::test]
    async fn activate_supersedes_the_previous_and_never_moves_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let older = deployment("docs");
        let newer = deployment("docs");
        let newest = deployment("docs");
        for d in [&older, &newer, &newest] {
            store.create_deployment(d).await.unwrap();
            publish(&store, d).await;
        }
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
        assert_eq!(
            store.activate(&newest.site, &newest.id, now).await.unwrap(),
            ActivateOutcome::Activated {
                previous: Some(newer.id)
            }
        );
        let statuses: Vec<_> = store
            .list_deployments(&older.site)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.status)
            .collect();
        assert_eq!(
            statuses,
            [
                DeploymentStatus::Live,
                DeploymentStatus::Superseded,
                DeploymentStatus::Superseded
            ]
        );

        let back = store
            .route_production(&newer.site, &newer.id, Displaced::RolledBack, now)
            .await
            .unwrap();
        assert_eq!(back.status, DeploymentStatus::Live);
        assert_eq!(
            store
                .get_deployment(&newest.site, &newest.id)
                .await
                .unwrap()
                .status,
            DeploymentStatus::RolledBack
        );
        assert_eq!(
            store.get_site(&newer.site).await.unwrap().live_deployment,
            Some(newer.id)
        );
    }

    #[tokio::test]
    async fn live_and_in_flight_deployments_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let live = deployment("docs");
        let queued = deployment("docs");
        store.create_deployment(&live).await.unwrap();
        store.create_deployment(&queued).await.unwrap();
        publish(&store, &live).await;
        store
            .activate(&live.site, &live.id, OffsetDateTime::now_utc())
            .await
            .unwrap();
        for d in [&live, &queued] {
            assert!(matches!(
                store.delete_deployment(&d.site, &d.id).await,
                Err(StateError::InUse { .. })
            ));
            assert!(store.get_deployment(&d.site, &d.id).await.is_ok());
        }
    }

    #[tokio::test]
    async fn logs_append_in_order_and_read_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
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
        let rest = store.read_log(&id, all[1].seq).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].line, "three");
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

    /// A published deployment of `target`, built from a commit on `branch`.
    async fn published_preview(store: &SqliteState, target: &str) -> Deployment {
        let mut d = deployment("docs");
        d.target = TargetName::parse(target).unwrap();
        store.create_deployment(&d).await.unwrap();
        publish(store, &d).await;
        d
    }

    async fn status_of(store: &SqliteState, d: &Deployment) -> DeploymentStatus {
        store.get_deployment(&d.site, &d.id).await.unwrap().status
    }

    #[tokio::test]
    async fn previews_go_live_on_their_own_target_and_never_touch_production() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let production = deployment("docs");
        store.create_deployment(&production).await.unwrap();
        publish(&store, &production).await;
        store
            .activate(&production.site, &production.id, now)
            .await
            .unwrap();

        let older = published_preview(&store, "pr-7").await;
        let newer = published_preview(&store, "pr-7").await;
        assert_eq!(
            store.activate(&newer.site, &newer.id, now).await.unwrap(),
            ActivateOutcome::Activated { previous: None }
        );
        // The slower, older build of the same preview loses; production is untouched.
        assert_eq!(
            store.activate(&older.site, &older.id, now).await.unwrap(),
            ActivateOutcome::Superseded { newer: newer.id }
        );
        let record = store.get_site(&production.site).await.unwrap();
        assert_eq!(record.live_deployment, Some(production.id));
        assert_eq!(status_of(&store, &production).await, DeploymentStatus::Live);
        let previews = store.list_previews(&production.site).await.unwrap();
        assert_eq!(previews.len(), 1);
        assert_eq!(previews[0].live_deployment, Some(newer.id));
        // Preview activations are not production activations: rollback never goes there.
        let live_preview = store.get_deployment(&newer.site, &newer.id).await.unwrap();
        assert_eq!(live_preview.activated_at, None);
    }

    #[tokio::test]
    async fn promote_serves_a_preview_in_production_and_rollback_undoes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let production = deployment("docs");
        store.create_deployment(&production).await.unwrap();
        publish(&store, &production).await;
        store
            .activate(&production.site, &production.id, now)
            .await
            .unwrap();
        let preview = published_preview(&store, "feature-x").await;
        store
            .activate(&preview.site, &preview.id, now)
            .await
            .unwrap();

        let promoted = store
            .route_production(&preview.site, &preview.id, Displaced::Superseded, now)
            .await
            .unwrap();
        // Still live on its preview; now production's too.
        assert_eq!(promoted.status, DeploymentStatus::Live);
        assert!(promoted.activated_at.is_some());
        let record = store.get_site(&preview.site).await.unwrap();
        assert_eq!(record.live_deployment, Some(preview.id));
        assert_eq!(
            status_of(&store, &production).await,
            DeploymentStatus::Superseded
        );
        let deployments = store.list_deployments(&preview.site).await.unwrap();
        assert_eq!(
            rollback_candidate(&deployments, record.live_deployment).map(|d| d.id),
            Some(production.id)
        );

        // Rolling back leaves the preview serving its deployment.
        store
            .route_production(&production.site, &production.id, Displaced::RolledBack, now)
            .await
            .unwrap();
        assert_eq!(status_of(&store, &production).await, DeploymentStatus::Live);
        assert_eq!(status_of(&store, &preview).await, DeploymentStatus::Live);
        assert_eq!(
            store.get_site(&preview.site).await.unwrap().live_deployment,
            Some(production.id)
        );
    }

    #[tokio::test]
    async fn a_removed_preview_stays_removed_for_builds_already_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        store.create_site(&site("docs")).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let live = published_preview(&store, "pr-3").await;
        store.activate(&live.site, &live.id, now).await.unwrap();
        let in_flight = published_preview(&store, "pr-3").await;

        let target = TargetName::parse("pr-3").unwrap();
        let removed_at = OffsetDateTime::now_utc();
        let before = store
            .remove_preview(&live.site, &target, removed_at)
            .await
            .unwrap();
        assert_eq!(before.unwrap().live_deployment, Some(live.id));
        assert_eq!(status_of(&store, &live).await, DeploymentStatus::Superseded);
        assert_eq!(
            store
                .activate(&in_flight.site, &in_flight.id, removed_at)
                .await
                .unwrap(),
            ActivateOutcome::TargetRemoved
        );
        let previews = store.list_previews(&live.site).await.unwrap();
        assert_eq!(previews[0].live_deployment, None);
        assert!(previews[0].removed_at.is_some());

        // Reopened later: a deployment created after the removal goes live again.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let reopened = published_preview(&store, "pr-3").await;
        assert!(matches!(
            store
                .activate(&reopened.site, &reopened.id, OffsetDateTime::now_utc())
                .await
                .unwrap(),
            ActivateOutcome::Activated { .. }
        ));
        let previews = store.list_previews(&live.site).await.unwrap();
        assert_eq!(previews[0].removed_at, None);
        assert_eq!(previews[0].live_deployment, Some(reopened.id));
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

    #[tokio::test]
    async fn deliveries_are_recorded_once_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::days(7);
        assert!(store.record_delivery("d-1", later).await.unwrap());
        assert!(!store.record_delivery("d-1", later).await.unwrap());
        assert!(store.record_delivery("d-2", later).await.unwrap());
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        assert!(store.record_delivery("d-3", past).await.unwrap());
        assert!(store.record_delivery("d-3", later).await.unwrap());
        // A delivery whose handling failed is forgotten, so GitHub's redelivery is handled.
        store.forget_delivery("d-1").await.unwrap();
        assert!(store.record_delivery("d-1", later).await.unwrap());
    }
}
