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
use http::header::{CONTENT_LENGTH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};

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
    pub status: StatusCode,
    pub version: Version,
    /// The header lines to pass on to the client.
    pub headers: UpstreamHeaders,
    pub framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub reusable: bool,
}

/// An upstream answer's header fields as they go on to the client, kept
/// as the `name: value` lines the upstream sent rather than a `HeaderMap`.
///
/// Why: building a map of the answer's fields, removing the hop-by-hop
/// ones from it and writing it out again cost about 3 000 instructions a
/// request (callgrind, a Cedar route: 8 % of it), for fields the gateway
/// never reads. Here they are filtered once, while the head is parsed,
/// and copied out as they are; a field the gateway sets itself (request
/// id, CORS, rate-limit headers) replaces the upstream's of that name
/// when the answer is written ([`UpstreamHeaders::write`]), as
/// `HeaderMap::insert` would, except `Vary`, a list both add to. Only an answer served by hyper (HTTP/2, or
/// the rest of a connection handed to it) needs the map:
/// [`UpstreamHeaders::into_map`].
#[derive(Debug, Clone, Default)]
pub struct UpstreamHeaders {
    /// `name: value\r\n` lines, validated by `httparse`, without the
    /// hop-by-hop fields, those `Connection` names, and `Content-Length`
    /// where it frames the body (see `length`).
    lines: Bytes,
    /// The `Content-Length` that frames the body (normalised: `7, 7` is
    /// `7`), written by whoever frames the answer to the client.
    pub length: Option<u64>,
    /// Whether the upstream sent `Date` (else the gateway adds one).
    pub has_date: bool,
    /// One bit per line name ([`name_bit`]): a field the gateway set whose
    /// bit is not here is in no line, and the lines are copied whole.
    names: u64,
}

/// A name's bit in [`UpstreamHeaders::names`], from its length and first
/// letter (case-insensitive).
fn name_bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, u8::to_ascii_lowercase);
    1 << ((name.len() * 7 + usize::from(first)) % 64)
}

/// What a response field is to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    /// Hop-by-hop (RFC 9110 §7.6.1), the same set as
    /// `proxy::strip_hop_by_hop` removes from a header map.
    HopByHop,
    Connection,
    TransferEncoding,
    ContentLength,
    Date,
}

/// Compares lengths before bytes: most names are ruled out by length.
fn field(name: &str) -> Field {
    // A token's bytes with 0x20 set are its letters in lower case, and no
    // other byte of a token becomes a letter or `-` that way.
    let is = |s: &str| name.bytes().zip(s.bytes()).all(|(a, b)| a | 0x20 == b);
    match name.len() {
        2 if is("te") => Field::HopByHop,
        4 if is("date") => Field::Date,
        7 if is("trailer") || is("upgrade") => Field::HopByHop,
        10 if is("connection") => Field::Connection,
        10 if is("keep-alive") => Field::HopByHop,
        14 if is("content-length") => Field::ContentLength,
        16 if is("proxy-connection") => Field::HopByHop,
        17 if is("transfer-encoding") => Field::TransferEncoding,
        18 if is("proxy-authenticate") => Field::HopByHop,
        19 if is("proxy-authorization") => Field::HopByHop,
        _ => Field::Other,
    }
}

