//! The S3 adapter against real S3 emulators over HTTP: moto (the whole API surface we use)
//! and s3s-fs (which verifies SigV4 signatures, so presigned URLs are really checked).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use slipway_aws::s3::S3Objects;
use slipway_core::model::Bucket;
use slipway_core::model::ObjectLocation;
use slipway_core::ports::{
    ObjectBody, ObjectInfo, ObjectMeta, ObjectStore, ObjectStoreError, UploadTargets,
};
use slipway_core::steps::BucketNames;
use tokio::sync::mpsc;

const MIB: usize = 1024 * 1024;

/// Counts the HTTP requests the adapter sends, by kind, as they go on the wire.
#[derive(Debug, Default)]
struct Requests {
    delete_objects: AtomicU64,
    upload_part: AtomicU64,
    list: AtomicU64,
    /// Every multipart upload id a request named.
    upload_ids: Mutex<BTreeSet<String>>,
}

#[derive(Debug, Clone)]
struct Counter(Arc<Requests>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let uri = request.uri();
        let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
        let has = |param: &str| {
            query
                .split('&')
                .any(|p| p == param || p.starts_with(&format!("{param}=")))
        };
        if let Some(id) = query.split('&').find_map(|p| p.strip_prefix("uploadId=")) {
            self.0.upload_ids.lock().unwrap().insert(id.to_owned());
        }
        if request.method() == "POST" && has("delete") {
            self.0.delete_objects.fetch_add(1, Ordering::Relaxed);
        } else if request.method() == "PUT" && has("partNumber") {
            self.0.upload_part.fetch_add(1, Ordering::Relaxed);
        } else if request.method() == "GET" && has("list-type") {
            self.0.list.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emulator {
    Moto,
    S3s,
}

impl Emulator {
    fn url(self) -> String {
        match self {
            Emulator::Moto => support::moto_url(),
            Emulator::S3s => support::s3s_url(),
        }
    }
}

struct Env {
    emulator: Emulator,
    /// A raw client on the same endpoint, to check what the adapter left behind.
    raw: Client,
    buckets: BucketNames,
    requests: Arc<Requests>,
    url: String,
}

impl Env {
    async fn new(emulator: Emulator) -> Env {
        let url = emulator.url();
        let sdk = support::sdk_config(&url);
        let requests = Arc::new(Requests::default());
        let raw = Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .interceptor(Counter(requests.clone()))
                .build(),
        );
        let buckets = BucketNames {
            source: support::unique("slw-src"),
            artifacts: support::unique("slw-art"),
            hosting: support::unique("slw-host"),
        };
        for name in [&buckets.source, &buckets.artifacts, &buckets.hosting] {
            raw.create_bucket().bucket(name).send().await.unwrap();
        }
        Env {
            emulator,
            raw,
            buckets,
            requests,
            url,
        }
    }

    fn store(&self) -> S3Objects {
        S3Objects::new(self.raw.clone(), self.buckets.clone())
    }

    /// Every multipart upload the adapter started was completed or aborted: none is listed
    /// (moto; s3s-fs lacks ListMultipartUploads), and none has parts stored (both).
    async fn assert_no_open_uploads(&self, bucket: Bucket, key: &str) {
        let name = self.buckets.name_of(bucket);
        if self.emulator == Emulator::Moto {
            let open = self
                .raw
                .list_multipart_uploads()
                .bucket(name)
                .send()
                .await
                .unwrap();
            assert!(open.uploads().is_empty(), "{open:?}");
        }
        let ids = self.requests.upload_ids.lock().unwrap().clone();
        assert!(!ids.is_empty(), "no multipart upload was started");
        for id in ids {
            let parts = self
                .raw
                .list_parts()
                .bucket(name)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
            match parts {
                Ok(out) => assert!(out.parts().is_empty(), "upload {id} kept parts: {out:?}"),
                Err(e) => assert_eq!(
                    aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
                    Some("NoSuchUpload"),
                    "{e:?}"
                ),
            }
        }
    }

    /// An object's bytes as `get` streams them, except on moto, whose GetObject returns a
    /// multipart object's composite CRC32 without S3's `-{parts}` suffix, so the SDK's
    /// response checksum validation rejects it; there 4 MiB ranged reads (which carry no
    /// checksum, as Publish reads) are used.
    async fn read_back(
        &self,
        store: &S3Objects,
        bucket: Bucket,
        key: &str,
    ) -> (ObjectInfo, Vec<u8>) {
        match self.emulator {
            Emulator::S3s => {
                let (info, body) = store.get(bucket, key).await.unwrap().unwrap();
                (info, read_all(body).await)
            }
            Emulator::Moto => {
                let info = store.head(bucket, key).await.unwrap().unwrap();
                let mut bytes = Vec::new();
                while (bytes.len() as u64) < info.size {
                    let at = bytes.len() as u64;
                    let range = at..at + 4 * MIB as u64;
                    let chunk = store.get_range(bucket, key, range).await.unwrap();
                    assert!(!chunk.is_empty(), "object shrank at {at}");
                    bytes.extend_from_slice(&chunk);
                }
                (info, bytes)
            }
        }
    }

    async fn exists_raw(&self, bucket_name: &str, key: &str) -> bool {
        self.raw
            .head_object()
            .bucket(bucket_name)
            .key(key)
            .send()
            .await
            .is_ok()
    }
}

fn html_meta() -> ObjectMeta {
    ObjectMeta {
        content_type: "text/html; charset=utf-8".into(),
        cache_control: Some("public, max-age=0, must-revalidate".into()),
    }
}

fn asset_meta() -> ObjectMeta {
    ObjectMeta {
        content_type: "application/octet-stream".into(),
        cache_control: Some("public, max-age=31536000, immutable".into()),
    }
}

/// Deterministic, non-repeating-looking bytes, so a misplaced part changes the content.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// A stream of `data` in uneven chunks (so chunk and part boundaries do not line up),
/// declaring `len` bytes.
fn stream_of(data: Vec<u8>, len: u64) -> ObjectBody {
    let (tx, chunks) = mpsc::channel(2);
    tokio::spawn(async move {
        let data = Bytes::from(data);
        let mut at = 0;
        let sizes = [700 * 1024, MIB, 333 * 1024 + 7];
        let mut i = 0;
        while at < data.len() {
            let end = (at + sizes[i % sizes.len()]).min(data.len());
            if tx.send(Ok(data.slice(at..end))).await.is_err() {
                return;
            }
            at = end;
            i += 1;
        }
    });
    ObjectBody::Stream { len, chunks }
}

async fn read_all(body: ObjectBody) -> Vec<u8> {
    match body {
        ObjectBody::Bytes(b) => b.to_vec(),
        ObjectBody::Stream { mut chunks, .. } => {
            let mut out = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        }
    }
}

fn keys(infos: &[ObjectInfo]) -> Vec<&str> {
    infos.iter().map(|i| i.key.as_str()).collect()
}

async fn put_many(store: &S3Objects, bucket: Bucket, keys: &[String]) {
    let meta = asset_meta();
    futures::stream::iter(keys)
        .map(|key| {
            store.put(
                bucket,
                key,
                ObjectBody::Bytes(Bytes::from(key.clone())),
                &meta,
            )
        })
        .buffer_unordered(32)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap();
}

// ---- the core behaviours, run against both emulators ----

async fn objects_round_trip_with_their_headers(emulator: Emulator) {
    let env = Env::new(emulator).await;
    let store = env.store();
    let key = "docs/01jd0000000000000000000000/index.html";
    let body = b"<!doctype html><h1>hello</h1>";
    let put = store
        .put(
            Bucket::Hosting,
            key,
            ObjectBody::Bytes(Bytes::from_static(body)),
            &html_meta(),
        )
        .await
        .unwrap();
    assert_eq!(put.size, body.len() as u64);
    assert_eq!(put.meta, html_meta());
    assert!(!put.etag.is_empty() && !put.etag.contains('"'), "{put:?}");

    // It went to the hosting bucket's real name, and only there.
    assert!(env.exists_raw(&env.buckets.hosting, key).await);
    assert!(!env.exists_raw(&env.buckets.source, key).await);

    let head = store.head(Bucket::Hosting, key).await.unwrap().unwrap();
    assert_eq!(head, put, "head reports what put stored");

    let (info, body_stream) = store.get(Bucket::Hosting, key).await.unwrap().unwrap();
    assert_eq!(info, put);
    assert_eq!(read_all(body_stream).await, body);

    let range = |r| store.get_range(Bucket::Hosting, key, r);
    assert_eq!(range(16..20).await.unwrap(), &body[16..20]);
    assert_eq!(range(20..10_000).await.unwrap(), &body[20..], "end clamped");
    assert!(range(body.len() as u64..100).await.unwrap().is_empty());
    assert!(range(1_000..2_000).await.unwrap().is_empty());
    assert!(range(5..5).await.unwrap().is_empty());

    let missing = "docs/01jd0000000000000000000000/nope.html";
    assert!(store
        .head(Bucket::Hosting, missing)
        .await
        .unwrap()
        .is_none());
    assert!(store.get(Bucket::Hosting, missing).await.unwrap().is_none());
    for r in [0..10, 3..3] {
        let err = store
            .get_range(Bucket::Hosting, missing, r)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ObjectStoreError::NotFound { bucket: Bucket::Hosting, key } if key == missing),
            "{err:?}"
        );
    }
    // The object exists in another bucket only.
    assert!(store.get(Bucket::Source, key).await.unwrap().is_none());
}

