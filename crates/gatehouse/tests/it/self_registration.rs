//! Keycloak's self-registration: the login page's "Register" link,
//! `/protocol/openid-connect/registrations` and `prompt=create`, where the
//! realm has `registrationAllowed`; Keycloak's form and messages; the new
//! user starts as an admin-created one and the login ends with a code.

use crate::oidc::query_param;
use crate::support::*;
use serde_json::{Value, json};

fn auth_params(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("state", "st"),
    ];
    p.extend_from_slice(extra);
    p
}

#[tokio::test]
async fn people_register_themselves_where_the_realm_allows_it() {
    let s = start().await;
    let t = s.demo_realm().await;
    let oidc = format!("{}/realms/demo/protocol/openid-connect", s.base);
    let get = |path: &'static str, extra: &'static [(&'static str, &'static str)]| {
        s.http
            .get(format!("{oidc}/{path}"))
            .query(&auth_params(extra))
            .send()
    };
    // Off by default, as in Keycloak.
    for r in [
        get("registrations", &[]).await.expect("get"),
        get("auth", &[("prompt", "create")]).await.expect("get"),
    ] {
        assert_eq!(r.status(), 400);
        assert!(
            r.text()
                .await
                .expect("html")
                .contains("Registration not allowed")
        );
    }
    let prompts = |d: &Value| d["prompt_values_supported"].clone();
    assert_eq!(
        prompts(&s.discovery("demo").await),
        json!(["none", "login", "consent"])
    );
    let login = get("auth", &[])
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(!login.contains("kc-registration"));

    assert_eq!(
        s.admin_put(&t, "/demo", Some(&json!({"registrationAllowed": true})))
            .await,
        204
    );
    assert_eq!(
        prompts(&s.discovery("demo").await),
        json!(["none", "login", "consent", "create"])
    );
    let login = get("auth", &[]).await.expect("get");
    let cookie = set_cookie(&login, "GATEHOUSE_CSRF");
    let html = login.text().await.expect("html");
    let link = href(&s, &html, "kc-registration");
    // The link belongs to the browser of that login.
    assert!(
        s.http
            .get(&link)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("html")
            .contains("timed out")
    );
    let r = s
        .http
        .get(&link)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let form = r.text().await.expect("html");
    assert!(
        form.contains("<h1>Register</h1>") && form.contains("name=\"username\""),
        "{form}"
    );
    let page = LoginPage::of(&s, &form, cookie.clone());

    // Keycloak's messages; what was typed comes back.
    let base = [
        ("firstName", "Bob"),
        ("lastName", "Builder"),
        ("email", "bob@example.com"),
        ("username", "bob"),
        ("password", "bob-pw-1"),
        ("password-confirm", "bob-pw-1"),
    ];
    let with = |k: &'static str, v: &'static str| {
        base.iter()
            .map(|(a, b)| (*a, if *a == k { v } else { *b }))
            .collect::<Vec<_>>()
    };
    for (k, v, message) in [
        (
            "password-confirm",
            "other",
            "Password confirmation doesn&#39;t match.",
        ),
        ("username", "alice", "Username already exists."),
        ("email", "alice@example.com", "Email already exists."),
        ("email", "not-an-address", "Invalid email address."),
        ("lastName", "", "Please specify last name."),
        // The realm's user profile: Keycloak's character sets and lengths.
        ("username", "bo b", "Value contains invalid character."),
        ("username", "bo", "Length must be between 3 and 255."),
        ("lastName", "<Builder>", "Value contains invalid character."),
    ] {
        let r = page.post_form(&s, &form, &with(k, v)).await;
        assert_eq!(r.status(), 200, "{k}");
        let html = r.text().await.expect("html");
        let shown = html.contains(message) || html.contains(&message.replace("&#39;", "'"));
        assert!(shown, "{k}: {html}");
        assert!(html.contains("value=\"Bob\""), "kept: {html}");
    }
    // Registered: the login ends with a code for the new user.
    let r = page.post_form(&s, &form, &base).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(r.headers().get("set-cookie").is_some(), "an SSO session");
    let code = query_param(&loc, "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    let id = claims(tokens["id_token"].as_str().expect("id"));
    assert_eq!(id["preferred_username"], "bob");
    assert_eq!(id["email"], "bob@example.com");
    assert_eq!(id["email_verified"], false);
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "bob", "bob-pw-1", None)
            .await
            .status(),
        200
    );
    // As one the admin API creates: the realm's default roles.
    let bob = s.user_id(&t, "demo", "bob").await;
    let (_, roles) = s
        .admin_get(&t, &format!("/demo/users/{bob}/role-mappings/realm"))
        .await;
    assert!(roles.to_string().contains("default-roles-demo"), "{roles}");
    let (_, ev) = s.admin_get(&t, "/demo/events?type=REGISTER").await;
    assert_eq!(ev[0]["details"]["register_method"], "form");
    assert_eq!(ev[0]["userId"], bob.as_str());
    assert!(!ev.to_string().contains("bob-pw-1"));

    // keycloak-js's register(): the registrations endpoint opens on the
    // form, as prompt=create does at the authorization endpoint; with the
    // address as username there is no username field.
    assert_eq!(
        s.admin_put(
            &t,
            "/demo",
            Some(&json!({"registrationEmailAsUsername": true}))
        )
        .await,
        204
    );
    let first = get("registrations", &[]).await.expect("get");
    assert_eq!(first.status(), 200);
    let page = LoginPage::read(&s, first).await;
    let r = get("auth", &[("prompt", "create")]).await.expect("get");
    let form = r.text().await.expect("html");
    assert!(
        form.contains("<h1>Register</h1>") && !form.contains("name=\"username\""),
        "{form}"
    );
    let r = page
        .post(&[
            ("firstName", "Carol"),
            ("lastName", "Cook"),
            ("email", "Carol@Example.com"),
            ("password", "carol-pw"),
            ("password-confirm", "carol-pw"),
        ])
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        s.password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "carol@example.com",
            "carol-pw",
            None
        )
        .await
        .status(),
        200
    );
}

