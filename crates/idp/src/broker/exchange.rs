//! The back channel of a brokered login: the provider's authorization code
//! redeemed at its token endpoint, its ID token checked (OIDC Core
//! §3.1.3.7), its userinfo read, and the person it names.

use super::provider::{ClientAuth, OidcProvider};
use crate::state::Idp;
use gatehouse_jose::verify::numeric_date;
use serde_json::Value;

/// Why a brokered login failed, for the log and the event (the browser
/// sees a generic message).
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    fn new(msg: impl Into<String>) -> Self {
        Failure(msg.into())
    }
}

/// The person the provider vouched for (Keycloak's BrokeredIdentityContext).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Brokered {
    /// Their `sub` at the provider: what the link is kept by.
    pub id: String,
    /// `preferred_username`, else `email`, else `sub`, as Keycloak picks.
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Everything the ID token and userinfo said, for the mappers.
    pub claims: Value,
    /// The ID token itself: the hint of a logout at the provider.
    #[serde(default)]
    pub id_token: String,
}

/// Redeems `code` and returns who logged in. `nonce` is the one sent with
/// the authorization request; `verifier` the PKCE verifier, if any.
pub async fn redeem(
    idp: &Idp,
    p: &OidcProvider,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
    nonce: &str,
) -> Result<Brokered, Failure> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let mut req = idp.http.post(&p.token_url);
    match p.client_auth {
        ClientAuth::Post => {
            form.push(("client_id", &p.client_id));
            form.push(("client_secret", &p.client_secret));
        }
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: each part form-encoded before Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&p.client_id), Some(enc(&p.client_secret)));
        }
    }
    let resp = req
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|_| Failure::new("token endpoint unreachable"))?;
    let status = resp.status();
    let body = read_json(resp).await?;
    if !status.is_success() {
        return Err(Failure(format!(
            "token endpoint answered {status}: {}",
            body["error"].as_str().unwrap_or("no error code")
        )));
    }
    let id_token = body["id_token"]
        .as_str()
        .ok_or_else(|| Failure::new("token response without id_token"))?;
    let mut claims = id_token_claims(idp, p, id_token).await?;
    if claims["nonce"].as_str() != Some(nonce) {
        return Err(Failure::new("ID token nonce does not match the request"));
    }
    if let (Some(url), Some(at)) = (&p.userinfo_url, body["access_token"].as_str()) {
        let info = userinfo(idp, url, at).await?;
        // OIDC Core §5.3.2: userinfo about someone else is discarded.
        if info["sub"] != claims["sub"] {
            return Err(Failure::new("userinfo names another subject"));
        }
        if let (Some(c), Some(i)) = (claims.as_object_mut(), info.as_object()) {
            for (k, v) in i {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    person(&claims, id_token)
}

async fn read_json(resp: reqwest::Response) -> Result<Value, Failure> {
    let bytes = crate::fetch::body(resp, crate::fetch::MAX_JSON)
        .await
        .map_err(|u| match u {
            crate::fetch::Unread::TooLarge => Failure::new("provider's answer too large"),
            _ => Failure::new("provider's answer unreadable"),
        })?;
    serde_json::from_slice(&bytes).map_err(|_| Failure::new("provider's answer is not JSON"))
}

async fn userinfo(idp: &Idp, url: &str, access_token: &str) -> Result<Value, Failure> {
    let resp = idp
        .http
        .get(url)
        .bearer_auth(access_token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|_| Failure::new("userinfo endpoint unreachable"))?;
    if !resp.status().is_success() {
        return Err(Failure(format!(
            "userinfo endpoint answered {}",
            resp.status()
        )));
    }
    read_json(resp).await
}

/// The ID token's claims, checked: signature against the provider's JWKS
/// when configured (else, as OIDC Core §3.1.3.7 allows for a token taken
/// straight from the token endpoint, unsigned-checked as Keycloak does with
/// `validateSignature` off), issuer when configured, audience = our client
/// id, and the token's lifetime.
async fn id_token_claims(idp: &Idp, p: &OidcProvider, token: &str) -> Result<Value, Failure> {
    let now = gatehouse_core::time::now();
    let claims = match (&p.jwks_url, p.validate_signature) {
        (Some(url), true) => {
            let rules = gatehouse_jose::verify::Rules {
                issuer: p.issuer.clone(),
                audiences: vec![p.client_id.clone()],
                algorithms: gatehouse_jose::verify::ASYMMETRIC.to_vec(),
                leeway: p.clock_skew.unsigned_abs(),
                client_id_as_audience: false,
                purpose: gatehouse_jose::verify::Purpose::Any,
            };
            let keys = |refresh| crate::oidc::client_assertion::keys_at(idp, url, refresh);
            let first = keys(false)
                .await
                .map_err(|_| Failure::new("provider keys unavailable"))?
                .verify(token, &rules);
            match first {
                Err(gatehouse_jose::Error::UnknownKid) => keys(true)
                    .await
                    .map_err(|_| Failure::new("provider keys unavailable"))?
                    .verify(token, &rules),
                other => other,
            }
            .map_err(|e| Failure(format!("ID token rejected: {e}")))?
        }
        _ => {
            let c = crate::oidc::client_assertion::unverified_claims(token)
                .ok_or_else(|| Failure::new("ID token malformed"))?;
            if let Some(iss) = &p.issuer
                && c["iss"].as_str() != Some(iss)
            {
                return Err(Failure::new("ID token rejected: issuer mismatch"));
            }
            let aud_ok = match &c["aud"] {
                Value::String(a) => a == &p.client_id,
                Value::Array(a) => a.iter().any(|x| x.as_str() == Some(&p.client_id)),
                _ => false,
            };
            if !aud_ok {
                return Err(Failure::new("ID token rejected: audience mismatch"));
            }
            if numeric_date(&c["exp"]).is_none_or(|exp| exp < now.saturating_sub(p.clock_skew)) {
                return Err(Failure::new("ID token rejected: expired"));
            }
            c
        }
    };
    if claims["sub"].as_str().is_none_or(str::is_empty) {
        return Err(Failure::new("ID token without sub"));
    }
    Ok(claims)
}

/// The person in the (merged) claims of ID token `id_token`.
fn person(c: &Value, id_token: &str) -> Result<Brokered, Failure> {
    let s = |k: &str| {
        c[k].as_str()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let id = s("sub").ok_or_else(|| Failure::new("no subject"))?;
    let email = s("email");
    let username = s("preferred_username")
        .or_else(|| email.clone())
        .unwrap_or_else(|| id.clone());
    Ok(Brokered {
        username,
        email,
        first_name: s("given_name"),
        last_name: s("family_name"),
        id,
        claims: c.clone(),
        id_token: id_token.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_username_falls_back_to_email_then_subject() {
        let full = person(
            &json!({"sub": "s1", "preferred_username": "ann", "email": "a@x.org",
                                  "given_name": "Ann", "family_name": "Lee"}),
            "",
        )
        .expect("person");
        assert_eq!(
            (full.username.as_str(), full.first_name.as_deref()),
            ("ann", Some("Ann"))
        );
        let mail = person(&json!({"sub": "s1", "email": "a@x.org"}), "").expect("person");
        assert_eq!(mail.username, "a@x.org");
        let bare = person(&json!({"sub": "s1", "preferred_username": " "}), "").expect("person");
        assert_eq!(bare.username, "s1");
        assert!(person(&json!({"email": "a@x.org"}), "").is_err());
    }
}
