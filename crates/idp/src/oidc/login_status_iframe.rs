//! `GET /realms/{realm}/protocol/openid-connect/login-status-iframe.html`
//! and `.../login-status-iframe.html/init`: the OIDC Session Management
//! iframe (advertised as `check_session_iframe`) that keycloak-js keeps
//! hidden in the app's page and asks every few seconds whether the browser
//! session its tokens came from is still the one signed in. When the user
//! logs out in another tab or app, the answer turns to `changed` and
//! keycloak-js drops its tokens at once, instead of holding them until a
//! refresh fails.
//!
//! The protocol is Keycloak's: the app posts `"<client_id> <sid>"`; the
//! frame first asks `init` whether the app's origin is one of the client's
//! web origins (204, else 403, after which it answers `error` to every
//! message), then compares the token's `sid` with the `GATEHOUSE_SESSION`
//! cookie, which names the browser's SSO session: `unchanged`, or
//! `changed` when the cookie is gone or names another session. A client
//! session's id starts with its SSO session's id (`{sso}.{suffix}`, see
//! `token::code`), which is the part compared; the cookie holds no secret
//! (the SSO cookie proper is signed and HttpOnly).

use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The frame's script. `asked` makes a refused origin cost the server one
/// request per frame, whatever the page posts afterwards.
const SCRIPT: &str = "(function () {\
var init = null, asked = false;\
function cookie(name) {\
var parts = document.cookie.split(\";\");\
for (var i = 0; i < parts.length; i++) {\
var kv = parts[i].trim().split(\"=\");\
if (kv[0] === name) return kv.slice(1).join(\"=\");\
}\
return null;\
}\
async function access() {\
if (!(\"hasStorageAccess\" in document) || (await document.hasStorageAccess())) return true;\
try { await document.requestStorageAccess(); return true; } catch (e) { return false; }\
}\
async function check(clientId, origin, sid) {\
if (!(await access())) return \"error\";\
if (!init) {\
if (asked) return \"error\";\
asked = true;\
var url = new URL(location.origin + location.pathname + \"/init\");\
url.searchParams.set(\"client_id\", clientId);\
url.searchParams.set(\"origin\", origin);\
var r = await fetch(url, { credentials: \"omit\" });\
if (!r.ok) return \"error\";\
init = { clientId: clientId, origin: origin };\
}\
if (clientId !== init.clientId || origin !== init.origin) return \"error\";\
var current = cookie(\"GATEHOUSE_SESSION\");\
if (!current) return sid !== \"\" ? \"changed\" : \"unchanged\";\
return sid.split(\".\")[0] === current ? \"unchanged\" : \"changed\";\
}\
window.addEventListener(\"message\", async function (event) {\
if (typeof event.data !== \"string\") return;\
var data = event.data.split(\" \");\
if (data.length !== 2) return;\
var status;\
try { status = await check(data[0], event.origin, data[1]); } catch (e) { status = \"error\"; }\
event.source.postMessage(status, event.origin);\
});\
})();";

/// The frame.
pub async fn page(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
) -> Result<Response, OAuthError> {
    idp.realm(&realm).await?;
    Ok(super::third_party_cookies::framed_script(
        SCRIPT,
        "connect-src 'self'; ",
    ))
}

/// `init`: 204 if `origin` may check sessions for `client_id` (one of its
/// web origins, or Gatehouse's own origin, as Keycloak allows), else 403.
pub async fn init(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let allowed = async {
        let realm = idp.realm(&realm).await.ok()?;
        let q = Form::parse_query(query.unwrap_or_default().as_bytes()).ok()?;
        let origin = q.get("origin")?;
        let client = idp.client(&realm, q.get("client_id")?).await.ok()??;
        if !client.enabled {
            return None;
        }
        let own = url::Url::parse(&idp.public_url)
            .ok()
            .map(|u| u.origin().ascii_serialization());
        let ok = own.as_deref() == Some(origin)
            || super::cors::allowed_origins(&client)
                .is_none_or(|list| list.iter().any(|o| o == origin));
        ok.then_some(())
    };
    match allowed.await {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}
