//! `GET/PUT /admin/realms/{realm}/users/profile` and `.../profile/metadata`:
//! Keycloak's declarative user profile (UPConfig), which admin tools read
//! before they create users and write to allow custom attributes.
//!
//! The configuration is kept where a Keycloak realm export keeps it (a
//! `components` entry of the user-profile provider, the JSON text under
//! `kc.user.profile.config`), so an exported realm carries it both ways.
//!
//! What Gatehouse applies of it is the `unmanagedAttributePolicy`: with
//! the policy absent, attributes the profile does not declare are neither
//! shown nor written through the admin API (stored values stay, and token
//! mappers still read them, as in Keycloak); `ADMIN_VIEW` shows them
//! read-only; `ADMIN_EDIT` and `ENABLED` show and write them. A realm
//! without a stored profile reads as `ENABLED`, because that is how Keycloak
//! migrates realms older than its user profile, and how every realm behaved
//! here before profiles existed. Per-attribute validations and required
//! rules are enforced by `profile_rules` (admin API, registration, the
//! account API, the update-profile page); permissions decide what the
//! metadata calls read-only, and an attribute whose permissions name
//! `admin` neither to view nor to edit is left out of every admin read
//! (and kept as stored by admin writes).

use super::RealmAdmin;
use crate::error::AdminError;
use axum::Json;
use axum::routing::get;
use gatehouse_core::model::{Attributes, Realm};
use serde_json::{Value, json};
use std::sync::Arc;

const PROVIDER: &str = "org.keycloak.userprofile.UserProfileProvider";
const CONFIG_KEY: &str = "kc.user.profile.config";
/// The profile's built-in attributes: user fields, not custom attributes.
pub const BUILT_IN: [&str; 4] = ["username", "email", "firstName", "lastName"];

/// User-profile routes.
pub fn routes() -> axum::Router<Arc<crate::state::Idp>> {
    const P: &str = "/admin/realms/{realm}/users/profile";
    axum::Router::new()
        .route(P, get(get_config).put(put_config))
        .route(&format!("{P}/metadata"), get(metadata))
}

/// Keycloak 26's default profile, with the policy this realm behaves by.
fn default_config() -> Value {
    let perms = json!({"view": ["admin", "user"], "edit": ["admin", "user"]});
    let person = json!({"length": {"max": 255}, "person-name-prohibited-characters": {}});
    json!({
        "attributes": [
            {"name": "username", "displayName": "${username}", "validations": {"length": {"min": 3, "max": 255},
              "username-prohibited-characters": {}, "up-username-not-idn-homograph": {}},
             "permissions": perms, "multivalued": false},
            {"name": "email", "displayName": "${email}", "validations": {"email": {}, "length": {"max": 255}},
             "required": {"roles": ["user"]}, "permissions": perms, "multivalued": false},
            {"name": "firstName", "displayName": "${firstName}", "validations": person,
             "required": {"roles": ["user"]}, "permissions": perms, "multivalued": false},
            {"name": "lastName", "displayName": "${lastName}", "validations": person,
             "required": {"roles": ["user"]}, "permissions": perms, "multivalued": false},
        ],
        "groups": [{"name": "user-metadata", "displayHeader": "User metadata",
                    "displayDescription": "Attributes, which refer to user metadata"}],
        "unmanagedAttributePolicy": "ENABLED",
    })
}

/// The realm's profile: the stored one, or the default.
pub fn config(realm: &Realm) -> Value {
    realm
        .extra
        .get("components")
        .and_then(|c| c.get(PROVIDER))
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("config"))
        .and_then(|c| c.get(CONFIG_KEY))
        .and_then(|v| v.get(0))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(default_config)
}

/// Keeps `cfg` as the realm's profile, where a Keycloak export keeps it.
pub fn store(realm: &mut Realm, cfg: &Value) {
    let components = realm.extra.entry("components").or_insert_with(|| json!({}));
    if !components.is_object() {
        *components = json!({});
    }
    components[PROVIDER] = json!([{
        "providerId": "declarative-user-profile",
        "subComponents": {},
        "config": {CONFIG_KEY: [cfg.to_string()]},
    }]);
}

/// What the admin API may do with attributes the profile does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmanaged {
    /// Neither shown nor written.
    Hidden,
    /// Shown, not written.
    View,
    /// Shown and written.
    Edit,
}

