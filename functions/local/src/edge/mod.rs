//! The local edge: an HTTP server that runs the very `infra/edge/router.js` CloudFront runs,
//! in an embedded QuickJS engine, against the local key-value store, and serves what it routes
//! to from the hosting bucket of the local object store.
//!
//! Loading contract (shared with `tests/edge/load-router.mjs`): the line
//! `import cf from 'cloudfront';` becomes `const cf = globalThis.__slipwayCloudfront;`, the
//! file runs as a classic script, and the global `handler` is called once per request.
//!
//! `engine` hosts router.js: the loading contract, the `cloudfront` module shim and the
//! pool of QuickJS workers ([`EdgeRouter`]). `event` holds the shapes CloudFront Functions
//! exchange with it: the viewer-request event, the request and a generated response.
//! `server` is the HTTP side: the axum server that asks the router and serves what it routes
//! to from the hosting bucket.

mod engine;
mod event;
mod server;

pub use engine::{router_source, shim_source, EdgeConfig, EdgeError, EdgeRouter};
pub use event::{
    EdgeRequest, EdgeResponse, Field, FieldValue, Fields, ResponseBody, RouterOutcome,
};
pub use server::{no_delay, serve_edge, serve_edge_with};
