//! Who a brokered person is here (Keycloak's "first broker login" flow,
//! without its review-profile page): the user already linked to their
//! account at the provider; else a new user made from what the provider
//! said, linked; else, when a user with the same username or email exists,
//! that user after proving they own it (its password), then linked.
//! `POST /realms/{realm}/login-actions/first-broker-login` takes that proof.

use super::exchange::Brokered;
use super::mappers;
use super::provider::{OidcProvider, SyncMode};
use crate::error::OAuthError;
use crate::login::{LoginFailure, SecondFactor};
use crate::oidc::auth::{Pending, esc, page};
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Event, Realm, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// A brokered person waiting to prove they own an existing account.
#[derive(Serialize, Deserialize)]
struct Linking {
    alias: String,
    display_name: String,
    who: Brokered,
    user_id: String,
    /// What matched: `email` or `username`, and its value.
    matched: (String, String),
}

fn key(login: &str) -> String {
    format!("brokerlink:{login}")
}

/// After the provider vouched for `who`: logs in the linked user, or
/// creates and links one, or asks for the existing account's password.
pub async fn resolve(
    idp: &Idp,
    realm: &Realm,
    p: &OidcProvider,
    pending: Pending,
    who: Brokered,
) -> Result<Response, OAuthError> {
    let mappers = mappers::of(realm, &p.alias);
    if let Some(mut user) = super::linked_user(idp, realm, &p.alias, &who.id).await? {
        if !user.enabled {
            return disabled(idp, realm, &pending, &user).await;
        }
        let changed = p.sync_mode == SyncMode::Force && refresh(&mut user, &who, p.trust_email);
        let outcome =
            mappers::evaluate(idp, realm, &mappers, &who.claims, false, p.sync_mode).await?;
        apply(idp, realm, &mut user, outcome, changed).await?;
        return pending
            .authenticated_by(idp, realm, &user, (&p.alias, &who.id, &who.id_token))
            .await;
    }
    let email_as_username = realm.extra.get("registrationEmailAsUsername") == Some(&json!(true));
    let username = match (&who.email, email_as_username) {
        (Some(e), true) => e.to_lowercase(),
        _ => mappers::username(&mappers, &p.alias, &who.claims)
            .unwrap_or_else(|| who.username.to_lowercase()),
    };
    let mut existing = idp
        .store
        .user_by_username(&realm.id, &username)
        .await?
        .map(|u| (u, ("username".to_owned(), username.clone())));
    if existing.is_none()
        && let Some(e) = &who.email
    {
        existing = idp
            .store
            .user_by_email(&realm.id, e)
            .await?
            .map(|u| (u, ("email".to_owned(), e.clone())));
    }
    if let Some((user, matched)) = existing {
        if user.service_account_client_id.is_some() {
            return Ok(refused(&format!(
                "Your {} account cannot be used here: its username is taken.",
                p.display_name
            )));
        }
        let linking = Linking {
            alias: p.alias.clone(),
            display_name: p.display_name.clone(),
            who,
            user_id: user.id.clone(),
            matched,
        };
        let data = serde_json::to_string(&linking).map_err(OAuthError::internal)?;
        crate::oidc::auth::set_pending(idp, realm, key(&pending.id), data, pending.expires).await?;
        return Ok(link_page(realm, &pending, &linking, &user, None));
    }
    let outcome = mappers::evaluate(idp, realm, &mappers, &who.claims, true, p.sync_mode).await?;
    let user = match create(idp, realm, p, &pending, &who, &username, outcome).await {
        Ok(u) => u,
        Err(msg) => return Ok(refused(&msg)),
    };
    pending
        .authenticated_by(idp, realm, &user, (&p.alias, &who.id, &who.id_token))
        .await
}

/// Copies what the provider says now onto a returning user (`FORCE` sync);
/// whether anything changed.
fn refresh(user: &mut User, who: &Brokered, trust_email: bool) -> bool {
    let before = (
        user.email.clone(),
        user.first_name.clone(),
        user.last_name.clone(),
    );
    if who.email.is_some() && who.email != user.email {
        user.email = who.email.clone();
        user.email_verified = trust_email;
    }
    if who.first_name.is_some() {
        user.first_name = who.first_name.clone();
    }
    if who.last_name.is_some() {
        user.last_name = who.last_name.clone();
    }
    before
        != (
            user.email.clone(),
            user.first_name.clone(),
            user.last_name.clone(),
        )
}

