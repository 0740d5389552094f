//! The sequential pxar decoder: one forward pass over the archive (and, for split archives, the payload
//! stream), yielding entries in archive order and verifying the structure as it goes.
//!
//! Backups arrive as streams reassembled from chunks, so nothing here seeks: offsets stored in the archive
//! (goodbye tables, hardlinks, payload references) are checked against positions the decoder counted itself.
//! What it keeps while reading: the directory stack with one small record per child of each open directory
//! (for the goodbye check), and one (position, path hash) pair per regular file (to verify hardlinks, whose
//! targets always come earlier, §4.4). File contents are never buffered: [`Decoder::contents`] streams them.
//!
//! Grammar and checks follow `shared/reference/pbs-protocol.md` §4.3–§4.6.

use std::io::{self, Read};

use super::contents::FileCursor;
use super::entry::{DeviceKind, DirEnd, Entry, EntryKind, Event};
use super::error::{PxarError, StreamKind, invalid};
use super::format::{
    FORMAT_VERSION_2, Header, PXAR_DEVICE, PXAR_ENTRY, PXAR_ENTRY_V1, PXAR_FILENAME,
    PXAR_FORMAT_VERSION, PXAR_GOODBYE, PXAR_HARDLINK, PXAR_PAYLOAD, PXAR_PAYLOAD_REF, PXAR_PRELUDE,
    PXAR_SYMLINK, hash_filename, le_u64, mode,
};
use super::goodbye::{Child, verify_goodbye};
use super::links::{FileIndex, validate_filename};
use super::metadata::{file_type_word, read_metadata};
use super::payload::PayloadStream;
use super::reader::PosReader;

/// Largest PRELUDE accepted. The format leaves it unbounded (§4.1) and opaque (§4.5); lifeboat keeps it in
/// memory for the caller, so it bounds it.
pub const MAX_PRELUDE: u64 = 16 << 20;
/// Longest entry path (all components) decoded. Not a format limit: Linux paths stop at 4096 bytes; this is
/// 16 times that and bounds the directory stack of a crafted, endlessly nested archive.
pub const MAX_PATH_BYTES: usize = 64 * 1024;

/// Counters of a decode, for the integrity evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Entries yielded, the root included.
    pub entries: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links (each one verified against an earlier regular file).
    pub hardlinks: u64,
    /// Character and block devices.
    pub devices: u64,
    /// Named pipes.
    pub fifos: u64,
    /// Unix sockets.
    pub sockets: u64,
    /// Declared content bytes of regular files.
    pub file_bytes: u64,
    /// Goodbye tables verified (one per directory once decoding finished).
    pub goodbye_tables: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Body,
    Done,
    Failed,
}

/// An open directory.
struct Frame {
    /// Its ENTRY header (0 for the root: the encoder counts the root from the archive start, §4.4).
    entry_pos: u64,
    /// Its FILENAME header (0 for the root).
    start: u64,
    /// Its name hash (unused for the root).
    hash: u64,
    /// Length of the parent's path, to restore `Decoder::path` when the directory closes.
    parent_path_len: usize,
    children: Vec<Child>,
}

/// Streaming pxar decoder over a unified archive (`.pxar`, format 1) or a split one (`.mpxar` + `.ppxar`,
/// format 2). Call [`Decoder::next`] until it returns `Ok(None)`; that proves the whole archive was read and
/// verified. After an error the decoder stays failed.
pub struct Decoder<M, P> {
    meta: PosReader<M>,
    payload: Option<PayloadStream<P>>,
    version: Option<u8>,
    prelude: Option<Vec<u8>>,
    state: State,
    peeked: Option<Header>,
    stack: Vec<Frame>,
    path: Vec<u8>,
    /// The current file's unread contents.
    pending: Option<FileCursor>,
    /// Every regular file so far, to verify hardlinks.
    files: FileIndex,
    stats: DecodeStats,
}

impl<M: Read> Decoder<M, io::Empty> {
    /// A decoder for a unified archive (`.pxar`).
    pub fn unified(archive: M) -> Self {
        Decoder::new(archive, None)
    }
}

