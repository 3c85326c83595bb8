//! The token endpoint's `urn:ietf:params:oauth:grant-type:uma-ticket`:
//! asks a resource server's Authorization Services (`crate::authz`) what
//! a user may do, as Keycloak's policy enforcers and apps do.
//!
//! Who asks: a client with the user's access token as its bearer (public
//! clients included), or an authenticated client with the user's token in
//! `subject_token` (without one, for its own service account). What for:
//! `audience` names the resource server (its clientId); `permission`
//! (repeatable, `resource#scope1,scope2`, `#scope`, or `resource`) narrows
//! the request, absent means everything. What comes back: with
//! `response_mode=decision`, `{"result": true}`; with `permissions`, the
//! granted list; otherwise an RPT, an access token carrying
//! `authorization.permissions` with the resource server in its audience.
//! Nothing granted is a 403 `access_denied` (`not_authorized`).
//! A permission ticket (`ticket`, from the protection API's `permission`
//! endpoint, `authz::protection`) stands for `audience` and `permission`.

use crate::authz::ResourceServer;
use crate::authz::evaluate::{self, Asked, Request};
use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::{HeaderMap, StatusCode};
use gatehouse_core::model::{Client, Event, Realm, Session, User};
use serde_json::{Value, json};

/// The grant type.
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

/// Whom the permissions are for.
struct Asker {
    client: Client,
    user: User,
    session: Option<Session>,
    claims: Value,
}

async fn asker(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Asker, OAuthError> {
    let invalid_bearer = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "Invalid bearer token",
        )
    };
    if let Some(token) = crate::oidc::userinfo::bearer(headers) {
        let active = crate::oidc::userinfo::active_access_token(idp, realm, token)
            .await?
            .ok_or_else(invalid_bearer)?;
        let azp = active.claims["azp"].as_str().unwrap_or_default();
        let client = idp
            .client(realm, azp)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| OAuthError::invalid_client("Invalid client"))?;
        return Ok(Asker {
            client,
            user: active.user,
            session: active.session,
            claims: active.claims,
        });
    }
    let client = crate::oidc::client_auth::authenticate(idp, realm, headers, form).await?;
    if let Some(subject) = form.get("subject_token") {
        let active = crate::oidc::userinfo::active_access_token(idp, realm, subject)
            .await?
            .ok_or_else(invalid_bearer)?;
        return Ok(Asker {
            client,
            user: active.user,
            session: active.session,
            claims: active.claims,
        });
    }
    // For itself: its service account.
    if !client.service_accounts_enabled || client.public_client {
        return Err(OAuthError::unauthorized_client(
            "Client not enabled to retrieve service account",
        ));
    }
    let user = crate::admin::clients::ensure_service_account(idp, realm, &client).await?;
    let claims = json!({"azp": client.client_id, "sub": user.id});
    Ok(Asker {
        client,
        user,
        session: None,
        claims,
    })
}

/// The `permission` parameters, in order (they repeat).
fn permission_params(body: &[u8]) -> Vec<Asked> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| k == "permission" && !v.is_empty())
        .map(|(_, v)| Asked::parse(&v))
        .collect()
}

/// Checks what is asked against the server: an unknown resource or scope
/// is the caller's mistake.
fn requests<'a>(rs: &'a ResourceServer, asked: &[Asked]) -> Result<Vec<Request<'a>>, OAuthError> {
    let mut out = vec![];
    for a in asked {
        let resource = if a.resource.is_empty() {
            None
        } else {
            Some(rs.resource_ref(&a.resource).ok_or_else(|| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_resource",
                    format!("Resource with id [{}] does not exist.", a.resource),
                )
            })?)
        };
        let mut ids = vec![];
        for s in &a.scopes {
            let scope = rs.scope_ref(s).ok_or_else(|| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("Invalid scope [{s}]"),
                )
            })?;
            ids.push(scope.id.clone());
        }
        out.push(Request {
            resource,
            scopes: ids,
        });
    }
    Ok(out)
}

/// Claims the client pushes for the policies to read
/// (`claim_token`, base64 of a JSON object, with Keycloak's format
/// `urn:ietf:params:oauth:token-type:jwt`): regex policies reading the
/// context match against them.
fn claim_token(form: &Form) -> Result<Value, OAuthError> {
    use base64::Engine;
    let Some(t) = form.get("claim_token") else {
        return Ok(Value::Null);
    };
    match form.get("claim_token_format") {
        Some("urn:ietf:params:oauth:token-type:jwt") => {}
        _ => {
            return Err(OAuthError::invalid_request(
                "claim_token_format must be urn:ietf:params:oauth:token-type:jwt",
            ));
        }
    }
    let bad = || OAuthError::invalid_request("Invalid claim_token");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(t)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))
        })
        .map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad()),
    }
}

