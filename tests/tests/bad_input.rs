//! Hostile and mistaken input through the real binaries: each gets a failed deployment with a
//! clear reason or a 4xx with a JSON error, and the live version stays exactly as it was.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;
use slipway_tests::{describe, noise, site_dir, write_zip, Dev};

/// Small limits so bombs stay cheap to build: 4 MiB unzipped, 50 entries, ratio 20, 8 MiB uploads.
const LIMITS: [&str; 8] = [
    "--max-unzipped-bytes",
    "4194304",
    "--max-zip-entries",
    "50",
    "--max-compression-ratio",
    "20",
    "--max-upload-bytes",
    "8388608",
];

fn start_with_live_site() -> (Dev, tempfile::TempDir, String) {
    let temp = tempfile::tempdir().unwrap();
    let dev = Dev::start_in(&temp.path().join("state"), &LIMITS);
    dev.slipway_json(&["sites", "create", "docs"]);
    let good = site_dir(&[("index.html", "<h1>the good version</h1>")]);
    let live = dev.slipway_json(&["deploy", good.path().to_str().unwrap(), "--site", "docs"]);
    let id = live["deployment_id"].as_str().unwrap().to_owned();
    (dev, temp, id)
}

/// Deploys `zip` and expects a failed deployment whose recorded error matches.
fn expect_failed(dev: &Dev, zip: &Path, name: &str, cause_contains: &str) {
    let out = dev.slipway(&["deploy", zip.to_str().unwrap(), "--site", "docs", "--json"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let outcome: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
    assert_eq!(outcome["status"], "failed", "{}", describe(&out));
    let id = outcome["deployment_id"].as_str().unwrap();
    let record = dev.deployment("docs", id);
    assert_eq!(record["error"]["name"], name, "{record}");
    let cause = record["error"]["cause"].as_str().unwrap();
    assert!(
        cause.contains(cause_contains),
        "cause {cause:?} should mention {cause_contains:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(cause_contains),
        "the CLI prints the reason: {stderr}"
    );
}

fn assert_live_untouched(dev: &Dev, live_id: &str) {
    let page = dev.get("docs", "/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("the good version"), "{}", page.text());
    let listed = dev.slipway_json(&["deployments", "docs"]);
    let live: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "live")
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], live_id);
    let hosted = dev.state_dir.join("objects/hosting/objects/docs");
    let prefixes: Vec<_> = std::fs::read_dir(&hosted)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        prefixes,
        [std::ffi::OsString::from(live_id)],
        "no partial prefix is left behind"
    );
}

/// A zip with two entries of the same name (the zip writer refuses to make one).
fn duplicate_zip(path: &Path) {
    write_zip(path, &[("index.html", b"one"), ("indey.html", b"two")]);
    let mut bytes = std::fs::read(path).unwrap();
    // Rename the second entry in its local header and its central directory record alike.
    let needle = b"indey.html";
    for i in 0..=bytes.len() - needle.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + 4] = b'x';
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn hostile_archives_fail_the_deployment_with_a_reason() {
    let (dev, temp, live_id) = start_with_live_site();
    let dir = temp.path();

    let not_zip = dir.join("not.zip");
    std::fs::write(&not_zip, b"this is a text file, not an archive").unwrap();
    expect_failed(&dev, &not_zip, "SourceInvalid", "not a zip");

    let truncated = dir.join("truncated.zip");
    write_zip(
        &truncated,
        &[
            ("index.html", "x".repeat(4000).as_bytes()),
            ("b.html", b"b"),
        ],
    );
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_failed(&dev, &truncated, "SourceInvalid", "truncated");

    let slip = dir.join("slip.zip");
    write_zip(
        &slip,
        &[("index.html", b"ok"), ("../../outside.html", b"evil")],
    );
    expect_failed(&dev, &slip, "SourceInvalid", "../../outside.html");

    let absolute = dir.join("absolute.zip");
    write_zip(&absolute, &[("/etc/cron.d/evil", b"evil")]);
    expect_failed(&dev, &absolute, "SourceInvalid", "/etc/cron.d/evil");

    let symlink = dir.join("symlink.zip");
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer
            .add_symlink(
                "passwd.html",
                "/etc/passwd",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
        std::fs::write(&symlink, writer.finish().unwrap().into_inner()).unwrap();
    }
    expect_failed(&dev, &symlink, "SourceInvalid", "symbolic link");

    let duplicate = dir.join("duplicate.zip");
    duplicate_zip(&duplicate);
    expect_failed(&dev, &duplicate, "SourceInvalid", "index.html");

    let empty = dir.join("empty.zip");
    write_zip(&empty, &[]);
    expect_failed(&dev, &empty, "SourceInvalid", "no files");

    let ratio = dir.join("ratio.zip");
    write_zip(&ratio, &[("zeros.bin", &vec![0u8; 2 * 1024 * 1024])]);
    expect_failed(&dev, &ratio, "SourceInvalid", "zip bomb");

    let big = dir.join("big.zip");
    let noise = noise(1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    let parts: Vec<String> = (0..5).map(|i| format!("part{i}.bin")).collect();
    let files: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|p| (p.as_str(), noise.as_slice()))
        .collect();
    write_zip(&big, &files);
    expect_failed(&dev, &big, "SourceInvalid", "limit 4.0 MiB");

    let many = dir.join("many.zip");
    let names: Vec<String> = (0..60).map(|i| format!("p{i}.html")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    write_zip(&many, &files);
    expect_failed(&dev, &many, "SourceInvalid", "50");

    assert_live_untouched(&dev, &live_id);
}

#[test]
fn bad_names_unknown_sites_and_ids_get_clear_errors() {
    let (dev, _temp, live_id) = start_with_live_site();

    let client = reqwest::blocking::Client::new();
    for bad in ["Bad_Name", "-x", "a--b", "UPPER", "a.b", ""] {
        // The CLI refuses before sending anything (a usage error)...
        let out = dev.slipway(&["sites", "create", "--", bad]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("site name"),
            "{}",
            describe(&out)
        );
        // ...and the API refuses with a JSON 400 for any other client.
        let response = client
            .post(format!("{}/sites", dev.api_url))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "name": bad }).to_string())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.json::<Value>().unwrap()["error"]["code"],
            "invalid_name"
        );
    }
    let exists = dev.slipway(&["sites", "create", "docs", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&exists.stdout).unwrap()["error"]["code"],
        "site_exists"
    );

    let somewhere = site_dir(&[("index.html", "x")]);
    let dir = somewhere.path().to_str().unwrap();
    for (args, code) in [
        (vec!["deploy", dir, "--site", "nope"], "site_not_found"),
        (vec!["sites", "show", "nope"], "site_not_found"),
        (vec!["deployments", "nope"], "site_not_found"),
        (vec!["rollback", "nope"], "site_not_found"),
        (
            vec!["rollback", "docs", "--to", "01jd0000000000000000000000"],
            "deployment_not_found",
        ),
        (vec!["rollback", "docs"], "no_rollback_target"),
        (
            vec!["logs", "01jd0000000000000000000000"],
            "deployment_not_found",
        ),
    ] {
        let mut with_json = args.clone();
        with_json.push("--json");
        let out = dev.slipway(&with_json);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let body: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{args:?}: {}", describe(&out)));
        assert_eq!(body["error"]["code"], code, "{args:?}: {body}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "{args:?} explains itself on stderr"
        );
    }
    assert_live_untouched(&dev, &live_id);
}

