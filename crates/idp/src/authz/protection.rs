//! `/realms/{realm}/authz/protection/...`: the UMA protection API a
//! resource server calls with its own token (a PAT: a token of its
//! service account, which holds the client role `uma_protection`), as
//! Keycloak's policy enforcers do: `resource_set` to find (by URI, name,
//! type, scope) and, when the server allows remote resource management,
//! create, update and delete its resources; `permission` to obtain a
//! permission ticket for resources and scopes a caller lacks, which the
//! caller redeems at the token endpoint's UMA grant (`ticket`). And
//! `/realms/{realm}/.well-known/uma2-configuration`, where Keycloak's
//! authorization clients find these endpoints.

use super::{Resource, ResourceServer};
use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_core::model::{Client, Realm};
use serde_json::{Value, json};
use std::sync::Arc;

/// The client role that makes a token a PAT.
pub const PROTECTION_ROLE: &str = "uma_protection";
/// How long a permission ticket may wait to be redeemed (seconds).
const TICKET_LIFESPAN: i64 = 300;

/// The protection API's routes and the UMA metadata.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const P: &str = "/realms/{realm}/authz/protection";
    axum::Router::new()
        .route(
            "/realms/{realm}/.well-known/uma2-configuration",
            get(metadata),
        )
        .route(&format!("{P}/resource_set"), get(list).post(create))
        .route(
            &format!("{P}/resource_set/{{rid}}"),
            get(one).put(update).delete(remove),
        )
        .route(&format!("{P}/permission"), axum::routing::post(ticket))
}

/// Keycloak's UMA 2.0 metadata: the realm's OpenID Connect endpoints and
/// the protection API's.
async fn metadata(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let oidc = crate::oidc::discovery::document(&idp, &realm).await?;
    // Keycloak's UMA document: these fields of the OpenID one ...
    let mut out = serde_json::Map::new();
    for k in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "grant_types_supported",
        "response_types_supported",
        "response_modes_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "scopes_supported",
    ] {
        if let Some(v) = oidc.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    // ... and the protection API's.
    let iss = idp.issuer(&realm.name);
    out.insert(
        "resource_registration_endpoint".into(),
        json!(format!("{iss}/authz/protection/resource_set")),
    );
    out.insert(
        "permission_endpoint".into(),
        json!(format!("{iss}/authz/protection/permission")),
    );
    Ok(Json(Value::Object(out)))
}

/// The resource server a PAT stands for: its client, with the services
/// on, whose service account holds `uma_protection`.
async fn resource_server(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<(Client, ResourceServer), OAuthError> {
    let unauthorized = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Invalid bearer token",
        )
    };
    let token = crate::oidc::userinfo::bearer(headers).ok_or_else(unauthorized)?;
    let active = crate::oidc::userinfo::active_access_token(idp, realm, token)
        .await?
        .ok_or_else(unauthorized)?;
    let azp = active.claims["azp"].as_str().unwrap_or_default();
    let client = idp.client(realm, azp).await?.ok_or_else(unauthorized)?;
    let Some(rs) = ResourceServer::of(&client) else {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "invalid_clientId",
            format!("Client application [{azp}] is not registered as a resource server."),
        ));
    };
    let holds = idp
        .store
        .effective_roles(&active.user.id)
        .await?
        .iter()
        .any(|r| r.client_id.as_deref() == Some(client.id.as_str()) && r.name == PROTECTION_ROLE);
    if !holds {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "Requires uma_protection scope.",
        ));
    }
    Ok((client, rs))
}

/// Writes through the protection API need the server's consent.
fn remote_management(rs: &ResourceServer, client: &Client) -> Result<(), OAuthError> {
    if rs.allow_remote_resource_management {
        return Ok(());
    }
    Err(OAuthError::new(
        StatusCode::FORBIDDEN,
        "request_not_supported",
        format!(
            "Remote Resource Management not enabled on resource server [{}].",
            client.client_id
        ),
    ))
}

/// [`resource_server`] for a write: under the client's edit lock, with
/// the server's consent to remote management.
async fn for_write(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, Client, ResourceServer), OAuthError> {
    let (client, _) = resource_server(idp, realm, headers).await?;
    let edit = idp.lock_row(&client.id).await;
    // The document again, from the store under the lock (the PAT is not
    // checked twice): another write may have come first.
    let gone = || {
        OAuthError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Resource server not found",
        )
    };
    let client = idp
        .store
        .client(&realm.id, &client.id)
        .await?
        .ok_or_else(gone)?;
    let rs = ResourceServer::of(&client).ok_or_else(gone)?;
    remote_management(&rs, &client)?;
    Ok((edit, client, rs))
}

