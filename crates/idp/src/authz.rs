//! Keycloak's Authorization Services for a client (its "resource server"):
//! resources, authorization scopes, policies (who) and permissions (what
//! they unlock), evaluated at the token endpoint's UMA grant
//! (`oidc/uma.rs`) and managed under
//! `/admin/realms/{realm}/clients/{id}/authz/resource-server`
//! (`admin/authz.rs`).
//!
//! A resource server is a small document (tens to hundreds of entries,
//! read whole at every evaluation), so it lives with its client, in the
//! client's row, written in the client's transaction: enabling, importing
//! and every admin change are one write with their admin event, and a
//! deleted client takes its settings along. References between entries
//! are by id; Keycloak's export form (by name, policy config as JSON
//! strings) is produced and read at the edges ([`export`], [`import`]).

pub mod evaluate;
pub mod policies;
pub mod protection;

use gatehouse_core::model::Client;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Where a client keeps its resource server (inside `Client::extra`,
/// never shown in its representation).
pub const STORED: &str = "gatehouse.authz";
/// Keycloak's client flag that turns the services on.
pub const ENABLED: &str = "authorizationServicesEnabled";
/// Keycloak's export field for a client's settings.
pub const SETTINGS: &str = "authorizationSettings";

/// What happens to a request no permission covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Enforcement {
    /// Denied (Keycloak's default).
    #[default]
    Enforcing,
    /// Granted.
    Permissive,
    /// Everything granted, no policy evaluated.
    Disabled,
}

/// How several decisions combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Strategy {
    /// All must grant.
    #[default]
    Unanimous,
    /// One grant is enough.
    Affirmative,
    /// More grants than denials.
    Consensus,
}

/// Whether a policy's outcome is kept or inverted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Logic {
    #[default]
    Positive,
    Negative,
}

/// A protected thing: by name, type and URIs, with the scopes it offers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub uris: Vec<String>,
    /// Scope ids.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A user id when a user owns it; None: the resource server itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub owner_managed_access: bool,
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_uri: Option<String>,
}

/// An action on resources (`view`, `delete`...).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scope {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_uri: Option<String>,
}

/// A policy (`role`, `user`, `group`, `client`, `time`, `aggregate`,
/// `client-scope`, `regex`, `js`) or a permission (`resource`, `scope`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub logic: Logic,
    #[serde(default)]
    pub decision_strategy: Strategy,
    /// Type-specific settings in Keycloak's form (JSON lists as strings).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Resource ids (permissions).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Scope ids (scope permissions).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Policy ids: what a permission or an aggregate applies.
    #[serde(default)]
    pub policies: Vec<String>,
}

impl Policy {
    /// Whether this is a permission rather than a policy.
    pub fn is_permission(&self) -> bool {
        matches!(self.kind.as_str(), "resource" | "scope")
    }

    /// Whether this resource permission covers `r` by its type (one that
    /// names no resource of its own).
    pub fn covers_type_of(&self, r: &Resource) -> bool {
        self.resources.is_empty()
            && self
                .resource_type()
                .is_some_and(|t| r.kind.as_deref() == Some(t))
    }

    /// The resource type a resource permission covers.
    pub fn resource_type(&self) -> Option<&str> {
        self.config
            .get("defaultResourceType")
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }
}

/// A client's authorization settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResourceServer {
    #[serde(default)]
    pub allow_remote_resource_management: bool,
    #[serde(default)]
    pub policy_enforcement_mode: Enforcement,
    #[serde(default)]
    pub decision_strategy: Strategy,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

/// A change refused, with Keycloak's status: 400, 404 or 409.
#[derive(Debug)]
pub enum Refused {
    Invalid(String),
    Missing(String),
    Exists(String),
}

impl From<Refused> for crate::error::AdminError {
    fn from(r: Refused) -> Self {
        use crate::error::AdminError;
        match r {
            Refused::Invalid(m) => AdminError::bad_request(m),
            Refused::Missing(m) => AdminError::missing(&m),
            Refused::Exists(m) => AdminError::conflict(m),
        }
    }
}

