//! DPoP proofs (RFC 9449): a client proves, request by request, that it
//! holds the private key its tokens are bound to (`cnf.jkt`), so a token
//! copied from a log or a proxy is useless without that key. Both the
//! identity provider (token endpoint, userinfo) and the gateway check
//! proofs with these rules; the messages are Keycloak's, which its clients
//! and tests read back from `error_description`.

use crate::verify::parse_alg;
use base64::Engine;
use gatehouse_core::id::sha256;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a proof is accepted after its `iat`, seconds (Keycloak's).
pub const PROOF_LIFETIME: i64 = 10;
/// Clock difference tolerated either way, seconds (Keycloak's).
pub const CLOCK_SKEW: i64 = 15;

/// The `typ` every proof must carry (RFC 9449 §4.2), which keeps any other
/// JWT signed by the same key from passing as a proof.
const PROOF_TYPE: &str = "dpop+jwt";

/// JWK members that only a private key has: a proof carrying them leaks
/// the client's key and is refused rather than used.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused. The text is Keycloak's `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    Missing,
    Header,
    /// The `typ` the proof carried (`null` when none).
    Type(String),
    /// The `alg` the proof named.
    Algorithm(String),
    NoJwk,
    KeyType,
    PrivateKey,
    Signature,
    Claims,
    MalformedUrl,
    Url,
    Method,
    NotActive,
    NoTokenHash,
    TokenHash,
    Replayed,
}

impl ProofError {
    /// The message without the value it quotes, for logs and audit lines
    /// that keep `'static` reasons (and never echo what a caller sent).
    pub fn summary(&self) -> &'static str {
        match self {
            ProofError::Missing => "DPoP proof is missing",
            ProofError::Header => "DPoP header verification failure",
            ProofError::Type(_) => "Invalid or missing type in DPoP header",
            ProofError::Algorithm(_) => "Unsupported DPoP algorithm",
            ProofError::NoJwk => "No JWK in DPoP header",
            ProofError::KeyType => "Unsupported key type in DPoP header",
            ProofError::PrivateKey => "Private key material must not be present in DPoP JWK",
            ProofError::Signature => "DPoP verification failure",
            ProofError::Claims => "DPoP mandatory claims are missing",
            ProofError::MalformedUrl => "Malformed HTTP URL in DPoP proof",
            ProofError::Url => "DPoP HTTP URL mismatch",
            ProofError::Method => "DPoP HTTP method mismatch",
            ProofError::NotActive => "DPoP proof is not active",
            ProofError::NoTokenHash => "No access token hash in DPoP proof",
            ProofError::TokenHash => "DPoP proof access token hash mismatch",
            ProofError::Replayed => "DPoP proof has already been used",
        }
    }
}

