//! slipway on AWS: the core ports implemented with the AWS SDK for Rust. This is the only
//! crate that imports `aws-sdk-*`; everything above it sees `slipway_core::ports`.

pub mod cdn;
pub mod codebuild;
pub mod config;
pub mod dynamodb;
pub mod kvs;
pub mod s3;
pub mod sfn;

#[cfg(feature = "test-server")]
pub mod kvs_test_server;
