use std::time::Duration;

use lifeboat_s3::{
    Client, ClientConfig, Credentials, DownloadReport, DownloadSpec, RetryPolicy, S3Error,
};

pub const BUCKET: &str = "drill-bucket";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn client_with(endpoint: &str, bucket: &str, secret: &str, retries: u32) -> Client {
    let mut c = ClientConfig::new(
        Some(endpoint.to_string()),
        "us-east-1",
        bucket,
        Credentials::new(lifeboat_fixtures::s3::ACCESS_KEY, secret),
    );
    c.retry = RetryPolicy {
        max_retries: retries,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        max_resumes: 100,
    };
    c.read_timeout = Duration::from_secs(10);
    Client::new(c).unwrap()
}

pub fn client(endpoint: &str) -> Client {
    client_with(endpoint, BUCKET, lifeboat_fixtures::s3::SECRET_KEY, 8)
}

/// HEAD, learn the part layout when multipart, download, and return the report.
pub fn fetch(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    key: &str,
) -> Result<DownloadReport, S3Error> {
    let spec = spec(rt, c, key)?;
    c.download(rt.handle(), spec).finish()
}

pub fn spec(rt: &tokio::runtime::Runtime, c: &Client, key: &str) -> Result<DownloadSpec, S3Error> {
    let head = rt.block_on(c.head(key, None))?;
    let parts = head
        .etag
        .as_deref()
        .and_then(lifeboat_s3::checksum::parse_etag)
        .and_then(|e| e.parts);
    let layout = match parts {
        Some(n) => rt.block_on(c.part_layout(key, head.size, n))?,
        None => None,
    };
    Ok(DownloadSpec {
        head,
        layout,
        verify_etag: true,
    })
}

pub fn outcome(r: &DownloadReport, method: &str) -> lifeboat_s3::Outcome {
    r.verifications
        .iter()
        .find(|v| v.method == method)
        .unwrap_or_else(|| panic!("no {method} verification in {:#?}", r.verifications))
        .outcome
        .clone()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
