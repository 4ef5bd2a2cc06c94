//! Fixed pools of threads for CPU and disk work (client storage requests, onion layers).
//!
//! Under load, tokio's blocking pool would start a thread per waiting job, all contending for
//! the same locks and the 2 cores; a few threads fed by a bounded queue do the same work with
//! far fewer wake-ups and switches, and a full queue is an answer (503), not a growing backlog.
//!
//! The queue is a mutex and a condition variable: an idle worker sleeps at once. A channel
//! that spins and yields before it sleeps (crossbeam's) cost about 2 % of the machine on a
//! 20-node devnet under `devnet bench onion`, where 80 such threads went idle after every job.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// JSON at most this long is parsed where it is (microseconds); longer, on a blocking thread.
pub const INLINE_JSON: usize = 4096;

/// Parses the JSON in `bytes[from..]` (a peer's answer, after its status) without holding an
/// async thread for it when it is long (a peer may answer up to 16 MiB).
pub async fn parse_json(bytes: Vec<u8>, from: usize) -> Result<serde_json::Value, String> {
    let inline = bytes.len() <= INLINE_JSON;
    let parse = move || -> Result<serde_json::Value, String> {
        serde_json::from_slice(bytes.get(from..).unwrap_or_default()).map_err(|e| e.to_string())
    };
    if inline {
        return parse();
    }
    tokio::task::spawn_blocking(parse)
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads fed by a bounded queue. Dropping it lets the threads finish the
/// jobs already queued and end.
pub struct Workers {
    queue: Arc<Queue>,
}

struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    cap: usize,
}

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers asleep on `ready`: a job queued while none is needs no wake-up (the system
    /// call is what a busy pool would otherwise pay on every job).
    idle: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job; `None` once the pool is dropped and the queue is empty.
    fn next(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                return Some(job);
            }
            if st.closed {
                return None;
            }
            st.idle += 1;
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }
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
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
                idle: 0,
            }),
            ready: Condvar::new(),
            cap: queue,
        });
        for i in 0..n {
            let q = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Some(job) = q.next() {
                        // A job that panics loses its request, not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Workers { queue })
    }

    /// Runs `f` on a worker and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wake = {
            let mut st = self.queue.lock();
            if st.jobs.len() >= self.queue.cap {
                return Err(Refused::Busy);
            }
            st.jobs.push_back(Box::new(move || {
                let _ = tx.send(f());
            }));
            // With none asleep, every worker looks at the queue (under the lock) before it
            // sleeps, so the job is taken without a wake-up. (A worker notified but not yet
            // awake still counts as asleep: at worst one wake-up too many, never one too few.)
            st.idle > 0
        };
        if wake {
            self.queue.ready.notify_one();
        }
        rx.await.map_err(|_| Refused::Died)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn jobs_run_a_full_queue_is_busy_and_a_panic_is_died() {
        let pool = Workers::start("test", 2, 4).expect("threads");
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        assert_eq!(
            pool.run(|| -> u8 { panic!("a bad job") }).await,
            Err(Refused::Died)
        );
        // The workers survive a panic.
        assert_eq!(pool.run(|| 1).await, Ok(1));

        // Both threads held by jobs that wait for a gate and the queue full: one more is
        // refused at once.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(pool);
        let mut held = Vec::new();
        // Two jobs that hold both threads, then four that fill the queue (in that order: a
        // job queued before the threads took the first two would find the queue full).
        for (jobs, running, queued) in [(2, 2, 0), (4, 2, 4)] {
            for _ in 0..jobs {
                let (gate, started, pool) = (gate.clone(), started.clone(), pool.clone());
                held.push(tokio::spawn(async move {
                    pool.run(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        let (open, cv) = &*gate;
                        let mut g = open.lock().expect("gate");
                        while !*g {
                            g = cv.wait(g).expect("gate");
                        }
                    })
                    .await
                }));
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while started.load(Ordering::SeqCst) < running || pool.queue.lock().jobs.len() < queued
            {
                assert!(std::time::Instant::now() < deadline, "jobs did not start");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        assert_eq!(pool.run(|| ()).await, Err(Refused::Busy));
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        for h in held {
            assert_eq!(h.await.expect("task"), Ok(()));
        }
        assert_eq!(started.load(Ordering::SeqCst), 6);
    }

    /// Wake-ups are skipped while no worker sleeps: a lost one would leave a job queued with
    /// every worker asleep, and this would time out. Jobs come from many tasks on several
    /// threads, short enough that workers keep falling asleep and being woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_job_waits_for_a_wake_up_that_never_comes() {
        let pool = Arc::new(Workers::start("test-wake", 2, 10_000).expect("threads"));
        let done = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (pool, done) = (pool.clone(), done.clone());
                tokio::spawn(async move {
                    for i in 0..200u32 {
                        let d = done.clone();
                        let r = pool.run(move || d.fetch_add(1, Ordering::SeqCst)).await;
                        assert!(r.is_ok());
                        if i % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        let finished = tokio::time::timeout(std::time::Duration::from_secs(60), all).await;
        let finished = finished.expect("every job answered within the limit");
        assert!(finished.iter().all(|t| t.is_ok()));
        assert_eq!(done.load(Ordering::SeqCst), 64 * 200);
    }

    #[test]
    fn dropping_the_pool_ends_its_threads_after_the_queued_jobs() {
        let done = Arc::new(AtomicUsize::new(0));
        let pool = Workers::start("test-drop", 1, 16).expect("threads");
        let queue = pool.queue.clone();
        for _ in 0..5 {
            let done = done.clone();
            queue.lock().jobs.push_back(Box::new(move || {
                done.fetch_add(1, Ordering::SeqCst);
            }));
            queue.ready.notify_one();
        }
        drop(pool);
        // The thread holds the last other reference; it lets go when it ends.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&queue) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker did not end"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }
}
