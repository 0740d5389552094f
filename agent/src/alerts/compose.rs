//! The words of every alert: what is wrong and where, RTA vs RTO and RPA vs RPO with the verdict, each
//! failing check with expected and actual, `failed` versus `error` spelled out, and the command that
//! reproduces it. Subject lines start with `[lifeboat]` and the state in capitals so an inbox sorts them.

use jiff::Timestamp;
use lifeboat_drills::model::{CheckStatus, Outcome, RunReport};
use lifeboat_drills::units::HumanDuration;
use lifeboat_notify::{CheckLine, EventKind, Fact, Notification, Severity, Transition};
use serde_json::json;

use crate::config::Config;

fn fact(label: &str, value: impl Into<String>) -> Fact {
    Fact {
        label: label.to_string(),
        value: value.into(),
    }
}

fn dur(s: f64) -> String {
    HumanDuration(s).to_string()
}

/// `[lifeboat] FAILED drill app` style prefix per transition.
fn state_word(t: Transition, bad: &str) -> String {
    match t {
        Transition::Trigger => bad.to_string(),
        Transition::Remind => format!("STILL {bad}"),
        Transition::Resolve => "RECOVERED".to_string(),
        Transition::Info => bad.to_string(),
    }
}

/// The exact command that reproduces a drill.
pub fn reproduce(config: &Config, drill: &str) -> String {
    format!("lifeboat --config {} drill {drill}", config.path.display())
}

/// A shell/URL-safe id piece.
pub fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A blank notification with the common fields set; `id` is completed per channel by the router.
#[allow(clippy::too_many_arguments)]
pub fn base(
    config: &Config,
    event: EventKind,
    transition: Transition,
    severity: Severity,
    time: Timestamp,
    asset: &str,
    key: &str,
    title: String,
    summary: String,
) -> Notification {
    Notification {
        id: String::new(),
        event,
        transition,
        severity,
        time,
        asset: asset.to_string(),
        dedup_key: match &config.site {
            Some(s) => format!("{s}/{key}"),
            None => key.to_string(),
        },
        title,
        summary,
        facts: Vec::new(),
        checks: Vec::new(),
        details: Vec::new(),
        reproduce: None,
        site: config.site.clone().or_else(|| config.organisation.clone()),
        data: json!({}),
    }
}

/// The first failing check's short description, for the subject line.
fn headline(r: &RunReport) -> String {
    let bad = r
        .checks
        .iter()
        .find(|c| matches!(c.status, CheckStatus::Failed | CheckStatus::Error));
    match (bad, &r.error) {
        (Some(c), _) if !c.actual.is_empty() && c.actual.chars().count() <= 60 => {
            format!("{} — {}", c.name, c.actual)
        }
        (Some(c), _) => c.name.clone(),
        (None, Some(e)) => e.chars().take(80).collect(),
        (None, None) => r.outcome.as_str().to_string(),
    }
}

