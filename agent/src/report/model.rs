//! The report document, `lifeboat.report/v1`: what the JSON output is field for field, and what the HTML and
//! CSV renderers read. Documented in `docs/report-schema.md`; adding an optional field keeps `v1`, renaming
//! or removing one makes `v2`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ledger::{BrokenLink, EvidenceHash};

/// Schema identifier.
pub const SCHEMA: &str = "lifeboat.report/v1";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Header.
    pub header: Header,
    /// Scope and coverage.
    pub coverage: Coverage,
    /// One record per run that started in the period, oldest first.
    pub runs: Vec<RunRecord>,
    /// Backup health from watches.
    pub backup_health: BackupHealth,
    /// Key figures.
    pub kpis: Kpis,
    /// Every failed or error run.
    pub exceptions: Vec<Exception>,
}

/// Who, when, what configuration, which ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// `[agent] organisation`.
    pub organisation: Option<String>,
    /// `[agent] site`.
    pub site: Option<String>,
    /// Period.
    pub period: PeriodInfo,
    /// When the report was generated.
    pub generated_at: Timestamp,
    /// `lifeboat X.Y.Z`.
    pub generator: String,
    /// Configuration file.
    pub config_path: String,
    /// SHA-256 of the configuration file's bytes.
    pub config_sha256: String,
    /// The evidence ledger at generation time.
    pub ledger: LedgerInfo,
}

/// A period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeriodInfo {
    /// `2026-Q3`.
    pub label: String,
    /// Start (inclusive).
    pub from: Timestamp,
    /// End (exclusive).
    pub to: Timestamp,
    /// IANA zone the boundaries are midnights in.
    pub timezone: String,
    /// Figures are computed up to here: `min(to, generated_at)`.
    pub as_of: Timestamp,
}

/// The ledger's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerInfo {
    /// Entries.
    pub entries: u64,
    /// Hash of the last entry (`null` when empty).
    pub head_hash: Option<String>,
    /// Chain and run rows verified (evidence files are not re-hashed here: `lifeboat verify-ledger` does).
    pub intact: bool,
    /// First broken link, when not intact.
    pub first_break: Option<BrokenLink>,
    /// Run rows that differ from their ledger record.
    pub edited_runs: u64,
    /// Finished runs without a ledger entry.
    pub unrecorded_runs: u64,
}

/// Scope and coverage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coverage {
    /// Enabled drills in the configuration.
    pub assets_in_scope: u64,
    /// In-scope assets with at least one run in the period.
    pub assets_drilled: u64,
    /// In-scope assets with at least one passed run in the period.
    pub assets_passed: u64,
    /// In-scope assets without any run in the period.
    pub assets_never_drilled: Vec<String>,
    /// Per asset (drill).
    pub assets: Vec<Asset>,
}

/// One asset (drill) and what the policy asks of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asset {
    /// Drill name.
    pub drill: String,
    /// Description.
    pub description: Option<String>,
    /// Source name.
    pub source: String,
    /// Enabled in the configuration (in scope).
    pub enabled: bool,
    /// Still in the configuration (runs of removed drills are reported too).
    pub configured: bool,
    /// RTO.
    pub rto_seconds: f64,
    /// RPO.
    pub rpo_seconds: f64,
    /// Crontab line, `null` = on demand only.
    pub schedule: Option<String>,
    /// Zone of the schedule.
    pub schedule_timezone: Option<String>,
    /// Required frequency: runs the schedule plans in the period (up to `as_of`).
    pub planned: u64,
    /// Average hours between planned runs (`null` without a schedule or plan).
    pub planned_interval_hours: Option<f64>,
    /// Snapshot sampling: `latest`, `oldest-within`, `random-within`.
    pub select: String,
    /// Sampling window.
    pub select_window_seconds: Option<f64>,
    /// Runs in the period.
    pub run: u64,
    /// Passed runs in the period.
    pub passed: u64,
}

