//! Policy and permission types: reading their representations (typed, as
//! the admin API posts them, or generic with Keycloak's config strings, as
//! exports carry them), writing their typed representation back, and
//! turning the subjects they name (users, roles, groups, clients, client
//! scopes) into ids of this realm, so a policy never matches someone who
//! later takes a deleted user's name.

use super::{Policy, Refused, ResourceServer, config_list};
use crate::error::AdminError;
use crate::state::Idp;
use gatehouse_core::model::Realm;
use serde_json::{Map, Value, json};

/// The policy types Gatehouse evaluates, with Keycloak's provider names
/// and groups (`GET .../policy/providers`). `js` is left out: scripts are
/// not uploaded (Keycloak refuses it too); only the default policy's
/// script, which grants, is kept.
pub const POLICY_TYPES: [(&str, &str, &str); 8] = [
    ("aggregate", "Aggregated", "Others"),
    ("client", "Client", "Identity Based"),
    ("client-scope", "Client Scope", "Identity Based"),
    ("group", "Group", "Identity Based"),
    ("regex", "Regex", "Others"),
    ("role", "Role", "Identity Based"),
    ("time", "Time", "Time Based"),
    ("user", "User", "Identity Based"),
];

/// The permission types.
pub const PERMISSION_TYPES: [(&str, &str, &str); 2] = [
    ("resource", "Resource-Based", "Others"),
    ("scope", "Scope-Based", "Others"),
];

/// Typed fields kept in the config as JSON text, by Keycloak's name: the
/// subjects a policy names.
pub const LISTS: [&str; 5] = ["users", "roles", "groups", "clients", "clientScopes"];

/// The time policy's typed fields and their config keys.
const TIME_FIELDS: [(&str, &str); 12] = [
    ("notBefore", "nbf"),
    ("notOnOrAfter", "noa"),
    ("dayMonth", "dayMonth"),
    ("dayMonthEnd", "dayMonthEnd"),
    ("month", "month"),
    ("monthEnd", "monthEnd"),
    ("year", "year"),
    ("yearEnd", "yearEnd"),
    ("hour", "hour"),
    ("hourEnd", "hourEnd"),
    ("minute", "minute"),
    ("minuteEnd", "minuteEnd"),
];

