//! [`RestoreSink`]: the only code that writes restored content to disk.
//!
//! Every format calls it entry by entry. It creates parents itself, one component at a time, checking with
//! `lstat` that each existing component is a real folder (so nothing is ever written through a symlink), opens
//! files with `O_NOFOLLOW | O_CREAT | O_EXCL`, hashes every byte as it writes it (the per-file SHA-256 manifest
//! is evidence and the input of the `SHA256SUMS` check, so no file is read twice), punches holes for all-zero
//! blocks, and enforces [`Limits`]. Memory does not grow with the size of the backup: only folder modes (to
//! apply at the end) and the names of checksum files are kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::path::RelPath;
use super::{CancelFlag, Limits, Progress, RestoreError, SourceState};
use crate::model::RestoreStats;

const BUF: usize = 256 * 1024;
const HOLE_BLOCK: usize = 64 * 1024;
/// How many special-file names are kept in memory for messages (all of them go to the evidence file).
const SAMPLE: usize = 20;

/// Where a sink writes and what bounds it.
pub struct SinkOptions {
    /// The run's restore folder (exists, empty).
    pub root: PathBuf,
    /// The run's evidence folder (exists).
    pub evidence_dir: PathBuf,
    /// Bounds.
    pub limits: Limits,
    /// Live counters.
    pub progress: Arc<Progress>,
    /// Set when the agent shuts down.
    pub cancel: CancelFlag,
    /// The source stream's counters (for the ratio bound).
    pub source: Arc<SourceState>,
}

/// What a finished restore left behind.
#[derive(Debug, Clone)]
pub struct SinkSummary {
    /// Counts.
    pub stats: RestoreStats,
    /// Checksum files found in the restored tree (relative paths), for the `SHA256SUMS` check.
    pub sums_files: Vec<PathBuf>,
    /// First few special files and dropped setuid bits, for messages.
    pub specials_sample: Vec<String>,
    /// `sha256sum`-format manifest of every restored regular file.
    pub manifest_path: PathBuf,
    /// One line per special file not created and per setuid/setgid bit dropped.
    pub specials_path: PathBuf,
}

/// An error while writing one file: from the entry's reader (format decides `failed` or `error`) or the sink.
#[derive(Debug)]
pub enum FileError {
    /// Reading the entry's content failed.
    Read(io::Error),
    /// The sink refused or failed.
    Sink(RestoreError),
}

impl From<RestoreError> for FileError {
    fn from(e: RestoreError) -> Self {
        FileError::Sink(e)
    }
}

/// Writes restored entries under a root folder, safely. See the module documentation.
pub struct RestoreSink {
    root: PathBuf,
    limits: Limits,
    stats: RestoreStats,
    entries: u64,
    manifest: BufWriter<File>,
    manifest_path: PathBuf,
    specials: BufWriter<File>,
    specials_path: PathBuf,
    specials_sample: Vec<String>,
    sums_files: Vec<PathBuf>,
    dir_modes: Vec<(PathBuf, u32)>,
    progress: Arc<Progress>,
    cancel: CancelFlag,
    source: Arc<SourceState>,
    buf: Vec<u8>,
    prefix: Option<RelPath>,
}

