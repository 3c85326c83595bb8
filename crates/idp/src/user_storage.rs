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
use crate::ldap::mappers::{GroupPath, Membership, Target};
use crate::ldap::{LDAP_ENTRY_DN, LDAP_ID, LdapProvider, LdapUser, STORAGE_TYPE};
use crate::state::Idp;
use gatehouse_core::model::{Group, Realm, Role, User};
use gatehouse_store::Holder;
use serde_json::{Value, json};

/// Attributes that tie a user to its directory entry: never changed
/// through the admin or account APIs (Keycloak's read-only attributes),
/// since the entry they name is the one whose password logs the user in.
pub const READ_ONLY_ATTRIBUTES: [&str; 2] = [LDAP_ID, LDAP_ENTRY_DN];

/// Puts back the read-only attributes as `old` had them (an admin's
/// update may name them or leave them out: neither changes them).
pub fn keep_read_only(
    attributes: &mut gatehouse_core::model::Attributes,
    old: &gatehouse_core::model::Attributes,
) {
    for k in READ_ONLY_ATTRIBUTES {
        match old.get(k) {
            Some(v) => attributes.insert(k.to_owned(), v.clone()),
            None => attributes.remove(k),
        };
    }
}

/// The realm's LDAP providers, enabled or not, by priority.
pub fn all(realm: &Realm) -> Vec<LdapProvider> {
    let mut out: Vec<LdapProvider> = components::stored(realm, STORAGE_TYPE)
        .iter()
        .filter_map(LdapProvider::from_component)
        .collect();
    out.sort_by_key(|p| p.priority);
    out
}

/// The provider `id`, if it is an LDAP provider of the realm.
pub fn one(realm: &Realm, id: &str) -> Option<LdapProvider> {
    component(realm, id).and_then(|c| LdapProvider::from_component(&c))
}

/// The user-storage component `id` (LDAP or another provider a Keycloak
/// export brought).
pub fn component(realm: &Realm, id: &str) -> Option<Component> {
    components::stored(realm, STORAGE_TYPE)
        .into_iter()
        .find(|c| c.id == id)
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
            Ok(Some(lu)) => return import(idp, realm, p, &lu).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(realm = %realm.name, provider = %p.name, error = %e,
                "LDAP lookup failed"),
        }
    }
    None
}

/// At a login of a user imported from a provider: its directory entry,
/// read once for the whole login (the password check and the groups use
/// it). When the directory now holds another entry under that name (a
/// different `LDAP_ID`: the old one deleted, a new person given the
/// name), the old local user is removed and the new entry imported, as
/// Keycloak re-creates such a user, so that the new person never inherits
/// the old one's groups, roles or sessions. A disabled provider is not
/// asked (its users cannot log in anyway), and a directory that does not
/// answer gives no entry; None when the user is gone.
pub async fn entry_at_login(
    idp: &Idp,
    realm: &Realm,
    user: User,
) -> Option<(User, Option<LdapUser>)> {
    let provider = user.federation_link.as_deref().and_then(|l| one(realm, l));
    let Some(p) = provider.filter(|p| p.enabled) else {
        return Some((user, None));
    };
    let lu = match p.find(&user.username, false).await {
        Ok(Some(lu)) => lu,
        _ => return Some((user, None)),
    };
    if !is_other_entry(&user, &lu) {
        return Some((user, Some(lu)));
    }
    tracing::warn!(realm = %realm.name, provider = %p.name, user = %user.username,
        "LDAP entry under this name is another one (LDAP_ID): re-creating the user");
    if let Err(e) = idp.store.delete_user(&realm.id, &user.id, &[]).await {
        tracing::warn!(error = %e, "stale LDAP user not removed");
        return None;
    }
    if let Err(e) = idp.user_revoked(realm, &user.id).await {
        tracing::warn!(error = %e, "stale LDAP user's tokens not revoked");
    }
    let fresh = import(idp, realm, &p, &lu).await?;
    Some((fresh, Some(lu)))
}

