//! slipway's test kit: what the test suites of several crates share. It is a dev-dependency
//! only; nothing that ships links it (the Lambda crates and `slipway-lambda` never depend on
//! `slipway-local` outside their tests).
//!
//! - [`state_contract`]: the behaviour every `StateStore` must show, run against SQLite and
//!   DynamoDB, with the record builders its cases use. Each store's test file hands the
//!   macro a fresh store; the cases know no store implementation.
//! - [`embedded`]: the `deploy-site` tasks on `slipway dev`'s embedded stores in a temporary
//!   directory, for the step and Lambda handler tests.
//! - [`aws`]: a CloudFront KeyValueStore server (moto has none) and the SigV4/SigV4A check
//!   it and the CLI's signing tests use.
//! - [`github`]: a fake GitHub REST API on 127.0.0.1 (commit statuses, trees, contents).
//! - [`fake_api`]: a stand-in control-plane API for the CLI's command tests.

pub mod aws;
pub mod embedded;
pub mod fake_api;
pub mod github;
pub mod state_contract;
