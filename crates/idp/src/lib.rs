//! The identity provider: Keycloak-compatible OIDC/OAuth 2.0 endpoints and
//! admin REST API over the store. Files mirror URLs: the handler for
//! `/realms/{realm}/protocol/openid-connect/token` is `oidc/token.rs`, the
//! one for `/admin/realms/{realm}/users` is `admin/users.rs`.

pub mod account;
pub mod action_token;
pub mod admin;
pub mod authz;
pub mod backchannel_logout;
pub mod bootstrap;
pub mod broker;
pub mod client_registration;
pub mod error;
pub mod event_mail;
pub mod export;
pub mod fetch;
pub mod flows;
pub mod hashing;
pub mod health;
pub mod import;
pub mod keyring;
pub mod keystore;
pub mod ldap;
pub mod login;
pub mod login_turns;
pub mod mail;
pub mod multipart;
pub mod not_before;
pub mod oidc;
pub mod otp;
pub mod pairwise;
pub mod password_policy;
pub mod profile_rules;
pub mod repr;
pub mod state;
pub mod tokens;
pub mod user_storage;

pub use error::{AdminError, OAuthError};
pub use state::Idp;

use axum::Router;
use axum::extract::Request;
use std::sync::Arc;

/// Removes one trailing slash from the path (not from `/` itself), as
/// Keycloak's JAX-RS routing tolerates it and Keycloak's own admin client
/// sends `/admin/realms/` for the realm list. Must run before routing.
pub fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(pq) = new.parse::<axum::http::uri::PathAndQuery>() {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// axum answers what its extractors refuse (a body over the limit, a query
/// or path that does not parse) in plain text; Keycloak's clients and
/// OAuth clients read JSON errors, so those answers are rewritten into the
/// API's own error form, status kept.
async fn rejections_as_json(
    resp: axum::response::Response,
    shape: fn(&str) -> serde_json::Value,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let plain = |r: &axum::response::Response| {
        r.headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"))
    };
    if !resp.status().is_client_error() || !plain(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body = shape(&String::from_utf8_lossy(&text)).to_string();
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

async fn admin_rejections(resp: axum::response::Response) -> axum::response::Response {
    rejections_as_json(resp, |m| serde_json::json!({ "errorMessage": m })).await
}

async fn oauth_rejections(resp: axum::response::Response) -> axum::response::Response {
    rejections_as_json(
        resp,
        |m| serde_json::json!({"error": "invalid_request", "error_description": m}),
    )
    .await
}

/// The largest request body an identity-listener endpoint reads (axum's
/// default, made explicit), the admin API's aside.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The largest body the admin API reads: a realm file given to
/// `POST /admin/realms` or `partialImport` runs to megabytes (a few
/// thousand users with their credentials), and Keycloak takes up to
/// Quarkus's default, 10 MiB. Only an administrator's token gets a body
/// read: the bearer check comes first.
pub const MAX_ADMIN_BODY: usize = 10 * 1024 * 1024;

/// Refuses a request that announces a body past `limit` before any
/// of it is read, as nginx and Quarkus do, rather than hold the connection
/// while a client claims to send gigabytes. The answer is axum's own limit
/// rejection, so each API's rejection mapper (outside this layer) gives it
/// that API's JSON error form; the listener adds `Connection: close`,
/// since the body stays unread.
async fn refuse_announced_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // hyper has read the announced length (`Content-Length`, HTTP/2's
    // `content-length`) into the body's size hint.
    let announced = axum::body::HttpBody::size_hint(req.body()).lower();
    if announced > limit as u64 {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Failed to buffer the request body: length limit exceeded",
        )
            .into_response();
    }
    next.run(req).await
}

/// Every identity-listener route: OIDC under `/realms`, admin under
/// `/admin/realms`, health probes.
pub fn router(idp: Arc<Idp>) -> Router {
    Router::new()
        .merge(
            oidc::routes()
                .merge(broker::routes())
                .merge(authz::protection::routes())
                .route_layer(axum::middleware::from_fn_with_state(
                    MAX_BODY,
                    refuse_announced_oversize,
                ))
                .route_layer(axum::middleware::map_response(oauth_rejections))
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    oidc::security_headers::layer,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    oidc::cors::layer,
                )),
        )
        // The Account API: Keycloak's error bodies, the OIDC endpoints' CORS
        // (the token's client's origins), caches dropped after its writes.
        .merge(
            account::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    MAX_BODY,
                    refuse_announced_oversize,
                ))
                .route_layer(axum::middleware::map_response(admin_rejections))
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    admin::invalidate_after_writes,
                ))
                // DPoP proofs of bound tokens: only the admin and account
                // APIs read the mark this leaves, so only they pay for it.
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    oidc::dpop::resource_layer,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    oidc::cors::layer,
                )),
        )
        // Registration writes clients: the same cache drop as admin writes.
        .merge(
            client_registration::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    MAX_BODY,
                    refuse_announced_oversize,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    admin::invalidate_after_writes,
                )),
        )
        .merge(
            admin::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    MAX_ADMIN_BODY,
                    refuse_announced_oversize,
                ))
                .layer(axum::extract::DefaultBodyLimit::max(MAX_ADMIN_BODY))
                .route_layer(axum::middleware::map_response(admin_rejections))
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    admin::invalidate_after_writes,
                ))
                // DPoP proofs of bound tokens: only the admin and account
                // APIs read the mark this leaves, so only they pay for it.
                .route_layer(axum::middleware::from_fn_with_state(
                    idp.clone(),
                    oidc::dpop::resource_layer,
                )),
        )
        .merge(health::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(idp)
}
