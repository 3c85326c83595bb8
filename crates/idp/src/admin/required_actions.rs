//! `/admin/realms/{realm}/authentication/required-actions...`: the realm's
//! registry of required actions (Keycloak's RequiredActionProviderRepresentation:
//! `alias`, `name`, `providerId`, `enabled`, `defaultAction`, `priority`,
//! `config`), kept where a Keycloak export keeps it (`requiredActions`).
//!
//! It decides, as in Keycloak, which of a user's required actions the
//! login asks for and in what order: a disabled or unregistered action is
//! skipped; enabled `defaultAction` ones are given to users the admin API
//! creates. The login has pages for `TERMS_AND_CONDITIONS`,
//! `UPDATE_PASSWORD` and `UPDATE_PROFILE`; an enabled action without a page
//! stops the login ([`crate::oidc::auth`]).

use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// Keycloak 26's required-action providers: (alias, name, enabled in a new
/// realm).
const PROVIDERS: [(&str, &str, bool); 11] = [
    ("CONFIGURE_TOTP", "Configure OTP", true),
    ("TERMS_AND_CONDITIONS", "Terms and Conditions", false),
    ("UPDATE_PASSWORD", "Update Password", true),
    ("UPDATE_PROFILE", "Update Profile", true),
    ("VERIFY_EMAIL", "Verify Email", true),
    ("delete_account", "Delete Account", false),
    ("webauthn-register", "Webauthn Register", true),
    (
        "webauthn-register-passwordless",
        "Webauthn Register Passwordless",
        true,
    ),
    ("VERIFY_PROFILE", "Verify Profile", true),
    ("delete_credential", "Delete Credential", true),
    ("update_user_locale", "Update User Locale", true),
];

fn entry(alias: &str, name: &str, enabled: bool, priority: i64) -> Value {
    json!({"alias": alias, "name": name, "providerId": alias, "enabled": enabled,
           "defaultAction": false, "priority": priority, "config": {}})
}

/// The realm's registry, by priority: the stored one, or Keycloak's
/// defaults for a new realm.
pub fn registry(realm: &Realm) -> Vec<Value> {
    let mut list: Vec<Value> = match realm.extra.get("requiredActions").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .filter(|v| v["alias"].is_string())
            .cloned()
            .collect(),
        None => PROVIDERS
            .iter()
            .enumerate()
            .map(|(i, (alias, name, on))| {
                let priority = if *alias == "update_user_locale" {
                    1000
                } else {
                    10 * (i as i64 + 1)
                };
                entry(alias, name, *on, priority)
            })
            .collect(),
    };
    list.sort_by_key(|v| v["priority"].as_i64().unwrap_or(i64::MAX));
    list
}

/// The enabled actions, in the order a login asks for them.
pub fn enabled(realm: &Realm) -> Vec<String> {
    registry(realm)
        .into_iter()
        .filter(|v| v["enabled"].as_bool() == Some(true))
        .filter_map(|v| v["alias"].as_str().map(str::to_owned))
        .collect()
}

/// The actions a user created through the admin API starts with.
pub fn defaults(realm: &Realm) -> Vec<String> {
    registry(realm)
        .into_iter()
        .filter(|v| {
            v["enabled"].as_bool() == Some(true) && v["defaultAction"].as_bool() == Some(true)
        })
        .filter_map(|v| v["alias"].as_str().map(str::to_owned))
        .collect()
}

/// Required-action routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const A: &str = "/admin/realms/{realm}/authentication";
    axum::Router::new()
        .route(&format!("{A}/required-actions"), get(list))
        .route(
            &format!("{A}/required-actions/{{alias}}"),
            get(one).put(update).delete(remove),
        )
        .route(
            &format!("{A}/required-actions/{{alias}}/raise-priority"),
            post(shift::<true>),
        )
        .route(
            &format!("{A}/required-actions/{{alias}}/lower-priority"),
            post(shift::<false>),
        )
        .route(
            &format!("{A}/unregistered-required-actions"),
            get(unregistered),
        )
        .route(&format!("{A}/register-required-action"), post(register))
        .route(
            &format!("{A}/required-actions/{{alias}}/config"),
            get(config).put(put_config).delete(remove_config),
        )
        .route(
            &format!("{A}/required-actions/{{alias}}/config-description"),
            get(config_description),
        )
}

/// The actions Keycloak lets configure: the age of authentication after
/// which an application-initiated action asks for the password again.
const CONFIGURABLE: [&str; 4] = [
    "UPDATE_PASSWORD",
    "CONFIGURE_TOTP",
    "UPDATE_EMAIL",
    "delete_credential",
];
/// Keycloak's one setting of those actions, and its default (seconds).
pub const MAX_AUTH_AGE: &str = "max_auth_age";
const MAX_AUTH_AGE_DEFAULT: i64 = 300;

