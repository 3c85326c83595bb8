//! OIDC / OAuth 2.0 endpoints end to end.

use crate::support::{LoginPage, between, claims, set_cookie, start};
use base64::Engine;
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_and_password_grant_with_keycloak_claims() {
    let s = start().await;
    s.demo_realm().await;
    let d = s.discovery("demo").await;
    assert_eq!(d["issuer"], format!("{}/realms/demo", s.base));
    assert_eq!(
        d["token_endpoint"],
        format!("{}/realms/demo/protocol/openid-connect/token", s.base)
    );
    assert_eq!(d["code_challenge_methods_supported"][0], "S256");
    // Keycloak's levels without step-up: 1 for a login, 0 for SSO.
    assert_eq!(d["acr_values_supported"], json!(["0", "1"]));
    assert_eq!(d["claim_types_supported"], json!(["normal"]));
    // The realm's own scopes, its custom `orders:read` among them.
    let scopes: Vec<&str> = d["scopes_supported"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(scopes[0], "openid");
    for want in ["profile", "email", "offline_access", "roles", "orders:read"] {
        assert!(scopes.contains(&want), "{want} in {scopes:?}");
    }
    // The same metadata where RFC 8414 clients look for it.
    for path in [
        "/realms/demo/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/realms/demo",
        "/.well-known/openid-configuration/realms/demo",
    ] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().await.expect("json"), d, "{path}");
    }
    let r = s
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/realms/nope",
            s.base
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);

    let r = s
        .password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            Some("openid"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 300);
    let c = s
        .verified("demo", t["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(c["azp"], "app");
    assert_eq!(c["typ"], "Bearer");
    assert_eq!(c["preferred_username"], "alice");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["groups"], serde_json::json!(["sales"]));
    assert!(
        c["realm_access"]["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r == "offline_access")
    );
    assert!(c["sid"].is_string() && c["jti"].is_string());
    let id = claims(t["id_token"].as_str().expect("id token"));
    assert_eq!(id["aud"], "app");
    assert_eq!(id["typ"], "ID");
    assert!(id["at_hash"].is_string());

    // userinfo with the access token
    let at = t["access_token"].as_str().expect("at");
    let ui: Value = s.userinfo("demo", at).await.json().await.expect("json");
    assert_eq!(ui["sub"], c["sub"]);
    assert_eq!(ui["preferred_username"], "alice");
    let bad = s.userinfo("demo", "not-a-token").await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let s = start().await;
    s.demo_realm().await;
    let err = |r: reqwest::Response| async move {
        let st = r.status().as_u16();
        let v: Value = r.json().await.expect("json error body");
        (st, v["error"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(
        err(s
            .password_grant("demo", "app", Some("wrong"), "alice", "alice-pw", None)
            .await)
        .await,
        (401, "invalid_client".into())
    );
    assert_eq!(
        err(s
            .password_grant("demo", "app", Some("app-secret"), "alice", "nope", None)
            .await)
        .await,
        (401, "invalid_grant".into())
    );
    assert_eq!(
        err(s
            .password_grant("demo", "app", Some("app-secret"), "nobody", "nope", None)
            .await)
        .await,
        (401, "invalid_grant".into())
    );
    assert_eq!(
        err(s
            .password_grant("demo", "nope", None, "alice", "alice-pw", None)
            .await)
        .await,
        (401, "invalid_client".into())
    );
    assert_eq!(
        err(s
            .password_grant(
                "demo",
                "app",
                Some("app-secret"),
                "alice",
                "alice-pw",
                Some("bogus")
            )
            .await)
        .await,
        (400, "invalid_scope".into())
    );
    let url = s.token_url("demo");
    let r = s
        .http
        .post(&url)
        .form(&[("grant_type", "magic"), ("client_id", "spa")])
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (400, "unsupported_grant_type".into()));
    let r = s
        .http
        .post(&url)
        .form(&[("client_id", "spa")])
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (400, "invalid_request".into()));
    let r = s
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&grant_type=password&client_id=spa")
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (400, "invalid_request".into()));
    let r = s
        .http
        .post(&url)
        .json(&serde_json::json!({"grant_type": "password"}))
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (400, "invalid_request".into()));
    // Basic auth with a wrong secret says how to authenticate.
    let r = s
        .http
        .post(&url)
        .basic_auth("app", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .starts_with("Basic")
    );
    // So does Basic whose credentials do not even decode (RFC 6749 §5.2).
    let r = s
        .http
        .post(&url)
        .header("authorization", "Basic !!not-base64!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"demo\"");
    assert_eq!(err(r).await, (401, "invalid_client".into()));
    // Unknown realm
    let r = s.password_grant("nope", "app", None, "a", "b", None).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn client_credentials_uses_the_service_account() {
    let s = start().await;
    s.demo_realm().await;
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.expect("json");
    assert!(t.get("refresh_token").is_none());
    let c = s
        .verified("demo", t["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(c["preferred_username"], "service-account-app");
    assert_eq!(c["client_id"], "app");
    // The public client may not use it.
    let r = s
        .http
        .post(s.token_url("demo"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "spa")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn refresh_rotation_and_reuse_revokes_the_session() {
    let s = start().await;
    s.demo_realm().await;
    let t: Value = s
        .password_tokens("demo", "spa", None, "alice", "alice-pw", None)
        .await;
    let r1 = t["refresh_token"].as_str().expect("rt").to_owned();
    let refresh = |rt: String| {
        let s = &s;
        async move { s.public_refresh("demo", "spa", &rt).await }
    };
    let resp = refresh(r1.clone()).await;
    assert_eq!(resp.status(), 200);
    let t2: Value = resp.json().await.expect("json");
    let r2 = t2["refresh_token"].as_str().expect("rt2").to_owned();
    assert_ne!(r1, r2);
    // Reusing the spent token fails and ends the session, so r2 dies too.
    let reuse = refresh(r1).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        reuse.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    assert_eq!(refresh(r2).await.status(), 400);
    // A confidential client's refresh token cannot be used by another client.
    let t: Value = s.alice_tokens(None).await;
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(s.public_refresh("demo", "spa", rt).await.status(), 400);
}

#[tokio::test]
async fn introspection_before_and_after_revocation() {
    let s = start().await;
    s.demo_realm().await;
    let t: Value = s.alice_tokens(None).await;
    let at = t["access_token"].as_str().expect("at");
    let introspect = |tok: String| {
        let s = &s;
        async move { s.introspect_demo(&tok).await }
    };
    let i = introspect(at.to_owned()).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["username"], "alice");
    assert_eq!(
        introspect("garbage".into()).await,
        serde_json::json!({"active": false})
    );
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/revoke",
            s.base
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[("token", at), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(at.to_owned()).await["active"], false);
    // Revoking the refresh token ends the session: a new access token of the
    // same session is no longer active either.
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(introspect(rt.to_owned()).await["active"], true);
    let t2: Value = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let at2 = t2["access_token"].as_str().expect("at2").to_owned();
    assert_eq!(introspect(at2.clone()).await["active"], true);
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/revoke",
            s.base
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[("token", rt)])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(at2).await["active"], false);
    // Public clients cannot introspect.
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/token/introspect",
            s.base
        ))
        .form(&[("token", "x"), ("client_id", "spa")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

fn pkce() -> (String, String) {
    let verifier = gatehouse_core::id::token();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (
        verifier,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref()),
    )
}

pub fn query_param(location: &str, key: &str) -> Option<String> {
    let u = url::Url::parse(location).expect("url");
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_login_page_and_sso() {
    let s = start().await;
    s.demo_realm().await;
    let (verifier, challenge) = pkce();
    let auth = format!(
        "{}/realms/demo/protocol/openid-connect/auth?response_type=code&client_id=spa&redirect_uri=http%3A%2F%2F127.0.0.1%2Fspa%2Fcb&scope=openid&state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256",
        s.base
    );
    let page = s.http.get(&auth).send().await.expect("send");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csrf_cookie = set_cookie(&page, "GATEHOUSE_CSRF");
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    let action = between(&html, "action=\"", "\"").replace("&amp;", "&");
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"").to_owned();
    let post = |pw: &'static str, with_cookie: bool| {
        let (s, action, csrf, cookie) = (&s, action.clone(), csrf.clone(), csrf_cookie.clone());
        async move {
            let mut r = s.http.post(format!("{}{}", s.base, action)).form(&[
                ("username", "alice"),
                ("password", pw),
                ("csrf", &csrf),
            ]);
            if with_cookie {
                r = r.header("cookie", cookie);
            }
            r.send().await.expect("send")
        }
    };
    // Without the CSRF cookie the form is refused.
    assert_eq!(post("alice-pw", false).await.status(), 403);
    // Wrong password: the form again, with an error.
    let wrong = post("nope", true).await;
    assert_eq!(wrong.status(), 200);
    assert!(
        wrong
            .text()
            .await
            .expect("t")
            .contains("Invalid username or password.")
    );
    let ok = post("alice-pw", true).await;
    assert_eq!(ok.status(), 302);
    let loc = ok.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with("http://127.0.0.1/spa/cb?"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query_param(&loc, "iss"),
        Some(format!("{}/realms/demo", s.base))
    );
    let sso_cookie = set_cookie(&ok, "GATEHOUSE_IDENTITY");
    let code = query_param(&loc, "code").expect("code");
    let exchange = |code: String, verifier: String| {
        let s = &s;
        async move {
            s.http
                .post(s.token_url("demo"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", "spa"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1/spa/cb"),
                    ("code_verifier", &verifier),
                ])
                .send()
                .await
                .expect("send")
        }
    };
    // Wrong verifier first: the code is spent by the failed attempt too.
    let (other_verifier, _) = pkce();
    assert_eq!(exchange(code.clone(), other_verifier).await.status(), 400);
    assert_eq!(
        exchange(code, verifier.clone()).await.status(),
        400,
        "a code is single-use"
    );

    // SSO: a second authorization skips the login page.
    let (verifier, challenge) = pkce();
    let auth2 = auth.replace(between(&auth, "code_challenge=", "&"), &challenge);
    let r = s
        .http
        .get(&auth2)
        .header("cookie", &sso_cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302, "SSO session skips the login page");
    let code = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    let t = exchange(code, verifier).await;
    assert_eq!(t.status(), 200);
    let t: Value = t.json().await.expect("json");
    let id = claims(t["id_token"].as_str().expect("id"));
    assert_eq!(id["nonce"], "n0nce");
    // A login the SSO session stood in for is level 0 (Keycloak's acr),
    // in every token of the client session, refreshed ones too.
    assert_eq!(id["acr"], "0");
    assert_eq!(claims(t["access_token"].as_str().expect("at"))["acr"], "0");
    let rt = t["refresh_token"].as_str().expect("rt");
    let refreshed: Value = s
        .public_refresh("demo", "spa", rt)
        .await
        .json()
        .await
        .expect("json");
    let at = refreshed["access_token"].as_str().expect("refreshed");
    assert_eq!(claims(at)["acr"], "0");
    // prompt=login forces the page; prompt=none without a session redirects an error.
    let r = s
        .http
        .get(format!("{auth2}&prompt=login"))
        .header("cookie", &sso_cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(format!("{auth2}&prompt=none"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        query_param(r.headers()["location"].to_str().expect("loc"), "error").as_deref(),
        Some("login_required")
    );
    // An ID token hint: the session answers for its own user only, and a
    // hint that is not our ID token is refused.
    let admin = s.admin_token().await;
    let (st, _) = s
        .admin_post(
            &admin,
            "/demo/users",
            &serde_json::json!({"username": "bob", "enabled": true,
            "credentials": [{"type": "password", "value": "bob-pw"}]}),
        )
        .await;
    assert_eq!(st, 201);
    let bob: Value = s
        .password_tokens(
            "demo",
            "app",
            Some("app-secret"),
            "bob",
            "bob-pw",
            Some("openid"),
        )
        .await;
    for (hint, want) in [
        (t["id_token"].as_str().expect("id"), None),
        (
            bob["id_token"].as_str().expect("id"),
            Some("login_required"),
        ),
        ("not-a-token", Some("invalid_request")),
    ] {
        let r = s
            .http
            .get(format!("{auth2}&prompt=none"))
            .query(&[("id_token_hint", hint)])
            .header("cookie", &sso_cookie)
            .send()
            .await
            .expect("send");
        let loc = r.headers()["location"].to_str().expect("loc");
        assert_eq!(query_param(loc, "error").as_deref(), want, "{loc}");
    }

    // RP-initiated logout ends the SSO session and redirects only to a registered URI.
    let logout = format!("{}/realms/demo/protocol/openid-connect/logout", s.base);
    let r = s
        .http
        .get(&logout)
        .query(&[
            ("id_token_hint", t["id_token"].as_str().expect("id")),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .get(&logout)
        .query(&[
            ("id_token_hint", t["id_token"].as_str().expect("id")),
            (
                "post_logout_redirect_uri",
                "http://127.0.0.1/spa/%2e%2e/admin",
            ),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .get(&logout)
        .header("cookie", &sso_cookie)
        .query(&[
            ("id_token_hint", t["id_token"].as_str().expect("id")),
            ("post_logout_redirect_uri", "http://127.0.0.1/spa/bye"),
            ("state", "x"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1/spa/bye?state=x");
    let r = s
        .http
        .get(format!("{auth2}&prompt=none"))
        .header("cookie", &sso_cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(
        query_param(r.headers()["location"].to_str().expect("loc"), "error").as_deref(),
        Some("login_required")
    );
    let rt = t["refresh_token"].as_str().expect("rt");
    let r = s.public_refresh("demo", "spa", rt).await;
    assert_eq!(r.status(), 400, "logout ended the client session too");
}

#[tokio::test]
async fn authorization_endpoint_refuses_bad_requests_safely() {
    let s = start().await;
    s.demo_realm().await;
    let base = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    // Unregistered redirect URI: an error page, never a redirect.
    let r = s
        .http
        .get(&base)
        .query(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "https://evil.example/cb"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // A wildcard registration ("http://127.0.0.1/spa/*") does not stretch
    // to a path that climbs out of it, raw or percent-encoded.
    for escape in [
        "http://127.0.0.1/spa/../admin",
        "http://127.0.0.1/spa/%2e%2e/admin",
        "http://127.0.0.1/spa/%252e%252e/admin",
        "http://127.0.0.1/spa/..%5cadmin",
    ] {
        let r = s
            .http
            .get(&base)
            .query(&[
                ("response_type", "code"),
                ("client_id", "spa"),
                ("redirect_uri", escape),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{escape}");
        assert!(r.headers().get("location").is_none(), "{escape}");
    }
    let r = s
        .http
        .get(&base)
        .query(&[
            ("response_type", "code"),
            ("client_id", "ghost"),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    // Public client without PKCE: redirected error.
    let r = s
        .http
        .get(&base)
        .query(&[
            ("response_type", "code"),
            ("client_id", "spa"),
            ("redirect_uri", "http://127.0.0.1/spa/x"),
            ("state", "s"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc");
    assert_eq!(
        query_param(loc, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(loc, "state").as_deref(), Some("s"));
    // plain PKCE is refused
    let r = s
        .http
        .get(&base)
        .query(&[
            ("response_type", "code"),
            ("client_id", "spa"),
            ("redirect_uri", "http://127.0.0.1/spa/x"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(
        query_param(r.headers()["location"].to_str().expect("loc"), "error").as_deref(),
        Some("invalid_request")
    );
    // The implicit flow is off for this client (Keycloak's default): the
    // error comes in the fragment, where that flow's answers go.
    let r = s
        .http
        .get(&base)
        .query(&[
            ("response_type", "token"),
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("send");
    let loc = url::Url::parse(r.headers()["location"].to_str().expect("loc")).expect("url");
    let frag: std::collections::HashMap<_, _> =
        url::form_urlencoded::parse(loc.fragment().expect("fragment").as_bytes()).collect();
    assert_eq!(frag["error"], "unauthorized_client");
    assert_eq!(loc.query(), None);
}

#[tokio::test]
async fn disabled_and_locked_users_cannot_log_in() {
    let s = start().await;
    let t = s.demo_realm().await;
    // Brute-force protection: lock after 2 failures.
    let r = s.http.put(format!("{}/admin/realms/demo", s.base)).bearer_auth(&t)
        .json(&serde_json::json!({"bruteForceProtected": true, "failureFactor": 2, "waitIncrementSeconds": 60})).send().await.expect("send");
    assert_eq!(r.status(), 204);
    for _ in 0..2 {
        assert_eq!(
            s.password_grant("demo", "app", Some("app-secret"), "alice", "bad", None)
                .await
                .status(),
            401
        );
    }
    let locked = s
        .password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
        .await;
    // Keycloak: a locked account looks like wrong credentials (401).
    assert_eq!(locked.status(), 401, "locked even with the right password");
    // Disabled user.
    let id = s.user_id(&t, "demo", "alice").await;
    s.reset_password(&t, "demo", &id, "new-pw", false).await;
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "new-pw", None)
            .await
            .status(),
        200,
        "reset clears the lockout"
    );
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/users/{id}", s.base))
        .bearer_auth(&t)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let r = s
        .password_grant("demo", "app", Some("app-secret"), "alice", "new-pw", None)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error_description"],
        "Account disabled"
    );
    // Events recorded the story.
    let (_, logins) = s.admin_get(&t, "/demo/events?type=LOGIN").await;
    assert_eq!(
        logins[0]["ipAddress"], "127.0.0.1",
        "events carry the client address"
    );
    let (_, ev) = s.admin_get(&t, "/demo/events?type=LOGIN_ERROR").await;
    let errors: Vec<&str> = ev
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["error"].as_str())
        .collect();
    assert!(
        errors.contains(&"user_temporarily_disabled")
            && errors.contains(&"invalid_user_credentials")
            && errors.contains(&"user_disabled"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn concurrent_first_requests_create_one_realm_key() {
    let s = start().await;
    s.demo_realm().await;
    // The JWKS and a token requested at once on a realm that has no key yet.
    let certs = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/certs",
            s.base
        ))
        .send();
    let token = s.password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None);
    let (certs, token) = tokio::join!(certs, token);
    let jwks: Value = certs.expect("certs").json().await.expect("json");
    let t: Value = token.json().await.expect("json");
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        1,
        "exactly one first key"
    );
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                t["access_token"]
                    .as_str()
                    .expect("at")
                    .split('.')
                    .next()
                    .expect("h"),
            )
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(h["kid"], jwks["keys"][0]["kid"]);
}

#[tokio::test]
async fn device_authorization_grant_rfc8628() {
    let s = start().await;
    let t = s.demo_realm().await;
    let device_url = format!("{}/realms/demo/protocol/openid-connect/auth/device", s.base);
    // Not enabled for the client: refused.
    let r = s
        .http
        .post(&device_url)
        .form(&[("client_id", "spa")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "unauthorized_client"
    );
    let id = s.client_uuid(&t, "demo", "spa").await;
    let r = s.http.put(format!("{}/admin/realms/demo/clients/{id}", s.base)).bearer_auth(&t)
        .json(&serde_json::json!({"attributes": {"oauth2.device.authorization.grant.enabled": "true"}})).send().await.expect("send");
    assert_eq!(r.status(), 204);

    let start_device = || {
        let (s, url) = (&s, device_url.clone());
        async move {
            s.http
                .post(url)
                .form(&[("client_id", "spa"), ("scope", "openid")])
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let d = start_device().await;
    let device_code = d["device_code"].as_str().expect("device_code").to_owned();
    let user_code = d["user_code"].as_str().expect("user_code").to_owned();
    assert_eq!(d["interval"], 5);
    assert!(
        d["verification_uri_complete"]
            .as_str()
            .expect("uri")
            .ends_with(&user_code)
    );
    let poll = |code: String| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.token_url("demo"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", "spa"),
                    ("device_code", &code),
                ])
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    assert_eq!(
        poll(device_code.clone()).await.1["error"],
        "authorization_pending"
    );
    assert_eq!(poll(device_code.clone()).await.1["error"], "slow_down");

    // The user opens the verification page, enters the code and signs in.
    let approve = |code: String, action: &'static str| {
        let s = &s;
        async move {
            let page = s
                .http
                .get(format!("{}/realms/demo/device?user_code={code}", s.base))
                .send()
                .await
                .expect("send");
            let cookie = page
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|c| c.starts_with("GATEHOUSE_DEVICE_CSRF="))
                .expect("cookie")
                .split(';')
                .next()
                .expect("kv")
                .to_owned();
            let html = page.text().await.expect("html");
            assert!(html.contains(&code), "the code is prefilled");
            let csrf = between(&html, "name=\"csrf\" value=\"", "\"").to_owned();
            s.http
                .post(format!("{}/realms/demo/device", s.base))
                .header("cookie", cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("user_code", &code.to_lowercase()),
                    ("username", "alice"),
                    ("password", "alice-pw"),
                    ("action", action),
                ])
                .send()
                .await
                .expect("send")
                .text()
                .await
                .expect("text")
        }
    };
    assert!(
        approve(user_code.clone(), "approve")
            .await
            .contains("Device connected")
    );
    let (status, tokens) = poll(device_code.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().expect("at"))["preferred_username"],
        "alice"
    );
    assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
    assert_eq!(
        poll(device_code).await.1["error"],
        "invalid_grant",
        "a device code is single-use"
    );
    let again = approve(user_code, "approve").await;
    assert!(
        again.contains("role=\"alert\"") && !again.contains("Device connected"),
        "a spent user code is refused"
    );

    // Denied by the user.
    let d = start_device().await;
    assert!(
        approve(d["user_code"].as_str().expect("uc").to_owned(), "deny")
            .await
            .contains("Access denied")
    );
    assert_eq!(
        poll(d["device_code"].as_str().expect("dc").to_owned())
            .await
            .1["error"],
        "access_denied"
    );

    // Timing as Keycloak resolves it: the client's attribute, else the
    // realm's setting (shown with Keycloak's defaults), else 600 s / 5 s.
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(realm["oauth2DeviceCodeLifespan"], 600);
    assert_eq!(realm["oauth2DevicePollingInterval"], 5);
    let realm_wide =
        serde_json::json!({"oauth2DeviceCodeLifespan": 900, "oauth2DevicePollingInterval": 1});
    assert_eq!(s.admin_put(&t, "/demo", Some(&realm_wide)).await, 204);
    let d = start_device().await;
    assert_eq!(
        (d["expires_in"].clone(), d["interval"].clone()),
        (json!(900), json!(1))
    );
    let code = d["device_code"].as_str().expect("dc").to_owned();
    assert_eq!(poll(code.clone()).await.1["error"], "authorization_pending");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        poll(code).await.1["error"],
        "authorization_pending",
        "a second later is not too fast at 1 s"
    );
    let (_, mut rep) = s.admin_get(&t, &format!("/demo/clients/{id}")).await;
    rep["attributes"]["oauth2.device.code.lifespan"] = json!("120");
    assert_eq!(
        s.admin_put(&t, &format!("/demo/clients/{id}"), Some(&rep))
            .await,
        204
    );
    assert_eq!(start_device().await["expires_in"], 120);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_ip() {
    let s = crate::support::start_with(|c| c.server.login_failures_per_minute_per_ip = 3).await;
    s.demo_realm().await;
    for _ in 0..3 {
        let r = s
            .password_grant("demo", "app", Some("app-secret"), "alice", "wrong", None)
            .await;
        assert_eq!(r.status(), 401);
    }
    // The budget of this address is spent: even the right password waits.
    let r = s
        .password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
        .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("h")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "temporarily_unavailable"
    );
    // Other grants from the address are not logins and keep working.
    let cc = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(cc.status(), 200);
}

/// Password hashing runs at most one job per core at a time: a login flood
/// queues instead of allocating argon2's memory cost per request.
#[tokio::test]
async fn password_hashing_is_bounded_by_the_number_of_cores() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = crate::support::start().await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let now = std::sync::Arc::new(AtomicUsize::new(0));
    let peak = std::sync::Arc::new(AtomicUsize::new(0));
    let mut jobs = vec![];
    for _ in 0..cores * 4 {
        let (idp, now, peak) = (s.running.idp.clone(), now.clone(), peak.clone());
        jobs.push(tokio::spawn(async move {
            idp.password_work(move || {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                now.fetch_sub(1, Ordering::SeqCst);
            })
            .await
        }));
    }
    for j in jobs {
        j.await.expect("join").expect("work");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 1 && peak <= cores, "peak {peak} with {cores} cores");
}

/// Behind a trusted reverse proxy, the client is the forwarded-for entry
/// the proxy vouches for (events, login throttling, gateway audit and
/// limits), from `X-Forwarded-For` or, with `proxy_headers = "forwarded"`,
/// RFC 7239 `Forwarded` (the other header is then ignored); without a
/// trusted proxy, neither is read.
#[tokio::test]
async fn forwarded_client_ips_count_only_behind_trusted_proxies() {
    for (trusted, mode) in [
        (false, "xforwarded"),
        (true, "xforwarded"),
        (true, "forwarded"),
    ] {
        let s = crate::support::start_with(|c| {
            if trusted {
                c.server.trusted_proxies = vec!["127.0.0.1".into()];
            }
            c.server.proxy_headers = mode.into();
        })
        .await;
        let t = s.demo_realm().await;
        let r = s
            .http
            .post(s.token_url("demo"))
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .header(
                "forwarded",
                "for=6.6.6.6, for=\"198.51.100.9:4711\";proto=https",
            )
            .form(&[
                ("grant_type", "password"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
                ("username", "alice"),
                ("password", "wrong"),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        s.running.idp.flush_events().await;
        let (_, ev) = s.admin_get(&t, "/demo/events?type=LOGIN_ERROR").await;
        let want = match (trusted, mode) {
            (false, _) => "127.0.0.1",
            (true, "xforwarded") => "198.51.100.7",
            _ => "198.51.100.9",
        };
        assert_eq!(ev[0]["ipAddress"], want, "trusted={trusted} {mode}");

        s.configure(&format!(
            "[gateway]\naudit_log = {:?}\n\n[[routes]]\nname = \"echo\"\npath = \"/echo\"\nupstream = \"builtin:echo\"\npublic = true\n",
            s.audit_path()
        ))
        .expect("config");
        let r = s
            .http
            .get(format!("{}/echo", s.gw))
            .header("x-forwarded-for", "198.51.100.8")
            .header("forwarded", "for=\"[2001:db8::8]\"")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let lines = s.audit().await;
        let last = lines.last().expect("audit line");
        let want = match (trusted, mode) {
            (false, _) => "127.0.0.1",
            (true, "xforwarded") => "198.51.100.8",
            _ => "2001:db8::8",
        };
        assert_eq!(last["client_ip"], want, "trusted={trusted} {mode}");
    }
}

/// OAuth parameters are bounded as Keycloak bounds them (CVE-2026-4634: a
/// megabyte `scope` of distinct values made scope processing, and the
/// token echoing them, grow without end): 4000 characters, 20000 for
/// tokens; a `login_hint` past 255 is dropped, being only a hint.
#[tokio::test]
async fn oversized_oauth_parameters_are_refused() {
    let s = start().await;
    s.demo_realm().await;
    let many: Vec<String> = (0..600).map(|i| format!("organization:o{i}")).collect();
    let r = s
        .password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            Some(&many.join(" ")),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(v["error_description"], "Parameter scope is too long");
    // A token may be longer; past 20000 it is refused unread, within that
    // it is read (and this one refused as invalid).
    for (len, error) in [(20_001, "invalid_request"), (5000, "invalid_grant")] {
        let forged = format!("{}.x.y", "a".repeat(len));
        let r = s.refresh("demo", ("app", "app-secret"), &forged).await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], error, "{len}");
    }

    let page = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("scope", "openid"),
            ("login_hint", &"h".repeat(256)),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200, "the login page, without the hint");
    assert!(!page.text().await.expect("html").contains("hhhh"));
}

#[tokio::test]
async fn authorization_endpoint_takes_post_response_modes_and_login_hint() {
    let s = start().await;
    s.demo_realm().await;
    let base = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    let params = |mode: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("scope", "openid"),
            ("state", "st<a>te"),
            ("response_mode", mode),
            ("login_hint", "alice\"><script>"),
        ]
    };
    // OIDC Core §3.1.2.1: the parameters may come as a POSTed form.
    let first = s
        .http
        .post(&base)
        .form(&params("form_post"))
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), 200);
    let login_page = first.text().await.expect("html");
    assert!(
        login_page.contains("value=\"alice&quot;&gt;&lt;script&gt;\""),
        "login_hint fills the username field, escaped"
    );
    let first = s
        .http
        .post(&base)
        .form(&params("form_post"))
        .send()
        .await
        .expect("send");
    let done = s.log_in_alice(first).await;
    // form_post: a 200 page that POSTs code, state and iss to the redirect URI.
    assert_eq!(done.status(), 200);
    let csp = done.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let html = done.text().await.expect("html");
    assert!(
        html.contains("<form method=\"post\" action=\"http://127.0.0.1/cb\">"),
        "{html}"
    );
    assert!(html.contains("name=\"state\" value=\"st&lt;a&gt;te\""));
    assert!(html.contains(&format!("name=\"iss\" value=\"{}/realms/demo\"", s.base)));
    let code = between(&html, "name=\"code\" value=\"", "\"").to_owned();
    let t = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(t.status(), 200, "the form_post code redeems");

    // fragment: the same parameters after '#', none in the query.
    let first = s
        .http
        .get(&base)
        .query(&params("fragment"))
        .send()
        .await
        .expect("send");
    let done = s.log_in_alice(first).await;
    assert_eq!(done.status(), 302);
    let loc = done.headers()["location"].to_str().expect("loc");
    let u = url::Url::parse(loc).expect("url");
    assert_eq!(u.query(), None);
    let frag: std::collections::HashMap<_, _> =
        url::form_urlencoded::parse(u.fragment().expect("fragment").as_bytes()).collect();
    assert_eq!(frag["state"], "st<a>te");
    assert!(frag.contains_key("code"));

    // An unknown response mode and prompt=none with another value are
    // refused by redirect, in the default (query) mode.
    for (k, v) in [("response_mode", "query.jwt"), ("prompt", "none login")] {
        let mut p = params("query");
        p.retain(|(n, _)| *n != k);
        p.push((k, v));
        let r = s.http.get(&base).query(&p).send().await.expect("send");
        assert_eq!(r.status(), 302, "{k}={v}");
        let loc = r.headers()["location"].to_str().expect("loc");
        assert_eq!(
            query_param(loc, "error").as_deref(),
            Some("invalid_request"),
            "{k}={v}"
        );
    }
    // A request object by reference from a URL the client did not
    // register is never fetched (OIDC Core §6.2); see `request_object.rs`.
    for (k, v, want) in [("request_uri", "https://rp.example/r", "invalid_request_uri")] {
        let mut p = params("query");
        p.push((k, v));
        let r = s.http.get(&base).query(&p).send().await.expect("send");
        assert_eq!(r.status(), 302, "{k}");
        let loc = r.headers()["location"].to_str().expect("loc");
        assert_eq!(query_param(loc, "error").as_deref(), Some(want), "{k}");
    }
    // A POST that is not a form is an error page, never a redirect.
    let r = s
        .http
        .post(&base)
        .json(&serde_json::json!({"client_id": "app"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn a_reused_code_revokes_the_tokens_it_gave() {
    let s = start().await;
    s.demo_realm().await;
    let first = s.app_login_page().await;
    let done = s.log_in_alice(first).await;
    let code =
        query_param(done.headers()["location"].to_str().expect("loc"), "code").expect("code");
    let exchange = || {
        s.http
            .post(s.token_url("demo"))
            .basic_auth("app", Some("app-secret"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1/cb"),
            ])
            .send()
    };
    let t: Value = exchange().await.expect("send").json().await.expect("json");
    let at = t["access_token"].as_str().expect("at").to_owned();
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let introspect = |token: String| {
        let s = &s;
        async move { s.introspect_demo(&token).await["active"].as_bool() }
    };
    assert_eq!(introspect(at.clone()).await, Some(true));
    // The replay is refused ...
    let again = exchange().await.expect("send");
    assert_eq!(again.status(), 400);
    let e: Value = again.json().await.expect("json");
    assert_eq!(e["error"], "invalid_grant");
    // ... and what the first exchange gave is revoked (RFC 6749 §4.1.2).
    assert_eq!(introspect(at).await, Some(false));
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn attack_detection_shows_and_unlocks_a_locked_user() {
    let s = start().await;
    let t = s.demo_realm().await;
    let r = s
        .http
        .put(format!("{}/admin/realms/demo", s.base))
        .bearer_auth(&t)
        .json(&serde_json::json!({"bruteForceProtected": true, "failureFactor": 2, "waitIncrementSeconds": 60}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let (_, users) = s
        .admin_get(&t, "/demo/users?username=alice&exact=true")
        .await;
    let id = users[0]["id"].as_str().expect("id").to_owned();
    let path = format!("/demo/attack-detection/brute-force/users/{id}");
    let (code, st) = s.admin_get(&t, &path).await;
    assert_eq!(code, 200);
    assert_eq!(
        (st["numFailures"].as_i64(), st["disabled"].as_bool()),
        (Some(0), Some(false))
    );
    for _ in 0..2 {
        s.password_grant("demo", "app", Some("app-secret"), "alice", "bad", None)
            .await;
    }
    let login = || s.password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None);
    assert_eq!(login().await.status(), 401, "locked");
    let (_, st) = s.admin_get(&t, &path).await;
    assert_eq!(st["disabled"], true, "{st}");
    assert!(st["numFailures"].as_i64() >= Some(2), "{st}");
    assert_eq!(st["lastIPFailure"], "127.0.0.1");
    assert!(
        st["lastFailure"].as_i64() > Some(1_700_000_000_000),
        "milliseconds"
    );
    assert!(st["failedLoginNotBefore"].as_i64() > Some(0));
    // Unknown users read as clean, like Keycloak.
    let (code, ghost) = s
        .admin_get(&t, "/demo/attack-detection/brute-force/users/nobody")
        .await;
    assert_eq!((code, ghost["numFailures"].as_i64()), (200, Some(0)));
    // Without an admin token: 401, nothing unlocked.
    let url = format!("{}/admin/realms{path}", s.base);
    assert_eq!(
        s.http.delete(&url).send().await.expect("send").status(),
        401
    );
    assert_eq!(login().await.status(), 401, "still locked");
    // The admin unlocks: the right password works at once.
    let r = s
        .http
        .delete(&url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(login().await.status(), 200);
    let (_, st) = s.admin_get(&t, &path).await;
    assert_eq!(st["numFailures"], 0);
    // Unlock everyone; both writes are admin events.
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/attack-detection/brute-force/users",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let (_, ev) = s.admin_get(&t, "/demo/admin-events").await;
    let n = ev
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["resourceType"] == "USER_LOGIN_FAILURE" && e["operationType"] == "DELETE")
        .count();
    assert_eq!(n, 2);
}

/// A temporary password (admin reset with `temporary: true`) logs in only
/// after the user picks a new one on the update-password page, as with
/// Keycloak's UPDATE_PASSWORD required action; the password grant refuses
/// it meanwhile; a required action with no page here stops the login.
/// Keycloak's application-initiated actions: `kc_action` asks the user
/// for a required action in this login (after a fresh authentication,
/// SSO or not), with a Cancel button; the client hears how it went in
/// `kc_action_status`.
#[tokio::test]
async fn application_initiated_actions_report_their_status() {
    let s = start().await;
    let t = s.demo_realm().await;
    let auth = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    let params = |action: &'static str| {
        [
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("scope", "openid"),
            ("state", "st"),
            ("kc_action", action),
        ]
    };
    // Done: the new password is set, the client gets its code and success.
    let first = s
        .http
        .get(&auth)
        .query(&params("UPDATE_PASSWORD"))
        .send()
        .await
        .expect("get");
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("name=\"password-new\"") && html.contains("name=\"cancel-aia\""),
        "{html}"
    );
    let r = page
        .post(&[("password-new", "pw-2"), ("password-confirm", "pw-2")])
        .await;
    assert_eq!(r.status(), 302);
    let sso = set_cookie(&r, "GATEHOUSE_IDENTITY");
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    assert_eq!(
        query_param(&loc, "kc_action_status").as_deref(),
        Some("success")
    );
    assert_eq!(
        query_param(&loc, "kc_action").as_deref(),
        Some("UPDATE_PASSWORD")
    );
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "pw-2", None)
            .await
            .status(),
        200
    );
    // A recently authenticated SSO session stands in for the password
    // (Keycloak's max_auth_age): the action's page at once. Cancel leaves
    // the password as it is, says so, and the code is that session's.
    let sid = query_param(&loc, "session_state").expect("session");
    let again = s
        .http
        .get(&auth)
        .query(&params("UPDATE_PASSWORD"))
        .header("cookie", &sso)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 200);
    let page = LoginPage::read(&s, again).await;
    let r = page.post(&[("cancel-aia", "true")]).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(
        query_param(&loc, "kc_action_status").as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        query_param(&loc, "session_state"),
        Some(sid),
        "no new login"
    );
    assert!(query_param(&loc, "code").is_some());
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "pw-2", None)
            .await
            .status(),
        200
    );
    // The realm's max_auth_age for the action (Keycloak's required-action
    // config): at 0, even this fresh session asks for the password.
    let cfg = "/demo/authentication/required-actions/UPDATE_PASSWORD/config";
    let (_, shown) = s.admin_get(&t, cfg).await;
    assert_eq!(
        shown,
        serde_json::json!({"alias": "UPDATE_PASSWORD", "config": {}})
    );
    let (_, described) = s.admin_get(&t, &format!("{cfg}-description")).await;
    assert_eq!(described["properties"][0]["name"], "max_auth_age");
    let soon = serde_json::json!({"config": {"max_auth_age": "soon"}});
    assert_eq!(s.admin_put(&t, cfg, Some(&soon)).await, 400);
    let zero = serde_json::json!({"config": {"max_auth_age": "0"}});
    assert_eq!(s.admin_put(&t, cfg, Some(&zero)).await, 204);
    assert_eq!(
        s.admin_get(
            &t,
            "/demo/authentication/required-actions/UPDATE_PROFILE/config"
        )
        .await
        .0,
        400,
        "not configurable"
    );
    let again = s
        .http
        .get(&auth)
        .query(&params("UPDATE_PASSWORD"))
        .header("cookie", &sso)
        .send()
        .await
        .expect("get");
    assert!(
        again
            .text()
            .await
            .expect("html")
            .contains("name=\"username\""),
        "the login page"
    );
    assert_eq!(s.admin_delete(&t, cfg).await, 204);
    assert_eq!(
        s.admin_get(&t, cfg).await.1["config"],
        serde_json::json!({})
    );
    // An action Gatehouse has no page for (or the realm disabled): a
    // plain login, reported as an error.
    let first = s
        .http
        .get(&auth)
        .query(&params("VERIFY_EMAIL"))
        .send()
        .await
        .expect("get");
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "pw-2")])
        .await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(
        query_param(&loc, "kc_action_status").as_deref(),
        Some("error")
    );
    // Without kc_action nothing is said.
    let first = s
        .http
        .get(&auth)
        .query(&params("UPDATE_PROFILE")[..5].to_vec())
        .send()
        .await
        .expect("get");
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "pw-2")])
        .await;
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(query_param(&loc, "kc_action_status"), None);
    let _ = t;
}

#[tokio::test]
async fn a_temporary_password_must_be_changed_at_the_first_browser_login() {
    let s = start().await;
    let t = s.demo_realm().await;
    let alice = s.user_id(&t, "demo", "alice").await;
    s.reset_password(&t, "demo", &alice, "temp-pw", true).await;
    let r = s
        .password_grant("demo", "app", Some("app-secret"), "alice", "temp-pw", None)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["error_description"],
        "Account is not fully set up"
    );

    let auth = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    let params = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("state", "st"),
    ];
    let first = s.http.get(&auth).query(&params).send().await.expect("get");
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "temp-pw")])
        .await;
    assert_eq!(r.status(), 200, "no code yet");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("name=\"password-new\"") && html.contains("name=\"password-confirm\""),
        "{html}"
    );
    let r = page
        .post(&[("password-new", "n3w-pw"), ("password-confirm", "other")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Passwords don&#39;t match.")
    );
    let r = page
        .post(&[("password-new", "n3w-pw"), ("password-confirm", "n3w-pw")])
        .await;
    assert_eq!(r.status(), 302);
    let sso = set_cookie(&r, "GATEHOUSE_IDENTITY");
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
    // Spent: the same update cannot be replayed.
    let r = page
        .post(&[("password-new", "x"), ("password-confirm", "x")])
        .await;
    assert!(r.text().await.expect("html").contains("timed out"));
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "n3w-pw", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "temp-pw", None)
            .await
            .status(),
        401
    );
    let (_, ev) = s.admin_get(&t, "/demo/events?type=UPDATE_PASSWORD").await;
    assert_eq!(ev[0]["userId"], alice.as_str());
    let with_sso = || {
        s.http
            .get(&auth)
            .query(&params)
            .header("cookie", &sso)
            .send()
    };
    assert_eq!(
        with_sso().await.expect("sso").status(),
        302,
        "SSO skips the page"
    );

    // A required action without a page here: the login stops, no code.
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/users/{alice}", s.base))
        .bearer_auth(&t)
        .json(&serde_json::json!({"requiredActions": ["webauthn-register"]}))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status(), 204);
    // ...until a required action is set: then the SSO session no longer
    // skips the login.
    assert_eq!(
        with_sso().await.expect("sso").status(),
        200,
        "login page again"
    );
    let first = s.http.get(&auth).query(&params).send().await.expect("get");
    let r = LoginPage::read(&s, first)
        .await
        .post(&[("username", "alice"), ("password", "n3w-pw")])
        .await;
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.expect("html").contains("not fully set up"));
}

