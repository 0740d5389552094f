//! Damaged and crafted archives: every structure check fires, with the right stream and offset.

use super::encoder::{Node, dir, encode, encode_with, file, hardlink, sample_tree};
use super::support::{decode, decode_quiet, find_items, get_u64, put_u64, vector};
use crate::pbs::pxar::format::*;
use crate::pbs::pxar::{
    EntryKind, Event, MAX_ATTRIBUTE_BYTES, MAX_PATH_BYTES, PxarError, StreamKind,
};

/// Asserts `Invalid` in `stream` at an offset within `range`, and returns the message.
fn assert_invalid(
    r: Result<u64, PxarError>,
    stream: StreamKind,
    range: std::ops::Range<u64>,
) -> String {
    match r {
        Err(e @ PxarError::Invalid { .. }) => {
            let (s, at) = e.location().unwrap();
            assert_eq!(s, stream, "{e}");
            assert!(range.contains(&at), "offset {at} not in {range:?}: {e}");
            e.to_string()
        }
        other => panic!("expected Invalid in {stream} at {range:?}, got {other:?}"),
    }
}

/// GOODBYE header positions of an archive, from a clean decode.
fn goodbye_positions(meta: &[u8], payload: Option<&[u8]>) -> Vec<u64> {
    decode(meta, payload)
        .unwrap()
        .dir_ends
        .iter()
        .map(|d| d.goodbye_offset)
        .collect()
}

#[test]
fn the_test_encoder_round_trips() {
    for split in [false, true] {
        let enc = encode(&sample_tree(), split);
        let a = decode(&enc.archive, enc.payload.as_deref()).unwrap();
        let paths: Vec<&[u8]> = a.entries.iter().map(|d| &d.entry.path[..]).collect();
        assert_eq!(
            paths,
            [
                &b""[..],
                b"a.txt",
                b"d",
                b"d/inner",
                b"d/pipe",
                b"link",
                b"sym"
            ]
        );
        assert_eq!(a.entries[3].content.as_deref(), Some(&b"inner file\n"[..]));
    }
}

#[test]
fn unsafe_file_names_are_refused_by_the_decoder() {
    for name in [&b".."[..], b".", b"a/b", b"/etc", b"", b"a\0b"] {
        let enc = encode(&[dir(b"ok", vec![file(name, b"x")])], false);
        match decode_quiet(&enc.archive, None) {
            Err(PxarError::Unsafe { path, offset, .. }) => {
                assert!(path.starts_with("ok/"), "{path}");
                assert!(offset > 0);
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(name)),
        }
    }
    // a name without its NUL terminator is damage, not an attack
    let mut enc = encode(&[file(b"abc", b"x")], false);
    let at = find_items(&enc.archive, PXAR_FILENAME)[0];
    enc.archive[at + 16 + 3] = b'd';
    assert_invalid(
        decode_quiet(&enc.archive, None),
        StreamKind::Archive,
        0..100,
    );
}

#[test]
fn corrupted_goodbye_tables_are_detected() {
    for (meta_name, payload_name) in [("tree.pxar", None), ("tree.mpxar", Some("tree.ppxar"))] {
        let meta = vector(meta_name);
        let payload = payload_name.map(vector);
        let p = payload.as_deref();
        for g in goodbye_positions(&meta, p) {
            let g = g as usize;
            let full = get_u64(&meta, g + 8) as usize;
            let table = g as u64..(g + full) as u64;
            let items = (full - 16) / 24;
            // every field of every item, the tail included
            for item in 0..items {
                for field in 0..3 {
                    let at = g + 16 + item * 24 + field * 8;
                    let mut m = meta.clone();
                    m[at] ^= 0x01;
                    let msg =
                        assert_invalid(decode_quiet(&m, p), StreamKind::Archive, table.clone());
                    assert!(msg.contains("goodbye"), "{msg}");
                }
            }
            if items >= 3 {
                // swap two child items: same contents, wrong binary-search-tree order
                let mut m = meta.clone();
                let (a, b) = (g + 16, g + 16 + 24);
                let first: Vec<u8> = m[a..a + 24].to_vec();
                m.copy_within(b..b + 24, a);
                m[b..b + 24].copy_from_slice(&first);
                assert_invalid(decode_quiet(&m, p), StreamKind::Archive, table.clone());
            }
            // a table with one item too few / many is caught by its size
            let mut m = meta.clone();
            put_u64(&mut m, g + 8, full as u64 - 24);
            assert!(decode_quiet(&m, p).is_err());
        }
    }
}

