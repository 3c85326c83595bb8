//! One-time passwords end to end: a Keycloak user imported with an OTP
//! credential must give its code in the browser login, the password grant
//! and nowhere less; codes are single use; guessing is bounded; a user
//! with `CONFIGURE_TOTP` sets up an authenticator in the login; admins see
//! and remove the credential; export carries it.

use crate::support::{LoginPage, Server, start};
use serde_json::{Value, json};

/// Keycloak's stored form of a TOTP secret (the HMAC key is its bytes).
const SECRET: &str = "mEz4RbVx9TqW2kLp7sNc";

fn code_at(secret: &str, step: i64) -> String {
    gatehouse_idp::otp::code(secret.as_bytes(), "HmacSHA1", 6, step as u64).expect("code")
}

fn step() -> i64 {
    gatehouse_core::time::now() / 30
}

async fn realm_with_otp_user(s: &Server) -> String {
    let t = s.admin_token().await;
    let otp = json!({
        "type": "otp", "userLabel": "phone",
        "credentialData": json!({"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}).to_string(),
        "secretData": json!({"value": SECRET}).to_string(),
    });
    let realm = json!({
        "realm": "otp", "enabled": true, "bruteForceProtected": false,
        "otpPolicyType": "totp", "otpPolicyAlgorithm": "HmacSHA1", "otpPolicyDigits": 6,
        "otpPolicyPeriod": 30, "otpPolicyLookAheadWindow": 1,
        "clients": [{"clientId": "web", "secret": "web-secret", "redirectUris": ["http://127.0.0.1/cb"],
            "directAccessGrantsEnabled": true,
            "attributes": {"oauth2.device.authorization.grant.enabled": "true"}}],
        "users": [
            {"username": "carol", "enabled": true,
             "credentials": [{"type": "password", "value": "carol-pw"}, otp]},
            {"username": "bob", "enabled": true, "requiredActions": ["CONFIGURE_TOTP"],
             "credentials": [{"type": "password", "value": "bob-pw"}]},
        ],
    });
    let r = s
        .http
        .post(format!("{}/admin/realms", s.base))
        .bearer_auth(&t)
        .json(&realm)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    t
}

/// Starts a browser login at client `web` and posts the password: the
/// answer (the OTP page, a required action, or the redirect) and the page
/// state to post later forms with.
async fn password_step(s: &Server, user: &str, pw: &str) -> (LoginPage, reqwest::Response) {
    let first = s
        .http
        .get(format!(
            "{}/realms/otp/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("client_id", "web"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("auth");
    assert_eq!(first.status(), 200);
    let page = LoginPage::read(s, first).await;
    let r = page.post(&[("username", user), ("password", pw)]).await;
    (page, r)
}

async fn password_grant(s: &Server, user: &str, pw: &str, totp: Option<&str>) -> u16 {
    let mut form = vec![
        ("grant_type", "password"),
        ("client_id", "web"),
        ("client_secret", "web-secret"),
        ("username", user),
        ("password", pw),
    ];
    if let Some(t) = totp {
        form.push(("totp", t));
    }
    s.http
        .post(s.token_url("otp"))
        .form(&form)
        .send()
        .await
        .expect("grant")
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_imported_authenticator_is_asked_for_and_its_codes_are_single_use() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let now = step();

    // The right password alone is not a login: the code page comes next.
    let (page, r) = password_step(&s, "carol", "carol-pw").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("name=\"otp\""), "{html}");
    let wrong = page
        .post_form(&s, &html, &[("otp", "000000")])
        .await
        .text()
        .await
        .expect("html");
    assert!(wrong.contains("Invalid authenticator code."), "{wrong}");
    let ok = page
        .post_form(&s, &wrong, &[("otp", &code_at(SECRET, now))])
        .await;
    assert_eq!(ok.status(), 302);
    assert!(
        ok.headers()["location"]
            .to_str()
            .expect("loc")
            .contains("code=")
    );

    // The same code again, in a new login: spent.
    let (page, r) = password_step(&s, "carol", "carol-pw").await;
    let html = r.text().await.expect("html");
    let replay = page
        .post_form(&s, &html, &[("otp", &code_at(SECRET, now))])
        .await
        .text()
        .await
        .expect("html");
    assert!(replay.contains("Invalid authenticator code."), "{replay}");
    // The next step's code is within the look-around window.
    let ok = page
        .post_form(&s, &replay, &[("otp", &code_at(SECRET, now + 1))])
        .await;
    assert_eq!(ok.status(), 302);

    // The password grant wants `totp` too, answered as a wrong password.
    assert_eq!(password_grant(&s, "carol", "carol-pw", None).await, 401);
    assert_eq!(
        password_grant(&s, "carol", "carol-pw", Some("123")).await,
        401
    );
    // An unspent code of the window around the current step (the clock
    // may have crossed a 30 s boundary since `now`: then `now - 1` is out
    // of the window and `now`, `now + 1` are spent).
    let cur = step();
    let unspent = [cur - 1, cur, cur + 1]
        .into_iter()
        .find(|t| *t != now && *t != now + 1)
        .expect("a step");
    assert_eq!(
        password_grant(&s, "carol", "carol-pw", Some(&code_at(SECRET, unspent))).await,
        200
    );

    // Guessing is bounded: five wrong codes spend the login attempt.
    let (page, r) = password_step(&s, "carol", "carol-pw").await;
    let mut html = r.text().await.expect("html");
    for i in 0..5 {
        let r = page.post_form(&s, &html, &[("otp", "111111")]).await;
        html = r.text().await.expect("html");
        if i < 4 {
            assert!(html.contains("Invalid authenticator code."), "{html}");
        }
    }
    assert!(
        html.contains("Too many invalid authenticator codes"),
        "{html}"
    );

    // Admins see it (never its secret), and export carries it whole.
    let carol = s.user_id(&t, "otp", "carol").await;
    let (_, user) = s.admin_get(&t, &format!("/otp/users/{carol}")).await;
    assert_eq!(user["totp"], true);
    let (_, creds) = s
        .admin_get(&t, &format!("/otp/users/{carol}/credentials"))
        .await;
    let types: Vec<&str> = creds
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["password", "otp"]);
    assert!(
        creds
            .as_array()
            .expect("list")
            .iter()
            .all(|c| c.get("secretData").is_none())
    );
    assert_eq!(creds[1]["userLabel"], "phone");
    let export = s.export("otp").await;
    let exported = export["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "carol")
        .expect("carol")
        .clone();
    assert_eq!(exported["totp"], true);
    let otp = exported["credentials"]
        .as_array()
        .expect("creds")
        .iter()
        .find(|c| c["type"] == "otp")
        .expect("otp exported");
    assert!(otp["secretData"].as_str().expect("secret").contains(SECRET));

    // Removing the credential removes the step.
    let otp_id = creds[1]["id"].as_str().expect("id");
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/otp/users/{carol}/credentials/{otp_id}",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (_, r) = password_step(&s, "carol", "carol-pw").await;
    assert_eq!(r.status(), 302);
    assert_eq!(password_grant(&s, "carol", "carol-pw", None).await, 200);
}

#[tokio::test]
async fn configure_totp_sets_up_an_authenticator_during_the_login() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    // Not set up: no password grant until the browser login did it.
    assert_eq!(password_grant(&s, "bob", "bob-pw", None).await, 400);
    let (page, r) = password_step(&s, "bob", "bob-pw").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("Mobile Authenticator Setup"), "{html}");
    let secret = crate::support::between(&html, "name=\"totpSecret\" value=\"", "\"").to_owned();
    assert!(html.contains("otpauth://totp/"), "{html}");
    let bad = page
        .post_form(&s, &html, &[("totp", "000000"), ("totpSecret", &secret)])
        .await
        .text()
        .await
        .expect("html");
    assert!(bad.contains("Invalid authenticator code."), "{bad}");
    let ok = page
        .post_form(
            &s,
            &bad,
            &[
                ("totp", &code_at(&secret, step())),
                ("totpSecret", &secret),
                ("userLabel", "work phone"),
            ],
        )
        .await;
    assert_eq!(ok.status(), 302);
    let bob = s.user_id(&t, "otp", "bob").await;
    let (_, user) = s.admin_get(&t, &format!("/otp/users/{bob}")).await;
    assert_eq!(user["totp"], true);
    assert_eq!(user["requiredActions"], json!([]));
    // From now on the login asks for the code.
    let (_, r) = password_step(&s, "bob", "bob-pw").await;
    assert!(r.text().await.expect("html").contains("name=\"otp\""));
    assert_eq!(
        password_grant(&s, "bob", "bob-pw", Some(&code_at(&secret, step() + 1))).await,
        200
    );
}

#[tokio::test]
async fn the_device_page_wants_the_code_too() {
    let s = start().await;
    realm_with_otp_user(&s).await;
    let d: Value = s
        .http
        .post(format!(
            "{}/realms/otp/protocol/openid-connect/auth/device",
            s.base
        ))
        // Basic auth and no body at all: an empty form.
        .basic_auth("web", Some("web-secret"))
        .send()
        .await
        .expect("device")
        .json()
        .await
        .expect("json");
    let user_code = d["user_code"].as_str().expect("user code").to_owned();
    let approve = |otp: Option<String>| {
        let (s, user_code) = (&s, user_code.clone());
        async move {
            let page = s
                .http
                .get(format!(
                    "{}/realms/otp/device?user_code={user_code}",
                    s.base
                ))
                .send()
                .await
                .expect("page");
            let cookie = crate::support::set_cookie(&page, "GATEHOUSE_DEVICE_CSRF");
            let html = page.text().await.expect("html");
            assert!(html.contains("name=\"otp\""));
            let csrf = crate::support::between(&html, "name=\"csrf\" value=\"", "\"").to_owned();
            let mut form = vec![
                ("csrf", csrf),
                ("user_code", user_code),
                ("username", "carol".to_owned()),
                ("password", "carol-pw".to_owned()),
                ("action", "approve".to_owned()),
            ];
            if let Some(o) = otp {
                form.push(("otp", o));
            }
            s.http
                .post(format!("{}/realms/otp/device", s.base))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("post")
                .text()
                .await
                .expect("html")
        }
    };
    let html = approve(None).await;
    assert!(html.contains("one-time code"), "{html}");
    let html = approve(Some(code_at(SECRET, step()))).await;
    assert!(html.contains("Device connected"), "{html}");
}

/// The execution row of `flow`'s flattened list whose display name is `name`.
async fn execution(s: &Server, t: &str, flow: &str, name: &str) -> Value {
    let (st, rows) = s
        .admin_get(t, &format!("/otp/authentication/flows/{flow}/executions"))
        .await;
    assert_eq!(st, 200);
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["displayName"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} in {rows}"))
}

/// Sets an execution's requirement as Keycloak's admin console does; the
/// status and the answer's body.
async fn set_requirement(s: &Server, t: &str, flow: &str, row: &Value, req: &str) -> (u16, String) {
    let mut row = row.clone();
    row["requirement"] = json!(req);
    let r = s
        .http
        .put(format!(
            "{}/admin/realms/otp/authentication/flows/{flow}/executions",
            s.base
        ))
        .bearer_auth(t)
        .json(&row)
        .send()
        .await
        .expect("put");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Copies the realm's direct grant flow as "strict grant" with its OTP
/// subflow REQUIRED (a code from everyone), unbound.
async fn strict_grant(s: &Server, t: &str) {
    let copy = json!({"newName": "strict grant"});
    let p = "/otp/authentication/flows/direct grant/copy";
    assert_eq!(s.admin_post(t, p, &copy).await.0, 201);
    let sub = "strict grant Direct Grant - Conditional OTP";
    let row = execution(s, t, "strict grant", sub).await;
    assert_eq!(
        set_requirement(s, t, "strict grant", &row, "REQUIRED")
            .await
            .0,
        204
    );
}

/// Keycloak's `authenticationFlowBindingOverrides`: a client runs its own
/// flow instead of the realm's (here a direct grant that asks everyone for
/// a code), other clients keep the realm's; the override must name a flow
/// Gatehouse runs, the flow cannot be deleted or broken while a client
/// uses it, and clearing the override restores the realm's.
#[tokio::test]
async fn a_client_can_run_its_own_flow_instead_of_the_realms() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let body = json!({"username": "frank", "enabled": true,
        "credentials": [{"type": "password", "value": "frank-pw", "temporary": false}]});
    assert_eq!(s.admin_post(&t, "/otp/users", &body).await.0, 201);
    let cli = json!({"clientId": "cli", "secret": "cli-secret", "directAccessGrantsEnabled": true});
    assert_eq!(s.admin_post(&t, "/otp/clients", &cli).await.0, 201);
    strict_grant(&s, &t).await;
    let (_, flows) = s.admin_get(&t, "/otp/authentication/flows").await;
    let strict = flows
        .as_array()
        .expect("flows")
        .iter()
        .find(|f| f["alias"] == "strict grant")
        .and_then(|f| f["id"].as_str())
        .expect("strict grant")
        .to_owned();
    let (_, web) = s.admin_get(&t, "/otp/clients?clientId=web").await;
    let web_id = web[0]["id"].as_str().expect("id").to_owned();
    let web_path = format!("/otp/clients/{web_id}");
    let set_override = |id: String| {
        let body = json!({"authenticationFlowBindingOverrides": {"direct_grant": id}});
        let (s, t, path) = (&s, &t, web_path.clone());
        async move { s.admin_put(t, &path, Some(&body)).await }
    };
    let cli_grant = || async {
        s.http
            .post(s.token_url("otp"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "cli"),
                ("client_secret", "cli-secret"),
                ("username", "frank"),
                ("password", "frank-pw"),
            ])
            .send()
            .await
            .expect("grant")
            .status()
            .as_u16()
    };
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 200);
    assert_eq!(set_override(strict.clone()).await, 204);
    let (_, web) = s.admin_get(&t, &web_path).await;
    assert_eq!(
        web["authenticationFlowBindingOverrides"]["direct_grant"],
        strict.as_str()
    );
    // `web` now asks frank for a code he does not have; `cli` does not.
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 401);
    assert_eq!(cli_grant().await, 200);
    assert_eq!(
        password_grant(&s, "carol", "carol-pw", Some(&code_at(SECRET, step()))).await,
        200
    );
    // In use by a client: not deleted, not made into what Gatehouse
    // cannot run.
    let flow_path = format!("/otp/authentication/flows/{strict}");
    assert_eq!(s.admin_delete(&t, &flow_path).await, 409);
    let password = execution(&s, &t, "strict grant", "Password").await;
    let (st, body) = set_requirement(&s, &t, "strict grant", &password, "DISABLED").await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("client web"), "{body}");
    // An override must name a flow of the realm.
    assert_eq!(set_override("no-such-flow".into()).await, 400);
    assert_eq!(
        password_grant(&s, "frank", "frank-pw", None).await,
        401,
        "unchanged"
    );
    // Cleared: the realm's flow again.
    assert_eq!(set_override(String::new()).await, 204);
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 200);
    assert_eq!(s.admin_delete(&t, &flow_path).await, 204);
}