/// Keycloak's TERMS_AND_CONDITIONS and UPDATE_PROFILE required actions:
/// after the password, one page each in Keycloak's order, no skipping
/// ahead, each change saved with its event, then the code; declining the
/// terms ends the login without a code.
#[tokio::test]
async fn terms_and_profile_required_actions_come_before_the_code() {
    let s = start().await;
    let t = s.demo_realm().await;
    // Terms are off in a new realm, as in Keycloak: switched on here.
    let ra = format!(
        "{}/admin/realms/demo/authentication/required-actions",
        s.base
    );
    let (_, terms) = s
        .admin_get(
            &t,
            "/demo/authentication/required-actions/TERMS_AND_CONDITIONS",
        )
        .await;
    assert_eq!(terms["enabled"], false);
    let r = s
        .http
        .put(format!("{ra}/TERMS_AND_CONDITIONS"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"enabled": true}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    // The realm's own terms text, set through the localization API.
    let r = s
        .http
        .put(format!(
            "{}/admin/realms/demo/localization/en/termsText",
            s.base
        ))
        .bearer_auth(&t)
        .header("content-type", "text/plain")
        .body("Be kind to the API & its users.")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    for (name, email) in [("bob", None), ("carl", Some("carl@x.io"))] {
        let mut rep = serde_json::json!({"username": name, "enabled": true,
            "requiredActions": ["UPDATE_PROFILE", "TERMS_AND_CONDITIONS"],
            "credentials": [{"type": "password", "value": "pw", "temporary": false}]});
        if let Some(e) = email {
            rep["email"] = serde_json::json!(e);
        }
        assert_eq!(s.admin_post(&t, "/demo/users", &rep).await.0, 201);
    }
    // A custom attribute users edit: the profile page asks for it too.
    let (_, mut profile) = s.admin_get(&t, "/demo/users/profile").await;
    if let Some(a) = profile["attributes"].as_array_mut() {
        a.push(
            serde_json::json!({"name": "department", "displayName": "Department",
            "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]},
            "validations": {"options": {"options": ["sales", "support"]}}}),
        );
        a.push(
            serde_json::json!({"name": "langs", "displayName": "Languages", "multivalued": true,
            "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]},
            "annotations": {"inputType": "multiselect-checkboxes"},
            "validations": {"options": {"options": ["en", "de", "fr"]}}}),
        );
    }
    assert_eq!(
        s.admin_put(&t, "/demo/users/profile", Some(&profile)).await,
        200
    );
    let auth = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    let params = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("state", "st"),
    ];
    let first = s.http.get(&auth).query(&params).send().await.expect("get");
    let login = LoginPage::read(&s, first).await;
    let r = login.post(&[("username", "bob"), ("password", "pw")]).await;
    assert_eq!(r.status(), 200);
    let terms = r.text().await.expect("html");
    assert!(
        terms.contains("Terms and Conditions") && terms.contains("execution=TERMS_AND_CONDITIONS"),
        "{terms}"
    );
    assert!(
        terms.contains("Be kind to the API &amp; its users."),
        "the realm's text, escaped: {terms}"
    );
    // Posting the profile page first does not skip the terms.
    let profile_url = terms.replace("TERMS_AND_CONDITIONS", "UPDATE_PROFILE");
    let r = login
        .post_form(
            &s,
            &profile_url,
            &[("email", "b@x.io"), ("firstName", "B"), ("lastName", "C")],
        )
        .await;
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("execution=TERMS_AND_CONDITIONS")
    );
    let r = login.post_form(&s, &terms, &[("accept", "accept")]).await;
    let profile = r.text().await.expect("html");
    assert!(profile.contains("execution=UPDATE_PROFILE"), "{profile}");
    assert!(
        profile.contains("<label for=\"department\">Department</label>")
            && profile.contains(
                "<input type=\"checkbox\" id=\"langs-1\" name=\"langs\" value=\"de\"><label for=\"langs-1\">de</label>"
            ),
        "{profile}"
    );
    // Each refusal keeps what was typed; the realm's user profile allows
    // no markup in a name and only its options for the department.
    let mut page = profile;
    for (email, last, department, message) in [
        ("not-an-email", "Builder", "sales", "Invalid email address."),
        (
            "bob@x.io",
            "<i>Builder</i>",
            "sales",
            "Value contains invalid character.",
        ),
        ("bob@x.io", "Builder", "hr", "Invalid value."),
        ("carl@x.io", "Builder", "sales", "Email already exists."),
    ] {
        let fields = [
            ("email", email),
            ("firstName", "Bob"),
            ("lastName", last),
            ("department", department),
        ];
        let r = login.post_form(&s, &page, &fields).await;
        let html = r.text().await.expect("html");
        assert!(
            html.contains(message) && html.contains("value=\"Bob\""),
            "{message}: {html}"
        );
        page = html;
    }
    let again = page;
    let r = login
        .post_form(
            &s,
            &again,
            &[
                ("email", "bob@x.io"),
                ("firstName", "Bob"),
                ("lastName", "Builder"),
                ("department", "support"),
                ("langs", "en"),
                ("langs", "fr"),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    let bob = s.user_id(&t, "demo", "bob").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{bob}")).await;
    assert_eq!(
        (&u["email"], &u["firstName"], &u["lastName"]),
        (
            &serde_json::json!("bob@x.io"),
            &serde_json::json!("Bob"),
            &serde_json::json!("Builder")
        )
    );
    assert_eq!(u["requiredActions"], serde_json::json!([]));
    assert!(u["attributes"]["terms_and_conditions"][0].is_string());
    assert_eq!(
        u["attributes"]["department"],
        serde_json::json!(["support"])
    );
    assert_eq!(u["attributes"]["langs"], serde_json::json!(["en", "fr"]));
    let (_, ev) = s.admin_get(&t, "/demo/events?type=UPDATE_PROFILE").await;
    assert_eq!(ev[0]["details"]["updated_email"], "bob@x.io");
    let (_, ev) = s
        .admin_get(&t, "/demo/events?type=CUSTOM_REQUIRED_ACTION")
        .await;
    assert_eq!(
        ev[0]["details"]["custom_required_action"],
        "TERMS_AND_CONDITIONS"
    );

    // Declining the terms: no code, and the action stays.
    let first = s.http.get(&auth).query(&params).send().await.expect("get");
    let login = LoginPage::read(&s, first).await;
    let r = login
        .post(&[("username", "carl"), ("password", "pw")])
        .await;
    let terms = r.text().await.expect("html");
    let r = login.post_form(&s, &terms, &[("cancel", "cancel")]).await;
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.expect("html").contains("accept the terms"));
    let carl = s.user_id(&t, "demo", "carl").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{carl}")).await;
    assert_eq!(u["requiredActions"].as_array().map(Vec::len), Some(2));
    // The spent login cannot continue.
    let r = login.post_form(&s, &terms, &[("accept", "accept")]).await;
    assert!(r.text().await.expect("html").contains("timed out"));

    // The registry decides: terms off again and the profile moved first,
    // then carl (with both actions) sees only the profile page.
    let put = |alias: &'static str, body: serde_json::Value| {
        let s = &s;
        let url = format!("{ra}/{alias}");
        let t = t.clone();
        async move {
            s.http
                .put(url)
                .bearer_auth(&t)
                .json(&body)
                .send()
                .await
                .expect("put")
                .status()
        }
    };
    assert_eq!(
        put(
            "TERMS_AND_CONDITIONS",
            serde_json::json!({"enabled": false})
        )
        .await,
        204
    );
    let post = |path: &'static str| {
        let s = &s;
        let t = t.clone();
        let url = format!("{ra}/{path}");
        async move {
            s.http
                .post(url)
                .bearer_auth(&t)
                .send()
                .await
                .expect("post")
                .status()
        }
    };
    assert_eq!(post("UPDATE_PROFILE/raise-priority").await, 204);
    let (_, list) = s
        .admin_get(&t, "/demo/authentication/required-actions")
        .await;
    let order: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["alias"].as_str())
        .collect();
    let pos = |a: &str| order.iter().position(|x| *x == a).expect("listed");
    assert!(pos("UPDATE_PROFILE") < pos("UPDATE_PASSWORD"), "{order:?}");
    let first = s.http.get(&auth).query(&params).send().await.expect("get");
    let login = LoginPage::read(&s, first).await;
    let r = login
        .post(&[("username", "carl"), ("password", "pw")])
        .await;
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("execution=UPDATE_PROFILE")
    );
    // Disabled entirely: the action is skipped and the password grant works.
    assert_eq!(
        put("UPDATE_PROFILE", serde_json::json!({"enabled": false})).await,
        204
    );
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "carl", "pw", None)
            .await
            .status(),
        200
    );
    // A default action is given to users the admin API creates.
    assert_eq!(
        put(
            "UPDATE_PASSWORD",
            serde_json::json!({"enabled": true, "defaultAction": true})
        )
        .await,
        204
    );
    assert_eq!(
        s.admin_post(&t, "/demo/users", &serde_json::json!({"username": "dora"}))
            .await
            .0,
        201
    );
    let dora = s.user_id(&t, "demo", "dora").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{dora}")).await;
    assert_eq!(u["requiredActions"], serde_json::json!(["UPDATE_PASSWORD"]));
    // Unregistered actions are listed and can come back.
    let r = s
        .http
        .delete(format!("{ra}/delete_account"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (_, un) = s
        .admin_get(&t, "/demo/authentication/unregistered-required-actions")
        .await;
    assert_eq!(
        un,
        serde_json::json!([{"providerId": "delete_account", "name": "Delete Account"}])
    );
    let (code, _) = s
        .admin_post(
            &t,
            "/demo/authentication/register-required-action",
            &serde_json::json!({"providerId": "delete_account", "name": "Delete Account"}),
        )
        .await;
    assert_eq!(code, 204);
    let (code, _) = s
        .admin_get(&t, "/demo/authentication/required-actions/nope")
        .await;
    assert_eq!(code, 404);
}

/// An HS256 JWS over `claims` with `secret` (as a client_secret_jwt client
/// signs its assertion).
fn hs256(secret: &str, claims: &Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

/// `client_secret_jwt` and `private_key_jwt` (RFC 7523): a client
/// configured for one authenticates with a signed assertion, each assertion
/// works once, and the other methods are refused for it.
#[tokio::test]
async fn signed_jwt_client_authentication() {
    let s = start().await;
    let t = s.demo_realm().await;
    let issuer = crate::peers::issuer().await;
    for rep in [
        serde_json::json!({"clientId": "hs", "secret": "hs-secret-that-is-long-enough-000",
            "clientAuthenticatorType": "client-secret-jwt", "serviceAccountsEnabled": true}),
        serde_json::json!({"clientId": "pk", "clientAuthenticatorType": "client-jwt",
            "serviceAccountsEnabled": true,
            "attributes": {"use.jwks.url": "true", "jwks.url": format!("{}/keys", issuer.url)}}),
    ] {
        assert_eq!(s.admin_post(&t, "/demo/clients", &rep).await.0, 201);
    }
    let (code, _) = s
        .admin_post(
            &t,
            "/demo/clients",
            &serde_json::json!({"clientId": "x", "clientAuthenticatorType": "client-bogus"}),
        )
        .await;
    assert_eq!(
        code, 400,
        "an authenticator Keycloak does not have is refused"
    );
    // Keycloak's mutual-TLS authenticator is kept (a realm export with it
    // imports), but such a client cannot authenticate here yet.
    let (code, _) = s
        .admin_post(
            &t,
            "/demo/clients",
            &serde_json::json!({"clientId": "mtls", "secret": "mtls-secret",
                "clientAuthenticatorType": "client-x509", "serviceAccountsEnabled": true}),
        )
        .await;
    assert_eq!(code, 201);
    let token_url = s.token_url("demo");
    let r = s
        .http
        .post(&token_url)
        .basic_auth("mtls", Some("mtls-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let ac = |client: &str, aud: &str, jti: &str| {
        let now = gatehouse_core::time::now();
        serde_json::json!({"iss": client, "sub": client, "aud": aud, "exp": now + 60,
                           "iat": now, "jti": jti})
    };
    let grant = |assertion: String| {
        let s = &s;
        async move { s.assertion_grant("demo", &assertion).await }
    };
    let err = |r: reqwest::Response| async move {
        let code = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        (code, v["error"].as_str().unwrap_or_default().to_owned())
    };

    // client_secret_jwt
    let a = hs256(
        "hs-secret-that-is-long-enough-000",
        &ac("hs", &token_url, "j1"),
    );
    let r = grant(a.clone()).await;
    assert_eq!(r.status(), 200);
    let at: Value = r.json().await.expect("json");
    assert_eq!(
        claims(at["access_token"].as_str().expect("at"))["azp"],
        "hs"
    );
    assert_eq!(
        err(grant(a).await).await,
        (401, "invalid_client".into()),
        "replay"
    );
    let wrong_key = hs256("another-secret", &ac("hs", &token_url, "j2"));
    assert_eq!(err(grant(wrong_key).await).await.0, 401);
    let wrong_aud = hs256(
        "hs-secret-that-is-long-enough-000",
        &ac("hs", "https://elsewhere.example/token", "j3"),
    );
    assert_eq!(err(grant(wrong_aud).await).await.0, 401);
    let mut expired = ac("hs", &token_url, "j4");
    expired["exp"] = serde_json::json!(gatehouse_core::time::now() - 120);
    let expired = hs256("hs-secret-that-is-long-enough-000", &expired);
    assert_eq!(err(grant(expired).await).await.0, 401);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(ac("hs", &token_url, "j5").to_string().as_bytes())
    );
    assert_eq!(err(grant(none).await).await.0, 401);
    // Its secret alone is not how this client authenticates.
    let r = s
        .http
        .post(&token_url)
        .basic_auth("hs", Some("hs-secret-that-is-long-enough-000"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (401, "invalid_client".into()));

    // private_key_jwt, keys fetched from the client's jwks.url.
    let a = issuer.sign(&ac("pk", &s.token_url("demo"), "k1"));
    assert_eq!(grant(a.clone()).await.status(), 200);
    assert_eq!(err(grant(a).await).await.0, 401, "replay");
    let issuer_aud = format!("{}/realms/demo", s.base);
    assert_eq!(
        grant(issuer.sign(&ac("pk", &issuer_aud, "k2")))
            .await
            .status(),
        200,
        "the issuer is an accepted audience"
    );
    let mut fractional = ac("pk", &token_url, "k3");
    let now = gatehouse_core::time::now() as f64;
    fractional["exp"] = serde_json::json!(now + 60.5);
    fractional["iat"] = serde_json::json!(now - 0.5);
    assert_eq!(
        grant(issuer.sign(&fractional)).await.status(),
        200,
        "RFC 7519 NumericDates may be fractional"
    );
    let mut far = ac("pk", &token_url, "k4");
    far["exp"] = serde_json::json!(i64::MAX);
    assert_eq!(
        grant(issuer.sign(&far)).await.status(),
        200,
        "the latest expiry is a time, not an overflow"
    );
    // Signed by someone else's key, or claiming another client.
    let other = crate::peers::issuer().await;
    assert_eq!(
        err(grant(other.sign(&ac("pk", &token_url, "k3"))).await)
            .await
            .0,
        401
    );
    let mut lying = ac("pk", &token_url, "k4");
    lying["iss"] = serde_json::json!("hs");
    assert_eq!(err(grant(issuer.sign(&lying)).await).await.0, 401);
    // The secret-JWT client cannot present a key-signed assertion either.
    assert_eq!(
        err(grant(issuer.sign(&ac("hs", &token_url, "k5"))).await)
            .await
            .0,
        401
    );
    // Mixing methods is a bad request.
    let r = s
        .http
        .post(&token_url)
        .basic_auth("pk", Some("x"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                &issuer.sign(&ac("pk", &token_url, "k6")),
            ),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(err(r).await, (400, "invalid_request".into()));
    // Discovery says so.
    let d = s.discovery("demo").await;
    assert!(
        d["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m == "private_key_jwt")
    );
}

/// A signed client assertion is good for a short window after it was made
/// (Keycloak's `token.endpoint.auth.signing.max.exp`, 60 s by default,
/// CVE-2025-2559), whatever its own `exp` says, and names one audience.
#[tokio::test]
async fn client_assertions_expire_soon_after_they_are_made() {
    let s = start().await;
    let t = s.demo_realm().await;
    let issuer = crate::peers::issuer().await;
    let rep = serde_json::json!({"clientId": "pk", "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": true,
        "attributes": {"use.jwks.url": "true", "jwks.url": format!("{}/keys", issuer.url)}});
    assert_eq!(s.admin_post(&t, "/demo/clients", &rep).await.0, 201);
    let token_url = s.token_url("demo");
    let now = gatehouse_core::time::now();
    let base =
        |jti: &str| serde_json::json!({"iss": "pk", "sub": "pk", "aud": token_url, "jti": jti});
    let with = |jti: &str, extra: Value| {
        let mut c = base(jti);
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        issuer.sign(&c)
    };
    let outcome = |assertion: String| {
        let s = &s;
        async move {
            let r = s.assertion_grant("demo", &assertion).await;
            let code = r.status().as_u16();
            let v: Value = r.json().await.expect("json");
            (
                code,
                v["error_description"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let old = serde_json::json!({"iat": now - 120, "exp": now + 3600});
    assert_eq!(
        outcome(with("a1", old.clone())).await,
        (
            401,
            "Token was issued too far in the past to be used now".into()
        ),
        "made two minutes ago: past the 60 s window though exp is an hour away"
    );
    assert_eq!(
        outcome(with("a2", serde_json::json!({"exp": now + 3600}))).await,
        (
            401,
            "Token expiration is too far in the future and iat claim not present in token".into()
        )
    );
    assert_eq!(
        outcome(with("a3", serde_json::json!({"exp": now + 30})))
            .await
            .0,
        200,
        "without iat, an exp within the window is enough"
    );
    assert_eq!(
        outcome(with(
            "a4",
            serde_json::json!({"iat": now + 120, "exp": now + 180})
        ))
        .await,
        (401, "Token was issued in the future".into())
    );
    // Extreme dates are dates, not overflows.
    let ancient = serde_json::json!({"iat": i64::MIN, "exp": now + 30});
    assert_eq!(
        outcome(with("a8", ancient)).await,
        (
            401,
            "Token was issued too far in the past to be used now".into()
        )
    );
    let two = serde_json::json!({"iat": now, "exp": now + 60,
        "aud": [token_url.clone(), "https://other.example/token"]});
    assert_eq!(
        outcome(with("a5", two)).await,
        (401, "Multiple audiences not allowed".into())
    );
    let one = serde_json::json!({"iat": now, "exp": now + 60, "aud": [token_url.clone()]});
    assert_eq!(outcome(with("a6", one)).await.0, 200);

    // The client may allow a longer window.
    let id = s.client_uuid(&t, "demo", "pk").await;
    let (_, mut rep) = s.admin_get(&t, &format!("/demo/clients/{id}")).await;
    rep["attributes"]["token.endpoint.auth.signing.max.exp"] = serde_json::json!("300");
    assert_eq!(
        s.admin_put(&t, &format!("/demo/clients/{id}"), Some(&rep))
            .await,
        204
    );
    assert_eq!(outcome(with("a7", old)).await.0, 200);
}

/// CORS as Keycloak answers it: preflights for any origin, the token and
/// userinfo answers readable only from the client's web origins (`+` =
/// its redirect URIs' origins), discovery and JWKS from anywhere.
#[tokio::test]
async fn cors_follows_the_clients_web_origins() {
    let s = start().await;
    let t = s.demo_realm().await;
    let spa = s.client_uuid(&t, "demo", "spa").await;
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/clients/{spa}", s.base))
        .bearer_auth(&t)
        .json(&serde_json::json!({"webOrigins": ["+"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let token_url = s.token_url("demo");
    let acao = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("?").to_owned())
    };
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, &token_url)
        .header("origin", "http://127.0.0.1")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some("http://127.0.0.1"));
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .expect("m")
            .contains("POST")
    );
    let grant = |origin: &'static str, client: &'static str| {
        s.http
            .post(&token_url)
            .header("origin", origin)
            .form(&[
                ("grant_type", "password"),
                ("client_id", client),
                ("username", "alice"),
                ("password", "alice-pw"),
            ])
            .send()
    };
    let r = grant("http://127.0.0.1", "spa").await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some("http://127.0.0.1"));
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let at: Value = r.json().await.expect("json");
    let r = grant("https://evil.example", "spa").await.expect("send");
    assert_eq!(r.status(), 200, "answered, but unreadable to that page");
    assert_eq!(acao(&r), None);
    // `app` lists no web origins: no page may read its token answers.
    let r = s
        .http
        .post(&token_url)
        .header("origin", "http://127.0.0.1")
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r), None);
    // userinfo: the token's client decides.
    let userinfo = format!("{}/realms/demo/protocol/openid-connect/userinfo", s.base);
    for (origin, expected) in [
        ("http://127.0.0.1", Some("http://127.0.0.1")),
        ("https://evil.example", None),
    ] {
        let r = s
            .http
            .get(&userinfo)
            .header("origin", origin)
            .bearer_auth(at["access_token"].as_str().expect("at"))
            .send()
            .await
            .expect("send");
        assert_eq!(acao(&r).as_deref(), expected, "{origin}");
    }
    // The account profile keycloak-js's loadUserProfile() reads: the
    // token's own user, readable from the same origins as userinfo.
    let account = format!("{}/realms/demo/account", s.base);
    let r = s
        .http
        .get(&account)
        .header("origin", "http://127.0.0.1")
        .header("accept", "application/json")
        .bearer_auth(at["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some("http://127.0.0.1"));
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    for bad in [None, Some("not-a-token")] {
        let mut req = s.http.get(&account);
        if let Some(b) = bad {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
    }
    // Discovery and JWKS: any origin; no Origin, no CORS headers.
    for path in [
        "/realms/demo/.well-known/openid-configuration",
        "/realms/demo/protocol/openid-connect/certs",
    ] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .header("origin", "https://anyone.example")
            .send()
            .await
            .expect("send");
        assert_eq!(
            acao(&r).as_deref(),
            Some("https://anyone.example"),
            "{path}"
        );
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .expect("send");
        assert_eq!(acao(&r), None, "{path}");
    }
}

/// A realm's `browserSecurityHeaders` (Keycloak's "Security defenses"):
/// its representation shows what the pages send, an admin's values replace
/// them on the login page (empty removes one), pages framed on purpose keep
/// their own policy, and a value that is no header value is refused whole.
#[tokio::test]
async fn realm_security_headers_are_what_the_login_page_sends() {
    let s = start().await;
    let t = s.demo_realm().await;
    let auth = format!(
        "{}/realms/demo/protocol/openid-connect/auth?response_type=code&client_id=spa&redirect_uri=http%3A%2F%2F127.0.0.1%2Fspa%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        s.base
    );
    let login_headers = || {
        let (s, auth) = (&s, auth.clone());
        async move {
            let r = s.http.get(&auth).send().await.expect("send");
            assert_eq!(r.status(), 200);
            r.headers().clone()
        }
    };
    let (_, rep) = s.admin_get(&t, "/demo").await;
    let shown = rep["browserSecurityHeaders"].clone();
    let sent = login_headers().await;
    for (key, header) in [
        ("xFrameOptions", "x-frame-options"),
        ("contentSecurityPolicy", "content-security-policy"),
        ("xContentTypeOptions", "x-content-type-options"),
        ("referrerPolicy", "referrer-policy"),
        ("xRobotsTag", "x-robots-tag"),
        ("strictTransportSecurity", "strict-transport-security"),
    ] {
        assert_eq!(shown[key], sent[header].to_str().expect("ascii"), "{key}");
    }
    assert_eq!(shown["contentSecurityPolicyReportOnly"], "");

    let portal = "frame-ancestors 'self' https://portal.example";
    let change = serde_json::json!({"browserSecurityHeaders":
        {"xFrameOptions": "SAMEORIGIN", "contentSecurityPolicy": portal, "xRobotsTag": ""}});
    assert_eq!(s.admin_put(&t, "/demo", Some(&change)).await, 204);
    let sent = login_headers().await;
    assert_eq!(sent["x-frame-options"], "SAMEORIGIN");
    assert_eq!(sent["content-security-policy"], portal);
    assert!(sent.get("x-robots-tag").is_none(), "empty removes it");
    assert_eq!(sent["referrer-policy"], "no-referrer", "the others stay");
    let framed = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/3p-cookies/step1.html",
            s.base
        ))
        .send()
        .await
        .expect("send");
    assert!(framed.headers().get("x-frame-options").is_none());
    assert_ne!(framed.headers()["content-security-policy"], portal);

    // A line break would split the header: refused, nothing changed.
    let bad = serde_json::json!({"browserSecurityHeaders":
        {"referrerPolicy": "same-origin", "xFrameOptions": "DENY\r\nSet-Cookie: a=b"}});
    assert_eq!(s.admin_put(&t, "/demo", Some(&bad)).await, 400);
    // An admin tool writes the whole representation back: nothing moves.
    let (_, rep) = s.admin_get(&t, "/demo").await;
    assert_eq!(
        rep["browserSecurityHeaders"]["referrerPolicy"],
        "no-referrer"
    );
    assert_eq!(s.admin_put(&t, "/demo", Some(&rep)).await, 204);
    let sent = login_headers().await;
    assert_eq!(sent["x-frame-options"], "SAMEORIGIN");
    assert_eq!(sent["content-security-policy"], portal);
}

/// keycloak-js's start-up pages and its session-status iframe: each may
/// be framed by any site and runs only its own hashed script; `init`
/// admits the client's web origins (and Gatehouse's own) and nothing else;
/// a browser login sets the script-readable session cookie, whose value
/// the code names and the tokens' `sid` starts with; logout clears it.
#[tokio::test]
async fn keycloak_js_session_status_pages() {
    let s = start().await;
    let t = s.demo_realm().await;
    let base = format!("{}/realms/demo/protocol/openid-connect", s.base);
    for (page, expect) in [
        ("3p-cookies/step1.html", "step2.html"),
        ("3p-cookies/step2.html", "\"supported\""),
        ("login-status-iframe.html", "GATEHOUSE_SESSION"),
    ] {
        let r = s
            .http
            .get(format!("{base}/{page}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{page}");
        assert!(r.headers().get("x-frame-options").is_none(), "{page}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(!csp.contains("frame-ancestors"), "{page}: {csp}");
        let html = r.text().await.expect("html");
        assert!(html.contains(expect), "{page}: {html}");
        // The script's hash is the one the CSP allows, and the only script.
        let script = between(&html, "<script>", "</script>");
        let hash = base64::engine::general_purpose::STANDARD
            .encode(gatehouse_core::id::sha256(script.as_bytes()));
        assert!(
            csp.contains(&format!("script-src 'sha256-{hash}'")),
            "{page}: {csp}"
        );
        assert_eq!(html.matches("<script").count(), 1, "{page}");
    }

    let app = s.client_uuid(&t, "demo", "app").await;
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/clients/{app}", s.base))
        .bearer_auth(&t)
        .json(&serde_json::json!({"webOrigins": ["http://app.example"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let init = |q: &'static [(&'static str, &'static str)]| {
        s.http
            .get(format!("{base}/login-status-iframe.html/init"))
            .query(q)
            .send()
    };
    let own = s.base.clone();
    for (q, want) in [
        (
            &[("client_id", "app"), ("origin", "http://app.example")][..],
            204,
        ),
        (
            &[("client_id", "app"), ("origin", "http://evil.example")][..],
            403,
        ),
        (
            &[("client_id", "nope"), ("origin", "http://app.example")][..],
            403,
        ),
        (&[("client_id", "app")][..], 403),
    ] {
        assert_eq!(init(q).await.expect("init").status(), want, "{q:?}");
    }
    let r = s
        .http
        .get(format!("{base}/login-status-iframe.html/init"))
        .query(&[("client_id", "app"), ("origin", own.as_str())])
        .send()
        .await
        .expect("init");
    assert_eq!(r.status(), 204, "Gatehouse's own origin");

    let first = s
        .http
        .get(format!("{base}/auth"))
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
    let cookies: Vec<String> = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("cookie").to_owned())
        .collect();
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {cookies:?}"))
            .clone()
    };
    let session_cookie = find("GATEHOUSE_SESSION");
    assert!(!session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(
        session_cookie.contains("Path=/realms/demo/"),
        "{session_cookie}"
    );
    assert!(find("GATEHOUSE_IDENTITY").contains("HttpOnly"));
    let sso_id = between(&session_cookie, "GATEHOUSE_SESSION=", ";").to_owned();
    let loc = done.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(
        query_param(&loc, "session_state").as_deref(),
        Some(sso_id.as_str())
    );
    let code = query_param(&loc, "code").expect("code");
    assert!(code.ends_with(&format!(".{sso_id}")), "{code}");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    for t in ["access_token", "id_token"] {
        let sid = claims(tokens[t].as_str().expect("token"))["sid"]
            .as_str()
            .expect("sid")
            .to_owned();
        assert!(sid.starts_with(&format!("{sso_id}.")), "{t}: {sid}");
    }
    // A code naming another browser session is not a code.
    let forged = format!("{}.other", code.rsplit_once('.').expect("dot").0);
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &forged),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);

    let identity = between(&find("GATEHOUSE_IDENTITY"), "GATEHOUSE_IDENTITY=", ";").to_owned();
    let r = s
        .http
        .get(format!("{base}/logout"))
        .header("cookie", format!("GATEHOUSE_IDENTITY={identity}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("GATEHOUSE_SESSION=;") && c.contains("Max-Age=0"));
    assert!(cleared, "logout clears the session cookie");
}

/// Which tokens a mapper fills, read from its flags as Keycloak reads them:
/// the ID token only when `id.token.claim` says so; userinfo when
/// `userinfo.token.claim` says so or, absent, with the ID token. So the
/// built-in `roles` scope puts `realm_access` in the access token only.
#[tokio::test]
async fn mapper_flags_decide_the_id_token_and_userinfo_as_in_keycloak() {
    let s = start().await;
    let t = s.admin_token().await;
    s.demo_realm().await;
    let app = s.client_uuid(&t, "demo", "app").await;
    let hardcoded = |name: &str, flags: Value| {
        let mut config =
            serde_json::json!({"claim.name": name, "claim.value": "x", "jsonType.label": "String"});
        for (k, v) in flags.as_object().expect("flags") {
            config[k] = v.clone();
        }
        serde_json::json!({"name": name, "protocol": "openid-connect",
            "protocolMapper": "oidc-hardcoded-claim-mapper", "config": config})
    };
    for m in [
        hardcoded("no_flags", serde_json::json!({})),
        hardcoded("id_too", serde_json::json!({"id.token.claim": "true"})),
        hardcoded(
            "userinfo_only",
            serde_json::json!({"access.token.claim": "false", "id.token.claim": "false", "userinfo.token.claim": "true"}),
        ),
        hardcoded(
            "id_not_userinfo",
            serde_json::json!({"id.token.claim": "true", "userinfo.token.claim": "false"}),
        ),
    ] {
        s.admin_create(
            &t,
            &format!("/demo/clients/{app}/protocol-mappers/models"),
            &m,
        )
        .await;
    }
    let tok: Value = s.alice_tokens(Some("openid")).await;
    let at = tok["access_token"].as_str().expect("at");
    let access = claims(at);
    let id = claims(tok["id_token"].as_str().expect("id token"));
    let userinfo: Value = s.userinfo("demo", at).await.json().await.expect("json");
    let has = |c: &Value, k: &str| c.get(k).is_some();
    // (claim, access token, ID token, userinfo)
    for (claim, in_at, in_id, in_ui) in [
        ("realm_access", true, false, false),
        ("no_flags", true, false, false),
        ("id_too", true, true, true),
        ("userinfo_only", false, false, true),
        ("id_not_userinfo", true, true, false),
        ("preferred_username", true, true, true),
    ] {
        assert_eq!(
            (has(&access, claim), has(&id, claim), has(&userinfo, claim)),
            (in_at, in_id, in_ui),
            "{claim}"
        );
    }
    assert_eq!(id["sub"], access["sub"]);
    assert_eq!(userinfo["sub"], access["sub"]);
    assert_eq!(
        (access["acr"].as_str(), id["acr"].as_str()),
        (Some("1"), Some("1"))
    );
    assert!(
        userinfo.get("acr").is_none(),
        "Keycloak's acr mapper skips userinfo"
    );
}

/// A client imported from Keycloak with a certificate instead of a JWKS
/// (`jwt.credential.certificate`, bare base64 DER, as Keycloak's admin
/// console imports it) authenticates with JWTs signed by that key,
/// whatever `kid` they name; a JWT signed by another key does not.
#[tokio::test]
async fn a_client_with_a_configured_certificate_authenticates_with_signed_jwts() {
    let s = start().await;
    let t = s.demo_realm().await;
    let cert: String = include_str!("../../../jose/testdata/rsa.crt")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let rep = json!({"clientId": "legacy", "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": true, "attributes": {"jwt.credential.certificate": cert}});
    assert_eq!(s.admin_post(&t, "/demo/clients", &rep).await.0, 201);
    let uuid = s.client_uuid(&t, "demo", "legacy").await;
    let info = format!("/demo/clients/{uuid}/certificates/jwt.credential");
    assert_eq!(
        s.admin_get(&t, &info).await,
        (200, json!({ "certificate": cert }))
    );
    let token_url = s.token_url("demo");
    let assertion = |key: &gatehouse_jose::keys::SigningKey, jti: &str| {
        let now = gatehouse_core::time::now();
        gatehouse_jose::sign::sign(
            key,
            &json!({"iss": "legacy", "sub": "legacy", "aud": token_url, "exp": now + 60,
                "iat": now, "jti": jti}),
        )
        .expect("sign")
    };
    let grant = |a: String| {
        let s = &s;
        async move { s.assertion_grant("demo", &a).await }
    };
    let key = gatehouse_jose::keys::SigningKey::from_pkcs8(
        gatehouse_jose::keys::Alg::RS256,
        "kid-the-server-never-saw",
        include_bytes!("../../../jose/testdata/rsa.p8.der"),
    )
    .expect("key");
    let r = grant(assertion(&key, "j1")).await;
    assert_eq!(r.status(), 200);
    let (other, _) =
        gatehouse_jose::keys::SigningKey::generate(gatehouse_jose::keys::Alg::RS256).expect("key");
    let r = grant(assertion(&other, "j2")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "invalid_client");
}

/// Keycloak's client key generation: `generate` makes an RSA key and a
/// self-signed certificate, keeps both and shows both; the client then
/// authenticates with JWTs signed by that key. `generate-and-download`
/// answers a JKS keystore (read back by Java's `keytool` when the machine
/// has one) and keeps only the new certificate, after which the old key no
/// longer authenticates; `download` gives the kept material; formats
/// Gatehouse does not write are a 406.
#[tokio::test]
async fn generated_client_keys_authenticate_and_download_as_keystores() {
    use base64::Engine;
    let s = start().await;
    let t = s.demo_realm().await;
    let rep = json!({"clientId": "signer", "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": true});
    assert_eq!(s.admin_post(&t, "/demo/clients", &rep).await.0, 201);
    let uuid = s.client_uuid(&t, "demo", "signer").await;
    let base = format!(
        "{}/admin/realms/demo/clients/{uuid}/certificates/jwt.credential",
        s.base
    );
    let generated: Value = s
        .http
        .post(format!("{base}/generate"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("generate")
        .json()
        .await
        .expect("json");
    let info = format!("/demo/clients/{uuid}/certificates/jwt.credential");
    assert_eq!(s.admin_get(&t, &info).await, (200, generated.clone()));
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(generated["privateKey"].as_str().expect("private key"))
        .expect("base64");
    let key = gatehouse_jose::keys::SigningKey::from_pkcs8(
        gatehouse_jose::keys::Alg::RS256,
        "any",
        &pkcs8,
    )
    .expect("pkcs8");
    assert_eq!(
        s.private_key_jwt_grant("demo", "signer", &key, "g1")
            .await
            .status(),
        200
    );
    let post = |path: &str, body: Value| {
        s.http
            .post(format!("{base}/{path}"))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let config = json!({"format": "JKS", "keyAlias": "signer-key", "keyPassword": "key-pass",
        "storePassword": "store-pass", "realmCertificate": true});
    let r = post("download", config.clone()).await.expect("download");
    assert_eq!(r.status(), 200);
    let kept = r.bytes().await.expect("bytes");
    assert_eq!(&kept[..4], &[0xfe, 0xed, 0xfe, 0xed]);
    let r = post("generate-and-download", config.clone())
        .await
        .expect("g&d");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let fresh = r.bytes().await.expect("bytes");
    let (_, after) = s.admin_get(&t, &info).await;
    assert!(after.get("privateKey").is_none(), "{after}");
    assert_ne!(after["certificate"], generated["certificate"]);
    assert_eq!(
        s.private_key_jwt_grant("demo", "signer", &key, "g2")
            .await
            .status(),
        401,
        "the replaced key is refused"
    );
    // Java reads the keystore: the key entry under the key password, the
    // realm's certificate beside it.
    if std::process::Command::new("keytool")
        .arg("-help")
        .output()
        .is_ok()
    {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("signer.jks");
        std::fs::write(&file, &fresh).expect("write");
        let out = std::process::Command::new("keytool")
            .args([
                "-list",
                "-v",
                "-storetype",
                "JKS",
                "-storepass",
                "store-pass",
                "-keystore",
            ])
            .arg(&file)
            .output()
            .expect("keytool");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("Alias name: signer-key") && text.contains("PrivateKeyEntry"),
            "{text}"
        );
        assert!(
            text.contains("Alias name: demo") && text.contains("trustedCertEntry"),
            "{text}"
        );
        assert!(text.contains("CN=signer"), "{text}");
        let p12 = dir.path().join("signer.p12");
        let out = std::process::Command::new("keytool")
            .args([
                "-importkeystore",
                "-srcstoretype",
                "JKS",
                "-srcstorepass",
                "store-pass",
                "-srcalias",
                "signer-key",
                "-srckeypass",
                "key-pass",
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                "p12-pass",
                "-srckeystore",
            ])
            .arg(&file)
            .arg("-destkeystore")
            .arg(&p12)
            .output()
            .expect("keytool");
        assert!(
            out.status.success(),
            "the key decrypts: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = std::process::Command::new("keytool")
            .args([
                "-list",
                "-storetype",
                "JKS",
                "-storepass",
                "wrong-pass",
                "-keystore",
            ])
            .arg(&file)
            .output()
            .expect("keytool");
        assert!(
            !out.status.success(),
            "a wrong store password fails the integrity check"
        );
    }
    // PKCS12 (same password for key and store, as keytool wants it).
    let r = post(
        "generate-and-download",
        json!({"format": "PKCS12", "keyAlias": "signer-key", "keyPassword": "p12-pass",
            "storePassword": "p12-pass"}),
    )
    .await
    .expect("p12");
    assert_eq!(r.status(), 200);
    let p12 = r.bytes().await.expect("bytes");
    assert_eq!(p12[0], 0x30);
    if std::process::Command::new("keytool")
        .arg("-help")
        .output()
        .is_ok()
    {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("signer.p12");
        std::fs::write(&file, &p12).expect("write");
        let list = |pass: &str| {
            std::process::Command::new("keytool")
                .args([
                    "-list",
                    "-v",
                    "-storetype",
                    "PKCS12",
                    "-storepass",
                    pass,
                    "-keystore",
                ])
                .arg(&file)
                .output()
                .expect("keytool")
        };
        let out = list("p12-pass");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Alias name: signer-key") && text.contains("PrivateKeyEntry"),
            "{text}"
        );
        assert!(
            text.contains("Alias name: demo") && text.contains("trustedCertEntry"),
            "{text}"
        );
        // The key decrypts: exported into a JKS under its password.
        let jks = dir.path().join("copy.jks");
        let out = std::process::Command::new("keytool")
            .args([
                "-importkeystore",
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                "p12-pass",
                "-srcalias",
                "signer-key",
                "-deststoretype",
                "JKS",
                "-deststorepass",
                "jks-pass",
                "-srckeystore",
            ])
            .arg(&file)
            .arg("-destkeystore")
            .arg(&jks)
            .output()
            .expect("keytool");
        assert!(
            out.status.success(),
            "the key decrypts: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !list("wrong-pass").status.success(),
            "the MAC refuses a wrong password"
        );
    }
    let r = post(
        "download",
        json!({"format": "BCFKS", "keyPassword": "k", "storePassword": "s"}),
    )
    .await
    .expect("bcfks");
    assert_eq!(r.status(), 406);
    let r = post(
        "generate-and-download",
        json!({"format": "JKS", "storePassword": "s"}),
    )
    .await
    .expect("no key password");
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/clients/{uuid}/certificates/saml.signing/download",
            s.base
        ))
        .bearer_auth(&t)
        .json(&json!({"keyPassword": "k", "storePassword": "s"}))
        .send()
        .await
        .expect("nothing kept");
    assert_eq!(r.status(), 404);
}

/// Keycloak's key uploads (`certificates/{attr}/upload` and
/// `upload-certificate`, multipart): a certificate PEM, a JWKS (which
/// becomes the client's `jwks.string`), a JKS keystore (its key kept only
/// through `upload`); the uploaded material then authenticates the
/// client's signed JWTs. Bad passwords, aliases, formats and bodies are
/// 400s in Keycloak's words.
#[tokio::test]
async fn uploaded_client_keys_authenticate() {
    let s = start().await;
    let t = s.demo_realm().await;
    let rep = json!({"clientId": "uploader", "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": true});
    assert_eq!(s.admin_post(&t, "/demo/clients", &rep).await.0, 201);
    let uuid = s.client_uuid(&t, "demo", "uploader").await;
    let base = format!(
        "{}/admin/realms/demo/clients/{uuid}/certificates/jwt.credential",
        s.base
    );
    let upload = |action: &str, fields: Vec<(&str, Vec<u8>)>| {
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--b0undary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--b0undary--\r\n");
        s.http
            .post(format!("{base}/{action}"))
            .bearer_auth(&t)
            .header("content-type", "multipart/form-data; boundary=b0undary")
            .body(body)
            .send()
    };
    let info = format!("/demo/clients/{uuid}/certificates/jwt.credential");
    // A certificate PEM.
    let pem = include_str!("../../../jose/testdata/rsa.crt");
    let r = upload(
        "upload-certificate",
        vec![
            ("keystoreFormat", b"Certificate PEM".to_vec()),
            ("file", pem.as_bytes().to_vec()),
        ],
    )
    .await
    .expect("upload");
    assert_eq!(r.status(), 200);
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"certificate": bare})
    );
    assert_eq!(s.admin_get(&t, &info).await.1, json!({"certificate": bare}));
    let testkey = gatehouse_jose::keys::SigningKey::from_pkcs8(
        gatehouse_jose::keys::Alg::RS256,
        "k",
        include_bytes!("../../../jose/testdata/rsa.p8.der"),
    )
    .expect("key");
    assert_eq!(
        s.private_key_jwt_grant("demo", "uploader", &testkey, "u1")
            .await
            .status(),
        200
    );
    // A JKS keystore made by generate-and-download, uploaded back.
    let jks = s
        .http
        .post(format!("{base}/generate-and-download"))
        .bearer_auth(&t)
        .json(
            &json!({"format": "JKS", "keyAlias": "mine", "keyPassword": "kp",
            "storePassword": "sp", "realmCertificate": false}),
        )
        .send()
        .await
        .expect("g&d")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    assert_eq!(
        s.private_key_jwt_grant("demo", "uploader", &testkey, "u2")
            .await
            .status(),
        401,
        "replaced"
    );
    let jks_fields = |store: &str, alias: &str| {
        vec![
            ("keystoreFormat", b"JKS".to_vec()),
            ("keyAlias", alias.as_bytes().to_vec()),
            ("keyPassword", b"kp".to_vec()),
            ("storePassword", store.as_bytes().to_vec()),
            ("file", jks.clone()),
        ]
    };
    let r = upload("upload", jks_fields("sp", "mine"))
        .await
        .expect("upload");
    assert_eq!(r.status(), 200);
    let uploaded: Value = r.json().await.expect("json");
    let private = uploaded["privateKey"]
        .as_str()
        .expect("the key came with it");
    use base64::Engine;
    let key = gatehouse_jose::keys::SigningKey::from_pkcs8(
        gatehouse_jose::keys::Alg::RS256,
        "k",
        &base64::engine::general_purpose::STANDARD
            .decode(private)
            .expect("b64"),
    )
    .expect("pkcs8");
    assert_eq!(
        s.private_key_jwt_grant("demo", "uploader", &key, "u3")
            .await
            .status(),
        200
    );
    let r = upload("upload-certificate", jks_fields("sp", "mine"))
        .await
        .expect("upload");
    let only_cert: Value = r.json().await.expect("json");
    assert!(only_cert.get("privateKey").is_none() && only_cert["certificate"].is_string());
    assert!(s.admin_get(&t, &info).await.1.get("privateKey").is_none());
    for (fields, message) in [
        (
            jks_fields("wrong", "mine"),
            "Keystore was tampered with, or password was incorrect",
        ),
        (
            jks_fields("sp", "other"),
            "Certificate or key with given alias not found in the keystore",
        ),
        (
            vec![
                ("keystoreFormat", b"PKCS12".to_vec()),
                ("file", b"x".to_vec()),
            ],
            "PKCS12",
        ),
        (
            vec![
                ("keystoreFormat", b"BCFKS".to_vec()),
                ("file", b"x".to_vec()),
            ],
            "Unsupported keystore format",
        ),
        (
            vec![("keystoreFormat", b"JKS".to_vec())],
            "file cannot be empty",
        ),
        (
            vec![("file", b"x".to_vec())],
            "keystoreFormat cannot be null",
        ),
        (
            vec![
                ("keystoreFormat", b"Certificate PEM".to_vec()),
                (
                    "file",
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".to_vec(),
                ),
            ],
            "not valid",
        ),
    ] {
        let r = upload("upload", fields).await.expect("upload");
        assert_eq!(r.status(), 400, "{message}");
        let v: Value = r.json().await.expect("json");
        assert!(
            v["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{v}"
        );
    }
    assert_eq!(
        s.private_key_jwt_grant("demo", "uploader", &key, "u4")
            .await
            .status(),
        200,
        "nothing changed by the refusals"
    );
    // A JWKS becomes the client's key source.
    let (jwk_key, _) =
        gatehouse_jose::keys::SigningKey::generate(gatehouse_jose::keys::Alg::ES256).expect("key");
    let jwks = json!({"keys": [jwk_key.public_jwk()]}).to_string();
    let r = upload(
        "upload-certificate",
        vec![
            ("keystoreFormat", b"JSON Web Key Set".to_vec()),
            ("file", jwks.into_bytes()),
        ],
    )
    .await
    .expect("upload");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["kid"], jwk_key.kid());
    let (_, client) = s.admin_get(&t, &format!("/demo/clients/{uuid}")).await;
    assert_eq!(client["attributes"]["use.jwks.string"], "true");
    assert_eq!(
        s.private_key_jwt_grant("demo", "uploader", &jwk_key, "u5")
            .await
            .status(),
        200
    );
    // Not multipart at all.
    let r = s
        .http
        .post(format!("{base}/upload"))
        .bearer_auth(&t)
        .json(&json!({"keystoreFormat": "JKS"}))
        .send()
        .await
        .expect("json body");
    assert_eq!(r.status(), 400);
}

/// A native app (a CLI such as kubelogin) listens on a loopback port it
/// picks at start: any port matches a registered loopback redirect URI
/// (RFC 8252 §7.3, as Keycloak), the code goes to that exact URI, and the
/// code exchange names that same URI.
#[tokio::test]
async fn loopback_redirect_uris_take_any_port() {
    let s = start().await;
    s.demo_realm().await;
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:43210/spa/cb";
    let first = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("client_id", "spa"),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("auth");
    assert_eq!(first.status(), 200, "the login page, not an error");
    let done = s.log_in_alice(first).await;
    assert_eq!(done.status(), 302);
    let loc = done.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with("http://127.0.0.1:43210/spa/cb?"), "{loc}");
    let code = query_param(&loc, "code").expect("code");
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.as_str()),
    ];
    assert_eq!(s.token_request("demo", None, &form).await.status(), 200);
}

/// RFC 8693 token exchange as Keycloak's standard token exchange: a
/// service trades a user's token meant for it for one of its own, narrowed
/// to a downstream audience it may address; never a token it was not
/// given, never a wider audience, never without the client's opt-in, and
/// the new token dies with the user's session.
#[tokio::test]
async fn token_exchange_trades_a_token_meant_for_the_service() {
    let s = start().await;
    let t = s.demo_realm().await;
    let backend = json!({"clientId": "backend", "secret": "backend-secret",
        "attributes": {"standard.token.exchange.enabled": "true"},
        "protocolMappers": [{"name": "orders", "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": "orders", "access.token.claim": "true"}}]});
    assert_eq!(s.admin_post(&t, "/demo/clients", &backend).await.0, 201);
    let locked = json!({"clientId": "locked", "secret": "locked-secret"});
    assert_eq!(s.admin_post(&t, "/demo/clients", &locked).await.0, 201);
    // Alice's token from `app`, with `backend` (and `locked`) in its audience.
    s.edit_client(&t, "demo", "app", |rep| {
        rep["protocolMappers"] = json!([{"name": "to-backend", "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.client.audience": "backend", "access.token.claim": "true"}},
            {"name": "to-locked", "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.client.audience": "locked", "access.token.claim": "true"}}]);
    })
    .await;
    let alice = s.alice_tokens(None).await;
    let subject = alice["access_token"].as_str().expect("at").to_owned();
    let exchange = |client: &'static str,
                    secret: &'static str,
                    token: String,
                    extra: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            let mut form = vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", token.as_str()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ];
            form.extend(extra);
            let r = s.token_request("demo", Some((client, secret)), &form).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (st, out) = exchange("backend", "backend-secret", subject.clone(), vec![]).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(
        out["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert!(out.get("refresh_token").is_none());
    let c = claims(out["access_token"].as_str().expect("at"));
    let original = claims(&subject);
    assert_eq!(
        (c["azp"].clone(), c["sub"].clone()),
        (json!("backend"), original["sub"].clone())
    );
    assert_eq!(c["sid"], original["sid"], "the same user session");
    // Narrowed to the downstream API; never to one it could not address.
    let (st, out) = exchange(
        "backend",
        "backend-secret",
        subject.clone(),
        vec![("audience", "orders")],
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let narrowed = out["access_token"].as_str().expect("at").to_owned();
    assert_eq!(claims(&narrowed)["aud"], "orders");
    let (st, out) = exchange(
        "backend",
        "backend-secret",
        subject.clone(),
        vec![("audience", "billing")],
    )
    .await;
    assert_eq!((st, out["error"].clone()), (400, json!("invalid_request")));
    // A client without the opt-in, a token not meant for the client, a
    // token that is none, delegation: refused.
    let (st, out) = exchange("locked", "locked-secret", subject.clone(), vec![]).await;
    assert_eq!(
        (st, out["error"].clone()),
        (400, json!("unauthorized_client"))
    );
    let stranger = json!({"clientId": "stranger", "secret": "stranger-secret",
        "attributes": {"standard.token.exchange.enabled": "true"}});
    assert_eq!(s.admin_post(&t, "/demo/clients", &stranger).await.0, 201);
    let (st, out) = exchange("stranger", "stranger-secret", subject.clone(), vec![]).await;
    assert_eq!((st, out["error"].clone()), (403, json!("access_denied")));
    let (st, out) = exchange("backend", "backend-secret", "garbage".into(), vec![]).await;
    assert_eq!((st, out["error"].clone()), (400, json!("invalid_request")));
    let (st, _) = exchange(
        "backend",
        "backend-secret",
        subject.clone(),
        vec![("actor_token", "x")],
    )
    .await;
    assert_eq!(st, 400);
    // A refresh token only where the client allows it, in a session of
    // its own that ends with alice's; no token type means an access token.
    let refresh_type = (
        "requested_token_type",
        "urn:ietf:params:oauth:token-type:refresh_token",
    );
    let (st, out) = exchange(
        "backend",
        "backend-secret",
        subject.clone(),
        vec![refresh_type],
    )
    .await;
    assert_eq!((st, out["error"].clone()), (400, json!("invalid_request")));
    s.edit_client(&t, "demo", "backend", |rep| {
        rep["attributes"]["standard.token.exchange.enableRefreshRequestedTokenType"] =
            json!("SAME_SESSION");
    })
    .await;
    let backend = Some(("backend", "backend-secret"));
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject.as_str()),
        ("requested_token_type", refresh_type.1),
    ];
    let bare = s.token_request("demo", backend, &form).await;
    assert_eq!(bare.status(), 200);
    let with_refresh: Value = bare.json().await.expect("json");
    assert_eq!(
        with_refresh["issued_token_type"],
        "urn:ietf:params:oauth:token-type:refresh_token"
    );
    let rt = with_refresh["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let refresh = |rt: String| {
        let s = &s;
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ];
            s.token_request("demo", backend, &form)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(refresh(rt.clone()).await, 200);
    let (_, events) = s.admin_get(&t, "/demo/events?type=TOKEN_EXCHANGE").await;
    assert_eq!(events.as_array().map(Vec::len), Some(3));
    assert_eq!(events[0]["details"]["subject_token_client_id"], "app");
    // The exchanged token lives and dies with alice's session.
    assert_eq!(s.userinfo("demo", &narrowed).await.status(), 200);
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/logout",
            s.base
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[(
            "refresh_token",
            alice["refresh_token"].as_str().expect("rt"),
        )])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(s.userinfo("demo", &narrowed).await.status(), 401);
    assert_eq!(refresh(rt).await, 400, "its own session ended with alice's");
}

