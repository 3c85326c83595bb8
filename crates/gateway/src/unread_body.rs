//! Answers that leave part of a request body unread say so with
//! `Connection: close` (RFC 9112 §9.6). hyper drains a small unread body
//! and keeps the connection, but closes it without a word when more of the
//! body is still on the wire (a large form answered 404 or 401 before it
//! is read); a client that then sends its next request on that connection
//! sees it reset. With the header, clients open a new connection instead.

use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A request body that records whether it was read to its end (`done`,
/// only for a request that has a body: no allocation otherwise).
pub struct Tracked<B> {
    inner: B,
    done: Option<Arc<AtomicBool>>,
}

impl<B> Tracked<B> {
    fn mark_done(&self) {
        if let Some(d) = &self.done {
            d.store(true, Ordering::Relaxed);
        }
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
        if let Poll::Ready(None) = polled {
            self.mark_done();
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
pub struct Unread(Option<Arc<AtomicBool>>);

impl Unread {
    /// Adds `Connection: close` to `resp` when the body was left unread.
    pub fn mark<T>(self, resp: &mut http::Response<T>) {
        if self.0.is_some_and(|f| !f.load(Ordering::Relaxed)) {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
    }
}

/// Wraps the body of `req` to track it. Bodyless requests and HTTP/2
/// (whose streams end on their own, and where the header is not allowed)
/// are not tracked, and cost no allocation.
pub fn track<B: Body>(req: http::Request<B>) -> (http::Request<Tracked<B>>, Unread) {
    let has_body = !req.body().is_end_stream() && req.version() <= http::Version::HTTP_11;
    let done = has_body.then(|| Arc::new(AtomicBool::new(false)));
    let unread = Unread(done.clone());
    (req.map(|inner| Tracked { inner, done }), unread)
}
