//! The request pipeline, composed in one function: route -> authenticate
//! -> revocation -> authorize -> forward -> audit. Each stage lives in its
//! own module; this file only orders them and turns their outcomes into
//! responses with generic bodies (the reason goes to the audit line).

use crate::audit::AuditLine;
use crate::authn::Authorizer;
use crate::authn::Reject;
use crate::authz::rules::{self, Deny};
use crate::config::Route;
use crate::cors::CorsConfig;
use crate::identity::Identity;
use crate::proxy::{self, Body, RequestBody};
use crate::ratelimit::{Decision, KeyKind, Policy};
use crate::server::Gateway;
use crate::{identity_headers, metadata};
use bytes::Bytes;
use gatehouse_core::model::UsagePlan;
use http::{HeaderValue, Request, Response, StatusCode, header};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A small JSON response with the headers every gateway answer gets.
fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_owned(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `x-request-id`.
const REQUEST_ID: http::HeaderName = proxy::X_REQUEST_ID;

/// A new request id: a random per-process prefix and a counter. Unique,
/// not secret, so it costs no random bytes per request (a UUID drew from
/// the DRBG every time). Written into the thread's id block and split off
/// as a shared view: the id, the copies that go upstream and back to the
/// client, and the audit line's all share one allocation per block of
/// about 140 ids, where a `String` and two header values cost three
/// allocations each time.
fn new_request_id() -> HeaderValue {
    use std::cell::RefCell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<[u8; 12]> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static BLOCK: RefCell<bytes::BytesMut> = RefCell::new(bytes::BytesMut::new());
    }
    let prefix = PREFIX.get_or_init(|| {
        let b: [u8; 6] = gatehouse_core::id::bytes();
        let hex = hex16(u64::from_be_bytes([
            0, 0, b[0], b[1], b[2], b[3], b[4], b[5],
        ]));
        std::array::from_fn(|i| hex[4 + i])
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = [b'-'; 29];
    id[..12].copy_from_slice(prefix);
    id[13..].copy_from_slice(&hex16(n));
    let shared = BLOCK.with(|block| {
        let mut block = block.try_borrow_mut().ok()?;
        if block.capacity() - block.len() < id.len() {
            // A new block once the ids of the last one are gone; reused
            // in place when they are.
            block.reserve(4096);
        }
        block.extend_from_slice(&id);
        Some(block.split().freeze())
    });
    let bytes = shared.unwrap_or_else(|| Bytes::copy_from_slice(&id));
    // Hex digits and a dash are always a valid header value.
    HeaderValue::from_maybe_shared(bytes).unwrap_or(HeaderValue::from_static("-"))
}

/// `n` as 16 lowercase hex digits, by hand: `format!("{n:016x}")` cost
/// about 1 700 instructions a request id, 5 % of a proxied request
/// (callgrind).
fn hex16(n: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    std::array::from_fn(|i| HEX[(n >> (60 - 4 * i)) as usize & 15])
}

/// A request id: the caller's if it is short and plain, else a new one.
fn request_id(req: &Request<RequestBody>) -> HeaderValue {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty()
                && v.len() <= 128
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        })
        .cloned()
        .unwrap_or_else(new_request_id)
}

fn www_authenticate(
    gw: &Gateway,
    route: &Route,
    error: Option<(&str, Option<&str>)>,
) -> HeaderValue {
    let mut v = format!(
        "Bearer realm=\"gatehouse\", resource_metadata=\"{}\"",
        metadata::url_for(&gw.public_url, route)
    );
    if let Some((code, scope)) = error {
        v.push_str(&format!(", error=\"{code}\""));
        if let Some(s) = scope {
            v.push_str(&format!(", scope=\"{s}\""));
        }
    }
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"gatehouse\""))
}

/// A refusal with its RFC 6750 challenge: 401 for a missing or unusable
/// token (`invalid_token` when one was presented), 403
/// `insufficient_scope` naming the scopes a step-up would need.
fn challenge(
    gw: &Gateway,
    route: &Route,
    status: StatusCode,
    error: Option<(&str, Option<&str>)>,
) -> Response<Body> {
    let mut r = if status == StatusCode::UNAUTHORIZED {
        json(status, "{\"message\":\"Unauthorized\"}")
    } else {
        json(status, "{\"message\":\"Forbidden\"}")
    };
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, www_authenticate(gw, route, error));
    r
}