/// Pushed authorization requests (RFC 9126) at Keycloak's path: the client
/// pushes its request authenticated, the browser carries a one-time
/// `request_uri`, the login runs on the pushed parameters; a second use,
/// another client's use, an unregistered redirect URI and, for a client
/// that requires PAR, a plain request are refused.
#[tokio::test]
async fn pushed_authorization_requests_carry_the_login() {
    let s = start().await;
    let t = s.demo_realm().await;
    let d = s.discovery("demo").await;
    let par = d["pushed_authorization_request_endpoint"]
        .as_str()
        .expect("advertised")
        .to_owned();
    assert_eq!(
        par,
        format!(
            "{}/realms/demo/protocol/openid-connect/ext/par/request",
            s.base
        )
    );
    let push = |redirect: &'static str| {
        let (s, par) = (&s, par.clone());
        async move {
            s.http
                .post(par)
                .basic_auth("app", Some("app-secret"))
                .form(&[
                    ("response_type", "code"),
                    ("redirect_uri", redirect),
                    ("scope", "openid"),
                    ("state", "pushed-state"),
                ])
                .send()
                .await
                .expect("send")
        }
    };
    let r = push("http://127.0.0.1/cb").await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let pushed: Value = r.json().await.expect("json");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().expect("uri").to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let auth = |client: &'static str, uri: String| {
        let s = &s;
        async move {
            s.http
                .get(format!(
                    "{}/realms/demo/protocol/openid-connect/auth",
                    s.base
                ))
                .query(&[("client_id", client), ("request_uri", uri.as_str())])
                .send()
                .await
                .expect("auth")
        }
    };
    // Another client cannot use it, and that try spends it.
    assert_eq!(auth("spa", request_uri.clone()).await.status(), 400);
    let r = push("http://127.0.0.1/cb").await;
    let request_uri = r.json::<Value>().await.expect("json")["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let done = s.log_in_alice(auth("app", request_uri.clone()).await).await;
    assert_eq!(done.status(), 302);
    let loc = done.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with("http://127.0.0.1/cb?"), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("pushed-state"));
    let code = query_param(&loc, "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    assert!(
        tokens["id_token"].is_string(),
        "openid came from the pushed request"
    );
    // Single use.
    assert_eq!(auth("app", request_uri).await.status(), 400);
    // Unregistered redirect URI, unauthenticated push: refused.
    assert_eq!(push("https://evil.example/cb").await.status(), 400);
    let r = s
        .http
        .post(&par)
        .form(&[
            ("client_id", "app"),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // A client that requires PAR starts no plain login.
    s.edit_client(&t, "demo", "app", |rep| {
        rep["attributes"]["require.pushed.authorization.requests"] = json!("true");
    })
    .await;
    let plain = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .expect("auth");
    assert_eq!(plain.status(), 400);
    assert!(
        plain
            .text()
            .await
            .expect("html")
            .contains("Pushed Authorization Request is only allowed.")
    );
}

/// `GET /realms/{realm}`, Keycloak's published realm: its public key
/// verifies the realm's tokens offline (what adapters and python-keycloak's
/// `public_key()` use), also when the realm signs with another algorithm
/// (an RS256 key is made for it, as Keycloak's fallback); an unknown realm
/// is a 404.
#[tokio::test]
async fn the_published_realm_gives_its_public_key() {
    let s = start().await;
    let t = s.demo_realm().await;
    let info = s.get_json("/realms/demo").await;
    assert_eq!(info["realm"], "demo");
    assert_eq!(
        info["token-service"],
        format!("{}/realms/demo/protocol/openid-connect", s.base)
    );
    assert_eq!(
        info["account-service"],
        format!("{}/realms/demo/account", s.base)
    );
    assert_eq!(info["tokens-not-before"], 0);
    let key = gatehouse_jose::verify::KeySet::from_certificate(
        info["public_key"].as_str().expect("public key"),
    )
    .expect("a public key");
    let rules = gatehouse_jose::verify::Rules::for_issuer(&format!("{}/realms/demo", s.base));
    let tok = s.alice_tokens(None).await;
    let at = tok["access_token"].as_str().expect("at");
    assert_eq!(key.verify(at, &rules).expect("verifies")["azp"], "app");
    // A realm signing ES256 still publishes an RS256 public key.
    let (_, mut realm) = s.admin_get(&t, "/demo").await;
    realm["defaultSignatureAlgorithm"] = json!("ES256");
    assert_eq!(s.admin_put(&t, "/demo", Some(&realm)).await, 204);
    let again = s.get_json("/realms/demo").await;
    assert!(again["public_key"].as_str().is_some_and(|k| !k.is_empty()));
    let r = s
        .http
        .get(format!("{}/realms/nowhere", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

/// The whole `Set-Cookie` header `r` sends for cookie `name`.
fn set_cookie_line(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// Keycloak's "Remember me": offered where the realm's `rememberMe` is
/// on; ticked, the session takes the realm's remember-me timeouts and its
/// cookie outlives the browser, and the next login page knows the user;
/// unticked (or not offered), the cookie ends with the browser.
#[tokio::test]
async fn remember_me_keeps_the_session_past_the_browser() {
    let s = start().await;
    let t = s.demo_realm().await;
    let auth = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
    let params = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
    ];
    let log_in = |cookie: Option<String>, remember: bool| {
        let (http, auth) = (s.http.clone(), auth.clone());
        let s = &s;
        async move {
            let mut r = http.get(&auth).query(&params);
            if let Some(c) = cookie {
                r = r.header("cookie", c);
            }
            let first = r.send().await.expect("auth");
            let page = LoginPage::read(s, first).await;
            let mut fields = vec![("username", "alice"), ("password", "alice-pw")];
            if remember {
                fields.push(("rememberMe", "on"));
            }
            page.post(&fields).await
        }
    };
    // Not offered: the box is absent and a posted one does nothing.
    let html = s
        .http
        .get(&auth)
        .query(&params)
        .send()
        .await
        .expect("auth")
        .text()
        .await
        .expect("html");
    assert!(!html.contains("rememberMe"));
    let r = log_in(None, true).await;
    assert_eq!(r.status(), 302);
    assert!(!set_cookie_line(&r, "GATEHOUSE_IDENTITY").contains("Max-Age"));

    assert_eq!(
        s.admin_put(
            &t,
            "/demo",
            Some(&serde_json::json!({"rememberMe": true,
                "ssoSessionIdleTimeoutRememberMe": 7200, "ssoSessionMaxLifespanRememberMe": 86400}))
        )
        .await,
        204
    );
    // Unticked: a browser-session cookie, the realm's 30 minutes idle.
    let r = log_in(None, false).await;
    assert_eq!(r.status(), 302);
    let identity = set_cookie_line(&r, "GATEHOUSE_IDENTITY");
    assert!(!identity.contains("Max-Age"), "{identity}");
    assert!(set_cookie_line(&r, "GATEHOUSE_REMEMBER_ME").contains("Max-Age=0"));
    let code = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    let rt = claims(tokens["refresh_token"].as_str().expect("rt"));
    assert_eq!(
        rt["exp"].as_i64().expect("exp") - rt["iat"].as_i64().expect("iat"),
        1800
    );

    // Ticked: the remember-me timeouts, a lasting cookie, the username kept.
    let r = log_in(None, true).await;
    assert_eq!(r.status(), 302);
    let identity = set_cookie_line(&r, "GATEHOUSE_IDENTITY");
    assert!(identity.contains("Max-Age=86400"), "{identity}");
    let remembered = set_cookie(&r, "GATEHOUSE_REMEMBER_ME");
    assert_eq!(remembered, "GATEHOUSE_REMEMBER_ME=username:alice");
    let code = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    let rt = claims(tokens["refresh_token"].as_str().expect("rt"));
    assert_eq!(
        rt["exp"].as_i64().expect("exp") - rt["iat"].as_i64().expect("iat"),
        7200
    );
    let refreshed: serde_json::Value = s
        .refresh(
            "demo",
            ("app", "app-secret"),
            tokens["refresh_token"].as_str().expect("rt"),
        )
        .await
        .json()
        .await
        .expect("json");
    let rt = claims(refreshed["refresh_token"].as_str().expect("rt"));
    assert_eq!(
        rt["exp"].as_i64().expect("exp") - rt["iat"].as_i64().expect("iat"),
        7200
    );
    let (_, ev) = s.admin_get(&t, "/demo/events?type=LOGIN&max=1").await;
    assert_eq!(ev[0]["details"]["remember_me"], "true");
    // The next login page knows who it is, box ticked.
    let html = s
        .http
        .get(&auth)
        .query(&params)
        .header("cookie", &remembered)
        .send()
        .await
        .expect("auth")
        .text()
        .await
        .expect("html");
    assert!(html.contains("value=\"alice\""), "{html}");
    assert!(
        html.contains("name=\"rememberMe\" type=\"checkbox\" style=\"width:auto\" checked"),
        "{html}"
    );
}

/// Guesses sent side by side get no more tries than the realm allows:
/// one user's checks take turns, each seeing the failures recorded before
/// it (Keycloak's CVE-2024-4629), while right passwords sent side by side
/// all log in (where Keycloak now fails all but one).
#[tokio::test]
async fn concurrent_guesses_get_no_more_tries_than_the_failure_factor() {
    let s = start().await;
    let t = s.demo_realm().await;
    let settings = serde_json::json!({"bruteForceProtected": true, "failureFactor": 3,
        "waitIncrementSeconds": 60, "quickLoginCheckMilliSeconds": 0});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    let alice = s.user_id(&t, "demo", "alice").await;
    let path = format!("/demo/attack-detection/brute-force/users/{alice}");
    let token_url = s.token_url("demo");
    let side_by_side = |pw: &'static str, n: usize| {
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (http, url) = (s.http.clone(), token_url.clone());
            all.spawn(async move {
                http.post(url)
                    .form(&[
                        ("grant_type", "password"),
                        ("client_id", "app"),
                        ("client_secret", "app-secret"),
                        ("username", "alice"),
                        ("password", pw),
                    ])
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            });
        }
        all.join_all()
    };
    assert_eq!(side_by_side("alice-pw", 6).await, vec![200; 6]);
    assert_eq!(side_by_side("guess", 12).await, vec![401; 12]);
    let (_, st) = s.admin_get(&t, &path).await;
    assert_eq!(
        (st["numFailures"].as_i64(), st["disabled"].as_bool()),
        (Some(3), Some(true)),
        "{st}"
    );
    let (_, ev) = s
        .admin_get(&t, "/demo/events?type=LOGIN_ERROR&max=100")
        .await;
    let errors: Vec<&str> = ev
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["error"].as_str())
        .collect();
    assert_eq!(
        errors
            .iter()
            .filter(|e| **e == "invalid_user_credentials")
            .count(),
        3,
        "{errors:?}"
    );
}

/// Keycloak's quick-login check: a failed login within
/// `quickLoginCheckMilliSeconds` (1000) of the previous one locks the user
/// for `minimumQuickLoginWaitSeconds` (60), long before `failureFactor`;
/// failures further apart do not.
#[tokio::test]
async fn quick_failures_lock_the_user_for_keycloaks_minimum_wait() {
    let s = start().await;
    let t = s.demo_realm().await;
    let settings = serde_json::json!({"bruteForceProtected": true, "failureFactor": 30});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(
        (
            realm["quickLoginCheckMilliSeconds"].as_i64(),
            realm["minimumQuickLoginWaitSeconds"].as_i64()
        ),
        (Some(1000), Some(60)),
        "Keycloak's defaults"
    );
    let alice = s.user_id(&t, "demo", "alice").await;
    let path = format!("/demo/attack-detection/brute-force/users/{alice}");
    let grant =
        |pw: &'static str| s.password_grant("demo", "app", Some("app-secret"), "alice", pw, None);
    // Failures more than a second apart: counted, nobody locked.
    assert_eq!(grant("bad").await.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(grant("bad").await.status(), 401);
    let (_, st) = s.admin_get(&t, &path).await;
    assert_eq!(
        (st["numFailures"].as_i64(), st["disabled"].as_bool()),
        (Some(2), Some(false)),
        "{st}"
    );
    assert_eq!(grant("alice-pw").await.status(), 200);
    // Two within a second: locked for a minute, the right password too.
    assert_eq!(grant("bad").await.status(), 401);
    assert_eq!(grant("bad").await.status(), 401);
    let r = grant("alice-pw").await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error_description"], "Invalid user credentials");
    let (_, st) = s.admin_get(&t, &path).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let until = st["failedLoginNotBefore"].as_i64().unwrap_or(0);
    assert_eq!(st["disabled"], true, "{st}");
    assert!((now + 55..=now + 61).contains(&until), "{st}");
    let (_, ev) = s.admin_get(&t, "/demo/events?type=LOGIN_ERROR&max=1").await;
    assert_eq!(ev[0]["error"], "user_temporarily_disabled", "{ev}");
    // The admin's unlock lifts it.
    assert_eq!(s.admin_delete(&t, &path).await, 204);
    assert_eq!(grant("alice-pw").await.status(), 200);
    // With the realm's own figures: 0 s of wait switches the check off.
    let settings = serde_json::json!({"minimumQuickLoginWaitSeconds": 0});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    assert_eq!(grant("bad").await.status(), 401);
    assert_eq!(grant("bad").await.status(), 401);
    assert_eq!(grant("alice-pw").await.status(), 200);
}

/// Keycloak's permanent lockout: with `permanentLockout` the account is
/// disabled once the failures reach `failureFactor` (with
/// `maxTemporaryLockouts`, after that many temporary lockouts), its
/// tokens stop, even the right password gets the generic answer; clearing
/// its failures or enabling it lifts the lockout.
#[tokio::test]
async fn permanent_lockout_disables_the_account_until_an_admin_lifts_it() {
    let s = start().await;
    let t = s.demo_realm().await;
    // (The quick-login check is off: this test times the failure factor's
    // one-second wait, which a quick second failure would stretch to 60 s.)
    let settings = serde_json::json!({"bruteForceProtected": true, "failureFactor": 2,
        "waitIncrementSeconds": 1, "permanentLockout": true, "quickLoginCheckMilliSeconds": 0});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(
        (
            realm["permanentLockout"].clone(),
            realm["maxTemporaryLockouts"].clone()
        ),
        (serde_json::json!(true), serde_json::json!(0))
    );
    let alice = s.user_id(&t, "demo", "alice").await;
    let grant =
        |pw: &'static str| s.password_grant("demo", "app", Some("app-secret"), "alice", pw, None);
    let good = grant("alice-pw").await;
    assert_eq!(good.status(), 200);
    let token: serde_json::Value = good.json().await.expect("json");
    let access = token["access_token"].as_str().expect("at").to_owned();
    for _ in 0..2 {
        assert_eq!(grant("bad").await.status(), 401);
    }
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["enabled"], false);
    assert_eq!(
        u["attributes"]["disabled_reason"],
        serde_json::json!(["permanentLockout"])
    );
    let r = grant("alice-pw").await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["error_description"], "Invalid user credentials",
        "the generic answer"
    );
    assert_eq!(
        s.userinfo("demo", &access).await.status(),
        401,
        "her tokens stop"
    );
    let path = format!("/demo/attack-detection/brute-force/users/{alice}");
    assert_eq!(s.admin_get(&t, &path).await.1["disabled"], true);
    let (_, ev) = s
        .admin_get(&t, "/demo/events?type=USER_DISABLED_BY_PERMANENT_LOCKOUT")
        .await;
    assert_eq!(ev.as_array().map(Vec::len), Some(1));
    // Cleared by the admin: enabled again, the mark gone.
    assert_eq!(s.admin_delete(&t, &path).await, 204);
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["enabled"], true);
    assert!(u["attributes"].get("disabled_reason").is_none(), "{u}");
    assert_eq!(grant("alice-pw").await.status(), 200);

    // With maxTemporaryLockouts 1: one temporary lockout first (the wait
    // passes), the second makes it permanent; enabling the user lifts it.
    let settings = serde_json::json!({"maxTemporaryLockouts": 1});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    for _ in 0..2 {
        grant("bad").await;
    }
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["enabled"], true, "only locked for a while");
    // (A try while locked is refused uncounted: each waits out the lock.)
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        grant("bad").await;
    }
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["enabled"], false, "locked for good");
    assert_eq!(
        s.admin_put(
            &t,
            &format!("/demo/users/{alice}"),
            Some(&serde_json::json!({"enabled": true}))
        )
        .await,
        204
    );
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert!(u["attributes"].get("disabled_reason").is_none(), "{u}");
    assert_eq!(
        grant("alice-pw").await.status(),
        200,
        "failures cleared too"
    );
}

