//! One password or one-time-code check at a time per user, where the realm
//! counts failed logins (brute-force detection).
//!
//! Why: a check reads the user's failure count, verifies, then records the
//! outcome. Attempts running side by side would all read the same count,
//! so an attacker sending fifty at once would get fifty guesses where the
//! realm allows three (Keycloak's CVE-2024-4629, which Keycloak closed by
//! failing concurrent logins outright). Here they wait their turn: each
//! reads the count the one before it left, and a client that logs in
//! several times in parallel (a `docker compose pull`) is not locked out.
//! One process's turns: several nodes would need the store to hand them
//! out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OwnedMutexGuard;

/// The users with a check running or waiting, each with its queue.
#[derive(Default)]
pub struct Turns {
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A user's turn, until dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    user_id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for `user_id`'s turn.
    pub async fn take(&self, user_id: &str) -> Turn<'_> {
        // The turn exists before the wait, so a login dropped while
        // waiting (its client gone) still forgets an idle queue; the queue
        // handle, made after it, is dropped before it.
        let mut turn = Turn {
            turns: self,
            user_id: user_id.to_owned(),
            guard: None,
        };
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user_id.to_owned())
            .or_default()
            .clone();
        turn.guard = Some(queue.lock_owned().await);
        turn
    }

    /// How many users have a queue (for tests: none is kept once idle).
    pub fn queued_users(&self) -> usize {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut queues = self
            .turns
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // No one else holds or waits for this user's queue: forget it. A
        // waiter clones the queue under this same lock, so none can be
        // about to.
        if queues
            .get(&self.user_id)
            .is_some_and(|q| Arc::strong_count(q) == 1)
        {
            queues.remove(&self.user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_check_at_a_time_per_user_and_nothing_kept_after() {
        let turns = Arc::new(Turns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for i in 0..16 {
            let (turns, inside, most) = (turns.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let user = if i % 4 == 0 { "other" } else { "alice" };
                let _turn = turns.take(user).await;
                if user == "alice" {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(turns.queued_users(), 0);
    }

    #[tokio::test]
    async fn a_login_dropped_while_waiting_leaves_nothing_behind() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("alice").await;
        let waiting = {
            let turns = turns.clone();
            tokio::spawn(async move {
                let _turn = turns.take("alice").await;
            })
        };
        tokio::task::yield_now().await;
        // The first turn ends while another waits, which is then dropped
        // before it runs: the one left to forget the queue is the waiter.
        drop(first);
        waiting.abort();
        assert!(waiting.await.is_err(), "cancelled while waiting");
        assert_eq!(turns.queued_users(), 0);
    }
}
