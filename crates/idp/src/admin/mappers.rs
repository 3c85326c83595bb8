//! `.../protocol-mappers/...` under clients (`/clients/{id}`) and client
//! scopes (`/client-scopes/{id}`): both own a list of mappers with the same
//! rules (unique names, ids kept on update), so the handlers are written
//! once, generic over the [`Owner`].

use super::{AdminCaller, RealmAdmin, created, event, json_body, realm};
use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::{Event, ProtocolMapper, Realm};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

/// Something with protocol mappers, stored as a whole.
pub trait Owner: Sized + Send + Sync + 'static {
    /// The URL segment before the owner's id (`clients`, `client-scopes`).
    const SEGMENT: &'static str;
    fn load(
        idp: &Idp,
        realm: &Realm,
        id: &str,
    ) -> impl Future<Output = Result<Self, AdminError>> + Send;
    fn mappers(&mut self) -> &mut Vec<ProtocolMapper>;
    /// Writes the owner with its admin event, in one transaction.
    fn save(&self, idp: &Idp, ev: Event) -> impl Future<Output = Result<(), AdminError>> + Send;
}

/// The mapper routes of an owner type.
pub fn routes<O: Owner>() -> Router<Arc<Idp>> {
    let base = format!(
        "/admin/realms/{{realm}}/{}/{{id}}/protocol-mappers",
        O::SEGMENT
    );
    Router::new()
        .route(&format!("{base}/models"), get(list::<O>).post(add::<O>))
        .route(&format!("{base}/add-models"), post(add_many::<O>))
        .route(
            &format!("{base}/models/{{mid}}"),
            get(one::<O>).put(replace::<O>).delete(remove::<O>),
        )
        .route(
            &format!("{base}/protocol/{{protocol}}"),
            get(by_protocol::<O>),
        )
}

/// Adds a mapper from its representation; a taken name is a 409.
/// Returns the new mapper's id.
pub fn push(ms: &mut Vec<ProtocolMapper>, rep: &Value) -> Result<String, AdminError> {
    let m = repr::parse_mapper(rep).map_err(AdminError::bad_request)?;
    if ms.iter().any(|x| x.name == m.name || x.id == m.id) {
        return Err(AdminError::conflict(
            "Protocol mapper exists with same name",
        ));
    }
    let id = m.id.clone();
    ms.push(m);
    Ok(id)
}

async fn open<O: Owner>(
    admin: RealmAdmin,
    id: &str,
) -> Result<(AdminCaller, Realm, O), AdminError> {
    let owner = O::load(&admin.idp, &admin.realm, id).await?;
    Ok((admin.caller, admin.realm, owner))
}

/// [`open`] for an edit, holding this node's lock on the owner's row until
/// the guard drops: parallel mapper creates on one client (Terraform's
/// way) then each add to the list instead of overwriting each other's.
async fn open_edit<O: Owner>(
    admin: RealmAdmin,
    id: &str,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, (AdminCaller, Realm, O)), AdminError> {
    let edit = admin.idp.lock_row(id).await;
    let realm = realm(&admin.idp, &admin.realm.name).await?;
    let owner = O::load(&admin.idp, &realm, id).await?;
    Ok((edit, (admin.caller, realm, owner)))
}

/// Saves `owner` after a mapper edit, with its admin event for `path`.
async fn commit<O: Owner>(
    idp: &Idp,
    (caller, realm, owner): (&AdminCaller, &Realm, &O),
    op: &str,
    path: &str,
    rep: Option<&Value>,
) -> Result<(), AdminError> {
    owner
        .save(idp, event(realm, caller, op, "PROTOCOL_MAPPER", path, rep))
        .await
}

fn mapper_path<O: Owner>(id: &str, mid: &str) -> String {
    format!("{}/{id}/protocol-mappers/models/{mid}", O::SEGMENT)
}

async fn list<O: Owner>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, _, mut o) = open::<O>(admin, &id).await?;
    Ok(Json(json!(
        o.mappers().iter().map(repr::mapper).collect::<Vec<_>>()
    )))
}

async fn by_protocol<O: Owner>(
    admin: RealmAdmin,
    Path((_, id, protocol)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, _, mut o) = open::<O>(admin, &id).await?;
    Ok(Json(json!(
        o.mappers()
            .iter()
            .filter(|m| m.protocol == protocol)
            .map(repr::mapper)
            .collect::<Vec<_>>()
    )))
}

async fn one<O: Owner>(
    admin: RealmAdmin,
    Path((_, id, mid)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, _, mut o) = open::<O>(admin, &id).await?;
    o.mappers()
        .iter()
        .find(|m| m.id == mid)
        .map(|m| Json(repr::mapper(m)))
        .ok_or_else(|| AdminError::not_found("Model"))
}

async fn add<O: Owner>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let idp = admin.idp.clone();
    let (_edit, (caller, realm, mut o)) = open_edit::<O>(admin, &id).await?;
    let rep = json_body(&body)?;
    let mid = push(o.mappers(), &rep)?;
    let tail = mapper_path::<O>(&id, &mid);
    commit(&idp, (&caller, &realm, &o), "CREATE", &tail, Some(&rep)).await?;
    Ok(created(&idp, &realm.name, &tail))
}

/// `POST .../protocol-mappers/add-models`: several mappers, all or none.
async fn add_many<O: Owner>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let idp = admin.idp.clone();
    let (_edit, (caller, realm, mut o)) = open_edit::<O>(admin, &id).await?;
    let rep = json_body(&body)?;
    let list = rep
        .as_array()
        .ok_or_else(|| AdminError::bad_request("Expected an array of protocol mappers"))?;
    for m in list {
        push(o.mappers(), m)?;
    }
    let tail = format!("{}/{id}/protocol-mappers/add-models", O::SEGMENT);
    commit(&idp, (&caller, &realm, &o), "CREATE", &tail, Some(&rep)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn replace<O: Owner>(
    admin: RealmAdmin,
    Path((_, id, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let idp = admin.idp.clone();
    let (_edit, (caller, realm, mut o)) = open_edit::<O>(admin, &id).await?;
    let rep = json_body(&body)?;
    let mut m = repr::parse_mapper(&rep).map_err(AdminError::bad_request)?;
    m.id = mid.clone();
    let slot = o
        .mappers()
        .iter_mut()
        .find(|x| x.id == mid)
        .ok_or_else(|| AdminError::not_found("Model"))?;
    *slot = m;
    let tail = mapper_path::<O>(&id, &mid);
    commit(&idp, (&caller, &realm, &o), "UPDATE", &tail, Some(&rep)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove<O: Owner>(
    admin: RealmAdmin,
    Path((_, id, mid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let idp = admin.idp.clone();
    let (_edit, (caller, realm, mut o)) = open_edit::<O>(admin, &id).await?;
    let before = o.mappers().len();
    o.mappers().retain(|m| m.id != mid);
    if o.mappers().len() == before {
        return Err(AdminError::not_found("Model"));
    }
    let tail = mapper_path::<O>(&id, &mid);
    commit(&idp, (&caller, &realm, &o), "DELETE", &tail, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
