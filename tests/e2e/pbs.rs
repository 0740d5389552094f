//! Drills on PBS datastores read from disk (`type = "pbs-datastore"`), written in real format by the
//! fixtures' datastore writer and, for container snapshots, from pxar archives made by the upstream encoder.

use std::path::{Path, PathBuf};

use lifeboat_drills::pbs::crypt::{CryptConfig, Kdf, KeyConfig};
use lifeboat_fixtures::pbs::{Datastore, vm_snapshot};

use crate::util::{Sandbox, check, status};

fn pbs_source(sb: &Sandbox, name: &str, extra_source: &str, drill: &str) {
    let cfg = format!(
        "[sources.{name}]\ntype = \"pbs-datastore\"\npath = \"store\"\n{extra_source}\n\n[drills.{name}]\nsource = \"{name}\"\nrto = \"10m\"\nrpo = \"26h\"\n{drill}\n"
    );
    sb.config(&cfg);
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pbs-vectors/pxar")
}

#[test]
fn vm_snapshot_restores_to_a_sparse_partitioned_image() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 30.0, None);
    vm_snapshot(&store, None, "101", 2.0, None);
    vm_snapshot(&store, None, "102", 1.0, None);
    pbs_source(
        &sb,
        "erp",
        "",
        "group = \"vm/101\"\narchives = [\"drive-scsi0.img\", \"qemu-server.conf\"]\n[[drills.erp.checks]]\ntype = \"files\"\nrequired = [\"drive-scsi0.img\", \"qemu-server.conf\"]\n",
    );
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 0, "{r:#}");
    assert!(
        r["snapshot"]["id"].as_str().unwrap().starts_with("vm/101/"),
        "{r:#}"
    );
    assert!(
        r["rpa_seconds"].as_f64().unwrap() < 3.0 * 3600.0,
        "the newest snapshot of vm/101 was chosen"
    );
    assert!(
        check(&r, "manifest")["actual"]
            .as_str()
            .unwrap()
            .contains("PBS verify state ok")
    );
    let img = check(&r, "archive drive-scsi0.img.fidx")["actual"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        img.contains("6 chunks") && img.contains("zero chunks written as holes"),
        "{img}"
    );
    assert_eq!(status(&r, "image drive-scsi0.img"), "passed");
    assert!(
        check(&r, "image drive-scsi0.img")["actual"]
            .as_str()
            .unwrap()
            .contains("MBR table: #1")
    );
    assert!(
        check(&r, "image drive-scsi0.img")["actual"]
            .as_str()
            .unwrap()
            .contains("ext2/3/4")
    );
    let conf = check(&r, "archive qemu-server.conf.blob")["evidence"][0]
        .as_str()
        .unwrap();
    assert!(
        std::fs::read_to_string(conf)
            .unwrap()
            .contains("memory: 2048")
    );
    sb.assert_scratch_empty();
    let snaps = sb.run(&["snapshots", "erp", "--json"]).json_lines();
    assert_eq!(snaps.len(), 3);
    assert!(
        snaps
            .iter()
            .all(|s| s["kind"] == "pbs" && s["time_source"] == "name")
    );
}

#[test]
fn corrupted_and_missing_chunks_fail_naming_the_chunk() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    let (_, digests) = vm_snapshot(&store, None, "101", 1.0, None);
    store.corrupt_chunk(&digests[1]);
    pbs_source(&sb, "erp", "", "");
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1, "{r:#}");
    let msg = check(&r, "restore")["message"].as_str().unwrap();
    assert!(
        msg.contains(&hex_of(&digests[1])) && msg.contains("at byte 4194304"),
        "{msg}"
    );
    assert!(
        msg.contains("CRC-32 mismatch") || msg.contains("digest"),
        "{msg}"
    );

    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    let (_, digests) = vm_snapshot(&store, None, "101", 1.0, None);
    store.remove_chunk(&digests[5]);
    pbs_source(&sb, "erp", "", "");
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1, "{r:#}");
    assert!(
        check(&r, "restore")["message"]
            .as_str()
            .unwrap()
            .contains("missing from the datastore"),
        "{r:#}"
    );
    sb.assert_scratch_empty();
}

fn hex_of(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn index_that_disagrees_with_the_manifest_fails() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    let (dir, _) = vm_snapshot(&store, None, "101", 1.0, None);
    let idx = dir.join("drive-scsi0.img.fidx");
    let mut b = std::fs::read(&idx).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1; // a digest changed: the header checksum no longer matches
    std::fs::write(&idx, b).unwrap();
    pbs_source(&sb, "erp", "", "");
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1, "{r:#}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("drive-scsi0.img.fidx"),
        "{r:#}"
    );
}

