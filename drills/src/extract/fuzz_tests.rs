//! Mutation tests for archive extraction: thousands of damaged archives go through the real local-source
//! restore; none may panic, none may write outside the restore folder, and every failure must be a backup
//! fault (`failed`), never an `error`, because the source itself is healthy.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::extract::{Limits, Progress};
use crate::model::{Snapshot, SnapshotKind, TimeSource};
use crate::source::local::{LocalConfig, LocalSource};
use crate::source::{RestoreRequest, Source};

fn archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("etc/app.conf", b"listen = 8080\n", 0o644);
    add(
        "data/blob.bin",
        &(0..3000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
        0o600,
    );
    add(
        "SHA256SUMS",
        b"0000000000000000000000000000000000000000000000000000000000000000  etc/app.conf\n",
        0o644,
    );
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_cksum();
    b.append_link(&mut h, "link", "etc/app.conf").unwrap();
    b.into_inner().unwrap()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = base.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
        }
        1 => m.truncate(rng.below(m.len())),
        2 => {
            let i = rng.below(m.len());
            let v = [0u8, 0xff, b'.', b'/', b'0', b'7'][rng.below(6)];
            let n = 1 + rng.below(16);
            for b in m.iter_mut().skip(i).take(n) {
                *b = v;
            }
        }
        _ => {
            let i = rng.below(m.len());
            let junk: Vec<u8> = (0..1 + rng.below(600)).map(|_| rng.next() as u8).collect();
            m.splice(i..i, junk);
        }
    }
    m
}

fn run_case(dir: &Path, name: &str, bytes: &[u8]) {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join(name), bytes).unwrap();
    let root = dir.join("out/restore");
    let evidence = dir.join("evidence");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&evidence).unwrap();
    let source = LocalSource::new(
        &LocalConfig {
            path: src.clone(),
            glob: None,
        },
        jiff::tz::TimeZone::UTC,
    );
    let snap = Snapshot {
        id: name.to_string(),
        time: jiff::Timestamp::now(),
        time_source: TimeSource::Mtime,
        size: Some(bytes.len() as u64),
        kind: if name.ends_with(".gz") {
            SnapshotKind::TarGz
        } else if name.ends_with(".zst") {
            SnapshotKind::TarZst
        } else {
            SnapshotKind::Tar
        },
        details: None,
    };
    let req = RestoreRequest {
        root: root.clone(),
        evidence_dir: evidence,
        limits: Limits {
            ratio_floor: 1 << 20,
            ..Limits::default()
        },
        progress: Arc::new(Progress::default()),
        cancel: Arc::default(),
        archives: vec![],
    };
    if let Err(e) = source.restore(&snap, &req) {
        assert!(
            e.is_backup_fault(),
            "a damaged archive must be `failed`, not `error`: {e}"
        );
    }
    // Nothing outside the restore folder: the sandbox holds only what the test created.
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["evidence", "out", "src"],
        "something was written outside the restore folder"
    );
    let out: Vec<_> = fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(out.len(), 1, "only restore/ under the run folder: {out:?}");
    fs::remove_dir_all(dir.join("out")).unwrap();
    fs::remove_dir_all(&src).unwrap();
}

#[test]
fn damaged_tar_tar_gz_and_tar_zst_never_panic_nor_escape() {
    let base = archive();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&base).unwrap();
    let base_gz = gz.finish().unwrap();
    let base_zst = zstd::stream::encode_all(&base[..], 3).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The undamaged archive restores (its SHA256SUMS line is wrong on purpose, which is a check, not a restore error).
    run_case(tmp.path(), "ok.tar", &base);
    for i in 0..600 {
        let (name, src) = match i % 3 {
            0 => ("case.tar.gz", &base_gz),
            1 => ("case.tar.zst", &base_zst),
            _ => ("case.tar", &base),
        };
        run_case(tmp.path(), name, &mutate(src, &mut rng));
    }
}
