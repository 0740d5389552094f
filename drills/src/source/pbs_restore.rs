//! Restoring one PBS snapshot, shared by every way of reaching it: a datastore on disk
//! (`pbs-datastore`) or a PBS server over the reader protocol (`pbs`).
//!
//! The access layer only hands out raw bytes ([`SnapshotAccess`]: snapshot files and raw chunks); everything
//! that decides whether the backup is good happens here, once: the manifest (CRC, signature, key
//! fingerprint), each index against the manifest (size, checksum), each chunk ([`Verified`]: CRC, crypt mode,
//! decryption, bounded decompression, length, digest), the pxar structure, and the restored image's partition
//! table. A missing key or an unreachable store is an `error`; anything wrong with the bytes is `failed`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Restored;
use crate::extract::path::RelPath;
use crate::extract::sink::FileError;
use crate::extract::{RestoreError, RestoreSink, SourceState};
use crate::model::{CheckResult, CheckStatus};
use crate::pbs::blob::{MAX_BLOB_SIZE, verify_chunk};
use crate::pbs::chunks::{ChunkFault, ChunkLoader, ChunkRef, ChunkStream};
use crate::pbs::crypt::{CryptConfig, KeyConfig, sha256};
use crate::pbs::index::{ChunkInfo, DynamicIndex, FixedIndex};
use crate::pbs::manifest::{
    ArchiveType, CryptMode, FileInfo, MANIFEST_BLOB_NAME, Manifest, ManifestError, SignatureStatus,
};
use crate::pbs::pxar::extract::{PxarStream, extract_pxar};
use crate::source::RestoreRequest;
use crate::units::HumanBytes;

/// Raw chunk bytes (DataBlobs) in index order, not yet verified.
pub trait RawChunks {
    /// The stored blob of `chunk`.
    fn raw(&mut self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkFault>;
}

/// How a snapshot's bytes are reached.
pub trait SnapshotAccess {
    /// Where the snapshot is, for error messages (`/mnt/store/vm/101/…`, `pbs.example:8007 store1 vm/101/…`).
    fn location(&self) -> PathBuf;
    /// A file of the snapshot (`index.json.blob`, an index, a blob), raw. A missing file is `Corrupt`.
    fn read_file(&self, name: &str) -> Result<Vec<u8>, RestoreError>;
    /// Raw chunks of `archive`, in the order of `chunks` (which a network access may prefetch).
    fn raw_chunks<'a>(
        &'a self,
        archive: &str,
        chunks: &'a [ChunkRef],
    ) -> Result<Box<dyn RawChunks + 'a>, RestoreError>;
}

/// Verifies raw chunks into plain data (see [`verify_chunk`]) and counts distinct digests.
pub struct Verified<'a> {
    raw: Box<dyn RawChunks + 'a>,
    crypt: Option<&'a CryptConfig>,
    encrypted: bool,
    state: &'a SourceState,
    /// Distinct chunks verified so far.
    pub seen: HashSet<[u8; 32]>,
}

impl<'a> Verified<'a> {
    /// Verifies chunks of an index whose crypt mode is `encrypted`.
    pub fn new(
        raw: Box<dyn RawChunks + 'a>,
        crypt: Option<&'a CryptConfig>,
        encrypted: bool,
        state: &'a SourceState,
    ) -> Self {
        Verified {
            raw,
            crypt,
            encrypted,
            state,
            seen: HashSet::new(),
        }
    }
}

impl ChunkLoader for Verified<'_> {
    fn load(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        let raw = self.raw.raw(c)?;
        self.state.add_bytes(raw.len() as u64);
        match verify_chunk(&raw, &c.digest, c.len, self.crypt, self.encrypted) {
            Ok(data) => {
                self.seen.insert(c.digest);
                Ok(data)
            }
            Err(e) if e.is_backup_fault() => Err(ChunkFault::Bad(e.kind.to_string())),
            Err(e) => {
                self.state.mark_failed();
                Err(ChunkFault::Unreadable(io::Error::other(e.to_string())))
            }
        }
    }
}

