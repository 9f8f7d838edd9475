//! slipway's embedded runtime: every AWS part of the pipeline, on one machine.

pub mod objects;
pub mod sqlite;
