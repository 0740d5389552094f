//! The read-only S3 client: signed requests, error classification, bounded retries, listing and HEAD.
//!
//! Every request is built and signed afresh per attempt (a retry hours later must carry a fresh date). Only
//! GET and HEAD are ever sent: lifeboat never writes to a bucket. Redirects are not followed (a redirect
//! from S3 means "wrong region"; following it would also send a signed request elsewhere). Response bodies
//! are read with size limits; headers are parsed without trusting them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};

use crate::credentials::Credentials;
use crate::error::{S3Error, Target, auth_advice};
use crate::sigv4::{self, EMPTY_PAYLOAD_SHA256, RequestToSign, Scope};
use crate::xml;

/// Largest error body read (S3 error documents are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How the bucket appears in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key` (MinIO, Garage, SeaweedFS, most self-hosted servers).
    Path,
    /// `https://bucket.endpoint/key` (AWS's default; B2 and Wasabi accept both).
    Virtual,
}

/// Retry behaviour for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (a download counts them per stall: progress resets the count).
    pub max_retries: u32,
    /// First back-off delay; doubled per retry.
    pub base_delay: Duration,
    /// Longest back-off delay.
    pub max_delay: Duration,
    /// Most resumed downloads of one object (a server that drops every connection early).
    pub max_resumes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_resumes: 1000,
        }
    }
}

impl RetryPolicy {
    /// Back-off before retry number `n` (1-based), with ±25 % jitter so many agents do not retry in step.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let d = exp.min(self.max_delay);
        let jitter = (Timestamp::now().subsec_nanosecond().unsigned_abs() % 500) as f64 / 1000.0; // 0..0.5
        d.mul_f64(0.75 + jitter)
    }
}

/// Everything needed to talk to one bucket.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Endpoint URL (`https://s3.us-west-004.backblazeb2.com`); `None` = AWS in `region`.
    pub endpoint: Option<String>,
    /// Region used in signatures (`us-east-1` when the store does not care).
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// URL style; default: virtual-hosted for AWS, path-style for a custom endpoint.
    pub addressing: Option<Addressing>,
    /// Access key.
    pub credentials: Credentials,
    /// Extra trusted CA certificates (PEM), for a self-hosted server with a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Retries.
    pub retry: RetryPolicy,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with default timeouts and retries.
    pub fn new(
        endpoint: Option<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        ClientConfig {
            endpoint,
            region: region.into(),
            bucket: bucket.into(),
            addressing: None,
            credentials,
            ca_pem: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Request counters (for tests, benchmarks and evidence).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent (every attempt).
    pub requests: AtomicU64,
    /// Listing pages received.
    pub list_pages: AtomicU64,
    /// GETs of object content (every attempt).
    pub gets: AtomicU64,
    /// Downloads resumed with a ranged GET.
    pub resumes: AtomicU64,
}

/// Checks a bucket name offline: the rules every S3 implementation shares (3-255 printable ASCII
/// characters without `/`; AWS is stricter for new buckets, legacy names are allowed).
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.len() < 3 || bucket.len() > 255 {
        return Err(format!(
            "bucket name {bucket:?} must be 3 to 63 characters long (S3 naming rules)"
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "bucket name {bucket:?} contains {c:?}; bucket names have letters, digits, '.', '-' (and '_' for legacy buckets) only; put folders in `prefix`"
        ));
    }
    Ok(())
}

/// Checks an endpoint URL offline.
pub fn validate_endpoint(endpoint: &str) -> Result<Url, String> {
    let url =
        Url::parse(endpoint).map_err(|e| format!("endpoint {endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "endpoint {endpoint:?} must start with https:// (or http:// for a server on a trusted network)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("endpoint {endpoint:?} has no host name"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "endpoint must not contain credentials; use access_key_id_file / secret_access_key_file"
                .to_string(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "endpoint {endpoint:?} must not have a query or fragment"
        ));
    }
    Ok(url)
}

