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

/// A request body that records whether it was read to its end.
pub struct Tracked<B> {
    inner: B,
    done: Arc<AtomicBool>,
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
            self.done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.done.store(true, Ordering::Relaxed);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps the body of `req`; the flag, None for a request without a body
/// (or over HTTP/2, whose streams end on their own and where the header is
/// not allowed), says after the handler ran whether the body was read to
/// its end.
pub fn track<B: Body>(
    req: http::Request<B>,
) -> (http::Request<Tracked<B>>, Option<Arc<AtomicBool>>) {
    let has_body = !req.body().is_end_stream() && req.version() <= http::Version::HTTP_11;
    let done = Arc::new(AtomicBool::new(!has_body));
    let flag = has_body.then(|| done.clone());
    (req.map(|inner| Tracked { inner, done }), flag)
}

/// Adds `Connection: close` to `resp` when the request's body was left
/// unread (`flag` from [`track`]).
pub fn close_if_unread<T>(resp: &mut http::Response<T>, flag: Option<&AtomicBool>) {
    if flag.is_some_and(|f| !f.load(Ordering::Relaxed)) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}
