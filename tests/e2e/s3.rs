//! Drills on S3 buckets (`type = "s3"`) against real servers the tests start: SeaweedFS (signatures and
//! checksums enforced) and moto (stores a checksum header as given, so a stored SHA-256 can disagree with
//! the bytes). Each fault of the issue has its own test: the verdict and what the message names.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lifeboat_fixtures as fx;
use lifeboat_fixtures::s3::proxy::{Proxy, ProxyOptions};
use lifeboat_fixtures::s3::{ACCESS_KEY, Moto, SECRET_KEY, Uploader, Weed};
use lifeboat_s3::checksum::{Algorithm, checksum_of};

use crate::util::{Run, Sandbox, check, status};

const BUCKET: &str = "backups";

fn weed(sb: &Sandbox) -> Weed {
    let w = Weed::start(&sb.path("weed"));
    w.uploader().create_bucket(BUCKET).unwrap();
    w
}

/// A source `NAME` on `endpoint` and a drill of the same name with `extra` drill keys and check tables.
fn s3_drill(sb: &Sandbox, name: &str, endpoint: &str, bucket: &str, prefix: &str, extra: &str) {
    std::fs::write(sb.path("s3-key-id"), format!("{ACCESS_KEY}\n")).unwrap();
    std::fs::write(sb.path("s3-secret"), format!("{SECRET_KEY}\n")).unwrap();
    let body = format!(
        "[sources.{name}]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\naccess_key_id_file = \"s3-key-id\"\nsecret_access_key_file = \"s3-secret\"\nretries = 8\n\n[drills.{name}]\nsource = \"{name}\"\nrto = \"10m\"\nrpo = \"26h\"\n{extra}\n"
    );
    let existing = std::fs::read_to_string(sb.path("lifeboat.toml")).unwrap_or_default();
    if existing.is_empty() {
        sb.config(&body);
    } else {
        std::fs::write(sb.path("lifeboat.toml"), existing + "\n" + &body).unwrap();
    }
}

/// A good `.tar.zst` (inner SHA256SUMS) uploaded with its SHA-256 as stored checksum, and its bytes.
fn put_archive(up: &Uploader, key: &str, seed: u64) -> Vec<u8> {
    let files = fx::app_files(seed);
    let bytes = fx::compress(
        std::path::Path::new(key),
        &fx::app_tar(&files, Some(&fx::sums_for(&files))),
    );
    up.put(BUCKET, key, &bytes).unwrap();
    bytes
}

const FILES_CHECK: &str = "[[drills.app.checks]]\ntype = \"files\"\nrequired = [\"etc/app.conf\", \"data/\"]\nmin_files = 20\n";

#[test]
fn archive_drill_passes_with_every_store_checksum_and_the_sidecar_verified() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let key = fx::stamped("app/app-", 2.0, ".tar.zst");
    let bytes = put_archive(&up, &key, 1);
    up.put(
        BUCKET,
        &format!("{key}.sha256"),
        format!("{}  app.tar.zst\n", fx::sha256_hex(&bytes))
            .replace("app.tar.zst", key.trim_start_matches("app/"))
            .as_bytes(),
    )
    .unwrap();
    put_archive(&up, &fx::stamped("app/app-", 30.0, ".tar.zst"), 2);
    s3_drill(&sb, "app", &w.endpoint(), BUCKET, "app/", FILES_CHECK);
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["snapshot"]["id"],
        key.trim_start_matches("app/"),
        "the newest is drilled"
    );
    for c in [
        "archive",
        "s3 sha256",
        "s3 etag",
        "archive checksum",
        "sha256sums",
        "required etc/app.conf",
        "rpo",
        "rto",
    ] {
        assert_eq!(status(&r, c), "passed", "{c}: {r:#}");
    }
    let sha = check(&r, "s3 sha256");
    assert!(
        sha["expected"]
            .as_str()
            .unwrap()
            .contains(&format!("s3://{BUCKET}/{key}")),
        "{sha}"
    );
    assert!(
        !r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "unverifiable"),
        "{r:#}"
    );
    assert!(r["restore"]["files"].as_u64().unwrap() >= 24);
    sb.assert_scratch_empty();
}

