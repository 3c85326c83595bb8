//! Client authentication with a signed JWT (RFC 7523 §2.2, OIDC Core §9):
//! `client_secret_jwt` (HMAC with the client's secret, Keycloak's
//! `client-secret-jwt` authenticator) and `private_key_jwt` (the client's
//! own key, Keycloak's `client-jwt`, keys from the client's `jwks.string`
//! or `jwks.url` attributes).
//!
//! The assertion must have `iss` = `sub` = the client id, an `aud` naming
//! this realm's issuer or one of the endpoints that accept it, an `exp`,
//! and a `jti` that is accepted once: a replayed assertion is refused until
//! it expires (per process; several nodes will need the shared store).
//!
//! As Keycloak since 26.2 (CVE-2025-2559), an assertion is only good for a
//! short window after it was made, whatever its own `exp` says: the
//! client's `token.endpoint.auth.signing.max.exp` seconds (60 by default)
//! after its `iat`, or, without `iat`, an `exp` no further away than that.
//! A leaked assertion then dies within a minute, and the replay memory,
//! which must hold every `jti` for as long as it is usable, stays bounded
//! by the request rate instead of by what clients write into `exp`.

use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use base64::Engine;
use gatehouse_core::model::{Client, Realm};
use gatehouse_jose::verify::{KeySet, Rules, numeric_date, numeric_date_ceil};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The only assertion type (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock leeway for `exp`, `nbf` and `iat`, seconds (Keycloak's 15).
const LEEWAY: i64 = 15;
/// How long after it was made an assertion is accepted when the client
/// does not say (Keycloak's default for `token.endpoint.auth.signing.max.exp`).
const DEFAULT_MAX_AGE: i64 = 60;
/// A client's fetched `jwks.url` is used this long before a refetch.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches at most this often per URL.
const JWKS_REFETCH: Duration = Duration::from_secs(10);
/// Largest assertion read (a JWT signed with a 4096-bit key is ~1.5 KB).
const MAX_ASSERTION: usize = 16 * 1024;

/// The per-process state assertions need: used `jti`s and fetched keys.
#[derive(Default)]
pub struct AssertionState {
    /// `client internal id + jti` -> expiry (Unix seconds).
    seen: Mutex<HashMap<String, i64>>,
    /// `jwks.url` -> (fetched at, keys).
    jwks: Mutex<HashMap<String, (Instant, Arc<KeySet>)>>,
}

impl AssertionState {
    /// Records `key` until `exp`; false when it was already there.
    fn first_use(&self, key: String, exp: i64, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 10_000 {
            seen.retain(|_, e| *e >= now);
        }
        match seen.get(&key) {
            Some(e) if *e >= now => false,
            _ => {
                seen.insert(key, exp);
                true
            }
        }
    }
}

/// An assertion read from a token-endpoint form, not yet verified.
pub struct Assertion {
    /// The client it claims to be (`sub`).
    pub client_id: String,
    token: String,
}

fn invalid(msg: &str) -> OAuthError {
    OAuthError::invalid_client(msg)
}

/// Reads `client_assertion_type` and `client_assertion`; None when the
/// request does not use them.
pub fn from_form(form: &Form) -> Result<Option<Assertion>, OAuthError> {
    let (kind, token) = match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (None, None) => return Ok(None),
        (Some(k), Some(t)) => (k, t),
        _ => {
            return Err(OAuthError::invalid_request(
                "client_assertion_type and client_assertion go together",
            ));
        }
    };
    if kind != JWT_BEARER {
        let mut e = invalid(&format!(
            "Parameter client_assertion_type has value '{kind}' but expected is '{JWT_BEARER}'"
        ));
        e.status = axum::http::StatusCode::BAD_REQUEST;
        return Err(e);
    }
    if token.len() > MAX_ASSERTION {
        return Err(invalid("Client assertion too large"));
    }
    let claims = unverified_claims(token).ok_or_else(|| invalid("Malformed client assertion"))?;
    let sub = claims["sub"]
        .as_str()
        .ok_or_else(|| invalid("Can't identify client. Subject missing on JWT token"))?;
    if claims["iss"].as_str() != Some(sub) {
        return Err(invalid(
            "Issuer mismatch. The issuer should match the subject",
        ));
    }
    if let Some(id) = form.get("client_id")
        && id != sub
    {
        return Err(invalid("client_id parameter does not match sub claim"));
    }
    Ok(Some(Assertion {
        client_id: sub.to_owned(),
        token: token.to_owned(),
    }))
}

/// The payload of a compact JWS, read without checking anything: only to
/// pick what to check it against (the client of an assertion, the realm
/// whose keys verify an admin token, the client whose origins CORS uses).
pub fn unverified_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The audiences an assertion may name: the issuer and the endpoints that
/// authenticate clients.
fn audiences(idp: &Idp, realm: &Realm) -> Vec<String> {
    let iss = idp.issuer(&realm.name);
    let p = format!("{iss}/protocol/openid-connect");
    vec![
        iss,
        format!("{p}/token"),
        format!("{p}/token/introspect"),
        format!("{p}/revoke"),
        format!("{p}/ext/par/request"),
    ]
}

/// Verifies `a` for `client` (its configured authenticator decides how).
pub async fn verify(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    a: &Assertion,
) -> Result<(), OAuthError> {
    let pinned = client
        .attributes
        .get("token.endpoint.auth.signing.alg")
        .filter(|s| !s.is_empty());
    let claims = match client.client_authenticator_type.as_str() {
        "client-secret-jwt" => {
            let allowed: Vec<&str> = match pinned {
                Some(p) => vec![p.as_str()],
                None => vec!["HS256", "HS384", "HS512"],
            };
            let now = gatehouse_core::time::now();
            let secrets = [
                client.secret.as_deref(),
                client
                    .rotated_secret
                    .as_deref()
                    .filter(|_| client.rotated_secret_expires_at.is_some_and(|t| t > now)),
            ];
            secrets
                .into_iter()
                .flatten()
                .find_map(|s| {
                    gatehouse_jose::sign::verify_hmac(s.as_bytes(), &a.token, &allowed).ok()
                })
                .ok_or_else(|| {
                    invalid("Signature on JWT token by client secret failed validation")
                })?
        }
        "client-jwt" => {
            let rules = Rules {
                issuer: Some(client.client_id.clone()),
                audiences: audiences(idp, realm),
                algorithms: match pinned {
                    Some(p) => vec![
                        gatehouse_jose::verify::parse_alg(p)
                            .map_err(|_| invalid("Unsupported signing algorithm"))?,
                    ],
                    None => gatehouse_jose::verify::ASYMMETRIC.to_vec(),
                },
                leeway: LEEWAY as u64,
                // RFC 7523 §3: the assertion must name us in `aud`.
                client_id_as_audience: false,
                // Signed by the client's own key: nothing else to confuse.
                purpose: gatehouse_jose::verify::Purpose::Any,
            };
            let keys = client_keys(idp, client, false).await?;
            match keys.verify(&a.token, &rules) {
                Ok(c) => c,
                Err(gatehouse_jose::Error::UnknownKid) if client_jwks_url(client).is_some() => {
                    // The client may have rotated its key: fetch once more.
                    client_keys(idp, client, true)
                        .await?
                        .verify(&a.token, &rules)
                        .map_err(|e| invalid(&format!("Client assertion rejected: {e}")))?
                }
                Err(e) => return Err(invalid(&format!("Client assertion rejected: {e}"))),
            }
        }
        _ => {
            return Err(invalid(
                "Client authentication with a signed JWT is not allowed for this client",
            ));
        }
    };
    check_claims(idp, realm, client, &claims)
}

/// The checks both kinds share (the asymmetric verifier did `exp`, `nbf`,
/// `iss` and `aud` already; repeating them costs nothing).
fn check_claims(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    claims: &Value,
) -> Result<(), OAuthError> {
    let now = gatehouse_core::time::now();
    if claims["iss"].as_str() != Some(&client.client_id)
        || claims["sub"].as_str() != Some(&client.client_id)
    {
        return Err(invalid("Issuer or subject is not the client"));
    }
    let expected = audiences(idp, realm);
    let aud_ok = match &claims["aud"] {
        Value::String(s) => expected.contains(s),
        // One audience, as Keycloak requires by default: an assertion
        // naming several servers can be replayed by any of them at us.
        Value::Array(a) if a.len() > 1 => return Err(invalid("Multiple audiences not allowed")),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|s| expected.iter().any(|e| e == s)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid("Token audience doesn't match domain"));
    }
    let exp = numeric_date(&claims["exp"]).ok_or_else(|| invalid("Token exp claim is required"))?;
    if exp < now - LEEWAY {
        return Err(invalid("Token is not active"));
    }
    if numeric_date_ceil(&claims["nbf"]).is_some_and(|t| t > now + LEEWAY) {
        return Err(invalid("Token is not active"));
    }
    let usable_until = usable_until(claims, client, exp, now)?;
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("Token jti claim is required"))?;
    if !idp
        .assertions
        .first_use(format!("{}:{jti}", client.id), usable_until, now)
    {
        return Err(invalid("Token reuse detected"));
    }
    Ok(())
}

