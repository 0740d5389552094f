//! PBS chunk indexes: fixed (`.fidx`, VM disks and images) and dynamic (`.didx`, pxar streams and catalogs).
//!
//! An index is a 4096-byte header followed by one entry per chunk: a digest (fixed: every chunk but the last
//! is `chunk_size` long) or an exclusive end offset plus a digest (dynamic). The header's checksum over the
//! entries is what the manifest records for the file, so a drill recomputes it and checks every length
//! equation before trusting a single chunk reference (pbs-protocol.md §3.3 and §3.4, upstream proxmox-backup
//! `pbs-datastore/src/fixed_index.rs` and `dynamic_index.rs`).
//!
//! Index files come from the backup and are untrusted: parsing validates everything and never panics. The
//! writers produce byte-exact files (the caller supplies the uuid and ctime) for fixtures and test servers.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// Magic of a fixed index: `sha256("Proxmox Backup fixed sized chunk index v1.0")[0..8]` (pbs-protocol.md
/// §3.3, upstream `file_formats.rs` `FIXED_SIZED_CHUNK_INDEX_1_0`).
pub const FIXED_INDEX_MAGIC: [u8; 8] = [47, 127, 65, 237, 145, 253, 15, 205];
/// Magic of a dynamic index: `sha256("Proxmox Backup dynamic sized chunk index v1.0")[0..8]` (pbs-protocol.md
/// §3.4, `DYNAMIC_SIZED_CHUNK_INDEX_1_0`).
pub const DYNAMIC_INDEX_MAGIC: [u8; 8] = [28, 145, 78, 165, 25, 186, 179, 205];
/// Header length of both index kinds: one page (pbs-protocol.md §3.3/§3.4, `static_assert_size!(…, 4096)`).
pub const INDEX_HEADER_LEN: usize = 4096;
/// Smallest fixed chunk size PBS accepts (pbs-protocol.md §3.1, upstream `chunk_store.rs::verify_chunk_size`).
pub const MIN_FIXED_CHUNK_SIZE: u64 = 64 * 1024;
/// Largest fixed chunk size PBS accepts; VM backups use exactly this (pbs-protocol.md §3.1 and §3.6).
pub const MAX_FIXED_CHUNK_SIZE: u64 = 4 * 1024 * 1024;

/// Header field offsets (pbs-protocol.md §3.3/§3.4): magic 0..8, uuid 8..24, ctime 24..32, index_csum 32..64;
/// fixed only: size 64..72, chunk_size 72..80.
const UUID_AT: usize = 8;
const CTIME_AT: usize = 24;
const CSUM_AT: usize = 32;
const SIZE_AT: usize = 64;
const CHUNK_SIZE_AT: usize = 72;
/// Entry lengths: a digest (fixed), `end: u64 LE` plus a digest (dynamic).
const FIXED_ENTRY_LEN: u64 = 32;
const DYNAMIC_ENTRY_LEN: u64 = 40;
const HEADER_LEN_U64: u64 = INDEX_HEADER_LEN as u64;

/// What is wrong with an index, with byte offsets into the file. See [`IndexError`] for the file's name.
#[derive(Debug, thiserror::Error)]
pub enum IndexErrorKind {
    /// Shorter than the header.
    #[error("{len} bytes long, shorter than the {INDEX_HEADER_LEN}-byte header")]
    Truncated {
        /// Bytes present.
        len: u64,
    },
    /// Not the expected magic.
    #[error("bytes 0..8 are {found}, not the magic of a {expected} index")]
    BadMagic {
        /// The first 8 bytes, hex.
        found: String,
        /// `fixed`, `dynamic`, or `fixed or dynamic`.
        expected: &'static str,
    },
    /// The fixed chunk size is not one PBS uses.
    #[error(
        "chunk_size (bytes 72..80) is {chunk_size}; PBS fixed indexes use a power of two from \
         {MIN_FIXED_CHUNK_SIZE} to {MAX_FIXED_CHUNK_SIZE}"
    )]
    ChunkSize {
        /// The header's chunk size.
        chunk_size: u64,
    },
    /// The fixed index's length does not match its header.
    #[error(
        "file is {actual} bytes, but size {size} (bytes 64..72) in chunks of {chunk_size} needs {count} digests: \
         a file of {expected} bytes"
    )]
    FixedLength {
        /// Image size from the header.
        size: u64,
        /// Chunk size from the header.
        chunk_size: u64,
        /// Digests needed: `ceil(size / chunk_size)`.
        count: u64,
        /// File length needed.
        expected: u64,
        /// File length found.
        actual: u64,
    },
    /// The dynamic index's entries are not whole.
    #[error(
        "file is {actual} bytes: after the {INDEX_HEADER_LEN}-byte header the entries must be a multiple of \
         {DYNAMIC_ENTRY_LEN} bytes, {remainder} bytes are left over"
    )]
    DynamicLength {
        /// File length found.
        actual: u64,
        /// Bytes beyond the last whole entry.
        remainder: u64,
    },
    /// A dynamic entry ends before the one before it.
    #[error(
        "entry {entry} (at byte {offset}) ends at {end}, before the previous end {previous}; ends must not decrease"
    )]
    Unordered {
        /// Entry number.
        entry: usize,
        /// Its byte offset in the file.
        offset: u64,
        /// The previous entry's end.
        previous: u64,
        /// This entry's end.
        end: u64,
    },
    /// The header checksum does not match the entries.
    #[error("index checksum (bytes 32..64) is {stored}, but the entries hash to {computed}")]
    Checksum {
        /// Stored checksum, hex.
        stored: String,
        /// Computed checksum, hex.
        computed: String,
    },
    /// A writer was given a digest count that does not match size and chunk size.
    #[error("size {size} in chunks of {chunk_size} needs {expected} digests, {actual} were given")]
    DigestCount {
        /// Image size.
        size: u64,
        /// Chunk size.
        chunk_size: u64,
        /// Digests needed.
        expected: u64,
        /// Digests given.
        actual: u64,
    },
    /// A writer was given chunk lengths whose sum overflows.
    #[error("chunk lengths add up to more than 2^64 bytes at entry {entry}")]
    Overflow {
        /// Entry number.
        entry: usize,
    },
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[source] io::Error),
}

