//! CloudFront, read-only: what the stack needs at runtime. The distribution's domain (the
//! default site URL when no custom domain is set) and the KeyValueStore the router function
//! is associated with (so the KVS adapter is pointed at the store the edge really reads).
//! Nothing here writes to CloudFront, and nothing invalidates: every deployment has its own
//! cache keys.

use aws_config::SdkConfig;
use aws_sdk_cloudfront::operation::describe_function::DescribeFunctionError;
use aws_sdk_cloudfront::operation::get_distribution::GetDistributionError;
use aws_sdk_cloudfront::types::FunctionStage;
use slipway_core::ports::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error("no CloudFront distribution {0:?}")]
    DistributionNotFound(String),
    #[error("no CloudFront function {0:?} in the LIVE stage")]
    FunctionNotFound(String),
    #[error("CloudFront answered without {0}")]
    IncompleteResponse(&'static str),
    #[error("CloudFront unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

#[derive(Debug, Clone)]
pub struct CloudFrontLookups {
    client: aws_sdk_cloudfront::Client,
}

impl CloudFrontLookups {
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_cloudfront::Client::new(config))
    }

    pub fn from_client(client: aws_sdk_cloudfront::Client) -> Self {
        Self { client }
    }

    /// The distribution's own domain, e.g. `d111111abcdef8.cloudfront.net` (GetDistribution).
    pub async fn distribution_domain(&self, distribution_id: &str) -> Result<String, CdnError> {
        let out = self
            .client
            .get_distribution()
            .id(distribution_id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(GetDistributionError::NoSuchDistribution(_)) => {
                    CdnError::DistributionNotFound(distribution_id.to_owned())
                }
                _ => CdnError::Unavailable(Box::new(e)),
            })?;
        let domain = out
            .distribution()
            .map(|d| d.domain_name())
            .filter(|d| !d.is_empty())
            .ok_or(CdnError::IncompleteResponse("the distribution's domain"))?;
        Ok(domain.to_owned())
    }

    /// The ARNs of the KeyValueStores associated with the published (LIVE) CloudFront
    /// Function, as DescribeFunction reports them; empty when it has none.
    pub async fn function_kvs_arns(&self, function_name: &str) -> Result<Vec<String>, CdnError> {
        let out = self
            .client
            .describe_function()
            .name(function_name)
            .stage(FunctionStage::Live)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(DescribeFunctionError::NoSuchFunctionExists(_)) => {
                    CdnError::FunctionNotFound(function_name.to_owned())
                }
                _ => CdnError::Unavailable(Box::new(e)),
            })?;
        let config = out
            .function_summary()
            .and_then(|summary| summary.function_config())
            .ok_or(CdnError::IncompleteResponse("the function's configuration"))?;
        let arns: Vec<String> = config
            .key_value_store_associations()
            .map(|associations| associations.items())
            .unwrap_or_default()
            .iter()
            .map(|association| association.key_value_store_arn().to_owned())
            .collect();
        tracing::debug!(function = function_name, kvs = ?arns, "function KVS associations");
        Ok(arns)
    }
}
