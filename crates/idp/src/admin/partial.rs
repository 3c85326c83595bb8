//! `POST /admin/realms/{realm}/partialImport` and `/partial-export`: what
//! Keycloak's admin console and CI scripts use to move users, clients,
//! groups and roles into a realm that already exists, and to take a realm's
//! configuration out without its users.

use super::{RealmAdmin, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Query;
use axum::routing::post;
use axum::{Json, Router};
use gatehouse_core::model::Realm;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Partial import and export routes.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new()
        .route("/admin/realms/{realm}/partialImport", post(partial_import))
        .route("/admin/realms/{realm}/partial-export", post(partial_export))
}

/// What happens to a resource that already exists (`ifResourceExists`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Fail,
    Skip,
    Overwrite,
}

/// One resource of the request, and whether the realm has it already.
struct Item {
    /// `USER`, `CLIENT`, `GROUP`, `REALM_ROLE`, `CLIENT_ROLE`.
    kind: &'static str,
    name: String,
    /// For a client role: its client's `clientId`.
    client: Option<String>,
    /// The id of the existing resource of that name.
    existing: Option<String>,
}

fn names(v: Option<&Value>) -> impl Iterator<Item = (&Value, String)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| {
            let name = ["username", "clientId", "name"]
                .iter()
                .find_map(|k| x.get(*k).and_then(Value::as_str))?;
            Some((x, name.to_owned()))
        })
}

/// Every resource the representation names, with what exists already.
async fn survey(idp: &Idp, realm: &Realm, rep: &Value) -> Result<Vec<Item>, AdminError> {
    let mut items = vec![];
    for (_, name) in names(rep.get("users")) {
        let existing = idp
            .store
            .user_by_username(&realm.id, &name)
            .await?
            .map(|u| u.id);
        items.push(Item {
            kind: "USER",
            name,
            client: None,
            existing,
        });
    }
    for (_, name) in names(rep.get("clients")) {
        let existing = idp
            .store
            .client_by_client_id(&realm.id, &name)
            .await?
            .map(|c| c.id);
        items.push(Item {
            kind: "CLIENT",
            name,
            client: None,
            existing,
        });
    }
    let groups = idp.store.groups(&realm.id).await?;
    for (_, name) in names(rep.get("groups")) {
        let existing = groups
            .iter()
            .find(|g| g.parent_id.is_none() && g.name == name)
            .map(|g| g.id.clone());
        items.push(Item {
            kind: "GROUP",
            name,
            client: None,
            existing,
        });
    }
    let roles = rep.get("roles");
    for (_, name) in names(roles.and_then(|r| r.get("realm"))) {
        let existing = idp
            .store
            .role_by_name(&realm.id, None, &name)
            .await?
            .map(|r| r.id);
        items.push(Item {
            kind: "REALM_ROLE",
            name,
            client: None,
            existing,
        });
    }
    if let Some(by_client) = roles
        .and_then(|r| r.get("client"))
        .and_then(Value::as_object)
    {
        for (client_id, list) in by_client {
            let owner = idp.store.client_by_client_id(&realm.id, client_id).await?;
            for (_, name) in names(Some(list)) {
                let existing = match &owner {
                    Some(c) => {
                        idp.store
                            .role_by_name(&realm.id, Some(&c.id), &name)
                            .await?
                    }
                    None => None,
                }
                .map(|r| r.id);
                items.push(Item {
                    kind: "CLIENT_ROLE",
                    name,
                    client: Some(client_id.clone()),
                    existing,
                });
            }
        }
    }
    Ok(items)
}

/// Keycloak's words for a resource type in a conflict message.
fn label(kind: &str) -> &'static str {
    match kind {
        "USER" => "User",
        "CLIENT" => "Client",
        "GROUP" => "Group",
        "REALM_ROLE" => "Realm role",
        _ => "Client role",
    }
}

/// The representation without the resources `keep` says no to.
fn filtered(rep: &Value, keep: impl Fn(&str, Option<&str>, &str) -> bool) -> Value {
    let list = |kind: &str, v: Option<&Value>, client: Option<&str>| -> Value {
        json!(
            names(v)
                .filter(|(_, n)| keep(kind, client, n))
                .map(|(x, _)| x.clone())
                .collect::<Vec<_>>()
        )
    };
    let mut out = Map::new();
    out.insert("users".into(), list("USER", rep.get("users"), None));
    out.insert("clients".into(), list("CLIENT", rep.get("clients"), None));
    out.insert("groups".into(), list("GROUP", rep.get("groups"), None));
    let roles = rep.get("roles");
    let mut client_roles = Map::new();
    if let Some(by_client) = roles
        .and_then(|r| r.get("client"))
        .and_then(Value::as_object)
    {
        for (cid, l) in by_client {
            client_roles.insert(cid.clone(), list("CLIENT_ROLE", Some(l), Some(cid)));
        }
    }
    out.insert(
        "roles".into(),
        json!({
            "realm": list("REALM_ROLE", roles.and_then(|r| r.get("realm")), None),
            "client": client_roles,
        }),
    );
    Value::Object(out)
}

