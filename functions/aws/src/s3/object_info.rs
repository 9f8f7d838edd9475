//! S3's answers read into the port's [`ObjectInfo`]: sizes, unquoted ETags and headers.

use slipway_core::ports::{ObjectInfo, ObjectMeta, ObjectStoreError};

use super::errors::{missing, S3Error};

/// What a listed object's `meta` holds. ListObjectsV2 returns no headers, and a HEAD per key
/// would multiply a large listing's cost, so listings carry an empty content type and no
/// cache control; callers that need headers use `head` (Prune and MarkFailed use only keys).
pub fn listed_meta() -> ObjectMeta {
    ObjectMeta {
        content_type: String::new(),
        cache_control: None,
    }
}

pub(super) fn info_of(
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
pub(super) fn size_of(key: &str, size: Option<i64>) -> Result<u64, ObjectStoreError> {
    size.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ObjectStoreError::Unavailable(Box::new(S3Error::BadSize(key.to_owned()))))
}

pub(super) fn etag_of(
    e_tag: Option<&str>,
    operation: &'static str,
) -> Result<String, ObjectStoreError> {
    e_tag.map(unquote).ok_or_else(|| missing(operation, "ETag"))
}

pub(super) fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}
