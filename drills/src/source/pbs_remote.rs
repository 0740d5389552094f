//! `type = "pbs"`: a Proxmox Backup Server reached over its API and reader protocol, natively (no Proxmox
//! tools installed), with a read-only API token.
//!
//! Listing uses the REST API; a restore opens one reader session (HTTP/1.1 upgrade to HTTP/2), downloads the
//! manifest and indexes, and streams chunks through a prefetcher (several requests in flight, each distinct
//! chunk fetched once, reconnects on transient failures). Everything that judges the backup is shared with
//! the datastore source ([`super::pbs_restore`]). A server that stays unreachable is an `error`, never
//! `failed`.
//!
//! The drill engine is synchronous; this source owns a small tokio runtime and hands it futures, waiting on
//! plain channels, so it works from any thread (a CLI thread or the agent's blocking pool).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jiff::Timestamp;
use serde::Deserialize;

use super::pbs_restore::{RawChunks, SnapshotAccess, load_key, restore_snapshot, snapshot_details};
use super::{RestoreRequest, Restored, Source, SourceError};
use crate::extract::{RestoreError, SourceState};
use crate::model::{Snapshot, SnapshotKind, TimeSource};
use crate::pbs::chunks::{ChunkFault, ChunkRef};
use crate::pbs::client::{
    ChunkPrefetcher, PbsClient, PbsError, PrefetchOptions, ReaderSession, Repository,
    SessionFactory, SnapshotSessions, Trust,
};
use crate::pbs::crypt::{Fingerprint, sha256};
use crate::pbs::manifest::{CryptMode, MANIFEST_BLOB_NAME};

/// `[sources.NAME] type = "pbs"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbsConfig {
    /// `user@realm!token@host[:port]:datastore` (PBS_REPOSITORY syntax).
    pub repository: String,
    /// Namespace (`"prod"`, `"prod/db"`); default the root namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// SHA-256 fingerprint of the server's certificate (strict pin); else `PBS_FINGERPRINT`; else the
    /// system's certificate authorities.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// File holding the API token secret; else `PBS_PASSWORD`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Key file for client-side encrypted backups; its passphrase comes from `PBS_ENCRYPTION_PASSWORD`.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
}

impl PbsConfig {
    /// Checks what can be checked without the network (for `check-config`).
    pub fn validate(&self) -> Result<(), String> {
        self.repository
            .parse::<Repository>()
            .map_err(|e| e.to_string())?;
        if let Some(f) = &self.fingerprint {
            f.parse::<Fingerprint>()
                .map_err(|e| format!("invalid fingerprint: {e}"))?;
        }
        Ok(())
    }
}

/// A PBS server.
pub struct PbsSource {
    config: PbsConfig,
    rt: super::net_runtime::NetRuntime,
    client: OnceLock<Result<PbsClient, String>>,
}

fn env_error(what: String) -> SourceError {
    SourceError::Unavailable(what)
}

impl PbsSource {
    /// Builds from configuration; nothing connects until the first call.
    pub fn new(c: &PbsConfig) -> Self {
        PbsSource {
            config: c.clone(),
            rt: super::net_runtime::NetRuntime::new("lifeboat-pbs"),
            client: OnceLock::new(),
        }
    }

    fn repository(&self) -> Result<Repository, String> {
        self.config
            .repository
            .parse::<Repository>()
            .map_err(|e| e.to_string())
    }

    fn client(&self) -> Result<PbsClient, String> {
        self.client
            .get_or_init(|| {
                let repo = self.repository()?;
                let secret = match &self.config.password_file {
                    Some(p) => std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read password_file {}: {e}", p.display()))?
                        .trim()
                        .to_string(),
                    None => std::env::var("PBS_PASSWORD").map_err(|_| {
                        "no token secret: set `password_file` in the source or PBS_PASSWORD"
                            .to_string()
                    })?,
                };
                let pin = self
                    .config
                    .fingerprint
                    .clone()
                    .or_else(|| std::env::var("PBS_FINGERPRINT").ok());
                let trust = match pin {
                    Some(f) => Trust::Fingerprint(
                        f.parse::<Fingerprint>()
                            .map_err(|e| format!("invalid fingerprint: {e}"))?,
                    ),
                    None => Trust::System,
                };
                // The client spawns nothing at construction, but build it inside the runtime anyway.
                let rt = self.rt.get()?;
                let _guard = rt.enter();
                PbsClient::new(&repo, &secret, trust).map_err(|e| e.to_string())
            })
            .clone()
    }

