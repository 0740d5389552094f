//! Errors of the PBS client, written for the person who has to fix them.
//!
//! Every variant names the server and the endpoint and, where lifeboat can know it, says what to do: a wrong
//! pin prints both fingerprints, a 401 points at the secret, a 403 names the privilege, the ACL path and the
//! role to grant (pbs-protocol.md §1.7). [`PbsError::is_transient`] is the single place that decides whether
//! a retry (and for the reader protocol a new session) can help; the prefetcher relies on it.
//!
//! Error bodies of PBS are plain text despite their JSON content type (§1.1), so `error_message` accepts
//! text, a JSON string or an object with a `message`, and always returns one bounded line.

use crate::pbs::crypt::Fingerprint;

/// What went wrong talking to a Proxmox Backup Server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PbsError {
    /// The server's TLS certificate does not match the pinned fingerprint.
    #[error(
        "PBS {server}: the TLS certificate does not match the pinned fingerprint: the server presented \
         {presented}, expected {expected}. If the certificate was renewed on purpose, compare the presented \
         value with `proxmox-backup-manager cert info` on the server and update `fingerprint` (or \
         PBS_FINGERPRINT)"
    )]
    FingerprintMismatch {
        /// `host:port`.
        server: String,
        /// SHA-256 of the leaf certificate the server sent.
        presented: Fingerprint,
        /// The configured pin.
        expected: Fingerprint,
    },
    /// The TLS handshake failed for another reason.
    #[error(
        "PBS {server}: TLS handshake failed: {message}. A self-signed PBS certificate needs its fingerprint \
         configured (`fingerprint` / PBS_FINGERPRINT)"
    )]
    Tls {
        /// `host:port`.
        server: String,
        /// The TLS library's reason.
        message: String,
    },
    /// No connection could be made, or it broke (transient).
    #[error(
        "PBS {server}: {endpoint}: connection failed: {message}; check that PBS is running and reachable \
         from this host (address, port, firewall)"
    )]
    Connect {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The server did not answer in time (transient).
    #[error("PBS {server}: {endpoint}: no answer within {seconds} s")]
    Timeout {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// The timeout that expired.
        seconds: u64,
    },
    /// HTTP 401 on an API call: the token is not accepted.
    #[error(
        "PBS {server}: {endpoint}: the API token {auth_id} was rejected (401 {message}): the token id or \
         secret is wrong, or the token is disabled or expired; check `password_file` / PBS_PASSWORD and the \
         token id in `repository`"
    )]
    Unauthorized {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// The token id that was sent.
        auth_id: String,
        /// The server's message.
        message: String,
    },
    /// HTTP 403: the token lacks a privilege.
    #[error("PBS {server}: {endpoint}: permission denied (403 {message}): {advice}")]
    Forbidden {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// The ACL path the privilege is checked on, when known.
        acl_path: Option<String>,
        /// The server's message.
        message: String,
        /// The privilege, path and role to grant.
        advice: String,
    },
    /// HTTP 404, or a file missing in a reader session.
    #[error("PBS {server}: {endpoint}: not found (404 {message})")]
    NotFound {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// The server's message.
        message: String,
    },
    /// A reader session refused a chunk whose index was not downloaded in that session (HTTP 401, §2.3).
    #[error(
        "PBS {server}: reader session refused chunk {digest} ({message}): the server only serves chunks of \
         indexes downloaded in the same session; download the archive's index first"
    )]
    ChunkNotAllowed {
        /// `host:port`.
        server: String,
        /// Chunk digest, hex.
        digest: String,
        /// The server's message.
        message: String,
    },
    /// Any other HTTP error status (5xx are transient).
    #[error("PBS {server}: {endpoint}: HTTP {status}: {message}")]
    Server {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A response exceeded lifeboat's size bound.
    #[error(
        "PBS {server}: {endpoint}: the response is larger than {limit} bytes; refusing to read it"
    )]
    TooLarge {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// The bound.
        limit: u64,
    },
    /// The server answered something lifeboat does not understand (bad JSON, a missing upgrade, ...).
    #[error("PBS {server}: {endpoint}: unexpected answer: {message}")]
    Protocol {
        /// `host:port`.
        server: String,
        /// What was being requested.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
}

impl PbsError {
    /// Whether retrying (over a new connection) can help: connection failures, timeouts and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            PbsError::Connect { .. } | PbsError::Timeout { .. } => true,
            PbsError::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// The privilege an endpoint needs, to turn a 403 into advice (pbs-protocol.md §1.4, §1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// Listing and status of a datastore: Datastore.Audit.
    DatastoreAudit { store: String, ns: Option<String> },
    /// Reading snapshot contents (files, reader protocol): Datastore.Read.
    DatastoreRead { store: String, ns: Option<String> },
    /// The task list and logs of backups started by others: Sys.Audit on /system/tasks.
    SysAudit,
    /// Nothing in particular (any authenticated token).
    Nothing,
}

/// The ACL path of a datastore (namespace): `/datastore/{store}[/{ns1}/{ns2}...]` (§1.4).
pub(crate) fn datastore_acl_path(store: &str, ns: Option<&str>) -> String {
    match ns.map(|n| n.trim_matches('/')).filter(|n| !n.is_empty()) {
        Some(ns) => format!("/datastore/{store}/{ns}"),
        None => format!("/datastore/{store}"),
    }
}

