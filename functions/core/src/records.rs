//! How the state stores keep sites and previews: SQLite's JSON bodies and DynamoDB's
//! attributes are these records' serde fields. They are spelled out rather than the domain
//! types serialized, so a domain rename never changes what is stored, and state written by
//! an earlier version still reads: a target's traffic is stored flat (`live_deployment`, the
//! stable deployment, as before traffic existed, plus `canary_deployment` and
//! `canary_weight`), so conditions can name each attribute.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Canary, CanaryWeight, Preview, RepoLink, RoutingFlags, Site, Traffic};
use crate::names::{BranchName, DeploymentId, SiteName, TargetName};

/// A [`Traffic`] as three optional attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficRecord {
    pub live_deployment: Option<DeploymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_deployment: Option<DeploymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<CanaryWeight>,
}

impl TrafficRecord {
    /// The attribute names, for stores whose conditions name them.
    pub const ATTRIBUTES: [&'static str; 3] =
        ["live_deployment", "canary_deployment", "canary_weight"];
}

impl From<Option<Traffic>> for TrafficRecord {
    fn from(traffic: Option<Traffic>) -> Self {
        let canary = traffic.and_then(|t| t.canary);
        Self {
            live_deployment: traffic.map(|t| t.stable),
            canary_deployment: canary.map(|c| c.deployment),
            canary_weight: canary.map(|c| c.weight),
        }
    }
}

impl From<TrafficRecord> for Option<Traffic> {
    fn from(record: TrafficRecord) -> Self {
        let canary = match (record.canary_deployment, record.canary_weight) {
            (Some(deployment), Some(weight)) => Some(Canary { deployment, weight }),
            _ => None,
        };
        record
            .live_deployment
            .map(|stable| Traffic { stable, canary })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub name: SiteName,
    pub spa: bool,
    pub clean_urls: bool,
    pub retain: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(flatten)]
    pub production: TrafficRecord,
    #[serde(default)]
    pub repo: Option<RepoLink>,
}

impl From<&Site> for SiteRecord {
    fn from(site: &Site) -> Self {
        Self {
            name: site.name.clone(),
            spa: site.routing.spa,
            clean_urls: site.routing.clean_urls,
            retain: site.retain,
            created_at: site.created_at,
            production: site.production.into(),
            repo: site.repo.clone(),
        }
    }
}

impl From<SiteRecord> for Site {
    fn from(record: SiteRecord) -> Self {
        Self {
            name: record.name,
            routing: RoutingFlags {
                spa: record.spa,
                clean_urls: record.clean_urls,
            },
            retain: record.retain,
            created_at: record.created_at,
            production: record.production.into(),
            repo: record.repo,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRecord {
    pub site: SiteName,
    pub target: TargetName,
    pub branch: Option<BranchName>,
    pub pull_request: Option<u64>,
    #[serde(flatten)]
    pub traffic: TrafficRecord,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub removed_at: Option<OffsetDateTime>,
}

impl From<&Preview> for PreviewRecord {
    fn from(preview: &Preview) -> Self {
        Self {
            site: preview.site.clone(),
            target: preview.target.clone(),
            branch: preview.branch.clone(),
            pull_request: preview.pull_request,
            traffic: preview.traffic.into(),
            updated_at: preview.updated_at,
            removed_at: preview.removed_at,
        }
    }
}

impl From<PreviewRecord> for Preview {
    fn from(record: PreviewRecord) -> Self {
        Self {
            site: record.site,
            target: record.target,
            branch: record.branch,
            pull_request: record.pull_request,
            traffic: record.traffic.into(),
            updated_at: record.updated_at,
            removed_at: record.removed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_stored_before_traffic_existed_still_reads() {
        let stored = r#"{"name":"docs","spa":true,"clean_urls":false,"retain":10,
            "created_at":"2026-12-01T10:00:00Z","live_deployment":"01jd0000000000000000000000","repo":null}"#;
        let site: Site = serde_json::from_str::<SiteRecord>(stored).unwrap().into();
        let live = DeploymentId::parse("01jd0000000000000000000000").unwrap();
        assert_eq!(site.production, Some(Traffic::all(live)));
        assert!(site.routing.spa);
    }

    #[test]
    fn traffic_round_trips_with_and_without_a_canary() {
        let stable = DeploymentId::parse("01jd0000000000000000000000").unwrap();
        let newer = DeploymentId::parse("01je0000000000000000000000").unwrap();
        let canary = Canary {
            deployment: newer,
            weight: CanaryWeight::try_from(10).unwrap(),
        };
        for traffic in [
            None,
            Some(Traffic::all(stable)),
            Some(Traffic {
                stable,
                canary: Some(canary),
            }),
        ] {
            let record = TrafficRecord::from(traffic);
            let json = serde_json::to_value(record).unwrap();
            let back: TrafficRecord = serde_json::from_value(json).unwrap();
            assert_eq!(Option::<Traffic>::from(back), traffic);
        }
        let json = serde_json::to_value(TrafficRecord::from(Some(Traffic::all(stable)))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"live_deployment": "01jd0000000000000000000000"})
        );
    }
}
