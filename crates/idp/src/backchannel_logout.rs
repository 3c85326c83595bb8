//! OpenID Connect Back-Channel Logout 1.0: when a session ends, each client
//! that holds tokens of it and registered a `backchannel.logout.url`
//! (Keycloak's client attribute; `backchannel_logout_uri` in dynamic
//! registration) is sent a signed logout token, server to server, so that
//! a web app ends its own session at once instead of trusting its cookie
//! until the tokens run out.
//!
//! As Keycloak does it: the token is signed with the realm's key (header
//! `typ: logout+jwt`), names the client as audience, the user as `sub` and,
//! unless `backchannel.logout.session.required` is `false`, the session as
//! `sid` (the `sid` of the ID token the client got), and with
//! `backchannel.logout.revoke.offline.tokens` `revoke_offline_access: true`
//! (the user's offline sessions at that client end too); it is POSTed as
//! `logout_token` in a form body before the logout answers, every client at
//! once, each waiting at most the HTTP client's timeout. A client that does
//! not answer 2xx is logged and does not stop the logout: the session is
//! already gone here, and the gateway refuses its tokens either way.
//! Redirects are not followed (§2.7).

use crate::keyring::KeyRing;
use crate::state::Idp;
use gatehouse_core::model::{Client, Realm, Session};
use serde_json::json;

/// The event a logout token carries (§2.4).
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Seconds a logout token is valid: it is used at once or never.
const LIFESPAN: i64 = 120;
/// Logout posts in flight at once.
const MAX_IN_FLIGHT: usize = 16;

/// The URL a client registered for back-channel logout, if any.
pub fn url(client: &Client) -> Option<&str> {
    client
        .attributes
        .get("backchannel.logout.url")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
}

/// The logout token for `session`, which `client` holds, signed with the
/// client's ID-token algorithm (as Keycloak signs logout tokens).
async fn token(
    idp: &Idp,
    realm: &Realm,
    ring: &KeyRing,
    client: &Client,
    session: &Session,
) -> Option<String> {
    let now = gatehouse_core::time::now();
    let mut claims = json!({
        "iss": idp.issuer(&realm.name),
        "aud": client.client_id,
        "sub": crate::pairwise::sub_for(client, &session.user_id).ok()?,
        "iat": now,
        "exp": now + LIFESPAN,
        "jti": gatehouse_core::id::uuid(),
        "typ": "Logout",
        "events": { EVENT: {} },
    });
    if client.attribute_flag("backchannel.logout.session.required", true) {
        claims["sid"] = json!(session.id);
    }
    if revokes_offline(client) {
        claims["revoke_offline_access"] = json!(true);
    }
    let signer = crate::keyring::client_signer(idp, realm, ring, client, crate::tokens::ID_ALG)
        .await
        .ok()?;
    gatehouse_jose::sign::sign_typed(signer.as_ref(), "logout+jwt", &claims).ok()
}

/// Keycloak's `backchannel.logout.revoke.offline.tokens`: a logout also
/// ends the user's offline sessions at this client, and the token says so.
fn revokes_offline(client: &Client) -> bool {
    client.attribute_flag("backchannel.logout.revoke.offline.tokens", false)
}

/// Ends the offline sessions of `user_id` at `client` (for
/// [`revokes_offline`]); they are revoked at the gateway too, and the
/// logout token already tells the client.
async fn revoke_offline(idp: &Idp, client: &Client, user_id: &str) {
    let Ok(sessions) = idp.store.user_sessions(user_id).await else {
        return;
    };
    for s in sessions
        .iter()
        .filter(|s| s.offline && s.client_id == client.client_id)
    {
        match idp.store.delete_session(&s.id, &[]).await {
            Ok(ended) => idp.sessions_revoked(&ended),
            Err(e) => {
                tracing::warn!(client = %client.client_id, error = %e, "offline session not revoked");
            }
        }
    }
}

/// Tells the clients of the `ended` sessions, and waits for their answers
/// (or their timeouts). Sessions without a client (browser SSO sessions)
/// and clients without a URL are skipped.
pub async fn notify(idp: &Idp, realm: &Realm, ended: &[Session]) {
    let mut targets = Vec::new();
    for s in ended.iter().filter(|s| !s.client_id.is_empty()) {
        if let Ok(Some(client)) = idp.client(realm, &s.client_id).await
            && url(&client).is_some()
        {
            targets.push((client, s));
        }
    }
    if targets.is_empty() {
        return;
    }
    let Ok(ring) = idp.keyring(realm).await else {
        tracing::warn!(realm = %realm.name, "back-channel logout: no signing key");
        return;
    };
    let mut sends = tokio::task::JoinSet::new();
    // A realm-wide logout can end thousands of sessions: a bounded number
    // of posts are in flight at once.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    for (client, s) in targets {
        let Some(to) = url(&client) else { continue };
        if revokes_offline(&client) && !s.offline {
            revoke_offline(idp, &client, &s.user_id).await;
        }
        let Some(token) = token(idp, realm, &ring, &client, s).await else {
            tracing::warn!(client = %client.client_id, "back-channel logout token could not be signed");
            continue;
        };
        let request = idp.http.post(to).form(&[("logout_token", token.as_str())]);
        let client_id = client.client_id.clone();
        let slots = slots.clone();
        sends.spawn(async move {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(client = %client_id, status = %r.status(), "back-channel logout refused"),
                Err(e) => tracing::warn!(client = %client_id, error = %e, "back-channel logout failed"),
            }
        });
    }
    while sends.join_next().await.is_some() {}
}
