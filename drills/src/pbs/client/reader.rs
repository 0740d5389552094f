//! The PBS reader protocol (pbs-protocol.md §2): an HTTP/1.1 `GET /api2/json/reader` upgraded to
//! `proxmox-backup-reader-protocol-v1`, then HTTP/2 with prior knowledge on the same TLS stream.
//!
//! The upgrade goes through the HTTP/1.1-only reqwest client (`Response::upgrade`), the HTTP/2 side is `h2`
//! directly with the official client's parameters (§2.2): 2^31-2 byte windows and 4 MiB frames, and the
//! receive capacity of every DATA frame is released at once — without that a download stalls after the
//! first window. The connection is driven by a spawned task; a [`ReaderSession`] is a cheap handle to it, so
//! many requests can be in flight at once (h2 multiplexes them and waits for the server's stream limit).
//! When the last handle is gone the connection says goodbye and lingers until the server has closed too
//! ([`super::linger`]), so PBS logs the reader task as finished successfully, not as a broken pipe.
//!
//! The server serves a chunk only after an index that lists it was downloaded in the same session (§2.3);
//! a refusal (401) becomes [`PbsError::ChunkNotAllowed`]. Responses are bounded (downloads 128 MiB, chunks
//! 16 MiB plus the blob header) so a hostile server cannot exhaust memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::error::{MAX_ERROR_BODY, Need, PbsError, status_error};
use super::rest::{PbsClient, chain_text, ns_arg, query};

/// The Upgrade protocol name (§2.1).
pub const READER_PROTOCOL: &str = "proxmox-backup-reader-protocol-v1";
/// HTTP/2 windows of the official client (§2.2).
const WINDOW: u32 = (1 << 31) - 2;
/// HTTP/2 max frame size of the official client (§2.2).
const MAX_FRAME: u32 = 4 << 20;
/// Largest file lifeboat downloads from a snapshot (a blob is at most 128 MiB, §3.1; an index of a
/// 4 TiB disk is 32 MiB).
pub const MAX_DOWNLOAD: u64 = 128 << 20;
/// Largest chunk: 16 MiB of data (§3.1) plus the encrypted-blob header and a little zstd overhead.
pub const MAX_CHUNK: u64 = (16 << 20) + 64 * 1024;

/// One reader session on one snapshot. Clones share the connection; it closes when the last clone is
/// dropped (the server then ends its `reader` task).
#[derive(Clone)]
pub struct ReaderSession {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    send: h2::client::SendRequest<Bytes>,
    server: String,
    auth_id: String,
    snapshot: String,
    idle: Duration,
    /// Why the connection task ended, if it failed.
    closed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for ReaderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderSession")
            .field("server", &self.inner.server)
            .field("snapshot", &self.inner.snapshot)
            .finish_non_exhaustive()
    }
}