#[test]
fn hardlinks_must_point_at_an_earlier_regular_file() {
    let meta = vector("tree.pxar");
    let at = find_items(&meta, PXAR_HARDLINK)
        .into_iter()
        .find(|&i| get_u64(&meta, i + 8) == 49)
        .unwrap();
    let off = get_u64(&meta, at + 16);
    for bad in [off + 1, off - 1, 0, u64::MAX, off + 10_000_000] {
        let mut m = meta.clone();
        put_u64(&mut m, at + 16, bad);
        let msg = assert_invalid(
            decode_quiet(&m, None),
            StreamKind::Archive,
            at as u64..at as u64 + 1,
        );
        assert!(msg.contains("hardlink"), "{msg}");
    }
    // right offset, wrong name
    let mut m = meta.clone();
    let name_at = at + 24;
    assert_eq!(&m[name_at..name_at + 4], b"docs");
    m[name_at..name_at + 4].copy_from_slice(b"dogs");
    assert_invalid(
        decode_quiet(&m, None),
        StreamKind::Archive,
        at as u64..at as u64 + 1,
    );
    // a hardlink to a directory
    let enc = encode(&[dir(b"d", vec![]), hardlink(b"h", b"d")], false);
    assert!(decode_quiet(&enc.archive, None).is_err());
}

fn payload_ref_items(meta: &[u8]) -> Vec<usize> {
    find_items(meta, PXAR_PAYLOAD_REF)
        .into_iter()
        .filter(|&i| get_u64(meta, i + 8) == 32)
        .collect()
}

#[test]
fn payload_refs_must_go_forward_to_a_payload_header() {
    let meta = vector("tree.mpxar");
    let payload = vector("tree.ppxar");
    let refs = payload_ref_items(&meta);
    let files = decode(&meta, Some(&payload))
        .unwrap()
        .entries
        .iter()
        .filter(|d| matches!(d.entry.kind, EntryKind::File { .. }))
        .count();
    assert_eq!(refs.len(), files);
    // backwards: the second file points at the first file's payload
    let mut m = meta.clone();
    let first = get_u64(&m, refs[0] + 16);
    put_u64(&mut m, refs[1] + 16, first);
    let msg = assert_invalid(
        decode_quiet(&m, Some(&payload)),
        StreamKind::Archive,
        refs[1] as u64..refs[1] as u64 + 32,
    );
    assert!(msg.contains("backwards"), "{msg}");
    // at a byte that is not a PAYLOAD header
    let mut m = meta.clone();
    put_u64(&mut m, refs[0] + 16, first + 1);
    assert_invalid(
        decode_quiet(&m, Some(&payload)),
        StreamKind::Payload,
        first + 1..first + 2,
    );
    // at the payload tail marker
    let last = *refs.last().unwrap();
    let mut m = meta.clone();
    put_u64(&mut m, last + 16, payload.len() as u64 - 16);
    let msg = assert_invalid(
        decode_quiet(&m, Some(&payload)),
        StreamKind::Payload,
        payload.len() as u64 - 16..payload.len() as u64,
    );
    assert!(msg.contains("PAYLOAD_TAIL_MARKER header"), "{msg}");
    // size disagreeing with the PAYLOAD header
    let mut m = meta.clone();
    let size = get_u64(&m, refs[0] + 24);
    put_u64(&mut m, refs[0] + 24, size + 1);
    assert_invalid(
        decode_quiet(&m, Some(&payload)),
        StreamKind::Payload,
        first..first + 1,
    );
    // gaps are skipped: move every payload 100 bytes further with junk in between
    let enc = encode(&sample_tree(), true);
    let (mut em, ep) = (enc.archive.clone(), enc.payload.clone().unwrap());
    let mut gapped = ep[..16].to_vec();
    gapped.extend_from_slice(&[0xAA; 100]);
    gapped.extend_from_slice(&ep[16..]);
    for r in payload_ref_items(&em) {
        let o = get_u64(&em, r + 16);
        put_u64(&mut em, r + 16, o + 100);
    }
    assert_eq!(decode_quiet(&em, Some(&gapped)).unwrap(), 7);
}

