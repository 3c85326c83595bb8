//! Identity-provider mappers: what a brokered login makes of the
//! provider's claims here (Keycloak's `identityProviderMappers`). The
//! point of them is that group-to-role mappings live in one place and stay
//! current: a claim-to-role mapper in `FORCE` sync grants the role while
//! the provider's claim says so and takes it away when it stops.
//!
//! Supported types, with Keycloak's ids and config keys:
//! `hardcoded-role-idp-mapper` (`role`), `oidc-role-idp-mapper` ("Claim to
//! Role": `claim`, `claim.value`, `role`), `oidc-advanced-role-idp-mapper`
//! (`claims` as a JSON list of `{key, value}`, `are.claim.values.regex`,
//! `role`), `oidc-hardcoded-group-idp-mapper` (`group`, a path),
//! `hardcoded-attribute-idp-mapper` (`attribute`, `attribute.value`),
//! `oidc-user-attribute-idp-mapper` ("Attribute Importer": `claim`,
//! `user.attribute`), `oidc-username-idp-mapper` (`template`, with
//! `${ALIAS}` and `${CLAIM.<name>}`). Roles are named as Keycloak names
//! them: `role`, or `clientId.role` for a client's.

use super::provider::SyncMode;
use crate::state::Idp;
use gatehouse_core::model::{Realm, Role};
use serde_json::Value;

/// The mapper types Gatehouse applies, with the names Keycloak's admin
/// console shows.
pub const TYPES: [(&str, &str); 7] = [
    ("hardcoded-role-idp-mapper", "Hardcoded Role"),
    ("oidc-role-idp-mapper", "Claim to Role"),
    ("oidc-advanced-role-idp-mapper", "Advanced Claim to Role"),
    ("oidc-hardcoded-group-idp-mapper", "Hardcoded Group"),
    (
        "hardcoded-attribute-idp-mapper",
        "Hardcoded User Session Attribute",
    ),
    ("oidc-user-attribute-idp-mapper", "Attribute Importer"),
    ("oidc-username-idp-mapper", "Username Template Importer"),
];

/// One mapper's rule.
#[derive(Debug, Clone)]
enum Rule {
    HardcodedRole(String),
    ClaimToRole {
        /// Every `(claim path, value)` must hold.
        claims: Vec<(String, String)>,
        regex: bool,
        role: String,
    },
    HardcodedGroup(String),
    HardcodedAttribute(String, String),
    AttributeImporter {
        claim: String,
        attribute: String,
    },
    Username(String),
}

/// A mapper as configured.
#[derive(Debug, Clone)]
pub struct Mapper {
    rule: Rule,
    /// None: the provider's (`INHERIT`).
    sync: Option<SyncMode>,
}

fn cfg<'a>(rep: &'a Value, key: &str) -> Option<&'a str> {
    rep["config"][key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn need<'a>(rep: &'a Value, key: &str) -> Result<&'a str, String> {
    cfg(rep, key).ok_or_else(|| format!("config.{key} is required"))
}

