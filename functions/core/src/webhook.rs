//! GitHub webhooks: a push to a linked site's production branch deploys production, a push to
//! any other branch deploys that branch's preview, a pull request deploys `pr-{n}`. Deleting a
//! branch or closing a pull request removes the preview's route. `slipway dev` and the
//! `github-webhook` Lambda serve the very same handler.

use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

use crate::api::{json_response, ApiError};
use crate::model::{Deployment, DeploymentSource, GitSource, Site};
use crate::names::{BranchName, CommitSha, DeploymentId, RepoName, SiteName, TargetName};
use crate::ports::{DeployRequest, Lifecycle, StateError, Workflow, WorkflowStarter};
use crate::steps::TrafficSync;
use crate::trigger::execution_name;

/// GitHub caps payloads at 25 MB, but a push lists at most 20 commits: real events are a few
/// kilobytes. Anything above this is refused before it is parsed.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// How long a delivery id is remembered: GitHub offers redelivery for 3 days.
pub const DELIVERY_TTL: Duration = Duration::days(7);

/// The shared secret GitHub signs deliveries with. Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret must not be empty")]
pub struct EmptySecret;

impl WebhookSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, EmptySecret> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(EmptySecret);
        }
        Ok(Self(secret))
    }

    /// `sha256={hex}` over `body`, as GitHub sends it in `X-Hub-Signature-256`.
    pub fn sign(&self, body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex::encode(self.mac(body).finalize().into_bytes())
        )
    }

    /// Checks an `X-Hub-Signature-256` value in constant time.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let digest = header
            .strip_prefix("sha256=")
            .and_then(|hex_digest| hex::decode(hex_digest).ok())
            .ok_or(SignatureError::Malformed)?;
        self.mac(body)
            .verify_slice(&digest)
            .map_err(|_| SignatureError::Mismatch)
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(body);
        mac
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not `sha256=` and a hex digest")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// What a delivery did, as the webhook answers it (GitHub shows it under Recent Deliveries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub event: String,
    pub action: WebhookAction,
    /// Why nothing happened, for ignored events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub deployments: Vec<StartedDeployment>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub removed: Vec<RemovedPreview>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookAction {
    Pong,
    Deploying,
    Removed,
    Ignored,
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedDeployment {
    pub site: SiteName,
    pub deployment_id: DeploymentId,
    pub target: TargetName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedPreview {
    pub site: SiteName,
    pub target: TargetName,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
    clone_url: String,
}

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequest {
    head: PullRequestHead,
}

#[derive(Deserialize)]
struct PullRequestHead {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
    /// Null when the fork was deleted.
    repo: Option<Repository>,
}

/// What one delivery asks for, parsed and checked.
enum Intent {
    Deploy {
        target: Target,
        repo: RepoName,
        clone_url: String,
        sha: CommitSha,
        branch: BranchName,
        pull_request: Option<u64>,
    },
    Remove {
        target: Target,
        repo: RepoName,
    },
}

impl Intent {
    fn repo(&self) -> &RepoName {
        match self {
            Intent::Deploy { repo, .. } | Intent::Remove { repo, .. } => repo,
        }
    }
}

/// A delivery slipway acts on, or why it does not.
enum Parsed {
    Act(Intent),
    Ignore(String),
}

/// A pull request's target is fixed; a branch's depends on each site's production branch.
enum Target {
    Branch(BranchName),
    PullRequest(u64),
}

impl Target {
    fn for_site(&self, site: &Site) -> TargetName {
        match self {
            Target::PullRequest(n) => TargetName::pull_request(*n),
            Target::Branch(branch) => match &site.repo {
                Some(link) if &link.production_branch == branch => TargetName::production(),
                _ => TargetName::for_branch(branch, &site.name),
            },
        }
    }
}

pub struct GithubWebhook {
    /// The records, and the switch a closed pull request's preview is taken down with.
    traffic: TrafficSync,
    workflow: Arc<dyn WorkflowStarter>,
    secret: WebhookSecret,
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_event<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| bad_request("invalid_body", format!("invalid webhook payload: {e}")))
}

fn repo_name(repository: &Repository) -> Result<RepoName, ApiError> {
    Ok(RepoName::parse(&repository.full_name)?)
}

fn commit(raw: &str) -> Result<CommitSha, ApiError> {
    CommitSha::parse(raw).map_err(|e| bad_request("invalid_body", e.to_string()))
}

