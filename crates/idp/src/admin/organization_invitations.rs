//! Keycloak's organization invitations:
//! `POST /admin/realms/{realm}/organizations/{id}/members/invite-user`
//! (form fields `email`, `firstName`, `lastName`),
//! `.../members/invite-existing-user` (field `id`), and the invitations
//! kept until accepted: `GET .../invitations[/{inv}]`, `DELETE
//! .../invitations/{inv}`, `POST .../invitations/{inv}/resend`.
//!
//! Each invitation is mailed as an action link (`action_token.rs`, type
//! `ORGIVT`, its id the invitation's) valid for the realm's admin
//! action-token lifespan. An existing user joins by opening it; someone
//! without an account registers on the page it opens, with the invited
//! address (`oidc/auth/action_link.rs`, `oidc/auth/registration.rs`).
//! Withdrawing the invitation kills its link.

use super::organizations::{is_member, load};
use super::{RealmAdmin, event};
use crate::action_token::{ActionToken, INVITE_ORG};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use gatehouse_core::model::{Organization, OrganizationInvitation, Realm, User};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The form fields of a body sent as `multipart/form-data` (the admin
/// client's `FormData`) or `application/x-www-form-urlencoded`.
fn fields(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, AdminError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("multipart/form-data") {
        let parts = crate::multipart::parse(ct, body)
            .ok_or_else(|| AdminError::bad_request("Malformed form body"))?;
        Ok(parts
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|v| v.into_iter().rev().collect())
            .map_err(|_| AdminError::bad_request("Malformed form body"))
    }
}

/// `POST .../members/invite-user`: by address, for someone with an
/// account (found by address) or without one.
pub async fn invite_user(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    // An unknown organization (or none enabled) is 404 before the body.
    load(&idp, &realm, &p["id"]).await?;
    let f = fields(&headers, &body)?;
    let get = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (first, last) = (get("firstName"), get("lastName"));
    let email = get("email").map(|e| e.to_lowercase());
    invite_by_email(&idp, &realm, &caller, &p["id"], email, (first, last)).await
}

/// Keycloak's `inviteUser`: an address is required and must look like
/// one; a pending invitation for it is 409 (an expired one is replaced); a
/// member already is 409.
async fn invite_by_email(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    org_id: &str,
    email: Option<String>,
    (first, last): (Option<String>, Option<String>),
) -> Result<StatusCode, AdminError> {
    let email =
        email.ok_or_else(|| AdminError::bad_request("Email is required to invite a member"))?;
    if !crate::oidc::auth::valid_email(&email) {
        return Err(AdminError::bad_request("Invalid email format"));
    }
    let _edit = idp.lock_row(org_id).await;
    let mut o = load(idp, realm, org_id).await?;
    let now = gatehouse_core::time::now();
    if o.invitations
        .iter()
        .any(|i| i.email == email && i.expires_at > now)
    {
        return Err(AdminError::conflict(
            "User already has a pending invitation",
        ));
    }
    o.invitations.retain(|i| i.email != email);
    let user = idp.store.user_by_email(&realm.id, &email).await?;
    if let Some(u) = &user
        && is_member(idp, &o, &u.id).await?
    {
        return Err(AdminError::conflict(
            "User already a member of the organization",
        ));
    }
    let (first, last) = match &user {
        Some(u) => (u.first_name.clone(), u.last_name.clone()),
        None => (first, last),
    };
    send(idp, realm, caller, o, user.as_ref(), email, (first, last)).await
}

/// `POST .../members/invite-existing-user` with the user's `id`.
pub async fn invite_existing_user(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    load(&idp, &realm, &p["id"]).await?;
    let f = fields(&headers, &body)?;
    let id = f
        .get("id")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            AdminError::bad_request("To invite a member you need to provide the user id")
        })?;
    let user = idp
        .store
        .user(&realm.id, id)
        .await?
        .ok_or_else(|| AdminError::bad_request("User does not exist"))?;
    let _edit = idp.lock_row(&p["id"]).await;
    let mut o = load(&idp, &realm, &p["id"]).await?;
    let email = user.email.clone().unwrap_or_default().to_lowercase();
    o.invitations.retain(|i| i.email != email);
    let names = (user.first_name.clone(), user.last_name.clone());
    send(&idp, &realm, &caller, o, Some(&user), email, names).await
}

