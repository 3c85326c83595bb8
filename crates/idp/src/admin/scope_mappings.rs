//! `/admin/realms/{realm}/clients/{id}/scope-mappings...` and
//! `/client-scopes/{id}/scope-mappings...`: the roles a client with
//! `fullScopeAllowed: false` may put in its tokens (Keycloak's role scope
//! mappings): its own mappings and those of the client scopes in effect
//! for the grant. Without any, such a client's tokens carry only its own
//! client roles.

use super::mappers::Owner;
use super::roles::{mappings_document, render_all, role_ids};
use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{Client, ClientScope, Role};
use serde_json::Value;
use std::sync::Arc;

/// What holds role scope mappings: clients and client scopes.
pub trait Holder: Owner {
    fn role_ids(&self) -> &Vec<String>;
    fn role_ids_mut(&mut self) -> &mut Vec<String>;
    /// Every role is in scope (a client with `fullScopeAllowed`).
    fn full_scope(&self) -> bool;
}

impl Holder for Client {
    fn role_ids(&self) -> &Vec<String> {
        &self.scope_role_ids
    }
    fn role_ids_mut(&mut self) -> &mut Vec<String> {
        &mut self.scope_role_ids
    }
    fn full_scope(&self) -> bool {
        self.full_scope_allowed
    }
}

impl Holder for ClientScope {
    fn role_ids(&self) -> &Vec<String> {
        &self.scope_role_ids
    }
    fn role_ids_mut(&mut self) -> &mut Vec<String> {
        &mut self.scope_role_ids
    }
    fn full_scope(&self) -> bool {
        false
    }
}

/// Scope-mapping routes of clients and client scopes.
pub fn routes() -> Router<Arc<Idp>> {
    routes_of::<Client>().merge(routes_of::<ClientScope>())
}

fn routes_of<H: Holder>() -> Router<Arc<Idp>> {
    let b = format!(
        "/admin/realms/{{realm}}/{}/{{id}}/scope-mappings",
        H::SEGMENT
    );
    Router::new()
        .route(&b, get(all::<H>))
        .route(
            &format!("{b}/realm"),
            get(listed::<H>).post(change::<H>).delete(change::<H>),
        )
        .route(
            &format!("{b}/realm/available"),
            get(effective_or_available::<H>),
        )
        .route(
            &format!("{b}/realm/composite"),
            get(effective_or_available::<H>),
        )
        .route(
            &format!("{b}/clients/{{other}}"),
            get(listed::<H>).post(change::<H>).delete(change::<H>),
        )
        .route(
            &format!("{b}/clients/{{other}}/available"),
            get(effective_or_available::<H>),
        )
        .route(
            &format!("{b}/clients/{{other}}/composite"),
            get(effective_or_available::<H>),
        )
}

/// The holder's mapped roles that still exist.
async fn mapped<H: Holder>(a: &RealmAdmin, c: &H) -> Result<Vec<Role>, AdminError> {
    let mut out = vec![];
    for id in c.role_ids() {
        if let Some(r) = a.idp.store.role(&a.realm.id, id).await? {
            out.push(r);
        }
    }
    Ok(out)
}

/// `GET .../scope-mappings`: realm and per-client mappings in one document.
async fn all<H: Holder>(
    a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = H::load(&a.idp, &a.realm, &id).await?;
    let roles = mapped(&a, &c).await?;
    Ok(Json(mappings_document(&a.idp, &a.realm, &roles).await?))
}

/// `(holder, the container whose roles the call is about)`: None for the
/// realm's roles, else the other client's id.
async fn target<H: Holder>(
    a: &RealmAdmin,
    id: &str,
    other: Option<&str>,
) -> Result<(H, Option<String>), AdminError> {
    let c = H::load(&a.idp, &a.realm, id).await?;
    let owner = match other {
        Some(o) => Some(super::clients::load(&a.idp, &a.realm, o).await?.id),
        None => None,
    };
    Ok((c, owner))
}

/// `GET .../scope-mappings/realm` and `.../clients/{other}`.
async fn listed<H: Holder>(
    a: RealmAdmin,
    Path(p): Path<Vec<(String, String)>>,
) -> Result<Json<Value>, AdminError> {
    let id = param(&p, "id");
    let (c, owner) = target::<H>(&a, &id, opt(&p, "other").as_deref()).await?;
    let roles: Vec<Role> = mapped(&a, &c)
        .await?
        .into_iter()
        .filter(|r| r.client_id == owner)
        .collect();
    render_all(&a.idp, &roles, &a.realm).await
}

/// `GET .../composite`: the container's roles the client's tokens may carry
/// (all of them with full scope; else the mapped ones and their composites);
/// `.../available`: the container's roles not among those yet.
async fn effective_or_available<H: Holder>(
    a: RealmAdmin,
    uri: axum::http::Uri,
    Path(p): Path<Vec<(String, String)>>,
) -> Result<Json<Value>, AdminError> {
    let id = param(&p, "id");
    let (c, owner) = target::<H>(&a, &id, opt(&p, "other").as_deref()).await?;
    let all = a.idp.store.roles(&a.realm.id, owner.as_deref()).await?;
    let in_scope: Vec<String> = if c.full_scope() {
        all.iter().map(|r| r.id.clone()).collect()
    } else {
        crate::tokens::expand_roles(&a.idp, &a.realm, c.role_ids())
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let available = uri.path().ends_with("/available");
    let roles: Vec<Role> = all
        .into_iter()
        .filter(|r| in_scope.contains(&r.id) != available)
        .collect();
    render_all(&a.idp, &roles, &a.realm).await
}

/// `POST|DELETE .../scope-mappings/realm` and `.../clients/{other}`: add
/// or remove the roles of the body.
async fn change<H: Holder>(
    a: RealmAdmin,
    method: Method,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let id = param(&p, "id");
    let other = opt(&p, "other");
    let (mut c, owner) = target::<H>(&a, &id, other.as_deref()).await?;
    let ids = role_ids(&a.idp, &a.realm, owner.as_deref(), &body).await?;
    let add = method == Method::POST;
    let mapped = c.role_ids_mut();
    if add {
        for r in ids {
            if !mapped.contains(&r) {
                mapped.push(r);
            }
        }
    } else {
        mapped.retain(|r| !ids.contains(r));
    }
    let seg = H::SEGMENT;
    let path = match &other {
        Some(o) => format!("{seg}/{id}/scope-mappings/clients/{o}"),
        None => format!("{seg}/{id}/scope-mappings/realm"),
    };
    let rtype = if other.is_some() {
        "CLIENT_SCOPE_MAPPING"
    } else {
        "REALM_SCOPE_MAPPING"
    };
    let ev = event(
        &a.realm,
        &a.caller,
        if add { "CREATE" } else { "DELETE" },
        rtype,
        &path,
        None,
    );
    c.save(&a.idp, ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn opt(p: &[(String, String)], name: &str) -> Option<String> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn param(p: &[(String, String)], name: &str) -> String {
    opt(p, name).unwrap_or_default()
}