/// The JSON code of the policy Keycloak creates with every resource
/// server. It is the only script Gatehouse runs (as a grant).
pub const DEFAULT_POLICY_CODE: &str =
    "// by default, grants any permission associated with this policy\n$evaluation.grant();\n";

impl ResourceServer {
    /// A client's settings, if the services are on for it.
    pub fn of(client: &Client) -> Option<ResourceServer> {
        let stored = client.extra.get(STORED)?;
        serde_json::from_value(stored.clone()).ok()
    }

    /// Writes the settings into the client (stored with its next write).
    pub fn store_in(&self, client: &mut Client) {
        if let Ok(v) = serde_json::to_value(self) {
            client.extra.insert(STORED.into(), v);
        }
        client.extra.insert(ENABLED.into(), json!(true));
    }

    /// What Keycloak creates when the services are turned on: a default
    /// resource (`/*`, of type `urn:{clientId}:resources:default`), a
    /// default policy that grants, and a permission joining them.
    pub fn with_defaults(client: &Client) -> ResourceServer {
        let kind = format!("urn:{}:resources:default", client.client_id);
        let policy = Policy {
            id: gatehouse_core::id::uuid(),
            name: "Default Policy".into(),
            description: Some(
                "A policy that grants access only for users within this realm".into(),
            ),
            kind: "js".into(),
            decision_strategy: Strategy::Affirmative,
            config: BTreeMap::from([("code".into(), DEFAULT_POLICY_CODE.into())]),
            ..Policy::default()
        };
        let permission = Policy {
            id: gatehouse_core::id::uuid(),
            name: "Default Permission".into(),
            description: Some("A permission that applies to the default resource type".into()),
            kind: "resource".into(),
            config: BTreeMap::from([("defaultResourceType".into(), kind.clone())]),
            policies: vec![policy.id.clone()],
            ..Policy::default()
        };
        ResourceServer {
            resources: vec![Resource {
                id: gatehouse_core::id::uuid(),
                name: "Default Resource".into(),
                kind: Some(kind),
                uris: vec!["/*".into()],
                ..Resource::default()
            }],
            policies: vec![policy, permission],
            ..ResourceServer::default()
        }
    }

    /// A resource by id (references inside the document are ids).
    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// A scope by id.
    pub fn scope(&self, id: &str) -> Option<&Scope> {
        self.scopes.iter().find(|s| s.id == id)
    }

