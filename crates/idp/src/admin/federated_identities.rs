//! `/admin/realms/{realm}/users/{id}/federated-identity[/{provider}]`: a
//! user's links to accounts at identity providers (Keycloak's federated
//! identities). Gatehouse does not broker logins yet, but keeps the links
//! so that a realm migrated from Keycloak (they travel in the export's
//! `federatedIdentities`) or managed by scripts loses none.
//!
//! As in Keycloak, a link may name any alias, and the listing shows only
//! links whose provider the realm has.

use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::{FederatedIdentity, Realm, User};
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const F: &str = "/admin/realms/{realm}/users/{id}/federated-identity";
    Router::new()
        .route(F, get(list))
        .route(&format!("{F}/{{provider}}"), post(link).delete(unlink))
}

/// FederatedIdentityRepresentation.
pub fn repr(f: &FederatedIdentity) -> Value {
    json!({"identityProvider": f.identity_provider, "userId": f.user_id, "userName": f.user_name})
}

/// The user's links whose provider the realm has (what Keycloak lists and
/// exports).
pub fn visible<'a>(realm: &'a Realm, u: &'a User) -> impl Iterator<Item = &'a FederatedIdentity> {
    u.federated_identities
        .iter()
        .filter(|f| super::identity_providers::exists(realm, &f.identity_provider))
}

/// Reads the `federatedIdentities` of a UserRepresentation; every entry
/// needs `identityProvider`, `userId` and `userName`.
pub fn parse(rep: &Value) -> Result<Vec<FederatedIdentity>, AdminError> {
    let Some(list) = rep.get("federatedIdentities").filter(|v| !v.is_null()) else {
        return Ok(vec![]);
    };
    let items = list
        .as_array()
        .ok_or_else(|| AdminError::bad_request("federatedIdentities must be a list"))?;
    let mut out: Vec<FederatedIdentity> = Vec::new();
    for v in items {
        let provider = field(v, "identityProvider")?;
        if out.iter().any(|f| f.identity_provider == provider) {
            return Err(AdminError::conflict("User is already linked with provider"));
        }
        out.push(FederatedIdentity {
            identity_provider: provider,
            user_id: field(v, "userId")?,
            user_name: field(v, "userName")?,
        });
    }
    Ok(out)
}

fn field(v: &Value, name: &str) -> Result<String, AdminError> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_owned)
        .ok_or_else(|| AdminError::bad_request(format!("{name} is missing or invalid")))
}

async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let u = super::users::load(&idp, &realm, &id).await?;
    Ok(Json(Value::Array(visible(&realm, &u).map(repr).collect())))
}

async fn link(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, provider)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let mut u = super::users::load(&idp, &realm, &id).await?;
    if u.federated_identities
        .iter()
        .any(|f| f.identity_provider == provider)
    {
        return Err(AdminError::conflict("User is already linked with provider"));
    }
    let mut rep = json_body(&body)?;
    // The path names the provider, whatever the body says.
    rep["identityProvider"] = json!(provider);
    let [link] = parse(&json!({"federatedIdentities": [rep]}))?
        .try_into()
        .map_err(|_| AdminError::bad_request("one link expected"))?;
    u.federated_identities.push(link.clone());
    let path = format!("users/{id}/federated-identity/{provider}");
    let ev = event(&realm, &caller, "CREATE", "USER", &path, Some(&repr(&link)));
    idp.store.update_user(&u, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlink(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, provider)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let mut u = super::users::load(&idp, &realm, &id).await?;
    let before = u.federated_identities.len();
    u.federated_identities
        .retain(|f| f.identity_provider != provider);
    if u.federated_identities.len() == before {
        return Err(AdminError::missing("Link not found"));
    }
    let path = format!("users/{id}/federated-identity/{provider}");
    let ev = event(&realm, &caller, "DELETE", "USER", &path, None);
    idp.store.update_user(&u, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
