//! `POST /realms/{realm}/protocol/openid-connect/token`: the grants
//! `authorization_code` (+PKCE), `client_credentials`, `password` and
//! `refresh_token` (rotation and reuse detection).

use crate::error::OAuthError;
use crate::login::{LoginFailure, SecondFactor, check_password};
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::state::Idp;
use crate::tokens::{Grant, granted_scope, issue};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Client, Event, Realm, Session, User};
use gatehouse_store::CodeRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What an authorization code stands for (stored server-side, single use).
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeData {
    pub client_id: String,
    pub redirect_uri: String,
    pub session_id: String,
    pub user_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// Issued on the strength of the SSO session alone (no credentials in
    /// this authorization): the client session's `acr` is `0`.
    #[serde(default)]
    pub sso: bool,
    /// The DPoP key the code is bound to (`dpop_jkt`, or the pushed
    /// request's proof): only a proof of that key redeems it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The request's `claims` parameter, for the client session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

/// The token endpoint.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
    match handle(&idp, &realm, &headers, &body, ip.as_deref()).await {
        Ok(v) => {
            let mut r = Json(v).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn handle(
    idp: &Idp,
    realm: &str,
    headers: &HeaderMap,
    body: &[u8],
    ip: Option<&str>,
) -> Result<Value, OAuthError> {
    let realm = idp.realm(realm).await?;
    let form = Form::parse(headers, body)?;
    let grant_type = form.require("grant_type")?.to_owned();
    // The UMA grant authenticates its caller itself (a bearer token may
    // stand for the client).
    if grant_type == crate::oidc::uma::GRANT {
        return crate::oidc::uma::grant(idp, &realm, headers, &form, body).await;
    }
    let client = client_auth::authenticate(idp, &realm, headers, &form).await?;
    if client.bearer_only {
        return Err(OAuthError::unauthorized_client(
            "Bearer-only clients cannot obtain tokens",
        ));
    }
    // A proof, when sent (or required), binds whatever this grant issues.
    let dpop = crate::oidc::dpop::at_token_endpoint(idp, &realm, &client, headers)?;
    match grant_type.as_str() {
        "password" => password(idp, &realm, &client, &form, ip, dpop).await,
        "client_credentials" => client_credentials(idp, &realm, &client, &form, dpop).await,
        "refresh_token" => refresh(idp, &realm, &client, &form, dpop).await,
        "authorization_code" => code(idp, &realm, &client, &form, dpop).await,
        crate::oidc::token_exchange::GRANT => {
            crate::oidc::token_exchange::exchange(idp, &realm, &client, &form, dpop).await
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            if !crate::oidc::device::enabled(&client) {
                return Err(OAuthError::unauthorized_client(
                    "Client is not allowed to use the device grant",
                ));
            }
            crate::oidc::device::token(idp, &realm, &client, &form, dpop).await
        }
        _ => Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant_type",
        )),
    }
}

fn resources(form: &Form) -> Result<Vec<String>, OAuthError> {
    let Some(r) = form.get("resource") else {
        return Ok(vec![]);
    };
    r.split(' ')
        .map(|s| {
            // RFC 8707 §2: an absolute URI without a fragment. Keycloak-style
            // client ids are accepted too, since gateways match audiences by id.
            if s.contains('#') {
                Err(OAuthError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "resource must not contain a fragment",
                ))
            } else {
                Ok(s.to_owned())
            }
        })
        .collect()
}

fn wants_offline(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "offline_access")
}

/// Starts a session (SSO or offline) for a direct grant.
pub fn new_session(
    realm: &Realm,
    client: &Client,
    user: &User,
    scope: &str,
    auth_time: i64,
) -> Session {
    let now = gatehouse_core::time::now();
    Session {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        client_id: client.client_id.clone(),
        ip: None,
        started: now,
        last_access: now,
        offline: wants_offline(scope),
        refresh_token_id: Some(gatehouse_core::id::uuid()),
        rotate_refresh: realm.revoke_refresh_token || client.public_client,
        scope: scope.to_owned(),
        auth_time,
        sso_session_id: None,
        sso_auth: false,
        impersonator: None,
        broker: None,
        remember_me: false,
        claims: None,
    }
}

