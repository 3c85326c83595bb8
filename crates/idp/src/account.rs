//! `/realms/{realm}/account/...`: Keycloak's Account REST API, what a
//! signed-in user may see and change of their own account with an access
//! token (keycloak-js's `loadUserProfile()`, the admin client's `account`
//! resource, self-service pages).
//!
//! As in Keycloak (`AccountLoader`): the realm's `account` client must
//! exist and be enabled (else 404), the token must be active, name
//! `account` in its audience, and not belong to a service account (else
//! 401); each call then needs an account role in the token's
//! `resource_access.account.roles` (else 403): reading needs
//! `view-profile` or `manage-account`, writing `manage-account`. Every
//! user holds both through `default-roles-{realm}`.
//!
//! This file: the caller check, groups, organizations, supported locales
//! and linked accounts. The profile, sessions, credentials and applications
//! (consents) are in the submodules.

pub mod applications;
pub mod credentials;
pub mod profile;
pub mod sessions;

use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use gatehouse_core::model::{Realm, Session, User};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The account routes, Keycloak's paths (with and without the trailing
/// slash where Keycloak's clients send one).
pub fn routes() -> Router<Arc<Idp>> {
    const A: &str = "/realms/{realm}/account";
    Router::new()
        .route(A, get(profile::get).post(profile::update))
        .route(&format!("{A}/"), get(profile::get).post(profile::update))
        .route(
            &format!("{A}/sessions"),
            get(sessions::list).delete(sessions::logout_all),
        )
        .route(&format!("{A}/sessions/devices"), get(sessions::devices))
        .route(
            &format!("{A}/sessions/{{id}}"),
            delete(sessions::logout_one),
        )
        .route(&format!("{A}/credentials"), get(credentials::list))
        .route(
            &format!("{A}/credentials/{{id}}/label"),
            put(credentials::label),
        )
        .route(&format!("{A}/groups"), get(groups))
        .route(&format!("{A}/applications"), get(applications::list))
        .route(
            &format!("{A}/applications/{{client}}/consent"),
            get(applications::consent)
                .post(applications::grant)
                .put(applications::grant)
                .delete(applications::revoke),
        )
        .route(
            &format!("{A}/applications/{{client}}/sessions"),
            delete(applications::sign_out),
        )
        .route(&format!("{A}/linked-accounts"), get(linked_accounts))
        .route(&format!("{A}/linked-accounts/"), get(linked_accounts))
        .route(
            &format!("{A}/linked-accounts/{{alias}}"),
            axum::routing::delete(unlink),
        )
        .route(&format!("{A}/supportedLocales"), get(supported_locales))
        .route(&format!("{A}/organizations"), get(organizations))
        .route(&format!("{A}/organizations/"), get(organizations))
}

/// Keycloak's account roles, as the token carries them.
pub mod role {
    pub const VIEW_PROFILE: &str = "view-profile";
    pub const MANAGE_ACCOUNT: &str = "manage-account";
    pub const VIEW_CONSENT: &str = "view-consent";
    pub const MANAGE_CONSENT: &str = "manage-consent";
    pub const VIEW_APPLICATIONS: &str = "view-applications";
    pub const VIEW_GROUPS: &str = "view-groups";
}

/// The signed-in user behind an Account API call.
pub struct AccountCaller {
    pub idp: Arc<Idp>,
    pub realm: Realm,
    pub user: User,
    /// The token's session, when it names one: "current" in listings.
    pub session: Option<Session>,
    /// The client the token was issued to (`azp`), for events.
    pub client_id: Option<String>,
    /// `resource_access.account.roles` of the token.
    roles: Vec<String>,
}

impl AccountCaller {
    /// 403 unless the token carries one of `roles` (Keycloak's
    /// `auth.requireOneOf`).
    pub fn require(&self, roles: &[&str]) -> Result<(), AdminError> {
        if roles.iter().any(|r| self.roles.iter().any(|h| h == r)) {
            Ok(())
        } else {
            Err(AdminError::new(StatusCode::FORBIDDEN, ""))
        }
    }

    /// Whether `s` is the session the token belongs to (or the browser
    /// session that token's client session came from).
    pub fn is_current(&self, s: &Session) -> bool {
        self.session
            .as_ref()
            .is_some_and(|t| t.id == s.id || t.sso_session_id.as_deref() == Some(&s.id))
    }

    /// A user event of `kind` by this caller.
    pub fn event(&self, kind: &str) -> gatehouse_core::model::Event {
        let mut ev = gatehouse_core::model::Event::user(&self.realm, kind);
        ev.user_id = Some(self.user.id.clone());
        ev.client_id = self.client_id.clone();
        ev.session_id = self.session.as_ref().map(|s| s.id.clone());
        ev
    }
}

