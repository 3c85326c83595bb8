//! `GET /realms/{realm}/account`: the signed-in user's own profile, the
//! one call of Keycloak's Account REST API that keycloak-js makes
//! (`loadUserProfile()`). Any active access token of the realm reads its
//! own user (Keycloak also wants the `view-profile` account role, which
//! Gatehouse does not model). The rest of the Account API (updates,
//! credentials, sessions, applications) is not there yet.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The profile, in the shape of Keycloak's `UserRepresentation` there.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let unauthorized = || {
        let mut e = OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token verification failed",
        );
        e.www_authenticate = Some(format!("Bearer realm=\"{}\"", realm.name));
        e
    };
    let token = crate::oidc::userinfo::bearer(&headers).ok_or_else(unauthorized)?;
    let active = crate::oidc::userinfo::active_access_token(&idp, &realm, token)
        .await?
        .ok_or_else(unauthorized)?;
    let u = &active.user;
    Ok(Json(json!({
        "id": u.id,
        "username": u.username,
        "firstName": u.first_name,
        "lastName": u.last_name,
        "email": u.email,
        "emailVerified": u.email_verified,
        "attributes": u.attributes,
    })))
}
