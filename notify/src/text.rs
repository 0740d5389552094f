//! The words every channel shares: the plain-text rendering of a [`Notification`] (mail's text part, the
//! healthchecks ping body, ntfy's message) and the small helpers chat renderers need to stay inside their
//! limits without cutting a character (or a line) in half.
//!
//! The order is the same everywhere, because the person reading it at night should not have to search:
//! summary (what is wrong, and whether the backup or the drill is at fault), the facts (where, RTA vs RTO,
//! RPA vs RPO), the checks that did not pass with expected versus actual, extra details, and the command that
//! reproduces it.

use std::fmt::Write as _;

use crate::model::{CheckLine, Notification};

/// `true` for a check that needs the reader's attention (anything but passed or skipped).
pub fn is_bad(c: &CheckLine) -> bool {
    !matches!(c.status.as_str(), "passed" | "skipped")
}

/// The checks that did not pass, in the notification's order (failing ones come first already).
pub fn bad_checks(n: &Notification) -> impl Iterator<Item = &CheckLine> {
    n.checks.iter().filter(|c| is_bad(c))
}

/// How many checks passed.
pub fn passed_count(n: &Notification) -> usize {
    n.checks.iter().filter(|c| c.status == "passed").count()
}

/// `3 other checks passed.` or an empty string.
pub fn passed_note(n: &Notification) -> String {
    let passed = passed_count(n);
    let bad = bad_checks(n).count();
    match (passed, bad) {
        (0, _) => String::new(),
        (1, 0) => "1 check passed.".to_string(),
        (p, 0) => format!("{p} checks passed."),
        (1, _) => "1 other check passed.".to_string(),
        (p, _) => format!("{p} other checks passed."),
    }
}

/// The full plain-text body. With `title`, the first line is the title (for channels without a subject).
pub fn plain(n: &Notification, title: bool) -> String {
    let mut out = String::new();
    if title {
        out.push_str(&n.title);
        out.push_str("\n\n");
    }
    out.push_str(&n.summary);
    out.push('\n');
    if !n.facts.is_empty() {
        out.push('\n');
        let width = n
            .facts
            .iter()
            .map(|f| f.label.chars().count())
            .max()
            .unwrap_or(0)
            .min(24);
        for f in &n.facts {
            let _ = writeln!(
                out,
                "{:<width$}  {}",
                format!("{}:", f.label),
                f.value,
                width = width + 1
            );
        }
    }
    let bad: Vec<&CheckLine> = bad_checks(n).collect();
    if !bad.is_empty() {
        out.push_str("\nChecks that did not pass:\n");
        for c in bad {
            let _ = writeln!(out, "  - {}: {}", c.name, c.status.to_uppercase());
            let _ = writeln!(out, "      expected: {}", c.expected);
            let _ = writeln!(out, "      actual:   {}", c.actual);
            if let Some(m) = &c.message {
                let _ = writeln!(out, "      {m}");
            }
        }
    }
    let note = passed_note(n);
    if !note.is_empty() {
        let _ = writeln!(
            out,
            "{}{note}",
            if bad_checks(n).next().is_some() {
                ""
            } else {
                "\n"
            }
        );
    }
    if !n.details.is_empty() {
        out.push_str("\nDetails:\n");
        for d in &n.details {
            let _ = writeln!(out, "  {d}");
        }
    }
    if let Some(cmd) = &n.reproduce {
        let _ = write!(out, "\nReproduce:\n  {cmd}\n");
    }
    out
}

/// The one-line footer naming the event (`lifeboat · drill.failed · critical · key site/drill/app`).
pub fn footer(n: &Notification) -> String {
    let mut s = format!("lifeboat · {} · {}", n.event.as_str(), n.severity.as_str());
    if !n.dedup_key.is_empty() {
        let _ = write!(s, " · {}", n.dedup_key);
    }
    s
}

/// A check as one line: `archive checksum: FAILED (expected X, actual Y)`.
pub fn check_line(c: &CheckLine) -> String {
    let mut s = format!(
        "{}: {} (expected {}, actual {})",
        c.name,
        c.status.to_uppercase(),
        c.expected,
        c.actual
    );
    if let Some(m) = &c.message {
        let _ = write!(s, ": {m}");
    }
    s
}

