//! How the state stores keep sites, services, deployments and previews: SQLite's JSON bodies and DynamoDB's
//! attributes are these records' serde fields. They are spelled out rather than the domain
//! types serialized, so a domain rename never changes what is stored, and state written by
//! an earlier version still reads: a target's traffic is stored flat (`live_deployment`, the
//! stable deployment, as before traffic existed, plus `canary_deployment` and
//! `canary_weight`), so conditions can name each attribute.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{
    Canary, CanaryWeight, Deployment, DeploymentSource, DeploymentStatus, Preview, RecordedError,
    RepoLink, RoutingFlags, Site, Traffic,
};
use crate::names::{BranchName, DeploymentId, ServiceName, SiteName, TargetName};
use crate::service::{
    ApiRoute, Concurrency, FunctionConfigError, MemoryMb, Runtime, Service, ServiceSettings,
    TimeoutSeconds,
};

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

/// A service as stored: its settings flat, the handler as text (checked against the runtime
/// again when read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub site: SiteName,
    pub name: ServiceName,
    pub runtime: Option<Runtime>,
    pub handler: Option<String>,
    pub memory: MemoryMb,
    pub timeout: TimeoutSeconds,
    pub concurrency: Concurrency,
    pub route: Option<ApiRoute>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(flatten)]
    pub production: TrafficRecord,
}

impl From<&Service> for ServiceRecord {
    fn from(service: &Service) -> Self {
        let settings = &service.settings;
        Self {
            site: service.site.clone(),
            name: service.name.clone(),
            runtime: settings.runtime,
            handler: settings.handler.as_ref().map(|h| h.as_str().to_owned()),
            memory: settings.memory,
            timeout: settings.timeout,
            concurrency: settings.concurrency,
            route: service.route.clone(),
            created_at: service.created_at,
            production: service.production.into(),
        }
    }
}

impl TryFrom<ServiceRecord> for Service {
    type Error = FunctionConfigError;
    fn try_from(record: ServiceRecord) -> Result<Self, Self::Error> {
        Ok(Self {
            settings: ServiceSettings::new(
                record.runtime,
                record.handler.as_deref(),
                record.memory,
                record.timeout,
                record.concurrency,
            )?,
            site: record.site,
            name: record.name,
            route: record.route,
            created_at: record.created_at,
            production: record.production.into(),
        })
    }
}

/// A deployment as stored: its routing flags flat (`spa`, `clean_urls`), as a whole-record
/// write and a transition's one-attribute-per-flag update both store them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    pub site: SiteName,
    pub status: DeploymentStatus,
    pub target: TargetName,
    pub source: DeploymentSource,
    pub prebuilt: bool,
    pub built: bool,
    pub spa: bool,
    pub clean_urls: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub activated_at: Option<OffsetDateTime>,
    pub error: Option<RecordedError>,
    pub file_count: Option<u64>,
    pub bytes: Option<u64>,
}

impl From<&Deployment> for DeploymentRecord {
    fn from(deployment: &Deployment) -> Self {
        Self {
            id: deployment.id,
            site: deployment.site.clone(),
            status: deployment.status,
            target: deployment.target.clone(),
            source: deployment.source.clone(),
            prebuilt: deployment.prebuilt,
            built: deployment.built,
            spa: deployment.routing.spa,
            clean_urls: deployment.routing.clean_urls,
            created_at: deployment.created_at,
            updated_at: deployment.updated_at,
            activated_at: deployment.activated_at,
            error: deployment.error.clone(),
            file_count: deployment.file_count,
            bytes: deployment.bytes,
        }
    }
}

impl From<DeploymentRecord> for Deployment {
    fn from(record: DeploymentRecord) -> Self {
        Self {
            id: record.id,
            site: record.site,
            status: record.status,
            target: record.target,
            source: record.source,
            prebuilt: record.prebuilt,
            built: record.built,
            routing: RoutingFlags {
                spa: record.spa,
                clean_urls: record.clean_urls,
            },
            created_at: record.created_at,
            updated_at: record.updated_at,
            activated_at: record.activated_at,
            error: record.error,
            file_count: record.file_count,
            bytes: record.bytes,
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

    /// A deployment body as earlier versions stored it: routing flags flat, `source` the
    /// zip's location or the commit, and `activated_at` absent before it existed.
    #[test]
    fn deployments_stored_by_an_earlier_version_still_read_and_round_trip() {
        let archive = r#"{"id":"01jd0000000000000000000000","site":"docs","status":"live",
            "target":"production","source":{"bucket":"source","key":"uploads/docs/01jd0000000000000000000000.zip"},
            "prebuilt":false,"built":true,"spa":true,"clean_urls":false,
            "created_at":"2026-12-01T10:00:00Z","updated_at":"2026-12-01T10:02:00Z",
            "activated_at":"2026-12-01T10:02:00Z","error":null,"file_count":12,"bytes":3456}"#;
        let git = r#"{"id":"01je0000000000000000000000","site":"docs","status":"failed",
            "target":"pr-12","source":{"repo":"acme/docs","clone_url":"https://github.com/acme/docs.git",
            "sha":"0123456789abcdef0123456789abcdef01234567","branch":"feature-x","pull_request":12,
            "root":null},"prebuilt":false,"built":false,"spa":false,"clean_urls":true,
            "created_at":"2026-12-01T10:00:00Z","updated_at":"2026-12-01T10:01:00Z",
            "error":{"name":"BuildFailed","cause":"npm run build exited 1"},"file_count":null,"bytes":null}"#;

        let read = |stored: &str| -> Deployment {
            serde_json::from_str::<DeploymentRecord>(stored)
                .unwrap()
                .into()
        };
        let live = read(archive);
        assert_eq!(live.status, DeploymentStatus::Live);
        assert_eq!(
            live.routing,
            RoutingFlags {
                spa: true,
                clean_urls: false
            }
        );
        assert_eq!(
            live.source.archive().map(|a| a.key.as_str()),
            Some("uploads/docs/01jd0000000000000000000000.zip")
        );
        assert!(live.activated_at.is_some());
        assert_eq!((live.file_count, live.bytes), (Some(12), Some(3456)));

        let failed = read(git);
        assert_eq!(failed.target.as_str(), "pr-12");
        assert_eq!(failed.source.git().and_then(|g| g.pull_request), Some(12));
        assert!(failed.routing.clean_urls && !failed.routing.spa);
        assert_eq!(failed.activated_at, None);
        assert_eq!(
            failed.error.as_ref().map(|e| e.name.as_str()),
            Some("BuildFailed")
        );

        for (stored, deployment) in [(archive, live), (git, failed)] {
            let mut expected: serde_json::Value = serde_json::from_str(stored).unwrap();
            // A missing `activated_at` is written back as null.
            expected
                .as_object_mut()
                .unwrap()
                .entry("activated_at")
                .or_insert(serde_json::Value::Null);
            let written = serde_json::to_value(DeploymentRecord::from(&deployment)).unwrap();
            assert_eq!(written, expected);
            assert_eq!(read(&written.to_string()), deployment);
        }
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
