//! Keycloak's JSON representations (RealmRepresentation, ClientRepresentation,
//! UserRepresentation, GroupRepresentation, RoleRepresentation...) and their
//! conversion to and from the domain model. Updates are partial, as in
//! Keycloak: a field absent from the JSON keeps its value; fields we do not
//! model are kept in `extra` and returned unchanged.

use gatehouse_core::model::{
    Attributes, Client, ClientScope, Group, ProtocolMapper, Realm, Role, User,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}
fn b(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(Value::as_bool)
}
fn i(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}
fn strings(v: &Value, k: &str) -> Option<Vec<String>> {
    v.get(k).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// Keycloak attributes: `{"k": ["v", ...]}`; a bare string value is accepted.
pub fn attributes(v: &Value) -> Option<Attributes> {
    let o = v.get("attributes")?.as_object()?;
    let mut out = Attributes::new();
    // Keycloak (Jackson) reads a number or a boolean where a string is
    // expected as its text, and a single value as a one-element list: so
    // does this, rather than drop the attribute.
    let text = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    for (k, val) in o {
        let list = match val {
            Value::Array(a) => a.iter().filter_map(text).collect(),
            Value::Null => continue,
            single => match text(single) {
                Some(t) => vec![t],
                None => continue,
            },
        };
        out.insert(k.clone(), list);
    }
    Some(out)
}

const REALM_FIELDS: &[&str] = &[
    "id",
    "realm",
    "displayName",
    "enabled",
    "accessTokenLifespan",
    "ssoSessionIdleTimeout",
    "ssoSessionMaxLifespan",
    "offlineSessionIdleTimeout",
    "revokeRefreshToken",
    "defaultSignatureAlgorithm",
    "bruteForceProtected",
    "failureFactor",
    "waitIncrementSeconds",
    "maxFailureWaitSeconds",
    "maxDeltaTimeSeconds",
    "eventsEnabled",
    "adminEventsEnabled",
    "users",
    "clients",
    "groups",
    "roles",
    "refreshTokenMaxReuse",
    "clientScopes",
    "defaultDefaultClientScopes",
    "defaultOptionalClientScopes",
    "scopeMappings",
    "clientScopeMappings",
    "organizations",
    crate::oidc::security_headers::FIELD,
    // Which role is the default one is the realm's own record (see
    // `bootstrap::default_role_name`): an update does not move it.
    "defaultRole",
    "defaultRoles",
];

/// RealmRepresentation of a realm.
pub fn realm(r: &Realm) -> Value {
    let mut o = r.extra.clone();
    let base = json!({
        "id": r.id, "realm": r.name, "displayName": r.display_name, "enabled": r.enabled,
        "accessTokenLifespan": r.access_token_lifespan,
        "ssoSessionIdleTimeout": r.sso_session_idle_timeout,
        "ssoSessionMaxLifespan": r.sso_session_max_lifespan,
        "offlineSessionIdleTimeout": r.offline_session_idle_timeout,
        "revokeRefreshToken": r.revoke_refresh_token, "refreshTokenMaxReuse": 0,
        "defaultSignatureAlgorithm": r.default_signature_algorithm,
        "bruteForceProtected": r.brute_force_protected, "failureFactor": r.failure_factor,
        "waitIncrementSeconds": r.wait_increment_seconds,
        "maxFailureWaitSeconds": r.max_failure_wait_seconds,
        "maxDeltaTimeSeconds": r.max_delta_time_seconds,
        "eventsEnabled": r.events_enabled, "adminEventsEnabled": r.admin_events_enabled,
        "defaultDefaultClientScopes": r.default_default_client_scopes,
        "defaultOptionalClientScopes": r.default_optional_client_scopes,
        "sslRequired": "external", "loginWithEmailAllowed": true,
    });
    if let Value::Object(b) = base {
        for (k, v) in b {
            o.insert(k, v);
        }
    }
    if r.display_name.is_none() {
        o.remove("displayName");
    }
    // The OTP policy as Keycloak shows it: Keycloak's defaults where the
    // realm never set one, from the one place that reads it (`otp.rs`).
    for (k, v) in crate::otp::Policy::of(r).fields() {
        o.entry(k).or_insert(v);
    }
    // Keycloak's flags that read false until set.
    for key in [
        "organizationsEnabled",
        "editUsernameAllowed",
        "duplicateEmailsAllowed",
        "resetPasswordAllowed",
        "registrationAllowed",
        "registrationEmailAsUsername",
        "rememberMe",
        "permanentLockout",
        "verifyEmail",
    ] {
        o.entry(key).or_insert(json!(false));
    }
    // Keycloak's other lifespans, as they apply (`Realm` reads them).
    for (key, value) in [
        ("accessCodeLifespan", json!(r.code_lifespan())),
        ("accessCodeLifespanLogin", json!(r.login_lifespan())),
        (
            "accessCodeLifespanUserAction",
            json!(r.user_action_lifespan()),
        ),
        (
            "accessTokenLifespanForImplicitFlow",
            json!(r.implicit_token_lifespan()),
        ),
        (
            "offlineSessionMaxLifespanEnabled",
            json!(r.offline_max_lifespan().is_some()),
        ),
        ("offlineSessionMaxLifespan", json!(5_184_000)),
        (
            "oauth2DeviceCodeLifespan",
            json!(crate::oidc::device::LIFESPAN),
        ),
        (
            "oauth2DevicePollingInterval",
            json!(crate::oidc::device::INTERVAL),
        ),
    ] {
        o.entry(key).or_insert(value);
    }
    // "Remember me" sessions and client sessions: 0 means the realm's own
    // SSO timeouts.
    for key in [
        "clientSessionIdleTimeout",
        "clientSessionMaxLifespan",
        "ssoSessionIdleTimeoutRememberMe",
        "ssoSessionMaxLifespanRememberMe",
        "maxTemporaryLockouts",
    ] {
        o.entry(key).or_insert(json!(0));
    }
    // The events config as Keycloak's realm representation carries it
    // (the events/config endpoint reads these same fields).
    // Keycloak's fields that read as their defaults until set: a password
    // is the credential, no mail server, no locales offered, no extra
    // attributes (scripts index into them without checking).
    o.entry(crate::not_before::FIELD).or_insert(json!(0));
    o.entry("requiredCredentials")
        .or_insert_with(|| json!(["password"]));
    o.entry("smtpServer").or_insert_with(|| json!({}));
    o.entry("internationalizationEnabled")
        .or_insert(json!(false));
    o.entry("supportedLocales").or_insert_with(|| json!([]));
    o.entry("attributes").or_insert_with(|| json!({}));
    o.entry("eventsListeners")
        .or_insert_with(|| json!(["jboss-logging"]));
    o.entry("enabledEventTypes").or_insert_with(|| json!([]));
    o.entry("adminEventsDetailsEnabled").or_insert(json!(false));
    let (quick_ms, quick_wait) = r.quick_login_check();
    o.entry("quickLoginCheckMilliSeconds")
        .or_insert(json!(quick_ms));
    o.entry("minimumQuickLoginWaitSeconds")
        .or_insert(json!(quick_wait));
    // The lifespans of the links Gatehouse mails (`action_token.rs`).
    o.entry("actionTokenGeneratedByAdminLifespan")
        .or_insert_with(|| json!(crate::action_token::admin_lifespan(r)));
    o.entry("actionTokenGeneratedByUserLifespan")
        .or_insert_with(|| json!(crate::action_token::user_lifespan(r, "")));
    o.insert(
        crate::oidc::security_headers::FIELD.into(),
        crate::oidc::security_headers::representation(&r.extra),
    );
    for kind in [crate::flows::Kind::Browser, crate::flows::Kind::DirectGrant] {
        let (key, _) = kind.binding();
        o.entry(key)
            .or_insert_with(|| json!(crate::flows::bound_alias(r, kind)));
    }
    Value::Object(o)
}

/// The realm's default groups (`defaultGroups`, paths), kept with the
/// representation's other fields.
pub fn default_group_paths(r: &Realm) -> Vec<String> {
    r.extra
        .get("defaultGroups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What Keycloak shows for a secret it will not send back.
pub const SECRET_MASK: &str = "**********";

/// A realm read back and written again carries the masked SMTP password:
/// it means "unchanged", so the stored one is kept.
fn keep_masked_password(new: &mut Value, old: Option<&Value>) {
    if new["password"].as_str() == Some(SECRET_MASK) {
        match old.and_then(|o| o.get("password")) {
            Some(p) => new["password"] = p.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("password");
                }
            }
        }
    }
}

/// The realm as an admin reads it: the SMTP password masked, as Keycloak
/// shows it (export keeps it, since the file must restore the realm).
pub fn mask_realm_secrets(v: &mut Value) {
    if v["smtpServer"]["password"]
        .as_str()
        .is_some_and(|p| !p.is_empty())
    {
        v["smtpServer"]["password"] = json!(SECRET_MASK);
    }
}

/// Applies a (partial) RealmRepresentation.
pub fn apply_realm(r: &mut Realm, v: &Value) -> Result<(), String> {
    if let Some(n) = s(v, "realm") {
        valid_name(&n)?;
        r.name = n;
    }
    if v.get("displayName").is_some() {
        r.display_name = s(v, "displayName");
    }
    r.enabled = b(v, "enabled").unwrap_or(r.enabled);
    // Keycloak's representation holds these as 32-bit integers; a larger
    // lifespan would overflow the arithmetic on it (`now + lifespan`).
    let pos = |k: &str, cur: i64| -> Result<i64, String> {
        match i(v, k) {
            Some(x) if x <= 0 => Err(format!("{k} must be positive")),
            Some(x) if x > i64::from(i32::MAX) => Err(format!("{k} is out of range")),
            Some(x) => Ok(x),
            None => Ok(cur),
        }
    };
    r.access_token_lifespan = pos("accessTokenLifespan", r.access_token_lifespan)?;
    r.sso_session_idle_timeout = pos("ssoSessionIdleTimeout", r.sso_session_idle_timeout)?;
    r.sso_session_max_lifespan = pos("ssoSessionMaxLifespan", r.sso_session_max_lifespan)?;
    r.offline_session_idle_timeout =
        pos("offlineSessionIdleTimeout", r.offline_session_idle_timeout)?;
    r.revoke_refresh_token = b(v, "revokeRefreshToken").unwrap_or(r.revoke_refresh_token);
    if let Some(a) = s(v, "defaultSignatureAlgorithm") {
        gatehouse_jose::keys::Alg::parse(&a).map_err(|e| e.to_string())?;
        r.default_signature_algorithm = a;
    }
    r.brute_force_protected = b(v, "bruteForceProtected").unwrap_or(r.brute_force_protected);
    r.failure_factor = pos("failureFactor", r.failure_factor)?;
    r.wait_increment_seconds = pos("waitIncrementSeconds", r.wait_increment_seconds)?;
    r.max_failure_wait_seconds = pos("maxFailureWaitSeconds", r.max_failure_wait_seconds)?;
    r.max_delta_time_seconds = pos("maxDeltaTimeSeconds", r.max_delta_time_seconds)?;
    r.events_enabled = b(v, "eventsEnabled").unwrap_or(r.events_enabled);
    r.admin_events_enabled = b(v, "adminEventsEnabled").unwrap_or(r.admin_events_enabled);
    if let Some(d) = strings(v, "defaultDefaultClientScopes") {
        r.default_default_client_scopes = d;
    }
    if let Some(d) = strings(v, "defaultOptionalClientScopes") {
        r.default_optional_client_scopes = d;
    }
    if let Some(h) = v
        .get(crate::oidc::security_headers::FIELD)
        .filter(|h| !h.is_null())
    {
        crate::oidc::security_headers::merge(&mut r.extra, h)?;
    }
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            if !REALM_FIELDS.contains(&k.as_str()) {
                let mut val = val.clone();
                if k == "smtpServer" {
                    keep_masked_password(&mut val, r.extra.get(k));
                }
                r.extra.insert(k.clone(), val);
            }
        }
    }
    // The bound flows decide who is asked for a one-time code: one that
    // Gatehouse cannot run as written is refused, never half-run.
    crate::flows::check(r).map_err(|e| e.to_string())?;
    // Client policies with executors would look enforced and not be.
    crate::admin::client_policies::check(r)?;
    Ok(())
}

