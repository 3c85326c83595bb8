//! Identity brokering end to end: realm `down` logs people in through an
//! OpenID Connect provider, played by realm `upstream` of the same server
//! over real HTTP (discovery, authorization code with PKCE, back-channel
//! code redemption, ID token checked against its JWKS).

use crate::support::{Server, between, claims, start};
use serde_json::{Value, json};

/// A browser: follows nothing by itself, keeps cookies by path.
struct Browser {
    http: reqwest::Client,
    base: String,
    jar: Vec<(String, String, String)>,
}

impl Browser {
    fn new(s: &Server) -> Self {
        Browser {
            http: s.http.clone(),
            base: s.base.clone(),
            jar: vec![],
        }
    }

    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        let rest = url.strip_prefix(&self.base).unwrap_or("/");
        rest.split('?').next().unwrap_or("/")
    }

    fn cookies(&self, url: &str) -> String {
        let path = self.path_of(url);
        self.jar
            .iter()
            .filter(|(_, _, p)| path.starts_with(p.as_str()))
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().expect("ascii cookie");
            let mut parts = c.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|kv| kv.split_once('='))
                .expect("name=value");
            let mut path = "/".to_owned();
            let mut gone = false;
            for a in parts {
                if let Some(p) = a.strip_prefix("Path=") {
                    path = p.to_owned();
                }
                gone |= a == "Max-Age=0";
            }
            self.jar.retain(|(n, _, p)| !(n == name && *p == path));
            if !gone {
                self.jar.push((name.to_owned(), value.to_owned(), path));
            }
        }
    }

    /// Drops the cookies set for paths under `prefix` (signs out there).
    fn forget(&mut self, prefix: &str) {
        self.jar.retain(|(_, _, p)| !p.starts_with(prefix));
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let url = self.absolute(url);
        let r = self
            .http
            .get(&url)
            .header("cookie", self.cookies(&url))
            .send()
            .await
            .expect("get");
        self.keep(&r);
        r
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = self.absolute(url);
        let r = self
            .http
            .post(&url)
            .header("cookie", self.cookies(&url))
            .form(form)
            .send()
            .await
            .expect("post");
        self.keep(&r);
        r
    }

    /// Submits the one form of `html` with `fields` and its CSRF token.
    async fn submit(&mut self, html: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let action = between(html, "action=\"", "\"").replace("&amp;", "&");
        let csrf = between(html, "name=\"csrf\" value=\"", "\"").to_owned();
        let mut f = fields.to_vec();
        f.push(("csrf", &csrf));
        self.post(&action, &f).await
    }
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 302, "a redirect");
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned()
}

fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find_map(|(k, v)| (k == name).then(|| v.into_owned()))
}

const APP_CB: &str = "http://app.example/cb";

fn auth_url(extra: &str) -> String {
    format!(
        "/realms/down/protocol/openid-connect/auth?client_id=app&redirect_uri={}&response_type=code&scope=openid&state=s1{extra}",
        "http%3A%2F%2Fapp.example%2Fcb"
    )
}

/// Realm `upstream` (the provider: client `broker`, users `ann` and `bob`)
/// and realm `down` (client `app`, local user `bob` with the same email,
/// provider `up` configured from upstream's discovery document).
async fn setup(s: &Server) -> String {
    let t = s.admin_token().await;
    for realm in ["upstream", "down"] {
        let (st, _) = s
            .admin_post(
                &t,
                "",
                &json!({"realm": realm, "enabled": true, "eventsEnabled": true}),
            )
            .await;
        assert_eq!(st, 201);
    }
    let broker_cb = format!("{}/realms/down/broker/up/endpoint", s.base);
    s.admin_create(
        &t,
        "/upstream/clients",
        &json!({"clientId": "broker", "secret": "broker-secret",
                "redirectUris": [broker_cb.clone(), format!("{broker_cb}/logout_response")]}),
    )
    .await;
    for (name, pw, first) in [("ann", "ann-up", "Ann"), ("bob", "bob-up", "Bob")] {
        s.admin_create(
            &t,
            "/upstream/users",
            &json!({"username": name, "email": format!("{name}@corp.example"), "emailVerified": true,
                    "firstName": first, "lastName": "Upstream", "enabled": true,
                    "credentials": [{"type": "password", "value": pw, "temporary": false}]}),
        )
        .await;
    }
    s.admin_create(
        &t,
        "/down/clients",
        &json!({"clientId": "app", "secret": "app-secret", "redirectUris": [APP_CB]}),
    )
    .await;
    s.admin_create(
        &t,
        "/down/users",
        &json!({"username": "bob", "email": "bob@corp.example", "enabled": true,
                "credentials": [{"type": "password", "value": "bob-local", "temporary": false}]}),
    )
    .await;
    let (st, config) = s
        .admin_post_json(
            &t,
            "/down/identity-provider/import-config",
            &json!({"providerId": "keycloak-oidc",
                    "fromUrl": format!("{}/realms/upstream/.well-known/openid-configuration", s.base)}),
        )
        .await;
    assert_eq!(st, 200, "{config}");
    assert_eq!(config["validateSignature"], "true");
    let mut config = config;
    config["clientId"] = json!("broker");
    config["clientSecret"] = json!("broker-secret");
    config["pkceEnabled"] = json!("true");
    config["pkceMethod"] = json!("S256");
    config["defaultScope"] = json!("openid email profile");
    let (st, _) = s
        .admin_post(
            &t,
            "/down/identity-provider/instances",
            &json!({"alias": "up", "providerId": "keycloak-oidc", "displayName": "Upstream",
                    "trustEmail": true, "config": config}),
        )
        .await;
    assert_eq!(st, 201);
    t
}

