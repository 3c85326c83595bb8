//! Verification of JWTs from any issuer against a JWKS. Only asymmetric
//! algorithms are ever accepted, and a key is used only with the algorithm
//! family of its `kty`, so `alg: none` and HMAC-signed-with-the-public-key
//! tokens are rejected by construction, whatever the configuration says.

use crate::{Error, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;

/// Every algorithm a verifier can be allowed to accept.
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parses an algorithm name, refusing anything symmetric or unknown.
pub fn parse_alg(name: &str) -> Result<Algorithm> {
    let alg: Algorithm = name
        .parse()
        .map_err(|_| Error::UnsupportedAlgorithm(name.to_owned()))?;
    if ASYMMETRIC.contains(&alg) {
        Ok(alg)
    } else {
        Err(Error::UnsupportedAlgorithm(name.to_owned()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ec,
    Okp,
}

pub(crate) fn family(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Okp),
        _ => None,
    }
}

struct Entry {
    key: DecodingKey,
    family: Family,
    /// The JWK's own `alg`, when it names one: then only that algorithm.
    alg: Option<Algorithm>,
}

/// A parsed JWKS, indexed by `kid`.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Entry>,
    /// Keys published without a `kid` (allowed when a JWKS has exactly one).
    anonymous: Vec<Entry>,
    /// One key configured as a certificate or public key: a token's `kid`
    /// names nothing here, so any `kid` (or none) is verified against it.
    pinned: bool,
}

impl KeySet {
    /// Parses a JWKS document, skipping keys that are not asymmetric signing
    /// keys (encryption keys, `oct` keys, unknown types).
    pub fn from_jwks_json(body: &[u8]) -> Result<KeySet> {
        let set: JwkSet = serde_json::from_slice(body).map_err(|e| Error::Key(e.to_string()))?;
        let mut ks = KeySet::default();
        for jwk in &set.keys {
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let fam = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            let entry = Entry {
                key,
                family: fam,
                alg,
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    ks.by_kid.insert(kid.clone(), entry);
                }
                None => ks.anonymous.push(entry),
            }
        }
        Ok(ks)
    }

    /// One public key from an X.509 certificate (base64 DER as Keycloak
    /// keeps a client's `jwt.credential.certificate`, or PEM) or a public
    /// key (PEM, or bare base64 DER as `jwt.credential.public.key`). Used for whatever `kid` a token names, as Keycloak
    /// verifies a client's signed JWTs against its configured certificate.
    pub fn from_certificate(text: &str) -> Result<KeySet> {
        use base64::Engine;
        use x509_cert::der::{Decode, asn1::ObjectIdentifier as Oid};
        let bad = |m: &str| Error::Key(m.to_owned());
        let text = text.trim();
        let is_public_key = text.starts_with("-----BEGIN PUBLIC KEY-----");
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad("certificate is not base64"))?;
        // Keycloak keeps a configured public key (`jwt.credential.public.key`)
        // as bare base64 too: a body that is no certificate may be one.
        let spki = if is_public_key {
            x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&der)
        } else {
            x509_cert::Certificate::from_der(&der)
                .map(|c| c.tbs_certificate.subject_public_key_info)
                .or_else(|_| x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&der))
        }
        .map_err(|_| bad("not an X.509 certificate or public key"))?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("public key bits"))?;
        const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
        const EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
        const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
        let (key, family) = match spki.algorithm.oid {
            RSA => (DecodingKey::from_rsa_der(bits), Family::Rsa),
            EC => (DecodingKey::from_ec_der(bits), Family::Ec),
            ED25519 => (DecodingKey::from_ed_der(bits), Family::Okp),
            _ => return Err(bad("unsupported public key algorithm")),
        };
        Ok(KeySet {
            by_kid: HashMap::new(),
            anonymous: vec![Entry {
                key,
                family,
                alg: None,
            }],
            pinned: true,
        })
    }

    /// Whether a key with this kid is present.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key `header` names, for one of the `algorithms` and of its
    /// family (the rules of `verify`).
    fn entry_for(&self, header: &jsonwebtoken::Header, algorithms: &[Algorithm]) -> Result<&Entry> {
        if header.crit.is_some() {
            return Err(Error::Critical);
        }
        if !algorithms.contains(&header.alg) {
            return Err(Error::Algorithm);
        }
        let fam = family(header.alg).ok_or(Error::Algorithm)?;
        let entry = match &header.kid {
            Some(_) if self.pinned => self.anonymous.first().ok_or(Error::UnknownKid)?,
            Some(kid) => self.by_kid.get(kid).ok_or(Error::UnknownKid)?,
            None if self.anonymous.len() + self.by_kid.len() == 1 => self
                .anonymous
                .first()
                .or_else(|| self.by_kid.values().next())
                .ok_or(Error::UnknownKid)?,
            None => return Err(Error::UnknownKid),
        };
        if entry.family != fam || entry.alg.is_some_and(|a| a != header.alg) {
            return Err(Error::Algorithm);
        }
        Ok(entry)
    }

    /// Verifies only the signature of `token` (a key of the set, one of
    /// `algorithms`, as `verify` picks them) and returns its claims
    /// unchecked: for signed objects that are not tokens, such as request
    /// objects (RFC 9101), which need not carry `exp` and whose claims
    /// their reader checks by its own rules.
    pub fn verify_signature(
        &self,
        token: &str,
        algorithms: &[Algorithm],
    ) -> Result<serde_json::Value> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Malformed)?;
        let entry = self.entry_for(&header, algorithms)?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &entry.key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => Error::BadSignature,
                ErrorKind::InvalidAlgorithm => Error::Algorithm,
                _ => Error::Malformed,
            })
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str, rules: &Rules) -> Result<serde_json::Value> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Malformed)?;
        let entry = self.entry_for(&header, &rules.algorithms)?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = rules.leeway;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        // `iss` and `aud` are checked below, once, by our stricter rules.
        v.iss = None;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &entry.key, &v).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Error::Expired,
                ErrorKind::ImmatureSignature => Error::NotYetValid,
                ErrorKind::InvalidSignature => Error::BadSignature,
                ErrorKind::InvalidAlgorithm => Error::Algorithm,
                ErrorKind::MissingRequiredClaim(c) => Error::Invalid(format!("missing {c}")),
                ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_)
                | ErrorKind::InvalidToken => Error::Malformed,
                _ => Error::Invalid("rejected".into()),
            },
        )?;
        // Not left to jsonwebtoken, which compares `iss` and `aud` only when
        // they are present and well-formed: a token without them, with
        // `"aud": 5` or with `"iss": ["evil", "<ours>"]` would pass. RFC
        // 7519 makes `iss` one StringOrURI and `aud` one or an array of
        // them; anything else is refused, and a configured check requires
        // the claim.
        if let Some(want) = &rules.issuer
            && data.claims.get("iss").and_then(|v| v.as_str()) != Some(want.as_str())
        {
            return Err(Error::Issuer);
        }
        if let Purpose::Access { id_tokens } = rules.purpose {
            match declared(header.typ.as_deref(), &data.claims) {
                Declared::Access => {}
                Declared::Id if id_tokens => {}
                Declared::Id | Declared::Other => return Err(Error::TokenType),
            }
        }
        if !rules.audiences.is_empty() {
            let ok = match data.claims.get("aud") {
                // Cognito's access tokens name their client, not an
                // audience; AWS API Gateway reads `client_id` only when
                // `aud` is absent, and so do we, only when asked to.
                None if rules.client_id_as_audience => {
                    audience_ok(data.claims.get("client_id"), &rules.audiences)
                }
                aud => audience_ok(aud, &rules.audiences),
            };
            if !ok {
                return Err(Error::Audience);
            }
        }
        Ok(data.claims)
    }
}

