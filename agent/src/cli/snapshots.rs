//! `lifeboat snapshots SOURCE`: what a drill would choose from.

use jiff::Timestamp;
use lifeboat_drills::units::{HumanBytes, HumanDuration};

use super::{UsageError, exit};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source name, as in `[sources.NAME]`.
    pub source: String,
    /// Print one JSON object per snapshot.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: &Config, a: &Args) -> anyhow::Result<u8> {
    let Some(cfg) = c.sources.get(&a.source) else {
        let known: Vec<&str> = c.sources.keys().map(String::as_str).collect();
        return Err(UsageError(format!(
            "no source named {:?}; configured sources: {}",
            a.source,
            known.join(", ")
        ))
        .into());
    };
    let source = cfg.build(&c.timezone);
    let list = source
        .list()
        .map_err(|e| anyhow::anyhow!("source {}: {e}", a.source))?;
    if a.json {
        for s in &list {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(exit::OK);
    }
    if list.is_empty() {
        println!("{} ({}) holds no snapshot", a.source, source.describe());
        return Ok(exit::OK);
    }
    let now = Timestamp::now();
    let w = list.iter().map(|s| s.id.len()).max().unwrap_or(8).max(8);
    println!(
        "{:<w$}  {:<20}  {:>8}  {:<5}  {:>10}  {:<7}  DETAILS",
        "SNAPSHOT", "TIME (UTC)", "AGE", "FROM", "SIZE", "KIND"
    );
    for s in &list {
        let age = (now.as_second() - s.time.as_second()) as f64;
        let line = format!(
            "{:<w$}  {:<20}  {:>8}  {:<5}  {:>10}  {:<7}  {}",
            s.id,
            s.time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            HumanDuration(age).to_string(),
            format!("{:?}", s.time_source).to_lowercase(),
            s.size
                .map_or("-".to_string(), |b| HumanBytes(b).to_string()),
            format!("{:?}", s.kind),
            s.details.as_deref().unwrap_or("")
        );
        println!("{}", line.trim_end());
    }
    Ok(exit::OK)
}
