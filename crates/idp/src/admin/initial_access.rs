//! `/admin/realms/{realm}/clients-initial-access`: Keycloak's client
//! initial access tokens, which let an application register a client
//! itself (`/realms/{realm}/clients-registrations/...`) a limited number of
//! times, without an admin account.

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_core::model::InitialAccess;
use serde_json::{Value, json};
use std::sync::Arc;

/// Initial access routes.
pub fn routes() -> Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/clients-initial-access";
    Router::new()
        .route(P, get(list).post(create))
        .route(&format!("{P}/{{id}}"), delete(remove))
}

/// Keycloak's `ClientInitialAccessPresentation` (the token only at creation).
fn repr(ia: &InitialAccess) -> Value {
    json!({"id": ia.id, "timestamp": ia.timestamp, "expiration": ia.expiration,
           "count": ia.count, "remainingCount": ia.remaining_count})
}

async fn list(RealmAdmin { idp, realm, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let all = idp.store.initial_accesses(&realm.id).await?;
    Ok(Json(json!(all.iter().map(repr).collect::<Vec<_>>())))
}

/// A non-negative integer field, or the body of Keycloak's answer to a
/// bad one (its OAuth2-style error).
fn non_negative(rep: &Value, field: &str, default: i64) -> Result<i64, Value> {
    let what = if field == "expiration" {
        "expiration time interval"
    } else {
        field
    };
    match rep.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            json!({"error": format!("Invalid value for {field}"),
                   "error_description": format!("The {what} must be an integer not less than 0")})
        }),
    }
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<Response, AdminError> {
    let rep = if body.is_empty() {
        json!({})
    } else {
        json_body(&body)?
    };
    // Keycloak's defaults: no expiry, one registration.
    let (expiration, count) = match (
        non_negative(&rep, "expiration", 0),
        non_negative(&rep, "count", 1),
    ) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(body), _) | (_, Err(body)) => {
            return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    };
    let ia = InitialAccess {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        timestamp: gatehouse_core::time::now(),
        expiration,
        count,
        remaining_count: count,
    };
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "CLIENT_INITIAL_ACCESS_MODEL",
        &format!("clients-initial-access/{}", ia.id),
        Some(&repr(&ia)),
    );
    let token = crate::client_registration::initial_access_token(&idp, &realm, &ia).await?;
    idp.store.create_initial_access(&ia, &[ev]).await?;
    let mut out = repr(&ia);
    out["token"] = json!(token);
    let location = created(
        &idp,
        &realm.name,
        &format!("clients-initial-access/{}", ia.id),
    );
    // Keycloak's code sets 201, but what its server sends is 200 (the
    // status set on the response is lost when the method returns the
    // entity), and python-keycloak accepts only 200; admin-client takes either.
    Ok((StatusCode::OK, location.headers().clone(), Json(out)).into_response())
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "CLIENT_INITIAL_ACCESS_MODEL",
        &format!("clients-initial-access/{id}"),
        None,
    );
    // As Keycloak: deleting a token that is gone already is not an error.
    match idp.store.delete_initial_access(&realm.id, &id, &[ev]).await {
        Ok(()) | Err(gatehouse_store::Error::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}
