//! `POST /realms/{realm}/protocol/openid-connect/revoke` (RFC 7009).
//! Revoking a refresh token ends its session (and so every token of it);
//! revoking an access token puts its `jti` on the revocation list until it
//! expires. Unknown or invalid tokens answer 200, as the RFC requires.

use crate::error::OAuthError;
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use gatehouse_core::model::Event;
use std::sync::Arc;

/// The revocation endpoint.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let form = Form::parse(&headers, &body)?;
    let client = client_auth::authenticate(&idp, &realm, &headers, &form).await?;
    let token = form.require("token")?;
    if let Some(h) = form.get("token_type_hint")
        && h != "access_token"
        && h != "refresh_token"
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "Unsupported token_type_hint",
        ));
    }
    let ring = idp.keyring(&realm).await?;
    let mut ev = Event::user(&realm, "REVOKE_GRANT");
    ev.client_id = Some(client.client_id.clone());
    if let Ok(c) = gatehouse_jose::sign::verify_hs512(&ring.hs_secret, token) {
        if c["azp"].as_str() != Some(client.client_id.as_str()) {
            return Err(OAuthError::unauthorized_client(
                "Token not issued to this client",
            ));
        }
        if let Some(sid) = c["sid"].as_str() {
            ev.session_id = Some(sid.to_owned());
            ev.user_id = c["sub"].as_str().map(str::to_owned);
            let ended = idp.store.delete_session(sid, &[ev]).await?;
            idp.sessions_ended(&realm, &ended).await;
        }
        return Ok(StatusCode::OK);
    }
    let rules = gatehouse_jose::verify::Rules::for_issuer(&idp.issuer(&realm.name));
    if let Ok(c) = ring.verifier.verify(token, &rules) {
        if c["azp"].as_str() != Some(client.client_id.as_str()) {
            return Err(OAuthError::unauthorized_client(
                "Token not issued to this client",
            ));
        }
        if let (Some(jti), Some(exp)) = (c["jti"].as_str(), c["exp"].as_i64()) {
            ev.user_id = c["sub"].as_str().map(str::to_owned);
            ev.details.insert("token_id".into(), jti.to_owned());
            idp.store.revoke_token(&realm.id, jti, exp, &[ev]).await?;
            idp.revocations.token(jti, exp);
        }
    }
    Ok(StatusCode::OK)
}
