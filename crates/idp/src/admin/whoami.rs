//! `GET /admin/{realm}/console/whoami`: who the admin console (and the
//! admin client's `whoAmI.find`) is talking as, and what it may manage.
//!
//! Gatehouse's administrators hold the master realm's `admin` role, which
//! manages every realm; `realm_access` lists, for the realm asked about
//! (`currentRealm`), Keycloak's `realm-management` role names for what the
//! admin API here offers. There are no fine-grained admin roles, so the
//! list is the same for every realm.

use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;

/// The console route.
pub fn routes() -> axum::Router<Arc<Idp>> {
    axum::Router::new().route("/admin/{realm}/console/whoami", axum::routing::get(whoami))
}

/// What the admin role lets a caller do, in `realm-management` terms.
const MANAGEMENT_ROLES: &[&str] = &[
    "view-realm",
    "manage-realm",
    "view-users",
    "manage-users",
    "query-users",
    "query-groups",
    "view-clients",
    "manage-clients",
    "query-clients",
    "create-client",
    "view-events",
    "manage-events",
    "query-realms",
];

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WhoAmIQuery {
    current_realm: Option<String>,
}

async fn whoami(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Query<WhoAmIQuery>,
) -> Result<Json<Value>, AdminError> {
    let caller = super::guard(&idp, &headers).await?;
    if realm != "master" {
        // Admins live in master: no one signs in to another realm's console.
        return Err(AdminError::not_found("Realm"));
    }
    let master = super::realm(&idp, "master").await?;
    let user = idp
        .store
        .user(&master.id, &caller.user_id)
        .await?
        .ok_or_else(|| AdminError::not_found("User"))?;
    let create_realm = idp
        .store
        .effective_roles(&user.id)
        .await?
        .iter()
        .any(|r| r.client_id.is_none() && r.name == "create-realm");
    let current = q.current_realm.unwrap_or_else(|| "master".into());
    let current = super::realm(&idp, &current).await?;
    let display = match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n.clone(),
        (None, None) => user.username.clone(),
    };
    let mut access = serde_json::Map::new();
    access.insert(current.name.clone(), json!(MANAGEMENT_ROLES));
    Ok(Json(json!({
        "userId": user.id, "realm": master.name, "displayName": display,
        "locale": user.attributes.get("locale").and_then(|l| l.first()),
        "createRealm": create_realm, "realm_access": access, "temporary": false,
    })))
}
