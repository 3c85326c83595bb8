//! `/realms/{realm}/clients-registrations/openid-connect[/{client_id}]`:
//! OpenID Connect Dynamic Client Registration (RFC 7591) and its
//! management protocol (RFC 7592), at Keycloak's path, so that relying
//! parties that register themselves work against Gatehouse; and
//! `/realms/{realm}/clients-registrations/default[/{client_id}]`, the same
//! with Keycloak's ClientRepresentation, under Keycloak's default policies
//! for what a registrant may ask (mapper types, client scopes).
//!
//! Who may register: the holder of a client initial access token (created
//! by an admin at `/admin/realms/{realm}/clients-initial-access`, spent one
//! registration at a time) or a master-realm admin's bearer token.
//! Anonymous registration is refused, as Keycloak's default "Trusted Hosts"
//! policy (with no trusted host) refuses it. Each registration answers a
//! registration access token that reads, updates (rotating the token) and
//! deletes that one client.

use crate::error::OAuthError;
use crate::oidc::client_auth::ct_eq;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{Router, post};
use gatehouse_core::model::{Client, Event, InitialAccess, Realm};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The `typ` of a registration access token (Keycloak's name).
const REGISTRATION_TYP: &str = "RegistrationAccessToken";
/// The `typ` of an initial access token (Keycloak's name).
const INITIAL_TYP: &str = "InitialAccessToken";
/// Where a client keeps the id of its current registration access token;
/// Keycloak's `ClientRepresentation.registrationAccessToken`.
const TOKEN_ID: &str = "registrationAccessToken";

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Registration routes: the OIDC provider, and Keycloak's `default`
/// provider, which speaks Keycloak's ClientRepresentation (what Keycloak's
/// own scripts and CLI use).
pub fn routes() -> Router<Arc<Idp>> {
    const P: &str = "/realms/{realm}/clients-registrations/openid-connect";
    const D: &str = "/realms/{realm}/clients-registrations/default";
    Router::new()
        .route(P, post(register))
        .route(
            &format!("{P}/{{client_id}}"),
            axum::routing::get(read).put(update).delete(remove),
        )
        .route(D, post(register_default))
        .route(
            &format!("{D}/{{client_id}}"),
            axum::routing::get(read_default)
                .put(update_default)
                .delete(remove),
        )
}

/// Keycloak's default "Allowed Protocol Mapper Types" registration policy:
/// mappers that copy the user's own data. Hardcoded claims and roles, or
/// audience mappers, would let a registrant mint tokens an API trusts.
pub const ALLOWED_MAPPERS: [&str; 8] = [
    "oidc-usermodel-attribute-mapper",
    "oidc-usermodel-property-mapper",
    "oidc-full-name-mapper",
    "oidc-address-mapper",
    "oidc-sha256-pairwise-sub-mapper",
    "saml-user-attribute-mapper",
    "saml-user-property-mapper",
    "saml-role-list-mapper",
];

/// Who is registering, which picks the policies that apply (Keycloak's
/// `anonymous` and `authenticated` sub-types): an initial access token
/// (its record's id), an admin, or anyone.
enum Registrant {
    Initial(String),
    Admin,
    Anonymous,
}

impl Registrant {
    fn sub_type(&self) -> &'static str {
        match self {
            Registrant::Anonymous => "anonymous",
            _ => "authenticated",
        }
    }
}

fn policy_refused(name: &str, details: &str) -> OAuthError {
    forbidden(&format!(
        "Policy '{name}' rejected request to client-registration service. Details: {details}"
    ))
}

/// The realm's "Allowed Protocol Mapper Types" and "Allowed Client Scopes"
/// policies for the registrant's kind (`admin/components.rs`; Keycloak's
/// defaults: the mapper types above, the realm's default scopes); 403
/// naming the policy otherwise. An admin registering is not restricted.
fn check_policies(realm: &Realm, rep: &Value, who: &Registrant) -> Result<(), OAuthError> {
    if matches!(who, Registrant::Admin) {
        return Ok(());
    }
    check_policies_of(realm, rep, who.sub_type())
}

