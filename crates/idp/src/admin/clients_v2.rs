//! `/admin/api/{realm}/clients/v2[/{clientId}]`: Keycloak's Client Admin
//! API v2 (26.7; its `client-admin-api:v2` feature, which the official
//! admin client's `clients.v2()` calls and its own test setup turns on).
//!
//! Unlike the v1 API it is declarative: a client is named by its
//! `clientId` in the path, `PUT` creates or replaces it whole (201 or 200,
//! the representation in the body), `PATCH` takes a JSON merge patch
//! (RFC 7396) of that representation, and `roles` / `serviceAccountRoles`
//! are the exact sets the client and its service account end up with.
//! Fields the representation does not hold (protocol mappers, scopes,
//! attributes beyond the flows) keep what the v1 API set. As in Keycloak,
//! the v2 calls go through the v1 code underneath ([`super::clients`]), so
//! validation, caches and service-account users behave the same.
//!
//! The listing takes Keycloak's `q` filter ([`filter`]: a SCIM subset),
//! `fields` (top-level fields to keep), `sort` (`field` or `field|desc`,
//! strings compared case-insensitively) and `offset` / `limit` (100).

mod filter;

use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::{Client, Realm, Role};
use gatehouse_store::Holder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The only protocol Gatehouse's clients speak.
const OIDC: &str = "openid-connect";

/// Routes of the v2 clients API.
pub fn routes() -> Router<Arc<Idp>> {
    const V2: &str = "/admin/api/{realm}/clients/v2";
    Router::new().route(V2, get(list).post(create)).route(
        &format!("{V2}/{{client_id}}"),
        get(one).put(put_one).patch(patch).delete(remove),
    )
}

/// Keycloak's `OIDCClientRepresentation` (v2). Sets are lists here, kept
/// in the order given without repeats; empty ones and absent values are
/// left out of answers, as Keycloak's mapper does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Client {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    login_flows: Vec<Flow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    web_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    service_account_roles: Vec<String>,
    /// Whatever else the payload held: refused, as Keycloak does.
    #[serde(flatten, skip_serializing)]
    unknown: Map<String, Value>,
}

/// How a confidential client authenticates (absent for a public client).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(flatten, skip_serializing)]
    unknown: Map<String, Value>,
}

/// The login flows of `loginFlows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Flow {
    Standard,
    Implicit,
    DirectGrant,
    ServiceAccount,
    TokenExchange,
    Device,
    Ciba,
}

/// The client attribute behind each flow that is one (the others are
/// fields of the v1 representation).
const FLOW_ATTRIBUTES: [(Flow, &str); 3] = [
    (Flow::Device, "oauth2.device.authorization.grant.enabled"),
    (Flow::TokenExchange, "standard.token.exchange.enabled"),
    (Flow::Ciba, "oidc.ciba.grant.enabled"),
];

/// Keycloak's v2 error for a payload it cannot take.
fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::bad_request(message)
}

/// Reads a payload: JSON, of the v2 shape, nothing unknown, one protocol.
fn parse(value: Value) -> Result<V2Client, AdminError> {
    if !value.is_object() {
        return Err(invalid("The client must be a JSON object"));
    }
    let mut rep: V2Client = serde_json::from_value(value)
        .map_err(|e| invalid(format!("Invalid values in the payload: {e}")))?;
    let mut unknown: Vec<String> = rep.unknown.keys().cloned().collect();
    if let Some(a) = &rep.auth {
        unknown.extend(a.unknown.keys().map(|k| format!("auth.{k}")));
    }
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "Payload contains unknown fields: [{}]",
            unknown.join(", ")
        )));
    }
    match rep.protocol.as_deref() {
        None | Some(OIDC) => rep.protocol = Some(OIDC.into()),
        Some("saml") => return Err(invalid("SAML clients are not supported yet")),
        Some(p) => {
            return Err(invalid(format!(
                "Mapper not found, unsupported client protocol: {p}"
            )));
        }
    }
    if rep.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(invalid(
            "Provided data is invalid: clientId: must not be blank",
        ));
    }
    for list in [
        &mut rep.redirect_uris,
        &mut rep.roles,
        &mut rep.web_origins,
        &mut rep.service_account_roles,
    ] {
        if list.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid(
                "Provided data is invalid: values must not be blank",
            ));
        }
        dedup(list);
    }
    let mut seen = Vec::new();
    rep.login_flows.retain(|f| {
        let new = !seen.contains(f);
        seen.push(*f);
        new
    });
    if !rep.service_account_roles.is_empty() && !rep.login_flows.contains(&Flow::ServiceAccount) {
        return Err(invalid(
            "Provided data is invalid: serviceAccountRoles: the SERVICE_ACCOUNT login flow is not enabled",
        ));
    }
    Ok(rep)
}

fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|s| seen.insert(s.clone()));
}

/// The v2 representation of a stored client.
async fn represent(idp: &Idp, realm: &Realm, c: &Client) -> Result<V2Client, AdminError> {
    let mut roles: Vec<String> = idp
        .store
        .roles(&realm.id, Some(&c.id))
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    roles.sort();
    let mut flows = Vec::new();
    for (on, flow) in [
        (c.standard_flow_enabled, Flow::Standard),
        (c.implicit_flow_enabled, Flow::Implicit),
        (c.direct_access_grants_enabled, Flow::DirectGrant),
        (c.service_accounts_enabled, Flow::ServiceAccount),
    ] {
        if on {
            flows.push(flow);
        }
    }
    for (flow, attr) in FLOW_ATTRIBUTES {
        if c.attributes.get(attr).map(String::as_str) == Some("true") {
            flows.push(flow);
        }
    }
    let service_account_roles = if c.service_accounts_enabled {
        match idp.store.service_account_user(&realm.id, &c.id).await? {
            Some(u) => {
                let mut names: Vec<String> = idp
                    .store
                    .granted_roles(Holder::User(&u.id))
                    .await?
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                names.sort();
                names
            }
            None => vec![],
        }
    } else {
        vec![]
    };
    Ok(V2Client {
        uuid: Some(c.id.clone()),
        client_id: Some(c.client_id.clone()),
        display_name: c.name.clone(),
        description: c.description.clone(),
        enabled: Some(c.enabled),
        app_url: c
            .extra
            .get("baseUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
        redirect_uris: c.redirect_uris.clone(),
        roles,
        protocol: Some(OIDC.into()),
        login_flows: flows,
        auth: (!c.public_client).then(|| Auth {
            method: Some(c.client_authenticator_type.clone()),
            secret: c.secret.clone(),
            certificate: None,
            unknown: Map::new(),
        }),
        web_origins: c.web_origins.clone(),
        service_account_roles,
        unknown: Map::new(),
    })
}

/// The v1 representation that sets every field the v2 one governs, so a
/// PUT replaces them all (what it leaves out is turned off or cleared, as
/// Keycloak's mapper does), leaving the rest of the client as it was.
fn as_v1(rep: &V2Client) -> Value {
    let on = |f: Flow| rep.login_flows.contains(&f);
    let mut attributes = Map::new();
    for (flow, attr) in FLOW_ATTRIBUTES {
        attributes.insert(attr.into(), json!(on(flow).to_string()));
    }
    let mut v1 = json!({
        "clientId": rep.client_id,
        "name": rep.display_name,
        "description": rep.description,
        "enabled": rep.enabled == Some(true),
        "baseUrl": rep.app_url,
        "redirectUris": rep.redirect_uris,
        "webOrigins": rep.web_origins,
        "publicClient": rep.auth.is_none(),
        "standardFlowEnabled": on(Flow::Standard),
        "implicitFlowEnabled": on(Flow::Implicit),
        "directAccessGrantsEnabled": on(Flow::DirectGrant),
        "serviceAccountsEnabled": on(Flow::ServiceAccount),
        "attributes": attributes,
    });
    if let Some(a) = &rep.auth {
        v1["clientAuthenticatorType"] = json!(a.method.as_deref().unwrap_or("client-secret"));
        if let Some(s) = &a.secret {
            v1["secret"] = json!(s);
        }
    }
    v1
}

/// Makes the client's roles exactly `wanted`: missing ones created,
/// others deleted (with their mappings), as Keycloak's v2 does. The
/// client's own admin event stands for these writes.
async fn set_roles(
    idp: &Idp,
    realm: &Realm,
    c: &Client,
    wanted: &[String],
) -> Result<(), AdminError> {
    let have = idp.store.roles(&realm.id, Some(&c.id)).await?;
    for name in wanted {
        if !have.iter().any(|r| &r.name == name) {
            let role = Role {
                id: gatehouse_core::id::uuid(),
                realm_id: realm.id.clone(),
                client_id: Some(c.id.clone()),
                name: name.clone(),
                description: None,
                attributes: Default::default(),
            };
            idp.store.create_role(&role, &[]).await?;
        }
    }
    for r in have.iter().filter(|r| !wanted.contains(&r.name)) {
        idp.store.delete_role(&realm.id, &r.id, &[]).await?;
    }
    Ok(())
}

/// Makes the service account's role mappings exactly `wanted`, each name
/// a role of the client or else of the realm (400 for neither).
async fn set_service_account_roles(
    idp: &Idp,
    realm: &Realm,
    c: &Client,
    wanted: &[String],
) -> Result<(), AdminError> {
    if !c.service_accounts_enabled {
        return Ok(());
    }
    let user = super::clients::ensure_service_account(idp, realm, c).await?;
    let have = idp.store.granted_roles(Holder::User(&user.id)).await?;
    let mut grant = Vec::new();
    for name in wanted {
        if have.iter().any(|r| &r.name == name) {
            continue;
        }
        let role = match idp.store.role_by_name(&realm.id, Some(&c.id), name).await? {
            Some(r) => r,
            None => idp
                .store
                .role_by_name(&realm.id, None, name)
                .await?
                .ok_or_else(|| {
                    invalid(format!(
                        "Cannot assign role '{name}' to the service account (field 'serviceAccountRoles') as it does not exist"
                    ))
                })?,
        };
        grant.push(role.id);
    }
    let revoke: Vec<String> = have
        .iter()
        .filter(|r| !wanted.contains(&r.name))
        .map(|r| r.id.clone())
        .collect();
    if !grant.is_empty() {
        idp.store
            .grant_roles(Holder::User(&user.id), &grant, &[])
            .await?;
    }
    if !revoke.is_empty() {
        idp.store
            .revoke_roles(Holder::User(&user.id), &revoke, &[])
            .await?;
    }
    Ok(())
}

/// Creates (`existing` None) or replaces a client from `rep`, then its
/// roles and its service account's, and answers its representation.
async fn write(
    admin: &RealmAdmin,
    existing: Option<Client>,
    rep: V2Client,
) -> Result<V2Client, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let v1 = as_v1(&rep);
    // Every check before the first write, so a refused call changes
    // nothing: the client as it would be, then the service account's roles.
    let planned = match &existing {
        Some(c) => {
            let mut planned = c.clone();
            super::clients::apply_rep(realm, &mut planned, &v1)?;
            planned
        }
        None => super::clients::client_from_rep(realm, &v1)?,
    };
    for name in &rep.service_account_roles {
        let own = rep.roles.contains(name)
            || idp
                .store
                .role_by_name(&realm.id, Some(&planned.id), name)
                .await?
                .is_some();
        if !own
            && idp
                .store
                .role_by_name(&realm.id, None, name)
                .await?
                .is_none()
        {
            return Err(invalid(format!(
                "Cannot assign role '{name}' to the service account (field 'serviceAccountRoles') as it does not exist"
            )));
        }
    }
    let c = match existing {
        Some(mut c) => {
            let _edit = idp.lock_row(&c.id).await;
            super::clients::apply_rep(realm, &mut c, &v1)?;
            let path = format!("clients/{}", c.id);
            let ev = event(realm, caller, "UPDATE", "CLIENT", &path, Some(&v1));
            idp.store.update_client(&c, &[ev]).await?;
            if c.service_accounts_enabled {
                super::clients::ensure_service_account(idp, realm, &c).await?;
            }
            c
        }
        None => {
            let mut c = planned;
            // A client-secret client asked without a secret gets one.
            if c.secret.is_none() && !c.public_client {
                c.secret = Some(gatehouse_core::id::token());
            }
            let path = format!("clients/{}", c.id);
            let ev = event(realm, caller, "CREATE", "CLIENT", &path, Some(&v1));
            super::clients::insert_client(idp, realm, c, &[ev]).await?
        }
    };
    set_roles(idp, realm, &c, &rep.roles).await?;
    set_service_account_roles(idp, realm, &c, &rep.service_account_roles).await?;
    represent(idp, realm, &c).await
}