impl IndexErrorKind {
    /// Whether the index itself is bad (the backup failed), as opposed to an error reading it.
    pub fn is_backup_fault(&self) -> bool {
        !matches!(self, IndexErrorKind::Io(_))
    }

    /// Names the index.
    pub fn in_index(self, index: impl Into<String>) -> IndexError {
        IndexError {
            index: index.into(),
            kind: self,
        }
    }
}

/// An index could not be parsed or built: which file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("index {index}: {kind}")]
pub struct IndexError {
    /// The index's name (archive file name).
    pub index: String,
    /// What is wrong.
    pub kind: IndexErrorKind,
}

impl IndexError {
    /// Whether the index itself is bad; see [`IndexErrorKind::is_backup_fault`].
    pub fn is_backup_fault(&self) -> bool {
        self.kind.is_backup_fault()
    }
}

/// One chunk of an archive, as an index describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkInfo {
    /// Position in the index.
    pub index: usize,
    /// Offset of the chunk's data in the archive stream or image.
    pub offset: u64,
    /// Length of the chunk's (decoded) data.
    pub length: u64,
    /// The chunk's digest: its name in the chunk store.
    pub digest: [u8; 32],
}

impl ChunkInfo {
    /// Offset just past the chunk.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// An index header (its first 4096 bytes).
type Header = [u8; INDEX_HEADER_LEN];

/// Copies `N` bytes at `at` out of the header; offsets are constants within the header.
fn field<const N: usize>(header: &Header, at: usize) -> [u8; N] {
    header
        .get(at..at.saturating_add(N))
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .unwrap_or([0u8; N])
}

fn put(header: &mut Header, at: usize, bytes: &[u8]) {
    if let Some(slot) = header.get_mut(at..at.saturating_add(bytes.len())) {
        slot.copy_from_slice(bytes);
    }
}

/// Splits `bytes` into header and body.
fn split_header(bytes: &[u8]) -> Result<(&Header, &[u8]), IndexErrorKind> {
    bytes
        .split_first_chunk::<INDEX_HEADER_LEN>()
        .ok_or(IndexErrorKind::Truncated {
            len: bytes.len() as u64,
        })
}

/// Reads the header from `reader`; a short file is [`IndexErrorKind::Truncated`], not an I/O error.
fn read_header(reader: &mut impl Read) -> Result<Header, IndexErrorKind> {
    let mut header = [0u8; INDEX_HEADER_LEN];
    let mut filled = 0;
    while let Some(rest) = header.get_mut(filled..)
        && !rest.is_empty()
    {
        match reader.read(rest) {
            Ok(0) => return Err(IndexErrorKind::Truncated { len: filled as u64 }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IndexErrorKind::Io(e)),
        }
    }
    Ok(header)
}

fn check_magic(
    header: &Header,
    magic: [u8; 8],
    expected: &'static str,
) -> Result<(), IndexErrorKind> {
    let found: [u8; 8] = field(header, 0);
    if found == magic {
        Ok(())
    } else {
        Err(IndexErrorKind::BadMagic {
            found: hex::encode(found),
            expected,
        })
    }
}

fn check_csum(header: &Header, computed: [u8; 32]) -> Result<[u8; 32], IndexErrorKind> {
    let stored: [u8; 32] = field(header, CSUM_AT);
    if stored == computed {
        Ok(stored)
    } else {
        Err(IndexErrorKind::Checksum {
            stored: hex::encode(stored),
            computed: hex::encode(computed),
        })
    }
}

fn header_start(magic: [u8; 8], uuid: &[u8; 16], ctime: i64, csum: &[u8; 32]) -> Box<Header> {
    let mut header = Box::new([0u8; INDEX_HEADER_LEN]);
    put(&mut header, 0, &magic);
    put(&mut header, UUID_AT, uuid);
    put(&mut header, CTIME_AT, &ctime.to_le_bytes());
    put(&mut header, CSUM_AT, csum);
    header
}

/// A fixed index (`.fidx`): an image of `size` bytes cut into `chunk_size` chunks (pbs-protocol.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIndex {
    uuid: [u8; 16],
    ctime: i64,
    csum: [u8; 32],
    size: u64,
    chunk_size: u64,
    digests: Vec<[u8; 32]>,
}