/// The registration form offers the user profile's custom attributes that
/// users may edit (not those only admins may), holds them to the
/// profile's rules, and the new user has them.
#[tokio::test]
async fn registration_asks_for_the_profiles_custom_attributes() {
    let s = start().await;
    let t = s.demo_realm().await;
    let users_edit = json!({"view": ["admin", "user"], "edit": ["admin", "user"]});
    let (page, _) = registration_with(
        &s,
        &t,
        vec![
            json!({"name": "department", "displayName": "Department",
            "required": {"roles": ["user"]}, "permissions": users_edit,
            "validations": {"options": {"options": ["sales", "support"]}}}),
            json!({"name": "internal", "permissions": {"view": ["admin"], "edit": ["admin"]}}),
        ],
    )
    .await;
    let fields = |department: &'static str| {
        vec![
            ("firstName", "Dora"),
            ("lastName", "Dale"),
            ("email", "dora@example.com"),
            ("username", "dora"),
            ("password", "dora-pw-1"),
            ("password-confirm", "dora-pw-1"),
            ("department", department),
            ("internal", "smuggled"),
        ]
    };
    for (department, message) in [("", "Please specify this field."), ("hr", "Invalid value.")] {
        let r = page.post(&fields(department)).await;
        let html = r.text().await.expect("html");
        assert!(html.contains(message), "{department}: {html}");
        assert!(
            html.contains("<label for=\"department\">Department</label>")
                && html.contains("name=\"department\" type=\"text\" required")
                && !html.contains("name=\"internal\""),
            "{html}"
        );
    }
    let r = page.post(&fields("sales")).await;
    assert_eq!(r.status(), 302);
    let dora = s.user_id(&t, "demo", "dora").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{dora}")).await;
    assert_eq!(u["attributes"], json!({"department": ["sales"]}), "{u}");
}

