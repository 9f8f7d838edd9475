//! `lambda_runtime::run` plus one layer: every invocation runs in a span that carries the
//! `site` and `deployment_id` of its payload. The runtime itself logs (a handler's error, a
//! payload that does not deserialise) outside the handler's own span; inside this one, those
//! lines carry the deployment's fields too.

use std::fmt::Debug;
use std::future::Future;
use std::task::{Context, Poll};

use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{
    Diagnostic, Error, IntoFunctionResponse, LambdaEvent, LambdaInvocation, Runtime,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use slipway_core::names::{DeploymentId, SiteName};
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing::Instrument;

/// Runs `handler` on the Lambda Runtime API, as `lambda_runtime::run` does, inside
/// [`DeploymentSpanLayer`].
pub async fn run<A, F, R, B, S, D, E>(handler: F) -> Result<(), Error>
where
    F: Service<LambdaEvent<A>, Response = R>,
    F::Future: Future<Output = Result<R, F::Error>>,
    F::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    R: IntoFunctionResponse<B, S>,
    B: Serialize,
    S: futures::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<Error> + Send + Debug,
{
    Runtime::new(handler)
        .layer(DeploymentSpanLayer)
        .layer(TracingLayer::new())
        .run()
        .await
}

/// Opens the `invocation` span with the payload's top-level `site` and `deployment_id` (every
/// step's input has both). Fields a payload lacks stay empty, for the handler to record.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeploymentSpanLayer;

impl<S> Layer<S> for DeploymentSpanLayer {
    type Service = DeploymentSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeploymentSpan { inner }
    }
}

#[derive(Debug, Clone)]
pub struct DeploymentSpan<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for DeploymentSpan<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
{
    type Response = ();
    type Error = Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let span = invocation_span(&invocation.body);
        let future = {
            let _entered = span.enter();
            self.inner.call(invocation)
        };
        future.instrument(span)
    }
}

#[derive(Deserialize)]
struct PayloadIds {
    site: Option<String>,
    deployment_id: Option<String>,
}

fn invocation_span(payload: &[u8]) -> tracing::Span {
    let span = tracing::info_span!("invocation", site = Empty, deployment_id = Empty);
    if let Ok(ids) = serde_json::from_slice::<PayloadIds>(payload) {
        if let Some(site) = ids.site.as_deref().and_then(|s| SiteName::parse(s).ok()) {
            span.record("site", tracing::field::display(site));
        }
        let id = ids.deployment_id.as_deref();
        if let Some(id) = id.and_then(|id| DeploymentId::parse(id).ok()) {
            span.record("deployment_id", tracing::field::display(id));
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use lambda_runtime::tower::service_fn;

    use super::*;
    use crate::logging::capture::{capture, Captured};

    fn invocation(payload: &str) -> LambdaInvocation {
        LambdaInvocation {
            parts: http::Response::new(()).into_parts().0,
            body: bytes::Bytes::from(payload.to_owned()),
            context: lambda_runtime::Context::default(),
        }
    }

    /// Logs the way the runtime's own layers do, outside any handler span.
    async fn runtime_log(_: LambdaInvocation) -> Result<(), Error> {
        tracing::error!("handler failed");
        Ok(())
    }

    async fn log_one(payload: &str) -> serde_json::Map<String, serde_json::Value> {
        let captured = Captured::default();
        let _guard = capture(&captured);
        let mut service = DeploymentSpanLayer.layer(service_fn(runtime_log));
        service.call(invocation(payload)).await.unwrap();
        let mut lines = captured.lines();
        assert_eq!(lines.len(), 1);
        lines.remove(0)
    }

    #[tokio::test]
    async fn the_runtimes_own_lines_carry_the_steps_site_and_deployment() {
        let line = log_one(
            r#"{"site":"docs","deployment_id":"01hwv6ckq3m8d5x2r7t9y4z0ab","source":{"bucket":"source","key":"k"}}"#,
        )
        .await;
        assert_eq!(line["site"], "docs");
        assert_eq!(line["deployment_id"], "01hwv6ckq3m8d5x2r7t9y4z0ab");
        assert_eq!(line["message"], "handler failed");
    }

    #[tokio::test]
    async fn payloads_without_valid_ids_leave_the_fields_out() {
        for payload in [
            r#"{"detail-type":"Object Created","detail":{}}"#,
            r#"{"site":"Not A Site","deployment_id":"nope"}"#,
            r#"{"site":42}"#,
            "not json",
        ] {
            let line = log_one(payload).await;
            assert!(!line.contains_key("site"), "{payload}");
            assert!(!line.contains_key("deployment_id"), "{payload}");
        }
    }
}
