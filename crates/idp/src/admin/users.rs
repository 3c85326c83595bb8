//! `/admin/realms/{realm}/users...`: users, their passwords, groups,
//! sessions. Role mappings live in `roles.rs`.

use super::user_profile::{Policy, Unmanaged};
use super::{RealmAdmin, created, event, json_body};
use crate::action_token::ActionToken;
use crate::error::AdminError;
use crate::profile_rules;
use crate::repr;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gatehouse_core::model::{Event, Realm, User};
use gatehouse_store::{Memberships, UserQuery};
use serde_json::{Value, json};
use std::sync::Arc;

/// User routes.
pub fn routes() -> Router<Arc<Idp>> {
    const U: &str = "/admin/realms/{realm}/users";
    Router::new()
        .route(U, get(list).post(create))
        .route(&format!("{U}/count"), get(count))
        .route(&format!("{U}/{{id}}"), get(one).put(update).delete(remove))
        .route(&format!("{U}/{{id}}/reset-password"), put(reset_password))
        .route(&format!("{U}/{{id}}/groups"), get(groups))
        .route(&format!("{U}/{{id}}/groups/count"), get(groups_count))
        .route(&format!("{U}/{{id}}/credentials"), get(credentials))
        .route(
            &format!("{U}/{{id}}/credentials/{{cid}}"),
            axum::routing::delete(delete_credential),
        )
        .route(
            &format!("{U}/{{id}}/groups/{{gid}}"),
            put(join).delete(leave),
        )
        .route(&format!("{U}/{{id}}/sessions"), get(sessions))
        .route(
            &format!("{U}/{{id}}/offline-sessions/{{cid}}"),
            get(offline_sessions),
        )
        .route(&format!("{U}/{{id}}/consents"), get(consents))
        .route(
            &format!("{U}/{{id}}/consents/{{client}}"),
            axum::routing::delete(revoke_consent),
        )
        .route(
            &format!("{U}/{{id}}/credentials/{{cid}}/userLabel"),
            put(credential_label),
        )
        .route(
            &format!("{U}/{{id}}/credentials/{{cid}}/moveToFirst"),
            post(move_to_first),
        )
        .route(
            &format!("{U}/{{id}}/credentials/{{cid}}/moveAfter/{{after}}"),
            post(move_after),
        )
        .route(
            &format!("{U}/{{id}}/configured-user-storage-credential-types"),
            get(none_yet),
        )
        .route(&format!("{U}/{{id}}/logout"), post(logout))
        .route(&format!("{U}/{{id}}/remove-totp"), put(remove_totp))
        .route(
            &format!("{U}/{{id}}/disable-credential-types"),
            put(disable_credential_types),
        )
        .route(
            &format!("{U}/{{id}}/reset-password-email"),
            put(reset_password_email),
        )
        .route(
            &format!("{U}/{{id}}/execute-actions-email"),
            put(execute_actions_email),
        )
        .route(
            &format!("{U}/{{id}}/send-verify-email"),
            put(send_verify_email),
        )
        .route(
            &format!("{U}/{{id}}/unmanagedAttributes"),
            get(unmanaged_attributes),
        )
        .route(
            "/admin/realms/{realm}/sessions/{sid}",
            axum::routing::delete(delete_session),
        )
}

/// Loads a user of the realm or 404 "User not found".
pub async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<User, AdminError> {
    idp.store
        .user(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::not_found("User"))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchQuery {
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    search: Option<String>,
    /// `key:value key2:"a value"`: custom attributes, or the built-in
    /// fields under their representation names.
    q: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    exact: Option<bool>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    email_verified: Option<bool>,
    first: Option<i64>,
    max: Option<i64>,
    /// Users linked at this identity provider, with this account there.
    idp_alias: Option<String>,
    idp_user_id: Option<String>,
    /// Keycloak's brief form: no attributes, required actions or TOTP flag.
    #[serde(default, deserialize_with = "super::lenient_bool")]
    brief_representation: Option<bool>,
}

/// The fields of Keycloak's brief UserRepresentation (and `access`).
const BRIEF_USER: [&str; 9] = [
    "id",
    "username",
    "firstName",
    "lastName",
    "email",
    "emailVerified",
    "enabled",
    "createdTimestamp",
    "access",
];

/// Cuts an admin view of a user down to Keycloak's brief representation.
pub fn make_brief(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| BRIEF_USER.contains(&k.as_str()));
    }
}

impl SearchQuery {
    fn to_query(&self) -> Result<UserQuery, AdminError> {
        let mut q = UserQuery {
            username: self.username.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            search: self.search.clone(),
            exact: self.exact.unwrap_or(false),
            enabled: self.enabled,
            attributes: vec![],
            idp_alias: self.idp_alias.clone(),
            idp_user_id: self.idp_user_id.clone(),
            email_verified: self.email_verified,
            federation_link: None,
            include_service_accounts: false,
            first: self.first.unwrap_or(0),
            max: self.max.unwrap_or(100),
        };
        for (k, v) in attribute_query(self.q.as_deref().unwrap_or(""))
            .ok_or_else(|| AdminError::bad_request("Invalid query q"))?
        {
            let field = match k.as_str() {
                "username" => &mut q.username,
                "email" => &mut q.email,
                "firstName" => &mut q.first_name,
                "lastName" => &mut q.last_name,
                _ => {
                    q.attributes.push((k, v));
                    continue;
                }
            };
            field.get_or_insert(v);
        }
        Ok(q)
    }
}

