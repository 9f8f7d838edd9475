//! A blocking `Read + Seek` view of an object, fetched in ranged reads, so a zip's central
//! directory and entries can be read where the object lives without downloading it whole.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::ports::{Bucket, ObjectStore, ObjectStoreError};

/// Reads `chunk` bytes per request and serves smaller reads from that buffer.
/// Use it only off the async workers (inside `spawn_blocking`): each fetch blocks on the runtime.
pub struct RangedReader {
    objects: Arc<dyn ObjectStore>,
    runtime: Handle,
    bucket: Bucket,
    key: String,
    size: u64,
    position: u64,
    buffer: Bytes,
    buffer_start: u64,
    chunk: u64,
    /// Chunks kept requested past the buffer (0: none).
    read_ahead: usize,
    /// The chunks after the buffer, already requested, in order: a reader going forward
    /// rarely waits for a round trip, and several ranges download at once.
    pending: VecDeque<Pending>,
}

struct Pending {
    start: u64,
    fetch: JoinHandle<Result<Bytes, ObjectStoreError>>,
}

impl RangedReader {
    pub const DEFAULT_CHUNK: u64 = 1024 * 1024;

    pub async fn open(
        objects: Arc<dyn ObjectStore>,
        bucket: Bucket,
        key: &str,
        chunk: u64,
    ) -> Result<Self, ObjectStoreError> {
        let info = objects
            .head(bucket, key)
            .await?
            .ok_or_else(|| ObjectStoreError::NotFound {
                bucket,
                key: key.to_owned(),
            })?;
        Ok(Self {
            objects,
            runtime: Handle::current(),
            bucket,
            key: key.to_owned(),
            size: info.size,
            position: 0,
            buffer: Bytes::new(),
            buffer_start: 0,
            chunk: chunk.max(4096),
            read_ahead: 0,
            pending: VecDeque::new(),
        })
    }

    /// Keeps the `chunks` after the buffer requested while the caller reads it: for readers
    /// that go forward through the object (at most `chunks` more chunks of memory). A seek
    /// elsewhere drops them and fetches on demand.
    pub fn with_read_ahead(mut self, chunks: usize) -> Self {
        self.read_ahead = chunks;
        self
    }

    fn spawn_fetch(&self, start: u64) -> Pending {
        let objects = self.objects.clone();
        let (bucket, key) = (self.bucket, self.key.clone());
        let range = start..(start + self.chunk).min(self.size);
        let fetch = self
            .runtime
            .spawn(async move { objects.get_range(bucket, &key, range).await });
        Pending { start, fetch }
    }

    fn drop_pending(&mut self) {
        for stale in self.pending.drain(..) {
            stale.fetch.abort();
        }
    }

