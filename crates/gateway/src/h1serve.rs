//! Our own HTTP/1.1 server path for the gateway's common request: a
//! well-formed head and no body (GET, HEAD, DELETE, most API reads). On
//! the proxied path hyper's server codec was about half of the gateway's
//! user-space CPU per request (README, Benchmarks): its dispatcher, body
//! channel and per-request state are not needed when there is no body.
//!
//! It takes only what is plainly safe. The first request that is anything
//! else (any `Content-Length` or `Transfer-Encoding`, `Upgrade`, `Expect`,
//! a `Connection` option other than `close`/`keep-alive`, a version other
//! than HTTP/1.1 and 1.0 (HTTP/2's preface among them), a non-origin-form target, CONNECT, a head httparse
//! rejects or one past [`MAX_HEAD`]) is handed, with every byte read so
//! far, to hyper, which serves the rest of the connection. So malformed,
//! ambiguous and smuggling-shaped requests still meet hyper's checks and
//! error answers, exactly as before; this path never has to judge them.
//!
//! Timing matches the hyper configuration it stands in for: a request head
//! (and the wait for it on a kept-alive connection) must arrive within the
//! header read timeout, or the connection is closed.

use crate::proxy::{Body, RequestBody};
use crate::server::MAX_HEAD;
use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Reads and drops what the client still sends, briefly, before the
/// connection closes (nginx's lingering close): closing with unread bytes
/// makes the kernel reset the connection, which can destroy the answer
/// before the client reads it.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut dropped = 0usize;
    while dropped < 1 << 20 {
        buf.clear();
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => return,
        }
    }
}

