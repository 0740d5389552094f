//! Tar extraction on top of [`RestoreSink`].
//!
//! The `tar` crate parses headers (ustar, GNU long names and sparse files, PAX); this module decides what each
//! entry becomes and never lets the crate write to disk itself. It also proves the archive was read to its end:
//! a tar stream that stops on a header boundary without the all-zero end-of-archive block was truncated, even
//! though the `tar` crate reports that as a normal end.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tar::EntryType;

use super::path::RelPath;
use super::sink::FileError;
use super::{RestoreError, RestoreSink, SourceState};

/// Most bytes accepted after the end-of-archive marker (GNU tar pads to 10 KiB records; some tools more).
const MAX_TRAILER: u64 = 64 << 20;

/// Tracks the decompressed position and whether the last 512-byte block read was all zeros.
struct BlockTracker<R> {
    inner: R,
    pos: Arc<AtomicU64>,
    last_nonzero_end: u64,
}

impl<R: Read> Read for BlockTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let start = self.pos.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(i) = buf[..n].iter().rposition(|b| *b != 0) {
            self.last_nonzero_end = start + i as u64 + 1;
        }
        Ok(n)
    }
}

impl<R> BlockTracker<R> {
    fn end_marker_seen(&self) -> bool {
        let pos = self.pos.load(Ordering::Relaxed);
        pos >= 512 && pos.is_multiple_of(512) && self.last_nonzero_end <= pos - 512
    }
}

/// Describes the stream being extracted, for error messages and classification.
pub struct TarStream<'a> {
    /// Archive name as the user knows it.
    pub archive: &'a str,
    /// Path of the source file (for source I/O errors).
    pub source_path: &'a Path,
    /// Source counters (compressed bytes, source failure flag).
    pub source: &'a SourceState,
}

/// What extraction observed, for the integrity check.
#[derive(Debug, Clone, Copy)]
pub struct TarFacts {
    /// Decompressed tar bytes read, trailer included.
    pub tar_bytes: u64,
    /// Entries seen.
    pub entries: u64,
}

/// Extracts a (decompressed) tar stream into the sink.
pub fn extract_tar<R: Read>(
    reader: R,
    sink: &mut RestoreSink,
    s: &TarStream<'_>,
) -> Result<TarFacts, RestoreError> {
    let pos = Arc::new(AtomicU64::new(0));
    let mut tracker = BlockTracker {
        inner: reader,
        pos: pos.clone(),
        last_nonzero_end: 0,
    };
    let classify = |e: io::Error| -> RestoreError {
        if s.source.failed() {
            RestoreError::SourceIo {
                path: s.source_path.to_path_buf(),
                source: e,
            }
        } else {
            RestoreError::Corrupt {
                context: format!("archive {}", s.archive),
                offset: format!(
                    "byte {} of the archive file ({} bytes into the tar stream)",
                    s.source.bytes(),
                    pos.load(Ordering::Relaxed)
                ),
                detail: e.to_string(),
            }
        }
    };
    let mut entries = 0u64;
    {
        let mut archive = tar::Archive::new(&mut tracker);
        let iter = archive.entries().map_err(classify)?;
        for entry in iter {
            let mut entry = entry.map_err(classify)?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                EntryType::XGlobalHeader
                    | EntryType::XHeader
                    | EntryType::GNULongName
                    | EntryType::GNULongLink
            ) {
                continue;
            }
            sink.begin_entry(&shown)?;
            entries += 1;
            let rel = RelPath::parse(&raw)?;
            let mode = entry.header().mode().map_err(classify)?;
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    let size = entry.size();
                    match sink.file(&rel, mode, size, &mut entry) {
                        Ok(()) => {}
                        Err(FileError::Sink(e)) => return Err(e),
                        Err(FileError::Read(e)) => {
                            let mut err = classify(e);
                            if let RestoreError::Corrupt { detail, .. } = &mut err {
                                *detail = format!("entry {shown:?}: {detail}");
                            }
                            return Err(err);
                        }
                    }
                }
                EntryType::Directory => sink.dir(&rel, mode)?,
                EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    sink.symlink(&rel, &target)?;
                }
                EntryType::Link => {
                    let raw_target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let target = RelPath::parse(&raw_target).map_err(|e| match e {
                        RestoreError::Unsafe { entry, reason } => RestoreError::Unsafe {
                            entry: shown.clone(),
                            reason: format!("hardlink target {entry:?}: {reason}"),
                        },
                        other => other,
                    })?;
                    sink.hardlink(&rel, &target)?;
                }
                EntryType::Char => sink.special(&rel, "character device")?,
                EntryType::Block => sink.special(&rel, "block device")?,
                EntryType::Fifo => sink.special(&rel, "fifo")?,
                other => sink.special(
                    &rel,
                    &format!("entry of unsupported type {:?}", other.as_byte() as char),
                )?,
            }
        }
    }
    if !tracker.end_marker_seen() {
        let at = pos.load(Ordering::Relaxed);
        return Err(RestoreError::Corrupt {
            context: format!("archive {}", s.archive),
            offset: format!(
                "byte {} of the archive file ({at} bytes into the tar stream)",
                s.source.bytes()
            ),
            detail:
                "the tar stream ends without its end-of-archive block: the archive is truncated"
                    .to_string(),
        });
    }
    // Drain the trailer so the decompressor reaches the end of its frames and verifies their checksums.
    let drained =
        io::copy(&mut (&mut tracker).take(MAX_TRAILER + 1), &mut io::sink()).map_err(classify)?;
    if drained > MAX_TRAILER {
        return Err(RestoreError::Corrupt {
            context: format!("archive {}", s.archive),
            offset: format!("byte {} of the tar stream", pos.load(Ordering::Relaxed)),
            detail: format!("more than {MAX_TRAILER} bytes follow the end-of-archive block"),
        });
    }
    Ok(TarFacts {
        tar_bytes: pos.load(Ordering::Relaxed),
        entries,
    })
}
