//! `extract_pxar` through a real `RestoreSink` into a temporary folder.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::encoder::{encode, file, hardlink};
use super::support::{expected, vectors_dir};
use crate::extract::sink::{SinkOptions, SinkSummary};
use crate::extract::{Limits, Progress, RestoreError, RestoreSink, SourceReader, SourceState};
use crate::pbs::pxar::{PxarFacts, PxarStream, extract_pxar};

struct Restore {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    result: Result<(PxarFacts, SinkSummary), RestoreError>,
}

/// Restores `meta` (+ `payload`) through a sink built as `RestoreRequest::sink` builds it.
fn restore_streams(
    name: &str,
    meta: impl io::Read,
    payload: Option<impl io::Read>,
    state: Arc<SourceState>,
) -> Restore {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("restore");
    let evidence = tmp.path().join("evidence");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&evidence).unwrap();
    let mut sink = RestoreSink::new(SinkOptions {
        root: root.clone(),
        evidence_dir: evidence,
        limits: Limits::default(),
        progress: Arc::new(Progress::default()),
        cancel: Arc::new(AtomicBool::new(false)),
        source: state.clone(),
    })
    .unwrap();
    let stream = PxarStream {
        archive: name,
        source_path: Path::new(name),
        source: &state,
    };
    let result = extract_pxar(meta, payload, &mut sink, &stream)
        .and_then(|facts| sink.finish().map(|s| (facts, s)));
    Restore {
        _tmp: tmp,
        root,
        result,
    }
}

fn restore_vector(meta: &str, payload: Option<&str>) -> Restore {
    let state = Arc::new(SourceState::default());
    let open = |n: &str| {
        SourceReader::new(
            File::open(vectors_dir().join(n)).unwrap(),
            state.clone(),
            false,
        )
    };
    restore_streams(meta, open(meta), payload.map(open), state.clone())
}

