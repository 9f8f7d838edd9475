//! Git push to deploy, end to end: the real `slipway dev` and `slipway` binaries, a local git
//! repository cloned over `file://`, signed GitHub deliveries, and a fake GitHub API that
//! records the commit statuses slipway sends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slipway_core::webhook::WebhookSecret;
use slipway_testkit::github::FakeGithub;
use slipway_tests::{describe, Dev};

const SECRET: &str = "it's a secret to everybody";
const TOKEN: &str = "ghp_test_token";
const REPO: &str = "acme/docs";

/// A git repository in a temporary directory, committed to with the git CLI.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn clone_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
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
    }

    /// Commits `files` on `branch` (created from the current commit when new); returns the sha.
    fn commit(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let exists = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(["rev-parse", "--verify", "--quiet", branch])
            .output()
            .unwrap()
            .status
            .success();
        let has_commits = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(["rev-parse", "--verify", "--quiet", "HEAD"])
            .output()
            .unwrap()
            .status
            .success();
        if exists || !has_commits {
            self.git(&["checkout", "--quiet", "-B", branch]);
        } else {
            self.git(&["checkout", "--quiet", "-b", branch]);
        }
        for (path, content) in files {
            let full: PathBuf = self.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", "change"]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// Sends GitHub deliveries to `slipway dev`'s webhook route, signed like GitHub signs them.
struct Github<'a> {
    dev: &'a Dev,
    repo: &'a Repo,
}

struct Delivered {
    status: u16,
    body: Value,
}

impl Github<'_> {
    fn deliver(&self, event: &str, delivery: &str, payload: &Value, secret: &str) -> Delivered {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = WebhookSecret::new(secret).unwrap().sign(&body);
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/webhooks/github", self.dev.api_url))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .expect("deliver a webhook");
        let status = response.status().as_u16();
        let body = response.json().unwrap_or(Value::Null);
        Delivered { status, body }
    }

    fn repository(&self) -> Value {
        json!({"full_name": REPO, "clone_url": self.repo.clone_url()})
    }

    fn push(&self, delivery: &str, branch: &str, sha: &str) -> Delivered {
        let payload = json!({
            "ref": format!("refs/heads/{branch}"),
            "before": "0000000000000000000000000000000000000000",
            "after": sha,
            "deleted": false,
            "repository": self.repository(),
        });
        self.deliver("push", delivery, &payload, SECRET)
    }

    fn pull_request(
        &self,
        delivery: &str,
        action: &str,
        number: u64,
        branch: &str,
        sha: &str,
    ) -> Delivered {
        let payload = json!({
            "action": action,
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"ref": branch, "sha": sha, "repo": self.repository()},
                "base": {"ref": "main", "repo": self.repository()},
            },
            "repository": self.repository(),
        });
        self.deliver("pull_request", delivery, &payload, SECRET)
    }
}

/// The deployment a delivery started.
fn started(delivered: &Delivered) -> String {
    assert_eq!(delivered.status, 202, "{}", delivered.body);
    delivered.body["deployments"][0]["deployment_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment in {}", delivered.body))
        .to_owned()
}