/// `max_auth_age` of `alias` in the realm (seconds): how recent an SSO
/// session's authentication must be to stand in for the password in an
/// application-initiated action.
pub fn max_auth_age(realm: &Realm, alias: &str) -> i64 {
    registry(realm)
        .iter()
        .find(|v| v["alias"] == alias)
        .and_then(|v| {
            v["config"][MAX_AUTH_AGE]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(MAX_AUTH_AGE_DEFAULT)
}

fn configurable(alias: &str) -> bool {
    CONFIGURABLE.contains(&alias)
}

/// `GET .../required-actions/{alias}/config-description`.
async fn config_description(
    _: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    if !configurable(&alias) {
        return Err(AdminError::missing(
            "Could not find configurable RequiredAction provider",
        ));
    }
    Ok(Json(json!({"properties": [{
        "name": MAX_AUTH_AGE, "label": "Maximum Age of Authentication",
        "helpText": "Configures the duration in seconds this action can be used after the last authentication before the user is required to re-authenticate.",
        "type": "String", "defaultValue": MAX_AUTH_AGE_DEFAULT.to_string(),
        "options": [], "secret": false, "required": false, "readOnly": false,
    }]})))
}

/// The configurable action's registry entry (400 when the action takes no
/// configuration, 404 when the realm lacks it), as Keycloak answers.
fn config_entry<'a>(list: &'a mut [Value], alias: &str) -> Result<&'a mut Value, AdminError> {
    if !configurable(alias) {
        return Err(AdminError::bad_request(
            "RequiredAction is not configurable",
        ));
    }
    list.iter_mut()
        .find(|v| v["alias"] == alias)
        .ok_or_else(|| AdminError::missing("Could not find RequiredAction config"))
}

/// `GET .../required-actions/{alias}/config`: `{alias, config}`.
async fn config(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let mut list = registry(&realm);
    let e = config_entry(&mut list, &alias)?;
    let cfg = e
        .get("config")
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(Json(json!({"alias": alias, "config": cfg})))
}

/// `PUT .../required-actions/{alias}/config`: `{"config": {...}}`, empty
/// values dropped; `max_auth_age` must be a whole number of seconds.
async fn put_config(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = super::json_body(&body)?;
    let mut cfg = serde_json::Map::new();
    for (k, v) in rep["config"].as_object().into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if !text.is_empty() {
            cfg.insert(k.clone(), json!(text));
        }
    }
    if let Some(age) = cfg.get(MAX_AUTH_AGE).and_then(Value::as_str)
        && age.parse::<u32>().is_err()
    {
        return Err(AdminError::bad_request(
            "Invalid max_auth_age: a number of seconds",
        ));
    }
    let mut list = registry(&a.realm);
    config_entry(&mut list, &alias)?["config"] = Value::Object(cfg);
    let path = format!("authentication/required-actions/{alias}/config");
    save(&a, list, ("UPDATE", "REQUIRED_ACTION_CONFIG"), &path).await
}

/// `DELETE .../required-actions/{alias}/config`: back to the defaults.
async fn remove_config(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let mut list = registry(&a.realm);
    config_entry(&mut list, &alias)?["config"] = json!({});
    let path = format!("authentication/required-actions/{alias}/config");
    save(&a, list, ("DELETE", "REQUIRED_ACTION_CONFIG"), &path).await
}

fn position(list: &[Value], alias: &str) -> Result<usize, AdminError> {
    list.iter()
        .position(|v| v["alias"] == alias)
        .ok_or_else(|| AdminError::missing("Failed to find required action"))
}

/// Stores `list` (in priority order) as the realm's registry, with its
/// admin event (operation and resource type: a required action or its
/// config).
async fn save(
    a: &RealmAdmin,
    mut list: Vec<Value>,
    (op, rtype): (&str, &str),
    path: &str,
) -> Result<StatusCode, AdminError> {
    list.sort_by_key(|v| v["priority"].as_i64().unwrap_or(i64::MAX));
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("requiredActions".into(), Value::Array(list));
    let ev = event(&realm, &a.caller, op, rtype, path, None);
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    Json(Value::Array(registry(&realm)))
}

async fn one(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let list = registry(&realm);
    let i = position(&list, &alias)?;
    Ok(Json(list[i].clone()))
}

