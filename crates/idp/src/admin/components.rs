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
use crate::ldap::mappers::{self, MAPPER_TYPE};
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

/// `GET .../components/{id}/sub-component-types`: for an LDAP provider,
/// the mapper providers Gatehouse runs and the settings each reads (the
/// admin console's "Add mapper" list); none for other components.
async fn sub_types(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let Some(c) = all(&realm).into_iter().find(|c| c.id == id) else {
        return Err(not_found());
    };
    if c.provider_type != STORAGE_TYPE
        || c.provider_id != crate::ldap::PROVIDER_ID
        || q.kind.as_deref().is_some_and(|t| t != MAPPER_TYPE)
    {
        return Ok(Json(json!([])));
    }
    let text = |name: &str, help: &str| property(name, name, "String", help, Value::Null);
    let membership = |roles: bool| {
        let [dn, name, classes, filter] = mappers::membership_keys(roles);
        let mut p = vec![
            text(dn, "Where the group entries are"),
            text(name, "The attribute naming a group entry (cn)"),
            text(classes, "Object classes of the group entries"),
            text(filter, "An extra LDAP filter for the group entries"),
            text(
                "membership.ldap.attribute",
                "The group's member attribute (member)",
            ),
            text("membership.attribute.type", "DN or UID"),
            text(
                "membership.user.ldap.attribute",
                "The user attribute a UID membership names",
            ),
            text(
                "mode",
                "READ_ONLY, LDAP_ONLY or IMPORT (all read-only in Gatehouse)",
            ),
            text(
                "user.roles.retrieve.strategy",
                "How a user's groups are found",
            ),
            text("memberof.ldap.attribute", "The user's memberOf attribute"),
        ];
        if roles {
            p.push(text(
                "use.realm.roles.mapping",
                "Realm roles (true) or client roles",
            ));
            p.push(text("client.id", "The client whose roles are mapped"));
        } else {
            p.push(text(
                "groups.path",
                "The group the LDAP groups go under (/)",
            ));
        }
        p
    };
    let types: Vec<Value> = mappers::PROVIDERS
        .iter()
        .map(|id| {
            let (help, properties) = match *id {
                "user-attribute-ldap-mapper" => (
                    "An LDAP attribute as a user attribute, name or e-mail",
                    vec![
                        text(
                            "user.model.attribute",
                            "username, email, firstName, lastName or an attribute",
                        ),
                        text("ldap.attribute", "The LDAP attribute"),
                    ],
                ),
                "full-name-ldap-mapper" => (
                    "An LDAP attribute split into first and last name",
                    vec![text("ldap.full.name.attribute", "The LDAP attribute (cn)")],
                ),
                "group-ldap-mapper" => ("LDAP groups as groups", membership(false)),
                "role-ldap-mapper" => ("LDAP groups as roles", membership(true)),
                "hardcoded-ldap-role-mapper" => (
                    "A role every user of the provider holds",
                    vec![text("role", "A realm role, or clientId.role")],
                ),
                "hardcoded-ldap-group-mapper" => (
                    "A group every user of the provider is in",
                    vec![text("group", "The group's path")],
                ),
                _ => (
                    "An attribute every user of the provider has",
                    vec![
                        text("user.model.attribute", "The user attribute"),
                        text("attribute.value", "Its value"),
                    ],
                ),
            };
            json!({"id": id, "helpText": help, "properties": properties, "metadata": {}})
        })
        .collect();
    Ok(Json(Value::Array(types)))
}

