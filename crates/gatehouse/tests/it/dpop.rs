//! DPoP (RFC 9449): tokens bound to a client's key at the token endpoint,
//! proofs checked at userinfo and at the gateway, and bound tokens refused
//! wherever they arrive without a proof of their key.

use crate::peers::{issuer, upstream};
use crate::support::{Server, start};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_jose::dpop::{proof, thumbprint};
use gatehouse_jose::keys::{Alg, SigningKey};
use serde_json::{Value, json};

fn key(alg: Alg) -> SigningKey {
    gatehouse_jose::install_crypto_provider();
    SigningKey::generate(alg).expect("key").0
}

fn jkt(k: &SigningKey) -> String {
    thumbprint(k.public_jwk()).expect("thumbprint")
}

fn now() -> i64 {
    gatehouse_core::time::now()
}

/// A JWT's claims, unverified (the IdP's own checks are what is tested).
fn payload(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json")
}

/// A token request with `form`, and a proof when given.
async fn token_request(s: &Server, form: &[(&str, &str)], proof: Option<&str>) -> (u16, Value) {
    let mut r = s.http.post(s.token_url("demo")).form(form);
    if let Some(p) = proof {
        r = r.header("DPoP", p);
    }
    let r = r.send().await.expect("token");
    (r.status().as_u16(), r.json().await.expect("json"))
}

fn proof_for_token_endpoint(s: &Server, k: &SigningKey) -> String {
    proof(k, "POST", &s.token_url("demo"), None, now()).expect("proof")
}

/// `GET url` with `Authorization: {scheme} {token}` and a DPoP proof
/// when given.
async fn get(
    s: &Server,
    url: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut r = s
        .http
        .get(url)
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        r = r.header("DPoP", p);
    }
    r.send().await.expect("send")
}

async fn userinfo(s: &Server, at: &str, scheme: &str, proof: Option<&str>) -> reqwest::Response {
    let url = format!("{}/realms/demo/protocol/openid-connect/userinfo", s.base);
    get(s, &url, scheme, at, proof).await
}

const BINDING_FAILED: &str = "Bearer realm=\"demo\", error=\"invalid_token\", error_description=\"DPoP proof and token binding verification failed\"";