fn check_chunk_size(chunk_size: u64) -> Result<(), IndexErrorKind> {
    if chunk_size.is_power_of_two()
        && (MIN_FIXED_CHUNK_SIZE..=MAX_FIXED_CHUNK_SIZE).contains(&chunk_size)
    {
        Ok(())
    } else {
        Err(IndexErrorKind::ChunkSize { chunk_size })
    }
}

/// `SHA-256(digest_0 || digest_1 || …)` (pbs-protocol.md §3.3).
fn fixed_csum(digests: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(digest);
    }
    hasher.finalize().into()
}

impl FixedIndex {
    /// Builds an index for writing. `digests` must hold `ceil(size / chunk_size)` entries.
    pub fn new(
        uuid: [u8; 16],
        ctime: i64,
        size: u64,
        chunk_size: u64,
        digests: Vec<[u8; 32]>,
    ) -> Result<Self, IndexErrorKind> {
        check_chunk_size(chunk_size)?;
        let expected = size.div_ceil(chunk_size);
        if digests.len() as u64 != expected {
            return Err(IndexErrorKind::DigestCount {
                size,
                chunk_size,
                expected,
                actual: digests.len() as u64,
            });
        }
        Ok(FixedIndex {
            uuid,
            ctime,
            csum: fixed_csum(&digests),
            size,
            chunk_size,
            digests,
        })
    }

    /// Parses a whole `.fidx` file; `name` appears in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, IndexError> {
        let parsed = split_header(bytes).and_then(|(header, body)| {
            let (size, chunk_size, expected_body) = Self::check_header(header)?;
            Self::from_parts(header, body, size, chunk_size, expected_body)
        });
        parsed.map_err(|k| k.in_index(name))
    }

    /// Reads a `.fidx` file from `reader`, reading no more than the header says the file holds (plus one byte
    /// to detect trailing data).
    pub fn read_from(name: &str, mut reader: impl Read) -> Result<Self, IndexError> {
        let parsed = read_header(&mut reader).and_then(|header| Self::read_body(&header, reader));
        parsed.map_err(|k| k.in_index(name))
    }

    fn read_body(header: &Header, reader: impl Read) -> Result<Self, IndexErrorKind> {
        let (size, chunk_size, expected_body) = Self::check_header(header)?;
        let mut body = Vec::new();
        reader
            .take(expected_body.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(IndexErrorKind::Io)?;
        Self::from_parts(header, &body, size, chunk_size, expected_body)
    }

    /// Checks magic and chunk size; returns size, chunk size and the expected length of the digest list.
    fn check_header(header: &Header) -> Result<(u64, u64, u64), IndexErrorKind> {
        check_magic(header, FIXED_INDEX_MAGIC, "fixed")?;
        let size = u64::from_le_bytes(field(header, SIZE_AT));
        let chunk_size = u64::from_le_bytes(field(header, CHUNK_SIZE_AT));
        check_chunk_size(chunk_size)?;
        // chunk_size >= 2^16, so count <= 2^48 and count * 32 <= 2^53: no overflow.
        let count = size.div_ceil(chunk_size);
        Ok((size, chunk_size, count.saturating_mul(FIXED_ENTRY_LEN)))
    }

    fn from_parts(
        header: &Header,
        body: &[u8],
        size: u64,
        chunk_size: u64,
        expected_body: u64,
    ) -> Result<Self, IndexErrorKind> {
        // pbs-protocol.md §3.3: file_len - 4096 == 32 * ceil(size / chunk_size).
        if body.len() as u64 != expected_body {
            return Err(IndexErrorKind::FixedLength {
                size,
                chunk_size,
                count: expected_body / FIXED_ENTRY_LEN,
                expected: HEADER_LEN_U64.saturating_add(expected_body),
                actual: HEADER_LEN_U64.saturating_add(body.len() as u64),
            });
        }
        let (digests, _) = body.as_chunks::<32>();
        let digests = digests.to_vec();
        let csum = check_csum(header, fixed_csum(&digests))?;
        Ok(FixedIndex {
            uuid: field(header, UUID_AT),
            ctime: i64::from_le_bytes(field(header, CTIME_AT)),
            csum,
            size,
            chunk_size,
            digests,
        })
    }

    /// The file's bytes: header (reserved bytes zero) and digests.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = header_start(FIXED_INDEX_MAGIC, &self.uuid, self.ctime, &self.csum);
        put(&mut header, SIZE_AT, &self.size.to_le_bytes());
        put(&mut header, CHUNK_SIZE_AT, &self.chunk_size.to_le_bytes());
        let mut out = Vec::with_capacity(INDEX_HEADER_LEN + 32 * self.digests.len());
        out.extend_from_slice(&header[..]);
        for digest in &self.digests {
            out.extend_from_slice(digest);
        }
        out
    }

    /// Writes [`FixedIndex::to_bytes`] to `writer`.
    pub fn write_to(&self, mut writer: impl Write) -> io::Result<()> {
        writer.write_all(&self.to_bytes())
    }

    /// The uuid from the header.
    pub fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// The creation time from the header (seconds since the epoch).
    pub fn ctime(&self) -> i64 {
        self.ctime
    }

    /// The index checksum (verified against the entries): the manifest's `csum` for this file.
    pub fn csum(&self) -> &[u8; 32] {
        &self.csum
    }

    /// The image size: the manifest's `size` for this file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// The chunk digests, in order.
    pub fn digests(&self) -> &[[u8; 32]] {
        &self.digests
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.digests.len()
    }

    /// Chunk `index`: offset `index * chunk_size`, length `min(chunk_size, size - offset)` (pbs-protocol.md
    /// §3.2).
    pub fn chunk(&self, index: usize) -> Option<ChunkInfo> {
        let digest = *self.digests.get(index)?;
        let offset = (index as u64).checked_mul(self.chunk_size)?;
        let length = self.chunk_size.min(self.size.checked_sub(offset)?);
        Some(ChunkInfo {
            index,
            offset,
            length,
            digest,
        })
    }

    /// All chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkInfo> + '_ {
        (0..self.chunk_count()).filter_map(|i| self.chunk(i))
    }

    /// The chunk holding byte `offset` of the image.
    pub fn chunk_at_offset(&self, offset: u64) -> Option<ChunkInfo> {
        if offset >= self.size {
            return None;
        }
        self.chunk(usize::try_from(offset / self.chunk_size).ok()?)
    }
}