#[test]
fn snapshots_come_from_objects_and_timestamped_folders_with_name_or_last_modified_time() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let stamped = fx::stamped("db/db-", 5.0, ".dump");
    up.put(BUCKET, &stamped, b"PGDMP dump").unwrap();
    up.put(BUCKET, "db/nightly.dump", b"PGDMP nightly").unwrap();
    up.put(
        BUCKET,
        "db/nightly.dump.sha256",
        fx::sha256_hex(b"PGDMP nightly").as_bytes(),
    )
    .unwrap();
    up.put(BUCKET, "db/SHA256SUMS", b"").unwrap();
    up.put(BUCKET, "db/2026-11-20T02:00:00Z/base.tar", b"x")
        .unwrap();
    up.put(BUCKET, "db/misc/notes.txt", b"not a snapshot")
        .unwrap();
    up.put(BUCKET, "elsewhere.dump", b"outside the prefix")
        .unwrap();
    s3_drill(&sb, "db", &w.endpoint(), BUCKET, "db/", "");
    let r = sb.run(&["snapshots", "db", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let snaps = r.json_lines();
    let ids: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let by = |id: &str| {
        snaps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {ids:?}"))
    };
    let s = by(stamped.trim_start_matches("db/"));
    assert_eq!(
        (
            s["time_source"].as_str(),
            s["kind"].as_str(),
            s["size"].as_u64()
        ),
        (Some("name"), Some("file"), Some(10))
    );
    let s = by("nightly.dump");
    assert_eq!(s["time_source"], "mtime", "Last-Modified: {s}");
    let age = jiff::Timestamp::now().as_second()
        - s["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
    assert!((0..600).contains(&age), "Last-Modified is just now: {s}");
    let s = by("2026-11-20T02:00:00Z");
    assert_eq!(
        (s["kind"].as_str(), s["time"].as_str()),
        (Some("folder"), Some("2026-11-20T02:00:00Z"))
    );
    // The table names the source's objects, newest first.
    let t = sb.run(&["snapshots", "db"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert!(lines[0].starts_with("SNAPSHOT"), "{}", t.stdout);
    assert!(
        lines[1].starts_with("nightly.dump") && lines[1].contains("mtime"),
        "{}",
        t.stdout
    );
    assert!(
        lines[3].starts_with("2026-11-20T02:00:00Z") && lines[3].contains("Folder"),
        "{}",
        t.stdout
    );
}

#[test]
fn more_than_1000_objects_are_listed_across_pages() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let items: Vec<(String, Vec<u8>)> = (0..1005)
        .map(|i| {
            (
                format!(
                    "many/host-{}.dump",
                    fx::format_utc(1_790_000_000 + i * 3600)
                ),
                vec![1; 3],
            )
        })
        .collect();
    w.uploader().put_many(BUCKET, items, 8).unwrap();
    s3_drill(&sb, "many", &w.endpoint(), BUCKET, "many/", "");
    let snaps = sb.run(&["snapshots", "many", "--json"]).json_lines();
    assert_eq!(snaps.len(), 1005);
    assert_eq!(
        snaps[0]["id"],
        format!("host-{}.dump", fx::format_utc(1_790_000_000 + 1004 * 3600))
    );
}

#[test]
fn bit_flipped_object_whose_stored_sha256_no_longer_matches_fails_naming_key_expected_and_actual() {
    let sb = Sandbox::new();
    let m = Moto::start(&sb.path("moto"));
    let up = m.uploader();
    up.create_bucket(BUCKET).unwrap();
    let good = fx::noise(3, 300_000);
    let mut rotten = good.clone();
    rotten[150_000] ^= 0x04;
    let key = fx::stamped("pg/pg-", 1.0, ".dump");
    let claim = (Algorithm::Sha256, checksum_of(Algorithm::Sha256, &good));
    up.put_with(BUCKET, &key, &rotten, Some(claim)).unwrap();
    s3_drill(&sb, "pg", &m.endpoint(), BUCKET, "pg/", "");
    let (code, r) = sb.drill("pg");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["outcome"], "failed");
    let c = check(&r, "s3 sha256");
    assert_eq!(c["status"], "failed", "{c}");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (good_b64, bad_b64) = (b64.encode(fx_sha(&good)), b64.encode(fx_sha(&rotten)));
    assert!(c["expected"].as_str().unwrap().contains(&good_b64), "{c}");
    assert!(c["expected"].as_str().unwrap().contains(&key), "{c}");
    assert!(c["actual"].as_str().unwrap().contains(&bad_b64), "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains(&format!("s3://{BUCKET}/{key}")),
        "{c}"
    );
    // The dump itself restored as a file (the ETag moto computed matches the stored bytes).
    assert_eq!(status(&r, "file"), "passed");
    assert_eq!(status(&r, "s3 etag"), "passed");
}

fn fx_sha(d: &[u8]) -> Vec<u8> {
    hex_decode(&fx::sha256_hex(d))
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn sidecar_that_does_not_match_fails_on_a_checksum_enforcing_server() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let key = fx::stamped("vm/vm-101-", 1.0, ".img");
    let data = fx::noise(4, 200_000);
    up.put(BUCKET, &key, &data).unwrap();
    let name = key.trim_start_matches("vm/");
    up.put(
        BUCKET,
        "vm/SHA256SUMS",
        format!("{}  {name}\n", fx::sha256_hex(b"other bytes")).as_bytes(),
    )
    .unwrap();
    s3_drill(&sb, "vm", &w.endpoint(), BUCKET, "vm/", "");
    let (code, r) = sb.drill("vm");
    assert_eq!(code, 1, "{r:#}");
    let c = check(&r, "file checksum");
    assert_eq!(c["status"], "failed", "{c}");
    assert!(
        c["expected"]
            .as_str()
            .unwrap()
            .contains(&fx::sha256_hex(b"other bytes")),
        "{c}"
    );
    assert!(
        c["actual"]
            .as_str()
            .unwrap()
            .contains(&fx::sha256_hex(&data)),
        "{c}"
    );
    // The store's own checksum of the same bytes matched: the sidecar is what disagrees.
    assert_eq!(status(&r, "s3 sha256"), "passed");
}

#[test]
fn multipart_archive_drill_passes_with_its_multipart_etag_verified() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("data/blob-{i}.bin"), fx::noise(20 + i, 4 << 20)))
        .chain(fx::app_files(5))
        .collect();
    let tar = fx::app_tar(&files, Some(&fx::sums_for(&files)));
    let parts: Vec<Vec<u8>> = tar.chunks(5 << 20).map(<[u8]>::to_vec).collect();
    assert!(parts.len() >= 3);
    let key = fx::stamped("mp/app-", 1.0, ".tar");
    let etag = up.multipart(BUCKET, &key, &parts, None).unwrap();
    assert!(etag.ends_with(&format!("-{}", parts.len())), "{etag}");
    s3_drill(&sb, "app", &w.endpoint(), BUCKET, "mp/", FILES_CHECK);
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    let c = check(&r, "s3 etag");
    assert_eq!(c["status"], "passed", "{c}");
    assert!(
        c["expected"].as_str().unwrap().contains(&etag),
        "{c} vs {etag}"
    );
    assert_eq!(status(&r, "sha256sums"), "passed");
}

