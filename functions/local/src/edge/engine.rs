//! The JS engine host: router.js loaded per the loading contract (the `cloudfront` import
//! swapped for a shim over the native KVS lookup) into QuickJS runtimes, one per worker
//! thread, with a deadline and a heap limit on every `handler` call.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rquickjs::promise::MaybePromise;
use rquickjs::{Context, Ctx, Exception, Function, Runtime, Value};
use slipway_core::ports::{KeyValueStore, KvsError};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::event::{EdgeRequest, EventContext, RouterOutcome, Viewer, ViewerRequestEvent};

const ROUTER_JS: &str = include_str!("../../../../infra/edge/router.js");
const IMPORT_LINE: &str = "import cf from 'cloudfront';";
const SHIM_LINE: &str = "const cf = globalThis.__slipwayCloudfront;";

/// The `cloudfront` module's KVS helper over the native lookup. Like CloudFront's, `get`
/// returns a promise that rejects when the key is missing; formats `string` and `json`.
const CLOUDFRONT_SHIM: &str = r#"
globalThis.__slipwayCloudfront = {
  kvs: () => ({
    get: async (key, options) => {
      const format = options && options.format ? options.format : 'string';
      const value = __slipwayKvsGet(String(key));
      if (format === 'json') return JSON.parse(value);
      if (format === 'string') return value;
      throw new Error(`kvs format ${format} is not supported by the local edge`);
    },
  }),
};
"#;

/// The router source compiled into this binary.
pub fn router_source() -> &'static str {
    ROUTER_JS
}

/// Applies the loading contract: swaps the `cloudfront` import line for the shim global.
pub fn shim_source(source: &str) -> Result<String, EdgeError> {
    let mut found = false;
    let lines: Vec<&str> = source
        .split('\n')
        .map(|line| {
            if !found && line.trim_end() == IMPORT_LINE {
                found = true;
                SHIM_LINE
            } else {
                line
            }
        })
        .collect();
    if found {
        Ok(lines.join("\n"))
    } else {
        Err(EdgeError::MissingImport)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("router.js has no line `{IMPORT_LINE}` to replace")]
    MissingImport,
    #[error("the JS engine failed: {0}")]
    Engine(#[source] rquickjs::Error),
    #[error("router.js threw: {0}")]
    Script(String),
    #[error("router.js ran longer than {0:?}")]
    Timeout(Duration),
    #[error("router.js returned neither a request nor a response: {0}")]
    Output(#[source] serde_json::Error),
    #[error("router.js returned an unusable response: {0}")]
    BadResponse(String),
    #[error("the key-value store failed during routing: {0}")]
    Kvs(#[source] KvsError),
    #[error("could not start a router worker: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the router workers have stopped")]
    WorkersGone,
}

/// How the router's engines are sized.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// JS worker threads, each with its own runtime and context.
    pub workers: usize,
    /// Longest a single `handler` call may run, KVS lookup included.
    pub timeout: Duration,
    /// Heap limit per runtime. CloudFront allows a function 2 MB; QuickJS itself takes about
    /// 0.1 MB, and 4 MB leaves room for engine differences while a runaway router still
    /// fails fast rather than passing locally.
    pub memory_limit: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            workers: 2,
            timeout: Duration::from_secs(1),
            memory_limit: 4 * 1024 * 1024,
        }
    }
}

struct Job {
    event: String,
    reply: oneshot::Sender<Result<RouterOutcome, EdgeError>>,
}

/// A pool of JS worker threads running router.js. QuickJS runtimes are not `Send`, so each
/// worker owns one runtime and context for its whole life and takes jobs from a channel.
pub struct EdgeRouter {
    jobs: mpsc::Sender<Job>,
}

