//! slipway's GitHub REST API client, behind two ports of `slipway-core`:
//! [`CommitStatuses`](slipway_core::ports::CommitStatuses) (a deployment's state on its commit)
//! and [`RepoReader`](slipway_core::ports::RepoReader) (a commit's files, read without a
//! checkout so Prepare can detect the build).
//!
//! It knows nothing of webhooks (`slipway_core::webhook` handles deliveries) or of the
//! pipeline: it turns one port call into one REST request.
//!
//! # Token scopes
//!
//! - Commit statuses: `repo:status` on a classic token, or "Commit statuses: write" on a
//!   fine-grained token (or GitHub App installation).
//! - Trees and contents of a private repository: "Contents: read" (`repo` on a classic
//!   token). Public repositories can be read without a token, within GitHub's unauthenticated
//!   rate limit.
//!
//! Without a token, [`GithubApi`] refuses every commit status itself
//! ([`StatusError::Rejected`](slipway_core::ports::StatusError::Rejected)) and sends nothing:
//! GitHub would answer 401 anyway, and a request would only spend rate limit.
//!
//! Every call is exactly one request. Retrying is the caller's decision, made on
//! [`StatusError::Transient`](slipway_core::ports::StatusError::Transient).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, PercentEncode, NON_ALPHANUMERIC};
use serde::Deserialize;
use slipway_core::names::RepoName;

mod repo;
mod statuses;

/// GitHub.com's REST API. GitHub Enterprise Server serves it at `https://HOST/api/v3`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

const API_VERSION: &str = "2022-11-28";
const JSON_MEDIA_TYPE: &str = "application/vnd.github+json";
/// Asks the contents API for a file's bytes rather than base64 inside JSON.
const RAW_MEDIA_TYPE: &str = "application/vnd.github.raw+json";
const USER_AGENT: &str = "slipway";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// GitHub's error bodies are a few hundred bytes; a longer one is not read.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A GitHub token (classic, fine-grained or an installation token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubToken(String);

impl GithubToken {
    /// Surrounding whitespace (a token read from a file, or pasted) is dropped. Whether the
    /// rest can be sent is checked by [`GithubApi::new`].
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        Self(token.trim().to_owned())
    }
}

impl fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GithubToken(<redacted>)")
    }
}

/// Where the API is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubConfig {
    /// [`DEFAULT_API_URL`], or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    pub token: Option<GithubToken>,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            token: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GithubConfigError {
    #[error("the GitHub API URL {url:?} is not a URL: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error(
        "the GitHub API URL {url:?} must be http:// or https:// with a host, and without \
         credentials, a query or a fragment"
    )]
    UnsupportedUrl { url: String },
    #[error("the GitHub token is empty or holds characters other than printable ASCII")]
    InvalidToken,
}

/// Why a request to GitHub failed: the source of [`RepoError::Unavailable`] and
/// [`StatusError::Transient`].
///
/// [`RepoError::Unavailable`]: slipway_core::ports::RepoError::Unavailable
/// [`StatusError::Transient`]: slipway_core::ports::StatusError::Transient
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("the HTTP client for GitHub could not be built: {0}")]
    Client(#[source] reqwest::Error),
    #[error("GitHub could not be reached: {0}")]
    Request(#[source] reqwest::Error),
    #[error("GitHub answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("GitHub's answer could not be read: {0}")]
    InvalidResponse(#[source] serde_json::Error),
}

/// A client for one GitHub API endpoint. Cheap to clone: clones share a connection pool.
#[derive(Clone)]
pub struct GithubApi {
    /// Built on first use: building it loads the system's root certificates (hundreds of files
    /// on some systems), which every Lambda function would otherwise pay at each cold start,
    /// whether or not it talks to GitHub.
    client: Arc<OnceLock<reqwest::Client>>,
    /// Sent with every request: the media type, the API version and the token.
    headers: HeaderMap,
    /// The API URL without a trailing slash.
    base: String,
    authenticated: bool,
}

impl fmt::Debug for GithubApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubApi")
            .field("api_url", &self.base)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl GithubApi {
    pub fn new(config: GithubConfig) -> Result<Self, GithubConfigError> {
        let base = api_base(&config.api_url)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(JSON_MEDIA_TYPE));
        headers.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static(API_VERSION),
        );
        let authenticated = config.token.is_some();
        if let Some(GithubToken(token)) = &config.token {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(GithubConfigError::InvalidToken);
            }
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| GithubConfigError::InvalidToken)?;
            // Keeps the token out of the client's own debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(Self {
            client: Arc::new(OnceLock::new()),
            headers,
            base,
            authenticated,
        })
    }

    /// The HTTP client, built by the first call. Two racing first calls may both build one;
    /// only the first stored is kept.
    fn client(&self) -> Result<&reqwest::Client, GithubError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(self.headers.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(GithubError::Client)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The API URL requests go to, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.base
    }

    /// `{api}/repos/{owner}/{name}/{rest}`; `rest` must already be percent-encoded.
    fn repo_url(&self, repo: &RepoName, rest: &str) -> String {
        format!(
            "{}/repos/{}/{}/{rest}",
            self.base,
            segment(repo.owner()),
            segment(repo.name())
        )
    }
}

