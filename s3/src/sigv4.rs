//! AWS Signature Version 4 for S3 requests sent in one piece (header-based authentication).
//!
//! Written from the public specification, not ported: the canonical request (method, URI-encoded path,
//! sorted query, sorted lowercase headers, signed header list, payload hash), the string to sign, and the
//! HMAC chain `AWS4`+secret → date → region → service → `aws4_request`. S3 differs from other services in two
//! ways that matter here: the path is encoded once (not twice), and `x-amz-content-sha256` is a required,
//! signed header (the empty-payload hash for a GET). Tests use the example vectors of the AWS S3 API
//! reference (see the test module).

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;

/// SHA-256 of the empty string: `x-amz-content-sha256` of a request without a body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `x-amz-content-sha256` of a request whose body is not part of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Percent-encodes `s` the way SigV4 wants: every byte except `A-Z a-z 0-9 - _ . ~` becomes `%XX`
/// (upper-case hex); `/` is kept when `keep_slash` (object key paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// The canonical query string: pairs encoded, sorted by name then value, joined with `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What is signed.
#[derive(Debug, Clone)]
pub struct RequestToSign<'a> {
    /// `GET`, `HEAD`, `PUT`, ...
    pub method: &'a str,
    /// The absolute path exactly as sent, already URI-encoded (`/bucket/my%20key`).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Headers to sign besides the ones [`sign`] adds; must include `host`.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, [`EMPTY_PAYLOAD_SHA256`] or [`UNSIGNED_PAYLOAD`].
    pub payload_sha256: &'a str,
}

/// Where and when.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// Region (`us-east-1`; most S3-compatible servers accept any, B2 wants its own).
    pub region: &'a str,
    /// Service (`s3`).
    pub service: &'a str,
    /// Signing time (sent as `x-amz-date`).
    pub time: Timestamp,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the fallback only keeps this
    // function total (a wrong signature would be refused by the server, never accepted).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn trim_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The canonical request and signed header list (exposed for tests and debugging; holds no secret).
pub fn canonical_request(req: &RequestToSign<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), trim_value(v)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated names are one canonical header with comma-joined values.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match merged.last_mut() {
            Some(last) if last.0 == k => {
                last.1.push(',');
                last.1.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let creq = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed,
        req.payload_sha256
    );
    (creq, signed)
}

/// Signs a request: returns the headers to send in addition to `req.headers` (`x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` for temporary credentials, `authorization`).
pub fn sign(
    req: &RequestToSign<'_>,
    scope: &Scope<'_>,
    creds: &Credentials,
) -> Vec<(String, String)> {
    let amz_date = scope.time.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut extra = vec![
        (
            "x-amz-content-sha256".to_string(),
            req.payload_sha256.to_string(),
        ),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(t) = &creds.session_token {
        extra.push(("x-amz-security-token".to_string(), t.expose().to_string()));
    }
    let mut all: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("x-amz-date") && !k.eq_ignore_ascii_case("x-amz-content-sha256")
        })
        .cloned()
        .collect();
    all.extend(extra.iter().cloned());
    let full = RequestToSign {
        headers: &all,
        ..req.clone()
    };
    let (creq, signed) = canonical_request(&full);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let key = signing_key(
        creds.secret_access_key.expose(),
        date,
        scope.region,
        scope.service,
    );
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    extra.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope},SignedHeaders={signed},Signature={signature}",
            creds.access_key_id
        ),
    ));
    extra
}

#[cfg(test)]
mod tests {
    //! Vectors from the AWS documentation:
    //! - Amazon S3 API Reference, "Signature Calculations for the Authorization Header: Transferring Payload
    //!   in a Single Chunk (AWS Signature Version 4)", section "Examples: Signature Calculations" (GET Object,
    //!   PUT Object, GET Bucket Lifecycle, Get Bucket (List Objects)); access key `AKIAIOSFODNN7EXAMPLE`,
    //!   bucket `examplebucket`, 2013-05-24, us-east-1.
    //! - AWS General Reference, "Examples of how to derive a signing key for Signature Version 4" (IAM,
    //!   2012-02-15).
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn example(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: &str,
    ) -> String {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = RequestToSign {
            method,
            path,
            query: &query,
            headers: &headers,
            payload_sha256: payload,
        };
        let scope = Scope {
            region: "us-east-1",
            service: "s3",
            time: "2013-05-24T00:00:00Z".parse().unwrap(),
        };
        let out = sign(
            &req,
            &scope,
            &Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET),
        );
        out.into_iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    }

    #[test]
    fn aws_example_get_object() {
        let auth = example(
            "GET",
            "/test.txt",
            &[],
            &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Range", "bytes=0-9"),
            ],
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_example_put_object() {
        let auth = example(
            "PUT",
            &format!("/{}", uri_encode("test$file.text", true)),
            &[],
            &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        );
        assert!(
            auth.ends_with("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
            "{auth}"
        );
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let auth = example(
            "GET",
            "/",
            &[("lifecycle", "")],
            &[("Host", "examplebucket.s3.amazonaws.com")],
            EMPTY_PAYLOAD_SHA256,
        );
        assert!(
            auth.ends_with(
                "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            ),
            "{auth}"
        );
    }

    #[test]
    fn aws_example_list_objects() {
        let auth = example(
            "GET",
            "/",
            &[("prefix", "J"), ("max-keys", "2")],
            &[("Host", "examplebucket.s3.amazonaws.com")],
            EMPTY_PAYLOAD_SHA256,
        );
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn aws_example_signing_key() {
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let headers = vec![("host".to_string(), "h".to_string())];
        let req = RequestToSign {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        let scope = Scope {
            region: "r",
            service: "s3",
            time: Timestamp::UNIX_EPOCH,
        };
        let creds = Credentials::new("AK", "SK").with_session_token("TOKEN");
        let out = sign(&req, &scope, &creds);
        assert!(out.contains(&("x-amz-security-token".to_string(), "TOKEN".to_string())));
        let auth = &out.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
            ),
            "{auth}"
        );
        assert!(!auth.contains("SK"), "{auth}");
    }

    #[test]
    fn encoding() {
        assert_eq!(uri_encode("a b/c~d+é", true), "a%20b/c~d%2B%C3%A9");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(
            canonical_query(&[("b".into(), "2".into()), ("a".into(), "x y".into())]),
            "a=x%20y&b=2"
        );
    }
}
