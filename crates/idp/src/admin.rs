//! `/admin/realms/...`: Keycloak's admin REST API. Every call needs a bearer
//! token from realm `master` whose user holds the realm role `admin`, or,
//! on one realm, a token of that realm holding the `realm-management` role
//! the call needs ([`realm_management`]).

pub mod adapter_actions;
pub mod api_keys;
pub mod attack_detection;
pub mod authentication_flows;
pub mod authenticator_configs;
pub mod authz;
pub mod client_certificates;
pub mod client_policies;
pub mod client_scopes;
pub mod clients;
pub mod clients_v2;
pub mod components;
pub mod evaluate;
pub mod events;
pub mod federated_identities;
pub mod groups;
pub mod identity_providers;
pub mod impersonation;
pub mod initial_access;
pub mod installation;
pub mod key_providers;
pub mod localization;
pub mod mappers;
pub mod organization_groups;
pub mod organization_invitations;
pub mod organization_roles;
pub mod organizations;
pub mod partial;
pub mod permissions;
pub mod realm_management;
pub mod realms;
pub mod required_actions;
pub mod roles;
pub mod scope_mappings;
pub mod server_info;
pub mod sessions;
pub mod user_profile;
pub mod user_storage;
pub mod users;
pub mod whoami;

use crate::error::AdminError;
use crate::state::Idp;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Event, Realm};
use std::sync::Arc;

/// Who is calling the admin API (for admin events).
#[derive(Clone)]
pub struct AdminCaller {
    pub user_id: String,
    pub client_id: String,
    /// The session the caller's token belongs to (its `sid`).
    pub session_id: Option<String>,
    /// For a realm's own administrator without `realm-admin`, the
    /// `realm-management` roles it holds (composites expanded): what it may
    /// see and grant is bounded by them. None: a full administrator.
    pub limited: Option<Vec<String>>,
}

impl AdminCaller {
    /// Whether the caller holds one of `roles` of `realm-management` (a
    /// full administrator holds them all).
    pub fn holds(&self, roles: &[&str]) -> bool {
        self.limited
            .as_ref()
            .is_none_or(|held| held.iter().any(|h| roles.contains(&h.as_str())))
    }
}

/// Checks the caller's token: master realm, active, realm role `admin`.
pub async fn guard(idp: &Idp, headers: &HeaderMap) -> Result<AdminCaller, AdminError> {
    guard_role(idp, headers, "admin").await
}

/// Checks the caller's token: master realm, active, holding master realm
/// role `role` (directly or through a composite) both in the token and,
/// still, in the store. A valid token of another realm is 403.
pub async fn guard_role(
    idp: &Idp,
    headers: &HeaderMap,
    role: &str,
) -> Result<AdminCaller, AdminError> {
    match master_admin(idp, headers, role).await {
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            Err(authenticated_elsewhere(idp, headers, e).await)
        }
        other => other,
    }
}

