//! A native Proxmox Backup Server client: what `proxmox-backup-client` does for reading, without Proxmox
//! software installed (pbs-protocol.md §1 and §2).
//!
//! - [`repository`]: the `user@realm!token@server[:port]:datastore` string users already know;
//! - [`tls`]: strict fingerprint pinning (or system CAs), ALPN `http/1.1`;
//! - [`rest`]: [`PbsClient`], the management API with an API token, and the watch helpers;
//! - [`types`]: the JSON shapes of the answers;
//! - [`watch`]: newest finished snapshots and failed backup tasks, for the agent's watches;
//! - [`reader`]: reader sessions (HTTP/1.1 Upgrade → HTTP/2) to download files and raw chunks;
//! - [`prefetch`]: [`ChunkPrefetcher`], ordered, deduplicated, bounded, retrying chunk fetches for the
//!   synchronous drill engine, over [`sessions`] (what it fetches from) and `retry` (how it reconnects);
//! - [`error`]: [`PbsError`], which says what to fix and whether a retry helps.
//!
//! lifeboat only reads: reader sessions take a shared lock on the snapshot, nothing is written or pruned.
//! Chunk bytes are returned raw; verifying them (CRC, decryption, digest) is the restore layer's job.

pub mod error;
mod linger;
pub mod prefetch;
pub mod reader;
pub mod repository;
pub mod rest;
mod retry;
pub mod sessions;
pub mod tls;
pub mod types;
pub mod watch;

pub use error::PbsError;
pub use prefetch::{ChunkPrefetcher, PrefetchOptions, PrefetchStats};
pub use reader::ReaderSession;
pub use repository::{AuthId, Repository, RepositoryError};
pub use rest::{PbsClient, Timeouts};
pub use sessions::{BoxFuture, ChunkSession, SessionFactory, SnapshotSessions};
pub use tls::Trust;
pub use types::*;
