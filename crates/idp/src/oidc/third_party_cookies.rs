//! `/realms/{realm}/protocol/openid-connect/3p-cookies/step1.html` and
//! `step2.html`: the pages keycloak-js frames at `init()` to learn whether
//! the browser lets the identity provider's cookies through in an iframe.
//! On `supported` it keeps its session-status iframe
//! (`login-status-iframe.html`) and does `check-sso` in a hidden iframe; on
//! `unsupported` it turns the status iframe off and falls back to a full
//! redirect. keycloak-js fails `init()` after `messageReceiveTimeout` (10 s)
//! without an answer, so these pages must exist for it to start at all.
//!
//! As Keycloak's: step 1 asks for storage access (the Storage Access API,
//! where the browser has it) and sets two test cookies from script, one
//! `SameSite=None; Secure` and one without attributes; step 2, a fresh
//! load, answers `supported` only if a test cookie came back.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const STEP1_SCRIPT: &str = "(async function () {\
var access = true;\
if (\"hasStorageAccess\" in document && !(await document.hasStorageAccess())) {\
try { await document.requestStorageAccess(); } catch (e) { access = false; }\
}\
if (!access) { window.parent.postMessage(\"unsupported\", \"*\"); return; }\
document.cookie = \"GATEHOUSE_3P_COOKIE_SAMESITE=supported; Max-Age=60; SameSite=None; Secure\";\
document.cookie = \"GATEHOUSE_3P_COOKIE=supported; Max-Age=60\";\
window.location.replace(\"step2.html\");\
})();";

const STEP2_SCRIPT: &str = "(function () {\
var found = document.cookie.indexOf(\"GATEHOUSE_3P_COOKIE\") !== -1;\
if (found) {\
document.cookie = \"GATEHOUSE_3P_COOKIE_SAMESITE=; Max-Age=0; SameSite=None; Secure\";\
document.cookie = \"GATEHOUSE_3P_COOKIE=; Max-Age=0\";\
}\
window.parent.postMessage(found ? \"supported\" : \"unsupported\", \"*\");\
})();";

/// `GET .../3p-cookies/step1.html`.
pub async fn step1() -> Response {
    framed_script(STEP1_SCRIPT, "")
}

/// `GET .../3p-cookies/step2.html`.
pub async fn step2() -> Response {
    framed_script(STEP2_SCRIPT, "")
}

/// A page made to be framed by any site (what it tells the framing page
/// says nothing about anyone), whose only script is allowed by its hash;
/// `csp_extra` adds directives (e.g. `connect-src 'self'; `).
pub fn framed_script(script: &'static str, csp_extra: &str) -> Response {
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
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "default-src 'none'; {csp_extra}script-src {}; base-uri 'none'",
        super::auth::script_source(script)
    )) {
        h.insert("content-security-policy", v);
    }
    r
}