#[tokio::test]
async fn flows_that_require_a_code_of_everyone_are_enforced_and_others_refused() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    for u in ["erin", "frank"] {
        let body = json!({"username": u, "enabled": true,
            "credentials": [{"type": "password", "value": format!("{u}-pw"), "temporary": false}]});
        assert_eq!(s.admin_post(&t, "/otp/users", &body).await.0, 201);
    }
    // Keycloak's default flows: a code only from users who set one up.
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 200);
    let (_, top) = s.admin_get(&t, "/otp/authentication/flows").await;
    let mut names: Vec<&str> = top
        .as_array()
        .expect("flows")
        .iter()
        .filter_map(|f| f["alias"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["browser", "direct grant"]);
    let browser_id = top[0]["id"].as_str().expect("id").to_owned();
    let (st, one) = s
        .admin_get(&t, &format!("/otp/authentication/flows/{browser_id}"))
        .await;
    assert_eq!((st, one["alias"].clone()), (200, top[0]["alias"].clone()));
    let two_fa = execution(&s, &t, "browser", "Browser - Conditional 2FA").await;
    assert_eq!(
        (
            two_fa["requirement"].clone(),
            two_fa["level"].clone(),
            two_fa["authenticationFlow"].clone()
        ),
        (json!("CONDITIONAL"), json!(1), json!(true))
    );

    // Made REQUIRED: a browser login without a code sets one up first.
    assert_eq!(
        set_requirement(&s, &t, "browser", &two_fa, "REQUIRED")
            .await
            .0,
        204
    );
    let (_, r) = password_step(&s, "erin", "erin-pw").await;
    let html = r.text().await.expect("html");
    assert!(html.contains("Mobile Authenticator Setup"), "{html}");
    let erin = s.user_id(&t, "otp", "erin").await;
    let (_, user) = s.admin_get(&t, &format!("/otp/users/{erin}")).await;
    assert_eq!(user["requiredActions"], json!(["CONFIGURE_TOTP"]));
    // The direct grant flow is its own: REQUIRED there, a user without a
    // code gets Keycloak's answer for a wrong credential.
    let dg = execution(&s, &t, "direct grant", "Direct Grant - Conditional OTP").await;
    assert_eq!(
        set_requirement(&s, &t, "direct grant", &dg, "REQUIRED")
            .await
            .0,
        204
    );
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 401);
    assert_eq!(
        password_grant(&s, "carol", "carol-pw", Some(&code_at(SECRET, step()))).await,
        200
    );

    // What Gatehouse does not run is refused, and nothing is written.
    let kerberos = execution(&s, &t, "browser", "Kerberos").await;
    let (st, body) = set_requirement(&s, &t, "browser", &kerberos, "ALTERNATIVE").await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("choice"), "{body}");
    assert_eq!(
        execution(&s, &t, "browser", "Kerberos").await["requirement"],
        "DISABLED"
    );
    let otp_form = execution(&s, &t, "browser", "OTP Form").await;
    assert_eq!(
        set_requirement(&s, &t, "browser", &otp_form, "CONDITIONAL")
            .await
            .0,
        400
    );
    let mut unknown = otp_form.clone();
    unknown["id"] = json!("no-such-execution");
    assert_eq!(
        set_requirement(&s, &t, "browser", &unknown, "REQUIRED")
            .await
            .0,
        404
    );

    // The export carries the flows; a fresh server enforces them the same.
    let export = s.export("otp").await;
    let b = start().await;
    b.import(&export).await;
    let tb = b.admin_token().await;
    assert_eq!(
        execution(&b, &tb, "direct grant", "Direct Grant - Conditional OTP").await["requirement"],
        "REQUIRED"
    );
    assert_eq!(password_grant(&b, "frank", "frank-pw", None).await, 401);

    // Turned off: even a user with a code signs in with the password.
    assert_eq!(
        set_requirement(&s, &t, "browser", &two_fa, "DISABLED")
            .await
            .0,
        204
    );
    let (_, r) = password_step(&s, "carol", "carol-pw").await;
    assert_eq!(r.status(), 302);

    // A Keycloak export whose direct grant flow asks by role is refused
    // whole.
    let mut custom = json!({"realm": "custom", "enabled": true,
        "authenticationFlows": export["authenticationFlows"].clone()});
    let flows = custom["authenticationFlows"].as_array_mut().expect("flows");
    let dg = flows
        .iter_mut()
        .find(|f| f["alias"] == "direct grant")
        .expect("direct grant flow");
    dg["authenticationExecutions"][2]["requirement"] = json!("CONDITIONAL");
    let sub = flows
        .iter_mut()
        .find(|f| f["alias"] == "Direct Grant - Conditional OTP")
        .expect("subflow");
    sub["authenticationExecutions"][0]["authenticator"] = json!("conditional-user-role");
    let r = s
        .http
        .post(format!("{}/admin/realms", s.base))
        .bearer_auth(&t)
        .json(&custom)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("conditional-user-role")
    );
    assert_eq!(s.admin_get(&t, "/custom").await.0, 404);
}

