//! Reading an archive as a byte stream from its chunks, verifying each one on the way.
//!
//! Both indexes describe an archive as a list of chunks (digest, offset, length). [`ChunkStream`] turns that
//! list plus a [`ChunkLoader`] (a datastore directory today, the reader protocol tomorrow) into a `Read`, so
//! the pxar decoder and the image writer never see chunks. A chunk that fails verification becomes an
//! `InvalidData` error naming the archive, the chunk digest and the byte offset in the restored stream; a
//! chunk store that cannot be read at all marks the source as failed, so the run is `error`, not `failed`.

use std::io::{self, Read};

/// One chunk of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// Chunk digest (its name in the chunk store).
    pub digest: [u8; 32],
    /// Offset of the chunk in the archive stream.
    pub offset: u64,
    /// Length of the chunk's data.
    pub len: u64,
}

/// Why a chunk could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChunkFault {
    /// The chunk is missing or its bytes are wrong: the backup is bad.
    #[error("{0}")]
    Bad(String),
    /// The chunk store could not be read: lifeboat's environment, not the backup.
    #[error("{0}")]
    Unreadable(#[source] io::Error),
}

/// Loads and verifies one chunk, returning exactly `chunk.len` bytes of plain data.
pub trait ChunkLoader {
    /// Loads `chunk`.
    fn load(&mut self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkFault>;
}

impl<F: FnMut(&ChunkRef) -> Result<Vec<u8>, ChunkFault>> ChunkLoader for F {
    fn load(&mut self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        self(chunk)
    }
}

/// An error from a chunk store, as an `io::Error` the restore layers pass through unchanged.
#[derive(Debug, thiserror::Error)]
#[error("archive {archive}: chunk {digest} at byte {offset} of the restored stream: {fault}")]
pub struct ChunkStreamError {
    /// Archive name.
    pub archive: String,
    /// Chunk digest, hex.
    pub digest: String,
    /// Offset of the chunk in the archive stream.
    pub offset: u64,
    /// What was wrong.
    pub fault: ChunkFault,
}

/// `Read` over an archive's chunks.
pub struct ChunkStream<'a, L> {
    archive: String,
    chunks: &'a [ChunkRef],
    next: usize,
    cur: Vec<u8>,
    pos: usize,
    loader: L,
}

impl<'a, L: ChunkLoader> ChunkStream<'a, L> {
    /// Streams `chunks` of `archive` through `loader`.
    pub fn new(archive: &str, chunks: &'a [ChunkRef], loader: L) -> Self {
        ChunkStream {
            archive: archive.to_string(),
            chunks,
            next: 0,
            cur: Vec::new(),
            pos: 0,
            loader,
        }
    }
}

impl<L: ChunkLoader> Read for ChunkStream<'_, L> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(c) = self.chunks.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            match self.loader.load(c) {
                Ok(data) if data.len() as u64 == c.len => {
                    self.cur = data;
                    self.pos = 0;
                }
                result => {
                    let fault = match result {
                        Ok(data) => ChunkFault::Bad(format!(
                            "{} bytes where the index says {}",
                            data.len(),
                            c.len
                        )),
                        Err(f) => f,
                    };
                    let kind = match &fault {
                        ChunkFault::Bad(_) => io::ErrorKind::InvalidData,
                        ChunkFault::Unreadable(e) => e.kind(),
                    };
                    let err = ChunkStreamError {
                        archive: self.archive.clone(),
                        digest: hex::encode(c.digest),
                        offset: c.offset,
                        fault,
                    };
                    return Err(io::Error::new(kind, err));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_chunks_and_names_the_bad_one() {
        let chunks = [
            ChunkRef {
                digest: [1; 32],
                offset: 0,
                len: 3,
            },
            ChunkRef {
                digest: [2; 32],
                offset: 3,
                len: 2,
            },
            ChunkRef {
                digest: [3; 32],
                offset: 5,
                len: 4,
            },
        ];
        let loader = |c: &ChunkRef| -> Result<Vec<u8>, ChunkFault> {
            match c.digest[0] {
                1 => Ok(b"abc".to_vec()),
                2 => Ok(b"de".to_vec()),
                _ => Err(ChunkFault::Bad("digest mismatch".into())),
            }
        };
        let mut s = ChunkStream::new("root.pxar", &chunks, loader);
        let mut out = Vec::new();
        let err = s.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"abcde");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(
            text.contains("archive root.pxar: chunk 0303")
                && text.contains("at byte 5")
                && text.contains("digest mismatch"),
            "{text}"
        );
        // A short chunk is caught even when the loader forgets to check.
        let short = [ChunkRef {
            digest: [9; 32],
            offset: 0,
            len: 10,
        }];
        let mut s = ChunkStream::new("x", &short, |_: &ChunkRef| Ok(vec![0u8; 4]));
        assert!(
            s.read_to_end(&mut Vec::new())
                .unwrap_err()
                .to_string()
                .contains("4 bytes where the index says 10")
        );
    }
}
