//! PBS DataBlobs: the container of every chunk and of every `*.blob` file in a snapshot.
//!
//! A blob is `magic[8] | crc32_le[4] | payload` (unencrypted) or `magic[8] | crc32_le[4] | iv[16] | tag[16] |
//! ciphertext` (encrypted); the magic says whether the payload is zstd-compressed and/or AES-256-GCM encrypted
//! (pbs-protocol.md §3.1, upstream proxmox-backup `pbs-datastore/src/file_formats.rs` and `data_blob.rs`).
//!
//! Blobs come from the backup, which is untrusted: every decoder here is bounded by a caller-supplied output
//! size (a zstd frame may not declare its size, and a hostile one may expand without limit), returns an error
//! for any malformed input instead of panicking, and [`verify_chunk`] checks a chunk end to end (CRC, crypt
//! mode, decryption, decompression, length, digest) the way a restore drill must.

use std::io::Read;

use super::crypt::{AeadError, CryptConfig, sha256};

/// Magic of an unencrypted, uncompressed blob: `sha256("Proxmox Backup uncompressed blob v1.0")[0..8]`
/// (pbs-protocol.md §3.1, upstream `file_formats.rs` `UNCOMPRESSED_BLOB_MAGIC_1_0`).
pub const UNCOMPRESSED_BLOB_MAGIC: [u8; 8] = [66, 171, 56, 7, 190, 131, 112, 161];
/// Magic of an unencrypted, zstd-compressed blob: `sha256("Proxmox Backup zstd compressed blob v1.0")[0..8]`
/// (pbs-protocol.md §3.1, `COMPRESSED_BLOB_MAGIC_1_0`).
pub const COMPRESSED_BLOB_MAGIC: [u8; 8] = [49, 185, 88, 66, 111, 182, 163, 127];
/// Magic of an encrypted, uncompressed blob: `sha256("Proxmox Backup encrypted blob v1.0")[0..8]`
/// (pbs-protocol.md §3.1, `ENCRYPTED_BLOB_MAGIC_1_0`).
pub const ENCRYPTED_BLOB_MAGIC: [u8; 8] = [123, 103, 133, 190, 34, 45, 76, 240];
/// Magic of a compressed-then-encrypted blob: `sha256("Proxmox Backup zstd compressed encrypted blob
/// v1.0")[0..8]` (pbs-protocol.md §3.1, `ENCR_COMPR_BLOB_MAGIC_1_0`).
pub const ENCRYPTED_COMPRESSED_BLOB_MAGIC: [u8; 8] = [230, 89, 27, 191, 11, 191, 216, 11];

/// Header length of an unencrypted blob: magic 8 + CRC 4 (pbs-protocol.md §3.1, `DataBlobHeader`).
pub const HEADER_LEN: usize = 12;
/// Header length of an encrypted blob: magic 8 + CRC 4 + IV 16 + tag 16 (pbs-protocol.md §3.1,
/// `EncryptedDataBlobHeader`).
pub const ENCRYPTED_HEADER_LEN: usize = 44;

/// Largest blob PBS writes: `DataBlob::encode` refuses more (pbs-protocol.md §3.1, upstream `MAX_BLOB_SIZE`).
/// Use it as the decode bound for `*.blob` files.
pub const MAX_BLOB_SIZE: usize = 128 * 1024 * 1024;
/// Largest chunk PBS makes: dynamic chunks are at most 4 × the 4 MiB average, fixed chunks at most 4 MiB
/// (pbs-protocol.md §3.1).
pub const MAX_CHUNK_SIZE: usize = 16 * 1024 * 1024;

/// zstd level PBS compresses with (pbs-protocol.md §3.1).
const ZSTD_LEVEL: i32 = 1;
/// Largest zstd window accepted: libzstd's own default limit (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`, 128 MiB), set
/// explicitly so the decoder's memory stays bounded whatever the frame header claims.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The four kinds of blob, told apart by their magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// Plain payload.
    Uncompressed,
    /// One zstd frame.
    Compressed,
    /// AES-256-GCM ciphertext of the plain data.
    Encrypted,
    /// AES-256-GCM ciphertext of a zstd frame.
    EncryptedCompressed,
}

impl BlobKind {
    /// All kinds, in magic-table order.
    pub const ALL: [BlobKind; 4] = [
        BlobKind::Uncompressed,
        BlobKind::Compressed,
        BlobKind::Encrypted,
        BlobKind::EncryptedCompressed,
    ];

    /// The kind with this magic, if any.
    pub fn from_magic(magic: &[u8; 8]) -> Option<Self> {
        BlobKind::ALL
            .into_iter()
            .find(|kind| kind.magic() == *magic)
    }

    /// The kind's magic.
    pub const fn magic(self) -> [u8; 8] {
        match self {
            BlobKind::Uncompressed => UNCOMPRESSED_BLOB_MAGIC,
            BlobKind::Compressed => COMPRESSED_BLOB_MAGIC,
            BlobKind::Encrypted => ENCRYPTED_BLOB_MAGIC,
            BlobKind::EncryptedCompressed => ENCRYPTED_COMPRESSED_BLOB_MAGIC,
        }
    }

