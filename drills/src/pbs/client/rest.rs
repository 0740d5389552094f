//! The PBS management API over HTTPS (pbs-protocol.md §1): what the watches and the drill's snapshot
//! selection need, read-only, with an API token.
//!
//! One `reqwest` client per [`PbsClient`], HTTP/1.1 only (ALPN `http/1.1`, §1.3) so the same client can
//! also open reader sessions by Upgrade (see `reader.rs`). Bodies are read with a size bound, JSON is parsed
//! with serde into the types of `types.rs`, and every failure becomes a [`PbsError`] that names the server
//! and endpoint and says what to do.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use serde::de::DeserializeOwned;

use super::error::{MAX_ERROR_BODY, Need, PbsError, status_error};
use super::repository::Repository;
use super::tls::{PinSlot, TlsFailure, Trust, find_tls_failure, pinned_config};
use super::types::{
    BackupContent, DataStoreListItem, DataStoreStatus, Envelope, GroupListItem, NamespaceListItem,
    SnapshotListItem, TaskListItem, TaskLogLine, TaskQuery, TaskStatus, VersionInfo,
};
use crate::pbs::crypt::Fingerprint;

/// The node name in task paths; the official client always uses `localhost` (§1.4).
const NODE: &str = "localhost";
/// Largest JSON answer lifeboat reads (a snapshot list of a big datastore is a few MiB).
const MAX_JSON_BODY: u64 = 64 << 20;

/// Timeouts of a [`PbsClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect + TLS handshake.
    pub connect: Duration,
    /// A whole API call, body included; also the reader Upgrade (the official client uses 120 s there).
    pub request: Duration,
    /// Longest silence within a reader-session request (between DATA frames).
    pub reader_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            reader_idle: Duration::from_secs(60),
        }
    }
}

/// A client for one PBS server and token. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct PbsClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) repo: Repository,
    pub(crate) server: String,
    pub(crate) base: String,
    pub(crate) auth: HeaderValue,
    pub(crate) pin: Option<(Fingerprint, PinSlot)>,
    pub(crate) timeouts: Timeouts,
}

impl std::fmt::Debug for PbsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbsClient")
            .field("repository", &self.inner.repo.to_string())
            .finish_non_exhaustive()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a path component, or the token secret:
/// the server percent-decodes it, §1.2).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Authorization: PBSAPIToken <authid>:<percent-encoded secret>` (§1.2).
pub(crate) fn auth_header(auth_id: &str, secret: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!(
        "PBSAPIToken {auth_id}:{}",
        percent_encode(secret.trim())
    ))
    .ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A form-urlencoded query from pairs, skipping `None` values.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// A namespace argument: `None` and `""` both mean the root.
pub(crate) fn ns_arg(ns: Option<&str>) -> Option<&str> {
    ns.map(|n| n.trim_matches('/')).filter(|n| !n.is_empty())
}

/// An error and its sources, joined, without the repetition hyper and reqwest produce.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
        if parts.len() > 8 {
            break;
        }
    }
    parts.join(": ")
}

impl PbsClient {
    /// A client for `repo` authenticating with the token secret `secret`, trusting the server as `trust`
    /// says. Whitespace around the secret (a password file's newline) is ignored. No network traffic
    /// happens here.
    ///
    /// # Errors
    /// `Tls` when the TLS configuration cannot be built, `Protocol` when the secret cannot be sent as a
    /// header.
    pub fn new(repo: &Repository, secret: &str, trust: Trust) -> Result<PbsClient, PbsError> {
        Self::with_timeouts(repo, secret, trust, Timeouts::default())
    }

    /// [`PbsClient::new`] with explicit timeouts.
    ///
    /// # Errors
    /// As [`PbsClient::new`].
    pub fn with_timeouts(
        repo: &Repository,
        secret: &str,
        trust: Trust,
        timeouts: Timeouts,
    ) -> Result<PbsClient, PbsError> {
        let server = repo.server();
        let auth_id = repo.auth_id.to_string();
        let auth = auth_header(&auth_id, secret).ok_or_else(|| PbsError::Protocol {
            server: server.clone(),
            endpoint: "authorization".into(),
            message: "the token secret contains characters that cannot be sent".into(),
        })?;
        let builder = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(timeouts.connect)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")));
        let (builder, pin) = match trust {
            Trust::Fingerprint(expected) => {
                let slot = PinSlot::default();
                let config = pinned_config(expected, slot.clone()).map_err(|e| PbsError::Tls {
                    server: server.clone(),
                    message: e.to_string(),
                })?;
                (
                    builder.tls_backend_preconfigured(config),
                    Some((expected, slot)),
                )
            }
            Trust::System => (builder.tls_backend_rustls(), None),
        };
        let http = builder.build().map_err(|e| PbsError::Tls {
            server: server.clone(),
            message: chain_text(&e),
        })?;
        Ok(PbsClient {
            inner: Arc::new(Inner {
                http,
                repo: repo.clone(),
                base: repo.base_url(),
                server,
                auth,
                pin,
                timeouts,
            }),
        })
    }

