//! The S3 client and bucket set-up for emulators and first runs.

use aws_config::SdkConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::Client;
use slipway_core::ports::ObjectStoreError;

use super::errors::unavailable;

/// A client for emulators and AWS alike: an endpoint override (an emulator on loopback) gets
/// path-style addressing, since `{bucket}.127.0.0.1` does not resolve.
pub fn client(sdk: &SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

/// Creates a bucket in the client's region (the stack creates the real ones; this is for
/// emulators and first-run set-up). An existing bucket of ours is fine.
pub async fn create_bucket(client: &Client, name: &str) -> Result<(), ObjectStoreError> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
        Err(e) => Err(unavailable(e)),
    }
}
