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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads. More concurrent argon2 runs than cores
/// only thrash caches, and each holds its memory cost (7 MiB by default),
/// so a login flood queues here instead of allocating.
pub struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Starts `threads` workers; they end when the pool is dropped.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool { jobs: tx }
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
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // the pool was dropped
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
}
