//! Authentication: turning a request's credentials into an [`Identity`].
//! One module per authorizer type; a route tries its authorizers in order
//! and the first that accepts wins.

pub mod apikey;
pub mod dpop;
pub mod jwt;

/// Why a credential was not accepted. Reasons go to the audit log only;
/// callers get a generic 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// No credential of the kind this authorizer reads.
    Missing,
    /// A credential was there but is not acceptable.
    Invalid(&'static str),
    /// A DPoP-bound token without a valid proof, or a DPoP proof with a
    /// token it cannot bind: answered with a `DPoP` challenge naming
    /// `error` (`invalid_dpop_proof` or `invalid_token`, RFC 9449 §7.1).
    Dpop {
        error: &'static str,
        reason: &'static str,
    },
}

/// The one value of a credential header: None when absent, a rejection
/// when sent more than once (which one would the upstream or another proxy
/// read? RFC 9110 §5.3: these fields are not lists).
pub fn single(
    headers: &http::HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<Result<&http::HeaderValue, Reject>> {
    only_one(
        headers.get_all(name).iter(),
        "credential header sent more than once",
    )
}

/// `v` as text when it is ASCII: what `HeaderValue::to_str` answers (a
/// header value holds no control byte but tab).
pub fn text(v: &http::HeaderValue) -> Option<&str> {
    ascii(v.as_bytes())
}

/// `b` as text when it is ASCII, found a word at a time where
/// `HeaderValue::to_str` looks at each byte: about 640 instructions for a
/// 1 KB token instead of 780 (callgrind; more on a CPU that runs the word
/// loop vectorised, which valgrind does not show).
pub fn ascii(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        std::str::from_utf8(b).ok()
    } else {
        None
    }
}

/// The one item of `found`: None when there is none, `twice` as the
/// rejection when there are more.
pub fn only_one<T>(
    mut found: impl Iterator<Item = T>,
    twice: &'static str,
) -> Option<Result<T, Reject>> {
    let first = found.next()?;
    Some(match found.next() {
        None => Ok(first),
        Some(_) => Err(Reject::Invalid(twice)),
    })
}

impl Reject {
    /// The reason for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Missing => "no credentials",
            Reject::Invalid(r) | Reject::Dpop { reason: r, .. } => r,
        }
    }
}

/// A configured authorizer of any type.
pub enum Authorizer {
    Jwt(Box<jwt::JwtAuthorizer>),
    ApiKey(apikey::ApiKeyAuthorizer),
}

impl Authorizer {
    /// The JWT authorizer, if this is one.
    pub fn as_jwt(&self) -> Option<&jwt::JwtAuthorizer> {
        match self {
            Authorizer::Jwt(j) => Some(j),
            Authorizer::ApiKey(_) => None,
        }
    }

    /// The issuer, for RFC 9728 metadata (JWT authorizers only).
    pub fn issuer(&self) -> Option<&str> {
        self.as_jwt().and_then(|j| j.issuer())
    }
}

impl Authorizer {
    /// JWT authorizers fetch keys now and refresh them periodically while
    /// the authorizer is alive (a reload that drops it stops the task).
    pub fn start_background(self: &std::sync::Arc<Self>) {
        if self.as_jwt().is_none() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { break };
                if let Some(j) = me.as_jwt() {
                    j.refresh(true).await;
                }
                drop(me);
                tokio::time::sleep(jwt::REFRESH_PERIOD).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// `text` answers what `HeaderValue::to_str` answers, for any value.
        #[test]
        fn text_is_to_str(bytes in proptest::collection::vec(
            proptest::prop_oneof![2 => proptest::prelude::Just(b'\t'), 60 => 0x20u8..=0xff, 1 => 0u8..0x20],
            0..64,
        )) {
            if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                proptest::prop_assert_eq!(super::text(&v), v.to_str().ok());
            }
        }
    }

    #[test]
    fn text_takes_tokens_and_refuses_obs_text() {
        let v = http::HeaderValue::from_static("Bearer eyJ.a-b_c.d\tx");
        assert_eq!(super::text(&v), Some("Bearer eyJ.a-b_c.d\tx"));
        let v = http::HeaderValue::from_bytes(b"Bearer \xc3\xa9").expect("obs-text");
        assert_eq!(super::text(&v), None);
    }
}
