//! `GET /admin/realms/{realm}/clients/{id}/certificates/{attr}`: the key
//! material configured on a client under an attribute prefix (Keycloak's
//! CertificateRepresentation), e.g. `jwt.credential`, whose certificate or
//! public key verifies the client's signed JWTs
//! (`oidc/client_assertion.rs`). Keys come with a realm import or a client
//! representation's attributes; generating keys and uploading keystores
//! through this resource is not implemented.

use super::RealmAdmin;
use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The route.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new().route(
        "/admin/realms/{realm}/clients/{id}/certificates/{attr}",
        get(info),
    )
}

async fn info(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = super::clients::load(&idp, &realm, &id).await?;
    let mut rep = Map::new();
    // Never a private key: Gatehouse does not keep clients' private keys.
    for (suffix, field) in [
        ("certificate", "certificate"),
        ("public.key", "publicKey"),
        ("kid", "kid"),
    ] {
        if let Some(v) = c.attributes.get(&format!("{attr}.{suffix}")) {
            rep.insert(field.into(), json!(v));
        }
    }
    Ok(Json(Value::Object(rep)))
}
