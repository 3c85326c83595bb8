//! Start a real Gatehouse on port 0 and talk to it.

use gatehouse::config::Config;
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-pass-1";

pub struct Server {
    pub base: String,
    /// The gateway listener's base URL.
    pub gw: String,
    pub http: reqwest::Client,
    pub running: gatehouse::Running,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.running.abort();
    }
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

/// Starts a server after `tune` adjusts its configuration.
pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("gatehouse.toml");
    let audit = dir.path().join("audit.log");
    std::fs::write(
        &cfg_path,
        format!("[gateway]\naudit_log = {:?}\n", audit.display().to_string()),
    )
    .expect("write config");
    let mut cfg = Config::load(Some(&cfg_path)).expect("config");
    cfg.server.identity_listen = "127.0.0.1:0".into();
    cfg.server.gateway_listen = "127.0.0.1:0".into();
    cfg.server.reload_poll_seconds = 0;
    cfg.server.data_dir = dir.path().to_owned();
    // Cheap hashes keep the suite fast; the cost is a setting, not a branch.
    cfg.server.password_memory_kib = 64;
    cfg.server.password_iterations = 1;
    cfg.admin_user = "admin".into();
    cfg.admin_password = Some(ADMIN_PASSWORD.into());
    tune(&mut cfg);
    let running = gatehouse::start(&cfg).await.expect("start");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Server {
        base: format!("{}://{}", running.config.scheme(), running.identity_addr),
        gw: format!("{}://{}", running.config.scheme(), running.gateway_addr),
        http,
        running,
        _dir: dir,
    }
}

impl Server {
    /// Writes `toml` as the config file and reloads the gateway from it.
    pub fn configure(&self, toml: &str) -> anyhow::Result<()> {
        let path = self.running.config.source.clone().expect("config file");
        std::fs::write(&path, toml).expect("write config");
        self.running.reload()
    }

