//! `GET`/`POST /realms/{realm}/login-actions/registration`: Keycloak's
//! self-registration page, where the realm has `registrationAllowed`. It
//! is reached from the login page's "Register" link, from
//! `/protocol/openid-connect/registrations` (keycloak-js's `register()`)
//! and from `prompt=create` (OpenID Connect "Initiating User
//! Registration"), each carrying a normal authorization request.
//!
//! The form is Keycloak's (`firstName`, `lastName`, `email`, `username`
//! unless the realm uses the address as username, `password`,
//! `password-confirm`), with its messages. The new user starts as one the
//! admin API creates (the realm's default roles, groups and required
//! actions), the event is `REGISTER`, and the login goes on as after a
//! password: required actions (the realm's e-mail verification among
//! them), then the client's code.

use super::invitation;
use super::{Pending, THROTTLED, authenticated, error_page, esc, expired_page, page};
use crate::error::OAuthError;
use crate::profile_rules;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Event, Realm};
use serde_json::json;
use std::sync::Arc;

/// What the page says where the realm does not allow registration.
pub const NOT_ALLOWED: &str = "Registration not allowed";

/// Whether the realm lets people register themselves.
pub fn allowed(realm: &Realm) -> bool {
    realm.flag("registrationAllowed")
}

/// The login in progress the page belongs to, in the browser that
/// started it.
async fn login(
    idp: &Idp,
    realm: &Realm,
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<Option<Pending>, OAuthError> {
    Ok(Pending::in_browser(idp, realm, query.as_deref(), headers)
        .await?
        .filter(|p| p.req.end_after.is_none() || p.req.invite.is_some()))
}

/// Whether this login may register someone: the realm allows it, or the
/// login answers an organization invitation (as Keycloak's
/// `Organizations.isRegistrationAllowed`).
fn may_register(realm: &Realm, p: &Pending) -> bool {
    allowed(realm) || p.req.invite.is_some()
}

/// The form (the login page's "Register" link).
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
    match login(&idp, &realm, query, &headers).await? {
        Some(p) if !may_register(&realm, &p) => Ok(error_page(NOT_ALLOWED)),
        Some(p) => {
            let entered = Entered::for_login(&realm, &p.req);
            Ok(form(&realm, &p.id, p.csrf(), &entered, None))
        }
        None => Ok(expired_page()),
    }
}

/// What the person typed, shown again with an error.
#[derive(Default)]
pub(super) struct Entered {
    first: String,
    last: String,
    email: String,
    username: String,
    /// The address is an invitation's: shown, not editable.
    email_fixed: bool,
    /// The profile's custom attributes the form offers, as entered.
    attributes: Vec<(profile_rules::FormField, Vec<String>)>,
}

impl Entered {
    /// A blank form, with the invited address where the login answers an
    /// invitation.
    pub(super) fn for_login(realm: &Realm, req: &super::AuthRequest) -> Entered {
        let attributes = profile_rules::user_form_fields(realm)
            .into_iter()
            .map(|f| (f, Vec::new()))
            .collect();
        match &req.invite {
            Some(i) => Entered {
                email: i.email.clone(),
                email_fixed: true,
                attributes,
                ..Entered::default()
            },
            None => Entered {
                attributes,
                ..Entered::default()
            },
        }
    }
}

