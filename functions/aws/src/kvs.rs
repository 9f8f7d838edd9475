//! The edge's routing table on CloudFront KeyValueStore (the data-plane API).
//!
//! Every write names the store version it was based on (`IfMatch` = the ETag from
//! DescribeKeyValueStore). When another writer got in between, the service answers
//! `ConflictException`; we re-read the version and try again, a bounded number of times.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudfrontkeyvaluestore::config::endpoint::{
    DefaultResolver, EndpointFuture, Params, ResolveEndpoint,
};
use aws_sdk_cloudfrontkeyvaluestore::operation::get_key::GetKeyError;
use aws_sdk_cloudfrontkeyvaluestore::operation::put_key::PutKeyError;
use aws_sdk_cloudfrontkeyvaluestore::Client;
use slipway_core::ports::{KeyValueStore, KvsError, MAX_KVS_VALUE};

/// Re-reads of the version after a `ConflictException` before a write gives up.
pub const DEFAULT_MAX_CONFLICT_RETRIES: u32 = 5;
/// The pause before retry `n` is `n` times this: long enough for a competing writer's
/// next write to land, short against a deploy.
const CONFLICT_BACKOFF: Duration = Duration::from_millis(20);

/// A KeyValueStore ARN: `arn:{partition}:cloudfront::{account}:key-value-store/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvsArn(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a CloudFront KeyValueStore ARN (arn:aws:cloudfront::<account>:key-value-store/<id>)")]
pub struct InvalidKvsArn(String);

impl KvsArn {
    pub fn parse(arn: &str) -> Result<Self, InvalidKvsArn> {
        let invalid = || InvalidKvsArn(arn.to_owned());
        let parts: Vec<&str> = arn.split(':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid());
        };
        let id = resource
            .strip_prefix("key-value-store/")
            .ok_or_else(invalid)?;
        let valid = prefix == "arn"
            && !partition.is_empty()
            && service == "cloudfront"
            && region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(arn.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KvsArn {
    type Err = InvalidKvsArn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for KvsArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client for the real service: the default resolver sends it to
/// `{account}.cloudfront-kvs.global.api.aws`, signed with SigV4A.
pub fn client(sdk: &SdkConfig) -> Client {
    Client::new(sdk)
}

/// A client that sends every request to `endpoint` (a local data-plane server) yet signs
/// exactly as for the real service. A plain endpoint override does not do: the SDK's rules
/// put the account id in front of the override's host. So this resolver asks the default
/// rules for the endpoint (and its `sigv4a` auth scheme with `signingRegionSet: ["*"]`)
/// and swaps in the override URL.
pub fn client_for_endpoint(sdk: &SdkConfig, endpoint: &str) -> Client {
    let config = aws_sdk_cloudfrontkeyvaluestore::config::Builder::from(sdk)
        .endpoint_resolver(FixedUrl {
            url: endpoint.to_owned(),
            rules: DefaultResolver::new(),
        })
        .build();
    Client::from_conf(config)
}

#[derive(Debug)]
struct FixedUrl {
    url: String,
    rules: DefaultResolver,
}

impl ResolveEndpoint for FixedUrl {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::new(async move {
            if self.url.is_empty() {
                return Err("the KVS endpoint override is empty".into());
            }
            let resolved = ResolveEndpoint::resolve_endpoint(&self.rules, params).await?;
            Ok(resolved.into_builder().url(self.url.clone()).build())
        })
    }
}

/// [`KeyValueStore`] on one CloudFront KeyValueStore.
#[derive(Debug, Clone)]
pub struct CloudFrontKvs {
    client: Client,
    kvs_arn: KvsArn,
    max_conflict_retries: u32,
}

enum Write<'a> {
    Put(&'a str),
    Delete,
}

impl Write<'_> {
    fn name(&self) -> &'static str {
        match self {
            Write::Put(_) => "PutKey",
            Write::Delete => "DeleteKey",
        }
    }
}

/// How one conditional write ended, short of success.
enum Failed {
    /// The version moved since we read it.
    Stale,
    Other(KvsError),
}

impl CloudFrontKvs {
    pub fn new(client: Client, kvs_arn: KvsArn) -> Self {
        Self {
            client,
            kvs_arn,
            max_conflict_retries: DEFAULT_MAX_CONFLICT_RETRIES,
        }
    }

    pub fn with_max_conflict_retries(mut self, retries: u32) -> Self {
        self.max_conflict_retries = retries;
        self
    }

    async fn current_etag(&self) -> Result<String, KvsError> {
        let described = self
            .client
            .describe_key_value_store()
            .kvs_arn(self.kvs_arn.as_str())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(described.e_tag().to_owned())
    }

