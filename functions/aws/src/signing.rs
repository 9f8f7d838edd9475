//! SigV4 for callers of the control-plane API. On AWS the API is an API Gateway HTTP API
//! whose every route has the `AWS_IAM` authorizer, so each request is signed for
//! `execute-api` with credentials from the standard chain (environment, profiles, SSO,
//! container and instance roles).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use tokio::sync::Mutex;

/// The signing name API Gateway checks.
pub const SERVICE: &str = "execute-api";

/// Credentials that expire sooner than this are fetched again before signing, so a request
/// never goes out with a token that lapses in flight.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The region of an API Gateway default endpoint, `{api-id}.execute-api.{region}.amazonaws.com`
/// (`.amazonaws.com.cn` in China); `None` for any other host, custom domains included.
pub fn execute_api_region(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.split('.').collect();
    let region = match labels[..] {
        [id, "execute-api", region, "amazonaws", "com"]
        | [id, "execute-api", region, "amazonaws", "com", "cn"]
            if is_api_id(id) =>
        {
            region
        }
        _ => return None,
    };
    is_region(region).then_some(region)
}

fn is_api_id(label: &str) -> bool {
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_region(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("no AWS credentials found: run `aws sso login`, pick a profile (--profile or AWS_PROFILE), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    NoCredentials,
    #[error("profile {0} has no AWS credentials: check its name and its entries in ~/.aws/config and ~/.aws/credentials")]
    NoProfileCredentials(String),
    #[error("cannot load AWS credentials{}; if it signs in with SSO, run `aws sso login`", profile_suffix(.profile))]
    Credentials {
        profile: Option<String>,
        #[source]
        source: CredentialsError,
    },
    #[error(
        "no AWS region to sign for: pass --region, set AWS_REGION, or give the profile a region"
    )]
    NoRegion,
    #[error("{0:?} is not an AWS region name")]
    BadRegion(String),
    #[error("the endpoint is an execute-api endpoint in {endpoint}, but the region asked for is {asked}")]
    RegionConflict { endpoint: String, asked: String },
    #[error("cannot sign a request to {0:?}: it is not an absolute URL with a host")]
    Url(String),
    #[error("cannot sign header {0}: its value is not visible ASCII")]
    HeaderValue(String),
    #[error("cannot compute the SigV4 signature")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn profile_suffix(profile: &Option<String>) -> String {
    profile
        .as_ref()
        .map_or_else(String::new, |name| format!(" for profile {name}"))
}

/// Signs control-plane API requests. Credentials are resolved once, when the signer is
/// built, and again only when they are about to expire.
#[derive(Clone)]
pub struct ApiSigner {
    provider: SharedCredentialsProvider,
    profile: Option<String>,
    region: String,
    cached: Arc<Mutex<Credentials>>,
}