    /// Whether the payload is AES-256-GCM ciphertext.
    pub const fn is_encrypted(self) -> bool {
        matches!(self, BlobKind::Encrypted | BlobKind::EncryptedCompressed)
    }

    /// Whether the (decrypted) payload is a zstd frame.
    pub const fn is_compressed(self) -> bool {
        matches!(self, BlobKind::Compressed | BlobKind::EncryptedCompressed)
    }

    /// Header length: 12, or 44 when encrypted.
    pub const fn header_len(self) -> usize {
        if self.is_encrypted() {
            ENCRYPTED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

/// What is wrong with a blob, with byte offsets into it. See [`BlobError`] for the blob's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobErrorKind {
    /// Shorter than the header its magic needs.
    #[error("{len} bytes long, shorter than the {need}-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Header length needed.
        need: usize,
    },
    /// Not one of the four blob magics.
    #[error("bytes 0..8 are {found}, which is not a DataBlob magic: not a PBS blob or chunk")]
    BadMagic {
        /// The first (up to) 8 bytes, hex.
        found: String,
    },
    /// The CRC-32 in bytes 8..12 does not match the data.
    #[error(
        "CRC-32 mismatch over bytes {start}..{end}: bytes 8..12 say {stored:08x}, the data give {computed:08x}"
    )]
    CrcMismatch {
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
        /// First byte covered.
        start: usize,
        /// End of the covered bytes (the blob length).
        end: usize,
    },
    /// Encrypted, but no key was given.
    #[error(
        "encrypted, but no encryption key is configured; configure the key to verify and restore it"
    )]
    KeyRequired,
    /// AES-256-GCM authentication failed.
    #[error(
        "AES-256-GCM authentication of bytes {start}..{end} failed: the data were altered, or the key is not the \
         one this backup was made with"
    )]
    Decrypt {
        /// First ciphertext byte.
        start: usize,
        /// End of the ciphertext.
        end: usize,
    },
    /// The zstd frame does not decode.
    #[error("zstd data at bytes {start}..{end} do not decode: {detail}")]
    Decompress {
        /// First compressed byte (in the blob, or in the decrypted payload when encrypted).
        start: usize,
        /// End of the compressed bytes.
        end: usize,
        /// The decoder's complaint.
        detail: String,
    },
    /// The decoded data exceed the caller's bound.
    #[error("decodes to more than the {limit} bytes allowed")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
}

impl BlobErrorKind {
    /// Whether the blob itself is bad (the backup failed), as opposed to lifeboat lacking the key.
    ///
    /// A GCM failure counts as a backup fault: check the key's fingerprint against the manifest first, so that
    /// a wrong key is reported as such before any chunk is decrypted.
    pub fn is_backup_fault(&self) -> bool {
        !matches!(self, BlobErrorKind::KeyRequired)
    }

    /// Names the blob.
    pub fn in_blob(self, blob: impl Into<String>) -> BlobError {
        BlobError {
            blob: blob.into(),
            kind: self,
        }
    }
}

/// A blob could not be decoded: which blob and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blob {blob}: {kind}")]
pub struct BlobError {
    /// The blob's name (file name or chunk digest).
    pub blob: String,
    /// What is wrong.
    pub kind: BlobErrorKind,
}

impl BlobError {
    /// Whether the blob itself is bad; see [`BlobErrorKind::is_backup_fault`].
    pub fn is_backup_fault(&self) -> bool {
        self.kind.is_backup_fault()
    }
}

/// A blob could not be encoded (only for writing fixtures and test servers).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// More than [`MAX_BLOB_SIZE`] bytes.
    #[error("cannot encode a blob of {len} bytes: PBS blobs hold at most {MAX_BLOB_SIZE}")]
    TooLarge {
        /// Data length.
        len: usize,
    },
    /// zstd failed.
    #[error("zstd compression failed: {0}")]
    Compress(#[source] std::io::Error),
    /// AES-GCM failed.
    #[error("encryption failed: {0}")]
    Encrypt(#[source] AeadError),
}

/// A parsed blob borrowing its bytes. Parsing checks the magic and the header length only; call
/// [`DataBlob::verify_crc`] and [`DataBlob::decode`] (or use [`decode_blob`] / [`verify_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBlob<'a> {
    raw: &'a [u8],
    kind: BlobKind,
    crc: u32,
    iv: Option<[u8; 16]>,
    tag: Option<[u8; 16]>,
}

