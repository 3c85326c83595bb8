//! First start: realm `master` with the `admin` role, the public `admin-cli`
//! client (password grant allowed, as in Keycloak) and the bootstrap admin
//! user. Also the defaults every realm gets.

use crate::error::AdminError;
use crate::state::Idp;
use gatehouse_core::model::{Realm, Role};
use gatehouse_store::Holder;
use serde_json::json;

/// Roles and clients every new realm has: `offline_access`,
/// `uma_authorization`, the composite `default-roles-{realm}` that every
/// new user is granted, and Keycloak's built-in clients that mean something
/// here ([`builtin_clients`]). Creates only what is missing, so it also
/// completes an import that lacks some. Realms are only given them when
/// created or imported: a built-in client an admin deleted stays deleted.
pub async fn realm_defaults(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
    default_roles(idp, realm).await?;
    builtin_clients(idp, realm).await?;
    ensure_master_admin_client(idp, &realm.name).await
}

/// The client of `master` whose roles administer realm `name` from
/// `master` (Keycloak's `{realm}-realm`).
pub fn master_admin_client(name: &str) -> String {
    format!("{name}-realm")
}

/// Keycloak's `{realm}-realm` client in `master`: its roles (the
/// `realm-management` ones but `realm-admin`) let a `master` user or
/// service account administer realm `name` as narrowly as those roles
/// say (`admin::guard_realm`), without the `admin` role that reaches every
/// realm. Created with the realm, and for realms an older version stored.
pub async fn ensure_master_admin_client(idp: &Idp, name: &str) -> Result<(), AdminError> {
    if name == "master" {
        return Ok(());
    }
    let Some(master) = idp.store.realm_by_name("master").await? else {
        return Ok(());
    };
    let client_id = master_admin_client(name);
    if lacks(idp, &master, &client_id).await? {
        let rep = json!({"clientId": client_id, "name": format!("{name} Realm"),
                         "bearerOnly": true, "standardFlowEnabled": false});
        let c = crate::admin::clients::create_client(idp, &master, &rep, vec![]).await?;
        client_roles(idp, &master, &c, &REALM_MANAGEMENT_ROLES, None).await?;
    }
    Ok(())
}

/// `master` and realm `name`'s `{realm}-realm` client there, if both exist.
async fn master_client_of(
    idp: &Idp,
    name: &str,
) -> Result<Option<(Realm, gatehouse_core::model::Client)>, AdminError> {
    let Some(master) = idp.store.realm_by_name("master").await? else {
        return Ok(None);
    };
    let c = idp
        .store
        .client_by_client_id(&master.id, &master_admin_client(name))
        .await?;
    Ok(c.map(|c| (master, c)))
}

/// As Keycloak: a `master` user who creates realm `name` without holding
/// `admin` (only `create-realm`) is given every role of its
/// `{realm}-realm` client, so the creator administers what it created.
pub async fn make_creator_admin(idp: &Idp, name: &str, user_id: &str) -> Result<(), AdminError> {
    let roles = idp.store.effective_roles(user_id).await?;
    if roles
        .iter()
        .any(|r| r.client_id.is_none() && r.name == "admin")
    {
        return Ok(());
    }
    let Some((master, c)) = master_client_of(idp, name).await? else {
        return Ok(());
    };
    let ids: Vec<String> = idp
        .store
        .roles(&master.id, Some(&c.id))
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    idp.store
        .grant_roles(Holder::User(user_id), &ids, &[])
        .await?;
    Ok(())
}

/// Removes realm `name`'s `{realm}-realm` client from `master` (the realm
/// is gone), or renames it (`to`) with the realm.
pub async fn move_master_admin_client(
    idp: &Idp,
    name: &str,
    to: Option<&str>,
) -> Result<(), AdminError> {
    let Some((master, mut c)) = master_client_of(idp, name).await? else {
        return Ok(());
    };
    match to {
        None => idp.store.delete_client(&master.id, &c.id, &[]).await?,
        Some(new) => {
            c.client_id = master_admin_client(new);
            c.name = Some(format!("{new} Realm"));
            idp.store.update_client(&c, &[]).await?;
        }
    }
    Ok(())
}