async fn large_streams_go_up_in_parts(emulator: Emulator) {
    let env = Env::new(emulator).await;
    let store = env.store().with_multipart(MIB as u64, 5 * MIB as u64);
    let data = pattern(12 * MIB + 123);
    let key = "docs/01jd0000000000000000000001/assets/big.bin";
    let put = store
        .put(
            Bucket::Hosting,
            key,
            stream_of(data.clone(), data.len() as u64),
            &asset_meta(),
        )
        .await
        .unwrap();
    assert_eq!(put.size, data.len() as u64);
    // 5 + 5 + 2 MiB: three parts, and S3's multipart ETag says so.
    assert_eq!(env.requests.upload_part.load(Ordering::Relaxed), 3);
    assert!(put.etag.ends_with("-3"), "multipart ETag: {}", put.etag);
    env.assert_no_open_uploads(Bucket::Hosting, key).await;

    let (info, bytes) = env.read_back(&store, Bucket::Hosting, key).await;
    assert_eq!(
        info.meta,
        asset_meta(),
        "headers set at CreateMultipartUpload"
    );
    assert_eq!(info.size, data.len() as u64);
    assert!(bytes == data, "bytes differ after multipart");
    let tail = store
        .get_range(Bucket::Hosting, key, 10 * MIB as u64..20 * MIB as u64)
        .await
        .unwrap();
    assert!(tail == data[10 * MIB..], "ranged read across parts");

    // A stream below the threshold is one PutObject.
    let small = pattern(MIB / 2);
    let put = store
        .put(
            Bucket::Hosting,
            "docs/01jd0000000000000000000001/assets/small.bin",
            stream_of(small.clone(), small.len() as u64),
            &asset_meta(),
        )
        .await
        .unwrap();
    assert!(!put.etag.contains('-'), "single-part ETag: {}", put.etag);
    assert_eq!(env.requests.upload_part.load(Ordering::Relaxed), 3);
}

