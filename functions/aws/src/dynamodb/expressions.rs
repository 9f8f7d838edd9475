//! Expressions: [`Placeholders`] for attribute names and values, the conditions built with
//! them (status in a set, unchanged since read, stamps as stored, existence) and the
//! updates, with the attributes a status move or a patch writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use slipway_core::model::{Deployment, DeploymentStatus};
use slipway_core::ports::{DeploymentPatch, StateError};
use time::OffsetDateTime;

use super::items::{encoded, s, timestamp};
use super::{
    Item, ACTIVATED_AT, BUILT, BYTES, CLEAN_URLS, ERROR, FILE_COUNT, PARTITION_KEY, SPA, STATUS,
    UPDATED_AT,
};

/// The placeholders of one expression set. Every attribute name goes through one, since
/// some of ours (`status`, `bytes`, ...) are DynamoDB reserved words.
#[derive(Default)]
pub(super) struct Placeholders {
    names: HashMap<String, String>,
    values: Item,
}

impl Placeholders {
    pub(super) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    pub(super) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// DynamoDB refuses an empty value map, so none at all when there are no values.
    pub(super) fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    pub(super) fn status_in(&mut self, statuses: &[DeploymentStatus]) -> String {
        let values: Vec<String> = statuses
            .iter()
            .map(|st| self.value(s(st.as_str())))
            .collect();
        format!("{} IN ({})", self.name(STATUS), values.join(", "))
    }

    /// The deployment is exactly as it was read: same status, no write since.
    pub(super) fn unchanged(&mut self, deployment: &Deployment, stamp: &AttributeValue) -> String {
        let status = self.name(STATUS);
        let status_value = self.value(s(deployment.status.as_str()));
        let updated = self.name(UPDATED_AT);
        let updated_value = self.value(stamp.clone());
        format!("{status} = {status_value} AND {updated} = {updated_value}")
    }

    /// The item exists and each of `names` is as stored in `stamps` (or still absent); a
    /// missing item when `stamps` is None.
    pub(super) fn stamps_are(&mut self, names: &[&str], stamps: Option<&Item>) -> String {
        let Some(stamps) = stamps else {
            return self.not_exists();
        };
        let mut conditions = vec![self.exists()];
        for attribute in names {
            let name = self.name(attribute);
            conditions.push(match stamps.get(*attribute) {
                Some(value) => format!("{name} = {}", self.value(value.clone())),
                None => format!("attribute_not_exists({name})"),
            });
        }
        conditions.join(" AND ")
    }

    pub(super) fn exists(&mut self) -> String {
        format!("attribute_exists({})", self.name(PARTITION_KEY))
    }

    pub(super) fn not_exists(&mut self) -> String {
        format!("attribute_not_exists({})", self.name(PARTITION_KEY))
    }

    /// `SET a = :x, b = :y`.
    pub(super) fn set(&mut self, fields: Vec<(String, AttributeValue)>) -> String {
        let assignments: Vec<String> = fields
            .into_iter()
            .map(|(name, value)| format!("{} = {}", self.name(&name), self.value(value)))
            .collect();
        format!("SET {}", assignments.join(", "))
    }

    /// `SET a = :x REMOVE b`: `names` take the values `fields` has for them, the rest go.
    pub(super) fn set_or_remove(&mut self, names: &[&str], mut fields: Item) -> String {
        let (set, removed): (Vec<&str>, Vec<&str>) =
            names.iter().partition(|name| fields.contains_key(**name));
        let set: Vec<(String, AttributeValue)> = set
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), fields.remove(name)?)))
            .collect();
        let removed: Vec<String> = removed.into_iter().map(|name| self.name(name)).collect();
        match (set.is_empty(), removed.is_empty()) {
            (false, true) => self.set(set),
            (true, _) => format!("REMOVE {}", removed.join(", ")),
            (false, false) => format!("{} REMOVE {}", self.set(set), removed.join(", ")),
        }
    }
}

/// The attributes a status move writes; `activated_at` too when `activation` says so.
pub(super) fn move_fields(
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

/// The attributes a patch writes: only what it sets (an unset field keeps its value), named
/// as [`slipway_core::records::DeploymentRecord`] stores them.
pub(super) fn patch_fields(
    patch: DeploymentPatch,
) -> Result<Vec<(String, AttributeValue)>, StateError> {
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
        // Stored flat: one attribute per flag.
        fields.push((SPA.to_owned(), AttributeValue::Bool(routing.spa)));
        fields.push((
            CLEAN_URLS.to_owned(),
            AttributeValue::Bool(routing.clean_urls),
        ));
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

#[cfg(test)]
mod tests {
    use slipway_core::model::{RecordedError, RoutingFlags};
    use slipway_testkit::state_contract::deployment;

    use super::super::items::deployment_item;
    use super::*;

    /// A transition's update writes the attributes, and values, that a whole-record write of
    /// the moved and patched deployment stores.
    #[test]
    fn a_transition_writes_what_a_whole_record_write_stores() {
        let mut moved = deployment("docs");
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let patch = DeploymentPatch {
            built: Some(true),
            routing: Some(RoutingFlags {
                spa: true,
                clean_urls: true,
            }),
            error: Some(RecordedError {
                name: "BuildFailed".to_owned(),
                cause: "exit 1".to_owned(),
            }),
            file_count: Some(3),
            bytes: Some(1024),
        };
        moved.status = DeploymentStatus::Building;
        moved.updated_at = now;
        moved.activated_at = Some(now);
        moved.built = true;
        moved.routing = patch.routing.unwrap();
        moved.error = patch.error.clone();
        moved.file_count = patch.file_count;
        moved.bytes = patch.bytes;
        let stored = deployment_item(&moved).unwrap();
        let mut fields = move_fields(DeploymentStatus::Building, now, true).unwrap();
        fields.extend(patch_fields(patch).unwrap());
        assert_eq!(fields.len(), 9);
        for (name, value) in fields {
            assert_eq!(stored.get(&name), Some(&value), "attribute {name}");
        }
    }
}
