//! The domain entities. Field names follow Keycloak's concepts so that the
//! admin representations map one to one, but these are not wire types: the
//! identity provider converts them at its edge.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Multi-valued attributes, Keycloak's `Map<String, List<String>>`.
pub type Attributes = BTreeMap<String, Vec<String>>;

/// A realm: a tenant with its own users, clients, keys and token settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Realm {
    pub id: String,
    pub name: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    /// Access token lifetime in seconds (Keycloak default 300).
    pub access_token_lifespan: i64,
    /// SSO session idle timeout in seconds (Keycloak default 1800).
    pub sso_session_idle_timeout: i64,
    /// SSO session maximum lifetime in seconds (Keycloak default 36000).
    pub sso_session_max_lifespan: i64,
    /// Offline session idle timeout (Keycloak default 30 days).
    pub offline_session_idle_timeout: i64,
    /// Keycloak's "revoke refresh token": a refresh token may be used once.
    pub revoke_refresh_token: bool,
    /// Signing algorithm of new keys and tokens: RS256, ES256 or EdDSA.
    pub default_signature_algorithm: String,
    pub brute_force_protected: bool,
    pub failure_factor: i64,
    pub wait_increment_seconds: i64,
    pub max_failure_wait_seconds: i64,
    pub max_delta_time_seconds: i64,
    pub events_enabled: bool,
    pub admin_events_enabled: bool,
    /// Names of the client scopes a new client gets as default scopes.
    #[serde(default = "default_default_scopes")]
    pub default_default_client_scopes: Vec<String>,
    /// Names of the client scopes a new client gets as optional scopes.
    #[serde(default = "default_optional_scopes")]
    pub default_optional_client_scopes: Vec<String>,
    /// Anything else from the representation, kept so a round trip loses nothing.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Bumped by every write of the realm's row. A write based on an older
    /// revision is refused, so two admins editing different settings of the
    /// same realm (all held in this one row) cannot silently undo each other.
    #[serde(default)]
    pub revision: u64,
}

/// Keycloak's realm default "default client scopes".
pub fn default_default_scopes() -> Vec<String> {
    ["web-origins", "acr", "profile", "roles", "basic", "email"]
        .map(String::from)
        .to_vec()
}

/// Keycloak's realm default "optional client scopes".
pub fn default_optional_scopes() -> Vec<String> {
    [
        "address",
        "phone",
        "offline_access",
        "organization",
        "microprofile-jwt",
    ]
    .map(String::from)
    .to_vec()
}

/// A whole number Keycloak keeps in a representation's fields (a realm's
/// lifespans, a realm's or client's `notBefore`), as a number or as text.
/// Keycloak's are 32-bit: anything beyond counts as unset, so no lifespan
/// can overflow the arithmetic on it.
pub fn extra_number(extra: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<i64> {
    extra
        .get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|n| i32::try_from(*n).is_ok())
}

impl Realm {
    /// A whole number Keycloak keeps in the realm representation (see
    /// [`extra_number`]).
    pub fn number(&self, key: &str) -> Option<i64> {
        extra_number(&self.extra, key)
    }

    /// A number of seconds (`accessCodeLifespan`...), or `default` where
    /// unset or not positive.
    fn seconds(&self, key: &str, default: i64) -> i64 {
        self.number(key).filter(|v| *v > 0).unwrap_or(default)
    }

    /// Keycloak's quick-login check: a failed login less than this many
    /// milliseconds after the previous failure (`quickLoginCheckMilliSeconds`,
    /// 1000) locks the user for `minimum_quick_login_wait` seconds
    /// (`minimumQuickLoginWaitSeconds`, 60); guessing scripts fail faster
    /// than people do. 0 switches either off.
    pub fn quick_login_check(&self) -> (i64, i64) {
        let read =
            |key: &str, default: i64| self.number(key).filter(|v| *v >= 0).unwrap_or(default);
        (
            read("quickLoginCheckMilliSeconds", 1000),
            read("minimumQuickLoginWaitSeconds", 60),
        )
    }

    /// A Keycloak realm switch kept in the representation
    /// (`rememberMe`, `verifyEmail`...): on only where it says `true`.
    pub fn flag(&self, key: &str) -> bool {
        self.extra.get(key).and_then(serde_json::Value::as_bool) == Some(true)
    }

    /// When `s` ends if it was last used at `last_access`: its idle
    /// timeout from then, capped by its maximum from its start. Offline
    /// sessions take the realm's offline timeouts; others their client's
    /// session limits (`client`), or the SSO session's for a browser
    /// session (`None`).
    pub fn session_ends(&self, s: &Session, client: Option<&Client>, last_access: i64) -> i64 {
        if s.offline {
            let idle = last_access + self.offline_session_idle_timeout;
            return self
                .offline_max_lifespan()
                .map_or(idle, |max| idle.min(s.started + max));
        }
        let (idle, max) = match client {
            Some(c) => self.client_session_limits(c, s.remember_me),
            None => self.session_limits(s.remember_me),
        };
        (last_access + idle).min(s.started + max)
    }

    /// When `s` ends at the latest however busy it is: its maximum lifespan
    /// (the client's, within its SSO session's, counted from the login;
    /// offline sessions only when `offlineSessionMaxLifespanEnabled`).
    /// Keycloak ends an access token there, so no token outlives its
    /// session (its `TokenManager.getTokenExpiration`).
    pub fn session_max_end(&self, s: &Session, client: &Client) -> Option<i64> {
        if s.offline {
            return self.offline_max_lifespan().map(|m| s.started + m);
        }
        let (_, client_max) = self.client_session_limits(client, s.remember_me);
        let (_, sso_max) = self.session_limits(s.remember_me);
        Some((s.started + client_max).min(s.auth_time + sso_max))
    }

