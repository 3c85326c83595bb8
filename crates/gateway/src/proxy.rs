//! Forwarding to the upstream: target choice (round robin), path
//! rewriting, hop-by-hop and identity header hygiene, `X-Forwarded-*`,
//! streaming bodies both ways (never buffered), and timeouts. Errors say
//! which side failed so the gateway answers 502/504, never a 500.

use crate::config::Route;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use crate::body::{Body, BoxError};

/// A request's body: hyper's, or none at all for a request our own
/// HTTP/1 server path read (`h1serve.rs`), which only takes requests
/// without one.
pub enum RequestBody {
    Hyper(crate::unread_body::Tracked<Incoming>),
    Empty,
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => std::pin::Pin::new(b).poll_frame(cx),
            RequestBody::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::Empty => hyper::body::SizeHint::with_exact(0),
        }
    }
}

impl RequestBody {
    /// How far the caller's body has come (None without one).
    pub fn progress(&self) -> Option<std::sync::Arc<crate::unread_body::Progress>> {
        match self {
            RequestBody::Hyper(b) => b.progress(),
            RequestBody::Empty => None,
        }
    }
}

/// Whose lateness ended an exchange ([`within`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Late {
    /// No answer within the timeout after the body was whole (or while
    /// the upstream was not reading it): 504, counted against the target.
    Upstream,
    /// The caller's body stopped coming for the timeout: 408, the
    /// caller's.
    Caller,
}

/// Runs an upstream exchange under the route's `timeout`, counted from the
/// caller's last byte of body rather than from `start` (Envoy's rule: an
/// upload longer than the timeout is not cut off while it moves). Without
/// a body it is `start + timeout`. Why the body's stalls are told apart: a
/// caller who stops sending would otherwise get the target ejected.
pub async fn within<F: Future>(
    exchange: F,
    (start, body): (
        tokio::time::Instant,
        Option<std::sync::Arc<crate::unread_body::Progress>>,
    ),
    timeout: Duration,
) -> Result<F::Output, Late> {
    let Some(body) = body else {
        return tokio::time::timeout_at(start + timeout, exchange)
            .await
            .map_err(|_| Late::Upstream);
    };
    tokio::pin!(exchange);
    loop {
        let seen = body.state();
        let until = tokio::time::Instant::from_std(seen.last).max(start) + timeout;
        tokio::select! {
            biased;
            out = &mut exchange => return Ok(out),
            () = tokio::time::sleep_until(until) => {}
        }
        let now = body.state();
        if now.last == seen.last {
            return Err(if !now.done && now.starved {
                Late::Caller
            } else {
                Late::Upstream
            });
        }
    }
}

/// The pooled upstream client (upgrades and h2c): plain TCP for `http://`
/// targets, TLS with the route's configuration for `https://` ones.
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>;

/// Builds a pooled client with a connect timeout: HTTP/1.1, or HTTP/2 with
/// prior knowledge (`h2c`, what gRPC upstreams speak).
pub fn client(
    connect_timeout: Duration,
    h2c: bool,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> UpstreamClient {
    let mut c = HttpConnector::new();
    c.set_connect_timeout(Some(connect_timeout));
    c.set_nodelay(true);
    // `https://` URIs reach the TCP connector through the TLS one.
    c.enforce_http(false);
    let c = hyper_rustls::HttpsConnector::from((c, tls));
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256);
    if h2c {
        b.http2_only(true).timer(hyper_util::rt::TokioTimer::new());
    }
    b.build(c)
}

/// Why forwarding failed.
#[derive(Debug)]
pub enum ProxyError {
    /// Could not connect or the upstream broke the exchange (502).
    Upstream(String),
    /// The upstream took longer than the route's timeout (504).
    Timeout,
    /// The caller's body stopped coming for the route's timeout (408).
    SlowBody,
    /// The request could not be mapped to the upstream, or its body broke
    /// on the way (400).
    BadRequest(String),
}

impl ProxyError {
    /// Whether the caller caused it (a broken or stalled body, a path
    /// that cannot be mapped): such failures count against no target.
    pub fn is_callers(&self) -> bool {
        matches!(self, ProxyError::BadRequest(_) | ProxyError::SlowBody)
    }

