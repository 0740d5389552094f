//! Verification of in-memory objects: every method, matches, mismatches and unverifiable cases.

use super::*;
use crate::checksum::parse_checksum;

fn exp(size: u64) -> Expectations {
    Expectations {
        size,
        ..Default::default()
    }
}

fn b64(v: &[u8]) -> String {
    B64.encode(v)
}

#[test]
fn known_values() {
    // Check values of the CRC catalogue (reveng.sourceforge.io) for "123456789".
    assert_eq!(
        digest_of(HashKind::Crc32, b"123456789"),
        0xcbf4_3926u32.to_be_bytes()
    );
    assert_eq!(
        digest_of(HashKind::Crc32c, b"123456789"),
        0xe306_9283u32.to_be_bytes()
    );
    assert_eq!(
        digest_of(HashKind::Crc64Nvme, b"123456789"),
        0xae8b_1486_0a79_9888u64.to_be_bytes()
    );
    assert_eq!(
        hex::encode(digest_of(HashKind::Md5, b"")),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
}

#[test]
fn single_part_etag_and_full_checksums() {
    let data = b"hello world".repeat(1000);
    let mut e = exp(data.len() as u64);
    e.etag = Some(hex::encode(digest_of(HashKind::Md5, &data)));
    for (a, k) in [
        (Algorithm::Sha256, HashKind::Sha256),
        (Algorithm::Crc32c, HashKind::Crc32c),
        (Algorithm::Crc64Nvme, HashKind::Crc64Nvme),
        (Algorithm::Crc32, HashKind::Crc32),
    ] {
        e.checksums
            .stored
            .push(parse_checksum(a, &b64(&digest_of(k, &data))).unwrap());
    }
    let mut v = Verifier::new(&e);
    for c in data.chunks(777) {
        v.update(c);
    }
    let (sha, results) = v.finish();
    assert_eq!(sha.to_vec(), digest_of(HashKind::Sha256, &data));
    assert_eq!(results.len(), 5);
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Match),
        "{results:#?}"
    );

    // One flipped bit fails every method.
    let mut bad = data.clone();
    bad[5000] ^= 1;
    let mut v = Verifier::new(&e);
    v.update(&bad);
    let (_, results) = v.finish();
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Mismatch),
        "{results:#?}"
    );
}

#[test]
fn multipart_etag_and_composite() {
    let parts: Vec<Vec<u8>> = vec![vec![1u8; 100], vec![2u8; 100], vec![3u8; 7]];
    let data = parts.concat();
    let md5s: Vec<u8> = parts
        .iter()
        .flat_map(|p| digest_of(HashKind::Md5, p))
        .collect();
    let shas: Vec<u8> = parts
        .iter()
        .flat_map(|p| digest_of(HashKind::Sha256, p))
        .collect();
    let mut e = exp(data.len() as u64);
    e.etag = Some(format!(
        "\"{}-3\"",
        hex::encode(digest_of(HashKind::Md5, &md5s))
    ));
    e.checksums.stored.push(
        parse_checksum(
            Algorithm::Sha256,
            &format!("{}-3", b64(&digest_of(HashKind::Sha256, &shas))),
        )
        .unwrap(),
    );
    // Without the layout: unverifiable, never passed.
    let mut v = Verifier::new(&e);
    v.update(&data);
    let (_, r) = v.finish();
    assert!(
        r.iter()
            .all(|r| matches!(r.outcome, Outcome::Unverifiable(_))),
        "{r:#?}"
    );
    // With it: both match.
    e.layout = Some(PartLayout {
        sizes: vec![100, 100, 7],
        inferred: false,
    });
    let mut v = Verifier::new(&e);
    for c in data.chunks(33) {
        v.update(c);
    }
    let (_, r) = v.finish();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.outcome == Outcome::Match), "{r:#?}");
    // A wrong layout is a mismatch (the caller confirms inferred layouts before believing it).
    e.layout = Some(PartLayout {
        sizes: vec![50, 150, 7],
        inferred: true,
    });
    let mut v = Verifier::new(&e);
    v.update(&data);
    let (_, r) = v.finish();
    assert!(
        r.iter()
            .all(|r| r.outcome == Outcome::Mismatch && r.layout_inferred),
        "{r:#?}"
    );
}

#[test]
fn ambiguous_crc_accepts_full_or_composite() {
    let parts: Vec<Vec<u8>> = vec![vec![9u8; 64], vec![8u8; 10]];
    let data = parts.concat();
    let md5s: Vec<u8> = parts
        .iter()
        .flat_map(|p| digest_of(HashKind::Md5, p))
        .collect();
    let crcs: Vec<u8> = parts
        .iter()
        .flat_map(|p| digest_of(HashKind::Crc32, p))
        .collect();
    let mut e = exp(data.len() as u64);
    e.etag = Some(format!(
        "{}-2",
        hex::encode(digest_of(HashKind::Md5, &md5s))
    ));
    e.layout = Some(PartLayout {
        sizes: vec![64, 10],
        inferred: false,
    });
    // moto's HEAD shows the composite value without the suffix.
    e.checksums
        .stored
        .push(parse_checksum(Algorithm::Crc32, &b64(&digest_of(HashKind::Crc32, &crcs))).unwrap());
    let mut v = Verifier::new(&e);
    v.update(&data);
    let (_, r) = v.finish();
    assert!(r.iter().all(|r| r.outcome == Outcome::Match), "{r:#?}");
}

#[test]
fn unusable_etags_and_headers() {
    assert!(parse_etag("\"abc\"").is_none());
    assert!(parse_etag("\"d41d8cd98f00b204e9800998ecf8427e-x\"").is_none());
    assert!(parse_etag("W/\"d41d8cd98f00b204e9800998ecf8427e\"").is_some());
    assert!(parse_checksum(Algorithm::Sha256, "AAAA").is_none());
    assert!(parse_checksum(Algorithm::Crc32, "AAAAAA==-0").is_none());
    assert!(parse_checksum(Algorithm::Crc32, "AAAAAA==-2").is_some());
    let mut e = exp(3);
    e.etag = Some("not-an-md5".into());
    e.checksums.malformed.push((Algorithm::Crc32, "!!".into()));
    e.checksums
        .stored
        .push(parse_checksum(Algorithm::Sha1, &b64(&[0u8; 20])).unwrap());
    let mut v = Verifier::new(&e);
    v.update(b"abc");
    let (_, r) = v.finish();
    assert_eq!(r.len(), 3);
    // The ETag and the malformed header cannot be used; the all-zero SHA-1 is simply wrong.
    for r in &r {
        if r.method == "sha1" {
            assert_eq!(r.outcome, Outcome::Mismatch, "{r:#?}");
        } else {
            assert!(matches!(r.outcome, Outcome::Unverifiable(_)), "{r:#?}");
        }
    }
}

#[test]
fn sha1_matches_the_fips_180_vector() {
    // FIPS 180-2, appendix A.1: SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d.
    let mut want = [0u8; 20];
    hex::decode_to_slice("a9993e364706816aba3e25717850c26c9cd0d89d", &mut want).unwrap();
    let mut e = exp(3);
    e.checksums
        .stored
        .push(parse_checksum(Algorithm::Sha1, &b64(&want)).unwrap());
    let mut v = Verifier::new(&e);
    v.update(b"abc");
    let (_, r) = v.finish();
    let sha1 = r.iter().find(|r| r.method == "sha1").unwrap();
    assert_eq!(sha1.outcome, Outcome::Match, "{r:#?}");
}
