//! Token minting with Keycloak's claim layout (design.md §Tokens): access
//! token (JWS, realm key), ID token, refresh token (HS512, realm secret), and
//! the protocol mappers that shape claims per client.

use crate::error::OAuthError;
use crate::keyring::KeyRing;
use crate::state::Idp;
use axum::http::StatusCode;
use gatehouse_core::model::{Client, ClientScope, ProtocolMapper, Realm, Session, User};
use gatehouse_jose::keys::SigningKey;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Resolves the `scope` a client gets: `openid` when asked, the client's
/// default scopes, and the asked-for optional ones; only scopes whose
/// `include.in.token.scope` is on are listed (Keycloak leaves out `roles`,
/// `acr`, `basic`, `web-origins`). An unknown scope, or one the client does
/// not have, is an `invalid_scope` error, as in Keycloak.
pub fn granted_scope(
    client: &Client,
    scopes: &[ClientScope],
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let by_name = |n: &str| scopes.iter().find(|s| s.name == n);
    let mut out: Vec<String> = Vec::new();
    let asked: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if asked.contains(&"openid") {
        out.push("openid".into());
    }
    for d in &client.default_client_scopes {
        if by_name(d).is_some_and(ClientScope::include_in_token_scope) && !out.contains(d) {
            out.push(d.clone());
        }
    }
    let mut invalid = vec![];
    for a in asked {
        if a == "openid" || out.iter().any(|o| o == a) {
            continue;
        }
        // Keycloak's dynamic `organization:<alias>` and `organization:*`
        // are the `organization` scope with a parameter, echoed as asked.
        let name = if organization_param(a).is_some() {
            ORGANIZATION
        } else {
            a
        };
        let Some(found) = by_name(name) else {
            invalid.push(a);
            continue;
        };
        if client.default_client_scopes.iter().any(|o| o == a) {
            continue;
        }
        let optional = |n: &str| client.optional_client_scopes.iter().any(|o| o == n);
        if optional(name) || (name != a && client.default_client_scopes.iter().any(|o| o == name)) {
            if found.include_in_token_scope() {
                out.push(a.to_owned());
            }
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

/// The client scope that names the user's organizations.
const ORGANIZATION: &str = "organization";

/// Keycloak's mapper type that adds organization groups to that claim.
const ORGANIZATION_GROUPS_MAPPER: &str = "oidc-organization-group-membership-mapper";

/// Keycloak's mapper type that adds organization roles to that claim.
const ORGANIZATION_ROLES_MAPPER: &str = "oidc-organization-role-membership-mapper";

/// Whether a mapper adds to the claim the organization membership mapper
/// makes (and so runs after it).
fn adds_to_organization_claim(m: &gatehouse_core::model::ProtocolMapper) -> bool {
    m.protocol_mapper == ORGANIZATION_GROUPS_MAPPER
        || m.protocol_mapper == ORGANIZATION_ROLES_MAPPER
}

/// The parameter of a dynamic `organization:<param>` scope value.
fn organization_param(scope: &str) -> Option<&str> {
    scope
        .strip_prefix("organization:")
        .filter(|p| !p.is_empty())
}

/// The client scopes in effect for a grant: the client's default scopes
/// and the optional ones its `scope` names.
pub fn effective_scopes<'a>(
    client: &Client,
    scopes: &'a [ClientScope],
    scope: &str,
) -> Vec<&'a ClientScope> {
    scopes
        .iter()
        .filter(|s| {
            client.default_client_scopes.contains(&s.name)
                || (client.optional_client_scopes.contains(&s.name)
                    && scope.split(' ').any(|x| {
                        x == s.name || (s.name == ORGANIZATION && organization_param(x).is_some())
                    }))
        })
        .collect()
}

/// Everything the tokens say about the user, resolved once per issuance.
pub struct Identity {
    pub realm_roles: Vec<String>,
    /// Public client_id -> role names.
    pub client_roles: BTreeMap<String, Vec<String>>,
    pub group_names: Vec<String>,
    pub group_paths: Vec<String>,
    /// The enabled organizations the user is a member of (none unless the
    /// realm has `organizationsEnabled`).
    pub organizations: Vec<gatehouse_core::model::Organization>,
    /// By organization id, what the user's groups there say, for Keycloak's
    /// organization group membership mapper (organizations where the user
    /// is in no group are left out).
    pub organization_groups: BTreeMap<String, OrganizationGroups>,
    /// By organization id, the organization's roles the user holds and the
    /// realm and client roles these contain, for Keycloak's organization
    /// role membership mapper.
    pub organization_roles: BTreeMap<String, OrganizationRoles>,
}

/// A member's roles in one organization.
#[derive(Default)]
pub struct OrganizationRoles {
    /// The organization's own roles (the default role among them).
    pub names: Vec<String>,
    pub realm_roles: Vec<String>,
    /// Public client_id -> role names.
    pub client_roles: BTreeMap<String, Vec<String>>,
}

/// A user's groups in one organization and the roles they give.
#[derive(Default)]
pub struct OrganizationGroups {
    /// Paths within the organization (`/eng/backend`).
    pub paths: Vec<String>,
    pub realm_roles: Vec<String>,
    /// Public client_id -> role names.
    pub client_roles: BTreeMap<String, Vec<String>>,
}

/// The roles a client without full scope may put in tokens, before
/// composites: its own scope mappings and those of the client scopes in
/// effect.
pub fn mapped_role_ids(client: &Client, scopes: &[&ClientScope]) -> Vec<String> {
    let mut ids = client.scope_role_ids.clone();
    for s in scopes {
        ids.extend(s.scope_role_ids.iter().cloned());
    }
    ids
}

/// The roles `ids` name and, through composites, every role they contain
/// (each once; ids of deleted roles are skipped).
pub async fn expand_roles(
    idp: &Idp,
    realm: &Realm,
    ids: &[String],
) -> Result<Vec<gatehouse_core::model::Role>, gatehouse_store::Error> {
    let mut out = vec![];
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo = ids.to_vec();
    while let Some(rid) = todo.pop() {
        if !seen.insert(rid.clone()) {
            continue;
        }
        let Some(role) = idp.store.role(&realm.id, &rid).await? else {
            continue;
        };
        todo.extend(
            idp.store
                .composites(&role.id)
                .await?
                .into_iter()
                .map(|r| r.id),
        );
        out.push(role);
    }
    Ok(out)
}

impl Identity {
    /// What a client may see of this identity: everything with Keycloak's
    /// `fullScopeAllowed` (the default); otherwise only the roles in its
    /// scope mappings and in those of the client scopes in effect
    /// (`scopes`), composites expanded, and its own client roles, so a
    /// token for a narrow client does not carry the user's every role.
    pub async fn scoped_to(
        self: Arc<Self>,
        idp: &Idp,
        realm: &Realm,
        client: &Client,
        scopes: &[&ClientScope],
    ) -> Result<Arc<Identity>, OAuthError> {
        if client.full_scope_allowed {
            return Ok(self);
        }
        let mut allowed: BTreeSet<(Option<String>, String)> = BTreeSet::new();
        for role in expand_roles(idp, realm, &mapped_role_ids(client, scopes)).await? {
            let owner = match &role.client_id {
                Some(internal) => idp
                    .store
                    .client(&realm.id, internal)
                    .await?
                    .map(|c| c.client_id),
                None => None,
            };
            if role.client_id.is_none() || owner.is_some() {
                allowed.insert((owner, role.name));
            }
        }
        let keep = |realm_roles: &[String], client_roles: &BTreeMap<String, Vec<String>>| {
            let realm_roles: Vec<String> = realm_roles
                .iter()
                .filter(|n| allowed.contains(&(None, (*n).clone())))
                .cloned()
                .collect();
            let client_roles: BTreeMap<String, Vec<String>> = client_roles
                .iter()
                .map(|(cid, names)| {
                    let own = *cid == client.client_id;
                    let keep: Vec<String> = names
                        .iter()
                        .filter(|n| own || allowed.contains(&(Some(cid.clone()), (*n).clone())))
                        .cloned()
                        .collect();
                    (cid.clone(), keep)
                })
                .filter(|(_, names)| !names.is_empty())
                .collect();
            (realm_roles, client_roles)
        };
        let (realm_roles, client_roles) = keep(&self.realm_roles, &self.client_roles);
        let organization_groups = self
            .organization_groups
            .iter()
            .map(|(org, g)| {
                let (realm_roles, client_roles) = keep(&g.realm_roles, &g.client_roles);
                let paths = g.paths.clone();
                let narrowed = OrganizationGroups {
                    paths,
                    realm_roles,
                    client_roles,
                };
                (org.clone(), narrowed)
            })
            .collect();
        let organization_roles = self
            .organization_roles
            .iter()
            .map(|(org, held)| {
                let (realm_roles, client_roles) = keep(&held.realm_roles, &held.client_roles);
                let narrowed = OrganizationRoles {
                    names: held.names.clone(),
                    realm_roles,
                    client_roles,
                };
                (org.clone(), narrowed)
            })
            .collect();
        Ok(Arc::new(Identity {
            realm_roles,
            client_roles,
            group_names: self.group_names.clone(),
            group_paths: self.group_paths.clone(),
            organizations: self.organizations.clone(),
            organization_groups,
            organization_roles,
        }))
    }

    /// Resolves effective roles (direct, via groups and parents, composites)
    /// and group memberships.
    pub async fn resolve(idp: &Idp, realm: &Realm, user: &User) -> Result<Identity, OAuthError> {
        let mut roles = idp.store.effective_roles(&user.id).await?;
        let organizations = if crate::admin::organizations::enabled(realm) {
            let mut orgs = idp.store.user_organizations(&user.id).await?;
            orgs.retain(|o| o.enabled && o.realm_id == realm.id);
            orgs
        } else {
            vec![]
        };
        // The roles of the user's organization groups count as theirs (as
        // in Keycloak 26.7: they reach realm_access and resource_access).
        let mut client_names: BTreeMap<String, String> = BTreeMap::new();
        let mut organization_groups = BTreeMap::new();
        let mut organization_roles = BTreeMap::new();
        for o in &organizations {
            // Its own roles stay in its entry of the organization claim.
            let (own, contained) = crate::admin::organization_roles::held(o, &user.id);
            if !own.is_empty() {
                let names = own.iter().map(|r| r.name.clone()).collect();
                let contained = expand_roles(idp, realm, &contained).await?;
                let (realm_roles, client_roles) =
                    split_roles(idp, realm, &contained, &mut client_names).await?;
                organization_roles.insert(
                    o.id.clone(),
                    OrganizationRoles {
                        names,
                        realm_roles,
                        client_roles,
                    },
                );
            }
            let Some((paths, given)) =
                crate::admin::organization_groups::member_view(idp, &realm.id, o, &user.id).await?
            else {
                continue;
            };
            let (realm_roles, client_roles) =
                split_roles(idp, realm, &given, &mut client_names).await?;
            for r in given {
                if !roles.iter().any(|have| have.id == r.id) {
                    roles.push(r);
                }
            }
            organization_groups.insert(
                o.id.clone(),
                OrganizationGroups {
                    paths,
                    realm_roles,
                    client_roles,
                },
            );
        }
        let (realm_roles, by_client) = split_roles(idp, realm, &roles, &mut client_names).await?;
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
            organizations,
            organization_groups,
            organization_roles,
        })
    }
}

