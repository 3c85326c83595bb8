//! `GET /realms/{realm}/login-actions/action-token?key=...`: where the
//! links of Keycloak's e-mails lead (`crate::action_token`).
//!
//! Opened in the browser whose login asked for it (a password reset from
//! the login page, the e-mail verification of a login), the link continues
//! that login: the new password or the verified address, then the
//! client's code. Opened anywhere else, it starts a login of its own that
//! ends with a page saying it is done, with no session and no code
//! (Keycloak's `END_AFTER_REQUIRED_ACTIONS`). An admin's "execute
//! actions" link and a verification link ask first ("Click here to
//! proceed"), so a mail scanner that follows links does not spend them; a
//! reset link is spent at once, as in Keycloak.

use super::{
    AuthRequest, EndAfter, Pending, authenticated, begin_login, error_page, esc, keep_request,
    page, with_csrf,
};
use crate::action_token::{self, ActionToken, EXECUTE_ACTIONS, RESET_CREDENTIALS, Refused};
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Event, Realm, User};
use std::sync::Arc;

const EXPIRED: &str = "Action expired. Please start again.";
const INVALID: &str = "The link you clicked is not valid.";
const USED: &str =
    "The link you clicked is no longer valid. It may have expired or already been used.";

/// The link's page.
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
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(key) = q.get("key") else {
        return Ok(error_page(INVALID));
    };
    let ring = idp.keyring(&realm).await?;
    let t = match ActionToken::verify(&ring, &idp.issuer(&realm.name), key) {
        Ok(t) => t,
        Err(Refused::Expired) => return Ok(error_page(EXPIRED)),
        Err(Refused::Invalid) => return Ok(error_page(INVALID)),
    };
    if t.typ == action_token::INVITE_ORG {
        return super::invitation::open(&idp, &realm, &t, key, &q, &headers).await;
    }
    // The user as they are now: disabled, or their address changed since
    // the link was sent, and the link is dead.
    let Some(user) = idp
        .store
        .user(&realm.id, &t.sub)
        .await?
        .filter(|u| u.enabled)
        .filter(|u| {
            t.eml.as_deref().is_none_or(|e| {
                u.email
                    .as_deref()
                    .is_some_and(|now| now.eq_ignore_ascii_case(e))
            })
        })
    else {
        return Ok(error_page(INVALID));
    };
    if action_token::spent(&idp, &t).await? {
        return Ok(error_page(USED));
    }
    // The actions must still be ones this realm asks for (Keycloak checks
    // them again when the link is opened).
    if t.typ == EXECUTE_ACTIONS && !super::required_actions::can_execute(&realm, &t.rqac) {
        return Ok(error_page("Invalid required actions in the link."));
    }
    let now = gatehouse_core::time::now();
    if let Some(asid) = &t.asid
        && let Some(login) = Pending::load(&idp, &realm, asid).await?
        && login.same_browser(&headers, None)
        && login.req.end_after.is_none()
    {
        return continue_login(&idp, &realm, &t, login, user, now).await;
    }
    let Some(client) = idp.client(&realm, &t.cid).await?.filter(|c| c.enabled) else {
        return Ok(error_page("Client not found."));
    };
    // The redirect is checked again: the client's URIs may have changed.
    let back_to = t.reduri.clone().filter(|r| client.redirect_uri_allowed(r));
    if t.reduri.is_some() && back_to.is_none() {
        return Ok(error_page("Invalid redirect uri."));
    }
    let end = EndAfter {
        back_to,
        jti: t.jti.clone(),
    };
    if t.typ == RESET_CREDENTIALS {
        if !super::reset_credentials::allowed(&realm) {
            return Ok(error_page(super::reset_credentials::NOT_ALLOWED));
        }
        if !action_token::spend(&idp, &realm, &t).await? {
            return Ok(error_page(USED));
        }
        record(&idp, &realm, &t, &user, "RESET_PASSWORD").await?;
        let req = AuthRequest::for_action_link(&t.cid, end, vec!["UPDATE_PASSWORD".into()]);
        return start(&idp, &realm, req, &user, now).await;
    }
    match q.get("session_code") {
        Some(code) => confirmed(&idp, &realm, &t, code, &headers, user, now).await,
        None => {
            let actions = if t.typ == EXECUTE_ACTIONS {
                t.rqac.clone()
            } else {
                Vec::new()
            };
            let req = AuthRequest::for_action_link(&t.cid, end, actions);
            let (req_id, _) = begin_login(&idp, &realm, &req, now).await?;
            let what = if t.typ == EXECUTE_ACTIONS {
                let items: String = t
                    .rqac
                    .iter()
                    .map(|a| format!("<li>{}</li>", esc(crate::mail::action_name(a))))
                    .collect();
                format!("<h1>Perform the following action(s)</h1><ul>{items}</ul>")
            } else {
                format!(
                    "<h1>Email verification</h1><p>Confirm validity of e-mail address {}.</p>",
                    esc(user.email.as_deref().unwrap_or(""))
                )
            };
            let r = confirm_page(&realm, &t, key, &req_id, &what);
            Ok(with_csrf(&idp, &realm, &req.csrf, r))
        }
    }
}

