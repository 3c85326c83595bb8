//! Self-signed X.509 certificates for RSA keys, made the way Keycloak makes
//! them: a client's generated key pair (`certificates/{attr}/generate`),
//! whose certificate the client's signed JWTs are then verified against,
//! and the certificate of a realm's RSA key that keystore downloads carry.
//! Version 1, subject and issuer `CN=<name>`, SHA-256 with RSA, no
//! extensions: all a verifier reads from them is the public key.

use crate::error::{Error, Result};
use crate::keys::{Alg, SigningKey};
use std::time::Duration;
use x509_cert::der::asn1::{BitString, GeneralizedTime, Null, SetOfVec, UtcTime};
use x509_cert::der::{Any, Decode, Encode, Tag};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

fn der_err(e: x509_cert::der::Error) -> Error {
    Error::Key(e.to_string())
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
fn time(unix_secs: u64) -> Result<Time> {
    let d = Duration::from_secs(unix_secs);
    match UtcTime::from_unix_duration(d) {
        Ok(t) => Ok(Time::UtcTime(t)),
        Err(_) => Ok(Time::GeneralTime(
            GeneralizedTime::from_unix_duration(d).map_err(der_err)?,
        )),
    }
}

/// `CN=<name>`, the name as a UTF8String (any client id fits).
fn common_name(name: &str) -> Result<Name> {
    let atv = x509_cert::attr::AttributeTypeAndValue {
        oid: COMMON_NAME,
        value: Any::new(Tag::Utf8String, name.as_bytes()).map_err(der_err)?,
    };
    let rdn = RelativeDistinguishedName::from(SetOfVec::try_from(vec![atv]).map_err(der_err)?);
    Ok(RdnSequence(vec![rdn]))
}

/// A self-signed certificate (DER) for `key`, an RS256 key, valid from now
/// for `valid_for`.
pub fn self_signed(key: &SigningKey, name: &str, valid_for: Duration) -> Result<Vec<u8>> {
    if key.alg() != Alg::RS256 {
        return Err(Error::UnsupportedAlgorithm(key.alg().as_str().into()));
    }
    let algorithm = AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(Any::from(Null)),
    };
    // A positive serial of 16 random bytes (RFC 5280 §4.1.2.2).
    let mut serial: [u8; 16] = gatehouse_core::id::bytes();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let subject = common_name(name)?;
    let now = u64::try_from(gatehouse_core::time::now()).unwrap_or(0);
    let tbs = TbsCertificate {
        version: Version::V1,
        serial_number: x509_cert::serial_number::SerialNumber::new(&serial).map_err(der_err)?,
        signature: algorithm.clone(),
        issuer: subject.clone(),
        validity: Validity {
            not_before: time(now)?,
            not_after: time(now + valid_for.as_secs())?,
        },
        subject,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
            .map_err(der_err)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let signature = key.sign_raw(&tbs.to_der().map_err(der_err)?)?;
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

/// Whether `der` is an X.509 certificate (an uploaded "Certificate PEM"
/// must be one, not merely a key).
pub fn is_certificate(der: &[u8]) -> bool {
    Certificate::from_der(der).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_verifies_tokens_signed_by_its_key() {
        crate::install_crypto_provider();
        let (key, _) = SigningKey::generate(Alg::RS256).expect("key");
        let der = self_signed(&key, "my,client=+\"x\"", Duration::from_secs(86400)).expect("cert");
        let cert = Certificate::from_der(&der).expect("parses");
        assert_eq!(cert.tbs_certificate.issuer, cert.tbs_certificate.subject);
        assert!(is_certificate(&der) && !is_certificate(&key.public_key_der().expect("spki")));
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(&der);
        let ks = crate::verify::KeySet::from_certificate(&text).expect("keyset");
        let now = gatehouse_core::time::now();
        let token = crate::sign::sign(
            &key,
            &serde_json::json!({"iss": "c", "exp": now + 60, "sub": "c"}),
        )
        .expect("sign");
        let rules = crate::verify::Rules::for_issuer("c");
        assert_eq!(ks.verify(&token, &rules).expect("verify")["sub"], "c");
        let (ec, _) = SigningKey::generate(Alg::ES256).expect("ec");
        assert!(self_signed(&ec, "x", Duration::from_secs(60)).is_err());
    }
}