    fn parse_id(id: &str) -> Result<(String, String, i64), RestoreError> {
        let bad = || RestoreError::Unsafe {
            entry: id.to_string(),
            reason: "not a PBS snapshot id TYPE/ID/TIME".into(),
        };
        let parts: Vec<&str> = id.split('/').collect();
        let [t, backup_id, time] = parts.as_slice() else {
            return Err(bad());
        };
        let ts = crate::pbs::datastore::parse_snapshot_time(time).ok_or_else(bad)?;
        Ok((t.to_string(), backup_id.to_string(), ts.as_second()))
    }

    fn describe_repo(&self) -> String {
        match self.repository() {
            Ok(r) => format!("{}:{} datastore {}", r.host, r.port, r.datastore),
            Err(_) => self.config.repository.clone(),
        }
    }
}

fn pbs_restore_error(location: &std::path::Path, e: &PbsError) -> RestoreError {
    RestoreError::SourceIo {
        path: location.to_path_buf(),
        source: io::Error::other(e.to_string()),
    }
}

impl Source for PbsSource {
    fn describe(&self) -> String {
        match &self.config.namespace {
            Some(ns) => format!("PBS {} namespace {ns}", self.describe_repo()),
            None => format!("PBS {}", self.describe_repo()),
        }
    }

    fn list(&self) -> Result<Vec<Snapshot>, SourceError> {
        let client = self.client().map_err(env_error)?;
        let store = client.repository().datastore.clone();
        let ns = self.config.namespace.clone();
        let items = self
            .rt
            .run(async move { client.snapshots(&store, ns.as_deref(), None).await })
            .map_err(env_error)?
            .map_err(|e| env_error(e.to_string()))?;
        let mut out: Vec<Snapshot> = items
            .into_iter()
            .filter(|s| s.is_finished())
            .filter_map(|s| {
                let time = Timestamp::from_second(s.backup_time).ok()?;
                let encrypted = s
                    .files
                    .iter()
                    .any(|f| f.crypt_mode == Some(CryptMode::Encrypt));
                let verify = s
                    .verification
                    .as_ref()
                    .map_or("not verified".to_string(), |v| {
                        format!("verify {:?}", v.state).to_lowercase()
                    });
                let details =
                    snapshot_details(encrypted, &verify, s.protected, s.comment.as_deref());
                Some(Snapshot {
                    id: format!(
                        "{}/{}/{}",
                        s.backup_type,
                        s.backup_id,
                        time.strftime("%Y-%m-%dT%H:%M:%SZ")
                    ),
                    time,
                    time_source: TimeSource::Name,
                    size: s.size,
                    kind: SnapshotKind::Pbs,
                    details: Some(details),
                })
            })
            .collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64> {
        snapshot.size
    }

    fn failed_jobs(&self, since: Timestamp) -> Result<Vec<crate::watch::FailedJob>, SourceError> {
        let client = self.client().map_err(env_error)?;
        let store = client.repository().datastore.clone();
        let tasks = self
            .rt
            .run(async move { client.failed_backup_tasks(&store, since.as_second()).await })
            .map_err(env_error)?
            .map_err(|e| env_error(format!("{}: {e}", self.describe_repo())))?;
        Ok(tasks
            .into_iter()
            .filter_map(|(t, lines)| {
                // worker_id of a backup task is `STORE:TYPE/ID` (PBS docs, task list): the asset is what
                // follows the first colon, up to a third `/` if the server appended a snapshot time.
                let asset = t.worker_id.as_deref().and_then(|w| {
                    let rest = w.split_once(':').map_or(w, |(_, r)| r);
                    let mut p = rest.split('/');
                    Some(format!("{}/{}", p.next()?, p.next()?))
                });
                Some(crate::watch::FailedJob {
                    id: t.upid.clone(),
                    asset,
                    started: Timestamp::from_second(t.starttime).ok()?,
                    ended: t.endtime.and_then(|e| Timestamp::from_second(e).ok()),
                    status: t.status.clone().unwrap_or_default(),
                    lines,
                })
            })
            .collect())
    }

    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        let location = PathBuf::from(format!("{} {}", self.describe_repo(), snapshot.id));
        let env = |msg: String| RestoreError::SourceIo {
            path: location.clone(),
            source: io::Error::other(msg),
        };
        let (btype, bid, btime) = Self::parse_id(&snapshot.id)?;
        let crypt = load_key(self.config.encryption_key_file.as_deref())?;
        let client = self.client().map_err(env)?;
        let store = client.repository().datastore.clone();
        let sessions = SnapshotSessions::new(
            client,
            &store,
            self.config.namespace.as_deref(),
            &btype,
            &bid,
            btime,
        );
        let opener = sessions.clone();
        let session = self
            .rt
            .run(async move { SessionFactory::open(&opener).await })
            .map_err(env)?
            .map_err(|e| pbs_restore_error(&location, &e))?;
        let state = Arc::new(SourceState::default());
        let rt = self.rt.get().map_err(env)?;
        let access = RemoteAccess {
            source: self,
            rt,
            session,
            sessions,
            location: location.clone(),
            state: &state,
            index_hashes: Mutex::new(HashMap::new()),
        };
        restore_snapshot(&access, &snapshot.id, crypt.as_ref(), req, state.clone())
    }
}