/// Signs in at upstream on the page `r` (the provider's login page) and
/// returns the provider's redirect back to `down`.
async fn at_upstream(b: &mut Browser, to_provider: String, user: &str, pw: &str) -> String {
    assert!(
        to_provider.starts_with(&format!("{}/realms/upstream/", b.base)),
        "{to_provider}"
    );
    assert!(param(&to_provider, "code_challenge").is_some(), "PKCE sent");
    assert_eq!(
        param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let page = b.get(&to_provider).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let back = b
        .submit(&html, &[("username", user), ("password", pw)])
        .await;
    let back = location(&back);
    assert!(back.contains("/realms/down/broker/up/endpoint?"), "{back}");
    back
}

/// From `down`'s login page through the provider back to the app: the
/// app's redirect (with its code), or the page `down` answered with.
async fn brokered_login(b: &mut Browser, user: &str, pw: &str) -> reqwest::Response {
    let page = b.get(&auth_url("")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(">Upstream</a>"), "offered on the login page");
    let start = between(&html, "id=\"social-up\" href=\"", "\"").replace("&amp;", "&");
    let to_provider = location(&b.get(&start).await);
    let back = at_upstream(b, to_provider, user, pw).await;
    b.get(&back).await
}

async fn redeem(s: &Server, to_app: &str) -> Value {
    assert!(to_app.starts_with(APP_CB), "{to_app}");
    assert_eq!(param(to_app, "state").as_deref(), Some("s1"));
    let code = param(to_app, "code").expect("code");
    s.redeem_code("down", ("app", "app-secret"), &code, APP_CB)
        .await
}

#[tokio::test]
async fn a_realm_logs_people_in_through_an_oidc_provider() {
    let s = start().await;
    let t = setup(&s).await;

    // First login: a new user in `down`, made from the provider's claims
    // and linked to the account there.
    let mut b = Browser::new(&s);
    let done = brokered_login(&mut b, "ann", "ann-up").await;
    let tokens = redeem(&s, &location(&done)).await;
    let ann_at = tokens["access_token"].as_str().expect("at").to_owned();
    let id = claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["preferred_username"], "ann");
    assert_eq!(id["email"], "ann@corp.example");
    assert_eq!(id["email_verified"], true, "trustEmail");
    assert_eq!(id["given_name"], "Ann");
    let ann = s.user_id(&t, "down", "ann").await;
    assert_eq!(id["sub"], json!(ann));
    let upstream_ann = s.user_id(&t, "upstream", "ann").await;
    let (_, links) = s
        .admin_get(&t, &format!("/down/users/{ann}/federated-identity"))
        .await;
    assert_eq!(
        links,
        json!([{"identityProvider": "up", "userId": upstream_ann, "userName": "ann"}])
    );
    let (_, events) = s.admin_get(&t, "/down/events?type=REGISTER").await;
    assert_eq!(events[0]["details"]["register_method"], "broker");
    assert_eq!(events[0]["details"]["identity_provider"], "up");
    let (_, events) = s.admin_get(&t, "/down/events?type=LOGIN").await;
    assert_eq!(events[0]["details"]["identity_provider"], "up");
    assert_eq!(
        events[0]["details"]["identity_provider_identity"],
        upstream_ann
    );

    // The answer is spent: replaying the provider's redirect finds nothing.
    let mut again = Browser::new(&s);
    let page = again.get(&auth_url("")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let start = between(&html, "id=\"social-up\" href=\"", "\"").replace("&amp;", "&");
    let to_provider = location(&again.get(&start).await);
    let back = at_upstream(&mut again, to_provider, "ann", "ann-up").await;
    assert_eq!(again.get(&back).await.status(), 302);
    assert_eq!(again.get(&back).await.status(), 400, "state spent");

    // A returning person, straight to the provider with kc_idp_hint: the
    // same user, not a second one.
    let mut b2 = Browser::new(&s);
    let to_broker = location(&b2.get(&auth_url("&kc_idp_hint=up")).await);
    let to_provider = location(&b2.get(&to_broker).await);
    let back = at_upstream(&mut b2, to_provider, "ann", "ann-up").await;
    let tokens = redeem(&s, &location(&b2.get(&back).await)).await;
    assert_eq!(
        claims(tokens["access_token"].as_str().expect("at"))["sub"],
        json!(ann)
    );
    let (_, count) = s.admin_get(&t, "/down/users/count?username=ann").await;
    assert_eq!(count, json!(1));

    // A person whose email is an existing account's: asked for that
    // account's password, then linked; the wrong one is refused.
    let mut b3 = Browser::new(&s);
    let page = brokered_login(&mut b3, "bob", "bob-up").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Account already exists"), "{html}");
    let wrong = b3.submit(&html, &[("password", "bob-up")]).await;
    assert_eq!(wrong.status(), 200);
    let html = wrong.text().await.expect("html");
    assert!(html.contains("Invalid password."), "{html}");
    let linked = b3.submit(&html, &[("password", "bob-local")]).await;
    let tokens = redeem(&s, &location(&linked)).await;
    let bob = s.user_id(&t, "down", "bob").await;
    assert_eq!(
        claims(tokens["access_token"].as_str().expect("at"))["sub"],
        json!(bob)
    );
    let (_, links) = s
        .admin_get(&t, &format!("/down/users/{bob}/federated-identity"))
        .await;
    assert_eq!(links[0]["identityProvider"], "up");
    let (_, events) = s
        .admin_get(&t, "/down/events?type=IDENTITY_PROVIDER_LINK_ACCOUNT")
        .await;
    assert_eq!(events[0]["userId"], json!(bob));

    // The Account API: bob (who has a password) removes his link; ann's
    // is her only way in, so it stays.
    let account = |token: &str, method: reqwest::Method| {
        s.http
            .request(
                method,
                format!("{}/realms/down/account/linked-accounts/up", s.base),
            )
            .bearer_auth(token.to_owned())
    };
    let r = account(&ann_at, reqwest::Method::DELETE)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let bob_at = tokens["access_token"].as_str().expect("at");
    let r = account(bob_at, reqwest::Method::DELETE)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let r = account(bob_at, reqwest::Method::DELETE)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "no link left");
    let (_, links) = s
        .admin_get(&t, &format!("/down/users/{bob}/federated-identity"))
        .await;
    assert_eq!(links, json!([]));
}