/// The grant.
pub async fn grant(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    form: &Form,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let a = asker(idp, realm, headers, form).await?;
    // A DPoP proof binds the RPT, as it binds every grant's token.
    let dpop = crate::oidc::dpop::at_token_endpoint(idp, realm, &a.client, headers)?;
    // A permission ticket names the resource server and what is asked.
    let ticket = match form.get("ticket") {
        Some(t) => Some(crate::authz::protection::redeem(idp, realm, t).await?),
        None => None,
    };
    let audience = match &ticket {
        Some((aud, _)) => aud.as_str(),
        None => form
            .get("audience")
            .and_then(|a| a.split(' ').next())
            .ok_or_else(|| OAuthError::invalid_request("You must provide the audience"))?,
    };
    let rs_client = idp
        .client(realm, audience)
        .await?
        .filter(|c| c.enabled)
        .ok_or_else(|| {
            OAuthError::invalid_request(format!("Unknown resource server id: [{audience}]"))
        })?;
    let rs = ResourceServer::of(&rs_client)
        .ok_or_else(|| OAuthError::invalid_request("Client does not support permissions"))?;
    let mut params = permission_params(body);
    if let Some((_, asked)) = ticket {
        params.extend(asked);
    }
    // Incremental authorization: a previous RPT's permissions are asked
    // again (evaluated anew, so what was since revoked drops out; a
    // resource or scope deleted since is simply not granted again).
    let upgraded = match form.get("rpt") {
        Some(previous) => {
            for mut p in rpt_permissions(idp, realm, &a, previous).await? {
                if rs.resource(&p.resource).is_none() {
                    continue;
                }
                p.scopes.retain(|s| rs.scope_ref(s).is_some());
                params.push(p);
            }
            true
        }
        None => false,
    };
    let reqs = requests(&rs, &params)?;
    let mut who =
        crate::authz::subject(idp, realm, &a.user, Some(&a.client.id), a.claims.clone()).await?;
    who.context = claim_token(form)?;
    let granted = evaluate::permissions(&rs, &who, &reqs);
    let mode = form.get("response_mode");
    if !matches!(mode, None | Some("decision") | Some("permissions")) {
        return Err(OAuthError::invalid_request("Invalid response_mode"));
    }
    let mut ev = Event::user(realm, "PERMISSION_TOKEN");
    ev.client_id = Some(a.client.client_id.clone());
    ev.user_id = Some(a.user.id.clone());
    ev.session_id = a.session.as_ref().map(|s| s.id.clone());
    ev.details
        .insert("audience".into(), rs_client.client_id.clone());
    if granted.is_empty() {
        let mut err = ev;
        err.kind = "PERMISSION_TOKEN_ERROR".into();
        err.error = Some("access_denied".into());
        idp.record(err).await?;
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "not_authorized",
        ));
    }
    let with_name = form
        .get("response_include_resource_name")
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let limit = match form.get("response_permissions_limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| OAuthError::invalid_request("Invalid response_permissions_limit"))?,
        None => usize::MAX,
    };
    let list: Vec<Value> = granted
        .iter()
        .take(limit)
        .map(|g| g.to_json(with_name))
        .collect();
    match mode {
        Some("decision") => return Ok(json!({"result": true})),
        Some("permissions") => return Ok(Value::Array(list)),
        _ => {}
    }
    let mut out = rpt(idp, realm, &a, &rs_client, list, dpop).await?;
    out["upgraded"] = json!(upgraded);
    idp.record(ev).await?;
    Ok(out)
}

/// The permissions of a previous RPT (`rpt`): it must be an active
/// access token of this realm for the same user.
async fn rpt_permissions(
    idp: &Idp,
    realm: &Realm,
    a: &Asker,
    previous: &str,
) -> Result<Vec<Asked>, OAuthError> {
    let invalid = || OAuthError::invalid_grant("Invalid RPT");
    let active = crate::oidc::userinfo::active_access_token(idp, realm, previous)
        .await?
        .ok_or_else(invalid)?;
    if active.user.id != a.user.id {
        return Err(invalid());
    }
    Ok(Asked::from_permissions(
        &active.claims["authorization"]["permissions"],
    ))
}

/// A requesting party token: the asker's access token, for the same
/// client and session, with the granted permissions and the resource
/// server as an audience.
async fn rpt(
    idp: &Idp,
    realm: &Realm,
    a: &Asker,
    rs_client: &Client,
    permissions: Vec<Value>,
    dpop: Option<String>,
) -> Result<Value, OAuthError> {
    let scope = match a.claims["scope"].as_str() {
        Some(s) => s.to_owned(),
        None => crate::tokens::granted_scope(&a.client, &idp.client_scopes(realm).await?, None)?,
    };
    let g = crate::tokens::Grant {
        realm,
        client: &a.client,
        user: &a.user,
        session: a.session.as_ref(),
        scope,
        nonce: None,
        resources: vec![],
        refresh: false,
        dpop,
    };
    let now = gatehouse_core::time::now();
    let c = crate::tokens::claims(idp, &g, now, false).await?;
    let mut at = c.access;
    at.insert("authorization".into(), json!({"permissions": permissions}));
    let aud = match at.remove("aud") {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(l)) => l
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    let mut aud = aud;
    if !aud.contains(&rs_client.client_id) {
        aud.push(rs_client.client_id.clone());
    }
    at.insert(
        "aud".into(),
        if aud.len() == 1 {
            json!(aud[0])
        } else {
            json!(aud)
        },
    );
    let ring = idp.keyring(realm).await?;
    let signer =
        crate::keyring::client_signer(idp, realm, &ring, &a.client, crate::tokens::ACCESS_ALG)
            .await?;
    let token = gatehouse_jose::sign::sign(signer.as_ref(), &at)?;
    Ok(json!({
        "upgraded": false,
        "access_token": token,
        "expires_in": c.lifespan,
        "refresh_expires_in": 0,
        "token_type": crate::oidc::dpop::token_type(g.dpop.is_some()),
        "not-before-policy": 0,
    }))
}