    /// How long an authorization code lives (`accessCodeLifespan`, 60 s).
    pub fn code_lifespan(&self) -> i64 {
        self.seconds("accessCodeLifespan", 60)
    }

    /// How long a login page stays usable (`accessCodeLifespanLogin`,
    /// 30 min).
    pub fn login_lifespan(&self) -> i64 {
        self.seconds("accessCodeLifespanLogin", 1800)
    }

    /// How long a user has for the required actions of a login
    /// (`accessCodeLifespanUserAction`, 5 min).
    pub fn user_action_lifespan(&self) -> i64 {
        self.seconds("accessCodeLifespanUserAction", 300)
    }

    /// How long an access token from the implicit or hybrid flow's front
    /// channel lives (`accessTokenLifespanForImplicitFlow`, 15 min).
    pub fn implicit_token_lifespan(&self) -> i64 {
        self.seconds("accessTokenLifespanForImplicitFlow", 900)
    }

    /// The cap on an offline session's whole life, where the realm sets
    /// one (`offlineSessionMaxLifespanEnabled`, then
    /// `offlineSessionMaxLifespan`, 60 days by default).
    pub fn offline_max_lifespan(&self) -> Option<i64> {
        self.flag("offlineSessionMaxLifespanEnabled")
            .then(|| self.seconds("offlineSessionMaxLifespan", 5_184_000))
    }

    /// The idle timeout and maximum lifespan of `client`'s sessions: the
    /// client's `client.session.idle.timeout` / `client.session.max.lifespan`,
    /// else the realm's `clientSessionIdleTimeout` / `clientSessionMaxLifespan`,
    /// never longer than the SSO session's (0 or unset: the SSO session's),
    /// as Keycloak.
    pub fn client_session_limits(&self, client: &Client, remember_me: bool) -> (i64, i64) {
        let (sso_idle, sso_max) = self.session_limits(remember_me);
        let pick = |attr: &str, key: &str, sso: i64| {
            client
                .attributes
                .get(attr)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or_else(|| self.seconds(key, sso))
                .min(sso)
        };
        (
            pick(
                "client.session.idle.timeout",
                "clientSessionIdleTimeout",
                sso_idle,
            ),
            pick(
                "client.session.max.lifespan",
                "clientSessionMaxLifespan",
                sso_max,
            ),
        )
    }

    /// The SSO idle timeout and maximum lifespan, in seconds, of a session
    /// with or without "Remember me": Keycloak's
    /// `ssoSessionIdleTimeoutRememberMe` / `ssoSessionMaxLifespanRememberMe`
    /// where set (above 0) and asked for, else the realm's own.
    pub fn session_limits(&self, remember_me: bool) -> (i64, i64) {
        let (idle, max) = (self.sso_session_idle_timeout, self.sso_session_max_lifespan);
        if !remember_me {
            return (idle, max);
        }
        (
            self.seconds("ssoSessionIdleTimeoutRememberMe", idle),
            self.seconds("ssoSessionMaxLifespanRememberMe", max),
        )
    }

    /// A realm with Keycloak's defaults.
    pub fn new(name: &str) -> Self {
        Realm {
            id: crate::id::uuid(),
            name: name.to_owned(),
            display_name: None,
            enabled: true,
            access_token_lifespan: 300,
            sso_session_idle_timeout: 1800,
            sso_session_max_lifespan: 36000,
            offline_session_idle_timeout: 2_592_000,
            revoke_refresh_token: false,
            default_signature_algorithm: "RS256".into(),
            brute_force_protected: false,
            failure_factor: 30,
            wait_increment_seconds: 60,
            max_failure_wait_seconds: 900,
            max_delta_time_seconds: 43200,
            events_enabled: false,
            admin_events_enabled: false,
            default_default_client_scopes: default_default_scopes(),
            default_optional_client_scopes: default_optional_scopes(),
            extra: Default::default(),
            revision: 0,
        }
    }
}

/// A protocol mapper: turns user, role or fixed data into a token claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProtocolMapper {
    pub id: String,
    pub name: String,
    pub protocol: String,
    /// Keycloak's mapper type id, e.g. `oidc-audience-mapper`.
    pub protocol_mapper: String,
    pub config: BTreeMap<String, String>,
}

