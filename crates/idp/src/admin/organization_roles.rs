//! `/admin/realms/{realm}/organizations/{id}/roles[...]`: Keycloak's
//! organization roles (its `main` branch; the admin client's
//! `organizations.createRole`, `listRoles`, `addRoleComposites`,
//! `addRoleUsers`...). An organization's roles belong to it alone: only
//! its members hold them, they may contain the organization's other roles
//! and the realm's realm and client roles (never administration roles),
//! and tokens name them under the organization's entry of the
//! `organization` claim (Keycloak's organization role membership mapper,
//! `tokens.rs`), never in `realm_access`: what one tenant's administrator
//! grants stays inside that tenant.
//!
//! Every organization has a default role, `default-roles-{alias}`, which
//! every member holds through membership (it cannot be deleted, granted
//! or revoked one user at a time, or contained in another role).
//!
//! Kept in the organization's row ([`Organization::roles`]) and written
//! under its edit lock, like its groups.

use super::organizations::{is_member, load};
use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gatehouse_core::model::{Event, Organization, OrganizationRole, Realm, Role};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Routes, merged into the organizations' router.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const R: &str = "/admin/realms/{realm}/organizations/{id}/roles";
    axum::Router::new()
        .route(R, get(list).post(create))
        .route(&format!("{R}/count"), get(count))
        .route(&format!("{R}/{{rid}}"), get(one).put(update).delete(remove))
        .route(
            &format!("{R}/{{rid}}/composites"),
            get(composites::<false>)
                .post(change_composites::<true>)
                .delete(change_composites::<false>),
        )
        .route(
            &format!("{R}/{{rid}}/composites/realm"),
            get(realm_composites),
        )
        .route(
            &format!("{R}/{{rid}}/composites/clients/{{cid}}"),
            get(client_composites),
        )
        .route(
            &format!("{R}/{{rid}}/composites/effective"),
            get(composites::<true>),
        )
        .route(
            &format!("{R}/{{rid}}/composites/available"),
            get(available_composites),
        )
        .route(
            &format!("{R}/{{rid}}/users"),
            get(users::<false>)
                .post(change_users::<true>)
                .delete(change_users::<false>),
        )
        .route(&format!("{R}/{{rid}}/users/available"), get(users::<true>))
}

type Params = Path<BTreeMap<String, String>>;

/// The default role's name, Keycloak's `default-roles-{alias}`.
fn default_name(o: &Organization) -> String {
    format!("default-roles-{}", o.alias)
}

/// A new role of the organization: `id`, `name`, and the description and
/// attributes a representation gives (none for `Value::Null`).
fn role_from(id: String, name: String, rep: &Value) -> OrganizationRole {
    OrganizationRole {
        id,
        name,
        description: rep["description"].as_str().map(str::to_owned),
        attributes: crate::repr::attributes(rep).unwrap_or_default(),
        composites: vec![],
        users: vec![],
    }
}

/// Gives `o` its default role if it has none (every new organization gets
/// one; older rows get theirs when first read here). True when it changed.
pub fn ensure_default(o: &mut Organization) -> bool {
    if o.default_role
        .as_ref()
        .is_some_and(|id| o.roles.iter().any(|r| &r.id == id))
    {
        return false;
    }
    let name = default_name(o);
    let id = match o.roles.iter().find(|r| r.name == name) {
        Some(r) => r.id.clone(),
        None => {
            let id = gatehouse_core::id::uuid();
            o.roles.push(role_from(id.clone(), name, &Value::Null));
            id
        }
    };
    o.default_role = Some(id);
    true
}

/// Drops `user` from the roles of `o` (they left it); true when it changed.
pub fn without_member(o: &mut Organization, user: &str) -> bool {
    let mut changed = false;
    for r in &mut o.roles {
        let before = r.users.len();
        r.users.retain(|u| u != user);
        changed |= r.users.len() != before;
    }
    changed
}

