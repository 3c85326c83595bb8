//! `GET`/`POST /realms/{realm}/login-actions/reset-credentials`: Keycloak's
//! "Forgot Password?" page, linked from the login page where the realm
//! has `resetPasswordAllowed`.
//!
//! The user gives a username or an e-mail address; if it names an enabled
//! user with an address, a reset link is mailed (`action_link.rs`), valid
//! for the realm's user action-token lifespan (5 minutes by default). The
//! answer is the same, and as quick, whether or not anyone was found (the
//! mail goes after the answer), so the page cannot be used to learn who
//! has an account. Keycloak reports a failing mail server on the page,
//! which tells that the name was someone's; here the event
//! `SEND_RESET_PASSWORD_ERROR` records it. Each request spends from the client IP's
//! budget of failed logins, so the page cannot be made to mail without end.

use super::{Pending, error_page, esc, expired_page, page};
use crate::action_token::{self, ActionToken, RESET_CREDENTIALS};
use crate::error::OAuthError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Event, Realm};
use std::sync::Arc;

/// What the page says when the realm does not allow resets.
pub const NOT_ALLOWED: &str = "Reset Credential not allowed";
/// What the login page says after the form, whoever was named.
const SENT: &str = "You should receive an email shortly with further instructions.";

/// Whether the realm lets users reset their password by mail: its
/// `resetPasswordAllowed`, and the `UPDATE_PASSWORD` page that sets the
/// new one enabled (without it a reset link would log in with no
/// password at all).
pub fn allowed(realm: &Realm) -> bool {
    realm.flag("resetPasswordAllowed")
        && crate::admin::required_actions::enabled(realm)
            .iter()
            .any(|a| a == "UPDATE_PASSWORD")
}

/// The login attempt the page belongs to, in the browser that started it.
async fn login(
    idp: &Idp,
    realm: &Realm,
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<Option<Pending>, OAuthError> {
    Ok(Pending::in_browser(idp, realm, query.as_deref(), headers)
        .await?
        .filter(|p| p.req.end_after.is_none()))
}

/// The form.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let realm = match super::realm_or_page(&idp, &realm).await {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    if !allowed(&realm) {
        return Ok(error_page(NOT_ALLOWED));
    }
    match login(&idp, &realm, query, &headers).await? {
        Some(p) => Ok(form(&realm, &p, None)),
        None => Ok(expired_page()),
    }
}

/// The form's answer: a link mailed if the name is someone's.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = match super::realm_or_page(&idp, &realm).await {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    if !allowed(&realm) {
        return Ok(error_page(NOT_ALLOWED));
    }
    let Some(p) = login(&idp, &realm, query, &headers).await? else {
        return Ok(expired_page());
    };
    let f = match p.form(&realm, &headers, &body) {
        Ok(f) => f,
        Err(page) => return Ok(*page),
    };
    let name = f.get("username").map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Ok(form(&realm, &p, Some("Please specify username.")));
    }
    // Every request spends from the client IP's budget of failed logins
    // (`login_failures_per_minute_per_ip`): a mail is sent per request.
    let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
    if !crate::login::spend_ip_budget(&idp, ip.as_deref()) {
        return Ok(form(&realm, &p, Some(super::THROTTLED)));
    }
    let mut user = idp.store.user_by_username(&realm.id, name).await?;
    if user.is_none() && name.contains('@') {
        user = crate::login::by_email(&idp, &realm, name).await?;
    }
    let refused = match &user {
        None => Some("user_not_found"),
        Some(u) if !u.enabled => Some("user_disabled"),
        Some(u) if u.email.as_deref().is_none_or(str::is_empty) => Some("invalid_email"),
        Some(_) => None,
    };
    match (user, refused) {
        (Some(u), None) => {
            let lifespan = action_token::user_lifespan(&realm, RESET_CREDENTIALS);
            let mut t = ActionToken::new(
                idp.issuer(&realm.name),
                RESET_CREDENTIALS,
                &u.id,
                p.client_id(),
                lifespan,
            );
            t.eml.clone_from(&u.email);
            t.asid = Some(p.id.clone());
            // Sent after the answer: how long a mail server takes must not
            // tell who has an account. A failure is the event's
            // (`SEND_RESET_PASSWORD_ERROR`) and the log's.
            let (idp, realm) = (idp.clone(), realm.clone());
            tokio::spawn(async move {
                let sent = action_token::mail(&idp, &realm, &u, &t, |link| {
                    crate::mail::password_reset(&realm, link, lifespan)
                })
                .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e.description, "reset mail not sent");
                }
            });
        }
        (_, why) => {
            let mut ev = Event::user(&realm, "RESET_PASSWORD_ERROR");
            ev.client_id = Some(p.client_id().to_owned());
            ev.error = why.map(str::to_owned);
            ev.details.insert("username".into(), name.to_owned());
            idp.record(ev).await?;
        }
    }
    Ok(p.login_page_saying(&realm, SENT))
}

/// Keycloak's `login-reset-password` page.
fn form(realm: &Realm, p: &Pending, error: Option<&str>) -> Response {
    let body = format!(
        "<h1>Forgot Your Password?</h1>{err}<form id=\"kc-reset-password-form\" method=\"post\" action=\"/realms/{r}/login-actions/reset-credentials?session_code={s}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<label for=\"username\">Username or email</label><input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autofocus required>\
<button type=\"submit\">Submit</button></form>\
<p>Enter your username or email address and we will send you instructions on how to create a new password.</p>\
<p><a href=\"/realms/{r}/login-actions/authenticate?session_code={s}\">« Back to Login</a></p>",
        err = super::alert(error),
        r = esc(&realm.name),
        s = esc(&p.id),
        c = esc(p.csrf()),
    );
    page(StatusCode::OK, "Forgot Your Password?", &body)
}
