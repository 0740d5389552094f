//! The CSV rendering: one row per run (RFC 4180 quoting, header row, `\r\n` line ends) for spreadsheets and
//! GRC imports. The columns are [`COLUMNS`], documented in `docs/report-schema.md`; empty cells are `null`s.

use std::fmt::Write;

use super::model::{Report, RunRecord};

/// Column names, in order.
pub const COLUMNS: &[&str] = &[
    "run_id",
    "drill",
    "source",
    "started_at",
    "finished_at",
    "snapshot_id",
    "snapshot_time",
    "target",
    "outcome",
    "failure_class",
    "cause",
    "rta_seconds",
    "rto_seconds",
    "rto_met",
    "rpa_seconds",
    "rpo_seconds",
    "rpo_met",
    "checks_passed",
    "checks_total",
    "evidence_files",
    "ledger_seq",
    "ledger_hash",
    "error",
];

/// Quotes a cell when it needs it; neutralises leading `=`, `+`, `-`, `@` so a spreadsheet does not run a
/// formula from a backup's file name.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn row(r: &RunRecord) -> Vec<String> {
    vec![
        r.run_id.clone(),
        r.drill.clone(),
        r.source.clone(),
        r.started_at.to_string(),
        r.finished_at.to_string(),
        opt(r.snapshot_id.as_ref()),
        opt(r.snapshot_time),
        r.target.clone(),
        r.outcome.clone(),
        opt(r.failure_class.as_ref()),
        opt(r.cause.as_ref()),
        opt(r.rta_seconds),
        r.rto_seconds.to_string(),
        opt(r.rto_met),
        opt(r.rpa_seconds),
        r.rpo_seconds.to_string(),
        opt(r.rpo_met),
        r.checks
            .iter()
            .filter(|c| c.status == "passed")
            .count()
            .to_string(),
        r.checks.len().to_string(),
        r.evidence.len().to_string(),
        opt(r.ledger_seq),
        opt(r.ledger_hash.as_ref()),
        opt(r.error.as_ref()),
    ]
}

/// Header plus one row per run.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(256 * (r.runs.len() + 1));
    out.push_str(&COLUMNS.join(","));
    out.push_str("\r\n");
    for run in &r.runs {
        let cells: Vec<String> = row(run).iter().map(|c| cell(c)).collect();
        let _ = write!(out, "{}\r\n", cells.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn quoting_and_formula_neutralising() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=cmd()"), "'=cmd()");
        assert_eq!(cell("-1.5"), "-1.5");
    }
}
