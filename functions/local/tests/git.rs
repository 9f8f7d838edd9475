//! Deploying from git in `slipway dev`: the mirror-backed repository reader Prepare detects
//! builds with, and the local builder checking a commit out, against real repositories made
//! with the `git` CLI in temporary directories and reached through `file://` URLs.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use slipway_core::model::Bucket;
use slipway_core::model::{GitSource, ObjectLocation};
use slipway_core::names::{BranchName, CommitSha, DeploymentId, RepoName, RootDir};
use slipway_core::ports::{
    BuildError, BuildReport, BuildRequest, BuildSource, Builder, ObjectBody, ObjectStore,
    RepoError, RepoReader, StateStore,
};
use slipway_core::site::build_plan::{decide, BuildDecision, BuildPlan, DETECTION_FILES};
use slipway_local::builder::LocalBuilder;
use slipway_local::git::GitRepos;
use slipway_local::objects::FsObjectStore;
use slipway_local::sqlite::SqliteState;
use tempfile::TempDir;

/// A repository on disk, committed to with the git CLI.
struct Repo {
    _dir: TempDir,
    path: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let repo = Self::missing();
        repo.init();
        repo
    }

    /// A repository path nothing exists at yet.
    fn missing() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        Self { _dir: dir, path }
    }

    fn init(&self) {
        std::fs::create_dir(&self.path).unwrap();
        self.git(&["init", "--quiet", "--initial-branch=main"]);
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&self.path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Writes the files (None removes one) and commits everything; returns the commit.
    fn commit(&self, files: &[(&str, Option<&str>)]) -> CommitSha {
        for (path, content) in files {
            let full = self.path.join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, content).unwrap();
                }
                None => std::fs::remove_file(&full).unwrap(),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", "change"]);
        CommitSha::parse(&self.git(&["rev-parse", "HEAD"])).unwrap()
    }

    fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn source(&self, sha: &CommitSha, root: Option<&str>) -> GitSource {
        GitSource {
            repo: RepoName::parse("acme/site").unwrap(),
            clone_url: self.url(),
            sha: sha.clone(),
            branch: BranchName::parse("main").unwrap(),
            pull_request: None,
            root: root.map(|r| RootDir::parse(r).unwrap()),
        }
    }
}

fn sorted(mut files: Vec<String>) -> Vec<String> {
    files.sort();
    files
}

fn cache() -> (TempDir, GitRepos) {
    let dir = tempfile::tempdir().unwrap();
    let repos = GitRepos::new(dir.path().join("git"));
    (dir, repos)
}

const MISSING_SHA: &str = "1111111111111111111111111111111111111111";

