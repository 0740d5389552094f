//! Shared helpers: where the upstream vectors live, and decoding a whole archive into memory.

use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::pbs::pxar::{Decoder, DirEnd, Entry, EntryKind, Event, PxarError};

/// The upstream-written pxar vectors (`shared/pbs-vectors/pxar`); the only place that knows the path.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pbs-vectors/pxar")
}

/// Bytes of one vector file.
pub fn vector(name: &str) -> Vec<u8> {
    let p = vectors_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// `expected.json` of the vectors.
pub fn expected() -> serde_json::Value {
    serde_json::from_slice(&vector("expected.json")).unwrap()
}

/// An entry with the SHA-256 and (for small files) the bytes of its contents.
pub struct Decoded {
    pub entry: Entry,
    pub sha256: Option<String>,
    pub content: Option<Vec<u8>>,
}

/// A whole decode.
pub struct Archive {
    pub version: u8,
    pub prelude: Option<Vec<u8>>,
    pub entries: Vec<Decoded>,
    pub dir_ends: Vec<DirEnd>,
}

/// Decodes everything, reading every file's contents through `Decoder::contents`.
pub fn decode(meta: &[u8], payload: Option<&[u8]>) -> Result<Archive, PxarError> {
    let mut dec = Decoder::new(meta, payload);
    let mut entries = Vec::new();
    let mut dir_ends = Vec::new();
    while let Some(ev) = dec.next()? {
        match ev {
            Event::Entry(entry) => {
                let (sha256, content) = if let EntryKind::File { size, .. } = entry.kind {
                    let mut h = Sha256::new();
                    let mut small = Vec::new();
                    let mut buf = vec![0u8; 100_000];
                    let mut r = dec.contents();
                    loop {
                        let n = r.read(&mut buf).map_err(unwrap_io)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        if size <= 4096 {
                            small.extend_from_slice(&buf[..n]);
                        }
                    }
                    (
                        Some(hex::encode(h.finalize())),
                        (size <= 4096).then_some(small),
                    )
                } else {
                    (None, None)
                };
                entries.push(Decoded {
                    entry,
                    sha256,
                    content,
                });
            }
            Event::DirEnd(end) => dir_ends.push(end),
        }
    }
    Ok(Archive {
        version: dec.format_version().unwrap_or(0),
        prelude: dec.prelude().map(<[u8]>::to_vec),
        entries,
        dir_ends,
    })
}

/// Decodes to the end, reading the contents of every other file and skipping the rest (both paths are used),
/// and returns the first error. Used by the robustness tests.
pub fn decode_quiet(meta: &[u8], payload: Option<&[u8]>) -> Result<u64, PxarError> {
    let mut dec = Decoder::new(meta, payload);
    let mut n = 0u64;
    let result = loop {
        match dec.next() {
            Ok(None) => break Ok(n),
            Ok(Some(Event::Entry(e))) => {
                n += 1;
                if matches!(e.kind, EntryKind::File { .. })
                    && n.is_multiple_of(2)
                    && let Err(e) = io::copy(&mut dec.contents(), &mut io::sink())
                {
                    break Err(unwrap_io(e));
                }
            }
            Ok(Some(Event::DirEnd(_))) => {}
            Err(e) => break Err(e),
        }
    };
    if result.is_err() {
        // a failed decoder stays failed, without panicking
        assert!(matches!(dec.next(), Err(PxarError::AlreadyFailed)));
    }
    result
}

fn unwrap_io(e: io::Error) -> PxarError {
    PxarError::from_io(e).unwrap_or_else(|e| panic!("a content read error is not a PxarError: {e}"))
}

/// Positions of every occurrence of the 8 little-endian bytes of `htype` in `data`.
pub fn find_items(data: &[u8], htype: u64) -> Vec<usize> {
    let needle = htype.to_le_bytes();
    data.windows(8)
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Overwrites the u64 at `at`.
pub fn put_u64(data: &mut [u8], at: usize, v: u64) {
    data[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads the u64 at `at`.
pub fn get_u64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}
