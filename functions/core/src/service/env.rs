//! A function's environment: the variables slipway injects into every service, then the
//! user's, most specific first (service and target, service, site and target, site), held to
//! Lambda's rules: keys are `[A-Za-z][A-Za-z0-9_]+`, none starts with `AWS_` or is one of
//! Lambda's reserved names, and the whole map, measured as Lambda measures it (its compact
//! JSON, in UTF-8 bytes), is at most 4 KB. A version freezes the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{DeploymentId, ServiceName, SiteName, TargetName};

/// Lambda's limit on a function's variables, all together.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// Names Lambda sets itself and refuses in a function's configuration (besides `AWS_*`).
const LAMBDA_RESERVED: [&str; 4] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// slipway's own variables start with this; users cannot set them.
const SLIPWAY_PREFIX: &str = "SLIPWAY_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{0:?} is not a valid variable name: start with a letter, then at least one letter, digit or underscore")]
    InvalidKey(String),
    #[error("{0} is reserved (Lambda sets AWS_* and {reserved}; slipway sets SLIPWAY_*)", reserved = LAMBDA_RESERVED.join(", "))]
    ReservedKey(String),
    #[error("the environment is {bytes} bytes as Lambda measures it (its JSON); the limit is {MAX_ENVIRONMENT_BYTES}. Largest: {largest}")]
    TooLarge { bytes: usize, largest: String },
}

/// A variable name a user may set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvKey(String);

