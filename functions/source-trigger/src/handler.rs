//! An object landed in the source bucket: start its deploy with the very
//! `slipway_core::trigger::on_source_object` that `slipway dev`'s upload endpoint calls.
//!
//! Events this function cannot act on (another bucket, a key outside the layout, an unknown
//! site or deployment) are logged and answered with success: an error would only make Lambda
//! retry an event that can never succeed. Only infrastructure failures are errors, which
//! Lambda's asynchronous invocation retries a bounded number of times; a retried event starts
//! nothing twice, since execution names derive from the event.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use slipway_core::names::DeploymentId;
use slipway_core::ports::{StateStore, WorkflowError, WorkflowStarter};
use slipway_core::trigger::{
    on_source_object, parse_source_key, SourceEvent, SourceKey, TriggerError, TriggerOutcome,
};
use time::OffsetDateTime;
use tracing::field::{display, Empty};
use tracing::Instrument;

use crate::event::{ObjectCreatedEvent, OBJECT_CREATED, S3_SOURCE};
use slipway_lambda::failure::error_chain;

pub struct TriggerDeps {
    /// Events for any other bucket are ignored.
    pub source_bucket: String,
    pub state: Arc<dyn StateStore>,
    pub workflow: Arc<dyn WorkflowStarter>,
}

/// What became of an event; the function's result, and what the log line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TriggerReport {
    Started {
        deployment_id: DeploymentId,
        execution_name: String,
    },
    /// A repeated event: its deploy was started before.
    AlreadyStarted {
        deployment_id: DeploymentId,
        execution_name: String,
    },
    Ignored {
        reason: String,
    },
}

/// Why an event is not one this function acts on, before the key is even looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotForUs {
    #[error("a {detail_type:?} event from {sender:?} is not an S3 Object Created event")]
    NotObjectCreated { sender: String, detail_type: String },
    #[error("bucket {0:?} is not the source bucket")]
    OtherBucket(String),
    #[error("the event has no valid time")]
    NoTime,
    #[error("the event names no version, ETag or sequencer for the object")]
    NoVersion,
}

/// The store or the workflow failed; Lambda retries the event.
#[derive(thiserror::Error)]
#[error(transparent)]
pub struct TriggerFailure(#[from] pub TriggerError);

/// What the runtime logs for a failed invocation: the name and the causes.
impl std::fmt::Debug for TriggerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name(), error_chain(&self.0))
    }
}

impl TriggerFailure {
    pub fn name(&self) -> &'static str {
        match &self.0 {
            TriggerError::State(state) => state.name(),
            TriggerError::Workflow(WorkflowError::Unavailable(_)) => "WorkflowUnavailable",
            TriggerError::Workflow(WorkflowError::NotRegistered(_)) => "WorkflowNotRegistered",
        }
    }
}

impl From<TriggerFailure> for Diagnostic {
    fn from(failure: TriggerFailure) -> Self {
        Diagnostic {
            error_type: failure.name().to_owned(),
            error_message: error_chain(&failure.0),
        }
    }
}

/// The trigger's view of an event for the source bucket, or why there is none.
pub fn source_event(
    event: &ObjectCreatedEvent,
    source_bucket: &str,
) -> Result<SourceEvent, NotForUs> {
    if event.source != S3_SOURCE || event.detail_type != OBJECT_CREATED {
        return Err(NotForUs::NotObjectCreated {
            sender: event.source.clone(),
            detail_type: event.detail_type.clone(),
        });
    }
    let detail = &event.detail;
    if detail.bucket.name != source_bucket {
        return Err(NotForUs::OtherBucket(detail.bucket.name.clone()));
    }
    let time = event.time.ok_or(NotForUs::NoTime)?;
    let nanos = time.timestamp_nanos_opt().ok_or(NotForUs::NoTime)?;
    let event_time =
        OffsetDateTime::from_unix_timestamp_nanos(nanos.into()).map_err(|_| NotForUs::NoTime)?;
    let version = detail.object.version().ok_or(NotForUs::NoVersion)?;
    Ok(SourceEvent {
        key: detail.object.key.clone(),
        version: version.to_owned(),
        event_time,
    })
}

