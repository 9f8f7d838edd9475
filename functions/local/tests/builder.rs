//! The local builder against the real embedded stores: builds that run shell commands in a
//! scratch directory, stream their log into SQLite and upload their output to disk.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::names::DeploymentId;
use slipway_core::ports::{
    BuildError, BuildReport, BuildRequest, BuildSource, Builder, ObjectBody, ObjectMeta,
    ObjectStore, StateStore,
};
use slipway_local::builder::LocalBuilder;
use slipway_local::objects::FsObjectStore;
use slipway_local::sqlite::SqliteState;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;

struct Harness {
    dir: TempDir,
    objects: Arc<FsObjectStore>,
    state: Arc<SqliteState>,
    deployment: DeploymentId,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(FsObjectStore::new(dir.path().join("objects")).unwrap());
        let state = Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap());
        Self {
            dir,
            objects,
            state,
            deployment: DeploymentId::generate(),
        }
    }

    fn scratch_root(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    fn builder(&self) -> LocalBuilder {
        LocalBuilder::new(
            Arc::clone(&self.objects) as Arc<dyn ObjectStore>,
            Arc::clone(&self.state) as Arc<dyn StateStore>,
            self.scratch_root(),
        )
    }

    async fn upload_zip(&self, zip: Vec<u8>) -> ObjectLocation {
        let location = ObjectLocation {
            bucket: Bucket::Source,
            key: "sites/docs/source.zip".to_owned(),
        };
        let meta = ObjectMeta {
            content_type: "application/zip".to_owned(),
            cache_control: None,
        };
        self.objects
            .put(
                location.bucket,
                &location.key,
                ObjectBody::Bytes(zip.into()),
                &meta,
            )
            .await
            .unwrap();
        location
    }

    async fn upload_source(&self, files: &[(&str, &str)]) -> ObjectLocation {
        self.upload_zip(zip_of(files)).await
    }

    fn artifact(&self) -> ObjectLocation {
        ObjectLocation {
            bucket: Bucket::Artifacts,
            key: format!("builds/docs/{}/output.zip", self.deployment),
        }
    }

    fn request(&self, source: ObjectLocation, buildspec: &str) -> BuildRequest {
        BuildRequest {
            source: BuildSource::Archive(source),
            buildspec: buildspec.to_owned(),
            artifact: self.artifact(),
            env: vec![
                ("SLIPWAY_SITE".to_owned(), "docs".to_owned()),
                (
                    "SLIPWAY_DEPLOYMENT_ID".to_owned(),
                    self.deployment.to_string(),
                ),
            ],
        }
    }

    async fn build(
        &self,
        files: &[(&str, &str)],
        buildspec: &str,
    ) -> Result<BuildReport, BuildError> {
        let source = self.upload_source(files).await;
        self.builder().run(self.request(source, buildspec)).await
    }

    /// The artifact's files and their text.
    async fn artifact_files(&self) -> BTreeMap<String, String> {
        let location = self.artifact();
        let (info, body) = self
            .objects
            .get(location.bucket, &location.key)
            .await
            .unwrap()
            .expect("the artifact was uploaded");
        assert_eq!(info.meta.content_type, "application/zip");
        let bytes = match body {
            ObjectBody::Bytes(bytes) => bytes.to_vec(),
            ObjectBody::Stream { mut chunks, .. } => {
                let mut all = Vec::new();
                while let Some(chunk) = chunks.recv().await {
                    all.extend_from_slice(&chunk.unwrap());
                }
                all
            }
        };
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut files = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            files.insert(entry.name().unwrap().into_owned(), text);
        }
        files
    }

    async fn artifact_exists(&self) -> bool {
        let location = self.artifact();
        self.objects
            .head(location.bucket, &location.key)
            .await
            .unwrap()
            .is_some()
    }

    async fn log(&self) -> Vec<String> {
        self.state
            .read_log(&self.deployment, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect()
    }

    fn assert_scratch_removed(&self) {
        let left: Vec<_> = std::fs::read_dir(self.scratch_root())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "scratch directories left behind: {left:?}");
    }
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, text) in files {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn spec(phases: &str, base_directory: &str) -> String {
    format!("version: 0.2\nphases:\n{phases}\nartifacts:\n  base-directory: {base_directory}\n  files:\n    - '**/*'\n")
}

/// A YAML single-quoted scalar, for commands that contain `: ` or `#`.
fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn has_line(log: &[String], wanted: &str) -> bool {
    log.iter().any(|line| line.contains(wanted))
}

#[tokio::test]
async fn a_build_packs_its_output_directory_into_the_artifact() {
    let h = Harness::new();
    let buildspec = spec(
        "  build:\n    commands:\n      - mkdir -p dist/assets && echo hi > dist/index.html\n      - cp app.js dist/assets/app.js",
        "dist",
    );
    let report = h
        .build(
            &[("app.js", "console.log(1)\n"), ("README.md", "x")],
            &buildspec,
        )
        .await
        .unwrap();

    assert_eq!(report.file_count, 2);
    assert_eq!(report.bytes, 3 + 15);
    assert!(report
        .build_id
        .starts_with(&format!("slipway-local:{}-", h.deployment)));
    let files = h.artifact_files().await;
    assert_eq!(
        files,
        BTreeMap::from([
            ("assets/app.js".to_owned(), "console.log(1)\n".to_owned()),
            ("index.html".to_owned(), "hi\n".to_owned()),
        ])
    );
    let log = h.log().await;
    for wanted in [
        "[Container] Entering phase DOWNLOAD_SOURCE",
        "[Container] Entering phase BUILD",
        "[Container] Running command mkdir -p dist/assets && echo hi > dist/index.html",
        "[Container] Phase complete: BUILD State: SUCCEEDED",
        "[Container] Phase complete: UPLOAD_ARTIFACTS State: SUCCEEDED",
    ] {
        assert!(has_line(&log, wanted), "missing {wanted:?} in {log:#?}");
    }
    h.assert_scratch_removed();
}

#[tokio::test]
async fn commands_see_codebuilds_environment_and_the_requests_variables() {
    let h = Harness::new();
    let buildspec = "version: 0.2
env:
  variables:
    FROM_SPEC: spec-value
    OVERRIDDEN: from-spec
phases:
  build:
    commands:
      - mkdir out
      - env > out/env.txt
      - pwd > out/pwd.txt
      - test -n \"$PATH\" && echo path-set > out/path.txt
artifacts:
  base-directory: out
  files:
    - '**/*'
";
    let source = h.upload_source(&[("index.html", "hi")]).await;
    let etag = h
        .objects
        .head(source.bucket, &source.key)
        .await
        .unwrap()
        .unwrap()
        .etag;
    let mut request = h.request(source, buildspec);
    request
        .env
        .push(("OVERRIDDEN".to_owned(), "from-request".to_owned()));
    let report = h.builder().run(request).await.unwrap();

    let files = h.artifact_files().await;
    let env: BTreeMap<&str, &str> = files["env.txt"]
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let src_dir = files["pwd.txt"].trim_end();
    assert_eq!(env["CODEBUILD_SRC_DIR"], src_dir);
    assert!(src_dir.starts_with(h.scratch_root().to_str().unwrap()));
    assert_eq!(env["CODEBUILD_BUILD_ID"], report.build_id);
    assert_eq!(env["CODEBUILD_BUILD_NUMBER"], "1");
    assert_eq!(
        env["CODEBUILD_RESOLVED_SOURCE_VERSION"],
        etag.trim_matches('"')
    );
    assert_eq!(env["CODEBUILD_INITIATOR"], "slipway-local");
    assert_eq!(env["CODEBUILD_BUILD_SUCCEEDING"], "1");
    assert_eq!(env["CI"], "true");
    assert_eq!(env["FROM_SPEC"], "spec-value");
    assert_eq!(env["OVERRIDDEN"], "from-request");
    assert_eq!(env["SLIPWAY_SITE"], "docs");
    assert_eq!(env["SLIPWAY_DEPLOYMENT_ID"], h.deployment.to_string());
    assert_eq!(files["path.txt"], "path-set\n");
    h.assert_scratch_removed();
}

#[tokio::test]
async fn the_shell_session_carries_cd_and_exports_across_commands_and_phases() {
    let h = Harness::new();
    let buildspec = spec(
        "  install:
    commands:
      - export GREETING=hello
      - mkdir -p site/public
  pre_build:
    commands:
      - cd site
  build:
    commands:
      - echo \"$GREETING\" > public/greeting.txt
      - pwd > public/pwd.txt
      - cd public && ls > listing.txt
  post_build:
    commands:
      - test \"$(basename \"$PWD\")\" = public",
        "site/public",
    );
    h.build(&[("keep.txt", "")], &buildspec).await.unwrap();

    let files = h.artifact_files().await;
    assert_eq!(files["greeting.txt"], "hello\n");
    assert!(files["pwd.txt"].trim_end().ends_with("/src/site"));
    assert_eq!(files["listing.txt"], "greeting.txt\nlisting.txt\npwd.txt\n");
}

#[tokio::test]
async fn a_zipped_folder_builds_inside_the_folder() {
    let h = Harness::new();
    let buildspec = spec(
        "  build:\n    commands:\n      - test -f package.json\n      - mkdir dist && cp package.json dist/",
        "dist",
    );
    h.build(
        &[("my-site/package.json", "{}"), ("my-site/src/a.js", "")],
        &buildspec,
    )
    .await
    .unwrap();
    assert_eq!(
        h.artifact_files().await,
        BTreeMap::from([("package.json".to_owned(), "{}".to_owned())])
    );
}

#[tokio::test]
async fn a_failing_build_command_fails_the_build_but_post_build_still_runs() {
    let h = Harness::new();
    let buildspec = spec(
        "  build:
    commands:
      - echo compiling
      - echo 'error TS2304 cannot find name' >&2; false
      - echo never-printed
  post_build:
    commands:
      - echo \"post-build succeeding=$CODEBUILD_BUILD_SUCCEEDING\"",
        "dist",
    );
    let err = h.build(&[("a", "")], &buildspec).await.unwrap_err();

    match &err {
        BuildError::CommandFailed {
            phase,
            command,
            status,
        } => {
            assert_eq!(phase, "BUILD");
            assert_eq!(command, "echo 'error TS2304 cannot find name' >&2; false");
            assert_eq!(status, "exit status 1");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert_eq!(err.phase(), "BUILD");
    let log = h.log().await;
    for wanted in [
        "compiling",
        "error TS2304 cannot find name",
        "[Container] Command did not exit successfully echo 'error TS2304 cannot find name' >&2; false exit status 1",
        "[Container] Phase complete: BUILD State: FAILED",
        "[Container] Entering phase POST_BUILD",
        "post-build succeeding=0",
    ] {
        assert!(has_line(&log, wanted), "missing {wanted:?} in {log:#?}");
    }
    assert!(!has_line(&log, "never-printed"), "{log:#?}");
    assert!(!h.artifact_exists().await);
    h.assert_scratch_removed();
}

#[tokio::test]
async fn an_install_failure_skips_every_later_phase() {
    let h = Harness::new();
    let buildspec = spec(
        "  install:
    commands:
      - npm-that-does-not-exist ci
  build:
    commands:
      - echo build-ran
  post_build:
    commands:
      - echo post-build-ran",
        "dist",
    );
    let err = h.build(&[("a", "")], &buildspec).await.unwrap_err();
    match err {
        BuildError::CommandFailed { phase, status, .. } => {
            assert_eq!(phase, "INSTALL");
            assert_eq!(status, "exit status 127");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    let log = h.log().await;
    assert!(has_line(&log, "npm-that-does-not-exist"), "{log:#?}");
    assert!(!has_line(&log, "build-ran"), "{log:#?}");
    assert!(!has_line(&log, "post-build-ran"), "{log:#?}");
}

#[tokio::test]
async fn a_command_that_exits_the_shell_is_reported_as_that_command() {
    let h = Harness::new();
    let buildspec = spec(
        "  pre_build:\n    commands:\n      - echo leaving\n      - exit 4\n  build:\n    commands:\n      - echo never-printed",
        "dist",
    );
    let err = h.build(&[("a", "")], &buildspec).await.unwrap_err();
    match err {
        BuildError::CommandFailed {
            phase,
            command,
            status,
        } => {
            assert_eq!(phase, "PRE_BUILD");
            assert_eq!(command, "exit 4");
            assert_eq!(status, "exit status 4");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    let log = h.log().await;
    assert!(has_line(&log, "leaving"));
    assert!(has_line(
        &log,
        "[Container] Phase complete: PRE_BUILD State: FAILED"
    ));
    assert!(!has_line(&log, "never-printed"));
    h.assert_scratch_removed();
}

#[tokio::test]
async fn a_missing_or_empty_output_directory_is_no_output() {
    for (commands, base) in [
        ("      - echo nothing written", "dist"),
        ("      - mkdir dist", "dist"),
        // A link out of the source tree is not output.
        ("      - ln -s .. dist", "dist"),
        ("      - echo x > dist", "dist"),
    ] {
        let h = Harness::new();
        let buildspec = spec(&format!("  build:\n    commands:\n{commands}"), base);
        let err = h.build(&[("a", "")], &buildspec).await.unwrap_err();
        match &err {
            BuildError::NoOutput(dir) => assert_eq!(dir, base),
            other => panic!("{commands}: expected NoOutput, got {other:?}"),
        }
        assert_eq!(err.phase(), "UPLOAD_ARTIFACTS");
        assert!(!h.artifact_exists().await);
        h.assert_scratch_removed();
    }
}

#[tokio::test]
async fn a_zip_slip_source_is_rejected_before_anything_runs() {
    let h = Harness::new();
    let marker = h.dir.path().join("ran");
    let buildspec = spec(
        &format!(
            "  build:\n    commands:\n      - touch {}",
            marker.display()
        ),
        "dist",
    );
    let err = h
        .build(&[("ok.txt", "x"), ("../../evil.txt", "pwned")], &buildspec)
        .await
        .unwrap_err();
    match &err {
        BuildError::Source(zip) => {
            assert!(zip.to_string().contains("../../evil.txt"), "{zip}")
        }
        other => panic!("expected Source, got {other:?}"),
    }
    assert_eq!(err.phase(), "DOWNLOAD_SOURCE");
    assert!(!marker.exists());
    assert!(!h.scratch_root().parent().unwrap().join("evil.txt").exists());
    assert!(has_line(
        &h.log().await,
        "[Container] Phase complete: DOWNLOAD_SOURCE State: FAILED"
    ));
    h.assert_scratch_removed();
}

#[tokio::test]
async fn a_missing_source_object_is_a_source_error() {
    let h = Harness::new();
    let source = ObjectLocation {
        bucket: Bucket::Source,
        key: "sites/docs/gone.zip".to_owned(),
    };
    let err = h
        .builder()
        .run(h.request(
            source,
            &spec("  build:\n    commands:\n      - true", "dist"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::SourceMissing { ref key, .. } if key == "sites/docs/gone.zip"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_invalid_buildspec_is_a_buildspec_error() {
    let h = Harness::new();
    let err = h
        .build(&[("a", "")], "version: 0.2\nphases: [not, a, map]\n")
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Buildspec(_)), "{err:?}");
    h.assert_scratch_removed();
}

#[tokio::test]
async fn a_node_build_runs() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("node is not installed; skipping");
        return;
    }
    let h = Harness::new();
    let script = "const fs = require('fs'); \
        const pages = JSON.parse(fs.readFileSync('pages.json', 'utf8')); \
        fs.mkdirSync('build', { recursive: true }); \
        for (const [name, title] of Object.entries(pages)) \
          fs.writeFileSync('build/' + name + '.html', '<h1>' + title + '</h1>');";
    let buildspec = spec(
        &format!(
            "  build:\n    commands:\n      - node --version\n      - {}",
            yaml_quote(&format!(
                "node -e {}",
                serde_json::to_string(script).unwrap()
            ))
        ),
        "build",
    );
    let report = h
        .build(
            &[("pages.json", r#"{"index": "Home", "about": "About us"}"#)],
            &buildspec,
        )
        .await
        .unwrap();
    assert_eq!(report.file_count, 2);
    assert_eq!(
        h.artifact_files().await,
        BTreeMap::from([
            ("about.html".to_owned(), "<h1>About us</h1>".to_owned()),
            ("index.html".to_owned(), "<h1>Home</h1>".to_owned()),
        ])
    );
    assert!(has_line(&h.log().await, "v"));
}

#[tokio::test]
async fn a_build_past_its_timeout_is_killed_with_everything_it_started() {
    let h = Harness::new();
    let pid_file = h.dir.path().join("background.pid");
    let buildspec = spec(
        &format!(
            "  build:\n    commands:\n      - sleep 300 & echo $! > {}\n      - echo waiting\n      - sleep 300",
            pid_file.display()
        ),
        "dist",
    );
    let source = h.upload_source(&[("a", "")]).await;
    let started = Instant::now();
    let err = h
        .builder()
        .with_timeout(Duration::from_secs(1))
        .run(h.request(source, &buildspec))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    match err {
        BuildError::TimedOut {
            phase,
            command,
            seconds,
        } => {
            assert_eq!(phase, "BUILD");
            assert_eq!(command, "sleep 300");
            assert_eq!(seconds, 1);
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.trim();
    assert!(
        gone(Path::new("/proc").join(pid)).await,
        "the background process {pid} outlived the build"
    );
    assert!(has_line(&h.log().await, "timed out"));
    h.assert_scratch_removed();
}

#[tokio::test]
async fn a_process_that_escapes_the_build_cannot_hold_it_open() {
    let h = Harness::new();
    let pid_file = h.dir.path().join("daemon.pid");
    // `setsid` leaves the build's process group, so only the pipe ties it to the build.
    let daemon = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 300' &",
        pid_file.display()
    );
    let buildspec = spec(
        &format!(
            "  build:\n    commands:\n      - {}\n      - mkdir dist && echo ok > dist/index.html",
            yaml_quote(&daemon)
        ),
        "dist",
    );
    let started = Instant::now();
    let result = h.build(&[("a", "")], &buildspec).await;
    let elapsed = started.elapsed();
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    result.unwrap();
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert_eq!(h.artifact_files().await["index.html"], "ok\n");
    h.assert_scratch_removed();
}

/// A killed process disappears once reaped; a zombie awaiting its reaper counts as gone.
async fn gone(proc_dir: PathBuf) -> bool {
    for _ in 0..50 {
        match std::fs::read_to_string(proc_dir.join("stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

#[tokio::test]
async fn the_log_streams_while_the_build_runs() {
    let h = Arc::new(Harness::new());
    let buildspec = spec(
        "  build:\n    commands:\n      - echo first-line\n      - sleep 2\n      - mkdir dist && echo done > dist/index.html",
        "dist",
    );
    let source = h.upload_source(&[("a", "")]).await;
    let request = h.request(source, &buildspec);
    let build = tokio::spawn({
        let h = Arc::clone(&h);
        async move { h.builder().run(request).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_line(&h.log().await, "first-line") {
        assert!(
            Instant::now() < deadline,
            "the first line never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !build.is_finished(),
        "the log should show progress before the build ends"
    );
    build.await.unwrap().unwrap();
    let log = h.log().await;
    let first = log.iter().position(|l| l == "first-line").unwrap();
    let done = log
        .iter()
        .position(|l| l.contains("Phase complete: BUILD State: SUCCEEDED"))
        .unwrap();
    assert!(first < done);
}

#[tokio::test]
async fn a_request_without_a_deployment_id_is_refused() {
    let h = Harness::new();
    let source = h.upload_source(&[("a", "")]).await;
    let mut request = h.request(
        source,
        &spec("  build:\n    commands:\n      - true", "dist"),
    );
    request.env.retain(|(k, _)| k != "SLIPWAY_DEPLOYMENT_ID");
    let err = h.builder().run(request).await.unwrap_err();
    assert!(matches!(err, BuildError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn output_lines_are_split_like_a_terminal_and_bounded() {
    let h = Harness::new();
    let buildspec = spec(
        "  build:
    commands:
      - printf 'no newline'
      - printf 'windows line\\r\\n'
      - head -c 100000 /dev/zero | tr '\\0' a; echo
      - mkdir dist && echo x > dist/a",
        "dist",
    );
    h.build(&[("a", "")], &buildspec).await.unwrap();
    let log = h.log().await;
    let at = |wanted: &str| {
        log.iter()
            .position(|l| l == wanted)
            .unwrap_or_else(|| panic!("no line {wanted:?} in {log:#?}"))
    };
    let text = at("no newline");
    assert_eq!(
        at("[Container] Running command printf 'windows line\\r\\n'"),
        text + 1
    );
    at("windows line");
    let long = log
        .iter()
        .find(|l| l.starts_with("aaaa"))
        .expect("the long line is logged");
    assert!(long.len() < 20_000, "{} bytes", long.len());
    assert!(long.ends_with("[line cut]"));
}
