//! `lifeboat outbox`: what the durable outbox holds. Pending rows will be delivered by the agent (or the next
//! one-shot command); failed rows say why and stay until `lifeboat outbox retry`.

use std::sync::Arc;

use jiff::Timestamp;

use super::exit;
use crate::alerts::outbox;
use crate::config::Config;
use crate::runner::Runner;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `retry`: queue failed notifications again (all, or the ids given after it) and deliver;
    /// `deliver`: try every pending notification now, ignoring its backoff.
    #[arg(value_parser = ["retry", "deliver"])]
    pub action: Option<String>,
    /// Row ids for `retry`.
    pub ids: Vec<i64>,
    /// Also list delivered notifications (newest first).
    #[arg(long)]
    pub all: bool,
    /// Most rows listed.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per row.
    #[arg(long)]
    pub json: bool,
}

fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    let config = Arc::new(config);
    let runner = Runner::open(config.clone())?;
    let store = &runner.store;
    match a.action.as_deref() {
        Some("retry") => {
            let n = outbox::retry(store, &a.ids, Timestamp::now())?;
            println!("{n} notification(s) queued again");
            super::deliver_after(&config, store);
            return Ok(exit::OK);
        }
        Some("deliver") => {
            outbox::due_now(store, Timestamp::now())?;
            super::deliver_after(&config, store);
        }
        _ => {}
    }
    let items = outbox::list(store, a.all, a.limit)?;
    if a.json {
        for i in &items {
            println!("{}", serde_json::to_string(i)?);
        }
        return Ok(exit::OK);
    }
    let (pending, sent, failed) = outbox::counts(store)?;
    println!("outbox: {pending} pending, {failed} failed, {sent} delivered");
    if items.is_empty() {
        if !a.all {
            println!("nothing pending or failed");
        }
        return Ok(exit::OK);
    }
    for i in &items {
        let when = match i.state.as_str() {
            "pending" => format!(
                "next attempt {} (attempt {})",
                short(i.next_attempt_at),
                i.attempts + 1
            ),
            "sent" => format!(
                "delivered {}",
                i.delivered_at.map(short).unwrap_or_default()
            ),
            _ => format!("after {} attempt(s)", i.attempts),
        };
        println!(
            "#{:<5} {:<8} {:<12} {:<20} {}",
            i.id, i.state, i.channel, i.event, i.title
        );
        println!("        queued {}, {when}", short(i.created_at));
        if let Some(e) = &i.last_error {
            println!("        last error: {e}");
        }
        if i.state == "sent"
            && let Some(d) = &i.detail
        {
            println!("        answer: {d}");
        }
    }
    if failed > 0 {
        println!("fix the cause, then `lifeboat outbox retry` queues failed notifications again");
    }
    Ok(exit::OK)
}
