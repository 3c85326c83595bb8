//! The signed identity assertion for upstreams (`X-Gatehouse-Assertion`):
//! a short-lived ES256 JWT whose audience is the route's resource, so an
//! upstream can verify who called it against the gateway's JWKS
//! (`/.well-known/jwks.json` on the gateway listener) instead of trusting
//! plain headers. Assertions are cached per caller and route for half their
//! lifetime, so a busy caller costs one signature per 30 s, not per request.

use crate::identity::Identity;
use gatehouse_jose::keys::{Alg, SigningKey};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Assertion lifetime in seconds.
pub const LIFETIME: i64 = 60;

/// The gateway's assertion signer.
pub struct Asserter {
    key: SigningKey,
    jwks: String,
    cache: moka::sync::Cache<String, Arc<str>>,
}

impl Asserter {
    /// A signer with a fresh ES256 key (published at once).
    pub fn generate() -> Result<Asserter, gatehouse_jose::Error> {
        let (key, _) = SigningKey::generate(Alg::ES256)?;
        Ok(Self::with_key(key))
    }

    /// A signer with a given ES256 key: the one the server keeps sealed in
    /// its store, so upstreams' cached JWKS outlive a restart and every
    /// node signs with the same key.
    pub fn with_key(key: SigningKey) -> Asserter {
        let jwks = gatehouse_jose::jwks::document([key.public_jwk()]).to_string();
        Asserter {
            key,
            jwks,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs((LIFETIME / 2) as u64))
                .build(),
        }
    }

    /// The JWKS document upstreams verify against.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The assertion for `id` calling the route with resource `audience`.
    pub fn assert(&self, issuer: &str, audience: &str, id: &Identity) -> Option<Arc<str>> {
        let key = format!(
            "{audience}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            id.issuer,
            id.subject,
            id.iat,
            id.jti.as_deref().unwrap_or("")
        );
        if let Some(a) = self.cache.get(&key) {
            return Some(a);
        }
        let now = gatehouse_core::time::now();
        let mut claims = json!({
            "iss": issuer, "aud": audience, "sub": id.subject, "iat": now,
            "exp": now + LIFETIME, "jti": gatehouse_core::id::uuid(),
            "groups": id.groups, "roles": id.roles, "scope": id.scopes.join(" "),
            "orig_iss": id.issuer,
        });
        if let Some(o) = claims.as_object_mut() {
            if let Some(u) = &id.username {
                o.insert("preferred_username".into(), Value::from(u.clone()));
            }
            if let Some(c) = &id.client_id {
                o.insert("client_id".into(), Value::from(c.clone()));
            }
        }
        let jwt: Arc<str> = gatehouse_jose::sign::sign(&self.key, &claims).ok()?.into();
        self.cache.insert(key, jwt.clone());
        Some(jwt)
    }
}
