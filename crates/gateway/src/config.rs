//! Gateway configuration: the `[authorizers.*]` and `[[routes]]` sections of
//! the config file (design.md §Config file), parsed with unknown keys refused
//! (so a typo is an error with its line, not a silently open route), then
//! validated into an immutable [`Snapshot`].

use crate::authn::Authorizer;
use crate::authn::apikey::{ApiKeyAuthorizer, ApiKeyLookup};
use crate::authn::jwt::JwtAuthorizer;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// The built-in echo upstream's name.
pub const ECHO: &str = "builtin:echo";

fn default_leeway() -> u64 {
    30
}
fn default_true() -> bool {
    true
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// The longest any timeout, ejection or clock leeway may be: a day. Longer
/// values mean nothing a gateway should wait for, and an unbounded one
/// overflows the deadline arithmetic (`Instant + Duration` panics) on
/// every request instead of being refused at load.
const MAX_MS: u64 = 86_400_000;
const MAX_S: u64 = MAX_MS / 1000;
fn default_upstream_protocol() -> String {
    "http1".into()
}
fn default_eject_after() -> u32 {
    3
}
fn default_eject_seconds() -> u64 {
    30
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
fn default_groups_claims() -> Vec<String> {
    strings(&["groups", "cognito:groups"])
}
fn default_roles_claims() -> Vec<String> {
    strings(&["realm_access.roles", "roles"])
}
fn default_scope_claims() -> Vec<String> {
    strings(&["scope", "scp"])
}
fn default_username_claims() -> Vec<String> {
    strings(&[
        "preferred_username",
        "cognito:username",
        "username",
        "upn",
        "email",
    ])
}
fn default_client_claims() -> Vec<String> {
    strings(&["azp", "client_id", "appid"])
}

/// `[authorizers.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// `jwt` or `apikey`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `apikey`: the realm whose keys are accepted.
    pub realm: Option<String>,
    /// `apikey`: the header carrying the key (default `x-api-key`).
    pub header: Option<String>,
    /// Expected `iss`; also where discovery is fetched from.
    pub issuer: Option<String>,
    /// Skip discovery and fetch keys here.
    pub jwks_uri: Option<String>,
    /// Read keys from a local JWKS file instead.
    pub jwks_file: Option<PathBuf>,
    /// Extra trusted root certificates (PEM) for discovery and JWKS, for
    /// issuers behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// Accepted audiences (any one). Empty accepts any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted algorithms; default every asymmetric one. HMAC and `none`
    /// cannot be configured.
    #[serde(default)]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Read the token from this header (raw token, or `Bearer ...`) instead
    /// of `Authorization`.
    pub token_header: Option<String>,
    /// Read the token from this cookie.
    pub token_cookie: Option<String>,
    /// Claims (dotted paths) whose values become the caller's groups.
    #[serde(default = "default_groups_claims")]
    pub groups_claims: Vec<String>,
    /// Claims whose values become roles; `resource_access.CLIENT.roles` works.
    #[serde(default = "default_roles_claims")]
    pub roles_claims: Vec<String>,
    /// Claims holding scopes (space-separated string or array).
    #[serde(default = "default_scope_claims")]
    pub scope_claims: Vec<String>,
    #[serde(default = "default_username_claims")]
    pub username_claims: Vec<String>,
    #[serde(default = "default_client_claims")]
    pub client_claims: Vec<String>,
    /// Check a token that has no `aud` by its `client_id` against
    /// `audiences`, as AWS API Gateway's JWT authorizer does for Amazon
    /// Cognito's access tokens (which carry `client_id`, never `aud`).
    /// Default: on for a Cognito user pool issuer
    /// (`https://cognito-idp.REGION.amazonaws.com/POOL`), off otherwise.
    #[serde(rename = "client_id_as_audience")]
    pub client_id_as_audience_setting: Option<bool>,
    /// Accept OpenID Connect ID tokens as well as access tokens, as AWS
    /// API Gateway's JWT authorizer does with Cognito's. Off: an ID token
    /// is the client's proof of a login, not a credential for an API.
    #[serde(default)]
    pub accept_id_tokens: bool,
    /// Accept only DPoP-bound tokens (RFC 9449, with a proof per request):
    /// a plain bearer token, however valid, is refused. For APIs that must
    /// not be reachable with a token copied from somewhere.
    #[serde(default)]
    pub require_dpop: bool,
}

impl AuthorizerConfig {
    /// See `client_id_as_audience`.
    pub fn client_id_as_audience(&self) -> bool {
        self.client_id_as_audience_setting.unwrap_or_else(|| {
            self.issuer.as_deref().is_some_and(|i| {
                i.strip_prefix("https://cognito-idp.")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(host, pool)| {
                        host.ends_with(".amazonaws.com") && !pool.is_empty() && !pool.contains('/')
                    })
            })
        })
    }
}

