//! An LDAP provider's mappers: Keycloak's `LDAPStorageMapper`
//! sub-components, which say what of a directory entry becomes what of a
//! user. Attribute mappers decide the user's names, e-mail and
//! attributes; group and role mappers decide the user's groups and role
//! mappings from the directory's group entries; hardcoded mappers give
//! every user of the provider a role, a group or an attribute; Active
//! Directory's account controls disable the users it has disabled.
//!
//! Gatehouse's providers are read-only, so every membership mapper runs
//! as Keycloak's `READ_ONLY` mode does, whatever its `mode`: the
//! directory decides the memberships it names, and `user_storage.rs`
//! brings the user's up to date at the import, at every login and at
//! every sync, so a group removed in the directory is gone from the next
//! token, never left behind in a copy.
//!
//! A provider without mappers (an export that left them out, or one made
//! before Gatehouse ran them) reads what Keycloak's default mappers would.

use crate::admin::components::Component;
use serde_json::json;

/// The provider type of an LDAP provider's mappers (Keycloak's name).
pub const MAPPER_TYPE: &str = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper";

/// The mapper providers Gatehouse runs; others a Keycloak export brings
/// are kept and exported again, but creating one is refused.
pub const PROVIDERS: [&str; 8] = [
    "user-attribute-ldap-mapper",
    "full-name-ldap-mapper",
    "group-ldap-mapper",
    "role-ldap-mapper",
    "hardcoded-ldap-role-mapper",
    "hardcoded-ldap-group-mapper",
    "hardcoded-attribute-mapper",
    "msad-user-account-control-mapper",
];

/// Where a membership mapper puts the directory groups a user is in.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Groups of those names under this group path (`/` for top level).
    Groups(String),
    /// Realm roles of those names.
    RealmRoles,
    /// Roles of those names of the client with this `clientId`.
    ClientRoles(String),
}

/// How the groups of a user are found (Keycloak's
/// `user.roles.retrieve.strategy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Group entries whose member attribute names the user.
    ByMember,
    /// The same, nested groups included (Active Directory's
    /// `LDAP_MATCHING_RULE_IN_CHAIN`).
    ByMemberRecursively,
    /// The user's own `memberOf` values.
    MemberOf,
}

/// A group or role mapper.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The mapper component's id and name.
    pub id: String,
    pub name: String,
    /// Groups under a path, realm roles or a client's roles.
    pub target: Target,
    /// Where the group entries are.
    pub dn: String,
    /// The attribute naming a group entry (its RDN, usually `cn`).
    pub name_attr: String,
    /// Classes a group entry has (all of them), so other entries under
    /// `dn` are not taken for groups.
    pub object_classes: Vec<String>,
    /// An extra LDAP filter the admin set for the group entries.
    pub filter: Option<String>,
    /// The group entry's attribute listing its members (`member`).
    pub member_attr: String,
    /// Members named by a user attribute's value (`memberUid`), not DN.
    pub by_uid: bool,
    /// That user attribute (the username attribute unless set).
    pub user_attr: String,
    /// How a user's groups are found.
    pub strategy: Strategy,
    /// The user attribute listing its groups' DNs (`memberOf`).
    pub member_of_attr: String,
    /// A group mapper's sync removes the groups under its path that the
    /// directory does not have (`drop.non.existing.groups.during.sync`).
    pub drop_missing: bool,
    /// A group mapper keeps the directory's nesting (a group that is a
    /// member of another becomes its subgroup:
    /// `preserve.group.inheritance`).
    pub nested: bool,
}

/// A directory group as a path of group names, from the one under the
/// mapper's `groups.path` down to the group itself (one name when the
/// mapper does not keep nesting, and for roles).
pub type GroupPath = Vec<String>;

/// What a provider's mappers make of its entries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mappers {
    /// (user model attribute, LDAP attribute): `firstName`, `lastName`,
    /// `email`, or a user attribute of that name.
    pub attributes: Vec<(String, String)>,
    /// The LDAP attribute split into first and last name.
    pub full_name: Option<String>,
    pub memberships: Vec<Membership>,
    /// Roles every user of the provider holds (`role` or `client.role`).
    pub roles: Vec<String>,
    /// Group paths every user of the provider is in.
    pub groups: Vec<String>,
    /// (user attribute, value) every user of the provider has.
    pub fixed: Vec<(String, String)>,
    /// Active Directory's `userAccountControl` decides whether a user is
    /// disabled (Keycloak's "MSAD account controls" mapper).
    pub account_controls: bool,
}

