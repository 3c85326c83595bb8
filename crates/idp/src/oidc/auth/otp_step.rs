//! The second step of a browser login for a user with an OTP credential
//! (Keycloak's conditional OTP in its browser flow): after the right
//! password, a page asks for the authenticator app's code (field `otp`,
//! posted with `execution=OTP`). A wrong code counts as a failed login for
//! brute-force detection, and a login attempt allows [`MAX_TRIES`] wrong
//! codes before it must start over, so the step cannot be guessed through
//! even in a realm without brute-force detection.
//!
//! A user with several authenticator apps picks one (radio buttons
//! `selectedCredentialId`, as Keycloak's `login-otp` page); the first of
//! their credential list is preselected, and is the one checked when the
//! form names none.

use super::{AuthRequest, alert, authenticated, error_page, esc, expired_page, page, set_pending};
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::model::{Credential, Realm, User};

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
    let apps = crate::otp::credentials(idp, user).await?;
    Ok(otp_page(realm, (req_id, &req.csrf), &apps, None, None))
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
    let apps = crate::otp::credentials(idp, &user).await?;
    let Some(default) = apps.first() else {
        return Ok(expired_page());
    };
    let selected = form.get("selectedCredentialId").filter(|s| !s.is_empty());
    // An app that is not the user's checks no code, and counts as wrong.
    let cred = match selected {
        Some(id) => apps.iter().find(|c| c.id == id),
        None => Some(default),
    };
    let given = form.get("otp").unwrap_or("");
    if crate::login::check_otp(idp, realm, &req.client_id, &user, cred, given, ip).await? {
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
        (req_id, &req.csrf),
        &apps,
        selected,
        Some("Invalid authenticator code."),
    ))
}

/// Keycloak's `login-otp` page: the field `otp` and, for a user with
/// several apps, the choice among them (`selectedCredentialId`, with
/// `selected` or else the first checked).
fn otp_page(
    realm: &Realm,
    (req_id, csrf): (&str, &str),
    apps: &[Credential],
    selected: Option<&str>,
    error: Option<&str>,
) -> Response {
    let title = realm.display_name.as_deref().unwrap_or(&realm.name);
    let mut choice = String::new();
    if apps.len() > 1 {
        let checked = apps
            .iter()
            .position(|c| Some(c.id.as_str()) == selected)
            .unwrap_or(0);
        choice.push_str("<fieldset><legend>Authenticator app</legend>");
        for (i, app) in apps.iter().enumerate() {
            let label = match &app.user_label {
                Some(l) => esc(l).to_string(),
                None => format!("Authenticator app {}", i + 1),
            };
            choice.push_str(&format!(
                "<input id=\"kc-otp-credential-{i}\" type=\"radio\" name=\"selectedCredentialId\" value=\"{id}\"{c}>\
<label for=\"kc-otp-credential-{i}\">{label}</label>",
                id = esc(&app.id),
                c = if i == checked { " checked" } else { "" },
            ));
        }
        choice.push_str("</fieldset>");
    }
    let body = format!(
        "<h1>Sign in to {t}</h1>{err}<form id=\"kc-otp-login-form\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={s}&amp;execution={EXECUTION}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">{choice}\
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