/// A new user from the provider's claims, linked to it, with the realm's
/// default roles and groups, and Keycloak's REGISTER event
/// (`register_method` `broker`).
async fn create(
    idp: &Idp,
    realm: &Realm,
    p: &OidcProvider,
    pending: &Pending,
    who: &Brokered,
    username: &str,
    outcome: mappers::Outcome,
) -> Result<User, String> {
    let id = gatehouse_core::id::uuid();
    let mut rep = json!({
        "id": id, "username": username, "enabled": true,
        "emailVerified": p.trust_email && who.email.is_some(),
        "federatedIdentities": [{"identityProvider": p.alias, "userId": who.id, "userName": who.username}],
        "groups": outcome.groups,
    });
    for (k, v) in [
        ("email", &who.email),
        ("firstName", &who.first_name),
        ("lastName", &who.last_name),
    ] {
        if let Some(v) = v {
            rep[k] = json!(v);
        }
    }
    // What the mappers import: the user's own fields, or attributes.
    for (name, values) in outcome.attributes {
        let Some(first) = values.as_ref().and_then(|v| v.first()) else {
            continue;
        };
        match name.as_str() {
            "email" | "firstName" | "lastName" => rep[name.as_str()] = json!(first),
            _ => rep["attributes"][name.as_str()] = json!(values),
        }
    }
    let mut ev = Event::user(realm, "REGISTER");
    ev.client_id = Some(pending.client_id().to_owned());
    ev.user_id = Some(id);
    for (k, v) in [
        ("identity_provider", p.alias.as_str()),
        ("identity_provider_identity", who.username.as_str()),
        ("register_method", "broker"),
        ("username", username),
    ] {
        ev.details.insert(k.into(), v.to_owned());
    }
    crate::admin::users::create_user_granting(idp, realm, &rep, vec![ev], true, &outcome.grant)
        .await
        .map_err(|e| {
            format!(
                "Your {} account could not be used here: {}",
                p.display_name, e.message
            )
        })
}

/// Applies what the mappers decided to an existing user (and writes the
/// user if `changed` already, or the mappers change it).
async fn apply(
    idp: &Idp,
    realm: &Realm,
    user: &mut User,
    outcome: mappers::Outcome,
    mut changed: bool,
) -> Result<(), OAuthError> {
    for (name, values) in outcome.attributes {
        let first = values.as_ref().and_then(|v| v.first()).cloned();
        let field = match name.as_str() {
            "email" => Some(&mut user.email),
            "firstName" => Some(&mut user.first_name),
            "lastName" => Some(&mut user.last_name),
            _ => None,
        };
        match (field, values) {
            (Some(slot), _) => {
                if first.is_some() && *slot != first {
                    *slot = first;
                    changed = true;
                }
            }
            (None, Some(v)) => {
                if user.attributes.get(&name) != Some(&v) {
                    user.attributes.insert(name, v);
                    changed = true;
                }
            }
            (None, None) => changed |= user.attributes.remove(&name).is_some(),
        }
    }
    let wrote = changed
        || !outcome.grant.is_empty()
        || !outcome.revoke.is_empty()
        || !outcome.groups.is_empty();
    if changed {
        idp.store.update_user(user, &[]).await?;
    }
    let holder = gatehouse_store::Holder::User(&user.id);
    if !outcome.grant.is_empty() {
        idp.store.grant_roles(holder, &outcome.grant, &[]).await?;
    }
    if !outcome.revoke.is_empty() {
        let held: Vec<String> = idp
            .store
            .granted_roles(holder)
            .await?
            .into_iter()
            .map(|r| r.id)
            .filter(|id| outcome.revoke.contains(id))
            .collect();
        if !held.is_empty() {
            idp.store.revoke_roles(holder, &held, &[]).await?;
        }
    }
    if !outcome.groups.is_empty() {
        let all = idp.store.groups(&realm.id).await?;
        for path in &outcome.groups {
            if let Some(g) = crate::repr::group_by_path(&all, path) {
                idp.store.join_group(&user.id, &g.id, &[]).await?;
            }
        }
    }
    // Tokens read users and roles through the node's caches.
    if wrote {
        idp.invalidate();
    }
    Ok(())
}

async fn disabled(
    idp: &Idp,
    realm: &Realm,
    pending: &Pending,
    user: &User,
) -> Result<Response, OAuthError> {
    let mut e = Event::user(realm, "LOGIN_ERROR");
    e.client_id = Some(pending.client_id().to_owned());
    e.user_id = Some(user.id.clone());
    e.error = Some(LoginFailure::Disabled.code().into());
    idp.record(e).await?;
    Ok(pending.login_page(
        realm,
        Some("Account is disabled, contact your administrator."),
    ))
}

