//! Request objects (OIDC Core §6.1, RFC 9101) at the authorization
//! endpoint and in pushed authorization requests: unsigned where the
//! client allows it, signed with the client's key or secret, their
//! parameters winning over the query's, and every way one can be wrong
//! refused before a login page is shown.

use crate::oidc::query_param;
use crate::support::{Server, start};
use base64::Engine;
use gatehouse_jose::keys::{Alg, SigningKey};
use serde_json::{Value, json};

const CB: &str = "http://127.0.0.1/cb";

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned (`alg: none`) request object.
fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", b64(&json!({"alg": "none"})), b64(claims))
}

/// An HS256 request object signed with `secret`.
fn hs256(secret: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(claims));
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = aws_lc_rs::hmac::sign(&k, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// The authorization endpoint with `params`.
async fn authorize(s: &Server, params: &[(&str, &str)]) -> reqwest::Response {
    s.http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(params)
        .send()
        .await
        .expect("auth")
}

/// The callback URL after alice logs in through `first`.
async fn callback(s: &Server, first: reqwest::Response) -> String {
    let done = s.log_in_alice(first).await;
    assert_eq!(done.status(), 302);
    done.headers()["location"].to_str().expect("loc").to_owned()
}

fn request_claims(s: &Server, state: &str) -> Value {
    json!({
        "iss": "app", "aud": format!("{}/realms/demo", s.base), "client_id": "app",
        "response_type": "code", "redirect_uri": CB, "scope": "openid", "state": state,
        "nonce": "n-1", "max_age": 300, "exp": gatehouse_core::time::now() + 60,
    })
}

#[tokio::test]
async fn request_objects_carry_the_authorization_request() {
    let s = start().await;
    let t = s.demo_realm().await;
    let d = s.discovery("demo").await;
    assert_eq!(d["request_parameter_supported"], true);
    assert!(
        d["request_object_signing_alg_values_supported"]
            .as_array()
            .expect("algs")
            .contains(&json!("RS256"))
    );

    // Unsigned (Keycloak's default "any" allows it): its parameters win
    // over the query's, and the code carries its nonce.
    let obj = unsigned(&request_claims(&s, "from-object"));
    let first = authorize(
        &s,
        &[
            ("client_id", "app"),
            ("response_type", "code"),
            ("state", "from-query"),
            ("request", &obj),
        ],
    )
    .await;
    assert_eq!(first.status(), 200);
    let loc = callback(&s, first).await;
    assert!(loc.starts_with(CB), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("from-object"));
    let code = query_param(&loc, "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, CB)
        .await;
    let id = crate::support::claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["nonce"], "n-1");

    // HS256 with the client's secret.
    let obj = hs256("app-secret", &request_claims(&s, "hmac"));
    let first = authorize(&s, &[("client_id", "app"), ("request", &obj)]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        query_param(&callback(&s, first).await, "state").as_deref(),
        Some("hmac")
    );
    let forged = hs256("not-the-secret", &request_claims(&s, "hmac"));
    let r = authorize(&s, &[("client_id", "app"), ("request", &forged)]).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never a redirect");

    // RS256 with the client's published key; the client pins RS256.
    let (key, _) = SigningKey::generate(Alg::RS256).expect("key");
    let jwks = json!({"keys": [key.public_jwk()]}).to_string();
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["use.jwks.string"] = json!("true");
        c["attributes"]["jwks.string"] = json!(jwks);
        c["attributes"]["request.object.signature.alg"] = json!("RS256");
    })
    .await;
    let signed = gatehouse_jose::sign::sign(&key, &request_claims(&s, "rsa")).expect("sign");
    let first = authorize(&s, &[("client_id", "app"), ("request", &signed)]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        query_param(&callback(&s, first).await, "state").as_deref(),
        Some("rsa")
    );
    // Each of these is refused with an error page, never a login page.
    let now = gatehouse_core::time::now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = request_claims(&s, "bad");
        f(&mut c);
        gatehouse_jose::sign::sign(&key, &c).expect("sign")
    };
    let (head, rest) = signed.split_once('.').expect("dot");
    let (_, sig) = rest.split_once('.').expect("dot");
    let tampered = format!("{head}.{}.{sig}", b64(&request_claims(&s, "tampered")));
    let cases: Vec<(&str, String)> = vec![
        ("tampered payload", tampered),
        (
            "unsigned where RS256 is pinned",
            unsigned(&request_claims(&s, "x")),
        ),
        (
            "another client's id",
            with(&|c| c["client_id"] = json!("spa")),
        ),
        ("another issuer", with(&|c| c["iss"] = json!("spa"))),
        (
            "another audience",
            with(&|c| c["aud"] = json!("https://elsewhere")),
        ),
        ("expired", with(&|c| c["exp"] = json!(now - 600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 600))),
        ("nested request", with(&|c| c["request"] = json!("x"))),
        (
            "response_type mismatch",
            with(&|c| c["response_type"] = json!("token")),
        ),
        ("encrypted", "a.b.c.d.e".to_owned()),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (why, obj) in &cases {
        let r = authorize(
            &s,
            &[
                ("client_id", "app"),
                ("response_type", "code"),
                ("request", obj),
            ],
        )
        .await;
        assert_eq!(r.status(), 400, "{why}");
        assert!(r.headers().get("location").is_none(), "{why}");
    }
    // Fractional and extreme NumericDates are times, not errors or
    // overflows.
    let extreme = |c: &mut Value| {
        c["exp"] = json!(i64::MAX);
        c["nbf"] = json!(i64::MIN);
    };
    for (why, obj) in [
        ("exp and nbf at the ends of i64", with(&extreme)),
        (
            "fractional exp",
            with(&|c| c["exp"] = json!(now as f64 + 60.5)),
        ),
    ] {
        let r = authorize(&s, &[("client_id", "app"), ("request", &obj)]).await;
        assert_eq!(r.status(), 200, "{why}");
    }

    // A client that requires request objects: a plain request is refused.
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["request.object.required"] = json!("request only");
    })
    .await;
    let plain = authorize(
        &s,
        &[
            ("client_id", "app"),
            ("response_type", "code"),
            ("redirect_uri", CB),
        ],
    )
    .await;
    assert_eq!(plain.status(), 400);
    let first = authorize(&s, &[("client_id", "app"), ("request", &signed)]).await;
    assert_eq!(first.status(), 200, "with one it goes on");
}

