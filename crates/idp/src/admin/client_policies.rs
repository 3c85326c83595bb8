//! `/admin/realms/{realm}/client-policies/{policies,profiles}`: Keycloak's
//! client policies (conditions that pick clients, profiles whose executors
//! enforce rules on them, such as FAPI's), kept where a Keycloak export
//! keeps them (`clientPolicies`, `clientProfiles`).
//!
//! Gatehouse runs no executors. So it stores what has no effect in
//! Keycloak either (profiles without executors, policies that name only
//! such profiles) and refuses the rest, on this API and on import, rather
//! than keep a FAPI policy that would look enforced and is not. It has no
//! global (built-in) profiles or policies.

use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Client-policy routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/client-policies";
    axum::Router::new()
        .route(&format!("{P}/policies"), get(policies).put(put_policies))
        .route(&format!("{P}/profiles"), get(profiles).put(put_profiles))
}

fn list<'a>(realm: &'a Realm, key: &str, field: &str) -> &'a [Value] {
    realm
        .extra
        .get(key)
        .and_then(|v| v.get(field))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Checks the realm's client profiles and policies: every profile without
/// executors, every policy naming only the realm's profiles.
pub fn check(realm: &Realm) -> Result<(), String> {
    let profiles = list(realm, "clientProfiles", "profiles");
    let mut names = vec![];
    for p in profiles {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or("a client profile needs a name")?;
        if p["executors"].as_array().is_some_and(|e| !e.is_empty()) {
            return Err(format!(
                "client profile \"{name}\" has executors; Gatehouse runs no client-policy executors"
            ));
        }
        names.push(name);
    }
    for p in list(realm, "clientPolicies", "policies") {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or("a client policy needs a name")?;
        for profile in p["profiles"].as_array().into_iter().flatten() {
            let profile = profile.as_str().unwrap_or("");
            if !names.contains(&profile) {
                return Err(format!(
                    "client policy \"{name}\" names profile \"{profile}\", which this realm does not have (Gatehouse has no global profiles)"
                ));
            }
        }
    }
    Ok(())
}

/// `GET .../client-policies/policies[?include-global-policies=true]`.
async fn policies(
    RealmAdmin { realm, .. }: RealmAdmin,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut v = json!({"policies": list(&realm, "clientPolicies", "policies")});
    if q.get("include-global-policies").map(String::as_str) == Some("true") {
        v["globalPolicies"] = json!([]);
    }
    Json(v)
}

/// `GET .../client-policies/profiles[?include-global-profiles=true]`.
async fn profiles(
    RealmAdmin { realm, .. }: RealmAdmin,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut v = json!({"profiles": list(&realm, "clientProfiles", "profiles")});
    if q.get("include-global-profiles").map(String::as_str) == Some("true") {
        v["globalProfiles"] = json!([]);
    }
    Json(v)
}

/// Replaces `key`'s `field` list with the body's, if the result passes
/// [`check`] (400 with the reason otherwise, nothing written).
async fn replace(
    mut a: RealmAdmin,
    body: Bytes,
    key: &str,
    field: &str,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let items = rep[field]
        .as_array()
        .ok_or_else(|| AdminError::bad_request(format!("{field} must be a list")))?;
    let mut realm = a.realm.clone();
    realm.extra.insert(key.into(), json!({ field: items }));
    check(&realm).map_err(AdminError::bad_request)?;
    let path = format!("client-policies/{field}");
    let ev = event(&realm, &a.caller, "UPDATE", "REALM", &path, Some(&rep));
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_policies(a: RealmAdmin, body: Bytes) -> Result<StatusCode, AdminError> {
    replace(a, body, "clientPolicies", "policies").await
}

async fn put_profiles(a: RealmAdmin, body: Bytes) -> Result<StatusCode, AdminError> {
    replace(a, body, "clientProfiles", "profiles").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(profiles: Value, policies: Value) -> Realm {
        let mut r = Realm::new("t");
        r.extra
            .insert("clientProfiles".into(), json!({ "profiles": profiles }));
        r.extra
            .insert("clientPolicies".into(), json!({ "policies": policies }));
        r
    }

    #[test]
    fn inert_policies_pass_and_enforcing_ones_are_refused() {
        assert!(check(&Realm::new("t")).is_ok());
        let ok = realm(
            json!([{"name": "test", "executors": []}]),
            json!([{"name": "p", "enabled": true, "profiles": ["test"], "conditions": []}]),
        );
        assert!(check(&ok).is_ok());
        let fapi = realm(
            json!([]),
            json!([{"name": "p", "profiles": ["fapi-1-advanced"]}]),
        );
        assert!(
            check(&fapi)
                .expect_err("global")
                .contains("fapi-1-advanced")
        );
        let exec = realm(
            json!([{"name": "pkce", "executors": [{"executor": "pkce-enforcer", "configuration": {}}]}]),
            json!([]),
        );
        assert!(check(&exec).expect_err("executors").contains("pkce"));
    }
}
