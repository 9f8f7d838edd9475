//! Building the SDK configuration once per process: region and credentials from the standard
//! chain, an endpoint override for emulators, and a deliberate retry policy.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

/// Attempts per call (the first plus retries) for throttling, 5xx and transient network errors.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first backoff; later ones grow exponentially with jitter, up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The retry policy every slipway client uses: the SDK's standard mode (exponential backoff
/// with full jitter on throttling, 5xx and timeouts), with our attempt count and backoff bounds.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}

/// Loads the SDK configuration from the environment (Lambda's role, profiles, SSO, ...).
/// `endpoint_url` points every client at one endpoint (an emulator); `AWS_ENDPOINT_URL`
/// does the same through the environment.
pub async fn load(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// A configuration with fixed credentials for one endpoint (an emulator such as s3s-fs, which
/// checks signatures against the keys it was started with), with the same retry and timeout
/// policy as [`load`]. The standard chain would pick up whatever the environment holds instead.
pub fn for_endpoint(
    endpoint_url: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> SdkConfig {
    let credentials = Credentials::new(access_key, secret_key, None, None, "slipway-static");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(endpoint_url)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build()
}
