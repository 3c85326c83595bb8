//! Realm roles (`/roles`), client roles (`/clients/{id}/roles`), composites,
//! `/roles-by-id`, and role mappings of users and groups
//! (`/users/{id}/role-mappings...`, `/groups/{id}/role-mappings...`).

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{Realm, Role};
use gatehouse_store::Holder;
use serde_json::{Value, json};
use std::sync::Arc;

/// Role routes.
pub fn routes() -> Router<Arc<Idp>> {
    const R: &str = "/admin/realms/{realm}";
    // A role's composites, wherever the role is addressed: realm role by
    // name, client role by name, any role by id.
    let mut r = Router::new();
    for role in [
        format!("{R}/roles/{{name}}"),
        format!("{R}/clients/{{cid}}/roles/{{name}}"),
        format!("{R}/roles-by-id/{{id}}"),
    ] {
        r = r
            .route(
                &format!("{role}/composites"),
                get(composites).post(add_composites).delete(del_composites),
            )
            .route(&format!("{role}/composites/realm"), get(realm_composites))
            .route(
                &format!("{role}/composites/clients/{{target}}"),
                get(client_composites),
            );
    }
    r.route(
        &format!("{R}/roles"),
        get(list_realm).post(create_realm_role),
    )
    .route(
        &format!("{R}/roles/{{name}}"),
        get(get_realm_role)
            .put(put_realm_role)
            .delete(del_realm_role),
    )
    .route(
        &format!("{R}/roles-by-id/{{id}}"),
        get(by_id).put(put_by_id).delete(del_by_id),
    )
    .route(
        &format!("{R}/roles/{{name}}/users"),
        get(realm_role_holders::<false>),
    )
    .route(
        &format!("{R}/roles/{{name}}/groups"),
        get(realm_role_holders::<true>),
    )
    .route(
        &format!("{R}/clients/{{cid}}/roles/{{name}}/users"),
        get(client_role_holders::<false>),
    )
    .route(
        &format!("{R}/clients/{{cid}}/roles/{{name}}/groups"),
        get(client_role_holders::<true>),
    )
    .route(
        &format!("{R}/clients/{{cid}}/roles"),
        get(list_client).post(create_client_role),
    )
    .route(
        &format!("{R}/clients/{{cid}}/roles/{{name}}"),
        get(get_client_role)
            .put(put_client_role)
            .delete(del_client_role),
    )
}

/// Role-mapping routes for `users` and `groups`; `kind` is passed as state
/// of the path so one handler serves both.
pub fn mapping_routes() -> Router<Arc<Idp>> {
    let mut r = Router::new();
    for kind in ["users", "groups", "organizations/{id}/groups"] {
        let holder = if kind.starts_with("organizations") {
            "{gid}"
        } else {
            "{id}"
        };
        let base = format!("/admin/realms/{{realm}}/{kind}/{holder}/role-mappings");
        r = r
            .route(&base, get(all_mappings))
            .route(
                &format!("{base}/realm"),
                get(direct_mappings).post(change).delete(change),
            )
            .route(
                &format!("{base}/realm/composite"),
                get(effective_or_available),
            )
            .route(
                &format!("{base}/realm/available"),
                get(effective_or_available),
            )
            .route(
                &format!("{base}/clients/{{cid}}/composite"),
                get(effective_or_available),
            )
            .route(
                &format!("{base}/clients/{{cid}}/available"),
                get(effective_or_available),
            )
            .route(
                &format!("{base}/clients/{{cid}}"),
                get(direct_mappings).post(change).delete(change),
            );
    }
    r
}

async fn container(idp: &Idp, realm: &Realm, cid: Option<&str>) -> Result<String, AdminError> {
    match cid {
        None => Ok(realm.id.clone()),
        Some(c) => Ok(idp
            .store
            .client(&realm.id, c)
            .await?
            .ok_or_else(|| AdminError::missing("Could not find client"))?
            .id),
    }
}

/// The full RoleRepresentation (a single role's GET).
pub(super) async fn render(idp: &Idp, r: &Role, realm: &Realm) -> Result<Value, AdminError> {
    render_as(idp, r, realm, false).await
}

