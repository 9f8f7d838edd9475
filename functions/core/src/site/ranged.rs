//! A blocking `Read + Seek` view of an object, fetched in ranged reads, so a zip's central
//! directory and entries can be read where the object lives without downloading it whole.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::model::Bucket;
use crate::ports::{ObjectStore, ObjectStoreError};

/// Reads the object in chunks of `chunk` bytes (chunk `i` is the range from `i * chunk`) and
/// serves smaller reads from the current one.
/// Use it only off the async workers (inside `spawn_blocking`): each fetch blocks on the runtime.
pub struct RangedReader {
    objects: Arc<dyn ObjectStore>,
    runtime: Handle,
    bucket: Bucket,
    key: String,
    size: u64,
    position: u64,
    /// The chunk reads are served from, once one is loaded.
    buffer: Bytes,
    buffer_index: Option<u64>,
    chunk: u64,
    /// Chunks kept requested past the current one (0: none).
    read_ahead: usize,
    /// Other chunks, requested or fetched, by index: a reader going forward rarely waits for
    /// a round trip, and several ranges download at once.
    cached: BTreeMap<u64, Cached>,
    /// What [`Self::prefetching`] asked for (start, chunks), until the first read.
    prefetch: Option<(u64, usize)>,
}

/// Chunks kept when the reader goes backwards: a zip's last chunk and the one its directory
/// starts in.
const KEPT: usize = 2;

struct Cached {
    fetch: Fetch,
    hold: Hold,
}

/// Why a chunk other than the current one is held, which decides when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Requested by [`RangedReader::prefetching`]: until read, wherever the reader goes.
    Prefetched,
    /// Left by a reader going backwards, for when it comes back: until the reader passes it,
    /// and only the nearest [`KEPT`].
    Kept,
    /// In the read-ahead window: until the reader moves the window past it.
    Ahead,
}

enum Fetch {
    InFlight(JoinHandle<Result<Bytes, ObjectStoreError>>),
    Ready(Bytes),
}

