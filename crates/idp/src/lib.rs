//! The identity provider: Keycloak-compatible OIDC/OAuth 2.0 endpoints and
//! admin REST API over the store. Files mirror URLs: the handler for
//! `/realms/{realm}/protocol/openid-connect/token` is `oidc/token.rs`, the
//! one for `/admin/realms/{realm}/users` is `admin/users.rs`.

pub mod admin;
pub mod bootstrap;
pub mod error;
pub mod health;
pub mod import;
pub mod keyring;
pub mod login;
pub mod oidc;
pub mod repr;
pub mod state;
pub mod tokens;

pub use error::{AdminError, OAuthError};
pub use state::Idp;

use axum::Router;
use std::sync::Arc;

/// Every identity-listener route: OIDC under `/realms`, admin under
/// `/admin/realms`, health probes.
pub fn router(idp: Arc<Idp>) -> Router {
    Router::new()
        .merge(oidc::routes())
        .merge(admin::routes())
        .merge(health::routes())
        .with_state(idp)
}