/// Before an admin's user search: the directory users it names that are
/// not imported yet are imported (as Keycloak's search does with import
/// on), so the listing shows them. Directory failures are logged; the
/// listing then shows what is already here.
pub async fn import_matching(idp: &Idp, realm: &Realm, q: &gatehouse_store::UserQuery) {
    let limit = i32::try_from(q.first.saturating_add(q.max).clamp(1, 1000)).unwrap_or(1000);
    for p in all(realm).iter().filter(|p| p.enabled && p.import_enabled) {
        let found = match p.matching(q, limit).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(realm = %realm.name, provider = %p.name, error = %e,
                    "LDAP search failed");
                continue;
            }
        };
        for lu in found {
            match idp.store.user_by_username(&realm.id, &lu.username).await {
                Ok(None) => {
                    import(idp, realm, p, &lu).await;
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(error = %e, "user lookup failed"),
            }
        }
    }
}

/// Whether `password` is the password of `user`, imported from a
/// provider: None for a local user, and for a user of an `UNSYNCED`
/// provider who has a local password (set since the import; Keycloak
/// checks that one). A provider that is disabled, or that Gatehouse
/// cannot run (a Keycloak export's Kerberos or custom one), lets nobody
/// in; a link to no provider at all (an export that left its provider
/// out) makes a local user, whose password an admin can set.
///
/// `entry` is the user's entry when the login already read it
/// ([`entry_at_login`]): its current DN is bound, and it gives the groups
/// without a second search.
pub async fn check_password(
    idp: &Idp,
    realm: &Realm,
    (user, entry): (&User, Option<&LdapUser>),
    password: &str,
    has_local_password: bool,
) -> Option<bool> {
    let c = component(realm, user.federation_link.as_deref()?)?;
    let Some(p) = LdapProvider::from_component(&c).filter(|p| p.enabled) else {
        return Some(false);
    };
    if p.unsynced && has_local_password {
        return None;
    }
    let stored = user.attributes.get(LDAP_ENTRY_DN).and_then(|v| v.first());
    // The entry may have moved since the import: find it again by name.
    let dn = match (entry, stored) {
        (Some(lu), _) => lu.dn.clone(),
        (None, Some(dn)) => dn.clone(),
        (None, None) => match p.find(&user.username, false).await {
            Ok(Some(lu)) => lu.dn,
            _ => return Some(false),
        },
    };
    match p.check_password(&dn, password).await {
        Ok(true) if p.mappers.assign() => Some(match entry {
            Some(lu) => apply_entry(idp, realm, &p, user, lu).await,
            None => reread(idp, realm, &p, user).await,
        }),
        Ok(ok) => Some(ok),
        Err(e) => {
            tracing::warn!(realm = %realm.name, provider = %p.name, error = %e,
                "LDAP password check failed");
            Some(false)
        }
    }
}

/// Before tokens are made for a directory user without a password (a
/// refresh, a login through the SSO session), the directory is asked
/// again, as Keycloak's `READ_ONLY` provider reads it whenever a token is
/// made: false when the provider is disabled (its users count as
/// disabled, as in Keycloak), the entry is gone or disabled (Active
/// Directory's account controls), or its groups and roles cannot be
/// brought up to date, so what the directory took away is not in a
/// refreshed token either.
pub async fn still_current(idp: &Idp, realm: &Realm, user: &User) -> bool {
    let Some(p) = user.federation_link.as_deref().and_then(|l| one(realm, l)) else {
        return true;
    };
    p.enabled && reread(idp, realm, &p, user).await
}

/// Whether `lu` is another directory entry than the one `user` was
/// imported from (its `LDAP_ID` differs: the old entry deleted, the name
/// given to someone new). A user without `LDAP_ID` is taken as that entry.
fn is_other_entry(user: &User, lu: &LdapUser) -> bool {
    user.attributes
        .get(LDAP_ID)
        .and_then(|v| v.first())
        .is_some_and(|id| *id != lu.uuid)
}

