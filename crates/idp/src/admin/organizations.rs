//! `/admin/realms/{realm}/organizations/...`: Keycloak's organizations, a
//! realm's tenants (customers, partners) with their e-mail domains, members
//! and linked identity providers. Tokens name a user's organizations
//! through the `organization` client scope (`tokens.rs`).
//!
//! As in Keycloak, every path answers 404 "Organizations not enabled for
//! this realm." until the realm's `organizationsEnabled` is on. Invitations
//! are in `organization_invitations.rs`.

use super::organization_invitations as invitations;
use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_core::model::{Organization, OrganizationDomain, Realm, User};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const O: &str = "/admin/realms/{realm}/organizations";
    Router::new()
        .merge(super::organization_groups::routes())
        .merge(super::organization_roles::routes())
        .route(O, get(list).post(create))
        .route(&format!("{O}/count"), get(count))
        .route(
            &format!("{O}/members/{{user}}/organizations"),
            get(of_member),
        )
        .route(&format!("{O}/{{id}}"), get(read).put(update).delete(remove))
        .route(
            &format!("{O}/{{id}}/members"),
            get(members).post(add_member),
        )
        .route(&format!("{O}/{{id}}/members/count"), get(members_count))
        .route(
            &format!("{O}/{{id}}/members/invite-user"),
            post(invitations::invite_user),
        )
        .route(
            &format!("{O}/{{id}}/members/invite-existing-user"),
            post(invitations::invite_existing_user),
        )
        .route(&format!("{O}/{{id}}/invitations"), get(invitations::list))
        .route(
            &format!("{O}/{{id}}/invitations/{{inv}}"),
            get(invitations::one).delete(invitations::remove),
        )
        .route(
            &format!("{O}/{{id}}/invitations/{{inv}}/resend"),
            post(invitations::resend),
        )
        .route(
            &format!("{O}/{{id}}/members/{{user}}"),
            get(member).delete(remove_member),
        )
        .route(
            &format!("{O}/{{id}}/members/{{user}}/organizations"),
            get(member_organizations),
        )
        .route(
            &format!("{O}/{{id}}/identity-providers"),
            get(providers).post(link_provider),
        )
        .route(
            &format!("{O}/{{id}}/identity-providers/{{alias}}"),
            get(provider).delete(unlink_provider),
        )
}

/// Whether the realm has organizations turned on.
pub fn enabled(realm: &Realm) -> bool {
    realm.extra.get("organizationsEnabled") == Some(&json!(true))
}

fn check_enabled(realm: &Realm) -> Result<(), AdminError> {
    if enabled(realm) {
        Ok(())
    } else {
        Err(AdminError::missing(
            "Organizations not enabled for this realm.",
        ))
    }
}

/// Keycloak's `OrganizationRepresentation`; attributes only when not brief.
pub fn repr(o: &Organization, brief: bool) -> Value {
    let mut v = json!({"id": o.id, "name": o.name, "alias": o.alias, "enabled": o.enabled,
                       "domains": o.domains.iter().map(|d| json!({"name": d.name, "verified": d.verified}))
                                  .collect::<Vec<_>>()});
    if let Some(d) = &o.description {
        v["description"] = json!(d);
    }
    if let Some(u) = &o.redirect_url {
        v["redirectUrl"] = json!(u);
    }
    if !brief {
        v["attributes"] = json!(o.attributes);
    }
    v
}

/// A domain name as Keycloak accepts one: labels of letters, digits and
/// inner hyphens, at least two of them (or `*.` before them).
fn valid_domain(d: &str) -> bool {
    let d = d.strip_prefix("*.").unwrap_or(d);
    let labels: Vec<&str> = d.split('.').collect();
    labels.len() >= 2
        && d.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Applies a representation's fields to `o` (Keycloak's `toModel`): name,
