//! The read calls lifeboat makes on a bucket: ListObjectsV2 (following continuation tokens, bounded), HEAD of
//! an object or of one part (to learn a multipart layout), and a small whole GET (checksum lists). Each is
//! retried within the client's policy; answers are parsed without trusting them.

use std::sync::atomic::Ordering;

use jiff::Timestamp;
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::checksum::{ObjectChecksums, PartLayout};
use crate::client::{BodyError, Client, Fail, read_body};
use crate::error::S3Error;
use crate::xml::{self, ListPage, ListedObject};

/// Largest listing page read (1000 keys of 1 KiB each is about 1.5 MiB of XML).
const MAX_LIST_BODY: usize = 32 * 1024 * 1024;
/// Most parts whose sizes are asked one by one.
const MAX_PART_HEADS: u32 = 10_000;

/// HEAD of an object (or of one of its parts).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectHead {
    /// Key.
    pub key: String,
    /// Content-Length (of the part, for a part HEAD).
    pub size: u64,
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Last-Modified.
    pub last_modified: Option<Timestamp>,
    /// Stored checksums.
    pub checksums: ObjectChecksums,
    /// `x-amz-mp-parts-count`.
    pub parts_count: Option<u32>,
    /// Why the ETag is not an MD5 of the content (SSE-KMS, SSE-C), if so.
    pub etag_not_md5: Option<String>,
}

/// A complete listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Every object.
    pub objects: Vec<ListedObject>,
    /// Every common prefix (with a delimiter).
    pub prefixes: Vec<String>,
    /// Pages fetched.
    pub pages: u32,
}

