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
        return own_realm(&idp, &headers, &realm).await;
    }
    let caller = super::guard(&idp, &headers).await?;
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

/// `whoami` for a token of realm `name` itself (a realm's own
/// administrator, or a script's service account): as Keycloak answers it,
/// `realm_access` names that realm with the `realm-management` roles the
/// user holds (composites expanded; none is an empty list, not an error),
/// and such a user never creates realms. 401 for a token that is not an
/// active one of that realm.
async fn own_realm(idp: &Idp, headers: &HeaderMap, name: &str) -> Result<Json<Value>, AdminError> {
    let unauthorized = || {
        AdminError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "HTTP 401 Unauthorized",
        )
    };
    let realm = super::realm(idp, name).await?;
    let token = crate::oidc::userinfo::bearer(headers).ok_or_else(unauthorized)?;
    let active = crate::oidc::userinfo::active_access_token(idp, &realm, token)
        .await?
        .ok_or_else(unauthorized)?;
    let management = idp
        .store
        .client_by_client_id(&realm.id, crate::bootstrap::REALM_MANAGEMENT)
        .await?;
    let mut roles: Vec<String> = idp
        .store
        .effective_roles(&active.user.id)
        .await?
        .into_iter()
        .filter(|r| {
            management
                .as_ref()
                .is_some_and(|c| r.client_id.as_deref() == Some(&c.id))
        })
        .map(|r| r.name)
        .collect();
    roles.sort();
    roles.dedup();
    let user = &active.user;
    let mut access = serde_json::Map::new();
    access.insert(realm.name.clone(), json!(roles));
    Ok(Json(json!({
        "userId": user.id, "realm": realm.name, "displayName": display_name(user),
        "locale": user.attributes.get("locale").and_then(|l| l.first()),
        "createRealm": false, "realm_access": access, "temporary": false,
    })))
}