/// Keycloak's other lifespans, read from the realm as a Keycloak export
/// or the admin API sets them: `accessCodeLifespan`, client-session
/// timeouts (realm `clientSession*`, client `client.session.*`, never
/// beyond the SSO session's), and the offline session cap.
#[tokio::test]
async fn keycloak_lifespans_shape_codes_and_sessions() {
    let s = start().await;
    let t = s.demo_realm().await;
    let (_, realm) = s.admin_get(&t, "/demo").await;
    for (k, v) in [
        ("accessCodeLifespan", 60),
        ("accessCodeLifespanLogin", 1800),
        ("accessCodeLifespanUserAction", 300),
        ("accessTokenLifespanForImplicitFlow", 900),
        ("clientSessionIdleTimeout", 0),
        ("offlineSessionMaxLifespan", 5_184_000),
    ] {
        assert_eq!(realm[k], v, "{k}");
    }
    assert_eq!(realm["offlineSessionMaxLifespanEnabled"], false);
    let lifespan = |rt: &serde_json::Value| {
        let c = claims(rt["refresh_token"].as_str().expect("rt"));
        (
            c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
            c,
        )
    };
    let grant = |scope: Option<&'static str>| {
        s.password_tokens(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            scope,
        )
    };
    assert_eq!(lifespan(&grant(None).await).0, 1800, "the SSO idle timeout");
    // The realm's client-session idle timeout, then the client's own.
    let settings = serde_json::json!({"clientSessionIdleTimeout": 1200,
        "offlineSessionMaxLifespanEnabled": true, "offlineSessionMaxLifespan": 1000});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    assert_eq!(lifespan(&grant(None).await).0, 1200);
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["client.session.idle.timeout"] = serde_json::json!("600");
    })
    .await;
    assert_eq!(lifespan(&grant(None).await).0, 600);
    // Never beyond the SSO session's.
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["client.session.idle.timeout"] = serde_json::json!("99999");
    })
    .await;
    assert_eq!(lifespan(&grant(None).await).0, 1800);
    // Offline: the idle timeout (30 days) capped by the session's maximum.
    let (secs, offline) = lifespan(&grant(Some("offline_access")).await);
    assert_eq!(offline["typ"], "Offline");
    assert!((999..=1000).contains(&secs), "{secs}");

    // A code outlives accessCodeLifespan by nothing.
    let settings = serde_json::json!({"accessCodeLifespan": 1});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    let first = s.app_login_page().await;
    let r = s.log_in_alice(first).await;
    let code = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    // The required actions of a login must be done within
    // accessCodeLifespanUserAction.
    let settings = serde_json::json!({"accessCodeLifespanUserAction": 1});
    assert_eq!(s.admin_put(&t, "/demo", Some(&settings)).await, 204);
    let alice = s.user_id(&t, "demo", "alice").await;
    s.reset_password(&t, "demo", &alice, "alice-pw", true).await;
    let page = LoginPage::read(&s, s.app_login_page().await).await;
    let r = page
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert!(r.text().await.expect("html").contains("password-new"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = page
        .post(&[
            ("password-new", "late-pw-1"),
            ("password-confirm", "late-pw-1"),
        ])
        .await;
    assert!(r.text().await.expect("html").contains("timed out"));
}

/// Keycloak's password policy where passwords are chosen: the admin's
/// reset (Keycloak's `{"error", "error_description"}` 400) and user
/// creation ("Password policy not met", nothing created), the
/// UPDATE_PASSWORD page; `forceExpiredPasswordChange` sends an old
/// password (an imported Keycloak hash from 2023) to the password page.
#[tokio::test]
async fn the_realms_password_policy_holds_where_passwords_are_chosen() {
    use base64::Engine;
    let s = start().await;
    let t = s.demo_realm().await;
    let policy = "length(10) and digits(1) and forceExpiredPasswordChange(30)";
    assert_eq!(
        s.admin_put(
            &t,
            "/demo",
            Some(&serde_json::json!({"passwordPolicy": policy}))
        )
        .await,
        204
    );
    assert_eq!(s.admin_get(&t, "/demo").await.1["passwordPolicy"], policy);
    let alice = s.user_id(&t, "demo", "alice").await;
    let reset =
        |value: &'static str, temporary: bool| {
            s.http
            .put(format!("{}/admin/realms/demo/users/{alice}/reset-password", s.base))
            .bearer_auth(&t)
            .json(&serde_json::json!({"type": "password", "value": value, "temporary": temporary}))
            .send()
        };
    let r = reset("short1", false).await.expect("put");
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.expect("json");
    assert_eq!(e["error"], "invalidPasswordMinLengthMessage");
    assert_eq!(
        e["error_description"],
        "Invalid password: minimum length 10."
    );
    let r = reset("no-digits-here", false).await.expect("put");
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["error"],
        "invalidPasswordMinDigitsMessage"
    );
    let (st, _) = s
        .admin_post(
            &t,
            "/demo/users",
            &serde_json::json!({"username": "weak", "enabled": true,
            "credentials": [{"type": "password", "value": "weak"}]}),
        )
        .await;
    assert_eq!(st, 400);
    let (_, found) = s
        .admin_get(&t, "/demo/users?username=weak&exact=true")
        .await;
    assert_eq!(found, serde_json::json!([]), "nothing created");

    // A temporary password that meets it; the new one must too.
    assert_eq!(
        reset("temporary-pw-1", true).await.expect("put").status(),
        204
    );
    let first = s.app_login_page().await;
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "temporary-pw-1")])
        .await;
    let html = r.text().await.expect("html");
    assert!(html.contains("name=\"password-new\""), "{html}");
    let r = page
        .post(&[
            ("password-new", "nodigitsatall"),
            ("password-confirm", "nodigitsatall"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Invalid password: must contain at least 1 numerical digits."),
        "{html}"
    );
    let r = page
        .post(&[
            ("password-new", "now-with-1-digit"),
            ("password-confirm", "now-with-1-digit"),
        ])
        .await;
    assert_eq!(r.status(), 302);

    // An imported password from 2023 has expired under the 30-day rule.
    let salt = b"saltsaltsaltsalt";
    let mut dk = [0u8; 64];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(1000).expect("nz"),
        salt,
        b"old-password-1",
        &mut dk,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let (st, _) = s
        .admin_post(&t, "/demo/users", &serde_json::json!({"username": "olduser", "enabled": true,
            "credentials": [{"type": "password", "createdDate": 1_700_000_000_000_i64,
                "secretData": serde_json::json!({"value": b64.encode(dk), "salt": b64.encode(salt), "additionalParameters": {}}).to_string(),
                "credentialData": serde_json::json!({"hashIterations": 1000, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}).to_string()}]}))
        .await;
    assert_eq!(st, 201);
    let r = s
        .password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "olduser",
            "old-password-1",
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["error_description"],
        "Account is not fully set up"
    );
    let old = s.user_id(&t, "demo", "olduser").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{old}")).await;
    assert_eq!(u["requiredActions"], serde_json::json!(["UPDATE_PASSWORD"]));
}