/// enabled, description, redirect URL, attributes, and the domains, which
/// replace the old ones. The alias is set once, at creation.
fn apply(o: &mut Organization, rep: &Value) -> Result<(), AdminError> {
    if !rep.is_object() {
        return Err(AdminError::bad_request("Organization cannot be null."));
    }
    if let Some(n) = rep.get("name") {
        let n = n.as_str().map(str::trim).unwrap_or_default();
        if n.is_empty() {
            return Err(AdminError::bad_request("Name can not be null"));
        }
        o.name = n.to_owned();
    }
    if let Some(e) = rep.get("enabled").and_then(Value::as_bool) {
        o.enabled = e;
    }
    let text = |k: &str| {
        rep.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if rep.get("description").is_some() {
        o.description = text("description");
    }
    if rep.get("redirectUrl").is_some() {
        o.redirect_url = text("redirectUrl");
    }
    if rep.get("attributes").is_some() {
        o.attributes = crate::repr::attributes(rep).unwrap_or_default();
    }
    if let Some(list) = rep.get("domains").and_then(Value::as_array) {
        let mut domains: Vec<OrganizationDomain> = Vec::new();
        for d in list {
            let name = d["name"].as_str().map(str::trim).unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            let name = name.to_ascii_lowercase();
            if !valid_domain(&name) {
                return Err(AdminError::bad_request(format!(
                    "The domain name {name} is invalid"
                )));
            }
            if domains.iter().all(|x| x.name != name) {
                domains.push(OrganizationDomain {
                    name,
                    verified: d["verified"].as_bool().unwrap_or(false),
                });
            }
        }
        o.domains = domains;
    }
    Ok(())
}

/// An enabled organization with nothing set yet, for `apply` to fill.
fn new_organization(realm: &Realm, id: String) -> Organization {
    Organization {
        id,
        realm_id: realm.id.clone(),
        name: String::new(),
        alias: String::new(),
        enabled: true,
        description: None,
        redirect_url: None,
        attributes: Default::default(),
        domains: vec![],
        identity_providers: vec![],
        invitations: vec![],
        groups: vec![],
        roles: vec![],
        default_role: None,
    }
}

/// The alias a representation asks for, else the name.
fn alias_of(o: &Organization, rep: &Value) -> String {
    rep.get("alias")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(&o.name)
        .to_owned()
}

/// Stores `o`, with Keycloak's 409s for a taken name, alias or domain.
async fn store(
    idp: &Idp,
    realm: &Realm,
    o: &Organization,
    ev: &[gatehouse_core::model::Event],
) -> Result<(), AdminError> {
    let others = idp.store.organizations(&realm.id).await?;
    for other in others.iter().filter(|x| x.id != o.id) {
        if other.name == o.name {
            return Err(AdminError::conflict(
                "A organization with the same name already exists.",
            ));
        }
        if other.alias == o.alias {
            return Err(AdminError::conflict(
                "A organization with the same alias already exists",
            ));
        }
        if let Some(d) = o
            .domains
            .iter()
            .find(|d| other.domains.iter().any(|x| x.name == d.name))
        {
            return Err(AdminError::conflict(format!(
                "Domain {} is already linked to another organization.",
                d.name
            )));
        }
    }
    idp.store.put_organization(o, ev).await?;
    Ok(())
}

#[derive(serde::Deserialize, Default)]
struct Search {
    search: Option<String>,
    q: Option<String>,
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

/// Keycloak's organization search: `search` over the name and domains
/// (substring, case-insensitive, or whole with `exact`), or `q` as
/// `key:value` pairs that the attributes must all hold.
fn matching<'a>(all: &'a [Organization], q: &Search) -> Vec<&'a Organization> {
    let pairs: Vec<(&str, &str)> =
        q.q.as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.split_once(':'))
            .collect();
    let exact = q.exact == Some(true);
    all.iter()
        .filter(|o| {
            if !pairs.is_empty() {
                return pairs.iter().all(|(k, v)| {
                    o.attributes
                        .get(*k)
                        .is_some_and(|vs| vs.iter().any(|x| x == v))
                });
            }
            let hit = |t: &str| super::groups::name_matches(t, q.search.as_deref(), exact);
            hit(&o.name) || o.domains.iter().any(|d| hit(&d.name))
        })
        .collect()
}

/// `GET /organizations`: 10 per page unless `max` says otherwise.
async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<Search>,
) -> Result<Json<Value>, AdminError> {
    check_enabled(&realm)?;
    let all = idp.store.organizations(&realm.id).await?;
    let brief = q.brief != Some(false);
    let page: Vec<Value> = super::window(
        q.first,
        Some(q.max.unwrap_or(10)),
        matching(&all, &q).into_iter(),
    )
    .map(|o| repr(o, brief))
    .collect();
    Ok(Json(json!(page)))
}

/// `GET /organizations/count`.
async fn count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<Search>,
) -> Result<Json<Value>, AdminError> {
    check_enabled(&realm)?;
    let all = idp.store.organizations(&realm.id).await?;
    Ok(Json(json!(matching(&all, &q).len())))
}

