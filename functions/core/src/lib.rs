//! slipway's domain: names and ids, deployments and their lifecycle, the ports the pipeline
//! runs against, and the pipeline's step handlers. Nothing here knows about AWS.
//!
//! - The lifecycle's decisions (activate, move production, remove a preview, delete a
//!   deployment's record) live in [`decisions`], as pure functions over a snapshot of the
//!   records they read. Stores run them through [`ports::StateStore::commit`] and only read
//!   and apply the plan they return; no store or handler makes these decisions itself.
//! - [`model`] is the domain, [`records`] how the stores keep sites and previews,
//!   [`api_types`] how the API shows them: renaming a domain field must not change what is
//!   stored or what the API sends.
//! - Site-only code (static hosting) lives in [`site`] (build plans, zip safety, ranged reads,
//!   published files' headers, the edge's host names and traffic switch), plus the Prepare
//!   and Publish steps. The rest is the lifecycle of any deployment.
//! - No `aws-sdk-*` and no HTTP server: [`api`] and [`webhook`] take and return `http` types,
//!   and whoever serves them (axum in `slipway-local`, lambda_http in the Lambda crates) lives
//!   outside. The [`ports`] are implemented by `slipway-local` and `slipway-aws`.
//!
//! The code map and the invariants are in `ARCHITECTURE.md` at the repository root.

pub mod api;
pub mod api_types;
pub mod decisions;
pub mod housekeeping;
pub mod model;
pub mod names;
pub mod ports;
pub mod records;
pub mod service;
pub mod site;
pub mod steps;
pub mod trigger;
pub mod webhook;