/// Flows edited the way Keycloak's admin console and scripts (keycloak-
/// config-cli, Terraform) do: a copy of `direct grant` that asks everyone
/// for a code, bound to the realm, is what the password grant then runs;
/// renaming it keeps the binding; a bound or built-in flow cannot be
/// deleted; an unbound copy can, with its subflows.
#[tokio::test]
async fn copied_flows_bound_to_the_realm_are_what_logins_run() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let body = json!({"username": "frank", "enabled": true,
        "credentials": [{"type": "password", "value": "frank-pw", "temporary": false}]});
    assert_eq!(s.admin_post(&t, "/otp/users", &body).await.0, 201);
    strict_grant(&s, &t).await;
    let copy = json!({"newName": "strict grant"});
    let p = "/otp/authentication/flows/direct grant/copy";
    assert_eq!(s.admin_post(&t, p, &copy).await.0, 409);
    // Not bound yet: the realm's own direct grant still runs.
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 200);
    let bind = |flow: &str| {
        let body = json!({"directGrantFlow": flow});
        let s = &s;
        let t = &t;
        async move { s.admin_put(t, "/otp", Some(&body)).await }
    };
    assert_eq!(bind("strict grant").await, 204);
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 401);
    let (_, flows) = s.admin_get(&t, "/otp/authentication/flows").await;
    let id_of = |alias: &str| {
        flows
            .as_array()
            .expect("flows")
            .iter()
            .find(|f| f["alias"] == alias)
            .map(|f| f["id"].as_str().expect("id").to_owned())
            .unwrap_or_else(|| panic!("{alias} in {flows}"))
    };
    let strict = id_of("strict grant");
    let builtin = id_of("direct grant");
    let flow_path = |id: &str| format!("/otp/authentication/flows/{id}");
    assert_eq!(s.admin_delete(&t, &flow_path(&strict)).await, 409, "bound");
    assert_eq!(
        s.admin_delete(&t, &flow_path(&builtin)).await,
        400,
        "built in"
    );
    // Renamed, it stays bound and keeps asking.
    let rename = json!({"alias": "mfa grant", "description": "everyone gives a code"});
    assert_eq!(
        s.admin_put(&t, &flow_path(&strict), Some(&rename)).await,
        202
    );
    let (_, realm) = s.admin_get(&t, "/otp").await;
    assert_eq!(realm["directGrantFlow"], "mfa grant");
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 401);
    let (_, rows) = s
        .admin_get(&t, "/otp/authentication/flows/mfa grant/executions")
        .await;
    assert!(rows.as_array().is_some_and(|r| r.len() >= 4), "{rows}");
    // Unbound, it goes, with the subflow only it ran.
    assert_eq!(bind("direct grant").await, 204);
    assert_eq!(password_grant(&s, "frank", "frank-pw", None).await, 200);
    assert_eq!(s.admin_delete(&t, &flow_path(&strict)).await, 204);
    let export = s.export("otp").await;
    let aliases: Vec<&str> = export["authenticationFlows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter_map(|f| f["alias"].as_str())
        .collect();
    assert!(
        !aliases
            .iter()
            .any(|a| a.starts_with("strict grant") || *a == "mfa grant"),
        "{aliases:?}"
    );
    assert!(aliases.contains(&"Direct Grant - Conditional OTP"));
    // An empty new flow, then gone.
    let (code, location) = s
        .admin_post(
            &t,
            "/otp/authentication/flows",
            &json!({"alias": "empty", "providerId": "basic-flow", "topLevel": true}),
        )
        .await;
    assert_eq!(code, 201);
    let empty = location.expect("location");
    let id = empty.rsplit('/').next().expect("id");
    assert_eq!(s.admin_get(&t, &flow_path(id)).await.1["alias"], "empty");
    assert_eq!(s.admin_delete(&t, &flow_path(id)).await, 204);
}

