//! Realm-wide session administration at Keycloak's paths:
//! `POST /admin/realms/{realm}/logout-all`,
//! `GET /admin/realms/{realm}/client-session-stats`, and per client
//! `GET .../clients/{id}/user-sessions|session-count|offline-sessions|offline-session-count`.
//! (A user's own sessions live in `users.rs`.)

use super::{Paging, RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::Session;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const C: &str = "/admin/realms/{realm}/clients/{id}";
    Router::new()
        .route("/admin/realms/{realm}/logout-all", post(logout_all))
        .route("/admin/realms/{realm}/client-session-stats", get(stats))
        .route(&format!("{C}/user-sessions"), get(listed::<false>))
        .route(&format!("{C}/offline-sessions"), get(listed::<true>))
        .route(&format!("{C}/session-count"), get(counted::<false>))
        .route(&format!("{C}/offline-session-count"), get(counted::<true>))
}

/// Keycloak's `UserSessionRepresentation`.
pub fn repr(s: &Session, username: &str, client_uuid: Option<&str>) -> Value {
    let clients = match client_uuid {
        Some(id) if !s.client_id.is_empty() => json!({ id: s.client_id }),
        _ if !s.client_id.is_empty() => json!({ s.client_id.clone(): s.client_id }),
        _ => json!({}),
    };
    json!({"id": s.id, "username": username, "userId": s.user_id,
           "ipAddress": s.ip.clone().unwrap_or_default(), "start": s.started * 1000,
           "lastAccess": s.last_access * 1000, "clients": clients})
}

/// Ends every session of the realm. Keycloak answers with the outcome of
/// pushing the logout to clients' admin URLs; Gatehouse pushes to none.
async fn logout_all(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
) -> Result<Json<Value>, AdminError> {
    let ev = event(&realm, &caller, "ACTION", "REALM", "logout-all", None);
    let ended = idp.store.delete_realm_sessions(&realm.id, &[ev]).await?;
    idp.sessions_ended(&realm, &ended).await;
    Ok(Json(json!({"successRequests": [], "failedRequests": []})))
}

/// Active and offline session counts per client that has any, with
/// Keycloak's string-valued counts.
async fn stats(RealmAdmin { idp, realm, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in idp.store.realm_sessions(&realm.id).await? {
        if s.client_id.is_empty() {
            continue;
        }
        let c = counts.entry(s.client_id).or_default();
        if s.offline {
            c.1 += 1;
        } else {
            c.0 += 1;
        }
    }
    let mut out = vec![];
    for (client_id, (active, offline)) in counts {
        let Some(c) = idp.client(&realm, &client_id).await? else {
            continue;
        };
        out.push(json!({"id": c.id, "clientId": client_id,
                        "active": active.to_string(), "offline": offline.to_string()}));
    }
    Ok(Json(json!(out)))
}

/// The client's sessions of the kind asked for (`OFFLINE` or online).
async fn client_sessions<const OFFLINE: bool>(
    RealmAdmin { idp, realm, .. }: &RealmAdmin,
    id: &str,
) -> Result<(Vec<Session>, String), AdminError> {
    let client = super::clients::load(idp, realm, id).await?;
    let list = idp
        .store
        .realm_sessions(&realm.id)
        .await?
        .into_iter()
        .filter(|s| s.client_id == client.client_id && s.offline == OFFLINE)
        .collect();
    Ok((list, client.id))
}

async fn listed<const OFFLINE: bool>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, AdminError> {
    let (list, client_uuid) = client_sessions::<OFFLINE>(&admin, &id).await?;
    let RealmAdmin { idp, realm, .. } = admin;
    let mut out = vec![];
    for s in paging.window(list.iter()) {
        let username = idp
            .user(&realm, &s.user_id)
            .await?
            .map(|u| u.username.clone())
            .unwrap_or_default();
        out.push(repr(s, &username, Some(&client_uuid)));
    }
    Ok(Json(json!(out)))
}

async fn counted<const OFFLINE: bool>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (list, _) = client_sessions::<OFFLINE>(&admin, &id).await?;
    Ok(Json(json!({"count": list.len()})))
}
