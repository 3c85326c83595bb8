//! `GET` and `POST /realms/{realm}/account`: the user's own profile, read
//! and changed under the realm's user profile as Keycloak's account
//! context applies it: an attribute is shown when the profile lets the
//! `user` role view or edit it, written only when it lets `user` edit it;
//! undeclared attributes only under the `ENABLED` policy (the `ADMIN_*`
//! policies keep them to admins); the username only when the realm has
//! `editUsernameAllowed`.
//!
//! Fields a `POST` leaves out keep their values (Keycloak's account
//! console always sends the whole profile; scripts that send one field
//! should not blank the others). A changed e-mail address is no longer
//! verified.

use super::{AccountCaller, role};
use crate::admin::user_profile::BUILT_IN;
use crate::error::AdminError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Attributes, Realm, User};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
pub struct ProfileQuery {
    #[serde(
        default,
        rename = "userProfileMetadata",
        deserialize_with = "crate::admin::lenient_bool"
    )]
    metadata: Option<bool>,
}

/// What the realm's profile lets the user do with one attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    Hidden,
    View,
    Edit,
}

/// The account view of the realm's user profile.
struct Profile {
    cfg: Value,
    /// The raw `unmanagedAttributePolicy`: only `ENABLED` reaches users.
    unmanaged_enabled: bool,
    edit_username: bool,
}

impl Profile {
    fn of(realm: &Realm) -> Profile {
        let cfg = crate::admin::user_profile::config(realm);
        let flag = |k: &str| realm.extra.get(k).and_then(Value::as_bool) == Some(true);
        Profile {
            unmanaged_enabled: cfg["unmanagedAttributePolicy"].as_str() == Some("ENABLED"),
            edit_username: flag("editUsernameAllowed") && !flag("registrationEmailAsUsername"),
            cfg,
        }
    }

    fn declared(&self, name: &str) -> Option<&Value> {
        self.cfg["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["name"].as_str() == Some(name))
    }

    fn access(&self, name: &str) -> Access {
        let has_user = |v: &Value| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|r| r.as_str() == Some("user")))
        };
        let base = match self.declared(name) {
            Some(a) if has_user(&a["permissions"]["edit"]) => Access::Edit,
            Some(a) if has_user(&a["permissions"]["view"]) => Access::View,
            Some(_) => Access::Hidden,
            None if BUILT_IN.contains(&name) => Access::Edit,
            None if self.unmanaged_enabled => Access::Edit,
            None => Access::Hidden,
        };
        if name == "username" && base == Access::Edit && !self.edit_username {
            Access::View
        } else {
            base
        }
    }

    fn required(&self, name: &str) -> bool {
        self.declared(name).is_some_and(|a| {
            let r = &a["required"];
            r.is_object()
                && r["roles"]
                    .as_array()
                    .is_none_or(|roles| roles.iter().any(|x| x.as_str() == Some("user")))
        })
    }

    /// Keycloak's `UserProfileMetadata` for the account context.
    fn metadata(&self) -> Value {
        let attrs: Vec<Value> = self.cfg["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let name = a["name"].as_str()?;
                let access = self.access(name);
                (access != Access::Hidden).then(|| {
                    let mut m = json!({"name": name, "displayName": a["displayName"],
                                       "required": self.required(name),
                                       "readOnly": access != Access::Edit,
                                       "validators": a.get("validations").cloned().unwrap_or(json!({})),
                                       "multivalued": a["multivalued"].as_bool().unwrap_or(false)});
                    for k in ["annotations", "group"] {
                        if let Some(v) = a.get(k) {
                            m[k] = v.clone();
                        }
                    }
                    m
                })
            })
            .collect();
        json!({"attributes": attrs, "groups": self.cfg.get("groups").cloned().unwrap_or(json!([]))})
    }

    /// The custom attributes the user may see.
    fn visible(&self, attrs: &Attributes) -> Attributes {
        attrs
            .iter()
            .filter(|(k, _)| self.access(k) != Access::Hidden)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// `GET /account`: Keycloak's account `UserRepresentation`, with the
/// profile metadata unless `userProfileMetadata=false`.
pub async fn get(
    caller: AccountCaller,
    Query(q): Query<ProfileQuery>,
) -> Result<Json<Value>, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT, role::VIEW_PROFILE])?;
    let p = Profile::of(&caller.realm);
    let u = &caller.user;
    let mut rep = json!({"id": u.id, "username": u.username, "emailVerified": u.email_verified});
    for (k, v) in [
        ("firstName", &u.first_name),
        ("lastName", &u.last_name),
        ("email", &u.email),
    ] {
        if let Some(v) = v {
            rep[k] = json!(v);
        }
    }
    let attrs = p.visible(&u.attributes);
    if !attrs.is_empty() {
        rep["attributes"] = json!(attrs);
    }
    if q.metadata != Some(false) {
        rep["userProfileMetadata"] = p.metadata();
    }
    Ok(Json(rep))
}