impl<'a> DataBlob<'a> {
    /// Reads the header of `raw`.
    pub fn parse(raw: &'a [u8]) -> Result<Self, BlobErrorKind> {
        let Some((magic, rest)) = raw.split_first_chunk::<8>() else {
            return Err(BlobErrorKind::Truncated {
                len: raw.len(),
                need: HEADER_LEN,
            });
        };
        let kind = BlobKind::from_magic(magic).ok_or_else(|| BlobErrorKind::BadMagic {
            found: hex::encode(magic),
        })?;
        let truncated = || BlobErrorKind::Truncated {
            len: raw.len(),
            need: kind.header_len(),
        };
        let (crc, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (iv, tag) = if kind.is_encrypted() {
            let (iv, rest) = rest.split_first_chunk::<16>().ok_or_else(truncated)?;
            let (tag, _) = rest.split_first_chunk::<16>().ok_or_else(truncated)?;
            (Some(*iv), Some(*tag))
        } else {
            (None, None)
        };
        Ok(DataBlob {
            raw,
            kind,
            crc: u32::from_le_bytes(*crc),
            iv,
            tag,
        })
    }

    /// The blob's kind.
    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    /// The whole blob.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The CRC stored in bytes 8..12.
    pub fn stored_crc(&self) -> u32 {
        self.crc
    }

    /// The IV of an encrypted blob.
    pub fn iv(&self) -> Option<&[u8; 16]> {
        self.iv.as_ref()
    }

    /// The GCM tag of an encrypted blob.
    pub fn tag(&self) -> Option<&[u8; 16]> {
        self.tag.as_ref()
    }

    /// Everything after the header: the (compressed) data, or the ciphertext. This is what the CRC covers.
    pub fn payload(&self) -> &'a [u8] {
        self.raw.get(self.kind.header_len()..).unwrap_or(&[])
    }

    /// CRC-32 (IEEE) over everything after the header (pbs-protocol.md §3.1, upstream `compute_crc`).
    pub fn compute_crc(&self) -> u32 {
        crc32fast::hash(self.payload())
    }

    /// Checks the stored CRC.
    pub fn verify_crc(&self) -> Result<(), BlobErrorKind> {
        let computed = self.compute_crc();
        if computed == self.crc {
            Ok(())
        } else {
            Err(BlobErrorKind::CrcMismatch {
                stored: self.crc,
                computed,
                start: self.kind.header_len(),
                end: self.raw.len(),
            })
        }
    }

    /// Decrypts (with `crypt`, required for encrypted blobs) and decompresses the payload, producing at most
    /// `max_size` bytes. Does not check the CRC.
    pub fn decode(
        &self,
        crypt: Option<&CryptConfig>,
        max_size: usize,
    ) -> Result<Vec<u8>, BlobErrorKind> {
        let start = self.kind.header_len();
        let end = self.raw.len();
        let payload = self.payload();
        match self.kind {
            BlobKind::Uncompressed => {
                if payload.len() > max_size {
                    return Err(BlobErrorKind::TooLarge { limit: max_size });
                }
                Ok(payload.to_vec())
            }
            BlobKind::Compressed => zstd_decode_bounded(payload, max_size, start),
            BlobKind::Encrypted | BlobKind::EncryptedCompressed => {
                let crypt = crypt.ok_or(BlobErrorKind::KeyRequired)?;
                if self.kind == BlobKind::Encrypted && payload.len() > max_size {
                    return Err(BlobErrorKind::TooLarge { limit: max_size });
                }
                let (Some(iv), Some(tag)) = (&self.iv, &self.tag) else {
                    // parse() sets both for encrypted kinds.
                    return Err(BlobErrorKind::Truncated {
                        len: end,
                        need: ENCRYPTED_HEADER_LEN,
                    });
                };
                let plain = crypt
                    .decrypt(iv, tag, payload)
                    .map_err(|_| BlobErrorKind::Decrypt { start, end })?;
                if self.kind == BlobKind::Encrypted {
                    Ok(plain)
                } else {
                    // Offsets of a failure are within the decrypted zstd frame.
                    zstd_decode_bounded(&plain, max_size, 0)
                }
            }
        }
    }
}

/// Decodes one or more zstd frames, producing at most `max_size` bytes without trusting any size field.
fn zstd_decode_bounded(
    compressed: &[u8],
    max_size: usize,
    offset: usize,
) -> Result<Vec<u8>, BlobErrorKind> {
    let failed = |detail: String| BlobErrorKind::Decompress {
        start: offset,
        end: offset.saturating_add(compressed.len()),
        detail,
    };
    if compressed.is_empty() {
        return Err(failed("no zstd frame (empty payload)".into()));
    }
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(compressed).map_err(|e| failed(e.to_string()))?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(|e| failed(e.to_string()))?;
    // Grow with the data actually produced; the first guess is bounded by both the limit and the input.
    let mut out = Vec::with_capacity(max_size.min(compressed.len().saturating_mul(4)));
    let limit = u64::try_from(max_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| failed(e.to_string()))?;
    if out.len() > max_size {
        return Err(BlobErrorKind::TooLarge { limit: max_size });
    }
    Ok(out)
}

/// Parses `raw`, checks its CRC and decodes it to at most `max_size` bytes ([`MAX_BLOB_SIZE`] for `*.blob`
/// files). `name` appears in errors.
pub fn decode_blob(
    name: &str,
    raw: &[u8],
    crypt: Option<&CryptConfig>,
    max_size: usize,
) -> Result<Vec<u8>, BlobError> {
    let blob = DataBlob::parse(raw).map_err(|k| k.in_blob(name))?;
    blob.verify_crc().map_err(|k| k.in_blob(name))?;
    blob.decode(crypt, max_size).map_err(|k| k.in_blob(name))
}

