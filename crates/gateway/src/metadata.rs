//! OAuth 2.0 Protected Resource Metadata (RFC 9728) at
//! `/.well-known/oauth-protected-resource` and, per route,
//! `/.well-known/oauth-protected-resource/<route path>`: tells OAuth clients
//! and agents which authorization server issues tokens for this resource.

use crate::config::{Route, Snapshot};
use serde_json::{Value, json};

/// The well-known path prefix.
pub const PATH: &str = "/.well-known/oauth-protected-resource";

/// The resource identifier of a route.
pub fn resource(public_url: &str, route: &Route) -> String {
    route
        .cfg
        .audience
        .clone()
        .unwrap_or_else(|| format!("{}{}", public_url, route.cfg.path))
}

/// The metadata URL a 401 points at for `route`.
pub fn url_for(public_url: &str, route: &Route) -> String {
    format!("{public_url}{PATH}{}", route.cfg.path)
}

fn servers(routes: &[&Route]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in routes {
        for a in &r.authorizers {
            if let Some(i) = a.issuer()
                && !out.iter().any(|x| x == i)
            {
                out.push(i.to_owned());
            }
        }
    }
    out
}

/// The document for `path` (below [`PATH`]), or None for an unknown route.
pub fn document(snap: &Snapshot, public_url: &str, rest: &str) -> Option<Value> {
    if rest.is_empty() || rest == "/" {
        let protected: Vec<&Route> = snap
            .routes
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| !r.cfg.public)
            .collect();
        return Some(json!({
            "resource": public_url,
            "authorization_servers": servers(&protected),
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": gatehouse_jose::dpop::ALGORITHMS,
        }));
    }
    let route = snap
        .routes
        .iter()
        .find(|r| r.cfg.path.trim_end_matches('/') == rest.trim_end_matches('/'))?;
    if route.cfg.public {
        return None;
    }
    let mut scopes: Vec<String> = route.cfg.scopes_any.clone();
    for s in &route.cfg.scopes_all {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    // RFC 9728 §2: the proofs the gateway checks (`authn/dpop.rs`), and
    // whether only DPoP-bound tokens get through.
    let mut doc = json!({
        "resource": resource(public_url, route),
        "authorization_servers": servers(&[route.as_ref()]),
        "bearer_methods_supported": ["header"],
        "resource_name": route.cfg.name,
        "dpop_signing_alg_values_supported": gatehouse_jose::dpop::ALGORITHMS,
        "dpop_bound_access_tokens_required": route.requires_dpop(),
    });
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    Some(doc)
}
