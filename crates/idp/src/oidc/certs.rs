//! `GET /realms/{realm}/protocol/openid-connect/certs`: the realm's JWKS,
//! including keys published ahead of signing and keys still retiring.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;

/// The JWKS document.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
) -> Result<impl IntoResponse, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let ring = idp.keyring(&realm).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-cache")],
        Json(ring.jwks.clone()),
    ))
}