/// The realm's default role, the composite every new user is granted.
/// Keycloak names it `default-roles-{realm}` when the realm is made and
/// keeps the role (and so the name) when the realm is renamed, and an
/// export names its own: the realm records it (`defaultRole`) rather than
/// have it derived from its current name.
pub fn default_role_name(realm: &Realm) -> String {
    realm
        .extra
        .get("defaultRole")
        .and_then(|d| d.get("name"))
        .and_then(serde_json::Value::as_str)
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("default-roles-{}", realm.name), str::to_owned)
}

/// The realm representation's `defaultRole`: scripts read its id to change
/// what every new user gets (`/roles-by-id/{id}/composites`).
pub async fn default_role_rep(
    idp: &Idp,
    realm: &Realm,
) -> Result<Option<serde_json::Value>, AdminError> {
    let Some(role) = idp
        .store
        .role_by_name(&realm.id, None, &default_role_name(realm))
        .await?
    else {
        return Ok(None);
    };
    let composite = !idp.store.composites(&role.id).await?.is_empty();
    Ok(Some(crate::repr::role_brief(&role, composite, &realm.id)))
}

/// `offline_access`, `uma_authorization` and the default role.
async fn default_roles(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
    let mut ids = vec![];
    for name in ["offline_access", "uma_authorization"] {
        let role = match idp.store.role_by_name(&realm.id, None, name).await? {
            Some(r) => r,
            None => {
                let r = Role {
                    id: gatehouse_core::id::uuid(),
                    realm_id: realm.id.clone(),
                    client_id: None,
                    name: name.into(),
                    description: Some(format!("${{role_{}}}", name.replace('_', "-"))),
                    attributes: Default::default(),
                };
                idp.store.create_role(&r, &[]).await?;
                r
            }
        };
        ids.push(role.id);
    }
    let dname = default_role_name(realm);
    if idp
        .store
        .role_by_name(&realm.id, None, &dname)
        .await?
        .is_none()
    {
        let d = Role {
            id: gatehouse_core::id::uuid(),
            realm_id: realm.id.clone(),
            client_id: None,
            name: dname,
            description: Some("${role_default-roles}".into()),
            attributes: Default::default(),
        };
        idp.store.create_role(&d, &[]).await?;
        idp.store.add_composites(&d.id, &ids, &[]).await?;
    }
    Ok(())
}

/// Keycloak's account roles: `(name, composites)`. A new user holds
/// `view-profile` and `manage-account` through the default roles, which is
/// what the Account REST API (`/realms/{realm}/account`) checks.
const ACCOUNT_ROLES: [(&str, &[&str]); 8] = [
    ("view-profile", &[]),
    ("manage-account", &["manage-account-links"]),
    ("manage-account-links", &[]),
    ("view-applications", &[]),
    ("view-consent", &[]),
    ("manage-consent", &["view-consent"]),
    ("delete-account", &[]),
    ("view-groups", &[]),
];

/// The account roles every user gets (Keycloak's `AccountRoles.DEFAULT`).
const ACCOUNT_DEFAULT: [&str; 2] = ["view-profile", "manage-account"];

/// The client whose roles make a realm's own administrators.
pub const REALM_MANAGEMENT: &str = "realm-management";
/// Its role that administers the whole realm (holds all the others).
pub const REALM_ADMIN: &str = "realm-admin";

/// Keycloak's `realm-management` roles besides `realm-admin`, with their
/// composites, each honoured per call as Keycloak does
/// (`admin::realm_management`).
pub(crate) const REALM_MANAGEMENT_ROLES: [(&str, &[&str]); 18] = [
    ("manage-realm", &[]),
    ("view-realm", &[]),
    ("manage-users", &[]),
    ("view-users", &["query-users", "query-groups"]),
    ("query-users", &[]),
    ("query-groups", &[]),
    ("manage-clients", &[]),
    ("view-clients", &["query-clients"]),
    ("query-clients", &[]),
    ("create-client", &[]),
    ("manage-events", &[]),
    ("view-events", &[]),
    ("manage-identity-providers", &[]),
    ("view-identity-providers", &[]),
    ("manage-authorization", &[]),
    ("view-authorization", &[]),
    ("impersonation", &[]),
    ("query-realms", &[]),
];

