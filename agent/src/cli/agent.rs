//! `lifeboat agent`: the daemon. Runs every enabled, scheduled drill at its instants, at most
//! `max_parallel` at once and never the same drill twice at once, and writes every `[reports.NAME]` at its
//! instants (reports do not take a drill slot: they only read the history); runs watches and channel
//! digests on their schedules; delivers the outbox (retrying with backoff) and sends reminders; stops
//! cleanly on SIGTERM/SIGINT (running drills are cancelled, cleaned up and recorded as `error`).
//!
//! It writes a heartbeat to the history database every minute; at start-up, scheduled drill instants
//! between the last heartbeat and now are reported as `drill.missed` (the agent was down).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use lifeboat_drills::extract::Progress;
use lifeboat_drills::model::Outcome;
use tokio::sync::{Semaphore, watch};

use super::{UsageError, exit};
use crate::alerts::deliver::{self, Channels};
use crate::alerts::{Alerts, compose, enqueue, state_get, state_set};
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
    jobs.extend(config.watches.values().filter(|w| w.enabled).map(|w| Job {
        name: w.name.clone(),
        kind: JobKind::Watch,
        schedule: w.schedule.clone(),
    }));
    jobs.extend(config.channels.values().filter_map(|c| {
        c.digest.clone().map(|s| Job {
            name: c.name.clone(),
            kind: JobKind::Digest,
            schedule: s,
        })
    }));
    if jobs.is_empty() {
        return Err(UsageError("no enabled drill, watch or report has a `schedule`; add one (e.g. schedule = \"0 3 * * *\") or use `lifeboat drill`".into()).into());
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
    startup_missed(&runner);
    // A restart is a retry point: the operator may have just fixed the mail server.
    if let Err(e) = crate::alerts::outbox::due_now(&runner.store, jiff::Timestamp::now()) {
        tracing::error!(error = %e, "could not read the outbox");
    }
    let kick = Arc::new(tokio::sync::Notify::new());
    let housekeeping = tokio::spawn(housekeeping(runner.clone(), kick.clone(), rx.clone()));
    let limit = Arc::new(Semaphore::new(runner.config.max_parallel));
    let running: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = tokio::task::JoinSet::new();
    schedule::run(&jobs, &SystemClock, rx, None, |job, due| {
        match job.kind {
            JobKind::Report | JobKind::Watch | JobKind::Digest => {
                spawn_side_job(&mut tasks, &runner, &running, job.kind, &job.name, due, &kick);
                return;
            }
            JobKind::Drill => {}
        }
        let name = job.name.clone();
        if !running.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()) {
            tracing::warn!(drill = %name, due = %due, "still running from its previous instant; this instant is skipped");
            return;
        }
        let (runner, limit, running, kick) =
            (runner.clone(), limit.clone(), running.clone(), kick.clone());
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
            kick.notify_one();
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
    let _ = housekeeping.await;
    tracing::info!("lifeboat agent stopped");
    Ok(())
}

/// Queues `report.generated` for the report's channels.
fn report_generated(
    runner: &Runner,
    name: &str,
    notify: &[String],
    files: &[std::path::PathBuf],
) -> Result<(), crate::store::StoreError> {
    let now = jiff::Timestamp::now();
    let mut n = compose::base(
        &runner.config,
        lifeboat_notify::EventKind::ReportGenerated,
        lifeboat_notify::Transition::Info,
        lifeboat_notify::Severity::Info,
        now,
        "",
        &format!("report/{name}"),
        format!("[lifeboat] REPORT {name} written"),
        format!(
            "The scheduled compliance report {name} was written to {} file(s).",
            files.len()
        ),
    );
    n.details = files.iter().map(|f| f.display().to_string()).collect();
    n.data = serde_json::json!({"report": name, "files": n.details, "site": runner.config.site});
    let alerts = Alerts::new(&runner.config);
    let channels = alerts.channels(Some(&notify.to_vec()));
    runner.store.transaction(|tx| {
        for ch in channels {
            if ch.events.contains(&n.event) || notify.contains(&ch.name) {
                enqueue(
                    tx,
                    &format!("report.{name}.{}", now.as_millisecond()),
                    &ch.name,
                    &n,
                    now,
                )?;
            }
        }
        Ok(())
    })
}

/// Writes a report, runs a watch or sends a digest in the background; single flight per job (keyed
/// `KIND:NAME`, so a report and a drill of the same name do not block each other). These jobs only read
/// sources or the history, so they do not take a drill slot.
fn spawn_side_job(
    tasks: &mut tokio::task::JoinSet<()>,
    runner: &Arc<Runner>,
    running: &Arc<Mutex<HashSet<String>>>,
    kind: JobKind,
    name: &str,
    due: jiff::Timestamp,
    kick: &Arc<tokio::sync::Notify>,
) {
    let key = format!("{kind:?}:{name}");
    if !running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        tracing::warn!(job = %key, due = %due, "still running from its previous instant; this instant is skipped");
        return;
    }
    let (runner, running, name, kick) = (
        runner.clone(),
        running.clone(),
        name.to_string(),
        kick.clone(),
    );
    tasks.spawn(async move {
        let r2 = runner.clone();
        let n2 = name.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            match kind {
                JobKind::Report => {
                    let Some(job) = r2.config.reports.get(&n2) else {
                        return Ok(String::new());
                    };
                    let files = crate::report::scheduled::run(
                        &r2.config,
                        &r2.store,
                        job,
                        jiff::Timestamp::now(),
                    )?;
                    if !job.notify.is_empty() {
                        report_generated(&r2, &n2, &job.notify, &files)?;
                    }
                    let files: Vec<String> =
                        files.iter().map(|f| f.display().to_string()).collect();
                    Ok(format!(
                        "report.generated: {} (channels: {})",
                        files.join(", "),
                        job.notify.join(", ")
                    ))
                }
                JobKind::Watch => {
                    let Some(w) = r2.config.watches.get(&n2) else {
                        return Ok(String::new());
                    };
                    let r = super::watch::run_one(&r2.config, &r2.store, w)?;
                    Ok(match r.error {
                        Some(e) => format!("error: {e}"),
                        None => format!(
                            "{} asset(s), {} problem(s), {} notification(s) queued",
                            r.assets,
                            r.problems.len(),
                            r.queued
                        ),
                    })
                }
                _ => {
                    let alerts = Alerts::new(&r2.config);
                    let added = r2
                        .store
                        .transaction(|tx| alerts.digest(tx, &n2, jiff::Timestamp::now()))?;
                    Ok(format!("digest queued: {added}"))
                }
            }
        })
        .await;
        running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        kick.notify_one();
        match result {
            Ok(Ok(msg)) => tracing::info!(job = %key, result = %msg, "done"),
            Ok(Err(e)) => tracing::error!(job = %key, error = %e, "failed"),
            Err(e) => tracing::error!(job = %key, error = %e, "task failed"),
        }
    });
}