/// 401 with the RFC 6750 challenge naming the realm.
fn unauthorized(realm: &str) -> Response {
    let mut r = AdminError::new(StatusCode::UNAUTHORIZED, "").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

impl FromRequestParts<Arc<Idp>> for AccountCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, idp: &Arc<Idp>) -> Result<Self, Response> {
        let no_realm = || AdminError::not_found("Realm").into_response();
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, idp)
            .await
            .map_err(|_| no_realm())?;
        let name = params.get("realm").ok_or_else(no_realm)?;
        let realm = idp.realm(name).await.map_err(|_| no_realm())?;
        match idp.client(&realm, "account").await {
            Ok(Some(c)) if c.enabled => {}
            Ok(_) => {
                return Err(AdminError::missing("account management not enabled").into_response());
            }
            Err(e) => return Err(AdminError::from(e).into_response()),
        }
        let unauthorized = || unauthorized(&realm.name);
        let token =
            crate::oidc::userinfo::request_token(&parts.headers).ok_or_else(unauthorized)?;
        let active = crate::oidc::userinfo::active_request_token(idp, &realm, token)
            .await
            .map_err(|e| AdminError::from(e).into_response())?
            .ok_or_else(unauthorized)?;
        let aud = &active.claims["aud"];
        let for_account = aud.as_str() == Some("account")
            || aud
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("account")));
        if !for_account || active.user.service_account_client_id.is_some() {
            return Err(unauthorized());
        }
        let roles = active.claims["resource_access"]["account"]["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(AccountCaller {
            idp: idp.clone(),
            client_id: active.claims["azp"].as_str().map(str::to_owned),
            realm,
            user: active.user,
            session: active.session,
            roles,
        })
    }
}

/// `GET /account/groups`: the user's groups, brief (role `view-groups`
/// or `manage-account`).
async fn groups(caller: AccountCaller) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::VIEW_GROUPS, role::MANAGE_ACCOUNT])?;
    let all = caller.idp.store.groups(&caller.realm.id).await?;
    let mine = caller.idp.store.user_groups(&caller.user.id).await?;
    let list: Vec<Value> = mine
        .iter()
        .map(|g| crate::repr::group_brief(g, &all))
        .collect();
    Ok(Json(json!(list)))
}

/// `GET /account/supportedLocales`: the realm's locales (any valid token).
async fn supported_locales(caller: AccountCaller) -> Json<Value> {
    let locales = caller
        .realm
        .extra
        .get("supportedLocales")
        .filter(|v| v.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    Json(locales)
}

/// `GET /account/organizations`: the organizations the user is a member
/// of, their domains as names (404 while the realm has organizations off).
async fn organizations(caller: AccountCaller) -> Result<Json<Value>, AdminError> {
    if !crate::admin::organizations::enabled(&caller.realm) {
        return Err(AdminError::not_found("Organizations"));
    }
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let list: Vec<Value> = caller
        .idp
        .store
        .user_organizations(&caller.user.id)
        .await?
        .iter()
        .filter(|o| o.realm_id == caller.realm.id)
        .map(|o| {
            let mut v = json!({"id": o.id, "name": o.name, "alias": o.alias, "enabled": o.enabled,
                               "domains": o.domains.iter().map(|d| &d.name).collect::<Vec<_>>()});
            if let Some(d) = &o.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    Ok(Json(json!(list)))
}

/// The `linked-accounts` query (Keycloak's): `linked` keeps only linked
/// (true) or only unlinked (false) providers, `search` matches alias or
/// display name (case-insensitive), `first`/`max` page.
#[derive(serde::Deserialize)]
struct LinkedQuery {
    #[serde(default, deserialize_with = "crate::admin::lenient_bool")]
    linked: Option<bool>,
    search: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
}

/// `GET /account/linked-accounts`: the realm's enabled identity providers
/// and whether the user's account is linked to each (by a brokered login,
/// an imported realm or the admin API).
async fn linked_accounts(
    caller: AccountCaller,
    axum::extract::Query(q): axum::extract::Query<LinkedQuery>,
) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let search = q.search.as_deref().map(str::to_lowercase);
    let rows = crate::admin::identity_providers::providers(&caller.realm)
        .iter()
        .filter(|p| p["enabled"].as_bool().unwrap_or(true))
        .filter_map(|p| {
            let alias = p["alias"].as_str()?;
            let link = caller
                .user
                .federated_identities
                .iter()
                .find(|f| f.identity_provider == alias);
            let display = p["displayName"].as_str().unwrap_or(alias);
            let mut rep = json!({"connected": link.is_some(), "social": false,
                                 "providerAlias": alias, "providerName": p["providerId"],
                                 "displayName": display});
            if let Some(l) = link {
                rep["linkedUsername"] = json!(l.user_name);
            }
            let wanted = q.linked.is_none_or(|want| want == link.is_some())
                && search.as_deref().is_none_or(|s| {
                    alias.to_lowercase().contains(s) || display.to_lowercase().contains(s)
                });
            wanted.then_some(rep)
        });
    let list: Vec<Value> = crate::admin::window(q.first, q.max, rows).collect();
    Ok(Json(json!(list)))
}

/// `DELETE /account/linked-accounts/{alias}`: the user removes their link
/// to an identity provider (event `REMOVE_FEDERATED_IDENTITY`). As in
/// Keycloak, 400 for no such link, and for the last link of a user without
/// a password, who would have no way left to sign in.
async fn unlink(
    caller: AccountCaller,
    axum::extract::Path((_, alias)): axum::extract::Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    let mut user = caller.user.clone();
    let Some(i) = user
        .federated_identities
        .iter()
        .position(|f| f.identity_provider == alias)
    else {
        return Err(AdminError::bad_request("federatedIdentityNotActiveMessage"));
    };
    let has_password = caller
        .idp
        .store
        .credentials(&user.id)
        .await?
        .iter()
        .any(|c| c.kind == "password");
    if !has_password && user.federated_identities.len() == 1 {
        return Err(AdminError::bad_request(
            "federatedIdentityRemovingLastProviderMessage",
        ));
    }
    let link = user.federated_identities.remove(i);
    let mut ev = caller.event("REMOVE_FEDERATED_IDENTITY");
    ev.details
        .insert("identity_provider".into(), link.identity_provider);
    ev.details
        .insert("identity_provider_identity".into(), link.user_name);
    caller.idp.store.update_user(&user, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
