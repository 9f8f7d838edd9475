//! slipway's embedded runtime: every AWS part of the pipeline, on one machine. [`sqlite`]
//! stands in for DynamoDB, the KeyValueStore and Step Functions' execution records,
//! [`objects`] for S3, [`workflow`] for Step Functions, [`builder`] for CodeBuild, [`edge`]
//! for CloudFront and its function, [`git`] for the GitHub API's reads, and [`dev`] (with
//! [`guard`]) for API Gateway, the Lambda triggers and the housekeeping schedule, and
//! [`lambda`] for the Lambda service that runs backend services' functions.
//!
//! It must not know the AWS SDK, and it adds no behaviour of its own above the ports: the
//! state store applies `slipway_core::decisions` plans, the workflow runs
//! `statemachines/deploy-site.asl.json`, and the edge runs `infra/edge/router.js`.

pub mod builder;
pub mod dev;
pub mod edge;
pub mod git;
pub mod guard;
pub mod lambda;
pub mod objects;
pub mod sqlite;
pub mod workflow;