/// The same for a policy sub-type (`authenticated` for updates made with
/// a registration access token).
fn check_policies_of(realm: &Realm, rep: &Value, sub_type: &str) -> Result<(), OAuthError> {
    let policies = crate::admin::components::registration_policies(realm, sub_type);
    for p in policies
        .iter()
        .filter(|p| p.provider_id == "allowed-protocol-mappers")
    {
        let allowed = p.values("allowed-protocol-mapper-types");
        for m in rep
            .get("protocolMappers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = m["protocolMapper"].as_str().unwrap_or_default();
            if !allowed.contains(&kind) {
                return Err(policy_refused(
                    &p.name,
                    &format!("ProtocolMapper type not allowed: {kind}"),
                ));
            }
        }
    }
    for p in policies
        .iter()
        .filter(|p| p.provider_id == "allowed-client-templates")
    {
        let defaults = p.value("allow-default-scopes") != Some("false");
        let listed = p.values("allowed-client-scopes");
        for field in ["defaultClientScopes", "optionalClientScopes"] {
            for scope in rep
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = scope.as_str().unwrap_or_default();
                let is_default = realm
                    .default_default_client_scopes
                    .iter()
                    .chain(&realm.default_optional_client_scopes)
                    .any(|s| s == name);
                let permitted = (defaults && is_default) || listed.contains(&name);
                if !permitted {
                    return Err(policy_refused(
                        &p.name,
                        &format!("Not permitted to use specified clientScope: {name}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether trusted-host entry `entry` names `host` (a host name or IP
/// literal): the same name, an IP in a CIDR block, or a subdomain of a
/// `*.domain` entry.
fn host_matches(entry: &str, host: &str) -> bool {
    let (entry, host) = (entry.trim().to_ascii_lowercase(), host.to_ascii_lowercase());
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(domain) = entry.strip_prefix("*.") {
        return host.ends_with(&format!(".{domain}"));
    }
    if let (Ok(net), Ok(ip)) = (
        entry.parse::<ipnet::IpNet>(),
        host.parse::<std::net::IpAddr>(),
    ) {
        return net.contains(&ip);
    }
    entry == host
}

/// Whether the request's address is one of the trusted hosts: an IP or
/// CIDR entry directly, a host name by what it resolves to.
async fn address_trusted(entries: &[&str], ip: Option<&str>) -> bool {
    let Some(ip) = ip.and_then(|i| i.parse::<std::net::IpAddr>().ok()) else {
        return false;
    };
    for e in entries {
        if host_matches(e, &ip.to_string()) {
            return true;
        }
        if e.starts_with("*.") || e.parse::<ipnet::IpNet>().is_ok() {
            continue;
        }
        if let Ok(addrs) = tokio::net::lookup_host((e.trim(), 0)).await
            && addrs.into_iter().any(|a| a.ip() == ip)
        {
            return true;
        }
    }
    false
}

/// The realm's policies for anonymous registrations, on the client about
/// to be created: Trusted Hosts (the request's address, and every URI the
/// client names), Max Clients Limit, and what Consent Required and Full
/// Scope Disabled make of the client.
async fn anonymous_policies(
    idp: &Idp,
    realm: &Realm,
    ip: Option<&str>,
    c: &mut Client,
) -> Result<(), OAuthError> {
    for p in crate::admin::components::registration_policies(realm, "anonymous") {
        match p.provider_id.as_str() {
            "trusted-hosts" => {
                let hosts = p.values("trusted-hosts");
                if p.value("host-sending-registration-request-must-match") != Some("false")
                    && !address_trusted(&hosts, ip).await
                {
                    return Err(policy_refused(&p.name, "Host not trusted."));
                }
                if p.value("client-uris-must-match") != Some("false") {
                    let mut uris: Vec<&str> = c.redirect_uris.iter().map(String::as_str).collect();
                    for k in [
                        "jwks.url",
                        "backchannel.logout.url",
                        "frontchannel.logout.url",
                        "logoUri",
                        "policyUri",
                        "tosUri",
                    ] {
                        uris.extend(c.attributes.get(k).map(String::as_str));
                    }
                    let base = c.extra.get("baseUrl").and_then(Value::as_str);
                    for u in uris.into_iter().chain(base) {
                        let host = url::Url::parse(u.trim_end_matches('*'))
                            .ok()
                            .and_then(|p| p.host_str().map(str::to_owned));
                        if !host.is_some_and(|h| hosts.iter().any(|e| host_matches(e, &h))) {
                            return Err(policy_refused(
                                &p.name,
                                &format!(
                                    "URL doesn't match any trusted host or trusted domain: {u}"
                                ),
                            ));
                        }
                    }
                }
            }
            "max-clients" => {
                let max: usize = p
                    .value("max-clients")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200);
                if idp.store.clients(&realm.id).await?.len() >= max {
                    return Err(policy_refused(
                        &p.name,
                        &format!("It's allowed to have max {max} clients per realm"),
                    ));
                }
            }
            "consent-required" => {
                c.extra.insert("consentRequired".into(), json!(true));
            }
            "scope" => c.full_scope_allowed = false,
            _ => {}
        }
    }
    Ok(())
}

fn representation_body(body: &[u8]) -> Result<Value, OAuthError> {
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad_metadata("Client representation must be a JSON object")),
    }
}

/// The ClientRepresentation answered by the `default` provider: with the
/// secret and, in `registrationAccessToken`, the token itself.
fn representation(c: &Client, token: &str) -> Value {
    let mut rep = crate::repr::client(c, true);
    rep["registrationAccessToken"] = json!(token);
    rep
}

async fn register_default(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let who = may_register(&idp, &realm, &headers).await?;
    let mut rep = representation_body(&body)?;
    check_policies(&realm, &rep, &who)?;
    if rep
        .get("clientId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        rep["clientId"] = json!(gatehouse_core::id::uuid());
    }
    // The internal id and the registration token are the server's to set.
    if let Some(o) = rep.as_object_mut() {
        o.remove("id");
        o.remove(TOKEN_ID);
    }
    let mut c = crate::admin::clients::client_from_rep(&realm, &rep).map_err(from_admin)?;
    // Checked before the token is spent (insert_client checks again, in
    // case of a race): a taken clientId must not cost a registration.
    if idp
        .store
        .client_by_client_id(&realm.id, &c.client_id)
        .await?
        .is_some()
    {
        return Err(bad_metadata(format!(
            "Client Identifier in use: {}",
            c.client_id
        )));
    }
    admit(&idp, &realm, &who, &ext, &headers, &mut c).await?;
    let token = rotate_registration_token(&idp, &realm, &mut c).await?;
    let ev = event(&realm, "CLIENT_REGISTER", &c.client_id);
    let c = crate::admin::clients::insert_client(&idp, &realm, c, &[ev])
        .await
        .map_err(from_admin)?;
    let uri = format!(
        "{}/clients-registrations/default/{}",
        idp.issuer(&realm.name),
        c.client_id
    );
    Ok(answer(
        StatusCode::CREATED,
        representation(&c, &token),
        Some(&uri),
    ))
}

async fn read_default(
    State(idp): State<Arc<Idp>>,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (c, token) = view(&idp, &realm, &headers, &client_id).await?;
    Ok(answer(StatusCode::OK, representation(&c, &token), None))
}

async fn update_default(
    State(idp): State<Arc<Idp>>,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let who = caller(&idp, &realm, &headers).await?;
    let by_admin = matches!(who, Caller::Admin);
    let mut c = managed_by(&idp, &realm, who, &client_id).await?;
    let rep = representation_body(&body)?;
    if !by_admin {
        check_policies_of(&realm, &rep, "authenticated")?;
    }
    if rep
        .get("clientId")
        .and_then(Value::as_str)
        .is_some_and(|id| id != c.client_id)
    {
        return Err(bad_metadata("Client Identifier modified"));
    }
    crate::admin::clients::apply_rep(&realm, &mut c, &rep).map_err(from_admin)?;
    let token = save(&idp, &realm, &mut c).await?;
    Ok(answer(StatusCode::OK, representation(&c, &token), None))
}

/// Who is calling, from the bearer token.
enum Caller {
    Anonymous,
    /// An initial access token: the record it spends from.
    Initial(String),
    /// A registration access token: its id and the client it manages.
    Registration {
        jti: String,
        client_id: String,
    },
    /// A master-realm admin.
    Admin,
}

fn invalid_token(d: &str) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", d)
}

fn forbidden(d: &str) -> OAuthError {
    OAuthError::new(StatusCode::FORBIDDEN, "insufficient_scope", d)
}

fn bad_metadata(d: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", d)
}

/// An admin-side refusal (validation, a taken clientId) in RFC 7591 terms.
fn from_admin(e: crate::error::AdminError) -> OAuthError {
    if e.status.is_server_error() {
        OAuthError::internal(e.message)
    } else {
        bad_metadata(e.message)
    }
}

async fn caller(idp: &Idp, realm: &Realm, headers: &HeaderMap) -> Result<Caller, OAuthError> {
    let Some(token) = crate::oidc::userinfo::bearer(headers) else {
        return Ok(Caller::Anonymous);
    };
    let ring = idp.keyring(realm).await?;
    let Ok(claims) = gatehouse_jose::sign::verify_hs512(&ring.hs_secret, token) else {
        // Not one of ours: perhaps an admin's access token.
        return match crate::admin::guard(idp, headers).await {
            Ok(_) => Ok(Caller::Admin),
            Err(_) => Err(invalid_token("Failed decode token")),
        };
    };
    if claims["iss"].as_str() != Some(idp.issuer(&realm.name).as_str()) {
        return Err(invalid_token("Invalid token issuer"));
    }
    let now = gatehouse_core::time::now();
    if claims["exp"].as_i64().is_some_and(|e| e <= now) {
        return Err(invalid_token("Expired token"));
    }
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    match claims["typ"].as_str() {
        Some(INITIAL_TYP) => Ok(Caller::Initial(jti)),
        Some(REGISTRATION_TYP) => Ok(Caller::Registration {
            jti,
            client_id: claims["azp"].as_str().unwrap_or_default().to_owned(),
        }),
        _ => Err(invalid_token("Invalid token type")),
    }
}

/// Who is registering; a registration access token cannot create clients.
async fn may_register(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<Registrant, OAuthError> {
    match caller(idp, realm, headers).await? {
        Caller::Initial(id) => Ok(Registrant::Initial(id)),
        Caller::Admin => Ok(Registrant::Admin),
        Caller::Anonymous => Ok(Registrant::Anonymous),
        Caller::Registration { .. } => Err(forbidden(
            "A registration access token cannot register clients: use an initial access token",
        )),
    }
}

/// The last check before a valid registration is stored: an anonymous
/// one passes the realm's anonymous policies (which may also shape the
/// client); an initial access token spends one use, atomically, so a
/// one-use token registers one client however many try (and only once
/// the request is known to be valid, as Keycloak does).
async fn admit(
    idp: &Idp,
    realm: &Realm,
    who: &Registrant,
    ext: &axum::http::Extensions,
    headers: &HeaderMap,
    c: &mut Client,
) -> Result<(), OAuthError> {
    match who {
        Registrant::Anonymous => {
            let ip = crate::oidc::form::client_ip(idp, ext, headers);
            anonymous_policies(idp, realm, ip.as_deref(), c).await
        }
        Registrant::Initial(id)
            if !idp
                .store
                .use_initial_access(&realm.id, id, gatehouse_core::time::now())
                .await? =>
        {
            Err(invalid_token(
                "Initial access token expired, spent or revoked",
            ))
        }
        _ => Ok(()),
    }
}

/// A managed client for reading, recorded as `CLIENT_INFO`, with its
/// current registration access token re-signed (the token stays the same
/// one, as Keycloak's does on a read).
async fn view(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<(Client, String), OAuthError> {
    let c = managed(idp, realm, headers, client_id).await?;
    idp.record(event(realm, "CLIENT_INFO", &c.client_id))
        .await?;
    let token = match c.extra.get(TOKEN_ID).and_then(Value::as_str) {
        Some(jti) => resign(idp, realm, &c.client_id, jti).await?,
        None => String::new(),
    };
    Ok((c, token))
}

/// Saves an updated client with a new registration access token (every
/// update rotates it, as Keycloak does) and returns that token.
async fn save(idp: &Idp, realm: &Realm, c: &mut Client) -> Result<String, OAuthError> {
    let token = rotate_registration_token(idp, realm, c).await?;
    let ev = event(realm, "CLIENT_UPDATE", &c.client_id);
    idp.store.update_client(c, &[ev]).await?;
    if c.service_accounts_enabled {
        crate::admin::clients::ensure_service_account(idp, realm, c).await?;
    }
    crate::keyring::prepare_for_client(idp, realm, c).await?;
    Ok(token)
}

/// A registration event (Keycloak's `CLIENT_REGISTER`, `CLIENT_INFO`...).
fn event(realm: &Realm, kind: &str, client_id: &str) -> Event {
    let mut e = Event::user(realm, kind);
    e.client_id = Some(client_id.to_owned());
    e
}

async fn register(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let who = may_register(&idp, &realm, &headers).await?;
    let meta = metadata(&body)?;
    if meta.contains_key("client_id") {
        return Err(bad_metadata("Client Identifier included"));
    }
    let mut c = crate::admin::clients::new_client(&realm, &gatehouse_core::id::uuid());
    apply(&mut c, &meta)?;
    subject_type(&idp, &mut c, &meta).await?;
    admit(&idp, &realm, &who, &ext, &headers, &mut c).await?;
    let token = rotate_registration_token(&idp, &realm, &mut c).await?;
    let ev = event(&realm, "CLIENT_REGISTER", &c.client_id);
    let c = crate::admin::clients::insert_client(&idp, &realm, c, &[ev])
        .await
        .map_err(from_admin)?;
    let uri = client_uri(&idp, &realm, &c.client_id);
    let mut out = external(&c, &uri, &token, &realm);
    out.insert(
        "client_id_issued_at".into(),
        json!(gatehouse_core::time::now()),
    );
    Ok(answer(StatusCode::CREATED, Value::Object(out), Some(&uri)))
}

/// The client a registration access token (or an admin) may manage.
async fn managed(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Client, OAuthError> {
    managed_by(idp, realm, caller(idp, realm, headers).await?, client_id).await
}

/// The same for a caller already known.
async fn managed_by(
    idp: &Idp,
    realm: &Realm,
    who: Caller,
    client_id: &str,
) -> Result<Client, OAuthError> {
    let denied = || invalid_token("Not authorized to manage this client");
    let client = idp.store.client_by_client_id(&realm.id, client_id).await?;
    match who {
        Caller::Admin => client.ok_or_else(|| {
            OAuthError::new(StatusCode::NOT_FOUND, "invalid_request", "Client not found")
        }),
        Caller::Registration {
            jti,
            client_id: azp,
        } => {
            let c = client.ok_or_else(denied)?;
            let current = c.extra.get(TOKEN_ID).and_then(Value::as_str);
            let same = current.is_some_and(|t| ct_eq(t, &jti));
            if azp == c.client_id && same {
                Ok(c)
            } else {
                Err(denied())
            }
        }
        Caller::Initial(_) => Err(invalid_token("Not initial access token allowed")),
        Caller::Anonymous => Err(denied()),
    }
}

async fn read(
    State(idp): State<Arc<Idp>>,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let (c, token) = view(&idp, &realm, &headers, &client_id).await?;
    let uri = client_uri(&idp, &realm, &c.client_id);
    Ok(answer(
        StatusCode::OK,
        Value::Object(external(&c, &uri, &token, &realm)),
        None,
    ))
}

async fn update(
    State(idp): State<Arc<Idp>>,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let mut c = managed(&idp, &realm, &headers, &client_id).await?;
    let meta = metadata(&body)?;
    // RFC 7592 §2.2: the body names the client it updates.
    if meta.get("client_id").and_then(Value::as_str) != Some(c.client_id.as_str()) {
        return Err(bad_metadata("client_id does not match the client"));
    }
    if let Some(s) = meta.get("client_secret").and_then(Value::as_str)
        && c.secret.as_deref().is_some_and(|cur| !ct_eq(cur, s))
    {
        return Err(bad_metadata("client_secret does not match the client"));
    }
    apply(&mut c, &meta)?;
    subject_type(&idp, &mut c, &meta).await?;
    let token = save(&idp, &realm, &mut c).await?;
    let uri = client_uri(&idp, &realm, &c.client_id);
    Ok(answer(
        StatusCode::OK,
        Value::Object(external(&c, &uri, &token, &realm)),
        None,
    ))
}

async fn remove(
    State(idp): State<Arc<Idp>>,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let c = managed(&idp, &realm, &headers, &client_id).await?;
    let ev = event(&realm, "CLIENT_DELETE", &c.client_id);
    idp.store.delete_client(&realm.id, &c.id, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A registration answer: it holds credentials, so never cached (RFC
/// 7591 §3.2.1); `location` names a new registration.
fn answer(status: StatusCode, body: Value, location: Option<&str>) -> Response {
    let mut resp = (status, Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, v);
    }
    resp
}

fn client_uri(idp: &Idp, realm: &Realm, client_id: &str) -> String {
    format!(
        "{}/clients-registrations/openid-connect/{}",
        idp.issuer(&realm.name),
        client_id
    )
}

/// Gives `c` a new registration access token, which the previous one no
/// longer matches, and returns it; the caller saves `c` (Keycloak's admin
/// `POST /clients/{id}/registration-access-token`).
pub async fn rotate_registration_token(
    idp: &Idp,
    realm: &Realm,
    c: &mut Client,
) -> Result<String, OAuthError> {
    let jti = gatehouse_core::id::uuid();
    let token = resign(idp, realm, &c.client_id, &jti).await?;
    c.extra.insert(TOKEN_ID.into(), json!(jti));
    Ok(token)
}

/// The registration access token with id `jti` for `client_id` (signed
/// anew each time; its id is what the client stores).
async fn resign(
    idp: &Idp,
    realm: &Realm,
    client_id: &str,
    jti: &str,
) -> Result<String, OAuthError> {
    let claims = json!({"jti": jti, "typ": REGISTRATION_TYP, "iat": gatehouse_core::time::now(),
        "azp": client_id, "registration_auth": "authenticated"});
    sign(idp, realm, claims).await
}

/// The initial access token for `ia`, naming the record it spends from;
/// nothing but the record is stored.
pub async fn initial_access_token(
    idp: &Idp,
    realm: &Realm,
    ia: &InitialAccess,
) -> Result<String, OAuthError> {
    let mut claims = json!({"jti": ia.id, "iat": ia.timestamp, "typ": INITIAL_TYP});
    if ia.expiration > 0 {
        claims["exp"] = json!(ia.timestamp + ia.expiration);
    }
    sign(idp, realm, claims).await
}

/// Both registration tokens: JWTs of this realm's issuer, signed with its
/// HMAC secret (the one refresh tokens use; `typ` tells them apart, and
/// [`caller`] checks it).
async fn sign(idp: &Idp, realm: &Realm, mut claims: Value) -> Result<String, OAuthError> {
    let ring = idp.keyring(realm).await?;
    let issuer = idp.issuer(&realm.name);
    claims["iss"] = json!(issuer);
    claims["aud"] = json!(issuer);
    gatehouse_jose::sign::sign_hs512(&ring.hs_secret, &realm.id, &claims)
        .map_err(OAuthError::internal)
}

fn metadata(body: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_metadata("Client metadata must be a JSON object")),
    }
}

fn strings(meta: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad_metadata(format!("{field} must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad_metadata(format!("{field} must be an array of strings"))),
    }
}

fn string<'a>(meta: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, OAuthError> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_metadata(format!("{field} must be a string"))),
    }
}

/// A redirect URI a client may register: absolute, no fragment (RFC 6749
/// §3.1.2), `http(s)` with a host or a native app's private-use scheme
/// (RFC 8252 §7.1); never `javascript:`/`data:`/`file:`.
fn redirect_uri_ok(u: &str) -> bool {
    // What no client may register (fragments, code-running schemes), then
    // what a self-registered one may not either: wildcards, local files,
    // relative or host-less web URIs.
    if gatehouse_core::model::redirect_uri_problem(u).is_some() || u.contains('*') {
        return false;
    }
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") => p.host().is_some(),
        Ok(p) => !matches!(p.scheme(), "file" | "blob"),
        Err(_) => false,
    }
}

/// A logout channel's registration metadata and the client attributes
/// Keycloak keeps it in (OIDC Back-Channel Logout §2.2, Front-Channel
/// Logout §2).
struct LogoutChannel {
    name: &'static str,
    url_attribute: &'static str,
    session_attribute: &'static str,
}

/// Back-channel first, front-channel second (the order `external` reads
/// their URLs in).
const LOGOUT_CHANNELS: [LogoutChannel; 2] = [
    LogoutChannel {
        name: "backchannel",
        url_attribute: "backchannel.logout.url",
        session_attribute: "backchannel.logout.session.required",
    },
    LogoutChannel {
        name: "frontchannel",
        url_attribute: "frontchannel.logout.url",
        session_attribute: "frontchannel.logout.session.required",
    },
];

/// `{name}_logout_uri` (an absolute http(s) URL without a fragment) and
/// `{name}_logout_session_required` (a boolean; true when omitted, as
/// Keycloak stores it).
fn logout_channel<'a>(
    meta: &'a Map<String, Value>,
    ch: &LogoutChannel,
) -> Result<(Option<&'a str>, bool), OAuthError> {
    let field = format!("{}_logout_uri", ch.name);
    let uri = string(meta, &field)?;
    if let Some(u) = uri
        && !url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "https" | "http") && p.fragment().is_none())
    {
        return Err(bad_metadata(format!(
            "{field} must be an http(s) URL without a fragment"
        )));
    }
    let field = format!("{}_logout_session_required", ch.name);
    let session_required = match meta.get(&field) {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_metadata(format!("{field} must be a boolean"))),
    };
    Ok((uri, session_required))
}

