//! Against SeaweedFS: it enforces signatures and refuses wrong checksums, so what passes here passed a strict
//! server.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lifeboat_fixtures::noise;
use lifeboat_fixtures::s3::proxy::{Proxy, ProxyOptions};
use lifeboat_fixtures::s3::{SECRET_KEY, Weed};
use lifeboat_s3::checksum::Algorithm;
use lifeboat_s3::{Outcome, S3Error};

use crate::common::{BUCKET, client, client_with, fetch, outcome, runtime, sha256, spec};

fn weed() -> (tempfile::TempDir, Weed) {
    let dir = tempfile::tempdir().unwrap();
    let w = Weed::start(&dir.path().join("weed"));
    w.uploader().create_bucket(BUCKET).unwrap();
    (dir, w)
}

#[test]
fn lists_more_than_1000_objects_across_pages_and_common_prefixes() {
    let (_d, w) = weed();
    let mut items: Vec<(String, Vec<u8>)> = (0..1100)
        .map(|i| (format!("many/obj-{i:05}.dump"), vec![i as u8; 10]))
        .collect();
    items.push(("many/2026-11-21/a.tar".into(), b"x".to_vec()));
    items.push(("other/x".into(), b"y".to_vec()));
    w.uploader().put_many(BUCKET, items, 8).unwrap();
    let rt = runtime();
    let c = client(&w.endpoint());
    let all = rt.block_on(c.list("many/", None, 1_000_000)).unwrap();
    assert_eq!(all.objects.len(), 1101);
    assert!(all.pages >= 2, "pagination followed: {} pages", all.pages);
    let mut keys: Vec<_> = all.objects.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1101, "no object listed twice");
    assert!(
        all.objects
            .iter()
            .all(|o| o.size > 0 && o.last_modified.is_some())
    );
    let top = rt.block_on(c.list("many/", Some("/"), 1_000_000)).unwrap();
    assert_eq!(top.objects.len(), 1100);
    assert_eq!(top.prefixes, vec!["many/2026-11-21/".to_string()]);
    // The bound on listing size holds.
    let err = rt.block_on(c.list("many/", None, 500)).unwrap_err();
    assert!(err.to_string().contains("more than 500 objects"), "{err}");
}

#[test]
fn single_part_object_verifies_sha256_and_etag() {
    let (_d, w) = weed();
    let data = noise(1, 3 << 20);
    w.uploader().put(BUCKET, "db/app.dump", &data).unwrap();
    let rt = runtime();
    let c = client(&w.endpoint());
    let r = fetch(&rt, &c, "db/app.dump").unwrap();
    assert_eq!(r.bytes, data.len() as u64);
    assert_eq!(r.sha256, sha256(&data));
    assert_eq!(outcome(&r, "sha256"), Outcome::Match);
    assert_eq!(outcome(&r, "etag"), Outcome::Match);
    assert_eq!(r.resumes, 0);
}

#[test]
fn multipart_object_verifies_etag_and_composite_checksums() {
    let (_d, w) = weed();
    let parts = vec![noise(2, 5 << 20), noise(3, 5 << 20), noise(4, 1234)];
    let up = w.uploader();
    up.multipart(BUCKET, "mp-sha", &parts, Some(Algorithm::Sha256))
        .unwrap();
    up.multipart(BUCKET, "mp-crc", &parts, Some(Algorithm::Crc32c))
        .unwrap();
    let rt = runtime();
    let c = client(&w.endpoint());
    let s = spec(&rt, &c, "mp-sha").unwrap();
    let layout = s
        .layout
        .clone()
        .expect("part sizes learned with HEAD ?partNumber=");
    assert_eq!(layout.sizes, vec![5 << 20, 5 << 20, 1234]);
    let r = c.download(rt.handle(), s).finish().unwrap();
    assert_eq!(r.sha256, sha256(&parts.concat()));
    assert_eq!(
        outcome(&r, "etag"),
        Outcome::Match,
        "{:#?}",
        r.verifications
    );
    assert_eq!(
        outcome(&r, "sha256"),
        Outcome::Match,
        "{:#?}",
        r.verifications
    );
    let v = r
        .verifications
        .iter()
        .find(|v| v.method == "sha256")
        .unwrap();
    assert!(
        v.expected.contains("-3") && v.expected.contains("composite"),
        "{v:?}"
    );
    let r = fetch(&rt, &c, "mp-crc").unwrap();
    assert_eq!(
        outcome(&r, "crc32c"),
        Outcome::Match,
        "{:#?}",
        r.verifications
    );
    assert_eq!(outcome(&r, "etag"), Outcome::Match);
}