/// Realm, client and user names end up in URLs and claims: keep them sane.
pub fn valid_name(n: &str) -> Result<(), String> {
    if n.is_empty()
        || n.len() > 255
        || n.contains(['/', '\\', '?', '#', '%'])
        || n.chars().any(char::is_control)
    {
        Err("invalid name".into())
    } else {
        Ok(())
    }
}

const CLIENT_FIELDS: &[&str] = &[
    "id",
    "clientId",
    "name",
    "description",
    "enabled",
    "publicClient",
    "bearerOnly",
    "secret",
    "redirectUris",
    "webOrigins",
    "standardFlowEnabled",
    "directAccessGrantsEnabled",
    "serviceAccountsEnabled",
    "implicitFlowEnabled",
    "fullScopeAllowed",
    "attributes",
    "protocolMappers",
    "defaultClientScopes",
    "optionalClientScopes",
    "protocol",
    "clientAuthenticatorType",
    // Authorization settings are read by `admin::authz` (validated,
    // subjects resolved), never copied in as they come.
    crate::authz::SETTINGS,
    crate::authz::STORED,
];

/// ClientRepresentation. The secret is included only when asked (admin GET
/// of a single client, as Keycloak does for confidential clients).
pub fn client(c: &Client, with_secret: bool) -> Value {
    let mut o = c.extra.clone();
    o.remove(crate::authz::STORED);
    let base = json!({
        "id": c.id, "clientId": c.client_id, "name": c.name, "description": c.description,
        "enabled": c.enabled, "publicClient": c.public_client, "bearerOnly": c.bearer_only,
        "redirectUris": c.redirect_uris, "webOrigins": c.web_origins,
        "standardFlowEnabled": c.standard_flow_enabled,
        "directAccessGrantsEnabled": c.direct_access_grants_enabled,
        "serviceAccountsEnabled": c.service_accounts_enabled,
        "implicitFlowEnabled": c.implicit_flow_enabled, "fullScopeAllowed": c.full_scope_allowed,
        "consentRequired": c.extra.get("consentRequired").cloned().unwrap_or(json!(false)),
        "attributes": c.attributes, "protocol": "openid-connect",
        "clientAuthenticatorType": c.client_authenticator_type,
        "protocolMappers": c.protocol_mappers.iter().map(mapper).collect::<Vec<_>>(),
        "defaultClientScopes": c.default_client_scopes,
        "optionalClientScopes": c.optional_client_scopes,
    });
    if let Value::Object(b) = base {
        for (k, v) in b {
            if !v.is_null() {
                o.insert(k, v);
            }
        }
    }
    if with_secret
        && !c.public_client
        && let Some(sec) = &c.secret
    {
        o.insert("secret".into(), json!(sec));
    }
    o.entry(crate::not_before::FIELD).or_insert(json!(0));
    Value::Object(o)
}

