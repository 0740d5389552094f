//! The scheduler loop: when is each drill or report due, in its own time zone, across DST changes.
//!
//! For each job it computes the next wall-clock instant after "now" with croner in the job's zone (OCPS
//! rules: a fixed-time job that falls into a spring-forward gap runs right after the gap; in a fall-back
//! overlap it runs once; interval jobs run in both passes). It sleeps until the earliest one, but never more
//! than a minute, and re-reads the wall clock after every wake, so a suspended host, an NTP step or a long
//! sleep drift cannot make it fire late or twice. Missed instants (the agent was down or the host asleep)
//! are coalesced into one run. Time is read through the [`Clock`] trait so tests can drive it.

use std::future::Future;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::config::Schedule;

/// Longest sleep before re-reading the wall clock.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Wall-clock time source.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// Sleeps until `t` (or returns early; the loop re-reads [`Clock::now`]).
    fn sleep_until(&self, t: Timestamp) -> impl Future<Output = ()> + Send;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn sleep_until(&self, t: Timestamp) {
        let d = t.duration_since(Timestamp::now());
        let d = Duration::try_from(d)
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP);
        tokio::time::sleep(d).await;
    }
}

/// What a job does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Run the drill named by [`Job::name`].
    Drill,
    /// Write the report named by [`Job::name`] (`[reports.NAME]`).
    Report,
    /// Run the watch named by [`Job::name`] (`[watches.NAME]`).
    Watch,
    /// Send the daily digest of the channel named by [`Job::name`] (`[notify.NAME] digest`).
    Digest,
}

/// A scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Drill or report name (unique per kind).
    pub name: String,
    /// Drill or report.
    pub kind: JobKind,
    /// When.
    pub schedule: Schedule,
}

/// Runs until `shutdown` turns true (or the clock passes `until`, for tests), calling `fire(job, due)` for
/// every due instant.
pub async fn run<C: Clock>(
    jobs: &[Job],
    clock: &C,
    mut shutdown: watch::Receiver<bool>,
    until: Option<Timestamp>,
    mut fire: impl FnMut(&Job, Timestamp),
) {
    let start = clock.now();
    let mut next: Vec<Option<Timestamp>> =
        jobs.iter().map(|j| j.schedule.next_after(start)).collect();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = clock.now();
        if until.is_some_and(|u| now >= u) {
            break;
        }
        for (job, slot) in jobs.iter().zip(next.iter_mut()) {
            if let Some(due) = *slot
                && due <= now
            {
                fire(job, due);
                *slot = job.schedule.next_after(now.max(due));
            }
        }
        let cap = now
            .checked_add(
                SignedDuration::try_from(MAX_SLEEP).unwrap_or(SignedDuration::from_secs(60)),
            )
            .unwrap_or(now);
        let wake = next
            .iter()
            .flatten()
            .copied()
            .min()
            .map_or(cap, |t| t.min(cap));
        tokio::select! {
            _ = clock.sleep_until(wake) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::parse_cron;

    /// A clock that jumps straight to the instant it is asked to sleep until.
    struct FakeClock(Mutex<Timestamp>);

    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
        async fn sleep_until(&self, t: Timestamp) {
            let mut now = self.0.lock().unwrap();
            if t > *now {
                *now = t;
            }
        }
    }

    async fn fires(expr: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
        let tz = jiff::tz::TimeZone::get(tz).unwrap();
        let job = Job {
            name: "d".into(),
            kind: JobKind::Drill,
            schedule: Schedule {
                expr: expr.into(),
                cron: parse_cron(expr).unwrap(),
                tz: tz.clone(),
            },
        };
        let clock = FakeClock(Mutex::new(from.parse().unwrap()));
        let (_tx, rx) = watch::channel(false);
        let mut out = Vec::new();
        run(&[job], &clock, rx, Some(to.parse().unwrap()), |_, due| {
            // Fired at the due instant, not later: the fake clock stands exactly there.
            assert_eq!(clock.now(), due);
            out.push(
                due.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string(),
            );
        })
        .await;
        out
    }

    #[tokio::test]
    async fn daily_across_spring_forward_runs_once_after_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let got = fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
        )
        .await;
        assert_eq!(
            got,
            vec![
                "2026-03-28 02:30 CET",
                "2026-03-29 03:00 CEST",
                "2026-03-30 02:30 CEST",
                "2026-03-31 02:30 CEST"
            ]
        );
    }

    #[tokio::test]
    async fn daily_across_fall_back_runs_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let got = fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z",
        )
        .await;
        assert_eq!(got, vec!["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]);
    }

    #[tokio::test]
    async fn hourly_across_fall_back_runs_in_both_passes() {
        let got = fires(
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            "2026-10-25T02:30:00Z",
        )
        .await;
        assert_eq!(
            got,
            vec![
                "2026-10-25 02:00 CEST",
                "2026-10-25 02:00 CET",
                "2026-10-25 03:00 CET"
            ]
        );
    }

    #[tokio::test]
    async fn new_york_spring_forward() {
        // America/New_York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        let got = fires(
            "15 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            "2026-03-09T12:00:00Z",
        )
        .await;
        assert_eq!(got, vec!["2026-03-08 03:00 EDT", "2026-03-09 02:15 EDT"]);
    }

    #[tokio::test]
    async fn shutdown_stops_the_loop() {
        let job = Job {
            name: "d".into(),
            kind: JobKind::Drill,
            schedule: Schedule {
                expr: "* * * * *".into(),
                cron: parse_cron("* * * * *").unwrap(),
                tz: jiff::tz::TimeZone::UTC,
            },
        };
        let (tx, rx) = watch::channel(false);
        tx.send(true).unwrap();
        let mut n = 0;
        run(&[job], &SystemClock, rx, None, |_, _| n += 1).await;
        assert_eq!(n, 0);
    }
}
