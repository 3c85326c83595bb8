//! OpenID Connect Back-Channel Logout, end to end: a relying party started
//! in the test registers its logout URL, and every way a session ends
//! (RP-initiated logout, an admin ending the session or the user's
//! sessions) posts it a logout token it can verify against the realm's
//! published keys.

use crate::peers::logout_receiver;
use crate::support::{Server, claims, start};
use base64::Engine;
use serde_json::{Value, json};

/// Sets client `client_id`'s attributes `attrs` (the rest of the
/// representation as it was).
async fn set_attributes(s: &Server, t: &str, client_id: &str, attrs: Value) {
    s.edit_client(t, "demo", client_id, |rep| {
        for (k, v) in attrs.as_object().expect("object") {
            rep["attributes"][k] = v.clone();
        }
    })
    .await;
}

/// A browser login of alice at client `app` (code flow with `openid`):
/// the SSO cookie and the tokens.
async fn browser_login(s: &Server) -> (String, Value) {
    let first = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("auth");
    let done = s.log_in_alice(first).await;
    assert_eq!(done.status(), 302);
    let sso = crate::support::set_cookie(&done, "GATEHOUSE_IDENTITY");
    let loc = done.headers()["location"].to_str().expect("loc").to_owned();
    let code = url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    (sso, tokens)
}

/// Verifies a logout token as an RP must (OIDC Back-Channel Logout §2.6):
/// signature by a published key, issuer, audience, `typ` header, the
/// event, no nonce; returns its claims.
async fn verify_logout_token(s: &Server, token: &str) -> Value {
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["typ"], "logout+jwt");
    let ks = s.realm_keys("demo").await;
    let mut rules = gatehouse_jose::verify::Rules::for_issuer(&format!("{}/realms/demo", s.base));
    rules.audiences = vec!["app".into()];
    let c = ks.verify(token, &rules).expect("logout token verifies");
    assert!(
        c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(),
        "{c}"
    );
    assert!(c.get("nonce").is_none());
    assert!(c["jti"].is_string() && c["iat"].is_i64());
    assert!(c["exp"].as_i64() > c["iat"].as_i64());
    c
}

