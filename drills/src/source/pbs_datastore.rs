//! `type = "pbs-datastore"`: a Proxmox Backup Server datastore directory read straight from disk,
//! read-only, with no Proxmox software installed. This is what is left when the PBS host is gone: a removable
//! datastore, a replicated copy, a restored ZFS dataset.
//!
//! A restore reads the snapshot's manifest, verifies every archive against it (index checksums, sizes),
//! verifies every chunk (CRC, crypt mode, digest, length) as it streams, and writes images (`.img.fidx`,
//! zero chunks as holes), file trees (`.pxar.didx`, split `.mpxar`/`.ppxar`) and config blobs into the run
//! folder through the same safe sink as every other source.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{RestoreRequest, Restored, Source, SourceError};
use crate::extract::path::RelPath;
use crate::extract::sink::FileError;
use crate::extract::{RestoreError, RestoreSink, SourceState};
use crate::model::{CheckResult, CheckStatus, Snapshot, SnapshotKind, TimeSource};
use crate::pbs::blob::{MAX_BLOB_SIZE, verify_chunk};
use crate::pbs::chunks::{ChunkFault, ChunkLoader, ChunkRef, ChunkStream};
use crate::pbs::crypt::KeyConfig;
use crate::pbs::crypt::{CryptConfig, sha256};
use crate::pbs::datastore::{self, LayoutError, chunk_path};
use crate::pbs::index::{ChunkInfo, DynamicIndex, FixedIndex};
use crate::pbs::manifest::{
    ArchiveType, CryptMode, FileInfo, MANIFEST_BLOB_NAME, Manifest, ManifestError, SignatureStatus,
};
use crate::pbs::pxar::extract::{PxarStream, extract_pxar};
use crate::units::HumanBytes;

/// `[sources.NAME] type = "pbs-datastore"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// The datastore directory (the one holding `.chunks`).
    pub path: PathBuf,
    /// Namespace (`"prod"` or `"prod/db"`); default the root namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Key file for client-side encrypted backups; its passphrase comes from `PBS_ENCRYPTION_PASSWORD`.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
}

/// A datastore on disk.
pub struct DatastoreSource {
    config: DatastoreConfig,
}

impl DatastoreSource {
    /// Builds from configuration (validated when the configuration was loaded).
    pub fn new(c: &DatastoreConfig) -> Self {
        DatastoreSource { config: c.clone() }
    }
}

fn layout_error(e: LayoutError) -> SourceError {
    match e {
        LayoutError::Io { path, source } => SourceError::Io { path, source },
        LayoutError::NotADatastore { path } => SourceError::Missing { path },
        LayoutError::BadNamespace { ns } => SourceError::Io {
            path: PathBuf::from(ns),
            source: std::io::Error::other("invalid namespace"),
        },
    }
}

impl Source for DatastoreSource {
    fn describe(&self) -> String {
        match &self.config.namespace {
            Some(ns) => format!(
                "PBS datastore {} namespace {ns}",
                self.config.path.display()
            ),
            None => format!("PBS datastore {}", self.config.path.display()),
        }
    }

