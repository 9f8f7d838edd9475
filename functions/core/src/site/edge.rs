//! What the edge's key-value store holds: one key per host name, whose value names the
//! version to serve and the site's routing flags. `infra/edge/router.js` reads this format.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Deployment, RoutingFlags};
use crate::names::{DeploymentId, ServiceName, SiteName, TargetName};
use crate::ports::{KeyValueStore, Serving, SwitchError, TrafficSwitch};

/// The host names the edge answers, which are also the key-value store's keys:
/// - production: `{site}.{site_domain}`;
/// - a preview: `{target}--{site}.{preview_domain}`;
/// - one deployment, until it is pruned: `{deployment}--{site}.{preview_domain}`.
///
/// Locally both domains are `localhost`, so sites answer at `http://{site}.localhost:{port}/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosts {
    pub site_domain: String,
    pub preview_domain: String,
    /// Services answer at `{service}--{site}.{service_domain}`, a domain no site, preview or
    /// deployment host shares. None where services get their addresses elsewhere (on AWS,
    /// from API Gateway).
    #[serde(default)]
    pub service_domain: Option<String>,
}

impl Hosts {
    /// Both kinds of host under one domain, as `slipway dev` has them.
    /// Services under `svc.{domain}` (`slipway dev`: `{service}--{site}.svc.localhost`).
    pub fn single(domain: &str) -> Self {
        Self {
            site_domain: domain.to_owned(),
            preview_domain: domain.to_owned(),
            service_domain: Some(format!("svc.{domain}")),
        }
    }

    pub fn production(&self, site: &SiteName) -> String {
        format!("{site}.{}", self.site_domain)
    }

    pub fn preview(&self, target: &TargetName, site: &SiteName) -> String {
        format!("{target}--{site}.{}", self.preview_domain)
    }

    /// What serves `target`: the production host or the preview's.
    pub fn target(&self, target: &TargetName, site: &SiteName) -> String {
        if target.is_production() {
            self.production(site)
        } else {
            self.preview(target, site)
        }
    }

    pub fn deployment(&self, deployment: &DeploymentId, site: &SiteName) -> String {
        format!("{deployment}--{site}.{}", self.preview_domain)
    }

    pub fn service(&self, service: &ServiceName, site: &SiteName) -> Option<String> {
        let domain = self.service_domain.as_ref()?;
        Some(format!("{service}--{site}.{domain}"))
    }
}

/// Public URLs: a template with `{host}` in place of the host name, such as
/// `https://{host}/` on AWS or `http://{host}:8788/` in `slipway dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("URL template {0:?} must start with http:// or https:// and contain {{host}}")]
pub struct UrlTemplateError(String);