#[test]
fn dropped_connections_resume_from_the_last_byte_received() {
    let (_d, w) = weed();
    let data = noise(5, 8 << 20);
    w.uploader().put(BUCKET, "big.img", &data).unwrap();
    let proxy = Proxy::start(ProxyOptions {
        upstream: format!("127.0.0.1:{}", w.port()).parse().unwrap(),
        cut_after: Some(1 << 20),
        cuts: 3,
        rate: None,
    })
    .unwrap();
    let rt = runtime();
    let c = client(&proxy.endpoint());
    let r = fetch(&rt, &c, "big.img").unwrap();
    assert_eq!(r.sha256, sha256(&data), "the resumed stream is the object");
    assert_eq!(outcome(&r, "sha256"), Outcome::Match);
    assert_eq!(r.resumes, 3, "{r:?}");
    let ranges = proxy.ranges();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    let starts: Vec<u64> = ranges
        .iter()
        .map(|r| {
            r.trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        starts[0] > 0 && starts.windows(2).all(|w| w[1] > w[0]),
        "{starts:?}"
    );
    // Nothing was downloaded twice: about the object plus three response headers.
    let down = proxy.stats.bytes_down.load(Ordering::Relaxed);
    assert!(
        down < data.len() as u64 + 64 * 1024,
        "{down} bytes through the proxy"
    );
}

#[test]
fn server_killed_and_restarted_mid_download_resumes() {
    let (_d, mut w) = weed();
    let data = noise(6, 16 << 20);
    w.uploader().put(BUCKET, "vm.img", &data).unwrap();
    let port = w.port();
    let proxy = Proxy::start(ProxyOptions {
        upstream: format!("127.0.0.1:{port}").parse().unwrap(),
        cut_after: None,
        cuts: 0,
        rate: Some(4 << 20),
    })
    .unwrap();
    let rt = runtime();
    let c = client(&proxy.endpoint());
    let s = spec(&rt, &c, "vm.img").unwrap();
    let mut dl = c.download(rt.handle(), s);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut killed = false;
    loop {
        let n = dl.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if !killed && got.len() > 4 << 20 {
            w.kill9();
            killed = true;
            std::thread::sleep(Duration::from_millis(500));
            w.restart();
        }
    }
    let r = dl.finish().unwrap();
    assert!(killed);
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    assert_eq!(outcome(&r, "sha256"), Outcome::Match);
    assert!(r.resumes >= 1, "{r:?}");
    let ranges = proxy.ranges();
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "resumed with a ranged GET: {ranges:?}"
    );
}

#[test]
fn wrong_secret_is_an_auth_error_naming_endpoint_and_bucket() {
    let (_d, w) = weed();
    let rt = runtime();
    let c = client_with(&w.endpoint(), BUCKET, "not-the-secret", 3);
    let t = Instant::now();
    let err = rt.block_on(c.list("", None, 10)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "not retried");
    assert!(matches!(err, S3Error::Auth { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains(&w.endpoint()) && msg.contains(BUCKET), "{msg}");
    assert!(msg.contains("SignatureDoesNotMatch"), "{msg}");
    assert!(
        !msg.contains("not-the-secret") && !format!("{err:?} {c:?}").contains("not-the-secret")
    );
    assert!(!msg.contains(SECRET_KEY));
}

#[test]
fn missing_bucket_and_key() {
    let (_d, w) = weed();
    let rt = runtime();
    let c = client_with(&w.endpoint(), "no-such-bucket", SECRET_KEY, 3);
    let err = rt.block_on(c.list("", None, 10)).unwrap_err();
    assert!(matches!(err, S3Error::NoSuchBucket { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-bucket") && err.to_string().contains(&w.endpoint()));
    let c = client(&w.endpoint());
    let err = rt.block_on(c.head("nothing-here", None)).unwrap_err();
    assert!(matches!(err, S3Error::NoSuchKey { .. }), "{err:?}");
    assert_eq!(rt.block_on(c.get_small("nothing-here", 100)).unwrap(), None);
}

#[test]
fn object_replaced_after_head_is_detected_not_spliced() {
    let (_d, w) = weed();
    let up = w.uploader();
    up.put(BUCKET, "app.tar", &noise(7, 100_000)).unwrap();
    let rt = runtime();
    let c = client(&w.endpoint());
    let s = spec(&rt, &c, "app.tar").unwrap();
    up.put(BUCKET, "app.tar", &noise(8, 100_000)).unwrap();
    let err = c.download(rt.handle(), s).finish().unwrap_err();
    assert!(matches!(err, S3Error::Changed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("changed while it was read"),
        "{err}"
    );
}

#[test]
fn unreachable_endpoint_fails_after_bounded_retries() {
    let port = lifeboat_fixtures::s3::free_ports(1)[0];
    let rt = runtime();
    let c = client_with(&format!("http://127.0.0.1:{port}"), BUCKET, SECRET_KEY, 2);
    let t = Instant::now();
    let err = rt.block_on(c.list("", None, 10)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    match &err {
        S3Error::Unreachable { attempts, .. } => assert_eq!(*attempts, 3),
        e => panic!("{e:?}"),
    }
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(c.stats().requests.load(Ordering::Relaxed), 3);
}

/// SIGTERM while the bucket is down: the reader gives up within the poll interval, not after the retries.
#[test]
fn a_cancelled_download_stops_at_once_even_while_retrying() {
    let (_d, mut w) = weed();
    let data = noise(8, 16 << 20);
    w.uploader().put(BUCKET, "db.dump", &data).unwrap();
    let proxy = Proxy::start(ProxyOptions {
        upstream: format!("127.0.0.1:{}", w.port()).parse().unwrap(),
        cut_after: None,
        cuts: 0,
        rate: Some(2 << 20),
    })
    .unwrap();
    let rt = runtime();
    // Retries that would take minutes against a dead server.
    let c = client_with(&proxy.endpoint(), BUCKET, SECRET_KEY, 1000);
    let s = spec(&rt, &c, "db.dump").unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut dl = c.download_cancellable(rt.handle(), s, flag.clone());
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 1 << 20 {
        got += dl.read(&mut buf).unwrap();
    }
    w.kill9();
    // Drain what was buffered; then the reader waits on a task that retries.
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    flag.store(true, Ordering::Relaxed);
    let err = loop {
        match dl.read(&mut buf) {
            Ok(0) => panic!("the download ended although the server is dead"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "gave up after {:?}",
        t.elapsed()
    );
}