impl ProtocolMapper {
    /// An `openid-connect` mapper with a fresh id.
    pub fn oidc(name: &str, kind: &str, config: &[(&str, &str)]) -> Self {
        ProtocolMapper {
            id: crate::id::uuid(),
            name: name.to_owned(),
            protocol: "openid-connect".into(),
            protocol_mapper: kind.to_owned(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// A client scope (Keycloak's "client scope"): a named set of protocol
/// mappers that clients take as default scopes (always applied) or
/// optional ones (applied when the `scope` parameter asks for them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientScope {
    pub id: String,
    pub realm_id: String,
    pub name: String,
    pub description: Option<String>,
    pub protocol: String,
    /// `include.in.token.scope`, `display.on.consent.screen`...
    pub attributes: BTreeMap<String, String>,
    pub protocol_mappers: Vec<ProtocolMapper>,
    /// Role scope mappings: for a client without full scope, the roles
    /// this scope, when in effect, lets its tokens carry.
    #[serde(default)]
    pub scope_role_ids: Vec<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ClientScope {
    /// An empty `openid-connect` scope.
    pub fn new(realm_id: &str, name: &str) -> Self {
        ClientScope {
            id: crate::id::uuid(),
            realm_id: realm_id.to_owned(),
            name: name.to_owned(),
            description: None,
            protocol: "openid-connect".into(),
            attributes: BTreeMap::new(),
            protocol_mappers: vec![],
            scope_role_ids: vec![],
            extra: Default::default(),
        }
    }

    /// Whether the scope's name appears in the token's `scope` claim
    /// (Keycloak's default is yes; `roles`, `acr`... say no).
    pub fn include_in_token_scope(&self) -> bool {
        self.attributes
            .get("include.in.token.scope")
            .is_none_or(|v| v != "false")
    }

    fn with(mut self, include: bool, desc: &str, mappers: Vec<ProtocolMapper>) -> Self {
        self.description = Some(desc.to_owned());
        self.attributes
            .insert("include.in.token.scope".into(), include.to_string());
        self.attributes
            .insert("display.on.consent.screen".into(), include.to_string());
        self.protocol_mappers = mappers;
        self
    }
}

/// Keycloak's built-in client scopes of a new realm, with their mappers:
/// what puts `preferred_username`, `email`, `realm_access`,
/// `resource_access`, `allowed-origins` and `acr` into tokens.
pub fn builtin_client_scopes(realm_id: &str) -> Vec<ClientScope> {
    const A: (&str, &str) = ("access.token.claim", "true");
    const I: (&str, &str) = ("id.token.claim", "true");
    const U: (&str, &str) = ("userinfo.token.claim", "true");
    const N: (&str, &str) = ("introspection.token.claim", "true");
    // A user property or attribute into a claim, in every token kind.
    let user = |kind: &str, name: &str, attr: &str, claim: &str, ty: &str| {
        let config = [
            ("user.attribute", attr),
            ("claim.name", claim),
            ("jsonType.label", ty),
            A,
            I,
            U,
            N,
        ];
        ProtocolMapper::oidc(name, kind, &config)
    };
    let prop = |name: &str, attr: &str, claim: &str, ty: &str| {
        user("oidc-usermodel-property-mapper", name, attr, claim, ty)
    };
    let attr = |name: &str, attr: &str, claim: &str, ty: &str| {
        user("oidc-usermodel-attribute-mapper", name, attr, claim, ty)
    };
    let scope = |name: &str| ClientScope::new(realm_id, name);
    vec![
        scope("profile").with(
            true,
            "OpenID Connect built-in scope: profile",
            vec![
                prop("username", "username", "preferred_username", "String"),
                ProtocolMapper::oidc("full name", "oidc-full-name-mapper", &[A, I, U, N]),
                prop("given name", "firstName", "given_name", "String"),
                prop("family name", "lastName", "family_name", "String"),
                attr("middle name", "middleName", "middle_name", "String"),
                attr("nickname", "nickname", "nickname", "String"),
                attr("profile", "profile", "profile", "String"),
                attr("picture", "picture", "picture", "String"),
                attr("website", "website", "website", "String"),
                attr("gender", "gender", "gender", "String"),
                attr("birthdate", "birthdate", "birthdate", "String"),
                attr("zoneinfo", "zoneinfo", "zoneinfo", "String"),
                attr("locale", "locale", "locale", "String"),
            ],
        ),
        scope("email").with(
            true,
            "OpenID Connect built-in scope: email",
            vec![
                prop("email", "email", "email", "String"),
                prop("email verified", "emailVerified", "email_verified", "boolean"),
            ],
        ),
        scope("address").with(
            true,
            "OpenID Connect built-in scope: address",
            vec![ProtocolMapper::oidc(
                "address",
                "oidc-address-mapper",
                &[A, I, U, N],
            )],
        ),
        scope("phone").with(
            true,
            "OpenID Connect built-in scope: phone",
            vec![
                attr("phone number", "phoneNumber", "phone_number", "String"),
                attr(
                    "phone number verified",
                    "phoneNumberVerified",
                    "phone_number_verified",
                    "boolean",
                ),
            ],
        ),
        scope("roles").with(
            false,
            "OpenID Connect scope for add user roles to the access token",
            vec![
                ProtocolMapper::oidc(
                    "realm roles",
                    "oidc-usermodel-realm-role-mapper",
                    &[
                        ("claim.name", "realm_access.roles"),
                        ("multivalued", "true"),
                        ("jsonType.label", "String"),
                        A,
                        N,
                    ],
                ),
                ProtocolMapper::oidc(
                    "client roles",
                    "oidc-usermodel-client-role-mapper",
                    &[
                        ("claim.name", "resource_access.${client_id}.roles"),
                        ("multivalued", "true"),
                        ("jsonType.label", "String"),
                        A,
                        N,
                    ],
                ),
                ProtocolMapper::oidc(
                    "audience resolve",
                    "oidc-audience-resolve-mapper",
                    &[A, N],
                ),
            ],
        ),
        scope("web-origins").with(
            false,
            "OpenID Connect scope for add allowed web origins to the access token",
            vec![ProtocolMapper::oidc(
                "allowed web origins",
                "oidc-allowed-origins-mapper",
                &[A, N],
            )],
        ),
        scope("acr").with(
            false,
            "OpenID Connect scope for add acr (authentication context class reference) to the token",
            vec![ProtocolMapper::oidc(
                "acr loa level",
                "oidc-acr-mapper",
                &[A, I, N],
            )],
        ),
        scope("basic").with(
            false,
            "OpenID Connect scope for add all basic claims to the token",
            vec![
                ProtocolMapper::oidc("sub", "oidc-sub-mapper", &[A, N]),
                ProtocolMapper::oidc(
                    "auth_time",
                    "oidc-usersessionmodel-note-mapper",
                    &[
                        ("user.session.note", "AUTH_TIME"),
                        ("claim.name", "auth_time"),
                        ("jsonType.label", "long"),
                        A,
                        I,
                        N,
                    ],
                ),
            ],
        ),
        scope("offline_access").with(true, "OpenID Connect built-in scope: offline_access", vec![]),
        scope("organization").with(
            true,
            "Additional claims about the organization a subject belongs to",
            vec![ProtocolMapper::oidc(
                "organization",
                "oidc-organization-membership-mapper",
                &[
                    ("claim.name", "organization"),
                    ("multivalued", "true"),
                    ("jsonType.label", "String"),
                    A,
                    I,
                    U,
                    N,
                ],
            )],
        ),
        scope("microprofile-jwt").with(
            true,
            "Microprofile - JWT built-in scope",
            vec![
                prop("upn", "username", "upn", "String"),
                ProtocolMapper::oidc(
                    "groups",
                    "oidc-usermodel-realm-role-mapper",
                    &[
                        ("claim.name", "groups"),
                        ("multivalued", "true"),
                        ("jsonType.label", "String"),
                        A,
                        I,
                        U,
                        N,
                    ],
                ),
            ],
        ),
    ]
}

/// An OAuth client (Keycloak's "client"): an application that asks for tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub id: String,
    pub realm_id: String,
    pub client_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub public_client: bool,
    pub bearer_only: bool,
    /// Confidential clients' secret; readable through the admin API as in Keycloak.
    pub secret: Option<String>,
    /// Previous secret during a rotation grace period, and when it stops working.
    pub rotated_secret: Option<String>,
    pub rotated_secret_expires_at: Option<i64>,
    pub redirect_uris: Vec<String>,
    pub web_origins: Vec<String>,
    pub standard_flow_enabled: bool,
    pub direct_access_grants_enabled: bool,
    pub service_accounts_enabled: bool,
    pub implicit_flow_enabled: bool,
    pub full_scope_allowed: bool,
    /// How a confidential client authenticates (Keycloak's
    /// `clientAuthenticatorType`): `client-secret` (Basic or form post),
    /// `client-secret-jwt` (RFC 7523 assertion signed with the secret) or
    /// `client-jwt` (assertion signed with the client's own key).
    #[serde(default = "default_authenticator")]
    pub client_authenticator_type: String,
    /// Role scope mappings (Keycloak's `scope-mappings`): with
    /// `full_scope_allowed` off, the only roles (besides the client's own)
    /// its tokens may carry, composites included.
    #[serde(default)]
    pub scope_role_ids: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub protocol_mappers: Vec<ProtocolMapper>,
    pub default_client_scopes: Vec<String>,
    pub optional_client_scopes: Vec<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_authenticator() -> String {
    "client-secret".into()
}

/// Keycloak's client authenticators. Gatehouse implements all but
/// `client-x509` (mutual TLS): a client imported with it is kept as it is
/// and cannot authenticate until that lands.
pub const CLIENT_AUTHENTICATORS: [&str; 4] = [
    "client-secret",
    "client-secret-jwt",
    "client-jwt",
    "client-x509",
];

/// How long a client's access tokens live when the client overrides its
/// realm (see `Client::access_token_lifespan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLifespan {
    /// A fixed number of seconds from issue.
    Seconds(i64),
    /// Until the SSO session's maximum lifespan (Keycloak's `-1`): counted
    /// from the session's start, or from now for a grant without one.
    SessionMax,
}

impl Client {
    /// A confidential client with Keycloak's defaults.
    pub fn new(realm_id: &str, client_id: &str) -> Self {
        Client {
            id: crate::id::uuid(),
            realm_id: realm_id.to_owned(),
            client_id: client_id.to_owned(),
            name: None,
            description: None,
            enabled: true,
            public_client: false,
            bearer_only: false,
            secret: None,
            rotated_secret: None,
            rotated_secret_expires_at: None,
            redirect_uris: vec![],
            web_origins: vec![],
            standard_flow_enabled: true,
            direct_access_grants_enabled: false,
            service_accounts_enabled: false,
            implicit_flow_enabled: false,
            full_scope_allowed: true,
            client_authenticator_type: default_authenticator(),
            scope_role_ids: vec![],
            attributes: Default::default(),
            protocol_mappers: vec![],
            default_client_scopes: vec![
                "web-origins".into(),
                "acr".into(),
                "profile".into(),
                "roles".into(),
                "basic".into(),
                "email".into(),
            ],
            optional_client_scopes: vec![
                "address".into(),
                "phone".into(),
                "offline_access".into(),
                "microprofile-jwt".into(),
            ],
            extra: Default::default(),
        }
    }

    /// Per-client override of the access token lifespan (Keycloak attribute
    /// `access.token.lifespan`): seconds, or Keycloak's `-1`, "until the
    /// session's maximum", which the console writes for "Expires with
    /// session". Anything else (zero, other negatives, past 32 bits) is
    /// ignored, as it would make every token expired on arrival.
    pub fn access_token_lifespan(&self) -> Option<TokenLifespan> {
        match self
            .attributes
            .get("access.token.lifespan")
            .and_then(|v| v.trim().parse::<i32>().ok())?
        {
            -1 => Some(TokenLifespan::SessionMax),
            v if v > 0 => Some(TokenLifespan::Seconds(i64::from(v))),
            _ => None,
        }
    }

    /// A Keycloak boolean attribute (`"true"`/`"false"` strings), with the
    /// default Keycloak gives it when unset.
    pub fn attribute_flag(&self, key: &str, default: bool) -> bool {
        self.attributes.get(key).map_or(default, |v| v == "true")
    }

    /// Whether `uri` is a registered redirect URI: exact match, or Keycloak's
    /// trailing-`*` prefix form. Nothing else (no substring, no host-only).
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|p| redirect_uri_matches(p, uri))
    }
}

/// Why a redirect URI cannot be registered, in Keycloak's words (its
/// client validation): a fragment, or a scheme that runs code where a
/// browser is sent (`javascript:`, `data:`, `vbscript:`; with the
/// `form_post` response mode the URI becomes a form's action on our own
/// origin). None when it may be registered.
pub fn redirect_uri_problem(uri: &str) -> Option<&'static str> {
    if uri.contains('#') {
        return Some("Redirect URIs must not contain an URI fragment");
    }
    code_running_scheme(uri).then_some("A redirect URI uses an illegal scheme")
}