#[tokio::test]
async fn brokered_logins_refuse_what_does_not_check_out() {
    let s = start().await;
    let t = setup(&s).await;

    // Another browser cannot pick up the login: no CSRF cookie, 403.
    let mut b = Browser::new(&s);
    let html = b.get(&auth_url("")).await.text().await.expect("html");
    let start = between(&html, "id=\"social-up\" href=\"", "\"").replace("&amp;", "&");
    let mut stranger = Browser::new(&s);
    assert_eq!(stranger.get(&start).await.status(), 403);

    // The provider says the person declined: back to the login page.
    let to_provider = location(&b.get(&start).await);
    let state = param(&to_provider, "state").expect("state");
    let declined = b
        .get(&format!(
            "/realms/down/broker/up/endpoint?error=access_denied&state={state}"
        ))
        .await;
    assert_eq!(declined.status(), 200);
    let html = declined.text().await.expect("html");
    assert!(
        html.contains("Sign-in with Upstream was cancelled."),
        "{html}"
    );
    assert!(
        html.contains("id=\"kc-form-login\""),
        "the login form again"
    );

    // An ID token from an issuer other than the configured one is refused,
    // and the failure is recorded.
    let p = "/down/identity-provider/instances/up";
    let (_, mut rep) = s.admin_get(&t, p).await;
    rep["config"]["issuer"] = json!("https://elsewhere.example/realms/upstream");
    assert_eq!(s.admin_put(&t, p, Some(&rep)).await, 204);
    let page = brokered_login(&mut Browser::new(&s), "ann", "ann-up").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Unexpected error when authenticating with identity provider"),
        "{html}"
    );
    let (_, events) = s
        .admin_get(&t, "/down/events?type=IDENTITY_PROVIDER_LOGIN_ERROR")
        .await;
    assert!(
        events[0]["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("issuer")),
        "{events}"
    );
    assert_eq!(
        s.admin_get(&t, "/down/users/count?username=ann").await.1,
        json!(0)
    );

    // The masked secret read back and written again kept the real one:
    // with the right issuer the login works.
    rep["config"]["issuer"] = json!(format!("{}/realms/upstream", s.base));
    assert_eq!(s.admin_put(&t, p, Some(&rep)).await, 204);
    let done = brokered_login(&mut Browser::new(&s), "ann", "ann-up").await;
    redeem(&s, &location(&done)).await;

    // A disabled user stays out, whatever the provider says.
    let ann = s.user_id(&t, "down", "ann").await;
    assert_eq!(
        s.admin_put(
            &t,
            &format!("/down/users/{ann}"),
            Some(&json!({"enabled": false}))
        )
        .await,
        204
    );
    let page = brokered_login(&mut Browser::new(&s), "ann", "ann-up").await;
    let html = page.text().await.expect("html");
    assert!(html.contains("Account is disabled"), "{html}");

    // A disabled provider is not offered and cannot be started.
    rep["enabled"] = json!(false);
    assert_eq!(s.admin_put(&t, p, Some(&rep)).await, 204);
    let mut b = Browser::new(&s);
    let html = b.get(&auth_url("")).await.text().await.expect("html");
    assert!(!html.contains("social-up"), "{html}");
    assert_eq!(
        b.get(&auth_url("&kc_idp_hint=up")).await.status(),
        200,
        "a hint naming a disabled provider shows the login page"
    );
}