#[test]
fn download_resumes_when_the_server_is_killed_and_restarted_mid_drill() {
    let sb = Sandbox::new();
    let mut w = weed(&sb);
    let key = fx::stamped("img/disk-", 1.0, ".img");
    let data = fx::noise(6, 24 << 20);
    w.uploader().put(BUCKET, &key, &data).unwrap();
    let proxy = Proxy::start(ProxyOptions {
        upstream: format!("127.0.0.1:{}", w.port()).parse().unwrap(),
        cut_after: None,
        cuts: 0,
        rate: Some(6 << 20),
    })
    .unwrap();
    s3_drill(&sb, "img", &proxy.endpoint(), BUCKET, "img/", "");
    let child = sb
        .command(&["drill", "img", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while proxy.stats.bytes_down.load(Ordering::Relaxed) < 6 << 20 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    w.kill9();
    std::thread::sleep(Duration::from_millis(300));
    w.restart();
    let run: Run = child.wait_with_output().unwrap().into();
    let r = &run.json_lines()[0];
    assert_eq!(run.code, 0, "{r:#}\n{}", run.stderr);
    let file = check(r, "file");
    assert!(
        file["actual"].as_str().unwrap().contains("resumed"),
        "{file}"
    );
    assert_eq!(status(r, "s3 sha256"), "passed");
    assert_eq!(status(r, "s3 etag"), "passed");
    let ranges = proxy.ranges();
    assert!(
        ranges
            .iter()
            .any(|g| g.starts_with("bytes=") && g != "bytes=0-"),
        "{ranges:?}"
    );
    assert_eq!(r["restore"]["bytes"].as_u64(), Some(data.len() as u64));
    sb.assert_scratch_empty();
}

#[test]
fn wrong_credentials_are_an_error_naming_endpoint_and_bucket() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    w.uploader().put(BUCKET, "x/a.dump", b"data").unwrap();
    s3_drill(&sb, "x", &w.endpoint(), BUCKET, "x/", "");
    std::fs::write(sb.path("s3-secret"), "wrong-secret-value\n").unwrap();
    let r = sb.run(&["drill", "x", "--json"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let rep = &r.json_lines()[0];
    assert_eq!(rep["outcome"], "error");
    let err = rep["error"].as_str().unwrap();
    assert!(err.contains(&w.endpoint()) && err.contains(BUCKET), "{err}");
    assert!(
        err.contains("access refused") && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    assert!(!r.stdout.contains("wrong-secret-value") && !r.stderr.contains("wrong-secret-value"));
    let snaps = sb.run(&["snapshots", "x"]);
    assert_ne!(snaps.code, 0);
    assert!(
        snaps.stderr.contains(BUCKET) && !snaps.stderr.contains("wrong-secret-value"),
        "{}",
        snaps.stderr
    );
}

#[test]
fn missing_bucket_is_an_error_naming_it() {
    let sb = Sandbox::new();
    let m = Moto::start(&sb.path("moto"));
    s3_drill(&sb, "gone", &m.endpoint(), "no-such-bucket", "", "");
    let (code, r) = sb.drill("gone");
    assert_eq!(code, 3, "{r:#}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("no-such-bucket")
            && err.contains("does not exist")
            && err.contains(&m.endpoint()),
        "{err}"
    );
}

#[test]
fn empty_prefix_is_a_stale_backup_verdict_not_a_crash() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    w.uploader().put(BUCKET, "other/a.dump", b"x").unwrap();
    s3_drill(&sb, "pg", &w.endpoint(), BUCKET, "postgres/", "");
    let (code, r) = sb.drill("pg");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["outcome"], "failed");
    assert_eq!(status(&r, "snapshot"), "failed");
    assert!(
        r["error"].as_str().unwrap().contains("no snapshot"),
        "{r:#}"
    );
    assert!(
        r["error"].as_str().unwrap().contains("prefix postgres/"),
        "{r:#}"
    );
    let t = sb.run(&["snapshots", "pg"]);
    assert_eq!(t.code, 0);
    assert!(t.stdout.contains("holds no snapshot"), "{}", t.stdout);
}

#[test]
fn unreachable_endpoint_is_an_error_after_bounded_retries() {
    let sb = Sandbox::new();
    let port = fx::s3::free_ports(1)[0];
    s3_drill(
        &sb,
        "down",
        &format!("http://127.0.0.1:{port}"),
        BUCKET,
        "",
        "",
    );
    let text = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace("retries = 8", "retries = 1");
    std::fs::write(sb.path("lifeboat.toml"), text).unwrap();
    let t = Instant::now();
    let (code, r) = sb.drill("down");
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_eq!(code, 3, "{r:#}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("unreachable after 2 attempts") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn folder_snapshot_restores_every_object_with_credentials_from_the_environment() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let folder = fx::stamped("site/", 3.0, "");
    let files = fx::app_files(9);
    let mut items: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, d)| (format!("{folder}/{n}"), d.clone()))
        .collect();
    items.push((format!("{folder}/SHA256SUMS"), fx::sums_for(&files)));
    up.put_many(BUCKET, items, 4).unwrap();
    s3_drill(&sb, "app", &w.endpoint(), BUCKET, "site/", FILES_CHECK);
    let text = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace(
            "access_key_id_file = \"s3-key-id\"\nsecret_access_key_file = \"s3-secret\"\n",
            "",
        );
    std::fs::write(sb.path("lifeboat.toml"), text).unwrap();
    let out = sb
        .command(&["drill", "app", "--json"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let run: Run = out.into();
    let r = &run.json_lines()[0];
    assert_eq!(run.code, 0, "{r:#}");
    assert_eq!(r["snapshot"]["id"], folder.trim_start_matches("site/"));
    for c in [
        "folder",
        "s3 sha256",
        "s3 etag",
        "sha256sums",
        "required etc/app.conf",
    ] {
        assert_eq!(status(r, c), "passed", "{c}: {r:#}");
    }
    assert!(
        check(r, "s3 sha256")["actual"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} match", files.len() + 1))
    );
    // Without the environment there are no credentials: an error that says where to put them.
    let (code, r) = sb.drill("app");
    assert_eq!(code, 3);
    assert!(
        r["error"].as_str().unwrap().contains("AWS_ACCESS_KEY_ID"),
        "{r:#}"
    );
}

#[test]
fn configuration_mistakes_are_found_offline() {
    let sb = Sandbox::new();
    sb.config("[sources.b2]\ntype = \"s3\"\nendpoint = \"ftp://s3.example\"\nbucket = \"a/b\"\naccess_key_id_file = \"missing-id\"\nsecret_access_key_file = \"missing-secret\"\nglob = \"[\"\n");
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("source b2") && r.stderr.contains("bucket name \"a/b\""),
        "{}",
        r.stderr
    );
    sb.config("[sources.b2]\ntype = \"s3\"\nbucket = \"acme-backups\"\naccess_key_id_file = \"missing-id\"\nsecret_access_key_file = \"missing-secret\"\n");
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("access_key_id_file") && r.stderr.contains("missing-id"),
        "{}",
        r.stderr
    );
    sb.config("[sources.b2]\ntype = \"s3\"\nbucket = \"acme-backups\"\nendpont = \"https://x\"\n");
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("endpont"), "{}", r.stderr);
}

