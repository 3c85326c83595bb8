//! Compact JWS creation.

use crate::keys::SigningKey;
use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// A compact JWS: `header.payload` encoded once, then `sign` over it.
fn compact<T: Serialize>(
    alg: &str,
    kid: &str,
    typ: &str,
    claims: &T,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<String> {
    let header = serde_json::json!({"alg": alg, "typ": typ, "kid": kid});
    compact_with(&header, claims, sign)
}

fn compact_with<T: Serialize>(
    header: &serde_json::Value,
    claims: &T,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<String> {
    let h = serde_json::to_vec(&header).map_err(|_| Error::Sign)?;
    let c = serde_json::to_vec(claims).map_err(|_| Error::Sign)?;
    let mut out = String::with_capacity((h.len() + c.len()) * 4 / 3 + 400);
    URL_SAFE_NO_PAD.encode_string(&h, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&c, &mut out);
    let sig = sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
    Ok(out)
}

/// Signs `claims` as a compact JWS with the realm key (`typ: JWT`;
/// Keycloak's `Bearer`/`ID` token types go in the claims).
pub fn sign<T: Serialize>(key: &SigningKey, claims: &T) -> Result<String> {
    sign_typed(key, "JWT", claims)
}

/// Signs with an explicit header `typ`, for tokens whose type the
/// receiver must check before anything else (a back-channel logout
/// token is `logout+jwt`, so that it can never pass for an ID token).
pub fn sign_typed<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String> {
    compact(key.alg().as_str(), key.kid(), typ, claims, |input| {
        key.sign_raw(input)
    })
}

/// Signs with a header of the caller's making (its `alg` must be the
/// key's): for objects whose header carries more than a key id, such as a
/// DPoP proof with its public key (`dpop::proof`).
pub fn sign_with_header<T: Serialize>(
    key: &SigningKey,
    header: &serde_json::Value,
    claims: &T,
) -> Result<String> {
    if header.get("alg").and_then(|a| a.as_str()) != Some(key.alg().as_str()) {
        return Err(Error::Sign);
    }
    compact_with(header, claims, |input| key.sign_raw(input))
}

/// HS512 JWS with a symmetric secret. Used only for tokens Gatehouse alone
/// reads (refresh tokens, as Keycloak does), so they never need a published key.
pub fn sign_hs512<T: Serialize>(secret: &[u8], kid: &str, claims: &T) -> Result<String> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, secret);
    compact("HS512", kid, "JWT", claims, |input| {
        Ok(aws_lc_rs::hmac::sign(&k, input).as_ref().to_vec())
    })
}

/// Verifies an HS512 token made by [`sign_hs512`] and returns its claims.
/// Expiry is the caller's business (refresh tokens carry session rules).
pub fn verify_hs512(secret: &[u8], token: &str) -> Result<serde_json::Value> {
    verify_hmac(secret, token, &["HS512"])
}

/// Verifies a JWS signed with HMAC over `secret`, with one of the `allowed`
/// algorithms (`HS256`, `HS384`, `HS512`), and returns its claims. The
/// claims' own checks (expiry, audience...) are the caller's.
pub fn verify_hmac(secret: &[u8], token: &str, allowed: &[&str]) -> Result<serde_json::Value> {
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Malformed);
    };
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| Error::Malformed)?)
            .map_err(|_| Error::Malformed)?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if !allowed.contains(&alg) {
        return Err(Error::Algorithm);
    }
    let digest = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        _ => return Err(Error::Algorithm),
    };
    if header.get("crit").is_some() {
        return Err(Error::Critical);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| Error::Malformed)?;
    let k = aws_lc_rs::hmac::Key::new(digest, secret);
    let signing_input = &token[..h.len() + 1 + c.len()];
    aws_lc_rs::hmac::verify(&k, signing_input.as_bytes(), &sig).map_err(|_| Error::BadSignature)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|_| Error::Malformed)?)
        .map_err(|_| Error::Malformed)
}
