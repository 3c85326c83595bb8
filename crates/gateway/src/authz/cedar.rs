//! Cedar policies per route (`cedar = '''permit(...);'''` or `cedar_file`),
//! for what the simple rules cannot say. The request is:
//!
//! - principal `User::"<sub>"`, parents `Group::"<name>"` for each group and
//!   `Role::"<name>"` for each role; attributes `username`, `client_id`,
//!   `issuer`, `scopes`, `groups`, `roles` (sets of strings) and `claims`
//!   (the token's top-level strings, numbers, booleans and string lists);
//! - action `Action::"<METHOD>"`;
//! - resource `Route::"<route name>"`;
//! - context `ip` (an `ipaddr`), `time` (Unix seconds), `path`, `method`.
//!
//! Anything not permitted is denied, and a `forbid` wins over a `permit`.
//!
//! The entities depend only on the verified token and the route, so they
//! are built once per token and cached (like the token itself, at most
//! 60 s); per request only the context is built.

use crate::identity::Identity;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// A parsed policy set.
pub struct CedarPolicy {
    set: PolicySet,
    /// Built once and reused.
    authorizer: Authorizer,
    /// Entities per digest of the identity and route.
    entities: moka::sync::Cache<String, std::sync::Arc<Entities>>,
}

impl std::fmt::Debug for CedarPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CedarPolicy")
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(kind).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn strings(v: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(
        v.iter()
            .map(|s| RestrictedExpression::new_string(s.clone())),
    )
}

fn claim_value(v: &Value) -> Option<RestrictedExpression> {
    match v {
        Value::String(s) => Some(RestrictedExpression::new_string(s.clone())),
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => n.as_i64().map(RestrictedExpression::new_long),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            Some(RestrictedExpression::new_set(a.iter().filter_map(|x| {
                x.as_str()
                    .map(|s| RestrictedExpression::new_string(s.to_owned()))
            })))
        }
        _ => None,
    }
}

impl CedarPolicy {
    /// Parses policy text; the error carries Cedar's own message.
    pub fn parse(src: &str) -> Result<CedarPolicy, String> {
        let set = PolicySet::from_str(src).map_err(|e| format!("cedar: {e}"))?;
        if set.policies().next().is_none() {
            return Err("cedar: no policy (nothing would be permitted)".into());
        }
        Ok(CedarPolicy {
            set,
            authorizer: Authorizer::new(),
            entities: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        })
    }

    fn build_entities(route: &str, id: &Identity) -> Result<Entities, String> {
        let principal = uid("User", &id.subject)?;
        let mut parents = HashSet::new();
        let mut others = vec![];
        for (kind, names) in [("Group", &id.groups), ("Role", &id.roles)] {
            for n in names {
                let u = uid(kind, n)?;
                parents.insert(u.clone());
                others.push(Entity::new_no_attrs(u, HashSet::new()));
            }
        }
        let claims: Vec<(String, RestrictedExpression)> = id
            .claims
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| claim_value(v).map(|e| (k.clone(), e)))
                    .collect()
            })
            .unwrap_or_default();
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
        attrs.insert(
            "username".into(),
            RestrictedExpression::new_string(id.username.clone().unwrap_or_default()),
        );
        attrs.insert(
            "client_id".into(),
            RestrictedExpression::new_string(id.client_id.clone().unwrap_or_default()),
        );
        attrs.insert(
            "issuer".into(),
            RestrictedExpression::new_string(id.issuer.clone()),
        );
        attrs.insert("scopes".into(), strings(&id.scopes));
        attrs.insert("groups".into(), strings(&id.groups));
        attrs.insert("roles".into(), strings(&id.roles));
        attrs.insert(
            "claims".into(),
            RestrictedExpression::new_record(claims).map_err(|e| e.to_string())?,
        );
        others.push(Entity::new(principal, attrs, parents).map_err(|e| e.to_string())?);
        others.push(Entity::new_no_attrs(uid("Route", route)?, HashSet::new()));
        Entities::from_entities(others, None).map_err(|e| e.to_string())
    }

    /// Whether `id` may do `method` on `path` of `route` from `ip` at `now`.
    pub fn allows(
        &self,
        route: &str,
        method: &str,
        path: &str,
        id: &Identity,
        ip: std::net::IpAddr,
        now: i64,
    ) -> Result<bool, String> {
        // Keyed by a digest of everything the entities are built from, so
        // two identities share entities only if they would build the same.
        let material = serde_json::json!([
            route,
            id.issuer,
            id.subject,
            id.username,
            id.client_id,
            id.groups,
            id.roles,
            id.scopes,
            id.claims
        ])
        .to_string();
        let key = gatehouse_core::id::sha256_hex(material.as_bytes());
        let entities = match self.entities.get(&key) {
            Some(e) => e,
            None => {
                let e = std::sync::Arc::new(Self::build_entities(route, id)?);
                self.entities.insert(key, e.clone());
                e
            }
        };
        let context = Context::from_pairs([
            (
                "ip".to_owned(),
                RestrictedExpression::new_ip(ip.to_string()),
            ),
            ("time".to_owned(), RestrictedExpression::new_long(now)),
            (
                "path".to_owned(),
                RestrictedExpression::new_string(path.to_owned()),
            ),
            (
                "method".to_owned(),
                RestrictedExpression::new_string(method.to_owned()),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(
            uid("User", &id.subject)?,
            uid("Action", method)?,
            uid("Route", route)?,
            context,
            None,
        )
        .map_err(|e| e.to_string())?;
        let answer = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        Ok(answer.decision() == Decision::Allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(groups: &[&str], dept: &str) -> Identity {
        Identity {
            subject: "u1".into(),
            username: Some("alice".into()),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            scopes: vec!["orders:write".into()],
            claims: json!({"department": dept, "level": 7, "nested": {"x": 1}}),
            ..Default::default()
        }
    }

    #[test]
    fn groups_as_parents_claims_context_and_forbid() {
        let p = CedarPolicy::parse(
            r#"
            permit(principal in Group::"sales", action == Action::"GET", resource == Route::"orders");
            permit(principal, action == Action::"POST", resource == Route::"orders")
              when { principal.scopes.contains("orders:write") && principal.claims.level >= 5 };
            forbid(principal, action, resource) when { context.ip.isInRange(ip("10.0.0.0/8")) };
            forbid(principal, action, resource) when { principal.claims.department == "temp" };
            "#,
        )
        .expect("parse");
        let local: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let internal: std::net::IpAddr = "10.1.2.3".parse().expect("ip");
        assert!(
            p.allows("orders", "GET", "/orders/1", &id(&["sales"], "x"), local, 0)
                .expect("ok")
        );
        assert!(
            !p.allows("orders", "GET", "/orders/1", &id(&["ops"], "x"), local, 0)
                .expect("ok")
        );
        assert!(
            p.allows("orders", "POST", "/orders", &id(&[], "x"), local, 0)
                .expect("ok")
        );
        assert!(
            !p.allows(
                "orders",
                "DELETE",
                "/orders",
                &id(&["sales"], "x"),
                local,
                0
            )
            .expect("ok")
        );
        assert!(
            !p.allows(
                "orders",
                "GET",
                "/orders/1",
                &id(&["sales"], "x"),
                internal,
                0
            )
            .expect("ok"),
            "forbid wins"
        );
        assert!(
            !p.allows(
                "orders",
                "GET",
                "/orders/1",
                &id(&["sales"], "temp"),
                local,
                0
            )
            .expect("ok")
        );
        assert!(CedarPolicy::parse("permit(principal, action").is_err());
        assert!(CedarPolicy::parse("").is_err());
    }
}
