//! The device authorization grant (RFC 8628):
//! `POST /realms/{realm}/protocol/openid-connect/auth/device` starts it,
//! `GET|POST /realms/{realm}/device` is the page where the user enters the
//! code and signs in, and the token endpoint's
//! `urn:ietf:params:oauth:grant-type:device_code` polls it.

use crate::error::OAuthError;
use crate::login::{LoginFailure, SecondFactor, check_password};
use crate::oidc::auth::{cookie, esc, page};
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::state::Idp;
use crate::tokens::granted_scope;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use gatehouse_core::model::{Client, Event, Realm};
use gatehouse_store::CodeRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Seconds a device code lives (Keycloak's default: 600).
pub const LIFESPAN: i64 = 600;
/// Minimum seconds between polls (RFC 8628 §3.5; Keycloak's default: 5).
pub const INTERVAL: i64 = 5;

/// How long the client's device codes live and how often it may poll:
/// the client's `oauth2.device.code.lifespan` and
/// `oauth2.device.polling.interval`, else the realm's
/// `oauth2DeviceCodeLifespan` and `oauth2DevicePollingInterval`, else
/// Keycloak's defaults, as Keycloak resolves them.
pub fn timing(realm: &Realm, client: &Client) -> (i64, i64) {
    let pick = |client_attr: &str, realm_key: &str, default: i64| {
        client
            .attributes
            .get(client_attr)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .or_else(|| realm.number(realm_key))
            .filter(|n| *n > 0 && *n <= i64::from(i32::MAX))
            .unwrap_or(default)
    };
    (
        pick(
            "oauth2.device.code.lifespan",
            "oauth2DeviceCodeLifespan",
            LIFESPAN,
        ),
        pick(
            "oauth2.device.polling.interval",
            "oauth2DevicePollingInterval",
            INTERVAL,
        ),
    )
}
const CSRF_COOKIE: &str = "GATEHOUSE_DEVICE_CSRF";
/// User codes avoid letters people confuse (no vowels, no 0/O, 1/I).
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A device authorization in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceData {
    pub client_id: String,
    pub scope: String,
    pub user_code: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub last_poll: i64,
}

/// Whether the client may use the device grant (Keycloak's client attribute).
pub fn enabled(c: &Client) -> bool {
    c.attributes
        .get("oauth2.device.authorization.grant.enabled")
        .is_some_and(|v| v == "true")
}

fn user_code() -> String {
    let raw: [u8; 8] = gatehouse_core::id::bytes();
    let chars: String = raw
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `POST .../auth/device`: device and user codes.
pub async fn start(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let form = Form::parse(&headers, &body)?;
    let client = client_auth::authenticate(&idp, &realm, &headers, &form).await?;
    if !enabled(&client) {
        return Err(OAuthError::unauthorized_client(
            "Client is not allowed to initiate OAuth 2.0 Device Authorization Grant",
        ));
    }
    let scope = granted_scope(
        &client,
        &idp.client_scopes(&realm).await?,
        form.get("scope"),
    )?;
    let device_code = gatehouse_core::id::token();
    let code = user_code();
    let now = gatehouse_core::time::now();
    let data = DeviceData {
        client_id: client.client_id.clone(),
        scope,
        user_code: code.clone(),
        status: "pending".into(),
        user_id: None,
        session_id: None,
        last_poll: 0,
    };
    let (lifespan, interval) = timing(&realm, &client);
    let expires = now + lifespan;
    idp.store
        .put_code(&CodeRecord {
            code: format!("device:{device_code}"),
            realm_id: realm.id.clone(),
            data: serde_json::to_string(&data).map_err(OAuthError::internal)?,
            expires,
        })
        .await?;
    idp.store
        .put_code(&CodeRecord {
            code: format!("usercode:{}:{}", realm.id, normalize(&code)),
            realm_id: realm.id.clone(),
            data: device_code.clone(),
            expires,
        })
        .await?;
    let uri = format!("{}/device", idp.issuer(&realm.name));
    Ok(Json(json!({
        "device_code": device_code, "user_code": code, "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={code}"),
        "expires_in": lifespan, "interval": interval,
    })))
}

fn form_page(realm: &Realm, code: &str, csrf: &str, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Connect a device</h1><p>Enter the code shown on your device and sign in.</p>{err}\
<form method=\"post\" action=\"/realms/{r}/device\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"user_code\">Code</label><input id=\"user_code\" name=\"user_code\" required autocomplete=\"one-time-code\" value=\"{code}\">\
<label for=\"username\">Username or email</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<label for=\"otp\">One-time code (if your account uses an authenticator app)</label><input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"off\">\
<button type=\"submit\" name=\"action\" value=\"approve\">Sign in and allow</button> <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        r = esc(&realm.name),
        csrf = esc(csrf),
        code = esc(code),
    );
    page(StatusCode::OK, "Connect a device", &body)
}

