//! User federation, as Keycloak's user-storage SPI does it for LDAP in
//! `READ_ONLY` / `UNSYNCED` mode with import on: a login name Gatehouse
//! does not know is looked up in the realm's LDAP providers (by priority)
//! and, when found and the password binds, imported as a local user
//! linked to its provider (`federationLink`, attributes `LDAP_ID` and
//! `LDAP_ENTRY_DN`); from then on that user's password is checked by the
//! directory, never by a local hash. A sync imports (or refreshes) every
//! directory user at once; removing the provider removes the users it
//! imported. The directory side is `ldap.rs`.

use crate::admin::components::{self, Component};
use crate::error::AdminError;
use crate::ldap::{LDAP_ENTRY_DN, LDAP_ID, LdapProvider, LdapUser, STORAGE_TYPE};
use crate::state::Idp;
use gatehouse_core::model::{Realm, User};
use serde_json::{Value, json};

/// The realm's LDAP providers, enabled or not.
pub fn all(realm: &Realm) -> Vec<LdapProvider> {
    let mut out: Vec<LdapProvider> = components::all(realm)
        .iter()
        .filter(|c| c.provider_type == STORAGE_TYPE)
        .filter_map(LdapProvider::from_component)
        .collect();
    out.sort_by_key(|p| p.priority);
    out
}

/// The provider `id`, if it is an LDAP provider of the realm.
pub fn one(realm: &Realm, id: &str) -> Option<LdapProvider> {
    all(realm).into_iter().find(|p| p.id == id)
}

/// The user-storage component `id` (LDAP or another provider a Keycloak
/// export brought).
pub fn component(realm: &Realm, id: &str) -> Option<Component> {
    components::all(realm)
        .into_iter()
        .find(|c| c.id == id && c.provider_type == STORAGE_TYPE)
}

/// A login name no local user has: the directory user of that name (or
/// e-mail), imported, when an enabled provider knows exactly one.
/// Directory failures are logged and the next provider asked: a login
/// must not fail louder for an unknown name than for a wrong password.
pub async fn find_and_import(idp: &Idp, realm: &Realm, username: &str) -> Option<User> {
    for p in all(realm).iter().filter(|p| p.enabled && p.import_enabled) {
        let mut found = p.find(username, false).await;
        if matches!(found, Ok(None)) && username.contains('@') {
            found = p.find(username, true).await;
        }
        match found {
            Ok(Some(lu)) => {
                // A clash with a local user (same e-mail) keeps the login
                // out, as Keycloak's import refuses it.
                return match import(idp, realm, p, &lu).await {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::warn!(realm = %realm.name, provider = %p.name, error = %e.message,
                            "LDAP user not imported");
                        None
                    }
                };
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(realm = %realm.name, provider = %p.name, error = %e,
                "LDAP lookup failed"),
        }
    }
    None
}

/// Whether `password` is the password of `user`, imported from a
/// provider: None for a local user, and for a user of an `UNSYNCED`
/// provider who has a local password (set since the import; Keycloak
/// checks that one). A provider that is gone or disabled lets nobody in
/// (Keycloak: its users are then unavailable).
pub async fn check_password(
    realm: &Realm,
    user: &User,
    password: &str,
    has_local_password: bool,
) -> Option<bool> {
    let link = user.federation_link.as_deref()?;
    let Some(p) = one(realm, link).filter(|p| p.enabled) else {
        return Some(false);
    };
    if p.unsynced && has_local_password {
        return None;
    }
    let dn = user
        .attributes
        .get(LDAP_ENTRY_DN)
        .and_then(|v| v.first())
        .cloned();
    // The entry may have moved since the import: find it again by name.
    let dn = match dn {
        Some(dn) => dn,
        None => match p.find(&user.username, false).await {
            Ok(Some(lu)) => lu.dn,
            _ => return Some(false),
        },
    };
    match p.check_password(&dn, password).await {
        Ok(ok) => Some(ok),
        Err(e) => {
            tracing::warn!(realm = %realm.name, provider = %p.name, error = %e,
                "LDAP password check failed");
            Some(false)
        }
    }
}

/// Whether `user`'s password may not change here: imported from a
/// `READ_ONLY` provider (or one that is gone), as Keycloak refuses it.
pub fn password_read_only(realm: &Realm, user: &User) -> bool {
    user.federation_link
        .as_deref()
        .is_some_and(|l| one(realm, l).is_none_or(|p| !p.unsynced))
}

/// The UserRepresentation of a directory user: what Keycloak's default
/// mappers import.
fn representation(p: &LdapProvider, lu: &LdapUser, trust_email: bool) -> Value {
    json!({
        "username": lu.username,
        "email": lu.email,
        "firstName": lu.first_name,
        "lastName": lu.last_name,
        "enabled": true,
        "emailVerified": trust_email && lu.email.is_some(),
        "federationLink": p.id,
        "attributes": {LDAP_ID: [lu.uuid], LDAP_ENTRY_DN: [lu.dn]},
    })
}

fn trusts_email(realm: &Realm, p: &LdapProvider) -> bool {
    component(realm, &p.id)
        .and_then(|c| c.value("trustEmail").map(|v| v == "true"))
        .unwrap_or(false)
}

