//! Realm signing keys: generated with aws-lc-rs, kept parsed in memory for
//! signing, exported as PKCS#8 for storage and as a JWK for publication.

use crate::{Error, Result};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512, RsaEncoding, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Signature algorithms a realm can sign with: Keycloak's asymmetric ones
/// that every verifier of ours (and the gateway's) accepts. A realm signs
/// with its default one; a client may ask for another for its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// Parses the JOSE name.
    pub fn parse(s: &str) -> Result<Alg> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnsupportedAlgorithm(s.to_owned()))
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The hash whose left half makes `at_hash`, `c_hash` and `s_hash`
    /// (OIDC Core §3.1.3.6: the one of the ID token's `alg`; SHA-512 for
    /// Ed25519, as OpenID's EdDSA registration says).
    pub fn digest(self) -> &'static digest::Algorithm {
        match self {
            Alg::RS256 | Alg::PS256 | Alg::ES256 => &digest::SHA256,
            Alg::RS384 | Alg::PS384 | Alg::ES384 => &digest::SHA384,
            Alg::RS512 | Alg::PS512 | Alg::EdDSA => &digest::SHA512,
        }
    }

    fn rsa_encoding(self) -> Option<&'static dyn RsaEncoding> {
        Some(match self {
            Alg::RS256 => &RSA_PKCS1_SHA256,
            Alg::RS384 => &RSA_PKCS1_SHA384,
            Alg::RS512 => &RSA_PKCS1_SHA512,
            Alg::PS256 => &RSA_PSS_SHA256,
            Alg::PS384 => &RSA_PSS_SHA384,
            Alg::PS512 => &RSA_PSS_SHA512,
            _ => return None,
        })
    }

    /// The curve, its JWK name and its coordinate length, for ECDSA.
    fn ec(self) -> Option<(&'static EcdsaSigningAlgorithm, &'static str, usize)> {
        match self {
            Alg::ES256 => Some((&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)),
            Alg::ES384 => Some((&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)),
            _ => None,
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private key ready to sign, with its public JWK.
pub struct SigningKey {
    kid: String,
    alg: Alg,
    inner: Inner,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private material.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl SigningKey {
    /// Generates a new key; returns it with its PKCS#8 DER for storage.
    pub fn generate(alg: Alg) -> Result<(SigningKey, Vec<u8>)> {
        Self::generate_sized(alg, 2048)
    }

    /// As `generate`, with an RSA modulus of `rsa_bits` (2048, 3072 or
    /// 4096; Keycloak's `keySize`) for the RS and PS algorithms.
    pub fn generate_sized(alg: Alg, rsa_bits: u32) -> Result<(SigningKey, Vec<u8>)> {
        let der = if alg.rsa_encoding().is_some() {
            rsa_pkcs8(rsa_bits)?
        } else if let Some((curve, _, _)) = alg.ec() {
            EcdsaKeyPair::generate_pkcs8(curve, &SystemRandom::new())
                .map_err(|e| Error::Key(e.to_string()))?
                .as_ref()
                .to_vec()
        } else {
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|e| Error::Key(e.to_string()))?
                .as_ref()
                .to_vec()
        };
        let kid = kid_for(alg);
        let key = SigningKey::from_pkcs8(alg, &kid, &der)?;
        Ok((key, der))
    }

    /// A new RSA key of `bits` (2048, 3072 or 4096), with its PKCS#8 DER:
    /// realm keys are 2048, a client's generated key may be larger.
    pub fn generate_rsa(bits: u32) -> Result<(SigningKey, Vec<u8>)> {
        Self::generate_sized(Alg::RS256, bits)
    }

    /// Parses a stored PKCS#8 key.
    pub fn from_pkcs8(alg: Alg, kid: &str, der: &[u8]) -> Result<SigningKey> {
        let (inner, jwk) = if let Some(encoding) = alg.rsa_encoding() {
            let kp = RsaKeyPair::from_pkcs8(der).map_err(|e| Error::Key(e.to_string()))?;
            let pc = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            let jwk = json!({"kty": "RSA", "n": b64(&pc.n), "e": b64(&pc.e)});
            (Inner::Rsa(kp, encoding), jwk)
        } else if let Some((curve, crv, len)) = alg.ec() {
            let kp = EcdsaKeyPair::from_pkcs8(curve, der).map_err(|e| Error::Key(e.to_string()))?;
            let p = kp.public_key().as_ref();
            // Uncompressed point: 0x04 || X || Y.
            if p.len() != 1 + 2 * len {
                return Err(Error::Key("unexpected EC point".into()));
            }
            let jwk =
                json!({"kty": "EC", "crv": crv, "x": b64(&p[1..1 + len]), "y": b64(&p[1 + len..])});
            (Inner::Ec(kp), jwk)
        } else {
            // PKCS#8 v2 (with the public key) as we write it, or v1 as Java
            // (and so a Keycloak export) writes it.
            let kp = Ed25519KeyPair::from_pkcs8(der)
                .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
                .map_err(|e| Error::Key(e.to_string()))?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())});
            (Inner::Ed(kp), jwk)
        };
        let mut jwk = jwk;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("alg".into(), json!(alg.as_str()));
            o.insert("use".into(), json!("sig"));
        }
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            inner,
            jwk,
        })
    }

    /// The key id published in the JWKS and set in every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public key as a DER SubjectPublicKeyInfo: for a certificate
    /// (`certificate.rs`), and for the key id Keycloak derives from it.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        let der = match &self.inner {
            Inner::Rsa(kp, _) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ec(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ed(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
        };
        der.map_err(|e| Error::Key(e.to_string()))
    }

    /// The public JWK (with `kid`, `alg`, `use`).
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `msg` (the JWS signing input).
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match &self.inner {
            Inner::Rsa(kp, encoding) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(*encoding, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| Error::Sign)?;
                Ok(sig)
            }
            Inner::Ec(kp) => Ok(kp
                .sign(&SystemRandom::new(), msg)
                .map_err(|_| Error::Sign)?
                .as_ref()
                .to_vec()),
            Inner::Ed(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
        }
    }
}