/// The protection API's resource representation: the admin one plus
/// UMA's `resource_scopes`.
fn uma_rep(rs: &ResourceServer, r: &Resource, client: &Client) -> Value {
    let mut v = super::resource_rep(rs, r, client);
    let names: Vec<Value> = r
        .scopes
        .iter()
        .filter_map(|id| rs.scope(id))
        .map(super::scope_brief)
        .collect();
    v["resource_scopes"] = json!(names);
    v
}

/// Whether a request path matches a resource URI pattern as Keycloak's
/// enforcers write them: exact, `/prefix/*` (anything below), and
/// `{param}` segments standing for one segment each.
pub fn uri_matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return path == prefix || path.starts_with(&format!("{prefix}/"));
    }
    if pattern == "/*" || pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let q: Vec<&str> = path.split('/').collect();
    p.len() == q.len()
        && p.iter()
            .zip(&q)
            .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}') && !b.is_empty()))
}

async fn list(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<super::ResourceQuery>,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (client, rs) = resource_server(&idp, &realm, &headers).await?;
    let page = q.page(&rs, &client);
    Ok(Json(if q.deep.unwrap_or(false) {
        json!(page.map(|r| uma_rep(&rs, r, &client)).collect::<Vec<_>>())
    } else {
        json!(page.map(|r| r.id.clone()).collect::<Vec<_>>())
    }))
}

/// A UMA resource representation as the admin API reads it
/// (`resource_scopes` as `scopes`); it must be an object.
fn as_admin_rep(mut rep: Value) -> Result<Value, OAuthError> {
    if !rep.is_object() {
        return Err(OAuthError::invalid_request("Malformed JSON body"));
    }
    if rep.get("scopes").is_none()
        && let Some(s) = rep.get("resource_scopes").cloned()
    {
        rep["scopes"] = s;
    }
    Ok(rep)
}

fn refused(r: super::Refused) -> OAuthError {
    let (status, m) = match r {
        super::Refused::Invalid(m) | super::Refused::Missing(m) => (StatusCode::BAD_REQUEST, m),
        super::Refused::Exists(m) => (StatusCode::CONFLICT, m),
    };
    OAuthError::new(status, "invalid_request", m)
}

fn body_json(body: &[u8]) -> Result<Value, OAuthError> {
    serde_json::from_slice(body).map_err(|_| OAuthError::invalid_request("Malformed JSON body"))
}

/// Stores the client with its new settings (no admin event: the server
/// itself made the change; Keycloak records none either).
async fn store(idp: &Idp, mut client: Client, rs: &ResourceServer) -> Result<(), OAuthError> {
    rs.store_in(&mut client);
    idp.store.update_client(&client, &[]).await?;
    idp.invalidate();
    Ok(())
}

