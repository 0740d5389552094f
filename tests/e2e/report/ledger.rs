//! The evidence ledger under tampering: rows edited, deleted, renumbered and reordered directly in SQLite,
//! evidence files changed or removed; `verify-ledger` must name the first broken link.

use std::path::PathBuf;

use jiff::Timestamp;
use lifeboat::store::Store;
use serde_json::Value;

use super::{CONFIG, seed};
use crate::util::Sandbox;

fn db(sb: &Sandbox) -> rusqlite::Connection {
    rusqlite::Connection::open(sb.path("state/lifeboat.db")).unwrap()
}

fn verify(sb: &Sandbox, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["verify-ledger"];
    args.extend_from_slice(extra);
    sb.run(&args)
}

#[test]
fn ledger_verifies_when_intact_and_names_the_first_broken_link() {
    // Intact, with evidence files re-hashed; a missing file is reported but is not a break.
    let sb = Sandbox::new();
    seed(&sb, true);
    let ok = verify(&sb, &[]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("ledger: 104 entries"), "{}", ok.stdout);
    assert!(
        ok.stdout
            .contains("2 files re-hashed and equal, 0 changed, 0 missing"),
        "{}",
        ok.stdout
    );
    let head = ok
        .stdout
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(verify(&sb, &["--head", &head]).code, 0);
    let evidence: PathBuf = sb.path("state/evidence");
    let run_dir = std::fs::read_dir(&evidence)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(run_dir.join("output.txt")).unwrap();
    let missing = verify(&sb, &[]);
    assert_eq!(missing.code, 0, "{}", missing.stdout);
    assert!(missing.stdout.contains("1 missing"), "{}", missing.stdout);
    // A changed evidence file breaks it.
    std::fs::write(run_dir.join("manifest.sha256"), "forged\n").unwrap();
    let changed = verify(&sb, &[]);
    assert_eq!(changed.code, 1, "{}", changed.stdout);
    assert!(
        changed.stdout.contains("manifest.sha256") && changed.stdout.contains("changed"),
        "{}",
        changed.stdout
    );
    // A head that is not in the chain.
    assert_eq!(
        verify(&sb, &["--no-evidence", "--head", &"ab".repeat(32)]).code,
        1
    );

    // Edited record: the failed Jul 10 run turned into a pass.
    let sb = Sandbox::new();
    seed(&sb, false);
    let seq: i64 = db(&sb)
        .query_row(
            "SELECT seq FROM ledger WHERE run_id = '20260710T030000Z-web'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db(&sb)
        .execute("UPDATE ledger SET record = replace(record, '\"outcome\":\"failed\"', '\"outcome\":\"passed\"') WHERE seq = ?1", [seq])
        .unwrap();
    let edited = verify(&sb, &["--no-evidence"]);
    assert_eq!(edited.code, 1, "{}", edited.stdout);
    assert!(
        edited.stdout.contains(&format!(
            "first broken link is entry #{seq} (run 20260710T030000Z-web)"
        )),
        "{}",
        edited.stdout
    );
    assert!(
        edited.stdout.contains("the record was edited"),
        "{}",
        edited.stdout
    );
    // The report says so too.
    let json = sb.run(&["report", "--period", "2026-Q3", "--format", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["header"]["ledger"]["intact"], false);
    assert_eq!(doc["header"]["ledger"]["first_break"]["seq"], seq);

    // Edited run row (what reports read), ledger untouched.
    let sb = Sandbox::new();
    seed(&sb, false);
    db(&sb)
        .execute("UPDATE runs SET report = replace(report, '\"outcome\":\"failed\"', '\"outcome\":\"passed\"'), outcome = 'passed' WHERE run_id = '20260720T030000Z-web'", [])
        .unwrap();
    let row = verify(&sb, &["--no-evidence"]);
    assert_eq!(row.code, 1);
    assert!(
        row.stdout.contains("run 20260720T030000Z-web")
            && row.stdout.contains("edited after it was recorded"),
        "{}",
        row.stdout
    );

    // Deleted entry #20: the break is named at #21.
    let sb = Sandbox::new();
    seed(&sb, false);
    db(&sb)
        .execute("DELETE FROM ledger WHERE seq = 20", [])
        .unwrap();
    let deleted = verify(&sb, &["--no-evidence"]);
    assert_eq!(deleted.code, 1);
    assert!(
        deleted.stdout.contains("first broken link is entry #21"),
        "{}",
        deleted.stdout
    );
    assert!(
        deleted.stdout.contains("#20..#20 are missing"),
        "{}",
        deleted.stdout
    );

    // Deleted and renumbered (no gap): the prev_hash check finds it at #20.
    let sb = Sandbox::new();
    seed(&sb, false);
    let c = db(&sb);
    c.execute("DELETE FROM ledger WHERE seq = 20", []).unwrap();
    c.execute("UPDATE ledger SET seq = seq - 1 WHERE seq > 20", [])
        .unwrap();
    drop(c);
    let renumbered = verify(&sb, &["--no-evidence"]);
    assert_eq!(renumbered.code, 1);
    assert!(
        renumbered.stdout.contains("first broken link is entry #20")
            && renumbered.stdout.contains("deleted, inserted or reordered"),
        "{}",
        renumbered.stdout
    );

    // Reordered pair: entries #30 and #31 swap places.
    let sb = Sandbox::new();
    seed(&sb, false);
    let c = db(&sb);
    c.execute("UPDATE ledger SET seq = -1 WHERE seq = 30", [])
        .unwrap();
    c.execute("UPDATE ledger SET seq = 30 WHERE seq = 31", [])
        .unwrap();
    c.execute("UPDATE ledger SET seq = 31 WHERE seq = -1", [])
        .unwrap();
    drop(c);
    let swapped = verify(&sb, &["--no-evidence"]);
    assert_eq!(swapped.code, 1);
    assert!(
        swapped.stdout.contains("first broken link is entry #30")
            && swapped.stdout.contains("reordered"),
        "{}",
        swapped.stdout
    );
}

#[test]
fn interrupted_runs_are_chained() {
    let sb = Sandbox::new();
    sb.config(CONFIG);
    let store = Store::open(&sb.path("state")).unwrap();
    store
        .begin_run(&lifeboat::store::NewRun {
            run_id: "r-int",
            drill: "web",
            source: "web",
            trigger: "manual",
            started_at: Timestamp::now(),
            rto: 600.0,
            rpo: 3600.0,
        })
        .unwrap();
    assert!(
        store
            .mark_interrupted("r-int", "interrupted: test")
            .unwrap()
    );
    drop(store);
    let v = verify(&sb, &[]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert!(v.stdout.contains("ledger: 1 entries"), "{}", v.stdout);
}