/// The roles of `o` that member `user` holds (the default role, those
/// granted directly, and the organization roles these contain), and the
/// ids of the realm and client roles they contain, not yet expanded.
pub fn held<'a>(o: &'a Organization, user: &str) -> (Vec<&'a OrganizationRole>, Vec<String>) {
    let mut todo: Vec<&str> = o
        .roles
        .iter()
        .filter(|r| Some(&r.id) == o.default_role.as_ref() || r.users.iter().any(|u| u == user))
        .map(|r| r.id.as_str())
        .collect();
    closure(o, &mut todo, None)
}

/// Follows `todo`'s composites within `o`: the organization roles reached
/// (without `except`) and the other roles' ids, each once.
fn closure<'a>(
    o: &'a Organization,
    todo: &mut Vec<&'a str>,
    except: Option<&str>,
) -> (Vec<&'a OrganizationRole>, Vec<String>) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let (mut own, mut other) = (vec![], vec![]);
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        match o.roles.iter().find(|r| r.id == id) {
            Some(r) => {
                if Some(id) != except {
                    own.push(r);
                }
                todo.extend(r.composites.iter().map(String::as_str));
            }
            None => other.push(id.to_owned()),
        }
    }
    own.sort_by(|a, b| a.name.cmp(&b.name));
    (own, other)
}

/// Keycloak's RoleRepresentation of an organization role, as the realm's
/// roles are written (`crate::repr::role`), its container the
/// organization; attributes only when not brief.
fn repr(o: &Organization, r: &OrganizationRole, brief: bool) -> Value {
    let role = Role {
        id: r.id.clone(),
        realm_id: o.realm_id.clone(),
        client_id: None,
        name: r.name.clone(),
        description: r.description.clone(),
        attributes: r.attributes.clone(),
    };
    let composite = !r.composites.is_empty();
    if brief {
        crate::repr::role_brief(&role, composite, &o.id)
    } else {
        crate::repr::role(&role, composite, &o.id)
    }
}

/// Where role `rid` (or `default`) is among `o`'s roles.
fn index(o: &Organization, rid: &str) -> Result<usize, AdminError> {
    let id = if rid == "default" {
        o.default_role
            .as_deref()
            .ok_or_else(|| AdminError::missing("Could not find default organization role"))?
    } else {
        rid
    };
    o.roles
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| AdminError::missing("Could not find organization role"))
}

fn is_default(o: &Organization, r: &OrganizationRole) -> bool {
    o.default_role.as_ref() == Some(&r.id)
}

/// The organization, its default role made if it predates roles.
async fn read(admin: &RealmAdmin, id: &str) -> Result<Organization, AdminError> {
    let o = load(&admin.idp, &admin.realm, id).await?;
    if o.default_role.is_some() {
        return Ok(o);
    }
    edit(admin, id, |o| Ok((o.clone(), None))).await
}

/// Changes organization `id` under its row's edit lock: `f` works on the
/// organization as it is now and returns what to answer and the admin
/// event to write with the change.
async fn edit<T>(
    admin: &RealmAdmin,
    id: &str,
    f: impl FnOnce(&mut Organization) -> Result<(T, Option<Event>), AdminError>,
) -> Result<T, AdminError> {
    let _edit = admin.idp.lock_row(id).await;
    let mut o = load(&admin.idp, &admin.realm, id).await?;
    let made = ensure_default(&mut o);
    let (out, ev) = f(&mut o)?;
    if made || ev.is_some() {
        let ev: Vec<Event> = ev.into_iter().collect();
        admin.idp.store.put_organization(&o, &ev).await?;
    }
    Ok(out)
}

fn role_event(admin: &RealmAdmin, op: &str, rtype: &str, path: &str, rep: &Value) -> Event {
    event(&admin.realm, &admin.caller, op, rtype, path, Some(rep))
}

#[derive(serde::Deserialize, Default)]
struct RoleQuery {
    search: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
    #[serde(
        default,
        rename = "briefRepresentation",
        deserialize_with = "super::lenient_bool"
    )]
    brief: Option<bool>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    /// Where `composites/available` looks: `organization`, `realm` or
    /// `client`.
    source: Option<String>,
}

impl RoleQuery {
    /// Keycloak's role search: within the name or the description, in any
    /// case; a blank search matches everything.
    fn matches(&self, name: &str, description: Option<&str>) -> bool {
        let Some(s) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return true;
        };
        let s = s.to_lowercase();
        name.to_lowercase().contains(&s)
            || description.is_some_and(|d| d.to_lowercase().contains(&s))
    }
}