/// One field error, in Keycloak's `ErrorRepresentation` shape.
#[derive(Debug)]
struct FieldError {
    status: StatusCode,
    field: String,
    message: &'static str,
}

fn field_error(status: StatusCode, field: &str, message: &'static str) -> FieldError {
    FieldError {
        status,
        field: field.to_owned(),
        message,
    }
}

impl IntoResponse for FieldError {
    fn into_response(self) -> Response {
        let body =
            json!({"field": self.field, "errorMessage": self.message, "params": [self.field]});
        (self.status, Json(body)).into_response()
    }
}

/// What a `POST` asks to change, checked against the profile.
fn apply(p: &Profile, u: &mut User, rep: &Value) -> Result<(), FieldError> {
    let bad = |field: &str, msg| Err(field_error(StatusCode::BAD_REQUEST, field, msg));
    let text = |k: &str| -> Result<Option<Option<String>>, FieldError> {
        match rep.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(None)),
            Some(Value::String(s)) if s.chars().count() > 255 => Err(field_error(
                StatusCode::BAD_REQUEST,
                k,
                "error-invalid-length",
            )),
            Some(Value::String(s)) => Ok(Some(Some(s.trim().to_owned()))),
            Some(_) => Err(field_error(
                StatusCode::BAD_REQUEST,
                k,
                "error-invalid-value",
            )),
        }
    };
    if let Some(name) = text("username")? {
        let name = name.map(|n| n.to_lowercase());
        if name.as_deref() != Some(u.username.as_str()) {
            if p.access("username") != Access::Edit {
                return bad("username", "error-user-attribute-read-only");
            }
            match name {
                Some(n) if crate::repr::valid_name(&n).is_ok() && n.chars().count() >= 3 => {
                    u.username = n
                }
                Some(_) => return bad("username", "error-invalid-length"),
                None => return bad("username", "error-user-attribute-required"),
            }
        }
    }
    for (field, slot) in [
        ("firstName", &mut u.first_name),
        ("lastName", &mut u.last_name),
        ("email", &mut u.email),
    ] {
        let Some(v) = text(field)? else { continue };
        let v = if field == "email" {
            v.map(|e| e.to_lowercase())
        } else {
            v
        };
        if v == *slot {
            continue;
        }
        if p.access(field) != Access::Edit {
            return bad(field, "error-user-attribute-read-only");
        }
        if v.is_none() && p.required(field) {
            return bad(field, "error-user-attribute-required");
        }
        if field == "email" && v.as_deref().is_some_and(|e| !plausible_email(e)) {
            return bad(field, "invalidEmailMessage");
        }
        *slot = v;
    }
    if rep.get("attributes").is_some_and(|a| !a.is_null()) {
        let asked = crate::repr::attributes(rep).ok_or_else(|| {
            field_error(StatusCode::BAD_REQUEST, "attributes", "error-invalid-value")
        })?;
        for (k, v) in asked {
            if BUILT_IN.contains(&k.as_str()) || u.attributes.get(&k) == Some(&v) {
                continue;
            }
            if p.access(&k) != Access::Edit
                || crate::user_storage::READ_ONLY_ATTRIBUTES.contains(&k.as_str())
            {
                return bad(&k, "error-user-attribute-read-only");
            }
            if v.iter().all(|x| x.is_empty()) {
                u.attributes.remove(&k);
            } else {
                u.attributes.insert(k, v);
            }
        }
    }
    Ok(())
}

/// `local@domain` with no spaces: what a browser's `type=email` accepts.
fn plausible_email(e: &str) -> bool {
    matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && !e.chars().any(char::is_whitespace)
}