impl PbsClient {
    /// Opens a reader session on snapshot `backup_type/backup_id/backup_time` of `store` (namespace `ns`,
    /// `None` for the root). Needs Datastore.Read on the namespace (§1.7). Must run inside a tokio runtime:
    /// the connection task is spawned on it.
    ///
    /// # Errors
    /// `Forbidden` (with the ACL advice), `NotFound`, `Server` (e.g. the snapshot is locked), transport
    /// errors, or `Protocol` if the server does not switch protocols.
    pub async fn reader(
        &self,
        store: &str,
        ns: Option<&str>,
        backup_type: &str,
        backup_id: &str,
        backup_time: i64,
    ) -> Result<ReaderSession, PbsError> {
        let inner = &self.inner;
        let endpoint = "/api2/json/reader".to_string();
        let time = backup_time.to_string();
        let ns = ns_arg(ns);
        let q = query(&[
            ("backup-type", Some(backup_type)),
            ("backup-id", Some(backup_id)),
            ("backup-time", Some(&time)),
            ("store", Some(store)),
            ("ns", ns),
            ("debug", Some("false")),
        ]);
        let snapshot = match ns {
            Some(ns) => format!("{store}:{ns}/{backup_type}/{backup_id}/{backup_time}"),
            None => format!("{store}:{backup_type}/{backup_id}/{backup_time}"),
        };
        let resp = inner
            .http
            .get(format!("{}{endpoint}?{q}", inner.base))
            .header(http::header::AUTHORIZATION, inner.auth.clone())
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, READER_PROTOCOL)
            .timeout(inner.timeouts.request)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &endpoint))?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            if status.is_success() {
                return Err(PbsError::Protocol {
                    server: inner.server.clone(),
                    endpoint,
                    message: format!("expected 101 Switching Protocols, got {status}"),
                });
            }
            let need = Need::DatastoreRead {
                store: store.to_string(),
                ns: ns.map(str::to_string),
            };
            return Err(self.status_failure(resp, &endpoint, &need).await);
        }
        let upgraded = resp.upgrade().await.map_err(|e| PbsError::Connect {
            server: inner.server.clone(),
            endpoint: endpoint.clone(),
            message: format!("upgrade failed: {}", chain_text(&e)),
        })?;
        let handshake = h2::client::Builder::new()
            .initial_window_size(WINDOW)
            .initial_connection_window_size(WINDOW)
            .max_frame_size(MAX_FRAME)
            .handshake::<_, Bytes>(super::linger::Lingering::new(upgraded));
        let (send, connection) = tokio::time::timeout(inner.timeouts.request, handshake)
            .await
            .map_err(|_| PbsError::Timeout {
                server: inner.server.clone(),
                endpoint: endpoint.clone(),
                seconds: inner.timeouts.request.as_secs(),
            })?
            .map_err(|e| PbsError::Connect {
                server: inner.server.clone(),
                endpoint: endpoint.clone(),
                message: format!("HTTP/2 handshake failed: {e}"),
            })?;
        let closed = Arc::new(Mutex::new(None));
        let closed_by_task = closed.clone();
        // Ends when the server closes or when every SendRequest (every session clone) is gone.
        tokio::spawn(async move {
            if let Err(e) = connection.await
                && let Ok(mut slot) = closed_by_task.lock()
            {
                *slot = Some(e.to_string());
            }
        });
        Ok(ReaderSession {
            inner: Arc::new(SessionInner {
                send,
                server: inner.server.clone(),
                auth_id: inner.repo.auth_id.to_string(),
                snapshot,
                idle: inner.timeouts.reader_idle,
                closed,
            }),
        })
    }
}

