//! `/admin/realms/{realm}/user-storage/{id}/...` and
//! `/admin/realms/{realm}/testLDAPConnection`: Keycloak's user-storage
//! provider resource, for LDAP providers (`user_storage.rs`): the
//! provider's name, a full or changed-users sync, removing or unlinking
//! the users it imported, and the admin console's connection test. The
//! providers themselves are components (`components.rs`).

use super::components::Component;
use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::ldap::LdapProvider;
use crate::repr::SECRET_MASK;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const S: &str = "/admin/realms/{realm}/user-storage/{id}";
    Router::new()
        .route(&format!("{S}/name"), get(name))
        .route(&format!("{S}/sync"), post(sync))
        .route(&format!("{S}/mappers/{{mapper}}/sync"), post(sync_mapper))
        .route(&format!("{S}/{{op}}"), post(imported_users))
        .route(
            "/admin/realms/{realm}/testLDAPConnection",
            post(test_connection),
        )
}

/// The user-storage component `id`, with Keycloak's 404 texts.
fn storage(realm: &gatehouse_core::model::Realm, id: &str) -> Result<Component, AdminError> {
    if let Some(c) = crate::user_storage::component(realm, id) {
        return Ok(c);
    }
    Err(
        if super::components::all(realm).iter().any(|c| c.id == id) {
            AdminError::missing("found, but not a UserStorageProvider")
        } else {
            AdminError::missing("Could not find component")
        },
    )
}

/// The provider's id and name (what the admin console shows on a user
/// it imported).
async fn name(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = storage(&realm, &id)?;
    Ok(Json(json!({"id": c.id, "name": c.name})))
}

#[derive(Deserialize)]
struct SyncQuery {
    action: Option<String>,
}

/// `triggerFullSync` imports every directory user; `triggerChangedUsersSync`
/// those created or changed since the last sync (`user_storage::run_sync`).
async fn sync(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<SyncQuery>,
) -> Result<Json<Value>, AdminError> {
    let c = storage(&realm, &id)?;
    let changed_only = match q.action.as_deref() {
        Some("triggerFullSync") => false,
        Some("triggerChangedUsersSync") => true,
        None | Some("") => return Err(AdminError::bad_request("Missing action")),
        Some(a) => return Err(AdminError::bad_request(format!("Unknown action: {a}"))),
    };
    let p = LdapProvider::from_component(&c)
        .ok_or_else(|| AdminError::bad_request("Only LDAP providers can be synchronized"))?;
    if !p.enabled || !p.import_enabled {
        return Ok(Json(
            json!({"ignored": true, "added": 0, "updated": 0, "removed": 0,
            "failed": 0, "status": "Synchronization ignored: the provider is disabled or does not import users"}),
        ));
    }
    let r = crate::user_storage::run_sync(&idp, &realm, &p, changed_only).await?;
    let rep = r.repr();
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("user-storage/{id}/sync"),
        Some(&rep),
    );
    idp.record(ev).await?;
    Ok(Json(rep))
}

#[derive(Deserialize)]
struct MapperSyncQuery {
    direction: Option<String>,
}

/// A mapper's sync (`direction=fedToKeycloak`): a group mapper creates the
/// directory's groups here (and with `drop.non.existing.groups.during.sync`
/// removes the ones under its path the directory no longer has), a role
/// mapper creates its roles; other mappers have nothing to sync. Nothing
/// is written to the directory: `keycloakToFed` is refused.
async fn sync_mapper(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, mapper)): Path<(String, String, String)>,
    Query(q): Query<MapperSyncQuery>,
) -> Result<Json<Value>, AdminError> {
    let c = storage(&realm, &id)?;
    if !c.children.iter().any(|m| m.id == mapper) {
        return Err(AdminError::missing("Could not find mapper"));
    }
    match q.direction.as_deref() {
        Some("fedToKeycloak") => {}
        Some("keycloakToFed") => {
            return Err(AdminError::bad_request(
                "Gatehouse's LDAP providers are read-only: nothing is synced to the directory",
            ));
        }
        _ => return Err(AdminError::bad_request("Unknown direction")),
    }
    let p = LdapProvider::from_component(&c)
        .ok_or_else(|| AdminError::bad_request("Only LDAP providers can be synchronized"))?;
    let r = crate::user_storage::sync_mapper(&idp, &realm, &p, &mapper).await?;
    let rep = r.repr();
    let path = format!("user-storage/{id}/mappers/{mapper}/sync");
    idp.record(event(&realm, &caller, "ACTION", "USER", &path, Some(&rep)))
        .await?;
    Ok(Json(rep))
}

/// `remove-imported-users` deletes the users the provider imported;
/// `unlink-users` keeps them as local users.
async fn imported_users(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, op)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    storage(&realm, &id)?;
    match op.as_str() {
        "remove-imported-users" => crate::user_storage::remove_imported(&idp, &realm, &id).await?,
        "unlink-users" => crate::user_storage::unlink(&idp, &realm, &id).await?,
        _ => return Err(AdminError::not_found("Resource")),
    };
    let path = format!("user-storage/{id}/{op}");
    idp.record(event(&realm, &caller, "ACTION", "USER", &path, None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keycloak's connection test (TestLdapConnectionRepresentation, as JSON
/// or as the older form): `testConnection` connects, `testAuthentication`
/// binds too. A masked bind password means the stored provider's
/// (`componentId`), and only for that provider's own URL and bind DN, so
/// a test cannot send its password somewhere else. 204, or 400 with
/// Keycloak's `errorMessage`; the reason goes to the log.
async fn test_connection(
    RealmAdmin { realm, .. }: RealmAdmin,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .or_else(|| {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).ok()?;
            Some(Value::Object(
                form.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ))
        })
        .ok_or_else(|| AdminError::bad_request("Invalid LDAP test request"))?;
    let text = |k: &str| rep.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let url = text("connectionUrl").ok_or_else(|| AdminError::bad_request("LDAP test error"))?;
    let authenticate = text("action") == Some("testAuthentication");
    let mut credential = text("bindCredential").map(str::to_owned);
    if credential.as_deref() == Some(SECRET_MASK) {
        let stored = text("componentId")
            .and_then(|id| crate::user_storage::component(&realm, id))
            .filter(|c| {
                c.value("connectionUrl") == Some(url) && c.value("bindDn") == text("bindDn")
            });
        credential = stored.and_then(|c| c.value("bindCredential").map(str::to_owned));
        if credential.is_none() {
            return Err(AdminError::bad_request("LDAP test error"));
        }
    }
    let bind = match (authenticate, text("authType")) {
        (false, _) | (true, Some("none")) => None,
        (true, _) => Some((
            text("bindDn").unwrap_or(""),
            credential.as_deref().unwrap_or(""),
        )),
    };
    if let Some((dn, pw)) = bind
        && (dn.is_empty() || pw.is_empty())
    {
        return Err(AdminError::bad_request("LDAP test error"));
    }
    let start_tls = text("startTls") == Some("true") || rep.get("startTls") == Some(&json!(true));
    let timeout = text("connectionTimeout");
    match crate::ldap::test_connection(url, start_tls, timeout, bind).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::info!(realm = %realm.name, error = %e, "LDAP connection test failed");
            Err(AdminError::bad_request("LDAP test error"))
        }
    }
}