async fn check_offline_allowed(idp: &Idp, user: &User, scope: &str) -> Result<(), OAuthError> {
    if !wants_offline(scope) {
        return Ok(());
    }
    let roles = idp.store.effective_roles(&user.id).await?;
    if roles
        .iter()
        .any(|r| r.client_id.is_none() && r.name == "offline_access")
    {
        Ok(())
    } else {
        Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Offline tokens not allowed for the user or client",
        ))
    }
}

async fn password(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    ip: Option<&str>,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    if !client.direct_access_grants_enabled {
        return Err(OAuthError::unauthorized_client(
            "Client not allowed for direct access grants",
        ));
    }
    // No page to ask on: Keycloak refuses direct grants to such clients.
    if crate::oidc::auth::consent::required(client) {
        return Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_client",
            "Client requires user consent",
        ));
    }
    let username = form.require("username")?;
    let pw = form.require("password")?;
    let scope = granted_scope(client, &idp.client_scopes(realm).await?, form.get("scope"))?;
    let resources = resources(form)?;
    let flow = crate::flows::Kind::DirectGrant;
    let verified = match check_password(idp, realm, flow, client, username, pw, ip).await? {
        Ok(v) => v,
        Err(LoginFailure::Disabled) => return Err(OAuthError::invalid_grant("Account disabled")),
        Err(LoginFailure::Throttled(s)) => return Err(crate::oidc::form::throttled(s)),
        // Keycloak answers a wrong password (or unknown or locked user)
        // with 401, a disabled account with 400.
        Err(_) => {
            return Err(OAuthError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "Invalid user credentials",
            ));
        }
    };
    // Keycloak's direct grant asks for the one-time code (`totp`) of a
    // user who has one, and answers a missing or wrong one as a wrong
    // password.
    // A flow that requires a code of everyone refuses a user without one
    // the same way (Keycloak's direct-grant-validate-otp when REQUIRED).
    let crate::login::Verified { user, second } = verified;
    let passed = match second {
        SecondFactor::None => true,
        SecondFactor::Code(otp) => {
            let given = form.get("totp").unwrap_or("");
            crate::login::check_otp(idp, realm, &client.client_id, &user, Some(&otp), given, ip)
                .await?
        }
        SecondFactor::SetUp => {
            crate::login::refuse_without_otp(idp, realm, &client.client_id, &user, ip).await?;
            false
        }
    };
    if !passed {
        return Err(OAuthError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "Invalid user credentials",
        ));
    }
    if crate::oidc::auth::action_pending(realm, &user) {
        return Err(OAuthError::invalid_grant("Account is not fully set up"));
    }
    check_offline_allowed(idp, &user, &scope).await?;
    let now = gatehouse_core::time::now();
    let session = new_session(realm, client, &user, &scope, now);
    let ring = idp.keyring(realm).await?;
    let out = issue(
        idp,
        &ring,
        &Grant {
            realm,
            client,
            user: &user,
            session: Some(&session),
            scope: scope.clone(),
            nonce: None,
            resources,
            refresh: true,
            dpop: dpop.clone(),
        },
    )
    .await?;
    let mut ev = Event::user(realm, "LOGIN");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(user.id.clone());
    ev.session_id = Some(session.id.clone());
    ev.ip_address = ip.map(str::to_owned);
    ev.details.insert("grant_type".into(), "password".into());
    ev.details.insert("username".into(), user.username.clone());
    ev.details
        .insert("auth_method".into(), "openid-connect".into());
    idp.store.create_session(&session, &[ev]).await?;
    Ok(out)
}

