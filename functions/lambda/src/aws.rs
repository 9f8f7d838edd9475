//! The pipeline on the AWS adapters, built once per cold start from the SDK configuration.

use std::sync::Arc;

use aws_config::SdkConfig;
use slipway_aws::dynamodb::{self, DynamoState};
use slipway_aws::kvs::{self, KvsRoutes};
use slipway_aws::s3::{self, S3Objects};
use slipway_core::steps::{Pipeline, PipelineConfig};
use slipway_core::zipsafe::ZipLimits;

use crate::config::PipelineSettings;

/// The step handlers' [`Pipeline`] on S3, DynamoDB and the KeyValueStore, plus the S3 adapter
/// itself, which the API also uses for presigned upload URLs.
pub struct AwsPipeline {
    pub pipeline: Pipeline,
    pub objects: Arc<S3Objects>,
}

impl AwsPipeline {
    pub fn new(sdk: &SdkConfig, settings: &PipelineSettings) -> Self {
        let objects = Arc::new(S3Objects::new(s3::client(sdk), settings.buckets.clone()));
        let state = DynamoState::new(dynamodb::client(sdk), settings.table.clone());
        let kvs = KvsRoutes::new(kvs::client(sdk), settings.kvs_arn.clone());
        let pipeline = Pipeline {
            objects: objects.clone(),
            state: Arc::new(state),
            kvs: Arc::new(kvs),
            config: PipelineConfig {
                edge_domain: settings.site_domain.clone(),
                buckets: settings.buckets.clone(),
                zip_limits: ZipLimits::default(),
                publish_concurrency: settings.publish_concurrency,
            },
        };
        Self { pipeline, objects }
    }
}
