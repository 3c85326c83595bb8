//! `/admin/realms/{realm}/authentication/flows...`: the realm's
//! authentication flows as Keycloak's admin API shows them, and the one
//! change Gatehouse's login follows, the requirement of an execution
//! (how Keycloak's admin console and scripts make OTP mandatory or turn it
//! off). What the flows mean for a login, and which ones Gatehouse
//! refuses, is in [`crate::flows`]. Creating, copying and deleting flows
//! and adding executions are not offered: Gatehouse's login steps are
//! fixed.

use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::flows::{by_alias, derived_id, executions, flows, is_subflow};
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// Flow routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const F: &str = "/admin/realms/{realm}/authentication/flows";
    axum::Router::new()
        .route(F, get(list))
        .route(&format!("{F}/{{id}}"), get(one))
        .route(
            &format!("{F}/{{id}}/executions"),
            get(list_executions).put(update_execution),
        )
        .route(
            "/admin/realms/{realm}/authentication/client-authenticator-providers",
            get(client_authenticators),
        )
}

/// `GET .../authentication/client-authenticator-providers`: the ways a
/// client can authenticate at the token endpoint that Gatehouse implements
/// (Keycloak also lists `client-x509`, which Gatehouse does not do yet).
async fn client_authenticators(_: RealmAdmin) -> Json<Value> {
    Json(json!([
        {"id": "client-secret", "displayName": "Client Id and Secret",
         "description": "Validates client based on 'client_id' and 'client_secret' sent either in request parameters or in 'Authorization: Basic' header"},
        {"id": "client-jwt", "displayName": "Signed Jwt",
         "description": "Validates client based on signed JWT issued by client and signed with the Client private key"},
        {"id": "client-secret-jwt", "displayName": "Signed Jwt with Client Secret",
         "description": "Validates client based on signed JWT issued by client and signed with the Client Secret"},
    ]))
}

/// A flow with its id (a Keycloak export has them; Keycloak's defaults get
/// derived ones).
fn with_id(realm: &Realm, f: &Value) -> Value {
    let mut f = f.clone();
    if !f["id"].is_string() {
        let alias = f["alias"].as_str().unwrap_or("").to_owned();
        f["id"] = json!(derived_id(&[&realm.id, "flow", &alias]));
    }
    f
}

/// All the realm's flows, top-level and subflows, each with its id: what
/// an export carries.
pub fn all_with_ids(realm: &Realm) -> Vec<Value> {
    flows(realm).iter().map(|f| with_id(realm, f)).collect()
}

/// `GET .../authentication/flows`: the top-level flows.
async fn list(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    let top: Vec<Value> = flows(&realm)
        .iter()
        .filter(|f| f["topLevel"].as_bool() == Some(true))
        .map(|f| with_id(&realm, f))
        .collect();
    Json(json!(top))
}

