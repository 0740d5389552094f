//! One run of one drill: select → restore → checks → teardown, measured on the monotonic clock.
//!
//! The engine never panics on bad input and always returns a [`RunReport`]. It decides the outcome:
//! `failed` when the backup or an objective is bad (a failed check, a damaged or hostile archive, RPA over
//! RPO, RTA over RTO, no snapshot at all), `error` when lifeboat could not finish (source unreadable, scratch
//! full, a check that could not start, cancellation). The scratch folder is always removed unless `keep`.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::check::CheckConfig;
use crate::check::command::CommandEnv;
use crate::check::integrity::verify_tree_sums;
use crate::extract::{CancelFlag, Limits, Progress, RestoreError, phase};
use crate::model::{
    CheckResult, CheckStatus, Outcome, Phase, RestoreStats, RunReport, Snapshot, SnapshotRef,
};
use crate::scratch::ScratchRoot;
use crate::select::Selection;
use crate::source::{RestoreRequest, Source};
use crate::units::{HumanBytes, HumanDuration};

/// What to run: a drill's resolved configuration.
pub struct DrillPlan<'a> {
    /// Drill name.
    pub name: &'a str,
    /// Source name (as configured).
    pub source_name: &'a str,
    /// The source.
    pub source: &'a dyn Source,
    /// Which snapshot.
    pub selection: &'a Selection,
    /// Recovery time objective.
    pub rto: Duration,
    /// Recovery point objective.
    pub rpo: Duration,
    /// Configured checks.
    pub checks: &'a [CheckConfig],
    /// Restore bounds (the free-space budget is filled in by the engine).
    pub limits: Limits,
    /// Free space kept in reserve on the scratch file system.
    pub free_space_margin: u64,
    /// Keep the restored folder after the run.
    pub keep: bool,
    /// Archives to restore (sources with several per snapshot); empty = all.
    pub archives: &'a [String],
    /// `target = "vm"`: boot the restored disk images and run the VM checks; `None`: the scratch folder only.
    pub vm: Option<&'a crate::target::vm::VmTargetConfig>,
}

/// Where and how to run.
pub struct RunEnv<'a> {
    /// The run id (already recorded as running by the caller).
    pub run_id: String,
    /// Scratch root.
    pub scratch: &'a ScratchRoot,
    /// The run's evidence folder (created by the engine).
    pub evidence_dir: PathBuf,
    /// Live counters.
    pub progress: Arc<Progress>,
    /// Agent shutdown.
    pub cancel: CancelFlag,
    /// The previous passing run's restore stats, for tolerance checks and the free-space estimate.
    pub baseline: Option<RestoreStats>,
}

struct Clock {
    start: Instant,
    last: Instant,
    phases: Vec<Phase>,
}

impl Clock {
    fn lap(&mut self, name: &str) {
        let now = Instant::now();
        self.phases.push(Phase {
            name: name.to_string(),
            seconds: (now - self.last).as_secs_f64(),
        });
        self.last = now;
    }
}

fn objective(name: &str, limit: Duration, actual: f64, what: &str) -> CheckResult {
    let ok = actual <= limit.as_secs_f64();
    let expected = format!("≤ {}", HumanDuration(limit.as_secs_f64()));
    let message = if ok {
        String::new()
    } else if name == "rpo" {
        format!(
            "the newest usable backup is {} old, more than the RPO of {}: the backup job may have stopped or be failing",
            HumanDuration(actual),
            HumanDuration(limit.as_secs_f64())
        )
    } else {
        format!(
            "the restore took {}, more than the RTO of {}: restores of this asset are too slow for its objective",
            HumanDuration(actual),
            HumanDuration(limit.as_secs_f64())
        )
    };
    CheckResult::new(
        name,
        "objective",
        if ok {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        },
        expected,
        format!("{} {what}", HumanDuration(actual)),
        message,
    )
}

