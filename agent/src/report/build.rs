//! Collects the history and the configuration of one period into a [`Report`].
//!
//! The configuration says what is in scope and what the policy asks (RTO, RPO, schedule, sampling); the
//! history says what happened. Drills that ran in the period but were since removed from the configuration
//! are still reported (their runs happened), but are not counted as in scope.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use lifeboat_drills::model::{CheckStatus, Outcome, RunReport};
use lifeboat_drills::select::Strategy;

use super::ReportError;
use super::kpi;
use super::ledger::Verifier;
use super::model::*;
use super::period::Period;
use crate::config::Config;
use crate::store::Store;

fn period_info(p: &Period, now: Timestamp) -> PeriodInfo {
    PeriodInfo {
        label: p.label.clone(),
        from: p.from(),
        to: p.to(),
        timezone: p.tz_name(),
        as_of: p.to().min(now).max(p.from()),
    }
}

/// `failed`/`error` and a finer cause, from the run's checks and objectives.
pub fn classify(r: &RunReport) -> (Option<String>, Option<String>) {
    let failed_kind = |pred: &dyn Fn(&str) -> bool| {
        r.checks
            .iter()
            .any(|c| c.status == CheckStatus::Failed && pred(&c.kind))
    };
    match r.outcome {
        Outcome::Failed => {
            let cause = if failed_kind(&|k| k == "integrity") {
                "integrity"
            } else if failed_kind(&|k| k != "objective") {
                "content"
            } else if r.rpo_met == Some(false) {
                "rpo-breached"
            } else if r.rto_met == Some(false) {
                "rto-breached"
            } else {
                "failed"
            };
            (Some("failed".into()), Some(cause.into()))
        }
        Outcome::Error => {
            let cause = if r
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("interrupted"))
            {
                "interrupted"
            } else if r.snapshot.is_none() {
                "no-snapshot"
            } else {
                "infrastructure"
            };
            (Some("error".into()), Some(cause.into()))
        }
        _ => (None, None),
    }
}

fn strategy(s: Strategy) -> &'static str {
    match s {
        Strategy::Latest => "latest",
        Strategy::OldestWithin => "oldest-within",
        Strategy::RandomWithin => "random-within",
    }
}

