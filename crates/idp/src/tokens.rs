//! Token minting with Keycloak's claim layout (design.md §Tokens): access
//! token (JWS, realm key), ID token, refresh token (HS512, realm secret), and
//! the protocol mappers that shape claims per client.

use crate::error::OAuthError;
use crate::keyring::KeyRing;
use crate::state::Idp;
use axum::http::StatusCode;
use gatehouse_core::model::{Client, Realm, Session, User};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Default client scopes that Keycloak does not list in the `scope` claim.
const SILENT_SCOPES: &[&str] = &["web-origins", "acr", "roles", "basic"];

/// Resolves the `scope` a client gets: `openid` when asked, the client's
/// default scopes, and the asked-for optional ones. An unknown scope is an
/// `invalid_scope` error, as in Keycloak.
pub fn granted_scope(client: &Client, requested: Option<&str>) -> Result<String, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    let asked: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if asked.contains(&"openid") {
        out.push("openid".into());
    }
    for d in &client.default_client_scopes {
        if !SILENT_SCOPES.contains(&d.as_str()) && !out.contains(d) {
            out.push(d.clone());
        }
    }
    let mut invalid = vec![];
    for a in asked {
        if a == "openid" || out.iter().any(|o| o == a) {
            continue;
        }
        if client.optional_client_scopes.iter().any(|o| o == a)
            || client.default_client_scopes.iter().any(|o| o == a)
        {
            out.push(a.to_owned());
        } else {
            invalid.push(a);
        }
    }
    if !invalid.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("Invalid scopes: {}", invalid.join(" ")),
        ));
    }
    Ok(out.join(" "))
}

/// Everything the tokens say about the user, resolved once per issuance.
pub struct Identity {
    pub realm_roles: Vec<String>,
    /// Public client_id -> role names.
    pub client_roles: BTreeMap<String, Vec<String>>,
    pub group_names: Vec<String>,
    pub group_paths: Vec<String>,
}

impl Identity {
    /// Resolves effective roles (direct, via groups and parents, composites)
    /// and group memberships.
    pub async fn resolve(idp: &Idp, realm: &Realm, user: &User) -> Result<Identity, OAuthError> {
        let roles = idp.store.effective_roles(&user.id).await?;
        let mut realm_roles = vec![];
        let mut by_client: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut client_names: BTreeMap<String, String> = BTreeMap::new();
        for r in roles {
            match &r.client_id {
                None => realm_roles.push(r.name),
                Some(internal) => {
                    if !client_names.contains_key(internal)
                        && let Some(c) = idp.store.client(&realm.id, internal).await?
                    {
                        client_names.insert(internal.clone(), c.client_id);
                    }
                    if let Some(cid) = client_names.get(internal) {
                        by_client.entry(cid.clone()).or_default().push(r.name);
                    }
                }
            }
        }
        let groups = idp.store.user_groups(&user.id).await?;
        let mut group_paths = vec![];
        if groups.iter().any(|g| g.parent_id.is_some()) {
            let all = idp.store.groups(&realm.id).await?;
            for g in &groups {
                group_paths.push(crate::repr::group_path(&all, &g.id));
            }
        } else {
            group_paths = groups.iter().map(|g| format!("/{}", g.name)).collect();
        }
        Ok(Identity {
            realm_roles,
            client_roles: by_client,
            group_names: groups.into_iter().map(|g| g.name).collect(),
            group_paths,
        })
    }
}

/// What to issue.
pub struct Grant<'a> {
    pub realm: &'a Realm,
    pub client: &'a Client,
    pub user: &'a User,
    pub session: Option<&'a Session>,
    pub scope: String,
    pub nonce: Option<String>,
    /// RFC 8707 resources that narrow the audience.
    pub resources: Vec<String>,
    pub refresh: bool,
}

/// Which token a mapper is applied to.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Access,
    Id,
    UserInfo,
}

fn flag(cfg: &BTreeMap<String, String>, key: &str, default: bool) -> bool {
    cfg.get(key).map(|v| v == "true").unwrap_or(default)
}