/// One entry of a dynamic index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DynamicEntry {
    /// Exclusive end offset of the chunk in the stream.
    pub end: u64,
    /// The chunk's digest.
    pub digest: [u8; 32],
}

/// A dynamic index (`.didx`): a stream cut into chunks of varying length (pbs-protocol.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicIndex {
    uuid: [u8; 16],
    ctime: i64,
    csum: [u8; 32],
    entries: Vec<DynamicEntry>,
}

/// `SHA-256(end_0_le64 || digest_0 || end_1_le64 || digest_1 || …)` (pbs-protocol.md §3.4).
fn dynamic_csum(entries: &[DynamicEntry]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(entry.end.to_le_bytes());
        hasher.update(entry.digest);
    }
    hasher.finalize().into()
}

/// Checks that ends never decrease.
fn check_order(entries: &[DynamicEntry]) -> Result<(), IndexErrorKind> {
    let mut previous = 0u64;
    for (entry, item) in entries.iter().enumerate() {
        if item.end < previous {
            return Err(IndexErrorKind::Unordered {
                entry,
                offset: HEADER_LEN_U64
                    .saturating_add((entry as u64).saturating_mul(DYNAMIC_ENTRY_LEN)),
                previous,
                end: item.end,
            });
        }
        previous = item.end;
    }
    Ok(())
}

impl DynamicIndex {
    /// Builds an index for writing from entries with non-decreasing ends.
    pub fn new(
        uuid: [u8; 16],
        ctime: i64,
        entries: Vec<DynamicEntry>,
    ) -> Result<Self, IndexErrorKind> {
        check_order(&entries)?;
        Ok(DynamicIndex {
            uuid,
            ctime,
            csum: dynamic_csum(&entries),
            entries,
        })
    }

    /// Builds an index for writing from `(length, digest)` pairs in stream order.
    pub fn from_chunk_lengths(
        uuid: [u8; 16],
        ctime: i64,
        chunks: &[(u64, [u8; 32])],
    ) -> Result<Self, IndexErrorKind> {
        let mut end = 0u64;
        let mut entries = Vec::with_capacity(chunks.len());
        for (entry, (length, digest)) in chunks.iter().enumerate() {
            end = end
                .checked_add(*length)
                .ok_or(IndexErrorKind::Overflow { entry })?;
            entries.push(DynamicEntry {
                end,
                digest: *digest,
            });
        }
        Self::new(uuid, ctime, entries)
    }