/// Keycloak's `hashAlgorithm` and `hashIterations` policies: new passwords
/// are stored in Keycloak's PBKDF2 shape (checked here by deriving the hash
/// again), kept while they match the policy, and rehashed at the next
/// login once it changes; an unknown algorithm refuses passwords.
#[tokio::test]
async fn hash_algorithm_policy_chooses_how_passwords_are_stored() {
    use base64::Engine;
    let s = start().await;
    let t = s.demo_realm().await;
    let alice = s.user_id(&t, "demo", "alice").await;
    let set_policy = |p: &'static str| {
        let t = t.clone();
        let s = &s;
        async move {
            let body = serde_json::json!({ "passwordPolicy": p });
            assert_eq!(s.admin_put(&t, "/demo", Some(&body)).await, 204);
        }
    };
    let stored = || async {
        let user = s.exported_user("demo", "alice").await;
        let c = user["credentials"]
            .as_array()
            .expect("credentials")
            .iter()
            .find(|c| c["type"] == "password")
            .expect("password")
            .clone();
        let data = |k: &str| -> serde_json::Value {
            serde_json::from_str(c[k].as_str().expect("data")).expect("json")
        };
        (data("credentialData"), data("secretData"))
    };
    let login =
        |pw: &'static str| s.password_grant("demo", "app", Some("app-secret"), "alice", pw, None);
    set_policy("hashAlgorithm(pbkdf2-sha512) and hashIterations(1000)").await;
    s.reset_password(&t, "demo", &alice, "pbkdf2-pw-1", false)
        .await;
    let (cd, sd) = stored().await;
    assert_eq!(
        (cd["algorithm"].as_str(), cd["hashIterations"].as_u64()),
        (Some("pbkdf2-sha512"), Some(1000)),
        "{cd}"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = b64
        .decode(sd["value"].as_str().expect("value"))
        .expect("b64");
    let salt = b64.decode(sd["salt"].as_str().expect("salt")).expect("b64");
    let mut expected = [0u8; 64];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
        std::num::NonZeroU32::new(1000).expect("nz"),
        &salt,
        b"pbkdf2-pw-1",
        &mut expected,
    );
    assert_eq!(value, expected.to_vec(), "PBKDF2-HMAC-SHA512, 512 bits");
    assert_eq!(login("pbkdf2-pw-1").await.status(), 200);
    assert_eq!(stored().await.1, sd, "kept: it matches the policy");
    // More iterations: the next login rehashes.
    set_policy("hashAlgorithm(pbkdf2-sha512) and hashIterations(2000)").await;
    assert_eq!(login("pbkdf2-pw-1").await.status(), 200);
    assert_eq!(stored().await.0["hashIterations"], 2000);
    // Keycloak's default algorithm again: back to argon2 at the next login.
    set_policy("").await;
    assert_eq!(login("pbkdf2-pw-1").await.status(), 200);
    let (cd, _) = stored().await;
    assert_eq!(cd["algorithm"], "argon2", "{cd}");
    assert_eq!(login("pbkdf2-pw-1").await.status(), 200);
    // An algorithm Keycloak has no provider for refuses new passwords.
    set_policy("hashAlgorithm(md5)").await;
    let r = s
        .reset_password_answer(&t, ("demo", &alice), "md5-pw", false)
        .await;
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        e["error_description"],
        "Invalid config for hashAlgorithm: password hash provider not found"
    );
}