/// At most `max` characters: cut at the last line break (or space) in the final fifth when there is one, and
/// mark the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let keep: String = s.chars().take(max - 1).collect();
    let mut floor = keep.len() - keep.len() / 5;
    while !keep.is_char_boundary(floor) {
        floor += 1;
    }
    let cut = keep[floor..]
        .rfind('\n')
        .or_else(|| keep[floor..].rfind(' '))
        .map_or(keep.len(), |i| floor + i);
    let mut out = keep[..cut].trim_end().to_string();
    out.push('…');
    out
}

/// At most `max` bytes of UTF-8, cut on a character boundary, with `…` when cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = '…'.len_utf8();
    let mut end = max.saturating_sub(ellipsis);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].to_string();
    if max >= ellipsis {
        out.push('…');
    }
    out
}

/// The notification's `report_url` (`data.report_url`), when the agent gave one and it is an http(s) URL.
pub fn report_url(n: &Notification) -> Option<&str> {
    n.data
        .get("report_url")
        .and_then(|v| v.as_str())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

/// This machine's host name (for `EHLO` and PagerDuty's `payload.source`), `localhost` when unknown.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{EventKind, Fact, Severity, Transition};

    /// A failing-drill notification like the agent composes (used by every renderer's unit tests).
    pub(crate) fn sample() -> Notification {
        Notification {
            id: "n-1.drill.failed".into(),
            event: EventKind::DrillFailed,
            transition: Transition::Trigger,
            severity: Severity::Critical,
            time: "2026-03-01T02:00:00Z".parse().unwrap(),
            asset: "app".into(),
            dedup_key: "site/drill/app".into(),
            title: "[lifeboat] FAILED drill app: integrity: archive checksum".into(),
            summary: "FAILED: the backup is bad. Drill app on source local: checksum mismatch"
                .into(),
            facts: vec![
                Fact {
                    label: "Drill".into(),
                    value: "app".into(),
                },
                Fact {
                    label: "RTA vs RTO".into(),
                    value: "4m 12s (RTO 30m) — met".into(),
                },
            ],
            checks: vec![
                CheckLine {
                    name: "integrity: archive checksum".into(),
                    status: "failed".into(),
                    expected: "sha256 aaaa".into(),
                    actual: "sha256 bbbb".into(),
                    message: Some("data/app.db changed".into()),
                },
                CheckLine {
                    name: "content: file count".into(),
                    status: "passed".into(),
                    expected: "≥ 10".into(),
                    actual: "24".into(),
                    message: None,
                },
            ],
            details: vec!["task log: disk full".into()],
            reproduce: Some("lifeboat drill app".into()),
            site: Some("site".into()),
            data: serde_json::json!({"run_id": "r1", "report_url": "https://example.com/r/1"}),
        }
    }

    #[test]
    fn plain_has_every_part_in_order() {
        let t = plain(&sample(), true);
        let order = [
            "[lifeboat] FAILED drill app",
            "FAILED: the backup is bad",
            "Drill:",
            "RTA vs RTO:  4m 12s (RTO 30m) — met",
            "Checks that did not pass:",
            "integrity: archive checksum: FAILED",
            "expected: sha256 aaaa",
            "actual:   sha256 bbbb",
            "1 other check passed.",
            "task log: disk full",
            "Reproduce:\n  lifeboat drill app",
        ];
        let mut at = 0;
        for o in order {
            let i = t[at..]
                .find(o)
                .unwrap_or_else(|| panic!("{o:?} missing after byte {at} in\n{t}"));
            at += i;
        }
        assert!(
            !t.contains("content: file count"),
            "passed checks are only counted:\n{t}"
        );
    }

    #[test]
    fn truncate_cuts_cleanly() {
        assert_eq!(truncate("short", 10), "short");
        let s = "line one\nline two\nline three";
        let t = truncate(s, 20);
        assert!(t.chars().count() <= 20, "{t}");
        assert_eq!(t, "line one\nline two…");
        let t = truncate("ééééééééééé", 5);
        assert_eq!(t, "éééé…");
        assert_eq!(truncate_bytes("éé", 3), "…");
        assert_eq!(truncate_bytes("abcdé", 5), "ab…");
        assert_eq!(truncate_bytes("abcdé", 6), "abcdé");
    }
}