impl EdgeRouter {
    /// Starts `config.workers` engines on `source` and waits until each has loaded it.
    /// KVS lookups run on the current tokio runtime.
    pub async fn start(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        config: &EdgeConfig,
    ) -> Result<Self, EdgeError> {
        let source = shim_source(source)?;
        let runtime = Handle::current();
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut ready = Vec::new();
        for n in 0..config.workers.max(1) {
            let (loaded, ready_rx) = oneshot::channel();
            ready.push(ready_rx);
            let (source, kvs, runtime, queue) =
                (source.clone(), kvs.clone(), runtime.clone(), queue.clone());
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("edge-js-{n}"))
                .spawn(move || match Engine::new(&source, kvs, runtime, &config) {
                    Ok(engine) => {
                        let _ = loaded.send(Ok(()));
                        engine.serve(&queue);
                    }
                    Err(error) => {
                        let _ = loaded.send(Err(error));
                    }
                })
                .map_err(EdgeError::Spawn)?;
        }
        for loaded in ready {
            loaded.await.map_err(|_| EdgeError::WorkersGone)??;
        }
        Ok(EdgeRouter { jobs })
    }

    /// Runs `handler` on a viewer-request event for `request`.
    pub async fn route(
        &self,
        request: &EdgeRequest,
        viewer: SocketAddr,
    ) -> Result<RouterOutcome, EdgeError> {
        let event = ViewerRequestEvent {
            version: "1.0",
            context: EventContext {
                event_type: "viewer-request",
                request_id: format!("{:032x}", rand::random::<u128>()),
            },
            viewer: Viewer {
                ip: viewer.ip().to_string(),
            },
            request,
        };
        let event = serde_json::to_string(&event).map_err(EdgeError::Output)?;
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { event, reply })
            .map_err(|_| EdgeError::WorkersGone)?;
        outcome.await.map_err(|_| EdgeError::WorkersGone)?
    }
}

/// One QuickJS runtime with router.js loaded. Lives on its worker thread.
struct Engine {
    runtime: Runtime,
    context: Context,
    timeout: Duration,
    deadline: Rc<Cell<Option<Instant>>>,
    timed_out: Rc<Cell<bool>>,
    kvs_failure: Rc<RefCell<Option<KvsError>>>,
}