/// The answer to a request line longer than the whole head may be.
const URI_TOO_LONG: &[u8] =
    b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Most headers a request may have on this path (hyper's own limit: a
/// request with more goes to hyper, which answers 431).
const MAX_HEADERS: usize = 100;

/// About how many headers the gateway adds to a request before it goes
/// upstream: `X-Forwarded-For`/`-Proto`/`-Host`, `X-Request-Id` and up to
/// six identity headers.
const ADDED_HEADERS: usize = 12;

/// Serves one gateway connection (TCP, or TLS after its handshake):
/// bodyless requests here, the rest of the connection through hyper from
/// the first one that is not (HTTP/2's preface included).
pub async fn serve<S, H, Fut>(mut stream: S, handle: H, header_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
    let mut scratch = Scratch::default();
    // One timer for the connection, moved lazily: a request only notes
    // its deadline, and when the timer fires for an older one it is set to
    // the current one. Registering a timer per request and cancelling it
    // when the head came in cost about as much as parsing the head.
    let timer = tokio::time::sleep(header_timeout);
    tokio::pin!(timer);
    let handover = 'requests: loop {
        let deadline = tokio::time::Instant::now() + header_timeout;
        let (req, close) = loop {
            match parse(&mut buf, &mut scratch) {
                Parsed::Request(req, close) => break (req, close),
                Parsed::HandOver(head) => break 'requests head,
                // Past the limit with the request line itself unfinished:
                // RFC 9110 §15.5.15's 414, as nginx answers (the head
                // limit is hyper's 431 otherwise).
                Parsed::Partial if buf.len() >= MAX_HEAD && !buf.contains(&b'\n') => {
                    let _ = stream.write_all(URI_TOO_LONG).await;
                    let _ = stream.shutdown().await;
                    linger(&mut stream, &mut buf).await;
                    return;
                }
                // Past the limit: hyper answers 431.
                Parsed::Partial if buf.len() >= MAX_HEAD => break 'requests Bytes::new(),
                Parsed::Partial => {}
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let read = tokio::select! {
                biased;
                read = stream.read_buf(&mut buf) => read,
                () = &mut timer => {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                    timer.as_mut().reset(deadline);
                    continue;
                }
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head_only = req.method() == Method::HEAD;
        let http10 = req.version() == http::Version::HTTP_10;
        // The socket is watched while the request is handled: a client that
        // closes it has given up, so the request is dropped (its upstream
        // exchange with it), as hyper and nginx do; bytes it pipelines
        // meanwhile wait in the buffer for their turn.
        let pending = handle(req);
        tokio::pin!(pending);
        let resp = loop {
            tokio::select! {
                biased;
                resp = &mut pending => break resp,
                read = stream.read_buf(&mut buf), if buf.len() < MAX_HEAD => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
        };
        match respond(&mut stream, &mut out, resp, (head_only, http10), close).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    };
    // The kept values would hold their heads for as long as hyper serves.
    drop(scratch);
    // Everything read and not yet served goes first to hyper.
    let prefix = if handover.is_empty() {
        buf.freeze()
    } else {
        let mut all = BytesMut::with_capacity(handover.len() + buf.len());
        all.extend_from_slice(&handover);
        all.extend_from_slice(&buf);
        all.freeze()
    };
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (req, unread) = crate::unread_body::track(req);
        let f = Box::pin(handle(req.map(RequestBody::Hyper)));
        async move {
            let mut resp = f.await;
            crate::body::with_header_map(&mut resp);
            unread.mark(&mut resp);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let io = hyper_util::rt::TokioIo::new(Rewind {
        prefix,
        inner: stream,
    });
    crate::server::serve_connection(io, svc, header_timeout).await;
}

// Returned once per request and taken apart at once: boxing the request
// would cost an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A bodyless request this path serves, and whether it asked to close.
    Request(Request<RequestBody>, bool),
    /// The head is not complete yet.
    Partial,
    /// For hyper, with the bytes of the head already taken from the buffer
    /// (empty when nothing was taken).
    HandOver(Bytes),
}

/// What a request's `Connection` header asks for.
#[derive(Default, Clone, Copy)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
}

/// Screens one request header: None when it keeps the request off this
/// path, else the connection options it names.
fn screen(name: &str, value: &[u8], opts: &mut ConnectionOptions) -> Option<()> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("content-length") || is("transfer-encoding") || is("upgrade") || is("expect") {
        return None;
    }
    if is("connection") {
        for opt in value.split(|b| *b == b',') {
            let opt = opt.trim_ascii();
            if opt.eq_ignore_ascii_case(b"close") {
                opts.close = true;
            } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                opts.keep_alive = true;
            } else {
                return None;
            }
        }
    }
    Some(())
}

/// Where a header's name and value are in the head: name start and end,
/// value start and end.
type Span = (usize, usize, usize, usize);

/// What a connection keeps from one request head to the next, so that a
/// request allocates and checks no more than it must.
#[derive(Default)]
struct Scratch {
    /// The headers' places (reused, so a request allocates none).
    spans: Vec<Span>,
    recent: Recent,
}

/// The connection's last long header values, already checked. A client
/// sends the same bearer token (about 1 KB) or cookie with every request
/// of a connection, and checking each of its bytes again for `HeaderValue`
/// was about 3 % of a proxied request's instructions; comparing it with
/// the value kept costs a tenth of that. A value kept shares the head it
/// came in, which stays allocated (a few KB) while the value is kept.
#[derive(Default)]
struct Recent {
    kept: [Option<HeaderValue>; 2],
    /// The slot the next new value takes.
    next: usize,
}

impl Recent {
    /// Shorter values are checked as they come: the comparison would not
    /// save much.
    const MIN_LEN: usize = 128;

    /// The value at `v0..v1` of `head`, None when it is not a valid one.
    fn value(&mut self, head: &Bytes, (v0, v1): (usize, usize)) -> Option<HeaderValue> {
        let bytes = &head[v0..v1];
        if bytes.len() < Self::MIN_LEN {
            return HeaderValue::from_maybe_shared(head.slice(v0..v1)).ok();
        }
        // In time that depends on the length only: behind a proxy that
        // pools connections, the kept value may be another caller's token.
        if let Some(v) = self
            .kept
            .iter()
            .flatten()
            .find(|v| gatehouse_core::id::same_bytes(v.as_bytes(), bytes))
        {
            return Some(v.clone());
        }
        let v = HeaderValue::from_maybe_shared(head.slice(v0..v1)).ok()?;
        self.kept[self.next] = Some(v.clone());
        self.next = (self.next + 1) % self.kept.len();
        Some(v)
    }
}

/// Parses the request head at the start of `buf`, taking it from `buf`
/// when it is complete, with the connection's `scratch`; the headers
/// array is left uninitialised for httparse to fill: zeroing 100 slots and
/// their spans was 8 % of a proxied request's instructions.
fn parse(buf: &mut BytesMut, scratch: &mut Scratch) -> Parsed {
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut []);
    let len = match r.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::HandOver(Bytes::new()),
    };
    let (Some(method), Some(path), Some(minor @ (0 | 1))) = (r.method, r.path, r.version) else {
        return Parsed::HandOver(Bytes::new());
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Parsed::HandOver(Bytes::new());
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::HandOver(Bytes::new());
    };
    // Offsets into the head, so header values can share its bytes.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        (
            s.as_ptr() as usize - base,
            s.as_ptr() as usize - base + s.len(),
        )
    };
    let target = at(path.as_bytes());
    let mut opts = ConnectionOptions::default();
    let spans = &mut scratch.spans;
    spans.clear();
    for h in r.headers.iter() {
        if screen(h.name, h.value, &mut opts).is_none() {
            return Parsed::HandOver(Bytes::new());
        }
        let (n0, n1) = at(h.name.as_bytes());
        let (v0, v1) = at(h.value);
        spans.push((n0, n1, v0, v1));
    }
    // HTTP/1.0 keeps the connection only when asked to (RFC 9112 §9.3).
    let close = opts.close || (minor == 0 && !opts.keep_alive);
    let head = buf.split_to(len).freeze();
    match build(&head, method, target, scratch) {
        Some(mut req) => {
            if minor == 0 {
                *req.version_mut() = http::Version::HTTP_10;
            }
            Parsed::Request(req, close)
        }
        None => Parsed::HandOver(head),
    }
}