/// The items of one comma-separated field value (RFC 9110 §5.6.1),
/// trimmed, empty ones skipped.
fn items(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// What the first pass over a response's fields found.
#[derive(Default)]
struct Seen {
    /// `Transfer-Encoding` present, and whether its last coding is chunked.
    te: Option<bool>,
    /// `Content-Length` present, and its one value (None: not one number).
    length: Option<Option<u64>>,
    close: bool,
    /// `Connection` names a field (not just `close` or `keep-alive`).
    names_fields: bool,
    date: bool,
}

impl Seen {
    /// Also notes what each field is in `fields`, for the second pass.
    fn of(headers: &[httparse::Header<'_>], fields: &mut [Field]) -> Seen {
        let mut seen = Seen::default();
        for (h, f) in headers.iter().zip(fields.iter_mut()) {
            *f = field(h.name);
            match *f {
                Field::TransferEncoding => {
                    let last = items(h.value).next_back();
                    seen.te = Some(match last {
                        Some(t) => t.eq_ignore_ascii_case(b"chunked"),
                        // An empty line does not change the last coding.
                        None => seen.te.unwrap_or(false),
                    });
                }
                Field::ContentLength => {
                    seen.length = Some(content_length(h.value, seen.length));
                }
                Field::Connection => {
                    for t in items(h.value) {
                        if t.eq_ignore_ascii_case(b"close") {
                            seen.close = true;
                        } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                            seen.names_fields = true;
                        }
                    }
                }
                Field::Date => seen.date = true,
                Field::HopByHop | Field::Other => {}
            }
        }
        seen
    }
}

/// One `Content-Length` line folded into what earlier lines said (`so_far`,
/// as in [`Seen::length`]): None unless every value is the same number.
fn content_length(value: &[u8], so_far: Option<Option<u64>>) -> Option<u64> {
    let mut n = match so_far {
        Some(None) => return None,
        Some(n) => n,
        None => None,
    };
    let mut any = false;
    for part in value.split(|b| *b == b',') {
        let part = trim_ows(part);
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if n.is_some_and(|n| n != v) {
            return None;
        }
        n = Some(v);
        any = true;
    }
    if any { n } else { None }
}

/// Parses a response head at the start of `buf` and takes it off the
/// buffer: `Ok(None)` while it is incomplete. Interim (1xx) responses are
/// consumed and skipped, so the head returned is always the final one.
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
        let mut fields = [Field::Other; MAX_HEADERS];
        let seen = Seen::of(r.headers, &mut fields);
        let (framing, clean) = framing(&seen, status, method)?;
        let reusable =
            clean && version == Version::HTTP_11 && !seen.close && framing != Framing::Close;
        // Content-Length goes on as it came only where it does not frame
        // this body: the answer to HEAD. A 204 or 304 has none (RFC 9110
        // §8.6), and beside Transfer-Encoding it is dropped (RFC 9112 §6.3).
        let no_content = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let keep_length = *method == Method::HEAD && !no_content;
        let length = match framing {
            Framing::Length(n) => Some(n),
            Framing::Empty if !keep_length && !no_content && seen.length.is_some() => Some(0),
            _ => None,
        };
        let mut lines = Vec::with_capacity(n + r.headers.len());
        let mut names = 0;
        for (h, f) in r.headers.iter().zip(fields) {
            let keep = match f {
                Field::Other => !(seen.names_fields && named_by_connection(r.headers, h.name)),
                Field::Date => true,
                Field::ContentLength => keep_length,
                Field::HopByHop | Field::Connection | Field::TransferEncoding => false,
            };
            if keep {
                names |= name_bit(h.name.as_bytes());
                lines.extend_from_slice(h.name.as_bytes());
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(h.value);
                lines.extend_from_slice(b"\r\n");
            }
        }
        buf.advance(n);
        return Ok(Some(Head {
            status,
            version,
            headers: UpstreamHeaders {
                lines: Bytes::from(lines),
                length,
                has_date: seen.date,
                names,
            },
            framing,
            reusable,
        }));
    }
}

/// Whether a `Connection` field of `headers` names `name` (RFC 9110
/// §7.6.1: such a field is for this hop only).
fn named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| field(h.name) == Field::Connection)
        .flat_map(|h| items(h.value))
        .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// RFC 9112 §6.3: the body's framing, and whether it was unambiguous (a
/// response with both Transfer-Encoding and Content-Length is read by the
/// former, and its connection is not reused).
fn framing(seen: &Seen, status: StatusCode, method: &Method) -> Result<(Framing, bool), WireError> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    match (seen.te, seen.length) {
        (Some(true), length) => Ok((Framing::Chunked, length.is_none())),
        (Some(false), _) => Ok((Framing::Close, false)),
        (None, Some(Some(0))) => Ok((Framing::Empty, true)),
        (None, Some(Some(n))) => Ok((Framing::Length(n), true)),
        (None, Some(None)) => Err(WireError::Length),
        (None, None) => Ok((Framing::Close, true)),
    }
}

/// Whether the gateway's value of field `name` is added to the upstream's
/// rather than replacing it: `Vary` is a list (RFC 9110 §12.5.5), and
/// CORS's `Vary: Origin` replacing `Vary: Accept-Encoding` would let a
/// shared cache serve a compressed answer to a client that cannot read it.
fn adds_to(name: &HeaderName) -> bool {
    name == VARY
}

/// Sets the gateway's `fields` on an answer's `map`: each replaces the
/// answer's values of its name, as `HeaderMap::extend` does, except those
/// the gateway adds to ([`adds_to`]). [`UpstreamHeaders::write`] keeps the
/// same rule for an answer's lines.
pub fn set_fields(map: &mut HeaderMap, fields: HeaderMap) {
    let mut name = None;
    for (first, value) in fields {
        let replaces = first.is_some();
        if replaces {
            name = first;
        }
        let Some(n) = &name else { continue };
        if replaces && !adds_to(n) {
            map.insert(n.clone(), value);
        } else {
            map.append(n.clone(), value);
        }
    }
}

impl UpstreamHeaders {
    /// The lines, each as `(offset, line, name_len)`.
    fn each(&self) -> impl Iterator<Item = (usize, &[u8], usize)> {
        let mut at = 0;
        self.lines
            .split_inclusive(|b| *b == b'\n')
            .map(move |line| {
                let start = at;
                at += line.len();
                let name_len = line.iter().position(|b| *b == b':').unwrap_or(0);
                (start, line, name_len)
            })
    }

    /// Writes the lines into a head being built, but not those named in
    /// `set` (the fields the gateway set on the answer, which replace the
    /// upstream's but for those it adds to, as in [`set_fields`]).
    pub fn write(&self, set: &HeaderMap, out: &mut Vec<u8>) {
        if !set
            .keys()
            .any(|k| self.names & name_bit(k.as_str().as_bytes()) != 0)
        {
            out.extend_from_slice(&self.lines);
            return;
        }
        for (_, line, name_len) in self.each() {
            let name = &line[..name_len];
            if !set
                .keys()
                .any(|k| !adds_to(k) && k.as_str().as_bytes().eq_ignore_ascii_case(name))
            {
                out.extend_from_slice(line);
            }
        }
    }

