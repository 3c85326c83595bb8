//! The domain error: what went wrong in terms a caller can act on. The HTTP
//! edges map each variant to a status code; nothing here knows about HTTP.

/// Domain failures shared by the store, the identity provider and the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist (maps to 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule would be broken (maps to 409, as Keycloak does).
    #[error("{0}")]
    Conflict(String),
    /// The input is malformed or violates a rule (maps to 400).
    #[error("{0}")]
    Invalid(String),
    /// A stored credential could not be parsed; the login fails closed.
    #[error("credential format: {0}")]
    Credential(String),
    /// Storage or crypto backend failure (maps to 500; details are logged).
    #[error("internal: {0}")]
    Internal(String),
}

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