async fn client_credentials(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    if client.public_client {
        return Err(OAuthError::unauthorized_client(
            "Public client not allowed to retrieve service account",
        ));
    }
    if !client.service_accounts_enabled {
        return Err(OAuthError::unauthorized_client(
            "Client not enabled to retrieve service account",
        ));
    }
    let scope = granted_scope(client, &idp.client_scopes(realm).await?, form.get("scope"))?;
    let resources = resources(form)?;
    let user = crate::admin::clients::ensure_service_account(idp, realm, client).await?;
    if !user.enabled {
        return Err(OAuthError::invalid_grant("Account disabled"));
    }
    let ring = idp.keyring(realm).await?;
    let out = issue(
        idp,
        &ring,
        &Grant {
            realm,
            client,
            user: &user,
            session: None,
            scope,
            nonce: None,
            resources,
            refresh: false,
            dpop: dpop.clone(),
        },
    )
    .await?;
    let mut ev = Event::user(realm, "CLIENT_LOGIN");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(user.id.clone());
    ev.details
        .insert("grant_type".into(), "client_credentials".into());
    idp.record(ev).await?;
    Ok(out)
}

async fn refresh(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    let token = form.require("refresh_token")?;
    let ring = idp.keyring(realm).await?;
    let now = gatehouse_core::time::now();
    let invalid = || OAuthError::invalid_grant("Invalid refresh token");
    let claims =
        gatehouse_jose::sign::verify_hs512(&ring.hs_secret, token).map_err(|_| invalid())?;
    let typ = claims["typ"].as_str().unwrap_or("");
    if (typ != "Refresh" && typ != "Offline")
        || claims["iss"].as_str() != Some(&idp.issuer(&realm.name))
    {
        return Err(invalid());
    }
    // Before anything is spent: a bound refresh token without its key's
    // proof changes nothing.
    crate::oidc::dpop::check_refresh(&claims, dpop.as_deref())?;
    if claims["exp"].as_i64().is_none_or(|e| e < now) {
        return Err(OAuthError::invalid_grant("Token is not active"));
    }
    if claims["azp"].as_str() != Some(client.client_id.as_str()) {
        return Err(OAuthError::invalid_grant(
            "Invalid refresh token. Token client and authorized client don't match",
        ));
    }
    let iat = gatehouse_jose::verify::numeric_date(&claims["iat"]).unwrap_or(0);
    if crate::not_before::too_early(realm, Some(client), iat) {
        return Err(OAuthError::invalid_grant("Stale token"));
    }
    let sid = claims["sid"].as_str().unwrap_or("");
    let jti = claims["jti"].as_str().unwrap_or("");
    let Some(mut session) = idp.store.session(sid).await? else {
        return Err(OAuthError::invalid_grant("Session not active"));
    };
    if now > realm.session_ends(&session, Some(client), session.last_access) {
        let ended = idp.store.delete_session(&session.id, &[]).await?;
        idp.sessions_revoked(&ended);
        return Err(OAuthError::invalid_grant("Session not active"));
    }
    let Some(user) = idp
        .user(realm, &session.user_id)
        .await?
        .filter(|u| u.enabled)
    else {
        return Err(OAuthError::invalid_grant("User disabled or not found"));
    };
    if !crate::user_storage::still_current(idp, realm, &user).await {
        return Err(OAuthError::invalid_grant("User disabled or not found"));
    }
    let scope = match form.get("scope") {
        Some(asked) => {
            let have: Vec<&str> = session.scope.split(' ').collect();
            if asked.split_whitespace().any(|s| !have.contains(&s)) {
                return Err(OAuthError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "Scope not granted to the refresh token",
                ));
            }
            asked.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        None => session.scope.clone(),
    };
    let mut ev = Event::user(realm, "REFRESH_TOKEN");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(user.id.clone());
    ev.session_id = Some(session.id.clone());
    if session.rotate_refresh {
        let next = gatehouse_core::id::uuid();
        if !idp
            .store
            .rotate_refresh(
                &session.id,
                Some(jti),
                &next,
                now,
                std::slice::from_ref(&ev),
            )
            .await?
        {
            // A spent refresh token came back: whoever holds it is not the
            // legitimate client, or the client lost a race. End the session.
            let mut bad = Event::user(realm, "REFRESH_TOKEN_ERROR");
            bad.client_id = Some(client.client_id.clone());
            bad.user_id = Some(user.id.clone());
            bad.session_id = Some(session.id.clone());
            bad.error = Some("invalid_token".into());
            bad.details
                .insert("reason".into(), "refresh token reuse".into());
            let ended = idp.store.delete_session(&session.id, &[bad]).await?;
            idp.sessions_ended(realm, &ended).await;
            return Err(OAuthError::invalid_grant(
                "Maximum allowed refresh token reuse exceeded",
            ));
        }
        session.refresh_token_id = Some(next);
    } else {
        idp.touch(&session.id, now).await?;
        idp.record(ev).await?;
        session.refresh_token_id = None;
    }
    session.last_access = now;
    issue(
        idp,
        &ring,
        &Grant {
            realm,
            client,
            user: &user,
            session: Some(&session),
            scope,
            nonce: None,
            resources: resources(form)?,
            refresh: true,
            dpop: dpop.clone(),
        },
    )
    .await
}

