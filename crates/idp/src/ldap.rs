//! The LDAP side of user federation: a Keycloak `ldap` user-storage
//! provider's settings (its component config, Keycloak's key names) and
//! the directory operations Gatehouse needs of it: find a user, check a
//! password by binding as the user, list users for a sync, test the
//! connection. What is done with the answers (importing users, logging
//! them in) is `user_storage.rs`.
//!
//! Read-only, as Keycloak's `READ_ONLY` edit mode: nothing is written to
//! the directory. What an entry's attributes become (names, e-mail, user
//! attributes, groups, roles) is the provider's mappers' business
//! (`ldap/mappers.rs`); the username comes from `usernameLDAPAttribute`.

pub mod mappers;

use crate::admin::components::Component;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use mappers::{GroupPath, Mappers, Membership, Strategy};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The provider type of user-storage components (Keycloak's name).
pub const STORAGE_TYPE: &str = "org.keycloak.storage.UserStorageProvider";
/// The one user-storage provider Gatehouse runs.
pub const PROVIDER_ID: &str = "ldap";
/// The user attribute that keeps the directory's id of an imported user.
pub const LDAP_ID: &str = "LDAP_ID";
/// The user attribute that keeps an imported user's entry DN.
pub const LDAP_ENTRY_DN: &str = "LDAP_ENTRY_DN";

/// Why a directory operation failed; the text is for the admin and the
/// log, never for a user logging in.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("LDAP connection failed: {0}")]
    Connect(String),
    #[error("LDAP bind as the provider's bind DN failed: {0}")]
    Bind(String),
    #[error("LDAP search failed: {0}")]
    Search(String),
    #[error("the LDAP provider is misconfigured: {0}")]
    Config(String),
}

/// A provider's settings, read from its component config.
#[derive(Debug, Clone)]
pub struct LdapProvider {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub import_enabled: bool,
    pub priority: i64,
    /// Keycloak's `UNSYNCED` edit mode: changes (a new password) stay in
    /// Gatehouse; `READ_ONLY` refuses them.
    pub unsynced: bool,
    /// Keycloak's `fullSyncPeriod` / `changedSyncPeriod` in seconds; None
    /// (-1 in the config) for no periodic sync.
    pub full_sync_period: Option<i64>,
    pub changed_sync_period: Option<i64>,
    /// Keycloak's `trustEmail`: imported e-mail addresses count as verified.
    pub trust_email: bool,
    /// When the last sync started (Unix seconds, the config's `lastSync`).
    pub last_sync: Option<i64>,
    url: String,
    start_tls: bool,
    bind: Option<(String, String)>,
    users_dn: String,
    subtree: bool,
    username_attr: String,
    uuid_attr: String,
    object_classes: Vec<String>,
    custom_filter: Option<String>,
    /// Page size of a sync's search; None without `pagination`.
    page_size: Option<i32>,
    connect_timeout: Duration,
    read_timeout: Duration,
    active_directory: bool,
    /// What the entries' attributes become.
    pub mappers: Mappers,
}

/// One directory user, as Gatehouse keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapUser {
    pub dn: String,
    pub uuid: String,
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// User attributes the attribute mappers name (`createTimestamp`...).
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The entry's values the membership mappers read (by lowercase
    /// attribute name: `memberof`, `uid`).
    pub values: HashMap<String, Vec<String>>,
    /// Disabled in Active Directory (`userAccountControl` has
    /// ACCOUNTDISABLE), where the provider has the account-controls mapper.
    pub disabled: bool,
}

/// Deepest group nesting followed (deeper counts as a cycle).
const MAX_NESTING: usize = 32;

fn two_parents(group: &str) -> LdapError {
    LdapError::Config(format!(
        "group {group} has more than one parent group; preserve.group.inheritance cannot map it"
    ))
}

fn in_cycle(group: &str) -> LdapError {
    LdapError::Config(format!("group {group} is nested in a cycle"))
}

/// A group entry as a mapper reads it.
struct GroupEntry {
    dn: String,
    name: String,
    members: Vec<String>,
}

/// Active Directory's `userAccountControl` flag of a disabled account.
const ACCOUNTDISABLE: u32 = 0x2;

