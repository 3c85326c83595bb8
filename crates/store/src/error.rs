//! Storage errors: constraint violations are told apart from backend faults
//! so the HTTP edge can answer 409 instead of 500.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A unique constraint was violated (e.g. duplicate username).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row changed since the caller read it: its write would undo
    /// another one, so it is refused; reading again and retrying is safe.
    #[error("stale: changed since read")]
    Stale,
    /// A referenced row does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed; details for the log, not for callers.
    #[error("database: {0}")]
    Db(String),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e {
            if d.is_unique_violation() {
                return Error::Conflict(d.message().to_owned());
            }
            if d.is_foreign_key_violation() {
                return Error::NotFound;
            }
        }
        Error::Db(e.to_string())
    }
}

/// The same distinctions for the inline connections (`sqlite/inline_*.rs`).
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e {
            match f.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return Error::Conflict(msg.clone().unwrap_or_else(|| f.to_string()));
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Error::NotFound,
                _ => {}
            }
        }
        Error::Db(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// Result with the storage error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