/// Logs `user` in through the provider from a fresh browser and returns
/// the access token `down` issued.
async fn access_token_via_broker(s: &Server, user: &str, pw: &str) -> Value {
    let done = brokered_login(&mut Browser::new(s), user, pw).await;
    let tokens = redeem(s, &location(&done)).await;
    claims(tokens["access_token"].as_str().expect("access token"))
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[tokio::test]
async fn provider_mappers_keep_roles_in_step_with_the_providers_claims() {
    let s = start().await;
    let t = setup(&s).await;
    // Upstream says which groups ann is in and her department, in its ID
    // tokens for the broker.
    let broker = s.client_uuid(&t, "upstream", "broker").await;
    for mapper in [
        json!({"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
               "config": {"claim.name": "groups", "full.path": "false", "id.token.claim": "true"}}),
        json!({"name": "department", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper",
               "config": {"user.attribute": "department", "claim.name": "department", "id.token.claim": "true"}}),
    ] {
        s.admin_create(
            &t,
            &format!("/upstream/clients/{broker}/protocol-mappers/models"),
            &mapper,
        )
        .await;
    }
    let eng = s
        .admin_create(&t, "/upstream/groups", &json!({"name": "eng"}))
        .await;
    let up_ann = s.user_id(&t, "upstream", "ann").await;
    let ann_groups = format!("/upstream/users/{up_ann}/groups/{eng}");
    assert_eq!(s.admin_put(&t, &ann_groups, None).await, 204);
    let up_ann_path = format!("/upstream/users/{up_ann}");
    assert_eq!(
        s.admin_put(
            &t,
            &up_ann_path,
            Some(&json!({"attributes": {"department": ["sales"]}}))
        )
        .await,
        204
    );
    // Down: the roles and group the mappers hand out.
    let (st, _) = s
        .admin_post(&t, "/down/roles", &json!({"name": "developer"}))
        .await;
    assert_eq!(st, 201);
    let app = s.client_uuid(&t, "down", "app").await;
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/down/clients/{app}/roles"),
            &json!({"name": "viewer"}),
        )
        .await;
    assert_eq!(st, 201);
    s.admin_create(&t, "/down/groups", &json!({"name": "brokered"}))
        .await;
    let m = "/down/identity-provider/instances/up/mappers";
    for mapper in [
        json!({"name": "eng is developer", "identityProviderMapper": "oidc-role-idp-mapper",
               "config": {"claim": "groups", "claim.value": "eng", "role": "developer", "syncMode": "FORCE"}}),
        json!({"name": "department", "identityProviderMapper": "oidc-user-attribute-idp-mapper",
               "config": {"claim": "department", "user.attribute": "department", "syncMode": "INHERIT"}}),
        json!({"name": "everyone brokered", "identityProviderMapper": "oidc-hardcoded-group-idp-mapper",
               "config": {"group": "/brokered"}}),
        json!({"name": "app viewer", "identityProviderMapper": "hardcoded-role-idp-mapper",
               "config": {"role": "app.viewer"}}),
    ] {
        s.admin_create(&t, m, &mapper).await;
    }
    // What cannot work is refused: an unknown type, a mapper without its role.
    let (st, _) = s
        .admin_post(
            &t,
            m,
            &json!({"name": "x", "identityProviderMapper": "saml-user-attribute-idp-mapper"}),
        )
        .await;
    assert_eq!(st, 501);
    let (st, _) = s
        .admin_post(
            &t,
            m,
            &json!({"name": "y", "identityProviderMapper": "oidc-role-idp-mapper", "config": {"claim": "groups"}}),
        )
        .await;
    assert_eq!(st, 400);
    let (_, types) = s
        .admin_get(&t, "/down/identity-provider/instances/up/mapper-types")
        .await;
    assert_eq!(types["oidc-role-idp-mapper"]["name"], "Claim to Role");

    // First login: the role from the claim, the hardcoded ones, the group,
    // the imported attribute.
    let at = access_token_via_broker(&s, "ann", "ann-up").await;
    assert!(
        names(&at["realm_access"]["roles"]).contains(&"developer"),
        "{at}"
    );
    assert_eq!(names(&at["resource_access"]["app"]["roles"]), ["viewer"]);
    let ann = s.user_id(&t, "down", "ann").await;
    let (_, user) = s.admin_get(&t, &format!("/down/users/{ann}")).await;
    assert_eq!(user["attributes"]["department"], json!(["sales"]));
    let (_, groups) = s.admin_get(&t, &format!("/down/users/{ann}/groups")).await;
    assert_eq!(groups[0]["path"], "/brokered");

    // Upstream takes ann out of eng and moves her: the FORCE mapper takes
    // the role back at her next login; the imported attribute stays as
    // first imported (the provider syncs IMPORT).
    assert_eq!(s.admin_delete(&t, &ann_groups).await, 204);
    assert_eq!(
        s.admin_put(
            &t,
            &up_ann_path,
            Some(&json!({"attributes": {"department": ["ops"]}}))
        )
        .await,
        204
    );
    let at = access_token_via_broker(&s, "ann", "ann-up").await;
    assert!(
        !names(&at["realm_access"]["roles"]).contains(&"developer"),
        "{at}"
    );
    assert_eq!(names(&at["resource_access"]["app"]["roles"]), ["viewer"]);
    let (_, user) = s.admin_get(&t, &format!("/down/users/{ann}")).await;
    assert_eq!(user["attributes"]["department"], json!(["sales"]));

    // Back in eng: the role comes back.
    assert_eq!(s.admin_put(&t, &ann_groups, None).await, 204);
    let at = access_token_via_broker(&s, "ann", "ann-up").await;
    assert!(
        names(&at["realm_access"]["roles"]).contains(&"developer"),
        "{at}"
    );
}

