//! Keycloak's required actions in the browser login: after the password is
//! right, a user with `requiredActions` goes through a page per action
//! before the client gets its code, in the order of the realm's registry
//! ([`crate::admin::required_actions`]; disabled actions are skipped):
//! `TERMS_AND_CONDITIONS` (accept or decline), `UPDATE_PASSWORD`
//! (`password-new`, `password-confirm`), `UPDATE_PROFILE` (`email`,
//! `firstName`, `lastName`; the terms shown are the realm's English
//! `termsText` localization override, as in a Keycloak export),
//! `CONFIGURE_TOTP` (a new authenticator secret shown as a key and an
//! `otpauth://` URI, confirmed with a code: `totp`, `totpSecret`,
//! `userLabel`, Keycloak's fields). Each page
//! posts back to the login URL with
//! `execution={action}` (as Keycloak's forms do); each action's change and
//! its event are one transaction. `VERIFY_EMAIL` mails a link (once per
//! login, again on request) and is done when the link is opened
//! (`action_link.rs`); a user without an address skips it, as in
//! Keycloak. A user holding an action this server has no page for is
//! refused rather than let through.

use super::{AuthRequest, alert, error_page, esc, expired_page, page};
use crate::error::OAuthError;
use crate::oidc::form::LoginForm;
use crate::state::Idp;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::model::{Event, Realm, User};

/// The actions a client may ask for in a login (`kc_action`).
pub const SUPPORTED: [&str; 4] = [
    "TERMS_AND_CONDITIONS",
    "CONFIGURE_TOTP",
    "UPDATE_PASSWORD",
    "UPDATE_PROFILE",
];

/// Confirms the user's address by a mailed link.
pub const VERIFY_EMAIL: &str = "VERIFY_EMAIL";

/// What a user must do before a login completes.
pub enum Step {
    None,
    Action(&'static str),
    /// An action without a page here: the login stops.
    Unsupported,
}

/// The user's next step: the first of the user's actions in the realm's
/// registry order that is enabled there (disabled or unregistered ones are
/// skipped, as in Keycloak).
pub fn next(realm: &Realm, user: &User) -> Step {
    first_due(realm, user, &[])
}

/// The first action, in registry order, of the user's own and `extra`
/// (what an action link added to this login alone).
fn first_due(realm: &Realm, user: &User, extra: &[String]) -> Step {
    // Nothing to verify: no address, or one verified already (an action
    // link's `VERIFY_EMAIL` after the link itself proved it).
    let nothing_to_verify = user.email.as_deref().is_none_or(str::is_empty) || user.email_verified;
    let due = crate::admin::required_actions::enabled(realm)
        .into_iter()
        .find(|e| {
            user.required_actions.iter().chain(extra).any(|a| a == e)
                && !(e == VERIFY_EMAIL && nothing_to_verify)
        });
    match due {
        None => Step::None,
        Some(a) => page_of(&a).map_or(Step::Unsupported, Step::Action),
    }
}

/// The next step of this login: the client's application-initiated
/// action (`kc_action`) first, until done or cancelled, then the user's own.
pub fn next_for(realm: &Realm, user: &User, req: &AuthRequest) -> Step {
    if let (Some(a), None) = (&req.kc_action, &req.kc_action_status)
        && let Some(s) = SUPPORTED.into_iter().find(|s| s == a)
    {
        return Step::Action(s);
    }
    first_due(realm, user, &req.extra_actions)
}

/// Whether `action`'s page is the client's application-initiated action
/// (it then has a Cancel button, `cancel-aia`, as Keycloak's pages do).
fn initiated(req: &AuthRequest, action: &str) -> bool {
    req.kc_action.as_deref() == Some(action) && req.kc_action_status.is_none()
}

/// The Cancel button of an application-initiated action's page.
fn cancel_button(aia: bool) -> &'static str {
    if aia {
        "<button type=\"submit\" name=\"cancel-aia\" value=\"true\" formnovalidate>Cancel</button>"
    } else {
        ""
    }
}

/// Whether every one of `actions` is a required action this realm has
/// enabled and Gatehouse has a page for: what an admin may send in an
/// `execute-actions` mail.
pub fn can_execute(realm: &Realm, actions: &[String]) -> bool {
    let enabled = crate::admin::required_actions::enabled(realm);
    actions
        .iter()
        .all(|a| enabled.contains(a) && page_of(a).is_some())
}