    /// The repository this client talks to.
    pub fn repository(&self) -> &Repository {
        &self.inner.repo
    }

    /// Turns a reqwest failure into a [`PbsError`]: pin mismatches first, then TLS, timeouts, connection.
    pub(crate) fn transport_error(&self, e: &reqwest::Error, endpoint: &str) -> PbsError {
        let server = self.inner.server.clone();
        let mismatch = |presented| match &self.inner.pin {
            Some((expected, _)) => PbsError::FingerprintMismatch {
                server: server.clone(),
                presented,
                expected: *expected,
            },
            None => PbsError::Tls {
                server: server.clone(),
                message: format!("unexpected certificate {presented}"),
            },
        };
        match find_tls_failure(e) {
            Some(TlsFailure::Mismatch(m)) => return mismatch(m.presented),
            Some(TlsFailure::Other(message)) => {
                if let Some(presented) = self.inner.pin.as_ref().and_then(|(_, s)| s.get()) {
                    return mismatch(presented);
                }
                return PbsError::Tls { server, message };
            }
            None => {}
        }
        if e.is_connect()
            && let Some(presented) = self.inner.pin.as_ref().and_then(|(_, s)| s.get())
        {
            return mismatch(presented);
        }
        if e.is_timeout() {
            return PbsError::Timeout {
                server,
                endpoint: endpoint.to_string(),
                seconds: self.inner.timeouts.request.as_secs(),
            };
        }
        if e.is_connect() || e.is_request() || e.is_body() {
            return PbsError::Connect {
                server,
                endpoint: endpoint.to_string(),
                message: chain_text(e),
            };
        }
        PbsError::Protocol {
            server,
            endpoint: endpoint.to_string(),
            message: chain_text(e),
        }
    }

