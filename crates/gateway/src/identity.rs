//! The caller's identity as the gateway sees it, with claims of any issuer's
//! shape (Gatehouse, Keycloak, Entra ID, Okta, Cognito) flattened into lists.

use gatehouse_jose::verify::numeric_date;
use serde_json::Value;

/// A verified caller.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub sid: Option<String>,
    pub jti: Option<String>,
    /// Every claim, for claim conditions.
    pub claims: Value,
    /// Which authorizer accepted the caller.
    pub authorizer: String,
    /// SHA-256 of the credential (token or API key) this identity was
    /// built from. With `authorizer` it stands for the whole identity, so
    /// per-caller caches (Cedar decisions) key on 32 bytes instead of
    /// hashing every claim on each request.
    pub credential: [u8; 32],
    /// When the credential was verified (Unix seconds): a connection's
    /// token memo honours the same [`crate::authn::jwt::CACHE_TTL`] as the
    /// shared cache, counted from here.
    pub verified_at: i64,
    /// The `X-Gatehouse-*` headers for upstreams, encoded on first use.
    pub headers: std::sync::OnceLock<Vec<(http::HeaderName, http::HeaderValue)>>,
    /// The same headers as HTTP/1.1 header lines, for requests written
    /// straight to an upstream connection: one copy per request instead of
    /// six header-map inserts and six lines written from them.
    pub wire: std::sync::OnceLock<Vec<u8>>,
    /// The caller's fields of an audit line (authorizer, subject, username,
    /// client id) as JSON, encoded on first use: the same for every request
    /// the token makes, and four escaped strings a line otherwise.
    pub audit: std::sync::OnceLock<Vec<u8>>,
    /// The key the token is bound to (`cnf`), which the caller must prove
    /// it holds on every request.
    pub binding: Binding,
}

/// What a token's `cnf` claim (RFC 7800) binds it to. A bound token is
/// worth nothing without its key, so honouring it as a plain bearer token
/// would hand a thief what the issuer meant to withhold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Binding {
    /// No `cnf`: a bearer token.
    #[default]
    None,
    /// A DPoP key (RFC 9449 `cnf.jkt`): each request carries a proof.
    Dpop(String),
    /// Some other confirmation (a client certificate's `x5t#S256`, RFC
    /// 8705, or a method Gatehouse does not know): it cannot be checked
    /// here, so the token is refused.
    Unverifiable,
}

impl Binding {
    /// Reads the `cnf` claim.
    pub fn of(claims: &Value) -> Binding {
        let Some(cnf) = claims.get("cnf") else {
            return Binding::None;
        };
        let Some(o) = cnf.as_object() else {
            return Binding::Unverifiable;
        };
        match (o.get("jkt").and_then(Value::as_str), o.len()) {
            (Some(jkt), 1) if !jkt.is_empty() => Binding::Dpop(jkt.to_owned()),
            _ => Binding::Unverifiable,
        }
    }
}

/// Looks a claim up by name, or by dotted path (`realm_access.roles`) when
/// no claim has that literal name.
pub fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut cur = claims;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// A claim as a list of strings: arrays as they are, a string split on
/// whitespace when `split` (scopes), else as one item; an object as its
/// keys, because that is how Keycloak's `organization` claim names the
/// caller's organizations once its mapper adds their ids or attributes
/// (`{"acme": {"id": ...}}`), so one condition holds for both forms.
pub fn claim_strings(claims: &Value, path: &str, split: bool) -> Vec<String> {
    match claim(claims, path) {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) if split => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Bool(b)) => vec![b.to_string()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => vec![],
    }
}

