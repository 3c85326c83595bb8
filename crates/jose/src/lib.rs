//! JOSE for Gatehouse: realm signing keys (generation, encryption at rest,
//! rotation state), compact JWS signing with keys held parsed in memory, the
//! published JWKS, and verification of tokens from any issuer.
//!
//! Signing goes straight to aws-lc-rs with pre-parsed key pairs because
//! jsonwebtoken's signer re-parses a private key on every call, which costs
//! more than the signature itself for RSA. Verification uses jsonwebtoken,
//! whose algorithm/key-family checks make `none` and HMAC-with-public-key
//! confusion impossible.

pub mod certificate;
pub mod dpop;
pub mod error;
pub mod jwks;
pub mod keys;
pub mod seal;
pub mod sign;
pub mod verify;

pub use error::{Error, Result};

/// Installs aws-lc-rs as jsonwebtoken's crypto provider. Idempotent; call it
/// before the first verification (the binary calls it at start, tests too).
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