/// Role names as tokens carry them: realm roles, and client roles by the
/// client's public id (`names` caches internal id -> client_id).
async fn split_roles(
    idp: &Idp,
    realm: &Realm,
    roles: &[gatehouse_core::model::Role],
    names: &mut BTreeMap<String, String>,
) -> Result<(Vec<String>, BTreeMap<String, Vec<String>>), OAuthError> {
    let mut realm_roles = vec![];
    let mut by_client: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in roles {
        match &r.client_id {
            None => realm_roles.push(r.name.clone()),
            Some(internal) => {
                if !names.contains_key(internal)
                    && let Some(c) = idp.store.client(&realm.id, internal).await?
                {
                    names.insert(internal.clone(), c.client_id);
                }
                if let Some(cid) = names.get(internal) {
                    by_client
                        .entry(cid.clone())
                        .or_default()
                        .push(r.name.clone());
                }
            }
        }
    }
    Ok((realm_roles, by_client))
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
    /// The DPoP key (its thumbprint) the tokens are bound to
    /// (`oidc::dpop`).
    pub dpop: Option<String>,
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

/// A user property by Keycloak's property name (`username`, `email`,
/// `firstName`, `lastName`, `emailVerified`, `createdTimestamp`...), else
/// a user attribute of that name.
fn user_values(user: &User, attr: &str) -> Vec<String> {
    match attr {
        "username" => vec![user.username.clone()],
        "email" => user.email.clone().into_iter().collect(),
        "firstName" => user.first_name.clone().into_iter().collect(),
        "lastName" => user.last_name.clone().into_iter().collect(),
        "emailVerified" => vec![user.email_verified.to_string()],
        "enabled" => vec![user.enabled.to_string()],
        "createdTimestamp" => vec![user.created_timestamp.to_string()],
        "id" => vec![user.id.clone()],
        other => user.attributes.get(other).cloned().unwrap_or_default(),
    }
}

fn with_prefix(roles: &[String], cfg: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    match cfg.get(key).filter(|p| !p.is_empty()) {
        Some(p) => roles.iter().map(|r| format!("{p}{r}")).collect(),
        None => roles.to_vec(),
    }
}

/// `name`: the user's first and last names, when there are any.
fn full_name(user: &User, c: &mut Map<String, Value>) {
    let name = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        c.insert("name".into(), json!(name));
    }
}

