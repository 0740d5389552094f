//! Who hears of what, and when: routing, alert state and the durable outbox.
//!
//! Every decision is made inside a history-database transaction and its notifications are written to the
//! `outbox` table in that same transaction; delivery ([`deliver`]) happens afterwards and is retried with
//! backoff until it succeeds or is given up, so an unreachable mail server or a restart loses nothing.
//! `UNIQUE (event_id, channel)` makes enqueueing idempotent: one event is never queued twice for a channel.
//!
//! State-change semantics, per alert key (`drill/app`, `backup.stale/pbs-fresh/vm/101`) and channel: the
//! first bad result *triggers*; while it stays bad nothing new is sent except a *reminder* every
//! `remind_every` (default a day; [`Alerts::remind`]); the first good result after that *resolves* (sent to
//! every channel that received the trigger, whatever its filters). A good result with no open alert only
//! produces information (`drill.passed`) for channels that asked for it.

pub mod compose;
pub mod deliver;
pub mod outbox;
pub mod watch;

use jiff::Timestamp;
use lifeboat_drills::model::{Outcome, RunReport};
use lifeboat_notify::{EventKind, Notification, Transition};
use rusqlite::{Connection, OptionalExtension, params};

use crate::config::{Config, NotifyChannel};

/// Routing decisions for one configuration.
pub struct Alerts<'a> {
    config: &'a Config,
}

/// An open or closed alert of one channel.
struct State {
    open: bool,
    event: String,
}

fn wants(ch: &NotifyChannel, n: &Notification) -> bool {
    ch.events.contains(&n.event) && n.severity >= ch.min_severity
}

/// Queues `n` for `channel` under `event_id` (idempotent). Returns whether a row was added.
pub fn enqueue(
    tx: &Connection,
    event_id: &str,
    channel: &str,
    n: &Notification,
    now: Timestamp,
) -> rusqlite::Result<bool> {
    let mut n = n.clone();
    n.id = compose::id_part(&format!("{event_id}.{channel}"));
    let json = serde_json::to_string(&n)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let added = tx.execute(
        "INSERT OR IGNORE INTO outbox (event_id, channel, event, transition, asset, title, notification, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
        params![
            event_id,
            channel,
            n.event.as_str(),
            serde_json::to_value(n.transition).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            n.asset,
            n.title,
            json,
            now.as_millisecond()
        ],
    )?;
    Ok(added > 0)
}

/// Reads an integer from `agent_state`.
pub fn state_get(tx: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT value FROM agent_state WHERE key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()
}

/// Writes an integer to `agent_state`.
pub fn state_set(tx: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO agent_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
}

impl<'a> Alerts<'a> {
    /// Routing for `config`.
    pub fn new(config: &'a Config) -> Self {
        Alerts { config }
    }

