//! Prefetcher tests against an in-memory fake of a reader session: ordering, dedup, memory bound, retry
//! bounds and fault classification, without a network.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::super::error::PbsError;
use super::super::sessions::{BoxFuture, ChunkSession};
use super::*;

fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

fn chunk_data(d: &[u8; 32]) -> Vec<u8> {
    vec![d[0]; 1000 + d[0] as usize]
}

fn refs(ns: &[u8]) -> Vec<ChunkRef> {
    ns.iter()
        .enumerate()
        .map(|(i, n)| ChunkRef {
            digest: digest(*n),
            offset: i as u64 * 4096,
            len: 4096,
        })
        .collect()
}

#[derive(Default)]
struct FakeServer {
    /// Successful serves per digest.
    served: HashMap<[u8; 32], usize>,
    /// Requests started (served or not).
    requests: usize,
    opens: usize,
    /// Sessions die after serving this many chunks...
    drop_after: Option<usize>,
    /// ...only the first session, or all of them.
    drop_every_session: bool,
    /// This many opens fail with a connection error.
    fail_opens: usize,
    /// Opens fail with 403.
    forbid_opens: bool,
    /// Chunks the server cannot read (400).
    bad: HashSet<[u8; 32]>,
    /// Chunks answered with 503.
    busy: HashSet<[u8; 32]>,
}

type Server = Arc<Mutex<FakeServer>>;

#[derive(Clone)]
struct FakeSession {
    server: Server,
    first: bool,
    served: Arc<AtomicUsize>,
    dead: Arc<AtomicBool>,
}

fn connect_error(what: &str) -> PbsError {
    PbsError::Connect {
        server: "fake:8007".into(),
        endpoint: what.into(),
        message: "connection reset".into(),
    }
}

impl ChunkSession for FakeSession {
    fn fetch_chunk(&self, digest: [u8; 32]) -> BoxFuture<'static, Result<Vec<u8>, PbsError>> {
        let s = self.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let mut srv = s.server.lock().unwrap();
            srv.requests += 1;
            if s.dead.load(Ordering::SeqCst) {
                return Err(connect_error("chunk"));
            }
            if srv.bad.contains(&digest) {
                return Err(PbsError::Server {
                    server: "fake:8007".into(),
                    endpoint: "chunk".into(),
                    status: 400,
                    message: "reading file failed: No such file or directory".into(),
                });
            }
            if srv.busy.contains(&digest) {
                return Err(PbsError::Server {
                    server: "fake:8007".into(),
                    endpoint: "chunk".into(),
                    status: 503,
                    message: "busy".into(),
                });
            }
            if let Some(n) = srv.drop_after
                && (s.first || srv.drop_every_session)
                && s.served.load(Ordering::SeqCst) >= n
            {
                s.dead.store(true, Ordering::SeqCst);
                return Err(connect_error("chunk"));
            }
            s.served.fetch_add(1, Ordering::SeqCst);
            *srv.served.entry(digest).or_default() += 1;
            Ok(chunk_data(&digest))
        })
    }
}

fn factory(server: Server) -> impl SessionFactory<Session = FakeSession> {
    move || {
        let server = server.clone();
        async move {
            let mut srv = server.lock().unwrap();
            srv.opens += 1;
            if srv.forbid_opens {
                return Err(PbsError::Forbidden {
                    server: "fake:8007".into(),
                    endpoint: "/api2/json/reader".into(),
                    acl_path: None,
                    message: "permission check failed".into(),
                    advice: "grant".into(),
                });
            }
            if srv.opens <= srv.fail_opens {
                return Err(connect_error("/api2/json/reader"));
            }
            Ok(FakeSession {
                server: server.clone(),
                first: srv.opens == 1,
                served: Arc::default(),
                dead: Arc::default(),
            })
        }
    }
}

