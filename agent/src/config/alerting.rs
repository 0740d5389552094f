//! `[notify.NAME]` channels and `[watches.NAME]`: who hears of what, and the cheap looks at sources between
//! drills. A channel table mixes routing keys (this module: `events`, `min_severity`, `remind_every`,
//! `digest`, `digest_timezone`) with the channel's own keys (`lifeboat-notify`'s `ChannelConfig`, tagged by
//! `type`); the routing keys are taken out first so the channel part keeps `deny_unknown_fields`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::tz::TimeZone;
use lifeboat_drills::units::{Dur, Percent};
use lifeboat_notify::{ChannelConfig, EventKind, Severity};
use serde::Deserialize;
use toml::Spanned;

use super::{Ctx, Schedule, parse_cron, zone};

/// Default reminder interval while something stays bad.
pub const DEFAULT_REMIND: Duration = Duration::from_secs(24 * 3600);

/// A validated `[notify.NAME]` channel.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// Table key.
    pub name: String,
    /// Transport and payload settings.
    pub config: ChannelConfig,
    /// Events this channel hears about.
    pub events: Vec<EventKind>,
    /// Least severity sent (resolves of alerts it received are always sent).
    pub min_severity: Severity,
    /// Reminder interval while an alert stays open; `None` = never remind.
    pub remind_every: Option<Duration>,
    /// Daily digest schedule, if any.
    pub digest: Option<Schedule>,
}

/// A validated `[watches.NAME]`.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Table key.
    pub name: String,
    /// Source name.
    pub source: String,
    /// An asset whose newest snapshot is older than this is stale.
    pub stale_after: Option<Duration>,
    /// When the agent looks.
    pub schedule: Schedule,
    /// Channels told; `None` = every channel.
    pub notify: Option<Vec<String>>,
    /// Newest snapshot smaller than the median of the previous ones by more than this fraction → shrunk.
    pub max_shrink: Option<f64>,
    /// Only assets matching this glob (`vm/*`); all when `None`.
    pub assets: Option<glob::Pattern>,
    /// Report failed backup jobs (PBS task list).
    pub failed_jobs: bool,
    /// `false`: the agent does not run it.
    pub enabled: bool,
}

/// `[watches.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    source: Spanned<String>,
    #[serde(default)]
    stale_after: Option<Dur>,
    schedule: Spanned<String>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    notify: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    max_shrink: Option<Percent>,
    #[serde(default)]
    assets: Option<Spanned<String>>,
    #[serde(default = "yes")]
    failed_jobs: bool,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

const ROUTING_KEYS: [&str; 5] = [
    "events",
    "min_severity",
    "remind_every",
    "digest",
    "digest_timezone",
];

