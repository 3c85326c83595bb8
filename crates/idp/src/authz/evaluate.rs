//! Which permissions a subject holds on a resource server: each policy
//! decides for the subject (logic applied), each permission combines its
//! policies with its own decision strategy, and the permissions that
//! cover a resource scope combine with the server's strategy. What no
//! permission covers follows the enforcement mode (denied when
//! enforcing). The evaluation is pure: the caller resolves the subject.

use super::{Enforcement, Logic, Policy, Resource, ResourceServer, Strategy};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Who asks, as the policies see them.
#[derive(Default)]
pub struct Subject {
    pub user_id: String,
    /// Effective role ids (direct, through groups, composites).
    pub role_ids: BTreeSet<String>,
    /// Ids of the user's groups and of all their ancestors, as
    /// (group, is direct membership).
    pub groups: Vec<(String, bool)>,
    /// The requesting client's internal id.
    pub client_id: Option<String>,
    /// Ids of the client scopes the token was granted.
    pub client_scope_ids: BTreeSet<String>,
    /// The token's claims (regex policies).
    pub claims: Value,
    /// Claims the client pushed with the request (`claim_token`), which
    /// regex policies read with `targetContextAttributes`.
    pub context: Value,
    /// Unix seconds.
    pub now: i64,
}

/// One granted permission, as Keycloak's `authorization.permissions`
/// entries and `response_mode=permissions` give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub rsid: String,
    pub rsname: String,
    pub scopes: Vec<String>,
}

impl Granted {
    /// Keycloak's Permission JSON.
    pub fn to_json(&self, with_name: bool) -> Value {
        let mut v = json!({"rsid": self.rsid});
        if with_name {
            v["rsname"] = json!(self.rsname);
        }
        if !self.scopes.is_empty() {
            v["scopes"] = json!(self.scopes);
        }
        v
    }
}

/// A permission as asked, before it is checked against a server: a
/// resource id or name (empty: any resource offering the scopes) and
/// scope ids or names (empty: all the resource's). The UMA grant's
/// `permission` parameters, a ticket's and a previous RPT's permissions
/// all come in this form.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub resource: String,
    pub scopes: Vec<String>,
}

