//! `POST /realms/{realm}/protocol/openid-connect/token/introspect` (RFC
//! 7662). Only authenticated confidential clients may introspect. Anything
//! not active answers `{"active": false}` and nothing else.

use crate::error::OAuthError;
use crate::oidc::client_auth;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;

/// The introspection endpoint.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    let form = Form::parse(&headers, &body)?;
    let client = client_auth::authenticate(&idp, &realm, &headers, &form).await?;
    if client.public_client {
        return Err(OAuthError::unauthorized_client(
            "Public clients cannot introspect tokens",
        ));
    }
    let token = form.require("token")?;
    let inactive = Json(json!({"active": false}));
    // Bound tokens too: the client asking holds no proof, and needs the
    // binding (`cnf`) to check the proof it was shown (RFC 9449 §6.2).
    if let Some(active) = crate::oidc::userinfo::active_token(&idp, &realm, token, true).await? {
        let mut c = active.claims;
        if let Some(o) = c.as_object_mut() {
            o.insert("active".into(), json!(true));
            o.insert(
                "client_id".into(),
                o.get("azp").cloned().unwrap_or(Value::Null),
            );
            o.insert("username".into(), json!(active.user.username));
            let bound = o.get("cnf").and_then(|c| c.get("jkt")).is_some();
            o.insert(
                "token_type".into(),
                json!(crate::oidc::dpop::token_type(bound)),
            );
            // An admin acting as the user (impersonation), as Keycloak
            // shows it: the actor's username (RFC 8693 §4.1).
            if let Some(i) = active.session.and_then(|s| s.impersonator) {
                o.insert("act".into(), json!({"sub": i.username}));
            }
        }
        return Ok(Json(c));
    }
    // A refresh token: active while its session is.
    let ring = idp.keyring(&realm).await?;
    if let Ok(c) = gatehouse_jose::sign::verify_hs512(&ring.hs_secret, token) {
        let now = gatehouse_core::time::now();
        let live = c["exp"].as_i64().is_some_and(|e| e > now);
        let session = match c["sid"].as_str() {
            Some(sid) if live => idp.store.session(sid).await?,
            _ => None,
        };
        if let Some(s) = session {
            let current = !s.rotate_refresh || s.refresh_token_id.as_deref() == c["jti"].as_str();
            if current {
                let mut c = c;
                if let Some(o) = c.as_object_mut() {
                    o.insert("active".into(), json!(true));
                    o.insert(
                        "client_id".into(),
                        o.get("azp").cloned().unwrap_or(Value::Null),
                    );
                    o.insert(
                        "token_type".into(),
                        o.get("typ").cloned().unwrap_or(Value::Null),
                    );
                }
                return Ok(Json(c));
            }
        }
    }
    Ok(inactive)
}