    /// The answer the caller gets (status and generic body; the details
    /// go to the audit line) and the audit reason.
    pub fn answer(self) -> (http::StatusCode, &'static str, Cow<'static, str>) {
        use http::StatusCode;
        match self {
            ProxyError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "{\"message\":\"Gateway Timeout\"}",
                "upstream timeout".into(),
            ),
            ProxyError::SlowBody => (
                StatusCode::REQUEST_TIMEOUT,
                "{\"message\":\"Request Timeout\"}",
                "request body stalled".into(),
            ),
            ProxyError::Upstream(e) => (
                StatusCode::BAD_GATEWAY,
                "{\"message\":\"Bad Gateway\"}",
                format!("upstream: {e}").into(),
            ),
            ProxyError::BadRequest(e) => (
                StatusCode::BAD_REQUEST,
                "{\"message\":\"Bad Request\"}",
                e.into(),
            ),
        }
    }
}

pub(crate) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
/// Where `TE` is in [`HOP_BY_HOP`] (its value is read only when present).
const TE_AT: usize = 5;

/// `x-forwarded-for`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including those named in `Connection`.
/// `TE: trailers` survives: HTTP/2 allows exactly that value, and gRPC
/// servers use it to detect proxies that would drop trailers.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names finds which hop-by-hop ones are there (most
    // requests carry none; most answers only `Connection`): only those are
    // looked up and removed.
    let mut present = 0u32;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    let te_trailers =
        present & (1 << TE_AT) != 0 && crate::h1wire::lists(h, header::TE, "trailers");
    let listed: Vec<HeaderName> = crate::h1wire::list(h, header::CONNECTION)
        // The usual values name no header (or one removed below anyway):
        // the common `Connection: keep-alive` costs no parse, no allocation.
        .filter(|n| {
            !n.eq_ignore_ascii_case("keep-alive")
                && !n.eq_ignore_ascii_case("close")
                && !n.eq_ignore_ascii_case("upgrade")
        })
        .filter_map(|n| HeaderName::try_from(n).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Picks the next target in rotation (round robin over the ones not
/// ejected at `now_ms`, the request's arrival; if all are ejected, the next
/// one anyway rather than none).
pub fn pick(route: &Route, now_ms: i64) -> Option<usize> {
    let n = route.upstreams.len();
    if n == 0 {
        return None;
    }
    let start = route.next.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|i| route.health[*i].available(now_ms))
        .or(Some(start % n))
}

/// The upstream URI for a request path + query on `route`'s target `idx`
/// (absolute, or origin-form for a connection of our own), and that target.
pub fn target_uri<'r>(
    route: &'r Route,
    idx: usize,
    uri: &Uri,
    origin_form: bool,
) -> Result<(Uri, &'r crate::config::Target), ProxyError> {
    let target = route
        .upstreams
        .get(idx)
        .ok_or_else(|| ProxyError::BadRequest("route has no upstream".into()))?;
    let path = uri.path();
    let rest = if route.cfg.strip_prefix {
        let r = route.rest(path).unwrap_or(path);
        // Path parameters of the prefix's last segment (`/api;v=1/x`, which
        // Tomcat reads as `/api/x`, and which matched the route for that
        // reason) go with the prefix.
        let r = match r.strip_prefix(';') {
            Some(params) => params.find('/').map_or("", |i| &params[i..]),
            None => r,
        };
        if r.is_empty() { "/" } else { r }
    } else {
        path
    };
    let query = uri.query();
    let base = if origin_form {
        &target.base[target.origin_at..]
    } else {
        &target.base
    };
    let mut s = String::with_capacity(base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    s.push_str(base);
    s.push_str(rest);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    let u: Uri = s
        .parse()
        .map_err(|_| ProxyError::BadRequest("unmappable path".into()))?;
    Ok((u, target))
}

/// One upstream exchange under the route's timeout, errors sorted by side.
async fn request(
    client: &UpstreamClient,
    route: &Route,
    req: Request<RequestBody>,
) -> Result<Response<Incoming>, ProxyError> {
    let body = (tokio::time::Instant::now(), req.body().progress());
    match within(client.request(req), body, route.timeout).await {
        Err(Late::Upstream) => Err(ProxyError::Timeout),
        Err(Late::Caller) => Err(ProxyError::SlowBody),
        Ok(Err(e)) => Err(exchange_failed(&e)),
        Ok(Ok(r)) => Ok(r),
    }
}

/// Whose fault a failed exchange with hyper's client was. A request body
/// that broke while it was being sent (a malformed chunk, a connection
/// closed halfway) is the caller's: hyper reports it as an error of the
/// body it was streaming, caused by the caller's connection's own
/// (hyper) error. That is a 400, as nginx answers, and no mark against
/// the target: else a caller could get every target ejected with a few
/// broken uploads. Anything else is the upstream's (502).
fn exchange_failed(e: &(dyn std::error::Error + 'static)) -> ProxyError {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_user()
            && let Some(cause) = std::error::Error::source(h)
            && cause.downcast_ref::<hyper::Error>().is_some()
        {
            let detail = cause.source().map(|c| format!(": {c}")).unwrap_or_default();
            return ProxyError::BadRequest(format!("request body: {cause}{detail}"));
        }
        next = err.source();
    }
    ProxyError::Upstream(e.to_string())
}

/// The upstream's answer as the gateway's, hop-by-hop headers removed
/// (hyper's client's answers; the bodyless path's lose theirs while parsed,
/// see [`crate::h1wire::UpstreamHeaders`]).
pub(crate) fn relay<B>(resp: Response<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::boxed(body))
}