fn sorted(o: &Organization) -> Vec<&OrganizationRole> {
    let mut all: Vec<&OrganizationRole> = o.roles.iter().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// `GET .../roles`: brief unless `briefRepresentation=false`.
async fn list(
    admin: RealmAdmin,
    Path(p): Params,
    Query(q): Query<RoleQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let brief = q.brief.unwrap_or(true);
    let matching = sorted(&o)
        .into_iter()
        .filter(|r| q.matches(&r.name, r.description.as_deref()));
    let page: Vec<Value> = super::window(q.first, q.max, matching)
        .map(|r| repr(&o, r, brief))
        .collect();
    Ok(Json(json!(page)))
}

async fn count(
    admin: RealmAdmin,
    Path(p): Params,
    Query(q): Query<RoleQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let n = o
        .roles
        .iter()
        .filter(|r| q.matches(&r.name, r.description.as_deref()))
        .count();
    Ok(Json(json!(n)))
}

/// `POST .../roles`: 201 with the new role's URL; 409 for a name the
/// organization already has (another organization's, or a realm role's,
/// is no conflict).
async fn create(admin: RealmAdmin, Path(p): Params, body: Bytes) -> Result<Response, AdminError> {
    let rep = json_body(&body)?;
    let name = rep
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AdminError::bad_request("role has no name"))?
        .to_owned();
    let org_id = p["id"].clone();
    let role = role_from(gatehouse_core::id::uuid(), name, &rep);
    let path = format!("organizations/{org_id}/roles/{}", role.id);
    let ev = role_event(&admin, "CREATE", "ORGANIZATION_ROLE", &path, &rep);
    edit(&admin, &org_id, |o| {
        if o.roles.iter().any(|r| r.name == role.name) {
            return Err(AdminError::conflict(format!(
                "Role with name {} already exists",
                role.name
            )));
        }
        o.roles.push(role);
        Ok(((), Some(ev)))
    })
    .await?;
    Ok(super::created(&admin.idp, &admin.realm.name, &path))
}

async fn one(admin: RealmAdmin, Path(p): Params) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let r = &o.roles[index(&o, &p["rid"])?];
    Ok(Json(repr(&o, r, false)))
}