impl Engine {
    fn new(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        tokio: Handle,
        config: &EdgeConfig,
    ) -> Result<Self, EdgeError> {
        let runtime = Runtime::new().map_err(EdgeError::Engine)?;
        runtime.set_memory_limit(config.memory_limit);
        runtime.set_max_stack_size(256 * 1024);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let timed_out: Rc<Cell<bool>> = Rc::default();
        let (until, flag) = (deadline.clone(), timed_out.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let over = until.get().is_some_and(|t| Instant::now() >= t);
            if over {
                flag.set(true);
            }
            over
        })));
        let context = Context::full(&runtime).map_err(EdgeError::Engine)?;
        let kvs_failure: Rc<RefCell<Option<KvsError>>> = Rc::default();
        let failure = kvs_failure.clone();
        let timeout = config.timeout;
        context.with(|ctx| {
            let lookup = move |ctx: Ctx<'_>, key: String| -> rquickjs::Result<String> {
                let found =
                    tokio.block_on(async { tokio::time::timeout(timeout, kvs.get(&key)).await });
                let error = match found {
                    Ok(Ok(Some(value))) => return Ok(value),
                    Ok(Ok(None)) => {
                        return Err(Exception::throw_message(
                            &ctx,
                            &format!("The key {key} does not exist"),
                        ))
                    }
                    Ok(Err(error)) => error,
                    Err(elapsed) => KvsError::Unavailable(Box::new(elapsed)),
                };
                let message = error.to_string();
                failure.replace(Some(error));
                Err(Exception::throw_message(&ctx, &message))
            };
            let lookup = Function::new(ctx.clone(), lookup).map_err(EdgeError::Engine)?;
            ctx.globals()
                .set("__slipwayKvsGet", lookup)
                .map_err(EdgeError::Engine)?;
            ctx.eval::<(), _>(CLOUDFRONT_SHIM)
                .map_err(|e| script_error(&ctx, e))?;
            ctx.eval::<(), _>(source)
                .map_err(|e| script_error(&ctx, e))?;
            ctx.globals()
                .get::<_, Function>("handler")
                .map_err(|_| EdgeError::Script("router.js defines no global `handler`".into()))?;
            Ok::<_, EdgeError>(())
        })?;
        Ok(Engine {
            runtime,
            context,
            timeout,
            deadline,
            timed_out,
            kvs_failure,
        })
    }

    fn serve(&self, queue: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
            // Every sender is gone: the edge has shut down.
            let Ok(job) = job else { return };
            let outcome = self.run(&job.event);
            // The requester may have hung up; nothing is owed to it then.
            let _ = job.reply.send(outcome);
        }
    }

    fn run(&self, event: &str) -> Result<RouterOutcome, EdgeError> {
        self.timed_out.set(false);
        self.deadline.set(Some(Instant::now() + self.timeout));
        let output = self.context.with(|ctx| {
            let fail = |e| script_error(&ctx, e);
            let handler: Function = ctx.globals().get("handler").map_err(fail)?;
            let event = ctx.json_parse(event).map_err(fail)?;
            let result: MaybePromise = handler.call((event,)).map_err(fail)?;
            let value: Value = result.finish().map_err(|e| match e {
                rquickjs::Error::WouldBlock => {
                    EdgeError::Script("handler's promise never settled".into())
                }
                e => script_error(&ctx, e),
            })?;
            let json = ctx.json_stringify(value).map_err(fail)?;
            let json = json.ok_or_else(|| EdgeError::Script("handler returned undefined".into()));
            json?.to_string().map_err(fail)
        });
        // Settle what the run left queued (promises nobody awaited), still under the
        // deadline; a job that throws is consumed all the same.
        while !self.timed_out.get() && self.runtime.is_job_pending() {
            let _ = self.runtime.execute_pending_job();
        }
        self.deadline.set(None);
        if let Some(error) = self.kvs_failure.take() {
            return Err(EdgeError::Kvs(error));
        }
        if self.timed_out.get() {
            return Err(EdgeError::Timeout(self.timeout));
        }
        serde_json::from_str(&output?).map_err(EdgeError::Output)
    }
}

