//! Runs one drill end to end for the CLI and the agent: sweep stale leases, record the run as started,
//! run the engine, keep the report as evidence and complete the history row.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use jiff::Timestamp;
use lifeboat_drills::engine::{self, DrillPlan, RunEnv};
use lifeboat_drills::extract::{CancelFlag, Progress};
use lifeboat_drills::model::RunReport;
use lifeboat_drills::scratch::ScratchRoot;

use crate::alerts::Alerts;
use crate::config::{Config, Drill};
use crate::store::{Interrupted, NewRun, Store, StoreError};

/// Shared state for running drills.
pub struct Runner {
    /// Configuration.
    pub config: Arc<Config>,
    /// History.
    pub store: Store,
    /// Scratch root.
    pub scratch: ScratchRoot,
    /// Set on SIGTERM/SIGINT.
    pub cancel: CancelFlag,
}

/// Could not set up the runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// History.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Scratch.
    #[error("cannot use scratch directory {path}: {source}; check `scratch_dir` and permissions")]
    Scratch {
        /// Folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A new, time-sortable run id: `20261122T031500Z-4f9a1c`.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_nanosecond() as u128);
    h.write_u32(std::process::id());
    let now = Timestamp::now();
    format!(
        "{}-{:06x}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        h.finish() & 0xff_ffff
    )
}

impl Runner {
    /// Opens history and scratch, then recovers after any crash.
    pub fn open(config: Arc<Config>) -> Result<Runner, RunnerError> {
        let store = Store::open(&config.state_dir)?;
        let scratch = ScratchRoot::open(&config.scratch_dir).map_err(|e| RunnerError::Scratch {
            path: config.scratch_dir.clone(),
            source: e,
        })?;
        let r = Runner {
            config,
            store,
            scratch,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        for i in r.recover()? {
            tracing::warn!(run = %i.run_id, drill = %i.drill, "an interrupted run was found and recorded as error");
        }
        Ok(r)
    }

    /// Removes scratch resources of dead runs and records those runs as `error`.
    pub fn recover(&self) -> Result<Vec<Interrupted>, RunnerError> {
        let swept = self.scratch.sweep().map_err(|e| RunnerError::Scratch {
            path: self.config.scratch_dir.clone(),
            source: e,
        })?;
        for s in &swept {
            tracing::info!(run = %s.info.run_id, killed = ?s.killed, "removed the scratch folder of an interrupted run");
        }
        // An interrupted run is a drill.error like any other: its channels are told, in the same
        // transaction that records it.
        let alerts = Alerts::new(&self.config);
        Ok(self.store.recover_with(&|tx, report| {
            let notify = self
                .config
                .drills
                .get(&report.drill)
                .and_then(|d| d.notify.as_ref());
            alerts
                .on_run(tx, notify, report, Timestamp::now())
                .map(|_| ())
        })?)
    }

    /// Runs `drill` now.
    pub fn run(
        &self,
        drill: &Drill,
        keep: bool,
        trigger: &str,
        progress: Arc<Progress>,
    ) -> Result<RunReport, RunnerError> {
        self.recover()?;
        let run_id = new_run_id();
        let started = Timestamp::now();
        self.store.begin_run(&NewRun {
            run_id: &run_id,
            drill: &drill.name,
            source: &drill.source,
            trigger,
            started_at: started,
            rto: drill.rto.as_secs_f64(),
            rpo: drill.rpo.as_secs_f64(),
        })?;
        let alerts = Alerts::new(&self.config);
        if !self.config.channels.is_empty() {
            self.store.transaction(|tx| {
                alerts.on_started(tx, drill.notify.as_ref(), &drill.name, &run_id, started)
            })?;
        }
        let evidence_dir = self.config.state_dir.join("evidence").join(&run_id);
        let baseline = self.store.last_passing_stats(&drill.name)?;
        let report = match self.config.sources.get(&drill.source) {
            Some(src_cfg) => {
                let source = src_cfg.build(&self.config.timezone);
                let plan = DrillPlan {
                    name: &drill.name,
                    source_name: &drill.source,
                    source: source.as_ref(),
                    selection: &drill.selection,
                    rto: drill.rto,
                    rpo: drill.rpo,
                    checks: &drill.checks,
                    limits: drill.limits,
                    free_space_margin: self.config.free_space_margin,
                    keep,
                    archives: &drill.archives,
                    vm: drill.vm.as_ref(),
                };
                let env = RunEnv {
                    run_id: run_id.clone(),
                    scratch: &self.scratch,
                    evidence_dir: evidence_dir.clone(),
                    progress,
                    cancel: self.cancel.clone(),
                    baseline,
                };
                engine::run(&plan, &env)
            }
            None => unreachable_source(&run_id, drill, started),
        };
        if let Ok(json) = serde_json::to_vec_pretty(&report) {
            let _ = std::fs::create_dir_all(&evidence_dir);
            if let Err(e) = std::fs::write(evidence_dir.join("run.json"), json) {
                tracing::warn!(error = %e, "could not write run.json evidence");
            }
        }
        self.store.finish_run_with(&report, |tx| {
            alerts
                .on_run(tx, drill.notify.as_ref(), &report, Timestamp::now())
                .map(|_| ())
        })?;
        Ok(report)
    }
}

/// Validation guarantees every drill's source exists; this keeps the impossible case an `error`, not a panic.
fn unreachable_source(run_id: &str, drill: &Drill, started: Timestamp) -> RunReport {
    RunReport {
        run_id: run_id.to_string(),
        drill: drill.name.clone(),
        outcome: lifeboat_drills::model::Outcome::Error,
        source: drill.source.clone(),
        snapshot: None,
        started_at: started,
        finished_at: Timestamp::now(),
        rta_seconds: None,
        rpa_seconds: None,
        rto_seconds: drill.rto.as_secs_f64(),
        rpo_seconds: drill.rpo.as_secs_f64(),
        rto_met: None,
        rpo_met: None,
        phases: vec![],
        checks: vec![],
        error: Some(format!("source {} is not configured", drill.source)),
        restore: None,
        evidence_dir: None,
        kept_dir: None,
    }
}
