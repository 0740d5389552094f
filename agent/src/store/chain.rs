//! The store's side of the evidence ledger and the queries reports need: chaining records inside the
//! transactions that complete runs, chaining runs recorded before the ledger existed, walking the chain for
//! verification, and the per-period lookups a report makes. Kept apart from run bookkeeping so each file
//! has one job.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, encode, from_ms, ms};
use crate::report::ledger;

impl Store {
    /// Chains the runs finished before the ledger existed (upgrade from schema 1), oldest first.
    pub(super) fn backfill_ledger(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id FROM runs WHERE status = 'finished'
                   AND run_id NOT IN (SELECT run_id FROM ledger) ORDER BY finished_at, run_id",
            )?;
            st.query_map([], |r| r.get(0))?.collect()
        })?;
        for id in ids {
            let Some(report) = self.run_report(&id)? else {
                continue;
            };
            let (json, record) = encode(&report)?;
            self.with(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "UPDATE runs SET report = ?2 WHERE run_id = ?1",
                    params![id, json],
                )?;
                append_ledger(&tx, &id, &record)?;
                tx.commit()
            })?;
        }
        Ok(())
    }

    /// Per drill, the newest snapshot time of a run that passed and finished before `t` (the newest good
    /// backup known at `t`).
    pub fn newest_good_before(&self, t: Timestamp) -> Result<Vec<(String, Timestamp)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT drill, MAX(snapshot_time) FROM runs WHERE outcome = 'passed' AND finished_at < ?1
                   AND snapshot_time IS NOT NULL GROUP BY drill",
            )?;
            st.query_map(params![ms(t)], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?))))?
                .collect()
        })
    }

    /// Ledger position, entry hash and evidence hashes of the runs that started in `[from, to)`.
    pub fn ledger_entries_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, LedgerRef)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT l.run_id, l.seq, l.entry_hash, json_extract(l.record, '$.evidence')
                 FROM ledger l JOIN runs r ON r.run_id = l.run_id
                 WHERE r.started_at >= ?1 AND r.started_at < ?2",
            )?;
            st.query_map(params![ms(from), ms(to)], |r| {
                let ev: Option<String> = r.get(3)?;
                Ok((
                    r.get::<_, String>(0)?,
                    LedgerRef {
                        seq: r.get(1)?,
                        entry_hash: r.get(2)?,
                        evidence: ledger::record_evidence(ev.as_deref()),
                    },
                ))
            })?
            .collect()
        })
    }

    /// Passed runs that started at or after `t`: (drill, run id, start), oldest first.
    pub fn passed_runs_after(
        &self,
        t: Timestamp,
    ) -> Result<Vec<(String, String, Timestamp)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT drill, run_id, started_at FROM runs WHERE outcome = 'passed' AND started_at >= ?1
                 ORDER BY started_at",
            )?;
            st.query_map(params![ms(t)], |r| Ok((r.get(0)?, r.get(1)?, from_ms(r.get(2)?))))?
                .collect()
        })
    }

    /// The last ledger entry: position and hash.
    pub fn ledger_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT seq, entry_hash FROM ledger ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Walks the whole ledger in order with `v`, then lists finished runs without an entry.
    pub fn verify_ledger(
        &self,
        mut v: ledger::Verifier,
    ) -> Result<ledger::Verification, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT l.seq, l.run_id, l.record, l.prev_hash, l.entry_hash, r.report
                 FROM ledger l LEFT JOIN runs r ON r.run_id = l.run_id ORDER BY l.seq",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                v.feed(&ledger::Row {
                    seq: r.get(0)?,
                    run_id: r.get(1)?,
                    record: r.get(2)?,
                    prev_hash: r.get(3)?,
                    entry_hash: r.get(4)?,
                    current_report: r.get(5)?,
                });
            }
            Ok(())
        })?;
        let unrecorded: Vec<String> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id FROM runs WHERE status = 'finished'
                   AND run_id NOT IN (SELECT run_id FROM ledger) ORDER BY started_at",
            )?;
            st.query_map([], |r| r.get(0))?.collect()
        })?;
        Ok(v.finish(unrecorded))
    }
}

/// Where a run sits in the ledger.
#[derive(Debug, Clone)]
pub struct LedgerRef {
    /// Entry position.
    pub seq: i64,
    /// Entry hash.
    pub entry_hash: String,
    /// Evidence files and their hashes as recorded.
    pub evidence: Vec<ledger::EvidenceHash>,
}

/// Appends `record` to the chain inside the caller's transaction. Callers open it IMMEDIATE, so the write
/// lock is held before the head is read and two processes (the agent and a manual `drill`) cannot fork the
/// chain.
pub(super) fn append_ledger(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    record: &str,
) -> rusqlite::Result<()> {
    let prev: String = tx
        .query_row(
            "SELECT entry_hash FROM ledger ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| ledger::GENESIS.to_string());
    let hash = ledger::entry_hash(&prev, record);
    tx.execute(
        "INSERT INTO ledger (run_id, recorded_at, record, prev_hash, entry_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run_id, ms(Timestamp::now()), record, prev, hash],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::MIGRATIONS;

    #[test]
    fn upgrade_from_schema_1_chains_existing_runs() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(tmp.path().join("lifeboat.db")).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            for (id, outcome) in [("a", "'passed'"), ("b", "'error'")] {
                c.execute(
                    &format!(
                        "INSERT INTO runs (run_id, drill, source, status, outcome, trigger, started_at, finished_at,
                           rto_seconds, rpo_seconds, pid) VALUES ('{id}', 'app', 'nas', 'finished', {outcome}, 'manual', 1000, 2000, 60, 60, 1)"
                    ),
                    [],
                )
                .unwrap();
            }
        }
        let s = Store::open(tmp.path()).unwrap();
        let v = s
            .verify_ledger(crate::report::ledger::Verifier::new(true, None))
            .unwrap();
        assert_eq!(v.entries, 2);
        assert!(v.intact(), "{v:?}");
        // Reopening does not chain them twice.
        drop(s);
        let s = Store::open(tmp.path()).unwrap();
        assert_eq!(s.ledger_head().unwrap().unwrap().0, 2);
    }
}
