//! Keycloak's `realm-management` roles, the narrower administrators of one
//! realm: which of them lets a token of that realm make an admin call, and
//! which of them such an administrator may hand on.
//!
//! Scripts and backends commonly run as a service account holding only
//! `manage-users` (plus `view-realm` to look roles up) rather than the
//! master `admin`; Keycloak answers them per call, by resource, and so does
//! this table. `realm-admin` holds every role here and may make any call on
//! its realm.

/// Every `realm-management` role but `realm-admin`: the ones that let a
/// caller read the realm's name (Keycloak's `requireViewRealmNameList`) and
/// list roles, whatever else they allow.
pub const ANY: &[&str] = &[
    "manage-realm",
    "view-realm",
    "manage-users",
    "view-users",
    "query-users",
    "query-groups",
    "manage-clients",
    "view-clients",
    "query-clients",
    "create-client",
    "manage-events",
    "view-events",
    "manage-identity-providers",
    "view-identity-providers",
    "manage-authorization",
    "view-authorization",
    "impersonation",
    "query-realms",
];

const VIEW_REALM: &[&str] = &["view-realm", "manage-realm"];
const MANAGE_REALM: &[&str] = &["manage-realm"];
const VIEW_USERS: &[&str] = &["view-users", "manage-users"];
const QUERY_USERS: &[&str] = &["query-users", "view-users", "manage-users"];
/// The user profile's schema (attribute names, validations, permissions):
/// for administrators of the realm or of its users, not for any admin role
/// (a `create-client`-only account read it in Keycloak, CVE-2025-14083).
const READ_PROFILE: &[&str] = &[
    "view-realm",
    "manage-realm",
    "query-users",
    "view-users",
    "manage-users",
];
const QUERY_GROUPS: &[&str] = &["query-groups", "view-users", "manage-users"];
const MANAGE_USERS: &[&str] = &["manage-users"];
const VIEW_CLIENTS: &[&str] = &["view-clients", "manage-clients"];
const QUERY_CLIENTS: &[&str] = &["query-clients", "view-clients", "manage-clients"];
const CREATE_CLIENT: &[&str] = &["create-client", "manage-clients"];
const MANAGE_CLIENTS: &[&str] = &["manage-clients"];
const VIEW_AUTHZ: &[&str] = &["view-authorization", "manage-authorization"];
const MANAGE_AUTHZ: &[&str] = &["manage-authorization"];
const VIEW_EVENTS: &[&str] = &["view-events", "manage-events"];
const MANAGE_EVENTS: &[&str] = &["manage-events"];
const VIEW_IDPS: &[&str] = &["view-identity-providers", "manage-identity-providers"];
const MANAGE_IDPS: &[&str] = &["manage-identity-providers"];
const VIEW_ROLES: &[&str] = &[
    "view-realm",
    "manage-realm",
    "view-clients",
    "manage-clients",
];
const VIEW_SCOPES: &[&str] = &[
    "view-realm",
    "manage-realm",
    "view-clients",
    "manage-clients",
];