/// The client-assertion algorithms the token endpoint verifies (as the
/// discovery document lists them).
const ASSERTION_ALGS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// Signing and encryption choices Gatehouse cannot honour are refused
/// (RFC 7591 §3.2.2 `invalid_client_metadata`) rather than stored and
/// silently ignored: an RP that asked for an ES256 ID token and got an
/// RS256 one, or for an encrypted one and got it in the clear, would fail
/// later and less clearly. ID tokens are signed with any asymmetric
/// algorithm discovery lists (`keyring.rs`), not with HMAC or `none`.
fn check_algorithms(meta: &Map<String, Value>) -> Result<(), OAuthError> {
    if let Some(alg) = string(meta, "id_token_signed_response_alg")?
        && gatehouse_jose::keys::Alg::parse(alg).is_err()
    {
        return Err(bad_metadata(format!(
            "Unsupported id_token_signed_response_alg: {alg}"
        )));
    }
    // Public or pairwise subjects (`pairwise.rs`), as discovery lists.
    if let Some(t) = string(meta, "subject_type")?
        && t != "public"
        && t != "pairwise"
    {
        return Err(bad_metadata(format!("Unsupported subject_type: {t}")));
    }
    // Request objects (`request_object.rs`): any algorithm it verifies.
    if let Some(alg) = string(meta, "request_object_signing_alg")?
        && !crate::oidc::request_object::algorithms().any(|a| a == alg)
    {
        return Err(bad_metadata(format!(
            "Unsupported request_object_signing_alg: {alg}"
        )));
    }
    if let Some(alg) = string(meta, "token_endpoint_auth_signing_alg")?
        && !ASSERTION_ALGS.contains(&alg)
    {
        return Err(bad_metadata(format!(
            "Unsupported token_endpoint_auth_signing_alg: {alg}"
        )));
    }
    // Userinfo is plain JSON ("none") or a JWT signed like ID tokens.
    if let Some(alg) = string(meta, "userinfo_signed_response_alg")?
        && alg != "none"
        && gatehouse_jose::keys::Alg::parse(alg).is_err()
    {
        return Err(bad_metadata(format!(
            "Unsupported userinfo_signed_response_alg: {alg}"
        )));
    }
    for field in [
        "id_token_encrypted_response_alg",
        "id_token_encrypted_response_enc",
        "userinfo_encrypted_response_alg",
        "userinfo_encrypted_response_enc",
        "request_object_encryption_alg",
        "request_object_encryption_enc",
        "authorization_signed_response_alg",
        "authorization_encrypted_response_alg",
        "authorization_encrypted_response_enc",
    ] {
        if let Some(v) = meta.get(field).filter(|v| !v.is_null()) {
            return Err(bad_metadata(format!("Unsupported {field}: {v}")));
        }
    }
    Ok(())
}

