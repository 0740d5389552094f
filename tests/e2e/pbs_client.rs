//! The native PBS client (`lifeboat_drills::pbs::client`) against the PBS-compatible test server of
//! `lifeboat-fixtures`: token auth, fingerprint pinning, ACL advice, the reader protocol and the chunk
//! prefetcher's dedup and retry bounds, over real TLS and HTTP/2 on loopback.

use std::path::Path;
use std::time::Duration;

use lifeboat_drills::pbs::blob::verify_chunk;
use lifeboat_drills::pbs::chunks::{ChunkFault, ChunkRef};
use lifeboat_drills::pbs::client::{
    ChunkPrefetcher, PbsClient, PbsError, PrefetchOptions, PrefetchStats, Repository,
    SnapshotSessions, TaskQuery, Trust,
};
use lifeboat_drills::pbs::crypt::{Fingerprint, sha256};
use lifeboat_drills::pbs::datastore::{chunk_path, parse_snapshot_time};
use lifeboat_drills::pbs::index::FixedIndex;
use lifeboat_drills::pbs::manifest::Manifest;
use lifeboat_fixtures::pbs::{Datastore, vm_snapshot};
use lifeboat_fixtures::pbs_server::{
    Faults, Role, Running, ServerConfig, Task, Token, start, task_upid,
};

const READER: &str = "drill@pbs!lifeboat";
const SECRET: &str = "5ecret:with%odd&chars";
const AUDITOR: &str = "audit@pbs!watch";
const AUDITOR_SECRET: &str = "audit-secret";
const IMAGE: &str = "drive-scsi0.img.fidx";

struct Pbs {
    _dir: tempfile::TempDir,
    store_dir: std::path::PathBuf,
    server: Running,
    /// `vm/101` taken 2 h ago (newest finished).
    vm_time: i64,
    /// Its image chunks in index order.
    vm_digests: Vec<[u8; 32]>,
    /// `vm/102`: an image of 32 distinct 64 KiB chunks.
    big_time: i64,
}