fn event_names() -> String {
    EventKind::ALL
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses every `[notify.NAME]` table.
pub(super) fn channels(
    raw: BTreeMap<String, Spanned<toml::Table>>,
    base: &Path,
    tz: &TimeZone,
    cx: &mut Ctx<'_>,
) -> BTreeMap<String, NotifyChannel> {
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        let span = t.span();
        let mut table = t.into_inner();
        let mut routing = toml::Table::new();
        for k in ROUTING_KEYS {
            if let Some(v) = table.remove(k) {
                routing.insert(k.to_string(), v);
            }
        }
        if !table.contains_key("type") {
            cx.at(span, format!("channel {name}: `type` is missing; expected one of \"email\", \"webhook\", \"slack\", \"teams\", \"discord\", \"ntfy\", \"gotify\", \"pagerduty\", \"healthchecks\""));
            continue;
        }
        let mut config: ChannelConfig = match toml::Value::Table(table).try_into() {
            Ok(c) => c,
            Err(e) => {
                cx.at(span, format!("channel {name}: {}", e.message().trim()));
                continue;
            }
        };
        config.resolve_paths(base);
        if let Err(e) = config.validate(&name) {
            cx.at(span.clone(), format!("channel {name}: {e}"));
        }
        let events = match routing.get("events") {
            None => config.default_events().to_vec(),
            Some(v) => {
                let mut ev = Vec::new();
                match v.as_array() {
                    Some(items) => {
                        for i in items {
                            match i.as_str().and_then(EventKind::parse) {
                                Some(k) => ev.push(k),
                                None => cx.at(span.clone(), format!("channel {name}: unknown event {i}; expected some of: {}", event_names())),
                            }
                        }
                    }
                    None => cx.at(span.clone(), format!("channel {name}: `events` must be a list such as [\"drill.failed\", \"backup.stale\"]")),
                }
                ev
            }
        };
        let min_severity = match routing.get("min_severity") {
            None => Severity::Info,
            Some(v) => v.as_str().and_then(Severity::parse).unwrap_or_else(|| {
                cx.at(span.clone(), format!("channel {name}: min_severity {v} is not one of \"info\", \"warning\", \"error\", \"critical\""));
                Severity::Info
            }),
        };
        let remind_every = match routing.get("remind_every") {
            None => Some(DEFAULT_REMIND),
            Some(v) => match v.as_str() {
                Some("never") => None,
                Some(s) => match lifeboat_drills::units::parse_duration(s) {
                    Ok(d) if d.is_zero() => None,
                    Ok(d) => Some(d),
                    Err(e) => {
                        cx.at(span.clone(), format!("channel {name}: remind_every: {e}"));
                        None
                    }
                },
                None => {
                    cx.at(span.clone(), format!("channel {name}: remind_every must be a duration such as \"24h\", or \"never\""));
                    None
                }
            },
        };
        let dtz = match routing.get("digest_timezone").map(|v| v.as_str()) {
            None => tz.clone(),
            Some(Some(z)) => zone(z).unwrap_or_else(|m| {
                cx.at(span.clone(), format!("channel {name}: {m}"));
                TimeZone::UTC
            }),
            Some(None) => {
                cx.at(
                    span.clone(),
                    format!(
                        "channel {name}: digest_timezone must be a string such as \"Europe/Berlin\""
                    ),
                );
                TimeZone::UTC
            }
        };
        let digest = match routing.get("digest").map(|v| v.as_str()) {
            None => None,
            Some(Some(expr)) => match parse_cron(expr) {
                Ok(cron) => Some(Schedule {
                    expr: expr.to_string(),
                    cron,
                    tz: dtz,
                }),
                Err(m) => {
                    cx.at(span.clone(), format!("channel {name}: digest: {m}"));
                    None
                }
            },
            Some(None) => {
                cx.at(
                    span.clone(),
                    format!("channel {name}: digest must be a crontab line such as \"0 8 * * *\""),
                );
                None
            }
        };
        out.insert(
            name.clone(),
            NotifyChannel {
                name,
                config,
                events,
                min_severity,
                remind_every,
                digest,
            },
        );
    }
    out
}

/// Checks that every name in `list` is a defined channel.
pub(super) fn check_channel_list(
    owner: &str,
    list: &Spanned<Vec<String>>,
    channels: &BTreeMap<String, NotifyChannel>,
    cx: &mut Ctx<'_>,
) {
    for c in list.get_ref() {
        if !channels.contains_key(c) {
            let known: Vec<&str> = channels.keys().map(String::as_str).collect();
            cx.at(
                list.span(),
                format!(
                    "{owner}: notify channel {c:?} is not defined; defined channels: {}",
                    if known.is_empty() {
                        "none (add a [notify.NAME] table)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
}

/// Parses every `[watches.NAME]` table.
pub(super) fn watches(
    raw: BTreeMap<String, Spanned<RawWatch>>,
    sources: &BTreeMap<String, lifeboat_drills::source::SourceConfig>,
    channels: &BTreeMap<String, NotifyChannel>,
    tz: &TimeZone,
    cx: &mut Ctx<'_>,
) -> BTreeMap<String, Watch> {
    let mut out = BTreeMap::new();
    for (name, w) in raw {
        let span = w.span();
        let w = w.into_inner();
        if !sources.contains_key(w.source.get_ref()) {
            cx.at(
                w.source.span(),
                format!(
                    "watch {name}: source {:?} is not defined",
                    w.source.get_ref()
                ),
            );
        }
        if let Some(n) = &w.notify {
            check_channel_list(&format!("watch {name}"), n, channels, cx);
        }
        let wtz = cx.zone_or(w.timezone.as_ref(), tz);
        let schedule = cx.schedule(&format!("watch {name}"), &w.schedule, &wtz);
        let assets = w
            .assets
            .as_ref()
            .and_then(|g| match glob::Pattern::new(g.get_ref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    cx.at(
                        g.span(),
                        format!("watch {name}: invalid glob {:?}: {e}", g.get_ref()),
                    );
                    None
                }
            });
        if w.stale_after.is_none() && w.max_shrink.is_none() && !w.failed_jobs {
            cx.at(span, format!("watch {name}: watches nothing; set `stale_after`, `max_shrink` or `failed_jobs = true`"));
        }
        if let Some(schedule) = schedule {
            out.insert(
                name.clone(),
                Watch {
                    name,
                    source: w.source.into_inner(),
                    stale_after: w.stale_after.map(|d| d.0),
                    schedule,
                    notify: w.notify.map(Spanned::into_inner),
                    max_shrink: w.max_shrink.map(|p| p.0),
                    assets,
                    failed_jobs: w.failed_jobs,
                    enabled: w.enabled,
                },
            );
        }
    }
    out
}