#[tokio::test]
async fn a_public_clients_tokens_are_bound_and_refresh_and_userinfo_need_its_key() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let disco = s.discovery("demo").await;
    assert!(
        disco["dpop_signing_alg_values_supported"]
            .as_array()
            .expect("algs")
            .contains(&json!("ES256"))
    );
    let k = key(Alg::ES256);
    let login = [
        ("grant_type", "password"),
        ("client_id", "spa"),
        ("username", "alice"),
        ("password", "alice-pw"),
        ("scope", "openid"),
    ];
    let (st, t) = token_request(&s, &login, Some(&proof_for_token_endpoint(&s, &k))).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "DPoP");
    let at = t["access_token"].as_str().expect("at").to_owned();
    let claims = s.verified("demo", &at).await;
    assert_eq!(claims["cnf"]["jkt"], json!(jkt(&k)));
    assert_eq!(claims["typ"], "DPoP");
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(
        payload(&rt)["cnf"]["jkt"],
        json!(jkt(&k)),
        "public client: refresh bound too"
    );
    assert!(
        payload(t["id_token"].as_str().expect("id"))
            .get("cnf")
            .is_none()
    );

    // Refresh: without a proof, or with another key's, nothing is spent.
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", rt.as_str()),
    ];
    // Keycloak's answers: the grant is refused (`invalid_grant`).
    let (st, e) = token_request(&s, &refresh, None).await;
    assert_eq!(
        (st, &e["error"], &e["error_description"]),
        (
            400,
            &json!("invalid_grant"),
            &json!("DPoP proof is missing")
        )
    );
    let thief = key(Alg::ES256);
    let (st, e) = token_request(&s, &refresh, Some(&proof_for_token_endpoint(&s, &thief))).await;
    assert_eq!(
        (st, &e["error"], &e["error_description"]),
        (
            400,
            &json!("invalid_grant"),
            &json!("DPoP confirmation doesn't match DPoP proof")
        )
    );
    let used = proof_for_token_endpoint(&s, &k);
    let (st, t2) = token_request(&s, &refresh, Some(&used)).await;
    assert_eq!(st, 200, "the holder refreshes: {t2}");
    let at2 = t2["access_token"].as_str().expect("at").to_owned();
    assert_eq!(s.verified("demo", &at2).await["cnf"]["jkt"], json!(jkt(&k)));
    let rt2 = t2["refresh_token"].as_str().expect("rt");
    let again = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", rt2),
    ];
    let (st, e) = token_request(&s, &again, Some(&used)).await;
    assert_eq!(
        (st, &e["error_description"]),
        (400, &json!("DPoP proof has already been used"))
    );

    // Userinfo: the DPoP scheme with a proof of the key, for this request.
    let url = format!("{}/realms/demo/protocol/openid-connect/userinfo", s.base);
    let p = proof(&k, "GET", &url, Some(&at2), now()).expect("proof");
    let r = userinfo(&s, &at2, "DPoP", Some(&p)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["preferred_username"],
        "alice"
    );
    let mint = |k: &SigningKey, method: &str, url: &str, token: &str| {
        Some(proof(k, method, url, Some(token), now()).expect("proof"))
    };
    let refused = [
        ("the same proof twice", "DPoP", Some(p.clone())),
        ("no proof", "DPoP", None),
        ("as a plain bearer token", "Bearer", None),
        (
            "another key's proof",
            "DPoP",
            mint(&thief, "GET", &url, &at2),
        ),
        (
            "a proof for another token",
            "DPoP",
            mint(&k, "GET", &url, &at),
        ),
        (
            "a proof for another URL",
            "DPoP",
            mint(&k, "GET", &s.token_url("demo"), &at2),
        ),
        (
            "a proof for another method",
            "DPoP",
            mint(&k, "POST", &url, &at2),
        ),
    ];
    for (why, scheme, p) in refused {
        let r = userinfo(&s, &at2, scheme, p.as_deref()).await;
        assert_eq!(r.status(), 401, "{why}");
        // In the scheme the request used, as Keycloak answers.
        let challenge = r.headers()["www-authenticate"].to_str().expect("ascii");
        if challenge.starts_with("Bearer") {
            assert_eq!(challenge, BINDING_FAILED);
        } else {
            assert!(challenge.starts_with("DPoP algs=\"RS256 "), "{challenge}");
            assert!(
                challenge.ends_with(", realm=\"demo\", error=\"invalid_token\", error_description=\"DPoP proof and token binding verification failed\""),
                "{challenge}"
            );
        }
    }
    // An unbound token under the DPoP scheme is refused too.
    let (_, plain) = token_request(&s, &login, None).await;
    let plain_at = plain["access_token"].as_str().expect("at");
    assert_eq!(plain["token_type"], "Bearer");
    let r = userinfo(
        &s,
        plain_at,
        "DPoP",
        Some(&proof(&k, "GET", &url, Some(plain_at), now()).expect("p")),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(userinfo(&s, plain_at, "Bearer", None).await.status(), 200);

    // APIs that check no proof refuse a bound token.
    let r = s
        .http
        .get(format!("{}/realms/demo/account", s.base))
        .bearer_auth(&at2)
        .send()
        .await
        .expect("account");
    assert_eq!(r.status(), 401);

    // Introspection shows the binding, for a resource server to check.
    let i: Value = s.introspect_demo(&at2).await;
    assert_eq!(
        (&i["active"], &i["token_type"]),
        (&json!(true), &json!("DPoP"))
    );
    assert_eq!(i["cnf"]["jkt"], json!(jkt(&k)));
    // Revocation needs no proof, and takes effect.
    let r = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/revoke",
            s.base
        ))
        .form(&[("client_id", "spa"), ("token", at2.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    assert_eq!(s.introspect_demo(&at2).await["active"], false);
    let p = proof(&k, "GET", &url, Some(&at2), now()).expect("proof");
    assert_eq!(userinfo(&s, &at2, "DPoP", Some(&p)).await.status(), 401);
    let _ = admin;
}

#[tokio::test]
async fn confidential_clients_bind_access_tokens_and_may_require_proofs() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let k = key(Alg::PS256);
    let login = [
        ("grant_type", "password"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
        ("username", "alice"),
        ("password", "alice-pw"),
    ];
    let (st, t) = token_request(&s, &login, Some(&proof_for_token_endpoint(&s, &k))).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        s.verified("demo", t["access_token"].as_str().expect("at"))
            .await["cnf"]["jkt"],
        json!(jkt(&k))
    );
    // RFC 9449 §5: a confidential client's refresh token is not bound.
    let rt = t["refresh_token"].as_str().expect("rt");
    assert!(payload(rt).get("cnf").is_none());
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
        ("refresh_token", rt),
    ];
    let (st, t2) = token_request(&s, &refresh, None).await;
    assert_eq!((st, &t2["token_type"]), (200, &json!("Bearer")));

    // Bad proofs are refused with Keycloak's descriptions.
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ];
    for (p, why) in [
        (
            proof(&k, "GET", &s.token_url("demo"), None, now()).expect("p"),
            "DPoP HTTP method mismatch",
        ),
        (
            proof(&k, "POST", "https://server.example.com/token", None, now()).expect("p"),
            "DPoP HTTP URL mismatch",
        ),
        (
            proof(&k, "POST", &s.token_url("demo"), None, now() - 100_000).expect("p"),
            "DPoP proof is not active",
        ),
        ("garbage".to_owned(), "DPoP header verification failure"),
    ] {
        let (st, e) = token_request(&s, &cc, Some(&p)).await;
        assert_eq!(
            (st, &e["error"], &e["error_description"]),
            (400, &json!("invalid_request"), &json!(why))
        );
    }
    let (st, t) = token_request(&s, &cc, Some(&proof_for_token_endpoint(&s, &k))).await;
    assert_eq!((st, &t["token_type"]), (200, &json!("DPoP")));

    // `dpop.bound.access.tokens`: every token request needs a proof.
    s.edit_client(&admin, "demo", "app", |c| {
        c["attributes"]["dpop.bound.access.tokens"] = json!("true");
    })
    .await;
    for form in [&login[..], &cc[..]] {
        let (st, e) = token_request(&s, form, None).await;
        assert_eq!(
            (st, &e["error"], &e["error_description"]),
            (
                400,
                &json!("invalid_request"),
                &json!("DPoP proof is missing")
            )
        );
    }
    let (st, t) = token_request(&s, &login, Some(&proof_for_token_endpoint(&s, &k))).await;
    assert_eq!((st, &t["token_type"]), (200, &json!("DPoP")));
    let rt = t["refresh_token"].as_str().expect("rt");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
        ("refresh_token", rt),
    ];
    assert_eq!(token_request(&s, &refresh, None).await.0, 400);
    // A confidential client may move to a new key on refresh (Keycloak's
    // test does so).
    let k2 = key(Alg::ES256);
    let (st, t) = token_request(&s, &refresh, Some(&proof_for_token_endpoint(&s, &k2))).await;
    assert_eq!(st, 200);
    assert_eq!(
        s.verified("demo", t["access_token"].as_str().expect("at"))
            .await["cnf"]["jkt"],
        json!(jkt(&k2))
    );
}