fn script_error(ctx: &Ctx<'_>, error: rquickjs::Error) -> EdgeError {
    if !matches!(error, rquickjs::Error::Exception) {
        return EdgeError::Engine(error);
    }
    let thrown = ctx.catch();
    let message = if let Some(exception) = thrown.as_exception() {
        let message = exception.message().unwrap_or_default();
        match exception.stack() {
            Some(stack) if !stack.is_empty() => format!("{message}\n{stack}"),
            _ => message,
        }
    } else if let Some(text) = thrown.as_string() {
        text.to_string().unwrap_or_default()
    } else {
        format!("{thrown:?}")
    };
    EdgeError::Script(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::ResponseBody;
    use crate::sqlite::SqliteState;
    use async_trait::async_trait;
    use http::header::COOKIE;
    use http::{HeaderMap, HeaderValue, Method, Uri};

    fn request(host: &str, uri: &str) -> EdgeRequest {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        EdgeRequest::from_http(&Method::GET, &uri.parse().unwrap(), &headers)
    }

    fn viewer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 50000))
    }

    async fn one_worker(
        source: &str,
        kvs: Arc<dyn KeyValueStore>,
        timeout: Duration,
    ) -> EdgeRouter {
        let config = EdgeConfig {
            workers: 1,
            timeout,
            ..EdgeConfig::default()
        };
        EdgeRouter::start(source, kvs, &config).await.unwrap()
    }

    fn memory_kvs() -> (Arc<SqliteState>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap()),
            dir,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runaway_router_is_interrupted_and_the_worker_keeps_serving() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              if (event.request.uri === '/spin') { for (;;) {} }\n\
              return event.request;\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_millis(100)).await;
        let started = Instant::now();
        let spun = router
            .route(&request("a.localhost", "/spin"), viewer())
            .await;
        assert!(matches!(spun, Err(EdgeError::Timeout(_))), "{spun:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let next = router.route(&request("a.localhost", "/ok"), viewer()).await;
        assert!(
            matches!(next, Ok(RouterOutcome::Forward(ref r)) if r.uri == "/ok"),
            "{next:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_limit_stops_a_greedy_router() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              if (event.request.uri === '/greedy') {\n\
                const hoard = [];\n\
                for (;;) { hoard.push(`${hoard.length}`.repeat(1000)); }\n\
              }\n\
              return event.request;\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_secs(10)).await;
        let greedy = router
            .route(&request("a.localhost", "/greedy"), viewer())
            .await;
        assert!(
            matches!(greedy, Err(EdgeError::Script(ref m)) if m.contains("out of memory")),
            "{greedy:?}"
        );
        let next = router.route(&request("a.localhost", "/ok"), viewer()).await;
        assert!(matches!(next, Ok(RouterOutcome::Forward(_))), "{next:?}");
    }

    struct BrokenKvs;

    #[async_trait]
    impl KeyValueStore for BrokenKvs {
        async fn get(&self, _key: &str) -> Result<Option<String>, KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
        async fn put(&self, _key: &str, _value: &str) -> Result<(), KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
        async fn delete(&self, _key: &str) -> Result<(), KvsError> {
            Err(KvsError::Unavailable("disk on fire".into()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_kvs_is_an_error_not_an_unknown_host() {
        let router = one_worker(router_source(), Arc::new(BrokenKvs), Duration::from_secs(1)).await;
        let outcome = router
            .route(&request("docs.localhost", "/"), viewer())
            .await;
        assert!(matches!(outcome, Err(EdgeError::Kvs(_))), "{outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_router_sees_a_cloudfront_shaped_event() {
        let source = "import cf from 'cloudfront';\n\
            async function handler(event) {\n\
              return { statusCode: 200, body: JSON.stringify(event) };\n\
            }\n";
        let (kvs, _dir) = memory_kvs();
        let router = one_worker(source, kvs, Duration::from_secs(1)).await;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_static("Docs.localhost:8080"),
        );
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; sid=42"));
        let uri: Uri = "/a%20b/c?q=1&q=2&flag".parse().unwrap();
        let request = EdgeRequest::from_http(&Method::GET, &uri, &headers);
        let Ok(RouterOutcome::Respond(response)) = router.route(&request, viewer()).await else {
            panic!("expected a generated response");
        };
        let Some(ResponseBody::Text(body)) = response.body else {
            panic!("no text body")
        };
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(event["context"]["eventType"], "viewer-request");
        assert_eq!(event["viewer"]["ip"], "127.0.0.1");
        let seen = &event["request"];
        assert_eq!(seen["method"], "GET");
        assert_eq!(seen["uri"], "/a%20b/c");
        assert_eq!(seen["headers"]["host"]["value"], "Docs.localhost:8080");
        assert_eq!(seen["headers"]["x-multi"]["multiValue"][1]["value"], "b");
        assert!(seen["headers"].get("cookie").is_none());
        assert_eq!(seen["cookies"]["sid"]["value"], "42");
        assert_eq!(seen["querystring"]["q"]["multiValue"][1]["value"], "2");
        assert_eq!(seen["querystring"]["flag"]["value"], "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_router_without_the_import_line_is_refused() {
        let (kvs, _dir) = memory_kvs();
        let config = EdgeConfig::default();
        let refused = EdgeRouter::start(
            "async function handler(e) { return e.request; }",
            kvs,
            &config,
        )
        .await;
        assert!(matches!(refused, Err(EdgeError::MissingImport)));
        let shimmed = shim_source(router_source()).unwrap();
        assert!(shimmed.contains(SHIM_LINE) && !shimmed.contains(IMPORT_LINE));
    }
}
