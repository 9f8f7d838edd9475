//! `slipway dev`'s Lambda service against real processes: a custom-runtime `bootstrap` (a
//! Python script speaking the Runtime API with nothing but the standard library), Python
//! handlers under `awslambdaric`, and Node handlers under slipway's runtime loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use slipway_core::service::{Concurrency, FunctionConfig, Handler, Runtime, TimeoutSeconds};
use slipway_local::lambda::{
    FunctionLogs, FunctionPool, FunctionSpec, Interpreters, InvokeError, LogLine, Outcome,
    NODE_RUNTIME_JS,
};

/// A custom runtime whose behaviour each event chooses (`{"action": ...}`), and whose init
/// the `MODE` variable can make fail.
const BOOTSTRAP: &str = r#"#!/usr/bin/env python3
import json, os, sys, time, urllib.request

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"

def post(url, doc, error_type=None, raw=None):
    data = raw if raw is not None else json.dumps(doc).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if error_type:
        request.add_header("Lambda-Runtime-Function-Error-Type", error_type)
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

mode = os.environ.get("MODE", "")
print("init", mode, flush=True)
if mode == "crash-init":
    sys.exit(3)
if mode == "init-error":
    post(api + "/init/error", {"errorType": "Custom.ConfigMissing", "errorMessage": "no config"}, "Custom.ConfigMissing")
    sys.exit(1)
if mode == "slow-init":
    time.sleep(1)