/// Runs one drill and returns its report. Never panics on bad input.
pub fn run(plan: &DrillPlan<'_>, env: &RunEnv<'_>) -> RunReport {
    let started_at = Timestamp::now();
    let start = Instant::now();
    let mut st = State {
        clock: Clock {
            start,
            last: start,
            phases: Vec::new(),
        },
        checks: Vec::new(),
        error: None,
        forced: None,
        stats: None,
        rta: None,
        kept: None,
    };
    let mut snapshot_ref = None;
    let mut rpa = None;

    env.progress.set_phase(phase::SELECT);
    let picked = select(plan, env, started_at, &mut st);
    st.clock.lap("select");

    let mut rpa_from = "since the snapshot was taken".to_string();
    if let Some((snap, newest)) = &picked {
        snapshot_ref = Some(SnapshotRef {
            id: snap.id.clone(),
            time: snap.time,
        });
        // The recovery point is the newest snapshot: an older one drilled for sampling (oldest-within,
        // random-within) proves it restores, not how old the data of a restore today would be.
        let age = |t: Timestamp| (started_at.as_millisecond() - t.as_millisecond()) as f64 / 1000.0;
        rpa = Some(age(newest.time));
        if newest.id != snap.id {
            rpa_from = format!(
                "since the newest snapshot {} was taken (the drilled one is {} old)",
                newest.id,
                HumanDuration(age(snap.time))
            );
        }
        restore_check_teardown(plan, env, snap, &mut st);
    }

    if let Some(a) = rpa {
        st.checks.push(objective("rpo", plan.rpo, a, &rpa_from));
    }
    if let Some(a) = st.rta {
        st.checks.push(objective(
            "rto",
            plan.rto,
            a,
            "from run start to the last passing check",
        ));
    }
    let outcome = st.forced.unwrap_or_else(|| {
        if st.checks.iter().any(|c| c.status == CheckStatus::Failed) {
            Outcome::Failed
        } else if st.checks.iter().any(|c| c.status == CheckStatus::Error) {
            Outcome::Error
        } else {
            Outcome::Passed
        }
    });
    if st.error.is_none() && outcome != Outcome::Passed {
        let bad: Vec<String> = st
            .checks
            .iter()
            .filter(|c| matches!(c.status, CheckStatus::Failed | CheckStatus::Error))
            .take(3)
            .map(|c| {
                format!(
                    "{}: {}",
                    c.name,
                    if c.message.is_empty() {
                        &c.actual
                    } else {
                        &c.message
                    }
                )
            })
            .collect();
        st.error = Some(bad.join("; "));
    }
    env.progress.set_phase(phase::DONE);
    RunReport {
        run_id: env.run_id.clone(),
        drill: plan.name.to_string(),
        outcome,
        source: plan.source_name.to_string(),
        snapshot: snapshot_ref,
        started_at,
        finished_at: Timestamp::now(),
        rta_seconds: st.rta,
        rpa_seconds: rpa,
        rto_seconds: plan.rto.as_secs_f64(),
        rpo_seconds: plan.rpo.as_secs_f64(),
        rto_met: st.rta.map(|a| a <= plan.rto.as_secs_f64()),
        rpo_met: rpa.map(|a| a <= plan.rpo.as_secs_f64()),
        phases: st.clock.phases,
        checks: st.checks,
        error: st.error,
        restore: st.stats,
        evidence_dir: Some(env.evidence_dir.clone()),
        kept_dir: st.kept,
    }
}

struct State {
    clock: Clock,
    checks: Vec<CheckResult>,
    error: Option<String>,
    forced: Option<Outcome>,
    stats: Option<RestoreStats>,
    rta: Option<f64>,
    kept: Option<PathBuf>,
}

impl State {
    fn stop(&mut self, outcome: Outcome, msg: String) {
        self.forced = Some(outcome);
        self.error = Some(msg);
    }
}

fn select(
    plan: &DrillPlan<'_>,
    env: &RunEnv<'_>,
    now: Timestamp,
    st: &mut State,
) -> Option<(Snapshot, Snapshot)> {
    if let Err(e) = fs::create_dir_all(&env.evidence_dir) {
        st.stop(
            Outcome::Error,
            format!(
                "cannot create the evidence folder {}: {e}",
                env.evidence_dir.display()
            ),
        );
        return None;
    }
    let list = match plan.source.list() {
        Ok(l) => l,
        Err(e) => {
            st.stop(Outcome::Error, format!("source {}: {e}", plan.source_name));
            return None;
        }
    };
    match plan.selection.pick(&list, now) {
        Ok(s) => {
            let newest = plan.selection.newest(&list).unwrap_or(s);
            Some((s.clone(), newest.clone()))
        }
        Err(e) => {
            st.stop(
                Outcome::Failed,
                format!(
                    "no usable snapshot in source {} ({}): {e}",
                    plan.source_name,
                    plan.source.describe()
                ),
            );
            st.checks.push(CheckResult::new(
                "snapshot",
                "integrity",
                CheckStatus::Failed,
                "a snapshot to restore",
                "none",
                e.0,
            ));
            None
        }
    }
}

