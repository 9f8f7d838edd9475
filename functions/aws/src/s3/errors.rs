//! [`S3Error`], the mapping of SDK errors onto the port's errors, and failure logs.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_smithy_types::error::display::DisplayErrorContext;
use slipway_core::ports::{BoxError, ObjectStoreError};

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

pub(super) fn missing(operation: &'static str, field: &'static str) -> ObjectStoreError {
    ObjectStoreError::Unavailable(Box::new(S3Error::MissingField { operation, field }))
}

pub(super) fn is_no_such_key<R>(e: &SdkError<GetObjectError, R>) -> bool {
    matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_)))
}

pub(super) fn status_of<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

pub(super) fn unavailable<E>(e: E) -> ObjectStoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    ObjectStoreError::Unavailable(Box::new(e) as BoxError)
}

pub(super) fn log_failure(operation: &str, bucket: &str, key: &str, e: &ObjectStoreError) {
    match e {
        ObjectStoreError::Unavailable(source) => {
            tracing::error!(operation, bucket, key, error = %DisplayErrorContext(source.as_ref()), "S3 request failed");
        }
        other => {
            tracing::warn!(operation, bucket, key, error = %other, "S3 object operation refused")
        }
    }
}
