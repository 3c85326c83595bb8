//! `/admin/realms/{realm}/components[/{id}]`: Keycloak's components API,
//! for the one kind of component Gatehouse acts on: client-registration
//! policies (`providerType`
//! `org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy`),
//! which decide who may register a client without an admin
//! (`client_registration.rs`). A realm starts with Keycloak's defaults:
//! for anonymous registrations Trusted Hosts (no host trusted, so none
//! pass), Consent Required, Full Scope Disabled, Max Clients Limit (200),
//! Allowed Protocol Mapper Types and Allowed Client Scopes; for
//! authenticated ones (initial access token) the last two. Deleting the
//! anonymous Trusted Hosts policy, or trusting a host, opens anonymous
//! registration (what MCP clients and other agents do).
//!
//! The other kind written here: LDAP user federation providers
//! (`providerType` `org.keycloak.storage.UserStorageProvider`,
//! `providerId` `ldap`; `ldap.rs`, `user_storage.rs`), whose bind
//! password is shown as `**********` and kept when an update sends that
//! back, and whose removal removes the users it imported.
//!
//! Components live where a Keycloak export keeps them (the realm's
//! `components`, by provider type), so they travel with import and export.
//! The realm's signing keys are key-provider components
//! (`key_providers.rs`). Other component types imported from Keycloak
//! are listed as they are, but Gatehouse does not run them, so creating
//! or changing one is refused rather than silently ignored.

use super::key_providers::KEY_TYPE;
use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::ldap::{LdapProvider, STORAGE_TYPE};
use crate::repr::SECRET_MASK;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::Realm;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The provider type of client-registration policies.
pub const POLICY_TYPE: &str =
    "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy";

/// The policy providers Gatehouse enforces.
const POLICY_PROVIDERS: [&str; 6] = [
    "trusted-hosts",
    "consent-required",
    "scope",
    "max-clients",
    "allowed-protocol-mappers",
    "allowed-client-templates",
];

/// Components routes.
pub fn routes() -> Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/components";
    Router::new()
        .route(P, get(list).post(create))
        .route(&format!("{P}/{{id}}"), get(one).put(update).delete(remove))
        .route(&format!("{P}/{{id}}/sub-component-types"), get(sub_types))
        .route(
            "/admin/realms/{realm}/client-registration-policy/providers",
            get(policy_providers),
        )
}

/// One configuration property of a provider (ConfigPropertyRepresentation).
fn property(name: &str, label: &str, kind: &str, help: &str, default: Value) -> Value {
    let mut p = json!({"name": name, "label": label, "helpText": help, "type": kind,
        "secret": false, "required": false, "readOnly": false});
    if !default.is_null() {
        p["defaultValue"] = default;
    }
    p
}

/// `GET .../client-registration-policy/providers`: the policy providers
/// Gatehouse enforces (ComponentTypeRepresentation), with the settings each
/// one reads, so an admin console can offer exactly those.
async fn policy_providers(_: RealmAdmin) -> Json<Value> {
    let mapper_types: Vec<&str> = crate::client_registration::ALLOWED_MAPPERS.to_vec();
    let providers = POLICY_PROVIDERS.iter().map(|id| {
        let (help, properties) = match *id {
            "trusted-hosts" => (
                "Allowed hosts for anonymous client registration",
                vec![
                    property(
                        "trusted-hosts",
                        "Trusted Hosts",
                        "MultivaluedString",
                        "Hosts and IP addresses that may register clients without a token",
                        Value::Null,
                    ),
                    property(
                        "host-sending-registration-request-must-match",
                        "Host Sending Client Registration Request Must Match",
                        "boolean",
                        "The registration request must come from a trusted host",
                        json!("true"),
                    ),
                    property(
                        "client-uris-must-match",
                        "Client URIs Must Match",
                        "boolean",
                        "Redirect and other client URIs must be on a trusted host",
                        json!("true"),
                    ),
                ],
            ),
            "consent-required" => ("Registered clients must ask the user for consent", vec![]),
            "scope" => ("Registered clients get no full scope of roles", vec![]),
            "max-clients" => (
                "Limits the number of clients in the realm",
                vec![property(
                    "max-clients",
                    "Max Clients Per Realm",
                    "String",
                    "Registration is refused once the realm has this many clients",
                    json!("200"),
                )],
            ),
            "allowed-protocol-mappers" => (
                "Protocol mapper types a registered client may carry",
                vec![{
                    let mut p = property(
                        "allowed-protocol-mapper-types",
                        "Allowed Protocol Mapper Types",
                        "MultivaluedList",
                        "Mapper types allowed in a registration",
                        Value::Null,
                    );
                    p["options"] = json!(mapper_types);
                    p
                }],
            ),
            _ => (
                "Client scopes a registered client may use",
                vec![
                    property(
                        "allowed-client-scopes",
                        "Allowed Client Scopes",
                        "MultivaluedList",
                        "Client scopes allowed besides the realm's defaults",
                        Value::Null,
                    ),
                    property(
                        "allow-default-scopes",
                        "Allow Default Scopes",
                        "boolean",
                        "The realm's default and optional client scopes are allowed",
                        json!("true"),
                    ),
                ],
            ),
        };
        json!({"id": id, "helpText": help, "properties": properties, "metadata": {}})
    });
    Json(Value::Array(providers.collect()))
}

