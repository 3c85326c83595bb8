//! The listeners: the gateway's (our bodyless HTTP/1 path in `h1serve.rs`
//! first, hyper 1 for everything else: HTTP/1.1 with bodies and upgrades,
//! HTTP/2 by ALPN or h2c) and the identity provider's (hyper for every
//! request), each with a header read timeout against slowloris clients and
//! a bounded head size (431 beyond it).

use crate::audit::AuditSink;
use crate::config::Snapshot;
use arc_swap::ArcSwap;
use gatehouse_core::revocation::Revocations;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send its request head, unless the
/// `[gateway]` section says otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (bytes).
pub const MAX_HEAD: usize = 64 * 1024;

/// Shared gateway state.
pub struct Gateway {
    /// The live configuration; reload swaps it.
    pub snapshot: ArcSwap<Snapshot>,
    pub audit: AuditSink,
    /// Gatehouse's own revocations, when the identity provider runs here.
    pub revocations: Option<Arc<Revocations>>,
    /// Issuer prefix of Gatehouse's own realms (`{public_url}/realms/`).
    pub own_issuer_prefix: Option<String>,
    /// Base URL callers use, for RFC 9728 metadata.
    pub public_url: String,
    /// Used to build authorizers on reload.
    pub http: reqwest::Client,
    pub metrics: crate::metrics::Metrics,
    /// Serve `/metrics` on the gateway listener too.
    pub serve_metrics: bool,
    /// Signs `X-Gatehouse-Assertion`.
    pub asserter: crate::assertion::Asserter,
    /// Usage-plan quotas of API keys.
    pub quotas: crate::quota::Quotas,
    /// How `apikey` authorizers find keys (None without an in-process IdP).
    pub apikeys: Option<Arc<dyn crate::authn::apikey::ApiKeyLookup>>,
    /// Rate-limit buckets; they outlive configuration reloads.
    pub limiter: Box<dyn crate::ratelimit::Limiter>,
    /// Proxies in front of the gateway whose `X-Forwarded-For` names the
    /// client (for rate limits, Cedar's `context.ip` and audit lines).
    pub trusted_proxies: gatehouse_core::client_ip::TrustedProxies,
    /// DPoP proofs already used (each is good for one request).
    pub dpop_replay: gatehouse_jose::dpop::ReplayCache,
}

/// Accepts gateway connections until the listener fails. Every
/// connection (TCP, or TLS once its handshake is done) starts on our own
/// bodyless HTTP/1 path (`h1serve.rs`), which hands it to hyper at its
/// first request it does not take (HTTP/2 included). A TLS client must
/// send its first byte and finish its handshake within the header timeout.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, remote) = accept(&listener).await;
        let timeout = gw.snapshot.load().file.gateway.header_read_timeout();
        let peer = crate::pipeline::Peer::new(remote, acceptor.is_some(), &gw.trusted_proxies);
        let gw = gw.clone();
        let handle = move |req| crate::pipeline::handle(gw.clone(), req, peer.clone());
        let Some(acceptor) = acceptor.clone() else {
            tokio::spawn(crate::h1serve::serve(stream, handle, timeout));
            continue;
        };
        tokio::spawn(async move {
            if !first_byte_within(&stream, timeout).await {
                return;
            }
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => crate::h1serve::serve(tls, handle, timeout).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

/// Whether the client sends a byte within `timeout`: hyper's header timer
/// starts with a request, so a connection that never sends one would
/// otherwise wait in protocol detection (or a TLS handshake) forever.
async fn first_byte_within(stream: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut first)).await,
        Ok(Ok(1..))
    )
}

/// The identity listener's accept loop (hyper for every request): with `tls`,
/// every connection is a TLS handshake first (ALPN picks h2 or HTTP/1.1).
/// A connection must send its first byte, finish its handshake and send
/// each request head within `header_timeout()`, or it is closed: idle and
/// slow-drip (slowloris) clients cannot hold sockets.
pub async fn accept_loop<T, F, S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: T,
    make_service: F,
) where
    T: Fn() -> Duration,
    F: Fn(std::net::SocketAddr) -> S,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, remote) = accept(&listener).await;
        let timeout = header_timeout();
        let svc = make_service(remote);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if !first_byte_within(&stream, timeout).await {
                return;
            }
            match acceptor {
                Some(a) => match tokio::time::timeout(timeout, a.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(TokioIo::new(tls), svc, timeout).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
                None => serve_connection(TokioIo::new(stream), svc, timeout).await,
            }
        });
    }
}

