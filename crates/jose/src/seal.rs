//! Encryption at rest for private keys and other secrets in the database:
//! AES-256-GCM under the master key, so a copied database file alone does not
//! yield signing keys.

use crate::{Error, Result};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The process-wide master key (`GATEHOUSE_MASTER_KEY` or a 0600 file).
pub struct MasterKey(LessSafeKey);

impl MasterKey {
    /// Builds the key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let k = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| Error::Key("master key must be 32 bytes".into()))?;
        Ok(MasterKey(LessSafeKey::new(k)))
    }

    /// Encrypts `plain`; the output is `nonce || ciphertext || tag`. `context`
    /// binds the ciphertext to its row (e.g. the kid) so rows cannot be swapped.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let nonce_bytes: [u8; NONCE_LEN] = gatehouse_core::id::bytes();
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| Error::Key("seal".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Unseal);
        }
        let (n, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| Error::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| Error::Unseal)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_context_binding() {
        let k = MasterKey::from_bytes(&[7u8; 32]).expect("key");
        let s = k.seal(b"private", b"kid-1").expect("seal");
        assert_eq!(k.open(&s, b"kid-1").expect("open"), b"private");
        assert!(k.open(&s, b"kid-2").is_err());
        let other = MasterKey::from_bytes(&[8u8; 32]).expect("key");
        assert!(other.open(&s, b"kid-1").is_err());
        assert!(k.open(&s[..5], b"kid-1").is_err());
    }
}
