//! Crash safety and the daemon: SIGKILL mid-run, SIGTERM, scheduled runs.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_fixtures as fx;

use crate::util::Sandbox;

fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkilled_run_is_cleaned_up_and_recorded_as_error_at_next_start() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        1,
    );
    sb.local_drill(
        "app",
        "[[drills.app.checks]]\ntype = \"command\"\nrun = [\"sleep\", \"120\"]\ntimeout = \"5m\"\n",
    );
    let mut child = sb
        .command(&["drill", "app", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run is mid-check: its lease names the check command's process group.
    let (lease_path, pgid) = wait_for(
        "a lease with a process group",
        Duration::from_secs(30),
        || {
            for e in std::fs::read_dir(sb.scratch()).ok()?.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "lease") {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                    if let Some(g) = v["process_groups"]
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(|g| g.as_i64())
                    {
                        return Some((p, g as i32));
                    }
                }
            }
            None
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(lease_path.exists(), "the killed run left its lease behind");
    assert_eq!(
        process_state(pgid),
        Some('S'),
        "the check command outlived the agent"
    );

    // Next start (any command that opens the history) sweeps and records.
    let h = sb.run(&["history", "--json"]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    let runs = h.json_lines();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "error");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{:#}",
        runs[0]
    );
    sb.assert_scratch_empty();
    // The orphaned command was killed (it may linger as a zombie until init reaps it).
    wait_for(
        "the orphaned check command to die",
        Duration::from_secs(5),
        || matches!(process_state(pgid), None | Some('Z')).then_some(()),
    );
}

#[test]
fn agent_runs_scheduled_drills_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        2,
    );
    sb.local_drill("app", "schedule = \"* * * * *\"");
    let mut child = sb
        .command(&["agent", "--log", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    // Every-minute schedule: the first run comes within 60 s.
    let deadline = Instant::now() + Duration::from_secs(80);
    while !log.iter().any(|l: &String| l.contains("drill passed")) {
        assert!(Instant::now() < deadline, "no scheduled run; log: {log:#?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(l);
        }
    }
    assert!(
        log.iter().any(|l| l.contains("lifeboat agent started")),
        "{log:#?}"
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_for("the agent to exit", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    let runs = sb.run(&["history", "--json"]).json_lines();
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|r| r["outcome"] == "passed"), "{runs:#?}");
    sb.assert_scratch_empty();
}
