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
//! Decisions are cached (at most 60 s) per caller, route, action and the
//! context values the policies actually read: a policy set that never
//! mentions `context.path` shares one decision across `/orders/1`,
//! `/orders/2`...; one that reads `context.time` is keyed to the second.
//! The caller is its credential's digest ([`Identity::credential`]), so a
//! cache hit costs one SHA-256 of a few dozen bytes, not an evaluation.

use crate::identity::Identity;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells policy sets apart for [`Memo`]: each parse takes the next.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A connection's last decision: the policy set's generation, the whole
/// decision key (the caller's part included) and the answer. A client
/// repeats the same request over and over on its connection; answering it
/// from here skips the shared cache's hashing and bookkeeping, about a
/// third of a Cedar route's authorization cost. Kept per connection, not
/// per caller, so that workers serving one caller's many connections never
/// contend for it.
#[derive(Default)]
pub struct Memo(std::sync::Mutex<Option<(u64, Vec<u8>, bool)>>);

impl Memo {
    fn recall(&self, generation: u64, key: &[u8]) -> Option<bool> {
        // An HTTP/2 connection's concurrent streams do not wait for it.
        let slot = self.0.try_lock().ok()?;
        let (g, k, allowed) = slot.as_ref()?;
        (*g == generation && k[..] == *key).then_some(*allowed)
    }

    /// Longest key kept: a policy set that reads `context.path` puts the
    /// path in the key, and a connection should not hold a 64 KB one.
    const MAX_KEY: usize = 1024;

    fn remember(&self, generation: u64, key: &[u8], allowed: bool) {
        if key.len() > Self::MAX_KEY {
            return;
        }
        if let Ok(mut slot) = self.0.try_lock() {
            // The key's allocation is reused while its length fits.
            let (g, k, a) = slot.get_or_insert_with(Default::default);
            k.clear();
            k.extend_from_slice(key);
            (*g, *a) = (generation, allowed);
        }
    }
}

/// A parsed policy set.
pub struct CedarPolicy {
    /// This set's number among those parsed since start (see [`Memo`]).
    generation: u64,
    set: PolicySet,
    /// Built once and reused.
    authorizer: Authorizer,
    /// Which context attributes the policies read: only those go into the
    /// decision cache key.
    uses: ContextUse,
    /// Entities per caller and route (a miss in `decisions` builds them).
    entities: moka::sync::Cache<Box<[u8]>, Arc<Entities>>,
    /// Decisions per caller, route, action and the context values the
    /// policies read. A policy set is immutable (reload builds a new one)
    /// and evaluation is deterministic, so an equal key is an equal answer.
    decisions: moka::sync::Cache<Box<[u8]>, bool>,
}

/// The context attributes a policy set refers to.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ContextUse {
    ip: bool,
    time: bool,
    path: bool,
    /// `context` used as a whole (or an attribute we do not know): every
    /// value goes into the key.
    all: bool,
}

impl ContextUse {
    /// Walks policies in Cedar's JSON form: `context.x` and `context has x`
    /// name an attribute; any other use of `context` counts as all of it.
    fn scan(v: &Value, u: &mut ContextUse) {
        match v {
            Value::Object(o) => {
                if o.get("Var").and_then(Value::as_str) == Some("context") {
                    u.all = true;
                    return;
                }
                for op in [".", "has"] {
                    if let Some(access) = o.get(op)
                        && access
                            .get("left")
                            .and_then(|l| l.get("Var"))
                            .and_then(Value::as_str)
                            == Some("context")
                    {
                        match access.get("attr").and_then(Value::as_str) {
                            Some("ip") => u.ip = true,
                            Some("time") => u.time = true,
                            Some("path") => u.path = true,
                            // The method is the action, already in the key.
                            Some("method") => {}
                            _ => u.all = true,
                        }
                        return;
                    }
                }
                o.values().for_each(|x| Self::scan(x, u));
            }
            Value::Array(a) => a.iter().for_each(|x| Self::scan(x, u)),
            _ => {}
        }
    }

    fn of(set: &PolicySet) -> Result<ContextUse, String> {
        let mut u = ContextUse::default();
        for p in set.policies() {
            Self::scan(&p.to_json().map_err(|e| format!("cedar: {e}"))?, &mut u);
        }
        for t in set.templates() {
            Self::scan(&t.to_json().map_err(|e| format!("cedar: {e}"))?, &mut u);
        }
        if u.all {
            u = ContextUse {
                ip: true,
                time: true,
                path: true,
                all: true,
            };
        }
        Ok(u)
    }
}

