//! The [`UploadTargets`] port on S3: presigned PUT URLs for deploy archives.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_smithy_types::error::display::DisplayErrorContext;
use slipway_core::model::ObjectLocation;
use slipway_core::ports::{UploadError, UploadTarget, UploadTargets};

use super::S3Objects;

pub const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// The same default as `slipway dev`.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;
const ZIP_CONTENT_TYPE: &str = "application/zip";

#[async_trait]
impl UploadTargets for S3Objects {
    fn max_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// A PUT presigned for exactly `location`'s key, with `content-type: application/zip`
    /// signed in. A presigned PUT cannot cap the body size (that needs a POST policy), so
    /// `max_bytes` is what the client is told; S3's own 5 GB limit is the hard one.
    async fn upload_target(&self, location: &ObjectLocation) -> Result<UploadTarget, UploadError> {
        let name = self.name(location.bucket);
        let key = location.key.as_str();
        let presigning = PresigningConfig::expires_in(self.presign_expiry)
            .map_err(|e| UploadError::Unavailable(Box::new(e)))?;
        let presigned = self
            .client
            .put_object()
            .bucket(name)
            .key(key)
            .content_type(ZIP_CONTENT_TYPE)
            .presigned(presigning)
            .await
            .map_err(|e| {
                tracing::error!(bucket = name, key, error = %DisplayErrorContext(&e), "presigning failed");
                UploadError::Unavailable(Box::new(e))
            })?;
        let headers: BTreeMap<String, String> = presigned
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        Ok(UploadTarget {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers,
            max_bytes: self.max_upload_bytes,
        })
    }
}
