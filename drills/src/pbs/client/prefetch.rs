//! Chunk prefetching over the reader protocol: the bridge from the async PBS client to the synchronous drill
//! engine, which reads an archive chunk by chunk in index order.
//!
//! Why: one chunk at a time over a WAN is latency-bound (a 4 MiB VM chunk per round trip); PBS multiplexes
//! requests on one HTTP/2 connection (pbs-protocol.md §2.2), so lifeboat keeps several chunk requests in
//! flight ahead of the reader while memory stays bounded.
//!
//! What it guarantees:
//! - **Order**: [`ChunkPrefetcher::next_raw`] returns the raw blob of the chunk asked for; chunks are fetched
//!   in order of first use, at most `in_flight` fetched-but-not-yet-consumed at a time (memory ≤
//!   `in_flight` × the largest chunk, plus the reuse cache).
//! - **Each distinct digest is fetched once** (§2.3 "dedupe!"): use counts are computed up front; the data
//!   of a digest that is needed again is kept until its last use (VM images reference the zero chunk over
//!   and over). Only if the kept data would exceed `reuse_budget` is it dropped and fetched again later
//!   (counted in [`PrefetchStats::refetched`]).
//! - **Retries**: transient failures ([`is_transient`](super::PbsError::is_transient): connection lost,
//!   timeouts, 5xx) drop the session, wait (exponential backoff) and open a new one through the
//!   [`SessionFactory`], which must make the chunks downloadable again (re-download the index, §2.3;
//!   [`SnapshotSessions`](super::SnapshotSessions) does). Bounded twice: `attempts_per_chunk` per chunk
//!   and `max_reconnects` per prefetcher (one reconnect is refunded after every `refill_after_chunks`
//!   good chunks, so a long restore survives occasional blips but a server that keeps failing does not
//!   get retried forever). When a bound is hit the chunk fails as
//!   [`ChunkFault::Unreadable`]: the run is an `error` (lifeboat could not read), not `failed`.
//! - **Bad backups stay bad**: a chunk the server cannot read (HTTP 400/404, §2.3) or an oversized one is
//!   [`ChunkFault::Bad`]; verification of the bytes is the caller's job.
//!
//! # Threading contract
//! - [`ChunkPrefetcher::start`] spawns a worker task on the given runtime `Handle`; it may be called from
//!   any thread. The runtime must be multi-threaded (or otherwise driven by another thread) and outlive
//!   the prefetcher; if it shuts down, the next call fails as `Unreadable`.
//! - [`ChunkPrefetcher::next_raw`] blocks the calling thread until the chunk is there. Call it from a plain
//!   thread or a `spawn_blocking` thread, never from an async task on a runtime worker thread (that would
//!   stall the runtime that does the fetching). Misuse blocks; it does not panic.
//! - The prefetcher is `Send`, not shared: one consumer, calls in index order (out-of-order calls work but
//!   may fetch a chunk twice). Dropping it cancels all outstanding fetches and closes the session.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use super::retry::{Fault, Fetch, Shared};
use super::sessions::SessionFactory;
use crate::pbs::chunks::{ChunkFault, ChunkRef};
use crate::source::pbs_restore::RawChunks;

/// Limits of a [`ChunkPrefetcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchOptions {
    /// Chunks fetched ahead and not yet consumed (≥ 1).
    pub in_flight: usize,
    /// Tries per chunk before it is `Unreadable` (≥ 1).
    pub attempts_per_chunk: u32,
    /// New sessions after the first before giving up.
    pub max_reconnects: u32,
    /// Good chunks that refund one reconnect.
    pub refill_after_chunks: u64,
    /// Wait before the first reconnect; doubles per failed reconnect in a row.
    pub backoff_initial: Duration,
    /// Longest wait between reconnects.
    pub backoff_max: Duration,
    /// Bytes of reused chunks kept for a later use.
    pub reuse_budget: u64,
}

