//! The build log's items: lines appended with their counter in one conditional
//! transaction per chunk (`log_chunks`), and a deployment's log deleted in batches, its
//! unprocessed items retried with backoff.

use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, Put, TransactWriteItem, WriteRequest};
use slipway_core::names::DeploymentId;
use slipway_core::ports::{LogLine, StateError};
use time::OffsetDateTime;

use super::expressions::Placeholders;
use super::items::{key, log_counter_key, log_pk, log_sk, s, s_number, to_item};
use super::{
    build_failed, malformed, request_failed, DynamoError, DynamoState, BATCH_WRITE_MAX, LAST_SEQ,
    LOG_BYTES_PER_TRANSACTION, LOG_LINES_PER_TRANSACTION, MAX_ATTEMPTS, PARTITION_KEY, SORT_KEY,
};
use crate::config;

impl DynamoState {
    /// Writes one chunk of log lines and the counter in one transaction.
    pub(super) async fn append_log_chunk(
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
    pub(super) async fn delete_log(&self, id: &DeploymentId) -> Result<(), StateError> {
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

/// Exponential backoff for BatchWriteItem's unprocessed items, within the SDK's bounds.
fn unprocessed_backoff(attempt: u32) -> Duration {
    config::INITIAL_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(2).min(16))
        .min(config::MAX_BACKOFF)
}

/// Consecutive runs of lines that fit one transaction each.
pub(super) fn log_chunks(lines: &[String]) -> Vec<&[String]> {
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
}