impl GithubWebhook {
    pub fn new(
        traffic: TrafficSync,
        workflow: Arc<dyn WorkflowStarter>,
        secret: WebhookSecret,
    ) -> Self {
        Self {
            traffic,
            workflow,
            secret,
        }
    }

    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let delivery = header(request.headers(), "x-github-delivery")
            .unwrap_or("")
            .to_owned();
        let event = header(request.headers(), "x-github-event")
            .unwrap_or("")
            .to_owned();
        match self.respond(request.headers(), request.body()).await {
            Ok((status, outcome)) => {
                tracing::info!(%delivery, %event, action = ?outcome.action, deployments = outcome.deployments.len(), removed = outcome.removed.len(), "github webhook");
                json_response(status, &outcome)
            }
            Err(e) => {
                tracing::warn!(%delivery, %event, status = e.status.as_u16(), code = e.code, error = %e.message, "github webhook refused");
                e.into_response()
            }
        }
    }

    async fn respond(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(StatusCode, WebhookOutcome), ApiError> {
        if body.len() > MAX_WEBHOOK_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("webhook payloads are limited to {MAX_WEBHOOK_BODY} bytes"),
            ));
        }
        self.secret
            .verify(body, header(headers, "x-hub-signature-256"))
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()))?;
        let event = header(headers, "x-github-event")
            .ok_or_else(|| bad_request("missing_event", "the X-GitHub-Event header is missing"))?
            .to_owned();
        let outcome = |action, reason: Option<String>| WebhookOutcome {
            event: event.clone(),
            action,
            reason,
            deployments: Vec::new(),
            removed: Vec::new(),
        };
        let parsed = match event.as_str() {
            "ping" => return Ok((StatusCode::OK, outcome(WebhookAction::Pong, None))),
            "push" => push_intent(parse_event(body)?)?,
            "pull_request" => pull_request_intent(parse_event(body)?)?,
            other => Parsed::Ignore(format!("slipway does not act on {other} events")),
        };
        let intent = match parsed {
            Parsed::Act(intent) => intent,
            Parsed::Ignore(reason) => {
                return Ok((
                    StatusCode::ACCEPTED,
                    outcome(WebhookAction::Ignored, Some(reason)),
                ))
            }
        };
        let repo = intent.repo().clone();
        let sites = self.linked_sites(&repo).await?;
        if sites.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_repository",
                format!("no site is linked to {repo}; link one with `slipway sites create NAME --repo {repo}`"),
            ));
        }
        let delivery = header(headers, "x-github-delivery")
            .filter(|d| !d.is_empty() && d.len() <= 128)
            .ok_or_else(|| {
                bad_request(
                    "missing_delivery",
                    "the X-GitHub-Delivery header is missing or too long",
                )
            })?;
        let now = OffsetDateTime::now_utc();
        let first = self
            .traffic
            .state
            .record_delivery(delivery, now + DELIVERY_TTL)
            .await?;
        if !first {
            return Ok((
                StatusCode::OK,
                outcome(
                    WebhookAction::Duplicate,
                    Some(format!("delivery {delivery} was handled already")),
                ),
            ));
        }
        let handled = self
            .act(intent, &sites, outcome(WebhookAction::Deploying, None), now)
            .await;
        if handled.is_err() {
            // GitHub does not redeliver by itself; a person redelivering must not be told
            // "duplicate" for a delivery that did nothing.
            if let Err(e) = self.traffic.state.forget_delivery(delivery).await {
                tracing::error!(%delivery, error = %e, "could not forget a failed delivery");
            }
        }
        handled
    }

    async fn act(
        &self,
        intent: Intent,
        sites: &[Site],
        mut done: WebhookOutcome,
        now: OffsetDateTime,
    ) -> Result<(StatusCode, WebhookOutcome), ApiError> {
        match intent {
            Intent::Deploy {
                target,
                repo,
                clone_url,
                sha,
                branch,
                pull_request,
            } => {
                for site in sites {
                    let source = GitSource {
                        repo: repo.clone(),
                        clone_url: clone_url.clone(),
                        sha: sha.clone(),
                        branch: branch.clone(),
                        pull_request,
                        root: site.repo.as_ref().and_then(|link| link.root.clone()),
                    };
                    done.deployments.push(
                        self.deploy(site, target.for_site(site), source, now)
                            .await?,
                    );
                }
                Ok((StatusCode::ACCEPTED, done))
            }
            Intent::Remove { target, .. } => {
                done.action = WebhookAction::Removed;
                for site in sites {
                    let target = target.for_site(site);
                    if target.is_production() {
                        continue;
                    }
                    self.traffic
                        .state
                        .remove_preview(&site.name, &target, now)
                        .await?;
                    self.traffic.target(&site.name, &target).await?;
                    done.removed.push(RemovedPreview {
                        site: site.name.clone(),
                        target,
                    });
                }
                if done.removed.is_empty() {
                    done.action = WebhookAction::Ignored;
                    done.reason = Some("the production branch was deleted; production keeps serving its live deployment".to_owned());
                }
                Ok((StatusCode::OK, done))
            }
        }
    }

    async fn linked_sites(&self, repo: &RepoName) -> Result<Vec<Site>, StateError> {
        Ok(self
            .traffic
            .state
            .list_sites()
            .await?
            .into_iter()
            .filter(|site| site.repo.as_ref().is_some_and(|link| &link.repo == repo))
            .collect())
    }

    async fn deploy(
        &self,
        site: &Site,
        target: TargetName,
        source: GitSource,
        now: OffsetDateTime,
    ) -> Result<StartedDeployment, ApiError> {
        let deployment = Deployment::queued_for(
            DeploymentId::generate(),
            site.name.clone(),
            target.clone(),
            DeploymentSource::Git(source),
            false,
            now,
        );
        self.traffic.state.create_deployment(&deployment).await?;
        self.workflow
            .start(
                Workflow::DeploySite,
                &execution_name(&deployment.id),
                &DeployRequest::for_deployment(&deployment),
            )
            .await
            .map_err(|e| {
                tracing::error!(site = %site.name, deployment_id = %deployment.id, error = %e, "workflow start failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the deploy workflow could not be started; redeliver the webhook",
                )
            })?;
        tracing::info!(site = %site.name, deployment_id = %deployment.id, target = %target, "git deployment started");
        Ok(StartedDeployment {
            site: site.name.clone(),
            deployment_id: deployment.id,
            target,
        })
    }
}