async fn render_as(idp: &Idp, r: &Role, realm: &Realm, brief: bool) -> Result<Value, AdminError> {
    let composite = !idp.store.composites(&r.id).await?.is_empty();
    let container = r.client_id.as_deref().unwrap_or(&realm.id);
    Ok(if brief {
        repr::role_brief(r, composite, container)
    } else {
        repr::role(r, composite, container)
    })
}

/// Brief representations, as Keycloak lists roles, mappings and composites.
pub(super) async fn render_all(
    idp: &Idp,
    roles: &[Role],
    realm: &Realm,
) -> Result<Json<Value>, AdminError> {
    render_list(idp, roles, realm, true).await
}

async fn render_list(
    idp: &Idp,
    roles: &[Role],
    realm: &Realm,
    brief: bool,
) -> Result<Json<Value>, AdminError> {
    let mut out = vec![];
    for r in roles {
        out.push(render_as(idp, r, realm, brief).await?);
    }
    Ok(Json(json!(out)))
}

/// `search`, `first`, `max` and `briefRepresentation` of role listings.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RoleListQuery {
    search: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    brief_representation: Option<bool>,
}

impl RoleListQuery {
    /// The page of `roles` (by name) that matches.
    fn page(&self, mut roles: Vec<Role>) -> Vec<Role> {
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        let needle = self.search.as_deref().map(str::to_lowercase);
        let matching = roles.into_iter().filter(|r| {
            needle
                .as_deref()
                .is_none_or(|n| r.name.to_lowercase().contains(n))
        });
        super::window(self.first, self.max, matching).collect()
    }
}

async fn find(idp: &Idp, realm: &Realm, cid: Option<&str>, name: &str) -> Result<Role, AdminError> {
    let client = match cid {
        Some(c) => Some(container(idp, realm, Some(c)).await?),
        None => None,
    };
    idp.store
        .role_by_name(&realm.id, client.as_deref(), name)
        .await?
        .ok_or_else(|| AdminError::missing("Could not find role"))
}

/// Creates a role from a RoleRepresentation (admin API and import).
pub async fn create_role(
    idp: &Idp,
    realm: &Realm,
    client: Option<String>,
    rep: &Value,
    ev: Vec<gatehouse_core::model::Event>,
) -> Result<Role, AdminError> {
    let name = rep
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AdminError::bad_request("Role name is required"))?;
    if idp
        .store
        .role_by_name(&realm.id, client.as_deref(), name)
        .await?
        .is_some()
    {
        return Err(AdminError::conflict(format!(
            "Role with name {name} already exists"
        )));
    }
    let role = Role {
        id: rep
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(gatehouse_core::id::uuid),
        realm_id: realm.id.clone(),
        client_id: client,
        name: name.to_owned(),
        description: rep
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        attributes: repr::attributes(rep).unwrap_or_default(),
    };
    idp.store.create_role(&role, &ev).await?;
    Ok(role)
}

async fn list_realm(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<RoleListQuery>,
) -> Result<Json<Value>, AdminError> {
    let roles = q.page(idp.store.roles(&realm.id, None).await?);
    render_list(&idp, &roles, &realm, q.brief_representation != Some(false)).await
}

async fn list_client(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, cid)): Path<(String, String)>,
    Query(q): Query<RoleListQuery>,
) -> Result<Json<Value>, AdminError> {
    let c = container(&idp, &realm, Some(&cid)).await?;
    let roles = q.page(idp.store.roles(&realm.id, Some(&c)).await?);
    render_list(&idp, &roles, &realm, q.brief_representation != Some(false)).await
}

async fn create_any(
    admin: &RealmAdmin,
    cid: Option<&str>,
    body: &[u8],
) -> Result<axum::response::Response, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let rep = json_body(body)?;
    let client = match cid {
        Some(c) => Some(container(idp, realm, Some(c)).await?),
        None => None,
    };
    guard_management(idp, realm, caller, client.as_deref()).await?;
    // The created role's path, as Keycloak's event names it.
    let name = rep["name"].as_str().unwrap_or_default();
    let path = match cid {
        Some(c) => format!("clients/{c}/roles/{name}"),
        None => format!("roles/{name}"),
    };
    let ev = event(
        realm,
        caller,
        "CREATE",
        if cid.is_some() {
            "CLIENT_ROLE"
        } else {
            "REALM_ROLE"
        },
        &path,
        Some(&rep),
    );
    let role = create_role(idp, realm, client, &rep, vec![ev]).await?;
    // A path segment: RFC 3986's unreserved characters stay as they are
    // (clients read the role name back from the last segment).
    let enc = percent_encoding::utf8_percent_encode(&role.name, crate::oidc::auth::COMPONENT);
    Ok(created(idp, &realm.name, &format!("{path}/{enc}")))
}

