//! The event this function receives: S3's "Object Created" event for the source bucket, as
//! EventBridge delivers it (the bucket's EventBridge notifications, matched by the stack's
//! rule on prefix and suffix). aws_lambda_events has the EventBridge envelope but no S3
//! detail, so the detail is typed here after
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>.
//!
//! Unlike S3's own event notifications, whose keys are form-URL-encoded (`a b.zip` arrives as
//! `a+b.zip`), EventBridge carries the key as stored: it is used as it is, never decoded.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

pub type ObjectCreatedEvent = EventBridgeEvent<ObjectCreated>;

/// `detail-type` of the events this function handles.
pub const OBJECT_CREATED: &str = "Object Created";
/// `source` of events S3 sends.
pub const S3_SOURCE: &str = "aws.s3";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ObjectCreated {
    pub bucket: BucketDetail,
    pub object: ObjectDetail,
    /// The API call that created the object: `PutObject`, `CompleteMultipartUpload`, ...
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDetail {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ObjectDetail {
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub etag: Option<String>,
    /// Present when the bucket is versioned.
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub sequencer: Option<String>,
}

impl ObjectDetail {
    /// What tells two uploads of the same key apart: the version id in a versioned bucket,
    /// else the ETag, else S3's sequencer for the write.
    pub fn version(&self) -> Option<&str> {
        [&self.version_id, &self.etag, &self.sequencer]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_deserialises_into_the_typed_event() {
        let event: ObjectCreatedEvent =
            serde_json::from_str(include_str!("fixtures/aws-docs-object-created.json")).unwrap();
        assert_eq!(event.detail_type, OBJECT_CREATED);
        assert_eq!(event.source, S3_SOURCE);
        assert_eq!(
            event.time.map(|t| t.timestamp()),
            Some(1_636_675_200) // 2021-11-12T00:00:00Z
        );
        assert_eq!(event.detail.bucket.name, "amzn-s3-demo-bucket1");
        assert_eq!(event.detail.object.key, "example-key");
        assert_eq!(event.detail.object.size, Some(5));
        assert_eq!(event.detail.reason.as_deref(), Some("PutObject"));
        assert_eq!(
            event.detail.object.version(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
        );
    }

    #[test]
    fn keys_arrive_as_stored_and_unversioned_buckets_fall_back_to_the_etag() {
        let drop: ObjectCreatedEvent =
            serde_json::from_str(include_str!("fixtures/site-drop.json")).unwrap();
        assert_eq!(
            drop.detail.object.key,
            "sites/docs/release 2024-05-01T10:00:00+02.zip"
        );
        let upload: ObjectCreatedEvent =
            serde_json::from_str(include_str!("fixtures/api-upload.json")).unwrap();
        assert_eq!(upload.detail.object.version_id, None);
        assert_eq!(
            upload.detail.object.version(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        let mut bare = ObjectDetail {
            key: "sites/docs/a.zip".into(),
            size: None,
            etag: Some("e1".into()),
            version_id: Some(String::new()),
            sequencer: None,
        };
        assert_eq!(bare.version(), Some("e1"));
        bare.etag = None;
        assert_eq!(bare.version(), None);
    }
}
