//! Fixed pools of threads for CPU and disk work (client storage requests, onion layers).
//!
//! Under load, tokio's blocking pool would start a thread per waiting job, all contending for
//! the same locks and the 2 cores; a few threads fed by a bounded queue do the same work with
//! far fewer wake-ups and switches, and a full queue is an answer (503), not a growing backlog.
//!
//! The queue is a mutex and a condition variable: an idle worker sleeps at once. A channel
//! that spins and yields before it sleeps (crossbeam's) cost about 2 % of the machine on a
//! 20-node devnet under `devnet bench onion`, where 80 such threads went idle after every job.
//!
//! Jobs are queued per client ([`Workers::run_for`]), and the next job is the oldest of the
//! client that has used the workers least lately (the time its jobs took, halved every
//! [`HALF_LIFE`]): a fresh client's request runs as soon as a worker is free, however many
//! heavy requests others have queued from however many addresses. A client may have at most
//! [`PER_CLIENT`] jobs queued. A job whose caller has stopped waiting for it (a client that
//! reset its connection) is dropped when its turn comes, not run.

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
    /// Jobs one client may have waiting.
    per_client: usize,
}

/// Jobs a client may have waiting.
pub const PER_CLIENT: usize = 64;
/// How fast a client's use of the workers is forgotten: halved this often.
pub const HALF_LIFE: std::time::Duration = std::time::Duration::from_secs(5);
/// Clients whose use is remembered (those using the most are kept when there are more).
const REMEMBERED: usize = 65_536;

struct State {
    /// Each client's jobs waiting, oldest first, and when it began to wait (a count).
    queues: std::collections::HashMap<u64, (u64, VecDeque<Job>)>,
    /// Each client's recent use of the workers, in microseconds.
    used: std::collections::HashMap<u64, u64>,
    /// When `used` was last halved.
    halved: std::time::Instant,
    /// Counts the queues as they begin, to serve equal uses oldest first.
    arrivals: u64,
    /// Jobs waiting in all.
    jobs: usize,
    closed: bool,
    /// Workers asleep on `ready`: a job queued while none is needs no wake-up (the system
    /// call is what a busy pool would otherwise pay on every job).
    idle: usize,
}

