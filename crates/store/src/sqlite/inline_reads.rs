//! Point reads done on the calling thread, beside sqlx's pool.
//!
//! sqlx runs every SQLite connection on its own worker thread: a query is a
//! message to that thread and an answer back, two context switches and two
//! wake-ups. For the reads on the hot path of a grant (the session row a
//! refresh, userinfo or introspection looks up by primary key) that hop
//! cost more CPU than the read: under refresh load, scheduler work around
//! the hop was about 17 % of the process's CPU (perf), and refresh grants/s
//! rose 12 to 17 % with the read out of the way. A primary-key read from
//! SQLite's page cache takes microseconds, so these few reads run inline
//! on a small set of read-only connections of their own. In WAL mode a
//! reader never waits for the writer and sees every transaction committed
//! before it started, so a write made through the pool is visible to the
//! next inline read. Writes, and reads that scan, stay on sqlx.

use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept; more are opened when more threads read at once
/// (and dropped again when they come back to a full shelf).
const KEEP: usize = 8;

/// A shelf of read-only connections to one database file.
pub struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// For the database file at `path` (which the pool has created and put
    /// in WAL mode); None for an in-memory database (`:memory:`, or the
    /// `file:sqlx-in-memory-N` URI sqlx names its shared ones), which a
    /// connection of ours would not see.
    pub fn new(path: &Path) -> Option<InlineReads> {
        let name = path.to_str()?;
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return None;
        }
        Some(InlineReads {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn open(&self) -> Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A reader waits only while a checkpoint resets the WAL.
        c.busy_timeout(Duration::from_secs(10))?;
        Ok(c)
    }

    /// Runs `f` on an idle connection (opening one if none is idle).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let taken = self.idle.lock().map_err(|_| poisoned())?.pop();
        let c = match taken {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&c);
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        if idle.len() < KEEP {
            idle.push(c);
        }
        Ok(out?)
    }
}

fn poisoned() -> Error {
    Error::Db("inline read shelf poisoned".into())
}