/// Reads Keycloak's `q` search: space-separated `key:value` pairs, where a
/// key or value with spaces is written in double quotes. None when a pair
/// has no colon or a quote is left open.
pub(super) fn attribute_query(q: &str) -> Option<Vec<(String, String)>> {
    fn token<'a>(s: &'a str, stop: &[char]) -> Option<(String, &'a str)> {
        match s.strip_prefix('"') {
            Some(rest) => {
                let end = rest.find('"')?;
                Some((rest[..end].to_owned(), &rest[end + 1..]))
            }
            None => {
                let end = s.find(stop).unwrap_or(s.len());
                Some((s[..end].to_owned(), &s[end..]))
            }
        }
    }
    let mut out = vec![];
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let (k, after) = token(rest, &[':', ' '])?;
        let after = after.strip_prefix(':')?;
        // A value runs to the next space (it may hold colons: URLs).
        let (v, after) = token(after, &[' '])?;
        if k.is_empty() {
            return None;
        }
        out.push((k, v));
        rest = after.trim_start();
    }
    Some(out)
}

async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, AdminError> {
    let users = match q.search.as_deref().and_then(|s| s.strip_prefix("id:")) {
        // Keycloak's `search=id:{id}`: the one user with that id.
        Some(id) => idp
            .store
            .user(&realm.id, id.trim())
            .await?
            .into_iter()
            .collect(),
        None => {
            let query = q.to_query()?;
            crate::user_storage::import_matching(&idp, &realm, &query).await;
            idp.store.users(&realm.id, &query).await?
        }
    };
    let policy = Policy::of(&realm);
    let brief = q.brief_representation == Some(true);
    Ok(Json(json!(
        users
            .iter()
            .map(|u| {
                let mut v = admin_view(u, &policy);
                if brief {
                    make_brief(&mut v);
                }
                v
            })
            .collect::<Vec<_>>()
    )))
}

async fn count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!(
        idp.store.count_users(&realm.id, &q.to_query()?).await?
    )))
}

/// Validates a CredentialRepresentation of type password and returns the
/// password and whether it is temporary.
fn password_of(cred: &Value) -> Result<(String, bool), AdminError> {
    if cred
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("password")
        != "password"
    {
        return Err(AdminError::bad_request(
            "Only password credentials are supported",
        ));
    }
    let v = cred
        .get("value")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdminError::bad_request("Password value is required"))?;
    Ok((
        v.to_owned(),
        cred.get("temporary")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    ))
}

/// Creates a user from a UserRepresentation (admin API and import): the
/// plain-text `credentials` are hashed; imported hashed credentials kept;
/// `groups` (paths) joined; with `defaults`, the realm's default role and
/// groups too (an import carries its own). One transaction.
pub async fn create_user(
    idp: &Idp,
    realm: &Realm,
    rep: &Value,
    ev: Vec<Event>,
    defaults: bool,
) -> Result<User, AdminError> {
    create_user_granting(idp, realm, rep, ev, defaults, &[]).await
}