/// The link continues the login of the browser that asked for it.
async fn continue_login(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    login: Pending,
    mut user: User,
    now: i64,
) -> Result<Response, OAuthError> {
    let mut req = login.req;
    let pending_key = format!("reqaction:{}", login.id);
    if t.typ == RESET_CREDENTIALS {
        if !super::reset_credentials::allowed(realm) {
            return Ok(error_page(super::reset_credentials::NOT_ALLOWED));
        }
        if !action_token::spend(idp, realm, t).await? {
            return Ok(error_page(USED));
        }
        record(idp, realm, t, &user, "RESET_PASSWORD").await?;
        req.extra_actions.push("UPDATE_PASSWORD".into());
        keep_request(idp, realm, &login.id, &req, login.expires).await?;
    } else {
        // A verification link of this login: the login must be this
        // user's (its password already given).
        let theirs = idp
            .store
            .code(&pending_key)
            .await?
            .is_some_and(|p| p.data == user.id);
        if !theirs || !action_token::spend(idp, realm, t).await? {
            return Ok(error_page(USED));
        }
        mark_verified(idp, realm, t, &mut user).await?;
    }
    authenticated(idp, realm, &login.id, &req, &user, login.expires, now).await
}

/// "Click here to proceed" was clicked: the link is spent and does what
/// it says.
async fn confirmed(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    code: &str,
    headers: &HeaderMap,
    mut user: User,
    now: i64,
) -> Result<Response, OAuthError> {
    let Some(login) = confirming(idp, realm, t, code, headers).await? else {
        return Ok(super::expired_page());
    };
    if !action_token::spend(idp, realm, t).await? {
        return Ok(error_page(USED));
    }
    if t.typ == EXECUTE_ACTIONS {
        // The link reached the address it was sent to: that proves it.
        if t.eml.is_some() && !user.email_verified {
            user.email_verified = true;
            idp.store.update_user(&user, &[]).await?;
        }
        record(idp, realm, t, &user, "EXECUTE_ACTIONS").await?;
        return authenticated(idp, realm, code, &login.req, &user, login.expires, now).await;
    }
    mark_verified(idp, realm, t, &mut user).await?;
    idp.store.take_code(&format!("authreq:{code}")).await?;
    let back = login
        .req
        .end_after
        .as_ref()
        .and_then(|e| e.back_to.as_deref());
    Ok(done_page("Your email address has been verified.", back))
}

/// The user's address is theirs: verified, `VERIFY_EMAIL` done, and the
/// event `VERIFY_EMAIL`, in one write.
async fn mark_verified(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    user: &mut User,
) -> Result<(), OAuthError> {
    user.email_verified = true;
    user.required_actions.retain(|a| a != "VERIFY_EMAIL");
    let ev = event(realm, t, user, "VERIFY_EMAIL");
    idp.store.update_user(user, &[ev]).await?;
    Ok(())
}

fn event(realm: &Realm, t: &ActionToken, user: &User, kind: &str) -> Event {
    let mut ev = Event::user(realm, kind);
    ev.client_id = Some(t.cid.clone());
    ev.user_id = Some(user.id.clone());
    ev.details.insert("username".into(), user.username.clone());
    if let Some(e) = &user.email {
        ev.details.insert("email".into(), e.clone());
    }
    ev.details.insert("token_id".into(), t.jti.clone());
    ev
}

async fn record(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    user: &User,
    kind: &str,
) -> Result<(), OAuthError> {
    idp.record(event(realm, t, user, kind)).await
}

/// A login of the link's own: the user is the link's, their actions come
/// next, and the browser gets the login's CSRF cookie.
async fn start(
    idp: &Idp,
    realm: &Realm,
    req: AuthRequest,
    user: &User,
    now: i64,
) -> Result<Response, OAuthError> {
    let (req_id, expires) = begin_login(idp, realm, &req, now).await?;
    let r = authenticated(idp, realm, &req_id, &req, user, expires, now).await?;
    Ok(with_csrf(idp, realm, &req.csrf, r))
}

/// The login a link's confirmation page started (`code`), in the browser
/// it was shown to, for this link alone.
pub(super) async fn confirming(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    code: &str,
    headers: &HeaderMap,
) -> Result<Option<Pending>, OAuthError> {
    Ok(Pending::load(idp, realm, code).await?.filter(|login| {
        login.req.end_after.as_ref().is_some_and(|e| e.jti == t.jti)
            && login.same_browser(headers, None)
    }))
}

/// Keycloak's confirmation before a link acts: `what` (HTML) it will do,
/// and "Click here to proceed" back to the link within login `req_id`.
pub(super) fn confirm_page(
    realm: &Realm,
    t: &ActionToken,
    key: &str,
    req_id: &str,
    what: &str,
) -> Response {
    let href = super::with_params(
        &format!("/realms/{}/login-actions/action-token", esc(&realm.name)),
        &[
            ("key", key),
            ("client_id", &t.cid),
            ("session_code", req_id),
        ],
    );
    let body = format!(
        "{what}<p><a id=\"kc-proceed\" href=\"{h}\">» Click here to proceed</a></p>",
        h = esc(&href)
    );
    page(StatusCode::OK, "Confirm", &body)
}

/// The page that ends a link's own login, with "Back to Application"
/// where the link named a redirect.
pub(super) fn done_page(message: &str, back_to: Option<&str>) -> Response {
    let back = back_to
        .map(|b| {
            format!(
                "<p><a id=\"kc-back\" href=\"{}\">« Back to Application</a></p>",
                esc(b)
            )
        })
        .unwrap_or_default();
    page(
        StatusCode::OK,
        message,
        &format!("<h1>{}</h1>{back}", esc(message)),
    )
}