/// A client session made from the browser's SSO session: the SSO session
/// serves every client, and each code exchange (or implicit grant) gets
/// its own client session (its own refresh-token rotation), linked to the
/// SSO session so that ending that one ends this one. `id` comes from
/// [`client_session_id`]; `sso_auth` when the SSO session stood in for
/// credentials in the authorization ([`Session::sso_auth`]).
pub fn client_session(
    realm: &Realm,
    client: &Client,
    user: &User,
    scope: &str,
    (sso, sso_auth): (&Session, bool),
    id: String,
) -> Session {
    let mut session = new_session(realm, client, user, scope, sso.auth_time);
    session.id = id;
    session.sso_session_id = Some(sso.id.clone());
    session.sso_auth = sso_auth;
    session.impersonator = sso.impersonator.clone();
    session.remember_me = sso.remember_me;
    session
}

/// A new client session's id: its browser (SSO) session's id, a dot, a
/// random suffix (`login_status_iframe.rs` reads the prefix).
pub fn client_session_id(sso_id: &str) -> String {
    format!(
        "{sso_id}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            gatehouse_core::id::bytes::<9>()
        )
    )
}

/// PKCE S256 check, constant time (RFC 7636 §4.6).
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    if verifier.len() < 43
        || verifier.len() > 128
        || !verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return false;
    }
    pkce_challenge(verifier)
        .as_bytes()
        .ct_eq(challenge.as_bytes())
        .into()
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2): what a client
/// sends, and what the broker sends to an identity provider.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

