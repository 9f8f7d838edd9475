//! The main job through the real binaries: deploy → serve → redeploy → rollback, the build
//! path, and persistence across a restart of `slipway dev`.

use std::time::Duration;

use slipway_tests::{describe, site_dir, Dev};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn deploy_serve_redeploy_and_roll_back() {
    let dev = Dev::start();
    let created = dev.slipway_json(&["sites", "create", "docs"]);
    assert_eq!(created["name"], "docs");

    let v1 = site_dir(&[
        ("index.html", "<h1>version one</h1>"),
        ("about/index.html", "<p>about one</p>"),
        ("assets/app.3f9a1c2b.js", "console.log('one')"),
        ("style.css", "body{}"),
    ]);
    let first = dev.slipway_json(&["deploy", v1.path().to_str().unwrap(), "--site", "docs"]);
    assert_eq!(first["status"], "live", "{first}");
    let url = first["url"].as_str().unwrap();
    assert!(url.starts_with("http://docs.localhost:"), "{url}");

    let page = dev.get("docs", "/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("version one"));
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.cache_control.as_deref(),
        Some("public, max-age=0, must-revalidate")
    );
    let asset = dev.get("docs", "/assets/app.3f9a1c2b.js");
    assert_eq!(
        asset.cache_control.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert!(asset.content_type.unwrap().contains("javascript"));
    assert!(dev.get("docs", "/about/").text().contains("about one"));
    assert!(
        dev.get("docs", "/about").text().contains("about one"),
        "directory without a slash"
    );
    assert_eq!(dev.get("docs", "/missing.html").status, 404);
    assert_eq!(dev.get("nosuchsite", "/").status, 404);

    let v2 = site_dir(&[("index.html", "<h1>version two</h1>")]);
    let second = dev.slipway_json(&["deploy", v2.path().to_str().unwrap(), "--site", "docs"]);
    assert_eq!(second["status"], "live");
    assert!(dev.get("docs", "/").text().contains("version two"));
    // The old version's files are gone from the new version's routes.
    assert_eq!(dev.get("docs", "/about/").status, 404);

    let listed = dev.slipway_json(&["deployments", "docs"]);
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["live", "superseded"]);
    for d in listed.as_array().unwrap() {
        for field in ["id", "status", "created_at", "error"] {
            assert!(
                d.get(field).is_some(),
                "deployments --json lacks {field}: {d}"
            );
        }
    }

    let rolled = dev.slipway_json(&["rollback", "docs"]);
    assert_eq!(rolled["deployment_id"], first["deployment_id"]);
    assert_eq!(rolled["status"], "live");
    assert!(
        dev.get("docs", "/").text().contains("version one"),
        "rollback is visible on the next request"
    );

    let forward = dev.slipway_json(&[
        "rollback",
        "docs",
        "--to",
        second["deployment_id"].as_str().unwrap(),
    ]);
    assert_eq!(forward["deployment_id"], second["deployment_id"]);
    assert!(dev.get("docs", "/").text().contains("version two"));
}

#[test]
fn builds_run_the_buildspec_and_failures_keep_their_log() {
    let dev = Dev::start();
    dev.slipway_json(&["sites", "create", "built"]);
    let source = site_dir(&[
        (
            "slipway.toml",
            "[build]\ncommand = \"sh build.sh\"\noutput_dir = \"public\"\n",
        ),
        (
            "build.sh",
            "set -e\nmkdir -p public\necho building $SLIPWAY_SITE\nprintf '<p>built %s from %s</p>' \"$SLIPWAY_DEPLOYMENT_ID\" \"$CODEBUILD_SRC_DIR\" > public/index.html\n",
        ),
    ]);
    let out = dev.slipway_json(&["deploy", source.path().to_str().unwrap(), "--site", "built"]);
    assert_eq!(out["status"], "live", "{out}");
    let id = out["deployment_id"].as_str().unwrap();
    let page = dev.get("built", "/");
    assert!(
        page.text().contains(&format!("built {id}")),
        "{}",
        page.text()
    );
    let lines = dev.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains("building built")),
        "{lines:?}"
    );

    let failing = site_dir(&[(
        "slipway.toml",
        "[build]\ncommand = \"echo about to fail; exit 3\"\noutput_dir = \"public\"\n",
    )]);
    let failed = dev.slipway(&[
        "deploy",
        failing.path().to_str().unwrap(),
        "--site",
        "built",
        "--json",
    ]);
    assert!(
        !failed.status.success(),
        "a failed build must exit non-zero: {}",
        describe(&failed)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(outcome["status"], "failed");
    let failed_id = outcome["deployment_id"].as_str().unwrap();
    let failed_record = dev.deployment("built", failed_id);
    let cause = failed_record["error"]["cause"].as_str().unwrap();
    assert!(cause.contains("exit"), "{cause}");
    assert!(dev
        .log_lines(failed_id)
        .iter()
        .any(|l| l.contains("about to fail")));
    assert!(
        dev.get("built", "/")
            .text()
            .contains(&format!("built {id}")),
        "the live version is untouched"
    );

    let no_output = site_dir(&[(
        "slipway.toml",
        "[build]\ncommand = \"true\"\noutput_dir = \"dist\"\n",
    )]);
    let failed = dev.slipway(&[
        "deploy",
        no_output.path().to_str().unwrap(),
        "--site",
        "built",
    ]);
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("dist"),
        "{}",
        describe(&failed)
    );
    assert!(dev
        .get("built", "/")
        .text()
        .contains(&format!("built {id}")));
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dev = Dev::start_in(&state, &[]);
    dev.slipway_json(&["sites", "create", "keep", "--spa"]);
    let app = site_dir(&[("index.html", "<div id=app>kept</div>"), ("app.js", "1")]);
    dev.slipway_json(&["deploy", app.path().to_str().unwrap(), "--site", "keep"]);
    dev.stop();

    let dev = Dev::start_in(&state, &[]);
    let page = dev.wait_for_content("keep", "/some/client/route", "kept", LIMIT);
    assert_eq!(page.status, 200, "SPA deep link after restart");
    let listed = dev.slipway_json(&["deployments", "keep"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(dev.slipway_json(&["sites", "show", "keep"])["spa"], true);
}

#[test]
fn one_state_directory_serves_one_dev_server_and_abandoned_uploads_expire() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dev = Dev::start_in(&state, &[]);
    dev.slipway_json(&["sites", "create", "docs"]);
    // A deployment whose upload never comes (the client died after creating it).
    let created: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/sites/docs/deployments", dev.api_url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let abandoned = created["deployment"]["id"].as_str().unwrap().to_owned();

    let second = std::process::Command::new(slipway_tests::slipway_bin())
        .args(["dev", "--state-dir"])
        .arg(&state)
        .args(["--api-addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success(), "{}", describe(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains("another slipway dev is using the state directory"),
        "{}",
        describe(&second)
    );
    dev.stop();

    let dev = Dev::start_in(&state, &[]);
    let record = dev.deployment("docs", &abandoned);
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["name"], "UploadExpired", "{record}");
}