impl Asked {
    /// `resource#scope1,scope2` (`#scope` or `resource` alone too).
    pub fn parse(p: &str) -> Asked {
        let (res, scopes) = p.split_once('#').unwrap_or((p, ""));
        Asked {
            resource: res.to_owned(),
            scopes: scopes
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The entries of a `permissions` list as [`Granted::to_json`] writes
    /// them (`rsid`, `scopes`): what tickets and RPTs carry.
    pub fn from_permissions(list: &Value) -> Vec<Asked> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|p| Asked {
                resource: p["rsid"].as_str().unwrap_or_default().to_owned(),
                scopes: p["scopes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            })
            .collect()
    }
}

/// A request for a resource (None: every resource offering the scopes)
/// and scope ids (empty: all the resource's).
pub struct Request<'a> {
    pub resource: Option<&'a Resource>,
    pub scopes: Vec<String>,
}

fn combine(strategy: Strategy, decisions: &[bool]) -> bool {
    if decisions.is_empty() {
        return false;
    }
    let grants = decisions.iter().filter(|d| **d).count();
    match strategy {
        Strategy::Unanimous => grants == decisions.len(),
        Strategy::Affirmative => grants > 0,
        Strategy::Consensus => grants * 2 > decisions.len(),
    }
}

fn flip(logic: Logic, d: bool) -> bool {
    match logic {
        Logic::Positive => d,
        Logic::Negative => !d,
    }
}

/// `{id, required}` entries held by `held`: at least one held and every
/// required one (Keycloak's role and client-scope policies).
fn required_entries(p: &Policy, key: &str, held: &BTreeSet<String>) -> bool {
    let mut any = false;
    for e in super::config_values(p, key) {
        let Some(id) = e.get("id").and_then(Value::as_str) else {
            continue;
        };
        let has = held.contains(id);
        let required = e.get("required").and_then(Value::as_bool).unwrap_or(false);
        if required && !has {
            return false;
        }
        any |= has;
    }
    any
}

fn ids(p: &Policy, key: &str) -> Vec<String> {
    super::config_values(p, key)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The value at a dotted claim path.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, k| v.get(k))
}

/// "yyyy-MM-dd HH:mm:ss" (or a date alone) as Unix seconds, UTC; None
/// for a field out of its calendar range (a year past 9999 would overflow
/// the day arithmetic).
fn parse_time(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(' ').unwrap_or((s.trim(), "00:00:00"));
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (
        t.next().flatten().unwrap_or(0),
        t.next().flatten().unwrap_or(0),
        t.next().flatten().unwrap_or(0),
    );
    let clock_ok = (0..=23).contains(&hh) && (0..=59).contains(&mm) && (0..=59).contains(&ss);
    let days = gatehouse_core::time::days_of_written_date(y, m, day).filter(|_| clock_ok)?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Keycloak's time policy, in UTC: every condition set must hold.
fn time_holds(p: &Policy, now: i64) -> bool {
    let cfg = &p.config;
    let num = |k: &str| cfg.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(nbf) = cfg.get("nbf").filter(|v| !v.is_empty()) {
        match parse_time(nbf) {
            Some(t) if now >= t => {}
            _ => return false,
        }
    }
    if let Some(noa) = cfg.get("noa").filter(|v| !v.is_empty()) {
        match parse_time(noa) {
            Some(t) if now < t => {}
            _ => return false,
        }
    }
    let days = now.div_euclid(86_400);
    let (year, month, day) = gatehouse_core::time::civil_from_days(days);
    let secs = now.rem_euclid(86_400);
    let (hour, minute) = (secs / 3600, (secs % 3600) / 60);
    for (start, end, value) in [
        ("dayMonth", "dayMonthEnd", day),
        ("month", "monthEnd", month),
        ("year", "yearEnd", year),
        ("hour", "hourEnd", hour),
        ("minute", "minuteEnd", minute),
    ] {
        if let Some(lo) = num(start) {
            let hi = num(end).unwrap_or(lo);
            if value < lo || value > hi {
                return false;
            }
        }
    }
    true
}

fn regex_holds(p: &Policy, s: &Subject) -> bool {
    let source = if p
        .config
        .get("targetContextAttributes")
        .is_some_and(|v| v == "true")
    {
        &s.context
    } else {
        &s.claims
    };
    let (Some(target), Some(pattern)) = (p.config.get("targetClaim"), p.config.get("pattern"))
    else {
        return false;
    };
    let Ok(re) = regex::Regex::new(&format!("^(?:{pattern})$")) else {
        return false;
    };
    match claim(source, target) {
        Some(Value::String(s)) => re.is_match(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(|s| re.is_match(s)),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => re.is_match(&v.to_string()),
        _ => false,
    }
}

/// A policy's decision for the subject, its logic applied. Aggregates
/// nest at most 16 deep (a cycle denies).
pub fn decide(rs: &ResourceServer, p: &Policy, s: &Subject, depth: u8) -> bool {
    if depth > 16 {
        return false;
    }
    let raw = match p.kind.as_str() {
        "user" => ids(p, "users").contains(&s.user_id),
        "role" => required_entries(p, "roles", &s.role_ids),
        "client-scope" => required_entries(p, "clientScopes", &s.client_scope_ids),
        "client" => s
            .client_id
            .as_ref()
            .is_some_and(|c| ids(p, "clients").contains(c)),
        "group" => super::config_values(p, "groups").iter().any(|e| {
            let Some(id) = e.get("id").and_then(Value::as_str) else {
                return false;
            };
            let children = e
                .get("extendChildren")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            s.groups
                .iter()
                .any(|(g, direct)| g == id && (*direct || children))
        }),
        "time" => time_holds(p, s.now),
        "regex" => regex_holds(p, s),
        "js" => p.config.get("code").map(String::as_str) == Some(super::DEFAULT_POLICY_CODE),
        "aggregate" | "resource" | "scope" => {
            let decisions: Vec<bool> = p
                .policies
                .iter()
                .filter_map(|id| rs.policy(id))
                .map(|x| decide(rs, x, s, depth + 1))
                .collect();
            combine(p.decision_strategy, &decisions)
        }
        _ => false,
    };
    flip(p.logic, raw)
}

/// What the subject is granted of `requests` (empty: everything the
/// server owns), one entry per resource with its granted scope names.
pub fn permissions(rs: &ResourceServer, s: &Subject, requests: &[Request<'_>]) -> Vec<Granted> {
    let mut wanted: Vec<(&Resource, Vec<String>)> = vec![];
    if requests.is_empty() {
        for r in rs.resources.iter().filter(|r| r.owner.is_none()) {
            wanted.push((r, vec![]));
        }
    }
    for req in requests {
        match req.resource {
            Some(r) => wanted.push((r, req.scopes.clone())),
            None => {
                for r in rs.resources.iter().filter(|r| {
                    r.owner.is_none() && req.scopes.iter().any(|x| r.scopes.contains(x))
                }) {
                    wanted.push((r, req.scopes.clone()));
                }
            }
        }
    }
    let mut out: Vec<Granted> = vec![];
    for (r, asked) in wanted {
        let scopes: Vec<&String> = if asked.is_empty() {
            r.scopes.iter().collect()
        } else {
            asked.iter().filter(|x| r.scopes.contains(x)).collect()
        };
        let granted = granted_scopes(rs, s, r, &scopes);
        let Some(granted) = granted else { continue };
        let names: Vec<String> = granted
            .iter()
            .filter_map(|id| rs.scope(id).map(|x| x.name.clone()))
            .collect();
        match out.iter_mut().find(|g| g.rsid == r.id) {
            Some(g) => {
                for n in names {
                    if !g.scopes.contains(&n) {
                        g.scopes.push(n);
                    }
                }
            }
            None => out.push(Granted {
                rsid: r.id.clone(),
                rsname: r.name.clone(),
                scopes: names,
            }),
        }
    }
    out
}

/// The scopes of `r` granted among `scopes` (None: the resource is not
/// granted at all; an empty list: granted, and it has no scopes asked).
fn granted_scopes(
    rs: &ResourceServer,
    s: &Subject,
    r: &Resource,
    scopes: &[&String],
) -> Option<Vec<String>> {
    if rs.policy_enforcement_mode == Enforcement::Disabled {
        return Some(scopes.iter().map(|x| (*x).clone()).collect());
    }
    let permissive = rs.policy_enforcement_mode == Enforcement::Permissive;
    let perms: Vec<&Policy> = rs.permissions_of_resource(r).collect();
    if perms.is_empty() {
        return permissive.then(|| scopes.iter().map(|x| (*x).clone()).collect());
    }
    let decided: Vec<(&Policy, bool)> = perms.iter().map(|p| (*p, decide(rs, p, s, 0))).collect();
    let on_resource: Vec<bool> = decided
        .iter()
        .filter(|(p, _)| p.kind == "resource")
        .map(|(_, d)| *d)
        .collect();
    if scopes.is_empty() {
        if on_resource.is_empty() {
            // Only scope permissions, and no scope asked: the resource
            // is granted when any of its scopes is.
            let all: Vec<&String> = r.scopes.iter().collect();
            return granted_scopes(rs, s, r, &all)
                .filter(|g| !g.is_empty())
                .map(|_| vec![]);
        }
        return combine(rs.decision_strategy, &on_resource).then(Vec::new);
    }
    let mut granted = vec![];
    for sc in scopes {
        let mut applicable = on_resource.clone();
        applicable.extend(
            decided
                .iter()
                .filter(|(p, _)| p.kind == "scope" && p.scopes.contains(sc))
                .map(|(_, d)| *d),
        );
        let ok = if applicable.is_empty() {
            permissive
        } else {
            combine(rs.decision_strategy, &applicable)
        };
        if ok {
            granted.push((*sc).clone());
        }
    }
    (!granted.is_empty()).then_some(granted)
}

/// Why: each permission that applies to `r` with its decision, and the
/// decisions of the policies it applies (the admin API's evaluation).
pub type Explained<'a> = Vec<(&'a Policy, bool, Vec<(&'a Policy, bool)>)>;

/// See [`Explained`].
pub fn explain<'a>(rs: &'a ResourceServer, s: &Subject, r: &'a Resource) -> Explained<'a> {
    rs.permissions_of_resource(r)
        .map(|p| {
            let applied = p
                .policies
                .iter()
                .filter_map(|id| rs.policy(id))
                .map(|x| (x, decide(rs, x, s, 1)))
                .collect();
            (p, decide(rs, p, s, 0), applied)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Policy, Resource, ResourceServer, Scope};
    use std::collections::BTreeMap;

    fn server() -> ResourceServer {
        let scope = |id: &str| Scope {
            id: id.into(),
            name: id.into(),
            ..Scope::default()
        };
        let user_policy = |id: &str, user: &str, logic: Logic| Policy {
            id: id.into(),
            name: id.into(),
            kind: "user".into(),
            logic,
            config: BTreeMap::from([("users".into(), json!([user]).to_string())]),
            ..Policy::default()
        };
        ResourceServer {
            resources: vec![Resource {
                id: "acct".into(),
                name: "Account".into(),
                kind: Some("urn:x:account".into()),
                scopes: vec!["view".into(), "delete".into()],
                ..Resource::default()
            }],
            scopes: vec![scope("view"), scope("delete")],
            policies: vec![
                user_policy("alice-only", "alice", Logic::Positive),
                user_policy("not-bob", "bob", Logic::Negative),
                Policy {
                    id: "view-perm".into(),
                    name: "view-perm".into(),
                    kind: "scope".into(),
                    scopes: vec!["view".into()],
                    policies: vec!["not-bob".into()],
                    ..Policy::default()
                },
                Policy {
                    id: "delete-perm".into(),
                    name: "delete-perm".into(),
                    kind: "scope".into(),
                    resources: vec!["acct".into()],
                    scopes: vec!["delete".into()],
                    policies: vec!["alice-only".into()],
                    ..Policy::default()
                },
            ],
            ..ResourceServer::default()
        }
    }

    fn who(user: &str) -> Subject {
        Subject {
            user_id: user.into(),
            ..Subject::default()
        }
    }

    #[test]
    fn scope_permissions_grant_per_scope_and_negative_logic_inverts() {
        let rs = server();
        let alice = permissions(&rs, &who("alice"), &[]);
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0].scopes, vec!["view", "delete"]);
        let carol = permissions(&rs, &who("carol"), &[]);
        assert_eq!(carol[0].scopes, vec!["view"]);
        assert!(permissions(&rs, &who("bob"), &[]).is_empty());
        // Asking for one scope gives that scope only.
        let req = [Request {
            resource: rs.resource("acct"),
            scopes: vec!["delete".into()],
        }];
        assert!(permissions(&rs, &who("carol"), &req).is_empty());
        assert_eq!(
            permissions(&rs, &who("alice"), &req)[0].scopes,
            vec!["delete"]
        );
    }

    #[test]
    fn unanimous_needs_every_permission_affirmative_one_and_unprotected_follows_the_mode() {
        let mut rs = server();
        // A resource permission on the type that only alice passes.
        rs.policies.push(Policy {
            id: "type-perm".into(),
            name: "type-perm".into(),
            kind: "resource".into(),
            config: BTreeMap::from([("defaultResourceType".into(), "urn:x:account".into())]),
            policies: vec!["alice-only".into()],
            ..Policy::default()
        });
        assert!(permissions(&rs, &who("carol"), &[]).is_empty());
        rs.decision_strategy = Strategy::Affirmative;
        assert_eq!(permissions(&rs, &who("carol"), &[])[0].scopes, vec!["view"]);
        // A resource no permission covers.
        rs.resources.push(Resource {
            id: "free".into(),
            name: "Free".into(),
            ..Resource::default()
        });
        let names = |g: Vec<Granted>| g.into_iter().map(|x| x.rsname).collect::<Vec<_>>();
        assert!(!names(permissions(&rs, &who("carol"), &[])).contains(&"Free".to_owned()));
        rs.policy_enforcement_mode = Enforcement::Permissive;
        assert!(names(permissions(&rs, &who("carol"), &[])).contains(&"Free".to_owned()));
    }

    #[test]
    fn asked_permissions_read_the_grant_and_token_forms_alike() {
        let a = Asked::parse("Orders#view, delete");
        assert_eq!(
            (a.resource.as_str(), a.scopes.clone()),
            ("Orders", vec!["view".to_owned(), "delete".to_owned()])
        );
        assert_eq!(Asked::parse("#view").resource, "");
        assert!(Asked::parse("Orders").scopes.is_empty());
        let g = Granted {
            rsid: "r1".into(),
            rsname: "R".into(),
            scopes: vec!["view".into()],
        };
        let back = Asked::from_permissions(&json!([g.to_json(true)]));
        assert_eq!(
            back,
            vec![Asked {
                resource: "r1".into(),
                scopes: vec!["view".into()]
            }]
        );
    }

    #[test]
    fn time_policies_read_keycloak_dates_in_utc() {
        let p = Policy {
            kind: "time".into(),
            config: BTreeMap::from([
                ("nbf".into(), "2026-01-01 00:00:00".into()),
                ("hour".into(), "9".into()),
                ("hourEnd".into(), "17".into()),
            ]),
            ..Policy::default()
        };
        let at = |s: &str| parse_time(s).expect("time");
        assert!(time_holds(&p, at("2026-03-02 10:30:00")));
        assert!(!time_holds(&p, at("2026-03-02 18:00:00")));
        assert!(!time_holds(&p, at("2025-12-31 10:00:00")));
        // A date no calendar has is no time: the policy does not hold,
        // and nothing overflows.
        assert_eq!(parse_time("9223372036854775807-01-01"), None);
        assert_eq!(parse_time("2026-13-01 00:00:00"), None);
        let mut odd = p.clone();
        odd.config
            .insert("nbf".into(), "9223372036854775807-01-01".into());
        assert!(!time_holds(&odd, at("2026-03-02 10:30:00")));
    }
}
