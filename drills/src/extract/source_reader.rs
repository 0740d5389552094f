//! The reader every source byte passes through: counts bytes (for the expansion-ratio bound and progress),
//! optionally hashes them (to verify a sidecar checksum of the archive without reading it twice), and
//! remembers whether an error came from the source itself, so that a failing disk (`error`) is not mistaken
//! for a damaged archive (`failed`).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Counters shared between the source stream, the decoder's error handling and the sink.
#[derive(Debug, Default)]
pub struct SourceState {
    bytes: AtomicU64,
    failed: AtomicBool,
}

impl SourceState {
    /// Bytes read from the source so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the source itself returned a read error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Records bytes read from the source by a reader other than [`SourceReader`] (chunk stores).
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Records that the source itself failed (so the run is an `error`, not `failed`).
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// Wraps the raw source stream.
pub struct SourceReader<R> {
    inner: R,
    state: Arc<SourceState>,
    hasher: Option<Sha256>,
}

impl<R: Read> SourceReader<R> {
    /// Counts into `state`; hashes when `hash` is set.
    pub fn new(inner: R, state: Arc<SourceState>, hash: bool) -> Self {
        SourceReader {
            inner,
            state,
            hasher: hash.then(Sha256::new),
        }
    }

    /// Reads the rest of the stream (hashing it) and returns the SHA-256 of everything read, if hashing.
    pub fn finish(mut self) -> io::Result<Option<[u8; 32]>> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.map(|h| h.finalize().into()))
    }
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.state.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(h) = &mut self.hasher {
                    h.update(&buf[..n]);
                }
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.state.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}