/// Sets `value` at a dotted claim path (`a.b.c` -> nested objects), as
/// Keycloak's mappers do; `\.` keeps a literal dot.
fn set_claim(claims: &mut Map<String, Value>, path: &str, value: Value) {
    let parts: Vec<String> = {
        let mut v = vec![String::new()];
        let mut chars = path.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek() == Some(&'.') {
                if let Some(last) = v.last_mut() {
                    last.push('.');
                }
                chars.next();
            } else if c == '.' {
                v.push(String::new());
            } else if let Some(last) = v.last_mut() {
                last.push(c);
            }
        }
        v
    };
    let mut cur = claims;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert(p.clone(), value);
            return;
        }
        let entry = cur.entry(p.clone()).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        match entry.as_object_mut() {
            Some(o) => cur = o,
            None => return,
        }
    }
}

fn typed(value: &str, json_type: Option<&String>) -> Value {
    match json_type.map(String::as_str) {
        Some("boolean") => json!(value == "true"),
        Some("int") | Some("long") => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(json!(value)),
        Some("JSON") => serde_json::from_str(value).unwrap_or(json!(value)),
        _ => json!(value),
    }
}

/// Claims every token kind shares about the user.
fn profile_claims(c: &mut Map<String, Value>, user: &User, scope: &str) {
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    c.insert("preferred_username".into(), json!(user.username));
    if has("email") {
        if let Some(e) = &user.email {
            c.insert("email".into(), json!(e));
        }
        c.insert("email_verified".into(), json!(user.email_verified));
    }
    if has("profile") {
        let name = [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            c.insert("name".into(), json!(name));
        }
        if let Some(f) = &user.first_name {
            c.insert("given_name".into(), json!(f));
        }
        if let Some(l) = &user.last_name {
            c.insert("family_name".into(), json!(l));
        }
    }
}

fn apply_mappers(
    c: &mut Map<String, Value>,
    aud: &mut BTreeSet<String>,
    g: &Grant<'_>,
    id: &Identity,
    target: Target,
) {
    let default_groups = json!(id.group_names);
    c.insert("groups".into(), default_groups);
    for m in &g.client.protocol_mappers {
        let cfg = &m.config;
        let applies = match target {
            Target::Access => flag(cfg, "access.token.claim", true),
            Target::Id => flag(
                cfg,
                "id.token.claim",
                m.protocol_mapper != "oidc-audience-mapper",
            ),
            Target::UserInfo => flag(
                cfg,
                "userinfo.token.claim",
                m.protocol_mapper != "oidc-audience-mapper",
            ),
        };
        if !applies {
            continue;
        }
        let claim = cfg.get("claim.name").cloned();
        let jt = cfg.get("jsonType.label");
        match m.protocol_mapper.as_str() {
            "oidc-audience-mapper" if target == Target::Access => {
                for k in ["included.client.audience", "included.custom.audience"] {
                    if let Some(a) = cfg.get(k).filter(|a| !a.is_empty()) {
                        aud.insert(a.clone());
                    }
                }
            }
            "oidc-group-membership-mapper" => {
                let v = if flag(cfg, "full.path", false) {
                    json!(id.group_paths)
                } else {
                    json!(id.group_names)
                };
                let name = claim.unwrap_or_else(|| "groups".into());
                c.remove("groups");
                set_claim(c, &name, v);
            }
            "oidc-usermodel-attribute-mapper" | "oidc-usermodel-property-mapper" => {
                let Some(attr) = cfg.get("user.attribute") else {
                    continue;
                };
                let values: Vec<String> = match attr.as_str() {
                    "username" => vec![g.user.username.clone()],
                    "email" => g.user.email.clone().into_iter().collect(),
                    "firstName" => g.user.first_name.clone().into_iter().collect(),
                    "lastName" => g.user.last_name.clone().into_iter().collect(),
                    other => g.user.attributes.get(other).cloned().unwrap_or_default(),
                };
                if values.is_empty() {
                    continue;
                }
                let v = if flag(cfg, "multivalued", false) {
                    Value::Array(values.iter().map(|s| typed(s, jt)).collect())
                } else {
                    typed(&values[0], jt)
                };
                set_claim(c, &claim.unwrap_or_else(|| attr.clone()), v);
            }
            "oidc-hardcoded-claim-mapper" => {
                if let (Some(name), Some(value)) = (claim, cfg.get("claim.value")) {
                    set_claim(c, &name, typed(value, jt));
                }
            }
            "oidc-usermodel-realm-role-mapper" => {
                let name = claim.unwrap_or_else(|| "realm_access.roles".into());
                set_claim(c, &name, json!(id.realm_roles));
            }
            "oidc-usermodel-client-role-mapper" => {
                let Some(cid) = cfg.get("usermodel.clientRoleMapping.clientId") else {
                    continue;
                };
                let roles = id.client_roles.get(cid).cloned().unwrap_or_default();
                let name = claim.unwrap_or_else(|| format!("resource_access.{cid}.roles"));
                set_claim(c, &name, json!(roles));
            }
            _ => {}
        }
    }
}

