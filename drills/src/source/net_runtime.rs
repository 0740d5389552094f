//! The small tokio runtime a network source (PBS, S3) owns. The drill engine is synchronous and may call a
//! source from any thread (a CLI thread or the agent's blocking pool), so a source hands futures to its own
//! runtime and waits on a plain channel rather than blocking inside someone else's runtime.

use std::future::Future;
use std::sync::OnceLock;

/// A runtime started on first use.
pub struct NetRuntime {
    name: &'static str,
    rt: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl NetRuntime {
    /// A runtime whose worker threads are called `name`; nothing starts until the first call.
    pub const fn new(name: &'static str) -> Self {
        NetRuntime {
            name,
            rt: OnceLock::new(),
        }
    }

    /// The runtime (started now if needed).
    pub fn get(&self) -> Result<&tokio::runtime::Runtime, String> {
        self.rt
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name(self.name)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the network runtime: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs `fut` on the runtime and waits for it on this thread.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        let rt = self.get()?;
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| "the network runtime stopped".to_string())
    }
}
