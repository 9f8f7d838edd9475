//! `infra/api/openapi.yaml` and the router, held together: the document lists exactly the
//! routes `ControlPlane::ROUTES` serves (plus the webhook and `slipway dev`'s upload route),
//! the real `slipway dev` routes every documented operation, and what it answers in a scripted
//! session (every success and every error code we can provoke) validates against the
//! document's schemas, with its status and content type documented for that operation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jsonschema::{Draft, Registry};
use serde_json::{json, Value};
use slipway_core::api::ROUTES;
use slipway_core::webhook::WebhookSecret;
use slipway_tests::{describe, zip_bytes, Dev};

const TOKEN: &str = "openapi-test-token";
const SECRET: &str = "openapi-test-secret";
/// The document's URI in the schema registry; `#/components/...` refs resolve inside it.
const DOC_URI: &str = "urn:slipway:openapi";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const WEBHOOK: (&str, &str) = ("POST", "/webhooks/github");
const UPLOAD: (&str, &str) = ("PUT", "/uploads/{site}/{deployment_id}.zip");

fn document_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/api/openapi.yaml")
}

/// RFC 6901: `~` and `/` escaped, then percent-encoded for a URI fragment.
fn pointer_token(raw: &str) -> String {
    raw.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// The document, its operations, and a schema registry that resolves refs into it.
struct ApiDoc {
    doc: Value,
    registry: Registry<'static>,
}

/// One HTTP exchange with `slipway dev`.
struct Answer {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl ApiDoc {
    fn load() -> ApiDoc {
        let text = std::fs::read_to_string(document_path()).expect("read infra/api/openapi.yaml");
        let doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
        assert_eq!(doc["openapi"], "3.1.0");
        let registry = Registry::new()
            .add(DOC_URI, doc.clone())
            .and_then(|builder| builder.prepare())
            .expect("the document is a schema resource");
        ApiDoc { doc, registry }
    }

    /// Every (METHOD, path template) in `paths`, with its operation object.
    fn operations(&self) -> Vec<((String, String), &Value)> {
        let paths = self.doc["paths"].as_object().expect("paths is a map");
        let mut operations = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    operations.push(((method.to_uppercase(), path.clone()), operation));
                }
            }
        }
        operations
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        operation
    }

    /// Follows a local `$ref` (`#/...`); returns the target and its JSON pointer.
    fn follow<'a>(&'a self, value: &'a Value, pointer: String) -> (&'a Value, String) {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let target = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("{reference} is not a local ref"));
                let resolved = self
                    .doc
                    .pointer(target)
                    .unwrap_or_else(|| panic!("{reference} resolves to nothing"));
                let escaped = target.replace('{', "%7B").replace('}', "%7D");
                (resolved, escaped)
            }
            None => (value, pointer),
        }
    }

    /// Checks `answer` against the operation: status documented, content type documented,
    /// required headers present, body valid against the schema.
    fn check(&self, method: &str, template: &str, answer: &Answer) {
        let what = format!("{method} {template} → {}", answer.status);
        let operation = self.operation(method, template);
        let status = answer.status.to_string();
        let documented = &operation["responses"][&status];
        assert!(
            documented.is_object(),
            "{what}: status {status} is not documented; body {}",
            answer.body
        );
        let pointer = format!(
            "/paths/{}/{}/responses/{status}",
            pointer_token(template),
            method.to_lowercase()
        );
        let (response, pointer) = self.follow(documented, pointer);
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in headers {
                if header["required"] == true {
                    assert!(
                        answer.headers.contains_key(name.as_str()),
                        "{what}: the documented header {name} is missing"
                    );
                }
            }
        }
        let media = answer
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .unwrap_or_else(|| panic!("{what}: no content type"))
            .trim()
            .to_owned();
        assert!(
            response["content"].get(&media).is_some(),
            "{what}: content type {media} is not documented"
        );
        let schema_pointer = format!("{pointer}/content/{}/schema", pointer_token(&media));
        self.validate(&format!("{DOC_URI}#{schema_pointer}"), &answer.body)
            .unwrap_or_else(|errors| {
                panic!(
                    "{what}: the body does not match the document:\n{errors}\nbody: {:#}",
                    answer.body
                )
            });
    }

    /// Validates `instance` against the schema at `uri` (inside the document).
    fn validate(&self, uri: &str, instance: &Value) -> Result<(), String> {
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&json!({ "$ref": uri }))
            .unwrap_or_else(|e| panic!("the schema at {uri} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("  at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// `slipway dev` with a bearer token and a webhook secret, and a client for both.
struct Api {
    dev: Dev,
    doc: ApiDoc,
    client: reqwest::blocking::Client,
}

impl Api {
    fn start() -> Api {
        let dev = Dev::start_with_env(&[
            ("SLIPWAY_TOKEN", TOKEN),
            ("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET),
        ]);
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            dev,
            doc: ApiDoc::load(),
            client,
        }
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Answer {
        let response = request.send().expect("send a request to slipway dev");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().expect("read the body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "a {status} answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            content_type,
            headers,
            body,
        }
    }

    fn request(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.client
            .request(method, format!("{}{path}", self.dev.api_url))
            .bearer_auth(TOKEN)
    }

    /// Sends `body` (raw bytes, as clients may send anything) and checks the answer against
    /// the operation `method template`.
    fn raw(&self, method: &str, template: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let answer = self.send(request);
        self.doc.check(method, template, &answer);
        answer
    }

    fn call(&self, method: &str, template: &str, path: &str, body: Option<Value>) -> Answer {
        self.raw(
            method,
            template,
            path,
            body.map(|b| serde_json::to_vec(&b).unwrap()),
        )
    }

    /// A documented call that must answer `status`.
    fn expect(
        &self,
        status: u16,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let answer = self.call(method, template, path, body);
        assert_eq!(answer.status, status, "{method} {path}: {:#}", answer.body);
        answer.body
    }

    /// A documented call that must fail with `status` and `code`.
    fn expect_error(
        &self,
        status: u16,
        code: &str,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) {
        let answer = self.call(method, template, path, body);
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{method} {path}: {:#}",
            answer.body
        );
    }

    /// Uploads `zip` where `created` (a CreateDeploymentResponse) says to.
    fn upload(&self, created: &Value, zip: Vec<u8>) -> Answer {
        let target = &created["upload"];
        let url = target["url"].as_str().unwrap();
        let path = url
            .strip_prefix(&self.dev.api_url)
            .unwrap_or_else(|| panic!("{url} is not on the API"));
        let mut request = self.request("PUT", path);
        for (name, value) in target["headers"].as_object().unwrap() {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
        let answer = self.send(request.body(zip));
        self.doc.check(UPLOAD.0, UPLOAD.1, &answer);
        answer
    }

    fn deliver(&self, event: &str, delivery: &str, payload: &Value, secret: &str) -> Answer {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = WebhookSecret::new(secret).unwrap().sign(&body);
        let answer = self.send(
            self.client
                .post(format!("{}/webhooks/github", self.dev.api_url))
                .header("content-type", "application/json")
                .header("x-github-event", event)
                .header("x-github-delivery", delivery)
                .header("x-hub-signature-256", signature)
                .body(body),
        );
        self.doc.check(WEBHOOK.0, WEBHOOK.1, &answer);
        answer
    }

    /// Deploys `zip` to production on `site` through the API; returns the finished record.
    fn deploy(&self, site: &str, zip: Vec<u8>) -> Value {
        let created = self.expect(
            201,
            "POST",
            "/sites/{site}/deployments",
            &format!("/sites/{site}/deployments"),
            Some(json!({"prebuilt": true, "size": zip.len()})),
        );
        let uploaded = self.upload(&created, zip);
        assert_eq!(uploaded.status, 200, "{}", uploaded.body);
        assert_eq!(uploaded.body["started"], true);
        self.finished(created["deployment"]["id"].as_str().unwrap())
    }

    /// Polls `GET /deployments/{id}` (checking each answer) until the pipeline is done with it.
    fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let record = self.expect(
                200,
                "GET",
                "/deployments/{deployment_id}",
                &format!("/deployments/{id}"),
                None,
            );
            let status = record["status"].as_str().unwrap().to_owned();
            if ["live", "superseded", "failed", "rolled-back"].contains(&status.as_str()) {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} is still {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn page(text: &str) -> Vec<u8> {
    zip_bytes(&[(
        "index.html",
        format!("<!doctype html><p>{text}</p>").as_bytes(),
    )])
}

/// A git repository with `index.html` committed on `branch`; returns it and the commit.
fn git_repo(branch: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args([
                "-c",
                "user.name=slipway",
                "-c",
                "user.email=test@example.com",
            ])
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "--quiet", &format!("--initial-branch={branch}")]);
    std::fs::write(dir.path().join("index.html"), "<p>from git</p>").unwrap();
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "-m", "page"]);
    let sha = git(&["rev-parse", "HEAD"]);
    (dir, sha)
}

#[test]
fn the_document_lists_exactly_the_routes_the_router_serves() {
    let doc = ApiDoc::load();
    let documented: BTreeSet<(String, String)> =
        doc.operations().into_iter().map(|(key, _)| key).collect();
    let mut expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(expected.len(), ROUTES.len(), "ROUTES lists a route twice");
    for (m, p) in [WEBHOOK, UPLOAD] {
        expected.insert((m.to_owned(), p.to_owned()));
    }
    assert_eq!(
        documented, expected,
        "the document's operations are not ROUTES plus the webhook and the upload route"
    );

    for ((method, path), operation) in doc.operations() {
        let key = (method.as_str(), path.as_str());
        let in_routes = ROUTES.contains(&key);
        // Exactly the upload route is slipway dev's own; the webhook has a handler of its own.
        assert_eq!(
            operation["x-slipway-dev-only"] == true,
            key == UPLOAD,
            "{method} {path}: x-slipway-dev-only"
        );
        assert_eq!(
            operation["x-slipway-handler"].as_str(),
            (key == WEBHOOK).then_some("github-webhook"),
            "{method} {path}: x-slipway-handler"
        );
        // Only GitHub deliveries go without a token (or SigV4).
        assert_eq!(
            operation["security"] == json!([]),
            key == WEBHOOK,
            "{method} {path}: security"
        );
        assert!(
            operation["operationId"].is_string(),
            "{method} {path}: operationId"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().all(|status| status.parse::<u16>().is_ok()),
            "{method} {path}: every response has an explicit status"
        );
        if in_routes {
            for status in ["401", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: every control-plane route can answer {status}"
                );
            }
        }
        // Every response schema compiles, its refs resolving inside the document.
        for status in responses.keys() {
            let pointer = format!(
                "/paths/{}/{}/responses/{status}",
                pointer_token(&path),
                method.to_lowercase()
            );
            let (response, pointer) = doc.follow(&responses[status], pointer);
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
            for media in content.keys() {
                let uri = format!(
                    "{DOC_URI}#{pointer}/content/{}/schema",
                    pointer_token(media)
                );
                // Compiling is the check; no instance is an object of every shape.
                let _ = doc.validate(&uri, &Value::Null);
            }
        }
    }
}

#[test]
fn every_deployment_status_of_the_model_is_documented() {
    let doc = ApiDoc::load();
    let schema = format!("{DOC_URI}#/components/schemas/DeploymentStatus");
    for status in slipway_core::model::DeploymentStatus::ALL {
        doc.validate(&schema, &json!(status.as_str())).unwrap();
    }
    assert!(doc.validate(&schema, &json!("paused")).is_err());
}

#[test]
fn the_schemas_reject_what_the_api_never_sends() {
    let doc = ApiDoc::load();
    let schema = |name: &str| format!("{DOC_URI}#/components/schemas/{name}");
    let site = json!({
        "name": "docs", "spa": false, "clean_urls": true, "retain": 10,
        "created_at": "2026-01-02T03:04:05.123Z", "live_deployment": null, "repo": null,
        "url": "http://docs.localhost:7080/",
    });
    doc.validate(&schema("SiteView"), &site).unwrap();
    let mut extra = site.clone();
    extra["colour"] = json!("red");
    assert!(doc.validate(&schema("SiteView"), &extra).is_err());
    let mut missing = site.clone();
    missing.as_object_mut().unwrap().remove("spa");
    assert!(doc.validate(&schema("SiteView"), &missing).is_err());
    let mut bad_name = site;
    bad_name["name"] = json!("a--b");
    assert!(doc.validate(&schema("SiteView"), &bad_name).is_err());
    for id in ["01m7yq4v311nf161gf6p081txw", "7zzzzzzzzzzzzzzzzzzzzzzzzz"] {
        doc.validate(&schema("DeploymentId"), &json!(id)).unwrap();
    }
    for id in [
        "80000000000000000000000000",
        "01M7YQ4V311NF161GF6P081TXW",
        "01m7yq4v311nf161gf6p081tx",
        "01m7yq4v311nf161gf6p081txu",
    ] {
        assert!(
            doc.validate(&schema("DeploymentId"), &json!(id)).is_err(),
            "{id}"
        );
    }
    let create = schema("CreateSiteRequest");
    for valid in [
        json!({"name": "docs"}),
        json!({"name": "docs", "repo": null, "branch": null, "root": null, "retain": null}),
        json!({"name": "docs", "repo": "acme/docs", "branch": "main", "root": "apps/web"}),
    ] {
        doc.validate(&create, &valid).unwrap();
    }
    for invalid in [
        json!({"name": "docs", "colour": "red"}),
        json!({"name": "docs", "branch": "main"}),
        json!({"name": "docs", "repo": null, "root": "apps/web"}),
        json!({"name": "docs", "retain": 0}),
    ] {
        assert!(doc.validate(&create, &invalid).is_err(), "{invalid}");
    }
}

#[test]
fn every_documented_operation_is_routed_and_every_other_method_is_refused() {
    let api = Api::start();
    let id = "01m7yq4v311nf161gf6p081txw";
    let fill = |template: &str| {
        template
            .replace("{site}", "docs")
            .replace("{deployment_id}", id)
    };
    for ((method, template), _) in api.doc.operations() {
        let path = fill(&template);
        let request = match (method.as_str(), template.as_str()) {
            WEBHOOK => {
                let signature = WebhookSecret::new(SECRET).unwrap().sign(b"{}");
                api.request(&method, &path)
                    .header("x-github-event", "ping")
                    .header("x-hub-signature-256", signature)
                    .body("{}")
            }
            UPLOAD => api.request(&method, &path).body(page("x")),
            _ => api.request(&method, &path),
        };
        let answer = api.send(request);
        assert!(
            answer.status != 405 && !["not_found", "method_not_allowed"].contains(&answer.code()),
            "{method} {path} is documented but not routed: {} {}",
            answer.status,
            answer.body
        );
        api.doc.check(&method, &template, &answer);
    }

    // Each path refuses the methods it does not document, naming the ones it serves.
    let operations: Vec<(String, String)> =
        api.doc.operations().into_iter().map(|(op, _)| op).collect();
    let paths: BTreeSet<&str> = operations.iter().map(|(_, p)| p.as_str()).collect();
    for template in paths {
        let documented: Vec<&str> = operations
            .iter()
            .filter(|(_, p)| p == template)
            .map(|(m, _)| m.as_str())
            .collect();
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if documented.contains(&method) {
                continue;
            }
            let answer = api.send(api.request(method, &fill(template)));
            assert_eq!(
                (answer.status, answer.code()),
                (405, "method_not_allowed"),
                "{method} {template}: {}",
                answer.body
            );
            let allow = answer.headers.get("allow").map(|v| v.to_str().unwrap());
            assert_eq!(
                allow,
                Some(documented.join(", ").as_str()),
                "{method} {template}"
            );
        }
    }
    let nowhere = api.send(api.request("GET", "/nowhere"));
    assert_eq!((nowhere.status, nowhere.code()), (404, "not_found"));
}