/// Applies RFC 7591 metadata to `c` (a new client, or the registered one
/// on update, where the body replaces the metadata as RFC 7592 says).
/// `subject_type` (and `sector_identifier_uri`), as Keycloak's
/// registration maps them: `pairwise` gives the client Keycloak's pairwise
/// mapper, `public` takes it away. A sector identifier URI is fetched
/// (bounded, `fetch.rs`) and must list every redirect URI (OIDC
/// Registration §5); without one, the redirect URIs must share a host.
async fn subject_type(
    idp: &Idp,
    c: &mut Client,
    meta: &Map<String, Value>,
) -> Result<(), OAuthError> {
    let sector_uri = string(meta, "sector_identifier_uri")?.map(str::to_owned);
    match string(meta, "subject_type")? {
        Some("public") => {
            c.protocol_mappers
                .retain(|m| m.protocol_mapper != crate::pairwise::MAPPER);
            return Ok(());
        }
        Some("pairwise") => {}
        _ if sector_uri.is_some() => {
            return Err(bad_metadata(
                "sector_identifier_uri needs subject_type pairwise",
            ));
        }
        _ => return Ok(()),
    }
    if let Some(uri) = &sector_uri {
        let unreadable =
            || bad_metadata("Failed to get redirect URIs from the Sector Identifier URI.");
        if !uri.starts_with("https://") && !uri.starts_with("http://") {
            return Err(bad_metadata("Invalid Sector Identifier URI."));
        }
        let body = crate::fetch::get(idp, uri, crate::fetch::MAX_JSON)
            .await
            .map_err(|_| unreadable())?;
        let listed: Vec<String> = serde_json::from_slice(&body).map_err(|_| unreadable())?;
        if c.redirect_uris.iter().any(|r| !listed.contains(r)) {
            return Err(bad_metadata(
                "Client redirect URIs does not match redirect URIs fetched from the Sector Identifier URI.",
            ));
        }
    }
    let mut config = std::collections::BTreeMap::new();
    if let Some(uri) = sector_uri {
        config.insert("sectorIdentifierUri".to_owned(), uri);
    }
    match c
        .protocol_mappers
        .iter_mut()
        .find(|m| m.protocol_mapper == crate::pairwise::MAPPER)
    {
        Some(m) => m.config.extend(config),
        None => c
            .protocol_mappers
            .push(gatehouse_core::model::ProtocolMapper {
                id: gatehouse_core::id::uuid(),
                name: "pairwise subject identifier".into(),
                protocol: "openid-connect".into(),
                protocol_mapper: crate::pairwise::MAPPER.into(),
                config,
            }),
    }
    crate::pairwise::prepare(c).map_err(bad_metadata)
}