/// Imports a directory user as a new local user (default roles, groups
/// and required actions, as any new user).
async fn import(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    lu: &LdapUser,
) -> Result<User, AdminError> {
    let rep = representation(p, lu, trusts_email(realm, p));
    let u = crate::admin::users::create_user(idp, realm, &rep, vec![], true).await?;
    tracing::info!(realm = %realm.name, provider = %p.name, user = %u.username,
        "imported a user from LDAP");
    Ok(u)
}

/// What a sync did (Keycloak's SynchronizationResult).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncResult {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub failed: u64,
}

impl SyncResult {
    /// Keycloak's representation, with its status text.
    pub fn repr(&self) -> Value {
        let mut status = String::new();
        if self.added + self.updated + self.removed + self.failed == 0 {
            status.push_str("No users were changed");
        } else {
            let mut parts = vec![];
            if self.added > 0 {
                parts.push(format!("{} imported users", self.added));
            }
            if self.updated > 0 {
                parts.push(format!("{} updated users", self.updated));
            }
            if self.removed > 0 {
                parts.push(format!("{} removed users", self.removed));
            }
            if self.failed > 0 {
                parts.push(format!("{} users failed sync", self.failed));
            }
            status = parts.join(", ");
        }
        json!({"ignored": false, "added": self.added, "updated": self.updated,
               "removed": self.removed, "failed": self.failed, "status": status})
    }
}

/// Imports every directory user of `p` (with `since`, those created or
/// changed since that LDAP generalized time), refreshing the names and
/// e-mail of users imported before. A local user of the same name that
/// is not linked to `p` is left alone and counted as failed, as Keycloak
/// does.
pub async fn sync(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    since: Option<&str>,
) -> Result<SyncResult, AdminError> {
    let users = p
        .users(since)
        .await
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    let trust = trusts_email(realm, p);
    let mut r = SyncResult::default();
    for lu in users {
        match idp.store.user_by_username(&realm.id, &lu.username).await? {
            None => match import(idp, realm, p, &lu).await {
                Ok(_) => r.added += 1,
                Err(e) => {
                    tracing::warn!(realm = %realm.name, user = %lu.username, error = %e.message,
                        "LDAP sync could not import a user");
                    r.failed += 1;
                }
            },
            Some(mut u) if u.federation_link.as_deref() == Some(p.id.as_str()) => {
                if refresh(&mut u, &lu, trust) {
                    idp.store.update_user(&u, &[]).await?;
                    r.updated += 1;
                }
            }
            Some(_) => {
                tracing::warn!(realm = %realm.name, user = %lu.username,
                    "LDAP sync skipped a user: a local user has that name");
                r.failed += 1;
            }
        }
    }
    Ok(r)
}

/// Brings an imported user's names, e-mail and entry up to date with the
/// directory (what an admin set locally otherwise, such as `enabled`,
/// stays); whether anything changed.
fn refresh(u: &mut User, lu: &LdapUser, trust_email: bool) -> bool {
    let mut changed = false;
    let mut set = |field: &mut Option<String>, v: &Option<String>| {
        if field != v {
            field.clone_from(v);
            changed = true;
        }
    };
    set(&mut u.email, &lu.email);
    set(&mut u.first_name, &lu.first_name);
    set(&mut u.last_name, &lu.last_name);
    if trust_email && lu.email.is_some() && !u.email_verified {
        u.email_verified = true;
        changed = true;
    }
    for (k, v) in [(LDAP_ID, &lu.uuid), (LDAP_ENTRY_DN, &lu.dn)] {
        if u.attributes.get(k).and_then(|l| l.first()) != Some(v) {
            u.attributes.insert(k.to_owned(), vec![v.clone()]);
            changed = true;
        }
    }
    changed
}

/// The users imported from provider `id`.
pub async fn linked_users(idp: &Idp, realm: &Realm, id: &str) -> Result<Vec<User>, AdminError> {
    let q = gatehouse_store::UserQuery {
        federation_link: Some(id.to_owned()),
        include_service_accounts: true,
        max: i64::MAX,
        ..Default::default()
    };
    Ok(idp.store.users(&realm.id, &q).await?)
}

/// Deletes the users imported from provider `id` (Keycloak's
/// `remove-imported-users`, and what removing the provider does), ending
/// their sessions.
pub async fn remove_imported(idp: &Idp, realm: &Realm, id: &str) -> Result<u64, AdminError> {
    let users = linked_users(idp, realm, id).await?;
    for u in &users {
        idp.store.delete_user(&realm.id, &u.id, &[]).await?;
        idp.user_revoked(realm, &u.id).await?;
    }
    Ok(users.len() as u64)
}

/// Makes the users imported from provider `id` local users (Keycloak's
/// `unlink-users`): they keep their data, lose the link, and have no
/// password until one is set for them.
pub async fn unlink(idp: &Idp, realm: &Realm, id: &str) -> Result<u64, AdminError> {
    let users = linked_users(idp, realm, id).await?;
    for mut u in users.iter().cloned() {
        u.federation_link = None;
        idp.store.update_user(&u, &[]).await?;
    }
    Ok(users.len() as u64)
}
