//! Function configuration, read once at cold start from the environment the stack sets.
//!
//! Each function reads only what it uses: the step functions and the API need the stores, the
//! source trigger needs the state machine. Requiring `SLIPWAY_STATE_MACHINE_ARN` of the step
//! functions would make the stack circular (the state machine names their ARNs).

use slipway_aws::kvs::KvsArn;
use slipway_aws::sfn::StateMachineArn;
use slipway_core::site::edge::{Hosts, UrlTemplate};
use slipway_core::steps::BucketNames;
use slipway_core::webhook::WebhookSecret;

pub const SOURCE_BUCKET: &str = "SLIPWAY_SOURCE_BUCKET";
pub const ARTIFACTS_BUCKET: &str = "SLIPWAY_ARTIFACTS_BUCKET";
pub const HOSTING_BUCKET: &str = "SLIPWAY_HOSTING_BUCKET";
pub const TABLE: &str = "SLIPWAY_TABLE";
pub const KVS_ARN: &str = "SLIPWAY_KVS_ARN";
pub const STATE_MACHINE_ARN: &str = "SLIPWAY_STATE_MACHINE_ARN";
pub const SITE_DOMAIN: &str = "SLIPWAY_SITE_DOMAIN";
pub const PREVIEW_DOMAIN: &str = "SLIPWAY_PREVIEW_DOMAIN";
pub const URL_TEMPLATE: &str = "SLIPWAY_URL_TEMPLATE";
pub const PUBLISH_CONCURRENCY: &str = "SLIPWAY_PUBLISH_CONCURRENCY";
pub const GITHUB_API_URL: &str = "SLIPWAY_GITHUB_API_URL";
pub const GITHUB_TOKEN: &str = "SLIPWAY_GITHUB_TOKEN";
pub const GITHUB_WEBHOOK_SECRET: &str = "SLIPWAY_GITHUB_WEBHOOK_SECRET";

/// Public URLs when `SLIPWAY_URL_TEMPLATE` is unset: CloudFront serves HTTPS.
pub const DEFAULT_URL_TEMPLATE: &str = "https://{host}/";

/// Concurrent object writes during Publish when `SLIPWAY_PUBLISH_CONCURRENCY` is unset.
pub const DEFAULT_PUBLISH_CONCURRENCY: usize = 32;
/// More concurrent PUTs than this only queue on one function's network.
const MAX_PUBLISH_CONCURRENCY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Reads variables through `lookup`, so tests need not touch the process environment.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A lowercase host name such as `sites.example.com`.
    fn domain(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(domain) = self.optional(name) else {
            return Ok(None);
        };
        let is_host = domain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !domain.starts_with('.')
            && !domain.ends_with('.');
        if !is_host {
            return Err(ConfigError::Invalid {
                name,
                value: domain,
                expected: "a lowercase host name such as sites.example.com",
            });
        }
        Ok(Some(domain))
    }

    fn parsed<T, E>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let value = self.required(name)?;
        parse(&value).map_err(|_| ConfigError::Invalid {
            name,
            value,
            expected,
        })
    }
}

/// What the step functions (and the API) run against: the stores, the edge's host names and
/// GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    pub buckets: BucketNames,
    pub table: String,
    pub kvs_arn: KvsArn,
    /// Sites answer at `{site}.{site_domain}`, previews and deployments at
    /// `{target}--{site}.{preview_domain}`: the edge's routing keys are those host names.
    pub hosts: Hosts,
    pub urls: UrlTemplate,
    pub publish_concurrency: usize,
    pub github_api_url: String,
    /// Commit statuses are sent with it; unset, they are skipped with a warning.
    pub github_token: Option<String>,
}