/// `GET /realms/{realm}/device`: the code entry page.
pub async fn page_get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "Error",
            "<h1>Realm does not exist</h1>",
        ));
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let csrf = gatehouse_core::id::token();
    let mut r = form_page(&realm, q.get("user_code").unwrap_or(""), &csrf, None);
    let secure = if idp.secure_cookies { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={csrf}; Path=/realms/{}/; Max-Age=1800; HttpOnly; SameSite=Strict{secure}",
        realm.name
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /realms/{realm}/device`: sign in and approve or deny.
pub async fn page_post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let Ok(realm) = idp.realm(&realm).await else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "Error",
            "<h1>Realm does not exist</h1>",
        ));
    };
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                "Error",
                &format!(
                    "<p class=\"error\" role=\"alert\">{}</p>",
                    esc(&e.description)
                ),
            ));
        }
    };
    let csrf = form.get("csrf").unwrap_or("");
    let cookie_ok = cookie(&headers, CSRF_COOKIE)
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(csrf.as_bytes())));
    if csrf.is_empty() || !cookie_ok {
        return Ok(page(
            StatusCode::FORBIDDEN,
            "Error",
            "<h1>Invalid request</h1><p class=\"error\" role=\"alert\">The form could not be verified. Please start again.</p>",
        ));
    }
    let code = form.get("user_code").unwrap_or("");
    let retry = |msg: &str| form_page(&realm, code, csrf, Some(msg));
    let Some(pointer) = idp
        .store
        .code(&format!("usercode:{}:{}", realm.id, normalize(code)))
        .await?
    else {
        return Ok(retry("Invalid code, please try again."));
    };
    let key = format!("device:{}", pointer.data);
    let Some(mut rec) = idp.store.code(&key).await? else {
        return Ok(retry("Invalid code, please try again."));
    };
    let now = gatehouse_core::time::now();
    let mut data: DeviceData = serde_json::from_str(&rec.data).map_err(OAuthError::internal)?;
    if rec.expires < now || data.status != "pending" {
        return Ok(retry("This code has expired or was already used."));
    }
    if form.get("action") == Some("deny") {
        data.status = "denied".into();
        rec.data = serde_json::to_string(&data).map_err(OAuthError::internal)?;
        idp.store.update_code(&rec).await?;
        return Ok(page(
            StatusCode::OK,
            "Device denied",
            "<h1>Access denied</h1><p>The device was not connected.</p>",
        ));
    }
    let client = idp.existing_client(&realm, &data.client_id).await?;
    let verified = match check_password(
        &idp,
        &realm,
        crate::flows::Kind::Browser,
        &client,
        form.get("username").unwrap_or(""),
        form.get("password").unwrap_or(""),
        crate::oidc::form::client_ip(&idp, &ext, &headers).as_deref(),
    )
    .await?
    {
        Ok(v) => v,
        Err(LoginFailure::Disabled) => {
            return Ok(retry("Account is disabled, contact your administrator."));
        }
        Err(LoginFailure::Throttled(_)) => {
            return Ok(retry(
                "Too many failed login attempts from your network. Please wait a minute and try again.",
            ));
        }
        Err(_) => return Ok(retry("Invalid username or password.")),
    };
    // An account with a second factor needs its one-time code here too.
    let crate::login::Verified { user, second } = verified;
    // A realm that requires a code of a user without one: set up in a
    // browser login first, like any pending action (this page has none).
    let must_set_up = matches!(second, SecondFactor::SetUp);
    if let SecondFactor::Code(otp) = second {
        let given = form.get("otp").unwrap_or("");
        let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
        if !crate::login::check_otp(
            &idp,
            &realm,
            &data.client_id,
            &user,
            Some(&otp),
            given,
            ip.as_deref(),
        )
        .await?
        {
            return Ok(retry("Invalid username, password or one-time code."));
        }
    }
    if must_set_up || crate::oidc::auth::action_pending(&realm, &user) {
        // A temporary password or another pending action: finished in a
        // browser login first, never skipped here.
        return Ok(retry(
            "Account is not fully set up: sign in to an application in a browser first.",
        ));
    }
    let Some(client) = idp.client(&realm, &data.client_id).await? else {
        return Ok(retry("This code has expired or was already used."));
    };
    // "Sign in and allow" is the user's consent for a client that asks.
    if crate::oidc::auth::consent::required(&client) {
        let scopes = data
            .scope
            .split_whitespace()
            .filter(|s| *s != "openid")
            .map(str::to_owned)
            .collect();
        crate::oidc::auth::consent::grant(&idp, &realm, &user.id, &client.client_id, scopes, now)
            .await?;
    }
    let session = crate::oidc::token::new_session(&realm, &client, &user, &data.scope, now);
    let mut ev = Event::user(&realm, "LOGIN");
    ev.client_id = Some(client.client_id.clone());
    ev.user_id = Some(user.id.clone());
    ev.session_id = Some(session.id.clone());
    ev.details.insert(
        "grant_type".into(),
        "urn:ietf:params:oauth:grant-type:device_code".into(),
    );
    ev.details.insert("username".into(), user.username.clone());
    idp.store.create_session(&session, &[ev]).await?;
    data.status = "approved".into();
    data.user_id = Some(user.id.clone());
    data.session_id = Some(session.id.clone());
    rec.data = serde_json::to_string(&data).map_err(OAuthError::internal)?;
    idp.store.update_code(&rec).await?;
    Ok(page(
        StatusCode::OK,
        "Device connected",
        "<h1>Device connected</h1><p>You can return to your device.</p>",
    ))
}

/// The token endpoint's device-code grant.
pub async fn token(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    let code = form.require("device_code")?;
    let key = format!("device:{code}");
    let bad = |e: &'static str, d: &str| OAuthError::new(StatusCode::BAD_REQUEST, e, d);
    let Some(mut rec) = idp.store.code(&key).await? else {
        return Err(bad("invalid_grant", "Device code not valid"));
    };
    let now = gatehouse_core::time::now();
    let mut data: DeviceData = serde_json::from_str(&rec.data).map_err(OAuthError::internal)?;
    if rec.realm_id != realm.id || data.client_id != client.client_id {
        return Err(bad("invalid_grant", "Device code not valid"));
    }
    if rec.expires < now {
        idp.store.take_code(&key).await?;
        return Err(bad("expired_token", "Device code is expired"));
    }
    match data.status.as_str() {
        "denied" => {
            idp.store.take_code(&key).await?;
            Err(bad(
                "access_denied",
                "The end user denied the authorization request",
            ))
        }
        "pending" => {
            let too_fast = now - data.last_poll < timing(realm, client).1;
            data.last_poll = now;
            rec.data = serde_json::to_string(&data).map_err(OAuthError::internal)?;
            idp.store.update_code(&rec).await?;
            if too_fast {
                Err(bad("slow_down", "Polling too fast"))
            } else {
                Err(bad(
                    "authorization_pending",
                    "The authorization request is still pending",
                ))
            }
        }
        _ => {
            // Approved: single use.
            if idp.store.take_code(&key).await?.is_none() {
                return Err(bad("invalid_grant", "Device code not valid"));
            }
            let (Some(uid), Some(sid)) = (&data.user_id, &data.session_id) else {
                return Err(bad("invalid_grant", "Device code not valid"));
            };
            let Some(user) = idp.store.user(&realm.id, uid).await?.filter(|u| u.enabled) else {
                return Err(OAuthError::invalid_grant("User disabled or not found"));
            };
            let Some(session) = idp.store.session(sid).await? else {
                return Err(OAuthError::invalid_grant("Session not active"));
            };
            let ring = idp.keyring(realm).await?;
            crate::tokens::issue(
                idp,
                &ring,
                &crate::tokens::Grant {
                    realm,
                    client,
                    user: &user,
                    session: Some(&session),
                    scope: data.scope.clone(),
                    nonce: None,
                    resources: vec![],
                    refresh: true,
                    dpop: dpop.clone(),
                },
            )
            .await
        }
    }
}