#[test]
fn the_api_answers_malformed_and_oversized_requests_with_json_4xx() {
    let (dev, temp, live_id) = start_with_live_site();
    let client = reqwest::blocking::Client::new();
    let api = &dev.api_url;
    let check = |response: reqwest::blocking::Response, status: u16, code: &str| {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    };
    check(
        client
            .post(format!("{api}/sites"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap(),
        400,
        "invalid_body",
    );
    check(
        client
            .post(format!("{api}/sites"))
            .header("content-type", "application/json")
            .body(r#"{"name":"x","bogus":1}"#)
            .send()
            .unwrap(),
        400,
        "invalid_body",
    );
    check(
        client
            .post(format!("{api}/sites"))
            .header("content-type", "application/json")
            .body(vec![b' '; 100 * 1024])
            .send()
            .unwrap(),
        413,
        "payload_too_large",
    );
    check(
        client.get(format!("{api}/nowhere")).send().unwrap(),
        404,
        "not_found",
    );
    check(
        client.delete(format!("{api}/sites")).send().unwrap(),
        405,
        "method_not_allowed",
    );
    check(
        client
            .get(format!("{api}/sites/docs/deployments/nope"))
            .send()
            .unwrap(),
        400,
        "invalid_id",
    );

    // Uploads: only to a deployment that awaits one, once, and within the size limit.
    let created: Value = client
        .post(format!("{api}/sites/docs/deployments"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let url = created["upload"]["url"].as_str().unwrap();
    // Refused on its Content-Length, before a byte of the body is read.
    let path = url.strip_prefix(api.as_str()).unwrap();
    let mut stream = std::net::TcpStream::connect(api.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        api.trim_start_matches("http://"),
        9 * 1024 * 1024
    )
    .unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .read_to_string(&mut reply)
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("payload_too_large") && reply.contains("connection: close"),
        "{reply}"
    );
    check(
        client
            .put(format!("{api}/uploads/docs/01jd0000000000000000000000.zip"))
            .body("x")
            .send()
            .unwrap(),
        404,
        "upload_not_found",
    );
    check(
        client
            .put(format!("{api}/uploads/docs/%2e%2e%2fx.zip"))
            .body("x")
            .send()
            .unwrap(),
        404,
        "upload_not_found",
    );
    // The CLI declares the size, so an oversized zip is refused before a deployment exists.
    let before = dev
        .slipway_json(&["deployments", "docs"])
        .as_array()
        .unwrap()
        .len();
    let huge = temp.path().join("huge.zip");
    let noise = noise(9 * 1024 * 1024, 0x1234_5678_9abc_def1);
    write_zip(&huge, &[("video.bin", &noise)]);
    let out = dev.slipway(&["deploy", huge.to_str().unwrap(), "--site", "docs", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let after = dev
        .slipway_json(&["deployments", "docs"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        before, after,
        "no deployment was created for the refused upload"
    );
    assert_live_untouched(&dev, &live_id);
}

#[test]
fn a_token_protects_the_local_api() {
    let temp = tempfile::tempdir().unwrap();
    let dev = Dev::start_in(&temp.path().join("state"), &["--token", "s3cret"]);
    let denied = dev.slipway(&["sites", "list", "--json"]);
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(
        serde_json::from_slice::<Value>(&denied.stdout).unwrap()["error"]["code"],
        "unauthorized"
    );
    let allowed = dev.slipway(&["sites", "list", "--json", "--token", "s3cret"]);
    assert!(allowed.status.success(), "{}", describe(&allowed));
}