fn gateway_config(s: &Server, iss: &str, up: &str) -> String {
    format!(
        r#"
[gateway]
audit_log = "{}"

[authorizers.own]
type = "jwt"
issuer = "{}/realms/demo"

[authorizers.foreign]
type = "jwt"
issuer = "{iss}"
audiences = ["orders-api"]

[[routes]]
name = "own"
path = "/own"
upstream = "{up}"
authorizers = ["own"]

[authorizers.strict]
type = "jwt"
issuer = "{iss}"
audiences = ["orders-api"]
require_dpop = true

[[routes]]
name = "foreign"
path = "/foreign"
upstream = "{up}"
authorizers = ["foreign"]

[[routes]]
name = "strict"
path = "/strict"
upstream = "{up}"
authorizers = ["strict"]
"#,
        s.audit_path(),
        s.base
    )
}

#[tokio::test]
async fn the_gateway_takes_bound_tokens_only_with_a_proof_of_their_key() {
    let s = start().await;
    s.demo_realm().await;
    let iss = issuer().await;
    let up = upstream().await;
    s.configure(&gateway_config(&s, &iss.url, &up.url))
        .expect("config");
    let k = key(Alg::ES256);
    let thief = key(Alg::ES256);
    let url = format!("{}/foreign/orders", s.gw);
    let bound = iss.sign(&iss.claims(json!({"cnf": {"jkt": jkt(&k)}})));
    let call = |scheme: &'static str, tok: String, proof: Option<String>| {
        let (s, url) = (&s, url.clone());
        async move { get(s, &url, scheme, &tok, proof.as_deref()).await }
    };
    let good = || proof(&k, "GET", &url, Some(&bound), now()).expect("proof");

    let p = good();
    let r = call("DPoP", bound.clone(), Some(p.clone())).await;
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.expect("json");
    assert!(
        echoed["headers"].get("dpop").is_none(),
        "the proof stays at the gateway"
    );
    assert!(echoed["headers"].get("authorization").is_none());
    assert_eq!(echoed["headers"]["x-gatehouse-subject"], "user-1");
    assert_eq!(
        call("DPoP", bound.clone(), Some(good())).await.status(),
        200,
        "a new proof each time"
    );
    assert_eq!(up.hits(), 2);

    let refused = [
        (
            "DPoP",
            bound.clone(),
            Some(p),
            "DPoP proof has already been used",
        ),
        ("DPoP", bound.clone(), None, "DPoP proof is missing"),
        (
            "Bearer",
            bound.clone(),
            None,
            "DPoP-bound token sent without the DPoP scheme",
        ),
        (
            "Bearer",
            bound.clone(),
            Some(good()),
            "DPoP-bound token sent without the DPoP scheme",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(proof(&thief, "GET", &url, Some(&bound), now()).expect("p")),
            "DPoP proof made with another key than the token's",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(proof(&k, "POST", &url, Some(&bound), now()).expect("p")),
            "DPoP HTTP method mismatch",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(
                proof(
                    &k,
                    "GET",
                    &format!("{}/foreign/other", s.gw),
                    Some(&bound),
                    now(),
                )
                .expect("p"),
            ),
            "DPoP HTTP URL mismatch",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(proof(&k, "GET", &url, Some("another token"), now()).expect("p")),
            "DPoP proof access token hash mismatch",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(proof(&k, "GET", &url, None, now()).expect("p")),
            "No access token hash in DPoP proof",
        ),
        (
            "DPoP",
            bound.clone(),
            Some(proof(&k, "GET", &url, Some(&bound), now() - 60).expect("p")),
            "DPoP proof is not active",
        ),
        (
            "DPoP",
            iss.sign(&iss.claims(json!({}))),
            Some(good()),
            "DPoP scheme with a token that is not DPoP-bound",
        ),
        (
            "Bearer",
            iss.sign(&iss.claims(
                json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
            )),
            None,
            "token bound by a confirmation method the gateway cannot check",
        ),
    ];
    for (scheme, tok, p, why) in &refused {
        let r = call(scheme, tok.clone(), p.clone()).await;
        assert_eq!(r.status(), 401, "{why}");
        let challenges: Vec<&str> = r
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("Bearer realm=\"gatehouse\""))
        );
        let dpop = challenges
            .iter()
            .find(|c| c.starts_with("DPoP "))
            .expect("DPoP challenge");
        assert!(dpop.contains("algs=\"RS256 "), "{dpop}");
        let error = if why.starts_with("DPoP proof")
            || why.starts_with("DPoP HTTP")
            || why.starts_with("No access")
        {
            "invalid_dpop_proof"
        } else {
            "invalid_token"
        };
        assert!(
            dpop.contains(&format!("error=\"{error}\"")),
            "{why}: {dpop}"
        );
        assert!(
            !r.text().await.expect("body").contains("DPoP"),
            "generic body"
        );
    }
    assert_eq!(up.hits(), 2, "nothing refused reached the upstream");
    let reasons = s.audit_reasons(401).await;
    let want: Vec<Value> = refused.iter().map(|r| json!(r.3)).collect();
    assert_eq!(reasons, want);
    // A valid token refused for want of its proof: the line names whose
    // token was used.
    let audit = s.audit().await;
    let line = audit
        .iter()
        .find(|l| l["reason"] == "DPoP-bound token sent without the DPoP scheme")
        .expect("audit line");
    assert_eq!(line["subject"], "user-1", "{line}");

    // An authorizer with `require_dpop` refuses plain bearer tokens.
    let strict = format!("{}/strict/x", s.gw);
    let plain = iss.sign(&iss.claims(json!({})));
    let r = s
        .http
        .get(&strict)
        .bearer_auth(&plain)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let p = proof(&k, "GET", &strict, Some(&bound), now()).expect("p");
    let r = get(&s, &strict, "DPoP", &bound, Some(&p)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.audit_reasons(401).await.last(),
        Some(&json!("a DPoP-bound token is required"))
    );
    // Without any token, the challenge says a DPoP token is wanted.
    let r = s.http.get(&strict).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let dpop_challenges = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter(|v| {
            v.to_str()
                .is_ok_and(|v| v.starts_with("DPoP algs=") && !v.contains("error="))
        })
        .count();
    assert_eq!(dpop_challenges, 1);
    // RFC 9728 metadata says so as well.
    let meta = |route: &'static str| {
        let s = &s;
        async move {
            s.http
                .get(format!(
                    "{}/.well-known/oauth-protected-resource/{route}",
                    s.gw
                ))
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let m = meta("strict").await;
    assert_eq!(m["dpop_bound_access_tokens_required"], true);
    assert!(
        m["dpop_signing_alg_values_supported"]
            .as_array()
            .expect("algs")
            .contains(&json!("ES256"))
    );
    assert_eq!(
        meta("foreign").await["dpop_bound_access_tokens_required"],
        false
    );
    let cookie_too = gateway_config(&s, &iss.url, &up.url).replace(
        "require_dpop = true",
        "require_dpop = true\ntoken_cookie = \"at\"",
    );
    let err = s.configure(&cookie_too).expect_err("refused");
    assert!(err.to_string().contains("require_dpop"), "{err}");

    // Gatehouse's own tokens, bound at its token endpoint.
    let own_url = format!("{}/own/x", s.gw);
    let (st, t) = token_request(
        &s,
        &[
            ("grant_type", "password"),
            ("client_id", "spa"),
            ("username", "alice"),
            ("password", "alice-pw"),
        ],
        Some(&proof_for_token_endpoint(&s, &k)),
    )
    .await;
    assert_eq!(st, 200);
    let at = t["access_token"].as_str().expect("at").to_owned();
    let p = proof(&k, "GET", &own_url, Some(&at), now()).expect("p");
    let r = get(&s, &own_url, "DPoP", &at, Some(&p)).await;
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(&own_url)
        .bearer_auth(&at)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        401,
        "a stolen bound token is worthless as a bearer token"
    );
}