/// Waits until deployment `id` has finished, and returns its record.
fn finished(dev: &Dev, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let record = dev.deployment("docs", id);
        let status = record["status"].as_str().unwrap_or_default().to_owned();
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

/// The fake GitHub API, an empty repository, and `slipway dev` configured for both.
fn start() -> (FakeGithub, Repo, Dev) {
    let fake = FakeGithub::start();
    let repo = Repo::new();
    let dev = Dev::start_with_env(&[
        ("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET),
        ("SLIPWAY_GITHUB_TOKEN", TOKEN),
        ("SLIPWAY_GITHUB_API_URL", &fake.url()),
    ]);
    (fake, repo, dev)
}

fn page(version: &str) -> String {
    format!("<!doctype html><title>docs</title><p>{version}</p>")
}

#[test]
fn pushes_and_pull_requests_deploy_production_and_previews_with_commit_statuses() {
    let (fake, repo, dev) = start();
    let github = Github {
        dev: &dev,
        repo: &repo,
    };
    let site = dev.slipway_json(&[
        "sites", "create", "docs", "--repo", REPO, "--branch", "main",
    ]);
    assert_eq!(site["repo"]["repo"], REPO);
    assert_eq!(site["repo"]["production_branch"], "main");
    let shown = dev.slipway(&["sites", "show", "docs"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("acme/docs (production: main)"),
        "{}",
        describe(&shown)
    );

    // GitHub pings a new webhook first.
    let ping = github.deliver(
        "ping",
        "ping-1",
        &json!({"zen": "Keep it logically awesome."}),
        SECRET,
    );
    assert_eq!(
        (ping.status, ping.body["action"].as_str()),
        (200, Some("pong"))
    );

    // A push to the production branch deploys production.
    let v1 = repo.commit("main", &[("index.html", &page("v1 main"))]);
    let first = started(&github.push("push-1", "main", &v1));
    assert_eq!(finished(&dev, &first)["status"], "live");
    assert!(dev.get("docs", "/").text().contains("v1 main"));

    // A branch push gets its own preview; production is unchanged.
    let v2 = repo.commit("feature/x", &[("index.html", &page("v2 feature"))]);
    let preview = github.push("push-2", "feature/x", &v2);
    assert_eq!(preview.body["deployments"][0]["target"], "feature-x");
    let preview = started(&preview);
    let record = finished(&dev, &preview);
    assert_eq!(record["status"], "live", "{record}");
    assert_eq!(record["target"], "feature-x");
    assert!(dev
        .get("feature-x--docs", "/")
        .text()
        .contains("v2 feature"));
    assert!(dev.get("docs", "/").text().contains("v1 main"));
    // Every deployment keeps a URL of its own.
    assert!(dev
        .get(&format!("{first}--docs"), "/")
        .text()
        .contains("v1 main"));

    // A pull request gets pr-N.
    let opened = started(&github.pull_request("pr-1", "opened", 5, "feature/x", &v2));
    assert_eq!(finished(&dev, &opened)["target"], "pr-5");
    assert!(dev.get("pr-5--docs", "/").text().contains("v2 feature"));
    let previews = dev.slipway_json(&["previews", "docs"]);
    let targets: Vec<&str> = previews
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["feature-x", "pr-5"], "{previews}");
    assert!(previews[1]["url"]
        .as_str()
        .unwrap()
        .starts_with("http://pr-5--docs.localhost:"));

    // A redelivery starts nothing; a bad signature is refused.
    let count = |dev: &Dev| {
        dev.slipway_json(&["deployments", "docs"])
            .as_array()
            .unwrap()
            .len()
    };
    let before = count(&dev);
    let again = github.pull_request("pr-1", "opened", 5, "feature/x", &v2);
    assert_eq!(
        (again.status, again.body["action"].as_str()),
        (200, Some("duplicate"))
    );
    let forged = github.deliver(
        "push",
        "forged-1",
        &json!({"ref": "refs/heads/main"}),
        "wrong secret",
    );
    assert_eq!(
        (forged.status, forged.body["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    assert_eq!(count(&dev), before);

    // Two quick pushes to production: the newer one ends up live, whatever finishes first.
    let v3 = repo.commit("main", &[("index.html", &page("v3 main"))]);
    let v4 = repo.commit("main", &[("index.html", &page("v4 main"))]);
    let third = started(&github.push("push-3", "main", &v3));
    let fourth = started(&github.push("push-4", "main", &v4));
    finished(&dev, &third);
    assert_eq!(finished(&dev, &fourth)["status"], "live");
    assert_ne!(dev.deployment("docs", &third)["status"], "live");
    assert!(dev.get("docs", "/").text().contains("v4 main"));

    // Promote makes the preview's deployment production: no new deployment.
    let before = count(&dev);
    let promoted = dev.slipway_json(&["promote", "docs", "--from", "pr-5"]);
    assert_eq!(promoted["deployment_id"], opened.as_str());
    assert_eq!(count(&dev), before);
    assert!(dev.get("docs", "/").text().contains("v2 feature"));

    // Closing the pull request removes its route; the branch preview stays.
    let closed = github.pull_request("pr-2", "closed", 5, "feature/x", &v2);
    assert_eq!(closed.status, 200, "{}", closed.body);
    assert_eq!(dev.get("pr-5--docs", "/").status, 404);
    assert!(dev
        .get("feature-x--docs", "/")
        .text()
        .contains("v2 feature"));
    // Production keeps serving the promoted deployment.
    assert!(dev.get("docs", "/").text().contains("v2 feature"));

    // Deleting the branch removes its preview too.
    let deleted = github.deliver(
        "push",
        "push-5",
        &json!({
            "ref": "refs/heads/feature/x",
            "after": "0000000000000000000000000000000000000000",
            "deleted": true,
            "repository": github.repository(),
        }),
        SECRET,
    );
    assert_eq!(deleted.body["action"], "removed", "{}", deleted.body);
    assert_eq!(dev.get("feature-x--docs", "/").status, 404);

    // GitHub saw pending then success, with each deployment's URL, for every commit.
    let statuses = fake.statuses();
    let for_commit = |sha: &str| -> Vec<(String, Option<String>)> {
        statuses
            .iter()
            .filter(|s| s.sha == sha)
            .map(|s| (s.state.clone(), s.target_url.clone()))
            .collect()
    };
    let v1_statuses = for_commit(&v1);
    assert_eq!(v1_statuses.len(), 2, "{statuses:?}");
    assert_eq!(v1_statuses[0].0, "pending");
    assert_eq!(v1_statuses[1].0, "success");
    assert!(v1_statuses[1]
        .1
        .as_deref()
        .is_some_and(|url| url.starts_with("http://docs.localhost:")));
    let v2_urls: Vec<String> = for_commit(&v2)
        .into_iter()
        .filter(|(state, _)| state == "success")
        .filter_map(|(_, url)| url)
        .collect();
    assert!(
        v2_urls
            .iter()
            .any(|u| u.starts_with("http://feature-x--docs.localhost:")),
        "{v2_urls:?}"
    );
    assert!(
        v2_urls
            .iter()
            .any(|u| u.starts_with("http://pr-5--docs.localhost:")),
        "{v2_urls:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| s.repo == REPO && s.context == "slipway/docs"));
    assert!(statuses
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")[..])));
}

#[test]
fn a_failing_build_reports_failure_with_its_reason_and_production_stays() {
    let (fake, repo, dev) = start();
    let github = Github {
        dev: &dev,
        repo: &repo,
    };
    dev.slipway_json(&["sites", "create", "docs", "--repo", REPO]);
    let good = repo.commit("main", &[("index.html", &page("good"))]);
    let first = started(&github.push("push-1", "main", &good));
    assert_eq!(finished(&dev, &first)["status"], "live");

    let broken = repo.commit(
        "main",
        &[(
            "slipway.toml",
            "[build]\ncommand = \"echo compiling; exit 3\"\noutput_dir = \"dist\"\n",
        )],
    );
    let second = started(&github.push("push-2", "main", &broken));
    let record = finished(&dev, &second);
    assert_eq!(record["status"], "failed", "{record}");
    assert!(dev.get("docs", "/").text().contains("good"));

    let statuses = fake.statuses();
    let failure = statuses
        .iter()
        .find(|s| s.sha == broken && s.state == "failure")
        .unwrap_or_else(|| panic!("no failure status for {broken}: {statuses:?}"));
    assert!(failure.description.contains("exit"), "{failure:?}");
}