async fn create(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let rep = as_admin_rep(body_json(&body)?)?;
    let (_edit, client, mut rs) = for_write(&idp, &realm, &headers).await?;
    let mut r = Resource {
        id: gatehouse_core::id::uuid(),
        ..Resource::default()
    };
    super::apply_resource(&mut rs, &mut r, &rep).map_err(refused)?;
    r.owner = crate::admin::authz::owner_of(&idp, &realm, &client, &rep)
        .await
        .map_err(|e| OAuthError::new(e.status, "invalid_request", e.message))?;
    rs.resources.push(r.clone());
    let shown = uma_rep(&rs, &r, &client);
    store(&idp, client, &rs).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn one(
    State(idp): State<Arc<Idp>>,
    Path((realm, rid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (client, rs) = resource_server(&idp, &realm, &headers).await?;
    let r = rs.resource(&rid).ok_or_else(not_found)?;
    Ok(Json(uma_rep(&rs, r, &client)))
}

fn not_found() -> OAuthError {
    OAuthError::new(StatusCode::NOT_FOUND, "not_found", "Resource not found")
}

async fn update(
    State(idp): State<Arc<Idp>>,
    Path((realm, rid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let rep = as_admin_rep(body_json(&body)?)?;
    let (_edit, client, mut rs) = for_write(&idp, &realm, &headers).await?;
    let mut r = rs.resource(&rid).cloned().ok_or_else(not_found)?;
    super::apply_resource(&mut rs, &mut r, &rep).map_err(refused)?;
    if let Some(slot) = rs.resources.iter_mut().find(|x| x.id == rid) {
        *slot = r;
    }
    store(&idp, client, &rs).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(idp): State<Arc<Idp>>,
    Path((realm, rid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (_edit, client, mut rs) = for_write(&idp, &realm, &headers).await?;
    if !rs.remove_resource(&rid) {
        return Err(not_found());
    }
    store(&idp, client, &rs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../permission`: a ticket for the resources and scopes asked
/// (one `{resource_id, resource_scopes}` or a list of them), which the
/// token endpoint's UMA grant redeems for this resource server.
async fn ticket(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (client, rs) = resource_server(&idp, &realm, &headers).await?;
    let rep = body_json(&body)?;
    let asked = match rep {
        Value::Array(a) => a,
        v @ Value::Object(_) => vec![v],
        _ => return Err(OAuthError::invalid_request("Invalid permission request")),
    };
    if asked.is_empty() {
        return Err(OAuthError::invalid_request("Invalid permission request"));
    }
    let mut permissions = vec![];
    for p in &asked {
        let rid = p.get("resource_id").and_then(Value::as_str);
        let resource = match rid {
            Some(id) => Some(rs.resource_ref(id).ok_or_else(|| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_resource_id",
                    format!("Resource with id [{id}] does not exist."),
                )
            })?),
            None => None,
        };
        let mut scopes = vec![];
        for s in p["resource_scopes"].as_array().into_iter().flatten() {
            let name = s
                .as_str()
                .or_else(|| s.get("name").and_then(Value::as_str))
                .unwrap_or_default();
            let scope = rs.scope_ref(name).ok_or_else(|| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("Scope [{name}] is invalid"),
                )
            })?;
            scopes.push(scope.name.clone());
        }
        if resource.is_none() && scopes.is_empty() {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource_id",
                "Resource id or name not provided",
            ));
        }
        permissions.push(json!({"rsid": resource.map(|r| r.id.clone()), "scopes": scopes}));
    }
    let now = gatehouse_core::time::now();
    let claims = json!({
        "jti": gatehouse_core::id::uuid(), "iat": now, "exp": now + TICKET_LIFESPAN,
        "iss": idp.issuer(&realm.name), "aud": client.client_id, "typ": "PermissionTicket",
        "permissions": permissions,
    });
    let ring = idp.keyring(&realm).await?;
    let ticket = gatehouse_jose::sign::sign_hs512(&ring.hs_secret, &realm.id, &claims)?;
    Ok((StatusCode::CREATED, Json(json!({"ticket": ticket}))).into_response())
}

/// A ticket this realm issued and that has not expired: the resource
/// server (clientId) and the permissions it stands for.
pub async fn redeem(
    idp: &Idp,
    realm: &Realm,
    ticket: &str,
) -> Result<(String, Vec<super::evaluate::Asked>), OAuthError> {
    let invalid = || OAuthError::invalid_grant("Invalid ticket");
    let ring = idp.keyring(realm).await?;
    let claims =
        gatehouse_jose::sign::verify_hs512(&ring.hs_secret, ticket).map_err(|_| invalid())?;
    if claims["typ"] != "PermissionTicket"
        || claims["iss"].as_str() != Some(idp.issuer(&realm.name).as_str())
        || claims["exp"]
            .as_i64()
            .is_none_or(|e| e < gatehouse_core::time::now())
    {
        return Err(invalid());
    }
    let aud = claims["aud"].as_str().ok_or_else(invalid)?.to_owned();
    Ok((
        aud,
        super::evaluate::Asked::from_permissions(&claims["permissions"]),
    ))
}

#[cfg(test)]
mod tests {
    use super::uri_matches;

    #[test]
    fn resource_uris_match_as_keycloak_enforcers_write_them() {
        assert!(uri_matches("/orders/*", "/orders/1"));
        assert!(uri_matches("/orders/*", "/orders"));
        assert!(!uri_matches("/orders/*", "/ordersx"));
        assert!(uri_matches("/orders/{id}/items", "/orders/7/items"));
        assert!(!uri_matches("/orders/{id}/items", "/orders//items"));
        assert!(!uri_matches("/orders/{id}", "/orders/7/items"));
        assert!(uri_matches("/*", "/anything"));
        assert!(uri_matches("/exact", "/exact"));
    }
}