/// Executions added, reordered and removed in a copied flow: an unbound
/// flow may hold steps Gatehouse does not run, binding it is refused
/// until they go, and removing one keeps the other rows' ids.
#[tokio::test]
async fn executions_are_added_reordered_and_removed_in_copies() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let p = "/otp/authentication/flows/browser/copy";
    assert_eq!(
        s.admin_post(&t, p, &json!({"newName": "mine"})).await.0,
        201
    );
    let add = "/otp/authentication/flows/mine/executions/execution";
    let (code, loc) = s
        .admin_post(&t, add, &json!({"provider": "auth-spnego"}))
        .await;
    assert_eq!(code, 201);
    let added = loc.expect("location");
    let kerberos_id = added.rsplit('/').next().expect("id").to_owned();
    let unknown = json!({"provider": "no-such-authenticator"});
    assert_eq!(s.admin_post(&t, add, &unknown).await.0, 400);
    let builtin = "/otp/authentication/flows/browser/executions/execution";
    let otp = json!({"provider": "auth-otp-form"});
    assert_eq!(s.admin_post(&t, builtin, &otp).await.0, 400, "built in");
    let list = "/otp/authentication/flows/mine/executions";
    let (_, before) = s.admin_get(&t, list).await;
    let row_of = |rows: &Value, id: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("listed")
    };
    let row = row_of(&before, &kerberos_id);
    assert_eq!(
        (row["providerId"].clone(), row["requirement"].clone()),
        (json!("auth-spnego"), json!("DISABLED"))
    );
    assert_eq!(
        set_requirement(&s, &t, "mine", &row, "REQUIRED").await.0,
        204
    );
    // Bound, a realm must be able to run it: refused, nothing written.
    let bind = json!({"browserFlow": "mine"});
    assert_eq!(s.admin_put(&t, "/otp", Some(&bind)).await, 400);
    assert_eq!(s.admin_get(&t, "/otp").await.1["browserFlow"], "browser");
    // Raised one place.
    let at = row["index"].as_i64().expect("index");
    let raise = format!("/otp/authentication/executions/{kerberos_id}/raise-priority");
    assert_eq!(s.admin_post(&t, &raise, &json!({})).await.0, 204);
    let (_, after) = s.admin_get(&t, list).await;
    assert_eq!(row_of(&after, &kerberos_id)["index"], json!(at - 1));
    // Removed: the others keep their ids, and the flow can be bound.
    let first_id = after[0]["id"].as_str().expect("id").to_owned();
    let exec = format!("/otp/authentication/executions/{kerberos_id}");
    assert_eq!(
        s.admin_get(&t, &exec).await.1["authenticator"],
        "auth-spnego"
    );
    assert_eq!(s.admin_delete(&t, &exec).await, 204);
    assert_eq!(s.admin_delete(&t, &exec).await, 404);
    let (_, left) = s.admin_get(&t, list).await;
    assert_eq!(left[0]["id"], json!(first_id));
    assert_eq!(
        left.as_array().map(Vec::len),
        before.as_array().map(|b| b.len() - 1)
    );
    assert_eq!(s.admin_put(&t, "/otp", Some(&bind)).await, 204);
    // The bound copy runs: carol, who has an authenticator, is asked for
    // her code after the password, as the original flow asks.
    let (_, r) = password_step(&s, "carol", "carol-pw").await;
    let html = r.text().await.expect("html");
    assert!(html.contains("name=\"otp\""), "{html}");
}

