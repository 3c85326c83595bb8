//! HTTP/1.1 on the wire toward an upstream, for requests without a body:
//! the request head written in one buffer, the response head parsed with
//! `httparse`, and the response body framed as RFC 9112 §6.3 says.
//!
//! Why not hyper's client here: for a bodyless request (most API reads) its
//! connection task, the channels between it and the caller and its body
//! channel cost about a third of the gateway's per-request CPU (callgrind:
//! 14.8k of 47k instructions on a public route). A request with a body, an
//! upgrade or HTTP/2 still goes through hyper, which sends the body while
//! reading an early answer.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};

/// Most response head bytes read before giving up (as for requests).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size, extensions and CRLF).
const MAX_CHUNK_LINE: usize = 4096;

/// An upstream that does not speak HTTP/1.1 as the RFC says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The response head does not parse.
    #[error("malformed response head: {0}")]
    Head(String),
    /// The response head is over [`MAX_HEAD`].
    #[error("response head too large")]
    HeadTooLarge,
    /// Content-Length values that are not one number.
    #[error("invalid Content-Length")]
    Length,
    /// A chunk size line or chunk terminator that is wrong.
    #[error("malformed chunked body")]
    Chunked,
    /// The connection ended inside a response.
    #[error("upstream closed the connection mid-response")]
    Eof,
}

/// The items of a comma-separated header (RFC 9110 §5.6.1), over all of
/// its lines, trimmed, empty ones skipped (`Connection`, `TE`,
/// `Transfer-Encoding`).
pub fn list(h: &HeaderMap, name: HeaderName) -> impl DoubleEndedIterator<Item = &str> {
    h.get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `list(h, name)` holds `token` (case-insensitive).
pub fn lists(h: &HeaderMap, name: HeaderName, token: &str) -> bool {
    list(h, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Writes the request head (origin-form target) into `out`: the request
/// line and the headers `keep` keeps, without the blank line that ends
/// the head, so the caller can add header lines of its own and then end
/// it with [`end_head`].
pub fn encode_head<B>(
    req: &Request<B>,
    mut keep: impl FnMut(&HeaderName, &HeaderValue) -> bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if !keep(name, value) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Ends a head [`encode_head`] began. A method whose requests normally
/// carry a body says it has none, so the upstream does not wait for one.
pub fn end_head<B>(req: &Request<B>, out: &mut Vec<u8>) {
    if !req.headers().contains_key(CONTENT_LENGTH)
        && matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
    {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub reusable: bool,
}

/// Parses a response head at the start of `buf` and takes it off the
/// buffer: `Ok(None)` while it is incomplete. Interim (1xx) responses are
/// consumed and skipped, so the head returned is always the final one.
/// Header values share the head's one buffer (no copy per header).
pub fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, WireError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut r,
            &buf[..],
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_HEAD {
                    Err(WireError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(WireError::Head(e.to_string())),
        };
        let code = r.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Head(format!("status {code}")))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(WireError::Head("unexpected 101".into()));
            }
            buf.advance(n);
            continue;
        }
        let version = if r.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // One copy of the head that every header value shares, so the
        // connection's buffer stays its own and is reused for the next answer.
        let base = buf.as_ptr() as usize;
        let head = Bytes::copy_from_slice(&buf[..n]);
        // Room for the few headers the gateway adds to an answer.
        let mut map = HeaderMap::with_capacity(r.headers.len() + 4);
        for h in r.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| WireError::Head("header name".into()))?;
            let at = h.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
                .map_err(|_| WireError::Head(format!("value of {name}")))?;
            map.append(name, value);
        }
        buf.advance(n);
        let (framing, clean) = framing(&map, status, method)?;
        let close_asked = lists(&map, CONNECTION, "close");
        let reusable =
            clean && version == Version::HTTP_11 && !close_asked && framing != Framing::Close;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = map;
        return Ok(Some(Head {
            response,
            framing,
            reusable,
        }));
    }
}

/// RFC 9112 §6.3: the body's framing, and whether it was unambiguous (a
/// response with both Transfer-Encoding and Content-Length is read by the
/// former, and its connection is not reused).
fn framing(
    h: &HeaderMap,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, bool), WireError> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    let has_length = h.contains_key(CONTENT_LENGTH);
    if h.contains_key(TRANSFER_ENCODING) {
        return Ok(match list(h, TRANSFER_ENCODING).next_back() {
            Some(t) if t.eq_ignore_ascii_case("chunked") => (Framing::Chunked, !has_length),
            _ => (Framing::Close, false),
        });
    }
    if has_length {
        let mut value: Option<u64> = None;
        for v in h.get_all(CONTENT_LENGTH) {
            for part in v.to_str().map_err(|_| WireError::Length)?.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WireError::Length);
                }
                let n: u64 = part.parse().map_err(|_| WireError::Length)?;
                if value.is_some_and(|v| v != n) {
                    return Err(WireError::Length);
                }
                value = Some(n);
            }
        }
        return match value {
            Some(0) => Ok((Framing::Empty, true)),
            Some(n) => Ok((Framing::Length(n), true)),
            None => Err(WireError::Length),
        };
    }
    Ok((Framing::Close, true))
}

/// What the chunked decoder made of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body ended, with its trailer fields (possibly none).
    Done(HeaderMap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// `Transfer-Encoding: chunked` decoding over a buffer that fills up.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    trailers: HeaderMap,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            trailers: HeaderMap::new(),
            trailer_bytes: 0,
        }
    }
}