/// A key lifeboat can request: no `.`/`..` path segments (URL normalisation would change them) and not
/// empty.
pub fn requestable_key(key: &str) -> bool {
    !key.is_empty() && !key.split('/').any(|s| s == "." || s == "..")
}

/// Why one attempt failed.
pub(crate) enum Fail {
    /// Worth retrying.
    Transient(String),
    /// Not.
    Fatal(S3Error),
}

/// A read-only client for one bucket. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    scheme: String,
    host: String,
    base_path: String,
    bucket: String,
    region: String,
    addressing: Addressing,
    credentials: Credentials,
    retry: RetryPolicy,
    endpoint_shown: String,
    stats: Stats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint_shown)
            .field("bucket", &self.inner.bucket)
            .field("region", &self.inner.region)
            .field("addressing", &self.inner.addressing)
            .field("credentials", &self.inner.credentials)
            .finish()
    }
}

/// The text of an error and its sources (reqwest's own text is terse: "error sending request").
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

impl Client {
    /// Builds a client; fails only on configuration errors (bad endpoint, bad CA file).
    pub fn new(c: ClientConfig) -> Result<Client, S3Error> {
        validate_bucket(&c.bucket).map_err(S3Error::Config)?;
        let endpoint = c
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", c.region));
        let url = validate_endpoint(&endpoint).map_err(S3Error::Config)?;
        let mut addressing = c.addressing.unwrap_or(if c.endpoint.is_none() {
            Addressing::Virtual
        } else {
            Addressing::Path
        });
        // A dotted bucket name breaks the wildcard certificate of virtual-hosted HTTPS.
        if addressing == Addressing::Virtual && c.bucket.contains('.') && url.scheme() == "https" {
            addressing = Addressing::Path;
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(S3Error::Config(format!(
                    "endpoint {endpoint:?} has no host"
                )));
            }
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(c.connect_timeout)
            .read_timeout(c.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if let Some(pem) = &c.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| S3Error::Config(format!("cannot read the CA certificates: {e}")))?;
            if certs.is_empty() {
                return Err(S3Error::Config(
                    "the CA file holds no PEM certificate".to_string(),
                ));
            }
            b = b.tls_certs_merge(certs);
        }
        let http = b
            .build()
            .map_err(|e| S3Error::Config(format!("cannot set up HTTP: {}", describe(&e))))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                scheme: url.scheme().to_string(),
                host,
                base_path: url.path().trim_end_matches('/').to_string(),
                bucket: c.bucket,
                region: c.region,
                addressing,
                credentials: c.credentials,
                retry: c.retry,
                endpoint_shown: endpoint.trim_end_matches('/').to_string(),
                stats: Stats::default(),
            }),
        })
    }

    /// The endpoint as shown in messages.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint_shown
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// Request counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// What an error about `key` (or the bucket) names.
    pub fn target(&self, key: Option<&str>) -> Box<Target> {
        Box::new(Target {
            endpoint: self.inner.endpoint_shown.clone(),
            bucket: self.inner.bucket.clone(),
            key: key.map(str::to_string),
        })
    }

    /// `s3://bucket/key`.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.inner.bucket)
    }

    fn url(
        &self,
        key: Option<&str>,
        query: &[(String, String)],
    ) -> Result<(Url, String, String), S3Error> {
        let i = &self.inner;
        let (host, path) = match i.addressing {
            Addressing::Path => (
                i.host.clone(),
                match key {
                    Some(k) => format!(
                        "{}/{}/{}",
                        i.base_path,
                        i.bucket,
                        sigv4::uri_encode(k, true)
                    ),
                    None => format!("{}/{}", i.base_path, i.bucket),
                },
            ),
            Addressing::Virtual => (
                format!("{}.{}", i.bucket, i.host),
                format!(
                    "{}/{}",
                    i.base_path,
                    key.map(|k| sigv4::uri_encode(k, true)).unwrap_or_default()
                ),
            ),
        };
        let q = sigv4::canonical_query(query);
        let text = if q.is_empty() {
            format!("{}://{host}{path}", i.scheme)
        } else {
            format!("{}://{host}{path}?{q}", i.scheme)
        };
        let url = Url::parse(&text).map_err(|e| {
            S3Error::Config(format!("cannot build a URL for {}: {e}", self.target(key)))
        })?;
        if url.path() != path {
            return Err(S3Error::Protocol {
                target: self.target(key),
                detail: "the key cannot be requested unchanged (a '.' or '..' path segment)"
                    .to_string(),
            });
        }
        Ok((url, host, path))
    }

    /// Sends one signed request (one attempt) and classifies the answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(String, String)],
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, Fail> {
        let (url, host, path) = self.url(key, query).map_err(Fail::Fatal)?;
        let mut to_sign: Vec<(String, String)> = vec![("host".to_string(), host)];
        to_sign.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let req = RequestToSign {
            method: method.as_str(),
            path: &path,
            query,
            headers: &to_sign,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        let scope = Scope {
            region: &self.inner.region,
            service: "s3",
            time: Timestamp::now(),
        };
        let signed = sigv4::sign(&req, &scope, &self.inner.credentials);
        let mut rb = self.inner.http.request(method.clone(), url);
        for (k, v) in headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(signed)
        {
            rb = rb.header(k, v);
        }
        self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(match crate::error::certificate_failure(&e) {
                    Some(detail) => Fail::Fatal(S3Error::Tls {
                        target: self.target(key),
                        detail,
                    }),
                    None => Fail::Transient(describe(&e)),
                });
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.classify(resp, key, method == Method::HEAD).await)
    }

    async fn classify(&self, resp: reqwest::Response, key: Option<&str>, head: bool) -> Fail {
        let status = resp.status();
        let region_hint = resp
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = if head {
            None
        } else {
            match read_body(resp, MAX_ERROR_BODY).await {
                Ok(b) => std::str::from_utf8(&b).ok().and_then(xml::parse_error),
                Err(_) => None,
            }
        };
        let (code, message) = body
            .as_ref()
            .map(|b| (b.code.clone(), b.message.clone()))
            .unwrap_or_else(|| {
                (
                    status.canonical_reason().unwrap_or("").replace(' ', ""),
                    String::new(),
                )
            });
        let target = self.target(key);
        let s = status.as_u16();
        if matches!(s, 408 | 429 | 500 | 502 | 503 | 504)
            || matches!(
                code.as_str(),
                "RequestTimeout" | "SlowDown" | "InternalError" | "ServiceUnavailable"
            )
        {
            return Fail::Transient(format!("{s} {code} {message}").trim().to_string());
        }
        let fatal = match s {
            404 if code == "NoSuchBucket" || (head && key.is_none()) => S3Error::NoSuchBucket { target },
            404 if code == "NoSuchKey" || (head && key.is_some()) => S3Error::NoSuchKey { target },
            401 | 403 => S3Error::Auth {
                target,
                status: s,
                advice: auth_advice(&code),
                code,
                message,
            },
            400 if code == "AuthorizationHeaderMalformed" || code == "InvalidAccessKeyId" => {
                let region = body.as_ref().and_then(|b| b.region.clone()).or(region_hint);
                S3Error::Auth {
                    target,
                    status: s,
                    advice: match region {
                        Some(r) => format!("the bucket is in region {r}: set `region = \"{r}\"`"),
                        None => auth_advice(&code),
                    },
                    code,
                    message,
                }
            }
            412 => S3Error::Changed {
                target,
                etag: String::new(),
            },
            301 | 307 | 308 => S3Error::Refused {
                target,
                status: s,
                code,
                message,
                advice: match region_hint {
                    Some(r) => format!("; the bucket is in region {r}: set `region = \"{r}\"` (and `endpoint` for that region)"),
                    None => "; the server redirects elsewhere: check `endpoint`, `region` and `addressing`".to_string(),
                },
            },
            _ => S3Error::Refused {
                target,
                status: s,
                advice: match code.as_str() {
                    "InvalidObjectState" => "; the object is archived (Glacier/Deep Archive): restore it to a readable class before drilling it".to_string(),
                    _ => String::new(),
                },
                code,
                message,
            },
        };
        Fail::Fatal(fatal)
    }

    /// Runs `f` until it succeeds, fails fatally, or the retries run out.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        key: Option<&str>,
        mut f: F,
    ) -> Result<T, S3Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let policy = self.inner.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(Fail::Fatal(e)) => return Err(e),
                Err(Fail::Transient(detail)) => {
                    if attempt > policy.max_retries {
                        return Err(S3Error::Unreachable {
                            target: self.target(key),
                            attempts: attempt,
                            detail,
                        });
                    }
                    tracing::debug!(endpoint = %self.inner.endpoint_shown, bucket = %self.inner.bucket, key, attempt, %detail, "transient S3 failure; retrying");
                    tokio::time::sleep(policy.delay(attempt)).await;
                }
            }
        }
    }
}

