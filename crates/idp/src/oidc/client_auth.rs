//! Client authentication at the token, introspection and revocation
//! endpoints: `client_secret_basic`, `client_secret_post`, a signed JWT
//! (`client_secret_jwt`, `private_key_jwt`: [`super::client_assertion`]),
//! or a public client naming itself. A confidential client may use only the
//! method its `clientAuthenticatorType` names. Secrets compare in constant
//! time; during a secret rotation's grace period the previous secret also
//! works.

use crate::error::OAuthError;
use crate::oidc::form::Form;
use crate::state::Idp;
use axum::http::{HeaderMap, header};
use base64::Engine;
use gatehouse_core::model::{Client, Realm};
use subtle::ConstantTimeEq;

pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The base64 text of `Authorization: Basic ...`, when Basic is used.
pub(crate) fn basic_param(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
}

/// Basic credentials as (client id, secret), each form-urlencoded before
/// base64 as RFC 6749 §2.3.1 says; None when they do not decode.
pub(crate) fn decode_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let (id, sec) = raw.split_once(':')?;
    Some((pct_decode(id), pct_decode(sec)))
}

/// Authenticates the calling client. Returns 401 `invalid_client` on any
/// failure, with `WWW-Authenticate: Basic` when Basic was attempted.
pub async fn authenticate(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Client, OAuthError> {
    let basic = basic_param(headers);
    if let Some(a) = super::client_assertion::from_form(form)? {
        if basic.is_some() || form.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "Multiple client authentication methods used",
            ));
        }
        let denied = || OAuthError::invalid_client("Invalid client or Invalid client credentials");
        let client = idp
            .client(realm, &a.client_id)
            .await?
            .filter(|c| c.enabled && !c.public_client)
            .ok_or_else(denied)?;
        super::client_assertion::verify(idp, realm, &client, &a).await?;
        return Ok(client);
    }
    let (client_id, secret, used_basic) = match basic {
        Some(b64) => {
            if form.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "Multiple client authentication methods used",
                ));
            }
            let (id, sec) = decode_basic(b64).ok_or_else(|| {
                let mut e = OAuthError::invalid_client("Invalid client credentials");
                e.www_authenticate = Some(format!("Basic realm=\"{}\"", realm.name));
                e
            })?;
            if let Some(form_id) = form.get("client_id")
                && form_id != id
            {
                return Err(OAuthError::invalid_request("client_id mismatch"));
            }
            (id, Some(sec), true)
        }
        None => (
            form.get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("Missing client_id"))?
                .to_owned(),
            form.get("client_secret").map(str::to_owned),
            false,
        ),
    };
    let fail = |msg: &str| {
        let mut e = OAuthError::invalid_client(msg);
        if used_basic {
            e.www_authenticate = Some(format!("Basic realm=\"{}\"", realm.name));
        }
        e
    };
    let Some(client) = idp.client(realm, &client_id).await? else {
        return Err(fail("Invalid client or Invalid client credentials"));
    };
    if !client.enabled {
        return Err(fail("Invalid client or Invalid client credentials"));
    }
    if client.public_client {
        return Ok(client);
    }
    let Some(given) = secret else {
        return Err(fail("Invalid client or Invalid client credentials"));
    };
    if client.client_authenticator_type != "client-secret" {
        // Configured for a signed JWT: its secret alone is not enough.
        return Err(fail(
            "Client authentication method not allowed for this client",
        ));
    }
    let now = gatehouse_core::time::now();
    let current_ok = client.secret.as_deref().is_some_and(|s| ct_eq(s, &given));
    let rotated_ok = client
        .rotated_secret
        .as_deref()
        .is_some_and(|s| ct_eq(s, &given))
        && client.rotated_secret_expires_at.is_some_and(|t| t > now);
    if current_ok || rotated_ok {
        Ok(client)
    } else {
        Err(fail("Invalid client or Invalid client credentials"))
    }
}
