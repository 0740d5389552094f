//! The values a run produces: snapshots, check results, phases and the run report.
//!
//! These are the contract between the engine (`drills`) and everything that records, alerts and reports
//! (`agent`). Their JSON form is what `lifeboat drill --json` prints and what the history keeps, so field
//! names are stable.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The verdict of one run. `Failed` means the backup (or an objective) is bad; `Error` means lifeboat could not
/// finish the drill, so the run proves nothing either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything restored, every check and objective passed.
    Passed,
    /// The backup is bad or an objective (RTO, RPO) was missed.
    Failed,
    /// The drill could not run to the end (source unreachable, scratch disk full, interrupted).
    Error,
    /// The drill was not run.
    Skipped,
}

impl Outcome {
    /// The lowercase word used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }

    /// Parses the stored word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed,
            "error" => Outcome::Error,
            "skipped" => Outcome::Skipped,
            _ => return None,
        })
    }
}

/// The status of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Expected and actual agree.
    Passed,
    /// Expected and actual disagree: the backup is bad.
    Failed,
    /// Suspicious but tolerated by configuration (e.g. fewer files than last time, `on_shrink = "warn"`).
    Warning,
    /// The check itself could not run (e.g. its command could not be started).
    Error,
    /// Nothing was available to verify against; never counted as passed silently.
    Unverifiable,
}

impl CheckStatus {
    /// The lowercase word used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Warning => "warning",
            CheckStatus::Error => "error",
            CheckStatus::Unverifiable => "unverifiable",
        }
    }
}

/// How a snapshot's time was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSource {
    /// A timestamp embedded in the snapshot's name.
    Name,
    /// The file system modification time (for an S3 object: its Last-Modified).
    Mtime,
}

/// What a snapshot is physically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// A folder holding the backed-up tree.
    Folder,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
    /// A zstd-compressed tar archive.
    TarZst,
    /// A Proxmox Backup Server snapshot (manifest, indexes, chunks).
    Pbs,
    /// A single file kept as it is (a database dump, a disk image): restored as one file, not extracted.
    File,
}

/// One point-in-time backup in a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Stable identifier within the source (for local sources, the entry name).
    pub id: String,
    /// When the backup was taken.
    pub time: Timestamp,
    /// Where `time` came from.
    pub time_source: TimeSource,
    /// Stored size in bytes, when cheaply known (archives: file size; folders: not computed while listing).
    pub size: Option<u64>,
    /// Folder or archive kind.
    pub kind: SnapshotKind,
    /// What the backup system says about it (PBS: encryption, server verify state, protected, comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// The snapshot a run used, as recorded in its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Snapshot id.
    pub id: String,
    /// Snapshot time.
    pub time: Timestamp,
}

/// One verification with an expected and an actual value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Short name, unique within the run (`archive`, `sha256sums`, `files`, `command: smoke.sh`, `rpo`).
    pub name: String,
    /// Family: `integrity`, `files`, `command`, `objective`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Status.
    pub status: CheckStatus,
    /// What was expected, for a person.
    pub expected: String,
    /// What was found, for a person.
    pub actual: String,
    /// Why, and what to do when it is not passed.
    pub message: String,
    /// Wall time of the check.
    #[serde(default)]
    pub seconds: f64,
    /// Evidence files (absolute paths under the state directory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<PathBuf>,
}

impl CheckResult {
    /// A result without timing or evidence yet.
    pub fn new(
        name: impl Into<String>,
        kind: &str,
        status: CheckStatus,
        expected: impl Into<String>,
        actual: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CheckResult {
            name: name.into(),
            kind: kind.to_string(),
            status,
            expected: expected.into(),
            actual: actual.into(),
            message: message.into(),
            seconds: 0.0,
            evidence: Vec::new(),
        }
    }
}

/// A measured phase of a run (monotonic clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `select`, `restore`, `checks`, `teardown`.
    pub name: String,
    /// Duration in seconds.
    pub seconds: f64,
}

/// Counts from a restore, kept in history for the next run's tolerance comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreStats {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Logical bytes of regular files (holes included).
    pub bytes: u64,
    /// Bytes read from the source (compressed size for archives).
    pub source_bytes: u64,
    /// Device nodes, fifos and sockets recorded but not created.
    pub special_files: u64,
    /// Files whose setuid/setgid bits were dropped.
    pub setid_dropped: u64,
}

/// Everything one run produced. This is the JSON object `lifeboat drill --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Unique, time-sortable run id.
    pub run_id: String,
    /// Drill name.
    pub drill: String,
    /// Verdict.
    pub outcome: Outcome,
    /// Source name.
    pub source: String,
    /// The snapshot restored, if one was selected.
    pub snapshot: Option<SnapshotRef>,
    /// Wall-clock start.
    pub started_at: Timestamp,
    /// Wall-clock end (after teardown).
    pub finished_at: Timestamp,
    /// Restore time actual: run start to the last passing check. `None` when a check did not pass.
    pub rta_seconds: Option<f64>,
    /// Recovery point actual: run start minus snapshot time.
    pub rpa_seconds: Option<f64>,
    /// The drill's RTO.
    pub rto_seconds: f64,
    /// The drill's RPO.
    pub rpo_seconds: f64,
    /// RTA within RTO (`None` when there is no RTA).
    pub rto_met: Option<bool>,
    /// RPA within RPO (`None` when no snapshot was found).
    pub rpo_met: Option<bool>,
    /// Measured phases in order.
    pub phases: Vec<Phase>,
    /// Every check, objectives included.
    pub checks: Vec<CheckResult>,
    /// Why the run is `failed` or `error`, in one sentence with what to do.
    pub error: Option<String>,
    /// Restore counts.
    #[serde(default)]
    pub restore: Option<RestoreStats>,
    /// The run's evidence folder.
    pub evidence_dir: Option<PathBuf>,
    /// The restored folder, when kept with `--keep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_dir: Option<PathBuf>,
}
