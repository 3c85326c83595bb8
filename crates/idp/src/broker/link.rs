//! `GET /realms/{realm}/broker/{alias}/link`: Keycloak's client-initiated
//! account linking. A signed-in user (SSO cookie) is sent by an
//! application, or by the Account API's `linked-accounts/{alias}`, to link
//! their account at a provider: the request names the client, a redirect
//! URI registered for it, a nonce and
//! `hash = base64url(sha256(nonce + session id + client_id + alias))`, so
//! only a client holding the user's session can start it. After the
//! provider vouches for the person, the link is added and the browser
//! goes back to the redirect URI (with `link_error` when it could not be).

use super::exchange::{self, Brokered};
use super::{Outbound, redirect_uri};
use crate::error::OAuthError;
use crate::oidc::auth::{redirect, sso_session, with_params};
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Event, Realm, Session};
use gatehouse_store::CodeRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A link in progress, kept with the provider's `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRequest {
    user_id: String,
    /// The browser session that asked: the answer must come back to it.
    session_id: String,
    client_id: String,
    redirect_uri: String,
}

/// The hash a client sends to start a link for session `session`.
pub fn hash(nonce: &str, session: &str, client_id: &str, alias: &str) -> String {
    use base64::Engine;
    let input = format!("{nonce}{session}{client_id}{alias}");
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// How long a link may take, as a login.
const LINK_LIFESPAN: i64 = 1800;

fn back(to: &str, error: Option<&str>) -> Response {
    match error {
        None => redirect(to),
        Some(e) => redirect(&with_params(to, &[("link_error", e)])),
    }
}

/// The session ids a client may have hashed for the browser session `sso`:
/// its own (Keycloak's `session_state`) and the client's sessions started
/// from it (the `sid` of that client's tokens).
async fn session_ids(idp: &Idp, sso: &Session, client_id: &str) -> Result<Vec<String>, OAuthError> {
    let mut ids = vec![sso.id.clone()];
    ids.extend(
        idp.store
            .user_sessions(&sso.user_id)
            .await?
            .into_iter()
            .filter(|s| s.client_id == client_id && s.sso_session_id.as_deref() == Some(&sso.id))
            .map(|s| s.id),
    );
    Ok(ids)
}

/// `GET /realms/{realm}/broker/{alias}/link?client_id&redirect_uri&nonce&hash`.
pub async fn start(
    State(idp): State<Arc<Idp>>,
    Path((realm, alias)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(crate::oidc::auth::sorry_page(
            StatusCode::NOT_FOUND,
            "Realm does not exist",
        ));
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(client) = idp
        .client(&realm, q.get("client_id").unwrap_or(""))
        .await?
        .filter(|c| c.enabled)
    else {
        return Ok(crate::oidc::auth::sorry_page(
            StatusCode::BAD_REQUEST,
            "Client not found.",
        ));
    };
    let Some(to) = q
        .get("redirect_uri")
        .filter(|u| client.redirect_uri_allowed(u))
    else {
        return Ok(crate::oidc::auth::sorry_page(
            StatusCode::BAD_REQUEST,
            "Invalid parameter: redirect_uri",
        ));
    };
    let Some(p) = super::provider(&realm, &alias).filter(|p| p.enabled) else {
        return Ok(back(to, Some("invalid_provider")));
    };
    let Some(sso) = sso_session(&idp, &realm, &headers).await? else {
        return Ok(back(to, Some("not_logged_in")));
    };
    let (nonce, sent) = (q.get("nonce").unwrap_or(""), q.get("hash").unwrap_or(""));
    let ok = !nonce.is_empty()
        && session_ids(&idp, &sso, &client.client_id)
            .await?
            .iter()
            .any(|sid| {
                bool::from(
                    hash(nonce, sid, &client.client_id, &alias)
                        .as_bytes()
                        .ct_eq(sent.as_bytes()),
                )
            });
    if !ok {
        return Ok(back(to, Some("invalid_request")));
    }
    // Keycloak's `manage-account-links` (part of `manage-account`).
    let may = idp
        .store
        .effective_roles(&sso.user_id)
        .await?
        .iter()
        .any(|r| r.name == "manage-account-links" || r.name == "manage-account");
    if !may {
        return Ok(back(to, Some("not_allowed")));
    }
    let state = gatehouse_core::id::token();
    let out = Outbound::new(
        &p,
        String::new(),
        Some(LinkRequest {
            user_id: sso.user_id.clone(),
            session_id: sso.id.clone(),
            client_id: client.client_id.clone(),
            redirect_uri: to.to_owned(),
        }),
    );
    idp.store
        .put_code(&CodeRecord {
            code: format!("broker:{state}"),
            realm_id: realm.id.clone(),
            data: serde_json::to_string(&out).map_err(OAuthError::internal)?,
            expires: gatehouse_core::time::now() + LINK_LIFESPAN,
        })
        .await?;
    Ok(redirect(&super::authorization_url(
        &idp, &realm, &p, &state, &out, None,
    )))
}

/// The provider's answer to a link: the person it names is linked to the
/// user who asked, unless that account at the provider is someone else's
/// here already.
pub(super) async fn answer(
    idp: &Idp,
    realm: &Realm,
    out: &Outbound,
    l: &LinkRequest,
    q: &Form,
    headers: &HeaderMap,
) -> Result<Response, OAuthError> {
    let to = l.redirect_uri.as_str();
    match sso_session(idp, realm, headers).await? {
        Some(s) if s.id == l.session_id => {}
        _ => return Ok(super::foreign_browser()),
    }
    let Some(p) = super::provider(realm, &out.alias).filter(|p| p.enabled) else {
        return Ok(back(to, Some("invalid_provider")));
    };
    if let Some(err) = q.get("error") {
        let code = if err == "access_denied" {
            "access_denied"
        } else {
            "identity_provider_error"
        };
        return Ok(back(to, Some(code)));
    }
    let Some(code) = q.get("code") else {
        return Ok(back(to, Some("invalid_request")));
    };
    let ret = redirect_uri(idp, realm, &p.alias);
    let who: Brokered =
        match exchange::redeem(idp, &p, code, &ret, out.verifier.as_deref(), &out.nonce).await {
            Ok(w) => w,
            Err(exchange::Failure(why)) => {
                tracing::warn!(realm = %realm.name, alias = %p.alias, why, "account link failed");
                return Ok(back(to, Some("identity_provider_error")));
            }
        };
    if let Some(other) = super::linked_user(idp, realm, &p.alias, &who.id).await? {
        // Linking what is already linked to this user is done already.
        let code = (other.id != l.user_id).then_some("identity_already_linked");
        return Ok(back(to, code));
    }
    let Some(mut user) = idp.store.user(&realm.id, &l.user_id).await? else {
        return Ok(back(to, Some("not_logged_in")));
    };
    if user
        .federated_identities
        .iter()
        .any(|f| f.identity_provider == p.alias)
    {
        return Ok(back(to, Some("provider_already_linked")));
    }
    let mut ev = Event::user(realm, "FEDERATED_IDENTITY_LINK");
    ev.client_id = Some(l.client_id.clone());
    ev.session_id = Some(l.session_id.clone());
    super::add_link(idp, &mut user, &p.alias, &who, ev).await?;
    Ok(back(to, None))
}
