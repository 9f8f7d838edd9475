//! What both test binaries share: one repository, one commit, and the answers' shapes.

use slipway_core::model::GitSource;
use slipway_core::names::{BranchName, CommitSha, RepoName, RootDir};
use slipway_core::ports::{CommitState, CommitStatus, StatusError};
use slipway_github::{GithubConfig, GithubToken};
use slipway_testkit::github::RecordedRequest;

pub const TOKEN: &str = "ghp_TopSecretToken123";

pub fn config(api_url: String, token: Option<&str>) -> GithubConfig {
    GithubConfig {
        api_url,
        token: token.map(GithubToken::new),
    }
}

pub fn repo() -> RepoName {
    RepoName::parse("Octo-Org/web.site").unwrap()
}

pub fn sha() -> CommitSha {
    CommitSha::parse("0123456789abcdef0123456789abcdef01234567").unwrap()
}

pub fn success() -> CommitStatus {
    CommitStatus {
        state: CommitState::Success,
        target_url: Some("https://docs.example.com/".to_owned()),
        description: "Deployed 01jd to production".to_owned(),
        context: "slipway/docs".to_owned(),
    }
}

pub fn source(root: Option<&str>) -> GitSource {
    GitSource {
        repo: repo(),
        clone_url: "https://github.com/Octo-Org/web.site.git".to_owned(),
        sha: sha(),
        branch: BranchName::parse("main").unwrap(),
        pull_request: None,
        root: root.map(|r| RootDir::parse(r).unwrap()),
    }
}

/// Every value of one header of a recorded request.
pub fn header<'a>(request: &'a RecordedRequest, name: &str) -> Vec<&'a str> {
    request
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The message of a `Rejected`; panics on anything else.
pub fn rejected(result: Result<(), StatusError>) -> String {
    match result {
        Err(StatusError::Rejected(message)) => message,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// A `Transient` error and its source, as text; panics on anything else.
pub fn transient(result: Result<(), StatusError>) -> String {
    match result {
        Err(error @ StatusError::Transient(_)) => {
            let source = std::error::Error::source(&error).map(ToString::to_string);
            format!("{error} / {}", source.unwrap_or_default())
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}