/// `[[routes]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Prefix, matched on segment boundaries (`/orders` matches `/orders/1`,
    /// not `/ordersx`).
    pub path: String,
    /// One upstream base URL (`http://host:port[/base]`), or `builtin:echo`
    /// for the built-in echo upstream that answers with what it received...
    pub upstream: Option<String>,
    /// ...or several, used round robin.
    #[serde(default)]
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub authorizers: Vec<String>,
    /// Required to leave a route without authorizer.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub scopes_all: Vec<String>,
    #[serde(default)]
    pub groups_any: Vec<String>,
    #[serde(default)]
    pub roles_any: Vec<String>,
    /// Claim conditions: the claim (dotted path) must have one of the values.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Remove the route's path prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Match `path` without regard to ASCII case (Envoy's
    /// `case_sensitive: false`), for upstreams that ignore case (IIS, some
    /// Spring setups): then `/ORDERS` meets this route's rules too.
    #[serde(default = "default_true")]
    pub case_sensitive: bool,
    /// Forward the caller's bearer token upstream (off: a leaked token
    /// should not travel further than it must).
    #[serde(default)]
    pub forward_token: bool,
    /// Only tokens whose audience includes this resource (RFC 8707).
    pub audience: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `http1` (default), `h2c` (HTTP/2 with prior knowledge over plain
    /// TCP, for gRPC) or `h2` (HTTP/2 over TLS by ALPN, for `https://`
    /// upstreams such as gRPC services behind TLS).
    #[serde(default = "default_upstream_protocol")]
    pub upstream_protocol: String,
    /// PEM bundle of the CAs `https://` upstreams' certificates must chain
    /// to (for private CAs); without it, the platform's trust store.
    #[serde(default)]
    pub upstream_ca: Option<PathBuf>,
    /// The certificate chain (PEM) the gateway presents to `https://`
    /// upstreams that ask for a client certificate (mutual TLS), with its
    /// key (`upstream_client_key`, PEM).
    #[serde(default)]
    pub upstream_client_cert: Option<PathBuf>,
    #[serde(default)]
    pub upstream_client_key: Option<PathBuf>,
    /// Consecutive failures (connect errors, 502/503/504 from it, timeouts)
    /// after which a target is taken out of rotation; 0 never ejects.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
    /// Seconds an ejected target stays out.
    #[serde(default = "default_eject_seconds")]
    pub eject_seconds: u64,
    #[serde(default)]
    pub add_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// Cedar policy text for this route (evaluated after the rules).
    pub cedar: Option<String>,
    /// A file of Cedar policies (relative to the working directory).
    pub cedar_file: Option<PathBuf>,
    /// Send the signed `X-Gatehouse-Assertion` upstream.
    #[serde(default)]
    pub assertion: bool,
    /// Throttling per caller (GCRA token bucket).
    pub rate_limit: Option<crate::ratelimit::RateLimitConfig>,
    /// CORS; preflights are answered before authentication.
    pub cors: Option<crate::cors::CorsConfig>,
}

/// `[gateway]`: listener-wide settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Base URL callers use (for RFC 9728 `resource`); default
    /// `http://<gateway_listen>`.
    pub public_url: Option<String>,
    /// Append audit lines to this file instead of standard output.
    pub audit_log: Option<PathBuf>,
    /// How long a client may take to send a request head (and, on a new
    /// connection, its first byte or TLS handshake) before the connection
    /// is closed: the slowloris defence. Default 10 000.
    pub header_read_timeout_ms: Option<u64>,
}

