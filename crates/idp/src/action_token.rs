//! Keycloak's action tokens: the signed, expiring links its e-mails carry
//! (`/realms/{realm}/login-actions/action-token?key=...`) for a password
//! reset, an e-mail verification or the actions an admin asked a user to
//! perform. The link's page is `oidc::auth::action_link`.
//!
//! They are HS512 JWTs under a key derived from the realm's secret for
//! this purpose alone, so no action token can pass for a refresh token,
//! an SSO cookie or any other token signed with that secret, nor they for
//! it. Each carries a random id, spent when used (`actok:{jti}` in the
//! store), so a link works once.

use crate::error::OAuthError;
use crate::keyring::KeyRing;
use gatehouse_core::model::{Event, Realm, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A password reset the user asked for from the login page.
pub const RESET_CREDENTIALS: &str = "reset-credentials";
/// An e-mail address to confirm.
pub const VERIFY_EMAIL: &str = "verify-email";
/// Required actions an admin sent the user (`execute-actions-email`).
pub const EXECUTE_ACTIONS: &str = "execute-actions";
/// An invitation to join an organization (Keycloak's `ORGIVT`); its id is
/// the invitation's, and its user none for someone without an account.
pub const INVITE_ORG: &str = "ORGIVT";

/// Keycloak's default lifespan of a token a user's own request makes
/// (`actionTokenGeneratedByUserLifespan`): 5 minutes.
const USER_LIFESPAN: i64 = 300;
/// Keycloak's default lifespan of a token an admin makes
/// (`actionTokenGeneratedByAdminLifespan`): 12 hours.
const ADMIN_LIFESPAN: i64 = 43_200;

/// What a link may do, for whom, until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionToken {
    /// One of [`RESET_CREDENTIALS`], [`VERIFY_EMAIL`], [`EXECUTE_ACTIONS`].
    pub typ: String,
    /// The user's id.
    pub sub: String,
    /// The address the link was sent to: the link dies if it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eml: Option<String>,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// Spent on use.
    pub jti: String,
    /// The client the pages are for (Keycloak's `account` by default).
    pub cid: String,
    /// Required actions to perform (Keycloak's `rqac`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rqac: Vec<String>,
    /// Where "Back to application" leads afterwards (Keycloak's `reduri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduri: Option<String>,
    /// The login attempt the link continues, in the browser that asked
    /// (Keycloak's `asid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asid: Option<String>,
    /// The organization an invitation is to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// Why a link is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Past its `exp`.
    Expired,
    /// Not a token of this realm for this purpose.
    Invalid,
}

impl ActionToken {
    /// A new token of type `typ` for user `sub`, living `lifespan` seconds.
    pub fn new(issuer: String, typ: &str, sub: &str, cid: &str, lifespan: i64) -> ActionToken {
        let now = gatehouse_core::time::now();
        ActionToken {
            typ: typ.to_owned(),
            sub: sub.to_owned(),
            eml: None,
            iss: issuer,
            iat: now,
            exp: now.saturating_add(lifespan),
            jti: gatehouse_core::id::token(),
            cid: cid.to_owned(),
            rqac: Vec::new(),
            reduri: None,
            asid: None,
            org: None,
        }
    }

    /// The signed token.
    pub fn sign(&self, ring: &KeyRing) -> Result<String, OAuthError> {
        Ok(gatehouse_jose::sign::sign_hs512(
            &key(ring),
            "action",
            self,
        )?)
    }

    /// The token in `s`, if this realm (`issuer`) signed it for an action
    /// and it has not expired.
    pub fn verify(ring: &KeyRing, issuer: &str, s: &str) -> Result<ActionToken, Refused> {
        let claims =
            gatehouse_jose::sign::verify_hs512(&key(ring), s).map_err(|_| Refused::Invalid)?;
        let t: ActionToken = serde_json::from_value(claims).map_err(|_| Refused::Invalid)?;
        if t.iss != issuer
            || ![RESET_CREDENTIALS, VERIFY_EMAIL, EXECUTE_ACTIONS, INVITE_ORG]
                .contains(&t.typ.as_str())
        {
            return Err(Refused::Invalid);
        }
        if t.exp < gatehouse_core::time::now() {
            return Err(Refused::Expired);
        }
        Ok(t)
    }

    /// The link that carries this token.
    pub fn link(
        &self,
        ring: &KeyRing,
        public_url: &str,
        realm: &Realm,
    ) -> Result<String, OAuthError> {
        let key = self.sign(ring)?;
        Ok(crate::oidc::auth::with_params(
            &format!(
                "{public_url}/realms/{}/login-actions/action-token",
                enc(&realm.name)
            ),
            &[("key", &key), ("client_id", &self.cid)],
        ))
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The key action tokens are signed with: HMAC of a fixed label under
/// the realm's secret, so it signs nothing else.
fn key(ring: &KeyRing) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, &ring.hs_secret);
    aws_lc_rs::hmac::sign(&k, b"gatehouse action token")
        .as_ref()
        .to_vec()
}

