//! What an S3 store says about an object's content, and the hash functions to check it.
//!
//! S3 offers up to three kinds of evidence:
//! - `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}` (flexible checksums, returned on GET/HEAD with
//!   `x-amz-checksum-mode: ENABLED`). For a multipart upload a checksum is either `FULL_OBJECT` (a checksum
//!   of all bytes; CRC algorithms only) or `COMPOSITE`: the checksum of the concatenated binary checksums of
//!   the parts, shown with a `-N` suffix (AWS S3 User Guide, "Checking object integrity in Amazon S3",
//!   sections on full object and composite checksum types). CRC64NVME is always full-object.
//! - The ETag: for a single-part upload without SSE-KMS/SSE-C it is the hex MD5 of the bytes; for a multipart
//!   upload it is `hex(MD5(MD5(part1) ‖ … ‖ MD5(partN)))-N` (the widely documented S3 behaviour, e.g. the AWS
//!   re:Post knowledge article on multipart ETags). Both need the part boundaries ([`PartLayout`]).
//! - Sidecars (`NAME.sha256`, `SHA256SUMS`), compared by the caller against the object's SHA-256.
//!
//! This module parses the first two and hashes; [`crate::verify`] plans and runs the verification while the
//! bytes stream.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crc::{CRC_32_ISCSI, CRC_64_NVME, Crc, Table};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
static CRC64NVME: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_NVME);

/// A flexible-checksum algorithm S3 can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC, as zlib).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, in the order results are reported.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Sha256,
        Algorithm::Crc64Nvme,
        Algorithm::Crc32c,
        Algorithm::Crc32,
        Algorithm::Sha1,
    ];

    /// Lower-case name (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The response header carrying it.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    pub(crate) fn is_crc(self) -> bool {
        matches!(
            self,
            Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme
        )
    }
}

/// `x-amz-checksum-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// A checksum of all the object's bytes.
    FullObject,
    /// A checksum of the parts' checksums.
    Composite,
}

/// One stored checksum as the server returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChecksum {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Decoded value.
    pub value: Vec<u8>,
    /// `N` of a `-N` suffix (composite of N parts).
    pub parts: Option<u32>,
    /// The header value as sent (base64, with any suffix).
    pub shown: String,
}

/// Everything the store says about an object's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectChecksums {
    /// Well-formed checksums.
    pub stored: Vec<StoredChecksum>,
    /// Checksum headers that could not be decoded: (algorithm, raw value).
    pub malformed: Vec<(Algorithm, String)>,
    /// `x-amz-checksum-type`, when sent.
    pub kind: Option<ChecksumType>,
}

impl ObjectChecksums {
    /// Reads the `x-amz-checksum-*` headers.
    pub fn from_headers(h: &http::HeaderMap) -> Self {
        let mut out = ObjectChecksums::default();
        for a in Algorithm::ALL {
            let Some(v) = h.get(a.header()) else { continue };
            let raw = String::from_utf8_lossy(v.as_bytes()).trim().to_string();
            match parse_checksum(a, &raw) {
                Some(c) => out.stored.push(c),
                None => out.malformed.push((a, raw.chars().take(120).collect())),
            }
        }
        out.kind = h
            .get("x-amz-checksum-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| match v.trim().to_ascii_uppercase().as_str() {
                "FULL_OBJECT" => Some(ChecksumType::FullObject),
                "COMPOSITE" => Some(ChecksumType::Composite),
                _ => None,
            });
        out
    }

    /// Whether any checksum header was present.
    pub fn is_empty(&self) -> bool {
        self.stored.is_empty() && self.malformed.is_empty()
    }
}

/// Parses `BASE64` or `BASE64-N`.
pub fn parse_checksum(a: Algorithm, raw: &str) -> Option<StoredChecksum> {
    let (b64, parts) = match raw.rsplit_once('-') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
            (b, Some(n.parse::<u32>().ok().filter(|n| *n > 0)?))
        }
        _ => (raw, None),
    };
    let value = B64.decode(b64).ok()?;
    (value.len() == a.len()).then(|| StoredChecksum {
        algorithm: a,
        value,
        parts,
        shown: raw.to_string(),
    })
}

/// An ETag: hex MD5, optionally `-N` for N parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag {
    /// The 16 bytes the hex stands for.
    pub md5: [u8; 16],
    /// Part count of a multipart upload.
    pub parts: Option<u32>,
}

/// Parses an ETag that looks like an MD5 (`"hex"` or `"hex-N"`); `None` for other shapes.
pub fn parse_etag(etag: &str) -> Option<Etag> {
    let e = crate::xml::clean_etag(etag);
    let (hex_part, parts) = match e.split_once('-') {
        Some((h, n)) => (h, Some(n.parse::<u32>().ok().filter(|n| *n > 0)?)),
        None => (e.as_str(), None),
    };
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(hex_part, &mut md5).ok()?;
    Some(Etag { md5, parts })
}

/// Sizes of an object's parts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartLayout {
    /// Size of each part.
    pub sizes: Vec<u64>,
    /// `true` when middle parts were assumed to be as large as the first (only part 1 and part N were asked).
    pub inferred: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashKind {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
    Md5,
}

impl HashKind {
    pub(crate) fn of(a: Algorithm) -> HashKind {
        match a {
            Algorithm::Crc32 => HashKind::Crc32,
            Algorithm::Crc32c => HashKind::Crc32c,
            Algorithm::Crc64Nvme => HashKind::Crc64Nvme,
            Algorithm::Sha1 => HashKind::Sha1,
            Algorithm::Sha256 => HashKind::Sha256,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(crc::Digest<'static, u32, Table<16>>),
    Crc64(crc::Digest<'static, u64, Table<16>>),
    Sha1(Sha1),
    Sha256(Sha256),
    Md5(Md5),
}

impl Hasher {
    pub(crate) fn new(k: HashKind) -> Self {
        match k {
            HashKind::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            HashKind::Crc32c => Hasher::Crc32c(CRC32C.digest()),
            HashKind::Crc64Nvme => Hasher::Crc64(CRC64NVME.digest()),
            HashKind::Sha1 => Hasher::Sha1(Sha1::new()),
            HashKind::Sha256 => Hasher::Sha256(Sha256::new()),
            HashKind::Md5 => Hasher::Md5(Md5::new()),
        }
    }

    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(b),
            Hasher::Crc32c(h) => h.update(b),
            Hasher::Crc64(h) => h.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Md5(h) => h.update(b),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc64(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

/// The checksum of `data` in S3's binary form (big-endian CRCs). Test fixtures use it to upload objects with stored checksums.
pub fn checksum_of(a: Algorithm, data: &[u8]) -> Vec<u8> {
    digest_of(HashKind::of(a), data)
}

pub(crate) fn digest_of(k: HashKind, data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(k);
    h.update(data);
    h.finish()
}
