//! What can go wrong talking to an S3 service, classified so the drill engine can tell "the drill could not
//! run" from "the backup is bad", and so a person knows what to do.
//!
//! Every message names the endpoint, the bucket and (when there is one) the key, and ends with advice.
//! Nothing here ever holds a credential: requests are signed in [`crate::sigv4`] and only status codes,
//! S3 error codes and server messages (bounded in length) are kept.

use std::fmt;

/// Which object (or bucket) an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The endpoint as configured (`https://s3.us-west-004.backblazeb2.com`).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The key, when the request was about one object.
    pub key: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(
                f,
                "object {k:?} in bucket {} at {}",
                self.bucket, self.endpoint
            ),
            None => write!(f, "bucket {} at {}", self.bucket, self.endpoint),
        }
    }
}

/// An S3 failure. [`S3Error::is_transient`] says whether retrying later can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    /// The service could not be reached or kept failing with transient errors (connection refused or reset,
    /// timeouts, 5xx, throttling) until the retries ran out.
    #[error(
        "{target}: unreachable after {attempts} attempts: {detail}; check `endpoint`, the network and that the S3 service is up (retrying later may help)"
    )]
    Unreachable {
        /// Where.
        target: Box<Target>,
        /// Requests made.
        attempts: u32,
        /// The last failure.
        detail: String,
    },
    /// The credentials were refused (wrong key or secret, expired token, missing permission, clock skew).
    #[error("{target}: access refused ({status} {code}: {message}); {advice}")]
    Auth {
        /// Where.
        target: Box<Target>,
        /// HTTP status.
        status: u16,
        /// S3 error code (`InvalidAccessKeyId`, `SignatureDoesNotMatch`, `AccessDenied`, ...).
        code: String,
        /// The server's message.
        message: String,
        /// What to do.
        advice: String,
    },
    /// The bucket does not exist.
    #[error(
        "{target}: the bucket does not exist (NoSuchBucket); check `bucket`, `endpoint` and `region` in the source"
    )]
    NoSuchBucket {
        /// Where.
        target: Box<Target>,
    },
    /// The object does not exist (any more).
    #[error(
        "{target}: the object does not exist (NoSuchKey); it may have been deleted after it was listed (a prune or lifecycle rule running); run the drill again"
    )]
    NoSuchKey {
        /// Where.
        target: Box<Target>,
    },
    /// The object was replaced while it was read (`If-Match` on its ETag failed).
    #[error(
        "{target}: the object changed while it was read (its ETag is no longer {etag}): a backup job replaced it; run the drill again"
    )]
    Changed {
        /// Where.
        target: Box<Target>,
        /// The ETag the read started with.
        etag: String,
    },
    /// Any other refusal that retrying will not fix (a 4xx, a redirect to another region).
    #[error("{target}: the server refused the request ({status} {code}: {message}){advice}")]
    Refused {
        /// Where.
        target: Box<Target>,
        /// HTTP status.
        status: u16,
        /// S3 error code, or empty.
        code: String,
        /// The server's message, or empty.
        message: String,
        /// What to do, starting with `; ` (or empty).
        advice: String,
    },
    /// The server answered something that is not S3 (malformed XML or headers, a bad range, too large).
    #[error("{target}: unexpected answer from the server: {detail}; is `endpoint` an S3 service?")]
    Protocol {
        /// Where.
        target: Box<Target>,
        /// What was wrong.
        detail: String,
    },
    /// The server's TLS certificate was refused (unknown issuer, wrong host name, expired). Retrying will
    /// not help; trusting the right CA or fixing the endpoint will.
    #[error(
        "{target}: the server's TLS certificate was not accepted ({detail}); if the service uses a private CA, set `ca_file` in the source to that CA's certificate (PEM); check that `endpoint` names a host the certificate is issued for"
    )]
    Tls {
        /// Where.
        target: Box<Target>,
        /// What rustls said about the certificate.
        detail: String,
    },
    /// The client could not be set up (bad endpoint URL, unreadable CA file).
    #[error("{0}")]
    Config(String),
}

impl S3Error {
    /// Whether trying again later can help (the service was unreachable or the object changed under us).
    pub fn is_transient(&self) -> bool {
        matches!(self, S3Error::Unreachable { .. } | S3Error::Changed { .. })
    }

    /// The object or bucket the error is about.
    pub fn target(&self) -> Option<&Target> {
        match self {
            S3Error::Unreachable { target, .. }
            | S3Error::Auth { target, .. }
            | S3Error::NoSuchBucket { target }
            | S3Error::NoSuchKey { target }
            | S3Error::Changed { target, .. }
            | S3Error::Refused { target, .. }
            | S3Error::Protocol { target, .. }
            | S3Error::Tls { target, .. } => Some(&**target),
            S3Error::Config(_) => None,
        }
    }
}

/// Advice for an authentication failure, by S3 error code.
pub fn auth_advice(code: &str) -> String {
    match code {
        "RequestTimeTooSkewed" => {
            "this host's clock is too far from the server's: synchronize it (NTP)".to_string()
        }
        "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => {
            "the session token expired or is invalid: refresh AWS_SESSION_TOKEN (or use long-term keys)".to_string()
        }
        "AccessDenied" | "AllAccessDisabled" => "the key is valid but may not do this: grant it s3:ListBucket on the bucket and s3:GetObject on its objects (see the README's read-only policy); retrying will not help".to_string(),
        _ => "check the access key id and secret (access_key_id_file / secret_access_key_file, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and `region`; retrying will not help".to_string(),
    }
}

/// The certificate error in `err`'s chain, if the request failed because the server's certificate was
/// refused. `io::Error` hides its payload from `source()`, so the walk also looks inside with `get_ref()`.
pub(crate) fn certificate_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    for _ in 0..32 {
        let e = next?;
        if let Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) =
            e.downcast_ref::<rustls::Error>()
        {
            return Some(e.to_string());
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(found) = certificate_failure(inner)
        {
            return Some(found);
        }
        next = e.source();
    }
    None
}