/// The plain-file snapshot kind this issue added is shared with local folders: a dump is kept as a file and
/// its sidecar is checked.
#[test]
fn local_source_keeps_plain_dump_files_and_checks_their_sidecar() {
    let sb = Sandbox::new();
    let dir = sb.backups("pg");
    let name = fx::stamped("db-", 1.0, ".dump");
    let data = fx::noise(30, 50_000);
    std::fs::write(dir.join(&name), &data).unwrap();
    std::fs::write(
        dir.join(format!("{name}.sha256")),
        format!("{}  {name}\n", fx::sha256_hex(&data)),
    )
    .unwrap();
    sb.local_drill(
        "pg",
        &format!("[[drills.pg.checks]]\ntype = \"files\"\nrequired = [\"{name}\"]\n"),
    );
    let (code, r) = sb.drill("pg");
    assert_eq!(code, 0, "{r:#}");
    for c in ["file", "file checksum", &format!("required {name}")] {
        assert_eq!(status(&r, c), "passed", "{c}: {r:#}");
    }
    assert!(
        !r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "checksums"),
        "{r:#}"
    );
    std::fs::write(
        dir.join(format!("{name}.sha256")),
        format!("{}  {name}\n", fx::sha256_hex(b"x")),
    )
    .unwrap();
    let (code, r) = sb.drill("pg");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(status(&r, "file checksum"), "failed");
}