while True:
    with urllib.request.urlopen(api + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {k.lower(): v for k, v in r.headers.items()}
        event = json.loads(r.read() or b"null")
    action = event.get("action", "echo") if isinstance(event, dict) else "echo"
    print("handling", action, flush=True)
    url = api + "/invocation/" + rid
    if action == "fail":
        post(url + "/error", {"errorType": "Handled.Failure", "errorMessage": "it failed"}, "Handled.Failure")
    elif action == "exit":
        os._exit(7)
    elif action == "sleep":
        time.sleep(event["seconds"])
        post(url + "/response", {"slept": event["seconds"]})
    elif action == "big":
        status, body = post(url + "/response", None, raw=b'"' + b"x" * (7 * 1024 * 1024) + b'"')
        print("big answered", status, flush=True)
    elif action == "twice":
        post(url + "/response", {"first": True})
        status, body = post(url + "/response", {"second": True})
        print("second answer", status, body.decode(), flush=True)
    else:
        post(url + "/response", {"event": event, "headers": headers, "env": dict(os.environ), "pid": os.getpid()})
"#;

#[derive(Default)]
struct CollectedLogs(Mutex<Vec<LogLine>>);

impl FunctionLogs for CollectedLogs {
    fn write(&self, line: LogLine) {
        self.0.lock().unwrap().push(line);
    }
}

impl CollectedLogs {
    fn lines(&self) -> Vec<LogLine> {
        self.0.lock().unwrap().clone()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    logs: Arc<CollectedLogs>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            logs: Arc::default(),
        }
    }

    fn interpreters(&self) -> Arc<Interpreters> {
        let node_runtime = self.dir.path().join("node-runtime.mjs");
        std::fs::write(&node_runtime, NODE_RUNTIME_JS).unwrap();
        Arc::new(Interpreters {
            python: std::env::var_os("SLIPWAY_TEST_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join(".tools/venv/bin/python")),
            node: PathBuf::from("node"),
            node_runtime,
        })
    }

    /// A code directory holding `files` (path, content, executable).
    fn code(&self, name: &str, files: &[(&str, &str, bool)]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir.path().join(name);
        for (path, content, executable) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
            let mode = if *executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        dir
    }

    fn pool(
        &self,
        code_dir: PathBuf,
        config: FunctionConfig,
        env: &[(&str, &str)],
    ) -> FunctionPool {
        let spec = FunctionSpec {
            function_name: "slipway-docs-api".into(),
            version: "3".into(),
            invoked_arn: "arn:aws:lambda:eu-west-1:000000000000:function:slipway-docs-api:live"
                .into(),
            code_dir,
            config,
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            region: "eu-west-1".into(),
        };
        FunctionPool::new(spec, self.interpreters(), self.logs.clone())
    }

    fn custom(&self, env: &[(&str, &str)]) -> FunctionPool {
        let code = self.code("custom", &[("bootstrap", BOOTSTRAP, true)]);
        self.pool(code, FunctionConfig::defaults(Runtime::ProvidedAl2023), env)
    }
}

fn event(doc: Value) -> Bytes {
    Bytes::from(doc.to_string())
}

fn response(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Response(body) => serde_json::from_slice(body).unwrap(),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn function_error(outcome: &Outcome) -> (String, Value) {
    match outcome {
        Outcome::FunctionError { error_type, body } => {
            (error_type.clone(), serde_json::from_slice(body).unwrap())
        }
        other => panic!("expected a function error, got {other:?}"),
    }
}

fn process_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn a_warm_instance_gets_lambdas_headers_and_environment_and_is_reused() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[("GREETING", "hello")]);

    let before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let first = pool.invoke(event(json!({"path": "/"}))).await.unwrap();
    let answer = response(&first.outcome);
    assert_eq!(answer["event"], json!({"path": "/"}));
    let headers = &answer["headers"];
    assert_eq!(
        headers["lambda-runtime-aws-request-id"],
        first.request_id.as_str()
    );
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:eu-west-1:000000000000:function:slipway-docs-api:live"
    );
    assert!(headers["lambda-runtime-trace-id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    // An absolute deadline: now plus the 3 s default timeout.
    let deadline: i128 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before + 2_500..=before + 4_000).contains(&deadline),
        "{deadline} vs {before}"
    );
    let env = &answer["env"];
    for (name, value) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "slipway-docs-api"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "3"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/slipway-docs-api"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("GREETING", "hello"),
    ] {
        assert_eq!(env[name], value, "{name}");
    }
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(api.starts_with("127.0.0.1:") && !api.contains('/'), "{api}");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"]
        .as_str()
        .unwrap()
        .contains("/[3]"));
    assert_eq!(
        env.get("AWS_EXECUTION_ENV"),
        None,
        "custom runtimes have none"
    );
    assert_eq!(first.executed_version, "3");

    let second = pool.invoke(event(json!({"n": 2}))).await.unwrap();
    assert_eq!(
        response(&second.outcome)["pid"],
        answer["pid"],
        "the warm instance serves again"
    );
    assert_ne!(second.request_id, first.request_id);
    assert_eq!(pool.running(), 1);

    let logs = fixture.logs.lines();
    let of_second: Vec<&str> = logs
        .iter()
        .filter(|l| l.request_id.as_deref() == Some(second.request_id.as_str()))
        .map(|l| l.line.as_str())
        .collect();
    assert!(
        of_second.iter().any(|l| l.starts_with("START RequestId")),
        "{of_second:?}"
    );
    assert!(of_second.contains(&"handling echo"), "{of_second:?}");
    assert!(
        of_second.iter().any(|l| l.starts_with("REPORT RequestId")),
        "{of_second:?}"
    );
}

#[tokio::test]
async fn errors_the_function_reports_come_back_as_it_sent_them() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[]);
    let failed = pool.invoke(event(json!({"action": "fail"}))).await.unwrap();
    let (error_type, body) = function_error(&failed.outcome);
    assert_eq!(error_type, "Handled.Failure");
    assert_eq!(body["errorMessage"], "it failed");
    // The instance stays warm after a handled error.
    let after = pool.invoke(event(json!({}))).await.unwrap();
    response(&after.outcome);
    assert_eq!(pool.running(), 1);
}