/// Creates the roles of `client`: `(name, composites)` in order, then
/// `all_in` (if given) holding every one of them. Returns the ids by name.
async fn client_roles(
    idp: &Idp,
    realm: &Realm,
    client: &gatehouse_core::model::Client,
    roles: &[(&str, &[&str])],
    all_in: Option<&str>,
) -> Result<std::collections::HashMap<String, String>, AdminError> {
    let mut ids = std::collections::HashMap::new();
    let names = roles.iter().map(|(n, _)| *n).chain(all_in);
    for name in names {
        let r = Role {
            id: gatehouse_core::id::uuid(),
            realm_id: realm.id.clone(),
            client_id: Some(client.id.clone()),
            name: name.into(),
            description: Some(format!("${{role_{name}}}")),
            attributes: Default::default(),
        };
        idp.store.create_role(&r, &[]).await?;
        ids.insert(name.to_owned(), r.id);
    }
    for (name, children) in roles {
        let children: Vec<String> = children.iter().map(|c| ids[*c].clone()).collect();
        if !children.is_empty() {
            idp.store
                .add_composites(&ids[*name], &children, &[])
                .await?;
        }
    }
    if let Some(all) = all_in {
        let children: Vec<String> = roles.iter().map(|(n, _)| ids[*n].clone()).collect();
        idp.store.add_composites(&ids[all], &children, &[]).await?;
    }
    Ok(ids)
}

/// Whether the realm has no client `client_id`.
async fn lacks(idp: &Idp, realm: &Realm, client_id: &str) -> Result<bool, AdminError> {
    Ok(idp
        .store
        .client_by_client_id(&realm.id, client_id)
        .await?
        .is_none())
}

/// Creates `admin-cli` as Keycloak makes it, unless the realm has one.
async fn ensure_admin_cli(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
    if lacks(idp, realm, "admin-cli").await? {
        let rep = json!({"clientId": "admin-cli", "name": "${client_admin-cli}", "publicClient": true,
                         "directAccessGrantsEnabled": true, "standardFlowEnabled": false});
        crate::admin::clients::create_client(idp, realm, &rep, vec![]).await?;
    }
    Ok(())
}

/// Keycloak gives every realm `admin-cli` (scripts log in to any realm
/// with it: public, password grant, no browser flow), `realm-management`
/// (its `realm-admin` role makes a realm's own administrators) and
/// `account`, the client whose roles say what a user may do to their own
/// account (tokens carry them, with `account` in `aud`, as Keycloak's do).
/// Keycloak's `broker` client (whose `read-token` role reads stored
/// provider tokens) and console clients are not made: provider tokens are
/// not stored and there is no console.
async fn builtin_clients(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
    ensure_admin_cli(idp, realm).await?;
    // `master`'s administrators hold its `admin` role instead.
    if realm.name != "master" && lacks(idp, realm, REALM_MANAGEMENT).await? {
        let rep = json!({"clientId": REALM_MANAGEMENT, "name": "${client_realm-management}",
                         "bearerOnly": true, "standardFlowEnabled": false});
        let c = crate::admin::clients::create_client(idp, realm, &rep, vec![]).await?;
        client_roles(idp, realm, &c, &REALM_MANAGEMENT_ROLES, Some(REALM_ADMIN)).await?;
    }
    if !lacks(idp, realm, "account").await? {
        return Ok(());
    }
    // No redirect URIs: Gatehouse serves no account console to sign in to.
    let rep = json!({"clientId": "account", "name": "${client_account}", "publicClient": true,
                     "rootUrl": "${authBaseUrl}", "baseUrl": format!("/realms/{}/account/", realm.name),
                     "attributes": {"post.logout.redirect.uris": "+"}});
    let account = crate::admin::clients::create_client(idp, realm, &rep, vec![]).await?;
    let ids = client_roles(idp, realm, &account, &ACCOUNT_ROLES, None).await?;
    let dname = default_role_name(realm);
    if let Some(d) = idp.store.role_by_name(&realm.id, None, &dname).await? {
        let defaults: Vec<String> = ACCOUNT_DEFAULT.iter().map(|n| ids[*n].clone()).collect();
        idp.store.add_composites(&d.id, &defaults, &[]).await?;
    }
    Ok(())
}