impl std::fmt::Debug for ApiSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSigner")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl ApiSigner {
    /// A signer for the API at `host`. A named `profile` is the only source of credentials,
    /// as with `aws --profile`; without one the default chain applies (environment, then
    /// AWS_PROFILE or `default`, then container and instance roles). The region is `region`,
    /// else the one in an execute-api host name, else the chain's (AWS_REGION, the profile).
    pub async fn from_environment(
        profile: Option<&str>,
        region: Option<&str>,
        host: &str,
    ) -> Result<Self, SigningError> {
        let endpoint_region = execute_api_region(host);
        if let Some(asked) = region {
            if !is_region(asked) {
                return Err(SigningError::BadRegion(asked.to_owned()));
            }
            if let Some(endpoint) = endpoint_region.filter(|endpoint| *endpoint != asked) {
                return Err(SigningError::RegionConflict {
                    endpoint: endpoint.to_owned(),
                    asked: asked.to_owned(),
                });
            }
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(name) = profile {
            loader = loader.profile_name(name).credentials_provider(
                ProfileFileCredentialsProvider::builder()
                    .profile_name(name)
                    .build(),
            );
        }
        // A known region skips the chain's lookup, which ends at the instance metadata service.
        if let Some(known) = region.or(endpoint_region) {
            loader = loader.region(Region::new(known.to_owned()));
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or(SigningError::NoRegion)?;
        let provider = config
            .credentials_provider()
            .ok_or(SigningError::NoCredentials)?;
        let profile = profile.map(str::to_owned);
        let credentials = fetch(&provider, &profile).await?;
        tracing::debug!(
            region = %region,
            profile = ?profile,
            access_key = credentials.access_key_id(),
            expires = ?credentials.expiry(),
            "loaded AWS credentials for SigV4"
        );
        Ok(Self {
            provider,
            profile,
            region,
            cached: Arc::new(Mutex::new(credentials)),
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers that sign this request (`authorization`, `x-amz-date` and, for temporary
    /// credentials, `x-amz-security-token`); add them to it unchanged. `url` is the full,
    /// already percent-encoded URL; `headers` are the ones sent with it, every one of which
    /// is signed (except those proxies rewrite, such as `user-agent`); `body` is hashed.
    pub async fn sign(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<HeaderMap, SigningError> {
        let credentials = self.credentials().await?;
        let key = SigningKey {
            credentials: &credentials,
            region: &self.region,
            service: SERVICE,
            time: SystemTime::now(),
        };
        key.sign(method, url, headers, body)
    }

    async fn credentials(&self) -> Result<Credentials, SigningError> {
        let mut cached = self.cached.lock().await;
        let stale = cached
            .expiry()
            .is_some_and(|expiry| expiry <= SystemTime::now() + REFRESH_BEFORE);
        if stale {
            tracing::debug!(profile = ?self.profile, "AWS credentials expire soon; refreshing");
            *cached = fetch(&self.provider, &self.profile).await?;
        }
        Ok(cached.clone())
    }
}

async fn fetch(
    provider: &SharedCredentialsProvider,
    profile: &Option<String>,
) -> Result<Credentials, SigningError> {
    provider.provide_credentials().await.map_err(|source| {
        tracing::debug!(error = ?source, profile = ?profile, "loading AWS credentials failed");
        match (source, profile) {
            // Nothing to load: the provider's own error says no more than these do.
            (CredentialsError::CredentialsNotLoaded(_), Some(profile)) => {
                SigningError::NoProfileCredentials(profile.clone())
            }
            (CredentialsError::CredentialsNotLoaded(_), None) => SigningError::NoCredentials,
            (source, profile) => SigningError::Credentials {
                profile: profile.clone(),
                source,
            },
        }
    })
}

/// Everything a signature depends on besides the request.
struct SigningKey<'a> {
    credentials: &'a Credentials,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
}

impl SigningKey<'_> {
    fn sign(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<HeaderMap, SigningError> {
        // aws-sigv4 derives the host header from the URL and panics when there is none.
        let uri: http::Uri = url.parse().map_err(|_| SigningError::Url(url.to_owned()))?;
        if uri.host().is_none() {
            return Err(SigningError::Url(url.to_owned()));
        }
        let mut pairs = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let value = value
                .to_str()
                .map_err(|_| SigningError::HeaderValue(name.as_str().to_owned()))?;
            pairs.push((name.as_str(), value));
        }
        let identity: Identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigningError::Sign(e.into()))?
            .into();
        let request = SignableRequest::new(
            method.as_str(),
            url,
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SigningError::Sign(e.into()))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| SigningError::Sign(e.into()))?
            .into_parts();
        let (signature_headers, _) = instructions.into_parts();
        let mut signed = HeaderMap::with_capacity(signature_headers.len());
        for header in signature_headers {
            let name = HeaderName::from_bytes(header.name().as_bytes())
                .map_err(|_| SigningError::HeaderValue(header.name().to_owned()))?;
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|_| SigningError::HeaderValue(header.name().to_owned()))?;
            // A signature can be replayed for minutes: keep it out of debug output too.
            value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
            signed.insert(name, value);
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// 2015-08-30T12:36:00Z, the AWS test suite's clock.
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
        const BLOCK: usize = 64;
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner_hash = Sha256::new()
            .chain_update(&inner)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&outer)
            .chain_update(inner_hash)
            .finalize()
            .to_vec()
    }

    /// A request as the SigV4 specification sees it, for paths and queries that need no
    /// encoding and header values that need no trimming.
    struct Reference<'a> {
        region: &'a str,
        service: &'a str,
        method: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
        /// Every signed header, `x-amz-date` (the suite's clock) included.
        headers: &'a [(&'a str, &'a str)],
        body: &'a [u8],
    }

    impl Reference<'_> {
        const AMZ_DATE: &'static str = "20150830T123600Z";

        /// The signature written out from the specification: canonical request, string to
        /// sign, then the HMAC chain from the secret down to the signature.
        fn signature(&self, secret: &str) -> String {
            let mut query: Vec<String> =
                self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            query.sort();
            let mut headers: Vec<(String, &str)> = self
                .headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), *value))
                .collect();
            headers.sort();
            let canonical_headers: String = headers
                .iter()
                .map(|(name, value)| format!("{name}:{value}\n"))
                .collect();
            let signed_headers: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
            let canonical_request = format!(
                "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
                self.method,
                self.path,
                query.join("&"),
                signed_headers.join(";"),
                hex::encode(Sha256::digest(self.body)),
            );
            let date = &Self::AMZ_DATE[..8];
            let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
                Self::AMZ_DATE,
                hex::encode(Sha256::digest(canonical_request.as_bytes()))
            );
            let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
            for part in [self.region, self.service, "aws4_request"] {
                key = hmac(&key, part.as_bytes());
            }
            hex::encode(hmac(&key, string_to_sign.as_bytes()))
        }
    }

    fn authorization_field<'a>(signed: &'a HeaderMap, field: &str) -> &'a str {
        let authorization = signed["authorization"].to_str().unwrap();
        let fields = authorization
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .unwrap_or_else(|| panic!("not SigV4: {authorization}"));
        fields
            .split(", ")
            .find_map(|f| f.strip_prefix(field)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {field} in {authorization}"))
    }

    #[test]
    fn the_reference_computation_reproduces_the_aws_test_suite() {
        // aws-signing-test-suite/v4/get-vanilla: header-signature.txt.
        let signature = Reference {
            region: "us-east-1",
            service: "service",
            method: "GET",
            path: "/",
            query: &[],
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
        }
        .signature(SECRET_KEY);
        assert_eq!(
            signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn signing_matches_the_aws_test_suite_get_vanilla() {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let key = SigningKey {
            credentials: &credentials,
            region: "us-east-1",
            service: "service",
            time: suite_time(),
        };
        let signed = key
            .sign(
                &Method::GET,
                "https://example.amazonaws.com/",
                &HeaderMap::new(),
                b"",
            )
            .unwrap();
        assert_eq!(
            signed["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(signed["x-amz-date"], "20150830T123600Z");
        assert!(!signed.contains_key("x-amz-security-token"));
    }

    #[test]
    fn an_api_call_with_a_session_token_and_a_json_body_matches_the_specification() {
        let credentials = Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            Some("FwoGZXIvYXdzEBYaDEXAMPLETOKEN".to_owned()),
            None,
            "test",
        );
        let key = SigningKey {
            credentials: &credentials,
            region: "eu-west-1",
            service: SERVICE,
            time: suite_time(),
        };
        let host = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
        let body = br#"{"prebuilt":true}"#;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let signed = key
            .sign(
                &Method::POST,
                &format!("https://{host}/sites/docs/deployments?after=3&a=1"),
                &headers,
                body,
            )
            .unwrap();

        let expected = Reference {
            region: "eu-west-1",
            service: "execute-api",
            method: "POST",
            path: "/sites/docs/deployments",
            query: &[("after", "3"), ("a", "1")],
            headers: &[
                ("content-type", "application/json"),
                ("host", host),
                ("x-amz-date", "20150830T123600Z"),
                ("x-amz-security-token", "FwoGZXIvYXdzEBYaDEXAMPLETOKEN"),
            ],
            body,
        }
        .signature(SECRET_KEY);
        assert_eq!(authorization_field(&signed, "Signature"), expected);
        assert_eq!(
            authorization_field(&signed, "Credential"),
            "AKIDEXAMPLE/20150830/eu-west-1/execute-api/aws4_request"
        );
        assert_eq!(
            authorization_field(&signed, "SignedHeaders"),
            "content-type;host;x-amz-date;x-amz-security-token"
        );
        assert_eq!(
            signed["x-amz-security-token"],
            "FwoGZXIvYXdzEBYaDEXAMPLETOKEN"
        );
        assert!(signed["authorization"].is_sensitive());

        // The body is part of the signature: another body, another signature.
        let other = key
            .sign(
                &Method::POST,
                &format!("https://{host}/sites/docs/deployments?after=3&a=1"),
                &headers,
                br#"{"prebuilt":false}"#,
            )
            .unwrap();
        assert_ne!(authorization_field(&other, "Signature"), expected);
    }

    #[test]
    fn a_non_default_port_is_part_of_the_signed_host() {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let key = SigningKey {
            credentials: &credentials,
            region: "us-east-1",
            service: SERVICE,
            time: suite_time(),
        };
        let signed = key
            .sign(
                &Method::GET,
                "http://127.0.0.1:7070/sites",
                &HeaderMap::new(),
                b"",
            )
            .unwrap();
        let expected = Reference {
            region: "us-east-1",
            service: SERVICE,
            method: "GET",
            path: "/sites",
            query: &[],
            headers: &[
                ("host", "127.0.0.1:7070"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
        }
        .signature(SECRET_KEY);
        assert_eq!(authorization_field(&signed, "Signature"), expected);
    }

    #[test]
    fn urls_without_a_host_and_unprintable_headers_are_refused() {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let key = SigningKey {
            credentials: &credentials,
            region: "us-east-1",
            service: SERVICE,
            time: suite_time(),
        };
        let err = key
            .sign(&Method::GET, "/sites", &HeaderMap::new(), b"")
            .unwrap_err();
        assert!(matches!(err, SigningError::Url(_)), "{err:?}");

        let mut headers = HeaderMap::new();
        headers.insert("x-note", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let err = key
            .sign(&Method::GET, "https://example.com/", &headers, b"")
            .unwrap_err();
        assert!(
            matches!(&err, SigningError::HeaderValue(name) if name == "x-note"),
            "{err:?}"
        );
    }

    #[test]
    fn execute_api_hosts_name_their_region() {
        for (host, region) in [
            (
                "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
                Some("us-east-1"),
            ),
            (
                "xyz987.execute-api.ap-southeast-2.amazonaws.com",
                Some("ap-southeast-2"),
            ),
            (
                "a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn",
                Some("cn-north-1"),
            ),
            ("api.example.com", None),
            ("127.0.0.1", None),
            ("execute-api.us-east-1.amazonaws.com", None),
            (
                "a1b2.execute-api.us-east-1.amazonaws.com.evil.example",
                None,
            ),
            ("a1b2.lambda-url.us-east-1.on.aws", None),
            ("a1b2.execute-api..amazonaws.com", None),
            ("a-b.execute-api.us-east-1.amazonaws.com", None),
            ("a1b2.execute-api.US_EAST.amazonaws.com", None),
        ] {
            assert_eq!(execute_api_region(host), region, "{host}");
        }
    }

    #[tokio::test]
    async fn an_explicit_region_must_agree_with_the_endpoints() {
        let err = ApiSigner::from_environment(
            None,
            Some("us-west-2"),
            "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, SigningError::RegionConflict { endpoint, asked } if endpoint == "eu-west-1" && asked == "us-west-2"),
            "{err:?}"
        );
        let err = ApiSigner::from_environment(None, Some("us east"), "api.example.com")
            .await
            .unwrap_err();
        assert!(matches!(err, SigningError::BadRegion(_)), "{err:?}");
    }
}