impl Default for PrefetchOptions {
    fn default() -> Self {
        PrefetchOptions {
            in_flight: 8,
            attempts_per_chunk: 5,
            max_reconnects: 5,
            refill_after_chunks: 64,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            reuse_budget: 256 << 20,
        }
    }
}

/// What a prefetcher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    /// Chunk downloads that succeeded.
    pub chunks_fetched: u64,
    /// Their bytes.
    pub bytes_fetched: u64,
    /// Attempts to open a new session after the first (each charged to `max_reconnects`).
    pub reconnects: u64,
    /// Chunk requests retried after a transient failure.
    pub retries: u64,
    /// Reused chunks fetched again because the reuse budget was full.
    pub refetched: u64,
}

/// A fetched chunk on its way to the consumer; the permit bounds how many exist.
struct Delivery {
    index: usize,
    result: Result<Vec<u8>, Fault>,
    _permit: OwnedSemaphorePermit,
}

/// Fetches distinct digests in order, at most `permits` undelivered-or-unconsumed at a time.
async fn run_worker(
    shared: Arc<dyn Fetch>,
    distinct: Vec<[u8; 32]>,
    tx: mpsc::Sender<Delivery>,
    permits: Arc<Semaphore>,
) {
    let mut tasks = JoinSet::new();
    for (index, digest) in distinct.into_iter().enumerate() {
        if shared.fatal().is_some() {
            break;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        while tasks.try_join_next().is_some() {}
        let shared = shared.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let result = shared.fetch_owned(digest).await;
            // The consumer may be gone; then nobody needs the chunk.
            let _ = tx.send(Delivery {
                index,
                result,
                _permit: permit,
            });
        });
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
}

/// Prefetches the chunks of one archive; see the module documentation for the contract.
pub struct ChunkPrefetcher {
    handle: Handle,
    shared: Arc<dyn Fetch>,
    rx: mpsc::Receiver<Delivery>,
    worker: AbortHandle,
    distinct: Vec<[u8; 32]>,
    index_of: HashMap<[u8; 32], usize>,
    /// Uses left per distinct digest.
    uses: Vec<usize>,
    /// Whether a distinct digest's delivery was already taken from the worker.
    taken: Vec<bool>,
    pending: HashMap<usize, Delivery>,
    cache: HashMap<usize, Vec<u8>>,
    cache_bytes: u64,
    reuse_budget: u64,
}

