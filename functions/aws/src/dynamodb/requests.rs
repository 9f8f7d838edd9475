//! The DynamoDB calls the store is made of: a consistent GetItem, a Query read page after
//! page, and TransactWriteItems with its conditional members (update, put, check), where a
//! cancelled transaction is a lost race rather than a failure.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use std::future::Future;

use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use slipway_core::names::SiteName;
use slipway_core::ports::StateError;

use super::expressions::Placeholders;
use super::items::site_key;
use super::{build_failed, request_failed, DynamoState, Item, MAX_ATTEMPTS};

impl DynamoState {
    /// Writes `item`, a new record of `site`, in one transaction with a check that the site
    /// exists. When the transaction does not go through, `existing` names why from what is
    /// stored: `Some(error)` when the record exists, `None` when it does not (a lost race:
    /// try again), or the site's own error.
    pub(super) async fn put_new_in_site<F, Fut>(
        &self,
        site: &SiteName,
        item: Item,
        operation: &'static str,
        existing: F,
    ) -> Result<(), StateError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<StateError>, StateError>>,
    {
        let mut site_check = Placeholders::default();
        let site_condition = site_check.exists();
        let check = self.check_item(site_key(site), &site_check, site_condition)?;
        let mut fresh = Placeholders::default();
        let fresh_condition = fresh.not_exists();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(fresh_condition)
            .set_expression_attribute_names(fresh.names())
            .build()
            .map_err(build_failed)?;
        let items = vec![check, TransactWriteItem::builder().put(put).build()];
        for attempt in 1..=MAX_ATTEMPTS {
            if self.transact(items.clone()).await? {
                return Ok(());
            }
            if let Some(exists) = existing().await? {
                return Err(exists);
            }
            tracing::debug!(%site, attempt, operation, "create raced; trying again");
        }
        Err(Self::contended(operation))
    }

    pub(super) async fn get_item(&self, key: Item) -> Result<Option<Item>, StateError> {
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

    /// Every item a Query matches, page after page.
    pub(super) async fn query_all(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Item>, StateError> {
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
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StateError> {
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
    pub(super) fn update_item(
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
    pub(super) fn put_item(
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
    pub(super) fn check_item(
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