/// A period or time in seconds: positive, else none.
fn period(v: Option<&str>) -> Option<i64> {
    v.and_then(|s| s.parse::<i64>().ok()).filter(|n| *n > 0)
}

fn ms(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map(Duration::from_millis)
}

impl LdapProvider {
    /// The provider a component describes; None for other components.
    pub fn from_component(c: &Component) -> Option<LdapProvider> {
        if c.provider_type != STORAGE_TYPE || c.provider_id != PROVIDER_ID {
            return None;
        }
        let get = |k: &str| c.value(k).map(str::trim).filter(|v| !v.is_empty());
        let flag = |k: &str, default: bool| get(k).map_or(default, |v| v == "true");
        let vendor = get("vendor").unwrap_or("other");
        let active_directory = vendor == "ad";
        let username_attr = get("usernameLDAPAttribute")
            .unwrap_or(if active_directory { "cn" } else { "uid" })
            .to_owned();
        let rdn = get("rdnLDAPAttribute").unwrap_or(&username_attr).to_owned();
        let read_only = get("editMode").is_none_or(|m| m != "WRITABLE");
        let rdn_is_cn = rdn.eq_ignore_ascii_case("cn");
        let username_is_cn = username_attr.eq_ignore_ascii_case("cn");
        let bind = match (get("authType").unwrap_or("simple"), get("bindDn")) {
            ("none", _) | (_, None) => None,
            (_, Some(dn)) => Some((
                dn.to_owned(),
                c.value("bindCredential").unwrap_or("").to_owned(),
            )),
        };
        let first_name = if rdn_is_cn && (username_is_cn || !read_only) {
            "givenName"
        } else {
            "cn"
        };
        let mappers = Mappers::from_children(&c.children, &username_attr, active_directory)
            .unwrap_or_else(|| {
                Mappers::defaults(first_name, rdn_is_cn && !username_is_cn && read_only)
            });
        Some(LdapProvider {
            id: c.id.clone(),
            name: c.name.clone(),
            enabled: flag("enabled", true),
            import_enabled: flag("importEnabled", true),
            priority: get("priority").and_then(|p| p.parse().ok()).unwrap_or(0),
            unsynced: get("editMode") == Some("UNSYNCED"),
            full_sync_period: period(get("fullSyncPeriod")),
            changed_sync_period: period(get("changedSyncPeriod")),
            trust_email: flag("trustEmail", false),
            last_sync: period(get("lastSync")),
            url: get("connectionUrl").unwrap_or("").to_owned(),
            start_tls: flag("startTls", false),
            bind,
            users_dn: get("usersDn").unwrap_or("").to_owned(),
            subtree: get("searchScope") == Some("2"),
            uuid_attr: get("uuidLDAPAttribute")
                .unwrap_or(if active_directory {
                    "objectGUID"
                } else {
                    "entryUUID"
                })
                .to_owned(),
            object_classes: get("userObjectClasses")
                .unwrap_or("inetOrgPerson, organizationalPerson")
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            custom_filter: get("customUserSearchFilter").map(str::to_owned),
            page_size: flag("pagination", true).then(|| {
                get("batchSizeForSync")
                    .and_then(|n| n.parse::<i32>().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(1000)
            }),
            connect_timeout: ms(get("connectionTimeout")).unwrap_or(Duration::from_secs(10)),
            read_timeout: ms(get("readTimeout")).unwrap_or(Duration::from_secs(30)),
            active_directory,
            mappers,
            username_attr,
        })
    }

    /// Keycloak's checks of an LDAP provider's config when it is saved;
    /// the message is Keycloak's key where it has one.
    pub fn validate(c: &Component) -> Result<(), String> {
        let get = |k: &str| c.value(k).map(str::trim).filter(|v| !v.is_empty());
        match get("editMode") {
            None => return Err("ldapErrorEditModeMandatory".into()),
            Some("READ_ONLY" | "UNSYNCED") => {}
            Some("WRITABLE") => {
                return Err("Writable LDAP providers are not supported by Gatehouse: \
                            use READ_ONLY or UNSYNCED"
                    .into());
            }
            Some(_) => return Err("ldapErrorEditModeMandatory".into()),
        }
        if get("connectionTimeout").is_some_and(|v| v.parse::<u64>().is_err()) {
            return Err("ldapErrorConnectionTimeoutNotNumber".into());
        }
        if get("readTimeout").is_some_and(|v| v.parse::<u64>().is_err()) {
            return Err("ldapErrorReadTimeoutNotNumber".into());
        }
        for k in ["fullSyncPeriod", "changedSyncPeriod", "batchSizeForSync"] {
            if get(k).is_some_and(|v| v.parse::<i64>().is_err()) {
                return Err(format!("{k} must be a number"));
            }
        }
        if let Some(f) = get("customUserSearchFilter")
            && !(f.starts_with('(') && f.ends_with(')'))
        {
            return Err("ldapErrorInvalidCustomFilter".into());
        }
        if let Some(u) = get("connectionUrl")
            && !u.split(' ').all(|u| {
                u.starts_with("ldap://") || u.starts_with("ldaps://") || u.starts_with("ldapi://")
            })
        {
            return Err("LDAP connection URL must start with ldap://, ldaps:// or ldapi://".into());
        }
        Ok(())
    }

    /// A connection, bound as the provider's bind DN when it has one.
    async fn connect(&self) -> Result<ldap3::Ldap, LdapError> {
        let bind = self
            .bind
            .as_ref()
            .map(|(dn, pw)| (dn.as_str(), pw.as_str()));
        self.connect_as(bind).await
    }

    /// A connection to the first of the provider's URLs that answers
    /// (Keycloak takes a space-separated list and tries each), bound as
    /// `bind` when given; a refused bind is not retried elsewhere.
    async fn connect_as(&self, bind: Option<(&str, &str)>) -> Result<ldap3::Ldap, LdapError> {
        let mut last = LdapError::Config("no connectionUrl".into());
        for url in self.url.split(' ').filter(|u| !u.is_empty()) {
            match self.connect_to(url, bind).await {
                Ok(l) => return Ok(l),
                Err(e @ LdapError::Bind(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn connect_to(
        &self,
        url: &str,
        bind: Option<(&str, &str)>,
    ) -> Result<ldap3::Ldap, LdapError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.start_tls && url.starts_with("ldap://"));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| LdapError::Connect(e.to_string()))?;
        ldap3::drive!(conn);
        if let Some((dn, pw)) = bind {
            ldap.with_timeout(self.read_timeout);
            ldap.simple_bind(dn, pw)
                .await
                .and_then(|r| r.success())
                .map_err(|e| LdapError::Bind(e.to_string()))?;
        }
        Ok(ldap)
    }

    /// The filter for the provider's users, narrowed by `extra`.
    fn filter(&self, extra: &str) -> String {
        and_filter(&self.object_classes, self.custom_filter.as_deref(), extra)
    }

    /// How deep searches go (`searchScope`).
    fn scope(&self) -> Scope {
        if self.subtree {
            Scope::Subtree
        } else {
            Scope::OneLevel
        }
    }

    /// The attributes a user search asks for: what the mappers read.
    fn attributes(&self) -> Vec<&str> {
        let m = &self.mappers;
        let mut out = vec![self.username_attr.as_str(), self.uuid_attr.as_str()];
        out.extend(m.attributes.iter().map(|(_, l)| l.as_str()));
        out.extend(m.full_name.as_deref());
        if m.account_controls {
            out.push("userAccountControl");
        }
        for ms in &m.memberships {
            match ms.strategy {
                Strategy::MemberOf => out.push(&ms.member_of_attr),
                _ if ms.by_uid => out.push(&ms.user_attr),
                _ => {}
            }
        }
        out.sort_unstable_by_key(|a| a.to_ascii_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    /// The provider's users matching `extra`; with `paged`, fetched in
    /// pages of `batchSizeForSync` (RFC 2696) where the provider has
    /// `pagination` on, so a directory's size limit (Active Directory:
    /// 1000) does not cut a sync short.
    async fn search(
        &self,
        ldap: &mut ldap3::Ldap,
        extra: &str,
        paged: bool,
    ) -> Result<Vec<LdapUser>, LdapError> {
        let scope = self.scope();
        let failed = |e: ldap3::LdapError| LdapError::Search(e.to_string());
        let filter = self.filter(extra);
        ldap.with_timeout(self.read_timeout);
        let entries = match self.page_size.filter(|_| paged) {
            None => {
                let r = ldap
                    .search(&self.users_dn, scope, &filter, self.attributes())
                    .await
                    .map_err(failed)?;
                // 4, sizeLimitExceeded, comes with the entries up to the
                // limit (an admin's search asks for a page).
                if r.1.rc != 0 && r.1.rc != 4 {
                    return Err(LdapError::Search(format!("result code {}", r.1.rc)));
                }
                r.0
            }
            Some(size) => {
                let pages = ldap3::adapters::PagedResults::new(size);
                let mut stream = ldap
                    .streaming_search_with(pages, &self.users_dn, scope, &filter, self.attributes())
                    .await
                    .map_err(failed)?;
                let mut entries = vec![];
                while let Some(e) = stream.next().await.map_err(failed)? {
                    entries.push(e);
                }
                stream.finish().await.success().map_err(failed)?;
                entries
            }
        };
        Ok(parsed(entries).filter_map(|e| self.user(e)).collect())
    }

    fn user(&self, e: SearchEntry) -> Option<LdapUser> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in e.attrs {
            let v: Vec<String> = v
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if !v.is_empty() {
                values.entry(k.to_lowercase()).or_default().extend(v);
            }
        }
        let first = |name: &str| {
            values
                .get(&name.to_lowercase())
                .and_then(|v| v.first())
                .cloned()
        };
        let username = first(&self.username_attr)?.to_lowercase();
        let uuid = match first(&self.uuid_attr) {
            Some(u) => u,
            // objectGUID is binary in Active Directory: Keycloak shows it
            // as a UUID string in its byte order.
            None => e
                .bin_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&self.uuid_attr))
                .and_then(|(_, v)| v.first())
                .and_then(|b| guid(b, self.active_directory))?,
        };
        let mut u = LdapUser {
            dn: e.dn,
            uuid,
            username,
            email: None,
            first_name: None,
            last_name: None,
            attributes: BTreeMap::new(),
            values: HashMap::new(),
            disabled: self.mappers.account_controls
                && first("userAccountControl")
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|f| f & ACCOUNTDISABLE != 0),
        };
        if let Some(cn) = self.mappers.full_name.as_deref().and_then(first) {
            match cn.rsplit_once(' ') {
                Some((f, l)) => {
                    (u.first_name, u.last_name) = (Some(f.to_owned()), Some(l.to_owned()))
                }
                None => u.last_name = Some(cn),
            }
        }
        // A name the entry lacks keeps what the full-name mapper made.
        for (model, ldap) in &self.mappers.attributes {
            let v = first(ldap);
            match model.as_str() {
                "email" => u.email = v.map(|m| m.to_lowercase()),
                "firstName" => u.first_name = v.or(u.first_name.take()),
                "lastName" => u.last_name = v.or(u.last_name.take()),
                _ => {
                    if let Some(all) = values.get(&ldap.to_lowercase()) {
                        u.attributes.insert(model.clone(), all.clone());
                    }
                }
            }
        }
        for ms in &self.mappers.memberships {
            let attr = match ms.strategy {
                Strategy::MemberOf => &ms.member_of_attr,
                _ if ms.by_uid => &ms.user_attr,
                _ => continue,
            };
            let key = attr.to_lowercase();
            if let Some(v) = values.get(&key) {
                u.values.insert(key, v.clone());
            }
        }
        Some(u)
    }

    /// The directory groups `user` is in, by membership mapper (in the
    /// order of `mappers.memberships`), as paths (see [`GroupPath`]).
    pub async fn memberships(&self, user: &LdapUser) -> Result<Vec<Vec<GroupPath>>, LdapError> {
        let mut out = Vec::with_capacity(self.mappers.memberships.len());
        let mut ldap = None;
        for m in &self.mappers.memberships {
            let direct: Vec<(String, String)> = if m.strategy == Strategy::MemberOf {
                user.values
                    .get(&m.member_of_attr.to_lowercase())
                    .into_iter()
                    .flatten()
                    .filter(|dn| mappers::is_under(dn, &m.dn))
                    .filter_map(|dn| Some((dn.clone(), mappers::rdn_value(dn, &m.name_attr)?)))
                    .collect()
            } else {
                let member = if m.by_uid {
                    match user
                        .values
                        .get(&m.user_attr.to_lowercase())
                        .and_then(|v| v.first())
                    {
                        Some(v) => v.clone(),
                        None => {
                            out.push(vec![]);
                            continue;
                        }
                    }
                } else {
                    user.dn.clone()
                };
                let rule = if m.strategy == Strategy::ByMemberRecursively {
                    ":1.2.840.113556.1.4.1941:"
                } else {
                    ""
                };
                let extra = format!("({}{rule}={})", m.member_attr, ldap3::ldap_escape(&member));
                let conn = match &mut ldap {
                    Some(c) => c,
                    None => ldap.insert(self.connect().await?),
                };
                let found = self.group_entries(conn, m, &extra, false).await?;
                found.into_iter().map(|g| (g.dn, g.name)).collect()
            };
            let mut paths = Vec::with_capacity(direct.len());
            for (dn, name) in direct {
                if !m.nested {
                    paths.push(vec![name]);
                    continue;
                }
                let conn = match &mut ldap {
                    Some(c) => c,
                    None => ldap.insert(self.connect().await?),
                };
                paths.push(self.path_of(conn, m, &dn, &name).await?);
            }
            out.push(paths);
        }
        if let Some(mut l) = ldap {
            let _ = l.unbind().await;
        }
        Ok(out)
    }

    /// Which of `names` are groups of mapper `m` in the directory (a
    /// membership Gatehouse holds in a group the directory does not have
    /// is not the directory's to remove).
    pub async fn existing(
        &self,
        m: &Membership,
        names: &[String],
    ) -> Result<Vec<String>, LdapError> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let mut extra = String::from("(|");
        for n in names {
            extra.push_str(&format!(
                "({}={})",
                m.name_attr,
                ldap3::ldap_escape(n.as_str())
            ));
        }
        extra.push(')');
        let mut ldap = self.connect().await?;
        let found = self.group_names(&mut ldap, m, &extra).await;
        let _ = ldap.unbind().await;
        found
    }