/// Keycloak's `passwordHistory(3)`: the last three passwords (the current
/// one among them) cannot be chosen again, from the admin's reset or the
/// UPDATE_PASSWORD page; the replaced ones are kept as Keycloak's
/// `password-history` credentials, which export writes and import reads,
/// and which the admin's credential listing leaves out.
#[tokio::test]
async fn password_history_refuses_the_last_passwords() {
    let s = start().await;
    let t = s.demo_realm().await;
    let policy = serde_json::json!({"passwordPolicy": "length(8) and passwordHistory(3)"});
    assert_eq!(s.admin_put(&t, "/demo", Some(&policy)).await, 204);
    let alice = s.user_id(&t, "demo", "alice").await;
    let reset = |value: &'static str| s.reset_password_answer(&t, ("demo", &alice), value, false);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(reset("alice-pw").await), 400, "the current one");
    assert_eq!(status(reset("second-pw-2").await), 204);
    assert_eq!(status(reset("third-pw-3").await), 204);
    let r = reset("alice-pw").await;
    assert_eq!(r.status(), 400, "two passwords ago");
    let e: serde_json::Value = r.json().await.expect("json");
    assert_eq!(e["error"], "invalidPasswordHistoryMessage");
    assert_eq!(
        e["error_description"],
        "Invalid password: must not be equal to any of last 3 passwords."
    );
    assert_eq!(status(reset("fourth-pw-4").await), 204);
    assert_eq!(status(reset("alice-pw").await), 204, "four ago: allowed");
    let (_, creds) = s
        .admin_get(&t, &format!("/demo/users/{alice}/credentials"))
        .await;
    assert_eq!(creds.as_array().map(Vec::len), Some(1), "{creds}");
    // Export carries the kept ones; an import keeps enforcing them.
    let user = s.exported_user("demo", "alice").await;
    let kinds: Vec<&str> = user["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "password-history").count(),
        2,
        "{kinds:?}"
    );
    let mut copy = user.clone();
    copy.as_object_mut().expect("user").remove("id");
    copy["username"] = serde_json::json!("alice-copy");
    copy["email"] = serde_json::json!("copy@example.com");
    for c in copy["credentials"].as_array_mut().expect("credentials") {
        c.as_object_mut().expect("credential").remove("id");
    }
    let (st, _) = s.admin_post(&t, "/demo/users", &copy).await;
    assert_eq!(st, 201);
    let copy_id = s.user_id(&t, "demo", "alice-copy").await;
    let r = s
        .reset_password_answer(&t, ("demo", &copy_id), "fourth-pw-4", false)
        .await;
    assert_eq!(r.status(), 400, "the copy's history came with it");
}