fn apply(c: &mut Client, meta: &Map<String, Value>) -> Result<(), OAuthError> {
    check_algorithms(meta)?;
    let redirect_uris = strings(meta, "redirect_uris")?.unwrap_or_default();
    if let Some(bad) = redirect_uris.iter().find(|u| !redirect_uri_ok(u)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            format!("Invalid redirect URI: {bad}"),
        ));
    }
    let grants = strings(meta, "grant_types")?
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    const KNOWN: [&str; 5] = [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        DEVICE_GRANT,
    ];
    if let Some(g) = grants.iter().find(|g| !KNOWN.contains(&g.as_str())) {
        return Err(bad_metadata(format!("Unsupported grant type: {g}")));
    }
    let responses = strings(meta, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if let Some(r) = responses.iter().find(|r| r.as_str() != "code") {
        return Err(bad_metadata(format!("Unsupported response type: {r}")));
    }
    let has = |g: &str| grants.iter().any(|x| x == g);
    if has("authorization_code") && redirect_uris.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    let method = string(meta, "token_endpoint_auth_method")?.unwrap_or("client_secret_basic");
    let (public, authenticator) = match method {
        "none" => (true, "client-secret"),
        "client_secret_basic" | "client_secret_post" => (false, "client-secret"),
        "client_secret_jwt" => (false, "client-secret-jwt"),
        "private_key_jwt" => (false, "client-jwt"),
        other => {
            return Err(bad_metadata(format!(
                "Unsupported token_endpoint_auth_method: {other}"
            )));
        }
    };
    if public && has("client_credentials") {
        return Err(bad_metadata(
            "A public client (token_endpoint_auth_method none) cannot use client_credentials",
        ));
    }
    let jwks_uri = string(meta, "jwks_uri")?;
    let jwks = meta.get("jwks").filter(|v| !v.is_null());
    if jwks_uri.is_some() && jwks.is_some() {
        return Err(bad_metadata("jwks_uri and jwks are mutually exclusive"));
    }
    if let Some(u) = jwks_uri
        && !url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" || p.scheme() == "http")
    {
        return Err(bad_metadata("jwks_uri must be an http(s) URL"));
    }
    if let Some(j) = jwks
        && !j.get("keys").is_some_and(Value::is_array)
    {
        return Err(bad_metadata("jwks must be a JWK Set"));
    }
    if method == "private_key_jwt" && jwks_uri.is_none() && jwks.is_none() {
        return Err(bad_metadata("private_key_jwt needs jwks_uri or jwks"));
    }
    let logout_uris = LOGOUT_CHANNELS
        .iter()
        .map(|ch| logout_channel(meta, ch))
        .collect::<Result<Vec<_>, _>>()?;
    let post_logout = strings(meta, "post_logout_redirect_uris")?.unwrap_or_default();
    if let Some(bad) = post_logout.iter().find(|u| !redirect_uri_ok(u)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            format!("Invalid post logout redirect URI: {bad}"),
        ));
    }

    c.redirect_uris = redirect_uris;
    c.public_client = public;
    c.client_authenticator_type = authenticator.into();
    if public {
        c.secret = None;
    } else if c.secret.is_none() {
        c.secret = Some(gatehouse_core::id::token());
    }
    c.standard_flow_enabled = has("authorization_code");
    c.direct_access_grants_enabled = has("password");
    c.service_accounts_enabled = has("client_credentials");
    c.implicit_flow_enabled = false;
    let flag = |on: bool| if on { "true" } else { "false" }.to_owned();
    c.attributes
        .insert("use.refresh.tokens".into(), flag(has("refresh_token")));
    c.attributes.insert(
        "oauth2.device.authorization.grant.enabled".into(),
        flag(has(DEVICE_GRANT)),
    );
    // RFC 9449 §5.2: the client will always bind its tokens.
    let dpop = crate::oidc::dpop::CLIENT_ATTRIBUTE;
    match meta.get("dpop_bound_access_tokens") {
        None | Some(Value::Null) => {
            c.attributes.remove(dpop);
        }
        Some(Value::Bool(on)) => {
            c.attributes.insert(dpop.into(), flag(*on));
        }
        Some(_) => return Err(bad_metadata("dpop_bound_access_tokens must be a boolean")),
    }
    // Keycloak keeps the ID token's algorithm as a client attribute.
    match string(meta, "id_token_signed_response_alg")? {
        Some(a) => c
            .attributes
            .insert(crate::tokens::ID_ALG.into(), a.to_owned()),
        None => c.attributes.remove(crate::tokens::ID_ALG),
    };
    // Where the client's request objects by reference may be fetched
    // (Keycloak's `request.uris`).
    match strings(meta, "request_uris")? {
        Some(list) if !list.is_empty() => {
            c.attributes.insert("request.uris".into(), list.join("##"))
        }
        _ => c.attributes.remove("request.uris"),
    };
    match string(meta, "request_object_signing_alg")? {
        Some(a) => c
            .attributes
            .insert("request.object.signature.alg".into(), a.to_owned()),
        None => c.attributes.remove("request.object.signature.alg"),
    };
    match string(meta, "userinfo_signed_response_alg")? {
        Some(a) if a != "none" => c
            .attributes
            .insert(crate::tokens::USERINFO_ALG.into(), a.to_owned()),
        _ => c.attributes.remove(crate::tokens::USERINFO_ALG),
    };
    // PKCE stays required for public clients whatever they registered.
    c.name = string(meta, "client_name")?.map(str::to_owned);
    for (field, attr) in [
        ("logo_uri", "logoUri"),
        ("policy_uri", "policyUri"),
        ("tos_uri", "tosUri"),
    ] {
        match string(meta, field)? {
            Some(v) => c.attributes.insert(attr.into(), v.to_owned()),
            None => c.attributes.remove(attr),
        };
    }
    match string(meta, "client_uri")? {
        Some(v) => c.extra.insert("baseUrl".into(), json!(v)),
        None => c.extra.remove("baseUrl"),
    };
    c.attributes
        .insert("use.jwks.url".into(), flag(jwks_uri.is_some()));
    match jwks_uri {
        Some(u) => c.attributes.insert("jwks.url".into(), u.to_owned()),
        None => c.attributes.remove("jwks.url"),
    };
    c.attributes
        .insert("use.jwks.string".into(), flag(jwks.is_some()));
    match jwks {
        Some(j) => c.attributes.insert("jwks.string".into(), j.to_string()),
        None => c.attributes.remove("jwks.string"),
    };
    for (ch, (uri, session_required)) in LOGOUT_CHANNELS.iter().zip(logout_uris) {
        match uri {
            Some(u) => c.attributes.insert(ch.url_attribute.into(), u.to_owned()),
            None => c.attributes.remove(ch.url_attribute),
        };
        c.attributes
            .insert(ch.session_attribute.into(), flag(session_required));
    }
    // Keycloak turns front-channel logout on per client besides the URL.
    c.extra.insert(
        "frontchannelLogout".into(),
        json!(c.attributes.contains_key("frontchannel.logout.url")),
    );
    if post_logout.is_empty() {
        c.attributes.remove("post.logout.redirect.uris");
    } else {
        c.attributes
            .insert("post.logout.redirect.uris".into(), post_logout.join("##"));
    }
    Ok(())
}