/// False, with why `user` gets no token in the log.
fn refused(realm: &Realm, p: &LdapProvider, user: &User, why: &str) -> bool {
    tracing::warn!(realm = %realm.name, provider = %p.name, user = %user.username,
        "LDAP user refused: {why}");
    false
}

/// The user's entry read again, then [`apply_entry`]; false when it is
/// gone or the directory does not answer.
async fn reread(idp: &Idp, realm: &Realm, p: &LdapProvider, user: &User) -> bool {
    match p.find(&user.username, false).await {
        Ok(Some(lu)) => apply_entry(idp, realm, p, user, &lu).await,
        Ok(None) => refused(realm, p, user, "gone from the directory"),
        Err(e) => refused(realm, p, user, &e.to_string()),
    }
}

/// The user brought in line with its entry `lu`: names, e-mail and
/// attributes, and its groups and roles as the directory has them now, so
/// that what it took away is not in the tokens about to be made. False,
/// and the reason in the log, when the entry is another one or disabled or
/// the memberships cannot be learnt: better no token than one with
/// memberships that may be stale.
async fn apply_entry(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    user: &User,
    lu: &LdapUser,
) -> bool {
    let refuse = |why: &str| refused(realm, p, user, why);
    // Another entry under the same name (the old one deleted, a new one
    // made): not the user these tokens were for.
    if is_other_entry(user, lu) {
        return refuse("the directory's entry of that name is another one (LDAP_ID)");
    }
    let mut fresh = user.clone();
    if refresh(&mut fresh, lu, p) {
        match idp.store.update_user(&fresh, &[]).await {
            Ok(()) => idp.invalidate(),
            Err(e) => tracing::warn!(error = %e, "LDAP user refresh failed"),
        }
    }
    if lu.disabled {
        return refuse("disabled in the directory");
    }
    match assign(idp, realm, p, user, lu).await {
        Ok(_) => true,
        Err(e) => refuse(&format!(
            "its groups and roles cannot be applied: {}",
            e.message
        )),
    }
}

/// Whether `user`'s password may not change here: imported from a
/// provider that is not `UNSYNCED` (Keycloak refuses it for `READ_ONLY`),
/// unless the provider is gone (see [`check_password`]).
pub fn password_read_only(realm: &Realm, user: &User) -> bool {
    let c = user
        .federation_link
        .as_deref()
        .and_then(|l| component(realm, l));
    c.is_some_and(|c| LdapProvider::from_component(&c).is_none_or(|p| !p.unsynced))
}

/// The UserRepresentation of a directory user: what Keycloak's default
/// mappers import.
fn representation(p: &LdapProvider, lu: &LdapUser) -> Value {
    let mut attributes = json!({LDAP_ID: [lu.uuid], LDAP_ENTRY_DN: [lu.dn]});
    for (k, v) in &lu.attributes {
        attributes[k] = json!(v);
    }
    for (k, v) in &p.mappers.fixed {
        attributes[k] = json!([v]);
    }
    json!({
        "username": lu.username,
        "email": lu.email,
        "firstName": lu.first_name,
        "lastName": lu.last_name,
        "enabled": !lu.disabled,
        "emailVerified": p.trust_email && lu.email.is_some(),
        "federationLink": p.id,
        "attributes": attributes,
    })
}

/// Imports a directory user as a new local user (default roles, groups
/// and required actions, as any new user). A clash with a local user
/// (the same e-mail) keeps it out, as Keycloak's import refuses it: None,
/// and the reason in the log.
async fn import(idp: &Idp, realm: &Realm, p: &LdapProvider, lu: &LdapUser) -> Option<User> {
    let rep = representation(p, lu);
    match crate::admin::users::create_user(idp, realm, &rep, vec![], true).await {
        Ok(u) => {
            tracing::info!(realm = %realm.name, provider = %p.name, user = %u.username,
                "imported a user from LDAP");
            if let Err(e) = assign(idp, realm, p, &u, lu).await {
                tracing::warn!(realm = %realm.name, provider = %p.name, user = %u.username,
                    error = %e.message, "LDAP groups and roles not applied");
            }
            Some(u)
        }
        Err(e) => {
            tracing::warn!(realm = %realm.name, provider = %p.name, user = %lu.username,
                error = %e.message, "LDAP user not imported");
            None
        }
    }
}