#[test]
fn encrypted_snapshot_needs_the_right_key() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    let key = [7u8; 32];
    let crypt = CryptConfig::new(key);
    vm_snapshot(&store, Some("prod"), "300", 1.0, Some(&crypt));
    let kdf = Kdf::Pbkdf2 {
        iter: 1000,
        salt: vec![1, 2, 3, 4],
    };
    let kc = KeyConfig::new_encrypted(
        &key,
        b"correct horse",
        kdf,
        &[5u8; 16],
        "2026-11-01T00:00:00Z",
    )
    .unwrap();
    std::fs::write(sb.path("pbs.key"), kc.to_json().unwrap()).unwrap();
    pbs_source(
        &sb,
        "enc",
        "namespace = \"prod\"\nencryption_key_file = \"pbs.key\"",
        "",
    );
    let r = sb
        .command(&["drill", "enc", "--json"])
        .env("PBS_ENCRYPTION_PASSWORD", "correct horse")
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r.status.code(), Some(0), "{rep:#}");
    assert!(
        check(&rep, "manifest")["actual"]
            .as_str()
            .unwrap()
            .contains("signature verified"),
        "{rep:#}"
    );
    // No passphrase: the drill cannot run (error), the backup is not blamed.
    let (code, rep) = sb.drill("enc");
    assert_eq!(code, 3, "{rep:#}");
    assert!(
        rep["error"]
            .as_str()
            .unwrap()
            .contains("PBS_ENCRYPTION_PASSWORD"),
        "{rep:#}"
    );
    // Another key: refused before any chunk is decrypted.
    let other = KeyConfig::new_plain(&[8u8; 32], "2026-11-01T00:00:00Z");
    std::fs::write(sb.path("pbs.key"), other.to_json().unwrap()).unwrap();
    let (code, rep) = sb.drill("enc");
    assert_eq!(code, 3, "{rep:#}");
    assert!(
        rep["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("key"),
        "{rep:#}"
    );
}

fn container_snapshot(store: &Datastore, split: bool) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut s = store.snapshot(None, "ct", "200", now - 3600, None);
    s.blob(
        "pct.conf.blob",
        b"arch: amd64\nhostname: ct200\nmemory: 512\n",
    );
    if split {
        s.dynamic(
            "root.mpxar.didx",
            &std::fs::read(vectors().join("tree.mpxar")).unwrap(),
        );
        s.dynamic(
            "root.ppxar.didx",
            &std::fs::read(vectors().join("tree.ppxar")).unwrap(),
        );
    } else {
        s.dynamic(
            "root.pxar.didx",
            &std::fs::read(vectors().join("tree.pxar")).unwrap(),
        );
    }
    s.finish();
}

#[test]
fn container_snapshots_unified_and_split_restore_with_files_checks() {
    for split in [false, true] {
        let sb = Sandbox::new();
        let store = Datastore::create(&sb.path("store")).unwrap();
        container_snapshot(&store, split);
        pbs_source(
            &sb,
            "ct",
            "",
            "archives = [\"root.pxar\", \"pct.conf\"]\n[[drills.ct.checks]]\ntype = \"files\"\nrequired = [\"root/docs/notes.txt\", \"root/many/zz-subdir/inner.txt\", \"pct.conf\"]\npatterns = [{ glob = \"root/many/entry-*.txt\", min = 24 }]\n[[drills.ct.checks]]\ntype = \"command\"\nrun = \"test -L root/links/abs-symlink && test -f root/big-random.bin\"\n",
        );
        let (code, r) = sb.drill("ct");
        assert_eq!(code, 0, "split={split}: {r:#}");
        let name = if split {
            "archive root.mpxar.didx + root.ppxar.didx"
        } else {
            "archive root.pxar.didx"
        };
        let actual = check(&r, name)["actual"].as_str().unwrap();
        assert!(
            actual.contains(if split { "pxar v2" } else { "pxar v1" }),
            "{actual}"
        );
        assert_eq!(
            status(&r, "special files"),
            "passed",
            "fifo, socket and devices of the tree are recorded"
        );
        sb.assert_scratch_empty();
    }
}

#[test]
fn missing_archive_and_group_are_failures() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 1.0, None);
    pbs_source(&sb, "erp", "", "archives = [\"drive-scsi1.img\"]");
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("lacks (it has: qemu-server.conf, drive-scsi0.img)")
            || r["error"]
                .as_str()
                .unwrap()
                .contains("which this snapshot lacks"),
        "{r:#}"
    );
    pbs_source(&sb, "erp", "", "group = \"vm/999\"");
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("none of backup group vm/999"),
        "{r:#}"
    );
}