/// A step's config (Keycloak's `authenticatorConfig`): created for a step
/// of a copy, shown on its row, read, changed, kept in the export with the
/// step naming it, and deleted with the reference.
#[tokio::test]
async fn step_configs_are_kept_with_their_steps() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let p = "/otp/authentication/flows/browser/copy";
    assert_eq!(
        s.admin_post(&t, p, &json!({"newName": "mine"})).await.0,
        201
    );
    let row = execution(&s, &t, "mine", "Cookie").await;
    let id = row["id"].as_str().expect("id");
    let create = format!("/otp/authentication/executions/{id}/config");
    let body = json!({"alias": "cookie-settings", "config": {"k": "v"}});
    let (code, loc) = s.admin_post(&t, &create, &body).await;
    assert_eq!(code, 201);
    assert_eq!(s.admin_post(&t, &create, &body).await.0, 409, "alias taken");
    let bad = json!({"alias": "other", "config": {"k": 1}});
    assert_eq!(s.admin_post(&t, &create, &bad).await.0, 400);
    let config_id = loc
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let row = execution(&s, &t, "mine", "Cookie").await;
    assert_eq!(row["authenticationConfig"], json!(config_id));
    let path = format!("/otp/authentication/config/{config_id}");
    let (_, got) = s.admin_get(&t, &path).await;
    assert_eq!(got["config"], json!({"k": "v"}));
    let changed = json!({"alias": "cookie-settings", "config": {"k": "w"}});
    assert_eq!(s.admin_put(&t, &path, Some(&changed)).await, 204);
    let export = s.export("otp").await;
    assert_eq!(
        export["authenticatorConfig"],
        json!([{"id": config_id, "alias": "cookie-settings", "config": {"k": "w"}}])
    );
    let cookie_step = export["authenticationFlows"]
        .as_array()
        .expect("flows")
        .iter()
        .find(|f| f["alias"] == "mine")
        .and_then(|f| f["authenticationExecutions"].as_array())
        .and_then(|es| es.iter().find(|e| e["authenticator"] == "auth-cookie"))
        .cloned()
        .expect("the copy's cookie step");
    assert_eq!(cookie_step["authenticatorConfig"], "cookie-settings");
    assert_eq!(s.admin_delete(&t, &path).await, 204);
    assert_eq!(s.admin_get(&t, &path).await.0, 404);
    assert!(execution(&s, &t, "mine", "Cookie").await["authenticationConfig"].is_null());
    let (st, d) = s
        .admin_get(&t, "/otp/authentication/config-description/auth-otp-form")
        .await;
    assert_eq!((st, d["providerId"].clone()), (200, json!("auth-otp-form")));
}

