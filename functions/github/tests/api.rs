//! `GithubApi` against the fake GitHub server: what goes over the wire, and how each answer
//! is classified.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, StatusCode};
use serde_json::json;
use slipway_core::ports::{CommitState, CommitStatus, CommitStatuses, RepoError, RepoReader};
use slipway_github::GithubApi;
use slipway_testkit::github::FakeGithub;

mod common;

use common::{config, header, rejected, repo, sha, source, success, transient, TOKEN};

fn api(url: String, token: Option<&str>) -> GithubApi {
    GithubApi::new(config(url, token)).unwrap()
}

#[tokio::test]
async fn an_accepted_status_sends_the_right_path_headers_and_body() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));

    api.report(&repo(), &sha(), &success()).await.unwrap();

    let statuses = fake.statuses();
    assert_eq!(statuses.len(), 1);
    let sent = &statuses[0];
    assert_eq!(sent.repo, "Octo-Org/web.site");
    assert_eq!(sent.sha, sha().as_str());
    assert_eq!(sent.answered, 201);
    assert_eq!(
        sent.authorization.as_deref(),
        Some("Bearer ghp_TopSecretToken123")
    );
    assert_eq!(
        sent.body,
        json!({
            "state": "success",
            "target_url": "https://docs.example.com/",
            "description": "Deployed 01jd to production",
            "context": "slipway/docs",
        })
    );
    assert_eq!(
        (sent.state.as_str(), sent.target_url.as_deref()),
        ("success", Some("https://docs.example.com/"))
    );
    assert_eq!(
        (sent.description.as_str(), sent.context.as_str()),
        ("Deployed 01jd to production", "slipway/docs")
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(
        request.uri,
        "/repos/Octo-Org/web.site/statuses/0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        header(request, ACCEPT.as_str()),
        ["application/vnd.github+json"]
    );
    assert_eq!(header(request, "x-github-api-version"), ["2022-11-28"]);
    assert_eq!(header(request, USER_AGENT.as_str()), ["slipway"]);
    assert_eq!(header(request, CONTENT_TYPE.as_str()), ["application/json"]);
}

#[tokio::test]
async fn a_status_without_a_url_leaves_target_url_out() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));
    let pending = CommitStatus {
        state: CommitState::Pending,
        target_url: None,
        description: "Building".to_owned(),
        context: "slipway/docs".to_owned(),
    };

    api.report(&repo(), &sha(), &pending).await.unwrap();

    let body = &fake.statuses()[0].body;
    assert_eq!(
        body,
        &json!({ "state": "pending", "description": "Building", "context": "slipway/docs" })
    );
}

#[tokio::test]
async fn github_enterprise_urls_keep_their_prefix() {
    let fake = FakeGithub::start();
    let api = api(format!("{}/", fake.enterprise_url()), Some(TOKEN));

    api.report(&repo(), &sha(), &success()).await.unwrap();

    let uri = &fake.requests()[0].uri;
    assert!(
        uri.starts_with("/api/v3/repos/Octo-Org/web.site/statuses/"),
        "{uri}"
    );
}

#[tokio::test]
async fn server_errors_and_too_many_requests_are_transient() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));
    fake.fail_next_statuses(1, StatusCode::INTERNAL_SERVER_ERROR);
    fake.fail_next_statuses(1, StatusCode::BAD_GATEWAY);
    fake.fail_next_statuses(1, StatusCode::TOO_MANY_REQUESTS);

    for code in ["500", "502", "429"] {
        let error = transient(api.report(&repo(), &sha(), &success()).await);
        assert!(error.contains(code), "{error}");
    }
    // Only the calls it was told about fail.
    api.report(&repo(), &sha(), &success()).await.unwrap();

    let answered: Vec<u16> = fake.statuses().iter().map(|s| s.answered).collect();
    assert_eq!(answered, [500, 502, 429, 201]);
}