fn restore_check_teardown(plan: &DrillPlan<'_>, env: &RunEnv<'_>, snap: &Snapshot, st: &mut State) {
    env.progress.set_phase(phase::RESTORE);
    let lease = match env.scratch.lease(&env.run_id, plan.name) {
        Ok(l) => l,
        Err(e) => {
            st.stop(
                Outcome::Error,
                format!(
                    "cannot create a scratch folder under {}: {e}",
                    env.scratch.path().display()
                ),
            );
            st.clock.lap("restore");
            return;
        }
    };
    let restored_ok = restore(plan, env, snap, &lease, st);
    st.clock.lap("restore");

    let mut vm = None;
    if restored_ok && let Some(cfg) = plan.vm {
        // Boot is its own phase of the RTA: QEMU start to the boot check's pattern on the serial console.
        env.progress.set_phase(phase::BOOT);
        let ctx = crate::target::vm::VmContext {
            drill: plan.name,
            restore_root: &lease.dir().join("restore"),
            run_dir: &lease.dir().join("vm"),
            evidence_dir: &env.evidence_dir,
            lease: &lease,
            cancel: &env.cancel,
        };
        match crate::target::vm::boot(cfg, plan.checks, &ctx, &mut st.checks) {
            Ok(v) => vm = Some(v),
            Err((outcome, msg)) => st.stop(outcome, msg),
        }
        st.clock.lap("boot");
    }

    if restored_ok {
        env.progress.set_phase(phase::CHECKS);
        for (i, c) in plan.checks.iter().enumerate() {
            match c {
                CheckConfig::Integrity(_) => {}
                // Run against the booted VM below.
                CheckConfig::Boot(_)
                | CheckConfig::Screenshot(_)
                | CheckConfig::Tcp(_)
                | CheckConfig::Http(_)
                | CheckConfig::GuestAgent(_) => {}
                CheckConfig::Files(f) => {
                    let started = Instant::now();
                    let stats = st.stats.clone().unwrap_or_default();
                    let mut results =
                        f.run(&lease.dir().join("restore"), &stats, env.baseline.as_ref());
                    if let Some(r) = results.last_mut() {
                        r.seconds = started.elapsed().as_secs_f64();
                    }
                    st.checks.extend(results);
                }
                CheckConfig::Command(cmd) => {
                    let root = lease.dir().join("restore");
                    st.checks.push(cmd.run(&CommandEnv {
                        restore_dir: &root,
                        evidence_dir: &env.evidence_dir,
                        run_id: &env.run_id,
                        drill: plan.name,
                        snapshot_id: &snap.id,
                        snapshot_time: snap.time.to_string(),
                        lease: &lease,
                        cancel: &env.cancel,
                        index: i,
                    }));
                }
            }
        }
        if let Some(v) = vm.as_mut() {
            crate::target::vm::run_checks(v, plan.checks, &env.cancel, &mut st.checks);
        }
        st.clock.lap("checks");
        let all_passed = st.forced.is_none()
            && st.checks.iter().all(|c| {
                matches!(
                    c.status,
                    CheckStatus::Passed | CheckStatus::Warning | CheckStatus::Unverifiable
                )
            });
        if all_passed {
            st.rta = Some(st.clock.start.elapsed().as_secs_f64());
        }
    }

    env.progress.set_phase(phase::TEARDOWN);
    if let Some(v) = vm {
        crate::target::vm::teardown(v, &lease);
    }
    let teardown = if plan.keep {
        lease.keep().map(|dir| st.kept = Some(dir.join("restore")))
    } else {
        lease.release()
    };
    if let Err(e) = teardown {
        tracing::warn!(run = %env.run_id, error = %e, "scratch cleanup failed; the next sweep retries it");
    }
    st.clock.lap("teardown");
}

