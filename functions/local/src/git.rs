//! Commits read with the `git` CLI: Prepare's [`RepoReader`] in `slipway dev` (a bare mirror
//! per repository, so detection never needs a checkout) and the local builder's checkout.
//!
//! Every git run is hardened the same way: no credential prompts, only the `file`, `git`,
//! `http(s)` and `ssh` transports (never `ext::` or other remote helpers), literal pathspecs,
//! no repository inherited from the environment, and `--` before every positional argument.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use slipway_core::model::GitSource;
use slipway_core::names::CommitSha;
use slipway_core::ports::{RepoError, RepoReader};
use tokio::process::Command;

/// The schemes a clone URL may use; the same list goes to `GIT_ALLOW_PROTOCOL`.
const SCHEMES: [&str; 5] = ["https", "http", "ssh", "git", "file"];
const ALLOW_PROTOCOL: &str = "file:git:http:https:ssh";
/// Variables that would point git at some other repository than the one each run names.
const INHERITED_REPO_VARS: [&str; 8] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];
/// A clone or fetch that takes longer is treated as a failure (a hung server, a prompt).
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Local reads of the mirror.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    #[error("clone URL {0:?} is not allowed: use an https, http, ssh, git or file URL")]
    UnsupportedUrl(String),
    /// git ran and refused: an unknown commit, an unreachable or private repository.
    #[error("git {command} failed: {stderr}")]
    Failed {
        command: &'static str,
        stderr: String,
    },
    #[error("git {command} did not finish within {seconds}s")]
    TimedOut { command: &'static str, seconds: u64 },
    #[error("could not run git {command}: {source}")]
    Spawn {
        command: &'static str,
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl GitError {
    /// What git itself said, for errors that are about the repository or commit.
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            GitError::UnsupportedUrl(_) => Some(self.to_string()),
            GitError::Failed { stderr, .. } => Some(stderr.clone()),
            _ => None,
        }
    }

    fn into_repo_error(self, source: &GitSource) -> RepoError {
        match self.reason() {
            Some(reason) => RepoError::NotFound {
                repo: source.repo.clone(),
                sha: source.sha.clone(),
                reason,
            },
            None => RepoError::Unavailable(Box::new(self)),
        }
    }
}

/// Refuses URLs git could read as an option or hand to a transport helper.
fn check_url(url: &str) -> Result<&str, GitError> {
    let allowed = url.split_once("://").is_some_and(|(scheme, rest)| {
        SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !rest.is_empty()
    });
    if !allowed || url.starts_with('-') || url.chars().any(char::is_control) {
        return Err(GitError::UnsupportedUrl(url.to_owned()));
    }
    Ok(url)
}

/// The URL without its user information (`https://token@host/...`), for logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Runs one git command; its stdout on success.
async fn git<I, S>(
    command: &'static str,
    dir: Option<&Path>,
    args: I,
    timeout: Duration,
) -> Result<Vec<u8>, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.arg(command)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOW_PROTOCOL)
        .env("GIT_LITERAL_PATHSPECS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in INHERITED_REPO_VARS {
        cmd.env_remove(var);
    }
    let child = cmd
        .spawn()
        .map_err(|source| GitError::Spawn { command, source })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| GitError::TimedOut {
            command,
            seconds: timeout.as_secs(),
        })?
        .map_err(|source| GitError::Spawn { command, source })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let stderr = if stderr.is_empty() {
            format!("exited with {}", output.status)
        } else {
            stderr
        };
        Err(GitError::Failed { command, stderr })
    }
}

/// Checks out `commit` of `url` into `dest` (created; must not exist): one commit fetched at
/// depth 1, as CodeBuild clones, then a detached checkout.
pub(crate) async fn checkout(url: &str, commit: &CommitSha, dest: &Path) -> Result<(), GitError> {
    let url = check_url(url)?;
    let sha = commit.as_str();
    git(
        "init",
        None,
        [OsStr::new("--quiet"), OsStr::new("--"), dest.as_os_str()],
        LOCAL_TIMEOUT,
    )
    .await?;
    git(
        "fetch",
        Some(dest),
        ["--quiet", "--no-tags", "--depth=1", "--", url, sha],
        NETWORK_TIMEOUT,
    )
    .await?;
    git(
        "checkout",
        Some(dest),
        ["--quiet", "--detach", sha, "--"],
        NETWORK_TIMEOUT,
    )
    .await?;
    Ok(())
}

