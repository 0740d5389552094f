//! What a watch sees: a cheap look at a source without restoring anything (architecture: `watch`).
//!
//! The agent decides what is worth telling (stale, shrunk, failed jobs, failed verification) and remembers
//! what it already told; this module only gathers the facts, grouped by *asset*: a PBS backup group
//! (`vm/101`) for PBS sources, the whole source for folders, archives and buckets. Everything comes from the
//! source's ordinary listing plus, where the backup system keeps job history (a PBS server's task list), its
//! failed backup jobs.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{Snapshot, SnapshotKind};
use crate::source::{Source, SourceError};

/// One snapshot as a watch sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    /// Snapshot id within the source.
    pub id: String,
    /// When it was taken.
    pub time: Timestamp,
    /// Stored size, when the source knows it.
    pub size: Option<u64>,
    /// The backup server's own verification of this snapshot failed.
    pub verify_failed: bool,
}

/// Every snapshot of one asset, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asset {
    /// `vm/101` for PBS groups; empty for a source that is one asset.
    pub name: String,
    /// Snapshots, newest first.
    pub snapshots: Vec<Seen>,
}

/// A backup job that ended in error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedJob {
    /// Stable id (PBS: the UPID), for de-duplication.
    pub id: String,
    /// The asset it was backing up, when known (`vm/101`).
    pub asset: Option<String>,
    /// When it started.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Option<Timestamp>,
    /// The backup system's status text (`error: connection reset`).
    pub status: String,
    /// The lines of its log that say what went wrong.
    pub lines: Vec<String>,
}

/// One look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Look {
    /// Assets by name.
    pub assets: Vec<Asset>,
    /// Failed backup jobs since the requested instant (empty for sources without job history).
    pub failed_jobs: Vec<FailedJob>,
}

/// The asset a snapshot belongs to: its PBS group, or the whole source.
pub fn asset_of(s: &Snapshot) -> String {
    if s.kind == SnapshotKind::Pbs {
        let mut parts = s.id.splitn(3, '/');
        if let (Some(t), Some(id), Some(_)) = (parts.next(), parts.next(), parts.next()) {
            return format!("{t}/{id}");
        }
    }
    String::new()
}

/// Looks at `source`: its snapshots grouped by asset, and backup jobs that failed at or after `since`.
///
/// # Errors
/// The source could not be listed (the watch is an `error`, not a stale verdict).
pub fn look(source: &dyn Source, since: Timestamp) -> Result<Look, SourceError> {
    let mut by_asset: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for s in source.list()? {
        let verify_failed = s
            .details
            .as_deref()
            .is_some_and(|d| d.split(", ").any(|p| p == "verify failed"));
        by_asset.entry(asset_of(&s)).or_default().push(Seen {
            id: s.id,
            time: s.time,
            size: s.size,
            verify_failed,
        });
    }
    let assets = by_asset
        .into_iter()
        .map(|(name, mut snapshots)| {
            snapshots.sort_by_key(|s| std::cmp::Reverse(s.time));
            Asset { name, snapshots }
        })
        .collect();
    Ok(Look {
        assets,
        failed_jobs: source.failed_jobs(since)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TimeSource;

    fn snap(id: &str, kind: SnapshotKind) -> Snapshot {
        Snapshot {
            id: id.into(),
            time: Timestamp::UNIX_EPOCH,
            time_source: TimeSource::Name,
            size: None,
            kind,
            details: None,
        }
    }

    #[test]
    fn pbs_snapshots_group_by_type_and_id() {
        assert_eq!(
            asset_of(&snap("vm/101/2026-11-01T00:00:00Z", SnapshotKind::Pbs)),
            "vm/101"
        );
        assert_eq!(asset_of(&snap("garbage", SnapshotKind::Pbs)), "");
        assert_eq!(
            asset_of(&snap("app-2026-11-01.tar.zst", SnapshotKind::TarZst)),
            ""
        );
    }
}