/// Seconds a token the user's own request makes lives, for `typ`:
/// Keycloak's per-type override in the realm's attributes
/// (`actionTokenGeneratedByUserLifespan.{typ}`), else the realm's
/// `actionTokenGeneratedByUserLifespan`, else 5 minutes.
pub fn user_lifespan(realm: &Realm, typ: &str) -> i64 {
    let per_type = format!("actionTokenGeneratedByUserLifespan.{typ}");
    realm
        .extra
        .get("attributes")
        .and_then(|a| a.get(&per_type))
        .and_then(positive)
        .or_else(|| {
            realm
                .extra
                .get("actionTokenGeneratedByUserLifespan")
                .and_then(positive)
        })
        .unwrap_or(USER_LIFESPAN)
}

/// Seconds a token an admin's request makes lives (the realm's
/// `actionTokenGeneratedByAdminLifespan`, else 12 hours).
pub fn admin_lifespan(realm: &Realm) -> i64 {
    realm
        .extra
        .get("actionTokenGeneratedByAdminLifespan")
        .and_then(positive)
        .unwrap_or(ADMIN_LIFESPAN)
}

/// A positive number of seconds, written as a number or a string.
fn positive(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
}

fn spent_key(t: &ActionToken) -> String {
    format!("actok:{}", t.jti)
}

/// Whether the token was used already.
pub async fn spent(idp: &crate::state::Idp, t: &ActionToken) -> Result<bool, OAuthError> {
    Ok(idp.store.code(&spent_key(t)).await?.is_some())
}

/// Spends the token (remembered until it would have expired anyway):
/// false when it was spent already. Atomic: of two uses at once, one
/// wins (the store's key is unique).
pub async fn spend(
    idp: &crate::state::Idp,
    realm: &Realm,
    t: &ActionToken,
) -> Result<bool, OAuthError> {
    let rec = gatehouse_store::CodeRecord {
        code: spent_key(t),
        realm_id: realm.id.clone(),
        data: String::new(),
        expires: t.exp,
    };
    match idp.store.put_code(&rec).await {
        Ok(()) => Ok(true),
        Err(gatehouse_store::Error::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What a page says when the mail could not go (Keycloak's words).
pub const SEND_FAILED: &str = "Failed to send email, please try again later.";

/// Mails the link of `t` to `user` in the message `compose` makes of it,
/// and records the user event a link sent on the user's behalf gets
/// (`SEND_VERIFY_EMAIL`, `SEND_RESET_PASSWORD`, or their `_ERROR` form;
/// an admin's `execute-actions` mail is the admin event's business).
pub async fn mail(
    idp: &crate::state::Idp,
    realm: &Realm,
    user: &User,
    t: &ActionToken,
    compose: impl FnOnce(&str) -> crate::mail::Mail,
) -> Result<Result<(), crate::mail::MailError>, OAuthError> {
    let Some(to) = user.email.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(Err(crate::mail::MailError::Invalid(
            "the user has no e-mail address".into(),
        )));
    };
    let ring = idp.keyring(realm).await?;
    let message = compose(&t.link(&ring, &idp.public_url, realm)?);
    let sent = match crate::mail::Smtp::of(realm) {
        Some(smtp) => {
            let name = [user.first_name.as_deref(), user.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            smtp.send(to, Some(name.as_str()).filter(|n| !n.is_empty()), &message)
                .await
        }
        None => Err(crate::mail::MailError::NotConfigured),
    };
    let kind = match t.typ.as_str() {
        VERIFY_EMAIL => "SEND_VERIFY_EMAIL",
        RESET_CREDENTIALS => "SEND_RESET_PASSWORD",
        _ => return Ok(sent),
    };
    let mut ev = Event::user(realm, kind);
    ev.client_id = Some(t.cid.clone());
    ev.user_id = Some(user.id.clone());
    ev.details.insert("email".into(), to.to_owned());
    ev.details.insert("username".into(), user.username.clone());
    if let Err(e) = &sent {
        tracing::warn!(realm = %realm.name, error = %e, "action e-mail not sent");
        ev.set_kind(realm, &format!("{kind}_ERROR"));
        ev.error = Some("email_send_failed".into());
    }
    idp.record(ev).await?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifespans_follow_the_realm() {
        let mut realm = Realm::new("r");
        assert_eq!(user_lifespan(&realm, RESET_CREDENTIALS), 300);
        assert_eq!(admin_lifespan(&realm), 43_200);
        realm
            .extra
            .insert("actionTokenGeneratedByUserLifespan".into(), 600.into());
        realm.extra.insert(
            "attributes".into(),
            serde_json::json!({"actionTokenGeneratedByUserLifespan.verify-email": "900"}),
        );
        realm
            .extra
            .insert("actionTokenGeneratedByAdminLifespan".into(), "-5".into());
        assert_eq!(user_lifespan(&realm, RESET_CREDENTIALS), 600);
        assert_eq!(user_lifespan(&realm, VERIFY_EMAIL), 900);
        assert_eq!(admin_lifespan(&realm), 43_200);
    }
}