/// The form's answer: a new user, then the rest of the login.
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
    let Some(p) = login(&idp, &realm, query, &headers).await? else {
        return Ok(expired_page());
    };
    if !may_register(&realm, &p) {
        return Ok(error_page(NOT_ALLOWED));
    }
    let f = match p.form(&realm, &headers, &body) {
        Ok(f) => f,
        Err(page) => return Ok(*page),
    };
    let field = |k: &str| f.get(k).map(str::trim).unwrap_or("").to_owned();
    let email_as_username = realm.flag("registrationEmailAsUsername");
    let mut entered = Entered {
        first: field("firstName"),
        last: field("lastName"),
        email: field("email").to_lowercase(),
        username: field("username").to_lowercase(),
        email_fixed: false,
        attributes: profile_rules::user_form_fields(&realm)
            .into_iter()
            .map(|attr| {
                let v = f.values(&attr.name);
                (attr, v)
            })
            .collect(),
    };
    // An invitation's account has the invited address, whatever is posted.
    if let Some(i) = &p.req.invite {
        entered.email.clone_from(&i.email);
        entered.email_fixed = true;
    }
    if email_as_username {
        entered.username.clone_from(&entered.email);
    }
    let password = f.get("password").unwrap_or("");
    let problem = if entered.first.is_empty() {
        Some("Please specify first name.")
    } else if entered.last.is_empty() {
        Some("Please specify last name.")
    } else if entered.email.is_empty() {
        Some("Please specify email.")
    } else if !valid_email(&entered.email) {
        Some("Invalid email address.")
    } else if entered.username.is_empty() {
        Some("Please specify username.")
    } else if crate::repr::valid_name(&entered.username).is_err() {
        Some("Invalid username.")
    } else if [&entered.first, &entered.last]
        .iter()
        .any(|n| n.chars().count() > 255)
    {
        Some("The name is too long.")
    } else if password.is_empty() {
        Some("Please specify password.")
    } else if f.get("password-confirm") != Some(password) {
        Some("Password confirmation doesn't match.")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(form(&realm, &p.id, p.csrf(), &entered, Some(problem)));
    }
    // The realm's profile rules for the fields the form shows (a name
    // with markup, a username Keycloak's character set refuses).
    let mut draft = gatehouse_core::model::User::new(&realm.id, &entered.username);
    draft.email = Some(entered.email.clone());
    draft.first_name = Some(entered.first.clone());
    draft.last_name = Some(entered.last.clone());
    for (field, values) in &entered.attributes {
        profile_rules::put_form_values(&mut draft, field, values.clone());
    }
    let built_in = &crate::admin::user_profile::BUILT_IN;
    if let Some(message) = profile_rules::form_refusal(&realm, None, &draft, built_in) {
        return Ok(form(&realm, &p.id, p.csrf(), &entered, Some(&message)));
    }
    let email = Some(entered.email.as_str());
    if let Err(v) = crate::password_policy::check(&realm, password, &entered.username, email) {
        return Ok(form(&realm, &p.id, p.csrf(), &entered, Some(&v.message)));
    }
    // Each registration spends from the client IP's budget of failed
    // logins, so accounts cannot be made without end from one network.
    let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
    if !crate::login::spend_ip_budget(&idp, ip.as_deref()) {
        return Ok(form(&realm, &p.id, p.csrf(), &entered, Some(THROTTLED)));
    }
    if idp
        .store
        .user_by_username(&realm.id, &entered.username)
        .await?
        .is_some()
    {
        let taken = if email_as_username {
            "Email already exists."
        } else {
            "Username already exists."
        };
        return Ok(form(&realm, &p.id, p.csrf(), &entered, Some(taken)));
    }
    if idp
        .store
        .user_by_email(&realm.id, &entered.email)
        .await?
        .is_some()
    {
        return Ok(form(
            &realm,
            &p.id,
            p.csrf(),
            &entered,
            Some("Email already exists."),
        ));
    }
    let id = gatehouse_core::id::uuid();
    let rep = json!({
        "id": id, "username": entered.username, "email": entered.email, "enabled": true,
        "firstName": entered.first, "lastName": entered.last, "attributes": draft.attributes,
        "credentials": [{"type": "password", "value": password, "temporary": false}],
    });
    let mut ev = Event::user(&realm, "REGISTER");
    ev.client_id = Some(p.client_id().to_owned());
    ev.user_id = Some(id);
    ev.details
        .insert("username".into(), entered.username.clone());
    ev.details.insert("email".into(), entered.email.clone());
    ev.details.insert("register_method".into(), "form".into());
    ev.details
        .insert("auth_method".into(), "openid-connect".into());
    ev.details
        .insert("redirect_uri".into(), p.req.redirect_uri.clone());
    let user = match crate::admin::users::create_user(&idp, &realm, &rep, vec![ev], true).await {
        Ok(u) => u,
        // Taken between the check and the write.
        Err(e) if e.status == StatusCode::CONFLICT => {
            return Ok(form(
                &realm,
                &p.id,
                p.csrf(),
                &entered,
                Some("Username already exists."),
            ));
        }
        Err(e) => return Err(OAuthError::internal(e.message)),
    };
    if let Some(i) = &p.req.invite {
        invitation::join(&idp, &realm, (&i.org, &i.id), &user).await?;
    }
    let now = gatehouse_core::time::now();
    authenticated(&idp, &realm, &p.id, &p.req, &user, p.expires, now).await
}

/// An address of the shape `local@domain`, no spaces, at most 254 bytes.
pub fn valid_email(e: &str) -> bool {
    e.len() <= 254
        && !e.contains(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
}

/// Keycloak's `register` page.
pub(super) fn form(
    realm: &Realm,
    req_id: &str,
    csrf: &str,
    e: &Entered,
    error: Option<&str>,
) -> Response {
    let username = if realm.flag("registrationEmailAsUsername") {
        String::new()
    } else {
        format!(
            "<label for=\"username\">Username</label><input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required value=\"{}\">",
            esc(&e.username)
        )
    };
    let custom: String = e
        .attributes
        .iter()
        .map(|(f, v)| super::attribute_field::render(f, v))
        .collect();
    let body = format!(
        "<h1>Register</h1>{err}<form id=\"kc-register-form\" method=\"post\" action=\"/realms/{r}/login-actions/registration?session_code={s}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<label for=\"firstName\">First name</label><input id=\"firstName\" name=\"firstName\" type=\"text\" autocomplete=\"given-name\" autofocus required value=\"{first}\">\
<label for=\"lastName\">Last name</label><input id=\"lastName\" name=\"lastName\" type=\"text\" autocomplete=\"family-name\" required value=\"{last}\">\
<label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\"{fixed}>\
{username}{custom}\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
<label for=\"password-confirm\">Confirm password</label><input id=\"password-confirm\" name=\"password-confirm\" type=\"password\" autocomplete=\"new-password\" required>\
<button type=\"submit\">Register</button></form>\
<p><a href=\"/realms/{r}/login-actions/authenticate?session_code={s}\">« Back to Login</a></p>",
        err = super::alert(error),
        r = esc(&realm.name),
        s = esc(req_id),
        c = esc(csrf),
        first = esc(&e.first),
        last = esc(&e.last),
        email = esc(&e.email),
        fixed = if e.email_fixed { " readonly" } else { "" },
    );
    page(StatusCode::OK, "Register", &body)
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn addresses_need_one_at_and_no_spaces() {
        assert!(valid_email("a@b.example"));
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(!valid_email(&format!("{}@b", "a".repeat(260))));
    }
}