/// The action `a` as one with a page here.
fn page_of(a: &str) -> Option<&'static str> {
    SUPPORTED
        .into_iter()
        .chain([VERIFY_EMAIL])
        .find(|s| *s == a)
}

/// The user as the realm's `verifyEmail` setting wants them before a
/// login's actions are worked out (Keycloak's trigger): an address not
/// yet verified gets `VERIFY_EMAIL`, kept until the link is opened; one
/// verified by now (an admin's word, an action link) drops it. None when
/// nothing changes.
pub fn triggered(realm: &Realm, user: &User) -> Option<User> {
    let has = user.required_actions.iter().any(|a| a == VERIFY_EMAIL);
    let wanted = realm.flag("verifyEmail")
        && !user.email_verified
        && user.email.as_deref().is_some_and(|e| !e.is_empty());
    let mut u = user.clone();
    if wanted && !has {
        u.required_actions.push(VERIFY_EMAIL.into());
    } else if has && user.email_verified {
        u.required_actions.retain(|a| a != VERIFY_EMAIL);
    } else {
        return None;
    }
    Some(u)
}

/// Whether a login can have the user set up a one-time code now: the
/// realm's registry must have CONFIGURE_TOTP enabled (a disabled action is
/// skipped, which would let a flow that requires a code go without one).
pub fn can_configure_totp(realm: &Realm) -> bool {
    crate::admin::required_actions::enabled(realm)
        .iter()
        .any(|a| a == "CONFIGURE_TOTP")
}

/// The page that ends a login the user cannot finish here.
pub(super) fn not_set_up() -> Response {
    error_page("Account is not fully set up. Contact your administrator.")
}