#[test]
fn a_scripted_session_answers_as_the_document_says() {
    let api = Api::start();
    let deployments = "/sites/{site}/deployments";

    // Authentication.
    let anonymous = api.send(api.client.get(format!("{}/sites", api.dev.api_url)));
    api.doc.check("GET", "/sites", &anonymous);
    assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"));
    assert_eq!(api.expect(200, "GET", "/sites", "/sites", None), json!([]));

    // Sites.
    let docs = api.expect(
        201,
        "POST",
        "/sites",
        "/sites",
        Some(json!({"name": "docs", "spa": true})),
    );
    assert_eq!(
        (docs["spa"].clone(), docs["repo"].clone()),
        (json!(true), Value::Null)
    );
    let site_errors = [
        (409, "site_exists", json!({"name": "docs"})),
        (400, "invalid_name", json!({"name": "Docs"})),
        (400, "invalid_name", json!({"name": "a--b"})),
        (400, "invalid_body", json!({"name": "x", "colour": "red"})),
        (400, "invalid_body", json!({"spa": true})),
        (400, "invalid_retain", json!({"name": "x", "retain": 0})),
        (400, "invalid_repo", json!({"name": "x", "branch": "main"})),
        (
            400,
            "invalid_name",
            json!({"name": "x", "repo": "not a repo"}),
        ),
    ];
    for (status, code, body) in site_errors {
        api.expect_error(status, code, "POST", "/sites", "/sites", Some(body));
    }
    let not_json = api.raw("POST", "/sites", "/sites", Some(b"{not json".to_vec()));
    assert_eq!((not_json.status, not_json.code()), (400, "invalid_body"));
    let huge = api.raw("POST", "/sites", "/sites", Some(vec![b' '; 65 * 1024]));
    assert_eq!((huge.status, huge.code()), (413, "payload_too_large"));
    api.expect(
        201,
        "POST",
        "/sites",
        "/sites",
        Some(json!({"name": "plain", "retain": 3, "repo": null, "branch": null, "root": null})),
    );
    api.expect(200, "GET", "/sites/{site}", "/sites/docs", None);
    api.expect_error(
        404,
        "site_not_found",
        "GET",
        "/sites/{site}",
        "/sites/nope",
        None,
    );
    api.expect_error(
        400,
        "invalid_name",
        "GET",
        "/sites/{site}",
        "/sites/No_pe",
        None,
    );
    let listed = api.expect(200, "GET", "/sites", "/sites", None);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    // Services.
    let services = "/sites/{site}/services";
    let one = "/sites/{site}/services/{service}";
    let api_service = api.expect(
        201,
        "POST",
        services,
        "/sites/docs/services",
        Some(
            json!({"name": "api", "runtime": "python3.12", "handler": "app.handler",
                    "route": "/api", "memory": 256, "timeout": 10, "concurrency": 2}),
        ),
    );
    assert_eq!(
        (
            api_service["url"].clone(),
            api_service["traffic"].clone(),
            api_service["memory"].clone()
        ),
        (
            json!(format!(
                "http://api--docs.svc.localhost:{}/",
                api.dev.edge_addr.port()
            )),
            Value::Null,
            json!(256)
        )
    );
    let defaults = api.expect(
        201,
        "POST",
        services,
        "/sites/docs/services",
        Some(json!({"name": "worker"})),
    );
    assert_eq!(
        (
            defaults["runtime"].clone(),
            defaults["memory"].clone(),
            defaults["timeout"].clone()
        ),
        (Value::Null, json!(128), json!(3))
    );
    let service_errors = [
        (409, "service_exists", json!({"name": "api"})),
        (
            409,
            "route_taken",
            json!({"name": "other", "route": "/api"}),
        ),
        (400, "invalid_name", json!({"name": "2fa"})),
        (
            400,
            "invalid_service",
            json!({"name": "x", "runtime": "cobol"}),
        ),
        (
            400,
            "invalid_service",
            json!({"name": "x", "handler": "index.handler"}),
        ),
        (
            400,
            "invalid_service",
            json!({"name": "x", "runtime": "nodejs22.x", "handler": "index"}),
        ),
        (400, "invalid_service", json!({"name": "x", "memory": 64})),
        (400, "invalid_service", json!({"name": "x", "timeout": 901})),
        (
            400,
            "invalid_service",
            json!({"name": "x", "route": "/other"}),
        ),
        (400, "invalid_body", json!({"name": "x", "colour": "red"})),
    ];
    for (status, code, body) in service_errors {
        api.expect_error(
            status,
            code,
            "POST",
            services,
            "/sites/docs/services",
            Some(body),
        );
    }
    api.expect_error(
        404,
        "site_not_found",
        "POST",
        services,
        "/sites/nope/services",
        Some(json!({"name": "api"})),
    );
    let listed = api.expect(200, "GET", services, "/sites/docs/services", None);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "worker"]);
    api.expect(200, "GET", one, "/sites/docs/services/api", None);
    api.expect_error(
        404,
        "service_not_found",
        "GET",
        one,
        "/sites/docs/services/nope",
        None,
    );
    api.expect_error(
        400,
        "invalid_name",
        "GET",
        one,
        "/sites/docs/services/No",
        None,
    );
    let deleted = api.expect(200, "DELETE", one, "/sites/docs/services/worker", None);
    assert_eq!(deleted["name"], "worker");
    api.expect_error(
        404,
        "service_not_found",
        "DELETE",
        one,
        "/sites/docs/services/worker",
        None,
    );

    // Deployments from uploads: two live ones, one that fails.
    let first = api.deploy("docs", page("first"));
    assert_eq!(first["status"], "live", "{first}");
    let second = api.deploy("docs", page("second"));
    assert_eq!(second["status"], "live", "{second}");
    let broken = api.deploy("docs", b"not a zip".to_vec());
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(broken["error"]["name"].is_string(), "{broken}");
    let first_id = first["id"].as_str().unwrap();
    let broken_id = broken["id"].as_str().unwrap();
    let unknown_id = "01m7yq4v311nf161gf6p081txw";

    let queued = api.expect(201, "POST", deployments, "/sites/plain/deployments", None);
    assert_eq!(queued["deployment"]["status"], "queued");
    assert_eq!(queued["upload"]["method"], "PUT");
    api.expect_error(
        413,
        "payload_too_large",
        "POST",
        deployments,
        "/sites/docs/deployments",
        Some(json!({"size": u64::MAX})),
    );
    api.expect_error(
        400,
        "invalid_body",
        "POST",
        deployments,
        "/sites/docs/deployments",
        Some(json!({"prebuilt": "yes"})),
    );
    api.expect_error(
        404,
        "site_not_found",
        "POST",
        deployments,
        "/sites/nope/deployments",
        None,
    );
    api.expect_error(
        400,
        "invalid_name",
        "POST",
        deployments,
        "/sites/-x/deployments",
        None,
    );

    // The upload route.
    let again = api.upload(
        &json!({"upload": {"url": format!("{}/uploads/docs/{first_id}.zip", api.dev.api_url), "headers": {}}}),
        page("again"),
    );
    assert_eq!((again.status, again.code()), (409, "already_uploaded"));
    let stray = api.upload(
        &json!({"upload": {"url": format!("{}/uploads/docs/{unknown_id}.zip", api.dev.api_url), "headers": {}}}),
        page("stray"),
    );
    assert_eq!((stray.status, stray.code()), (404, "upload_not_found"));
    let garbage = api.upload(&queued, vec![0; 64]);
    assert_eq!(garbage.status, 200, "{}", garbage.body);

    // Reading deployments and logs.
    let list = api.expect(200, "GET", deployments, "/sites/docs/deployments", None);
    assert_eq!(list.as_array().map(Vec::len), Some(3));
    api.expect_error(
        404,
        "site_not_found",
        "GET",
        deployments,
        "/sites/nope/deployments",
        None,
    );
    let one = "/sites/{site}/deployments/{deployment_id}";
    api.expect(
        200,
        "GET",
        one,
        &format!("/sites/docs/deployments/{first_id}"),
        None,
    );
    api.expect_error(
        400,
        "invalid_id",
        "GET",
        one,
        "/sites/docs/deployments/nope",
        None,
    );
    api.expect_error(
        404,
        "deployment_not_found",
        "GET",
        one,
        &format!("/sites/docs/deployments/{unknown_id}"),
        None,
    );
    api.expect_error(
        404,
        "deployment_not_found",
        "GET",
        one,
        &format!("/sites/plain/deployments/{first_id}"),
        None,
    );
    api.expect_error(
        404,
        "site_not_found",
        "GET",
        one,
        &format!("/sites/nope/deployments/{first_id}"),
        None,
    );
    let by_id = "/deployments/{deployment_id}";
    api.expect_error(
        400,
        "invalid_id",
        "GET",
        by_id,
        "/deployments/80000000000000000000000000",
        None,
    );
    api.expect_error(
        404,
        "deployment_not_found",
        "GET",
        by_id,
        &format!("/deployments/{unknown_id}"),
        None,
    );
    let logs = "/deployments/{deployment_id}/logs";
    let read = api.expect(
        200,
        "GET",
        logs,
        &format!("/deployments/{broken_id}/logs"),
        None,
    );
    assert_eq!(read["status"], "failed");
    api.expect(
        200,
        "GET",
        logs,
        &format!("/deployments/{first_id}/logs?after=1"),
        None,
    );
    api.expect_error(
        400,
        "invalid_query",
        "GET",
        logs,
        &format!("/deployments/{first_id}/logs?after=-1"),
        None,
    );
    api.expect_error(400, "invalid_id", "GET", logs, "/deployments/x/logs", None);
    api.expect_error(
        404,
        "deployment_not_found",
        "GET",
        logs,
        &format!("/deployments/{unknown_id}/logs"),
        None,
    );

    let statuses = || -> BTreeSet<String> {
        api.expect(200, "GET", deployments, "/sites/docs/deployments", None)
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap().to_owned())
            .collect()
    };
    // Rollback.
    let rollback = "/sites/{site}/rollback";
    let rolled = api.expect(200, "POST", rollback, "/sites/docs/rollback", None);
    assert_eq!(rolled["deployment_id"], first_id);
    let rollback_errors = [
        (409, "not_servable", "docs", json!({"to": broken_id})),
        (
            404,
            "deployment_not_found",
            "docs",
            json!({"to": unknown_id}),
        ),
        (400, "invalid_body", "docs", json!({"to": "yesterday"})),
        (409, "no_rollback_target", "plain", json!({})),
        (404, "site_not_found", "nope", json!({})),
    ];
    for (status, code, site, body) in rollback_errors {
        api.expect_error(
            status,
            code,
            "POST",
            rollback,
            &format!("/sites/{site}/rollback"),
            Some(body),
        );
    }

    assert_eq!(
        statuses(),
        ["failed", "live", "rolled-back"].map(str::to_owned).into()
    );

    // Promote.
    let promote = "/sites/{site}/promote";
    let promoted = api.expect(
        200,
        "POST",
        promote,
        "/sites/docs/promote",
        Some(json!({"from": second["id"]})),
    );
    assert_eq!(promoted["deployment_id"], second["id"]);
    let promote_errors = [
        (404, "preview_not_found", "docs", json!({"from": "pr-1"})),
        (
            400,
            "invalid_promote_source",
            "docs",
            json!({"from": "Not a target"}),
        ),
        (
            404,
            "deployment_not_found",
            "docs",
            json!({"from": unknown_id}),
        ),
        (409, "not_servable", "docs", json!({"from": broken_id})),
        (400, "invalid_body", "docs", json!({})),
        (404, "site_not_found", "nope", json!({"from": "pr-1"})),
    ];
    for (status, code, site, body) in promote_errors {
        api.expect_error(
            status,
            code,
            "POST",
            promote,
            &format!("/sites/{site}/promote"),
            Some(body),
        );
    }

    assert_eq!(
        statuses(),
        ["failed", "live", "superseded"].map(str::to_owned).into()
    );

    // A linked site, a signed push, its preview, and promoting it.
    let (repo, sha) = git_repo("feature");
    let clone_url = format!("file://{}", repo.path().display());
    let linked = api.expect(
        201,
        "POST",
        "/sites",
        "/sites",
        Some(json!({"name": "linked", "repo": "acme/docs", "branch": "main"})),
    );
    assert_eq!(linked["repo"]["production_branch"], "main");
    let repository = json!({"full_name": "acme/docs", "clone_url": clone_url});
    let push = json!({"ref": "refs/heads/feature", "after": sha, "repository": repository});
    let delivered = api.deliver("push", "delivery-1", &push, SECRET);
    assert_eq!(
        (delivered.status, delivered.body["action"].as_str()),
        (202, Some("deploying"))
    );
    let preview_id = delivered.body["deployments"][0]["deployment_id"]
        .as_str()
        .unwrap();
    let preview = api.finished(preview_id);
    assert_eq!(
        (preview["status"].as_str(), preview["target"].as_str()),
        (Some("live"), Some("feature")),
        "{preview}"
    );
    assert_eq!(preview["source"]["sha"], sha.as_str());
    let previews = api.expect(
        200,
        "GET",
        "/sites/{site}/previews",
        "/sites/linked/previews",
        None,
    );
    assert_eq!(previews[0]["target"], "feature", "{previews}");
    assert_eq!(
        api.expect(
            200,
            "GET",
            "/sites/{site}/previews",
            "/sites/docs/previews",
            None
        ),
        json!([])
    );
    api.expect_error(
        404,
        "site_not_found",
        "GET",
        "/sites/{site}/previews",
        "/sites/nope/previews",
        None,
    );
    let promoted = api.expect(
        200,
        "POST",
        promote,
        "/sites/linked/promote",
        Some(json!({"from": "feature"})),
    );
    assert_eq!(promoted["deployment_id"], preview_id);

    // The webhook's other answers.
    let duplicate = api.deliver("push", "delivery-1", &push, SECRET);
    assert_eq!(
        (duplicate.status, duplicate.body["action"].as_str()),
        (200, Some("duplicate"))
    );
    let ignored = api.deliver("issues", "delivery-2", &json!({}), SECRET);
    assert_eq!(
        (ignored.status, ignored.body["action"].as_str()),
        (202, Some("ignored"))
    );
    let forged = api.deliver("push", "delivery-3", &push, "not the secret");
    assert_eq!((forged.status, forged.code()), (401, "bad_signature"));
    let stranger = json!({"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "acme/other", "clone_url": clone_url}});
    let unknown = api.deliver("push", "delivery-4", &stranger, SECRET);
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "unknown_repository")
    );
    let garbled = api.deliver("push", "delivery-5", &json!({"ref": 1}), SECRET);
    assert_eq!((garbled.status, garbled.code()), (400, "invalid_body"));
    let deleted = json!({"ref": "refs/heads/feature", "after": "0000000000000000000000000000000000000000", "deleted": true, "repository": repository});
    let removed = api.deliver("push", "delivery-6", &deleted, SECRET);
    assert_eq!(
        (removed.status, removed.body["action"].as_str()),
        (200, Some("removed")),
        "{}",
        removed.body
    );
    assert_eq!(
        api.expect(
            200,
            "GET",
            "/sites/{site}/previews",
            "/sites/linked/previews",
            None
        ),
        json!([])
    );
}