impl Cached {
    fn discard(self) {
        if let Fetch::InFlight(fetch) = self.fetch {
            fetch.abort();
        }
    }
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
            buffer_index: None,
            chunk: chunk.max(4096),
            read_ahead: 0,
            cached: BTreeMap::new(),
            prefetch: None,
        })
    }

    /// Keeps the `chunks` after the current one requested while the caller reads it: for
    /// readers that go forward through the object (at most `chunks` more chunks of memory).
    /// Chunks the reader skips over are dropped.
    pub fn with_read_ahead(mut self, chunks: usize) -> Self {
        self.read_ahead = chunks;
        self
    }

    /// Requests `chunks` chunks from `start` together with the first read, and keeps them until
    /// they are read: for a caller that reads elsewhere first and then goes forward from
    /// `start`, as a zip is read (its directory at the end, then its entries from the start),
    /// so the second round trip overlaps the first. The first read's own request goes out first.
    pub fn prefetching(mut self, start: u64, chunks: usize) -> Self {
        self.prefetch = Some((start, chunks));
        self
    }

    fn spawn_fetch(&self, index: u64) -> JoinHandle<Result<Bytes, ObjectStoreError>> {
        let objects = self.objects.clone();
        let (bucket, key) = (self.bucket, self.key.clone());
        let start = index * self.chunk;
        let range = start..(start + self.chunk).min(self.size);
        self.runtime
            .spawn(async move { objects.get_range(bucket, &key, range).await })
    }

    /// Makes chunk `index` the current one: from the cache if it was requested, else fetched
    /// now. Then drops what is no longer held and tops up the read-ahead.
    fn load(&mut self, index: u64) -> io::Result<()> {
        let fetch = match self.cached.remove(&index) {
            Some(cached) => cached.fetch,
            None => Fetch::InFlight(self.spawn_fetch(index)),
        };
        if let Some((start, chunks)) = self.prefetch.take() {
            let first = start / self.chunk;
            for ahead in first..first + chunks as u64 {
                if ahead != index {
                    self.request(ahead, Hold::Prefetched);
                }
            }
        }
        let fetched = match fetch {
            Fetch::Ready(bytes) => bytes,
            Fetch::InFlight(fetch) => self
                .runtime
                .block_on(fetch)
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?,
        };
        let previous = std::mem::replace(&mut self.buffer, fetched);
        // A chunk the reader leaves going backwards is kept for when it gets there (a zip's
        // directory shares its chunk with the last entries).
        if let Some(ahead) = self.buffer_index.filter(|&previous| previous > index) {
            let cached = Cached {
                fetch: Fetch::Ready(previous),
                hold: Hold::Kept,
            };
            self.cached.insert(ahead, cached);
        }
        self.buffer_index = Some(index);

        // Memory stays bounded in whatever order the reader goes: a reader going backwards
        // would otherwise pile up chunks, one going forward leaves skipped ones behind.
        let window = index + 1..=index + self.read_ahead as u64;
        let mut kept_ahead = 0;
        let dropped: Vec<u64> = self
            .cached
            .iter()
            .filter(|&(&i, cached)| match cached.hold {
                Hold::Prefetched => false,
                Hold::Ahead => !window.contains(&i),
                Hold::Kept if i < index => true,
                Hold::Kept => {
                    kept_ahead += 1;
                    kept_ahead > KEPT
                }
            })
            .map(|(&dropped, _)| dropped)
            .collect();
        for dropped in dropped {
            if let Some(cached) = self.cached.remove(&dropped) {
                cached.discard();
            }
        }
        for ahead in window {
            self.request(ahead, Hold::Ahead);
        }
        Ok(())
    }

    /// Requests chunk `index` unless it is past the end or requested already.
    fn request(&mut self, index: u64, hold: Hold) {
        if index * self.chunk < self.size && !self.cached.contains_key(&index) {
            let fetch = Fetch::InFlight(self.spawn_fetch(index));
            self.cached.insert(index, Cached { fetch, hold });
        }
    }
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        for (_, cached) in std::mem::take(&mut self.cached) {
            cached.discard();
        }
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let index = self.position / self.chunk;
        if self.buffer_index != Some(index) {
            self.load(index)?;
        }
        let offset = usize::try_from(self.position - index * self.chunk).unwrap_or(usize::MAX);
        let Some(available) = self.buffer.get(offset..).filter(|a| !a.is_empty()) else {
            // A chunk shorter than asked for: the object shrank since it was opened.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "object shrank while reading",
            ));
        };
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
        /// What HEAD reports when the reader opens the object.
        bytes: Bytes,
        /// What ranges are read from (the same, unless a test replaces the object).
        served: Mutex<Bytes>,
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
            let served = self.served.lock().unwrap().clone();
            let end = range.end.min(served.len() as u64) as usize;
            Ok(served.slice((range.start as usize).min(end)..end))
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
        let bytes: Bytes = (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        Arc::new(Recorded {
            served: Mutex::new(bytes.clone()),
            bytes,
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
    async fn a_zip_read_fetches_each_chunk_once_with_the_start_requested_up_front() {
        let store = object(40_000);
        let objects: Arc<dyn ObjectStore> = store.clone();
        let mut reader = RangedReader::open(objects, Bucket::Artifacts, "a.zip", 4096)
            .await
            .unwrap()
            .with_read_ahead(2)
            .prefetching(0, 2);
        let expected = store.bytes.clone();
        tokio::task::spawn_blocking(move || {
            // The directory at the end, then the entries from the start, as a zip is read.
            let mut tail = [0u8; 300];
            reader.seek(SeekFrom::End(-300)).unwrap();
            reader.read_exact(&mut tail).unwrap();
            // The start was requested with the first read.
            assert_eq!(asked_once(&store, 3), [0..4096, 4096..8192, 36_864..40_000]);
            reader.seek(SeekFrom::Start(35_000)).unwrap();
            reader.read_exact(&mut tail).unwrap();
            assert_eq!(tail, expected[35_000..35_300]);
            reader.seek(SeekFrom::Start(0)).unwrap();
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            assert_eq!(all, expected);
            // Each chunk once: the prefetched start was kept through the reads at the end,
            // and the last chunk, read for the directory, was not fetched again.
            let starts: Vec<u64> = asked_once(&store, 10).iter().map(|r| r.start).collect();
            assert_eq!(starts, (0..40_000).step_by(4096).collect::<Vec<u64>>());
            assert_eq!(store.asked.lock().unwrap().len(), 10);
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_backwards_holds_no_more_than_the_window_and_the_kept_chunks() {
        let store = object(100 * 4096);
        let mut reader = reader(&store, 3).await;
        let expected = store.bytes.clone();
        tokio::task::spawn_blocking(move || {
            // A zip whose directory lists its entries last to first is read this way.
            for chunk in (0..100usize).rev() {
                let at = chunk * 4096 + 7;
                reader.seek(SeekFrom::Start(at as u64)).unwrap();
                let mut byte = [0u8; 1];
                reader.read_exact(&mut byte).unwrap();
                assert_eq!(byte[0], expected[at]);
                assert!(
                    reader.cached.len() <= 3 + KEPT,
                    "{} chunks held at chunk {chunk}",
                    reader.cached.len()
                );
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_that_shrank_after_it_was_opened_is_an_error_not_a_panic() {
        let store = object(10_000);
        let mut reader = reader(&store, 2).await;
        // Replaced by a shorter object between the HEAD and the reads.
        let shorter = store.bytes.slice(..5_000);
        *store.served.lock().unwrap() = shorter;
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let error = reader.read_to_end(&mut all).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            // What is still there is read; the first missing byte is the error.
            assert_eq!(all.len(), 5_000);
            assert!(all == store.bytes[..5_000]);
            // A seek into what is gone fails the same way.
            reader.seek(SeekFrom::Start(9_000)).unwrap();
            let error = reader.read(&mut [0u8; 10]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
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
