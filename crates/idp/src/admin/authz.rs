//! `/admin/realms/{realm}/clients/{id}/authz/resource-server...`: a
//! client's Authorization Services as Keycloak's admin API manages them:
//! the settings (`GET`/`PUT`, `settings` export, `import`), resources,
//! authorization scopes, policies (`/policy`) and permissions
//! (`/permission`), with the listings Keycloak's admin console and
//! official admin client read. The model and its evaluation are in
//! `crate::authz`.

use super::{RealmAdmin, event, json_body};
use crate::authz::policies::{self, PERMISSION_TYPES, POLICY_TYPES};
use crate::authz::{self, Policy, Resource, ResourceServer, Scope};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{Client, Realm};
use serde_json::{Value, json};
use std::sync::Arc;

const B: &str = "/admin/realms/{realm}/clients/{id}/authz/resource-server";

/// Authorization-services routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route(B, get(server).put(update_server))
        .route(&format!("{B}/settings"), get(export))
        .route(&format!("{B}/import"), axum::routing::post(import))
        .route(
            &format!("{B}/resource"),
            get(resources).post(create_resource),
        )
        .route(&format!("{B}/resource/search"), get(resource_by_name))
        .route(
            &format!("{B}/resource/{{rid}}"),
            get(resource).put(update_resource).delete(delete_resource),
        )
        .route(
            &format!("{B}/resource/{{rid}}/{{what}}"),
            get(resource_links),
        )
        .route(
            &format!("{B}/policy/evaluate"),
            axum::routing::post(evaluate_policies),
        )
        .route(&format!("{B}/scope"), get(scopes).post(create_scope))
        .route(&format!("{B}/scope/search"), get(scope_by_name))
        .route(
            &format!("{B}/scope/{{sid}}"),
            get(scope).put(update_scope).delete(delete_scope),
        )
        .route(&format!("{B}/scope/{{sid}}/{{what}}"), get(scope_links))
        .merge(policy_routes("policy"))
        .merge(policy_routes("permission"))
}

/// `/policy...` and `/permission...` share their handlers; the segment
/// says which kinds a listing shows and which types may be created.
fn policy_routes(seg: &'static str) -> Router<Arc<Idp>> {
    let kind = move || Kind(seg == "permission");
    Router::new()
        .route(
            &format!("{B}/{seg}"),
            get(move |a, p, q| list_policies(a, p, q, kind(), None))
                .post(move |a, p, b| create_policy(a, p, b, kind(), None)),
        )
        .route(
            &format!("{B}/{seg}/search"),
            get(move |a, p, q| policy_by_name(a, p, q, kind())),
        )
        .route(
            &format!("{B}/{seg}/providers"),
            get(move || providers(kind())),
        )
        .route(
            &format!("{B}/{seg}/{{x}}"),
            get(move |a, p, q| policy_or_type(a, p, q, kind()))
                .post(move |a, p: Path<(String, String, String)>, b| {
                    let t = p.0.2.clone();
                    create_policy(a, Path((p.0.0, p.0.1)), b, kind(), Some(t))
                })
                .put(move |a, p, b| update_policy(a, p, b, false))
                .delete(delete_policy),
        )
        .route(
            &format!("{B}/{seg}/{{x}}/{{y}}"),
            get(move |a, p| policy_sub(a, p, kind()))
                .put(
                    move |a, Path((r, c, _t, y)): Path<(String, String, String, String)>, b| {
                        update_policy(a, Path((r, c, y)), b, true)
                    },
                )
                .delete(
                    move |a, Path((r, c, _t, y)): Path<(String, String, String, String)>| {
                        delete_policy(a, Path((r, c, y)))
                    },
                ),
        )
}

/// A JSON object body (anything else is a 400: the representations here
/// are objects, and handlers add fields to them).
fn object_body(body: &[u8]) -> Result<Value, AdminError> {
    let v = json_body(body)?;
    if !v.is_object() {
        return Err(AdminError::bad_request("Malformed JSON body"));
    }
    Ok(v)
}