impl ChunkLoader for &mut Verified<'_> {
    fn load(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        (**self).load(c)
    }
}

fn chunk_ref(c: ChunkInfo) -> ChunkRef {
    ChunkRef {
        digest: c.digest,
        offset: c.offset,
        len: c.length,
    }
}

/// One line for `lifeboat snapshots`: `encrypted, verify ok, protected, "comment"`.
pub fn snapshot_details(
    encrypted: bool,
    verify: &str,
    protected: bool,
    comment: Option<&str>,
) -> String {
    let mut parts = vec![
        if encrypted {
            "encrypted"
        } else {
            "not encrypted"
        }
        .to_string(),
        verify.to_string(),
    ];
    if protected {
        parts.push("protected".into());
    }
    if let Some(c) = comment {
        parts.push(format!("{c:?}"));
    }
    parts.join(", ")
}

/// The sum of a snapshot's archive sizes, from its manifest (for the free-space check).
pub fn manifest_size(raw_manifest: &[u8]) -> Option<u64> {
    Some(
        Manifest::from_blob(raw_manifest)
            .ok()?
            .files()
            .iter()
            .map(|f| f.size)
            .sum(),
    )
}

/// Restores `snapshot` (an id for messages) from `access` as `req` asks.
pub fn restore_snapshot(
    access: &dyn SnapshotAccess,
    snapshot: &str,
    crypt: Option<&CryptConfig>,
    req: &RestoreRequest,
    state: std::sync::Arc<SourceState>,
) -> Result<Restored, RestoreError> {
    let raw = access.read_file(MANIFEST_BLOB_NAME)?;
    state.add_bytes(raw.len() as u64);
    let location = access.location();
    let kept = req.evidence_dir.join(MANIFEST_BLOB_NAME);
    let kept = fs::write(&kept, &raw).ok().map(|()| kept);
    let manifest = Manifest::from_blob(&raw).map_err(|e| manifest_error(snapshot, &location, e))?;
    let mut integrity = vec![manifest_check(snapshot, &manifest, crypt, &location, kept)?];
    let selected = select_archives(&manifest, &req.archives, snapshot)?;
    let mut sink = req.sink(state.clone())?;
    let r = Restorer {
        access,
        crypt,
        state: &state,
        location,
    };
    for item in &selected {
        let check = match item {
            Selected::Blob(f) => Some(r.blob(f, &mut sink, &req.evidence_dir)?),
            Selected::Fixed(f) => {
                let (check, image) = r.image(f, &mut sink)?;
                integrity.push(check);
                image
            }
            Selected::Pxar(meta, payload) => Some(r.pxar(meta, *payload, &mut sink)?),
            Selected::Other(f) => Some(r.verify_dynamic(f)?),
        };
        integrity.extend(check);
    }
    let summary = sink.finish()?;
    Ok(Restored {
        summary,
        integrity,
        content_verified: true,
    })
}