#[tokio::test]
async fn a_second_answer_to_one_invocation_is_refused() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[]);
    let answered = pool
        .invoke(event(json!({"action": "twice"})))
        .await
        .unwrap();
    assert_eq!(response(&answered.outcome), json!({"first": true}));
    let logs = fixture.logs.clone();
    eventually("the second answer's refusal is logged", || {
        logs.lines().iter().any(|l| {
            l.line.starts_with("second answer 403") && l.line.contains("InvalidStateTransition")
        })
    })
    .await;
}

#[tokio::test]
async fn packages_that_cannot_start_fail_as_lambda_reports_them() {
    let fixture = Fixture::new();
    let defaults = FunctionConfig::defaults(Runtime::ProvidedAl2023);

    let missing = fixture.pool(
        fixture.code("empty", &[("README", "", false)]),
        defaults.clone(),
        &[],
    );
    let (error_type, body) =
        function_error(&missing.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Runtime.InvalidEntrypoint");
    assert!(body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("Couldn't find valid bootstrap"));

    let plain = fixture.code("plain", &[("bootstrap", BOOTSTRAP, false)]);
    let not_executable = fixture.pool(plain, defaults, &[]);
    let (error_type, body) = function_error(
        &not_executable
            .invoke(event(json!({})))
            .await
            .unwrap()
            .outcome,
    );
    assert_eq!(error_type, "Runtime.InvalidEntrypoint");
    assert!(body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("permission denied"));

    let crashing = fixture.custom(&[("MODE", "crash-init")]);
    let (error_type, body) =
        function_error(&crashing.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 3"),
        "{body}"
    );
    assert_eq!(crashing.running(), 0);

    let reporting = fixture.custom(&[("MODE", "init-error")]);
    let (error_type, body) =
        function_error(&reporting.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Custom.ConfigMissing");
    assert_eq!(body["errorMessage"], "no config");
}

#[tokio::test]
async fn an_instance_that_exits_mid_request_fails_it_and_is_replaced() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[]);
    let first_pid = response(&pool.invoke(event(json!({}))).await.unwrap().outcome)["pid"].clone();

    let crashed = pool.invoke(event(json!({"action": "exit"}))).await.unwrap();
    let (error_type, body) = function_error(&crashed.outcome);
    assert_eq!(error_type, "Runtime.ExitError");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains(&crashed.request_id) && message.contains("exit status 7"),
        "{message}"
    );

    let next = pool.invoke(event(json!({}))).await.unwrap();
    assert_ne!(
        response(&next.outcome)["pid"],
        first_pid,
        "a fresh instance"
    );
    assert_eq!(pool.running(), 1);
}

#[tokio::test]
async fn an_invocation_past_its_timeout_is_cut_off_and_its_instance_killed() {
    let fixture = Fixture::new();
    let code = fixture.code("custom", &[("bootstrap", BOOTSTRAP, true)]);
    let config = FunctionConfig {
        timeout: TimeoutSeconds::try_from(1).unwrap(),
        ..FunctionConfig::defaults(Runtime::ProvidedAl2023)
    };
    let pool = fixture.pool(code, config, &[]);
    let pid = response(&pool.invoke(event(json!({}))).await.unwrap().outcome)["pid"]
        .as_u64()
        .unwrap();

    let started = std::time::Instant::now();
    let timed_out = pool
        .invoke(event(json!({"action": "sleep", "seconds": 30})))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (error_type, body) = function_error(&timed_out.outcome);
    assert_eq!(error_type, "Sandbox.Timedout");
    assert!(body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("Task timed out after 1.00 seconds"));
    eventually("the timed-out process is killed", || !process_alive(pid)).await;

    let next = pool.invoke(event(json!({}))).await.unwrap();
    assert_ne!(response(&next.outcome)["pid"].as_u64(), Some(pid));
}

