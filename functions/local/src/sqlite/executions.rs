//! The local workflow's execution records: which executions were started, with what input,
//! and how they ended, so that a restarted process can find the ones it cut off.

use rusqlite::{params, Connection};
use slipway_core::ports::{StateError, Workflow};

use super::{now_text, unavailable, SqliteState};

/// An execution as the local workflow records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub name: String,
    /// None for a workflow this version does not know (recorded by a later one).
    pub workflow: Option<Workflow>,
    pub input: String,
}

/// Adds the `workflow` column to a database made before there were several workflows: every
/// execution recorded then was deploy-site's.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_workflow: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('executions') WHERE name = 'workflow'",
        [],
        |r| r.get(0),
    )?;
    if !has_workflow {
        conn.execute(
            "ALTER TABLE executions ADD COLUMN workflow TEXT NOT NULL DEFAULT 'deploy-site'",
            [],
        )?;
    }
    Ok(())
}

impl SqliteState {
    /// Records a new execution of `workflow`; false when one with this name exists already.
    pub async fn insert_execution(
        &self,
        name: &str,
        workflow: Workflow,
        input: &str,
    ) -> Result<bool, StateError> {
        let (name, input) = (name.to_owned(), input.to_owned());
        self.with_conn(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO executions (name, workflow, input, status, started_at) VALUES (?1, ?2, ?3, 'RUNNING', ?4)",
                    params![name, workflow.name(), input, now_text()],
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
                .prepare("SELECT name, workflow, input FROM executions WHERE status = 'RUNNING' ORDER BY started_at")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| {
                    let workflow: String = r.get(1)?;
                    Ok(ExecutionRecord {
                        name: r.get(0)?,
                        workflow: Workflow::parse(&workflow),
                        input: r.get(2)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn executions_are_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        let site = Workflow::DeploySite;
        assert!(store.insert_execution("e1", site, "{}").await.unwrap());
        assert!(!store.insert_execution("e1", site, "{}").await.unwrap());
        let running = store.running_executions().await.unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].workflow, Some(site));
        store
            .finish_execution("e1", "SUCCEEDED", None)
            .await
            .unwrap();
        assert!(store.running_executions().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn executions_recorded_before_workflows_had_names_are_deploy_site() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE executions (name TEXT PRIMARY KEY, input TEXT NOT NULL, status TEXT NOT NULL,
                error TEXT, cause TEXT, started_at TEXT NOT NULL, stopped_at TEXT);
             INSERT INTO executions (name, input, status, started_at) VALUES ('deploy-x', '{}', 'RUNNING', 'now');",
        )
        .unwrap();
        drop(old);
        let store = SqliteState::open(&path).unwrap();
        let running = store.running_executions().await.unwrap();
        assert_eq!(running[0].workflow, Some(Workflow::DeploySite));
    }
}
