//! Real sites through the real binaries: an unmodified third-party static site from the npm
//! registry (swagger-ui-dist) published as prebuilt output, and a Vite single-page app with
//! client-side routes that slipway detects, builds, serves, redeploys and rolls back.
//!
//! Both need `npm` and the npm registry (the package tarball, Vite and its dependencies).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_tests::{describe, files_under, workspace_target, Dev};

/// The published package served as a site; pinned so its file list and bytes are fixed.
const SWAGGER_UI_DIST: &str = "swagger-ui-dist@5.35.0";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, max-age=0, must-revalidate";
const LIMIT: Duration = Duration::from_secs(20);

/// Runs a command to completion, failing the test with its output unless it succeeds.
fn run(command: &mut Command) {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(out.status.success(), "{shown} failed: {}", describe(&out));
}

/// Fails with a clear message where npm is missing, instead of a confusing build failure.
fn require_npm() {
    let found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "these tests need `npm` on PATH and the npm registry: install Node.js 20.19+ with npm"
    );
}

/// The unpacked package, fetched once with `npm pack` into `target/test-fixtures/` and reused.
fn swagger_ui_dist() -> PathBuf {
    let cache = workspace_target().join("test-fixtures");
    let name = SWAGGER_UI_DIST.replace('@', "-");
    let unpacked = cache.join(&name);
    let package = unpacked.join("package");
    if package.join("package.json").is_file() {
        return package;
    }
    require_npm();
    std::fs::create_dir_all(&cache).unwrap();
    // Unpack beside the cache entry and rename it into place, so a run that stops halfway
    // (or a concurrent one) never leaves a partial package behind.
    let staging = tempfile::tempdir_in(&cache).unwrap();
    run(Command::new("npm")
        .args(["pack", SWAGGER_UI_DIST, "--pack-destination"])
        .arg(staging.path()));
    let tarball = staging.path().join(format!("{name}.tgz"));
    assert!(tarball.is_file(), "npm pack wrote no {}", tarball.display());
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(staging.path()));
    std::fs::remove_file(&tarball).unwrap();
    if let Err(err) = std::fs::rename(staging.path(), &unpacked) {
        assert!(
            package.join("package.json").is_file(),
            "cannot move the package into {}: {err}",
            unpacked.display()
        );
    }
    package
}

/// The Content-Type a browser needs for each kind of file the package holds.
fn expected_content_type(file: &str) -> &'static str {
    let extension = file.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "map" | "json" => "application/json; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        other => panic!("{file}: the test has no expected type for .{other}"),
    }
}

/// The values of `attribute="..."` in `html`, in order.
fn attribute_values(html: &str, attribute: &str) -> Vec<String> {
    let marker = format!("{attribute}=\"");
    html.split(&marker)
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(value, _)| value.to_owned()))
        .collect()
}