/// ProtocolMapperRepresentation.
pub fn mapper(m: &ProtocolMapper) -> Value {
    json!({"id": m.id, "name": m.name, "protocol": m.protocol, "protocolMapper": m.protocol_mapper, "config": m.config})
}

/// A JSON object as Keycloak's `Map<String, String>` (mapper config, scope
/// attributes): strings as they are, other values as their JSON text.
fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a ProtocolMapperRepresentation.
pub fn parse_mapper(v: &Value) -> Result<ProtocolMapper, String> {
    let name = s(v, "name").ok_or("mapper name required")?;
    let kind = s(v, "protocolMapper").ok_or("protocolMapper required")?;
    let config = v.get("config").map(string_map).unwrap_or_default();
    Ok(ProtocolMapper {
        id: s(v, "id").unwrap_or_else(gatehouse_core::id::uuid),
        name,
        protocol: s(v, "protocol").unwrap_or_else(|| "openid-connect".into()),
        protocol_mapper: kind,
        config,
    })
}

const CLIENT_SCOPE_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "protocol",
    "attributes",
    "protocolMappers",
];

/// ClientScopeRepresentation.
pub fn client_scope(c: &ClientScope) -> Value {
    let mut o = c.extra.clone();
    o.insert("id".into(), json!(c.id));
    o.insert("name".into(), json!(c.name));
    if let Some(d) = &c.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("protocol".into(), json!(c.protocol));
    o.insert("attributes".into(), json!(c.attributes));
    if !c.protocol_mappers.is_empty() {
        o.insert(
            "protocolMappers".into(),
            Value::Array(c.protocol_mappers.iter().map(mapper).collect()),
        );
    }
    Value::Object(o)
}