/// Handles a required-action form: `asked` is the page's `execution`.
/// The user is the one the pending login names; the action must be the
/// one due (no skipping ahead by posting another page).
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    form: &LoginForm,
    asked: &str,
    pending_key: &str,
    now: i64,
) -> Result<Response, OAuthError> {
    let Some(pending) = idp.store.code(pending_key).await? else {
        return Ok(expired_page());
    };
    if pending.expires < now || pending.realm_id != realm.id {
        return Ok(expired_page());
    }
    let Some(mut user) = idp
        .store
        .user(&realm.id, &pending.data)
        .await?
        .filter(|u| u.enabled)
    else {
        return Ok(expired_page());
    };
    let due = match next_for(realm, &user, req) {
        Step::Action(a) => a,
        Step::None => return Ok(expired_page()),
        Step::Unsupported => return Ok(not_set_up()),
    };
    if asked != due {
        return show(idp, realm, req_id, req, due, &user, pending.expires).await;
    }
    if due == VERIFY_EMAIL {
        // Its page's one button: send the link again.
        return verify_email_page(idp, realm, req_id, req, &user, true, pending.expires).await;
    }
    let aia = initiated(req, due);
    // The client's action, and how it went (`kc_action_status`): the
    // login goes on either way.
    let mut outcome = req.clone();
    if aia && form.get("cancel-aia").is_some() {
        outcome.kc_action_status = Some("cancelled".into());
        super::keep_request(idp, realm, req_id, &outcome, pending.expires).await?;
        return after_action(
            idp,
            realm,
            req_id,
            &outcome,
            &user,
            pending_key,
            pending.expires,
            now,
        )
        .await;
    }
    let mut ev = Event::user(realm, due);
    ev.client_id = Some(req.client_id.clone());
    ev.user_id = Some(user.id.clone());
    match due {
        "UPDATE_PASSWORD" => {
            let new = form.get("password-new").unwrap_or("");
            let again = form.get("password-confirm").unwrap_or("");
            let problem = if new.is_empty() {
                Some("Please specify password.")
            } else if new != again {
                Some("Passwords don't match.")
            } else {
                None
            };
            if let Some(p) = problem {
                return Ok(page_for(realm, req_id, req, due, &user, Some(p)));
            }
            // The realm's password policy, its history among it.
            let mut done = user.clone();
            done.required_actions.retain(|a| a != due);
            let evs = [ev];
            let set = crate::login::change_password(idp, realm, &user, new, Some(&done), &evs);
            if let Err(v) = set.await? {
                return Ok(page_for(realm, req_id, req, due, &user, Some(&v.message)));
            }
            user = done;
        }
        "UPDATE_PROFILE" => {
            let field = |k: &str| form.get(k).map(str::trim).unwrap_or("").to_owned();
            let (email, first, last) = (field("email"), field("firstName"), field("lastName"));
            let problem = if email.is_empty() {
                Some("Please specify email.")
            } else if !email.contains('@') || email.len() > 254 {
                Some("Invalid email address.")
            } else if first.is_empty() {
                Some("Please specify first name.")
            } else if last.is_empty() {
                Some("Please specify last name.")
            } else if [&first, &last].iter().any(|n| n.chars().count() > 255) {
                Some("The name is too long.")
            } else {
                None
            };
            // The realm's profile rules for the fields the page shows, its
            // custom attributes among them.
            let mut asked = user.clone();
            asked.email = Some(email.clone());
            asked.first_name = Some(first.clone());
            asked.last_name = Some(last.clone());
            for f in crate::profile_rules::user_form_fields(realm) {
                crate::profile_rules::put_form_values(&mut asked, &f, form.values(&f.name));
            }
            let shown = ["email", "firstName", "lastName"];
            let rule = crate::profile_rules::form_refusal(realm, Some(&user), &asked, &shown);
            let problem = problem.or(rule.as_deref());
            let taken = problem.is_none()
                && idp
                    .store
                    .user_by_email(&realm.id, &email)
                    .await?
                    .is_some_and(|o| o.id != user.id);
            if let Some(p) = problem.or(taken.then_some("Email already exists.")) {
                return Ok(page_for(realm, req_id, req, due, &asked, Some(p)));
            }
            if user.email.as_deref() != Some(email.as_str()) {
                ev.details.insert(
                    "previous_email".into(),
                    user.email.clone().unwrap_or_default(),
                );
                ev.details.insert("updated_email".into(), email.clone());
                user.email_verified = false;
            }
            user.email = Some(email);
            user.first_name = Some(first);
            user.last_name = Some(last);
            user.attributes = asked.attributes;
            user.required_actions.retain(|a| a != due);
            idp.store.update_user(&user, &[ev]).await?;
        }
        "CONFIGURE_TOTP" => {
            let secret = form.get("totpSecret").unwrap_or("");
            if secret.len() < 16
                || secret.len() > 128
                || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Ok(expired_page());
            }
            let policy = crate::otp::Policy::of(realm);
            let cred = crate::otp::new_credential(&user, secret, &policy, form.get("userLabel"));
            // Another app joins those the user has (as in Keycloak), and
            // must then be named so the login can tell them apart (asked
            // before the code is checked, which spends it).
            let unnamed =
                cred.user_label.is_none() && crate::otp::credential(idp, &user).await?.is_some();
            let code = form.get("totp").unwrap_or("");
            let problem = if unnamed {
                Some("Please specify device name.")
            } else if code.is_empty() {
                Some("Please specify authenticator code.")
            } else if !crate::otp::verify(idp, realm, &cred, code, now).await? {
                Some("Invalid authenticator code.")
            } else {
                None
            };
            if problem.is_some() {
                return Ok(totp_page(
                    realm,
                    req_id,
                    (&req.csrf, aia),
                    &user,
                    secret,
                    problem,
                ));
            }
            ev.set_kind(realm, "UPDATE_TOTP");
            user.required_actions.retain(|a| a != due);
            idp.store.add_credential(&cred, Some(&user), &[ev]).await?;
        }
        "TERMS_AND_CONDITIONS" => {
            if form.get("accept").is_none() {
                // Declined: no login, as in Keycloak.
                ev.set_kind(realm, "CUSTOM_REQUIRED_ACTION_ERROR");
                ev.error = Some("rejected_by_user".into());
                ev.details
                    .insert("custom_required_action".into(), due.into());
                idp.record(ev).await?;
                idp.store.take_code(pending_key).await?;
                return Ok(error_page(
                    "You need to accept the terms and conditions to log in.",
                ));
            }
            ev.set_kind(realm, "CUSTOM_REQUIRED_ACTION");
            ev.details
                .insert("custom_required_action".into(), due.into());
            user.attributes
                .insert("terms_and_conditions".into(), vec![now.to_string()]);
            user.required_actions.retain(|a| a != due);
            idp.store.update_user(&user, &[ev]).await?;
        }
        _ => return Ok(not_set_up()),
    }
    let extra = outcome.extra_actions.len();
    outcome.extra_actions.retain(|a| a != due);
    if aia {
        outcome.kc_action_status = Some("success".into());
    }
    if aia || extra != outcome.extra_actions.len() {
        super::keep_request(idp, realm, req_id, &outcome, pending.expires).await?;
    }
    after_action(
        idp,
        realm,
        req_id,
        &outcome,
        &user,
        pending_key,
        pending.expires,
        now,
    )
    .await
}