/// Sends `req` (already rewritten, origin-form) on one of the target's
/// own kept-alive connections, with the route's timeout (kept by the pool,
/// which keeps a timer per connection), and the
/// forwarding and identity headers (which the pool adds, see
/// [`crate::h1pool::H1Pool::send`]).
pub async fn send_pooled(
    pool: &std::sync::Arc<crate::h1pool::H1Pool>,
    route: &Route,
    req: Request<RequestBody>,
    added: (Forwarding, Option<&crate::identity::Identity>),
    started: std::time::Instant,
) -> Result<Response<Body>, ProxyError> {
    use crate::h1pool::PoolError;
    match pool.send(req, added, (started, route.timeout)).await {
        Err(PoolError::Timeout | PoolError::ConnectTimeout(_)) => Err(ProxyError::Timeout),
        Err(PoolError::SlowBody) => Err(ProxyError::SlowBody),
        Err(PoolError::Http(e)) => Err(exchange_failed(&e)),
        Err(e) => Err(ProxyError::Upstream(e.to_string())),
        Ok(resp) => Ok(resp),
    }
}

/// Sends `req` (already rewritten) upstream with the route's timeout.
pub async fn send(
    client: &UpstreamClient,
    route: &Route,
    req: Request<RequestBody>,
) -> Result<Response<Body>, ProxyError> {
    request(client, route, req).await.map(relay)
}

/// What the gateway sets on every proxied request, whatever the caller
/// sent: `Host` (the upstream's), `X-Forwarded-For` (the caller's address
/// appended), `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Request-Id`.
/// Set into the header map for requests that go through hyper
/// ([`Forwarding::apply`]), written straight into the head on the raw
/// path ([`Forwarding::write`]): five header-map inserts were an eighth of
/// a request's instructions.
pub struct Forwarding {
    /// The target's authority: the upstream's virtual host, not ours
    /// (None keeps the caller's: the built-in echo upstream).
    pub upstream_host: Option<HeaderValue>,
    /// The caller's address, appended to any `X-Forwarded-For` it sent.
    pub client_ip: HeaderValue,
    /// The `Host` the caller asked for, so the upstream can build links.
    pub original_host: Option<HeaderValue>,
    /// `http` or `https`: how the caller reached the gateway.
    pub proto: &'static str,
    /// The request's id, shared with the audit line and the answer.
    pub request_id: Option<HeaderValue>,
}

impl Forwarding {
    /// Sets the headers in `h`.
    pub fn apply(self, h: &mut HeaderMap) {
        forwarded(h, &self.client_ip, self.original_host, self.proto);
        if let Some(v) = self.request_id {
            h.insert(X_REQUEST_ID, v);
        }
        if let Some(host) = self.upstream_host {
            h.insert(header::HOST, host);
        }
    }

    /// Whether the request's own header `name` gives way to these (the
    /// first `X-Forwarded-For` value is kept in `prev`, to be extended).
    pub fn replaces(
        &self,
        name: &HeaderName,
        value: &HeaderValue,
        prev: &mut Option<HeaderValue>,
    ) -> bool {
        if name == X_FORWARDED_FOR {
            if prev.is_none() {
                *prev = Some(value.clone());
            }
            return true;
        }
        (name == header::HOST && self.upstream_host.is_some())
            || name == X_FORWARDED_PROTO
            || (name == X_FORWARDED_HOST && self.original_host.is_some())
            || (name == X_REQUEST_ID && self.request_id.is_some())
    }

    /// The headers as header lines, after a head whose own
    /// `X-Forwarded-For` began with `prev`: what [`Forwarding::apply`] sets.
    pub fn write(&self, prev: Option<&HeaderValue>, out: &mut Vec<u8>) {
        let mut line = |name: &HeaderName, parts: &[&[u8]]| {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            for p in parts {
                out.extend_from_slice(p);
            }
            out.extend_from_slice(b"\r\n");
        };
        match prev {
            Some(p) => line(
                &X_FORWARDED_FOR,
                &[p.as_bytes(), b", ", self.client_ip.as_bytes()],
            ),
            None => line(&X_FORWARDED_FOR, &[self.client_ip.as_bytes()]),
        }
        if let Some(h) = &self.original_host {
            line(&X_FORWARDED_HOST, &[h.as_bytes()]);
        }
        line(&X_FORWARDED_PROTO, &[self.proto.as_bytes()]);
        if let Some(v) = &self.request_id {
            line(&X_REQUEST_ID, &[v.as_bytes()]);
        }
        if let Some(host) = &self.upstream_host {
            line(&header::HOST, &[host.as_bytes()]);
        }
    }
}

