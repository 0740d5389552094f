//! Compliance reports and the evidence ledger, on a seeded quarter of history.
//!
//! `seed` writes a quarter (2026-Q3, UTC) of runs straight through the Store API, small enough that every
//! figure the report computes is worked out by hand in the comments below; the tests then compare the
//! report's KPIs with those numbers, check the JSON and CSV against `docs/report-schema.md`, tamper with
//! the ledger through SQLite, and render the HTML in headless Chromium.

mod ledger;
mod render;
mod schema;

use jiff::{SignedDuration, Timestamp};
use lifeboat::config::Config;
use lifeboat::report::build::build;
use lifeboat::report::model::Report;
use lifeboat::report::period::Period;
use lifeboat::store::Store;
use lifeboat_drills::model::{CheckResult, CheckStatus, Outcome, RunReport, SnapshotRef};

use crate::util::Sandbox;

const CONFIG: &str = r#"
[sources.web]
type = "local"
path = "backups/web"

[drills.web]
source = "web"
rto = "10m"
rpo = "26h"
schedule = "0 3 * * *"

[drills.db]
source = "web"
rto = "30m"
rpo = "8d"
schedule = "0 4 * * 0"
select = "random-within"
window = "14d"

[drills.nas]
source = "web"
rto = "1h"
rpo = "40d"
schedule = "0 5 1 * *"

[drills.files]
source = "web"
rto = "1h"
rpo = "26h"

[drills.legacy]
source = "web"
rto = "1h"
rpo = "26h"
schedule = "0 3 * * *"
enabled = false
"#;

const DAY: f64 = 86_400.0;
/// 2026-07-01 to 2026-10-01: 92 days.
const PERIOD: f64 = 92.0 * DAY;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn plus(t: Timestamp, secs: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(secs)).unwrap()
}

/// One finished run: started at `start`, restoring the snapshot taken at `snap`, with `rta` (None: a check
/// did not pass). It finishes `rta` (or 30 s) after it starts.
#[allow(clippy::too_many_arguments)]
fn run(
    drill: &str,
    start: Timestamp,
    outcome: Outcome,
    snap: Option<Timestamp>,
    rta: Option<f64>,
    rto: f64,
    rpo: f64,
    failing_check: Option<&str>,
) -> RunReport {
    let rpa = snap.map(|s| start.duration_since(s).as_secs_f64());
    let mut checks = vec![CheckResult::new(
        "archive",
        "integrity",
        if failing_check == Some("integrity") {
            CheckStatus::Failed
        } else {
            CheckStatus::Passed
        },
        "archive readable to its end",
        if failing_check == Some("integrity") {
            "zstd frame checksum mismatch at offset 4096"
        } else {
            "29 entries"
        },
        "",
    )];
    if failing_check == Some("files") {
        checks.push(CheckResult::new(
            "files",
            "files",
            CheckStatus::Failed,
            "etc/app.conf present",
            "missing",
            "the backup lacks its config",
        ));
    }
    let id = format!("{}-{}", start.strftime("%Y%m%dT%H%M%SZ"), drill);
    RunReport {
        run_id: id,
        drill: drill.into(),
        outcome,
        source: "web".into(),
        snapshot: snap.map(|s| SnapshotRef {
            id: format!("{drill}-{s}"),
            time: s,
        }),
        started_at: start,
        finished_at: plus(start, rta.unwrap_or(30.0)),
        rta_seconds: rta,
        rpa_seconds: rpa,
        rto_seconds: rto,
        rpo_seconds: rpo,
        rto_met: rta.map(|r| r <= rto),
        rpo_met: rpa.map(|r| r <= rpo),
        phases: vec![],
        checks,
        error: match outcome {
            Outcome::Error => Some("source web is not mounted: /srv/backups does not exist".into()),
            Outcome::Failed => Some("the backup or an objective failed".into()),
            _ => None,
        },
        restore: None,
        evidence_dir: None,
        kept_dir: None,
    }
}