/// A pushed authorization request may carry its parameters as a request
/// object: verified at the push (RFC 9126 §2.1), stored as parameters.
#[tokio::test]
async fn pushed_requests_may_carry_a_request_object() {
    let s = start().await;
    s.demo_realm().await;
    let par = format!(
        "{}/realms/demo/protocol/openid-connect/ext/par/request",
        s.base
    );
    let push = |obj: String| {
        let (s, par) = (&s, par.clone());
        async move {
            s.http
                .post(par)
                .basic_auth("app", Some("app-secret"))
                .form(&[("request", obj.as_str())])
                .send()
                .await
                .expect("send")
        }
    };
    let r = push(hs256("app-secret", &request_claims(&s, "pushed-object"))).await;
    assert_eq!(r.status(), 201);
    let uri = r.json::<Value>().await.expect("json")["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let first = authorize(&s, &[("client_id", "app"), ("request_uri", &uri)]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        query_param(&callback(&s, first).await, "state").as_deref(),
        Some("pushed-object")
    );
    let r = push(hs256("wrong", &request_claims(&s, "x"))).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "invalid_request_object");
}

/// A request object by reference (OIDC Core §6.2): fetched only from a URL
/// the client registered in `request.uris`; an unregistered one is
/// refused by redirect without a fetch, a failing or oversized one with
/// the error page.
#[tokio::test]
async fn request_objects_by_reference_come_from_registered_urls_only() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = start().await;
    let t = s.demo_realm().await;
    assert_eq!(
        s.discovery("demo").await["request_uri_parameter_supported"],
        true
    );
    let obj = hs256("app-secret", &request_claims(&s, "by-reference"));
    let fetched = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let app = axum::Router::new()
        .route(
            "/req/good",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let obj = obj.clone();
                async move { obj }
            }),
        )
        .route(
            "/req/big",
            axum::routing::get(|| async { "x".repeat(200_000) }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let peer = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let good = format!("{peer}/req/good");
    let params = |uri: &str| {
        vec![
            ("client_id", "app".to_owned()),
            ("response_type", "code".to_owned()),
            ("redirect_uri", CB.to_owned()),
            ("request_uri", uri.to_owned()),
        ]
    };
    let get = |uri: String| {
        let s = &s;
        let p = params(&uri);
        async move {
            s.http
                .get(format!(
                    "{}/realms/demo/protocol/openid-connect/auth",
                    s.base
                ))
                .query(&p)
                .send()
                .await
                .expect("auth")
        }
    };
    // Not registered: refused by redirect, and nothing fetched.
    let r = get(good.clone()).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc");
    assert_eq!(
        query_param(loc, "error").as_deref(),
        Some("invalid_request_uri")
    );
    assert_eq!(fetched.load(Ordering::SeqCst), 0);
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["request.uris"] = json!(format!("https://other.example/r##{peer}/req/*"));
    })
    .await;
    let first = get(good.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    assert_eq!(
        query_param(&callback(&s, first).await, "state").as_deref(),
        Some("by-reference")
    );
    for bad in ["/req/missing", "/req/big"] {
        let r = get(format!("{peer}{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}");
    }
}
