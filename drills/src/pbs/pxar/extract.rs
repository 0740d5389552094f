//! pxar extraction on top of [`RestoreSink`]: the pxar counterpart of [`crate::extract::tar`].
//!
//! The [`Decoder`] parses and verifies; this module only decides what each entry becomes and lets the sink
//! write it, so every safety rule (no escapes, no writes through symlinks, specials recorded, setuid dropped,
//! bounds) applies to pxar exactly as to tar. The archive root maps to the sink's root folder. Errors are
//! classified like tar's: a failing source is `error` ([`RestoreError::SourceIo`]), damage is `failed`
//! ([`RestoreError::Corrupt`], naming the archive, the stream and the byte offset), a name that would leave the
//! restore folder is [`RestoreError::Unsafe`].

use std::io::{self, Read};
use std::path::Path;

use super::decoder::Decoder;
use super::entry::{DeviceKind, EntryKind, Event};
use super::error::{PxarError, StreamKind};
use crate::extract::path::RelPath;
use crate::extract::sink::FileError;
use crate::extract::{RestoreError, RestoreSink, SourceState};

/// Describes the archive being extracted, for error messages and classification.
pub struct PxarStream<'a> {
    /// Archive name as the user knows it (`root.pxar.didx`, `root.mpxar.didx`).
    pub archive: &'a str,
    /// Path of the source (for source I/O errors).
    pub source_path: &'a Path,
    /// Source counters (bytes read, source failure flag), shared by both streams of a split archive.
    pub source: &'a SourceState,
}

/// What extraction observed, for the integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PxarFacts {
    /// 1 (unified `.pxar`) or 2 (split `.mpxar` + `.ppxar`).
    pub format_version: u8,
    /// Entries, the root included.
    pub entries: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links, each verified to name a regular file earlier in the archive.
    pub hardlinks: u64,
    /// Devices, fifos and sockets (recorded, not created).
    pub specials: u64,
    /// Content bytes of regular files.
    pub bytes: u64,
    /// Bytes of the archive (metadata) stream.
    pub archive_bytes: u64,
    /// Bytes of the payload stream (split archives).
    pub payload_bytes: Option<u64>,
    /// Size of the PRELUDE, if the archive has one.
    pub prelude_bytes: Option<u64>,
    /// Goodbye tables verified.
    pub goodbye_tables: u64,
    /// Every directory's goodbye table was verified (count, hashes, BST order, offsets, sizes, tail).
    pub goodbye_verified: bool,
}

/// Extracts a pxar archive into the sink: `archive` is the `.pxar` (unified) or `.mpxar` (split) stream,
/// `payload` the `.ppxar` stream of a split archive (`None::<std::io::Empty>` for unified ones). Both are read
/// once, forward, and must end where the format says.
pub fn extract_pxar<M: Read, P: Read>(
    archive: M,
    payload: Option<P>,
    sink: &mut RestoreSink,
    s: &PxarStream<'_>,
) -> Result<PxarFacts, RestoreError> {
    let mut dec = Decoder::new(archive, payload);
    while let Some(event) = dec.next().map_err(|e| classify(e, s, None))? {
        let Event::Entry(entry) = event else {
            continue;
        };
        if entry.is_root() {
            // the root directory is the sink's root folder, which exists; its mode stays lifeboat's
            sink.begin_entry("/")?;
            continue;
        }
        let shown = String::from_utf8_lossy(&entry.path).into_owned();
        sink.begin_entry(&shown)?;
        let rel = RelPath::parse(&entry.path)?;
        let mode = entry.metadata.as_ref().map_or(0, |m| m.stat.permissions());
        match entry.kind {
            EntryKind::Directory => sink.dir(&rel, mode)?,
            EntryKind::File { size, .. } => {
                match sink.file(&rel, mode, size, &mut dec.contents()) {
                    Ok(()) => {}
                    Err(FileError::Sink(e)) => return Err(e),
                    Err(FileError::Read(e)) => return Err(classify_read(e, s, &shown)),
                }
            }
            EntryKind::Symlink { target } => sink.symlink(&rel, &target)?,
            EntryKind::Hardlink { target, .. } => {
                let target = RelPath::parse(&target).map_err(|e| match e {
                    RestoreError::Unsafe { entry, reason } => RestoreError::Unsafe {
                        entry: shown.clone(),
                        reason: format!("hardlink target {entry:?}: {reason}"),
                    },
                    other => other,
                })?;
                sink.hardlink(&rel, &target)?;
            }
            EntryKind::Device { kind, .. } => sink.special(
                &rel,
                match kind {
                    DeviceKind::Char => "character device",
                    DeviceKind::Block => "block device",
                },
            )?,
            EntryKind::Fifo => sink.special(&rel, "fifo")?,
            EntryKind::Socket => sink.special(&rel, "socket")?,
        }
    }
    let st = *dec.stats();
    Ok(PxarFacts {
        format_version: dec.format_version().unwrap_or(1),
        entries: st.entries,
        dirs: st.dirs,
        files: st.files,
        symlinks: st.symlinks,
        hardlinks: st.hardlinks,
        specials: st.devices + st.fifos + st.sockets,
        bytes: st.file_bytes,
        archive_bytes: dec.archive_bytes(),
        payload_bytes: dec.payload_bytes(),
        prelude_bytes: dec.prelude().map(|p| p.len() as u64),
        goodbye_tables: st.goodbye_tables,
        goodbye_verified: dec.is_finished() && st.goodbye_tables == st.dirs,
    })
}

/// Maps a decoder error to the restore layer's classes (see the module documentation).
fn classify(e: PxarError, s: &PxarStream<'_>, entry: Option<&str>) -> RestoreError {
    if s.source.failed() {
        let source = match e {
            PxarError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        };
        return RestoreError::SourceIo {
            path: s.source_path.to_path_buf(),
            source,
        };
    }
    if let PxarError::Unsafe {
        path,
        reason,
        stream,
        offset,
    } = e
    {
        return RestoreError::Unsafe {
            entry: path,
            reason: format!("{reason} (byte {offset} of the {stream})"),
        };
    }
    let (context, offset) = match e.location() {
        Some((StreamKind::Archive, at)) => (
            format!("archive {}", s.archive),
            format!("byte {at} of the archive stream"),
        ),
        Some((StreamKind::Payload, at)) => (
            format!("payload stream of archive {}", s.archive),
            format!("byte {at} of the payload stream"),
        ),
        None => (
            format!("archive {}", s.archive),
            "an unknown position".to_string(),
        ),
    };
    let detail = match entry {
        Some(name) => format!("entry {name:?}: {}", e.detail()),
        None => e.detail(),
    };
    RestoreError::Corrupt {
        context,
        offset,
        detail,
    }
}

/// A content read failure inside `sink.file`: the decoder's own errors come back wrapped in `io::Error`.
fn classify_read(e: io::Error, s: &PxarStream<'_>, entry: &str) -> RestoreError {
    match PxarError::from_io(e) {
        Ok(p) => classify(p, s, Some(entry)),
        Err(other) if s.source.failed() => RestoreError::SourceIo {
            path: s.source_path.to_path_buf(),
            source: other,
        },
        Err(other) => RestoreError::Corrupt {
            context: format!("archive {}", s.archive),
            offset: format!("entry {entry:?}"),
            detail: other.to_string(),
        },
    }
}