    /// Parses a whole `.didx` file; `name` appears in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, IndexError> {
        let parsed = split_header(bytes).and_then(|(header, body)| {
            check_magic(header, DYNAMIC_INDEX_MAGIC, "dynamic")?;
            Self::from_parts(header, body)
        });
        parsed.map_err(|k| k.in_index(name))
    }

    /// Reads a `.didx` file from `reader` to its end.
    pub fn read_from(name: &str, mut reader: impl Read) -> Result<Self, IndexError> {
        let parsed = read_header(&mut reader).and_then(|header| Self::read_body(&header, reader));
        parsed.map_err(|k| k.in_index(name))
    }

    fn read_body(header: &Header, mut reader: impl Read) -> Result<Self, IndexErrorKind> {
        check_magic(header, DYNAMIC_INDEX_MAGIC, "dynamic")?;
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(IndexErrorKind::Io)?;
        Self::from_parts(header, &body)
    }

    fn from_parts(header: &Header, body: &[u8]) -> Result<Self, IndexErrorKind> {
        // pbs-protocol.md §3.4: (file_len - 4096) % 40 == 0.
        let (raw_entries, rest) = body.as_chunks::<40>();
        if !rest.is_empty() {
            return Err(IndexErrorKind::DynamicLength {
                actual: HEADER_LEN_U64.saturating_add(body.len() as u64),
                remainder: rest.len() as u64,
            });
        }
        let entries: Vec<DynamicEntry> = raw_entries
            .iter()
            .map(|raw| {
                let (end, digest) = raw.split_at(8);
                let mut end_bytes = [0u8; 8];
                end_bytes.copy_from_slice(end);
                let mut digest_bytes = [0u8; 32];
                digest_bytes.copy_from_slice(digest);
                DynamicEntry {
                    end: u64::from_le_bytes(end_bytes),
                    digest: digest_bytes,
                }
            })
            .collect();
        check_order(&entries)?;
        let csum = check_csum(header, dynamic_csum(&entries))?;
        Ok(DynamicIndex {
            uuid: field(header, UUID_AT),
            ctime: i64::from_le_bytes(field(header, CTIME_AT)),
            csum,
            entries,
        })
    }

    /// The file's bytes: header (reserved bytes zero) and entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = header_start(DYNAMIC_INDEX_MAGIC, &self.uuid, self.ctime, &self.csum);
        let mut out = Vec::with_capacity(INDEX_HEADER_LEN + 40 * self.entries.len());
        out.extend_from_slice(&header[..]);
        for entry in &self.entries {
            out.extend_from_slice(&entry.end.to_le_bytes());
            out.extend_from_slice(&entry.digest);
        }
        out
    }

    /// Writes [`DynamicIndex::to_bytes`] to `writer`.
    pub fn write_to(&self, mut writer: impl Write) -> io::Result<()> {
        writer.write_all(&self.to_bytes())
    }

    /// The uuid from the header.
    pub fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// The creation time from the header. Upstream's reader ignores it (pbs-protocol.md §3.4): don't rely on it.
    pub fn ctime(&self) -> i64 {
        self.ctime
    }

    /// The index checksum (verified against the entries): the manifest's `csum` for this file.
    pub fn csum(&self) -> &[u8; 32] {
        &self.csum
    }

    /// The stream length: the last entry's end, 0 when empty; the manifest's `size` for this file.
    pub fn size(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.end)
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[DynamicEntry] {
        &self.entries
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    /// Chunk `index`: `[end_{index-1}, end_index)` with `end_{-1} = 0` (pbs-protocol.md §3.4).
    pub fn chunk(&self, index: usize) -> Option<ChunkInfo> {
        let entry = self.entries.get(index)?;
        let offset = match index.checked_sub(1) {
            Some(previous) => self.entries.get(previous)?.end,
            None => 0,
        };
        Some(ChunkInfo {
            index,
            offset,
            length: entry.end.checked_sub(offset)?,
            digest: entry.digest,
        })
    }

    /// All chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkInfo> + '_ {
        (0..self.chunk_count()).filter_map(|i| self.chunk(i))
    }

    /// The chunk holding byte `offset` of the stream (binary search; empty chunks are skipped).
    pub fn chunk_at_offset(&self, offset: u64) -> Option<ChunkInfo> {
        let index = self.entries.partition_point(|e| e.end <= offset);
        self.chunk(index)
    }
}

/// Either kind of index, told apart by its magic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index {
    /// A `.fidx`.
    Fixed(FixedIndex),
    /// A `.didx`.
    Dynamic(DynamicIndex),
}