    /// A policy or permission by id.
    pub fn policy(&self, id: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    /// A scope by id, else by name (Keycloak accepts either in requests).
    pub fn scope_ref(&self, r: &str) -> Option<&Scope> {
        self.scope(r)
            .or_else(|| self.scopes.iter().find(|s| s.name == r))
    }

    /// A resource by id, else by name.
    pub fn resource_ref(&self, r: &str) -> Option<&Resource> {
        self.resource(r)
            .or_else(|| self.resources.iter().find(|x| x.name == r))
    }

    /// A policy by id, else by name.
    pub fn policy_ref(&self, r: &str) -> Option<&Policy> {
        self.policy(r)
            .or_else(|| self.policies.iter().find(|x| x.name == r))
    }

    /// Scope ids for references given by id or name (or as `{id|name}`
    /// objects); an unknown one is refused.
    pub fn scope_ids(&self, refs: &[Value]) -> Result<Vec<String>, Refused> {
        let mut out = vec![];
        for r in refs {
            let Some((key, name)) = scope_key(r)? else {
                continue;
            };
            // By id or name, or by the name of an object whose id is not ours.
            let found = self
                .scope_ref(&key)
                .or_else(|| name.and_then(|n| self.scopes.iter().find(|s| s.name == n)));
            match found {
                Some(s) => push_once(&mut out, &s.id),
                None => {
                    return Err(Refused::Invalid(format!(
                        "Scope with id or name [{key}] does not exist"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// [`Self::scope_ids`], creating the scopes named that do not exist
    /// (as Keycloak does for the scopes a resource names).
    pub fn scope_ids_creating(&mut self, refs: &[Value]) -> Result<Vec<String>, Refused> {
        for r in refs {
            let Some((key, name)) = scope_key(r)? else {
                continue;
            };
            let name = name.unwrap_or(&key).to_owned();
            if !key.is_empty()
                && self.scope_ref(&key).is_none()
                && !self.scopes.iter().any(|s| s.name == name)
            {
                self.scopes.push(Scope {
                    id: gatehouse_core::id::uuid(),
                    name,
                    ..Scope::default()
                });
            }
        }
        self.scope_ids(refs)
    }

    /// Resource ids for references by id or name; null entries skipped.
    pub fn resource_ids(&self, refs: &[Value]) -> Result<Vec<String>, Refused> {
        let mut out = vec![];
        for r in refs {
            let Some(key) = r.as_str().or_else(|| r.get("_id").and_then(Value::as_str)) else {
                continue;
            };
            match self.resource_ref(key) {
                Some(x) => push_once(&mut out, &x.id),
                None => {
                    return Err(Refused::Invalid(format!(
                        "Resource with id or name [{key}] does not exist or is not owned by the resource server"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Policy ids for references by id or name; null entries skipped.
    pub fn policy_ids(&self, refs: &[Value]) -> Result<Vec<String>, Refused> {
        let mut out = vec![];
        for r in refs {
            let Some(key) = r.as_str() else { continue };
            match self.policy_ref(key) {
                Some(x) => push_once(&mut out, &x.id),
                None => {
                    return Err(Refused::Invalid(format!(
                        "Policy with id or name [{key}] does not exist"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Removes a scope and every reference to it.
    pub fn remove_scope(&mut self, id: &str) -> bool {
        let before = self.scopes.len();
        self.scopes.retain(|s| s.id != id);
        for r in &mut self.resources {
            r.scopes.retain(|s| s != id);
        }
        for p in &mut self.policies {
            p.scopes.retain(|s| s != id);
        }
        before != self.scopes.len()
    }

    /// Removes a resource and every reference to it.
    pub fn remove_resource(&mut self, id: &str) -> bool {
        let before = self.resources.len();
        self.resources.retain(|r| r.id != id);
        for p in &mut self.policies {
            p.resources.retain(|r| r != id);
        }
        before != self.resources.len()
    }

    /// Removes a policy and every reference to it.
    pub fn remove_policy(&mut self, id: &str) -> bool {
        let before = self.policies.len();
        self.policies.retain(|p| p.id != id);
        for p in &mut self.policies {
            p.policies.retain(|x| x != id);
        }
        before != self.policies.len()
    }

    /// The permissions that apply to a resource: resource permissions
    /// naming it or its type; scope permissions naming it, or naming no
    /// resource and one of its scopes (Keycloak's reading).
    pub fn permissions_of_resource<'a>(
        &'a self,
        r: &'a Resource,
    ) -> impl Iterator<Item = &'a Policy> {
        self.policies.iter().filter(move |p| match p.kind.as_str() {
            "resource" => p.resources.contains(&r.id) || p.covers_type_of(r),
            "scope" => {
                (p.resources.is_empty() || p.resources.contains(&r.id))
                    && p.scopes.iter().any(|x| r.scopes.contains(x))
            }
            _ => false,
        })
    }
}

/// A scope reference's key (id or name) and, for an object, its name;
/// None for a null entry (skipped, as Keycloak's clients send them).
fn scope_key(r: &Value) -> Result<Option<(String, Option<&str>)>, Refused> {
    Ok(match r {
        Value::String(s) => Some((s.clone(), None)),
        Value::Object(o) => {
            let name = o.get("name").and_then(Value::as_str);
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            Some((id.or(name).unwrap_or_default().to_owned(), name))
        }
        Value::Null => None,
        _ => return Err(Refused::Invalid("Invalid scope reference".into())),
    })
}

/// Adds `id` unless the list has it already.
fn push_once(out: &mut Vec<String>, id: &str) {
    if !out.iter().any(|x| x == id) {
        out.push(id.to_owned());
    }
}

/// A resource query, as both the admin API and the protection API take
/// it: `name` (in any case, or whole with `exactName`), `uri` (as it is,
/// or with `matchingUri` against the resources' patterns), `type`,
/// `owner`, `scope` (a scope name, in any case), `_id`; paged.
#[derive(serde::Deserialize, Default)]
pub struct ResourceQuery {
    #[serde(rename = "_id")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub uri: Option<String>,
    pub owner: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub scope: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::admin::lenient_bool",
        rename = "matchingUri"
    )]
    pub matching_uri: Option<bool>,
    #[serde(
        default,
        deserialize_with = "crate::admin::lenient_bool",
        rename = "exactName"
    )]
    pub exact_name: Option<bool>,
    #[serde(default, deserialize_with = "crate::admin::lenient_bool")]
    pub deep: Option<bool>,
    pub first: Option<i64>,
    pub max: Option<i64>,
}

impl ResourceQuery {
    /// Whether `r` of the server of `client` answers the query.
    pub fn matches(&self, rs: &ResourceServer, r: &Resource, client: &Client) -> bool {
        let ci = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.id.as_ref().is_none_or(|i| &r.id == i)
            && self.name.as_ref().is_none_or(|n| {
                if self.exact_name.unwrap_or(false) {
                    &r.name == n
                } else {
                    ci(&r.name, n)
                }
            })
            && self.uri.as_ref().is_none_or(|u| {
                if self.matching_uri.unwrap_or(false) {
                    r.uris.iter().any(|p| protection::uri_matches(p, u))
                } else {
                    r.uris.contains(u)
                }
            })
            && self
                .kind
                .as_ref()
                .is_none_or(|t| r.kind.as_ref() == Some(t))
            && self.owner.as_ref().is_none_or(|o| match &r.owner {
                Some(u) => u == o,
                None => o == &client.id || o == &client.client_id,
            })
            && self.scope.as_ref().is_none_or(|s| {
                r.scopes
                    .iter()
                    .filter_map(|x| rs.scope(x))
                    .any(|x| ci(&x.name, s))
            })
    }

    /// The page of `rs`'s resources answering the query.
    pub fn page<'a>(
        &'a self,
        rs: &'a ResourceServer,
        client: &'a Client,
    ) -> impl Iterator<Item = &'a Resource> {
        crate::admin::window(
            self.first,
            self.max,
            rs.resources
                .iter()
                .filter(move |r| self.matches(rs, r, client)),
        )
    }
}

/// ResourceServerRepresentation without its contents (the admin GET).
pub fn server_rep(rs: &ResourceServer, client: &Client) -> Value {
    json!({
        "id": client.id, "clientId": client.id, "name": client.client_id,
        "allowRemoteResourceManagement": rs.allow_remote_resource_management,
        "policyEnforcementMode": rs.policy_enforcement_mode,
        "decisionStrategy": rs.decision_strategy,
    })
}

/// ScopeRepresentation.
pub fn scope_rep(s: &Scope) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(s.id));
    o.insert("name".into(), json!(s.name));
    if let Some(d) = &s.display_name {
        o.insert("displayName".into(), json!(d));
    }
    if let Some(i) = &s.icon_uri {
        o.insert("iconUri".into(), json!(i));
    }
    Value::Object(o)
}

/// A scope as resources and permissions list it: id and name.
pub fn scope_brief(s: &Scope) -> Value {
    json!({"id": s.id, "name": s.name})
}

/// A resource as permissions and scopes list it: `_id` and name.
pub fn resource_brief(r: &Resource) -> Value {
    json!({"_id": r.id, "name": r.name})
}

/// ResourceRepresentation, owner named as Keycloak does.
pub fn resource_rep(rs: &ResourceServer, r: &Resource, client: &Client) -> Value {
    let mut o = Map::new();
    o.insert("_id".into(), json!(r.id));
    o.insert("name".into(), json!(r.name));
    if let Some(d) = &r.display_name {
        o.insert("displayName".into(), json!(d));
    }
    if let Some(t) = &r.kind {
        o.insert("type".into(), json!(t));
    }
    o.insert("uris".into(), json!(r.uris));
    o.insert(
        "scopes".into(),
        Value::Array(
            r.scopes
                .iter()
                .filter_map(|id| rs.scope(id))
                .map(scope_brief)
                .collect(),
        ),
    );
    let owner = match &r.owner {
        Some(u) => json!({"id": u}),
        None => json!({"id": client.id, "name": client.client_id}),
    };
    o.insert("owner".into(), owner);
    o.insert("ownerManagedAccess".into(), json!(r.owner_managed_access));
    o.insert("attributes".into(), json!(r.attributes));
    if let Some(i) = &r.icon_uri {
        o.insert("icon_uri".into(), json!(i));
    }
    Value::Object(o)
}

/// PolicyRepresentation in its generic form (lists, `/policy/{id}`).
pub fn policy_rep(p: &Policy) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(p.id));
    o.insert("name".into(), json!(p.name));
    if let Some(d) = &p.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("type".into(), json!(p.kind));
    o.insert("logic".into(), json!(p.logic));
    o.insert("decisionStrategy".into(), json!(p.decision_strategy));
    o.insert("config".into(), json!(p.config));
    Value::Object(o)
}

/// Keycloak's export form of the settings: entries by name, a policy's
/// resources, scopes and applied policies as JSON strings of names in
/// its config.
pub fn export(rs: &ResourceServer, client: &Client) -> Value {
    let names = |ids: &[String], f: &dyn Fn(&str) -> Option<String>| -> String {
        json!(ids.iter().filter_map(|i| f(i)).collect::<Vec<_>>()).to_string()
    };
    let resources: Vec<Value> = rs
        .resources
        .iter()
        .map(|r| {
            let mut v = resource_rep(rs, r, client);
            if let Some(scopes) = v.get_mut("scopes").and_then(Value::as_array_mut) {
                for s in scopes.iter_mut() {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("id");
                    }
                }
            }
            if r.owner.is_none()
                && let Some(o) = v.as_object_mut()
            {
                o.insert(
                    "owner".into(),
                    json!({"id": client.id, "name": client.client_id}),
                );
            }
            v
        })
        .collect();
    let policies: Vec<Value> = rs
        .policies
        .iter()
        .map(|p| {
            let mut v = policy_rep(p);
            let cfg = v["config"].as_object_mut();
            if let Some(cfg) = cfg {
                if !p.resources.is_empty() {
                    cfg.insert(
                        "resources".into(),
                        json!(names(&p.resources, &|i| rs
                            .resource(i)
                            .map(|r| r.name.clone()))),
                    );
                }
                if !p.scopes.is_empty() {
                    cfg.insert(
                        "scopes".into(),
                        json!(names(&p.scopes, &|i| rs.scope(i).map(|s| s.name.clone()))),
                    );
                }
                if !p.policies.is_empty() {
                    cfg.insert(
                        "applyPolicies".into(),
                        json!(names(&p.policies, &|i| rs
                            .policy(i)
                            .map(|x| x.name.clone()))),
                    );
                }
            }
            v
        })
        .collect();
    json!({
        "allowRemoteResourceManagement": rs.allow_remote_resource_management,
        "policyEnforcementMode": rs.policy_enforcement_mode,
        "resources": resources,
        "policies": policies,
        "scopes": rs.scopes.iter().map(scope_rep).collect::<Vec<_>>(),
        "decisionStrategy": rs.decision_strategy,
    })
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn list(v: &Value, k: &str) -> Vec<Value> {
    v.get(k)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A JSON-string list in a policy config (`"[\"a\",\"b\"]"`), or a real
/// list, as names or ids.
fn config_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::String(s)) => serde_json::from_str::<Vec<Value>>(s).unwrap_or_default(),
        Some(Value::Array(a)) => a.clone(),
        _ => vec![],
    }
}

/// Reads the enum fields of a representation onto the settings.
pub fn apply_settings(rs: &mut ResourceServer, rep: &Value) -> Result<(), Refused> {
    let bad = |f: &str| Refused::Invalid(format!("Invalid {f}"));
    if let Some(v) = rep.get("policyEnforcementMode").filter(|v| !v.is_null()) {
        rs.policy_enforcement_mode =
            serde_json::from_value(v.clone()).map_err(|_| bad("policyEnforcementMode"))?;
    }
    if let Some(v) = rep.get("decisionStrategy").filter(|v| !v.is_null()) {
        rs.decision_strategy =
            serde_json::from_value(v.clone()).map_err(|_| bad("decisionStrategy"))?;
    }
    if let Some(b) = rep
        .get("allowRemoteResourceManagement")
        .and_then(Value::as_bool)
    {
        rs.allow_remote_resource_management = b;
    }
    Ok(())
}

/// Applies a ResourceRepresentation (create or update) to `r`.
pub fn apply_resource(
    rs: &mut ResourceServer,
    r: &mut Resource,
    rep: &Value,
) -> Result<(), Refused> {
    if let Some(n) = text(rep, "name") {
        if n.trim().is_empty() {
            return Err(Refused::Invalid("Resource name is required".into()));
        }
        r.name = n;
    }
    if r.name.is_empty() {
        return Err(Refused::Invalid("Resource name is required".into()));
    }
    if rep.get("displayName").is_some() {
        r.display_name = text(rep, "displayName");
    }
    if rep.get("type").is_some() {
        r.kind = text(rep, "type").filter(|t| !t.is_empty());
    }
    if let Some(u) = rep.get("uris").and_then(Value::as_array) {
        r.uris = u
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    } else if let Some(u) = text(rep, "uri") {
        r.uris = vec![u];
    }
    if rep.get("scopes").is_some() {
        r.scopes = rs.scope_ids_creating(&list(rep, "scopes"))?;
    }
    if let Some(b) = rep.get("ownerManagedAccess").and_then(Value::as_bool) {
        r.owner_managed_access = b;
    }
    if let Some(a) = rep.get("attributes").and_then(Value::as_object) {
        r.attributes = a
            .iter()
            .map(|(k, v)| {
                let vals = match v {
                    Value::Array(x) => x
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    _ => vec![],
                };
                (k.clone(), vals)
            })
            .collect();
    }
    if rep.get("icon_uri").is_some() {
        r.icon_uri = text(rep, "icon_uri");
    }
    if rs
        .resources
        .iter()
        .any(|x| x.id != r.id && x.name == r.name && x.owner == r.owner)
    {
        return Err(Refused::Exists(format!(
            "Resource with name [{}] already exists.",
            r.name
        )));
    }
    Ok(())
}

/// Applies a ScopeRepresentation to `s`.
pub fn apply_scope(rs: &ResourceServer, s: &mut Scope, rep: &Value) -> Result<(), Refused> {
    if let Some(n) = text(rep, "name") {
        s.name = n;
    }
    if s.name.trim().is_empty() {
        return Err(Refused::Invalid("Scope name is required".into()));
    }
    if rep.get("displayName").is_some() {
        s.display_name = text(rep, "displayName");
    }
    if rep.get("iconUri").is_some() {
        s.icon_uri = text(rep, "iconUri");
    }
    if rs.scopes.iter().any(|x| x.id != s.id && x.name == s.name) {
        return Err(Refused::Exists(format!(
            "Scope with name [{}] already exists",
            s.name
        )));
    }
    Ok(())
}

/// Reads Keycloak's export form into `rs`: settings replaced, entries
/// matched by name (updated) or added; nothing removed, as Keycloak's
/// import does. Subject references (users, roles, groups, clients) are
/// resolved by the caller ([`policies::resolve_subjects`]).
pub fn import(rs: &mut ResourceServer, rep: &Value) -> Result<(), Refused> {
    apply_settings(rs, rep)?;
    for s in list(rep, "scopes") {
        let mut scope = named_or_new(
            &rs.scopes,
            &s,
            "id",
            |x| (&x.name, &x.id),
            |id| Scope {
                id,
                ..Scope::default()
            },
        );
        apply_scope(rs, &mut scope, &s)?;
        upsert(&mut rs.scopes, scope, |x| &x.id);
    }
    for r in list(rep, "resources") {
        let mut res = named_or_new(
            &rs.resources,
            &r,
            "_id",
            |x| (&x.name, &x.id),
            |id| Resource {
                id,
                ..Resource::default()
            },
        );
        apply_resource(rs, &mut res, &r)?;
        upsert(&mut rs.resources, res, |x| &x.id);
    }
    // Policies before the permissions and aggregates that apply them:
    // two passes, the second resolving `applyPolicies` by name.
    let reps = list(rep, "policies");
    for p in &reps {
        let mut pol = named_or_new(
            &rs.policies,
            p,
            "id",
            |x| (&x.name, &x.id),
            |id| Policy {
                id,
                ..Policy::default()
            },
        );
        let mut generic = p.clone();
        // Associations come in the second pass.
        if let Some(cfg) = generic.get_mut("config").and_then(Value::as_object_mut) {
            cfg.remove("applyPolicies");
        }
        policies::apply(rs, &mut pol, &generic, true)?;
        upsert(&mut rs.policies, pol, |x| &x.id);
    }
    for p in &reps {
        let applied = config_list(p.get("config").and_then(|c| c.get("applyPolicies")));
        if applied.is_empty() {
            continue;
        }
        let ids = rs.policy_ids(&applied)?;
        let name = text(p, "name").unwrap_or_default();
        if let Some(pol) = rs.policies.iter_mut().find(|x| x.name == name) {
            pol.policies = ids;
        }
    }
    Ok(())
}

/// The entry of `items` the representation names, else a new one (made
/// by `new`) keeping the representation's id (`id_key`) where it is free,
/// so an export's ids survive an import.
fn named_or_new<T: Clone>(
    items: &[T],
    rep: &Value,
    id_key: &str,
    name_and_id: impl Fn(&T) -> (&String, &String),
    new: impl FnOnce(String) -> T,
) -> T {
    let name = text(rep, "name").unwrap_or_default();
    if let Some(x) = items.iter().find(|x| *name_and_id(x).0 == name) {
        return x.clone();
    }
    let id = text(rep, id_key)
        .filter(|i| !items.iter().any(|x| name_and_id(x).1 == i))
        .unwrap_or_else(gatehouse_core::id::uuid);
    new(id)
}

fn upsert<T>(items: &mut Vec<T>, item: T, id: impl Fn(&T) -> &String) {
    match items.iter().position(|x| id(x) == id(&item)) {
        Some(i) => items[i] = item,
        None => items.push(item),
    }
}

/// The list a policy config holds under `key` (see [`config_list`]).
pub fn config_values(p: &Policy, key: &str) -> Vec<Value> {
    config_list(p.config.get(key).map(|s| Value::String(s.clone())).as_ref())
}

/// The subject as policies see it: effective roles, groups with their
/// ancestors, the requesting client, the token's client scopes.
pub async fn subject(
    idp: &crate::state::Idp,
    realm: &gatehouse_core::model::Realm,
    user: &gatehouse_core::model::User,
    client_id: Option<&str>,
    claims: Value,
) -> Result<evaluate::Subject, crate::error::OAuthError> {
    let role_ids: std::collections::BTreeSet<String> = idp
        .store
        .effective_roles(&user.id)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let direct = idp.store.user_groups(&user.id).await?;
    let mut groups: Vec<(String, bool)> = direct.iter().map(|g| (g.id.clone(), true)).collect();
    if direct.iter().any(|g| g.parent_id.is_some()) {
        let all = idp.store.groups(&realm.id).await?;
        for g in &direct {
            for parent in crate::repr::lineage(&all, &g.id).skip(1) {
                if !groups.iter().any(|(id, _)| *id == parent.id) {
                    groups.push((parent.id.clone(), false));
                }
            }
        }
    }
    let token_scopes: Vec<&str> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .collect();
    let client_scope_ids = idp
        .client_scopes(realm)
        .await?
        .iter()
        .filter(|s| token_scopes.contains(&s.name.as_str()))
        .map(|s| s.id.clone())
        .collect();
    Ok(evaluate::Subject {
        user_id: user.id.clone(),
        role_ids,
        groups,
        client_id: client_id.map(str::to_owned),
        client_scope_ids,
        claims,
        context: Value::Null,
        now: gatehouse_core::time::now(),
    })
}