impl Mapper {
    /// Reads a mapper representation; errors name what is wrong.
    pub fn parse(rep: &Value) -> Result<Mapper, String> {
        let kind = rep["identityProviderMapper"].as_str().unwrap_or_default();
        let rule = match kind {
            "hardcoded-role-idp-mapper" => Rule::HardcodedRole(need(rep, "role")?.to_owned()),
            "oidc-role-idp-mapper" => Rule::ClaimToRole {
                claims: vec![(
                    need(rep, "claim")?.to_owned(),
                    cfg(rep, "claim.value").unwrap_or_default().to_owned(),
                )],
                regex: false,
                role: need(rep, "role")?.to_owned(),
            },
            "oidc-advanced-role-idp-mapper" => {
                let list: Vec<Value> = serde_json::from_str(cfg(rep, "claims").unwrap_or("[]"))
                    .map_err(|_| "config.claims must be a JSON list of {key, value}")?;
                let claims = list
                    .iter()
                    .map(|c| match (c["key"].as_str(), c["value"].as_str()) {
                        (Some(k), Some(v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                        _ => Err("config.claims entries need a key and a value".to_owned()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let regex = cfg(rep, "are.claim.values.regex") == Some("true");
                if regex {
                    for (_, v) in &claims {
                        regex::Regex::new(v).map_err(|_| {
                            format!("config.claims value {v} is not a regular expression")
                        })?;
                    }
                }
                Rule::ClaimToRole {
                    claims,
                    regex,
                    role: need(rep, "role")?.to_owned(),
                }
            }
            "oidc-hardcoded-group-idp-mapper" => {
                Rule::HardcodedGroup(need(rep, "group")?.to_owned())
            }
            "hardcoded-attribute-idp-mapper" => Rule::HardcodedAttribute(
                need(rep, "attribute")?.to_owned(),
                cfg(rep, "attribute.value").unwrap_or_default().to_owned(),
            ),
            "oidc-user-attribute-idp-mapper" => Rule::AttributeImporter {
                claim: need(rep, "claim")?.to_owned(),
                attribute: need(rep, "user.attribute")?.to_owned(),
            },
            "oidc-username-idp-mapper" => Rule::Username(need(rep, "template")?.to_owned()),
            other => {
                return Err(format!(
                    "identity provider mappers of type '{other}' are not supported"
                ));
            }
        };
        let sync = match cfg(rep, "syncMode").unwrap_or("INHERIT") {
            "INHERIT" => None,
            "FORCE" => Some(SyncMode::Force),
            "IMPORT" | "LEGACY" => Some(SyncMode::Import),
            other => {
                return Err(format!(
                    "config.syncMode {other} is not one of INHERIT, IMPORT, LEGACY, FORCE"
                ));
            }
        };
        Ok(Mapper { rule, sync })
    }

    /// Whether the mapper is `oidc-username-idp-mapper` (applied before
    /// the user exists).
    fn is_username(&self) -> bool {
        matches!(self.rule, Rule::Username(_))
    }
}

/// The mappers of provider `alias` in `realm` that Gatehouse applies (a
/// Keycloak export may bring others; they are kept, not applied).
pub fn of(realm: &Realm, alias: &str) -> Vec<Mapper> {
    realm
        .extra
        .get("identityProviderMappers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m["identityProviderAlias"].as_str() == Some(alias))
        .filter_map(|m| Mapper::parse(m).ok())
        .collect()
}

/// The claim at `path` (dots nest, `\.` is a literal dot), as Keycloak's
/// `AbstractClaimMapper.getClaimValue` reads it.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('.');
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
        .iter()
        .try_fold(claims, |v, p| v.get(p.as_str()))
        .filter(|v| !v.is_null())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether the claim at `path` is `want` (or, for a list, holds it).
fn holds(claims: &Value, path: &str, want: &str, regex: bool) -> bool {
    let pattern = if regex {
        match regex::Regex::new(&format!("^(?:{want})$")) {
            Ok(r) => Some(r),
            Err(_) => return false,
        }
    } else {
        None
    };
    let matches = |v: &Value| {
        scalar(v).is_some_and(|s| match &pattern {
            Some(r) => r.is_match(&s),
            None => s == want,
        })
    };
    match claim(claims, path) {
        Some(Value::Array(items)) => items.iter().any(matches),
        Some(v) => matches(v),
        None => false,
    }
}

/// A role named Keycloak's way: `clientId.role` when a client of that id
/// exists (trying each dot), else the realm role of that name.
pub async fn role_named(
    idp: &Idp,
    realm: &Realm,
    name: &str,
) -> Result<Option<Role>, gatehouse_store::Error> {
    for (i, _) in name.match_indices('.').take(25) {
        if let Some(c) = idp.store.client_by_client_id(&realm.id, &name[..i]).await? {
            return idp
                .store
                .role_by_name(&realm.id, Some(&c.id), &name[i + 1..])
                .await;
        }
    }
    idp.store.role_by_name(&realm.id, None, name).await
}

/// What the mappers make of a brokered person, to apply to the user.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Roles (ids) to grant, and to take away.
    pub grant: Vec<String>,
    pub revoke: Vec<String>,
    /// Group paths to join.
    pub groups: Vec<String>,
    /// Attributes to set (`email`, `firstName`, `lastName` are the user's
    /// fields), or remove (None).
    pub attributes: Vec<(String, Option<Vec<String>>)>,
}

/// The username the `oidc-username-idp-mapper` (if any) makes, for a new
/// user: `${ALIAS}` and `${CLAIM.<path>}` replaced.
pub fn username(mappers: &[Mapper], alias: &str, claims: &Value) -> Option<String> {
    let Rule::Username(template) = &mappers.iter().find(|m| m.is_username())?.rule else {
        return None;
    };
    let mut out = template.replace("${ALIAS}", alias);
    while let Some(i) = out.find("${CLAIM.") {
        let Some(len) = out[i..].find('}') else { break };
        let path = &out[i + 8..i + len];
        let value = claim(claims, path).and_then(scalar).unwrap_or_default();
        out.replace_range(i..i + len + 1, &value);
    }
    Some(out.to_lowercase()).filter(|u| !u.trim().is_empty())
}

/// Evaluates `mappers` for a login: `first` for a user created or linked
/// now (every mapper applies); later logins apply only the mappers whose
/// sync mode (theirs, or the provider's `provider_sync`) is `FORCE`, and
/// those also take back what no longer holds.
pub async fn evaluate(
    idp: &Idp,
    realm: &Realm,
    mappers: &[Mapper],
    claims: &Value,
    first: bool,
    provider_sync: SyncMode,
) -> Result<Outcome, gatehouse_store::Error> {
    let mut out = Outcome::default();
    for m in mappers {
        let force = m.sync.unwrap_or(provider_sync) == SyncMode::Force;
        if !first && !force {
            continue;
        }
        match &m.rule {
            Rule::HardcodedRole(role) => {
                if let Some(r) = role_named(idp, realm, role).await? {
                    out.grant.push(r.id);
                }
            }
            Rule::ClaimToRole {
                claims: want,
                regex,
                role,
            } => {
                let Some(r) = role_named(idp, realm, role).await? else {
                    continue;
                };
                if want.iter().all(|(k, v)| holds(claims, k, v, *regex)) {
                    out.grant.push(r.id);
                } else if !first {
                    out.revoke.push(r.id);
                }
            }
            Rule::HardcodedGroup(path) => out.groups.push(path.clone()),
            Rule::HardcodedAttribute(attr, value) => {
                out.attributes
                    .push((attr.clone(), Some(vec![value.clone()])));
            }
            Rule::AttributeImporter {
                claim: path,
                attribute,
            } => {
                let values: Vec<String> = match claim(claims, path) {
                    Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
                    Some(v) => scalar(v).into_iter().collect(),
                    None => vec![],
                };
                if !values.is_empty() {
                    out.attributes.push((attribute.clone(), Some(values)));
                } else if !first {
                    out.attributes.push((attribute.clone(), None));
                }
            }
            Rule::Username(_) => {}
        }
    }
    // A role both granted and revoked (two mappers): granted wins.
    out.revoke.retain(|r| !out.grant.contains(r));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_found_nested_and_in_lists() {
        let c = json!({"groups": ["eng", "ops"], "realm_access": {"roles": ["admin"]},
                       "a.b": "dotted", "level": 3, "vip": true});
        assert!(holds(&c, "groups", "ops", false));
        assert!(!holds(&c, "groups", "op", false));
        assert!(holds(&c, "realm_access.roles", "admin", false));
        assert!(holds(&c, "a\\.b", "dotted", false));
        assert!(holds(&c, "level", "3", false));
        assert!(holds(&c, "vip", "true", false));
        assert!(holds(&c, "groups", "e.g", true));
        assert!(
            !holds(&c, "groups", "e", true),
            "a regex matches the whole value"
        );
        assert!(!holds(&c, "missing", "x", false));
    }

    #[test]
    fn mappers_read_keycloaks_config_and_refuse_the_rest() {
        let m = |kind: &str, config: Value| {
            Mapper::parse(&json!({"identityProviderMapper": kind, "config": config}))
        };
        assert!(
            m(
                "oidc-role-idp-mapper",
                json!({"claim": "groups", "claim.value": "eng", "role": "dev"})
            )
            .is_ok()
        );
        assert!(
            m("oidc-role-idp-mapper", json!({"claim": "groups"}))
                .expect_err("no role")
                .contains("role")
        );
        assert!(m("oidc-advanced-role-idp-mapper",
                  json!({"claims": "[{\"key\":\"groups\",\"value\":\"(\"}]", "are.claim.values.regex": "true", "role": "r"}))
            .is_err());
        assert!(m("saml-user-attribute-idp-mapper", json!({})).is_err());
        assert!(
            m(
                "hardcoded-role-idp-mapper",
                json!({"role": "r", "syncMode": "SOMETIMES"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_username_template_fills_in_claims() {
        let mappers = vec![
            Mapper::parse(
                &json!({"identityProviderMapper": "oidc-username-idp-mapper",
            "config": {"template": "${ALIAS}.${CLAIM.preferred_username}"}}),
            )
            .expect("mapper"),
        ];
        let name = username(&mappers, "corp", &json!({"preferred_username": "Ann"}));
        assert_eq!(name.as_deref(), Some("corp.ann"));
    }
}
