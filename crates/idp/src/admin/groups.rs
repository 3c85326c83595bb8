//! `/admin/realms/{realm}/groups...`: nested groups and their members.

use super::{Paging, RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{Event, Group, Realm};
use serde_json::{Value, json};
use std::sync::Arc;

/// Group routes.
pub fn routes() -> Router<Arc<Idp>> {
    const G: &str = "/admin/realms/{realm}/groups";
    Router::new()
        .route(G, get(list).post(create_top))
        .route(&format!("{G}/count"), get(count))
        .route(&format!("{G}/{{id}}"), get(one).put(update).delete(remove))
        .route(
            &format!("{G}/{{id}}/children"),
            get(children).post(create_child),
        )
        .route(&format!("{G}/{{id}}/members"), get(members))
        .route("/admin/realms/{realm}/group-by-path/{*path}", get(by_path))
        .route("/admin/realms/{realm}/default-groups", get(default_groups))
        .route(
            "/admin/realms/{realm}/default-groups/{id}",
            axum::routing::put(set_default).delete(set_default),
        )
        .route(
            &format!("{G}/{{id}}/members/{{uid}}"),
            axum::routing::put(add_member).delete(remove_member),
        )
}

#[derive(serde::Deserialize)]
struct ListQuery {
    search: Option<String>,
    /// `search` names the whole group name (case-insensitive).
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    /// `key:value ...` over group attributes.
    q: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
}

async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let all = idp.store.groups(&realm.id).await?;
    let exact = q.exact == Some(true);
    let wanted = super::users::attribute_query(q.q.as_deref().unwrap_or(""))
        .ok_or_else(|| AdminError::bad_request("Invalid query q"))?;
    // A top-level group is listed when it or a group under it matches.
    let matches = |g: &Group| {
        name_matches(&g.name, q.search.as_deref(), exact)
            && wanted
                .iter()
                .all(|(k, v)| g.attributes.get(k).is_some_and(|vals| vals.contains(v)))
    };
    let top = all
        .iter()
        .filter(|g| g.parent_id.is_none())
        .filter(|g| subtree_matches(&all, g, &matches));
    Ok(Json(json!(
        super::window(q.first, q.max, top)
            .map(|g| repr::group(g, &all, true))
            .collect::<Vec<_>>()
    )))
}

/// Keycloak's `search` over a name (of a group, an organization or its
/// domains, a member's fields): a case-insensitive substring, or with
/// `exact` the whole name; no search matches everything.
pub fn name_matches(name: &str, search: Option<&str>, exact: bool) -> bool {
    search.is_none_or(|s| {
        let (name, s) = (name.to_lowercase(), s.to_lowercase());
        if exact { name == s } else { name.contains(&s) }
    })
}

fn subtree_matches(all: &[Group], g: &Group, matches: &impl Fn(&Group) -> bool) -> bool {
    matches(g)
        || all
            .iter()
            .filter(|c| c.parent_id.as_deref() == Some(&g.id))
            .any(|c| subtree_matches(all, c, matches))
}

/// `search` and `top` of Keycloak's group count.
#[derive(serde::Deserialize)]
struct CountQuery {
    search: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    top: Option<bool>,
}

/// `GET /groups/count`: top-level groups, or with `search` the groups
/// whose name matches (at any depth, as Keycloak counts them), unless
/// `top=true` counts only the top-level groups with a match below them.
async fn count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<CountQuery>,
) -> Result<Json<Value>, AdminError> {
    let all = idp.store.groups(&realm.id).await?;
    let search = q.search.as_deref();
    let named = |g: &Group| name_matches(&g.name, search, false);
    let n = match search {
        None => all.iter().filter(|g| g.parent_id.is_none()).count(),
        Some(_) if q.top == Some(true) => all
            .iter()
            .filter(|g| g.parent_id.is_none() && subtree_matches(&all, g, &named))
            .count(),
        Some(_) => all.iter().filter(|g| named(g)).count(),
    };
    Ok(Json(json!({ "count": n })))
}

