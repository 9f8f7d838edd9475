//! A commit's files through the git trees and contents APIs, without a checkout.

use async_trait::async_trait;
use http::header::ACCEPT;
use http::StatusCode;
use serde::Deserialize;
use slipway_core::model::GitSource;
use slipway_core::names::RootDir;
use slipway_core::ports::{RepoError, RepoReader};

use crate::{error_message, read_capped, segment, GithubApi, GithubError, RAW_MEDIA_TYPE};

/// GitHub lists at most 100,000 entries of a recursive tree; their JSON stays well below this.
const MAX_TREE_BODY: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
struct Tree {
    tree: Vec<TreeEntry>,
    #[serde(default)]
    truncated: bool,
}

#[derive(Deserialize)]
struct TreeEntry {
    path: String,
    /// `blob` (files and symlinks), `tree` (directories) or `commit` (submodules).
    #[serde(rename = "type")]
    kind: String,
}

#[async_trait]
impl RepoReader for GithubApi {
    /// One `GET /repos/{owner}/{repo}/git/trees/{sha}?recursive=1`. A truncated listing is an
    /// error ([`RepoError::TooLarge`]): detection on a partial listing could be wrong.
    async fn list_files(&self, source: &GitSource) -> Result<Vec<String>, RepoError> {
        let url = self.repo_url(
            &source.repo,
            &format!("git/trees/{}?recursive=1", segment(source.sha.as_str())),
        );
        let client = self.client().map_err(unavailable)?;
        let response = client.get(url).send().await.map_err(request_failed)?;
        if response.status() != StatusCode::OK {
            return Err(refused(source, response).await);
        }
        let too_large = || RepoError::TooLarge {
            repo: source.repo.clone(),
            sha: source.sha.clone(),
        };
        let body = read_capped(response, MAX_TREE_BODY)
            .await
            .map_err(request_failed)?
            .ok_or_else(too_large)?;
        let tree: Tree = serde_json::from_slice(&body)
            .map_err(|e| RepoError::Unavailable(Box::new(GithubError::InvalidResponse(e))))?;
        if tree.truncated {
            return Err(too_large());
        }
        let files: Vec<String> = tree
            .tree
            .into_iter()
            .filter(|entry| entry.kind == "blob")
            .filter_map(|entry| under_root(entry.path, source.root.as_ref()))
            .collect();
        tracing::debug!(repo = %source.repo, sha = %source.sha, root = ?source.root, files = files.len(), "listed the commit's files");
        Ok(files)
    }

    /// One `GET /repos/{owner}/{repo}/contents/{root/}{path}?ref={sha}` for the raw bytes.
    /// A path that cannot name a file (empty, `.` or `..` segments) is missing by definition.
    async fn read_file(
        &self,
        source: &GitSource,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let Some(encoded) = contents_path(source.root.as_ref(), path) else {
            tracing::debug!(repo = %source.repo, path, "not a file path; nothing to read");
            return Ok(None);
        };
        let url = self.repo_url(
            &source.repo,
            &format!("contents/{encoded}?ref={}", segment(source.sha.as_str())),
        );
        let response = self
            .client()
            .map_err(unavailable)?
            .get(url)
            .header(ACCEPT, RAW_MEDIA_TYPE)
            .send()
            .await
            .map_err(request_failed)?;
        match response.status() {
            StatusCode::OK => {
                let body = read_capped(response, max_bytes)
                    .await
                    .map_err(request_failed)?;
                if body.is_none() {
                    tracing::debug!(repo = %source.repo, sha = %source.sha, path, max_bytes, "file larger than the limit; not read");
                }
                Ok(body)
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(refused(source, response).await),
        }
    }
}

fn request_failed(error: reqwest::Error) -> RepoError {
    unavailable(GithubError::Request(error))
}

fn unavailable(error: GithubError) -> RepoError {
    RepoError::Unavailable(Box::new(error))
}

/// An error answer: no such repository or commit (404, an empty repository's 409, a bad
/// ref's 422), or GitHub unavailable (rate limits, 5xx, bad credentials).
async fn refused(source: &GitSource, response: reqwest::Response) -> RepoError {
    let status = response.status();
    let message = error_message(response).await;
    tracing::debug!(repo = %source.repo, sha = %source.sha, %status, reason = %message, "GitHub refused to read the commit");
    match status {
        StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
            let hint = if status == StatusCode::NOT_FOUND {
                " (a private repository needs a token with \"Contents: read\")"
            } else {
                ""
            };
            RepoError::NotFound {
                repo: source.repo.clone(),
                sha: source.sha.clone(),
                reason: format!("GitHub answered {status}: {message}{hint}"),
            }
        }
        _ => RepoError::Unavailable(Box::new(GithubError::Status { status, message })),
    }
}

/// The path relative to `root`, or None when it lies outside it.
fn under_root(path: String, root: Option<&RootDir>) -> Option<String> {
    let Some(root) = root else {
        return Some(path);
    };
    let relative = path.strip_prefix(root.as_str())?.strip_prefix('/')?;
    Some(relative.to_owned())
}

/// `{root}/{path}` with every segment percent-encoded, or None when `path` is not a
/// relative file path.
fn contents_path(root: Option<&RootDir>, path: &str) -> Option<String> {
    let bad = path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\0'));
    if bad {
        return None;
    }
    let root_segments = root.map(|r| r.as_str().split('/')).into_iter().flatten();
    let encoded: Vec<String> = root_segments
        .chain(path.split('/'))
        .map(|s| segment(s).to_string())
        .collect();
    Some(encoded.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_root_are_dropped() {
        let root = RootDir::parse("apps/web").unwrap();
        let under = |p: &str| under_root(p.to_owned(), Some(&root));
        assert_eq!(
            under("apps/web/package.json").as_deref(),
            Some("package.json")
        );
        assert_eq!(under("apps/web/src/a.ts").as_deref(), Some("src/a.ts"));
        assert_eq!(under("apps/website/package.json"), None);
        assert_eq!(under("package.json"), None);
        assert_eq!(under_root("x/y".to_owned(), None).as_deref(), Some("x/y"));
    }

    #[test]
    fn contents_paths_are_encoded_per_segment_and_never_climb() {
        let root = RootDir::parse("my app").unwrap();
        assert_eq!(
            contents_path(Some(&root), "src/ü 1.json").as_deref(),
            Some("my%20app/src/%C3%BC%201.json")
        );
        assert_eq!(contents_path(None, "a?b#c").as_deref(), Some("a%3Fb%23c"));
        for bad in ["", "/etc/passwd", "../secret", "a/./b", "a//b", "a/"] {
            assert_eq!(contents_path(Some(&root), bad), None, "{bad}");
        }
    }
}