/// `PUT .../roles/{rid}`: name, description and attributes, as Keycloak's
/// role update takes them (what the body leaves out stays).
async fn update(admin: RealmAdmin, Path(p): Params, body: Bytes) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    if !rep.is_object() {
        return Err(AdminError::bad_request("role has no name"));
    }
    let path = format!("organizations/{}/roles/{}", p["id"], p["rid"]);
    let ev = role_event(&admin, "UPDATE", "ORGANIZATION_ROLE", &path, &rep);
    edit(&admin, &p["id"], |o| {
        let i = index(o, &p["rid"])?;
        if let Some(n) = rep
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if n != o.roles[i].name && o.roles.iter().any(|r| r.name == n) {
                return Err(AdminError::conflict(format!(
                    "Role with name {n} already exists"
                )));
            }
            if is_default(o, &o.roles[i]) && n != o.roles[i].name {
                return Err(AdminError::bad_request(
                    "The default organization role cannot be renamed",
                ));
            }
            o.roles[i].name = n.to_owned();
        }
        if rep.get("description").is_some() {
            o.roles[i].description = rep["description"].as_str().map(str::to_owned);
        }
        if let Some(a) = crate::repr::attributes(&rep) {
            o.roles[i].attributes = a;
        }
        Ok(((), Some(ev)))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../roles/{rid}`: the role goes, and with it its place in the
/// organization's other roles. The default role stays (400).
async fn remove(admin: RealmAdmin, Path(p): Params) -> Result<StatusCode, AdminError> {
    let path = format!("organizations/{}/roles/{}", p["id"], p["rid"]);
    edit(&admin, &p["id"], |o| {
        let i = index(o, &p["rid"])?;
        if is_default(o, &o.roles[i]) {
            return Err(AdminError::bad_request(format!(
                "{} is default role of the organization and cannot be removed.",
                o.roles[i].name
            )));
        }
        let gone = o.roles.remove(i);
        for r in &mut o.roles {
            r.composites.retain(|c| c != &gone.id);
        }
        let rep = repr(o, &gone, true);
        Ok((
            (),
            Some(role_event(
                &admin,
                "DELETE",
                "ORGANIZATION_ROLE",
                &path,
                &rep,
            )),
        ))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `role` is, or contains, an administration role: one of the
/// realm's `realm-management` client, or in `master` the `admin` and
/// `create-realm` roles and the roles of its `{realm}-realm` clients.
/// Keycloak keeps these out of organization roles.
async fn is_admin_role(idp: &Idp, realm: &Realm, role: &Role) -> Result<bool, AdminError> {
    let management = idp
        .store
        .client_by_client_id(&realm.id, crate::bootstrap::REALM_MANAGEMENT)
        .await?
        .map(|c| c.id);
    let master = realm.name == "master";
    for r in crate::tokens::expand_roles(idp, realm, std::slice::from_ref(&role.id)).await? {
        let admin = match &r.client_id {
            Some(c) if management.as_ref() == Some(c) => true,
            Some(c) => {
                master
                    && idp
                        .store
                        .client(&realm.id, c)
                        .await?
                        .is_some_and(|c| c.client_id.ends_with("-realm"))
            }
            None => master && (r.name == "admin" || r.name == "create-realm"),
        };
        if admin {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The ids a composites body names (`[{"id": ...}]`): roles of `o` or the
/// realm's realm and client roles. Adding checks what Keycloak refuses:
/// the default role, the role itself, administration roles.
async fn named_composites(
    admin: &RealmAdmin,
    o: &Organization,
    parent: &str,
    rep: &Value,
    adding: bool,
) -> Result<Vec<String>, AdminError> {
    let list = rep
        .as_array()
        .ok_or_else(|| AdminError::bad_request("roles are required"))?;
    let mut ids = vec![];
    for x in list {
        let id = x
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| AdminError::missing("Could not find composite role"))?;
        if let Some(r) = o.roles.iter().find(|r| r.id == id) {
            if adding && is_default(o, r) {
                return Err(AdminError::bad_request(
                    "The default organization role cannot be added as a composite role",
                ));
            }
            if adding && r.id == parent {
                return Err(AdminError::bad_request("A role cannot contain itself"));
            }
        } else {
            let r = admin
                .idp
                .store
                .role(&admin.realm.id, id)
                .await?
                .ok_or_else(|| AdminError::missing("Could not find composite role"))?;
            if adding && is_admin_role(&admin.idp, &admin.realm, &r).await? {
                return Err(AdminError::bad_request(
                    "Organization roles can not have admin roles as composites",
                ));
            }
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// A role's list a request changes.
#[derive(Clone, Copy)]
enum List {
    Composites,
    Users,
}

impl List {
    fn of(self, r: &mut OrganizationRole) -> &mut Vec<String> {
        match self {
            List::Composites => &mut r.composites,
            List::Users => &mut r.users,
        }
    }
}

/// Adds `ids` to (`add`) or removes them from `list` of role `role_id`,
/// under the row's lock, with one admin event (none for an empty body).
async fn change_list(
    admin: &RealmAdmin,
    p: &BTreeMap<String, String>,
    (role_id, list): (&str, List),
    ids: Vec<String>,
    add: bool,
    rep: &Value,
) -> Result<StatusCode, AdminError> {
    let (segment, rtype) = match list {
        List::Composites => ("composites", "ORGANIZATION_ROLE"),
        List::Users => ("users", "ORGANIZATION_ROLE_MAPPING"),
    };
    let path = format!("organizations/{}/roles/{}/{segment}", p["id"], p["rid"]);
    let op = if add { "CREATE" } else { "DELETE" };
    let ev = (!ids.is_empty()).then(|| role_event(admin, op, rtype, &path, rep));
    edit(admin, &p["id"], |o| {
        let i = index(o, role_id)?;
        let held = list.of(&mut o.roles[i]);
        held.retain(|x| !ids.contains(x));
        if add {
            held.extend(ids.iter().cloned());
        }
        Ok(((), ev))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST` (`ADD`) or `DELETE .../composites` with `[{"id": ...}]`.
async fn change_composites<const ADD: bool>(
    admin: RealmAdmin,
    Path(p): Params,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let o = read(&admin, &p["id"]).await?;
    let parent = o.roles[index(&o, &p["rid"])?].id.clone();
    let ids = named_composites(&admin, &o, &parent, &rep, ADD).await?;
    change_list(&admin, &p, (&parent, List::Composites), ids, ADD, &rep).await
}

/// Brief representations of realm and client roles, as the realm's role
/// listings give them.
async fn realm_side(admin: &RealmAdmin, roles: &[Role]) -> Result<Vec<Value>, AdminError> {
    let Json(v) = super::roles::render_all(&admin.idp, roles, &admin.realm).await?;
    Ok(match v {
        Value::Array(a) => a,
        _ => vec![],
    })
}

/// The realm and client roles among `ids` (ones deleted since drop out).
async fn realm_roles_of(admin: &RealmAdmin, ids: &[String]) -> Result<Vec<Role>, AdminError> {
    let mut out = vec![];
    for id in ids {
        out.extend(admin.idp.store.role(&admin.realm.id, id).await?);
    }
    Ok(out)
}

/// Orders realm roles before client roles (by client, then name), as
/// Keycloak's effective listing does after the organization's own.
fn by_kind(roles: &mut [Role], client_names: &BTreeMap<String, String>) {
    roles.sort_by(|a, b| {
        let key = |r: &Role| {
            (
                r.client_id.is_some(),
                r.client_id
                    .as_ref()
                    .and_then(|c| client_names.get(c))
                    .cloned()
                    .unwrap_or_default(),
                r.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The realm and client roles role `rid` contains directly.
async fn direct_realm_side(
    admin: &RealmAdmin,
    p: &BTreeMap<String, String>,
) -> Result<Vec<Role>, AdminError> {
    let o = read(admin, &p["id"]).await?;
    let r = &o.roles[index(&o, &p["rid"])?];
    let mut roles = realm_roles_of(admin, &r.composites).await?;
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(roles)
}

async fn realm_composites(admin: RealmAdmin, Path(p): Params) -> Result<Json<Value>, AdminError> {
    let mut roles = direct_realm_side(&admin, &p).await?;
    roles.retain(|r| r.client_id.is_none());
    Ok(Json(json!(realm_side(&admin, &roles).await?)))
}

/// `GET .../composites/clients/{cid}` (the client's internal id).
async fn client_composites(admin: RealmAdmin, Path(p): Params) -> Result<Json<Value>, AdminError> {
    let client = admin
        .idp
        .store
        .client(&admin.realm.id, &p["cid"])
        .await?
        .ok_or_else(|| AdminError::missing("Could not find client"))?;
    let mut roles = direct_realm_side(&admin, &p).await?;
    roles.retain(|r| r.client_id.as_deref() == Some(client.id.as_str()));
    Ok(Json(json!(realm_side(&admin, &roles).await?)))
}

/// `GET .../composites` (what it contains directly) and, `EFFECTIVE`,
/// `.../composites/effective` (at any depth): the organization's roles,
/// then realm roles, then client roles (by client); `search` in names,
/// descriptions and client ids.
async fn composites<const EFFECTIVE: bool>(
    admin: RealmAdmin,
    Path(p): Params,
    Query(q): Query<RoleQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let r = &o.roles[index(&o, &p["rid"])?];
    let (own, mut others) = if EFFECTIVE {
        let mut todo: Vec<&str> = r.composites.iter().map(String::as_str).collect();
        let (own, other_ids) = closure(&o, &mut todo, Some(&r.id));
        let others = crate::tokens::expand_roles(&admin.idp, &admin.realm, &other_ids).await?;
        (own, others)
    } else {
        let mut own: Vec<&OrganizationRole> = o
            .roles
            .iter()
            .filter(|x| r.composites.contains(&x.id))
            .collect();
        own.sort_by(|a, b| a.name.cmp(&b.name));
        (own, realm_roles_of(&admin, &r.composites).await?)
    };
    let mut client_names = BTreeMap::new();
    for x in &others {
        if let Some(c) = &x.client_id
            && !client_names.contains_key(c)
            && let Some(client) = admin.idp.store.client(&admin.realm.id, c).await?
        {
            client_names.insert(c.clone(), client.client_id);
        }
    }
    others.retain(|x| {
        q.matches(&x.name, x.description.as_deref())
            || x.client_id
                .as_ref()
                .and_then(|c| client_names.get(c))
                .is_some_and(|cid| q.matches(cid, None))
    });
    by_kind(&mut others, &client_names);
    let mut out: Vec<Value> = own
        .into_iter()
        .filter(|x| q.matches(&x.name, x.description.as_deref()))
        .map(|x| repr(&o, x, true))
        .collect();
    out.extend(realm_side(&admin, &others).await?);
    Ok(Json(json!(
        super::window(q.first, q.max, out.into_iter()).collect::<Vec<_>>()
    )))
}

/// `GET .../composites/available?source=organization|realm|client`: the
/// roles that could be added (not itself, not already there, not the
/// default role, no administration roles).
async fn available_composites(
    admin: RealmAdmin,
    Path(p): Params,
    Query(q): Query<RoleQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let r = &o.roles[index(&o, &p["rid"])?];
    let out: Vec<Value> = match q.source.as_deref() {
        Some("organization") => sorted(&o)
            .into_iter()
            .filter(|x| x.id != r.id && !is_default(&o, x) && !r.composites.contains(&x.id))
            .filter(|x| q.matches(&x.name, x.description.as_deref()))
            .map(|x| repr(&o, x, true))
            .collect(),
        Some(source @ ("realm" | "client")) => {
            let mut candidates = vec![];
            if source == "realm" {
                candidates = admin.idp.store.roles(&admin.realm.id, None).await?;
            } else {
                for c in admin.idp.store.clients(&admin.realm.id).await? {
                    candidates.extend(admin.idp.store.roles(&admin.realm.id, Some(&c.id)).await?);
                }
            }
            let mut keep = vec![];
            for x in candidates {
                if !r.composites.contains(&x.id)
                    && q.matches(&x.name, x.description.as_deref())
                    && !is_admin_role(&admin.idp, &admin.realm, &x).await?
                {
                    keep.push(x);
                }
            }
            realm_side(&admin, &keep).await?
        }
        _ => return Err(AdminError::bad_request("unknown composite role source")),
    };
    Ok(Json(json!(
        super::window(q.first, q.max, out.into_iter()).collect::<Vec<_>>()
    )))
}

/// A user as the role's user listings show one.
fn user_repr(u: &gatehouse_core::model::User, realm: &Realm, brief: bool) -> Value {
    let mut v = super::users::admin_view(u, &super::user_profile::Policy::of(realm));
    if brief {
        super::users::make_brief(&mut v);
    }
    v
}

/// Members of `o` among `ids`, by username.
async fn members_among(
    admin: &RealmAdmin,
    o: &Organization,
    ids: &[String],
) -> Result<Vec<gatehouse_core::model::User>, AdminError> {
    let members = admin.idp.store.organization_members(&o.id).await?;
    let mut users = vec![];
    for id in ids.iter().filter(|id| members.contains(id)) {
        users.extend(admin.idp.store.user(&admin.realm.id, id).await?);
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(users)
}

/// `GET .../users` (the members granted it directly; the default role's
/// holders are the members themselves, listed under `members`) and, with
/// `AVAILABLE`, `.../users/available` (members who do not hold it
/// directly): `search` in username, e-mail and names (`exact`: whole
/// values), `first`, `max` (100); brief by default only for the second, as
/// in Keycloak.
async fn users<const AVAILABLE: bool>(
    admin: RealmAdmin,
    Path(p): Params,
    Query(q): Query<RoleQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = read(&admin, &p["id"]).await?;
    let r = &o.roles[index(&o, &p["rid"])?];
    let mut listed = if AVAILABLE {
        let mut all = super::organizations::member_users(&admin.idp, &admin.realm, &o).await?;
        all.retain(|u| !r.users.contains(&u.id));
        all
    } else {
        members_among(&admin, &o, &r.users).await?
    };
    if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let s = s.to_lowercase();
        let exact = q.exact.unwrap_or(false);
        listed.retain(|u| {
            [
                Some(&u.username),
                u.email.as_ref(),
                u.first_name.as_ref(),
                u.last_name.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|f| {
                let f = f.to_lowercase();
                if exact { f == s } else { f.contains(&s) }
            })
        });
    }
    let brief = q.brief.unwrap_or(AVAILABLE);
    let page: Vec<Value> = super::window(q.first, q.max.or(Some(100)), listed.iter())
        .map(|u| user_repr(u, &admin.realm, brief))
        .collect();
    Ok(Json(json!(page)))
}

/// Grants (`ADD`) or revokes the role to the users a body names
/// (`[{"id": ...}]`). Only members may be granted it; the default role's
/// holders follow membership and are not changed here.
async fn change_users<const ADD: bool>(
    admin: RealmAdmin,
    Path(p): Params,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let list = rep
        .as_array()
        .ok_or_else(|| AdminError::bad_request("users are required"))?;
    let o = read(&admin, &p["id"]).await?;
    let role_id = {
        let r = &o.roles[index(&o, &p["rid"])?];
        if is_default(&o, r) {
            return Err(AdminError::bad_request(
                "default organization role mappings are managed by organization membership.",
            ));
        }
        r.id.clone()
    };
    let mut ids = vec![];
    for x in list {
        let id = x
            .get("id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AdminError::bad_request("user id is required"))?;
        if admin.idp.store.user(&admin.realm.id, id).await?.is_none() {
            return Err(AdminError::missing("User not found"));
        }
        if ADD && !is_member(&admin.idp, &o, id).await? {
            return Err(AdminError::described(
                "invalid_request",
                "Organization roles can only be assigned to members of the organization",
            ));
        }
        ids.push(id.to_owned());
    }
    change_list(&admin, &p, (&role_id, List::Users), ids, ADD, &rep).await
}

/// The organization's roles as a realm export writes them (Keycloak's
/// `roles` of an OrganizationRepresentation, with `composites` by name:
/// `organization`, `realm`, `client` by clientId), its `defaultRole`, and
/// by member id the names of the roles granted them directly (the
/// members' `organizationRoles`).
pub async fn export(
    idp: &Idp,
    realm: &Realm,
    o: &Organization,
) -> Result<(Vec<Value>, Option<Value>, BTreeMap<String, Vec<String>>), AdminError> {
    let mut roles = vec![];
    for r in sorted(o) {
        let mut v = repr(o, r, false);
        let own: Vec<&str> = o
            .roles
            .iter()
            .filter(|x| r.composites.contains(&x.id))
            .map(|x| x.name.as_str())
            .collect();
        let (mut realm_names, mut client_names) = (vec![], BTreeMap::<String, Vec<String>>::new());
        for id in &r.composites {
            let Some(x) = idp.store.role(&realm.id, id).await? else {
                continue;
            };
            match &x.client_id {
                None => realm_names.push(x.name),
                Some(c) => {
                    if let Some(client) = idp.store.client(&realm.id, c).await? {
                        client_names
                            .entry(client.client_id)
                            .or_default()
                            .push(x.name);
                    }
                }
            }
        }
        if !r.composites.is_empty() {
            let mut c = serde_json::Map::new();
            if !own.is_empty() {
                c.insert("organization".into(), json!(own));
            }
            if !realm_names.is_empty() {
                c.insert("realm".into(), json!(realm_names));
            }
            if !client_names.is_empty() {
                c.insert("client".into(), json!(client_names));
            }
            v["composites"] = Value::Object(c);
        }
        roles.push(v);
    }
    let default = o
        .default_role
        .as_ref()
        .and_then(|id| o.roles.iter().find(|r| &r.id == id))
        .map(|r| repr(o, r, false));
    let mut granted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in sorted(o) {
        for u in &r.users {
            granted.entry(u.clone()).or_default().push(r.name.clone());
        }
    }
    Ok((roles, default, granted))
}

/// The roles of an exported organization (`roles`, `defaultRole`), their
/// composites by name (ones the realm lacks are skipped), and the members'
/// `organizationRoles`, given `members` (id, representation) once they
/// are members.
pub async fn import(
    idp: &Idp,
    realm: &Realm,
    o: &mut Organization,
    rep: &Value,
    members: &[(String, &Value)],
) -> Result<(), AdminError> {
    let reps: Vec<&Value> = rep["roles"].as_array().into_iter().flatten().collect();
    for r in &reps {
        let Some(name) = r["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(AdminError::bad_request("role has no name"));
        };
        if o.roles.iter().any(|x| x.name == name) {
            return Err(AdminError::conflict(format!(
                "Role with name {name} already exists"
            )));
        }
        let id = r["id"]
            .as_str()
            .map_or_else(gatehouse_core::id::uuid, str::to_owned);
        o.roles.push(role_from(id, name.to_owned(), r));
    }
    if let Some(d) = rep["defaultRole"]["name"].as_str()
        && let Some(r) = o.roles.iter().find(|r| r.name == d)
    {
        o.default_role = Some(r.id.clone());
    }
    ensure_default(o);
    for r in &reps {
        let Some(i) = o
            .roles
            .iter()
            .position(|x| Some(x.name.as_str()) == r["name"].as_str())
        else {
            continue;
        };
        let c = &r["composites"];
        let mut ids = vec![];
        for n in c["organization"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            ids.extend(
                o.roles
                    .iter()
                    .filter(|x| x.name == n && !is_default(o, x))
                    .map(|x| x.id.clone()),
            );
        }
        ids.extend(crate::import::role_ids_named(idp, &realm.id, &c["realm"], &c["client"]).await?);
        o.roles[i].composites = ids;
    }
    for (uid, m) in members {
        for n in m["organizationRoles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let default = o.default_role.clone();
            if let Some(r) = o
                .roles
                .iter_mut()
                .find(|r| r.name == n && Some(&r.id) != default.as_ref())
            {
                r.users.push(uid.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, composites: &[&str], users: &[&str]) -> OrganizationRole {
        OrganizationRole {
            id: id.into(),
            name: format!("n-{id}"),
            description: None,
            attributes: Default::default(),
            composites: composites.iter().map(|s| (*s).into()).collect(),
            users: users.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn org(roles: Vec<OrganizationRole>) -> Organization {
        serde_json::from_value(
            json!({"id": "o", "realm_id": "r", "name": "Acme", "alias": "acme",
            "enabled": true, "default_role": "d", "roles": roles}),
        )
        .unwrap_or_else(|e| panic!("organization: {e}"))
    }

    #[test]
    fn members_hold_the_default_role_their_grants_and_what_these_contain() {
        let o = org(vec![
            role("d", &["realm-1"], &[]),
            role("a", &["b", "realm-2"], &["u1"]),
            role("b", &["a", "client-1"], &[]),
            role("c", &[], &["u2"]),
        ]);
        let (own, other) = held(&o, "u1");
        let names: Vec<&str> = own.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(names, ["a", "b", "d"], "cycles end, each role once");
        let other: BTreeSet<String> = other.into_iter().collect();
        assert_eq!(
            other,
            ["client-1", "realm-1", "realm-2"].map(String::from).into()
        );
        let (own, other) = held(&o, "someone-else");
        assert_eq!(own.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["d"]);
        assert_eq!(other, ["realm-1"]);
    }

    #[test]
    fn a_default_role_is_made_once_and_named_after_the_alias() {
        let mut o = org(vec![]);
        o.default_role = None;
        assert!(ensure_default(&mut o));
        assert_eq!(o.roles.len(), 1);
        assert_eq!(o.roles[0].name, "default-roles-acme");
        assert_eq!(o.default_role.as_deref(), Some(o.roles[0].id.as_str()));
        assert!(!ensure_default(&mut o));
        assert_eq!(o.roles.len(), 1);
    }

    #[test]
    fn a_leaving_member_loses_their_roles() {
        let mut o = org(vec![role("d", &[], &[]), role("a", &[], &["u1", "u2"])]);
        assert!(without_member(&mut o, "u1"));
        assert_eq!(o.roles[1].users, ["u2"]);
        assert!(!without_member(&mut o, "u1"));
    }
}
