//! Streaming one object out of the bucket, verified while it streams, resumed where it stopped.
//!
//! A task on the caller's tokio runtime sends the object's bytes into a bounded channel; [`Download`] is the
//! synchronous [`Read`] end the drill engine pulls from (memory stays at the channel's few chunks whatever
//! the object's size). The task hashes every byte for each method the store offers ([`Verifier`]). When a
//! connection breaks (reset, timeout, a server restart) it asks again with `Range: bytes=N-` from the first
//! byte not yet received and `If-Match: ETAG`, so the bytes already hashed stay valid and a replaced object
//! is detected (412) instead of spliced. Consecutive failures without progress are bounded by the retry
//! policy; progress resets the count.
//!
//! A download given a cancel flag ([`Client::download_cancellable`]) ends within [`CANCEL_POLL`] of it being
//! set, also while the task waits out a retry back-off or a slow server: an agent told to stop (SIGTERM)
//! must not hang until a dead bucket's retries run out. The task watches the flag (a 200 ms tick on the
//! runtime) and wakes the reader with a "cancelled" message, so reads themselves stay plain blocking
//! receives with no timer.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use tokio::sync::mpsc;

use crate::checksum::{ObjectChecksums, PartLayout};
use crate::client::{Client, Fail, describe};
use crate::error::S3Error;
use crate::objects::ObjectHead;
use crate::verify::{Expectations, Outcome, Verification, Verifier};

/// Chunks buffered between the network task and the reader.
const CHANNEL_CHUNKS: usize = 32;

/// How often a waiting reader looks at its cancel flag.
pub const CANCEL_POLL: Duration = Duration::from_millis(200);

/// What a finished download proved.
#[derive(Debug, Clone)]
pub struct DownloadReport {
    /// Bytes received (the object's size).
    pub bytes: u64,
    /// SHA-256 of the object.
    pub sha256: [u8; 32],
    /// One result per verification method the store offered.
    pub verifications: Vec<Verification>,
    /// GET requests made (1 + resumes + retries).
    pub requests: u32,
    /// Times the download resumed from a byte offset.
    pub resumes: u32,
}

enum Msg {
    Data(Bytes),
    Done(Box<DownloadReport>),
    Failed(Box<S3Error>),
    Cancelled,
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct DownloadSpec {
    /// The object's HEAD (size, ETag, checksums).
    pub head: ObjectHead,
    /// Part sizes, when learned.
    pub layout: Option<PartLayout>,
    /// Verify the ETag as an MD5 (off for stores whose ETags are not MD5s).
    pub verify_etag: bool,
}

/// The reading end of a download. Dropping it stops the download.
pub struct Download {
    rx: mpsc::Receiver<Msg>,
    /// The download was cancelled: every read fails.
    cancelled: bool,
    cur: Bytes,
    report: Option<DownloadReport>,
    error: Option<S3Error>,
    ended: bool,
}

impl Client {
    /// Starts downloading `spec.head.key` on `rt`; read it through the returned [`Download`].
    pub fn download(&self, rt: &tokio::runtime::Handle, spec: DownloadSpec) -> Download {
        self.start(rt, spec, None)
    }

    /// Like [`Client::download`], but the download stops and reads fail ("cancelled") within
    /// [`CANCEL_POLL`] once `cancel` is set.
    pub fn download_cancellable(
        &self,
        rt: &tokio::runtime::Handle,
        spec: DownloadSpec,
        cancel: Arc<AtomicBool>,
    ) -> Download {
        self.start(rt, spec, Some(cancel))
    }

