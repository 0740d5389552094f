//! `lifeboat check-config`: validate and summarize, so a typo is found before 3 a.m.

use jiff::Timestamp;
use lifeboat_drills::source::SourceConfig;
use lifeboat_drills::units::HumanDuration;

use super::exit;
use crate::config::Config;

pub fn run(c: &Config) -> anyhow::Result<u8> {
    println!("configuration {} is valid", c.path.display());
    println!("  state_dir   {}", c.state_dir.display());
    println!("  scratch_dir {}", c.scratch_dir.display());
    println!(
        "  timezone    {}",
        c.timezone.iana_name().unwrap_or("system")
    );
    println!("sources:");
    for (name, s) in &c.sources {
        match s {
            SourceConfig::Local(l) => {
                let state = if l.path.is_dir() {
                    ""
                } else {
                    "  (folder missing!)"
                };
                println!("  {name:<16} local {}{state}", l.path.display());
            }
            SourceConfig::Pbs(p) => {
                let ns = p
                    .namespace
                    .as_deref()
                    .map(|n| format!(" namespace {n}"))
                    .unwrap_or_default();
                let trust = if p.fingerprint.is_some() {
                    "pinned fingerprint"
                } else {
                    "PBS_FINGERPRINT or system CAs"
                };
                println!("  {name:<16} pbs {}{ns} ({trust})", p.repository);
            }
            SourceConfig::S3(s) => {
                let endpoint = s.endpoint.as_deref().unwrap_or("AWS");
                let prefix = s.prefix.as_deref().unwrap_or("");
                println!(
                    "  {name:<16} s3 {endpoint} bucket {} prefix {prefix:?}",
                    s.bucket
                );
            }
            SourceConfig::PbsDatastore(p) => {
                let state = if p.path.join(".chunks").is_dir() {
                    ""
                } else {
                    "  (not a datastore!)"
                };
                let ns = p
                    .namespace
                    .as_deref()
                    .map(|n| format!(" namespace {n}"))
                    .unwrap_or_default();
                println!("  {name:<16} pbs-datastore {}{ns}{state}", p.path.display());
            }
        }
    }
    println!("drills:");
    let now = Timestamp::now();
    for (name, d) in &c.drills {
        let next = match (&d.schedule, d.enabled) {
            (_, false) => "disabled".to_string(),
            (None, _) => "on demand only".to_string(),
            (Some(s), _) => match s.next_after(now) {
                Some(t) => format!(
                    "\"{}\" next {}",
                    s.expr,
                    t.to_zoned(s.tz.clone()).strftime("%Y-%m-%d %H:%M %Z")
                ),
                None => format!("\"{}\" never fires", s.expr),
            },
        };
        println!(
            "  {name:<16} source {:<12} rto {:<7} rpo {:<7} {} checks  {next}",
            d.source,
            HumanDuration(d.rto.as_secs_f64()).to_string(),
            HumanDuration(d.rpo.as_secs_f64()).to_string(),
            d.checks.len()
        );
    }
    if !c.watches.is_empty() {
        println!("watches:");
        for (name, w) in &c.watches {
            let next = match (w.enabled, w.schedule.next_after(now)) {
                (false, _) => "disabled".to_string(),
                (true, Some(t)) => format!(
                    "\"{}\" next {}",
                    w.schedule.expr,
                    t.to_zoned(w.schedule.tz.clone())
                        .strftime("%Y-%m-%d %H:%M %Z")
                ),
                (true, None) => format!("\"{}\" never fires", w.schedule.expr),
            };
            let stale = w.stale_after.map_or("-".to_string(), |d| {
                HumanDuration(d.as_secs_f64()).to_string()
            });
            println!(
                "  {name:<16} source {:<12} stale_after {stale:<7} {next}",
                w.source
            );
        }
    }
    if !c.channels.is_empty() {
        println!("notify channels:");
        for (name, ch) in &c.channels {
            println!(
                "  {name:<16} {:<12} {} event type(s), min_severity {}",
                ch.config.kind(),
                ch.events.len(),
                ch.min_severity.as_str()
            );
        }
    }
    let silent: Vec<&str> = c
        .drills
        .values()
        .filter(|d| d.enabled && d.notify.as_ref().is_some_and(Vec::is_empty))
        .map(|d| d.name.as_str())
        .collect();
    if c.channels.is_empty() {
        println!(
            "note: no [notify.NAME] channel: failed drills are only recorded, nobody is told (see README, \"Alerts\")"
        );
    } else if !silent.is_empty() {
        println!(
            "note: drills with notify = [] tell nobody: {}",
            silent.join(", ")
        );
    }
    Ok(exit::OK)
}
