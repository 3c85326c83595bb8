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
//!
//! A request without a body goes further: on connections of their own it
//! is written and its answer read by [`crate::h1wire`] directly, without
//! hyper's connection task and channels; requests with bodies keep
//! hyper's client, which streams the body while watching for an early
//! answer.

use crate::body::{Body, BoxError};
use crate::h1wire::{self, ChunkedDecoder, Decoded, Framing, WireError};
use crate::proxy::RequestBody;
use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long an unused connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per target; beyond, returned ones are closed.
const MAX_IDLE: usize = 256;

/// The idle connections to one target.
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    /// TLS to an `https://` target (then every request takes hyper's path:
    /// the bodyless path reads the socket itself).
    tls: Option<crate::upstream_tls::TlsTarget>,
    idle: Mutex<Vec<(SendRequest<RequestBody>, Instant)>>,
    /// Idle connections of the bodyless path (never shared with hyper's).
    raw_idle: Mutex<Vec<RawConn>>,
}

/// A connection of the bodyless path and the bytes read past the last
/// answer (none when it is idle).
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    /// The route timeout's timer, kept from one exchange to the next (see
    /// [`expired`]); made on the first exchange.
    timer: Option<Pin<Box<Sleep>>>,
    /// When its last request started: it counts as idle from then (a little
    /// early, so it is closed a little early, never late), which spares a
    /// clock read when it comes back.
    used: Instant,
}

impl RawConn {
    fn new(stream: TcpStream, now: Instant) -> RawConn {
        RawConn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            timer: None,
            used: now,
        }
    }

    /// At least 1 KiB free for the next read (grown by `by` when short).
    fn make_room(&mut self, by: usize) {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(by);
        }
    }
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
    /// No answer within the route's timeout.
    #[error("no answer within the route's timeout")]
    Timeout,
    /// The caller's body stopped coming for the route's timeout.
    #[error("the request body stopped coming")]
    SlowBody,
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// Reading or writing the connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The upstream's answer broke HTTP/1.1.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// How an exchange on a kept-alive connection went wrong.
enum Attempt {
    /// The connection was dead before any answer: `sent` says whether the
    /// request may have reached the upstream.
    Stale {
        sent: bool,
    },
    Failed(PoolError),
}

impl H1Pool {
    /// A pool for `addr` (`host:port`), over TLS when `tls` says so.
    pub fn new(
        addr: String,
        connect_timeout: Duration,
        tls: Option<crate::upstream_tls::TlsTarget>,
    ) -> H1Pool {
        H1Pool {
            addr,
            connect_timeout,
            tls,
            idle: Mutex::new(Vec::new()),
            raw_idle: Mutex::new(Vec::new()),
        }
    }