/// The notification for a finished run: `transition` says whether it opens, repeats or closes an alert.
pub fn run(config: &Config, r: &RunReport, transition: Transition) -> Notification {
    let (event, severity, word) = match r.outcome {
        Outcome::Passed => (EventKind::DrillPassed, Severity::Info, "PASSED"),
        Outcome::Failed => (EventKind::DrillFailed, Severity::Critical, "FAILED"),
        Outcome::Error => (EventKind::DrillError, Severity::Error, "ERROR"),
        Outcome::Skipped => (EventKind::DrillError, Severity::Warning, "SKIPPED"),
    };
    let title = match transition {
        Transition::Resolve => format!("[lifeboat] RECOVERED drill {}: passed again", r.drill),
        t => {
            let w = state_word(t, word);
            if r.outcome == Outcome::Passed {
                format!("[lifeboat] {w} drill {}", r.drill)
            } else {
                format!("[lifeboat] {w} drill {}: {}", r.drill, headline(r))
            }
        }
    };
    let snap = r
        .snapshot
        .as_ref()
        .map(|s| format!("{} ({})", s.id, s.time.strftime("%Y-%m-%d %H:%M:%SZ")));
    let summary = match r.outcome {
        Outcome::Passed => format!(
            "Drill {} restored {} from source {} and every check passed.",
            r.drill,
            snap.as_deref().unwrap_or("a snapshot"),
            r.source
        ),
        Outcome::Failed => format!(
            "FAILED: the backup is bad or an objective was missed. Drill {} on source {}{}: {}",
            r.drill,
            r.source,
            snap.as_deref()
                .map(|s| format!(", snapshot {s}"))
                .unwrap_or_default(),
            r.error.as_deref().unwrap_or("a check failed")
        ),
        Outcome::Error | Outcome::Skipped => format!(
            "ERROR: the drill could not run, so it proves nothing either way (the backup itself was not judged). Drill {} on source {}: {}",
            r.drill,
            r.source,
            r.error.as_deref().unwrap_or("see the run's checks")
        ),
    };
    let key = format!("drill/{}", r.drill);
    let mut n = base(
        config,
        event,
        transition,
        if transition == Transition::Resolve {
            Severity::Info
        } else {
            severity
        },
        r.finished_at,
        &r.drill,
        &key,
        title,
        summary,
    );
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    };
    n.facts = vec![
        fact("Drill", &r.drill),
        fact("Outcome", r.outcome.as_str()),
        fact("Source", &r.source),
        fact(
            "Snapshot",
            snap.clone().unwrap_or_else(|| "none selected".into()),
        ),
        fact(
            "RTA vs RTO",
            format!(
                "{} (RTO {}) — {}",
                r.rta_seconds.map_or("—".to_string(), dur),
                dur(r.rto_seconds),
                verdict(r.rto_met)
            ),
        ),
        fact(
            "RPA vs RPO",
            format!(
                "{} (RPO {}) — {}",
                r.rpa_seconds.map_or("—".to_string(), dur),
                dur(r.rpo_seconds),
                verdict(r.rpo_met)
            ),
        ),
        fact("Run", &r.run_id),
    ];
    if let Some(site) = &config.site {
        n.facts.push(fact("Site", site));
    }
    let mut checks: Vec<CheckLine> = r
        .checks
        .iter()
        .map(|c| CheckLine {
            name: c.name.clone(),
            status: c.status.as_str().to_string(),
            expected: c.expected.clone(),
            actual: c.actual.clone(),
            message: (!c.message.is_empty()).then(|| c.message.clone()),
        })
        .collect();
    checks.sort_by_key(|c| match c.status.as_str() {
        "failed" => 0,
        "error" => 1,
        "unverifiable" | "warning" => 2,
        _ => 3,
    });
    n.checks = checks;
    n.reproduce = Some(reproduce(config, &r.drill));
    n.data = json!({
        "run_id": r.run_id,
        "drill": r.drill,
        "asset": r.drill,
        "site": config.site,
        "outcome": r.outcome.as_str(),
        "transition": transition,
        "source": {"name": r.source, "snapshot_id": r.snapshot.as_ref().map(|s| &s.id),
                   "snapshot_time": r.snapshot.as_ref().map(|s| s.time.to_string())},
        "rta_s": r.rta_seconds, "rto_s": r.rto_seconds, "rto_met": r.rto_met,
        "rpa_s": r.rpa_seconds, "rpo_s": r.rpo_seconds, "rpo_met": r.rpo_met,
        "error": r.error,
        "checks": r.checks.iter().map(|c| json!({
            "name": c.name, "type": c.kind, "status": c.status.as_str(),
            "expected": c.expected, "actual": c.actual, "message": c.message,
            "duration_ms": (c.seconds * 1000.0).round() as u64,
        })).collect::<Vec<_>>(),
        "reproduce": n.reproduce,
    });
    n
}

/// `drill.started` (healthchecks `/start`).
pub fn started(config: &Config, drill: &str, run_id: &str, at: Timestamp) -> Notification {
    let mut n = base(
        config,
        EventKind::DrillStarted,
        Transition::Info,
        Severity::Info,
        at,
        drill,
        &format!("drill/{drill}"),
        format!("[lifeboat] STARTED drill {drill}"),
        format!("Drill {drill} started (run {run_id})."),
    );
    n.data = json!({"run_id": run_id, "drill": drill, "asset": drill, "site": config.site});
    n
}