fn snapshot_time(dir: &Path) -> i64 {
    parse_snapshot_time(dir.file_name().unwrap().to_str().unwrap())
        .unwrap()
        .as_second()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn pbs(faults: Faults) -> Pbs {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store1");
    let store = Datastore::create(&store_dir).unwrap();
    vm_snapshot(&store, None, "101", 30.0, None);
    let (vm_dir, vm_digests) = vm_snapshot(&store, None, "101", 2.0, None);
    // An unfinished snapshot (no manifest) newer than every finished one.
    let mut running = store.snapshot(None, "vm", "101", now() - 60, None);
    running.blob("qemu-server.conf.blob", b"cores: 1\n");
    drop(running);
    let big_time = now() - 3600;
    let mut big = store.snapshot(None, "vm", "102", big_time, None);
    big.blob("qemu-server.conf.blob", b"cores: 2\n");
    big.fixed(IMAGE, &lifeboat_fixtures::noise(42, 2 << 20), 64 << 10);
    big.finish();

    let failed_start = now() - 7200;
    let tasks = vec![
        Task {
            upid: task_upid("backup", "store1:vm/101", failed_start, "root@pam"),
            worker_type: "backup".into(),
            worker_id: Some("store1:vm/101".into()),
            starttime: failed_start,
            endtime: Some(failed_start + 30),
            status: Some("backup ended but finished flag is not set".into()),
            user: "root@pam".into(),
            log: vec![
                "starting new backup on datastore 'store1'".into(),
                "upload_chunk failed: connection reset".into(),
                "TASK ERROR: backup ended but finished flag is not set".into(),
            ],
        },
        Task {
            upid: task_upid("backup", "store1:vm/101", failed_start + 600, "root@pam"),
            worker_type: "backup".into(),
            worker_id: Some("store1:vm/101".into()),
            starttime: failed_start + 600,
            endtime: Some(failed_start + 700),
            status: Some("OK".into()),
            user: "root@pam".into(),
            log: vec!["TASK OK".into()],
        },
    ];
    let server = start(ServerConfig {
        datastores: vec![("store1".into(), store_dir.clone())],
        tokens: vec![
            Token {
                id: READER.into(),
                secret: SECRET.into(),
                acl: vec![
                    ("/datastore/store1".into(), Role::DatastoreReader),
                    ("/system/tasks".into(), Role::Audit),
                ],
            },
            Token {
                id: AUDITOR.into(),
                secret: AUDITOR_SECRET.into(),
                acl: vec![("/datastore/store1".into(), Role::DatastoreAudit)],
            },
        ],
        tasks,
        faults,
    })
    .unwrap();
    Pbs {
        _dir: dir,
        store_dir,
        server,
        vm_time: snapshot_time(&vm_dir),
        vm_digests,
        big_time,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn repo(pbs: &Pbs, token: &str) -> Repository {
    format!("{token}@127.0.0.1:{}:store1", pbs.server.port())
        .parse()
        .unwrap()
}

fn pin(pbs: &Pbs) -> Trust {
    Trust::Fingerprint(pbs.server.fingerprint.parse().unwrap())
}

fn client(pbs: &Pbs) -> PbsClient {
    PbsClient::new(&repo(pbs, READER), SECRET, pin(pbs)).unwrap()
}

fn image_chunks(index: &FixedIndex) -> Vec<ChunkRef> {
    index
        .chunks()
        .map(|c| ChunkRef {
            digest: c.digest,
            offset: c.offset,
            len: c.length,
        })
        .collect()
}

fn fast(max_reconnects: u32) -> PrefetchOptions {
    PrefetchOptions {
        max_reconnects,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..PrefetchOptions::default()
    }
}

#[test]
fn token_lists_version_snapshots_and_failed_backups() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let c = client(&pbs);
    rt.block_on(async {
        assert!(!c.version().await.unwrap().version.is_empty());
        let stores = c.datastores().await.unwrap();
        assert!(stores.iter().any(|s| s.store == "store1"), "{stores:?}");
        let groups = c.groups("store1", None).await.unwrap();
        assert_eq!(groups.len(), 2, "{groups:?}");

        let all = c
            .snapshots("store1", None, Some(("vm", "101")))
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all.iter().filter(|s| s.is_finished()).count(), 2);
        let newest = c.newest_finished_snapshots("store1", None).await.unwrap();
        assert_eq!(newest.keys().collect::<Vec<_>>(), ["vm/101", "vm/102"]);
        let vm = &newest["vm/101"];
        assert_eq!(
            vm.backup_time, pbs.vm_time,
            "the unfinished newer snapshot is skipped"
        );
        assert!(
            vm.files
                .iter()
                .any(|f| f.filename == IMAGE && f.size == Some(24 << 20))
        );
        assert!(vm.size.is_some());

        let files = c
            .files("store1", None, "vm", "101", pbs.vm_time)
            .await
            .unwrap();
        assert!(
            files.iter().any(|f| f.filename == "index.json.blob"),
            "{files:?}"
        );

        let failed = c
            .failed_backup_tasks("store1", now() - 86_400)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        let (task, lines) = &failed[0];
        assert_eq!(task.worker_type, "backup");
        assert_eq!(
            lines,
            &[
                "upload_chunk failed: connection reset",
                "TASK ERROR: backup ended but finished flag is not set"
            ]
        );
        let status = c.task_status(&task.upid).await.unwrap();
        assert_eq!(status.outcome(), Some(false));
    });
}

#[test]
fn a_wrong_fingerprint_names_the_presented_one() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let wrong = Fingerprint([0x5a; 32]);
    let c = PbsClient::new(&repo(&pbs, READER), SECRET, Trust::Fingerprint(wrong)).unwrap();
    let err = rt.block_on(c.version()).unwrap_err();
    match &err {
        PbsError::FingerprintMismatch {
            presented,
            expected,
            ..
        } => {
            assert_eq!(presented.to_string(), pbs.server.fingerprint);
            assert_eq!(*expected, wrong);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&pbs.server.fingerprint) && text.contains(&wrong.to_string()),
        "{text}"
    );
    assert!(text.contains("PBS_FINGERPRINT"), "{text}");
    assert!(!err.is_transient());
    // Normal CA validation refuses the self-signed certificate.
    let c = PbsClient::new(&repo(&pbs, READER), SECRET, Trust::System).unwrap();
    let err = rt.block_on(c.version()).unwrap_err();
    assert!(matches!(err, PbsError::Tls { .. }), "{err:?}");
}

