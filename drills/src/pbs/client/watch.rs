//! What the agent's watches ask PBS between drills (architecture: `watch`): the newest finished snapshot
//! per group (freshness) and failed backup tasks with the lines of their logs that say why (failed jobs).
//!
//! Both follow the protocol brief's warnings: a group's `last-backup` may be an unfinished snapshot, so
//! freshness comes from the snapshot list (§1.5); backup tasks of PVE run under PVE's credentials, so the
//! token needs Sys.Audit on /system/tasks to see them (§1.6), which a 403 says.

use std::collections::BTreeMap;

use super::error::PbsError;
use super::rest::PbsClient;
use super::types::{SnapshotListItem, TaskListItem, TaskLogLine, TaskQuery};

/// Longest error-line list kept per failed task.
const MAX_ERROR_LINES: usize = 20;

impl PbsClient {
    /// The newest *finished* snapshot of every group in namespace `ns`, keyed `vm/101` (the freshness
    /// watch; unfinished snapshots are skipped, §1.5).
    ///
    /// # Errors
    /// Any [`PbsError`] of the snapshot list.
    pub async fn newest_finished_snapshots(
        &self,
        store: &str,
        ns: Option<&str>,
    ) -> Result<BTreeMap<String, SnapshotListItem>, PbsError> {
        Ok(newest_finished(self.snapshots(store, ns, None).await?))
    }

    /// Backup tasks of `store` started at or after `since` that failed, each with the error lines of its
    /// log (the failed-jobs watch, §1.6). Running tasks and tasks that ended `OK`/`WARNINGS` are left out. A
    /// log that cannot be read becomes a single line saying why.
    ///
    /// # Errors
    /// Any [`PbsError`] of the task list (a 403 names Sys.Audit on /system/tasks).
    pub async fn failed_backup_tasks(
        &self,
        store: &str,
        since: i64,
    ) -> Result<Vec<(TaskListItem, Vec<String>)>, PbsError> {
        let q = TaskQuery {
            typefilter: Some("backup".into()),
            errors: true,
            since: Some(since),
            store: Some(store.to_string()),
            limit: Some(0),
            ..TaskQuery::default()
        };
        let mut out = Vec::new();
        for task in self.tasks(&q).await? {
            if task.is_running() || task.succeeded() {
                continue;
            }
            let lines = match self.task_log(&task.upid).await {
                Ok(log) => error_lines(&log, task.status.as_deref()),
                Err(e) => vec![format!("(the task log could not be read: {e})")],
            };
            out.push((task, lines));
        }
        Ok(out)
    }
}

/// Newest finished snapshot per group.
pub(crate) fn newest_finished(list: Vec<SnapshotListItem>) -> BTreeMap<String, SnapshotListItem> {
    let mut out: BTreeMap<String, SnapshotListItem> = BTreeMap::new();
    for s in list.into_iter().filter(SnapshotListItem::is_finished) {
        let group = s.group();
        match out.get(&group) {
            Some(have) if have.backup_time >= s.backup_time => {}
            _ => {
                out.insert(group, s);
            }
        }
    }
    out
}

/// The lines of a failed task's log that say what went wrong: lines mentioning an error or failure (the
/// final `TASK ERROR: ...` included); if none, the task status. Bounded in count and length.
pub(crate) fn error_lines(log: &[TaskLogLine], status: Option<&str>) -> Vec<String> {
    let mut lines: Vec<String> = log
        .iter()
        .map(|l| l.t.trim())
        .filter(|t| {
            let lower = t.to_ascii_lowercase();
            lower.contains("error") || lower.contains("fail")
        })
        .map(|t| t.chars().take(500).collect())
        .collect();
    if lines.len() > MAX_ERROR_LINES {
        lines.drain(..lines.len() - MAX_ERROR_LINES);
    }
    if lines.is_empty()
        && let Some(s) = status
    {
        lines.push(format!("TASK ERROR: {s}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t: &str, id: &str, time: i64, finished: bool) -> SnapshotListItem {
        let mut files = vec![serde_json::json!({"filename": "drive-scsi0.img.fidx"})];
        if finished {
            files.push(serde_json::json!({"filename": "index.json.blob"}));
        }
        serde_json::from_value(serde_json::json!({
            "backup-type": t, "backup-id": id, "backup-time": time, "files": files
        }))
        .unwrap()
    }

    #[test]
    fn newest_finished_skips_unfinished() {
        let m = newest_finished(vec![
            snap("vm", "101", 10, true),
            snap("vm", "101", 30, false),
            snap("vm", "101", 20, true),
            snap("ct", "200", 5, false),
            snap("host", "web", 7, true),
        ]);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["host/web", "vm/101"]);
        assert_eq!(m["vm/101"].backup_time, 20);
    }

    #[test]
    fn error_lines_pick_the_failure() {
        let log: Vec<TaskLogLine> = [
            "starting backup",
            "upload failed: broken pipe",
            "TASK ERROR: connection reset",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| TaskLogLine {
            n: i as u64 + 1,
            t: t.to_string(),
        })
        .collect();
        assert_eq!(
            error_lines(&log, Some("connection reset")),
            ["upload failed: broken pipe", "TASK ERROR: connection reset"]
        );
        assert_eq!(error_lines(&log[..1], Some("boom")), ["TASK ERROR: boom"]);
        let many: Vec<TaskLogLine> = (0..100)
            .map(|n| TaskLogLine {
                n,
                t: format!("error {n}"),
            })
            .collect();
        let lines = error_lines(&many, None);
        assert_eq!(lines.len(), MAX_ERROR_LINES);
        assert_eq!(lines.last().unwrap(), "error 99");
    }
}
