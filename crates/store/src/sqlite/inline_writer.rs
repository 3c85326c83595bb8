//! One read-write connection used on the calling thread, beside sqlx's pool,
//! for the statements of a login.
//!
//! A password login reads the user and its credentials and writes the new
//! session with its LOGIN event: through sqlx that is six hops to its
//! SQLite thread (two reads; begin, insert, insert, commit), each a message
//! and a wake-up on both sides. On two cores that are busy hashing
//! passwords those wake-ups preempt a hashing thread, and the scheduler's
//! share of the login's non-hashing CPU was a third (perf). Here they run
//! inline, each in microseconds. They share one connection so that its
//! page cache stays valid: a connection that sees another one's commit
//! drops its cache, and read-only inline connections that each login's
//! write invalidated cost more than the hops they saved (measured in
//! session 13, see the README's benchmark notes).
//!
//! SQLite still has one writer at a time, and this connection never waits
//! for it: waiting would block a runtime worker, which may be the one that
//! drives the pool's transaction holding the lock (with one worker, a
//! deadlock until the busy timeout). So its busy timeout is zero, a write
//! begins IMMEDIATE (taking the lock up front, never upgrading), and when
//! the lock, or this connection, is taken the caller does the same work
//! through the pool, which waits asynchronously. Both run WAL with
//! `synchronous = NORMAL`, so a commit does not wait for the disk.

use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// The login path's connection.
pub struct InlineWriter {
    conn: Mutex<Connection>,
}

impl InlineWriter {
    /// Opens a connection to the database file at `path`, which the pool
    /// has created, migrated and put in WAL mode; None for an in-memory
    /// database (see `InlineReads::new`).
    pub fn open(path: &Path) -> Result<Option<InlineWriter>> {
        let Some(name) = path.to_str() else {
            return Ok(None);
        };
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return Ok(None);
        }
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::ZERO)?;
        // The pool's settings are per connection: the same here, or a
        // commit would fsync (FULL) and cascades would not run.
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        Ok(Some(InlineWriter {
            conn: Mutex::new(c),
        }))
    }

    /// Runs `f` on the connection; None when another thread is using it or
    /// another connection holds the write lock (the caller goes through the
    /// pool then).
    pub fn try_with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        let mut c = match self.conn.try_lock() {
            Ok(c) => c,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(_)) => {
                return Some(Err(Error::Db("inline writer poisoned".into())));
            }
        };
        match f(&mut c) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            r => Some(r.map_err(Error::from)),
        }
    }
}
