//! DPoP (RFC 9449) at the identity provider, as Keycloak does it: a token
//! request with a `DPoP` proof gets tokens bound to the proof's key
//! (`cnf.jkt`, `token_type` `DPoP`); a public client's refresh token is
//! bound too, so a stolen one cannot be refreshed elsewhere; a client with
//! `dpop.bound.access.tokens` must send a proof with every token request;
//! userinfo takes bound tokens under the `DPoP` scheme with a proof.
//! The admin and account APIs take them the same way ([`resource_layer`]
//! checks the proof); everything else that reads a bearer token (UMA and
//! protection APIs, registration) refuses bound tokens.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_core::model::{Client, Realm};
use gatehouse_jose::dpop::{Expected, ProofError};
use serde_json::Value;
use std::sync::Arc;

/// The client attribute that makes proofs mandatory (Keycloak's name).
pub const CLIENT_ATTRIBUTE: &str = "dpop.bound.access.tokens";
/// The `typ` claim of a bound access token, and its `token_type`.
pub const TOKEN_TYPE: &str = "DPoP";

/// An access token's `typ` claim and `token_type`: `DPoP` when it is bound
/// to a key, else `Bearer`.
pub fn token_type(bound: bool) -> &'static str {
    if bound { TOKEN_TYPE } else { "Bearer" }
}

/// Whether the client must bind its tokens.
pub fn required(client: &Client) -> bool {
    client
        .attributes
        .get(CLIENT_ATTRIBUTE)
        .is_some_and(|v| v == "true")
}

/// The request's one proof, if any (two are an error: which one counts?).
fn header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut all = headers.get_all("dpop").iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ProofError::Header);
    }
    first.to_str().map(Some).map_err(|_| ProofError::Header)
}

/// Verifies the request's proof for `method` at `url` (with `access_token`
/// at resource endpoints) and spends it. The proven key's thumbprint.
pub fn prove(
    idp: &Idp,
    headers: &HeaderMap,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<String, ProofError> {
    let proof = header(headers)?.ok_or(ProofError::Missing)?;
    let now = gatehouse_core::time::now();
    let want = Expected {
        method,
        url,
        access_token,
        now,
    };
    let proven = gatehouse_jose::dpop::verify(proof, &want)?;
    idp.dpop_replay.first_use(&proven, now)?;
    Ok(proven.jkt)
}

/// A refused proof at the token endpoint: Keycloak 26.8 answers 400
/// `invalid_request` with its description (RFC 9449 §5 would say
/// `invalid_dpop_proof`; clients read Keycloak's).
pub fn invalid(e: &ProofError) -> OAuthError {
    OAuthError::invalid_request(e.to_string())
}

/// At the token endpoint: the key the new tokens are bound to, when the
/// request carries a proof (or must, for a client that requires DPoP).
pub fn at_token_endpoint(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    headers: &HeaderMap,
) -> Result<Option<String>, OAuthError> {
    at_endpoint(idp, realm, headers, "token", required(client))
}

/// The authorization request parameter binding the code to a key (RFC
/// 9449 §10).
pub const JKT_PARAM: &str = "dpop_jkt";

/// At the pushed authorization request endpoint: the key of the request's
/// proof, if it carries one.
pub fn at_par_endpoint(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<Option<String>, OAuthError> {
    at_endpoint(idp, realm, headers, "ext/par/request", false)
}

/// The proof of a POST to the realm's endpoint `path` (under
/// `protocol/openid-connect/`), checked and spent when sent or `required`.
fn at_endpoint(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    path: &str,
    required: bool,
) -> Result<Option<String>, OAuthError> {
    let present = header(headers).map_err(|e| invalid(&e))?.is_some();
    if !present && !required {
        return Ok(None);
    }
    let url = format!("{}/protocol/openid-connect/{path}", idp.issuer(&realm.name));
    prove(idp, headers, "POST", &url, None)
        .map(Some)
        .map_err(|e| invalid(&e))
}

/// Redeeming a code bound to a key (`dpop_jkt`): the token request's
/// proof must be of that key (Keycloak's answers).
pub fn check_code(bound: Option<&str>, proven: Option<&str>) -> Result<(), OAuthError> {
    match (bound, proven) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OAuthError::invalid_request("DPoP Proof missing")),
        (Some(b), Some(p)) if b == p => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "DPoP Proof public key thumbprint does not match dpop_jkt",
        )),
    }
}

/// The key a token or refresh token is bound to (`cnf.jkt`).
pub fn bound_key(claims: &Value) -> Option<&str> {
    claims.pointer("/cnf/jkt").and_then(Value::as_str)
}

/// A refresh: a bound refresh token needs a proof of its own key
/// (Keycloak's `invalid_grant` answers when it has none, or another's).
pub fn check_refresh(refresh_claims: &Value, proven: Option<&str>) -> Result<(), OAuthError> {
    match (bound_key(refresh_claims), proven) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OAuthError::invalid_grant("DPoP proof is missing")),
        (Some(bound), Some(p))
            if gatehouse_core::id::same_bytes(bound.as_bytes(), p.as_bytes()) =>
        {
            Ok(())
        }
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "DPoP confirmation doesn't match DPoP proof",
        )),
    }
}

/// The `DPoP` challenge of a refusal at a resource endpoint (Keycloak's
/// order: the algorithms, then the realm and the error).
pub fn challenge(realm: &str, error: &str, description: &str) -> String {
    format!(
        "DPoP algs=\"{}\", realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\"",
        gatehouse_jose::dpop::ALGORITHMS.join(" ")
    )
}

/// Set by [`resource_layer`] on a request whose DPoP proof it checked:
/// the proof's key thumbprint. The layer removes it from every request it
/// sees first, so on the routes that read it only the layer can set it.
pub const PROVEN: HeaderName = HeaderName::from_static("x-gatehouse-dpop-proven");

/// Checks the DPoP proof of an admin or account API request made with
/// `Authorization: DPoP` (the layer sits on those two routers only, as
/// Keycloak 26.8 takes bound tokens there): for this method, URL and
/// token, used once. The handlers then accept the token if it is bound to
/// the proven key (`userinfo::request_token`); a request whose proof
/// fails goes on unmarked and is refused there as unauthenticated.
pub async fn resource_layer(State(idp): State<Arc<Idp>>, mut req: Request, next: Next) -> Response {
    req.headers_mut().remove(&PROVEN);
    let proven = crate::oidc::userinfo::scheme_token(req.headers(), "dpop").and_then(|token| {
        let url = format!("{}{}", idp.public_url, req.uri().path());
        prove(
            &idp,
            req.headers(),
            req.method().as_str(),
            &url,
            Some(token),
        )
        .ok()
    });
    if let Some(v) = proven.and_then(|jkt| HeaderValue::from_str(&jkt).ok()) {
        req.headers_mut().insert(PROVEN, v);
    }
    next.run(req).await
}