fn push_intent(push: PushEvent) -> Result<Parsed, ApiError> {
    let repo = repo_name(&push.repository)?;
    let Some(branch) = BranchName::from_ref(&push.git_ref) else {
        return Ok(Parsed::Ignore(format!(
            "{} is not a branch; only branch pushes deploy",
            push.git_ref
        )));
    };
    if push.deleted {
        return Ok(Parsed::Act(Intent::Remove {
            target: Target::Branch(branch),
            repo,
        }));
    }
    Ok(Parsed::Act(Intent::Deploy {
        target: Target::Branch(branch.clone()),
        sha: commit(&push.after)?,
        clone_url: push.repository.clone_url,
        repo,
        branch,
        pull_request: None,
    }))
}

fn pull_request_intent(event: PullRequestEvent) -> Result<Parsed, ApiError> {
    let repo = repo_name(&event.repository)?;
    let target = Target::PullRequest(event.number);
    match event.action.as_str() {
        "closed" => Ok(Parsed::Act(Intent::Remove { target, repo })),
        "opened" | "synchronize" | "reopened" => {
            let head = event.pull_request.head;
            // A fork's code would build with this site's credentials: Vercel and Netlify ask
            // for approval first; slipway does not build it at all.
            let Some(head_repo) = head
                .repo
                .filter(|r| RepoName::parse(&r.full_name).is_ok_and(|name| name == repo))
            else {
                return Ok(Parsed::Ignore(format!(
                    "pull request #{} comes from a fork; forks are not built",
                    event.number
                )));
            };
            Ok(Parsed::Act(Intent::Deploy {
                target,
                sha: commit(&head.sha)?,
                branch: BranchName::parse(&head.branch)?,
                clone_url: head_repo.clone_url,
                repo,
                pull_request: Some(event.number),
            }))
        }
        other => Ok(Parsed::Ignore(format!(
            "pull_request {other} changes no code"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let secret = WebhookSecret::new("It's a Secret to Everybody").unwrap();
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret.sign(b"Hello, World!"), expected);
        assert_eq!(secret.verify(b"Hello, World!", Some(expected)), Ok(()));
        assert_eq!(
            secret.verify(b"Hello, World?", Some(expected)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            secret.verify(b"Hello, World!", None),
            Err(SignatureError::Missing)
        );
        for malformed in ["757107ea", "sha1=757107ea", "sha256=zz"] {
            assert_eq!(
                secret.verify(b"Hello, World!", Some(malformed)),
                Err(SignatureError::Malformed)
            );
        }
        assert!(WebhookSecret::new("").is_err());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
    }
}