async fn short_streams_abort_and_leave_nothing(emulator: Emulator) {
    let env = Env::new(emulator).await;
    let store = env.store().with_multipart(MIB as u64, 5 * MIB as u64);
    let key = "builds/docs/01jd0000000000000000000002/output.zip";
    // Six of twelve MiB: one part is uploaded before the stream ends.
    let err = store
        .put(
            Bucket::Artifacts,
            key,
            stream_of(pattern(6 * MIB), 12 * MIB as u64),
            &asset_meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ObjectStoreError::ShortBody { expected, actual } if expected == 12 * MIB as u64 && actual == 6 * MIB as u64),
        "{err:?}"
    );
    assert_eq!(env.requests.upload_part.load(Ordering::Relaxed), 1);
    env.assert_no_open_uploads(Bucket::Artifacts, key).await;
    assert!(store.head(Bucket::Artifacts, key).await.unwrap().is_none());

    // Too long is refused too, as in the local store.
    let err = store
        .put(
            Bucket::Artifacts,
            key,
            stream_of(pattern(7 * MIB), 2 * MIB as u64),
            &asset_meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ObjectStoreError::ShortBody { expected, .. } if expected == 2 * MIB as u64),
        "{err:?}"
    );
    env.assert_no_open_uploads(Bucket::Artifacts, key).await;

    // Below the threshold: nothing is sent at all.
    let err = store
        .put(
            Bucket::Artifacts,
            key,
            stream_of(pattern(100), 1_000),
            &asset_meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ObjectStoreError::ShortBody {
                expected: 1_000,
                actual: 100
            }
        ),
        "{err:?}"
    );
    assert!(store.head(Bucket::Artifacts, key).await.unwrap().is_none());
}