/// Applies a (partial) ClientScopeRepresentation. Its mappers are replaced
/// only when the representation lists them (Keycloak manages them through
/// their own endpoints otherwise).
pub fn apply_client_scope(c: &mut ClientScope, v: &Value) -> Result<(), String> {
    if let Some(n) = s(v, "name") {
        if n.is_empty() || n.len() > 255 || n.chars().any(|ch| ch.is_control() || ch == ' ') {
            return Err("invalid client scope name".into());
        }
        c.name = n;
    }
    if v.get("description").is_some() {
        c.description = s(v, "description");
    }
    if let Some(p) = s(v, "protocol") {
        if p != "openid-connect" && p != "saml" {
            return Err(format!("unsupported protocol {p}"));
        }
        c.protocol = p;
    }
    if let Some(a) = v.get("attributes").filter(|a| a.is_object()) {
        c.attributes = string_map(a);
    }
    if let Some(ms) = v.get("protocolMappers").and_then(Value::as_array) {
        c.protocol_mappers = ms.iter().map(parse_mapper).collect::<Result<_, _>>()?;
    }
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            if !CLIENT_SCOPE_FIELDS.contains(&k.as_str()) {
                c.extra.insert(k.clone(), val.clone());
            }
        }
    }
    Ok(())
}

/// Applies a (partial) ClientRepresentation.
pub fn apply_client(c: &mut Client, v: &Value) -> Result<(), String> {
    if let Some(id) = s(v, "clientId") {
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err("invalid clientId".into());
        }
        c.client_id = id;
    }
    if v.get("name").is_some() {
        c.name = s(v, "name");
    }
    if v.get("description").is_some() {
        c.description = s(v, "description");
    }
    c.enabled = b(v, "enabled").unwrap_or(c.enabled);
    c.public_client = b(v, "publicClient").unwrap_or(c.public_client);
    c.bearer_only = b(v, "bearerOnly").unwrap_or(c.bearer_only);
    if let Some(sec) = s(v, "secret").filter(|s| !s.is_empty()) {
        c.secret = Some(sec);
    }
    if let Some(r) = strings(v, "redirectUris") {
        c.redirect_uris = r;
    }
    if let Some(r) = strings(v, "webOrigins") {
        c.web_origins = r;
    }
    c.standard_flow_enabled = b(v, "standardFlowEnabled").unwrap_or(c.standard_flow_enabled);
    c.direct_access_grants_enabled =
        b(v, "directAccessGrantsEnabled").unwrap_or(c.direct_access_grants_enabled);
    c.service_accounts_enabled =
        b(v, "serviceAccountsEnabled").unwrap_or(c.service_accounts_enabled);
    c.implicit_flow_enabled = b(v, "implicitFlowEnabled").unwrap_or(c.implicit_flow_enabled);
    c.full_scope_allowed = b(v, "fullScopeAllowed").unwrap_or(c.full_scope_allowed);
    if let Some(t) = s(v, "clientAuthenticatorType") {
        if !gatehouse_core::model::CLIENT_AUTHENTICATORS.contains(&t.as_str()) {
            return Err(format!("unsupported clientAuthenticatorType {t}"));
        }
        c.client_authenticator_type = t;
    }
    if let Some(a) = v.get("attributes").and_then(Value::as_object) {
        for (k, val) in a {
            let sv = val
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| val.to_string());
            c.attributes.insert(k.clone(), sv);
        }
    }
    if let Some(ms) = v.get("protocolMappers").and_then(Value::as_array) {
        c.protocol_mappers = ms.iter().map(parse_mapper).collect::<Result<_, _>>()?;
    }
    if let Some(d) = strings(v, "defaultClientScopes") {
        c.default_client_scopes = d;
    }
    if let Some(d) = strings(v, "optionalClientScopes") {
        c.optional_client_scopes = d;
    }
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            if !CLIENT_FIELDS.contains(&k.as_str()) {
                c.extra.insert(k.clone(), val.clone());
            }
        }
    }
    if c.public_client {
        c.secret = None;
    } else if c.secret.is_none() && !c.bearer_only {
        c.secret = Some(gatehouse_core::id::token());
    }
    Ok(())
}

