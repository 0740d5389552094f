//! Hostile archives: every attempt to write outside the run folder fails the run, names the entry, and
//! leaves nothing outside. Special files are recorded, not created.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lifeboat_fixtures::{self as fx, TarWriter};

use crate::util::{Sandbox, check, status, tree};

/// Everything in the sandbox except the agent's own state and scratch folders.
fn outside_view(sb: &Sandbox) -> Vec<PathBuf> {
    tree(sb.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(sb.path("state")) && !p.starts_with(sb.scratch()))
        .collect()
}

/// Builds backups/app/app.tar from `body` (which gets the "outside" folder), runs the drill, and checks that
/// nothing appeared outside state/ and scratch/.
fn run_hostile(
    body: impl FnOnce(&mut TarWriter<Vec<u8>>, &Path),
) -> (i32, serde_json::Value, Sandbox) {
    let sb = Sandbox::new();
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();
    fx::hostile(&sb.backups("app").join("app.tar"), |t| body(t, &outside));
    sb.local_drill("app", "");
    let before = outside_view(&sb);
    let (code, r) = sb.drill("app");
    assert_eq!(
        outside_view(&sb),
        before,
        "something was created outside the run folder"
    );
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"do not touch"
    );
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().nlink(),
        1,
        "a hardlink to the outside file exists"
    );
    sb.assert_scratch_empty();
    (code, r, sb)
}

fn assert_unsafe(code: i32, r: &serde_json::Value, entry: &str, reason: &str) {
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["outcome"], "failed");
    let msg = check(r, "restore")["message"].as_str().unwrap();
    assert!(msg.contains(&format!("entry {entry:?} is unsafe")), "{msg}");
    assert!(msg.contains(reason), "{msg}");
}

#[test]
fn dotdot_paths_fail() {
    let (code, r, _) =
        run_hostile(|t, _| t.file("data/../../../outside/pwned", 0o644, b"x").unwrap());
    assert_unsafe(code, &r, "data/../../../outside/pwned", "`..`");
}

#[test]
fn absolute_paths_fail() {
    let mut target = String::new();
    let (code, r, _) = run_hostile(|t, outside| {
        target = outside.join("abs-pwned").display().to_string();
        t.file(&target, 0o644, b"x").unwrap();
    });
    assert_unsafe(code, &r, &target, "absolute path");
}

#[test]
fn writing_through_a_symlink_to_etc_fails() {
    let probe = format!("lifeboat-e2e-{}", std::process::id());
    let (code, r, _) = run_hostile(|t, _| {
        t.symlink("etc-link", "/etc").unwrap();
        t.file(&format!("etc-link/{probe}"), 0o644, b"pwned")
            .unwrap();
    });
    assert!(!Path::new("/etc").join(&probe).exists());
    assert_unsafe(
        code,
        &r,
        &format!("etc-link/{probe}"),
        "written through the symlink",
    );
}

#[test]
fn writing_through_a_symlink_to_a_folder_outside_fails() {
    let (code, r, _) = run_hostile(|t, outside| {
        t.symlink("out", &outside.display().to_string()).unwrap();
        t.dir("out/sub/", 0o755).unwrap();
    });
    assert_unsafe(code, &r, "out/sub/", "written through the symlink");
}

#[test]
fn hardlinks_to_outside_fail() {
    let (code, r, _) = run_hostile(|t, _| t.hardlink("h", "../../outside/secret").unwrap());
    assert_unsafe(code, &r, "h", "hardlink target");
    let mut abs = String::new();
    let (code, r, _) = run_hostile(|t, outside| {
        abs = outside.join("secret").display().to_string();
        t.hardlink("h", &abs).unwrap();
    });
    assert_unsafe(code, &r, "h", "absolute path");
    let (code, r, _) = run_hostile(|t, outside| {
        t.symlink("lnk", &outside.display().to_string()).unwrap();
        t.hardlink("h", "lnk/secret").unwrap();
    });
    assert_unsafe(
        code,
        &r,
        "h",
        "goes through something that is not a restored folder",
    );
}