async fn create_realm_role(
    admin: RealmAdmin,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    create_any(&admin, None, &body).await
}

async fn create_client_role(
    admin: RealmAdmin,
    Path((_, cid)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    create_any(&admin, Some(&cid), &body).await
}

async fn get_realm_role(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let role = find(&idp, &realm, None, &name).await?;
    Ok(Json(render(&idp, &role, &realm).await?))
}

async fn get_client_role(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, cid, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let role = find(&idp, &realm, Some(&cid), &name).await?;
    Ok(Json(render(&idp, &role, &realm).await?))
}

async fn by_id(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let role = idp
        .store
        .role(&realm.id, &id)
        .await?
        .ok_or_else(|| AdminError::missing("Could not find role"))?;
    Ok(Json(render(&idp, &role, &realm).await?))
}

/// A role named by URL: by name in the realm or a client, or by id.
enum RoleRef<'a> {
    Name(Option<&'a str>, &'a str),
    Id(&'a str),
}

async fn resolve(idp: &Idp, realm: &Realm, r: &RoleRef<'_>) -> Result<Role, AdminError> {
    match r {
        RoleRef::Name(cid, name) => find(idp, realm, *cid, name).await,
        RoleRef::Id(id) => idp
            .store
            .role(&realm.id, id)
            .await?
            .ok_or_else(|| AdminError::missing("Could not find role")),
    }
}

/// The admin event resource type of a change to `role`.
fn resource_type(role: &Role) -> &'static str {
    if role.client_id.is_some() {
        "CLIENT_ROLE"
    } else {
        "REALM_ROLE"
    }
}

fn role_path(r: &RoleRef<'_>) -> String {
    match r {
        RoleRef::Name(Some(c), n) => format!("clients/{c}/roles/{n}"),
        RoleRef::Name(None, n) => format!("roles/{n}"),
        RoleRef::Id(id) => format!("roles-by-id/{id}"),
    }
}