/// Until when an assertion that expires at `exp` may be used: never longer
/// than the client's maximum age after it was made (see the module notes).
fn usable_until(claims: &Value, client: &Client, exp: i64, now: i64) -> Result<i64, OAuthError> {
    let max_age = max_age(client);
    match numeric_date(&claims["iat"]) {
        None if exp.saturating_sub(now) > max_age => Err(invalid(
            "Token expiration is too far in the future and iat claim not present in token",
        )),
        None => Ok(exp.saturating_add(LEEWAY)),
        Some(iat) if iat.saturating_sub(LEEWAY) > now => {
            Err(invalid("Token was issued in the future"))
        }
        Some(iat) if now > iat.saturating_add(max_age) => Err(invalid(
            "Token was issued too far in the past to be used now",
        )),
        Some(iat) => Ok(exp.min(iat.saturating_add(max_age)).saturating_add(LEEWAY)),
    }
}

/// The client's `token.endpoint.auth.signing.max.exp`, seconds; anything
/// but a positive number means Keycloak's default.
fn max_age(client: &Client) -> i64 {
    client
        .attributes
        .get("token.endpoint.auth.signing.max.exp")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_AGE)
}

fn client_jwks_url(client: &Client) -> Option<&str> {
    client
        .attribute_flag("use.jwks.url", false)
        .then(|| client.attributes.get("jwks.url").map(String::as_str))
        .flatten()
        .filter(|u| !u.is_empty())
}

