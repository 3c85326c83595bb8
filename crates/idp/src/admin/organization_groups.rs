//! `/admin/realms/{realm}/organizations/{id}/groups[...]` and
//! `.../organizations/{id}/members/{user}/groups`: Keycloak's
//! organization groups (what the admin client's
//! `organizations.groups(orgId)` calls). An organization's groups are a
//! tree of their own, apart from the realm's groups (the realm's group
//! listings, paths and tokens never show them), and only the
//! organization's members join them.
//!
//! Kept in the organization's row ([`Organization::groups`]) and written
//! under its edit lock, so one write changes a group, its subtree or its
//! members at once. Role mappings (served by `roles.rs`'s mapping routes)
//! reach members' tokens through [`member_roles`], as Keycloak 26.7's do,
//! and Keycloak's organization group membership mapper (`tokens.rs`)
//! names a member's groups per organization.

use super::organizations::{is_member, load};
use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use gatehouse_core::model::{Organization, OrganizationGroup};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Routes, merged into the organizations' router.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const G: &str = "/admin/realms/{realm}/organizations/{id}/groups";
    axum::Router::new()
        .route(G, get(list).post(create_top))
        .route(&format!("{G}/count"), get(count))
        .route(&format!("{G}/{{gid}}"), get(one).put(update).delete(remove))
        .route(
            &format!("{G}/{{gid}}/children"),
            get(children).post(create_child),
        )
        .route(&format!("{G}/{{gid}}/members"), get(members))
        .route(
            &format!("{G}/{{gid}}/members/{{user}}"),
            put(join).delete(leave),
        )
        .route(
            "/admin/realms/{realm}/organizations/{id}/members/{user}/groups",
            get(of_member),
        )
}

/// Group `g` and then its ancestors, bounded by the tree's size whatever
/// the stored parents say.
fn ancestry<'a>(
    o: &'a Organization,
    g: &'a OrganizationGroup,
) -> impl Iterator<Item = &'a OrganizationGroup> {
    std::iter::successors(Some(g), |x| {
        let parent = x.parent_id.as_deref()?;
        o.groups.iter().find(|p| p.id == parent)
    })
    .take(o.groups.len() + 1)
}

/// The path of group `g` in its organization's tree (`/parent/child`).
fn path_of(o: &Organization, g: &OrganizationGroup) -> String {
    let mut names: Vec<&str> = ancestry(o, g).map(|x| x.name.as_str()).collect();
    names.reverse();
    format!("/{}", names.join("/"))
}

fn child_count(o: &Organization, id: &str) -> usize {
    o.groups
        .iter()
        .filter(|g| g.parent_id.as_deref() == Some(id))
        .count()
}

/// Keycloak's GroupRepresentation of an organization group: brief (id,
/// name, path, parent, counts) or whole (with attributes, description and
/// its empty role collections, as Keycloak 26.7 answers them).
fn repr(o: &Organization, g: &OrganizationGroup, brief: bool) -> Value {
    let mut v = json!({"id": g.id, "name": g.name, "path": path_of(o, g),
        "subGroupCount": child_count(o, &g.id), "subGroups": []});
    if let Some(p) = &g.parent_id {
        v["parentId"] = json!(p);
    }
    if let Some(d) = &g.description {
        v["description"] = json!(d);
    }
    if !brief {
        v["attributes"] = json!(g.attributes);
        v["realmRoles"] = json!([]);
        v["clientRoles"] = json!({});
    }
    v
}

#[derive(serde::Deserialize)]
struct ListQuery {
    search: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    first: Option<i64>,
    max: Option<i64>,
    #[serde(
        default,
        rename = "briefRepresentation",
        deserialize_with = "super::lenient_bool"
    )]
    brief: Option<bool>,
}

impl ListQuery {
    /// The top-level groups, or with `search` every group whose name
    /// matches (`exact`: whole names).
    fn matching<'a>(&'a self, o: &'a Organization) -> impl Iterator<Item = &'a OrganizationGroup> {
        o.groups.iter().filter(|g| match self.search.as_deref() {
            Some(s) => {
                super::groups::name_matches(&g.name, Some(s.trim()), self.exact == Some(true))
            }
            None => g.parent_id.is_none(),
        })
    }
}

