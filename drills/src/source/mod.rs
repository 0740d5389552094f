//! Where backups live. Each kind of source is a folder here and a variant of [`SourceConfig`]
//! (`type = "local"` in TOML); the engine only sees the [`Source`] trait.
//!
//! Sources are read-only: nothing here ever writes, renames, deletes or locks a backup.

pub mod local;
pub mod net_runtime;
pub mod pbs_datastore;
pub mod pbs_remote;
pub mod pbs_restore;
pub mod s3;
pub mod stream;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::extract::sink::{SinkOptions, SinkSummary};
use crate::extract::{CancelFlag, Limits, Progress, RestoreError, RestoreSink, SourceState};
use crate::model::{CheckResult, Snapshot};

/// A source's configuration, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// Snapshot folders and archive files in a local (or mounted) folder.
    Local(local::LocalConfig),
    /// A Proxmox Backup Server datastore directory, read directly and read-only.
    PbsDatastore(pbs_datastore::DatastoreConfig),
    /// A Proxmox Backup Server over its API and reader protocol.
    Pbs(pbs_remote::PbsConfig),
    /// An S3-compatible bucket (AWS S3, Backblaze B2, MinIO, Wasabi, Garage), read-only.
    S3(s3::S3Config),
}

/// Listing a source failed: the drill cannot run (`error`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configured folder is missing.
    #[error(
        "source folder {path} does not exist; check `path` in the source's configuration and that the backup volume is mounted"
    )]
    Missing {
        /// The folder.
        path: PathBuf,
    },
    /// A source reached over the network could not be listed; the message names the server and what to do.
    #[error("{0}")]
    Unavailable(String),
    /// Reading the folder failed.
    #[error(
        "cannot read source folder {path}: {source}; check permissions (lifeboat only needs read access)"
    )]
    Io {
        /// The folder.
        path: PathBuf,
        /// OS error.
        source: io::Error,
    },
}

/// What a restore needs: where to write, bounds, progress and cancellation.
pub struct RestoreRequest {
    /// The run's restore folder (exists, empty).
    pub root: PathBuf,
    /// The run's evidence folder.
    pub evidence_dir: PathBuf,
    /// Bounds.
    pub limits: Limits,
    /// Live counters.
    pub progress: Arc<Progress>,
    /// Agent shutdown.
    pub cancel: CancelFlag,
    /// Archives to restore (PBS: `drive-scsi0.img`, `root.pxar`); empty = all.
    pub archives: Vec<String>,
}

impl RestoreRequest {
    /// Opens a sink for this request reading from `source`.
    pub fn sink(&self, source: Arc<SourceState>) -> Result<RestoreSink, RestoreError> {
        RestoreSink::new(SinkOptions {
            root: self.root.clone(),
            evidence_dir: self.evidence_dir.clone(),
            limits: self.limits,
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
            source,
        })
    }
}

/// A finished restore: what the sink wrote, and the integrity checks the source could make while streaming.
pub struct Restored {
    /// Counts, manifest, checksum files found.
    pub summary: SinkSummary,
    /// Integrity results (archive structure, archive checksum).
    pub integrity: Vec<CheckResult>,
    /// The source verified every content byte against digests it carries (PBS chunk digests), so a backup
    /// without `SHA256SUMS` is still verified, not `unverifiable`.
    pub content_verified: bool,
}

/// A place backups live.
pub trait Source: Send + Sync {
    /// One line for messages: `local folder /mnt/nas/app`.
    fn describe(&self) -> String;
    /// Every snapshot, newest first.
    fn list(&self) -> Result<Vec<Snapshot>, SourceError>;
    /// A cheap estimate of the restored size, for the free-space check.
    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64>;
    /// Restores `snapshot` into `req.root`, verifying as it streams.
    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError>;
    /// Backup jobs that ended in error at or after `since` (watches). Sources without job history have none.
    fn failed_jobs(
        &self,
        _since: jiff::Timestamp,
    ) -> Result<Vec<crate::watch::FailedJob>, SourceError> {
        Ok(Vec::new())
    }
}

impl SourceConfig {
    /// Builds the source. `base_tz` reads timestamps in names that carry no zone.
    pub fn build(&self, tz: &jiff::tz::TimeZone) -> Box<dyn Source> {
        match self {
            SourceConfig::Local(c) => Box::new(local::LocalSource::new(c, tz.clone())),
            SourceConfig::PbsDatastore(c) => Box::new(pbs_datastore::DatastoreSource::new(c)),
            SourceConfig::Pbs(c) => Box::new(pbs_remote::PbsSource::new(c)),
            SourceConfig::S3(c) => Box::new(s3::S3Source::new(c, tz.clone())),
        }
    }
}
