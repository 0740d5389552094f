//! `lifeboat verify-ledger`: recomputes the evidence ledger's hash chain, compares every run row with its
//! record, re-hashes evidence files that still exist, and names the first broken link.

use std::sync::Arc;

use super::exit;
use crate::config::Config;
use crate::report::ledger::Verifier;
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes: 0 the ledger is intact (missing evidence files are listed but are not a break: retention may
remove them); 1 the ledger is broken: an entry or run row was edited, deleted or reordered, an evidence file
changed, a finished run has no entry, or --head is not in the chain; 2 usage or configuration error; 3 the
history could not be read.")]
pub struct Args {
    /// A head hash published earlier (in a report): it must still be an entry of the chain.
    #[arg(long, value_name = "HASH")]
    pub head: Option<String>,
    /// Do not re-hash evidence files (faster; the chain and run rows are still checked).
    #[arg(long)]
    pub no_evidence: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    let runner = Runner::open(Arc::new(config))?;
    let v = runner
        .store
        .verify_ledger(Verifier::new(!a.no_evidence, a.head.clone()))?;
    let code = if v.intact() { exit::OK } else { exit::FAILED };
    if a.json {
        println!("{}", serde_json::to_string(&v)?);
        return Ok(code);
    }
    println!(
        "ledger: {} entries, head {}",
        v.entries,
        v.head.as_deref().unwrap_or("(empty)")
    );
    if let Some(b) = &v.first_break {
        println!(
            "BROKEN: first broken link is entry #{} (run {}): {}",
            b.seq, b.run_id, b.problem
        );
    }
    for m in &v.run_mismatches {
        println!("BROKEN: run {} (entry #{}): {}", m.run_id, m.seq, m.problem);
    }
    for r in &v.unrecorded_runs {
        println!(
            "BROKEN: run {r} is finished but has no ledger entry (inserted behind lifeboat's back)"
        );
    }
    for e in &v.evidence_changed {
        println!(
            "BROKEN: evidence {} of run {} (entry #{}) changed since it was recorded",
            e.path, e.run_id, e.seq
        );
    }
    if let Some(h) = &v.head_not_found {
        println!(
            "BROKEN: head {h} is not in the chain: the ledger was rewritten since it was published"
        );
    }
    if !a.no_evidence {
        println!(
            "evidence: {} files re-hashed and equal, {} changed, {} missing",
            v.evidence_ok,
            v.evidence_changed.len(),
            v.evidence_missing.len()
        );
        for e in &v.evidence_missing {
            println!("missing: {} (run {})", e.path, e.run_id);
        }
    }
    println!(
        "{}",
        if v.intact() {
            "ledger intact"
        } else {
            "ledger BROKEN"
        }
    );
    Ok(code)
}