/// Whether a route is under `/permission` (else `/policy`).
#[derive(Clone, Copy)]
struct Kind(bool);

/// A client and its resource server (404 when the services are off).
async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<(Client, ResourceServer), AdminError> {
    let client = super::clients::load(idp, realm, id).await?;
    let rs = ResourceServer::of(&client).ok_or_else(|| {
        AdminError::missing("Authorization services are not enabled for this client")
    })?;
    Ok((client, rs))
}

/// [`load`] for a write: under the client's edit lock, so the document
/// read is the one written back.
async fn load_for_edit(
    a: &RealmAdmin,
    id: &str,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, Client, ResourceServer), AdminError> {
    let edit = a.idp.lock_row(id).await;
    let (client, rs) = load(&a.idp, &a.realm, id).await?;
    Ok((edit, client, rs))
}

/// Writes the settings back with an admin event for `path` (under the
/// resource server) of `rtype`.
async fn save(
    a: &RealmAdmin,
    mut client: Client,
    rs: &ResourceServer,
    op: &str,
    rtype: &str,
    path: &str,
    rep: Option<&Value>,
) -> Result<(), AdminError> {
    rs.store_in(&mut client);
    let full = format!("clients/{}/authz/resource-server{path}", client.id);
    let ev = event(&a.realm, &a.caller, op, rtype, &full, rep);
    a.idp.store.update_client(&client, &[ev]).await?;
    Ok(())
}

#[derive(serde::Deserialize, Default)]
struct Filter {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    permission: Option<bool>,
    #[serde(rename = "_id")]
    id: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
}

fn contains_ci(hay: &str, needle: &Option<String>) -> bool {
    needle
        .as_ref()
        .is_none_or(|n| hay.to_lowercase().contains(&n.to_lowercase()))
}