/// The types of `user`'s credentials in the order the admin API lists them.
async fn credential_order(s: &Server, t: &str, user: &str) -> Vec<(String, String)> {
    let (_, creds) = s
        .admin_get(t, &format!("/otp/users/{user}/credentials"))
        .await;
    creds
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().expect(k).to_owned();
            (field("type"), field("id"))
        })
        .collect()
}

#[tokio::test]
async fn admins_reorder_credentials_and_a_reset_password_keeps_its_place() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    let on = json!({"adminEventsEnabled": true});
    assert_eq!(s.admin_put(&t, "/otp", Some(&on)).await, 204);
    let carol = s.user_id(&t, "otp", "carol").await;
    let order = credential_order(&s, &t, &carol).await;
    let types = |o: &[(String, String)]| o.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(types(&order), ["password", "otp"]);
    let (password, otp) = (order[0].1.clone(), order[1].1.clone());
    let move_ = |path: String| {
        let req = s
            .http
            .post(format!(
                "{}/admin/realms/otp/users/{carol}/credentials/{path}",
                s.base
            ))
            .bearer_auth(&t);
        async move { req.send().await.expect("move").status().as_u16() }
    };

    assert_eq!(move_(format!("{otp}/moveToFirst")).await, 204);
    assert_eq!(
        types(&credential_order(&s, &t, &carol).await),
        ["otp", "password"]
    );
    // The export keeps the order, so an import gives it back.
    let exported = s.exported_user("otp", "carol").await;
    let exported: Vec<&str> = exported["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| c["type"].as_str().expect("type"))
        .collect();
    assert_eq!(exported, ["otp", "password"]);

    // A new password takes the place of the one it replaces.
    s.reset_password(&t, "otp", &carol, "carol-pw-2", false)
        .await;
    assert_eq!(
        types(&credential_order(&s, &t, &carol).await),
        ["otp", "password"]
    );
    let password = {
        let order = credential_order(&s, &t, &carol).await;
        assert_ne!(order[1].1, password, "a reset writes a new credential");
        order[1].1.clone()
    };

    assert_eq!(move_(format!("{otp}/moveAfter/{password}")).await, 204);
    assert_eq!(
        types(&credential_order(&s, &t, &carol).await),
        ["password", "otp"]
    );
    // Moving after itself, or after a credential that is not the user's,
    // changes nothing (Keycloak answers 204 there too).
    assert_eq!(move_(format!("{otp}/moveAfter/{otp}")).await, 204);
    assert_eq!(move_(format!("{password}/moveAfter/nope")).await, 204);
    assert_eq!(
        types(&credential_order(&s, &t, &carol).await),
        ["password", "otp"]
    );
    // A credential the user does not have is not found.
    assert_eq!(move_("nope/moveToFirst".into()).await, 404);
    assert_eq!(move_(format!("nope/moveAfter/{otp}")).await, 404);
    // The move is an admin write, recorded as one.
    let (_, events) = s
        .admin_get(&t, "/otp/admin-events?resourceTypes=USER")
        .await;
    assert!(
        events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["resourcePath"]
                == format!("users/{carol}/credentials/{otp}/moveAfter/{password}")),
        "{events}"
    );
}