fn build(
    head: &Bytes,
    method: Method,
    (t0, t1): (usize, usize),
    scratch: &mut Scratch,
) -> Option<Request<RequestBody>> {
    let names = &scratch.spans;
    let uri = Uri::from_maybe_shared(head.slice(t0..t1)).ok()?;
    // Room for what the pipeline adds (forwarding headers, request id,
    // identity headers) without the map growing and rehashing on the way.
    let mut map = HeaderMap::with_capacity(names.len() + ADDED_HEADERS);
    for &(n0, n1, v0, v1) in names {
        let name = HeaderName::from_bytes(&head[n0..n1]).ok()?;
        let value = scratch.recent.value(head, (v0, v1))?;
        map.append(name, value);
    }
    let mut req = Request::new(RequestBody::Empty);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = map;
    Some(req)
}

/// Writes `resp`; true when the connection can serve another request.
async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    resp: Response<Body>,
    (head_only, http10): (bool, bool),
    close: bool,
) -> io::Result<bool> {
    out.clear();
    if out.capacity() > 64 * 1024 {
        out.shrink_to(4096);
    }
    let (parts, mut body) = resp.into_parts();
    // A relayed answer's fields as the upstream sent them (hop-by-hop
    // ones already out), beside those the gateway set in the map.
    let upstream = body.take_upstream_headers();
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // How the body is framed: its declared length, else the length the
    // body knows, else chunked.
    let in_map = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared = in_map.or(upstream.as_ref().and_then(|u| u.length));
    let mut length = None;
    if !no_body {
        length = declared.or(body.size_hint().exact());
        match (in_map, length) {
            // Written with the map's other fields below.
            (Some(_), _) => {}
            (None, Some(n)) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            // HTTP/1.0 has no chunked coding: the body ends with the
            // connection.
            (None, None) if http10 => {}
            (None, None) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
    }
    if let Some(up) = &upstream {
        up.write(&parts.headers, out);
    }
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        if no_body && !head_only && name == header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) && !upstream.as_ref().is_some_and(|u| u.has_date) {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    // An HTTP/1.0 answer without a length is delimited by the close.
    let close = close || (http10 && !no_body && length.is_none());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        stream.write_all(out).await?;
        return Ok(!close);
    }
    let mut left = length;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The upstream broke off mid-body: the client can only learn
            // it from the connection closing.
            stream.write_all(out).await?;
            return Ok(false);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent (no `TE: trailers` handling)
        };
        if data.is_empty() {
            continue;
        }
        match &mut left {
            Some(n) => {
                let take = data.len().min(usize::try_from(*n).unwrap_or(usize::MAX));
                out.extend_from_slice(&data[..take]);
                *n -= take as u64;
                if take < data.len() {
                    // More than declared: never let the rest become the
                    // start of another response.
                    stream.write_all(out).await?;
                    return Ok(false);
                }
            }
            None if http10 => out.extend_from_slice(&data),
            None => {
                let mut hex = [0u8; 16];
                out.extend_from_slice(hex_len(data.len(), &mut hex));
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
        }
        // Stream: what is here goes out unless more is ready with it.
        if !body.is_end_stream() {
            stream.write_all(out).await?;
            out.clear();
        }
    }
    match left {
        None if http10 => {}
        None => out.extend_from_slice(b"0\r\n\r\n"),
        Some(0) => {}
        Some(_) => {
            // Shorter than declared: the framing is broken, so close.
            stream.write_all(out).await?;
            return Ok(false);
        }
    }
    stream.write_all(out).await?;
    Ok(!close)
}