/// The ACL path and the advice for a 403 on an endpoint that needs `need`.
pub(crate) fn forbidden_advice(need: &Need) -> (Option<String>, String) {
    const BOTH: &str =
        "(for both the user and the token: token privileges are intersected with the user's)";
    match need {
        Need::DatastoreRead { store, ns } => {
            let path = datastore_acl_path(store, ns.as_deref());
            let advice = format!(
                "the token needs Datastore.Read on {path}: grant role DatastoreReader on {path} {BOTH}"
            );
            (Some(path), advice)
        }
        Need::DatastoreAudit { store, ns } => {
            let path = datastore_acl_path(store, ns.as_deref());
            let advice = format!(
                "the token needs Datastore.Audit on {path}: grant role DatastoreReader (or DatastoreAudit) \
                 on {path} {BOTH}"
            );
            (Some(path), advice)
        }
        Need::SysAudit => {
            let path = "/system/tasks".to_string();
            let advice = format!(
                "the token needs Sys.Audit on {path} to see backup tasks started by others: grant role Audit \
                 on {path} {BOTH}"
            );
            (Some(path), advice)
        }
        Need::Nothing => (
            None,
            "check the token's ACLs with `proxmox-backup-manager user permissions <token-id>`"
                .to_string(),
        ),
    }
}

/// Largest error body lifeboat reads.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest message kept from an error body.
const MAX_MESSAGE_CHARS: usize = 400;

/// One readable line from an error body: plain text (PBS, §1.1), a JSON string, or a JSON object with a
/// `message`/`error`/`errors` field. Control characters are replaced and the result is bounded.
pub(crate) fn error_message(body: &[u8]) -> String {
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let from_json = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::String(s)) => Some(s),
        Ok(serde_json::Value::Object(map)) => ["message", "error", "errors", "data"]
            .iter()
            .find_map(|k| map.get(*k).filter(|v| !v.is_null()))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        _ => None,
    };
    let text = from_json.as_deref().unwrap_or(text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    let out = out.trim().to_string();
    if out.is_empty() {
        "(no message)".to_string()
    } else {
        out
    }
}

/// Maps a non-success HTTP status of an API call to an error.
pub(crate) fn status_error(
    server: &str,
    endpoint: &str,
    auth_id: &str,
    status: u16,
    body: &[u8],
    need: &Need,
) -> PbsError {
    let message = error_message(body);
    let server = server.to_string();
    let endpoint = endpoint.to_string();
    match status {
        401 => PbsError::Unauthorized {
            server,
            endpoint,
            auth_id: auth_id.to_string(),
            message,
        },
        403 => {
            let (acl_path, advice) = forbidden_advice(need);
            PbsError::Forbidden {
                server,
                endpoint,
                acl_path,
                message,
                advice,
            }
        }
        404 => PbsError::NotFound {
            server,
            endpoint,
            message,
        },
        _ => PbsError::Server {
            server,
            endpoint,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_defensively() {
        assert_eq!(
            error_message(b"permission check failed\n"),
            "permission check failed"
        );
        assert_eq!(error_message(b"\"quoted text\""), "quoted text");
        assert_eq!(error_message(br#"{"message":"boom","data":null}"#), "boom");
        assert_eq!(
            error_message(br#"{"data":null,"errors":{"store":"bad"}}"#),
            r#"{"store":"bad"}"#
        );
        assert_eq!(error_message(b""), "(no message)");
        assert_eq!(error_message(b"a\x1b[31mb\r\nc"), "a [31mb  c");
        assert_eq!(error_message(&[0xff, 0xfe, b'x']), "\u{fffd}\u{fffd}x");
        let long = vec![b'x'; 1 << 20];
        let m = error_message(&long);
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn forbidden_names_privilege_path_and_role() {
        let need = Need::DatastoreRead {
            store: "store1".into(),
            ns: None,
        };
        let e = status_error(
            "pbs:8007",
            "/api2/json/reader",
            "a@pbs!t",
            403,
            b"permission check failed",
            &need,
        );
        let text = e.to_string();
        assert!(
            text.contains("Datastore.Read on /datastore/store1"),
            "{text}"
        );
        assert!(
            text.contains(
                "grant role DatastoreReader on /datastore/store1 (for both the user and the token"
            ),
            "{text}"
        );
        assert!(text.contains("permission check failed"), "{text}");
        assert!(
            matches!(e, PbsError::Forbidden { acl_path: Some(ref p), .. } if p == "/datastore/store1")
        );
        assert!(!e.is_transient());

        let need = Need::DatastoreAudit {
            store: "s".into(),
            ns: Some("dept/a/".into()),
        };
        let (path, advice) = forbidden_advice(&need);
        assert_eq!(path.as_deref(), Some("/datastore/s/dept/a"));
        assert!(
            advice.contains("Datastore.Audit on /datastore/s/dept/a"),
            "{advice}"
        );

        let (path, advice) = forbidden_advice(&Need::SysAudit);
        assert_eq!(path.as_deref(), Some("/system/tasks"));
        assert!(
            advice.contains("grant role Audit on /system/tasks"),
            "{advice}"
        );
    }

    #[test]
    fn statuses_map_to_variants() {
        let e = status_error(
            "h:1",
            "/x",
            "a@pbs!t",
            401,
            b"authentication failed - invalid token",
            &Need::Nothing,
        );
        assert!(matches!(e, PbsError::Unauthorized { .. }));
        let text = e.to_string();
        assert!(
            text.contains("a@pbs!t")
                && text.contains("password_file")
                && text.contains("PBS_PASSWORD")
        );
        let e = status_error("h:1", "/x", "a", 404, b"no such datastore", &Need::Nothing);
        assert!(matches!(e, PbsError::NotFound { .. }) && !e.is_transient());
        let e = status_error("h:1", "/x", "a", 503, b"busy", &Need::Nothing);
        assert!(matches!(e, PbsError::Server { status: 503, .. }) && e.is_transient());
        let e = status_error(
            "h:1",
            "/x",
            "a",
            400,
            b"parameter verification failed",
            &Need::Nothing,
        );
        assert!(!e.is_transient());
    }
}
