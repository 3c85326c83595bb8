//! The body of every gateway answer.
//!
//! Why not a plain `BoxBody`: an answer relayed from the bodyless path
//! ([`crate::h1pool`]) carries the upstream's header lines beside its body
//! ([`crate::h1wire::UpstreamHeaders`]), to be copied out as they came
//! rather than rebuilt through a header map, and a boxed body would hide
//! them (and cost an allocation per answer).

use crate::h1pool::RawBody;
use crate::h1wire::UpstreamHeaders;
use bytes::Bytes;
use http::Response;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Boxed error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gateway answer's body.
pub enum Body {
    /// Made by the gateway, or relayed from hyper's client.
    Boxed(BoxBody<Bytes, BoxError>),
    /// Relayed from the bodyless path. Its header lines are not in the
    /// response's header map until [`Body::take_upstream_headers`] or
    /// [`with_header_map`] takes them. Boxed because it holds the
    /// connection: every move of the answer would copy it otherwise.
    Relayed(Box<RawBody>),
}

impl Body {
    /// A body held whole in memory.
    pub fn full(data: impl Into<Bytes>) -> Body {
        Body::boxed(Full::new(data.into()))
    }

    /// Any other body.
    pub fn boxed<B>(body: B) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Body::Boxed(body.map_err(Into::into).boxed())
    }

    /// The upstream's header lines of a relayed answer, once: whoever
    /// writes the answer's head takes them.
    pub fn take_upstream_headers(&mut self) -> Option<UpstreamHeaders> {
        match self {
            Body::Relayed(b) => b.headers.take(),
            Body::Boxed(_) => None,
        }
    }
}

/// `resp` with the upstream's header lines (if it has any still apart) in
/// its header map, for a writer that reads only the map (hyper's server:
/// HTTP/2, and HTTP/1 connections handed to it). The fields the gateway
/// set keep their values.
pub fn with_header_map(resp: &mut Response<Body>) {
    if let Some(up) = resp.body_mut().take_upstream_headers() {
        let set = std::mem::take(resp.headers_mut());
        *resp.headers_mut() = up.into_map(set);
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Boxed(b) => Pin::new(b).poll_frame(cx),
            Body::Relayed(b) => b.poll_raw(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Boxed(b) => b.is_end_stream(),
            Body::Relayed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Boxed(b) => b.size_hint(),
            Body::Relayed(b) => b.size_hint(),
        }
    }
}
