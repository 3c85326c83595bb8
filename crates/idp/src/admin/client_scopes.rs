//! `/admin/realms/{realm}/client-scopes...`: client scopes and their
//! protocol mappers; and `/admin/realms/{realm}/default-default-client-scopes`
//! / `default-optional-client-scopes`: the scopes a new client gets.

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{ClientScope, Realm};
use serde_json::{Value, json};
use std::sync::Arc;

/// Client-scope routes.
pub fn routes() -> Router<Arc<Idp>> {
    const S: &str = "/admin/realms/{realm}/client-scopes";
    Router::new()
        .route(S, get(list).post(create))
        .route(&format!("{S}/{{id}}"), get(one).put(update).delete(remove))
        .merge(super::mappers::routes::<ClientScope>())
        .route("/admin/realms/{realm}/{kind}", get(realm_defaults))
        .route(
            "/admin/realms/{realm}/{kind}/{id}",
            get(no_get).put(link_default).delete(link_default),
        )
}

/// `GET /admin/realms/{realm}/{kind}/{id}`: the default-scope links have
/// no GET (405), and any other two-segment path is unknown here (404, as
/// Keycloak answers an unknown resource), not a method error.
async fn no_get(
    _: RealmAdmin,
    Path((_, kind, _)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    is_default_list(&kind, REALM_DEFAULT, REALM_OPTIONAL)?;
    Ok(StatusCode::METHOD_NOT_ALLOWED)
}

/// `[{id, name}]` for the scopes named in `names` that exist, as Keycloak
/// lists a client's or realm's linked scopes.
pub fn links(all: &[ClientScope], names: &[String]) -> Value {
    json!(
        all.iter()
            .filter(|s| names.contains(&s.name))
            .map(|s| json!({"id": s.id, "name": s.name}))
            .collect::<Vec<_>>()
    )
}

async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<ClientScope, AdminError> {
    idp.store
        .client_scope(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::missing("Could not find client scope"))
}

fn taken(all: &[ClientScope], c: &ClientScope) -> Result<(), AdminError> {
    if all.iter().any(|o| o.name == c.name && o.id != c.id) {
        return Err(AdminError::conflict(format!(
            "Client Scope {} already exists",
            c.name
        )));
    }
    Ok(())
}

async fn list(RealmAdmin { idp, realm, .. }: RealmAdmin) -> Result<Json<Value>, AdminError> {
    let all = idp.store.client_scopes(&realm.id).await?;
    Ok(Json(json!(
        all.iter().map(repr::client_scope).collect::<Vec<_>>()
    )))
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let rep = json_body(&body)?;
    let mut c = ClientScope::new(&realm.id, "");
    if let Some(id) = rep.get("id").and_then(Value::as_str) {
        c.id = id.to_owned();
    }
    repr::apply_client_scope(&mut c, &rep).map_err(AdminError::bad_request)?;
    if c.name.is_empty() {
        return Err(AdminError::bad_request(
            "Unexpected name \"\" for ClientScope",
        ));
    }
    taken(&idp.store.client_scopes(&realm.id).await?, &c)?;
    let path = format!("client-scopes/{}", c.id);
    let ev = event(&realm, &caller, "CREATE", "CLIENT_SCOPE", &path, Some(&rep));
    idp.store.create_client_scope(&c, &[ev]).await?;
    Ok(created(&idp, &realm.name, &path))
}

async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(repr::client_scope(&load(&idp, &realm, &id).await?)))
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    repr::apply_client_scope(&mut c, &rep).map_err(AdminError::bad_request)?;
    taken(&idp.store.client_scopes(&realm.id).await?, &c)?;
    let path = format!("client-scopes/{id}");
    let ev = event(&realm, &caller, "UPDATE", "CLIENT_SCOPE", &path, Some(&rep));
    idp.store.update_client_scope(&c, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let path = format!("client-scopes/{id}");
    let ev = event(&realm, &caller, "DELETE", "CLIENT_SCOPE", &path, None);
    idp.store.delete_client_scope(&realm.id, &id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl super::mappers::Owner for ClientScope {
    const SEGMENT: &'static str = "client-scopes";
    async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Self, AdminError> {
        load(idp, realm, id).await
    }
    fn mappers(&mut self) -> &mut Vec<gatehouse_core::model::ProtocolMapper> {
        &mut self.protocol_mappers
    }
    async fn save(&self, idp: &Idp, ev: gatehouse_core::model::Event) -> Result<(), AdminError> {
        Ok(idp.store.update_client_scope(self, &[ev]).await?)
    }
}

/// Whether a URL's list segment names the default list (`true`) or the
/// optional one (`false`); anything else is Keycloak's 404.
pub fn is_default_list(kind: &str, default: &str, optional: &str) -> Result<bool, AdminError> {
    match kind {
        k if k == default => Ok(true),
        k if k == optional => Ok(false),
        _ => Err(AdminError::not_found("Resource")),
    }
}

/// Links scope `name` into the default or optional list (it leaves the
/// other one: a scope is one or the other), or unlinks it from both.
/// Returns the admin event's operation.
pub fn relink(
    default: &mut Vec<String>,
    optional: &mut Vec<String>,
    into_default: bool,
    link: bool,
    name: &str,
) -> &'static str {
    default.retain(|n| n != name);
    optional.retain(|n| n != name);
    if !link {
        return "DELETE";
    }
    if into_default { default } else { optional }.push(name.to_owned());
    "CREATE"
}

const REALM_DEFAULT: &str = "default-default-client-scopes";
const REALM_OPTIONAL: &str = "default-optional-client-scopes";

/// `GET /admin/realms/{realm}/default-{default|optional}-client-scopes`.
async fn realm_defaults(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, kind)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let names = if is_default_list(&kind, REALM_DEFAULT, REALM_OPTIONAL)? {
        &realm.default_default_client_scopes
    } else {
        &realm.default_optional_client_scopes
    };
    let all = idp.store.client_scopes(&realm.id).await?;
    Ok(Json(links(&all, names)))
}

/// `PUT|DELETE /admin/realms/{realm}/default-{default|optional}-client-scopes/{id}`.
async fn link_default(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    method: Method,
    Path((_, kind, id)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let into_default = is_default_list(&kind, REALM_DEFAULT, REALM_OPTIONAL)?;
    let scope = load(&idp, &realm, &id).await?;
    let op = relink(
        &mut realm.default_default_client_scopes,
        &mut realm.default_optional_client_scopes,
        into_default,
        method == Method::PUT,
        &scope.name,
    );
    let ev = event(
        &realm,
        &caller,
        op,
        "REALM_SCOPE_MAPPING",
        &format!("{kind}/{id}"),
        None,
    );
    idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