/// Whether `uri`'s scheme runs code where a browser follows it
/// (`javascript:`, `data:`, `vbscript:`).
pub fn code_running_scheme(uri: &str) -> bool {
    let scheme = uri
        .trim_start()
        .split_once(':')
        .map(|(s, _)| s.trim().to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("javascript" | "data" | "vbscript"))
}

/// Whether `uri` matches one registered redirect URI `pattern`: exactly,
/// or, for Keycloak's trailing-`*` form, as a prefix that stays within the
/// pattern's authority and path (no fragment, no dot segments). Shared by
/// login redirects and `post.logout.redirect.uris`.
pub fn redirect_uri_matches(pattern: &str, uri: &str) -> bool {
    matches_as_given(pattern, uri)
        || loopback_without_port(uri).is_some_and(|u| matches_as_given(pattern, &u))
}

/// RFC 8252 §7.3: a native app listening on a loopback address picks its
/// port when it starts, so the port is not part of the match. As Keycloak
/// does for `http://localhost` and `http://127.0.0.1` (and `[::1]`): the
/// URI with its port removed, when it has one; plain `http` only.
fn loopback_without_port(uri: &str) -> Option<String> {
    let host = ["http://localhost:", "http://127.0.0.1:", "http://[::1]:"]
        .iter()
        .find(|h| uri.starts_with(**h))?;
    let host = &host[..host.len() - 1];
    let rest = &uri[host.len() + 1..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let port = &rest[..end];
    (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{host}{}", &rest[end..]))
}

fn matches_as_given(pattern: &str, uri: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            uri.starts_with(prefix)
                && !uri.contains('#')
                && same_authority(prefix, uri)
                && !escapes_prefix(&uri[prefix.len()..])
        }
        None => pattern == uri,
    }
}

