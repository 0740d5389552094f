//! `lifeboat agent`: the daemon. Runs every enabled, scheduled drill at its instants, at most
//! `max_parallel` at once and never the same drill twice at once, and writes every `[reports.NAME]` at its
//! instants (reports do not take a drill slot: they only read the history); stops cleanly on SIGTERM/SIGINT
//! (running drills are cancelled, cleaned up and recorded as `error`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use lifeboat_drills::extract::Progress;
use lifeboat_drills::model::Outcome;
use tokio::sync::{Semaphore, watch};

use super::{UsageError, exit};
use crate::config::Config;
use crate::runner::Runner;
use crate::schedule::{self, Job, JobKind, SystemClock};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(config: Config, _a: &Args) -> anyhow::Result<u8> {
    let mut jobs: Vec<Job> = config
        .drills
        .values()
        .filter(|d| d.enabled)
        .filter_map(|d| {
            d.schedule.clone().map(|s| Job {
                name: d.name.clone(),
                kind: JobKind::Drill,
                schedule: s,
            })
        })
        .collect();
    jobs.extend(config.reports.values().map(|r| Job {
        name: r.name.clone(),
        kind: JobKind::Report,
        schedule: r.schedule.clone(),
    }));
    if jobs.is_empty() {
        return Err(UsageError("no enabled drill and no report has a `schedule`; add one (e.g. schedule = \"0 3 * * *\") or use `lifeboat drill`".into()).into());
    }
    let runner = Arc::new(Runner::open(Arc::new(config))?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(runner, jobs))?;
    Ok(exit::OK)
}

async fn serve(runner: Arc<Runner>, jobs: Vec<Job>) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel(false);
    let cancel = runner.cancel.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: cancelling running drills");
        cancel.store(true, Ordering::Relaxed);
        let _ = tx.send(true);
    });
    let now = jiff::Timestamp::now();
    for j in &jobs {
        if let Some(t) = j.schedule.next_after(now) {
            tracing::info!(kind = ?j.kind, name = %j.name, schedule = %j.schedule.expr, next = %t.to_zoned(j.schedule.tz.clone()), "scheduled");
        }
    }
    tracing::info!(
        drills = jobs.iter().filter(|j| j.kind == JobKind::Drill).count(),
        reports = jobs.iter().filter(|j| j.kind == JobKind::Report).count(),
        max_parallel = runner.config.max_parallel,
        "lifeboat agent started"
    );
    let limit = Arc::new(Semaphore::new(runner.config.max_parallel));
    let running: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = tokio::task::JoinSet::new();
    schedule::run(&jobs, &SystemClock, rx, None, |job, due| {
        if job.kind == JobKind::Report {
            spawn_report(&mut tasks, &runner, &running, &job.name, due);
            return;
        }
        let name = job.name.clone();
        if !running.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()) {
            tracing::warn!(drill = %name, due = %due, "still running from its previous instant; this instant is skipped");
            return;
        }
        let (runner, limit, running) = (runner.clone(), limit.clone(), running.clone());
        tasks.spawn(async move {
            let permit = limit.acquire_owned().await;
            let r2 = runner.clone();
            let n2 = name.clone();
            let result = tokio::task::spawn_blocking(move || {
                let drill = r2.config.drills.get(&n2)?;
                Some(r2.run(drill, false, "schedule", Arc::new(Progress::default())))
            })
            .await;
            drop(permit);
            running.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            match result {
                Ok(Some(Ok(r))) => {
                    let level_bad = r.outcome != Outcome::Passed;
                    if level_bad {
                        tracing::warn!(drill = %name, run = %r.run_id, outcome = r.outcome.as_str(), error = r.error.as_deref().unwrap_or(""), "drill finished");
                    } else {
                        tracing::info!(drill = %name, run = %r.run_id, rta = ?r.rta_seconds, rpa = ?r.rpa_seconds, "drill passed");
                    }
                }
                Ok(Some(Err(e))) => tracing::error!(drill = %name, error = %e, "drill could not be recorded"),
                Ok(None) => {}
                Err(e) => tracing::error!(drill = %name, error = %e, "drill task failed"),
            }
        });
    })
    .await;
    while tasks.join_next().await.is_some() {}
    tracing::info!("lifeboat agent stopped");
    Ok(())
}

/// Writes report `name` in the background; single flight per report (keyed `report:NAME` so a report and a
/// drill of the same name do not block each other).
fn spawn_report(
    tasks: &mut tokio::task::JoinSet<()>,
    runner: &Arc<Runner>,
    running: &Arc<Mutex<HashSet<String>>>,
    name: &str,
    due: jiff::Timestamp,
) {
    let key = format!("report:{name}");
    if !running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        tracing::warn!(report = %name, due = %due, "still writing from its previous instant; this instant is skipped");
        return;
    }
    let (runner, running, name) = (runner.clone(), running.clone(), name.to_string());
    tasks.spawn(async move {
        let r2 = runner.clone();
        let n2 = name.clone();
        let result = tokio::task::spawn_blocking(move || {
            let job = r2.config.reports.get(&n2)?;
            let out = crate::report::scheduled::run(&r2.config, &r2.store, job, jiff::Timestamp::now());
            Some((out, job.notify.clone()))
        })
        .await;
        running.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        match result {
            Ok(Some((Ok(files), notify))) => {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                tracing::info!(report = %name, files = ?files, "report.generated");
                if !notify.is_empty() {
                    tracing::info!(report = %name, channels = ?notify, "notify is not delivered yet (alert channels come with the alerts feature); the files above are written");
                }
            }
            Ok(Some((Err(e), _))) => tracing::error!(report = %name, error = %e, "report could not be written"),
            Ok(None) => {}
            Err(e) => tracing::error!(report = %name, error = %e, "report task failed"),
        }
    });
}