#[tokio::test]
async fn a_spent_rate_limit_is_transient_but_a_plain_403_is_rejected() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));

    fake.rate_limit_next_statuses(1);
    let error = transient(api.report(&repo(), &sha(), &success()).await);
    assert!(error.contains("rate limit"), "{error}");

    fake.fail_next_statuses(1, StatusCode::FORBIDDEN);
    let message = rejected(api.report(&repo(), &sha(), &success()).await);
    assert!(message.contains("403"), "{message}");
    assert!(message.contains("repo:status"), "{message}");
}

#[tokio::test]
async fn validation_failures_are_rejected_with_githubs_message() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));
    fake.fail_next_statuses(1, StatusCode::UNPROCESSABLE_ENTITY);

    let message = rejected(api.report(&repo(), &sha(), &success()).await);

    assert!(message.contains("422"), "{message}");
    assert!(
        message.contains("Unprocessable Entity (the fake GitHub was told to fail this call)"),
        "{message}"
    );
    assert!(message.contains(sha().short()), "{message}");
}

#[tokio::test]
async fn bad_credentials_are_rejected() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));
    fake.fail_next_statuses(1, StatusCode::UNAUTHORIZED);

    let message = rejected(api.report(&repo(), &sha(), &success()).await);

    assert!(message.contains("401"), "{message}");
    assert!(message.contains("invalid or expired"), "{message}");
}

#[tokio::test]
async fn without_a_token_statuses_are_refused_without_a_request() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), None);

    let message = rejected(api.report(&repo(), &sha(), &success()).await);

    assert!(message.contains("no GitHub token"), "{message}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = api(url, Some(TOKEN));

    let error = transient(api.report(&repo(), &sha(), &success()).await);

    assert!(error.contains("could not be reached"), "{error}");
}

fn monorepo(fake: &FakeGithub) {
    fake.add_commit(
        &repo(),
        &sha(),
        [
            ("README.md", "# web"),
            ("apps/web/angular.json", "{}"),
            ("apps/web/package.json", r#"{"name":"web"}"#),
            ("apps/web/src/main.ts", "bootstrap()"),
            ("apps/website/package.json", "{}"),
            ("package.json", r#"{"private":true}"#),
        ],
    );
}

#[tokio::test]
async fn list_files_returns_every_file_of_the_commit() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    let api = api(fake.url(), None);

    let files = api.list_files(&source(None)).await.unwrap();

    assert_eq!(
        files,
        [
            "README.md",
            "apps/web/angular.json",
            "apps/web/package.json",
            "apps/web/src/main.ts",
            "apps/website/package.json",
            "package.json",
        ]
    );
    let request = &fake.requests()[0];
    assert_eq!(
        request.uri,
        "/repos/Octo-Org/web.site/git/trees/0123456789abcdef0123456789abcdef01234567?recursive=1"
    );
    assert_eq!(
        header(request, ACCEPT.as_str()),
        ["application/vnd.github+json"]
    );
    assert!(header(request, AUTHORIZATION.as_str()).is_empty());
}

#[tokio::test]
async fn list_files_under_a_root_is_relative_to_it() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    let api = api(fake.url(), Some(TOKEN));

    let files = api.list_files(&source(Some("apps/web"))).await.unwrap();

    assert_eq!(files, ["angular.json", "package.json", "src/main.ts"]);
}