/// A 401 for a DPoP failure (RFC 9449 §7.1): the `DPoP` challenge with
/// the algorithms proofs may use, beside the usual `Bearer` one.
fn dpop_challenge(gw: &Gateway, route: &Route, error: Option<&str>) -> Response<Body> {
    let mut r = challenge(gw, route, StatusCode::UNAUTHORIZED, None);
    let error = error
        .map(|e| format!(", error=\"{e}\""))
        .unwrap_or_default();
    let v = format!(
        "DPoP algs=\"{}\"{error}, resource_metadata=\"{}\"",
        gatehouse_jose::dpop::ALGORITHMS.join(" "),
        metadata::url_for(&gw.public_url, route)
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The connection a request arrived on, with its address already in
/// header form: formatting an IP costs more than the rest of
/// `X-Forwarded-For` handling, so it is done once per connection.
#[derive(Clone)]
pub struct Peer {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// `addr`'s IP as text.
    pub ip_text: HeaderValue,
    /// Whether `addr` is one of the gateway's trusted proxies, decided once
    /// per connection: only then is the caller read from its forwarding
    /// header, and its `Forwarded` / `X-Real-IP` passed on.
    pub via_trusted_proxy: bool,
    /// `https` on a TLS listener, else `http`: the upstream's
    /// `X-Forwarded-Proto`, so that the links it builds keep the scheme.
    pub proto: &'static str,
    /// What the connection's earlier requests leave for the next.
    pub memo: Arc<ConnectionMemo>,
}

/// What a connection remembers of its last request: a client sends the
/// same token and `Host` with each one, and mostly the same request.
#[derive(Default)]
pub struct ConnectionMemo {
    /// The last bearer token (see [`crate::authn::jwt::TokenMemo`]).
    pub tokens: crate::authn::jwt::TokenMemo,
    /// The last Cedar decision (see [`crate::authz::cedar::Memo`]).
    pub cedar: crate::authz::cedar::Memo,
    /// The last `Host` found valid (a copy: kept with its request's head,
    /// it would keep the whole head allocated).
    host: std::sync::Mutex<Option<HeaderValue>>,
}

impl ConnectionMemo {
    /// [`crate::server::host_is_valid`], the one `Host` answered from
    /// memory when it is the last valid one: parsing it as an authority
    /// was 2 % of a proxied request's instructions.
    fn host_is_valid(&self, version: http::Version, headers: &http::HeaderMap) -> bool {
        crate::server::host_is_valid_by(version, headers, |h| {
            // An HTTP/2 connection's concurrent streams do not wait for it.
            let Ok(mut last) = self.host.try_lock() else {
                return crate::server::is_authority(h);
            };
            if last.as_ref() == Some(h) {
                return true;
            }
            let valid = crate::server::is_authority(h);
            if valid {
                *last = HeaderValue::from_bytes(h.as_bytes()).ok();
            }
            valid
        })
    }
}

impl Peer {
    /// Describes a freshly accepted connection.
    pub fn new(
        addr: SocketAddr,
        tls: bool,
        trusted: &gatehouse_core::client_ip::TrustedProxies,
    ) -> Peer {
        Peer {
            addr,
            ip_text: ip_header(addr.ip()),
            via_trusted_proxy: trusted.trusts(addr.ip()),
            proto: if tls { "https" } else { "http" },
            memo: Arc::default(),
        }
    }
}

fn ip_header(ip: std::net::IpAddr) -> HeaderValue {
    // An IP address's text is always a valid header value.
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Handles one request.
pub async fn handle(gw: Arc<Gateway>, req: Request<RequestBody>, peer: Peer) -> Response<Body> {
    let remote = peer.addr;
    let started = Instant::now();
    let snap = gw.snapshot.load_full();
    let rid = request_id(&req);
    let client_ip = if !peer.via_trusted_proxy {
        remote.ip()
    } else {
        let xff = req.headers().get_all(gw.trusted_proxies.header().name());
        gw.trusted_proxies
            .client_ip(remote.ip(), xff.iter().filter_map(|v| v.to_str().ok()))
    };
    let client_ip_text = if client_ip == remote.ip() {
        peer.ip_text.clone()
    } else {
        ip_header(client_ip)
    };
    let mut audit = Unanswered {
        gw: &gw,
        started,
        line: AuditLine::new(
            gatehouse_core::time::now_millis(),
            rid.clone(),
            req.method().clone(),
            req.uri().clone(),
            (client_ip, client_ip_text),
        ),
        answered: false,
    };
    let line = &mut audit.line;
    let mut resp = if peer.memo.host_is_valid(req.version(), req.headers())
        && crate::server::target_is_valid(req.uri())
    {
        run(&gw, &snap, req, &peer, Some(&rid), line).await
    } else {
        line.decision = "error";
        line.reason = Some("missing, repeated or malformed Host or target".into());
        json(StatusCode::BAD_REQUEST, "{\"message\":\"Bad Request\"}")
    };
    resp.headers_mut().insert(REQUEST_ID, rid);
    line.status = resp.status().as_u16();
    audit.finish();
    resp
}

/// A request's audit line until it is written. A request dropped before
/// its answer (the client went away, and the server stopped waiting for
/// the upstream on its behalf) is still written, with nginx's status 499
/// "client closed request": every request leaves a line.
struct Unanswered<'a> {
    gw: &'a Gateway,
    started: Instant,
    line: AuditLine,
    answered: bool,
}

impl Unanswered<'_> {
    /// Writes the line and counts it; the answer's status is set.
    fn finish(&mut self) {
        self.answered = true;
        let line = &mut self.line;
        line.total_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.gw.metrics.observe(
            line.route.as_deref(),
            line.status,
            line.decision,
            line.total_ms,
        );
        self.gw.audit.record(line);
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.line.status = 499;
            self.line.reason = Some("client closed the connection before the answer".into());
            self.finish();
        }
    }
}

