//! The HTML report in headless Chromium (PDF and PNG, not blank, no script errors) and the agent's
//! scheduled reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat::config::Config;
use lifeboat::store::Store;
use serde_json::Value;

use super::{seed, ts};
use crate::util::Sandbox;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(b))
                    .find(|f| f.is_file())
            })
        })
}

fn headless(bin: &Path, profile: &Path, extra: &[String], html: &Path) -> crate::util::Run {
    // `timeout` bounds a hung browser and kills it (and its children) so nothing is left running.
    Command::new("timeout")
        .args(["-k", "5", "40"])
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap()
        .into()
}

#[test]
fn html_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        panic!("chromium is not installed: run scripts/test, which installs Debian's chromium");
    };
    let sb = Sandbox::new();
    seed(&sb, true);
    let html = sb.path("q3.html");
    let out = sb.run(&[
        "report",
        "--period",
        "2026-Q3",
        "--output",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    assert!(
        !text.contains("<script") && !text.contains("http://") && !text.contains("https://"),
        "self-contained"
    );
    assert!(
        text.contains("@page") && text.contains("prefers-color-scheme") && text.contains("<svg")
    );

    let profile = tempfile::tempdir().unwrap();
    let pdf = sb.path("q3.pdf");
    let r = headless(
        &bin,
        profile.path(),
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
        ],
        &html,
    );
    assert!(
        !r.stderr.contains("Uncaught") && !r.stderr.contains("console error"),
        "{}",
        r.stderr
    );
    let bytes = std::fs::read(&pdf).unwrap_or_else(|e| panic!("no PDF ({e}): {}", r.stderr));
    assert!(bytes.starts_with(b"%PDF-"));
    let pages = bytes
        .windows(12)
        .filter(|w| {
            (w.starts_with(b"/Type /Page") && w[11] != b's')
                || (w.starts_with(b"/Type/Page") && w[10] != b's')
        })
        .count();
    assert!(
        bytes.len() > 20_000 && pages >= 3,
        "PDF too small: {} bytes, {pages} page markers",
        bytes.len()
    );

    let png = sb.path("q3.png");
    let r = headless(
        &bin,
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,1600".into(),
            "--hide-scrollbars".into(),
        ],
        &html,
    );
    assert!(!r.stderr.contains("Uncaught"), "{}", r.stderr);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no PNG ({e}): {}", r.stderr));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    // A blank 1200×1600 page deflates to a few KiB; text, tables and charts make it far larger.
    assert!(
        bytes.len() > 40_000,
        "screenshot looks blank: {} bytes",
        bytes.len()
    );
}

#[test]
fn scheduled_report_writes_every_format_to_the_state_dir() {
    let sb = Sandbox::new();
    seed(&sb, false);
    let text = std::fs::read_to_string(sb.path("lifeboat.toml")).unwrap()
        + "\n[reports.quarterly]\nschedule = \"0 6 1 1,4,7,10 *\"\nperiod = \"previous-quarter\"\nformats = [\"html\", \"csv\", \"json\"]\nnotify = [\"compliance\"]\n\n[notify.compliance]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n";
    std::fs::write(sb.path("lifeboat.toml"), text).unwrap();
    let config = Config::load(&sb.path("lifeboat.toml")).unwrap();
    let store = Store::open(&config.state_dir).unwrap();
    let job = &config.reports["quarterly"];
    // As the agent fires it on Oct 1: the previous quarter is Q3.
    let files =
        lifeboat::report::scheduled::run(&config, &store, job, ts("2026-10-01T06:00:00Z")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "quarterly-2026-Q3.html",
            "quarterly-2026-Q3.csv",
            "quarterly-2026-Q3.json"
        ]
    );
    for f in &files {
        assert!(f.starts_with(sb.path("state/reports")));
        assert!(std::fs::metadata(f).unwrap().len() > 1000);
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&files[2]).unwrap()).unwrap();
    assert_eq!(doc["kpis"]["overall"]["run"], 103);
    // No temporary files are left behind.
    assert_eq!(
        std::fs::read_dir(sb.path("state/reports")).unwrap().count(),
        3
    );
    // check-config still accepts it and the agent would schedule it.
    let cc = sb.run(&["check-config"]);
    assert_eq!(cc.code, 0, "{}", cc.stderr);
}

#[test]
fn agent_writes_scheduled_reports_without_any_scheduled_drill() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let sb = Sandbox::new();
    seed(&sb, false);
    // No drill has a schedule: the report alone keeps the agent busy.
    let sink = lifeboat_fixtures::http_sink::HttpSink::start().unwrap();
    sb.config(&format!(
        "[sources.web]\ntype = \"local\"\npath = \"backups/web\"\n\n[drills.web]\nsource = \"web\"\nrto = \"10m\"\nrpo = \"26h\"\n\n[reports.minutely]\nschedule = \"* * * * *\"\nperiod = \"2026-Q3\"\nformats = [\"json\", \"csv\"]\nnotify = [\"ops\"]\n\n[notify.ops]\ntype = \"webhook\"\nurl = \"{}\"\n",
        sink.url("/hook")
    ));
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
    let mut log: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(80);
    while !log.iter().any(|l| l.contains("report.generated")) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no scheduled report; log: {log:#?}");
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(l);
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let stop = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < stop, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    // The rest of the log, up to the agent's exit.
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        log.push(l);
    }
    let json = sb.path("state/reports/minutely-2026-Q3.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["runs"].as_array().unwrap().len(), 103);
    assert!(sb.path("state/reports/minutely-2026-Q3.csv").is_file());
    let hooks = sink.requests();
    assert!(
        hooks.iter().any(|h| h.json()["type"] == "report.generated"
            && h.json()["data"]["files"]
                .as_array()
                .is_some_and(|f| f.len() == 2)),
        "report.generated delivered to the report's channel: {log:#?}"
    );
}
