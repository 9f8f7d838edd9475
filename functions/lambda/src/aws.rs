//! The AWS adapters each function builds once per cold start from the SDK configuration, and
//! the cold start every function shares.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::{service_fn, Error, IntoFunctionResponse, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_aws::dynamodb::{self, DynamoState};
use slipway_aws::kvs::{self, CloudFrontKvs};
use slipway_aws::s3::{self, S3Objects};
use slipway_core::site::edge::{Addresses, KvsSwitch};
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{
    ActivateDeps, MarkFailedDeps, PrepareDeps, PruneDeps, PublishDeps, TrafficSync,
};
use slipway_github::{GithubApi, GithubConfig, GithubConfigError, GithubToken};

use crate::config::{ConfigError, PipelineSettings};
use crate::failure::StepFailure;

/// The AWS adapters, made on request from one cold start's settings, so that each function
/// builds the clients its handler uses and no others.
pub struct AwsAdapters<'a> {
    sdk: &'a SdkConfig,
    settings: &'a PipelineSettings,
}

impl<'a> AwsAdapters<'a> {
    pub fn new(sdk: &'a SdkConfig, settings: &'a PipelineSettings) -> Self {
        Self { sdk, settings }
    }

    pub fn objects(&self) -> Arc<S3Objects> {
        Arc::new(S3Objects::new(
            s3::client(self.sdk),
            self.settings.buckets.clone(),
        ))
    }

    pub fn state(&self) -> Arc<DynamoState> {
        Arc::new(DynamoState::new(
            dynamodb::client(self.sdk),
            self.settings.table.clone(),
        ))
    }

    pub fn switch(&self) -> Arc<KvsSwitch> {
        let kvs = CloudFrontKvs::new(kvs::client(self.sdk), self.settings.kvs_arn.clone());
        Arc::new(KvsSwitch::new(Arc::new(kvs), self.settings.hosts.clone()))
    }

    pub fn traffic(&self) -> TrafficSync {
        TrafficSync {
            state: self.state(),
            switch: self.switch(),
        }
    }

    pub fn addresses(&self) -> Addresses {
        Addresses {
            hosts: self.settings.hosts.clone(),
            urls: self.settings.urls.clone(),
        }
    }

    pub fn github(&self) -> Result<Arc<GithubApi>, GithubConfigError> {
        Ok(Arc::new(GithubApi::new(GithubConfig {
            api_url: self.settings.github_api_url.clone(),
            token: self.settings.github_token.clone().map(GithubToken::new),
        })?))
    }
}

/// A step handler's dependencies, built from the adapters once per cold start.
pub trait FromAws: Sized {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error>;
}

impl FromAws for PrepareDeps {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error> {
        let github = aws.github()?;
        Ok(Self {
            state: aws.state(),
            objects: aws.objects(),
            repos: github.clone(),
            statuses: github,
            buckets: aws.settings.buckets.clone(),
            zip_limits: ZipLimits::default(),
        })
    }
}

impl FromAws for PublishDeps {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error> {
        Ok(Self {
            state: aws.state(),
            objects: aws.objects(),
            zip_limits: ZipLimits::default(),
            concurrency: aws.settings.publish_concurrency,
        })
    }
}

impl FromAws for ActivateDeps {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error> {
        Ok(Self {
            traffic: aws.traffic(),
            statuses: aws.github()?,
            addresses: aws.addresses(),
        })
    }
}

impl FromAws for PruneDeps {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error> {
        Ok(Self {
            state: aws.state(),
            objects: aws.objects(),
            switch: aws.switch(),
        })
    }
}

impl FromAws for MarkFailedDeps {
    fn from_aws(aws: &AwsAdapters<'_>) -> Result<Self, Error> {
        Ok(Self {
            state: aws.state(),
            objects: aws.objects(),
            statuses: aws.github()?,
        })
    }
}

/// What every function does once per cold start: JSON logs first, then its settings (a bad
/// one is logged, so the init failure says which) and the SDK configuration.
pub async fn cold_start<T>(
    settings: impl FnOnce() -> Result<T, ConfigError>,
) -> Result<(T, SdkConfig), ConfigError> {
    crate::logging::init();
    let settings =
        settings().inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    Ok((settings, slipway_aws::config::load(None).await))
}

/// The whole `main` of a step function: the cold start, then `handler` on its dependencies
/// (built once, of the type it asks for) for every invocation, under [`crate::run`].
pub async fn serve_step<Deps, F, Fut, I, O, B, S, D, E>(handler: F) -> Result<(), Error>
where
    Deps: FromAws + Sync + 'static,
    F: Fn(&'static Deps, LambdaEvent<I>) -> Fut,
    Fut: Future<Output = Result<O, StepFailure>>,
    I: DeserializeOwned,
    O: IntoFunctionResponse<B, S>,
    B: Serialize,
    S: futures::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<Error> + Send + Debug,
{
    let (settings, sdk) = cold_start(PipelineSettings::from_env).await?;
    // Built once and kept for the life of the process, which is the life of the function.
    let deps: &'static Deps = Box::leak(Box::new(Deps::from_aws(&AwsAdapters::new(
        &sdk, &settings,
    ))?));
    crate::run(service_fn(move |event| handler(deps, event))).await
}
