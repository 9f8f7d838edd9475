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
//!
//! This file holds [`S3Objects`] and its settings; the rest is split by concern:
//! `client` (the client and bucket set-up), `store` (the [`ObjectStore`] port: put, head,
//! get, list, delete), `multipart` (large PUTs in parts), `bodies` (streamed bodies in and
//! out), `presign` (the [`UploadTargets`] port), `object_info` (S3's answers read into
//! [`ObjectInfo`]) and `errors` ([`S3Error`], SDK error mapping and failure logs).
//!
//! [`ObjectStore`]: slipway_core::ports::ObjectStore
//! [`UploadTargets`]: slipway_core::ports::UploadTargets
//! [`ObjectInfo`]: slipway_core::ports::ObjectInfo

mod bodies;
mod client;
mod errors;
mod multipart;
mod object_info;
mod presign;
mod store;

use std::time::Duration;

use aws_sdk_s3::Client;
use slipway_core::model::Bucket;
use slipway_core::steps::BucketNames;

pub use client::{client, create_bucket};
pub use errors::S3Error;
pub use multipart::{DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MIN_PART_SIZE};
pub use object_info::listed_meta;
pub use presign::{DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_PRESIGN_EXPIRY};

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
}

/// Sizes handed to S3 are lengths of in-memory buffers, so they fit an i64.
fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Capacities are bounded by the part size or the multipart threshold.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
