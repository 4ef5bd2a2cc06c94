//! Fixed pools of threads for CPU and disk work (client storage requests, onion layers).
//!
//! Under load, tokio's blocking pool would start a thread per waiting job, all contending for
//! the same locks and the 2 cores; a few threads fed by a bounded queue do the same work with
//! far fewer wake-ups and switches, and a full queue is an answer (503), not a growing backlog.

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads fed by a bounded queue.
pub struct Workers {
    tx: crossbeam_channel::Sender<Job>,
}

/// Why a job did not run to completion.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full.
    Busy,
    /// The job panicked.
    Died,
}

impl Workers {
    /// Starts `n` threads named `name-i` with a queue of `queue` jobs.
    pub fn start(name: &str, n: usize, queue: usize) -> std::io::Result<Workers> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue);
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in rx {
                        // A job that panics loses its request, not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Workers { tx })
    }

    /// Runs `f` on a worker and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Refused::Busy)?;
        rx.await.map_err(|_| Refused::Died)
    }
}
