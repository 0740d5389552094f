//! Running a `[watches.NAME]`: one cheap look at the source ([`lifeboat_drills::watch::look`]) turned into
//! alert observations per asset. Stale, shrunk and verify-failed are states (trigger once, remind, resolve
//! when good again); a failed backup job is news each time (one trigger per job id, remembered in
//! `watch_seen`), and its alert resolves when a newer snapshot of that asset appears.

use jiff::{SignedDuration, Timestamp};
use lifeboat_drills::units::{HumanBytes, HumanDuration};
use lifeboat_drills::watch::{Asset, Look};
use lifeboat_notify::{EventKind, Fact, Transition};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::json;

use super::Alerts;
use super::compose::{self, Finding};
use crate::config::{Config, Watch};

/// What one look found, for `lifeboat watch` output.
#[derive(Debug, Clone, Serialize)]
pub struct WatchResult {
    /// Watch name.
    pub watch: String,
    /// Assets looked at.
    pub assets: usize,
    /// Problems now (`backup.stale vm/101: newest backup 31h old`).
    pub problems: Vec<String>,
    /// Notifications queued.
    pub queued: usize,
    /// The look itself failed (source unreachable): the watch proves nothing.
    pub error: Option<String>,
}

fn fact(label: &str, value: String) -> Fact {
    Fact {
        label: label.into(),
        value,
    }
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Looks at the watch's source (network or disk), outside any transaction.
pub fn look(config: &Config, w: &Watch, since: Timestamp) -> Result<Look, String> {
    let src = config
        .sources
        .get(&w.source)
        .ok_or_else(|| format!("source {} is not configured", w.source))?;
    let source = src.build(&config.timezone);
    lifeboat_drills::watch::look(source.as_ref(), since).map_err(|e| {
        format!(
            "watch {}: cannot look at {}: {e}",
            w.name,
            source.describe()
        )
    })
}

/// The instant the previous look of `w` started (failed jobs since then are new).
pub fn since(tx: &Connection, w: &Watch, now: Timestamp) -> rusqlite::Result<Timestamp> {
    Ok(super::state_get(tx, &format!("watch:{}", w.name))?
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(now - SignedDuration::from_hours(24)))
}

/// What every stateful finding (stale, shrunk, verify failed) needs to be observed.
struct States<'a> {
    config: &'a Config,
    alerts: &'a Alerts<'a>,
    tx: &'a Connection,
    channels: &'a [&'a crate::config::NotifyChannel],
    now: Timestamp,
    res: &'a mut WatchResult,
}

impl States<'_> {
    /// Triggers `f` while `bad`; once it is not, resolves it with `good` (and `good_summary`) as the words.
    fn observe(
        &mut self,
        f: Finding<'_>,
        bad: bool,
        event_suffix: &str,
        good: String,
        good_summary: Option<String>,
    ) -> rusqlite::Result<()> {
        let key = compose::finding_key(&f);
        if bad {
            self.res
                .problems
                .push(format!("{} {}: {}", f.event.as_str(), f.asset, f.headline));
        }
        let trigger = bad.then(|| compose::finding(self.config, &f, Transition::Trigger, self.now));
        let mut g = f;
        g.headline = good;
        if let Some(s) = good_summary {
            g.summary = s;
        }
        let resolve = compose::finding(self.config, &g, Transition::Resolve, self.now);
        self.res.queued += self.alerts.observe(
            self.tx,
            self.channels,
            &key,
            &format!("{key}.{event_suffix}"),
            trigger.as_ref(),
            Some(&resolve),
            None,
            self.now,
        )?;
        Ok(())
    }
}

