//! `/realms/{realm}/broker/{alias}/...`: logging in through another
//! OpenID Connect provider (Keycloak's identity brokering: "Sign in with
//! Entra ID / Okta / another Keycloak").
//!
//! The login page offers the realm's providers; `login` sends the browser
//! to the provider with a fresh `state`, `nonce` and (if configured) PKCE
//! verifier kept server-side; the provider answers at `endpoint`, where the
//! code is redeemed over the back channel and the ID token checked
//! ([`exchange`]); [`first_login`] then finds the linked user, creates one,
//! or has the person prove they own an existing account before linking it.
//! Every step is bound to the browser that started the login (its CSRF
//! cookie), so no one can finish a login in someone else's browser.

pub mod exchange;
pub mod first_login;
pub mod link;
pub mod logout;
pub mod mappers;
pub mod provider;

use crate::error::OAuthError;
use crate::oidc::auth::{Pending, esc, expired_page, redirect, sorry_page, with_params};
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use gatehouse_core::model::{Event, FederatedIdentity, Realm, User};
use gatehouse_store::{CodeRecord, UserQuery};
use provider::OidcProvider;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The broker's routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route("/realms/{realm}/broker/{alias}/login", get(start))
        .route("/realms/{realm}/broker/{alias}/endpoint", get(endpoint))
        .route("/realms/{realm}/broker/{alias}/link", get(link::start))
        .route(
            "/realms/{realm}/broker/{alias}/endpoint/logout_response",
            get(logout::response),
        )
        .route(
            "/realms/{realm}/login-actions/first-broker-login",
            post(first_login::link),
        )
}

/// The realm's providers Gatehouse can log in through (a Keycloak export
/// may bring others: SAML, social providers; those are skipped).
pub fn providers(realm: &Realm) -> impl Iterator<Item = OidcProvider> + '_ {
    crate::admin::identity_providers::providers(realm)
        .iter()
        .filter_map(|rep| OidcProvider::from_rep(rep).ok())
}

/// The provider `alias` of the realm, as configured.
fn provider(realm: &Realm, alias: &str) -> Option<OidcProvider> {
    providers(realm).find(|p| p.alias == alias)
}

/// The provider `alias`, if a login may go through it now.
fn usable(realm: &Realm, alias: &str) -> Option<OidcProvider> {
    provider(realm, alias).filter(|p| p.enabled && !p.link_only)
}

/// The user linked to account `sub` at provider `alias`, if any.
async fn linked_user(
    idp: &Idp,
    realm: &Realm,
    alias: &str,
    sub: &str,
) -> Result<Option<User>, OAuthError> {
    let q = UserQuery {
        idp_alias: Some(alias.to_owned()),
        idp_user_id: Some(sub.to_owned()),
        max: 1,
        ..Default::default()
    };
    Ok(idp.store.users(&realm.id, &q).await?.into_iter().next())
}

/// Links `user` to `who`'s account at provider `alias`, written with the
/// user event `ev` (given the provider's details here).
async fn add_link(
    idp: &Idp,
    user: &mut User,
    alias: &str,
    who: &exchange::Brokered,
    mut ev: Event,
) -> Result<(), OAuthError> {
    user.federated_identities.push(FederatedIdentity {
        identity_provider: alias.to_owned(),
        user_id: who.id.clone(),
        user_name: who.username.clone(),
    });
    ev.user_id = Some(user.id.clone());
    ev.details
        .insert("identity_provider".into(), alias.to_owned());
    ev.details
        .insert("identity_provider_identity".into(), who.username.clone());
    idp.store.update_user(user, &[ev]).await?;
    idp.invalidate();
    Ok(())
}

/// Where the browser goes to log in through `alias` for login attempt
/// `login` (the authorization request's handle).
pub fn start_url(idp: &Idp, realm: &Realm, alias: &str, login: &str) -> Option<String> {
    usable(realm, alias)?;
    Some(with_params(
        &format!("{}/broker/{alias}/login", idp.issuer(&realm.name)),
        &[("session_code", login)],
    ))
}