pub(crate) enum BodyError {
    TooLarge,
    Read(String),
}

pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > max {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(BodyError::Read(describe(&e))),
        }
    }
}

/// `true` for statuses a server sends while restarting or overloaded.
pub fn is_transient_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: Option<&str>, bucket: &str, addressing: Option<Addressing>) -> Client {
        let mut c = ClientConfig::new(
            endpoint.map(str::to_string),
            "us-east-1",
            bucket,
            Credentials::new("AK", "SK"),
        );
        c.addressing = addressing;
        Client::new(c).unwrap()
    }

    #[test]
    fn urls() {
        let c = client(Some("http://127.0.0.1:9000/"), "bkt", None);
        let (u, host, path) = c.url(Some("a b/c+d.tar"), &[]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/bkt/a%20b/c%2Bd.tar");
        assert_eq!(host, "127.0.0.1:9000");
        assert_eq!(path, "/bkt/a%20b/c%2Bd.tar");
        let c = client(None, "bkt", None);
        let (u, host, _) = c
            .url(
                None,
                &[
                    ("list-type".into(), "2".into()),
                    ("prefix".into(), "x/".into()),
                ],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "https://bkt.s3.us-east-1.amazonaws.com/?list-type=2&prefix=x%2F"
        );
        assert_eq!(host, "bkt.s3.us-east-1.amazonaws.com");
        let c = client(None, "my.bkt", None);
        assert_eq!(c.inner.addressing, Addressing::Path);
        let c = client(
            Some("https://gw.example/s3"),
            "bkt",
            Some(Addressing::Virtual),
        );
        let (u, _, _) = c.url(Some("k"), &[]).unwrap();
        assert_eq!(u.as_str(), "https://bkt.gw.example/s3/k");
        assert!(c.url(Some("a/../b"), &[]).is_err());
        assert!(!requestable_key("a/./b") && requestable_key("a/.b"));
    }

    #[test]
    fn validation() {
        assert!(validate_bucket("ab").is_err());
        assert!(validate_bucket("a/b-c").is_err());
        assert!(validate_bucket("acme-backups").is_ok());
        assert!(validate_endpoint("ftp://x").is_err());
        assert!(validate_endpoint("https://user:pw@x").is_err());
        assert!(validate_endpoint("not a url").is_err());
        assert!(validate_endpoint("https://s3.us-west-004.backblazeb2.com").is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = client(Some("http://127.0.0.1:1"), "bkt", None);
        let shown = format!("{c:?}");
        assert!(shown.contains("AK") && !shown.contains("\"SK\""), "{shown}");
    }
}
