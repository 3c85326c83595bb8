//! Connections that ask nothing are closed, HTTP/2 ones included.
//!
//! Why: hyper's header read timeout closes an HTTP/1.1 connection that
//! sends no request, but an HTTP/2 connection that sent its preface and
//! then nothing stayed open for good: a client could hold as many sockets
//! as the process may open, one cheap connection at a time (slowloris over
//! HTTP/2). Here each connection counts its requests in flight (a request
//! is in flight until its answer's body is dropped: sent whole, or given
//! up) and, once none has been for the idle limit, is shut down gracefully
//! (`GOAWAY` on HTTP/2, a close between requests on HTTP/1.1), as nginx's
//! `keepalive_timeout` and Envoy's `idle_timeout` do.

use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a connection is doing: requests in flight, and when the last one
/// began or ended (milliseconds since the connection began).
#[derive(Debug)]
pub struct Activity {
    began: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            began: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// A request arrives: in flight until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// How long until the connection has been idle for `limit`: `None`
    /// when it has been, or a time to look again (a request in flight
    /// postpones it by a whole `limit`).
    pub fn wait(&self, limit: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(limit);
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let idle = self.began.elapsed().saturating_sub(last);
        limit.checked_sub(idle).filter(|d| !d.is_zero())
    }
}

/// One request in flight; its end when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request in flight until dropped.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's service, counting its requests into `Activity`.
#[derive(Clone)]
pub struct Counted<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
}

impl<S, Req, B> hyper::service::Service<Req> for Counted<S>
where
    S: hyper::service::Service<Req, Response = hyper::Response<B>>,
    B: Body,
{
    type Response = hyper::Response<Tracked<B>>;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn call(&self, req: Req) -> Self::Future {
        let guard = Some(self.activity.start());
        Answer {
            inner: self.inner.call(req),
            guard,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer to come, its request in flight meanwhile.
    pub struct Answer<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> std::future::Future for Answer<F>
where
    F: std::future::Future<Output = Result<hyper::Response<B>, E>>,
{
    type Output = Result<hyper::Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(out.map(|r| r.map(|inner| Tracked { inner, guard })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn idle_counts_from_the_last_answer_and_not_while_one_is_in_flight() {
        let a = Arc::new(Activity::default());
        let limit = Duration::from_millis(50);
        assert!(a.wait(limit).is_some(), "just opened");
        let body = Tracked {
            inner: http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
            guard: Some(a.start()),
        };
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(a.wait(limit), Some(limit), "an answer is still going out");
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"ok");
        assert!(a.wait(limit).is_some(), "the answer just ended");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(a.wait(limit), None, "idle for the whole limit");
    }
}
