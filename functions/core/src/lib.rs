//! slipway's domain: names and ids, deployments and their lifecycle, the ports the pipeline
//! runs against, and the pipeline's step handlers. Nothing here knows about AWS.

pub mod api;
pub mod api_types;
pub mod build_plan;
pub mod github;
pub mod housekeeping;
pub mod media;
pub mod model;
pub mod names;
pub mod ports;
pub mod ranged;
pub mod routing;
pub mod steps;
pub mod trigger;
pub mod zipsafe;
