//! The real `slipway` binary against a stand-in for API Gateway's IAM authorizer: a
//! 127.0.0.1 server that recomputes every request's SigV4 signature with the secret it knows
//! and answers 403, as API Gateway does, when it does not match. Credentials reach the binary
//! through the standard chain (environment variables or a profile file in a temp dir); the
//! environment is otherwise empty and instance metadata is off, so nothing leaves the machine.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use slipway_aws::signing::SERVICE;
use slipway_core::api_types::{CreateSiteRequest, SiteView};
use slipway_core::model::{RoutingFlags, Site};
use slipway_core::names::SiteName;
use slipway_testkit::aws::signature_check::{Scheme, SignatureCheck};
use tokio::net::TcpListener;

const ACCESS_KEY: &str = "AKIDSLIPWAYTEST";
const SECRET_KEY: &str = "slipway/test/secret/key+0123456789abcdefgh";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";

struct Gateway {
    url: String,
    state: Arc<GatewayState>,
}

struct GatewayState {
    check: SignatureCheck,
    sites: Mutex<Vec<SiteView>>,
    /// `METHOD /path STATUS` for every request.
    seen: Mutex<Vec<String>>,
}

impl Gateway {
    /// Accepts requests signed by the test key pair for `region` (carrying `token`, if any).
    async fn start(region: &str, token: Option<&str>) -> Self {
        let state = Arc::new(GatewayState {
            check: SignatureCheck::new(
                ACCESS_KEY,
                SECRET_KEY,
                token,
                SERVICE,
                Scheme::V4 {
                    region: region.to_owned(),
                },
            ),
            sites: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn seen(&self) -> Vec<String> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn handle(State(state): State<Arc<GatewayState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let response = match state.check.verify(&parts, &body) {
        Err(rejection) => {
            let mut response = json(
                StatusCode::FORBIDDEN,
                serde_json::json!({ "message": rejection.to_string() }),
            );
            response.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static(rejection.code()),
            );
            response
        }
        Ok(()) => api(&state, &parts.method, parts.uri.path(), &body),
    };
    state
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!(
            "{} {} {}",
            parts.method,
            parts.uri.path(),
            response.status().as_u16()
        ));
    response
}

/// Just enough of the API: create and list sites.
fn api(state: &GatewayState, method: &Method, path: &str, body: &[u8]) -> Response {
    let mut sites = state.sites.lock().unwrap_or_else(PoisonError::into_inner);
    match (method.as_str(), path) {
        ("GET", "/sites") => json(StatusCode::OK, serde_json::to_value(&*sites).unwrap()),
        ("POST", "/sites") => {
            let request: CreateSiteRequest = serde_json::from_slice(body).unwrap();
            let name = SiteName::parse(&request.name).unwrap();
            let url = format!("https://{name}.example.com/");
            let site = Site {
                name,
                routing: RoutingFlags {
                    spa: request.spa,
                    clean_urls: request.clean_urls,
                },
                retain: request.retain.unwrap_or(Site::DEFAULT_RETAIN),
                created_at: time::OffsetDateTime::now_utc(),
                production: None,
                repo: None,
            };
            let view = SiteView::new(site, url);
            sites.push(view.clone());
            json(StatusCode::CREATED, serde_json::to_value(view).unwrap())
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": { "code": "not_found", "message": "no such route" } }),
        ),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// An AWS home with empty (or given) config and credentials files.
struct AwsHome {
    dir: tempfile::TempDir,
}

impl AwsHome {
    fn new(config: &str, credentials: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `slipway args` with nothing in its environment but `env` and the AWS home.
async fn slipway(home: &AwsHome, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_slipway"));
    command
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .args(args);
    let output = command.output().await.unwrap();
    eprintln!(
        "slipway {args:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const ENV_KEYS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
    ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ("AWS_SESSION_TOKEN", SESSION_TOKEN),
];

#[tokio::test]
async fn environment_credentials_sign_creating_and_listing_sites() {
    let gateway = Gateway::start("us-east-1", Some(SESSION_TOKEN)).await;
    let home = AwsHome::new("", "");
    let endpoint = ["--endpoint", gateway.url.as_str(), "--sigv4"];

    let created = slipway(
        &home,
        &ENV_KEYS,
        &[
            &[
                "sites",
                "create",
                "docs",
                "--spa",
                "--json",
                "--region",
                "us-east-1",
            ],
            &endpoint[..],
        ]
        .concat(),
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(stdout_json(&created)["name"], "docs");
    assert_eq!(stdout_json(&created)["spa"], true);

    // The region from AWS_REGION this time; the switch from SLIPWAY_SIGV4.
    let env = [
        &ENV_KEYS[..],
        &[("AWS_REGION", "us-east-1"), ("SLIPWAY_SIGV4", "1")],
    ]
    .concat();
    let listed = slipway(
        &home,
        &env,
        &["sites", "list", "--json", "--endpoint", &gateway.url],
    )
    .await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let sites = stdout_json(&listed);
    let names: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|site| site["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs"]);
    assert_eq!(gateway.seen(), ["POST /sites 201", "GET /sites 200"]);
}

#[tokio::test]
async fn a_named_profile_is_the_only_source_of_credentials() {
    let gateway = Gateway::start("eu-west-1", None).await;
    let home = AwsHome::new(
        "[profile deployer]\nregion = eu-west-1\n",
        &format!(
            "[deployer]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    );
    // Keys in the environment that the gateway does not know.
    let stray = [
        ("AWS_ACCESS_KEY_ID", "AKIDSTRAY"),
        ("AWS_SECRET_ACCESS_KEY", "stray-secret"),
        ("AWS_REGION", "eu-west-1"),
    ];

    let with_profile = slipway(
        &home,
        &stray,
        &[
            "sites",
            "list",
            "--json",
            "--sigv4",
            "--endpoint",
            &gateway.url,
            "--profile",
            "deployer",
        ],
    )
    .await;
    assert!(with_profile.status.success(), "{}", stderr(&with_profile));
    assert_eq!(stdout_json(&with_profile), serde_json::json!([]));

    let without = slipway(
        &home,
        &stray,
        &[
            "sites",
            "list",
            "--json",
            "--sigv4",
            "--endpoint",
            &gateway.url,
        ],
    )
    .await;
    assert_eq!(without.status.code(), Some(1));
    assert_eq!(stdout_json(&without)["error"]["code"], "aws_rejected");
    assert!(
        stderr(&without).contains("The security token included in the request is invalid"),
        "{}",
        stderr(&without)
    );
    assert_eq!(gateway.seen(), ["GET /sites 200", "GET /sites 403"]);

    let misspelt = slipway(
        &home,
        &stray,
        &[
            "sites",
            "list",
            "--sigv4",
            "--endpoint",
            &gateway.url,
            "--profile",
            "deployr",
        ],
    )
    .await;
    assert_eq!(misspelt.status.code(), Some(1));
    assert!(
        stderr(&misspelt).contains("profile deployr has no AWS credentials"),
        "{}",
        stderr(&misspelt)
    );
    assert_eq!(gateway.seen().len(), 2, "no request without credentials");
}

#[tokio::test]
async fn a_wrong_secret_is_reported_as_a_rejected_signature() {
    let gateway = Gateway::start("us-east-1", None).await;
    let home = AwsHome::new("", "");
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
    ];
    let output = slipway(
        &home,
        &env,
        &[
            "sites",
            "list",
            "--json",
            "--sigv4",
            "--region",
            "us-east-1",
            "--endpoint",
            &gateway.url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let error = &stdout_json(&output)["error"];
    assert_eq!(error["code"], "aws_rejected");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("AWS rejected the signed request")
            && message.contains("The request signature we calculated does not match")
            && message.contains("check the secret access key"),
        "{message}"
    );
    assert_eq!(gateway.seen(), ["GET /sites 403"]);

    // A region other than the gateway's is a signature for another scope.
    let keys = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let elsewhere = slipway(
        &home,
        &keys,
        &[
            "sites",
            "list",
            "--sigv4",
            "--region",
            "ap-south-1",
            "--endpoint",
            &gateway.url,
        ],
    )
    .await;
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(
        stderr(&elsewhere).contains("Credential should be scoped to a valid region")
            && stderr(&elsewhere).contains("(sign for the API's own region: --region)"),
        "{}",
        stderr(&elsewhere)
    );
}

#[tokio::test]
async fn missing_credentials_fail_before_any_request() {
    let gateway = Gateway::start("us-east-1", None).await;
    let home = AwsHome::new("", "");
    let output = slipway(
        &home,
        &[],
        &[
            "sites",
            "list",
            "--json",
            "--sigv4",
            "--region",
            "us-east-1",
            "--endpoint",
            &gateway.url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let error = &stdout_json(&output)["error"];
    assert_eq!(error["code"], "aws_signing");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("no AWS credentials found: run `aws sso login`"),
        "{error}"
    );

    let no_region = slipway(
        &home,
        &ENV_KEYS,
        &["sites", "list", "--sigv4", "--endpoint", &gateway.url],
    )
    .await;
    assert_eq!(no_region.status.code(), Some(1));
    assert!(
        stderr(&no_region).contains("no AWS region to sign for"),
        "{}",
        stderr(&no_region)
    );
    assert!(gateway.seen().is_empty());
}

#[tokio::test]
async fn a_bearer_token_is_never_sent_along_with_sigv4() {
    let gateway = Gateway::start("us-east-1", None).await;
    let home = AwsHome::new("", "");
    let env = [&ENV_KEYS[..], &[("SLIPWAY_TOKEN", "dev-token")]].concat();
    let output = slipway(
        &home,
        &env,
        &[
            "sites",
            "list",
            "--json",
            "--sigv4",
            "--region",
            "us-east-1",
            "--endpoint",
            &gateway.url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout_json(&output)["error"]["code"], "usage");
    assert!(
        stderr(&output).contains("a bearer token (--token or SLIPWAY_TOKEN) cannot be sent"),
        "{}",
        stderr(&output)
    );
    assert!(gateway.seen().is_empty());
}