/// `GET .../groups`: the top-level groups, or with `search` every group
/// whose name matches (`exact` for whole names; without regard to case).
async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let brief = q.brief != Some(false);
    let page: Vec<Value> = super::window(q.first, q.max, q.matching(&o))
        .map(|g| repr(&o, g, brief))
        .collect();
    Ok(Json(json!(page)))
}

/// `GET .../groups/count`: `{"count": n}` of the organization's groups
/// (top-level ones unless `search` names some).
async fn count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let n = q.matching(&o).count();
    Ok(Json(json!({ "count": n })))
}

fn find<'a>(o: &'a Organization, gid: &str) -> Result<&'a OrganizationGroup, AdminError> {
    o.groups
        .iter()
        .find(|g| g.id == gid)
        .ok_or_else(|| AdminError::missing("Group does not exist"))
}

async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    Ok(Json(repr(&o, find(&o, &p["gid"])?, false)))
}

/// A sibling of `parent` already named `name` (other than `except`): 409.
fn check_name(
    o: &Organization,
    parent: Option<&str>,
    name: &str,
    except: Option<&str>,
) -> Result<(), AdminError> {
    if o.groups.iter().any(|g| {
        g.parent_id.as_deref() == parent && g.name == name && Some(g.id.as_str()) != except
    }) {
        return Err(AdminError::conflict(
            "Group with the given name already exists.",
        ));
    }
    Ok(())
}

fn name_of(rep: &Value) -> Result<String, AdminError> {
    rep.get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| AdminError::bad_request("Group name is missing"))
}

/// Writes the organization row with one admin event.
async fn save(
    admin: &RealmAdmin,
    o: &Organization,
    (op, path, rep): (&str, String, Option<&Value>),
) -> Result<(), AdminError> {
    let ev = event(
        &admin.realm,
        &admin.caller,
        op,
        "ORGANIZATION_GROUP",
        &path,
        rep,
    );
    admin.idp.store.put_organization(o, &[ev]).await?;
    Ok(())
}

