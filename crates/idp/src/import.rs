//! The contents of a Keycloak realm export (`roles`, `clients`, `groups`,
//! `users` with credentials, role mappings and group memberships), loaded
//! into an existing realm. Used by `gatehouse import` and by
//! `POST /admin/realms` with a full representation.

use crate::error::AdminError;
use crate::state::Idp;
use gatehouse_core::model::Realm;
use gatehouse_store::Holder;
use serde_json::Value;

/// Creates a realm from a full representation (a Keycloak export, or
/// `POST /admin/realms` with contents): all of it or nothing. The contents
/// are written after the realm, so a failure among them (an invalid client,
/// an unsupported credential) removes the realm again: the realm did not
/// exist before (its name was checked free), so nothing else is lost.
pub async fn realm(
    idp: &Idp,
    rep: &Value,
    ev: Vec<gatehouse_core::model::Event>,
) -> Result<Realm, AdminError> {
    let realm = crate::admin::realms::create_realm(idp, rep, ev).await?;
    if let Err(e) = contents(idp, &realm, rep).await {
        if let Err(undo) = idp.store.delete_realm(&realm.id, &[]).await {
            tracing::error!(realm = %realm.name, error = %undo, "could not remove a partly imported realm");
        }
        idp.invalidate();
        return Err(e);
    }
    Ok(realm)
}

fn arr<'a>(v: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// Role ids named by a representation's `realmRoles` and `clientRoles`
/// (unknown names are skipped, as Keycloak's import does).
async fn mapped_role_ids(idp: &Idp, realm: &Realm, rep: &Value) -> Result<Vec<String>, AdminError> {
    Ok(role_ids_named(idp, &realm.id, &rep["realmRoles"], &rep["clientRoles"]).await?)
}

/// The ids of the realm roles `realm_names` (a list of names) and the
/// client roles `client_names` (names by clientId) name, as an export
/// writes them wherever roles are mapped or contained; names the realm
/// lacks are skipped.
pub(crate) async fn role_ids_named(
    idp: &Idp,
    realm_id: &str,
    realm_names: &Value,
    client_names: &Value,
) -> Result<Vec<String>, gatehouse_store::Error> {
    let mut ids = vec![];
    let names = |v: &'_ Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    for name in names(realm_names) {
        ids.extend(
            idp.store
                .role_by_name(realm_id, None, &name)
                .await?
                .map(|r| r.id),
        );
    }
    for (client_id, list) in client_names.as_object().into_iter().flatten() {
        let Some(c) = idp.store.client_by_client_id(realm_id, client_id).await? else {
            continue;
        };
        for n in names(list) {
            ids.extend(
                idp.store
                    .role_by_name(realm_id, Some(&c.id), &n)
                    .await?
                    .map(|r| r.id),
            );
        }
    }
    Ok(ids)
}

async fn import_groups(
    idp: &Idp,
    realm: &Realm,
    parent: Option<&str>,
    list: &[Value],
) -> Result<(), AdminError> {
    for g in list {
        let created = Box::pin(crate::admin::groups::create_group(
            idp,
            realm,
            parent,
            g,
            vec![],
        ))
        .await?;
        let ids = mapped_role_ids(idp, realm, g).await?;
        idp.store
            .grant_roles(Holder::Group(&created.id), &ids, &[])
            .await?;
        let subs: Vec<Value> = arr(g, "subGroups").cloned().collect();
        Box::pin(import_groups(idp, realm, Some(&created.id), &subs)).await?;
    }
    Ok(())
}

