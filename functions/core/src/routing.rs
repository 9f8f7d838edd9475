//! What the edge's key-value store holds: one key per host name, whose value names the
//! version to serve and the site's routing flags. `infra/edge/router.js` reads this format.

use crate::model::RoutingFlags;
use crate::names::{DeploymentId, SiteName};

/// The key-value store key for a site's production host: `{site}.{domain}`.
/// Locally the domain is `localhost`, so sites answer at `http://{site}.localhost:{port}/`.
pub fn production_host(site: &SiteName, domain: &str) -> String {
    format!("{site}.{domain}")
}

/// `{site}/{deployment}`, then `;` and one letter per flag when any is set:
/// `s` for SPA fallback, `c` for clean URLs. Far below the 1 KB value limit.
pub fn route_value(site: &SiteName, deployment: &DeploymentId, flags: RoutingFlags) -> String {
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
    fn route_values_carry_version_and_flags() {
        let site = SiteName::parse("docs").unwrap();
        let id = DeploymentId::parse("01jd0000000000000000000000").unwrap();
        assert_eq!(
            route_value(&site, &id, RoutingFlags::default()),
            "docs/01jd0000000000000000000000"
        );
        let both = RoutingFlags {
            spa: true,
            clean_urls: true,
        };
        assert_eq!(
            route_value(&site, &id, both),
            "docs/01jd0000000000000000000000;sc"
        );
        assert_eq!(production_host(&site, "localhost"), "docs.localhost");
    }
}
