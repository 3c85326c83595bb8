//! The implicit and hybrid flows (OIDC Core §3.2, §3.3), for clients with
//! Keycloak's `implicitFlowEnabled`: tokens in the fragment, the ID token
//! bound by nonce and `at_hash`/`c_hash`, never a refresh token from the
//! front channel, never tokens in a query string; every other client and
//! request refused with the error the spec names.

use crate::support::{Server, claims, start};
use base64::Engine;
use serde_json::json;
use std::collections::HashMap;

const REDIRECT: &str = "http://127.0.0.1/legacy/cb";

fn half_hash(v: &str) -> String {
    let d = gatehouse_core::id::sha256(v.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..16])
}

/// Logs alice in for `client` with `params`; the redirect's parameters,
/// from the fragment or the query.
async fn authorize(s: &Server, client: &str, params: &[(&str, &str)]) -> HashMap<String, String> {
    let redirect = if client == "app" {
        "http://127.0.0.1/cb"
    } else {
        REDIRECT
    };
    let mut q = vec![
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid"),
        ("state", "st"),
    ];
    q.extend_from_slice(params);
    let first = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&q)
        .send()
        .await
        .expect("auth");
    let done = if first.status() == 200 {
        s.log_in_alice(first).await
    } else {
        first
    };
    assert_eq!(done.status(), 302);
    let loc = url::Url::parse(done.headers()["location"].to_str().expect("loc")).expect("url");
    let raw = loc
        .fragment()
        .map(str::to_owned)
        .or(loc.query().map(str::to_owned));
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn implicit_and_hybrid_flows_for_clients_that_allow_them() {
    let s = start().await;
    let t = s.demo_realm().await;
    let (st, _) = s
        .admin_post(
            &t,
            "/demo/clients",
            &json!({"clientId": "legacy-spa", "publicClient": true, "implicitFlowEnabled": true,
                "redirectUris": ["http://127.0.0.1/legacy/*"]}),
        )
        .await;
    assert_eq!(st, 201);
    let d = s.discovery("demo").await;
    assert!(
        d["response_types_supported"]
            .as_array()
            .expect("types")
            .contains(&json!("code id_token token"))
    );

    // Implicit: both tokens in the fragment, no code, no refresh token.
    let p = authorize(
        &s,
        "legacy-spa",
        &[("response_type", "id_token token"), ("nonce", "n-1")],
    )
    .await;
    assert!(
        !p.contains_key("code") && !p.contains_key("refresh_token"),
        "{p:?}"
    );
    assert_eq!(p["token_type"], "Bearer");
    assert_eq!(p["state"], "st");
    let at = &p["access_token"];
    let id = s.verified("demo", &p["id_token"]).await;
    assert_eq!(id["aud"], "legacy-spa");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["at_hash"], half_hash(at).as_str());
    assert_eq!(id["s_hash"], half_hash("st").as_str());
    assert_eq!(claims(at)["sid"], id["sid"]);
    // Keycloak's accessTokenLifespanForImplicitFlow (15 minutes), not the
    // realm's 5-minute access tokens.
    let at_claims = claims(at);
    assert_eq!(
        at_claims["exp"].as_i64().expect("exp") - at_claims["iat"].as_i64().expect("iat"),
        900
    );
    assert_eq!(p["expires_in"], "900");
    let r = s.userinfo("demo", at).await;
    assert_eq!(r.status(), 200, "the front-channel token is a live token");

    // Hybrid: the code with an ID token bound to it; the code redeems.
    let verifier =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gatehouse_core::id::bytes::<32>());
    let challenge = pkce_challenge(&verifier);
    let p = authorize(
        &s,
        "legacy-spa",
        &[
            ("response_type", "code id_token"),
            ("nonce", "n-2"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert!(!p.contains_key("access_token"), "{p:?}");
    let id = s.verified("demo", &p["id_token"]).await;
    assert_eq!(id["c_hash"], half_hash(&p["code"]).as_str());
    assert!(id.get("at_hash").is_none());
    let r = s
        .http
        .post(s.token_url("demo"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "legacy-spa"),
            ("code", p["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);

    // Refusals, each with its error.
    for (client, params, error) in [
        (
            "legacy-spa",
            vec![("response_type", "id_token token")],
            "invalid_request",
        ),
        (
            "legacy-spa",
            vec![
                ("response_type", "id_token"),
                ("nonce", "n"),
                ("response_mode", "query"),
            ],
            "invalid_request",
        ),
        (
            "app",
            vec![("response_type", "id_token token"), ("nonce", "n")],
            "unauthorized_client",
        ),
        (
            "legacy-spa",
            vec![("response_type", "code code")],
            "unsupported_response_type",
        ),
        (
            "legacy-spa",
            vec![("response_type", "none")],
            "unsupported_response_type",
        ),
        // Missing altogether: a malformed request, as Keycloak says.
        ("legacy-spa", vec![], "invalid_request"),
    ] {
        let p = authorize(&s, client, &params).await;
        assert_eq!(
            p.get("error").map(String::as_str),
            Some(error),
            "{params:?}: {p:?}"
        );
        assert!(!p.contains_key("access_token") && !p.contains_key("id_token"));
    }
}

/// PKCE S256 challenge: the full SHA-256, base64url.
fn pkce_challenge(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(gatehouse_core::id::sha256(v.as_bytes()))
}
