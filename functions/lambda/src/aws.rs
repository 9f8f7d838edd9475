//! The pipeline on the AWS adapters, built once per cold start from the SDK configuration,
//! and the cold start every function shares.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::{service_fn, Error, IntoFunctionResponse, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_aws::dynamodb::{self, DynamoState};
use slipway_aws::kvs::{self, KvsRoutes};
use slipway_aws::s3::{self, S3Objects};
use slipway_core::site::edge::KvsSwitch;
use slipway_core::site::zipsafe::ZipLimits;
use slipway_core::steps::{Pipeline, PipelineConfig};
use slipway_github::{GithubApi, GithubConfig, GithubConfigError, GithubToken};

use crate::config::{ConfigError, PipelineSettings};
use crate::failure::StepFailure;

/// The step handlers' [`Pipeline`] on S3, DynamoDB and the KeyValueStore, plus the S3 adapter
/// itself, which the API also uses for presigned upload URLs.
pub struct AwsPipeline {
    pub pipeline: Pipeline,
    pub objects: Arc<S3Objects>,
}

impl AwsPipeline {
    pub fn new(sdk: &SdkConfig, settings: &PipelineSettings) -> Result<Self, GithubConfigError> {
        let objects = Arc::new(S3Objects::new(s3::client(sdk), settings.buckets.clone()));
        let state = DynamoState::new(dynamodb::client(sdk), settings.table.clone());
        let kvs = KvsRoutes::new(kvs::client(sdk), settings.kvs_arn.clone());
        let github = Arc::new(GithubApi::new(GithubConfig {
            api_url: settings.github_api_url.clone(),
            token: settings.github_token.clone().map(GithubToken::new),
        })?);
        let pipeline = Pipeline {
            objects: objects.clone(),
            state: Arc::new(state),
            switch: Arc::new(KvsSwitch::new(Arc::new(kvs), settings.hosts.clone())),
            repos: github.clone(),
            statuses: github,
            config: PipelineConfig {
                hosts: settings.hosts.clone(),
                urls: settings.urls.clone(),
                buckets: settings.buckets.clone(),
                zip_limits: ZipLimits::default(),
                publish_concurrency: settings.publish_concurrency,
            },
        };
        Ok(Self { pipeline, objects })
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

/// The whole `main` of a step function: the cold start, then `handler` on the AWS pipeline
/// for every invocation, under [`crate::run`].
pub async fn serve_step<F, Fut, I, O, B, S, D, E>(handler: F) -> Result<(), Error>
where
    F: Fn(&'static Pipeline, LambdaEvent<I>) -> Fut,
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
    let pipeline: &'static Pipeline =
        Box::leak(Box::new(AwsPipeline::new(&sdk, &settings)?.pipeline));
    crate::run(service_fn(move |event| handler(pipeline, event))).await
}