async fn server(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (client, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(Json(authz::server_rep(&rs, &client)))
}

async fn update_server(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    authz::apply_settings(&mut rs, &rep)?;
    let shown = authz::server_rep(&rs, &client);
    save(
        &a,
        client,
        &rs,
        "UPDATE",
        "AUTHORIZATION_RESOURCE_SERVER",
        "",
        Some(&shown),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (client, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(Json(export_settings(&a.idp, &a.realm, &client, rs).await?))
}

/// Keycloak's export form of a client's settings, subjects by name.
pub async fn export_settings(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    mut rs: ResourceServer,
) -> Result<Value, AdminError> {
    for p in &mut rs.policies {
        policies::export_subjects(idp, realm, p).await?;
    }
    Ok(authz::export(&rs, client))
}

/// Reads Keycloak's export form into a client's settings (turning the
/// services on if they were off), subjects resolved in this realm.
pub async fn import_settings(
    idp: &Idp,
    realm: &Realm,
    rs: &mut ResourceServer,
    rep: &Value,
) -> Result<(), AdminError> {
    let before: Vec<String> = rs.policies.iter().map(|p| p.id.clone()).collect();
    authz::import(rs, rep)?;
    for p in rs.policies.iter_mut() {
        // New or updated by this import: resolve what it names.
        let touched = !before.contains(&p.id)
            || rep["policies"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["name"] == p.name.as_str()));
        if touched {
            policies::resolve_subjects(idp, realm, p).await?;
        }
    }
    Ok(())
}

async fn import(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    import_settings(&a.idp, &a.realm, &mut rs, &rep).await?;
    let shown = authz::server_rep(&rs, &client);
    save(
        &a,
        client,
        &rs,
        "UPDATE",
        "AUTHORIZATION_RESOURCE_SERVER",
        "",
        Some(&shown),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- resources ----

async fn resources(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<authz::ResourceQuery>,
) -> Result<Json<Value>, AdminError> {
    let (client, rs) = load(&a.idp, &a.realm, &id).await?;
    let deep = q.deep.unwrap_or(true);
    let out: Vec<Value> = q
        .page(&rs, &client)
        .map(|r| {
            if deep {
                authz::resource_rep(&rs, r, &client)
            } else {
                authz::resource_brief(r)
            }
        })
        .collect();
    Ok(Json(json!(out)))
}

async fn create_resource(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut r = Resource {
        id: gatehouse_core::id::uuid(),
        ..Resource::default()
    };
    authz::apply_resource(&mut rs, &mut r, &rep)?;
    if let Some(owner) = owner_of(&a.idp, &a.realm, &client, &rep).await? {
        r.owner = Some(owner);
    }
    rs.resources.push(r.clone());
    let shown = authz::resource_rep(&rs, &r, &client);
    save(
        &a,
        client.clone(),
        &rs,
        "CREATE",
        "AUTHORIZATION_RESOURCE",
        &format!("/resource/{}", r.id),
        Some(&shown),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// A resource's owner from its representation: a user (by id or
/// username) other than the resource server itself (admin API and
/// protection API).
pub async fn owner_of(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    rep: &Value,
) -> Result<Option<String>, AdminError> {
    let o = match rep.get("owner") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => match o
            .get("id")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
        {
            Some(s) => s.to_owned(),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    if o == client.id || o == client.client_id {
        return Ok(None);
    }
    policies::user_ref(idp, realm, &o)
        .await?
        .map(|u| Some(u.id))
        .ok_or_else(|| AdminError::bad_request(format!("Owner [{o}] not found")))
}

fn find_resource<'a>(rs: &'a ResourceServer, rid: &str) -> Result<&'a Resource, AdminError> {
    rs.resource(rid)
        .ok_or_else(|| AdminError::missing("Resource not found"))
}

async fn resource(
    a: RealmAdmin,
    Path((_, id, rid)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (client, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(Json(authz::resource_rep(
        &rs,
        find_resource(&rs, &rid)?,
        &client,
    )))
}

#[derive(serde::Deserialize)]
struct ByName {
    name: Option<String>,
}

async fn resource_by_name(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ByName>,
) -> Result<Response, AdminError> {
    let (client, rs) = load(&a.idp, &a.realm, &id).await?;
    let found = q
        .name
        .and_then(|n| rs.resources.iter().find(|r| r.name == n).cloned());
    Ok(match found {
        Some(r) => Json(authz::resource_rep(&rs, &r, &client)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn update_resource(
    a: RealmAdmin,
    Path((_, id, rid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut r = find_resource(&rs, &rid)?.clone();
    authz::apply_resource(&mut rs, &mut r, &rep)?;
    let shown = authz::resource_rep(&rs, &r, &client);
    if let Some(slot) = rs.resources.iter_mut().find(|x| x.id == rid) {
        *slot = r;
    }
    save(
        &a,
        client,
        &rs,
        "UPDATE",
        "AUTHORIZATION_RESOURCE",
        &format!("/resource/{rid}"),
        Some(&shown),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_resource(
    a: RealmAdmin,
    Path((_, id, rid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    if !rs.remove_resource(&rid) {
        return Err(AdminError::missing("Resource not found"));
    }
    save(
        &a,
        client,
        &rs,
        "DELETE",
        "AUTHORIZATION_RESOURCE",
        &format!("/resource/{rid}"),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/resource/{id}/scopes|permissions|attributes`.
async fn resource_links(
    a: RealmAdmin,
    Path((_, id, rid, what)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    // Keycloak's admin client passes a name here too.
    let r = rs
        .resource_ref(&rid)
        .ok_or_else(|| AdminError::missing("Resource not found"))?;
    Ok(Json(match what.as_str() {
        "scopes" => json!(
            r.scopes
                .iter()
                .filter_map(|s| rs.scope(s))
                .map(authz::scope_brief)
                .collect::<Vec<_>>()
        ),
        "permissions" => json!(
            rs.permissions_of_resource(r)
                .map(authz::policy_rep)
                .collect::<Vec<_>>()
        ),
        "attributes" => json!(r.attributes),
        _ => return Err(AdminError::missing("HTTP 404 Not Found")),
    }))
}

// ---- scopes ----

async fn scopes(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(f): Query<Filter>,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    let matching = rs
        .scopes
        .iter()
        .filter(|s| contains_ci(&s.name, &f.name) && f.id.as_ref().is_none_or(|i| &s.id == i));
    Ok(Json(json!(
        super::window(f.first, f.max, matching)
            .map(authz::scope_rep)
            .collect::<Vec<_>>()
    )))
}

async fn create_scope(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut s = Scope {
        id: gatehouse_core::id::uuid(),
        ..Scope::default()
    };
    authz::apply_scope(&rs, &mut s, &rep)?;
    rs.scopes.push(s.clone());
    let shown = authz::scope_rep(&s);
    save(
        &a,
        client,
        &rs,
        "CREATE",
        "AUTHORIZATION_SCOPE",
        &format!("/scope/{}", s.id),
        Some(&shown),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn scope_by_name(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ByName>,
) -> Result<Response, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(
        match q.name.and_then(|n| rs.scopes.iter().find(|s| s.name == n)) {
            Some(s) => Json(authz::scope_rep(s)).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

fn find_scope<'a>(rs: &'a ResourceServer, sid: &str) -> Result<&'a Scope, AdminError> {
    rs.scope(sid)
        .ok_or_else(|| AdminError::missing("Scope not found"))
}

async fn scope(
    a: RealmAdmin,
    Path((_, id, sid)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(Json(authz::scope_rep(find_scope(&rs, &sid)?)))
}

async fn update_scope(
    a: RealmAdmin,
    Path((_, id, sid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut s = find_scope(&rs, &sid)?.clone();
    authz::apply_scope(&rs, &mut s, &rep)?;
    let shown = authz::scope_rep(&s);
    if let Some(slot) = rs.scopes.iter_mut().find(|x| x.id == sid) {
        *slot = s;
    }
    save(
        &a,
        client,
        &rs,
        "UPDATE",
        "AUTHORIZATION_SCOPE",
        &format!("/scope/{sid}"),
        Some(&shown),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_scope(
    a: RealmAdmin,
    Path((_, id, sid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    if !rs.remove_scope(&sid) {
        return Err(AdminError::missing("Scope not found"));
    }
    save(
        &a,
        client,
        &rs,
        "DELETE",
        "AUTHORIZATION_SCOPE",
        &format!("/scope/{sid}"),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/scope/{id}/resources|permissions`.
async fn scope_links(
    a: RealmAdmin,
    Path((_, id, sid, what)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    let s = find_scope(&rs, &sid)?;
    Ok(Json(match what.as_str() {
        "resources" => json!(
            rs.resources
                .iter()
                .filter(|r| r.scopes.contains(&s.id))
                .map(authz::resource_brief)
                .collect::<Vec<_>>()
        ),
        "permissions" => json!(
            rs.policies
                .iter()
                .filter(|p| p.is_permission() && p.scopes.contains(&s.id))
                .map(authz::policy_rep)
                .collect::<Vec<_>>()
        ),
        _ => return Err(AdminError::missing("HTTP 404 Not Found")),
    }))
}

// ---- policies and permissions ----

/// Whether `t` names a type of the route's kinds (`/policy` takes both,
/// and the default policy's `js`).
fn is_type(kind: Kind, t: &str) -> bool {
    let named = |types: &[(&str, &str, &str)]| types.iter().any(|(x, _, _)| *x == t);
    named(&PERMISSION_TYPES) || (!kind.0 && (named(&POLICY_TYPES) || t == "js"))
}

async fn providers(kind: Kind) -> Json<Value> {
    let types: &[(&str, &str, &str)] = if kind.0 {
        &PERMISSION_TYPES
    } else {
        &POLICY_TYPES
    };
    Json(json!(
        types
            .iter()
            .map(|(t, n, g)| json!({"type": t, "name": n, "group": g}))
            .collect::<Vec<_>>()
    ))
}

fn listed(rs: &ResourceServer, f: &Filter, kind: Kind, only_type: Option<&str>) -> Vec<Value> {
    let matching = rs.policies.iter().filter(|p| {
        let side = if kind.0 {
            p.is_permission()
        } else {
            f.permission.is_none_or(|want| p.is_permission() == want)
        };
        side && contains_ci(&p.name, &f.name)
            && only_type.or(f.kind.as_deref()).is_none_or(|t| p.kind == t)
            && f.resource.as_ref().is_none_or(|r| {
                rs.resource_ref(r)
                    .is_some_and(|res| p.resources.contains(&res.id) || p.covers_type_of(res))
            })
            && f.resource_type
                .as_ref()
                .is_none_or(|t| p.resource_type() == Some(t.as_str()))
            && f.scope.as_ref().is_none_or(|s| {
                p.scopes
                    .iter()
                    .filter_map(|x| rs.scope(x))
                    .any(|x| &x.id == s || x.name.to_lowercase().contains(&s.to_lowercase()))
            })
    });
    super::window(f.first, f.max, matching)
        .map(authz::policy_rep)
        .collect()
}

async fn list_policies(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(f): Query<Filter>,
    kind: Kind,
    only_type: Option<String>,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    Ok(Json(json!(listed(&rs, &f, kind, only_type.as_deref()))))
}

async fn policy_by_name(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ByName>,
    kind: Kind,
) -> Result<Response, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    let found = q.name.and_then(|n| {
        rs.policies
            .iter()
            .find(|p| p.name == n && (!kind.0 || p.is_permission()))
    });
    Ok(match found {
        Some(p) => Json(authz::policy_rep(p)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `/policy/{x}`: the policies of type `x`, else the policy with id `x`.
async fn policy_or_type(
    a: RealmAdmin,
    Path((r, id, x)): Path<(String, String, String)>,
    q: Query<Filter>,
    kind: Kind,
) -> Result<Json<Value>, AdminError> {
    if is_type(kind, &x) {
        return list_policies(a, Path((r, id)), q, kind, Some(x)).await;
    }
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    let p = find_policy(&rs, &x)?;
    Ok(Json(authz::policy_rep(p)))
}

fn find_policy<'a>(rs: &'a ResourceServer, pid: &str) -> Result<&'a Policy, AdminError> {
    rs.policy(pid)
        .ok_or_else(|| AdminError::missing("Policy not found"))
}

/// `/policy/{type}/{id}` (the typed representation) or
/// `/policy/{id}/{dependentPolicies|scopes|resources|associatedPolicies}`.
async fn policy_sub(
    a: RealmAdmin,
    Path((_, id, x, y)): Path<(String, String, String, String)>,
    kind: Kind,
) -> Result<Json<Value>, AdminError> {
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    if is_type(kind, &x) {
        let p = find_policy(&rs, &y)?;
        if p.kind != x {
            return Err(AdminError::missing("Policy not found"));
        }
        return Ok(Json(policies::typed_rep(p)));
    }
    let p = find_policy(&rs, &x)?;
    Ok(Json(match y.as_str() {
        "dependentPolicies" => json!(
            rs.policies
                .iter()
                .filter(|o| o.policies.contains(&p.id))
                .map(authz::policy_rep)
                .collect::<Vec<_>>()
        ),
        "associatedPolicies" => json!(
            p.policies
                .iter()
                .filter_map(|i| rs.policy(i))
                .map(authz::policy_rep)
                .collect::<Vec<_>>()
        ),
        "scopes" => json!(
            p.scopes
                .iter()
                .filter_map(|i| rs.scope(i))
                .map(authz::scope_brief)
                .collect::<Vec<_>>()
        ),
        "resources" => json!(
            p.resources
                .iter()
                .filter_map(|i| rs.resource(i))
                .map(authz::resource_brief)
                .collect::<Vec<_>>()
        ),
        _ => return Err(AdminError::missing("HTTP 404 Not Found")),
    }))
}

async fn create_policy(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
    kind: Kind,
    typed: Option<String>,
) -> Result<Response, AdminError> {
    let mut rep = object_body(&body)?;
    if let Some(t) = &typed {
        rep["type"] = json!(t);
    }
    let t = rep
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind.0 && !PERMISSION_TYPES.iter().any(|(x, _, _)| *x == t) {
        return Err(AdminError::bad_request(format!(
            "Permission type [{t}] not supported"
        )));
    }
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut p = Policy {
        id: gatehouse_core::id::uuid(),
        ..Policy::default()
    };
    policies::apply(&rs, &mut p, &rep, false)?;
    policies::resolve_subjects(&a.idp, &a.realm, &mut p).await?;
    rs.policies.push(p.clone());
    let shown = policies::typed_rep(&p);
    save(
        &a,
        client,
        &rs,
        "CREATE",
        "AUTHORIZATION_POLICY",
        &format!("/policy/{}", p.id),
        Some(&shown),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn update_policy(
    a: RealmAdmin,
    Path((_, id, pid)): Path<(String, String, String)>,
    body: Bytes,
    typed: bool,
) -> Result<StatusCode, AdminError> {
    let mut rep = object_body(&body)?;
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    let mut p = find_policy(&rs, &pid)?.clone();
    // The type never changes.
    rep["type"] = json!(p.kind);
    if typed {
        // A typed update replaces the type's own lists.
        for k in policies::LISTS {
            if rep.get(k).is_some() {
                p.config.remove(k);
            }
        }
    }
    policies::apply(&rs, &mut p, &rep, false)?;
    policies::resolve_subjects(&a.idp, &a.realm, &mut p).await?;
    let shown = policies::typed_rep(&p);
    if let Some(slot) = rs.policies.iter_mut().find(|x| x.id == pid) {
        *slot = p;
    }
    save(
        &a,
        client,
        &rs,
        "UPDATE",
        "AUTHORIZATION_POLICY",
        &format!("/policy/{pid}"),
        Some(&shown),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_policy(
    a: RealmAdmin,
    Path((_, id, pid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let (_edit, client, mut rs) = load_for_edit(&a, &id).await?;
    if !rs.remove_policy(&pid) {
        return Err(AdminError::missing("Policy not found"));
    }
    save(
        &a,
        client,
        &rs,
        "DELETE",
        "AUTHORIZATION_POLICY",
        &format!("/policy/{pid}"),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a client representation's `authorizationServicesEnabled` and
/// `authorizationSettings` to the client before it is stored (admin
/// create and update): turning the services on makes Keycloak's default
/// resource, policy and permission and needs a confidential client
/// (service accounts are turned on with it, as Keycloak's console does);
/// turning them off drops the settings.
pub async fn apply_client_rep(
    idp: &Idp,
    realm: &Realm,
    c: &mut Client,
    rep: &Value,
    resolve: bool,
) -> Result<(), AdminError> {
    let wanted = rep.get(authz::ENABLED).and_then(Value::as_bool);
    let settings = rep.get(authz::SETTINGS).filter(|s| s.is_object());
    let on = wanted.unwrap_or(ResourceServer::of(c).is_some() || settings.is_some());
    if !on {
        c.extra.remove(authz::STORED);
        if wanted.is_some() {
            c.extra.insert(authz::ENABLED.into(), json!(false));
        }
        return Ok(());
    }
    if c.public_client || c.bearer_only {
        return Err(AdminError::bad_request(
            "Authorization services need a confidential client",
        ));
    }
    c.service_accounts_enabled = true;
    // Settings that come along replace Keycloak's defaults (an export
    // carries its own default resource if it kept it).
    let mut rs = ResourceServer::of(c).unwrap_or_else(|| match settings {
        Some(_) => ResourceServer::default(),
        None => ResourceServer::with_defaults(c),
    });
    if let Some(s) = settings {
        if resolve {
            import_settings(idp, realm, &mut rs, s).await?;
        } else {
            authz::import(&mut rs, s).map_err(AdminError::from)?;
        }
    }
    rs.store_in(c);
    Ok(())
}

/// After a realm import has created users, groups and roles: resolves
/// the subjects the imported clients' policies name (they were read by
/// name before those existed).
pub async fn resolve_imported(idp: &Idp, realm: &Realm, rep: &Value) -> Result<(), AdminError> {
    for c in rep["clients"].as_array().into_iter().flatten() {
        if !c.get(authz::SETTINGS).is_some_and(Value::is_object) {
            continue;
        }
        let Some(cid) = c.get("clientId").and_then(Value::as_str) else {
            continue;
        };
        let Some(mut client) = idp.store.client_by_client_id(&realm.id, cid).await? else {
            continue;
        };
        let Some(mut rs) = ResourceServer::of(&client) else {
            continue;
        };
        for p in &mut rs.policies {
            if let Err(e) = policies::resolve_subjects(idp, realm, p).await {
                // A policy naming someone the export did not bring grants
                // nobody rather than failing the whole import.
                tracing::warn!(client = cid, policy = %p.name, error = %e.message, "authorization policy subject not found; the policy names nobody");
                for k in policies::LISTS {
                    p.config.remove(k);
                }
            }
        }
        rs.store_in(&mut client);
        idp.store.update_client(&client, &[]).await?;
        ensure_protection_role(idp, realm, &client).await?;
    }
    Ok(())
}

/// Keycloak's `uma_protection` role of a resource server, held by its
/// service account: what makes that account's tokens PATs for the
/// protection API. Made when the services are on (idempotent).
pub async fn ensure_protection_role(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
) -> Result<(), AdminError> {
    use crate::authz::protection::PROTECTION_ROLE;
    use gatehouse_store::Holder;
    if ResourceServer::of(client).is_none() {
        return Ok(());
    }
    let role = match idp
        .store
        .role_by_name(&realm.id, Some(&client.id), PROTECTION_ROLE)
        .await?
    {
        Some(r) => r,
        None => {
            super::roles::create_role(
                idp,
                realm,
                Some(client.id.clone()),
                &json!({"name": PROTECTION_ROLE}),
                vec![],
            )
            .await?
        }
    };
    let account = super::clients::ensure_service_account(idp, realm, client).await?;
    let held = idp.store.granted_roles(Holder::User(&account.id)).await?;
    if !held.iter().any(|r| r.id == role.id) {
        idp.store
            .grant_roles(Holder::User(&account.id), &[role.id], &[])
            .await?;
    }
    Ok(())
}

/// `POST .../policy/evaluate`: what a user (or, without one, the client
/// `clientId`'s service account) would be granted, resource by resource,
/// with the permissions and policies that decided, as Keycloak's admin
/// console shows it. `roleIds` adds roles for the evaluation only;
/// `context.attributes` stands for pushed claims.
async fn evaluate_policies(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    use crate::authz::evaluate::{self, Request};
    let rep = object_body(&body)?;
    let (_, rs) = load(&a.idp, &a.realm, &id).await?;
    let text = |k: &str| rep.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let requester = match text("clientId") {
        Some(c) => Some(
            a.idp
                .store
                .client(&a.realm.id, c)
                .await?
                .ok_or_else(|| AdminError::bad_request(format!("Client [{c}] not found")))?,
        ),
        None => None,
    };
    let user = match (text("userId"), &requester) {
        (Some(u), _) => policies::user_ref(&a.idp, &a.realm, u)
            .await?
            .ok_or_else(|| AdminError::bad_request(format!("User [{u}] not found")))?,
        (None, Some(c)) => super::clients::ensure_service_account(&a.idp, &a.realm, c).await?,
        (None, None) => {
            return Err(AdminError::bad_request(
                "Subject not provided: userId or clientId",
            ));
        }
    };
    let mut who = crate::authz::subject(
        &a.idp,
        &a.realm,
        &user,
        requester.as_ref().map(|c| c.id.as_str()),
        json!({"sub": user.id}),
    )
    .await
    .map_err(|e| AdminError::new(e.status, e.description))?;
    for r in rep["roleIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let role = policies::role_ref(&a.idp, &a.realm, r)
            .await?
            .ok_or_else(|| AdminError::bad_request(format!("Role [{r}] not found")))?;
        for x in crate::tokens::expand_roles(&a.idp, &a.realm, &[role.id]).await? {
            who.role_ids.insert(x.id);
        }
    }
    who.context = rep["context"]["attributes"].clone();
    let mut asked: Vec<Request<'_>> = vec![];
    for r in rep["resources"].as_array().into_iter().flatten() {
        let key = r
            .get("_id")
            .or_else(|| r.get("name"))
            .and_then(Value::as_str);
        let resource = match key.filter(|k| !k.is_empty()) {
            Some(k) => Some(
                rs.resource_ref(k)
                    .ok_or_else(|| AdminError::bad_request(format!("Resource [{k}] not found")))?,
            ),
            None => None,
        };
        let names: Vec<Value> = r["scopes"].as_array().cloned().unwrap_or_default();
        let scopes = rs.scope_ids(&names)?;
        asked.push(Request { resource, scopes });
    }
    let granted = evaluate::permissions(&rs, &who, &asked);
    let targets: Vec<&crate::authz::Resource> =
        if asked.iter().any(|r| r.resource.is_none()) || asked.is_empty() {
            rs.resources.iter().filter(|r| r.owner.is_none()).collect()
        } else {
            asked.iter().filter_map(|r| r.resource).collect()
        };
    let mut results = vec![];
    for r in targets {
        let g = granted.iter().find(|g| g.rsid == r.id);
        let allowed: Vec<Value> = r
            .scopes
            .iter()
            .filter_map(|sid| rs.scope(sid))
            .filter(|sc| g.is_some_and(|g| g.scopes.contains(&sc.name)))
            .map(authz::scope_brief)
            .collect();
        let status = |ok: bool| if ok { "PERMIT" } else { "DENY" };
        let policies: Vec<Value> = evaluate::explain(&rs, &who, r)
            .into_iter()
            .map(|(p, ok, applied)| {
                json!({
                    "policy": authz::policy_rep(p),
                    "status": status(ok),
                    "associatedPolicies": applied.into_iter().map(|(x, d)| json!({"policy": authz::policy_rep(x), "status": status(d)})).collect::<Vec<_>>(),
                    "scopes": p.scopes.iter().filter_map(|s| rs.scope(s)).map(|s| s.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        results.push(json!({
            "resource": authz::resource_brief(r),
            "scopes": r.scopes.iter().filter_map(|s| rs.scope(s)).map(authz::scope_brief).collect::<Vec<_>>(),
            "policies": policies,
            "status": status(g.is_some()),
            "allowedScopes": allowed,
        }));
    }
    let permissions: Vec<Value> = granted.iter().map(|g| g.to_json(true)).collect();
    Ok(Json(json!({
        "results": results,
        "entitlements": rep["entitlements"].as_bool().unwrap_or(false),
        "status": if granted.is_empty() { "DENY" } else { "PERMIT" },
        "rpt": {"authorization": {"permissions": permissions}},
    })))
}