impl EnvKey {
    pub fn parse(raw: &str) -> Result<Self, EnvError> {
        let mut chars = raw.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && raw.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(EnvError::InvalidKey(raw.to_owned()));
        }
        let upper = raw.to_ascii_uppercase();
        if upper.starts_with("AWS_")
            || upper.starts_with(SLIPWAY_PREFIX)
            || LAMBDA_RESERVED.contains(&raw)
        {
            return Err(EnvError::ReservedKey(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvKey {
    type Error = EnvError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EnvKey> for String {
    fn from(value: EnvKey) -> Self {
        value.0
    }
}

/// What slipway tells every function about where it runs.
#[derive(Debug, Clone)]
pub struct Injected<'a> {
    pub site: &'a SiteName,
    pub service: &'a ServiceName,
    pub target: &'a TargetName,
    pub deployment: DeploymentId,
    pub site_url: &'a str,
    pub region: &'a str,
    /// The other services of the site, in the same target, with their URLs.
    pub siblings: &'a [(ServiceName, String)],
}

impl Injected<'_> {
    fn variables(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            ("SLIPWAY_SITE".to_owned(), self.site.to_string()),
            ("SLIPWAY_SERVICE".to_owned(), self.service.to_string()),
            ("SLIPWAY_TARGET".to_owned(), self.target.to_string()),
            ("SLIPWAY_DEPLOYMENT".to_owned(), self.deployment.to_string()),
            ("SLIPWAY_SITE_URL".to_owned(), self.site_url.to_owned()),
            // The reference platform's names, so its functions run unchanged.
            ("SERVICE_AWS_REGION".to_owned(), self.region.to_owned()),
            ("site".to_owned(), self.site.to_string()),
        ]);
        for (sibling, url) in self.siblings.iter().filter(|(s, _)| s != self.service) {
            vars.insert(format!("{}_SERVICE_URL", sibling.env_prefix()), url.clone());
        }
        vars
    }
}

/// The user's variables of one scope.
pub type Layer = BTreeMap<EnvKey, String>;

/// The environment a version runs with: the user's layers, the most specific first (a key in
/// an earlier layer wins), under slipway's injected variables (which win over any user
/// variable of the same name, such as a `{SIBLING}_SERVICE_URL`).
pub fn function_environment(
    injected: &Injected<'_>,
    most_specific_first: &[&Layer],
) -> Result<BTreeMap<String, String>, EnvError> {
    let mut vars = BTreeMap::new();
    for layer in most_specific_first.iter().rev() {
        for (key, value) in layer.iter() {
            vars.insert(key.as_str().to_owned(), value.clone());
        }
    }
    vars.extend(injected.variables());
    let bytes = measured_size(&vars);
    if bytes > MAX_ENVIRONMENT_BYTES {
        let largest = vars
            .iter()
            .max_by_key(|(key, value)| key.len() + value.len())
            .map(|(key, value)| format!("{key} ({} bytes)", key.len() + value.len()))
            .unwrap_or_default();
        return Err(EnvError::TooLarge { bytes, largest });
    }
    Ok(vars)
}

/// The size Lambda checks: the map's compact JSON in UTF-8 bytes.
fn measured_size(vars: &BTreeMap<String, String>) -> usize {
    serde_json::to_vec(vars).map_or(usize::MAX, |json| json.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> Layer {
        pairs
            .iter()
            .map(|(k, v)| (EnvKey::parse(k).unwrap(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_follow_lambdas_rules_and_reserved_names_are_refused() {
        for good in ["DATABASE_URL", "a1", "Stripe_Key", "TZ"] {
            assert!(EnvKey::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "A",
            "1ABC",
            "_PRIVATE",
            "MY-VAR",
            "KEY WITH SPACE",
            "é_X",
        ] {
            assert!(
                matches!(EnvKey::parse(bad), Err(EnvError::InvalidKey(_))),
                "{bad:?}"
            );
        }
        for reserved in [
            "AWS_REGION",
            "aws_secret_access_key",
            "LAMBDA_TASK_ROOT",
            "SLIPWAY_SITE",
        ] {
            assert!(
                matches!(EnvKey::parse(reserved), Err(EnvError::ReservedKey(_))),
                "{reserved}"
            );
        }
    }

    #[test]
    fn the_most_specific_layer_wins_and_slipway_injects_its_own() {
        let site = SiteName::parse("docs").unwrap();
        let service = ServiceName::parse("api").unwrap();
        let target = TargetName::production();
        let siblings = [
            (ServiceName::parse("api").unwrap(), "http://api".to_owned()),
            (
                ServiceName::parse("auth-worker").unwrap(),
                "http://auth-worker--docs.svc.localhost:8788/".to_owned(),
            ),
        ];
        let injected = Injected {
            site: &site,
            service: &service,
            target: &target,
            deployment: DeploymentId::generate(),
            site_url: "http://docs.localhost:8788/",
            region: "eu-west-1",
            siblings: &siblings,
        };
        let service_target = layer(&[("LEVEL", "service+target")]);
        let service_only = layer(&[("LEVEL", "service"), ("TIMEOUT", "5")]);
        let site_target = layer(&[("LEVEL", "site+target"), ("MODE", "prod")]);
        let site_only = layer(&[("LEVEL", "site"), ("MODE", "any"), ("NAME", "docs")]);
        let env = function_environment(
            &injected,
            &[&service_target, &service_only, &site_target, &site_only],
        )
        .unwrap();
        assert_eq!(env["LEVEL"], "service+target");
        assert_eq!(env["TIMEOUT"], "5");
        assert_eq!(env["MODE"], "prod");
        assert_eq!(env["NAME"], "docs");
        assert_eq!(env["SLIPWAY_SITE"], "docs");
        assert_eq!(env["SLIPWAY_SERVICE"], "api");
        assert_eq!(env["SLIPWAY_TARGET"], "production");
        assert_eq!(env["SLIPWAY_SITE_URL"], "http://docs.localhost:8788/");
        assert_eq!(env["SERVICE_AWS_REGION"], "eu-west-1");
        assert_eq!(env["site"], "docs");
        assert_eq!(
            env["AUTH_WORKER_SERVICE_URL"],
            "http://auth-worker--docs.svc.localhost:8788/"
        );
        assert!(
            !env.contains_key("API_SERVICE_URL"),
            "a service is not its own sibling"
        );
    }

    #[test]
    fn the_four_kilobyte_limit_is_measured_as_lambda_measures_it() {
        let site = SiteName::parse("docs").unwrap();
        let service = ServiceName::parse("api").unwrap();
        let target = TargetName::production();
        let injected = Injected {
            site: &site,
            service: &service,
            target: &target,
            deployment: DeploymentId::generate(),
            site_url: "http://docs.localhost/",
            region: "eu-west-1",
            siblings: &[],
        };
        let base = function_environment(&injected, &[]).unwrap();
        let used = measured_size(&base);
        // `,"BIG":"…"` adds the key, the value and 6 bytes of JSON.
        let fits = "x".repeat(MAX_ENVIRONMENT_BYTES - used - 9);
        let exact = layer(&[("BIG", fits.as_str())]);
        let env = function_environment(&injected, &[&exact]).unwrap();
        assert_eq!(measured_size(&env), MAX_ENVIRONMENT_BYTES);
        let over = layer(&[("BIG", &format!("{fits}x"))]);
        match function_environment(&injected, &[&over]) {
            Err(EnvError::TooLarge { bytes, largest }) => {
                assert_eq!(bytes, MAX_ENVIRONMENT_BYTES + 1);
                assert!(largest.starts_with("BIG "), "{largest}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A quote in a value takes two bytes of JSON.
        let quoted = layer(&[("QQ", "\"")]);
        let env = function_environment(&injected, &[&quoted]).unwrap();
        assert_eq!(measured_size(&env), used + r#","QQ":"\"""#.len());
    }
}
