//! `GET /admin/{realm}/console/whoami`: who the admin console (and the
//! admin client's `whoAmI.find`) is talking as, and what it may manage.
//!
//! Master administrators hold the master realm's `admin` role, which
//! manages every realm; `realm_access` lists, for the realm asked about
//! (`currentRealm`), Keycloak's `realm-management` role names for what the
//! admin API offers them. A realm's own administrators ask at
//! `/admin/{realm}/console/whoami` with a token of that realm and see the
//! `realm-management` roles they hold there.

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
    if realm != "master" {
        let roles = crate::bootstrap::REALM_MANAGEMENT;
        return narrower(&idp, &headers, &realm, roles, &realm).await;
    }
    let current = q.current_realm.unwrap_or_else(|| "master".into());
    let caller = match super::guard(&idp, &headers).await {
        Ok(c) => c,
        // A master user without `admin`: its `{realm}-realm` roles.
        Err(e) if e.status == axum::http::StatusCode::FORBIDDEN => {
            let client = crate::bootstrap::master_admin_client(&current);
            return narrower(&idp, &headers, "master", &client, &current).await;
        }
        Err(e) => return Err(e),
    };
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
    let current = super::realm(&idp, &current).await?;
    let display = display_name(&user);
    let mut access = serde_json::Map::new();
    access.insert(current.name.clone(), json!(MANAGEMENT_ROLES));
    Ok(Json(json!({
        "userId": user.id, "realm": master.name, "displayName": display,
        "locale": user.attributes.get("locale").and_then(|l| l.first()),
        "createRealm": create_realm, "realm_access": access, "temporary": false,
    })))
}

/// How the console greets `user`: their names, else their username.
fn display_name(user: &gatehouse_core::model::User) -> String {
    match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n.clone(),
        (None, None) => user.username.clone(),
    }
}

/// `whoami` for an administrator by narrower roles: a token of realm
/// `issuer` whose roles of client `client` (the realm's own
/// `realm-management`, or master's `{realm}-realm`) administer realm
/// `current`. As Keycloak answers it, `realm_access` names `current` with
/// the roles held (composites expanded; none is an empty list, not an
/// error); only a `master` user with `create-realm` creates realms. 401
/// for a token that is not an active one of `issuer`.
async fn narrower(
    idp: &Idp,
    headers: &HeaderMap,
    issuer: &str,
    client: &str,
    current: &str,
) -> Result<Json<Value>, AdminError> {
    let realm = super::realm(idp, issuer).await?;
    let current = super::realm(idp, current).await?;
    let (active, all) = super::signed_in(idp, headers, &realm).await?;
    // Only `master`'s `create-realm` creates realms.
    let create_realm = realm.name == "master"
        && all
            .iter()
            .any(|r| r.client_id.is_none() && r.name == "create-realm");
    let mut roles = super::client_role_names(idp, &realm, &all, client).await?;
    roles.sort();
    roles.dedup();
    let user = &active.user;
    let mut access = serde_json::Map::new();
    access.insert(current.name.clone(), json!(roles));
    Ok(Json(json!({
        "userId": user.id, "realm": realm.name, "displayName": display_name(user),
        "locale": user.attributes.get("locale").and_then(|l| l.first()),
        "createRealm": create_realm, "realm_access": access, "temporary": false,
    })))
}
