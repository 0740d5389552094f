//! Run history in SQLite (one file in the state directory, WAL, versioned migrations).
//!
//! A run is inserted as `running` before anything else happens and completed in one transaction with its
//! phases and checks, so a crash leaves either nothing or a `running` row, never half a record. Rows left
//! `running` by a dead process are completed as `error` ("interrupted") by [`Store::recover`] at the next
//! start. rusqlite (bundled SQLite) is used rather than sqlx: the store is small and synchronous, it avoids
//! sqlx's compile-time cost, and fleet mode can add PostgreSQL behind the same methods later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use lifeboat_drills::model::{Outcome, RestoreStats, RunReport, SnapshotRef};
use lifeboat_drills::scratch::process_start_time;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::report::ledger;

mod chain;
pub use chain::LedgerRef;
use chain::append_ledger;

/// History store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("history database {path}: {source}")]
    Sql {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}; check `state_dir` and permissions")]
    Dir {
        /// Folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A stored report could not be decoded.
    #[error("history database {path}: run {run_id} has an unreadable report: {source}")]
    Decode {
        /// Database file.
        path: PathBuf,
        /// Run.
        run_id: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// A run could not be serialised for the ledger.
    #[error("cannot serialise run {run_id} for the evidence ledger: {source}")]
    Encode {
        /// Run.
        run_id: String,
        /// Cause.
        source: serde_json::Error,
    },
}

/// The `error` of a run rebuilt from a row that is still `running` (history shows it as `running`).
pub const STILL_RUNNING: &str = "still running";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    drill         TEXT NOT NULL,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'finished')),
    outcome       TEXT CHECK (outcome IN ('passed', 'failed', 'error', 'skipped')),
    trigger       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    snapshot_id   TEXT,
    snapshot_time INTEGER,
    rta_seconds   REAL,
    rpa_seconds   REAL,
    rto_seconds   REAL NOT NULL,
    rpo_seconds   REAL NOT NULL,
    rto_met       INTEGER,
    rpo_met       INTEGER,
    error         TEXT,
    restored_files INTEGER,
    restored_bytes INTEGER,
    evidence_dir  TEXT,
    pid           INTEGER NOT NULL,
    pid_start     INTEGER,
    report        TEXT
);
CREATE INDEX runs_by_drill ON runs (drill, started_at);
CREATE INDEX runs_by_time ON runs (started_at);
CREATE TABLE phases (
    run_id  TEXT NOT NULL REFERENCES runs (run_id),
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE checks (
    run_id   TEXT NOT NULL REFERENCES runs (run_id),
    seq      INTEGER NOT NULL,
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    status   TEXT NOT NULL,
    expected TEXT NOT NULL,
    actual   TEXT NOT NULL,
    message  TEXT NOT NULL,
    seconds  REAL NOT NULL,
    evidence TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    r#"
CREATE TABLE ledger (
    seq         INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    record      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    entry_hash  TEXT NOT NULL
);
CREATE INDEX ledger_by_run ON ledger (run_id);
"#,
    r#"
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    event           TEXT NOT NULL,
    transition      TEXT NOT NULL,
    asset           TEXT NOT NULL,
    title           TEXT NOT NULL,
    notification    TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    detail          TEXT,
    UNIQUE (event_id, channel)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE alerts (
    key          TEXT NOT NULL,
    channel      TEXT NOT NULL,
    open         INTEGER NOT NULL,
    event        TEXT NOT NULL,
    since        INTEGER NOT NULL,
    last_sent    INTEGER NOT NULL,
    notification TEXT NOT NULL,
    PRIMARY KEY (key, channel)
);
CREATE TABLE watch_seen (
    watch   TEXT NOT NULL,
    item    TEXT NOT NULL,
    asset   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (watch, item)
);
CREATE TABLE agent_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"#,
];

/// The history database.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Drill.
    pub drill: &'a str,
    /// Source name.
    pub source: &'a str,
    /// `manual` or `schedule`.
    pub trigger: &'a str,
    /// Wall-clock start.
    pub started_at: Timestamp,
    /// RTO in seconds.
    pub rto: f64,
    /// RPO in seconds.
    pub rpo: f64,
}

