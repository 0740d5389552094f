//! Shared parts of lifeboat's benchmark programs: running one drill through the real engine in a child
//! process (so its peak RSS is the restore's alone), reading that peak, and the common command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use lifeboat_drills::engine::{DrillPlan, RunEnv, run};
use lifeboat_drills::extract::{Limits, Progress};
use lifeboat_drills::model::Outcome;
use lifeboat_drills::scratch::ScratchRoot;
use lifeboat_drills::select::Selection;
use lifeboat_drills::source::Source;

/// Peak resident memory of this process (VmHWM), KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sizes in MiB from the command line (default 1 GiB and 4 GiB) and the work folder (`LIFEBOAT_BENCH_DIR`,
/// default `target/bench`, created).
pub fn sizes_and_workdir(args: &[String]) -> anyhow::Result<(Vec<u64>, PathBuf)> {
    let sizes: Vec<u64> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![1024, 4096]
    };
    let work = std::env::var_os("LIFEBOAT_BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
    std::fs::create_dir_all(&work)?;
    Ok((sizes, work))
}

/// Runs one drill over the newest snapshot of `source` (restoring `archives`, or everything) and prints one
/// JSON line: total seconds, restore-phase seconds, restored bytes, peak RSS. Meant for a child process.
pub fn drill_once(source: &dyn Source, work: &Path, archives: &[String]) -> anyhow::Result<()> {
    let scratch = ScratchRoot::open(&work.join("scratch"))?;
    let selection = Selection::default();
    let plan = DrillPlan {
        name: "bench",
        source_name: "bench",
        source,
        selection: &selection,
        rto: Duration::from_secs(3600),
        rpo: Duration::from_secs(86_400 * 3650),
        checks: &[],
        limits: Limits::default(),
        free_space_margin: 0,
        keep: false,
        archives,
        vm: None,
    };
    let env = RunEnv {
        run_id: format!("bench-{}", std::process::id()),
        scratch: &scratch,
        evidence_dir: work.join("evidence"),
        progress: Arc::new(Progress::default()),
        cancel: Arc::default(),
        baseline: None,
    };
    let t = Instant::now();
    let report = run(&plan, &env);
    let secs = t.elapsed().as_secs_f64();
    if report.outcome != Outcome::Passed {
        bail!("the benchmark drill did not pass: {:?}", report.error);
    }
    let restore = report
        .phases
        .iter()
        .find(|p| p.name == "restore")
        .map_or(0.0, |p| p.seconds);
    let bytes = report.restore.as_ref().map_or(0, |s| s.bytes);
    println!(
        "{}",
        serde_json::json!({"seconds": secs, "restore_seconds": restore, "bytes": bytes, "peak_rss_kib": peak_rss_kib()})
    );
    Ok(())
}