#[tokio::test]
async fn backchannel_logout_tells_the_client_of_every_ended_session() {
    let s = start().await;
    let t = s.demo_realm().await;
    let rp = logout_receiver().await;
    set_attributes(
        &s,
        &t,
        "app",
        json!({"backchannel.logout.url": format!("{}/backchannel", rp.url)}),
    )
    .await;
    let d = s.discovery("demo").await;
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    let alice = s.user_id(&t, "demo", "alice").await;

    // RP-initiated logout: the token names the session the ID token named.
    let (sso, tokens) = browser_login(&s).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    let sid = claims(id_token)["sid"].as_str().expect("sid").to_owned();
    let r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/logout",
            s.base
        ))
        .query(&[("id_token_hint", id_token)])
        .header("cookie", &sso)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    // Posted before the logout answered.
    let got = rp.received();
    assert_eq!(got.len(), 1, "one client session, one token");
    let c = verify_logout_token(&s, &got[0]).await;
    assert_eq!(c["sid"], sid.as_str());
    assert_eq!(c["sub"], alice.as_str());
    // The session is gone: its refresh token no longer works.
    let rt = tokens["refresh_token"].as_str().expect("rt");
    assert_eq!(
        s.refresh_status("demo", ("app", "app-secret"), rt).await,
        400
    );

    // An admin ending a session (here one of a direct grant).
    let pw: Value = s.alice_tokens(None).await;
    let sid = claims(pw["access_token"].as_str().expect("at"))["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let r = s
        .http
        .delete(format!("{}/admin/realms/demo/sessions/{sid}", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let got = rp.received();
    assert_eq!(got.len(), 2);
    assert_eq!(verify_logout_token(&s, &got[1]).await["sid"], sid.as_str());

    // Without `backchannel.logout.session.required` the token names the
    // user only; a client that answers 500 does not stop the logout.
    set_attributes(
        &s,
        &t,
        "app",
        json!({"backchannel.logout.url": format!("{}/fail", rp.url),
            "backchannel.logout.session.required": "false"}),
    )
    .await;
    browser_login(&s).await;
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/users/{alice}/logout", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("logout user");
    assert_eq!(r.status(), 204);
    let got = rp.received();
    assert_eq!(got.len(), 3, "{got:?}");
    let c = verify_logout_token(&s, &got[2]).await;
    assert!(c.get("sid").is_none(), "{c}");
    assert_eq!(c["sub"], alice.as_str());

    // A client without a URL hears nothing.
    let before = rp.received().len();
    let r = s
        .password_grant("demo", "spa", None, "alice", "alice-pw", None)
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/users/{alice}/logout", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("logout user");
    assert_eq!(r.status(), 204);
    assert_eq!(rp.received().len(), before);
}

#[tokio::test]
async fn frontchannel_logout_frames_each_client_of_the_session() {
    let s = start().await;
    let t = s.demo_realm().await;
    s.edit_client(&t, "demo", "app", |rep| {
        rep["frontchannelLogout"] = json!(true);
        rep["attributes"]["frontchannel.logout.url"] = json!("https://app.example/fc?from=idp");
    })
    .await;

    let (sso, tokens) = browser_login(&s).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    let sid = claims(id_token)["sid"].as_str().expect("sid").to_owned();
    let logout = format!("{}/realms/demo/protocol/openid-connect/logout", s.base);
    let r = s
        .http
        .get(&logout)
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "http://127.0.0.1/cb"),
            ("state", "s1"),
        ])
        .header("cookie", &sso)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200, "a page with the frames, not a redirect");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("frame-src https://app.example"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let html = r.text().await.expect("html");
    let src = crate::support::between(&html, "<iframe src=\"", "\"").replace("&amp;", "&");
    let src = url::Url::parse(&src).expect("frame url");
    assert_eq!(src.origin().ascii_serialization(), "https://app.example");
    assert_eq!(src.path(), "/fc");
    let q: std::collections::HashMap<String, String> = src.query_pairs().into_owned().collect();
    assert_eq!(q["from"], "idp", "the URL's own query is kept");
    assert_eq!(q["iss"], format!("{}/realms/demo", s.base));
    assert_eq!(q["sid"], sid, "the ID token's sid");
    assert!(
        html.contains("href=\"http://127.0.0.1/cb?state=s1\""),
        "{html}"
    );
    // The session is over all the same.
    let rt = tokens["refresh_token"].as_str().expect("rt");
    assert_eq!(
        s.refresh_status("demo", ("app", "app-secret"), rt).await,
        400
    );

    // A client that turned it off: the plain redirect.
    s.edit_client(&t, "demo", "app", |rep| {
        rep["frontchannelLogout"] = json!(false)
    })
    .await;
    let (sso, tokens) = browser_login(&s).await;
    let r = s
        .http
        .get(&logout)
        .query(&[
            ("id_token_hint", tokens["id_token"].as_str().expect("id")),
            ("post_logout_redirect_uri", "http://127.0.0.1/cb"),
        ])
        .header("cookie", &sso)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn backchannel_logout_can_revoke_the_clients_offline_tokens() {
    let s = start().await;
    let t = s.demo_realm().await;
    let rp = logout_receiver().await;
    set_attributes(
        &s,
        &t,
        "app",
        json!({"backchannel.logout.url": format!("{}/backchannel", rp.url),
            "backchannel.logout.revoke.offline.tokens": "true"}),
    )
    .await;
    let offline: Value = s.alice_tokens(Some("offline_access")).await;
    let offline_rt = offline["refresh_token"].as_str().expect("offline token");
    assert_eq!(claims(offline_rt)["typ"], "Offline");
    let app = ("app", "app-secret");
    assert_eq!(s.refresh_status("demo", app, offline_rt).await, 200);

    // A browser session of the same user at the same client logs out.
    let (sso, tokens) = browser_login(&s).await;
    let r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/logout",
            s.base
        ))
        .query(&[("id_token_hint", tokens["id_token"].as_str().expect("id"))])
        .header("cookie", &sso)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let got = rp.received();
    let c = verify_logout_token(&s, got.last().expect("a logout token")).await;
    assert_eq!(c["revoke_offline_access"], true);
    assert_eq!(
        s.refresh_status("demo", app, offline_rt).await,
        400,
        "the offline token died with it"
    );
}