#[test]
fn symlinks_are_restored_as_links_and_hardlinks_inside_work() {
    let sb = Sandbox::new();
    fx::hostile(&sb.backups("app").join("app.tar"), |t| {
        t.file("data/real.txt", 0o644, b"real").unwrap();
        t.symlink("abs-link", "/etc/passwd").unwrap();
        t.symlink("rel-link", "data/real.txt").unwrap();
        t.hardlink("data/hard.txt", "data/real.txt").unwrap();
    });
    sb.local_drill("app", "");
    let r = sb.run(&["drill", "app", "--json", "--keep"]);
    let rep = &r.json_lines()[0];
    assert_eq!(r.code, 0, "{rep:#}");
    let kept = PathBuf::from(rep["kept_dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_link(kept.join("abs-link")).unwrap(),
        PathBuf::from("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(kept.join("rel-link")).unwrap(),
        PathBuf::from("data/real.txt")
    );
    assert_eq!(
        std::fs::metadata(kept.join("data/hard.txt"))
            .unwrap()
            .nlink(),
        2
    );
    assert_eq!(rep["restore"]["symlinks"], 2);
    assert_eq!(rep["restore"]["hardlinks"], 1);
    lifeboat_drills::scratch::remove_tree(kept.parent().unwrap()).unwrap();
}

#[test]
fn sparse_gigabyte_in_a_tiny_archive_is_a_bomb() {
    let (code, r, sb) = run_hostile(|t, _| t.sparse("big.img", 1 << 30, &[0xAB; 512]).unwrap());
    let size = std::fs::metadata(sb.backups("app").join("app.tar"))
        .unwrap()
        .len();
    assert!(size <= 10 * 1024, "archive is {size} bytes");
    assert_eq!(code, 1, "{r:#}");
    let msg = check(&r, "restore")["message"].as_str().unwrap();
    assert!(
        msg.contains("expansion ratio limit exceeded at entry \"big.img\""),
        "{msg}"
    );
    assert!(
        msg.contains("max_ratio"),
        "the message says which setting raises it: {msg}"
    );
}

#[test]
fn declared_size_over_the_limit_fails_before_writing() {
    let sb = Sandbox::new();
    fx::hostile(&sb.backups("app").join("app.tar"), |t| {
        t.sparse("big.img", 1 << 30, &[1; 512]).unwrap()
    });
    sb.local_drill("app", "max_restore_size = \"10MiB\"");
    let (code, r) = sb.drill("app");
    assert_eq!(code, 1);
    assert!(
        check(&r, "restore")["message"]
            .as_str()
            .unwrap()
            .contains("restore size limit exceeded"),
        "{r:#}"
    );
}

#[test]
fn device_nodes_fifos_and_setuid_are_recorded_not_created() {
    let sb = Sandbox::new();
    fx::hostile(&sb.backups("app").join("app.tar"), |t| {
        t.special("dev/null", b'3').unwrap();
        t.special("dev/sda", b'4').unwrap();
        t.special("run/initctl", b'6').unwrap();
        t.file("usr/bin/su", 0o4755, b"#!/bin/sh\n").unwrap();
        t.file("usr/bin/wall", 0o2755, b"#!/bin/sh\n").unwrap();
    });
    sb.local_drill("app", "");
    let r = sb.run(&["drill", "app", "--json", "--keep"]);
    let rep = &r.json_lines()[0];
    assert_eq!(
        r.code, 0,
        "system backups with device nodes are normal: {rep:#}"
    );
    assert_eq!(status(rep, "special files"), "passed");
    assert_eq!(
        check(rep, "special files")["actual"],
        "3 special files, 2 setuid/setgid files"
    );
    let evidence = check(rep, "special files")["evidence"][0].as_str().unwrap();
    let text = std::fs::read_to_string(evidence).unwrap();
    for line in [
        "character device not created: dev/null",
        "block device not created: dev/sda",
        "fifo not created: run/initctl",
        "setuid bit dropped: usr/bin/su",
        "setgid bit dropped: usr/bin/wall",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    let kept = PathBuf::from(rep["kept_dir"].as_str().unwrap());
    assert!(!kept.join("dev/null").exists() && !kept.join("run/initctl").exists());
    let mode = std::fs::metadata(kept.join("usr/bin/su")).unwrap().mode();
    assert_eq!(
        mode & 0o7777,
        0o755,
        "setuid must be dropped, mode {mode:o}"
    );
    lifeboat_drills::scratch::remove_tree(kept.parent().unwrap()).unwrap();
}

#[test]
fn malformed_headers_never_panic() {
    // Random garbage, a header with a broken checksum and a header-only truncation: all `failed`, no crash.
    let sb = Sandbox::new();
    let dir = sb.backups("app");
    std::fs::write(dir.join("a-garbage.tar"), fx::noise(1, 4096)).unwrap();
    let mut t = TarWriter::new(Vec::new());
    t.file("ok.txt", 0o644, b"fine").unwrap();
    let mut bytes = t.finish().unwrap();
    bytes[148] ^= 0x07;
    std::fs::write(dir.join("b-badsum.tar"), bytes).unwrap();
    std::fs::write(dir.join("c-empty.tar"), b"").unwrap();
    sb.local_drill("app", "");
    for name in ["a-garbage.tar", "b-badsum.tar", "c-empty.tar"] {
        let cfg = std::fs::read_to_string(sb.path("lifeboat.toml")).unwrap();
        let cfg = cfg
            .lines()
            .filter(|l| !l.starts_with("glob"))
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = cfg.replace(
            "rpo = \"26h\"",
            &format!("rpo = \"26h\"\nglob = \"{name}\""),
        );
        std::fs::write(sb.path("lifeboat.toml"), cfg).unwrap();
        let (code, r) = sb.drill("app");
        assert_eq!(code, 1, "{name}: {r:#}");
        assert_eq!(r["outcome"], "failed", "{name}");
        assert!(r["error"].as_str().unwrap().contains(name), "{name}: {r:#}");
    }
}
