//! Names and ids that appear in host names, object keys and URLs.
//! They are parsed once at the edge of the system; everything inside trusts them.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("site name must be 1 to {max} characters long", max = SiteName::MAX_LEN)]
    SiteNameLength,
    #[error("site name may only contain lowercase letters, digits and single hyphens, and must start and end with a letter or digit: {0:?}")]
    SiteNameCharacters(String),
    #[error("deployment id must be 26 lowercase Crockford base32 characters: {0:?}")]
    DeploymentId(String),
}

/// A site's name: one DNS label, so `{site}.example.com` is always a valid host.
/// Double hyphens are reserved because `--` separates preview targets from the site in host names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteName(String);

impl SiteName {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(NameError::SiteNameLength);
        }
        let allowed = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let bad_edges = raw.starts_with('-') || raw.ends_with('-') || raw.contains("--");
        if !allowed || bad_edges {
            return Err(NameError::SiteNameCharacters(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SiteName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SiteName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SiteName> for String {
    fn from(value: SiteName) -> Self {
        value.0
    }
}

/// A deployment id: a ULID in lowercase. Sorting ids sorts deployments by creation time,
/// and the alphabet is safe in host names (`{deployment}--{site}.example.com`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeploymentId(ulid::Ulid);

static LAST_ID: Mutex<Option<ulid::Ulid>> = Mutex::new(None);

impl DeploymentId {
    /// A new id, strictly greater than every id this process made before,
    /// so two deploys started in the same millisecond still order by start.
    pub fn generate() -> Self {
        let mut last = LAST_ID
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = ulid::Ulid::new();
        let next = match *last {
            Some(previous) if fresh <= previous => previous.increment().unwrap_or(fresh),
            _ => fresh,
        };
        *last = Some(next);
        Self(next)
    }

    /// A deterministic id for an event: sortable by the event's time, unique by `entropy`
    /// (a hash of what identifies the event), so a repeated event yields the same id.
    pub fn from_event(timestamp_ms: u64, entropy: u128) -> Self {
        Self(ulid::Ulid::from_parts(timestamp_ms, entropy))
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let well_formed = raw.len() == ulid::ULID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)));
        if !well_formed {
            return Err(NameError::DeploymentId(raw.to_owned()));
        }
        ulid::Ulid::from_string(raw)
            .map(Self)
            .map_err(|_| NameError::DeploymentId(raw.to_owned()))
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

impl FromStr for DeploymentId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DeploymentId> for String {
    fn from(value: DeploymentId) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_follow_dns_label_rules() {
        for good in ["a", "docs", "my-site-2", &"a".repeat(63)] {
            assert!(SiteName::parse(good).is_ok(), "{good} should parse");
        }
        for bad in [
            "",
            "-docs",
            "docs-",
            "Docs",
            "my_site",
            "a.b",
            "pr-1--docs",
            "../x",
            &"a".repeat(64),
        ] {
            assert!(SiteName::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn deployment_ids_are_lowercase_sortable_and_round_trip() {
        let first = DeploymentId::generate();
        let second = DeploymentId::generate();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
        let text = first.to_string();
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(DeploymentId::parse(&text).unwrap(), first);
        assert!(DeploymentId::parse(&text.to_ascii_uppercase()).is_err());
        assert!(DeploymentId::parse("not-an-id").is_err());
        assert!(DeploymentId::parse("../../../../../../../../etc").is_err());
    }

    #[test]
    fn names_deserialize_through_parse() {
        let ok: SiteName = serde_json::from_str("\"docs\"").unwrap();
        assert_eq!(ok.as_str(), "docs");
        assert!(serde_json::from_str::<SiteName>("\"Bad Name\"").is_err());
    }
}
