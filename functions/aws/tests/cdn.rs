//! The CloudFront lookups.
//!
//! moto's CloudFront cannot serve these reads to the Rust SDK: it has no CloudFront
//! Functions API (DescribeFunction is a 404), and its distribution documents are unparseable
//! by `aws-sdk-cloudfront` (booleans written `True`/`False`; CreateDistribution answered
//! under a `CreateDistributionResult` root). Its error documents do parse, so the not-found
//! case runs against moto; the successful reads run against a loopback server that answers
//! with the response shapes of the CloudFront API reference (2020-05-31) and records what
//! it was asked.

mod support;

use std::sync::{Arc, Mutex};

use slipway_aws::cdn::{CdnError, CloudFrontLookups};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DISTRIBUTION_ID: &str = "E2QWRUHAPOMQZL";
const DISTRIBUTION_DOMAIN: &str = "d111111abcdef8.cloudfront.net";
const KVS_ARN: &str =
    "arn:aws:cloudfront::123456789012:key-value-store/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";

#[tokio::test]
async fn an_unknown_distribution_is_not_found() {
    let lookups = CloudFrontLookups::new(&support::sdk_config(&support::moto_url()));

    let result = lookups.distribution_domain("E000000NOSUCH").await;

    assert!(matches!(result, Err(CdnError::DistributionNotFound(id)) if id == "E000000NOSUCH"));
}

/// One request as the recorded CloudFront saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    authorization: String,
}

/// A loopback CloudFront that knows one distribution, the function `router` (with a KVS)
/// and the function `bare` (without), and answers anything else as CloudFront does for a
/// missing function.
async fn recorded_cloudfront() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let authorization = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap_or_default();
                log.lock().unwrap().push(Seen {
                    target: target.clone(),
                    authorization,
                });
                let (status, body) = answer(target.split('?').next().unwrap_or(""));
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nETag: ETVPDKIKX0DER\r\nx-amz-request-id: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn answer(path: &str) -> (&'static str, String) {
    if path == format!("/2020-05-31/distribution/{DISTRIBUTION_ID}") {
        return ("200 OK", distribution());
    }
    match path {
        "/2020-05-31/function/router/describe" => {
            ("200 OK", function_summary("router", Some(KVS_ARN)))
        }
        "/2020-05-31/function/bare/describe" => ("200 OK", function_summary("bare", None)),
        _ => ("404 Not Found", NO_SUCH_FUNCTION.to_owned()),
    }
}

fn distribution() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Distribution xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Id>{DISTRIBUTION_ID}</Id><ARN>arn:aws:cloudfront::123456789012:distribution/{DISTRIBUTION_ID}</ARN><Status>Deployed</Status><LastModifiedTime>2024-05-01T10:00:00.000Z</LastModifiedTime><InProgressInvalidationBatches>0</InProgressInvalidationBatches><DomainName>{DISTRIBUTION_DOMAIN}</DomainName><ActiveTrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></ActiveTrustedSigners><ActiveTrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></ActiveTrustedKeyGroups><DistributionConfig><CallerReference>slipway-1</CallerReference><Aliases><Quantity>1</Quantity><Items><CNAME>*.sites.example.com</CNAME></Items></Aliases><DefaultRootObject></DefaultRootObject><Origins><Quantity>1</Quantity><Items><Origin><Id>hosting</Id><DomainName>hosting.s3.us-east-1.amazonaws.com</DomainName><OriginPath></OriginPath><S3OriginConfig><OriginAccessIdentity></OriginAccessIdentity></S3OriginConfig><OriginAccessControlId>E1OAC</OriginAccessControlId></Origin></Items></Origins><DefaultCacheBehavior><TargetOriginId>hosting</TargetOriginId><ViewerProtocolPolicy>redirect-to-https</ViewerProtocolPolicy><CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId><Compress>true</Compress></DefaultCacheBehavior><Comment>slipway sites</Comment><Enabled>true</Enabled><HttpVersion>http2and3</HttpVersion><IsIPV6Enabled>true</IsIPV6Enabled></DistributionConfig></Distribution>"#
    )
}

fn function_summary(name: &str, kvs: Option<&str>) -> String {
    let associations = kvs.map_or(String::new(), |arn| {
        format!(
            "<KeyValueStoreAssociations><Quantity>1</Quantity><Items><KeyValueStoreAssociation><KeyValueStoreARN>{arn}</KeyValueStoreARN></KeyValueStoreAssociation></Items></KeyValueStoreAssociations>"
        )
    });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<FunctionSummary xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Name>{name}</Name><Status>UNASSOCIATED</Status><FunctionConfig><Comment>slipway router</Comment><Runtime>cloudfront-js-2.0</Runtime>{associations}</FunctionConfig><FunctionMetadata><FunctionARN>arn:aws:cloudfront::123456789012:function/{name}</FunctionARN><Stage>LIVE</Stage><CreatedTime>2024-05-01T10:00:00.000Z</CreatedTime><LastModifiedTime>2024-05-01T10:00:00.000Z</LastModifiedTime></FunctionMetadata></FunctionSummary>"#
    )
}

const NO_SUCH_FUNCTION: &str = r#"<?xml version="1.0"?>
<ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>NoSuchFunctionExists</Code><Message>The specified function does not exist.</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;

/// CloudFront's control plane is signed with SigV4 for us-east-1.
fn assert_signed(seen: &Seen) {
    assert!(
        seen.authorization.starts_with("AWS4-HMAC-SHA256 ")
            && seen
                .authorization
                .contains("/us-east-1/cloudfront/aws4_request"),
        "{}",
        seen.authorization
    );
}

#[tokio::test]
async fn the_distribution_domain_comes_from_get_distribution() {
    let (url, seen) = recorded_cloudfront().await;
    let lookups = CloudFrontLookups::new(&support::sdk_config(&url));

    let domain = lookups.distribution_domain(DISTRIBUTION_ID).await.unwrap();

    assert_eq!(domain, DISTRIBUTION_DOMAIN);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].target,
        format!("/2020-05-31/distribution/{DISTRIBUTION_ID}")
    );
    assert_signed(&seen[0]);
}

#[tokio::test]
async fn the_router_functions_kvs_association_is_read_from_the_live_stage() {
    let (url, seen) = recorded_cloudfront().await;
    let lookups = CloudFrontLookups::new(&support::sdk_config(&url));

    let arns = lookups.function_kvs_arns("router").await.unwrap();

    assert_eq!(arns, [KVS_ARN]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].target,
        "/2020-05-31/function/router/describe?Stage=LIVE"
    );
    assert_signed(&seen[0]);
}

#[tokio::test]
async fn a_function_without_a_kvs_has_no_associations() {
    let (url, _) = recorded_cloudfront().await;
    let lookups = CloudFrontLookups::new(&support::sdk_config(&url));

    assert!(lookups.function_kvs_arns("bare").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_function_is_not_found() {
    let (url, _) = recorded_cloudfront().await;
    let lookups = CloudFrontLookups::new(&support::sdk_config(&url));

    let result = lookups.function_kvs_arns("missing").await;

    assert!(matches!(result, Err(CdnError::FunctionNotFound(name)) if name == "missing"));
}
