//! `GET|POST /realms/{realm}/protocol/openid-connect/userinfo` (OIDC Core
//! §5.3), and the check every endpoint uses to decide whether one of our
//! access tokens is still active.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Realm, User};
use serde_json::Value;
use std::sync::Arc;

/// An active access token of this realm: its claims and its user.
pub struct Active {
    pub claims: Value,
    pub user: User,
    /// The token's session, when it names one (`sid`).
    pub session: Option<gatehouse_core::model::Session>,
}

/// Checks signature, issuer, expiry, type, revocation, session and user.
/// None means "not active" for any reason (the reason is logged at debug).
/// A DPoP-bound token is never active here: the callers read bearer
/// tokens and check no proof of its key.
pub async fn active_access_token(
    idp: &Idp,
    realm: &Realm,
    token: &str,
) -> Result<Option<Active>, OAuthError> {
    active_token(idp, realm, token, false).await
}

/// [`active_access_token`], DPoP-bound tokens included when `bound`: for
/// callers that check the proof themselves (userinfo) or need none
/// (introspection, where an authenticated client asks about a token).
pub async fn active_token(
    idp: &Idp,
    realm: &Realm,
    token: &str,
    bound: bool,
) -> Result<Option<Active>, OAuthError> {
    if token.len() > 16 * 1024 {
        return Ok(None);
    }
    let ring = idp.keyring(realm).await?;
    let rules = gatehouse_jose::verify::Rules::for_issuer(&idp.issuer(&realm.name));
    let claims = match ring.verifier.verify(token, &rules) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(reason = %e, "token not active");
            return Ok(None);
        }
    };
    let typ_ok = match claims["typ"].as_str() {
        Some("Bearer") => claims.get("cnf").is_none() || bound,
        Some(crate::oidc::dpop::TOKEN_TYPE) => bound,
        _ => false,
    };
    if !typ_ok {
        return Ok(None);
    }
    // Issued before the realm's or its client's "Revocation: set to now".
    let iat = gatehouse_jose::verify::numeric_date(&claims["iat"]).unwrap_or(0);
    let client = match claims["azp"].as_str() {
        Some(azp) => idp.client(realm, azp).await?,
        None => None,
    };
    if crate::not_before::too_early(realm, client.as_ref(), iat) {
        return Ok(None);
    }
    if let Some(jti) = claims["jti"].as_str()
        && idp.store.is_revoked(jti).await?
    {
        return Ok(None);
    }
    let session = match claims["sid"].as_str() {
        Some(sid) => match idp.store.session(sid).await? {
            Some(s) => Some(s),
            None => return Ok(None),
        },
        None => None,
    };
    let Some(sub) = claims["sub"].as_str() else {
        return Ok(None);
    };
    let user = match idp.store.user(&realm.id, sub).await? {
        Some(u) => Some(u),
        None => pairwise_user(idp, realm, &claims, session.as_ref(), sub).await?,
    };
    match user {
        Some(user) if user.enabled => Ok(Some(Active {
            claims,
            user,
            session,
        })),
        _ => Ok(None),
    }
}

/// The user behind a pairwise `sub` (`pairwise.rs`): the token's session
/// user, or for a session-less token the client's service account,
/// provided the token's client (`azp`) does see that user as `sub`.
async fn pairwise_user(
    idp: &Idp,
    realm: &Realm,
    claims: &Value,
    session: Option<&gatehouse_core::model::Session>,
    sub: &str,
) -> Result<Option<User>, OAuthError> {
    let Some(client) = idp
        .client(realm, claims["azp"].as_str().unwrap_or_default())
        .await?
    else {
        return Ok(None);
    };
    if crate::pairwise::mapper_of(&client).is_none() {
        return Ok(None);
    }
    let candidate = match session {
        Some(s) => idp.store.user(&realm.id, &s.user_id).await?,
        None => {
            idp.store
                .service_account_user(&realm.id, &client.id)
                .await?
        }
    };
    Ok(candidate.filter(|u| crate::pairwise::names(&client, &u.id, sub)))
}

/// Extracts a bearer token from `Authorization`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    scheme_token(headers, "bearer")
}

/// The access token of an admin or account API request: a bearer token,
/// or a DPoP-bound one whose proof `dpop::resource_layer` checked.
#[derive(Debug, Clone, Copy)]
pub struct RequestToken<'a> {
    pub token: &'a str,
    /// The key the request proved it holds (DPoP scheme only).
    pub proven: Option<&'a str>,
}

