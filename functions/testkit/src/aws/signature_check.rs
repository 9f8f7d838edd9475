//! Checking SigV4 and SigV4A signatures the way an AWS front door does, for test servers:
//! parse `Authorization`, check the credential scope, the session token and the clock, then
//! recompute the signature over what actually arrived and compare.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SigningParams, SigningSettings,
};
use aws_sigv4::sign::{v4, v4a};
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::HeaderMap;

const SIGV4: &str = "AWS4-HMAC-SHA256";
const SIGV4A: &str = "AWS4-ECDSA-P256-SHA256";
/// How far a request's `X-Amz-Date` may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Which signature a server expects.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// SigV4, scoped to one region.
    V4 { region: String },
    /// SigV4A, whose scope has no region: the request names its region set instead.
    V4a,
}

impl Scheme {
    fn algorithm(&self) -> &'static str {
        match self {
            Scheme::V4 { .. } => SIGV4,
            Scheme::V4a => SIGV4A,
        }
    }
}

/// Accepts requests signed with one set of credentials for one service.
#[derive(Debug)]
pub struct SignatureCheck {
    access_key: String,
    session_token: Option<String>,
    identity: Identity,
    service: String,
    scheme: Scheme,
}

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("Missing Authentication Token")]
    Unsigned,
    #[error("the request is signed with {found}, not {expected}")]
    WrongAlgorithm {
        found: String,
        expected: &'static str,
    },
    #[error("malformed Authorization: {0}")]
    Malformed(&'static str),
    #[error("a SigV4A request carries X-Amz-Region-Set")]
    NoRegionSet,
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey(String),
    #[error("The security token included in the request is invalid.")]
    BadSessionToken,
    #[error("Credential should be scoped to a valid region, service and date: {0:?}")]
    WrongScope(String),
    #[error("Signature expired: {0} is more than five minutes from the server's time.")]
    Expired(String),
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    Mismatch,
    #[error("cannot recompute the signature: {0}")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Rejection {
    /// The error type AWS front doors put in `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unsigned => "MissingAuthenticationTokenException",
            Rejection::UnknownAccessKey(_) | Rejection::BadSessionToken => {
                "UnrecognizedClientException"
            }
            Rejection::Mismatch | Rejection::Signing(_) | Rejection::Expired(_) => {
                "InvalidSignatureException"
            }
            Rejection::WrongAlgorithm { .. }
            | Rejection::Malformed(_)
            | Rejection::NoRegionSet
            | Rejection::WrongScope(_) => "IncompleteSignatureException",
        }
    }
}

impl SignatureCheck {
    /// Requests must be signed with this key pair (and carry `session_token`, if given) for
    /// `service` under `scheme`.
    pub fn new(
        access_key: &str,
        secret_key: &str,
        session_token: Option<&str>,
        service: &str,
        scheme: Scheme,
    ) -> Self {
        let session_token = session_token.map(str::to_owned);
        let credentials = Credentials::new(
            access_key,
            secret_key,
            session_token.clone(),
            None,
            "signature-check",
        );
        Self {
            access_key: access_key.to_owned(),
            session_token,
            identity: credentials.into(),
            service: service.to_owned(),
            scheme,
        }
    }

    /// Recomputes the signature from the headers the request says it signed; SigV4A's is
    /// deterministic (RFC 6979) too, so equal means valid.
    pub fn verify(&self, parts: &Parts, body: &[u8]) -> Result<(), Rejection> {
        let headers = &parts.headers;
        let authorization =
            header_str(headers, AUTHORIZATION.as_str()).ok_or(Rejection::Unsigned)?;
        let (algorithm, fields) = authorization
            .split_once(' ')
            .ok_or(Rejection::Malformed("no fields after the algorithm"))?;
        if algorithm != self.scheme.algorithm() {
            return Err(Rejection::WrongAlgorithm {
                found: algorithm.to_owned(),
                expected: self.scheme.algorithm(),
            });
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(Rejection::Malformed("unknown field")),
            }
        }
        let credential = credential.ok_or(Rejection::Malformed("no Credential"))?;
        let signed_headers = signed_headers.ok_or(Rejection::Malformed("no SignedHeaders"))?;
        let signature = signature.ok_or(Rejection::Malformed("no Signature"))?;

        let scope: Vec<&str> = credential.split('/').collect();
        let wrong_scope = || Rejection::WrongScope(credential.to_owned());
        let (access_key, date) = match (&self.scheme, &scope[..]) {
            (Scheme::V4 { region }, [key, date, scoped_region, service, "aws4_request"])
                if scoped_region == region && *service == self.service =>
            {
                (*key, *date)
            }
            (Scheme::V4a, [key, date, service, "aws4_request"]) if *service == self.service => {
                (*key, *date)
            }
            _ => return Err(wrong_scope()),
        };
        if access_key != self.access_key {
            return Err(Rejection::UnknownAccessKey(access_key.to_owned()));
        }
        if let Some(token) = &self.session_token {
            if header_str(headers, "x-amz-security-token") != Some(token.as_str()) {
                return Err(Rejection::BadSessionToken);
            }
        }
        let amz_date =
            header_str(headers, "x-amz-date").ok_or(Rejection::Malformed("no X-Amz-Date"))?;
        if !amz_date.starts_with(date) {
            return Err(wrong_scope());
        }
        let time = parse_amz_date(amz_date).ok_or(Rejection::Malformed("bad X-Amz-Date"))?;
        let skew = SystemTime::now()
            .duration_since(time)
            .unwrap_or_else(|ahead| ahead.duration());
        if skew > MAX_SKEW {
            return Err(Rejection::Expired(amz_date.to_owned()));
        }

        let mut signed = Vec::new();
        for name in signed_headers.split(';') {
            let values = headers.get_all(name);
            if values.iter().next().is_none() {
                return Err(Rejection::Malformed("a signed header is missing"));
            }
            for value in values {
                let value = value
                    .to_str()
                    .map_err(|_| Rejection::Malformed("a signed header is not ASCII"))?;
                signed.push((name, value));
            }
        }
        let uri = parts.uri.to_string();
        let request = SignableRequest::new(
            parts.method.as_str(),
            uri.as_str(),
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Rejection::Signing(e.into()))?;
        let params: SigningParams = match &self.scheme {
            Scheme::V4 { region } => v4::SigningParams::builder()
                .identity(&self.identity)
                .region(region)
                .name(&self.service)
                .time(time)
                .settings(SigningSettings::default())
                .build()
                .map_err(|e| Rejection::Signing(e.into()))?
                .into(),
            Scheme::V4a => {
                let region_set =
                    header_str(headers, "x-amz-region-set").ok_or(Rejection::NoRegionSet)?;
                v4a::SigningParams::builder()
                    .identity(&self.identity)
                    .region_set(region_set)
                    .name(&self.service)
                    .time(time)
                    .settings(SigningSettings::default())
                    .build()
                    .map_err(|e| Rejection::Signing(e.into()))?
                    .into()
            }
        };
        let expected = sign(request, &params).map_err(|e| Rejection::Signing(e.into()))?;
        if expected.signature() != signature {
            return Err(Rejection::Mismatch);
        }
        Ok(())
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc().into())
}
