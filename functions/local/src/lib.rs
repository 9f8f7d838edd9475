//! slipway's embedded runtime: every AWS part of the pipeline, on one machine.

pub mod builder;
pub mod dev;
pub mod edge;
pub mod git;
pub mod objects;
pub mod sqlite;
pub mod workflow;
