//! A realm as a Keycloak realm export (`gatehouse export REALM`): realm
//! settings, clients (with secrets), realm and client roles with their
//! composites, the group tree with its role mappings, and users with their
//! credentials (Keycloak's `credentialData`/`secretData`), role mappings and
//! group paths. `gatehouse import` reads it back unchanged.

use crate::error::AdminError;
use crate::repr;
use crate::state::Idp;
use gatehouse_core::model::{Group, Realm, Role};
use gatehouse_store::{Holder, UserQuery};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

fn names(
    roles: &[Role],
    client_ids: &BTreeMap<String, String>,
) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let mut realm = vec![];
    let mut clients: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in roles {
        match &r.client_id {
            None => realm.push(r.name.clone()),
            Some(c) => {
                if let Some(cid) = client_ids.get(c) {
                    clients.entry(cid.clone()).or_default().push(r.name.clone());
                }
            }
        }
    }
    (realm, clients)
}

async fn role_rep(
    idp: &Idp,
    r: &Role,
    client_ids: &BTreeMap<String, String>,
) -> Result<Value, AdminError> {
    let comps = idp.store.composites(&r.id).await?;
    let mut v = json!({"id": r.id, "name": r.name, "description": r.description, "attributes": r.attributes,
        "composite": !comps.is_empty(), "clientRole": r.client_id.is_some()});
    if !comps.is_empty() {
        let (realm, clients) = names(&comps, client_ids);
        let mut c = Map::new();
        if !realm.is_empty() {
            c.insert("realm".into(), json!(realm));
        }
        if !clients.is_empty() {
            c.insert("client".into(), json!(clients));
        }
        v["composites"] = Value::Object(c);
    }
    Ok(v)
}

async fn group_rep(
    idp: &Idp,
    g: &Group,
    all: &[Group],
    client_ids: &BTreeMap<String, String>,
) -> Result<Value, AdminError> {
    let (realm_roles, client_roles) = names(
        &idp.store.granted_roles(Holder::Group(&g.id)).await?,
        client_ids,
    );
    let mut subs = vec![];
    for c in all.iter().filter(|c| c.parent_id.as_deref() == Some(&g.id)) {
        subs.push(Box::pin(group_rep(idp, c, all, client_ids)).await?);
    }
    Ok(
        json!({"id": g.id, "name": g.name, "path": repr::group_path(all, &g.id), "attributes": g.attributes,
        "realmRoles": realm_roles, "clientRoles": client_roles, "subGroups": subs}),
    )
}