/// The login page's "Or sign in with" list (Keycloak's ids: `social-{alias}`),
/// in `guiOrder`, then by alias.
pub fn login_links(realm: &Realm, login: &str) -> String {
    let mut shown: Vec<OidcProvider> = providers(realm)
        .filter(OidcProvider::on_login_page)
        .collect();
    shown.sort_by(|a, b| (a.gui_order, &a.alias).cmp(&(b.gui_order, &b.alias)));
    let items: String = shown
        .iter()
        .map(|p| {
            let href = with_params(
                &format!("/realms/{}/broker/{}/login", realm.name, p.alias),
                &[("session_code", login)],
            );
            format!(
                "<li><a id=\"social-{a}\" href=\"{h}\">{n}</a></li>",
                a = esc(&p.alias),
                h = esc(&href),
                n = esc(&p.display_name),
            )
        })
        .collect();
    if items.is_empty() {
        return items;
    }
    format!(
        "<section id=\"kc-social-providers\"><h2>Or sign in with</h2><ul>{items}</ul></section>"
    )
}

/// Where a provider sends the browser back to (registered at the provider
/// as the client's redirect URI), as Keycloak names it.
fn redirect_uri(idp: &Idp, realm: &Realm, alias: &str) -> String {
    format!("{}/broker/{alias}/endpoint", idp.issuer(&realm.name))
}

/// What a login (or an account link) sent to a provider waits on, kept
/// under its `state`.
#[derive(Serialize, Deserialize)]
struct Outbound {
    /// The login attempt (empty for a link).
    login: String,
    alias: String,
    nonce: String,
    verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<link::LinkRequest>,
}

impl Outbound {
    /// A fresh nonce, and a PKCE verifier (two random tokens: 86
    /// characters) when the provider takes one.
    fn new(p: &OidcProvider, login: String, link: Option<link::LinkRequest>) -> Outbound {
        let token = gatehouse_core::id::token;
        Outbound {
            login,
            alias: p.alias.clone(),
            nonce: token(),
            verifier: p.pkce.then(|| format!("{}{}", token(), token())),
            link,
        }
    }
}

/// The provider's authorization URL for `out`, sent with `state` (and the
/// client's `login_hint`, where the provider takes it on).
fn authorization_url(
    idp: &Idp,
    realm: &Realm,
    p: &OidcProvider,
    state: &str,
    out: &Outbound,
    login_hint: Option<&str>,
) -> String {
    let back = redirect_uri(idp, realm, &p.alias);
    let challenge = out
        .verifier
        .as_deref()
        .map(crate::oidc::token::pkce_challenge);
    let mut params = vec![
        ("client_id", p.client_id.as_str()),
        ("redirect_uri", back.as_str()),
        ("response_type", "code"),
        ("scope", p.scope.as_str()),
        ("state", state),
        ("nonce", out.nonce.as_str()),
    ];
    if let Some(c) = &challenge {
        params.push(("code_challenge", c));
        params.push(("code_challenge_method", "S256"));
    }
    if let Some(prompt) = &p.prompt {
        params.push(("prompt", prompt));
    }
    if let Some(hint) = login_hint.filter(|h| p.login_hint && !h.is_empty()) {
        params.push(("login_hint", hint));
    }
    with_params(&p.authorization_url, &params)
}

fn foreign_browser() -> Response {
    sorry_page(
        StatusCode::FORBIDDEN,
        "The login could not be verified in this browser. Please start again.",
    )
}