impl GatewaySettings {
    /// The header read timeout in effect.
    pub fn header_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_read_timeout_ms.unwrap_or(10_000).max(1))
    }
}

/// The gateway's part of the config file; other sections are ignored here.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct GatewayFile {
    #[serde(default)]
    pub gateway: GatewaySettings,
    #[serde(default)]
    pub authorizers: BTreeMap<String, AuthorizerConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl GatewayFile {
    /// Parses the config file text. Syntax and unknown-key errors carry the
    /// line and column.
    pub fn parse(text: &str) -> Result<GatewayFile> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }
}

/// Passive health of one upstream target.
#[derive(Default)]
pub struct TargetHealth {
    failures: std::sync::atomic::AtomicU32,
    /// Unix milliseconds until which the target is out of rotation.
    ejected_until: std::sync::atomic::AtomicI64,
}

impl TargetHealth {
    /// Whether the target is in rotation at `now_ms`.
    pub fn available(&self, now_ms: i64) -> bool {
        self.ejected_until
            .load(std::sync::atomic::Ordering::Relaxed)
            <= now_ms
    }

    /// Records an outcome; returns true when this failure ejected it.
    /// `now_ms` is read only then: a clock read per request is not free.
    pub fn record(&self, ok: bool, after: u32, for_s: u64, now_ms: impl FnOnce() -> i64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if ok {
            // Read first: a write per request would bounce the line between
            // the cores of several workers.
            if self.failures.load(Relaxed) != 0 {
                self.failures.store(0, Relaxed);
            }
            return false;
        }
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        if after > 0 && n >= after {
            self.failures.store(0, Relaxed);
            self.ejected_until
                .store(now_ms() + (for_s as i64) * 1000, Relaxed);
            return true;
        }
        false
    }
}

fn new_authorizer(
    name: &str,
    a: &AuthorizerConfig,
    http: &reqwest::Client,
    apikeys: Option<&Arc<dyn ApiKeyLookup>>,
) -> Result<Authorizer> {
    let at = |m: &str| Error::Config(format!("authorizer '{name}': {m}"));
    match a.kind.as_str() {
        "jwt" => {
            if a.realm.is_some() || a.header.is_some() {
                return Err(at("`realm` and `header` belong to apikey authorizers"));
            }
            if a.leeway_seconds > MAX_S {
                return Err(at("leeway_seconds must be at most 86400 (a day)"));
            }
            let j = JwtAuthorizer::new(name, a.clone(), http.clone())?;
            Ok(Authorizer::Jwt(Box::new(j)))
        }
        "apikey" => {
            let realm = a
                .realm
                .as_deref()
                .ok_or_else(|| at("`realm` is required"))?;
            let lookup =
                apikeys.ok_or_else(|| at("API keys need the identity provider in this process"))?;
            let header = http::HeaderName::try_from(a.header.as_deref().unwrap_or("x-api-key"))
                .map_err(|_| at("bad `header` name"))?;
            Ok(Authorizer::ApiKey(ApiKeyAuthorizer::new(
                name,
                realm,
                header,
                lookup.clone(),
            )))
        }
        other => Err(at(&format!(
            "unsupported type '{other}' (supported: jwt, apikey)"
        ))),
    }
}

/// A validated route.
pub struct Route {
    pub cfg: RouteConfig,
    /// Path prefix without a trailing slash (empty for `/`).
    pub prefix: String,
    /// The route's name, shared with every audit line.
    pub name: Arc<str>,
    /// Where requests go, parsed once.
    pub upstreams: Vec<Target>,
    /// Passive health per upstream (same order).
    pub health: Vec<TargetHealth>,
    pub next: AtomicUsize,
    pub authorizers: Vec<Arc<Authorizer>>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub add_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub remove_headers: Vec<http::HeaderName>,
    pub rate_limit: Option<crate::ratelimit::Policy>,
    pub cedar: Option<crate::authz::cedar::CedarPolicy>,
    /// Answer with the built-in echo instead of forwarding.
    pub echo: bool,
    /// Pooled connections to this route's upstreams: upgrades and h2c.
    pub client: crate::proxy::UpstreamClient,
    /// Kept-alive HTTP/1.1 connections, one pool per target (empty for
    /// h2c routes).
    pub pools: Vec<Arc<crate::h1pool::H1Pool>>,
}

