//! `lifeboat drill NAME... | --all`: run drills now, print verdicts, exit with the documented code.

use std::sync::Arc;

use lifeboat_drills::extract::Progress;
use lifeboat_drills::model::{Outcome, RunReport};

use super::exit;
use crate::config::Config;
use crate::output::{ProgressLine, details, table};
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Drills to run, as in `[drills.NAME]`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Run every enabled drill.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object per run (see the README for the fields) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep the restored folder after the run (its path is printed) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Queue notifications but do not try to deliver them now (the agent or a later command delivers them).
    #[arg(long)]
    pub no_deliver: bool,
}

/// The exit code for a set of runs: failed beats error beats passed.
pub fn exit_code(reports: &[RunReport]) -> u8 {
    if reports.iter().any(|r| r.outcome == Outcome::Failed) {
        exit::FAILED
    } else if reports.iter().any(|r| r.outcome == Outcome::Error) {
        exit::ERROR
    } else {
        exit::OK
    }
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    let names = super::pick_names(
        "drill",
        config.drills.values().map(|d| (&d.name, d.enabled)),
        a.all,
        &a.names,
    )?;
    let config = Arc::new(config);
    let runner = Runner::open(config.clone())?;
    let cancel = runner.cancel.clone();
    // Ctrl-C stops the current drill cleanly (scratch removed, run recorded as error).
    let _ = ctrlc_flag(cancel);
    let mut reports = Vec::new();
    for name in &names {
        let Some(drill) = config.drills.get(name) else {
            continue;
        };
        let progress = Arc::new(Progress::default());
        let line = ProgressLine::start(name, progress.clone(), a.quiet || a.json);
        let report = runner.run(drill, a.keep, "manual", progress);
        line.finish();
        let report = report?;
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else if let Some(k) = &report.kept_dir {
            eprintln!("{name}: restored folder kept at {}", k.display());
        }
        reports.push(report);
    }
    if !a.json {
        print!("{}", table(&reports));
        for r in &reports {
            print!("{}", details(r, &config.path));
        }
    }
    if !a.no_deliver {
        super::deliver_after(&config, &runner.store);
    }
    Ok(exit_code(&reports))
}

/// Sets the cancel flag on SIGINT/SIGTERM while drills run in the foreground.
fn ctrlc_flag(cancel: lifeboat_drills::extract::CancelFlag) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("\nstopping: the current drill is being cancelled and cleaned up");
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    Ok(())
}