#[test]
fn a_published_npm_package_serves_byte_for_byte_with_the_right_headers() {
    let package = swagger_ui_dist();
    let files = files_under(&package);
    for expected in [
        "index.html",
        "oauth2-redirect.html",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui.css.map",
        "favicon-32x32.png",
        "package.json",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected}: {files:?}");
    }

    let dev = Dev::start();
    dev.slipway_json(&["sites", "create", "swagger"]);
    let started = Instant::now();
    let live = dev.slipway_json(&[
        "deploy",
        package.to_str().unwrap(),
        "--site",
        "swagger",
        "--prebuilt",
    ]);
    eprintln!(
        "deployed {} files of {SWAGGER_UI_DIST} in {:?}",
        files.len(),
        started.elapsed()
    );
    assert_eq!(live["status"], "live", "{live}");
    let live_id = live["deployment_id"].as_str().unwrap().to_owned();
    let record = dev.deployment("swagger", &live_id);
    assert_eq!(record["prebuilt"], true, "{record}");
    assert_eq!(
        record["built"], false,
        "package.json did not trigger a build"
    );
    assert_eq!(record["file_count"], files.len() as u64, "{record}");
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(package.join(f)).unwrap().len())
        .sum();
    assert_eq!(record["bytes"], total, "{record}");

    // The edge reads a path without a dot in its last segment as a page (`/LICENSE` →
    // `/LICENSE/index.html`) and cannot look for a file first, so the package's LICENSE and
    // NOTICE are published but not reachable by their names (documented in the README;
    // `/.well-known/` names are the exception the router makes).
    let reachable: Vec<&String> = files
        .iter()
        .filter(|f| f.rsplit('/').next().unwrap().contains('.'))
        .collect();
    assert_eq!(reachable.len(), files.len() - 2, "{files:?}");
    for file in reachable {
        let on_disk = std::fs::read(package.join(file)).unwrap();
        let served = dev.get("swagger", &format!("/{file}"));
        assert_eq!(served.status, 200, "/{file}");
        assert!(
            served.body == on_disk,
            "/{file}: {} bytes served, {} on disk, or different content",
            served.body.len(),
            on_disk.len()
        );
        assert_eq!(
            served.content_type.as_deref(),
            Some(expected_content_type(file)),
            "/{file}"
        );
        // No file name in the package carries a content hash (`swagger-ui-bundle.js` keeps
        // its name across releases), so caching any of them forever would pin stale code.
        assert_eq!(served.cache_control.as_deref(), Some(REVALIDATE), "/{file}");
    }

    let index = std::fs::read(package.join("index.html")).unwrap();
    let root = dev.get("swagger", "/");
    assert_eq!(root.status, 200);
    assert!(root.body == index, "/ serves index.html: {}", root.text());
    assert_eq!(
        root.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(root.cache_control.as_deref(), Some(REVALIDATE));

    // Everything the page loads resolves, as a browser opening it would need.
    let html = root.text();
    let references: Vec<String> = attribute_values(&html, "href")
        .into_iter()
        .chain(attribute_values(&html, "src"))
        .collect();
    assert!(
        references.len() >= 5,
        "index.html links its CSS, icons and scripts: {references:?}"
    );
    for reference in &references {
        let path = format!("/{}", reference.trim_start_matches("./"));
        assert_eq!(dev.get("swagger", &path).status, 200, "{reference}");
    }

    for missing in ["/nope.js", "/swagger-ui.css.gz", "/docs/", "/no/such/page"] {
        let served = dev.get("swagger", missing);
        assert_eq!(served.status, 404, "{missing}: {}", served.text());
        assert!(
            served.body != index,
            "{missing} must not fall back to index.html"
        );
    }

    // The same directory as source: package.json asks for an npm build, and the package
    // has no build script, so the deployment fails with that reason before installing anything.
    let out = dev.slipway(&[
        "deploy",
        package.to_str().unwrap(),
        "--site",
        "swagger",
        "--json",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(&out)));
    assert_eq!(outcome["status"], "failed", "{}", describe(&out));
    let failed_id = outcome["deployment_id"].as_str().unwrap();
    let failed = dev.deployment("swagger", failed_id);
    assert_eq!(failed["error"]["name"], "BuildConfigInvalid", "{failed}");
    let cause = failed["error"]["cause"].as_str().unwrap();
    assert!(cause.contains("no \"build\" script"), "{cause}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no \"build\" script") && stderr.contains("prebuilt"),
        "the CLI prints the reason and the way out: {}",
        describe(&out)
    );
    let statuses: Vec<Value> = dev
        .slipway_json(&["deployments", "swagger"])
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert_eq!(statuses, ["failed", "live"]);
    assert_eq!(
        dev.slipway_json(&["sites", "show", "swagger"])["spa"],
        false
    );
    let still = dev.get("swagger", "/");
    assert!(still.body == index, "the live version is untouched");
    let bundle = dev.get("swagger", "/swagger-ui-bundle.js");
    assert_eq!(bundle.status, 200);
    assert_eq!(
        bundle.body.len() as u64,
        std::fs::metadata(package.join("swagger-ui-bundle.js"))
            .unwrap()
            .len()
    );
}

/// The SPA's source: `tests/fixtures/spa` (Vite, a History API router, a lockfile; no
/// slipway.toml, so the framework is detected) copied to a fresh directory with its release
/// text set.
fn spa_source(release: &str) -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spa");
    let dir = tempfile::tempdir().unwrap();
    for file in files_under(&fixture) {
        if file.starts_with("node_modules/") || file.starts_with("dist/") {
            continue;
        }
        let target = dir.path().join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(fixture.join(&file), &target).unwrap();
    }
    let main = dir.path().join("src/main.js");
    let code = std::fs::read_to_string(&main).unwrap();
    assert!(code.contains("'release one'"), "the fixture's release text");
    std::fs::write(
        &main,
        code.replace("'release one'", &format!("'{release}'")),
    )
    .unwrap();
    dir
}

/// What one built version serves: its index.html and the hashed assets it references.
struct SpaVersion {
    id: String,
    index: Vec<u8>,
    script: String,
    assets: Vec<String>,
}