async fn run(
    gw: &Gateway,
    snap: &crate::config::Snapshot,
    mut req: Request<RequestBody>,
    peer: &Peer,
    rid: Option<&HeaderValue>,
    line: &mut AuditLine,
) -> Response<Body> {
    match crate::path::normalize(req.uri().path()) {
        Ok(None) => {}
        Ok(Some(normal)) => {
            if with_path(req.uri_mut(), &normal).is_err() {
                line.decision = "error";
                line.reason = Some("unmappable path".into());
                return json(StatusCode::BAD_REQUEST, "{\"message\":\"Bad Request\"}");
            }
        }
        Err(why) => {
            line.decision = "error";
            line.reason = Some(why.reason().into());
            return json(StatusCode::BAD_REQUEST, "{\"message\":\"Bad Request\"}");
        }
    }
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix(metadata::PATH) {
        line.decision = "public";
        return match metadata::document(snap, &gw.public_url, rest) {
            Some(doc) => json_owned(StatusCode::OK, doc.to_string()),
            None => json(StatusCode::NOT_FOUND, "{\"message\":\"Not Found\"}"),
        };
    }
    if path == "/.well-known/jwks.json" {
        line.decision = "public";
        return json_owned(StatusCode::OK, gw.asserter.jwks().to_owned());
    }
    if path == "/metrics" && gw.serve_metrics {
        line.decision = "public";
        return json_owned(StatusCode::OK, gw.metrics.render(snap));
    }
    let Some(route) = snap.route(path).cloned() else {
        line.decision = "no_route";
        return json(StatusCode::NOT_FOUND, "{\"message\":\"Not Found\"}");
    };
    line.route = Some(route.name.clone());
    let Some(cors) = &route.cfg.cors else {
        return run_route(gw, route, req, peer, rid, line).await;
    };
    if CorsConfig::is_preflight(req.method(), req.headers()) {
        line.decision = "public";
        line.rule = Some("cors_preflight".into());
        return match cors.preflight(req.headers()) {
            Some(h) => {
                let mut r = Response::new(Body::full(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut().extend(h);
                r
            }
            None => {
                line.reason = Some("origin, method or header not allowed".into());
                json(StatusCode::FORBIDDEN, "{\"message\":\"Forbidden\"}")
            }
        };
    }
    let allow = cors.response_headers(req.headers());
    let mut resp = run_route(gw, route, req, peer, rid, line).await;
    // `Vary: Origin` joins whatever the upstream varies by.
    crate::h1wire::set_fields(resp.headers_mut(), allow);
    resp
}

/// Replaces `uri`'s path, keeping its query (and scheme and authority in
/// absolute form).
fn with_path(uri: &mut http::Uri, path: &str) -> Result<(), http::Error> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(pq.parse()?);
    *uri = http::Uri::from_parts(parts)?;
    Ok(())
}

fn rate_headers(h: &mut http::HeaderMap, p: &Policy, d: &Decision) {
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("ratelimit-limit", p.burst.to_string());
    put("ratelimit-remaining", d.remaining.to_string());
    put("ratelimit-reset", d.reset_s.to_string());
    put("ratelimit-policy", format!("{};w={}", p.rate, p.window_s));
}

/// A JWT authorizer's verdict on the token a request presented: the token
/// itself, then its binding (DPoP). A valid token refused for want of its
/// proof is named in the audit line: a copied token is how that happens.
async fn authenticate_jwt(
    gw: &Gateway,
    j: &crate::authn::jwt::JwtAuthorizer,
    t: crate::authn::jwt::Presented<'_>,
    req: &Request<RequestBody>,
    peer: &Peer,
    line: &mut AuditLine,
) -> Result<Arc<Identity>, Reject> {
    let id = j.authenticate(t.token, Some(&peer.memo.tokens)).await?;
    let bound = crate::authn::dpop::check(
        &id,
        &t,
        req.headers(),
        req.method(),
        || format!("{}{}", gw.public_url, req.uri().path()),
        j.config().require_dpop,
        &gw.dpop_replay,
    );
    match bound {
        Ok(()) => Ok(id),
        Err(r) => {
            line.identity = Some(id);
            Err(r)
        }
    }
}

/// Authenticate, authorize, throttle and forward, for a matched route.
async fn run_route(
    gw: &Gateway,
    route: Arc<Route>,
    mut req: Request<RequestBody>,
    peer: &Peer,
    rid: Option<&HeaderValue>,
    line: &mut AuditLine,
) -> Response<Body> {
    // Authenticate: the first authorizer that accepts wins.
    let mut plan: Option<(String, UsagePlan)> = None;
    let identity: Option<Arc<Identity>> = if route.cfg.public {
        line.decision = "public";
        None
    } else {
        let mut presented = false;
        let mut last = Reject::Missing;
        let mut found = None;
        for a in &route.authorizers {
            let outcome = match a.as_ref() {
                Authorizer::Jwt(j) => {
                    let Some(token) = j.token(req.headers()) else {
                        continue;
                    };
                    presented = true;
                    // A cookie the browser attached to another site's
                    // unsafe request says nothing of the user's intent.
                    if j.reads_cookie()
                        && crate::cross_site::untrusted_unsafe(
                            req.method(),
                            req.uri(),
                            req.headers(),
                            route.cfg.cors.as_ref(),
                        )
                    {
                        last = Reject::Invalid("token cookie on a cross-site unsafe request");
                        continue;
                    }
                    match token {
                        Ok(t) => authenticate_jwt(gw, j, t, &req, peer, line)
                            .await
                            .map(|id| (id, None)),
                        Err(r) => Err(r),
                    }
                }
                Authorizer::ApiKey(k) => {
                    let Some(key) = k.token(req.headers()) else {
                        continue;
                    };
                    presented = true;
                    match key {
                        Ok(key) => k
                            .authenticate(key)
                            .await
                            .map(|c| (c.0.clone(), Some((c.1.clone(), c.2.clone())))),
                        Err(r) => Err(r),
                    }
                }
            };
            match outcome {
                Ok((id, p)) => {
                    found = Some(id);
                    plan = p;
                    break;
                }
                Err(r) => last = r,
            }
        }
        let Some(id) = found else {
            line.decision = "unauthenticated";
            line.reason = Some(last.reason().into());
            if let Reject::Dpop { error, .. } = last {
                return dpop_challenge(gw, &route, Some(error));
            }
            // No token where one must be DPoP-bound: say so (RFC 9449 §7.1),
            // so that a client knows to get one.
            if !presented && route.requires_dpop() {
                return dpop_challenge(gw, &route, None);
            }
            let err = presented.then_some(("invalid_token", None));
            return challenge(gw, &route, StatusCode::UNAUTHORIZED, err);
        };
        line.identity = Some(id.clone());
        // Gatehouse's own tokens: revoked sessions, tokens and users are
        // refused even while the JWT itself is still valid.
        if let (Some(rev), Some(prefix)) = (&gw.revocations, &gw.own_issuer_prefix)
            && (id.issuer.starts_with(prefix.as_str()) || id.issuer.starts_with("apikey:"))
            && rev.is_revoked(&gatehouse_core::revocation::TokenFacts {
                issuer: &id.issuer,
                client_id: id.client_id.as_deref(),
                sid: id.sid.as_deref(),
                jti: id.jti.as_deref(),
                sub: &id.subject,
                iat: id.iat,
            })
        {
            line.decision = "unauthenticated";
            line.reason = Some("token revoked".into());
            let err = Some(("invalid_token", None));
            return challenge(gw, &route, StatusCode::UNAUTHORIZED, err);
        }
        match rules::check(&route.cfg, &id) {
            Ok(rule) => {
                line.decision = "allow";
                line.rule = Some(rule.into());
                if let Some(policy) = &route.cedar {
                    let verdict = policy.allows_with_memo(
                        &route.cfg.name,
                        req.method().as_str(),
                        req.uri().path(),
                        &id,
                        // The request's arrival second, as for the quota.
                        (line.client_ip, line.ts / 1000),
                        Some(&peer.memo.cedar),
                    );
                    line.rule = Some("cedar".into());
                    if !matches!(verdict, Ok(true)) {
                        // An evaluation error denies too (fail closed).
                        line.decision = "deny";
                        if let Err(e) = verdict {
                            line.reason = Some(format!("cedar: {e}").into());
                        }
                        return json(StatusCode::FORBIDDEN, "{\"message\":\"Forbidden\"}");
                    }
                }
            }
            Err(deny) => {
                line.decision = "deny";
                line.rule = Some(deny.rule().into());
                return match &deny {
                    Deny::Audience => {
                        line.reason = Some("token not issued for this resource".into());
                        let err = Some(("invalid_token", None));
                        challenge(gw, &route, StatusCode::UNAUTHORIZED, err)
                    }
                    Deny::Scope { needed, .. } => {
                        let scope = needed.join(" ");
                        let err = Some(("insufficient_scope", Some(scope.as_str())));
                        challenge(gw, &route, StatusCode::FORBIDDEN, err)
                    }
                    _ => json(StatusCode::FORBIDDEN, "{\"message\":\"Forbidden\"}"),
                };
            }
        }
        Some(id)
    };

    // Usage plan of an API key: rate, then daily/monthly quota.
    if let Some((key_id, p)) = &plan {
        if let Some(rate) = p.rate_per_second {
            let cfg = crate::ratelimit::RateLimitConfig {
                rate,
                per: "second".into(),
                burst: p.burst,
                key: Some("client".into()),
            };
            if let Ok(policy) = cfg.policy(false) {
                let d = gw.limiter.check(
                    &format!("plan\u{0}{key_id}"),
                    &policy,
                    gatehouse_core::time::now_nanos(),
                );
                if !d.allowed {
                    line.decision = "throttled";
                    line.rule = Some("usage_plan.rate".into());
                    let mut r = json(
                        StatusCode::TOO_MANY_REQUESTS,
                        "{\"message\":\"Too Many Requests\"}",
                    );
                    rate_headers(r.headers_mut(), &policy, &d);
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_s));
                    return r;
                }
            }
        }
        if let Err(wait) =
            gw.quotas
                .take(key_id, p.quota_per_day, p.quota_per_month, line.ts / 1000)
        {
            line.decision = "throttled";
            line.rule = Some("usage_plan.quota".into());
            let mut r = json(
                StatusCode::TOO_MANY_REQUESTS,
                "{\"message\":\"Limit Exceeded\"}",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return r;
        }
    }

    // Throttle.
    let mut limited = None;
    if let Some(p) = &route.rate_limit {
        let who = match (p.key, &identity) {
            (KeyKind::Subject, Some(id)) => id.subject.clone(),
            (KeyKind::Client, Some(id)) => {
                id.client_id.clone().unwrap_or_else(|| id.subject.clone())
            }
            _ => line.client_ip_text().to_owned(),
        };
        let key = format!("{}\u{0}{who}", route.cfg.name);
        let d = gw.limiter.check(&key, p, gatehouse_core::time::now_nanos());
        if !d.allowed {
            line.decision = "throttled";
            line.rule = Some("rate_limit".into());
            let mut r = json(
                StatusCode::TOO_MANY_REQUESTS,
                "{\"message\":\"Too Many Requests\"}",
            );
            rate_headers(r.headers_mut(), p, &d);
            if let Ok(v) = HeaderValue::from_str(&d.retry_after_s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        limited = Some((*p, d));
    }

    // Forward.
    // An upgrade (WebSocket and others): keep the intent across the
    // hop-by-hop stripping, and take the client side of the connection.
    let upgrade = proxy::upgrade_protocol(req.headers());
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // The target's authority where it has one (an absolute-form target,
    // HTTP/2's `:authority`): RFC 9112 §3.2.2 has a server ignore `Host`
    // then, and so must the `X-Forwarded-Host` the upstream builds links
    // from.
    let original_host = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| parts.headers.get(header::HOST).cloned());
    let id = identity.as_deref();
    upstream_headers(gw, &route, &mut parts.headers, id, peer.via_trusted_proxy);
    // Host, X-Forwarded-*, X-Request-Id: for the target's own connections
    // written into the head with the identity headers; set in the header
    // map for everything else.
    let forwarding = |upstream_host| proxy::Forwarding {
        upstream_host,
        client_ip: peer.ip_text.clone(),
        original_host,
        proto: peer.proto,
        request_id: rid.cloned(),
    };
    if route.echo {
        proxy::set_in(&mut parts.headers, forwarding(None), id);
        let mut r = echo(&route, &parts, line);
        if let Some((p, d)) = &limited {
            rate_headers(r.headers_mut(), p, d);
        }
        return r;
    }
    let target = proxy::pick(&route, line.ts).unwrap_or(0);
    // Plain requests ride the target's own connections; upgrades and h2c
    // go through hyper-util's client.
    let pool = route.pools.get(target).filter(|_| client_upgrade.is_none());
    let (uri, up) = match proxy::target_uri(&route, target, &parts.uri, pool.is_some()) {
        Ok(v) => v,
        Err(_) => {
            line.decision = "error";
            line.reason = Some("unmappable path".into());
            return json(StatusCode::BAD_REQUEST, "{\"message\":\"Bad Request\"}");
        }
    };
    let forwarding = forwarding(Some(up.host.clone()));
    line.upstream = Some(up.authority.clone());
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let up_start = Instant::now();
    if let Some(proto) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto.clone());
    }
    let result = match (client_upgrade, pool) {
        (None, Some(pool)) => {
            let req = Request::from_parts(parts, body);
            proxy::send_pooled(pool, &route, req, (forwarding, id), up_start).await
        }
        (client_upgrade, _) => {
            proxy::set_in(&mut parts.headers, forwarding, id);
            let req = Request::from_parts(parts, body);
            match client_upgrade {
                Some(client_side) => {
                    proxy::send_upgrade(&route.client, &route, req, client_side).await
                }
                None => proxy::send(&route.client, &route, req).await,
            }
        }
    };
    line.upstream_ms = Some(up_start.elapsed().as_secs_f64() * 1000.0);
    let healthy = match &result {
        Ok(r) => !matches!(r.status().as_u16(), 502..=504),
        Err(e) => e.is_callers(),
    };
    if let Some(h) = route.health.get(target)
        && h.record(
            healthy,
            route.cfg.eject_after,
            route.cfg.eject_seconds,
            gatehouse_core::time::now_millis,
        )
    {
        tracing::warn!(route = %route.cfg.name, upstream = %up.authority, "upstream target ejected after consecutive failures");
    }
    match result {
        Ok(mut r) => {
            if let Some((p, d)) = &limited {
                rate_headers(r.headers_mut(), p, d);
            }
            r
        }
        Err(e) => {
            let (status, body, reason) = e.answer();
            line.decision = "error";
            line.reason = Some(reason);
            json(status, body)
        }
    }
}

