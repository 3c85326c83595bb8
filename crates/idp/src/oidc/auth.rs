//! `GET /realms/{realm}/protocol/openid-connect/auth`: the authorization
//! endpoint (code flow) with its login page, and
//! `POST /realms/{realm}/login-actions/authenticate`: the login form's target.
//!
//! Errors that cannot be trusted to go back to the client (unknown client,
//! unregistered redirect URI) are shown as a page, never redirected. Every
//! other error is redirected with `error`, `state` and `iss` (RFC 9207).
//! Parameters come from the query (GET) or a form body (POST), as OIDC Core
//! §3.1.2.1 requires; the answer goes back in the `response_mode` asked for
//! (`query`, `fragment` or `form_post`, Keycloak's set for the code flow).

mod action_link;
mod attribute_field;
pub mod consent;
mod invitation;
mod otp_step;
mod registration;
mod required_actions;
mod reset_credentials;

pub use action_link::get as action_token;
pub use registration::{
    allowed as registration_allowed, get as registration_get, post as registration_post,
    valid_email,
};
pub use required_actions::can_execute;
pub use reset_credentials::{get as reset_credentials_get, post as reset_credentials_post};

/// Whether `user` has a required action the realm's registry asks for
/// (disabled or unregistered actions do not count, as in Keycloak): then
/// only a browser login, which has the pages, may complete.
pub fn action_pending(realm: &Realm, user: &User) -> bool {
    !matches!(
        required_actions::next(realm, user),
        required_actions::Step::None
    )
}

use crate::error::OAuthError;
use crate::login::check_password;
use crate::oidc::form::{Form, LoginForm};
use crate::oidc::token::CodeData;
use crate::state::Idp;
use crate::tokens::granted_scope;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Client, Event, Realm, Session, User};
use gatehouse_store::CodeRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a page says to a network over its budget of failed logins.
const THROTTLED: &str =
    "Too many failed login attempts from your network. Please wait a minute and try again.";

/// The SSO session (a signed handle; HttpOnly).
pub const SSO_COOKIE: &str = "GATEHOUSE_IDENTITY";
/// The SSO session's id in clear, for the session-status iframe's script
/// (`login_status_iframe.rs`); Keycloak's `KEYCLOAK_SESSION`.
pub const SESSION_COOKIE: &str = "GATEHOUSE_SESSION";
const CSRF_COOKIE: &str = "GATEHOUSE_CSRF";
/// The username of a browser that asked to be remembered (Keycloak's
/// `KEYCLOAK_REMEMBER_ME`).
const REMEMBER_COOKIE: &str = "GATEHOUSE_REMEMBER_ME";

/// A validated authorization request, kept server-side while the user logs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    csrf: String,
    #[serde(default)]
    response_mode: ResponseMode,
    /// `prompt=consent`: ask for consent even if given before.
    #[serde(default)]
    prompt_consent: bool,
    #[serde(default)]
    flow: Flow,
    /// The client's `login_hint`, for the login page and a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_hint: Option<String>,
    /// Set when the user came back from an identity provider: the LOGIN
    /// event names it, as Keycloak's does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    broker: Option<BrokerLogin>,
    /// An application-initiated action (Keycloak's `kc_action`): the
    /// required action the client asked the user to do in this login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kc_action: Option<String>,
    /// How it went (`success`, `cancelled`, `error`), for the client's
    /// redirect (`kc_action_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kc_action_status: Option<String>,
    /// The SSO session an application-initiated action runs in (a recent
    /// authentication stood in for the password): the code is issued on
    /// it rather than on a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sso_session: Option<String>,
    /// Required actions for this login alone, from an action link (a
    /// password reset, an admin's `execute-actions` mail): asked for with
    /// the user's own, in the realm's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra_actions: Vec<String>,
    /// Set when an action link started this "login": it ends after the
    /// actions, with no session and no code (Keycloak's
    /// `END_AFTER_REQUIRED_ACTIONS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_after: Option<EndAfter>,
    /// An organization invitation this login registers someone for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invite: Option<Invite>,
    /// The user ticked "Remember me" (where the realm offers it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    remember_me: bool,
    /// `dpop_jkt` (RFC 9449 §10): the code goes to that key's holder only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
    /// The `claims` parameter (OIDC Core §5.5), when it is a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<String>,
}

/// The invitation a registration answers: its organization, its id and
/// the address it was sent to (the new account's).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invite {
    org: String,
    id: String,
    email: String,
}

/// How a login an action link started ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndAfter {
    /// Where "Back to application" leads (the link's `redirect_uri`).
    back_to: Option<String>,
    /// The link's token id: its confirmation page and the actions after
    /// it belong to that link alone.
    jti: String,
}

impl AuthRequest {
    /// A login for `client` that an action link starts: no redirect with
    /// a code at its end, only the page that says it is done.
    fn for_action_link(client_id: &str, end: EndAfter, extra_actions: Vec<String>) -> AuthRequest {
        AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: end.back_to.clone().unwrap_or_default(),
            scope: "openid".into(),
            state: None,
            nonce: None,
            code_challenge: None,
            csrf: gatehouse_core::id::token(),
            response_mode: ResponseMode::default(),
            prompt_consent: false,
            flow: Flow::default(),
            login_hint: None,
            broker: None,
            kc_action: None,
            kc_action_status: None,
            sso_session: None,
            extra_actions,
            end_after: Some(end),
            invite: None,
            remember_me: false,
            dpop_jkt: None,
            claims: None,
        }
    }
}

/// The `claims` parameter kept for the client session: a JSON object, or
/// nothing. Anything else is ignored rather than refused, as Keycloak
/// ignores a `claims` parameter it cannot read.
fn claims_param(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .filter(serde_json::Value::is_object)
        .map(|_| raw.to_owned())
}

/// Whether an authentication `age` seconds old stands in for the password
/// in the application-initiated `action`: within the action's
/// `max_auth_age` (Keycloak's default 300 s; 0: never).
fn aia_fresh(realm: &Realm, action: &str, age: i64) -> bool {
    let max = crate::admin::required_actions::max_auth_age(realm, action);
    max > 0 && age <= max
}

/// Which identity provider vouched for the user, and as whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BrokerLogin {
    alias: String,
    identity: String,
    /// The provider's ID token, kept on the SSO session for logout.
    #[serde(default)]
    id_token: String,
}

/// A login in progress: the authorization request a login page serves,
/// as the identity-provider broker (`crate::broker`) picks it up between
/// the login page and the provider's answer.
pub struct Pending {
    /// The request's handle (the login page's `session_code`).
    pub id: String,
    req: AuthRequest,
    /// When the login attempt dies.
    pub expires: i64,
}