/// `POST /organizations`: 201 with `Location`.
async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<Response, AdminError> {
    check_enabled(&realm)?;
    let rep = json_body(&body)?;
    let mut o = new_organization(&realm, gatehouse_core::id::uuid());
    if rep.get("name").is_none() {
        return Err(AdminError::bad_request("Name can not be null"));
    }
    apply(&mut o, &rep)?;
    o.alias = alias_of(&o, &rep);
    super::organization_roles::ensure_default(&mut o);
    let path = format!("organizations/{}", o.id);
    let ev = event(&realm, &caller, "CREATE", "ORGANIZATION", &path, Some(&rep));
    store(&idp, &realm, &o, &[ev]).await?;
    Ok(super::created(&idp, &realm.name, &path))
}

pub(super) async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Organization, AdminError> {
    check_enabled(realm)?;
    idp.store
        .organization(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::missing("Organization not found."))
}

async fn read(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    Ok(Json(repr(&o, false)))
}

/// `PUT /organizations/{id}`: 204. The alias cannot change.
async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let id = &p["id"];
    let _edit = idp.lock_row(id).await;
    let mut o = load(&idp, &realm, id).await?;
    if let Some(a) = rep.get("alias").and_then(Value::as_str)
        && a != o.alias
    {
        return Err(AdminError::bad_request("Cannot change the alias"));
    }
    apply(&mut o, &rep)?;
    super::organization_roles::ensure_default(&mut o);
    let path = format!("organizations/{id}");
    let ev = event(&realm, &caller, "UPDATE", "ORGANIZATION", &path, Some(&rep));
    store(&idp, &realm, &o, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let path = format!("organizations/{}", o.id);
    let ev = event(&realm, &caller, "DELETE", "ORGANIZATION", &path, None);
    idp.store
        .delete_organization(&realm.id, &o.id, &[ev])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member as Keycloak lists one: the user with `membershipType`
/// (members added here are `UNMANAGED`; `MANAGED` ones come from an
/// organization's identity provider, which Gatehouse does not broker),
/// in the brief form unless asked otherwise (Keycloak 26.7's default).
fn member_repr(u: &User, realm: &Realm, brief: bool) -> Value {
    let mut v = super::users::admin_view(u, &super::user_profile::Policy::of(realm));
    if brief {
        super::users::make_brief(&mut v);
    }
    v["membershipType"] = json!("UNMANAGED");
    v
}

pub(super) async fn member_users(
    idp: &Idp,
    realm: &Realm,
    o: &Organization,
) -> Result<Vec<User>, AdminError> {
    let mut users = Vec::new();
    for id in idp.store.organization_members(&o.id).await? {
        if let Some(u) = idp.store.user(&realm.id, &id).await? {
            users.push(u);
        }
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(users)
}

#[derive(serde::Deserialize)]
struct MemberSearch {
    search: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    first: Option<i64>,
    max: Option<i64>,
    #[serde(rename = "membershipType")]
    membership_type: Option<String>,
    #[serde(
        default,
        rename = "briefRepresentation",
        deserialize_with = "super::lenient_bool"
    )]
    brief: Option<bool>,
}

fn member_matches(u: &User, q: &MemberSearch) -> bool {
    if q.membership_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("UNMANAGED"))
    {
        return false;
    }
    let exact = q.exact == Some(true);
    q.search.is_none()
        || [
            Some(&u.username),
            u.email.as_ref(),
            u.first_name.as_ref(),
            u.last_name.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|f| super::groups::name_matches(f, q.search.as_deref(), exact))
}

/// `GET /organizations/{id}/members`: 10 per page unless `max` says otherwise.
async fn members(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<MemberSearch>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let users = member_users(&idp, &realm, &o).await?;
    let page: Vec<Value> = super::window(
        q.first,
        Some(q.max.unwrap_or(10)),
        users.iter().filter(|u| member_matches(u, &q)),
    )
    .map(|u| member_repr(u, &realm, q.brief != Some(false)))
    .collect();
    Ok(Json(json!(page)))
}

async fn members_count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    Ok(Json(json!(
        idp.store.organization_members(&o.id).await?.len()
    )))
}

/// A body that is one id: Keycloak's admin client sends it bare (its
/// server reads a `String` entity as the raw text), other tools as a JSON
/// string; both are taken.
fn plain_or_json_string(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let id = match serde_json::from_str::<Value>(text) {
        Ok(Value::String(s)) => s,
        Ok(Value::Number(n)) => n.to_string(),
        Ok(_) => return None,
        Err(_) => text.to_owned(),
    };
    (!id.is_empty() && !id.chars().any(char::is_whitespace)).then_some(id)
}