/// `n` in lowercase hex, for a chunk-size line.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The `Date` header, formatted once a second per thread (as hyper does).
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    pub fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs || c.1.is_empty() {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(c.1.as_bytes());
        });
    }
}

/// A connection whose first bytes were already read: they are read again
/// first, then the socket.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Parsed {
        parse(&mut BytesMut::from(raw.as_bytes()), &mut Scratch::default())
    }

    #[test]
    fn plain_requests_are_ours_with_their_headers() {
        let Parsed::Request(req, close) =
            parsed("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\n")
        else {
            panic!("not ours")
        };
        assert!(!close);
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()["host"], "x");
        let twos: Vec<_> = req.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        let Parsed::Request(_, close) =
            parsed("DELETE / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n")
        else {
            panic!("not ours")
        };
        assert!(close);
        // HTTP/1.0 closes unless it asks to keep the connection.
        for (raw, closes) in [
            ("GET / HTTP/1.0\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", false),
        ] {
            let Parsed::Request(req, close) = parsed(raw) else {
                panic!("not ours")
            };
            assert_eq!((req.version(), close), (http::Version::HTTP_10, closes));
        }
    }

    #[test]
    fn long_values_a_connection_repeats_are_its_own_values() {
        let a = format!("Bearer {}", "a".repeat(600));
        let b = format!("Bearer {}b", "a".repeat(599));
        let short = "Bearer abc";
        let mut scratch = Scratch::default();
        let (mut seen, mut heads) = (Vec::new(), Vec::new());
        // Each request in a buffer of its own, as reads bring them.
        for token in [&a[..], &a, &b, short, &a, &b, short] {
            let raw = format!(
                "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nCookie: {token}\r\n\r\n"
            );
            let Parsed::Request(req, _) = parse(&mut BytesMut::from(raw.as_bytes()), &mut scratch)
            else {
                panic!("not ours")
            };
            for name in ["authorization", "cookie"] {
                assert_eq!(req.headers()[name], token, "{name}");
            }
            seen.push(req.headers()["authorization"].as_bytes().as_ptr());
            // Kept, so that no two heads share an address.
            heads.push(req);
        }
        // The repeated long value is the one kept from the first request
        // (not checked again); a new one, or a short one, is its own.
        assert_eq!(seen[1], seen[0]);
        assert_ne!(seen[2], seen[0]);
        assert_eq!((seen[4], seen[5]), (seen[0], seen[2]));
        assert_ne!(seen[6], seen[3]);
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        for raw in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: x-private\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET /\u{1}x HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(matches!(parsed(raw), Parsed::HandOver(_)), "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parsed(&raw), Parsed::HandOver(_)));
    }

    #[test]
    fn incomplete_heads_wait_and_leave_the_buffer_alone() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
        assert!(matches!(
            parse(&mut buf, &mut Scratch::default()),
            Parsed::Partial
        ));
        assert_eq!(buf.len(), 25);
        buf.extend_from_slice(b"\r\nGET /next HTTP/1.1\r\n");
        assert!(matches!(
            parse(&mut buf, &mut Scratch::default()),
            Parsed::Request(..)
        ));
        assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn request() -> impl Strategy<Value = (String, String, Vec<(String, String)>)> {
            (
                prop::sample::select(vec!["GET", "HEAD", "DELETE", "OPTIONS", "POST", "PATCH"]),
                "/[a-zA-Z0-9._~%/-]{0,20}(\\?[a-z0-9=&]{0,10})?",
                prop::collection::vec(("x-[a-z0-9-]{1,10}", "[ -~]{0,20}"), 0..8),
            )
                .prop_map(|(m, p, h)| (m.to_owned(), p, h))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes: no panic, and whatever this path takes is a
            /// bodyless origin-form HTTP/1.1 request.
            #[test]
            fn any_bytes_are_taken_only_when_plain(raw in prop::collection::vec(any::<u8>(), 0..300)) {
                let mut with_head = b"GET / HTTP/1.1\r\n".to_vec();
                with_head.extend_from_slice(&raw);
                for bytes in [raw, with_head] {
                    if let Parsed::Request(req, _) = parse(&mut BytesMut::from(&bytes[..]), &mut Scratch::default()) {
                        for h in ["content-length", "transfer-encoding", "upgrade", "expect"] {
                            prop_assert!(!req.headers().contains_key(h));
                        }
                        prop_assert!(req.method() != Method::CONNECT);
                        prop_assert!(req.uri().path().starts_with('/'));
                        prop_assert!(req.uri().authority().is_none());
                    }
                }
            }

            /// One connection's requests with long values repeated, new,
            /// or differing from a kept one in one byte: each request's
            /// headers are the values it sent.
            #[test]
            fn each_request_has_its_own_values_whatever_was_kept(
                base in "[A-Za-z0-9._-]{128,160}",
                picks in prop::collection::vec((0usize..4, 0usize..4, any::<prop::sample::Index>()), 1..10),
            ) {
                let mut scratch = Scratch::default();
                for (a, b, at) in picks {
                    let value = |k: usize| match k {
                        0 => base.clone(),
                        1 => {
                            let mut v = base.clone().into_bytes();
                            let i = at.index(v.len());
                            v[i] = if v[i] == b'x' { b'y' } else { b'x' };
                            String::from_utf8(v).expect("ascii")
                        }
                        2 => format!("{base}z"),
                        _ => "short".to_owned(),
                    };
                    let (va, vb) = (value(a), value(b));
                    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nX-A: {va}\r\nX-B: {vb}\r\n\r\n");
                    let Parsed::Request(req, _) = parse(&mut BytesMut::from(raw.as_bytes()), &mut scratch) else {
                        return Err(TestCaseError::fail("not taken"));
                    };
                    prop_assert_eq!(req.headers()["x-a"].as_bytes(), va.as_bytes());
                    prop_assert_eq!(req.headers()["x-b"].as_bytes(), vb.as_bytes());
                }
            }

            /// A well-formed request comes back with its method, target
            /// and headers in order, whatever follows it stays in the
            /// buffer, and any prefix of it is only "not yet".
            #[test]
            fn plain_requests_round_trip((method, path, headers) in request(), cut in 0usize..400) {
                let mut raw = format!("{method} {path} HTTP/1.1\r\n");
                for (n, v) in &headers {
                    raw.push_str(&format!("{n}: {v}\r\n"));
                }
                raw.push_str("\r\n");
                let cut = cut.min(raw.len() - 1);
                let mut part = BytesMut::from(&raw.as_bytes()[..cut]);
                prop_assert!(matches!(parse(&mut part, &mut Scratch::default()), Parsed::Partial));
                prop_assert_eq!(part.len(), cut);
                let mut buf = BytesMut::from(format!("{raw}NEXT").as_bytes());
                let Parsed::Request(req, close) = parse(&mut buf, &mut Scratch::default()) else {
                    return Err(TestCaseError::fail("not taken"));
                };
                prop_assert!(!close);
                prop_assert_eq!(req.method().as_str(), method.as_str());
                prop_assert_eq!(req.uri().to_string(), path);
                let got: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                let want: Vec<(String, String)> = headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.trim_matches([' ', '\t']).to_owned()))
                    .collect();
                // HeaderMap groups repeated names; compare as multisets.
                let (mut got, mut want) = (got, want);
                got.sort();
                want.sort();
                prop_assert_eq!(got, want);
                prop_assert_eq!(&buf[..], b"NEXT");
            }
        }
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut b = [0u8; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(4096, &mut b), b"1000");
    }
}
