//! Good and broken archives: the verdict and the message.

use lifeboat_fixtures as fx;

use crate::util::{Sandbox, check, status};

const FILES_CHECK: &str = r#"
[[drills.app.checks]]
type = "files"
required = ["etc/app.conf", "data/"]
min_files = 20
"#;

#[test]
fn good_tar_zst_passes_with_measurements() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 2.0, ".tar.zst")),
        1,
    );
    sb.local_drill("app", FILES_CHECK);
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "passed");
    for c in [
        "archive",
        "archive checksum",
        "sha256sums",
        "required etc/app.conf",
        "file count",
        "rpo",
        "rto",
    ] {
        assert_eq!(status(&r, c), "passed", "{c}: {r:#}");
    }
    // RPA is about two hours; RTA is measured and within RTO.
    let rpa = r["rpa_seconds"].as_f64().unwrap();
    assert!((7190.0..7300.0).contains(&rpa), "rpa {rpa}");
    assert!(r["rta_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["rpo_met"], true);
    assert_eq!(r["rto_met"], true);
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["select", "restore", "checks", "teardown"]);
    for key in [
        "run_id",
        "drill",
        "source",
        "snapshot",
        "started_at",
        "finished_at",
        "rto_seconds",
        "rpo_seconds",
        "error",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    // The per-file manifest is kept as evidence and lists every restored file with its SHA-256.
    let manifest = check(&r, "archive")["evidence"][0]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&manifest).unwrap();
    let db = fx::app_files(1)
        .into_iter()
        .find(|(n, _)| n == "data/app.db")
        .unwrap()
        .1;
    assert!(
        text.contains(&format!("{}  data/app.db\n", fx::sha256_hex(&db))),
        "{text}"
    );
    sb.assert_scratch_empty();
    // History keeps it.
    let h = sb.run(&["history", "--json"]).json_lines();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["run_id"], r["run_id"]);
    assert_eq!(h[0]["outcome"], "passed");
}

#[test]
fn truncated_archive_fails_naming_the_archive() {
    for (ext, frac) in [(".tar.zst", 0.6), (".tar.gz", 0.6), (".tar", 0.5)] {
        let sb = Sandbox::new();
        let name = fx::stamped("app-", 1.0, ext);
        fx::truncated_archive(&sb.backups("app").join(&name), 2, frac);
        sb.local_drill("app", "");
        let (code, r) = sb.drill("app");
        assert_eq!(code, 1, "{ext}: {r:#}");
        assert_eq!(r["outcome"], "failed");
        let err = r["error"].as_str().unwrap();
        assert!(
            err.contains(&name) && err.contains("damaged"),
            "{ext}: {err}"
        );
        assert_eq!(status(&r, "restore"), "failed");
        sb.assert_scratch_empty();
    }
}

#[test]
fn plain_tar_cut_on_a_block_boundary_is_truncated() {
    // The tar crate ends quietly at a header boundary; lifeboat insists on the end-of-archive block.
    let sb = Sandbox::new();
    let mut t = fx::TarWriter::new(Vec::new());
    t.file("a.txt", 0o644, b"hello").unwrap();
    std::fs::write(sb.backups("app").join("app.tar"), t.into_inner()).unwrap();
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("ends without its end-of-archive block"),
        "{r:#}"
    );
}

#[test]
fn corrupt_zstd_frame_fails() {
    let sb = Sandbox::new();
    fx::corrupt_zstd(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        3,
    );
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1, "{r:#}");
    let err = r["error"].as_str().unwrap();
    assert!(err.contains("is damaged at byte"), "{err}");
    sb.assert_scratch_empty();
}

#[test]
fn sha256sums_mismatch_fails_naming_the_file() {
    let sb = Sandbox::new();
    fx::sums_mismatch(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        4,
    );
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1);
    assert_eq!(status(&r, "sha256sums"), "failed");
    let msg = check(&r, "sha256sums")["message"].as_str().unwrap();
    assert!(msg.contains("data/app.db differs from SHA256SUMS"), "{msg}");
}

#[test]
fn sidecar_mismatch_fails() {
    let sb = Sandbox::new();
    let path = fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        5,
    );
    let side = format!("{}.sha256", path.display());
    std::fs::write(
        &side,
        format!(
            "{}  {}\n",
            "0".repeat(64),
            path.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1);
    assert_eq!(status(&r, "archive checksum"), "failed");
    assert!(
        check(&r, "archive checksum")["message"]
            .as_str()
            .unwrap()
            .contains("does not match its checksum")
    );
}

#[test]
fn rpo_breach_fails_even_though_the_restore_is_good() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app")
            .join(fx::stamped("app-", 30.0, ".tar.zst")),
        6,
    );
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["rpo_met"], false);
    assert_eq!(status(&r, "rpo"), "failed");
    assert_eq!(status(&r, "archive"), "passed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("more than the RPO of 26h00m"),
        "{r:#}"
    );
}

