//! The gateway listener: hyper 1 with HTTP/1.1 and HTTP/2 (h2c) on one
//! port, a header read timeout against slowloris clients, and a bounded
//! header size (oversized heads get 431 from hyper).

use crate::audit::AuditSink;
use crate::config::Snapshot;
use arc_swap::ArcSwap;
use gatehouse_core::revocation::Revocations;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send its request head.
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
    /// Rate-limit buckets; they outlive configuration reloads.
    pub limiter: Box<dyn crate::ratelimit::Limiter>,
}

/// Accepts connections until the listener fails.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let gw = gw.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        crate::pipeline::handle(gw, req, remote).await,
                    )
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_header_list_size(MAX_HEAD as u32);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