/// Reads commits from bare mirrors kept under one cache directory, one per clone URL.
pub struct GitRepos {
    cache_dir: PathBuf,
    /// One lock per mirror: a clone or fetch at a time.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl GitRepos {
    /// Mirrors live in `cache_dir` (created when needed), named by the sha256 of their URL.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn mirror_dir(&self, url: &str) -> PathBuf {
        self.cache_dir
            .join(hex::encode(Sha256::digest(url.as_bytes())))
    }

    fn lock_for(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(dir.to_owned()).or_default())
    }

    /// The mirror of `url`, cloned or fetched so that it holds `sha`.
    async fn mirror_with(&self, url: &str, sha: &CommitSha) -> Result<PathBuf, GitError> {
        let url = check_url(url)?;
        let dir = self.mirror_dir(url);
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().await;

        let exists = tokio::fs::try_exists(&dir)
            .await
            .map_err(|source| GitError::Io {
                context: format!("looking for {}", dir.display()),
                source,
            })?;
        if !exists {
            self.clone_mirror(url, &dir).await?;
        }
        if has_commit(&dir, sha).await? {
            return Ok(dir);
        }
        tracing::info!(url = %redacted(url), sha = %sha, "fetching a commit into the mirror");
        git(
            "fetch",
            Some(&dir),
            ["--quiet", "--no-tags", "--", "origin", sha.as_str()],
            NETWORK_TIMEOUT,
        )
        .await?;
        if has_commit(&dir, sha).await? {
            Ok(dir)
        } else {
            Err(GitError::Failed {
                command: "fetch",
                stderr: format!("{sha} is not a commit"),
            })
        }
    }

    /// Clones next to `dir` and renames, so a failed clone never leaves a broken mirror.
    async fn clone_mirror(&self, url: &str, dir: &Path) -> Result<(), GitError> {
        let io = |context: String| move |source| GitError::Io { context, source };
        tokio::fs::create_dir_all(&self.cache_dir)
            .await
            .map_err(io(format!("creating {}", self.cache_dir.display())))?;
        let partial = dir.with_extension("partial");
        remove_dir_if_present(&partial).await?;
        tracing::info!(url = %redacted(url), mirror = %dir.display(), "cloning a repository mirror");
        let cloned = git(
            "clone",
            None,
            [
                OsStr::new("--bare"),
                OsStr::new("--quiet"),
                OsStr::new("--"),
                OsStr::new(url),
                partial.as_os_str(),
            ],
            NETWORK_TIMEOUT,
        )
        .await;
        if let Err(e) = cloned {
            remove_dir_if_present(&partial).await?;
            return Err(e);
        }
        tokio::fs::rename(&partial, dir)
            .await
            .map_err(io(format!("moving the mirror into {}", dir.display())))
    }
}

