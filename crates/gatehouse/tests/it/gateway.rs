//! The gateway end to end: a real upstream, a foreign issuer and
//! Gatehouse's own identity provider.

use crate::peers::{issuer, upstream};
use crate::support::{Server, start, start_with};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server whose gateway runs `foreign_config` against a new foreign
/// issuer and upstream.
async fn foreign_gateway() -> (Server, crate::peers::Issuer, crate::peers::Upstream) {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    s.configure(&foreign_config(&s, &iss.url, &up.url))
        .expect("config");
    (s, iss, up)
}

fn foreign_config(s: &Server, issuer: &str, upstream: &str) -> String {
    format!(
        r#"
[gateway]
audit_log = "{audit}"

[authorizers.partner]
type = "jwt"
issuer = "{issuer}"
audiences = ["orders-api"]

[[routes]]
name = "orders"
path = "/orders"
upstream = "{upstream}"
authorizers = ["partner"]
scopes_any = ["orders:read"]

[[routes]]
name = "sales-only"
path = "/sales"
upstream = "{upstream}"
authorizers = ["partner"]
groups_any = ["sales"]
claims = {{ department = ["sales", "support"] }}

[[routes]]
name = "status"
path = "/status"
upstream = "{upstream}"
public = true
strip_prefix = true
"#,
        audit = s.audit_path()
    )
}