/// Keycloak's `scopeMappings` (realm roles) and `clientScopeMappings`
/// (roles of the client named by the key), for the client (`client`) or
/// client scope (`clientScope`) each entry names.
async fn scope_mappings(idp: &Idp, realm: &Realm, rep: &Value) -> Result<(), AdminError> {
    let mut lists: Vec<(Option<String>, &Value)> =
        arr(rep, "scopeMappings").map(|m| (None, m)).collect();
    if let Some(by_owner) = rep.get("clientScopeMappings").and_then(Value::as_object) {
        for (owner, list) in by_owner {
            for m in list.as_array().into_iter().flatten() {
                lists.push((Some(owner.clone()), m));
            }
        }
    }
    for (owner, m) in lists {
        let container = match &owner {
            Some(o) => match idp.store.client_by_client_id(&realm.id, o).await? {
                Some(c) => Some(c.id),
                None => continue,
            },
            None => None,
        };
        let mut ids = vec![];
        for name in arr(m, "roles").filter_map(Value::as_str) {
            if let Some(r) = idp
                .store
                .role_by_name(&realm.id, container.as_deref(), name)
                .await?
            {
                ids.push(r.id);
            }
        }
        let add = |mapped: &mut Vec<String>| {
            for id in &ids {
                if !mapped.contains(id) {
                    mapped.push(id.clone());
                }
            }
        };
        if let Some(cid) = m.get("client").and_then(Value::as_str) {
            if let Some(mut client) = idp.store.client_by_client_id(&realm.id, cid).await? {
                add(&mut client.scope_role_ids);
                idp.store.update_client(&client, &[]).await?;
            }
        } else if let Some(name) = m.get("clientScope").and_then(Value::as_str)
            && let Some(mut scope) = idp
                .store
                .client_scopes(&realm.id)
                .await?
                .into_iter()
                .find(|s| s.name == name)
        {
            add(&mut scope.scope_role_ids);
            idp.store.update_client_scope(&scope, &[]).await?;
        }
    }
    Ok(())
}

/// Keycloak lets a client pick its token signing algorithms, and so does
/// Gatehouse (`keyring.rs`) among the asymmetric ones. A migrated client
/// that picked another (HMAC) gets the realm's algorithm, which its
/// verifier may reject, so the import says so (the attribute is kept).
fn warn_unapplied_algorithms(realm: &Realm, client_id: &str, c: &Value) {
    for attr in [crate::tokens::ACCESS_ALG, crate::tokens::ID_ALG] {
        if let Some(alg) = c["attributes"][attr].as_str()
            && !alg.is_empty()
            && gatehouse_jose::keys::Alg::parse(alg).is_err()
        {
            tracing::warn!(
                client = %client_id,
                attribute = attr,
                requested = %alg,
                signs_with = %realm.default_signature_algorithm,
                "a client's signing algorithm Gatehouse cannot sign with: its tokens use the realm's"
            );
        }
    }
}

/// Loads roles, clients, groups and users from a RealmRepresentation.
/// Exports made before Keycloak 13 have no default role but list the roles
/// new users get by name (`defaultRoles`): as Keycloak imports them, they
/// become the default role's composites, created where missing.
async fn deprecated_default_roles(idp: &Idp, realm: &Realm, rep: &Value) -> Result<(), AdminError> {
    if rep.get("defaultRole").is_some() {
        return Ok(());
    }
    let Some(default) = idp
        .store
        .role_by_name(&realm.id, None, &crate::bootstrap::default_role_name(realm))
        .await?
    else {
        return Ok(());
    };
    let mut ids = vec![];
    for name in arr(rep, "defaultRoles")
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let role = match idp.store.role_by_name(&realm.id, None, name).await? {
            Some(r) => r,
            None => {
                let rep = serde_json::json!({ "name": name });
                crate::admin::roles::create_role(idp, realm, None, &rep, vec![]).await?
            }
        };
        ids.push(role.id);
    }
    if !ids.is_empty() {
        idp.store.add_composites(&default.id, &ids, &[]).await?;
    }
    Ok(())
}