#[test]
fn payload_stream_markers_are_checked() {
    let meta = vector("tree.mpxar");
    let payload = vector("tree.ppxar");
    let n = payload.len();
    // missing tail marker
    assert!(matches!(
        decode_quiet(&meta, Some(&payload[..n - 16])),
        Err(PxarError::Truncated {
            stream: StreamKind::Payload,
            ..
        })
    ));
    let mut p = payload.clone();
    p[n - 16] ^= 1;
    assert_invalid(
        decode_quiet(&meta, Some(&p)),
        StreamKind::Payload,
        n as u64 - 16..n as u64,
    );
    // trailing bytes after the tail marker
    let mut p = payload.clone();
    p.extend_from_slice(b"junk after the end");
    assert!(decode_quiet(&meta, Some(&p)).is_err());
    // wrong start marker
    let mut p = payload.clone();
    p[0] ^= 1;
    assert_invalid(decode_quiet(&meta, Some(&p)), StreamKind::Payload, 0..1);
    // split archive without payload stream, unified archive with one
    assert!(decode_quiet(&meta, None).is_err());
    assert!(decode_quiet(&vector("extras.pxar"), Some(&payload)).is_err());
}

#[test]
fn archive_level_checks() {
    let meta = vector("extras.pxar");
    // bytes after the root goodbye
    let mut m = meta.clone();
    m.push(0);
    assert_invalid(
        decode_quiet(&m, None),
        StreamKind::Archive,
        meta.len() as u64..meta.len() as u64 + 1,
    );
    // unknown item type, too small and too large sizes
    let fname = find_items(&meta, PXAR_FILENAME)[0];
    for (field, value) in [(0, 0x1234u64), (8, 15), (8, 16 + 4098), (8, u64::MAX)] {
        let mut m = meta.clone();
        put_u64(&mut m, fname + field, value);
        assert_invalid(
            decode_quiet(&m, None),
            StreamKind::Archive,
            fname as u64..fname as u64 + 1,
        );
    }
    // a fixed-size item of the wrong size
    let quota = find_items(&meta, PXAR_QUOTA_PROJID)[0];
    let mut m = meta.clone();
    put_u64(&mut m, quota + 8, 32);
    assert_invalid(
        decode_quiet(&m, None),
        StreamKind::Archive,
        quota as u64..quota as u64 + 1,
    );
    // format version other than 2
    let split = vector("tree.mpxar");
    let mut m = split.clone();
    put_u64(&mut m, 16, 1);
    assert!(decode_quiet(&m, Some(&vector("tree.ppxar"))).is_err());
    // root that is not a directory
    let mut m = meta.clone();
    put_u64(&mut m, 16, mode::IFREG | 0o644);
    assert!(decode_quiet(&m, None).is_err());
    // a mode that disagrees with the content item (file mode, directory body)
    let dir_entry = fname + get_u64(&meta, fname + 8) as usize;
    let mut m = meta.clone();
    put_u64(&mut m, dir_entry + 16, mode::IFREG | 0o644);
    assert!(decode_quiet(&m, None).is_err());
}

#[test]
fn duplicate_single_attributes_are_refused() {
    let meta = vector("extras.pxar");
    // duplicate the QUOTA_PROJID item of quota.txt
    let q = find_items(&meta, PXAR_QUOTA_PROJID)[0];
    let mut m = meta[..q + 24].to_vec();
    m.extend_from_slice(&meta[q..]);
    let msg = assert_invalid(
        decode_quiet(&m, None),
        StreamKind::Archive,
        q as u64 + 24..q as u64 + 25,
    );
    assert!(msg.contains("at most one QUOTA_PROJID"), "{msg}");
}

#[test]
fn truncation_anywhere_is_an_error() {
    // every length of the small archives
    let extras = vector("extras.pxar");
    for len in 0..extras.len() {
        assert!(
            decode_quiet(&extras[..len], None).is_err(),
            "extras cut at {len}"
        );
    }
    let meta = vector("tree.mpxar");
    let payload = vector("tree.ppxar");
    for len in 0..meta.len() {
        assert!(
            decode_quiet(&meta[..len], Some(&payload)).is_err(),
            "mpxar cut at {len}"
        );
    }
    // payload: around every PAYLOAD header and a stride through the data
    let a = decode(&meta, Some(&payload)).unwrap();
    let mut cuts: Vec<usize> = (0..payload.len()).step_by(4099).collect();
    for d in &a.entries {
        if let EntryKind::File {
            payload_ref: Some(r),
            size,
            ..
        } = d.entry.kind
        {
            let r = r as usize;
            cuts.extend([r, r + 1, r + 15, r + 16, r + 17, r + 16 + size as usize]);
        }
    }
    cuts.extend(payload.len() - 20..payload.len());
    for len in cuts {
        assert!(
            decode_quiet(&meta, Some(&payload[..len])).is_err(),
            "ppxar cut at {len}"
        );
    }
    // the unified tree: its head, the big file, and every byte of its structured tail
    let tree = vector("tree.pxar");
    let tail_start = tree.len() - 8000;
    let cuts = (0..400)
        .chain((400..tail_start).step_by(65_537))
        .chain(tail_start..tree.len());
    for len in cuts {
        assert!(
            decode_quiet(&tree[..len], None).is_err(),
            "pxar cut at {len}"
        );
    }
}

