//! `POST /repos/{owner}/{repo}/statuses/{sha}`.

use async_trait::async_trait;
use http::header::{HeaderMap, RETRY_AFTER};
use http::StatusCode;
use serde::Serialize;
use slipway_core::names::{CommitSha, RepoName};
use slipway_core::ports::{CommitState, CommitStatus, CommitStatuses, StatusError};

use crate::{error_message, segment, GithubApi, GithubError};

const NO_TOKEN: &str = "no GitHub token is configured; commit statuses need one with \
                        `repo:status` (classic) or \"Commit statuses: write\" (fine-grained)";

#[derive(Serialize)]
struct StatusBody<'a> {
    state: CommitState,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_url: Option<&'a str>,
    description: &'a str,
    context: &'a str,
}

#[async_trait]
impl CommitStatuses for GithubApi {
    /// One request; without a token, none (see the crate docs).
    async fn report(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), StatusError> {
        if !self.authenticated {
            return Err(StatusError::Rejected(NO_TOKEN.to_owned()));
        }
        let body = StatusBody {
            state: status.state,
            target_url: status.target_url.as_deref(),
            description: &status.description,
            context: &status.context,
        };
        let url = self.repo_url(repo, &format!("statuses/{}", segment(sha.as_str())));
        let response = self
            .client()
            // No root certificates to trust: another attempt would fail the same way.
            .map_err(|e| StatusError::Rejected(e.to_string()))?
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| StatusError::Transient(Box::new(GithubError::Request(e))))?;
        let code = response.status();
        // Only 201 means the status exists: a redirect turned into a GET would answer 200.
        if code == StatusCode::CREATED {
            tracing::debug!(%repo, %sha, state = ?status.state, context = %status.context, "GitHub accepted the commit status");
            return Ok(());
        }
        let rate_limited = rate_limit_headers(response.headers());
        let message = error_message(response).await;
        tracing::debug!(%repo, %sha, status = %code, reason = %message, "GitHub refused the commit status");
        if is_transient(code, rate_limited, &message) {
            return Err(StatusError::Transient(Box::new(GithubError::Status {
                status: code,
                message,
            })));
        }
        let hint = match code {
            StatusCode::UNAUTHORIZED => " (the GitHub token is invalid or expired)".to_owned(),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                format!(" (the token needs `repo:status` or \"Commit statuses: write\" on {repo})")
            }
            _ => String::new(),
        };
        Err(StatusError::Rejected(format!(
            "GitHub answered {code} for commit {} of {repo}: {message}{hint}",
            sha.short()
        )))
    }
}

/// Whether the headers say a rate limit is spent: no requests remaining, or a wait asked for.
fn rate_limit_headers(headers: &HeaderMap) -> bool {
    let exhausted = headers
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    exhausted || headers.contains_key(RETRY_AFTER)
}

/// Worth another attempt: GitHub's trouble, a timeout, or a rate limit (primary or secondary;
/// GitHub answers either 403 or 429 for those).
fn is_transient(code: StatusCode, rate_limited: bool, message: &str) -> bool {
    let secondary = message
        .to_ascii_lowercase()
        .contains("secondary rate limit");
    code.is_server_error()
        || code == StatusCode::TOO_MANY_REQUESTS
        || code == StatusCode::REQUEST_TIMEOUT
        || (code == StatusCode::FORBIDDEN && (rate_limited || secondary))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_transient() {
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert!(is_transient(StatusCode::FORBIDDEN, false, secondary));
        assert!(is_transient(
            StatusCode::FORBIDDEN,
            true,
            "API rate limit exceeded"
        ));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS, false, ""));
        assert!(is_transient(StatusCode::BAD_GATEWAY, false, ""));
        assert!(is_transient(StatusCode::REQUEST_TIMEOUT, false, ""));
        let forbidden = "Resource not accessible by integration";
        assert!(!is_transient(StatusCode::FORBIDDEN, false, forbidden));
        assert!(!is_transient(StatusCode::UNPROCESSABLE_ENTITY, false, ""));
        assert!(!is_transient(StatusCode::NOT_FOUND, false, "Not Found"));
    }

    #[test]
    fn spent_limits_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
        assert!(!rate_limit_headers(&headers));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert!(rate_limit_headers(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("60"));
        assert!(rate_limit_headers(&headers));
    }
}
