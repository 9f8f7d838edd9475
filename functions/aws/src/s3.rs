//! The object store and upload targets on S3.
//!
//! [`S3Objects`] implements [`ObjectStore`] with the same semantics as the embedded store in
//! `slipway-local` (key-ordered, prefix-filtered listings; `delete_many` counts requests; the
//! same key rules), so a deploy run through either leaves the same objects and headers, and
//! [`UploadTargets`] with presigned PUT URLs.
//!
//! Concurrency of many small PUTs is the caller's (Publish runs `publish_concurrency` at once).
//! The SDK's default HTTP client (hyper-util's pooled client) opens a new connection whenever
//! no idle one is free and keeps every idle one (`pool_max_idle_per_host` = `usize::MAX`), so
//! concurrent requests never queue behind a connection limit.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::ports::UploadTarget;
use slipway_core::ports::{
    check_object_key, BoxError, ObjectBody, ObjectInfo, ObjectMeta, ObjectStore, ObjectStoreError,
    UploadError, UploadTargets,
};
use slipway_core::steps::BucketNames;
use tokio::sync::mpsc;

/// Streams at least this long go up as multipart uploads; shorter ones in one PutObject.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3 rejects smaller parts (except the last) when the upload completes.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's limit on parts per upload; larger objects get larger parts.
const MAX_PARTS: u64 = 10_000;
pub const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// The same default as `slipway dev`.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;
/// `DeleteObjects` takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// Batches of one `delete_many` sent at once: a large prune is not a queue of round trips.
const DELETE_BATCHES_IN_FLIGHT: usize = 4;
/// Chunks buffered between a streaming GetObject and its reader.
const GET_CHANNEL_DEPTH: usize = 4;
const ZIP_CONTENT_TYPE: &str = "application/zip";

/// What a listed object's `meta` holds. ListObjectsV2 returns no headers, and a HEAD per key
/// would multiply a large listing's cost, so listings carry an empty content type and no
/// cache control; callers that need headers use `head` (Prune and MarkFailed use only keys).
pub fn listed_meta() -> ObjectMeta {
    ObjectMeta {
        content_type: String::new(),
        cache_control: None,
    }
}

/// Failures S3 reports inside a successful response, or answers missing what the API promises.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("DeleteObjects could not delete {failed} key(s), first {key:?}: {code}: {message}")]
    DeleteFailed {
        failed: usize,
        key: String,
        code: String,
        message: String,
    },
    #[error("{operation} answered without {field}")]
    MissingField {
        operation: &'static str,
        field: &'static str,
    },
    #[error("S3 reported a negative or missing size for {0:?}")]
    BadSize(String),
    #[error("the range answer was {got} bytes; at most {asked} were asked for")]
    LongRange { asked: u64, got: u64 },
}

/// A client for emulators and AWS alike: an endpoint override (an emulator on loopback) gets
/// path-style addressing, since `{bucket}.127.0.0.1` does not resolve.
pub fn client(sdk: &SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

/// Creates a bucket in the client's region (the stack creates the real ones; this is for
/// emulators and first-run set-up). An existing bucket of ours is fine.
pub async fn create_bucket(client: &Client, name: &str) -> Result<(), ObjectStoreError> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
        Err(e) => Err(unavailable(e)),
    }
}

pub struct S3Objects {
    client: Client,
    buckets: BucketNames,
    multipart_threshold: u64,
    part_size: u64,
    presign_expiry: Duration,
    max_upload_bytes: u64,
    list_page_size: Option<i32>,
}

impl S3Objects {
    pub fn new(client: Client, buckets: BucketNames) -> Self {
        Self {
            client,
            buckets,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            presign_expiry: DEFAULT_PRESIGN_EXPIRY,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            list_page_size: None,
        }
    }