fn scratch(path: &Path) -> impl FnOnce(io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Scratch {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a restored file is a checksum list the integrity check should verify.
pub fn is_sums_file(name: &[u8]) -> bool {
    matches!(
        name,
        b"SHA256SUMS" | b"sha256sums" | b"SHA256SUMS.txt" | b"sha256sums.txt"
    ) || name.ends_with(b".sha256")
}

/// Writes one `sha256sum`-compatible line, escaping `\` and newlines the way GNU coreutils does.
pub fn write_manifest_line(w: &mut impl Write, digest: &[u8; 32], path: &[u8]) -> io::Result<()> {
    let needs_escape = path.iter().any(|b| *b == b'\\' || *b == b'\n');
    if needs_escape {
        w.write_all(b"\\")?;
    }
    w.write_all(hex::encode(digest).as_bytes())?;
    w.write_all(b"  ")?;
    if needs_escape {
        for b in path {
            match b {
                b'\\' => w.write_all(b"\\\\")?,
                b'\n' => w.write_all(b"\\n")?,
                b => w.write_all(&[*b])?,
            }
        }
    } else {
        w.write_all(path)?;
    }
    w.write_all(b"\n")
}

/// SHA-256 of everything `r` yields.
pub fn hash_reader(r: &mut impl Read) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl RestoreSink {
    /// Opens the evidence files and prepares to write under `opts.root`.
    pub fn new(opts: SinkOptions) -> Result<Self, RestoreError> {
        let manifest_path = opts.evidence_dir.join("manifest.sha256");
        let specials_path = opts.evidence_dir.join("special-files.txt");
        let manifest = File::create(&manifest_path).map_err(scratch(&manifest_path))?;
        let specials = File::create(&specials_path).map_err(scratch(&specials_path))?;
        Ok(RestoreSink {
            root: opts.root,
            limits: opts.limits,
            stats: RestoreStats::default(),
            entries: 0,
            manifest: BufWriter::new(manifest),
            manifest_path,
            specials: BufWriter::new(specials),
            specials_path,
            specials_sample: Vec::new(),
            sums_files: Vec::new(),
            dir_modes: Vec::new(),
            progress: opts.progress,
            cancel: opts.cancel,
            source: opts.source,
            buf: vec![0; BUF],
            prefix: None,
        })
    }

    /// The folder restored into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Restores every following entry under `prefix` (one folder per archive of a multi-archive snapshot);
    /// `None` restores at the root again.
    pub fn set_prefix(&mut self, prefix: Option<RelPath>) -> Result<(), RestoreError> {
        self.prefix = None;
        if let Some(p) = &prefix {
            self.dir(p, 0o755)?;
        }
        self.prefix = prefix;
        Ok(())
    }

    fn place(&self, p: &RelPath) -> RelPath {
        match &self.prefix {
            Some(prefix) => p.under(prefix),
            None => p.clone(),
        }
    }

    /// The run's cancellation flag, for readers that wait on the network (they give up when it is set).
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Whether the run was cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Counts one entry against the bound and checks for cancellation. Formats call it before each entry.
    pub fn begin_entry(&mut self, entry: &str) -> Result<(), RestoreError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(RestoreError::Cancelled);
        }
        self.entries += 1;
        self.progress.entries.store(self.entries, Ordering::Relaxed);
        if self.entries > self.limits.max_entries {
            return Err(RestoreError::Limit {
                what: "entry count",
                entry: entry.to_string(),
                detail: format!("more than {} entries", self.limits.max_entries),
                setting: "max_entries",
            });
        }
        Ok(())
    }

    /// Makes sure every parent of `p` is a real folder inside the root, creating missing ones.
    fn prepare_parent(&mut self, p: &RelPath) -> Result<PathBuf, RestoreError> {
        for i in 1..p.len() {
            let dir = self.root.join(p.prefix(i));
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(RestoreError::Unsafe {
                        entry: p.display().to_string(),
                        reason: format!(
                            "would be written through the symlink {:?} restored earlier",
                            p.prefix(i)
                        ),
                    });
                }
                Ok(_) => {
                    return Err(RestoreError::Unsafe {
                        entry: p.display().to_string(),
                        reason: format!("its parent {:?} is not a folder", p.prefix(i)),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&dir)
                        .map_err(scratch(&dir))?;
                    self.stats.dirs += 1;
                }
                Err(e) => {
                    return Err(RestoreError::Scratch {
                        path: dir,
                        source: e,
                    });
                }
            }
        }
        Ok(self.root.join(p.to_path()))
    }

    /// Removes a non-folder already at `full` (a later archive entry replaces an earlier one, as tar does).
    /// The old entry is unlinked, never followed.
    fn clear_target(&self, p: &RelPath, full: &Path) -> Result<(), RestoreError> {
        match fs::symlink_metadata(full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RestoreError::Scratch {
                path: full.to_path_buf(),
                source: e,
            }),
            Ok(m) if m.file_type().is_dir() => Err(RestoreError::Unsafe {
                entry: p.display().to_string(),
                reason: "replaces a folder restored earlier".to_string(),
            }),
            Ok(_) => fs::remove_file(full).map_err(scratch(full)),
        }
    }

    /// Creates a folder (mode applied at the end, owner rwx kept so checks and cleanup can enter it).
    pub fn dir(&mut self, p: &RelPath, mode: u32) -> Result<(), RestoreError> {
        let p = &self.place(p);
        let full = self.prepare_parent(p)?;
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(RestoreError::Unsafe {
                    entry: p.display().to_string(),
                    reason: "a folder entry on top of a symlink restored earlier".to_string(),
                });
            }
            Ok(_) => {
                return Err(RestoreError::Unsafe {
                    entry: p.display().to_string(),
                    reason: "a folder entry on top of a file restored earlier".to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&full)
                    .map_err(scratch(&full))?;
                self.stats.dirs += 1;
            }
            Err(e) => {
                return Err(RestoreError::Scratch {
                    path: full,
                    source: e,
                });
            }
        }
        self.dir_modes.push((full, mode));
        Ok(())
    }

    fn record_special(&mut self, line: String) -> Result<(), RestoreError> {
        writeln!(self.specials, "{line}").map_err(scratch(&self.specials_path))?;
        if self.specials_sample.len() < SAMPLE {
            self.specials_sample.push(line);
        }
        Ok(())
    }

    /// Writes a regular file from `r`, which must yield exactly `declared` bytes.
    pub fn file(
        &mut self,
        p: &RelPath,
        mode: u32,
        declared: u64,
        r: &mut dyn Read,
    ) -> Result<(), FileError> {
        let p = &self.place(p);
        let entry = p.display().to_string();
        if self.stats.bytes.saturating_add(declared) > self.limits.max_bytes {
            return Err(RestoreError::Limit {
                what: "restore size",
                entry,
                detail: format!(
                    "entry declares {declared} bytes after {} restored; the limit is {}",
                    self.stats.bytes, self.limits.max_bytes
                ),
                setting: "max_restore_size",
            }
            .into());
        }
        let full = self.prepare_parent(p)?;
        self.clear_target(p, &full)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32,
            )
            .open(&full)
            .map_err(|e| RestoreError::Scratch {
                path: full.clone(),
                source: e,
            })?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let mut hole: u64 = 0;
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RestoreError::Cancelled.into());
            }
            let n = match r.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FileError::Read(e)),
            };
            let chunk = &self.buf[..n];
            hasher.update(chunk);
            written += n as u64;
            let out = self.stats.bytes + written;
            if written > declared {
                return Err(FileError::Read(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry yields more than its declared {declared} bytes"),
                )));
            }
            if out > self.limits.space_budget {
                return Err(RestoreError::NoSpace {
                    entry,
                    detail: format!(
                        "{out} bytes restored, {} available for this run",
                        self.limits.space_budget
                    ),
                }
                .into());
            }
            let src = self.source.bytes().max(1);
            if out > self.limits.ratio_floor && out / src > self.limits.max_ratio {
                return Err(RestoreError::Limit {
                    what: "expansion ratio",
                    entry,
                    detail: format!(
                        "{out} bytes restored from {src} bytes of source (ratio {}, limit {}): a decompression bomb or a huge sparse file",
                        out / src,
                        self.limits.max_ratio
                    ),
                    setting: "max_ratio",
                }
                .into());
            }
            for block in chunk.chunks(HOLE_BLOCK) {
                if block.iter().all(|b| *b == 0) {
                    hole += block.len() as u64;
                } else {
                    if hole > 0 {
                        f.seek(SeekFrom::Current(hole as i64))
                            .map_err(scratch(&full))
                            .map_err(FileError::Sink)?;
                        hole = 0;
                    }
                    f.write_all(block)
                        .map_err(scratch(&full))
                        .map_err(FileError::Sink)?;
                }
            }
            self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        if written != declared {
            return Err(FileError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry ends after {written} of its declared {declared} bytes"),
            )));
        }
        if hole > 0 {
            f.set_len(written)
                .map_err(scratch(&full))
                .map_err(FileError::Sink)?;
        }
        let kept = (mode & 0o777) | 0o600;
        f.set_permissions(fs::Permissions::from_mode(kept))
            .map_err(scratch(&full))
            .map_err(FileError::Sink)?;
        drop(f);
        if mode & 0o6000 != 0 {
            self.stats.setid_dropped += 1;
            let which = if mode & 0o4000 != 0 {
                "setuid"
            } else {
                "setgid"
            };
            self.record_special(format!("{which} bit dropped: {}", p.display()))?;
        }
        let digest: [u8; 32] = hasher.finalize().into();
        write_manifest_line(&mut self.manifest, &digest, &p.normalized())
            .map_err(scratch(&self.manifest_path))
            .map_err(FileError::Sink)?;
        self.stats.files += 1;
        self.stats.bytes += written;
        if is_sums_file(p.file_name()) {
            self.sums_files.push(p.to_path());
        }
        Ok(())
    }

    /// Writes a disk image of `size` bytes through `fill`, which calls [`ImageWriter::data`] and
    /// [`ImageWriter::zeros`] in order. Zero ranges become holes without being read or hashed: a 2 TB image
    /// that is mostly empty restores in the time of its data. The image gets no line in the SHA-256 manifest;
    /// its integrity is the chunk digests the source verifies while it fills it.
    pub fn image(
        &mut self,
        p: &RelPath,
        size: u64,
        fill: &mut dyn FnMut(&mut ImageWriter<'_>) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        let p = &self.place(p);
        if self.stats.bytes.saturating_add(size) > self.limits.max_bytes {
            return Err(RestoreError::Limit {
                what: "restore size",
                entry: p.display().to_string(),
                detail: format!(
                    "the image is {size} bytes; the limit is {}",
                    self.limits.max_bytes
                ),
                setting: "max_restore_size",
            }
            .into());
        }
        let full = self.prepare_parent(p)?;
        self.clear_target(p, &full)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32,
            )
            .open(&full)
            .map_err(|e| RestoreError::Scratch {
                path: full.clone(),
                source: e,
            })?;
        let budget = self.limits.space_budget.saturating_sub(self.stats.bytes);
        let mut w = ImageWriter {
            file,
            path: &full,
            entry: p.display(),
            pos: 0,
            size,
            stored: 0,
            budget,
            cancel: &self.cancel,
            progress: &self.progress,
        };
        fill(&mut w)?;
        if w.pos != size {
            return Err(FileError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the image ends after {} of its {size} bytes", w.pos),
            )));
        }
        w.file
            .set_len(size)
            .map_err(scratch(&full))
            .map_err(FileError::Sink)?;
        self.stats.files += 1;
        self.stats.bytes += size;
        Ok(())
    }

    /// Creates a symlink as a symlink (absolute targets too). It is never followed while restoring.
    pub fn symlink(&mut self, p: &RelPath, target: &[u8]) -> Result<(), RestoreError> {
        let p = &self.place(p);
        if target.is_empty() {
            return Err(RestoreError::Unsafe {
                entry: p.display().to_string(),
                reason: "symlink with an empty target".to_string(),
            });
        }
        let full = self.prepare_parent(p)?;
        self.clear_target(p, &full)?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &full)
            .map_err(scratch(&full))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Creates a hardlink to an entry restored earlier. The target must be inside, reached through real
    /// folders only, and not a folder.
    pub fn hardlink(&mut self, p: &RelPath, target: &RelPath) -> Result<(), RestoreError> {
        let (p, target) = (&self.place(p), &self.place(target));
        let outside = |why: &str| RestoreError::Unsafe {
            entry: p.display().to_string(),
            reason: format!("hardlink to {:?} {why}", target.display()),
        };
        for i in 1..target.len() {
            let dir = self.root.join(target.prefix(i));
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                _ => {
                    return Err(outside(
                        "goes through something that is not a restored folder",
                    ));
                }
            }
        }
        let target_full = self.root.join(target.to_path());
        let meta = match fs::symlink_metadata(&target_full) {
            Ok(m) if m.file_type().is_dir() => return Err(outside("points at a folder")),
            Ok(m) => m,
            Err(_) => {
                return Err(outside(
                    "points at nothing restored before it (outside the backup?)",
                ));
            }
        };
        let full = self.prepare_parent(p)?;
        self.clear_target(p, &full)?;
        fs::hard_link(&target_full, &full).map_err(scratch(&full))?;
        self.stats.hardlinks += 1;
        if meta.file_type().is_file() {
            let mut f = File::open(&target_full).map_err(scratch(&target_full))?;
            let digest = hash_reader(&mut f).map_err(scratch(&target_full))?;
            write_manifest_line(&mut self.manifest, &digest, &p.normalized())
                .map_err(scratch(&self.manifest_path))?;
        }
        Ok(())
    }

    /// Records a device node, fifo or socket without creating it.
    pub fn special(&mut self, p: &RelPath, kind: &str) -> Result<(), RestoreError> {
        let p = &self.place(p);
        self.stats.special_files += 1;
        self.record_special(format!("{kind} not created: {}", p.display()))
    }

    /// Applies folder modes, flushes evidence and returns the summary.
    pub fn finish(mut self) -> Result<SinkSummary, RestoreError> {
        for (dir, mode) in self.dir_modes.iter().rev() {
            let kept = (mode & 0o1777) | 0o700;
            fs::set_permissions(dir, fs::Permissions::from_mode(kept)).map_err(scratch(dir))?;
        }
        self.manifest
            .flush()
            .map_err(scratch(&self.manifest_path))?;
        self.specials
            .flush()
            .map_err(scratch(&self.specials_path))?;
        if self.stats.special_files + self.stats.setid_dropped == 0 {
            let _ = fs::remove_file(&self.specials_path);
        }
        self.stats.source_bytes = self.source.bytes();
        Ok(SinkSummary {
            stats: self.stats,
            sums_files: self.sums_files,
            specials_sample: self.specials_sample,
            manifest_path: self.manifest_path,
            specials_path: self.specials_path,
        })
    }
}