/// A self-hosted S3 service behind a private CA: trusted through `ca_file` the drill passes over HTTPS;
/// without it the drill is an `error` at once (no retries: a certificate does not fix itself) that names
/// the endpoint and tells the user about `ca_file`.
#[test]
fn https_with_a_private_ca_needs_ca_file_and_says_so_without_it() {
    let sb = Sandbox::new();
    let pki = fx::test_pki::TestPki::generate(&sb.path("pki"), "s3").unwrap();
    let w = Weed::start_tls(&sb.path("weed"), &pki);
    w.uploader().create_bucket(BUCKET).unwrap();
    let key = fx::stamped("app/app-", 2.0, ".tar.zst");
    put_archive(&w.uploader(), &key, 5);
    let ca = pki.ca_pem_path.display().to_string();
    s3_drill(&sb, "app", &w.https_endpoint(), BUCKET, "app/", FILES_CHECK);
    let trusted = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace("retries = 8", &format!("retries = 8\nca_file = \"{ca}\""));
    std::fs::write(sb.path("lifeboat.toml"), &trusted).unwrap();
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(status(&r, "s3 sha256"), "passed", "{r:#}");

    // The same server without the CA: refused certificate, no retry storm.
    let untrusted = trusted.replace(&format!("\nca_file = \"{ca}\""), "");
    std::fs::write(sb.path("lifeboat.toml"), untrusted).unwrap();
    let t = Instant::now();
    let (code, r) = sb.drill("app");
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["outcome"], "error");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains(&w.https_endpoint())
            && err.contains("certificate was not accepted")
            && err.contains("UnknownIssuer")
            && err.contains("ca_file"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

/// The key an administrator already keeps for aws-cli or rclone: a named profile of the shared credentials
/// file, configured or chosen with `AWS_PROFILE`; a missing profile or key is found offline by
/// `check-config`, naming the file and the profile, never a secret.
#[test]
fn credentials_come_from_a_profile_of_the_shared_credentials_file() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    put_archive(&w.uploader(), &fx::stamped("app/app-", 2.0, ".tar.zst"), 6);
    std::fs::write(
        sb.path("aws-credentials"),
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = not-the-secret\n\n\
             [backup-reader]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n\n\
             [half]\naws_access_key_id = {ACCESS_KEY}\n"
        ),
    )
    .unwrap();
    s3_drill(&sb, "app", &w.endpoint(), BUCKET, "app/", FILES_CHECK);
    let base = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace(
            "access_key_id_file = \"s3-key-id\"\nsecret_access_key_file = \"s3-secret\"\n",
            "",
        );
    let with = |keys: &str| {
        std::fs::write(
            sb.path("lifeboat.toml"),
            base.replace("retries = 8", &format!("retries = 8\n{keys}")),
        )
        .unwrap();
    };

    // Configured: profile and file (relative to the configuration).
    with("profile = \"backup-reader\"\ncredentials_file = \"aws-credentials\"");
    assert_eq!(sb.run(&["check-config"]).code, 0);
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");

    // Not configured: AWS_PROFILE picks the profile of AWS_SHARED_CREDENTIALS_FILE; the [default] profile
    // (a wrong secret) shows that the choice matters.
    with("");
    let run = |profile: &str| -> Run {
        sb.command(&["drill", "app", "--json"])
            .env("AWS_SHARED_CREDENTIALS_FILE", sb.path("aws-credentials"))
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap()
            .into()
    };
    let good = run("backup-reader");
    assert_eq!(good.code, 0, "{}", good.stdout);
    let bad = run("default");
    assert_eq!(bad.code, 3, "{}", bad.stdout);
    assert!(
        bad.stdout.contains("SignatureDoesNotMatch"),
        "{}",
        bad.stdout
    );
    assert!(!bad.stdout.contains("not-the-secret"), "{}", bad.stdout);

    // Mistakes are configuration errors, found offline.
    with("profile = \"half\"\ncredentials_file = \"aws-credentials\"");
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("[half]") && r.stderr.contains("aws_secret_access_key"),
        "{}",
        r.stderr
    );
    with("profile = \"nope\"\ncredentials_file = \"aws-credentials\"");
    let r = sb.run(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no profile [nope]") && r.stderr.contains("aws-credentials"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(SECRET_KEY));
}