/// The roles (besides `realm-admin`) that let a realm's own token make a
/// call on `rest`, the path after `/admin/realms/{realm}/` (empty for the
/// realm itself); `write` for anything but GET and HEAD. Empty: only
/// `realm-admin` may. As Keycloak's default admin permissions: users and
/// groups by `manage-users` (read by `view-users`, listed by the query
/// roles), clients and client scopes by `manage-clients` (created also by
/// `create-client`), realm roles and realm settings by `manage-realm`,
/// events by `manage-events`, identity providers by their roles,
/// impersonation by `impersonation`, a client's authorization services by
/// `manage-authorization` (read by `view-authorization`). A client's secret is read with
/// `manage-clients` alone. Gatehouse's gateway API keys and partial imports
/// (which write users, clients and roles at once) stay with `realm-admin`.
pub fn granting(write: bool, rest: &str) -> &'static [&'static str] {
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    let third = parts.next();
    match (first, second, write) {
        // The realm: anyone with an admin role reads its name (the handler
        // shows the rest to view-realm only); deleting it is managing it.
        ("", None, false) => ANY,
        ("", None, true) => MANAGE_REALM,
        ("users", Some("profile"), false) => READ_PROFILE,
        ("users", Some("profile"), true) => MANAGE_REALM,
        ("users", Some(_), true) if third == Some("impersonation") => &["impersonation"],
        ("users", None | Some("count"), false) => QUERY_USERS,
        ("users", Some(_), false) => VIEW_USERS,
        ("users", _, true) => MANAGE_USERS,
        ("groups", None | Some("count"), false) => QUERY_GROUPS,
        ("groups" | "group-by-path", _, false) => VIEW_USERS,
        ("groups", _, true) => MANAGE_USERS,
        // Keycloak's UserStorageProviderResource: users().requireView /
        // requireManage; its connection test is realm management.
        ("user-storage", _, false) => VIEW_USERS,
        ("user-storage", _, true) => MANAGE_USERS,
        ("testLDAPConnection" | "ldap-server-capabilities", _, _) => MANAGE_REALM,
        ("attack-detection", _, false) => VIEW_USERS,
        ("attack-detection" | "logout-all", _, true) => MANAGE_USERS,
        ("sessions", _, true) => MANAGE_USERS,
        ("roles", None, false) => ANY,
        ("roles" | "roles-by-id", _, false) => VIEW_ROLES,
        ("roles" | "roles-by-id", _, true) => MANAGE_REALM,
        ("clients", None, false) => QUERY_CLIENTS,
        ("clients", None, true) => CREATE_CLIENT,
        ("clients", Some(_), _) if third == Some("client-secret") => MANAGE_CLIENTS,
        // A client's Authorization Services: Keycloak's authorization roles.
        ("clients", Some(_), false) if third == Some("authz") => VIEW_AUTHZ,
        ("clients", Some(_), true) if third == Some("authz") => MANAGE_AUTHZ,
        ("clients", Some(_), false) => VIEW_CLIENTS,
        ("clients", Some(_), true) => MANAGE_CLIENTS,
        (
            "client-scopes"
            | "clients-initial-access"
            | "client-registration-policy"
            | "client-policies",
            _,
            false,
        ) => VIEW_CLIENTS,
        (
            "client-scopes"
            | "clients-initial-access"
            | "client-registration-policy"
            | "client-policies",
            _,
            true,
        ) => MANAGE_CLIENTS,
        ("default-default-client-scopes" | "default-optional-client-scopes", _, false) => {
            VIEW_SCOPES
        }
        ("events" | "admin-events", _, false) => VIEW_EVENTS,
        ("events" | "admin-events", _, true) => MANAGE_EVENTS,
        ("identity-provider", _, false) => VIEW_IDPS,
        ("identity-provider", _, true) => MANAGE_IDPS,
        (
            "keys"
            | "components"
            | "authentication"
            | "localization"
            | "client-session-stats"
            | "partial-export"
            | "default-groups"
            | "organizations"
            | "users-management-permissions",
            _,
            false,
        ) => VIEW_REALM,
        (
            "keys"
            | "components"
            | "authentication"
            | "localization"
            | "default-groups"
            | "organizations"
            | "users-management-permissions"
            | "push-revocation"
            | "default-default-client-scopes"
            | "default-optional-client-scopes"
            | "clear-realm-cache"
            | "clear-user-cache"
            | "clear-keys-cache"
            | "clear-crl-cache",
            _,
            true,
        ) => MANAGE_REALM,
        _ => &[],
    }
}

