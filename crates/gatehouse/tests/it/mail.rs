//! Keycloak's e-mails: the forgotten-password link, the realm's "verify
//! email" setting, the admin's `execute-actions-email` and
//! `send-verify-email`, and `testSMTPConnection`, against an SMTP server
//! started in the test (a foreign peer: it speaks the protocol and keeps
//! what it received). The links are followed as a browser would, with and
//! without the cookies of the login that asked for them.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One message as the SMTP server received it.
#[derive(Clone, Debug)]
struct Received {
    to: Vec<String>,
    /// The `AUTH PLAIN` response, decoded ("\0user\0password").
    auth: Option<String>,
    data: String,
}

/// A minimal SMTP server (RFC 5321: EHLO, AUTH PLAIN, MAIL, RCPT, DATA,
/// RSET, NOOP, QUIT) that keeps every message.
struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Sink {
    async fn start() -> Sink {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (g, a) = (got.clone(), arrived.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let (g, a) = (g.clone(), a.clone());
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    let say = async |w: &mut tokio::net::tcp::OwnedWriteHalf, s: &str| {
                        w.write_all(s.as_bytes()).await.is_ok()
                    };
                    if !say(&mut w, "220 sink ESMTP\r\n").await {
                        return;
                    }
                    let mut cur = Received {
                        to: Vec::new(),
                        auth: None,
                        data: String::new(),
                    };
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_owned();
                        let upper = cmd.to_ascii_uppercase();
                        let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            "250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n".to_owned()
                        } else if upper.starts_with("AUTH PLAIN ") {
                            use base64::Engine;
                            let b = base64::engine::general_purpose::STANDARD
                                .decode(cmd[11..].trim())
                                .unwrap_or_default();
                            cur.auth = Some(String::from_utf8_lossy(&b).into_owned());
                            "235 2.7.0 Authentication successful\r\n".to_owned()
                        } else if upper.starts_with("MAIL FROM") {
                            "250 OK\r\n".to_owned()
                        } else if upper.starts_with("RCPT TO") {
                            cur.to.push(between(&cmd, "<", ">").to_owned());
                            "250 OK\r\n".to_owned()
                        } else if upper == "DATA" {
                            if !say(&mut w, "354 go ahead\r\n").await {
                                return;
                            }
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            cur.data = data;
                            g.lock().expect("lock").push(cur.clone());
                            a.notify_waiters();
                            cur.to.clear();
                            "250 OK queued\r\n".to_owned()
                        } else if upper == "QUIT" {
                            let _ = say(&mut w, "221 bye\r\n").await;
                            return;
                        } else {
                            "250 OK\r\n".to_owned()
                        };
                        if !say(&mut w, &reply).await {
                            return;
                        }
                    }
                });
            }
        });
        Sink { port, got, arrived }
    }

    fn count(&self) -> usize {
        self.got.lock().expect("lock").len()
    }

    /// The `n`th message (0-based), waiting a while for it.
    async fn nth(&self, n: usize) -> Received {
        for _ in 0..100 {
            let notified = self.arrived.notified();
            if let Some(m) = self.got.lock().expect("lock").get(n).cloned() {
                return m;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        }
        panic!("message {n} never arrived");
    }

    /// The realm's `smtpServer` for this sink.
    fn settings(&self, auth: bool) -> Value {
        let mut s = json!({"host": "127.0.0.1", "port": self.port.to_string(),
            "from": "idp@example.com", "fromDisplayName": "Demo IdP"});
        if auth {
            s["auth"] = json!("true");
            s["user"] = json!("mailer");
            s["password"] = json!("smtp-pw");
        }
        s
    }
}

impl Received {
    /// The message as text: quoted-printable soft breaks and `=3D` undone.
    fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }

    fn subject(&self) -> String {
        between(&self.data, "Subject: ", "\r\n").to_owned()
    }

    /// The action link the message carries (its first).
    fn link(&self) -> String {
        let t = self.text();
        let i = t.find("http://").expect("a link");
        t[i..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .expect("link")
            .replace("&amp;", "&")
    }
}

/// Sets `fields` on realm `demo` (a partial RealmRepresentation).
async fn set_realm(s: &Server, t: &str, fields: Value) {
    assert_eq!(s.admin_put(t, "/demo", Some(&fields)).await, 204);
}