/// Encodes `data` as PBS does (upstream `DataBlob::encode`): zstd level 1 only when `compress` is set and the
/// result is smaller; encrypted with `encrypt = (key, iv)` when given. The IV must never repeat for a key.
pub fn encode_blob(
    data: &[u8],
    encrypt: Option<(&CryptConfig, &[u8; 16])>,
    compress: bool,
) -> Result<Vec<u8>, EncodeError> {
    if data.len() > MAX_BLOB_SIZE {
        return Err(EncodeError::TooLarge { len: data.len() });
    }
    let compressed = if compress {
        let frame = zstd::bulk::compress(data, ZSTD_LEVEL).map_err(EncodeError::Compress)?;
        (frame.len() < data.len()).then_some(frame)
    } else {
        None
    };
    let (kind, body) = match (&compressed, encrypt.is_some()) {
        (Some(frame), false) => (BlobKind::Compressed, frame.as_slice()),
        (None, false) => (BlobKind::Uncompressed, data),
        (Some(frame), true) => (BlobKind::EncryptedCompressed, frame.as_slice()),
        (None, true) => (BlobKind::Encrypted, data),
    };
    let mut out = Vec::with_capacity(kind.header_len() + body.len());
    out.extend_from_slice(&kind.magic());
    out.extend_from_slice(&[0u8; 4]);
    let payload_crc = match encrypt {
        Some((crypt, iv)) => {
            let (ciphertext, tag) = crypt.encrypt(iv, body).map_err(EncodeError::Encrypt)?;
            out.extend_from_slice(iv);
            out.extend_from_slice(&tag);
            out.extend_from_slice(&ciphertext);
            crc32fast::hash(&ciphertext)
        }
        None => {
            out.extend_from_slice(body);
            crc32fast::hash(body)
        }
    };
    if let Some(crc) = out.get_mut(8..12) {
        crc.copy_from_slice(&payload_crc.to_le_bytes());
    }
    Ok(out)
}

/// What is wrong with a chunk. See [`ChunkError`] for the chunk's digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkErrorKind {
    /// The blob itself is damaged.
    #[error(transparent)]
    Blob(BlobErrorKind),
    /// The index expects a chunk longer than PBS ever writes.
    #[error(
        "the index expects {expected} bytes, more than the {MAX_CHUNK_SIZE} a PBS chunk can hold"
    )]
    ExpectedTooLarge {
        /// Length from the index.
        expected: u64,
    },
    /// Encrypted chunk in an unencrypted index, or the reverse (pbs-protocol.md §3.5, `chunk_crypt_mode`).
    #[error(
        "is a {found:?} blob, but its index is {}: chunks of an encrypted index must be encrypted and chunks of \
         other indexes must not be",
        encrypted_word(.expect_encrypted)
    )]
    CryptMode {
        /// What the index's crypt mode requires.
        expect_encrypted: bool,
        /// What the chunk is.
        found: BlobKind,
    },
    /// The decoded chunk is shorter or longer than the index says.
    #[error("decodes to {actual} bytes, the index expects {expected}")]
    Length {
        /// From the index.
        expected: u64,
        /// Decoded.
        actual: u64,
    },
    /// The decoded chunk is longer than the index says (decoding stopped at the expected length).
    #[error("decodes to more than the {expected} bytes the index expects")]
    TooLong {
        /// From the index.
        expected: u64,
    },
    /// The decoded chunk has another digest: it is not the chunk the index names.
    #[error("content digest is {actual}, not the chunk's name")]
    Digest {
        /// Digest of the decoded data (hex).
        actual: String,
    },
}

fn encrypted_word(encrypted: &bool) -> &'static str {
    if *encrypted {
        "encrypted"
    } else {
        "not encrypted"
    }
}

impl ChunkErrorKind {
    /// Whether the chunk is bad (the backup failed), as opposed to lifeboat lacking the key.
    pub fn is_backup_fault(&self) -> bool {
        match self {
            ChunkErrorKind::Blob(kind) => kind.is_backup_fault(),
            _ => true,
        }
    }
}

/// A chunk failed verification: which chunk and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chunk {digest}: {kind}")]
pub struct ChunkError {
    /// The chunk's digest (its name in the datastore), hex.
    pub digest: String,
    /// What is wrong.
    pub kind: ChunkErrorKind,
}

impl ChunkError {
    fn new(digest: &[u8; 32], kind: ChunkErrorKind) -> Self {
        ChunkError {
            digest: hex::encode(digest),
            kind,
        }
    }

    /// Whether the chunk is bad; see [`ChunkErrorKind::is_backup_fault`].
    pub fn is_backup_fault(&self) -> bool {
        self.kind.is_backup_fault()
    }
}

/// Parses a chunk, checks its CRC and that its encryption matches its index (`expect_encrypted` = the index's
/// crypt mode is `encrypt`).
fn open_chunk<'a>(
    raw: &'a [u8],
    expected_digest: &[u8; 32],
    expect_encrypted: bool,
) -> Result<DataBlob<'a>, ChunkError> {
    let fail = |kind| ChunkError::new(expected_digest, kind);
    let blob = DataBlob::parse(raw).map_err(|k| fail(ChunkErrorKind::Blob(k)))?;
    blob.verify_crc()
        .map_err(|k| fail(ChunkErrorKind::Blob(k)))?;
    if blob.kind().is_encrypted() != expect_encrypted {
        return Err(fail(ChunkErrorKind::CryptMode {
            expect_encrypted,
            found: blob.kind(),
        }));
    }
    Ok(blob)
}

