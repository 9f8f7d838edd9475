//! `slipway dev`'s guard against the web pages open in the developer's browser, through a real
//! server on loopback: a foreign `Host` (DNS rebinding) and a foreign `Origin` (a cross-site
//! request) are refused with 403, a body that is not declared JSON with 415, and nothing
//! changes when they are; what the CLI, tools, GitHub and the server's own pages send keeps
//! working. Each refusal is also checked against `infra/api/openapi.yaml`.

use std::path::Path;
use std::time::Duration;

use jsonschema::{Draft, Registry};
use reqwest::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use serde_json::{json, Value};
use slipway_core::webhook::WebhookSecret;
use slipway_tests::{site_dir, Dev};

/// A page on the internet, as browsers name its origin.
const EVIL: &str = "http://evil.example";
const SECRET: &str = "local-guard-secret";
const DOC_URI: &str = "urn:slipway:openapi";

/// One answer of `slipway dev`.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// `slipway dev` (with a webhook secret) and a client that sends exactly the headers it is told.
struct Guarded {
    dev: Dev,
    client: reqwest::blocking::Client,
    port: u16,
    doc: Value,
    registry: Registry<'static>,
}

impl Guarded {
    fn start() -> Guarded {
        let dev = Dev::start_with_env(&[("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET)]);
        let port = dev
            .api_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{} has no port", dev.api_url));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/api/openapi.yaml");
        let doc: Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("YAML");
        let registry = Registry::new()
            .add(DOC_URI, doc.clone())
            .and_then(|builder| builder.prepare())
            .expect("the document is a schema resource");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Guarded {
            dev,
            client,
            port,
            doc,
            registry,
        }
    }

    /// `name:{the API's port}`.
    fn host(&self, name: &str) -> String {
        format!("{name}:{}", self.port)
    }

    /// Sends `method path` to the API with `headers` (a `host` among them replaces the one
    /// reqwest would send) and `body`.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.dev.api_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().expect("send a request to slipway dev");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "a {status} answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Asserts that `answer` is the refusal `(status, code)`, that its message says what to
    /// do, and that the document lists it for the operation `method template`.
    fn assert_refused(
        &self,
        answer: &Answer,
        (status, code): (u16, &str),
        (method, template): (&str, &str),
    ) {
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{method} {template}: {:#}",
            answer.body
        );
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        let advice = match code {
            "forbidden_host" => "Use http://localhost:",
            "forbidden_origin" => "slipway CLI",
            _ => "Content-Type: application/json",
        };
        assert!(message.contains(advice), "{code}: {message}");
        let token = |raw: &str| {
            raw.replace('~', "~0")
                .replace('/', "~1")
                .replace('{', "%7B")
                .replace('}', "%7D")
        };
        let documented =
            &self.doc["paths"][template][method.to_lowercase()]["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template}: {status} is not documented"
        );
        let pointer = match documented.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference.trim_start_matches('#').to_owned(),
            None => format!(
                "/paths/{}/{}/responses/{status}",
                token(template),
                method.to_lowercase()
            ),
        };
        let schema = format!("{DOC_URI}#{pointer}/content/application~1json/schema");
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&json!({ "$ref": schema }))
            .unwrap_or_else(|e| panic!("{schema} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&answer.body)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} → {status}: the body does not match the document: {errors:?}\n{:#}",
            answer.body
        );
    }

    fn site_names(&self) -> Vec<String> {
        self.dev
            .slipway_json(&["sites", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Creates `docs` and deploys two versions; the second is live. Returns both ids.
    fn two_deployments(&self) -> (String, String) {
        self.dev.slipway_json(&["sites", "create", "docs"]);
        let mut ids = Vec::new();
        for text in ["first", "second"] {
            let dir = site_dir(&[("index.html", &format!("<h1>the {text} version</h1>"))]);
            let live = self.dev.slipway_json(&[
                "deploy",
                dir.path().to_str().unwrap(),
                "--site",
                "docs",
                "--prebuilt",
            ]);
            assert_eq!(live["status"], "live", "{live}");
            ids.push(live["deployment_id"].as_str().unwrap().to_owned());
        }
        self.assert_serving("second");
        (ids.remove(0), ids.remove(0))
    }

    /// The edge serves `docs`'s version `text`.
    fn assert_serving(&self, text: &str) {
        let page = self.dev.get("docs", "/");
        assert!(
            page.text().contains(&format!("the {text} version")),
            "docs should serve the {text} version: {}",
            page.text()
        );
    }

    fn live_deployment(&self) -> String {
        let listed = self.dev.slipway_json(&["deployments", "docs"]);
        let live: Vec<&Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["status"] == "live")
            .collect();
        assert_eq!(live.len(), 1, "{listed}");
        live[0]["id"].as_str().unwrap().to_owned()
    }
}

fn json_body(value: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&value).unwrap())
}

#[test]
fn a_foreign_host_is_refused_and_nothing_is_created() {
    let api = Guarded::start();
    let json = ("content-type", "application/json");
    let rebound = api.host("evil.example");
    let other_port = format!("127.0.0.1:{}", api.port.wrapping_add(1));
    for host in [
        rebound.as_str(),
        "evil.example",
        "localhost.evil.example",
        other_port.as_str(),
    ] {
        // DNS rebinding: the page's own name, pointed at 127.0.0.1.
        let created = api.send(
            "POST",
            "/sites",
            &[("host", host), json, ("origin", &format!("http://{host}"))],
            json_body(json!({"name": "rebound"})),
        );
        api.assert_refused(&created, (403, "forbidden_host"), ("POST", "/sites"));
        assert_eq!(
            created
                .headers
                .get("connection")
                .map(|v| v.to_str().unwrap()),
            Some("close")
        );
        // Reads are refused too: a rebound page could read them as its own origin.
        let listed = api.send("GET", "/sites", &[("host", host)], None);
        api.assert_refused(&listed, (403, "forbidden_host"), ("GET", "/sites"));
    }
    assert_eq!(
        api.site_names(),
        Vec::<String>::new(),
        "nothing was created"
    );

    // The upload route is guarded alike: the queued deployment stays queued.
    api.dev.slipway_json(&["sites", "create", "docs"]);
    let created = api.send(
        "POST",
        "/sites/docs/deployments",
        &[json],
        json_body(json!({"prebuilt": true})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let url = created.body["upload"]["url"].as_str().unwrap();
    let path = url.strip_prefix(&api.dev.api_url).unwrap();
    let zip = slipway_tests::zip_bytes(&[("index.html", b"<h1>rebound</h1>")]);
    let uploaded = api.send(
        "PUT",
        path,
        &[("host", &rebound), ("content-type", "application/zip")],
        Some(zip),
    );
    api.assert_refused(
        &uploaded,
        (403, "forbidden_host"),
        ("PUT", "/uploads/{site}/{deployment_id}.zip"),
    );
    let id = created.body["deployment"]["id"].as_str().unwrap();
    assert_eq!(api.dev.deployment("docs", id)["status"], "queued");
    assert_eq!(api.site_names(), ["docs"]);
}

#[test]
fn localhost_names_and_loopback_addresses_are_accepted_as_hosts() {
    let api = Guarded::start();
    let hosts = [
        api.host("localhost"),
        api.host("LocalHost"),
        api.host("dashboard.localhost"),
        api.host("127.0.0.1"),
    ];
    for (n, host) in hosts.iter().enumerate() {
        let listed = api.send("GET", "/sites", &[("host", host)], None);
        assert_eq!(listed.status, 200, "{host}: {}", listed.body);
        // A page served by slipway dev under that name may act: its own origin.
        let name = format!("site-{n}");
        let created = api.send(
            "POST",
            "/sites",
            &[
                ("host", host),
                ("origin", &format!("http://{host}")),
                ("content-type", "application/json"),
            ],
            json_body(json!({ "name": name })),
        );
        assert_eq!(created.status, 201, "{host}: {}", created.body);
    }
    assert_eq!(api.site_names(), ["site-0", "site-1", "site-2", "site-3"]);
}

#[test]
fn a_rollback_from_a_foreign_origin_is_refused_and_production_is_unchanged() {
    let api = Guarded::start();
    let (_, second) = api.two_deployments();
    let edge_site = format!("http://docs.localhost:{}", api.dev.edge_addr.port());
    let own_host = api.host("127.0.0.1");
    let other_port = format!("http://127.0.0.1:{}", api.dev.edge_addr.port());
    // What a page can send without a preflight: a text/plain body, an empty form, nothing.
    let bodies: [(Option<&str>, Option<Vec<u8>>); 4] = [
        (Some("text/plain;charset=UTF-8"), json_body(json!({}))),
        (Some("application/x-www-form-urlencoded"), Some(Vec::new())),
        (None, None),
        (Some("application/json"), json_body(json!({}))),
    ];
    for origin in [EVIL, "null", edge_site.as_str(), other_port.as_str()] {
        for (content_type, body) in &bodies {
            let mut headers = vec![("origin", origin)];
            headers.extend(content_type.map(|ct| ("content-type", ct)));
            let answer = api.send("POST", "/sites/docs/rollback", &headers, body.clone());
            api.assert_refused(
                &answer,
                (403, "forbidden_origin"),
                ("POST", "/sites/{site}/rollback"),
            );
        }
        // A promote, a new site and a new deployment are refused alike.
        let promoted = api.send(
            "POST",
            "/sites/docs/promote",
            &[("origin", origin), ("host", &own_host)],
            json_body(json!({"from": "x"})),
        );
        api.assert_refused(
            &promoted,
            (403, "forbidden_origin"),
            ("POST", "/sites/{site}/promote"),
        );
        let deployed = api.send(
            "POST",
            "/sites/docs/deployments",
            &[("origin", origin)],
            None,
        );
        api.assert_refused(
            &deployed,
            (403, "forbidden_origin"),
            ("POST", "/sites/{site}/deployments"),
        );
    }
    assert_eq!(api.live_deployment(), second);
    api.assert_serving("second");
    assert_eq!(
        api.dev
            .slipway_json(&["deployments", "docs"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_rollback_from_the_own_origin_is_accepted() {
    let api = Guarded::start();
    let (first, second) = api.two_deployments();
    // A page of the server's own, under a localhost name, with no body and no content type.
    let host = api.host("localhost");
    let rolled = api.send(
        "POST",
        "/sites/docs/rollback",
        &[("host", &host), ("origin", &format!("http://{host}"))],
        None,
    );
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    assert_eq!(rolled.body["deployment_id"], first.as_str());
    assert_eq!(api.live_deployment(), first);
    api.assert_serving("first");
    // And at the bound address, with a JSON body.
    let own = format!("http://{}", api.host("127.0.0.1"));
    let rolled = api.send(
        "POST",
        "/sites/docs/rollback",
        &[("origin", &own), ("content-type", "application/json")],
        json_body(json!({ "to": second })),
    );
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    assert_eq!(api.live_deployment(), second);
    api.assert_serving("second");
}

#[test]
fn reads_from_a_foreign_origin_are_answered_without_cors_headers() {
    // A GET changes nothing, and with no Access-Control-Allow-Origin in the answer the browser
    // keeps it from the foreign page; a DNS-rebound page (which could read it) is refused by
    // its Host instead.
    let api = Guarded::start();
    api.dev.slipway_json(&["sites", "create", "docs"]);
    for path in ["/sites", "/sites/docs", "/sites/docs/deployments"] {
        let answer = api.send("GET", path, &[("origin", EVIL)], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(
            !answer
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "{path}: {:?}",
            answer.headers
        );
    }
    // A preflight is never granted either.
    let preflight = api.send(
        "OPTIONS",
        "/sites",
        &[
            ("origin", EVIL),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        None,
    );
    assert!(
        !preflight
            .headers
            .contains_key("access-control-allow-origin"),
        "{:?}",
        preflight.headers
    );
}

#[test]
fn a_text_plain_json_body_is_refused_and_nothing_is_created() {
    let api = Guarded::start();
    let (_, second) = api.two_deployments();
    let site = json_body(json!({"name": "sneaky"}));
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("content-type", ct))
            .into_iter()
            .collect();
        let created = api.send("POST", "/sites", &headers, site.clone());
        api.assert_refused(
            &created,
            (415, "unsupported_media_type"),
            ("POST", "/sites"),
        );
        let rolled = api.send(
            "POST",
            "/sites/docs/rollback",
            &headers,
            json_body(json!({})),
        );
        api.assert_refused(
            &rolled,
            (415, "unsupported_media_type"),
            ("POST", "/sites/{site}/rollback"),
        );
    }
    // Declared but not JSON: refused even with an empty body (an empty form).
    let form = api.send(
        "POST",
        "/sites/docs/deployments",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(Vec::new()),
    );
    api.assert_refused(
        &form,
        (415, "unsupported_media_type"),
        ("POST", "/sites/{site}/deployments"),
    );
    assert_eq!(api.site_names(), ["docs"], "nothing was created");
    assert_eq!(
        api.dev
            .slipway_json(&["deployments", "docs"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(api.live_deployment(), second);
    api.assert_serving("second");
    // GitHub deliveries keep their own rules: a foreign Host (a tunnel's) and no Origin pass.
    let body = br#"{"zen":"Keep it logically awesome."}"#.to_vec();
    let signature = WebhookSecret::new(SECRET).unwrap().sign(&body);
    let tunnel = "abc123.tunnel.example";
    let github = [
        ("host", tunnel),
        ("content-type", "application/json"),
        ("x-github-event", "ping"),
        ("x-github-delivery", "guard-1"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let pong = api.send("POST", "/webhooks/github", &github, Some(body.clone()));
    assert_eq!(pong.status, 200, "{}", pong.body);
    let mut from_a_page = github.to_vec();
    from_a_page.push(("origin", EVIL));
    let refused = api.send("POST", "/webhooks/github", &from_a_page, Some(body));
    api.assert_refused(
        &refused,
        (403, "forbidden_origin"),
        ("POST", "/webhooks/github"),
    );
}

#[test]
fn json_with_a_charset_is_accepted() {
    let api = Guarded::start();
    for (name, content_type) in [
        ("plain", "application/json"),
        ("charset", "application/json; charset=utf-8"),
        ("shouted", "Application/JSON;charset=UTF-8"),
    ] {
        let created = api.send(
            "POST",
            "/sites",
            &[(CONTENT_TYPE.as_str(), content_type)],
            json_body(json!({ "name": name })),
        );
        assert_eq!(created.status, 201, "{content_type}: {}", created.body);
    }
    // An empty body without a content type is still the defaults.
    let queued = api.send("POST", "/sites/plain/deployments", &[], None);
    assert_eq!(queued.status, 201, "{}", queued.body);
    let queued = api.send(
        "POST",
        "/sites/plain/deployments",
        &[(CONTENT_TYPE.as_str(), "application/json; charset=utf-8")],
        json_body(json!({"prebuilt": true})),
    );
    assert_eq!(queued.status, 201, "{}", queued.body);
    // Explicit own Host and Origin headers, as a same-origin page sends them.
    let host = api.host("localhost");
    let origin = format!("http://{host}");
    let created = api.send(
        "POST",
        "/sites",
        &[
            (HOST.as_str(), &host),
            (ORIGIN.as_str(), &origin),
            (CONTENT_TYPE.as_str(), "application/json;charset=utf-8"),
        ],
        json_body(json!({"name": "same-origin"})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        api.site_names(),
        ["charset", "plain", "same-origin", "shouted"]
    );
}
