//! `GET /realms/{realm}`: Keycloak's published realm representation, which
//! adapters and python-keycloak's `public_key()` read to verify tokens
//! offline with the realm's public key: the realm's name, the active RS256
//! key's public key (base64 DER SubjectPublicKeyInfo, as Keycloak gives
//! it, whatever the realm's default algorithm: it makes an RS256 key if
//! the realm has none, as Keycloak makes a fallback key), and where its
//! token and account services are.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use gatehouse_jose::keys::Alg;
use serde_json::{Value, json};
use std::sync::Arc;

/// The published realm representation.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let ring = idp.keyring(&realm).await?;
    let rsa = crate::keyring::signer_as(&idp, &realm, &ring, Alg::RS256).await?;
    let spki = rsa.public_key_der()?;
    let iss = idp.issuer(&realm.name);
    Ok(Json(json!({
        "realm": realm.name,
        "public_key": base64::engine::general_purpose::STANDARD.encode(spki),
        "token-service": format!("{iss}/protocol/openid-connect"),
        "account-service": format!("{iss}/account"),
        "tokens-not-before": 0,
    })))
}
