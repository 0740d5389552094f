//! The `command` check: runs a user command in the restored folder — the application smoke test.
//!
//! The command runs in its own process group, registered in the run's lease, so a timeout, a cancellation or
//! a sweep after an agent crash kills it and everything it started. Output (stdout and stderr together) is kept
//! as evidence up to a bound.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::extract::CancelFlag;
use crate::model::{CheckResult, CheckStatus};
use crate::scratch::Lease;
use crate::units::{Dur, HumanDuration};

/// Most output kept as evidence.
const MAX_OUTPUT: usize = 256 * 1024;
/// Default time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A command as a shell line (run by `/bin/sh -c`) or as an argument list (run directly).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// `run = "pg_restore --list dump.custom | grep -q TABLE"`
    Shell(String),
    /// `run = ["sqlite3", "app.db", "PRAGMA integrity_check"]`
    Argv(Vec<String>),
}

impl CommandLine {
    fn short(&self) -> String {
        let s = match self {
            CommandLine::Shell(s) => s.clone(),
            CommandLine::Argv(a) => a.join(" "),
        };
        if s.chars().count() > 40 {
            format!("{}…", s.chars().take(40).collect::<String>())
        } else {
            s
        }
    }
}

/// `[[drills.NAME.checks]] type = "command"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Name in results (default: the command itself, shortened).
    #[serde(default)]
    pub name: Option<String>,
    /// The command.
    pub run: CommandLine,
    /// Time limit (default 5m); exceeding it fails the check and kills the command's process group.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Exit status that passes (default 0).
    #[serde(default)]
    pub expect_exit: i32,
    /// Text the output must contain.
    #[serde(default)]
    pub output_contains: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What a command check is told about the run (also exported as `LIFEBOAT_*` variables).
pub struct CommandEnv<'a> {
    /// The restored folder (the working directory).
    pub restore_dir: &'a Path,
    /// Where the output is kept.
    pub evidence_dir: &'a Path,
    /// Run id.
    pub run_id: &'a str,
    /// Drill name.
    pub drill: &'a str,
    /// Snapshot id.
    pub snapshot_id: &'a str,
    /// Snapshot time, RFC 3339.
    pub snapshot_time: String,
    /// The run's lease (process group registration).
    pub lease: &'a Lease,
    /// Agent shutdown.
    pub cancel: &'a CancelFlag,
    /// Position among the drill's checks (evidence file name).
    pub index: usize,
}

#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    dropped: u64,
}

fn pump(
    mut r: impl Read + Send + 'static,
    cap: Arc<Mutex<Capture>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut c = cap.lock().unwrap_or_else(|p| p.into_inner());
            let room = MAX_OUTPUT.saturating_sub(c.data.len());
            let take = room.min(n);
            c.data.extend_from_slice(&buf[..take]);
            c.dropped += (n - take) as u64;
        }
    })
}

fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

impl CommandConfig {
    /// The name shown in results.
    pub fn display_name(&self) -> String {
        format!(
            "command {}",
            self.name.clone().unwrap_or_else(|| self.run.short())
        )
    }