/// Builds the report of `period` as of `now`.
pub fn build(
    config: &Config,
    store: &Store,
    period: &Period,
    now: Timestamp,
) -> Result<Report, ReportError> {
    let info = period_info(period, now);
    let runs = store.runs_between(info.from, info.to)?;
    let good_before: HashMap<String, Timestamp> =
        store.newest_good_before(info.from)?.into_iter().collect();
    let ledger_refs: HashMap<String, crate::store::LedgerRef> = store
        .ledger_entries_between(info.from, info.to)?
        .into_iter()
        .collect();
    let verification = store.verify_ledger(Verifier::new(false, None))?;

    let mut by_drill: BTreeMap<String, Vec<&RunReport>> = BTreeMap::new();
    for r in &runs {
        by_drill.entry(r.drill.clone()).or_default().push(r);
    }
    for name in config.drills.keys() {
        by_drill.entry(name.clone()).or_default();
    }

    let mut assets = Vec::new();
    let mut asset_kpis = Vec::new();
    let mut in_scope_runs: Vec<&RunReport> = Vec::new();
    let (mut planned_sum, mut comp_sum, mut meas_sum) = (0u64, 0.0, 0.0);
    for (name, drill_runs) in &by_drill {
        let d = config.drills.get(name);
        let enabled = d.is_some_and(|d| d.enabled);
        let (rto, rpo) = match (d, drill_runs.last()) {
            (Some(d), _) => (d.rto.as_secs_f64(), d.rpo.as_secs_f64()),
            (None, Some(r)) => (r.rto_seconds, r.rpo_seconds),
            (None, None) => (0.0, 0.0),
        };
        let schedule = d.and_then(|d| d.schedule.as_ref());
        let planned = match schedule {
            Some(s) if enabled => kpi::planned_runs(s, info.from, info.as_of),
            _ => 0,
        };
        let passes: Vec<(Timestamp, Timestamp)> = drill_runs
            .iter()
            .filter(|r| r.outcome == Outcome::Passed)
            .filter_map(|r| r.snapshot.as_ref().map(|s| (r.finished_at, s.time)))
            .collect();
        let rpo_fig = kpi::rpo_compliance(
            rpo,
            good_before.get(name).copied(),
            &passes,
            info.from,
            info.as_of,
        );
        let k = kpi::kpi(drill_runs.iter().copied(), planned, rpo_fig);
        if enabled {
            planned_sum += planned;
            comp_sum += rpo_fig.0;
            meas_sum += rpo_fig.1;
            in_scope_runs.extend(drill_runs.iter().copied());
        }
        let measured_hours = info.as_of.duration_since(info.from).as_secs_f64() / 3600.0;
        assets.push(Asset {
            drill: name.clone(),
            description: d.and_then(|d| d.description.clone()),
            source: d.map_or_else(
                || {
                    drill_runs
                        .first()
                        .map(|r| r.source.clone())
                        .unwrap_or_default()
                },
                |d| d.source.clone(),
            ),
            enabled,
            configured: d.is_some(),
            rto_seconds: rto,
            rpo_seconds: rpo,
            schedule: schedule.map(|s| s.expr.clone()),
            schedule_timezone: schedule.map(|s| s.tz.iana_name().unwrap_or("local").to_string()),
            planned,
            planned_interval_hours: (planned > 0).then(|| measured_hours / planned as f64),
            select: d
                .map_or("latest", |d| strategy(d.selection.strategy))
                .to_string(),
            select_window_seconds: d.filter(|d| d.selection.strategy != Strategy::Latest).map(
                |d| {
                    d.selection
                        .window
                        .map_or(7.0 * 86_400.0, |w| w.as_secs_f64())
                },
            ),
            run: k.run,
            passed: k.passed,
        });
        asset_kpis.push(AssetKpi {
            drill: name.clone(),
            rto_seconds: rto,
            rpo_seconds: rpo,
            kpi: k,
        });
    }
    let overall = kpi::kpi(
        in_scope_runs.iter().copied(),
        planned_sum,
        (comp_sum, meas_sum),
    );
    let in_scope: Vec<&Asset> = assets.iter().filter(|a| a.enabled).collect();
    let coverage = Coverage {
        assets_in_scope: in_scope.len() as u64,
        assets_drilled: in_scope.iter().filter(|a| a.run > 0).count() as u64,
        assets_passed: in_scope.iter().filter(|a| a.passed > 0).count() as u64,
        assets_never_drilled: in_scope
            .iter()
            .filter(|a| a.run == 0)
            .map(|a| a.drill.clone())
            .collect(),
        assets: assets.clone(),
    };

    let previous = previous_overall(config, store, &period.previous(), now)?;

    // A later pass resolves an exception: look in the period and after it.
    let mut passes_by_drill: HashMap<&str, Vec<(Timestamp, String)>> = HashMap::new();
    for r in runs.iter().filter(|r| r.outcome == Outcome::Passed) {
        passes_by_drill
            .entry(r.drill.as_str())
            .or_default()
            .push((r.started_at, r.run_id.clone()));
    }
    let later = store.passed_runs_after(info.to)?;
    for (drill, id, at) in &later {
        passes_by_drill
            .entry(drill.as_str())
            .or_default()
            .push((*at, id.clone()));
    }
    let isolation = format!(
        "scratch directory under {} on the agent host, apart from the source (only read); removed at teardown",
        config.scratch_dir.display()
    );
    let mut records = Vec::with_capacity(runs.len());
    let mut exceptions = Vec::new();
    for r in &runs {
        let (class, cause) = classify(r);
        if let Some(c) = &class {
            let fix = passes_by_drill
                .get(r.drill.as_str())
                .and_then(|v| v.iter().find(|(at, _)| *at > r.started_at));
            exceptions.push(Exception {
                run_id: r.run_id.clone(),
                drill: r.drill.clone(),
                started_at: r.started_at,
                failure_class: c.clone(),
                cause: cause.clone(),
                error: r.error.clone(),
                resolved: fix.is_some(),
                resolved_by: fix.map(|f| f.1.clone()),
                resolved_at: fix.map(|f| f.0),
            });
        }
        let lref = ledger_refs.get(&r.run_id);
        records.push(RunRecord {
            run_id: r.run_id.clone(),
            drill: r.drill.clone(),
            source: r.source.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            snapshot_id: r.snapshot.as_ref().map(|s| s.id.clone()),
            snapshot_time: r.snapshot.as_ref().map(|s| s.time),
            target: if r.checks.iter().any(|c| c.name.starts_with("image ")) {
                "image".into()
            } else {
                "directory".into()
            },
            isolation: isolation.clone(),
            rta_seconds: r.rta_seconds,
            rto_seconds: r.rto_seconds,
            rto_met: r.rto_met,
            rpa_seconds: r.rpa_seconds,
            rpo_seconds: r.rpo_seconds,
            rpo_met: r.rpo_met,
            outcome: r.outcome.as_str().into(),
            failure_class: class,
            cause,
            error: r.error.clone(),
            checks: r
                .checks
                .iter()
                .map(|c| CheckRecord {
                    name: c.name.clone(),
                    kind: c.kind.clone(),
                    status: c.status.as_str().into(),
                    expected: c.expected.clone(),
                    actual: c.actual.clone(),
                })
                .collect(),
            evidence: lref.map(|l| l.evidence.clone()).unwrap_or_default(),
            ledger_seq: lref.map(|l| l.seq),
            ledger_hash: lref.map(|l| l.entry_hash.clone()),
        });
    }

    Ok(Report {
        schema: SCHEMA.into(),
        header: Header {
            organisation: config.organisation.clone(),
            site: config.site.clone(),
            period: info,
            generated_at: now,
            generator: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            config_path: config.path.display().to_string(),
            config_sha256: config.sha256.clone(),
            ledger: LedgerInfo {
                entries: verification.entries,
                head_hash: verification.head.clone(),
                intact: verification.intact(),
                first_break: verification.first_break.clone(),
                edited_runs: verification.run_mismatches.len() as u64,
                unrecorded_runs: verification.unrecorded_runs.len() as u64,
            },
        },
        coverage,
        runs: records,
        backup_health: BackupHealth {
            status: "no watch data".into(),
            assets: vec![],
        },
        kpis: Kpis {
            overall,
            assets: asset_kpis,
            previous,
        },
        exceptions,
    })
}

