//! `lifeboat report`: a compliance report of one period from the history, as HTML, CSV or JSON.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use super::{UsageError, exit};
use crate::config::Config;
use crate::report::period::Period;
use crate::report::{Format, build, scheduled};
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Periods: 2026-Q3, 2026-11, 2026, previous-quarter, previous-month, previous-year, current-quarter,
current-month, current-year; or --from 2026-07-01 --to 2026-09-30 (both days included). Boundaries are
midnights in [agent] timezone.

Output: csv and json go to stdout unless --output is given; html is written to --output, or to
lifeboat-report-PERIOD.html in the current folder (the path is printed). `--output -` is stdout for any format.

Exit codes: 0 report written; 2 usage or configuration error; 3 the history could not be read or the file
not written. A broken evidence ledger does not stop the report: it is shown in its header (run
`lifeboat verify-ledger`).")]
pub struct Args {
    /// The period (default previous-quarter).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First day (YYYY-MM-DD), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day, included (YYYY-MM-DD), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// Output file (`-` = stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    let now = jiff::Timestamp::now();
    let period = match (&a.period, &a.from, &a.to) {
        (_, Some(f), Some(t)) => Period::dates(f, t, &config.timezone),
        (p, _, _) => Period::parse(
            p.as_deref().unwrap_or("previous-quarter"),
            &config.timezone,
            now,
        ),
    }
    .map_err(|e| UsageError(e.to_string()))?;
    // Opening the runner records crashed runs first, so the report does not show them as running.
    let runner = Runner::open(Arc::new(config))?;
    let report = build::build(&runner.config, &runner.store, &period, now)?;
    let text = a.format.render(&report)?;
    let output = match (&a.output, a.format) {
        (Some(p), _) if p.as_os_str() == "-" => None,
        (Some(p), _) => Some(p.clone()),
        (None, Format::Html) => Some(format!("lifeboat-report-{}.html", period.label).into()),
        (None, _) => None,
    };
    match output {
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("cannot write to stdout")?,
        Some(p) => {
            scheduled::write_atomic(&p, &text)?;
            eprintln!(
                "wrote {} ({} report {}, {} runs, ledger head {})",
                p.display(),
                a.format.as_str(),
                period.label,
                report.runs.len(),
                report
                    .header
                    .ledger
                    .head_hash
                    .as_deref()
                    .unwrap_or("(empty)")
            );
        }
    }
    Ok(exit::OK)
}
