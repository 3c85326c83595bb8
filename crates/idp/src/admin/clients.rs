//! `/admin/realms/{realm}/clients...`: clients, their secrets (read,
//! regenerate with an optional grace period for the previous one), service
//! accounts and protocol mappers.

use super::{RealmAdmin, created, event, json_body};
use crate::error::{AdminError, OAuthError};
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use gatehouse_core::model::{Client, Realm, User};
use serde_json::{Value, json};
use std::sync::Arc;

/// Client routes.
pub fn routes() -> Router<Arc<Idp>> {
    const C: &str = "/admin/realms/{realm}/clients";
    Router::new()
        .route(C, get(list).post(create))
        .route(&format!("{C}/{{id}}"), get(one).put(update).delete(remove))
        .route(
            &format!("{C}/{{id}}/client-secret"),
            get(secret).post(regenerate),
        )
        .route(
            &format!("{C}/{{id}}/client-secret/rotated"),
            get(rotated).delete(drop_rotated),
        )
        .route(
            &format!("{C}/{{id}}/service-account-user"),
            get(service_account),
        )
        .route(
            &format!("{C}/{{id}}/registration-access-token"),
            axum::routing::post(registration_access_token),
        )
        .merge(super::mappers::routes::<Client>())
        .route(&format!("{C}/{{id}}/{{kind}}"), get(linked_scopes))
        .route(
            &format!("{C}/{{id}}/{{kind}}/{{scope}}"),
            put(link_scope).delete(link_scope),
        )
}

/// The service-account user of a client, created on first need.
pub async fn ensure_service_account(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
) -> Result<User, OAuthError> {
    if let Some(u) = idp.cached_service_account(&client.id) {
        return Ok(u);
    }
    if let Some(u) = idp
        .store
        .service_account_user(&realm.id, &client.id)
        .await?
    {
        idp.remember_service_account(&client.id, &u);
        return Ok(u);
    }
    let mut u = User::new(&realm.id, &format!("service-account-{}", client.client_id));
    u.service_account_client_id = Some(client.id.clone());
    let links = super::users::default_memberships(idp, realm).await?;
    idp.store.create_user(&u, &[], &links, &[]).await?;
    Ok(u)
}

/// Keycloak's client validation of redirect URIs (also the post-logout
/// ones): 400 for a fragment or a code-running scheme; and of the root and
/// base URLs, which pages link to and relative redirect URIs resolve
/// against: no code-running scheme there either.
pub fn check_uris(c: &Client) -> Result<(), AdminError> {
    let post_logout = c.attributes.get("post.logout.redirect.uris");
    let problem = c
        .redirect_uris
        .iter()
        .map(String::as_str)
        .chain(post_logout.into_iter().flat_map(|l| l.split("##")))
        .find_map(gatehouse_core::model::redirect_uri_problem);
    if let Some(p) = problem {
        return Err(AdminError::bad_request(p));
    }
    for (field, name) in [
        ("rootUrl", "Root URL"),
        ("baseUrl", "Base URL"),
        ("adminUrl", "Admin URL"),
    ] {
        let Some(url) = c.extra.get(field).and_then(serde_json::Value::as_str) else {
            continue;
        };
        if gatehouse_core::model::code_running_scheme(url) {
            return Err(AdminError::bad_request(format!(
                "{name} uses an illegal scheme"
            )));
        }
    }
    Ok(())
}

/// Loads a client of the realm by its id, or 404 in Keycloak's words.
pub async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Client, AdminError> {
    idp.store
        .client(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::missing("Could not find client"))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    search: Option<bool>,
    /// `key:value ...` over client attributes, values compared exactly.
    q: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
}