    /// The channels named by `list` (`None`: every channel).
    pub fn channels(&self, list: Option<&Vec<String>>) -> Vec<&'a NotifyChannel> {
        match list {
            None => self.config.channels.values().collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| self.config.channels.get(n))
                .collect(),
        }
    }

    fn state(tx: &Connection, key: &str, channel: &str) -> rusqlite::Result<Option<State>> {
        tx.query_row(
            "SELECT open, event FROM alerts WHERE key = ?1 AND channel = ?2",
            params![key, channel],
            |r| {
                Ok(State {
                    open: r.get::<_, i64>(0)? != 0,
                    event: r.get(1)?,
                })
            },
        )
        .optional()
    }

    fn open(
        tx: &Connection,
        key: &str,
        channel: &str,
        n: &Notification,
        now: Timestamp,
        sent: bool,
    ) -> rusqlite::Result<()> {
        let json = serde_json::to_string(n)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        if sent {
            tx.execute(
                "INSERT INTO alerts (key, channel, open, event, since, last_sent, notification) VALUES (?1, ?2, 1, ?3, ?4, ?4, ?5)
                 ON CONFLICT (key, channel) DO UPDATE SET open = 1, event = excluded.event,
                   since = CASE WHEN alerts.open = 1 THEN alerts.since ELSE excluded.since END,
                   last_sent = excluded.last_sent, notification = excluded.notification",
                params![key, channel, n.event.as_str(), now.as_millisecond(), json],
            )?;
        } else {
            tx.execute(
                "UPDATE alerts SET notification = ?3 WHERE key = ?1 AND channel = ?2",
                params![key, channel, json],
            )?;
        }
        Ok(())
    }

    /// Applies one observation of alert `key` to `channels`: `bad` is the trigger notification when the
    /// thing is bad now; `resolve` the recovery message; `info` what to send when it is good and no alert
    /// was open. Returns how many notifications were queued.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        tx: &Connection,
        channels: &[&NotifyChannel],
        key: &str,
        event_id: &str,
        bad: Option<&Notification>,
        resolve: Option<&Notification>,
        info: Option<&Notification>,
        now: Timestamp,
    ) -> rusqlite::Result<usize> {
        // The channel-independent state (channel ''), so digests list every open problem even when no
        // channel asked for its trigger.
        match bad {
            Some(n) => {
                let fresh = !Self::state(tx, key, "")?.is_some_and(|s| s.open);
                Self::open(tx, key, "", n, now, fresh)?;
            }
            None => {
                tx.execute(
                    "UPDATE alerts SET open = 0 WHERE key = ?1 AND channel = ''",
                    params![key],
                )?;
            }
        }
        let mut queued = 0;
        for ch in channels {
            let st = Self::state(tx, key, &ch.name)?;
            match (bad, st) {
                (Some(n), Some(s)) if s.open && s.event == n.event.as_str() => {
                    // Still bad: keep the newest words for the reminder, send nothing now, except to a
                    // dead-man's switch (healthchecks), which wants every run's outcome.
                    Self::open(tx, key, &ch.name, n, now, false)?;
                    if ch.config.kind() == "healthchecks" && wants(ch, n) {
                        queued += usize::from(enqueue(tx, event_id, &ch.name, n, now)?);
                    }
                }
                (Some(n), _) => {
                    if wants(ch, n) {
                        queued += usize::from(enqueue(tx, event_id, &ch.name, n, now)?);
                        Self::open(tx, key, &ch.name, n, now, true)?;
                    }
                }
                (None, Some(s)) if s.open => {
                    if let Some(r) = resolve {
                        queued += usize::from(enqueue(
                            tx,
                            &format!("{event_id}.resolve"),
                            &ch.name,
                            r,
                            now,
                        )?);
                    }
                    tx.execute(
                        "UPDATE alerts SET open = 0, last_sent = ?3 WHERE key = ?1 AND channel = ?2",
                        params![key, ch.name, now.as_millisecond()],
                    )?;
                }
                (None, _) => {
                    if let Some(i) = info
                        && wants(ch, i)
                    {
                        queued += usize::from(enqueue(tx, event_id, &ch.name, i, now)?);
                    }
                }
            }
        }
        Ok(queued)
    }

    /// A drill run is about to start (`drill.started`: healthchecks' start ping).
    pub fn on_started(
        &self,
        tx: &Connection,
        notify: Option<&Vec<String>>,
        drill: &str,
        run_id: &str,
        now: Timestamp,
    ) -> rusqlite::Result<usize> {
        let n = compose::started(self.config, drill, run_id, now);
        let mut queued = 0;
        for ch in self.channels(notify) {
            if wants(ch, &n) {
                queued += usize::from(enqueue(
                    tx,
                    &format!("{run_id}.started"),
                    &ch.name,
                    &n,
                    now,
                )?);
            }
        }
        Ok(queued)
    }

    /// A drill run finished: trigger, keep, resolve or inform; a run of any outcome also resolves a
    /// `drill.missed` alert of that drill.
    pub fn on_run(
        &self,
        tx: &Connection,
        notify: Option<&Vec<String>>,
        r: &RunReport,
        now: Timestamp,
    ) -> rusqlite::Result<usize> {
        let channels = self.channels(notify);
        let key = format!("drill/{}", r.drill);
        let event_id = format!("{}.{}", r.run_id, r.outcome.as_str());
        let queued = if r.outcome == Outcome::Passed {
            let info = compose::run(self.config, r, Transition::Info);
            let resolve = compose::run(self.config, r, Transition::Resolve);
            self.observe(
                tx,
                &channels,
                &key,
                &event_id,
                None,
                Some(&resolve),
                Some(&info),
                now,
            )?
        } else {
            let bad = compose::run(self.config, r, Transition::Trigger);
            self.observe(tx, &channels, &key, &event_id, Some(&bad), None, None, now)?
        };
        let missed_key = format!("missed/{}", r.drill);
        let resolve = compose::missed(
            self.config,
            &r.drill,
            r.started_at,
            0,
            r.started_at,
            now,
            Transition::Resolve,
        );
        Ok(queued
            + self.observe(
                tx,
                &channels,
                &missed_key,
                &format!("{}.ran", r.run_id),
                None,
                Some(&resolve),
                None,
                now,
            )?)
    }

    /// Queues reminders for alerts that stayed open longer than their channel's `remind_every` since the
    /// last message.
    pub fn remind(&self, tx: &Connection, now: Timestamp) -> rusqlite::Result<usize> {
        let rows: Vec<(String, String, i64, i64, String)> = {
            let mut st = tx.prepare(
                "SELECT key, channel, since, last_sent, notification FROM alerts WHERE open = 1",
            )?;
            st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut queued = 0;
        for (key, channel, since, last_sent, json) in rows {
            let Some(ch) = self.config.channels.get(&channel) else {
                continue;
            };
            let Some(every) = ch.remind_every else {
                continue;
            };
            let due =
                last_sent.saturating_add(i64::try_from(every.as_millis()).unwrap_or(i64::MAX));
            if now.as_millisecond() < due {
                continue;
            }
            let Ok(mut n) = serde_json::from_str::<Notification>(&json) else {
                continue;
            };
            n.transition = Transition::Remind;
            if let Some(rest) = n.title.strip_prefix("[lifeboat] ") {
                n.title = format!("[lifeboat] STILL {rest}");
            }
            let since_t = Timestamp::from_millisecond(since).unwrap_or(Timestamp::UNIX_EPOCH);
            n.summary = format!(
                "Reminder: still open since {}. {}",
                since_t.strftime("%Y-%m-%d %H:%M:%SZ"),
                n.summary
            );
            n.time = now;
            let event_id = format!("{key}.remind.{}", now.as_millisecond());
            queued += usize::from(enqueue(tx, &event_id, &channel, &n, now)?);
            tx.execute(
                "UPDATE alerts SET last_sent = ?3 WHERE key = ?1 AND channel = ?2",
                params![key, channel, now.as_millisecond()],
            )?;
        }
        Ok(queued)
    }

    /// `drill.missed` for every enabled, scheduled drill that had instants between the agent's last
    /// heartbeat and now (the agent was down). Returns the drills found.
    pub fn missed(
        &self,
        tx: &Connection,
        last_alive: Timestamp,
        now: Timestamp,
    ) -> rusqlite::Result<Vec<String>> {
        let mut out = Vec::new();
        // An instant within the last minute is about to be run by the scheduler, not missed.
        let horizon = now - jiff::SignedDuration::from_secs(60);
        for d in self.config.drills.values().filter(|d| d.enabled) {
            let Some(s) = &d.schedule else { continue };
            let mut t = last_alive;
            let mut first = None;
            let mut count = 0usize;
            while let Some(next) = s.next_after(t) {
                if next > horizon {
                    break;
                }
                first.get_or_insert(next);
                count += 1;
                t = next;
                if count > 10_000 {
                    break;
                }
            }
            let Some(first) = first else { continue };
            let n = compose::missed(
                self.config,
                &d.name,
                first,
                count,
                last_alive,
                now,
                Transition::Trigger,
            );
            let channels = self.channels(d.notify.as_ref());
            self.observe(
                tx,
                &channels,
                &format!("missed/{}", d.name),
                &format!("missed.{}.{}", d.name, first.as_millisecond()),
                Some(&n),
                None,
                None,
                now,
            )?;
            out.push(d.name.clone());
        }
        Ok(out)
    }

    /// The daily digest of `channel`: counts of runs since the previous digest and every open problem.
    pub fn digest(&self, tx: &Connection, channel: &str, now: Timestamp) -> rusqlite::Result<bool> {
        let key = format!("digest:{channel}");
        let since = state_get(tx, &key)?.unwrap_or(now.as_millisecond() - 24 * 3600 * 1000);
        let mut counts = std::collections::BTreeMap::new();
        {
            let mut st = tx.prepare(
                "SELECT outcome, count(*) FROM runs WHERE status = 'finished' AND finished_at > ?1 AND finished_at <= ?2 GROUP BY outcome",
            )?;
            for row in st.query_map(params![since, now.as_millisecond()], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (o, c) = row?;
                counts.insert(o.unwrap_or_default(), c);
            }
        }
        let problems: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT key, notification FROM alerts WHERE open = 1 AND channel = '' ORDER BY key",
            )?;
            st.query_map([], |r| r.get::<_, String>(1))?
                .filter_map(|j| j.ok())
                .filter_map(|j| serde_json::from_str::<Notification>(&j).ok())
                .map(|n| n.title.trim_start_matches("[lifeboat] ").to_string())
                .collect()
        };
        let c = |k: &str| counts.get(k).copied().unwrap_or(0);
        let title = format!(
            "[lifeboat] Daily digest: {} passed, {} failed, {} error, {} open problem{}",
            c("passed"),
            c("failed"),
            c("error"),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        let since_t = Timestamp::from_millisecond(since).unwrap_or(Timestamp::UNIX_EPOCH);
        let summary = if problems.is_empty() {
            format!(
                "Since {}: every drill that ran passed and no watch reports a problem.",
                since_t.strftime("%Y-%m-%d %H:%M:%SZ")
            )
        } else {
            format!(
                "Since {}: {} problem{} open (passing drills are counted, not listed).",
                since_t.strftime("%Y-%m-%d %H:%M:%SZ"),
                problems.len(),
                if problems.len() == 1 { " is" } else { "s are" }
            )
        };
        let mut n = compose::base(
            self.config,
            EventKind::Digest,
            Transition::Info,
            if problems.is_empty() {
                lifeboat_notify::Severity::Info
            } else {
                lifeboat_notify::Severity::Warning
            },
            now,
            "",
            &format!("digest/{channel}"),
            title,
            summary,
        );
        n.facts = ["passed", "failed", "error"]
            .iter()
            .map(|k| lifeboat_notify::Fact {
                label: format!("Runs {k}"),
                value: c(k).to_string(),
            })
            .collect();
        n.details = problems.clone();
        n.data = serde_json::json!({"since": since_t.to_string(), "runs": counts, "problems": problems, "site": self.config.site});
        let added = enqueue(
            tx,
            &format!("digest.{}", now.as_millisecond()),
            channel,
            &n,
            now,
        )?;
        state_set(tx, &key, now.as_millisecond())?;
        Ok(added)
    }
}
