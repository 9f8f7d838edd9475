//! The token never shows: not in logs, errors or debug output. A test binary of its own,
//! because `tracing`'s per-callsite interest is global and a test running on another thread
//! without a subscriber can switch this test's events off.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::header::AUTHORIZATION;
use http::StatusCode;
use slipway_core::names::CommitSha;
use slipway_core::ports::{CommitStatuses, RepoReader};
use slipway_github::{GithubApi, GithubToken};
use slipway_testkit::github::FakeGithub;

mod common;

use common::{config, header, rejected, repo, sha, source, success, transient, TOKEN};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_reaches_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = FakeGithub::start();
    let config = config(fake.url(), Some(TOKEN));
    let api = GithubApi::new(config.clone()).unwrap();
    fake.add_commit(&repo(), &sha(), [("package.json", "{}")]);

    let mut shown = vec![
        format!("{config:?}"),
        format!("{api:?}"),
        format!("{:?}", GithubToken::new(TOKEN)),
    ];
    api.report(&repo(), &sha(), &success()).await.unwrap();
    fake.fail_next_statuses(1, StatusCode::UNAUTHORIZED);
    shown.push(rejected(api.report(&repo(), &sha(), &success()).await));
    fake.fail_next_statuses(1, StatusCode::SERVICE_UNAVAILABLE);
    shown.push(transient(api.report(&repo(), &sha(), &success()).await));
    api.list_files(&source(None)).await.unwrap();
    api.read_file(&source(None), "package.json", 100)
        .await
        .unwrap();
    let missing = source(None).sha.as_str().replace('0', "f");
    let mut unknown = source(None);
    unknown.sha = CommitSha::parse(&missing).unwrap();
    shown.push(api.list_files(&unknown).await.unwrap_err().to_string());

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("GitHub accepted the commit status"), "{logs}");
    assert!(logs.contains("listed the commit's files"), "{logs}");
    shown.push(logs);
    for text in shown {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    // It did go over the wire, where it belongs.
    assert!(fake
        .requests()
        .iter()
        .all(|r| header(r, AUTHORIZATION.as_str()) == [format!("Bearer {TOKEN}")]));
}
