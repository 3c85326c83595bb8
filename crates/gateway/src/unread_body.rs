//! What a request's body did, for its answer and its upstream exchange.
//!
//! Answers that leave part of a request body unread say so with
//! `Connection: close` (RFC 9112 §9.6). hyper drains a small unread body
//! and keeps the connection, but closes it without a word when more of the
//! body is still on the wire (a large form answered 404 or 401 before it
//! is read); a client that then sends its next request on that connection
//! sees it reset. With the header, clients open a new connection instead.
//!
//! The upstream exchange reads [`Progress`]: a route's timeout counts from
//! the caller's last byte of body, not from the start of a long upload
//! (Envoy's rule), and a body that stalls is the caller's fault, not the
//! target's. The identity listener, which reads whole bodies itself, ends
//! one that stalls with [`Idle`] (nginx's `client_body_timeout`).

use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How far a request body has come (only for a request that has one: no
/// allocation otherwise).
#[derive(Debug)]
pub struct Progress {
    /// When the request was taken in; the times below count from here.
    base: Instant,
    /// Milliseconds from `base` to the last part read (or to the end).
    last_ms: AtomicU64,
    done: AtomicBool,
    /// The last read found nothing yet: whoever reads is waiting for the
    /// caller (else the upstream has stopped asking for more).
    starved: AtomicBool,
}

/// What [`Progress::state`] tells the exchange's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyState {
    /// When the body last moved (or ended).
    pub last: Instant,
    /// Read to its end.
    pub done: bool,
    /// Waiting for the caller's next bytes.
    pub starved: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            done: AtomicBool::new(false),
            starved: AtomicBool::new(false),
        }
    }

    fn moved(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        self.starved.store(false, Ordering::Relaxed);
    }

    /// The body's state now.
    pub fn state(&self) -> BodyState {
        BodyState {
            last: self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)),
            done: self.done.load(Ordering::Relaxed),
            starved: self.starved.load(Ordering::Relaxed),
        }
    }
}

/// A request body that records how far it was read.
pub struct Tracked<B> {
    inner: B,
    progress: Option<Arc<Progress>>,
}

impl<B> Tracked<B> {
    fn mark_done(&self) {
        if let Some(p) = &self.progress
            && !p.done.swap(true, Ordering::Relaxed)
        {
            p.moved();
        }
    }

    /// How far the body has come, for the upstream exchange's timer (None
    /// for a request without a body).
    pub fn progress(&self) -> Option<Arc<Progress>> {
        self.progress.clone()
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(p) = &self.progress {
            match &polled {
                Poll::Ready(None) => self.mark_done(),
                Poll::Ready(Some(_)) => p.moved(),
                Poll::Pending => p.starved.store(true, Ordering::Relaxed),
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.mark_done();
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a tracked request's body was read, for its answer.
pub struct Unread(Option<Arc<Progress>>);

impl Unread {
    /// Adds `Connection: close` to `resp` when the body was left unread.
    pub fn mark<T>(self, resp: &mut http::Response<T>) {
        if self.0.is_some_and(|p| !p.done.load(Ordering::Relaxed)) {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
    }
}

/// Wraps the body of `req` to track it. Bodyless requests cost no
/// allocation; HTTP/2's streams end on their own (and the header is not
/// allowed there), so only HTTP/1 answers get `Connection: close`.
pub fn track<B: Body>(req: http::Request<B>) -> (http::Request<Tracked<B>>, Unread) {
    let has_body = !req.body().is_end_stream();
    let progress = has_body.then(|| Arc::new(Progress::new()));
    let h1 = req.version() <= http::Version::HTTP_11;
    let unread = Unread(progress.clone().filter(|_| h1));
    (req.map(|inner| Tracked { inner, progress }), unread)
}

/// A request body that must keep coming: no part for `idle` ends it with
/// an error, as nginx's `client_body_timeout` does. Why: the header
/// timeout stops a client that drips its head, and without this one a
/// client that announces a body and then sends nothing would hold its
/// connection, and the task reading it, for as long as it likes.
pub struct Idle<B> {
    inner: B,
    idle: Duration,
    /// Armed at the first wait, moved on at every part after that.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Idle<B> {
    /// `inner`, ended with an error after `idle` without a part.
    pub fn new(inner: B, idle: Duration) -> Self {
        Idle {
            inner,
            idle,
            timer: None,
        }
    }
}

impl<B> Body for Idle<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(part) => {
                if let Some(t) = &mut this.timer {
                    t.as_mut().reset(tokio::time::Instant::now() + this.idle);
                }
                Poll::Ready(part.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body stalled",
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;

    /// A body whose parts come from a channel, when the test sends them.
    struct Drip(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Drip {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|p| p.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_body_may_come_slowly_but_not_stop() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut body = Idle::new(Drip(rx), Duration::from_millis(500));
        // Four parts 200 ms apart: 800 ms in all, longer than the limit,
        // which counts from the last part, not from the start.
        let sender = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = tx.send(Bytes::from_static(b"ab")).await;
            }
            // Then nothing, the sender still there.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let started = Instant::now();
        let mut got = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(f)) => got += f.into_data().map(|d| d.len()).unwrap_or(0),
                Some(Err(e)) => break e,
                None => panic!("the body cannot end: its sender is alive"),
            }
        };
        assert_eq!(got, 8);
        assert!(err.to_string().contains("stalled"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(1300));
        sender.abort();
    }
}