#[tokio::test]
async fn invocations_beyond_the_concurrency_limit_are_throttled() {
    let fixture = Fixture::new();
    let code = fixture.code("custom", &[("bootstrap", BOOTSTRAP, true)]);
    let config = FunctionConfig {
        concurrency: Concurrency::try_from(1).unwrap(),
        ..FunctionConfig::defaults(Runtime::ProvidedAl2023)
    };
    let pool = Arc::new(fixture.pool(code, config, &[]));
    response(&pool.invoke(event(json!({}))).await.unwrap().outcome);

    let busy = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.invoke(event(json!({"action": "sleep", "seconds": 1})))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let throttled = pool.invoke(event(json!({}))).await;
    assert!(
        matches!(throttled, Err(InvokeError::Throttled { limit: 1, .. })),
        "{throttled:?}"
    );
    assert_eq!(
        response(&busy.await.unwrap().unwrap().outcome),
        json!({"slept": 1})
    );
    // Free again: the same instance serves.
    response(&pool.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(pool.running(), 1);
}

#[tokio::test]
async fn an_instance_still_starting_counts_against_the_concurrency_limit() {
    let fixture = Fixture::new();
    let code = fixture.code("custom", &[("bootstrap", BOOTSTRAP, true)]);
    let config = FunctionConfig {
        concurrency: Concurrency::try_from(1).unwrap(),
        ..FunctionConfig::defaults(Runtime::ProvidedAl2023)
    };
    let pool = Arc::new(fixture.pool(code, config, &[("MODE", "slow-init")]));
    let cold = tokio::spawn({
        let pool = pool.clone();
        async move { pool.invoke(event(json!({}))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let throttled = pool.invoke(event(json!({}))).await;
    assert!(
        matches!(throttled, Err(InvokeError::Throttled { limit: 1, .. })),
        "{throttled:?}"
    );
    response(&cold.await.unwrap().unwrap().outcome);
    assert_eq!(pool.running(), 1);
}

#[tokio::test]
async fn payloads_over_six_megabytes_are_refused_both_ways() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[]);
    let huge = Bytes::from(vec![b' '; 6 * 1024 * 1024 + 1]);
    assert!(matches!(
        pool.invoke(huge).await,
        Err(InvokeError::PayloadTooLarge { .. })
    ));

    let big = pool.invoke(event(json!({"action": "big"}))).await.unwrap();
    let (error_type, _) = function_error(&big.outcome);
    assert_eq!(error_type, "Function.ResponseSizeTooLarge");
    let logs = fixture.logs.clone();
    eventually("the runtime hears 413", || {
        logs.lines().iter().any(|l| l.line == "big answered 413")
    })
    .await;
}

#[tokio::test]
async fn idle_instances_are_stopped_with_their_processes() {
    let fixture = Fixture::new();
    let pool = fixture.custom(&[]);
    let pid = response(&pool.invoke(event(json!({}))).await.unwrap().outcome)["pid"]
        .as_u64()
        .unwrap();
    assert_eq!(pool.stop_idle(Duration::from_secs(60)), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stop_idle(Duration::from_millis(50)), 1);
    assert_eq!(pool.running(), 0);
    eventually("the idle process is gone", || !process_alive(pid)).await;
}

#[tokio::test]
async fn python_handlers_run_under_the_runtime_interface_client() {
    let fixture = Fixture::new();
    let python = Runtime::parse("python3.12").unwrap();
    let code = fixture.code(
        "python",
        &[
            (
                "app/main.py",
                "import os\nCOLD = os.getpid()\n\ndef handler(event, context):\n    \
                 if event.get('fail'):\n        raise ValueError('bad input')\n    \
                 return {'echo': event, 'request_id': context.aws_request_id, \
                 'remaining': context.get_remaining_time_in_millis(), 'pid': COLD, \
                 'env': os.environ.get('AWS_EXECUTION_ENV')}\n",
                false,
            ),
            (
                "broken.py",
                "def handler(event, context)\n    return 1\n",
                false,
            ),
        ],
    );
    let config = |handler: &str| FunctionConfig {
        handler: Handler::parse(python, handler).unwrap(),
        ..FunctionConfig::defaults(python)
    };

    let pool = fixture.pool(code.clone(), config("app/main.handler"), &[]);
    let ok = pool.invoke(event(json!({"q": 1}))).await.unwrap();
    let answer = response(&ok.outcome);
    assert_eq!(answer["echo"], json!({"q": 1}));
    assert_eq!(answer["request_id"], ok.request_id.as_str());
    assert!(answer["remaining"].as_u64().unwrap() > 1_000);
    assert_eq!(answer["env"], "AWS_Lambda_python3.12");

    let failed = pool.invoke(event(json!({"fail": true}))).await.unwrap();
    let (error_type, body) = function_error(&failed.outcome);
    assert_eq!(error_type, "ValueError");
    assert_eq!(body["errorMessage"], "bad input");

    let missing = fixture.pool(code.clone(), config("nowhere.handler"), &[]);
    let (error_type, _) = function_error(&missing.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Runtime.ImportModuleError");

    let no_function = fixture.pool(code.clone(), config("app/main.absent"), &[]);
    let (error_type, _) =
        function_error(&no_function.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Runtime.HandlerNotFound");

    let syntax = fixture.pool(code, config("broken.handler"), &[]);
    let (error_type, _) = function_error(&syntax.invoke(event(json!({}))).await.unwrap().outcome);
    assert_eq!(error_type, "Runtime.UserCodeSyntaxError");
}

#[tokio::test]
async fn node_handlers_run_under_slipways_runtime_loop() {
    let fixture = Fixture::new();
    let node = Runtime::Nodejs20;
    let code = fixture.code(
        "node",
        &[
            (
                "index.mjs",
                "const cold = process.pid;\nexport const handler = async (event, context) => {\n  \
                 if (event.fail) throw new TypeError('bad input');\n  \
                 return { echo: event, requestId: context.awsRequestId, \
                 remaining: context.getRemainingTimeInMillis(), pid: cold };\n};\n",
                false,
            ),
            (
                "legacy.js",
                "exports.handler = (event, context, callback) => callback(null, { legacy: true });\n",
                false,
            ),
            ("broken.mjs", "export const handler = async (event => {;\n", false),
        ],
    );
    let config = |handler: &str| FunctionConfig {
        handler: Handler::parse(node, handler).unwrap(),
        ..FunctionConfig::defaults(node)
    };

    let pool = fixture.pool(code.clone(), config("index.handler"), &[]);
    let ok = pool.invoke(event(json!({"q": 1}))).await.unwrap();
    let answer = response(&ok.outcome);
    assert_eq!(answer["echo"], json!({"q": 1}));
    assert_eq!(answer["requestId"], ok.request_id.as_str());
    assert!(answer["remaining"].as_u64().unwrap() > 1_000);
    let failed = pool.invoke(event(json!({"fail": true}))).await.unwrap();
    let (error_type, body) = function_error(&failed.outcome);
    assert_eq!(error_type, "TypeError");
    assert_eq!(body["errorMessage"], "bad input");
    assert!(
        body["trace"].is_array(),
        "Node's error document has `trace`"
    );
    let again = pool.invoke(event(json!({}))).await.unwrap();
    assert_eq!(response(&again.outcome)["pid"], answer["pid"]);

    let legacy = fixture.pool(code.clone(), config("legacy.handler"), &[]);
    assert_eq!(
        response(&legacy.invoke(event(json!({}))).await.unwrap().outcome),
        json!({"legacy": true})
    );

    for (handler, expected) in [
        ("nowhere.handler", "Runtime.ImportModuleError"),
        ("index.absent", "Runtime.HandlerNotFound"),
        ("broken.handler", "Runtime.UserCodeSyntaxError"),
    ] {
        let pool = fixture.pool(code.clone(), config(handler), &[]);
        let (error_type, _) = function_error(&pool.invoke(event(json!({}))).await.unwrap().outcome);
        assert_eq!(error_type, expected, "{handler}");
    }
}
