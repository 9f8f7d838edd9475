//! Records ↔ items: each record's serde fields as typed attributes and back
//! (`to_item`/`from_item`, `to_attribute`/`from_attribute`), the whole items of sites,
//! deployments and previews, and the keys of every kind of item in the table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use slipway_core::model::{Deployment, Preview, Site};
use slipway_core::names::{DeploymentId, SiteName, TargetName};
use slipway_core::ports::StateError;
use slipway_core::records::{DeploymentRecord, PreviewRecord, SiteRecord};
use time::OffsetDateTime;

use super::{
    malformed, DynamoError, Item, DELIVERY_SK, DEPLOYMENT_SK_PREFIX, GSI1_PARTITION_KEY,
    GSI1_SORT_KEY, LOG_COUNTER_SK, PARTITION_KEY, PREVIEW_SK_PREFIX, SITES_GSI1PK, SITE_SK,
    SORT_KEY,
};

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn s_number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn site_pk(site: &SiteName) -> String {
    format!("SITE#{site}")
}

pub(super) fn deployment_sk(id: &DeploymentId) -> String {
    format!("{DEPLOYMENT_SK_PREFIX}{id}")
}

fn preview_sk(target: &TargetName) -> String {
    format!("{PREVIEW_SK_PREFIX}{target}")
}

pub(super) fn log_pk(id: &DeploymentId) -> String {
    format!("LOG#{id}")
}

/// Zero-padded to u64's width, so the sort key orders lines numerically.
pub(super) fn log_sk(seq: u64) -> String {
    format!("LINE#{seq:020}")
}

pub(super) fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(pk)),
        (SORT_KEY.to_owned(), s(sk)),
    ])
}

pub(super) fn site_key(site: &SiteName) -> Item {
    key(site_pk(site), SITE_SK.to_owned())
}

pub(super) fn deployment_key(site: &SiteName, id: &DeploymentId) -> Item {
    key(site_pk(site), deployment_sk(id))
}

pub(super) fn preview_key(site: &SiteName, target: &TargetName) -> Item {
    key(site_pk(site), preview_sk(target))
}

pub(super) fn log_counter_key(id: &DeploymentId) -> Item {
    key(log_pk(id), LOG_COUNTER_SK.to_owned())
}

pub(super) fn delivery_key(delivery: &str) -> Item {
    key(format!("HOOK#{delivery}"), DELIVERY_SK.to_owned())
}

fn to_attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(text) => AttributeValue::S(text),
        Value::Array(values) => AttributeValue::L(values.into_iter().map(to_attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_attribute(v)))
                .collect(),
        ),
    }
}

fn from_attribute(name: &str, value: AttributeValue) -> Result<Value, DynamoError> {
    let unexpected = |kind| DynamoError::UnexpectedAttribute {
        name: name.to_owned(),
        kind,
    };
    Ok(match value {
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::N(n) => {
            Value::Number(parse_number(&n).ok_or_else(|| unexpected("non-numeric N"))?)
        }
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(values) => Value::Array(
            values
                .into_iter()
                .map(|v| from_attribute(name, v))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k.clone(), from_attribute(&k, v)?)))
                .collect::<Result<_, DynamoError>>()?,
        ),
        AttributeValue::B(_) => return Err(unexpected("binary")),
        AttributeValue::Bs(_) => return Err(unexpected("binary set")),
        AttributeValue::Ns(_) => return Err(unexpected("number set")),
        AttributeValue::Ss(_) => return Err(unexpected("string set")),
        _ => return Err(unexpected("unknown")),
    })
}

fn parse_number(n: &str) -> Option<Number> {
    n.parse::<u64>()
        .map(Number::from)
        .or_else(|_| n.parse::<i64>().map(Number::from))
        .ok()
        .or_else(|| n.parse::<f64>().ok().and_then(Number::from_f64))
}

/// A record's serde fields as attributes; `None`s are left out.
pub(super) fn to_item<T: Serialize>(record: &T) -> Result<Item, StateError> {
    match serde_json::to_value(record).map_err(malformed)? {
        Value::Object(fields) => Ok(fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, to_attribute(v)))
            .collect()),
        _ => Err(malformed(serde::ser::Error::custom(
            "a record must serialize to an object",
        ))),
    }
}

pub(super) fn from_item<T: DeserializeOwned>(mut item: Item) -> Result<T, StateError> {
    for key in [PARTITION_KEY, SORT_KEY, GSI1_PARTITION_KEY, GSI1_SORT_KEY] {
        item.remove(key);
    }
    let fields = item
        .into_iter()
        .map(|(k, v)| Ok((k.clone(), from_attribute(&k, v)?)))
        .collect::<Result<Map<String, Value>, DynamoError>>()?;
    serde_json::from_value(Value::Object(fields)).map_err(malformed)
}

pub(super) fn site_item(site: &Site) -> Result<Item, StateError> {
    let mut item = to_item(&SiteRecord::from(site))?;
    item.extend(site_key(&site.name));
    item.insert(GSI1_PARTITION_KEY.to_owned(), s(SITES_GSI1PK));
    item.insert(GSI1_SORT_KEY.to_owned(), s(site.name.as_str()));
    Ok(item)
}

pub(super) fn deployment_item(deployment: &Deployment) -> Result<Item, StateError> {
    let mut item = to_item(&DeploymentRecord::from(deployment))?;
    item.extend(deployment_key(&deployment.site, &deployment.id));
    item.insert(
        GSI1_PARTITION_KEY.to_owned(),
        s(deployment_sk(&deployment.id)),
    );
    item.insert(GSI1_SORT_KEY.to_owned(), s(site_pk(&deployment.site)));
    Ok(item)
}

pub(super) fn preview_item(preview: &Preview) -> Result<Item, StateError> {
    let mut item = to_item(&PreviewRecord::from(preview))?;
    item.extend(preview_key(&preview.site, &preview.target));
    Ok(item)
}

/// One attribute of a value as serde encodes it (the same text a whole-record write stores).
pub(super) fn encoded<T: Serialize>(value: &T) -> Result<AttributeValue, StateError> {
    Ok(to_attribute(
        serde_json::to_value(value).map_err(malformed)?,
    ))
}

pub(super) fn timestamp(at: OffsetDateTime) -> Result<AttributeValue, StateError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map(AttributeValue::S)
        .map_err(|e| malformed(serde::ser::Error::custom(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sort_keys_order_numerically() {
        assert!(log_sk(9) < log_sk(10));
        assert!(log_sk(10) < log_sk(u64::MAX));
        // The counter shares the partition but sorts outside every line's range.
        assert!(LOG_COUNTER_SK > log_sk(u64::MAX).as_str());
    }

    #[test]
    fn numbers_round_trip_through_attributes() {
        for n in ["0", "18446744073709551615", "-3", "1.5"] {
            let back = from_attribute("n", AttributeValue::N(n.to_owned())).unwrap();
            assert_eq!(back.to_string(), n);
        }
        assert!(from_attribute("n", AttributeValue::N("x".into())).is_err());
        assert!(from_attribute("b", AttributeValue::Ss(vec![])).is_err());
    }
}
