//! The `StateStore` on DynamoDB: records read with the stored values later writes are
//! conditioned on, `commit` (read, decide, write one conditional transaction, again on a
//! lost race) with `plan_items`, the transaction that applies a plan, and the other writes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValue, TransactWriteItem};
use slipway_core::decisions::{decide, Decision, Need, Outcome, Plan, Snapshot, Step};
use slipway_core::model::{Deployment, DeploymentStatus, LifecycleError, Preview, Site};
use slipway_core::names::{DeploymentId, ServiceName, SiteName, TargetName};
use slipway_core::ports::{DeploymentPatch, LogLine, StateError, StateStore};
use slipway_core::records::{DeploymentRecord, PreviewRecord, SiteRecord, TrafficRecord};
use slipway_core::service::Service;
use time::OffsetDateTime;

use super::expressions::{move_fields, patch_fields, Placeholders};
use super::items::{
    delivery_key, deployment_item, deployment_key, deployment_sk, from_item, log_pk, log_sk,
    preview_item, preview_key, s, site_item, site_key, site_pk, to_item,
};
use super::logs::log_chunks;
use super::{
    build_failed, malformed, request_failed, DynamoError, DynamoState, Item, DEPLOYMENT_SK_PREFIX,
    GSI1, GSI1_PARTITION_KEY, LIVE_DEPLOYMENT, MAX_ATTEMPTS, PARTITION_KEY, PREVIEW_SK_PREFIX,
    REMOVED_AT, SITES_GSI1PK, SORT_KEY, TTL_ATTRIBUTE, UPDATED_AT,
};

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

impl DynamoState {
    /// Every item of the site's partition whose sort key starts with `prefix`, in sort key
    /// order (`ascending`) or backwards; SiteNotFound when the site is missing.
    pub(super) async fn site_items(
        &self,
        site: &SiteName,
        prefix: &str,
        ascending: bool,
    ) -> Result<Vec<Item>, StateError> {
        self.load_site(site).await?;
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            p.name(PARTITION_KEY),
            p.value(s(site_pk(site))),
            p.name(SORT_KEY),
            p.value(s(prefix))
        );
        self.query_all(
            self.client
                .query()
                .key_condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .scan_index_forward(ascending)
                .consistent_read(true),
        )
        .await
    }

    pub(super) async fn load_site(&self, name: &SiteName) -> Result<Site, StateError> {
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
            deployment: from_item::<DeploymentRecord>(item)?.into(),
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

    async fn create_service(&self, service: &Service) -> Result<(), StateError> {
        self.put_new_service(service).await
    }

    async fn get_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<Service, StateError> {
        self.load_service(site, service).await
    }

    async fn list_services(&self, site: &SiteName) -> Result<Vec<Service>, StateError> {
        self.site_services(site).await
    }

    async fn delete_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<(), StateError> {
        self.remove_service(site, service).await
    }

    async fn create_deployment(&self, deployment: &Deployment) -> Result<(), StateError> {
        let existing = || async {
            match self.load_deployment(&deployment.site, &deployment.id).await {
                Ok(_) => Ok(Some(DynamoError::DeploymentExists(deployment.id).into())),
                Err(StateError::DeploymentNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.put_new_in_site(
            &deployment.site,
            deployment_item(deployment)?,
            "create_deployment",
            existing,
        )
        .await
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
            Some(item) => Ok(from_item::<DeploymentRecord>(item)?.into()),
            None => Err(StateError::DeploymentNotFound(*id)),
        }
    }

    async fn list_deployments(&self, site: &SiteName) -> Result<Vec<Deployment>, StateError> {
        // Ids sort by creation time: backwards is newest first.
        self.site_items(site, DEPLOYMENT_SK_PREFIX, false)
            .await?
            .into_iter()
            .map(|item| from_item::<DeploymentRecord>(item).map(Deployment::from))
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
            && Deployment::activates(&self.load_deployment(site, id).await?.deployment.target, to);
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
                Ok(out) => {
                    let record: DeploymentRecord = from_item(out.attributes.unwrap_or_default())?;
                    return Ok(record.into());
                }
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
            if self
                .transact(self.plan_items(&snapshot, &stamps, &plan)?)
                .await?
            {
                // Logs go only once their record is gone: a decision that refuses after a
                // race (a rollback made the deployment live again) must keep its build log.
                // A failure here leaves log items nothing refers to, which cost only space.
                for id in &plan.deletes {
                    if let Err(error) = self.delete_log(id).await {
                        tracing::warn!(site = %site, deployment_id = %id, %error, "the deleted deployment's build log stays behind");
                    }
                }
                return Ok(plan.outcome);
            }
            tracing::debug!(site = %site, ?decision, attempt, "decision raced a concurrent change; reading again");
        }
        Err(Self::contended("commit"))
    }

    async fn list_previews(&self, site: &SiteName) -> Result<Vec<Preview>, StateError> {
        self.site_items(site, PREVIEW_SK_PREFIX, true)
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
