//! `/realms/{realm}/account/sessions[/devices|/{id}]`: the user's own
//! sign-ins, and signing out of them (Keycloak's `SessionResource`).
//!
//! A "session" here is what Keycloak calls a user session: a browser SSO
//! session with the client sessions made from it, or a session a grant
//! made directly (password, device). Offline sessions are not listed, as
//! in Keycloak. Gatehouse keeps no user agent, so every session is on one
//! device of unknown kind (Keycloak's `DeviceRepresentation.unknown()`).

use super::{AccountCaller, role};
use crate::error::AdminError;
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use gatehouse_core::model::Session;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The user's online sessions, each with the client ids signed in
/// through it.
async fn grouped(caller: &AccountCaller) -> Result<Vec<(Session, Vec<String>)>, AdminError> {
    let all: Vec<Session> = caller
        .idp
        .store
        .user_sessions(&caller.user.id)
        .await?
        .into_iter()
        .filter(|s| !s.offline)
        .collect();
    let mut out: Vec<(Session, Vec<String>)> = Vec::new();
    for s in all.iter().filter(|s| s.sso_session_id.is_none()) {
        let mut clients: Vec<String> = std::iter::once(&s.client_id)
            .chain(
                all.iter()
                    .filter(|c| c.sso_session_id.as_deref() == Some(&s.id))
                    .map(|c| &c.client_id),
            )
            .filter(|c| !c.is_empty())
            .cloned()
            .collect();
        clients.sort();
        clients.dedup();
        out.push((s.clone(), clients));
    }
    Ok(out)
}

/// Keycloak's account `SessionRepresentation` (times in seconds).
async fn repr(caller: &AccountCaller, s: &Session, clients: &[String]) -> Value {
    let mut list = Vec::new();
    for id in clients {
        let name = match caller.idp.client(&caller.realm, id).await {
            Ok(Some(c)) => c.name,
            _ => None,
        };
        let mut c = json!({"clientId": id});
        if let Some(n) = name {
            c["clientName"] = json!(n);
        }
        list.push(c);
    }
    let mut rep = json!({"id": s.id, "ipAddress": s.ip.clone().unwrap_or_default(),
                         "started": s.started, "lastAccess": s.last_access,
                         "expires": s.started + caller.realm.session_limits(s.remember_me).1,
                         "browser": "Other/Unknown", "clients": list});
    if caller.is_current(s) {
        rep["current"] = json!(true);
    }
    rep
}

/// `GET /account/sessions`.
pub async fn list(caller: AccountCaller) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let mut out = Vec::new();
    for (s, clients) in grouped(&caller).await? {
        out.push(repr(&caller, &s, &clients).await);
    }
    Ok(Json(json!(out)))
}

/// `GET /account/sessions/devices`: the sessions by device; with no user
/// agent kept, one device holds them all.
pub async fn devices(caller: AccountCaller) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let sessions = grouped(&caller).await?;
    if sessions.is_empty() {
        return Ok(Json(json!([])));
    }
    let mut reps = Vec::new();
    let mut last_access = 0;
    let mut current = false;
    for (s, clients) in &sessions {
        last_access = last_access.max(s.last_access);
        current |= caller.is_current(s);
        reps.push(repr(&caller, s, clients).await);
    }
    let mut device = json!({"os": "Other", "osVersion": "Unknown", "device": "Other",
                            "lastAccess": last_access, "mobile": false, "sessions": reps});
    if current {
        device["current"] = json!(true);
    }
    Ok(Json(json!([device])))
}

#[derive(serde::Deserialize)]
pub struct LogoutQuery {
    #[serde(default, deserialize_with = "crate::admin::lenient_bool")]
    current: Option<bool>,
}

/// `DELETE /account/sessions[?current=true]`: signs out of every other
/// session, or of all of them with `current=true`. 204.
pub async fn logout_all(
    caller: AccountCaller,
    Query(q): Query<LogoutQuery>,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    let keep_current = q.current != Some(true);
    for (s, _) in grouped(&caller).await? {
        if keep_current && caller.is_current(&s) {
            continue;
        }
        end(&caller, &s.id, None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /account/sessions/{id}`: 204 whether or not it was the user's
/// (Keycloak answers the same, so ids of others' sessions cannot be probed).
pub async fn logout_one(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    if let Some(s) = caller.idp.store.session(id).await?
        && s.user_id == caller.user.id
        && s.realm_id == caller.realm.id
        && !s.offline
    {
        end(&caller, &s.id, None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends one of the caller's sessions (a `LOGOUT` event, naming the client
/// it was revoked for when an application's sessions are ended).
pub(super) async fn end(
    caller: &AccountCaller,
    id: &str,
    revoked_client: Option<&str>,
) -> Result<(), AdminError> {
    let mut ev = caller.event("LOGOUT");
    ev.session_id = Some(id.to_owned());
    if let Some(c) = revoked_client {
        ev.details.insert("revoked_client".into(), c.to_owned());
    }
    let ended = caller.idp.store.delete_session(id, &[ev]).await?;
    caller.idp.sessions_ended(&caller.realm, &ended).await;
    Ok(())
}