/// What to do with each selected archive.
enum Selected<'a> {
    Blob(&'a FileInfo),
    Fixed(&'a FileInfo),
    /// A unified `.pxar.didx`, or a split `.mpxar.didx` with its `.ppxar.didx`.
    Pxar(&'a FileInfo, Option<&'a FileInfo>),
    /// Any other dynamic index (catalogs): chunks verified, nothing written.
    Other(&'a FileInfo),
}

/// `drive-scsi0.img`, `root.pxar`, `qemu-server.conf`: the name a user writes in `archives`.
fn short_name(filename: &str) -> &str {
    filename
        .strip_suffix(".didx")
        .or_else(|| filename.strip_suffix(".fidx"))
        .or_else(|| filename.strip_suffix(".blob"))
        .unwrap_or(filename)
}

fn select_archives<'a>(
    m: &'a Manifest,
    wanted: &[String],
    snapshot: &str,
) -> Result<Vec<Selected<'a>>, RestoreError> {
    let files = m.files();
    let mut out = Vec::new();
    for f in files {
        let name = f.filename.as_str();
        let short = short_name(name);
        let stem = short
            .strip_suffix(".mpxar")
            .or_else(|| short.strip_suffix(".pxar"));
        let wanted_here = wanted.is_empty()
            || wanted.iter().any(|w| {
                w == name
                    || w == short
                    || stem.is_some_and(|s| {
                        w.strip_suffix(".pxar").or(w.strip_suffix(".mpxar")) == Some(s)
                    })
            });
        if !wanted_here || name.ends_with(".ppxar.didx") {
            continue;
        }
        out.push(match f.archive_type() {
            Some(ArchiveType::Blob) => Selected::Blob(f),
            Some(ArchiveType::FixedIndex) => Selected::Fixed(f),
            Some(ArchiveType::DynamicIndex) if name.ends_with(".pxar.didx") => {
                Selected::Pxar(f, None)
            }
            Some(ArchiveType::DynamicIndex) if name.ends_with(".mpxar.didx") => {
                let partner = format!("{}.ppxar.didx", &name[..name.len() - ".mpxar.didx".len()]);
                match m.file(&partner) {
                    Some(p) => Selected::Pxar(f, Some(p)),
                    None => {
                        return Err(RestoreError::Corrupt {
                            context: format!("snapshot {snapshot}"),
                            offset: "its manifest".into(),
                            detail: format!("{name} has no payload archive {partner}"),
                        });
                    }
                }
            }
            _ => Selected::Other(f),
        });
    }
    for w in wanted {
        let found = files.iter().any(|f| {
            let short = short_name(&f.filename);
            w == &f.filename
                || w == short
                || short
                    .strip_suffix(".mpxar")
                    .is_some_and(|s| w.strip_suffix(".pxar") == Some(s))
        });
        if !found {
            let have: Vec<&str> = files.iter().map(|f| short_name(&f.filename)).collect();
            return Err(RestoreError::Corrupt {
                context: format!("snapshot {snapshot}"),
                offset: "its manifest".into(),
                detail: format!(
                    "the drill wants archive {w:?}, which this snapshot lacks (it has: {})",
                    have.join(", ")
                ),
            });
        }
    }
    Ok(out)
}

fn manifest_error(snapshot: &str, path: &Path, e: ManifestError) -> RestoreError {
    if e.is_backup_fault() {
        RestoreError::Corrupt {
            context: format!("manifest of snapshot {snapshot}"),
            offset: "index.json.blob".into(),
            detail: e.to_string(),
        }
    } else {
        RestoreError::SourceIo {
            path: path.to_path_buf(),
            source: io::Error::other(format!("{e}; check `encryption_key_file`")),
        }
    }
}

fn manifest_check(
    snapshot: &str,
    m: &Manifest,
    crypt: Option<&CryptConfig>,
    path: &Path,
    kept: Option<PathBuf>,
) -> Result<CheckResult, RestoreError> {
    let signature = match (crypt, m.signature()) {
        (Some(c), _) => match m
            .verify_signature(c)
            .map_err(|e| manifest_error(snapshot, path, e))?
        {
            SignatureStatus::Verified => {
                format!("signature verified with key {}", c.fingerprint().short())
            }
            SignatureStatus::Unsigned => "unsigned (no encrypted or signed archive)".to_string(),
        },
        (None, Some(_)) => {
            "signed, signature not checked (no encryption_key_file configured)".to_string()
        }
        (None, None) => "unsigned".to_string(),
    };
    let server = match m.verify_state() {
        Some(v) => format!("PBS verify state {}", v.state),
        None => "never verified by PBS".to_string(),
    };
    let mut c = CheckResult::new(
        "manifest",
        "integrity",
        CheckStatus::Passed,
        "index.json.blob readable, CRC and signature valid",
        format!("{} archives, {signature}, {server}", m.files().len()),
        String::new(),
    );
    c.evidence.extend(kept);
    Ok(c)
}

