//! Pushed authorization requests (RFC 9126), at Keycloak's
//! `POST /realms/{realm}/protocol/openid-connect/ext/par/request`: a client
//! sends its authorization request over the back channel, authenticated,
//! and the browser then carries only a one-time `request_uri` to the
//! authorization endpoint, so the request's parameters can be neither read
//! nor altered on the way. A client with Keycloak's attribute
//! `require.pushed.authorization.requests` may start a login only this way.

use crate::error::OAuthError;
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::Realm;
use gatehouse_store::CodeRecord;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The `request_uri` prefix RFC 9126 §2.2 suggests.
pub const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request may wait for the browser (Keycloak's 60 s).
const LIFETIME: i64 = 60;
/// The client's credentials are for this request only, not for the stored one.
const CREDENTIALS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// `POST .../ext/par/request`: 201 with `request_uri` and `expires_in`.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let form = Form::parse(&headers, &body)?;
    let client = client_auth::authenticate(&idp, &realm, &headers, &form).await?;
    if form.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request_uri is not allowed in a pushed authorization request",
        ));
    }
    // A request object is verified now, and its parameters are what is
    // stored (RFC 9126 §2.1: validated as the authorization endpoint would).
    let form =
        match crate::oidc::request_object::resolve_for(&idp, &realm, &client, form, true).await? {
            Ok(f) => f,
            Err(why) => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_object",
                    why,
                ));
            }
        };
    if form.get("client_id").is_some_and(|c| c != client.client_id) {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    form.require("response_type")?;
    let redirect = form.require("redirect_uri")?;
    if !client.redirect_uri_allowed(redirect) {
        return Err(OAuthError::invalid_request(
            "Invalid parameter: redirect_uri",
        ));
    }
    let mut params: HashMap<String, String> = form
        .0
        .iter()
        .filter(|(k, _)| !CREDENTIALS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.insert("client_id".into(), client.client_id.clone());
    // RFC 9449 §10.1: a proof with the pushed request binds the code to
    // its key, as `dpop_jkt` does (which must then name the same key).
    if let Some(jkt) = crate::oidc::dpop::at_par_endpoint(&idp, &realm, &headers)? {
        match params.get(crate::oidc::dpop::JKT_PARAM) {
            Some(named) if *named != jkt => {
                return Err(OAuthError::invalid_request(
                    "DPoP Proof public key thumbprint does not match dpop_jkt.",
                ));
            }
            _ => {
                params.insert(crate::oidc::dpop::JKT_PARAM.into(), jkt);
            }
        }
    }
    let id = gatehouse_core::id::token();
    let data = serde_json::to_string(&params)
        .map_err(|_| OAuthError::invalid_request("Malformed request"))?;
    idp.store
        .put_code(&CodeRecord {
            code: format!("par:{id}"),
            realm_id: realm.id.clone(),
            data,
            expires: gatehouse_core::time::now() + LIFETIME,
        })
        .await?;
    let mut r = (
        StatusCode::CREATED,
        Json(json!({"request_uri": format!("{PREFIX}{id}"), "expires_in": LIFETIME})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The authorization request a browser brings: the pushed one its
/// `request_uri` names (spent on first use, and only for the client that
/// pushed it), or the query itself. `Err` holds the reason for the error
/// page, for a request the endpoint must not act on.
pub async fn resolve(
    idp: &Idp,
    realm: &Realm,
    q: Form,
) -> Result<Result<Form, &'static str>, OAuthError> {
    let Some(pushed) = q.get("request_uri").and_then(|u| u.strip_prefix(PREFIX)) else {
        if let Some(cid) = q.get("client_id")
            && let Some(c) = idp.client(realm, cid).await?
            && c.attribute_flag("require.pushed.authorization.requests", false)
        {
            return Ok(Err("Pushed Authorization Request is only allowed."));
        }
        return Ok(Ok(q));
    };
    let now = gatehouse_core::time::now();
    let record = idp
        .store
        .take_code(&format!("par:{pushed}"))
        .await?
        .filter(|r| r.realm_id == realm.id && r.expires > now);
    let Some(record) = record else {
        return Ok(Err("Invalid parameter: request_uri"));
    };
    let params: HashMap<String, String> = serde_json::from_str(&record.data).unwrap_or_default();
    if params.get("client_id").map(String::as_str) != q.get("client_id") {
        return Ok(Err("Invalid parameter: client_id"));
    }
    Ok(Ok(Form(params)))
}
