//! Reader sessions as the prefetcher sees them: something that serves raw chunks ([`ChunkSession`]) and
//! something that opens such a session with the archive's index already downloaded ([`SessionFactory`]).
//!
//! The split exists for two reasons: the prefetcher's retry logic is tested against an in-memory session
//! (no network), and reopening a session is more than connecting — PBS serves a chunk only after an index
//! naming it was downloaded in the same session (pbs-protocol.md §2.3), so the factory re-downloads the
//! index and [`SnapshotSessions`] checks it is still the one the caller verified.

use std::future::Future;
use std::pin::Pin;

use super::error::PbsError;
use super::reader::ReaderSession;
use super::rest::PbsClient;
use crate::pbs::crypt::sha256;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that serves raw chunks: a [`ReaderSession`], or a test double.
pub trait ChunkSession: Clone + Send + Sync + 'static {
    /// The raw blob of chunk `digest`.
    fn fetch_chunk(&self, digest: [u8; 32]) -> BoxFuture<'static, Result<Vec<u8>, PbsError>>;
}

impl ChunkSession for ReaderSession {
    fn fetch_chunk(&self, digest: [u8; 32]) -> BoxFuture<'static, Result<Vec<u8>, PbsError>> {
        let session = self.clone();
        Box::pin(async move { session.chunk(&digest).await })
    }
}

/// Opens a session in which the archive's chunks may be downloaded (i.e. its index was downloaded).
/// Any `Fn() -> impl Future<Output = Result<S, PbsError>>` closure is one.
pub trait SessionFactory: Send + Sync + 'static {
    /// The session type.
    type Session: ChunkSession;
    /// Opens a new session.
    fn open(&self) -> BoxFuture<'_, Result<Self::Session, PbsError>>;
}

impl<F, Fut, S> SessionFactory for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, PbsError>> + Send + 'static,
    S: ChunkSession,
{
    type Session = S;
    fn open(&self) -> BoxFuture<'_, Result<S, PbsError>> {
        Box::pin(self())
    }
}

/// Opens reader sessions on one snapshot and downloads the given indexes in each, checking that they are
/// still the bytes the caller verified.
#[derive(Debug, Clone)]
pub struct SnapshotSessions {
    client: PbsClient,
    store: String,
    ns: Option<String>,
    backup_type: String,
    backup_id: String,
    backup_time: i64,
    indexes: Vec<(String, Option<[u8; 32]>)>,
}

impl SnapshotSessions {
    /// Sessions on `store`, namespace `ns`, snapshot `backup_type/backup_id/backup_time`.
    pub fn new(
        client: PbsClient,
        store: &str,
        ns: Option<&str>,
        backup_type: &str,
        backup_id: &str,
        backup_time: i64,
    ) -> Self {
        SnapshotSessions {
            client,
            store: store.to_string(),
            ns: ns.map(str::to_string),
            backup_type: backup_type.to_string(),
            backup_id: backup_id.to_string(),
            backup_time,
            indexes: Vec::new(),
        }
    }

    /// Also downloads index `name` in every session; with `sha256`, a session whose index bytes differ
    /// fails (the chunk list the caller verified would no longer be the server's).
    pub fn index(mut self, name: &str, sha256: Option<[u8; 32]>) -> Self {
        self.indexes.push((name.to_string(), sha256));
        self
    }
}

impl SessionFactory for SnapshotSessions {
    type Session = ReaderSession;

    fn open(&self) -> BoxFuture<'_, Result<ReaderSession, PbsError>> {
        Box::pin(async move {
            let session = self
                .client
                .reader(
                    &self.store,
                    self.ns.as_deref(),
                    &self.backup_type,
                    &self.backup_id,
                    self.backup_time,
                )
                .await?;
            for (name, expected) in &self.indexes {
                let data = session.download(name).await?;
                if expected.is_some_and(|e| e != sha256(&data)) {
                    return Err(PbsError::Protocol {
                        server: session.server().to_string(),
                        endpoint: format!("reader {} download {name}", session.snapshot()),
                        message: "the index changed on the server since it was verified".into(),
                    });
                }
            }
            Ok(session)
        })
    }
}
