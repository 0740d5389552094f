//! Session handling and retries for the prefetcher: one current session shared by all fetch tasks,
//! replaced (once, however many requests saw it fail) after a transient failure, with backoff and two
//! bounds — attempts per chunk and reconnects per prefetcher, refunded as good chunks arrive (see
//! `prefetch.rs` for the contract). A permanent failure is recorded once and ends every other fetch.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::PbsError;
use super::prefetch::{PrefetchOptions, PrefetchStats};
use super::sessions::{BoxFuture, ChunkSession, SessionFactory};
use crate::pbs::chunks::ChunkFault;

/// A chunk failure that can be handed to several waiters.
#[derive(Debug, Clone)]
pub(super) struct Fault {
    bad: bool,
    kind: io::ErrorKind,
    message: String,
}

impl Fault {
    fn unreadable(kind: io::ErrorKind, message: String) -> Self {
        Fault {
            bad: false,
            kind,
            message,
        }
    }

    pub(super) fn to_chunk_fault(&self) -> ChunkFault {
        if self.bad {
            ChunkFault::Bad(self.message.clone())
        } else {
            ChunkFault::Unreadable(io::Error::new(self.kind, self.message.clone()))
        }
    }
}

fn io_kind(e: &PbsError) -> io::ErrorKind {
    match e {
        PbsError::Timeout { .. } => io::ErrorKind::TimedOut,
        PbsError::Connect { .. } => io::ErrorKind::ConnectionAborted,
        PbsError::Unauthorized { .. }
        | PbsError::Forbidden { .. }
        | PbsError::ChunkNotAllowed { .. } => io::ErrorKind::PermissionDenied,
        PbsError::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    }
}

/// A permanent failure of one chunk request: the server could not read the chunk (400/404, §2.3) or it is
/// oversized → the backup is bad; anything else → lifeboat could not read.
fn classify(e: &PbsError, digest: &[u8; 32]) -> Fault {
    match e {
        PbsError::Server {
            status: 400..=499, ..
        }
        | PbsError::NotFound { .. } => Fault {
            bad: true,
            kind: io::ErrorKind::InvalidData,
            message: format!(
                "the server could not read chunk {}: {e}",
                hex::encode(digest)
            ),
        },
        PbsError::TooLarge { .. } => Fault {
            bad: true,
            kind: io::ErrorKind::InvalidData,
            message: format!("chunk {} is oversized: {e}", hex::encode(digest)),
        },
        _ => Fault::unreadable(io_kind(e), e.to_string()),
    }
}

struct SessionSlot<S> {
    current: Option<(u64, S)>,
    next_generation: u64,
    opened: bool,
    last_error: Option<String>,
}

#[derive(Default)]
struct Budget {
    used: u32,
    since_charge: u64,
    failures_in_row: u32,
}

#[derive(Default)]
struct Counters {
    fetched: AtomicU64,
    bytes: AtomicU64,
    reconnects: AtomicU64,
    retries: AtomicU64,
    refetched: AtomicU64,
}

/// Session handling and retries, shared by the fetch tasks.
pub(super) struct Shared<F: SessionFactory> {
    factory: F,
    opts: PrefetchOptions,
    session: tokio::sync::Mutex<SessionSlot<F::Session>>,
    budget: Mutex<Budget>,
    stats: Counters,
    fatal: Mutex<Option<Fault>>,
}

impl<F: SessionFactory> Shared<F> {
    /// Retry state for sessions from `factory`, starting with `initial` if given.
    pub(super) fn new(factory: F, opts: PrefetchOptions, initial: Option<F::Session>) -> Self {
        let opened = initial.is_some();
        Shared {
            factory,
            opts,
            session: tokio::sync::Mutex::new(SessionSlot {
                current: initial.map(|s| (0, s)),
                next_generation: 1,
                opened,
                last_error: None,
            }),
            budget: Mutex::new(Budget::default()),
            stats: Counters::default(),
            fatal: Mutex::new(None),
        }
    }

    fn fail(&self, fault: Fault) -> Fault {
        if let Ok(mut slot) = self.fatal.lock()
            && slot.is_none()
        {
            *slot = Some(fault.clone());
        }
        fault
    }