/// One upstream target, with what each request needs precomputed.
#[derive(Debug)]
pub struct Target {
    /// `scheme://host[:port]` plus the base path without trailing slash:
    /// the request path is appended to it.
    pub base: String,
    /// `host[:port]`, for audit lines.
    pub authority: Arc<str>,
    /// The `Host` header the upstream receives.
    pub host: http::HeaderValue,
    /// Where in `base` the path starts: `base[origin_at..]` is the
    /// origin-form prefix of the request target.
    pub origin_at: usize,
    /// `host:port` (default port filled in) to connect to.
    pub connect_addr: String,
    /// TLS for an `https://` target.
    pub tls: Option<crate::upstream_tls::TlsTarget>,
}

impl Target {
    fn new(u: &url::Url) -> Option<Target> {
        let host = u.host_str()?;
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let port = u.port_or_known_default()?;
        Some(Target {
            origin_at: u.scheme().len() + 3 + authority.len(),
            connect_addr: format!("{host}:{port}"),
            base: format!(
                "{}://{authority}{}",
                u.scheme(),
                u.path().trim_end_matches('/')
            ),
            host: http::HeaderValue::from_str(&authority).ok()?,
            authority: authority.into(),
            tls: None,
        })
    }
}

impl Route {
    /// Whether only DPoP-bound tokens pass (an authorizer of the route
    /// with `require_dpop`): its metadata and its 401s say so.
    pub fn requires_dpop(&self) -> bool {
        self.authorizers
            .iter()
            .any(|a| a.as_jwt().is_some_and(|j| j.config().require_dpop))
    }

    /// Whether `path` falls under this route. A segment ends at `/` or at
    /// `;`: servers such as Tomcat and Jetty read `/admin;x=1/users` as
    /// `/admin/users`, so it must meet `/admin`'s rules here too, not slip
    /// to a broader public route.
    pub fn matches(&self, path: &str) -> bool {
        match self.rest(path) {
            Some(rest) => {
                rest.is_empty()
                    || rest.starts_with('/')
                    || rest.starts_with(';')
                    || self.prefix.is_empty()
            }
            None => false,
        }
    }

    /// `path` after this route's prefix, compared as the route says (case
    /// folding keeps lengths, so the rest is a suffix of `path`).
    pub fn rest<'a>(&self, path: &'a str) -> Option<&'a str> {
        let n = self.prefix.len();
        let head = path.get(..n)?;
        let same = if self.cfg.case_sensitive {
            head == self.prefix
        } else {
            head.eq_ignore_ascii_case(&self.prefix)
        };
        same.then(|| &path[n..])
    }
}

/// The immutable, validated configuration a request reads.
pub struct Snapshot {
    /// Longest prefix first, so the most specific route wins.
    pub routes: Vec<Arc<Route>>,
    pub authorizers: HashMap<String, Arc<Authorizer>>,
    pub settings: GatewaySettings,
    pub file: GatewayFile,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.routes.iter().map(|r| r.cfg.name.as_str()).collect();
        f.debug_struct("Snapshot").field("routes", &names).finish()
    }
}

impl Snapshot {
    /// An empty snapshot: every request gets 404.
    pub fn empty() -> Snapshot {
        Snapshot {
            routes: vec![],
            authorizers: HashMap::new(),
            settings: GatewaySettings::default(),
            file: GatewayFile::default(),
        }
    }