async fn listing_is_key_ordered_prefix_filtered_and_paginated(emulator: Emulator) {
    let env = Env::new(emulator).await;
    let store = env.store().with_list_page_size(7);
    let mut wanted: Vec<String> = (0..25).map(|i| format!("s/1/f{i:02}.css")).collect();
    wanted.push("s/1/a/b.css".into());
    let others = [
        "s/10/x.js",
        "s/2/index.html",
        "t/1/index.html",
        "s/1x/a.css",
    ];
    let all: Vec<String> = wanted
        .iter()
        .cloned()
        .chain(others.iter().map(|k| k.to_string()))
        .collect();
    put_many(&store, Bucket::Hosting, &all).await;

    let before = env.requests.list.load(Ordering::Relaxed);
    let listed = store.list(Bucket::Hosting, "s/1/").await.unwrap();
    assert_eq!(
        env.requests.list.load(Ordering::Relaxed) - before,
        4,
        "26 keys at 7 a page"
    );
    wanted.sort();
    assert_eq!(keys(&listed), wanted);
    let css = listed.iter().find(|i| i.key == "s/1/a/b.css").unwrap();
    assert_eq!(css.size, "s/1/a/b.css".len() as u64);
    let head = store
        .head(Bucket::Hosting, "s/1/a/b.css")
        .await
        .unwrap()
        .unwrap();
    // s3s-fs 0.14.1 lists objects without their ETags.
    if env.emulator == Emulator::Moto {
        assert_eq!(css.etag, head.etag);
    }
    assert_eq!(css.meta, slipway_aws::s3::listed_meta());

    assert_eq!(store.list(Bucket::Hosting, "s/").await.unwrap().len(), 29);
    assert_eq!(store.list(Bucket::Hosting, "").await.unwrap().len(), 30);
    assert!(store
        .list(Bucket::Hosting, "nope/")
        .await
        .unwrap()
        .is_empty());
    assert!(store.list(Bucket::Source, "").await.unwrap().is_empty());
}