/// The client's public keys: its inline `jwks.string`, its `jwks.url`
/// (cached; `refresh` fetches again unless that was done moments ago), or
/// the certificate or public key configured on it.
pub(crate) async fn client_keys(
    idp: &Idp,
    client: &Client,
    refresh: bool,
) -> Result<Arc<KeySet>, OAuthError> {
    if client.attribute_flag("use.jwks.string", false) {
        let jwks = client
            .attributes
            .get("jwks.string")
            .ok_or_else(|| invalid("Client has no keys"))?;
        return KeySet::from_jwks_json(jwks.as_bytes())
            .map(Arc::new)
            .map_err(|_| invalid("Client keys unreadable"));
    }
    let Some(url) = client_jwks_url(client) else {
        // Keycloak's third source: a certificate (or public key) imported
        // into the client, as its admin console and exports keep it.
        let configured = ["jwt.credential.certificate", "jwt.credential.public.key"]
            .iter()
            .find_map(|a| client.attributes.get(*a).filter(|v| !v.trim().is_empty()));
        return match configured {
            Some(text) => KeySet::from_certificate(text)
                .map(Arc::new)
                .map_err(|_| invalid("Client certificate unreadable")),
            None => Err(invalid(
                "Client has no keys (jwks.url, jwks.string or a certificate)",
            )),
        };
    };
    keys_at(idp, url, refresh).await
}

/// The JWKS at `url`, cached per URL for a few minutes (`refresh`: unless
/// fetched in the last seconds, for a `kid` the cached set lacks); when
/// the key server is down the last good keys still serve. Clients'
/// `jwks.url` and brokered identity providers' `jwksUrl` share it.
pub async fn keys_at(idp: &Idp, url: &str, refresh: bool) -> Result<Arc<KeySet>, OAuthError> {
    let cached = idp
        .assertions
        .jwks
        .lock()
        .ok()
        .and_then(|m| m.get(url).cloned());
    if let Some((at, keys)) = &cached {
        let fresh = at.elapsed() < if refresh { JWKS_REFETCH } else { JWKS_TTL };
        if fresh {
            return Ok(keys.clone());
        }
    }
    let fetched = fetch_jwks(idp, url).await;
    match (fetched, cached) {
        (Ok(keys), _) => {
            let keys = Arc::new(keys);
            if let Ok(mut m) = idp.assertions.jwks.lock() {
                m.insert(url.to_owned(), (Instant::now(), keys.clone()));
            }
            Ok(keys)
        }
        // The client's key server is down: the last good keys still serve.
        (Err(_), Some((_, keys))) => Ok(keys),
        (Err(e), None) => Err(e),
    }
}

async fn fetch_jwks(idp: &Idp, url: &str) -> Result<KeySet, OAuthError> {
    let fail = |what: &str| {
        tracing::warn!(url, "jwks url {what}");
        invalid("Client keys could not be fetched")
    };
    let body = crate::fetch::get(idp, url, crate::fetch::MAX_JSON)
        .await
        .map_err(|u| fail(u.what()))?;
    KeySet::from_jwks_json(&body).map_err(|_| fail("not a JWKS"))
}