/// `POST /admin/realms/{realm}/partialImport`: users, clients, groups and
/// roles of a PartialImportRepresentation, with Keycloak's
/// `ifResourceExists` (`FAIL`, the default, refuses the whole import with
/// 409 before anything is written; `SKIP` leaves existing ones; `OVERWRITE`
/// replaces them).
async fn partial_import(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let rep = json_body(&body)?;
    let policy = match rep.get("ifResourceExists").and_then(Value::as_str) {
        None | Some("FAIL") => Policy::Fail,
        Some("SKIP") => Policy::Skip,
        Some("OVERWRITE") => Policy::Overwrite,
        Some(other) => {
            return Err(AdminError::bad_request(format!(
                "Unknown ifResourceExists policy: {other}"
            )));
        }
    };
    let items = survey(&idp, &realm, &rep).await?;
    if policy == Policy::Fail
        && let Some(i) = items.iter().find(|i| i.existing.is_some())
    {
        return Err(AdminError::conflict(format!(
            "{} '{}' already exists",
            label(i.kind),
            i.name
        )));
    }
    // Overwrite: the existing resource goes first (its mappings with it),
    // then it is created again from the representation.
    if policy == Policy::Overwrite {
        for i in &items {
            let Some(id) = &i.existing else { continue };
            let gone = match i.kind {
                "USER" => idp.store.delete_user(&realm.id, id, &[]).await,
                "CLIENT" => idp.store.delete_client(&realm.id, id, &[]).await,
                "GROUP" => idp.store.delete_group(&realm.id, id, &[]).await,
                _ => idp.store.delete_role(&realm.id, id, &[]).await,
            };
            // A client's roles went with their client.
            match gone {
                Ok(()) | Err(gatehouse_store::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let skip = |kind: &str, client: Option<&str>, name: &str| {
        policy == Policy::Skip
            && items.iter().any(|i| {
                i.existing.is_some()
                    && i.kind == kind
                    && i.name == name
                    && i.client.as_deref() == client
            })
    };
    let todo = filtered(&rep, |k, c, n| !skip(k, c, n));
    // (The admin router drops this node's caches after any write.)
    crate::import::contents(&idp, &realm, &todo).await?;

    let mut results = vec![];
    let (mut added, mut skipped, mut overwritten) = (0, 0, 0);
    for i in &items {
        let action = match (&i.existing, policy) {
            (Some(_), Policy::Skip) => {
                skipped += 1;
                "SKIPPED"
            }
            (Some(_), _) => {
                overwritten += 1;
                "OVERWRITTEN"
            }
            (None, _) => {
                added += 1;
                "ADDED"
            }
        };
        let id = if action == "SKIPPED" {
            i.existing.clone()
        } else {
            current_id(&idp, &realm, i).await?
        };
        results.push(
            json!({"action": action, "resourceType": i.kind, "resourceName": i.name, "id": id}),
        );
    }
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "REALM",
        "partialImport",
        Some(&json!({"added": added, "skipped": skipped, "overwritten": overwritten})),
    );
    idp.store.append_events(&[ev]).await?;
    Ok(Json(json!({
        "added": added, "skipped": skipped, "overwritten": overwritten, "results": results,
    })))
}

/// The id a resource has now (after the import made or remade it).
async fn current_id(idp: &Idp, realm: &Realm, i: &Item) -> Result<Option<String>, AdminError> {
    Ok(match i.kind {
        "USER" => idp
            .store
            .user_by_username(&realm.id, &i.name)
            .await?
            .map(|u| u.id),
        "CLIENT" => idp
            .store
            .client_by_client_id(&realm.id, &i.name)
            .await?
            .map(|c| c.id),
        "GROUP" => idp
            .store
            .groups(&realm.id)
            .await?
            .into_iter()
            .find(|g| g.parent_id.is_none() && g.name == i.name)
            .map(|g| g.id),
        "REALM_ROLE" => idp
            .store
            .role_by_name(&realm.id, None, &i.name)
            .await?
            .map(|r| r.id),
        _ => {
            let client = i.client.as_deref().unwrap_or_default();
            match idp.store.client_by_client_id(&realm.id, client).await? {
                Some(c) => idp
                    .store
                    .role_by_name(&realm.id, Some(&c.id), &i.name)
                    .await?
                    .map(|r| r.id),
                None => None,
            }
        }
    })
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    #[serde(
        default,
        rename = "exportClients",
        deserialize_with = "super::lenient_bool"
    )]
    clients: Option<bool>,
    #[serde(
        default,
        rename = "exportGroupsAndRoles",
        deserialize_with = "super::lenient_bool"
    )]
    groups_and_roles: Option<bool>,
}

/// `POST /admin/realms/{realm}/partial-export`: the realm's settings, with
/// clients (`exportClients`) and groups and roles (`exportGroupsAndRoles`)
/// when asked; never users; client secrets and LDAP bind passwords masked
/// as Keycloak masks them.
async fn partial_export(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<ExportQuery>,
) -> Result<Json<Value>, AdminError> {
    let mut out = crate::export::realm(&idp, &realm).await?;
    if let Some(o) = out.as_object_mut() {
        o.remove("users");
        if !q.clients.unwrap_or(false) {
            o.remove("clients");
        }
        if !q.groups_and_roles.unwrap_or(false) {
            o.remove("groups");
            o.remove("roles");
        }
        if let Some(clients) = o.get_mut("clients").and_then(Value::as_array_mut) {
            for c in clients {
                if c.get("secret").is_some() {
                    c["secret"] = json!(crate::repr::SECRET_MASK);
                }
            }
        }
        // An LDAP provider's bind password, likewise.
        let storage = o
            .get_mut("components")
            .and_then(|c| c.get_mut(crate::ldap::STORAGE_TYPE))
            .and_then(Value::as_array_mut);
        for c in storage.into_iter().flatten() {
            if let Some(config) = c.get_mut("config").and_then(Value::as_object_mut) {
                crate::admin::components::mask_secrets(config);
            }
        }
    }
    Ok(Json(out))
}