/// The JSON a token endpoint returns.
pub async fn issue(idp: &Idp, ring: &KeyRing, g: &Grant<'_>) -> Result<Value, OAuthError> {
    let now = gatehouse_core::time::now();
    let id = Identity::resolve(idp, g.realm, g.user).await?;
    let issuer = idp.issuer(&g.realm.name);
    let lifespan = g
        .client
        .access_token_lifespan()
        .unwrap_or(g.realm.access_token_lifespan);
    let mut aud: BTreeSet<String> = id
        .client_roles
        .keys()
        .filter(|c| *c != &g.client.client_id)
        .cloned()
        .collect();

    let mut at = Map::new();
    let jti = gatehouse_core::id::uuid();
    at.insert("exp".into(), json!(now + lifespan));
    at.insert("iat".into(), json!(now));
    at.insert("jti".into(), json!(jti));
    at.insert("iss".into(), json!(issuer));
    at.insert("sub".into(), json!(g.user.id));
    at.insert("typ".into(), json!("Bearer"));
    at.insert("azp".into(), json!(g.client.client_id));
    if let Some(s) = g.session {
        at.insert("sid".into(), json!(s.id));
        at.insert("auth_time".into(), json!(s.auth_time));
    }
    at.insert("acr".into(), json!("1"));
    if !g.client.web_origins.is_empty() {
        at.insert("allowed-origins".into(), json!(g.client.web_origins));
    }
    at.insert("realm_access".into(), json!({"roles": id.realm_roles}));
    let ra: Map<String, Value> = id
        .client_roles
        .iter()
        .map(|(k, v)| (k.clone(), json!({"roles": v})))
        .collect();
    if !ra.is_empty() {
        at.insert("resource_access".into(), Value::Object(ra));
    }
    at.insert("scope".into(), json!(g.scope));
    profile_claims(&mut at, g.user, &g.scope);
    if g.user.service_account_client_id.is_some() {
        at.insert("client_id".into(), json!(g.client.client_id));
    }
    apply_mappers(&mut at, &mut aud, g, &id, Target::Access);
    if !g.resources.is_empty() {
        let not_allowed: Vec<&String> = g.resources.iter().filter(|r| !aud.contains(*r)).collect();
        if !not_allowed.is_empty() {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "The requested resource is not an audience of this client",
            ));
        }
        aud = g.resources.iter().cloned().collect();
    }
    match aud.len() {
        0 => {}
        1 => {
            at.insert("aud".into(), json!(aud.iter().next()));
        }
        _ => {
            at.insert("aud".into(), json!(aud));
        }
    }
    let signer = ring.signer()?;
    let access_token = gatehouse_jose::sign::sign(signer.as_ref(), &at)?;

    let mut out = Map::new();
    out.insert("access_token".into(), json!(access_token));
    out.insert("expires_in".into(), json!(lifespan));
    out.insert("token_type".into(), json!("Bearer"));
    out.insert("not-before-policy".into(), json!(0));
    out.insert("scope".into(), json!(g.scope));

    if g.scope.split(' ').any(|s| s == "openid") {
        let mut it = Map::new();
        it.insert("exp".into(), json!(now + lifespan));
        it.insert("iat".into(), json!(now));
        it.insert("jti".into(), json!(gatehouse_core::id::uuid()));
        it.insert("iss".into(), json!(issuer));
        it.insert("aud".into(), json!(g.client.client_id));
        it.insert("sub".into(), json!(g.user.id));
        it.insert("typ".into(), json!("ID"));
        it.insert("azp".into(), json!(g.client.client_id));
        if let Some(n) = &g.nonce {
            it.insert("nonce".into(), json!(n));
        }
        if let Some(s) = g.session {
            it.insert("sid".into(), json!(s.id));
            it.insert("auth_time".into(), json!(s.auth_time));
        }
        it.insert(
            "at_hash".into(),
            json!(at_hash(signer.alg(), &access_token)),
        );
        it.insert("acr".into(), json!("1"));
        profile_claims(&mut it, g.user, &g.scope);
        let mut ignored = BTreeSet::new();
        apply_mappers(&mut it, &mut ignored, g, &id, Target::Id);
        out.insert(
            "id_token".into(),
            json!(gatehouse_jose::sign::sign(signer.as_ref(), &it)?),
        );
    }

    if let (true, Some(s)) = (g.refresh, g.session) {
        let exp = if s.offline {
            now + g.realm.offline_session_idle_timeout
        } else {
            (now + g.realm.sso_session_idle_timeout)
                .min(s.started + g.realm.sso_session_max_lifespan)
        };
        let rt = json!({
            "exp": exp, "iat": now, "jti": s.refresh_token_id.clone().unwrap_or_else(gatehouse_core::id::uuid),
            "iss": issuer, "aud": issuer, "sub": g.user.id,
            "typ": if s.offline { "Offline" } else { "Refresh" },
            "azp": g.client.client_id, "sid": s.id, "scope": g.scope,
        });
        let refresh = gatehouse_jose::sign::sign_hs512(&ring.hs_secret, &g.realm.id, &rt)?;
        out.insert("refresh_token".into(), json!(refresh));
        out.insert(
            "refresh_expires_in".into(),
            json!(if s.offline { 0 } else { exp - now }),
        );
        out.insert("session_state".into(), json!(s.id));
    } else {
        out.insert("refresh_expires_in".into(), json!(0));
    }
    Ok(Value::Object(out))
}