impl<M: Read, P: Read> Decoder<M, P> {
    /// A decoder over `archive` and, for split archives, `payload`. Whether the archive is split is read from
    /// its first item; a split archive without a payload stream (or the reverse) is an error.
    pub fn new(archive: M, payload: Option<P>) -> Self {
        Decoder {
            meta: PosReader::new(archive, StreamKind::Archive),
            payload: payload.map(PayloadStream::new),
            version: None,
            prelude: None,
            state: State::Start,
            peeked: None,
            stack: Vec::new(),
            path: Vec::new(),
            pending: None,
            files: FileIndex::new(),
            stats: DecodeStats::default(),
        }
    }

    /// The format version (1 unified, 2 split), known once the first entry was read.
    pub fn format_version(&self) -> Option<u8> {
        self.version
    }

    /// The PRELUDE bytes of a split archive that has one.
    pub fn prelude(&self) -> Option<&[u8]> {
        self.prelude.as_deref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Bytes read from the archive stream so far.
    pub fn archive_bytes(&self) -> u64 {
        self.meta.pos()
    }

    /// Bytes read from the payload stream so far (`None` for unified archives).
    pub fn payload_bytes(&self) -> Option<u64> {
        self.payload.as_ref().map(|p| p.r.pos())
    }

    /// `true` once the whole archive was read and verified: the root goodbye table, the end of the archive
    /// right after it and, for split archives, the payload stream's tail marker.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// A reader over the remaining contents of the file just yielded (empty for anything else). It yields
    /// exactly the declared size or fails with a [`PxarError`] wrapped by [`PxarError::into_io`]. Whatever is
    /// not read is skipped by the next call to [`Decoder::next`].
    pub fn contents(&mut self) -> Contents<'_, M, P> {
        Contents { dec: self }
    }

