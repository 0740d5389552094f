//! Against moto: it stores a checksum header as given, so an object whose stored SHA-256 does not match
//! its bytes can exist, exactly like an object damaged at rest.

use lifeboat_fixtures::noise;
use lifeboat_fixtures::s3::Moto;
use lifeboat_s3::Outcome;
use lifeboat_s3::checksum::{Algorithm, checksum_of};

use crate::common::{BUCKET, client, fetch, outcome, runtime, sha256};

fn moto() -> (tempfile::TempDir, Moto) {
    let dir = tempfile::tempdir().unwrap();
    let m = Moto::start(dir.path());
    m.uploader().create_bucket(BUCKET).unwrap();
    (dir, m)
}

#[test]
fn stored_sha256_that_does_not_match_the_bytes_is_a_mismatch() {
    let (_d, m) = moto();
    let good = noise(11, 200_000);
    let mut flipped = good.clone();
    flipped[123_456] ^= 0x10;
    // The checksum of the good bytes, stored with bit-flipped bytes.
    let claim = (Algorithm::Sha256, checksum_of(Algorithm::Sha256, &good));
    m.uploader()
        .put_with(BUCKET, "rotten.dump", &flipped, Some(claim))
        .unwrap();
    let rt = runtime();
    let c = client(&m.endpoint());
    let r = fetch(&rt, &c, "rotten.dump").unwrap();
    assert_eq!(r.sha256, sha256(&flipped));
    assert_eq!(outcome(&r, "sha256"), Outcome::Mismatch);
    let v = r
        .verifications
        .iter()
        .find(|v| v.method == "sha256")
        .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(v.expected.contains(&b64.encode(sha256(&good))), "{v:?}");
    assert!(v.actual.contains(&b64.encode(sha256(&flipped))), "{v:?}");
    // The ETag moto computed is of the bytes it stored: that one matches.
    assert_eq!(outcome(&r, "etag"), Outcome::Match);
}

#[test]
fn multipart_crc32_composite_and_pagination_on_a_second_implementation() {
    let (_d, m) = moto();
    let parts = vec![noise(12, 5 << 20), noise(13, 5 << 20), noise(14, 99)];
    m.uploader()
        .multipart(BUCKET, "mp.tar", &parts, Some(Algorithm::Crc32))
        .unwrap();
    let rt = runtime();
    let c = client(&m.endpoint());
    let r = fetch(&rt, &c, "mp.tar").unwrap();
    assert_eq!(r.sha256, sha256(&parts.concat()));
    assert_eq!(
        outcome(&r, "crc32"),
        Outcome::Match,
        "{:#?}",
        r.verifications
    );
    assert_eq!(
        outcome(&r, "etag"),
        Outcome::Match,
        "{:#?}",
        r.verifications
    );

    let items: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("p/{i}"), vec![1])).collect();
    m.uploader().put_many(BUCKET, items, 2).unwrap();
    let mut token = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = rt
            .block_on(c.list_page("p/", None, token.as_deref(), Some(2)))
            .unwrap();
        pages += 1;
        seen.extend(p.objects.into_iter().map(|o| o.key));
        if !p.truncated {
            break;
        }
        token = p.next_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..5).map(|i| format!("p/{i}")).collect::<Vec<_>>());
}

/// SHA-1 is one of S3's flexible checksums (`aws s3 cp --checksum-algorithm SHA1`): verified like the others,
/// a good one matches and a stale one is a mismatch naming both values.
#[test]
fn stored_sha1_is_verified_both_ways() {
    let (_d, m) = moto();
    let data = noise(12, 150_000);
    let mut other = data.clone();
    other[7] ^= 1;
    let up = m.uploader();
    let good = (Algorithm::Sha1, checksum_of(Algorithm::Sha1, &data));
    up.put_with(BUCKET, "good.dump", &data, Some(good)).unwrap();
    let stale = (Algorithm::Sha1, checksum_of(Algorithm::Sha1, &other));
    up.put_with(BUCKET, "stale.dump", &data, Some(stale))
        .unwrap();
    let rt = runtime();
    let c = client(&m.endpoint());
    let r = fetch(&rt, &c, "good.dump").unwrap();
    assert_eq!(outcome(&r, "sha1"), Outcome::Match);
    let r = fetch(&rt, &c, "stale.dump").unwrap();
    assert_eq!(outcome(&r, "sha1"), Outcome::Mismatch);
    let v = r.verifications.iter().find(|v| v.method == "sha1").unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(
        v.expected
            .contains(&b64.encode(checksum_of(Algorithm::Sha1, &other))),
        "{v:?}"
    );
    assert!(
        v.actual
            .contains(&b64.encode(checksum_of(Algorithm::Sha1, &data))),
        "{v:?}"
    );
}