/// The seeded history (UTC):
///
/// web (nightly 03:00, RTO 600 s, RPO 26 h; snapshot at 02:00, so RPA 1 h): one passed run on Jun 30
/// (before the period), then a run every night of Q3 = 92 runs:
///   Jul 10 failed (integrity, no RTA), Jul 20 failed (RTA 900 > RTO), Aug 1 error (source not mounted);
///   Sep 1–9 passed with RTA 300 s; every other night passed with RTA 60 s (80 runs).
/// db (Sundays 04:00, RTO 30 min, RPO 8 d; snapshot 03:00, RTA 600 s): runs Jul 5, 12, 19, then the agent
///   was down (Jul 26–Aug 23 missed), Aug 30 failed on RPO (the backup job stopped: newest snapshot Jul 19),
///   Sep 6, 13, 20, 27 passed = 8 runs of 13 planned.
/// nas (1st of the month 05:00, RTO 1 h, RPO 40 d; snapshot 04:00, RTA 60 s): Jul 1, Aug 1 passed, Sep 1
///   failed (files check, no RTA, never fixed).
/// files: enabled, on demand only, never run. legacy: disabled (out of scope).
fn seed(sb: &Sandbox, evidence_for_first_run: bool) -> Vec<RunReport> {
    sb.config(CONFIG);
    let mut runs = Vec::new();
    let (web_rto, web_rpo) = (600.0, 26.0 * 3600.0);
    let mut first_web = run(
        "web",
        ts("2026-06-30T03:00:00Z"),
        Outcome::Passed,
        Some(ts("2026-06-30T02:00:00Z")),
        Some(60.0),
        web_rto,
        web_rpo,
        None,
    );
    if evidence_for_first_run {
        let dir = sb.path("state/evidence").join(&first_web.run_id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.sha256"), "abc  etc/app.conf\n").unwrap();
        std::fs::write(dir.join("output.txt"), "smoke test ok\n").unwrap();
        first_web.evidence_dir = Some(dir);
    }
    runs.push(first_web);
    let mut day = ts("2026-07-01T00:00:00Z");
    while day < ts("2026-10-01T00:00:00Z") {
        let start = plus(day, 3.0 * 3600.0);
        let snap = Some(plus(day, 2.0 * 3600.0));
        let date = day.strftime("%m-%d").to_string();
        let r = match date.as_str() {
            "07-10" => run(
                "web",
                start,
                Outcome::Failed,
                snap,
                None,
                web_rto,
                web_rpo,
                Some("integrity"),
            ),
            "07-20" => run(
                "web",
                start,
                Outcome::Failed,
                snap,
                Some(900.0),
                web_rto,
                web_rpo,
                None,
            ),
            "08-01" => run(
                "web",
                start,
                Outcome::Error,
                None,
                None,
                web_rto,
                web_rpo,
                None,
            ),
            "09-01" | "09-02" | "09-03" | "09-04" | "09-05" | "09-06" | "09-07" | "09-08"
            | "09-09" => run(
                "web",
                start,
                Outcome::Passed,
                snap,
                Some(300.0),
                web_rto,
                web_rpo,
                None,
            ),
            _ => run(
                "web",
                start,
                Outcome::Passed,
                snap,
                Some(60.0),
                web_rto,
                web_rpo,
                None,
            ),
        };
        runs.push(r);
        day = plus(day, DAY);
    }
    let (db_rto, db_rpo) = (1800.0, 8.0 * DAY);
    for d in [
        "07-05", "07-12", "07-19", "09-06", "09-13", "09-20", "09-27",
    ] {
        let start = ts(&format!("2026-{d}T04:00:00Z"));
        runs.push(run(
            "db",
            start,
            Outcome::Passed,
            Some(plus(start, -3600.0)),
            Some(600.0),
            db_rto,
            db_rpo,
            None,
        ));
    }
    runs.push(run(
        "db",
        ts("2026-08-30T04:00:00Z"),
        Outcome::Failed,
        Some(ts("2026-07-19T03:00:00Z")),
        Some(600.0),
        db_rto,
        db_rpo,
        None,
    ));
    let (nas_rto, nas_rpo) = (3600.0, 40.0 * DAY);
    for (d, o) in [
        ("07-01", Outcome::Passed),
        ("08-01", Outcome::Passed),
        ("09-01", Outcome::Failed),
    ] {
        let start = ts(&format!("2026-{d}T05:00:00Z"));
        let (rta, fc) = if o == Outcome::Passed {
            (Some(60.0), None)
        } else {
            (None, Some("files"))
        };
        runs.push(run(
            "nas",
            start,
            o,
            Some(plus(start, -3600.0)),
            rta,
            nas_rto,
            nas_rpo,
            fc,
        ));
    }
    // Recorded in time order, as the agent would have.
    runs.sort_by_key(|r| r.finished_at);
    let store = Store::open(&sb.path("state")).unwrap();
    store.import_runs(&runs, "schedule").unwrap();
    runs
}

fn q3_report(sb: &Sandbox) -> Report {
    let config = Config::load(&sb.path("lifeboat.toml")).unwrap();
    let store = Store::open(&config.state_dir).unwrap();
    let period = Period::parse("2026-Q3", &config.timezone, ts("2026-11-22T06:00:00Z")).unwrap();
    build(&config, &store, &period, ts("2026-11-22T06:00:00Z")).unwrap()
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or(f64::NAN);
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn kpis_match_hand_computed_values() {
    let sb = Sandbox::new();
    seed(&sb, false);
    let r = q3_report(&sb);
    let k = |d: &str| &r.kpis.assets.iter().find(|a| a.drill == d).unwrap().kpi;

    // web: 92 planned (one per night), 92 run, 89 passed, 2 failed, 1 error.
    let web = k("web");
    assert_eq!(
        (web.planned, web.run, web.passed, web.failed, web.error),
        (92, 92, 89, 2, 1)
    );
    close(web.pass_rate, 89.0 / 92.0);
    // RTAs: 80 × 60 s, 9 × 300 s, 1 × 900 s (n = 90). Median = mean of the 45th and 46th = 60;
    // p95 = the ceil(0.95·90) = 86th value = 300 (values 81–89 are 300); max = 900.
    assert_eq!(web.rta_count, 90);
    close(web.rta_median_seconds, 60.0);
    close(web.rta_p95_seconds, 300.0);
    close(web.rta_max_seconds, 900.0);
    assert_eq!((web.rto_breaches, web.rpo_breaches), (1, 0));
    // RPO: the newest good snapshot (02:00) stays within 26 h until 04:00 the next day; the next pass
    // finishes at 03:01, so the chain holds except after Jul 10, Jul 20 and Aug 1: each time from 04:00 that
    // day to 03:01 the next day = 23 h 01 min = 82 860 s. The Jun 30 run covers the start of the period.
    close(web.rpo_compliance, 1.0 - 3.0 * 82_860.0 / PERIOD);

    // db: 13 Sundays planned, 8 run, 7 passed, 1 failed (RPO), all RTAs 600 s.
    let db = k("db");
    assert_eq!(
        (db.planned, db.run, db.passed, db.failed, db.error),
        (13, 8, 7, 1, 0)
    );
    close(db.pass_rate, 7.0 / 8.0);
    close(db.rta_median_seconds, 600.0);
    close(db.rta_p95_seconds, 600.0);
    close(db.rta_max_seconds, 600.0);
    assert_eq!(db.rpo_breaches, 1);
    // Nothing good before Jul 5 04:10 (4 d 4 h 10 min = 360 600 s); Jul 19 03:00 + 8 d = Jul 27 03:00 until
    // the Sep 6 pass finishes at 04:10 (41 d 1 h 10 min = 3 546 600 s); Sep 27 03:00 + 8 d is past the end.
    close(db.rpo_compliance, 1.0 - (360_600.0 + 3_546_600.0) / PERIOD);

    // nas: 3 planned, 3 run, 2 passed, 1 failed (content). RTAs 60, 60.
    let nas = k("nas");
    assert_eq!((nas.planned, nas.run, nas.passed, nas.failed), (3, 3, 2, 1));
    close(nas.rta_p95_seconds, 60.0);
    // Nothing good until Jul 1 05:01 (18 060 s); Aug 1 04:00 + 40 d = Sep 10 04:00 to Oct 1 00:00
    // (20 d 20 h = 1 800 000 s).
    close(nas.rpo_compliance, 1.0 - (18_060.0 + 1_800_000.0) / PERIOD);

    // files: never run, on demand: nothing planned, never compliant.
    let files = k("files");
    assert_eq!((files.planned, files.run), (0, 0));
    close(files.rpo_compliance, 0.0);

    // Overall over the 4 in-scope assets (legacy is disabled): planned 92 + 13 + 3 = 108, run 103,
    // passed 98, failed 4, error 1.
    let o = &r.kpis.overall;
    assert_eq!(
        (o.planned, o.run, o.passed, o.failed, o.error),
        (108, 103, 98, 4, 1)
    );
    close(o.pass_rate, 98.0 / 103.0);
    // Pooled RTAs (n = 100): 82 × 60, 9 × 300, 8 × 600, 1 × 900. Median 60; p95 = 95th value = 600; max 900.
    close(o.rta_median_seconds, 60.0);
    close(o.rta_p95_seconds, 600.0);
    close(o.rta_max_seconds, 900.0);
    // Compliant time summed over assets / 4 periods.
    let bad = 3.0 * 82_860.0 + 360_600.0 + 3_546_600.0 + 18_060.0 + 1_800_000.0 + PERIOD;
    close(o.rpo_compliance, (4.0 * PERIOD - bad) / (4.0 * PERIOD));

    // Coverage.
    let c = &r.coverage;
    assert_eq!(
        (c.assets_in_scope, c.assets_drilled, c.assets_passed),
        (4, 3, 3)
    );
    assert_eq!(c.assets_never_drilled, vec!["files".to_string()]);
    let db_asset = c.assets.iter().find(|a| a.drill == "db").unwrap();
    assert_eq!(db_asset.select, "random-within");
    close(db_asset.select_window_seconds, 14.0 * DAY);
    assert!(
        !c.assets
            .iter()
            .find(|a| a.drill == "legacy")
            .unwrap()
            .enabled
    );

    // Previous period (Q2): only the Jun 30 run; planned 91 nights + 13 Sundays + 3 firsts = 107.
    let p = &r.kpis.previous;
    assert_eq!(p.period.label, "2026-Q2");
    assert_eq!(
        (p.overall.planned, p.overall.run, p.overall.passed),
        (107, 1, 1)
    );

    // Exceptions: 5, each classed; only the nas failure has no later pass.
    assert_eq!(r.exceptions.len(), 5);
    let unresolved: Vec<&str> = r
        .exceptions
        .iter()
        .filter(|e| !e.resolved)
        .map(|e| e.drill.as_str())
        .collect();
    assert_eq!(unresolved, vec!["nas"]);
    let class = |id_part: &str| {
        let e = r
            .exceptions
            .iter()
            .find(|e| e.run_id.contains(id_part))
            .unwrap();
        (e.failure_class.as_str(), e.cause.as_deref().unwrap())
    };
    assert_eq!(class("20260710"), ("failed", "integrity"));
    assert_eq!(class("20260720"), ("failed", "rto-breached"));
    assert_eq!(class("20260801T030000Z-web"), ("error", "no-snapshot"));
    assert_eq!(class("20260830"), ("failed", "rpo-breached"));
    assert_eq!(class("20260901T050000Z-nas"), ("failed", "content"));
    let jul10 = r
        .exceptions
        .iter()
        .find(|e| e.run_id.contains("20260710"))
        .unwrap();
    assert_eq!(jul10.resolved_by.as_deref(), Some("20260711T030000Z-web"));

    // Header and ledger: 104 entries (103 in the period + Jun 30), intact.
    assert_eq!(r.header.ledger.entries, 104);
    assert!(r.header.ledger.intact);
    assert_eq!(r.header.ledger.head_hash.as_ref().unwrap().len(), 64);
    assert_eq!(r.backup_health.status, "no watch data");
    assert!(r.runs.iter().all(|x| x.ledger_seq.is_some()));
}