/// Keycloak's "Claims parameter Token" mapper: the standard claims the
/// session's `claims` parameter (OIDC Core §5.5) asks for as essential
/// (`{"essential": true}`) under `id_token` or `userinfo`, whatever the
/// granted scopes say. Keycloak's mapper fills exactly these five; the
/// other claims it lists as supported (`sub`, `iss`, `aud`, `auth_time`,
/// `acr`) are in every ID token anyway.
fn requested_claims(g: &Grant<'_>, c: &mut Map<String, Value>, target: Target) {
    let Some(raw) = g.session.and_then(|s| s.claims.as_deref()) else {
        return;
    };
    let Ok(asked) = serde_json::from_str::<Value>(raw) else {
        return;
    };
    let member = if target == Target::Id {
        "id_token"
    } else {
        "userinfo"
    };
    let Some(wanted) = asked.get(member).and_then(Value::as_object) else {
        return;
    };
    let essential = |claim: &str| {
        wanted
            .get(claim)
            .and_then(|r| r.get("essential"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let u = g.user;
    if essential("name") {
        full_name(u, c);
    }
    for (claim, value) in [
        ("given_name", u.first_name.as_deref()),
        ("family_name", u.last_name.as_deref()),
        ("preferred_username", Some(u.username.as_str())),
        ("email", u.email.as_deref()),
    ] {
        if let Some(v) = value.filter(|_| essential(claim)) {
            c.insert(claim.into(), json!(v));
        }
    }
}

/// Applies one protocol mapper (Keycloak's mapper types by id). Unknown
/// types are skipped, as Keycloak skips mappers of a missing provider.
fn apply_mapper(
    m: &ProtocolMapper,
    c: &mut Map<String, Value>,
    aud: &mut BTreeSet<String>,
    g: &Grant<'_>,
    id: &Identity,
    target: Target,
) {
    let cfg = &m.config;
    // Keycloak's reading (OIDCAttributeMapperHelper): a mapper reaches the
    // ID token only when it says so, and userinfo when it says so or, saying
    // nothing, when it reaches the ID token. So the role mappers of the
    // `roles` scope (access token and introspection only) keep
    // `realm_access` out of ID tokens and userinfo, as in Keycloak. One
    // leniency: a mapper that names no token at all still fills the access
    // token (Keycloak would apply it nowhere), since that is what a
    // hand-written mapper means; Keycloak's exports always carry the flags.
    let id_token = || flag(cfg, "id.token.claim", false);
    let applies = match target {
        Target::Access => flag(cfg, "access.token.claim", true),
        Target::Id => id_token(),
        Target::UserInfo => match cfg.get("userinfo.token.claim") {
            Some(v) => v == "true",
            None => id_token(),
        },
    };
    if !applies {
        return;
    }
    let claim = cfg.get("claim.name").filter(|n| !n.is_empty()).cloned();
    let jt = cfg.get("jsonType.label");
    match m.protocol_mapper.as_str() {
        "oidc-audience-mapper" if target == Target::Access => {
            for k in ["included.client.audience", "included.custom.audience"] {
                if let Some(a) = cfg.get(k).filter(|a| !a.is_empty()) {
                    aud.insert(a.clone());
                }
            }
        }
        // Clients whose roles the user holds are audiences (Keycloak's
        // "audience resolve" in the `roles` scope).
        "oidc-audience-resolve-mapper" if target == Target::Access => {
            for (cid, roles) in &id.client_roles {
                if cid != &g.client.client_id && !roles.is_empty() {
                    aud.insert(cid.clone());
                }
            }
        }
        // Keycloak's organization membership mapper: which organizations
        // the granted scope asks for (`organization:*` all of them,
        // `organization:<alias>` that one, plain `organization` the user's
        // only one; with several, Keycloak asks the user in the browser,
        // which a token request cannot, so none), as a list of aliases, or
        // a map by alias when the id or attributes are to be added.
        "oidc-organization-membership-mapper" => {
            let asked: Vec<&str> = g.scope.split(' ').filter_map(organization_param).collect();
            let chosen: Vec<&gatehouse_core::model::Organization> = if asked.contains(&"*") {
                id.organizations.iter().collect()
            } else if !asked.is_empty() {
                id.organizations
                    .iter()
                    .filter(|o| asked.contains(&o.alias.as_str()))
                    .collect()
            } else if id.organizations.len() == 1 {
                id.organizations.iter().collect()
            } else {
                vec![]
            };
            if chosen.is_empty() {
                return;
            }
            let with_id = flag(cfg, "addOrganizationId", false);
            let with_attrs = flag(cfg, "addOrganizationAttributes", false);
            let v = if with_id || with_attrs {
                let mut m = Map::new();
                for o in chosen {
                    let mut e = Map::new();
                    if with_id {
                        e.insert("id".into(), json!(o.id));
                    }
                    if with_attrs {
                        for (k, vs) in &o.attributes {
                            e.insert(k.clone(), json!(vs));
                        }
                    }
                    m.insert(o.alias.clone(), Value::Object(e));
                }
                Value::Object(m)
            } else {
                json!(chosen.iter().map(|o| &o.alias).collect::<Vec<_>>())
            };
            set_claim(c, &claim.unwrap_or_else(|| ORGANIZATION.into()), v);
        }
        // Keycloak's organization group membership mapper: into the claim
        // the organization membership mapper made (a list of aliases turns
        // into a map by alias), each organization's `groups` (paths within
        // it) and, with `addGroupRoleMappings`, the roles those groups give
        // (`realm_access`, `resource_access`). Applied after every other
        // mapper (`apply_mappers`), as it needs that claim.
        ORGANIZATION_GROUPS_MAPPER => {
            let with_roles = flag(cfg, "addGroupRoleMappings", false);
            add_to_organizations(c, claim, id, |o, e| {
                let Some(groups) = id.organization_groups.get(&o.id) else {
                    return false;
                };
                e.insert("groups".into(), json!(groups.paths));
                if with_roles {
                    add_access(e, &groups.realm_roles, &groups.client_roles);
                }
                true
            });
        }
        // Keycloak's organization role membership mapper: into the same
        // claim, each organization's roles the user holds (`roles`) and the
        // realm and client roles these contain (`realm_access`,
        // `resource_access`), there only.
        ORGANIZATION_ROLES_MAPPER => {
            add_to_organizations(c, claim, id, |o, e| {
                let Some(held) = id.organization_roles.get(&o.id) else {
                    return false;
                };
                merge_roles(e, &held.names);
                add_access(e, &held.realm_roles, &held.client_roles);
                true
            });
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
                return;
            };
            let values = user_values(g.user, attr);
            let Some(first) = values.first() else {
                return;
            };
            let v = if flag(cfg, "multivalued", false) {
                Value::Array(values.iter().map(|s| typed(s, jt)).collect())
            } else {
                typed(first, jt)
            };
            set_claim(c, &claim.unwrap_or_else(|| attr.clone()), v);
        }
        "oidc-full-name-mapper" => full_name(g.user, c),
        "oidc-claims-param-token-mapper" if target != Target::Access => {
            requested_claims(g, c, target);
        }
        "oidc-address-mapper" => {
            let mut addr = Map::new();
            for (attr, field) in [
                ("formatted", "formatted"),
                ("street", "street_address"),
                ("locality", "locality"),
                ("region", "region"),
                ("postal_code", "postal_code"),
                ("country", "country"),
            ] {
                if let Some(v) = user_values(g.user, attr).first() {
                    addr.insert(field.into(), json!(v));
                }
            }
            if !addr.is_empty() {
                c.insert("address".into(), Value::Object(addr));
            }
        }
        "oidc-hardcoded-claim-mapper" => {
            if let (Some(name), Some(value)) = (claim, cfg.get("claim.value")) {
                set_claim(c, &name, typed(value, jt));
            }
        }
        "oidc-usermodel-realm-role-mapper" if !id.realm_roles.is_empty() => {
            let roles = with_prefix(
                &id.realm_roles,
                cfg,
                "usermodel.realmRoleMapping.rolePrefix",
            );
            let name = claim.unwrap_or_else(|| "realm_access.roles".into());
            set_claim(c, &name, json!(roles));
        }
        "oidc-usermodel-client-role-mapper" => {
            // One client, or every client when none is named; the claim
            // name may hold `${client_id}`.
            let name = claim.unwrap_or_else(|| "resource_access.${client_id}.roles".into());
            let only = cfg
                .get("usermodel.clientRoleMapping.clientId")
                .filter(|c| !c.is_empty());
            for (cid, roles) in &id.client_roles {
                if only.is_some_and(|o| o != cid) || roles.is_empty() {
                    continue;
                }
                let roles = with_prefix(roles, cfg, "usermodel.clientRoleMapping.rolePrefix");
                set_claim(c, &name.replace("${client_id}", cid), json!(roles));
            }
        }
        "oidc-allowed-origins-mapper"
            if target == Target::Access && !g.client.web_origins.is_empty() =>
        {
            c.insert("allowed-origins".into(), json!(g.client.web_origins));
        }
        // Access and ID tokens only: Keycloak's acr mapper is no userinfo
        // mapper, whatever its flags say.
        "oidc-acr-mapper" if target != Target::UserInfo => {
            // Keycloak's levels without step-up configured: 1 for a login
            // with credentials, 0 for one the SSO session stood in for.
            let sso = g.session.is_some_and(|s| s.sso_auth);
            c.insert("acr".into(), json!(if sso { "0" } else { "1" }));
        }
        "oidc-usersessionmodel-note-mapper" => {
            if cfg.get("user.session.note").map(String::as_str) == Some("AUTH_TIME")
                && let Some(s) = g.session
            {
                set_claim(
                    c,
                    &claim.unwrap_or_else(|| "auth_time".into()),
                    json!(s.auth_time),
                );
            }
        }
        // `sub` is always set; Keycloak's "sub" mapper only exists so it can be removed.
        _ => {}
    }
}

/// Applies the mappers of the grant's client scopes, then the client's
/// own (so a client mapper wins over a scope mapper of the same claim).
fn apply_mappers(
    c: &mut Map<String, Value>,
    aud: &mut BTreeSet<String>,
    g: &Grant<'_>,
    scopes: &[&ClientScope],
    id: &Identity,
    target: Target,
) {
    // design.md: `groups` is always there, a flat list of names.
    c.insert("groups".into(), json!(id.group_names));
    let all = || {
        scopes
            .iter()
            .filter(|s| s.protocol == "openid-connect")
            .flat_map(|s| &s.protocol_mappers)
            .chain(&g.client.protocol_mappers)
    };
    for m in all().filter(|m| !adds_to_organization_claim(m)) {
        apply_mapper(m, c, aud, g, id, target);
    }
    // What they add to goes in first, whatever the order of the mappers.
    if !id.organization_groups.is_empty() || !id.organization_roles.is_empty() {
        for m in all().filter(|m| adds_to_organization_claim(m)) {
            apply_mapper(m, c, aud, g, id, target);
        }
    }
}

/// Adds to the organization claim (`claim`, else `organization`, as the
/// organization membership mapper made it; a list of aliases becomes a
/// map by alias) what `add` puts in each organization's entry; the claim
/// is left alone when `add` puts nothing anywhere.
fn add_to_organizations(
    c: &mut Map<String, Value>,
    claim: Option<String>,
    id: &Identity,
    mut add: impl FnMut(&gatehouse_core::model::Organization, &mut Map<String, Value>) -> bool,
) {
    let name = claim.unwrap_or_else(|| ORGANIZATION.into());
    let mut map = match c.get(&name) {
        Some(Value::Array(aliases)) => aliases
            .iter()
            .filter_map(Value::as_str)
            .map(|a| (a.to_owned(), json!({})))
            .collect::<Map<String, Value>>(),
        Some(Value::Object(m)) => m.clone(),
        _ => return,
    };
    let mut any = false;
    for (alias, entry) in map.iter_mut() {
        let (Some(o), Some(e)) = (
            id.organizations.iter().find(|o| &o.alias == alias),
            entry.as_object_mut(),
        ) else {
            continue;
        };
        any |= add(o, e);
    }
    if any {
        c.insert(name, Value::Object(map));
    }
}

/// Adds `names` to `e.roles`, sorted and each once (Keycloak merges the
/// organization mappers' lists so).
fn merge_roles(e: &mut Map<String, Value>, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut all: BTreeSet<String> = e
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    all.extend(names.iter().cloned());
    e.insert("roles".into(), json!(all));
}

/// Adds realm roles to `e.realm_access` and client roles to
/// `e.resource_access.<client>`, merging with what is there.
fn add_access(
    e: &mut Map<String, Value>,
    realm_roles: &[String],
    client_roles: &BTreeMap<String, Vec<String>>,
) {
    if !realm_roles.is_empty()
        && let Some(ra) = e
            .entry("realm_access")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    {
        merge_roles(ra, realm_roles);
    }
    if client_roles.is_empty() {
        return;
    }
    if let Some(by) = e
        .entry("resource_access")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        for (cid, names) in client_roles {
            if let Some(x) = by
                .entry(cid.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                merge_roles(x, names);
            }
        }
    }
}

/// The claims of a grant's tokens, before signing.
pub struct Claims {
    pub access: Map<String, Value>,
    /// The ID token's claims (without `at_hash`, which needs the signed
    /// access token), when asked for.
    pub id: Option<Map<String, Value>>,
    /// Access (and ID) token lifetime, seconds.
    pub lifespan: i64,
    /// The realm's issuer (the refresh token names it too).
    pub issuer: String,
}

/// Builds the claims `g` gives at `now`: the access token's always, the ID
/// token's when `with_id` (the token endpoint asks for them when the scope
/// has `openid`; the admin API's example tokens always).
pub async fn claims(
    idp: &Idp,
    g: &Grant<'_>,
    now: i64,
    with_id: bool,
) -> Result<Claims, OAuthError> {
    let all_scopes = idp.client_scopes(g.realm).await?;
    let scopes = effective_scopes(g.client, &all_scopes, &g.scope);
    let id = idp
        .identity(g.realm, g.user)
        .await?
        .scoped_to(idp, g.realm, g.client, &scopes)
        .await?;
    let issuer = idp.issuer(&g.realm.name);
    let lifespan = within_session(g, now, access_lifespan(g, now));
    let mut aud: BTreeSet<String> = BTreeSet::new();

    let mut at = Map::new();
    at.insert("exp".into(), json!(now + lifespan));
    at.insert("iat".into(), json!(now));
    at.insert("jti".into(), json!(gatehouse_core::id::uuid()));
    at.insert("iss".into(), json!(issuer));
    // Pairwise for a client with Keycloak's pairwise mapper.
    let sub = crate::pairwise::sub_for(g.client, &g.user.id).map_err(OAuthError::internal)?;
    at.insert("sub".into(), json!(sub));
    at.insert(
        "typ".into(),
        json!(crate::oidc::dpop::token_type(g.dpop.is_some())),
    );
    if let Some(jkt) = &g.dpop {
        at.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    at.insert("azp".into(), json!(g.client.client_id));
    if let Some(s) = g.session {
        at.insert("sid".into(), json!(s.id));
    }
    at.insert("scope".into(), json!(g.scope));
    if g.user.service_account_client_id.is_some() {
        at.insert("client_id".into(), json!(g.client.client_id));
    }
    apply_mappers(&mut at, &mut aud, g, &scopes, &id, Target::Access);
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

    let id_claims = with_id.then(|| {
        let mut it = Map::new();
        it.insert("exp".into(), json!(now + lifespan));
        it.insert("iat".into(), json!(now));
        it.insert("jti".into(), json!(gatehouse_core::id::uuid()));
        it.insert("iss".into(), json!(issuer));
        it.insert("aud".into(), json!(g.client.client_id));
        it.insert("sub".into(), json!(sub));
        it.insert("typ".into(), json!("ID"));
        it.insert("azp".into(), json!(g.client.client_id));
        if let Some(n) = &g.nonce {
            it.insert("nonce".into(), json!(n));
        }
        if let Some(s) = g.session {
            it.insert("sid".into(), json!(s.id));
        }
        let mut ignored = BTreeSet::new();
        apply_mappers(&mut it, &mut ignored, g, &scopes, &id, Target::Id);
        it
    });
    Ok(Claims {
        access: at,
        id: id_claims,
        lifespan,
        issuer,
    })
}

/// The client attribute naming the algorithm of its access tokens.
pub const ACCESS_ALG: &str = "access.token.signed.response.alg";
/// The client attribute naming the algorithm of its ID tokens.
pub const ID_ALG: &str = "id.token.signed.response.alg";
/// The client attribute that makes its userinfo answers signed JWTs
/// (OIDC Core §5.3.2) with the algorithm it names.
pub const USERINFO_ALG: &str = "user.info.response.signature.alg";

/// The key that signs the grant's client's tokens of the kind `attribute`
/// names (`keyring::client_signer`).
async fn signer(
    idp: &Idp,
    g: &Grant<'_>,
    ring: &KeyRing,
    attribute: &str,
) -> Result<Arc<SigningKey>, OAuthError> {
    crate::keyring::client_signer(idp, g.realm, ring, g.client, attribute).await
}

/// The JSON a token endpoint returns.
pub async fn issue(idp: &Idp, ring: &KeyRing, g: &Grant<'_>) -> Result<Value, OAuthError> {
    let now = gatehouse_core::time::now();
    let wants_id = g.scope.split(' ').any(|s| s == "openid");
    let Claims {
        access,
        id,
        lifespan,
        issuer,
    } = claims(idp, g, now, wants_id).await?;
    let access_token =
        gatehouse_jose::sign::sign(signer(idp, g, ring, ACCESS_ALG).await?.as_ref(), &access)?;

    let mut out = Map::new();
    out.insert("access_token".into(), json!(access_token));
    out.insert("expires_in".into(), json!(lifespan));
    out.insert(
        "token_type".into(),
        json!(crate::oidc::dpop::token_type(g.dpop.is_some())),
    );
    out.insert("not-before-policy".into(), json!(0));
    out.insert("scope".into(), json!(g.scope));

    if let Some(mut it) = id {
        let signer = signer(idp, g, ring, ID_ALG).await?;
        it.insert(
            "at_hash".into(),
            json!(at_hash(signer.alg(), &access_token)),
        );
        out.insert(
            "id_token".into(),
            json!(gatehouse_jose::sign::sign(signer.as_ref(), &it)?),
        );
    }

    if let (true, Some(s)) = (g.refresh, g.session) {
        let exp = g.realm.session_ends(s, Some(g.client), now);
        let mut rt = json!({
            "exp": exp, "iat": now, "jti": s.refresh_token_id.clone().unwrap_or_else(gatehouse_core::id::uuid),
            "iss": issuer, "aud": issuer, "sub": g.user.id,
            "typ": if s.offline { "Offline" } else { "Refresh" },
            "azp": g.client.client_id, "sid": s.id, "scope": g.scope,
        });
        // RFC 9449 §5: a public client's refresh token is bound to its key
        // too (a confidential client's is guarded by its secret).
        if let (Some(jkt), true) = (&g.dpop, g.client.public_client) {
            rt["cnf"] = json!({ "jkt": jkt });
        }
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

/// What the authorization endpoint itself hands out in the implicit and
/// hybrid flows (OIDC Core §3.2.2.5, §3.3.2.5), as fragment parameters:
/// the access token with `token`, the ID token with `id_token` (with
/// `at_hash` when the access token travels with it, `c_hash` for `code`,
/// `s_hash` for `state`). Never a refresh token from the front channel.
pub async fn front_channel(
    idp: &Idp,
    ring: &KeyRing,
    g: &Grant<'_>,
    with_token: bool,
    with_id: bool,
    code: Option<&str>,
    state: Option<&str>,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let now = gatehouse_core::time::now();
    let Claims { mut access, id, .. } = claims(idp, g, now, with_id).await?;
    // Keycloak gives front-channel access tokens their own lifespan.
    let lifespan = within_session(g, now, g.realm.implicit_token_lifespan());
    access.insert("exp".into(), json!(now + lifespan));
    let mut out = Vec::new();
    let access_token = if with_token {
        let signer = signer(idp, g, ring, ACCESS_ALG).await?;
        let t = gatehouse_jose::sign::sign(signer.as_ref(), &access)?;
        out.push(("access_token", t.clone()));
        out.push(("token_type", "Bearer".to_owned()));
        out.push(("expires_in", lifespan.to_string()));
        Some(t)
    } else {
        None
    };
    if let Some(mut it) = id {
        let signer = signer(idp, g, ring, ID_ALG).await?;
        if let Some(t) = &access_token {
            it.insert("at_hash".into(), json!(at_hash(signer.alg(), t)));
        }
        if let Some(c) = code {
            it.insert("c_hash".into(), json!(at_hash(signer.alg(), c)));
        }
        if let Some(st) = state {
            it.insert("s_hash".into(), json!(at_hash(signer.alg(), st)));
        }
        out.push((
            "id_token",
            gatehouse_jose::sign::sign(signer.as_ref(), &it)?,
        ));
    }
    Ok(out)
}

/// The claims userinfo returns for a user and scope.
pub async fn userinfo(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    (user, session): (&User, Option<&Session>),
    scope: &str,
) -> Result<Value, OAuthError> {
    let all_scopes = idp.client_scopes(realm).await?;
    let scopes = effective_scopes(client, &all_scopes, scope);
    let id = idp
        .identity(realm, user)
        .await?
        .scoped_to(idp, realm, client, &scopes)
        .await?;
    let mut c = Map::new();
    let sub = crate::pairwise::sub_for(client, &user.id).map_err(OAuthError::internal)?;
    c.insert("sub".into(), json!(sub));
    let g = Grant {
        realm,
        client,
        user,
        session,
        scope: scope.to_owned(),
        nonce: None,
        resources: vec![],
        refresh: false,
        dpop: None,
    };
    let mut ignored = BTreeSet::new();
    apply_mappers(&mut c, &mut ignored, &g, &scopes, &id, Target::UserInfo);
    Ok(Value::Object(c))
}

/// The access token lifespan before the session's end is applied: the
/// client's override or the realm's. Keycloak's "until the session's
/// maximum" counts from the session's start and takes the realm's SSO
/// maximum (remember-me's when the session has it), even for an offline
/// session; a grant without a session starts one now.
fn access_lifespan(g: &Grant<'_>, now: i64) -> i64 {
    use gatehouse_core::model::TokenLifespan;
    match g.client.access_token_lifespan() {
        Some(TokenLifespan::Seconds(s)) => s,
        Some(TokenLifespan::SessionMax) => match g.session {
            Some(s) => s.started + g.realm.session_limits(s.remember_me).1 - now,
            None => g.realm.session_limits(false).1,
        },
        None => g.realm.access_token_lifespan,
    }
}

/// `lifespan` cut to what is left of the grant's session at `now`
/// ([`Realm::session_max_end`]): a token issued near the end of a session
/// ends with it, as Keycloak's do.
fn within_session(g: &Grant<'_>, now: i64, lifespan: i64) -> i64 {
    match g.session.and_then(|s| g.realm.session_max_end(s, g.client)) {
        Some(end) => lifespan.min(end - now).max(0),
        None => lifespan,
    }
}

/// OIDC's left-half hash of a token, code or state (`at_hash`, `c_hash`,
/// `s_hash`) for the signing algorithm, base64url.
fn at_hash(alg: gatehouse_jose::keys::Alg, token: &str) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(alg.digest(), token.as_bytes());
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
        let mut scopes = gatehouse_core::model::builtin_client_scopes("r");
        scopes.push(ClientScope::new("r", "orders:read"));
        scopes.push(ClientScope::new("r", "not-on-client"));
        let mut c = Client::new("r", "app");
        c.optional_client_scopes.push("orders:read".into());
        assert_eq!(
            granted_scope(&c, &scopes, Some("openid")).expect("ok"),
            "openid profile email"
        );
        assert_eq!(
            granted_scope(&c, &scopes, Some("openid orders:read roles")).expect("ok"),
            "openid profile email orders:read"
        );
        for bad in ["nope", "not-on-client"] {
            assert_eq!(
                granted_scope(&c, &scopes, Some(bad))
                    .expect_err("bad")
                    .error,
                "invalid_scope"
            );
        }
        let names = |scope: &str| -> Vec<String> {
            effective_scopes(&c, &scopes, scope)
                .iter()
                .map(|s| s.name.clone())
                .collect()
        };
        assert!(names("openid profile email").contains(&"roles".to_owned()));
        assert!(!names("openid profile email").contains(&"orders:read".to_owned()));
        assert!(names("openid orders:read").contains(&"orders:read".to_owned()));
    }
}
