//! A realm's `browserSecurityHeaders` (Keycloak's realm settings, "Security
//! defenses" tab): the security headers of the HTML pages a realm serves
//! (login, consent, errors, logout), which an admin may change, say to let
//! the company portal frame the login page, or clear.
//!
//! Every page starts with Gatehouse's defaults ([`DEFAULTS`], stricter than
//! Keycloak's: the pages have no scripts but the ones allowed by hash and are
//! framed by no one). [`layer`] then puts a realm's own values over them, the
//! way Keycloak's security headers provider does: a non-empty value replaces
//! the header, an empty one removes it. A page that brings a policy of its own
//! keeps it: the `form_post` and logout pages' scripts are allowed by hash,
//! and the third-party-cookie check is framed on purpose, so a realm's CSP or
//! `X-Frame-Options` would only break them.
//!
//! Values are refused at the admin API unless they are valid header values
//! (Keycloak's CVE-2024-11734 was a line break in one).

use crate::state::Idp;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The key in the realm representation that holds them.
pub const FIELD: &str = "browserSecurityHeaders";

/// The CSP of an ordinary page: nothing runs, nothing frames it.
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// Keycloak's keys, the header each sets, and Gatehouse's default value.
pub const DEFAULTS: [(&str, HeaderName, &str); 7] = [
    ("xFrameOptions", header::X_FRAME_OPTIONS, "DENY"),
    (
        "contentSecurityPolicy",
        header::CONTENT_SECURITY_POLICY,
        PAGE_CSP,
    ),
    (
        "contentSecurityPolicyReportOnly",
        header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
        "",
    ),
    (
        "xContentTypeOptions",
        header::X_CONTENT_TYPE_OPTIONS,
        "nosniff",
    ),
    (
        "xRobotsTag",
        HeaderName::from_static("x-robots-tag"),
        "none",
    ),
    (
        "strictTransportSecurity",
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ),
    ("referrerPolicy", header::REFERRER_POLICY, "no-referrer"),
];

/// Puts the defaults on a page.
pub fn add_defaults(h: &mut axum::http::HeaderMap) {
    for (_, name, value) in &DEFAULTS {
        if !value.is_empty() {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
}

/// The realm's values as its representation shows them: every key, the
/// realm's value where it set one.
pub fn representation(extra: &Map<String, Value>) -> Value {
    let stored = extra.get(FIELD);
    let mut o = Map::new();
    for (key, _, default) in &DEFAULTS {
        let v = stored
            .and_then(|s| s.get(*key))
            .cloned()
            .unwrap_or_else(|| Value::from(*default));
        o.insert((*key).to_owned(), v);
    }
    Value::Object(o)
}

/// Merges a representation's `browserSecurityHeaders` into the stored ones:
/// the keys it names change, the others stay (Keycloak keeps each as its own
/// realm attribute). Keys Keycloak no longer has (`xXSSProtection` in older
/// exports) are dropped; a value that is not a valid header value is refused.
pub fn merge(extra: &mut Map<String, Value>, given: &Value) -> Result<(), String> {
    let Some(given) = given.as_object() else {
        return Err(format!("{FIELD} must be an object"));
    };
    let mut merged = extra
        .get(FIELD)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, _, _) in &DEFAULTS {
        match given.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if HeaderValue::from_str(s.trim()).is_ok() => {
                merged.insert((*key).to_owned(), Value::from(s.trim()));
            }
            Some(_) => return Err(format!("Invalid value for browser security header {key}")),
        }
    }
    extra.insert(FIELD.to_owned(), Value::Object(merged));
    Ok(())
}

/// Puts the realm's own values over an HTML page's defaults (see the module
/// notes); other responses pass untouched, without a realm lookup.
pub async fn layer(State(idp): State<Arc<Idp>>, req: Request, next: Next) -> Response {
    // Shared, not copied: the token endpoint's answers pass by here too.
    let uri = req.uri().clone();
    let mut resp = next.run(req).await;
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !html {
        return resp;
    }
    let Some(name) = uri
        .path()
        .strip_prefix("/realms/")
        .and_then(|rest| rest.split('/').next())
    else {
        return resp;
    };
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    let Ok(realm) = idp.realm(&name).await else {
        return resp;
    };
    let Some(set) = realm.extra.get(FIELD).and_then(Value::as_object) else {
        return resp;
    };
    apply(resp.headers_mut(), set);
    resp
}

fn apply(h: &mut axum::http::HeaderMap, set: &Map<String, Value>) {
    // Framed on purpose (no X-Frame-Options), or scripts allowed by hash:
    // the page's own policy stands.
    let own_policy = !h.contains_key(header::X_FRAME_OPTIONS)
        || h.get(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|v| v.as_bytes() != PAGE_CSP.as_bytes());
    for (key, name, default) in &DEFAULTS {
        let Some(value) = set.get(*key).and_then(Value::as_str) else {
            continue;
        };
        // An admin tool writes back the whole representation, defaults and
        // all: a default is no override.
        if value == *default
            || (own_policy
                && (*name == header::X_FRAME_OPTIONS || *name == header::CONTENT_SECURITY_POLICY))
        {
            continue;
        }
        if value.is_empty() {
            h.remove(name);
        } else if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn realm_values_replace_or_remove_the_defaults_on_ordinary_pages_only() {
        let mut extra = Map::new();
        merge(
            &mut extra,
            &json!({"xFrameOptions": "SAMEORIGIN", "contentSecurityPolicy": "frame-ancestors 'self'",
                    "xRobotsTag": "", "xXSSProtection": "1; mode=block"}),
        )
        .expect("valid");
        merge(&mut extra, &json!({"referrerPolicy": "same-origin"})).expect("valid");
        let rep = representation(&extra);
        assert_eq!(rep["xFrameOptions"], "SAMEORIGIN");
        assert_eq!(rep["referrerPolicy"], "same-origin", "merged, not replaced");
        assert_eq!(rep["xContentTypeOptions"], "nosniff");
        assert!(rep.get("xXSSProtection").is_none());
        let set = extra[FIELD].as_object().expect("object").clone();

        let mut page = axum::http::HeaderMap::new();
        add_defaults(&mut page);
        apply(&mut page, &set);
        assert_eq!(page[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(
            page[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'self'"
        );
        assert!(!page.contains_key("x-robots-tag"));
        assert_eq!(page[header::REFERRER_POLICY], "same-origin");

        let mut scripted = axum::http::HeaderMap::new();
        add_defaults(&mut scripted);
        scripted.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("script-src 'sha256-x'"),
        );
        apply(&mut scripted, &set);
        assert_eq!(
            scripted[header::CONTENT_SECURITY_POLICY],
            "script-src 'sha256-x'"
        );
        assert_eq!(scripted[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(scripted[header::REFERRER_POLICY], "same-origin");
    }

    #[test]
    fn values_that_are_not_header_values_are_refused() {
        let mut extra = Map::new();
        for bad in [
            json!({"xFrameOptions": "DENY\r\nSet-Cookie: a=b"}),
            json!({"contentSecurityPolicy": 5}),
            json!("DENY"),
        ] {
            assert!(merge(&mut extra, &bad).is_err(), "{bad}");
        }
        assert!(extra.is_empty(), "nothing half-written");
    }
}
