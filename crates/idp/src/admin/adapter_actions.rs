//! Keycloak's endpoints for the old adapter protocol, where Keycloak calls
//! into an application at its admin URL (`adminUrl`):
//! `POST /admin/realms/{realm}/clients/{id}/nodes` and
//! `DELETE .../nodes/{node}` (the application's cluster nodes, kept on the
//! client as `registeredNodes`), `GET .../test-nodes-available`,
//! `POST .../clients/{id}/push-revocation` and
//! `POST /admin/realms/{realm}/push-revocation`.
//!
//! Gatehouse keeps the node registry (it is part of the client and of an
//! export) but sends nothing to admin URLs: the Java adapters that listened
//! there are gone from Keycloak too. The answers say so truthfully, as
//! Keycloak's `GlobalRequestResult`: a client without an admin URL has
//! nothing to reach (both lists empty, as in Keycloak); one with an admin
//! URL is listed under `failedRequests`, never as a success.

use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gatehouse_core::model::Client;
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const C: &str = "/admin/realms/{realm}/clients/{id}";
    Router::new()
        .route(&format!("{C}/nodes"), post(register_node))
        .route(&format!("{C}/nodes/{{node}}"), delete(unregister_node))
        .route(&format!("{C}/test-nodes-available"), get(test_nodes))
        .route(&format!("{C}/push-revocation"), post(push_client))
        .route("/admin/realms/{realm}/push-revocation", post(push_realm))
}

/// The registry Keycloak shows as `registeredNodes`: node → registration
/// time (Unix seconds).
fn nodes(c: &Client) -> serde_json::Map<String, Value> {
    c.extra
        .get("registeredNodes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn set_nodes(c: &mut Client, n: serde_json::Map<String, Value>) {
    if n.is_empty() {
        c.extra.remove("registeredNodes");
    } else {
        c.extra.insert("registeredNodes".into(), Value::Object(n));
    }
}

/// The admin URL requests would go to, if the client has one.
fn admin_url(c: &Client) -> Option<&str> {
    c.extra
        .get("adminUrl")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
}

/// `GlobalRequestResult` for requests not sent to these admin URLs.
fn not_sent<'a>(urls: impl Iterator<Item = &'a str>) -> Value {
    let failed: Vec<&str> = urls.collect();
    json!({"successRequests": [], "failedRequests": failed})
}

async fn register_node(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = idp.lock_row(&id).await;
    let mut c = super::clients::load(&idp, &realm, &id).await?;
    let params = json_body(&body)?;
    let node = params
        .get("node")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::bad_request("Node not found in params"))?;
    // Keycloak's ReservedCharValidator: no markup in a node name.
    if node.is_empty() || node.len() > 255 || node.contains(['<', '>', '&', '"', '\'']) {
        return Err(AdminError::bad_request("Invalid node name"));
    }
    let mut n = nodes(&c);
    n.insert(node.to_owned(), json!(gatehouse_core::time::now()));
    set_nodes(&mut c, n);
    let path = format!("clients/{id}/nodes/{node}");
    let ev = event(&realm, &caller, "CREATE", "CLUSTER_NODE", &path, None);
    idp.store.update_client(&c, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unregister_node(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, node)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = idp.lock_row(&id).await;
    let mut c = super::clients::load(&idp, &realm, &id).await?;
    let mut n = nodes(&c);
    if n.remove(&node).is_none() {
        return Err(AdminError::missing(&format!(
            "Client does not have node {node}"
        )));
    }
    set_nodes(&mut c, n);
    let path = format!("clients/{id}/nodes/{node}");
    let ev = event(&realm, &caller, "DELETE", "CLUSTER_NODE", &path, None);
    idp.store.update_client(&c, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_nodes(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = super::clients::load(&idp, &realm, &id).await?;
    let Some(base) = admin_url(&c) else {
        return Ok(Json(not_sent(std::iter::empty())));
    };
    let urls: Vec<String> = nodes(&c)
        .keys()
        .map(|node| base.replace("${application.session.host}", node))
        .collect();
    Ok(Json(not_sent(urls.iter().map(String::as_str))))
}

async fn push_client(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = super::clients::load(&idp, &realm, &id).await?;
    let result = not_sent(admin_url(&c).into_iter());
    let path = format!("clients/{id}/push-revocation");
    let ev = event(&realm, &caller, "ACTION", "CLIENT", &path, None);
    idp.store.append_events(&[ev]).await?;
    Ok(Json(result))
}

async fn push_realm(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
) -> Result<Json<Value>, AdminError> {
    let clients = idp.store.clients(&realm.id).await?;
    let result = not_sent(clients.iter().filter_map(admin_url));
    let ev = event(&realm, &caller, "ACTION", "REALM", "push-revocation", None);
    idp.store.append_events(&[ev]).await?;
    Ok(Json(result))
}