#[test]
fn a_wrong_secret_is_unauthorized() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let c = PbsClient::new(&repo(&pbs, READER), "not-the-secret", pin(&pbs)).unwrap();
    let err = rt.block_on(c.snapshots("store1", None, None)).unwrap_err();
    assert!(matches!(err, PbsError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(READER) && text.contains("password_file"),
        "{text}"
    );
}

#[test]
fn an_audit_only_token_is_told_which_role_to_grant_for_reading() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let c = PbsClient::new(&repo(&pbs, AUDITOR), AUDITOR_SECRET, pin(&pbs)).unwrap();
    rt.block_on(async {
        // Listing works with Datastore.Audit...
        assert_eq!(c.snapshots("store1", None, None).await.unwrap().len(), 4);
        // ...reading does not.
        let err = c.reader("store1", None, "vm", "101", pbs.vm_time).await.unwrap_err();
        match &err {
            PbsError::Forbidden { acl_path, advice, .. } => {
                assert_eq!(acl_path.as_deref(), Some("/datastore/store1"));
                assert!(advice.contains("Datastore.Read"), "{advice}");
                assert!(
                    advice.contains("grant role DatastoreReader on /datastore/store1 (for both the user and the token"),
                    "{advice}"
                );
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_reader_session_downloads_manifest_index_and_chunks() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let c = client(&pbs);
    rt.block_on(async {
        let s = c
            .reader("store1", None, "vm", "101", pbs.vm_time)
            .await
            .unwrap();
        // A chunk before its index is refused, clearly.
        let err = s.chunk(&pbs.vm_digests[0]).await.unwrap_err();
        assert!(matches!(err, PbsError::ChunkNotAllowed { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("download the archive's index first"),
            "{err}"
        );

        let manifest = Manifest::from_blob(&s.download("index.json.blob").await.unwrap()).unwrap();
        let entry = manifest.file(IMAGE).unwrap().clone();
        let raw_index = s.download(IMAGE).await.unwrap();
        let index = FixedIndex::parse(IMAGE, &raw_index).unwrap();
        assert_eq!(index.size(), entry.size);
        assert_eq!(index.digests(), &pbs.vm_digests[..]);
        assert!(matches!(
            s.download("missing.blob").await,
            Err(PbsError::NotFound { .. })
        ));

        // All chunks at once on the one connection.
        let fetches: Vec<_> = image_chunks(&index)
            .into_iter()
            .map(|c| {
                let s = s.clone();
                tokio::spawn(async move { (c, s.chunk(&c.digest).await) })
            })
            .collect();
        for f in fetches {
            let (c, raw) = f.await.unwrap();
            let data = verify_chunk(&raw.unwrap(), &c.digest, c.len, None, false).unwrap();
            assert_eq!(data.len() as u64, c.len);
        }
    });
}

/// Verified chunk data (or the fault) per index entry, the index entries, and the prefetcher's counters.
type Prefetched = (
    Vec<Result<Vec<u8>, ChunkFault>>,
    Vec<ChunkRef>,
    PrefetchStats,
);

/// Runs a prefetcher over the image of `vm/{id}` from a plain thread, as the drill engine does.
fn prefetch_image(
    pbs: &Pbs,
    rt: &tokio::runtime::Runtime,
    id: &str,
    time: i64,
    options: PrefetchOptions,
) -> Prefetched {
    let c = client(pbs);
    // The session that downloaded the index serves the first chunks, as in a drill.
    let (session, index, raw_index) = rt.block_on(async {
        let s = c.reader("store1", None, "vm", id, time).await.unwrap();
        let raw = s.download(IMAGE).await.unwrap();
        (s, FixedIndex::parse(IMAGE, &raw).unwrap(), raw)
    });
    let chunks = image_chunks(&index);
    let sessions = SnapshotSessions::new(c, "store1", None, "vm", id, time)
        .index(IMAGE, Some(sha256(&raw_index)));
    let handle = rt.handle().clone();
    let list = chunks.clone();
    std::thread::spawn(move || {
        let mut p = ChunkPrefetcher::start(&handle, sessions, &list, Some(session), options);
        let results: Vec<_> = list
            .iter()
            .map(|c| {
                p.next_raw(c)
                    .map(|raw| verify_chunk(&raw, &c.digest, c.len, None, false).unwrap())
            })
            .collect();
        (results, list, p.stats())
    })
    .join()
    .unwrap()
}

#[test]
fn the_prefetcher_fetches_each_distinct_chunk_once() {
    let pbs = pbs(Faults::default());
    let rt = runtime();
    let (results, chunks, stats) = prefetch_image(&pbs, &rt, "101", pbs.vm_time, fast(3));
    assert!(results.iter().all(Result::is_ok));
    let mut distinct = chunks.iter().map(|c| c.digest).collect::<Vec<_>>();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() < chunks.len(),
        "the image repeats the zero chunk"
    );
    assert_eq!(pbs.server.stats().chunks_served, distinct.len() as u64);
    assert_eq!(stats.chunks_fetched, distinct.len() as u64);
    assert_eq!((stats.reconnects, stats.refetched), (0, 0));

    // Dropping the prefetcher closed its session cleanly: the server's reader task ended normally, so no
    // shared lock on the snapshot is left behind.
    let c = client(&pbs);
    let reader_tasks = TaskQuery {
        typefilter: Some("reader".into()),
        limit: Some(0),
        ..TaskQuery::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let tasks = loop {
        let tasks = rt.block_on(c.tasks(&reader_tasks)).unwrap();
        if tasks.iter().all(|t| !t.is_running()) || std::time::Instant::now() > deadline {
            break tasks;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(tasks[0].succeeded(), "{tasks:?}");
    let log = rt.block_on(c.task_log(&tasks[0].upid)).unwrap();
    assert!(
        log.iter()
            .any(|l| l.t.contains("reader finished successfully")),
        "{log:?}"
    );
}

#[test]
fn the_prefetcher_reconnects_after_a_dropped_session() {
    let pbs = pbs(Faults {
        drop_after_chunks: Some(2),
        drop_only_first_session: true,
        ..Faults::default()
    });
    let rt = runtime();
    let (results, chunks, stats) = prefetch_image(&pbs, &rt, "102", pbs.big_time, fast(3));
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(chunks.len(), 32);
    assert_eq!(stats.reconnects, 1);
    let server = pbs.server.stats();
    // The dropped session and its replacement.
    assert_eq!(server.reader_sessions, 2);
    // Chunks answered just before the drop may be lost in flight and fetched again.
    assert!(
        (32..=34).contains(&server.chunks_served),
        "{} chunks served",
        server.chunks_served
    );
}

#[test]
fn the_prefetcher_gives_up_when_every_session_drops() {
    let pbs = pbs(Faults {
        drop_after_chunks: Some(2),
        drop_only_first_session: false,
        ..Faults::default()
    });
    let rt = runtime();
    let started = std::time::Instant::now();
    let (results, _, stats) = prefetch_image(&pbs, &rt, "102", pbs.big_time, fast(3));
    assert!(started.elapsed() < Duration::from_secs(30));
    let first_error = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("an error");
    match first_error {
        ChunkFault::Unreadable(e) => {
            let text = e.to_string();
            assert!(text.contains("gave up after 3 reconnects"), "{text}");
            assert!(
                text.contains(&format!("127.0.0.1:{}", pbs.server.port())),
                "{text}"
            );
        }
        other => panic!("expected Unreadable (an error, not a bad backup): {other:?}"),
    }
    assert!(
        results
            .iter()
            .all(|r| !matches!(r, Err(ChunkFault::Bad(_))))
    );
    assert!(results.iter().filter(|r| r.is_ok()).count() <= 8);
    assert_eq!(stats.reconnects, 3);
    // The first session and three reconnects.
    assert_eq!(pbs.server.stats().reader_sessions, 4);
}

#[test]
fn a_chunk_missing_on_the_server_is_a_bad_backup_not_an_error() {
    let pbs = pbs(Faults::default());
    let missing = pbs.vm_digests[1];
    std::fs::remove_file(chunk_path(&pbs.store_dir, &missing)).unwrap();
    let rt = runtime();
    let (results, chunks, stats) = prefetch_image(&pbs, &rt, "101", pbs.vm_time, fast(3));
    for (r, c) in results.iter().zip(&chunks) {
        match r {
            Err(ChunkFault::Bad(m)) if c.digest == missing => {
                assert!(m.contains(&hex::encode(missing)), "{m}")
            }
            Ok(_) if c.digest != missing => {}
            other => panic!("chunk {}: {other:?}", hex::encode(c.digest)),
        }
    }
    assert_eq!(stats.reconnects, 0, "a bad chunk is not retried");
}