/// What bootstrap did, so the binary can print a generated password once.
pub struct Bootstrap {
    /// Set when a password was generated for the admin.
    pub generated_password: Option<String>,
    pub admin_user: Option<String>,
}

/// Ensures realm `master`, its `admin` role and `admin-cli`, and, if no user
/// holds `admin`, creates `username` with `password` (or a generated one).
pub async fn ensure_master(
    idp: &Idp,
    username: &str,
    password: Option<&str>,
) -> Result<Bootstrap, AdminError> {
    let master = match idp.store.realm_by_name("master").await? {
        Some(r) => {
            // A master stored by an older version may lack `admin-cli`,
            // which admins log in through.
            default_roles(idp, &r).await?;
            ensure_admin_cli(idp, &r).await?;
            // Realms stored by an older version lack their master client,
            // and may hold an export's key providers (another server's
            // private keys, in clear) in their JSON.
            for other in idp.store.realms().await? {
                ensure_master_admin_client(idp, &other.name).await?;
                crate::admin::key_providers::forget_stored(idp, &other).await?;
            }
            r
        }
        None => {
            let mut r = Realm::new("master");
            r.display_name = Some("Gatehouse".into());
            r.access_token_lifespan = 60;
            let scopes = gatehouse_core::model::builtin_client_scopes(&r.id);
            idp.store.create_realm(&r, &scopes, &[]).await?;
            realm_defaults(idp, &r).await?;
            r
        }
    };
    let admin_role = match idp.store.role_by_name(&master.id, None, "admin").await? {
        Some(r) => r,
        None => {
            let r = Role {
                id: gatehouse_core::id::uuid(),
                realm_id: master.id.clone(),
                client_id: None,
                name: "admin".into(),
                description: Some("${role_admin}".into()),
                attributes: Default::default(),
            };
            idp.store.create_role(&r, &[]).await?;
            r
        }
    };
    // As in Keycloak, `admin` contains `create-realm` (whoever may create
    // realms without administering them all holds it alone).
    if idp
        .store
        .role_by_name(&master.id, None, "create-realm")
        .await?
        .is_none()
    {
        let r = Role {
            id: gatehouse_core::id::uuid(),
            realm_id: master.id.clone(),
            client_id: None,
            name: "create-realm".into(),
            description: Some("${role_create-realm}".into()),
            attributes: Default::default(),
        };
        idp.store.create_role(&r, &[]).await?;
        idp.store
            .add_composites(&admin_role.id, std::slice::from_ref(&r.id), &[])
            .await?;
    }
    // Is there any admin already? Look through users holding the role directly.
    let any_admin = {
        let q = gatehouse_store::UserQuery {
            max: 1000,
            ..Default::default()
        };
        let mut found = false;
        for u in idp.store.users(&master.id, &q).await? {
            if idp
                .store
                .granted_roles(Holder::User(&u.id))
                .await?
                .iter()
                .any(|r| r.id == admin_role.id)
            {
                found = true;
                break;
            }
        }
        found
    };
    if any_admin {
        return Ok(Bootstrap {
            generated_password: None,
            admin_user: None,
        });
    }
    let (pw, generated) = match password {
        Some(p) if !p.is_empty() => (p.to_owned(), None),
        _ => {
            let p = gatehouse_core::id::token();
            (p.clone(), Some(p))
        }
    };
    let user = match idp.store.user_by_username(&master.id, username).await? {
        Some(u) => {
            let cred = crate::login::new_password(idp, &master, &u.id, &pw).await?;
            idp.store.set_credential(&cred, None, &[]).await?;
            u
        }
        None => {
            let rep = json!({"username": username, "enabled": true, "credentials": [{"type": "password", "value": pw}]});
            crate::admin::users::create_user(idp, &master, &rep, vec![], true).await?
        }
    };
    idp.store
        .grant_roles(Holder::User(&user.id), &[admin_role.id], &[])
        .await?;
    Ok(Bootstrap {
        generated_password: generated,
        admin_user: Some(user.username),
    })
}
