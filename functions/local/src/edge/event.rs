//! The shapes CloudFront Functions exchange with router.js: the viewer-request event, the
//! request (built from an HTTP request as CloudFront builds it), a generated response, and
//! the query string, header and cookie fields they carry.

use std::collections::BTreeMap;

use http::header::COOKIE;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

/// A query string parameter, header or cookie, as CloudFront Functions represent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub value: String,
    /// Set-Cookie attributes, in responses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// Every value, when the name repeats.
    #[serde(
        default,
        rename = "multiValue",
        skip_serializing_if = "Option::is_none"
    )]
    pub multi_value: Option<Vec<FieldValue>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

impl Field {
    /// Every (value, attributes) pair: `multiValue` wins over `value` when present, as in
    /// CloudFront.
    pub(super) fn all(&self) -> Vec<(&str, Option<&str>)> {
        match &self.multi_value {
            Some(all) if !all.is_empty() => all
                .iter()
                .map(|v| (v.value.as_str(), v.attributes.as_deref()))
                .collect(),
            _ => vec![(self.value.as_str(), self.attributes.as_deref())],
        }
    }
}

pub type Fields = BTreeMap<String, Field>;

fn push_field(fields: &mut Fields, name: &str, value: &str) {
    let value = value.to_owned();
    match fields.get_mut(name) {
        Some(field) => {
            let first = FieldValue {
                value: field.value.clone(),
                attributes: None,
            };
            field
                .multi_value
                .get_or_insert_with(|| vec![first])
                .push(FieldValue {
                    value,
                    attributes: None,
                });
        }
        None => {
            let field = Field {
                value,
                attributes: None,
                multi_value: None,
            };
            fields.insert(name.to_owned(), field);
        }
    }
}

/// The `request` of a viewer-request event, and what the router returns to forward it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRequest {
    pub method: String,
    /// The path as received, still percent-encoded.
    pub uri: String,
    #[serde(default)]
    pub querystring: Fields,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Fields,
}

impl EdgeRequest {
    /// The request as CloudFront hands it to a function: lowercase header names, cookies
    /// split out of the headers, raw query string pairs.
    pub fn from_http(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let mut querystring = Fields::new();
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            push_field(&mut querystring, name, value);
        }
        let mut fields = Fields::new();
        let mut cookies = Fields::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            if name == COOKIE {
                for cookie in value.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
                    push_field(&mut cookies, name, value);
                }
            } else {
                push_field(&mut fields, name.as_str(), &value);
            }
        }
        EdgeRequest {
            method: method.as_str().to_owned(),
            uri: uri.path().to_owned(),
            querystring,
            headers: fields,
            cookies,
        }
    }
}

/// A response the router generated itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EdgeResponse {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(default, rename = "statusDescription")]
    pub status_description: Option<String>,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Fields,
    #[serde(default)]
    pub body: Option<ResponseBody>,
}

/// cloudfront-js-2.0 takes the body as `{encoding, data}` or, as a shortcut, a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ResponseBody {
    Text(String),
    Encoded { encoding: String, data: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RouterOutcome {
    /// Checked first: only a response has `statusCode`.
    Respond(EdgeResponse),
    Forward(EdgeRequest),
}

#[derive(Serialize)]
pub(super) struct ViewerRequestEvent<'a> {
    pub(super) version: &'static str,
    pub(super) context: EventContext,
    pub(super) viewer: Viewer,
    pub(super) request: &'a EdgeRequest,
}

#[derive(Serialize)]
pub(super) struct EventContext {
    #[serde(rename = "eventType")]
    pub(super) event_type: &'static str,
    #[serde(rename = "requestId")]
    pub(super) request_id: String,
}

#[derive(Serialize)]
pub(super) struct Viewer {
    pub(super) ip: String,
}
