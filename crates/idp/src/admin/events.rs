//! `GET /admin/realms/{realm}/events` and `/admin-events`, with Keycloak's
//! filters (`type`/`operationTypes`, `client`, `user`, `dateFrom`, `dateTo`,
//! `first`, `max`).

use super::RealmAdmin;
use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::RawQuery;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_store::EventQuery;
use serde_json::{Value, json};
use std::sync::Arc;

/// Event routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route(
            "/admin/realms/{realm}/events",
            get(user_events).delete(clear_user_events),
        )
        .route(
            "/admin/realms/{realm}/admin-events",
            get(admin_events).delete(clear_admin_events),
        )
        .route(
            "/admin/realms/{realm}/events/config",
            get(config).put(put_config),
        )
}

/// The RealmEventsConfigRepresentation fields (the same names as in the
/// realm representation, where they are kept).
const CONFIG_FIELDS: &[&str] = &[
    "eventsEnabled",
    "eventsExpiration",
    "eventsListeners",
    "enabledEventTypes",
    "adminEventsEnabled",
    "adminEventsDetailsEnabled",
];

/// `GET /admin/realms/{realm}/events/config`.
async fn config(RealmAdmin { idp: _, realm, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let rep = crate::repr::realm(&realm);
    let mut out = json!({
        "eventsEnabled": realm.events_enabled,
        "eventsListeners": ["jboss-logging"],
        "enabledEventTypes": [],
        "adminEventsEnabled": realm.admin_events_enabled,
        "adminEventsDetailsEnabled": false,
    });
    for k in CONFIG_FIELDS {
        if let Some(v) = rep.get(*k) {
            out[*k] = v.clone();
        }
    }
    Ok(Json(out))
}

/// `PUT /admin/realms/{realm}/events/config`: only the config's own fields
/// are read, anything else in the body is ignored.
async fn put_config(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: axum::body::Bytes,
) -> Result<axum::http::StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let rep = super::json_body(&body)?;
    let Some(obj) = rep.as_object() else {
        return Err(AdminError::bad_request("Malformed JSON body"));
    };
    let part: serde_json::Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| CONFIG_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::repr::apply_realm(&mut realm, &Value::Object(part.clone()))
        .map_err(AdminError::bad_request)?;
    let ev = super::event(
        &realm,
        &caller,
        "UPDATE",
        "REALM",
        "events/config",
        Some(&Value::Object(part)),
    );
    idp.store.update_realm(&realm, &[ev]).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

fn date_ms(s: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    // yyyy-MM-dd, as Keycloak accepts.
    let mut it = s.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    if it.next().is_some() {
        return None;
    }
    let days = gatehouse_core::time::days_of_written_date(y, m, d)?;
    Some(days * 86_400_000 + if end_of_day { 86_399_999 } else { 0 })
}

fn bad_date(which: &str) -> AdminError {
    AdminError::bad_request(format!(
        "Invalid value for 'Date({which})', expected format is yyyy-MM-dd"
    ))
}

/// The store query for a listing's parameters; None when they exclude
/// every event (an `authRealm` other than `master`, where every admin
/// signs in).
fn query(
    raw: Option<String>,
    category: &str,
    kinds_key: &str,
) -> Result<Option<EventQuery>, AdminError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw.unwrap_or_default())
        .map_err(|_| AdminError::bad_request("Malformed query"))?;
    let mut q = EventQuery {
        category: category.into(),
        max: 100,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            k if k == kinds_key => q.kinds.push(v),
            "client" | "authClient" => q.client_id = Some(v),
            "user" | "authUser" => q.user_id = Some(v),
            // A date that does not parse is refused (Keycloak's words), not
            // dropped: the answer would hold events outside the asked range.
            "dateFrom" => {
                q.date_from_ms = Some(date_ms(&v, false).ok_or_else(|| bad_date("From"))?)
            }
            "dateTo" => q.date_to_ms = Some(date_ms(&v, true).ok_or_else(|| bad_date("To"))?),
            "ipAddress" | "authIpAddress" => q.ip_address = Some(v),
            "resourceTypes" if category == "admin" => q.resource_types.push(v),
            "resourcePath" if category == "admin" => q.resource_path = Some(v),
            "authRealm" if category == "admin" && v != "master" => return Ok(None),
            "first" => q.first = v.parse().map_err(|_| AdminError::bad_request("first"))?,
            "max" => q.max = v.parse().map_err(|_| AdminError::bad_request("max"))?,
            _ => {}
        }
    }
    Ok(Some(q))
}

fn details(e: &gatehouse_core::model::Event) -> Value {
    json!(e.details)
}

async fn user_events(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AdminError> {
    idp.flush_events().await;
    let Some(q) = query(raw, "user", "type")? else {
        return Ok(Json(json!([])));
    };
    let events = idp.store.events(&realm.id, &q).await?;
    Ok(Json(json!(events.iter().map(|e| json!({
        "id": e.id, "time": e.time, "type": e.kind, "realmId": realm.id, "clientId": e.client_id,
        "userId": e.user_id, "sessionId": e.session_id, "ipAddress": e.ip_address, "error": e.error,
        "details": details(e),
    })).collect::<Vec<_>>())))
}

async fn admin_events(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AdminError> {
    let Some(q) = query(raw, "admin", "operationTypes")? else {
        return Ok(Json(json!([])));
    };
    let events = idp.store.events(&realm.id, &q).await?;
    Ok(Json(json!(events.iter().map(|e| json!({
        "id": e.id, "time": e.time, "realmId": realm.id, "operationType": e.kind,
        "resourceType": e.resource_type, "resourcePath": e.resource_path,
        "representation": e.representation, "error": e.error,
        "authDetails": {"realmId": "master", "clientId": e.client_id, "userId": e.user_id, "ipAddress": e.ip_address},
    })).collect::<Vec<_>>())))
}

/// `DELETE /admin/realms/{realm}/events`: Keycloak's "clear events"
/// (no admin event records it, as in Keycloak). Events still waiting in
/// this node's batch are written first, so none lands after the clearing.
async fn clear_user_events(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
) -> Result<axum::http::StatusCode, AdminError> {
    idp.flush_events().await;
    idp.store.clear_events(&realm.id, "user", &[]).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `DELETE /admin/realms/{realm}/admin-events`.
async fn clear_admin_events(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
) -> Result<axum::http::StatusCode, AdminError> {
    idp.store.clear_events(&realm.id, "admin", &[]).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_parse_as_keycloak_accepts() {
        assert_eq!(super::date_ms("1970-01-02", false), Some(86_400_000));
        assert_eq!(super::date_ms("2024-03-01", false), Some(1_709_251_200_000));
        assert_eq!(super::date_ms("garbage", false), None);
        for bad in [
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "2024-01-01-01",
            "2024-01",
            "9223372036854775807-01-01",
            "10000-01-01",
        ] {
            assert_eq!(super::date_ms(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn an_unreadable_date_is_refused_not_dropped() {
        for (q, which) in [("dateFrom=notadate", "From"), ("dateTo=2024-13-01", "To")] {
            let e = super::query(Some(q.into()), "user", "type").expect_err(q);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(
                e.message.contains(&format!("Date({which})")),
                "{}",
                e.message
            );
        }
        assert!(super::query(Some("dateFrom=2024-01-31".into()), "user", "type").is_ok());
    }
}
