//! Report benchmark: seeds a history of N finished runs (default 100 000) through the store API, each
//! chained into the evidence ledger, then generates the 2026-Q3 report in every format, each in a child
//! process so its peak RSS (VmHWM) is the report's alone.
//!
//! Usage: `bench-report [RUNS]`; `LIFEBOAT_BENCH_DIR` picks the work folder (default `target/bench`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use jiff::{SignedDuration, Timestamp};
use lifeboat::config::Config;
use lifeboat::report::period::Period;
use lifeboat::report::{Format, build};
use lifeboat::store::Store;
use lifeboat_bench::peak_rss_kib;
use lifeboat_drills::model::{CheckResult, CheckStatus, Outcome, RunReport, SnapshotRef};

const DRILLS: usize = 50;
const NOW: &str = "2026-11-22T06:00:00Z";

fn config_text() -> String {
    let mut s = String::from(
        "[agent]\nstate_dir = \"state\"\nscratch_dir = \"scratch\"\ntimezone = \"UTC\"\norganisation = \"Bench Ltd\"\nsite = \"lab\"\n\n[sources.s]\ntype = \"local\"\npath = \"backups\"\n",
    );
    for d in 0..DRILLS {
        s.push_str(&format!(
            "\n[drills.d{d:02}]\nsource = \"s\"\nrto = \"15m\"\nrpo = \"26h\"\nschedule = \"{} */2 * * *\"\n",
            d % 60
        ));
    }
    s
}

fn seed(store: &Store, n: usize) -> anyhow::Result<()> {
    let from: Timestamp = "2026-07-01T00:00:00Z".parse()?;
    let span = 92.0 * 86_400.0;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let start = from.checked_add(SignedDuration::from_secs_f64(span * i as f64 / n as f64))?;
        let snap = start.checked_sub(SignedDuration::from_secs(3600 + (i % 7) as i64 * 1800))?;
        let outcome = match i % 100 {
            0..=3 => Outcome::Failed,
            4 => Outcome::Error,
            _ => Outcome::Passed,
        };
        let rta = (outcome == Outcome::Passed).then_some(30.0 + (i % 97) as f64 * 9.5);
        let status = if outcome == Outcome::Failed {
            CheckStatus::Failed
        } else {
            CheckStatus::Passed
        };
        let checks = vec![
            CheckResult::new(
                "archive",
                "integrity",
                status,
                "archive readable to its end",
                "29 entries, 173.5 KiB",
                "",
            ),
            CheckResult::new(
                "files",
                "files",
                CheckStatus::Passed,
                "etc/app.conf, data/",
                "25 files, 177650 bytes",
                "",
            ),
            CheckResult::new(
                "rto",
                "objective",
                CheckStatus::Passed,
                "RTA <= 15m",
                "RTA 1m",
                "",
            ),
        ];
        batch.push(RunReport {
            run_id: format!("{}-{i:06x}", start.strftime("%Y%m%dT%H%M%SZ")),
            drill: format!("d{:02}", i % DRILLS),
            outcome,
            source: "s".into(),
            snapshot: (outcome != Outcome::Error).then(|| SnapshotRef {
                id: format!("app-{snap}.tar.zst"),
                time: snap,
            }),
            started_at: start,
            finished_at: start.checked_add(SignedDuration::from_secs(1000))?,
            rta_seconds: rta,
            rpa_seconds: Some(start.duration_since(snap).as_secs_f64()),
            rto_seconds: 900.0,
            rpo_seconds: 93_600.0,
            rto_met: rta.map(|r| r <= 900.0),
            rpo_met: Some(true),
            phases: vec![],
            checks,
            error: (outcome != Outcome::Passed)
                .then(|| "the backup's SHA256SUMS do not match data/app.db".to_string()),
            restore: None,
            evidence_dir: None,
            kept_dir: None,
        });
        if batch.len() == batch.capacity() {
            store.import_runs(&batch, "schedule")?;
            batch.clear();
        }
    }
    store.import_runs(&batch, "schedule")?;
    Ok(())
}

/// Child mode: one report in one format; prints a JSON line of figures.
fn child(work: &Path, format: &str) -> anyhow::Result<()> {
    let f = Format::parse(format).context("format")?;
    let t0 = Instant::now();
    let config = Config::load(&work.join("lifeboat.toml"))?;
    let store = Store::open(&config.state_dir)?;
    let now: Timestamp = NOW.parse()?;
    let period = Period::parse("2026-Q3", &config.timezone, now)?;
    let report = build::build(&config, &store, &period, now)?;
    let built = t0.elapsed().as_secs_f64();
    let text = f.render(&report)?;
    let out = work.join(format!("report.{format}"));
    std::fs::write(&out, &text)?;
    println!(
        "{}",
        serde_json::json!({"seconds": t0.elapsed().as_secs_f64(), "build_seconds": built, "bytes": text.len(), "runs": report.runs.len(), "peak_kib": peak_rss_kib()})
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") && args.len() == 4 {
        return child(Path::new(&args[2]), &args[3]);
    }
    let n: usize = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let base = std::env::var_os("LIFEBOAT_BENCH_DIR")
        .map_or_else(|| "target/bench".into(), std::path::PathBuf::from);
    let work = std::path::absolute(base.join(format!("report-{n}")))?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("lifeboat.toml"), config_text())?;
    let t0 = Instant::now();
    {
        let store = Store::open(&work.join("state"))?;
        seed(&store, n)?;
    }
    let seeded = t0.elapsed().as_secs_f64();
    let db = std::fs::metadata(work.join("state/lifeboat.db"))?.len();
    println!(
        "report benchmark: {n} runs of {DRILLS} drills in 2026-Q3, each chained in the evidence ledger"
    );
    println!(
        "seeding (import_runs, batches of 10 000, ledger appends included): {seeded:.1} s, database {:.1} MiB",
        db as f64 / 1048576.0
    );
    println!(
        "{:>6}  {:>10}  {:>10}  {:>12}  {:>12}",
        "FORMAT", "BUILD", "TOTAL", "OUTPUT", "PEAK RSS"
    );
    for f in ["html", "csv", "json"] {
        let out = Command::new(std::env::current_exe()?)
            .arg("--child")
            .arg(&work)
            .arg(f)
            .output()?;
        if !out.status.success() {
            bail!(
                "report {f} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "{:>6}  {:>8.2} s  {:>8.2} s  {:>8.1} MiB  {:>8.1} MiB",
            f,
            v["build_seconds"].as_f64().unwrap_or(0.0),
            v["seconds"].as_f64().unwrap_or(0.0),
            v["bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            v["peak_kib"].as_f64().unwrap_or(0.0) / 1024.0
        );
    }
    Ok(())
}