/// Upstream's SAFE_ID for `file-name` (§2.3).
fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl ReaderSession {
    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// `store:[ns/]type/id/time`, for messages.
    pub fn snapshot(&self) -> &str {
        &self.inner.snapshot
    }

    /// Downloads a file of the snapshot exactly as stored (blob, `.fidx`, `.didx`). Downloading an index
    /// allows its chunks in this session (§2.3).
    ///
    /// # Errors
    /// `NotFound` for a missing file, `TooLarge` beyond [`MAX_DOWNLOAD`], transport errors (transient).
    pub async fn download(&self, file_name: &str) -> Result<Vec<u8>, PbsError> {
        let endpoint = format!("reader {} download {file_name}", self.inner.snapshot);
        if !valid_file_name(file_name) {
            return Err(PbsError::Protocol {
                server: self.inner.server.clone(),
                endpoint,
                message: format!("{file_name:?} is not a valid snapshot file name"),
            });
        }
        let path = format!("/download?{}", query(&[("file-name", Some(file_name))]));
        match self.request(&path, &endpoint, MAX_DOWNLOAD).await? {
            (StatusCode::OK, body) => Ok(body),
            (status, body) => Err(self.status_error(&endpoint, status, &body)),
        }
    }

    /// Downloads the raw chunk (a DataBlob) with `digest`; the caller verifies it.
    ///
    /// # Errors
    /// `ChunkNotAllowed` when no index listing it was downloaded in this session, `Server` 400 when the
    /// server cannot read the chunk, `TooLarge` beyond [`MAX_CHUNK`], transport errors (transient).
    pub async fn chunk(&self, digest: &[u8; 32]) -> Result<Vec<u8>, PbsError> {
        let hex = hex::encode(digest);
        let endpoint = format!("reader {} chunk {hex}", self.inner.snapshot);
        let path = format!("/chunk?digest={hex}");
        match self.request(&path, &endpoint, MAX_CHUNK).await? {
            (StatusCode::OK, body) => Ok(body),
            (StatusCode::UNAUTHORIZED, body) => Err(PbsError::ChunkNotAllowed {
                server: self.inner.server.clone(),
                digest: hex,
                message: super::error::error_message(&body),
            }),
            (status, body) => Err(self.status_error(&endpoint, status, &body)),
        }
    }

    fn status_error(&self, endpoint: &str, status: StatusCode, body: &[u8]) -> PbsError {
        status_error(
            &self.inner.server,
            endpoint,
            &self.inner.auth_id,
            status.as_u16(),
            body,
            &Need::Nothing,
        )
    }

    fn lost(&self, endpoint: &str, e: &h2::Error) -> PbsError {
        let why = self
            .inner
            .closed
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .filter(|w| *w != e.to_string());
        let message = match why {
            Some(why) => format!("reader connection lost: {e} ({why})"),
            None => format!("reader connection lost: {e}"),
        };
        PbsError::Connect {
            server: self.inner.server.clone(),
            endpoint: endpoint.to_string(),
            message,
        }
    }

    fn timeout(&self, endpoint: &str) -> PbsError {
        PbsError::Timeout {
            server: self.inner.server.clone(),
            endpoint: endpoint.to_string(),
            seconds: self.inner.idle.as_secs(),
        }
    }

    /// One GET on the session: status and body (bounded by `limit` for 200, by the error bound otherwise).
    async fn request(
        &self,
        path_and_query: &str,
        endpoint: &str,
        limit: u64,
    ) -> Result<(StatusCode, Vec<u8>), PbsError> {
        let idle = self.inner.idle;
        // `:authority localhost:8007`, as the official client sends (§2.2).
        let request = http::Request::builder()
            .method(http::Method::GET)
            .uri(format!("https://localhost:8007{path_and_query}"))
            .body(())
            .map_err(|e| PbsError::Protocol {
                server: self.inner.server.clone(),
                endpoint: endpoint.to_string(),
                message: format!("cannot build the request: {e}"),
            })?;
        let mut send = tokio::time::timeout(idle, self.inner.send.clone().ready())
            .await
            .map_err(|_| self.timeout(endpoint))?
            .map_err(|e| self.lost(endpoint, &e))?;
        let (response, _) = send
            .send_request(request, true)
            .map_err(|e| self.lost(endpoint, &e))?;
        let response = tokio::time::timeout(idle, response)
            .await
            .map_err(|_| self.timeout(endpoint))?
            .map_err(|e| self.lost(endpoint, &e))?;
        let status = response.status();
        let limit = if status == StatusCode::OK {
            limit
        } else {
            MAX_ERROR_BODY as u64
        };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || PbsError::TooLarge {
            server: self.inner.server.clone(),
            endpoint: endpoint.to_string(),
            limit,
        };
        if declared.is_some_and(|d| d > limit) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
        loop {
            let frame = tokio::time::timeout(idle, body.data())
                .await
                .map_err(|_| self.timeout(endpoint))?;
            let Some(frame) = frame else { break };
            let data = frame.map_err(|e| self.lost(endpoint, &e))?;
            // Give the window back at once (§2.2); a failure here means the stream is gone, which the
            // next `data()` reports.
            let _ = body.flow_control().release_capacity(data.len());
            if (out.len() + data.len()) as u64 > limit {
                // Dropping `body` resets the stream.
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
        Ok((status, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_safe_id() {
        assert!(valid_file_name("index.json.blob"));
        assert!(valid_file_name("drive-scsi0.img.fidx"));
        assert!(valid_file_name("_x"));
        assert!(!valid_file_name("../etc/passwd"));
        assert!(!valid_file_name(".hidden"));
        assert!(!valid_file_name("a/b"));
        assert!(!valid_file_name(""));
        assert!(!valid_file_name("a b"));
    }
}
