//! The token endpoint's `urn:ietf:params:oauth:grant-type:token-exchange`
//! (RFC 8693), as Keycloak's standard token exchange (V2) does it: a
//! service that received a user's access token trades it for one of its
//! own, optionally narrowed to the audiences of a downstream API, without
//! the user signing in again.
//!
//! Who may: a confidential client with the attribute
//! `standard.token.exchange.enabled`, and only for a token meant for it
//! (the client is in the subject token's `aud`): a token cannot be traded
//! by a party it was not given to. What comes back: an access token for
//! the same user and session, issued to the requesting client with its
//! own scopes and roles; `audience` narrows `aud` to audiences that token
//! would carry anyway (never widens it). A refresh token only where the
//! client allows it (`standard.token.exchange.enableRefreshRequestedTokenType`
//! = `SAME_SESSION`), in a session of its own that ends with the user's.
//! No delegation (`actor_token`), no impersonation of other users.

use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use crate::tokens::{Grant, granted_scope, issue};
use axum::http::StatusCode;
use gatehouse_core::model::{Client, Event, Realm, Session};
use serde_json::{Value, json};

/// The grant type.
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the subject token type, and the usual issued one.
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a refresh token as the requested type.
pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// Whether the request asks for a refresh token too (and may).
fn wants_refresh(client: &Client, form: &Form) -> Result<bool, OAuthError> {
    match form.get("requested_token_type") {
        None | Some(ACCESS_TOKEN) => Ok(false),
        Some(REFRESH_TOKEN)
            if client
                .attributes
                .get("standard.token.exchange.enableRefreshRequestedTokenType")
                .is_some_and(|v| v == "SAME_SESSION") =>
        {
            Ok(true)
        }
        Some(_) => Err(OAuthError::invalid_request(
            "requested_token_type unsupported",
        )),
    }
}

/// The requesting client's own session, linked to the user's so that it
/// ends with it, for a refresh token.
fn own_session(
    realm: &Realm,
    client: &Client,
    active: &crate::oidc::userinfo::Active,
    scope: &str,
) -> Result<Session, OAuthError> {
    let Some(subject) = &active.session else {
        return Err(OAuthError::invalid_request(
            "A refresh token needs a subject token with a session",
        ));
    };
    if scope.split(' ').any(|s| s == "offline_access") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Offline tokens cannot be obtained by token exchange",
        ));
    }
    let root = subject
        .sso_session_id
        .clone()
        .unwrap_or_else(|| subject.id.clone());
    let mut s =
        crate::oidc::token::new_session(realm, client, &active.user, scope, subject.auth_time);
    s.id = crate::oidc::token::client_session_id(&root);
    s.sso_session_id = Some(root);
    s.impersonator = subject.impersonator.clone();
    Ok(s)
}

/// The exchange.
pub async fn exchange(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    if client.public_client {
        return Err(OAuthError::unauthorized_client(
            "Public client is not allowed to exchange token",
        ));
    }
    if !client.attribute_flag("standard.token.exchange.enabled", false) {
        return Err(OAuthError::unauthorized_client(
            "Standard token exchange is not enabled for the requested client",
        ));
    }
    let token = form.require("subject_token")?;
    // Absent means an access token, as Keycloak reads it.
    if form
        .get("subject_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN)
    {
        return Err(OAuthError::invalid_request(
            "Parameter 'subject_token_type' supports access tokens only",
        ));
    }
    let with_refresh = wants_refresh(client, form)?;
    if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
        return Err(OAuthError::invalid_request(
            "Parameter 'actor_token' is not supported",
        ));
    }
    let Some(active) = crate::oidc::userinfo::active_access_token(idp, realm, token).await? else {
        return Err(OAuthError::invalid_request("Invalid token"));
    };
    let meant_for_us = match &active.claims["aud"] {
        Value::String(a) => a == &client.client_id,
        Value::Array(list) => list.iter().any(|a| a == client.client_id.as_str()),
        _ => false,
    };
    if !meant_for_us {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "Client is not within the token audience",
        ));
    }
    let scope = granted_scope(client, &idp.client_scopes(realm).await?, form.get("scope"))?;
    let audiences: Vec<String> = form
        .get("audience")
        .map(|a| a.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    let own = if with_refresh {
        Some(own_session(realm, client, &active, &scope)?)
    } else {
        None
    };
    let session = own.as_ref().or(active.session.as_ref());
    let ring = idp.keyring(realm).await?;
    let grant = Grant {
        realm,
        client,
        user: &active.user,
        session,
        scope,
        nonce: None,
        resources: audiences.clone(),
        refresh: with_refresh,
        dpop,
    };
    let mut out = issue(idp, &ring, &grant).await.map_err(|e| {
        if e.error == "invalid_target" {
            OAuthError::invalid_request(format!(
                "Requested audience not available: {}",
                audiences.join(" ")
            ))
        } else {
            e
        }
    })?;
    if let Some(o) = out.as_object_mut() {
        let issued = if with_refresh {
            REFRESH_TOKEN
        } else {
            ACCESS_TOKEN
        };
        o.insert("issued_token_type".into(), json!(issued));
        o.remove("id_token");
    }
    let mut ev = Event::user(realm, "TOKEN_EXCHANGE");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(active.user.id.clone());
    ev.session_id = session.map(|s| s.id.clone());
    if let Some(from) = active.claims["azp"].as_str() {
        ev.details
            .insert("subject_token_client_id".into(), from.into());
    }
    if !audiences.is_empty() {
        ev.details.insert("audience".into(), audiences.join(" "));
    }
    match &own {
        Some(s) => idp.store.create_session(s, &[ev]).await?,
        None => idp.record(ev).await?,
    }
    Ok(out)
}