async fn find(idp: &Idp, realm: &Realm, client_id: &str) -> Result<Option<Client>, AdminError> {
    Ok(idp.store.client_by_client_id(&realm.id, client_id).await?)
}

fn not_found() -> AdminError {
    AdminError::missing("Could not find client")
}

/// JSON with the status: the representation a write answers with.
fn answer(status: StatusCode, rep: &V2Client) -> Response {
    (status, Json(json!(rep))).into_response()
}

fn body_json(body: &Bytes) -> Result<Value, AdminError> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid JSON: {e}")))
}

/// `POST .../clients/v2`: 201 with the new client; 409 if it exists.
async fn create(admin: RealmAdmin, body: Bytes) -> Result<Response, AdminError> {
    let mut rep = parse(body_json(&body)?)?;
    let client_id = rep.client_id.clone().unwrap_or_default();
    if find(&admin.idp, &admin.realm, &client_id).await?.is_some() {
        return Err(AdminError::conflict("Client already exists"));
    }
    rep.uuid = None;
    let made = write(&admin, None, rep).await?;
    Ok(answer(StatusCode::CREATED, &made))
}

/// `GET .../clients/v2/{clientId}`.
async fn one(
    admin: RealmAdmin,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<Json<V2Client>, AdminError> {
    let c = find(&admin.idp, &admin.realm, &client_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(represent(&admin.idp, &admin.realm, &c).await?))
}

/// Keycloak's checks of a replacement: the path names the client, and
/// neither its server-made `uuid` nor its protocol changes.
fn check_replacement(
    path_id: &str,
    rep: &V2Client,
    existing: Option<&Client>,
) -> Result<(), AdminError> {
    if rep.client_id.as_deref() != Some(path_id) {
        return Err(invalid(
            "Field 'clientId' in payload does not match the provided 'clientId'",
        ));
    }
    if let (Some(uuid), Some(c)) = (&rep.uuid, existing)
        && uuid != &c.id
    {
        return Err(invalid(
            "Provided data is invalid: uuid: must not be changed",
        ));
    }
    if existing.is_none() && rep.uuid.is_some() {
        return Err(invalid(
            "Provided data is invalid: uuid: is generated by the server",
        ));
    }
    Ok(())
}

/// `PUT .../clients/v2/{clientId}`: creates (201) or replaces (200).
async fn put_one(
    admin: RealmAdmin,
    Path((_, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let rep = parse(body_json(&body)?)?;
    let existing = find(&admin.idp, &admin.realm, &client_id).await?;
    check_replacement(&client_id, &rep, existing.as_ref())?;
    if let Some(a) = &rep.auth
        && a.method
            .as_deref()
            .is_none_or(|m| m.starts_with("client-secret"))
        && existing.is_some()
        && a.secret.as_deref().is_none_or(str::is_empty)
    {
        return Err(invalid(
            "Provided data is invalid: auth.secret: must not be blank",
        ));
    }
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let made = write(&admin, existing, rep).await?;
    Ok(answer(status, &made))
}

/// RFC 7396: `patch` merged into `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// `PATCH .../clients/v2/{clientId}` with a JSON merge patch: 200 with
/// the client as it now is.
async fn patch(
    admin: RealmAdmin,
    Path((_, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<V2Client>, AdminError> {
    let c = find(&admin.idp, &admin.realm, &client_id)
        .await?
        .ok_or_else(not_found)?;
    let patch = body_json(&body)?;
    if !patch.is_object() {
        return Err(invalid("Cannot replace client resource with a non-object"));
    }
    let mut current = json!(represent(&admin.idp, &admin.realm, &c).await?);
    merge_patch(&mut current, &patch);
    let rep = parse(current)?;
    check_replacement(&client_id, &rep, Some(&c))?;
    Ok(Json(write(&admin, Some(c), rep).await?))
}

/// `DELETE .../clients/v2/{clientId}`: 204.
async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let c = find(&idp, &realm, &client_id)
        .await?
        .ok_or_else(not_found)?;
    if realm.name == "master" && c.client_id == "admin-cli" {
        return Err(invalid("Cannot delete the admin-cli client of master"));
    }
    if caller.limited.is_some() && c.client_id == crate::bootstrap::REALM_MANAGEMENT {
        return Err(AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"));
    }
    let path = format!("clients/{}", c.id);
    let ev = event(&realm, &caller, "DELETE", "CLIENT", &path, None);
    idp.store.delete_client(&realm.id, &c.id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The listing's query: `q`, `fields`, `sort` (repeatable), `offset`,
/// `limit`.
#[derive(Default)]
struct ListQuery {
    q: Option<String>,
    fields: Option<Vec<String>>,
    sort: Vec<(String, bool)>,
    offset: usize,
    limit: usize,
}

/// Top-level fields of the representation, for `fields` and `sort`.
const FIELDS: [&str; 13] = [
    "uuid",
    "clientId",
    "displayName",
    "description",
    "enabled",
    "appUrl",
    "redirectUris",
    "roles",
    "protocol",
    "loginFlows",
    "auth",
    "webOrigins",
    "serviceAccountRoles",
];

/// Whether a listing sorts by `field`: the single-valued fields.
fn sortable(field: &str) -> bool {
    FIELDS.contains(&field)
        && !matches!(
            field,
            "redirectUris" | "roles" | "loginFlows" | "auth" | "webOrigins" | "serviceAccountRoles"
        )
}

fn list_query(raw: Option<&str>) -> Result<ListQuery, AdminError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| invalid("Malformed query"))?;
    let mut q = ListQuery {
        limit: 100,
        ..Default::default()
    };
    let number = |v: &str, name: &str| {
        v.parse::<usize>()
            .map_err(|_| invalid(format!("Invalid '{name}': {v}")))
    };
    for (k, v) in pairs {
        match k.as_str() {
            "q" => q.q = Some(v),
            "fields" => {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = list.iter().find(|f| !FIELDS.contains(&f.as_str())) {
                    return Err(invalid(format!("Unknown field in 'fields': {bad}")));
                }
                q.fields.get_or_insert_with(Vec::new).extend(list);
            }
            "sort" => {
                for seg in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (field, order) = seg.split_once('|').unwrap_or((seg, "asc"));
                    if !sortable(field) {
                        return Err(invalid(format!("Unknown sort field: {field}")));
                    }
                    let desc = match order.to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(invalid(format!("Unknown sort order: {order}"))),
                    };
                    q.sort.push((field.to_owned(), desc));
                }
            }
            "offset" => q.offset = number(&v, "offset")?,
            "limit" => q.limit = number(&v, "limit")?,
            _ => {}
        }
    }
    Ok(q)
}

/// Orders two values of one field: strings without regard to case, then
/// booleans, absent last.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::String(x), Value::String(y)) => x
            .to_lowercase()
            .cmp(&y.to_lowercase())
            .then_with(|| x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

/// `GET .../clients/v2`: filtered on the whole representation, sorted,
/// sliced, then projected.
async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, AdminError> {
    let q = list_query(raw.as_deref())?;
    let expr = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(filter::parse(text).map_err(invalid)?),
        None => None,
    };
    let mut out = Vec::new();
    for c in idp.store.clients(&realm.id).await? {
        let rep = json!(represent(&idp, &realm, &c).await?);
        if expr.as_ref().is_none_or(|e| e.matches(&rep)) {
            out.push(rep);
        }
    }
    if !q.sort.is_empty() {
        out.sort_by(|a, b| {
            q.sort
                .iter()
                .fold(std::cmp::Ordering::Equal, |acc, (f, desc)| {
                    acc.then_with(|| {
                        let o = compare(&a[f.as_str()], &b[f.as_str()]);
                        if *desc { o.reverse() } else { o }
                    })
                })
        });
    }
    let page = out.into_iter().skip(q.offset).take(q.limit);
    Ok(Json(match &q.fields {
        Some(fields) if !fields.is_empty() => page
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.retain(|k, _| fields.contains(k));
                }
                v
            })
            .collect(),
        _ => page.collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn payloads_with_unknown_fields_or_protocols_are_refused() {
        let e = parse(json!({"clientId": "a", "secretive": 1, "auth": {"x": 1}}))
            .expect_err("unknown fields");
        assert!(e.message.contains("[secretive, auth.x]"), "{}", e.message);
        assert!(parse(json!({"clientId": "a", "protocol": "cas"})).is_err());
        assert!(parse(json!({"clientId": " "})).is_err());
        assert!(parse(json!({"clientId": "a", "loginFlows": ["TELEPATHY"]})).is_err());
        assert!(parse(json!({"clientId": "a", "serviceAccountRoles": ["r"]})).is_err());
        let ok = parse(json!({"clientId": "a", "redirectUris": ["x", "x"], "loginFlows": ["STANDARD", "STANDARD"]}))
            .expect("valid");
        assert_eq!(ok.redirect_uris, ["x"]);
        assert_eq!(ok.login_flows, [Flow::Standard]);
        assert_eq!(ok.protocol.as_deref(), Some(OIDC));
    }

    #[test]
    fn list_queries_check_their_fields() {
        let q = list_query(Some(
            "sort=clientId&sort=enabled%7Cdesc&fields=clientId,roles&offset=2&limit=5",
        ))
        .expect("query");
        assert_eq!(
            q.sort,
            [("clientId".into(), false), ("enabled".into(), true)]
        );
        assert_eq!(q.fields, Some(vec!["clientId".into(), "roles".into()]));
        assert_eq!((q.offset, q.limit), (2, 5));
        assert!(list_query(Some("sort=roles")).is_err());
        assert!(list_query(Some("fields=password")).is_err());
        assert!(list_query(Some("limit=-1")).is_err());
        assert_eq!(list_query(None).expect("empty").limit, 100);
    }
}