pub async fn function_handler(
    deps: &TriggerDeps,
    event: LambdaEvent<ObjectCreatedEvent>,
) -> Result<TriggerReport, TriggerFailure> {
    let event = event.payload;
    let span = tracing::info_span!(
        "source_object",
        bucket = %event.detail.bucket.name,
        key = %event.detail.object.key,
        site = Empty,
        deployment_id = Empty,
    );
    // The invocation's span (see `slipway_lambda::run`) gets the ids too, so that the
    // runtime's own lines about this event carry them.
    let spans = [tracing::Span::current(), span.clone()];
    async move {
        let source = match source_event(&event, &deps.source_bucket) {
            Ok(source) => source,
            Err(reason) => return Ok(ignored(&reason)),
        };
        match parse_source_key(&source.key) {
            Ok(SourceKey::Upload {
                site,
                deployment_id,
            }) => {
                record(&spans, "site", site);
                record(&spans, "deployment_id", deployment_id);
            }
            Ok(SourceKey::Drop { site }) => record(&spans, "site", site),
            Err(_) => {}
        }
        let outcome = on_source_object(deps.state.as_ref(), deps.workflow.as_ref(), &source)
            .await
            .inspect_err(|error| {
                tracing::error!(error = %error_chain(error), "source object not handled; Lambda retries it");
            })?;
        Ok(match outcome {
            TriggerOutcome::Started {
                deployment_id,
                execution_name,
            } => {
                record(&spans, "deployment_id", deployment_id);
                tracing::info!(%execution_name, "deploy started");
                TriggerReport::Started {
                    deployment_id,
                    execution_name,
                }
            }
            TriggerOutcome::AlreadyStarted {
                deployment_id,
                execution_name,
            } => {
                record(&spans, "deployment_id", deployment_id);
                tracing::info!(%execution_name, "repeated event: the deploy was already started");
                TriggerReport::AlreadyStarted {
                    deployment_id,
                    execution_name,
                }
            }
            TriggerOutcome::Ignored(reason) => ignored(&reason),
        })
    }
    .instrument(span)
    .await
}

fn record(spans: &[tracing::Span], field: &str, value: impl std::fmt::Display) {
    for span in spans {
        span.record(field, display(&value));
    }
}

