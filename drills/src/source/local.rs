//! Local (or mounted) folders: every entry of `path` that is a folder, a tar archive or a plain backup file
//! (a database dump or disk image, kept as is) is a snapshot.
//!
//! A snapshot's time is the timestamp in its name when there is one, else its mtime. Archives are streamed
//! through the decompressor into the tar extractor and hashed on the way, so a sidecar checksum
//! (`NAME.sha256`, or `SHA256SUMS` beside the archives) is verified without reading the file twice; the
//! archive handling is shared with the S3 source ([`super::stream`]). Folders are copied entry by entry
//! through the same [`RestoreSink`] rules as archives.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::stream::{archive_kind, restore_stream, sidecar_check};
use super::{RestoreRequest, Restored, Source, SourceError};
use crate::check::integrity::sidecar_digest;
use crate::extract::path::RelPath;
use crate::extract::sink::FileError;
use crate::extract::{RestoreError, RestoreSink, SourceReader, SourceState};
use crate::model::{CheckResult, CheckStatus, Snapshot, SnapshotKind, TimeSource};
use crate::timestamp::parse_name_timestamp;
use crate::units::HumanBytes;

/// `[sources.NAME] type = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Folder holding snapshot folders and/or archives.
    pub path: PathBuf,
    /// Only entries whose name matches this glob (e.g. `"app-*.tar.zst"`).
    #[serde(default)]
    pub glob: Option<String>,
}

/// A local folder of snapshots.
pub struct LocalSource {
    path: PathBuf,
    glob: Option<glob::Pattern>,
    tz: TimeZone,
}

/// Plain files kept as they are (not extracted): database dumps and disk images.
const PLAIN_FILES: &[&str] = &[
    ".dump", ".pgdump", ".sql", ".sql.gz", ".sql.zst", ".img", ".raw", ".qcow2", ".vma",
    ".vma.zst", ".vma.gz", ".vma.lzo", ".bak",
];

/// Recognizes what an entry is from its name and type.
pub fn kind_of(name: &str, is_dir: bool) -> Option<SnapshotKind> {
    if is_dir {
        return Some(SnapshotKind::Folder);
    }
    if let Some(k) = archive_kind(name) {
        return Some(k);
    }
    let lower = name.to_ascii_lowercase();
    PLAIN_FILES
        .iter()
        .any(|ext| lower.ends_with(ext))
        .then_some(SnapshotKind::File)
}

impl LocalSource {
    /// Builds from configuration (the glob was validated when the configuration was loaded).
    pub fn new(c: &LocalConfig, tz: TimeZone) -> Self {
        LocalSource {
            path: c.path.clone(),
            glob: c.glob.as_deref().and_then(|g| glob::Pattern::new(g).ok()),
            tz,
        }
    }

    fn entry_path(&self, snapshot: &Snapshot) -> Result<PathBuf, RestoreError> {
        if snapshot.id.contains('/') || snapshot.id == ".." || snapshot.id == "." {
            return Err(RestoreError::Unsafe {
                entry: snapshot.id.clone(),
                reason: "a snapshot id of a local source is a single name".to_string(),
            });
        }
        Ok(self.path.join(&snapshot.id))
    }
}

fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("local folder {}", self.path.display())
    }

    fn list(&self) -> Result<Vec<Snapshot>, SourceError> {
        let rd = fs::read_dir(&self.path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SourceError::Missing {
                    path: self.path.clone(),
                }
            } else {
                SourceError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SourceError::Io {
                path: self.path.clone(),
                source: e,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(entry = ?entry.file_name(), "skipping a snapshot whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // Follow a symlink here: it is the operator's own folder, not backup content.
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            let Some(kind) = kind_of(&name, meta.is_dir()) else {
                continue;
            };
            if self.glob.as_ref().is_some_and(|g| !g.matches(&name)) {
                continue;
            }
            let (time, time_source) = match parse_name_timestamp(&name, &self.tz) {
                Some(t) => (t, TimeSource::Name),
                None => (
                    Timestamp::from_second(meta.mtime()).unwrap_or(Timestamp::UNIX_EPOCH),
                    TimeSource::Mtime,
                ),
            };
            let size = (kind != SnapshotKind::Folder).then_some(meta.len());
            out.push(Snapshot {
                id: name,
                time,
                time_source,
                size,
                kind,
                details: None,
            });
        }
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64> {
        match snapshot.kind {
            SnapshotKind::Folder => self.entry_path(snapshot).ok().map(|p| folder_size(&p)),
            _ => snapshot.size,
        }
    }

    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        let path = self.entry_path(snapshot)?;
        let state = Arc::new(SourceState::default());
        let mut sink = req.sink(state.clone())?;
        if snapshot.kind == SnapshotKind::Folder {
            let entries = copy_folder(&path, &mut sink, &state)?;
            let summary = sink.finish()?;
            let check = CheckResult::new(
                "folder",
                "integrity",
                CheckStatus::Passed,
                "every entry of the snapshot folder readable",
                format!(
                    "{entries} entries read, {}",
                    HumanBytes(summary.stats.bytes)
                ),
                "",
            );
            return Ok(Restored {
                summary,
                integrity: vec![check],
                content_verified: false,
            });
        }
        let sidecar = sidecar_digest(&self.path, &snapshot.id);
        let file = File::open(&path).map_err(|e| RestoreError::SourceIo {
            path: path.clone(),
            source: e,
        })?;
        let mut src = SourceReader::new(file, state.clone(), sidecar.is_some());
        let structure = restore_stream(
            snapshot.kind,
            &snapshot.id,
            &path,
            &mut src,
            snapshot.size,
            &mut sink,
            &state,
        )?;
        let digest = src.finish().map_err(|e| RestoreError::SourceIo {
            path: path.clone(),
            source: e,
        })?;
        let summary = sink.finish()?;
        let mut integrity = vec![structure];
        let mut content_verified = false;
        if let (Some((expected, list)), Some(actual)) = (sidecar, digest) {
            let mut c = sidecar_check(snapshot.kind, &snapshot.id, expected, &list, actual);
            c.evidence.push(self.path.join(list));
            integrity.push(c);
            // A plain file is its own content: its sidecar covers every byte restored.
            content_verified = snapshot.kind == SnapshotKind::File;
        }
        Ok(Restored {
            summary,
            integrity,
            content_verified,
        })
    }
}

/// Copies a snapshot folder through the sink without following any symlink. Returns the entry count.
fn copy_folder(
    src_root: &Path,
    sink: &mut RestoreSink,
    state: &Arc<SourceState>,
) -> Result<u64, RestoreError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e: io::Error| RestoreError::SourceIo { path: p, source: e }
    };
    let mut entries = 0u64;
    let mut stack: Vec<(PathBuf, fs::ReadDir)> = vec![(
        PathBuf::new(),
        fs::read_dir(src_root).map_err(io_err(src_root))?,
    )];
    while let Some(top) = stack.last_mut() {
        let Some(next) = top.1.next() else {
            stack.pop();
            continue;
        };
        let entry = next.map_err(io_err(&src_root.join(&top.0)))?;
        let rel = top.0.join(entry.file_name());
        let full = entry.path();
        let meta = fs::symlink_metadata(&full).map_err(io_err(&full))?;
        let ft = meta.file_type();
        let rp = RelPath::from_path(&rel)?;
        sink.begin_entry(rp.display())?;
        entries += 1;
        let mode = meta.mode() & 0o7777;
        if ft.is_dir() {
            sink.dir(&rp, mode)?;
            let rd = fs::read_dir(&full).map_err(io_err(&full))?;
            stack.push((rel, rd));
        } else if ft.is_file() {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&full)
                .map_err(io_err(&full))?;
            let mut r = SourceReader::new(f, state.clone(), false);
            match sink.file(&rp, mode, meta.len(), &mut r) {
                Ok(()) => {}
                Err(FileError::Sink(e)) => return Err(e),
                Err(FileError::Read(e)) => {
                    return Err(RestoreError::SourceIo {
                        path: full,
                        source: io::Error::new(
                            e.kind(),
                            format!("{e} (was the file changing while it was read?)"),
                        ),
                    });
                }
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(io_err(&full))?;
            sink.symlink(
                &rp,
                std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()),
            )?;
        } else {
            let kind = if ft.is_char_device() {
                "character device"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "socket"
            };
            sink.special(&rp, kind)?;
        }
    }
    Ok(entries)
}