/// Sets the forwarding and identity headers in a request's header map
/// (a request that goes through hyper rather than the raw path).
pub fn set_in(
    h: &mut HeaderMap,
    forwarding: Forwarding,
    identity: Option<&crate::identity::Identity>,
) {
    forwarding.apply(h);
    if let Some(id) = identity {
        crate::identity_headers::inject(h, id);
    }
}

/// Appends the client address to `X-Forwarded-For` and sets the other
/// forwarding headers ([`Forwarding::apply`]'s map form).
fn forwarded(
    h: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<HeaderValue>,
    proto: &'static str,
) {
    let xff = match h.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
        None => Some(client_ip.clone()),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR, v);
    }
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST, host);
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// The protocol a request asks to upgrade to, if it does (`Connection`
/// lists `upgrade` and `Upgrade` names a protocol) and may: never HTTP/2.
///
/// Why not `h2c` (or `h2`, which RFC 9113 §3.2 forbids in `Upgrade`
/// anyway): an upstream that accepted it would take the tunnel for an
/// HTTP/2 connection and serve any request sent through it, to any path,
/// behind the gateway's back ("h2c smuggling"): only the first request
/// would have been authorized. Such a request goes on as a plain one, its
/// `Upgrade` dropped with the other hop-by-hop fields, as Envoy does.
pub fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    if !crate::h1wire::lists(h, header::CONNECTION, "upgrade") {
        return None;
    }
    // A line that is not plain text is not looked into: refused whole.
    let unreadable = h
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.to_str().is_err());
    let http2 = crate::h1wire::list(h, header::UPGRADE).any(|p| {
        let name = p.split('/').next().unwrap_or(p);
        name.eq_ignore_ascii_case("h2c") || name.eq_ignore_ascii_case("h2")
    });
    if unreadable || http2 {
        return None;
    }
    h.get(header::UPGRADE).cloned()
}

/// Sends an upgrade request; on `101 Switching Protocols` joins the client's
/// and the upstream's upgraded connections with a bidirectional copy that
/// lives until either side closes. Any other answer is passed on as usual.
pub async fn send_upgrade(
    client: &UpstreamClient,
    route: &Route,
    req: Request<RequestBody>,
    client_side: hyper::upgrade::OnUpgrade,
) -> Result<Response<Body>, ProxyError> {
    let mut resp = request(client, route, req).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay(resp));
    }
    let upstream_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match tokio::try_join!(client_side, upstream_side) {
            Ok((c, u)) => {
                let mut c = hyper_util::rt::TokioIo::new(c);
                let mut u = hyper_util::rt::TokioIo::new(u);
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    // Keep Connection/Upgrade on the 101: they are the handshake.
    let (parts, _) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::full(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_protocols_other_than_http2_are_upgraded_to() {
        let ask = |lines: &[&[u8]]| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONNECTION,
                HeaderValue::from_static("keep-alive, Upgrade"),
            );
            for l in lines {
                h.append(header::UPGRADE, HeaderValue::from_bytes(l).expect("value"));
            }
            upgrade_protocol(&h).map(|v| v.as_bytes().to_vec())
        };
        assert_eq!(ask(&[b"websocket"]), Some(b"websocket".to_vec()));
        for refused in [
            &[&b"h2c"[..]][..],
            &[b"H2C"],
            &[b"websocket, h2c"],
            &[b"websocket", b"h2c"],
            &[b"h2"],
            &[b"h2c/1"],
            &[b"websocket", b"h2c\xff"],
        ] {
            assert_eq!(ask(refused), None, "{refused:?}");
        }
        // Not an upgrade unless `Connection` says so.
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&h), None);
    }

    #[test]
    fn te_trailers_survives_and_other_hop_by_hop_headers_go() {
        assert_eq!(HOP_BY_HOP[TE_AT], header::TE);
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-end", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h);
        let left: Vec<(&str, &[u8])> = h.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
        assert_eq!(left, [("x-end", &b"2"[..]), ("te", &b"trailers"[..])]);
        // Without TE none is added.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }
}