/// Whether what a wildcard matched could lead a browser outside the
/// registered prefix: a `.` or `..` segment or a backslash in the path,
/// raw or percent-encoded (decoded up to three times), e.g.
/// `https://app/cb/*` matching `https://app/cb/%2e%2e/admin` (the redirect
/// URI path traversals behind CVE-2023-6927 and CVE-2024-1132).
fn escapes_prefix(rest: &str) -> bool {
    let path = rest.split('?').next().unwrap_or(rest);
    let mut text = path.as_bytes().to_vec();
    for _ in 0..4 {
        if text.contains(&b'\\')
            || text
                .split(|b| *b == b'/')
                .any(|seg| seg == b"." || seg == b"..")
        {
            return true;
        }
        if !text.contains(&b'%') {
            return false;
        }
        // One round; invalid escapes stay as they are.
        text = percent_encoding::percent_decode(&text).collect();
    }
    // Still escaped after three rounds: nobody registers such a URI.
    true
}

fn same_authority(prefix: &str, uri: &str) -> bool {
    fn authority(s: &str) -> Option<&str> {
        let rest = s.split_once("://")?.1;
        Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
    }
    match (authority(prefix), authority(uri)) {
        // A prefix that stops inside the authority ("https://a.com*") must
        // not match "https://a.com.evil.net".
        (Some(p), Some(u)) => {
            prefix.len() > prefix.find("://").unwrap_or(0) + 3 + p.len() || p == u
        }
        _ => true,
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub realm_id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub enabled: bool,
    pub attributes: Attributes,
    pub created_timestamp: i64,
    /// Set when this is the service-account user of a client.
    pub service_account_client_id: Option<String>,
    pub required_actions: Vec<String>,
    /// Links to the user's accounts at identity providers (Keycloak's
    /// federated identities), kept so that a migrated realm keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_identities: Vec<FederatedIdentity>,
    /// The user-storage provider (an LDAP component's id) the user was
    /// imported from: its directory, not a local credential, checks the
    /// user's password (Keycloak's `federationLink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_link: Option<String>,
}

/// A user's account at an identity provider (FederatedIdentityRepresentation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FederatedIdentity {
    /// The provider's alias in the realm.
    pub identity_provider: String,
    pub user_id: String,
    pub user_name: String,
}

