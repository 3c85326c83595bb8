//! The route rules: `audience`, `scopes_any`, `scopes_all`, `groups_any`,
//! `roles_any`, and claim conditions.

use crate::config::RouteConfig;
use crate::identity::{Identity, claim_strings};

/// Why the caller is refused; names the rule for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    /// Missing scopes: the 403 says `insufficient_scope` with these.
    Scope {
        rule: &'static str,
        needed: Vec<String>,
    },
    /// The token was minted for another resource (route `audience`, RFC
    /// 8707): answered 401 `invalid_token`, as a token that is not one for
    /// this API at all (RFC 6750 §3.1; the MCP authorization spec).
    Audience,
    /// Any other rule.
    Rule(&'static str),
    /// A claim condition on this claim.
    Claim(String),
}

impl Deny {
    /// The rule name for the audit line.
    pub fn rule(&self) -> String {
        match self {
            Deny::Scope { rule, .. } | Deny::Rule(rule) => (*rule).to_owned(),
            Deny::Audience => "audience".to_owned(),
            Deny::Claim(c) => format!("claims.{c}"),
        }
    }
}

/// Checks `id` against `route`; on success names the deciding rule.
pub fn check(route: &RouteConfig, id: &Identity) -> Result<&'static str, Deny> {
    if let Some(aud) = &route.audience
        && !id.audiences.iter().any(|a| a == aud)
    {
        return Err(Deny::Audience);
    }
    if !route.scopes_any.is_empty() && !route.scopes_any.iter().any(|s| id.scopes.contains(s)) {
        return Err(Deny::Scope {
            rule: "scopes_any",
            needed: route.scopes_any.clone(),
        });
    }
    if !route.scopes_all.is_empty() && !route.scopes_all.iter().all(|s| id.scopes.contains(s)) {
        return Err(Deny::Scope {
            rule: "scopes_all",
            needed: route.scopes_all.clone(),
        });
    }
    if !route.groups_any.is_empty() && !route.groups_any.iter().any(|g| id.groups.contains(g)) {
        return Err(Deny::Rule("groups_any"));
    }
    if !route.roles_any.is_empty() && !route.roles_any.iter().any(|r| id.roles.contains(r)) {
        return Err(Deny::Rule("roles_any"));
    }
    for (claim, allowed) in &route.claims {
        let have = claim_strings(&id.claims, claim, false);
        if !have.iter().any(|v| allowed.contains(v)) {
            return Err(Deny::Claim(claim.clone()));
        }
    }
    let ruled = route.audience.is_some()
        || !route.scopes_any.is_empty()
        || !route.scopes_all.is_empty()
        || !route.groups_any.is_empty()
        || !route.roles_any.is_empty()
        || !route.claims.is_empty();
    Ok(if ruled { "rules" } else { "authenticated" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(extra: &str) -> RouteConfig {
        let text = format!(
            "[[routes]]\nname = \"r\"\npath = \"/\"\nupstream = \"http://x\"\nauthorizers = [\"a\"]\n{extra}"
        );
        crate::config::GatewayFile::parse(&text)
            .expect("parse")
            .routes
            .remove(0)
    }

    fn id() -> Identity {
        Identity {
            scopes: vec!["orders:read".into()],
            groups: vec!["sales".into()],
            roles: vec!["viewer".into()],
            audiences: vec!["orders-api".into()],
            claims: json!({"department": "sales", "org": {"tier": "gold"},
                           "organization": {"acme": {"id": "1"}}}),
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_kind() {
        assert_eq!(check(&route(""), &id()), Ok("authenticated"));
        assert_eq!(
            check(&route("scopes_any = [\"orders:read\", \"x\"]"), &id()),
            Ok("rules")
        );
        assert!(matches!(
            check(&route("scopes_all = [\"orders:read\", \"x\"]"), &id()),
            Err(Deny::Scope { .. })
        ));
        assert_eq!(
            check(&route("groups_any = [\"ops\"]"), &id()),
            Err(Deny::Rule("groups_any"))
        );
        assert_eq!(
            check(&route("roles_any = [\"viewer\"]"), &id()),
            Ok("rules")
        );
        // Keycloak's organization claim in its map form: the keys count.
        assert_eq!(
            check(&route("claims = { organization = [\"acme\"] }"), &id()),
            Ok("rules")
        );
        assert!(check(&route("claims = { organization = [\"other\"] }"), &id()).is_err());
        assert_eq!(
            check(&route("audience = \"billing\""), &id()),
            Err(Deny::Audience)
        );
        assert_eq!(
            check(
                &route("claims = { department = [\"sales\", \"support\"] }"),
                &id()
            ),
            Ok("rules")
        );
        assert_eq!(
            check(&route("claims = { \"org.tier\" = [\"silver\"] }"), &id()),
            Err(Deny::Claim("org.tier".into()))
        );
    }
}