/// Loads the key of client-side encrypted backups; its passphrase comes from `PBS_ENCRYPTION_PASSWORD`.
/// A missing or wrong key is the environment's problem (`error`), never the backup's.
pub fn load_key(path: Option<&Path>) -> Result<Option<CryptConfig>, RestoreError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let path = &path.to_path_buf();
    let fail = |msg: String| RestoreError::SourceIo {
        path: path.clone(),
        source: io::Error::other(msg),
    };
    let bytes = fs::read(path).map_err(|e| RestoreError::SourceIo {
        path: path.clone(),
        source: e,
    })?;
    let key = KeyConfig::from_json(&bytes).map_err(|e| fail(format!("not a PBS key file: {e}")))?;
    let pass = std::env::var("PBS_ENCRYPTION_PASSWORD").ok();
    if key.needs_passphrase() && pass.is_none() {
        return Err(fail(
            "the key file is protected by a passphrase: set PBS_ENCRYPTION_PASSWORD".into(),
        ));
    }
    key.decrypt(pass.as_deref().map(str::as_bytes))
        .map(Some)
        .map_err(|e| fail(e.to_string()))
}

struct Restorer<'a> {
    access: &'a dyn SnapshotAccess,
    crypt: Option<&'a CryptConfig>,
    state: &'a SourceState,
    location: PathBuf,
}