/// OIDC Core §5.5 through Keycloak's "Claims parameter Token" mapper: a
/// client with the mapper gets the standard claims its `claims` parameter
/// asks for as essential, in the ID token or userinfo as asked, for the
/// whole session (refreshes too), though the granted scopes name none.
#[tokio::test]
async fn the_claims_parameter_asks_for_essential_claims() {
    let s = start().await;
    let t = s.demo_realm().await;
    assert_eq!(
        s.discovery("demo").await["claims_parameter_supported"],
        true
    );
    let app = s.client_uuid(&t, "demo", "app").await;
    let (_, scopes) = s.admin_get(&t, "/demo/client-scopes").await;
    for name in ["profile", "email"] {
        let id = scopes
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name))
            .and_then(|c| c["id"].as_str())
            .expect("scope")
            .to_owned();
        let path = format!("/demo/clients/{app}/default-client-scopes/{id}");
        assert_eq!(s.admin_delete(&t, &path).await, 204);
    }
    let mapper = json!({"name": "claims parameter", "protocol": "openid-connect",
        "protocolMapper": "oidc-claims-param-token-mapper",
        "config": {"id.token.claim": "true", "userinfo.token.claim": "true"}});
    let path = format!("/demo/clients/{app}/protocol-mappers/models");
    assert_eq!(s.admin_post(&t, &path, &mapper).await.0, 201);

    let login = |claims: Option<&'static str>| {
        let s = &s;
        async move {
            let mut q = vec![
                ("response_type", "code"),
                ("client_id", "app"),
                ("redirect_uri", "http://127.0.0.1/cb"),
                ("scope", "openid"),
            ];
            q.extend(claims.map(|c| ("claims", c)));
            let auth = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
            let first = s.http.get(auth).query(&q).send().await.expect("auth");
            let done = s.log_in_alice(first).await;
            let loc = done.headers()["location"].to_str().expect("loc").to_owned();
            let code = query_param(&loc, "code").expect("code");
            s.redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
                .await
        }
    };
    let asked = r#"{"id_token": {"email": {"essential": true}, "given_name": null,
        "family_name": {"essential": "yes"}},
        "userinfo": {"given_name": {"essential": true}, "email": {"essential": false}}}"#;
    let tokens = login(Some(asked)).await;
    let id = claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["email"], "alice@example.com");
    for absent in ["given_name", "family_name", "name", "preferred_username"] {
        assert!(id.get(absent).is_none(), "{absent} in {id}");
    }
    let at = tokens["access_token"].as_str().expect("at");
    assert!(
        claims(at).get("email").is_none(),
        "never in the access token"
    );
    let info: Value = s.userinfo("demo", at).await.json().await.expect("json");
    assert_eq!(info["given_name"], "Alice");
    assert!(info.get("email").is_none(), "not essential: {info}");
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let again: Value = s
        .refresh("demo", ("app", "app-secret"), rt)
        .await
        .json()
        .await
        .expect("json");
    let id = claims(again["id_token"].as_str().expect("id token"));
    assert_eq!(id["email"], "alice@example.com", "kept by the session");

    // Without the parameter, or with one that is not a JSON object: none.
    for claims_param in [None, Some("{\"id_token\": "), Some("[1]")] {
        let tokens = login(claims_param).await;
        let id = claims(tokens["id_token"].as_str().expect("id token"));
        assert!(id.get("email").is_none(), "{claims_param:?}: {id}");
    }
}