impl Client {
    /// One ListObjectsV2 page.
    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        max_keys: Option<u32>,
    ) -> Result<ListPage, S3Error> {
        let mut q = vec![("list-type".to_string(), "2".to_string())];
        if !prefix.is_empty() {
            q.push(("prefix".to_string(), prefix.to_string()));
        }
        if let Some(d) = delimiter {
            q.push(("delimiter".to_string(), d.to_string()));
        }
        if let Some(t) = token {
            q.push(("continuation-token".to_string(), t.to_string()));
        }
        if let Some(m) = max_keys {
            q.push(("max-keys".to_string(), m.to_string()));
        }
        let target = self.target(None);
        let page = self
            .with_retries(None, || async {
                let resp = self.send(Method::GET, None, &q, &[]).await?;
                let body = read_body(resp, MAX_LIST_BODY).await.map_err(|e| match e {
                    BodyError::TooLarge => Fail::Fatal(S3Error::Protocol {
                        target: target.clone(),
                        detail: format!("a listing page larger than {MAX_LIST_BODY} bytes"),
                    }),
                    BodyError::Read(d) => Fail::Transient(d),
                })?;
                let text = std::str::from_utf8(&body).map_err(|_| {
                    Fail::Fatal(S3Error::Protocol {
                        target: target.clone(),
                        detail: "a listing that is not UTF-8".to_string(),
                    })
                })?;
                xml::parse_list(text).map_err(|detail| {
                    Fail::Fatal(S3Error::Protocol {
                        target: target.clone(),
                        detail: format!("cannot parse the listing: {detail}"),
                    })
                })
            })
            .await?;
        self.stats().list_pages.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }

    /// Every object (and common prefix) below `prefix`, following continuation tokens. More than `limit`
    /// entries is an error (a listing must fit in memory).
    pub async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        limit: usize,
    ) -> Result<Listing, S3Error> {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_page(prefix, delimiter, token.as_deref(), None)
                .await?;
            out.pages += 1;
            out.objects.extend(page.objects);
            out.prefixes.extend(page.prefixes);
            if out.objects.len() + out.prefixes.len() > limit {
                return Err(S3Error::Protocol {
                    target: self.target(None),
                    detail: format!(
                        "more than {limit} objects below prefix {prefix:?}; narrow `prefix` or `glob`"
                    ),
                });
            }
            match (page.truncated, page.next_token) {
                (true, Some(t)) => {
                    if token.as_deref() == Some(t.as_str()) {
                        return Err(S3Error::Protocol {
                            target: self.target(None),
                            detail: "the listing repeats its continuation token".to_string(),
                        });
                    }
                    token = Some(t);
                }
                _ => return Ok(out),
            }
        }
    }

    /// HEAD of an object, or of part `part` of a multipart object.
    pub async fn head(&self, key: &str, part: Option<u32>) -> Result<ObjectHead, S3Error> {
        let q: Vec<(String, String)> = part
            .map(|n| vec![("partNumber".to_string(), n.to_string())])
            .unwrap_or_default();
        let headers = [("x-amz-checksum-mode", "ENABLED".to_string())];
        let resp = self
            .with_retries(Some(key), || {
                self.send(Method::HEAD, Some(key), &q, &headers)
            })
            .await?;
        object_head(key, resp.headers()).map_err(|detail| S3Error::Protocol {
            target: self.target(Some(key)),
            detail,
        })
    }

    /// A small object (a checksum list) whole; `None` when it does not exist.
    pub async fn get_small(&self, key: &str, max: usize) -> Result<Option<Vec<u8>>, S3Error> {
        let target = self.target(Some(key));
        let r = self
            .with_retries(Some(key), || async {
                let resp = self.send(Method::GET, Some(key), &[], &[]).await?;
                read_body(resp, max).await.map_err(|e| match e {
                    BodyError::TooLarge => Fail::Fatal(S3Error::Protocol {
                        target: target.clone(),
                        detail: format!("larger than the {max} bytes a checksum list may have"),
                    }),
                    BodyError::Read(d) => Fail::Transient(d),
                })
            })
            .await;
        match r {
            Ok(b) => Ok(Some(b)),
            Err(S3Error::NoSuchKey { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Learns the sizes of the `n` parts of a multipart object of `size` bytes: part 1 and part N, and every
    /// part when they are not all as large as part 1. `None` when the server does not answer part HEADs.
    pub async fn part_layout(
        &self,
        key: &str,
        size: u64,
        n: u32,
    ) -> Result<Option<PartLayout>, S3Error> {
        if n <= 1 {
            return Ok(Some(PartLayout {
                sizes: vec![size],
                inferred: false,
            }));
        }
        let first = match self.part_head(key, 1, n).await? {
            Some(s) => s,
            None => return Ok(None),
        };
        let Some(last) = self.part_head(key, n, n).await? else {
            return Ok(None);
        };
        if (n as u64 - 1)
            .checked_mul(first)
            .and_then(|m| m.checked_add(last))
            == Some(size)
        {
            return Ok(Some(PartLayout {
                sizes: std::iter::repeat_n(first, n as usize - 1)
                    .chain([last])
                    .collect(),
                inferred: n > 2,
            }));
        }
        self.all_part_sizes(key, size, n).await
    }

    /// Sizes of every part, asked one by one.
    pub async fn all_part_sizes(
        &self,
        key: &str,
        size: u64,
        n: u32,
    ) -> Result<Option<PartLayout>, S3Error> {
        if n > MAX_PART_HEADS {
            return Ok(None);
        }
        let mut sizes = Vec::with_capacity(n as usize);
        for i in 1..=n {
            match self.part_head(key, i, n).await? {
                Some(s) => sizes.push(s),
                None => return Ok(None),
            }
        }
        Ok((sizes.iter().sum::<u64>() == size).then_some(PartLayout {
            sizes,
            inferred: false,
        }))
    }

    async fn part_head(&self, key: &str, part: u32, n: u32) -> Result<Option<u64>, S3Error> {
        match self.head(key, Some(part)).await {
            Ok(h) if h.parts_count == Some(n) => Ok(Some(h.size)),
            Ok(_) => Ok(None),
            Err(S3Error::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Parses HEAD/GET response headers.
pub(crate) fn object_head(key: &str, h: &HeaderMap) -> Result<ObjectHead, String> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let size = text("content-length")
        .ok_or("no Content-Length")?
        .parse::<u64>()
        .map_err(|_| "a Content-Length that is not a number".to_string())?;
    let last_modified = text("last-modified").and_then(parse_http_date);
    let etag = text("etag").map(xml::clean_etag).filter(|e| !e.is_empty());
    let sse = text("x-amz-server-side-encryption").unwrap_or("");
    let etag_not_md5 = if sse.starts_with("aws:kms") {
        Some(format!(
            "the object is encrypted with {sse}, whose ETag is not an MD5 of the content"
        ))
    } else if h.contains_key("x-amz-server-side-encryption-customer-algorithm") {
        Some(
            "the object is encrypted with SSE-C, whose ETag is not an MD5 of the content"
                .to_string(),
        )
    } else {
        None
    };
    Ok(ObjectHead {
        key: key.to_string(),
        size,
        etag,
        last_modified,
        checksums: ObjectChecksums::from_headers(h),
        parts_count: text("x-amz-mp-parts-count").and_then(|v| v.parse().ok()),
        etag_not_md5,
    })
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 IMF-fixdate).
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::parse(s).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "10".parse().unwrap());
        h.insert(
            "etag",
            "\"9b2cf535f27731c974343645a3985328\"".parse().unwrap(),
        );
        h.insert(
            "last-modified",
            "Sun, 22 Nov 2026 07:10:57 GMT".parse().unwrap(),
        );
        h.insert("x-amz-server-side-encryption", "aws:kms".parse().unwrap());
        let o = object_head("k", &h).unwrap();
        assert_eq!(o.size, 10);
        assert_eq!(
            o.last_modified,
            Some("2026-11-22T07:10:57Z".parse().unwrap())
        );
        assert!(o.etag_not_md5.is_some());
        h.insert("content-length", "-1".parse().unwrap());
        assert!(object_head("k", &h).is_err());
    }
}