/// The claims userinfo returns for a user and scope.
pub async fn userinfo(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    user: &User,
    scope: &str,
) -> Result<Value, OAuthError> {
    let id = Identity::resolve(idp, realm, user).await?;
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id));
    profile_claims(&mut c, user, scope);
    let g = Grant {
        realm,
        client,
        user,
        session: None,
        scope: scope.to_owned(),
        nonce: None,
        resources: vec![],
        refresh: false,
    };
    let mut ignored = BTreeSet::new();
    apply_mappers(&mut c, &mut ignored, &g, &id, Target::UserInfo);
    Ok(Value::Object(c))
}

/// OIDC `at_hash`: left half of the hash of the access token, base64url.
fn at_hash(alg: gatehouse_jose::keys::Alg, token: &str) -> String {
    use base64::Engine;
    let d = match alg {
        gatehouse_jose::keys::Alg::EdDSA => {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, token.as_bytes())
        }
        _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()),
    };
    let h = d.as_ref();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..h.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_claim_names_nest() {
        let mut m = Map::new();
        set_claim(&mut m, "a.b.c", json!(1));
        set_claim(&mut m, "x\\.y", json!(2));
        assert_eq!(Value::Object(m), json!({"a": {"b": {"c": 1}}, "x.y": 2}));
    }

    #[test]
    fn scope_resolution_follows_client_scopes() {
        let mut c = Client::new("r", "app");
        c.optional_client_scopes.push("orders:read".into());
        assert_eq!(
            granted_scope(&c, Some("openid")).expect("ok"),
            "openid profile email"
        );
        assert_eq!(
            granted_scope(&c, Some("openid orders:read")).expect("ok"),
            "openid profile email orders:read"
        );
        assert_eq!(
            granted_scope(&c, Some("nope")).expect_err("bad").error,
            "invalid_scope"
        );
    }
}