/// `POST /account`: updates the profile (role `manage-account`); 204, or
/// 400/409 with the field in error.
pub async fn update(caller: AccountCaller, body: Bytes) -> Result<Response, AdminError> {
    caller.require(&[role::MANAGE_ACCOUNT])?;
    let rep = crate::admin::json_body(&body)?;
    if !rep.is_object() {
        return Err(AdminError::bad_request("A user representation is expected"));
    }
    let p = Profile::of(&caller.realm);
    let idp = &caller.idp;
    let _edit = idp.lock_row(&caller.user.id).await;
    let mut u = crate::admin::users::load(idp, &caller.realm, &caller.user.id).await?;
    let before = u.clone();
    if let Err(e) = apply(&p, &mut u, &rep) {
        return Ok(e.into_response());
    }
    // The realm's profile rules, as the user's own role sees them.
    let refused = crate::profile_rules::check(
        &caller.realm,
        crate::profile_rules::Role::User,
        Some(&before),
        &u,
    );
    if !refused.is_empty() {
        let body = crate::profile_rules::account_body(&caller.realm, &refused);
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    if u.username != before.username
        && idp
            .store
            .user_by_username(&caller.realm.id, &u.username)
            .await?
            .is_some()
    {
        return Ok(
            field_error(StatusCode::CONFLICT, "username", "usernameExistsMessage").into_response(),
        );
    }
    let duplicates_ok = caller.realm.extra.get("duplicateEmailsAllowed") == Some(&json!(true));
    if u.email != before.email {
        u.email_verified = false;
        if let Some(e) = &u.email
            && !duplicates_ok
            && idp
                .store
                .user_by_email(&caller.realm.id, e)
                .await?
                .is_some_and(|x| x.id != u.id)
        {
            return Ok(
                field_error(StatusCode::CONFLICT, "email", "emailExistsMessage").into_response(),
            );
        }
    }
    let mut ev = caller.event("UPDATE_PROFILE");
    ev.details.insert("context".into(), "ACCOUNT".into());
    for (detail, old, new) in [
        ("previous_email", &before.email, &u.email),
        ("previous_first_name", &before.first_name, &u.first_name),
        ("previous_last_name", &before.last_name, &u.last_name),
    ] {
        if old != new {
            ev.details
                .insert(detail.into(), old.clone().unwrap_or_default());
            let updated = detail.replacen("previous", "updated", 1);
            ev.details.insert(updated, new.clone().unwrap_or_default());
        }
    }
    idp.store.update_user(&u, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(policy: &str, edit_username: bool) -> Realm {
        let mut r = Realm::new("r");
        r.extra
            .insert("editUsernameAllowed".into(), json!(edit_username));
        let mut cfg = crate::admin::user_profile::config(&r);
        cfg["unmanagedAttributePolicy"] = json!(policy);
        cfg["attributes"]
            .as_array_mut()
            .expect("attributes")
            .push(json!({
            "name": "badge", "permissions": {"view": ["admin", "user"], "edit": ["admin"]}}));
        crate::admin::user_profile::store(&mut r, &cfg);
        r
    }

    fn user() -> User {
        let mut u = User::new("r", "alice");
        u.email = Some("alice@example.com".into());
        u.first_name = Some("Alice".into());
        u.attributes.insert("badge".into(), vec!["7".into()]);
        u.attributes.insert("color".into(), vec!["red".into()]);
        u
    }

    #[test]
    fn the_profile_decides_what_a_user_may_change() {
        let p = Profile::of(&realm("ENABLED", false));
        let mut u = user();
        apply(
            &p,
            &mut u,
            &json!({"firstName": "Al", "attributes": {"color": ["blue"], "badge": ["7"]}}),
        )
        .expect("allowed change");
        assert_eq!(u.first_name.as_deref(), Some("Al"));
        assert_eq!(u.attributes["color"], ["blue"]);
        assert_eq!(u.last_name, None, "an absent field stays as it was");
        for rep in [
            json!({"username": "mallory"}),
            json!({"attributes": {"badge": ["1"]}}),
            json!({"email": ""}),
            json!({"email": "not an address"}),
            json!({"lastName": "x".repeat(256)}),
            json!({"firstName": 7}),
        ] {
            let mut u = user();
            assert!(apply(&p, &mut u, &rep).is_err(), "{rep}");
        }
        // Under ADMIN_EDIT, undeclared attributes are the admins'.
        let p = Profile::of(&realm("ADMIN_EDIT", true));
        let mut u = user();
        assert!(apply(&p, &mut u, &json!({"attributes": {"color": ["blue"]}})).is_err());
        assert!(p.visible(&u.attributes).contains_key("badge"));
        assert!(!p.visible(&u.attributes).contains_key("color"));
        apply(&p, &mut u, &json!({"username": "Alice2"})).expect("username editable");
        assert_eq!(u.username, "alice2");
    }
}