impl PipelineSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let site_domain = vars
            .domain(SITE_DOMAIN)?
            .ok_or(ConfigError::Missing(SITE_DOMAIN))?;
        let preview_domain = vars
            .domain(PREVIEW_DOMAIN)?
            .unwrap_or_else(|| site_domain.clone());
        let raw_urls = vars
            .optional(URL_TEMPLATE)
            .unwrap_or_else(|| DEFAULT_URL_TEMPLATE.to_owned());
        let urls = UrlTemplate::parse(&raw_urls).map_err(|_| ConfigError::Invalid {
            name: URL_TEMPLATE,
            value: raw_urls.clone(),
            expected: "an http(s) URL containing {host}, e.g. https://{host}/",
        })?;
        let publish_concurrency = match vars.optional(PUBLISH_CONCURRENCY) {
            None => DEFAULT_PUBLISH_CONCURRENCY,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_PUBLISH_CONCURRENCY).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: PUBLISH_CONCURRENCY,
                        value: raw,
                        expected: "a whole number from 1 to 1024",
                    })
                }
            },
        };
        Ok(Self {
            buckets: BucketNames {
                source: vars.required(SOURCE_BUCKET)?,
                artifacts: vars.required(ARTIFACTS_BUCKET)?,
                hosting: vars.required(HOSTING_BUCKET)?,
            },
            table: vars.required(TABLE)?,
            kvs_arn: vars.parsed(
                KVS_ARN,
                KvsArn::parse,
                "a KeyValueStore ARN: arn:aws:cloudfront::ACCOUNT:key-value-store/ID",
            )?,
            hosts: Hosts {
                site_domain,
                preview_domain,
                // A service's address on AWS is its HTTP API's.
                service_domain: None,
            },
            urls,
            publish_concurrency,
            github_api_url: vars
                .optional(GITHUB_API_URL)
                .unwrap_or_else(|| slipway_github::DEFAULT_API_URL.to_owned()),
            github_token: vars.optional(GITHUB_TOKEN),
        })
    }
}

/// The GitHub webhook: the pipeline, the state machine it starts, and the signing secret.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub pipeline: PipelineSettings,
    pub state_machine_arn: StateMachineArn,
    pub secret: WebhookSecret,
}

impl WebhookSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let pipeline = PipelineSettings::from_lookup(&lookup)?;
        let vars = Vars(lookup);
        Ok(Self {
            pipeline,
            state_machine_arn: vars.parsed(
                STATE_MACHINE_ARN,
                StateMachineArn::parse,
                "a state machine ARN: arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
            )?,
            // Optional only in the sense that Vars trims: an empty secret is refused.
            secret: WebhookSecret::new(vars.required(GITHUB_WEBHOOK_SECRET)?)
                .map_err(|_| ConfigError::Missing(GITHUB_WEBHOOK_SECRET))?,
        })
    }
}

/// The source trigger: which bucket's events count, the state table and the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerSettings {
    pub source_bucket: String,
    pub table: String,
    pub state_machine_arn: StateMachineArn,
}

