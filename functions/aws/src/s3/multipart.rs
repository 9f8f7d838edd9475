//! Large PUTs as multipart uploads: parts of at least [`MIN_PART_SIZE`], CRC32-checked,
//! aborted on failure.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::{Bytes, BytesMut};
use slipway_core::ports::{ObjectMeta, ObjectStoreError};
use tokio::sync::mpsc;

use super::errors::{missing, unavailable};
use super::object_info::etag_of;
use super::{len_i64, usize_of, S3Objects};

/// Streams at least this long go up as multipart uploads; shorter ones in one PutObject.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3 rejects smaller parts (except the last) when the upload completes.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's limit on parts per upload; larger objects get larger parts.
const MAX_PARTS: u64 = 10_000;

impl S3Objects {
    pub(super) async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        chunks: mpsc::Receiver<std::io::Result<Bytes>>,
        meta: &ObjectMeta,
    ) -> Result<String, ObjectStoreError> {
        // CRC32 per part, declared up front: S3 then requires (and checks) each part's
        // checksum at completion.
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(&meta.content_type)
            .set_cache_control(meta.cache_control.clone())
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(unavailable)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| missing("CreateMultipartUpload", "UploadId"))?;
        let result = self.upload_parts(bucket, key, upload_id, len, chunks).await;
        if result.is_err() {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                // A lifecycle rule for incomplete uploads is the backstop.
                tracing::error!(bucket, key, upload_id, error = %DisplayErrorContext(&e), "abandoned multipart upload could not be aborted");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        len: u64,
        mut chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<String, ObjectStoreError> {
        let part_size = self.part_size.max(len.div_ceil(MAX_PARTS));
        let mut parts = Vec::new();
        let mut buffer = BytesMut::new();
        let mut received = 0u64;
        while let Some(chunk) = chunks.recv().await {
            let mut chunk = chunk.map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
            received += chunk.len() as u64;
            if received > len {
                return Err(ObjectStoreError::ShortBody {
                    expected: len,
                    actual: received,
                });
            }
            while !chunk.is_empty() {
                if buffer.is_empty() {
                    let remaining = len - (part_size * parts.len() as u64);
                    buffer.reserve(usize_of(remaining.min(part_size)));
                }
                let take = chunk.len().min(usize_of(part_size) - buffer.len());
                buffer.extend_from_slice(&chunk.split_to(take));
                if buffer.len() as u64 == part_size {
                    let part = std::mem::take(&mut buffer).freeze();
                    parts.push(
                        self.upload_part(bucket, key, upload_id, parts.len(), part)
                            .await?,
                    );
                }
            }
        }
        if received != len {
            return Err(ObjectStoreError::ShortBody {
                expected: len,
                actual: received,
            });
        }
        if !buffer.is_empty() || parts.is_empty() {
            let part = buffer.freeze();
            parts.push(
                self.upload_part(bucket, key, upload_id, parts.len(), part)
                    .await?,
            );
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(unavailable)?;
        etag_of(out.e_tag(), "CompleteMultipartUpload")
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        index: usize,
        part: Bytes,
    ) -> Result<CompletedPart, ObjectStoreError> {
        // Part numbers start at 1 and stay ≤ MAX_PARTS, so they fit an i32.
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(len_i64(part.len() as u64))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(unavailable)?;
        let e_tag = out.e_tag().ok_or_else(|| missing("UploadPart", "ETag"))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(e_tag)
            .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
            .build())
    }
}
