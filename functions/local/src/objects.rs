//! The embedded object store: one directory per bucket on disk.
//!
//! `{root}/{bucket}/objects/{key}` holds the bytes exactly as uploaded, so the files can be
//! inspected by hand; `{root}/{bucket}/meta/{key}` holds the stored headers and ETag as JSON.
//! An object exists once its meta file exists: writes land the bytes first (temp file and
//! rename), then the meta, so a crash mid-write never exposes a half-written object.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use slipway_core::model::Bucket;
use slipway_core::ports::{
    check_object_key, ObjectBody, ObjectInfo, ObjectMeta, ObjectStore, ObjectStoreError,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Chunk size for streamed reads.
const READ_CHUNK: usize = 256 * 1024;
/// S3's `DeleteObjects` takes at most this many keys; local deletes count requests the same way.
const DELETE_BATCH: usize = 1000;

pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    pub fn new(root: PathBuf) -> io::Result<Self> {
        for bucket in Bucket::ALL {
            std::fs::create_dir_all(root.join(bucket.as_str()).join("objects"))?;
            std::fs::create_dir_all(root.join(bucket.as_str()).join("meta"))?;
        }
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    /// The file that holds an object's bytes (it may not exist).
    pub fn data_path(&self, bucket: Bucket, key: &str) -> Result<PathBuf, ObjectStoreError> {
        Ok(self
            .root
            .join(bucket.as_str())
            .join("objects")
            .join(check_object_key(key)?))
    }

    fn meta_path(&self, bucket: Bucket, key: &str) -> Result<PathBuf, ObjectStoreError> {
        Ok(self
            .root
            .join(bucket.as_str())
            .join("meta")
            .join(check_object_key(key)?))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:016x}", rand::random::<u64>()))
    }

    async fn read_info(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ObjectStoreError> {
        let path = self.meta_path(bucket, key)?;
        match tokio::fs::read(&path).await {
            Ok(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| ObjectStoreError::Unavailable(Box::new(e))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn is_absent(e: &io::Error) -> bool {
    // NotADirectory: a path segment is a file, so the key cannot exist.
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn unavailable(e: io::Error) -> ObjectStoreError {
    ObjectStoreError::Unavailable(Box::new(e))
}

/// Reads `file` in chunks of `chunk` bytes on a task of its own, for an [`ObjectBody::Stream`].
/// The task stops at the end, at a read error (sent on), or when the receiver is dropped.
pub(crate) fn file_chunks(
    mut file: tokio::fs::File,
    chunk: usize,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; chunk];
            match file.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    rx
}

/// Moves `temp` to `dest`, creating `dest`'s folders. A key whose path runs into an
/// existing object (or folder) is an invalid key, as a file cannot also be a folder.
fn write_atomically(temp: &Path, dest: &Path, key: &str) -> Result<(), ObjectStoreError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            if e.kind() == io::ErrorKind::NotADirectory || e.kind() == io::ErrorKind::AlreadyExists
            {
                ObjectStoreError::InvalidKey(key.to_owned())
            } else {
                unavailable(e)
            }
        })?;
    }
    std::fs::rename(temp, dest).map_err(|e| {
        if e.kind() == io::ErrorKind::IsADirectory || e.kind() == io::ErrorKind::DirectoryNotEmpty {
            ObjectStoreError::InvalidKey(key.to_owned())
        } else {
            unavailable(e)
        }
    })
}

/// Where one put writes: the final paths and the temporary files it lands them through.
struct PutPaths {
    data: PathBuf,
    meta: PathBuf,
    data_temp: PathBuf,
    meta_temp: PathBuf,
}

impl PutPaths {
    /// Publishes a complete temporary data file: data first, then the headers that make
    /// the object exist.
    fn commit(&self, info: &ObjectInfo) -> Result<(), ObjectStoreError> {
        write_atomically(&self.data_temp, &self.data, &info.key)?;
        let encoded =
            serde_json::to_vec(info).map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
        std::fs::write(&self.meta_temp, encoded).map_err(unavailable)?;
        write_atomically(&self.meta_temp, &self.meta, &info.key)
    }

    /// Writes a body held in memory and commits it. All on one blocking thread: a site's
    /// many small files each cost one hand-off to the blocking pool, not one per syscall.
    fn write_whole(
        &self,
        key: String,
        bytes: &[u8],
        meta: ObjectMeta,
    ) -> Result<ObjectInfo, ObjectStoreError> {
        std::fs::write(&self.data_temp, bytes).map_err(unavailable)?;
        let info = ObjectInfo {
            key,
            size: bytes.len() as u64,
            etag: etag(Sha256::digest(bytes)),
            meta,
        };
        self.commit(&info)?;
        Ok(info)
    }

    fn remove_temps(&self) {
        let _ = std::fs::remove_file(&self.data_temp);
        let _ = std::fs::remove_file(&self.meta_temp);
    }
}

fn etag(digest: impl AsRef<[u8]>) -> String {
    hex::encode(&digest.as_ref()[..16])
}

fn blocking_failed(e: tokio::task::JoinError) -> ObjectStoreError {
    ObjectStoreError::Unavailable(Box::new(e))
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn put(
        &self,
        bucket: Bucket,
        key: &str,
        body: ObjectBody,
        meta: &ObjectMeta,
    ) -> Result<ObjectInfo, ObjectStoreError> {
        let paths = PutPaths {
            data: self.data_path(bucket, key)?,
            meta: self.meta_path(bucket, key)?,
            data_temp: self.temp_path(),
            meta_temp: self.temp_path(),
        };
        let (key, meta) = (key.to_owned(), meta.clone());
        match body {
            ObjectBody::Bytes(bytes) => tokio::task::spawn_blocking(move || {
                let written = paths.write_whole(key, &bytes, meta);
                if written.is_err() {
                    paths.remove_temps();
                }
                written
            })
            .await
            .map_err(blocking_failed)?,
            ObjectBody::Stream {
                len: expected,
                mut chunks,
            } => {
                let streamed = async {
                    let mut file = tokio::fs::File::create(&paths.data_temp)
                        .await
                        .map_err(unavailable)?;
                    let mut hasher = Sha256::new();
                    let mut written = 0u64;
                    while let Some(chunk) = chunks.recv().await {
                        let chunk = chunk.map_err(unavailable)?;
                        hasher.update(&chunk);
                        file.write_all(&chunk).await.map_err(unavailable)?;
                        written += chunk.len() as u64;
                    }
                    if written != expected {
                        return Err(ObjectStoreError::ShortBody {
                            expected,
                            actual: written,
                        });
                    }
                    file.flush().await.map_err(unavailable)?;
                    Ok(ObjectInfo {
                        key,
                        size: written,
                        etag: etag(hasher.finalize()),
                        meta,
                    })
                }
                .await;
                tokio::task::spawn_blocking(move || {
                    let committed = streamed.and_then(|info| paths.commit(&info).map(|()| info));
                    if committed.is_err() {
                        paths.remove_temps();
                    }
                    committed
                })
                .await
                .map_err(blocking_failed)?
            }
        }
    }

    async fn head(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ObjectStoreError> {
        self.read_info(bucket, key).await
    }

    async fn get_range(
        &self,
        bucket: Bucket,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        let not_found = || ObjectStoreError::NotFound {
            bucket,
            key: key.to_owned(),
        };
        let info = self.read_info(bucket, key).await?.ok_or_else(not_found)?;
        let end = range.end.min(info.size);
        if range.start >= end {
            return Ok(Bytes::new());
        }
        let mut file = tokio::fs::File::open(self.data_path(bucket, key)?)
            .await
            .map_err(|e| {
                if is_absent(&e) {
                    not_found()
                } else {
                    unavailable(e)
                }
            })?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(unavailable)?;
        let mut buf = vec![0u8; (end - range.start) as usize];
        file.read_exact(&mut buf).await.map_err(unavailable)?;
        Ok(Bytes::from(buf))
    }

    async fn get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, ObjectStoreError> {
        let Some(info) = self.read_info(bucket, key).await? else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(self.data_path(bucket, key)?).await {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let len = info.size;
        let chunks = file_chunks(file, READ_CHUNK);
        Ok(Some((info, ObjectBody::Stream { len, chunks })))
    }

    async fn list(
        &self,
        bucket: Bucket,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, ObjectStoreError> {
        let meta_root = self.root.join(bucket.as_str()).join("meta");
        // Walk only the deepest directory the prefix names.
        let dir_part = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let start = if dir_part.is_empty() {
            meta_root.clone()
        } else {
            meta_root.join(check_object_key(dir_part)?)
        };
        let prefix = prefix.to_owned();
        let found =
            tokio::task::spawn_blocking(move || -> Result<Vec<ObjectInfo>, ObjectStoreError> {
                let mut infos = Vec::new();
                for entry in walkdir::WalkDir::new(&start).sort_by_file_name() {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(e) if e.io_error().is_some_and(is_absent) => continue,
                        Err(e) => return Err(ObjectStoreError::Unavailable(Box::new(e))),
                    };
                    if !entry.file_type().is_file() {
                        continue;
                    }
                    let Ok(relative) = entry.path().strip_prefix(&meta_root) else {
                        continue;
                    };
                    let key = relative.to_string_lossy().replace('\\', "/");
                    if !key.starts_with(&prefix) {
                        continue;
                    }
                    let raw = std::fs::read(entry.path()).map_err(unavailable)?;
                    let info: ObjectInfo = serde_json::from_slice(&raw)
                        .map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))?;
                    infos.push(info);
                }
                infos.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(infos)
            })
            .await
            .map_err(|e| ObjectStoreError::Unavailable(Box::new(e)))??;
        Ok(found)
    }

    async fn delete_many(&self, bucket: Bucket, keys: &[String]) -> Result<u64, ObjectStoreError> {
        let mut parents = std::collections::BTreeSet::new();
        for key in keys {
            for path in [self.meta_path(bucket, key)?, self.data_path(bucket, key)?] {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(e) if is_absent(&e) => {}
                    Err(e) => return Err(unavailable(e)),
                }
                if let Some(parent) = path.parent() {
                    parents.insert(parent.to_path_buf());
                }
            }
        }
        // Tidy directories left empty, deepest first; a non-empty one simply stays.
        let stops: Vec<PathBuf> = ["meta", "objects"]
            .iter()
            .map(|tree| self.root.join(bucket.as_str()).join(tree))
            .collect();
        for parent in parents.into_iter().rev() {
            let mut dir = parent.as_path();
            while !stops.iter().any(|stop| stop == dir) && std::fs::remove_dir(dir).is_ok() {
                match dir.parent() {
                    Some(up) => dir = up,
                    None => break,
                }
            }
        }
        Ok(keys.len().div_ceil(DELETE_BATCH) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(content_type: &str) -> ObjectMeta {
        ObjectMeta {
            content_type: content_type.into(),
            cache_control: Some("public, max-age=0, must-revalidate".into()),
        }
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

    #[tokio::test]
    async fn objects_round_trip_with_their_headers_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf()).unwrap();
        let key = "docs/01jd0000000000000000000000/index.html";
        let info = store
            .put(
                Bucket::Hosting,
                key,
                ObjectBody::Bytes(Bytes::from_static(b"<h1>hi</h1>")),
                &meta("text/html"),
            )
            .await
            .unwrap();
        assert_eq!(info.size, 11);

        let reopened = FsObjectStore::new(dir.path().to_path_buf()).unwrap();
        let (got, body) = reopened.get(Bucket::Hosting, key).await.unwrap().unwrap();
        assert_eq!(got.meta.content_type, "text/html");
        assert_eq!(got.etag, info.etag);
        assert_eq!(read_all(body).await, b"<h1>hi</h1>");
        assert_eq!(
            reopened
                .get_range(Bucket::Hosting, key, 4..8)
                .await
                .unwrap(),
            &b"hi</"[..]
        );
        assert_eq!(
            reopened
                .get_range(Bucket::Hosting, key, 8..100)
                .await
                .unwrap(),
            &b"h1>"[..]
        );
        assert!(reopened.get(Bucket::Source, key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn streamed_bodies_must_match_their_declared_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf()).unwrap();
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        drop(tx);
        let err = store
            .put(
                Bucket::Artifacts,
                "a/out.zip",
                ObjectBody::Stream {
                    len: 10,
                    chunks: rx,
                },
                &meta("application/zip"),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ObjectStoreError::ShortBody {
                expected: 10,
                actual: 3
            }
        ));
        assert!(store
            .head(Bucket::Artifacts, "a/out.zip")
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "temp file left behind"
        );
    }

    #[tokio::test]
    async fn unsafe_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf()).unwrap();
        for key in [
            "",
            "../escape",
            "a/../../b",
            "/abs",
            "a//b",
            "a\\b",
            "a/./b",
        ] {
            let err = store
                .put(
                    Bucket::Hosting,
                    key,
                    ObjectBody::Bytes(Bytes::new()),
                    &meta("text/plain"),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, ObjectStoreError::InvalidKey(_)),
                "{key:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn listing_is_by_prefix_and_deleting_tidies_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf()).unwrap();
        for key in [
            "s/1/index.html",
            "s/1/a/b.css",
            "s/2/index.html",
            "s/10/x.js",
            "t/1/index.html",
        ] {
            store
                .put(
                    Bucket::Hosting,
                    key,
                    ObjectBody::Bytes(Bytes::from_static(b"x")),
                    &meta("text/plain"),
                )
                .await
                .unwrap();
        }
        let keys = |infos: Vec<ObjectInfo>| infos.into_iter().map(|i| i.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.list(Bucket::Hosting, "s/1/").await.unwrap()),
            ["s/1/a/b.css", "s/1/index.html"]
        );
        assert_eq!(store.list(Bucket::Hosting, "s/").await.unwrap().len(), 4);
        assert!(store
            .list(Bucket::Hosting, "nope/")
            .await
            .unwrap()
            .is_empty());

        let doomed = keys(store.list(Bucket::Hosting, "s/1/").await.unwrap());
        assert_eq!(
            store.delete_many(Bucket::Hosting, &doomed).await.unwrap(),
            1
        );
        assert!(store
            .list(Bucket::Hosting, "s/1/")
            .await
            .unwrap()
            .is_empty());
        assert!(
            !dir.path().join("hosting/objects/s/1").exists(),
            "empty directories are removed"
        );
        assert_eq!(store.list(Bucket::Hosting, "s/").await.unwrap().len(), 2);
    }
}
