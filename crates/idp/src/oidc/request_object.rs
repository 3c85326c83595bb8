//! Request objects (OIDC Core §6.1, RFC 9101): an authorization request
//! whose parameters travel as a JWT in `request`, signed by the client so
//! that the browser carrying it can neither read-and-alter nor forge them
//! (or unsigned, `alg: none`, where the client allows it, as Keycloak's
//! default "any" does). Both the authorization endpoint and pushed
//! authorization requests (`par.rs`) accept one.
//!
//! The client's attribute `request.object.signature.alg` pins the
//! algorithm (`any` or unset: any it can verify, `none` included);
//! `request.object.required` (`request or request_uri`, `request only`,
//! `request_uri only`) makes one mandatory. A signed object is verified
//! with the client's keys (`jwks.string`, `jwks.url` or certificate, as
//! for `private_key_jwt`) or, for HMAC, its secret. An object may also be
//! passed by reference (`request_uri`, OIDC Core §6.2): fetched from a URL
//! the client registered in `request.uris` (Keycloak's "valid request
//! URIs", `##`-separated, with its trailing `*`), never from any other,
//! which would let a browser make the server fetch what it names.
//! Encrypted objects are not supported.

use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use base64::Engine;
use gatehouse_core::model::{Client, Realm};
use gatehouse_jose::keys::Alg;
use gatehouse_jose::verify::{numeric_date, numeric_date_ceil};
use serde_json::Value;

/// The HMAC algorithms a request object may use (with the client secret).
const HMAC: [&str; 3] = ["HS256", "HS384", "HS512"];

/// Every `alg` a request object may carry, as discovery lists them and
/// registration accepts them.
pub fn algorithms() -> impl Iterator<Item = &'static str> {
    Alg::ALL
        .into_iter()
        .map(Alg::as_str)
        .chain(HMAC)
        .chain(["none"])
}

/// The largest request object fetched by reference.
const MAX_FETCHED: usize = 64 * 1024;
/// Clock leeway for `exp` and `nbf`.
const LEEWAY: i64 = 30;
/// Claims about the object itself, not parameters of the request.
const ENVELOPE: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

/// The authorization request `q` stands for, at the authorization
/// endpoint: see `resolve_for`. `pushed`: it came by a pushed
/// `request_uri`, whose object (and its requirement) `par.rs` checked.
/// `Err` holds why it is refused, for the error page.
pub async fn resolve(
    idp: &Idp,
    realm: &Realm,
    q: Form,
    pushed: bool,
) -> Result<Result<Form, String>, OAuthError> {
    let Some(cid) = q.get("client_id") else {
        return Ok(Ok(q));
    };
    let Some(client) = idp.client(realm, cid).await? else {
        return Ok(Ok(q));
    };
    if pushed {
        return Ok(Ok(q));
    }
    let q = match q.get("request_uri") {
        Some(uri) if q.get("request").is_none() => {
            if !registered(&client, uri) {
                // Left in place: the endpoint answers it by redirect
                // (`invalid_request_uri`, OIDC Core §6.2).
                return Ok(Ok(q));
            }
            let jwt = match fetch(idp, uri).await {
                Ok(j) => j,
                Err(why) => return Ok(Err(why.into())),
            };
            let Form(mut params) = q;
            params.remove("request_uri");
            params.insert("request".into(), jwt);
            return resolve_for(idp, realm, &client, Form(params), true).await;
        }
        _ => q,
    };
    resolve_for(idp, realm, &client, q, false).await
}

/// Whether `uri` is one of the client's `request.uris`.
fn registered(client: &Client, uri: &str) -> bool {
    client.attributes.get("request.uris").is_some_and(|list| {
        list.split("##")
            .filter(|p| !p.is_empty())
            .any(|p| gatehouse_core::model::redirect_uri_matches(p, uri))
    })
}

/// The request object at `uri` (a registered URL): at most
/// `MAX_FETCHED` bytes, no redirects, the server's HTTP timeouts.
async fn fetch(idp: &Idp, uri: &str) -> Result<String, &'static str> {
    let fail = |what: &str| {
        tracing::warn!(uri, "request_uri {what}");
        "Invalid parameter: request_uri"
    };
    let body = crate::fetch::get(idp, uri, MAX_FETCHED)
        .await
        .map_err(|u| fail(u.what()))?;
    String::from_utf8(body)
        .map(|s| s.trim().to_owned())
        .map_err(|_| fail("not text"))
}