/// Verifies a chunk end to end and returns its data: CRC, crypt mode against the index, decryption (with
/// `crypt`) and decompression bounded by `expected_len`, length, and digest (`SHA-256(data)`, or
/// `SHA-256(data || id_key)` when `expect_encrypted`; pbs-protocol.md §3.2).
///
/// `expect_encrypted` is true when the index's crypt mode is `encrypt` (not for `sign-only`).
pub fn verify_chunk(
    blob_bytes: &[u8],
    expected_digest: &[u8; 32],
    expected_len: u64,
    crypt: Option<&CryptConfig>,
    expect_encrypted: bool,
) -> Result<Vec<u8>, ChunkError> {
    let fail = |kind| ChunkError::new(expected_digest, kind);
    let max_size = usize::try_from(expected_len)
        .ok()
        .filter(|len| *len <= MAX_CHUNK_SIZE)
        .ok_or_else(|| {
            fail(ChunkErrorKind::ExpectedTooLarge {
                expected: expected_len,
            })
        })?;
    let blob = open_chunk(blob_bytes, expected_digest, expect_encrypted)?;
    let data = blob.decode(crypt, max_size).map_err(|kind| match kind {
        BlobErrorKind::TooLarge { .. } => fail(ChunkErrorKind::TooLong {
            expected: expected_len,
        }),
        kind => fail(ChunkErrorKind::Blob(kind)),
    })?;
    if data.len() != max_size {
        return Err(fail(ChunkErrorKind::Length {
            expected: expected_len,
            actual: data.len() as u64,
        }));
    }
    let digest = match (expect_encrypted, crypt) {
        (true, Some(crypt)) => crypt.compute_digest(&data),
        // decode() has already refused an encrypted chunk without a key.
        (true, None) => return Err(fail(ChunkErrorKind::Blob(BlobErrorKind::KeyRequired))),
        (false, _) => sha256(&data),
    };
    if digest != *expected_digest {
        return Err(fail(ChunkErrorKind::Digest {
            actual: hex::encode(digest),
        }));
    }
    Ok(data)
}

