//! OpenID Connect Front-Channel Logout 1.0, as Keycloak does it: when a
//! browser logs out (RP-initiated logout), each client of the ended
//! session with `frontchannelLogout: true` and a `frontchannel.logout.url`
//! attribute (`frontchannel_logout_uri` in dynamic registration) is loaded
//! in a hidden iframe of the logout page, with `iss` and `sid` unless
//! `frontchannel.logout.session.required` is `false`, so the app clears
//! its own cookies in the user's browser. The page then goes on to the
//! `post_logout_redirect_uri` once every frame has loaded (or after a few
//! seconds), and shows a link for browsers without script.

use crate::oidc::auth::{esc, page, script_source, with_params};
use crate::state::Idp;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_core::model::{Client, Realm, Session};
use serde_json::Value;

/// One application's logout frame.
pub struct Frame {
    title: String,
    src: String,
    origin: String,
}

/// The URL a client registered for front-channel logout, if it is on.
pub fn url(client: &Client) -> Option<&str> {
    if client
        .extra
        .get("frontchannelLogout")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return None;
    }
    client
        .attributes
        .get("frontchannel.logout.url")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
}

/// The frames for the clients of the `ended` sessions (one per client
/// session; clients without front-channel logout are left out).
pub async fn frames(idp: &Idp, realm: &Realm, ended: &[Session]) -> Vec<Frame> {
    let iss = idp.issuer(&realm.name);
    let mut out: Vec<Frame> = Vec::new();
    for s in ended.iter().filter(|s| !s.client_id.is_empty()) {
        let Ok(Some(client)) = idp.client(realm, &s.client_id).await else {
            continue;
        };
        let Some(base) = url(&client) else { continue };
        let Ok(parsed) = url::Url::parse(base) else {
            continue;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            continue;
        }
        let src = if client.attribute_flag("frontchannel.logout.session.required", true) {
            with_params(base, &[("iss", &iss), ("sid", &s.id)])
        } else {
            base.to_owned()
        };
        if out.iter().any(|f| f.src == src) {
            continue;
        }
        out.push(Frame {
            title: client
                .name
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            src,
            origin: parsed.origin().ascii_serialization(),
        });
    }
    out
}

/// Waits for every frame to load (or 3 s), then follows the link.
const SCRIPT: &str = "(function () {\
var frames = document.querySelectorAll(\"iframe\"), left = frames.length, gone = false;\
function go() { if (gone) return; gone = true; var a = document.getElementById(\"continue\"); if (a) location.replace(a.href); }\
function loaded() { left -= 1; if (left <= 0) go(); }\
for (var i = 0; i < frames.length; i++) { frames[i].addEventListener(\"load\", loaded); }\
setTimeout(go, 3000);\
})();";

/// The logout page with the frames, going on to `redirect` if given.
pub fn logout_page(frames: &[Frame], redirect: Option<&str>) -> Response {
    let iframes: String = frames
        .iter()
        .map(|f| {
            format!(
                "<iframe src=\"{}\" title=\"Logging out of {}\" width=\"0\" height=\"0\" style=\"display:none\"></iframe>",
                esc(&f.src),
                esc(&f.title)
            )
        })
        .collect();
    let next = match redirect {
        Some(r) => format!("<p><a id=\"continue\" href=\"{}\">Continue</a></p>", esc(r)),
        None => "<p>You are logged out.</p>".to_owned(),
    };
    let body = format!(
        "<h1>Logging out</h1><p>You are being logged out of your applications.</p>{iframes}{next}<script>{SCRIPT}</script>"
    );
    let mut r = page(StatusCode::OK, "Logging out", &body);
    let mut origins: Vec<&str> = frames.iter().map(|f| f.origin.as_str()).collect();
    origins.sort_unstable();
    origins.dedup();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src {}; frame-src {}; frame-ancestors 'none'; base-uri 'none'",
        script_source(SCRIPT),
        origins.join(" ")
    )) {
        r.headers_mut().insert("content-security-policy", v);
    }
    r
}