/// One component as the admin API shows it (ComponentRepresentation).
#[derive(Debug, Clone, Default)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub provider_id: String,
    pub provider_type: String,
    pub sub_type: Option<String>,
    pub config: Map<String, Value>,
    /// The component it belongs to (an LDAP provider, for its mappers);
    /// None for the realm's own.
    pub parent_id: Option<String>,
    /// Its sub-components (an LDAP provider's mappers), kept where a
    /// Keycloak export keeps them: under `subComponents`, by type.
    pub children: Vec<Component>,
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
            ..Default::default()
        }
    }

    fn repr(&self, realm: &Realm) -> Value {
        let mut config = self.config.clone();
        mask_secrets(&mut config);
        let parent = self.parent_id.as_deref().unwrap_or(&realm.id);
        let mut v = json!({"id": self.id, "name": self.name, "providerId": self.provider_id,
            "providerType": self.provider_type, "parentId": parent, "config": config});
        if let Some(s) = &self.sub_type {
            v["subType"] = json!(s);
        }
        v
    }

    /// The form a Keycloak export keeps under `components.{type}`.
    fn stored(&self) -> Value {
        let mut sub = Map::new();
        for c in &self.children {
            let list = sub
                .entry(c.provider_type.clone())
                .or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(c.stored());
            }
        }
        let mut v = json!({"id": self.id, "name": self.name, "providerId": self.provider_id,
            "subComponents": sub, "config": self.config});
        if let Some(s) = &self.sub_type {
            v["subType"] = json!(s);
        }
        v
    }

    fn from_stored(provider_type: &str, v: &Value, parent_id: Option<&str>) -> Option<Component> {
        let id = v.get("id")?.as_str()?;
        let children = v
            .get("subComponents")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(t, list)| {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |c| Component::from_stored(t, c, Some(id)))
            })
            .collect();
        Some(Component {
            parent_id: parent_id.map(str::to_owned),
            children,
            id: id.to_owned(),
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
        ..Default::default()
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

/// Every component of the realm, sub-components (an LDAP provider's
/// mappers) included after their parent: what it stores, and the default
/// registration policies if it never stored its own.
pub fn all(realm: &Realm) -> Vec<Component> {
    fn flatten(mut c: Component, out: &mut Vec<Component>) {
        let children = std::mem::take(&mut c.children);
        out.push(c);
        for child in children {
            flatten(child, out);
        }
    }
    let mut out = vec![];
    for c in top_level(realm) {
        flatten(c, &mut out);
    }
    out
}

/// The realm's own components (their sub-components inside them), and
/// the default registration policies if it never stored its own.
fn top_level(realm: &Realm) -> Vec<Component> {
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
        .filter_map(move |v| Component::from_stored(provider_type, v, None))
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

/// The realm's own components of `provider_type`, with their
/// sub-components.
fn of_type(realm: &Realm, provider_type: &str) -> Vec<Component> {
    let mut out = top_level(realm);
    out.retain(|c| c.provider_type == provider_type);
    out
}

/// Where a writable component is: the type of the list it is stored in,
/// that list, its place in it, and for an LDAP mapper its place among
/// that provider's sub-components.
struct Place {
    list_type: &'static str,
    list: Vec<Component>,
    at: usize,
    child: Option<usize>,
}

impl Place {
    fn get(&self) -> &Component {
        let c = &self.list[self.at];
        self.child.map_or(c, |j| &c.children[j])
    }

    fn get_mut(&mut self) -> &mut Component {
        let c = &mut self.list[self.at];
        match self.child {
            Some(j) => &mut c.children[j],
            None => c,
        }
    }

    fn remove(&mut self) -> Component {
        match self.child {
            Some(j) => self.list[self.at].children.remove(j),
            None => self.list.remove(self.at),
        }
    }
}

/// The writable component `id`; 404 for no component, 400 for a
/// component Gatehouse only lists.
fn find_writable(realm: &Realm, id: &str) -> Result<Place, AdminError> {
    for t in WRITABLE {
        let list = of_type(realm, t);
        if let Some(at) = list.iter().position(|p| p.id == id) {
            return Ok(Place {
                list_type: t,
                list,
                at,
                child: None,
            });
        }
    }
    let providers = of_type(realm, STORAGE_TYPE);
    for (at, p) in providers.iter().enumerate() {
        if p.provider_id != crate::ldap::PROVIDER_ID {
            continue;
        }
        if let Some(j) = p
            .children
            .iter()
            .position(|c| c.id == id && c.provider_type == MAPPER_TYPE)
        {
            return Ok(Place {
                list_type: STORAGE_TYPE,
                list: providers,
                at,
                child: Some(j),
            });
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
    let list: Vec<Value> = list.iter().map(Component::stored).collect();
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
    // Keycloak's reading: no parent and no type lists everything; a type
    // alone lists the realm's own components of that type.
    let parent = match q.parent.as_deref() {
        Some(p) if p == realm.name => Some(realm.id.as_str()),
        Some(p) => Some(p),
        None if q.kind.is_some() => Some(realm.id.as_str()),
        None => None,
    };
    let under =
        |c: &Component| parent.is_none_or(|p| c.parent_id.as_deref().unwrap_or(&realm.id) == p);
    let mut out: Vec<Value> = all(&realm)
        .iter()
        // An export's key providers describe another server's keys.
        .filter(|c| c.provider_type != KEY_TYPE)
        .filter(|c| under(c))
        .filter(|c| q.kind.as_deref().is_none_or(|t| t == c.provider_type))
        .map(|c| c.repr(&realm))
        .collect();
    if q.kind.as_deref().is_none_or(|t| t == KEY_TYPE) && parent.is_none_or(|p| p == realm.id) {
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
    if provider_type == MAPPER_TYPE {
        return parse_mapper(rep, id, old);
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

/// An LDAP provider's mapper: one Gatehouse runs, checked as Keycloak
/// checks it; `parentId` names the provider.
fn parse_mapper(rep: &Value, id: String, old: Option<&Component>) -> Result<Component, AdminError> {
    let provider_id = rep
        .get("providerId")
        .and_then(Value::as_str)
        .or(old.map(|c| c.provider_id.as_str()))
        .unwrap_or_default();
    let parent = rep
        .get("parentId")
        .and_then(Value::as_str)
        .or(old.and_then(|c| c.parent_id.as_deref()));
    let Some(parent) = parent else {
        return Err(AdminError::bad_request(
            "An LDAP mapper needs the parentId of its provider",
        ));
    };
    let mut c = Component::named(rep, id, (provider_id, MAPPER_TYPE), None, config(rep)?);
    c.parent_id = Some(parent.to_owned());
    // Refuses the mappers Gatehouse does not run, too.
    mappers::validate(&c).map_err(AdminError::bad_request)?;
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
    let mut c = parse(&rep, gatehouse_core::id::uuid(), None)?;
    let path = format!("components/{}", c.id);
    let ev = event(&realm, &caller, "CREATE", "COMPONENT", &path, Some(&rep));
    if c.provider_type == MAPPER_TYPE {
        // Stored inside its provider, as a Keycloak export keeps it.
        let mut list = of_type(&realm, STORAGE_TYPE);
        let parent = list
            .iter_mut()
            .find(|p| {
                Some(&p.id) == c.parent_id.as_ref() && p.provider_id == crate::ldap::PROVIDER_ID
            })
            .ok_or_else(|| AdminError::bad_request("No LDAP provider with that parentId"))?;
        parent.children.push(c);
        save(&idp, &mut realm, (STORAGE_TYPE, &list), ev).await?;
        return Ok(created(&idp, &realm.name, &path));
    }
    if c.provider_type == STORAGE_TYPE {
        // Keycloak's default mappers come with a new provider.
        c.children = mappers::defaults_for(&c, &mut gatehouse_core::id::uuid);
    }
    let mut list = of_type(&realm, &c.provider_type);
    list.push(c.clone());
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
    let mut place = find_writable(&realm, &id)?;
    let old = place.get();
    let mut c = parse(&rep, id.clone(), Some(old))?;
    if c.provider_type != old.provider_type {
        return Err(AdminError::bad_request(
            "A component's providerType cannot change",
        ));
    }
    if c.parent_id != old.parent_id {
        return Err(AdminError::bad_request(
            "A component's parentId cannot change",
        ));
    }
    c.children = old.children.clone();
    *place.get_mut() = c;
    let ev = event(
        &realm,
        &caller,
        "UPDATE",
        "COMPONENT",
        &format!("components/{id}"),
        Some(&rep),
    );
    save(&idp, &mut realm, (place.list_type, &place.list), ev).await?;
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
    let mut place = find_writable(&realm, &id)?;
    let gone = place.remove();
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "COMPONENT",
        &format!("components/{id}"),
        None,
    );
    save(&idp, &mut realm, (place.list_type, &place.list), ev).await?;
    // A user-storage provider's users go with it (Keycloak's preRemove).
    if gone.provider_type == STORAGE_TYPE {
        crate::user_storage::remove_imported(&idp, &realm, &id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