/// Turns a look into alert observations, in the caller's transaction.
pub fn apply(
    config: &Config,
    tx: &Connection,
    w: &Watch,
    look: &Look,
    now: Timestamp,
) -> rusqlite::Result<WatchResult> {
    let alerts = Alerts::new(config);
    let channels = alerts.channels(w.notify.as_ref());
    let mut res = WatchResult {
        watch: w.name.clone(),
        assets: 0,
        problems: Vec::new(),
        queued: 0,
        error: None,
    };
    let mut assets: Vec<&Asset> = look
        .assets
        .iter()
        .filter(|a| w.assets.as_ref().is_none_or(|g| g.matches(&a.name)))
        .collect();
    let empty = Asset {
        name: String::new(),
        snapshots: Vec::new(),
    };
    if assets.is_empty() && w.assets.is_none() {
        // An empty source is the stalest of all: nothing to restore.
        assets.push(&empty);
    }
    res.assets = assets.len();
    let tick = now.as_millisecond();
    let mut st = States {
        config,
        alerts: &alerts,
        tx,
        channels: &channels,
        now,
        res: &mut res,
    };
    for a in assets {
        let asset_name = if a.name.is_empty() {
            w.source.clone()
        } else {
            a.name.clone()
        };
        let newest = a.snapshots.first();
        // Stale.
        if let Some(limit) = w.stale_after {
            let age = newest.map(|s| now.duration_since(s.time));
            let limit_sd = SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX);
            let stale = age.is_none_or(|a| a > limit_sd);
            let age_text = age.map(|a| HumanDuration(a.as_secs_f64()).to_string());
            let headline = match &age_text {
                Some(t) => format!(
                    "newest backup is {t} old (stale after {})",
                    HumanDuration(limit.as_secs_f64())
                ),
                None => "no backup at all".to_string(),
            };
            let f = Finding {
                watch: &w.name,
                source: &w.source,
                asset: &asset_name,
                event: EventKind::BackupStale,
                headline: headline.clone(),
                summary: match newest {
                    Some(s) => format!(
                        "The newest finished backup of {asset_name} on source {} is {} ({}), older than stale_after = {}. Backups of this asset seem to have stopped: check the backup job, its schedule, the target's free space and credentials.",
                        w.source,
                        s.id,
                        s.time.strftime("%Y-%m-%d %H:%M:%SZ"),
                        HumanDuration(limit.as_secs_f64())
                    ),
                    None => format!(
                        "Source {} has no backup of {asset_name} at all. Check the backup job and the source's prefix/path.",
                        w.source
                    ),
                },
                facts: vec![
                    fact(
                        "Newest snapshot",
                        newest.map_or("none".into(), |s| {
                            format!("{} ({})", s.id, s.time.strftime("%Y-%m-%d %H:%M:%SZ"))
                        }),
                    ),
                    fact("Age", age_text.clone().unwrap_or_else(|| "—".into())),
                    fact(
                        "Stale after",
                        HumanDuration(limit.as_secs_f64()).to_string(),
                    ),
                ],
                details: Vec::new(),
                data: json!({"newest_snapshot": newest.map(|s| &s.id), "newest_time": newest.map(|s| s.time.to_string()),
                             "age_s": age.map(|a| a.as_secs_f64()), "stale_after_s": limit.as_secs_f64()}),
            };
            let good = format!(
                "fresh again, newest backup {} old",
                age_text.unwrap_or_default()
            );
            let good_summary = format!(
                "{asset_name} on source {} has a fresh backup again.",
                w.source
            );
            st.observe(f, stale, &tick.to_string(), good, Some(good_summary))?;
        }
        // Shrunk.
        if let (Some(max), Some(n)) = (w.max_shrink, newest)
            && let Some(size) = n.size
        {
            let prev = median(
                a.snapshots
                    .iter()
                    .skip(1)
                    .take(5)
                    .filter_map(|s| s.size)
                    .collect(),
            );
            if let Some(prev) = prev {
                let floor = (prev as f64) * (1.0 - max);
                let shrunk = (size as f64) < floor;
                let drop = if prev > 0 {
                    1.0 - size as f64 / prev as f64
                } else {
                    0.0
                };
                let headline = format!(
                    "newest backup {} is {:.0}% smaller than usual ({})",
                    HumanBytes(size),
                    drop * 100.0,
                    HumanBytes(prev)
                );
                let f = Finding {
                    watch: &w.name,
                    source: &w.source,
                    asset: &asset_name,
                    event: EventKind::BackupShrunk,
                    headline: headline.clone(),
                    summary: format!(
                        "The newest backup of {asset_name} ({}) is {} against a median of {} over the previous backups; more than max_shrink = {:.0}%. Data may be missing from the backup (an excluded or unmounted volume, a truncated dump).",
                        n.id,
                        HumanBytes(size),
                        HumanBytes(prev),
                        max * 100.0
                    ),
                    facts: vec![
                        fact("Newest snapshot", n.id.clone()),
                        fact("Size", HumanBytes(size).to_string()),
                        fact("Median of previous", HumanBytes(prev).to_string()),
                    ],
                    details: Vec::new(),
                    data: json!({"snapshot": n.id, "size": size, "previous_median": prev, "max_shrink": max}),
                };
                let good = format!(
                    "newest backup {} is back to its usual size",
                    HumanBytes(size)
                );
                st.observe(f, shrunk, &tick.to_string(), good, None)?;
            }
        }
        // Server-side verification.
        let failed: Vec<&str> = a
            .snapshots
            .iter()
            .filter(|s| s.verify_failed)
            .map(|s| s.id.as_str())
            .collect();
        let headline = format!(
            "{} snapshot{} failed server-side verification",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" }
        );
        let f = Finding {
            watch: &w.name,
            source: &w.source,
            asset: &asset_name,
            event: EventKind::BackupVerifyFailed,
            headline: headline.clone(),
            summary: format!(
                "The backup server's own verification marked {} of {asset_name} as failed: chunks are missing or corrupt, so a restore of {} will fail. Run a verify job on the server, and make a fresh backup.",
                if failed.len() == 1 {
                    "a snapshot"
                } else {
                    "snapshots"
                },
                if failed.len() == 1 { "it" } else { "them" }
            ),
            facts: vec![fact("Failed snapshots", failed.len().to_string())],
            details: failed
                .iter()
                .map(|s| format!("verify failed: {s}"))
                .collect(),
            data: json!({"snapshots": failed}),
        };
        let bad = !failed.is_empty();
        let suffix = failed.join(",");
        st.observe(
            f,
            bad,
            &suffix,
            "no snapshot is marked verify-failed any more".into(),
            None,
        )?;
    }
    // Failed backup jobs: news per job; the asset's alert resolves once a newer snapshot exists.
    if w.failed_jobs {
        for job in &look.failed_jobs {
            let asset_name = job.asset.clone().unwrap_or_else(|| w.source.clone());
            if w.assets.as_ref().is_some_and(|g| !g.matches(&asset_name)) {
                continue;
            }
            let new = tx.execute(
                "INSERT OR IGNORE INTO watch_seen (watch, item, asset, at) VALUES (?1, ?2, ?3, ?4)",
                params![w.name, job.id, asset_name, job.started.as_millisecond()],
            )? > 0;
            if !new {
                continue;
            }
            let headline = format!(
                "backup job failed: {}",
                job.status.chars().take(100).collect::<String>()
            );
            let f = Finding {
                watch: &w.name,
                source: &w.source,
                asset: &asset_name,
                event: EventKind::BackupFailed,
                headline: headline.clone(),
                summary: format!(
                    "A backup job of {asset_name} on source {} started {} ended in error: {}. The lines of its log that say why are below.",
                    w.source,
                    job.started.strftime("%Y-%m-%d %H:%M:%SZ"),
                    job.status
                ),
                facts: vec![
                    fact("Task", job.id.clone()),
                    fact(
                        "Started",
                        job.started.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                    ),
                    fact(
                        "Ended",
                        job.ended.map_or("—".into(), |t| {
                            t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
                        }),
                    ),
                    fact("Status", job.status.clone()),
                ],
                details: job.lines.clone(),
                data: json!({"task": job.id, "started": job.started.to_string(), "ended": job.ended.map(|t| t.to_string()),
                             "status": job.status, "log": job.lines}),
            };
            let key = compose::finding_key(&f);
            let n = compose::finding(config, &f, Transition::Trigger, now);
            // Each failed job is news even when the asset's alert is already open: force a trigger by
            // closing the state first (the event id is the task id, so it is still queued only once).
            tx.execute("UPDATE alerts SET open = 0 WHERE key = ?1", params![key])?;
            res.queued += alerts.observe(
                tx,
                &channels,
                &key,
                &format!("job.{}", job.id),
                Some(&n),
                None,
                None,
                now,
            )?;
            res.problems
                .push(format!("backup.failed {asset_name}: {headline}"));
        }
        // Resolve failed-job alerts whose asset has a snapshot newer than its last failed job.
        let rows: Vec<(String, i64)> = {
            let mut st = tx
                .prepare("SELECT asset, max(at) FROM watch_seen WHERE watch = ?1 GROUP BY asset")?;
            st.query_map(params![w.name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (asset_name, last_fail) in rows {
            let newest = look
                .assets
                .iter()
                .find(|a| a.name == asset_name || (a.name.is_empty() && asset_name == w.source))
                .and_then(|a| a.snapshots.first());
            let Some(s) = newest else { continue };
            if s.time.as_millisecond() <= last_fail {
                continue;
            }
            let f = Finding {
                watch: &w.name,
                source: &w.source,
                asset: &asset_name,
                event: EventKind::BackupFailed,
                headline: format!("a newer backup {} succeeded", s.id),
                summary: format!(
                    "{asset_name} on source {} has a successful backup ({}) after the failed job.",
                    w.source, s.id
                ),
                facts: vec![fact("Newest snapshot", s.id.clone())],
                details: Vec::new(),
                data: json!({"newest_snapshot": s.id}),
            };
            let key = compose::finding_key(&f);
            let resolve = compose::finding(config, &f, Transition::Resolve, now);
            res.queued += alerts.observe(
                tx,
                &channels,
                &key,
                &format!("{key}.ok.{}", s.id),
                None,
                Some(&resolve),
                None,
                now,
            )?;
        }
    }
    Ok(res)
}
