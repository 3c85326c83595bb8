//! CORS on the OIDC endpoints, as Keycloak answers it, so browser apps
//! (keycloak-js, oidc-client-ts) can call the token, userinfo, revocation
//! and logout endpoints from their own origin.
//!
//! Keycloak's rules: a preflight (`OPTIONS` with `Origin`) is answered for
//! any origin (the real request is what is checked); discovery and JWKS
//! are readable from any origin; the token, revocation, introspection,
//! logout and device endpoints allow the origins of the calling client's
//! `webOrigins` (`+` = the origins of its redirect URIs, `*` = any); userinfo
//! and the account profile those of the client the access token was
//! issued to. A disallowed
//! origin simply gets no CORS headers, and the browser hides the answer.

use crate::state::Idp;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::Client;
use std::sync::Arc;

const ALLOW_HEADERS: &str = "Origin, Accept, X-Requested-With, Content-Type, Access-Control-Request-Method, Access-Control-Request-Headers, Authorization, DPoP";
/// Token-endpoint form bodies are small; a larger one is not read here
/// (the handler refuses it or handles it without CORS headers).
const MAX_FORM: usize = 64 * 1024;

/// Which CORS rule a path falls under.
enum Kind {
    /// Discovery and JWKS: any origin.
    Public,
    /// The client is named in the form (or Basic auth).
    FormClient,
    /// The client is the access token's `azp`.
    Bearer,
}

fn kind(path: &str) -> Option<(Kind, &'static str)> {
    if path.contains("/.well-known/") || path.ends_with("/protocol/openid-connect/certs") {
        return Some((Kind::Public, "GET, OPTIONS"));
    }
    // The Account REST API, called by browser apps with the user's token.
    if let Some(rest) = path.strip_prefix("/realms/")
        && let Some((_, tail)) = rest.split_once('/')
        && (tail == "account" || tail.starts_with("account/"))
    {
        return Some((Kind::Bearer, "GET, PUT, POST, DELETE, OPTIONS"));
    }
    let tail = path.rsplit_once("/protocol/openid-connect/")?.1;
    match tail {
        "token" | "revoke" | "token/introspect" | "auth/device" => {
            Some((Kind::FormClient, "POST, OPTIONS"))
        }
        "logout" => Some((Kind::FormClient, "GET, POST, OPTIONS")),
        "userinfo" => Some((Kind::Bearer, "GET, POST, OPTIONS")),
        _ => None,
    }
}

/// The origins a client's `webOrigins` allow; None means any.
pub fn allowed_origins(c: &Client) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for w in &c.web_origins {
        match w.as_str() {
            "*" => return None,
            "+" => out.extend(c.redirect_uris.iter().filter_map(|u| origin_of(u))),
            o => out.push(o.trim_end_matches('/').to_owned()),
        }
    }
    Some(out)
}

/// `scheme://host[:port]` of an absolute http(s) URI (a trailing `*` of
/// Keycloak's wildcard form is ignored).
fn origin_of(uri: &str) -> Option<String> {
    let parsed = url::Url::parse(uri.trim_end_matches('*')).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

fn set(h: &mut HeaderMap, name: header::HeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

/// The middleware.
pub async fn layer(State(idp): State<Arc<Idp>>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let Some((kind, methods)) = kind(req.uri().path()) else {
        return next.run(req).await;
    };
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::OK.into_response();
        let h = resp.headers_mut();
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        set(h, header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        set(h, header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        set(h, header::ACCESS_CONTROL_MAX_AGE, "3600");
        set(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let realm_name = req
        .uri()
        .path()
        .split("/realms/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let (allowed, req) = match kind {
        Kind::Public => (true, req),
        Kind::Bearer => {
            let azp = bearer_azp(req.headers());
            (
                client_allows(&idp, &realm_name, azp.as_deref(), &origin).await,
                req,
            )
        }
        Kind::FormClient => {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            };
            let client_id = form_client_id(&parts.headers, &bytes);
            let ok = client_allows(&idp, &realm_name, client_id.as_deref(), &origin).await;
            (ok, Request::from_parts(parts, Body::from(bytes)))
        }
    };
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        set(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    resp
}

async fn client_allows(idp: &Idp, realm: &str, client_id: Option<&str>, origin: &str) -> bool {
    let Some(client_id) = client_id else {
        return false;
    };
    let Ok(realm) = idp.realm(realm).await else {
        return false;
    };
    match idp.client(&realm, client_id).await {
        Ok(Some(c)) => match allowed_origins(&c) {
            None => true,
            Some(list) => list.iter().any(|o| o == origin),
        },
        _ => false,
    }
}

/// The client named by a form body or Basic credentials.
fn form_client_id(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    if let Some(id) = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
    {
        return Some(id);
    }
    let (id, _) =
        crate::oidc::client_auth::decode_basic(crate::oidc::client_auth::basic_param(headers)?)?;
    Some(id)
}

/// The `azp` of a bearer (or DPoP) token, read without verifying it: it
/// only picks which client's origins may read the answer, and the answer
/// itself needs the token to be valid.
fn bearer_azp(headers: &HeaderMap) -> Option<String> {
    let token = crate::oidc::userinfo::bearer(headers)
        .or_else(|| crate::oidc::userinfo::scheme_token(headers, "dpop"))?;
    let v = crate::oidc::client_assertion::unverified_claims(token)?;
    v.get("azp")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_origins_resolve_as_keycloak_does() {
        let mut c = Client::new("r", "spa");
        c.redirect_uris = vec![
            "https://app.example:8443/cb".into(),
            "http://localhost:3000/*".into(),
            "com.example.app:/oauth".into(),
        ];
        c.web_origins = vec!["+".into(), "https://other.example/".into()];
        assert_eq!(
            allowed_origins(&c),
            Some(vec![
                "https://app.example:8443".to_owned(),
                "http://localhost:3000".to_owned(),
                "https://other.example".to_owned(),
            ])
        );
        c.web_origins = vec!["*".into()];
        assert_eq!(allowed_origins(&c), None);
        c.web_origins = vec![];
        assert_eq!(allowed_origins(&c), Some(vec![]));
    }
}