/// GET `url` with the browser's `cookie`, if it has one.
async fn open(s: &Server, url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut r = s.http.get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.send().await.expect("get")
}

/// The realm's user events of `kind`.
async fn events(s: &Server, t: &str, kind: &str) -> Vec<Value> {
    let (st, v) = s.admin_get(t, &format!("/demo/events?type={kind}")).await;
    assert_eq!(st, 200);
    v.as_array().cloned().unwrap_or_default()
}

/// "Forgot Password?": the form mails a reset link to whoever the name
/// or address is (and says the same when it is no one's); the link,
/// opened in the browser that asked, sets the new password and finishes
/// that login with a code. Opened again, it is spent; opened in another
/// browser, it ends with "Your account has been updated." and no code.
#[tokio::test]
async fn a_forgotten_password_is_reset_by_a_mailed_link() {
    let s = start().await;
    let t = s.demo_realm().await;
    let sink = Sink::start().await;
    // Without resetPasswordAllowed, no link and no page.
    let html = s.app_login_page().await.text().await.expect("html");
    assert!(!html.contains("Forgot Password?"));
    set_realm(
        &s,
        &t,
        json!({"resetPasswordAllowed": true, "smtpServer": sink.settings(true)}),
    )
    .await;
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(realm["smtpServer"]["password"], "**********");
    assert_eq!(realm["actionTokenGeneratedByUserLifespan"], 300);

    let first = s.app_login_page().await;
    let cookie = set_cookie(&first, "GATEHOUSE_CSRF");
    let html = first.text().await.expect("html");
    let forgot = href(&s, &html, "kc-forgot-password");
    // The page belongs to the browser that started the login.
    assert!(
        open(&s, &forgot, None)
            .await
            .text()
            .await
            .expect("html")
            .contains("timed out")
    );
    let r = open(&s, &forgot, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let form = r.text().await.expect("html");
    assert!(form.contains("Forgot Your Password?"), "{form}");
    let reset = LoginPage::of(&s, &form, cookie.clone());
    // No one by that name: the same answer, and nothing mailed.
    let r = reset.post(&[("username", "nobody")]).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("You should receive an email shortly")
    );
    // Alice, by her address.
    let r = reset.post(&[("username", "alice@example.com")]).await;
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("You should receive an email shortly")
    );
    let m = sink.nth(0).await;
    assert_eq!(sink.count(), 1, "nothing was mailed for nobody");
    assert_eq!(m.to, ["alice@example.com"]);
    assert_eq!(m.auth.as_deref(), Some("\0mailer\0smtp-pw"));
    assert_eq!(m.subject(), "Reset password");
    assert!(
        m.data.contains("From: \"Demo IdP\" <idp@example.com>"),
        "{}",
        m.data
    );
    assert!(
        m.text()
            .contains("This link and code will expire within 5 minutes.")
    );
    let link = m.link();
    assert!(link.starts_with(&format!(
        "{}/realms/demo/login-actions/action-token?key=",
        s.base
    )));

    // The link in the same browser: the new password, then the code.
    let r = open(&s, &link, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    assert!(page.contains("name=\"password-new\""), "{page}");
    let r = LoginPage::of(&s, &page, cookie.clone())
        .post(&[
            ("password-new", "reset-pw-1"),
            ("password-confirm", "reset-pw-1"),
        ])
        .await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with("http://127.0.0.1/cb?"), "{loc}");
    let code = crate::oidc::query_param(&loc, "code").expect("code");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    assert_eq!(
        claims(tokens["id_token"].as_str().expect("id"))["preferred_username"],
        "alice"
    );
    let grant =
        |pw: &'static str| s.password_grant("demo", "app", Some("app-secret"), "alice", pw, None);
    assert_eq!(grant("reset-pw-1").await.status(), 200);
    assert_eq!(grant("alice-pw").await.status(), 401);
    // Spent.
    let r = open(&s, &link, Some(&cookie)).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("html").contains("no longer valid"));
    // A tampered link is refused.
    let r = open(
        &s,
        &format!("{}x", link.replace("&client_id=app", "")),
        None,
    )
    .await;
    assert_eq!(r.status(), 400);

    // Another browser: a login of the link's own, ending without a code.
    let first = s.app_login_page().await;
    let cookie2 = set_cookie(&first, "GATEHOUSE_CSRF");
    let html = first.text().await.expect("html");
    let forgot = href(&s, &html, "kc-forgot-password");
    let form = open(&s, &forgot, Some(&cookie2))
        .await
        .text()
        .await
        .expect("html");
    let r = LoginPage::of(&s, &form, cookie2)
        .post(&[("username", "alice")])
        .await;
    assert_eq!(r.status(), 200);
    let link = sink.nth(1).await.link();
    let r = open(&s, &link, None).await;
    assert_eq!(r.status(), 200);
    let page = LoginPage::read(&s, r).await;
    let r = page
        .post(&[
            ("password-new", "reset-pw-2"),
            ("password-confirm", "reset-pw-2"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none(), "no session");
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your account has been updated.")
    );
    assert_eq!(grant("reset-pw-2").await.status(), 200);

    // (The mail, and its event, go after the form's answer.)
    let mut sent = 0;
    for _ in 0..50 {
        sent = events(&s, &t, "SEND_RESET_PASSWORD").await.len();
        if sent == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sent, 2);
    let refused = events(&s, &t, "RESET_PASSWORD_ERROR").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["error"], "user_not_found");
    assert_eq!(events(&s, &t, "RESET_PASSWORD").await.len(), 2);
    // Nothing of the links or the SMTP password in the events.
    let all = s.admin_get(&t, "/demo/events?max=100").await.1.to_string();
    assert!(!all.contains("smtp-pw") && !all.contains(link.split("key=").nth(1).expect("key")));
}