fn fast() -> PrefetchOptions {
    PrefetchOptions {
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        ..PrefetchOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn read_all(p: &mut ChunkPrefetcher, chunks: &[ChunkRef]) -> Vec<Result<Vec<u8>, ChunkFault>> {
    chunks.iter().map(|c| p.next_raw(c)).collect()
}

#[test]
fn each_digest_is_fetched_once_and_returned_in_order() {
    let rt = runtime();
    let server = Server::default();
    let chunks = refs(&[1, 2, 1, 3, 0, 0, 0, 2, 4, 0]);
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, fast());
    for c in &chunks {
        assert_eq!(p.next_raw(c).unwrap(), chunk_data(&c.digest));
    }
    let srv = server.lock().unwrap();
    assert_eq!(srv.served.len(), 5);
    assert!(srv.served.values().all(|n| *n == 1), "{:?}", srv.served);
    assert_eq!(srv.opens, 1);
    assert!(
        p.cache.is_empty() && p.cache_bytes == 0,
        "reused data is dropped after its last use"
    );
    let stats = p.stats();
    assert_eq!(
        (stats.chunks_fetched, stats.reconnects, stats.refetched),
        (5, 0, 0)
    );
}

#[test]
fn fetches_ahead_only_within_the_window() {
    let rt = runtime();
    let server = Server::default();
    let chunks = refs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let opts = PrefetchOptions {
        in_flight: 3,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    let requests = || server.lock().unwrap().requests;
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while requests() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for(3);
    assert_eq!(requests(), 3, "three ahead, then wait for the reader");
    p.next_raw(&chunks[0]).unwrap();
    wait_for(4);
    assert_eq!(requests(), 4);
    for c in &chunks[1..] {
        p.next_raw(c).unwrap();
    }
}

#[test]
fn a_dropped_first_session_is_replaced() {
    let rt = runtime();
    let server = Server::default();
    server.lock().unwrap().drop_after = Some(2);
    let chunks = refs(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 0]);
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, fast());
    for c in &chunks {
        assert_eq!(p.next_raw(c).unwrap(), chunk_data(&c.digest));
    }
    let srv = server.lock().unwrap();
    assert_eq!(srv.opens, 2, "one reconnect for all in-flight failures");
    assert!(srv.served.values().all(|n| *n == 1));
    let stats = p.stats();
    assert_eq!(stats.reconnects, 1);
    assert!(stats.retries >= 1);
}