/// Reads a NumericDate claim (RFC 7519 §2) as whole seconds: JSON numbers
/// that are not integers are allowed there (`"exp": 1700000300.5`), and
/// PyJWT and panva/jose take them, so a `Value::as_i64` reading that turns
/// one into "missing" refuses good tokens or, worse, reads them as 0. The
/// value is floored, which is exact for the comparisons made against
/// whole-second clocks (`exp >= now` and `iat <= now`); `nbf` wants the
/// ceiling ([`numeric_date_ceil`]). Not a number, not finite or beyond i64:
/// None.
pub fn numeric_date(v: &serde_json::Value) -> Option<i64> {
    let n = v.as_number()?;
    n.as_i64().or_else(|| {
        let f = n.as_f64()?.floor();
        (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    })
}

/// [`numeric_date`] rounded up: the first whole second at or after the
/// instant, for `nbf` (a token valid from 300.5 is not valid at 300).
pub fn numeric_date_ceil(v: &serde_json::Value) -> Option<i64> {
    let floor = numeric_date(v)?;
    let frac = v.as_f64().is_some_and(|f| f > floor as f64);
    Some(if frac { floor.saturating_add(1) } else { floor })
}

/// Whether `aud` (a string or an array of strings, RFC 7519 §4.1.3) names
/// one of the accepted audiences; any other shape is refused.
fn audience_ok(aud: Option<&serde_json::Value>, accepted: &[String]) -> bool {
    let hit = |a: &str| accepted.iter().any(|x| x == a);
    match aud {
        Some(serde_json::Value::String(a)) => hit(a),
        Some(serde_json::Value::Array(list)) => {
            list.iter().all(|v| v.is_string()) && list.iter().filter_map(|v| v.as_str()).any(hit)
        }
        _ => false,
    }
}

/// What a token says it is, from the markers issuers put in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    /// An access token, or a token that says nothing about its kind.
    Access,
    /// An OpenID Connect ID token.
    Id,
    /// A refresh, logout or other token, or markers that contradict.
    Other,
}