/// The realm's policy for undeclared attributes, the declared names, and
/// the declared attributes an admin may not see.
pub struct Policy {
    pub unmanaged: Unmanaged,
    declared: Vec<String>,
    /// Declared attributes (`email`, `firstName`, `lastName` among them)
    /// whose `permissions` name `admin` neither to view nor to edit: every
    /// admin read leaves them out, as Keycloak's user profile does
    /// (CVE-2026-9088, CVE-2026-17059 were reads that did not), and admin
    /// writes keep their stored values.
    hidden: Vec<String>,
}

/// Whether an admin may see attribute `a`: its `permissions`, where it has
/// them, name `admin` to view or to edit (who may edit may view).
fn admin_may_view(a: &Value) -> bool {
    let Some(p) = a.get("permissions").filter(|p| p.is_object()) else {
        return true;
    };
    ["view", "edit"].iter().any(|k| {
        p[*k]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x.as_str() == Some("admin")))
    })
}

impl Policy {
    /// Reads the policy from the realm's profile.
    pub fn of(realm: &Realm) -> Policy {
        let cfg = config(realm);
        let unmanaged = match cfg["unmanagedAttributePolicy"].as_str() {
            Some("ENABLED" | "ADMIN_EDIT") => Unmanaged::Edit,
            Some("ADMIN_VIEW") => Unmanaged::View,
            _ => Unmanaged::Hidden,
        };
        let attrs = cfg["attributes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let declared = attrs
            .iter()
            .filter_map(|x| x["name"].as_str())
            .filter(|n| !BUILT_IN.contains(n))
            .map(str::to_owned)
            .collect();
        let hidden = attrs
            .iter()
            .filter(|a| !admin_may_view(a))
            .filter_map(|a| a["name"].as_str())
            .filter(|n| *n != "username")
            .map(str::to_owned)
            .collect();
        Policy {
            unmanaged,
            declared,
            hidden,
        }
    }

    /// Whether an admin may not see attribute (or user field) `name`.
    pub fn hidden_from_admin(&self, name: &str) -> bool {
        self.hidden.iter().any(|h| h == name)
    }

    fn declared(&self, name: &str) -> bool {
        self.declared.iter().any(|d| d == name)
    }

    /// The attributes an admin read shows.
    pub fn visible(&self, attrs: &Attributes) -> Attributes {
        attrs
            .iter()
            .filter(|(k, _)| {
                !self.hidden_from_admin(k)
                    && (self.unmanaged != Unmanaged::Hidden || self.declared(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The undeclared attributes, where the policy shows them.
    pub fn unmanaged(&self, attrs: &Attributes) -> Attributes {
        if self.unmanaged == Unmanaged::Hidden {
            return Attributes::default();
        }
        attrs
            .iter()
            .filter(|(k, _)| !self.declared(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The attributes to store after an admin write asked for `new`: the
    /// undeclared ones keep their stored values unless they are editable.
    /// Attributes hidden from admins keep their stored values too: an admin
    /// who never saw them cannot have meant to clear them.
    pub fn written(&self, new: Attributes, old: &Attributes) -> Attributes {
        let kept = |k: &str| {
            self.hidden_from_admin(k) || (self.unmanaged != Unmanaged::Edit && !self.declared(k))
        };
        let mut out: Attributes = new.into_iter().filter(|(k, _)| !kept(k)).collect();
        for (k, v) in old {
            if kept(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

/// `GET /admin/realms/{realm}/users/profile`.
async fn get_config(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    Json(config(&realm))
}

/// Checks an UPConfig as Keycloak does before it stores one.
fn validate(cfg: &Value) -> Result<(), String> {
    let attrs = cfg
        .get("attributes")
        .and_then(Value::as_array)
        .ok_or("attributes must be a list")?;
    let mut seen: Vec<&str> = vec![];
    for a in attrs {
        let name = a
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .ok_or("Attribute configuration without name")?;
        if seen.contains(&name) {
            return Err(format!(
                "Duplicit attribute configuration with name: {name}"
            ));
        }
        seen.push(name);
    }
    for required in ["username", "email"] {
        if !seen.contains(&required) {
            return Err(format!(
                "The attribute '{required}' can not be removed from the user profile"
            ));
        }
    }
    match cfg.get("unmanagedAttributePolicy") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(p)) if ["ENABLED", "ADMIN_VIEW", "ADMIN_EDIT"].contains(&p.as_str()) => {
            Ok(())
        }
        Some(_) => Err("Invalid unmanagedAttributePolicy".into()),
    }
}

/// `PUT /admin/realms/{realm}/users/profile`: stores the configuration and
/// answers it, as Keycloak does.
async fn put_config(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let mut cfg = super::json_body(&body)?;
    validate(&cfg).map_err(AdminError::bad_request)?;
    if let Some(o) = cfg.as_object_mut()
        && o.get("unmanagedAttributePolicy")
            .is_some_and(Value::is_null)
    {
        o.remove("unmanagedAttributePolicy");
    }
    store(&mut realm, &cfg);
    let ev = super::event(
        &realm,
        &caller,
        "UPDATE",
        "USER_PROFILE",
        "users/profile",
        Some(&cfg),
    );
    idp.store.update_realm(&realm, &[ev]).await?;
    Ok(Json(cfg))
}

/// `GET /admin/realms/{realm}/users/profile/metadata`: the profile as the
/// admin context sees it (UserProfileMetadata).
async fn metadata(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    Json(admin_metadata(&realm))
}

/// The realm's UserProfileMetadata for an admin: also what a user read
/// carries with `userProfileMetadata=true` (the admin console's form).
pub fn admin_metadata(realm: &Realm) -> Value {
    let cfg = config(realm);
    let attributes: Vec<Value> = cfg["attributes"]
        .as_array()
        .map(|a| a.iter().map(attribute_metadata).collect())
        .unwrap_or_default();
    json!({"attributes": attributes, "groups": cfg.get("groups").cloned().unwrap_or(json!([]))})
}

/// One attribute's metadata for an admin: required when the rule has no
/// role list or names `admin`; read-only unless `admin` may edit it.
fn attribute_metadata(a: &Value) -> Value {
    let has = |v: &Value, role: &str| {
        v.as_array()
            .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(role)))
    };
    let required = match a.get("required") {
        None | Some(Value::Null) => false,
        Some(r) => match r.get("roles") {
            None => true,
            Some(roles) => has(roles, "admin"),
        },
    };
    let read_only = !has(&a["permissions"]["edit"], "admin");
    let mut m = json!({
        "name": a["name"],
        "displayName": a.get("displayName").cloned().unwrap_or_else(|| a["name"].clone()),
        "required": required,
        "readOnly": read_only,
        "validators": a.get("validations").cloned().unwrap_or(json!({})),
        "multivalued": a.get("multivalued").and_then(Value::as_bool).unwrap_or(false),
    });
    for k in ["group", "annotations"] {
        if let Some(v) = a.get(k) {
            m[k] = v.clone();
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm_with(policy: Option<&str>) -> Realm {
        let mut r = Realm::new("r");
        let mut cfg = default_config();
        if let Some(a) = cfg["attributes"].as_array_mut() {
            a.push(json!({"name": "department"}));
        }
        match policy {
            Some(p) => cfg["unmanagedAttributePolicy"] = json!(p),
            None => {
                if let Some(o) = cfg.as_object_mut() {
                    o.remove("unmanagedAttributePolicy");
                }
            }
        }
        store(&mut r, &cfg);
        r
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    #[test]
    fn undeclared_attributes_follow_the_policy() {
        let old = attrs(&[("department", "sales"), ("color", "blue")]);
        let new = attrs(&[("department", "support"), ("color", "red")]);

        let hidden = Policy::of(&realm_with(None));
        assert_eq!(hidden.visible(&old), attrs(&[("department", "sales")]));
        assert_eq!(
            hidden.written(new.clone(), &old),
            attrs(&[("department", "support"), ("color", "blue")])
        );

        let view = Policy::of(&realm_with(Some("ADMIN_VIEW")));
        assert_eq!(view.visible(&old), old);
        assert_eq!(
            view.written(new.clone(), &old),
            attrs(&[("department", "support"), ("color", "blue")])
        );

        let edit = Policy::of(&realm_with(Some("ADMIN_EDIT")));
        assert_eq!(edit.written(new.clone(), &old), new);
        // No stored profile: everything is kept, as before profiles existed.
        let none = Policy::of(&Realm::new("r"));
        assert_eq!(none.unmanaged, Unmanaged::Edit);
    }

    #[test]
    fn invalid_configurations_are_refused() {
        assert!(validate(&default_config()).is_ok());
        assert!(validate(&json!({})).is_err());
        assert!(validate(&json!({"attributes": [{"name": "username"}]})).is_err());
        assert!(
            validate(
                &json!({"attributes": [{"name": "username"}, {"name": "email"}, {"name": "email"}]})
            )
            .is_err()
        );
        assert!(
            validate(
                &json!({"attributes": [{"name": "username"}, {"name": "email"}],
                             "unmanagedAttributePolicy": "SOMETIMES"})
            )
            .is_err()
        );
    }
}