/// `POST /organizations/{id}/members` with the user id (bare or a JSON string):
/// 201, 409 for a member already, 400 for no such user.
async fn add_member(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let user_id = plain_or_json_string(&body)
        .ok_or_else(|| AdminError::bad_request("User does not exist"))?;
    if idp.store.user(&realm.id, &user_id).await?.is_none() {
        return Err(AdminError::bad_request("User does not exist"));
    }
    let path = format!("organizations/{}/members/{user_id}", o.id);
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "ORGANIZATION_MEMBERSHIP",
        &path,
        Some(&json!(user_id)),
    );
    if !idp
        .store
        .add_organization_member(&o.id, &user_id, &[ev])
        .await?
    {
        return Err(AdminError::conflict(
            "User is already a member of the organization.",
        ));
    }
    Ok(super::created(&idp, &realm.name, &path))
}

/// Whether `user_id` is a member of `o`.
pub(super) async fn is_member(
    idp: &Idp,
    o: &Organization,
    user_id: &str,
) -> Result<bool, AdminError> {
    Ok(idp
        .store
        .organization_members(&o.id)
        .await?
        .iter()
        .any(|m| m == user_id))
}

async fn load_member(
    idp: &Idp,
    realm: &Realm,
    o: &Organization,
    user_id: &str,
) -> Result<User, AdminError> {
    let member = is_member(idp, o, user_id).await?;
    match idp.store.user(&realm.id, user_id).await? {
        Some(u) if member => Ok(u),
        _ => Err(AdminError::missing("Not a member of the organization")),
    }
}

async fn member(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let u = load_member(&idp, &realm, &o, &p["user"]).await?;
    Ok(Json(member_repr(&u, &realm, false)))
}

async fn remove_member(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let u = load_member(&idp, &realm, &o, &p["user"]).await?;
    let path = format!("organizations/{}/members/{}", o.id, u.id);
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "ORGANIZATION_MEMBERSHIP",
        &path,
        None,
    );
    idp.store
        .remove_organization_member(&o.id, &u.id, &[ev])
        .await?;
    // Who leaves the organization leaves its groups and loses its roles
    // (listings read through the membership either way).
    let _edit = idp.lock_row(&o.id).await;
    let mut o = load(&idp, &realm, &o.id).await?;
    let left_groups = super::organization_groups::without_member(&mut o, &u.id);
    if super::organization_roles::without_member(&mut o, &u.id) || left_groups {
        idp.store.put_organization(&o, &[]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn user_orgs(
    idp: &Idp,
    realm: &Realm,
    user_id: &str,
    brief: bool,
) -> Result<Json<Value>, AdminError> {
    check_enabled(realm)?;
    if idp.store.user(&realm.id, user_id).await?.is_none() {
        return Err(AdminError::not_found("User"));
    }
    let list: Vec<Value> = idp
        .store
        .user_organizations(user_id)
        .await?
        .iter()
        .filter(|o| o.realm_id == realm.id)
        .map(|o| repr(o, brief))
        .collect();
    Ok(Json(json!(list)))
}

/// `GET /organizations/members/{user}/organizations`: the user's
/// organizations.
async fn of_member(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<Search>,
) -> Result<Json<Value>, AdminError> {
    user_orgs(&idp, &realm, &p["user"], q.brief != Some(false)).await
}

/// `GET /organizations/{id}/members/{user}/organizations`: the same, under
/// an organization the user belongs to.
async fn member_organizations(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<Search>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    load_member(&idp, &realm, &o, &p["user"]).await?;
    user_orgs(&idp, &realm, &p["user"], q.brief != Some(false)).await
}

/// `GET /organizations/{id}/identity-providers`: the linked providers'
/// representations.
async fn providers(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let list: Vec<Value> = super::identity_providers::providers(&realm)
        .iter()
        .filter(|x| {
            x["alias"]
                .as_str()
                .is_some_and(|a| o.identity_providers.iter().any(|l| l == a))
        })
        .cloned()
        .collect();
    Ok(Json(json!(list)))
}

async fn provider(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let alias = &p["alias"];
    super::identity_providers::providers(&realm)
        .iter()
        .find(|x| x["alias"].as_str() == Some(alias) && o.identity_providers.contains(alias))
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            AdminError::missing("Identity provider not associated with the organization")
        })
}

