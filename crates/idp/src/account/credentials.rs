//! `/realms/{realm}/account/credentials[/{id}/label]`: the user's own
//! credentials by type, as Keycloak's `AccountCredentialResource` lists
//! them (a container per type the realm's flows use, with the user's
//! credentials of that type, never their secrets), and their labels.
//!
//! Gatehouse's login flows use a password and, where a realm asks for it,
//! a one-time code: both types are listed, as for a Keycloak realm on its
//! default browser flow (which holds the conditional OTP step). Removing a
//! credential here is not offered: Keycloak deprecates it in favour of the
//! `delete_credential` application-initiated action, and it needs the
//! token's level of authentication checked against the credential's.

use super::{AccountCaller, role};
use crate::error::AdminError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A credential type's container fields (Keycloak's `CredentialTypeMetadata`).
struct CredentialType {
    kind: &'static str,
    category: &'static str,
    icon: &'static str,
    create_action: Option<&'static str>,
    update_action: Option<&'static str>,
    removeable: bool,
}

/// The types, in Keycloak's order.
const TYPES: [CredentialType; 2] = [
    CredentialType {
        kind: "password",
        category: "basic-authentication",
        icon: "kcAuthenticatorPasswordClass",
        create_action: None,
        update_action: Some("UPDATE_PASSWORD"),
        removeable: false,
    },
    CredentialType {
        kind: "otp",
        category: "two-factor",
        icon: "kcAuthenticatorOTPClass",
        create_action: Some("CONFIGURE_TOTP"),
        update_action: None,
        removeable: true,
    },
];

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(
        default,
        rename = "user-credentials",
        deserialize_with = "crate::admin::lenient_bool"
    )]
    user_credentials: Option<bool>,
}

/// `GET /account/credentials[?type=..&user-credentials=false]`.
pub async fn list(
    caller: AccountCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let with_user = q.user_credentials != Some(false);
    let mine = if with_user {
        caller.idp.store.credentials(&caller.user.id).await?
    } else {
        vec![]
    };
    let mut out = Vec::new();
    for t in TYPES {
        let kind = t.kind;
        if q.kind.as_deref().is_some_and(|k| k != kind) {
            continue;
        }
        let mut c = json!({"type": kind, "category": t.category,
                           "displayName": format!("{kind}-display-name"),
                           "helptext": format!("{kind}-help-text"),
                           "iconCssClass": t.icon, "removeable": t.removeable});
        if let Some(a) = t.create_action {
            c["createAction"] = json!(a);
        }
        if let Some(a) = t.update_action {
            c["updateAction"] = json!(a);
        }
        if with_user {
            let metas: Vec<Value> = mine
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| json!({"credential": crate::repr::credential(m, false)}))
                .collect();
            c["userCredentialMetadatas"] = json!(metas);
        }
        out.push(c);
    }
    Ok(Json(json!(out)))
}

/// `PUT /account/credentials/{id}/label` with the label as a JSON string
/// (role `manage-account`). 204; 404 for a credential that is not the
/// user's.
pub async fn label(
    caller: AccountCaller,
    Path(params): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let label = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) => String::new(),
        _ => return Err(AdminError::bad_request("The label must be a JSON string")),
    };
    let label = label.trim();
    if label.chars().count() > 255 {
        return Err(AdminError::bad_request(
            "The label is longer than 255 characters",
        ));
    }
    let idp = &caller.idp;
    let _edit = idp.lock_row(&caller.user.id).await;
    let mut cred = idp
        .store
        .credentials(&caller.user.id)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AdminError::missing("Credential not found"))?;
    cred.user_label = (!label.is_empty()).then(|| label.to_owned());
    let mut ev = caller.event("UPDATE_CREDENTIAL");
    ev.details
        .insert("credential_type".into(), cred.kind.clone());
    ev.details.insert("credential_id".into(), cred.id.clone());
    idp.store.update_credential(&cred, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