impl UrlTemplate {
    pub fn parse(raw: &str) -> Result<Self, UrlTemplateError> {
        let scheme = raw.starts_with("https://") || raw.starts_with("http://");
        if !scheme || !raw.contains("{host}") {
            return Err(UrlTemplateError(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn url(&self, host: &str) -> String {
        self.0.replace("{host}", host)
    }
}

/// Where targets and deployments answer: their host names, and the public URLs made of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub hosts: Hosts,
    pub urls: UrlTemplate,
}

impl Addresses {
    pub fn production_url(&self, site: &SiteName) -> String {
        self.urls.url(&self.hosts.production(site))
    }

    pub fn preview_url(&self, target: &TargetName, site: &SiteName) -> String {
        self.urls.url(&self.hosts.preview(target, site))
    }

    pub fn target_url(&self, target: &TargetName, site: &SiteName) -> String {
        self.urls.url(&self.hosts.target(target, site))
    }

    pub fn deployment_url(&self, deployment: &DeploymentId, site: &SiteName) -> String {
        self.urls.url(&self.hosts.deployment(deployment, site))
    }

    pub fn service_url(&self, service: &ServiceName, site: &SiteName) -> Option<String> {
        Some(self.urls.url(&self.hosts.service(service, site)?))
    }
}

/// Sites' traffic switch: one key-value write per host, which the edge's router reads on
/// every request. The edge switches whole, so a canary's share goes to the stable version.
pub struct KvsSwitch {
    routes: Arc<dyn KeyValueStore>,
    hosts: Hosts,
}

impl KvsSwitch {
    pub fn new(routes: Arc<dyn KeyValueStore>, hosts: Hosts) -> Self {
        Self { routes, hosts }
    }
}

#[async_trait]
impl TrafficSwitch for KvsSwitch {
    async fn expose(&self, deployment: &Deployment) -> Result<(), SwitchError> {
        let host = self.hosts.deployment(&deployment.id, &deployment.site);
        let value = kvs_value(&deployment.site, &deployment.id, deployment.routing);
        Ok(self.routes.put(&host, &value).await?)
    }

    async fn switch(
        &self,
        site: &SiteName,
        target: &TargetName,
        serving: Option<&Serving>,
    ) -> Result<(), SwitchError> {
        let host = self.hosts.target(target, site);
        match serving {
            Some(Serving { stable, .. }) => {
                let value = kvs_value(site, &stable.id, stable.routing);
                self.routes.put(&host, &value).await?;
            }
            None => self.routes.delete(&host).await?,
        }
        Ok(())
    }

    async fn retire(&self, deployment: &Deployment) -> Result<(), SwitchError> {
        let host = self.hosts.deployment(&deployment.id, &deployment.site);
        Ok(self.routes.delete(&host).await?)
    }
}

/// `{site}/{deployment}`, then `;` and one letter per flag when any is set:
/// `s` for SPA fallback, `c` for clean URLs. Far below the 1 KB value limit.
pub fn kvs_value(site: &SiteName, deployment: &DeploymentId, flags: RoutingFlags) -> String {
    let mut value = format!("{site}/{deployment}");
    if flags.spa || flags.clean_urls {
        value.push(';');
        if flags.spa {
            value.push('s');
        }
        if flags.clean_urls {
            value.push('c');
        }
    }
    value
}

/// The hosting-bucket prefix of a deployment's files, with its trailing slash.
pub fn deployment_prefix(site: &SiteName, deployment: &DeploymentId) -> String {
    format!("{site}/{deployment}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvs_values_carry_version_and_flags() {
        let site = SiteName::parse("docs").unwrap();
        let id = DeploymentId::parse("01jd0000000000000000000000").unwrap();
        assert_eq!(
            kvs_value(&site, &id, RoutingFlags::default()),
            "docs/01jd0000000000000000000000"
        );
        let both = RoutingFlags {
            spa: true,
            clean_urls: true,
        };
        assert_eq!(
            kvs_value(&site, &id, both),
            "docs/01jd0000000000000000000000;sc"
        );
        let hosts = Hosts {
            site_domain: "sites.example.com".into(),
            preview_domain: "preview.example.com".into(),
            service_domain: Some("services.example.com".into()),
        };
        let api = ServiceName::parse("api").unwrap();
        assert_eq!(
            hosts.service(&api, &site).as_deref(),
            Some("api--docs.services.example.com")
        );
        assert_eq!(
            Hosts::single("localhost").service(&api, &site).as_deref(),
            Some("api--docs.svc.localhost")
        );
        assert_eq!(hosts.production(&site), "docs.sites.example.com");
        assert_eq!(
            hosts.target(&TargetName::pull_request(12), &site),
            "pr-12--docs.preview.example.com"
        );
        assert_eq!(
            hosts.target(&TargetName::production(), &site),
            "docs.sites.example.com"
        );
        assert_eq!(
            hosts.deployment(&id, &site),
            "01jd0000000000000000000000--docs.preview.example.com"
        );
        let urls = UrlTemplate::parse("http://{host}:8788/").unwrap();
        assert_eq!(urls.url("docs.localhost"), "http://docs.localhost:8788/");
        assert!(UrlTemplate::parse("docs.example.com").is_err());
        assert!(UrlTemplate::parse("https://{site}.example.com/").is_err());
    }
}