    async fn try_write(&self, key: &str, write: &Write<'_>, etag: String) -> Result<(), Failed> {
        match write {
            Write::Put(value) => {
                let sent = self
                    .client
                    .put_key()
                    .kvs_arn(self.kvs_arn.as_str())
                    .key(key)
                    .value(*value)
                    .if_match(etag)
                    .send()
                    .await;
                match sent {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(PutKeyError::is_conflict_exception) =>
                    {
                        Err(Failed::Stale)
                    }
                    Err(e) => Err(Failed::Other(unavailable(e))),
                }
            }
            Write::Delete => {
                let sent = self
                    .client
                    .delete_key()
                    .kvs_arn(self.kvs_arn.as_str())
                    .key(key)
                    .if_match(etag)
                    .send()
                    .await;
                match sent {
                    Ok(_) => Ok(()),
                    Err(e) => match e.as_service_error() {
                        Some(se) if se.is_conflict_exception() => Err(Failed::Stale),
                        // The store answered Describe just now, so this is the key: already gone.
                        Some(se) if se.is_resource_not_found_exception() => Ok(()),
                        _ => Err(Failed::Other(unavailable(e))),
                    },
                }
            }
        }
    }

    async fn write(&self, key: &str, write: Write<'_>) -> Result<(), KvsError> {
        let attempts = self.max_conflict_retries.saturating_add(1);
        for attempt in 1..=attempts {
            let etag = self.current_etag().await?;
            match self.try_write(key, &write, etag).await {
                Ok(()) => {
                    tracing::debug!(key, attempt, operation = write.name(), "kvs write applied");
                    return Ok(());
                }
                Err(Failed::Other(e)) => return Err(e),
                Err(Failed::Stale) => {
                    tracing::warn!(
                        key,
                        attempt,
                        attempts,
                        operation = write.name(),
                        "kvs version changed under the write; re-reading it"
                    );
                    if attempt < attempts {
                        tokio::time::sleep(CONFLICT_BACKOFF * attempt).await;
                    }
                }
            }
        }
        Err(KvsError::Conflict {
            key: key.to_owned(),
            attempts,
        })
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> KvsError {
    KvsError::Unavailable(Box::new(e))
}

#[async_trait]
impl KeyValueStore for CloudFrontKvs {
    async fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        let got = self
            .client
            .get_key()
            .kvs_arn(self.kvs_arn.as_str())
            .key(key)
            .send()
            .await;
        match got {
            Ok(out) => Ok(Some(out.value().to_owned())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetKeyError::is_resource_not_found_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), KvsError> {
        if value.len() > MAX_KVS_VALUE {
            return Err(KvsError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
            });
        }
        self.write(key, Write::Put(value)).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvsError> {
        self.write(key, Write::Delete).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Document;

    const ARN: &str =
        "arn:aws:cloudfront::123456789012:key-value-store/37aa5a4e-0e1f-4b1c-9b6a-2f0a4f6b7c11";

    #[test]
    fn parses_kvs_arns() {
        assert_eq!(KvsArn::parse(ARN).unwrap().as_str(), ARN);
        for bad in [
            "",
            "not-an-arn",
            "arn:aws:cloudfront::123456789012:distribution/E123",
            "arn:aws:cloudfront:us-east-1:123456789012:key-value-store/abc",
            "arn:aws:s3::123456789012:key-value-store/abc",
            "arn:aws:cloudfront::1234:key-value-store/abc",
            "arn:aws:cloudfront::123456789012:key-value-store/",
            "arn:aws:cloudfront::123456789012:key-value-store/a/b",
        ] {
            assert!(KvsArn::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[tokio::test]
    async fn the_endpoint_hook_keeps_sigv4a_and_drops_the_account_prefix() {
        let resolver = FixedUrl {
            url: "http://127.0.0.1:4567".to_owned(),
            rules: DefaultResolver::new(),
        };
        let params = Params::builder()
            .kvs_arn(ARN)
            .region("us-east-1")
            .endpoint("http://127.0.0.1:4567")
            .build()
            .unwrap();
        let default = ResolveEndpoint::resolve_endpoint(&resolver.rules, &params)
            .await
            .unwrap();
        assert_eq!(default.url(), "http://123456789012.127.0.0.1:4567");

        let endpoint = resolver.resolve_endpoint(&params).await.unwrap();
        assert_eq!(endpoint.url(), "http://127.0.0.1:4567");
        let [scheme] = endpoint.auth_schemes() else {
            panic!("one auth scheme expected: {endpoint:?}");
        };
        assert_eq!(scheme.name(), "sigv4a");
        assert_eq!(
            scheme.get("signingRegionSet"),
            Some(&Document::Array(vec![Document::String("*".into())]))
        );
        assert_eq!(
            scheme.get("signingName"),
            Some(&Document::String("cloudfront-keyvaluestore".into()))
        );
    }
}