impl Restorer<'_> {
    fn no_key(&self, name: &str) -> RestoreError {
        RestoreError::SourceIo {
            path: self.location.join(name),
            source: io::Error::other(format!(
                "archive {name} is encrypted: configure `encryption_key_file` for this source"
            )),
        }
    }

    fn blob(
        &self,
        f: &FileInfo,
        sink: &mut RestoreSink,
        evidence: &Path,
    ) -> Result<CheckResult, RestoreError> {
        if f.crypt_mode == CryptMode::Encrypt && self.crypt.is_none() {
            return Err(self.no_key(&f.filename));
        }
        let raw = self.access.read_file(&f.filename)?;
        self.state.add_bytes(raw.len() as u64);
        let data = decode_blob_checked(
            &raw,
            &f.filename,
            (f.size, f.csum),
            self.crypt,
            &self.location,
        )?;
        let out = short_name(&f.filename);
        let rel = RelPath::parse(out.as_bytes())?;
        sink.file(&rel, 0o600, data.len() as u64, &mut &data[..])
            .map_err(|e| match e {
                FileError::Sink(e) => e,
                FileError::Read(e) => RestoreError::SourceIo {
                    path: self.location.join(&f.filename),
                    source: e,
                },
            })?;
        let mut c = archive_check(
            &f.filename,
            "CRC, size and SHA-256 as in the manifest".into(),
            format!("{} decoded", HumanBytes(data.len() as u64)),
        );
        if out.ends_with(".conf") {
            let kept = evidence.join(out);
            if fs::write(&kept, &data).is_ok() {
                c.evidence.push(kept);
            }
        }
        Ok(c)
    }

    fn index_bytes(&self, f: &FileInfo) -> Result<Vec<u8>, RestoreError> {
        if f.chunks_encrypted() && self.crypt.is_none() {
            return Err(self.no_key(&f.filename));
        }
        let bytes = self.access.read_file(&f.filename)?;
        self.state.add_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    fn verified<'b>(
        &'b self,
        f: &FileInfo,
        chunks: &'b [ChunkRef],
    ) -> Result<Verified<'b>, RestoreError> {
        Ok(Verified::new(
            self.access.raw_chunks(&f.filename, chunks)?,
            self.crypt,
            f.chunks_encrypted(),
            self.state,
        ))
    }

    fn image(
        &self,
        f: &FileInfo,
        sink: &mut RestoreSink,
    ) -> Result<(CheckResult, Option<CheckResult>), RestoreError> {
        let bytes = self.index_bytes(f)?;
        let index = FixedIndex::parse(&f.filename, &bytes)
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        f.check(index.size(), index.csum())
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        let chunks: Vec<ChunkRef> = index.chunks().map(chunk_ref).collect();
        let mut loader = self.verified(f, &chunks)?;
        let out = RelPath::parse(short_name(&f.filename).as_bytes())?;
        let (count, zeros) = restore_fixed(
            &f.filename,
            &index,
            &mut loader,
            sink,
            &out,
            self.state,
            &self.location,
        )?;
        let check = archive_check(
            &f.filename,
            "index checksum as in the manifest; every chunk's CRC, crypt mode, length and digest"
                .into(),
            format!(
                "{} image, {count} chunks ({} distinct, {zeros} zero chunks written as holes)",
                HumanBytes(index.size()),
                loader.seen.len()
            ),
        );
        let image = crate::check::image::image_check(
            &format!("image {}", short_name(&f.filename)),
            &sink.root().join(out.to_path()),
            Some(index.size()),
        );
        Ok((check, image))
    }

    fn dynamic_chunks(&self, f: &FileInfo) -> Result<Vec<ChunkRef>, RestoreError> {
        let bytes = self.index_bytes(f)?;
        let index = DynamicIndex::parse(&f.filename, &bytes)
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        f.check(index.size(), index.csum())
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        Ok(index.chunks().map(chunk_ref).collect())
    }

    fn pxar(
        &self,
        meta: &FileInfo,
        payload: Option<&FileInfo>,
        sink: &mut RestoreSink,
    ) -> Result<CheckResult, RestoreError> {
        let meta_chunks = self.dynamic_chunks(meta)?;
        let payload_chunks = payload.map(|p| self.dynamic_chunks(p)).transpose()?;
        let short = short_name(&meta.filename);
        let folder = short
            .strip_suffix(".mpxar")
            .or_else(|| short.strip_suffix(".pxar"))
            .unwrap_or(short);
        sink.set_prefix(Some(RelPath::parse(folder.as_bytes())?))?;
        let stream = PxarStream {
            archive: &meta.filename,
            source_path: &self.location,
            source: self.state,
        };
        let mut meta_loader = self.verified(meta, &meta_chunks)?;
        let meta_reader = ChunkStream::new(&meta.filename, &meta_chunks, &mut meta_loader);
        let facts = match (payload, &payload_chunks) {
            (Some(p), Some(chunks)) => {
                let mut payload_loader = self.verified(p, chunks)?;
                let payload_reader = ChunkStream::new(&p.filename, chunks, &mut payload_loader);
                extract_pxar(meta_reader, Some(payload_reader), sink, &stream)
            }
            _ => extract_pxar(meta_reader, None::<io::Empty>, sink, &stream),
        };
        sink.set_prefix(None)?;
        let facts = facts?;
        let name = match payload {
            Some(p) => format!("{} + {}", meta.filename, p.filename),
            None => meta.filename.clone(),
        };
        Ok(archive_check(
            &name,
            "index checksums as in the manifest; every chunk verified; pxar structure, goodbye tables and hardlinks valid".into(),
            format!(
                "pxar v{}: {} entries ({} files, {} folders) restored into {folder}/, {} goodbye tables verified",
                facts.format_version, facts.entries, facts.files, facts.dirs, facts.goodbye_tables
            ),
        ))
    }

    fn verify_dynamic(&self, f: &FileInfo) -> Result<CheckResult, RestoreError> {
        let chunks = self.dynamic_chunks(f)?;
        let mut loader = self.verified(f, &chunks)?;
        let mut reader = ChunkStream::new(&f.filename, &chunks, &mut loader);
        let n = io::copy(&mut reader, &mut io::sink())
            .map_err(|e| stream_error(&f.filename, self.state, &self.location, e))?;
        Ok(archive_check(
            &f.filename,
            "every chunk verified".into(),
            format!("{} in {} chunks, not restored", HumanBytes(n), chunks.len()),
        ))
    }
}

fn index_error(name: &str, detail: String) -> RestoreError {
    RestoreError::Corrupt {
        context: format!("index {name}"),
        offset: "its header".into(),
        detail,
    }
}