fn union(claims: &Value, paths: &[String], split: bool) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for p in paths {
        for v in claim_strings(claims, p, split) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// Builds an identity from verified claims with an authorizer's mapping.
pub fn from_claims(
    cfg: &crate::config::AuthorizerConfig,
    authorizer: &str,
    credential: [u8; 32],
    claims: Value,
) -> Option<Identity> {
    let subject = claims.get("sub").and_then(Value::as_str)?.to_owned();
    let first = |paths: &[String]| {
        paths
            .iter()
            .find_map(|p| claim(&claims, p).and_then(Value::as_str).map(str::to_owned))
    };
    Some(Identity {
        issuer: claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        subject,
        username: first(&cfg.username_claims),
        client_id: first(&cfg.client_claims),
        groups: union(&claims, &cfg.groups_claims, false),
        roles: union(&claims, &cfg.roles_claims, false),
        scopes: union(&claims, &cfg.scope_claims, true),
        audiences: claim_strings(&claims, "aud", false),
        exp: claims.get("exp").and_then(numeric_date).unwrap_or(0),
        iat: claims.get("iat").and_then(numeric_date).unwrap_or(0),
        sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
        jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        binding: Binding::of(&claims),
        claims,
        authorizer: authorizer.to_owned(),
        credential,
        verified_at: gatehouse_core::time::now(),
        headers: Default::default(),
        wire: Default::default(),
        audit: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> crate::config::AuthorizerConfig {
        crate::config::GatewayFile::parse(
            "[authorizers.a]\ntype = \"jwt\"\nissuer = \"http://x\"\n",
        )
        .expect("parse")
        .authorizers
        .remove("a")
        .expect("a")
    }

    #[test]
    fn token_shapes_of_common_issuers_flatten() {
        let kc = json!({"sub": "1", "scope": "openid orders:read", "groups": ["sales"],
            "realm_access": {"roles": ["admin"]}, "preferred_username": "alice", "azp": "app"});
        let i = from_claims(&cfg(), "a", [0; 32], kc).expect("id");
        assert_eq!(i.scopes, vec!["openid", "orders:read"]);
        assert_eq!(
            (i.groups, i.roles),
            (vec!["sales".to_owned()], vec!["admin".to_owned()])
        );
        assert_eq!(
            (i.username.as_deref(), i.client_id.as_deref()),
            (Some("alice"), Some("app"))
        );
        let entra = json!({"sub": "2", "scp": "Orders.Read", "roles": ["Writer"], "appid": "c1", "upn": "bob@x"});
        let i = from_claims(&cfg(), "a", [0; 32], entra).expect("id");
        assert_eq!(
            (i.scopes, i.roles),
            (vec!["Orders.Read".to_owned()], vec!["Writer".to_owned()])
        );
        let cognito =
            json!({"sub": "3", "cognito:groups": ["ops"], "client_id": "c2", "scope": "x/y"});
        let i = from_claims(&cfg(), "a", [0; 32], cognito).expect("id");
        assert_eq!(i.groups, vec!["ops"]);
        let okta = json!({"sub": "4", "scp": ["a", "b"]});
        assert_eq!(
            from_claims(&cfg(), "a", [0; 32], okta).expect("id").scopes,
            vec!["a", "b"]
        );
        assert!(from_claims(&cfg(), "a", [0; 32], json!({"no": "sub"})).is_none());
    }

    #[test]
    fn confirmation_claims_bind_or_make_a_token_unusable() {
        let b = |c: Value| Binding::of(&json!({"sub": "1", "cnf": c}));
        assert_eq!(Binding::of(&json!({"sub": "1"})), Binding::None);
        assert_eq!(b(json!({"jkt": "abc"})), Binding::Dpop("abc".into()));
        // Keycloak adds no other member; anything else is a binding we
        // cannot check (and must not ignore).
        for other in [
            json!({"x5t#S256": "abc"}),
            json!({"jkt": "abc", "x5t#S256": "def"}),
            json!({"jkt": ""}),
            json!({"jkt": 5}),
            json!("abc"),
            json!(null),
            json!({}),
        ] {
            assert_eq!(b(other.clone()), Binding::Unverifiable, "{other}");
        }
    }
}