/// What every upstream receives, echo included: hop-by-hop and incoming
/// `X-Gatehouse-*` headers removed, the caller's credential removed unless
/// the route forwards it, the route's header edits, and the signed
/// assertion when the route asks for it. The forwarding and identity
/// headers come after, from [`proxy::Forwarding`] and the identity
/// (written into the head by the target's pool, or [`proxy::set_in`]).
///
/// What the caller may not say to the upstream (forged identity,
/// forwarding fields unless a trusted proxy sent them, path and method
/// overrides) goes in one pass over its headers: [`identity_headers::strip`].
fn upstream_headers(
    gw: &Gateway,
    route: &Route,
    h: &mut http::HeaderMap,
    identity: Option<&Identity>,
    via_trusted_proxy: bool,
) {
    proxy::strip_hop_by_hop(h);
    identity_headers::strip(h, via_trusted_proxy);
    if !route.cfg.forward_token {
        if identity.is_some() {
            h.remove(header::AUTHORIZATION);
            h.remove(crate::authn::dpop::HEADER);
        }
        for a in &route.authorizers {
            match a.as_ref() {
                Authorizer::ApiKey(k) => {
                    h.remove(&k.header);
                }
                Authorizer::Jwt(j) => j.remove_own_slot(h),
            }
        }
    }
    for name in &route.remove_headers {
        h.remove(name);
    }
    for (k, v) in &route.add_headers {
        h.insert(k.clone(), v.clone());
    }
    if let Some(id) = identity
        && route.cfg.assertion
    {
        let aud = metadata::resource(&gw.public_url, route);
        if let Some(v) = gw
            .asserter
            .assert(&gw.public_url, &aud, id)
            .and_then(|a| HeaderValue::from_str(&a).ok())
        {
            h.insert(identity_headers::ASSERTION, v);
        }
    }
}