impl User {
    /// A new enabled user. Keycloak lower-cases usernames; so do we.
    pub fn new(realm_id: &str, username: &str) -> Self {
        User {
            id: crate::id::uuid(),
            realm_id: realm_id.to_owned(),
            username: username.to_lowercase(),
            email: None,
            email_verified: false,
            first_name: None,
            last_name: None,
            enabled: true,
            attributes: Default::default(),
            created_timestamp: crate::time::now_millis(),
            service_account_client_id: None,
            required_actions: vec![],
            federated_identities: vec![],
            federation_link: None,
        }
    }
}

/// A stored credential in Keycloak's own shape, so export and import are lossless.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub id: String,
    pub user_id: String,
    /// Keycloak's credential type: `password` or `otp`.
    pub kind: String,
    pub created_date: i64,
    /// Keycloak's `credentialData` JSON string (algorithm, iterations, parameters).
    pub credential_data: String,
    /// Keycloak's `secretData` JSON string (value, salt).
    pub secret_data: String,
    /// The label an admin gave it (Keycloak's `userLabel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_label: Option<String>,
    /// Where it sits in the user's list (Keycloak's credential priority,
    /// lowest first), which admins reorder; 0 lets the store place a new
    /// credential last, or where the one it replaces was. Rows written
    /// before priorities existed read 0 and keep the old order
    /// (password first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A Keycloak organization: a tenant of the realm (a customer, a partner)
/// with its e-mail domains; users join it as members, and tokens can name
/// the organizations of their user (the `organization` client scope).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Organization {
    pub id: String,
    pub realm_id: String,
    pub name: String,
    /// Unique per realm, fixed once created; what tokens name.
    pub alias: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub domains: Vec<OrganizationDomain>,
    /// Aliases of the realm's identity providers linked to it.
    #[serde(default)]
    pub identity_providers: Vec<String>,
    /// Invitations sent and not yet accepted or withdrawn, kept in the
    /// organization's own row (one write with the membership they end in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invitations: Vec<OrganizationInvitation>,
    /// The organization's own groups (Keycloak's organization groups): a
    /// tree apart from the realm's groups, whose members are members of
    /// the organization. Kept in the organization's row, like invitations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<OrganizationGroup>,
    /// The organization's own roles (Keycloak's organization roles): held
    /// by its members only, named in tokens under the organization's entry
    /// of the `organization` claim and nowhere else, so a role one tenant
    /// grants never reaches `realm_access` of another. Kept in the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<OrganizationRole>,
    /// Id of the role every member holds through membership
    /// (`default-roles-{alias}`, one of `roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<String>,
}

/// A role of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrganizationRole {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    /// Ids of the roles it contains: other roles of the same organization,
    /// realm roles and client roles (resolved when read, so a deleted
    /// realm or client role simply drops out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub composites: Vec<String>,
    /// Members granted it directly; read through the current membership,
    /// and dropped when a member leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// A group of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrganizationGroup {
    pub id: String,
    pub name: String,
    /// None for a top-level group of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    /// User ids; read through the organization's current members, so a
    /// user who left it (or was deleted) is no longer listed.
    #[serde(default)]
    pub members: Vec<String>,
    /// Ids of the realm and client roles mapped to the group, which its
    /// members (and the members of its subgroups) hold in their tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// An e-mailed invitation to join an organization (Keycloak's
/// `OrganizationInvitationModel`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrganizationInvitation {
    pub id: String,
    /// Lowercased.
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The link the mail carried.
    pub link: String,
}

/// An organization's e-mail domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrganizationDomain {
    pub name: String,
    #[serde(default)]
    pub verified: bool,
}

/// What a user allowed a client that asks for consent (Keycloak's
/// `consentRequired`): the client scopes granted, by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Consent {
    pub user_id: String,
    /// The client's public id.
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Milliseconds since the epoch, as Keycloak reports them.
    pub created: i64,
    pub updated: i64,
}

/// A group; groups nest through `parent_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub id: String,
    pub realm_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// Keycloak 26's group description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub attributes: Attributes,
}

/// A realm role (`client_id` None) or a client role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub id: String,
    pub realm_id: String,
    /// Internal id of the owning client for client roles.
    pub client_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub attributes: Attributes,
}

/// An SSO user session: what a login creates and logout ends. Tokens carry its
/// id as `sid`, so revoking it revokes every token of the login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub id: String,
    pub realm_id: String,
    pub user_id: String,
    pub client_id: String,
    pub ip: Option<String>,
    pub started: i64,
    pub last_access: i64,
    pub offline: bool,
    /// The one refresh-token id currently valid when refresh tokens rotate.
    pub refresh_token_id: Option<String>,
    /// Whether refresh-token reuse is checked for this session.
    pub rotate_refresh: bool,
    /// Space-separated scope granted at login.
    pub scope: String,
    /// Authentication time (OIDC `auth_time`).
    pub auth_time: i64,
    /// For a client session made by a code exchange: the browser SSO session
    /// it came from. Ending the SSO session ends it too.
    #[serde(default)]
    pub sso_session_id: Option<String>,
    /// The login that made this client session reused the browser's SSO
    /// session instead of asking for credentials: Keycloak's `acr` is then
    /// `0`, not `1` (a relying party that needs a fresh login reads it).
    #[serde(default)]
    pub sso_auth: bool,
    /// The admin who started this session as the user (Keycloak's
    /// impersonation); client sessions made from it carry it too, and
    /// introspection shows it as `act` (RFC 8693 §4.1), so what an admin
    /// did as someone else stays attributable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<Impersonator>,
    /// The identity provider a brokered login came through, with the ID
    /// token it issued: logging out here then logs out there too
    /// (Keycloak's `FEDERATED_ID_TOKEN` session note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerSession>,
    /// The user asked to be remembered at login (Keycloak's "Remember
    /// me"): the realm's remember-me timeouts apply, and the browser keeps
    /// the session cookie after it closes.
    #[serde(default)]
    pub remember_me: bool,
    /// The authorization request's `claims` parameter (OIDC Core §5.5), a
    /// JSON object, kept with the client session as Keycloak keeps its
    /// `claims` client-session note: its "Claims parameter Token" mapper
    /// reads it for every ID token and userinfo answer of the session,
    /// refreshes included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