async fn remove_dir_if_present(dir: &Path) -> Result<(), GitError> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(GitError::Io {
            context: format!("removing {}", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn has_commit(dir: &Path, sha: &CommitSha) -> Result<bool, GitError> {
    let object = format!("{sha}^{{commit}}");
    match git(
        "cat-file",
        Some(dir),
        ["-e", object.as_str()],
        LOCAL_TIMEOUT,
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(GitError::Failed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One `git ls-tree -z` record: `{mode} {type} {object}[ {size}]\t{path}`.
struct TreeEntry<'a> {
    mode: &'a str,
    kind: &'a str,
    object: &'a str,
    size: Option<u64>,
    path: &'a [u8],
}

fn tree_entries(output: &[u8]) -> impl Iterator<Item = TreeEntry<'_>> {
    output
        .split(|&b| b == 0)
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let tab = record.iter().position(|&b| b == b'\t')?;
            let meta = std::str::from_utf8(&record[..tab]).ok()?;
            let mut fields = meta.split_ascii_whitespace();
            Some(TreeEntry {
                mode: fields.next()?,
                kind: fields.next()?,
                object: fields.next()?,
                size: fields.next().and_then(|s| s.parse().ok()),
                path: &record[tab + 1..],
            })
        })
}

/// `path` under the source's root, or None when it is not a plain relative path.
fn full_path(source: &GitSource, path: &str) -> Option<String> {
    let plain = !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    plain.then(|| match &source.root {
        Some(root) => format!("{root}/{path}"),
        None => path.to_owned(),
    })
}

#[async_trait]
impl RepoReader for GitRepos {
    async fn list_files(&self, source: &GitSource) -> Result<Vec<String>, RepoError> {
        let fail = |e: GitError| e.into_repo_error(source);
        let dir = self
            .mirror_with(&source.clone_url, &source.sha)
            .await
            .map_err(fail)?;
        let prefix = source.root.as_ref().map(|root| format!("{root}/"));
        let mut args = vec!["-r", "-z", source.sha.as_str(), "--"];
        if let Some(prefix) = &prefix {
            args.push(prefix.as_str());
        }
        let output = git("ls-tree", Some(&dir), args, LOCAL_TIMEOUT)
            .await
            .map_err(fail)?;
        let mut files = Vec::new();
        for entry in tree_entries(&output).filter(|e| e.kind == "blob") {
            let Ok(path) = std::str::from_utf8(entry.path) else {
                tracing::debug!(path = %String::from_utf8_lossy(entry.path), "skipping a path that is not UTF-8");
                continue;
            };
            let relative = match &prefix {
                Some(prefix) => path.strip_prefix(prefix.as_str()),
                None => Some(path),
            };
            files.extend(relative.map(str::to_owned));
        }
        Ok(files)
    }

    async fn read_file(
        &self,
        source: &GitSource,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let fail = |e: GitError| e.into_repo_error(source);
        let Some(full) = full_path(source, path) else {
            return Ok(None);
        };
        let dir = self
            .mirror_with(&source.clone_url, &source.sha)
            .await
            .map_err(fail)?;
        let listing = git(
            "ls-tree",
            Some(&dir),
            ["-z", "-l", source.sha.as_str(), "--", full.as_str()],
            LOCAL_TIMEOUT,
        )
        .await
        .map_err(fail)?;
        // Regular files only: a symlink's blob is its target's name, not the file.
        let Some(entry) = tree_entries(&listing).find(|e| {
            e.path == full.as_bytes() && e.kind == "blob" && matches!(e.mode, "100644" | "100755")
        }) else {
            return Ok(None);
        };
        if entry.size.is_none_or(|size| size > max_bytes) {
            return Ok(None);
        }
        let bytes = git(
            "cat-file",
            Some(&dir),
            ["blob", entry.object],
            LOCAL_TIMEOUT,
        )
        .await
        .map_err(fail)?;
        Ok((bytes.len() as u64 <= max_bytes).then_some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_transport_urls_pass() {
        for ok in [
            "https://github.com/o/r.git",
            "http://localhost:3000/o/r",
            "ssh://git@github.com/o/r.git",
            "git://example.com/r",
            "file:///tmp/repo",
            "FILE:///tmp/repo",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "--upload-pack=touch /tmp/pwned",
            "-u x",
            "/tmp/repo",
            "git@github.com:o/r.git",
            "fd::17",
            "https://",
            "https://example.com/r\n--upload-pack=x",
            "git+ssh://example.com/r",
        ] {
            assert!(
                matches!(check_url(bad), Err(GitError::UnsupportedUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn user_information_is_left_out_of_logged_urls() {
        assert_eq!(
            redacted("https://x-access-token:secret@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(redacted("file:///tmp/a@b/repo"), "file:///tmp/a@b/repo");
        assert_eq!(redacted("https://github.com/o/r"), "https://github.com/o/r");
    }

    #[test]
    fn tree_records_parse_with_and_without_sizes() {
        let output = b"100644 blob abc     12\tpackage.json\x00040000 tree def -\tsrc\x00";
        let entries: Vec<_> = tree_entries(output).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].size, Some(12));
        assert_eq!(entries[0].path, b"package.json");
        assert_eq!(entries[1].kind, "tree");
        assert_eq!(entries[1].size, None);
    }
}