    fn list(&self) -> Result<Vec<Snapshot>, SourceError> {
        let snaps = datastore::list_snapshots(&self.config.path, self.config.namespace.as_deref())
            .map_err(layout_error)?;
        Ok(snaps
            .into_iter()
            .map(|s| Snapshot {
                id: s.id(),
                time: s.time,
                time_source: TimeSource::Name,
                size: None,
                kind: SnapshotKind::Pbs,
            })
            .collect())
    }

    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64> {
        let dir = self.snapshot_dir(&snapshot.id).ok()?;
        let m = Manifest::from_blob(&fs::read(dir.join(MANIFEST_BLOB_NAME)).ok()?).ok()?;
        Some(m.files().iter().map(|f| f.size).sum())
    }

    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        let state = Arc::new(SourceState::default());
        let dir = self.snapshot_dir(&snapshot.id)?;
        let crypt = self.load_key()?;
        let manifest_path = dir.join(MANIFEST_BLOB_NAME);
        let raw = fs::read(&manifest_path).map_err(|e| RestoreError::SourceIo {
            path: manifest_path.clone(),
            source: e,
        })?;
        state.add_bytes(raw.len() as u64);
        let manifest = Manifest::from_blob(&raw)
            .map_err(|e| manifest_error(&snapshot.id, &manifest_path, e))?;
        let mut integrity = vec![manifest_check(
            &snapshot.id,
            &manifest,
            crypt.as_ref(),
            &manifest_path,
        )?];
        let selected = select_archives(&manifest, &req.archives, &snapshot.id)?;
        let mut sink = req.sink(state.clone())?;
        for item in &selected {
            let check = match item {
                Selected::Blob(f) => self.restore_blob(
                    f,
                    &dir,
                    crypt.as_ref(),
                    &mut sink,
                    &state,
                    &req.evidence_dir,
                )?,
                Selected::Fixed(f) => {
                    let (check, image) =
                        self.restore_image(f, &dir, crypt.as_ref(), &mut sink, &state)?;
                    integrity.push(check);
                    image
                }
                Selected::Pxar(meta, payload) => {
                    self.restore_pxar(meta, *payload, &dir, crypt.as_ref(), &mut sink, &state)?
                }
                Selected::Other(f) => self.verify_dynamic(f, &dir, crypt.as_ref(), &state)?,
            };
            integrity.push(check);
        }
        let summary = sink.finish()?;
        Ok(Restored {
            summary,
            integrity,
            content_verified: true,
        })
    }
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
    c.evidence.push(path.to_path_buf());
    Ok(c)
}