    /// Mapper `m`'s group entries matching `extra`: DN, name, and with
    /// `members` the values of its member attribute.
    async fn group_entries(
        &self,
        ldap: &mut ldap3::Ldap,
        m: &Membership,
        extra: &str,
        members: bool,
    ) -> Result<Vec<GroupEntry>, LdapError> {
        let f = and_filter(&m.object_classes, m.filter.as_deref(), extra);
        ldap.with_timeout(self.read_timeout);
        let failed = |e: ldap3::LdapError| LdapError::Search(e.to_string());
        let mut attrs = vec![m.name_attr.as_str()];
        if members {
            attrs.push(&m.member_attr);
        }
        let (entries, _) = ldap
            .search(&m.dn, self.scope(), &f, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(failed)?;
        let values = |e: &SearchEntry, attr: &str| -> Vec<String> {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                .map(|(_, v)| {
                    v.iter()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out: Vec<GroupEntry> = parsed(entries)
            .filter_map(|e| {
                let name = values(&e, &m.name_attr).into_iter().next()?;
                let members = if members {
                    values(&e, &m.member_attr)
                } else {
                    vec![]
                };
                Some(GroupEntry {
                    dn: e.dn,
                    name,
                    members,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    /// The names of mapper `m`'s group entries matching `extra`.
    async fn group_names(
        &self,
        ldap: &mut ldap3::Ldap,
        m: &Membership,
        extra: &str,
    ) -> Result<Vec<String>, LdapError> {
        let found = self.group_entries(ldap, m, extra, false).await?;
        Ok(found.into_iter().map(|g| g.name).collect())
    }

    /// The path of group `dn` (named `name`) for mapper `m`, which keeps
    /// the directory's nesting: its ancestors' names, then its own. A
    /// group with two parents cannot be a subgroup of both (Keycloak
    /// refuses it too), and neither can one in a cycle.
    async fn path_of(
        &self,
        ldap: &mut ldap3::Ldap,
        m: &Membership,
        dn: &str,
        name: &str,
    ) -> Result<GroupPath, LdapError> {
        let mut path = vec![name.to_owned()];
        let mut seen = vec![mappers::dn_key(dn)];
        let mut child = dn.to_owned();
        loop {
            let extra = format!("({}={})", m.member_attr, ldap3::ldap_escape(child.as_str()));
            let mut parents = self.group_entries(ldap, m, &extra, false).await?;
            let parent = match parents.len() {
                0 => break,
                1 => parents.remove(0),
                _ => return Err(two_parents(&path[0])),
            };
            let key = mappers::dn_key(&parent.dn);
            if seen.contains(&key) || seen.len() > MAX_NESTING {
                return Err(in_cycle(&path[0]));
            }
            seen.push(key);
            path.insert(0, parent.name);
            child = parent.dn;
        }
        Ok(path)
    }

    /// Every group of mapper `m` as a path (a mapper sync): one search,
    /// with the member lists when the mapper keeps nesting.
    pub async fn group_paths(&self, m: &Membership) -> Result<Vec<GroupPath>, LdapError> {
        let mut ldap = self.connect().await?;
        let found = self.group_entries(&mut ldap, m, "", m.nested).await;
        let _ = ldap.unbind().await;
        let groups = found?;
        if !m.nested {
            return Ok(groups.into_iter().map(|g| vec![g.name]).collect());
        }
        let index: HashMap<String, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (mappers::dn_key(&g.dn), i))
            .collect();
        // Each group's parent: the one group listing it as a member.
        let mut parent: Vec<Option<usize>> = vec![None; groups.len()];
        for (i, g) in groups.iter().enumerate() {
            for member in &g.members {
                if let Some(&c) = index.get(&mappers::dn_key(member)) {
                    if parent[c].is_some_and(|p| p != i) {
                        return Err(two_parents(&groups[c].name));
                    }
                    parent[c] = Some(i);
                }
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (i, g) in groups.iter().enumerate() {
            let mut path = vec![g.name.clone()];
            let mut at = i;
            while let Some(p) = parent[at] {
                if path.len() > MAX_NESTING {
                    return Err(in_cycle(&g.name));
                }
                path.insert(0, groups[p].name.clone());
                at = p;
            }
            out.push(path);
        }
        Ok(out)
    }

    /// The directory's user named `username` (by the username attribute,
    /// or by `mail` when `by_email`).
    pub async fn find(
        &self,
        username: &str,
        by_email: bool,
    ) -> Result<Option<LdapUser>, LdapError> {
        let attr = if by_email {
            "mail"
        } else {
            &self.username_attr
        };
        let extra = format!("({attr}={})", ldap3::ldap_escape(username));
        let mut found = self.query(&extra, false, None).await?;
        // Several entries for one name: ambiguous, so nobody (Keycloak
        // refuses such a login too).
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// The directory's users an admin's search names, at most `limit`:
    /// `search` as a substring of the username, e-mail or names (`*` its
    /// own wildcard; an exact search without one), or `username` / `email`
    /// (exactly with `exact`, else as substrings).
    pub async fn matching(
        &self,
        q: &gatehouse_store::UserQuery,
        limit: i32,
    ) -> Result<Vec<LdapUser>, LdapError> {
        let like = |attr: &str, v: &str, exact: bool| {
            let v = v.trim_matches('*');
            let v = ldap3::ldap_escape(v);
            if exact {
                format!("({attr}={v})")
            } else {
                format!("({attr}=*{v}*)")
            }
        };
        let mut extra = String::new();
        if let Some(s) = q
            .search
            .as_deref()
            .filter(|s| !s.trim_matches('*').is_empty())
        {
            extra.push_str("(|");
            for attr in [self.username_attr.as_str(), "mail", "cn", "sn", "givenName"] {
                extra.push_str(&like(attr, s, q.exact));
            }
            extra.push(')');
        }
        if let Some(u) = q.username.as_deref().filter(|s| !s.is_empty()) {
            extra.push_str(&like(&self.username_attr, u, q.exact));
        }
        if let Some(e) = q.email.as_deref().filter(|s| !s.is_empty()) {
            extra.push_str(&like("mail", e, q.exact));
        }
        if extra.is_empty() {
            return Ok(vec![]);
        }
        self.query(&extra, false, Some(limit.max(1))).await
    }

    /// Every user of the provider; with `since` (LDAP generalized time),
    /// those created or changed since.
    pub async fn users(&self, since: Option<&str>) -> Result<Vec<LdapUser>, LdapError> {
        let (created, modified) = if self.active_directory {
            ("whenCreated", "whenChanged")
        } else {
            ("createTimestamp", "modifyTimestamp")
        };
        let extra = since
            .map(|t| format!("(|({created}>={t})({modified}>={t}))"))
            .unwrap_or_default();
        self.query(&extra, true, None).await
    }

    /// One search on a connection of its own, as the bind DN: the
    /// provider's users matching `extra` (paged or at most `limit`).
    async fn query(
        &self,
        extra: &str,
        paged: bool,
        limit: Option<i32>,
    ) -> Result<Vec<LdapUser>, LdapError> {
        let mut ldap = self.connect().await?;
        if let Some(n) = limit {
            ldap.with_search_options(ldap3::SearchOptions::new().sizelimit(n));
        }
        let found = self.search(&mut ldap, extra, paged).await;
        let _ = ldap.unbind().await;
        found
    }

    /// Whether `password` is `dn`'s: a bind as the user. An empty password
    /// is never tried: LDAP takes it as an anonymous bind, which succeeds.
    pub async fn check_password(&self, dn: &str, password: &str) -> Result<bool, LdapError> {
        if password.is_empty() || dn.is_empty() {
            return Ok(false);
        }
        // Connected without the bind DN: the bind below is the check.
        let mut ldap = self.connect_as(None).await?;
        ldap.with_timeout(self.read_timeout);
        let r = ldap.simple_bind(dn, password).await;
        let _ = ldap.unbind().await;
        match r {
            // 49: invalidCredentials (also an unknown DN, or a locked
            // account in Active Directory).
            Ok(r) if r.rc == 0 => Ok(true),
            Ok(r) if r.rc == 49 || r.rc == 32 || r.rc == 53 => Ok(false),
            Ok(r) => Err(LdapError::Bind(format!("result code {}", r.rc))),
            Err(e) => Err(LdapError::Connect(e.to_string())),
        }
    }
}

/// `(&(objectClass=...)...{custom}{extra})`: entries of all of `classes`,
/// narrowed by a configured filter and by `extra`.
fn and_filter(classes: &[String], custom: Option<&str>, extra: &str) -> String {
    let mut f = String::from("(&");
    for oc in classes {
        f.push_str(&format!(
            "(objectClass={})",
            ldap3::ldap_escape(oc.as_str())
        ));
    }
    f.push_str(custom.unwrap_or(""));
    f.push_str(extra);
    f.push(')');
    f
}

/// A search's entries, parsed. ldap3 panics on an entry it cannot parse:
/// one bad entry from the directory must not take the request down.
fn parsed(entries: Vec<ldap3::ResultEntry>) -> impl Iterator<Item = SearchEntry> {
    entries.into_iter().filter_map(|re| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(re))).ok()
    })
}

/// Keycloak's connection test (`/testLDAPConnection`): connect to `url`
/// (the provider's URL-list, StartTLS and timeout rules), and bind as
/// `bind` when given.
pub async fn test_connection(
    url: &str,
    start_tls: bool,
    timeout: Option<&str>,
    bind: Option<(&str, &str)>,
) -> Result<(), LdapError> {
    let mut config = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        config.insert(k.into(), serde_json::json!([v]));
    };
    put("connectionUrl", url);
    put("startTls", if start_tls { "true" } else { "false" });
    if let Some(t) = timeout {
        put("connectionTimeout", t);
    }
    let c = Component {
        provider_id: PROVIDER_ID.into(),
        provider_type: STORAGE_TYPE.into(),
        config,
        ..Default::default()
    };
    let p = LdapProvider::from_component(&c).ok_or_else(|| LdapError::Config("provider".into()))?;
    let mut ldap = p.connect_as(bind).await?;
    let _ = ldap.unbind().await;
    Ok(())
}

/// An Active Directory objectGUID as text (its first three fields are
/// little-endian); other binary ids as hex.
fn guid(b: &[u8], active_directory: bool) -> Option<String> {
    if active_directory && b.len() == 16 {
        let o = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        let hex: Vec<String> = o.iter().map(|i| format!("{:02x}", b[*i])).collect();
        return Some(format!(
            "{}-{}-{}-{}-{}",
            hex[0..4].concat(),
            hex[4..6].concat(),
            hex[6..8].concat(),
            hex[8..10].concat(),
            hex[10..16].concat()
        ));
    }
    (!b.is_empty()).then(|| b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn component(config: serde_json::Value) -> Component {
        Component {
            id: "c1".into(),
            name: "ldap".into(),
            provider_id: PROVIDER_ID.into(),
            provider_type: STORAGE_TYPE.into(),
            config: config.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn user_filters_escape_what_the_caller_typed() {
        let p = LdapProvider::from_component(&component(json!({
            "userObjectClasses": ["inetOrgPerson, organizationalPerson"],
            "customUserSearchFilter": ["(ou=staff)"],
        })));
        let f = p.map(|p| p.filter(&format!("(uid={})", ldap3::ldap_escape("*)(uid=*"))));
        assert_eq!(
            f.as_deref(),
            Some(
                "(&(objectClass=inetOrgPerson)(objectClass=organizationalPerson)(ou=staff)(uid=\\2a\\29\\28uid=\\2a))"
            )
        );
    }

    #[test]
    fn keycloak_config_checks() {
        let ok = component(json!({"editMode": ["READ_ONLY"]}));
        assert_eq!(LdapProvider::validate(&ok), Ok(()));
        let none = component(json!({}));
        assert_eq!(
            LdapProvider::validate(&none).map_err(|e| e == "ldapErrorEditModeMandatory"),
            Err(true)
        );
        let filter =
            component(json!({"editMode": ["READ_ONLY"], "customUserSearchFilter": ["ou=x"]}));
        assert_eq!(
            LdapProvider::validate(&filter).map_err(|e| e == "ldapErrorInvalidCustomFilter"),
            Err(true)
        );
        let timeout = component(json!({"editMode": ["UNSYNCED"], "readTimeout": ["soon"]}));
        assert_eq!(
            LdapProvider::validate(&timeout).map_err(|e| e == "ldapErrorReadTimeoutNotNumber"),
            Err(true)
        );
    }

    #[test]
    fn active_directory_account_controls_disable_users() {
        let mut ad = component(
            json!({"vendor": ["ad"], "usernameLDAPAttribute": ["sAMAccountName"],
            "rdnLDAPAttribute": ["cn"]}),
        );
        let mut new_id = || "m".to_owned();
        ad.children = mappers::defaults_for(&ad, &mut new_id);
        let p = LdapProvider::from_component(&ad);
        let entry = |flags: &str| SearchEntry {
            dn: "cn=Jo Doe,ou=people".into(),
            attrs: HashMap::from([
                ("sAMAccountName".to_owned(), vec!["jdoe".to_owned()]),
                ("objectGUID".to_owned(), vec!["g".to_owned()]),
                ("cn".to_owned(), vec!["Jo Doe".to_owned()]),
                ("userAccountControl".to_owned(), vec![flags.to_owned()]),
            ]),
            bin_attrs: HashMap::new(),
        };
        let read = |flags: &str| p.as_ref().and_then(|p| p.user(entry(flags)));
        assert_eq!(read("514").map(|u| u.disabled), Some(true));
        assert_eq!(read("512").map(|u| u.disabled), Some(false));
        // cn as RDN and another username: the full name is split.
        assert_eq!(
            read("512").map(|u| (u.first_name, u.last_name)),
            Some((Some("Jo".into()), Some("Doe".into())))
        );
    }

    #[test]
    fn active_directory_guids_read_as_keycloak_shows_them() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            guid(&b, true).as_deref(),
            Some("03020100-0504-0706-0809-0a0b0c0d0e0f")
        );
    }
}