/// Reads the explicit markers of a token's kind (RFC 8725 §3.11): the
/// header `typ` (`at+jwt` of RFC 9068, or a media type of another JWT
/// profile such as `logout+jwt`), Keycloak's `typ` claim (`Bearer`, `ID`,
/// `Refresh`, `Offline`, `Logout`), Amazon Cognito's `token_use` (`access`,
/// `id`) and the `events` claim of security event and logout tokens
/// (RFC 8417). A token without markers, as Entra ID's and Okta's are,
/// counts as an access token: for those the audience is the guard.
fn declared(header_typ: Option<&str>, claims: &serde_json::Value) -> Declared {
    let mut access = false;
    let mut id = false;
    if let Some(t) = header_typ {
        let t = t.to_ascii_lowercase();
        match t.strip_prefix("application/").unwrap_or(&t) {
            "jwt" | "jose" => {}
            "at+jwt" => access = true,
            _ => return Declared::Other,
        }
    }
    match claims.get("typ").and_then(|v| v.as_str()) {
        Some(t) if t.eq_ignore_ascii_case("bearer") => access = true,
        Some(t) if t.eq_ignore_ascii_case("id") => id = true,
        Some(t)
            if ["refresh", "offline", "logout", "serialized-id"]
                .iter()
                .any(|k| t.eq_ignore_ascii_case(k)) =>
        {
            return Declared::Other;
        }
        _ => {}
    }
    match claims.get("token_use").map(|v| v.as_str()) {
        None => {}
        Some(Some("access")) => access = true,
        Some(Some("id")) => id = true,
        Some(_) => return Declared::Other,
    }
    if claims.get("events").is_some() {
        return Declared::Other;
    }
    match (access, id) {
        (true, true) => Declared::Other,
        (_, true) => Declared::Id,
        _ => Declared::Access,
    }
}

/// Which tokens a verifier takes by what they declare themselves to be: a
/// token made for one purpose must not be accepted for another (an ID
/// token or a back-channel logout token, signed by the same issuer key,
/// replayed as an access token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// No check: the caller knows the token's kind by where it came from
    /// (an RFC 7523 client assertion is signed by the client's own key).
    Any,
    /// Access tokens; ID tokens too when `id_tokens` (AWS API Gateway's JWT
    /// authorizer takes Cognito ID tokens, and apps built on that send them).
    Access { id_tokens: bool },
}

/// What a verifier checks besides the signature.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Required `iss`; None skips the check (only for tokens whose keys
    /// already pin the issuer).
    pub issuer: Option<String>,
    /// Accepted audiences (any one); empty skips the check.
    pub audiences: Vec<String>,
    /// Accepted algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway in seconds.
    pub leeway: u64,
    /// A token without `aud` is checked by its `client_id` instead (Amazon
    /// Cognito's access tokens). Never a fallback for a wrong `aud`.
    pub client_id_as_audience: bool,
    /// Which kinds of token are accepted.
    pub purpose: Purpose,
}

impl Rules {
    /// Rules for an issuer with every asymmetric algorithm and 30 s leeway.
    pub fn for_issuer(issuer: &str) -> Rules {
        Rules {
            issuer: Some(issuer.to_owned()),
            audiences: vec![],
            algorithms: ASYMMETRIC.to_vec(),
            leeway: 30,
            client_id_as_audience: false,
            purpose: Purpose::Any,
        }
    }
}

#[cfg(test)]
mod tests;