/// `GET /realms/{realm}/broker/{alias}/login?session_code=...`: off to the
/// provider's authorization endpoint.
async fn start(
    State(idp): State<Arc<Idp>>,
    Path((realm, alias)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(sorry_page(StatusCode::NOT_FOUND, "Realm does not exist"));
    };
    let Some(p) = usable(&realm, &alias) else {
        return Ok(sorry_page(
            StatusCode::NOT_FOUND,
            "Could not find an identity provider with this identifier.",
        ));
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(pending) = Pending::load(&idp, &realm, q.get("session_code").unwrap_or("")).await?
    else {
        return Ok(expired_page());
    };
    if !pending.same_browser(&headers, None) {
        return Ok(foreign_browser());
    }
    let state = gatehouse_core::id::token();
    let out = Outbound::new(&p, pending.id.clone(), None);
    idp.store
        .put_code(&CodeRecord {
            code: format!("broker:{state}"),
            realm_id: realm.id.clone(),
            data: serde_json::to_string(&out).map_err(OAuthError::internal)?,
            expires: pending.expires,
        })
        .await?;
    Ok(redirect(&authorization_url(
        &idp,
        &realm,
        &p,
        &state,
        &out,
        pending.login_hint(),
    )))
}

/// An IDENTITY_PROVIDER_LOGIN_ERROR event (Keycloak's name), with why.
fn login_error(realm: &Realm, client_id: &str, alias: &str, why: &str) -> Event {
    let mut e = Event::user(realm, "IDENTITY_PROVIDER_LOGIN_ERROR");
    e.client_id = Some(client_id.to_owned());
    e.error = Some("identity_provider_login_failure".into());
    e.details
        .insert("identity_provider".into(), alias.to_owned());
    e.details.insert("reason".into(), why.to_owned());
    e
}

/// `GET /realms/{realm}/broker/{alias}/endpoint?code=...&state=...`: the
/// provider's answer.
async fn endpoint(
    State(idp): State<Arc<Idp>>,
    Path((realm, alias)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(sorry_page(StatusCode::NOT_FOUND, "Realm does not exist"));
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    // The state is spent on first use: a replayed answer finds nothing.
    let Some(rec) = idp
        .store
        .take_code(&format!("broker:{}", q.get("state").unwrap_or("")))
        .await?
    else {
        return Ok(expired_page());
    };
    let Ok(out) = serde_json::from_str::<Outbound>(&rec.data) else {
        return Ok(expired_page());
    };
    let now = gatehouse_core::time::now();
    if rec.realm_id != realm.id || rec.expires < now || out.alias != alias {
        return Ok(expired_page());
    }
    if let Some(l) = &out.link {
        return link::answer(&idp, &realm, &out, l, &q, &headers).await;
    }
    let Some(pending) = Pending::load(&idp, &realm, &out.login).await? else {
        return Ok(expired_page());
    };
    if !pending.same_browser(&headers, None) {
        return Ok(foreign_browser());
    }
    let Some(p) = usable(&realm, &alias) else {
        return Ok(pending.login_page(
            &realm,
            Some("This identity provider is no longer available."),
        ));
    };
    let fail = |why: &str| login_error(&realm, pending.client_id(), &alias, why);
    if let Some(err) = q.get("error") {
        idp.record(fail(err)).await?;
        let msg = if err == "access_denied" {
            format!("Sign-in with {} was cancelled.", p.display_name)
        } else {
            "Unexpected error when authenticating with identity provider".to_owned()
        };
        return Ok(pending.login_page(&realm, Some(&msg)));
    }
    let Some(code) = q.get("code") else {
        return Ok(expired_page());
    };
    let back = redirect_uri(&idp, &realm, &alias);
    let who =
        match exchange::redeem(&idp, &p, code, &back, out.verifier.as_deref(), &out.nonce).await {
            Ok(who) => who,
            Err(exchange::Failure(why)) => {
                tracing::warn!(realm = %realm.name, alias, why, "brokered login failed");
                idp.record(fail(&why)).await?;
                return Ok(pending.login_page(
                    &realm,
                    Some("Unexpected error when authenticating with identity provider"),
                ));
            }
        };
    first_login::resolve(&idp, &realm, &p, pending, who).await
}