/// [`create_user`], also granting the roles `roles` (ids) in the same
/// transaction: a brokered login's mappers decide them.
pub async fn create_user_granting(
    idp: &Idp,
    realm: &Realm,
    rep: &Value,
    ev: Vec<Event>,
    defaults: bool,
    roles: &[String],
) -> Result<User, AdminError> {
    let username = rep
        .get("username")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::bad_request("User name is missing"))?;
    let mut u = User::new(&realm.id, username);
    if let Some(id) = rep.get("id").and_then(Value::as_str) {
        u.id = id.to_owned();
    }
    if let Some(t) = rep.get("createdTimestamp").and_then(Value::as_i64) {
        u.created_timestamp = t;
    }
    repr::apply_user(&mut u, rep).map_err(AdminError::bad_request)?;
    // Links come with a new user only, as in Keycloak (an update leaves
    // them to the federated-identity resource).
    u.federated_identities = super::federated_identities::parse(rep)?;
    // A user imported from a directory (LDAP import, a realm export's
    // `federationLink`) keeps the provider that checks its password.
    u.federation_link = rep
        .get("federationLink")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if idp
        .store
        .user_by_username(&realm.id, &u.username)
        .await?
        .is_some()
    {
        return Err(AdminError::conflict("User exists with same username"));
    }
    if let Some(e) = &u.email
        && !realm.flag("duplicateEmailsAllowed")
        && idp.store.user_by_email(&realm.id, e).await?.is_some()
    {
        return Err(AdminError::conflict("User exists with same email"));
    }
    let mut creds: Vec<gatehouse_core::model::Credential> = Vec::new();
    for c in rep
        .get("credentials")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or("password");
        // One password (Keycloak's users have one); every authenticator
        // app and the whole password history are kept.
        if kind == "password" && creds.iter().any(|have| have.kind == kind) {
            continue;
        }
        if let (Some(cd), Some(sd)) = (
            c.get("credentialData").and_then(Value::as_str),
            c.get("secretData").and_then(Value::as_str),
        ) {
            if !["password", "password-history", crate::otp::KIND].contains(&kind) {
                return Err(AdminError::bad_request(format!(
                    "Credentials of type {kind} are not supported"
                )));
            }
            // An imported Keycloak credential, used as it is (a password
            // hash is rehashed on the first login).
            creds.push(gatehouse_core::model::Credential {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(gatehouse_core::id::uuid),
                user_id: u.id.clone(),
                kind: kind.to_owned(),
                created_date: c
                    .get("createdDate")
                    .and_then(Value::as_i64)
                    .unwrap_or_else(gatehouse_core::time::now_millis),
                credential_data: cd.to_owned(),
                secret_data: sd.to_owned(),
                user_label: c
                    .get("userLabel")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                // Placed in the order the list gives, as Keycloak's import.
                priority: 0,
            });
        } else {
            let (pw, temporary) = password_of(c)?;
            // An admin's (or a registration's) password meets the realm's
            // policy; an import's is taken as the export had it.
            if defaults
                && crate::password_policy::check(realm, &pw, &u.username, u.email.as_deref())
                    .is_err()
            {
                return Err(AdminError::bad_request("Password policy not met"));
            }
            creds.push(crate::login::new_password(idp, realm, &u.id, &pw).await?);
            if temporary && !u.required_actions.iter().any(|a| a == "UPDATE_PASSWORD") {
                u.required_actions.push("UPDATE_PASSWORD".into());
            }
        }
    }
    let mut links = if defaults {
        // As in Keycloak, the registry's default actions join those asked.
        for a in super::required_actions::defaults(realm) {
            if !u.required_actions.contains(&a) {
                u.required_actions.push(a);
            }
        }
        default_memberships(idp, realm).await?
    } else {
        Memberships::default()
    };
    if let Some(paths) = rep.get("groups").and_then(Value::as_array) {
        let all = idp.store.groups(&realm.id).await?;
        for p in paths.iter().filter_map(Value::as_str) {
            let g = repr::group_by_path(&all, p)
                .ok_or_else(|| AdminError::bad_request(format!("Group {p} not found")))?;
            links.groups.push(g.id.clone());
        }
    }
    links.roles.extend(roles.iter().cloned());
    idp.store.create_user(&u, &creds, &links, &ev).await?;
    Ok(u)
}

/// What every new user of `realm` starts with, as in Keycloak: the
/// `default-roles-{realm}` composite and the realm's default groups.
pub async fn default_memberships(
    idp: &Idp,
    realm: &Realm,
) -> Result<Memberships, gatehouse_store::Error> {
    let mut links = Memberships::default();
    if let Some(d) = idp
        .store
        .role_by_name(&realm.id, None, &crate::bootstrap::default_role_name(realm))
        .await?
    {
        links.roles.push(d.id);
    }
    let paths = crate::repr::default_group_paths(realm);
    if !paths.is_empty() {
        let all = idp.store.groups(&realm.id).await?;
        links.groups.extend(
            paths
                .iter()
                .filter_map(|p| repr::group_by_path(&all, p))
                .map(|g| g.id.clone()),
        );
    }
    Ok(links)
}

async fn create(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    body: Bytes,
) -> Result<axum::response::Response, AdminError> {
    let rep = json_body(&body)?;
    let ev_rep = {
        let mut v = rep.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("credentials");
        }
        v
    };
    let mut rep = rep;
    // A realm that takes e-mail addresses as usernames takes this one's,
    // whatever username was asked for, as Keycloak does.
    if realm.flag("registrationEmailAsUsername")
        && let Some(o) = rep.as_object_mut()
    {
        match o.get("email").and_then(Value::as_str).map(str::trim) {
            Some(e) if !e.is_empty() => {
                let e = json!(e.to_lowercase());
                o.insert("username".into(), e);
            }
            _ => {
                o.remove("username");
            }
        }
    }
    // The created user's path, for the admin event and Location.
    let path = format!("users/{}", super::new_id(&mut rep));
    let ev = event(&realm, &caller, "CREATE", "USER", &path, Some(&ev_rep));
    let policy = Policy::of(&realm);
    if policy.unmanaged != Unmanaged::Edit
        && let Some(asked) = repr::attributes(&rep)
    {
        // Undeclared attributes the admin API may not write are dropped.
        rep["attributes"] = json!(policy.written(asked, &Default::default()));
    }
    if caller.limited.is_some()
        && let Some(paths) = rep.get("groups").and_then(Value::as_array)
    {
        let all = idp.store.groups(&realm.id).await?;
        let ids: Vec<String> = paths
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|p| repr::group_by_path(&all, p))
            .map(|g| g.id.clone())
            .collect();
        super::roles::require_joinable(&idp, &realm, &caller, &ids).await?;
    }
    // The realm's user profile first, as Keycloak checks it before the
    // user exists (a missing username is create_user's to report).
    if let Some(name) = rep.get("username").and_then(Value::as_str) {
        let mut draft = User::new(&realm.id, name);
        repr::apply_user_fields(&mut draft, &rep).map_err(AdminError::bad_request)?;
        let refused = profile_rules::check(&realm, profile_rules::Role::Admin, None, &draft);
        if !refused.is_empty() {
            return Err(AdminError::profile(&refused));
        }
    }
    create_user(&idp, &realm, &rep, vec![ev], true).await?;
    Ok(created(&idp, &realm.name, &path))
}