/// The request's [`RequestToken`], if it carries one.
pub fn request_token(headers: &HeaderMap) -> Option<RequestToken<'_>> {
    if let Some(token) = bearer(headers) {
        return Some(RequestToken {
            token,
            proven: None,
        });
    }
    let token = scheme_token(headers, "dpop")?;
    let proven = headers.get(&crate::oidc::dpop::PROVEN)?.to_str().ok()?;
    Some(RequestToken {
        token,
        proven: Some(proven),
    })
}

/// [`active_access_token`] for a [`RequestToken`]: a bearer token must be
/// unbound, a DPoP one bound to the key its request proved.
pub async fn active_request_token(
    idp: &Idp,
    realm: &Realm,
    t: RequestToken<'_>,
) -> Result<Option<Active>, OAuthError> {
    let Some(proven) = t.proven else {
        return active_access_token(idp, realm, t.token).await;
    };
    Ok(active_token(idp, realm, t.token, true)
        .await?
        .filter(|a| crate::oidc::dpop::bound_key(&a.claims) == Some(proven)))
}

/// The token of `Authorization` when it uses `scheme`.
pub(crate) fn scheme_token<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, tok) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| tok.trim())
}

/// The userinfo endpoint. The token comes in the header or, for POST, as
/// the `access_token` form field (RFC 6750 §2.2). A client whose
/// `user.info.response.signature.alg` names an algorithm gets a signed JWT
/// (`application/jwt`, with `iss` and `aud`, OIDC Core §5.3.2), as from
/// Keycloak; others plain JSON.
pub async fn handle(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let form_token = if body.is_empty() {
        None
    } else {
        crate::oidc::form::Form::parse(&headers, &body)
            .ok()
            .and_then(|f| f.get("access_token").map(str::to_owned))
    };
    let unauthorized = |code: &'static str, desc: &str| {
        let mut e = OAuthError::new(StatusCode::UNAUTHORIZED, code, desc);
        e.www_authenticate = Some(format!(
            "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{desc}\"",
            realm.name
        ));
        e
    };
    let dpop_token = scheme_token(&headers, "dpop");
    let header_token = bearer(&headers).or(dpop_token);
    let token = match (header_token, form_token.as_deref()) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => return Err(OAuthError::invalid_request("Token given twice")),
        (None, None) => return Err(unauthorized("invalid_request", "Missing bearer token")),
    };
    let Some(active) = active_token(&idp, &realm, token, true).await? else {
        return Err(unauthorized("invalid_token", "Token verification failed"));
    };
    // RFC 9449 §7: a bound token only under the DPoP scheme with a proof
    // of its key for this request; the DPoP scheme only with a bound token.
    let binding_ok = match (crate::oidc::dpop::bound_key(&active.claims), dpop_token) {
        (None, None) => true,
        (Some(jkt), Some(_)) => {
            let url = format!(
                "{}/protocol/openid-connect/userinfo",
                idp.issuer(&realm.name)
            );
            crate::oidc::dpop::prove(&idp, &headers, method.as_str(), &url, Some(token))
                .is_ok_and(|p| gatehouse_core::id::same_bytes(p.as_bytes(), jkt.as_bytes()))
        }
        _ => false,
    };
    if !binding_ok {
        let desc = "DPoP proof and token binding verification failed";
        let mut e = unauthorized("invalid_token", desc);
        // Answered in the scheme the request used, as Keycloak does.
        if dpop_token.is_some() {
            e.www_authenticate = Some(crate::oidc::dpop::challenge(
                &realm.name,
                "invalid_token",
                desc,
            ));
        }
        return Err(e);
    }
    let azp = active.claims["azp"].as_str().unwrap_or_default();
    let Some(client) = idp.store.client_by_client_id(&realm.id, azp).await? else {
        return Err(unauthorized("invalid_token", "Client not found"));
    };
    let scope = active.claims["scope"].as_str().unwrap_or_default();
    let mut v = crate::tokens::userinfo(
        &idp,
        &realm,
        &client,
        (&active.user, active.session.as_ref()),
        scope,
    )
    .await?;
    if crate::keyring::named_alg(&client, crate::tokens::USERINFO_ALG).is_none() {
        return Ok(Json(v).into_response());
    }
    let ring = idp.keyring(&realm).await?;
    let signer =
        crate::keyring::client_signer(&idp, &realm, &ring, &client, crate::tokens::USERINFO_ALG)
            .await?;
    if let Some(m) = v.as_object_mut() {
        m.insert("iss".into(), idp.issuer(&realm.name).into());
        m.insert("aud".into(), client.client_id.clone().into());
    }
    let jwt = gatehouse_jose::sign::sign(signer.as_ref(), &v)?;
    Ok(([(header::CONTENT_TYPE, "application/jwt")], jwt).into_response())
}