/// [`guard_role`]'s check of a `master` token; 401 for any other token.
async fn master_admin(
    idp: &Idp,
    headers: &HeaderMap,
    role: &str,
) -> Result<AdminCaller, AdminError> {
    let unauthorized = || AdminError::new(StatusCode::UNAUTHORIZED, "HTTP 401 Unauthorized");
    let token = crate::oidc::userinfo::request_token(headers).ok_or_else(unauthorized)?;
    let master = idp
        .store
        .realm_by_name("master")
        .await?
        .ok_or_else(unauthorized)?;
    let active = crate::oidc::userinfo::active_request_token(idp, &master, token)
        .await?
        .ok_or_else(unauthorized)?;
    let is_admin = active.claims["realm_access"]["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(role)));
    // The token's roles are a snapshot: confirm against the store so a
    // revoked admin role takes effect at once.
    let still = idp
        .store
        .effective_roles(&active.user.id)
        .await?
        .iter()
        .any(|r| r.client_id.is_none() && r.name == role);
    if !is_admin || !still {
        return Err(AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"));
    }
    Ok(AdminCaller {
        user_id: active.user.id,
        client_id: active.claims["azp"].as_str().unwrap_or_default().to_owned(),
        session_id: active.claims["sid"].as_str().map(str::to_owned),
        limited: None,
    })
}

/// Checks an admin call on realm `name` and loads the realm: a `master`
/// admin (as [`guard`]) may act on any realm; a token of realm `name`
/// itself may act on that realm alone when its user holds Keycloak's
/// `realm-admin` role of the realm's `realm-management` client (the
/// realm's own administrators, and service accounts given that role, as
/// scripts use them with Keycloak).
pub async fn guard_realm(
    idp: &Idp,
    headers: &HeaderMap,
    name: &str,
) -> Result<(AdminCaller, Realm), AdminError> {
    guard_realm_for(idp, headers, name, None).await
}

/// [`guard_realm`], for a call (`write`, and the path after the realm)
/// that the realm's narrower `realm-management` roles may also make
/// ([`realm_management::granting`]).
async fn guard_realm_for(
    idp: &Idp,
    headers: &HeaderMap,
    name: &str,
    call: Option<(bool, &str)>,
) -> Result<(AdminCaller, Realm), AdminError> {
    let e = match master_admin(idp, headers, "admin").await {
        Ok(caller) => return Ok((caller, realm(idp, name).await?)),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => e,
        // A `master` token without `admin`: its `{realm}-realm` roles.
        Err(e) => {
            let found = realm(idp, name).await?;
            let master = realm(idp, "master").await?;
            let client = crate::bootstrap::master_admin_client(name);
            let caller = delegated(idp, headers, &master, &client, call).await?;
            return caller.map(|c| (c, found)).ok_or(e);
        }
    };
    let own = match realm(idp, name).await {
        Ok(realm) if name != "master" => own_realm_admin(idp, headers, &realm, call)
            .await
            .map(|caller| (caller, realm)),
        _ => Err(e),
    };
    match own {
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            Err(authenticated_elsewhere(idp, headers, e).await)
        }
        other => other,
    }
}

/// A token that is not valid in the realm called may still be a valid
/// token of another realm (its issuer's): Keycloak authenticates it there
/// and then answers 403, not 401, for a realm it may not administer.
async fn authenticated_elsewhere(idp: &Idp, headers: &HeaderMap, e: AdminError) -> AdminError {
    let Some(token) = crate::oidc::userinfo::request_token(headers) else {
        return e;
    };
    let Some(name) = issuer_realm(token.token) else {
        return e;
    };
    let Ok(Some(issuer)) = idp.store.realm_by_name(&name).await else {
        return e;
    };
    match crate::oidc::userinfo::active_request_token(idp, &issuer, token).await {
        Ok(Some(_)) => AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"),
        _ => e,
    }
}

/// Who may make an admin call that is not on one realm (server info, the
/// realm list): a `master` admin (`None`: every realm); a `master` user
/// holding `{realm}-realm` roles (the realms those reach); a realm's own
/// administrator (the realm named by the token's issuer, with any of its
/// `realm-management` roles), who sees only that realm.
pub async fn guard_any(
    idp: &Idp,
    headers: &HeaderMap,
) -> Result<(AdminCaller, Option<Vec<(Realm, AdminCaller)>>), AdminError> {
    let e = match master_admin(idp, headers, "admin").await {
        Ok(caller) => return Ok((caller, None)),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => e,
        // A `master` token without `admin`: the realms its `{realm}-realm`
        // roles reach (any of them shows the realm, as in Keycloak).
        Err(e) => {
            let master = realm(idp, "master").await?;
            let (active, roles) = signed_in(idp, headers, &master).await?;
            let mut reached = vec![];
            for r in idp.store.realms().await? {
                let client = crate::bootstrap::master_admin_client(&r.name);
                let call = Some((false, ""));
                if let Some(c) = as_admin(idp, &active, &roles, &master, &client, call).await? {
                    reached.push((r, c));
                }
            }
            let Some(who) = reached.first().map(|(_, c)| c.clone()) else {
                return Err(e);
            };
            return Ok((who, Some(reached)));
        }
    };
    // The issuer only picks the realm whose keys then verify the token.
    let Some(name) = crate::oidc::userinfo::request_token(headers)
        .and_then(|t| issuer_realm(t.token))
        .filter(|r| r != "master")
    else {
        return Err(authenticated_elsewhere(idp, headers, e).await);
    };
    // Any of its admin roles shows a realm's own administrator the realm.
    let (caller, realm) = guard_realm_for(idp, headers, &name, Some((false, ""))).await?;
    Ok((caller.clone(), Some(vec![(realm, caller)])))
}

/// The realm a token's `iss` names, read without verifying it: it only
/// picks the realm whose keys then verify the token.
fn issuer_realm(token: &str) -> Option<String> {
    let claims = crate::oidc::client_assertion::unverified_claims(token)?;
    let (_, realm) = claims["iss"].as_str()?.rsplit_once("/realms/")?;
    (!realm.is_empty() && !realm.contains('/')).then(|| realm.to_owned())
}

/// The realm's own administrator behind a token of that realm: active,
/// holding `realm-admin` of `realm-management`, or one of the narrower
/// roles that [`realm_management::granting`] lists for `call`, in the
/// token and, still, in the store (the token's roles are a snapshot).
async fn own_realm_admin(
    idp: &Idp,
    headers: &HeaderMap,
    realm: &Realm,
    call: Option<(bool, &str)>,
) -> Result<AdminCaller, AdminError> {
    delegated(
        idp,
        headers,
        realm,
        crate::bootstrap::REALM_MANAGEMENT,
        call,
    )
    .await?
    .ok_or_else(|| AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"))
}

/// An administrator by the admin roles of client `client` of `issuer`
/// (the token's realm): the realm's own `realm-management`, or `master`'s
/// `{realm}-realm`. 401 for a token not active there; None: no role for
/// this call ([`as_admin`]).
async fn delegated(
    idp: &Idp,
    headers: &HeaderMap,
    issuer: &Realm,
    client: &str,
    call: Option<(bool, &str)>,
) -> Result<Option<AdminCaller>, AdminError> {
    let (active, roles) = signed_in(idp, headers, issuer).await?;
    as_admin(idp, &active, &roles, issuer, client, call).await
}

/// The active token of `issuer` the request carries (else 401) and its
/// user's effective roles, as the store holds them now.
pub(crate) async fn signed_in(
    idp: &Idp,
    headers: &HeaderMap,
    issuer: &Realm,
) -> Result<
    (
        crate::oidc::userinfo::Active,
        Vec<gatehouse_core::model::Role>,
    ),
    AdminError,
> {
    let unauthorized = || AdminError::new(StatusCode::UNAUTHORIZED, "HTTP 401 Unauthorized");
    let token = crate::oidc::userinfo::request_token(headers).ok_or_else(unauthorized)?;
    let active = crate::oidc::userinfo::active_request_token(idp, issuer, token)
        .await?
        .ok_or_else(unauthorized)?;
    let roles = idp.store.effective_roles(&active.user.id).await?;
    Ok((active, roles))
}

/// The names, among `roles`, of the roles of `issuer`'s client `client`.
pub(crate) async fn client_role_names(
    idp: &Idp,
    issuer: &Realm,
    roles: &[gatehouse_core::model::Role],
    client: &str,
) -> Result<Vec<String>, AdminError> {
    let Some(c) = idp.store.client_by_client_id(&issuer.id, client).await? else {
        return Ok(vec![]);
    };
    Ok(roles
        .iter()
        .filter(|r| r.client_id.as_deref() == Some(&c.id))
        .map(|r| r.name.clone())
        .collect())
}

/// The administrator `active` is by `client`'s roles: those both its token
/// and, still, the store (`roles`) hold; `realm-admin` makes a full
/// administrator, any role [`realm_management::granting`] lists for `call`
/// a limited one. None: no role for this call.
async fn as_admin(
    idp: &Idp,
    active: &crate::oidc::userinfo::Active,
    roles: &[gatehouse_core::model::Role],
    issuer: &Realm,
    client: &str,
    call: Option<(bool, &str)>,
) -> Result<Option<AdminCaller>, AdminError> {
    let in_token: Vec<&str> = active.claims["resource_access"][client]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    if in_token.is_empty() {
        return Ok(None);
    }
    let mut held = client_role_names(idp, issuer, roles, client).await?;
    held.retain(|n| in_token.contains(&n.as_str()));
    let limited = if held.iter().any(|r| r == crate::bootstrap::REALM_ADMIN) {
        None
    } else {
        let needed = call.map_or(&[][..], |(write, rest)| {
            realm_management::granting(write, rest)
        });
        if !held.iter().any(|r| needed.contains(&r.as_str())) {
            return Ok(None);
        }
        Some(held)
    };
    Ok(Some(AdminCaller {
        user_id: active.user.id.clone(),
        client_id: active.claims["azp"].as_str().unwrap_or_default().to_owned(),
        session_id: active.claims["sid"].as_str().map(str::to_owned),
        limited,
    }))
}

/// An authorized admin call on one realm, extracted before the handler
/// runs: the caller's token checked as [`guard`] does (401/403 first) and
/// the `{realm}` of the path loaded (404 in Keycloak's words). Every
/// `/admin/realms/{realm}/...` handler starts from it, so none can forget
/// either check.
pub struct RealmAdmin {
    pub idp: Arc<Idp>,
    pub caller: AdminCaller,
    pub realm: Realm,
}

impl axum::extract::FromRequestParts<Arc<Idp>> for RealmAdmin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        idp: &Arc<Idp>,
    ) -> Result<Self, AdminError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, idp)
            .await
            .map_err(|_| AdminError::not_found("Realm"))?;
        let name = params
            .iter()
            .find_map(|(k, v)| (k == "realm").then_some(v))
            .ok_or_else(|| AdminError::not_found("Realm"))?;
        // The call, for the realm's narrower roles: a write or not, and the
        // path after the realm.
        let write = !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        // `/admin/api/{realm}/...` is the v2 API's (`clients/v2`), which
        // the same roles govern.
        let path = parts.uri.path();
        let rest = path
            .strip_prefix("/admin/realms/")
            .or_else(|| path.strip_prefix("/admin/api/"))
            .map(|p| p.split_once('/').map_or("", |(_, rest)| rest));
        let call = rest.map(|rest| (write, rest));
        let (caller, realm) = guard_realm_for(idp, &parts.headers, name, call).await?;
        Ok(RealmAdmin {
            idp: idp.clone(),
            caller,
            realm,
        })
    }
}

