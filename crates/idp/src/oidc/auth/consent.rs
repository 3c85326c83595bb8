//! Keycloak's consent screen: a client with `consentRequired: true` (a
//! third-party app, say) gets a code only after the user allowed it, on a
//! page that lists what it asks for (the request's client scopes shown on
//! the consent screen, with their `consent.screen.text`). The answer is
//! kept per user and client (`GET /admin/realms/{r}/users/{id}/consents`),
//! so the page comes back only when the client asks for a scope not yet
//! granted, or with `prompt=consent`; `prompt=none` then fails with
//! `consent_required`. Declining sends the client `access_denied`.
//!
//! The page posts back with `execution=CONSENT` and `accept` or `cancel`,
//! under the login's CSRF token, whether the user just logged in or came
//! with an SSO session.

use super::{AuthRequest, esc, expired_page, issue_code, log_in, page};
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::{StatusCode, header};
use axum::response::Response;
use gatehouse_core::model::{Client, Consent, Event, Realm};
use gatehouse_store::CodeRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The form's `execution`.
pub const EXECUTION: &str = "CONSENT";

/// Whether the client asks its users for consent.
pub fn required(c: &Client) -> bool {
    c.extra.get("consentRequired").and_then(Value::as_bool) == Some(true)
}

/// Who is waiting on the consent page: a user who just logged in (the
/// SSO session starts after the answer) or an existing SSO session.
#[derive(Serialize, Deserialize)]
pub(super) enum Waiting {
    User(String),
    Session(String),
}

fn pending_key(req_id: &str) -> String {
    format!("consent:{req_id}")
}

/// The request's scopes the user is asked about: the realm's client scopes
/// named in it that show on the consent screen, with their text.
async fn asked(idp: &Idp, realm: &Realm, scope: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let all = idp.client_scopes(realm).await?;
    Ok(scope
        .split_whitespace()
        .filter_map(|name| all.iter().find(|s| s.name == name))
        .filter(|s| {
            s.attributes
                .get("display.on.consent.screen")
                .is_none_or(|v| v != "false")
        })
        .map(|s| {
            let text = s
                .attributes
                .get("consent.screen.text")
                .filter(|t| !t.is_empty() && !t.starts_with("${"))
                .cloned()
                .or_else(|| s.description.clone())
                .unwrap_or_else(|| s.name.clone());
            (s.name.clone(), text)
        })
        .collect())
}

/// Whether `user_id` must be asked before `client` gets a code for
/// `scope`: the client asks for consent, and the user never answered,
/// or not for every scope asked now, or `prompt=consent` says ask again.
pub async fn needed(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    scope: &str,
    user_id: &str,
    prompt_consent: bool,
) -> Result<bool, OAuthError> {
    if !required(client) {
        return Ok(false);
    }
    if prompt_consent {
        return Ok(true);
    }
    let Some(given) = given(idp, user_id, &client.client_id).await? else {
        return Ok(true);
    };
    Ok(asked(idp, realm, scope)
        .await?
        .iter()
        .any(|(name, _)| !given.scopes.contains(name)))
}