pub async fn contents(idp: &Idp, realm: &Realm, rep: &Value) -> Result<(), AdminError> {
    // Keycloak's RSA keys, so its published kids keep verifying.
    crate::admin::key_providers::import(idp, realm, rep).await?;
    // Clients first: client roles need their client.
    for c in arr(rep, "clients") {
        let cid = c.get("clientId").and_then(Value::as_str).unwrap_or("");
        if idp
            .store
            .client_by_client_id(&realm.id, cid)
            .await?
            .is_none()
        {
            warn_unapplied_algorithms(realm, cid, c);
            crate::admin::clients::create_client(idp, realm, c, vec![]).await?;
        }
    }
    let roles = rep.get("roles");
    let realm_roles: Vec<Value> = roles
        .map(|r| arr(r, "realm").cloned().collect())
        .unwrap_or_default();
    for r in &realm_roles {
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        if idp
            .store
            .role_by_name(&realm.id, None, name)
            .await?
            .is_none()
        {
            crate::admin::roles::create_role(idp, realm, None, r, vec![]).await?;
        }
    }
    if let Some(cr) = roles
        .and_then(|r| r.get("client"))
        .and_then(Value::as_object)
    {
        for (client_id, list) in cr {
            let Some(c) = idp.store.client_by_client_id(&realm.id, client_id).await? else {
                continue;
            };
            for r in list.as_array().into_iter().flatten() {
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                if idp
                    .store
                    .role_by_name(&realm.id, Some(&c.id), name)
                    .await?
                    .is_none()
                {
                    crate::admin::roles::create_role(idp, realm, Some(c.id.clone()), r, vec![])
                        .await?;
                }
            }
        }
    }
    // Composites of realm roles and of client roles (`manage-account`
    // holds `manage-account-links`).
    let mut parents: Vec<(Option<String>, &Value)> =
        realm_roles.iter().map(|r| (None, r)).collect();
    if let Some(cr) = roles
        .and_then(|r| r.get("client"))
        .and_then(Value::as_object)
    {
        for (client_id, list) in cr {
            let Some(c) = idp.store.client_by_client_id(&realm.id, client_id).await? else {
                continue;
            };
            parents.extend(
                list.as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| (Some(c.id.clone()), r)),
            );
        }
    }
    for (container, r) in parents {
        let Some(parent) = idp
            .store
            .role_by_name(
                &realm.id,
                container.as_deref(),
                r.get("name").and_then(Value::as_str).unwrap_or(""),
            )
            .await?
        else {
            continue;
        };
        let mut ids = vec![];
        if let Some(comp) = r.get("composites") {
            for n in arr(comp, "realm").filter_map(Value::as_str) {
                if let Some(c) = idp.store.role_by_name(&realm.id, None, n).await? {
                    ids.push(c.id);
                }
            }
            if let Some(cc) = comp.get("client").and_then(Value::as_object) {
                for (client_id, names) in cc {
                    if let Some(cl) = idp.store.client_by_client_id(&realm.id, client_id).await? {
                        for n in names
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                        {
                            if let Some(c) =
                                idp.store.role_by_name(&realm.id, Some(&cl.id), n).await?
                            {
                                ids.push(c.id);
                            }
                        }
                    }
                }
            }
        }
        if !ids.is_empty() {
            idp.store.add_composites(&parent.id, &ids, &[]).await?;
        }
    }
    // Keycloak's default roles, where the export did not bring them.
    crate::bootstrap::realm_defaults(idp, realm).await?;
    deprecated_default_roles(idp, realm, rep).await?;
    scope_mappings(idp, realm, rep).await?;
    let groups: Vec<Value> = arr(rep, "groups").cloned().collect();
    import_groups(idp, realm, None, &groups).await?;
    for u in arr(rep, "users") {
        let user = match u.get("serviceAccountClientId").and_then(Value::as_str) {
            Some(cid) => {
                // The client's import made a fresh service account: replace
                // it with the exported one, so its id and mappings survive.
                let Some(client) = idp.store.client_by_client_id(&realm.id, cid).await? else {
                    continue;
                };
                if let Some(existing) = idp
                    .store
                    .service_account_user(&realm.id, &client.id)
                    .await?
                {
                    idp.store.delete_user(&realm.id, &existing.id, &[]).await?;
                }
                let mut user =
                    crate::admin::users::create_user(idp, realm, u, vec![], false).await?;
                user.service_account_client_id = Some(client.id.clone());
                idp.store.update_user(&user, &[]).await?;
                user
            }
            None => crate::admin::users::create_user(idp, realm, u, vec![], false).await?,
        };
        // The user's own mappings, and the realm's default role even where
        // a hand-written realm file leaves it out (its groups came with
        // `create_user`; default groups are not applied to an import).
        let mut ids = mapped_role_ids(idp, realm, u).await?;
        ids.extend(
            crate::admin::users::default_memberships(idp, realm)
                .await?
                .roles,
        );
        idp.store
            .grant_roles(Holder::User(&user.id), &ids, &[])
            .await?;
    }
    let orgs: Vec<Value> = arr(rep, "organizations").cloned().collect();
    crate::admin::organizations::import(idp, realm, &orgs).await?;
    crate::admin::authz::resolve_imported(idp, realm, rep).await?;
    Ok(())
}