async fn code(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    let code = form.require("code")?;
    let now = gatehouse_core::time::now();
    let bad = || OAuthError::invalid_grant("Code not valid");
    // The code is spent and, in the same write, leaves a tombstone naming
    // the session this exchange will start, so that a replay can end it.
    // That client session's id starts with its browser (SSO) session's,
    // which the code names after its last dot (`auth::issue_code`): the
    // tokens' `sid` then tells the session-status iframe which browser
    // session they belong to (`login_status_iframe.rs`).
    let sso_id = code.rsplit_once('.').map_or("", |(_, s)| s);
    let session_id = client_session_id(sso_id);
    let tombstone = CodeRecord {
        code: format!("spent:{code}"),
        realm_id: realm.id.clone(),
        data: session_id.clone(),
        expires: now + realm.code_lifespan() + SPENT_CODE_MEMORY,
    };
    let Some(rec) = idp
        .store
        .take_code_leaving(&format!("code:{code}"), &tombstone)
        .await?
    else {
        code_reused(idp, realm, client, code, now).await?;
        return Err(bad());
    };
    if rec.expires < now || rec.realm_id != realm.id {
        return Err(bad());
    }
    let data: CodeData = serde_json::from_str(&rec.data).map_err(OAuthError::internal)?;
    if data.client_id != client.client_id || data.session_id != sso_id {
        return Err(bad());
    }
    if form.get("redirect_uri") != Some(data.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("Incorrect redirect_uri"));
    }
    match (&data.code_challenge, form.get("code_verifier")) {
        (Some(ch), Some(v)) => {
            if !pkce_ok(v, ch) {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: Code mismatch",
                ));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "PKCE code verifier not specified",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "PKCE code verifier specified but challenge not present in authorization",
            ));
        }
        (None, None) => {}
    }
    crate::oidc::dpop::check_code(data.dpop_jkt.as_deref(), dpop.as_deref())?;
    let Some(sso) = idp.store.session(&data.session_id).await? else {
        return Err(OAuthError::invalid_grant("Session not active"));
    };
    let Some(user) = idp
        .store
        .user(&realm.id, &data.user_id)
        .await?
        .filter(|u| u.enabled)
    else {
        return Err(OAuthError::invalid_grant("User disabled or not found"));
    };
    // Without a password this time, a directory user's memberships are
    // read again here (the password check reads them otherwise).
    if data.sso && !crate::user_storage::still_current(idp, realm, &user).await {
        return Err(OAuthError::invalid_grant("User disabled or not found"));
    }
    let from = (&sso, data.sso);
    let mut session = client_session(realm, client, &user, &data.scope, from, session_id);
    session.claims = data.claims.clone();
    let mut ev = Event::user(realm, "CODE_TO_TOKEN");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(user.id.clone());
    ev.session_id = Some(session.id.clone());
    idp.store.create_session(&session, &[ev]).await?;
    let ring = idp.keyring(realm).await?;
    issue(
        idp,
        &ring,
        &Grant {
            realm,
            client,
            user: &user,
            session: Some(&session),
            scope: data.scope.clone(),
            nonce: data.nonce.clone(),
            resources: resources(form)?,
            refresh: true,
            dpop: dpop.clone(),
        },
    )
    .await
}

/// Seconds past a code's expiry during which a replay of it still ends
/// the session it started.
const SPENT_CODE_MEMORY: i64 = 300;

/// RFC 6749 §4.1.2: a code used twice is refused, and the tokens already
/// issued from it are revoked (the code leaked; Keycloak detaches that
/// client session too). Ends the session the code started, if it did.
async fn code_reused(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    code: &str,
    now: i64,
) -> Result<(), OAuthError> {
    let Some(spent) = idp.store.take_code(&format!("spent:{code}")).await? else {
        return Ok(());
    };
    if spent.realm_id != realm.id || spent.expires < now {
        return Ok(());
    }
    let mut ev = Event::user(realm, "CODE_TO_TOKEN_ERROR");
    ev.client_id = Some(client.client_id.clone());
    ev.session_id = Some(spent.data.clone());
    ev.error = Some("invalid_code".into());
    ev.details
        .insert("reason".into(), "authorization code reused".into());
    let ended = idp.store.delete_session(&spent.data, &[ev]).await?;
    idp.sessions_ended(realm, &ended).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_s256_matches_an_independent_implementation() {
        // Challenge computed with Python hashlib: b64url(sha256(verifier)).
        assert!(super::pkce_ok(
            "dBjftJeZ4CZP-0-3BFY2lvTxtQM4xBNFAzFlY3x3eHp",
            "RgCMY5gNyXvW39aiG-99_RlAsH1KORBbJittGzDbDNY"
        ));
        assert!(!super::pkce_ok(
            "dBjftJeZ4CZP-0-3BFY2lvTxtQM4xBNFAzFlY3x3eHq",
            "RgCMY5gNyXvW39aiG-99_RlAsH1KORBbJittGzDbDNY"
        ));
        assert!(!super::pkce_ok("short", "x"));
    }
}