/// UserRepresentation.
pub fn user(u: &User) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(u.id));
    o.insert("username".into(), json!(u.username));
    if let Some(e) = &u.email {
        o.insert("email".into(), json!(e));
    }
    if let Some(f) = &u.first_name {
        o.insert("firstName".into(), json!(f));
    }
    if let Some(l) = &u.last_name {
        o.insert("lastName".into(), json!(l));
    }
    o.insert("emailVerified".into(), json!(u.email_verified));
    o.insert("enabled".into(), json!(u.enabled));
    o.insert("createdTimestamp".into(), json!(u.created_timestamp));
    o.insert("totp".into(), json!(false));
    // What `disable-credential-types` could take away: listings, which read
    // no credentials, leave it empty like `totp` false (a single user's
    // read fills both in).
    o.insert("disableableCredentialTypes".into(), json!([]));
    o.insert("requiredActions".into(), json!(u.required_actions));
    o.insert("notBefore".into(), json!(0));
    if !u.attributes.is_empty() {
        o.insert("attributes".into(), json!(u.attributes));
    }
    if let Some(c) = &u.service_account_client_id {
        o.insert("serviceAccountClientId".into(), json!(c));
    }
    if let Some(l) = &u.federation_link {
        o.insert("federationLink".into(), json!(l));
    }
    o.insert(
        "access".into(),
        json!({"manageGroupMembership": true, "view": true, "mapRoles": true, "impersonate": true, "manage": true}),
    );
    Value::Object(o)
}