fn directory_failed(e: crate::ldap::LdapError) -> AdminError {
    AdminError::bad_request(e.to_string())
}

/// Brings `u`'s groups and role mappings in line with the provider's
/// group, role and hardcoded mappers: memberships the directory names
/// are added (groups and roles it names that Gatehouse lacks are
/// created, as Keycloak's mappers create them); memberships in groups and
/// roles the directory has but no longer lists the user in are removed.
/// Groups and roles the directory does not know (local ones, default
/// roles) are left alone. Whether anything changed.
pub async fn assign(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    u: &User,
    lu: &LdapUser,
) -> Result<bool, AdminError> {
    let m = &p.mappers;
    if !m.assign() {
        return Ok(false);
    }
    let found = p.memberships(lu).await.map_err(directory_failed)?;
    let mut groups = idp.store.groups(&realm.id).await?;
    let user_groups = idp.store.user_groups(&u.id).await?;
    let granted = idp.store.granted_roles(Holder::User(&u.id)).await?;
    let mut changed = false;
    for (ms, names) in m.memberships.iter().zip(found) {
        changed |= match &ms.target {
            Target::Groups(path) => {
                let scope = (p, ms, path.as_str());
                assign_groups(idp, realm, scope, (u, &user_groups), &names, &mut groups).await?
            }
            Target::RealmRoles | Target::ClientRoles(_) => {
                let owner = role_owner(idp, realm, ms).await?;
                let owner = owner.as_deref();
                let names: Vec<String> = names.iter().filter_map(|p| p.last().cloned()).collect();
                assign_roles(idp, realm, (p, ms), (u, &granted), &names, owner).await?
            }
        };
    }
    for r in &m.roles {
        // `clientId.role` or a realm role, read as Keycloak reads it.
        let Some(role) = crate::broker::mappers::role_named(idp, realm, r).await? else {
            tracing::warn!(realm = %realm.name, provider = %p.name, role = %r,
                "hardcoded LDAP role mapper names no role");
            continue;
        };
        if !granted.iter().any(|g| g.id == role.id) {
            idp.store
                .grant_roles(Holder::User(&u.id), &[role.id], &[])
                .await?;
            changed = true;
        }
    }
    for path in &m.groups {
        let Some(g) = crate::repr::group_by_path(&groups, path) else {
            tracing::warn!(realm = %realm.name, provider = %p.name, group = %path,
                "hardcoded LDAP group mapper names no group");
            continue;
        };
        if !user_groups.iter().any(|x| x.id == g.id) {
            idp.store.join_group(&u.id, &g.id, &[]).await?;
            changed = true;
        }
    }
    if changed {
        // Tokens are made from cached users and identities.
        idp.invalidate();
    }
    Ok(changed)
}

/// The group `name` directly under `parent` (None: top level), made
/// when missing (added to `groups`); its id and whether it was made.
async fn ensure_group(
    idp: &Idp,
    realm: &Realm,
    groups: &mut Vec<Group>,
    parent: &Option<String>,
    name: &str,
) -> Result<(String, bool), AdminError> {
    let here = groups
        .iter()
        .find(|g| &g.parent_id == parent && g.name.eq_ignore_ascii_case(name));
    if let Some(g) = here {
        return Ok((g.id.clone(), false));
    }
    let g = Group {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        parent_id: parent.clone(),
        name: name.to_owned(),
        description: None,
        attributes: Default::default(),
    };
    idp.store.create_group(&g, &[]).await?;
    let id = g.id.clone();
    groups.push(g);
    Ok((id, true))
}