#[tokio::test]
async fn files_of_a_commit_are_listed_and_read_from_a_file_url() {
    let repo = Repo::new();
    let sha = repo.commit(&[
        ("index.html", Some("<h1>one</h1>")),
        ("package.json", Some(r#"{"name":"site"}"#)),
        ("css/site.css", Some("body{}")),
    ]);
    let (dir, repos) = cache();
    let source = repo.source(&sha, None);

    let files = repos.list_files(&source).await.unwrap();
    assert_eq!(
        sorted(files),
        ["css/site.css", "index.html", "package.json"]
    );
    let package = repos
        .read_file(&source, "package.json", 1024)
        .await
        .unwrap();
    assert_eq!(package.as_deref(), Some(&br#"{"name":"site"}"#[..]));
    let nested = repos
        .read_file(&source, "css/site.css", 1024)
        .await
        .unwrap();
    assert_eq!(nested.as_deref(), Some(&b"body{}"[..]));

    // One bare mirror, named by the sha256 of the clone URL.
    let mirrors: Vec<_> = std::fs::read_dir(dir.path().join("git"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    assert_eq!(mirrors[0].len(), 64);
    assert!(mirrors[0].bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn missing_large_and_non_file_paths_read_as_none() {
    let repo = Repo::new();
    let sha = repo.commit(&[
        ("slipway.toml", Some("spa = true\n")),
        ("big.json", Some(&"x".repeat(2048))),
        ("dir/file.txt", Some("f")),
    ]);
    let (_dir, repos) = cache();
    let source = repo.source(&sha, None);

    for path in ["nope.json", "dir", "../slipway.toml", "/slipway.toml", ""] {
        let read = repos.read_file(&source, path, 1 << 20).await.unwrap();
        assert_eq!(read, None, "{path:?}");
    }
    assert_eq!(
        repos.read_file(&source, "big.json", 2047).await.unwrap(),
        None
    );
    let exact = repos.read_file(&source, "big.json", 2048).await.unwrap();
    assert_eq!(exact.map(|b| b.len()), Some(2048));
}

#[tokio::test]
async fn a_root_scopes_the_listing_and_the_reads() {
    let repo = Repo::new();
    let sha = repo.commit(&[
        ("README.md", Some("monorepo")),
        ("package.json", Some(r#"{"name":"workspace"}"#)),
        ("apps/web/package.json", Some(r#"{"name":"web"}"#)),
        ("apps/web/src/main.js", Some("main")),
        ("apps/webby/other.txt", Some("not under apps/web")),
    ]);
    let (_dir, repos) = cache();
    let source = repo.source(&sha, Some("apps/web"));

    let files = repos.list_files(&source).await.unwrap();
    assert_eq!(sorted(files), ["package.json", "src/main.js"]);
    let package = repos
        .read_file(&source, "package.json", 1024)
        .await
        .unwrap();
    assert_eq!(package.as_deref(), Some(&br#"{"name":"web"}"#[..]));
    let outside = repos.read_file(&source, "README.md", 1024).await.unwrap();
    assert_eq!(outside, None);
}

#[tokio::test]
async fn each_commit_is_read_as_it_was_and_later_commits_are_fetched() {
    let repo = Repo::new();
    let first = repo.commit(&[("index.html", Some("one"))]);
    let (_dir, repos) = cache();
    let at_first = repo.source(&first, None);
    assert_eq!(repos.list_files(&at_first).await.unwrap(), ["index.html"]);

    // After the mirror was cloned: a new commit, then one no branch points at any more.
    let second = repo.commit(&[("index.html", Some("two")), ("about.html", Some("a"))]);
    let orphan = repo.commit(&[("orphan.html", Some("o"))]);
    repo.git(&["reset", "--quiet", "--hard", second.as_str()]);

    let at_second = repo.source(&second, None);
    assert_eq!(
        sorted(repos.list_files(&at_second).await.unwrap()),
        ["about.html", "index.html"]
    );
    let read = |source: GitSource| {
        let repos = &repos;
        async move { repos.read_file(&source, "index.html", 64).await.unwrap() }
    };
    assert_eq!(read(at_second.clone()).await.as_deref(), Some(&b"two"[..]));
    // The earlier commit still reads as it was.
    assert_eq!(repos.list_files(&at_first).await.unwrap(), ["index.html"]);
    assert_eq!(read(at_first).await.as_deref(), Some(&b"one"[..]));
    assert_eq!(
        repos
            .read_file(&at_second, "orphan.html", 64)
            .await
            .unwrap(),
        None
    );
    let at_orphan = repo.source(&orphan, None);
    assert!(repos
        .list_files(&at_orphan)
        .await
        .unwrap()
        .contains(&"orphan.html".to_owned()));
}

#[tokio::test]
async fn unknown_commits_and_unreachable_repositories_are_not_found() {
    let repo = Repo::new();
    repo.commit(&[("index.html", Some("one"))]);
    let (_dir, repos) = cache();

    let unknown = repo.source(&CommitSha::parse(MISSING_SHA).unwrap(), None);
    match repos.list_files(&unknown).await {
        Err(RepoError::NotFound { sha, reason, .. }) => {
            assert_eq!(sha.as_str(), MISSING_SHA);
            assert!(reason.contains(MISSING_SHA), "{reason}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match repos.read_file(&unknown, "index.html", 64).await {
        Err(RepoError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    let later = Repo::missing();
    let mut gone = later.source(&CommitSha::parse(MISSING_SHA).unwrap(), None);
    match repos.list_files(&gone).await {
        Err(RepoError::NotFound { reason, .. }) => {
            assert!(
                reason.contains("does not appear to be a git repository"),
                "{reason}"
            )
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // The failed clone left nothing behind: once the repository exists, it is read.
    later.init();
    let sha = later.commit(&[("late.html", Some("late"))]);
    gone.sha = sha;
    assert_eq!(repos.list_files(&gone).await.unwrap(), ["late.html"]);
}

#[tokio::test]
async fn clone_urls_cannot_run_commands_or_pass_options() {
    let (dir, repos) = cache();
    let marker = dir.path().join("pwned");
    let sha = CommitSha::parse(MISSING_SHA).unwrap();
    let repo = Repo::new();
    for url in [
        format!("ext::sh -c touch% {}", marker.display()),
        format!("--upload-pack=touch {}", marker.display()),
        "/tmp/plain/path".to_owned(),
    ] {
        let mut source = repo.source(&sha, None);
        source.clone_url = url.clone();
        match repos.list_files(&source).await {
            Err(RepoError::NotFound { reason, .. }) => {
                assert!(reason.contains("not allowed"), "{url}: {reason}")
            }
            other => panic!("{url}: expected NotFound, got {other:?}"),
        }
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn concurrent_readers_share_one_mirror() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", Some("one")), ("a.txt", Some("a"))]);
    let (dir, repos) = cache();
    let repos = Arc::new(repos);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let repos = Arc::clone(&repos);
            let source = repo.source(&sha, None);
            tokio::spawn(async move { sorted(repos.list_files(&source).await.unwrap()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), ["a.txt", "index.html"]);
    }
    let entries = std::fs::read_dir(dir.path().join("git")).unwrap().count();
    assert_eq!(entries, 1);
}

// ---- the builder ----

struct Build {
    dir: TempDir,
    objects: Arc<FsObjectStore>,
    state: Arc<SqliteState>,
    deployment: DeploymentId,
}

impl Build {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            objects: Arc::new(FsObjectStore::new(dir.path().join("objects")).unwrap()),
            state: Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap()),
            dir,
            deployment: DeploymentId::generate(),
        }
    }

    fn scratch_root(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    fn artifact(&self) -> ObjectLocation {
        ObjectLocation {
            bucket: Bucket::Artifacts,
            key: format!("builds/site/{}/output.zip", self.deployment),
        }
    }

    async fn run(
        &self,
        url: String,
        commit: &CommitSha,
        buildspec: &str,
    ) -> Result<BuildReport, BuildError> {
        let builder = LocalBuilder::new(
            Arc::clone(&self.objects) as Arc<dyn ObjectStore>,
            Arc::clone(&self.state) as Arc<dyn StateStore>,
            self.scratch_root(),
        );
        let request = BuildRequest {
            source: BuildSource::Git {
                url,
                commit: commit.clone(),
            },
            buildspec: buildspec.to_owned(),
            artifact: self.artifact(),
            env: vec![
                ("SLIPWAY_SITE".to_owned(), "site".to_owned()),
                (
                    "SLIPWAY_DEPLOYMENT_ID".to_owned(),
                    self.deployment.to_string(),
                ),
            ],
        };
        let result = builder.run(request).await;
        let left = std::fs::read_dir(self.scratch_root()).unwrap().count();
        assert_eq!(left, 0, "the scratch directory was left behind");
        result
    }

    async fn artifact_files(&self) -> BTreeMap<String, String> {
        let location = self.artifact();
        let (_, body) = self
            .objects
            .get(location.bucket, &location.key)
            .await
            .unwrap()
            .expect("the artifact was uploaded");
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

    async fn log(&self) -> Vec<String> {
        let lines = self.state.read_log(&self.deployment, 0).await.unwrap();
        lines.into_iter().map(|l| l.line).collect()
    }
}

/// What Prepare decides for a commit: detection through the repository reader, then the
/// buildspec CodeBuild (here, the local builder) is handed.
async fn plan_for(repos: &GitRepos, source: &GitSource) -> BuildPlan {
    let files = repos.list_files(source).await.unwrap();
    let mut contents = BTreeMap::new();
    for name in DETECTION_FILES {
        if let Some(bytes) = repos.read_file(source, name, 1 << 20).await.unwrap() {
            contents.insert(name, bytes);
        }
    }
    let paths: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut plan = match decide(&paths, |p| contents.get(p).cloned(), false).unwrap() {
        BuildDecision::Build(plan) => plan,
        BuildDecision::Prebuilt { spa, clean_urls } => BuildPlan::checkout_only(spa, clean_urls),
    };
    plan.root = source.root.clone();
    plan
}

const CUSTOM_BUILD: &str = r#"[build]
command = "mkdir -p out && echo hi > out/index.html && echo \"$CODEBUILD_RESOLVED_SOURCE_VERSION $CODEBUILD_SOURCE_VERSION\" > out/version.txt && cat note.txt > out/note.txt"
output_dir = "out"
"#;

#[tokio::test]
async fn a_commit_is_checked_out_and_built() {
    let repo = Repo::new();
    let first = repo.commit(&[
        ("slipway.toml", Some(CUSTOM_BUILD)),
        ("note.txt", Some("first")),
    ]);
    let second = repo.commit(&[("note.txt", Some("second"))]);
    let (_cache, repos) = cache();
    let plan = plan_for(&repos, &repo.source(&first, None)).await;
    let buildspec = plan.buildspec_yaml();

    let build = Build::new();
    let report = build.run(repo.url(), &first, &buildspec).await.unwrap();
    assert_eq!(report.file_count, 3);
    let files = build.artifact_files().await;
    assert_eq!(files["index.html"], "hi\n");
    // The commit asked for, not the branch's newer head.
    assert_eq!(files["note.txt"], "first");
    assert_eq!(files["version.txt"], format!("{first} {first}\n"));
    assert_ne!(first, second);
    let log = build.log().await;
    assert!(
        log.iter()
            .any(|l| l.contains("Checked out") && l.contains(first.as_str())),
        "{log:#?}"
    );
}

#[tokio::test]
async fn a_checkout_is_published_without_git_metadata_secrets_or_config() {
    let repo = Repo::new();
    let sha = repo.commit(&[
        ("index.html", Some("<h1>home</h1>")),
        ("css/site.css", Some("body{}")),
        ("slipway.toml", Some("spa = true\n")),
        (".env", Some("SECRET=1")),
        ("blog/.env.local", Some("SECRET=2")),
        ("blog/environment.html", Some("kept")),
        (".well-known/security.txt", Some("contact")),
    ]);
    let (_cache, repos) = cache();
    let plan = plan_for(&repos, &repo.source(&sha, None)).await;
    assert_eq!(plan.spa, Some(true));
    assert_eq!(plan.output_dir, ".");

    let build = Build::new();
    build
        .run(repo.url(), &sha, &plan.buildspec_yaml())
        .await
        .unwrap();
    let files = build.artifact_files().await;
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            ".well-known/security.txt",
            "blog/environment.html",
            "css/site.css",
            "index.html"
        ]
    );
}

#[tokio::test]
async fn a_monorepo_app_builds_and_publishes_from_its_root() {
    let repo = Repo::new();
    let sha = repo.commit(&[
        ("README.md", Some("monorepo")),
        ("apps/web/slipway.toml", Some(CUSTOM_BUILD)),
        ("apps/web/note.txt", Some("web")),
        ("apps/docs/index.html", Some("<h1>docs</h1>")),
        ("apps/docs/slipway.toml", Some("clean_urls = true\n")),
        ("apps/docs/.env", Some("SECRET=1")),
    ]);
    let (_cache, repos) = cache();

    let web = repo.source(&sha, Some("apps/web"));
    let plan = plan_for(&repos, &web).await;
    let build = Build::new();
    build
        .run(repo.url(), &sha, &plan.buildspec_yaml())
        .await
        .unwrap();
    let files = build.artifact_files().await;
    assert_eq!(files["note.txt"], "web");
    assert_eq!(files["index.html"], "hi\n");
    assert_eq!(files.len(), 3, "{files:?}");

    let docs = repo.source(&sha, Some("apps/docs"));
    let plan = plan_for(&repos, &docs).await;
    assert_eq!(plan.clean_urls, Some(true));
    let build = Build::new();
    build
        .run(repo.url(), &sha, &plan.buildspec_yaml())
        .await
        .unwrap();
    let files = build.artifact_files().await;
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["index.html"]
    );
}

#[tokio::test]
async fn an_unknown_commit_fails_the_download_phase() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", Some("one"))]);
    let buildspec = BuildPlan::checkout_only(None, None).buildspec_yaml();
    let build = Build::new();
    let missing = CommitSha::parse(MISSING_SHA).unwrap();

    let err = build
        .run(repo.url(), &missing, &buildspec)
        .await
        .unwrap_err();
    assert_eq!(err.phase(), "DOWNLOAD_SOURCE");
    match &err {
        BuildError::Checkout { commit, reason, .. } => {
            assert_eq!(commit, &missing);
            assert!(reason.contains(MISSING_SHA), "{reason}");
        }
        other => panic!("expected a checkout failure, got {other:?}"),
    }
    let refused = build
        .run("ext::sh -c true".to_owned(), &sha, &buildspec)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, BuildError::Checkout { .. }),
        "{refused:?}"
    );
    let artifact = build.artifact();
    let uploaded = build
        .objects
        .head(artifact.bucket, &artifact.key)
        .await
        .unwrap();
    assert!(uploaded.is_none());
}
