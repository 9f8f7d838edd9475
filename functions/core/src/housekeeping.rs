//! Work no deploy triggers: deployments created for an upload that never came.

use time::{Duration, OffsetDateTime};

use crate::model::DeploymentStatus;
use crate::names::DeploymentId;
use crate::steps::{mark_failed, CaughtError, MarkFailedInput, Pipeline, StepError};

/// How long an upload URL is good for (S3 presigned PUTs are signed for 15 minutes).
pub const UPLOAD_WINDOW: Duration = Duration::minutes(15);

/// Fails `queued` deployments created before `now - older_than`: their upload never
/// arrived (the client gave up, or the URL expired). Returns the ids it failed.
pub async fn expire_abandoned_uploads(
    p: &Pipeline,
    older_than: Duration,
    now: OffsetDateTime,
) -> Result<Vec<DeploymentId>, StepError> {
    let mut expired = Vec::new();
    for site in p.state.list_sites().await? {
        for deployment in p.state.list_deployments(&site.name).await? {
            if deployment.status != DeploymentStatus::Queued
                || deployment.created_at > now - older_than
            {
                continue;
            }
            // A deployment from git has nothing to upload: only its start can have been lost.
            let arrived = match deployment.source.archive() {
                Some(source) => p.objects.head(source.bucket, &source.key).await?.is_some(),
                None => true,
            };
            let cause = if arrived {
                "the source arrived but its deploy never started; deploy again"
            } else {
                "the source zip never arrived; deploy again"
            };
            let input = MarkFailedInput {
                site: deployment.site.clone(),
                deployment_id: deployment.id,
                error: CaughtError {
                    error: "UploadExpired".into(),
                    cause: cause.into(),
                },
            };
            if mark_failed(p, input).await?.recorded {
                expired.push(deployment.id);
            }
        }
    }
    if !expired.is_empty() {
        tracing::info!(
            count = expired.len(),
            "failed deployments whose upload never arrived"
        );
    }
    Ok(expired)
}