/// SIGTERM while the bucket is down and the download waits out its retries: lifeboat stops within a
/// second or two, records the run as `error` (cancelled), and leaves no scratch behind.
#[test]
fn sigterm_while_a_dead_bucket_is_retried_stops_promptly() {
    let sb = Sandbox::new();
    let mut w = weed(&sb);
    let key = fx::stamped("img/disk-", 1.0, ".img");
    w.uploader()
        .put(BUCKET, &key, &fx::noise(7, 24 << 20))
        .unwrap();
    let proxy = Proxy::start(ProxyOptions {
        upstream: format!("127.0.0.1:{}", w.port()).parse().unwrap(),
        cut_after: None,
        cuts: 0,
        rate: Some(4 << 20),
    })
    .unwrap();
    s3_drill(&sb, "img", &proxy.endpoint(), BUCKET, "img/", "");
    // Retries that would run for minutes.
    let text = std::fs::read_to_string(sb.path("lifeboat.toml"))
        .unwrap()
        .replace("retries = 8", "retries = 100");
    std::fs::write(sb.path("lifeboat.toml"), text).unwrap();
    let child = sb
        .command(&["drill", "img", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while proxy.stats.bytes_down.load(Ordering::Relaxed) < 4 << 20 {
        assert!(t.elapsed() < Duration::from_secs(60), "no download");
        std::thread::sleep(Duration::from_millis(20));
    }
    w.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let run: Run = child.wait_with_output().unwrap().into();
    let stopped = t.elapsed();
    let r = &run.json_lines()[0];
    assert!(
        stopped < Duration::from_secs(5),
        "stopped after {stopped:?}"
    );
    assert_eq!(run.code, 3, "{r:#}");
    assert_eq!(r["outcome"], "error");
    assert!(r["error"].as_str().unwrap().contains("cancelled"), "{r:#}");
    sb.assert_scratch_empty();
}

/// Selection works on bucket snapshots as on local ones: `oldest-within` a window picks the oldest object
/// inside it, not the newest and not the one outside; the RPO is still measured from the newest.
#[test]
fn oldest_within_picks_the_oldest_object_inside_the_window() {
    let sb = Sandbox::new();
    let w = weed(&sb);
    let up = w.uploader();
    let newest = fx::stamped("app/app-", 2.0, ".tar.zst");
    let middle = fx::stamped("app/app-", 50.0, ".tar.zst");
    let outside = fx::stamped("app/app-", 24.0 * 10.0, ".tar.zst");
    for (i, k) in [&newest, &middle, &outside].into_iter().enumerate() {
        put_archive(&up, k, 20 + i as u64);
    }
    s3_drill(
        &sb,
        "app",
        &w.endpoint(),
        BUCKET,
        "app/",
        "select = \"oldest-within\"\nwindow = \"3d\"\n",
    );
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["snapshot"]["id"],
        middle.trim_start_matches("app/"),
        "{r:#}"
    );
    assert_eq!(status(&r, "s3 sha256"), "passed");
    // The drilled snapshot is 50 h old, past the 26 h RPO; the recovery point is the newest one (2 h).
    let rpo = check(&r, "rpo");
    assert_eq!(rpo["status"], "passed", "{rpo:#}");
    let actual = rpo["actual"].as_str().unwrap();
    assert!(
        actual.starts_with("2h") && actual.contains(newest.trim_start_matches("app/")),
        "{actual}"
    );
    assert!(actual.contains("the drilled one is 2d"), "{actual}");
    let rpa = r["rpa_seconds"].as_f64().unwrap();
    assert!((7100.0..7400.0).contains(&rpa), "{rpa}");
}