    fn fatal_fault(&self) -> Option<Fault> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    fn backoff(&self, failures_in_row: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures_in_row.min(16))
            .unwrap_or(u32::MAX);
        self.opts
            .backoff_initial
            .saturating_mul(factor)
            .min(self.opts.backoff_max)
    }

    /// The current session, opening one (with backoff and budget when it is a reconnect) if needed.
    async fn session(&self) -> Result<(u64, F::Session), Fault> {
        let mut slot = self.session.lock().await;
        loop {
            if let Some((generation, s)) = &slot.current {
                return Ok((*generation, s.clone()));
            }
            if let Some(f) = self.fatal_fault() {
                return Err(f);
            }
            if slot.opened {
                let delay = match self.budget.lock() {
                    Ok(mut b) if b.used < self.opts.max_reconnects => {
                        b.used += 1;
                        b.since_charge = 0;
                        let d = self.backoff(b.failures_in_row);
                        b.failures_in_row = b.failures_in_row.saturating_add(1);
                        Some(d)
                    }
                    _ => None,
                };
                let Some(delay) = delay else {
                    let last = slot.last_error.as_deref().unwrap_or("no error recorded");
                    return Err(self.fail(Fault::unreadable(
                        io::ErrorKind::ConnectionAborted,
                        format!(
                            "gave up after {} reconnects to the PBS server; last error: {last}",
                            self.opts.max_reconnects
                        ),
                    )));
                };
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
            slot.opened = true;
            match self.factory.open().await {
                Ok(s) => {
                    let generation = slot.next_generation;
                    slot.next_generation += 1;
                    slot.current = Some((generation, s));
                }
                Err(e) if e.is_transient() => slot.last_error = Some(e.to_string()),
                Err(e) => {
                    return Err(self.fail(Fault::unreadable(
                        io_kind(&e),
                        format!("cannot open a PBS reader session: {e}"),
                    )));
                }
            }
        }
    }

    /// Forgets session `generation` after `error` (later generations are kept).
    async fn invalidate(&self, generation: u64, error: &PbsError) {
        let mut slot = self.session.lock().await;
        if matches!(slot.current, Some((g, _)) if g == generation) {
            slot.current = None;
        }
        slot.last_error = Some(error.to_string());
    }

    fn succeeded(&self, bytes: usize) {
        self.stats.fetched.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Ok(mut b) = self.budget.lock() {
            b.failures_in_row = 0;
            b.since_charge += 1;
            if b.used > 0 && b.since_charge >= self.opts.refill_after_chunks {
                b.used -= 1;
                b.since_charge = 0;
            }
        }
    }

    async fn fetch(&self, digest: [u8; 32]) -> Result<Vec<u8>, Fault> {
        let mut failures = 0u32;
        loop {
            if let Some(f) = self.fatal_fault() {
                return Err(f);
            }
            let (generation, session) = self.session().await?;
            match session.fetch_chunk(digest).await {
                Ok(data) => {
                    self.succeeded(data.len());
                    return Ok(data);
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    if failures >= self.opts.attempts_per_chunk {
                        return Err(self.fail(Fault::unreadable(
                            io_kind(&e),
                            format!(
                                "chunk {}: gave up after {failures} attempts: {e}",
                                hex::encode(digest)
                            ),
                        )));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.invalidate(generation, &e).await;
                }
                Err(e) => {
                    let fault = classify(&e, &digest);
                    return Err(if fault.bad { fault } else { self.fail(fault) });
                }
            }
        }
    }
}

/// The object-safe face of [`Shared`], so the prefetcher is not generic.
pub(super) trait Fetch: Send + Sync {
    fn fetch_owned(self: Arc<Self>, digest: [u8; 32])
    -> BoxFuture<'static, Result<Vec<u8>, Fault>>;
    fn stats(&self) -> PrefetchStats;
    fn fatal(&self) -> Option<Fault>;
    fn count_refetch(&self);
}

impl<F: SessionFactory> Fetch for Shared<F> {
    fn fetch_owned(
        self: Arc<Self>,
        digest: [u8; 32],
    ) -> BoxFuture<'static, Result<Vec<u8>, Fault>> {
        Box::pin(async move { self.fetch(digest).await })
    }

    fn stats(&self) -> PrefetchStats {
        let s = &self.stats;
        PrefetchStats {
            chunks_fetched: s.fetched.load(Ordering::Relaxed),
            bytes_fetched: s.bytes.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            refetched: s.refetched.load(Ordering::Relaxed),
        }
    }

    fn fatal(&self) -> Option<Fault> {
        self.fatal_fault()
    }

    fn count_refetch(&self) {
        self.stats.refetched.fetch_add(1, Ordering::Relaxed);
    }
}