/// The realm's "verify email": a login whose address is not verified
/// waits on a page until the mailed link is opened (it can be sent
/// again); opened in the same browser, the link finishes that login.
#[tokio::test]
async fn a_login_waits_for_the_address_to_be_verified() {
    let s = start().await;
    let t = s.demo_realm().await;
    let sink = Sink::start().await;
    set_realm(
        &s,
        &t,
        json!({"verifyEmail": true, "smtpServer": sink.settings(false)}),
    )
    .await;
    let first = s.app_login_page().await;
    let page = LoginPage::read(&s, first).await;
    let r = page
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("You need to verify your email address"),
        "{html}"
    );
    let m = sink.nth(0).await;
    assert_eq!(m.subject(), "Verify email");
    assert_eq!(m.auth, None);
    // Meanwhile no token by password either.
    let r = s
        .password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
        .await;
    assert_eq!(r.status(), 400);
    // Sent again on request: a second message, with a new link.
    let r = page.post_form(&s, &html, &[("resend", "true")]).await;
    assert_eq!(r.status(), 200);
    let second = sink.nth(1).await;
    assert_ne!(second.link(), m.link());
    // The link, in this browser: verified, and the login goes on.
    let cookie = set_cookie(&s.app_login_page().await, "GATEHOUSE_CSRF");
    // (a stranger's browser holding another login cannot use it)
    let r = open(&s, &second.link(), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Confirm validity of e-mail address")
    );
    let r = page.open_link(&s, &m.link()).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(crate::oidc::query_param(&loc, "code").is_some(), "{loc}");
    let alice = s.user_id(&t, "demo", "alice").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["emailVerified"], true);
    assert_eq!(u["requiredActions"], json!([]));
    assert_eq!(events(&s, &t, "SEND_VERIFY_EMAIL").await.len(), 2);
    assert_eq!(events(&s, &t, "VERIFY_EMAIL").await.len(), 1);
    // Verified: the next login goes straight through.
    let first = s.app_login_page().await;
    let r = LoginPage::read(&s, first)
        .await
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 302);
}

