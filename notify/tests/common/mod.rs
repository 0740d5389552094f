//! Shared pieces of the channel tests: notifications like the agent composes them, and channel construction
//! from JSON (the same serde path the agent's TOML takes).
#![allow(dead_code, missing_docs)]

use std::path::Path;

use lifeboat_notify::{
    Channel, ChannelConfig, CheckLine, EventKind, Fact, Notification, Severity, Transition,
};
use serde_json::{Value, json};

/// A failing drill, as the agent words it (with text that needs escaping in every format).
pub fn failed(id: &str) -> Notification {
    Notification {
        id: id.to_string(),
        event: EventKind::DrillFailed,
        transition: Transition::Trigger,
        severity: Severity::Critical,
        time: "2026-03-01T02:00:00Z".parse().unwrap(),
        asset: "app".into(),
        dedup_key: "site-a/drill/app".into(),
        title: "[lifeboat] FAILED drill app: integrity: archive checksum".into(),
        summary: "FAILED: the backup is bad or an objective was missed. Drill app on source local, snapshot app-2026.tar.zst: checksum <mismatch> & more".into(),
        facts: vec![
            Fact { label: "Drill".into(), value: "app".into() },
            Fact { label: "Snapshot".into(), value: "app-2026.tar.zst (2026-03-01 01:00:00Z)".into() },
            Fact { label: "RTA vs RTO".into(), value: "4m 12s (RTO 30m) — met".into() },
            Fact { label: "RPA vs RPO".into(), value: "26h (RPO 24h) — MISSED".into() },
        ],
        checks: vec![
            CheckLine {
                name: "integrity: archive checksum".into(),
                status: "failed".into(),
                expected: "sha256 9f2c".into(),
                actual: "sha256 0b7e".into(),
                message: Some("data/app.db differs".into()),
            },
            CheckLine {
                name: "content: file count".into(),
                status: "passed".into(),
                expected: ">= 10".into(),
                actual: "24".into(),
                message: None,
            },
        ],
        details: vec!["restore log: 24 files, 1 mismatch".into()],
        reproduce: Some("lifeboat --config /etc/lifeboat/lifeboat.toml drill app".into()),
        site: Some("site-a".into()),
        data: json!({"run_id": "run-42", "drill": "app", "rta_s": 252}),
    }
}

/// The same alert at another point of its life.
pub fn at(mut n: Notification, id: &str, transition: Transition) -> Notification {
    n.id = id.to_string();
    n.transition = transition;
    match transition {
        Transition::Remind => n.title = n.title.replace("FAILED", "STILL FAILED"),
        Transition::Resolve => {
            n.event = EventKind::DrillPassed;
            n.severity = Severity::Info;
            n.title = "[lifeboat] RECOVERED drill app: passed again".into();
            n.summary =
                "Drill app restored app-2026b.tar.zst from source local and every check passed."
                    .into();
            n.checks.clear();
        }
        _ => {}
    }
    n
}

/// A notification of `event` with plain information.
pub fn info(id: &str, event: EventKind) -> Notification {
    let mut n = failed(id);
    n.event = event;
    n.transition = Transition::Info;
    n.severity = Severity::Info;
    n.title = format!("[lifeboat] {} app", event.as_str());
    n.checks.clear();
    n
}

/// Parses a channel config from JSON and builds the channel.
pub fn channel(cfg: Value) -> Channel {
    let cfg: ChannelConfig = serde_json::from_value(cfg).expect("config parses");
    Channel::new("test", &cfg).unwrap_or_else(|e| panic!("channel builds: {e}"))
}

/// Writes `content` to `dir/name` and returns the path as a string.
pub fn secret_file(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{content}\n")).unwrap();
    p.to_string_lossy().into_owned()
}