#[test]
fn empty_source_is_a_failed_stale_verdict_and_missing_folder_is_an_error() {
    let sb = Sandbox::new();
    sb.backups("app");
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1, "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("no snapshot at all"));
    std::fs::remove_dir(sb.path("backups/app")).unwrap();
    let (code, r) = sb.drill("app");
    assert_eq!(
        code, 3,
        "a missing source folder means the drill could not run: {r:#}"
    );
    assert_eq!(r["outcome"], "error");
    assert!(r["error"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn folder_snapshot_and_selection_by_mtime_and_glob() {
    let sb = Sandbox::new();
    let src = sb.backups("nas");
    fx::good_folder(&src.join("weekly"), 7);
    fx::good_archive(&src.join("other.tar.zst"), 8);
    sb.local_drill(
        "nas",
        "glob = \"week*\"\n[[drills.nas.checks]]\ntype = \"files\"\nmin_files = 20\n",
    );
    let (code, r) = sb.drill("nas");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["snapshot"]["id"], "weekly");
    assert_eq!(status(&r, "folder"), "passed");
    assert_eq!(status(&r, "sha256sums"), "passed");
    // No timestamp in the name: the mtime (just now) is used.
    assert!(r["rpa_seconds"].as_f64().unwrap() < 600.0);
    let s = sb.run(&["snapshots", "nas", "--json"]).json_lines();
    let ids: Vec<&str> = s.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"weekly") && ids.contains(&"other.tar.zst"),
        "{ids:?}"
    );
    assert!(s.iter().all(|v| v["time_source"] == "mtime"));
}

#[test]
fn unverifiable_is_reported_and_can_be_required() {
    let sb = Sandbox::new();
    let files = fx::app_files(9);
    fx::write_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.gz")),
        &fx::app_tar(&files, None),
    );
    sb.local_drill("app", "");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0);
    assert_eq!(status(&r, "checksums"), "unverifiable");
    let sb2 = Sandbox::new();
    fx::write_archive(
        &sb2.backups("app").join(fx::stamped("app-", 1.0, ".tar.gz")),
        &fx::app_tar(&files, None),
    );
    sb2.local_drill(
        "app",
        "[[drills.app.checks]]\ntype = \"integrity\"\nrequire_checksums = true\n",
    );
    let (code, r) = sb2.drill("app");
    assert_eq!(code, 1);
    assert_eq!(status(&r, "checksums"), "failed");
}

#[test]
fn shrink_against_previous_passing_run_fails_when_configured() {
    let sb = Sandbox::new();
    let dir = sb.backups("app");
    let files = fx::app_files(10);
    fx::write_archive(
        &dir.join(fx::stamped("app-", 5.0, ".tar")),
        &fx::app_tar(&files, None),
    );
    sb.local_drill(
        "app",
        "[[drills.app.checks]]\ntype = \"files\"\nmax_shrink = \"40%\"\non_shrink = \"fail\"\n",
    );
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    assert!(
        check(&r, "shrink")["actual"]
            .as_str()
            .unwrap()
            .contains("no previous passing run")
    );
    // Tonight's backup lost most of its files.
    fx::write_archive(
        &dir.join(fx::stamped("app-", 1.0, ".tar")),
        &fx::app_tar(&files[..5], None),
    );
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(status(&r, "shrink"), "failed");
    assert!(
        check(&r, "shrink")["message"]
            .as_str()
            .unwrap()
            .contains("shrank by")
    );
}

#[test]
fn command_check_gets_environment_and_output_is_evidence() {
    let sb = Sandbox::new();
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        11,
    );
    sb.local_drill(
        "app",
        r#"
[[drills.app.checks]]
type = "command"
name = "env"
run = "test \"$PWD\" = \"$LIFEBOAT_RESTORE_DIR\" && test -f etc/app.conf && echo drill=$LIFEBOAT_DRILL snap=$LIFEBOAT_SNAPSHOT_ID"
output_contains = "drill=app snap=app-"

[[drills.app.checks]]
type = "command"
name = "slow"
run = ["sleep", "5"]
timeout = "1s"

[[drills.app.checks]]
type = "command"
name = "missing program"
run = ["/nonexistent/program"]
"#,
    );
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1, "a timed-out smoke test fails the drill: {r:#}");
    assert_eq!(status(&r, "command env"), "passed", "{r:#}");
    let log = check(&r, "command env")["evidence"][0].as_str().unwrap();
    assert!(std::fs::read_to_string(log).unwrap().contains("drill=app"));
    assert_eq!(status(&r, "command slow"), "failed");
    assert!(
        check(&r, "command slow")["actual"]
            .as_str()
            .unwrap()
            .contains("still running after")
    );
    assert_eq!(status(&r, "command missing program"), "error");
    assert!(
        r["rta_seconds"].is_null(),
        "no RTA when a check did not pass"
    );
    sb.assert_scratch_empty();
}
