//! Reading what a URL that a client, an identity provider or an admin
//! configured answers (a client's `jwks.url`, a request object by
//! reference, a provider's discovery, token and userinfo answers): with the
//! server's short timeouts and no redirects (`Idp::http`), and a size cap
//! enforced while the body streams in, so a hostile or broken server can
//! neither hold a login nor make the process buffer an unbounded body.

use crate::state::Idp;

/// The cap for JSON documents (JWKS, discovery, token answers).
pub const MAX_JSON: usize = 256 * 1024;

/// Why nothing usable was read; `what` words it for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    Unreachable,
    ErrorStatus,
    Unreadable,
    TooLarge,
}

impl Unread {
    /// The reason, for a log line next to the URL (never for the caller of
    /// our endpoint: it says how a configured server behaves).
    pub fn what(self) -> &'static str {
        match self {
            Unread::Unreachable => "unreachable",
            Unread::ErrorStatus => "answered an error",
            Unread::Unreadable => "body unreadable",
            Unread::TooLarge => "too large",
        }
    }
}

/// The body of `resp`, at most `max` bytes, refused as it grows past that.
pub async fn body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, Unread> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| Unread::Unreadable)? {
        if out.len() + chunk.len() > max {
            return Err(Unread::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `GET url`: a success's body, at most `max` bytes.
pub async fn get(idp: &Idp, url: &str, max: usize) -> Result<Vec<u8>, Unread> {
    let resp = idp
        .http
        .get(url)
        .send()
        .await
        .map_err(|_| Unread::Unreachable)?;
    if !resp.status().is_success() {
        return Err(Unread::ErrorStatus);
    }
    body(resp, max).await
}
