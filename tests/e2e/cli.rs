//! The command line's contract: exit codes, messages, help.

use lifeboat_fixtures as fx;

use crate::util::Sandbox;

#[test]
fn configuration_errors_exit_2_with_location() {
    let sb = Sandbox::new();
    sb.config(
        "[drills.app]\nsource = \"nowhere\"\nrto = \"10m\"\nrpo = \"1d\"\nschedule = \"0 3 * *\"\n",
    );
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("lifeboat.toml:8:10: drill app: source \"nowhere\" is not defined"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("lifeboat.toml:11:12: drill app: schedule \"0 3 * *\" has 4 fields"),
        "{}",
        r.stderr
    );
    let missing = sb
        .command(&["check-config"])
        .env("LIFEBOAT_CONFIG", "/nonexistent.toml")
        .arg("--config=/nonexistent.toml")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("cannot read configuration /nonexistent.toml")
    );
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        1,
    );
    sb.local_drill("app", "");
    let r = sb.run(&["drill", "nope"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no drill named \"nope\"; configured drills: app"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.run(&["drill"]).code, 2);
    assert_eq!(sb.run(&["snapshots", "nope"]).code, 2);
    let help = sb.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("failed   the backup is bad"),
        "{}",
        help.stdout
    );
}

#[test]
fn all_prints_a_table_and_failed_beats_passed() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("good")
            .join(fx::stamped("app-", 1.0, ".tar.zst")),
        1,
    );
    fx::sums_mismatch(
        &sb.backups("bad").join(fx::stamped("app-", 1.0, ".tar.zst")),
        2,
    );
    sb.local_drill("good", "");
    sb.local_drill("bad", "");
    let r = sb.run(&["drill", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("DRILL") && lines[0].contains("RTA / RTO"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("good ") && r.stdout.contains(" passed "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("FAILED"), "{}", r.stdout);
    assert!(
        r.stdout.contains("reproduce: lifeboat --config"),
        "{}",
        r.stdout
    );
    let cc = sb.run(&["check-config"]);
    assert_eq!(cc.code, 0);
    assert!(
        cc.stdout.contains("good") && cc.stdout.contains("on demand only"),
        "{}",
        cc.stdout
    );
}

#[test]
fn not_enough_scratch_space_is_an_error_not_a_failure() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        1,
    );
    sb.local_drill("app", "");
    let cfg = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace("\"1MiB\"", "\"1000TiB\"");
    std::fs::write(sb.path("lifeboat.toml"), cfg).unwrap();
    let (code, r) = sb.drill("app");
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["outcome"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("not enough scratch space"),
        "{r:#}"
    );
    sb.assert_scratch_empty();
}

#[test]
fn keep_leaves_the_restore_and_history_filters_by_drill() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        1,
    );
    sb.local_drill("app", "");
    let r = sb.run(&["drill", "app", "--keep"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("restored folder kept at"), "{}", r.stderr);
    let kept = r.stderr.split("kept at ").nth(1).unwrap().trim();
    assert!(std::path::Path::new(kept).join("etc/app.conf").is_file());
    // A kept folder has no lease: later sweeps leave it alone.
    assert_eq!(sb.run(&["history"]).code, 0);
    assert!(std::path::Path::new(kept).join("etc/app.conf").is_file());
    let h = sb.run(&["history", "--drill", "other"]);
    assert!(h.stdout.contains("no runs recorded"), "{}", h.stdout);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // `lifeboat snapshots nas | head -1`: more output than a pipe buffer holds, reader gone after one line.
    let sb = Sandbox::new();
    let dir = sb.backups("nas");
    for i in 0..2000 {
        std::fs::write(dir.join(format!("nas-{i:05}.tar")), [0u8; 1024]).unwrap();
    }
    sb.local_drill("nas", "");
    let mut child = sb
        .command(&["snapshots", "nas"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(result.status.code(), Some(0), "{stderr}");
}
