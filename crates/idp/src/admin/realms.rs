//! `/admin/realms` and `/admin/realms/{realm}` (+ `/keys`, `/keys/rotate`).

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::{ClientScope, Realm, builtin_client_scopes};
use serde_json::{Value, json};
use std::sync::Arc;

/// Realm routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route("/admin/realms", get(list).post(create))
        .route("/admin/realms/{realm}", get(one).put(update).delete(remove))
        .route("/admin/realms/{realm}/keys", get(keys))
        .route("/admin/realms/{realm}/keys/rotate", post(rotate))
        .route("/admin/realms/{realm}/clear-realm-cache", post(clear_cache))
        .route("/admin/realms/{realm}/clear-user-cache", post(clear_cache))
        .route("/admin/realms/{realm}/clear-keys-cache", post(clear_cache))
        .route("/admin/realms/{realm}/clear-crl-cache", post(clear_cache))
        .route("/admin/realms/{realm}/testSMTPConnection", post(test_smtp))
}

/// `GET /admin/realms`: every realm for a `master` admin; the realms a
/// user's admin roles reach otherwise, as in Keycloak.
async fn list(State(idp): State<Arc<Idp>>, h: HeaderMap) -> Result<Json<Value>, AdminError> {
    let seen: Vec<(Realm, Value)> = match super::guard_any(&idp, &h).await? {
        (_, Some(reached)) => reached
            .into_iter()
            .map(|(r, c)| {
                let v = seen_by(&r, &c);
                (r, v)
            })
            .collect(),
        (_, None) => idp
            .store
            .realms()
            .await?
            .into_iter()
            .map(|r| {
                let v = shown(&r);
                (r, v)
            })
            .collect(),
    };
    let mut reps = Vec::with_capacity(seen.len());
    for (realm, mut v) in seen {
        with_default_role(&idp, &realm, &mut v).await?;
        reps.push(v);
    }
    Ok(Json(json!(reps)))
}

/// A RealmRepresentation as `GET /admin/realms` shows it: Keycloak keeps
/// components (user profile, key providers), the required-action registry
/// and the authentication flows out of it; export has them. Identity
/// providers' client secrets are masked, as on their own endpoint.
fn shown(realm: &Realm) -> Value {
    let mut v = repr::realm(realm);
    repr::mask_realm_secrets(&mut v);
    if let Some(o) = v.as_object_mut() {
        o.remove("components");
        o.remove("requiredActions");
        o.remove("authenticationFlows");
        o.remove("clientPolicies");
        o.remove("clientProfiles");
        if let Some(Value::Array(providers)) = o.get_mut("identityProviders") {
            for p in providers.iter_mut() {
                *p = super::identity_providers::masked(p);
            }
        }
    }
    v
}