fn ignored(reason: &dyn std::error::Error) -> TriggerReport {
    tracing::warn!(%reason, "source object ignored");
    TriggerReport::Ignored {
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use slipway_core::model::Bucket;
    use slipway_core::model::{Deployment, DeploymentSource, DeploymentStatus, ObjectLocation};
    use slipway_core::names::SiteName;
    use slipway_core::ports::{DeployRequest, StartOutcome, Workflow};
    use slipway_testkit::embedded::{invocation, Embedded};

    use super::*;

    /// Step Functions as the trigger sees it: a start under a name already used is a no-op.
    #[derive(Default)]
    struct RecordingWorkflow {
        started: Mutex<Vec<(String, DeployRequest)>>,
    }

    #[async_trait]
    impl WorkflowStarter for RecordingWorkflow {
        async fn start(
            &self,
            _: Workflow,
            execution_name: &str,
            request: &DeployRequest,
        ) -> Result<StartOutcome, WorkflowError> {
            let mut started = self.started.lock().unwrap();
            if started.iter().any(|(name, _)| name == execution_name) {
                return Ok(StartOutcome::AlreadyStarted);
            }
            started.push((execution_name.to_owned(), request.clone()));
            Ok(StartOutcome::Started)
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("ThrottlingException: Rate exceeded")]
    struct Throttled;

    struct DownWorkflow;

    #[async_trait]
    impl WorkflowStarter for DownWorkflow {
        async fn start(
            &self,
            _: Workflow,
            _: &str,
            _: &DeployRequest,
        ) -> Result<StartOutcome, WorkflowError> {
            Err(WorkflowError::Unavailable(Box::new(Throttled)))
        }
    }

    struct Setup {
        stores: Embedded,
        workflow: Arc<RecordingWorkflow>,
        deps: TriggerDeps,
    }

    async fn setup() -> Setup {
        let stores = Embedded::new();
        stores.create_site("docs").await;
        let workflow = Arc::new(RecordingWorkflow::default());
        let deps = TriggerDeps {
            source_bucket: "acme-source".into(),
            state: Arc::new(stores.state.clone()),
            workflow: workflow.clone(),
        };
        Setup {
            stores,
            workflow,
            deps,
        }
    }

    fn fixture(json: &str) -> ObjectCreatedEvent {
        serde_json::from_str(json).unwrap()
    }

    fn site_drop() -> ObjectCreatedEvent {
        fixture(include_str!("fixtures/site-drop.json"))
    }

    impl Setup {
        fn starts(&self) -> Vec<(String, DeployRequest)> {
            self.workflow.started.lock().unwrap().clone()
        }

        async fn deployments(&self) -> Vec<Deployment> {
            let docs = SiteName::parse("docs").unwrap();
            self.stores.state.list_deployments(&docs).await.unwrap()
        }
    }

    #[tokio::test]
    async fn a_zip_dropped_under_sites_creates_a_deployment_and_starts_it() {
        let s = setup().await;

        let report = function_handler(&s.deps, invocation(site_drop()))
            .await
            .unwrap();

        let TriggerReport::Started {
            deployment_id,
            execution_name,
        } = report
        else {
            panic!("not started: {report:?}");
        };
        assert_eq!(execution_name, format!("deploy-{deployment_id}"));
        let deployments = s.deployments().await;
        assert_eq!(deployments.len(), 1);
        let deployment = &deployments[0];
        assert_eq!(deployment.id, deployment_id);
        assert_eq!(deployment.status, DeploymentStatus::Queued);
        // The key exactly as EventBridge carried it: spaces and `+` are not decoded.
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: "sites/docs/release 2024-05-01T10:00:00+02.zip".into(),
        };
        assert_eq!(deployment.source, DeploymentSource::Archive(source.clone()));
        // Ids sort by the event's time: 2024-05-01T10:00:07Z.
        assert_eq!(deployment_id.timestamp_ms(), 1_714_557_607_000);
        let starts = s.starts();
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].0, execution_name);
        assert_eq!(
            starts[0].1,
            DeployRequest {
                site: SiteName::parse("docs").unwrap(),
                deployment_id,
                source: DeploymentSource::Archive(source),
                prebuilt: false,
            }
        );
    }

    #[tokio::test]
    async fn a_repeated_event_starts_nothing_new() {
        let s = setup().await;
        let first = function_handler(&s.deps, invocation(site_drop()))
            .await
            .unwrap();

        let again = function_handler(&s.deps, invocation(site_drop()))
            .await
            .unwrap();

        let TriggerReport::Started { deployment_id, .. } = first else {
            panic!("not started: {first:?}");
        };
        assert!(matches!(
            again,
            TriggerReport::AlreadyStarted { deployment_id: id, .. } if id == deployment_id
        ));
        assert_eq!(s.starts().len(), 1);
        assert_eq!(s.deployments().await.len(), 1);
    }

    #[tokio::test]
    async fn an_api_upload_starts_the_deployment_the_api_created() {
        let s = setup().await;
        let id = DeploymentId::parse("01hwv6ckq3m8d5x2r7t9y4z0ab").unwrap();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/docs/{id}.zip"),
        };
        let queued = Deployment::queued(
            id,
            SiteName::parse("docs").unwrap(),
            source.clone(),
            true,
            OffsetDateTime::now_utc(),
        );
        s.stores.state.create_deployment(&queued).await.unwrap();

        let report = function_handler(
            &s.deps,
            invocation(fixture(include_str!("fixtures/api-upload.json"))),
        )
        .await
        .unwrap();

        assert_eq!(
            report,
            TriggerReport::Started {
                deployment_id: id,
                execution_name: format!("deploy-{id}"),
            }
        );
        let starts = s.starts();
        assert_eq!(starts.len(), 1);
        assert_eq!(
            starts[0].1.source,
            DeploymentSource::Archive(source.clone())
        );
        assert!(starts[0].1.prebuilt);
    }

    #[tokio::test]
    async fn events_it_cannot_act_on_are_ignored_without_an_error() {
        let s = setup().await;
        let mut other_bucket = site_drop();
        other_bucket.detail.bucket.name = "someone-elses-bucket".into();
        let mut outside = site_drop();
        outside.detail.object.key = "notes/docs/site.zip".into();
        let mut unknown_site = site_drop();
        unknown_site.detail.object.key = "sites/nosuch/site.zip".into();
        let mut unknown_upload = site_drop();
        unknown_upload.detail.object.key = "uploads/docs/01hwv6ckq3m8d5x2r7t9y4z0ab.zip".into();
        let mut deleted = site_drop();
        deleted.detail_type = "Object Deleted".into();
        let cases = [
            (other_bucket, "someone-elses-bucket"),
            (outside, "outside"),
            (unknown_site, "nosuch"),
            (unknown_upload, "01hwv6ckq3m8d5x2r7t9y4z0ab"),
            (deleted, "Object Deleted"),
        ];

        for (event, mentioned) in cases {
            let report = function_handler(&s.deps, invocation(event)).await.unwrap();
            match report {
                TriggerReport::Ignored { reason } => {
                    assert!(reason.contains(mentioned), "{reason:?} lacks {mentioned:?}")
                }
                other => panic!("not ignored: {other:?}"),
            }
        }
        assert!(s.starts().is_empty());
        assert!(s.deployments().await.is_empty());
    }

    #[tokio::test]
    async fn the_documented_example_is_for_another_bucket_and_is_ignored() {
        let s = setup().await;
        let event = fixture(include_str!("fixtures/aws-docs-object-created.json"));

        let report = function_handler(&s.deps, invocation(event)).await.unwrap();

        assert!(matches!(report, TriggerReport::Ignored { .. }));
        assert!(s.starts().is_empty());
    }

    #[tokio::test]
    async fn a_workflow_outage_is_an_error_lambda_retries() {
        let s = setup().await;
        let down = TriggerDeps {
            source_bucket: "acme-source".into(),
            state: s.deps.state.clone(),
            workflow: Arc::new(DownWorkflow),
        };

        let failure = function_handler(&down, invocation(site_drop()))
            .await
            .unwrap_err();

        let diagnostic = Diagnostic::from(failure);
        assert_eq!(diagnostic.error_type, "WorkflowUnavailable");
        assert!(diagnostic.error_message.contains("Rate exceeded"));
        // Lambda's retry finds the deployment already recorded and starts it.
        let retried = function_handler(&s.deps, invocation(site_drop()))
            .await
            .unwrap();
        assert!(matches!(retried, TriggerReport::Started { .. }));
        assert_eq!(s.starts().len(), 1);
    }
}
