//! `type = "pbs-datastore"`: a Proxmox Backup Server datastore directory read straight from disk,
//! read-only, with no Proxmox software installed. This is what is left when the PBS host is gone: a removable
//! datastore, a replicated copy, a restored ZFS dataset.
//!
//! A restore reads the snapshot's manifest, verifies every archive against it (index checksums, sizes),
//! verifies every chunk (CRC, crypt mode, digest, length) as it streams, and writes images (`.img.fidx`,
//! zero chunks as holes), file trees (`.pxar.didx`, split `.mpxar`/`.ppxar`) and config blobs into the run
//! folder through the same safe sink as every other source.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::pbs_restore::{
    RawChunks, SnapshotAccess, load_key, manifest_size, restore_snapshot, snapshot_details,
};
use super::{RestoreRequest, Restored, Source, SourceError};
use crate::extract::{RestoreError, SourceState};
use crate::model::{Snapshot, SnapshotKind, TimeSource};
use crate::pbs::chunks::{ChunkFault, ChunkRef};
use crate::pbs::datastore::{self, LayoutError, chunk_path};
use crate::pbs::manifest::{CryptMode, MANIFEST_BLOB_NAME, Manifest};

/// `[sources.NAME] type = "pbs-datastore"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// The datastore directory (the one holding `.chunks`).
    pub path: PathBuf,
    /// Namespace (`"prod"` or `"prod/db"`); default the root namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Key file for client-side encrypted backups; its passphrase comes from `PBS_ENCRYPTION_PASSWORD`.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
}

/// A datastore on disk.
pub struct DatastoreSource {
    config: DatastoreConfig,
}

impl DatastoreSource {
    /// Builds from configuration (validated when the configuration was loaded).
    pub fn new(c: &DatastoreConfig) -> Self {
        DatastoreSource { config: c.clone() }
    }
}

fn layout_error(e: LayoutError) -> SourceError {
    match e {
        LayoutError::Io { path, source } => SourceError::Io { path, source },
        LayoutError::NotADatastore { path } => SourceError::Missing { path },
        LayoutError::BadNamespace { ns } => SourceError::Io {
            path: PathBuf::from(ns),
            source: std::io::Error::other("invalid namespace"),
        },
    }
}

impl Source for DatastoreSource {
    fn describe(&self) -> String {
        match &self.config.namespace {
            Some(ns) => format!(
                "PBS datastore {} namespace {ns}",
                self.config.path.display()
            ),
            None => format!("PBS datastore {}", self.config.path.display()),
        }
    }

    fn list(&self) -> Result<Vec<Snapshot>, SourceError> {
        let snaps = datastore::list_snapshots(&self.config.path, self.config.namespace.as_deref())
            .map_err(layout_error)?;
        Ok(snaps
            .into_iter()
            .map(|s| {
                let manifest = fs::read(s.path.join(MANIFEST_BLOB_NAME))
                    .ok()
                    .and_then(|raw| Manifest::from_blob(&raw).ok());
                let size = manifest
                    .as_ref()
                    .map(|m| m.files().iter().map(|f| f.size).sum());
                let details = manifest.as_ref().map(|m| {
                    let encrypted = m.files().iter().any(|f| f.crypt_mode == CryptMode::Encrypt);
                    let verify = m.verify_state().map_or("not verified".to_string(), |v| {
                        format!("verify {}", v.state)
                    });
                    let comment = m
                        .notes()
                        .and_then(|n| n.lines().next())
                        .filter(|l| !l.is_empty());
                    snapshot_details(encrypted, &verify, s.protected, comment)
                });
                Snapshot {
                    id: s.id(),
                    time: s.time,
                    time_source: TimeSource::Name,
                    size,
                    kind: SnapshotKind::Pbs,
                    details,
                }
            })
            .collect())
    }

    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64> {
        let dir = self.snapshot_dir(&snapshot.id).ok()?;
        manifest_size(&fs::read(dir.join(MANIFEST_BLOB_NAME)).ok()?)
    }

    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        let dir = self.snapshot_dir(&snapshot.id)?;
        let crypt = load_key(self.config.encryption_key_file.as_deref())?;
        let state = Arc::new(SourceState::default());
        let access = DiskAccess {
            root: &self.config.path,
            dir,
            state: &state,
        };
        restore_snapshot(&access, &snapshot.id, crypt.as_ref(), req, state.clone())
    }
}

impl DatastoreSource {
    fn snapshot_dir(&self, id: &str) -> Result<PathBuf, RestoreError> {
        let parts: Vec<&str> = id.split('/').collect();
        let bad = || RestoreError::Unsafe {
            entry: id.to_string(),
            reason: "not a PBS snapshot id TYPE/ID/TIME".into(),
        };
        let [t, backup_id, time] = parts.as_slice() else {
            return Err(bad());
        };
        if !datastore::BACKUP_TYPES.contains(t)
            || backup_id.is_empty()
            || *backup_id == "."
            || *backup_id == ".."
            || datastore::parse_snapshot_time(time).is_none()
        {
            return Err(bad());
        }
        let base = datastore::namespace_dir(&self.config.path, self.config.namespace.as_deref())
            .map_err(|e| RestoreError::SourceIo {
                path: self.config.path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
        Ok(base.join(t).join(backup_id).join(time))
    }
}

/// A snapshot directory and its datastore's chunk store.
struct DiskAccess<'a> {
    root: &'a Path,
    dir: PathBuf,
    state: &'a SourceState,
}

impl SnapshotAccess for DiskAccess<'_> {
    fn location(&self) -> PathBuf {
        self.dir.clone()
    }

    fn read_file(&self, name: &str) -> Result<Vec<u8>, RestoreError> {
        let path = self.dir.join(name);
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RestoreError::Corrupt {
                    context: format!("snapshot file {name}"),
                    offset: "its start".into(),
                    detail: "listed in the manifest but missing from the snapshot folder".into(),
                }
            } else {
                self.state.mark_failed();
                RestoreError::SourceIo { path, source: e }
            }
        })
    }

    fn raw_chunks<'b>(
        &'b self,
        _archive: &str,
        _chunks: &'b [ChunkRef],
    ) -> Result<Box<dyn RawChunks + 'b>, RestoreError> {
        Ok(Box::new(DiskChunks {
            root: self.root,
            state: self.state,
        }))
    }
}

/// Chunk files of a datastore's `.chunks` folder.
struct DiskChunks<'a> {
    root: &'a Path,
    state: &'a SourceState,
}

impl RawChunks for DiskChunks<'_> {
    fn raw(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        let path = chunk_path(self.root, &c.digest);
        match fs::read(&path) {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ChunkFault::Bad(format!(
                "missing from the datastore ({} does not exist)",
                path.display()
            ))),
            Err(e) => {
                self.state.mark_failed();
                Err(ChunkFault::Unreadable(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                )))
            }
        }
    }
}