    /// Validates `file`. Authorizers whose configuration is unchanged are
    /// taken over from `previous`, keeping their key and token caches warm.
    pub fn build(
        file: GatewayFile,
        previous: Option<&Snapshot>,
        http: &reqwest::Client,
        apikeys: Option<&Arc<dyn ApiKeyLookup>>,
    ) -> Result<Snapshot> {
        if file
            .gateway
            .header_read_timeout_ms
            .is_some_and(|t| t > MAX_MS)
        {
            return Err(Error::Config(
                "[gateway] header_read_timeout_ms must be at most 86400000 (a day)".into(),
            ));
        }
        let mut authorizers = HashMap::new();
        for (name, a) in &file.authorizers {
            // Unchanged authorizers are carried over with their caches.
            let reuse = previous
                .and_then(|p| {
                    p.file
                        .authorizers
                        .get(name)
                        .filter(|old| *old == a)
                        .and(p.authorizers.get(name))
                })
                .cloned();
            let authz = match reuse {
                Some(old) => old,
                None => {
                    let fresh = Arc::new(new_authorizer(name, a, http, apikeys)?);
                    fresh.start_background();
                    fresh
                }
            };
            authorizers.insert(name.clone(), authz);
        }
        let mut routes = vec![];
        let mut names = std::collections::HashSet::new();
        for r in &file.routes {
            let at = |msg: &str| Error::Config(format!("route '{}': {msg}", r.name));
            if !names.insert(r.name.clone()) {
                return Err(at("duplicate route name"));
            }
            if !r.path.starts_with('/') {
                return Err(at("path must start with '/'"));
            }
            if r.authorizers.is_empty() && !r.public {
                return Err(at(
                    "no authorizer: name one in `authorizers`, or say `public = true` to leave it open on purpose",
                ));
            }
            if !r.authorizers.is_empty() && r.public {
                return Err(at(
                    "`public = true` and `authorizers` contradict each other",
                ));
            }
            let cedar = match (&r.cedar, &r.cedar_file) {
                (Some(_), Some(_)) => return Err(at("`cedar` and `cedar_file` are exclusive")),
                (Some(src), None) => {
                    Some(crate::authz::cedar::CedarPolicy::parse(src).map_err(|e| at(&e))?)
                }
                (None, Some(p)) => {
                    let src = std::fs::read_to_string(p)
                        .map_err(|e| at(&format!("cedar_file {}: {e}", p.display())))?;
                    Some(crate::authz::cedar::CedarPolicy::parse(&src).map_err(|e| at(&e))?)
                }
                (None, None) => None,
            };
            let has_rules = cedar.is_some()
                || !r.scopes_any.is_empty()
                || !r.scopes_all.is_empty()
                || !r.groups_any.is_empty()
                || !r.roles_any.is_empty()
                || !r.claims.is_empty()
                || r.audience.is_some();
            if r.public && r.assertion {
                return Err(at("a public route has no caller to assert"));
            }
            if r.public && has_rules {
                return Err(at("a public route cannot have authorization rules"));
            }
            let mut route_authz = vec![];
            for a in &r.authorizers {
                route_authz.push(
                    authorizers
                        .get(a)
                        .cloned()
                        .ok_or_else(|| at(&format!("unknown authorizer '{a}'")))?,
                );
            }
            let mut targets: Vec<String> = r.upstreams.clone();
            if let Some(u) = &r.upstream {
                targets.insert(0, u.clone());
            }
            if targets.is_empty() {
                return Err(at("no `upstream`"));
            }
            let echo = targets.iter().any(|t| t == ECHO);
            if echo && targets.len() > 1 {
                return Err(at("`builtin:echo` cannot be mixed with other upstreams"));
            }
            let identity = match (&r.upstream_client_cert, &r.upstream_client_key) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                (None, None) => None,
                _ => {
                    return Err(at(
                        "upstream_client_cert and upstream_client_key go together",
                    ));
                }
            };
            let tls_config = crate::upstream_tls::client_config(r.upstream_ca.as_deref(), identity)
                .map_err(|e| at(&format!("upstream TLS: {e}")))?;
            let mut upstreams = vec![];
            for t in targets.into_iter().filter(|t| t != ECHO) {
                let u = url::Url::parse(&t).map_err(|e| at(&format!("upstream '{t}': {e}")))?;
                let https = match u.scheme() {
                    "http" => false,
                    "https" => true,
                    _ => {
                        return Err(at(&format!(
                            "upstream '{t}': the scheme must be http or https"
                        )));
                    }
                };
                let mut target = Target::new(&u)
                    .filter(|_| u.query().is_none() && u.fragment().is_none())
                    .ok_or_else(|| {
                        at(&format!(
                            "upstream '{t}': must be scheme://host[:port][/path]"
                        ))
                    })?;
                if https {
                    let name = crate::upstream_tls::server_name(&u)
                        .ok_or_else(|| at(&format!("upstream '{t}': no name to check")))?;
                    target.tls = Some(crate::upstream_tls::TlsTarget {
                        config: tls_config.clone(),
                        name,
                    });
                }
                upstreams.push(target);
            }
            let mut add_headers = vec![];
            for (k, v) in &r.add_headers {
                let name = http::HeaderName::try_from(k.as_str())
                    .map_err(|_| at(&format!("bad header name '{k}'")))?;
                let value = http::HeaderValue::try_from(v.as_str())
                    .map_err(|_| at(&format!("bad header value for '{k}'")))?;
                if crate::identity_headers::is_identity_header(&name) {
                    return Err(at(&format!("'{k}' is set by the gateway itself")));
                }
                add_headers.push((name, value));
            }
            let mut remove_headers = vec![];
            for k in &r.remove_headers {
                remove_headers.push(
                    http::HeaderName::try_from(k.as_str())
                        .map_err(|_| at(&format!("bad header name '{k}'")))?,
                );
            }
            let rate_limit = match &r.rate_limit {
                Some(rl) => Some(rl.policy(r.public).map_err(|e| at(&e))?),
                None => None,
            };
            if let Some(c) = &r.cors {
                c.validate().map_err(|e| at(&e))?;
            }
            // HTTP/2 to the upstream: `h2c` over plain TCP, `h2` over TLS
            // (offered by ALPN, as gRPC services behind TLS expect).
            let (h2, tls_h2) = match r.upstream_protocol.as_str() {
                "http1" => (false, false),
                "h2c" => (true, false),
                "h2" => (true, true),
                other => {
                    return Err(at(&format!(
                        "upstream_protocol '{other}': use http1, h2c or h2"
                    )));
                }
            };
            if h2 && !tls_h2 && upstreams.iter().any(|t| t.tls.is_some()) {
                return Err(at(
                    "h2c is HTTP/2 over plain TCP: an https:// upstream takes upstream_protocol = \"h2\"",
                ));
            }
            if tls_h2 && upstreams.iter().any(|t| t.tls.is_none()) {
                return Err(at(
                    "h2 is HTTP/2 over TLS: every upstream of the route must be https:// (h2c for plain TCP)",
                ));
            }
            let tls_config = if tls_h2 {
                crate::upstream_tls::with_alpn_h2(&tls_config)
            } else {
                tls_config
            };
            if !(1..=MAX_MS).contains(&r.timeout_ms)
                || !(1..=MAX_MS).contains(&r.connect_timeout_ms)
            {
                return Err(at("timeouts must be between 1 and 86400000 ms (a day)"));
            }
            if r.eject_seconds > MAX_S {
                return Err(at("eject_seconds must be at most 86400 (a day)"));
            }
            routes.push(Arc::new(Route {
                prefix: r.path.trim_end_matches('/').to_owned(),
                name: r.name.as_str().into(),
                cfg: r.clone(),
                health: upstreams.iter().map(|_| TargetHealth::default()).collect(),
                pools: if h2 {
                    vec![]
                } else {
                    upstreams
                        .iter()
                        .map(|t| {
                            Arc::new(crate::h1pool::H1Pool::new(
                                t.connect_addr.clone(),
                                Duration::from_millis(r.connect_timeout_ms),
                                t.tls.clone(),
                            ))
                        })
                        .collect()
                },
                upstreams,
                next: AtomicUsize::new(0),
                authorizers: route_authz,
                timeout: Duration::from_millis(r.timeout_ms),
                connect_timeout: Duration::from_millis(r.connect_timeout_ms),
                add_headers,
                remove_headers,
                rate_limit,
                cedar,
                echo,
                client: crate::proxy::client(
                    Duration::from_millis(r.connect_timeout_ms),
                    h2,
                    tls_config,
                ),
            }));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Snapshot {
            routes,
            authorizers,
            settings: file.gateway.clone(),
            file,
        })
    }

    /// The route for `path`, most specific first.
    pub fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(path))
    }
}

#[cfg(test)]
mod tests;