/// `GET .../authentication/flows/{id}`.
async fn one(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    flows(&realm)
        .iter()
        .map(|f| with_id(&realm, f))
        .find(|f| f["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| AdminError::missing("Could not find flow with id"))
}

/// One row of Keycloak's flattened execution list, and where its
/// execution is stored (flow alias, position) for an update.
struct Row {
    info: Value,
    flow: String,
    pos: usize,
}

/// Keycloak's display names of the providers a Keycloak realm's flows name.
fn display_name(provider: &str) -> &str {
    match provider {
        "auth-cookie" => "Cookie",
        "auth-spnego" => "Kerberos",
        "identity-provider-redirector" => "Identity Provider Redirector",
        "auth-username-password-form" => "Username Password Form",
        "auth-otp-form" => "OTP Form",
        "conditional-user-configured" => "Condition - user configured",
        "webauthn-authenticator" => "WebAuthn Authenticator",
        "auth-recovery-authn-code-form" => "Recovery Authentication Code Form",
        "direct-grant-validate-username" => "Username Validation",
        "direct-grant-validate-password" => "Password",
        "direct-grant-validate-otp" => "OTP",
        "organization" => "Organization Identity-First Login",
        other => other,
    }
}

fn rows(realm: &Realm, all: &[Value], alias: &str, level: usize, out: &mut Vec<Row>) {
    let Some(flow) = by_alias(all, alias) else {
        return;
    };
    if level > 8 {
        return;
    }
    for (index, (pos, e)) in executions(flow).into_iter().enumerate() {
        let id = derived_id(&[&realm.id, "execution", alias, &pos.to_string()]);
        let common = json!({"id": id, "requirement": e["requirement"], "level": level,
                            "index": index, "priority": e["priority"], "configurable": false});
        let mut info = common;
        if is_subflow(e) {
            let sub_alias = e["flowAlias"].as_str().unwrap_or("");
            let sub = by_alias(all, sub_alias).map(|s| with_id(realm, s));
            info["displayName"] = json!(sub_alias);
            info["authenticationFlow"] = json!(true);
            info["description"] = sub
                .as_ref()
                .map_or(Value::Null, |s| s["description"].clone());
            info["flowId"] = sub.as_ref().map_or(Value::Null, |s| s["id"].clone());
            info["requirementChoices"] =
                json!(["REQUIRED", "ALTERNATIVE", "DISABLED", "CONDITIONAL"]);
            out.push(Row {
                info,
                flow: alias.to_owned(),
                pos,
            });
            rows(realm, all, sub_alias, level + 1, out);
        } else {
            let provider = e["authenticator"].as_str().unwrap_or("");
            info["displayName"] = json!(display_name(provider));
            info["providerId"] = json!(provider);
            info["requirementChoices"] = if provider.starts_with("conditional-") {
                json!(["REQUIRED", "DISABLED"])
            } else {
                json!(["REQUIRED", "ALTERNATIVE", "DISABLED"])
            };
            out.push(Row {
                info,
                flow: alias.to_owned(),
                pos,
            });
        }
    }
}

fn flattened(realm: &Realm, all: &[Value], alias: &str) -> Result<Vec<Row>, AdminError> {
    if by_alias(all, alias).is_none() {
        return Err(AdminError::not_found("Flow"));
    }
    let mut out = vec![];
    rows(realm, all, alias, 0, &mut out);
    Ok(out)
}

/// `GET .../authentication/flows/{alias}/executions`.
async fn list_executions(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let all = flows(&realm);
    let infos: Vec<Value> = flattened(&realm, &all, &alias)?
        .into_iter()
        .map(|r| r.info)
        .collect();
    Ok(Json(json!(infos)))
}

/// `PUT .../authentication/flows/{alias}/executions`: sets the requirement
/// of the execution `id` names. The realm's bound flows must still be ones
/// Gatehouse runs (400 with the reason otherwise, nothing written).
async fn update_execution(
    a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let mut all = flows(&a.realm).into_owned();
    let rows = flattened(&a.realm, &all, &alias)?;
    let row = rows
        .iter()
        .find(|r| rep["id"].is_string() && r.info["id"] == rep["id"])
        .ok_or_else(|| AdminError::missing("Illegal execution"))?;
    let requirement = rep["requirement"]
        .as_str()
        .ok_or_else(|| AdminError::bad_request("requirement is missing"))?;
    let allowed = row.info["requirementChoices"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x == requirement));
    if !allowed {
        return Err(AdminError::bad_request(format!(
            "Requirement {requirement} is not allowed for this execution"
        )));
    }
    let Some(stored) = all
        .iter_mut()
        .find(|f| f["alias"].as_str() == Some(row.flow.as_str()))
        .and_then(|f| f["authenticationExecutions"].get_mut(row.pos))
    else {
        return Err(AdminError::missing("Illegal execution"));
    };
    stored["requirement"] = json!(requirement);
    // Stored with their ids, so the ids shown so far stay theirs.
    let all = all.iter().map(|f| with_id(&a.realm, f)).collect();
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("authenticationFlows".into(), Value::Array(all));
    crate::flows::check(&realm).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let path = format!("authentication/flows/{alias}/executions");
    let ev = event(
        &realm,
        &a.caller,
        "UPDATE",
        "AUTH_EXECUTION",
        &path,
        Some(&rep),
    );
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}
