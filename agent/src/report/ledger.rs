//! The evidence ledger: every finished run's record, hash-chained.
//!
//! A record is the canonical JSON of `{"evidence": [...], "run": RunReport}` where `evidence` lists the
//! SHA-256 of every evidence file at the moment the run was recorded. Entry `n` stores
//! `entry_hash = sha256(prev_hash || record)` with `prev_hash` the hex hash of entry `n-1` (64 zeros for the
//! first), hex-encoded, the previous hash taken as its 64 ASCII hex characters. Canonical JSON is compact
//! JSON with object keys sorted by their UTF-8 bytes, so anyone can recompute a hash with a few lines of any
//! language. Editing a record changes its hash; deleting or reordering entries breaks the next entry's
//! `prev_hash`; rewriting the whole tail is caught by comparing with a head hash printed in an earlier
//! report (`verify-ledger --head`). The run rows themselves are compared with their ledger records, so an
//! edit in the `runs` table (the table reports read) is caught too.

use std::io::Read;
use std::path::{Path, PathBuf};

use lifeboat_drills::model::RunReport;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Compact JSON with object keys sorted (by UTF-8 bytes); numbers and string escapes as serde_json writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(*k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256(prev_hash || record)`, hex.
pub fn entry_hash(prev_hash: &str, record: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(record.as_bytes());
    hex::encode(h.finalize())
}

/// One evidence file as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceHash {
    /// Absolute path when recorded.
    pub path: String,
    /// SHA-256 of the content (`None`: the file was already gone when the run was recorded).
    pub sha256: Option<String>,
    /// Size in bytes.
    pub bytes: Option<u64>,
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// Every evidence file of a run: the regular files under its evidence folder (symlinks are not followed)
/// and the files its checks name, sorted and without duplicates.
pub fn evidence_files(r: &RunReport) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = &r.evidence_dir {
        walk(d, &mut out);
    }
    for c in &r.checks {
        out.extend(c.evidence.iter().cloned());
    }
    out.sort();
    out.dedup();
    out
}

/// The record of a run: canonical JSON of its report and the hashes of its evidence files.
pub fn build_record(r: &RunReport) -> Result<String, serde_json::Error> {
    let evidence: Vec<EvidenceHash> = evidence_files(r)
        .into_iter()
        .map(|p| {
            let h = hash_file(&p).ok();
            EvidenceHash {
                path: p.display().to_string(),
                sha256: h.as_ref().map(|x| x.0.clone()),
                bytes: h.map(|x| x.1),
            }
        })
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("evidence".into(), serde_json::to_value(evidence)?);
    m.insert("run".into(), serde_json::to_value(r)?);
    Ok(canonical_json(&Value::Object(m)))
}

/// One stored ledger entry, with the current `runs.report` of its run for the cross-check.
#[derive(Debug, Clone)]
pub struct Row {
    /// Position in the chain (1-based, gap-free when intact).
    pub seq: i64,
    /// Run id column.
    pub run_id: String,
    /// Canonical record.
    pub record: String,
    /// Stored previous hash.
    pub prev_hash: String,
    /// Stored entry hash.
    pub entry_hash: String,
    /// The run row's report JSON now (`None`: the run row is gone).
    pub current_report: Option<String>,
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// Entry where the break was found.
    pub seq: i64,
    /// Its run.
    pub run_id: String,
    /// What is wrong, for a person.
    pub problem: String,
}

/// A run whose stored row no longer matches its ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMismatch {
    /// Entry.
    pub seq: i64,
    /// Run.
    pub run_id: String,
    /// What differs.
    pub problem: String,
}

/// An evidence file that differs from its recorded hash, or is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceProblem {
    /// Entry.
    pub seq: i64,
    /// Run.
    pub run_id: String,
    /// File.
    pub path: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Entries read.
    pub entries: u64,
    /// Hash of the last entry (the head), as stored.
    pub head: Option<String>,
    /// First broken link, if any.
    pub first_break: Option<BrokenLink>,
    /// Run rows edited or deleted after they were recorded.
    pub run_mismatches: Vec<RunMismatch>,
    /// Finished runs that have no ledger entry.
    pub unrecorded_runs: Vec<String>,
    /// Evidence files re-hashed and found equal.
    pub evidence_ok: u64,
    /// Evidence files whose content changed.
    pub evidence_changed: Vec<EvidenceProblem>,
    /// Evidence files no longer on disk (retention may remove them: reported, not a break).
    pub evidence_missing: Vec<EvidenceProblem>,
    /// `--head` was given and no entry has that hash.
    pub head_not_found: Option<String>,
}

impl Verification {
    /// Nothing was edited, deleted, reordered or changed.
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
            && self.run_mismatches.is_empty()
            && self.unrecorded_runs.is_empty()
            && self.evidence_changed.is_empty()
            && self.head_not_found.is_none()
    }
}

/// Walks the chain one row at a time (rows in `seq` order), so memory stays flat on long histories.
pub struct Verifier {
    prev_hash: String,
    prev_seq: i64,
    rehash_evidence: bool,
    expected_head: Option<String>,
    head_seen: bool,
    /// The result so far.
    pub v: Verification,
}

impl Verifier {
    /// A verifier; `rehash_evidence` re-reads evidence files that still exist; `expected_head` is a head
    /// hash published earlier that must still be in the chain.
    pub fn new(rehash_evidence: bool, expected_head: Option<String>) -> Verifier {
        Verifier {
            prev_hash: GENESIS.to_string(),
            prev_seq: 0,
            rehash_evidence,
            expected_head,
            head_seen: false,
            v: Verification::default(),
        }
    }

    /// Checks the next row.
    pub fn feed(&mut self, row: &Row) {
        self.v.entries += 1;
        self.v.head = Some(row.entry_hash.clone());
        if self.expected_head.as_deref() == Some(row.entry_hash.as_str()) {
            self.head_seen = true;
        }
        if self.v.first_break.is_none() {
            let broke = |problem: String| BrokenLink {
                seq: row.seq,
                run_id: row.run_id.clone(),
                problem,
            };
            let recomputed = entry_hash(&row.prev_hash, &row.record);
            let parsed: Option<Value> = serde_json::from_str(&row.record).ok();
            let record_run = parsed
                .as_ref()
                .and_then(|v| v.get("run")?.get("run_id")?.as_str().map(str::to_string));
            if row.seq != self.prev_seq + 1 {
                self.v.first_break = Some(broke(format!(
                    "entries #{}..#{} are missing: deleted after they were written",
                    self.prev_seq + 1,
                    row.seq - 1
                )));
            } else if row.prev_hash != self.prev_hash {
                self.v.first_break = Some(broke(format!(
                    "its prev_hash {} is not the hash of entry #{} ({}): an entry was deleted, inserted or reordered",
                    short(&row.prev_hash),
                    self.prev_seq,
                    short(&self.prev_hash)
                )));
            } else if recomputed != row.entry_hash {
                self.v.first_break = Some(broke(format!(
                    "its record hashes to {} but {} is stored: the record was edited",
                    short(&recomputed),
                    short(&row.entry_hash)
                )));
            } else if record_run.as_deref() != Some(row.run_id.as_str()) {
                self.v.first_break = Some(broke(format!(
                    "its run_id column says {} but its record is of run {}: the row was edited",
                    row.run_id,
                    record_run.as_deref().unwrap_or("?")
                )));
            }
        }
        self.prev_hash = row.entry_hash.clone();
        self.prev_seq = row.seq;
        self.cross_check(row);
    }

    fn cross_check(&mut self, row: &Row) {
        let Ok(rec) = serde_json::from_str::<Value>(&row.record) else {
            return;
        };
        let mismatch = |problem: &str| RunMismatch {
            seq: row.seq,
            run_id: row.run_id.clone(),
            problem: problem.to_string(),
        };
        match &row.current_report {
            None => self
                .v
                .run_mismatches
                .push(mismatch("the run row was deleted or its report removed")),
            Some(cur) => {
                let same = serde_json::from_str::<Value>(cur)
                    .ok()
                    .zip(rec.get("run"))
                    .is_some_and(|(a, b)| canonical_json(&a) == canonical_json(b));
                if !same {
                    self.v.run_mismatches.push(mismatch(
                        "the run row differs from its ledger record: edited after it was recorded",
                    ));
                }
            }
        }
        if !self.rehash_evidence {
            return;
        }
        let Ok(ev) = serde_json::from_value::<Vec<EvidenceHash>>(
            rec.get("evidence").cloned().unwrap_or(Value::Null),
        ) else {
            return;
        };
        for e in ev {
            let Some(want) = e.sha256 else { continue };
            let p = Path::new(&e.path);
            let problem = EvidenceProblem {
                seq: row.seq,
                run_id: row.run_id.clone(),
                path: e.path.clone(),
            };
            match hash_file(p) {
                Ok((got, _)) if got == want => self.v.evidence_ok += 1,
                Ok(_) => self.v.evidence_changed.push(problem),
                Err(_) => self.v.evidence_missing.push(problem),
            }
        }
    }

    /// The result; `unrecorded` lists finished runs without an entry.
    pub fn finish(mut self, unrecorded: Vec<String>) -> Verification {
        self.v.unrecorded_runs = unrecorded;
        if let Some(h) = self.expected_head
            && !self.head_seen
        {
            self.v.head_not_found = Some(h);
        }
        self.v
    }
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

/// Evidence hashes of a record, by run (used by reports).
pub fn record_evidence(evidence_json: Option<&str>) -> Vec<EvidenceHash> {
    evidence_json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_is_compact() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"z": [1, 2.5, "x\"y"], "c": null}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[1,2.5,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn entry_hash_is_sha256_of_prev_then_record() {
        // sha256("0"*64 + "{}") computed independently with `printf '%s{}' $(printf '0%.0s' {1..64}) | sha256sum`.
        let h = entry_hash(GENESIS, "{}");
        let mut s = Sha256::new();
        s.update(format!("{GENESIS}{{}}").as_bytes());
        assert_eq!(h, hex::encode(s.finalize()));
    }
}