    fn checkout(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((tx, since)) = idle.pop() {
            if !tx.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(tx);
            }
        }
        None
    }

    fn put(&self, tx: SendRequest<RequestBody>) {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((tx, Instant::now()));
        }
    }

    /// The most recently used idle connection that the upstream has
    /// neither closed nor sent anything on while it sat idle, checked with
    /// one non-blocking read. Why every time, not only for requests that
    /// cannot be repeated: bytes that arrive on an idle connection answer
    /// no request of ours, and read as the next request's answer they
    /// would hand that caller, maybe another user, a response queued
    /// earlier (response-queue poisoning: an upstream that answers twice,
    /// the second time a little later). Measured before: an upstream that
    /// wrote a second response 50 ms after the first had the next
    /// caller's GET answered with it.
    fn checkout_raw(&self, now: Instant) -> Option<RawConn> {
        let mut idle = self.raw_idle.lock().ok()?;
        while let Some(mut c) = idle.pop() {
            if now.saturating_duration_since(c.used) >= IDLE_TIMEOUT {
                continue;
            }
            let mut one = [0u8; 1];
            match c.stream.try_read(&mut one) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => continue,
            }
            c.used = now;
            return Some(c);
        }
        None
    }

    fn put_raw(&self, c: RawConn) {
        if let Ok(mut idle) = self.raw_idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(c);
        }
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, PoolError> {
        let stream = self.dial().await?;
        // The TLS handshake counts against the connect timeout too.
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            crate::upstream_tls::UpStream::over(stream, self.tls.as_ref()),
        )
        .await
        {
            Err(_) => return Err(PoolError::ConnectTimeout(self.addr.clone())),
            Ok(Err(e)) => return Err(PoolError::Connect(self.addr.clone(), e)),
            Ok(Ok(s)) => s,
        };
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    async fn dial(&self) -> Result<TcpStream, PoolError> {
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
        Ok(stream)
    }

    /// The bodyless path: the request head on a kept-alive connection of
    /// our own, or a new one when that one turns out to be closed (only
    /// when the request cannot have been processed, or repeating it is
    /// harmless: RFC 9110 §9.2.2).
    async fn send_raw(
        self: &Arc<Self>,
        req: &Request<RequestBody>,
        head: &[u8],
        (now, deadline): (Instant, tokio::time::Instant),
    ) -> Result<Response<Body>, PoolError> {
        let method = req.method();
        let idempotent = matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let mut timer = None;
        loop {
            // A kept-alive connection first; a new one when none is left.
            let (mut conn, reused) = match self.checkout_raw(now) {
                Some(c) => (c, true),
                None => match tokio::time::timeout_at(deadline, self.dial()).await {
                    Ok(stream) => (RawConn::new(stream?, now), false),
                    Err(_) => return Err(PoolError::Timeout),
                },
            };
            timer = conn.timer.take().or(timer);
            let outcome = tokio::select! {
                biased;
                outcome = exchange(conn, head, method) => outcome,
                () = expired(&mut timer, deadline) => return Err(PoolError::Timeout),
            };
            match outcome {
                Ok((resp, mut conn)) => {
                    conn.timer = timer;
                    return Ok(self.raw_response(resp, conn));
                }
                Err(Attempt::Stale { sent }) if reused && (!sent || idempotent) => {}
                Err(Attempt::Stale { .. }) => return Err(WireError::Eof.into()),
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    /// The answer with its body; a body already read whole gives its
    /// connection back at once.
    fn raw_response(self: &Arc<Self>, head: h1wire::Head, mut conn: RawConn) -> Response<Body> {
        let pool = head.reusable.then(|| self.clone());
        let state = match head.framing {
            Framing::Empty => RawState::Full(None),
            Framing::Length(n) if conn.buf.len() as u64 >= n => {
                RawState::Full(Some(conn.buf.split_to(n as usize).freeze()))
            }
            Framing::Length(n) => RawState::Length(n),
            Framing::Chunked => RawState::Chunked(ChunkedDecoder::default()),
            Framing::Close => RawState::Close,
        };
        let mut body = RawBody {
            state,
            conn: Some(conn),
            pool,
            headers: Some(head.headers),
        };
        if matches!(body.state, RawState::Full(_)) {
            body.release();
        }
        let mut resp = Response::new(Body::Relayed(Box::new(body)));
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        resp
    }

    /// Sends `req` (origin-form URI) on an idle connection, or a new one,
    /// with the forwarding headers (`Host` among them) and `identity`'s
    /// headers (written straight into the head where the request takes
    /// the raw path, set in its header map otherwise). A request that a dying
    /// idle connection did not send is retried on the next; one that was
    /// sent is never sent twice. No answer's head within `timeout` of
    /// `started` (when the caller began timing the exchange):
    /// [`PoolError::Timeout`], and the connection is closed.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        (forwarding, identity): (crate::proxy::Forwarding, Option<&crate::identity::Identity>),
        (started, timeout): (Instant, Duration),
    ) -> Result<Response<Body>, PoolError> {
        let deadline = tokio::time::Instant::from_std(started) + timeout;
        // Hop-by-hop headers (Transfer-Encoding, Upgrade) are gone by now
        // and upgrades take another path: no body is all this path needs.
        if req.body().is_end_stream() && self.tls.is_none() {
            let mut head = Vec::with_capacity(512 + req.headers().len() * 32);
            let mut prev = None;
            h1wire::encode_head(
                &req,
                |n, v| !forwarding.replaces(n, v, &mut prev),
                &mut head,
            );
            forwarding.write(prev.as_ref(), &mut head);
            if let Some(id) = identity {
                head.extend_from_slice(crate::identity_headers::wire(id));
            }
            h1wire::end_head(&req, &mut head);
            return self.send_raw(&req, &head, (started, deadline)).await;
        }
        crate::proxy::set_in(req.headers_mut(), forwarding, identity);
        // Counted from the end of the caller's body (`proxy::within`).
        let body = (
            tokio::time::Instant::from_std(started),
            req.body().progress(),
        );
        match crate::proxy::within(self.send_hyper(req), body, timeout).await {
            Err(crate::proxy::Late::Upstream) => Err(PoolError::Timeout),
            Err(crate::proxy::Late::Caller) => Err(PoolError::SlowBody),
            Ok(r) => r,
        }
    }

    /// Requests with a body: hyper's client on the pool's other
    /// connections, which streams the body while watching for an early
    /// answer.
    async fn send_hyper(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
    ) -> Result<Response<Body>, PoolError> {
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

    /// hyper's answer, hop-by-hop fields removed, with a body that gives
    /// its connection back when read to the end.
    fn wrap(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        tx: SendRequest<RequestBody>,
    ) -> Response<Body> {
        crate::proxy::relay(resp.map(|body| {
            let mut b = HyperBody {
                body,
                conn: Some((tx, self.clone())),
            };
            if b.body.is_end_stream() {
                b.release();
            }
            b
        }))
    }
}

/// Waits until `deadline` on `timer`, a connection's timer kept from one
/// exchange to the next. Registering a timer for every request and
/// cancelling it when the answer came cost about 900 instructions, 2.5 %
/// of a proxied request (callgrind); here the timer is moved only when it
/// fires before the deadline it now stands for (it still holds an earlier
/// request's, about once per timeout period) or when that is earlier than
/// its own (a shorter timeout since a reload).
async fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: tokio::time::Instant) {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        timer.as_mut().await;
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        timer.as_mut().reset(deadline);
    }
}