/// Plain string fields kept in the config under their own name.
const PLAIN: [&str; 5] = [
    "groupsClaim",
    "targetClaim",
    "pattern",
    "targetContextAttributes",
    "fetchRoles",
];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Applies a policy or permission representation to `p`. `import`: the
/// export form (a script may be the default one; associations by name).
pub fn apply(
    rs: &ResourceServer,
    p: &mut Policy,
    rep: &Value,
    import: bool,
) -> Result<(), Refused> {
    if let Some(n) = rep.get("name").and_then(Value::as_str) {
        p.name = n.to_owned();
    }
    if p.name.trim().is_empty() {
        return Err(Refused::Invalid("Policy name is required".into()));
    }
    if rep.get("description").is_some() {
        p.description = rep
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(t) = rep.get("type").and_then(Value::as_str) {
        p.kind = t.to_owned();
    }
    let known = POLICY_TYPES
        .iter()
        .chain(&PERMISSION_TYPES)
        .any(|(t, _, _)| *t == p.kind);
    let script = p.kind == "js";
    if !known && !script {
        return Err(Refused::Invalid(format!(
            "Policy provider for [{}] not found",
            p.kind
        )));
    }
    if let Some(v) = rep.get("logic").filter(|v| !v.is_null()) {
        p.logic = serde_json::from_value(v.clone())
            .map_err(|_| Refused::Invalid("Invalid logic".into()))?;
    }
    if let Some(v) = rep.get("decisionStrategy").filter(|v| !v.is_null()) {
        p.decision_strategy = serde_json::from_value(v.clone())
            .map_err(|_| Refused::Invalid("Invalid decisionStrategy".into()))?;
    }
    // Generic form: a config of strings (export, generic PUT).
    let config = rep.get("config").and_then(Value::as_object);
    if let Some(cfg) = config {
        for (k, v) in cfg {
            match k.as_str() {
                "resources" | "scopes" | "applyPolicies" => {}
                _ => {
                    if let Some(s) = scalar(v) {
                        p.config.insert(k.clone(), s);
                    }
                }
            }
        }
    }
    // Typed form.
    for k in LISTS {
        if let Some(v) = rep.get(k).filter(|v| v.is_array()) {
            p.config.insert(k.into(), v.to_string());
        }
    }
    for (field, key) in TIME_FIELDS {
        if let Some(s) = rep.get(field).and_then(scalar) {
            p.config.insert(key.into(), s);
        }
    }
    for k in PLAIN {
        if let Some(s) = rep.get(k).and_then(scalar) {
            p.config.insert(k.into(), s);
        }
    }
    if let Some(c) = rep.get("code").and_then(Value::as_str) {
        p.config.insert("code".into(), c.to_owned());
    }
    if let Some(t) = rep.get("resourceType") {
        match t.as_str().filter(|t| !t.is_empty()) {
            Some(t) => p.config.insert("defaultResourceType".into(), t.to_owned()),
            None => p.config.remove("defaultResourceType"),
        };
    }
    if script
        && !(import && p.config.get("code").map(String::as_str) == Some(super::DEFAULT_POLICY_CODE))
    {
        return Err(Refused::Invalid("Script upload is disabled".into()));
    }
    // Associations: typed lists, or the export's names in the config.
    let assoc = |typed: &str, generic: &str| -> Option<Vec<Value>> {
        rep.get(typed)
            .and_then(Value::as_array)
            .cloned()
            .or_else(|| {
                config
                    .and_then(|c| c.get(generic))
                    .map(|v| config_list(Some(v)))
            })
    };
    if let Some(r) = assoc("resources", "resources") {
        p.resources = rs.resource_ids(&r)?;
    }
    if let Some(s) = assoc("scopes", "scopes") {
        p.scopes = rs.scope_ids(&s)?;
    }
    if let Some(a) = assoc("policies", "applyPolicies") {
        p.policies = rs.policy_ids(&a)?;
        if p.policies.contains(&p.id) {
            return Err(Refused::Invalid("A policy cannot apply itself".into()));
        }
    }
    if rs.policies.iter().any(|x| x.id != p.id && x.name == p.name) {
        return Err(Refused::Exists(format!(
            "Policy with name [{}] already exists",
            p.name
        )));
    }
    Ok(())
}

/// The typed representation of a policy (`/policy/{type}/{id}`, and what
/// a create answers): the generic fields and the type's own.
pub fn typed_rep(p: &Policy) -> Value {
    let mut o = match super::policy_rep(p) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    o.remove("config");
    for k in LISTS {
        if let Some(v) = p.config.get(k) {
            o.insert(
                k.into(),
                config_list(Some(&Value::String(v.clone()))).into(),
            );
        }
    }
    for (field, key) in TIME_FIELDS {
        if let Some(v) = p.config.get(key) {
            o.insert(field.into(), json!(v));
        }
    }
    for k in PLAIN {
        if let Some(v) = p.config.get(k) {
            let val = if k == "fetchRoles" {
                json!(v == "true")
            } else {
                json!(v)
            };
            o.insert(k.into(), val);
        }
    }
    if let Some(t) = p.resource_type() {
        o.insert("resourceType".into(), json!(t));
    }
    if p.is_permission() || p.kind == "aggregate" {
        o.insert("resources".into(), json!(p.resources));
        o.insert("scopes".into(), json!(p.scopes));
        o.insert("policies".into(), json!(p.policies));
    }
    if let Some(c) = p.config.get("code") {
        o.insert("code".into(), json!(c));
    }
    Value::Object(o)
}

fn entries(p: &Policy, key: &str) -> Vec<Value> {
    super::config_values(p, key)
}

/// The key of a subject entry: a string, or an object's `id`.
fn entry_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("id")
            .or_else(|| o.get("path"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// Rewrites an entry's key to the resolved id.
fn with_key(v: &Value, id: &str) -> Value {
    match v {
        Value::Object(o) => {
            let mut o = o.clone();
            o.insert("id".into(), json!(id));
            Value::Object(o)
        }
        _ => json!(id),
    }
}

/// Turns the subjects a policy names into ids of this realm: users by id
/// or username, roles by id, name or `clientId/role`, groups by id or
/// path, clients by id or clientId, client scopes by id or name. An
/// unknown subject is a 400, as in Keycloak.
pub async fn resolve_subjects(idp: &Idp, realm: &Realm, p: &mut Policy) -> Result<(), AdminError> {
    rewrite_subjects(idp, realm, p, true).await
}

/// One subject entry with its id in place of what named it.
async fn to_id(
    idp: &Idp,
    realm: &Realm,
    key: &str,
    e: &Value,
) -> Result<Option<Value>, AdminError> {
    let Some(k) = entry_key(e) else {
        return Ok(None);
    };
    let id = match key {
        "users" => user_ref(idp, realm, &k).await?.map(|u| u.id),
        "roles" => role_ref(idp, realm, &k).await?.map(|r| r.id),
        "groups" => {
            let all = idp.store.groups(&realm.id).await?;
            let by_path = e.get("path").and_then(Value::as_str).unwrap_or(&k);
            all.iter()
                .find(|g| g.id == k)
                .or_else(|| crate::repr::group_by_path(&all, by_path))
                .map(|g| g.id.clone())
        }
        "clients" => match idp.store.client(&realm.id, &k).await? {
            Some(c) => Some(c.id),
            None => idp
                .store
                .client_by_client_id(&realm.id, &k)
                .await?
                .map(|c| c.id),
        },
        _ => idp
            .store
            .client_scopes(&realm.id)
            .await?
            .into_iter()
            .find(|s| s.id == k || s.name == k)
            .map(|s| s.id),
    };
    let what = match key {
        "users" => "User",
        "roles" => "Role",
        "groups" => "Group",
        "clients" => "Client",
        _ => "Client scope",
    };
    let id = id.ok_or_else(|| AdminError::bad_request(format!("{what} [{k}] does not exist")))?;
    Ok(Some(with_key(e, &id)))
}

/// Rewrites each subject entry of a policy's lists to its id
/// (`to_ids`) or its name; an entry without a name any more is dropped.
async fn rewrite_subjects(
    idp: &Idp,
    realm: &Realm,
    p: &mut Policy,
    to_ids: bool,
) -> Result<(), AdminError> {
    for key in LISTS {
        let list = entries(p, key);
        if list.is_empty() {
            continue;
        }
        let mut out = vec![];
        for e in &list {
            let v = if to_ids {
                to_id(idp, realm, key, e).await?
            } else {
                to_name(idp, realm, key, e).await?
            };
            if let Some(v) = v {
                out.push(v);
            }
        }
        p.config.insert(key.into(), Value::Array(out).to_string());
    }
    Ok(())
}

/// A user of the realm by id, else by username (how policies, resource
/// owners and the admin evaluation name users).
pub async fn user_ref(
    idp: &Idp,
    realm: &Realm,
    k: &str,
) -> Result<Option<gatehouse_core::model::User>, gatehouse_store::Error> {
    match idp.store.user(&realm.id, k).await? {
        Some(u) => Ok(Some(u)),
        None => idp.store.user_by_username(&realm.id, k).await,
    }
}

/// A role by id, realm role name, or `clientId/roleName`.
pub async fn role_ref(
    idp: &Idp,
    realm: &Realm,
    k: &str,
) -> Result<Option<gatehouse_core::model::Role>, gatehouse_store::Error> {
    if let Some(r) = idp.store.role(&realm.id, k).await? {
        return Ok(Some(r));
    }
    if let Some(r) = idp.store.role_by_name(&realm.id, None, k).await? {
        return Ok(Some(r));
    }
    if let Some((cid, name)) = k.split_once('/')
        && let Some(c) = idp.store.client_by_client_id(&realm.id, cid).await?
    {
        return idp.store.role_by_name(&realm.id, Some(&c.id), name).await;
    }
    Ok(None)
}

/// Names for the subjects of an exported policy (usernames, role names
/// or `clientId/role`, group paths, clientIds, scope names), so that the
/// export imports into another realm.
pub async fn export_subjects(idp: &Idp, realm: &Realm, p: &mut Policy) -> Result<(), AdminError> {
    rewrite_subjects(idp, realm, p, false).await
}

/// One subject entry by name (username, role name or `clientId/role`,
/// group path, clientId, scope name).
async fn to_name(
    idp: &Idp,
    realm: &Realm,
    key: &str,
    e: &Value,
) -> Result<Option<Value>, AdminError> {
    let Some(k) = entry_key(e) else {
        return Ok(None);
    };
    let name = match key {
        "users" => idp.store.user(&realm.id, &k).await?.map(|u| u.username),
        "roles" => match idp.store.role(&realm.id, &k).await? {
            Some(r) => match &r.client_id {
                None => Some(r.name),
                Some(c) => idp
                    .store
                    .client(&realm.id, c)
                    .await?
                    .map(|c| format!("{}/{}", c.client_id, r.name)),
            },
            None => None,
        },
        "groups" => {
            let all = idp.store.groups(&realm.id).await?;
            all.iter()
                .any(|g| g.id == k)
                .then(|| crate::repr::group_path(&all, &k))
        }
        "clients" => idp.store.client(&realm.id, &k).await?.map(|c| c.client_id),
        _ => idp
            .store
            .client_scopes(&realm.id)
            .await?
            .into_iter()
            .find(|s| s.id == k)
            .map(|s| s.name),
    };
    Ok(name.map(|n| match e {
        Value::Object(o) => {
            let mut o = o.clone();
            o.insert("id".into(), json!(n));
            if key == "groups" {
                o.insert("path".into(), json!(n));
            }
            Value::Object(o)
        }
        _ => json!(n),
    }))
}