impl std::fmt::Debug for CedarPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CedarPolicy")
    }
}

/// Appends a length-prefixed field to a cache-key preimage, so that no two
/// different field lists give the same bytes.
fn field(buf: &mut Vec<u8>, v: &[u8]) {
    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
    buf.extend_from_slice(v);
}

/// Longest key the caches keep as it is.
const RAW_KEY_MAX: usize = 128;

/// Marks a hashed key. Raw keys start with the credential's length (32,
/// little-endian), so the two never meet.
const HASHED: u8 = 0xFF;

/// A cache key for `bytes` (fields in [`field`]'s unambiguous encoding):
/// the bytes themselves when short, compared whole on a hit, which costs a
/// fraction of the SHA-256 it replaced (two blocks, about a tenth of a
/// Cedar request's instructions); else a marker and their SHA-256, so a
/// long path cannot make an entry large.
fn cache_key<'a>(bytes: &'a [u8], buf: &'a mut [u8; 33]) -> &'a [u8] {
    if bytes.len() <= RAW_KEY_MAX {
        return bytes;
    }
    buf[0] = HASHED;
    buf[1..].copy_from_slice(&gatehouse_core::id::sha256(bytes));
    &buf[..]
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
        let uses = ContextUse::of(&set)?;
        Ok(CedarPolicy {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            set,
            authorizer: Authorizer::new(),
            uses,
            entities: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            decisions: moka::sync::Cache::builder()
                .max_capacity(200_000)
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
        self.allows_with_memo(route, method, path, id, (ip, now), None)
    }

    /// [`CedarPolicy::allows`], asking the connection's `memo` first and
    /// leaving this decision in it.
    pub fn allows_with_memo(
        &self,
        route: &str,
        method: &str,
        path: &str,
        id: &Identity,
        (ip, now): (std::net::IpAddr, i64),
        memo: Option<&Memo>,
    ) -> Result<bool, String> {
        // The caller: its credential and authorizer stand for every claim.
        let mut pre = Vec::with_capacity(128);
        field(&mut pre, &id.credential);
        field(&mut pre, id.authorizer.as_bytes());
        field(&mut pre, route.as_bytes());
        // The entity key is this prefix; made only when the decision is
        // not cached.
        let entity_len = pre.len();
        field(&mut pre, method.as_bytes());
        let mut ip_buf = [0u8; 16];
        let ip_bytes: &[u8] = match (self.uses.ip, ip) {
            (false, _) => &[],
            (true, std::net::IpAddr::V4(v4)) => {
                ip_buf[..4].copy_from_slice(&v4.octets());
                &ip_buf[..4]
            }
            (true, std::net::IpAddr::V6(v6)) => {
                ip_buf = v6.octets();
                &ip_buf
            }
        };
        field(&mut pre, ip_bytes);
        field(&mut pre, if self.uses.path { path.as_bytes() } else { &[] });
        let t = if self.uses.time { now } else { 0 };
        field(&mut pre, &t.to_le_bytes());
        if let Some(d) = memo.and_then(|m| m.recall(self.generation, &pre)) {
            return Ok(d);
        }
        let mut hashed = [0u8; 33];
        let decision_key = cache_key(&pre, &mut hashed);
        if let Some(d) = self.decisions.get(decision_key) {
            if let Some(m) = memo {
                m.remember(self.generation, &pre, d);
            }
            return Ok(d);
        }
        let decision_key: Box<[u8]> = decision_key.into();
        let entity_key = cache_key(&pre[..entity_len], &mut hashed);
        let entities = match self.entities.get(entity_key) {
            Some(e) => e,
            None => {
                let e = Arc::new(Self::build_entities(route, id)?);
                self.entities.insert(entity_key.into(), e.clone());
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
        let allowed = self
            .authorizer
            .is_authorized(&request, &self.set, &entities)
            .decision()
            == Decision::Allow;
        self.decisions.insert(decision_key, allowed);
        if let Some(m) = memo {
            m.remember(self.generation, &pre, allowed);
        }
        Ok(allowed)
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
            credential: gatehouse_core::id::sha256(format!("{groups:?}{dept}").as_bytes()),
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

    #[test]
    fn short_keys_are_kept_whole_and_long_ones_hashed_apart_from_them() {
        let (mut a, mut b) = ([0u8; 33], [0u8; 33]);
        let mut short = vec![];
        field(&mut short, &[7u8; 32]);
        field(&mut short, b"/orders");
        assert_eq!(cache_key(&short, &mut a), &short[..]);
        let mut long = short.clone();
        field(&mut long, "/x".repeat(100).as_bytes());
        let mut other = short.clone();
        field(&mut other, "/y".repeat(100).as_bytes());
        let (k1, k2) = (cache_key(&long, &mut a), cache_key(&other, &mut b));
        assert_eq!((k1.len(), k1[0]), (33, HASHED));
        assert_ne!(k1, k2);
        assert_ne!(short[0], HASHED, "a raw key never looks hashed");
    }

    #[test]
    fn a_connections_memo_answers_only_the_same_request_to_the_same_policies() {
        let local: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let (sales, ops) = (id(&["sales"], "x"), id(&["ops"], "x"));
        let gets = CedarPolicy::parse(
            r#"permit(principal in Group::"sales", action == Action::"GET", resource);"#,
        )
        .expect("parse");
        let posts = CedarPolicy::parse(r#"permit(principal, action == Action::"POST", resource);"#)
            .expect("parse");
        let memo = Memo::default();
        let ask = |p: &CedarPolicy, who: &Identity, route: &str, method: &str| {
            p.allows_with_memo(route, method, "/a", who, (local, 1), Some(&memo))
                .expect("ok")
        };
        for _ in 0..3 {
            for _ in 0..2 {
                assert!(ask(&gets, &sales, "r", "GET"));
            }
            let kept = memo.0.lock().expect("memo").clone();
            assert!(matches!(kept, Some((g, _, true)) if g == gets.generation));
            // Another caller, the same request under another policy set,
            // another request under the same one.
            assert!(!ask(&gets, &ops, "r", "GET"));
            assert!(!ask(&posts, &sales, "r", "GET"));
            assert!(!ask(&gets, &sales, "r", "POST"));
            assert!(ask(&posts, &sales, "r", "POST"));
            assert!(!ask(&gets, &sales, "other", "POST"));
        }
        // A key past the limit is answered, not kept.
        let by_path = CedarPolicy::parse(
            r#"permit(principal, action, resource) when { context.path like "/a*" };"#,
        )
        .expect("parse");
        let long = format!("/a{}", "x".repeat(2 * Memo::MAX_KEY));
        for _ in 0..2 {
            let allowed =
                by_path.allows_with_memo("r", "GET", &long, &sales, (local, 1), Some(&memo));
            assert!(allowed.expect("ok"));
        }
        let kept = memo.0.lock().expect("memo").clone();
        assert!(
            matches!(kept, Some((g, k, _)) if g != by_path.generation && k.len() <= Memo::MAX_KEY)
        );
    }

    #[test]
    fn cached_decisions_follow_the_context_the_policies_read() {
        let local: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let who = id(&["sales"], "x");
        let p = CedarPolicy::parse(
            r#"permit(principal, action, resource) when { context.path like "/orders/*" };
               forbid(principal, action, resource) when { context.time > 100 };"#,
        )
        .expect("parse");
        assert_eq!(
            p.uses,
            ContextUse {
                path: true,
                time: true,
                ..Default::default()
            }
        );
        for _ in 0..2 {
            assert!(
                p.allows("r", "GET", "/orders/1", &who, local, 50)
                    .expect("ok")
            );
            assert!(!p.allows("r", "GET", "/admin", &who, local, 50).expect("ok"));
            assert!(
                !p.allows("r", "GET", "/orders/1", &who, local, 150)
                    .expect("ok")
            );
        }
        let plain = CedarPolicy::parse(
            r#"permit(principal in Group::"sales", action, resource) when { principal.claims.level > 1 };"#,
        )
        .expect("parse");
        assert_eq!(plain.uses, ContextUse::default());
        assert!(plain.allows("r", "GET", "/a", &who, local, 1).expect("ok"));
        assert!(
            !plain
                .allows("r", "GET", "/a", &id(&["ops"], "x"), local, 1)
                .expect("ok")
        );
        let whole = CedarPolicy::parse(
            r#"permit(principal, action, resource) when { context has ip && context.other == 1 };"#,
        )
        .expect("parse");
        assert!(whole.uses.all && whole.uses.ip && whole.uses.path && whole.uses.time);
    }
}
