//! `/admin/realms/{realm}/attack-detection/brute-force/users[/{id}]`:
//! Keycloak's view of brute-force detection, so an administrator can see
//! why a user cannot log in and unlock them before the wait runs out (or,
//! after a permanent lockout, enable them again).

use super::RealmAdmin;
use crate::admin::event;
use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    const B: &str = "/admin/realms/{realm}/attack-detection/brute-force/users";
    Router::new()
        .route(B, delete(unlock_all))
        .route(&format!("{B}/{{id}}"), get(status).delete(unlock))
}

/// A user's brute-force status, in Keycloak's shape. Like Keycloak, an
/// unknown user or a realm without brute-force protection reads as
/// "no failures", not as an error.
async fn status(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let mut v = json!({
        "disabled": false, "numFailures": 0, "numSecondaryAuthFailures": 0,
        "numTemporaryLockouts": 0, "lastFailure": 0, "lastIPFailure": "n/a",
        "failedLoginNotBefore": 0,
    });
    let Some(user) = idp.store.user(&realm.id, &id).await? else {
        return Ok(Json(v));
    };
    if crate::login::locked_permanently(&user) {
        v["disabled"] = json!(true);
    }
    if !realm.brute_force_protected {
        return Ok(Json(v));
    }
    let lf = idp.store.login_failures(&id).await?;
    if lf.failures == 0 {
        return Ok(Json(v));
    }
    let now = gatehouse_core::time::now();
    let wait = crate::login::locked_for(&realm, &lf, now);
    v["numFailures"] = json!(lf.failures);
    v["lastFailure"] = json!(lf.last_failure_ms);
    v["lastIPFailure"] = json!(lf.last_ip.as_deref().unwrap_or("n/a"));
    if wait > 0 {
        v["disabled"] = json!(true);
        v["failedLoginNotBefore"] = json!(now + wait);
    }
    Ok(Json(v))
}

/// Clears one user's failures: the next login is checked normally.
async fn unlock(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    reset(&admin, Some(&id)).await
}

/// Clears the failures of every user of the realm.
async fn unlock_all(admin: RealmAdmin) -> Result<StatusCode, AdminError> {
    reset(&admin, None).await
}

async fn reset(admin: &RealmAdmin, user: Option<&str>) -> Result<StatusCode, AdminError> {
    let RealmAdmin { idp, caller, realm } = admin;
    let path = match user {
        Some(id) => format!("attack-detection/brute-force/users/{id}"),
        None => "attack-detection/brute-force/users".to_owned(),
    };
    let ev = event(realm, caller, "DELETE", "USER_LOGIN_FAILURE", &path, None);
    idp.store
        .reset_login_failures(&realm.id, user, &[ev])
        .await?;
    // Users a permanent lockout disabled are enabled again, as Keycloak's
    // clearing does.
    let locked = match user {
        Some(id) => idp.store.user(&realm.id, id).await?.into_iter().collect(),
        None => {
            let q = gatehouse_store::UserQuery {
                attributes: vec![(
                    crate::login::DISABLED_REASON.into(),
                    crate::login::PERMANENT_LOCKOUT.into(),
                )],
                max: i64::MAX,
                ..Default::default()
            };
            idp.store.users(&realm.id, &q).await?
        }
    };
    for mut u in locked.into_iter().filter(crate::login::locked_permanently) {
        u.enabled = true;
        u.attributes.remove(crate::login::DISABLED_REASON);
        idp.store.update_user(&u, &[]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
