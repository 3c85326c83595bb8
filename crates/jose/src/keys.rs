//! Realm signing keys: generated with aws-lc-rs, kept parsed in memory for
//! signing, exported as PKCS#8 for storage and as a JWK for publication.

use crate::{Error, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Signature algorithms a realm can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    ES256,
    EdDSA,
}

impl Alg {
    /// Parses the JOSE name.
    pub fn parse(s: &str) -> Result<Alg> {
        match s {
            "RS256" => Ok(Alg::RS256),
            "ES256" => Ok(Alg::ES256),
            "EdDSA" => Ok(Alg::EdDSA),
            other => Err(Error::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair),
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
        let der = match alg {
            Alg::RS256 => return Self::generate_rsa(2048),
            Alg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|e| Error::Key(e.to_string()))?
                    .as_ref()
                    .to_vec()
            }
            Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|e| Error::Key(e.to_string()))?
                .as_ref()
                .to_vec(),
        };
        let kid = kid_for(alg);
        let key = SigningKey::from_pkcs8(alg, &kid, &der)?;
        Ok((key, der))
    }

    /// A new RSA key of `bits` (2048, 3072 or 4096), with its PKCS#8 DER:
    /// realm keys are 2048, a client's generated key may be larger.
    pub fn generate_rsa(bits: u32) -> Result<(SigningKey, Vec<u8>)> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(Error::Key(format!("unsupported RSA size {bits}"))),
        };
        let kp = RsaKeyPair::generate(size).map_err(|e| Error::Key(e.to_string()))?;
        let der = kp
            .as_der()
            .map_err(|e| Error::Key(e.to_string()))?
            .as_ref()
            .to_vec();
        let kid = kid_for(Alg::RS256);
        let key = SigningKey::from_pkcs8(Alg::RS256, &kid, &der)?;
        Ok((key, der))
    }

    /// Parses a stored PKCS#8 key.
    pub fn from_pkcs8(alg: Alg, kid: &str, der: &[u8]) -> Result<SigningKey> {
        let (inner, jwk) = match alg {
            Alg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|e| Error::Key(e.to_string()))?;
                let pc =
                    aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let jwk = json!({"kty": "RSA", "n": b64(&pc.n), "e": b64(&pc.e)});
                (Inner::Rsa(kp), jwk)
            }
            Alg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| Error::Key(e.to_string()))?;
                let p = kp.public_key().as_ref();
                // Uncompressed point: 0x04 || X(32) || Y(32).
                if p.len() != 65 {
                    return Err(Error::Key("unexpected EC point".into()));
                }
                let jwk =
                    json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])});
                (Inner::Ec(kp), jwk)
            }
            Alg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|e| Error::Key(e.to_string()))?;
                let jwk =
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())});
                (Inner::Ed(kp), jwk)
            }
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

    /// The public key as a DER SubjectPublicKeyInfo, for a certificate
    /// (`certificate.rs`).
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        let der = match &self.inner {
            Inner::Rsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            _ => return Err(Error::UnsupportedAlgorithm(self.alg.as_str().into())),
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
            Inner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
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

/// A fresh key id: random, URL-safe, and prefixed with the algorithm so an
/// operator reading a JWKS can tell keys apart at a glance.
fn kid_for(alg: Alg) -> String {
    let r: [u8; 12] = gatehouse_core::id::bytes();
    format!("{}-{}", alg.as_str().to_lowercase(), b64(&r))
}