async fn put_any(
    admin: &RealmAdmin,
    which: RoleRef<'_>,
    body: &[u8],
) -> Result<StatusCode, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let rep = json_body(body)?;
    let mut role = resolve(idp, realm, &which).await?;
    guard_management(idp, realm, caller, role.client_id.as_deref()).await?;
    if let Some(n) = rep
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        if n != role.name
            && idp
                .store
                .role_by_name(&realm.id, role.client_id.as_deref(), n)
                .await?
                .is_some()
        {
            return Err(AdminError::conflict(format!(
                "Role with name {n} already exists"
            )));
        }
        role.name = n.to_owned();
    }
    if rep.get("description").is_some() {
        role.description = rep
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(a) = repr::attributes(&rep) {
        role.attributes = a;
    }
    let rtype = resource_type(&role);
    let ev = event(
        realm,
        caller,
        "UPDATE",
        rtype,
        &role_path(&which),
        Some(&rep),
    );
    idp.store.update_role(&role, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_realm_role(
    admin: RealmAdmin,
    Path((_, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    put_any(&admin, RoleRef::Name(None, &name), &body).await
}

async fn put_client_role(
    admin: RealmAdmin,
    Path((_, cid, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    put_any(&admin, RoleRef::Name(Some(&cid), &name), &body).await
}

async fn put_by_id(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    put_any(&admin, RoleRef::Id(&id), &body).await
}

async fn del_any(admin: &RealmAdmin, which: RoleRef<'_>) -> Result<StatusCode, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let role = resolve(idp, realm, &which).await?;
    guard_management(idp, realm, caller, role.client_id.as_deref()).await?;
    if role.client_id.is_none() && role.name == crate::bootstrap::default_role_name(realm) {
        return Err(AdminError::bad_request("You cannot delete a default role"));
    }
    let rtype = resource_type(&role);
    let ev = event(realm, caller, "DELETE", rtype, &role_path(&which), None);
    idp.store.delete_role(&realm.id, &role.id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn del_realm_role(
    admin: RealmAdmin,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    del_any(&admin, RoleRef::Name(None, &name)).await
}

async fn del_client_role(
    admin: RealmAdmin,
    Path((_, cid, name)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    del_any(&admin, RoleRef::Name(Some(&cid), &name)).await
}

async fn del_by_id(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    del_any(&admin, RoleRef::Id(&id)).await
}

/// Resolves a list of RoleRepresentations (by id, else by name) to role ids.
pub(super) async fn role_ids(
    idp: &Idp,
    realm: &Realm,
    client: Option<&str>,
    body: &[u8],
) -> Result<Vec<String>, AdminError> {
    let rep = json_body(body)?;
    let list = rep
        .as_array()
        .ok_or_else(|| AdminError::bad_request("Expected a list of roles"))?;
    let mut ids = vec![];
    for r in list {
        let role = match (
            r.get("id").and_then(Value::as_str),
            r.get("name").and_then(Value::as_str),
        ) {
            (Some(id), _) => idp.store.role(&realm.id, id).await?,
            (None, Some(n)) => idp.store.role_by_name(&realm.id, client, n).await?,
            _ => None,
        };
        let role = role.ok_or_else(|| AdminError::missing("Could not find role"))?;
        if role.client_id.as_deref() != client {
            return Err(AdminError::missing("Could not find role"));
        }
        ids.push(role.id);
    }
    Ok(ids)
}

/// Keycloak's `requireMapRole`: a realm's narrower administrator (see
/// [`super::realm_management`]) grants or revokes a `realm-management`
/// role, to a user or group or inside a composite, only as far as
/// [`super::realm_management::may_grant`] allows, and a composite is
/// judged by every role it holds (stricter than Keycloak, which looks at
/// the role's own name: a composite must not smuggle `realm-admin` in).
async fn require_grantable(admin: &RealmAdmin, ids: &[String]) -> Result<(), AdminError> {
    grantable_by(&admin.idp, &admin.realm, &admin.caller, ids).await
}

/// The `realm-management` client's own roles are what the admin API's
/// checks go by, by name: only a full administrator (`realm-admin`, or a
/// `master` admin) creates, renames, deletes or recomposes them, so no
/// narrower one renames its role to `realm-admin`.
async fn guard_management(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    client: Option<&str>,
) -> Result<(), AdminError> {
    if caller.limited.is_none() || client.is_none() {
        return Ok(());
    }
    let management = idp
        .store
        .client_by_client_id(&realm.id, crate::bootstrap::REALM_MANAGEMENT)
        .await?;
    if management.is_some_and(|m| Some(m.id.as_str()) == client) {
        return Err(AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"));
    }
    Ok(())
}

/// Joining a user to groups grants what the groups hold (and their
/// parents): a narrower administrator joins users only to groups whose
/// `realm-management` roles it could grant itself ([`require_grantable`];
/// Keycloak lets `manage-users` join any group, a way around its own
/// role check).
pub(super) async fn require_joinable(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    group_ids: &[String],
) -> Result<(), AdminError> {
    if caller.limited.is_none() || group_ids.is_empty() {
        return Ok(());
    }
    let all = idp.store.groups(&realm.id).await?;
    let mut roles = vec![];
    for gid in group_ids {
        let mut next = Some(gid.clone());
        while let Some(id) = next {
            roles.extend(
                idp.store
                    .granted_roles(Holder::Group(&id))
                    .await?
                    .into_iter()
                    .map(|r| r.id),
            );
            next = all
                .iter()
                .find(|g| g.id == id)
                .and_then(|g| g.parent_id.clone());
        }
    }
    grantable_by(idp, realm, caller, &roles).await
}

async fn grantable_by(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    ids: &[String],
) -> Result<(), AdminError> {
    let Some(held) = &caller.limited else {
        return Ok(());
    };
    let Some(management) = idp
        .store
        .client_by_client_id(&realm.id, crate::bootstrap::REALM_MANAGEMENT)
        .await?
    else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::new();
    let mut queue = vec![];
    for id in ids {
        queue.extend(idp.store.role(&realm.id, id).await?);
    }
    while let Some(role) = queue.pop() {
        if !seen.insert(role.id.clone()) {
            continue;
        }
        if role.client_id.as_deref() == Some(&management.id)
            && !super::realm_management::may_grant(held, &role.name)
        {
            return Err(AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"));
        }
        queue.extend(idp.store.composites(&role.id).await?);
    }
    Ok(())
}

/// Which composites a listing shows.
#[derive(Clone, Copy)]
enum CompositeFilter<'a> {
    All,
    Realm,
    Client(&'a str),
}

/// `search` (any case, within the name), `first` and `max` of Keycloak's
/// `roles-by-id/{id}/composites` listing.
#[derive(serde::Deserialize, Default)]
struct CompositeSearch {
    search: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
}

async fn list_composites(
    admin: &RealmAdmin,
    which: RoleRef<'_>,
    filter: CompositeFilter<'_>,
    page: &CompositeSearch,
) -> Result<Json<Value>, AdminError> {
    let RealmAdmin { idp, realm, .. } = admin;
    let role = resolve(idp, realm, &which).await?;
    let client = match filter {
        CompositeFilter::Client(c) => Some(container(idp, realm, Some(c)).await?),
        _ => None,
    };
    let matching = idp
        .store
        .composites(&role.id)
        .await?
        .into_iter()
        .filter(|c| match filter {
            CompositeFilter::All => true,
            CompositeFilter::Realm => c.client_id.is_none(),
            CompositeFilter::Client(_) => c.client_id == client,
        })
        .filter(|c| {
            page.search
                .as_deref()
                .is_none_or(|s| c.name.to_lowercase().contains(&s.to_lowercase()))
        });
    let list: Vec<Role> = super::window(page.first, page.max, matching).collect();
    render_all(idp, &list, realm).await
}

async fn change_composites(
    admin: &RealmAdmin,
    which: RoleRef<'_>,
    body: &[u8],
    add: bool,
) -> Result<StatusCode, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let role = resolve(idp, realm, &which).await?;
    guard_management(idp, realm, caller, role.client_id.as_deref()).await?;
    let rep = json_body(body)?;
    let mut ids = vec![];
    for x in rep
        .as_array()
        .ok_or_else(|| AdminError::bad_request("Expected a list of roles"))?
    {
        // Composites may mix realm and client roles: look up by id first.
        let found = match (
            x.get("id").and_then(Value::as_str),
            x.get("name").and_then(Value::as_str),
        ) {
            (Some(id), _) => idp.store.role(&realm.id, id).await?,
            (None, Some(n)) => idp.store.role_by_name(&realm.id, None, n).await?,
            _ => None,
        };
        let c = found.ok_or_else(|| AdminError::missing("Could not find composite role"))?;
        if c.id == role.id {
            return Err(AdminError::bad_request("A role cannot contain itself"));
        }
        ids.push(c.id);
    }
    require_grantable(admin, &ids).await?;
    let path = format!("{}/composites", role_path(&which));
    let ev = event(
        realm,
        caller,
        if add { "CREATE" } else { "DELETE" },
        resource_type(&role),
        &path,
        Some(&rep),
    );
    if add {
        idp.store.add_composites(&role.id, &ids, &[ev]).await?;
    } else {
        idp.store.remove_composites(&role.id, &ids, &[ev]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The path segments that name a role (`name`, `cid` + `name`, or `id`)
/// and its realm.
type RolePath = Path<std::collections::HashMap<String, String>>;

fn addressed(p: &std::collections::HashMap<String, String>) -> RoleRef<'_> {
    match (p.get("id"), p.get("name")) {
        (Some(id), _) => RoleRef::Id(id),
        (None, name) => RoleRef::Name(
            p.get("cid").map(String::as_str),
            name.map_or("", String::as_str),
        ),
    }
}

async fn composites(
    admin: RealmAdmin,
    Path(p): RolePath,
    Query(page): Query<CompositeSearch>,
) -> Result<Json<Value>, AdminError> {
    let role = addressed(&p);
    list_composites(&admin, role, CompositeFilter::All, &page).await
}

async fn realm_composites(admin: RealmAdmin, Path(p): RolePath) -> Result<Json<Value>, AdminError> {
    let role = addressed(&p);
    let all = CompositeSearch::default();
    list_composites(&admin, role, CompositeFilter::Realm, &all).await
}

async fn client_composites(
    admin: RealmAdmin,
    Path(p): RolePath,
) -> Result<Json<Value>, AdminError> {
    let role = addressed(&p);
    let target = p.get("target").map_or("", String::as_str);
    let all = CompositeSearch::default();
    list_composites(&admin, role, CompositeFilter::Client(target), &all).await
}

async fn add_composites(
    admin: RealmAdmin,
    Path(p): RolePath,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let role = addressed(&p);
    change_composites(&admin, role, &body, true).await
}

async fn del_composites(
    admin: RealmAdmin,
    Path(p): RolePath,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let role = addressed(&p);
    change_composites(&admin, role, &body, false).await
}

#[derive(serde::Deserialize)]
struct Paging {
    first: Option<i64>,
    max: Option<i64>,
}

/// Who holds a role directly: users (`.../users`), or with `GROUPS` the
/// groups (`.../groups`, brief representations by name), paged.
async fn holders_any<const GROUPS: bool>(
    admin: &RealmAdmin,
    which: RoleRef<'_>,
    q: Paging,
) -> Result<Json<Value>, AdminError> {
    let RealmAdmin { idp, realm, caller } = admin;
    let role = resolve(idp, realm, &which).await?;
    let (first, max) = (q.first.unwrap_or(0), q.max.unwrap_or(100));
    if !GROUPS {
        // Seeing a role is not seeing its users: an administrator who may
        // not view users gets none (Keycloak filters them by that right,
        // CVE-2026-17059), and those shown are shown as the users API
        // shows them.
        if !caller.holds(&["view-users", "manage-users"]) {
            return Ok(Json(json!([])));
        }
        let users = idp.store.role_members(&role.id, first, max).await?;
        let policy = super::user_profile::Policy::of(realm);
        return Ok(Json(json!(
            users
                .iter()
                .map(|u| super::users::admin_view(u, &policy))
                .collect::<Vec<_>>()
        )));
    }
    let all = idp.store.groups(&realm.id).await?;
    let mut holding = vec![];
    for g in &all {
        let granted = idp.store.granted_roles(Holder::Group(&g.id)).await?;
        if granted.iter().any(|x| x.id == role.id) {
            holding.push(g);
        }
    }
    holding.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(json!(
        holding
            .into_iter()
            .skip(first.max(0) as usize)
            .take(max.max(0) as usize)
            .map(|g| repr::group_brief(g, &all))
            .collect::<Vec<_>>()
    )))
}

async fn realm_role_holders<const GROUPS: bool>(
    admin: RealmAdmin,
    Path((_, name)): Path<(String, String)>,
    Query(q): Query<Paging>,
) -> Result<Json<Value>, AdminError> {
    holders_any::<GROUPS>(&admin, RoleRef::Name(None, &name), q).await
}

async fn client_role_holders<const GROUPS: bool>(
    admin: RealmAdmin,
    Path((_, cid, name)): Path<(String, String, String)>,
    Query(q): Query<Paging>,
) -> Result<Json<Value>, AdminError> {
    holders_any::<GROUPS>(&admin, RoleRef::Name(Some(&cid), &name), q).await
}

async fn holder_check(idp: &Idp, realm: &Realm, kind: &str, id: &str) -> Result<(), AdminError> {
    match kind {
        "users" => {
            idp.store
                .user(&realm.id, id)
                .await?
                .ok_or_else(|| AdminError::not_found("User"))?;
        }
        "groups" => {
            idp.store
                .group(&realm.id, id)
                .await?
                .ok_or_else(|| AdminError::missing("Could not find group by id"))?;
        }
        _ => return Err(AdminError::not_found("Resource")),
    }
    Ok(())
}

fn holder<'a>(kind: &str, id: &'a str) -> Holder<'a> {
    if kind == "groups" {
        Holder::Group(id)
    } else {
        Holder::User(id)
    }
}

/// The holder of a `.../{users|groups}/{id}/role-mappings[/clients/{cid}]`
/// call (or `.../organizations/{id}/groups/{gid}/role-mappings...`),
/// checked before the handler runs: the admin and realm as [`RealmAdmin`],
/// the user or group found (404 otherwise), the client (`cid`) resolved to
/// its roles' container.
struct Mapping {
    admin: RealmAdmin,
    kind: &'static str,
    id: String,
    /// For an organization's group: the organization.
    org: Option<String>,
    /// The client whose roles the call is about; None: the realm's.
    container: Option<String>,
}

impl Mapping {
    fn holder(&self) -> Holder<'_> {
        holder(self.kind, &self.id)
    }

    /// Every role granted directly to the holder.
    async fn granted(&self) -> Result<Vec<Role>, AdminError> {
        let (idp, realm) = (&self.admin.idp, &self.admin.realm);
        let Some(org) = &self.org else {
            return Ok(idp.store.granted_roles(self.holder()).await?);
        };
        let (_, g) = super::organization_groups::group_of(idp, realm, (org, &self.id)).await?;
        let mut roles = vec![];
        for id in &g.roles {
            if let Some(r) = idp.store.role(&realm.id, id).await? {
                roles.push(r);
            }
        }
        Ok(roles)
    }

    /// The roles granted directly to the holder, of this call's container.
    async fn direct(&self) -> Result<Vec<Role>, AdminError> {
        Ok(self
            .granted()
            .await?
            .into_iter()
            .filter(|r| r.client_id == self.container)
            .collect())
    }

    /// Every role the holder has ([`effective`]).
    async fn effective(&self) -> Result<Vec<Role>, AdminError> {
        let (idp, realm) = (&self.admin.idp, &self.admin.realm);
        match &self.org {
            Some(org) => {
                let (o, _) =
                    super::organization_groups::group_of(idp, realm, (org, &self.id)).await?;
                Ok(super::organization_groups::effective_roles(
                    idp,
                    &realm.id,
                    &o,
                    &[self.id.as_str()],
                )
                .await?)
            }
            None => effective(idp, realm, self.kind, &self.id).await,
        }
    }
}

impl axum::extract::FromRequestParts<Arc<Idp>> for Mapping {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<Idp>,
    ) -> Result<Self, AdminError> {
        let admin = RealmAdmin::from_request_parts(parts, state).await?;
        let kind = match parts.uri.path().split('/').nth(4) {
            Some("groups") => "groups",
            Some("organizations") => "organization groups",
            _ => "users",
        };
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| AdminError::not_found("Resource"))?;
        let param = |name: &str| {
            params
                .iter()
                .find_map(|(k, v)| (k == name).then(|| v.to_owned()))
        };
        let id = param("id").ok_or_else(|| AdminError::not_found("Resource"))?;
        let (id, org) = match param("gid") {
            Some(gid) => {
                super::organization_groups::group_of(&admin.idp, &admin.realm, (&id, &gid)).await?;
                (gid, Some(id))
            }
            None => {
                holder_check(&admin.idp, &admin.realm, kind, &id).await?;
                (id, None)
            }
        };
        let container = match param("cid") {
            Some(c) => Some(container(&admin.idp, &admin.realm, Some(&c)).await?),
            None => None,
        };
        Ok(Mapping {
            admin,
            kind,
            id,
            org,
            container,
        })
    }
}

/// `GET .../role-mappings`: realm and per-client mappings in one document.
async fn all_mappings(m: Mapping) -> Result<Json<Value>, AdminError> {
    let roles = m.granted().await?;
    Ok(Json(
        mappings_document(&m.admin.idp, &m.admin.realm, &roles).await?,
    ))
}

/// Keycloak's MappingsRepresentation of `roles`: `realmMappings`, and
/// `clientMappings` by clientId (only when there are some).
pub(super) async fn mappings_document(
    idp: &Idp,
    realm: &Realm,
    roles: &[Role],
) -> Result<Value, AdminError> {
    let mut realm_roles = vec![];
    let mut clients = serde_json::Map::new();
    for role in roles {
        let v = render_as(idp, role, realm, true).await?;
        match &role.client_id {
            None => realm_roles.push(v),
            Some(c) => {
                let client = idp.store.client(&realm.id, c).await?;
                let name = client
                    .as_ref()
                    .map(|c| c.client_id.clone())
                    .unwrap_or_default();
                let entry = clients
                    .entry(name.clone())
                    .or_insert_with(|| json!({"id": c, "client": name, "mappings": []}));
                if let Some(m) = entry.get_mut("mappings").and_then(Value::as_array_mut) {
                    m.push(v);
                }
            }
        }
    }
    let mut out = json!({"realmMappings": realm_roles});
    if !clients.is_empty() {
        out["clientMappings"] = Value::Object(clients);
    }
    Ok(out)
}

/// `GET .../role-mappings/realm` and `.../clients/{cid}`: direct mappings.
async fn direct_mappings(m: Mapping) -> Result<Json<Value>, AdminError> {
    let roles = m.direct().await?;
    render_all(&m.admin.idp, &roles, &m.admin.realm).await
}

/// Every role `id` has, as Keycloak's `hasRole` answers: for a user through
/// groups and composites; for a group its own, its ancestors' and their
/// composites.
async fn effective(
    idp: &Idp,
    realm: &Realm,
    kind: &str,
    id: &str,
) -> Result<Vec<Role>, AdminError> {
    if kind == "users" {
        return Ok(idp.store.effective_roles(id).await?);
    }
    let mut roles = vec![];
    let mut seen_groups = std::collections::HashSet::new();
    let mut next = Some(id.to_owned());
    while let Some(g) = next.filter(|g| seen_groups.insert(g.clone())) {
        roles.extend(idp.store.granted_roles(Holder::Group(&g)).await?);
        next = idp
            .store
            .group(&realm.id, &g)
            .await?
            .and_then(|g| g.parent_id);
    }
    Ok(with_composites(idp, roles).await?)
}

/// `roles` and, transitively, the roles their composites contain, each
/// once: what holding them means.
pub(super) async fn with_composites(
    idp: &Idp,
    mut roles: Vec<Role>,
) -> Result<Vec<Role>, gatehouse_store::Error> {
    let mut seen: std::collections::HashSet<String> = roles.iter().map(|r| r.id.clone()).collect();
    let mut i = 0;
    while i < roles.len() {
        for c in idp.store.composites(&roles[i].id).await? {
            if seen.insert(c.id.clone()) {
                roles.push(c);
            }
        }
        i += 1;
    }
    Ok(roles)
}

/// `GET .../composite` (effective roles) and `.../available` (the
/// container's roles the holder does not have yet).
async fn effective_or_available(
    m: Mapping,
    uri: axum::http::Uri,
) -> Result<Json<Value>, AdminError> {
    let (idp, realm) = (&m.admin.idp, &m.admin.realm);
    let has: Vec<Role> = m
        .effective()
        .await?
        .into_iter()
        .filter(|r| r.client_id == m.container)
        .collect();
    let roles = if uri.path().ends_with("/available") {
        let had: std::collections::HashSet<&str> = has.iter().map(|r| r.id.as_str()).collect();
        idp.store
            .roles(&realm.id, m.container.as_deref())
            .await?
            .into_iter()
            .filter(|r| !had.contains(r.id.as_str()))
            .collect()
    } else {
        has
    };
    render_all(idp, &roles, realm).await
}

/// `POST|DELETE .../role-mappings/realm` and `.../clients/{cid}`: grant or
/// revoke the roles of the body.
async fn change(m: Mapping, method: Method, body: Bytes) -> Result<StatusCode, AdminError> {
    let add = method == Method::POST;
    let (idp, realm) = (&m.admin.idp, &m.admin.realm);
    let ids = role_ids(idp, realm, m.container.as_deref(), &body).await?;
    require_grantable(&m.admin, &ids).await?;
    let holder_path = match &m.org {
        Some(org) => format!("organizations/{org}/groups/{}", m.id),
        None => format!("{}/{}", m.kind, m.id),
    };
    let (path, rtype) = if let Some(cid) = &m.container {
        (
            format!("{holder_path}/role-mappings/clients/{cid}"),
            "CLIENT_ROLE_MAPPING",
        )
    } else {
        (
            format!("{holder_path}/role-mappings/realm"),
            "REALM_ROLE_MAPPING",
        )
    };
    let ev = event(
        realm,
        &m.admin.caller,
        if add { "CREATE" } else { "DELETE" },
        rtype,
        &path,
        None,
    );
    if let Some(org) = &m.org {
        super::organization_groups::change_roles(&m.admin, (org, &m.id), &ids, add, ev).await?;
    } else if add {
        idp.store.grant_roles(m.holder(), &ids, &[ev]).await?;
    } else {
        idp.store.revoke_roles(m.holder(), &ids, &[ev]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