impl Pending {
    /// The login attempt `id` of `realm`, if it is still alive.
    pub async fn load(idp: &Idp, realm: &Realm, id: &str) -> Result<Option<Pending>, OAuthError> {
        let Some(rec) = idp.store.code(&format!("authreq:{id}")).await? else {
            return Ok(None);
        };
        if rec.expires < gatehouse_core::time::now() || rec.realm_id != realm.id {
            return Ok(None);
        }
        let req = serde_json::from_str(&rec.data).map_err(OAuthError::internal)?;
        Ok(Some(Pending {
            id: id.to_owned(),
            req,
            expires: rec.expires,
        }))
    }

    /// The login named by `query`'s `session_code`, alive and in the
    /// browser that started it (its CSRF cookie): what a later page of a
    /// login (reset form, registration, login page again) belongs to.
    pub async fn in_browser(
        idp: &Idp,
        realm: &Realm,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<Pending>, OAuthError> {
        let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
        let Some(id) = q.get("session_code") else {
            return Ok(None);
        };
        Ok(Pending::load(idp, realm, id)
            .await?
            .filter(|p| p.same_browser(headers, None)))
    }

    /// A form posted to a page of this login: its fields, once its CSRF
    /// field and cookie are this login's; else the page to answer with.
    /// The realm's multivalued profile attributes the user's pages offer
    /// may repeat.
    pub fn form(
        &self,
        realm: &Realm,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<LoginForm, Box<Response>> {
        let may_repeat = |k: &str| crate::profile_rules::repeatable(realm, k);
        let form = LoginForm::parse(headers, body, &may_repeat)
            .map_err(|e| Box::new(error_page(&e.description)))?;
        if !self.same_browser(headers, Some(form.get("csrf"))) {
            return Err(Box::new(page(
                StatusCode::FORBIDDEN,
                "Error",
                "<h1>Invalid request</h1><p class=\"error\" role=\"alert\">The login form could not be verified. Please start again.</p>",
            )));
        }
        Ok(form)
    }

    /// Whether `headers` come from the browser that started the login
    /// (its CSRF cookie), and, with `field`, the form it was shown.
    pub fn same_browser(&self, headers: &HeaderMap, field: Option<Option<&str>>) -> bool {
        let ok = |v: Option<&str>| {
            v.is_some_and(|v| bool::from(v.as_bytes().ct_eq(self.req.csrf.as_bytes())))
        };
        ok(cookie(headers, CSRF_COOKIE)) && field.is_none_or(ok)
    }

    /// The login form's CSRF token, for a later page of this login.
    pub fn csrf(&self) -> &str {
        &self.req.csrf
    }

    /// The client's `login_hint`, if it sent one.
    pub fn login_hint(&self) -> Option<&str> {
        self.req.login_hint.as_deref()
    }

    /// The client the login is for.
    pub fn client_id(&self) -> &str {
        &self.req.client_id
    }

    /// The login page again, with `error` said on it.
    pub fn login_page(&self, realm: &Realm, error: Option<&str>) -> Response {
        let hint = self.req.login_hint.as_deref().unwrap_or("");
        login_form(
            realm,
            &self.id,
            &self.req.csrf,
            error,
            (hint, self.req.remember_me),
        )
    }

    /// The login page with a notice that is not an error (a reset link
    /// was mailed).
    pub fn login_page_saying(&self, realm: &Realm, notice: &str) -> Response {
        let hint = self.req.login_hint.as_deref().unwrap_or("");
        let who = (hint, false);
        login_form_with(realm, &self.id, &self.req.csrf, Notice::Info(notice), who)
    }

    /// The user is who an identity provider (`alias`, where they are
    /// `identity`) says: the login goes on as after a password, through
    /// required actions and consent to the client's code.
    pub async fn authenticated_by(
        mut self,
        idp: &Idp,
        realm: &Realm,
        user: &User,
        (alias, identity, id_token): (&str, &str, &str),
    ) -> Result<Response, OAuthError> {
        self.req.broker = Some(BrokerLogin {
            alias: alias.to_owned(),
            identity: identity.to_owned(),
            id_token: id_token.to_owned(),
        });
        let data = serde_json::to_string(&self.req).map_err(OAuthError::internal)?;
        let key = format!("authreq:{}", self.id);
        set_pending(idp, realm, key, data, self.expires).await?;
        let now = gatehouse_core::time::now();
        authenticated(idp, realm, &self.id, &self.req, user, self.expires, now).await
    }
}

/// What `response_type` asks the authorization endpoint to answer with:
/// a code, and in the implicit and hybrid flows (OIDC Core §3.2, §3.3)
/// an ID token and/or an access token in the fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Flow {
    code: bool,
    id_token: bool,
    token: bool,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            code: true,
            id_token: false,
            token: false,
        }
    }
}

impl Flow {
    /// `code`, `id_token`, `token` in any order, each at most once.
    fn parse(v: Option<&str>) -> Option<Flow> {
        let mut f = Flow {
            code: false,
            id_token: false,
            token: false,
        };
        for part in v?.split_whitespace() {
            let slot = match part {
                "code" => &mut f.code,
                "id_token" => &mut f.id_token,
                "token" => &mut f.token,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        (f.code || f.id_token || f.token).then_some(f)
    }

    /// Whether tokens travel in the front channel (implicit or hybrid).
    fn front_channel(self) -> bool {
        self.id_token || self.token
    }
}

/// How the authorization response travels back to the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// `?code=...` on the redirect URI (the code flow's default).
    #[default]
    Query,
    /// `#code=...`: the parameters never reach the client's server logs.
    Fragment,
    /// An auto-submitting HTML form POSTed to the redirect URI (OAuth 2.0
    /// Form Post Response Mode): nothing in URLs or Referer headers.
    FormPost,
}

impl ResponseMode {
    fn parse(v: Option<&str>) -> Option<ResponseMode> {
        match v {
            None | Some("query") => Some(ResponseMode::Query),
            Some("fragment") => Some(ResponseMode::Fragment),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => None,
        }
    }
}

/// The script of the form_post page, allowed by its hash alone.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit();";

/// The CSP source (`'sha256-...'`) that allows exactly this inline script:
/// our pages run no script but the ones they name this way.
pub fn script_source(script: &str) -> String {
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        gatehouse_core::id::sha256(script.as_bytes()),
    );
    format!("'sha256-{hash}'")
}