fn api_base(raw: &str) -> Result<String, GithubConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|source| GithubConfigError::InvalidUrl {
            url: raw.to_owned(),
            source,
        })?;
    let supported = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri
            .authority()
            .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        && uri.query().is_none()
        && !trimmed.contains('#');
    if !supported {
        return Err(GithubConfigError::UnsupportedUrl {
            url: raw.to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// One path segment, percent-encoded.
fn segment(raw: &str) -> PercentEncode<'_> {
    utf8_percent_encode(raw, SEGMENT)
}

/// The body, or None as soon as it is known to be longer than `max` bytes: from
/// Content-Length when sent, otherwise by reading no further than `max + 1` bytes.
async fn read_capped(
    mut response: reqwest::Response,
    max: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|len| len > max) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// What an error answer says: GitHub's `message`, with the details of `errors` when present,
/// or the status's reason when the body has none.
async fn error_message(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    let status = response.status();
    let body = read_capped(response, MAX_ERROR_BODY).await.ok().flatten();
    let Some(parsed) = body.and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok()) else {
        return status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned();
    };
    let details: Vec<&str> = parsed
        .errors
        .iter()
        .filter_map(|e| e.get("message").unwrap_or(e).as_str())
        .collect();
    if details.is_empty() {
        parsed.message
    } else {
        format!("{} ({})", parsed.message, details.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api_url: &str, token: Option<&str>) -> GithubConfig {
        GithubConfig {
            api_url: api_url.to_owned(),
            token: token.map(GithubToken::new),
        }
    }

    #[test]
    fn api_urls_keep_their_path_and_lose_a_trailing_slash() {
        let api = GithubApi::new(GithubConfig::default()).unwrap();
        assert_eq!(api.api_url(), "https://api.github.com");
        let api = GithubApi::new(config("https://ghe.example.com/api/v3/", None)).unwrap();
        assert_eq!(api.api_url(), "https://ghe.example.com/api/v3");
        let api = GithubApi::new(config("http://127.0.0.1:9000", None)).unwrap();
        assert_eq!(api.api_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn unusable_api_urls_are_refused() {
        for bad in [
            "ftp://api.github.com",
            "api.github.com",
            "https://api.github.com/?per_page=1",
            "https://api.github.com/#top",
            "https://user:secret@api.github.com",
            "/api/v3",
        ] {
            let error = GithubApi::new(config(bad, None)).unwrap_err();
            assert!(
                matches!(error, GithubConfigError::UnsupportedUrl { .. }),
                "{bad}: {error}"
            );
        }
        let error = GithubApi::new(config("https://api github com", None)).unwrap_err();
        assert!(
            matches!(error, GithubConfigError::InvalidUrl { .. }),
            "{error}"
        );
    }

    #[test]
    fn tokens_must_fit_in_a_header() {
        for bad in ["", "   ", "ghp_abc def", "ghp_ab\ncd", "ghp_é"] {
            let error = GithubApi::new(config(DEFAULT_API_URL, Some(bad))).unwrap_err();
            assert!(
                matches!(error, GithubConfigError::InvalidToken),
                "{bad:?}: {error}"
            );
        }
        assert!(GithubApi::new(config(DEFAULT_API_URL, Some(" ghp_abc123\n"))).is_ok());
    }

    #[test]
    fn the_http_client_is_built_on_first_use_and_shared_by_clones() {
        let api = GithubApi::new(GithubConfig::default()).unwrap();
        let clone = api.clone();
        assert!(api.client.get().is_none(), "new() built the client");
        api.client().unwrap();
        assert!(
            clone.client.get().is_some(),
            "clones do not share the client"
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = "ghp_SuperSecret123";
        let config = config(DEFAULT_API_URL, Some(token));
        let api = GithubApi::new(config.clone()).unwrap();
        for shown in [
            format!("{config:?}"),
            format!("{api:?}"),
            format!("{:?}", GithubToken::new(token)),
        ] {
            assert!(!shown.contains(token), "{shown}");
        }
        assert!(format!("{api:?}").contains("authenticated: true"));
    }

    #[test]
    fn segments_escape_everything_but_unreserved_characters() {
        assert_eq!(
            segment("a b/é?#%+").to_string(),
            "a%20b%2F%C3%A9%3F%23%25%2B"
        );
        assert_eq!(segment("my-site_1.0~x").to_string(), "my-site_1.0~x");
    }
}