/// One snapshot on a PBS server: files through the reader session, chunks through prefetchers.
struct RemoteAccess<'a> {
    source: &'a PbsSource,
    rt: &'a tokio::runtime::Runtime,
    session: ReaderSession,
    sessions: SnapshotSessions,
    location: PathBuf,
    state: &'a SourceState,
    /// SHA-256 of each index as downloaded, so a reconnected session can prove it serves the same index.
    index_hashes: Mutex<HashMap<String, [u8; 32]>>,
}

impl SnapshotAccess for RemoteAccess<'_> {
    fn location(&self) -> PathBuf {
        self.location.clone()
    }

    fn read_file(&self, name: &str) -> Result<Vec<u8>, RestoreError> {
        let session = self.session.clone();
        let file = name.to_string();
        let result = self
            .source
            .rt
            .run(async move { session.download(&file).await })
            .map_err(|m| RestoreError::SourceIo {
                path: self.location.clone(),
                source: io::Error::other(m),
            })?;
        match result {
            Ok(bytes) => {
                if name.ends_with(".fidx") || name.ends_with(".didx") {
                    self.index_hashes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_string(), sha256(&bytes));
                }
                Ok(bytes)
            }
            Err(PbsError::NotFound { .. }) if name != MANIFEST_BLOB_NAME => {
                Err(RestoreError::Corrupt {
                    context: format!("snapshot file {name}"),
                    offset: "its start".into(),
                    detail: "listed in the manifest but the server does not have it".into(),
                })
            }
            Err(e) => {
                self.state.mark_failed();
                Err(pbs_restore_error(&self.location, &e))
            }
        }
    }

    fn raw_chunks<'b>(
        &'b self,
        archive: &str,
        chunks: &'b [ChunkRef],
    ) -> Result<Box<dyn RawChunks + 'b>, RestoreError> {
        let hash = self
            .index_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(archive)
            .copied();
        let factory = self.sessions.clone().index(archive, hash);
        let prefetcher = ChunkPrefetcher::start(
            self.rt.handle(),
            factory,
            chunks,
            Some(self.session.clone()),
            PrefetchOptions::default(),
        );
        Ok(Box::new(RemoteChunks {
            prefetcher,
            state: self.state,
        }))
    }
}

struct RemoteChunks<'a> {
    prefetcher: ChunkPrefetcher,
    state: &'a SourceState,
}

impl RawChunks for RemoteChunks<'_> {
    fn raw(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        let r = self.prefetcher.next_raw(c);
        if matches!(r, Err(ChunkFault::Unreadable(_))) {
            self.state.mark_failed();
        }
        r
    }
}