#[tokio::test]
async fn a_user_with_two_authenticator_apps_picks_one_and_keeps_both() {
    let s = start().await;
    let t = realm_with_otp_user(&s).await;
    const TABLET: &str = "tAbLeT5ecretK3yZz9Qw";
    let app = |label: &str, secret: &str| {
        json!({"type": "otp", "userLabel": label,
            "credentialData": json!({"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}).to_string(),
            "secretData": json!({"value": secret}).to_string()})
    };
    // A Keycloak user with two devices keeps both.
    let dana = s
        .admin_create(
            &t,
            "/otp/users",
            &json!({"username": "dana", "enabled": true, "requiredActions": ["CONFIGURE_TOTP"],
                "credentials": [{"type": "password", "value": "dana-pw"}, app("phone", SECRET), app("tablet", TABLET)]}),
        )
        .await;
    let order = credential_order(&s, &t, &dana).await;
    let kinds: Vec<&str> = order.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["password", "otp", "otp"]);
    let (phone, tablet) = (order[1].1.clone(), order[2].1.clone());

    // The code page offers both, the first in the list checked.
    let now = step();
    let (page, r) = password_step(&s, "dana", "dana-pw").await;
    let html = r.text().await.expect("html");
    assert!(
        html.contains(&format!(
            "name=\"selectedCredentialId\" value=\"{phone}\" checked"
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!("value=\"{tablet}\">")) && html.contains(">tablet<"),
        "{html}"
    );
    // Without a choice the default app's code is wanted.
    let wrong = page
        .post_form(&s, &html, &[("otp", &code_at(TABLET, now))])
        .await
        .text()
        .await
        .expect("html");
    assert!(wrong.contains("Invalid authenticator code."), "{wrong}");
    // A choice that is not one of hers checks nothing.
    let stranger = page
        .post_form(
            &s,
            &wrong,
            &[
                ("otp", &code_at(SECRET, now)),
                ("selectedCredentialId", &order[0].1),
            ],
        )
        .await
        .text()
        .await
        .expect("html");
    assert!(
        stranger.contains("Invalid authenticator code."),
        "{stranger}"
    );
    // The page keeps the app she chose checked after a wrong code.
    let chose = page
        .post_form(
            &s,
            &stranger,
            &[("otp", "000000"), ("selectedCredentialId", &tablet)],
        )
        .await
        .text()
        .await
        .expect("html");
    assert!(
        chose.contains(&format!("value=\"{tablet}\" checked")),
        "{chose}"
    );
    let setup = page
        .post_form(
            &s,
            &chose,
            &[
                ("otp", &code_at(TABLET, now)),
                ("selectedCredentialId", &tablet),
            ],
        )
        .await;
    assert_eq!(
        setup.status(),
        200,
        "the code passed; CONFIGURE_TOTP is next"
    );
    let html = setup.text().await.expect("html");
    assert!(html.contains("Mobile Authenticator Setup"), "{html}");

    // A third app must be named, as in Keycloak, and joins the others.
    let secret = crate::support::between(&html, "name=\"totpSecret\" value=\"", "\"").to_owned();
    let unnamed = page
        .post_form(
            &s,
            &html,
            &[("totp", &code_at(&secret, step())), ("totpSecret", &secret)],
        )
        .await
        .text()
        .await
        .expect("html");
    assert!(unnamed.contains("Please specify device name."), "{unnamed}");
    let added = page
        .post_form(
            &s,
            &unnamed,
            &[
                ("totp", &code_at(&secret, step())),
                ("totpSecret", &secret),
                ("userLabel", "watch"),
            ],
        )
        .await;
    assert_eq!(added.status(), 302);
    let (_, creds) = s
        .admin_get(&t, &format!("/otp/users/{dana}/credentials"))
        .await;
    let labels: Vec<&str> = creds
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["userLabel"].as_str())
        .collect();
    assert_eq!(labels, ["phone", "tablet", "watch"]);

    // The password grant checks the default app, which an admin can change.
    let tablet_code = code_at(TABLET, now + 1);
    assert_eq!(
        password_grant(&s, "dana", "dana-pw", Some(&tablet_code)).await,
        401
    );
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/otp/users/{dana}/credentials/{tablet}/moveToFirst",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("move");
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    assert_eq!(
        password_grant(&s, "dana", "dana-pw", Some(&tablet_code)).await,
        200
    );
    // A label change touches that app only.
    let label = format!("/otp/users/{dana}/credentials/{phone}/userLabel");
    let r = s
        .http
        .put(format!("{}/admin/realms{label}", s.base))
        .bearer_auth(&t)
        .header("content-type", "text/plain")
        .body("old phone")
        .send()
        .await
        .expect("label");
    assert_eq!(r.status(), 204);
    let exported = s.exported_user("otp", "dana").await;
    let apps: Vec<&str> = exported["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .filter(|c| c["type"] == "otp")
        .map(|c| c["userLabel"].as_str().expect("label"))
        .collect();
    assert_eq!(apps, ["tablet", "old phone", "watch"]);

    // "Disable OTP" removes every app: Keycloak's disable-credential-types
    // (remove-totp, deprecated, does the same).
    let (_, u) = s.admin_get(&t, &format!("/otp/users/{dana}")).await;
    assert_eq!(u["totp"], true);
    assert_eq!(u["disableableCredentialTypes"], json!(["otp"]));
    let disable = format!("/otp/users/{dana}/disable-credential-types");
    assert_eq!(
        s.admin_put(&t, &disable, Some(&json!(["password"]))).await,
        204,
        "a type that cannot be disabled is left alone"
    );
    assert_eq!(credential_order(&s, &t, &dana).await.len(), 4);
    assert_eq!(s.admin_put(&t, &disable, Some(&json!("otp"))).await, 400);
    assert_eq!(s.admin_put(&t, &disable, Some(&json!(["otp"]))).await, 204);
    let (_, u) = s.admin_get(&t, &format!("/otp/users/{dana}")).await;
    assert_eq!(u["totp"], false);
    assert_eq!(u["disableableCredentialTypes"], json!([]));
    assert_eq!(
        s.admin_put(&t, &format!("/otp/users/{dana}/remove-totp"), None)
            .await,
        204
    );
    let kinds: Vec<String> = credential_order(&s, &t, &dana)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["password"]);
}
