//! `lifeboat notify test NAME`: send a test message through one channel now, bypassing the outbox, and
//! print the channel's answer or the exact reason it failed.

use super::{UsageError, exit};
use crate::alerts::compose;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through channel NAME (as in `[notify.NAME]`).
    Test {
        /// Channel name.
        name: String,
    },
    /// List the configured channels with their events and reminder interval.
    List,
}

pub fn run(config: Config, a: &Args) -> anyhow::Result<u8> {
    match &a.command {
        NotifyCommand::List => {
            if config.channels.is_empty() {
                println!("no channels; add a [notify.NAME] table (see the README, \"Alerts\")");
            }
            for c in config.channels.values() {
                let events: Vec<&str> = c.events.iter().map(|e| e.as_str()).collect();
                println!(
                    "{:<12} {:<12} min_severity={} remind_every={} digest={}\n             events: {}",
                    c.name,
                    c.config.kind(),
                    c.min_severity.as_str(),
                    c.remind_every.map_or("never".to_string(), |d| {
                        lifeboat_drills::units::HumanDuration(d.as_secs_f64()).to_string()
                    }),
                    c.digest.as_ref().map_or("-", |s| s.expr.as_str()),
                    events.join(", ")
                );
            }
            Ok(exit::OK)
        }
        NotifyCommand::Test { name } => {
            let Some(ch) = config.channels.get(name) else {
                let known: Vec<&str> = config.channels.keys().map(String::as_str).collect();
                return Err(UsageError(format!(
                    "no channel named {name:?}; configured channels: {}",
                    if known.is_empty() {
                        "none (add a [notify.NAME] table)".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
                .into());
            };
            let now = jiff::Timestamp::now();
            let mut n = compose::base(
                &config,
                lifeboat_notify::EventKind::Test,
                lifeboat_notify::Transition::Info,
                lifeboat_notify::Severity::Info,
                now,
                "",
                "test",
                format!("[lifeboat] TEST message for channel {name}"),
                format!(
                    "This is a test message from lifeboat (configuration {}). If you read this, channel {name} works.",
                    config.path.display()
                ),
            );
            n.id = compose::id_part(&format!("test.{}.{name}", now.as_millisecond()));
            n.facts = vec![lifeboat_notify::Fact {
                label: "Channel".into(),
                value: format!("{name} ({})", ch.config.kind()),
            }];
            n.data = serde_json::json!({"channel": name, "site": config.site});
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let result = rt.block_on(async {
                let channel =
                    lifeboat_notify::Channel::new(name, &ch.config).map_err(|e| e.to_string())?;
                channel.deliver(&n).await.map_err(|e| e.to_string())
            });
            match result {
                Ok(d) => {
                    println!("channel {name}: test message delivered ({})", d.detail);
                    Ok(exit::OK)
                }
                Err(e) => {
                    eprintln!("channel {name}: test message NOT delivered: {e}");
                    Ok(exit::ERROR)
                }
            }
        }
    }
}