async fn list(
    RealmAdmin { idp, realm, caller }: RealmAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let all = idp.store.clients(&realm.id).await?;
    let wanted = super::users::attribute_query(q.q.as_deref().unwrap_or(""))
        .ok_or_else(|| AdminError::bad_request("Invalid query q"))?;
    let filtered = all
        .iter()
        .filter(|c| match &q.client_id {
            None => true,
            Some(id) if q.search.unwrap_or(false) => {
                c.client_id.to_lowercase().contains(&id.to_lowercase())
            }
            Some(id) => &c.client_id == id,
        })
        .filter(|c| wanted.iter().all(|(k, v)| c.attributes.get(k) == Some(v)));
    Ok(Json(json!(
        super::window(q.first, q.max, filtered)
            .map(|c| repr::client(c, caller.holds(SEES_SECRETS)))
            .collect::<Vec<_>>()
    )))
}

/// Creates a client from a representation (admin API and import).
pub async fn create_client(
    idp: &Idp,
    realm: &Realm,
    rep: &Value,
    ev: Vec<gatehouse_core::model::Event>,
) -> Result<Client, AdminError> {
    // Policies' subjects by name until the import has made them
    // (`admin::authz::resolve_imported`).
    create_resolving(idp, realm, rep, &ev, false).await
}

/// [`create_client`], its authorization policies' subjects resolved now
/// (`resolve`: an admin create) or after an import's users exist.
async fn create_resolving(
    idp: &Idp,
    realm: &Realm,
    rep: &Value,
    ev: &[gatehouse_core::model::Event],
    resolve: bool,
) -> Result<Client, AdminError> {
    let mut c = client_from_rep(realm, rep)?;
    super::authz::apply_client_rep(idp, realm, &mut c, rep, resolve).await?;
    insert_client(idp, realm, c, ev).await
}

/// A new client of the realm from a representation, validated but not
/// stored: the realm's default client scopes unless the representation
/// names its own, then Keycloak's checks of its URIs.
pub fn client_from_rep(realm: &Realm, rep: &Value) -> Result<Client, AdminError> {
    let client_id = rep
        .get("clientId")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::bad_request("clientId is required"))?;
    let mut c = new_client(realm, client_id);
    if let Some(id) = rep.get("id").and_then(Value::as_str) {
        c.id = id.to_owned();
    }
    apply_rep(realm, &mut c, rep)?;
    Ok(c)
}

/// A client with Keycloak's defaults and the realm's default client scopes.
pub fn new_client(realm: &Realm, client_id: &str) -> Client {
    let mut c = Client::new(&realm.id, client_id);
    c.default_client_scopes = realm.default_default_client_scopes.clone();
    c.optional_client_scopes = realm.default_optional_client_scopes.clone();
    c
}

/// Applies a representation to a client and checks the result as
/// Keycloak's client validation does (admin update, registration update),
/// and that the flows it overrides the realm's with are ones Gatehouse
/// runs.
pub fn apply_rep(realm: &Realm, c: &mut Client, rep: &Value) -> Result<(), AdminError> {
    repr::apply_client(c, rep).map_err(AdminError::bad_request)?;
    crate::flows::check_client(realm, c).map_err(|e| AdminError::bad_request(e.to_string()))?;
    check_uris(c)?;
    crate::pairwise::prepare(c).map_err(AdminError::bad_request)
}

/// Stores a new client (unknown scope names dropped, as Keycloak does; a
/// taken clientId is a 409) with its service-account user if it has one.
pub async fn insert_client(
    idp: &Idp,
    realm: &Realm,
    mut c: Client,
    ev: &[gatehouse_core::model::Event],
) -> Result<Client, AdminError> {
    let scopes = idp.store.client_scopes(&realm.id).await?;
    let known = |n: &String| scopes.iter().any(|s| &s.name == n);
    c.default_client_scopes.retain(known);
    c.optional_client_scopes.retain(known);
    if idp
        .store
        .client_by_client_id(&realm.id, &c.client_id)
        .await?
        .is_some()
    {
        return Err(AdminError::conflict(format!(
            "Client {} already exists",
            c.client_id
        )));
    }
    idp.store.create_client(&c, ev).await?;
    if c.service_accounts_enabled {
        ensure_service_account(idp, realm, &c).await?;
    }
    super::authz::ensure_protection_role(idp, realm, &c).await?;
    crate::keyring::prepare_for_client(idp, realm, &c).await?;
    Ok(c)
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let rep = json_body(&body)?;
    let mut with_id = rep.clone();
    // The created resource's path, for the admin event and Location.
    let path = format!("clients/{}", super::new_id(&mut with_id));
    let ev = event(&realm, &caller, "CREATE", "CLIENT", &path, Some(&rep));
    create_resolving(&idp, &realm, &with_id, &[ev], true).await?;
    Ok(created(&idp, &realm.name, &path))
}

