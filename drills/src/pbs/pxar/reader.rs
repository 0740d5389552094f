//! A forward-only reader that knows its position.
//!
//! pxar locates things by byte offsets (goodbye tables, hardlinks, payload references), so the decoder must
//! know exactly where every item starts without seeking: backups arrive as streams reassembled from chunks.
//! This wrapper buffers small reads (headers are 16 bytes), counts every byte, skips forward without
//! allocating, and turns a short read into a [`PxarError::Truncated`] that names the offset and what was due.

use std::io::{self, BufReader, Read};

use super::error::{PxarError, StreamKind};
use super::format::{HEADER_SIZE, Header, fixed_content_size, le_u64, max_content_size, type_name};

/// Read buffer size: large enough that 16-byte headers do not each cost a read call.
const BUF_SIZE: usize = 64 * 1024;

/// Position-tracking reader over one pxar stream.
pub(crate) struct PosReader<R> {
    inner: BufReader<R>,
    pos: u64,
    kind: StreamKind,
}

impl<R: Read> PosReader<R> {
    pub(crate) fn new(inner: R, kind: StreamKind) -> Self {
        PosReader {
            inner: BufReader::with_capacity(BUF_SIZE, inner),
            pos: 0,
            kind,
        }
    }

    /// Bytes consumed so far (= position of the next byte).
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    fn io_error(&self, source: io::Error) -> PxarError {
        PxarError::Io {
            stream: self.kind,
            offset: self.pos,
            source,
        }
    }

    fn truncated(&self, expected: &str) -> PxarError {
        PxarError::Truncated {
            stream: self.kind,
            offset: self.pos,
            expected: expected.to_string(),
        }
    }

    /// One `read` call, retried on `Interrupted`, counting the bytes.
    pub(crate) fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, PxarError> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.pos = self.pos.saturating_add(n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    /// Fills `buf` completely or fails with "truncated, expected `what`".
    pub(crate) fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), PxarError> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_some(&mut buf[done..])?;
            if n == 0 {
                return Err(self.truncated(what));
            }
            done += n;
        }
        Ok(())
    }

    /// Reads exactly `len` bytes into a new vector. Callers bound `len` by a format maximum first.
    pub(crate) fn read_vec(&mut self, len: u64, what: &str) -> Result<Vec<u8>, PxarError> {
        let len = usize::try_from(len).map_err(|_| self.truncated(what))?;
        let mut v = vec![0u8; len];
        self.read_exact(&mut v, what)?;
        Ok(v)
    }

    /// Reads up to `len` bytes, growing the vector only as data arrives (for items whose size is
    /// attacker-chosen but bounded by lifeboat, not by the format).
    pub(crate) fn read_vec_growing(&mut self, len: u64, what: &str) -> Result<Vec<u8>, PxarError> {
        let mut v = Vec::new();
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(&mut v)
            .map_err(|e| self.io_error(e))?;
        self.pos = self.pos.saturating_add(got as u64);
        if (got as u64) < len {
            return Err(self.truncated(what));
        }
        Ok(v)
    }

    /// Skips `n` bytes without keeping them.
    pub(crate) fn skip(&mut self, n: u64, what: &str) -> Result<(), PxarError> {
        let mut left = n;
        let mut scratch = [0u8; 8192];
        while left > 0 {
            let want = usize::try_from(left.min(scratch.len() as u64)).unwrap_or(scratch.len());
            let got = self.read_some(&mut scratch[..want])?;
            if got == 0 {
                return Err(self.truncated(what));
            }
            left -= got as u64;
        }
        Ok(())
    }

    /// Reads a 16-byte item header. `Ok(None)` when the stream ends exactly before it; a partial header is
    /// a truncation.
    pub(crate) fn read_header_or_eof(&mut self, what: &str) -> Result<Option<Header>, PxarError> {
        let pos = self.pos;
        let mut b = [0u8; HEADER_SIZE as usize];
        let first = self.read_some(&mut b)?;
        if first == 0 {
            return Ok(None);
        }
        self.read_exact(&mut b[first..], what)?;
        Ok(Some(Header {
            htype: le_u64(&b, 0),
            full_size: le_u64(&b, 8),
            pos,
        }))
    }

    /// Reads a 16-byte item header; the end of the stream is a truncation.
    pub(crate) fn read_header(&mut self, what: &str) -> Result<Header, PxarError> {
        match self.read_header_or_eof(what)? {
            Some(h) => Ok(h),
            None => Err(self.truncated(what)),
        }
    }

    /// Reads a header and checks it against the format's size rules ([`check_header`]).
    pub(crate) fn read_item_header(&mut self, what: &str) -> Result<Header, PxarError> {
        let h = self.read_header(what)?;
        check_header(&h, self.kind)?;
        Ok(h)
    }

    /// `true` when no byte follows.
    pub(crate) fn at_eof(&mut self) -> Result<bool, PxarError> {
        let mut b = [0u8; 1];
        let n = self.read_some(&mut b)?;
        if n > 0 {
            // put the position back on the extra byte for the message: it belongs to whatever follows
            self.pos = self.pos.saturating_sub(1);
        }
        Ok(n == 0)
    }
}

/// Checks an item header against §4.1: a known type, `full_size ≥ 16`, the content within the type's maximum
/// (exact for fixed-size structs), and an end that fits in a u64.
pub(crate) fn check_header(h: &Header, stream: StreamKind) -> Result<(), PxarError> {
    let bad = |expected: String, found: String| PxarError::Invalid {
        stream,
        offset: h.pos,
        expected,
        found,
    };
    let Some(max) = max_content_size(h.htype) else {
        return Err(bad(
            "a known pxar item type".to_string(),
            format!("item type {:#018x}", h.htype),
        ));
    };
    let name = type_name(h.htype);
    if h.full_size < HEADER_SIZE {
        return Err(bad(
            format!("a {name} item size of at least {HEADER_SIZE} bytes (the header itself)"),
            format!("size {}", h.full_size),
        ));
    }
    let content = h.content_size();
    if let Some(fixed) = fixed_content_size(h.htype) {
        if content != fixed {
            return Err(bad(
                format!("a {name} item with exactly {fixed} content bytes"),
                format!("{content} content bytes"),
            ));
        }
    } else if content > max {
        return Err(bad(
            format!("a {name} item with at most {max} content bytes"),
            format!("{content} content bytes"),
        ));
    }
    if h.end().is_none() {
        return Err(bad(
            format!("a {name} item that ends within 2^64 bytes"),
            format!("size {}", h.full_size),
        ));
    }
    Ok(())
}