/// A run that was found interrupted and recorded as `error`.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// Run id.
    pub run_id: String,
    /// Drill.
    pub drill: String,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(v: i64) -> Timestamp {
    Timestamp::from_millisecond(v).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Store {
    /// Opens (creating and migrating) `STATE_DIR/lifeboat.db`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Dir {
            path: state_dir.to_path_buf(),
            source: e,
        })?;
        let path = state_dir.join("lifeboat.db");
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(sql)?;
            tx.execute_batch(m).map_err(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        let store = Store {
            path,
            conn: Mutex::new(conn),
        };
        if version < 2 {
            store.backfill_ledger()?;
        }
        Ok(store)
    }

    /// One run, decoded or rebuilt from its row.
    pub fn run_report(&self, run_id: &str) -> Result<Option<RunReport>, StoreError> {
        let row: Option<RunRow> = self.with(|c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                params![run_id],
                run_row,
            )
            .optional()
        })?;
        row.map(|r| self.decode(r)).transpose()
    }

    fn decode(&self, row: RunRow) -> Result<RunReport, StoreError> {
        if let Some(j) = &row.12 {
            return serde_json::from_str(j).map_err(|e| StoreError::Decode {
                path: self.path.clone(),
                run_id: row.0.clone(),
                source: e,
            });
        }
        Ok(rebuild(row))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|source| StoreError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` in one IMMEDIATE transaction (alerts and the outbox use this so a decision and its
    /// notifications are recorded together or not at all).
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    /// Records a run as started (before any scratch resource exists).
    pub fn begin_run(&self, n: &NewRun<'_>) -> Result<(), StoreError> {
        let pid = std::process::id();
        let start = process_start_time(pid).map(|v| v as i64);
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (run_id, drill, source, status, trigger, started_at, rto_seconds, rpo_seconds, pid, pid_start)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9)",
                params![n.run_id, n.drill, n.source, n.trigger, ms(n.started_at), n.rto, n.rpo, pid, start],
            )
            .map(|_| ())
        })
    }

    /// Completes a run with its report, phases and checks in one transaction, and appends its record
    /// (report plus the SHA-256 of each evidence file) to the ledger in the same transaction.
    pub fn finish_run(&self, r: &RunReport) -> Result<(), StoreError> {
        self.finish_run_with(r, |_| Ok(()))
    }

    /// [`Store::finish_run`], and `also` in the same transaction (the run's alerts go into the outbox with
    /// the run itself, so a crash cannot keep one and lose the other).
    pub fn finish_run_with(
        &self,
        r: &RunReport,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let (json, record) = encode(r)?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            complete(&tx, r, &json)?;
            append_ledger(&tx, &r.run_id, &record)?;
            also(&tx)?;
            tx.commit()
        })
    }

    /// Records already finished runs in one transaction (imports, seeded tests, benchmarks): each is
    /// inserted as begun with `trigger`, then completed and chained exactly as [`Store::finish_run`] does.
    pub fn import_runs(&self, runs: &[RunReport], trigger: &str) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(runs.len());
        for r in runs {
            encoded.push(encode(r)?);
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (r, (json, record)) in runs.iter().zip(&encoded) {
                tx.execute(
                    "INSERT INTO runs (run_id, drill, source, status, trigger, started_at, rto_seconds, rpo_seconds, pid)
                     VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, 0)",
                    params![r.run_id, r.drill, r.source, trigger, ms(r.started_at), r.rto_seconds, r.rpo_seconds],
                )?;
                complete(&tx, r, json)?;
                append_ledger(&tx, &r.run_id, record)?;
            }
            tx.commit()
        })
    }

    /// Marks one running run as interrupted (`error`), keeps the report rebuilt from its row and chains it
    /// into the ledger, in one transaction.
    pub fn mark_interrupted(&self, run_id: &str, why: &str) -> Result<bool, StoreError> {
        self.mark_interrupted_with(run_id, why, &|_, _| Ok(()))
    }

    /// [`Store::mark_interrupted`], and `also` (the run's alerts) in the same transaction.
    pub fn mark_interrupted_with(
        &self,
        run_id: &str,
        why: &str,
        also: &dyn Fn(&rusqlite::Transaction<'_>, &RunReport) -> rusqlite::Result<()>,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE runs SET status = 'finished', outcome = 'error', finished_at = ?2, error = ?3
                 WHERE run_id = ?1 AND status = 'running'",
                params![run_id, ms(Timestamp::now()), why],
            )?;
            if n == 0 {
                return Ok(Ok(false));
            }
            let row = tx.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                params![run_id],
                run_row,
            )?;
            let report = rebuild(row);
            let enc = match encode(&report) {
                Ok(e) => e,
                Err(e) => return Ok(Err(e)),
            };
            tx.execute(
                "UPDATE runs SET report = ?2 WHERE run_id = ?1",
                params![run_id, enc.0],
            )?;
            append_ledger(&tx, run_id, &enc.1)?;
            also(&tx, &report)?;
            tx.commit()?;
            Ok(Ok(true))
        })?
    }

    /// Completes as `error` every `running` row whose process is gone (crash, SIGKILL, reboot).
    pub fn recover(&self) -> Result<Vec<Interrupted>, StoreError> {
        self.recover_with(&|_, _| Ok(()))
    }

    /// [`Store::recover`], running `also` in each interrupted run's transaction (its alerts).
    pub fn recover_with(
        &self,
        also: &dyn Fn(&rusqlite::Transaction<'_>, &RunReport) -> rusqlite::Result<()>,
    ) -> Result<Vec<Interrupted>, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id, drill, pid, pid_start FROM runs WHERE status = 'running'",
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })?;
        let mut out = Vec::new();
        for (run_id, drill, pid, start) in rows {
            let alive = u32::try_from(pid)
                .ok()
                .and_then(process_start_time)
                .is_some_and(|now| start.is_none_or(|s| s as u64 == now));
            if !alive
                && self.mark_interrupted_with(
                    &run_id,
                    "interrupted: the lifeboat process running this drill died (killed, crashed or the host rebooted); its scratch resources were cleaned up. The run proves nothing: run the drill again",
                    also,
                )?
            {
                out.push(Interrupted { run_id, drill });
            }
        }
        Ok(out)
    }

    /// The restore stats of the drill's newest passing run (the baseline for tolerance checks).
    pub fn last_passing_stats(&self, drill: &str) -> Result<Option<RestoreStats>, StoreError> {
        let json: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT report FROM runs WHERE drill = ?1 AND outcome = 'passed' AND report IS NOT NULL
                 ORDER BY started_at DESC LIMIT 1",
                params![drill],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(json
            .and_then(|j| serde_json::from_str::<RunReport>(&j).ok())
            .and_then(|r| r.restore))
    }

    /// Runs, newest first.
    pub fn history(&self, drill: Option<&str>, limit: usize) -> Result<Vec<RunReport>, StoreError> {
        let rows: Vec<RunRow> = self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR drill = ?1)
                 ORDER BY started_at DESC, run_id DESC LIMIT ?2"
            ))?;
            st.query_map(params![drill, limit as i64], run_row)?
                .collect()
        })?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    /// Finished runs that started in `[from, to)`, oldest first.
    pub fn runs_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<RunReport>, StoreError> {
        let rows: Vec<RunRow> = self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'finished' AND started_at >= ?1 AND started_at < ?2
                 ORDER BY started_at, run_id"
            ))?;
            st.query_map(params![ms(from), ms(to)], run_row)?.collect()
        })?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }
}

const RUN_COLUMNS: &str =
    "run_id, drill, source, status, outcome, started_at, finished_at, snapshot_id, snapshot_time,
    rto_seconds, rpo_seconds, error, report";

type RunRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    f64,
    f64,
    Option<String>,
    Option<String>,
);

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

/// What the row knows of a run without a stored report (interrupted or still running).
fn rebuild(row: RunRow) -> RunReport {
    let (
        run_id,
        drill,
        source,
        status,
        outcome,
        started,
        finished,
        snap_id,
        snap_time,
        rto,
        rpo,
        error,
        _,
    ) = row;
    let outcome = match (status.as_str(), outcome.as_deref().and_then(Outcome::parse)) {
        (_, Some(o)) => o,
        _ => Outcome::Skipped,
    };
    RunReport {
        run_id,
        drill,
        outcome,
        source,
        snapshot: snap_id.zip(snap_time).map(|(id, t)| SnapshotRef {
            id,
            time: from_ms(t),
        }),
        started_at: from_ms(started),
        finished_at: from_ms(finished.unwrap_or(started)),
        rta_seconds: None,
        rpa_seconds: None,
        rto_seconds: rto,
        rpo_seconds: rpo,
        rto_met: None,
        rpo_met: None,
        phases: vec![],
        checks: vec![],
        error: error.or_else(|| (status == "running").then(|| STILL_RUNNING.to_string())),
        restore: None,
        evidence_dir: None,
        kept_dir: None,
    }
}

/// The report JSON for the `runs` row and the ledger record (which hashes evidence files: done before the
/// transaction so no lock is held during file I/O).
fn encode(r: &RunReport) -> Result<(String, String), StoreError> {
    let enc = |source| StoreError::Encode {
        run_id: r.run_id.clone(),
        source,
    };
    Ok((
        serde_json::to_string(r).map_err(enc)?,
        ledger::build_record(r).map_err(enc)?,
    ))
}

/// Completes a begun run row with its report, phases and checks.
fn complete(tx: &rusqlite::Transaction<'_>, r: &RunReport, json: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE runs SET status = 'finished', outcome = ?2, started_at = ?3, finished_at = ?4, snapshot_id = ?5,
           snapshot_time = ?6, rta_seconds = ?7, rpa_seconds = ?8, rto_met = ?9, rpo_met = ?10, error = ?11,
           restored_files = ?12, restored_bytes = ?13, evidence_dir = ?14, report = ?15
         WHERE run_id = ?1",
        params![
            r.run_id,
            r.outcome.as_str(),
            ms(r.started_at),
            ms(r.finished_at),
            r.snapshot.as_ref().map(|s| s.id.clone()),
            r.snapshot.as_ref().map(|s| ms(s.time)),
            r.rta_seconds,
            r.rpa_seconds,
            r.rto_met,
            r.rpo_met,
            r.error,
            r.restore.as_ref().map(|s| s.files as i64),
            r.restore.as_ref().map(|s| s.bytes as i64),
            r.evidence_dir.as_ref().map(|p| p.display().to_string()),
            json,
        ],
    )?;
    for (i, p) in r.phases.iter().enumerate() {
        tx.execute(
            "INSERT INTO phases (run_id, seq, name, seconds) VALUES (?1, ?2, ?3, ?4)",
            params![r.run_id, i as i64, p.name, p.seconds],
        )?;
    }
    for (i, k) in r.checks.iter().enumerate() {
        let evidence = serde_json::to_string(&k.evidence).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO checks (run_id, seq, name, kind, status, expected, actual, message, seconds, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![r.run_id, i as i64, k.name, k.kind, k.status.as_str(), k.expected, k.actual, k.message, k.seconds, evidence],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_begin_recover() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path()).unwrap();
        let now = Timestamp::now();
        s.begin_run(&NewRun {
            run_id: "r1",
            drill: "app",
            source: "nas",
            trigger: "manual",
            started_at: now,
            rto: 60.0,
            rpo: 3600.0,
        })
        .unwrap();
        // Our own process is alive: nothing to recover.
        assert!(s.recover().unwrap().is_empty());
        // Pretend the row belongs to a dead process.
        s.with(|c| c.execute("UPDATE runs SET pid_start = 1 WHERE run_id = 'r1'", []))
            .unwrap();
        let rec = s.recover().unwrap();
        assert_eq!(rec.len(), 1);
        let h = s.history(Some("app"), 10).unwrap();
        assert_eq!(h[0].outcome, Outcome::Error);
        assert!(h[0].error.as_deref().unwrap().starts_with("interrupted"));
        drop(s);
        // Reopening does not re-run migrations.
        let s = Store::open(tmp.path()).unwrap();
        assert_eq!(s.history(None, 10).unwrap().len(), 1);
    }
}