/// Mails the invitation and keeps it with the organization: 204, admin
/// event `ACTION`; 500 "Failed to send invite email" (nothing kept) when
/// the mail cannot go, as in Keycloak.
async fn send(
    idp: &Idp,
    realm: &Realm,
    caller: &super::AdminCaller,
    mut o: Organization,
    user: Option<&User>,
    email: String,
    (first_name, last_name): (Option<String>, Option<String>),
) -> Result<StatusCode, AdminError> {
    let lifespan = crate::action_token::admin_lifespan(realm);
    let mut t = ActionToken::new(
        idp.issuer(&realm.name),
        INVITE_ORG,
        user.map_or("", |u| u.id.as_str()),
        "account",
        lifespan,
    );
    t.eml = Some(email.clone());
    t.org = Some(o.id.clone());
    // "Back to Application" leads to the organization's redirect URL.
    // (Keycloak falls back to its account console, which Gatehouse does
    // not serve as a page: then there is no link.)
    t.reduri.clone_from(&o.redirect_url);
    let ring = idp.keyring(realm).await?;
    let link = t.link(&ring, &idp.public_url, realm)?;
    let mail = crate::mail::org_invite(&o.name, &link, lifespan);
    let sent = match crate::mail::Smtp::of(realm) {
        Some(smtp) => smtp.send(&email, None, &mail).await,
        None => Err(crate::mail::MailError::NotConfigured),
    };
    if let Err(e) = sent {
        tracing::warn!(realm = %realm.name, error = %e, "invitation not sent");
        return Err(AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to send invite email",
        ));
    }
    o.invitations.push(OrganizationInvitation {
        id: t.jti.clone(),
        email,
        first_name,
        last_name,
        created_at: t.iat,
        expires_at: t.exp,
        link,
    });
    let path = format!("organizations/{}/invitations/{}", o.id, t.jti);
    let ev = event(
        realm,
        caller,
        "ACTION",
        "ORGANIZATION_MEMBERSHIP",
        &path,
        None,
    );
    idp.store.put_organization(&o, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keycloak's `OrganizationInvitationRepresentation`.
fn repr(o: &Organization, i: &OrganizationInvitation, now: i64) -> Value {
    let mut v = json!({
        "id": i.id, "email": i.email, "organizationId": o.id,
        "sentDate": i.created_at, "expiresAt": i.expires_at, "inviteLink": i.link,
        "status": if i.expires_at > now { "PENDING" } else { "EXPIRED" },
    });
    if let Some(f) = &i.first_name {
        v["firstName"] = json!(f);
    }
    if let Some(l) = &i.last_name {
        v["lastName"] = json!(l);
    }
    v
}

/// The filters of `GET .../invitations`.
#[derive(serde::Deserialize)]
pub struct Filters {
    first: Option<usize>,
    max: Option<usize>,
    status: Option<String>,
    email: Option<String>,
    search: Option<String>,
    #[serde(rename = "firstName")]
    first_name: Option<String>,
    #[serde(rename = "lastName")]
    last_name: Option<String>,
}

/// `GET .../invitations`: by status (`PENDING`, `EXPIRED`), exact
/// address or name, or `search` in any of them (case-insensitive), paged.
pub async fn list(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
    Query(q): Query<Filters>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let now = gatehouse_core::time::now();
    // As Keycloak 26.7: `email`, `firstName` and `lastName` match whole
    // values without regard to case; `search` matches parts.
    let same = |v: &Option<String>, want: &str| {
        v.as_deref()
            .is_some_and(|v| v.to_lowercase() == want.to_lowercase())
    };
    let has = |v: &Option<String>, want: &str| {
        v.as_deref()
            .is_some_and(|v| v.to_lowercase().contains(&want.to_lowercase()))
    };
    let shown: Vec<Value> = o
        .invitations
        .iter()
        .map(|i| repr(&o, i, now))
        .zip(&o.invitations)
        .filter(|(v, i)| {
            q.status.as_deref().is_none_or(|s| {
                v["status"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(s))
            }) && q
                .email
                .as_deref()
                .is_none_or(|e| i.email.eq_ignore_ascii_case(e))
                && q.first_name
                    .as_deref()
                    .is_none_or(|f| same(&i.first_name, f))
                && q.last_name.as_deref().is_none_or(|l| same(&i.last_name, l))
                && q.search.as_deref().is_none_or(|s| {
                    i.email.contains(&s.to_lowercase())
                        || has(&i.first_name, s)
                        || has(&i.last_name, s)
                })
        })
        .map(|(v, _)| v)
        .skip(q.first.unwrap_or(0))
        .take(q.max.unwrap_or(usize::MAX))
        .collect();
    Ok(Json(json!(shown)))
}

/// `GET .../invitations/{inv}`.
pub async fn one(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let o = load(&idp, &realm, &p["id"]).await?;
    let i = o
        .invitations
        .iter()
        .find(|i| i.id == p["inv"])
        .ok_or_else(|| AdminError::missing("Invitation not found"))?;
    Ok(Json(repr(&o, i, gatehouse_core::time::now())))
}

/// `DELETE .../invitations/{inv}`: withdrawn, its link dead.
pub async fn remove(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let _edit = idp.lock_row(&p["id"]).await;
    let mut o = load(&idp, &realm, &p["id"]).await?;
    let before = o.invitations.len();
    o.invitations.retain(|i| i.id != p["inv"]);
    if o.invitations.len() == before {
        return Err(AdminError::missing("Invitation not found"));
    }
    let path = format!("organizations/{}/invitations/{}", o.id, p["inv"]);
    let ev = event(
        &realm,
        &caller,
        "DELETE",
        "ORGANIZATION_MEMBERSHIP",
        &path,
        None,
    );
    idp.store.put_organization(&o, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../invitations/{inv}/resend`: the invitation withdrawn and sent
/// again (a new link and expiry).
pub async fn resend(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<StatusCode, AdminError> {
    let old = {
        let _edit = idp.lock_row(&p["id"]).await;
        let mut o = load(&idp, &realm, &p["id"]).await?;
        let Some(pos) = o.invitations.iter().position(|i| i.id == p["inv"]) else {
            return Err(AdminError::missing("Invitation not found"));
        };
        let old = o.invitations.remove(pos);
        idp.store.put_organization(&o, &[]).await?;
        old
    };
    let names = (old.first_name, old.last_name);
    invite_by_email(&idp, &realm, &caller, &p["id"], Some(old.email), names).await
}
