//! What the agent hands to a channel: one [`Notification`], already decided (which event, for whom, whether it
//! opens, repeats or closes an alert). Channels only render and deliver it; they never decide whether to send.
//!
//! The struct is serialised into the history database's outbox before any delivery is attempted, so it must
//! round-trip through JSON unchanged and carry everything a renderer needs (no look-ups at delivery time).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The kind of thing that happened. `as_str` gives the dotted name used in webhooks, filters and the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A drill run started (healthchecks `/start` ping; other channels ignore it by default).
    #[serde(rename = "drill.started")]
    DrillStarted,
    /// A drill run passed.
    #[serde(rename = "drill.passed")]
    DrillPassed,
    /// A drill run failed: the backup (or an objective) is bad.
    #[serde(rename = "drill.failed")]
    DrillFailed,
    /// A drill could not run: it proves nothing either way.
    #[serde(rename = "drill.error")]
    DrillError,
    /// A scheduled drill did not run (the agent was down at its time).
    #[serde(rename = "drill.missed")]
    DrillMissed,
    /// The newest finished backup of an asset is older than the watch's `stale_after`.
    #[serde(rename = "backup.stale")]
    BackupStale,
    /// A backup job ended in error (PBS `backup` task).
    #[serde(rename = "backup.failed")]
    BackupFailed,
    /// The backup server's own verification of a snapshot failed.
    #[serde(rename = "backup.verify_failed")]
    BackupVerifyFailed,
    /// The newest backup is much smaller than the ones before it.
    #[serde(rename = "backup.shrunk")]
    BackupShrunk,
    /// A scheduled compliance report was written.
    #[serde(rename = "report.generated")]
    ReportGenerated,
    /// A daily digest (one message, many problems).
    #[serde(rename = "digest")]
    Digest,
    /// `lifeboat notify test NAME`.
    #[serde(rename = "test")]
    Test,
}

impl EventKind {
    /// Every kind, for `--help` and config validation.
    pub const ALL: [EventKind; 12] = [
        EventKind::DrillStarted,
        EventKind::DrillPassed,
        EventKind::DrillFailed,
        EventKind::DrillError,
        EventKind::DrillMissed,
        EventKind::BackupStale,
        EventKind::BackupFailed,
        EventKind::BackupVerifyFailed,
        EventKind::BackupShrunk,
        EventKind::ReportGenerated,
        EventKind::Digest,
        EventKind::Test,
    ];

    /// The dotted name: `drill.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DrillStarted => "drill.started",
            EventKind::DrillPassed => "drill.passed",
            EventKind::DrillFailed => "drill.failed",
            EventKind::DrillError => "drill.error",
            EventKind::DrillMissed => "drill.missed",
            EventKind::BackupStale => "backup.stale",
            EventKind::BackupFailed => "backup.failed",
            EventKind::BackupVerifyFailed => "backup.verify_failed",
            EventKind::BackupShrunk => "backup.shrunk",
            EventKind::ReportGenerated => "report.generated",
            EventKind::Digest => "digest",
            EventKind::Test => "test",
        }
    }

    /// Parses a dotted name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a notification stands in the life of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Something went bad (PagerDuty `trigger`).
    Trigger,
    /// It is still bad (a reminder; PagerDuty `trigger` with the same dedup key).
    Remind,
    /// It is good again (PagerDuty `resolve`).
    Resolve,
    /// Information with no alert state: a pass, a started drill, a report, a digest, a test.
    Info,
}

/// How bad. Ordered: `Info < Warning < Error < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Good news or information.
    Info,
    /// Needs a look (stale backup, shrunk backup, missed drill).
    Warning,
    /// Something is broken (a failed drill or backup job).
    Error,
    /// Broken and an objective is breached.
    Critical,
}

impl Severity {
    /// `info`, `warning`, `error`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One labelled value shown in every channel (`RTA` → `4m 12s (RTO 30m) — met`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// Short label.
    pub label: String,
    /// Value, plain text.
    pub value: String,
}

/// One check of a run, as the message lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    /// Check name (`integrity: archive checksum`).
    pub name: String,
    /// `passed`, `failed`, `error`, `unverifiable`, `skipped`, `warning`.
    pub status: String,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub actual: String,
    /// Explanation, when there is one.
    pub message: Option<String>,
}

/// One finished message for one channel, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per (event, channel) and stable across retries: the Standard Webhooks `webhook-id`, the mail's
    /// `Message-ID` local part, the idempotency key. `[A-Za-z0-9._-]` only.
    pub id: String,
    /// What happened.
    pub event: EventKind,
    /// Opens, repeats or closes an alert, or plain information.
    pub transition: Transition,
    /// How bad.
    pub severity: Severity,
    /// When the event happened.
    pub time: Timestamp,
    /// The asset or drill this is about (`app`, `pbs/vm/101`); empty for digests and tests.
    pub asset: String,
    /// Stable key of the alert across trigger/remind/resolve (`SITE/ASSET/KIND`): PagerDuty `dedup_key`,
    /// mail `References`, grouping in chat.
    pub dedup_key: String,
    /// Short subject line that sorts well in an inbox: `[lifeboat] FAILED drill app: archive checksum`.
    pub title: String,
    /// One or two sentences: what is wrong, where, and whether the backup or the drill is at fault.
    pub summary: String,
    /// Labelled values (drill, source, snapshot id and time, RTA vs RTO, RPA vs RPO, verdict, run id).
    pub facts: Vec<Fact>,
    /// The run's checks, failing ones first.
    pub checks: Vec<CheckLine>,
    /// Extra lines (a task log's error lines, a digest's list of problems).
    pub details: Vec<String>,
    /// The exact command that reproduces it (`lifeboat drill app`).
    pub reproduce: Option<String>,
    /// Organisation / site name for context, when configured.
    pub site: Option<String>,
    /// Full structured payload: the generic webhook's `data` object.
    pub data: serde_json::Value,
}
