//! A tiny pxar encoder for tests: writes archives laid out as §4.3–§4.5 describe (goodbye tables included),
//! without validating names, so tests can build hostile archives that are otherwise well-formed.

use std::collections::HashMap;

use crate::pbs::pxar::bst_permutation;
use crate::pbs::pxar::format::*;

/// A tree node to encode.
pub enum Node {
    File(Vec<u8>, Vec<u8>),
    Dir(Vec<u8>, Vec<Node>),
    Symlink(Vec<u8>, Vec<u8>),
    /// name, target path (the offset points at the file of that path encoded earlier, or at byte 0)
    Hardlink(Vec<u8>, Vec<u8>),
    Fifo(Vec<u8>),
}

pub fn file(name: &[u8], data: &[u8]) -> Node {
    Node::File(name.to_vec(), data.to_vec())
}

pub fn dir(name: &[u8], children: Vec<Node>) -> Node {
    Node::Dir(name.to_vec(), children)
}

pub fn symlink(name: &[u8], target: &[u8]) -> Node {
    Node::Symlink(name.to_vec(), target.to_vec())
}

pub fn hardlink(name: &[u8], target: &[u8]) -> Node {
    Node::Hardlink(name.to_vec(), target.to_vec())
}

pub fn fifo(name: &[u8]) -> Node {
    Node::Fifo(name.to_vec())
}

pub struct Encoded {
    pub archive: Vec<u8>,
    pub payload: Option<Vec<u8>>,
}

struct Enc {
    out: Vec<u8>,
    payload: Option<Vec<u8>>,
    files: HashMap<Vec<u8>, u64>,
    mtime: i64,
    legacy: bool,
}

fn header(out: &mut Vec<u8>, htype: u64, content: u64) {
    out.extend_from_slice(&htype.to_le_bytes());
    out.extend_from_slice(&(content + 16).to_le_bytes());
}

impl Enc {
    fn item(&mut self, htype: u64, content: &[u8]) {
        header(&mut self.out, htype, content.len() as u64);
        self.out.extend_from_slice(content);
    }

    fn entry(&mut self, mode: u64) {
        self.mtime += 1;
        let mut c = Vec::new();
        c.extend_from_slice(&mode.to_le_bytes());
        c.extend_from_slice(&0u64.to_le_bytes());
        c.extend_from_slice(&1000u32.to_le_bytes());
        c.extend_from_slice(&1000u32.to_le_bytes());
        if self.legacy {
            // Stat_V1: mtime as u64 nanoseconds (§4.2)
            c.extend_from_slice(&(self.mtime as u64 * 1_000_000_000 + 5).to_le_bytes());
            self.item(PXAR_ENTRY_V1, &c);
        } else {
            c.extend_from_slice(&self.mtime.to_le_bytes());
            c.extend_from_slice(&5u32.to_le_bytes());
            c.extend_from_slice(&0u32.to_le_bytes());
            self.item(PXAR_ENTRY, &c);
        }
    }

    fn cstr(&mut self, htype: u64, s: &[u8]) {
        let mut c = s.to_vec();
        c.push(0);
        self.item(htype, &c);
    }

    /// Children then the goodbye table of a directory whose ENTRY is at `entry_pos`.
    fn dir_body(&mut self, dir: &[u8], children: &[Node], entry_pos: u64) {
        let mut items: Vec<(u64, u64, u64)> = Vec::new(); // hash, start, size
        for child in children {
            let start = self.out.len() as u64;
            let name: &[u8] = match child {
                Node::File(n, _)
                | Node::Dir(n, _)
                | Node::Symlink(n, _)
                | Node::Hardlink(n, _)
                | Node::Fifo(n) => n,
            };
            let path = if dir.is_empty() {
                name.to_vec()
            } else {
                [dir, b"/", name].concat()
            };
            self.cstr(PXAR_FILENAME, name);
            let mut extra = 0;
            match child {
                Node::File(_, data) => {
                    self.files.insert(path.clone(), start);
                    self.entry(mode::IFREG | 0o644);
                    match self.payload.as_mut() {
                        Some(p) => {
                            let at = p.len() as u64;
                            header(p, PXAR_PAYLOAD, data.len() as u64);
                            p.extend_from_slice(data);
                            let mut c = at.to_le_bytes().to_vec();
                            c.extend_from_slice(&(data.len() as u64).to_le_bytes());
                            self.item(PXAR_PAYLOAD_REF, &c);
                            extra = data.len() as u64; // §4.4 quirk, as the upstream encoder does
                        }
                        None => self.item(PXAR_PAYLOAD, data),
                    }
                }
                Node::Dir(_, kids) => {
                    let entry_pos = self.out.len() as u64;
                    self.entry(mode::IFDIR | 0o755);
                    self.dir_body(&path, kids, entry_pos);
                }
                Node::Symlink(_, target) => {
                    self.entry(mode::IFLNK | 0o777);
                    self.cstr(PXAR_SYMLINK, target);
                }
                Node::Hardlink(_, target) => {
                    let target_pos = self.files.get(target).copied().unwrap_or(0);
                    let mut c = (start - target_pos).to_le_bytes().to_vec();
                    c.extend_from_slice(target);
                    c.push(0);
                    self.item(PXAR_HARDLINK, &c);
                }
                Node::Fifo(_) => self.entry(mode::IFIFO | 0o644),
            }
            let size = self.out.len() as u64 - start + extra;
            items.push((hash_filename(name), start, size));
        }
        let gpos = self.out.len() as u64;
        items.sort_by_key(|i| i.0);
        let full = 16 + 24 * (items.len() as u64 + 1);
        self.out.extend_from_slice(&PXAR_GOODBYE.to_le_bytes());
        self.out.extend_from_slice(&full.to_le_bytes());
        for k in bst_permutation(items.len()) {
            let (hash, start, size) = items[k];
            for v in [hash, gpos - start, size] {
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for v in [PXAR_GOODBYE_TAIL_MARKER, gpos - entry_pos, full] {
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Encodes a root directory holding `children`; split (format 2) when `split`.
pub fn encode(children: &[Node], split: bool) -> Encoded {
    encode_with(children, split, false, 1_700_000_000)
}

/// Like [`encode`], with legacy ENTRY_V1 stats when `legacy`; the first entry gets mtime `mtime + 1`.
pub fn encode_with(children: &[Node], split: bool, legacy: bool, mtime: i64) -> Encoded {
    let mut e = Enc {
        out: Vec::new(),
        payload: None,
        files: HashMap::new(),
        mtime,
        legacy,
    };
    if split {
        e.item(PXAR_FORMAT_VERSION, &2u64.to_le_bytes());
        let mut p = Vec::new();
        header(&mut p, PXAR_PAYLOAD_START_MARKER, 0);
        e.payload = Some(p);
    }
    e.entry(mode::IFDIR | 0o755);
    e.dir_body(b"", children, 0);
    if let Some(p) = e.payload.as_mut() {
        header(p, PXAR_PAYLOAD_TAIL_MARKER, 0);
    }
    Encoded {
        archive: e.out,
        payload: e.payload,
    }
}

/// A small well-formed tree used by several tests.
pub fn sample_tree() -> Vec<Node> {
    vec![
        file(b"a.txt", b"alpha\n"),
        dir(b"d", vec![file(b"inner", b"inner file\n"), fifo(b"pipe")]),
        hardlink(b"link", b"d/inner"),
        symlink(b"sym", b"a.txt"),
    ]
}