    fn start(
        &self,
        rt: &tokio::runtime::Handle,
        spec: DownloadSpec,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Download {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let client = self.clone();
        rt.spawn(async move {
            let fetched = {
                let fetch = client.fetch(&spec, &tx);
                match cancel {
                    None => Some(fetch.await),
                    Some(flag) => tokio::select! {
                        r = fetch => Some(r),
                        () = cancelled(&flag) => None,
                    },
                }
            };
            let msg = match fetched {
                None => Msg::Cancelled,
                Some(Ok(Some(r))) => Msg::Done(Box::new(r)),
                Some(Ok(None)) => return, // the reader went away
                Some(Err(e)) => Msg::Failed(Box::new(e)),
            };
            let _ = tx.send(msg).await;
        });
        Download {
            rx,
            cancelled: false,
            cur: Bytes::new(),
            report: None,
            error: None,
            ended: false,
        }
    }

    async fn fetch(
        &self,
        spec: &DownloadSpec,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<Option<DownloadReport>, S3Error> {
        let key = spec.head.key.as_str();
        let size = spec.head.size;
        let policy = self.retry();
        let mut received = 0u64;
        let mut verifier: Option<Verifier> = None;
        let mut failures = 0u32;
        let mut requests = 0u32;
        let mut resumes = 0u32;
        loop {
            let mut headers = vec![("x-amz-checksum-mode", "ENABLED".to_string())];
            if let Some(e) = &spec.head.etag {
                headers.push(("if-match", format!("\"{e}\"")));
            }
            if received > 0 {
                headers.push(("range", format!("bytes={received}-")));
            }
            requests += 1;
            self.stats().gets.fetch_add(1, Ordering::Relaxed);
            let failure = match self.send(Method::GET, Some(key), &[], &headers).await {
                Err(Fail::Fatal(S3Error::Changed { target, .. })) => {
                    return Err(S3Error::Changed {
                        target,
                        etag: spec.head.etag.clone().unwrap_or_default(),
                    });
                }
                Err(Fail::Fatal(e)) => return Err(e),
                Err(Fail::Transient(d)) => d,
                Ok(mut resp) => {
                    self.check_start(&resp, key, received, size)?;
                    if verifier.is_none() {
                        verifier = Some(Verifier::new(&expectations(spec, resp.headers())));
                    }
                    let v = verifier
                        .as_mut()
                        .ok_or_else(|| S3Error::Config("verifier missing".into()))?;
                    let before = received;
                    let outcome = loop {
                        match resp.chunk().await {
                            Ok(Some(b)) => {
                                if received + b.len() as u64 > size {
                                    return Err(S3Error::Protocol {
                                        target: self.target(Some(key)),
                                        detail: format!(
                                            "the server sent more than the object's {size} bytes"
                                        ),
                                    });
                                }
                                v.update(&b);
                                received += b.len() as u64;
                                if tx.send(Msg::Data(b)).await.is_err() {
                                    return Ok(None);
                                }
                            }
                            Ok(None) => break None,
                            Err(e) => break Some(describe(&e)),
                        }
                    };
                    if received > before {
                        failures = 0;
                    }
                    if received == size {
                        let v = verifier
                            .take()
                            .ok_or_else(|| S3Error::Config("verifier missing".into()))?;
                        let (sha256, verifications) = v.finish();
                        let verifications = self.confirm_layout(spec, verifications).await;
                        return Ok(Some(DownloadReport {
                            bytes: received,
                            sha256,
                            verifications,
                            requests,
                            resumes,
                        }));
                    }
                    outcome.unwrap_or_else(|| {
                        format!("the connection closed after {received} of {size} bytes")
                    })
                }
            };
            failures += 1;
            if failures > policy.max_retries {
                return Err(S3Error::Unreachable {
                    target: self.target(Some(key)),
                    attempts: failures,
                    detail: format!("{failure} ({received} of {size} bytes received)"),
                });
            }
            if received > 0 {
                resumes += 1;
                self.stats().resumes.fetch_add(1, Ordering::Relaxed);
                if resumes > policy.max_resumes {
                    return Err(S3Error::Unreachable {
                        target: self.target(Some(key)),
                        attempts: requests,
                        detail: format!("the download broke off {resumes} times; last: {failure}"),
                    });
                }
            }
            tracing::info!(endpoint = %self.endpoint(), bucket = %self.bucket(), key, received, size, %failure, "download interrupted; resuming");
            tokio::time::sleep(policy.delay(failures)).await;
        }
    }

    /// The response must start exactly at `received`.
    fn check_start(
        &self,
        resp: &reqwest::Response,
        key: &str,
        received: u64,
        size: u64,
    ) -> Result<(), S3Error> {
        let bad = |detail: String| S3Error::Protocol {
            target: self.target(Some(key)),
            detail,
        };
        if received == 0 {
            if resp.status().as_u16() == 206 {
                return Err(bad(
                    "a partial response to a request for the whole object".into()
                ));
            }
            let len = resp.content_length();
            if len.is_some_and(|l| l != size) {
                return Err(S3Error::Changed {
                    target: self.target(Some(key)),
                    etag: format!("(size {size}, now {})", len.unwrap_or(0)),
                });
            }
            return Ok(());
        }
        if resp.status().as_u16() != 206 {
            return Err(bad(format!(
                "status {} to a ranged request (expected 206 Partial Content)",
                resp.status().as_u16()
            )));
        }
        let range = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let start = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('-'))
            .and_then(|(s, _)| s.trim().parse::<u64>().ok());
        let total = range
            .rsplit_once('/')
            .and_then(|(_, t)| t.trim().parse::<u64>().ok());
        if start != Some(received) || total.is_some_and(|t| t != size) {
            return Err(bad(format!(
                "Content-Range {range:?} does not continue at byte {received} of {size}"
            )));
        }
        Ok(())
    }

    /// A mismatch computed with an inferred part layout is only believed when every part's size confirms
    /// the layout; otherwise that method could not be verified.
    async fn confirm_layout(
        &self,
        spec: &DownloadSpec,
        mut v: Vec<Verification>,
    ) -> Vec<Verification> {
        let needs = v
            .iter()
            .any(|r| r.layout_inferred && r.outcome == Outcome::Mismatch);
        let Some(layout) = spec.layout.as_ref().filter(|_| needs) else {
            return v;
        };
        let n = layout.sizes.len() as u32;
        let real = self.all_part_sizes(&spec.head.key, spec.head.size, n).await;
        let confirmed = matches!(&real, Ok(Some(l)) if l.sizes == layout.sizes);
        if !confirmed {
            for r in v
                .iter_mut()
                .filter(|r| r.layout_inferred && r.outcome == Outcome::Mismatch)
            {
                r.outcome = Outcome::Unverifiable(
                    "the object's parts are not all of one size and their sizes could not be read"
                        .to_string(),
                );
                r.actual = "not computed".to_string();
            }
        }
        v
    }
}

/// What to verify: sizes and ETag from HEAD, checksums from the GET when it carries them (some servers only
/// mark composite checksums with their `-N` suffix on GET), else from HEAD.
fn expectations(spec: &DownloadSpec, get_headers: &reqwest::header::HeaderMap) -> Expectations {
    let from_get = ObjectChecksums::from_headers(get_headers);
    let checksums = if from_get.is_empty() {
        spec.head.checksums.clone()
    } else {
        from_get
    };
    Expectations {
        size: spec.head.size,
        etag: spec.head.etag.clone(),
        etag_not_md5: if spec.verify_etag {
            spec.head.etag_not_md5.clone()
        } else {
            Some(
                "ETag verification is turned off for this source (`verify_etag = false`)"
                    .to_string(),
            )
        },
        checksums,
        layout: spec.layout.clone(),
    }
}

impl Download {
    /// Reads to the end and returns what the download proved, or why it failed.
    pub fn finish(mut self) -> Result<DownloadReport, S3Error> {
        let mut sink = [0u8; 64 * 1024];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(self.error.take().unwrap_or_else(|| S3Error::Protocol {
                        target: Box::new(crate::error::Target {
                            endpoint: String::new(),
                            bucket: String::new(),
                            key: None,
                        }),
                        detail: e.to_string(),
                    }));
                }
            }
        }
        self.report
            .take()
            .ok_or_else(|| S3Error::Config("the download ended without a report".to_string()))
    }

    /// The error that ended the stream, if any (the `io::Error` returned by `read` carries its text).
    pub fn take_error(&mut self) -> Option<S3Error> {
        self.error.take()
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur.split_to(n));
                return Ok(n);
            }
            if self.cancelled {
                return Err(io::Error::other("cancelled"));
            }
            if self.ended {
                return Ok(0);
            }
            if let Some(e) = &self.error {
                return Err(io::Error::other(e.to_string()));
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.cur = b,
                Some(Msg::Cancelled) => self.cancelled = true,
                Some(Msg::Done(r)) => {
                    self.report = Some(*r);
                    self.ended = true;
                }
                Some(Msg::Failed(e)) => {
                    let text = e.to_string();
                    self.error = Some(*e);
                    return Err(io::Error::other(text));
                }
                None => {
                    let e = S3Error::Config("the download task stopped unexpectedly".to_string());
                    let text = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(text));
                }
            }
        }
    }
}

/// Resolves once `flag` is set (looked at every [`CANCEL_POLL`]).
async fn cancelled(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}