/// The index just past the first CRLF of `buf` (a bare LF is an error).
fn line_end(buf: &[u8], limit: usize) -> Result<Option<usize>, WireError> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) if i >= 1 && buf[i - 1] == b'\r' => Ok(Some(i + 1)),
        Some(_) => Err(WireError::Chunked),
        None if buf.len() > limit => Err(WireError::Chunked),
        None => Ok(None),
    }
}

impl ChunkedDecoder {
    /// Decodes what it can from the front of `buf`, consuming it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = line_end(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let line = &buf[..end - 2];
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    let digits = trim_ows(digits);
                    if digits.is_empty() || digits.len() > 15 {
                        return Err(WireError::Chunked);
                    }
                    let mut size: u64 = 0;
                    for d in digits {
                        let v = (*d as char).to_digit(16).ok_or(WireError::Chunked)?;
                        size = size * 16 + u64::from(v);
                    }
                    buf.advance(end);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunked);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = line_end(buf, MAX_HEAD)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.trailer_bytes += end;
                    if self.trailer_bytes > MAX_HEAD {
                        return Err(WireError::Chunked);
                    }
                    if end == 2 {
                        buf.advance(2);
                        self.state = ChunkState::Done;
                        return Ok(Decoded::Done(std::mem::take(&mut self.trailers)));
                    }
                    let line = buf.split_to(end);
                    let line = &line[..end - 2];
                    let colon = line
                        .iter()
                        .position(|b| *b == b':')
                        .ok_or(WireError::Chunked)?;
                    let name =
                        HeaderName::from_bytes(&line[..colon]).map_err(|_| WireError::Chunked)?;
                    let value = HeaderValue::from_bytes(trim_ows(&line[colon + 1..]))
                        .map_err(|_| WireError::Chunked)?;
                    self.trailers.append(name, value);
                }
                ChunkState::Done => return Ok(Decoded::Done(HeaderMap::new())),
            }
        }
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<Head>, WireError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        let h = parse_head(&mut buf, &method)?;
        if let Some(h) = &h {
            // What is left is the body; report the head's length through it.
            let body = buf.len();
            return Ok(Some(Head {
                response: {
                    let mut r = Response::new(());
                    *r.status_mut() = h.response.status();
                    *r.headers_mut() = h.response.headers().clone();
                    r.extensions_mut().insert(raw.len() - body);
                    r
                },
                framing: h.framing,
                reusable: h.reusable,
            }));
        }
        Ok(None)
    }

    fn consumed(h: &Head) -> usize {
        *h.response.extensions().get::<usize>().expect("len")
    }

    #[test]
    fn request_heads_are_written_in_origin_form() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/a/b?x=1")
            .header("host", "up:8080")
            .header("x-two", "1")
            .header("x-two", "2")
            .header("x-drop", "gone")
            .body(())
            .expect("req");
        let mut out = vec![];
        encode_head(&req, |n, _| n != "x-drop", &mut out);
        out.extend_from_slice(b"x-added: 3\r\n");
        end_head(&req, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "POST /a/b?x=1 HTTP/1.1\r\nhost: up:8080\r\nx-two: 1\r\nx-two: 2\r\nx-added: 3\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!(
            (h.framing, h.reusable, consumed(&h)),
            (Framing::Length(5), true, 38)
        );
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, true));
        // Both: chunked wins, the connection is not reused.
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, false));
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!((h.framing, h.reusable), (Framing::Close, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", get.clone())
            .expect("ok")
            .expect("complete");
        assert_eq!((h.framing, h.reusable), (Framing::Close, false));
        let h = head(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert!(!h.reusable);
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", get.clone())
            .expect("ok")
            .expect("complete");
        assert!(!h.reusable);
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n",
            get.clone(),
        )
        .expect("ok")
        .expect("complete");
        assert_eq!(h.framing, Framing::Length(7));
        for bad in ["7, 8", "-1", "0x10", "", "1 2", "99999999999999999999999"] {
            let raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert_eq!(
                head(&raw, get.clone()).err(),
                Some(WireError::Length),
                "{bad}"
            );
        }
    }

    #[test]
    fn interim_answers_are_skipped_and_partial_heads_wait() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let h = head(raw, Method::GET).expect("ok").expect("complete");
        assert_eq!(h.response.status(), 204);
        assert_eq!(consumed(&h), raw.len());
        assert!(
            head("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
                .expect("ok")
                .is_none()
        );
        assert!(head("HTTP/1.1 101 Switching\r\n\r\n", Method::GET).is_err());
        assert!(head("garbage\r\n\r\n", Method::GET).is_err());
        let big = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD + 1));
        assert_eq!(head(&big, Method::GET).err(), Some(WireError::HeadTooLarge));
    }

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, HeaderMap), WireError> {
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = vec![];
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => body.extend_from_slice(&b),
                Decoded::Done(t) => return Ok((body, t)),
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        return Err(WireError::Eof);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let input = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\ngrpc-status: 0\r\nx-t:  v \r\n\r\n";
        for step in [1, 2, 3, 7, 64, 1000] {
            let (body, trailers) = decode_all(input, step).expect("decodes");
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(trailers["x-t"], "v");
        }
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"10000000000000000\r\n",
        ] {
            assert!(
                decode_all(bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_all(b"5\r\nhel", 2).err(), Some(WireError::Eof));
    }
}