/// The `realm-management` client itself (the admin API's checks go by its
/// roles) is changed or deleted by full administrators only.
fn keep_management(caller: &super::AdminCaller, c: &Client) -> Result<(), AdminError> {
    if caller.limited.is_some() && c.client_id == crate::bootstrap::REALM_MANAGEMENT {
        return Err(AdminError::new(StatusCode::FORBIDDEN, "HTTP 403 Forbidden"));
    }
    Ok(())
}

/// Who reads client secrets in representations: an administrator who
/// may configure the client (`manage-clients`), as on `client-secret`;
/// `view-clients` reads the rest.
const SEES_SECRETS: &[&str] = &["manage-clients"];

async fn one(
    RealmAdmin { idp, realm, caller }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    Ok(Json(repr::client(&c, caller.holds(SEES_SECRETS))))
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    keep_management(&caller, &c)?;
    let old_id = c.client_id.clone();
    apply_rep(&realm, &mut c, &rep)?;
    super::authz::apply_client_rep(&idp, &realm, &mut c, &rep, true).await?;
    if c.client_id != old_id
        && idp
            .store
            .client_by_client_id(&realm.id, &c.client_id)
            .await?
            .is_some()
    {
        return Err(AdminError::conflict(format!(
            "Client {} already exists",
            c.client_id
        )));
    }
    let ev = event(
        &realm,
        &caller,
        "UPDATE",
        "CLIENT",
        &format!("clients/{id}"),
        Some(&rep),
    );
    idp.store.update_client(&c, &[ev]).await?;
    if rep.get(crate::not_before::FIELD).is_some() {
        crate::not_before::publish(&idp, &realm, Some(&c));
    }
    if c.service_accounts_enabled {
        ensure_service_account(&idp, &realm, &c).await?;
    }
    super::authz::ensure_protection_role(&idp, &realm, &c).await?;
    crate::keyring::prepare_for_client(&idp, &realm, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    keep_management(&caller, &c)?;
    if realm.name == "master" && c.client_id == "admin-cli" {
        return Err(AdminError::bad_request(
            "Cannot delete the admin-cli client of master",
        ));
    }
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "CLIENT",
        &format!("clients/{id}"),
        None,
    );
    idp.store.delete_client(&realm.id, &id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new registration access token for the client (dynamic client
/// registration's management token), answered in the client's
/// representation as Keycloak does; the previous token stops working.
async fn registration_access_token(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    let token = crate::client_registration::rotate_registration_token(&idp, &realm, &mut c).await?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "CLIENT",
        &format!("clients/{id}/registration-access-token"),
        None,
    );
    idp.store.update_client(&c, &[ev]).await?;
    let mut rep = repr::client(&c, true);
    rep["registrationAccessToken"] = json!(token);
    Ok(Json(rep))
}

async fn secret(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    Ok(Json(json!({"type": "secret", "value": c.secret})))
}

#[derive(serde::Deserialize)]
struct RegenQuery {
    /// Seconds the previous secret keeps working (Gatehouse extension;
    /// Keycloak configures this through a client policy).
    #[serde(rename = "gracePeriod")]
    grace_period: Option<i64>,
}

async fn regenerate(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<RegenQuery>,
) -> Result<Json<Value>, AdminError> {
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    if c.public_client {
        return Err(AdminError::bad_request("Public clients have no secret"));
    }
    let grace = q
        .grace_period
        .or_else(|| {
            c.attributes
                .get("client.secret.rotation.grace.seconds")
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    if grace > 0 {
        c.rotated_secret = c.secret.clone();
        c.rotated_secret_expires_at = Some(gatehouse_core::time::now() + grace);
    }
    c.secret = Some(gatehouse_core::id::token());
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "CLIENT",
        &format!("clients/{id}/client-secret"),
        None,
    );
    idp.store.update_client(&c, &[ev]).await?;
    Ok(Json(json!({"type": "secret", "value": c.secret})))
}

async fn rotated(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    let live = c
        .rotated_secret_expires_at
        .is_some_and(|t| t > gatehouse_core::time::now());
    match (&c.rotated_secret, live) {
        (Some(s), true) => Ok(Json(json!({"type": "secret", "value": s}))),
        _ => Err(AdminError::not_found("No rotated secret")),
    }
}

async fn drop_rotated(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    c.rotated_secret = None;
    c.rotated_secret_expires_at = None;
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "CLIENT",
        &format!("clients/{id}/client-secret/rotated"),
        None,
    );
    idp.store.update_client(&c, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn service_account(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    if !c.service_accounts_enabled {
        return Err(AdminError::bad_request(
            "Service account not enabled for the client",
        ));
    }
    Ok(Json(repr::user(
        &ensure_service_account(&idp, &realm, &c).await?,
    )))
}

impl super::mappers::Owner for Client {
    const SEGMENT: &'static str = "clients";
    async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Self, AdminError> {
        load(idp, realm, id).await
    }
    fn mappers(&mut self) -> &mut Vec<gatehouse_core::model::ProtocolMapper> {
        &mut self.protocol_mappers
    }
    async fn save(&self, idp: &Idp, ev: gatehouse_core::model::Event) -> Result<(), AdminError> {
        // A pairwise mapper gets its salt and its sector checked.
        let mut c = self.clone();
        crate::pairwise::prepare(&mut c).map_err(AdminError::bad_request)?;
        Ok(idp.store.update_client(&c, &[ev]).await?)
    }
}

const CLIENT_DEFAULT: &str = "default-client-scopes";
const CLIENT_OPTIONAL: &str = "optional-client-scopes";

/// `GET .../clients/{id}/{default|optional}-client-scopes`: `[{id, name}]`.
async fn linked_scopes(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, kind)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = load(&idp, &realm, &id).await?;
    let names = if super::client_scopes::is_default_list(&kind, CLIENT_DEFAULT, CLIENT_OPTIONAL)? {
        &c.default_client_scopes
    } else {
        &c.optional_client_scopes
    };
    let all = idp.store.client_scopes(&realm.id).await?;
    Ok(Json(super::client_scopes::links(&all, names)))
}

/// `PUT .../clients/{id}/{default|optional}-client-scopes/{scope}` links a
/// scope (moving it from the other list if it was there); `DELETE` unlinks.
async fn link_scope(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    method: axum::http::Method,
    Path((_, id, kind, scope_id)): Path<(String, String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let into_default =
        super::client_scopes::is_default_list(&kind, CLIENT_DEFAULT, CLIENT_OPTIONAL)?;
    let _edit = idp.lock_row(&id).await;
    let mut c = load(&idp, &realm, &id).await?;
    let scope = idp
        .store
        .client_scope(&realm.id, &scope_id)
        .await?
        .ok_or_else(|| AdminError::not_found("Client scope"))?;
    let op = super::client_scopes::relink(
        &mut c.default_client_scopes,
        &mut c.optional_client_scopes,
        into_default,
        method == axum::http::Method::PUT,
        &scope.name,
    );
    let path = format!("clients/{id}/{kind}/{scope_id}");
    let ev = event(
        &realm,
        &caller,
        op,
        "CLIENT_SCOPE_CLIENT_MAPPING",
        &path,
        None,
    );
    idp.store.update_client(&c, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
