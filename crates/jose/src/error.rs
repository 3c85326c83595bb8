//! Errors of key handling, signing and verification.

/// Why a JOSE operation failed. Verification errors are deliberately coarse:
/// callers log the variant, never the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("key material rejected: {0}")]
    Key(String),
    #[error("cannot decrypt key material (wrong master key?)")]
    Unseal,
    #[error("signing failed")]
    Sign,
    #[error("malformed token")]
    Malformed,
    #[error("no key with this kid")]
    UnknownKid,
    #[error("signature invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("issuer mismatch")]
    Issuer,
    #[error("audience mismatch")]
    Audience,
    #[error("algorithm not allowed")]
    Algorithm,
    /// A `crit` header (RFC 7515 §4.1.11): it names extensions the
    /// signature's meaning depends on, and Gatehouse understands none.
    #[error("critical header extension not understood")]
    Critical,
    /// The token says it is something other than what the verifier takes
    /// (see `verify::Purpose`).
    #[error("not an access token")]
    TokenType,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Result with the JOSE error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
