//! `/realms/{realm}/protocol/openid-connect/3p-cookies/step1.html` and
//! `step2.html`: the pages keycloak-js frames at `init()` to learn whether
//! the browser lets the identity provider's cookies through in an iframe
//! (its session-status iframe needs them). keycloak-js waits for the
//! answer and fails `init()` after `messageReceiveTimeout` (10 s) without
//! one, so these pages must exist for Keycloak's own adapter to start.
//!
//! Gatehouse has no session-status iframe (`login-status-iframe.html`) yet,
//! so the answer is always `unsupported`: keycloak-js then turns its
//! session iframe off at once, and `check-sso` falls back to a redirect,
//! exactly as it does in a browser that blocks third-party cookies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Step 1 only moves on to step 2 (Keycloak's first step sets a test
/// cookie there; with no iframe to use it for, there is nothing to test).
const STEP1_SCRIPT: &str = "window.location.replace(\"step2.html\");";
/// Step 2 answers the framing page.
const STEP2_SCRIPT: &str = "window.parent.postMessage(\"unsupported\", \"*\");";

/// `GET .../3p-cookies/step1.html`.
pub async fn step1() -> Response {
    framed_script(STEP1_SCRIPT)
}

/// `GET .../3p-cookies/step2.html`.
pub async fn step2() -> Response {
    framed_script(STEP2_SCRIPT)
}

/// A page made to be framed by any site (its one message says nothing
/// about anyone), whose only script is allowed by its hash.
fn framed_script(script: &'static str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body><script>{script}</script></body></html>"
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src {}; base-uri 'none'",
        super::auth::script_source(script)
    )) {
        h.insert("content-security-policy", v);
    }
    r
}