    /// The next entry or directory end, `Ok(None)` after the archive was read completely and verified.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, PxarError> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed => return Err(PxarError::AlreadyFailed),
            State::Start | State::Body => {}
        }
        let r = self.step();
        if r.is_err() {
            self.state = State::Failed;
        }
        r.map(Some)
    }

    fn step(&mut self) -> Result<Event, PxarError> {
        self.skip_pending()?;
        if self.state == State::Start {
            return self.start();
        }
        let h = match self.peeked.take() {
            Some(h) => h,
            None => self
                .meta
                .read_item_header("a FILENAME or GOODBYE item (the directory is not closed)")?,
        };
        match h.htype {
            PXAR_FILENAME => self.child(&h),
            PXAR_GOODBYE => self.goodbye(&h),
            _ => Err(invalid(
                h.pos,
                format!(
                    "a FILENAME or GOODBYE item in directory {:?}",
                    String::from_utf8_lossy(&self.path)
                ),
                h.describe(),
            )),
        }
    }

    fn skip_pending(&mut self) -> Result<(), PxarError> {
        match self.pending.take() {
            Some(mut cursor) => cursor.skip(&mut self.meta, self.payload.as_mut()),
            None => Ok(()),
        }
    }

    /// Archive start: optional FORMAT_VERSION (+ PRELUDE), then the root directory (§4.3, §4.5).
    fn start(&mut self) -> Result<Event, PxarError> {
        let mut h = self
            .meta
            .read_item_header("the first item (FORMAT_VERSION or the root ENTRY)")?;
        if h.htype == PXAR_FORMAT_VERSION {
            let mut v = [0u8; 8];
            self.meta.read_exact(&mut v, "the format version")?;
            let version = u64::from_le_bytes(v);
            if version != FORMAT_VERSION_2 {
                return Err(invalid(
                    h.content_pos(),
                    "format version 2 (the only version written into a FORMAT_VERSION item)",
                    format!("version {version}"),
                ));
            }
            let Some(payload) = self.payload.as_mut() else {
                return Err(invalid(
                    h.pos,
                    "a unified archive, since no payload stream was given",
                    "a split (format 2) metadata archive, whose file contents are in a separate payload stream",
                ));
            };
            payload.read_start()?;
            self.version = Some(2);
            h = self
                .meta
                .read_item_header("the PRELUDE or the root ENTRY item")?;
            if h.htype == PXAR_PRELUDE {
                if h.content_size() > MAX_PRELUDE {
                    return Err(invalid(
                        h.pos,
                        format!("a PRELUDE of at most {MAX_PRELUDE} bytes"),
                        format!("{} bytes", h.content_size()),
                    ));
                }
                self.prelude = Some(
                    self.meta
                        .read_vec_growing(h.content_size(), "the prelude")?,
                );
                h = self.meta.read_item_header("the root ENTRY item")?;
            }
        } else {
            if self.payload.is_some() {
                return Err(invalid(
                    h.pos,
                    "a FORMAT_VERSION item (a split metadata archive), since a payload stream was given",
                    h.describe(),
                ));
            }
            self.version = Some(1);
        }
        if h.htype != PXAR_ENTRY && h.htype != PXAR_ENTRY_V1 {
            return Err(invalid(
                h.pos,
                "the root directory's ENTRY item",
                h.describe(),
            ));
        }
        let (metadata, terminal) = read_metadata(&mut self.meta, &h)?;
        if metadata.stat.file_type() != mode::IFDIR {
            return Err(invalid(
                h.content_pos(),
                "a directory as the archive root",
                format!("a {}", file_type_word(metadata.stat.mode).unwrap_or("?")),
            ));
        }
        if terminal.htype != PXAR_FILENAME && terminal.htype != PXAR_GOODBYE {
            return Err(invalid(
                terminal.pos,
                "a FILENAME or GOODBYE item after the root directory's metadata",
                terminal.describe(),
            ));
        }
        self.peeked = Some(terminal);
        self.stack.push(Frame {
            entry_pos: 0,
            start: 0,
            hash: 0,
            parent_path_len: 0,
            children: Vec::new(),
        });
        self.state = State::Body;
        self.stats.entries += 1;
        self.stats.dirs += 1;
        Ok(Event::Entry(Entry {
            path: Vec::new(),
            offset: h.pos,
            kind: EntryKind::Directory,
            metadata: Some(metadata),
        }))
    }

    fn push_child(&mut self, child: Child) {
        if let Some(top) = self.stack.last_mut() {
            top.children.push(child);
        }
    }

    /// A FILENAME item and the entry it names.
    fn child(&mut self, fname: &Header) -> Result<Event, PxarError> {
        let raw = self.meta.read_vec(fname.content_size(), "a file name")?;
        let name = validate_filename(&raw, fname.pos, &self.path)?;
        let hash = hash_filename(name);
        let mut path = Vec::with_capacity(self.path.len() + 1 + name.len());
        path.extend_from_slice(&self.path);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        if path.len() > MAX_PATH_BYTES {
            return Err(invalid(
                fname.pos,
                format!("an entry path of at most {MAX_PATH_BYTES} bytes"),
                format!("{} bytes", path.len()),
            ));
        }
        let h = self
            .meta
            .read_item_header("the entry's ENTRY or HARDLINK item")?;
        match h.htype {
            PXAR_HARDLINK => self.hardlink(fname, &h, hash, path),
            PXAR_ENTRY | PXAR_ENTRY_V1 => self.entry(fname, &h, hash, path),
            _ => Err(invalid(
                h.pos,
                "an ENTRY or HARDLINK item after the FILENAME",
                h.describe(),
            )),
        }
    }

    /// HARDLINK: `offset u64 || target path || NUL`; the target is a regular file named earlier (§4.4).
    fn hardlink(
        &mut self,
        fname: &Header,
        h: &Header,
        hash: u64,
        path: Vec<u8>,
    ) -> Result<Event, PxarError> {
        let c = self.meta.read_vec(h.content_size(), "the hardlink item")?;
        let (target, link_offset) = self.files.verify_hardlink(h, &c, fname.pos, &path)?;
        let end = h.end().unwrap_or(u64::MAX);
        self.push_child(Child {
            hash,
            start: fname.pos,
            size: end.saturating_sub(fname.pos),
            alt_size: None,
        });
        self.stats.entries += 1;
        self.stats.hardlinks += 1;
        Ok(Event::Entry(Entry {
            path,
            offset: fname.pos,
            kind: EntryKind::Hardlink {
                target,
                link_offset,
            },
            metadata: None,
        }))
    }

    /// ENTRY, attributes, and the content item that says what the entry is (§4.3, §4.6). The content item must
    /// match the file type in the mode.
    fn entry(
        &mut self,
        fname: &Header,
        entry_hdr: &Header,
        hash: u64,
        path: Vec<u8>,
    ) -> Result<Event, PxarError> {
        let (metadata, t) = read_metadata(&mut self.meta, entry_hdr)?;
        let ft = metadata.stat.file_type();
        let start = fname.pos;
        let item_end = t.end().unwrap_or(u64::MAX);
        // (kind, where the entry ends in the archive, payload bytes the goodbye size may include)
        let (kind, end, payload_size) = match t.htype {
            PXAR_PAYLOAD if ft == mode::IFREG && self.version == Some(1) => {
                let size = t.content_size();
                self.pending = Some(FileCursor {
                    stream: StreamKind::Archive,
                    left: size,
                });
                self.register_file(start, &path, size);
                let kind = EntryKind::File {
                    size,
                    content_offset: t.content_pos(),
                    payload_ref: None,
                };
                (kind, Some(item_end), None)
            }
            PXAR_PAYLOAD_REF if ft == mode::IFREG && self.version == Some(2) => {
                let kind = self.payload_ref(&t, start, &path)?;
                let size = match kind {
                    EntryKind::File { size, .. } => size,
                    _ => 0,
                };
                (kind, Some(item_end), Some(size))
            }
            PXAR_SYMLINK if ft == mode::IFLNK => {
                let c = self.meta.read_vec(t.content_size(), "the symlink target")?;
                let target = match c.strip_suffix(&[0]) {
                    Some(target) if !target.contains(&0) => target.to_vec(),
                    _ => {
                        return Err(invalid(
                            t.pos,
                            "a NUL-terminated symlink target without other NUL bytes",
                            "a malformed target",
                        ));
                    }
                };
                self.stats.symlinks += 1;
                (EntryKind::Symlink { target }, Some(item_end), None)
            }
            PXAR_DEVICE if ft == mode::IFCHR || ft == mode::IFBLK => {
                let mut b = [0u8; 16];
                self.meta.read_exact(&mut b, "the device numbers")?;
                self.stats.devices += 1;
                let kind = EntryKind::Device {
                    kind: if ft == mode::IFCHR {
                        DeviceKind::Char
                    } else {
                        DeviceKind::Block
                    },
                    major: le_u64(&b, 0),
                    minor: le_u64(&b, 8),
                };
                (kind, Some(item_end), None)
            }
            PXAR_FILENAME | PXAR_GOODBYE if ft == mode::IFDIR => {
                // the directory's own goodbye item is recorded in its parent when it closes
                self.stack.push(Frame {
                    entry_pos: entry_hdr.pos,
                    start,
                    hash,
                    parent_path_len: self.path.len(),
                    children: Vec::new(),
                });
                self.path.clone_from(&path);
                self.peeked = Some(t);
                self.stats.dirs += 1;
                (EntryKind::Directory, None, None)
            }
            PXAR_FILENAME | PXAR_GOODBYE if ft == mode::IFIFO || ft == mode::IFSOCK => {
                // no content item: the entry ends where the next FILENAME or GOODBYE starts (§4.3)
                self.peeked = Some(t);
                let kind = if ft == mode::IFIFO {
                    self.stats.fifos += 1;
                    EntryKind::Fifo
                } else {
                    self.stats.sockets += 1;
                    EntryKind::Socket
                };
                (kind, Some(t.pos), None)
            }
            PXAR_PAYLOAD | PXAR_PAYLOAD_REF if ft == mode::IFREG => {
                return Err(invalid(
                    t.pos,
                    format!(
                        "file contents as {} (this is a format {} archive)",
                        if self.version == Some(2) {
                            "a PAYLOAD_REF into the payload stream"
                        } else {
                            "a PAYLOAD item"
                        },
                        self.version.unwrap_or(1)
                    ),
                    t.describe(),
                ));
            }
            _ => {
                return Err(invalid(
                    t.pos,
                    format!(
                        "the content item of a {} (as its mode says)",
                        file_type_word(metadata.stat.mode).unwrap_or("?")
                    ),
                    t.describe(),
                ));
            }
        };
        if let Some(end) = end {
            let size = end.saturating_sub(start);
            self.push_child(Child {
                hash,
                start,
                size,
                // §4.4 quirk: split-archive files written with their payload record metadata + file size
                alt_size: payload_size.and_then(|p| size.checked_add(p)),
            });
        }
        self.stats.entries += 1;
        Ok(Event::Entry(Entry {
            path,
            offset: start,
            kind,
            metadata: Some(metadata),
        }))
    }

    fn register_file(&mut self, start: u64, path: &[u8], size: u64) {
        self.files.register(start, path);
        self.stats.files += 1;
        self.stats.file_bytes = self.stats.file_bytes.saturating_add(size);
    }

    /// PAYLOAD_REF `{offset, size}`: skip forward in the payload stream to the PAYLOAD header at `offset` and
    /// check it (§4.5). References never go backwards, so one forward pass works.
    fn payload_ref(&mut self, t: &Header, start: u64, path: &[u8]) -> Result<EntryKind, PxarError> {
        let mut b = [0u8; 16];
        self.meta.read_exact(&mut b, "the payload reference")?;
        let (offset, size) = (le_u64(&b, 0), le_u64(&b, 8));
        let Some(payload) = self.payload.as_mut() else {
            // unreachable: format 2 requires a payload stream at the start
            return Err(invalid(t.pos, "a payload stream", "none"));
        };
        let ph = payload.open_ref(t, offset, size)?;
        self.pending = Some(FileCursor {
            stream: StreamKind::Payload,
            left: size,
        });
        self.register_file(start, path, size);
        Ok(EntryKind::File {
            size,
            content_offset: ph.content_pos(),
            payload_ref: Some(offset),
        })
    }

    /// GOODBYE: verify the table against the directory just read, close it, and at the root check the ends of
    /// both streams (§4.4, §4.6).
    fn goodbye(&mut self, h: &Header) -> Result<Event, PxarError> {
        let Some(frame) = self.stack.pop() else {
            return Err(invalid(
                h.pos,
                "no GOODBYE outside a directory",
                h.describe(),
            ));
        };
        let order = verify_goodbye(&mut self.meta, *h, &frame.children, frame.entry_pos)?;
        self.stats.goodbye_tables += 1;
        let dir_path = self.path.clone();
        self.path.truncate(frame.parent_path_len);
        let end = h.end().unwrap_or(u64::MAX);
        if self.stack.is_empty() {
            self.finish()?;
            self.state = State::Done;
        } else {
            self.push_child(Child {
                hash: frame.hash,
                start: frame.start,
                size: end.saturating_sub(frame.start),
                alt_size: None,
            });
        }
        Ok(Event::DirEnd(DirEnd {
            path: dir_path,
            goodbye_offset: h.pos,
            children: frame.children.len(),
            goodbye_order: order,
        }))
    }

    /// After the root goodbye: the archive must end, the payload stream must end with its tail marker.
    fn finish(&mut self) -> Result<(), PxarError> {
        if !self.meta.at_eof()? {
            return Err(invalid(
                self.meta.pos(),
                "the end of the archive after the root directory's goodbye table",
                "more bytes",
            ));
        }
        match self.payload.as_mut() {
            Some(payload) => payload.read_end(),
            None => Ok(()),
        }
    }
}

/// Reader over the current file's contents; see [`Decoder::contents`].
pub struct Contents<'a, M, P> {
    dec: &'a mut Decoder<M, P>,
}

impl<M: Read, P: Read> Read for Contents<'_, M, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let dec = &mut *self.dec;
        if dec.state == State::Failed {
            return Err(PxarError::AlreadyFailed.into_io());
        }
        let Some(cursor) = dec.pending.as_mut() else {
            return Ok(0);
        };
        cursor
            .read(&mut dec.meta, dec.payload.as_mut(), buf)
            .map_err(|e| {
                dec.state = State::Failed;
                e.into_io()
            })
    }
}