/// The client scopes a new realm starts with. As in Keycloak, a
/// representation without `clientScopes` gets the built-in set and one with
/// them (an export) brings its own; a hand-written file that lists only its
/// own scopes also gets the built-ins that the realm or a client still
/// names (a Keycloak export lists every scope it names, so this adds
/// nothing to one).
fn initial_scopes(realm: &Realm, rep: &Value) -> Result<Vec<ClientScope>, AdminError> {
    let Some(list) = rep.get("clientScopes").and_then(Value::as_array) else {
        return Ok(builtin_client_scopes(&realm.id));
    };
    let mut out: Vec<ClientScope> = vec![];
    for v in list {
        let mut c = ClientScope::new(&realm.id, "");
        if let Some(id) = v.get("id").and_then(Value::as_str) {
            c.id = id.to_owned();
        }
        repr::apply_client_scope(&mut c, v).map_err(AdminError::bad_request)?;
        if c.name.is_empty() || out.iter().any(|o| o.name == c.name) {
            return Err(AdminError::bad_request(
                "client scopes need distinct, non-empty names",
            ));
        }
        out.push(c);
    }
    let clients = rep
        .get("clients")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let named_by_clients = clients.flat_map(|c| {
        ["defaultClientScopes", "optionalClientScopes"]
            .into_iter()
            .filter_map(|k| c.get(k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
    });
    let named: Vec<&str> = realm
        .default_default_client_scopes
        .iter()
        .chain(&realm.default_optional_client_scopes)
        .map(String::as_str)
        .chain(named_by_clients)
        .collect();
    for b in builtin_client_scopes(&realm.id) {
        if named.contains(&b.name.as_str()) && !out.iter().any(|o| o.name == b.name) {
            out.push(b);
        }
    }
    Ok(out)
}

/// Creates a realm with its defaults (default roles, offline_access); also
/// used by bootstrap and import.
pub async fn create_realm(
    idp: &Idp,
    rep: &Value,
    ev: Vec<gatehouse_core::model::Event>,
) -> Result<Realm, AdminError> {
    let name = rep
        .get("realm")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::bad_request("Realm name is required"))?;
    let mut realm = Realm::new(name);
    if let Some(id) = rep.get("id").and_then(Value::as_str) {
        realm.id = id.to_owned();
    }
    repr::apply_realm(&mut realm, rep).map_err(AdminError::bad_request)?;
    // An export names its default role (a realm renamed at its source keeps
    // the old `default-roles-...` name).
    if let Some(n) = rep["defaultRole"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        repr::valid_name(n).map_err(AdminError::bad_request)?;
        realm
            .extra
            .insert("defaultRole".into(), json!({ "name": n }));
    }
    if idp.store.realm_by_name(&realm.name).await?.is_some() {
        return Err(AdminError::conflict(
            "Conflict detected. See logs for details".to_string(),
        ));
    }
    let mut ev = ev;
    for e in &mut ev {
        e.realm_id = realm.id.clone();
    }
    let scopes = initial_scopes(&realm, rep)?;
    idp.store.create_realm(&realm, &scopes, &ev).await?;
    // A full representation brings its own default roles (with their ids):
    // then the defaults are completed after its contents are imported.
    if rep.get("roles").is_none() {
        crate::bootstrap::realm_defaults(idp, &realm).await?;
    }
    Ok(realm)
}

async fn create(
    State(idp): State<Arc<Idp>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    // Keycloak's `create-realm` role (part of `admin`) is what this needs.
    let caller = super::guard_role(&idp, &h, "create-realm").await?;
    let rep = json_body(&body)?;
    let placeholder = Realm::new("_");
    let ev = event(&placeholder, &caller, "CREATE", "REALM", "", Some(&rep));
    let realm = crate::import::realm(&idp, &rep, vec![ev]).await?;
    crate::bootstrap::make_creator_admin(&idp, &realm.name, &caller.user_id).await?;
    Ok(created(&idp, &realm.name, ""))
}

/// `GET /admin/realms/{realm}`: the realm as [`shown`] to whoever may view
/// it; to the realm's other administrators (a user manager, say), as
/// Keycloak does, only its name and what its login pages present.
async fn one(RealmAdmin { idp, realm, caller }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let mut v = seen_by(&realm, &caller);
    with_default_role(&idp, &realm, &mut v).await?;
    Ok(Json(v))
}

/// Adds `defaultRole` to a full representation (not to the brief one).
async fn with_default_role(idp: &Idp, realm: &Realm, v: &mut Value) -> Result<(), AdminError> {
    if v.get("id").is_some()
        && let Some(role) = crate::bootstrap::default_role_rep(idp, realm).await?
    {
        v["defaultRole"] = role;
    }
    Ok(())
}

/// The realm as `caller` may see it: [`shown`] with `view-realm`, else its
/// name and login-page settings.
fn seen_by(realm: &Realm, caller: &super::AdminCaller) -> Value {
    if caller.holds(&["view-realm", "manage-realm"]) {
        return shown(realm);
    }
    let full = repr::realm(realm);
    let mut brief = json!({"realm": realm.name});
    for k in [
        "displayName",
        "displayNameHtml",
        "defaultLocale",
        "supportedLocales",
        "bruteForceProtected",
    ] {
        if let Some(v) = full.get(k) {
            brief[k] = v.clone();
        }
    }
    if caller.holds(&["view-users", "manage-users"]) {
        let flag = full["registrationEmailAsUsername"]
            .as_bool()
            .unwrap_or(false);
        brief["registrationEmailAsUsername"] = json!(flag);
    }
    brief
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let (mut r, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let rep = json_body(&body)?;
    let name = r.name.clone();
    // Identity providers have their own endpoints (as in Keycloak, an
    // update leaves them alone): a representation read back from GET has
    // their secrets masked and must not overwrite them.
    let mut applied = rep.clone();
    if let Some(o) = applied.as_object_mut() {
        o.remove("identityProviders");
        o.remove("identityProviderMappers");
    }
    let default_role = crate::bootstrap::default_role_name(&r);
    repr::apply_realm(&mut r, &applied).map_err(AdminError::bad_request)?;
    if r.name != name && idp.store.realm_by_name(&r.name).await?.is_some() {
        return Err(AdminError::conflict("Realm with same name exists"));
    }
    // Renamed, the realm keeps its default role under its old name.
    r.extra
        .insert("defaultRole".into(), json!({ "name": default_role }));
    let ev = event(&r, &caller, "UPDATE", "REALM", "", Some(&rep));
    idp.store.update_realm(&r, &[ev]).await?;
    if rep.get(crate::not_before::FIELD).is_some() {
        crate::not_before::publish(&idp, &r, None);
    }
    if r.name != name {
        crate::bootstrap::move_master_admin_client(&idp, &name, Some(&r.name)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /admin/realms/{realm}`: a master admin, or (as in Keycloak)
/// the realm's own `manage-realm` administrator, deletes it.
async fn remove(
    RealmAdmin {
        idp,
        caller,
        realm: r,
    }: RealmAdmin,
) -> Result<StatusCode, AdminError> {
    if r.name == "master" {
        return Err(AdminError::bad_request("Can't delete master realm"));
    }
    let ev = event(&r, &caller, "DELETE", "REALM", "", None);
    idp.store.delete_realm(&r.id, &[ev]).await?;
    crate::bootstrap::move_master_admin_client(&idp, &r.name, None).await?;
    idp.forget_keyring(&r.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn keys(RealmAdmin { idp, realm: r, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let now = gatehouse_core::time::now();
    let ring = idp.keyring(&r).await?;
    let mut out = vec![];
    let mut active = serde_json::Map::new();
    for k in idp.store.keys(&r.id).await? {
        // One active key per algorithm: the one that signs it now.
        let signs = gatehouse_jose::keys::Alg::parse(&k.alg)
            .ok()
            .and_then(|a| ring.signer_for(a, now))
            .is_some_and(|s| s.kid() == k.kid);
        // Published but not signing (passive, not yet, or outranked) is
        // PASSIVE; no longer published is DISABLED.
        let status = if signs {
            "ACTIVE"
        } else if k.retire_at.is_none_or(|t| t > now) {
            "PASSIVE"
        } else {
            "DISABLED"
        };
        if status == "ACTIVE" {
            active.insert(k.alg.clone(), json!(k.kid));
        }
        let jwk: Value = serde_json::from_str(&k.public_jwk).unwrap_or(Value::Null);
        out.push(json!({
            "kid": k.kid, "algorithm": k.alg, "type": jwk["kty"], "use": "SIG", "status": status,
            "providerId": k.kid, "providerPriority": k.priority, "validTo": k.retire_at.map(|t| t * 1000),
        }));
    }
    Ok(Json(json!({"active": active, "keys": out})))
}

#[derive(serde::Deserialize)]
struct RotateQuery {
    algorithm: Option<String>,
    /// Seconds the new key is published before it signs.
    publish_ahead: Option<i64>,
}

/// `POST .../clear-realm-cache`, `clear-user-cache`, `clear-keys-cache`,
/// `clear-crl-cache` (Keycloak's cache endpoints, 204): this node forgets
/// what it cached of realms, clients, scopes, users and roles (as after
/// any admin write) and the realm's key ring, so a change made to the
/// database behind its back shows at once instead of within the caches'
/// few seconds. There is no CRL cache; that one clears the rest too.
async fn clear_cache(RealmAdmin { idp, realm: r, .. }: RealmAdmin) -> StatusCode {
    idp.invalidate();
    idp.forget_keyring(&r.id);
    StatusCode::NO_CONTENT
}

async fn rotate(
    RealmAdmin { idp, realm: r, .. }: RealmAdmin,
    Query(q): Query<RotateQuery>,
) -> Result<Json<Value>, AdminError> {
    let alg = match q.algorithm.as_deref() {
        Some(a) => Some(
            gatehouse_jose::keys::Alg::parse(a)
                .map_err(|e| AdminError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let kid = crate::keyring::rotate(&idp, &r, alg, q.publish_ahead.unwrap_or(0)).await?;
    Ok(Json(json!({"kid": kid})))
}

/// `POST /admin/realms/{realm}/testSMTPConnection` with SMTP settings in
/// Keycloak's `smtpServer` shape (the admin console's "Test connection"):
/// sends a test message to the calling admin's own address, with the
/// realm's stored password where the settings carry the mask. 204 when
/// the server took it; 500 "Failed to send email" when it did not, as in
/// Keycloak. An admin without an address is the caller's mistake here (400;
/// Keycloak answers 500).
async fn test_smtp(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let mut settings = json_body(&body)?;
    if !settings.is_object() {
        return Err(AdminError::bad_request("Malformed JSON body"));
    }
    if settings["password"].as_str() == Some(repr::SECRET_MASK) {
        settings["password"] = realm
            .extra
            .get("smtpServer")
            .and_then(|s| s.get("password"))
            .cloned()
            .unwrap_or(Value::Null);
    }
    let mut me = None;
    for home in ["master", realm.name.as_str()] {
        if let Some(r) = idp.store.realm_by_name(home).await?
            && let Some(u) = idp.store.user(&r.id, &caller.user_id).await?
        {
            me = Some(u);
            break;
        }
    }
    let Some(to) = me.and_then(|u| u.email).filter(|e| !e.is_empty()) else {
        return Err(AdminError::bad_request(
            "Logged in user does not have an e-mail.",
        ));
    };
    let sent = crate::mail::Smtp::from_settings(&settings)
        .send(&to, None, &crate::mail::test_message())
        .await;
    if let Err(e) = sent {
        tracing::warn!(realm = %realm.name, error = %e, "SMTP test failed");
        return Err(AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to send email",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
