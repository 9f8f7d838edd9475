//! Streamed object bodies: a GetObject body fed to the port's chunk channel, and a short
//! stream read whole for a single PutObject.

use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};
use slipway_core::ports::ObjectStoreError;
use tokio::sync::mpsc;

use super::usize_of;

/// Chunks buffered between a streaming GetObject and its reader.
const GET_CHANNEL_DEPTH: usize = 4;

/// Forwards `body` to the returned channel from a spawned task; a body that ends short of
/// `len` bytes ends with an `UnexpectedEof` error, so the reader never takes it as whole.
pub(super) fn stream_body(
    mut body: ByteStream,
    len: u64,
    bucket: &str,
    key: &str,
) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(GET_CHANNEL_DEPTH);
    let (bucket_name, key_owned) = (bucket.to_owned(), key.to_owned());
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
    rx
}

/// Reads a short stream whole, checking it has exactly `len` bytes.
pub(super) async fn collect(
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