#[test]
fn a_server_that_keeps_dropping_is_given_up_as_unreadable() {
    let rt = runtime();
    let server = Server::default();
    {
        let mut srv = server.lock().unwrap();
        srv.drop_after = Some(2);
        srv.drop_every_session = true;
    }
    let chunks = refs(&(1..=40).collect::<Vec<u8>>());
    let opts = PrefetchOptions {
        max_reconnects: 3,
        refill_after_chunks: 1000,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    let started = Instant::now();
    let results = read_all(&mut p, &chunks);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Four sessions serve at most two chunks each; which ones depends on timing.
    let good = results.iter().take_while(|r| r.is_ok()).count();
    assert!(good <= 8, "{good} chunks before giving up");
    match &results[good] {
        Err(ChunkFault::Unreadable(e)) => {
            assert!(e.to_string().contains("gave up after 3 reconnects"), "{e}");
            assert!(e.to_string().contains("connection reset"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Chunks served before the end are still delivered; everything else is Unreadable.
    assert!(results.iter().filter(|r| r.is_ok()).count() <= 8);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(ChunkFault::Unreadable(_))))
    );
    assert_eq!(server.lock().unwrap().opens, 4);
}

#[test]
fn refills_let_a_long_restore_survive_occasional_drops() {
    let rt = runtime();
    let server = Server::default();
    {
        let mut srv = server.lock().unwrap();
        srv.drop_after = Some(4);
        srv.drop_every_session = true;
    }
    let chunks = refs(&(1..=40).collect::<Vec<u8>>());
    let opts = PrefetchOptions {
        in_flight: 1,
        max_reconnects: 2,
        refill_after_chunks: 3,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    assert!(read_all(&mut p, &chunks).iter().all(Result::is_ok));
    assert_eq!(p.stats().reconnects, 9);
}

#[test]
fn an_unreachable_server_is_unreadable_after_bounded_attempts() {
    let rt = runtime();
    let server = Server::default();
    server.lock().unwrap().fail_opens = usize::MAX;
    let chunks = refs(&[1, 2]);
    let opts = PrefetchOptions {
        max_reconnects: 2,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    match p.next_raw(&chunks[0]) {
        Err(ChunkFault::Unreadable(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
            assert!(
                e.to_string()
                    .contains("/api2/json/reader: connection failed"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.next_raw(&chunks[1]),
        Err(ChunkFault::Unreadable(_))
    ));
    assert_eq!(server.lock().unwrap().opens, 3);
}

#[test]
fn a_permanent_open_failure_is_not_retried() {
    let rt = runtime();
    let server = Server::default();
    server.lock().unwrap().forbid_opens = true;
    let chunks = refs(&[1]);
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, fast());
    match p.next_raw(&chunks[0]) {
        Err(ChunkFault::Unreadable(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert!(e.to_string().contains("permission check failed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.lock().unwrap().opens, 1);
}

#[test]
fn an_unreadable_chunk_on_the_server_is_a_bad_backup() {
    let rt = runtime();
    let server = Server::default();
    server.lock().unwrap().bad.insert(digest(2));
    let chunks = refs(&[1, 2, 3]);
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, fast());
    let r = read_all(&mut p, &chunks);
    assert!(r[0].is_ok() && r[2].is_ok());
    match &r[1] {
        Err(ChunkFault::Bad(m)) => assert!(m.contains("could not read chunk 0202"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.lock().unwrap().opens, 1);
}

#[test]
fn a_chunk_that_keeps_failing_transiently_gives_up_per_chunk() {
    let rt = runtime();
    let server = Server::default();
    server.lock().unwrap().busy.insert(digest(1));
    let chunks = refs(&[1]);
    let opts = PrefetchOptions {
        attempts_per_chunk: 3,
        max_reconnects: 10,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    match p.next_raw(&chunks[0]) {
        Err(ChunkFault::Unreadable(e)) => {
            assert!(e.to_string().contains("gave up after 3 attempts"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.lock().unwrap().requests, 3);
}

#[test]
fn reused_chunks_beyond_the_budget_are_fetched_again() {
    let rt = runtime();
    let server = Server::default();
    let chunks = refs(&[1, 2, 1]);
    let opts = PrefetchOptions {
        reuse_budget: 0,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    for c in &chunks {
        assert_eq!(p.next_raw(c).unwrap(), chunk_data(&c.digest));
    }
    assert_eq!(p.stats().refetched, 1);
    assert_eq!(server.lock().unwrap().served[&digest(1)], 2);
}

#[test]
fn out_of_order_calls_still_return_the_right_bytes() {
    let rt = runtime();
    let server = Server::default();
    let chunks = refs(&[1, 2, 3, 4, 5, 1]);
    let opts = PrefetchOptions {
        in_flight: 2,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    for i in [4, 0, 1, 5, 2, 3] {
        assert_eq!(
            p.next_raw(&chunks[i]).unwrap(),
            chunk_data(&chunks[i].digest),
            "chunk {i}"
        );
    }
    let unknown = ChunkRef {
        digest: digest(99),
        offset: 0,
        len: 1,
    };
    assert!(
        matches!(p.next_raw(&unknown), Err(ChunkFault::Unreadable(e)) if e.kind() == io::ErrorKind::InvalidInput)
    );
}

#[test]
fn an_initial_session_is_used_and_dropping_cancels() {
    let rt = runtime();
    let server = Server::default();
    let initial = FakeSession {
        server: server.clone(),
        first: false,
        served: Arc::default(),
        dead: Arc::default(),
    };
    let chunks = refs(&(1..=50).collect::<Vec<u8>>());
    let opts = PrefetchOptions {
        in_flight: 2,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(
        rt.handle(),
        factory(server.clone()),
        &chunks,
        Some(initial),
        opts,
    );
    p.next_raw(&chunks[0]).unwrap();
    drop(p);
    std::thread::sleep(Duration::from_millis(100));
    let srv = server.lock().unwrap();
    assert_eq!(srv.opens, 0);
    assert!(srv.requests <= 4, "{} requests after drop", srv.requests);
}

#[test]
fn a_shut_down_runtime_is_an_error_not_a_hang() {
    let rt = runtime();
    let server = Server::default();
    let chunks = refs(&(1..=20).collect::<Vec<u8>>());
    let opts = PrefetchOptions {
        in_flight: 1,
        ..fast()
    };
    let mut p = ChunkPrefetcher::start(rt.handle(), factory(server.clone()), &chunks, None, opts);
    p.next_raw(&chunks[0]).unwrap();
    rt.shutdown_timeout(Duration::from_secs(1));
    let r = read_all(&mut p, &chunks[1..]);
    assert!(
        r.iter()
            .skip(2)
            .all(|r| matches!(r, Err(ChunkFault::Unreadable(_))))
    );
}
