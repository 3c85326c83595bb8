//! `/realms/{realm}/account/applications[/{clientId}/consent|sessions]`:
//! the applications the user signed in to or consented to, what they were
//! allowed, and withdrawing it (Keycloak's account `applications` calls).

use super::{AccountCaller, role};
use crate::error::AdminError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Client, Consent, Session};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(serde::Deserialize)]
pub struct ListQuery {
    name: Option<String>,
}

/// Keycloak's account `ConsentRepresentation`: the granted scopes by id,
/// name and consent text.
async fn consent_repr(caller: &AccountCaller, c: &Consent) -> Result<Value, AdminError> {
    let scopes = caller.idp.client_scopes(&caller.realm).await?;
    let granted: Vec<Value> = c
        .scopes
        .iter()
        .filter_map(|name| {
            let s = scopes.iter().find(|s| &s.name == name)?;
            let text = s.attributes.get("consent.screen.text");
            let mut v = json!({"id": s.id, "name": text.unwrap_or(&s.name)});
            if let Some(t) = text {
                v["displayText"] = json!(t);
            }
            Some(v)
        })
        .collect();
    Ok(json!({"grantedScopes": granted, "createdDate": c.created, "lastUpdatedDate": c.updated}))
}

/// `GET /account/applications[?name=]`: clients with a session, an
/// offline token or a consent of the user, and those set to always show.
pub async fn list(
    caller: AccountCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_APPLICATIONS])?;
    let idp = &caller.idp;
    let sessions = idp.store.user_sessions(&caller.user.id).await?;
    let in_use: BTreeSet<&str> = sessions
        .iter()
        .filter(|s| !s.offline)
        .map(|s| s.client_id.as_str())
        .collect();
    let offline: BTreeSet<&str> = sessions
        .iter()
        .filter(|s| s.offline)
        .map(|s| s.client_id.as_str())
        .collect();
    let consents: BTreeMap<String, Consent> = idp
        .store
        .consents(&caller.user.id)
        .await?
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    let mut ids: BTreeSet<String> = in_use
        .iter()
        .chain(offline.iter())
        .map(|s| s.to_string())
        .chain(consents.keys().cloned())
        .filter(|c| !c.is_empty())
        .collect();
    let all = idp.store.clients(&caller.realm.id).await?;
    for c in &all {
        if c.extra.get("alwaysDisplayInConsole") == Some(&json!(true)) {
            ids.insert(c.client_id.clone());
        }
    }
    let wanted = q.name.as_deref().map(str::to_lowercase);
    let mut out = Vec::new();
    for c in all.iter().filter(|c| ids.contains(&c.client_id)) {
        if c.bearer_only {
            continue;
        }
        if let Some(w) = &wanted
            && !c
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(w))
        {
            continue;
        }
        let mut rep = app_repr(&caller, c);
        rep["inUse"] = json!(in_use.contains(c.client_id.as_str()));
        rep["offlineAccess"] = json!(offline.contains(c.client_id.as_str()));
        if let Some(consent) = consents.get(&c.client_id) {
            rep["consent"] = consent_repr(&caller, consent).await?;
            for (attr, field) in [
                ("logoUri", "logoUri"),
                ("policyUri", "policyUri"),
                ("tosUri", "tosUri"),
            ] {
                if let Some(v) = c.attributes.get(attr) {
                    rep[field] = json!(v);
                }
            }
        }
        out.push(rep);
    }
    Ok(Json(json!(out)))
}

/// The fields of Keycloak's account `ClientRepresentation` a client has.
fn app_repr(caller: &AccountCaller, c: &Client) -> Value {
    let text = |k: &str| c.extra.get(k).and_then(Value::as_str).map(str::to_owned);
    let root = text("rootUrl").map(|r| r.replace("${authBaseUrl}", &caller.idp.public_url));
    let base = text("baseUrl");
    let consent = c.extra.get("consentRequired") == Some(&json!(true));
    let mut rep = json!({"clientId": c.client_id, "userConsentRequired": consent});
    for (k, v) in [
        ("clientName", c.name.clone()),
        ("description", c.description.clone()),
        ("rootUrl", root.clone()),
        ("baseUrl", base.clone()),
    ] {
        if let Some(v) = v {
            rep[k] = json!(v);
        }
    }
    let effective = match (root, base) {
        (Some(r), Some(b)) if b.starts_with('/') => Some(format!("{}{b}", r.trim_end_matches('/'))),
        (_, Some(b)) => Some(b),
        (Some(r), None) => Some(r),
        (None, None) => None,
    };
    if let Some(e) = effective {
        rep["effectiveUrl"] = json!(e);
    }
    rep
}