impl State {
    /// The oldest job of the waiting client that used the workers least lately, and whose.
    fn take(&mut self) -> Option<(u64, Job)> {
        let now = std::time::Instant::now();
        while now.duration_since(self.halved) >= HALF_LIFE {
            self.halved += HALF_LIFE;
            self.used.retain(|_, u| {
                *u /= 2;
                *u > 0
            });
        }
        let used = &self.used;
        let client = self
            .queues
            .iter()
            .min_by_key(|(c, (since, _))| (used.get(c).copied().unwrap_or(0), *since))
            .map(|(c, _)| *c)?;
        let (_, queue) = self.queues.get_mut(&client)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&client);
        }
        self.jobs -= usize::from(job.is_some());
        job.map(|j| (client, j))
    }

    /// Counts a job's time against its client.
    fn charge(&mut self, client: u64, took: std::time::Duration) {
        if self.used.len() >= REMEMBERED && !self.used.contains_key(&client) {
            // The lightest half are forgotten (they would be served first anyway).
            let mut uses: Vec<u64> = self.used.values().copied().collect();
            let mid = uses.len() / 2;
            let cut = *uses.select_nth_unstable(mid).1;
            self.used.retain(|_, u| *u > cut);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let u = self.used.entry(client).or_default();
        *u = u.saturating_add(us.max(1));
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job and whose; `None` once the pool is dropped and the queue is empty.
    fn next(&self) -> Option<(u64, Job)> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.take() {
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
    /// Starts `n` threads named `name-i` with a queue of `queue` jobs, at most [`PER_CLIENT`]
    /// of one client.
    pub fn start(name: &str, n: usize, queue: usize) -> std::io::Result<Workers> {
        Workers::start_with(name, n, queue, PER_CLIENT)
    }

    /// [`Workers::start`], a client having at most `per_client` jobs waiting.
    pub fn start_with(
        name: &str,
        n: usize,
        queue: usize,
        per_client: usize,
    ) -> std::io::Result<Workers> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                queues: Default::default(),
                used: Default::default(),
                halved: std::time::Instant::now(),
                arrivals: 0,
                jobs: 0,
                closed: false,
                idle: 0,
            }),
            ready: Condvar::new(),
            cap: queue,
            per_client,
        });
        for i in 0..n {
            let q = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    OFF_EXECUTOR.with(|c| c.set(true));
                    while let Some((client, job)) = q.next() {
                        let began = std::time::Instant::now();
                        // A job that panics loses its request, not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        q.lock().charge(client, began.elapsed());
                    }
                })?;
        }
        Ok(Workers { queue })
    }

    /// Runs `f` on a worker and waits for its result (a job of no client in particular).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        self.run_for(0, f).await
    }

    /// Runs `f` for `client` on a worker (clients are served in turn) and waits for its
    /// result.
    pub async fn run_for<T: Send + 'static>(
        &self,
        client: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        match self.run_or_give_back(client, f).await {
            Ok(r) => r,
            Err(_) => Err(Refused::Busy),
        }
    }

    /// [`Workers::run_for`], giving `f` back when the queue is full (for work that must be
    /// done all the same: the answer to a write already made).
    pub async fn run_or_give_back<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(
        &self,
        client: u64,
        f: F,
    ) -> Result<Result<T, Refused>, F> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wake = {
            let mut st = self.queue.lock();
            if st.jobs >= self.queue.cap
                || st
                    .queues
                    .get(&client)
                    .is_some_and(|(_, q)| q.len() >= self.queue.per_client)
            {
                return Err(f);
            }
            st.arrivals += 1;
            let since = st.arrivals;
            st.queues
                .entry(client)
                .or_insert_with(|| (since, VecDeque::new()))
                .1
                .push_back(Box::new(move || {
                    // Whoever asked is gone (a client that reset its connection, a request
                    // past its deadline): its job is not done for nobody.
                    if !tx.is_closed() {
                        let _ = tx.send(f());
                    }
                }));
            st.jobs += 1;
            // With none asleep, every worker looks at the queue (under the lock) before it
            // sleeps, so the job is taken without a wake-up. (A worker notified but not yet
            // awake still counts as asleep: at worst one wake-up too many, never one too few.)
            st.idle > 0
        };
        if wake {
            self.queue.ready.notify_one();
        }
        Ok(rx.await.map_err(|_| Refused::Died))
    }
}

