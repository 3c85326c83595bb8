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
use axum::routing::{get, post};
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// Flow routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const F: &str = "/admin/realms/{realm}/authentication/flows";
    axum::Router::new()
        .route(F, get(list).post(create))
        .route(
            &format!("{F}/{{id}}"),
            get(one).put(update_flow).delete(remove),
        )
        .route(&format!("{F}/{{id}}/copy"), post(copy))
        .route(
            &format!("{F}/{{id}}/executions/execution"),
            post(add_execution),
        )
        .route(&format!("{F}/{{id}}/executions/flow"), post(add_subflow))
        .route(
            "/admin/realms/{realm}/authentication/executions/{id}",
            get(one_execution).delete(remove_execution),
        )
        .route(
            "/admin/realms/{realm}/authentication/executions/{id}/raise-priority",
            post(move_execution::<true>),
        )
        .route(
            "/admin/realms/{realm}/authentication/executions/{id}/lower-priority",
            post(move_execution::<false>),
        )
        .route(
            &format!("{F}/{{id}}/executions"),
            get(list_executions).put(update_execution),
        )
        .route(
            "/admin/realms/{realm}/authentication/client-authenticator-providers",
            get(client_authenticators),
        )
        .route(
            "/admin/realms/{realm}/authentication/authenticator-providers",
            get(authenticator_providers),
        )
        .route(
            "/admin/realms/{realm}/authentication/form-providers",
            get(no_form_providers),
        )
        .route(
            "/admin/realms/{realm}/authentication/form-action-providers",
            get(no_form_providers),
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

/// An execution's id: the one stored with it, else one derived from its
/// flow and position (Keycloak's default flows and exports carry none).
fn execution_id(realm: &Realm, alias: &str, pos: usize, e: &Value) -> String {
    e["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| derived_id(&[&realm.id, "execution", alias, &pos.to_string()]))
}

/// The realm's flows for an edit: each flow and execution with the id it
/// shows now, so that ids stay theirs when positions and aliases change.
pub(super) fn editable(realm: &Realm) -> Vec<Value> {
    flows(realm)
        .iter()
        .map(|f| {
            let mut f = with_id(realm, f);
            let alias = f["alias"].as_str().unwrap_or_default().to_owned();
            for (pos, e) in f["authenticationExecutions"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .enumerate()
            {
                e["id"] = json!(execution_id(realm, &alias, pos, e));
            }
            f
        })
        .collect()
}

/// Where the execution `id` is: its flow's index in `all` and its position.
pub(super) fn find_execution(all: &[Value], id: &str) -> Option<(usize, usize)> {
    all.iter().enumerate().find_map(|(fi, f)| {
        f["authenticationExecutions"]
            .as_array()?
            .iter()
            .position(|e| e["id"] == id)
            .map(|pos| (fi, pos))
    })
}

/// All the realm's flows, top-level and subflows, each with its id: what
/// an export carries.
pub fn all_with_ids(realm: &Realm) -> Vec<Value> {
    flows(realm)
        .iter()
        .map(|f| {
            let mut f = with_id(realm, f);
            // Keycloak's export has no execution ids (its import does not
            // read them); Gatehouse's stable ones stay behind.
            for e in f["authenticationExecutions"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if let Some(o) = e.as_object_mut() {
                    o.remove("id");
                }
            }
            f
        })
        .collect()
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

/// Stores `all` as the realm's flows (each with its id, so ids shown so
/// far stay theirs) after checking that the bound flows, and those clients
/// run instead, still run, with the admin event (operation, resource type,
/// path, representation).
pub(super) async fn store_flows(
    a: &RealmAdmin,
    all: Vec<Value>,
    (op, rtype, path, rep): (&str, &str, &str, Option<&Value>),
) -> Result<(), AdminError> {
    let all = all.iter().map(|f| with_id(&a.realm, f)).collect();
    let mut realm = a.realm.clone();
    realm
        .extra
        .insert("authenticationFlows".into(), Value::Array(all));
    crate::flows::check(&realm).map_err(|e| AdminError::bad_request(e.to_string()))?;
    // So must the flows clients run instead of the realm's.
    for c in a.idp.store.clients(&realm.id).await? {
        crate::flows::check_client(&realm, &c)
            .map_err(|e| AdminError::bad_request(format!("client {}: {e}", c.client_id)))?;
    }
    let ev = event(&realm, &a.caller, op, rtype, path, rep);
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(())
}

/// A required name (`alias`, `newName`) of a representation: trimmed, 1
/// to 255 characters; `missing` otherwise.
pub(super) fn name_field(
    rep: &Value,
    key: &str,
    missing: AdminError,
) -> Result<String, AdminError> {
    rep[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_owned)
        .ok_or(missing)
}

/// The aliases of the subflows flow `alias` runs.
fn subflow_aliases(all: &[Value], alias: &str) -> Vec<String> {
    by_alias(all, alias)
        .and_then(|f| f["authenticationExecutions"].as_array())
        .into_iter()
        .flatten()
        .filter(|e| is_subflow(e))
        .filter_map(|e| e["flowAlias"].as_str().map(str::to_owned))
        .collect()
}

/// Whether a flow outside `doomed` runs subflow `alias`.
fn run_elsewhere(all: &[Value], alias: &str, doomed: &[String]) -> bool {
    all.iter().any(|f| {
        !doomed.iter().any(|d| f["alias"] == d.as_str())
            && f["authenticationExecutions"]
                .as_array()
                .is_some_and(|es| es.iter().any(|e| e["flowAlias"] == alias))
    })
}

/// Removes flow `root`, unless another flow still runs it, and the
/// subflows under it that no remaining flow runs.
fn drop_flow_tree(all: &mut Vec<Value>, root: &str) {
    if run_elsewhere(all, root, &[]) {
        return;
    }
    let mut doomed = vec![root.to_owned()];
    let mut i = 0;
    while i < doomed.len() && i < 64 {
        for sub in subflow_aliases(all, &doomed[i]) {
            if !run_elsewhere(all, &sub, &doomed) && !doomed.contains(&sub) {
                doomed.push(sub);
            }
        }
        i += 1;
    }
    all.retain(|f| !doomed.iter().any(|d| f["alias"] == d.as_str()));
}

/// The realm's flows for an edit of execution `id`, with where it is
/// (flow index, position); `refusal` when its flow is built in (Keycloak
/// lets those change requirements only).
fn editable_execution(
    realm: &Realm,
    id: &str,
    refusal: &str,
) -> Result<(Vec<Value>, usize, usize), AdminError> {
    let all = editable(realm);
    let (fi, pos) =
        find_execution(&all, id).ok_or_else(|| AdminError::missing("Illegal execution"))?;
    if all[fi]["builtIn"].as_bool() == Some(true) {
        return Err(AdminError::bad_request(refusal));
    }
    Ok((all, fi, pos))
}

/// Flow aliases a realm may bind (Keycloak's realm flow bindings).
const BINDINGS: [&str; 7] = [
    "browserFlow",
    "directGrantFlow",
    "registrationFlow",
    "resetCredentialsFlow",
    "clientAuthenticationFlow",
    "dockerAuthenticationFlow",
    "firstBrokerLoginFlow",
];

/// `POST .../authentication/flows`: a new, empty top-level flow (201 with
/// its Location; 409 when the alias is taken). It runs nothing until it
/// has steps and is bound.
async fn create(mut a: RealmAdmin, body: Bytes) -> Result<axum::response::Response, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let alias = name_field(
        &rep,
        "alias",
        AdminError::bad_request("Flow alias is missing"),
    )?;
    let alias = alias.as_str();
    let provider = rep["providerId"].as_str().unwrap_or("basic-flow");
    if !matches!(provider, "basic-flow" | "client-flow" | "form-flow") {
        return Err(AdminError::bad_request(format!(
            "Unknown flow provider {provider}"
        )));
    }
    let mut all = editable(&a.realm);
    if by_alias(&all, alias).is_some() {
        return Err(AdminError::conflict(format!("Flow {alias} already exists")));
    }
    let flow = json!({"alias": alias, "description": rep["description"].as_str().unwrap_or(""),
        "providerId": provider, "topLevel": rep["topLevel"].as_bool().unwrap_or(true),
        "builtIn": false, "authenticationExecutions": []});
    let flow = with_id(&a.realm, &flow);
    // The created flow's path, for the admin event and Location.
    let path = format!(
        "authentication/flows/{}",
        flow["id"].as_str().unwrap_or_default()
    );
    all.push(flow);
    store_flows(&a, all, ("CREATE", "AUTH_FLOW", &path, Some(&rep))).await?;
    Ok(super::created(&a.idp, &a.realm.name, &path))
}

/// `POST .../authentication/flows/{alias}/copy` with `{"newName"}`: a copy
/// of the flow and, recursively, of its subflows (renamed `"{newName}
/// {subflow alias}"`, as Keycloak names them), none of them built in.
async fn copy(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let new_name = name_field(
        &rep,
        "newName",
        AdminError::bad_request("newName is missing"),
    )?;
    let new_name = new_name.as_str();
    let mut all = editable(&a.realm);
    if by_alias(&all, new_name).is_some() {
        return Err(AdminError::conflict("New flow alias name already exists"));
    }
    let mut copies = vec![];
    copy_into(&all, &alias, new_name, new_name, &mut copies, 0)?;
    if copies
        .iter()
        .any(|c| by_alias(&all, c["alias"].as_str().unwrap_or_default()).is_some())
    {
        return Err(AdminError::conflict("New flow alias name already exists"));
    }
    all.extend(copies);
    let path = format!("authentication/flows/{alias}/copy");
    store_flows(&a, all, ("CREATE", "AUTH_FLOW", &path, Some(&rep))).await?;
    Ok(StatusCode::CREATED)
}

/// Copies flow `from` as `to` into `out`, its subflows as
/// `"{prefix} {alias}"`.
fn copy_into(
    all: &[Value],
    from: &str,
    to: &str,
    prefix: &str,
    out: &mut Vec<Value>,
    depth: usize,
) -> Result<(), AdminError> {
    let flow = by_alias(all, from).ok_or_else(|| AdminError::not_found("Flow"))?;
    if depth > 8 {
        return Err(AdminError::bad_request("Flows nest too deep"));
    }
    let mut copy = flow.clone();
    if let Some(o) = copy.as_object_mut() {
        o.remove("id");
        o.insert("alias".into(), json!(to));
        o.insert("builtIn".into(), json!(false));
        if depth > 0 {
            o.insert("topLevel".into(), json!(false));
        }
    }
    let mut subflows = vec![];
    if let Some(execs) = copy["authenticationExecutions"].as_array_mut() {
        // The copies are new executions with ids of their own.
        for e in execs.iter_mut() {
            if let Some(o) = e.as_object_mut() {
                o.remove("id");
            }
        }
        for e in execs.iter_mut().filter(|e| is_subflow(e)) {
            let sub = e["flowAlias"].as_str().unwrap_or_default().to_owned();
            let renamed = format!("{prefix} {sub}");
            e["flowAlias"] = json!(renamed);
            subflows.push((sub, renamed));
        }
    }
    out.push(copy);
    for (sub, renamed) in subflows {
        copy_into(all, &sub, &renamed, prefix, out, depth + 1)?;
    }
    Ok(())
}

/// `PUT .../authentication/flows/{id}`: a flow's alias and description
/// (202 with the flow, as Keycloak answers). A new alias is carried to the
/// flows that run it and to the realm's bindings, so nothing stops
/// pointing at it.
async fn update_flow(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let new_alias = name_field(
        &rep,
        "alias",
        AdminError::conflict("Failed to update flow with empty alias name"),
    )?
    .to_owned();
    let mut all = editable(&a.realm);
    let pos = all
        .iter()
        .position(|f| f["id"] == id.as_str())
        .ok_or_else(|| AdminError::missing("Illegal execution"))?;
    let old_alias = all[pos]["alias"].as_str().unwrap_or_default().to_owned();
    let mut realm = a.realm.clone();
    if new_alias != old_alias {
        if by_alias(&all, &new_alias).is_some() {
            return Err(AdminError::conflict("Flow alias name already exists"));
        }
        for f in all.iter_mut() {
            for e in f["authenticationExecutions"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if e["flowAlias"] == old_alias.as_str() {
                    e["flowAlias"] = json!(new_alias);
                }
            }
        }
        for b in BINDINGS {
            if realm.extra.get(b).and_then(Value::as_str) == Some(old_alias.as_str()) {
                realm.extra.insert(b.into(), json!(new_alias));
            }
        }
        all[pos]["alias"] = json!(new_alias);
    }
    if rep.get("description").is_some() {
        all[pos]["description"] = json!(rep["description"].as_str().unwrap_or(""));
    }
    let flow = all[pos].clone();
    let a = RealmAdmin { realm, ..a };
    store_flows(
        &a,
        all,
        (
            "UPDATE",
            "AUTH_FLOW",
            &format!("authentication/flows/{id}"),
            Some(&rep),
        ),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(flow)))
}

/// `DELETE .../authentication/flows/{id}`: a flow that is not built in and
/// not bound, with the subflows it alone uses.
async fn remove(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let mut all = editable(&a.realm);
    let flow = all
        .iter()
        .find(|f| f["id"] == id.as_str())
        .cloned()
        .ok_or_else(|| AdminError::missing("Could not find flow with id"))?;
    if flow["builtIn"].as_bool() == Some(true) {
        return Err(AdminError::bad_request("Can't delete built in flow"));
    }
    let alias = flow["alias"].as_str().unwrap_or_default().to_owned();
    let bound = BINDINGS
        .iter()
        .any(|b| a.realm.extra.get(*b).and_then(Value::as_str) == Some(alias.as_str()));
    let overridden = a.idp.store.clients(&a.realm.id).await?.iter().any(|c| {
        c.extra
            .get("authenticationFlowBindingOverrides")
            .and_then(Value::as_object)
            .is_some_and(|o| o.values().any(|v| v == &flow["id"]))
    });
    if bound || overridden {
        return Err(AdminError::conflict(
            "Cannot delete flow, it is used by the realm or a client",
        ));
    }
    // The flow and the subflows under it that no other flow runs.
    drop_flow_tree(&mut all, &alias);
    let path = format!("authentication/flows/{id}");
    store_flows(&a, all, ("DELETE", "AUTH_FLOW", &path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The next priority in a flow: after its last execution, by 10.
fn next_priority(flow: &Value) -> i64 {
    flow["authenticationExecutions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["priority"].as_i64())
        .max()
        .map_or(10, |p| p + 10)
}

/// The index in `all` of the flow `alias` names (404 in Keycloak's words).
fn flow_index(all: &[Value], alias: &str) -> Result<usize, AdminError> {
    all.iter()
        .position(|f| f["alias"] == alias)
        .ok_or_else(|| AdminError::missing("Flow not found"))
}

/// Appends `execution` to flow `fi` and stores, with `what` as the admin
/// event's resource type; 201 with the execution's Location.
async fn append(
    a: &RealmAdmin,
    mut all: Vec<Value>,
    fi: usize,
    mut execution: Value,
    what: &str,
    rep: &Value,
) -> Result<axum::response::Response, AdminError> {
    if all[fi]["builtIn"].as_bool() == Some(true) {
        return Err(AdminError::bad_request(
            "It is illegal to add execution to a built in flow",
        ));
    }
    let id = gatehouse_core::id::uuid();
    execution["id"] = json!(id);
    execution["priority"] = json!(next_priority(&all[fi]));
    if let Some(list) = all[fi]["authenticationExecutions"].as_array_mut() {
        list.push(execution);
    } else {
        all[fi]["authenticationExecutions"] = json!([execution]);
    }
    let alias = all[fi]["alias"].as_str().unwrap_or_default().to_owned();
    let path = format!("authentication/flows/{alias}/executions/{what}");
    store_flows(a, all, ("CREATE", "AUTH_EXECUTION", &path, Some(rep))).await?;
    Ok(super::created(
        &a.idp,
        &a.realm.name,
        &format!("authentication/executions/{id}"),
    ))
}

/// `POST .../flows/{alias}/executions/execution` with `{"provider"}`: a
/// step appended DISABLED, as Keycloak adds it. Only the authenticators
/// Keycloak's flows name (`display_name`); whether a bound flow can run
/// the result is checked as for any change.
async fn add_execution(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let provider = rep["provider"].as_str().unwrap_or_default();
    if known_authenticator(provider).is_none() {
        return Err(AdminError::bad_request(format!(
            "No authentication provider found for id: {provider}"
        )));
    }
    let all = editable(&a.realm);
    let fi = flow_index(&all, &alias)?;
    let step = json!({"authenticator": provider, "authenticatorFlow": false,
        "requirement": "DISABLED", "userSetupAllowed": false});
    append(&a, all, fi, step, "execution", &rep).await
}

/// `POST .../flows/{alias}/executions/flow` with `{"alias", "type",
/// "description"}`: a new, empty subflow appended DISABLED.
async fn add_subflow(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let sub = name_field(
        &rep,
        "alias",
        AdminError::bad_request("Flow alias is missing"),
    )?
    .to_owned();
    let kind = rep["type"].as_str().unwrap_or("basic-flow");
    if !matches!(kind, "basic-flow" | "form-flow") {
        return Err(AdminError::bad_request(format!("Unknown flow type {kind}")));
    }
    let mut all = editable(&a.realm);
    let fi = flow_index(&all, &alias)?;
    if by_alias(&all, &sub).is_some() {
        return Err(AdminError::conflict("New flow alias name already exists"));
    }
    all.push(
        json!({"alias": sub, "description": rep["description"].as_str().unwrap_or(""),
        "providerId": kind, "topLevel": false, "builtIn": false, "authenticationExecutions": []}),
    );
    let step = json!({"flowAlias": sub, "authenticatorFlow": true, "autheticatorFlow": true,
        "requirement": "DISABLED", "userSetupAllowed": false});
    append(&a, all, fi, step, "flow", &rep).await
}

/// `GET .../authentication/executions/{id}` (AuthenticationExecutionRepresentation).
async fn one_execution(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let all = editable(&realm);
    let (fi, pos) =
        find_execution(&all, &id).ok_or_else(|| AdminError::missing("Illegal execution"))?;
    let e = &all[fi]["authenticationExecutions"][pos];
    let mut rep = json!({"id": id, "requirement": e["requirement"], "priority": e["priority"],
        "authenticatorFlow": is_subflow(e), "parentFlow": all[fi]["id"]});
    if is_subflow(e) {
        let sub = by_alias(&all, e["flowAlias"].as_str().unwrap_or_default());
        rep["flowId"] = sub.map_or(Value::Null, |s| s["id"].clone());
    } else {
        rep["authenticator"] = e["authenticator"].clone();
    }
    Ok(Json(rep))
}

/// `DELETE .../authentication/executions/{id}`: the step, or the subflow
/// it runs with everything under it.
async fn remove_execution(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let (mut all, fi, pos) = editable_execution(
        &a.realm,
        &id,
        "It is illegal to remove execution from a built in flow",
    )?;
    let removed = all[fi]["authenticationExecutions"]
        .as_array_mut()
        .map(|l| l.remove(pos))
        .unwrap_or(Value::Null);
    // A subflow goes with what it runs, unless another step still runs it.
    if let Some(sub) = removed["flowAlias"]
        .as_str()
        .filter(|_| is_subflow(&removed))
    {
        drop_flow_tree(&mut all, sub);
    }
    let path = format!("authentication/executions/{id}");
    store_flows(&a, all, ("DELETE", "AUTH_EXECUTION", &path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../executions/{id}/raise-priority` (`UP`) or `lower-priority`:
/// the step trades places with its neighbour in the flow.
async fn move_execution<const UP: bool>(
    mut a: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let (mut all, fi, pos) = editable_execution(
        &a.realm,
        &id,
        "It is illegal to reorder executions of a built in flow",
    )?;
    // Stored positions in priority order.
    let order: Vec<usize> = executions(&all[fi]).into_iter().map(|(p, _)| p).collect();
    let at = order.iter().position(|p| *p == pos).unwrap_or(0);
    let other = if UP { at.checked_sub(1) } else { Some(at + 1) };
    if let Some(&o) = other.and_then(|i| order.get(i)) {
        // Renumber by the current order, then swap the two.
        let mut prio: Vec<(usize, i64)> = order
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, (i as i64 + 1) * 10))
            .collect();
        let (i, j) = (at, order.iter().position(|p| *p == o).unwrap_or(at));
        let (pi, pj) = (prio[i].1, prio[j].1);
        prio[i].1 = pj;
        prio[j].1 = pi;
        if let Some(list) = all[fi]["authenticationExecutions"].as_array_mut() {
            for (p, v) in prio {
                if let Some(e) = list.get_mut(p) {
                    e["priority"] = json!(v);
                }
            }
        }
    }
    let what = if UP {
        "raise-priority"
    } else {
        "lower-priority"
    };
    let path = format!("authentication/executions/{id}/{what}");
    store_flows(&a, all, ("UPDATE", "AUTH_EXECUTION", &path, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One row of Keycloak's flattened execution list, and where its
/// execution is stored (flow alias, position) for an update.
struct Row {
    info: Value,
    flow: String,
    pos: usize,
}

/// The authenticators a flow may name (Keycloak's ids and display names):
/// the ones Keycloak's default flows use. Gatehouse runs cookie, password,
/// OTP and "user configured"; a bound flow with another enabled is refused.
const AUTHENTICATORS: [(&str, &str); 12] = [
    ("auth-cookie", "Cookie"),
    ("auth-spnego", "Kerberos"),
    (
        "identity-provider-redirector",
        "Identity Provider Redirector",
    ),
    ("auth-username-password-form", "Username Password Form"),
    ("auth-otp-form", "OTP Form"),
    ("conditional-user-configured", "Condition - user configured"),
    ("webauthn-authenticator", "WebAuthn Authenticator"),
    (
        "auth-recovery-authn-code-form",
        "Recovery Authentication Code Form",
    ),
    ("direct-grant-validate-username", "Username Validation"),
    ("direct-grant-validate-password", "Password"),
    ("direct-grant-validate-otp", "OTP"),
    ("organization", "Organization Identity-First Login"),
];

/// Keycloak's display name of an authenticator a flow may name; None for
/// one Gatehouse does not know.
pub(super) fn known_authenticator(provider: &str) -> Option<&'static str> {
    AUTHENTICATORS
        .iter()
        .find(|(id, _)| *id == provider)
        .map(|(_, name)| *name)
}

/// `GET .../authentication/authenticator-providers`: what a step may run
/// (`AUTHENTICATORS`), in Keycloak's shape.
async fn authenticator_providers(_: RealmAdmin) -> Json<Value> {
    let list = AUTHENTICATORS.iter().map(|(id, name)| {
        let runs = matches!(
            *id,
            "auth-cookie"
                | "auth-username-password-form"
                | "auth-otp-form"
                | "conditional-user-configured"
                | "direct-grant-validate-username"
                | "direct-grant-validate-password"
                | "direct-grant-validate-otp"
        );
        let description = if runs {
            "Run by Gatehouse's login."
        } else {
            "Kept in flows; a bound flow with it enabled is refused."
        };
        json!({"id": id, "displayName": name, "description": description})
    });
    Json(Value::Array(list.collect()))
}

/// `GET .../authentication/form-providers` and `form-action-providers`:
/// none (they serve self-registration, which Gatehouse does not offer).
async fn no_form_providers(_: RealmAdmin) -> Json<Value> {
    Json(json!([]))
}

fn rows(realm: &Realm, all: &[Value], alias: &str, level: usize, out: &mut Vec<Row>) {
    let Some(flow) = by_alias(all, alias) else {
        return;
    };
    if level > 8 {
        return;
    }
    for (index, (pos, e)) in executions(flow).into_iter().enumerate() {
        let id = execution_id(realm, alias, pos, e);
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
            // The step's config, by id, as Keycloak's rows name it.
            let config = realm
                .extra
                .get("authenticatorConfig")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| {
                    e["authenticatorConfig"].is_string() && c["alias"] == e["authenticatorConfig"]
                });
            if let Some(c) = config {
                info["authenticationConfig"] = c["id"].clone();
            }
            // An imported flow may name one Gatehouse does not know: its id.
            info["displayName"] = json!(known_authenticator(provider).unwrap_or(provider));
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
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let rep = json_body(&body)?;
    let mut all = editable(&a.realm);
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
    let path = format!("authentication/flows/{alias}/executions");
    store_flows(&a, all, ("UPDATE", "AUTH_EXECUTION", &path, Some(&rep))).await?;
    Ok(StatusCode::NO_CONTENT)
}
