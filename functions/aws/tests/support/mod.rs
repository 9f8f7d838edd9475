//! Shared set-up for the adapter tests. The emulators are started by `tests/run-all.sh`
//! (moto for S3, DynamoDB, Step Functions and CodeBuild; s3s-fs for S3 with SigV4 checking)
//! on 127.0.0.1, which exports their URLs; a test without them fails and says so.
#![allow(dead_code)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The credentials s3s-fs is started with (tests/run-all.sh); moto accepts any.
pub const ACCESS_KEY: &str = "slipwaytest";
pub const SECRET_KEY: &str = "slipwaytestsecret";
pub const REGION: &str = "us-east-1";

fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the adapter tests through `bash tests/run-all.sh`, which starts the emulators")
    })
}

/// moto's URL, e.g. `http://127.0.0.1:5000`.
pub fn moto_url() -> String {
    endpoint("SLIPWAY_TEST_MOTO_URL")
}

/// s3s-fs's URL, e.g. `http://127.0.0.1:5001`.
pub fn s3s_url() -> String {
    endpoint("SLIPWAY_TEST_S3S_URL")
}

/// An SDK configuration pointed at `url` with static test credentials and the production
/// retry policy.
pub fn sdk_config(url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                None,
                None,
                "slipway-tests",
            )),
        )
        .endpoint_url(url)
        .retry_config(slipway_aws::config::retry_config())
        .build()
}

/// A name no other test (or earlier run against the same emulator) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// New buckets on s3s-fs and a new table on moto, named so that no other test uses them: the
/// object and state stores of a pipeline on the AWS adapters.
pub async fn fresh_stores() -> (
    slipway_aws::s3::S3Objects,
    slipway_aws::dynamodb::DynamoState,
    slipway_core::steps::BucketNames,
) {
    use slipway_aws::{dynamodb, s3};
    let buckets = slipway_core::steps::BucketNames {
        source: unique("source"),
        artifacts: unique("artifacts"),
        hosting: unique("hosting"),
    };
    let s3_client = s3::client(&sdk_config(&s3s_url()));
    for name in [&buckets.source, &buckets.artifacts, &buckets.hosting] {
        s3::create_bucket(&s3_client, name).await.unwrap();
    }
    let table = unique("slipway");
    let dynamo_client = dynamodb::client(&sdk_config(&moto_url()));
    dynamodb::create_table(&dynamo_client, &table)
        .await
        .unwrap();
    (
        s3::S3Objects::new(s3_client, buckets.clone()),
        dynamodb::DynamoState::new(dynamo_client, table),
        buckets,
    )
}