/// The next connection, with Nagle off (answers are written whole). An
/// accept error (out of file descriptors, say) is logged and retried after
/// a pause rather than ending the listener.
async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                return (stream, remote);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether the request's `Host` is as RFC 9112 §3.2 requires: exactly one,
/// a valid authority, on HTTP/1.1 (at most one elsewhere; HTTP/2 carries
/// `:authority`). A server MUST answer 400 otherwise: two hosts are how a
/// request is made to mean one thing to the gateway and another upstream.
pub fn host_is_valid(version: hyper::Version, headers: &http::HeaderMap) -> bool {
    host_is_valid_by(version, headers, is_authority)
}

/// [`host_is_valid`] with `authority` judging the one `Host` there is
/// (a connection answers it from memory when it repeats).
pub fn host_is_valid_by(
    version: hyper::Version,
    headers: &http::HeaderMap,
    authority: impl FnOnce(&http::HeaderValue) -> bool,
) -> bool {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => false,
        (None, _) => version != hyper::Version::HTTP_11,
        (Some(h), None) => authority(h),
    }
}

/// Whether an absolute-form target (or HTTP/2's `:scheme` and
/// `:authority`) names an `http` or `https` origin without userinfo
/// (RFC 9110 §4.2.4 has a recipient treat userinfo as an error): the
/// upstream is told this authority as `X-Forwarded-Host`. An origin-form
/// target has neither part.
pub fn target_is_valid(uri: &http::Uri) -> bool {
    let scheme_ok = uri
        .scheme()
        .is_none_or(|s| *s == http::uri::Scheme::HTTP || *s == http::uri::Scheme::HTTPS);
    scheme_ok && uri.authority().is_none_or(|a| !a.as_str().contains('@'))
}

/// RFC 9110 §7.2: `uri-host [":" port]`, no userinfo (which `Authority`
/// would accept).
pub fn is_authority(h: &http::HeaderValue) -> bool {
    !h.as_bytes().contains(&b'@') && http::uri::Authority::try_from(h.as_bytes()).is_ok()
}

/// Serves one connection (HTTP/1.1 or HTTP/2, upgrades allowed) with the
/// listener's limits: each request head within `header_timeout`, and no
/// longer than that without a request in flight (`idle.rs`).
pub async fn serve_connection<I, S, B>(io: I, svc: S, header_timeout: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD as u32);
    let activity = Arc::new(crate::idle::Activity::default());
    let svc = crate::idle::Counted {
        inner: svc,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let ended = |r: Result<(), _>| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    };
    // Until it has had no request in flight for the whole limit.
    while let Some(d) = activity.wait(header_timeout) {
        tokio::select! {
            r = conn.as_mut() => return ended(r),
            () = tokio::time::sleep(d) => {}
        }
    }
    // GOAWAY (HTTP/2) or a close (HTTP/1.1). HTTP/2's graceful close waits
    // for the client to acknowledge a PING, which a client holding the
    // socket on purpose never does: one more limit, then the socket is
    // dropped (nothing was in flight).
    conn.as_mut().graceful_shutdown();
    if let Ok(r) = tokio::time::timeout(header_timeout, conn.as_mut()).await {
        ended(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_an_http_origin_without_userinfo_or_none() {
        for ok in [
            "/a?b",
            "*",
            "http://api.example/a",
            "https://api.example:8443/a",
        ] {
            assert!(target_is_valid(&ok.parse().expect("uri")), "{ok}");
        }
        for bad in [
            "http://u@api.example/a",
            "http://u:p@api.example/",
            "ftp://api.example/a",
        ] {
            assert!(!target_is_valid(&bad.parse().expect("uri")), "{bad}");
        }
    }
}