/// The export of `realm`.
pub async fn realm(idp: &Idp, realm: &Realm) -> Result<Value, AdminError> {
    let mut out = repr::realm(realm);
    if let Some(role) = crate::bootstrap::default_role_rep(idp, realm).await? {
        out["defaultRole"] = role;
    }
    // Key providers an earlier import kept in the realm describe another
    // server's keys (with their private keys): never exported. Gatehouse's
    // own keys stay sealed in its key table.
    if let Some(Value::Object(components)) = out.get_mut("components") {
        components.remove(crate::admin::key_providers::KEY_TYPE);
    }
    // The flows that decide who is asked for a one-time code travel with
    // the realm (Keycloak's defaults where the realm never changed them).
    out["authenticationFlows"] = json!(crate::admin::authentication_flows::all_with_ids(realm));
    out["clientScopes"] = json!(
        idp.store
            .client_scopes(&realm.id)
            .await?
            .iter()
            .map(repr::client_scope)
            .collect::<Vec<_>>()
    );
    let clients = idp.store.clients(&realm.id).await?;
    let client_ids: BTreeMap<String, String> = clients
        .iter()
        .map(|c| (c.id.clone(), c.client_id.clone()))
        .collect();
    let mut client_reps = vec![];
    for c in &clients {
        let mut rep = repr::client(c, true);
        // Authorization settings in Keycloak's export form (by name).
        if let Some(rs) = crate::authz::ResourceServer::of(c) {
            rep[crate::authz::SETTINGS] =
                crate::admin::authz::export_settings(idp, realm, c, rs).await?;
        }
        client_reps.push(rep);
    }
    out["clients"] = json!(client_reps);

    let mut realm_roles = vec![];
    for r in idp.store.roles(&realm.id, None).await? {
        realm_roles.push(role_rep(idp, &r, &client_ids).await?);
    }
    let mut client_roles = Map::new();
    for c in &clients {
        let mut list = vec![];
        for r in idp.store.roles(&realm.id, Some(&c.id)).await? {
            list.push(role_rep(idp, &r, &client_ids).await?);
        }
        client_roles.insert(c.client_id.clone(), json!(list));
    }
    out["roles"] = json!({"realm": realm_roles, "client": client_roles});

    let groups = idp.store.groups(&realm.id).await?;
    let mut tops = vec![];
    for g in groups.iter().filter(|g| g.parent_id.is_none()) {
        tops.push(group_rep(idp, g, &groups, &client_ids).await?);
    }
    out["groups"] = json!(tops);

    // Role scope mappings of clients and client scopes, in Keycloak's two
    // lists, each entry naming its holder as `client` or `clientScope`.
    let mut realm_scope = vec![];
    let mut client_scope: Map<String, Value> = Map::new();
    let scopes = idp.store.client_scopes(&realm.id).await?;
    let holders = clients
        .iter()
        .map(|c| ("client", &c.client_id, &c.scope_role_ids))
        .chain(
            scopes
                .iter()
                .map(|s| ("clientScope", &s.name, &s.scope_role_ids)),
        );
    for (key, holder, role_ids) in holders {
        let mut realm_names = vec![];
        let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rid in role_ids {
            let Some(r) = idp.store.role(&realm.id, rid).await? else {
                continue;
            };
            match r.client_id.as_ref().and_then(|o| client_ids.get(o)) {
                Some(owner) => by_owner.entry(owner.clone()).or_default().push(r.name),
                None if r.client_id.is_none() => realm_names.push(r.name),
                None => {}
            }
        }
        if !realm_names.is_empty() {
            realm_scope.push(json!({ key: holder, "roles": realm_names }));
        }
        for (owner, names) in by_owner {
            if let Some(list) = client_scope
                .entry(owner)
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                list.push(json!({ key: holder, "roles": names }));
            }
        }
    }
    out["scopeMappings"] = json!(realm_scope);
    out["clientScopeMappings"] = Value::Object(client_scope);

    let mut users = vec![];
    let mut first = 0;
    loop {
        let q = UserQuery {
            include_service_accounts: true,
            first,
            max: 500,
            ..Default::default()
        };
        let page = idp.store.users(&realm.id, &q).await?;
        if page.is_empty() {
            break;
        }
        first += page.len() as i64;
        for u in page {
            let mut v = repr::user(&u);
            if let Some(o) = v.as_object_mut() {
                o.remove("access");
                if let Some(c) = &u.service_account_client_id {
                    o.insert("serviceAccountClientId".into(), json!(client_ids.get(c)));
                }
            }
            let creds = idp.store.credentials(&u.id).await?;
            if !creds.is_empty() {
                let list: Vec<Value> = creds.iter().map(|c| repr::credential(c, true)).collect();
                v["credentials"] = json!(list);
                v["totp"] = json!(creds.iter().any(|c| c.kind == crate::otp::KIND));
            }
            let (rr, cr) = names(
                &idp.store.granted_roles(Holder::User(&u.id)).await?,
                &client_ids,
            );
            if !u.federated_identities.is_empty() {
                let links = u.federated_identities.iter();
                v["federatedIdentities"] = Value::Array(
                    links
                        .map(crate::admin::federated_identities::repr)
                        .collect(),
                );
            }
            v["realmRoles"] = json!(rr);
            v["clientRoles"] = json!(cr);
            v["groups"] = json!(
                idp.store
                    .user_groups(&u.id)
                    .await?
                    .iter()
                    .map(|g| repr::group_path(&groups, &g.id))
                    .collect::<Vec<_>>()
            );
            users.push(v);
        }
    }
    out["users"] = json!(users);
    let orgs = crate::admin::organizations::export(idp, realm).await?;
    if !orgs.is_empty() {
        out["organizations"] = json!(orgs);
    }
    Ok(out)
}
