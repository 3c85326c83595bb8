//! `/health/live`, `/health/ready` (Keycloak's paths) for orchestrators.

use crate::state::Idp;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// Health routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "UP", "checks": []})) }),
        )
        .route("/health/ready", get(ready))
}

async fn ready(State(idp): State<Arc<Idp>>) -> (StatusCode, Json<Value>) {
    match idp.store.realm_by_name("master").await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({"status": "UP", "checks": [{"name": "database", "status": "UP"}]})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "DOWN", "checks": [{"name": "database", "status": "DOWN"}]})),
            )
        }
    }
}