/// Restores into the lease's folder and records integrity results; `false` when the run cannot go on.
fn restore(
    plan: &DrillPlan<'_>,
    env: &RunEnv<'_>,
    snap: &Snapshot,
    lease: &crate::scratch::Lease,
    st: &mut State,
) -> bool {
    let root = lease.dir().join("restore");
    if let Err(e) = fs::create_dir(&root) {
        st.stop(
            Outcome::Error,
            format!("cannot create {}: {e}", root.display()),
        );
        return false;
    }
    let free = match env.scratch.free_bytes() {
        Ok(f) => f,
        Err(e) => {
            st.stop(
                Outcome::Error,
                format!(
                    "cannot read free space of {}: {e}",
                    env.scratch.path().display()
                ),
            );
            return false;
        }
    };
    let expected = plan
        .source
        .expected_size(snap)
        .unwrap_or(0)
        .max(env.baseline.as_ref().map_or(0, |b| b.bytes));
    let need = expected.saturating_add(plan.free_space_margin);
    if free < need {
        st.stop(
            Outcome::Error,
            format!(
                "not enough scratch space under {}: {} free, {} needed ({} expected restore size + {} margin); free space there or point `scratch_dir` at a larger file system",
                env.scratch.path().display(),
                HumanBytes(free),
                HumanBytes(need),
                HumanBytes(expected),
                HumanBytes(plan.free_space_margin)
            ),
        );
        return false;
    }
    env.progress
        .expected_bytes
        .store(expected, std::sync::atomic::Ordering::Relaxed);
    let mut limits = plan.limits;
    limits.space_budget = free - plan.free_space_margin;
    let req = RestoreRequest {
        root: root.clone(),
        evidence_dir: env.evidence_dir.clone(),
        limits,
        progress: env.progress.clone(),
        cancel: env.cancel.clone(),
        archives: plan.archives.to_vec(),
    };
    let restored = match plan.source.restore(snap, &req) {
        Ok(r) => r,
        Err(e) => {
            let what = format!("snapshot {} of source {}: {e}", snap.id, plan.source_name);
            if e.is_backup_fault() {
                st.checks.push(CheckResult::new(
                    "restore",
                    "integrity",
                    CheckStatus::Failed,
                    "a complete, safe restore",
                    "stopped",
                    e.to_string(),
                ));
                st.stop(Outcome::Failed, what);
            } else if matches!(e, RestoreError::Cancelled) {
                st.stop(
                    Outcome::Error,
                    format!("{what} (the run was interrupted and proves nothing)"),
                );
            } else {
                st.stop(Outcome::Error, what);
            }
            return false;
        }
    };
    let content_verified = restored.content_verified;
    let summary = restored.summary;
    let mut integrity = restored.integrity;
    if let Some(first) = integrity.first_mut() {
        first.evidence.push(summary.manifest_path.clone());
    }
    st.checks.extend(integrity);
    let has_archive_sum =
        content_verified || st.checks.iter().any(|c| c.name == "archive checksum");
    match verify_tree_sums(&root, &summary.sums_files, &summary.manifest_path) {
        Some(r) => st.checks.push(r),
        None if !has_archive_sum => {
            let strict = plan
                .checks
                .iter()
                .any(|c| matches!(c, CheckConfig::Integrity(i) if i.require_checksums));
            st.checks.push(CheckResult::new(
                "checksums",
                "integrity",
                if strict { CheckStatus::Failed } else { CheckStatus::Unverifiable },
                "a checksum list (SHA256SUMS, NAME.sha256) to verify content against",
                "none found",
                "the backup carries no checksums, so silent corruption of file contents cannot be detected; have the backup job write SHA256SUMS (e.g. `sha256sum * > SHA256SUMS`)",
            ));
        }
        None => {}
    }
    let s = &summary.stats;
    if s.special_files + s.setid_dropped > 0 {
        let mut c = CheckResult::new(
            "special files",
            "integrity",
            CheckStatus::Passed,
            "device nodes, fifos and sockets recorded, not created; setuid/setgid bits dropped",
            format!(
                "{} special files, {} setuid/setgid files",
                s.special_files, s.setid_dropped
            ),
            summary
                .specials_sample
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
        c.evidence.push(summary.specials_path.clone());
        st.checks.push(c);
    }
    st.stats = Some(summary.stats);
    true
}