/// The realm role (or role of client `owner`, an internal id) `name`,
/// made when missing; its id and whether it was made.
async fn ensure_role(
    idp: &Idp,
    realm: &Realm,
    owner: Option<&str>,
    name: &str,
) -> Result<(String, bool), AdminError> {
    if let Some(r) = idp.store.role_by_name(&realm.id, owner, name).await? {
        return Ok((r.id, false));
    }
    let r = Role {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        client_id: owner.map(str::to_owned),
        name: name.to_owned(),
        description: None,
        attributes: Default::default(),
    };
    idp.store.create_role(&r, &[]).await?;
    Ok((r.id, true))
}

/// The internal id of the client whose roles a role mapper maps (None
/// for realm roles); an error for a `client.id` the realm lacks.
async fn role_owner(
    idp: &Idp,
    realm: &Realm,
    ms: &Membership,
) -> Result<Option<String>, AdminError> {
    let Target::ClientRoles(client_id) = &ms.target else {
        return Ok(None);
    };
    match idp.store.client_by_client_id(&realm.id, client_id).await? {
        Some(c) => Ok(Some(c.id)),
        None => Err(AdminError::bad_request(format!(
            "role mapper {}: no client {client_id}",
            ms.name
        ))),
    }
}

/// Of `held` (names of what the user holds in the mapper's scope that the
/// directory did not list), those the directory has: the memberships to
/// remove.
async fn stale(
    p: &LdapProvider,
    ms: &Membership,
    held: Vec<(String, String)>,
) -> Result<Vec<String>, AdminError> {
    if held.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<String> = held.iter().map(|(_, n)| n.clone()).collect();
    let known = p.existing(ms, &names).await.map_err(directory_failed)?;
    Ok(held
        .into_iter()
        .filter(|(_, n)| known.iter().any(|k| k.eq_ignore_ascii_case(n)))
        .map(|(id, _)| id)
        .collect())
}

/// A group mapper's memberships for `u`: the groups at `paths` under
/// the mapper's `path` (created when missing).
async fn assign_groups(
    idp: &Idp,
    realm: &Realm,
    (p, ms, path): (&LdapProvider, &Membership, &str),
    (u, user_groups): (&User, &[Group]),
    paths: &[GroupPath],
    groups: &mut Vec<Group>,
) -> Result<bool, AdminError> {
    let base = group_parent(groups, ms, path)?;
    let mut wanted = Vec::with_capacity(paths.len());
    for path in paths {
        wanted.push(ensure_path(idp, realm, groups, &base, path).await?.0);
    }
    let mut changed = false;
    for id in &wanted {
        if !user_groups.iter().any(|g| &g.id == id) {
            idp.store.join_group(&u.id, id, &[]).await?;
            changed = true;
        }
    }
    // What the mapper governs: the groups right under its path, or with
    // nesting kept the whole tree under it.
    let governed = |g: &Group| {
        if ms.nested {
            under(groups, g, &base)
        } else {
            g.parent_id == base
        }
    };
    let held = user_groups
        .iter()
        .filter(|g| governed(g) && !wanted.contains(&g.id))
        .map(|g| (g.id.clone(), g.name.clone()))
        .collect();
    for id in stale(p, ms, held).await? {
        idp.store.leave_group(&u.id, &id, &[]).await?;
        changed = true;
    }
    Ok(changed)
}

/// Whether `g` is below `base` (None: the realm's top level, so any
/// group is).
fn under(groups: &[Group], g: &Group, base: &Option<String>) -> bool {
    let Some(base) = base else {
        return true;
    };
    let mut at = g.parent_id.as_ref();
    for _ in 0..64 {
        match at {
            Some(p) if p == base => return true,
            Some(p) => {
                at = groups
                    .iter()
                    .find(|x| &x.id == p)
                    .and_then(|x| x.parent_id.as_ref())
            }
            None => return false,
        }
    }
    false
}

