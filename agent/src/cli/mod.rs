//! The command line. Each subcommand is a file; this module parses arguments, loads the configuration and
//! maps results to the documented exit codes.

mod agent;
mod check_config;
mod drill;
mod history;
mod notify;
mod outbox;
mod report;
mod snapshots;
mod verify_ledger;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_PATH};

/// Exit codes, documented in the README and in `--help`; stable for scripts.
pub mod exit {
    /// Every drill passed.
    pub const OK: u8 = 0;
    /// At least one drill failed: a backup is bad or an objective was missed.
    pub const FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Nothing failed, but at least one drill could not run (`error`).
    pub const ERROR: u8 = 3;
}

const AFTER_HELP: &str = "\
Examples:
  lifeboat check-config                     validate the configuration and show the schedule
  lifeboat snapshots nas                    list the snapshots of source `nas`
  lifeboat drill app                        run drill `app` now and print the verdict
  lifeboat drill --all --json               run every enabled drill, one JSON object per run
  lifeboat history --drill app              past runs of `app`
  lifeboat agent                            drills and reports on their schedules (systemd service)
  lifeboat report --period 2026-Q3          compliance report: HTML file (or --format csv|json)
  lifeboat verify-ledger                    check the evidence ledger's hash chain
  lifeboat watch --all                      look at sources now: stale, shrunk, failed backup jobs
  lifeboat notify test ops                  send a test message through channel `ops`
  lifeboat outbox                           notifications still pending or failed, and why

Outcomes:
  passed   the backup restored, every check and objective passed
  failed   the backup is bad or an objective (RTO, RPO) was missed: act on the backup
  error    lifeboat could not finish the drill (source unreachable, scratch full): the run proves nothing

Exit codes:
  0  every drill passed
  1  at least one drill failed
  2  usage or configuration error
  3  nothing failed, but at least one drill could not run (error)
verify-ledger: 0 intact, 1 broken (the first broken link is named), 2 usage, 3 history unreadable.
report: 0 written, 2 usage, 3 history unreadable or file not written.
watch: 0 every asset healthy, 1 a problem found, 3 a source could not be looked at.
notify test: 0 delivered, 3 not delivered (the reason is printed).";

/// lifeboat proves that backups restore: it restores a recent backup (local, S3, Proxmox Backup Server)
/// into scratch space or an isolated VM, checks it, measures restore time and data age against RTO and RPO,
/// keeps the record and alerts when a drill fails or a backup goes stale.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, after_help = AFTER_HELP, max_term_width = 110)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, env = "LIFEBOAT_CONFIG", default_value = DEFAULT_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive such as `lifeboat=debug`).
    #[arg(long, global = true, env = "LIFEBOAT_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration file; print sources, drills and their next scheduled runs.
    CheckConfig,
    /// List the snapshots of a source, newest first, with their time and size.
    Snapshots(snapshots::Args),
    /// Run drills now and print their verdicts.
    Drill(drill::Args),
    /// Show past runs from the history database.
    History(history::Args),
    /// Run as a daemon: every drill and report on its schedule, until SIGTERM.
    Agent(agent::Args),
    /// Write an RTO/RPO compliance report of a period (HTML, CSV or JSON).
    Report(report::Args),
    /// Verify the evidence ledger's hash chain; exit 1 and name the first broken link when it is broken.
    VerifyLedger(verify_ledger::Args),
    /// Run watches now: stale backups, shrunk backups, failed backup jobs and failed verifications.
    Watch(watch::Args),
    /// Alert channels: send a test message.
    Notify(notify::Args),
    /// Show queued, failed (and with --all, delivered) notifications; `retry` queues failed ones again.
    Outbox(outbox::Args),
}

/// Entry point: parse, run, map to an exit code.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let default_level = if matches!(cli.command, Command::Agent(_)) {
        "info"
    } else {
        "warn"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(cli.log.as_deref().unwrap_or(default_level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = match cli.command {
        Command::CheckConfig => check_config::run(&config),
        Command::Snapshots(a) => snapshots::run(&config, &a),
        Command::Drill(a) => drill::run(config, &a),
        Command::History(a) => history::run(config, &a),
        Command::Agent(a) => agent::run(config, &a),
        Command::Report(a) => report::run(config, &a),
        Command::VerifyLedger(a) => verify_ledger::run(config, &a),
        Command::Watch(a) => watch::run(config, &a),
        Command::Notify(a) => notify::run(config, &a),
        Command::Outbox(a) => outbox::run(config, &a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(
                e.downcast_ref::<UsageError>()
                    .map_or(exit::ERROR, |_| exit::USAGE),
            )
        }
    }
}

/// After a one-shot command queued notifications: try to deliver what is due for a little while, and say
/// what is left (it stays in the outbox for the agent or the next command).
fn deliver_after(config: &Config, store: &crate::store::Store) {
    if config.channels.is_empty() {
        return;
    }
    // One-shot users (cron) get reminders too: the agent is not the only one who runs drills.
    let alerts = crate::alerts::Alerts::new(config);
    if let Err(e) = store.transaction(|tx| alerts.remind(tx, jiff::Timestamp::now())) {
        eprintln!("reminders could not be queued: {e}");
    }
    match crate::alerts::deliver::now_blocking(config, store, std::time::Duration::from_secs(60)) {
        Ok(p) => {
            if p.retrying > 0 || p.failed > 0 {
                eprintln!(
                    "notifications: {} delivered, {} not delivered yet (retried later), {} failed; see `lifeboat outbox`",
                    p.sent, p.retrying, p.failed
                );
            }
        }
        Err(e) => {
            eprintln!("notifications were queued but not delivered: {e}; see `lifeboat outbox`")
        }
    }
}

/// The names a `drill`/`watch` command acts on: every enabled one with `--all`, else the given names, each
/// of which must be configured (`kind` is `drill` or `watch`, for the message).
fn pick_names<'a>(
    kind: &str,
    configured: impl Iterator<Item = (&'a String, bool)> + Clone,
    all: bool,
    names: &[String],
) -> Result<Vec<String>, UsageError> {
    let picked: Vec<String> = if all {
        configured
            .clone()
            .filter(|(_, enabled)| *enabled)
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        for n in names {
            if !configured.clone().any(|(c, _)| c == n) {
                let known: Vec<&str> = configured.clone().map(|(c, _)| c.as_str()).collect();
                return Err(UsageError(format!(
                    "no {kind} named {n:?}; configured {kind}s: {}",
                    if known.is_empty() {
                        format!("none (add a [{kind}s.NAME] table)")
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        names.to_vec()
    };
    if picked.is_empty() {
        return Err(UsageError(format!(
            "no enabled {kind} in the configuration"
        )));
    }
    Ok(picked)
}

/// A mistake in the command line that the parser could not catch (an unknown drill name). Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `lifeboat history | head` closes stdout early. Rust ignores SIGPIPE, so `println!` panics with "Broken
/// pipe"; the reader wanted no more output, so end quietly like any Unix tool instead of printing a panic.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
