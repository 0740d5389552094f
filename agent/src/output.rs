//! What people read: the results table, failure details with the command to reproduce, and a live progress
//! line on a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifeboat_drills::extract::{Progress, phase};
use lifeboat_drills::model::{CheckStatus, Outcome, RunReport};
use lifeboat_drills::units::{HumanBytes, HumanDuration};

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Error => "ERROR",
        Outcome::Skipped => "skipped",
    }
}

fn pair(actual: Option<f64>, objective: f64, met: Option<bool>) -> String {
    let a = actual.map_or("-".to_string(), |a| HumanDuration(a).to_string());
    let mark = match met {
        Some(false) => " !",
        _ => "",
    };
    format!("{a} / {}{mark}", HumanDuration(objective))
}

/// The results table, one line per run.
pub fn table(reports: &[RunReport]) -> String {
    let rows: Vec<[String; 7]> = reports
        .iter()
        .map(|r| {
            let counted: Vec<_> = r.checks.iter().filter(|c| c.kind != "objective").collect();
            let ok = counted
                .iter()
                .filter(|c| matches!(c.status, CheckStatus::Passed | CheckStatus::Warning))
                .count();
            [
                r.drill.clone(),
                if r.outcome == Outcome::Skipped
                    && r.error.as_deref() == Some(crate::store::STILL_RUNNING)
                {
                    "running".to_string()
                } else {
                    outcome_word(r.outcome).to_string()
                },
                r.snapshot
                    .as_ref()
                    .map_or("-".to_string(), |s| s.id.clone()),
                pair(r.rpa_seconds, r.rpo_seconds, r.rpo_met),
                pair(r.rta_seconds, r.rto_seconds, r.rto_met),
                format!("{ok}/{}", counted.len()),
                r.started_at.strftime("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    let head = [
        "DRILL",
        "OUTCOME",
        "SNAPSHOT",
        "RPA / RPO",
        "RTA / RTO",
        "CHECKS",
        "STARTED (UTC)",
    ];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&head.map(String::from)));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

/// What went wrong in a run that did not pass, and how to reproduce it.
pub fn details(r: &RunReport, config: &Path) -> String {
    let mut out = String::new();
    let kind = match r.outcome {
        Outcome::Failed => "failed (the backup or an objective is bad)",
        Outcome::Error => "error (the drill could not run; it proves nothing)",
        _ => return out,
    };
    out.push_str(&format!("\n{}: {kind}\n", r.drill));
    if let Some(e) = &r.error {
        out.push_str(&format!("  {e}\n"));
    }
    for c in r
        .checks
        .iter()
        .filter(|c| !matches!(c.status, CheckStatus::Passed))
    {
        out.push_str(&format!(
            "  - {} [{}]: expected {}; actual {}\n",
            c.name,
            c.status.as_str(),
            c.expected,
            c.actual
        ));
    }
    if let Some(d) = &r.evidence_dir {
        out.push_str(&format!("  evidence: {}\n", d.display()));
    }
    out.push_str(&format!(
        "  reproduce: lifeboat --config {} drill {}\n",
        config.display(),
        r.drill
    ));
    out
}

/// A progress line on stderr while a drill runs (only on a terminal).
pub struct ProgressLine {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts drawing for `drill`, unless stderr is not a terminal or `quiet`.
    pub fn start(drill: &str, progress: Arc<Progress>, quiet: bool) -> ProgressLine {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return ProgressLine { stop, handle: None };
        }
        let s = stop.clone();
        let drill = drill.to_string();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let p = progress.phase.load(Ordering::Relaxed);
                let name = match p {
                    phase::SELECT => "selecting",
                    phase::RESTORE => "restoring",
                    phase::BOOT => "booting",
                    phase::CHECKS => "checking",
                    phase::TEARDOWN => "cleaning up",
                    _ => "finishing",
                };
                let bytes = progress.bytes.load(Ordering::Relaxed);
                let entries = progress.entries.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                let rate = if secs > 0.5 {
                    format!(", {}/s", HumanBytes((bytes as f64 / secs) as u64))
                } else {
                    String::new()
                };
                let expected = progress.expected_bytes.load(Ordering::Relaxed);
                let of = if expected > 0 {
                    format!(" of ~{}", HumanBytes(expected))
                } else {
                    String::new()
                };
                let mut e = std::io::stderr().lock();
                let _ = write!(
                    e,
                    "\r\x1b[K{drill}: {name} {}{of}, {entries} entries{rate} [{}]",
                    HumanBytes(bytes),
                    HumanDuration(secs)
                );
                let _ = e.flush();
                drop(e);
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        });
        ProgressLine {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops drawing and clears the line.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