impl TriggerSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        Ok(Self {
            source_bucket: vars.required(SOURCE_BUCKET)?,
            table: vars.required(TABLE)?,
            state_machine_arn: vars.parsed(
                STATE_MACHINE_ARN,
                StateMachineArn::parse,
                "a state machine ARN: arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KVS: &str =
        "arn:aws:cloudfront::111122223333:key-value-store/0a1b2c3d-1111-2222-3333-444455556666";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            (SOURCE_BUCKET, "acme-source"),
            (ARTIFACTS_BUCKET, "acme-artifacts"),
            (HOSTING_BUCKET, "acme-hosting"),
            (TABLE, "acme-slipway"),
            (KVS_ARN, KVS),
            (
                STATE_MACHINE_ARN,
                "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site",
            ),
            (SITE_DOMAIN, "sites.example.com"),
            (GITHUB_WEBHOOK_SECRET, "hook-secret"),
        ]
    }

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        full().into_iter().filter(|(k, _)| *k != name).collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut vars = without(name);
        vars.push((name, value));
        vars
    }

    #[test]
    fn the_stack_environment_becomes_typed_settings() {
        let api = WebhookSettings::from_lookup(env(&full())).unwrap();
        assert_eq!(
            api.pipeline.buckets,
            BucketNames {
                source: "acme-source".into(),
                artifacts: "acme-artifacts".into(),
                hosting: "acme-hosting".into(),
            }
        );
        assert_eq!(api.pipeline.table, "acme-slipway");
        assert_eq!(api.pipeline.kvs_arn.as_str(), KVS);
        // One domain for sites and previews; services get their address from API Gateway.
        assert_eq!(
            api.pipeline.hosts,
            Hosts {
                service_domain: None,
                ..Hosts::single("sites.example.com")
            }
        );
        assert_eq!(
            api.pipeline.urls.url("docs.sites.example.com"),
            "https://docs.sites.example.com/"
        );
        assert_eq!(
            api.pipeline.publish_concurrency,
            DEFAULT_PUBLISH_CONCURRENCY
        );
        assert_eq!(api.pipeline.github_api_url, slipway_github::DEFAULT_API_URL);
        assert_eq!(api.pipeline.github_token, None);
        assert_eq!(
            api.secret.sign(b"x"),
            WebhookSecret::new("hook-secret").unwrap().sign(b"x")
        );

        let previews =
            PipelineSettings::from_lookup(env(&with(PREVIEW_DOMAIN, "preview.example.com")))
                .unwrap();
        assert_eq!(previews.hosts.preview_domain, "preview.example.com");
        assert_eq!(previews.hosts.site_domain, "sites.example.com");

        let trigger = TriggerSettings::from_lookup(env(&full())).unwrap();
        assert_eq!(trigger.source_bucket, "acme-source");
        assert_eq!(
            trigger.state_machine_arn.as_str(),
            "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site"
        );

        let tuned = PipelineSettings::from_lookup(env(&with(PUBLISH_CONCURRENCY, " 64 "))).unwrap();
        assert_eq!(tuned.publish_concurrency, 64);
    }

    #[test]
    fn each_function_needs_only_its_own_variables() {
        // The step functions run without the state machine's ARN (the stack would be circular).
        let steps = without(STATE_MACHINE_ARN);
        assert!(PipelineSettings::from_lookup(env(&steps)).is_ok());
        assert!(PipelineSettings::from_lookup(env(&without(GITHUB_WEBHOOK_SECRET))).is_ok());
        let trigger = [
            (SOURCE_BUCKET, "acme-source"),
            (TABLE, "acme-slipway"),
            (
                STATE_MACHINE_ARN,
                "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site",
            ),
        ];
        assert!(TriggerSettings::from_lookup(env(&trigger)).is_ok());
    }

    #[test]
    fn a_missing_or_empty_variable_is_named() {
        for name in [
            SOURCE_BUCKET,
            ARTIFACTS_BUCKET,
            HOSTING_BUCKET,
            TABLE,
            KVS_ARN,
            SITE_DOMAIN,
            STATE_MACHINE_ARN,
            GITHUB_WEBHOOK_SECRET,
        ] {
            assert_eq!(
                WebhookSettings::from_lookup(env(&without(name))).err(),
                Some(ConfigError::Missing(name)),
                "{name}"
            );
            assert_eq!(
                WebhookSettings::from_lookup(env(&with(name, "  "))).err(),
                Some(ConfigError::Missing(name)),
                "{name}"
            );
        }
        assert_eq!(
            TriggerSettings::from_lookup(env(&without(STATE_MACHINE_ARN))),
            Err(ConfigError::Missing(STATE_MACHINE_ARN))
        );
        let message = ConfigError::Missing(TABLE).to_string();
        assert!(message.contains("SLIPWAY_TABLE"), "{message}");
    }

    #[test]
    fn invalid_values_are_refused_with_the_variable_and_value() {
        let cases = [
            (PUBLISH_CONCURRENCY, "0"),
            (PUBLISH_CONCURRENCY, "many"),
            (PUBLISH_CONCURRENCY, "5000"),
            (KVS_ARN, "my-store"),
            (
                KVS_ARN,
                "arn:aws:states:us-east-1:111122223333:stateMachine:deploy-site",
            ),
            (SITE_DOMAIN, "https://sites.example.com"),
            (SITE_DOMAIN, "Sites.Example.com"),
            (SITE_DOMAIN, ".example.com"),
            (PREVIEW_DOMAIN, "Preview.example.com"),
            (URL_TEMPLATE, "https://sites.example.com/"),
            (URL_TEMPLATE, "{host}"),
        ];
        for (name, value) in cases {
            match PipelineSettings::from_lookup(env(&with(name, value))) {
                Err(ConfigError::Invalid {
                    name: reported,
                    value: got,
                    ..
                }) => {
                    assert_eq!(reported, name);
                    assert_eq!(got, value);
                }
                other => panic!("{name}={value:?} gave {other:?}"),
            }
        }
        let error =
            TriggerSettings::from_lookup(env(&with(STATE_MACHINE_ARN, "deploy-site"))).unwrap_err();
        assert!(error.to_string().contains("SLIPWAY_STATE_MACHINE_ARN"));
    }
}
