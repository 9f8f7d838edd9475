//! JSON logs for CloudWatch: one object per line, with the fields of every enclosing span
//! flattened onto the line. A step's span carries `site` and `deployment_id`, so every line
//! it logs, including those from inside the AWS SDK's own spans, can be filtered on them in
//! Logs Insights without digging into nested span lists. The runtime's invocation span adds
//! `requestId`.
//!
//! No timestamp: CloudWatch Logs stamps every line when it receives it. No ANSI colours.
//! The level comes from `RUST_LOG` (e.g. `info,aws_smithy_runtime=debug`), `info` when unset.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber on stdout for the whole process. Call once, first thing in main.
pub fn init() {
    let filter = EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .from_env_lossy();
    build(filter, std::io::stdout).init();
}

fn build<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_writer(writer)
        .finish()
}

/// One JSON object per event: `level`, `target`, the fields of every span in scope (outermost
/// first, so an inner span's field wins), then the event's own fields (`message` included).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() {
                    merge_object(&mut line, &fields.fields);
                }
            }
        }
        let mut own = String::new();
        ctx.format_fields(Writer::new(&mut own), event)?;
        merge_object(&mut line, &own);
        let meta = event.metadata();
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Copies the fields of a JSON object (as [`JsonFields`] writes them) into `line`.
fn merge_object(line: &mut Map<String, Value>, json: &str) {
    if json.is_empty() {
        return;
    }
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(json) {
        line.extend(fields);
    }
}

/// Captures formatted lines in tests.
#[cfg(test)]
pub(crate) mod capture {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{Map, Value};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::EnvFilter;

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        pub fn lines(&self) -> Vec<Map<String, Value>> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| match serde_json::from_str(line) {
                    Ok(Value::Object(map)) => map,
                    other => panic!("not a JSON object: {line:?} ({other:?})"),
                })
                .collect()
        }
    }

    /// Sends this thread's events, at every level down to debug, to `captured`.
    pub fn capture(captured: &Captured) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(super::build(EnvFilter::new("debug"), captured.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::capture::{capture, Captured};

    #[test]
    fn every_line_carries_the_fields_of_all_enclosing_spans() {
        let captured = Captured::default();
        {
            let _guard = capture(&captured);
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _invoke = invoke.enter();
            let step = tracing::info_span!(
                "step",
                step = "publish",
                site = "docs",
                deployment_id = "01jd0000000000000000000000"
            );
            let _step = step.enter();
            tracing::info!(files = 3, "published");
            // An SDK span nested inside the step: the step's fields still reach the line.
            let sdk =
                tracing::debug_span!("invoke", rpc.service = "S3", site = tracing::field::Empty);
            let _sdk = sdk.enter();
            tracing::warn!(attempt = 2u64, "retrying");
        }
        let lines = captured.lines();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line["site"], "docs");
            assert_eq!(line["deployment_id"], "01jd0000000000000000000000");
            assert_eq!(line["requestId"], "req-1");
            assert_eq!(line["step"], "publish");
        }
        assert_eq!(lines[0]["message"], "published");
        assert_eq!(lines[0]["files"], 3);
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[1]["message"], "retrying");
        assert_eq!(lines[1]["rpc.service"], "S3");
        assert_eq!(lines[1]["level"], "WARN");
        assert!(lines.iter().all(|l| !l.contains_key("timestamp")));
    }

    #[test]
    fn fields_recorded_later_and_inner_spans_win() {
        let captured = Captured::default();
        {
            let _guard = capture(&captured);
            let outer = tracing::info_span!(
                "trigger",
                site = tracing::field::Empty,
                deployment_id = tracing::field::Empty
            );
            let _outer = outer.enter();
            tracing::info!("before the key is parsed");
            outer.record("site", "docs");
            outer.record("deployment_id", "01jd0000000000000000000000");
            let inner = tracing::info_span!("child", site = "blog");
            let _inner = inner.enter();
            tracing::info!(error = "boom", "after");
        }
        let lines = captured.lines();
        assert!(!lines[0].contains_key("site"));
        assert_eq!(lines[1]["site"], "blog");
        assert_eq!(lines[1]["deployment_id"], "01jd0000000000000000000000");
        assert_eq!(lines[1]["error"], "boom");
    }
}