/// Creates a group under `parent` (admin API and import).
pub async fn create_group(
    idp: &Idp,
    realm: &Realm,
    parent: Option<&str>,
    rep: &Value,
    ev: Vec<Event>,
) -> Result<Group, AdminError> {
    let name = rep
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| AdminError::bad_request("Group name is missing"))?;
    repr::valid_name(name).map_err(AdminError::bad_request)?;
    let all = idp.store.groups(&realm.id).await?;
    if all
        .iter()
        .any(|g| g.name == name && g.parent_id.as_deref() == parent)
    {
        return Err(AdminError::conflict(format!(
            "Top level group named '{name}' already exists."
        )));
    }
    let g = Group {
        id: rep
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(gatehouse_core::id::uuid),
        realm_id: realm.id.clone(),
        parent_id: parent.map(str::to_owned),
        name: name.to_owned(),
        description: rep
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        attributes: repr::attributes(rep).unwrap_or_default(),
    };
    idp.store.create_group(&g, &ev).await?;
    Ok(g)
}

async fn create_top(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let rep = json_body(&body)?;
    let mut with_id = rep.clone();
    // The created resource's path, for the admin event and Location.
    let path = format!("groups/{}", super::new_id(&mut with_id));
    let ev = event(&realm, &caller, "CREATE", "GROUP", &path, Some(&rep));
    create_group(&idp, &realm, None, &with_id, vec![ev]).await?;
    Ok(created(&idp, &realm.name, &path))
}

async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Group, AdminError> {
    idp.store
        .group(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::missing("Could not find group by id"))
}