/// The built-in echo upstream: answers with the request line and the
/// identity headers an upstream would receive (prepared by
/// [`upstream_headers`], as for a real upstream). The quickstart uses it to
/// show what upstreams get.
fn echo(route: &Route, parts: &http::request::Parts, line: &mut AuditLine) -> Response<Body> {
    line.upstream = Some(crate::config::ECHO.into());
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .filter(|(k, _)| identity_headers::is_identity_header(k))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::json!(v.to_str().unwrap_or_default()),
            )
        })
        .collect();
    let body = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "route": route.cfg.name,
        "identity_headers": headers,
        "authorization_forwarded": parts.headers.contains_key(header::AUTHORIZATION),
    });
    json_owned(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_remembered_host_stands_only_for_itself_alone() {
        let memo = super::ConnectionMemo::default();
        let v11 = http::Version::HTTP_11;
        let hosts = |values: &[&'static str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(http::header::HOST, http::HeaderValue::from_static(v));
            }
            h
        };
        for _ in 0..2 {
            assert!(memo.host_is_valid(v11, &hosts(&["a.example:8000"])));
            // Twice the remembered one, or none, is still refused.
            assert!(!memo.host_is_valid(v11, &hosts(&["a.example:8000", "a.example:8000"])));
            assert!(!memo.host_is_valid(v11, &hosts(&[])));
            assert!(memo.host_is_valid(http::Version::HTTP_10, &hosts(&[])));
            assert!(!memo.host_is_valid(v11, &hosts(&["user@a.example:8000"])));
            assert!(!memo.host_is_valid(v11, &hosts(&["a b"])));
        }
        let last = memo.host.lock().expect("memo").clone();
        assert_eq!(
            last.as_ref().map(|v| v.as_bytes()),
            Some(&b"a.example:8000"[..])
        );
    }

    #[test]
    fn new_request_ids_are_the_prefix_and_a_counter_in_hex() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        let (a, b) = (a.to_str().expect("text"), b.to_str().expect("text"));
        let (pa, na) = a.split_once('-').expect("prefix-counter");
        let (pb, nb) = b.split_once('-').expect("prefix-counter");
        assert_eq!((pa.len(), na.len()), (12, 16), "{a}");
        assert_eq!(pa, pb);
        assert!(
            a.bytes()
                .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let (x, y) = (
            u64::from_str_radix(na, 16).expect("hex"),
            u64::from_str_radix(nb, 16).expect("hex"),
        );
        assert!(y > x, "{a} then {b}");
        // Over several blocks, every id kept intact and its own.
        let ids: Vec<http::HeaderValue> = (0..400).map(|_| super::new_request_id()).collect();
        let counters: Vec<u64> = ids
            .iter()
            .map(|v| {
                let (p, n) = v
                    .to_str()
                    .expect("text")
                    .split_once('-')
                    .expect("prefix-counter");
                assert_eq!(p, pa);
                u64::from_str_radix(n, 16).expect("hex")
            })
            .collect();
        assert!(counters.windows(2).all(|w| w[1] > w[0]), "{counters:?}");
    }

    #[test]
    fn hex16_is_format_016x() {
        for n in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX, 0xf0] {
            assert_eq!(super::hex16(n), format!("{n:016x}").as_bytes(), "{n}");
        }
    }
}