/// Whether an administrator holding `held` (its `realm-management` roles,
/// composites expanded) may grant the `realm-management` role `role`, to a
/// user or group or as a composite: Keycloak's `checkAdminRoles`. A role it
/// holds, yes; otherwise one whose power it has by another name (a user
/// manager may make another `view-users`), the query roles always, and
/// never `realm-admin` or a role it lacks the power of.
pub fn may_grant(held: &[String], role: &str) -> bool {
    let has = |any: &[&str]| held.iter().any(|h| any.contains(&h.as_str()));
    if held.iter().any(|h| h == role) {
        return true;
    }
    match role {
        "query-users" | "query-groups" | "query-clients" | "query-realms" => true,
        "manage-clients" | "create-client" => has(MANAGE_CLIENTS),
        "view-clients" => has(VIEW_CLIENTS),
        "manage-users" => has(MANAGE_USERS),
        "view-users" => has(VIEW_USERS),
        "manage-realm" => has(MANAGE_REALM),
        "view-realm" => has(VIEW_REALM),
        "manage-events" => has(MANAGE_EVENTS),
        "view-events" => has(VIEW_EVENTS),
        "manage-identity-providers" => has(MANAGE_IDPS),
        "view-identity-providers" => has(VIEW_IDPS),
        "manage-authorization" => has(&["manage-authorization"]),
        "view-authorization" => has(&["view-authorization", "manage-authorization"]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_managers_manage_users_and_groups_only() {
        for (write, path) in [
            (false, "users"),
            (false, "users/count"),
            (false, "users/u1/role-mappings"),
            (true, "users"),
            (true, "users/u1/reset-password"),
            (true, "users/u1/role-mappings/realm"),
            (true, "groups/g1/children"),
            (false, "group-by-path/a/b"),
            (true, "attack-detection/brute-force/users/u1"),
        ] {
            assert!(granting(write, path).contains(&"manage-users"), "{path}");
        }
        for (write, path) in [
            (true, ""),
            (true, "roles"),
            (false, "roles/r1"),
            (true, "clients"),
            (false, "clients/c1"),
            (true, "users/u1/impersonation"),
            (true, "partialImport"),
            (false, "api-keys"),
            (false, "events"),
        ] {
            assert!(!granting(write, path).contains(&"manage-users"), "{path}");
        }
        // Anyone with a role reads the realm's name and lists roles.
        assert!(granting(false, "").contains(&"query-users"));
        assert!(granting(false, "roles").contains(&"query-users"));
    }

    #[test]
    fn the_table_knows_every_role_realms_are_given() {
        let given: Vec<&str> = crate::bootstrap::REALM_MANAGEMENT_ROLES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let mut any = ANY.to_vec();
        let mut sorted = given.clone();
        any.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(any, sorted);
    }

    #[test]
    fn client_secrets_need_manage_clients() {
        assert_eq!(granting(false, "clients/c1/client-secret"), MANAGE_CLIENTS);
        assert!(granting(false, "clients/c1").contains(&"view-clients"));
        assert!(granting(true, "clients").contains(&"create-client"));
        assert!(!granting(true, "clients/c1").contains(&"create-client"));
    }

    #[test]
    fn authorization_services_need_the_authorization_roles() {
        let rs = "clients/c1/authz/resource-server/policy";
        assert_eq!(granting(true, rs), MANAGE_AUTHZ);
        assert!(granting(false, rs).contains(&"view-authorization"));
        assert!(!granting(true, rs).contains(&"manage-clients"));
    }

    #[test]
    fn grants_stop_at_the_grantors_own_power() {
        let users = vec!["manage-users".to_owned()];
        assert!(may_grant(&users, "manage-users"));
        assert!(may_grant(&users, "view-users"));
        assert!(may_grant(&users, "query-clients"));
        assert!(!may_grant(&users, "manage-realm"));
        assert!(!may_grant(&users, "realm-admin"));
        assert!(!may_grant(&users, "impersonation"));
        assert!(!may_grant(&users, "view-clients"));
        let clients = vec!["manage-clients".to_owned()];
        assert!(may_grant(&clients, "create-client"));
        assert!(may_grant(&clients, "view-clients"));
    }
}
