//! Keycloak's fine-grained admin permissions
//! (`users-management-permissions`, `clients/{id}/management/permissions`,
//! `groups/{id}/management/permissions`,
//! `roles-by-id/{id}/management/permissions`,
//! `identity-provider/instances/{alias}/management/permissions`): they do not exist in
//! Gatehouse (a realm's admins manage all of it), so they read as off, and
//! turning them on is refused rather than stored and ignored.

use super::{RealmAdmin, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// Permission routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const R: &str = "/admin/realms/{realm}";
    let mut r = axum::Router::new().route(
        &format!("{R}/users-management-permissions"),
        get(realm_wide).put(put_realm_wide),
    );
    // The parameter keeps each family's name for that segment (the
    // router refuses two names at one place).
    for (kind, param) in [
        ("clients", "id"),
        ("groups", "id"),
        ("roles-by-id", "id"),
        ("identity-provider/instances", "alias"),
    ] {
        r = r.route(
            &format!("{R}/{kind}/{{{param}}}/management/permissions"),
            get(of_one).put(put_of_one),
        );
    }
    r
}

fn off() -> Json<Value> {
    Json(json!({"enabled": false}))
}

/// Accepts `{"enabled": false}` (what is already true), refuses enabling.
fn refuse_enabling(body: &Bytes) -> Result<Json<Value>, AdminError> {
    if json_body(body)?["enabled"].as_bool() == Some(true) {
        return Err(AdminError::bad_request(
            "Fine-grained admin permissions are not supported",
        ));
    }
    Ok(off())
}

async fn realm_wide(_: RealmAdmin) -> Json<Value> {
    off()
}

async fn put_realm_wide(_: RealmAdmin, body: Bytes) -> Result<Json<Value>, AdminError> {
    refuse_enabling(&body)
}

/// The client, group or role the path names must exist (404 as Keycloak).
async fn exists(a: &RealmAdmin, uri: &axum::http::Uri, id: &str) -> Result<(), AdminError> {
    let (store, realm) = (&a.idp.store, &a.realm.id);
    let path = uri.path();
    let found = if path.contains("/identity-provider/instances/") {
        super::identity_providers::exists_alias(&a.realm, id)
    } else if path.contains("/clients/") {
        store.client(realm, id).await?.is_some()
    } else if path.contains("/groups/") {
        store.group(realm, id).await?.is_some()
    } else {
        store.role(realm, id).await?.is_some()
    };
    found
        .then_some(())
        .ok_or_else(|| AdminError::missing("Could not find resource"))
}

async fn of_one(
    a: RealmAdmin,
    uri: axum::http::Uri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    exists(&a, &uri, &id).await?;
    Ok(off())
}

async fn put_of_one(
    a: RealmAdmin,
    uri: axum::http::Uri,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    exists(&a, &uri, &id).await?;
    refuse_enabling(&body)
}