    /// The bytes from `start`: from a chunk read ahead if one holds them, else fetched now.
    fn fetch(&mut self, start: u64) -> io::Result<Bytes> {
        // Chunks that end before `start` were skipped over.
        while let Some(skipped) = self.pending.pop_front_if(|p| p.start + self.chunk <= start) {
            skipped.fetch.abort();
        }
        let (pending, skip) = match self.pending.pop_front_if(|p| p.start <= start) {
            Some(pending) => {
                let skip = start - pending.start;
                (pending, skip)
            }
            None => {
                self.drop_pending();
                (self.spawn_fetch(start), 0)
            }
        };
        let fetched = self
            .runtime
            .block_on(pending.fetch)
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        // `skip` < chunk; a shorter answer means the object shrank, which `read` reports.
        Ok(fetched.slice(
            usize::try_from(skip)
                .unwrap_or(usize::MAX)
                .min(fetched.len())..,
        ))
    }
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        self.drop_pending();
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if self.position < self.buffer_start || self.position >= buffer_end {
            let fetched = self.fetch(self.position)?;
            if fetched.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shrank while reading",
                ));
            }
            self.buffer = fetched;
            self.buffer_start = self.position;
            let mut next = self
                .pending
                .back()
                .map_or(self.buffer_start + self.buffer.len() as u64, |last| {
                    last.start + self.chunk
                });
            while self.pending.len() < self.read_ahead && next < self.size {
                let ahead = self.spawn_fetch(next);
                self.pending.push_back(ahead);
                next += self.chunk;
            }
        }
        let offset = (self.position - self.buffer_start) as usize;
        let available = &self.buffer[offset..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::{ObjectBody, ObjectInfo, ObjectMeta};

    /// One object in memory that records every range asked of it.
    struct Recorded {
        bytes: Bytes,
        asked: Mutex<Vec<Range>>,
    }

    type Range = std::ops::Range<u64>;

    #[async_trait]
    impl ObjectStore for Recorded {
        async fn put(
            &self,
            _: Bucket,
            _: &str,
            _: ObjectBody,
            _: &ObjectMeta,
        ) -> Result<ObjectInfo, ObjectStoreError> {
            unreachable!("the reader only reads")
        }

        async fn head(&self, _: Bucket, key: &str) -> Result<Option<ObjectInfo>, ObjectStoreError> {
            Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: self.bytes.len() as u64,
                etag: String::new(),
                meta: ObjectMeta {
                    content_type: String::new(),
                    cache_control: None,
                },
            }))
        }

        async fn get_range(
            &self,
            _: Bucket,
            _: &str,
            range: Range,
        ) -> Result<Bytes, ObjectStoreError> {
            self.asked.lock().unwrap().push(range.clone());
            let end = range.end.min(self.bytes.len() as u64) as usize;
            Ok(self.bytes.slice((range.start as usize).min(end)..end))
        }

        async fn get(
            &self,
            _: Bucket,
            _: &str,
        ) -> Result<Option<(ObjectInfo, ObjectBody)>, ObjectStoreError> {
            unreachable!("the reader reads ranges")
        }

        async fn list(&self, _: Bucket, _: &str) -> Result<Vec<ObjectInfo>, ObjectStoreError> {
            unreachable!("the reader reads ranges")
        }

        async fn delete_many(&self, _: Bucket, _: &[String]) -> Result<u64, ObjectStoreError> {
            unreachable!("the reader only reads")
        }
    }

    fn object(len: usize) -> Arc<Recorded> {
        Arc::new(Recorded {
            bytes: (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into(),
            asked: Mutex::new(Vec::new()),
        })
    }

    async fn reader(store: &Arc<Recorded>, read_ahead: usize) -> RangedReader {
        let objects: Arc<dyn ObjectStore> = store.clone();
        RangedReader::open(objects, Bucket::Artifacts, "a.zip", 4096)
            .await
            .unwrap()
            .with_read_ahead(read_ahead)
    }

    /// Waits (up to 5 s) until `store` has been asked for `n` ranges, and returns them in
    /// order (fetches run side by side, so they may arrive in any order).
    fn asked_once(store: &Recorded, n: usize) -> Vec<Range> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.asked.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut asked = store.asked.lock().unwrap().clone();
        asked.sort_by_key(|range| range.start);
        asked
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_ahead_fetches_the_next_chunk_before_it_is_read() {
        let store = object(10_000);
        let mut reader = reader(&store, 1).await;
        let asked = tokio::task::spawn_blocking(move || {
            let mut first = [0u8; 100];
            reader.read_exact(&mut first).unwrap();
            // The second chunk is on its way while the first is still being read.
            let asked_early = asked_once(&store, 2);
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            let mut all = first.to_vec();
            all.extend(rest);
            assert_eq!(all, store.bytes.to_vec());
            (asked_early, store.asked.lock().unwrap().clone())
        })
        .await
        .unwrap();
        assert_eq!(asked.0, [0..4096, 4096..8192]);
        // Every byte was fetched once.
        assert_eq!(asked.1, [0..4096, 4096..8192, 8192..10_000]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_chunks_ahead_are_requested_at_once_and_kept_topped_up() {
        let store = object(30_000);
        let mut reader = reader(&store, 3).await;
        let expected = store.bytes.clone();
        tokio::task::spawn_blocking(move || {
            let mut first = [0u8; 10];
            reader.read_exact(&mut first).unwrap();
            assert_eq!(
                asked_once(&store, 4),
                [0..4096, 4096..8192, 8192..12_288, 12_288..16_384]
            );
            // Into the second chunk: one more is requested, three stay ahead.
            reader.seek(SeekFrom::Start(5000)).unwrap();
            reader.read_exact(&mut first).unwrap();
            assert_eq!(asked_once(&store, 5)[4], 16_384..20_480);
            assert_eq!(store.asked.lock().unwrap().len(), 5);
            // Past a chunk read ahead but never read: it is skipped, not fetched again.
            reader.seek(SeekFrom::Start(13_000)).unwrap();
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, expected[13_000..]);
            // Every chunk was fetched exactly once, the one skipped over included.
            let starts: Vec<u64> = asked_once(&store, 8).iter().map(|r| r.start).collect();
            assert_eq!(starts, (0..30_000).step_by(4096).collect::<Vec<u64>>());
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeks_read_the_right_bytes_with_and_without_reading_ahead() {
        for read_ahead in [0, 1, 3] {
            let store = object(20_000);
            let mut reader = reader(&store, read_ahead).await;
            let expected = store.bytes.clone();
            tokio::task::spawn_blocking(move || {
                // The tail (a zip's directory), then forward with small gaps, then back.
                for (at, len) in [
                    (19_900, 100),
                    (0, 10),
                    (4_000, 200),
                    (4_300, 5_000),
                    (100, 50),
                ] {
                    reader.seek(SeekFrom::Start(at)).unwrap();
                    let mut buf = vec![0u8; len];
                    reader.read_exact(&mut buf).unwrap();
                    let at = at as usize;
                    assert_eq!(
                        buf,
                        expected[at..at + len],
                        "{at} (read ahead: {read_ahead})"
                    );
                }
            })
            .await
            .unwrap();
        }
    }
}