/// Checks a blob's raw bytes against its manifest entry (size, SHA-256), then its CRC, and decodes it.
fn decode_blob_checked(
    raw: &[u8],
    name: &str,
    (size, csum): (u64, [u8; 32]),
    crypt: Option<&CryptConfig>,
    location: &Path,
) -> Result<Vec<u8>, RestoreError> {
    if raw.len() as u64 != size || sha256(raw) != csum {
        return Err(RestoreError::Corrupt {
            context: format!("blob {name}"),
            offset: "byte 0".into(),
            detail: format!(
                "{} bytes with sha256 {}, the manifest says {size} bytes with sha256 {}",
                raw.len(),
                hex::encode(sha256(raw)),
                hex::encode(csum)
            ),
        });
    }
    crate::pbs::blob::decode_blob(name, raw, crypt, MAX_BLOB_SIZE).map_err(|e| {
        if e.is_backup_fault() {
            RestoreError::Corrupt {
                context: format!("blob {name}"),
                offset: "see detail".into(),
                detail: e.to_string(),
            }
        } else {
            RestoreError::SourceIo {
                path: location.join(name),
                source: io::Error::other(e.to_string()),
            }
        }
    })
}

/// Maps a read error inside an archive to `failed` (bad chunk) or `error` (unreadable store).
fn stream_error(archive: &str, state: &SourceState, path: &Path, e: io::Error) -> RestoreError {
    if state.failed() {
        RestoreError::SourceIo {
            path: path.to_path_buf(),
            source: e,
        }
    } else {
        RestoreError::Corrupt {
            context: format!("archive {archive}"),
            offset: "one of its chunks".into(),
            detail: e.to_string(),
        }
    }
}

/// Restores a fixed index as a raw image: zero chunks become holes (the zero chunk itself is verified once),
/// every other chunk is verified and written at its offset.
pub fn restore_fixed(
    archive: &str,
    index: &FixedIndex,
    loader: &mut Verified<'_>,
    sink: &mut RestoreSink,
    out_name: &RelPath,
    state: &SourceState,
    location: &Path,
) -> Result<(u64, u64), RestoreError> {
    let zero_digest = |len: u64| -> [u8; 32] {
        let zeros = vec![0u8; len as usize];
        match (loader.encrypted, loader.crypt) {
            (true, Some(c)) => c.compute_digest(&zeros),
            _ => sha256(&zeros),
        }
    };
    let full_zero = zero_digest(index.chunk_size().min(index.size().max(1)));
    let mut zero_verified = false;
    let mut zero_chunks = 0u64;
    let mut fill = |w: &mut crate::extract::sink::ImageWriter<'_>| -> Result<(), FileError> {
        for c in index.chunks() {
            let r = chunk_ref(c);
            if c.digest == full_zero && c.length == index.chunk_size() && zero_verified {
                zero_chunks += 1;
                w.zeros(c.length)?;
                continue;
            }
            let data = loader.load(&r).map_err(|fault| {
                let kind = match &fault {
                    ChunkFault::Bad(_) => io::ErrorKind::InvalidData,
                    ChunkFault::Unreadable(e) => e.kind(),
                };
                FileError::Read(io::Error::new(
                    kind,
                    format!(
                        "chunk {} at byte {} of the image: {fault}",
                        hex::encode(c.digest),
                        c.offset
                    ),
                ))
            })?;
            if c.digest == full_zero {
                zero_verified = true;
                zero_chunks += 1;
            }
            w.data(&data)?;
        }
        Ok(())
    };
    match sink.image(out_name, index.size(), &mut fill) {
        Ok(()) => Ok((index.chunk_count() as u64, zero_chunks)),
        Err(FileError::Sink(e)) => Err(e),
        Err(FileError::Read(e)) => Err(stream_error(archive, state, location, e)),
    }
}

/// A passed integrity check for an archive.
pub fn archive_check(archive: &str, expected: String, actual: String) -> CheckResult {
    CheckResult::new(
        format!("archive {archive}"),
        "integrity",
        CheckStatus::Passed,
        expected,
        actual,
        "",
    )
}
