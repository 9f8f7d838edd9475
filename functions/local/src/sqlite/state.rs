//! The `StateStore` on SQLite: sites, services, deployments, previews, webhook deliveries
//! and build logs, with the record load/save helpers and the application of `decisions` plans
//! (`commit_decision`, `apply_plan`) inside one immediate transaction.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use slipway_core::decisions::{decide, Decision, Need, Outcome, Plan, Snapshot, Step};
use slipway_core::model::{Deployment, DeploymentStatus, Preview, Site};
use slipway_core::names::{DeploymentId, ServiceName, SiteName, TargetName};
use slipway_core::ports::{DeploymentPatch, LogLine, StateError, StateStore};
use slipway_core::records::{DeploymentRecord, PreviewRecord, ServiceRecord, SiteRecord};
use slipway_core::service::Service;
use time::OffsetDateTime;

use super::{decode, encode, now_text, unavailable, SqliteState};

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
    let record: DeploymentRecord = decode(&body.ok_or(StateError::DeploymentNotFound(*id))?)?;
    Ok(record.into())
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
            encode(&DeploymentRecord::from(deployment))?
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

/// A stored service, whose settings are checked again as they are read.
fn stored_service(record: ServiceRecord) -> Result<Service, StateError> {
    Service::try_from(record).map_err(unavailable)
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

    async fn create_service(&self, service: &Service) -> Result<(), StateError> {
        let service = service.clone();
        self.with_conn(move |conn| {
            load_site(conn, &service.site)?;
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO services (site, name, body) VALUES (?1, ?2, ?3)",
                    params![
                        service.site.as_str(),
                        service.name.as_str(),
                        encode(&ServiceRecord::from(&service))?
                    ],
                )
                .map_err(unavailable)?;
            if inserted == 0 {
                return Err(StateError::ServiceExists {
                    site: service.site,
                    service: service.name,
                });
            }
            Ok(())
        })
        .await
    }

    async fn get_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<Service, StateError> {
        self.read(|conn| {
            load_site(conn, site)?;
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM services WHERE site = ?1 AND name = ?2",
                    params![site.as_str(), service.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            let body = body.ok_or_else(|| StateError::ServiceNotFound {
                site: site.clone(),
                service: service.clone(),
            })?;
            stored_service(decode(&body)?)
        })
    }

    async fn list_services(&self, site: &SiteName) -> Result<Vec<Service>, StateError> {
        let records: Vec<ServiceRecord> = self.read(|conn| {
            site_records(
                conn,
                site,
                "SELECT body FROM services WHERE site = ?1 ORDER BY name",
            )
        })?;
        records.into_iter().map(stored_service).collect()
    }

    async fn delete_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<(), StateError> {
        let (site, service) = (site.clone(), service.clone());
        self.with_conn(move |conn| {
            load_site(conn, &site)?;
            let deleted = conn
                .execute(
                    "DELETE FROM services WHERE site = ?1 AND name = ?2",
                    params![site.as_str(), service.as_str()],
                )
                .map_err(unavailable)?;
            if deleted == 0 {
                return Err(StateError::ServiceNotFound { site, service });
            }
            Ok(())
        })
        .await
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
                    encode(&DeploymentRecord::from(&deployment))?
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
        let records: Vec<DeploymentRecord> = self.read(|conn| {
            site_records(
                conn,
                site,
                "SELECT body FROM deployments WHERE site = ?1 ORDER BY id DESC",
            )
        })?;
        Ok(records.into_iter().map(Deployment::from).collect())
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
}