/// Keycloak's `hash` of a client-initiated link request.
fn link_hash(nonce: &str, session: &str, client: &str, alias: &str) -> String {
    use base64::Engine;
    let input = format!("{nonce}{session}{client}{alias}");
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

#[tokio::test]
async fn a_signed_in_user_links_an_account_the_application_asks_for() {
    let s = start().await;
    let t = setup(&s).await;
    // bob signs in to `down` with his password, in his browser.
    let mut b = Browser::new(&s);
    let html = b.get(&auth_url("")).await.text().await.expect("html");
    let done = b
        .submit(&html, &[("username", "bob"), ("password", "bob-local")])
        .await;
    let tokens = redeem(&s, &location(&done)).await;
    let sid = claims(tokens["access_token"].as_str().expect("at"))["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let link_url = |nonce: &str, hash: &str| {
        format!(
            "/realms/down/broker/up/link?client_id=app&redirect_uri=http%3A%2F%2Fapp.example%2Fcb&nonce={nonce}&hash={hash}"
        )
    };
    // A request the client did not make (wrong hash), or from a browser
    // without bob's session, goes back with link_error.
    let r = b.get(&link_url("n1", "forged")).await;
    assert_eq!(location(&r), format!("{APP_CB}?link_error=invalid_request"));
    let good = link_hash("n1", &sid, "app", "up");
    let r = Browser::new(&s).get(&link_url("n1", &good)).await;
    assert_eq!(location(&r), format!("{APP_CB}?link_error=not_logged_in"));
    // The real one: off to the provider, back linked.
    let to_provider = location(&b.get(&link_url("n1", &good)).await);
    let back = at_upstream(&mut b, to_provider, "bob", "bob-up").await;
    assert_eq!(location(&b.get(&back).await), APP_CB);
    let bob = s.user_id(&t, "down", "bob").await;
    let up_bob = s.user_id(&t, "upstream", "bob").await;
    let (_, links) = s
        .admin_get(&t, &format!("/down/users/{bob}/federated-identity"))
        .await;
    assert_eq!(
        links,
        json!([{"identityProvider": "up", "userId": up_bob, "userName": "bob"}])
    );
    let (_, events) = s
        .admin_get(&t, "/down/events?type=FEDERATED_IDENTITY_LINK")
        .await;
    assert_eq!(events[0]["userId"], json!(bob));
    // From now on bob signs in through the provider as himself.
    let at = access_token_via_broker(&s, "bob", "bob-up").await;
    assert_eq!(at["sub"], json!(bob));
    // Ann's provider account linked to ann here cannot be linked to bob.
    access_token_via_broker(&s, "ann", "ann-up").await;
    let (_, links) = s
        .admin_get(&t, &format!("/down/users/{bob}/federated-identity"))
        .await;
    assert_eq!(links.as_array().map(Vec::len), Some(1));
    let bob_link = format!("/down/users/{bob}/federated-identity/up");
    assert_eq!(s.admin_delete(&t, &bob_link).await, 204);
    let good = link_hash("n2", &sid, "app", "up");
    b.forget("/realms/upstream/");
    let to_provider = location(&b.get(&link_url("n2", &good)).await);
    let back = at_upstream(&mut b, to_provider, "ann", "ann-up").await;
    assert_eq!(
        location(&b.get(&back).await),
        format!("{APP_CB}?link_error=identity_already_linked")
    );
}

#[tokio::test]
async fn provider_settings_shape_the_request_to_the_provider() {
    let s = start().await;
    let t = setup(&s).await;
    let p = "/down/identity-provider/instances/up";
    let (_, mut rep) = s.admin_get(&t, p).await;
    rep["config"]["loginHint"] = json!("true");
    rep["config"]["prompt"] = json!("login");
    rep["config"]["guiOrder"] = json!("2");
    assert_eq!(s.admin_put(&t, p, Some(&rep)).await, 204);
    // A second provider placed first on the login page.
    let mut second = rep.clone();
    second["alias"] = json!("second");
    second["displayName"] = json!("Second");
    second["config"]["guiOrder"] = json!("1");
    second["config"]["clientSecret"] = json!("broker-secret");
    let (st, _) = s
        .admin_post(&t, "/down/identity-provider/instances", &second)
        .await;
    assert_eq!(st, 201);
    let mut b = Browser::new(&s);
    let html = b.get(&auth_url("")).await.text().await.expect("html");
    let (first, then) = (
        html.find("social-second").expect("second"),
        html.find("social-up").expect("up"),
    );
    assert!(first < then, "guiOrder puts Second first");
    // The client's login_hint goes on to the provider, with the prompt.
    let to_broker = location(&b.get(&auth_url("&kc_idp_hint=up&login_hint=ann")).await);
    let to_provider = location(&b.get(&to_broker).await);
    assert_eq!(param(&to_provider, "login_hint").as_deref(), Some("ann"));
    assert_eq!(param(&to_provider, "prompt").as_deref(), Some("login"));
    let page = b.get(&to_provider).await.text().await.expect("html");
    assert!(
        page.contains("value=\"ann\""),
        "upstream fills the username"
    );
    // A prompt the protocol does not know is refused when configured.
    rep["config"]["prompt"] = json!("sometimes");
    assert_eq!(s.admin_put(&t, p, Some(&rep)).await, 400);
}

#[tokio::test]
async fn malformed_broker_requests_get_clean_answers() {
    let s = start().await;
    setup(&s).await;
    let long = "x".repeat(8000);
    let mut urls = vec![
        "/realms/down/broker/up/login".to_owned(),
        "/realms/down/broker/up/login?session_code=".to_owned(),
        "/realms/down/broker/up/login?session_code=%ZZ%00".to_owned(),
        "/realms/down/broker/nope/login?session_code=abc".to_owned(),
        "/realms/nope/broker/up/login?session_code=abc".to_owned(),
        "/realms/down/broker/up/endpoint".to_owned(),
        "/realms/down/broker/up/endpoint?state=".to_owned(),
        "/realms/down/broker/up/endpoint?state=forged&code=c".to_owned(),
        "/realms/down/broker/up/endpoint?error=access_denied".to_owned(),
        "/realms/down/broker/up/endpoint?state=%FF%FE&code=%00".to_owned(),
        "/realms/down/broker/%2e%2e/endpoint?state=a".to_owned(),
        "/realms/down/broker/up/link".to_owned(),
        "/realms/down/broker/up/link?client_id=app".to_owned(),
        "/realms/down/broker/up/link?client_id=app&redirect_uri=http%3A%2F%2Fevil.example%2F"
            .to_owned(),
        "/realms/down/broker/up/link?client_id=nope&redirect_uri=x&nonce=n&hash=h".to_owned(),
    ];
    urls.push(format!(
        "/realms/down/broker/up/endpoint?state={long}&code={long}"
    ));
    urls.push(format!("/realms/down/broker/up/login?session_code={long}"));
    let mut b = Browser::new(&s);
    for url in &urls {
        let r = b.get(url).await;
        let st = r.status().as_u16();
        assert!((300..500).contains(&st), "{url}: {st}");
        if st == 302 {
            let to = location(&r);
            assert!(!to.contains("evil.example"), "{url} redirected to {to}");
        }
    }
    for (query, body) in [
        ("", "password=x"),
        ("?session_code=abc", "password=x&csrf=y"),
        ("?session_code=abc", "%ZZ=%ZZ"),
    ] {
        let r = b
            .post(
                &format!("/realms/down/login-actions/first-broker-login{query}"),
                &[("raw", body)],
            )
            .await;
        assert!((400..500).contains(&r.status().as_u16()), "{query} {body}");
    }
}

#[tokio::test]
async fn logging_out_here_logs_out_at_the_provider_too() {
    let s = start().await;
    setup(&s).await;
    let mut b = Browser::new(&s);
    let done = brokered_login(&mut b, "ann", "ann-up").await;
    let tokens = redeem(&s, &location(&done)).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    // RP-initiated logout at `down`: on to upstream's logout with its own
    // ID token as the hint, back through the broker, on to the app.
    let out = b
        .get(&format!(
            "/realms/down/protocol/openid-connect/logout?id_token_hint={id_token}&post_logout_redirect_uri=http%3A%2F%2Fapp.example%2Fcb&state=bye"
        ))
        .await;
    let to_provider = location(&out);
    assert!(
        to_provider.starts_with(&format!(
            "{}/realms/upstream/protocol/openid-connect/logout?",
            s.base
        )),
        "{to_provider}"
    );
    let hint = param(&to_provider, "id_token_hint").expect("hint");
    assert_eq!(claims(&hint)["iss"], format!("{}/realms/upstream", s.base));
    let back = location(&b.get(&to_provider).await);
    assert!(
        back.contains("/realms/down/broker/up/endpoint/logout_response?"),
        "{back}"
    );
    assert_eq!(location(&b.get(&back).await), format!("{APP_CB}?state=bye"));
    // Both sessions are over: signing in through the provider asks for the
    // password again.
    let page = b.get(&auth_url("")).await.text().await.expect("html");
    let start = between(&page, "id=\"social-up\" href=\"", "\"").replace("&amp;", "&");
    let to_provider = location(&b.get(&start).await);
    assert_eq!(
        b.get(&to_provider).await.status(),
        200,
        "upstream's login page"
    );
    // The way back is spent.
    let again = b.get(&back).await.text().await.expect("html");
    assert!(again.contains("You are logged out"), "{again}");
}
