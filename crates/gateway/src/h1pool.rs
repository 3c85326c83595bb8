//! Kept-alive HTTP/1.1 connections to one upstream target.
//!
//! hyper-util's general-purpose pool costs more per request than the rest
//! of the proxy path together (measured with callgrind: a keyed, hashed
//! checkout racing a lazy connect, a re-hash on return, and a task spawned
//! per request to wait for the connection to become idle). A target's
//! connections need none of that: the pool lives in the target itself, a
//! checkout pops the most recently used connection, and the response body
//! hands its connection back the moment it has been read to the end.
//! Upgrades and HTTP/2 (h2c) upstreams still go through hyper-util.

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long an unused connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per target; beyond, returned ones are closed.
const MAX_IDLE: usize = 256;

/// The idle connections to one target.
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<(SendRequest<Incoming>, Instant)>>,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// TCP connect failed.
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// TCP connect took longer than the route's connect timeout.
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl H1Pool {
    /// A pool for `addr` (`host:port`).
    pub fn new(addr: String, connect_timeout: Duration) -> H1Pool {
        H1Pool {
            addr,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn checkout(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((tx, since)) = idle.pop() {
            if !tx.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(tx);
            }
        }
        None
    }

    fn put(&self, tx: SendRequest<Incoming>) {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((tx, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, PoolError> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(&self.addr),
        )
        .await
        {
            Err(_) => return Err(PoolError::ConnectTimeout(self.addr.clone())),
            Ok(Err(e)) => return Err(PoolError::Connect(self.addr.clone(), e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection, or
    /// a new one. A request that a dying idle connection did not send is
    /// retried on the next; one that was sent is never sent twice.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, PoolError> {
        while let Some(mut tx) = self.checkout() {
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, tx)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut tx = self.connect().await?;
        let resp = tx.send_request(req).await?;
        Ok(self.wrap(resp, tx))
    }

    fn wrap(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        tx: SendRequest<Incoming>,
    ) -> Response<PooledBody> {
        resp.map(|body| {
            let mut b = PooledBody {
                body,
                conn: Some((tx, self.clone())),
            };
            if b.body.is_end_stream() {
                b.release();
            }
            b
        })
    }
}

/// A response body that returns its connection to the pool once read to
/// the end. Dropped early (the client went away), it takes the connection
/// with it: hyper closes a connection whose body was not drained.
pub struct PooledBody {
    body: Incoming,
    conn: Option<(SendRequest<Incoming>, Arc<H1Pool>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            pool.put(tx);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.body).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