/// After an action: the next one due, or the end of the login.
#[allow(clippy::too_many_arguments)]
async fn after_action(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    pending_key: &str,
    expires: i64,
    now: i64,
) -> Result<Response, OAuthError> {
    match next_for(realm, user, req) {
        Step::None => {
            idp.store.take_code(pending_key).await?;
            super::finish(idp, realm, req_id, req, user, expires, now).await
        }
        Step::Action(a) => show(idp, realm, req_id, req, a, user, expires).await,
        Step::Unsupported => Ok(not_set_up()),
    }
}

/// The page of `action` as it is first shown: for `VERIFY_EMAIL`, the
/// link is mailed first (once per login).
pub async fn show(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    action: &str,
    user: &User,
    expires: i64,
) -> Result<Response, OAuthError> {
    if action == VERIFY_EMAIL {
        return verify_email_page(idp, realm, req_id, req, user, false, expires).await;
    }
    Ok(page_for(realm, req_id, req, action, user, None))
}

/// Keycloak's `login-verify-email` page. The link is mailed when the page
/// is first shown in this login (`verifysent:{req_id}` remembers it) and
/// again when the user asks; it continues this login when opened in the
/// same browser.
async fn verify_email_page(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    resend: bool,
    expires: i64,
) -> Result<Response, OAuthError> {
    let sent_key = format!("verifysent:{req_id}");
    let mut error = None;
    if resend || idp.store.code(&sent_key).await?.is_none() {
        let typ = crate::action_token::VERIFY_EMAIL;
        let lifespan = crate::action_token::user_lifespan(realm, typ);
        let mut t = crate::action_token::ActionToken::new(
            idp.issuer(&realm.name),
            typ,
            &user.id,
            &req.client_id,
            lifespan,
        );
        t.eml.clone_from(&user.email);
        t.asid = Some(req_id.to_owned());
        let sent = crate::action_token::mail(idp, realm, user, &t, |link| {
            crate::mail::verify_email(realm, link, lifespan)
        })
        .await?;
        if sent.is_ok() {
            super::set_pending(idp, realm, sent_key, String::new(), expires).await?;
        } else {
            error = Some(crate::action_token::SEND_FAILED);
        }
    }
    let body = format!(
        "<h1>Email verification</h1>{err}<p>You need to verify your email address to activate your account.</p>\
<p>An email with instructions to verify your email address has been sent to your address {email}.</p>\
<form id=\"kc-verify-email-form\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={s}&amp;execution=VERIFY_EMAIL\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\"><p>Haven't received a verification code in your email?</p>\
<button type=\"submit\" name=\"resend\" value=\"true\">Click here to re-send the email.</button></form>",
        err = alert(error),
        email = esc(user.email.as_deref().unwrap_or("")),
        r = esc(&realm.name),
        s = esc(req_id),
        c = esc(&req.csrf),
    );
    Ok(page(StatusCode::OK, "Email verification", &body))
}