async fn deletes_go_in_batches_of_a_thousand(emulator: Emulator) {
    let env = Env::new(emulator).await;
    let store = env.store();
    let doomed: Vec<String> = (0..2_500)
        .map(|i| format!("docs/01jd0000000000000000000003/f/{i:04}.js"))
        .collect();
    put_many(&store, Bucket::Hosting, &doomed).await;
    let kept = "docs/01jd0000000000000000000004/index.html".to_owned();
    put_many(&store, Bucket::Hosting, std::slice::from_ref(&kept)).await;

    // Over 1,000 keys: S3 caps a page at 1,000, so this takes three real pages.
    let before = env.requests.list.load(Ordering::Relaxed);
    let listed = store
        .list(Bucket::Hosting, "docs/01jd0000000000000000000003/")
        .await
        .unwrap();
    assert_eq!(env.requests.list.load(Ordering::Relaxed) - before, 3);
    assert_eq!(
        keys(&listed),
        doomed.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let mut with_missing = doomed.clone();
    with_missing.push("docs/01jd0000000000000000000003/never-existed".into());
    let requests = store.delete_many(Bucket::Hosting, &doomed).await.unwrap();
    assert_eq!(requests, 3);
    assert_eq!(env.requests.delete_objects.load(Ordering::Relaxed), 3);
    assert!(store
        .list(Bucket::Hosting, "docs/01jd0000000000000000000003/")
        .await
        .unwrap()
        .is_empty());
    assert!(store.head(Bucket::Hosting, &kept).await.unwrap().is_some());

    // Missing keys are fine; nothing to delete is no request.
    assert_eq!(
        store
            .delete_many(Bucket::Hosting, &with_missing[2_400..])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.delete_many(Bucket::Hosting, &[]).await.unwrap(), 0);
    assert_eq!(env.requests.delete_objects.load(Ordering::Relaxed), 4);
}

async fn presigned_puts_upload_a_zip(
    emulator: Emulator,
) -> (Env, S3Objects, ObjectLocation, String) {
    let env = Env::new(emulator).await;
    let store = env.store().with_max_upload_bytes(1 << 20);
    let location = ObjectLocation {
        bucket: Bucket::Source,
        key: format!("uploads/docs/{}.zip", support::unique("01jd")),
    };
    let target = store.upload_target(&location).await.unwrap();
    assert_eq!(target.method, "PUT");
    assert_eq!(target.max_bytes, 1 << 20);
    assert_eq!(store.max_bytes(), 1 << 20);
    assert_eq!(
        target.headers.get("content-type").map(String::as_str),
        Some("application/zip")
    );
    assert!(target.url.starts_with(&env.url), "{}", target.url);
    assert!(target.url.contains(&location.key), "{}", target.url);
    assert!(target.url.contains("X-Amz-Expires=900"), "{}", target.url);
    assert!(
        target
            .url
            .contains("X-Amz-SignedHeaders=content-type%3Bhost"),
        "content-type is signed: {}",
        target.url
    );

    let zip = pattern(64 * 1024);
    let response = put_presigned(&target.url, &target.headers, zip.clone()).await;
    assert!(response.status().is_success(), "{response:?}");
    let (info, body) = store
        .get(Bucket::Source, &location.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.meta.content_type, "application/zip");
    assert!(read_all(body).await == zip);
    let url = target.url.clone();
    (env, store, location, url)
}

async fn put_presigned(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().put(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

// ---- moto ----

#[tokio::test]
async fn moto_objects_round_trip_with_their_headers() {
    objects_round_trip_with_their_headers(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_large_streams_go_up_in_parts() {
    large_streams_go_up_in_parts(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_short_streams_abort_and_leave_nothing() {
    short_streams_abort_and_leave_nothing(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_listing_is_key_ordered_prefix_filtered_and_paginated() {
    listing_is_key_ordered_prefix_filtered_and_paginated(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_deletes_go_in_batches_of_a_thousand() {
    deletes_go_in_batches_of_a_thousand(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_presigned_puts_upload_a_zip() {
    presigned_puts_upload_a_zip(Emulator::Moto).await;
}

#[tokio::test]
async fn moto_a_missing_bucket_is_unavailable_not_absent() {
    let env = Env::new(Emulator::Moto).await;
    let mut buckets = env.buckets.clone();
    buckets.hosting = support::unique("slw-missing");
    // The production client constructor, pointed at moto.
    let client = slipway_aws::s3::client(&support::sdk_config(&env.url));
    let store = S3Objects::new(client, buckets);
    let key = "docs/01jd0000000000000000000005/index.html";
    for result in [
        store.get(Bucket::Hosting, key).await.map(|_| ()),
        store.list(Bucket::Hosting, "docs/").await.map(|_| ()),
        store
            .put(
                Bucket::Hosting,
                key,
                ObjectBody::Bytes(Bytes::from_static(b"x")),
                &html_meta(),
            )
            .await
            .map(|_| ()),
        store
            .delete_many(Bucket::Hosting, &[key.to_owned()])
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(ObjectStoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn unsafe_keys_are_refused_before_any_request() {
    // The same rules as the embedded store; no emulator is needed, nothing is sent.
    let sdk = support::sdk_config("http://127.0.0.1:9");
    let store = S3Objects::new(
        slipway_aws::s3::client(&sdk),
        BucketNames {
            source: "s".into(),
            artifacts: "a".into(),
            hosting: "h".into(),
        },
    );
    let long = "k".repeat(1025);
    for key in [
        "",
        "../escape",
        "a/../../b",
        "/abs",
        "a//b",
        "a\\b",
        "a/./b",
        "a\0b",
        &long,
    ] {
        let err = store
            .put(
                Bucket::Hosting,
                key,
                ObjectBody::Bytes(Bytes::new()),
                &html_meta(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ObjectStoreError::InvalidKey(_)),
            "{key:?}: {err:?}"
        );
        let err = store.head(Bucket::Hosting, key).await.unwrap_err();
        assert!(
            matches!(err, ObjectStoreError::InvalidKey(_)),
            "{key:?}: {err:?}"
        );
    }
}

// ---- s3s-fs: the same behaviours with SigV4 verified ----

#[tokio::test]
async fn s3s_objects_round_trip_with_their_headers() {
    objects_round_trip_with_their_headers(Emulator::S3s).await;
}

#[tokio::test]
async fn s3s_large_streams_go_up_in_parts() {
    large_streams_go_up_in_parts(Emulator::S3s).await;
}

#[tokio::test]
async fn s3s_short_streams_abort_and_leave_nothing() {
    short_streams_abort_and_leave_nothing(Emulator::S3s).await;
}

#[tokio::test]
async fn s3s_listing_is_key_ordered_prefix_filtered_and_paginated() {
    listing_is_key_ordered_prefix_filtered_and_paginated(Emulator::S3s).await;
}

#[tokio::test]
async fn s3s_deletes_go_in_batches_of_a_thousand() {
    deletes_go_in_batches_of_a_thousand(Emulator::S3s).await;
}

#[tokio::test]
async fn s3s_presigned_put_is_scoped_to_its_key_and_content_type() {
    let (env, store, location, url) = presigned_puts_upload_a_zip(Emulator::S3s).await;
    let zip_headers = [("content-type".to_owned(), "application/zip".to_owned())].into();

    // The same signature on another key is refused.
    let other_key = format!("uploads/docs/{}.zip", support::unique("01je"));
    let forged = url.replacen(&location.key, &other_key, 1);
    assert_ne!(forged, url);
    let response = put_presigned(&forged, &zip_headers, b"evil".to_vec()).await;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(store
        .head(Bucket::Source, &other_key)
        .await
        .unwrap()
        .is_none());

    // The content type is signed in.
    let html_headers = [("content-type".to_owned(), "text/html".to_owned())].into();
    let response = put_presigned(&url, &html_headers, b"<h1>x</h1>".to_vec()).await;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);

    // An expired URL is refused.
    let short = S3Objects::new(env.raw.clone(), env.buckets.clone())
        .with_presign_expiry(Duration::from_secs(1));
    let target = short.upload_target(&location).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let response = put_presigned(&target.url, &target.headers, b"late".to_vec()).await;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
}