impl std::fmt::Debug for ChunkPrefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkPrefetcher")
            .field("distinct", &self.distinct.len())
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl ChunkPrefetcher {
    /// Starts fetching `chunks` (an archive's index order) on `handle`, through sessions from `factory`.
    /// `initial` is a session already open with the index downloaded (saves one session); without it the
    /// first session is opened by the factory.
    pub fn start<F: SessionFactory>(
        handle: &Handle,
        factory: F,
        chunks: &[ChunkRef],
        initial: Option<F::Session>,
        options: PrefetchOptions,
    ) -> ChunkPrefetcher {
        let options = PrefetchOptions {
            in_flight: options.in_flight.max(1),
            attempts_per_chunk: options.attempts_per_chunk.max(1),
            ..options
        };
        let mut index_of = HashMap::new();
        let mut distinct = Vec::new();
        let mut uses: Vec<usize> = Vec::new();
        for c in chunks {
            let i = *index_of.entry(c.digest).or_insert_with(|| {
                distinct.push(c.digest);
                uses.push(0);
                distinct.len() - 1
            });
            uses[i] += 1;
        }
        let shared: Arc<Shared<F>> = Arc::new(Shared::new(factory, options, initial));
        let shared: Arc<dyn Fetch> = shared;
        let (tx, rx) = mpsc::channel();
        let permits = Arc::new(Semaphore::new(options.in_flight));
        let worker = handle
            .spawn(run_worker(shared.clone(), distinct.clone(), tx, permits))
            .abort_handle();
        ChunkPrefetcher {
            handle: handle.clone(),
            shared,
            rx,
            worker,
            taken: vec![false; distinct.len()],
            distinct,
            index_of,
            uses,
            pending: HashMap::new(),
            cache: HashMap::new(),
            cache_bytes: 0,
            reuse_budget: options.reuse_budget,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PrefetchStats {
        self.shared.stats()
    }

    /// The raw blob of `chunk` (not verified). Blocks until it is there; see the threading contract.
    ///
    /// # Errors
    /// [`ChunkFault::Bad`] when the server cannot read the chunk, [`ChunkFault::Unreadable`] when lifeboat
    /// cannot reach it within the retry bounds (or `chunk` is not in the list it was started with).
    pub fn next_raw(&mut self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        let Some(&i) = self.index_of.get(&chunk.digest) else {
            return Err(ChunkFault::Unreadable(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "chunk {} is not in the archive's chunk list",
                    hex::encode(chunk.digest)
                ),
            )));
        };
        self.uses[i] = self.uses[i].saturating_sub(1);
        let remaining = self.uses[i];
        if remaining == 0 {
            if let Some(data) = self.cache.remove(&i) {
                self.cache_bytes -= data.len() as u64;
                return Ok(data);
            }
        } else if let Some(data) = self.cache.get(&i) {
            return Ok(data.clone());
        }
        if self.taken[i] {
            return self.refetch(i, remaining);
        }
        loop {
            let delivery = match self.pending.remove(&i) {
                Some(d) => d,
                None => match self.rx.recv() {
                    Ok(d) => d,
                    Err(_) => return Err(self.stopped()),
                },
            };
            match delivery.index {
                j if j == i => return self.accept(i, delivery.result, remaining),
                // Ahead of the reader: keep (its permit keeps the window bounded).
                j if j > i => {
                    self.pending.insert(j, delivery);
                }
                // Behind: the caller skipped it; keep it only if it is used again.
                j => {
                    self.taken[j] = true;
                    if let Ok(data) = delivery.result
                        && self.uses[j] > 0
                    {
                        self.keep(j, data);
                    }
                }
            }
        }
    }

    fn accept(
        &mut self,
        i: usize,
        result: Result<Vec<u8>, Fault>,
        remaining: usize,
    ) -> Result<Vec<u8>, ChunkFault> {
        self.taken[i] = true;
        let data = result.map_err(|f| f.to_chunk_fault())?;
        if remaining > 0 {
            self.keep(i, data.clone());
        }
        Ok(data)
    }

    fn keep(&mut self, i: usize, data: Vec<u8>) {
        let len = data.len() as u64;
        if self.cache_bytes + len <= self.reuse_budget {
            self.cache_bytes += len;
            self.cache.insert(i, data);
        }
    }

    /// Fetches a digest again whose data was not kept (reuse budget full, or an out-of-order caller).
    fn refetch(&mut self, i: usize, remaining: usize) -> Result<Vec<u8>, ChunkFault> {
        self.shared.count_refetch();
        let (tx, rx) = mpsc::channel();
        let fetch = self.shared.clone().fetch_owned(self.distinct[i]);
        self.handle.spawn(async move {
            let _ = tx.send(fetch.await);
        });
        match rx.recv() {
            Ok(result) => self.accept(i, result, remaining),
            Err(_) => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> ChunkFault {
        match self.shared.fatal() {
            Some(f) => f.to_chunk_fault(),
            None => ChunkFault::Unreadable(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the chunk prefetch stopped (the tokio runtime was shut down?)",
            )),
        }
    }
}

impl Drop for ChunkPrefetcher {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

impl RawChunks for ChunkPrefetcher {
    fn raw(&mut self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkFault> {
        self.next_raw(chunk)
    }
}

#[cfg(test)]
#[path = "prefetch_tests.rs"]
mod tests;
