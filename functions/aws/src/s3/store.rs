//! The [`ObjectStore`] port on S3: put, head, get (whole or a range), list and delete,
//! with the embedded store's semantics.

use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use slipway_core::model::Bucket;
use slipway_core::ports::{
    check_object_key, ObjectBody, ObjectInfo, ObjectMeta, ObjectStore, ObjectStoreError,
};

use super::bodies::{collect, stream_body};
use super::errors::{is_no_such_key, log_failure, missing, status_of, unavailable, S3Error};
use super::object_info::{etag_of, info_of, listed_meta, size_of, unquote};
use super::{len_i64, S3Objects};

/// `DeleteObjects` takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// Batches of one `delete_many` sent at once: a large prune is not a queue of round trips.
const DELETE_BATCHES_IN_FLIGHT: usize = 4;

impl S3Objects {
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
        let rx = stream_body(out.body, len, name, key);
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