#[tokio::test]
async fn dynamic_registration_takes_dpop_bound_access_tokens() {
    let s = start().await;
    s.demo_realm().await;
    let admin = s.admin_token().await;
    let reg_url = format!(
        "{}/realms/demo/clients-registrations/openid-connect",
        s.base
    );
    let register = |meta: Value| {
        let s = &s;
        let (url, admin) = (reg_url.clone(), admin.clone());
        async move {
            let r = s
                .http
                .post(&url)
                .bearer_auth(&admin)
                .json(&meta)
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (st, e) =
        register(json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": "yes"}))
            .await;
    assert_eq!((st, &e["error"]), (400, &json!("invalid_client_metadata")));
    let (st, reg) =
        register(json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": true}))
            .await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(reg["dpop_bound_access_tokens"], true);
    let id = reg["client_id"].as_str().expect("id");
    let secret = reg["client_secret"].as_str().expect("secret");
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let (st, e) = token_request(&s, &cc, None).await;
    assert_eq!((st, &e["error"]), (400, &json!("invalid_request")));
    let k = key(Alg::EdDSA);
    let (st, t) = token_request(&s, &cc, Some(&proof_for_token_endpoint(&s, &k))).await;
    assert_eq!((st, &t["token_type"]), (200, &json!("DPoP")));
    let (st, plain) = register(json!({"grant_types": ["client_credentials"]})).await;
    assert_eq!(
        (st, &plain["dpop_bound_access_tokens"]),
        (201, &json!(false))
    );
}

/// Alice's code from an authorization request with `query` (she logs in).
async fn code_for(s: &Server, query: &[(&str, &str)]) -> String {
    let first = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(query)
        .send()
        .await
        .expect("auth");
    assert_eq!(first.status(), 200, "login page");
    let r = crate::support::LoginPage::read(s, first)
        .await
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 302);
    let loc =
        reqwest::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
    loc.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

#[tokio::test]
async fn dpop_jkt_and_pushed_requests_bind_the_code_to_a_key() {
    let s = start().await;
    s.demo_realm().await;
    let k = key(Alg::ES256);
    let other = key(Alg::ES256);
    let verifier = "v".repeat(43);
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let bound_jkt = jkt(&k);
    let query = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", "http://127.0.0.1/spa/cb"),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", bound_jkt.as_str()),
    ];
    let redeem = |code: String, p: Option<String>| {
        let s = &s;
        let verifier = verifier.clone();
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1/spa/cb"),
                ("code_verifier", verifier.as_str()),
            ];
            token_request(s, &form, p.as_deref()).await
        }
    };
    let (st, e) = redeem(code_for(&s, &query).await, None).await;
    assert_eq!(
        (st, &e["error"], &e["error_description"]),
        (400, &json!("invalid_request"), &json!("DPoP Proof missing"))
    );
    let (st, e) = redeem(
        code_for(&s, &query).await,
        Some(proof_for_token_endpoint(&s, &other)),
    )
    .await;
    assert_eq!(
        (st, &e["error_description"]),
        (
            400,
            &json!("DPoP Proof public key thumbprint does not match dpop_jkt")
        )
    );
    let (st, t) = redeem(
        code_for(&s, &query).await,
        Some(proof_for_token_endpoint(&s, &k)),
    )
    .await;
    assert_eq!((st, &t["token_type"]), (200, &json!("DPoP")), "{t}");
    assert_eq!(
        s.verified("demo", t["access_token"].as_str().expect("at"))
            .await["cnf"]["jkt"],
        json!(bound_jkt)
    );

    // A pushed request with a proof binds its code the same way.
    let par_url = format!(
        "{}/realms/demo/protocol/openid-connect/ext/par/request",
        s.base
    );
    let push = |extra: Option<(&'static str, String)>, p: String| {
        let s = &s;
        let par_url = par_url.clone();
        async move {
            let mut form = vec![
                ("response_type", "code".to_owned()),
                ("redirect_uri", "http://127.0.0.1/cb".to_owned()),
                ("scope", "openid".to_owned()),
            ];
            form.extend(extra);
            let r = s
                .http
                .post(&par_url)
                .basic_auth("app", Some("app-secret"))
                .header("DPoP", p)
                .form(&form)
                .send()
                .await
                .expect("par");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let par_proof = |k: &SigningKey| proof(k, "POST", &par_url, None, now()).expect("p");
    let (st, e) = push(Some(("dpop_jkt", jkt(&other))), par_proof(&k)).await;
    assert_eq!(
        (st, &e["error_description"]),
        (
            400,
            &json!("DPoP Proof public key thumbprint does not match dpop_jkt.")
        )
    );
    let pushed_code = |uri: String| {
        let s = &s;
        async move { code_for(s, &[("client_id", "app"), ("request_uri", uri.as_str())]).await }
    };
    let app_redeem = |code: String, p: String| {
        let s = &s;
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1/cb"),
            ];
            token_request(s, &form, Some(&p)).await
        }
    };
    let (st, r) = push(None, par_proof(&k)).await;
    assert_eq!(st, 201, "{r}");
    let code = pushed_code(r["request_uri"].as_str().expect("uri").to_owned()).await;
    let (st, e) = app_redeem(code, proof_for_token_endpoint(&s, &other)).await;
    assert_eq!(
        (st, &e["error_description"]),
        (
            400,
            &json!("DPoP Proof public key thumbprint does not match dpop_jkt")
        )
    );
    let (_, r) = push(None, par_proof(&k)).await;
    let code = pushed_code(r["request_uri"].as_str().expect("uri").to_owned()).await;
    let (st, t) = app_redeem(code, proof_for_token_endpoint(&s, &k)).await;
    assert_eq!((st, &t["token_type"]), (200, &json!("DPoP")), "{t}");
}

#[tokio::test]
async fn the_admin_and_account_apis_take_bound_tokens_with_a_proof() {
    let s = start().await;
    s.demo_realm().await;
    let k = key(Alg::ES256);
    let master_token = s
        .http
        .post(s.token_url("master"))
        .header(
            "DPoP",
            proof(&k, "POST", &s.token_url("master"), None, now()).expect("p"),
        )
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", crate::support::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("token")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(master_token["token_type"], "DPoP");
    let admin = master_token["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    let status_of = |url: String, scheme: &'static str, p: Option<String>| {
        let (s, admin) = (&s, admin.clone());
        async move {
            get(s, &url, scheme, &admin, p.as_deref())
                .await
                .status()
                .as_u16()
        }
    };
    let realms = format!("{}/admin/realms", s.base);
    let p = proof(&k, "GET", &realms, Some(&admin), now()).expect("p");
    assert_eq!(
        status_of(realms.clone(), "DPoP", Some(p.clone())).await,
        200
    );
    assert_eq!(
        status_of(realms.clone(), "DPoP", Some(p)).await,
        401,
        "a proof is good once"
    );
    assert_eq!(status_of(realms.clone(), "DPoP", None).await, 401);
    assert_eq!(status_of(realms.clone(), "Bearer", None).await, 401);
    let other = key(Alg::ES256);
    let p = proof(&other, "GET", &realms, Some(&admin), now()).expect("p");
    assert_eq!(
        status_of(realms.clone(), "DPoP", Some(p)).await,
        401,
        "another key"
    );
    let users = format!("{}/admin/realms/demo/users", s.base);
    let p = proof(&k, "GET", &realms, Some(&admin), now()).expect("p");
    assert_eq!(
        status_of(users.clone(), "DPoP", Some(p)).await,
        401,
        "a proof for another URL"
    );
    // A forged marker of a checked proof counts for nothing.
    let r = s
        .http
        .get(&users)
        .header("Authorization", format!("DPoP {admin}"))
        .header("x-gatehouse-dpop-proven", jkt(&k))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let p = proof(&k, "GET", &users, Some(&admin), now()).expect("p");
    assert_eq!(status_of(users, "DPoP", Some(p)).await, 200);

    // The account API, with alice's bound token.
    let (_, t) = token_request(
        &s,
        &[
            ("grant_type", "password"),
            ("client_id", "spa"),
            ("username", "alice"),
            ("password", "alice-pw"),
        ],
        Some(&proof_for_token_endpoint(&s, &k)),
    )
    .await;
    let at = t["access_token"].as_str().expect("at");
    let account = format!("{}/realms/demo/account", s.base);
    let call = |p: Option<String>| {
        let (s, account) = (&s, account.clone());
        async move { get(s, &account, "DPoP", at, p.as_deref()).await }
    };
    let r = call(Some(
        proof(&k, "GET", &account, Some(at), now()).expect("p"),
    ))
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["username"], "alice");
    assert_eq!(call(None).await.status(), 401);
}