/// `GET users/{id}`'s options.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OneQuery {
    /// Keycloak's `userProfileMetadata=true`: the profile's metadata too.
    #[serde(default, deserialize_with = "super::lenient_bool")]
    user_profile_metadata: Option<bool>,
}

async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<OneQuery>,
) -> Result<Json<Value>, AdminError> {
    let u = load(&idp, &realm, &id).await?;
    let mut v = admin_view(&u, &Policy::of(&realm));
    if q.user_profile_metadata == Some(true) {
        v["userProfileMetadata"] = super::user_profile::admin_metadata(&realm);
    }
    // Whether an authenticator app is set up (listings leave it false:
    // a credentials read per listed user is not worth it).
    let totp = idp
        .store
        .credentials(&u.id)
        .await?
        .iter()
        .any(|c| c.kind == crate::otp::KIND);
    v["totp"] = json!(totp);
    // What `disable-credential-types` can take away (the admin console's
    // "Disable OTP" shows for these).
    v["disableableCredentialTypes"] = if totp {
        json!([crate::otp::KIND])
    } else {
        json!([])
    };
    // Keycloak shows the links when the realm has identity providers.
    if realm
        .extra
        .get("identityProviders")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty())
    {
        let links = super::federated_identities::visible(&realm, &u);
        v["federatedIdentities"] =
            Value::Array(links.map(super::federated_identities::repr).collect());
    }
    Ok(Json(v))
}