#[test]
fn truncation_error_names_the_offset_and_what_was_due() {
    let tree = vector("tree.pxar");
    match decode_quiet(&tree[..1000], None) {
        Err(PxarError::Truncated { stream, offset, .. }) => {
            assert_eq!(stream, StreamKind::Archive);
            assert_eq!(offset, 1000);
        }
        other => panic!("{other:?}"),
    }
    let mut dec = crate::pbs::pxar::Decoder::unified(&tree[..]);
    let mut events = 0;
    while let Some(ev) = dec.next().unwrap() {
        if let Event::Entry(e) = ev {
            assert!(e.offset < tree.len() as u64);
        }
        events += 1;
    }
    assert_eq!(events, 54 + 10, "54 entries and 10 directory ends");
    assert!(dec.is_finished());
    assert!(dec.next().unwrap().is_none(), "stays finished");
}

#[test]
fn legacy_entry_v1_archives_decode() {
    // §5.1 "minimal v1 archive" ([PX] tests/compat.rs): root + file.txt, Stat_V1 mtimes 1430487000 s; here
    // with encoder-exact goodbye offsets
    let enc = encode_with(
        &[file(b"file.txt", b"This is a small text file.\n")],
        false,
        true,
        1_430_486_999,
    );
    let a = decode(&enc.archive, None).unwrap();
    assert_eq!(a.entries.len(), 2);
    let m = a.entries[1].entry.metadata.as_ref().unwrap();
    assert!(m.legacy_stat);
    assert_eq!((m.stat.mtime.secs, m.stat.mtime.nanos), (1_430_487_001, 5));
    assert_eq!(
        a.entries[1].content.as_deref(),
        Some(&b"This is a small text file.\n"[..])
    );
    // and in a split archive
    let enc = encode_with(&sample_tree(), true, true, 0);
    assert_eq!(
        decode(&enc.archive, enc.payload.as_deref())
            .unwrap()
            .entries
            .len(),
        7
    );
}

#[test]
fn attribute_bytes_per_entry_are_bounded() {
    let enc = encode(&[file(b"f", b"data")], false);
    let mut m = enc.archive.clone();
    // insert XATTR items after the file's ENTRY until the bound is passed (structure beyond is irrelevant)
    let entry_at = find_items(&m, PXAR_ENTRY)[1];
    let insert_at = entry_at + 56;
    let value = vec![b'v'; 65_000];
    let mut item = Vec::new();
    item.extend_from_slice(&PXAR_XATTR.to_le_bytes());
    item.extend_from_slice(&(16 + 7 + value.len() as u64).to_le_bytes());
    item.extend_from_slice(b"user.x\0");
    item.extend_from_slice(&value);
    let count = (MAX_ATTRIBUTE_BYTES / item.len() as u64 + 1) as usize;
    let blob: Vec<u8> = item
        .iter()
        .copied()
        .cycle()
        .take(item.len() * count)
        .collect();
    m.splice(insert_at..insert_at, blob);
    let msg = assert_invalid(
        decode_quiet(&m, None),
        StreamKind::Archive,
        insert_at as u64..u64::MAX,
    );
    assert!(msg.contains("attribute items per entry"), "{msg}");
}

#[test]
fn endless_nesting_is_bounded() {
    let name = vec![b'n'; 250];
    let mut node = file(b"leaf", b"x");
    for _ in 0..(MAX_PATH_BYTES / 251 + 2) {
        node = Node::Dir(name.clone(), vec![node]);
    }
    let enc = encode(&[node], false);
    let msg = assert_invalid(
        decode_quiet(&enc.archive, None),
        StreamKind::Archive,
        0..u64::MAX,
    );
    assert!(msg.contains("entry path of at most"), "{msg}");
}