impl DatastoreSource {
    fn snapshot_dir(&self, id: &str) -> Result<PathBuf, RestoreError> {
        let parts: Vec<&str> = id.split('/').collect();
        let bad = || RestoreError::Unsafe {
            entry: id.to_string(),
            reason: "not a PBS snapshot id TYPE/ID/TIME".into(),
        };
        let [t, backup_id, time] = parts.as_slice() else {
            return Err(bad());
        };
        if !datastore::BACKUP_TYPES.contains(t)
            || backup_id.is_empty()
            || *backup_id == "."
            || *backup_id == ".."
            || datastore::parse_snapshot_time(time).is_none()
        {
            return Err(bad());
        }
        let base = datastore::namespace_dir(&self.config.path, self.config.namespace.as_deref())
            .map_err(|e| RestoreError::SourceIo {
                path: self.config.path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
        Ok(base.join(t).join(backup_id).join(time))
    }

    fn load_key(&self) -> Result<Option<CryptConfig>, RestoreError> {
        let Some(path) = &self.config.encryption_key_file else {
            return Ok(None);
        };
        let fail = |msg: String| RestoreError::SourceIo {
            path: path.clone(),
            source: io::Error::other(msg),
        };
        let bytes = fs::read(path).map_err(|e| RestoreError::SourceIo {
            path: path.clone(),
            source: e,
        })?;
        let key =
            KeyConfig::from_json(&bytes).map_err(|e| fail(format!("not a PBS key file: {e}")))?;
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

    fn restore_blob(
        &self,
        f: &FileInfo,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        sink: &mut RestoreSink,
        state: &SourceState,
        evidence: &Path,
    ) -> Result<CheckResult, RestoreError> {
        if f.crypt_mode == CryptMode::Encrypt && crypt.is_none() {
            return Err(no_key(&f.filename, dir));
        }
        let data = read_blob(
            &dir.join(&f.filename),
            &f.filename,
            Some((f.size, f.csum)),
            crypt,
            state,
        )?;
        let out = short_name(&f.filename);
        let rel = RelPath::parse(out.as_bytes())?;
        sink.file(&rel, 0o600, data.len() as u64, &mut &data[..])
            .map_err(|e| match e {
                FileError::Sink(e) => e,
                FileError::Read(e) => RestoreError::SourceIo {
                    path: dir.join(&f.filename),
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

    fn index_bytes(
        &self,
        f: &FileInfo,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        state: &SourceState,
    ) -> Result<Vec<u8>, RestoreError> {
        if f.chunks_encrypted() && crypt.is_none() {
            return Err(no_key(&f.filename, dir));
        }
        let path = dir.join(&f.filename);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RestoreError::Corrupt {
                    context: format!("archive {}", f.filename),
                    offset: "its start".into(),
                    detail: "listed in the manifest but missing from the snapshot".into(),
                }
            } else {
                RestoreError::SourceIo {
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        state.add_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    fn restore_image(
        &self,
        f: &FileInfo,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        sink: &mut RestoreSink,
        state: &SourceState,
    ) -> Result<(CheckResult, CheckResult), RestoreError> {
        let bytes = self.index_bytes(f, dir, crypt, state)?;
        let index = FixedIndex::parse(&f.filename, &bytes)
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        f.check(index.size(), index.csum())
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        let mut loader = DiskLoader::new(&self.config.path, crypt, f.chunks_encrypted(), state);
        let out = RelPath::parse(short_name(&f.filename).as_bytes())?;
        let (chunks, zeros) =
            restore_fixed(&f.filename, &index, &mut loader, sink, &out, state, dir)?;
        let check = archive_check(
            &f.filename,
            "index checksum as in the manifest; every chunk's CRC, crypt mode, length and digest"
                .into(),
            format!(
                "{} image, {chunks} chunks ({} distinct, {zeros} zero chunks written as holes)",
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

    fn dynamic_chunks(
        &self,
        f: &FileInfo,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        state: &SourceState,
    ) -> Result<Vec<ChunkRef>, RestoreError> {
        let bytes = self.index_bytes(f, dir, crypt, state)?;
        let index = DynamicIndex::parse(&f.filename, &bytes)
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        f.check(index.size(), index.csum())
            .map_err(|e| index_error(&f.filename, e.to_string()))?;
        Ok(index.chunks().map(chunk_ref).collect())
    }

    fn restore_pxar(
        &self,
        meta: &FileInfo,
        payload: Option<&FileInfo>,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        sink: &mut RestoreSink,
        state: &SourceState,
    ) -> Result<CheckResult, RestoreError> {
        let meta_chunks = self.dynamic_chunks(meta, dir, crypt, state)?;
        let payload_chunks = payload
            .map(|p| self.dynamic_chunks(p, dir, crypt, state))
            .transpose()?;
        let short = short_name(&meta.filename);
        let folder = short
            .strip_suffix(".mpxar")
            .or_else(|| short.strip_suffix(".pxar"))
            .unwrap_or(short);
        sink.set_prefix(Some(RelPath::parse(folder.as_bytes())?))?;
        let stream = PxarStream {
            archive: &meta.filename,
            source_path: dir,
            source: state,
        };
        let mut meta_loader =
            DiskLoader::new(&self.config.path, crypt, meta.chunks_encrypted(), state);
        let meta_reader = ChunkStream::new(&meta.filename, &meta_chunks, &mut meta_loader);
        let facts = match (payload, &payload_chunks) {
            (Some(p), Some(chunks)) => {
                let mut payload_loader =
                    DiskLoader::new(&self.config.path, crypt, p.chunks_encrypted(), state);
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

    fn verify_dynamic(
        &self,
        f: &FileInfo,
        dir: &Path,
        crypt: Option<&CryptConfig>,
        state: &SourceState,
    ) -> Result<CheckResult, RestoreError> {
        let chunks = self.dynamic_chunks(f, dir, crypt, state)?;
        let mut loader = DiskLoader::new(&self.config.path, crypt, f.chunks_encrypted(), state);
        let mut reader = ChunkStream::new(&f.filename, &chunks, &mut loader);
        let n = io::copy(&mut reader, &mut io::sink())
            .map_err(|e| stream_error(&f.filename, state, dir, e))?;
        Ok(archive_check(
            &f.filename,
            "every chunk verified".into(),
            format!("{} in {} chunks, not restored", HumanBytes(n), chunks.len()),
        ))
    }
}

fn no_key(name: &str, dir: &Path) -> RestoreError {
    RestoreError::SourceIo {
        path: dir.join(name),
        source: io::Error::other(format!(
            "archive {name} is encrypted: configure `encryption_key_file` for this source"
        )),
    }
}

fn index_error(name: &str, detail: String) -> RestoreError {
    RestoreError::Corrupt {
        context: format!("index {name}"),
        offset: "its header".into(),
        detail,
    }
}

/// Reads chunks from the datastore's chunk store and verifies each one.
pub struct DiskLoader<'a> {
    root: &'a Path,
    crypt: Option<&'a CryptConfig>,
    encrypted: bool,
    state: &'a SourceState,
    /// Distinct chunks verified so far (for the evidence: "N chunks, M distinct").
    pub seen: HashSet<[u8; 32]>,
}

impl<'a> DiskLoader<'a> {
    /// Loads chunks of an index whose crypt mode is `encrypted`.
    pub fn new(
        root: &'a Path,
        crypt: Option<&'a CryptConfig>,
        encrypted: bool,
        state: &'a SourceState,
    ) -> Self {
        DiskLoader {
            root,
            crypt,
            encrypted,
            state,
            seen: HashSet::new(),
        }
    }
}

impl ChunkLoader for DiskLoader<'_> {
    fn load(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        let path = chunk_path(self.root, &c.digest);
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkFault::Bad(format!(
                    "missing from the datastore ({} does not exist)",
                    path.display()
                )));
            }
            Err(e) => {
                self.state.mark_failed();
                return Err(ChunkFault::Unreadable(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                )));
            }
        };
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

fn chunk_ref(c: ChunkInfo) -> ChunkRef {
    ChunkRef {
        digest: c.digest,
        offset: c.offset,
        len: c.length,
    }
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
    loader: &mut DiskLoader<'_>,
    sink: &mut RestoreSink,
    out_name: &RelPath,
    state: &SourceState,
    snapshot_dir: &Path,
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
        Err(FileError::Read(e)) => Err(stream_error(archive, state, snapshot_dir, e)),
    }
}

/// Streams a dynamic index's chunks through `consume` (pxar decoding, or plain verification).
pub fn with_dynamic_stream<T>(
    archive: &str,
    chunks: &[ChunkRef],
    loader: &mut DiskLoader<'_>,
    consume: impl FnOnce(&mut dyn io::Read) -> T,
) -> T {
    let mut stream = ChunkStream::new(archive, chunks, loader);
    consume(&mut stream)
}

impl ChunkLoader for &mut DiskLoader<'_> {
    fn load(&mut self, c: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        (**self).load(c)
    }
}

/// A blob file decoded and checked against its manifest entry (CRC, size, SHA-256 of the raw bytes).
pub fn read_blob(
    path: &Path,
    name: &str,
    expected: Option<(u64, [u8; 32])>,
    crypt: Option<&CryptConfig>,
    state: &SourceState,
) -> Result<Vec<u8>, RestoreError> {
    let raw = fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            RestoreError::Corrupt {
                context: format!("snapshot file {name}"),
                offset: "its start".into(),
                detail: "listed in the manifest but missing".into(),
            }
        } else {
            state.mark_failed();
            RestoreError::SourceIo {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    state.add_bytes(raw.len() as u64);
    if let Some((size, csum)) = expected
        && (raw.len() as u64 != size || sha256(&raw) != csum)
    {
        return Err(RestoreError::Corrupt {
            context: format!("blob {name}"),
            offset: "byte 0".into(),
            detail: format!(
                "{} bytes with sha256 {}, the manifest says {size} bytes with sha256 {}",
                raw.len(),
                hex::encode(sha256(&raw)),
                hex::encode(csum)
            ),
        });
    }
    crate::pbs::blob::decode_blob(name, &raw, crypt, MAX_BLOB_SIZE).map_err(|e| {
        if e.is_backup_fault() {
            RestoreError::Corrupt {
                context: format!("blob {name}"),
                offset: "see detail".into(),
                detail: e.to_string(),
            }
        } else {
            RestoreError::SourceIo {
                path: path.to_path_buf(),
                source: io::Error::other(e.to_string()),
            }
        }
    })
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
