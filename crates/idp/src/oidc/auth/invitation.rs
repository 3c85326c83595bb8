//! The link of an organization invitation
//! (`crate::admin::organization_invitations`), opened at
//! `/realms/{realm}/login-actions/action-token`.
//!
//! Someone with an account is asked to confirm ("Click here to proceed",
//! so a mail scanner's fetch joins no one), then joins. Someone without
//! one gets the registration page with the invited address, and joins
//! once registered. The link works while its invitation is kept: accepted,
//! withdrawn or expired, it is dead.

use super::{AuthRequest, EndAfter, Invite, begin_login, error_page, esc, with_csrf};
use crate::action_token::ActionToken;
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::HeaderMap;
use axum::response::Response;
use gatehouse_core::model::{Event, Realm, User};

const STALE: &str =
    "The invitation is no longer valid. It may have expired, been withdrawn or already accepted.";

/// The invitation's page.
pub(super) async fn open(
    idp: &Idp,
    realm: &Realm,
    t: &ActionToken,
    key: &str,
    q: &Form,
    headers: &HeaderMap,
) -> Result<Response, OAuthError> {
    let now = gatehouse_core::time::now();
    let org = match &t.org {
        Some(id) if crate::admin::organizations::enabled(realm) => {
            idp.store.organization(&realm.id, id).await?
        }
        _ => None,
    };
    let Some(org) = org.filter(|o| o.enabled) else {
        return Ok(error_page(STALE));
    };
    let Some(inv) = org
        .invitations
        .iter()
        .find(|i| i.id == t.jti && i.expires_at > now)
    else {
        return Ok(error_page(STALE));
    };
    let end = EndAfter {
        back_to: t.reduri.clone(),
        jti: t.jti.clone(),
    };
    if t.sub.is_empty() {
        // No account yet: the registration page, with the invited address.
        let mut req = AuthRequest::for_action_link(&t.cid, end, Vec::new());
        req.invite = Some(Invite {
            org: org.id.clone(),
            id: inv.id.clone(),
            email: inv.email.clone(),
        });
        let (req_id, _) = begin_login(idp, realm, &req, now).await?;
        let entered = super::registration::Entered::for_login(realm, &req);
        let r = super::registration::form(realm, &req_id, &req.csrf, &entered, None);
        return Ok(with_csrf(idp, realm, &req.csrf, r));
    }
    let Some(user) = idp
        .store
        .user(&realm.id, &t.sub)
        .await?
        .filter(|u| u.enabled)
        .filter(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&inv.email))
        })
    else {
        return Ok(error_page(STALE));
    };
    if idp
        .store
        .organization_members(&org.id)
        .await?
        .contains(&user.id)
    {
        return Ok(super::action_link::done_page(
            &format!("You are already a member of the {} organization.", org.name),
            None,
        ));
    }
    match q.get("session_code") {
        None => {
            let req = AuthRequest::for_action_link(&t.cid, end, Vec::new());
            let (req_id, _) = begin_login(idp, realm, &req, now).await?;
            let what = format!(
                "<h1>Organization invitation</h1><p>You were invited to join the {} organization.</p>",
                esc(&org.name)
            );
            let r = super::action_link::confirm_page(realm, t, key, &req_id, &what);
            Ok(with_csrf(idp, realm, &req.csrf, r))
        }
        Some(code) => {
            let confirmed = super::action_link::confirming(idp, realm, t, code, headers).await?;
            if confirmed.is_none() {
                return Ok(super::expired_page());
            }
            idp.store.take_code(&format!("authreq:{code}")).await?;
            if !join(idp, realm, (&org.id, &inv.id), &user).await? {
                return Ok(error_page(STALE));
            }
            Ok(super::action_link::done_page(
                &format!("You are now a member of the {} organization.", org.name),
                t.reduri.as_deref(),
            ))
        }
    }
}

/// `user` accepts invitation `id` of organization `org`: a member (event
/// `INVITE_ORG`), the invitation withdrawn. False when the invitation is
/// gone by now.
pub(super) async fn join(
    idp: &Idp,
    realm: &Realm,
    (org, id): (&str, &str),
    user: &User,
) -> Result<bool, OAuthError> {
    let _edit = idp.lock_row(org).await;
    let Some(mut o) = idp.store.organization(&realm.id, org).await? else {
        return Ok(false);
    };
    let before = o.invitations.len();
    o.invitations.retain(|i| i.id != id);
    if o.invitations.len() == before {
        return Ok(false);
    }
    let mut ev = Event::user(realm, "INVITE_ORG");
    ev.user_id = Some(user.id.clone());
    ev.client_id = Some("account".into());
    ev.details.insert("username".into(), user.username.clone());
    ev.details.insert("org_id".into(), o.id.clone());
    // The membership first: should the second write fail, the invitation
    // lingers (and finds a member), rather than vanish unanswered.
    idp.store
        .add_organization_member(&o.id, &user.id, &[ev])
        .await?;
    idp.store.put_organization(&o, &[]).await?;
    Ok(true)
}