/// The group at `path` below `base`, each missing group on the way made;
/// the last one's id and whether any was made.
async fn ensure_path(
    idp: &Idp,
    realm: &Realm,
    groups: &mut Vec<Group>,
    base: &Option<String>,
    path: &[String],
) -> Result<(String, bool), AdminError> {
    let mut parent = base.clone();
    let mut made = false;
    for name in path {
        let (id, new) = ensure_group(idp, realm, groups, &parent, name).await?;
        made |= new;
        parent = Some(id);
    }
    parent
        .filter(|_| !path.is_empty())
        .map(|id| (id, made))
        .ok_or_else(|| AdminError::bad_request("empty group path"))
}

/// A role mapper's role mappings for `u`: the realm roles (or roles of
/// client `owner`) named `names` (created when missing).
async fn assign_roles(
    idp: &Idp,
    realm: &Realm,
    (p, ms): (&LdapProvider, &Membership),
    (u, granted): (&User, &[Role]),
    names: &[String],
    owner: Option<&str>,
) -> Result<bool, AdminError> {
    let mut wanted = Vec::with_capacity(names.len());
    for name in names {
        wanted.push(ensure_role(idp, realm, owner, name).await?.0);
    }
    let add: Vec<String> = wanted
        .iter()
        .filter(|id| !granted.iter().any(|g| &g.id == *id))
        .cloned()
        .collect();
    let held = granted
        .iter()
        .filter(|r| r.client_id.as_deref() == owner && !wanted.contains(&r.id))
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    let remove = stale(p, ms, held).await?;
    if !add.is_empty() {
        idp.store
            .grant_roles(Holder::User(&u.id), &add, &[])
            .await?;
    }
    if !remove.is_empty() {
        idp.store
            .revoke_roles(Holder::User(&u.id), &remove, &[])
            .await?;
    }
    Ok(!add.is_empty() || !remove.is_empty())
}

/// The parent a group mapper's groups go under: None for `/`; an error
/// for a path with no group.
fn group_parent(
    groups: &[Group],
    ms: &Membership,
    path: &str,
) -> Result<Option<String>, AdminError> {
    match path.trim_end_matches('/') {
        "" => Ok(None),
        path => crate::repr::group_by_path(groups, path)
            .map(|g| Some(g.id.clone()))
            .ok_or_else(|| {
                AdminError::bad_request(format!("group mapper {}: no group {path}", ms.name))
            }),
    }
}