    /// The fields as a header map with the gateway's `set` on them
    /// ([`set_fields`]), `Content-Length` included: for an answer that
    /// hyper writes.
    pub fn into_map(self, set: HeaderMap) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(set.len() + 12);
        for (start, line, name_len) in self.each() {
            // `name: value\r\n`, as `parse_head` wrote it.
            let value = start + name_len + 2..start + line.len() - 2;
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..name_len]),
                HeaderValue::from_maybe_shared(self.lines.slice(value)),
            ) {
                map.append(name, value);
            }
        }
        if let Some(n) = self.length {
            map.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
        set_fields(&mut map, set);
        map
    }
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
        parse_head(&mut BytesMut::from(raw.as_bytes()), &method)
    }

    /// How many bytes of `raw` the head took.
    fn consumed(raw: &str, method: Method) -> usize {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, &method)
            .expect("ok")
            .expect("complete");
        raw.len() - buf.len()
    }

    /// The lines written for a head, with `set` set by the gateway.
    fn written(raw: &str, method: Method, set: &HeaderMap) -> (String, Option<u64>) {
        let h = head(raw, method).expect("ok").expect("complete");
        let mut out = vec![];
        h.headers.write(set, &mut out);
        (String::from_utf8(out).expect("utf8"), h.headers.length)
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
        assert_eq!((h.framing, h.reusable), (Framing::Length(5), true));
        assert_eq!(
            consumed(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                Method::GET
            ),
            38
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
        assert_eq!(h.status, 204);
        assert_eq!(consumed(raw, Method::GET), raw.len());
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

    #[test]
    fn fields_go_on_as_sent_without_the_hop_by_hop_ones() {
        let none = HeaderMap::new();
        let raw = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, X-Hop\r\n\
                   Keep-Alive: timeout=5\r\nx-hop: secret\r\nSet-Cookie: a=1\r\n\
                   set-cookie: b=2\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\n\
                   TE: trailers\r\nContent-Length: 7, 7\r\nx-empty:\r\n\r\n";
        let (lines, length) = written(raw, Method::GET, &none);
        assert_eq!(
            lines,
            "Server: up\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nx-empty: \r\n"
        );
        assert_eq!(length, Some(7));
        let h = head(raw, Method::GET).expect("ok").expect("complete");
        assert!(!h.headers.has_date);
        // A field the gateway set replaces the upstream's of that name.
        let mut set = HeaderMap::new();
        set.insert("set-cookie", HeaderValue::from_static("c=3"));
        set.insert("x-request-id", HeaderValue::from_static("r"));
        let (lines, _) = written(raw, Method::GET, &set);
        assert_eq!(lines, "Server: up\r\nx-empty: \r\n");
        // Vary is a list: the gateway's joins the upstream's.
        let vary = "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nContent-Length: 0\r\n\r\n";
        let mut origin = HeaderMap::new();
        origin.insert(VARY, HeaderValue::from_static("Origin"));
        assert_eq!(
            written(vary, Method::GET, &origin).0,
            "Vary: Accept-Encoding\r\n"
        );
        let varied = head(vary, Method::GET).expect("ok").expect("complete");
        let merged = varied.headers.into_map(origin);
        assert_eq!(
            merged.get_all(VARY).iter().collect::<Vec<_>>(),
            ["Accept-Encoding", "Origin"]
        );
        // For hyper: one map, the gateway's fields winning, the length in it.
        let map = h.headers.into_map(set);
        assert_eq!(
            map.get_all("set-cookie").iter().collect::<Vec<_>>(),
            ["c=3"]
        );
        assert_eq!(
            (map["server"].as_bytes(), map["content-length"].as_bytes()),
            (&b"up"[..], &b"7"[..])
        );
        assert_eq!(map.len(), 5);

        // Content-Length frames the body: it is the length, not a line.
        // To HEAD it goes on as it came; a 204 or 304 has none; beside
        // Transfer-Encoding it is dropped.
        let cl = "HTTP/1.1 200 OK\r\nDate: d\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            written(cl, Method::HEAD, &none),
            ("Date: d\r\nContent-Length: 5\r\n".into(), None)
        );
        assert!(
            head(cl, Method::GET)
                .expect("ok")
                .expect("h")
                .headers
                .has_date
        );
        let zero = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(written(zero, Method::GET, &none), (String::new(), Some(0)));
        let nc = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n";
        for m in [Method::GET, Method::HEAD] {
            assert_eq!(written(nc, m, &none), ("ETag: \"e\"\r\n".into(), None));
        }
        // The map path removes the same fields.
        for n in crate::proxy::HOP_BY_HOP {
            assert_ne!(field(n.as_str()), Field::Other, "{n}");
        }
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(written(both, Method::GET, &none), (String::new(), None));
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
