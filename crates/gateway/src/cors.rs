//! CORS per route. A preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered here, before
//! authentication, because browsers never send credentials on it; actual
//! responses, including 401 and 403, carry the allow headers so the page can
//! read why it was refused.

use http::{HeaderMap, HeaderValue, Method, header};
use serde::Deserialize;

/// `cors = { allow_origins = ["https://app.example"], ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins, or `"*"` (not allowed together with credentials).
    pub allow_origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_max_age")]
    pub max_age: u64,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_headers() -> Vec<String> {
    ["authorization", "content-type"].map(String::from).to_vec()
}
fn default_max_age() -> u64 {
    600
}

impl CorsConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.allow_origins.is_empty() {
            return Err("cors.allow_origins is empty".into());
        }
        if self.allow_credentials && self.allow_origins.iter().any(|o| o == "*") {
            return Err("cors: `*` origin cannot be combined with allow_credentials".into());
        }
        for o in &self.allow_origins {
            if o != "*" && (o.ends_with('/') || !o.contains("://")) {
                return Err(format!("cors origin '{o}' must be scheme://host[:port]"));
            }
        }
        Ok(())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// Whether this request is a preflight.
    pub fn is_preflight(method: &Method, h: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && h.contains_key(header::ORIGIN)
            && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Headers answering a preflight, or None when the origin or method is
    /// not allowed.
    pub fn preflight(&self, h: &HeaderMap) -> Option<HeaderMap> {
        let origin = h.get(header::ORIGIN)?.to_str().ok()?;
        let method = h
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .to_str()
            .ok()?;
        if !self.origin_allowed(origin)
            || !self
                .allow_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        if let Some(req) = h
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
        {
            for name in req.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !self
                    .allow_headers
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(name))
                {
                    return None;
                }
            }
        }
        let mut out = self.common(origin);
        let put = |out: &mut HeaderMap, k: header::HeaderName, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                out.insert(k, v);
            }
        };
        put(
            &mut out,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.join(", "),
        );
        put(
            &mut out,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            self.allow_headers.join(", "),
        );
        put(
            &mut out,
            header::ACCESS_CONTROL_MAX_AGE,
            self.max_age.to_string(),
        );
        Some(out)
    }

    /// Headers for an actual (non-preflight) response.
    pub fn response_headers(&self, h: &HeaderMap) -> HeaderMap {
        let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return HeaderMap::new();
        };
        if !self.origin_allowed(origin) {
            return HeaderMap::new();
        }
        let mut out = self.common(origin);
        if !self.expose_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.expose_headers.join(", "))
        {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        out
    }

    fn common(&self, origin: &str) -> HeaderMap {
        let mut out = HeaderMap::new();
        let wildcard = self.allow_origins.iter().any(|o| o == "*") && !self.allow_credentials;
        let value = if wildcard {
            HeaderValue::from_static("*")
        } else {
            HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("null"))
        };
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if !wildcard {
            out.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out
    }
}
