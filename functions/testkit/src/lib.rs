//! slipway's test kit: what the test suites of several crates share. It is a dev-dependency
//! only; nothing that ships links it (the Lambda crates and `slipway-lambda` never depend on
//! `slipway-local` outside their tests).
//!
//! - [`state_contract`]: the behaviour every `StateStore` must show, run against SQLite and
//!   DynamoDB, with the record builders its cases use. Each store's test file hands the
//!   macro a fresh store; the cases know no store implementation.
//! - [`embedded`]: a pipeline on `slipway dev`'s embedded stores in a temporary directory,
//!   for the Lambda handlers' tests.

pub mod embedded;
pub mod state_contract;