/// `GET .../components/{id}/sub-component-types`: none of the components
/// Gatehouse runs has sub-components.
async fn sub_types(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    if !all(&realm).iter().any(|c| c.id == id) {
        return Err(not_found());
    }
    Ok(Json(json!([])))
}

/// One component as the admin API shows it (ComponentRepresentation).
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub provider_id: String,
    pub provider_type: String,
    pub sub_type: Option<String>,
    pub config: Map<String, Value>,
}

impl Component {
    /// The config's values for `key` (Keycloak keeps lists of strings).
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The first value for `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values(key).into_iter().next()
    }

    /// A component from a representation's name (the provider's id when
    /// it has none) and what the caller checked.
    fn named(
        rep: &Value,
        id: String,
        (provider_id, provider_type): (&str, &str),
        sub_type: Option<&str>,
        config: Map<String, Value>,
    ) -> Component {
        Component {
            id,
            name: rep
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(provider_id)
                .to_owned(),
            provider_id: provider_id.to_owned(),
            provider_type: provider_type.to_owned(),
            sub_type: sub_type.map(str::to_owned),
            config,
        }
    }

    fn repr(&self, realm: &Realm) -> Value {
        let mut config = self.config.clone();
        mask_secrets(&mut config);
        let mut v = json!({"id": self.id, "name": self.name, "providerId": self.provider_id,
            "providerType": self.provider_type, "parentId": realm.id, "config": config});
        if let Some(s) = &self.sub_type {
            v["subType"] = json!(s);
        }
        v
    }

    /// The form a Keycloak export keeps under `components.{type}`.
    fn stored(&self) -> Value {
        let mut v = json!({"id": self.id, "name": self.name, "providerId": self.provider_id,
            "subComponents": {}, "config": self.config});
        if let Some(s) = &self.sub_type {
            v["subType"] = json!(s);
        }
        v
    }

    fn from_stored(provider_type: &str, v: &Value) -> Option<Component> {
        Some(Component {
            id: v.get("id")?.as_str()?.to_owned(),
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            provider_id: v.get("providerId")?.as_str()?.to_owned(),
            provider_type: provider_type.to_owned(),
            sub_type: v.get("subType").and_then(Value::as_str).map(str::to_owned),
            config: v
                .get("config")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// Config keys the admin API never shows (Keycloak's secret properties).
const SECRETS: &[&str] = &["bindCredential"];

/// Shows a component config's secrets as `**********` (the admin API's
/// reads, partial exports).
pub fn mask_secrets(config: &mut Map<String, Value>) {
    for k in SECRETS {
        if let Some(v) = config.get_mut(*k) {
            *v = json!([SECRET_MASK]);
        }
    }
}

/// The component types written through this API.
const WRITABLE: [&str; 2] = [POLICY_TYPE, STORAGE_TYPE];

/// A stable id for a default policy of a realm that never stored its own
/// (the same on every node and every call).
fn default_id(realm: &Realm, name: &str) -> String {
    gatehouse_core::id::derived(&format!("{}/{name}", realm.id))
}

/// Keycloak's default client-registration policies.
fn default_policies(realm: &Realm) -> Vec<Component> {
    let mappers = json!(crate::client_registration::ALLOWED_MAPPERS);
    let policy = |key: &str, name: &str, provider: &str, sub: &str, config: Value| Component {
        id: default_id(realm, key),
        name: name.to_owned(),
        provider_id: provider.to_owned(),
        provider_type: POLICY_TYPE.to_owned(),
        sub_type: Some(sub.to_owned()),
        config: config.as_object().cloned().unwrap_or_default(),
    };
    vec![
        policy(
            "anonymous/trusted-hosts",
            "Trusted Hosts",
            "trusted-hosts",
            "anonymous",
            json!({"host-sending-registration-request-must-match": ["true"],
                   "client-uris-must-match": ["true"]}),
        ),
        policy(
            "anonymous/consent-required",
            "Consent Required",
            "consent-required",
            "anonymous",
            json!({}),
        ),
        policy(
            "anonymous/scope",
            "Full Scope Disabled",
            "scope",
            "anonymous",
            json!({}),
        ),
        policy(
            "anonymous/max-clients",
            "Max Clients Limit",
            "max-clients",
            "anonymous",
            json!({"max-clients": ["200"]}),
        ),
        policy(
            "anonymous/allowed-protocol-mappers",
            "Allowed Protocol Mapper Types",
            "allowed-protocol-mappers",
            "anonymous",
            json!({"allowed-protocol-mapper-types": mappers}),
        ),
        policy(
            "anonymous/allowed-client-templates",
            "Allowed Client Scopes",
            "allowed-client-templates",
            "anonymous",
            json!({"allow-default-scopes": ["true"]}),
        ),
        policy(
            "authenticated/allowed-protocol-mappers",
            "Allowed Protocol Mapper Types",
            "allowed-protocol-mappers",
            "authenticated",
            json!({"allowed-protocol-mapper-types": mappers}),
        ),
        policy(
            "authenticated/allowed-client-templates",
            "Allowed Client Scopes",
            "allowed-client-templates",
            "authenticated",
            json!({"allow-default-scopes": ["true"]}),
        ),
    ]
}

/// Every component of the realm: what it stores, and the default
/// registration policies if it never stored its own.
pub fn all(realm: &Realm) -> Vec<Component> {
    let stored = realm.extra.get("components").and_then(Value::as_object);
    let mut out: Vec<Component> = stored
        .into_iter()
        .flatten()
        .flat_map(|(t, list)| parsed(t, list))
        .collect();
    if !stored.is_some_and(|m| m.contains_key(POLICY_TYPE)) {
        out.extend(default_policies(realm));
    }
    out
}

/// The components the realm stores of `provider_type` (no defaults): what
/// the login path asks for user-storage providers, without building the
/// rest.
pub fn stored(realm: &Realm, provider_type: &str) -> Vec<Component> {
    realm
        .extra
        .get("components")
        .and_then(|c| c.get(provider_type))
        .map(|list| parsed(provider_type, list).collect())
        .unwrap_or_default()
}

/// A stored list of `provider_type` (Keycloak's export form) as components.
fn parsed<'a>(provider_type: &'a str, list: &'a Value) -> impl Iterator<Item = Component> + 'a {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(move |v| Component::from_stored(provider_type, v))
}

/// The realm's client-registration policies for `sub_type` (`anonymous`
/// or `authenticated`).
pub fn registration_policies(realm: &Realm, sub_type: &str) -> Vec<Component> {
    let mut out = policies(realm);
    out.retain(|c| c.sub_type.as_deref() == Some(sub_type));
    out
}

/// All of the realm's client-registration policies.
fn policies(realm: &Realm) -> Vec<Component> {
    of_type(realm, POLICY_TYPE)
}

/// The realm's components of `provider_type`.
fn of_type(realm: &Realm, provider_type: &str) -> Vec<Component> {
    let mut out = all(realm);
    out.retain(|c| c.provider_type == provider_type);
    out
}

/// The writable component `id`: its type, the list of that type, and its
/// place in it; 404 for no component, 400 for a component Gatehouse only
/// lists.
fn find_writable(
    realm: &Realm,
    id: &str,
) -> Result<(&'static str, Vec<Component>, usize), AdminError> {
    for t in WRITABLE {
        let list = of_type(realm, t);
        if let Some(i) = list.iter().position(|p| p.id == id) {
            return Ok((t, list, i));
        }
    }
    Err(if all(realm).iter().any(|c| c.id == id) {
        AdminError::bad_request("This component type is not supported")
    } else {
        not_found()
    })
}

/// Writes `list` as the realm's components of `provider_type` (for
/// registration policies, the first write stores the defaults it changes).
fn store(realm: &mut Realm, provider_type: &str, list: &[Component]) {
    let components = realm.extra.entry("components").or_insert_with(|| json!({}));
    if !components.is_object() {
        *components = json!({});
    }
    // What a Keycloak export nested under a component (an LDAP
    // provider's mappers) stays with it, for the next export.
    let nested = |id: &str| {
        components[provider_type]
            .as_array()
            .and_then(|old| old.iter().find(|c| c["id"] == id))
            .and_then(|c| c.get("subComponents"))
            .cloned()
    };
    let list: Vec<Value> = list
        .iter()
        .map(|c| {
            let mut v = c.stored();
            if let Some(sub) = nested(&c.id) {
                v["subComponents"] = sub;
            }
            v
        })
        .collect();
    components[provider_type] = json!(list);
}

#[derive(Deserialize)]
struct ListQuery {
    parent: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    if q.parent
        .as_deref()
        .is_some_and(|p| p != realm.id && p != realm.name)
    {
        return Ok(Json(json!([])));
    }
    let mut out: Vec<Value> = all(&realm)
        .iter()
        // An export's key providers describe another server's keys.
        .filter(|c| c.provider_type != KEY_TYPE)
        .filter(|c| q.kind.as_deref().is_none_or(|t| t == c.provider_type))
        .map(|c| c.repr(&realm))
        .collect();
    if q.kind.as_deref().is_none_or(|t| t == KEY_TYPE) {
        out.extend(super::key_providers::list(&idp, &realm).await?);
    }
    out.retain(|c| q.name.as_deref().is_none_or(|n| c["name"] == n));
    Ok(Json(json!(out)))
}

fn not_found() -> AdminError {
    AdminError::missing("Could not find component")
}

async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    if let Some(k) = super::key_providers::one(&idp, &realm, &id).await? {
        return Ok(Json(k));
    }
    all(&realm)
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| Json(c.repr(&realm)))
        .ok_or_else(not_found)
}

/// A component from a ComponentRepresentation: only registration
/// policies of the providers Gatehouse enforces.
fn parse(rep: &Value, id: String, old: Option<&Component>) -> Result<Component, AdminError> {
    let provider_type = rep
        .get("providerType")
        .and_then(Value::as_str)
        .or(old.map(|c| c.provider_type.as_str()))
        .unwrap_or(POLICY_TYPE);
    if provider_type == STORAGE_TYPE {
        return parse_storage(rep, id, old);
    }
    if provider_type != POLICY_TYPE {
        return Err(AdminError::bad_request(format!(
            "Components of type {provider_type} are not supported"
        )));
    }
    let provider_id = rep
        .get("providerId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !POLICY_PROVIDERS.contains(&provider_id) {
        return Err(AdminError::bad_request(format!(
            "Unknown client registration policy provider: {provider_id}"
        )));
    }
    let sub_type = rep.get("subType").and_then(Value::as_str);
    if !matches!(sub_type, Some("anonymous" | "authenticated")) {
        return Err(AdminError::bad_request(
            "subType must be anonymous or authenticated",
        ));
    }
    let config = config(rep)?;
    if provider_id == "max-clients"
        && config
            .get("max-clients")
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
            .is_some_and(|n| n.parse::<u64>().is_err())
    {
        return Err(AdminError::bad_request("max-clients must be a number"));
    }
    Ok(Component::named(
        rep,
        id,
        (provider_id, POLICY_TYPE),
        sub_type,
        config,
    ))
}

/// A ComponentRepresentation's config: lists of strings by key.
fn config(rep: &Value) -> Result<Map<String, Value>, AdminError> {
    match rep.get("config") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if m.values()
                .any(|v| !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
            {
                return Err(AdminError::bad_request(
                    "config values must be lists of strings",
                ));
            }
            Ok(m.clone())
        }
        Some(_) => Err(AdminError::bad_request("config must be an object")),
    }
}

/// A user-storage provider: LDAP only, checked as Keycloak checks its
/// config; a masked bind password keeps the one stored.
fn parse_storage(
    rep: &Value,
    id: String,
    old: Option<&Component>,
) -> Result<Component, AdminError> {
    let provider_id = rep
        .get("providerId")
        .and_then(Value::as_str)
        .or(old.map(|c| c.provider_id.as_str()))
        .unwrap_or_default();
    if provider_id != crate::ldap::PROVIDER_ID {
        return Err(AdminError::bad_request(format!(
            "User storage provider {provider_id} is not supported (only ldap)"
        )));
    }
    let mut config = config(rep)?;
    for k in SECRETS {
        let masked = config
            .get(*k)
            .and_then(|v| v.get(0))
            .is_some_and(|v| v == SECRET_MASK);
        if masked {
            match old.and_then(|o| o.config.get(*k)) {
                Some(v) => config.insert((*k).to_owned(), v.clone()),
                None => config.remove(*k),
            };
        }
    }
    let c = Component::named(rep, id, (provider_id, STORAGE_TYPE), None, config);
    LdapProvider::validate(&c).map_err(AdminError::bad_request)?;
    Ok(c)
}

async fn save(
    idp: &Idp,
    realm: &mut Realm,
    (provider_type, list): (&str, &[Component]),
    ev: gatehouse_core::model::Event,
) -> Result<(), AdminError> {
    store(realm, provider_type, list);
    idp.store.update_realm(realm, &[ev]).await?;
    Ok(())
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<Response, AdminError> {
    let rep = json_body(&body)?;
    if rep["providerType"] == KEY_TYPE {
        let kid = super::key_providers::create(&idp, &realm, &caller, &rep).await?;
        return Ok(created(&idp, &realm.name, &format!("components/{kid}")));
    }
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let c = parse(&rep, gatehouse_core::id::uuid(), None)?;
    let mut list = of_type(&realm, &c.provider_type);
    list.push(c.clone());
    let path = format!("components/{}", c.id);
    let ev = event(&realm, &caller, "CREATE", "COMPONENT", &path, Some(&rep));
    save(&idp, &mut realm, (&c.provider_type, &list), ev).await?;
    Ok(created(&idp, &realm.name, &path))
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    if super::key_providers::update(&idp, &realm, &caller, &id, &rep)
        .await?
        .is_some()
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let (t, mut list, i) = find_writable(&realm, &id)?;
    let c = parse(&rep, id.clone(), Some(&list[i]))?;
    if c.provider_type != t {
        return Err(AdminError::bad_request(
            "A component's providerType cannot change",
        ));
    }
    list[i] = c;
    let ev = event(
        &realm,
        &caller,
        "UPDATE",
        "COMPONENT",
        &format!("components/{id}"),
        Some(&rep),
    );
    save(&idp, &mut realm, (t, &list), ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    if super::key_providers::remove(&idp, &realm, &caller, &id)
        .await?
        .is_some()
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let (t, mut list, i) = find_writable(&realm, &id)?;
    list.remove(i);
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "COMPONENT",
        &format!("components/{id}"),
        None,
    );
    save(&idp, &mut realm, (t, &list), ev).await?;
    // A user-storage provider's users go with it (Keycloak's preRemove).
    if t == STORAGE_TYPE {
        crate::user_storage::remove_imported(&idp, &realm, &id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