/// A browser session's login at an identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BrokerSession {
    /// The provider's alias in the realm.
    pub alias: String,
    /// Its ID token: the `id_token_hint` of the logout there.
    pub id_token: String,
}

/// Who impersonates (Keycloak's `IMPERSONATOR_ID` / `IMPERSONATOR_USERNAME`
/// session notes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Impersonator {
    pub id: String,
    pub username: String,
    /// The realm the admin signed in to.
    pub realm: String,
}

/// The effective identity that goes into a token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectiveRoles {
    pub realm: Vec<String>,
    /// client_id (public id) -> role names.
    pub clients: BTreeMap<String, Vec<String>>,
}

/// A user or admin event, written to the outbox with the change it describes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    pub realm_id: String,
    /// `user` or `admin`.
    pub category: String,
    /// Keycloak's event type (`LOGIN`, `CODE_TO_TOKEN`...) or admin operation type.
    pub kind: String,
    pub time: i64,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub ip_address: Option<String>,
    pub error: Option<String>,
    pub details: BTreeMap<String, String>,
    /// Admin events: the resource path and type.
    pub resource_path: Option<String>,
    pub resource_type: Option<String>,
    pub representation: Option<String>,
    /// Whether the admin API lists it: Keycloak's "save events", i.e. the
    /// realm's `eventsEnabled` and `enabledEventTypes` for user events and
    /// `adminEventsEnabled` for admin events when it happened. Every event
    /// reaches the outbox either way, for delivery to listeners.
    #[serde(skip, default = "listed_by_default")]
    pub listed: bool,
}

fn listed_by_default() -> bool {
    true
}

impl Realm {
    /// How long listed events of `category` (`user`, `admin`) are kept, in
    /// seconds: Keycloak's `eventsExpiration` / `adminEventsExpiration`
    /// (a number or a numeric string); None keeps them.
    pub fn events_expiration(&self, category: &str) -> Option<i64> {
        let key = if category == "admin" {
            "adminEventsExpiration"
        } else {
            "eventsExpiration"
        };
        let v = self.extra.get(key)?;
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|secs| *secs > 0)
    }

    /// Whether user events of `kind` are saved for the admin API.
    pub fn saves_event(&self, kind: &str) -> bool {
        let types = self
            .extra
            .get("enabledEventTypes")
            .and_then(serde_json::Value::as_array)
            .filter(|t| !t.is_empty());
        self.events_enabled && types.is_none_or(|t| t.iter().any(|x| x.as_str() == Some(kind)))
    }
}

impl Event {
    /// A user event of `kind` now.
    pub fn user(realm: &Realm, kind: &str) -> Self {
        Event::new(realm, "user", kind, realm.saves_event(kind))
    }

    fn new(realm: &Realm, category: &str, kind: &str, listed: bool) -> Self {
        Event {
            listed,
            id: crate::id::uuid_v7(),
            realm_id: realm.id.clone(),
            category: category.into(),
            kind: kind.to_owned(),
            time: crate::time::now_millis(),
            client_id: None,
            user_id: None,
            session_id: None,
            ip_address: None,
            error: None,
            details: Default::default(),
            resource_path: None,
            resource_type: None,
            representation: None,
        }
    }

    /// A user event becomes another kind (an outcome known later): whether
    /// it is listed follows the new kind.
    pub fn set_kind(&mut self, realm: &Realm, kind: &str) {
        self.kind = kind.to_owned();
        self.listed = realm.saves_event(kind);
    }