/// The admin API's mails: `testSMTPConnection` to the calling admin's own
/// address, `execute-actions-email` (Keycloak's checks, then a link that
/// asks first, walks through the actions and ends with "Back to
/// Application"), `send-verify-email`; and 500 when no mail can go.
#[tokio::test]
async fn admins_mail_action_links_and_test_the_server() {
    let s = start().await;
    let t = s.demo_realm().await;
    let sink = Sink::start().await;
    let alice = s.user_id(&t, "demo", "alice").await;
    let path = |call: &str| format!("{}/admin/realms/demo/users/{alice}/{call}", s.base);
    let put = |url: String, body: Option<Value>| {
        let mut r = s.http.put(url).bearer_auth(&t);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    // No SMTP server yet: Keycloak's 500, naming the mail.
    let r = put(
        path("execute-actions-email"),
        Some(json!(["UPDATE_PASSWORD"])),
    )
    .await
    .expect("put");
    assert_eq!(r.status(), 500);
    let e: Value = r.json().await.expect("json");
    assert!(
        e["errorMessage"]
            .as_str()
            .expect("msg")
            .starts_with("Failed to send execute actions email"),
        "{e}"
    );
    set_realm(&s, &t, json!({"smtpServer": sink.settings(true)})).await;

    // The test message goes to the admin's own address, the stored
    // password standing in for the mask.
    let test = format!("{}/admin/realms/demo/testSMTPConnection", s.base);
    let mut settings = sink.settings(true);
    settings["password"] = json!("**********");
    let r = s
        .http
        .post(&test)
        .bearer_auth(&t)
        .json(&settings)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400, "the admin has no address yet");
    let admin = s.user_id(&t, "master", "admin").await;
    assert_eq!(
        s.admin_put(
            &t,
            &format!("/master/users/{admin}"),
            Some(&json!({"email": "admin@example.com"}))
        )
        .await,
        204
    );
    let r = s
        .http
        .post(&test)
        .bearer_auth(&t)
        .json(&settings)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 204);
    let m = sink.nth(0).await;
    assert_eq!(m.to, ["admin@example.com"]);
    assert_eq!(m.auth.as_deref(), Some("\0mailer\0smtp-pw"));
    assert!(m.subject().contains("SMTP test message"));
    let mut dead = settings.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    dead["port"] = json!(closed.local_addr().expect("addr").port());
    drop(closed);
    let r = s
        .http
        .post(&test)
        .bearer_auth(&t)
        .json(&dead)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 500);
    let r = s
        .http
        .post(&test)
        .bearer_auth(&t)
        .json(&json!([1]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);

    // Keycloak's checks, in its order.
    let q = |query: &str| format!("{}{query}", path("execute-actions-email"));
    for (query, body, message) in [
        (
            "",
            json!(["NOT_AN_ACTION"]),
            "Provided invalid required actions",
        ),
        (
            "?redirect_uri=http://127.0.0.1/cb",
            json!(["UPDATE_PASSWORD"]),
            "Client id missing",
        ),
        (
            "?client_id=nope",
            json!(["UPDATE_PASSWORD"]),
            "Client doesn't exist",
        ),
        (
            "?client_id=app&redirect_uri=http://evil.example/",
            json!(["UPDATE_PASSWORD"]),
            "Invalid redirect uri.",
        ),
        (
            "?lifespan=-1",
            json!(["UPDATE_PASSWORD"]),
            "Invalid lifespan",
        ),
        (
            "?lifespan=9223372036854775807",
            json!(["UPDATE_PASSWORD"]),
            "Invalid lifespan",
        ),
    ] {
        let r = put(q(query), Some(body)).await.expect("put");
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(
            r.json::<Value>().await.expect("json")["errorMessage"],
            message
        );
    }
    assert_eq!(sink.count(), 1, "nothing mailed for a refused call");
    let r = put(
        q("?client_id=app&redirect_uri=http://127.0.0.1/cb&lifespan=600"),
        Some(json!(["UPDATE_PASSWORD"])),
    )
    .await
    .expect("put");
    assert_eq!(r.status(), 204);
    let m = sink.nth(1).await;
    assert_eq!(m.subject(), "Update Your Account");
    assert!(
        m.text()
            .contains("the following action(s): Update Password.")
    );
    assert!(m.text().contains("expire within 10 minutes"));
    // Asked first (a mail scanner's fetch spends nothing) ...
    let r = open(&s, &m.link(), None).await;
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    assert!(html.contains("<li>Update Password</li>"), "{html}");
    let proceed = href(&s, &html, "kc-proceed");
    // ... and only in the browser that was asked.
    assert_eq!(open(&s, &proceed, None).await.status(), 400);
    let r = open(&s, &proceed, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    assert!(page.contains("name=\"password-new\""), "{page}");
    let r = LoginPage::of(&s, &page, cookie.clone())
        .post(&[
            ("password-new", "admin-set-1"),
            ("password-confirm", "admin-set-1"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    let done = r.text().await.expect("html");
    assert!(done.contains("Your account has been updated."), "{done}");
    assert!(done.contains("href=\"http://127.0.0.1/cb\""), "{done}");
    assert_eq!(
        s.password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "admin-set-1",
            None
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        open(&s, &proceed, Some(&cookie)).await.status(),
        400,
        "spent"
    );
    let (_, ev) = s
        .admin_get(&t, "/demo/admin-events?operationTypes=ACTION&max=20")
        .await;
    assert!(
        ev.as_array()
            .expect("events")
            .iter()
            .any(|e| e["resourcePath"] == format!("users/{alice}/execute-actions-email")),
        "{ev}"
    );

    // The link reached her address: that verified it, as in Keycloak.
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["emailVerified"], true);
    // send-verify-email: a confirmation, then the address is verified.
    assert_eq!(
        s.admin_put(
            &t,
            &format!("/demo/users/{alice}"),
            Some(&json!({"emailVerified": false}))
        )
        .await,
        204
    );
    let r = put(path("send-verify-email"), None).await.expect("put");
    assert_eq!(r.status(), 204);
    let m = sink.nth(2).await;
    assert_eq!(m.subject(), "Verify email");
    let r = open(&s, &m.link(), None).await;
    let cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Confirm validity of e-mail address alice@example.com"),
        "{html}"
    );
    let proceed = href(&s, &html, "kc-proceed");
    let r = open(&s, &proceed, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your email address has been verified.")
    );
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["emailVerified"], true);
    // A link to an address the user no longer has is dead.
    let r = put(path("send-verify-email"), None).await.expect("put");
    assert_eq!(r.status(), 204);
    let m = sink.nth(3).await;
    assert_eq!(
        s.admin_put(
            &t,
            &format!("/demo/users/{alice}"),
            Some(&json!({"email": "alice@new.example"}))
        )
        .await,
        204
    );
    assert_eq!(open(&s, &m.link(), None).await.status(), 400);
    // VERIFY_EMAIL as an admin's action: the link itself proves the
    // address, so the action asks nothing more.
    let r = put(
        format!("{}?lifespan=600", path("execute-actions-email")),
        Some(json!(["VERIFY_EMAIL"])),
    )
    .await
    .expect("put");
    assert_eq!(r.status(), 204);
    let m = sink.nth(4).await;
    let r = open(&s, &m.link(), None).await;
    let cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    assert!(html.contains("<li>Verify Email</li>"), "{html}");
    let r = open(&s, &href(&s, &html, "kc-proceed"), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your account has been updated.")
    );
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(u["emailVerified"], true);
    assert_eq!(sink.count(), 5, "no second verification mail");
    // Keycloak's deprecated reset-password-email: the same link, for a new
    // password.
    let r = put(
        format!("{}?client_id=app", path("reset-password-email")),
        None,
    )
    .await
    .expect("put");
    assert_eq!(r.status(), 204);
    let m = sink.nth(5).await;
    assert_eq!(m.subject(), "Update Your Account");
    assert!(
        m.text()
            .contains("the following action(s): Update Password.")
    );
}

/// Keycloak's organization invitations: by address (someone with an
/// account, or a newcomer who registers with the invited address) and by
/// user id; kept and listed until accepted, withdrawn or resent; a link
/// whose invitation is gone is dead.
#[tokio::test]
async fn organization_invitations_are_mailed_and_accepted() {
    let s = start().await;
    let t = s.demo_realm().await;
    let sink = Sink::start().await;
    set_realm(
        &s,
        &t,
        json!({"organizationsEnabled": true, "smtpServer": sink.settings(false)}),
    )
    .await;
    let org = s
        .admin_create(
            &t,
            "/demo/organizations",
            &json!({"name": "Acme", "domains": [{"name": "acme.example"}],
                "redirectUrl": "http://127.0.0.1/acme"}),
        )
        .await;
    let o = format!("{}/admin/realms/demo/organizations/{org}", s.base);
    let invite = |fields: Vec<(&'static str, &'static str)>| {
        s.http
            .post(format!("{o}/members/invite-user"))
            .bearer_auth(&t)
            // What the admin client's FormData sends.
            .header("content-type", "multipart/form-data; boundary=XFORMX")
            .body(
                fields
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "--XFORMX\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                        )
                    })
                    .collect::<String>()
                    + "--XFORMX--\r\n",
            )
            .send()
    };
    // Keycloak's checks: the organization first, then the address.
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/organizations/no-such-org/members/invite-user",
            s.base
        ))
        .bearer_auth(&t)
        .header("content-type", "multipart/form-data; boundary=XFORMX")
        .body("not multipart at all")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    let r = invite(vec![("firstName", "N")]).await.expect("post");
    assert_eq!(r.status(), 400);
    let r = invite(vec![("email", "not an address")])
        .await
        .expect("post");
    assert_eq!(r.status(), 400);

    // Alice has an account: the link asks, then she joins.
    let r = invite(vec![("email", "Alice@Example.com")])
        .await
        .expect("post");
    assert_eq!(r.status(), 204);
    let again = invite(vec![("email", "alice@example.com")])
        .await
        .expect("post");
    assert_eq!(again.status(), 409, "a pending invitation");
    let m = sink.nth(0).await;
    assert_eq!(m.to, ["alice@example.com"]);
    assert_eq!(m.subject(), "Invitation to join the Acme organization");
    let (_, list) = s
        .admin_get(&t, &format!("/demo/organizations/{org}/invitations"))
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["email"], "alice@example.com");
    assert_eq!(list[0]["status"], "PENDING");
    assert_eq!(list[0]["organizationId"], org.as_str());
    assert_eq!(list[0]["inviteLink"], m.link().as_str());
    // Names match whole, without regard to case; `search` matches parts.
    let invitations = format!("/demo/organizations/{org}/invitations");
    for (query, n) in [
        ("firstName=aLiCe", 1),
        ("firstName=Ali", 0),
        ("search=lic", 1),
    ] {
        let (_, found) = s.admin_get(&t, &format!("{invitations}?{query}")).await;
        assert_eq!(found.as_array().map(Vec::len), Some(n), "{query}: {found}");
    }
    let r = open(&s, &m.link(), None).await;
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("You were invited to join the Acme organization."),
        "{html}"
    );
    let proceed = href(&s, &html, "kc-proceed");
    let r = open(&s, &proceed, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let done = r.text().await.expect("html");
    assert!(
        done.contains("You are now a member of the Acme organization."),
        "{done}"
    );
    assert!(done.contains("href=\"http://127.0.0.1/acme\""), "{done}");
    let (_, members) = s
        .admin_get(&t, &format!("/demo/organizations/{org}/members"))
        .await;
    assert_eq!(members[0]["username"], "alice");
    assert_eq!(
        s.admin_get(&t, &format!("/demo/organizations/{org}/invitations"))
            .await
            .1,
        json!([]),
        "accepted: no longer pending"
    );
    assert_eq!(open(&s, &m.link(), None).await.status(), 400, "dead");
    assert_eq!(events(&s, &t, "INVITE_ORG").await.len(), 1);
    let r = invite(vec![("email", "alice@example.com")])
        .await
        .expect("post");
    assert_eq!(r.status(), 409, "a member already");

    // A newcomer registers with the invited address (registration is off
    // in the realm: the invitation opens it) and joins.
    let r = invite(vec![
        ("email", "newbie@acme.example"),
        ("firstName", "New"),
        ("lastName", "Bie"),
    ])
    .await
    .expect("post");
    assert_eq!(r.status(), 204);
    let m = sink.nth(1).await;
    let r = open(&s, &m.link(), None).await;
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "GATEHOUSE_CSRF");
    let form = r.text().await.expect("html");
    assert!(
        form.contains("value=\"newbie@acme.example\" readonly"),
        "{form}"
    );
    let page = LoginPage::of(&s, &form, cookie);
    let r = page
        .post(&[
            ("firstName", "New"),
            ("lastName", "Bie"),
            ("email", "someone-else@evil.example"),
            ("username", "newbie"),
            ("password", "newbie-pw"),
            ("password-confirm", "newbie-pw"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your account has been updated.")
    );
    let newbie = s.user_id(&t, "demo", "newbie").await;
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{newbie}")).await;
    assert_eq!(u["email"], "newbie@acme.example", "the invited address");
    let (_, members) = s
        .admin_get(&t, &format!("/demo/organizations/{org}/members"))
        .await;
    assert_eq!(members.as_array().map(Vec::len), Some(2));

    // By id; withdrawn, the link is dead; resent, a new one works.
    let (_, bob) = s
        .admin_post(
            &t,
            "/demo/users",
            &json!({"username": "bob", "email": "bob@example.com", "enabled": true}),
        )
        .await;
    assert!(bob.is_some());
    let bob = s.user_id(&t, "demo", "bob").await;
    let r = s
        .http
        .post(format!("{o}/members/invite-existing-user"))
        .bearer_auth(&t)
        .form(&[("id", bob.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 204);
    let first_link = sink.nth(2).await.link();
    let (_, list) = s
        .admin_get(
            &t,
            &format!("/demo/organizations/{org}/invitations?email=bob@example.com"),
        )
        .await;
    let inv = list[0]["id"].as_str().expect("id").to_owned();
    let r = s
        .http
        .post(format!("{o}/invitations/{inv}/resend"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 204);
    let second_link = sink.nth(3).await.link();
    assert_eq!(open(&s, &first_link, None).await.status(), 400, "replaced");
    assert_eq!(open(&s, &second_link, None).await.status(), 200);
    let (_, list) = s
        .admin_get(&t, &format!("/demo/organizations/{org}/invitations"))
        .await;
    let inv = list[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        s.admin_delete(&t, &format!("/demo/organizations/{org}/invitations/{inv}"))
            .await,
        204
    );
    assert_eq!(
        s.admin_delete(&t, &format!("/demo/organizations/{org}/invitations/{inv}"))
            .await,
        404
    );
    assert_eq!(
        open(&s, &second_link, None).await.status(),
        400,
        "withdrawn"
    );
    let r = s
        .http
        .post(format!("{o}/members/invite-existing-user"))
        .bearer_auth(&t)
        .form(&[("id", "no-such-user")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
}

/// Keycloak's `email` event listener: with `email` among the realm's
/// `eventsListeners`, a user whose address is verified is mailed about a
/// failed login on their account, with Keycloak's message; an unverified
/// address is not mailed, and neither is anyone while the realm does not
/// list the listener.
#[tokio::test]
async fn the_email_event_listener_mails_failed_logins_to_verified_addresses() {
    let s = start().await;
    let t = s.demo_realm().await;
    let sink = Sink::start().await;
    set_realm(&s, &t, json!({"smtpServer": sink.settings(false)})).await;
    let alice = s.user_id(&t, "demo", "alice").await;
    let verified = json!({"emailVerified": true});
    assert_eq!(
        s.admin_put(&t, &format!("/demo/users/{alice}"), Some(&verified))
            .await,
        204
    );
    let bob = json!({"username": "bob", "email": "bob@example.com", "enabled": true,
        "credentials": [{"type": "password", "value": "bob-pw", "temporary": false}]});
    assert_eq!(s.admin_post(&t, "/demo/users", &bob).await.0, 201);
    let fail = |user: &'static str| {
        s.password_grant("demo", "app", Some("app-secret"), user, "wrong", None)
    };
    // Not listed: a failed login mails no one (the listener reads the
    // outbox every second; two seconds see it past this event).
    assert_eq!(fail("alice").await.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(sink.count(), 0);
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(
        realm["eventsListeners"],
        json!(["jboss-logging"]),
        "Keycloak's default"
    );
    let config = json!({"eventsListeners": ["jboss-logging", "email"]});
    assert_eq!(
        s.admin_put(&t, "/demo/events/config", Some(&config)).await,
        204
    );
    let (_, c) = s.admin_get(&t, "/demo/events/config").await;
    assert_eq!(c["eventsListeners"], json!(["jboss-logging", "email"]));
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(realm["eventsListeners"], json!(["jboss-logging", "email"]));
    // Bob's address is not verified: his failure is read, not mailed.
    assert_eq!(fail("bob").await.status(), 401);
    assert_eq!(fail("alice").await.status(), 401);
    let m = sink.nth(0).await;
    assert_eq!(m.to, vec!["alice@example.com".to_owned()]);
    assert_eq!(m.subject(), "Login error");
    let text = m.text();
    assert!(
        text.contains("A failed login attempt was detected to your account on ")
            && text.contains(" from 127.0.0.1.")
            && text.contains("If this was not you, please contact an administrator."),
        "{text}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 1, "bob was not mailed, alice once");
    // A successful login is no event this listener mails.
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 1);
}