impl RealmAdmin {
    /// Takes this node's edit lock on the realm and reloads it, for a
    /// handler that rewrites the realm's row: what it changes is then
    /// applied to the latest settings, not to a copy another request has
    /// since overwritten. Hold the guard until the write is done.
    pub async fn edit(&mut self) -> Result<tokio::sync::OwnedMutexGuard<()>, AdminError> {
        let (realm, guard) = realm_for_edit(&self.idp, &self.realm).await?;
        self.realm = realm;
        Ok(guard)
    }
}

/// [`RealmAdmin::edit`] for handlers that load the realm themselves.
pub async fn realm_for_edit(
    idp: &Idp,
    loaded: &Realm,
) -> Result<(Realm, tokio::sync::OwnedMutexGuard<()>), AdminError> {
    let guard = idp.lock_row(&loaded.id).await;
    match realm(idp, &loaded.name).await? {
        // Renamed or deleted and recreated while this request waited.
        r if r.id != loaded.id => Err(AdminError::not_found("Realm")),
        r => Ok((r, guard)),
    }
}

/// Loads a realm by name for the admin API (404 in Keycloak's words).
pub async fn realm(idp: &Idp, name: &str) -> Result<Realm, AdminError> {
    idp.store
        .realm_by_name(name)
        .await?
        .ok_or_else(|| AdminError::not_found("Realm"))
}

