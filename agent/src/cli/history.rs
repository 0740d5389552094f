//! `lifeboat history`: past runs, newest first.

use std::sync::Arc;

use super::exit;
use crate::config::Config;
use crate::output::table;
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this drill.
    #[arg(long)]
    pub drill: Option<String>,
    /// Most runs shown.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print one JSON object per run (the same objects `drill --json` printed).
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    // Opening the runner also records runs interrupted by a crash, so history is never stale.
    let runner = Runner::open(Arc::new(config))?;
    let runs = runner.store.history(a.drill.as_deref(), a.limit)?;
    if a.json {
        for r in &runs {
            println!("{}", serde_json::to_string(r)?);
        }
    } else if runs.is_empty() {
        println!(
            "no runs recorded yet in {}; run `lifeboat drill --all`",
            runner.store.path().display()
        );
    } else {
        print!("{}", table(&runs));
    }
    Ok(exit::OK)
}
