//! The password-hashing threads: argon2id is deliberately slow (about
//! 15 ms of CPU per login at Keycloak's cost), so it runs off the async
//! workers, on one dedicated thread per core fed from one queue.
//!
//! Why not `spawn_blocking` behind a semaphore (what this replaced): the
//! permit of a finished hash was released by the async task that awaited
//! it, and the waiter it woke sat in that worker's LIFO slot until the task
//! had also signed its tokens and queued its session write; one core idled
//! for that long after every hash (10 % of a login benchmark's CPU time).
//! Here a thread that finishes a hash takes the next job at once.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// How long a hashing thread keeps its argon2 memory with no work. Under
/// load the next job is always queued, so this only returns the memory
/// of a server that has stopped logging people in.
const KEEP_MEMORY_IDLE: Duration = Duration::from_secs(10);

/// A fixed set of hashing threads. More concurrent argon2 runs than cores
/// only thrash caches, and each holds its memory cost (7 MiB by default),
/// so a login flood queues here instead of allocating.
pub struct HashPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Bumped by `release_memory`: a thread that has seen fewer releases
    /// than this frees its memory when it next waits.
    releases: u64,
    closed: bool,
}

impl HashPool {
    /// Starts `threads` workers; they end when the pool is dropped.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool { shared }
    }

    /// Runs `f` on a hashing thread and waits for its result without
    /// blocking the async worker; None if `f` panicked or no thread runs.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(v) = catch_unwind(AssertUnwindSafe(f)) {
                let _ = tx.send(v);
            }
        });
        self.shared.lock()?.jobs.push_back(job);
        self.shared.wake.notify_one();
        rx.await.ok()
    }

    /// Makes every idle thread give back its argon2 memory now rather than
    /// after `KEEP_MEMORY_IDLE`: called once the server is up, so the
    /// hashes of bootstrap and import do not stay in its idle footprint.
    pub fn release_memory(&self) {
        if let Some(mut q) = self.shared.lock() {
            q.releases += 1;
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        if let Some(mut q) = self.shared.lock() {
            q.closed = true;
        }
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> Option<MutexGuard<'_, Queue>> {
        // A job runs outside the lock, so a poisoned lock means a bug here;
        // the pool then stops rather than hashing on a broken queue.
        self.state.lock().ok()
    }
}

fn work(shared: &Shared) {
    let mut holding = false;
    let mut seen = 0;
    while let Some(step) = next(shared, holding, &mut seen) {
        match step {
            Step::Run(job) => {
                job();
                holding = true;
            }
            Step::Release => {
                gatehouse_core::password::release_memory();
                holding = false;
            }
        }
    }
}

enum Step {
    Run(Job),
    Release,
}

/// Waits for a thread's next step (run outside the lock); None once the
/// pool is dropped. `holding`: the thread has argon2 memory to give back.
fn next(shared: &Shared, holding: bool, seen: &mut u64) -> Option<Step> {
    let mut q = shared.lock()?;
    loop {
        if let Some(job) = q.jobs.pop_front() {
            return Some(Step::Run(job));
        }
        if q.closed {
            return None;
        }
        let asked = q.releases != *seen;
        *seen = q.releases;
        if !holding {
            q = shared.wake.wait(q).ok()?;
            continue;
        }
        if asked {
            return Some(Step::Release);
        }
        let (g, waited) = shared.wake.wait_timeout(q, KEEP_MEMORY_IDLE).ok()?;
        q = g;
        if waited.timed_out() && q.jobs.is_empty() {
            return Some(Step::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_concurrently_and_survives_a_panic() {
        let pool = HashPool::new(2);
        assert_eq!(pool.run(|| 6 * 7).await, Some(42));
        let r: Option<()> = pool.run(|| panic!("boom")).await;
        assert!(r.is_none());
        // Both threads still serve: two jobs that each wait for the other.
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (a, b) = (barrier.clone(), barrier);
        let (x, y) = tokio::join!(
            pool.run(move || a.wait().is_leader()),
            pool.run(move || b.wait().is_leader())
        );
        assert_eq!(x.zip(y).map(|(x, y)| x ^ y), Some(true));
    }

    #[tokio::test]
    async fn idle_threads_give_their_argon2_memory_back_when_asked() {
        use gatehouse_core::password::{Argon2Cost, hash, memory_held};
        let cost = Argon2Cost {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
            hash_len: 32,
        };
        let pool = HashPool::new(1);
        let held = pool
            .run(move || hash("pw", cost).map(|_| memory_held()))
            .await;
        assert_eq!(held.and_then(|r| r.ok()), Some(256 * 1024));
        // Kept between jobs...
        assert_eq!(pool.run(memory_held).await, Some(256 * 1024));
        // ...until the pool is asked to give it back.
        pool.release_memory();
        let mut now = None;
        for _ in 0..200 {
            now = pool.run(memory_held).await;
            if now == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(now, Some(0));
    }
}