/// What can be checked of a chunk without its key, as the PBS server's own verify does: CRC, crypt mode against
/// the index, and for encrypted-uncompressed chunks the ciphertext length (equal to the plaintext length).
/// Unencrypted chunks are fully checked by [`verify_chunk`] with no key.
pub fn check_chunk_without_key(
    blob_bytes: &[u8],
    expected_digest: &[u8; 32],
    expected_len: u64,
    expect_encrypted: bool,
) -> Result<BlobKind, ChunkError> {
    let blob = open_chunk(blob_bytes, expected_digest, expect_encrypted)?;
    if blob.kind() == BlobKind::Encrypted && blob.payload().len() as u64 != expected_len {
        return Err(ChunkError::new(
            expected_digest,
            ChunkErrorKind::Length {
                expected: expected_len,
                actual: blob.payload().len() as u64,
            },
        ));
    }
    Ok(blob.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_data() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 255) as u8).collect()
    }

    #[test]
    fn magics_are_the_hashes_of_their_strings() {
        // pbs-protocol.md §3.1 and §5.1.
        for (magic, text) in [
            (
                UNCOMPRESSED_BLOB_MAGIC,
                "Proxmox Backup uncompressed blob v1.0",
            ),
            (
                COMPRESSED_BLOB_MAGIC,
                "Proxmox Backup zstd compressed blob v1.0",
            ),
            (ENCRYPTED_BLOB_MAGIC, "Proxmox Backup encrypted blob v1.0"),
            (
                ENCRYPTED_COMPRESSED_BLOB_MAGIC,
                "Proxmox Backup zstd compressed encrypted blob v1.0",
            ),
        ] {
            assert_eq!(sha256(text.as_bytes())[..8], magic, "{text}");
        }
        assert_eq!(hex::encode(UNCOMPRESSED_BLOB_MAGIC), "42ab3807be8370a1");
        assert_eq!(hex::encode(COMPRESSED_BLOB_MAGIC), "31b958426fb6a37f");
        assert_eq!(hex::encode(ENCRYPTED_BLOB_MAGIC), "7b6785be222d4cf0");
        assert_eq!(
            hex::encode(ENCRYPTED_COMPRESSED_BLOB_MAGIC),
            "e6591bbf0bbfd80b"
        );
    }

    #[test]
    fn hello_pbs_blob_vector() {
        // pbs-protocol.md §5.2.
        let blob = encode_blob(b"hello pbs\n", None, false).unwrap();
        assert_eq!(
            hex::encode(&blob),
            "42ab3807be8370a10e95d40068656c6c6f207062730a"
        );
        assert_eq!(
            hex::encode(sha256(&blob)),
            "6680aba7efbf4c0addc496326fe9e686d677fa8c4426a1e728643db422098397"
        );
        // Compression would not make it smaller, so the encoder keeps it plain.
        assert_eq!(encode_blob(b"hello pbs\n", None, true).unwrap(), blob);
        assert_eq!(
            decode_blob("hello.blob", &blob, None, 100).unwrap(),
            b"hello pbs\n"
        );
        assert_eq!(DataBlob::parse(&blob).unwrap().stored_crc(), 0x00d4_950e);
    }

    const ENCRYPTED_VECTOR: &str = "7b6785be222d4cf035b6cd87000102030405060708090a0b0c0d0e0f9ce48b7441217c93c22622d718165c81415ad6262ce0e363da9e4a5fc7c079a1c1d1c66c65f153c7dbec3b53184af39bbb8f46fabffc791a8fa7ea9e177a128c06019f00374e3b303c7067743fa63c244dd153f5f932dcaf3633c82dafd067694538478a3d912535844c991875157d17548af9d2";

    #[test]
    fn openssl_encrypted_blob_vector() {
        // pbs-protocol.md §5.2: made by OpenSSL with a 16-byte GCM IV, key [1; 32], IV 00..0f.
        let raw = hex::decode(ENCRYPTED_VECTOR).unwrap();
        assert_eq!(raw.len(), 144);
        let crypt = CryptConfig::new([1u8; 32]);
        let plain = "hello pbs ".repeat(10);
        let blob = DataBlob::parse(&raw).unwrap();
        assert_eq!(blob.kind(), BlobKind::Encrypted);
        assert_eq!(
            blob.iv().unwrap(),
            &core::array::from_fn::<u8, 16, _>(|i| i as u8)
        );
        assert_eq!(
            decode_blob("v", &raw, Some(&crypt), 1000).unwrap(),
            plain.as_bytes()
        );

        let digest: [u8; 32] =
            hex::decode("68bf5f179595f6ece7ceba76ee124a086bcc2bb73a4525a0fe28e40e7c30c616")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(crypt.compute_digest(plain.as_bytes()), digest);
        assert_eq!(
            verify_chunk(&raw, &digest, 100, Some(&crypt), true).unwrap(),
            plain.as_bytes()
        );
        assert_eq!(
            check_chunk_without_key(&raw, &digest, 100, true).unwrap(),
            BlobKind::Encrypted
        );

        // Our encoder produces the same bytes from the same key and IV.
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            encode_blob(plain.as_bytes(), Some((&crypt, &iv)), false).unwrap(),
            raw
        );
    }

    #[test]
    fn all_kinds_round_trip() {
        let crypt = CryptConfig::new([1u8; 32]);
        let iv = [7u8; 16];
        let data = test_data();
        for (encrypt, compress, kind) in [
            (false, false, BlobKind::Uncompressed),
            (false, true, BlobKind::Compressed),
            (true, false, BlobKind::Encrypted),
            (true, true, BlobKind::EncryptedCompressed),
        ] {
            let raw = encode_blob(&data, encrypt.then_some((&crypt, &iv)), compress).unwrap();
            let blob = DataBlob::parse(&raw).unwrap();
            assert_eq!(blob.kind(), kind);
            blob.verify_crc().unwrap();
            assert_eq!(blob.decode(Some(&crypt), data.len()).unwrap(), data);
            let digest = if encrypt {
                crypt.compute_digest(&data)
            } else {
                sha256(&data)
            };
            let decoded =
                verify_chunk(&raw, &digest, data.len() as u64, Some(&crypt), encrypt).unwrap();
            assert_eq!(decoded, data);
            if !encrypt {
                verify_chunk(&raw, &digest, data.len() as u64, None, false).unwrap();
            }
        }
        // Empty data.
        let raw = encode_blob(b"", None, true).unwrap();
        assert_eq!(raw.len(), HEADER_LEN);
        assert_eq!(decode_blob("e", &raw, None, 0).unwrap(), b"");
    }

    #[test]
    fn zstd_without_content_size_decodes() {
        // A streaming encoder does not write the content size; the decoder must not need it.
        let data = test_data();
        let mut frame = Vec::new();
        {
            let mut encoder = zstd::stream::write::Encoder::new(&mut frame, 1).unwrap();
            std::io::Write::write_all(&mut encoder, &data).unwrap();
            encoder.finish().unwrap();
        }
        let mut raw = COMPRESSED_BLOB_MAGIC.to_vec();
        raw.extend_from_slice(&crc32fast::hash(&frame).to_le_bytes());
        raw.extend_from_slice(&frame);
        assert_eq!(decode_blob("s", &raw, None, data.len()).unwrap(), data);
        assert_eq!(
            decode_blob("s", &raw, None, data.len() - 1)
                .unwrap_err()
                .kind,
            BlobErrorKind::TooLarge {
                limit: data.len() - 1
            }
        );
    }

    #[test]
    fn decompression_is_bounded() {
        // 64 MiB of zeros compress to a few KiB; a 1 MiB bound stops the decoder early.
        let raw = encode_blob(&vec![0u8; 64 << 20], None, true).unwrap();
        assert!(raw.len() < 64 << 10);
        let err = decode_blob("bomb", &raw, None, 1 << 20).unwrap_err();
        assert_eq!(err.kind, BlobErrorKind::TooLarge { limit: 1 << 20 });
        assert!(err.is_backup_fault());
        let digest = sha256(&[0u8; 16]);
        let err = verify_chunk(&raw, &digest, 16, None, false).unwrap_err();
        assert_eq!(err.kind, ChunkErrorKind::TooLong { expected: 16 });
    }

    #[test]
    fn bit_flipped_ciphertext_fails_authentication() {
        let crypt = CryptConfig::new([1u8; 32]);
        let mut raw = hex::decode(ENCRYPTED_VECTOR).unwrap();
        raw[60] ^= 0x10;
        // Fix the CRC so that only GCM can notice.
        let crc = crc32fast::hash(&raw[ENCRYPTED_HEADER_LEN..]);
        raw[8..12].copy_from_slice(&crc.to_le_bytes());
        let err = decode_blob("flip", &raw, Some(&crypt), 1000).unwrap_err();
        assert_eq!(
            err.kind,
            BlobErrorKind::Decrypt {
                start: 44,
                end: 144
            }
        );
        assert!(err.to_string().contains("blob flip"), "{err}");
        // Tag and IV are not covered by the CRC, but by GCM.
        for at in [12, 30] {
            let mut raw = hex::decode(ENCRYPTED_VECTOR).unwrap();
            raw[at] ^= 1;
            let err = decode_blob("iv/tag", &raw, Some(&crypt), 1000).unwrap_err();
            assert!(matches!(err.kind, BlobErrorKind::Decrypt { .. }), "{err}");
        }
    }

    #[test]
    fn crc_mismatch_is_reported_with_offsets() {
        let mut raw = encode_blob(&test_data(), None, true).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        let err = decode_blob("x.blob", &raw, None, MAX_BLOB_SIZE).unwrap_err();
        assert!(
            matches!(err.kind, BlobErrorKind::CrcMismatch { start: 12, .. }),
            "{err}"
        );
        assert!(err.is_backup_fault());
        assert!(
            err.to_string()
                .starts_with("blob x.blob: CRC-32 mismatch over bytes 12.."),
            "{err}"
        );
    }

    #[test]
    fn truncated_blobs() {
        let crypt = CryptConfig::new([1u8; 32]);
        let raw = hex::decode(ENCRYPTED_VECTOR).unwrap();
        for len in [0, 5, 8, 11, 12, 43] {
            let err = DataBlob::parse(&raw[..len]).unwrap_err();
            assert!(
                matches!(err, BlobErrorKind::Truncated { .. }),
                "{len}: {err}"
            );
        }
        // Header complete, ciphertext cut: the CRC catches it.
        assert!(matches!(
            decode_blob("t", &raw[..100], Some(&crypt), 1000)
                .unwrap_err()
                .kind,
            BlobErrorKind::CrcMismatch { .. }
        ));
        // A truncated zstd frame with a recomputed CRC: zstd catches it.
        let full = encode_blob(&test_data(), None, true).unwrap();
        let mut cut = full[..full.len() / 2].to_vec();
        let crc = crc32fast::hash(&cut[HEADER_LEN..]);
        cut[8..12].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_blob("t", &cut, None, MAX_BLOB_SIZE)
                .unwrap_err()
                .kind,
            BlobErrorKind::Decompress { .. }
        ));
        // A compressed blob with no frame at all.
        let mut empty = COMPRESSED_BLOB_MAGIC.to_vec();
        empty.extend_from_slice(&crc32fast::hash(b"").to_le_bytes());
        assert!(matches!(
            decode_blob("t", &empty, None, 10).unwrap_err().kind,
            BlobErrorKind::Decompress { .. }
        ));
    }

    #[test]
    fn bad_magic() {
        let err = DataBlob::parse(b"not a blob at all").unwrap_err();
        assert_eq!(
            err,
            BlobErrorKind::BadMagic {
                found: hex::encode(b"not a bl")
            }
        );
    }

    #[test]
    fn wrong_key_and_missing_key() {
        let raw = hex::decode(ENCRYPTED_VECTOR).unwrap();
        let wrong = CryptConfig::new([2u8; 32]);
        let err = decode_blob("w", &raw, Some(&wrong), 1000).unwrap_err();
        assert!(matches!(err.kind, BlobErrorKind::Decrypt { .. }));
        let err = decode_blob("w", &raw, None, 1000).unwrap_err();
        assert_eq!(err.kind, BlobErrorKind::KeyRequired);
        assert!(!err.is_backup_fault());
        let digest = [0u8; 32];
        let err = verify_chunk(&raw, &digest, 100, None, true).unwrap_err();
        assert_eq!(err.kind, ChunkErrorKind::Blob(BlobErrorKind::KeyRequired));
        assert!(!err.is_backup_fault());
    }

    #[test]
    fn crypt_mode_mismatch() {
        let crypt = CryptConfig::new([1u8; 32]);
        let data = b"some chunk data".to_vec();
        // Encrypted chunk in an unencrypted index.
        let encrypted = encode_blob(&data, Some((&crypt, &[0u8; 16])), false).unwrap();
        let err = verify_chunk(
            &encrypted,
            &crypt.compute_digest(&data),
            15,
            Some(&crypt),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.kind,
            ChunkErrorKind::CryptMode {
                expect_encrypted: false,
                found: BlobKind::Encrypted
            }
        );
        assert!(err.is_backup_fault());
        assert!(check_chunk_without_key(&encrypted, &[0; 32], 15, false).is_err());
        // Unencrypted chunk in an encrypted index.
        let plain = encode_blob(&data, None, false).unwrap();
        let err = verify_chunk(&plain, &sha256(&data), 15, Some(&crypt), true).unwrap_err();
        assert!(matches!(
            err.kind,
            ChunkErrorKind::CryptMode {
                expect_encrypted: true,
                ..
            }
        ));
    }

    #[test]
    fn chunk_length_and_digest_checks() {
        let crypt = CryptConfig::new([1u8; 32]);
        let data = test_data();
        let raw = encode_blob(&data, None, true).unwrap();
        let digest = sha256(&data);
        let n = data.len() as u64;
        assert_eq!(
            verify_chunk(&raw, &digest, n + 1, None, false)
                .unwrap_err()
                .kind,
            ChunkErrorKind::Length {
                expected: n + 1,
                actual: n
            }
        );
        assert_eq!(
            verify_chunk(&raw, &digest, n - 1, None, false)
                .unwrap_err()
                .kind,
            ChunkErrorKind::TooLong { expected: n - 1 }
        );
        let other = sha256(b"other");
        let err = verify_chunk(&raw, &other, n, None, false).unwrap_err();
        assert_eq!(
            err.kind,
            ChunkErrorKind::Digest {
                actual: hex::encode(digest)
            }
        );
        assert!(
            err.to_string()
                .starts_with(&format!("chunk {}", hex::encode(other)))
        );
        assert!(matches!(
            verify_chunk(&raw, &digest, 1 << 40, None, false)
                .unwrap_err()
                .kind,
            ChunkErrorKind::ExpectedTooLarge { .. }
        ));
        // sign-only index: unencrypted chunk, plain digest, even with a key.
        verify_chunk(&raw, &digest, n, Some(&crypt), false).unwrap();
        // An encrypted chunk named by the plain digest is wrong (the digest must include id_key).
        let enc = encode_blob(&data, Some((&crypt, &[1u8; 16])), true).unwrap();
        assert!(matches!(
            verify_chunk(&enc, &digest, n, Some(&crypt), true)
                .unwrap_err()
                .kind,
            ChunkErrorKind::Digest { .. }
        ));
        // Without the key: length of an encrypted-uncompressed chunk is still checkable.
        let enc = encode_blob(&data, Some((&crypt, &[1u8; 16])), false).unwrap();
        assert!(matches!(
            check_chunk_without_key(&enc, &digest, n - 1, true)
                .unwrap_err()
                .kind,
            ChunkErrorKind::Length { .. }
        ));
    }

    #[test]
    fn encode_refuses_oversized_data() {
        let data = vec![0u8; MAX_BLOB_SIZE + 1];
        assert!(matches!(
            encode_blob(&data, None, false),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    /// Deterministic xorshift generator for the no-panic tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(6) {
                0 if !out.is_empty() => {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => {
                    let at = rng.below(out.len());
                    out[at] = rng.next() as u8;
                }
                2 => out.truncate(rng.below(out.len() + 1)),
                3 => out.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                4 if out.len() > 12 => {
                    // Keep the CRC right so that the decoders see the damage.
                    let at = 12 + rng.below(out.len() - 12);
                    out[at] ^= 1 << rng.below(8);
                    let kind = out.first_chunk::<8>().and_then(BlobKind::from_magic);
                    if let Some(kind) = kind
                        && out.len() >= kind.header_len()
                    {
                        let crc = crc32fast::hash(&out[kind.header_len()..]);
                        out[8..12].copy_from_slice(&crc.to_le_bytes());
                    }
                }
                _ => {
                    let at = rng.below(out.len() + 1);
                    out.insert(at, rng.next() as u8);
                }
            }
        }
        out
    }

    #[test]
    fn mutated_and_random_blobs_never_panic() {
        let crypt = CryptConfig::new([1u8; 32]);
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
        let seeds = [
            encode_blob(&data, None, false).unwrap(),
            encode_blob(&data, None, true).unwrap(),
            encode_blob(&data, Some((&crypt, &[3u8; 16])), false).unwrap(),
            encode_blob(&data, Some((&crypt, &[3u8; 16])), true).unwrap(),
            hex::decode(ENCRYPTED_VECTOR).unwrap(),
        ];
        let digest = sha256(&data);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0;
        for round in 0..4000 {
            let input = if round % 5 == 4 {
                let len = rng.below(200);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                mutate(&mut rng, &seeds[round % seeds.len()])
            };
            if let Ok(blob) = DataBlob::parse(&input) {
                let _ = blob.verify_crc();
                if blob.decode(Some(&crypt), 4096).is_ok() {
                    decoded += 1;
                }
                let _ = blob.decode(None, 10);
            }
            let _ = decode_blob("fuzz", &input, Some(&crypt), 4096);
            for encrypted in [false, true] {
                let _ = verify_chunk(&input, &digest, data.len() as u64, Some(&crypt), encrypted);
                let _ = verify_chunk(&input, &digest, 0, None, encrypted);
                let _ = check_chunk_without_key(&input, &digest, data.len() as u64, encrypted);
            }
        }
        // Some mutations (appended bytes, no-op truncations) leave decodable blobs: the test exercised both paths.
        assert!(decoded > 0);
    }
}
