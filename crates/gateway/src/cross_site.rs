//! Cross-site requests carrying a token cookie.
//!
//! Why: a browser attaches cookies to whatever request a page makes,
//! whichever site the page is on. A token read from a cookie
//! (`token_cookie`) is therefore no sign that the user meant a `POST` or a
//! `DELETE` that another site's form or script sent (CSRF), unless the
//! cookie is `SameSite`, which the gateway cannot see. So the gateway does
//! not read a token cookie from an unsafe request another origin sent, as
//! Go's `http.CrossOriginProtection` decides it: Fetch Metadata
//! (`Sec-Fetch-Site`) where the browser sends it, else `Origin` against
//! `Host`. Origins the route's CORS configuration names exactly are
//! trusted. Tokens in headers need none of this: no browser adds them
//! unasked.

use crate::cors::CorsConfig;
use http::{HeaderMap, Method, header};

/// Whether a token cookie must not be read from this request: an unsafe
/// method from another origin that the route's CORS list does not name.
pub fn untrusted_unsafe(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    cors: Option<&CorsConfig>,
) -> bool {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return false;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let trusted =
        |o: &str| cors.is_some_and(|c| c.allow_origins.iter().any(|allowed| allowed == o));
    match headers
        .get("sec-fetch-site")
        .map(http::HeaderValue::as_bytes)
    {
        // The browser says the request is its own page's, or the user's
        // (typed in, a bookmark).
        Some(b"same-origin" | b"none") => false,
        Some(_) => !origin.is_some_and(trusted),
        // An older browser, or no browser at all: compare the origin, if
        // it sent one, with the host asked for.
        None => match origin {
            None => false,
            Some(o) => {
                // HTTP/2's `:authority`, else `Host`.
                let host = uri
                    .authority()
                    .map(http::uri::Authority::as_str)
                    .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
                let same = o
                    .split_once("://")
                    .is_some_and(|(_, authority)| Some(authority) == host);
                !same && !trusted(o)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn unsafe_requests_from_other_origins_are_told_apart() {
        let cors = CorsConfig {
            allow_origins: vec!["https://app.example".into()],
            allow_methods: vec![],
            allow_headers: vec![],
            expose_headers: vec![],
            allow_credentials: true,
            max_age: 0,
        };
        let post = Method::POST;
        let uri = http::Uri::from_static("/orders");
        let check = |h: &[(&'static str, &'static str)]| {
            untrusted_unsafe(&post, &uri, &headers(h), Some(&cors))
        };
        let evil = ("origin", "https://evil.example");
        // Refused: another site, with or without Fetch Metadata, and
        // another site of the same registrable domain too.
        assert!(check(&[("sec-fetch-site", "cross-site"), evil]));
        assert!(check(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://x.api.example")
        ]));
        assert!(check(&[("sec-fetch-site", "cross-site")]));
        assert!(check(&[("host", "api.example"), evil]));
        assert!(check(&[("host", "api.example"), ("origin", "null")]));
        // Let through: the same origin, the user's own navigation, a
        // trusted origin, no browser at all, and safe methods.
        assert!(!check(&[("sec-fetch-site", "same-origin"), evil]));
        assert!(!check(&[("sec-fetch-site", "none")]));
        assert!(!check(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example")
        ]));
        assert!(!check(&[
            ("host", "api.example"),
            ("origin", "https://api.example")
        ]));
        assert!(!check(&[]));
        let cross = headers(&[("sec-fetch-site", "cross-site"), evil]);
        assert!(!untrusted_unsafe(&Method::GET, &uri, &cross, Some(&cors)));
        assert!(untrusted_unsafe(&Method::DELETE, &uri, &cross, None));
        // HTTP/2: the authority stands for `Host`.
        let h2 = http::Uri::from_static("https://api.example/orders");
        let same = headers(&[("origin", "https://api.example")]);
        assert!(!untrusted_unsafe(&post, &h2, &same, None));
    }
}