/// Deploys the SPA with `release` as its visible text and checks what a live version serves.
fn deploy_spa(dev: &Dev, release: &str) -> SpaVersion {
    let source = spa_source(release);
    let started = Instant::now();
    let out = dev.slipway_json(&["deploy", source.path().to_str().unwrap(), "--site", "spa"]);
    eprintln!("built and deployed {release:?} in {:?}", started.elapsed());
    assert_eq!(out["status"], "live", "{out}");
    let id = out["deployment_id"].as_str().unwrap().to_owned();
    let record = dev.deployment("spa", &id);
    assert_eq!(record["built"], true, "{record}");
    assert_eq!(record["spa"], true, "Vite was detected: {record}");

    let root = dev.get("spa", "/");
    assert_eq!(root.status, 200);
    assert_eq!(
        root.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(root.cache_control.as_deref(), Some(REVALIDATE));
    let html = root.text();
    assert!(html.contains("<main id=\"app\"></main>"), "{html}");
    assert!(
        !html.contains("/src/main.js"),
        "the served page is Vite's output, not the source: {html}"
    );
    let assets: Vec<String> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .filter(|r| r.starts_with("/assets/"))
        .collect();
    let script = assets
        .iter()
        .find(|a| a.ends_with(".js"))
        .unwrap_or_else(|| panic!("no bundled script in {html}"))
        .clone();
    assert!(
        assets.iter().any(|a| a.ends_with(".css")),
        "no bundled CSS in {html}"
    );
    let bundle = dev.get("spa", &script);
    assert_eq!(bundle.status, 200, "{script}");
    assert_eq!(
        bundle.content_type.as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let code = bundle.text();
    assert!(code.contains(release), "{script} renders {release:?}");
    assert!(code.contains("pushState"), "{script} has the router");

    for deep_link in ["/users/42", "/settings", "/settings?tab=profile"] {
        let page = dev.get("spa", deep_link);
        assert_eq!(page.status, 200, "{deep_link}");
        assert!(
            page.body == root.body,
            "{deep_link} serves index.html: {}",
            page.text()
        );
        assert_eq!(page.cache_control.as_deref(), Some(REVALIDATE));
    }

    let icon = dev.get("spa", "/favicon.svg");
    assert_eq!(icon.status, 200);
    assert_eq!(
        icon.content_type.as_deref(),
        Some("image/svg+xml; charset=utf-8")
    );
    assert_eq!(
        icon.cache_control.as_deref(),
        Some(REVALIDATE),
        "public/ files keep their names"
    );
    for missing in ["/assets/nope.js", "/assets/index-AbCd1234.css", "/nope.png"] {
        let served = dev.get("spa", missing);
        assert_eq!(served.status, 404, "{missing}");
        assert!(
            served.body != root.body,
            "{missing} has an extension, so it must not fall back to index.html"
        );
    }
    SpaVersion {
        id,
        index: root.body,
        script,
        assets,
    }
}

#[test]
fn a_vite_spa_is_detected_built_served_with_client_routes_and_rolled_back() {
    require_npm();
    let dev = Dev::start();
    // No --spa: SPA routing must come from detecting Vite.
    let created = dev.slipway_json(&["sites", "create", "spa"]);
    assert_eq!(created["spa"], false, "{created}");

    let one = deploy_spa(&dev, "release one");
    // Vite names bundles `{name}-{hash}.{ext}`, so browsers may keep them forever.
    for asset in &one.assets {
        let served = dev.get("spa", asset);
        assert_eq!(served.status, 200, "{asset}");
        assert_eq!(served.cache_control.as_deref(), Some(IMMUTABLE), "{asset}");
    }
    let log = dev.log_lines(&one.id);
    for needle in ["npm ci", "vite build", "built in"] {
        assert!(
            log.iter().any(|l| l.contains(needle)),
            "the build log shows {needle:?}: {log:#?}"
        );
    }
    assert!(
        log.iter().any(|l| l.contains(&one.script[1..])),
        "vite's report names {}: {log:#?}",
        one.script
    );

    let two = deploy_spa(&dev, "release two");
    assert_ne!(two.script, one.script, "new code, new bundle name");
    assert!(two.index != one.index);
    let old = dev.get("spa", &one.script);
    assert_eq!(
        old.status, 404,
        "version one's bundle is not part of version two"
    );
    assert!(dev
        .log_lines(&two.id)
        .iter()
        .any(|l| l.contains("built in")));
    // Version two's hashes have no digit (`index-FYUYwCTc.js`): recognised through the
    // detected framework, not the name alone.
    for asset in &two.assets {
        let served = dev.get("spa", asset);
        assert_eq!(served.cache_control.as_deref(), Some(IMMUTABLE), "{asset}");
    }
    for deep_link in ["/users/42/", "/settings/"] {
        let served = dev.get("spa", deep_link);
        assert_eq!(served.status, 200, "{deep_link}");
        assert!(
            served.body == two.index,
            "{deep_link} with a trailing slash is a client route"
        );
    }

    let rolled = dev.slipway_json(&["rollback", "spa"]);
    assert_eq!(rolled["deployment_id"], one.id.as_str(), "{rolled}");
    assert_eq!(rolled["status"], "live", "{rolled}");
    let root = dev.wait_for_content("spa", "/", &one.script, LIMIT);
    assert_eq!(root.status, 200);
    assert!(
        root.body == one.index,
        "version one's index.html is served again: {}",
        root.text()
    );
    for asset in &one.assets {
        let served = dev.get("spa", asset);
        assert_eq!(served.status, 200, "{asset} after rollback");
        assert_eq!(served.cache_control.as_deref(), Some(IMMUTABLE), "{asset}");
    }
    let code = dev.get("spa", &one.script).text();
    assert!(code.contains("release one") && !code.contains("release two"));
    assert_eq!(dev.get("spa", &two.script).status, 404);
    let deep = dev.get("spa", "/users/7");
    assert!(
        deep.body == one.index,
        "the rolled-back version keeps SPA routing"
    );

    assert_eq!(dev.deployment("spa", &one.id)["status"], "live");
    assert_ne!(dev.deployment("spa", &two.id)["status"], "live");
}