async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let g = load(&idp, &realm, &id).await?;
    let all = idp.store.groups(&realm.id).await?;
    Ok(Json(repr::group(&g, &all, true)))
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let (realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let rep = json_body(&body)?;
    let mut g = load(&idp, &realm, &id).await?;
    if let Some(n) = rep.get("name").and_then(Value::as_str) {
        repr::valid_name(n).map_err(AdminError::bad_request)?;
        g.name = n.to_owned();
    }
    if let Some(d) = rep.get("description") {
        g.description = d.as_str().filter(|d| !d.is_empty()).map(str::to_owned);
    }
    if let Some(a) = repr::attributes(&rep) {
        g.attributes = a;
    }
    let ev = event(
        &realm,
        &caller,
        "UPDATE",
        "GROUP",
        &format!("groups/{id}"),
        Some(&rep),
    );
    let old_path = repr::group_path(&idp.store.groups(&realm.id).await?, &id);
    idp.store.update_group(&g, &[ev]).await?;
    // Only the last segment changes: the parent's path stays.
    let parent = old_path.rsplit_once('/').map_or("", |(p, _)| p);
    let new_path = format!("{parent}/{}", g.name);
    repath_defaults(&idp, realm, &old_path, Some(&new_path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keeps the realm's default groups (kept by path, as Keycloak's
/// representation has them) pointing at a renamed group and its subgroups,
/// and drops a deleted one.
async fn repath_defaults(
    idp: &Idp,
    mut realm: Realm,
    old: &str,
    new: Option<&str>,
) -> Result<(), AdminError> {
    let paths = repr::default_group_paths(&realm);
    let mut changed = false;
    let mut next = Vec::with_capacity(paths.len());
    for p in paths {
        let under = p == old || p.strip_prefix(old).is_some_and(|r| r.starts_with('/'));
        match (under, new) {
            (false, _) => next.push(p),
            (true, Some(n)) => {
                changed |= n != old;
                next.push(format!("{n}{}", &p[old.len()..]));
            }
            (true, None) => changed = true,
        }
    }
    if changed {
        realm.extra.insert("defaultGroups".into(), json!(next));
        idp.store.update_realm(&realm, &[]).await?;
    }
    Ok(())
}

/// `GET /admin/realms/{realm}/group-by-path/{path}`.
async fn by_path(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, path)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let all = idp.store.groups(&realm.id).await?;
    let g = repr::group_by_path(&all, &path)
        .ok_or_else(|| AdminError::missing("Group path does not exist"))?;
    Ok(Json(repr::group(g, &all, true)))
}

/// `GET /admin/realms/{realm}/default-groups`: the groups every new user joins.
async fn default_groups(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
) -> Result<Json<Value>, AdminError> {
    let all = idp.store.groups(&realm.id).await?;
    Ok(Json(json!(
        repr::default_group_paths(&realm)
            .iter()
            .filter_map(|p| repr::group_by_path(&all, p))
            .map(|g| repr::group(g, &all, false))
            .collect::<Vec<_>>()
    )))
}

/// `PUT|DELETE /admin/realms/{realm}/default-groups/{id}`.
async fn set_default(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    method: axum::http::Method,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let on = method == axum::http::Method::PUT;
    load(&idp, &realm, &id).await?;
    let all = idp.store.groups(&realm.id).await?;
    let path = repr::group_path(&all, &id);
    let mut paths = repr::default_group_paths(&realm);
    let had = paths.contains(&path);
    if on == had {
        return Ok(StatusCode::NO_CONTENT);
    }
    if on {
        paths.push(path);
    } else {
        paths.retain(|p| *p != path);
    }
    realm.extra.insert("defaultGroups".into(), json!(paths));
    let ev = event(
        &realm,
        &caller,
        if on { "CREATE" } else { "DELETE" },
        "GROUP",
        &format!("default-groups/{id}"),
        None,
    );
    idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let (realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "GROUP",
        &format!("groups/{id}"),
        None,
    );
    let all = idp.store.groups(&realm.id).await?;
    let old_path = repr::group_path(&all, &id);
    idp.store.delete_group(&realm.id, &id, &[ev]).await?;
    repath_defaults(&idp, realm, &old_path, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `search` / `exact` and paging of a group's children, as Keycloak reads them.
#[derive(serde::Deserialize)]
struct ChildQuery {
    search: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    first: Option<i64>,
    max: Option<i64>,
}

async fn children(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ChildQuery>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    let all = idp.store.groups(&realm.id).await?;
    let exact = q.exact == Some(true);
    let kids = super::window(
        q.first,
        q.max,
        all.iter()
            .filter(|g| g.parent_id.as_deref() == Some(&id))
            .filter(|g| name_matches(&g.name, q.search.as_deref(), exact)),
    );
    Ok(Json(json!(
        kids.map(|g| repr::group(g, &all, false))
            .collect::<Vec<_>>()
    )))
}

async fn create_child(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    load(&idp, &realm, &id).await?;
    // A group moved (or made) under `id` gives its members `id`'s roles.
    super::roles::require_joinable(&idp, &realm, &caller, std::slice::from_ref(&id)).await?;
    let rep = json_body(&body)?;
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "GROUP",
        &format!("groups/{id}/children"),
        Some(&rep),
    );
    let g = create_group(&idp, &realm, Some(&id), &rep, vec![ev]).await?;
    Ok(created(&idp, &realm.name, &format!("groups/{}", g.id)))
}

async fn members(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<Paging>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    let users = idp
        .store
        .group_members(&id, q.first.unwrap_or(0), q.max.unwrap_or(100))
        .await?;
    // As Keycloak lists members: the admin view of each user, without the
    // caller's `access` flags.
    let policy = super::user_profile::Policy::of(&realm);
    Ok(Json(json!(
        users
            .iter()
            .map(|u| {
                let mut v = super::users::admin_view(u, &policy);
                if let Some(o) = v.as_object_mut() {
                    o.remove("access");
                }
                v
            })
            .collect::<Vec<_>>()
    )))
}

async fn change_member(
    admin: &RealmAdmin,
    gid: &str,
    uid: &str,
    join: bool,
) -> Result<StatusCode, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    load(idp, realm, gid).await?;
    if join {
        super::roles::require_joinable(idp, realm, caller, &[gid.to_owned()]).await?;
    }
    idp.store
        .user(&realm.id, uid)
        .await?
        .ok_or_else(|| AdminError::not_found("User"))?;
    let op = if join { "CREATE" } else { "DELETE" };
    let ev = event(
        realm,
        caller,
        op,
        "GROUP_MEMBERSHIP",
        &format!("users/{uid}/groups/{gid}"),
        None,
    );
    if join {
        idp.store.join_group(uid, gid, &[ev]).await?;
    } else {
        idp.store.leave_group(uid, gid, &[ev]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn add_member(
    admin: RealmAdmin,
    Path((_, gid, uid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    change_member(&admin, &gid, &uid, true).await
}

async fn remove_member(
    admin: RealmAdmin,
    Path((_, gid, uid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    change_member(&admin, &gid, &uid, false).await
}