#[tokio::test]
async fn a_truncated_tree_is_an_error_not_a_partial_listing() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    fake.truncate_trees_over(3);
    let api = api(fake.url(), Some(TOKEN));

    let error = api.list_files(&source(None)).await.unwrap_err();

    assert!(matches!(error, RepoError::TooLarge { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("too many files"), "{message}");
    assert!(message.contains(sha().as_str()), "{message}");
}

#[tokio::test]
async fn an_unknown_commit_is_not_found() {
    let fake = FakeGithub::start();
    let api = api(fake.url(), Some(TOKEN));

    let error = api.list_files(&source(None)).await.unwrap_err();

    match error {
        RepoError::NotFound {
            repo: r,
            sha: s,
            reason,
        } => {
            assert_eq!((r, s), (repo(), sha()));
            assert!(reason.contains("404"), "{reason}");
            assert!(reason.contains("Contents: read"), "{reason}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn read_file_returns_the_raw_bytes_under_the_root() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    let api = api(fake.url(), Some(TOKEN));

    let bytes = api
        .read_file(&source(Some("apps/web")), "package.json", 1024)
        .await
        .unwrap();

    assert_eq!(bytes.as_deref(), Some(br#"{"name":"web"}"#.as_slice()));
    let request = &fake.requests()[0];
    assert_eq!(
        request.uri,
        "/repos/Octo-Org/web.site/contents/apps/web/package.json\
         ?ref=0123456789abcdef0123456789abcdef01234567"
    );
    // The raw media type replaces the JSON one rather than joining it.
    assert_eq!(
        header(request, ACCEPT.as_str()),
        ["application/vnd.github.raw+json"]
    );
}

#[tokio::test]
async fn a_missing_file_is_none() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    let api = api(fake.url(), Some(TOKEN));

    let missing = api
        .read_file(&source(Some("apps/web")), "slipway.toml", 1024)
        .await
        .unwrap();

    assert_eq!(missing, None);
}

#[tokio::test]
async fn files_over_the_limit_are_none_with_or_without_a_content_length() {
    let fake = FakeGithub::start();
    let big = "x".repeat(10_000);
    fake.add_commit(&repo(), &sha(), [("package.json", big.clone())]);
    let api = api(fake.url(), Some(TOKEN));
    let read = |max: u64| {
        let api = api.clone();
        async move {
            api.read_file(&source(None), "package.json", max)
                .await
                .unwrap()
        }
    };

    assert_eq!(read(9_999).await, None);
    assert_eq!(read(10_000).await.as_deref(), Some(big.as_bytes()));

    fake.stream_contents();
    assert_eq!(read(9_999).await, None);
    assert_eq!(read(10_000).await.as_deref(), Some(big.as_bytes()));
    let streamed = fake.requests().last().unwrap().uri.clone();
    assert!(streamed.contains("/contents/package.json"), "{streamed}");
}

#[tokio::test]
async fn paths_with_spaces_and_unicode_are_percent_encoded() {
    let fake = FakeGithub::start();
    fake.add_commit(
        &repo(),
        &sha(),
        [
            ("my app/conf ü.json", "{\"ok\":1}"),
            ("my app/a+b#c?.json", "{}"),
        ],
    );
    let api = api(fake.url(), Some(TOKEN));
    let root = source(Some("my app"));

    let bytes = api.read_file(&root, "conf ü.json", 100).await.unwrap();
    assert_eq!(bytes.as_deref(), Some(b"{\"ok\":1}".as_slice()));
    let odd = api.read_file(&root, "a+b#c?.json", 100).await.unwrap();
    assert_eq!(odd.as_deref(), Some(b"{}".as_slice()));

    let uris: Vec<String> = fake.requests().into_iter().map(|r| r.uri).collect();
    assert!(
        uris[0].starts_with("/repos/Octo-Org/web.site/contents/my%20app/conf%20%C3%BC.json?ref="),
        "{}",
        uris[0]
    );
    assert!(
        uris[1].starts_with("/repos/Octo-Org/web.site/contents/my%20app/a%2Bb%23c%3F.json?ref="),
        "{}",
        uris[1]
    );
    assert_eq!(
        api.list_files(&root).await.unwrap(),
        ["a+b#c?.json", "conf ü.json"]
    );
}

#[tokio::test]
async fn paths_that_climb_out_are_none_without_a_request() {
    let fake = FakeGithub::start();
    monorepo(&fake);
    let api = api(fake.url(), Some(TOKEN));

    let outside = api
        .read_file(&source(Some("apps/web")), "../website/package.json", 1024)
        .await
        .unwrap();

    assert_eq!(outside, None);
    assert!(fake.requests().is_empty());
}