/// Creates a group under `parent` (201 with its brief representation and
/// `Location`), or, for a representation naming an existing group of the
/// organization by `id`, moves that group there (204), as Keycloak does.
async fn place(
    admin: RealmAdmin,
    org_id: &str,
    parent: Option<String>,
    body: &Bytes,
) -> Result<Response, AdminError> {
    let rep = json_body(body)?;
    let name = name_of(&rep)?;
    let _edit = admin.idp.lock_row(org_id).await;
    let mut o = load(&admin.idp, &admin.realm, org_id).await?;
    if let Some(p) = &parent {
        find(&o, p)?;
    }
    let base = format!("organizations/{}/groups", o.id);
    if let Some(id) = rep.get("id").and_then(Value::as_str) {
        let moved = find(&o, id)
            .map_err(|_| AdminError::missing("Could not find group by id"))?
            .clone();
        // A group cannot move under itself or its own subtree.
        let mut at = parent.clone();
        while let Some(a) = at {
            if a == moved.id {
                return Err(AdminError::bad_request(
                    "A group cannot be moved under itself",
                ));
            }
            at = find(&o, &a)?.parent_id.clone();
        }
        check_name(&o, parent.as_deref(), &moved.name, Some(&moved.id))?;
        if let Some(g) = o.groups.iter_mut().find(|g| g.id == moved.id) {
            g.parent_id = parent;
        }
        save(&admin, &o, ("UPDATE", format!("{base}/{id}"), Some(&rep))).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    check_name(&o, parent.as_deref(), &name, None)?;
    let g = OrganizationGroup {
        id: gatehouse_core::id::uuid(),
        name,
        parent_id: parent,
        description: rep
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        attributes: crate::repr::attributes(&rep).unwrap_or_default(),
        members: vec![],
        roles: vec![],
    };
    o.groups.push(g.clone());
    let path = format!("{base}/{}", g.id);
    save(&admin, &o, ("CREATE", path.clone(), Some(&rep))).await?;
    // Keycloak answers the new group's brief representation too.
    let made = super::created(&admin.idp, &admin.realm.name, &path);
    let mut r = (StatusCode::CREATED, Json(repr(&o, &g, true))).into_response();
    if let Some(loc) = made.headers().get(axum::http::header::LOCATION) {
        r.headers_mut()
            .insert(axum::http::header::LOCATION, loc.clone());
    }
    Ok(r)
}

async fn create_top(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    place(admin, &p["id"], None, &body).await
}

async fn create_child(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    place(admin, &p["id"], Some(p["gid"].clone()), &body).await
}

/// `GET .../groups/{gid}/children`: its direct subgroups.
async fn children(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let parent = find(&o, &p["gid"])?;
    let kids = o
        .groups
        .iter()
        .filter(|g| g.parent_id.as_deref() == Some(parent.id.as_str()));
    let page: Vec<Value> = super::window(q.first, q.max, kids)
        .map(|g| repr(&o, g, q.brief != Some(false)))
        .collect();
    Ok(Json(json!(page)))
}

/// `PUT .../groups/{gid}`: name, description, attributes; 204.
async fn update(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let _edit = admin.idp.lock_row(&p["id"]).await;
    let mut o = load(&admin.idp, &admin.realm, &p["id"]).await?;
    let g = find(&o, &p["gid"])?.clone();
    let name = match rep.get("name") {
        Some(_) => name_of(&rep)?,
        None => g.name.clone(),
    };
    check_name(&o, g.parent_id.as_deref(), &name, Some(&g.id))?;
    if let Some(x) = o.groups.iter_mut().find(|x| x.id == g.id) {
        x.name = name;
        if rep.get("description").is_some() {
            x.description = rep
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(a) = crate::repr::attributes(&rep) {
            x.attributes = a;
        }
    }
    let path = format!("organizations/{}/groups/{}", o.id, g.id);
    save(&admin, &o, ("UPDATE", path, Some(&rep))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../groups/{gid}`: the group and its subtree; 204.
async fn remove(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let _edit = admin.idp.lock_row(&p["id"]).await;
    let mut o = load(&admin.idp, &admin.realm, &p["id"]).await?;
    let root = find(&o, &p["gid"])?.id.clone();
    let mut gone = vec![root.clone()];
    let mut i = 0;
    while i < gone.len() {
        let kids: Vec<String> = o
            .groups
            .iter()
            .filter(|g| g.parent_id.as_deref() == Some(gone[i].as_str()))
            .map(|g| g.id.clone())
            .collect();
        gone.extend(kids);
        i += 1;
    }
    o.groups.retain(|g| !gone.contains(&g.id));
    let path = format!("organizations/{}/groups/{root}", o.id);
    save(&admin, &o, ("DELETE", path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../groups/{gid}/members`: its members who are still members of
/// the organization, brief unless `briefRepresentation=false`.
async fn members(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let g = find(&o, &p["gid"])?;
    let current = idp.store.organization_members(&o.id).await?;
    let mut users = Vec::new();
    for id in g.members.iter().filter(|m| current.contains(m)) {
        if let Some(u) = idp.store.user(&realm.id, id).await? {
            users.push(u);
        }
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let policy = super::user_profile::Policy::of(&realm);
    let page: Vec<Value> = super::window(q.first, q.max, users.iter())
        .map(|u| {
            let mut v = super::users::admin_view(u, &policy);
            if q.brief != Some(false) {
                super::users::make_brief(&mut v);
            }
            v
        })
        .collect();
    Ok(Json(json!(page)))
}

/// `PUT` / `DELETE .../groups/{gid}/members/{user}`: 204; only the
/// organization's members join (400 otherwise).
async fn membership(
    admin: RealmAdmin,
    p: BTreeMap<String, String>,
    join: bool,
) -> Result<StatusCode, AdminError> {
    let _edit = admin.idp.lock_row(&p["id"]).await;
    let mut o = load(&admin.idp, &admin.realm, &p["id"]).await?;
    let gid = find(&o, &p["gid"])?.id.clone();
    let user = &p["user"];
    if admin.idp.store.user(&admin.realm.id, user).await?.is_none() {
        return Err(AdminError::missing("User not found"));
    }
    if join && !is_member(&admin.idp, &o, user).await? {
        return Err(AdminError::bad_request(
            "User is not a member of the organization",
        ));
    }
    if let Some(g) = o.groups.iter_mut().find(|g| g.id == gid) {
        g.members.retain(|m| m != user);
        if join {
            g.members.push(user.clone());
        }
    }
    let path = format!("organizations/{}/groups/{gid}/members/{user}", o.id);
    let op = if join { "CREATE" } else { "DELETE" };
    save(&admin, &o, (op, path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn join(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    membership(admin, p, true).await
}

async fn leave(
    admin: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    membership(admin, p, false).await
}

/// `GET .../organizations/{id}/members/{user}/groups`: the organization's
/// groups the member is in.
async fn of_member(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let user = &p["user"];
    if !is_member(&idp, &o, user).await? {
        return Err(AdminError::missing("Not a member of the organization"));
    }
    let mine = o.groups.iter().filter(|g| g.members.contains(user));
    let page: Vec<Value> = super::window(q.first, q.max, mine)
        .map(|g| repr(&o, g, q.brief != Some(false)))
        .collect();
    Ok(Json(json!(page)))
}

/// The role ids mapped to groups `ids` and to their ancestors.
fn mapped_along(o: &Organization, ids: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let groups = ids
        .iter()
        .filter_map(|id| o.groups.iter().find(|g| g.id == *id));
    for r in groups.flat_map(|g| ancestry(o, g)).flat_map(|g| &g.roles) {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// The roles groups `ids` of `o` give, as Keycloak counts a group's: its
/// own, its ancestors', and their composites, transitively.
pub async fn effective_roles(
    idp: &Idp,
    realm_id: &str,
    o: &Organization,
    ids: &[&str],
) -> Result<Vec<gatehouse_core::model::Role>, gatehouse_store::Error> {
    let mut roles = vec![];
    for id in mapped_along(o, ids) {
        if let Some(r) = idp.store.role(realm_id, &id).await? {
            roles.push(r);
        }
    }
    super::roles::with_composites(idp, roles).await
}

/// What `o`'s groups say of `user_id`: the paths of those they are in
/// and the roles these give; None when they are in none.
pub async fn member_view(
    idp: &Idp,
    realm_id: &str,
    o: &Organization,
    user_id: &str,
) -> Result<Option<(Vec<String>, Vec<gatehouse_core::model::Role>)>, gatehouse_store::Error> {
    let mine: Vec<&OrganizationGroup> = o
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m == user_id))
        .collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let paths = mine.iter().map(|g| path_of(o, g)).collect();
    let ids: Vec<&str> = mine.iter().map(|g| g.id.as_str()).collect();
    Ok(Some((
        paths,
        effective_roles(idp, realm_id, o, &ids).await?,
    )))
}

/// Changes the roles mapped to group `gid` of organization `org_id`
/// (`add` or remove `ids`), with one admin event.
pub async fn change_roles(
    admin: &RealmAdmin,
    (org_id, gid): (&str, &str),
    ids: &[String],
    add: bool,
    ev: gatehouse_core::model::Event,
) -> Result<(), AdminError> {
    let _edit = admin.idp.lock_row(org_id).await;
    let mut o = load(&admin.idp, &admin.realm, org_id).await?;
    let g = o
        .groups
        .iter_mut()
        .find(|g| g.id == gid)
        .ok_or_else(|| AdminError::missing("Group does not exist"))?;
    g.roles.retain(|r| !ids.contains(r));
    if add {
        g.roles.extend(ids.iter().cloned());
    }
    admin.idp.store.put_organization(&o, &[ev]).await?;
    Ok(())
}

/// The organization's group `gid`, for the role-mapping routes (404 in
/// Keycloak's words).
pub async fn group_of(
    idp: &Idp,
    realm: &gatehouse_core::model::Realm,
    (org_id, gid): (&str, &str),
) -> Result<(Organization, OrganizationGroup), AdminError> {
    let o = load(idp, realm, org_id).await?;
    let g = find(&o, gid)?.clone();
    Ok((o, g))
}

/// The organization's groups without `user` (who left it).
pub fn without_member(o: &mut Organization, user: &str) -> bool {
    let mut changed = false;
    for g in &mut o.groups {
        let before = g.members.len();
        g.members.retain(|m| m != user);
        changed |= g.members.len() != before;
    }
    changed
}

/// The organization's groups as a realm export writes them: Keycloak's
/// nested GroupRepresentations (`subGroups`), with their role mappings by
/// name (`realmRoles`, `clientRoles` by clientId). Memberships are not
/// written (Keycloak's export format has no place for them that Gatehouse
/// knows).
pub async fn export(idp: &Idp, o: &Organization) -> Result<Vec<Value>, AdminError> {
    let mut reps: BTreeMap<String, Value> = BTreeMap::new();
    for g in &o.groups {
        let mut realm_roles = vec![];
        let mut client_roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in &g.roles {
            let Some(r) = idp.store.role(&o.realm_id, id).await? else {
                continue;
            };
            match &r.client_id {
                None => realm_roles.push(r.name),
                Some(c) => {
                    if let Some(c) = idp.store.client(&o.realm_id, c).await? {
                        client_roles.entry(c.client_id).or_default().push(r.name);
                    }
                }
            }
        }
        let mut v = json!({"id": g.id, "name": g.name, "path": path_of(o, g),
            "attributes": g.attributes, "realmRoles": realm_roles,
            "clientRoles": client_roles, "subGroups": []});
        if let Some(d) = &g.description {
            v["description"] = json!(d);
        }
        reps.insert(g.id.clone(), v);
    }
    // Children into their parents, deepest first.
    let mut order: Vec<&OrganizationGroup> = o.groups.iter().collect();
    order.sort_by_key(|g| std::cmp::Reverse(path_of(o, g).matches('/').count()));
    for g in order {
        let Some(parent) = &g.parent_id else { continue };
        if let Some(v) = reps.remove(&g.id)
            && let Some(subs) = reps
                .get_mut(parent)
                .and_then(|p| p["subGroups"].as_array_mut())
        {
            subs.push(v);
        }
    }
    Ok(o.groups
        .iter()
        .filter(|g| g.parent_id.is_none())
        .filter_map(|g| reps.remove(&g.id))
        .collect())
}

/// The groups of an imported organization representation (`groups`, as
/// [`export`] writes them): roles resolved by name, ones the realm lacks
/// skipped, as the realm's own group import does.
pub async fn import(
    idp: &Idp,
    realm_id: &str,
    reps: &[Value],
) -> Result<Vec<OrganizationGroup>, AdminError> {
    let mut out = vec![];
    let mut todo: Vec<(Option<String>, &Value)> = reps.iter().map(|r| (None, r)).collect();
    while let Some((parent, rep)) = todo.pop() {
        let Some(name) = rep["name"].as_str().filter(|n| !n.trim().is_empty()) else {
            return Err(AdminError::bad_request("Group name is missing"));
        };
        let id = rep["id"]
            .as_str()
            .map_or_else(gatehouse_core::id::uuid, str::to_owned);
        let roles =
            crate::import::role_ids_named(idp, realm_id, &rep["realmRoles"], &rep["clientRoles"])
                .await?;
        out.push(OrganizationGroup {
            id: id.clone(),
            name: name.trim().to_owned(),
            parent_id: parent,
            description: rep["description"].as_str().map(str::to_owned),
            attributes: crate::repr::attributes(rep).unwrap_or_default(),
            members: vec![],
            roles,
        });
        for sub in rep["subGroups"].as_array().into_iter().flatten() {
            todo.push((Some(id.clone()), sub));
        }
    }
    Ok(out)
}
