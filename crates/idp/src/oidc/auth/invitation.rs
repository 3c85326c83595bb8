//! The link of an organization invitation
//! (`crate::admin::organization_invitations`), opened at
//! `/realms/{realm}/login-actions/action-token`.
//!
//! Someone with an account is asked to confirm ("Click here to proceed",
//! so a mail scanner's fetch joins no one), then joins. Someone without
//! one gets the registration page with the invited address, and joins
//! once registered. The link works while its invitation is kept: accepted,
//! withdrawn or expired, it is dead.

use super::{
    AuthRequest, EndAfter, Invite, Pending, csrf_cookie, error_page, esc, keep_request, page,
};
use crate::action_token::ActionToken;
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gatehouse_core::model::{Event, Organization, Realm, User};

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
        let req_id = gatehouse_core::id::token();
        keep_request(idp, realm, &req_id, &req, now + realm.login_lifespan()).await?;
        let pending = Pending {
            id: req_id.clone(),
            req: req.clone(),
            expires: now + realm.login_lifespan(),
        };
        let entered = super::registration::Entered::for_login(&pending);
        let mut r = super::registration::form(realm, &req_id, &req.csrf, &entered, None);
        r.headers_mut()
            .append(header::SET_COOKIE, csrf_cookie(idp, realm, &req.csrf));
        return Ok(r);
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
            let req_id = gatehouse_core::id::token();
            keep_request(idp, realm, &req_id, &req, now + realm.login_lifespan()).await?;
            let mut r = confirm_page(realm, &org, t, key, &req_id);
            r.headers_mut()
                .append(header::SET_COOKIE, csrf_cookie(idp, realm, &req.csrf));
            Ok(r)
        }
        Some(code) => {
            let Some(login) = Pending::load(idp, realm, code).await? else {
                return Ok(super::expired_page());
            };
            let ours = login.req.end_after.as_ref().is_some_and(|e| e.jti == t.jti);
            if !ours || !login.same_browser(headers, None) {
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

/// Keycloak's confirmation before joining.
fn confirm_page(
    realm: &Realm,
    org: &Organization,
    t: &ActionToken,
    key: &str,
    req_id: &str,
) -> Response {
    let href = super::with_params(
        &format!("/realms/{}/login-actions/action-token", esc(&realm.name)),
        &[
            ("key", key),
            ("client_id", &t.cid),
            ("session_code", req_id),
        ],
    );
    let body = format!(
        "<h1>Organization invitation</h1><p>You were invited to join the {o} organization.</p><p><a id=\"kc-proceed\" href=\"{h}\">» Click here to proceed</a></p>",
        o = esc(&org.name),
        h = esc(&href)
    );
    page(StatusCode::OK, "Organization invitation", &body)
}