fn list(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Mappers {
    /// The mappers of a provider's sub-components; None when it has none,
    /// so that the defaults apply.
    pub fn from_children(
        children: &[Component],
        username_attr: &str,
        active_directory: bool,
    ) -> Option<Mappers> {
        let mappers: Vec<&Component> = children
            .iter()
            .filter(|c| c.provider_type == MAPPER_TYPE)
            .collect();
        if mappers.is_empty() {
            return None;
        }
        let mut out = Mappers::default();
        for c in mappers {
            let get = |k: &str| c.value(k).map(str::trim).filter(|v| !v.is_empty());
            match c.provider_id.as_str() {
                "user-attribute-ldap-mapper" => {
                    if let (Some(m), Some(l)) = (get("user.model.attribute"), get("ldap.attribute"))
                        && m != "username"
                    {
                        out.attributes.push((m.to_owned(), l.to_owned()));
                    }
                }
                "full-name-ldap-mapper" if get("write.only") != Some("true") => {
                    out.full_name =
                        Some(get("ldap.full.name.attribute").unwrap_or("cn").to_owned());
                }
                "group-ldap-mapper" | "role-ldap-mapper" => {
                    if let Some(m) = membership(c, username_attr, active_directory) {
                        out.memberships.push(m);
                    }
                }
                "hardcoded-ldap-role-mapper" => out.roles.extend(get("role").map(str::to_owned)),
                "hardcoded-ldap-group-mapper" => out.groups.extend(get("group").map(str::to_owned)),
                "msad-user-account-control-mapper" => out.account_controls = true,
                "hardcoded-attribute-mapper" => {
                    if let (Some(a), Some(v)) =
                        (get("user.model.attribute"), get("attribute.value"))
                    {
                        out.fixed.push((a.to_owned(), v.to_owned()));
                    }
                }
                _ => {}
            }
        }
        Some(out)
    }

    /// What Keycloak's default mappers read, for a provider without any:
    /// first name from `cn`, or `givenName` where `cn` is the RDN; a
    /// read-only Active Directory with `cn` as RDN and another username
    /// attribute splits `cn` into names; last name `sn`, e-mail `mail`.
    pub fn defaults(first_name: &str, full_name: bool) -> Mappers {
        let mut attributes = vec![
            ("lastName".to_owned(), "sn".to_owned()),
            ("email".to_owned(), "mail".to_owned()),
        ];
        if !full_name {
            attributes.push(("firstName".to_owned(), first_name.to_owned()));
        }
        Mappers {
            attributes,
            full_name: full_name.then(|| "cn".to_owned()),
            ..Default::default()
        }
    }

    /// Whether they change a user's groups or roles.
    pub fn assign(&self) -> bool {
        !self.memberships.is_empty() || !self.roles.is_empty() || !self.groups.is_empty()
    }
}

/// A group or role mapper's own config keys: where its entries are, the
/// attribute naming one, their object classes, and an extra filter.
pub fn membership_keys(roles: bool) -> [&'static str; 4] {
    if roles {
        [
            "roles.dn",
            "role.name.ldap.attribute",
            "role.object.classes",
            "roles.ldap.filter",
        ]
    } else {
        [
            "groups.dn",
            "group.name.ldap.attribute",
            "group.object.classes",
            "groups.ldap.filter",
        ]
    }
}

fn membership(c: &Component, username_attr: &str, active_directory: bool) -> Option<Membership> {
    let get = |k: &str| c.value(k).map(str::trim).filter(|v| !v.is_empty());
    let roles = c.provider_id == "role-ldap-mapper";
    let [dn, name, classes, filter] = membership_keys(roles);
    let target = if !roles {
        Target::Groups(get("groups.path").unwrap_or("/").to_owned())
    } else if get("use.realm.roles.mapping").is_none_or(|v| v == "true") {
        Target::RealmRoles
    } else {
        Target::ClientRoles(get("client.id")?.to_owned())
    };
    let default_class = if active_directory {
        "group"
    } else {
        "groupOfNames"
    };
    Some(Membership {
        id: c.id.clone(),
        name: c.name.clone(),
        target,
        dn: get(dn)?.to_owned(),
        name_attr: get(name).unwrap_or("cn").to_owned(),
        object_classes: list(Some(get(classes).unwrap_or(default_class))),
        filter: get(filter).map(str::to_owned),
        member_attr: get("membership.ldap.attribute")
            .unwrap_or("member")
            .to_owned(),
        by_uid: get("membership.attribute.type") == Some("UID"),
        user_attr: get("membership.user.ldap.attribute")
            .unwrap_or(username_attr)
            .to_owned(),
        strategy: match get("user.roles.retrieve.strategy") {
            Some("GET_GROUPS_FROM_USER_MEMBEROF_ATTRIBUTE")
            | Some("GET_ROLES_FROM_USER_MEMBEROF_ATTRIBUTE") => Strategy::MemberOf,
            Some("LOAD_GROUPS_BY_MEMBER_ATTRIBUTE_RECURSIVELY") => Strategy::ByMemberRecursively,
            _ => Strategy::ByMember,
        },
        member_of_attr: get("memberof.ldap.attribute")
            .unwrap_or("memberOf")
            .to_owned(),
        drop_missing: get("drop.non.existing.groups.during.sync") == Some("true"),
        nested: !roles && get("preserve.group.inheritance") == Some("true"),
    })
}

/// Keycloak's checks of a mapper's config when it is saved.
pub fn validate(c: &Component) -> Result<(), String> {
    let get = |k: &str| c.value(k).map(str::trim).filter(|v| !v.is_empty());
    let need = |k: &str| {
        get(k)
            .map(drop)
            .ok_or_else(|| format!("Attribute '{k}' is required"))
    };
    match c.provider_id.as_str() {
        "user-attribute-ldap-mapper" => {
            need("user.model.attribute")?;
            need("ldap.attribute")
        }
        "full-name-ldap-mapper" | "msad-user-account-control-mapper" => Ok(()),
        "group-ldap-mapper" | "role-ldap-mapper" => {
            let roles = c.provider_id == "role-ldap-mapper";
            let [dn, _, _, filter] = membership_keys(roles);
            need(dn)?;
            need("mode")?;
            if let Some(m) = get("mode")
                && !matches!(m, "READ_ONLY" | "LDAP_ONLY" | "IMPORT")
            {
                return Err(format!("Unknown mode {m}"));
            }
            if let Some(t) = get("membership.attribute.type")
                && !matches!(t, "DN" | "UID")
            {
                return Err(format!("Unknown membership attribute type {t}"));
            }
            if !roles
                && get("preserve.group.inheritance") == Some("true")
                && get("membership.attribute.type") == Some("UID")
            {
                return Err("ldapErrorCantPreserveGroupInheritanceWithUIDMembershipType".into());
            }
            if get(filter).is_some_and(|f| !(f.starts_with('(') && f.ends_with(')'))) {
                return Err("ldapErrorInvalidCustomFilter".into());
            }
            if roles && get("use.realm.roles.mapping") == Some("false") {
                need("client.id")?;
            }
            Ok(())
        }
        "hardcoded-ldap-role-mapper" => need("role"),
        "hardcoded-ldap-group-mapper" => need("group"),
        "hardcoded-attribute-mapper" => {
            need("user.model.attribute")?;
            need("attribute.value")
        }
        other => Err(format!("LDAP mapper {other} is not supported by Gatehouse")),
    }
}

/// The mappers Keycloak creates with a new LDAP provider
/// (`LDAPStorageProviderFactory.onCreate`), for the provider's settings.
pub fn defaults_for(provider: &Component, new_id: &mut dyn FnMut() -> String) -> Vec<Component> {
    let get = |k: &str| provider.value(k).map(str::trim).filter(|v| !v.is_empty());
    let ad = get("vendor") == Some("ad");
    let username = get("usernameLDAPAttribute")
        .unwrap_or(if ad { "cn" } else { "uid" })
        .to_owned();
    let rdn = get("rdnLDAPAttribute").unwrap_or(&username).to_owned();
    let edit = get("editMode").unwrap_or("READ_ONLY");
    let read_only = if edit == "WRITABLE" { "false" } else { "true" };
    let always = if matches!(edit, "READ_ONLY" | "WRITABLE") {
        "true"
    } else {
        "false"
    };
    let mut out = vec![];
    let mut mapper = |name: &str, provider_id: &str, config: serde_json::Value| {
        out.push(Component {
            id: new_id(),
            name: name.to_owned(),
            provider_id: provider_id.to_owned(),
            provider_type: MAPPER_TYPE.to_owned(),
            config: config.as_object().cloned().unwrap_or_default(),
            parent_id: Some(provider.id.clone()),
            ..Default::default()
        });
    };
    let attr = |model: &str, ldap: &str, ro: &str, always: &str, mandatory: &str| {
        json!({"user.model.attribute": [model], "ldap.attribute": [ldap], "read.only": [ro],
               "always.read.value.from.ldap": [always], "is.mandatory.in.ldap": [mandatory]})
    };
    const UA: &str = "user-attribute-ldap-mapper";
    mapper(
        "username",
        UA,
        attr("username", &username, read_only, "false", "true"),
    );
    if rdn.eq_ignore_ascii_case("cn") && !username.eq_ignore_ascii_case("cn") {
        mapper(
            "full name",
            "full-name-ldap-mapper",
            json!({"ldap.full.name.attribute": ["cn"], "read.only": [read_only],
                   "write.only": ["false"]}),
        );
    } else {
        let first = if rdn.eq_ignore_ascii_case("cn") {
            "givenName"
        } else {
            "cn"
        };
        mapper(
            "first name",
            UA,
            attr("firstName", first, read_only, always, "true"),
        );
    }
    mapper(
        "last name",
        UA,
        attr("lastName", "sn", read_only, always, "true"),
    );
    mapper(
        "email",
        UA,
        attr("email", "mail", read_only, "false", "false"),
    );
    let (created, modified) = if ad {
        ("whenCreated", "whenChanged")
    } else {
        ("createTimestamp", "modifyTimestamp")
    };
    mapper(
        "creation date",
        UA,
        attr("createTimestamp", created, "true", always, "false"),
    );
    mapper(
        "modify date",
        UA,
        attr("modifyTimestamp", modified, "true", always, "false"),
    );
    if ad {
        mapper(
            "MSAD account controls",
            "msad-user-account-control-mapper",
            json!({}),
        );
    }
    out
}

/// The value of a DN's first RDN when its attribute is `attr`
/// (`cn=admins,ou=groups` -> `admins`), with its escapes undone.
pub fn rdn_value(dn: &str, attr: &str) -> Option<String> {
    let mut value = String::new();
    let mut chars = dn.chars();
    let mut head = String::new();
    for c in chars.by_ref() {
        if c == '=' {
            break;
        }
        head.push(c);
    }
    if !head.trim().eq_ignore_ascii_case(attr) {
        return None;
    }
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            ',' | '+' => break,
            c => value.push(c),
        }
    }
    let v = value.trim().to_owned();
    (!v.is_empty()).then_some(v)
}