fn client_id(params: &BTreeMap<String, String>) -> &str {
    params.get("client").map(String::as_str).unwrap_or_default()
}

async fn client_or_404(caller: &AccountCaller, id: &str) -> Result<Client, AdminError> {
    caller
        .idp
        .client(&caller.realm, id)
        .await?
        .ok_or_else(|| AdminError::missing(&format!("No client with clientId: {id} found.")))
}

/// `GET /account/applications/{clientId}/consent`: 200 with the consent,
/// 204 when there is none.
pub async fn consent(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<Response, AdminError> {
    caller.require(&[
        role::MANAGE_ACCOUNT,
        role::VIEW_CONSENT,
        role::MANAGE_CONSENT,
    ])?;
    let client = client_or_404(&caller, client_id(&params)).await?;
    match crate::oidc::auth::consent::given(&caller.idp, &caller.user.id, &client.client_id).await?
    {
        Some(c) => Ok(Json(consent_repr(&caller, &c).await?).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST` or `PUT /account/applications/{clientId}/consent` with
/// `{"grantedScopes": [{"id": ...}]}`: sets the consent to those client
/// scopes (ids of the realm's scopes). 200 with the consent.
pub async fn grant(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::MANAGE_CONSENT])?;
    let client = client_or_404(&caller, client_id(&params)).await?;
    let rep = crate::admin::json_body(&body)?;
    let scopes = caller.idp.client_scopes(&caller.realm).await?;
    let mut names = Vec::new();
    for s in rep["grantedScopes"].as_array().into_iter().flatten() {
        let id = s["id"].as_str().unwrap_or_default();
        let scope = scopes.iter().find(|x| x.id == id).ok_or_else(|| {
            AdminError::bad_request(format!(
                "Scope id {id} does not exist for client {}.",
                client.client_id
            ))
        })?;
        if !names.contains(&scope.name) {
            names.push(scope.name.clone());
        }
    }
    let now = gatehouse_core::time::now_millis();
    let previous =
        crate::oidc::auth::consent::given(&caller.idp, &caller.user.id, &client.client_id).await?;
    let mut ev = caller.event(if previous.is_some() {
        "UPDATE_CONSENT"
    } else {
        "GRANT_CONSENT"
    });
    ev.details
        .insert("granted_client".into(), client.client_id.clone());
    ev.details.insert("scope".into(), names.join(" "));
    let consent = Consent {
        user_id: caller.user.id.clone(),
        client_id: client.client_id.clone(),
        scopes: names,
        created: previous.map_or(now, |p| p.created),
        updated: now,
    };
    caller.idp.store.put_consent(&consent, &[ev]).await?;
    Ok(Json(consent_repr(&caller, &consent).await?).into_response())
}

/// `DELETE /account/applications/{clientId}/consent`: withdraws the
/// consent, and with it the client's sessions and offline tokens of the
/// user (Keycloak's `revokeConsentToClient`). 204.
pub async fn revoke(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::MANAGE_CONSENT])?;
    let client = client_or_404(&caller, client_id(&params)).await?;
    let mut ev = caller.event("REVOKE_GRANT");
    ev.client_id = Some(client.client_id.clone());
    ev.details
        .insert("revoked_client".into(), client.client_id.clone());
    let had = caller
        .idp
        .store
        .delete_consent(&caller.user.id, &client.client_id, &[ev])
        .await?;
    end_client_sessions(&caller, &client.client_id, had).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /account/applications/{clientId}/sessions`: signs the user out
/// of that application, online and offline. 204, also for an unknown
/// client (Keycloak's answer, so client ids cannot be probed).
pub async fn sign_out(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    end_client_sessions(&caller, client_id(&params), true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the user's sessions of `client`: offline ones always, online ones
/// when `online`.
async fn end_client_sessions(
    caller: &AccountCaller,
    client: &str,
    online: bool,
) -> Result<(), AdminError> {
    let sessions: Vec<Session> = caller
        .idp
        .store
        .user_sessions(&caller.user.id)
        .await?
        .into_iter()
        .filter(|s| s.client_id == client && (s.offline || online))
        .collect();
    for s in sessions {
        super::sessions::end(caller, &s.id, Some(client)).await?;
    }
    Ok(())
}
