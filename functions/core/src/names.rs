//! Names and ids that appear in host names, object keys and URLs.
//! They are parsed once at the edge of the system; everything inside trusts them.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("site name must be 1 to {max} characters long", max = SiteName::MAX_LEN)]
    SiteNameLength,
    #[error("site name may only contain lowercase letters, digits and single hyphens, and must start and end with a letter or digit: {0:?}")]
    SiteNameCharacters(String),
    #[error("deployment id must be 26 lowercase Crockford base32 characters: {0:?}")]
    DeploymentId(String),
    #[error("target must be `production` or a preview name of 1 to 63 lowercase letters, digits and single hyphens: {0:?}")]
    Target(String),
    #[error("repository must be OWNER/REPO as GitHub spells it: {0:?}")]
    Repository(String),
    #[error("branch name is not a valid git branch: {0:?}")]
    Branch(String),
    #[error("commit must be a full 40-character (or 64-character) hex object id: {0:?}")]
    Commit(String),
    #[error("root directory must be a relative path without `.`, `..` or empty segments: {0:?}")]
    RootDir(String),
    #[error("service name must be 1 to 63 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit: {0:?}")]
    Service(String),
}

/// A site's name: one DNS label, so `{site}.example.com` is always a valid host.
/// Double hyphens are reserved because `--` separates preview targets from the site in host names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteName(String);