/// Annotations draw the profile's custom attributes as Keycloak's themes
/// do (a select with labelled options, checkboxes for a multivalued
/// choice, several text inputs for a multivalued text), and a multivalued
/// attribute takes every value posted, where a single-valued field posted
/// twice is refused.
#[tokio::test]
async fn registration_draws_annotated_and_multivalued_attributes() {
    let s = start().await;
    let t = s.demo_realm().await;
    let users_edit = json!({"view": ["admin", "user"], "edit": ["admin", "user"]});
    let (page, html) = registration_with(
        &s,
        &t,
        vec![
            json!({"name": "department", "displayName": "Department", "permissions": users_edit,
            "annotations": {"inputType": "select", "inputOptionLabels": {"ops": "Operations"},
                            "inputHelperTextAfter": "Where you work"},
            "validations": {"options": {"options": ["sales", "ops"]}}}),
            json!({"name": "tags", "displayName": "Tags", "multivalued": true, "permissions": users_edit,
            "annotations": {"inputType": "multiselect-checkboxes"},
            "validations": {"options": {"options": ["red", "green", "blue"]}}}),
            json!({"name": "nicknames", "displayName": "Nicknames", "multivalued": true,
            "permissions": users_edit, "validations": {"multivalued": {"max": 2}}}),
        ],
    )
    .await;
    assert!(
        html.contains(
            "<select id=\"department\" name=\"department\" aria-describedby=\"department-after\">"
        ) && html.contains("<option value=\"ops\">Operations</option>")
            && html.contains("<p class=\"helper\" id=\"department-after\">Where you work</p>")
            && html
                .contains("<input type=\"checkbox\" id=\"tags-2\" name=\"tags\" value=\"blue\">")
            && html
                .contains("<input id=\"nicknames\" name=\"nicknames\" type=\"text\" value=\"\">"),
        "{html}"
    );
    let mut fields = vec![
        ("firstName", "Dora"),
        ("lastName", "Dale"),
        ("email", "dora@example.com"),
        ("username", "dora"),
        ("password", "dora-pw-1"),
        ("password-confirm", "dora-pw-1"),
        ("department", "ops"),
        ("tags", "red"),
        ("tags", "blue"),
        ("nicknames", "Do"),
        ("nicknames", "D"),
        ("nicknames", "Dodo"),
    ];
    // Three nicknames where the profile allows two: refused, and the
    // page keeps what was chosen.
    let r = page.post(&fields).await;
    let html = r.text().await.expect("html");
    assert!(html.contains("must have at least"), "{html}");
    assert!(
        html.contains("value=\"blue\" checked") && html.contains("<option value=\"ops\" selected>"),
        "{html}"
    );
    assert_eq!(
        html.matches("name=\"nicknames\"").count(),
        4,
        "each value and one more: {html}"
    );
    // A single-valued field twice is no form of this page.
    let mut twice = fields.clone();
    twice.push(("department", "sales"));
    let r = page.post(&twice).await;
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Duplicated parameter: department")
    );
    fields.retain(|(k, v)| !(*k == "nicknames" && *v == "Dodo"));
    let r = page.post(&fields).await;
    assert_eq!(r.status(), 302);
    let dora = s.user_id(&t, "demo", "dora").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{dora}")).await;
    assert_eq!(
        u["attributes"],
        json!({"department": ["ops"], "tags": ["red", "blue"], "nicknames": ["Do", "D"]}),
        "{u}"
    );
}

/// Allows registration in realm `demo`, adds `attributes` to its user
/// profile and opens the registration page: the page to post and its HTML.
async fn registration_with(s: &Server, t: &str, attributes: Vec<Value>) -> (LoginPage, String) {
    let allow = json!({"registrationAllowed": true});
    assert_eq!(s.admin_put(t, "/demo", Some(&allow)).await, 204);
    let (_, mut profile) = s.admin_get(t, "/demo/users/profile").await;
    if let Some(a) = profile["attributes"].as_array_mut() {
        a.extend(attributes);
    }
    assert_eq!(
        s.admin_put(t, "/demo/users/profile", Some(&profile)).await,
        200
    );
    let first = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/registrations",
            s.base
        ))
        .query(&auth_params(&[]))
        .send()
        .await
        .expect("get");
    let cookie = set_cookie(&first, "GATEHOUSE_CSRF");
    let html = first.text().await.expect("html");
    (LoginPage::of(s, &html, cookie), html)
}