    /// An admin event of operation `kind` on `resource_type` at `resource_path`.
    pub fn admin(realm: &Realm, kind: &str, resource_type: &str, resource_path: &str) -> Self {
        let mut e = Event::new(realm, "admin", kind, realm.admin_events_enabled);
        e.resource_type = Some(resource_type.into());
        e.resource_path = Some(resource_path.into());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8252 §7.3, as Keycloak: any port on a loopback redirect URI,
    /// and only there; nothing else about the URI is loosened.
    #[test]
    fn loopback_redirect_uris_match_on_any_port() {
        let mut c = Client::new("r", "cli");
        c.redirect_uris = vec![
            "http://127.0.0.1/callback".into(),
            "http://localhost/cb/*".into(),
            "http://[::1]/cb".into(),
            "http://127.0.0.1:9000/fixed".into(),
        ];
        for ok in [
            "http://127.0.0.1:53123/callback",
            "http://127.0.0.1/callback",
            "http://localhost:8000/cb/x",
            "http://[::1]:1/cb",
            "http://127.0.0.1:9000/fixed",
        ] {
            assert!(c.redirect_uri_allowed(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:53123/other",
            "http://127.0.0.1:53123/callback?x=1",
            "https://127.0.0.1:53123/callback",
            "http://127.0.0.1:abc/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:9001/fixed",
            "http://localhost.evil.example:80/cb/x",
            "http://localhost:8000/cb/../admin",
            "http://127.0.0.2:53123/callback",
        ] {
            assert!(!c.redirect_uri_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_match_exactly_or_by_trailing_star() {
        let mut c = Client::new("r", "app");
        c.redirect_uris = vec![
            "https://app.example/cb".into(),
            "https://x.example/app/*".into(),
        ];
        assert!(c.redirect_uri_allowed("https://app.example/cb"));
        assert!(!c.redirect_uri_allowed("https://app.example/cb/"));
        assert!(!c.redirect_uri_allowed("https://app.example/cb?x=1"));
        assert!(!c.redirect_uri_allowed("https://app.example/c"));
        assert!(c.redirect_uri_allowed("https://x.example/app/deep/path"));
        assert!(!c.redirect_uri_allowed("https://x.example/other"));
        assert!(!c.redirect_uri_allowed("https://x.example/app/#frag"));
    }

    #[test]
    fn wildcard_does_not_match_dot_segments_or_backslashes() {
        let mut c = Client::new("r", "app");
        c.redirect_uris = vec!["https://x.example/app/*".into()];
        assert!(c.redirect_uri_allowed("https://x.example/app/cb?next=/a/../b"));
        assert!(c.redirect_uri_allowed("https://x.example/app/v1.2/cb"));
        assert!(c.redirect_uri_allowed("https://x.example/app/..cb"));
        for bad in [
            "https://x.example/app/../admin",
            "https://x.example/app/..",
            "https://x.example/app/./x",
            "https://x.example/app/%2e%2e/admin",
            "https://x.example/app/%2E%2e/admin",
            "https://x.example/app/.%2e/admin",
            "https://x.example/app/%252e%252e/admin",
            "https://x.example/app/%25252e%25252e/admin",
            "https://x.example/app/..%2fadmin",
            "https://x.example/app/..%5cadmin",
            "https://x.example/app/x\\..\\admin",
        ] {
            assert!(!c.redirect_uri_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn code_running_schemes_and_fragments_cannot_be_registered() {
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD4=",
            "vbscript:x",
            "https://app.example/cb#frag",
        ] {
            assert!(redirect_uri_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1/*",
            "com.example.app:/oauth",
            "/relative/cb",
            "*",
            "+",
        ] {
            assert_eq!(redirect_uri_problem(good), None, "{good}");
        }
    }

    #[test]
    fn star_inside_authority_does_not_match_other_hosts() {
        let mut c = Client::new("r", "app");
        c.redirect_uris = vec!["https://a.com*".into()];
        assert!(c.redirect_uri_allowed("https://a.com/cb"));
        assert!(!c.redirect_uri_allowed("https://a.com.evil.net/cb"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The authority as a browser reads it: after `://`, up to the first
        /// `/`, `?` or `#`.
        fn authority(u: &str) -> Option<&str> {
            let rest = u.split_once("://")?.1;
            rest.split(['/', '?', '#']).next()
        }

        fn candidates() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,60}",
                (
                    prop_oneof![
                        Just("https://app.example/cb"),
                        Just("https://x.example/app/"),
                        Just("https://x.example"),
                        Just("https://a.com"),
                    ],
                    "[a-z0-9./:@#?%&=_-]{0,24}"
                )
                    .prop_map(|(p, s)| format!("{p}{s}")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// An accepted redirect URI is a registered one exactly, or lies
            /// under a `*` pattern on the same authority with no fragment.
            #[test]
            fn accepted_uris_stay_on_registered_authorities(uri in candidates()) {
                let mut c = Client::new("r", "app");
                c.redirect_uris = vec![
                    "https://app.example/cb".into(),
                    "https://x.example/app/*".into(),
                    "https://a.com*".into(),
                ];
                if c.redirect_uri_allowed(&uri) {
                    let exact = uri == "https://app.example/cb";
                    let under_app = uri.starts_with("https://x.example/app/")
                        && authority(&uri) == Some("x.example");
                    let under_a = uri.starts_with("https://a.com") && authority(&uri) == Some("a.com");
                    prop_assert!(exact || ((under_app || under_a) && !uri.contains('#')), "{uri}");
                }
            }
        }
    }
}

/// A usage plan: how much an API key may call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlan {
    /// Sustained requests per second (GCRA), with `burst`.
    pub rate_per_second: Option<u64>,
    pub burst: Option<u64>,
    /// Requests per UTC day and per UTC month.
    pub quota_per_day: Option<u64>,
    pub quota_per_month: Option<u64>,
}

/// A client initial access token's record (Keycloak's
/// `ClientInitialAccessModel`): how many dynamic client registrations it
/// still allows, and until when. The token itself is a JWT naming `id`;
/// it is not stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitialAccess {
    pub id: String,
    pub realm_id: String,
    /// Creation time, seconds since the epoch.
    pub timestamp: i64,
    /// Lifetime in seconds from `timestamp`; 0 never expires.
    pub expiration: i64,
    pub count: i64,
    pub remaining_count: i64,
}

/// An API key of a consumer. The key itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub realm_id: String,
    /// A label for people ("mobile app, production").
    pub name: String,
    /// Who calls with it; becomes the caller's username at the gateway.
    pub consumer: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    pub enabled: bool,
    pub created_timestamp: i64,
    #[serde(default)]
    pub plan: UsagePlan,
    /// Scopes the key grants (checked by routes' `scopes_any`/`scopes_all`).
    #[serde(default)]
    pub scopes: Vec<String>,
}