    /// Reads a body up to `limit` bytes.
    pub(crate) async fn read_body(
        &self,
        mut resp: reqwest::Response,
        endpoint: &str,
        limit: u64,
    ) -> Result<Vec<u8>, PbsError> {
        let too_large = || PbsError::TooLarge {
            server: self.inner.server.clone(),
            endpoint: endpoint.to_string(),
            limit,
        };
        let declared = resp.content_length().unwrap_or(0);
        if declared > limit {
            return Err(too_large());
        }
        let mut out = Vec::with_capacity(declared as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, endpoint))?
        {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Maps a non-success answer to an error (reads a bounded body for the message).
    pub(crate) async fn status_failure(
        &self,
        resp: reqwest::Response,
        endpoint: &str,
        need: &Need,
    ) -> PbsError {
        let status = resp.status().as_u16();
        // A body that fails to arrive only costs the message.
        let body = match self.read_body(resp, endpoint, MAX_ERROR_BODY as u64).await {
            Ok(body) => body,
            Err(PbsError::TooLarge { .. }) => b"(error body too large)".to_vec(),
            Err(e) => e.to_string().into_bytes(),
        };
        status_error(
            &self.inner.server,
            endpoint,
            &self.inner.repo.auth_id.to_string(),
            status,
            &body,
            need,
        )
    }

    /// `GET /api2/json{path}?{query}` → `data` as `T`.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &str,
        need: Need,
    ) -> Result<T, PbsError> {
        let endpoint = format!("/api2/json{path}");
        let url = if query.is_empty() {
            format!("{}{endpoint}", self.inner.base)
        } else {
            format!("{}{endpoint}?{query}", self.inner.base)
        };
        let resp = self
            .inner
            .http
            .get(url)
            .header(http::header::AUTHORIZATION, self.inner.auth.clone())
            .timeout(self.inner.timeouts.request)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &endpoint))?;
        if !resp.status().is_success() {
            return Err(self.status_failure(resp, &endpoint, &need).await);
        }
        let body = self.read_body(resp, &endpoint, MAX_JSON_BODY).await?;
        serde_json::from_slice::<Envelope<T>>(&body)
            .map(|e| e.data)
            .map_err(|e| PbsError::Protocol {
                server: self.inner.server.clone(),
                endpoint,
                message: format!("invalid JSON answer: {e}"),
            })
    }

    /// Server version; any valid token may ask (a cheap "can I log in" check).
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn version(&self) -> Result<VersionInfo, PbsError> {
        self.get("/version", "", Need::Nothing).await
    }

    /// Datastores the token may see.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn datastores(&self) -> Result<Vec<DataStoreListItem>, PbsError> {
        self.get("/admin/datastore", "", Need::Nothing).await
    }

    /// Usage of `store`.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn datastore_status(&self, store: &str) -> Result<DataStoreStatus, PbsError> {
        let need = audit(store, None);
        self.get(
            &format!("/admin/datastore/{}/status", percent_encode(store)),
            "",
            need,
        )
        .await
    }

    /// Namespaces below `parent` (all depths).
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn namespaces(
        &self,
        store: &str,
        parent: Option<&str>,
    ) -> Result<Vec<NamespaceListItem>, PbsError> {
        let q = query(&[("parent", ns_arg(parent))]);
        let path = format!("/admin/datastore/{}/namespace", percent_encode(store));
        self.get(&path, &q, audit(store, parent)).await
    }

    /// Backup groups in namespace `ns`.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn groups(
        &self,
        store: &str,
        ns: Option<&str>,
    ) -> Result<Vec<GroupListItem>, PbsError> {
        let q = query(&[("ns", ns_arg(ns))]);
        let path = format!("/admin/datastore/{}/groups", percent_encode(store));
        self.get(&path, &q, audit(store, ns)).await
    }

    /// Snapshots in namespace `ns`, optionally of one group `(type, id)` (finished and unfinished ones).
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn snapshots(
        &self,
        store: &str,
        ns: Option<&str>,
        group: Option<(&str, &str)>,
    ) -> Result<Vec<SnapshotListItem>, PbsError> {
        let q = query(&[
            ("ns", ns_arg(ns)),
            ("backup-type", group.map(|g| g.0)),
            ("backup-id", group.map(|g| g.1)),
        ]);
        let path = format!("/admin/datastore/{}/snapshots", percent_encode(store));
        self.get(&path, &q, audit(store, ns)).await
    }

    /// Files of one snapshot.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn files(
        &self,
        store: &str,
        ns: Option<&str>,
        backup_type: &str,
        backup_id: &str,
        backup_time: i64,
    ) -> Result<Vec<BackupContent>, PbsError> {
        let time = backup_time.to_string();
        let q = query(&[
            ("ns", ns_arg(ns)),
            ("backup-type", Some(backup_type)),
            ("backup-id", Some(backup_id)),
            ("backup-time", Some(&time)),
        ]);
        let path = format!("/admin/datastore/{}/files", percent_encode(store));
        let need = Need::DatastoreRead {
            store: store.to_string(),
            ns: ns_arg(ns).map(str::to_string),
        };
        self.get(&path, &q, need).await
    }

    /// The task list (§1.6), newest first.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn tasks(&self, q: &TaskQuery) -> Result<Vec<TaskListItem>, PbsError> {
        self.get(
            &format!("/nodes/{NODE}/tasks"),
            &q.to_query(),
            Need::SysAudit,
        )
        .await
    }

    /// The whole log of task `upid`.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn task_log(&self, upid: &str) -> Result<Vec<TaskLogLine>, PbsError> {
        let path = format!("/nodes/{NODE}/tasks/{}/log", percent_encode(upid));
        self.get(&path, "limit=0", Need::SysAudit).await
    }

    /// The status of task `upid`.
    ///
    /// # Errors
    /// Any [`PbsError`].
    pub async fn task_status(&self, upid: &str) -> Result<TaskStatus, PbsError> {
        let path = format!("/nodes/{NODE}/tasks/{}/status", percent_encode(upid));
        self.get(&path, "", Need::SysAudit).await
    }
}

fn audit(store: &str, ns: Option<&str>) -> Need {
    Need::DatastoreAudit {
        store: store.to_string(),
        ns: ns_arg(ns).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_header_and_encodings() {
        let h = auth_header("drill@pbs!lifeboat", "a b/c:d%\n").unwrap();
        assert_eq!(
            h.to_str().unwrap(),
            "PBSAPIToken drill@pbs!lifeboat:a%20b%2Fc%3Ad%25"
        );
        assert!(h.is_sensitive());
        let upid =
            "UPID:pbs:000004D2:0000162E:00000003:66600000:backup:store1\\x3avm-101:root@pam:";
        assert_eq!(
            percent_encode(upid),
            "UPID%3Apbs%3A000004D2%3A0000162E%3A00000003%3A66600000%3Abackup%3Astore1%5Cx3avm-101%3Aroot%40pam%3A"
        );
        assert_eq!(
            query(&[
                ("ns", Some("a/b")),
                ("backup-type", None),
                ("backup-id", Some("1 0"))
            ]),
            "ns=a%2Fb&backup-id=1+0"
        );
        assert_eq!(ns_arg(Some("/")), None);
        assert_eq!(ns_arg(Some("a/b/")), Some("a/b"));
    }
}
