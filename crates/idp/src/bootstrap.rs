//! First start: realm `master` with the `admin` role, the public `admin-cli`
//! client (password grant allowed, as in Keycloak) and the bootstrap admin
//! user. Also the defaults every realm gets.

use crate::error::AdminError;
use crate::state::Idp;
use gatehouse_core::model::{Realm, Role};
use gatehouse_store::Holder;
use serde_json::json;

/// Roles and clients every new realm has: `offline_access`,
/// `uma_authorization`, and the composite `default-roles-{realm}` that every
/// new user is granted.
pub async fn realm_defaults(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
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
    let dname = format!("default-roles-{}", realm.name);
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
        Some(r) => r,
        None => {
            let mut r = Realm::new("master");
            r.display_name = Some("Gatehouse".into());
            r.access_token_lifespan = 60;
            let scopes = gatehouse_core::model::builtin_client_scopes(&r.id);
            idp.store.create_realm(&r, &scopes, &[]).await?;
            r
        }
    };
    realm_defaults(idp, &master).await?;
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
    if idp
        .store
        .client_by_client_id(&master.id, "admin-cli")
        .await?
        .is_none()
    {
        let rep = json!({"clientId": "admin-cli", "publicClient": true, "directAccessGrantsEnabled": true,
                         "standardFlowEnabled": false, "name": "${client_admin-cli}"});
        crate::admin::clients::create_client(idp, &master, &rep, vec![]).await?;
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
            let cred = crate::login::new_password(idp, &u.id, &pw).await?;
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