thread_local! {
    /// Set on the threads of a pool and in [`off_executor`]'s work.
    static OFF_EXECUTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is a worker's or runs [`off_executor`]'s work (not an async one).
pub fn is_off_executor() -> bool {
    OFF_EXECUTOR.with(std::cell::Cell::get)
}

/// Runs `f` on tokio's blocking pool, marked as off the executor (see [`is_off_executor`]).
pub async fn off_executor<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refused> {
    /// Unmarks the blocking thread when the work ends, however it ends.
    struct Mark;
    impl Drop for Mark {
        fn drop(&mut self) {
            OFF_EXECUTOR.with(|c| c.set(false));
        }
    }
    tokio::task::spawn_blocking(move || {
        OFF_EXECUTOR.with(|c| c.set(true));
        let _mark = Mark;
        f()
    })
    .await
    .map_err(|_| Refused::Died)
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
            while started.load(Ordering::SeqCst) < running || pool.queue.lock().jobs < queued {
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

    /// The client that used the workers least goes first: behind a client's queued jobs,
    /// another client's one job is the second to run, not the last; and one client may queue
    /// at most `PER_CLIENT`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_take_turns() {
        let pool = Arc::new(Workers::start("test-turns", 1, 4096).expect("threads"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        // The one thread held until every job is queued.
        let held = {
            let (pool, gate) = (pool.clone(), gate.clone());
            tokio::spawn(async move {
                pool.run_for(9, move || {
                    let (open, cv) = &*gate;
                    let mut g = open.lock().expect("gate");
                    while !*g {
                        g = cv.wait(g).expect("gate");
                    }
                })
                .await
            })
        };
        let queued = |n: usize| {
            let pool = pool.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while pool.queue.lock().jobs < n {
                    assert!(std::time::Instant::now() < deadline, "jobs not queued");
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        };
        queued(0).await;
        let mut tasks = Vec::new();
        for (client, jobs) in [(1u64, PER_CLIENT), (2, 1)] {
            for i in 0..jobs {
                let (pool, order) = (pool.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    pool.run_for(client, move || {
                        order.lock().expect("order").push((client, i))
                    })
                    .await
                }));
            }
            queued(if client == 1 {
                PER_CLIENT
            } else {
                PER_CLIENT + 1
            })
            .await;
        }
        assert_eq!(
            pool.run_for(1, || ()).await,
            Err(Refused::Busy),
            "client 1 is full"
        );
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        let _ = held.await;
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        let order = order.lock().expect("order").clone();
        assert_eq!(order.len(), PER_CLIENT + 1);
        let at = order
            .iter()
            .position(|(c, _)| *c == 2)
            .expect("client 2 ran");
        assert!(at <= 1, "client 2 ran after {at} jobs of client 1");
    }

    /// Occupies the pool's one worker until the returned sender is used (or dropped); the
    /// join handle gives `Ok(true)` once released.
    async fn busy_worker(
        pool: &Arc<Workers>,
    ) -> (
        tokio::task::JoinHandle<Result<bool, Refused>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let pool = pool.clone();
        let busy = tokio::spawn(async move {
            pool.run(move || {
                let _ = started.send(());
                hold.recv().is_ok()
            })
            .await
        });
        running.await.expect("the busy job started");
        (busy, release)
    }

    /// A job refused for a full queue can be given back, to be done elsewhere; the pool's
    /// threads say they are off the executor, async ones do not.
    #[tokio::test]
    async fn a_refused_job_is_given_back() {
        let pool = Arc::new(Workers::start_with("test-back", 1, 1, 1).expect("threads"));
        assert!(!is_off_executor());
        assert_eq!(pool.run(is_off_executor).await, Ok(true));
        let (busy, release) = busy_worker(&pool).await;
        // One job may wait...
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 1).await })
        };
        while pool.queue.lock().jobs == 0 {
            tokio::task::yield_now().await;
        }
        // ...the next is refused and comes back.
        let back = match pool.run_or_give_back(0, || 2).await {
            Err(f) => f,
            Ok(_) => panic!("the queue was full"),
        };
        release.send(()).expect("release");
        assert_eq!(busy.await.expect("join"), Ok(true));
        assert_eq!(waiting.await.expect("join"), Ok(1));
        assert_eq!(off_executor(back).await, Ok(2));
        assert_eq!(off_executor(is_off_executor).await, Ok(true));
    }

    /// A job whose caller stopped waiting before a worker took it does not run.
    #[tokio::test]
    async fn a_job_nobody_waits_for_is_not_run() {
        let pool = Arc::new(Workers::start("test-gone", 1, 16).expect("threads"));
        let ran = Arc::new(AtomicUsize::new(0));
        let (busy, release) = busy_worker(&pool).await;
        // Queued behind the busy worker, then given up on.
        let r = ran.clone();
        let waiting = pool.run(move || r.fetch_add(1, Ordering::SeqCst));
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), waiting).await;
        assert!(gave_up.is_err());
        // One that is waited for still runs after it.
        release.send(()).expect("release");
        assert_eq!(busy.await.expect("join"), Ok(true));
        let r = ran.clone();
        assert_eq!(
            pool.run(move || r.fetch_add(10, Ordering::SeqCst)).await,
            Ok(0)
        );
        assert_eq!(ran.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn dropping_the_pool_ends_its_threads_after_the_queued_jobs() {
        let done = Arc::new(AtomicUsize::new(0));
        let pool = Workers::start("test-drop", 1, 16).expect("threads");
        let queue = pool.queue.clone();
        for _ in 0..5 {
            let done = done.clone();
            let mut st = queue.lock();
            st.queues
                .entry(0)
                .or_insert_with(|| (0, VecDeque::new()))
                .1
                .push_back(Box::new(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                }));
            st.jobs += 1;
            drop(st);
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