impl SiteName {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(NameError::SiteNameLength);
        }
        let allowed = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let bad_edges = raw.starts_with('-') || raw.ends_with('-') || raw.contains("--");
        if !allowed || bad_edges {
            return Err(NameError::SiteNameCharacters(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A deployment id: a ULID in lowercase. Sorting ids sorts deployments by creation time,
/// and the alphabet is safe in host names (`{deployment}--{site}.example.com`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeploymentId(ulid::Ulid);

static LAST_ID: Mutex<Option<ulid::Ulid>> = Mutex::new(None);

impl DeploymentId {
    /// A new id, strictly greater than every id this process made before,
    /// so two deploys started in the same millisecond still order by start.
    pub fn generate() -> Self {
        let mut last = LAST_ID
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = ulid::Ulid::new();
        let next = match *last {
            Some(previous) if fresh <= previous => previous.increment().unwrap_or(fresh),
            _ => fresh,
        };
        *last = Some(next);
        Self(next)
    }

    /// A deterministic id for an event: sortable by the event's time, unique by `entropy`
    /// (a hash of what identifies the event), so a repeated event yields the same id.
    pub fn from_event(timestamp_ms: u64, entropy: u128) -> Self {
        Self(ulid::Ulid::from_parts(timestamp_ms, entropy))
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        // A ULID is 128 bits, so its first character is at most `7`: the ulid crate would
        // silently wrap a larger one into a different id.
        let well_formed = raw.len() == ulid::ULID_LEN
            && raw.as_bytes()[0] <= b'7'
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)));
        if !well_formed {
            return Err(NameError::DeploymentId(raw.to_owned()));
        }
        ulid::Ulid::from_string(raw)
            .map(Self)
            .map_err(|_| NameError::DeploymentId(raw.to_owned()))
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

impl FromStr for DeploymentId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DeploymentId> for String {
    fn from(value: DeploymentId) -> Self {
        value.to_string()
    }
}

/// One DNS label of lowercase letters, digits and single inner hyphens.
fn is_dns_label(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 63
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-')
        && !raw.contains("--")
}

/// What a deployment is for: `production`, or a preview named after its branch (slugged) or
/// `pr-{number}`. Previews answer at `{target}--{site}.{preview domain}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetName(String);

impl TargetName {
    pub const PRODUCTION: &'static str = "production";

    pub fn production() -> Self {
        Self(Self::PRODUCTION.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if !is_dns_label(raw) {
            return Err(NameError::Target(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn pull_request(number: u64) -> Self {
        Self(format!("pr-{number}"))
    }

    /// A branch's preview target: lowercase, every run of other characters becomes one `-`.
    /// Names that would read as `production` or a pull request's target get `-branch` appended,
    /// and a name too long for `{target}--{site}` to stay one DNS label is cut and given a
    /// short hash of the branch, so two long branches sharing a prefix stay apart.
    pub fn for_branch(branch: &BranchName, site: &SiteName) -> Self {
        let mut slug = String::with_capacity(branch.as_str().len());
        for c in branch.as_str().chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let mut slug = slug.trim_end_matches('-').to_owned();
        if slug.is_empty() {
            slug.push_str("branch");
        }
        let looks_reserved = slug == Self::PRODUCTION
            || slug
                .strip_prefix("pr-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if looks_reserved {
            slug.push_str("-branch");
        }
        // Leave room for `--{site}` in a 63-byte label, but never fewer than 16 bytes.
        let room = 63usize.saturating_sub(site.as_str().len() + 2).max(16);
        if slug.len() > room {
            let hash = hex::encode(&sha2::Sha256::digest(branch.as_str().as_bytes())[..3]);
            slug.truncate(room - hash.len() - 1);
            let cut = slug.trim_end_matches('-').len();
            slug.truncate(cut);
            slug.push('-');
            slug.push_str(&hash);
        }
        Self(slug)
    }

    pub fn is_production(&self) -> bool {
        self.0 == Self::PRODUCTION
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A backend service's name, unique within its site: one DNS label without `--` (as a site's
/// name), starting with a letter so it is also a valid identifier prefix
/// (`{NAME}_SERVICE_URL`). Its own host is `{service}--{site}` under the services domain, which
/// no preview or deployment host shares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if !is_dns_label(raw) || !raw.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(NameError::Service(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in environment variables: upper case, `-` as `_` (`auth-api` → `AUTH_API`).
    pub fn env_prefix(&self) -> String {
        self.0.to_ascii_uppercase().replace('-', "_")
    }
}

/// A GitHub repository, `owner/name`, compared without regard to case as GitHub does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let bad = || NameError::Repository(raw.to_owned());
        let (owner, name) = raw.split_once('/').ok_or_else(bad)?;
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !owner.starts_with('-');
        let name_ok = (1..=100).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "."
            && name != "..";
        if !owner_ok || !name_ok {
            return Err(bad());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn owner(&self) -> &str {
        self.0.split_once('/').map_or("", |(owner, _)| owner)
    }

    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, name)| name)
    }
}

impl PartialEq for RepoName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for RepoName {}

/// A git branch name, by the rules of `git check-ref-format --branch`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BranchName(String);

impl BranchName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let bad_segment = raw
            .split('/')
            .any(|s| s.is_empty() || s.starts_with('.') || s.ends_with(".lock"));
        let bad_char = raw
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
        if raw.is_empty()
            || raw.len() > 255
            || bad_segment
            || bad_char
            || raw.contains("..")
            || raw.contains("@{")
            || raw.starts_with('-')
            || raw.ends_with('.')
            || raw == "@"
        {
            return Err(NameError::Branch(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The branch of `refs/heads/{branch}`, or None for tags and other refs.
    pub fn from_ref(git_ref: &str) -> Option<Self> {
        Self::parse(git_ref.strip_prefix("refs/heads/")?).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full git object id in lowercase hex (SHA-1, or SHA-256 repositories).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let hex = raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(raw.len() == 40 || raw.len() == 64) || !hex || raw.bytes().all(|b| b == b'0') {
            return Err(NameError::Commit(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

/// An app's directory inside a repository (a monorepo), relative, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RootDir(String);

impl RootDir {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let trimmed = raw.trim_end_matches('/');
        let bad = trimmed.is_empty()
            || trimmed.len() > 255
            || trimmed.starts_with('/')
            || trimmed
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || trimmed.chars().any(|c| c.is_control() || c == '\\');
        if bad {
            return Err(NameError::RootDir(raw.to_owned()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Display, FromStr and the String conversions serde uses, for the string newtypes above.
macro_rules! string_newtype {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    )*};
}

string_newtype!(
    SiteName,
    ServiceName,
    TargetName,
    RepoName,
    BranchName,
    CommitSha,
    RootDir
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels_that_start_with_a_letter() {
        for good in ["api", "auth-api", "v2", &"a".repeat(63)] {
            assert!(ServiceName::parse(good).is_ok(), "{good} should parse");
        }
        for bad in [
            "",
            "2fa",
            "-api",
            "api-",
            "auth--api",
            "Api",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(ServiceName::parse(bad), Err(NameError::Service(_))),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            ServiceName::parse("auth-api").unwrap().env_prefix(),
            "AUTH_API"
        );
    }

    #[test]
    fn site_names_follow_dns_label_rules() {
        for good in ["a", "docs", "my-site-2", &"a".repeat(63)] {
            assert!(SiteName::parse(good).is_ok(), "{good} should parse");
        }
        for bad in [
            "",
            "-docs",
            "docs-",
            "Docs",
            "my_site",
            "a.b",
            "pr-1--docs",
            "../x",
            &"a".repeat(64),
        ] {
            assert!(SiteName::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn deployment_ids_are_lowercase_sortable_and_round_trip() {
        let first = DeploymentId::generate();
        let second = DeploymentId::generate();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
        let text = first.to_string();
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(DeploymentId::parse(&text).unwrap(), first);
        assert!(DeploymentId::parse(&text.to_ascii_uppercase()).is_err());
        assert!(DeploymentId::parse("not-an-id").is_err());
        assert!(DeploymentId::parse("../../../../../../../../etc").is_err());
        // Past 128 bits: not an alias of 00000000000000000000000000.
        assert!(DeploymentId::parse("80000000000000000000000000").is_err());
        assert!(DeploymentId::parse("7zzzzzzzzzzzzzzzzzzzzzzzzz").is_ok());
    }

    #[test]
    fn names_deserialize_through_parse() {
        let ok: SiteName = serde_json::from_str("\"docs\"").unwrap();
        assert_eq!(ok.as_str(), "docs");
        assert!(serde_json::from_str::<SiteName>("\"Bad Name\"").is_err());
    }
}

#[cfg(test)]
mod git_name_tests {
    use super::*;

    fn branch_target(branch: &str, site: &str) -> String {
        TargetName::for_branch(
            &BranchName::parse(branch).unwrap(),
            &SiteName::parse(site).unwrap(),
        )
        .to_string()
    }

    #[test]
    fn branches_slug_to_dns_labels() {
        assert_eq!(
            branch_target("feature/Login_Page", "docs"),
            "feature-login-page"
        );
        assert_eq!(branch_target("fix--double", "docs"), "fix-double");
        assert_eq!(branch_target("_x_", "docs"), "x");
        assert_eq!(branch_target("production", "docs"), "production-branch");
        assert_eq!(branch_target("pr-12", "docs"), "pr-12-branch");
        assert_eq!(branch_target("pr-x", "docs"), "pr-x");
        assert_eq!(branch_target("ünïcode", "docs"), "n-code");
        for b in ["feature/x", "a/b.c", "release-1.2.3", &"long-".repeat(40)] {
            let t = branch_target(b, "docs");
            assert!(TargetName::parse(&t).is_ok(), "{b} -> {t}");
            assert!(t.len() + "--docs".len() <= 63, "{t}");
        }
    }

    #[test]
    fn long_branches_keep_apart_by_hash() {
        let a = branch_target(&format!("{}-a", "x".repeat(80)), "docs");
        let b = branch_target(&format!("{}-b", "x".repeat(80)), "docs");
        assert_ne!(a, b);
        assert!(a.len() <= 57 && b.len() <= 57);
    }

    #[test]
    fn git_names_parse_strictly() {
        assert!(RepoName::parse("octo-org/my.repo_1").is_ok());
        assert_eq!(
            RepoName::parse("Octo/Repo").unwrap(),
            RepoName::parse("octo/repo").unwrap()
        );
        for bad in [
            "octo",
            "/repo",
            "octo/",
            "octo/repo/x",
            "octo/..",
            "-o/r",
            "o/r r",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert!(BranchName::parse("feature/x-1").is_ok());
        for bad in [
            "", "a..b", "a b", "a~1", "x.lock", "-x", "a//b", "a/.b", "x.", "@",
        ] {
            assert!(BranchName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            BranchName::from_ref("refs/heads/main").unwrap().as_str(),
            "main"
        );
        assert!(BranchName::from_ref("refs/tags/v1").is_none());
        assert!(CommitSha::parse(&"a1".repeat(20)).is_ok());
        assert!(CommitSha::parse(&"0".repeat(40)).is_err());
        assert!(CommitSha::parse(&"A1".repeat(20)).is_err());
        assert_eq!(RootDir::parse("apps/web/").unwrap().as_str(), "apps/web");
        for bad in ["", "/abs", "a/../b", "./a", "a//b"] {
            assert!(RootDir::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TargetName::parse("pr-7").is_ok());
        assert!(TargetName::parse("a--b").is_err());
    }
}