/// Positioned writer for [`RestoreSink::image`].
pub struct ImageWriter<'a> {
    file: File,
    path: &'a Path,
    entry: &'a str,
    pos: u64,
    size: u64,
    stored: u64,
    budget: u64,
    cancel: &'a CancelFlag,
    progress: &'a Progress,
}

impl ImageWriter<'_> {
    /// Current offset.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn advance(&mut self, len: u64) -> Result<(), FileError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(RestoreError::Cancelled.into());
        }
        if self.pos.saturating_add(len) > self.size {
            return Err(FileError::Read(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("data beyond the image's declared {} bytes", self.size),
            )));
        }
        self.pos += len;
        self.progress.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `data` at the current offset; all-zero blocks stay holes.
    pub fn data(&mut self, data: &[u8]) -> Result<(), FileError> {
        let start = self.pos;
        self.advance(data.len() as u64)?;
        let mut off = start;
        for block in data.chunks(HOLE_BLOCK) {
            if !block.iter().all(|b| *b == 0) {
                self.stored += block.len() as u64;
                if self.stored > self.budget {
                    return Err(RestoreError::NoSpace {
                        entry: self.entry.to_string(),
                        detail: format!(
                            "{} bytes of image data, {} available for this run",
                            self.stored, self.budget
                        ),
                    }
                    .into());
                }
                std::os::unix::fs::FileExt::write_all_at(&self.file, block, off)
                    .map_err(scratch(self.path))
                    .map_err(FileError::Sink)?;
            }
            off += block.len() as u64;
        }
        Ok(())
    }

    /// Skips `len` zero bytes (a hole).
    pub fn zeros(&mut self, len: u64) -> Result<(), FileError> {
        self.advance(len)
    }
}