/// Escapes text for HTML element and attribute content.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// An HTML page with the security headers every page gets (the realm's
/// `browserSecurityHeaders`, `oidc::security_headers`).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}label{{display:block;margin-top:1rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}button{{margin-top:1.5rem;padding:.6rem 1.2rem}}.error{{color:#a00}}</style></head><body><main>{body}</main></body></html>",
        t = esc(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, must-revalidate, max-age=0"),
    );
    // The realm's own values go over these in `security_headers::layer`.
    crate::oidc::security_headers::add_defaults(h);
    r
}

fn error_page(msg: &str) -> Response {
    sorry_page(StatusCode::BAD_REQUEST, msg)
}

/// Keycloak's "We are sorry..." page with `msg`: what a browser sees when
/// a login cannot go on (the reason a client may read goes elsewhere).
pub fn sorry_page(status: StatusCode, msg: &str) -> Response {
    page(
        status,
        "Error",
        &format!(
            "<h1>We are sorry...</h1><p class=\"error\" role=\"alert\">{}</p>",
            esc(msg)
        ),
    )
}

/// A 302 to `to`.
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`):
/// what a query value or a path segment percent-encodes.
pub const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `base` with `params` appended to its query, percent-encoded.
pub fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    with_params_in(base, params, if base.contains('?') { '&' } else { '?' })
}

fn with_params_in(base: &str, params: &[(&str, &str)], first: char) -> String {
    let mut u = base.to_owned();
    let mut sep = first;
    for (k, v) in params {
        u.push(sep);
        sep = '&';
        u.push_str(k);
        u.push('=');
        u.push_str(&percent_encoding::utf8_percent_encode(v, COMPONENT).to_string());
    }
    u
}

/// Sends the authorization response (`params`) to `redirect_uri` the way
/// `mode` says.
fn respond(mode: ResponseMode, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match mode {
        ResponseMode::Query => redirect(&with_params(redirect_uri, params)),
        ResponseMode::Fragment => redirect(&with_params_in(redirect_uri, params, '#')),
        ResponseMode::FormPost => form_post(redirect_uri, params),
    }
}

fn form_post(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut inputs = String::new();
    for (k, v) in params {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    let body = format!(
        "<form method=\"post\" action=\"{}\">{inputs}<noscript><p>JavaScript is off: press the button to continue.</p><button type=\"submit\">Continue</button></noscript></form><script>{FORM_POST_SCRIPT}</script>",
        esc(redirect_uri)
    );
    let mut r = page(StatusCode::OK, "Submit This Form", &body);
    // The page's CSP forbids scripts; this one script is allowed by hash.
    static CSP: std::sync::LazyLock<Option<HeaderValue>> = std::sync::LazyLock::new(|| {
        HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src {}; frame-ancestors 'none'; base-uri 'none'",
            script_source(FORM_POST_SCRIPT)
        ))
        .ok()
    });
    if let Some(v) = CSP.as_ref() {
        r.headers_mut().insert("content-security-policy", v.clone());
    }
    r
}

fn error_redirect(
    idp: &Idp,
    realm: &Realm,
    to: (&str, ResponseMode),
    state: Option<&str>,
    error: &str,
    desc: &str,
) -> Response {
    let iss = idp.issuer(&realm.name);
    let mut p = vec![("error", error), ("error_description", desc)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    p.push(("iss", &iss));
    respond(to.1, to.0, &p)
}

/// The claims of `hint` if it is one of this realm's ID tokens, expired or
/// not (OIDC: an ID token stays a valid hint; ten years of leeway), for
/// the authorization endpoint's and logout's `id_token_hint`.
pub fn id_token_hint(
    ring: &crate::keyring::KeyRing,
    idp: &Idp,
    realm: &Realm,
    hint: &str,
) -> Option<serde_json::Value> {
    let mut rules = gatehouse_jose::verify::Rules::for_issuer(&idp.issuer(&realm.name));
    rules.leeway = 315_360_000;
    ring.verifier
        .verify(hint, &rules)
        .ok()
        .filter(|c| c["typ"].as_str() == Some("ID"))
}

/// Reads a cookie value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who may see a cookie.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Our own pages' form posts only (the login form's CSRF token).
    OwnPages,
    /// Also requests from other sites' pages, over https: the SSO session
    /// must reach the authorization endpoint from an app's hidden iframe
    /// (keycloak-js's silent `check-sso`), so it is `SameSite=None` there,
    /// as Keycloak's `KEYCLOAK_IDENTITY` is. Over plain http browsers refuse
    /// `SameSite=None`, so it stays `Lax` (same-site apps still work).
    Session,
    /// As `Session`, and readable by script (the session-status iframe).
    SessionScript,
}

fn set_cookie(
    idp: &Idp,
    realm: &Realm,
    name: &str,
    value: &str,
    max_age: i64,
    reach: Reach,
) -> HeaderValue {
    let http_only = if reach == Reach::SessionScript {
        ""
    } else {
        "; HttpOnly"
    };
    let same_site = match (reach, idp.secure_cookies) {
        (Reach::OwnPages, true) => "; SameSite=Lax; Secure",
        (_, true) => "; SameSite=None; Secure",
        (_, false) => "; SameSite=Lax",
    };
    let age = if max_age < 0 {
        String::new()
    } else {
        format!("; Max-Age={max_age}")
    };
    let v = format!(
        "{name}={value}; Path=/realms/{}/{age}{http_only}{same_site}",
        realm.name
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// The SSO session named by the browser's cookie, if still valid.
pub async fn sso_session(
    idp: &Idp,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<Option<Session>, OAuthError> {
    let Some(c) = cookie(headers, SSO_COOKIE) else {
        return Ok(None);
    };
    let ring = idp.keyring(realm).await?;
    let Ok(claims) = gatehouse_jose::sign::verify_hs512(&ring.hs_secret, c) else {
        return Ok(None);
    };
    let now = gatehouse_core::time::now();
    if claims["typ"].as_str() != Some("SSO") || claims["exp"].as_i64().is_none_or(|e| e < now) {
        return Ok(None);
    }
    let Some(sid) = claims["sid"].as_str() else {
        return Ok(None);
    };
    let s = idp.store.session(sid).await?;
    Ok(s.filter(|s| now <= realm.session_ends(s, None, s.last_access)))
}

/// Clears the SSO cookies (the session and its script-readable id).
pub fn clear_sso_cookies(idp: &Idp, realm: &Realm) -> [HeaderValue; 2] {
    [
        set_cookie(idp, realm, SSO_COOKIE, "", 0, Reach::Session),
        set_cookie(idp, realm, SESSION_COOKIE, "", 0, Reach::SessionScript),
    ]
}

/// Answers an authorization with a code and/or front-channel tokens;
/// `sso` when the browser's SSO session stood in for credentials.
async fn issue_code(
    idp: &Idp,
    realm: &Realm,
    req: &AuthRequest,
    session: &Session,
    sso: bool,
) -> Result<Response, OAuthError> {
    let mut p: Vec<(&str, String)> = Vec::new();
    let code = if req.flow.code {
        // As Keycloak's codes do, the code names its browser session after
        // a dot: the exchange names the client session after it
        // (`token::code`).
        let code = format!("{}.{}", gatehouse_core::id::token(), session.id);
        let data = CodeData {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            code_challenge_method: req.code_challenge.as_ref().map(|_| "S256".to_owned()),
            sso,
            dpop_jkt: req.dpop_jkt.clone(),
            claims: req.claims.clone(),
        };
        idp.store
            .put_code(&CodeRecord {
                code: format!("code:{code}"),
                realm_id: realm.id.clone(),
                data: serde_json::to_string(&data).map_err(OAuthError::internal)?,
                expires: gatehouse_core::time::now() + realm.code_lifespan(),
            })
            .await?;
        p.push(("code", code.clone()));
        Some(code)
    } else {
        None
    };
    if req.flow.front_channel() {
        p.extend(front_channel_tokens(idp, realm, req, session, code.as_deref(), sso).await?);
    }
    if let Some(s) = &req.state {
        p.push(("state", s.clone()));
    }
    if let Some(status) = &req.kc_action_status {
        p.push(("kc_action_status", status.clone()));
        // Keycloak names the action too (keycloak-js hands both to
        // `onActionUpdate`).
        if let Some(a) = &req.kc_action {
            p.push(("kc_action", a.clone()));
        }
    }
    p.push(("session_state", session.id.clone()));
    p.push(("iss", idp.issuer(&realm.name)));
    let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(respond(req.response_mode, &req.redirect_uri, &refs))
}

/// The implicit or hybrid flow's tokens, under a client session of their
/// own made from the browser session, as a code exchange would make it.
async fn front_channel_tokens(
    idp: &Idp,
    realm: &Realm,
    req: &AuthRequest,
    sso: &Session,
    code: Option<&str>,
    sso_auth: bool,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let client = idp.existing_client(realm, &req.client_id).await?;
    let user = idp
        .store
        .user(&realm.id, &sso.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| OAuthError::invalid_request("User disabled or not found"))?;
    let id = crate::oidc::token::client_session_id(&sso.id);
    let mut session =
        crate::oidc::token::client_session(realm, &client, &user, &req.scope, (sso, sso_auth), id);
    // No refresh token comes from the front channel.
    session.refresh_token_id = None;
    session.claims = req.claims.clone();
    idp.store.create_session(&session, &[]).await?;
    let ring = idp.keyring(realm).await?;
    crate::tokens::front_channel(
        idp,
        &ring,
        &crate::tokens::Grant {
            realm,
            client: &client,
            user: &user,
            session: Some(&session),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            resources: vec![],
            refresh: false,
            dpop: None,
        },
        req.flow.token,
        req.flow.id_token,
        code,
        req.state.as_deref(),
    )
    .await
}

/// The login page; `who` is the username to fill in and whether
/// "Remember me" starts ticked.
fn login_form(
    realm: &Realm,
    req_id: &str,
    csrf: &str,
    error: Option<&str>,
    who: (&str, bool),
) -> Response {
    let notice = error.map_or(Notice::None, Notice::Error);
    login_form_with(realm, req_id, csrf, notice, who)
}

/// What a page says above its form.
enum Notice<'a> {
    None,
    Error(&'a str),
    /// Information, announced politely (`role="status"`).
    Info(&'a str),
}

impl Notice<'_> {
    fn html(&self) -> String {
        match self {
            Notice::None => String::new(),
            Notice::Error(e) => alert(Some(e)),
            Notice::Info(i) => format!("<p class=\"info\" role=\"status\">{}</p>", esc(i)),
        }
    }
}

fn login_form_with(
    realm: &Realm,
    req_id: &str,
    csrf: &str,
    notice: Notice<'_>,
    (username, remember): (&str, bool),
) -> Response {
    // Keycloak's "Remember me", where the realm offers it.
    let remember = if remember_me_offered(realm) {
        format!(
            "<label for=\"rememberMe\"><input id=\"rememberMe\" name=\"rememberMe\" type=\"checkbox\" style=\"width:auto\"{}> Remember me</label>",
            if remember { " checked" } else { "" }
        )
    } else {
        String::new()
    };
    let title = realm
        .display_name
        .clone()
        .unwrap_or_else(|| realm.name.clone());
    let err = notice.html();
    // Keycloak's "Forgot Password?" link, where the realm allows resets.
    let forgot = if reset_credentials::allowed(realm) {
        format!(
            "<p><a id=\"kc-forgot-password\" href=\"/realms/{r}/login-actions/reset-credentials?session_code={id}\">Forgot Password?</a></p>",
            r = esc(&realm.name),
            id = esc(req_id),
        )
    } else {
        String::new()
    };
    // Keycloak's "New user? Register", where the realm allows it.
    let register = if registration::allowed(realm) {
        format!(
            "<p>New user? <a id=\"kc-registration\" href=\"/realms/{r}/login-actions/registration?session_code={id}\">Register</a></p>",
            r = esc(&realm.name),
            id = esc(req_id),
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Sign in to {t}</h1>{err}<form id=\"kc-form-login\" method=\"post\" action=\"/realms/{r}/login-actions/authenticate?session_code={id}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"username\">Username or email</label><input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autofocus required value=\"{u}\">\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
{remember}<button type=\"submit\" id=\"kc-login\">Sign In</button></form>{forgot}{register}{providers}",
        t = esc(&title),
        r = esc(&realm.name),
        id = esc(req_id),
        csrf = esc(csrf),
        u = esc(username),
        providers = crate::broker::login_links(realm, req_id),
    );
    page(StatusCode::OK, &format!("Sign in to {title}"), &body)
}

async fn validate_client(
    idp: &Idp,
    realm: &Realm,
    q: &Form,
) -> Result<Result<(Client, String), Response>, OAuthError> {
    let Some(client_id) = q.get("client_id") else {
        return Ok(Err(error_page("Missing parameter: client_id")));
    };
    let Some(client) = idp
        .store
        .client_by_client_id(&realm.id, client_id)
        .await?
        .filter(|c| c.enabled)
    else {
        return Ok(Err(error_page("Client not found.")));
    };
    // OAuth 2.0 lets a client with one registered redirect URI leave it
    // out; OpenID Connect requires it (Core §3.1.2.1), so a request with
    // scope `openid` must name it, as Keycloak's `RedirectUtils` rules.
    let openid = q
        .get("scope")
        .is_some_and(|s| s.split(' ').any(|v| v == "openid"));
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) => r.to_owned(),
        None if !openid
            && client.redirect_uris.len() == 1
            && !client.redirect_uris[0].ends_with('*') =>
        {
            client.redirect_uris[0].clone()
        }
        None => return Ok(Err(error_page("Invalid parameter: redirect_uri"))),
    };
    if !client.redirect_uri_allowed(&redirect_uri) {
        return Ok(Err(error_page("Invalid parameter: redirect_uri")));
    }
    Ok(Ok((client, redirect_uri)))
}

/// The authorization endpoint, parameters in the query.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let q = Form::parse_query(query.unwrap_or_default().as_bytes());
    authorize(&idp, &realm, q, &headers, false).await
}

/// The authorization endpoint, parameters in a form body.
pub async fn post_form(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let q = Form::parse(&headers, &body);
    authorize(&idp, &realm, q, &headers, false).await
}

/// `GET .../protocol/openid-connect/registrations`: an authorization
/// request that opens on the registration page (keycloak-js's
/// `register()`).
pub async fn registrations(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let q = Form::parse_query(query.unwrap_or_default().as_bytes());
    authorize(&idp, &realm, q, &headers, true).await
}

/// The authorization request in `q`; with `register` (or `prompt=create`),
/// it opens on the registration page rather than the login page.
async fn authorize(
    idp: &Idp,
    realm: &str,
    q: Result<Form, OAuthError>,
    headers: &HeaderMap,
    register: bool,
) -> Result<Response, OAuthError> {
    let realm = match realm_or_page(idp, realm).await {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    let q = match q {
        Ok(q) => q,
        Err(e) => return Ok(error_page(&e.description)),
    };
    // A pushed request (RFC 9126) stands in for the query.
    let pushed = q
        .get("request_uri")
        .is_some_and(|u| u.starts_with(crate::oidc::par::PREFIX));
    let q = match crate::oidc::par::resolve(idp, &realm, q).await? {
        Ok(q) => q,
        Err(why) => return Ok(error_page(why)),
    };
    // And a request object's parameters stand in for the query's.
    let q = match crate::oidc::request_object::resolve(idp, &realm, q, pushed).await? {
        Ok(q) => q,
        Err(why) => return Ok(error_page(&why)),
    };
    let (client, redirect_uri) = match validate_client(idp, &realm, &q).await? {
        Ok(v) => v,
        Err(page) => return Ok(page),
    };
    let state = q.get("state");
    let flow = Flow::parse(q.get("response_type"));
    let front = flow.is_some_and(Flow::front_channel);
    let mode_asked = q.get("response_mode");
    // Tokens never travel in a query string: the implicit and hybrid
    // flows answer in the fragment unless form_post is asked.
    let mode_asked = match mode_asked {
        None if front => Some("fragment"),
        m => m,
    };
    let Some(response_mode) = ResponseMode::parse(mode_asked) else {
        return Ok(error_redirect(
            idp,
            &realm,
            (&redirect_uri, ResponseMode::Query),
            state,
            "invalid_request",
            "Invalid parameter: response_mode",
        ));
    };
    let fail =
        |e: &str, d: &str| error_redirect(idp, &realm, (&redirect_uri, response_mode), state, e, d);
    let Some(flow) = flow else {
        // As Keycloak: a missing one is a malformed request, an unknown
        // one an unsupported type (RFC 6749 §4.1.2.1).
        if q.get("response_type").is_none() {
            return Ok(fail("invalid_request", "Missing parameter: response_type"));
        }
        return Ok(fail(
            "unsupported_response_type",
            "Unsupported response_type",
        ));
    };
    if front && response_mode == ResponseMode::Query {
        return Ok(fail(
            "invalid_request",
            "Response_mode 'query' not allowed for implicit or hybrid flow",
        ));
    }
    if client.bearer_only || (flow.code && !client.standard_flow_enabled) {
        return Ok(fail(
            "unauthorized_client",
            "Client is not allowed to initiate browser login",
        ));
    }
    if front && !client.implicit_flow_enabled {
        return Ok(fail(
            "unauthorized_client",
            "Client is not allowed to initiate browser login with given response_type. Implicit flow is disabled for the client.",
        ));
    }
    // OIDC Core §3.2.2.1: an ID token from the front channel must be
    // bound to the request that asked for it.
    if flow.id_token && q.get("nonce").is_none() {
        return Ok(fail("invalid_request", "Missing parameter: nonce"));
    }
    // OIDC Core §6.2: a request_uri the client did not register is never
    // fetched (`request_object.rs` fetched the registered ones).
    if q.get("request_uri").is_some() {
        return Ok(fail(
            "invalid_request_uri",
            "Specified 'request_uri' not allowed for this client.",
        ));
    }
    let challenge = q.get("code_challenge");
    match (challenge, q.get("code_challenge_method")) {
        (Some(c), Some("S256")) if c.len() == 43 => {}
        (Some(_), Some("S256")) => {
            return Ok(fail("invalid_request", "Invalid parameter: code_challenge"));
        }
        (Some(_), None) | (Some(_), Some(_)) => {
            return Ok(fail(
                "invalid_request",
                "Invalid parameter: code challenge method is not supported",
            ));
        }
        (None, _) if client.public_client && flow.code => {
            return Ok(fail("invalid_request", "Missing parameter: code_challenge"));
        }
        (None, _) => {}
    }
    let scope = match granted_scope(&client, &idp.client_scopes(&realm).await?, q.get("scope")) {
        Ok(s) => s,
        Err(e) => return Ok(fail(e.error, &e.description)),
    };
    let prompt: Vec<&str> = q.get("prompt").unwrap_or("").split_whitespace().collect();
    let prompt_none = prompt.contains(&"none");
    // OIDC Core §3.1.2.1: `none` with any other value is an error.
    if prompt_none && prompt.len() > 1 {
        return Ok(fail("invalid_request", "Invalid parameter: prompt"));
    }
    // OpenID Connect "Initiating User Registration": `prompt=create`.
    let register = register || prompt.contains(&"create");
    if register && !registration::allowed(&realm) {
        return Ok(error_page(registration::NOT_ALLOWED));
    }
    // A new account, or a login asked for again: no SSO session answers.
    let fresh_login = register || prompt.contains(&"login");
    let max_age: Option<i64> = match q.get("max_age").map(str::parse) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(m),
        Some(_) => return Ok(fail("invalid_request", "Invalid parameter: max_age")),
    };
    // Keycloak's application-initiated actions: one of the required
    // actions with a page here, enabled in the realm; anything else is
    // reported back as `kc_action_status=error` after a plain login.
    let (kc_action, kc_action_status) = match q.get("kc_action") {
        None => (None, None),
        Some(a) => match required_actions::SUPPORTED.iter().find(|s| {
            s.eq_ignore_ascii_case(a)
                && crate::admin::required_actions::enabled(&realm)
                    .iter()
                    .any(|e| e == *s)
        }) {
            Some(s) => (Some((*s).to_owned()), None),
            None => (None, Some("error".to_owned())),
        },
    };
    let req = AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state: state.map(str::to_owned),
        nonce: q.get("nonce").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        csrf: gatehouse_core::id::token(),
        response_mode,
        prompt_consent: prompt.contains(&"consent"),
        flow,
        login_hint: q.get("login_hint").map(str::to_owned),
        broker: None,
        kc_action,
        kc_action_status,
        sso_session: None,
        extra_actions: Vec::new(),
        end_after: None,
        invite: None,
        remember_me: false,
        dpop_jkt: q.get(crate::oidc::dpop::JKT_PARAM).map(str::to_owned),
        claims: claims_param(q.get("claims")),
    };
    let now = gatehouse_core::time::now();
    // OIDC Core §3.1.2.1: an ID token hint names the user the client
    // expects; the browser's session of someone else does not answer for
    // them (with prompt=none: login_required). A hint that is not one of
    // our ID tokens is refused.
    let hinted = match q.get("id_token_hint") {
        None => None,
        Some(h) => match id_token_hint(&*idp.keyring(&realm).await?, idp, &realm, h) {
            Some(c) => c["sub"].as_str().map(str::to_owned),
            None => return Ok(fail("invalid_request", "Invalid parameter: id_token_hint")),
        },
    };
    // An application-initiated action in a recently authenticated SSO
    // session: its page at once (Keycloak's `max_auth_age`); otherwise
    // the password is asked for again below.
    if let Some(action) = &req.kc_action
        && !fresh_login
        && !prompt_none
        && let Some(s) = sso_session(idp, &realm, headers).await?
        && aia_fresh(&realm, action, now - s.auth_time)
        && hinted
            .as_deref()
            .is_none_or(|sub| crate::pairwise::names(&client, &s.user_id, sub))
        && let Some(user) = idp
            .store
            .user(&realm.id, &s.user_id)
            .await?
            .filter(|u| u.enabled)
    {
        let mut req = req.clone();
        req.sso_session = Some(s.id.clone());
        let (req_id, expires) = begin_login(idp, &realm, &req, now).await?;
        let r = authenticated(idp, &realm, &req_id, &req, &user, expires, now).await?;
        return Ok(with_csrf(idp, &realm, &req.csrf, r));
    }
    // The hint names the user as this client sees them (pairwise or not).
    // An application-initiated action otherwise asks for the password
    // again, so the SSO session does not answer for it.
    if !fresh_login
        && req.kc_action.is_none()
        && let Some(s) = sso_session(idp, &realm, headers).await?
        && hinted
            .as_deref()
            .is_none_or(|sub| crate::pairwise::names(&client, &s.user_id, sub))
    {
        let fresh = max_age.is_none_or(|m| now - s.auth_time <= m);
        if fresh
            && idp
                .store
                .user(&realm.id, &s.user_id)
                .await?
                // A required action set since (a temporary password) is
                // done at a fresh login, not skipped by the SSO session.
                .is_some_and(|u| u.enabled && !action_pending(&realm, &u))
        {
            idp.touch(&s.id, now).await?;
            if consent::needed(
                idp,
                &realm,
                &client,
                &req.scope,
                &s.user_id,
                req.prompt_consent,
            )
            .await?
            {
                if prompt_none {
                    return Ok(fail("consent_required", "Consent required"));
                }
                let req_id = gatehouse_core::id::token();
                let waiting = consent::Waiting::Session(s.id.clone());
                let expires = now + realm.login_lifespan();
                return consent::ask(idp, &realm, &req_id, &req, waiting, expires).await;
            }
            return issue_code(idp, &realm, &req, &s, true).await;
        }
    }
    if prompt_none {
        return Ok(fail("login_required", "User must log in"));
    }
    let req_id = gatehouse_core::id::token();
    idp.store
        .put_code(&CodeRecord {
            code: format!("authreq:{req_id}"),
            realm_id: realm.id.clone(),
            data: serde_json::to_string(&req).map_err(OAuthError::internal)?,
            expires: now + realm.login_lifespan(),
        })
        .await?;
    // Keycloak's identity-provider redirector: `kc_idp_hint` naming a
    // provider skips the login page (the browser's CSRF cookie still
    // binds the login to it).
    let mut r = match q
        .get("kc_idp_hint")
        .and_then(|alias| crate::broker::start_url(idp, &realm, alias, &req_id))
    {
        Some(to) => redirect(&to),
        None if register => registration::form(
            &realm,
            &req_id,
            &req.csrf,
            &registration::Entered::for_login(&realm, &req),
            None,
        ),
        // Keycloak fills the username field from `login_hint`, else from
        // the remember-me cookie (and then ticks the box).
        None => {
            let remembered = remembered(&realm, headers);
            let who = match (q.get("login_hint"), remembered.as_deref()) {
                (Some(hint), _) => (hint, false),
                (None, Some(name)) => (name, true),
                (None, None) => ("", false),
            };
            login_form(&realm, &req_id, &req.csrf, None, who)
        }
    };
    r.headers_mut()
        .append(header::SET_COOKIE, csrf_cookie(idp, &realm, &req.csrf));
    Ok(r)
}

/// The login attempt's CSRF cookie, set with the first page it shows.
fn csrf_cookie(idp: &Idp, realm: &Realm, csrf: &str) -> HeaderValue {
    set_cookie(
        idp,
        realm,
        CSRF_COOKIE,
        csrf,
        realm.login_lifespan(),
        Reach::OwnPages,
    )
}

/// The login form's POST target.
pub async fn post(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let realm = match realm_or_page(&idp, &realm).await {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    let q = Form::parse_query(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(req_id) = q.get("session_code") else {
        return Ok(expired_page());
    };
    let Some(pending) = Pending::load(&idp, &realm, req_id).await? else {
        return Ok(expired_page());
    };
    let now = gatehouse_core::time::now();
    let form = match pending.form(&realm, &headers, &body) {
        Ok(f) => f,
        Err(page) => return Ok(*page),
    };
    let (mut req, expires) = (pending.req, pending.expires);
    let pending_key = format!("reqaction:{req_id}");
    let execution = q.get("execution").or_else(|| {
        // A password form posted to the login URL itself.
        form.get("password-new").map(|_| "UPDATE_PASSWORD")
    });
    if execution == Some(consent::EXECUTION) {
        return consent::submit(&idp, &realm, req_id, &req, &form, now).await;
    }
    if execution == Some(otp_step::EXECUTION) {
        let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
        return otp_step::submit(&idp, &realm, req_id, &req, &form, ip.as_deref(), now).await;
    }
    if let Some(action) = execution {
        return required_actions::submit(
            &idp,
            &realm,
            req_id,
            &req,
            &form,
            action,
            &pending_key,
            now,
        )
        .await;
    }
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let result = if username.is_empty() || password.is_empty() {
        Err(crate::login::LoginFailure::InvalidCredentials)
    } else {
        let ip = crate::oidc::form::client_ip(&idp, &ext, &headers);
        let client = idp.existing_client(&realm, &req.client_id).await?;
        check_password(
            &idp,
            &realm,
            crate::flows::Kind::Browser,
            &client,
            username,
            password,
            ip.as_deref(),
        )
        .await?
    };
    let verified = match result {
        Ok(v) => v,
        Err(f) => {
            let msg = match f {
                crate::login::LoginFailure::Disabled => {
                    "Account is disabled, contact your administrator."
                }
                crate::login::LoginFailure::Throttled(_) => THROTTLED,
                _ => "Invalid username or password.",
            };
            let who = (username, asked_remember(&realm, &form));
            return Ok(login_form(&realm, req_id, &req.csrf, Some(msg), who));
        }
    };
    let mut user = verified.user;
    if asked_remember(&realm, &form) {
        req.remember_me = true;
        keep_request(&idp, &realm, req_id, &req, expires).await?;
    }
    match verified.second {
        crate::login::SecondFactor::Code(_) => {
            return otp_step::ask(&idp, &realm, req_id, &req, &user, expires).await;
        }
        crate::login::SecondFactor::SetUp => {
            // As Keycloak's OTP form when REQUIRED: the user gets the
            // CONFIGURE_TOTP action, kept until done, and does it now.
            if !required_actions::can_configure_totp(&realm) {
                return Ok(required_actions::not_set_up());
            }
            if !user.required_actions.iter().any(|a| a == "CONFIGURE_TOTP") {
                user.required_actions.push("CONFIGURE_TOTP".into());
                idp.store.update_user(&user, &[]).await?;
            }
        }
        crate::login::SecondFactor::None => {}
    }
    authenticated(&idp, &realm, req_id, &req, &user, expires, now).await
}

/// `GET .../login-actions/authenticate?session_code=...`: the login page
/// of a login in progress again (the "Back to Login" of its other pages).
pub async fn login_again(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let realm = match realm_or_page(&idp, &realm).await {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    match Pending::in_browser(&idp, &realm, query.as_deref(), &headers).await? {
        Some(p) if p.req.end_after.is_none() => Ok(p.login_page(&realm, None)),
        _ => Ok(expired_page()),
    }
}

/// The realm a login page is for, or the page saying it does not exist.
async fn realm_or_page(idp: &Idp, name: &str) -> Result<Realm, Response> {
    idp.realm(name).await.map_err(|_| {
        page(
            StatusCode::NOT_FOUND,
            "Error",
            "<h1>Realm does not exist</h1>",
        )
    })
}

/// Stores `req` as a new login attempt, alive for the realm's login
/// lifespan from `now`: its id and when it dies.
async fn begin_login(
    idp: &Idp,
    realm: &Realm,
    req: &AuthRequest,
    now: i64,
) -> Result<(String, i64), OAuthError> {
    let req_id = gatehouse_core::id::token();
    let expires = now + realm.login_lifespan();
    keep_request(idp, realm, &req_id, req, expires).await?;
    Ok((req_id, expires))
}

/// `r`, the first page of a login, with the login's CSRF cookie.
fn with_csrf(idp: &Idp, realm: &Realm, csrf: &str, mut r: Response) -> Response {
    r.headers_mut()
        .append(header::SET_COOKIE, csrf_cookie(idp, realm, csrf));
    r
}

/// Stores the login attempt's request again after a step changed it.
async fn keep_request(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    expires: i64,
) -> Result<(), OAuthError> {
    let data = serde_json::to_string(req).map_err(OAuthError::internal)?;
    set_pending(idp, realm, format!("authreq:{req_id}"), data, expires).await
}

/// Records (replacing any earlier one) what step `key` of a login waits
/// on: the later page's post finds it there, and it dies with the login.
pub(crate) async fn set_pending(
    idp: &Idp,
    realm: &Realm,
    key: String,
    data: String,
    expires: i64,
) -> Result<(), OAuthError> {
    idp.store.take_code(&key).await?;
    idp.store
        .put_code(&CodeRecord {
            code: key,
            realm_id: realm.id.clone(),
            data,
            expires,
        })
        .await?;
    Ok(())
}

/// The user is who they say (their password, and their one-time code
/// where they have one): their required actions come next, each on its
/// page, then the client's code.
async fn authenticated(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    expires: i64,
    now: i64,
) -> Result<Response, OAuthError> {
    let updated = required_actions::triggered(realm, user);
    if let Some(u) = &updated {
        idp.store.update_user(u, &[]).await?;
    }
    let user = updated.as_ref().unwrap_or(user);
    match required_actions::next_for(realm, user, req) {
        required_actions::Step::None => {}
        required_actions::Step::Action(action) => {
            // Keycloak's `accessCodeLifespanUserAction`: the actions must be
            // done within it (5 minutes by default), whatever the login's.
            let expires = expires.min(now + realm.user_action_lifespan());
            let key = format!("reqaction:{req_id}");
            set_pending(idp, realm, key, user.id.clone(), expires).await?;
            return required_actions::show(idp, realm, req_id, req, action, user, expires).await;
        }
        required_actions::Step::Unsupported => {
            return Ok(required_actions::not_set_up());
        }
    }
    finish(idp, realm, req_id, req, user, expires, now).await
}

/// The last step before the code: the user's consent, where the client
/// asks for it, then the login.
async fn finish(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    expires: i64,
    now: i64,
) -> Result<Response, OAuthError> {
    if let Some(end) = &req.end_after {
        idp.store.take_code(&format!("authreq:{req_id}")).await?;
        return Ok(action_link::done_page(
            "Your account has been updated.",
            end.back_to.as_deref(),
        ));
    }
    if let Some(client) = idp.client(realm, &req.client_id).await?
        && consent::needed(
            idp,
            realm,
            &client,
            &req.scope,
            &user.id,
            req.prompt_consent,
        )
        .await?
    {
        let waiting = consent::Waiting::User(user.id.clone());
        return consent::ask(idp, realm, req_id, req, waiting, expires).await;
    }
    log_in(idp, realm, req_id, req, user, now).await
}

/// A form's error line, announced to screen readers (`role="alert"`).
pub fn alert(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"input-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default()
}

/// The page for a login attempt that is spent, unknown or too old.
pub fn expired_page() -> Response {
    error_page("Your login attempt timed out. Login will start from the beginning.")
}

/// Completes a login: the authorization request is spent, an SSO session
/// starts (cookie) and the client gets its code.
async fn log_in(
    idp: &Idp,
    realm: &Realm,
    req_id: &str,
    req: &AuthRequest,
    user: &User,
    now: i64,
) -> Result<Response, OAuthError> {
    // The request is spent: a replayed POST cannot log in again.
    idp.store.take_code(&format!("authreq:{req_id}")).await?;
    // An application-initiated action done in an SSO session: the code
    // comes from that session (no new login).
    if let Some(sid) = &req.sso_session
        && let Some(s) = idp.store.session(sid).await?
        && s.user_id == user.id
    {
        idp.touch(&s.id, now).await?;
        return issue_code(idp, realm, req, &s, true).await;
    }
    let broker = req
        .broker
        .as_ref()
        .map(|b| gatehouse_core::model::BrokerSession {
            alias: b.alias.clone(),
            id_token: b.id_token.clone(),
        });
    let origin = SsoOrigin {
        impersonator: None,
        broker,
        remember_me: req.remember_me,
    };
    let (session, cookies) = start_sso(idp, realm, user, now, origin, |session| {
        let mut ev = Event::user(realm, "LOGIN");
        if req.remember_me {
            ev.details.insert("remember_me".into(), "true".into());
        }
        ev.client_id = Some(req.client_id.clone());
        ev.user_id = Some(user.id.clone());
        ev.session_id = Some(session.id.clone());
        ev.details
            .insert("auth_method".into(), "openid-connect".into());
        ev.details.insert("username".into(), user.username.clone());
        ev.details
            .insert("redirect_uri".into(), req.redirect_uri.clone());
        if let Some(b) = &req.broker {
            ev.details
                .insert("identity_provider".into(), b.alias.clone());
            ev.details
                .insert("identity_provider_identity".into(), b.identity.clone());
        }
        ev
    })
    .await?;
    let mut r = issue_code(idp, realm, req, &session, false).await?;
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    // Keycloak's KEYCLOAK_REMEMBER_ME: the username, to fill the next
    // login page, kept a year while the user asks to be remembered.
    if remember_me_offered(realm) {
        let c = if req.remember_me {
            let name: String =
                url::form_urlencoded::byte_serialize(user.username.as_bytes()).collect();
            set_cookie(
                idp,
                realm,
                REMEMBER_COOKIE,
                &format!("username:{name}"),
                31_536_000,
                Reach::OwnPages,
            )
        } else {
            set_cookie(idp, realm, REMEMBER_COOKIE, "", 0, Reach::OwnPages)
        };
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// The username the browser asked to be remembered by (the
/// remember-me cookie), where the realm offers "Remember me".
fn remembered(realm: &Realm, headers: &HeaderMap) -> Option<String> {
    if !remember_me_offered(realm) {
        return None;
    }
    let v = cookie(headers, REMEMBER_COOKIE)?.strip_prefix("username:")?;
    let name = url::form_urlencoded::parse(format!("u={v}").as_bytes())
        .next()
        .map(|(_, n)| n.into_owned())?;
    (!name.is_empty() && name.len() <= 255).then_some(name)
}

/// Whether the login form ticked "Remember me" where the realm offers it
/// (Keycloak reads the checkbox's `on`).
fn asked_remember(realm: &Realm, form: &Form) -> bool {
    remember_me_offered(realm)
        && form
            .get("rememberMe")
            .is_some_and(|v| v.eq_ignore_ascii_case("on"))
}

/// Whether the realm's login page offers "Remember me" (its `rememberMe`).
fn remember_me_offered(realm: &Realm) -> bool {
    realm.flag("rememberMe")
}

/// How a browser session came about, beyond whose it is.
#[derive(Default)]
pub struct SsoOrigin {
    /// The admin who started it as the user (impersonation).
    pub impersonator: Option<gatehouse_core::model::Impersonator>,
    /// The identity provider the login came through.
    pub broker: Option<gatehouse_core::model::BrokerSession>,
    /// The user ticked "Remember me".
    pub remember_me: bool,
}

/// A cookie's `max_age` for "until the browser closes" (no `Max-Age`).
const BROWSER_SESSION: i64 = -1;

/// Starts a browser (SSO) session for `user`, written with the one event
/// `event` makes of it, and returns it with the cookies that carry it. The
/// login form and the admin API's impersonation start sessions this way.
pub async fn start_sso(
    idp: &Idp,
    realm: &Realm,
    user: &User,
    now: i64,
    origin: SsoOrigin,
    event: impl FnOnce(&Session) -> Event,
) -> Result<(Session, [HeaderValue; 3]), OAuthError> {
    let SsoOrigin {
        impersonator,
        broker,
        remember_me,
    } = origin;
    let session = Session {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        client_id: String::new(),
        ip: None,
        started: now,
        last_access: now,
        offline: false,
        refresh_token_id: None,
        rotate_refresh: false,
        scope: String::new(),
        auth_time: now,
        sso_session_id: None,
        sso_auth: false,
        impersonator,
        broker,
        remember_me,
        claims: None,
    };
    idp.store
        .create_session(&session, &[event(&session)])
        .await?;
    let ring = idp.keyring(realm).await?;
    let (idle, max) = realm.session_limits(remember_me);
    let sso = gatehouse_jose::sign::sign_hs512(
        &ring.hs_secret,
        &realm.id,
        &serde_json::json!({"typ": "SSO", "sid": session.id, "exp": now + max}),
    )?;
    // As Keycloak: the cookies outlive the browser only for a session the
    // user asked to be remembered; otherwise they end when it closes.
    let life = if remember_me {
        idle.max(max)
    } else {
        BROWSER_SESSION
    };
    let cookies = [
        set_cookie(idp, realm, SSO_COOKIE, &sso, life, Reach::Session),
        set_cookie(
            idp,
            realm,
            SESSION_COOKIE,
            &session.id,
            life,
            Reach::SessionScript,
        ),
        set_cookie(idp, realm, CSRF_COOKIE, "", 0, Reach::OwnPages),
    ];
    Ok((session, cookies))
}