/// Writes `head` and reads the answer's head on `conn`.
async fn exchange(
    mut conn: RawConn,
    head: &[u8],
    method: &Method,
) -> Result<(h1wire::Head, RawConn), Attempt> {
    if conn.stream.write_all(head).await.is_err() {
        return Err(Attempt::Stale { sent: false });
    }
    loop {
        if let Some(h) =
            h1wire::parse_head(&mut conn.buf, method).map_err(|e| Attempt::Failed(e.into()))?
        {
            return Ok((h, conn));
        }
        conn.make_room(8 * 1024);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if conn.buf.is_empty() => return Err(Attempt::Stale { sent: true }),
            Ok(0) => return Err(Attempt::Failed(WireError::Eof.into())),
            Ok(_) => {}
            Err(e) if conn.buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(Attempt::Stale { sent: true });
            }
            Err(e) => return Err(Attempt::Failed(e.into())),
        }
    }
}

/// Where a bodyless-path answer's body is.
enum RawState {
    /// Read whole already (or empty).
    Full(Option<Bytes>),
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the upstream closes.
    Close,
    Done,
}

/// The body of an answer on the bodyless path, read from its connection
/// as the client takes it (one buffer's worth at a time: memory stays
/// bounded whatever the size).
pub struct RawBody {
    state: RawState,
    conn: Option<RawConn>,
    /// Where the connection goes back to, when it may be reused.
    pool: Option<Arc<H1Pool>>,
    /// The answer's header lines, until the head is written
    /// ([`crate::body::Body::take_upstream_headers`]).
    pub(crate) headers: Option<h1wire::UpstreamHeaders>,
}

impl RawBody {
    /// The body is complete: a reusable connection with nothing unread goes
    /// back to the pool, any other is closed.
    fn release(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.take())
            && conn.buf.is_empty()
        {
            pool.put_raw(conn);
        }
    }

    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, BoxError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(WireError::Eof.into()));
        };
        conn.make_room(16 * 1024);
        loop {
            ready!(conn.stream.poll_read_ready(cx))?;
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.state, RawState::Done | RawState::Full(None))
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match &self.state {
            RawState::Done | RawState::Full(None) => SizeHint::with_exact(0),
            RawState::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            RawState::Length(n) => SizeHint::with_exact(*n),
            _ => SizeHint::default(),
        }
    }

    pub(crate) fn poll_raw(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let buffered = self.conn.as_ref().map_or(0, |c| c.buf.len());
            match &mut self.state {
                RawState::Done => return Poll::Ready(None),
                RawState::Full(b) => {
                    let b = b.take();
                    self.state = RawState::Done;
                    return Poll::Ready(b.map(|b| Ok(Frame::data(b))));
                }
                RawState::Length(left) if buffered > 0 => {
                    let n = buffered.min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    let done = *left == 0;
                    let data = match self.conn.as_mut() {
                        Some(c) => c.buf.split_to(n).freeze(),
                        None => return Poll::Ready(Some(Err(WireError::Eof.into()))),
                    };
                    if done {
                        self.state = RawState::Done;
                        self.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                RawState::Chunked(d) => {
                    let Some(conn) = self.conn.as_mut() else {
                        return Poll::Ready(Some(Err(WireError::Eof.into())));
                    };
                    match d.decode(&mut conn.buf) {
                        Ok(Decoded::Data(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                        Ok(Decoded::Done(trailers)) => {
                            self.state = RawState::Done;
                            self.release();
                            return Poll::Ready(
                                (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers))),
                            );
                        }
                        Ok(Decoded::NeedMore) => {}
                        Err(e) => {
                            self.conn = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                }
                RawState::Close if buffered > 0 => {
                    let data = match self.conn.as_mut() {
                        Some(c) => c.buf.split().freeze(),
                        None => return Poll::Ready(None),
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                RawState::Length(_) | RawState::Close => {}
            }
            match ready!(self.fill(cx)) {
                Ok(0) if matches!(self.state, RawState::Close) => {
                    self.state = RawState::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    self.state = RawState::Done;
                    return Poll::Ready(Some(Err(WireError::Eof.into())));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    self.state = RawState::Done;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

/// A hyper client answer's body, which returns its connection to the pool
/// once read to the end. Dropped early (the client went away), it takes the
/// connection with it: hyper closes a connection whose body was not
/// drained (and a dropped [`RawBody`] simply closes its own).
pub struct HyperBody {
    body: Incoming,
    conn: Option<(SendRequest<RequestBody>, Arc<H1Pool>)>,
}

impl HyperBody {
    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            pool.put(tx);
        }
    }
}

impl hyper::body::Body for HyperBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &r {
            None => this.release(),
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            Some(Err(_)) => this.conn = None,
            _ => {}
        }
        Poll::Ready(r.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