/// `drill.missed`: the agent was down at `missed` instants of `drill`'s schedule.
pub fn missed(
    config: &Config,
    drill: &str,
    first: Timestamp,
    count: usize,
    down_since: Timestamp,
    now: Timestamp,
    transition: Transition,
) -> Notification {
    let title = match transition {
        Transition::Resolve => {
            format!("[lifeboat] RECOVERED drill {drill}: ran again after a missed schedule")
        }
        t => format!(
            "[lifeboat] {} drill {drill}: {count} scheduled run{} did not happen",
            state_word(t, "MISSED"),
            if count == 1 { "" } else { "s" }
        ),
    };
    let mut n = base(
        config,
        EventKind::DrillMissed,
        transition,
        if transition == Transition::Resolve {
            Severity::Info
        } else {
            Severity::Warning
        },
        now,
        drill,
        &format!("missed/{drill}"),
        title,
        format!(
            "Drill {drill} was due at {} but the lifeboat agent was not running (last seen alive {}). The backup was not tested at its scheduled time; the drill runs again at its next instant, or now with the command below.",
            first.strftime("%Y-%m-%d %H:%M:%SZ"),
            down_since.strftime("%Y-%m-%d %H:%M:%SZ")
        ),
    );
    n.facts = vec![
        fact("Drill", drill),
        fact(
            "First missed run",
            first.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        ),
        fact("Missed runs", count.to_string()),
        fact(
            "Agent last alive",
            down_since.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        ),
    ];
    n.reproduce = Some(reproduce(config, drill));
    n.data = json!({"drill": drill, "asset": drill, "site": config.site, "first_missed": first.to_string(),
                    "missed": count, "agent_last_alive": down_since.to_string(), "transition": transition});
    n
}

/// A watch finding about one asset.
pub struct Finding<'a> {
    /// Watch name.
    pub watch: &'a str,
    /// Source name.
    pub source: &'a str,
    /// Asset (`vm/101`, or the source name).
    pub asset: &'a str,
    /// Event.
    pub event: EventKind,
    /// Short cause for the subject (`newest backup 31h old`).
    pub headline: String,
    /// Sentence(s) for the body.
    pub summary: String,
    /// Facts.
    pub facts: Vec<Fact>,
    /// Extra lines (task log).
    pub details: Vec<String>,
    /// Structured data.
    pub data: serde_json::Value,
}

/// Alert key of a watch finding.
pub fn finding_key(f: &Finding<'_>) -> String {
    format!("{}/{}/{}", f.event.as_str(), f.watch, f.asset)
}

/// The notification for a watch finding.
pub fn finding(
    config: &Config,
    f: &Finding<'_>,
    transition: Transition,
    now: Timestamp,
) -> Notification {
    let (severity, word) = match f.event {
        EventKind::BackupStale => (Severity::Error, "STALE"),
        EventKind::BackupFailed => (Severity::Error, "BACKUP FAILED"),
        EventKind::BackupVerifyFailed => (Severity::Critical, "VERIFY FAILED"),
        EventKind::BackupShrunk => (Severity::Warning, "SHRUNK"),
        _ => (Severity::Warning, "WARNING"),
    };
    let what = if f.asset.is_empty() || f.asset == f.source {
        format!("source {}", f.source)
    } else {
        format!("{} on {}", f.asset, f.source)
    };
    let title = match transition {
        Transition::Resolve => format!("[lifeboat] RECOVERED {what}: {}", f.headline),
        t => format!("[lifeboat] {} {what}: {}", state_word(t, word), f.headline),
    };
    let mut n = base(
        config,
        f.event,
        transition,
        if transition == Transition::Resolve {
            Severity::Info
        } else {
            severity
        },
        now,
        f.asset,
        &finding_key(f),
        title,
        f.summary.clone(),
    );
    n.facts = vec![fact("Watch", f.watch), fact("Source", f.source)];
    if !f.asset.is_empty() {
        n.facts.push(fact("Asset", f.asset));
    }
    n.facts.extend(f.facts.iter().cloned());
    n.details = f.details.clone();
    let mut data = f.data.clone();
    if let Some(o) = data.as_object_mut() {
        o.insert("watch".into(), json!(f.watch));
        o.insert("source".into(), json!(f.source));
        o.insert("asset".into(), json!(f.asset));
        o.insert("site".into(), json!(config.site));
        o.insert("transition".into(), json!(transition));
    }
    n.data = data;
    n
}
