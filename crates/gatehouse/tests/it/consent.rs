//! The consent screen end to end: a client with `consentRequired` gets a
//! code only after the user said yes, once per scope set; `prompt=consent`
//! asks again, `prompt=none` fails with `consent_required` when an answer
//! is missing, a "No" sends `access_denied`, admins see and withdraw
//! consents, and the password grant is refused for such a client.

use crate::support::{LoginPage, Server, between, set_cookie, start};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1/tp";

fn query(loc: &str, key: &str) -> Option<String> {
    url::Url::parse(loc)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn authorize(s: &Server, cookie: Option<&str>, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut q = vec![
        ("client_id", "thirdparty"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid orders:read"),
        ("state", "st"),
    ];
    q.extend_from_slice(extra);
    let mut r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&q);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.send().await.expect("auth")
}

/// Posts the consent page `html` (read from `first`, whose CSRF cookie
/// it carries, or with `login`'s) with `button`.
async fn answer(
    s: &Server,
    html: &str,
    csrf_cookie: &str,
    extra_cookie: Option<&str>,
    button: &str,
) -> reqwest::Response {
    let action = format!(
        "{}{}",
        s.base,
        between(html, "id=\"kc-oauth\" method=\"post\" action=\"", "\"").replace("&amp;", "&")
    );
    let csrf = between(html, "name=\"csrf\" value=\"", "\"");
    let cookie = match extra_cookie {
        Some(e) => format!("{csrf_cookie}; {e}"),
        None => csrf_cookie.to_owned(),
    };
    s.http
        .post(action)
        .header("cookie", cookie)
        .form(&[("csrf", csrf), (button, "x")])
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn consent_is_asked_once_remembered_and_withdrawn() {
    let s = start().await;
    let t = s.demo_realm().await;
    let (st, _) = s
        .admin_post(
            &t,
            "/demo/clients",
            &json!({"clientId": "thirdparty", "name": "Expense Tracker", "secret": "tp-secret",
                "consentRequired": true, "directAccessGrantsEnabled": true,
                "redirectUris": [REDIRECT], "optionalClientScopes": ["orders:read"]}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, found) = s.admin_get(&t, "/demo/clients?clientId=thirdparty").await;
    assert_eq!(found[0]["consentRequired"], true);
    let (_, app) = s.admin_get(&t, "/demo/clients?clientId=app").await;
    assert_eq!(app[0]["consentRequired"], false);

    // No page to ask on: the password grant is refused.
    let r = s
        .password_grant(
            "demo",
            "thirdparty",
            Some("tp-secret"),
            "alice",
            "alice-pw",
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_description"], "Client requires user consent");

    // Login, then the consent page, then the code.
    let first = authorize(&s, None, &[]).await;
    let login = LoginPage::read(&s, first).await;
    let r = login
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 200, "the consent page, not yet a code");
    let html = r.text().await.expect("html");
    assert!(html.contains("Expense Tracker"), "{html}");
    assert!(html.contains("orders:read"), "{html}");
    let done = login.post_form(&s, &html, &[("accept", "Yes")]).await;
    assert_eq!(done.status(), 302);
    let loc = done.headers()["location"].to_str().expect("loc").to_owned();
    assert!(
        loc.starts_with(REDIRECT) && query(&loc, "code").is_some(),
        "{loc}"
    );
    let sso = set_cookie(&done, "GATEHOUSE_IDENTITY");
    let alice = s.user_id(&t, "demo", "alice").await;
    let (_, consents) = s
        .admin_get(&t, &format!("/demo/users/{alice}/consents"))
        .await;
    assert_eq!(consents[0]["clientId"], "thirdparty");
    assert!(
        consents[0]["grantedClientScopes"]
            .as_array()
            .expect("scopes")
            .contains(&json!("orders:read"))
    );

    // Remembered: the next authorization goes straight to the client.
    let r = authorize(&s, Some(&sso), &[]).await;
    assert_eq!(r.status(), 302);
    // prompt=consent asks again; "No" is access_denied with the state.
    let r = authorize(&s, Some(&sso), &[("prompt", "consent")]).await;
    assert_eq!(r.status(), 200);
    let csrf_cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    let no = answer(&s, &html, &csrf_cookie, Some(&sso), "cancel").await;
    assert_eq!(no.status(), 302);
    let loc = no.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&loc, "state").as_deref(), Some("st"));

    // Withdrawn: prompt=none cannot ask, so consent_required; a second
    // withdrawal finds nothing.
    let consent = format!("/demo/users/{alice}/consents/thirdparty");
    assert_eq!(s.admin_delete(&t, &consent).await, 204);
    assert_eq!(s.admin_delete(&t, &consent).await, 404);
    let r = authorize(&s, Some(&sso), &[("prompt", "none")]).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(query(&loc, "error").as_deref(), Some("consent_required"));
    // With the SSO session the page comes straight away, and "Yes" gives a code.
    let r = authorize(&s, Some(&sso), &[]).await;
    assert_eq!(r.status(), 200);
    let csrf_cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    let yes = answer(&s, &html, &csrf_cookie, Some(&sso), "accept").await;
    assert_eq!(yes.status(), 302);
    let loc = yes.headers()["location"].to_str().expect("loc").to_owned();
    let code = query(&loc, "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("thirdparty", "tp-secret"), &code, REDIRECT)
        .await;
    assert!(tokens["access_token"].is_string());
}