/// One run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Drill.
    pub drill: String,
    /// Source.
    pub source: String,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub finished_at: Timestamp,
    /// Snapshot restored.
    pub snapshot_id: Option<String>,
    /// Its time.
    pub snapshot_time: Option<Timestamp>,
    /// `directory` or `image`.
    pub target: String,
    /// How the restore was kept apart from production.
    pub isolation: String,
    /// Restore time actual.
    pub rta_seconds: Option<f64>,
    /// RTO.
    pub rto_seconds: f64,
    /// RTA within RTO.
    pub rto_met: Option<bool>,
    /// Recovery point actual.
    pub rpa_seconds: Option<f64>,
    /// RPO.
    pub rpo_seconds: f64,
    /// RPA within RPO.
    pub rpo_met: Option<bool>,
    /// `passed`, `failed`, `error`, `skipped`.
    pub outcome: String,
    /// `failed` (the backup or an objective is bad) or `error` (the drill could not run); `null` when passed.
    pub failure_class: Option<String>,
    /// Finer cause: `integrity`, `content`, `rpo-breached`, `rto-breached`, `interrupted`, `no-snapshot`, `infrastructure`.
    pub cause: Option<String>,
    /// Why, in one sentence.
    pub error: Option<String>,
    /// Checks.
    pub checks: Vec<CheckRecord>,
    /// Evidence files with their SHA-256 as recorded in the ledger.
    pub evidence: Vec<EvidenceHash>,
    /// Ledger entry position.
    pub ledger_seq: Option<i64>,
    /// Ledger entry hash.
    pub ledger_hash: Option<String>,
}

/// One check of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Name.
    pub name: String,
    /// Family.
    #[serde(rename = "type")]
    pub kind: String,
    /// Status.
    pub status: String,
    /// Expected.
    pub expected: String,
    /// Actual.
    pub actual: String,
}

/// Backup health from watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupHealth {
    /// `no watch data` until watches exist.
    pub status: String,
    /// Per-asset watch figures (empty).
    pub assets: Vec<serde_json::Value>,
}

/// Figures for one asset or for all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    /// Runs the schedules planned.
    pub planned: u64,
    /// Runs that happened.
    pub run: u64,
    /// Passed.
    pub passed: u64,
    /// Failed.
    pub failed: u64,
    /// Error.
    pub error: u64,
    /// `passed / (passed + failed + error)`; `null` without such runs.
    pub pass_rate: Option<f64>,
    /// Runs with an RTA.
    pub rta_count: u64,
    /// Median RTA.
    pub rta_median_seconds: Option<f64>,
    /// 95th percentile RTA (nearest rank).
    pub rta_p95_seconds: Option<f64>,
    /// Largest RTA.
    pub rta_max_seconds: Option<f64>,
    /// Runs whose RTA exceeded the RTO.
    pub rto_breaches: u64,
    /// Runs whose RPA exceeded the RPO.
    pub rpo_breaches: u64,
    /// Time-weighted RPO compliance in 0..1; `null` when no time was covered.
    pub rpo_compliance: Option<f64>,
    /// Seconds of the period during which the newest good backup was within RPO.
    pub rpo_compliant_seconds: f64,
    /// Seconds of the period measured (`from` to `as_of`, per asset, summed for the overall figure).
    pub rpo_measured_seconds: f64,
}

/// Per-asset figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetKpi {
    /// Drill.
    pub drill: String,
    /// RTO.
    pub rto_seconds: f64,
    /// RPO.
    pub rpo_seconds: f64,
    /// Figures.
    #[serde(flatten)]
    pub kpi: Kpi,
}

/// Key figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kpis {
    /// All in-scope assets together.
    pub overall: Kpi,
    /// Per asset.
    pub assets: Vec<AssetKpi>,
    /// The period before, for comparison.
    pub previous: Previous,
}

/// The previous period's overall figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Previous {
    /// Its period.
    pub period: PeriodInfo,
    /// Its overall figures.
    pub overall: Kpi,
}

/// A failed or error run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exception {
    /// Run.
    pub run_id: String,
    /// Drill.
    pub drill: String,
    /// Start.
    pub started_at: Timestamp,
    /// `failed` or `error`.
    pub failure_class: String,
    /// Finer cause.
    pub cause: Option<String>,
    /// Why.
    pub error: Option<String>,
    /// A later run of the same drill passed (up to generation time).
    pub resolved: bool,
    /// That run.
    pub resolved_by: Option<String>,
    /// When it started.
    pub resolved_at: Option<Timestamp>,
}