/// OpenID Connect requires `redirect_uri` (Core §3.1.2.1) where OAuth 2.0
/// lets a client with one registered URI leave it out: an `openid`
/// request without it is an error page (never a redirect), a plain OAuth
/// one goes to the registered URI, as Keycloak decides.
#[tokio::test]
async fn an_openid_request_names_its_redirect_uri() {
    let s = start().await;
    s.demo_realm().await;
    let auth = |scope: Option<&'static str>| {
        let s = &s;
        async move {
            let mut q = vec![("response_type", "code"), ("client_id", "app")];
            q.extend(scope.map(|v| ("scope", v)));
            let url = format!("{}/realms/demo/protocol/openid-connect/auth", s.base);
            s.http.get(url).query(&q).send().await.expect("auth")
        }
    };
    for scope in ["openid", "profile openid email"] {
        let r = auth(Some(scope)).await;
        assert_eq!(r.status(), 400, "{scope}");
        assert!(r.headers().get("location").is_none(), "{scope}");
        let page = r.text().await.expect("html");
        assert!(page.contains("Invalid parameter: redirect_uri"), "{page}");
    }
    for scope in [None, Some("profile")] {
        let done = s.log_in_alice(auth(scope).await).await;
        let loc = done.headers()["location"].to_str().expect("loc");
        assert!(
            loc.starts_with("http://127.0.0.1/cb?code="),
            "{scope:?}: {loc}"
        );
    }
    // `openidx` is not `openid`: the registered URI hears of the bad scope.
    let r = auth(Some("openidx")).await;
    let loc = r.headers()["location"].to_str().expect("loc");
    assert!(
        loc.starts_with("http://127.0.0.1/cb?error=invalid_scope"),
        "{loc}"
    );
}