/// The client as RFC 7591 §3.2.1 metadata, with its management URI and
/// registration access token (RFC 7592 §3).
fn external(c: &Client, uri: &str, token: &str, realm: &Realm) -> Map<String, Value> {
    let attr = |k: &str| c.attributes.get(k).map(String::as_str);
    let on = |k: &str| attr(k) == Some("true");
    let mut grants = Vec::new();
    if c.standard_flow_enabled {
        grants.push("authorization_code");
    }
    if on("use.refresh.tokens") {
        grants.push("refresh_token");
    }
    if c.service_accounts_enabled {
        grants.push("client_credentials");
    }
    if c.direct_access_grants_enabled {
        grants.push("password");
    }
    if on("oauth2.device.authorization.grant.enabled") {
        grants.push(DEVICE_GRANT);
    }
    let method = match (c.public_client, c.client_authenticator_type.as_str()) {
        (true, _) => "none",
        (false, "client-secret-jwt") => "client_secret_jwt",
        (false, "client-jwt") => "private_key_jwt",
        _ => "client_secret_basic",
    };
    let mut m = Map::new();
    m.insert("client_id".into(), json!(c.client_id));
    if let (false, Some(s)) = (c.public_client, &c.secret) {
        m.insert("client_secret".into(), json!(s));
        m.insert("client_secret_expires_at".into(), json!(0));
    }
    m.insert("redirect_uris".into(), json!(c.redirect_uris));
    m.insert("token_endpoint_auth_method".into(), json!(method));
    let id_alg = c
        .attributes
        .get(crate::tokens::ID_ALG)
        .filter(|a| !a.is_empty())
        .unwrap_or(&realm.default_signature_algorithm);
    m.insert("id_token_signed_response_alg".into(), json!(id_alg));
    match crate::pairwise::mapper_of(c) {
        Some(p) => {
            m.insert("subject_type".into(), json!("pairwise"));
            if let Some(u) = p
                .config
                .get("sectorIdentifierUri")
                .filter(|u| !u.is_empty())
            {
                m.insert("sector_identifier_uri".into(), json!(u));
            }
        }
        None => {
            m.insert("subject_type".into(), json!("public"));
        }
    }
    if let Some(list) = c.attributes.get("request.uris").filter(|l| !l.is_empty()) {
        m.insert(
            "request_uris".into(),
            json!(list.split("##").collect::<Vec<_>>()),
        );
    }
    if let Some(a) = c
        .attributes
        .get(crate::tokens::USERINFO_ALG)
        .filter(|a| !a.is_empty())
    {
        m.insert("userinfo_signed_response_alg".into(), json!(a));
    }
    m.insert(
        "dpop_bound_access_tokens".into(),
        json!(crate::oidc::dpop::required(c)),
    );
    m.insert("grant_types".into(), json!(grants));
    let responses: &[&str] = if c.standard_flow_enabled {
        &["code"]
    } else {
        &[]
    };
    m.insert("response_types".into(), json!(responses));
    if let Some(n) = &c.name {
        m.insert("client_name".into(), json!(n));
    }
    if let Some(u) = c.extra.get("baseUrl") {
        m.insert("client_uri".into(), u.clone());
    }
    for (field, a) in [
        ("logo_uri", "logoUri"),
        ("policy_uri", "policyUri"),
        ("tos_uri", "tosUri"),
    ] {
        if let Some(v) = attr(a) {
            m.insert(field.into(), json!(v));
        }
    }
    if on("use.jwks.url")
        && let Some(u) = attr("jwks.url")
    {
        m.insert("jwks_uri".into(), json!(u));
    }
    if on("use.jwks.string")
        && let Some(j) = attr("jwks.string").and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        m.insert("jwks".into(), j);
    }
    let urls = [
        crate::backchannel_logout::url(c),
        crate::oidc::frontchannel_logout::url(c),
    ];
    for (ch, url) in LOGOUT_CHANNELS.iter().zip(urls) {
        if let Some(u) = url {
            m.insert(format!("{}_logout_uri", ch.name), json!(u));
            m.insert(
                format!("{}_logout_session_required", ch.name),
                json!(c.attribute_flag(ch.session_attribute, true)),
            );
        }
    }
    if let Some(p) = attr("post.logout.redirect.uris").filter(|p| *p != "+") {
        m.insert(
            "post_logout_redirect_uris".into(),
            json!(p.split("##").collect::<Vec<_>>()),
        );
    }
    m.insert("registration_client_uri".into(), json!(uri));
    m.insert("registration_access_token".into(), json!(token));
    m
}
