//! The second step of a browser login for a user with an OTP credential
//! (Keycloak's conditional OTP in its browser flow): after the right
//! password, a page asks for the authenticator app's code (field `otp`,
//! posted with `execution=OTP`). A wrong code counts as a failed login for
//! brute-force detection, and a login attempt allows [`MAX_TRIES`] wrong
//! codes before it must start over, so the step cannot be guessed through
//! even in a realm without brute-force detection.

use super::{AuthRequest, alert, authenticated, error_page, esc, expired_page, page, set_pending};
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::model::{Realm, User};

/// The form's `execution`.
pub const EXECUTION: &str = "OTP";
/// Wrong codes one login attempt may send.
const MAX_TRIES: u32 = 5;

fn pending_key(req_id: &str) -> String {
    format!("otp:{req_id}")
}

/// Remembers that `user` passed the password step of login `req_id`, and
/// shows the code page.
pub async fn ask(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    expires: i64,
) -> Result<Response, OAuthError> {
    set_pending(
        idp,
        realm,
        pending_key(req_id),
        format!("{} 0", user.id),
        expires,
    )
    .await?;
    Ok(otp_page(realm, req_id, &req.csrf, None))
}

/// Checks the posted code of login `req_id`.
pub async fn submit(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    form: &Form,
    ip: Option<&str>,
    now: i64,
) -> Result<Response, OAuthError> {
    let key = pending_key(req_id);
    let Some(pending) = idp.store.code(&key).await? else {
        return Ok(expired_page());
    };
    let Some((user_id, tries)) = pending.data.split_once(' ') else {
        return Ok(expired_page());
    };
    let tries: u32 = tries.parse().unwrap_or(MAX_TRIES);
    if pending.expires < now || pending.realm_id != realm.id {
        return Ok(expired_page());
    }
    let Some(user) = idp
        .store
        .user(&realm.id, user_id)
        .await?
        .filter(|u| u.enabled)
    else {
        return Ok(expired_page());
    };
    let Some(cred) = crate::otp::credential(idp, &user).await? else {
        return Ok(expired_page());
    };
    let given = form.get("otp").unwrap_or("");
    if crate::login::check_otp(idp, realm, &req.client_id, &user, &cred, given, ip).await? {
        idp.store.take_code(&key).await?;
        return authenticated(idp, realm, req_id, req, &user, pending.expires, now).await;
    }
    if tries + 1 >= MAX_TRIES {
        // The whole attempt is spent: the next one starts at the password.
        idp.store.take_code(&key).await?;
        idp.store.take_code(&format!("authreq:{req_id}")).await?;
        return Ok(error_page(
            "Too many invalid authenticator codes. Login will start from the beginning.",
        ));
    }
    let data = format!("{user_id} {}", tries + 1);
    set_pending(idp, realm, key, data, pending.expires).await?;
    Ok(otp_page(
        realm,
        req_id,
        &req.csrf,
        Some("Invalid authenticator code."),
    ))
}

/// Keycloak's `login-otp` page: one field, `otp`.
fn otp_page(realm: &Realm, req_id: &str, csrf: &str, error: Option<&str>) -> Response {
    let title = realm.display_name.as_deref().unwrap_or(&realm.name);
    let body = format!(
        "<h1>Sign in to {t}</h1>{err}<form id=\"kc-otp-login-form\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={s}&amp;execution={EXECUTION}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<label for=\"otp\">One-time code</label><input id=\"otp\" name=\"otp\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus required>\
<button type=\"submit\" id=\"kc-login\">Sign In</button></form>",
        t = esc(title),
        err = alert(error),
        r = esc(&realm.name),
        s = esc(req_id),
        c = esc(csrf),
    );
    page(StatusCode::OK, &format!("Sign in to {title}"), &body)
}
