//! Logging out at the provider too. A browser session that a provider's
//! login started keeps that provider's ID token; when RP-initiated logout
//! ends the session here, the browser goes on to the provider's
//! `logoutUrl` (with the token as `id_token_hint`), which sends it back to
//! `/realms/{realm}/broker/{alias}/endpoint/logout_response`, and from
//! there to where the logout here was to end (Keycloak's browser-initiated
//! identity-provider logout). A provider without `logoutUrl` is left alone.

use crate::error::OAuthError;
use crate::oidc::auth::{page, redirect, with_params};
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::model::{BrokerSession, Realm};
use gatehouse_store::CodeRecord;
use serde_json::{Value, json};
use std::sync::Arc;

/// How long the provider may take to send the browser back.
const LOGOUT_LIFESPAN: i64 = 1800;

/// Where the browser goes after a logout here ended a session `b` that a
/// provider's login started: that provider's logout, coming back through
/// [`response`] to `next` (the client's post-logout redirect, or our
/// "logged out" page). None when the provider is gone or has no
/// `logoutUrl`.
pub async fn via_provider(
    idp: &Idp,
    realm: &Realm,
    b: &BrokerSession,
    next: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let Some(p) = super::provider(realm, &b.alias) else {
        return Ok(None);
    };
    let Some(url) = &p.logout_url else {
        return Ok(None);
    };
    let state = gatehouse_core::id::token();
    idp.store
        .put_code(&CodeRecord {
            code: format!("brokerlogout:{state}"),
            realm_id: realm.id.clone(),
            data: json!({"alias": p.alias, "next": next}).to_string(),
            expires: gatehouse_core::time::now() + LOGOUT_LIFESPAN,
        })
        .await?;
    let back = format!(
        "{}/logout_response",
        super::redirect_uri(idp, realm, &p.alias)
    );
    let mut params = vec![
        ("post_logout_redirect_uri", back.as_str()),
        ("state", &state),
    ];
    if p.send_id_token_on_logout && !b.id_token.is_empty() {
        params.push(("id_token_hint", &b.id_token));
    }
    if p.send_client_id_on_logout {
        params.push(("client_id", &p.client_id));
    }
    Ok(Some(with_params(url, &params)))
}

/// `GET /realms/{realm}/broker/{alias}/endpoint/logout_response?state=...`:
/// back from the provider's logout, on to where the logout here was going.
pub async fn response(
    State(idp): State<Arc<Idp>>,
    Path((realm, alias)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, OAuthError> {
    let logged_out = || page(StatusCode::OK, "Logged out", "<h1>You are logged out</h1>");
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(logged_out());
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(rec) = idp
        .store
        .take_code(&format!("brokerlogout:{}", q.get("state").unwrap_or("")))
        .await?
    else {
        return Ok(logged_out());
    };
    let data: Value = serde_json::from_str(&rec.data).unwrap_or(Value::Null);
    let ours = rec.realm_id == realm.id
        && rec.expires >= gatehouse_core::time::now()
        && data["alias"].as_str() == Some(alias.as_str());
    match data["next"].as_str() {
        // The next hop was checked against the client's registered
        // post-logout URIs before it was stored.
        Some(next) if ours => Ok(redirect(next)),
        _ => Ok(logged_out()),
    }
}
