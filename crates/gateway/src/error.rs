//! Gateway errors: configuration problems (refused at load with a message
//! that points at the offending key) and runtime failures.

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the text names the route or authorizer.
    #[error("invalid gateway config: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the gateway error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