/// What `user_id` allowed `client_id`, if they ever answered.
pub async fn given(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Consent>, OAuthError> {
    Ok(idp
        .store
        .consents(user_id)
        .await?
        .into_iter()
        .find(|c| c.client_id == client_id))
}

/// Records that `user_id` allowed `client_id` the client scopes `scopes`
/// (added to what they allowed before), with its `GRANT_CONSENT` event:
/// the consent page's "Yes", or the device page's "Sign in and allow".
pub async fn grant(
    idp: &Idp,
    realm: &Realm,
    user_id: &str,
    client_id: &str,
    mut scopes: Vec<String>,
    now: i64,
) -> Result<(), OAuthError> {
    let previous = given(idp, user_id, client_id).await?;
    let created = previous.as_ref().map_or(now * 1000, |p| p.created);
    for s in previous.into_iter().flat_map(|p| p.scopes) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let mut ev = Event::user(realm, "GRANT_CONSENT");
    ev.client_id = Some(client_id.to_owned());
    ev.user_id = Some(user_id.to_owned());
    ev.details
        .insert("granted_client_scopes".into(), scopes.join(" "));
    let consent = Consent {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scopes,
        created,
        updated: now * 1000,
    };
    Ok(idp.store.put_consent(&consent, &[ev]).await?)
}

/// Keeps login `req_id` waiting for the answer and shows the page. With
/// an SSO session the request was never stored (no login page came
/// first), so it is stored here, with its CSRF cookie.
pub(super) async fn ask(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    waiting: Waiting,
    expires: i64,
) -> Result<Response, OAuthError> {
    let fresh_request = matches!(waiting, Waiting::Session(_));
    if fresh_request {
        idp.store
            .put_code(&CodeRecord {
                code: format!("authreq:{req_id}"),
                realm_id: realm.id.clone(),
                data: serde_json::to_string(req).map_err(OAuthError::internal)?,
                expires,
            })
            .await?;
    }
    let data = serde_json::to_string(&waiting).map_err(OAuthError::internal)?;
    super::set_pending(idp, realm, pending_key(req_id), data, expires).await?;
    let client = idp.client(realm, &req.client_id).await?;
    let name = client
        .as_ref()
        .and_then(|c| c.name.clone())
        .filter(|n| !n.is_empty() && !n.starts_with("${"))
        .unwrap_or_else(|| req.client_id.clone());
    let items: String = asked(idp, realm, &req.scope)
        .await?
        .iter()
        .map(|(_, text)| format!("<li>{}</li>", esc(text)))
        .collect();
    let body = format!(
        "<h1>Do you grant these access privileges?</h1><p><strong>{n}</strong> wants to:</p><ul id=\"kc-oauth-scopes\">{items}<li>Know who you are in {r}</li></ul>\
<form id=\"kc-oauth\" method=\"post\" action=\"/realms/{rp}/login-actions/authenticate?session_code={s}&amp;execution={EXECUTION}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<button type=\"submit\" name=\"accept\" id=\"kc-login\" value=\"Yes\">Yes</button> \
<button type=\"submit\" name=\"cancel\" id=\"kc-cancel\" value=\"No\">No</button></form>",
        n = esc(&name),
        r = esc(realm.display_name.as_deref().unwrap_or(&realm.name)),
        rp = esc(&realm.name),
        s = esc(req_id),
        c = esc(&req.csrf),
    );
    let mut r = page(StatusCode::OK, "Grant access", &body);
    if fresh_request {
        r.headers_mut().append(
            header::SET_COOKIE,
            super::csrf_cookie(idp, realm, &req.csrf),
        );
    }
    Ok(r)
}

/// The page's answer.
pub(super) async fn submit(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    form: &Form,
    now: i64,
) -> Result<Response, OAuthError> {
    let Some(pending) = idp.store.take_code(&pending_key(req_id)).await? else {
        return Ok(expired_page());
    };
    if pending.expires < now || pending.realm_id != realm.id {
        return Ok(expired_page());
    }
    let waiting: Waiting = serde_json::from_str(&pending.data).map_err(OAuthError::internal)?;
    let (user, session) = match waiting {
        Waiting::User(id) => (idp.store.user(&realm.id, &id).await?, None),
        Waiting::Session(sid) => match idp.store.session(&sid).await? {
            Some(s) => (idp.store.user(&realm.id, &s.user_id).await?, Some(s)),
            None => (None, None),
        },
    };
    let Some(user) = user.filter(|u| u.enabled) else {
        return Ok(expired_page());
    };
    if form.get("accept").is_none() {
        idp.store.take_code(&format!("authreq:{req_id}")).await?;
        let mut ev = Event::user(realm, "LOGIN_ERROR");
        ev.client_id = Some(req.client_id.clone());
        ev.user_id = Some(user.id.clone());
        ev.error = Some("rejected_by_user".into());
        idp.record(ev).await?;
        return Ok(super::error_redirect(
            idp,
            realm,
            (&req.redirect_uri, req.response_mode),
            req.state.as_deref(),
            "access_denied",
            "Consent denied",
        ));
    }
    let scopes = asked(idp, realm, &req.scope)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    grant(idp, realm, &user.id, &req.client_id, scopes, now).await?;
    match session {
        None => log_in(idp, realm, req_id, req, &user, now).await,
        Some(s) => {
            if idp
                .store
                .take_code(&format!("authreq:{req_id}"))
                .await?
                .is_none()
            {
                return Ok(expired_page());
            }
            // Consent asked of a browser that logged in by its SSO session.
            issue_code(idp, realm, req, &s, true).await
        }
    }
}
