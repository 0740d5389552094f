//! Restoring untrusted backup content into a scratch folder.
//!
//! Backup contents are attacker-controlled (ransomware, a compromised host), so everything that writes restored
//! data goes through [`RestoreSink`], which enforces the rules in one place: no path escapes the run folder, no
//! write goes through a symlink, hardlinks stay inside, special files are recorded instead of created,
//! setuid/setgid bits are dropped, and bytes, entries and expansion ratio are bounded. Formats ([`tar`], folder
//! copies, later pxar) only parse and call the sink.

pub mod path;
pub mod readahead;
pub mod sink;
pub mod source_reader;
pub mod tar;

#[cfg(test)]
mod fuzz_tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

pub use sink::RestoreSink;
pub use source_reader::{SourceReader, SourceState};

/// Bounds on one restore. Exceeding one makes the run `failed` (a decompression bomb or a backup far larger
/// than configured is itself a finding), except the free-space budget, which is an `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most logical bytes of regular files (holes included).
    pub max_bytes: u64,
    /// Most archive entries (files, dirs, links, specials).
    pub max_entries: u64,
    /// Most expansion: restored bytes / source bytes read so far, checked once `ratio_floor` bytes are out.
    pub max_ratio: u64,
    /// Restored bytes below which the ratio is not checked (small archives compress well).
    pub ratio_floor: u64,
    /// Bytes the scratch file system can take for this run (free space minus margin).
    pub space_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 40,
            max_entries: 10_000_000,
            max_ratio: 1000,
            ratio_floor: 64 << 20,
            space_budget: u64::MAX,
        }
    }
}

/// Why a restore stopped. [`RestoreError::is_backup_fault`] separates a bad backup (`failed`) from a drill that
/// could not run (`error`).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// An entry tries to leave the run folder or to write through a link.
    #[error("entry {entry:?} is unsafe: {reason}")]
    Unsafe {
        /// Entry name as stored in the backup.
        entry: String,
        /// What it tried.
        reason: String,
    },
    /// The backup's bytes are damaged or not in the expected format.
    #[error("{context} is damaged at {offset}: {detail}")]
    Corrupt {
        /// Which file or stream.
        context: String,
        /// Where, in words (`byte 1234 of the archive (4096 decompressed)`).
        offset: String,
        /// What was wrong.
        detail: String,
    },
    /// A configured bound was exceeded.
    #[error(
        "{what} limit exceeded at entry {entry:?}: {detail}; if this backup really is that large, raise `{setting}` in the drill"
    )]
    Limit {
        /// Which bound.
        what: &'static str,
        /// The entry being restored.
        entry: String,
        /// Numbers.
        detail: String,
        /// The drill setting that raises it.
        setting: &'static str,
    },
    /// The scratch file system cannot take more.
    #[error(
        "scratch space exhausted at entry {entry:?}: {detail}; free space under the scratch directory or lower `free_space_margin`"
    )]
    NoSpace {
        /// The entry being restored.
        entry: String,
        /// Numbers.
        detail: String,
    },
    /// Writing into the scratch folder failed.
    #[error(
        "cannot write {path}: {source}; check permissions and free space of the scratch directory"
    )]
    Scratch {
        /// Path under the run folder.
        path: PathBuf,
        /// OS error.
        source: io::Error,
    },
    /// Reading the source failed (not the backup's fault).
    #[error(
        "cannot read {path}: {source}; check that the source is mounted or reachable, and readable by lifeboat"
    )]
    SourceIo {
        /// Path in the source.
        path: PathBuf,
        /// OS error.
        source: io::Error,
    },
    /// The run was cancelled (agent shutting down).
    #[error("cancelled: the agent is shutting down")]
    Cancelled,
}

impl RestoreError {
    /// `true` when the backup itself is at fault (`failed`), `false` when lifeboat could not finish (`error`).
    pub fn is_backup_fault(&self) -> bool {
        matches!(
            self,
            RestoreError::Unsafe { .. } | RestoreError::Corrupt { .. } | RestoreError::Limit { .. }
        )
    }
}

/// Phase markers for the progress display.
pub mod phase {
    /// Choosing a snapshot.
    pub const SELECT: u8 = 0;
    /// Restoring.
    pub const RESTORE: u8 = 1;
    /// Running checks.
    pub const CHECKS: u8 = 2;
    /// Removing scratch resources.
    pub const TEARDOWN: u8 = 3;
    /// Finished.
    pub const DONE: u8 = 4;
    /// Booting the restored machine (`target = "vm"`).
    pub const BOOT: u8 = 5;
}

/// Live counters a terminal can poll to show progress; cheap to update from the restore loop.
#[derive(Debug, Default)]
pub struct Progress {
    /// Current phase (see [`phase`]).
    pub phase: AtomicU8,
    /// Restored bytes.
    pub bytes: AtomicU64,
    /// Restored entries.
    pub entries: AtomicU64,
    /// Expected total bytes, when known (0 = unknown).
    pub expected_bytes: AtomicU64,
}

impl Progress {
    /// Sets the phase.
    pub fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::Relaxed);
    }
}

/// Cancellation flag shared with the agent (SIGTERM).
pub type CancelFlag = Arc<AtomicBool>;
