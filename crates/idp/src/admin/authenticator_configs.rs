//! `/admin/realms/{realm}/authentication/config[/{id}]`,
//! `.../authentication/executions/{id}/config` and
//! `.../authentication/config-description/{provider}`: settings of flow
//! steps (Keycloak's `authenticatorConfig`, kept where its export keeps
//! them and named by an execution's `authenticatorConfig` alias).
//!
//! The steps Gatehouse runs take no settings; these are kept for flows and
//! steps it stores without running (unbound copies, disabled steps), so a
//! Keycloak realm's configuration survives a round trip and scripts that
//! manage it work.

use super::authentication_flows::{
    editable, find_execution, known_authenticator, name_field, store_flows,
};
use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const A: &str = "/admin/realms/{realm}/authentication";
    Router::new()
        .route(&format!("{A}/executions/{{id}}/config"), post(create))
        .route(
            &format!("{A}/config/{{id}}"),
            get(one).put(update).delete(remove),
        )
        .route(
            &format!("{A}/config-description/{{provider}}"),
            get(description),
        )
}

/// The realm's configs (AuthenticatorConfigRepresentation list).
fn configs(realm: &Realm) -> Vec<Value> {
    realm
        .extra
        .get("authenticatorConfig")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The settings of a representation: string values only, as Keycloak keeps them.
fn settings(rep: &Value) -> Result<Value, AdminError> {
    match rep.get("config") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(o)) if o.values().all(Value::is_string) => Ok(Value::Object(o.clone())),
        Some(_) => Err(AdminError::bad_request("config must map names to strings")),
    }
}

/// `POST .../executions/{id}/config`: a config for the step (201 +
/// Location), which the step then names.
async fn create(
    mut a: RealmAdmin,
    Path((_, execution)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let alias = name_field(
        &rep,
        "alias",
        AdminError::bad_request("Config alias is missing"),
    )?
    .to_owned();
    let mut all = editable(&a.realm);
    let (fi, pos) =
        find_execution(&all, &execution).ok_or_else(|| AdminError::missing("Illegal execution"))?;
    let mut list = configs(&a.realm);
    if list.iter().any(|c| c["alias"] == alias.as_str()) {
        return Err(AdminError::conflict(format!(
            "Authenticator config {alias} already exists"
        )));
    }
    let id = gatehouse_core::id::uuid();
    list.push(json!({"id": id, "alias": alias, "config": settings(&rep)?}));
    all[fi]["authenticationExecutions"][pos]["authenticatorConfig"] = json!(alias);
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("authenticatorConfig".into(), Value::Array(list));
    let a = RealmAdmin { realm, ..a };
    let path = format!("authentication/executions/{execution}/config");
    store_flows(
        &a,
        all,
        ("CREATE", "AUTHENTICATOR_CONFIG", &path, Some(&rep)),
    )
    .await?;
    Ok(super::created(
        &a.idp,
        &a.realm.name,
        &format!("authentication/config/{id}"),
    ))
}

fn find(realm: &Realm, id: &str) -> Result<(Vec<Value>, usize), AdminError> {
    let list = configs(realm);
    let i = list
        .iter()
        .position(|c| c["id"] == id)
        .ok_or_else(|| AdminError::missing("Could not find authenticator config"))?;
    Ok((list, i))
}

async fn one(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (list, i) = find(&realm, &id)?;
    Ok(Json(list[i].clone()))
}

/// `PUT .../config/{id}`: new settings (the alias stays: steps name it).
async fn update(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let (mut list, i) = find(&a.realm, &id)?;
    list[i]["config"] = settings(&rep)?;
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("authenticatorConfig".into(), Value::Array(list));
    let ev = event(
        &realm,
        &a.caller,
        "UPDATE",
        "AUTHENTICATOR_CONFIG",
        &format!("authentication/config/{id}"),
        Some(&rep),
    );
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../config/{id}`: the config, and the steps' references to it.
async fn remove(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let (mut list, i) = find(&a.realm, &id)?;
    let gone = list.remove(i);
    let mut all = editable(&a.realm);
    for f in all.iter_mut() {
        for e in f["authenticationExecutions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if e["authenticatorConfig"] == gone["alias"]
                && let Some(o) = e.as_object_mut()
            {
                o.remove("authenticatorConfig");
            }
        }
    }
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("authenticatorConfig".into(), Value::Array(list));
    let a = RealmAdmin { realm, ..a };
    let path = format!("authentication/config/{id}");
    store_flows(&a, all, ("DELETE", "AUTHENTICATOR_CONFIG", &path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../config-description/{provider}`: what a step's config holds.
/// The authenticators Gatehouse knows have no settings it reads.
async fn description(
    _: RealmAdmin,
    Path((_, provider)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let name = known_authenticator(&provider)
        .ok_or_else(|| AdminError::missing("Could not find authenticator provider"))?;
    Ok(Json(
        json!({"name": name, "providerId": provider, "helpText": "", "properties": []}),
    ))
}