/// A new RSA private key of `bits` (2048, 3072 or 4096) as PKCS#8 DER.
fn rsa_pkcs8(bits: u32) -> Result<Vec<u8>> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return Err(Error::Key(format!("unsupported RSA size {bits}"))),
    };
    let kp = RsaKeyPair::generate(size).map_err(|e| Error::Key(e.to_string()))?;
    Ok(kp
        .as_der()
        .map_err(|e| Error::Key(e.to_string()))?
        .as_ref()
        .to_vec())
}

/// A fresh key id: random, URL-safe, and prefixed with the algorithm so an
/// operator reading a JWKS can tell keys apart at a glance.
fn kid_for(alg: Alg) -> String {
    let r: [u8; 12] = gatehouse_core::id::bytes();
    format!("{}-{}", alg.as_str().to_lowercase(), b64(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{KeySet, Rules};

    /// Every algorithm a realm or client can pick signs a token that the
    /// verifier of our own and upstream tokens accepts through the key's
    /// published JWK, and that no other key of the set verifies.
    #[test]
    fn every_algorithm_signs_what_its_published_key_verifies() {
        let (keys, ders): (Vec<SigningKey>, Vec<Vec<u8>>) = Alg::ALL
            .into_iter()
            .map(|a| SigningKey::generate(a).expect("generate"))
            .unzip();
        let jwks = crate::jwks::document(keys.iter().map(|k| k.public_jwk()));
        let set = KeySet::from_jwks_json(jwks.to_string().as_bytes()).expect("jwks");
        let claims = serde_json::json!({"iss": "i", "exp": gatehouse_core::time::now() + 60});
        for ((key, der), alg) in keys.iter().zip(&ders).zip(Alg::ALL) {
            assert_eq!(key.alg(), alg);
            assert_eq!(key.public_jwk()["alg"], alg.as_str());
            let token = crate::sign::sign(key, &claims).expect("sign");
            let got = set.verify(&token, &Rules::for_issuer("i"));
            assert_eq!(
                got.ok().map(|c| c["iss"].clone()),
                Some("i".into()),
                "{alg:?}"
            );
            // The same token under another key's kid fails.
            let other = keys.iter().find(|k| k.kid() != key.kid()).expect("other");
            let header = format!(
                r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#,
                alg.as_str(),
                other.kid()
            );
            let (_, rest) = token.split_once('.').expect("dot");
            let swapped = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            assert!(
                set.verify(&swapped, &Rules::for_issuer("i")).is_err(),
                "{alg:?}"
            );
            // A stored key comes back with the same public half.
            let stored = SigningKey::from_pkcs8(alg, key.kid(), der).expect("stored");
            assert_eq!(stored.public_jwk(), key.public_jwk());
            assert_eq!(Alg::parse(alg.as_str()).expect("parse"), alg);
        }
        assert!(Alg::parse("HS256").is_err());
        assert!(Alg::parse("none").is_err());
    }
}