/// At start-up: drill instants missed while the agent was down become `drill.missed`.
fn startup_missed(runner: &Runner) {
    let now = jiff::Timestamp::now();
    let alerts = Alerts::new(&runner.config);
    let result = runner.store.transaction(|tx| {
        let last = state_get(tx, HEARTBEAT)?;
        let found = match last.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
            Some(t) => alerts.missed(tx, t, now)?,
            None => Vec::new(),
        };
        state_set(tx, HEARTBEAT, now.as_millisecond())?;
        Ok(found)
    });
    match result {
        Ok(found) if !found.is_empty() => {
            tracing::warn!(drills = ?found, "scheduled drills did not run while the agent was down (drill.missed)");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not check for missed drills"),
    }
}

/// The `agent_state` key of the heartbeat.
pub const HEARTBEAT: &str = "agent:heartbeat";

/// Every few seconds (or when kicked): deliver the outbox; every minute: heartbeat and reminders. Ends on
/// shutdown after a last delivery pass (bounded).
async fn housekeeping(
    runner: Arc<Runner>,
    kick: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let channels = Channels::build(&runner.config);
    let alerts = Alerts::new(&runner.config);
    let mut last_minute = tokio::time::Instant::now() - std::time::Duration::from_secs(60);
    loop {
        if last_minute.elapsed() >= std::time::Duration::from_secs(60) {
            last_minute = tokio::time::Instant::now();
            let now = jiff::Timestamp::now();
            if let Err(e) = runner.store.transaction(|tx| {
                state_set(tx, HEARTBEAT, now.as_millisecond())?;
                alerts.remind(tx, now)
            }) {
                tracing::error!(error = %e, "heartbeat/reminders failed");
            }
        }
        if !runner.config.channels.is_empty()
            && let Err(e) = deliver::pass(&runner.store, &channels, None).await
        {
            tracing::error!(error = %e, "outbox delivery failed");
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = kick.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
    // One last bounded pass so a notification queued at shutdown is not left for the next start.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let _ = deliver::pass(&runner.store, &channels, Some(deadline)).await;
}