/// Applies a (partial) UserRepresentation.
pub fn apply_user(u: &mut User, v: &Value) -> Result<(), String> {
    apply_user_fields(u, v)?;
    email_sane(u.email.as_deref())
}

/// The least an e-mail must be wherever it comes from (an import, a
/// profile without an `email` rule): an `@`, and a length mail can carry.
pub fn email_sane(email: Option<&str>) -> Result<(), String> {
    match email {
        Some(e) if !e.contains('@') || e.len() > 254 => Err("invalid email".into()),
        _ => Ok(()),
    }
}

/// [`apply_user`] without the e-mail check, for the admin API, where the
/// realm's user profile reports a bad one in Keycloak's form first.
pub fn apply_user_fields(u: &mut User, v: &Value) -> Result<(), String> {
    // A list given as anything else (`"credentials": "pw"`) is a client
    // mistake to report, not a field to skip: the user would be created
    // without the password or groups the caller meant.
    for key in ["credentials", "groups", "requiredActions", "realmRoles"] {
        if v.get(key).is_some_and(|x| !x.is_array() && !x.is_null()) {
            return Err(format!("{key} must be a list"));
        }
    }
    if v.get("attributes")
        .is_some_and(|x| !x.is_object() && !x.is_null())
    {
        return Err("attributes must be an object".into());
    }
    if let Some(n) = s(v, "username") {
        valid_name(&n)?;
        u.username = n.to_lowercase();
    }
    if v.get("email").is_some() {
        // Keycloak keeps e-mail addresses in lower case, as usernames.
        u.email = s(v, "email")
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
    }
    if v.get("firstName").is_some() {
        u.first_name = s(v, "firstName");
    }
    if v.get("lastName").is_some() {
        u.last_name = s(v, "lastName");
    }
    u.email_verified = b(v, "emailVerified").unwrap_or(u.email_verified);
    u.enabled = b(v, "enabled").unwrap_or(u.enabled);
    if let Some(a) = attributes(v) {
        u.attributes = a;
    }
    if let Some(r) = strings(v, "requiredActions") {
        u.required_actions = r;
    }
    Ok(())
}