impl Index {
    /// Parses either kind of index; `name` appears in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, IndexError> {
        match bytes.first_chunk::<8>() {
            Some(&FIXED_INDEX_MAGIC) => FixedIndex::parse(name, bytes).map(Index::Fixed),
            Some(&DYNAMIC_INDEX_MAGIC) => DynamicIndex::parse(name, bytes).map(Index::Dynamic),
            _ => Err(Self::unknown(bytes).in_index(name)),
        }
    }

    fn unknown(bytes: &[u8]) -> IndexErrorKind {
        if bytes.len() < INDEX_HEADER_LEN {
            IndexErrorKind::Truncated {
                len: bytes.len() as u64,
            }
        } else {
            IndexErrorKind::BadMagic {
                found: hex::encode(bytes.get(..8).unwrap_or(&[])),
                expected: "fixed or dynamic",
            }
        }
    }

    /// Reads either kind of index from `reader`.
    pub fn read_from(name: &str, mut reader: impl Read) -> Result<Self, IndexError> {
        let parsed = read_header(&mut reader).and_then(|header| match header.first_chunk::<8>() {
            Some(&FIXED_INDEX_MAGIC) => FixedIndex::read_body(&header, reader).map(Index::Fixed),
            Some(&DYNAMIC_INDEX_MAGIC) => {
                DynamicIndex::read_body(&header, reader).map(Index::Dynamic)
            }
            _ => Err(Self::unknown(&header[..])),
        });
        parsed.map_err(|k| k.in_index(name))
    }

    /// The index checksum: the manifest's `csum` for this file.
    pub fn csum(&self) -> &[u8; 32] {
        match self {
            Index::Fixed(index) => index.csum(),
            Index::Dynamic(index) => index.csum(),
        }
    }

    /// The image or stream length: the manifest's `size` for this file.
    pub fn size(&self) -> u64 {
        match self {
            Index::Fixed(index) => index.size(),
            Index::Dynamic(index) => index.size(),
        }
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        match self {
            Index::Fixed(index) => index.chunk_count(),
            Index::Dynamic(index) => index.chunk_count(),
        }
    }

    /// Chunk `index`.
    pub fn chunk(&self, index: usize) -> Option<ChunkInfo> {
        match self {
            Index::Fixed(fixed) => fixed.chunk(index),
            Index::Dynamic(dynamic) => dynamic.chunk(index),
        }
    }

    /// All chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkInfo> + '_ {
        (0..self.chunk_count()).filter_map(|i| self.chunk(i))
    }

    /// The chunk holding byte `offset`.
    pub fn chunk_at_offset(&self, offset: u64) -> Option<ChunkInfo> {
        match self {
            Index::Fixed(index) => index.chunk_at_offset(offset),
            Index::Dynamic(index) => index.chunk_at_offset(offset),
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Index::Fixed(index) => index.to_bytes(),
            Index::Dynamic(index) => index.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbs::crypt::sha256;

    const UUID: [u8; 16] = [0x11; 16];
    const CTIME: i64 = 1_717_570_000;

    fn digest(i: u32) -> [u8; 32] {
        sha256(&i.to_le_bytes())
    }

    fn sample_fixed() -> FixedIndex {
        // 3 chunks of 64 KiB, the last one partial.
        let size = 2 * 65536 + 1000;
        FixedIndex::new(UUID, CTIME, size, 65536, (0..3).map(digest).collect()).unwrap()
    }

    fn sample_dynamic() -> DynamicIndex {
        DynamicIndex::from_chunk_lengths(
            UUID,
            CTIME,
            &[(100, digest(0)), (5000, digest(1)), (7, digest(2))],
        )
        .unwrap()
    }

    #[test]
    fn magics_are_the_hashes_of_their_strings() {
        // pbs-protocol.md §3.3/§3.4.
        assert_eq!(
            sha256(b"Proxmox Backup fixed sized chunk index v1.0")[..8],
            FIXED_INDEX_MAGIC
        );
        assert_eq!(
            sha256(b"Proxmox Backup dynamic sized chunk index v1.0")[..8],
            DYNAMIC_INDEX_MAGIC
        );
        assert_eq!(hex::encode(FIXED_INDEX_MAGIC), "2f7f41ed91fd0fcd");
        assert_eq!(hex::encode(DYNAMIC_INDEX_MAGIC), "1c914ea519bab3cd");
    }

    #[test]
    fn fixed_layout_is_byte_exact() {
        let index = sample_fixed();
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), 4096 + 3 * 32);
        assert_eq!(bytes[0..8], FIXED_INDEX_MAGIC);
        assert_eq!(bytes[8..24], UUID);
        assert_eq!(bytes[24..32], CTIME.to_le_bytes());
        let mut concatenated = Vec::new();
        for i in 0..3 {
            concatenated.extend_from_slice(&digest(i));
        }
        assert_eq!(bytes[32..64], sha256(&concatenated));
        assert_eq!(bytes[64..72], (2u64 * 65536 + 1000).to_le_bytes());
        assert_eq!(bytes[72..80], 65536u64.to_le_bytes());
        assert!(bytes[80..4096].iter().all(|b| *b == 0));
        assert_eq!(bytes[4096..], concatenated);
    }

    #[test]
    fn fixed_round_trip_and_chunks() {
        let index = sample_fixed();
        let bytes = index.to_bytes();
        let parsed = FixedIndex::parse("drive-scsi0.img.fidx", &bytes).unwrap();
        assert_eq!(parsed, index);
        assert_eq!(FixedIndex::read_from("r", &bytes[..]).unwrap(), index);
        assert_eq!(
            Index::parse("i", &bytes).unwrap(),
            Index::Fixed(index.clone())
        );
        assert_eq!(Index::read_from("i", &bytes[..]).unwrap().to_bytes(), bytes);
        let chunks: Vec<_> = parsed.chunks().collect();
        assert_eq!(
            chunks
                .iter()
                .map(|c| (c.offset, c.length))
                .collect::<Vec<_>>(),
            [(0, 65536), (65536, 65536), (131072, 1000)]
        );
        assert_eq!(chunks[2].digest, digest(2));
        assert_eq!(parsed.chunk_at_offset(65536).unwrap().index, 1);
        assert_eq!(parsed.chunk_at_offset(131072 + 999).unwrap().index, 2);
        assert!(parsed.chunk_at_offset(131072 + 1000).is_none());
        assert!(parsed.chunk(3).is_none());

        // Empty image: no digests.
        let empty = FixedIndex::new(UUID, CTIME, 0, 4 << 20, vec![]).unwrap();
        let bytes = empty.to_bytes();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(FixedIndex::parse("e", &bytes).unwrap().chunk_count(), 0);
    }

    #[test]
    fn dynamic_layout_is_byte_exact() {
        let index = sample_dynamic();
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), 4096 + 3 * 40);
        assert_eq!(bytes[0..8], DYNAMIC_INDEX_MAGIC);
        assert_eq!(bytes[8..24], UUID);
        assert_eq!(bytes[24..32], CTIME.to_le_bytes());
        let mut entries = Vec::new();
        for (end, i) in [(100u64, 0), (5100, 1), (5107, 2)] {
            entries.extend_from_slice(&end.to_le_bytes());
            entries.extend_from_slice(&digest(i));
        }
        assert_eq!(bytes[32..64], sha256(&entries));
        assert!(bytes[64..4096].iter().all(|b| *b == 0));
        assert_eq!(bytes[4096..], entries);
    }

    #[test]
    fn dynamic_round_trip_and_chunks() {
        let index = sample_dynamic();
        let bytes = index.to_bytes();
        let parsed = DynamicIndex::parse("root.pxar.didx", &bytes).unwrap();
        assert_eq!(parsed, index);
        assert_eq!(DynamicIndex::read_from("r", &bytes[..]).unwrap(), index);
        assert_eq!(
            Index::parse("i", &bytes).unwrap(),
            Index::Dynamic(index.clone())
        );
        assert_eq!(parsed.size(), 5107);
        assert_eq!(
            parsed
                .chunks()
                .map(|c| (c.offset, c.length))
                .collect::<Vec<_>>(),
            [(0, 100), (100, 5000), (5100, 7)]
        );
        assert_eq!(parsed.chunk_at_offset(0).unwrap().index, 0);
        assert_eq!(parsed.chunk_at_offset(99).unwrap().index, 0);
        assert_eq!(parsed.chunk_at_offset(100).unwrap().index, 1);
        assert_eq!(parsed.chunk_at_offset(5106).unwrap().index, 2);
        assert!(parsed.chunk_at_offset(5107).is_none());

        // Empty stream; zero-length chunks are allowed (ends only must not decrease).
        let empty = DynamicIndex::new(UUID, CTIME, vec![]).unwrap();
        assert_eq!(
            DynamicIndex::parse("e", &empty.to_bytes()).unwrap().size(),
            0
        );
        let zero = DynamicIndex::from_chunk_lengths(
            UUID,
            CTIME,
            &[(10, digest(0)), (0, digest(1)), (5, digest(2))],
        )
        .unwrap();
        let parsed = DynamicIndex::parse("z", &zero.to_bytes()).unwrap();
        assert_eq!(parsed.chunk(1).unwrap().length, 0);
        assert_eq!(parsed.chunk_at_offset(10).unwrap().index, 2);
    }

    fn with_csum(mut bytes: Vec<u8>) -> Vec<u8> {
        let csum = sha256(&bytes[4096..]);
        bytes[32..64].copy_from_slice(&csum);
        bytes
    }

    #[test]
    fn checksum_mismatch() {
        for mut bytes in [sample_fixed().to_bytes(), sample_dynamic().to_bytes()] {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            let err = Index::parse("x.idx", &bytes).unwrap_err();
            assert!(matches!(err.kind, IndexErrorKind::Checksum { .. }), "{err}");
            assert!(err.is_backup_fault());
            assert!(
                err.to_string()
                    .starts_with("index x.idx: index checksum (bytes 32..64)"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_lengths() {
        let fixed = sample_fixed().to_bytes();
        // One digest missing, one too many, a partial digest.
        for len in [fixed.len() - 32, fixed.len() - 1] {
            let err = FixedIndex::parse("f", &fixed[..len]).unwrap_err();
            assert!(
                matches!(err.kind, IndexErrorKind::FixedLength { .. }),
                "{err}"
            );
        }
        let mut longer = fixed.clone();
        longer.extend_from_slice(&[0u8; 32]);
        let err = FixedIndex::parse("f", &longer).unwrap_err();
        assert!(
            matches!(
                err.kind,
                IndexErrorKind::FixedLength {
                    count: 3,
                    expected: 4192,
                    actual: 4224,
                    ..
                }
            ),
            "{err}"
        );
        assert!(FixedIndex::read_from("f", &longer[..]).is_err());
        assert!(FixedIndex::read_from("f", &fixed[..fixed.len() - 32]).is_err());

        // A size that claims a huge image.
        let mut huge = fixed.clone();
        huge[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            FixedIndex::parse("f", &huge).unwrap_err().kind,
            IndexErrorKind::FixedLength { .. }
        ));
        assert!(FixedIndex::read_from("f", &huge[..]).is_err());

        let dynamic = sample_dynamic().to_bytes();
        let err = DynamicIndex::parse("d", &dynamic[..dynamic.len() - 1]).unwrap_err();
        assert!(
            matches!(
                err.kind,
                IndexErrorKind::DynamicLength { remainder: 39, .. }
            ),
            "{err}"
        );

        for short in [&fixed[..0], &fixed[..100], &fixed[..4095]] {
            assert!(matches!(
                Index::parse("s", short).unwrap_err().kind,
                IndexErrorKind::Truncated { .. }
            ));
            assert!(matches!(
                Index::read_from("s", short).unwrap_err().kind,
                IndexErrorKind::Truncated { .. }
            ));
        }
    }

    #[test]
    fn bad_chunk_sizes() {
        for chunk_size in [0u64, 1, 4096, 65535, 65537, 3 << 16, 8 << 20, u64::MAX] {
            let mut bytes = sample_fixed().to_bytes();
            bytes[72..80].copy_from_slice(&chunk_size.to_le_bytes());
            let err = FixedIndex::parse("f", &bytes).unwrap_err();
            assert!(
                matches!(err.kind, IndexErrorKind::ChunkSize { chunk_size: c } if c == chunk_size),
                "{err}"
            );
            assert!(FixedIndex::new(UUID, CTIME, 0, chunk_size, vec![]).is_err());
        }
        assert!(matches!(
            FixedIndex::new(UUID, CTIME, 65537, 65536, vec![[0; 32]]),
            Err(IndexErrorKind::DigestCount {
                expected: 2,
                actual: 1,
                ..
            })
        ));
    }

    #[test]
    fn decreasing_ends_are_rejected() {
        let mut bytes = sample_dynamic().to_bytes();
        // Entry 2 ends at 50, before entry 1's end (5100).
        bytes[4096 + 80..4096 + 88].copy_from_slice(&50u64.to_le_bytes());
        let bytes = with_csum(bytes);
        let err = DynamicIndex::parse("d", &bytes).unwrap_err();
        assert!(
            matches!(
                err.kind,
                IndexErrorKind::Unordered {
                    entry: 2,
                    offset: 4176,
                    previous: 5100,
                    end: 50
                }
            ),
            "{err}"
        );
        assert!(
            DynamicIndex::new(
                UUID,
                CTIME,
                vec![
                    DynamicEntry {
                        end: 5,
                        digest: [0; 32]
                    },
                    DynamicEntry {
                        end: 4,
                        digest: [0; 32]
                    }
                ]
            )
            .is_err()
        );
        assert!(matches!(
            DynamicIndex::from_chunk_lengths(UUID, CTIME, &[(u64::MAX, [0; 32]), (1, [0; 32])]),
            Err(IndexErrorKind::Overflow { entry: 1 })
        ));
    }

    #[test]
    fn wrong_magic() {
        let fixed = sample_fixed().to_bytes();
        let dynamic = sample_dynamic().to_bytes();
        assert!(matches!(
            DynamicIndex::parse("d", &fixed).unwrap_err().kind,
            IndexErrorKind::BadMagic {
                expected: "dynamic",
                ..
            }
        ));
        assert!(matches!(
            FixedIndex::parse("f", &dynamic).unwrap_err().kind,
            IndexErrorKind::BadMagic {
                expected: "fixed",
                ..
            }
        ));
        let mut other = fixed.clone();
        other[0] ^= 1;
        assert!(matches!(
            Index::parse("i", &other).unwrap_err().kind,
            IndexErrorKind::BadMagic { .. }
        ));
        assert!(Index::read_from("i", &other[..]).is_err());
    }

    #[test]
    fn io_errors_are_not_backup_faults() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = Index::read_from("i", Failing).unwrap_err();
        assert!(matches!(err.kind, IndexErrorKind::Io(_)));
        assert!(!err.is_backup_fault());
    }

    /// Deterministic xorshift generator for the no-panic test.
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

    #[test]
    fn mutated_and_random_indexes_never_panic() {
        let seeds = [sample_fixed().to_bytes(), sample_dynamic().to_bytes()];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..3000 {
            let mut input = seeds[round % 2].clone();
            match rng.below(8) {
                0 => input.truncate(rng.below(input.len() + 1)),
                1 => input.extend((0..rng.below(100)).map(|_| rng.next() as u8)),
                2 => {
                    // Random header fields: size, chunk size, ctime.
                    let at = [24, 64, 72][rng.below(3)];
                    input[at..at + 8].copy_from_slice(&rng.next().to_le_bytes());
                }
                3 => {
                    // Entry damage with a recomputed checksum, so that the order and length checks run.
                    let at = 4096 + rng.below(input.len() - 4096);
                    input[at] = rng.next() as u8;
                    input = with_csum(input);
                }
                4 => {
                    let len = rng.below(4200);
                    input = (0..len).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 && input.len() >= 8 {
                        input[..8].copy_from_slice(&seeds[rng.below(2)][..8]);
                    }
                }
                _ => {
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(input.len());
                        input[at] ^= 1 << rng.below(8);
                    }
                }
            }
            if let Ok(index) = Index::parse("fuzz", &input) {
                let count = index.chunks().count();
                assert_eq!(count, index.chunk_count());
                let _ = index.chunk_at_offset(rng.next() % (index.size().saturating_add(1)));
                // Reserved header bytes are not checked (nor by upstream), and written as zeros.
                let written = index.to_bytes();
                assert_eq!(written[..64], input[..64]);
                assert_eq!(written[4096..], input[4096..]);
            }
            let _ = Index::read_from("fuzz", &input[..]);
            let _ = FixedIndex::parse("fuzz", &input);
            let _ = DynamicIndex::parse("fuzz", &input);
            let _ = FixedIndex::read_from("fuzz", &input[..]);
            let _ = DynamicIndex::read_from("fuzz", &input[..]);
        }
    }
}