async fn update(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let _edit = idp.lock_row(&id).await;
    let mut u = load(&idp, &realm, &id).await?;
    let was_locked_out = crate::login::locked_permanently(&u);
    let before = u.clone();
    repr::apply_user_fields(&mut u, &rep).map_err(AdminError::bad_request)?;
    // With e-mail addresses as usernames, the username follows the address
    // and is not edited on its own.
    if realm.flag("registrationEmailAsUsername") {
        u.username = match &u.email {
            Some(e) if u.email != before.email => e.clone(),
            _ => before.username.clone(),
        };
    } else if u.username != before.username && !realm.flag("editUsernameAllowed") {
        // Keycloak 24+: the username is read-only unless the realm lets
        // it be edited.
        return Err(AdminError::profile(&[
            profile_rules::FieldError::read_only("username"),
        ]));
    }
    u.attributes =
        Policy::of(&realm).written(std::mem::take(&mut u.attributes), &before.attributes);
    crate::user_storage::keep_read_only(&mut u.attributes, &before.attributes);
    let refused = profile_rules::check(&realm, profile_rules::Role::Admin, Some(&before), &u);
    if !refused.is_empty() {
        return Err(AdminError::profile(&refused));
    }
    repr::email_sane(u.email.as_deref()).map_err(AdminError::bad_request)?;
    // Enabled again by an admin: the permanent lockout is over, as in
    // Keycloak (its mark and the failures that led to it go).
    let lockout_lifted = was_locked_out && u.enabled;
    if lockout_lifted {
        u.attributes.remove(crate::login::DISABLED_REASON);
    }
    if u.username != before.username
        && idp
            .store
            .user_by_username(&realm.id, &u.username)
            .await?
            .is_some()
    {
        return Err(AdminError::conflict("User exists with same username"));
    }
    if u.email != before.email
        && let Some(e) = &u.email
        && !realm.flag("duplicateEmailsAllowed")
        && idp
            .store
            .user_by_email(&realm.id, e)
            .await?
            .is_some_and(|x| x.id != u.id)
    {
        return Err(AdminError::conflict("User exists with same email"));
    }
    let ev = event(
        &realm,
        &caller,
        "UPDATE",
        "USER",
        &format!("users/{id}"),
        Some(&rep),
    );
    idp.store.update_user(&u, &[ev]).await?;
    if lockout_lifted {
        idp.store.clear_login_failures(&u.id).await?;
    }
    if !u.enabled {
        // A disabled user's sessions end now, so refresh and the gateway's
        // revocation check stop them at once.
        idp.log_out_user(&realm, &u.id, &[]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "USER",
        &format!("users/{id}"),
        None,
    );
    idp.store.delete_user(&realm.id, &id, &[ev]).await?;
    idp.user_revoked(&realm, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let rep = json_body(&body)?;
    let _edit = idp.lock_row(&id).await;
    let mut u = load(&idp, &realm, &id).await?;
    let (pw, temporary) = password_of(&rep)?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/reset-password"),
        None,
    );
    let had = u.required_actions.iter().any(|a| a == "UPDATE_PASSWORD");
    if temporary && !had {
        u.required_actions.push("UPDATE_PASSWORD".into());
    } else if !temporary {
        u.required_actions.retain(|a| a != "UPDATE_PASSWORD");
    }
    let changed = (temporary != had).then_some(&u);
    crate::login::change_password(&idp, &realm, &u, &pw, changed, &[ev])
        .await?
        .map_err(|v| AdminError::described(v.key, v.message))?;
    idp.store.clear_login_failures(&u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `search`, `first`, `max` and `briefRepresentation` of a user's group
/// listing and count.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupSearch {
    search: Option<String>,
    first: Option<i64>,
    max: Option<i64>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    brief_representation: Option<bool>,
}

/// The user's groups whose name contains `search` (any case), by name.
async fn my_groups(
    idp: &Idp,
    id: &str,
    search: Option<&str>,
) -> Result<Vec<gatehouse_core::model::Group>, AdminError> {
    let needle = search.map(str::to_lowercase).unwrap_or_default();
    let mut mine: Vec<_> = idp
        .store
        .user_groups(id)
        .await?
        .into_iter()
        .filter(|g| g.name.to_lowercase().contains(&needle))
        .collect();
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(mine)
}

async fn groups(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<GroupSearch>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    let all = idp.store.groups(&realm.id).await?;
    let mine = my_groups(&idp, &id, q.search.as_deref()).await?;
    let first = q.first.unwrap_or(0).max(0) as usize;
    let max = q.max.filter(|m| *m >= 0).unwrap_or(100) as usize;
    let brief = q.brief_representation != Some(false);
    Ok(Json(json!(
        mine.iter()
            .skip(first)
            .take(max)
            .map(|g| if brief {
                repr::group_brief(g, &all)
            } else {
                repr::group(g, &all, false)
            })
            .collect::<Vec<_>>()
    )))
}

async fn join(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, gid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    idp.store
        .group(&realm.id, &gid)
        .await?
        .ok_or_else(|| AdminError::not_found("Group"))?;
    super::roles::require_joinable(&idp, &realm, &caller, std::slice::from_ref(&gid)).await?;
    let ev = event(
        &realm,
        &caller,
        "CREATE",
        "GROUP_MEMBERSHIP",
        &format!("users/{id}/groups/{gid}"),
        None,
    );
    idp.store.join_group(&id, &gid, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn leave(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, gid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    idp.store
        .group(&realm.id, &gid)
        .await?
        .ok_or_else(|| AdminError::not_found("Group"))?;
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "GROUP_MEMBERSHIP",
        &format!("users/{id}/groups/{gid}"),
        None,
    );
    idp.store.leave_group(&id, &gid, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sessions(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let u = load(&idp, &realm, &id).await?;
    let list: Vec<Value> = idp
        .store
        .user_sessions(&id)
        .await?
        .into_iter()
        .filter(|s| !s.offline)
        .map(|s| super::sessions::repr(&s, &u.username, None))
        .collect();
    Ok(Json(json!(list)))
}

async fn logout(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/logout"),
        None,
    );
    idp.log_out_user(&realm, &id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_session(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, sid)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    match idp.store.session(&sid).await? {
        Some(s) if s.realm_id == realm.id => {
            let ev = event(
                &realm,
                &caller,
                "DELETE",
                "USER_SESSION",
                &format!("sessions/{sid}"),
                None,
            );
            let ended = idp.store.delete_session(&sid, &[ev]).await?;
            idp.sessions_ended(&realm, &ended).await;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(AdminError::not_found("Session")),
    }
}

async fn groups_count(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<GroupSearch>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    let n = my_groups(&idp, &id, q.search.as_deref()).await?.len();
    Ok(Json(json!({ "count": n })))
}

/// `GET /users/{id}/offline-sessions/{client uuid}`.
async fn offline_sessions(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, cid)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let u = load(&idp, &realm, &id).await?;
    let client = super::clients::load(&idp, &realm, &cid).await?;
    let list: Vec<Value> = idp
        .store
        .user_sessions(&id)
        .await?
        .into_iter()
        .filter(|s| s.offline && s.client_id == client.client_id)
        .map(|s| super::sessions::repr(&s, &u.username, Some(&client.id)))
        .collect();
    Ok(Json(json!(list)))
}

/// The user's offline sessions per client id, oldest first.
async fn offline_by_client(
    idp: &Idp,
    user_id: &str,
) -> Result<std::collections::BTreeMap<String, Vec<gatehouse_core::model::Session>>, AdminError> {
    let mut by_client = std::collections::BTreeMap::<String, Vec<_>>::new();
    for s in idp.store.user_sessions(user_id).await? {
        if s.offline {
            by_client.entry(s.client_id.clone()).or_default().push(s);
        }
    }
    Ok(by_client)
}

/// `GET /users/{id}/consents`: what the user allowed clients that ask for
/// consent (the consent screen's answers), and, as Keycloak lists them
/// beside consents, the clients holding an offline token of the user.
async fn consents(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    let mut offline = offline_by_client(&idp, &id).await?;
    let mut list: Vec<Value> = Vec::new();
    for c in idp.store.consents(&id).await? {
        let mut v = json!({"clientId": c.client_id, "grantedClientScopes": c.scopes,
            "createdDate": c.created, "lastUpdatedDate": c.updated});
        if offline.remove(&c.client_id).is_some() {
            v["additionalGrants"] = json!([{"client": "Offline Token", "key": "Offline Token"}]);
        }
        list.push(v);
    }
    for (client, sessions) in offline {
        let created = sessions.iter().map(|s| s.started).min().unwrap_or(0);
        let updated = sessions.iter().map(|s| s.last_access).max().unwrap_or(0);
        list.push(
            json!({"clientId": client, "grantedClientScopes": [], "createdDate": created * 1000,
               "lastUpdatedDate": updated * 1000,
               "additionalGrants": [{"client": "Offline Token", "key": "Offline Token"}]}),
        );
    }
    Ok(Json(json!(list)))
}

/// `DELETE /users/{id}/consents/{client id}`: withdraws the consent (the
/// next login asks again) and revokes the client's offline tokens of the
/// user; 404 when there is neither, in Keycloak's words.
async fn revoke_consent(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, client)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/consents/{client}"),
        None,
    );
    let had_consent = crate::oidc::auth::consent::given(&idp, &id, &client)
        .await?
        .is_some();
    let sessions = offline_by_client(&idp, &id)
        .await?
        .remove(&client)
        .unwrap_or_default();
    if !had_consent && sessions.is_empty() {
        return Err(AdminError::not_found("Consent nor offline token"));
    }
    let mut ev = Some(ev);
    if had_consent {
        let mut grant = Event::user(&realm, "REVOKE_GRANT");
        grant.client_id = Some(client.clone());
        grant.user_id = Some(id.clone());
        let events: Vec<Event> = ev.take().into_iter().chain([grant]).collect();
        idp.store.delete_consent(&id, &client, &events).await?;
    }
    for s in sessions {
        let ended = idp.store.delete_session(&s.id, ev.as_slice()).await?;
        ev = None;
        idp.sessions_ended(&realm, &ended).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /users/{id}/credentials/{cid}/userLabel` (the label as plain text).
async fn credential_label(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, cid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let mut cred = idp
        .store
        .credentials(&id)
        .await?
        .into_iter()
        .find(|c| c.id == cid)
        .ok_or_else(|| AdminError::not_found("Credential"))?;
    let label = std::str::from_utf8(&body)
        .map_err(|_| AdminError::bad_request("The label must be UTF-8 text"))?
        .trim();
    if label.chars().count() > 255 {
        return Err(AdminError::bad_request(
            "The label is longer than 255 characters",
        ));
    }
    cred.user_label = (!label.is_empty()).then(|| label.to_owned());
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/credentials/{cid}/userLabel"),
        None,
    );
    idp.store.update_credential(&cred, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /users/{id}/credentials/{cid}/moveToFirst`: the admin console's
/// drag of a credential to the top of the user's list.
async fn move_to_first(
    admin: RealmAdmin,
    Path((_, id, cid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    move_credential(admin, id, cid, None).await
}

/// `POST /users/{id}/credentials/{cid}/moveAfter/{after}`: the drag of a
/// credential to just below another one.
async fn move_after(
    admin: RealmAdmin,
    Path((_, id, cid, after)): Path<(String, String, String, String)>,
) -> Result<StatusCode, AdminError> {
    move_credential(admin, id, cid, Some(after)).await
}

/// As Keycloak: 404 for a credential the user does not have, and 204
/// (nothing moved) when the one to follow is not theirs.
async fn move_credential(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    id: String,
    cid: String,
    after: Option<String>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let path = match &after {
        None => format!("users/{id}/credentials/{cid}/moveToFirst"),
        Some(a) => format!("users/{id}/credentials/{cid}/moveAfter/{a}"),
    };
    let ev = event(&realm, &caller, "ACTION", "USER", &path, None);
    match idp
        .store
        .move_credential(&id, &cid, after.as_deref(), &[ev])
        .await
    {
        Err(gatehouse_store::Error::NotFound) => Err(AdminError::not_found("Credential")),
        r => r.map(|_| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}

/// Listings of what Gatehouse's users cannot have yet, so are empty for an
/// existing user: credential types a user-storage federation provider
/// manages (`configured-user-storage-credential-types`: users live in
/// Gatehouse's own store) and links to external identity providers
/// (`federated-identity`: no brokering yet).
async fn none_yet(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    Ok(Json(json!([])))
}

/// CredentialRepresentation list: metadata only, never the secret half.
async fn credentials(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    load(&idp, &realm, &id).await?;
    // Kept passwords (`password-history`) are the policy's, not the user's.
    let list: Vec<Value> = idp
        .store
        .credentials(&id)
        .await?
        .iter()
        .filter(|c| c.kind != "password-history")
        .map(|c| repr::credential(c, false))
        .collect();
    Ok(Json(json!(list)))
}

async fn delete_credential(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id, cid)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/credentials/{cid}"),
        None,
    );
    idp.store
        .delete_credential(&id, &cid, &[ev])
        .await
        .map_err(|_| AdminError::not_found("Credential"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../users/{id}/remove-totp`: Keycloak's "disable OTP" for a user
/// who lost their device; the next login asks for no code (and, where the
/// realm requires OTP, sets it up again).
async fn remove_totp(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let ev = event(
        &realm,
        &caller,
        "ACTION",
        "USER",
        &format!("users/{id}/remove-totp"),
        None,
    );
    idp.store
        .delete_credentials_of_type(&id, crate::otp::KIND, &[ev])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A JSON list of strings, an empty body being an empty list (as Keycloak
/// reads the bodies of `execute-actions-email` and
/// `disable-credential-types`); None for anything else.
fn string_list(body: &[u8]) -> Option<Vec<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    serde_json::from_slice(body).ok()
}

/// `PUT .../users/{id}/disable-credential-types` with a list of credential
/// types: Keycloak's way (since `remove-totp` was deprecated) to take a
/// user's authenticator apps away; `otp` is the type that can be disabled,
/// others are ignored as Keycloak's providers ignore them.
async fn disable_credential_types(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &id).await?;
    let types = string_list(&body)
        .ok_or_else(|| AdminError::bad_request("A list of credential types is expected"))?;
    if types.iter().any(|t| t == crate::otp::KIND) {
        let ev = event(
            &realm,
            &caller,
            "ACTION",
            "USER",
            &format!("users/{id}/disable-credential-types"),
            None,
        );
        idp.store
            .delete_credentials_of_type(&id, crate::otp::KIND, &[ev])
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../users/{id}/reset-password-email?client_id&redirect_uri`:
/// Keycloak's deprecated form of `execute-actions-email` with
/// `["UPDATE_PASSWORD"]`, which older scripts still call.
async fn reset_password_email(
    admin: RealmAdmin,
    path: Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, AdminError> {
    // Keycloak's variant takes no `lifespan`.
    let query = query.map(|q| {
        q.split('&')
            .filter(|kv| !kv.starts_with("lifespan="))
            .collect::<Vec<_>>()
            .join("&")
    });
    let body = axum::body::Bytes::from_static(br#"["UPDATE_PASSWORD"]"#);
    execute_actions_email(admin, path, RawQuery(query), body).await
}

/// What `execute-actions-email` and `send-verify-email` are asked: the
/// client whose pages the link opens (`client_id`, Keycloak's `account` by
/// default), where "Back to Application" leads (`redirect_uri`, one of
/// that client's), and the link's `lifespan` in seconds.
struct LinkRequest {
    client_id: String,
    redirect_uri: Option<String>,
    lifespan: Option<i64>,
}

/// Keycloak's checks, in its order: the user has an address and is
/// enabled, a redirect comes with its client, the client exists and is
/// enabled, the redirect is one of its own.
async fn link_request(
    idp: &Idp,
    realm: &Realm,
    user: &User,
    query: Option<&str>,
) -> Result<LinkRequest, AdminError> {
    if user.email.as_deref().is_none_or(str::is_empty) {
        return Err(AdminError::bad_request("User email missing"));
    }
    if !user.enabled {
        return Err(AdminError::bad_request("User is disabled"));
    }
    let q = crate::oidc::form::Form::parse_query(query.unwrap_or("").as_bytes())
        .map_err(|e| AdminError::bad_request(e.description))?;
    let redirect_uri = q.get("redirect_uri").map(str::to_owned);
    if redirect_uri.is_some() && q.get("client_id").is_none() {
        return Err(AdminError::bad_request("Client id missing"));
    }
    let client_id = q.get("client_id").unwrap_or("account").to_owned();
    let client = idp
        .client(realm, &client_id)
        .await?
        .ok_or_else(|| AdminError::bad_request("Client doesn't exist"))?;
    if !client.enabled {
        return Err(AdminError::bad_request("Client is not enabled"));
    }
    if redirect_uri
        .as_deref()
        .is_some_and(|r| !client.redirect_uri_allowed(r))
    {
        return Err(AdminError::bad_request("Invalid redirect uri."));
    }
    let lifespan = match q.get("lifespan") {
        None => None,
        Some(l) => Some(
            // Keycloak's `lifespan` is a 32-bit integer; a larger one
            // would overflow the link's expiry.
            l.parse::<i32>()
                .ok()
                .filter(|l| *l > 0)
                .map(i64::from)
                .ok_or_else(|| AdminError::bad_request("Invalid lifespan"))?,
        ),
    };
    Ok(LinkRequest {
        client_id,
        redirect_uri,
        lifespan,
    })
}

/// `PUT .../users/{id}/execute-actions-email?client_id&redirect_uri&lifespan`
/// with a JSON array of required actions: mails the user a link that
/// walks them through those actions (Keycloak's "Update Your Account"),
/// valid 12 hours by default (`actionTokenGeneratedByAdminLifespan`).
/// Every action must be enabled in the realm and have a page here (400
/// "Provided invalid required actions"); a mail server that fails is 500,
/// as in Keycloak.
async fn execute_actions_email(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Result<StatusCode, AdminError> {
    let user = load(&idp, &realm, &id).await?;
    let asked = link_request(&idp, &realm, &user, query.as_deref()).await?;
    let actions = string_list(&body)
        .ok_or_else(|| AdminError::bad_request("Provided invalid required actions"))?;
    if !crate::oidc::auth::can_execute(&realm, &actions) {
        return Err(AdminError::bad_request("Provided invalid required actions"));
    }
    let lifespan = asked
        .lifespan
        .unwrap_or_else(|| crate::action_token::admin_lifespan(&realm));
    let mut t = ActionToken::new(
        idp.issuer(&realm.name),
        crate::action_token::EXECUTE_ACTIONS,
        &user.id,
        &asked.client_id,
        lifespan,
    );
    t.eml.clone_from(&user.email);
    t.rqac = actions;
    t.reduri = asked.redirect_uri;
    let sent = crate::action_token::mail(&idp, &realm, &user, &t, |link| {
        crate::mail::execute_actions(&realm, &t.rqac, link, lifespan)
    })
    .await?;
    mailed(
        &idp,
        &realm,
        &caller,
        &id,
        "execute-actions-email",
        "execute actions",
        sent,
    )
    .await
}

/// `PUT .../users/{id}/send-verify-email?client_id&redirect_uri&lifespan`:
/// mails the user Keycloak's "Verify email" link (valid for the realm's
/// user action-token lifespan, 5 minutes by default, unless `lifespan`
/// says otherwise).
async fn send_verify_email(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, AdminError> {
    let user = load(&idp, &realm, &id).await?;
    let asked = link_request(&idp, &realm, &user, query.as_deref()).await?;
    let typ = crate::action_token::VERIFY_EMAIL;
    let lifespan = asked
        .lifespan
        .unwrap_or_else(|| crate::action_token::user_lifespan(&realm, typ));
    let mut t = ActionToken::new(
        idp.issuer(&realm.name),
        typ,
        &user.id,
        &asked.client_id,
        lifespan,
    );
    t.eml.clone_from(&user.email);
    t.reduri = asked.redirect_uri;
    let sent = crate::action_token::mail(&idp, &realm, &user, &t, |link| {
        crate::mail::verify_email(&realm, link, lifespan)
    })
    .await?;
    mailed(
        &idp,
        &realm,
        &caller,
        &id,
        "send-verify-email",
        "verify",
        sent,
    )
    .await
}

/// The answer to a mail an admin asked for: 204 and the admin event
/// `ACTION` once sent, else Keycloak's 500 naming what failed.
async fn mailed(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    id: &str,
    call: &str,
    what: &str,
    sent: Result<(), crate::mail::MailError>,
) -> Result<StatusCode, AdminError> {
    if let Err(e) = sent {
        tracing::warn!(realm = %realm.name, error = %e, "admin e-mail not sent");
        return Err(AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to send {what} email: {e}"),
        ));
    }
    let path = format!("users/{id}/{call}");
    idp.record(event(realm, caller, "ACTION", "USER", &path, None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../users/{id}/unmanagedAttributes`: the attributes the realm's
/// user profile does not declare, where its policy lets admins see them
/// (none otherwise, as Keycloak).
async fn unmanaged_attributes(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let user = load(&idp, &realm, &id).await?;
    Ok(Json(json!(Policy::of(&realm).unmanaged(&user.attributes))))
}

/// A UserRepresentation as the admin API shows it: attributes and fields
/// the realm's user profile hides from admins are left out. Every admin
/// read of users goes through here (users, group, organization and role
/// members).
pub fn admin_view(u: &User, policy: &Policy) -> Value {
    let mut v = repr::user(u);
    let shown = policy.visible(&u.attributes);
    if let Some(o) = v.as_object_mut() {
        for field in ["email", "firstName", "lastName"] {
            if policy.hidden_from_admin(field) {
                o.remove(field);
            }
        }
        if shown.is_empty() {
            o.remove("attributes");
        } else {
            o.insert("attributes".into(), json!(shown));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::attribute_query;

    fn pairs(v: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn keycloak_q_searches_parse() {
        assert_eq!(attribute_query(""), pairs(&[]));
        assert_eq!(
            attribute_query("key:value  email:a@b.c"),
            pairs(&[("key", "value"), ("email", "a@b.c")])
        );
        assert_eq!(
            attribute_query("\"full name\":\"Ada L\" url:https://x.io/a"),
            pairs(&[("full name", "Ada L"), ("url", "https://x.io/a")])
        );
        assert_eq!(attribute_query("key:"), pairs(&[("key", "")]));
        assert_eq!(attribute_query("novalue"), None);
        assert_eq!(attribute_query(":v"), None);
        assert_eq!(attribute_query("k:\"open"), None);
    }
}