/// RoleRepresentation.
pub fn role(r: &Role, composite: bool, container: &str) -> Value {
    let mut v = json!({
        "id": r.id, "name": r.name, "composite": composite,
        "clientRole": r.client_id.is_some(), "containerId": container, "attributes": r.attributes,
    });
    // Keycloak leaves out what is null.
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    v
}

/// The brief RoleRepresentation of listings and mappings (no attributes).
pub fn role_brief(r: &Role, composite: bool, container: &str) -> Value {
    let mut v = role(r, composite, container);
    if let Some(o) = v.as_object_mut() {
        o.remove("attributes");
    }
    v
}

/// The `/a/b` path of a group among all of a realm's groups.
pub fn group_path(all: &[Group], id: &str) -> String {
    let mut parts: Vec<&str> = lineage(all, id).map(|g| g.name.as_str()).collect();
    parts.reverse();
    format!("/{}", parts.join("/"))
}

/// The group `id` and its parents, nearest first (at most 101: a cycle
/// in stored data ends the walk rather than the process).
pub fn lineage<'a>(all: &'a [Group], id: &str) -> impl Iterator<Item = &'a Group> + 'a {
    let mut cur = all.iter().find(|g| g.id == id);
    std::iter::from_fn(move || {
        let g = cur?;
        cur = g
            .parent_id
            .as_ref()
            .and_then(|p| all.iter().find(|x| &x.id == p));
        Some(g)
    })
    .take(101)
}

/// The group a Keycloak group path (`/parent/child`; a top-level name
/// without the slash is accepted too) names.
pub fn group_by_path<'a>(all: &'a [Group], path: &str) -> Option<&'a Group> {
    let want = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    all.iter().find(|g| group_path(all, &g.id) == want)
}

/// The brief GroupRepresentation of a user's group listing: id, name,
/// path (and parent and description when there are some).
pub fn group_brief(g: &Group, all: &[Group]) -> Value {
    let mut o = json!({"id": g.id, "name": g.name, "path": group_path(all, &g.id)});
    if let Some(p) = &g.parent_id {
        o["parentId"] = json!(p);
    }
    if let Some(d) = &g.description {
        o["description"] = json!(d);
    }
    o
}

/// GroupRepresentation, with `subGroups` filled from `all` when `deep`.
pub fn group(g: &Group, all: &[Group], deep: bool) -> Value {
    let children: Vec<&Group> = all
        .iter()
        .filter(|c| c.parent_id.as_deref() == Some(&g.id))
        .collect();
    let mut o = json!({
        "id": g.id, "name": g.name, "path": group_path(all, &g.id),
        "attributes": g.attributes, "realmRoles": [], "clientRoles": {},
        "subGroupCount": children.len(),
        "subGroups": if deep { children.iter().map(|c| group(c, all, true)).collect::<Vec<_>>() } else { vec![] },
    });
    if let (Some(p), Some(obj)) = (&g.parent_id, o.as_object_mut()) {
        obj.insert("parentId".into(), json!(p));
    }
    if let (Some(d), Some(obj)) = (&g.description, o.as_object_mut()) {
        obj.insert("description".into(), json!(d));
    }
    o
}

/// CredentialRepresentation: `secretData` only in an export (the admin
/// API shows the metadata alone, as Keycloak does).
pub fn credential(c: &gatehouse_core::model::Credential, with_secret: bool) -> Value {
    let mut v = json!({"id": c.id, "type": c.kind, "createdDate": c.created_date,
        "credentialData": c.credential_data});
    if with_secret {
        v["secretData"] = json!(c.secret_data);
    }
    if let Some(l) = &c.user_label {
        v["userLabel"] = json!(l);
    }
    v
}