/// The page of `action`, posting back with `execution={action}`.
pub fn page_for(
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    action: &str,
    user: &User,
    error: Option<&str>,
) -> Response {
    let csrf = req.csrf.as_str();
    let aia = initiated(req, action);
    let cancel = cancel_button(aia);
    let err = alert(error);
    let open = |id: &str| {
        format!(
            "<form id=\"{id}\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={s}&amp;execution={a}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">",
            r = esc(&realm.name),
            s = esc(req_id),
            a = esc(action),
            c = esc(csrf),
        )
    };
    let (title, body) = match action {
        "UPDATE_PASSWORD" => (
            "Update password",
            format!(
                "<h1>Update password</h1><p>You need to change your password to activate your account.</p>{err}{form}\
<label for=\"password-new\">New Password</label><input id=\"password-new\" name=\"password-new\" type=\"password\" autocomplete=\"new-password\" autofocus required>\
<label for=\"password-confirm\">Confirm password</label><input id=\"password-confirm\" name=\"password-confirm\" type=\"password\" autocomplete=\"new-password\" required>\
<button type=\"submit\">Submit</button>{cancel}</form>",
                form = open("kc-passwd-update-form"),
            ),
        ),
        "UPDATE_PROFILE" => {
            let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
            let custom: String = crate::profile_rules::user_form_fields(realm)
                .iter()
                .map(|f| {
                    let now = user.attributes.get(&f.name).map_or(&[][..], Vec::as_slice);
                    super::attribute_field::render(f, now)
                })
                .collect();
            (
                "Update Account Information",
                format!(
                    "<h1>Update Account Information</h1><p>You need to update your user profile to activate your account.</p>{err}{form}\
<label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" value=\"{e}\" autofocus required>\
<label for=\"firstName\">First name</label><input id=\"firstName\" name=\"firstName\" type=\"text\" autocomplete=\"given-name\" value=\"{f}\" required>\
<label for=\"lastName\">Last name</label><input id=\"lastName\" name=\"lastName\" type=\"text\" autocomplete=\"family-name\" value=\"{l}\" required>{custom}\
<button type=\"submit\">Submit</button>{cancel}</form>",
                    form = open("kc-update-profile-form"),
                    e = v(&user.email),
                    f = v(&user.first_name),
                    l = v(&user.last_name),
                ),
            )
        }
        "CONFIGURE_TOTP" => {
            return totp_page(
                realm,
                req_id,
                (csrf, aia),
                user,
                &crate::otp::new_secret(),
                error,
            );
        }
        _ => (
            "Terms and Conditions",
            format!(
                "<h1>Terms and Conditions</h1>{err}<p>{terms}</p>{form}\
<button type=\"submit\" name=\"accept\" value=\"accept\">Accept</button> \
<button type=\"submit\" name=\"cancel\" value=\"cancel\">Decline</button></form>",
                terms = esc(terms_text(realm)),
                form = open("kc-terms-form"),
            ),
        ),
    };
    page(StatusCode::OK, title, &body)
}

/// Keycloak's `login-config-totp` page: the secret to enter in an
/// authenticator app (as a key and as an `otpauth://` URI), carried back
/// in `totpSecret` with the first code (`totp`) that proves the app has it.
fn totp_page(
    realm: &Realm,
    req_id: &str,
    (csrf, aia): (&str, bool),
    user: &User,
    secret: &str,
    error: Option<&str>,
) -> Response {
    let cancel = cancel_button(aia);
    let policy = crate::otp::Policy::of(realm);
    let key = crate::otp::base32(secret.as_bytes());
    let shown: String = key
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let uri = crate::otp::key_uri(realm, user, secret, &policy);
    let body = format!(
        "<h1>Mobile Authenticator Setup</h1>{err}<p>You need to set up Mobile Authenticator to activate your account.</p><ol><li>Install an authenticator app (FreeOTP, Google Authenticator, Microsoft Authenticator) on your mobile.</li><li>Open the application and enter the key: <code id=\"kc-totp-secret-key\">{shown}</code> (time-based, {d} digits, every {p} seconds), or open <a id=\"kc-totp-uri\" href=\"{uri}\">this link</a> on the device.</li><li>Enter the one-time code provided by the application and click Submit to finish the setup.</li></ol><form id=\"kc-totp-settings-form\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={s}&amp;execution=CONFIGURE_TOTP\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" id=\"totpSecret\" name=\"totpSecret\" value=\"{secret}\"><label for=\"totp\">One-time code</label><input id=\"totp\" name=\"totp\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus required><label for=\"userLabel\">Device Name</label><input id=\"userLabel\" name=\"userLabel\" type=\"text\" autocomplete=\"off\"><button type=\"submit\">Submit</button>{cancel}</form>",
        err = alert(error),
        shown = esc(&shown),
        d = policy.digits,
        p = policy.period,
        uri = esc(&uri),
        r = esc(&realm.name),
        s = esc(req_id),
        c = esc(csrf),
        secret = esc(secret),
    );
    page(StatusCode::OK, "Mobile Authenticator Setup", &body)
}

/// The realm's terms: `termsText` of its English localization texts, where
/// a Keycloak realm export keeps an override, else Keycloak's default.
fn terms_text(realm: &Realm) -> &str {
    realm
        .extra
        .get("localizationTexts")
        .and_then(|l| l.get("en"))
        .and_then(|en| en.get("termsText"))
        .and_then(|t| t.as_str())
        .unwrap_or("Terms and conditions to be defined")
}
