//! `lifeboat watch NAME... | --all`: run watches now (what the agent does on their schedules), queue and
//! deliver what they found, print the problems. Exit 0 when every watched asset is healthy, 1 when a problem
//! was found, 3 when a source could not be looked at.

use std::sync::Arc;

use jiff::Timestamp;

use super::exit;
use crate::alerts::watch::{self as w, WatchResult};
use crate::config::Config;
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Watches to run, as in `[watches.NAME]`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Run every enabled watch.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per watch.
    #[arg(long)]
    pub json: bool,
}

/// Runs one watch: look (outside the database), then decide and queue in one transaction.
pub fn run_one(
    config: &Config,
    store: &crate::store::Store,
    watch: &crate::config::Watch,
) -> anyhow::Result<WatchResult> {
    let now = Timestamp::now();
    let since = store.transaction(|tx| w::since(tx, watch, now))?;
    match w::look(config, watch, since) {
        Ok(look) => Ok(store.transaction(|tx| {
            let r = w::apply(config, tx, watch, &look, now)?;
            crate::alerts::state_set(tx, &format!("watch:{}", watch.name), now.as_millisecond())?;
            Ok(r)
        })?),
        Err(e) => Ok(WatchResult {
            watch: watch.name.clone(),
            assets: 0,
            problems: Vec::new(),
            queued: 0,
            error: Some(e),
        }),
    }
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    let names = super::pick_names(
        "watch",
        config.watches.values().map(|w| (&w.name, w.enabled)),
        a.all,
        &a.names,
    )?;
    let config = Arc::new(config);
    let runner = Runner::open(config.clone())?;
    let mut results = Vec::new();
    for n in &names {
        let Some(watch) = config.watches.get(n) else {
            continue;
        };
        let r = run_one(&config, &runner.store, watch)?;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            match (&r.error, r.problems.is_empty()) {
                (Some(e), _) => println!("{n}: ERROR {e}"),
                (None, true) => println!("{n}: ok ({} asset(s) healthy)", r.assets),
                (None, false) => {
                    println!(
                        "{n}: {} problem(s) in {} asset(s)",
                        r.problems.len(),
                        r.assets
                    );
                    for p in &r.problems {
                        println!("  {p}");
                    }
                }
            }
        }
        results.push(r);
    }
    super::deliver_after(&config, &runner.store);
    Ok(if results.iter().any(|r| !r.problems.is_empty()) {
        exit::FAILED
    } else if results.iter().any(|r| r.error.is_some()) {
        exit::ERROR
    } else {
        exit::OK
    })
}
