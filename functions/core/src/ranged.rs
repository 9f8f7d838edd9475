//! A blocking `Read + Seek` view of an object, fetched in ranged reads, so a zip's central
//! directory and entries can be read where the object lives without downloading it whole.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;

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
        })
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if self.position < self.buffer_start || self.position >= buffer_end {
            let end = (self.position + self.chunk).min(self.size);
            let range = self.position..end;
            let fetched = self
                .runtime
                .block_on(self.objects.get_range(self.bucket, &self.key, range))
                .map_err(io::Error::other)?;
            if fetched.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shrank while reading",
                ));
            }
            self.buffer = fetched;
            self.buffer_start = self.position;
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