/// The previous period's overall figures, for the comparison column.
fn previous_overall(
    config: &Config,
    store: &Store,
    p: &Period,
    now: Timestamp,
) -> Result<Previous, ReportError> {
    let info = period_info(p, now);
    let runs = store.runs_between(info.from, info.to)?;
    let good_before: HashMap<String, Timestamp> =
        store.newest_good_before(info.from)?.into_iter().collect();
    let (mut planned, mut comp, mut meas) = (0, 0.0, 0.0);
    let mut scoped = Vec::new();
    for d in config.drills.values().filter(|d| d.enabled) {
        let mine: Vec<&RunReport> = runs.iter().filter(|r| r.drill == d.name).collect();
        if let Some(s) = &d.schedule {
            planned += kpi::planned_runs(s, info.from, info.as_of);
        }
        let passes: Vec<(Timestamp, Timestamp)> = mine
            .iter()
            .filter(|r| r.outcome == Outcome::Passed)
            .filter_map(|r| r.snapshot.as_ref().map(|s| (r.finished_at, s.time)))
            .collect();
        let (c, m) = kpi::rpo_compliance(
            d.rpo.as_secs_f64(),
            good_before.get(&d.name).copied(),
            &passes,
            info.from,
            info.as_of,
        );
        comp += c;
        meas += m;
        scoped.extend(mine);
    }
    Ok(Previous {
        overall: kpi::kpi(scoped, planned, (comp, meas)),
        period: info,
    })
}