fn refused(msg: &str) -> Response {
    crate::oidc::auth::sorry_page(StatusCode::BAD_REQUEST, msg)
}

/// "Account already exists": the existing account's password links it.
fn link_page(
    realm: &Realm,
    pending: &Pending,
    l: &Linking,
    user: &User,
    error: Option<&str>,
) -> Response {
    let err = crate::oidc::auth::alert(error);
    let body = format!(
        "<h1>Account already exists</h1>{err}<p id=\"instruction1\">A user with {attr} {value} already exists. \
To link your {idp} account with it, sign in to it.</p>\
<form id=\"kc-form-login\" method=\"post\" action=\"/realms/{r}/login-actions/first-broker-login?session_code={id}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"username\">Username</label><input id=\"username\" name=\"username\" type=\"text\" value=\"{u}\" readonly>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" autofocus required>\
<button type=\"submit\" id=\"kc-login\">Link account</button></form>",
        attr = esc(&l.matched.0),
        value = esc(&l.matched.1),
        idp = esc(&l.display_name),
        r = esc(&realm.name),
        id = esc(&pending.id),
        csrf = esc(pending.csrf()),
        u = esc(&user.username),
    );
    page(StatusCode::OK, "Account already exists", &body)
}

/// `POST /realms/{realm}/login-actions/first-broker-login?session_code=...`:
/// the existing account's password; right, the account is linked and the
/// login goes on as that user.
pub async fn link(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(refused("Realm does not exist"));
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(pending) = Pending::load(&idp, &realm, q.get("session_code").unwrap_or("")).await?
    else {
        return Ok(crate::oidc::auth::expired_page());
    };
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return Ok(refused(&e.description)),
    };
    if !pending.same_browser(&headers, Some(form.get("csrf"))) {
        return Ok(super::foreign_browser());
    }
    let Some(rec) = idp.store.code(&key(&pending.id)).await? else {
        return Ok(crate::oidc::auth::expired_page());
    };
    let l: Linking = serde_json::from_str(&rec.data).map_err(OAuthError::internal)?;
    let Some(mut user) = idp.store.user(&realm.id, &l.user_id).await? else {
        return Ok(crate::oidc::auth::expired_page());
    };
    let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
    let password = form.get("password").unwrap_or("");
    let checked = if password.is_empty() {
        Err(LoginFailure::InvalidCredentials)
    } else {
        let client = idp.existing_client(&realm, pending.client_id()).await?;
        crate::login::check_password(
            &idp,
            &realm,
            crate::flows::Kind::Browser,
            &client,
            &user.username,
            password,
            ip.as_deref(),
        )
        .await?
    };
    match checked {
        Err(LoginFailure::Disabled) => {
            return Ok(link_page(
                &realm,
                &pending,
                &l,
                &user,
                Some("Account is disabled, contact your administrator."),
            ));
        }
        Err(_) => {
            return Ok(link_page(
                &realm,
                &pending,
                &l,
                &user,
                Some("Invalid password."),
            ));
        }
        Ok(v) if !matches!(v.second, SecondFactor::None) => {
            return Ok(refused(
                "This account also signs in with a one-time code, which linking does not ask for yet: sign in with your password and code, and ask an administrator to link your account.",
            ));
        }
        Ok(_) => {}
    }
    if user
        .federated_identities
        .iter()
        .any(|f| f.identity_provider == l.alias)
    {
        return Ok(refused(&format!(
            "Your account is already linked with another {} account.",
            l.display_name
        )));
    }
    idp.store.take_code(&key(&pending.id)).await?;
    let mut ev = Event::user(&realm, "IDENTITY_PROVIDER_LINK_ACCOUNT");
    ev.client_id = Some(pending.client_id().to_owned());
    super::add_link(&idp, &mut user, &l.alias, &l.who, ev).await?;
    if let Some(p) = super::provider(&realm, &l.alias) {
        let mappers = mappers::of(&realm, &l.alias);
        let outcome =
            mappers::evaluate(&idp, &realm, &mappers, &l.who.claims, true, p.sync_mode).await?;
        apply(&idp, &realm, &mut user, outcome, false).await?;
    }
    let (identity, id_token) = (l.who.id.clone(), l.who.id_token.clone());
    pending
        .authenticated_by(&idp, &realm, &user, (&l.alias, &identity, &id_token))
        .await
}