    /// Audit lines written so far (the config must set `audit_log`).
    pub async fn audit(&self) -> Vec<Value> {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `reason` of every audit line with `status`, in order.
    pub async fn audit_reasons(&self, status: u16) -> Vec<Value> {
        self.audit()
            .await
            .into_iter()
            .filter(|l| l["status"] == status)
            .map(|l| l["reason"].clone())
            .collect()
    }

    /// `GET userinfo` of `realm` with a bearer token.
    pub async fn userinfo(&self, realm: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!(
                "{}/realms/{realm}/protocol/openid-connect/userinfo",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("userinfo")
    }

    /// Where a test config should send audit lines.
    pub fn audit_path(&self) -> String {
        self._dir.path().join("audit.log").display().to_string()
    }

    pub fn token_url(&self, realm: &str) -> String {
        format!("{}/realms/{realm}/protocol/openid-connect/token", self.base)
    }

    pub async fn admin_token(&self) -> String {
        let r: Value = self
            .http
            .post(self.token_url("master"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        r["access_token"].as_str().expect("admin token").to_owned()
    }

    /// A client-credentials access token of `client` (secret `secret`) in
    /// `realm`.
    pub async fn service_token(&self, realm: &str, client: &str, secret: &str) -> String {
        let r: Value = self
            .http
            .post(self.token_url(realm))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        r["access_token"].as_str().expect("token").to_owned()
    }

    /// POSTs admin JSON under `/admin/realms`.
    async fn admin_post_raw(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/admin/realms{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    /// POSTs admin JSON and returns (status, Location).
    pub async fn admin_post(&self, token: &str, path: &str, body: &Value) -> (u16, Option<String>) {
        let r = self.admin_post_raw(token, path, body).await;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), loc)
    }

    /// POSTs admin JSON and returns (status, JSON body; null if none).
    pub async fn admin_post_json(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self.admin_post_raw(token, path, body).await;
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a new admin resource, checks the 201, and gives the id its
    /// `Location` ends with.
    pub async fn admin_create(&self, token: &str, path: &str, body: &Value) -> String {
        let (st, loc) = self.admin_post(token, path, body).await;
        assert_eq!(st, 201, "POST {path}");
        loc.expect("location")
            .rsplit('/')
            .next()
            .expect("id")
            .to_owned()
    }

    /// PUTs admin JSON (`body`, or no body) and returns the status.
    pub async fn admin_put(&self, token: &str, path: &str, body: Option<&Value>) -> u16 {
        let mut r = self
            .http
            .put(format!("{}/admin/realms{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send().await.expect("send").status().as_u16()
    }

    /// DELETEs an admin resource and returns the status.
    pub async fn admin_delete(&self, token: &str, path: &str) -> u16 {
        self.http
            .delete(format!("{}/admin/realms{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    }

    /// The realm's published signing keys (its JWKS), as a relying party
    /// loads them to verify what the realm signs.
    pub async fn realm_keys(&self, realm: &str) -> gatehouse_jose::verify::KeySet {
        let jwks = self.jwks(realm).await.to_string();
        gatehouse_jose::verify::KeySet::from_jwks_json(jwks.as_bytes()).expect("jwks")
    }

    /// The realm's JWKS document (`.../certs`).
    pub async fn jwks(&self, realm: &str) -> Value {
        self.get_json(&format!("/realms/{realm}/protocol/openid-connect/certs"))
            .await
    }

    /// A public GET of `path` on the identity listener, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// `token`'s claims, verified as a relying party verifies what the
    /// realm signs: a published key, the realm as issuer, not expired.
    pub async fn verified(&self, realm: &str, token: &str) -> Value {
        let rules =
            gatehouse_jose::verify::Rules::for_issuer(&format!("{}/realms/{realm}", self.base));
        self.realm_keys(realm)
            .await
            .verify(token, &rules)
            .expect("token verifies against published JWKS")
    }

    /// The realm's OIDC discovery document.
    pub async fn discovery(&self, realm: &str) -> Value {
        self.http
            .get(format!(
                "{}/realms/{realm}/.well-known/openid-configuration",
                self.base
            ))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json")
    }

    /// A refresh grant for `client` (Basic auth); the answer's status.
    /// A refresh-token grant by a public client (no secret).
    /// POSTs `form` to `realm`'s token endpoint, with Basic client
    /// authentication when `basic` names a client and its secret.
    pub async fn token_request(
        &self,
        realm: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut r = self.http.post(self.token_url(realm)).form(form);
        if let Some((client, secret)) = basic {
            r = r.basic_auth(client, Some(secret));
        }
        r.send().await.expect("token request")
    }

    /// A client-credentials grant whose client authenticates with a
    /// signed JWT (`private_key_jwt` / `client_secret_jwt`, RFC 7523).
    pub async fn assertion_grant(&self, realm: &str, assertion: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ];
        self.token_request(realm, None, &form).await
    }

    /// A client-credentials grant for `client`, authenticated by a JWT it
    /// signed with `key` (`private_key_jwt`, audience the token endpoint).
    pub async fn private_key_jwt_grant(
        &self,
        realm: &str,
        client: &str,
        key: &gatehouse_jose::keys::SigningKey,
        jti: &str,
    ) -> reqwest::Response {
        let now = gatehouse_core::time::now();
        let assertion = gatehouse_jose::sign::sign(
            key,
            &json!({"iss": client, "sub": client, "aud": self.token_url(realm),
                "exp": now + 60, "iat": now, "jti": jti}),
        )
        .expect("sign");
        self.assertion_grant(realm, &assertion).await
    }

    pub async fn public_refresh(&self, realm: &str, client: &str, rt: &str) -> reqwest::Response {
        self.http
            .post(self.token_url(realm))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client),
                ("refresh_token", rt),
            ])
            .send()
            .await
            .expect("refresh")
    }

    pub async fn refresh_status(&self, realm: &str, client: (&str, &str), rt: &str) -> u16 {
        self.refresh(realm, client, rt).await.status().as_u16()
    }

    /// A refresh grant by a confidential client (Basic auth).
    pub async fn refresh(
        &self,
        realm: &str,
        (client, secret): (&str, &str),
        rt: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.token_url(realm))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .send()
            .await
            .expect("refresh")
    }

    /// GETs an admin path outside `/admin/realms` (`/admin/serverinfo`).
    pub async fn admin_get_root(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/admin/realms{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Realm `demo` with confidential client `app` (secret `app-secret`,
    /// direct grants, service account, redirect http://127.0.0.1/cb), public
    /// client `spa`, user `alice` (password `alice-pw`) in group `sales`.
    pub async fn demo_realm(&self) -> String {
        let t = self.admin_token().await;
        assert_eq!(
            // Events listed, as the tests read them (Keycloak's default
            // and ours for a new realm is neither).
            self.admin_post(
                &t,
                "",
                &json!({"realm": "demo", "enabled": true,
                "eventsEnabled": true, "adminEventsEnabled": true})
            )
            .await
            .0,
            201
        );
        let (s, _) = self
            .admin_post(
                &t,
                "/demo/client-scopes",
                &json!({"name": "orders:read", "protocol": "openid-connect",
                    "attributes": {"include.in.token.scope": "true"}}),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = self
            .admin_post(
                &t,
                "/demo/clients",
                &json!({
                    "clientId": "app", "secret": "app-secret", "directAccessGrantsEnabled": true,
                    "serviceAccountsEnabled": true, "redirectUris": ["http://127.0.0.1/cb"],
                    "optionalClientScopes": ["offline_access", "orders:read"],
                }),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = self
            .admin_post(
                &t,
                "/demo/clients",
                &json!({
                    "clientId": "spa", "publicClient": true, "directAccessGrantsEnabled": true,
                    "redirectUris": ["http://127.0.0.1/spa/*"],
                }),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = self
            .admin_post(&t, "/demo/groups", &json!({"name": "sales"}))
            .await;
        assert_eq!(s, 201);
        let (s, _) = self
            .admin_post(&t, "/demo/users", &json!({
                "username": "alice", "email": "alice@example.com", "firstName": "Alice", "enabled": true,
                "credentials": [{"type": "password", "value": "alice-pw", "temporary": false}],
                "groups": ["/sales"],
            }))
            .await;
        assert_eq!(s, 201);
        t
    }

    /// The internal id of the client `client_id` in `realm`.
    pub async fn client_uuid(&self, token: &str, realm: &str, client_id: &str) -> String {
        let (_, clients) = self
            .admin_get(token, &format!("/{realm}/clients?clientId={client_id}"))
            .await;
        clients[0]["id"].as_str().expect("client id").to_owned()
    }

    /// `realm` as `gatehouse export` writes it.
    pub async fn export(&self, realm: &str) -> Value {
        let idp = &self.running.idp;
        let r = idp
            .store
            .realm_by_name(realm)
            .await
            .expect("query")
            .expect("realm");
        gatehouse_idp::export::realm(idp, &r).await.expect("export")
    }

    /// User `username` as the export of `realm` writes them.
    pub async fn exported_user(&self, realm: &str, username: &str) -> Value {
        let exported = self.export(realm).await;
        exported["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["username"] == username)
            .unwrap_or_else(|| panic!("{username} in the export"))
            .clone()
    }

    /// Imports a realm representation as `gatehouse import` does.
    pub async fn import(&self, rep: &Value) {
        gatehouse::import_realm(&self.running.idp, rep)
            .await
            .expect("import");
    }

    /// The id of `username` in `realm`, through the admin API.
    pub async fn user_id(&self, token: &str, realm: &str, username: &str) -> String {
        let (_, users) = self
            .admin_get(
                token,
                &format!("/{realm}/users?username={username}&exact=true"),
            )
            .await;
        users[0]["id"].as_str().expect("user id").to_owned()
    }

    /// Introspects `token` in realm `demo` as client `app` (RFC 7662).
    pub async fn introspect_demo(&self, token: &str) -> Value {
        self.http
            .post(format!(
                "{}/realms/demo/protocol/openid-connect/token/introspect",
                self.base
            ))
            .basic_auth("app", Some("app-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json")
    }

    /// Sets a user's password through the admin API (`temporary` as Keycloak's).
    pub async fn reset_password(
        &self,
        token: &str,
        realm: &str,
        id: &str,
        pw: &str,
        temporary: bool,
    ) {
        let r = self
            .reset_password_answer(token, (realm, id), pw, temporary)
            .await;
        assert_eq!(r.status(), 204);
    }

    /// The admin API's answer to setting user `id`'s password in `realm`.
    pub async fn reset_password_answer(
        &self,
        token: &str,
        (realm, id): (&str, &str),
        pw: &str,
        temporary: bool,
    ) -> reqwest::Response {
        self.http
            .put(format!(
                "{}/admin/realms/{realm}/users/{id}/reset-password",
                self.base
            ))
            .bearer_auth(token)
            .json(&json!({"type": "password", "value": pw, "temporary": temporary}))
            .send()
            .await
            .expect("reset-password")
    }

    /// The tokens `alice` of [`Server::demo_realm`] gets through client
    /// `app` by the password grant, with `scope` if given.
    pub async fn alice_tokens(&self, scope: Option<&str>) -> Value {
        let secret = Some("app-secret");
        self.password_tokens("demo", "app", secret, "alice", "alice-pw", scope)
            .await
    }

    /// The token response of a password grant, as JSON.
    pub async fn password_tokens(
        &self,
        realm: &str,
        client: &str,
        secret: Option<&str>,
        user: &str,
        pw: &str,
        scope: Option<&str>,
    ) -> Value {
        self.password_grant(realm, client, secret, user, pw, scope)
            .await
            .json()
            .await
            .expect("json")
    }

    pub async fn password_grant(
        &self,
        realm: &str,
        client: &str,
        secret: Option<&str>,
        user: &str,
        pw: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "password"),
            ("client_id", client),
            ("username", user),
            ("password", pw),
        ];
        if let Some(s) = secret {
            form.push(("client_secret", s));
        }
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.http
            .post(self.token_url(realm))
            .form(&form)
            .send()
            .await
            .expect("send")
    }
}

/// Decodes a JWT's payload without verifying (the tests verify separately).
/// The text between markers `a` and `b` in `s`.
pub fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).expect("start marker") + a.len();
    let j = s[i..].find(b).expect("end marker") + i;
    &s[i..j]
}

/// The absolute URL of the link with `id` in page `html`.
pub fn href(s: &Server, html: &str, id: &str) -> String {
    let link = between(html, &format!("id=\"{id}\" href=\""), "\"").replace("&amp;", "&");
    format!("{}{link}", s.base)
}

/// `name=value` of the cookie `name` that `r` sets.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .split(';')
        .next()
        .expect("kv")
        .to_owned()
}

impl Server {
    /// Redeems an authorization code for client `client` (Basic auth) and
    /// returns the token response.
    pub async fn redeem_code(
        &self,
        realm: &str,
        (client, secret): (&str, &str),
        code: &str,
        redirect_uri: &str,
    ) -> Value {
        let r = self
            .http
            .post(self.token_url(realm))
            .basic_auth(client, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200, "code redeemed");
        r.json().await.expect("json")
    }

    /// Changes client `client_id`'s representation with `edit` (GET, edit,
    /// PUT, as an admin script does).
    pub async fn edit_client(
        &self,
        token: &str,
        realm: &str,
        client_id: &str,
        edit: impl FnOnce(&mut Value),
    ) {
        let id = self.client_uuid(token, realm, client_id).await;
        let url = format!("{}/admin/realms/{realm}/clients/{id}", self.base);
        let mut rep: Value = self
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        edit(&mut rep);
        let r = self
            .http
            .put(&url)
            .bearer_auth(token)
            .json(&rep)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 204);
    }

    /// The login page a code-flow request of the demo realm's `app` client
    /// opens (`demo_realm`'s client and redirect).
    pub async fn app_login_page(&self) -> reqwest::Response {
        self.http
            .get(format!(
                "{}/realms/demo/protocol/openid-connect/auth",
                self.base
            ))
            .query(&[
                ("response_type", "code"),
                ("client_id", "app"),
                ("redirect_uri", "http://127.0.0.1/cb"),
                ("scope", "openid"),
                ("state", "st"),
            ])
            .send()
            .await
            .expect("auth")
    }

    /// Logs `alice` in through the login page `first` (the authorization
    /// endpoint's answer) and returns the login POST's answer.
    pub async fn log_in_alice(&self, first: reqwest::Response) -> reqwest::Response {
        assert_eq!(first.status(), 200);
        LoginPage::read(self, first)
            .await
            .post(&[("username", "alice"), ("password", "alice-pw")])
            .await
    }
}

/// A login page as a browser holds it: where its form posts, its CSRF
/// field and cookie.
pub struct LoginPage {
    http: reqwest::Client,
    action: String,
    csrf: String,
    cookie: String,
}

impl LoginPage {
    /// Reads the page the authorization endpoint answered with.
    pub async fn read(s: &Server, first: reqwest::Response) -> LoginPage {
        let cookie = set_cookie(&first, "GATEHOUSE_CSRF");
        let html = first.text().await.expect("html");
        LoginPage::of(s, &html, cookie)
    }

    /// A page `html` of the login whose CSRF cookie is `cookie`.
    pub fn of(s: &Server, html: &str, cookie: String) -> LoginPage {
        LoginPage {
            http: s.http.clone(),
            action: format!(
                "{}{}",
                s.base,
                between(html, "action=\"", "\"").replace("&amp;", "&")
            ),
            csrf: between(html, "name=\"csrf\" value=\"", "\"").to_owned(),
            cookie,
        }
    }

    /// Submits the form with `fields` (and the CSRF token).
    pub async fn post(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_to(&self.action, fields).await
    }

    /// Submits the form of a later page of the same login (`html`, say a
    /// required action's), with this login's CSRF token and cookie.
    pub async fn post_form(
        &self,
        s: &Server,
        html: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let action = format!(
            "{}{}",
            s.base,
            between(html, "action=\"", "\"").replace("&amp;", "&")
        );
        self.post_to(&action, fields).await
    }

    /// Opens `url` (a link from a mail) in this login's browser.
    pub async fn open_link(&self, s: &Server, url: &str) -> reqwest::Response {
        s.http
            .get(url)
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get")
    }

    async fn post_to(&self, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut f = fields.to_vec();
        f.push(("csrf", &self.csrf));
        self.http
            .post(action)
            .header("cookie", &self.cookie)
            .form(&f)
            .send()
            .await
            .expect("send")
    }
}

pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .expect("b64"),
    )
    .expect("json")
}