/// A mapper's sync from the directory (`/user-storage/{id}/mappers/{mapper}/sync`):
/// the groups (or roles) of a membership mapper created here when
/// missing, and with `drop.non.existing.groups.during.sync` the groups
/// under the mapper's path that the directory no longer has removed.
/// Other mappers have nothing to sync.
pub async fn sync_mapper(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    mapper: &str,
) -> Result<SyncResult, AdminError> {
    let mut r = SyncResult::default();
    let Some(ms) = p.mappers.memberships.iter().find(|m| m.id == mapper) else {
        return Ok(r);
    };
    let mut paths = p.group_paths(ms).await.map_err(directory_failed)?;
    // Parents before their subgroups, so each group made counts as added.
    paths.sort_by_key(Vec::len);
    let count = |r: &mut SyncResult, made: bool| {
        if made {
            r.added += 1;
        } else {
            r.updated += 1;
        }
    };
    match &ms.target {
        Target::Groups(path) => {
            let mut groups = idp.store.groups(&realm.id).await?;
            let base = group_parent(&groups, ms, path)?;
            let mut synced = Vec::with_capacity(paths.len());
            for path in &paths {
                let (id, made) = ensure_path(idp, realm, &mut groups, &base, path).await?;
                count(&mut r, made);
                synced.push(id);
            }
            if ms.drop_missing {
                // The groups the directory no longer has, topmost first
                // (removing a group removes its subgroups).
                let keep = |g: &Group| {
                    synced.contains(&g.id)
                        || groups.iter().any(|c| {
                            synced.contains(&c.id) && under(&groups, c, &Some(g.id.clone()))
                        })
                };
                let gone: Vec<&Group> = groups
                    .iter()
                    .filter(|g| g.parent_id == base || (ms.nested && under(&groups, g, &base)))
                    .filter(|g| !keep(g))
                    .collect();
                for g in &gone {
                    let parent_gone = gone.iter().any(|o| Some(&o.id) == g.parent_id.as_ref());
                    if !parent_gone {
                        idp.store.delete_group(&realm.id, &g.id, &[]).await?;
                        r.removed += 1;
                    }
                }
            }
        }
        Target::RealmRoles | Target::ClientRoles(_) => {
            let owner = role_owner(idp, realm, ms).await?;
            for name in paths.iter().filter_map(|p| p.last()) {
                count(
                    &mut r,
                    ensure_role(idp, realm, owner.as_deref(), name).await?.1,
                );
            }
        }
    }
    idp.invalidate();
    Ok(r)
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
async fn sync(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    since: Option<&str>,
) -> Result<SyncResult, AdminError> {
    let users = p
        .users(since)
        .await
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    let mut r = SyncResult::default();
    for lu in users {
        match idp.store.user_by_username(&realm.id, &lu.username).await? {
            None => match import(idp, realm, p, &lu).await {
                Some(_) => r.added += 1,
                None => r.failed += 1,
            },
            // Linked, but to another entry of that name: not this one to
            // update (Keycloak counts it failed; the next login re-creates
            // the user).
            Some(u)
                if u.federation_link.as_deref() == Some(p.id.as_str())
                    && is_other_entry(&u, &lu) =>
            {
                tracing::warn!(realm = %realm.name, user = %lu.username,
                    "LDAP sync skipped a user: linked to another entry of that name");
                r.failed += 1;
            }
            Some(mut u) if u.federation_link.as_deref() == Some(p.id.as_str()) => {
                let mut changed = refresh(&mut u, &lu, p);
                if changed {
                    idp.store.update_user(&u, &[]).await?;
                }
                match assign(idp, realm, p, &u, &lu).await {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        tracing::warn!(realm = %realm.name, user = %lu.username,
                            error = %e.message, "LDAP sync could not apply groups and roles");
                        r.failed += 1;
                        continue;
                    }
                }
                if changed {
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
fn refresh(u: &mut User, lu: &LdapUser, p: &LdapProvider) -> bool {
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
    // Disabled in the directory: disabled here (a user the directory
    // enables again stays as an admin here left it).
    if lu.disabled && u.enabled {
        u.enabled = false;
        changed = true;
    }
    if p.trust_email && lu.email.is_some() && !u.email_verified {
        u.email_verified = true;
        changed = true;
    }
    // The mapped attributes: as the entry has them, gone when it has none.
    for (model, _) in &p.mappers.attributes {
        if matches!(model.as_str(), "email" | "firstName" | "lastName") {
            continue;
        }
        match lu.attributes.get(model) {
            Some(v) if u.attributes.get(model) != Some(v) => {
                u.attributes.insert(model.clone(), v.clone());
                changed = true;
            }
            None if u.attributes.remove(model).is_some() => changed = true,
            _ => {}
        }
    }
    for (k, v) in [(LDAP_ID, &lu.uuid), (LDAP_ENTRY_DN, &lu.dn)] {
        if u.attributes.get(k).and_then(|l| l.first()) != Some(v) {
            u.attributes.insert(k.to_owned(), vec![v.clone()]);
            changed = true;
        }
    }
    changed
}

/// A sync as the admin API and the scheduler run it: with
/// `changed_only`, the entries created or changed since the provider's
/// last sync (all of them the first time); the start of the sync is then
/// kept in the component's `lastSync`, as Keycloak keeps it.
pub async fn run_sync(
    idp: &Idp,
    realm: &Realm,
    p: &LdapProvider,
    changed_only: bool,
) -> Result<SyncResult, AdminError> {
    let started = gatehouse_core::time::now();
    let since = p.last_sync.filter(|_| changed_only).map(generalized_time);
    let r = sync(idp, realm, p, since.as_deref()).await?;
    // Under the realm's edit lock, on the realm as it is now.
    let (mut realm, _edit) = crate::admin::realm_for_edit(idp, realm).await?;
    let stored = realm
        .extra
        .get_mut("components")
        .and_then(|c| c.get_mut(STORAGE_TYPE))
        .and_then(Value::as_array_mut)
        .and_then(|list| list.iter_mut().find(|c| c["id"] == p.id.as_str()))
        .and_then(|c| c.get_mut("config"))
        .and_then(Value::as_object_mut);
    if let Some(config) = stored {
        config.insert("lastSync".into(), json!([started.to_string()]));
        idp.store.update_realm(&realm, &[]).await?;
    }
    Ok(r)
}

/// Unix seconds as LDAP generalized time (`20261206193616Z`).
fn generalized_time(t: i64) -> String {
    let (y, m, d) = gatehouse_core::time::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// How often the scheduler looks for syncs that are due.
const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the providers' periodic syncs (`fullSyncPeriod`,
/// `changedSyncPeriod`), each first one period after the server starts
/// or the provider appears, as Keycloak's timers do.
pub fn spawn_periodic_sync(idp: std::sync::Arc<Idp>) {
    tokio::spawn(async move {
        let mut last = std::collections::HashMap::new();
        let mut tick = tokio::time::interval(SCHEDULE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_due(&idp, &mut last, gatehouse_core::time::now()).await {
                tracing::warn!(error = %e.message, "periodic LDAP sync failed");
            }
        }
    });
}

/// Which sync of `p` is due at `now` (true: changed users only), given
/// when its last full and changed-users syncs ran.
fn due(p: &LdapProvider, (full, changed): (i64, i64), now: i64) -> Option<bool> {
    if p.full_sync_period.is_some_and(|s| now - full >= s) {
        Some(false)
    } else if p.changed_sync_period.is_some_and(|s| now - changed >= s) {
        Some(true)
    } else {
        None
    }
}

async fn run_due(
    idp: &Idp,
    last: &mut std::collections::HashMap<String, (i64, i64)>,
    now: i64,
) -> Result<(), AdminError> {
    for realm in idp.store.realms().await? {
        for p in all(&realm).iter().filter(|p| p.enabled && p.import_enabled) {
            let when = *last.entry(p.id.clone()).or_insert((now, now));
            let Some(changed_only) = due(p, when, now) else {
                continue;
            };
            // Whatever happens, the next attempt waits a period.
            last.insert(
                p.id.clone(),
                if changed_only {
                    (when.0, now)
                } else {
                    (now, now)
                },
            );
            match run_sync(idp, &realm, p, changed_only).await {
                Ok(r) => tracing::info!(realm = %realm.name, provider = %p.name,
                    status = %r.repr()["status"], "periodic LDAP sync"),
                Err(e) => tracing::warn!(realm = %realm.name, provider = %p.name,
                    error = %e.message, "periodic LDAP sync failed"),
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(full: &str, changed: &str) -> Option<LdapProvider> {
        let config = json!({"editMode": ["READ_ONLY"], "fullSyncPeriod": [full],
            "changedSyncPeriod": [changed]});
        LdapProvider::from_component(&Component {
            id: "p".into(),
            name: "p".into(),
            provider_id: crate::ldap::PROVIDER_ID.into(),
            provider_type: STORAGE_TYPE.into(),
            config: config.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        })
    }

    #[test]
    fn a_full_sync_comes_before_a_changed_one_and_minus_one_means_never() {
        let both = provider("100", "10");
        assert_eq!(both.as_ref().and_then(|p| due(p, (0, 0), 9)), None);
        assert_eq!(both.as_ref().and_then(|p| due(p, (0, 0), 10)), Some(true));
        assert_eq!(
            both.as_ref().and_then(|p| due(p, (0, 95), 100)),
            Some(false)
        );
        let never = provider("-1", "-1");
        assert_eq!(never.as_ref().and_then(|p| due(p, (0, 0), 1 << 40)), None);
    }

    #[test]
    fn sync_times_are_ldap_generalized_time_in_utc() {
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(1_796_585_776), "20261206193616Z");
    }
}