/// `POST /organizations/{id}/identity-providers` with the alias (bare or
/// a JSON string): 204; 409 when another organization has it.
async fn link_provider(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let id = &p["id"];
    let _edit = idp.lock_row(id).await;
    let mut o = load(&idp, &realm, id).await?;
    let alias = plain_or_json_string(&body)
        .ok_or_else(|| AdminError::bad_request("Identity provider alias is required"))?;
    if !super::identity_providers::exists(&realm, &alias) {
        return Err(AdminError::bad_request(
            "Identity provider not found with the given alias",
        ));
    }
    if idp
        .store
        .organizations(&realm.id)
        .await?
        .iter()
        .any(|x| x.id != o.id && x.identity_providers.contains(&alias))
    {
        return Err(AdminError::conflict(
            "Identity provider associated with a different organization",
        ));
    }
    if !o.identity_providers.contains(&alias) {
        o.identity_providers.push(alias.clone());
    }
    let path = format!("organizations/{id}/identity-providers/{alias}");
    let ev = event(&realm, &caller, "CREATE", "ORGANIZATION", &path, None);
    store(&idp, &realm, &o, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlink_provider(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let id = &p["id"];
    let _edit = idp.lock_row(id).await;
    let mut o = load(&idp, &realm, id).await?;
    let alias = &p["alias"];
    if !o.identity_providers.contains(alias) {
        return Err(AdminError::missing(
            "Identity provider not associated with the organization",
        ));
    }
    o.identity_providers.retain(|a| a != alias);
    let path = format!("organizations/{id}/identity-providers/{alias}");
    let ev = event(&realm, &caller, "DELETE", "ORGANIZATION", &path, None);
    store(&idp, &realm, &o, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The realm's organizations as a Keycloak export carries them: with
/// their members (by username) and linked identity providers (by alias).
pub async fn export(idp: &Idp, realm: &Realm) -> Result<Vec<Value>, AdminError> {
    let mut out = Vec::new();
    for o in idp.store.organizations(&realm.id).await? {
        let mut v = repr(&o, false);
        let (roles, default_role, granted) =
            super::organization_roles::export(idp, realm, &o).await?;
        let members: Vec<Value> = member_users(idp, realm, &o)
            .await?
            .iter()
            .map(|u| {
                let mut m = json!({"username": u.username, "membershipType": "UNMANAGED"});
                if let Some(names) = granted.get(&u.id) {
                    m["organizationRoles"] = json!(names);
                }
                m
            })
            .collect();
        v["members"] = json!(members);
        v["roles"] = json!(roles);
        if let Some(d) = default_role {
            v["defaultRole"] = d;
        }
        v["identityProviders"] = json!(
            o.identity_providers
                .iter()
                .map(|a| json!({"alias": a}))
                .collect::<Vec<_>>()
        );
        let groups = super::organization_groups::export(idp, &o).await?;
        if !groups.is_empty() {
            v["groups"] = json!(groups);
        }
        out.push(v);
    }
    Ok(out)
}

/// Creates the organizations of a realm export, after its users and
/// identity providers: members by username, links by alias (ones the
/// realm lacks are skipped, as the export's own order guarantees them).
pub async fn import(idp: &Idp, realm: &Realm, reps: &[Value]) -> Result<(), AdminError> {
    for rep in reps {
        let id = rep
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(gatehouse_core::id::uuid, str::to_owned);
        let mut o = new_organization(realm, id);
        apply(&mut o, rep)?;
        o.alias = alias_of(&o, rep);
        o.identity_providers = rep["identityProviders"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["alias"].as_str())
            .filter(|a| super::identity_providers::exists(realm, a))
            .map(str::to_owned)
            .collect();
        o.groups = super::organization_groups::import(
            idp,
            &realm.id,
            rep["groups"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
        .await?;
        let mut members = vec![];
        for m in rep["members"].as_array().into_iter().flatten() {
            let Some(name) = m["username"].as_str() else {
                continue;
            };
            if let Some(u) = idp.store.user_by_username(&realm.id, name).await? {
                members.push((u.id, m));
            }
        }
        super::organization_roles::import(idp, realm, &mut o, rep, &members).await?;
        store(idp, realm, &o, &[]).await?;
        for (uid, _) in &members {
            idp.store.add_organization_member(&o.id, uid, &[]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_as_keycloak_takes_them() {
        for ok in ["acme.com", "eu.acme.co.uk", "*.acme.com", "x-1.io"] {
            assert!(valid_domain(ok), "{ok}");
        }
        for bad in [
            "acme",
            "-acme.com",
            "acme..com",
            "ac me.com",
            "acme.com/x",
            "",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }
}