#[tokio::test]
async fn every_bad_token_is_401_and_never_forwarded() {
    let (s, iss, up) = foreign_gateway().await;
    let now = gatehouse_core::time::now();
    let good = iss.sign(&iss.claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let kid = iss.key.kid().to_owned();

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        parts[1]
    );
    let hs_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": kid}).to_string()),
        parts[1]
    );
    let hmac_key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        iss.key.public_jwk().to_string().as_bytes(),
    );
    let hs = format!(
        "{hs_input}.{}",
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&hmac_key, hs_input.as_bytes()).as_ref())
    );
    let (stranger, _) =
        gatehouse_jose::keys::SigningKey::generate(gatehouse_jose::keys::Alg::RS256).expect("key");
    let unknown_kid = gatehouse_jose::sign::sign(&stranger, &iss.claims(json!({}))).expect("sign");
    let expired = iss.sign(&iss.claims(json!({"exp": now - 120})));
    let not_yet = iss.sign(&iss.claims(json!({"nbf": now + 600})));
    let wrong_iss = iss.sign(&iss.claims(json!({"iss": "https://evil.example"})));
    let wrong_aud = iss.sign(&iss.claims(json!({"aud": "billing"})));
    let without = |claim: &str| {
        let mut c = iss.claims(json!({}));
        if let Some(o) = c.as_object_mut() {
            o.remove(claim);
        }
        iss.sign(&c)
    };
    let no_aud = without("aud");
    let no_iss = without("iss");
    let iss_list = iss.sign(&iss.claims(json!({"iss": ["https://evil.example", iss.url]})));
    let aud_number = iss.sign(&iss.claims(json!({"aud": 5})));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(iss.claims(json!({"sub": "admin"})).to_string()),
        parts[2]
    );
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    let crit_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD
            .encode(json!({"alg": "RS256", "kid": kid, "crit": ["b64"], "b64": false}).to_string()),
        parts[1]
    );
    let crit = format!(
        "{crit_input}.{}",
        URL_SAFE_NO_PAD.encode(iss.key.sign_raw(crit_input.as_bytes()).expect("sign"))
    );
    let id_token = iss.sign(&iss.claims(json!({"typ": "ID"})));
    let cognito_id = iss.sign(&iss.claims(json!({"token_use": "id"})));
    let logout = gatehouse_jose::sign::sign_typed(
        &iss.key,
        "logout+jwt",
        &iss.claims(json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}})),
    )
    .expect("sign");
    let bad_b64 = "eyJ!!!.@@@.###".to_owned();
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(100 * 1024), parts[2]);
    let cases = [
        ("alg none", none),
        ("HS256 with the public key", hs),
        ("unknown kid", unknown_kid),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong issuer", wrong_iss),
        ("wrong audience", wrong_aud),
        ("no audience", no_aud),
        ("no issuer", no_iss),
        ("issuer as a list holding ours", iss_list),
        ("audience as a number", aud_number),
        ("tampered payload", tampered),
        ("stripped signature", stripped),
        ("unknown critical header", crit),
        ("an ID token", id_token),
        ("a Cognito ID token", cognito_id),
        ("a back-channel logout token", logout),
        ("malformed base64", bad_b64),
        ("100 KB token", huge),
    ];
    for (name, token) in &cases {
        let r = s
            .http
            .get(format!("{}/orders/1", s.gw))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        // 431 is the right answer for a head too large to read.
        assert!(
            status == 401 || (status == 431 && *name == "100 KB token"),
            "{name}: {status}"
        );
        if status == 401 {
            let w = r.headers()["www-authenticate"]
                .to_str()
                .expect("h")
                .to_owned();
            assert!(
                w.starts_with("Bearer ")
                    && w.contains("error=\"invalid_token\"")
                    && w.contains("resource_metadata="),
                "{name}: {w}"
            );
            assert_eq!(
                r.text().await.expect("body"),
                "{\"message\":\"Unauthorized\"}",
                "{name}: generic body"
            );
        }
    }
    // No token at all: 401 without an error code (RFC 6750 §3.1).
    let r = s
        .http
        .get(format!("{}/orders", s.gw))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(
        !r.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .contains("error=")
    );
    // The good token twice, or beside a bad one: which one counts would be
    // a guess (and another hop might guess differently), so neither does.
    for second in [good.as_str(), "garbage"] {
        let r = s
            .http
            .get(format!("{}/orders/1", s.gw))
            .header("authorization", format!("Bearer {good}"))
            .header("authorization", format!("Bearer {second}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "two Authorization headers");
    }
    assert_eq!(up.hits(), 0, "nothing unauthenticated reached the upstream");
    // The good token passes.
    let r = s
        .http
        .get(format!("{}/orders/1", s.gw))
        .bearer_auth(&good)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
    let audit = s.audit().await;
    let reasons: Vec<&str> = audit.iter().filter_map(|l| l["reason"].as_str()).collect();
    for expected in [
        "algorithm not allowed",
        "unknown signing key",
        "token expired",
        "token not yet valid",
        "wrong issuer",
        "wrong audience",
        "bad signature",
        "malformed token",
        "critical header not understood",
        "credential header sent more than once",
        "no credentials",
    ] {
        assert!(
            reasons.contains(&expected),
            "audit should name '{expected}': {reasons:?}"
        );
    }
    let all = serde_json::to_string(&audit).expect("json");
    assert!(!all.contains(&good), "the audit log never holds a token");
}

/// `/status` is public and `/orders` is not: no spelling of a path may
/// route through the first into the second (the upstream resolves dot
/// segments and merges slashes; the gateway must route on what it serves).
#[tokio::test]
async fn dot_segments_and_encodings_cannot_route_around_authorization() {
    let (s, iss, up) = foreign_gateway().await;
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for p in [
        "/status/../orders/1",
        "/status/%2e%2e/orders/1",
        "/status/.%2E/orders/1",
        "/status/./../orders/1",
        "//orders/1",
        "/status/x/../../orders",
        "/%6Frders/1",
    ] {
        let r = raw(&addr, get(p).as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{p}: {r}");
    }
    for p in [
        "/status/..%2Forders/1",
        "/status/..%2forders/1",
        "/status/..%5Corders/1",
        "/status/..;/orders/1",
        "/status/%zz",
        "/status/a%00",
        "/status\\..\\orders",
        "/status/%c0%ae%c0%ae/orders/1",
    ] {
        let r = raw(&addr, get(p).as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 400"), "{p}: {r}");
    }
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
    // Path parameters (`;`) end a segment for matching, as they do for
    // Tomcat: `/orders;x` is under `/orders`, never under a broader public
    // route.
    let mut with_catch_all = foreign_config(&s, &iss.url, &up.url);
    with_catch_all.push_str(&format!(
        "\n[[routes]]\nname = \"everything\"\npath = \"/\"\nupstream = \"{}\"\npublic = true\n",
        up.url
    ));
    s.configure(&with_catch_all).expect("config");
    for p in ["/orders;jsessionid=x/1", "/orders;x", "/orders/1;x"] {
        let r = raw(&addr, get(p).as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{p}: {r}");
    }
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
    // Matching is case-sensitive unless a route says otherwise (for
    // upstreams that ignore case): then `/ORDERS` meets its rules too.
    let r = raw(&addr, get("/ORDERS/1").as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "default: {r}");
    s.configure(&with_catch_all.replace(
        "path = \"/orders\"\n",
        "path = \"/orders\"\ncase_sensitive = false\n",
    ))
    .expect("config");
    for p in ["/ORDERS/1", "/Orders;x/1"] {
        let r = raw(&addr, get(p).as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{p}: {r}");
    }
    assert_eq!(
        up.hits(),
        1,
        "only the case-sensitive default let one through"
    );
    s.configure(&foreign_config(&s, &iss.url, &up.url))
        .expect("config");
    // A public path reaches the upstream in its normal form, query intact.
    let r = raw(&addr, get("/status/a/./b/../c%7E?q=%2e%2e/x").as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(r#""path":"/a/c~""#), "{r}");
    assert!(r.contains(r#""query":"q=%2e%2e/x""#), "{r}");
    let audit = s.audit().await;
    let reasons: Vec<&str> = audit.iter().filter_map(|l| l["reason"].as_str()).collect();
    for expected in [
        "path: encoded slash or backslash",
        "path: dot segment with parameters",
        "path: malformed percent-encoding",
        "path: escapes that are not UTF-8",
    ] {
        assert!(reasons.contains(&expected), "{expected}: {reasons:?}");
    }
}

/// Tokens signed with the issuer's own key whose header or claims are
/// malformed or ambiguous (each a known way past a lax verifier): every
/// one is 401 and none reaches the upstream, while a token made the same
/// way with nothing wrong passes, so the refusals are the defects'.
#[tokio::test]
async fn a_hostile_token_corpus_is_refused() {
    use base64::engine::general_purpose::STANDARD;
    let (s, iss, up) = foreign_gateway().await;
    let kid = iss.key.kid().to_owned();
    let now = gatehouse_core::time::now();
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let claims = iss.claims(json!({})).to_string();
    let body = |extra: &str| {
        let c = claims.trim_end_matches('}');
        format!("{c},{extra}}}")
    };
    // Signs exactly the text given (no re-serialisation, so duplicate
    // members and odd spellings survive).
    let signed = |h: &str, p: &str, engine: &base64::engine::GeneralPurpose| {
        let input = format!("{}.{}", engine.encode(h), engine.encode(p));
        let sig = iss.key.sign_raw(input.as_bytes()).expect("sign");
        format!("{input}.{}", engine.encode(sig))
    };
    let rs = |h: &str, p: &str| signed(h, p, &URL_SAFE_NO_PAD);
    let control = rs(&header, &claims);
    let deep = format!(
        "{},\"deep\":{}{}}}",
        claims.trim_end_matches('}'),
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let padded = {
        let e = &base64::engine::general_purpose::URL_SAFE;
        signed(&header, &claims, e)
    };
    let cases = [
        (
            "lower-case alg",
            rs(&format!(r#"{{"alg":"rs256","kid":"{kid}"}}"#), &claims),
        ),
        (
            "alg None",
            rs(&format!(r#"{{"alg":"None","kid":"{kid}"}}"#), &claims),
        ),
        (
            "PS256 named, RS256 signed",
            rs(&format!(r#"{{"alg":"PS256","kid":"{kid}"}}"#), &claims),
        ),
        (
            "ES256 named on an RSA key",
            rs(&format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#), &claims),
        ),
        (
            "alg twice",
            rs(
                &format!(r#"{{"alg":"none","alg":"RS256","kid":"{kid}"}}"#),
                &claims,
            ),
        ),
        (
            "kid as a list",
            rs(&format!(r#"{{"alg":"RS256","kid":["{kid}"]}}"#), &claims),
        ),
        ("header not an object", rs("[\"RS256\"]", &claims)),
        ("sub twice", rs(&header, &body(r#""sub":"admin""#))),
        (
            "exp twice",
            rs(&header, &body(&format!(r#""exp":{}"#, now + 99_999))),
        ),
        (
            "exp as a string",
            rs(
                &header,
                &body(&format!(r#""exp":"{}""#, now + 300)).replacen(
                    &format!(r#""exp":{}"#, now + 300),
                    r#""x":0"#,
                    1,
                ),
            ),
        ),
        (
            "exp null",
            rs(
                &header,
                &claims.replacen(&format!(r#""exp":{}"#, now + 300), r#""exp":null"#, 1),
            ),
        ),
        (
            "exp 1e30",
            rs(
                &header,
                &claims.replacen(&format!(r#""exp":{}"#, now + 300), r#""exp":1e30"#, 1),
            ),
        ),
        (
            "no exp",
            rs(
                &header,
                &claims.replacen(&format!(r#""exp":{}"#, now + 300), r#""x":0"#, 1),
            ),
        ),
        ("nbf as a string", rs(&header, &body(r#""nbf":"0""#))),
        ("payload a list", rs(&header, "[1]")),
        ("payload a string", rs(&header, "\"x\"")),
        ("5000-deep payload", rs(&header, &deep)),
        (
            "standard base64",
            signed(&header, &format!("{claims}   "), &STANDARD),
        ),
        ("padded base64url", padded),
        ("JWE shape", format!("{control}.AAAA.BBBB")),
        ("space inside", control.replacen('.', ". ", 1)),
    ];
    let call = |token: String| {
        let req = s.http.get(format!("{}/orders/1", s.gw)).bearer_auth(token);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    for (name, token) in cases {
        assert_eq!(call(token).await, 401, "{name}");
    }
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
    assert_eq!(call(control).await, 200, "the same recipe, nothing wrong");
    // The latest expiry an integer can say is the issuer's to sign: a
    // token, not an overflow.
    let far = claims.replacen(
        &format!(r#""exp":{}"#, now + 300),
        r#""exp":9223372036854775807"#,
        1,
    );
    assert_eq!(call(rs(&header, &far)).await, 200, "exp = i64::MAX");
}

/// RFC 7519 lets a NumericDate carry a fraction (PyJWT and panva/jose
/// accept one); such a token is a token, and its fraction moves no
/// instant into the validity window.
#[tokio::test]
async fn fractional_times_in_a_token_are_times() {
    let (s, iss, up) = foreign_gateway().await;
    let now = gatehouse_core::time::now() as f64;
    let call = |claims: Value| {
        let tok = iss.sign(&iss.claims(claims));
        let req = s.http.get(format!("{}/orders", s.gw)).bearer_auth(tok);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(
        call(json!({"exp": now + 300.5, "iat": now - 0.25})).await,
        200
    );
    // Twice: the second answer comes from the token cache's own expiry rule.
    assert_eq!(
        call(json!({"exp": now + 300.5, "iat": now - 0.25})).await,
        200
    );
    assert_eq!(call(json!({"exp": now - 120.5})).await, 401);
    assert_eq!(call(json!({"nbf": now + 600.5})).await, 401);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn identity_reaches_the_upstream_and_forgeries_do_not() {
    let (s, iss, _up) = foreign_gateway().await;
    let tok = iss.sign(&iss.claims(json!({"groups": ["sales", "a,b"], "department": "support"})));
    let r = s
        .http
        .get(format!("{}/sales/report?x=1", s.gw))
        .bearer_auth(&tok)
        .header("x-gatehouse-subject", "forged")
        .header("x-gatehouse-groups", "admins")
        // Underscore spellings: a CGI-style upstream (Rack, PHP-FPM,
        // WSGI) reads them as the gateway's own headers.
        .header("x_gatehouse_groups", "admins")
        .header("x_forwarded_for", "6.6.6.6")
        .header("x-forwarded-for", "10.9.9.9")
        // What would have the upstream serve another path or method than
        // the one authorized.
        .header("x-original-url", "/admin")
        .header("x-http-method-override", "DELETE")
        // Forwarding fields the gateway does not set: links built from
        // them would point where the caller chose.
        .header("x-forwarded-prefix", "/evil")
        .header("x-forwarded-port", "6666")
        .header("x-request-id", "req-123")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let body: Value = r.json().await.expect("json");
    let h = &body["headers"];
    assert_eq!(body["path"], "/sales/report");
    assert_eq!(body["query"], "x=1");
    assert_eq!(h["x-gatehouse-subject"], "user-1");
    assert_eq!(h["x-gatehouse-username"], "carol");
    assert_eq!(h["x-gatehouse-client"], "cli");
    assert_eq!(h["x-gatehouse-groups"], "sales, a%2Cb");
    assert_eq!(h["x-gatehouse-scopes"], "orders:read");
    assert!(
        h.get("authorization").is_none(),
        "the caller's token is not forwarded by default"
    );
    assert!(
        h.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(h["x-forwarded-for"], "10.9.9.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"], "req-123");
    assert_eq!(h["x-forwarded-host"], s.gw.trim_start_matches("http://"));
    assert_ne!(h["host"], h["x-forwarded-host"], "Host names the upstream");
    for k in [
        "x_gatehouse_groups",
        "x_forwarded_for",
        "x-original-url",
        "x-http-method-override",
        "x-forwarded-prefix",
        "x-forwarded-port",
    ] {
        assert!(h.get(k).is_none(), "{k}: {h}");
    }
    // `Connection` naming the gateway's own headers removes the caller's
    // copies only (Traefik's CVE-2024-45410 let it remove Traefik's).
    let r = s
        .http
        .get(format!("{}/sales/report", s.gw))
        .bearer_auth(&tok)
        .header(
            "connection",
            "keep-alive, x-forwarded-for, x-forwarded-proto, x-request-id, x-gatehouse-subject, x-gatehouse-groups",
        )
        .send()
        .await
        .expect("send");
    let named: Value = r.json().await.expect("json");
    let n = &named["headers"];
    assert_eq!(n["x-forwarded-for"], "127.0.0.1", "{n}");
    assert_eq!(n["x-forwarded-proto"], "http", "{n}");
    assert!(
        n["x-request-id"].as_str().is_some_and(|v| !v.is_empty()),
        "{n}"
    );
    assert_eq!(n["x-gatehouse-subject"], "user-1", "{n}");
    assert_eq!(n["x-gatehouse-groups"], "sales, a%2Cb", "{n}");
    // A request with a body is sent by hyper, not written as a raw head:
    // the upstream gets the same forwarding and identity headers.
    let r = s
        .http
        .post(format!("{}/sales/report?x=1", s.gw))
        .bearer_auth(&tok)
        .header("x-gatehouse-subject", "forged")
        .header("x_gatehouse_subject", "forged")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-request-id", "req-124")
        .body("payload")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let posted: Value = r.json().await.expect("json");
    let p = &posted["headers"];
    for k in [
        "x-gatehouse-subject",
        "x-gatehouse-username",
        "x-gatehouse-client",
        "x-gatehouse-groups",
        "x-gatehouse-scopes",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "host",
    ] {
        assert_eq!(p[k], h[k], "{k}");
    }
    assert_eq!(p["x-request-id"], "req-124");
    assert!(p.get("x_gatehouse_subject").is_none(), "{p}");
    // Public route with prefix stripping; forged identity headers removed there too.
    let r = s
        .http
        .get(format!("{}/status/health", s.gw))
        .header("x-gatehouse-subject", "forged")
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["path"], "/health");
    assert!(body["headers"].get("x-gatehouse-subject").is_none());
    // The prefix's own path parameters go with it (Tomcat reads
    // `/status;v=1/health` as `/status/health`).
    for (asked, forwarded) in [("/status;v=1/health", "/health"), ("/status;v=1", "/")] {
        let r = s
            .http
            .get(format!("{}{asked}", s.gw))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{asked}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["path"], forwarded, "{asked}");
    }
}

/// A token read from a named header or cookie is the caller's credential
/// as much as one in `Authorization`: without `forward_token` the upstream
/// never sees it (the caller's other cookies go on), with it the upstream
/// does.
#[tokio::test]
async fn tokens_from_a_named_header_or_cookie_are_not_forwarded() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let config = format!(
        r#"
[gateway]
audit_log = "{a}"

[authorizers.by-cookie]
type = "jwt"
issuer = "{i}"
audiences = ["orders-api"]
token_cookie = "at"

[authorizers.by-header]
type = "jwt"
issuer = "{i}"
audiences = ["orders-api"]
token_header = "x-auth-token"

[[routes]]
name = "cookie"
path = "/cookie"
upstream = "{u}"
authorizers = ["by-cookie"]

[[routes]]
name = "header"
path = "/header"
upstream = "{u}"
authorizers = ["by-header"]

[[routes]]
name = "passed-on"
path = "/passed-on"
upstream = "{u}"
authorizers = ["by-header"]
forward_token = true
"#,
        i = iss.url,
        u = up.url,
        a = s.audit_path()
    );
    s.configure(&config).expect("config");
    let tok = iss.sign(&iss.claims(json!({})));
    let seen = |path: &'static str, name: &'static str, value: String| {
        let s = &s;
        async move {
            let r = s
                .http
                .get(format!("{}{path}", s.gw))
                .header(name, value)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.expect("json")["headers"].clone()
        }
    };
    let h = seen(
        "/cookie",
        "cookie",
        format!("theme=dark; at={tok}; lang=en"),
    )
    .await;
    assert_eq!(h["cookie"], "theme=dark; lang=en", "{h}");
    assert_eq!(h["x-gatehouse-subject"], "user-1");
    let h = seen("/cookie", "cookie", format!("at={tok}")).await;
    assert!(h.get("cookie").is_none(), "{h}");
    let h = seen("/header", "x-auth-token", format!("Bearer {tok}")).await;
    assert!(h.get("x-auth-token").is_none(), "{h}");
    let h = seen("/passed-on", "x-auth-token", tok.clone()).await;
    assert_eq!(h["x-auth-token"], tok.as_str());
    // Another site's POST carries the cookie too (CSRF): not read from it;
    // the page's own POST and another site's GET are.
    let post = |fetch_site: &'static str| {
        s.http
            .post(format!("{}/cookie", s.gw))
            .header("cookie", format!("at={tok}"))
            .header("sec-fetch-site", fetch_site)
            .header("origin", "https://evil.example")
            .body("x")
            .send()
    };
    assert_eq!(post("cross-site").await.expect("send").status(), 401);
    assert_eq!(post("same-origin").await.expect("send").status(), 200);
    let r = s
        .http
        .get(format!("{}/cookie", s.gw))
        .header("cookie", format!("at={tok}"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.audit_reasons(401).await,
        vec![json!("token cookie on a cross-site unsafe request")]
    );
}

#[tokio::test]
async fn authorization_rules_answer_403_and_the_audit_names_the_caller() {
    let (s, iss, up) = foreign_gateway().await;
    let no_scope = iss.sign(&iss.claims(json!({"scope": "profile"})));
    let r = s
        .http
        .get(format!("{}/orders", s.gw))
        .bearer_auth(&no_scope)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let w = r.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .to_owned();
    assert!(
        w.contains("error=\"insufficient_scope\"") && w.contains("scope=\"orders:read\""),
        "{w}"
    );
    let wrong_group = iss.sign(&iss.claims(json!({"groups": ["ops"], "department": "sales"})));
    let r = s
        .http
        .get(format!("{}/sales", s.gw))
        .bearer_auth(&wrong_group)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.expect("t"), "{\"message\":\"Forbidden\"}");
    let wrong_dept = iss.sign(&iss.claims(json!({"department": "finance"})));
    assert_eq!(
        s.http
            .get(format!("{}/sales", s.gw))
            .bearer_auth(&wrong_dept)
            .send()
            .await
            .expect("send")
            .status(),
        403
    );
    assert_eq!(up.hits(), 0);
    let audit = s.audit().await;
    let denies: Vec<&Value> = audit.iter().filter(|l| l["decision"] == "deny").collect();
    assert_eq!(denies.len(), 3);
    for d in &denies {
        assert_eq!(d["username"], "carol");
        assert_eq!(d["client_id"], "cli");
        assert_eq!(d["subject"], "user-1");
    }
    let rules: Vec<&str> = denies.iter().filter_map(|d| d["rule"].as_str()).collect();
    assert_eq!(rules, vec!["scopes_any", "groups_any", "claims.department"]);
}

#[tokio::test]
async fn protected_resource_metadata_and_config_reload() {
    let (s, iss, up) = foreign_gateway().await;
    let m: Value = s
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/orders",
            s.gw
        ))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(m["resource"], format!("{}/orders", s.gw));
    assert_eq!(m["authorization_servers"], json!([iss.url]));
    assert_eq!(m["scopes_supported"], json!(["orders:read"]));
    // A config that leaves a route open by accident is refused; the old one keeps serving.
    let bad = format!(
        "{}\n[[routes]]\nname = \"oops\"\npath = \"/oops\"\nupstream = \"{}\"\n",
        foreign_config(&s, &iss.url, &up.url),
        up.url
    );
    let err = s.configure(&bad).expect_err("refused");
    assert!(
        err.to_string().contains("route 'oops': no authorizer"),
        "{err}"
    );
    assert_eq!(
        s.http
            .get(format!("{}/oops", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    assert_eq!(
        s.http
            .get(format!("{}/status", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    // A typo is refused with its line.
    let typo = foreign_config(&s, &iss.url, &up.url).replace("groups_any", "group_any");
    let err = s.configure(&typo).expect_err("refused");
    assert!(err.to_string().contains("line"), "{err}");
    // A valid change applies.
    let good = format!(
        "{}\n[[routes]]\nname = \"new\"\npath = \"/new\"\nupstream = \"{}\"\npublic = true\n",
        foreign_config(&s, &iss.url, &up.url),
        up.url
    );
    s.configure(&good).expect("applied");
    assert_eq!(
        s.http
            .get(format!("{}/new", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

/// A kept-alive connection that repeats its token skips the cache lookup
/// (the connection's token memo) but not expiry, and not a reload that
/// changes what the authorizer accepts.
#[tokio::test]
async fn a_repeated_token_on_one_connection_still_expires_and_follows_reloads() {
    let (s, iss, up) = foreign_gateway().await;
    // One connection for every request below.
    let one = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let get = |token: String| {
        let one = one.clone();
        let url = format!("{}/orders", s.gw);
        async move {
            one.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    // Valid for two more seconds, counting the 30 s leeway.
    let now = gatehouse_core::time::now();
    let short = iss.sign(&iss.claims(json!({"exp": now - 30 + 2})));
    for _ in 0..3 {
        assert_eq!(get(short.clone()).await, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(get(short).await, 401, "expired on the same connection");

    let token = iss.sign(&iss.claims(json!({})));
    assert_eq!(get(token.clone()).await, 200);
    assert_eq!(get(token.clone()).await, 200);
    let other_audience =
        foreign_config(&s, &iss.url, &up.url).replace("\"orders-api\"", "\"billing-api\"");
    s.configure(&other_audience).expect("applied");
    assert_eq!(
        get(token.clone()).await,
        401,
        "the reloaded authorizer decides"
    );
    s.configure(&foreign_config(&s, &iss.url, &up.url))
        .expect("config");
    assert_eq!(get(token).await, 200);
    assert_eq!(
        s.audit_reasons(401).await,
        [json!("token expired"), json!("wrong audience")]
    );
}

/// What a connection repeats is checked once (the long header values, the
/// token memo, the last valid `Host`), and only what is equal is taken as
/// checked: on one connection, a token of the same length that differs by
/// one character, or by one byte that is not text, is refused, and the
/// valid one accepted again; a second `Host` is refused though the first
/// is the one remembered.
#[tokio::test]
async fn what_a_connection_repeats_stands_only_for_the_same_bytes() {
    let (s, iss, up) = foreign_gateway().await;
    let token = iss.sign(&iss.claims(json!({})));
    let at = token.len() - 10;
    let mut tampered = token.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let mut not_text = token.clone().into_bytes();
    not_text[at] = 0xFF;
    let request = |t: &[u8], extra: &str| {
        let mut r = b"GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
        r.extend_from_slice(t);
        r.extend_from_slice(format!("\r\n{extra}\r\n").as_bytes());
        r
    };
    // Pipelined on one connection, answered in order.
    let mut all = Vec::new();
    for (t, extra) in [
        (token.as_bytes(), ""),
        (&tampered[..], ""),
        (&not_text[..], ""),
        (token.as_bytes(), ""),
        (token.as_bytes(), "Host: x\r\nConnection: close\r\n"),
    ] {
        all.extend(request(t, extra));
    }
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let resp = raw(&addr, &all).await;
    // Answers follow bodies with no line break between them.
    let statuses: Vec<&str> = resp
        .match_indices("HTTP/1.1 ")
        .map(|(i, m)| &resp[i + m.len()..i + m.len() + 3])
        .collect();
    assert_eq!(statuses, ["200", "401", "401", "200", "400"], "{resp}");
    assert_eq!(up.hits(), 2);
}

/// Amazon Cognito's access tokens carry `client_id` and no `aud`; with
/// `client_id_as_audience` (the default for a Cognito user pool issuer)
/// the gateway checks that instead, as AWS API Gateway does, and reads
/// `cognito:groups`, `username` and the `scope` string. A present `aud`
/// is never overridden by `client_id`.
#[tokio::test]
async fn cognito_access_tokens_are_checked_by_client_id() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let config = |flag: bool| {
        format!(
            r#"
[gateway]
audit_log = "{audit}"

[authorizers.pool]
type = "jwt"
issuer = "{issuer}"
audiences = ["app-client"]
client_id_as_audience = {flag}

[[routes]]
name = "ops"
path = "/ops"
upstream = "{upstream}"
authorizers = ["pool"]
groups_any = ["ops"]
scopes_any = ["orders/read"]
"#,
            audit = s.audit_path(),
            issuer = iss.url,
            upstream = up.url
        )
    };
    s.configure(&config(true)).expect("config");
    let cognito = |extra: Value| {
        let mut c = iss.claims(json!({"token_use": "access", "client_id": "app-client",
            "scope": "orders/read openid", "cognito:groups": ["ops"], "username": "dave"}));
        if let Some(o) = c.as_object_mut() {
            for k in ["aud", "groups", "preferred_username", "azp"] {
                o.remove(k);
            }
            for (k, v) in extra.as_object().into_iter().flatten() {
                o.insert(k.clone(), v.clone());
            }
        }
        iss.sign(&c)
    };
    let call = |token: String| {
        let http = s.http.clone();
        let url = format!("{}/ops/run", s.gw);
        async move { http.get(url).bearer_auth(token).send().await.expect("send") }
    };
    let r = call(cognito(json!({}))).await;
    assert_eq!(r.status(), 200);
    let h = r.json::<Value>().await.expect("json")["headers"].clone();
    assert_eq!(h["x-gatehouse-username"], "dave");
    assert_eq!(h["x-gatehouse-client"], "app-client");
    assert_eq!(h["x-gatehouse-groups"], "ops");
    // Amplify sends the token bare, without `Bearer`, as AWS accepts.
    let with_authorization = |value: String| {
        let http = s.http.clone();
        let url = format!("{}/ops/run", s.gw);
        async move {
            let r = http.get(url).header("authorization", value).send().await;
            r.expect("send").status()
        }
    };
    assert_eq!(with_authorization(cognito(json!({}))).await, 200);
    let basic = with_authorization("Basic dTpw".into()).await;
    assert_eq!(basic, 401, "another scheme is no token of ours");
    assert_eq!(
        call(cognito(json!({"client_id": "other"}))).await.status(),
        401
    );
    let wrong_aud = json!({"aud": "other-api"});
    assert_eq!(call(cognito(wrong_aud)).await.status(), 401);
    // Off, `client_id` counts for nothing.
    s.configure(&config(false)).expect("config");
    assert_eq!(call(cognito(json!({}))).await.status(), 401);
    let mut want = vec![json!("no credentials")];
    want.extend(vec![json!("wrong audience"); 3]);
    assert_eq!(s.audit_reasons(401).await, want);
}

#[tokio::test]
async fn reload_under_load_drops_nothing() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let cfg = foreign_config(&s, &iss.url, &up.url);
    s.configure(&cfg).expect("config");
    let tok = iss.sign(&iss.claims(json!({})));
    let mut tasks = vec![];
    for _ in 0..8 {
        let (http, url, tok) = (s.http.clone(), format!("{}/orders/x", s.gw), tok.clone());
        tasks.push(tokio::spawn(async move {
            let mut codes = vec![];
            for _ in 0..60 {
                codes.push(
                    http.get(&url)
                        .bearer_auth(&tok)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0),
                );
            }
            codes
        }));
    }
    for i in 0..20 {
        // Alternate between two valid configurations while requests flow.
        let next = if i % 2 == 0 {
            format!(
                "{cfg}\n# v{i}\n[[routes]]\nname = \"r{i}\"\npath = \"/r{i}\"\nupstream = \"{}\"\npublic = true\n",
                up.url
            )
        } else {
            cfg.clone()
        };
        s.configure(&next).expect("reload");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for t in tasks {
        let codes = t.await.expect("task");
        assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    }
}

/// One public route `name` at `path` to `upstream`.
fn public_route(name: &str, path: &str, upstream: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\npublic = true\n"
    )
}

/// The JSON body of a raw answer (after its head).
fn body_json(resp: &str) -> Value {
    serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap_or("")).expect("json")
}

async fn raw(addr: &str, request: &[u8]) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.write_all(request).await.expect("write");
    // Read until the server closes (or 3 s pass, which would mean it kept
    // the connection open).
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_identity_listener_refuses_a_body_larger_than_it_reads_before_reading_it() {
    let s = start().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let token = "/realms/master/protocol/openid-connect/token";
    // Announced past the limit, a few bytes sent: answered at once (raw
    // would wait 3 s for a server still waiting for the rest).
    let started = std::time::Instant::now();
    let req = format!(
        "POST {token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\ngrant_type=password",
        2 * 1024 * 1024 + 1
    );
    let resp = raw(&addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // In each API's own error form (the admin API's limit is 10 MiB).
    assert_eq!(body_json(&resp)["error"], "invalid_request", "{resp}");
    let req = format!(
        "POST /admin/realms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        10 * 1024 * 1024 + 1
    );
    let resp = raw(&addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(body_json(&resp)["errorMessage"].is_string(), "{resp}");
    // At the limit the request is read and judged as usual.
    let form = "grant_type=password";
    let at_limit = format!(
        "{form}&pad={}",
        "a".repeat(2 * 1024 * 1024 - form.len() - 5)
    );
    let r = s
        .http
        .post(format!("{}{token}", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(at_limit)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "read, and judged: a parameter too long");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error_description"], "Parameter pad is too long");
}

#[tokio::test]
async fn the_identity_listener_ends_a_body_that_stops_coming() {
    let s = start().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // A form announced at 40 bytes, 10 sent, then nothing: answered once
    // the header timeout (10 s) passes without a byte, not held open.
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(b"POST /realms/master/protocol/openid-connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\ngrant_type")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(20), c.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "still open after 20 s");
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(9), "{waited:?}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let body = body_json(&out);
    assert_eq!(body["error"], "invalid_request", "{out}");
}

#[tokio::test]
async fn malformed_requests_get_clean_4xx_and_upstream_failures_5xx() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let cfg = format!(
        "{}\n[[routes]]\nname = \"down\"\npath = \"/down\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n\n[[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"{}\"\npublic = true\ntimeout_ms = 300\n",
        foreign_config(&s, &iss.url, &up.url),
        up.url
    );
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    // Conflicting Content-Length / Transfer-Encoding (RFC 9112 §6.1): the
    // first request is answered with `connection: close` and the connection
    // closed, so the request smuggled behind it is never read.
    let smuggle = raw(&addr, b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status/admin HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(smuggle.matches("HTTP/1.1 ").count(), 1, "{smuggle}");
    assert!(
        smuggle.starts_with("HTTP/1.1 401") && smuggle.contains("connection: close"),
        "{smuggle}"
    );
    // Oversized header block: 431.
    let big = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let resp = raw(&addr, big.as_bytes()).await;
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
        "{resp}"
    );
    // A request target longer than a head may be: 414 (RFC 9110), as nginx.
    let long = format!(
        "GET /status?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let resp = raw(&addr, long.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 414"), "{resp}");
    // A body answered before it was read (a 401 at the gateway, a 404 at
    // the identity listener) says `connection: close` (RFC 9112 §9.6):
    // hyper drops such a connection, and a client must not reuse it.
    let body = "a".repeat(40 * 1024);
    for (listener, path) in [
        (addr.clone(), "/orders"),
        (
            s.base.trim_start_matches("http://").to_owned(),
            "/realms/master/no-such-endpoint",
        ),
    ] {
        let post = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let resp = raw(&listener, post.as_bytes()).await;
        let head = resp
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 4") && head.contains("connection: close"),
            "{path}: {head}"
        );
    }
    // Invalid UTF-8 in a header value and a bearer token: 401, no panic.
    let resp = raw(
        &addr,
        b"GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert_eq!(up.hits(), 0);
    // Host (RFC 9112 §3.2): an HTTP/1.1 request without one, with two, or
    // with one that is no authority is a 400, on both listeners, even on a
    // public route; HTTP/1.0 may omit it.
    let idp_addr = s.base.trim_start_matches("http://").to_owned();
    for head in [
        "GET /status HTTP/1.1\r\n",
        "GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
        "GET /status HTTP/1.1\r\nHost: a b\r\n",
        "GET /status HTTP/1.1\r\nHost: user@a\r\n",
    ] {
        let req = format!("{head}Connection: close\r\n\r\n");
        let resp = raw(&addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{head}: {resp}");
        let idp_req = req.replace("/status", "/realms/master/.well-known/openid-configuration");
        let resp = raw(&idp_addr, idp_req.as_bytes()).await;
        assert!(
            resp.starts_with("HTTP/1.1 400"),
            "identity listener, {head}: {resp}"
        );
    }
    assert_eq!(up.hits(), 0);
    let resp = raw(&addr, b"GET /status HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    assert_eq!(up.hits(), 1);
    // Unknown route 404; upstream down 502; upstream too slow 504.
    assert_eq!(
        s.http
            .get(format!("{}/nowhere", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    assert_eq!(
        s.http
            .get(format!("{}/down", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        502
    );
    assert_eq!(
        s.http
            .get(format!("{}/slow", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        504
    );
    // The gateway still serves.
    assert_eq!(
        s.http
            .get(format!("{}/status", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

fn own_config(s: &Server, up: &str) -> String {
    format!(
        r#"
[gateway]
audit_log = "{}"

[authorizers.gatehouse]
type = "jwt"
issuer = "{}/realms/demo"

[[routes]]
name = "sales"
path = "/api"
upstream = "{up}"
authorizers = ["gatehouse"]
groups_any = ["sales"]
"#,
        s.audit_path(),
        s.base
    )
}

/// Access and refresh token of `user` from realm `demo` (client `app`).
async fn own_tokens(s: &Server, user: &str, pw: &str) -> (String, String) {
    let t: Value = s
        .password_tokens("demo", "app", Some("app-secret"), user, pw, None)
        .await;
    (
        t["access_token"].as_str().expect("at").to_owned(),
        t["refresh_token"].as_str().expect("rt").to_owned(),
    )
}

/// The gateway's status for `GET /api/x` with `token` (`own_config`).
async fn api_status(s: &Server, token: String) -> u16 {
    s.http
        .get(format!("{}/api/x", s.gw))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// Keycloak's "Revocation: set to now": a realm's or a client's
/// `notBefore` kills every token issued before it, access and refresh
/// tokens alike, at introspection, userinfo, the refresh grant and the
/// gateway at once; tokens issued from then on work, and 0 lifts it.
#[tokio::test]
async fn realm_and_client_not_before_revoke_earlier_tokens_everywhere() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let up = upstream().await;
    s.configure(&own_config(&s, &up.url)).expect("config");
    let tokens = || own_tokens(&s, "alice", "alice-pw");
    let at_gateway = |tok: String| api_status(&s, tok);
    let active = |tok: String| {
        let s = &s;
        async move { s.introspect_demo(&tok).await["active"] == true }
    };
    let (_, realm) = s.admin_get(&admin, "/demo").await;
    assert_eq!(realm["notBefore"], 0);
    let (at, rt) = tokens().await;
    assert_eq!(at_gateway(at.clone()).await, 200);
    assert!(active(at.clone()).await);

    // The realm, set to now: everything issued before is dead.
    let cut = gatehouse_core::time::now() + 1;
    let set = |n: i64| json!({ "notBefore": n });
    assert_eq!(s.admin_put(&admin, "/demo", Some(&set(cut))).await, 204);
    assert_eq!(at_gateway(at.clone()).await, 401);
    assert!(!active(at.clone()).await);
    let r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/userinfo",
            s.base
        ))
        .bearer_auth(&at)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = s.refresh("demo", ("app", "app-secret"), &rt).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error_description"],
        "Stale token"
    );
    // Issued after the cut-off: good.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (fresh, _) = tokens().await;
    assert_eq!(at_gateway(fresh.clone()).await, 200);
    assert!(active(fresh.clone()).await);
    assert_eq!(s.admin_put(&admin, "/demo", Some(&set(0))).await, 204);
    assert_eq!(at_gateway(at.clone()).await, 200, "lifted");

    // A client's own cut-off: its tokens only.
    let app = s.client_uuid(&admin, "demo", "app").await;
    let (_, mut rep) = s.admin_get(&admin, &format!("/demo/clients/{app}")).await;
    assert_eq!(rep["notBefore"], 0);
    rep["notBefore"] = json!(gatehouse_core::time::now() + 1);
    assert_eq!(
        s.admin_put(&admin, &format!("/demo/clients/{app}"), Some(&rep))
            .await,
        204
    );
    assert_eq!(at_gateway(fresh.clone()).await, 401);
    assert!(!active(fresh).await);
}

/// The gateway's revocation list lives in memory: a restart hands it the
/// stored cut-offs again, so a token issued before one stays refused.
#[tokio::test]
async fn a_not_before_cut_off_survives_a_restart() {
    let data = tempfile::tempdir().expect("tmp");
    let dir = data.path().to_owned();
    let first = crate::support::start_with(|c| c.server.data_dir = dir.clone()).await;
    let issuer_base = first.base.clone();
    let admin = first.demo_realm().await;
    let t: Value = first
        .password_tokens("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
        .await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let cut = json!({ "notBefore": gatehouse_core::time::now() + 1 });
    assert_eq!(first.admin_put(&admin, "/demo", Some(&cut)).await, 204);
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = data.path().to_owned();
    // The same issuer as before (its address is the first server's).
    let second = crate::support::start_with(|c| {
        c.server.data_dir = dir.clone();
        c.server.public_url = Some(issuer_base.clone());
    })
    .await;
    let up = upstream().await;
    let cfg = own_config(&second, &up.url).replace(
        &format!("issuer = \"{}/realms/demo\"", second.base),
        &format!(
            "issuer = \"{issuer_base}/realms/demo\"\njwks_uri = \"{}/realms/demo/protocol/openid-connect/certs\"",
            second.base
        ),
    );
    second.configure(&cfg).expect("config");
    let r = second
        .http
        .get(format!("{}/api/x", second.gw))
        .bearer_auth(&at)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(
        second.audit_reasons(401).await,
        vec![json!("token revoked")],
        "refused for its cut-off, not for anything else"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn gatehouse_tokens_and_revocation_that_takes_effect() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let up = upstream().await;
    s.configure(&own_config(&s, &up.url)).expect("config");
    assert_eq!(
        s.admin_post(
            &admin,
            "/demo/users",
            &json!({"username": "bob", "credentials": [{"type": "password", "value": "bob-pw"}]})
        )
        .await
        .0,
        201
    );
    let token = |user: &'static str, pw: &'static str| own_tokens(&s, user, pw);
    let get = |tok: String| api_status(&s, tok);
    let (alice, alice_rt) = token("alice", "alice-pw").await;
    let (bob, _) = token("bob", "bob-pw").await;
    assert_eq!(get(alice.clone()).await, 200);
    assert_eq!(get(alice.clone()).await, 200, "second call is a cache hit");
    assert_eq!(get(bob).await, 403, "bob is not in group sales");
    // Alice's ID token is signed by the same realm key and names her, but
    // it is the client's proof of her login, not a credential for an API.
    let t: Value = s
        .password_tokens(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            Some("openid"),
        )
        .await;
    let id_token = t["id_token"].as_str().expect("id token").to_owned();
    assert_eq!(get(id_token.clone()).await, 401);
    assert_eq!(
        s.audit_reasons(401).await,
        vec![json!("not an access token")]
    );
    // An authorizer may take ID tokens, as AWS API Gateway's does.
    let lenient = own_config(&s, &up.url).replace(
        "type = \"jwt\"\n",
        "type = \"jwt\"\naccept_id_tokens = true\n",
    );
    s.configure(&lenient).expect("config");
    assert_eq!(get(id_token).await, 200);
    s.configure(&own_config(&s, &up.url)).expect("config");
    // Revoking the access token at the IdP stops it at the gateway at once,
    // although the JWT is still validly signed and cached.
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/revoke",
            s.base
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[("token", alice.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(get(alice).await, 401);
    // Logging out the session (refresh token revocation) stops its access tokens.
    let t2: Value = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", alice_rt.as_str()),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let a2 = t2["access_token"].as_str().expect("at").to_owned();
    assert_eq!(get(a2.clone()).await, 200);
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/logout",
            s.base
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[("refresh_token", t2["refresh_token"].as_str().expect("rt"))])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(get(a2).await, 401);
    // Disabling the user stops every token of theirs.
    let (a3, _) = token("alice", "alice-pw").await;
    assert_eq!(get(a3.clone()).await, 200);
    let (_, users) = s
        .admin_get(&admin, "/demo/users?username=alice&exact=true")
        .await;
    let id = users[0]["id"].as_str().expect("id").to_owned();
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/users/{id}", s.base))
        .bearer_auth(&admin)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(get(a3).await, 401);
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn the_quickstart_example_works_as_the_readme_says() {
    let s = start().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
    // The example config is valid as shipped.
    gatehouse::config::Config::load(Some(&root.join("gatehouse.toml")))
        .expect("example config loads");
    let realm: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("demo-realm.json")).expect("read"))
            .expect("json");
    s.import(&realm).await;
    // Same routes, with the issuer at this test server's port.
    let cfg = std::fs::read_to_string(root.join("gatehouse.toml"))
        .expect("read")
        .replace("http://127.0.0.1:8080", &s.base)
        .replace("import_realms = [\"demo-realm.json\"]", "");
    let gateway_part = &cfg[cfg.find("[authorizers.demo]").expect("authorizer")..];
    s.configure(gateway_part).expect("config");
    let tok = |user: &'static str| {
        let s = &s;
        async move {
            let t: Value = s
                .http
                .post(s.token_url("demo"))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "demo-cli"),
                    ("username", user),
                    ("password", &format!("{user}-password")),
                ])
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            t["access_token"].as_str().expect("token").to_owned()
        }
    };
    assert_eq!(
        s.http
            .get(format!("{}/orders", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    let r = s
        .http
        .get(format!("{}/orders/42", s.gw))
        .bearer_auth(tok("alice").await)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["identity_headers"]["x-gatehouse-username"], "alice");
    assert_eq!(body["identity_headers"]["x-gatehouse-groups"], "sales");
    let r = s
        .http
        .get(format!("{}/orders/42", s.gw))
        .bearer_auth(tok("bob").await)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn throttling_per_subject_and_cors_before_authentication() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let cfg = format!(
        r#"
[authorizers.partner]
type = "jwt"
issuer = "{iss}"

[[routes]]
name = "limited"
path = "/limited"
upstream = "{up}"
authorizers = ["partner"]
rate_limit = {{ rate = 1, per = "minute", burst = 2, key = "subject" }}
cors = {{ allow_origins = ["https://app.example"], allow_credentials = true, expose_headers = ["x-request-id"] }}
"#,
        iss = iss.url,
        up = up.url
    );
    s.configure(&cfg).expect("config");
    let a = iss.sign(&iss.claims(json!({"sub": "a"})));
    let b = iss.sign(&iss.claims(json!({"sub": "b"})));
    let call = |tok: String| {
        let s = &s;
        async move {
            s.http
                .get(format!("{}/limited", s.gw))
                .bearer_auth(tok)
                .send()
                .await
                .expect("send")
        }
    };
    let r1 = call(a.clone()).await;
    assert_eq!(r1.status(), 200);
    assert_eq!(r1.headers()["ratelimit-limit"], "2");
    assert_eq!(r1.headers()["ratelimit-remaining"], "1");
    assert_eq!(r1.headers()["ratelimit-policy"], "1;w=60");
    assert_eq!(call(a.clone()).await.status(), 200);
    let r3 = call(a.clone()).await;
    assert_eq!(r3.status(), 429);
    let retry: u64 = r3.headers()["retry-after"]
        .to_str()
        .expect("h")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r3.headers()["ratelimit-remaining"], "0");
    assert_eq!(
        call(b).await.status(),
        200,
        "another subject has its own bucket"
    );
    assert_eq!(up.hits(), 3);

    // CORS preflight: answered before authentication, never forwarded.
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/limited", s.gw))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "Authorization, Content-Type",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    assert!(
        pre.headers()["access-control-allow-methods"]
            .to_str()
            .expect("h")
            .contains("POST")
    );
    let evil = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/limited", s.gw))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("send");
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A refused actual request still carries the CORS headers, so the page can read the 401.
    let r = s
        .http
        .get(format!("{}/limited", s.gw))
        .header("origin", "https://app.example")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["vary"], "Origin");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn signed_assertion_verifies_against_the_gateway_jwks() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let cfg = format!(
        "[authorizers.partner]\ntype = \"jwt\"\nissuer = \"{}\"\n\n[[routes]]\nname = \"signed\"\npath = \"/signed\"\nupstream = \"{}\"\nauthorizers = [\"partner\"]\nassertion = true\n",
        iss.url, up.url
    );
    s.configure(&cfg).expect("config");
    let tok = iss.sign(&iss.claims(json!({})));
    let r = s
        .http
        .get(format!("{}/signed", s.gw))
        .bearer_auth(&tok)
        .header("x-gatehouse-assertion", "forged")
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    let assertion = body["headers"]["x-gatehouse-assertion"]
        .as_str()
        .expect("assertion")
        .to_owned();
    assert_ne!(assertion, "forged");
    let jwks = s
        .http
        .get(format!("{}/.well-known/jwks.json", s.gw))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("b");
    let ks = gatehouse_jose::verify::KeySet::from_jwks_json(&jwks).expect("jwks");
    let mut rules = gatehouse_jose::verify::Rules::for_issuer(&s.gw);
    rules.audiences = vec![format!("{}/signed", s.gw)];
    let c = ks.verify(&assertion, &rules).expect("assertion verifies");
    assert_eq!(c["sub"], "user-1");
    assert_eq!(c["orig_iss"], iss.url.as_str());
    assert_eq!(c["groups"], json!(["sales"]));
    assert!(c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat") <= 60);
    // A route that does not ask for it gets none, even if the caller sends one.
    let cfg2 = cfg.replace("assertion = true\n", "");
    s.configure(&cfg2).expect("config");
    let body: Value = s
        .http
        .get(format!("{}/signed", s.gw))
        .bearer_auth(&tok)
        .header("x-gatehouse-assertion", "forged")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(body["headers"].get("x-gatehouse-assertion").is_none());
}

#[tokio::test]
async fn upgrades_pass_through_after_authentication() {
    let s = start().await;
    let iss = issuer().await;
    let up = crate::peers::upgrade_upstream().await;
    let cfg = format!(
        "[authorizers.partner]\ntype = \"jwt\"\nissuer = \"{}\"\n\n[[routes]]\nname = \"ws\"\npath = \"/ws\"\nupstream = \"{up}\"\nauthorizers = [\"partner\"]\n",
        iss.url
    );
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    // Without a token the upgrade never happens.
    let refused = raw(
        &addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let tok = iss.sign(&iss.claims(json!({})));
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(format!("GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("101 in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(
        head.starts_with("http/1.1 101") && head.contains("upgrade: echo"),
        "{head}"
    );
    for msg in [&b"ping"[..], b"second message"] {
        c.write_all(msg).await.expect("write");
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn a_broken_request_body_is_the_callers_400_and_ejects_no_target() {
    let s = start().await;
    let ups = [upstream().await, upstream().await, upstream().await];
    let cfg = format!(
        "[gateway]\naudit_log = \"{}\"\n\n[[routes]]\nname = \"pool\"\npath = \"/pool\"\nupstreams = [\"{}\", \"{}\", \"{}\"]\npublic = true\neject_after = 1\neject_seconds = 60\n",
        s.audit_path(),
        ups[0].url,
        ups[1].url,
        ups[2].url
    );
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    // A chunk that ends in the wrong place, then a size past 64 bits: each
    // on its own target, round robin.
    for body in [
        "3\r\nabcX0\r\n\r\n",
        "fffffffffffffffff1\r\nabc\r\n0\r\n\r\n",
    ] {
        let req =
            format!("POST /pool HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let resp = raw(&addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    }
    // Neither target was held to blame: round robin still uses all three
    // (with two ejected, every request would go to the third).
    let before: Vec<usize> = ups.iter().map(|u| u.hits()).collect();
    for _ in 0..6 {
        let r = s
            .http
            .get(format!("{}/pool", s.gw))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let served: Vec<usize> = ups.iter().zip(&before).map(|(u, b)| u.hits() - b).collect();
    assert_eq!(served, [2, 2, 2]);
    let reasons = s.audit_reasons(400).await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.starts_with("request body: "))),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn an_upload_is_timed_from_its_last_byte_and_a_stalled_one_is_the_callers_408() {
    let s = start().await;
    let (a, b) = (upstream().await, upstream().await);
    let cfg = format!(
        "[gateway]\naudit_log = \"{}\"\n\n[[routes]]\nname = \"count\"\npath = \"/count\"\nupstreams = [\"{}\", \"{}\"]\npublic = true\ntimeout_ms = 400\neject_after = 1\neject_seconds = 60\n",
        s.audit_path(),
        a.url,
        b.url
    );
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let head = "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n";
    // Eight bytes over a second, against a 400 ms timeout: the upstream
    // answers once it has them all, and the answer counts from there.
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(head.as_bytes()).await.expect("head");
    for part in ["ab", "cd", "ef", "gh"] {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        c.write_all(part.as_bytes()).await.expect("part");
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), c.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("\r\n\r\n8"),
        "{out}"
    );
    // Half the body, then nothing: the caller's 408, not the target's 504.
    let resp = raw(&addr, format!("{head}abcd").as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    // No target was held to blame: round robin still uses both.
    let before = (a.hits(), b.hits());
    for _ in 0..4 {
        let r = s
            .http
            .post(format!("{}/count", s.gw))
            .body("xyz")
            .send()
            .await
            .expect("send");
        assert_eq!(r.text().await.expect("text"), "3");
    }
    assert_eq!((a.hits() - before.0, b.hits() - before.1), (2, 2));
    assert_eq!(s.audit_reasons(408).await, [json!("request body stalled")]);
}

#[tokio::test]
async fn forwarded_and_x_real_ip_pass_only_from_trusted_proxies() {
    for trusted in [false, true] {
        let s = start_with(|c| {
            if trusted {
                c.server.trusted_proxies = vec!["127.0.0.1".into()];
            }
        })
        .await;
        let up = upstream().await;
        let cfg = public_route("open", "/open", &up.url);
        s.configure(&cfg).expect("config");
        let body: Value = s
            .http
            .get(format!("{}/open", s.gw))
            .header("forwarded", "for=10.0.0.1;host=admin.internal;proto=https")
            .header("x-real-ip", "10.0.0.1")
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let h = &body["headers"];
        if trusted {
            assert_eq!(
                h["forwarded"],
                "for=10.0.0.1;host=admin.internal;proto=https"
            );
            assert_eq!(h["x-real-ip"], "10.0.0.1");
        } else {
            // A caller's word for its address, host and scheme goes no further.
            assert!(
                h.get("forwarded").is_none() && h.get("x-real-ip").is_none(),
                "{h}"
            );
        }
        assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    }
}

/// Request-framing attacks (smuggling corpora's usual suspects): each is
/// refused whole, and none reaches the upstream.
#[tokio::test]
async fn a_smuggling_corpus_is_refused_before_the_upstream() {
    let s = start().await;
    let up = upstream().await;
    let cfg = public_route("open", "/", &up.url);
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let h = "Host: x\r\nConnection: close\r\n";
    let post = |fields: &str, body: &str| format!("POST /a HTTP/1.1\r\n{h}{fields}\r\n{body}");
    let mut corpus: Vec<(&str, String, &str)> = vec![
        (
            "TE not chunked last",
            post(
                "Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n",
                "0\r\n\r\n",
            ),
            "400",
        ),
        (
            "space before colon",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
            "400",
        ),
        (
            "two TE lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                "0\r\n\r\n",
            ),
            "400",
        ),
        (
            "chunked, identity",
            post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
            "400",
        ),
        ("CL +3", post("Content-Length: +3\r\n", "abc"), "400"),
        ("CL 0x3", post("Content-Length: 0x3\r\n", "abc"), "400"),
        ("CL -1", post("Content-Length: -1\r\n", "abc"), "400"),
        ("CL 3, 3", post("Content-Length: 3, 3\r\n", "abc"), "400"),
        (
            "two CLs",
            post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"),
            "400",
        ),
        (
            "CL past u64",
            post("Content-Length: 99999999999999999999999\r\n", "abc"),
            "400",
        ),
        (
            "obs-fold",
            post(
                "X-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                "abc",
            ),
            "400",
        ),
        (
            "NUL in a value",
            post("X-A: a\0b\r\nContent-Length: 0\r\n", ""),
            "400",
        ),
        (
            "space in a name",
            post("X A: b\r\nContent-Length: 0\r\n", ""),
            "400",
        ),
        (
            "bare CR",
            "GET /a HTTP/1.1\rHost: x\r\n\r\n".to_string(),
            "400",
        ),
        ("HTTP/0.9", "GET /a\r\n\r\n".into(), "400"),
        ("HTTP/1.2", format!("GET /a HTTP/1.2\r\n{h}\r\n"), "400"),
        (
            "HTTP/2.0 over h1",
            format!("GET /a HTTP/2.0\r\n{h}\r\n"),
            "400",
        ),
        (
            "control byte in the path",
            format!("GET /a\x01b HTTP/1.1\r\n{h}\r\n"),
            "400",
        ),
        (
            "control byte in the method",
            format!("G\x01T /a HTTP/1.1\r\n{h}\r\n"),
            "400",
        ),
        (
            "CONNECT",
            "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\nConnection: close\r\n\r\n".into(),
            "400",
        ),
        (
            "two hosts",
            format!("GET /a HTTP/1.1\r\nHost: y\r\n{h}\r\n"),
            "400",
        ),
        (
            "no host",
            "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n".into(),
            "400",
        ),
        (
            "userinfo host",
            "GET /a HTTP/1.1\r\nHost: a@b\r\nConnection: close\r\n\r\n".into(),
            "400",
        ),
    ];
    let many: String = (0..200).map(|i| format!("X-{i}: a\r\n")).collect();
    corpus.push((
        "200 header lines",
        format!("GET /a HTTP/1.1\r\n{h}{many}\r\n"),
        "431",
    ));
    for (name, req, status) in &corpus {
        let resp = raw(&addr, req.as_bytes()).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {resp}"
        );
    }
    assert_eq!(up.hits(), 0, "something reached the upstream");
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_forwarded() {
    // An upstream that took it would serve whatever HTTP/2 requests came
    // through the tunnel, unseen by the gateway.
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    s.configure(&foreign_config(&s, &iss.url, &up.url))
        .expect("config");
    let tok = iss.sign(&iss.claims(json!({})));
    for upgrade in ["h2c", "H2C", "websocket, h2c", "h2"] {
        let r = s
            .http
            .get(format!("{}/orders/x", s.gw))
            .bearer_auth(&tok)
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", upgrade)
            .header("http2-settings", "AAMAAABkAAQAAP__")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{upgrade}");
        let body: Value = r.json().await.expect("json");
        for h in ["upgrade", "http2-settings", "connection"] {
            assert!(body["headers"].get(h).is_none(), "{upgrade}: {body}");
        }
    }
}

#[tokio::test]
async fn an_absolute_form_target_names_the_forwarded_host() {
    let s = start().await;
    let up = upstream().await;
    let cfg = public_route("open", "/open", &up.url);
    s.configure(&cfg).expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    // RFC 9112 §3.2.2: the target's authority, not `Host`.
    let resp = raw(
        &addr,
        b"GET http://api.example/open HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = body_json(&resp);
    assert_eq!(body["headers"]["x-forwarded-host"], "api.example", "{body}");
    // Userinfo or another scheme in the target: refused, never forwarded.
    let hits = up.hits();
    for target in ["http://user@api.example/open", "ftp://api.example/open"] {
        let req =
            format!("GET {target} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n");
        let resp = raw(&addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{target}: {resp}");
    }
    assert_eq!(up.hits(), hits);
}

#[tokio::test]
async fn failing_targets_are_ejected_and_round_robin_continues() {
    let s = start().await;
    let up = upstream().await;
    // The first target refuses connections; the second works.
    let cfg = format!(
        "[[routes]]\nname = \"pool\"\npath = \"/pool\"\nupstreams = [\"http://127.0.0.1:9\", \"{}\"]\npublic = true\neject_after = 1\neject_seconds = 60\n",
        up.url
    );
    s.configure(&cfg).expect("config");
    let mut codes = vec![];
    for _ in 0..6 {
        codes.push(
            s.http
                .get(format!("{}/pool", s.gw))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(codes[0], 502, "round robin starts at the dead target");
    assert!(
        codes[1..].iter().all(|c| *c == 200),
        "after ejection only the live target is used: {codes:?}"
    );
    assert_eq!(up.hits(), 5);
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (openssl),
/// written into `dir`: (certificate, key).
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

#[tokio::test]
async fn tls_on_both_listeners_with_h2_by_alpn() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(dir.path());
    let s = crate::support::start_with(|c| {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
    })
    .await;
    assert!(s.base.starts_with("https://") && s.gw.starts_with("https://"));
    let pem = std::fs::read(&cert).expect("cert");
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .build()
        .expect("client");
    let d: Value = https
        .get(format!(
            "{}/realms/master/.well-known/openid-configuration",
            s.base
        ))
        .send()
        .await
        .expect("https identity")
        .json()
        .await
        .expect("json");
    assert_eq!(
        d["issuer"],
        format!("{}/realms/master", s.base),
        "the issuer is https"
    );
    let tok: Value = https
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            s.base
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", crate::support::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let at = tok["access_token"].as_str().expect("token");
    s.configure(&format!("[authorizers.own]\ntype = \"jwt\"\nissuer = \"{}/realms/master\"\n\n[[routes]]\nname = \"echo\"\npath = \"/echo\"\nupstream = \"builtin:echo\"\nauthorizers = [\"own\"]\n", s.base)).expect("config");
    // The gateway fetches the JWKS over https from the identity listener,
    // trusting the system roots only: so here it must refuse, and that is
    // a 401, not a crash. (Production certificates chain to a system root.)
    let r = https
        .get(format!("{}/echo", s.gw))
        .bearer_auth(at)
        .send()
        .await
        .expect("https gateway");
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN negotiated h2");
    assert_eq!(r.status(), 401);
    // With the private CA named, discovery and JWKS over https work.
    s.configure(&format!("[authorizers.own]\ntype = \"jwt\"\nissuer = \"{}/realms/master\"\nca_file = {:?}\n\n[[routes]]\nname = \"echo\"\npath = \"/echo\"\nupstream = \"builtin:echo\"\nauthorizers = [\"own\"]\n", s.base, cert.display().to_string())).expect("config");
    let r = https
        .get(format!("{}/echo", s.gw))
        .bearer_auth(at)
        .send()
        .await
        .expect("https gateway");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["identity_headers"]["x-gatehouse-username"],
        "admin"
    );
    // The upstream learns that the client spoke https.
    let up = upstream().await;
    s.configure(&public_route("up", "/up", &up.url))
        .expect("config");
    let r = https
        .get(format!("{}/up", s.gw))
        .send()
        .await
        .expect("https gateway");
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.expect("json");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    // A client offering only HTTP/1.1 over TLS is served too (by the
    // gateway's own bodyless path, then hyper for a body).
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .http1_only()
        .build()
        .expect("client");
    for body in [None, Some("payload")] {
        let url = format!("{}/up/x", s.gw);
        let req = match body {
            None => h1.get(url),
            Some(b) => h1.post(url).body(b),
        };
        let r = req.send().await.expect("https/1.1 gateway");
        assert_eq!(
            (r.version(), r.status().as_u16()),
            (reqwest::Version::HTTP_11, 200)
        );
        let seen: Value = r.json().await.expect("json");
        assert_eq!(seen["path"], "/up/x");
    }
    // A plain-HTTP client cannot talk to a TLS listener.
    assert!(
        reqwest::get(format!(
            "http://{}/echo",
            s.gw.trim_start_matches("https://")
        ))
        .await
        .is_err()
    );
}

/// `https://` upstreams: the certificate is verified (against the route's
/// `upstream_ca`, or the platform's roots, which do not know a self-signed
/// one), by name, for requests with and without bodies.
#[tokio::test]
async fn https_upstreams_are_verified() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(dir.path());
    // The upstream: a TLS gateway whose public route echoes what it got.
    let tls_side = crate::support::start_with(|c| {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
    })
    .await;
    let up = upstream().await;
    tls_side
        .configure(&public_route("up", "/up", &up.url))
        .expect("config");
    let port = tls_side.gw.rsplit(':').next().expect("port").to_owned();
    let s = start().await;
    let route = |host: &str, ca: Option<&std::path::Path>| {
        let ca = ca
            .map(|p| format!("upstream_ca = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        format!(
            "[[routes]]\nname = \"tls\"\npath = \"/tls\"\nupstream = \"https://{host}:{port}/up\"\npublic = true\n{ca}"
        )
    };
    s.configure(&route("localhost", Some(&cert)))
        .expect("config");
    let r = s
        .http
        .get(format!("{}/tls/a?b=c", s.gw))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.expect("json");
    assert_eq!(
        (&seen["path"], &seen["query"]),
        (&serde_json::json!("/up/tls/a"), &serde_json::json!("b=c"))
    );
    assert_eq!(
        seen["headers"]["x-forwarded-proto"], "https",
        "the hop to the upstream gateway was TLS"
    );
    // A body goes the same way.
    let r = s
        .http
        .post(format!("{}/tls/p", s.gw))
        .body("hello")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // By IP, which the certificate also names.
    s.configure(&route("127.0.0.1", Some(&cert)))
        .expect("config");
    assert_eq!(
        s.http
            .get(format!("{}/tls/x", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    // The platform's roots do not trust it: 502, never a plain retry.
    s.configure(&route("localhost", None)).expect("config");
    assert_eq!(
        s.http
            .get(format!("{}/tls/x", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        502
    );
    // A missing CA file is refused at load with the route named.
    let bad = route("localhost", Some(&dir.path().join("nope.pem")));
    let err = s.configure(&bad).expect_err("refused");
    assert!(err.to_string().contains("route 'tls'"), "{err}");
    // h2c is plain TCP: an https upstream cannot ask for it.
    let h2c = format!(
        "{}upstream_protocol = \"h2c\"\n",
        route("localhost", Some(&cert))
    );
    assert!(s.configure(&h2c).is_err());
}

/// An HTTPS upstream: HTTP/2 only (ALPN `h2`, nothing else) or HTTP/1.1,
/// asking for a client certificate chaining to `client_ca` when given; it
/// answers each request with the version it came in and its path.
async fn tls_upstream(
    cert: &std::path::Path,
    key: &std::path::Path,
    h2: bool,
    client_ca: Option<&std::path::Path>,
) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |p: &std::path::Path| -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(p)
            .expect("cert file")
            .collect::<Result<_, _>>()
            .expect("certs")
    };
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in pem(ca) {
                roots.add(c).expect("root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(pem(cert), key)
        .expect("server config");
    cfg.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let text = format!("{:?} {}", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    },
                );
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await
                };
            });
        }
    });
    format!("https://localhost:{port}")
}

/// A CA and a client certificate it signed (`ca.pem`, `client.pem`,
/// `client.key`), with openssl.
fn client_certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl")
            .status
            .success();
        assert!(ok, "openssl {args:?}");
    };
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=gateway",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "client.pem",
        "-extfile",
        "client.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("client.pem"),
        dir.join("client.key"),
    )
}

#[tokio::test]
async fn upstreams_that_ask_for_a_client_certificate_get_the_routes_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(dir.path());
    let (ca, client_cert, client_key) = client_certificate(dir.path());
    let up = tls_upstream(&cert, &key, false, Some(&ca)).await;
    let s = start().await;
    let route = |identity: &str| {
        format!(
            "[[routes]]\nname = \"mtls\"\npath = \"/m\"\nupstream = \"{up}\"\nupstream_ca = {:?}\npublic = true\n{identity}",
            cert.display().to_string()
        )
    };
    let with_cert = format!(
        "upstream_client_cert = {:?}\nupstream_client_key = {:?}\n",
        client_cert.display().to_string(),
        client_key.display().to_string()
    );
    s.configure(&route(&with_cert)).expect("config");
    let get = || s.http.get(format!("{}/m/x", s.gw)).send();
    let r = get().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "HTTP/1.1 /m/x");
    // Without it, the upstream refuses the handshake: 502.
    s.configure(&route("")).expect("config");
    assert_eq!(get().await.expect("send").status(), 502);
    // A certificate without its key is refused at load.
    let half = format!(
        "upstream_client_cert = {:?}\n",
        client_cert.display().to_string()
    );
    let err = s.configure(&route(&half)).expect_err("refused");
    assert!(err.to_string().contains("go together"), "{err}");
}

#[tokio::test]
async fn https_upstreams_are_spoken_to_in_http2_when_the_route_says_h2() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(dir.path());
    let up = tls_upstream(&cert, &key, true, None).await;
    let s = start().await;
    let route = |upstream: &str, proto: &str| {
        format!(
            "[[routes]]\nname = \"h2\"\npath = \"/h2\"\nupstream = \"{upstream}\"\nupstream_ca = {:?}\nupstream_protocol = \"{proto}\"\npublic = true\n",
            cert.display().to_string()
        )
    };
    s.configure(&route(&up, "h2")).expect("config");
    for _ in 0..2 {
        let r = s
            .http
            .get(format!("{}/h2/x", s.gw))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("text"), "HTTP/2.0 /h2/x");
    }
    // Asked in HTTP/1.1, this upstream shares no protocol with the
    // gateway: 502, never a downgrade it did not agree to.
    s.configure(&route(&up, "http1")).expect("config");
    let r = s
        .http
        .get(format!("{}/h2/x", s.gw))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    // h2 is for https:// upstreams; h2c for plain ones.
    let err = s
        .configure(&route("http://127.0.0.1:9", "h2"))
        .expect_err("refused");
    assert!(err.to_string().contains("https://"), "{err}");
}

/// An HTTP/2 client on a cleartext connection to the gateway (h2c, prior
/// knowledge).
async fn h2c(
    gw: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(gw.trim_start_matches("http://"))
        .await
        .expect("connect");
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn grpc_passes_through_over_h2c_with_trailers() {
    use http_body_util::BodyExt;
    let s = start().await;
    let up = crate::peers::grpc_upstream().await;
    s.configure(&format!("[[routes]]\nname = \"grpc\"\npath = \"/orders.v1.Orders\"\nupstream = \"{up}\"\nupstream_protocol = \"h2c\"\npublic = true\n")).expect("config");
    let mut send = h2c(&s.gw).await;
    let req = hyper::Request::post(format!("{}/orders.v1.Orders/Get", s.gw))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\x00\x00\x00\x00\x02hi",
        )))
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(
        trailers["grpc-status"], "0",
        "te: trailers reached the upstream: {trailers:?}"
    );
    assert_eq!(
        &collected.to_bytes()[..],
        b"/orders.v1.Orders/Get:\x00\x00\x00\x00\x02hi"
    );
}

#[tokio::test]
async fn api_keys_with_usage_plans_and_immediate_revocation() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let up = upstream().await;
    let create = |body: Value| {
        let (s, admin) = (&s, admin.clone());
        async move {
            let r = s
                .http
                .post(format!("{}/admin/realms/demo/api-keys", s.base))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 201);
            assert!(r.headers().get("location").is_some());
            r.json::<Value>().await.expect("json")
        }
    };
    let limited = create(json!({"name": "mobile", "consumer": "acme", "scopes": ["orders:read"], "plan": {"quotaPerDay": 3}})).await;
    let other =
        create(json!({"name": "batch", "consumer": "globex", "scopes": ["orders:read"]})).await;
    let key = limited["key"].as_str().expect("key shown once").to_owned();
    assert!(key.starts_with("ghk_"));
    let (_, list) = s.admin_get(&admin, "/demo/api-keys").await;
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .all(|k| k.get("key").is_none()),
        "keys are never listed"
    );
    s.configure(&format!(
        "[authorizers.keys]\ntype = \"apikey\"\nrealm = \"demo\"\n\n[[routes]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"{}\"\nauthorizers = [\"keys\"]\nscopes_any = [\"orders:read\"]\n",
        up.url
    ))
    .expect("config");
    let call = |k: String| {
        let s = &s;
        async move {
            s.http
                .get(format!("{}/orders", s.gw))
                .header("x-api-key", k)
                .send()
                .await
                .expect("send")
        }
    };
    // The key twice is ambiguous: refused (and not counted on the quota).
    let r = s
        .http
        .get(format!("{}/orders", s.gw))
        .header("x-api-key", &key)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = call(key.clone()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["headers"]["x-gatehouse-username"], "acme");
    assert_eq!(body["headers"]["x-gatehouse-client"], "mobile");
    assert!(
        body["headers"].get("x-api-key").is_none(),
        "the key is a credential: not forwarded"
    );
    assert_eq!(call(key.clone()).await.status(), 200);
    assert_eq!(call(key.clone()).await.status(), 200);
    let over = call(key.clone()).await;
    assert_eq!(over.status(), 429, "the daily quota of 3 is spent");
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .expect("h")
        .parse()
        .expect("secs");
    assert!((1..=86_400).contains(&wait));
    assert_eq!(call("ghk_not-a-key".into()).await.status(), 401);
    assert_eq!(
        s.http
            .get(format!("{}/orders", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    // Revocation takes effect at once, though the lookup is cached.
    let other_key = other["key"].as_str().expect("key").to_owned();
    assert_eq!(call(other_key.clone()).await.status(), 200);
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/api-keys/{}",
            s.base,
            other["id"].as_str().expect("id")
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(call(other_key).await.status(), 401);
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|l| l["rule"] == "usage_plan.quota" && l["username"] == "acme")
    );
}

#[tokio::test]
async fn cedar_policies_decide_with_groups_claims_method_and_context() {
    let s = start().await;
    let iss = issuer().await;
    let up = upstream().await;
    let cfg = format!(
        r#"
[gateway]
audit_log = "{audit}"

[authorizers.partner]
type = "jwt"
issuer = "{iss}"

[[routes]]
name = "reports"
path = "/reports"
upstream = "{up}"
authorizers = ["partner"]
cedar = '''
permit(principal in Group::"sales", action == Action::"GET", resource == Route::"reports");
permit(principal in Role::"editor", action == Action::"POST", resource)
  when {{ principal.claims.level >= 5 && context.path like "/reports/*" }};
forbid(principal, action, resource) when {{ principal.claims.department == "contractor" }};
'''
"#,
        audit = s.audit_path(),
        iss = iss.url,
        up = up.url
    );
    s.configure(&cfg).expect("config");
    let call = |method: reqwest::Method, path: &'static str, extra: Value| {
        let (s, tok) = (&s, iss.sign(&iss.claims(extra)));
        async move {
            s.http
                .request(method, format!("{}{path}", s.gw))
                .bearer_auth(tok)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        call(reqwest::Method::GET, "/reports", json!({})).await,
        200,
        "sales may read"
    );
    assert_eq!(
        call(reqwest::Method::GET, "/reports", json!({"groups": ["ops"]})).await,
        403
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/reports",
            json!({"department": "contractor"})
        )
        .await,
        403,
        "forbid wins"
    );
    assert_eq!(
        call(
            reqwest::Method::POST,
            "/reports/q3",
            json!({"roles": ["editor"], "level": 7})
        )
        .await,
        200
    );
    assert_eq!(
        call(
            reqwest::Method::POST,
            "/reports/q3",
            json!({"roles": ["editor"], "level": 2})
        )
        .await,
        403
    );
    assert_eq!(
        call(
            reqwest::Method::POST,
            "/reports",
            json!({"roles": ["editor"], "level": 7})
        )
        .await,
        403,
        "path condition"
    );
    assert_eq!(up.hits(), 2);
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .filter(|l| l["decision"] == "deny")
            .all(|l| l["rule"] == "cedar")
    );
    // A policy that does not parse is refused at load, with Cedar's message.
    let bad = cfg.replace("permit(principal in Group", "permit(principal inn Group");
    let err = s.configure(&bad).expect_err("refused");
    assert!(err.to_string().contains("route 'reports': cedar"), "{err}");
}

/// A gateway with a public `/status` route and an 800 ms header read
/// timeout; its upstream and the gateway's address.
async fn status_route_with_header_timeout() -> (Server, crate::peers::Upstream, String) {
    let s = start().await;
    let up = upstream().await;
    s.configure(&format!(
        "[gateway]\nheader_read_timeout_ms = 800\n\n[[routes]]\nname = \"status\"\npath = \"/status\"\nupstream = \"{}\"\npublic = true\n",
        up.url
    ))
    .expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    (s, up, addr)
}

/// Slowloris: a client that connects and sends nothing, or drips its
/// request head a byte at a time, is disconnected after the header read
/// timeout, and the gateway keeps serving everyone else.
#[tokio::test]
async fn slow_clients_are_cut_off_at_the_header_timeout() {
    let (s, up, addr) = status_route_with_header_timeout().await;
    let closed_within = |mut c: tokio::net::TcpStream, drip: bool| async move {
        let started = std::time::Instant::now();
        let head = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut buf = [0u8; 1024];
        for i in 0..60 {
            if drip {
                // A byte every 200 ms: each write alone is "activity".
                if c.write_all(&head[i % head.len()..][..1]).await.is_err() {
                    return started.elapsed();
                }
            }
            match tokio::time::timeout(std::time::Duration::from_millis(200), c.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {
                    // A 408 is fine too; the close must follow.
                }
                Err(_) => {}
            }
        }
        started.elapsed()
    };
    let mut waits = vec![];
    for drip in [false, true] {
        let c = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        waits.push(tokio::spawn(closed_within(c, drip)));
    }
    // Meanwhile normal requests are served.
    assert_eq!(
        s.http
            .get(format!("{}/status", s.gw))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    for (w, what) in waits.into_iter().zip(["silent", "dripping"]) {
        let took = w.await.expect("task");
        assert!(
            took < std::time::Duration::from_secs(4),
            "{what} client held its connection for {took:?}"
        );
    }
    assert_eq!(up.hits(), 1);
}

/// The header timeout of a kept-alive connection counts from the end of
/// the last answer: requests that each come within it are served however
/// long the connection lives, and a connection that then goes silent is
/// closed one timeout later.
#[tokio::test]
async fn kept_alive_connections_get_a_fresh_header_timeout_per_request() {
    let (_s, up, addr) = status_route_with_header_timeout().await;
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut buf = vec![0u8; 4096];
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        c.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let n = c.read(&mut buf).await.expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
    }
    let idle = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(4), c.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    let took = idle.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(700) && took < std::time::Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_eq!(up.hits(), 4);
}

/// Slowloris over HTTP/2: a connection that sent its preface and then
/// nothing is sent `GOAWAY` and closed after the header timeout, as an
/// idle HTTP/1.1 one is; a request in flight longer than that (a slow
/// upstream) keeps its connection and is answered.
#[tokio::test]
async fn idle_http2_connections_are_closed_too() {
    let (s, up, addr) = status_route_with_header_timeout().await;
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let started = std::time::Instant::now();
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("an idle HTTP/2 connection was held open"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(700) && took < std::time::Duration::from_secs(3),
        "closed after {took:?}"
    );
    // Frames: 3-byte length, type (7 = GOAWAY), flags, stream.
    let mut types = vec![];
    let mut at = 0;
    while at + 9 <= got.len() {
        let len =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        types.push(got[at + 3]);
        at += 9 + len;
    }
    assert!(types.contains(&7), "GOAWAY before the close: {types:?}");

    // A slow answer outlives the idle limit.
    let slow = format!(
        "[gateway]\nheader_read_timeout_ms = 800\n\n[[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"{}\"\npublic = true\n",
        up.url
    );
    s.configure(&slow).expect("config");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = h2
        .get(format!("{}/slow", s.gw))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "late");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A 1 GiB upload streams through the gateway to the upstream without
/// growing the gateway process: Gatehouse runs as its own process here, so
/// its resident memory is measured alone while the body passes.
#[tokio::test]
async fn a_1_gib_upload_streams_with_bounded_memory() {
    use tokio::io::AsyncBufReadExt;
    let sink = crate::peers::sink_upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nidentity_listen = \"127.0.0.1:0\"\ngateway_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[[routes]]\nname = \"upload\"\npath = \"/upload\"\nupstream = \"{sink}\"\npublic = true\ntimeout_ms = 120000\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("GATEHOUSE_ADMIN_PASSWORD", "unused-admin-pw")
        .env("GATEHOUSE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gatehouse");
    let pid = child.id().expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let gw = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("gatehouse starts")
            .expect("read")
            .expect("a line");
        if let Some(url) = line.strip_prefix("Gatehouse gateway listening on http://") {
            break url.to_owned();
        }
    };
    // Warm up (pools, first allocations), then take the baseline.
    let warm = raw(
        &gw,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        warm.starts_with("HTTP/1.1 200") && warm.ends_with('5'),
        "{warm}"
    );
    let before = rss_kib(pid);

    const TOTAL: u64 = 1 << 30;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let mut c = tokio::net::TcpStream::connect(&gw).await.expect("connect");
    c.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {TOTAL}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("head");
    let chunk = vec![b'x'; 256 * 1024];
    let mut sent = 0;
    while sent < TOTAL {
        c.write_all(&chunk).await.expect("body");
        sent += chunk.len() as u64;
    }
    let mut answer = String::new();
    c.read_to_string(&mut answer).await.expect("answer");
    sampler.abort();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&TOTAL.to_string()),
        "upstream got it all: {answer}"
    );
    let grew_mib = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before)
        / 1024;
    assert!(
        grew_mib < 32,
        "gateway grew by {grew_mib} MiB while streaming 1 GiB (baseline {} MiB)",
        before / 1024
    );
}

/// Prometheus metrics on the identity listener: requests by route, status
/// and decision, the latency histogram, token-cache hits and misses.
#[tokio::test]
async fn metrics_count_requests_by_route_status_and_decision() {
    let (s, iss, _up) = foreign_gateway().await;
    let tok = iss.sign(&iss.claims(json!({"groups": ["sales"]})));
    let get = |auth: Option<String>| {
        let mut r = s.http.get(format!("{}/orders/1", s.gw));
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(get(None).await, 401);
    for _ in 0..3 {
        assert_eq!(get(Some(tok.clone())).await, 200);
    }
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for line in [
        "gatehouse_gateway_requests_total{route=\"orders\",status=\"200\",decision=\"allow\"} 3",
        "gatehouse_gateway_requests_total{route=\"orders\",status=\"401\",decision=\"unauthenticated\"} 1",
        "gatehouse_gateway_request_duration_ms_bucket{le=\"+Inf\"} 4",
        "gatehouse_gateway_request_duration_ms_count 4",
        "gatehouse_gateway_token_cache_hits_total{authorizer=\"partner\"} 2",
        "gatehouse_gateway_token_cache_misses_total{authorizer=\"partner\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // Buckets are cumulative: each is at most the next.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_gateway_request_duration_ms_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

/// GET `{prefix}{path}` through the gateway: status and body text.
async fn gateway_get(s: &Server, prefix: &str, path: &str) -> (u16, String) {
    let r = s
        .http
        .get(format!("{}{prefix}{path}", s.gw))
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_never_reused_broken() {
    let s = start().await;
    let up = crate::peers::conn_counting_upstream().await;
    let cfg = format!(
        "[[routes]]\nname = \"kept\"\npath = \"/kept\"\nupstream = \"{}\"\npublic = true\nstrip_prefix = true\n",
        up.url
    );
    s.configure(&cfg).expect("config");
    let get = |path: &'static str| gateway_get(&s, "/kept", path);
    // Sequential requests share one upstream connection.
    for _ in 0..20 {
        assert_eq!(get("/").await, (200, "ok".to_owned()));
    }
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    // An upstream that closes after answering: its connection is not
    // reused, and the next request still succeeds on a new one.
    assert_eq!(get("/close").await, (200, "bye".to_owned()));
    assert_eq!(get("/").await, (200, "ok".to_owned()));
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A client that walks away mid-body: that connection is dropped, never
    // handed to the next request with half a body still in it.
    let mut big = s
        .http
        .get(format!("{}/kept/big", s.gw))
        .send()
        .await
        .expect("send");
    assert_eq!(big.status(), 200);
    assert!(big.chunk().await.expect("chunk").is_some());
    drop(big);
    for _ in 0..5 {
        assert_eq!(get("/").await, (200, "ok".to_owned()));
    }
    // A complete large body returns its connection for reuse.
    let (code, body) = get("/big").await;
    assert_eq!((code, body.len()), (200, 128 * 64 * 1024));
    let before = up.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get("/").await, (200, "ok".to_owned()));
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
}

/// The route timeout on the target's own kept-alive connections: every
/// request gets the whole timeout however long its connection was kept
/// (the connection's timer, set for an earlier request, fires while it is
/// idle or during the next exchange, and is moved then), and a request
/// past it gets 504 and its connection is dropped.
#[tokio::test]
async fn each_request_on_a_kept_connection_gets_the_whole_route_timeout() {
    let s = start().await;
    let up = crate::peers::conn_counting_upstream().await;
    let cfg = format!(
        "[[routes]]\nname = \"t\"\npath = \"/t\"\nupstream = \"{}\"\npublic = true\nstrip_prefix = true\ntimeout_ms = 400\n",
        up.url
    );
    s.configure(&cfg).expect("config");
    let s = &s;
    let get = |path: &'static str| async move { gateway_get(s, "/t", path).await.0 };
    let conns = || up.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get("/").await, 200);
    // The first request's deadline passes while the connection is idle.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(get("/wait/250").await, 200);
    // Its deadline passes during this one, which still has 150 ms left.
    assert_eq!(get("/wait/250").await, 200);
    assert_eq!(conns(), 1, "one upstream connection throughout");
    let started = std::time::Instant::now();
    assert_eq!(get("/wait/1500").await, 504);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(350)
            && took < std::time::Duration::from_millis(1200),
        "{took:?}"
    );
    // The timed-out connection is not reused.
    assert_eq!(get("/").await, 200);
    assert_eq!(conns(), 2);
}

/// An upstream that answers each request head with the bytes scripted for
/// its path, written in pieces with pauses, then keeps the connection or
/// (path ending in `-then-close`) closes it without saying so.
async fn scripted_upstream() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut tmp = [0u8; 4096];
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match c.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    // A request body is read and not looked at.
                    let mut body = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while body > 0 {
                        if buf.is_empty() {
                            match c.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                        }
                        let n = body.min(buf.len());
                        buf.drain(..n);
                        body -= n;
                    }
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let pieces: Vec<Vec<u8>> = match path.trim_end_matches("-then-close") {
                        "/interim" => vec![
                            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n".to_vec(),
                            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal".to_vec(),
                        ],
                        "/split" => vec![
                            b"HTTP/1.1 200 OK\r\ncontent-le".to_vec(),
                            b"ngth: 11\r\n\r\nhello".to_vec(),
                            b" world".to_vec(),
                        ],
                        "/chunked" => vec![
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
                            b"lo\r\n6;x=y\r\n world\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
                        ],
                        "/eof" => vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()],
                        "/bad-length" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabc".to_vec()],
                        "/garbage" => vec![b"SMTP ready\r\n\r\n".to_vec()],
                        "/short" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ntoo short".to_vec()],
                        "/head" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n".to_vec()],
                        "/vary" => vec![b"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\ncontent-length: 2\r\n\r\nok".to_vec()],
                        // A second answer nobody asked for, a moment later.
                        "/twice" => vec![
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON".to_vec(),
                        ],
                        // Hostile framings: a second answer in the same
                        // segment as the first, behind an HTTP/1.0
                        // keep-alive one, after a bodiless 204, or framed
                        // two ways at once.
                        "/same-segment" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok\
                            HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON".to_vec()],
                        "/http10" => vec![b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok\
                            HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON".to_vec()],
                        "/no-content" => vec![b"HTTP/1.1 204 No Content\r\n\r\n\
                            HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON".to_vec()],
                        "/cl-te" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\n\r\n\
                            2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON".to_vec()],
                        "/two-lengths" => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 6\r\n\r\nokPOISON".to_vec()],
                        "/obs-fold" => vec![b"HTTP/1.1 200 OK\r\nx-a: a\r\n b\r\ncontent-length: 2\r\n\r\nok".to_vec()],
                        "/bare-cr" => vec![b"HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 2\r\n\r\nok".to_vec()],
                        "/fields" => vec![b"HTTP/1.1 200 OK\r\nServer: scripted\r\nConnection: keep-alive, X-Hop\r\n\
                            Keep-Alive: timeout=5\r\nX-Hop: secret\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                            X-Request-Id: upstream-id\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\n\
                            Content-Length: 6, 6\r\n\r\nfields".to_vec()],
                        _ => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()],
                    };
                    for p in pieces {
                        if c.write_all(&p).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    if path.ends_with("-then-close") || path == "/eof" || path == "/short" {
                        return;
                    }
                }
            });
        }
    });
    (url, conns)
}

/// A gateway whose one public route leads to [`scripted_upstream`], and
/// how many connections that upstream has accepted.
async fn scripted_gateway() -> (Server, Arc<std::sync::atomic::AtomicUsize>) {
    let s = start().await;
    let (up, conns) = scripted_upstream().await;
    s.configure(&public_route("scripted", "/", &up))
        .expect("config");
    (s, conns)
}

/// A GET through the gateway: its status and body (empty if unreadable).
async fn get_text(s: &Server, path: &str) -> (u16, String) {
    let r = s
        .http
        .get(format!("{}{path}", s.gw))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// An upstream that answers twice must not have its second answer read as
/// the next request's: that caller, maybe another user, would get a
/// response meant for no one (response-queue poisoning).
#[tokio::test]
async fn a_stray_answer_on_an_idle_connection_never_reaches_the_next_caller() {
    let (s, conns) = scripted_gateway().await;
    let get = |path: &'static str| get_text(&s, path);
    for _ in 0..3 {
        assert_eq!(get("/twice").await, (200, "ok".to_owned()));
        // The stray answer arrives while the connection is idle.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(get("/next").await, (200, "ok".to_owned()));
    }
    // Each poisoned connection was dropped, not reused.
    assert!(conns.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

/// Answers framed to poison the connection (a second response in the
/// same segment, behind an HTTP/1.0 keep-alive answer or a 204, or with
/// both Content-Length and chunked) reach their own caller as one answer
/// at most, and the next caller never gets what followed; answers that
/// cannot be read one way only (two lengths, obs-fold, a bare CR) are 502.
#[tokio::test]
async fn a_hostile_upstream_framing_never_reaches_the_next_caller() {
    let (s, _) = scripted_gateway().await;
    let get = |path: &'static str| get_text(&s, path);
    for (path, wanted) in [
        ("/same-segment", &[200][..]),
        ("/http10", &[200]),
        ("/no-content", &[204]),
        ("/cl-te", &[200, 502]),
        ("/two-lengths", &[502]),
        ("/obs-fold", &[502]),
        ("/bare-cr", &[502]),
    ] {
        let (status, body) = get(path).await;
        assert!(wanted.contains(&status), "{path}: {status}");
        assert!(!body.contains("POISON"), "{path}: {body}");
        for _ in 0..2 {
            assert_eq!(get("/next").await, (200, "ok".to_owned()), "after {path}");
        }
    }
}

/// Bodyless requests go over the gateway's own HTTP/1.1 wire path: every
/// framing of RFC 9112 §6.3, interim answers, heads split across reads,
/// trailers, and upstreams that break the protocol or close kept-alive
/// connections without warning.
#[tokio::test]
async fn bodyless_requests_handle_every_upstream_framing() {
    let s = start().await;
    let (up, conns) = scripted_upstream().await;
    s.configure(&format!(
        "[[routes]]\nname = \"raw\"\npath = \"/raw\"\nupstream = \"{up}\"\npublic = true\nstrip_prefix = true\n"
    ))
    .expect("config");
    let get = |path: &str| {
        let url = format!("{}/raw{path}", s.gw);
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.expect("send");
            (
                r.status().as_u16(),
                r.text().await.unwrap_or_else(|e| format!("<{e}>")),
            )
        }
    };
    assert_eq!(get("/interim").await, (200, "final".into()));
    assert_eq!(get("/split").await, (200, "hello world".into()));
    assert_eq!(get("/chunked").await, (200, "hello world".into()));
    assert_eq!(get("/eof").await, (200, "until the end".into()));
    assert_eq!(get("/bad-length").await.0, 502);
    assert_eq!(get("/garbage").await.0, 502);
    let (code, body) = get("/short").await;
    assert_eq!(code, 200, "the head was fine");
    assert_ne!(
        body, "too short",
        "a truncated body is not passed off as complete"
    );
    let r = s
        .http
        .head(format!("{}/raw/head", s.gw))
        .send()
        .await
        .expect("head");
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-length"].to_str().ok()
        ),
        (200, Some("50"))
    );
    // Kept alive across all of the well-framed ones.
    let before = conns.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(get("/").await, (200, "ok".into()));
    }
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "one connection reused"
    );
    // An upstream that drops idle connections silently: the next GET is
    // retried on a new connection, and an empty POST (not repeatable) finds
    // the dead one by probing before it sends.
    assert_eq!(get("/x-then-close").await, (200, "ok".into()));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(get("/").await, (200, "ok".into()));
    assert_eq!(get("/y-then-close").await, (200, "ok".into()));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = s
        .http
        .post(format!("{}/raw/", s.gw))
        .send()
        .await
        .expect("post");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (200, "ok".into())
    );
    // The audit line names the broken upstream's failure.
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .filter_map(|l| l["reason"].as_str())
            .any(|r| r.contains("Content-Length")),
        "{audit:?}"
    );
}

/// An upstream's answer fields on the bodyless path reach the client as
/// they came, to an HTTP/1.1 client (written as the upstream's lines) and
/// an HTTP/2 one (through hyper's header map) alike: hop-by-hop fields and
/// those `Connection` names removed, repeated fields kept, the upstream's
/// `Date` kept, the gateway's request id in place of the upstream's, and
/// CORS's `Vary: Origin` beside the upstream's `Vary`.
#[tokio::test]
async fn upstream_answer_fields_reach_http1_and_http2_clients_alike() {
    let s = start().await;
    let (up, _) = scripted_upstream().await;
    s.configure(&format!(
        "[[routes]]\nname = \"raw\"\npath = \"/raw\"\nupstream = \"{up}\"\npublic = true\nstrip_prefix = true\n\
         [[routes]]\nname = \"cors\"\npath = \"/cors\"\nupstream = \"{up}\"\npublic = true\nstrip_prefix = true\n\
         cors = {{ allow_origins = [\"https://app.example\"] }}\n"
    ))
    .expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let answer = raw(
        &addr,
        b"GET /raw/fields HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert_eq!(body, "fields");
    let lines: Vec<String> = head.lines().skip(1).map(str::to_ascii_lowercase).collect();
    let named = |n: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("{n}:")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(named("set-cookie"), ["set-cookie: a=1", "set-cookie: b=2"]);
    assert_eq!(named("content-length"), ["content-length: 6"]);
    assert_eq!(named("date"), ["date: mon, 07 dec 2026 00:00:00 gmt"]);
    assert_eq!(named("server"), ["server: scripted"]);
    assert!(
        named("x-hop").is_empty() && named("keep-alive").is_empty(),
        "{head}"
    );
    assert_eq!(
        named("connection"),
        ["connection: close"],
        "ours, not the upstream's"
    );
    let id = named("x-request-id");
    assert_eq!(id.len(), 1, "{head}");
    assert!(!id[0].contains("upstream-id"), "{head}");
    let answer = raw(
        &addr,
        b"GET /cors/vary HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let vary: Vec<String> = answer
        .lines()
        .map(str::to_ascii_lowercase)
        .filter(|l| l.starts_with("vary:"))
        .collect();
    assert_eq!(vary, ["vary: accept-encoding", "vary: origin"], "{answer}");
    // A request with a body goes through hyper's client: the same.
    let r = s
        .http
        .post(format!("{}/cors/vary", s.gw))
        .header("origin", "https://app.example")
        .body("a body")
        .send()
        .await
        .expect("post");
    let vary: Vec<_> = r.headers().get_all("vary").iter().cloned().collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
    assert_eq!(r.text().await.expect("body"), "ok");

    let mut send = h2c(&s.gw).await;
    let req = hyper::Request::get(format!("{}/raw/fields", s.gw))
        .body(http_body_util::Full::default())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, http::Version::HTTP_2)
    );
    let h = resp.headers().clone();
    let all = |n: &str| {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().expect("text").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(all("content-length"), ["6"]);
    assert_eq!(all("date"), ["Mon, 07 Dec 2026 00:00:00 GMT"]);
    assert_eq!(all("server"), ["scripted"]);
    assert!(
        h.get("x-hop").is_none() && h.get("keep-alive").is_none(),
        "{h:?}"
    );
    let id = all("x-request-id");
    assert!(id.len() == 1 && id[0] != "upstream-id", "{h:?}");
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"fields");
    let req = hyper::Request::get(format!("{}/cors/vary", s.gw))
        .header("origin", "https://app.example")
        .body(http_body_util::Full::default())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let vary: Vec<_> = resp.headers().get_all("vary").iter().cloned().collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
}

/// The gateway's own HTTP/1.1 server path (bodyless requests) on one
/// connection: pipelined requests answered in order, HEAD without a body,
/// the first request with a body handed to hyper with everything read after
/// it, and `Connection: close` honoured with the answer saying so.
#[tokio::test]
async fn one_connection_mixes_our_server_path_and_hypers() {
    let (s, _iss, up) = foreign_gateway().await;
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let resp = raw(
        &addr,
        b"GET /status/a HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /status/e HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /status/b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n\
          POST /status/c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /status/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.matches("HTTP/1.1 200 OK\r\n").count(), 5, "{resp}");
    let paths: Vec<&str> = resp
        .match_indices("\"path\":\"")
        .map(|(i, m)| &resp[i + m.len()..i + m.len() + 2])
        .collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/d"], "{resp}");
    let last = &resp[resp.rfind("HTTP/1.1 200").expect("last")..];
    assert!(last.contains("connection: close\r\n"), "{last}");
    assert!(resp.contains("date: "), "{resp}");
    // Every answer is framed (the HEAD one by the length GET would have).
    assert_eq!(resp.matches("content-length: ").count(), 5, "{resp}");
    assert_eq!(up.hits(), 5);
    // raw() returned because the gateway closed the connection, not after
    // its 3 s wait: a reply to a request after `close` would show here.
    assert!(resp.ends_with('}'), "{resp}");
    // HTTP/1.0 (ApacheBench's): kept alive only when it asks, and told so.
    let resp = raw(
        &addr,
        b"GET /status/f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          GET /status/g HTTP/1.0\r\n\r\n\
          GET /status/never HTTP/1.0\r\n\r\n",
    )
    .await;
    assert_eq!(resp.matches(" 200 OK\r\n").count(), 2, "{resp}");
    let second = resp.find("/g").expect("second answered");
    assert!(
        resp[..second].contains("connection: keep-alive\r\n"),
        "{resp}"
    );
    assert!(!resp.contains("/never"), "nothing after the close: {resp}");
    assert!(resp.contains("connection: close\r\n"), "{resp}");
    assert_eq!(up.hits(), 7);
}

/// A client that gives up while the upstream is still working: the
/// gateway stops waiting on its behalf at once (not at the route's
/// timeout) and still writes the request's audit line, with status 499.
#[tokio::test]
async fn a_client_that_leaves_ends_its_request_with_a_499_line() {
    let s = start().await;
    let up = upstream().await;
    s.configure(&format!(
        "[gateway]\naudit_log = {:?}\n\n[[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"{}\"\npublic = true\ntimeout_ms = 3000\n",
        s.audit_path(),
        up.url
    ))
    .expect("config");
    let addr = s.gw.trim_start_matches("http://").to_owned();
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // The upstream has the request (it counts it, then sleeps 5 s).
    for _ in 0..50 {
        if up.hits() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(up.hits(), 1);
    drop(c);
    let line = async {
        loop {
            let lines = s.audit().await;
            if let Some(l) = lines.into_iter().find(|l| l["route"] == "slow") {
                return l;
            }
        }
    };
    let line = tokio::time::timeout(std::time::Duration::from_secs(2), line)
        .await
        .expect("a line well before the 3 s timeout");
    assert_eq!(line["status"], 499, "{line}");
    assert!(
        line["total_ms"].as_f64().is_some_and(|ms| ms < 2000.0),
        "{line}"
    );
}

/// The assertion key is kept (sealed) in the store: a restart publishes
/// the same JWKS, so upstreams' cached keys keep verifying.
#[tokio::test]
async fn the_assertion_key_survives_a_restart() {
    let data = tempfile::tempdir().expect("tmp");
    let jwks = |s: &crate::support::Server| {
        let url = format!("{}/.well-known/jwks.json", s.gw);
        let http = s.http.clone();
        async move {
            let v: Value = http
                .get(url)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            v["keys"][0]["kid"].as_str().expect("kid").to_owned()
        }
    };
    let dir = data.path().to_owned();
    let first = crate::support::start_with(|c| c.server.data_dir = dir.clone()).await;
    let kid = jwks(&first).await;
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = data.path().to_owned();
    let second = crate::support::start_with(|c| c.server.data_dir = dir.clone()).await;
    assert_eq!(jwks(&second).await, kid);
    // Another server's store has another key.
    let other = start().await;
    assert_ne!(jwks(&other).await, kid);
}
