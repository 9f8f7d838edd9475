//! Step errors as Lambda reports them. The runtime sends a [`Diagnostic`] to the Runtime API;
//! its `errorType` is what Step Functions matches in the state machine's Retry and Catch, so
//! it must be [`StepError::name`], never a Rust type name.

use std::error::Error;
use std::fmt;
use std::future::Future;

use lambda_runtime::Diagnostic;
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::steps::StepError;
use tracing::Instrument;

/// A failed step, on its way to the Lambda runtime.
#[derive(thiserror::Error)]
#[error(transparent)]
pub struct StepFailure(#[from] pub StepError);

/// The runtime logs a handler's error with `{:?}`: the stable name and the causes, rather
/// than the SDK's raw HTTP response.
impl fmt::Debug for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), error_chain(&self.0))
    }
}

impl StepFailure {
    /// The stable name the state machine matches.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl From<StepFailure> for Diagnostic {
    fn from(failure: StepFailure) -> Self {
        Diagnostic {
            error_type: failure.name().to_owned(),
            error_message: error_chain(&failure.0),
        }
    }
}

/// The error's message followed by each cause's, skipping causes the message already spells
/// out (thiserror's `{0}` repeats them), so SDK failures keep their detail in the Catch cause.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The span every step runs in: its name, the site and the deployment, on every log line.
pub fn step_span(
    step: &'static str,
    site: &SiteName,
    deployment_id: &DeploymentId,
) -> tracing::Span {
    tracing::info_span!("step", step, site = %site, deployment_id = %deployment_id)
}

/// Runs a step handler inside `span`, logging a failure with the name the state machine sees.
pub async fn run_step<T>(
    span: tracing::Span,
    step: impl Future<Output = Result<T, StepError>>,
) -> Result<T, StepFailure> {
    async move {
        step.await.map_err(|error| {
            tracing::error!(
                error_type = error.name(),
                error = %error_chain(&error),
                "step failed"
            );
            StepFailure(error)
        })
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use slipway_core::model::Bucket;
    use slipway_core::ports::{ObjectStoreError, StateError};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Dispatch(#[source] Refused);

    #[test]
    fn the_diagnostic_carries_the_stable_name_and_the_whole_cause() {
        let missing = StepFailure(StepError::Objects(ObjectStoreError::NotFound {
            bucket: Bucket::Source,
            key: "uploads/docs/x.zip".into(),
        }));
        let diagnostic = Diagnostic::from(missing);
        assert_eq!(diagnostic.error_type, "ObjectNotFound");
        assert!(diagnostic.error_message.contains("uploads/docs/x.zip"));

        let site = SiteName::parse("docs").unwrap();
        let diagnostic = Diagnostic::from(StepFailure(StepError::State(StateError::SiteNotFound(
            site,
        ))));
        assert_eq!(diagnostic.error_type, "SiteNotFound");
        assert_eq!(diagnostic.error_message, "no site named docs");

        // thiserror repeats `{0}` in the message; the SDK's inner cause would otherwise be lost.
        let unavailable = StepFailure(StepError::State(StateError::Unavailable(Box::new(
            Dispatch(Refused),
        ))));
        let diagnostic = Diagnostic::from(unavailable);
        assert_eq!(diagnostic.error_type, "StoreUnavailable");
        assert_eq!(
            diagnostic.error_message,
            "state store unavailable: dispatch failure: connection refused"
        );
    }

    #[test]
    fn the_runtimes_log_line_names_the_error_without_dumping_it() {
        let failure = StepFailure(StepError::State(StateError::Unavailable(Box::new(
            Dispatch(Refused),
        ))));
        assert_eq!(
            format!("{failure:?}"),
            "StoreUnavailable: state store unavailable: dispatch failure: connection refused"
        );
    }
}
