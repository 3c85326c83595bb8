//! `GET|POST /realms/{realm}/protocol/openid-connect/logout`.
//!
//! Two forms, as in Keycloak: RP-initiated logout from a browser
//! (`id_token_hint`, `post_logout_redirect_uri`, `state`), which ends the SSO
//! session and redirects only to a URI registered for the client; and the
//! adapters' back-channel form (POST with `refresh_token` and client
//! credentials), answered with 204. A browser session a provider's login
//! started goes on to that provider's logout (`crate::broker::logout`).

use crate::error::OAuthError;
use crate::oidc::auth::{
    SSO_COOKIE, clear_sso_cookies, cookie, id_token_hint, page, sso_session, with_params,
};
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::oidc::frontchannel_logout;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::Event;
use std::sync::Arc;

/// The logout endpoint.
pub async fn handle(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let params = if body.is_empty() {
        Form::parse_query(query.unwrap_or_default().as_bytes())?
    } else {
        Form::parse(&headers, &body)?
    };
    let ring = idp.keyring(&realm).await?;

    // Back-channel logout by refresh token.
    if let Some(rt) = params.get("refresh_token") {
        let client = client_auth::authenticate(&idp, &realm, &headers, &params).await?;
        let c = gatehouse_jose::sign::verify_hs512(&ring.hs_secret, rt)
            .map_err(|_| OAuthError::invalid_grant("Invalid refresh token"))?;
        if c["azp"].as_str() != Some(client.client_id.as_str()) {
            return Err(OAuthError::invalid_grant("Invalid refresh token"));
        }
        if let Some(sid) = c["sid"].as_str() {
            let mut ev = Event::user(&realm, "LOGOUT");
            ev.client_id = Some(client.client_id.clone());
            ev.session_id = Some(sid.to_owned());
            ev.user_id = c["sub"].as_str().map(str::to_owned);
            let ended = idp.store.delete_session(sid, &[ev]).await?;
            idp.sessions_ended(&realm, &ended).await;
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }

    // RP-initiated logout.
    let mut client_id = params.get("client_id").map(str::to_owned);
    let mut sid_from_hint = None;
    if let Some(hint) = params.get("id_token_hint") {
        let Some(c) = id_token_hint(&ring, &idp, &realm, hint) else {
            return Ok(error("Invalid parameter: id_token_hint"));
        };
        let aud = c["azp"].as_str().or(c["aud"].as_str()).map(str::to_owned);
        if client_id.is_some() && aud != client_id {
            return Ok(error("Invalid parameter: id_token_hint"));
        }
        client_id = aud;
        sid_from_hint = c["sid"].as_str().map(str::to_owned);
    }
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(cid) = &client_id else {
                return Ok(error(
                    "Either the parameter client_id or id_token_hint is required when post_logout_redirect_uri is used.",
                ));
            };
            let Some(client) = idp.store.client_by_client_id(&realm.id, cid).await? else {
                return Ok(error("Invalid redirect uri"));
            };
            let allowed = match client.attributes.get("post.logout.redirect.uris") {
                Some(list) if list != "+" => list
                    .split("##")
                    .any(|p| gatehouse_core::model::redirect_uri_matches(p, uri)),
                _ => client.redirect_uri_allowed(uri),
            };
            if !allowed {
                return Ok(error("Invalid redirect uri"));
            }
            Some(uri.to_owned())
        }
    };
    let sso = sso_session(&idp, &realm, &headers).await?;
    // A session a provider's login started: the provider's logout next.
    let brokered = sso.as_ref().and_then(|s| s.broker.clone());
    let mut all_ended = Vec::new();
    for sid in [sid_from_hint, sso.map(|s| s.id)].into_iter().flatten() {
        let mut ev = Event::user(&realm, "LOGOUT");
        ev.client_id = client_id.clone();
        ev.session_id = Some(sid.clone());
        let ended = idp.store.delete_session(&sid, &[ev]).await?;
        idp.sessions_ended(&realm, &ended).await;
        all_ended.extend(ended);
    }
    let mut redirect = redirect.map(|u| match params.get("state") {
        Some(s) => with_params(&u, &[("state", s)]),
        None => u,
    });
    if let Some(b) = &brokered
        && let Some(via) =
            crate::broker::logout::via_provider(&idp, &realm, b, redirect.as_deref()).await?
    {
        redirect = Some(via);
    }
    let frames = frontchannel_logout::frames(&idp, &realm, &all_ended).await;
    let mut resp = match redirect {
        _ if !frames.is_empty() => frontchannel_logout::logout_page(&frames, redirect.as_deref()),
        Some(u) => crate::oidc::auth::redirect(&u),
        None => page(StatusCode::OK, "Logged out", "<h1>You are logged out</h1>"),
    };
    if cookie(&headers, SSO_COOKIE).is_some() {
        for c in clear_sso_cookies(&idp, &realm) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    Ok(resp)
}

fn error(msg: &str) -> Response {
    crate::oidc::auth::sorry_page(StatusCode::BAD_REQUEST, msg)
}