    /// Runs the command and judges it.
    pub fn run(&self, env: &CommandEnv<'_>) -> CheckResult {
        let name = self.display_name();
        let timeout = self.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        let mut expected = format!(
            "exit status {} within {}",
            self.expect_exit,
            HumanDuration(timeout.as_secs_f64())
        );
        if let Some(s) = &self.output_contains {
            expected.push_str(&format!(", output containing {s:?}"));
        }
        let mut cmd = match &self.run {
            CommandLine::Shell(s) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(s);
                c
            }
            CommandLine::Argv(a) => {
                let Some((prog, args)) = a.split_first() else {
                    return CheckResult::new(
                        name,
                        "command",
                        CheckStatus::Error,
                        expected,
                        "no command",
                        "`run` is an empty list",
                    );
                };
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
        };
        cmd.current_dir(env.restore_dir)
            .envs(&self.env)
            .env("LIFEBOAT_RESTORE_DIR", env.restore_dir)
            .env("LIFEBOAT_EVIDENCE_DIR", env.evidence_dir)
            .env("LIFEBOAT_RUN_ID", env.run_id)
            .env("LIFEBOAT_DRILL", env.drill)
            .env("LIFEBOAT_SNAPSHOT_ID", env.snapshot_id)
            .env("LIFEBOAT_SNAPSHOT_TIME", &env.snapshot_time)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return CheckResult::new(
                    name,
                    "command",
                    CheckStatus::Error,
                    expected,
                    format!("could not start: {e}"),
                    "the check command could not be started: check `run` (is the program installed and on PATH?)",
                );
            }
        };
        let pgid = child.id() as i32;
        if let Err(e) = env.lease.add_process_group(pgid) {
            tracing::warn!(error = %e, "could not record the command's process group in the lease");
        }
        let cap = Arc::new(Mutex::new(Capture::default()));
        let mut pumps = Vec::new();
        if let Some(o) = child.stdout.take() {
            pumps.push(pump(o, cap.clone()));
        }
        if let Some(e) = child.stderr.take() {
            pumps.push(pump(e, cap.clone()));
        }
        let mut verdict: Option<(CheckStatus, String, String)> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(e) => {
                    verdict = Some((
                        CheckStatus::Error,
                        format!("wait failed: {e}"),
                        "lifeboat lost track of the command".into(),
                    ));
                    break None;
                }
            }
            if started.elapsed() > timeout {
                verdict = Some((
                    CheckStatus::Failed,
                    format!(
                        "still running after {}",
                        HumanDuration(timeout.as_secs_f64())
                    ),
                    format!(
                        "the command did not finish within {}: it was killed; raise `timeout` if it is legitimately slow",
                        HumanDuration(timeout.as_secs_f64())
                    ),
                ));
                break None;
            }
            if env.cancel.load(Ordering::Relaxed) {
                verdict = Some((
                    CheckStatus::Error,
                    "cancelled".into(),
                    "the agent is shutting down".into(),
                ));
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Kill whatever the command left behind in its group, then collect output.
        kill_group(pgid);
        let _ = child.wait();
        for p in pumps {
            let _ = p.join();
        }
        let _ = env.lease.remove_process_group(pgid);
        let seconds = started.elapsed().as_secs_f64();
        let capture = std::mem::take(&mut *cap.lock().unwrap_or_else(|p| p.into_inner()));
        let output = String::from_utf8_lossy(&capture.data).into_owned();
        let log = env
            .evidence_dir
            .join(format!("check-{}-command.log", env.index));
        let evidence: Vec<PathBuf> = match fs::File::create(&log) {
            Ok(mut f) => {
                let _ = f.write_all(&capture.data);
                if capture.dropped > 0 {
                    let _ = writeln!(
                        f,
                        "\n[lifeboat: {} more bytes of output not kept]",
                        capture.dropped
                    );
                }
                vec![log]
            }
            Err(_) => vec![],
        };
        let (status, actual, message) = verdict.unwrap_or_else(|| {
            let st = status.map(|s| (s.code(), s.signal()));
            let (code_ok, actual) = match st {
                Some((Some(c), _)) => (
                    c == self.expect_exit,
                    format!("exit status {c} after {}", HumanDuration(seconds)),
                ),
                Some((None, Some(sig))) => (false, format!("killed by signal {sig}")),
                _ => (false, "no exit status".to_string()),
            };
            let contains_ok = self
                .output_contains
                .as_ref()
                .is_none_or(|s| output.contains(s.as_str()));
            if code_ok && contains_ok {
                (CheckStatus::Passed, actual, String::new())
            } else {
                let why = if !code_ok {
                    "the command failed"
                } else {
                    "the output lacks the expected text"
                };
                let tail = tail_lines(&output, 3);
                (
                    CheckStatus::Failed,
                    actual,
                    if tail.is_empty() {
                        why.to_string()
                    } else {
                        format!("{why}; last output: {tail}")
                    },
                )
            }
        });
        let mut r = CheckResult::new(name, "command", status, expected, actual, message);
        r.seconds = seconds;
        r.evidence = evidence;
        r
    }
}
