//! The unread part of the current file's contents, in whichever stream holds it.
//!
//! A regular file's bytes follow its PAYLOAD header, in the archive (unified) or in the payload stream (split,
//! §4.5). The decoder hands them out through a bounded reader and skips what the caller does not read, so file
//! sizes never reach an allocation. A stream that ends inside a file is a truncation naming the offset.

use std::io::Read;

use super::error::{PxarError, StreamKind};
use super::payload::PayloadStream;
use super::reader::PosReader;

/// Bytes of the current file still to come, and from which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileCursor {
    pub(crate) stream: StreamKind,
    pub(crate) left: u64,
}

impl FileCursor {
    fn reader<'r, M: Read, P: Read>(
        &self,
        meta: &'r mut PosReader<M>,
        payload: Option<&'r mut PayloadStream<P>>,
    ) -> Option<&'r mut dyn ReadSome> {
        match self.stream {
            StreamKind::Archive => Some(meta),
            StreamKind::Payload => payload.map(|p| &mut p.r as &mut dyn ReadSome),
        }
    }

    /// Reads up to `buf.len()` of the remaining bytes; `Ok(0)` only when none remain.
    pub(crate) fn read<M: Read, P: Read>(
        &mut self,
        meta: &mut PosReader<M>,
        payload: Option<&mut PayloadStream<P>>,
        buf: &mut [u8],
    ) -> Result<usize, PxarError> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let stream = self.stream;
        let left = self.left;
        let Some(r) = self.reader(meta, payload) else {
            return Ok(0);
        };
        let n = r.read_some_bytes(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(PxarError::Truncated {
                stream,
                offset: r.position(),
                expected: format!("{left} more bytes of file contents"),
            });
        }
        self.left -= n as u64;
        Ok(n)
    }

    /// Skips the remaining bytes.
    pub(crate) fn skip<M: Read, P: Read>(
        &mut self,
        meta: &mut PosReader<M>,
        payload: Option<&mut PayloadStream<P>>,
    ) -> Result<(), PxarError> {
        let left = self.left;
        if let Some(r) = self.reader(meta, payload) {
            r.skip_bytes(left)?;
        }
        self.left = 0;
        Ok(())
    }
}

/// The part of [`PosReader`] a cursor needs, object-safe so one cursor serves both stream types.
pub(crate) trait ReadSome {
    fn read_some_bytes(&mut self, buf: &mut [u8]) -> Result<usize, PxarError>;
    fn skip_bytes(&mut self, n: u64) -> Result<(), PxarError>;
    fn position(&self) -> u64;
}

impl<R: Read> ReadSome for PosReader<R> {
    fn read_some_bytes(&mut self, buf: &mut [u8]) -> Result<usize, PxarError> {
        self.read_some(buf)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), PxarError> {
        self.skip(n, "the rest of the file contents")
    }

    fn position(&self) -> u64 {
        self.pos()
    }
}