/// `PUT .../required-actions/{alias}`: `enabled`, `defaultAction` (only
/// for an enabled action), `priority`, `name` and `config`.
async fn update(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = super::json_body(&body)?;
    let mut list = registry(&a.realm);
    let i = position(&list, &alias)?;
    let cur = &mut list[i];
    for (k, check) in [
        ("enabled", Value::is_boolean as fn(&Value) -> bool),
        ("defaultAction", Value::is_boolean),
        ("priority", Value::is_i64),
        ("name", Value::is_string),
        ("config", Value::is_object),
    ] {
        match rep.get(k) {
            None | Some(Value::Null) => {}
            Some(v) if check(v) => cur[k] = v.clone(),
            Some(_) => return Err(AdminError::bad_request(format!("Invalid {k}"))),
        }
    }
    if cur["enabled"] != true {
        cur["defaultAction"] = json!(false);
    }
    save(
        &a,
        list,
        ("UPDATE", "REQUIRED_ACTION"),
        &format!("authentication/required-actions/{alias}"),
    )
    .await
}

async fn remove(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let mut list = registry(&a.realm);
    let i = position(&list, &alias)?;
    list.remove(i);
    save(
        &a,
        list,
        ("DELETE", "REQUIRED_ACTION"),
        &format!("authentication/required-actions/{alias}"),
    )
    .await
}

/// `raise-priority` (`EARLIER`) and `lower-priority`: swaps the action's
/// priority with its neighbour's.
async fn shift<const EARLIER: bool>(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let alias = alias.as_str();
    let mut list = registry(&a.realm);
    let i = position(&list, alias)?;
    let j = if EARLIER {
        i.checked_sub(1)
    } else {
        Some(i + 1)
    };
    if let Some(j) = j.filter(|j| *j < list.len()) {
        let (pi, pj) = (list[i]["priority"].clone(), list[j]["priority"].clone());
        if pi == pj {
            // Equal priorities: make the order explicit first.
            for (n, v) in list.iter_mut().enumerate() {
                v["priority"] = json!(10 * (n as i64 + 1));
            }
        }
        let (pi, pj) = (list[i]["priority"].clone(), list[j]["priority"].clone());
        list[i]["priority"] = pj;
        list[j]["priority"] = pi;
    }
    let dir = if EARLIER { "raise" } else { "lower" };
    save(
        &a,
        list,
        ("UPDATE", "REQUIRED_ACTION"),
        &format!("authentication/required-actions/{alias}/{dir}-priority"),
    )
    .await
}

/// Known providers the realm has not registered.
async fn unregistered(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    let list = registry(&realm);
    Json(json!(
        PROVIDERS
            .iter()
            .filter(|(alias, ..)| !list.iter().any(|v| v["providerId"] == *alias))
            .map(|(alias, name, _)| json!({"providerId": alias, "name": name}))
            .collect::<Vec<_>>()
    ))
}

/// `POST .../register-required-action` `{providerId, name}`: registers a
/// known provider, enabled, after the others.
async fn register(mut a: RealmAdmin, body: axum::body::Bytes) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = super::json_body(&body)?;
    let id = rep["providerId"]
        .as_str()
        .ok_or_else(|| AdminError::bad_request("providerId is required"))?;
    let Some((alias, name, _)) = PROVIDERS.iter().find(|(p, ..)| *p == id) else {
        return Err(AdminError::bad_request(format!("Unknown provider {id}")));
    };
    let mut list = registry(&a.realm);
    if list.iter().any(|v| v["alias"] == *alias) {
        return Err(AdminError::conflict("Required action already registered"));
    }
    let last = list
        .iter()
        .filter_map(|v| v["priority"].as_i64())
        .filter(|p| *p < 1000)
        .max()
        .unwrap_or(0);
    let name = rep["name"].as_str().unwrap_or(name);
    list.push(entry(alias, name, true, last + 10));
    save(
        &a,
        list,
        ("CREATE", "REQUIRED_ACTION"),
        "authentication/register-required-action",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_keycloak_and_the_stored_registry_wins() {
        let mut r = Realm::new("r");
        let on = enabled(&r);
        assert_eq!(on[0], "CONFIGURE_TOTP");
        assert!(
            !on.contains(&"TERMS_AND_CONDITIONS".to_owned()),
            "off in a new realm"
        );
        assert!(on.contains(&"UPDATE_PASSWORD".to_owned()));
        assert!(defaults(&r).is_empty());
        r.extra.insert(
            "requiredActions".into(),
            json!([
                {"alias": "UPDATE_PROFILE", "enabled": true, "defaultAction": true, "priority": 5},
                {"alias": "TERMS_AND_CONDITIONS", "enabled": true, "defaultAction": false, "priority": 1},
            ]),
        );
        assert_eq!(enabled(&r), ["TERMS_AND_CONDITIONS", "UPDATE_PROFILE"]);
        assert_eq!(defaults(&r), ["UPDATE_PROFILE"]);
    }
}
