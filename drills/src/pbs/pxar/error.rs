//! Decoder errors.
//!
//! Every error names the stream and the byte offset where the decoder stopped and what it expected there, so a
//! `failed` drill tells the operator exactly where a backup is damaged. Unsafe names (path traversal) are a
//! separate variant because the restore layer reports them as [`crate::extract::RestoreError::Unsafe`], and
//! read failures of the underlying stream keep their `io::Error` so the caller can tell a failing source
//! (`error`) from a damaged archive (`failed`).

use std::fmt;
use std::io;

/// Which of the two input streams an offset refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The archive (`.pxar`) or the metadata archive (`.mpxar`) of a split archive.
    Archive,
    /// The payload stream (`.ppxar`) of a split archive.
    Payload,
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamKind::Archive => "archive stream",
            StreamKind::Payload => "payload stream",
        })
    }
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum PxarError {
    /// Reading the underlying stream failed (a source problem, or a decompressor below reporting damage).
    #[error("reading the {stream} failed at byte {offset}: {source}")]
    Io {
        /// Which stream.
        stream: StreamKind,
        /// Position of the failed read.
        offset: u64,
        /// The error of the reader.
        #[source]
        source: io::Error,
    },
    /// The stream ended too early.
    #[error("the {stream} ends at byte {offset}, expected {expected}")]
    Truncated {
        /// Which stream.
        stream: StreamKind,
        /// Where it ended.
        offset: u64,
        /// What should have followed.
        expected: String,
    },
    /// The bytes do not follow the format.
    #[error("byte {offset} of the {stream}: expected {expected}, found {found}")]
    Invalid {
        /// Which stream.
        stream: StreamKind,
        /// Position of the offending item (its header, or the field).
        offset: u64,
        /// What the format requires there.
        expected: String,
        /// What the archive holds instead.
        found: String,
    },
    /// A name or link target would leave the restore folder (`..`, `/`, ...).
    #[error("entry {path:?} at byte {offset} of the {stream} is unsafe: {reason}")]
    Unsafe {
        /// Which stream.
        stream: StreamKind,
        /// Position of the FILENAME or HARDLINK item.
        offset: u64,
        /// The offending path as stored (lossy UTF-8).
        path: String,
        /// What it tried.
        reason: String,
    },
    /// `next` was called again after an error; the decoder cannot resynchronise.
    #[error("the decoder already failed at an earlier error; it cannot continue")]
    AlreadyFailed,
}

impl PxarError {
    /// The stream and byte offset the error refers to (`None` for [`PxarError::AlreadyFailed`]).
    pub fn location(&self) -> Option<(StreamKind, u64)> {
        match self {
            PxarError::Io { stream, offset, .. }
            | PxarError::Truncated { stream, offset, .. }
            | PxarError::Invalid { stream, offset, .. }
            | PxarError::Unsafe { stream, offset, .. } => Some((*stream, *offset)),
            PxarError::AlreadyFailed => None,
        }
    }

    /// What was wrong, without the location (for messages that print the location separately).
    pub fn detail(&self) -> String {
        match self {
            PxarError::Io { source, .. } => format!("read failed: {source}"),
            PxarError::Truncated { expected, .. } => {
                format!("the stream ends here, expected {expected} (truncated)")
            }
            PxarError::Invalid {
                expected, found, ..
            } => format!("expected {expected}, found {found}"),
            PxarError::Unsafe { path, reason, .. } => format!("{path:?}: {reason}"),
            PxarError::AlreadyFailed => self.to_string(),
        }
    }

    /// Wraps the error for a `Read` implementation; [`PxarError::from_io`] gets it back.
    pub fn into_io(self) -> io::Error {
        let kind = match self {
            PxarError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            PxarError::Io { ref source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }

    /// Unwraps an error made by [`PxarError::into_io`]; other I/O errors are returned unchanged.
    pub fn from_io(e: io::Error) -> Result<PxarError, io::Error> {
        if e.get_ref().is_some_and(|inner| inner.is::<PxarError>()) {
            match e.into_inner().map(|b| b.downcast::<PxarError>()) {
                Some(Ok(p)) => Ok(*p),
                // unreachable in practice: `is` was checked; keep a plain error rather than panic
                Some(Err(other)) => Err(io::Error::other(other)),
                None => Err(io::Error::other("empty I/O error")),
            }
        } else {
            Err(e)
        }
    }
}

/// Shorthand for an [`PxarError::Invalid`] in the archive stream.
pub(crate) fn invalid(
    offset: u64,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> PxarError {
    PxarError::Invalid {
        stream: StreamKind::Archive,
        offset,
        expected: expected.into(),
        found: found.into(),
    }
}

/// Shorthand for an [`PxarError::Invalid`] in the payload stream.
pub(crate) fn invalid_payload(
    offset: u64,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> PxarError {
    PxarError::Invalid {
        stream: StreamKind::Payload,
        offset,
        expected: expected.into(),
        found: found.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_the_error() {
        let e = PxarError::Truncated {
            stream: StreamKind::Payload,
            offset: 42,
            expected: "file contents".into(),
        };
        let io = e.into_io();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        let back = PxarError::from_io(io).unwrap();
        assert_eq!(back.location(), Some((StreamKind::Payload, 42)));
        let plain = io::Error::other("disk on fire");
        assert!(PxarError::from_io(plain).is_err());
    }
}
