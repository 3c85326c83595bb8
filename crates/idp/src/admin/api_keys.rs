//! `/admin/realms/{realm}/api-keys` (Gatehouse's own, not Keycloak's): API
//! keys for the gateway's `apikey` authorizer. The key is returned once, at
//! creation; only its SHA-256 is stored. Deleting a key revokes it at the
//! in-process gateway at once.

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_core::model::{ApiKey, UsagePlan};
use serde_json::{Value, json};
use std::sync::Arc;

/// API key routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route("/admin/realms/{realm}/api-keys", get(list).post(create))
        .route("/admin/realms/{realm}/api-keys/{id}", delete(remove))
}

fn repr(k: &ApiKey) -> Value {
    json!({"id": k.id, "name": k.name, "consumer": k.consumer, "prefix": k.prefix, "enabled": k.enabled,
           "createdTimestamp": k.created_timestamp, "plan": k.plan, "scopes": k.scopes})
}

async fn list(RealmAdmin { idp, realm, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let keys = idp.store.api_keys(&realm.id).await?;
    Ok(Json(json!(keys.iter().map(repr).collect::<Vec<_>>())))
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<Value>), AdminError> {
    let rep = json_body(&body)?;
    let name = rep
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AdminError::bad_request("name is required"))?;
    let consumer = rep
        .get("consumer")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AdminError::bad_request("consumer is required"))?;
    let plan: UsagePlan = match rep.get("plan") {
        Some(p) => serde_json::from_value(p.clone())
            .map_err(|e| AdminError::bad_request(format!("plan: {e}")))?,
        None => UsagePlan::default(),
    };
    if plan.rate_per_second == Some(0) || plan.burst == Some(0) {
        return Err(AdminError::bad_request(
            "plan: ratePerSecond and burst must be positive",
        ));
    }
    let scopes: Vec<String> = rep
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let key = format!("ghk_{}", gatehouse_core::id::token());
    let k = ApiKey {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        name: name.to_owned(),
        consumer: consumer.to_owned(),
        prefix: key[..12].to_owned(),
        enabled: rep.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        created_timestamp: gatehouse_core::time::now_millis(),
        plan,
        scopes,
    };
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "API_KEY",
        &format!("api-keys/{}", k.id),
        Some(&repr(&k)),
    );
    idp.store
        .create_api_key(&k, &gatehouse_core::id::sha256_hex(key.as_bytes()), &[ev])
        .await?;
    let mut out = repr(&k);
    out["key"] = json!(key);
    let location = created(&idp, &realm.name, &format!("api-keys/{}", k.id));
    Ok((StatusCode::CREATED, location.headers().clone(), Json(out)))
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "API_KEY",
        &format!("api-keys/{id}"),
        None,
    );
    idp.store.delete_api_key(&realm.id, &id, &[ev]).await?;
    // Revoked at the gateway on its next request, whatever it cached.
    idp.revocations.token(
        &format!("apikey:{id}"),
        gatehouse_core::time::now() + 86_400,
    );
    Ok(StatusCode::NO_CONTENT)
}
