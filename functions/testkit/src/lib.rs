//! slipway's test kit: what the test suites of several crates share. It is a dev-dependency
//! only; nothing that ships links it. It knows no store implementation (it depends on
//! `slipway-core` alone): each store's test file hands the macro a fresh store.
//!
//! - [`state_contract`]: the behaviour every `StateStore` must show, run against SQLite and
//!   DynamoDB, with the record builders its cases use.

pub mod state_contract;
