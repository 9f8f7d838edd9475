//! slipway on AWS: the core ports implemented with the AWS SDK for Rust, and SigV4 signing
//! for the CLI's calls to the control-plane API. This is the only crate that imports
//! `aws-sdk-*`; everything above it sees `slipway_core::ports` and [`signing`].
//!
//! It maps ports to services and must not know the flow (the state machine orders the steps)
//! or the lifecycle's rules: [`dynamodb`] applies the plans `slipway_core::decisions` makes,
//! conditioned on the records they were made from. Every client shares [`config`]'s retry
//! policy.

pub mod cdn;
pub mod codebuild;
pub mod config;
pub mod dynamodb;
pub mod kvs;
pub mod s3;
pub mod sfn;
pub mod signing;
