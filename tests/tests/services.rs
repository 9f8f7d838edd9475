//! `slipway services` through the real binaries: a site's services created with their
//! settings, listed, shown and deleted, with the errors a user meets on the way.

use serde_json::{json, Value};
use slipway_tests::{describe, Dev};

fn error_code(out: &std::process::Output) -> Value {
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(out)))["error"]["code"]
        .clone()
}

#[test]
fn services_are_created_listed_shown_and_deleted() {
    let dev = Dev::start();
    dev.slipway_json(&["sites", "create", "docs"]);

    let api = dev.slipway_json(&[
        "services",
        "create",
        "api",
        "--site",
        "docs",
        "--runtime",
        "python3.12",
        "--handler",
        "app/main.handler",
        "--route",
        "/api",
        "--memory",
        "256",
        "--timeout",
        "10",
        "--concurrency",
        "2",
    ]);
    assert_eq!(
        (
            &api["name"],
            &api["site"],
            &api["runtime"],
            &api["handler"],
            &api["route"]
        ),
        (
            &json!("api"),
            &json!("docs"),
            &json!("python3.12"),
            &json!("app/main.handler"),
            &json!("/api")
        )
    );
    assert_eq!(
        (&api["memory"], &api["timeout"], &api["concurrency"]),
        (&json!(256), &json!(10), &json!(2))
    );
    assert_eq!(
        api["url"],
        format!("http://api--docs.svc.localhost:{}/", dev.edge_addr.port())
    );
    assert_eq!(api["traffic"], Value::Null, "nothing deployed yet");

    // Lambda's defaults, and a runtime left for detection.
    let worker = dev.slipway_json(&["services", "create", "worker", "--site", "docs"]);
    assert_eq!(
        (
            &worker["runtime"],
            &worker["memory"],
            &worker["timeout"],
            &worker["concurrency"]
        ),
        (&Value::Null, &json!(128), &json!(3), &json!(10))
    );

    // Connection options before the subcommand, as with `aws --endpoint-url`.
    let listed = dev.slipway(&[
        "--endpoint",
        &dev.api_url,
        "--json",
        "services",
        "list",
        "--site",
        "docs",
    ]);
    assert!(listed.status.success(), "{}", describe(&listed));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "worker"]);
    let table = dev.slipway(&["services", "list", "--site", "docs"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("NAME") && text.contains("python3.12") && text.contains("/api"),
        "{text}"
    );

    assert_eq!(
        dev.slipway_json(&["services", "show", "api", "--site", "docs"]),
        api
    );
    let deleted = dev.slipway_json(&["services", "delete", "worker", "--site", "docs"]);
    assert_eq!(deleted["name"], "worker");
    let gone = dev.slipway(&["services", "show", "worker", "--site", "docs", "--json"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(error_code(&gone), "service_not_found");
    assert_eq!(
        dev.slipway_json(&["services", "list", "--site", "docs"]),
        json!([api])
    );
}

#[test]
fn bad_service_input_gets_a_clear_error_and_changes_nothing() {
    let dev = Dev::start();
    dev.slipway_json(&["sites", "create", "docs"]);
    dev.slipway_json(&[
        "services", "create", "api", "--site", "docs", "--route", "/api",
    ]);

    for (args, code) in [
        ("services create api --site docs", "service_exists"),
        (
            "services create other --site docs --route /api",
            "route_taken",
        ),
        (
            "services create x --site docs --runtime cobol",
            "invalid_service",
        ),
        (
            "services create x --site docs --memory 64",
            "invalid_service",
        ),
        (
            "services create x --site docs --route /v1",
            "invalid_service",
        ),
        (
            "services create x --site docs --runtime nodejs22.x --handler index",
            "invalid_service",
        ),
        ("services create api --site nope", "site_not_found"),
    ] {
        let mut with_json: Vec<&str> = args.split(' ').collect();
        with_json.push("--json");
        let out = dev.slipway(&with_json);
        assert_eq!(out.status.code(), Some(1), "{args}: {}", describe(&out));
        assert_eq!(error_code(&out), code, "{args}");
    }
    // Names and flag combinations are checked before any request (usage errors).
    for args in [
        "services create 2fa --site docs",
        "services create x --site docs --handler index.handler",
    ] {
        let out = dev.slipway(&args.split(' ').collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(2), "{args}: {}", describe(&out));
    }
    let listed = dev.slipway_json(&["services", "list", "--site", "docs"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}