/// The id a new object will have: the representation's own, else a fresh
/// one written into it. Known before the write, so the admin event can
/// name the created resource's path (`users/{id}`), as Keycloak's does.
pub fn new_id(rep: &mut serde_json::Value) -> String {
    match rep.get("id").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let id = gatehouse_core::id::uuid();
            // Not an object: the handler refuses it (it has no fields).
            if let Some(o) = rep.as_object_mut() {
                o.insert("id".into(), serde_json::json!(id));
            }
            id
        }
    }
}

/// An admin event for a write.
pub fn event(
    realm: &Realm,
    caller: &AdminCaller,
    op: &str,
    rtype: &str,
    path: &str,
    repr: Option<&serde_json::Value>,
) -> Event {
    let mut e = Event::admin(realm, op, rtype, path);
    e.user_id = Some(caller.user_id.clone());
    e.client_id = Some(caller.client_id.clone());
    e.representation = repr.map(|r| {
        let mut r = r.clone();
        strip_secrets(&mut r);
        r.to_string()
    });
    e
}

/// Keycloak's `StripSecretsUtils`: an admin event's representation shows
/// `**********` for secrets (client secrets, identity-provider and
/// component secrets, passwords, credential values), so whoever may read
/// admin events does not thereby read what the write set. A component's
/// config holds each value as a list of strings (`"bindCredential":
/// ["..."]`): such a list is masked whole.
pub fn strip_secrets(v: &mut serde_json::Value) {
    const SECRET_KEYS: [&str; 7] = [
        "secret",
        "clientSecret",
        "registrationAccessToken",
        "bindCredential",
        "password",
        "value",
        "secretData",
    ];
    match v {
        serde_json::Value::Object(o) => {
            let credential = o.contains_key("type") && o.contains_key("value");
            for (k, x) in o.iter_mut() {
                let secret = SECRET_KEYS.contains(&k.as_str()) && (k != "value" || credential);
                let listed = |a: &Vec<serde_json::Value>| {
                    !a.is_empty() && a.iter().all(serde_json::Value::is_string)
                };
                if secret && matches!(x, serde_json::Value::String(s) if !s.is_empty()) {
                    *x = serde_json::Value::String(crate::repr::SECRET_MASK.into());
                } else if secret && matches!(x, serde_json::Value::Array(a) if listed(a)) {
                    *x = serde_json::json!([crate::repr::SECRET_MASK]);
                } else {
                    strip_secrets(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// 201 with the `Location` Keycloak's clients read the new id from:
/// `{public_url}/admin/realms/{realm}/{path}` (the realm itself when
/// `path` is empty).
pub fn created(idp: &Idp, realm: &str, path: &str) -> Response {
    let mut location = format!("{}/admin/realms/{realm}", idp.public_url);
    if !path.is_empty() {
        location.push('/');
        location.push_str(path);
    }
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Parses a JSON body; malformed JSON is a 400, never a 500.
pub fn json_body(body: &[u8]) -> Result<serde_json::Value, AdminError> {
    serde_json::from_slice(body).map_err(|_| AdminError::bad_request("Malformed JSON body"))
}

/// A boolean query parameter read as Java's `Boolean.parseBoolean` does:
/// `true` in any case is true, anything else false (python-keycloak sends
/// `True`).
pub fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(s.map(|v| v.eq_ignore_ascii_case("true")))
}

/// Paging parameters `first` and `max` as Keycloak reads them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Paging {
    pub first: Option<i64>,
    pub max: Option<i64>,
}

impl Paging {
    /// See [`window`].
    pub fn window<I: Iterator>(&self, items: I) -> std::iter::Take<std::iter::Skip<I>> {
        window(self.first, self.max, items)
    }
}

/// The page of `items` that `first` and `max` ask for, for query types
/// that carry them beside other parameters: a negative or absent `first`
/// is 0, a negative or absent `max` is no limit (Keycloak's reading).
pub fn window<I: Iterator>(
    first: Option<i64>,
    max: Option<i64>,
    items: I,
) -> std::iter::Take<std::iter::Skip<I>> {
    let first = first.unwrap_or(0).max(0) as usize;
    let max = max.filter(|m| *m >= 0).unwrap_or(i64::MAX) as usize;
    items.skip(first).take(max)
}

/// After any admin write (success or not: a failed one may still have
/// changed something before failing validation elsewhere), this node's
/// entity caches are dropped, so the next grant sees the change: roles,
/// groups, users, clients, scopes, realm settings.
pub async fn invalidate_after_writes(
    axum::extract::State(idp): axum::extract::State<Arc<Idp>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let write = req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let resp = next.run(req).await;
    if write {
        idp.invalidate();
    }
    resp
}

/// Every admin route.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .merge(realms::routes())
        .merge(api_keys::routes())
        .merge(initial_access::routes())
        .merge(components::routes())
        .merge(localization::routes())
        .merge(attack_detection::routes())
        .merge(user_storage::routes())
        .merge(clients::routes())
        .merge(clients_v2::routes())
        .merge(authz::routes())
        .merge(adapter_actions::routes())
        .merge(client_certificates::routes())
        .merge(installation::routes())
        .merge(evaluate::routes())
        .merge(client_scopes::routes())
        .merge(users::routes())
        .merge(impersonation::routes())
        .merge(federated_identities::routes())
        .merge(user_profile::routes())
        .merge(required_actions::routes())
        .merge(authentication_flows::routes())
        .merge(authenticator_configs::routes())
        .merge(sessions::routes())
        .merge(groups::routes())
        .merge(roles::routes())
        .merge(roles::mapping_routes())
        .merge(events::routes())
        .merge(server_info::routes())
        .merge(whoami::routes())
        .merge(permissions::routes())
        .merge(client_policies::routes())
        .merge(identity_providers::routes())
        .merge(organizations::routes())
        .merge(partial::routes())
        .merge(scope_mappings::routes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn admin_event_representations_hide_secrets() {
        let mut v = json!({"clientId": "app", "secret": "s3cret", "attributes": {"a": "b"},
            "credentials": [{"type": "password", "value": "pw", "temporary": false}],
            "config": {"clientSecret": "idp", "clientId": "x"},
            "components": [{"config": {"bindCredential": ["ldap-pw"], "bindDn": ["cn=a"]}}],
            "smtpServer": {"password": "mail", "host": "h"}, "enabled": true});
        strip_secrets(&mut v);
        let text = v.to_string();
        for secret in ["s3cret", "\"pw\"", "\"idp\"", "\"mail\"", "ldap-pw"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(v["clientId"], "app");
        assert_eq!(v["config"]["clientId"], "x");
        assert_eq!(v["attributes"]["a"], "b");
        assert_eq!(v["credentials"][0]["type"], "password");
        assert_eq!(v["components"][0]["config"]["bindDn"], json!(["cn=a"]));
    }
}
