//! `POST /admin/realms/{realm}/users/{id}/impersonation`: an admin signs in
//! as a user, as Keycloak's impersonation does, to see what the user sees.
//!
//! The answer sets the realm's SSO cookies for a new browser session of the
//! user and names the account page to open (`redirect`); an admin console
//! on the same host then lands in the user's session. The session records
//! its impersonator (Keycloak's `IMPERSONATOR_ID`/`IMPERSONATOR_USERNAME`
//! notes), so does every client session made from it, and introspection
//! shows the admin as `act` (RFC 8693 §4.1). The user event `IMPERSONATE`
//! names the admin and their realm. When the admin signed in to the same
//! realm, their own session ends first (`sameRealm: true`), as in
//! Keycloak: a browser holds one SSO session per realm.

use super::RealmAdmin;
use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gatehouse_core::model::{Event, Impersonator};
use serde_json::json;
use std::sync::Arc;

/// The route.
pub fn routes() -> Router<Arc<Idp>> {
    Router::new().route(
        "/admin/realms/{realm}/users/{id}/impersonation",
        post(impersonate),
    )
}

async fn impersonate(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let user = super::users::load(&idp, &realm, &id).await?;
    // Admins sign in to `master` (`admin::guard`).
    let admin_realm = super::realm(&idp, "master").await?;
    let admin = idp
        .store
        .user(&admin_realm.id, &caller.user_id)
        .await?
        .ok_or_else(|| AdminError::not_found("User"))?;
    let same_realm = admin_realm.id == realm.id;
    if same_realm && let Some(sid) = &caller.session_id {
        let ended = idp.store.delete_session(sid, &[]).await?;
        idp.sessions_ended(&admin_realm, &ended).await;
    }
    let impersonator = Impersonator {
        id: admin.id.clone(),
        username: admin.username.clone(),
        realm: admin_realm.name.clone(),
    };
    let now = gatehouse_core::time::now();
    let origin = crate::oidc::auth::SsoOrigin {
        impersonator: Some(impersonator),
        ..Default::default()
    };
    let (_, cookies) = crate::oidc::auth::start_sso(&idp, &realm, &user, now, origin, |s| {
        let mut ev = Event::user(&realm, "IMPERSONATE");
        ev.user_id = Some(user.id.clone());
        ev.session_id = Some(s.id.clone());
        ev.details
            .insert("impersonator_realm".into(), admin_realm.name.clone());
        ev.details
            .insert("impersonator".into(), admin.username.clone());
        ev
    })
    .await?;
    let redirect = format!("{}/account", idp.issuer(&realm.name));
    let mut r = Json(json!({"sameRealm": same_realm, "redirect": redirect})).into_response();
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}
