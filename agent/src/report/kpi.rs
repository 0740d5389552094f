//! The arithmetic of a report, kept free of I/O so every figure can be checked against hand-computed values.
//!
//! Definitions (also in `docs/report-schema.md`):
//! - pass rate = passed / (passed + failed + error); skipped runs are not drills.
//! - median: the middle value, or the mean of the two middle values; p95: nearest rank, the value at
//!   position ceil(0.95·n) in ascending order; over runs that have an RTA (every check passed).
//! - planned: the instants the drill's crontab line produces in `[from, as_of)` in its zone.
//! - time-weighted RPO compliance: at instant t the newest good backup G(t) is the newest snapshot time of
//!   any passed run that finished at or before t (runs before the period count). t is compliant when G(t)
//!   exists and t − G(t) ≤ RPO. Compliance is the compliant share of `[from, as_of)`.

use jiff::Timestamp;
use lifeboat_drills::model::{Outcome, RunReport};

use super::model::Kpi;
use crate::config::Schedule;

/// Median of ascending values.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// Nearest-rank 95th percentile of ascending values.
pub fn p95(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (0.95 * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Instants `schedule` plans in `[from, to)`; bounded so a `* * * * *` line over years stays cheap.
pub fn planned_runs(schedule: &Schedule, from: Timestamp, to: Timestamp) -> u64 {
    let mut n = 0u64;
    let Ok(mut t) = from.checked_sub(jiff::SignedDuration::from_nanos(1)) else {
        return 0;
    };
    while let Some(next) = schedule.next_after(t) {
        if next >= to || n >= 10_000_000 {
            break;
        }
        n += 1;
        t = next;
    }
    n
}

/// Seconds of `[from, as_of)` during which the newest good backup was within `rpo` seconds, and the
/// seconds measured. `good_before`: the newest good snapshot known at `from`; `passes`: (finished, snapshot
/// time) of passed runs, any order.
pub fn rpo_compliance(
    rpo: f64,
    good_before: Option<Timestamp>,
    passes: &[(Timestamp, Timestamp)],
    from: Timestamp,
    as_of: Timestamp,
) -> (f64, f64) {
    let secs = |a: Timestamp, b: Timestamp| b.duration_since(a).as_secs_f64();
    if as_of <= from {
        return (0.0, 0.0);
    }
    let mut events: Vec<(Timestamp, Timestamp)> = passes
        .iter()
        .copied()
        .filter(|(fin, _)| *fin < as_of)
        .collect();
    events.sort();
    let mut good = good_before;
    let mut cursor = from;
    let mut compliant = 0.0;
    let mut covered = |good: Option<Timestamp>, a: Timestamp, b: Timestamp| {
        if let Some(g) = good
            && b > a
        {
            // Compliant while t <= g + rpo.
            let limit = secs(a, g) + rpo;
            compliant += limit.clamp(0.0, secs(a, b));
        }
    };
    for (fin, snap) in events {
        if fin > cursor {
            covered(good, cursor, fin);
            cursor = fin;
        }
        good = Some(good.map_or(snap, |g| g.max(snap)));
    }
    covered(good, cursor, as_of);
    (compliant, secs(from, as_of))
}

/// Counts and RTA figures of `runs`, with `planned` and the RPO figures supplied by the caller.
pub fn kpi<'a>(
    runs: impl IntoIterator<Item = &'a RunReport>,
    planned: u64,
    rpo: (f64, f64),
) -> Kpi {
    let mut k = Kpi {
        planned,
        rpo_compliant_seconds: rpo.0,
        rpo_measured_seconds: rpo.1,
        rpo_compliance: (rpo.1 > 0.0).then(|| rpo.0 / rpo.1),
        ..Kpi::default()
    };
    let mut rtas = Vec::new();
    for r in runs {
        k.run += 1;
        match r.outcome {
            Outcome::Passed => k.passed += 1,
            Outcome::Failed => k.failed += 1,
            Outcome::Error => k.error += 1,
            Outcome::Skipped => {}
        }
        if let Some(x) = r.rta_seconds {
            rtas.push(x);
        }
        if r.rto_met == Some(false) {
            k.rto_breaches += 1;
        }
        if r.rpo_met == Some(false) {
            k.rpo_breaches += 1;
        }
    }
    let judged = k.passed + k.failed + k.error;
    k.pass_rate = (judged > 0).then(|| k.passed as f64 / judged as f64);
    rtas.sort_by(f64::total_cmp);
    k.rta_count = rtas.len() as u64;
    k.rta_median_seconds = median(&rtas);
    k.rta_p95_seconds = p95(&rtas);
    k.rta_max_seconds = rtas.last().copied();
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cron;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn percentiles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), Some(3.0));
        // n = 20: rank ceil(19.0) = 19 → the 19th value.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p95(&v), Some(19.0));
        assert_eq!(p95(&[5.0]), Some(5.0));
    }

    #[test]
    fn planned_counts_cron_instants() {
        let s = Schedule {
            expr: "0 3 * * *".into(),
            cron: parse_cron("0 3 * * *").unwrap(),
            tz: jiff::tz::TimeZone::UTC,
        };
        assert_eq!(
            planned_runs(&s, t("2026-07-01T00:00:00Z"), t("2026-10-01T00:00:00Z")),
            92
        );
        // An instant exactly at `from` counts.
        assert_eq!(
            planned_runs(&s, t("2026-07-01T03:00:00Z"), t("2026-07-02T03:00:00Z")),
            1
        );
    }

    #[test]
    fn rpo_compliance_by_hand() {
        // 10-day window, RPO 1 day. Good snapshot at day 0 known before the window: compliant until day 1.
        // A pass finishing on day 4 with a snapshot of day 3.5: compliant from day 4 to day 4.5.
        // Nothing else: 1 + 0.5 = 1.5 days of 10.
        let d = 86_400.0;
        let from = t("2026-07-01T00:00:00Z");
        let to = t("2026-07-11T00:00:00Z");
        let (c, m) = rpo_compliance(
            d,
            Some(from),
            &[(t("2026-07-05T00:00:00Z"), t("2026-07-04T12:00:00Z"))],
            from,
            to,
        );
        assert_eq!(m, 10.0 * d);
        assert_eq!(c, 1.5 * d);
        // Nothing good ever: 0.
        assert_eq!(rpo_compliance(d, None, &[], from, to).0, 0.0);
    }
}