/// The request `q` of `client`: with its `request` object verified and
/// its claims in place of the query's parameters (they win, OIDC Core
/// §6.1), and refused when the client requires an object and sent none;
/// `pushing`: the object came by reference (a pushed authorization
/// request, RFC 9126, or a registered `request_uri`), which is how
/// `request_uri only` clients must send theirs.
pub async fn resolve_for(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    q: Form,
    pushing: bool,
) -> Result<Result<Form, String>, OAuthError> {
    let required = client
        .attributes
        .get("request.object.required")
        .map(String::as_str);
    if required == Some("request_uri only") && !pushing {
        return Ok(Err("Missing parameter: request_uri".into()));
    }
    let Some(jwt) = q.get("request") else {
        return Ok(match required {
            Some("request or request_uri" | "request only") => {
                Err("Missing parameter: request".into())
            }
            _ => Ok(q),
        });
    };
    let claims = match verified(idp, client, jwt).await? {
        Ok(c) => c,
        Err(why) => return Ok(Err(why)),
    };
    Ok(merge(idp, realm, client, q, &claims))
}

/// The object's claims, once its signature (or its permitted absence)
/// checks out.
async fn verified(
    idp: &Idp,
    client: &Client,
    jwt: &str,
) -> Result<Result<Value, String>, OAuthError> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() == 5 {
        return Ok(Err("Encrypted request objects are not supported".into()));
    }
    let [head, payload, sig] = parts[..] else {
        return Ok(Err("Invalid request object".into()));
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let Some(header) = decode(head) else {
        return Ok(Err("Invalid request object".into()));
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    let pinned = client
        .attributes
        .get("request.object.signature.alg")
        .map(String::as_str)
        .filter(|a| !a.is_empty() && *a != "any");
    if pinned.is_some_and(|p| p != alg) {
        return Ok(Err(format!(
            "Request object signed with {alg}, the client requires {}",
            pinned.unwrap_or_default()
        )));
    }
    let claims = match alg {
        "none" if sig.is_empty() => decode(payload),
        "none" => None,
        _ if HMAC.contains(&alg) => client.secret.as_deref().and_then(|secret| {
            gatehouse_jose::sign::verify_hmac(secret.as_bytes(), jwt, &[alg]).ok()
        }),
        _ => {
            let Ok(a) = gatehouse_jose::verify::parse_alg(alg) else {
                return Ok(Err(format!("Unsupported request object algorithm: {alg}")));
            };
            let keys = match crate::oidc::client_assertion::client_keys(idp, client, false).await {
                Ok(k) => k,
                Err(_) => return Ok(Err("The client has no keys to verify with".into())),
            };
            keys.verify_signature(jwt, &[a]).ok()
        }
    };
    Ok(match claims {
        Some(c @ Value::Object(_)) => Ok(c),
        _ => Err("Invalid request object signature".into()),
    })
}

/// The query with the object's parameters in place, once its own claims
/// (who made it, for whom, until when) check out.
fn merge(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    q: Form,
    claims: &Value,
) -> Result<Form, String> {
    let now = gatehouse_core::time::now();
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if claims.get("client_id").is_some() && str_claim("client_id") != Some(&client.client_id) {
        return Err("client_id in the request object does not match".into());
    }
    if claims.get("iss").is_some() && str_claim("iss") != Some(&client.client_id) {
        return Err("Invalid issuer of the request object".into());
    }
    if let Some(aud) = claims.get("aud") {
        let issuer = idp.issuer(&realm.name);
        let ok = match aud {
            Value::String(a) => *a == issuer,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(&issuer)),
            _ => false,
        };
        if !ok {
            return Err("Invalid audience of the request object".into());
        }
    }
    if let Some(exp) = claims.get("exp").map(numeric_date)
        && exp.is_none_or(|e| e < now - LEEWAY)
    {
        return Err("Request object expired".into());
    }
    if let Some(nbf) = claims.get("nbf").map(numeric_date_ceil)
        && nbf.is_none_or(|n| n > now + LEEWAY)
    {
        return Err("Request object not yet valid".into());
    }
    if let (Some(inner), Some(outer)) = (str_claim("response_type"), q.get("response_type"))
        && inner != outer
    {
        return Err("response_type in the request object does not match".into());
    }
    let Some(map) = claims.as_object() else {
        return Err("Invalid request object".into());
    };
    if map.contains_key("request") || map.contains_key("request_uri") {
        return Err("A request object may not hold request or request_uri".into());
    }
    let Form(mut params) = q;
    params.remove("request");
    for (k, v) in map {
        if ENVELOPE.contains(&k.as_str()) {
            continue;
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            // `max_age` as a number, `claims` as an object: the query's
            // spelling of them.
            Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => v.to_string(),
        };
        params.insert(k.clone(), value);
    }
    Ok(Form(params))
}