pub fn restore_bytes(meta: &[u8], payload: Option<&[u8]>) -> Result<PxarFacts, RestoreError> {
    let state = Arc::new(SourceState::default());
    restore_streams("test.pxar", meta, payload, state)
        .result
        .map(|(f, _)| f)
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

fn check_tree(r: &Restore, version: u8) {
    let (facts, summary) = r.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(facts.format_version, version);
    assert_eq!(facts.entries, 54);
    assert!(facts.goodbye_verified);
    assert_eq!(facts.goodbye_tables, facts.dirs);
    assert_eq!(facts.hardlinks, 1);
    let exp = expected();
    let entries = exp["archives"][0]["entries"].as_array().unwrap();
    let mut files = 0;
    for w in entries {
        let path = w["path"].as_str().unwrap();
        let full = r.root.join(path);
        match w["type"].as_str().unwrap() {
            "file" => {
                files += 1;
                assert_eq!(sha256_file(&full), w["sha256"].as_str().unwrap(), "{path}");
                let m = fs::symlink_metadata(&full).unwrap();
                assert!(m.file_type().is_file());
                assert_eq!(m.mode() & 0o6000, 0, "{path}: setuid/setgid dropped");
            }
            "dir" => assert!(fs::symlink_metadata(&full).unwrap().is_dir(), "{path}"),
            "symlink" => {
                let t = fs::read_link(&full).unwrap();
                assert_eq!(t.as_os_str(), w["target"].as_str().unwrap(), "{path}");
            }
            "hardlink" => {
                let target = r.root.join(w["target"].as_str().unwrap());
                assert_eq!(
                    fs::metadata(&full).unwrap().ino(),
                    fs::metadata(&target).unwrap().ino()
                );
            }
            "fifo" | "socket" | "device" => {
                assert!(
                    fs::symlink_metadata(&full).is_err(),
                    "{path} must not be created"
                );
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(summary.stats.files, files);
    assert_eq!(facts.files, files);
    assert_eq!(summary.stats.symlinks, 2);
    assert_eq!(summary.stats.hardlinks, 1);
    assert_eq!(summary.stats.special_files, 4);
    assert_eq!(summary.stats.setid_dropped, 1);
    let exec = fs::metadata(r.root.join("exec.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(exec & 0o777, 0o755);
    let specials = fs::read_to_string(&summary.specials_path).unwrap();
    for line in [
        "fifo not created: fifo",
        "socket not created: socket",
        "character device not created: dev-chr-null",
        "block device not created: dev-blk-sda1",
        "setuid bit dropped: setuid-bin",
    ] {
        assert!(specials.contains(line), "{line} in {specials}");
    }
    let manifest = fs::read_to_string(&summary.manifest_path).unwrap();
    assert!(manifest.contains("  links/hardlink.txt\n"));
    assert_eq!(
        manifest.lines().count() as u64,
        files + 1,
        "files and the hardlink"
    );
}

#[test]
fn unified_tree_restores_safely() {
    check_tree(&restore_vector("tree.pxar", None), 1);
}

#[test]
fn split_tree_restores_safely() {
    check_tree(&restore_vector("tree.mpxar", Some("tree.ppxar")), 2);
    let r = restore_vector("tree-prelude.mpxar", Some("tree-prelude.ppxar"));
    let (facts, _) = r.result.as_ref().unwrap();
    assert_eq!(facts.prelude_bytes, Some(65));
}

#[test]
fn extras_restore_and_count() {
    let r = restore_vector("extras.pxar", None);
    let (facts, summary) = r.result.as_ref().unwrap();
    assert_eq!((facts.entries, facts.files, facts.dirs), (6, 4, 2));
    assert_eq!(summary.stats.files, 4);
    assert_eq!(
        fs::read(r.root.join("quota.txt")).unwrap(),
        b"file with quota project id 4242\n"
    );
}

#[test]
fn unsafe_names_fail_as_unsafe() {
    for name in [&b".."[..], b"a/b", b"../x", b"."] {
        for split in [false, true] {
            let enc = encode(&[file(name, b"x")], split);
            let err = restore_bytes(&enc.archive, enc.payload.as_deref()).unwrap_err();
            assert!(
                matches!(err, RestoreError::Unsafe { .. }),
                "{:?}: {err}",
                String::from_utf8_lossy(name)
            );
        }
    }
    // a hardlink whose target leaves the tree
    let enc = encode(
        &[file(b"a", b"x"), hardlink(b"h", b"../../etc/passwd")],
        false,
    );
    let err = restore_bytes(&enc.archive, None).unwrap_err();
    assert!(matches!(err, RestoreError::Unsafe { .. }), "{err}");
}

#[test]
fn corruption_is_reported_with_archive_and_offset() {
    let mut meta = fs::read(vectors_dir().join("extras.pxar")).unwrap();
    let n = meta.len();
    meta[n - 40] ^= 0x01; // inside the root goodbye table
    let err = restore_bytes(&meta, None).unwrap_err();
    match &err {
        RestoreError::Corrupt {
            context, offset, ..
        } => {
            assert!(context.contains("test.pxar"), "{context}");
            assert!(offset.starts_with("byte "), "{offset}");
        }
        other => panic!("{other}"),
    }
    assert!(err.is_backup_fault());
    // truncated inside a file's contents: the sink's read error is classified the same way
    let tree = fs::read(vectors_dir().join("tree.pxar")).unwrap();
    let err = restore_bytes(&tree[..100_000], None).unwrap_err();
    match &err {
        RestoreError::Corrupt { detail, .. } => {
            assert!(detail.contains("big-random.bin"), "{detail}");
        }
        other => panic!("{other}"),
    }
}

/// A source that fails (disk error) is `error`, not `failed`.
#[test]
fn source_failure_is_source_io() {
    struct Failing(Vec<u8>, usize);
    impl io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= 5000 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(5000 - self.1).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let state = Arc::new(SourceState::default());
    let data = fs::read(vectors_dir().join("tree.pxar")).unwrap();
    let src = SourceReader::new(Failing(data, 0), state.clone(), false);
    let r = restore_streams("tree.pxar", src, None::<io::Empty>, state);
    let err = r.result.err().unwrap();
    assert!(matches!(err, RestoreError::SourceIo { .. }), "{err}");
    assert!(!err.is_backup_fault());
}