/// A DN in the form DNs are compared in (as Keycloak compares them):
/// lower case, spaces around separators dropped.
pub fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|p| {
            p.split('=')
                .map(|x| x.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `dn` is an entry under `base`.
pub fn is_under(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn_key(dn), dn_key(base));
    dn.len() > base.len() && dn.ends_with(&base) && dn[..dn.len() - base.len()].ends_with(',')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(provider_id: &str, config: serde_json::Value) -> Component {
        Component {
            id: "m".into(),
            name: "m".into(),
            provider_id: provider_id.into(),
            provider_type: MAPPER_TYPE.into(),
            config: config.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn group_names_come_from_the_first_rdn() {
        assert_eq!(
            rdn_value("cn=admins,ou=groups,dc=ex", "cn").as_deref(),
            Some("admins")
        );
        assert_eq!(
            rdn_value("CN=Sales\\, EMEA,OU=Groups", "cn").as_deref(),
            Some("Sales, EMEA")
        );
        assert_eq!(rdn_value("ou=admins,dc=ex", "cn"), None);
        assert!(is_under("cn=a, OU=Groups,dc=ex", "ou=groups,dc=ex"));
        assert!(!is_under("cn=a,ou=othergroups,dc=ex", "ou=groups,dc=ex"));
        assert!(!is_under("ou=groups,dc=ex", "ou=groups,dc=ex"));
    }

    #[test]
    fn membership_mappers_read_keycloaks_keys() {
        let c = mapper(
            "role-ldap-mapper",
            json!({"roles.dn": ["ou=roles,dc=ex"], "use.realm.roles.mapping": ["false"],
                   "client.id": ["app"], "membership.attribute.type": ["UID"],
                   "membership.ldap.attribute": ["memberUid"]}),
        );
        let m = Mappers::from_children(&[c], "uid", false).map(|m| m.memberships);
        let m = m.as_deref().and_then(|m| m.first());
        assert_eq!(
            m.map(|m| &m.target),
            Some(&Target::ClientRoles("app".into()))
        );
        assert_eq!(
            m.map(|m| (m.by_uid, m.user_attr.as_str())),
            Some((true, "uid"))
        );
        assert_eq!(
            validate(&mapper("group-ldap-mapper", json!({"mode": ["READ_ONLY"]}))),
            Err("Attribute 'groups.dn' is required".into())
        );
        assert!(validate(&mapper("certificate-ldap-mapper", json!({}))).is_err());
    }
}