    /// Streams of `threshold` bytes or more go up in parts of `part_size` (raised to
    /// [`MIN_PART_SIZE`] if smaller); memory per upload stays at about one part.
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(MIN_PART_SIZE);
        self
    }

    pub fn with_presign_expiry(mut self, expiry: Duration) -> Self {
        self.presign_expiry = expiry;
        self
    }

    pub fn with_max_upload_bytes(mut self, max: u64) -> Self {
        self.max_upload_bytes = max;
        self
    }

    /// Keys per ListObjectsV2 page (S3 caps it at 1,000, the default).
    pub fn with_list_page_size(mut self, keys: i32) -> Self {
        self.list_page_size = Some(keys);
        self
    }

    fn name(&self, bucket: Bucket) -> &str {
        self.buckets.name_of(bucket)
    }

    /// One DeleteObject request for one key, as per-object deleters send them (the
    /// benchmarks' baseline for [`ObjectStore::delete_many`]'s batches).
    pub async fn delete_one(&self, bucket: Bucket, key: &str) -> Result<(), ObjectStoreError> {
        check_object_key(key)?;
        let name = self.name(bucket);
        self.client
            .delete_object()
            .bucket(name)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
            .inspect_err(|e| log_failure("delete_one", name, key, e))
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        meta: &ObjectMeta,
    ) -> Result<String, ObjectStoreError> {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(&meta.content_type)
            .set_cache_control(meta.cache_control.clone())
            .content_length(len_i64(bytes.len() as u64))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(unavailable)?;
        etag_of(out.e_tag(), "PutObject")
    }

    async fn put_multipart(
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

    async fn fetch_range(
        &self,
        bucket: Bucket,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        let name = self.name(bucket);
        let not_found = || ObjectStoreError::NotFound {
            bucket,
            key: key.to_owned(),
        };
        if range.start >= range.end {
            // Nothing to read, but a missing object is still an error, as in the local store.
            return match self.head(bucket, key).await? {
                Some(_) => Ok(Bytes::new()),
                None => Err(not_found()),
            };
        }
        let asked = range.end - range.start;
        let answer = self
            .client
            .get_object()
            .bucket(name)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) if is_no_such_key(&e) => return Err(not_found()),
            // The range starts at or past the end: clamped, that is nothing.
            Err(e) if e.code() == Some("InvalidRange") || status_of(&e) == Some(416) => {
                return Ok(Bytes::new())
            }
            Err(e) => return Err(unavailable(e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?
            .into_bytes();
        if bytes.len() as u64 > asked {
            return Err(ObjectStoreError::Unavailable(Box::new(
                S3Error::LongRange {
                    asked,
                    got: bytes.len() as u64,
                },
            )));
        }
        Ok(bytes)
    }

    async fn list_all(
        &self,
        name: &str,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, ObjectStoreError> {
        let mut request = self.client.list_objects_v2().bucket(name).prefix(prefix);
        if let Some(keys) = self.list_page_size {
            request = request.max_keys(keys);
        }
        let mut pages = request.into_paginator().send();
        let mut infos = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(unavailable)?;
            for object in page.contents() {
                let Some(key) = object.key() else {
                    return Err(missing("ListObjectsV2", "Key"));
                };
                infos.push(ObjectInfo {
                    key: key.to_owned(),
                    size: size_of(key, object.size())?,
                    etag: unquote(object.e_tag().unwrap_or_default()),
                    meta: listed_meta(),
                });
            }
        }
        // S3 lists in UTF-8 byte order already; sorting keeps the port's promise regardless.
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }

    async fn delete_batches(&self, name: &str, keys: &[String]) -> Result<u64, ObjectStoreError> {
        // Futures do nothing until polled: collected first (which keeps the borrow checker
        // out of a higher-ranked closure inside async-trait), they still run a few at a time.
        let batches: Vec<_> = keys
            .chunks(DELETE_BATCH)
            .map(|batch| self.delete_batch(name, batch))
            .collect();
        futures::stream::iter(batches)
            .buffer_unordered(DELETE_BATCHES_IN_FLIGHT)
            .try_fold(0u64, |requests, ()| async move { Ok(requests + 1) })
            .await
    }

    async fn delete_batch(&self, name: &str, batch: &[String]) -> Result<(), ObjectStoreError> {
        let objects = batch
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
        let out = self
            .client
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(unavailable)?;
        match out.errors().first() {
            None => Ok(()),
            Some(first) => Err(ObjectStoreError::Unavailable(Box::new(
                S3Error::DeleteFailed {
                    failed: out.errors().len(),
                    key: first.key().unwrap_or_default().to_owned(),
                    code: first.code().unwrap_or_default().to_owned(),
                    message: first.message().unwrap_or_default().to_owned(),
                },
            ))),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn put(
        &self,
        bucket: Bucket,
        key: &str,
        body: ObjectBody,
        meta: &ObjectMeta,
    ) -> Result<ObjectInfo, ObjectStoreError> {
        check_object_key(key)?;
        let name = self.name(bucket);
        let size = body.len();
        let result = match body {
            ObjectBody::Bytes(bytes) => self.put_object(name, key, bytes, meta).await,
            ObjectBody::Stream { len, chunks } if len >= self.multipart_threshold => {
                self.put_multipart(name, key, len, chunks, meta).await
            }
            ObjectBody::Stream { len, chunks } => match collect(len, chunks).await {
                Ok(bytes) => self.put_object(name, key, bytes, meta).await,
                Err(e) => Err(e),
            },
        };
        let etag = result.inspect_err(|e| log_failure("put", name, key, e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size,
            etag,
            meta: meta.clone(),
        })
    }

    async fn head(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ObjectStoreError> {
        check_object_key(key)?;
        let name = self.name(bucket);
        let answer = self.client.head_object().bucket(name).key(key).send().await;
        let out = match answer {
            Ok(out) => out,
            // HEAD answers carry no error body, so a missing bucket looks the same as a
            // missing key here; every other call tells them apart.
            Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                return Ok(None)
            }
            Err(e) => {
                let e = unavailable(e);
                log_failure("head", name, key, &e);
                return Err(e);
            }
        };
        info_of(
            key,
            out.content_length(),
            out.e_tag(),
            out.content_type(),
            out.cache_control(),
        )
        .map(Some)
        .inspect_err(|e| log_failure("head", name, key, e))
    }

    async fn get_range(
        &self,
        bucket: Bucket,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        check_object_key(key)?;
        self.fetch_range(bucket, key, range)
            .await
            .inspect_err(|e| log_failure("get_range", self.name(bucket), key, e))
    }

    async fn get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, ObjectStoreError> {
        check_object_key(key)?;
        let name = self.name(bucket);
        let answer = self.client.get_object().bucket(name).key(key).send().await;
        let out = match answer {
            Ok(out) => out,
            Err(e) if is_no_such_key(&e) => return Ok(None),
            Err(e) => {
                let e = unavailable(e);
                log_failure("get", name, key, &e);
                return Err(e);
            }
        };
        let info = info_of(
            key,
            out.content_length(),
            out.e_tag(),
            out.content_type(),
            out.cache_control(),
        )
        .inspect_err(|e| log_failure("get", name, key, e))?;
        let len = info.size;
        let (tx, rx) = mpsc::channel(GET_CHANNEL_DEPTH);
        let mut body = out.body;
        let (bucket_name, key_owned) = (name.to_owned(), key.to_owned());
        tokio::spawn(async move {
            let mut received = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                if let Ok(bytes) = &chunk {
                    received += bytes.len() as u64;
                }
                let failed = chunk.is_err();
                if failed {
                    tracing::warn!(bucket = %bucket_name, key = %key_owned, "S3 body stream failed");
                }
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
            if received != len {
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the S3 body ended after {received} of {len} bytes"),
                );
                let _ = tx.send(Err(short)).await;
            }
        });
        Ok(Some((info, ObjectBody::Stream { len, chunks: rx })))
    }

    async fn list(
        &self,
        bucket: Bucket,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, ObjectStoreError> {
        let name = self.name(bucket);
        self.list_all(name, prefix)
            .await
            .inspect_err(|e| log_failure("list", name, prefix, e))
    }

    async fn delete_many(&self, bucket: Bucket, keys: &[String]) -> Result<u64, ObjectStoreError> {
        for key in keys {
            check_object_key(key)?;
        }
        let name = self.name(bucket);
        self.delete_batches(name, keys).await.inspect_err(|e| {
            let first = keys.first().map(String::as_str).unwrap_or_default();
            log_failure("delete_many", name, first, e);
        })
    }
}

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

/// Reads a short stream whole, checking it has exactly `len` bytes.
async fn collect(
    len: u64,
    mut chunks: mpsc::Receiver<std::io::Result<Bytes>>,
) -> Result<Bytes, ObjectStoreError> {
    let mut buffer = BytesMut::with_capacity(usize_of(len));
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
        buffer.extend_from_slice(&chunk);
        if buffer.len() as u64 > len {
            break;
        }
    }
    if buffer.len() as u64 != len {
        return Err(ObjectStoreError::ShortBody {
            expected: len,
            actual: buffer.len() as u64,
        });
    }
    Ok(buffer.freeze())
}

fn info_of(
    key: &str,
    content_length: Option<i64>,
    e_tag: Option<&str>,
    content_type: Option<&str>,
    cache_control: Option<&str>,
) -> Result<ObjectInfo, ObjectStoreError> {
    Ok(ObjectInfo {
        key: key.to_owned(),
        size: size_of(key, content_length)?,
        etag: unquote(e_tag.unwrap_or_default()),
        meta: ObjectMeta {
            // S3 always stores a content type; this default is S3's own.
            content_type: content_type.unwrap_or("binary/octet-stream").to_owned(),
            cache_control: cache_control.map(str::to_owned),
        },
    })
}

/// A size S3 reported; never negative or absent on a well-formed answer.
fn size_of(key: &str, size: Option<i64>) -> Result<u64, ObjectStoreError> {
    size.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ObjectStoreError::Unavailable(Box::new(S3Error::BadSize(key.to_owned()))))
}

fn etag_of(e_tag: Option<&str>, operation: &'static str) -> Result<String, ObjectStoreError> {
    e_tag.map(unquote).ok_or_else(|| missing(operation, "ETag"))
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

fn missing(operation: &'static str, field: &'static str) -> ObjectStoreError {
    ObjectStoreError::Unavailable(Box::new(S3Error::MissingField { operation, field }))
}

fn is_no_such_key<R>(e: &SdkError<GetObjectError, R>) -> bool {
    matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_)))
}

fn status_of<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn unavailable<E>(e: E) -> ObjectStoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    ObjectStoreError::Unavailable(Box::new(e) as BoxError)
}

fn log_failure(operation: &str, bucket: &str, key: &str, e: &ObjectStoreError) {
    match e {
        ObjectStoreError::Unavailable(source) => {
            tracing::error!(operation, bucket, key, error = %DisplayErrorContext(source.as_ref()), "S3 request failed");
        }
        other => {
            tracing::warn!(operation, bucket, key, error = %other, "S3 object operation refused")
        }
    }
}

/// Sizes handed to S3 are lengths of in-memory buffers, so they fit an i64.
fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Capacities are bounded by the part size or the multipart threshold.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