/// Keycloak's full description: the summary, and the value it names for
/// a wrong type or algorithm.
impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.summary())?;
        match self {
            ProofError::Type(v) | ProofError::Algorithm(v) => write!(f, ": {v}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ProofError {}

/// What the request a proof comes with looks like.
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's absolute URL as the client addressed it (`htu`; query
    /// and fragment are ignored on both sides).
    pub url: &'a str,
    /// The access token presented with the proof, whose hash `ath` must
    /// be (at resource servers; none at the token endpoint).
    pub access_token: Option<&'a str>,
    /// Now, seconds since the epoch.
    pub now: i64,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: what `cnf.jkt` binds.
    pub jkt: String,
    /// Identifies the proof for the replay check: its `jti` with its `htu`
    /// (as Keycloak keys it), hashed.
    replay_key: [u8; 32],
    /// When the proof stops being acceptable anyway.
    expires: i64,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The base64url SHA-256 of an access token: a proof's `ath`.
pub fn access_token_hash(token: &str) -> String {
    b64(&sha256(token.as_bytes()))
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: its
/// required members, in lexicographic order, without whitespace. None for
/// a key type DPoP does not use or a member that is not a string.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = serde_json::Map::new();
    for m in members {
        canonical.insert(
            (*m).to_owned(),
            Value::String(jwk.get(*m)?.as_str()?.to_owned()),
        );
    }
    // serde_json's map keeps keys sorted, and its compact form has no
    // whitespace: exactly RFC 7638's serialisation.
    let text = serde_json::to_string(&Value::Object(canonical)).ok()?;
    Some(b64(&sha256(text.as_bytes())))
}

/// Whether the key type and curve fit the algorithm: a key is used only
/// with its own family (as `verify` does for issuers' keys).
fn key_fits(alg: Algorithm, jwk: &Value) -> bool {
    use crate::verify::{Family, family};
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match family(alg) {
        Some(Family::Rsa) => kty == Some("RSA"),
        Some(Family::Ec) => {
            let want = if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            kty == Some("EC") && crv == Some(want)
        }
        Some(Family::Okp) => kty == Some("OKP") && crv == Some("Ed25519"),
        None => false,
    }
}

/// A URL as DPoP compares them: scheme and host lower-cased, default port
/// dropped, query and fragment removed.
fn normalized(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// The algorithms a proof may use, as discovery, metadata and challenges
/// name them: the names of [`crate::verify::ASYMMETRIC`], every algorithm
/// `verify` accepts (a test keeps the two lists equal).
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A proof signed by `key` for a request (`method`, `url`, with
/// `access_token`'s hash when one goes with it), as a DPoP client makes
/// them: for Gatehouse's tests and its command-line client role.
pub fn proof(
    key: &crate::keys::SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> crate::Result<String> {
    let mut jwk = key.public_jwk().clone();
    if let Some(o) = jwk.as_object_mut() {
        for k in ["kid", "alg", "use"] {
            o.remove(k);
        }
    }
    let header = serde_json::json!({"typ": PROOF_TYPE, "alg": key.alg().as_str(), "jwk": jwk});
    let mut claims = serde_json::json!({
        "jti": gatehouse_core::id::uuid(), "htm": method, "htu": url, "iat": now,
    });
    if let Some(t) = access_token {
        claims["ath"] = Value::String(access_token_hash(t));
    }
    crate::sign::sign_with_header(key, &header, &claims)
}

/// Checks a proof against the request it came with (RFC 9449 §4.3): type,
/// algorithm, embedded public key, signature, claims, method, URL, age and
/// access-token hash. The replay check is the caller's, through a
/// [`ReplayCache`], once everything else has passed.
pub fn verify(proof: &str, want: &Expected<'_>) -> Result<Proof, ProofError> {
    let proof = proof.trim();
    if proof.is_empty() {
        return Err(ProofError::Missing);
    }
    let header: Value = proof
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice(&h).ok())
        .filter(Value::is_object)
        .ok_or(ProofError::Header)?;
    let typ = header.get("typ").and_then(Value::as_str);
    if typ != Some(PROOF_TYPE) {
        return Err(ProofError::Type(typ.unwrap_or("null").to_owned()));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| ProofError::Algorithm("null".into()))?;
    let alg = parse_alg(alg_name).map_err(|_| ProofError::Algorithm(alg_name.to_owned()))?;
    if header.get("crit").is_some() {
        return Err(ProofError::Header);
    }
    let jwk = header
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or(ProofError::NoJwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(*m).is_some()) {
        return Err(ProofError::PrivateKey);
    }
    let jkt = thumbprint(jwk).ok_or(ProofError::KeyType)?;
    if !key_fits(alg, jwk) {
        return Err(ProofError::Signature);
    }
    let key = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone())
        .ok()
        .and_then(|k| DecodingKey::from_jwk(&k).ok())
        .ok_or(ProofError::KeyType)?;
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &v)
        .map_err(|_| ProofError::Signature)?
        .claims;
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        text("jti"),
        text("htm"),
        text("htu"),
        claims.get("iat").and_then(crate::verify::numeric_date),
    ) else {
        return Err(ProofError::Claims);
    };
    let htu_normal = normalized(htu).ok_or(ProofError::MalformedUrl)?;
    if Some(&htu_normal) != normalized(want.url).as_ref() {
        return Err(ProofError::Url);
    }
    if htm != want.method {
        return Err(ProofError::Method);
    }
    if !(iat <= want.now + CLOCK_SKEW && iat >= want.now - PROOF_LIFETIME - CLOCK_SKEW) {
        return Err(ProofError::NotActive);
    }
    if let Some(token) = want.access_token {
        match claims.get("ath").and_then(Value::as_str) {
            None => return Err(ProofError::NoTokenHash),
            Some(h) if h != access_token_hash(token) => return Err(ProofError::TokenHash),
            Some(_) => {}
        }
    }
    Ok(Proof {
        jkt,
        replay_key: sha256(format!("{jti}\n{htu}").as_bytes()),
        expires: iat + PROOF_LIFETIME + CLOCK_SKEW,
    })
}

/// Proofs seen while they could still be accepted: each is accepted once
/// (RFC 9449 §11.1). Per process, as the rest of the node-local state.
pub struct ReplayCache {
    seen: Mutex<Seen>,
    /// At most this many proofs remembered; beyond it new proofs are
    /// refused rather than accepted unrecorded (which would allow replays).
    capacity: usize,
}

#[derive(Default)]
struct Seen {
    by_key: HashMap<[u8; 32], i64>,
    next_sweep: i64,
}

impl Default for ReplayCache {
    fn default() -> Self {
        // 25 s of proofs at 8 000 a second.
        ReplayCache::with_capacity(200_000)
    }
}

impl ReplayCache {
    /// A cache remembering at most `capacity` live proofs.
    pub fn with_capacity(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: Mutex::new(Seen::default()),
            capacity,
        }
    }

    /// Records `proof` as used at `now`: an error if it was used before
    /// (or if the cache is full of live proofs).
    pub fn first_use(&self, proof: &Proof, now: i64) -> Result<(), ProofError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now >= seen.next_sweep || seen.by_key.len() >= self.capacity {
            seen.by_key.retain(|_, exp| *exp >= now);
            seen.next_sweep = now + 1;
        }
        if seen
            .by_key
            .get(&proof.replay_key)
            .is_some_and(|exp| *exp >= now)
        {
            return Err(ProofError::Replayed);
        }
        if seen.by_key.len() >= self.capacity {
            return Err(ProofError::Replayed);
        }
        seen.by_key.insert(proof.replay_key, proof.expires);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
