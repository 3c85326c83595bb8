//! `/realms/{realm}/...`: the OpenID Connect and OAuth 2.0 endpoints, one
//! file per URL.

pub mod auth;
pub mod certs;
pub mod client_assertion;
pub mod client_auth;
pub mod cors;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod form;
pub mod frontchannel_logout;
pub mod introspect;
pub mod login_status_iframe;
pub mod logout;
pub mod par;
pub mod realm_info;
pub mod request_object;
pub mod revoke;
pub mod security_headers;
pub mod third_party_cookies;
pub mod token;
pub mod token_exchange;
pub mod uma;
pub mod userinfo;

use crate::state::Idp;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The OIDC routes, Keycloak's paths.
pub fn routes() -> Router<Arc<Idp>> {
    const P: &str = "/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery::get),
        )
        // RFC 8414 authorization server metadata, at Keycloak's path and at
        // the RFC's path-insertion form (`/.well-known/<name>/<issuer
        // path>`), which OAuth clients such as MCP clients try first; the
        // OIDC document's path-insertion twin too.
        .route(
            "/realms/{realm}/.well-known/oauth-authorization-server",
            get(discovery::get),
        )
        .route(
            "/.well-known/oauth-authorization-server/realms/{realm}",
            get(discovery::get),
        )
        .route(
            "/.well-known/openid-configuration/realms/{realm}",
            get(discovery::get),
        )
        .route("/realms/{realm}", get(realm_info::get))
        .route(&format!("{P}/certs"), get(certs::get))
        .route(&format!("{P}/token"), post(token::post))
        .route(
            &format!("{P}/userinfo"),
            get(userinfo::handle).post(userinfo::handle),
        )
        .route(&format!("{P}/token/introspect"), post(introspect::post))
        .route(&format!("{P}/revoke"), post(revoke::post))
        .route(
            &format!("{P}/logout"),
            get(logout::handle).post(logout::handle),
        )
        .route(&format!("{P}/auth"), get(auth::get).post(auth::post_form))
        .route(&format!("{P}/registrations"), get(auth::registrations))
        .route(&format!("{P}/auth/device"), post(device::start))
        .route(&format!("{P}/ext/par/request"), post(par::post))
        .route(
            &format!("{P}/3p-cookies/step1.html"),
            get(third_party_cookies::step1),
        )
        .route(
            &format!("{P}/3p-cookies/step2.html"),
            get(third_party_cookies::step2),
        )
        .route(
            &format!("{P}/login-status-iframe.html"),
            get(login_status_iframe::page),
        )
        .route(
            &format!("{P}/login-status-iframe.html/init"),
            get(login_status_iframe::init),
        )
        .route(
            "/realms/{realm}/device",
            get(device::page_get).post(device::page_post),
        )
        .route(
            "/realms/{realm}/login-actions/authenticate",
            get(auth::login_again).post(auth::post),
        )
        .route(
            "/realms/{realm}/login-actions/reset-credentials",
            get(auth::reset_credentials_get).post(auth::reset_credentials_post),
        )
        .route(
            "/realms/{realm}/login-actions/action-token",
            get(auth::action_token),
        )
        .route(
            "/realms/{realm}/login-actions/registration",
            get(auth::registration_get).post(auth::registration_post),
        )
}
